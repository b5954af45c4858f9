import XCTest
import ONNXFuseIR

/// What a program that edits a model by hand needs beyond nodes and uses: finding values and
/// nodes by name, and removing graph inputs and outputs.
final class HandEditTests: XCTestCase {
    /// main (x, o = [1]) => (y, a, y)  <w, sparse s>  { a = Neg(x); y = Add(a, w) }, with a branch
    /// graph in an If whose node output is `t`.
    private func model() throws -> (Model, Graph) {
        let graph = Graph(name: "main")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(1)])))
        let o = graph.addInput(name: "o", info: ValueInfo(type: .tensor(.float, [.value(1)])))
        try graph.setInitializer(Tensor(dataType: .float, dims: [1], values: [Float(1)]), forInput: o)
        let w = graph.addInitializer(name: "w", tensor: Tensor(dataType: .float, dims: [1], values: [Float(2)]))
        graph.addSparseInitializer(name: "s", tensor: SparseTensor(values: nil, indices: nil, dims: [1]))
        let a = Node(opType: "Neg", name: "neg", inputs: [x], outputNames: ["a"])
        try graph.append(a)
        let y = Node(opType: "Add", name: "add", inputs: [a.outputs[0], w], outputNames: ["y"])
        try graph.append(y)
        let body = Graph(name: "then")
        try body.append(Node(opType: "Neg", name: "inner", inputs: [x], outputNames: ["t"]))
        try body.addOutput(body.lastNode!.outputs[0]!, info: ValueInfo(type: nil))
        try graph.append(Node(opType: "If", name: "if", inputs: [x], outputNames: ["z"],
                              attributes: [Attribute(name: "then_branch", value: .graph(body))]))
        for value in [y.outputs[0]!, a.outputs[0]!, y.outputs[0]!] { try graph.addOutput(value, info: ValueInfo(type: nil)) }
        try model.verify()
        return (model, graph)
    }

    func testValuesAndNodesAreFoundByName() throws {
        let (_, graph) = try model()
        XCTAssertEqual(graph.value(named: "x")?.definition, .graphInput)
        XCTAssertEqual(graph.value(named: "o")?.definition, .graphInput)
        XCTAssertTrue(graph.value(named: "o")?.hasInitializer ?? false)
        XCTAssertEqual(graph.value(named: "w")?.definition, .initializer)
        XCTAssertEqual(graph.value(named: "s")?.definition, .sparseInitializer)
        XCTAssertEqual(graph.value(named: "a")?.producer?.name, "neg")
        XCTAssertEqual(graph.value(named: "y")?.producer?.name, "add")
        XCTAssertNil(graph.value(named: "t"), "a subgraph's values are its own")
        XCTAssertNil(graph.value(named: "nothing"))
        let body = graph.lastNode!.subgraphs[0]
        XCTAssertEqual(body.value(named: "t")?.producer?.name, "inner")
        XCTAssertNil(body.value(named: "x"), "an enclosing graph's values are its own")

        XCTAssertEqual(graph.node(named: "add")?.opType, "Add")
        XCTAssertNil(graph.node(named: "inner"), "a subgraph's nodes are its own")
        XCTAssertTrue(body.node(named: "inner") === body.firstNode)
        XCTAssertNil(graph.node(named: "y"), "nodes by their name, not their outputs'")

        // Renamed values are found under their new name at once.
        graph.value(named: "a")!.name = "renamed"
        XCTAssertNil(graph.value(named: "a"))
        XCTAssertEqual(graph.value(named: "renamed")?.producer?.name, "neg")
        // An erased node's output is not in the graph any more.
        let ifNode = graph.node(named: "if")!
        try graph.erase(ifNode)
        XCTAssertNil(graph.value(named: "z"))
        XCTAssertNil(graph.node(named: "if"))
    }

    func testRemovingAnOutputMovesTheLaterOnesUp() throws {
        let (model, graph) = try model()
        let y = graph.value(named: "y")!, a = graph.value(named: "a")!
        XCTAssertEqual(graph.outputs.map(\.value.name), ["y", "a", "y"])
        XCTAssertEqual(y.graphOutputCount, 2)
        try graph.setOutputInfo(2, ValueInfo(type: .tensor(.float, [.value(1)])))
        try graph.removeOutput(at: 0)
        XCTAssertEqual(graph.outputs.map(\.value.name), ["a", "y"])
        XCTAssertNotNil(graph.outputs[1].info.type, "each output keeps its declared information")
        XCTAssertEqual(y.graphOutputCount, 1)
        XCTAssertEqual(graph.outputPositions(of: y), [1])
        XCTAssertEqual(graph.outputPositions(of: a), [0])
        try model.verify()
        try graph.removeOutput(at: 0)
        XCTAssertFalse(a.isGraphOutput)
        XCTAssertEqual(graph.outputPositions(of: y), [0])
        // Once y is no output either, nothing reads y and then a: both nodes can go.
        try graph.removeOutput(at: 0)
        XCTAssertTrue(graph.outputs.isEmpty)
        try graph.erase(graph.node(named: "add")!)
        try graph.erase(graph.node(named: "neg")!)
        try model.verify()
    }

    func testRemovingAnUnusedInputDetachesIt() throws {
        let (model, graph) = try model()
        let o = graph.value(named: "o")!
        XCTAssertEqual(graph.initializerCount, 2)
        try graph.removeInput(o)
        XCTAssertEqual(graph.inputs.map(\.name), ["x"])
        XCTAssertEqual(graph.initializers.map(\.name), ["w"], "the input's initializer goes with it")
        XCTAssertEqual(o.definition, .detached)
        XCTAssertNil(o.graph)
        try model.verify()
        // A plain input, once nothing reads it.
        let spare = graph.addInput(name: "spare", info: ValueInfo(type: nil))
        try graph.removeInput(spare)
        XCTAssertEqual(graph.inputs.map(\.name), ["x"])
        XCTAssertNil(spare.graph)
        try model.verify()
        // Removed once, it is not an input any more.
        XCTAssertThrowsError(try graph.removeInput(spare)) { error in
            XCTAssertEqual((error as? GraphEditError)?.reason, .notAnInput)
        }
    }
}
