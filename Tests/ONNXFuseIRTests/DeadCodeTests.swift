import XCTest
import ONNXFuseIR

/// `Model.removeDeadCode()`: what nothing reads goes, in every graph; what may have effects,
/// or can be overridden, or is read by opaque parts of the model, stays.
final class DeadCodeTests: XCTestCase {
    private let float2 = ValueInfo(type: .tensor(.float, [.value(2)]))

    private func emptyModel() -> (Model, Graph, Value) {
        let graph = Graph(name: "main")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        return (model, graph, graph.addInput(name: "x", info: float2))
    }

    private func constant(_ graph: Graph, _ name: String) -> Value {
        graph.addInitializer(name: name, tensor: Tensor(dataType: .float, dims: [2], values: [Float(1), 2]))
    }

    @discardableResult
    private func node(_ graph: Graph, _ op: String, _ inputs: [Value?], _ output: String, domain: String? = nil,
                      attributes: [Attribute] = []) throws -> Node {
        let node = Node(opType: op, domain: domain, name: output, inputs: inputs, outputNames: [output], attributes: attributes)
        try graph.append(node)
        return node
    }

    private func names(_ graph: Graph) -> [String] { graph.nodes.map { $0.name ?? "" } }

    func testADeadChainGoesFromItsEndWithItsInitializers() throws {
        let (model, graph, x) = emptyModel()
        let w = constant(graph, "w"), unusedFromTheStart = constant(graph, "spare")
        let kept = try node(graph, "Relu", [x], "kept")
        try graph.addOutput(kept.outputs[0]!, info: float2)
        let a = try node(graph, "Mul", [x, w], "a")
        let b = try node(graph, "Neg", [a.outputs[0]], "b", domain: "ai.onnx")
        try node(graph, "Abs", [b.outputs[0]], "c")
        let result = model.removeDeadCode()
        XCTAssertEqual(result.nodes, 3)
        XCTAssertEqual(result.initializers, 2)
        XCTAssertEqual(names(graph), ["kept"])
        XCTAssertTrue(graph.initializers.isEmpty)
        XCTAssertNil(w.graph)
        XCTAssertNil(unusedFromTheStart.graph)
        try model.verify()
        XCTAssertTrue(model.removeDeadCode() == (0, 0), "nothing left to remove")
    }

    func testNodesOfOtherDomainsStayAndSoDoesWhatTheyRead() throws {
        let (model, graph, x) = emptyModel()
        let w = constant(graph, "w")
        let a = try node(graph, "Mul", [x, w], "a")
        try node(graph, "Print", [a.outputs[0]], "custom", domain: "com.example")
        try node(graph, "Normalizer", [x], "ml", domain: "ai.onnx.ml")
        XCTAssertTrue(model.removeDeadCode() == (1, 0))
        XCTAssertEqual(names(graph), ["a", "custom"], "the ONNX-ML node goes, the custom one and what it reads stay")
        try model.verify()
    }

    func testWhatIsReadOrIsAGraphOutputStays() throws {
        let (model, graph, x) = emptyModel()
        let two = Node(opType: "Split", name: "split", inputs: [x], outputNames: ["s0", "s1", nil])
        try graph.append(two)
        try graph.addOutput(two.outputs[1]!, info: float2)  // s0 is unused, s1 is not: the node stays
        let w = constant(graph, "w")
        try graph.addOutput(w, info: float2)  // an initializer that is a graph output
        let o = graph.addInput(name: "o", info: float2)
        try graph.setInitializer(Tensor(dataType: .float, dims: [2], values: [Float(3), 4]), forInput: o)
        let noOutputs = Node(opType: "Identity", name: "nothing", inputs: [x], outputNames: [])
        try graph.append(noOutputs)
        XCTAssertTrue(model.removeDeadCode() == (1, 0))
        XCTAssertEqual(names(graph), ["split"], "a node without outputs computes nothing")
        XCTAssertEqual(graph.initializers.map(\.name), ["w", "o"], "a graph output and an overridable input stay")
        try model.verify()
    }

