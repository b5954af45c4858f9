import XCTest
@testable import ONNXFuseIR

/// A node of a subgraph that is discarded (its If erased, or its attribute replaced) leaves the
/// subgraph through `dropAllUses`, which detaches its outputs as `erase` does: a node a caller
/// keeps names no freed subgraph through them (a red-team pass found them still naming it).
final class DiscardedSubgraphTests: XCTestCase {
    /// x → If(then: Neg(x) → t-y); returns the If, the graph and the branch's Neg.
    private func ifWithBranch() throws -> (graph: Graph, ifNode: Node, inner: Node) {
        let graph = Graph(name: "main")
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(2)])))
        let body = Graph(name: "then")
        let neg = Node(opType: "Neg", name: "t-neg", inputs: [x], outputNames: ["t-y"])
        try body.append(neg)
        try body.addOutput(neg.outputs[0]!, info: ValueInfo(type: nil))
        let ifNode = Node(opType: "If", name: "if", inputs: [x], outputNames: ["y"],
                          attributes: [Attribute(name: "then_branch", value: .graph(body))])
        try graph.append(ifNode)
        return (graph, ifNode, neg)
    }

    func testAnInnerNodeKeptAfterItsIfIsErasedAndFreedNamesNoGraph() throws {
        var (graph, ifNode, inner): (Graph, Node?, Node) = try ifWithBranch()
        try graph.erase(ifNode!)
        ifNode = nil  // the branch goes with it
        XCTAssertNil(inner.graph)
        // Trapped while the outputs named the freed branch: "Attempted to read an unowned reference ...".
        XCTAssertNil(inner.outputs[0]!.graph)
    }

    /// A branch whose output is a value of the graph around it counts as a use of that value:
    /// erasing the If, or replacing the branch, gives the use back (the value stayed counted as
    /// a graph output: never unused again, and `verify` failed).
    func testADiscardedBranchNoLongerCountsAsAnOutputOfAnOuterValue() throws {
        for replaceAttribute in [false, true] {
            let graph = Graph(name: "main")
            let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
            let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(2)])))
            let w = graph.addInitializer(name: "w", tensor: Tensor(dataType: .float, dims: [1], values: [Float(1)]))
            let body = Graph(name: "then")
            try body.addOutput(w, info: ValueInfo(type: nil))
            let ifNode = Node(opType: "If", name: "if", inputs: [x], outputNames: ["y"],
                              attributes: [Attribute(name: "then_branch", value: .graph(body))])
            try graph.append(ifNode)
            XCTAssertEqual(w.graphOutputCount, 1)
            if replaceAttribute {
                ifNode.attributes = [Attribute(name: "then_branch", value: .graph(Graph(name: "other")))]
            } else {
                try graph.erase(ifNode)
            }
            XCTAssertTrue(w.isUnused)
            XCTAssertTrue(body.outputs.isEmpty, "the discarded branch is emptied")
            try model.verify()
            try graph.removeInitializer(w)
        }
    }

    func testAnInnerNodeKeptAfterItsBranchIsReplacedNamesNoGraph() throws {
        let (_, ifNode, inner) = try ifWithBranch()
        ifNode.attributes = [Attribute(name: "then_branch", value: .graph(Graph(name: "other")))]
        XCTAssertNil(inner.graph)
        XCTAssertNil(inner.outputs[0]!.graph)
    }
}
