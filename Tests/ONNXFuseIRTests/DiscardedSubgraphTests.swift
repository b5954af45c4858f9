import XCTest
@testable import ONNXFuseIR

/// A node of a subgraph that is discarded (its If erased, or its attribute replaced) leaves the
/// subgraph through `dropAllUses`, which detaches its outputs as `erase` does: a node a caller
/// keeps names no freed subgraph through them (a red-team pass found them still naming it).
final class DiscardedSubgraphTests: XCTestCase {
    /// x → If(then: Neg(x) → t-y); returns the If, the graph and the branch's Neg.
    private func ifWithBranch() -> (graph: Graph, ifNode: Node, inner: Node) {
        let graph = Graph(name: "main")
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(2)])))
        let body = Graph(name: "then")
        let neg = Node(opType: "Neg", name: "t-neg", inputs: [x], outputNames: ["t-y"])
        body.append(neg)
        body.addOutput(neg.outputs[0]!, info: ValueInfo(type: nil))
        let ifNode = Node(opType: "If", name: "if", inputs: [x], outputNames: ["y"],
                          attributes: [Attribute(name: "then_branch", value: .graph(body))])
        graph.append(ifNode)
        return (graph, ifNode, neg)
    }

    func testAnInnerNodeKeptAfterItsIfIsErasedAndFreedNamesNoGraph() {
        var (graph, ifNode, inner): (Graph, Node?, Node) = ifWithBranch()
        graph.erase(ifNode!)
        ifNode = nil  // the branch goes with it
        XCTAssertNil(inner.graph)
        // Trapped while the outputs named the freed branch: "Attempted to read an unowned reference ...".
        XCTAssertNil(inner.outputs[0]!.graph)
    }

    func testAnInnerNodeKeptAfterItsBranchIsReplacedNamesNoGraph() {
        let (_, ifNode, inner) = ifWithBranch()
        ifNode.attributes = [Attribute(name: "then_branch", value: .graph(Graph(name: "other")))]
        XCTAssertNil(inner.graph)
        XCTAssertNil(inner.outputs[0]!.graph)
    }
}
