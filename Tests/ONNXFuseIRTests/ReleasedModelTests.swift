import XCTest
@testable import ONNXFuseIR

/// Nodes, values, uses and graphs a caller keeps after the model that held them is released:
/// their back-references are unowned, so the IR clears them when what they name goes away, and
/// every one reads as detached instead of reading freed memory.
final class ReleasedModelTests: XCTestCase {
    /// What a caller kept of a model: `x → Relu → r, Add(r, w) → a, If(x; then: Neg(a), else:
    /// Neg(a)) → y, Identity(y) → z`: nodes, values, uses and a branch, but not the Identity.
    private struct Kept {
        let relu: Node
        let ifNode: Node
        let thenBranch: Graph
        let inner: Node
        let input: Value
        let weight: Value
        let reluOutput: Value
        /// The Identity's output: its producer is not kept.
        let identityOutput: Value
        let uses: [Use]
        let graph: Graph
    }

    /// Builds the model, keeps parts of it, and lets the model go.
    private func keepPartsOfAReleasedModel(keepingGraph: Bool = false) throws -> (kept: Kept, model: Weak<Model>) {
        var model: Model? = nil
        let kept: Kept = try {
            let graph = Graph(name: "main")
            let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(2)])))
            let w = graph.addInitializer(name: "w", tensor: Tensor(dataType: .float, dims: [2], values: [Float(1), 2]))
            let relu = Node(opType: "Relu", name: "relu", inputs: [x], outputNames: ["r"])
            try graph.append(relu)
            let add = Node(opType: "Add", name: "add", inputs: [relu.outputs[0], w], outputNames: ["a"])
            try graph.append(add)
            let branches = try ["then", "else"].map { name -> (Graph, Node) in
                let body = Graph(name: name)
                let neg = Node(opType: "Neg", name: "\(name)-neg", inputs: [add.outputs[0]], outputNames: ["\(name)-y"])
                try body.append(neg)
                try body.addOutput(neg.outputs[0]!, info: ValueInfo(type: nil))
                return (body, neg)
            }
            let ifNode = Node(opType: "If", name: "if", inputs: [x], outputNames: ["y"],
                              attributes: [Attribute(name: "then_branch", value: .graph(branches[0].0)),
                                           Attribute(name: "else_branch", value: .graph(branches[1].0))])
            try graph.append(ifNode)
            let identity = Node(opType: "Identity", name: "identity", inputs: [ifNode.outputs[0]], outputNames: ["z"])
            try graph.append(identity)
            try graph.addOutput(identity.outputs[0]!, info: ValueInfo(type: nil))
            model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
            try graph.verify()
            return Kept(relu: relu, ifNode: ifNode, thenBranch: branches[0].0, inner: branches[0].1, input: x, weight: w,
                        reluOutput: relu.outputs[0]!, identityOutput: identity.outputs[0]!, uses: relu.outputs[0]!.uses,
                        graph: keepingGraph ? graph : Graph(name: "unrelated"))
        }()
        let weak = Weak(model)
        model = nil
        return (kept, weak)
    }

    /// A weak reference, to see that a model is really gone.
    private final class Weak<T: AnyObject> {
        weak var object: T?
        init(_ object: T?) { self.object = object }
    }

    func testNodesValuesAndUsesKeptAfterTheModelReadAsDetached() throws {
        let (kept, model) = try keepPartsOfAReleasedModel()
        XCTAssertNil(model.object, "the model is released")
        // Graphs allocated now may reuse the freed memory: a stale reference would name them.
        let others = (0..<64).map { Graph(name: "other-\($0)") }
        XCTAssertNil(kept.relu.graph)
        XCTAssertNil(kept.relu.previousNode)
        XCTAssertNil(kept.relu.nextNode)
        XCTAssertEqual(kept.relu.opType, "Relu")
        XCTAssertNil(kept.input.graph)
        XCTAssertNil(kept.weight.graph)
        XCTAssertEqual(kept.weight.initializer?.dims, [2])
        // The kept Relu still defines its output; the Identity was freed, and its output has no producer.
        XCTAssertTrue(kept.reluOutput.producer === kept.relu)
        XCTAssertNil(kept.reluOutput.graph)
        XCTAssertNil(kept.identityOutput.producer)
        XCTAssertNil(kept.identityOutput.graph)
        XCTAssertEqual(kept.identityOutput.definition, .detached)
        XCTAssertTrue(kept.ifNode.outputs[0]!.producer === kept.ifNode)
        // A use holds its node: the Add it names is alive, in no graph.
        XCTAssertEqual(kept.uses.map { "\($0.node.opType) \($0.inputIndex)" }, ["Add 0"])
        XCTAssertNil(kept.uses[0].node.graph)
        XCTAssertEqual(others.count, 64)
    }

    func testASubgraphKeptAfterItsNodeAndModelHasNoParentOrModel() throws {
        let (kept, model) = try keepPartsOfAReleasedModel()
        XCTAssertNil(model.object)
        // The If node is kept, so its branch still names it; below, one whose node is not.
        XCTAssertTrue(kept.thenBranch.parentNode === kept.ifNode, "the If is alive while kept")
        XCTAssertNil(kept.thenBranch.model, "the model is gone")
        XCTAssertNil(kept.ifNode.graph)
        XCTAssertTrue(kept.inner.graph === kept.thenBranch, "the branch is alive, and holds its node")

        var ifNode: Node? = Node(opType: "If", inputs: [], outputNames: ["z"],
                                 attributes: [Attribute(name: "then_branch", value: .graph(Graph(name: "t")))])
        let branch = ifNode!.subgraphs[0]
        XCTAssertTrue(branch.parentNode === ifNode)
        ifNode = nil
        XCTAssertNil(branch.parentNode, "the node holding it was freed")
        XCTAssertNil(branch.parentGraph)
    }

    func testAGraphKeptAfterItsModelOrReplacedInItNamesNoModel() throws {
        let (kept, model) = try keepPartsOfAReleasedModel(keepingGraph: true)
        XCTAssertNil(model.object)
        XCTAssertNil(kept.graph.model)
        XCTAssertTrue(kept.relu.graph === kept.graph, "the graph is alive, and holds its nodes")
        XCTAssertTrue(kept.input.graph === kept.graph)

        let first = Graph(name: "first")
        var replaced: Model? = Model(irVersion: 8, opsetImports: [], graph: first)
        replaced!.graph = Graph(name: "second")
        XCTAssertNil(first.model, "a graph the model let go of")
        let second = replaced!.graph
        XCTAssertTrue(second.model === replaced)
        replaced = nil
        XCTAssertNil(second.model)
    }

    /// A value whose producer was freed outside any graph (built, never inserted) has none.
    func testAnOutputOfAFreedDetachedNodeHasNoProducer() {
        var node: Node? = Node(opType: "Relu", inputs: [Value.detached(name: "x")], outputNames: ["y"])
        let output = node!.outputs[0]!
        node = nil
        XCTAssertNil(output.producer)
        XCTAssertNil(output.graph)
    }
}