    /// x → a → If(then: t = Neg(a), unused; out = Abs(x)) → y; the branch's dead Neg goes,
    /// then a, which only it read.
    func testAValueReadOnlyByADeadNodeOfABranchGoesWithIt() throws {
        let (model, graph, x) = emptyModel()
        let w = constant(graph, "w")
        let a = try node(graph, "Mul", [x, w], "a")
        let branch = Graph(name: "then")
        try node(branch, "Neg", [a.outputs[0]], "t")
        let out = try node(branch, "Abs", [x], "out")
        try branch.addOutput(out.outputs[0]!, info: float2)
        let ifNode = try node(graph, "If", [x], "y", attributes: [Attribute(name: "then_branch", value: .graph(branch))])
        try graph.addOutput(ifNode.outputs[0]!, info: float2)
        XCTAssertTrue(model.removeDeadCode() == (2, 1))
        XCTAssertEqual(names(graph), ["y"])
        XCTAssertEqual(names(branch), ["out"])
        try model.verify()
    }

    /// A value of a branch read only by a nested branch's output stays: the nested output
    /// is a use (recorded on the value itself, as every read from a subgraph is).
    func testAValueReadFromANestedBranchStays() throws {
        let (model, graph, x) = emptyModel()
        let branch = Graph(name: "outer-branch")
        let v = try node(branch, "Neg", [x], "v")
        let nested = Graph(name: "inner-branch")
        let n = try node(nested, "Abs", [v.outputs[0]], "n")
        try nested.addOutput(n.outputs[0]!, info: float2)
        let innerIf = try node(branch, "If", [x], "inner-y", attributes: [Attribute(name: "then_branch", value: .graph(nested))])
        try branch.addOutput(innerIf.outputs[0]!, info: float2)
        let ifNode = try node(graph, "If", [x], "y", attributes: [Attribute(name: "then_branch", value: .graph(branch))])
        try graph.addOutput(ifNode.outputs[0]!, info: float2)
        let before = irState([model])
        XCTAssertTrue(model.removeDeadCode() == (0, 0))
        XCTAssertEqual(irState([model]), before)
        try model.verify()
    }

    func testADeadIfGoesUnlessItsBranchesHoldOtherDomains() throws {
        let (model, graph, x) = emptyModel()
        let w = constant(graph, "w"), v = constant(graph, "v")
        // A dead If of ONNX nodes only: it goes, with w, which only its branch read, and with
        // v, which its branch returned (the output counted as a use of v).
        let pure = Graph(name: "pure")
        let inner = try node(pure, "Mul", [x, w], "inner")
        try pure.addOutput(inner.outputs[0]!, info: float2)
        try pure.addOutput(v, info: float2)
        try node(graph, "If", [x], "dead-if", attributes: [Attribute(name: "then_branch", value: .graph(pure))])
        // A dead If whose branch calls a custom operator, deep down: it stays.
        let deep = Graph(name: "deep")
        let custom = try node(deep, "Print", [x], "print", domain: "com.example")
        try deep.addOutput(custom.outputs[0]!, info: float2)
        let middle = Graph(name: "middle")
        let loop = try node(middle, "Loop", [], "loop", attributes: [Attribute(name: "body", value: .graph(deep))])
        try middle.addOutput(loop.outputs[0]!, info: float2)
        try node(graph, "If", [x], "effects", attributes: [Attribute(name: "else_branch", value: .graph(middle))])
        XCTAssertTrue(model.removeDeadCode() == (1, 2))
        XCTAssertEqual(names(graph), ["effects"])
        XCTAssertTrue(graph.initializers.isEmpty)
        try model.verify()
    }

    func testInitializersOfSubgraphsGoTooButTrainingKeepsTheMainGraphs() throws {
        let (model, graph, x) = emptyModel()
        _ = constant(graph, "main-only")
        let branch = Graph(name: "then")
        _ = constant(branch, "branch-only")
        let out = try node(branch, "Abs", [x], "out")
        try branch.addOutput(out.outputs[0]!, info: float2)
        let ifNode = try node(graph, "If", [x], "y", attributes: [Attribute(name: "then_branch", value: .graph(branch))])
        try graph.addOutput(ifNode.outputs[0]!, info: float2)
        model.opaqueReferences.hasTrainingInfo = true
        XCTAssertTrue(model.removeDeadCode() == (0, 1))
        XCTAssertEqual(graph.initializers.map(\.name), ["main-only"], "training graphs may read it")
        XCTAssertTrue(branch.initializers.isEmpty)
        model.opaqueReferences.hasTrainingInfo = false
        XCTAssertTrue(model.removeDeadCode() == (0, 1))
        try model.verify()
    }
}
