import XCTest
@testable import ONNXFuseIR

/// A node a caller keeps after its graph is released leaves its inputs' use lists with the
/// graph, as an erased node does: changing its inputs, freeing it or inserting it again keeps
/// every list exact (a red-team pass found each of these broken while it stayed listed).
final class KeptNodeUseListTests: XCTestCase {
    /// x → Relu → r (graph output); returns the Relu and x, the model released.
    private func keptRelu() throws -> (node: Node, input: Value) {
        let graph = Graph(name: "main")
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(2)])))
        let relu = Node(opType: "Relu", name: "relu", inputs: [x], outputNames: ["r"])
        try graph.append(relu)
        try graph.addOutput(relu.outputs[0]!, info: ValueInfo(type: nil))
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        XCTAssertTrue(graph.model === model)
        XCTAssertEqual(x.uses.count, 1)
        // The model and its graph are freed on return.
        return (relu, x)
    }

    /// The kept node reads nothing any more: its old input must not list it.
    func testAKeptNodeRewiredAfterItsGraphIsFreedLeavesNoUseBehind() throws {
        let (node, input) = try keptRelu()
        XCTAssertNil(node.graph)
        try node.setInput(0, to: nil)
        XCTAssertEqual(input.uses.count, 0, "x lists a node that no longer reads it")
    }

    /// The same, with the node then freed: x's list would name freed memory.
    func testAKeptNodeRewiredAndFreedLeavesNoFreedNodeInAUseList() throws {
        var (node, input): (Node?, Value) = try keptRelu()
        try node!.setInput(0, to: nil)
        node = nil
        // Reads the list's slots (a freed node under AddressSanitizer).
        XCTAssertEqual(input.uses.map { $0.node.opType }, [])
    }

    /// Rewired to another value, the freed node's deinit removes a use the other never had.
    func testAKeptNodeRewiredToAnotherValueCanBeFreed() throws {
        var (node, _): (Node?, Value) = try keptRelu()
        let other = Value.detached(name: "other")
        try node!.setInput(0, to: other)
        node = nil  // trapped while the node stayed listed: "value 'other' has no use"
        XCTAssertEqual(other.uses.count, 0)
    }

    /// Inserted into a new graph, it is listed twice in x's list. (`append` refuses it: x is in
    /// no graph any more; the engine's unchecked insertion must still keep the list exact.)
    func testAKeptNodeInsertedIntoAnotherGraphIsListedOnce() throws {
        let (node, input) = try keptRelu()
        let graph = Graph(name: "again")
        XCTAssertThrowsError(try graph.append(node))
        XCTAssertEqual(input.uses.count, 0)
        graph.appendUnchecked(node)
        XCTAssertEqual(input.uses.count, 1)
    }
}
