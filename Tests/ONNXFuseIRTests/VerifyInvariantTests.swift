import XCTest
@testable import ONNXFuseIR

/// Broken invariants `Graph.verify()` must catch, however it keeps its counts.
final class VerifyInvariantTests: XCTestCase {
    func floatInput(_ graph: Graph, _ name: String) -> Value {
        graph.addInput(name: name, info: ValueInfo(type: .tensor(.float, [.value(2)])))
    }

    /// Takes the last use out of `value`'s list and count: the node reads the value, the list
    /// does not say so.
    func unlinkLastUse(of value: Value) {
        let first = value.firstUse!
        let last = first.link.previous!
        let before = last.link.previous!
        before.link.next = nil
        first.link.previous = before
        last.link = UseLink()
        value.useCount -= 1
    }

    /// A value with many readers that lost one use from its list.
    func testAReadMissingFromALongUseListIsCaught() throws {
        let graph = Graph(name: "g")
        let x = floatInput(graph, "x")
        for index in 0..<100 { try graph.append(Node(opType: "Relu", inputs: [x], outputNames: ["r\(index)"])) }
        XCTAssertNoThrow(try graph.verify())
        unlinkLastUse(of: x)
        XCTAssertEqual(x.uses.count, 99)
        XCTAssertEqual(Array(x.uses).count, 99)
        XCTAssertThrowsError(try graph.verify(), "a read that the use list lacks is not caught")
    }

    /// The same with few readers: caught too.
    func testAReadMissingFromAShortUseListIsCaught() throws {
        let graph = Graph(name: "g")
        let x = floatInput(graph, "x")
        for index in 0..<3 { try graph.append(Node(opType: "Relu", inputs: [x], outputNames: ["r\(index)"])) }
        unlinkLastUse(of: x)
        XCTAssertThrowsError(try graph.verify())
    }

    /// A value of model A read by a node of another graph (model B): A's value lists a use that
    /// no node of A makes.
    func testAUseFromANodeOfAnotherGraphIsCaught() throws {
        let graphA = Graph(name: "a")
        let x = floatInput(graphA, "x")
        try graphA.append(Node(opType: "Relu", inputs: [x], outputNames: ["r"]))
        let graphB = Graph(name: "b")
        try graphB.append(Node(opType: "Relu", inputs: [x], outputNames: ["s"]))
        XCTAssertEqual(x.uses.count, 2)
        XCTAssertThrowsError(try graphA.verify(), "a use from a node outside the graph is not caught")
    }

    /// Duplicate uses and a wrong graph output count.
    func testDuplicateUseAndOutputCount() throws {
        let graph = Graph(name: "g")
        let x = floatInput(graph, "x")
        let relu = Node(opType: "Relu", inputs: [x], outputNames: ["r"])
        try graph.append(relu)
        try graph.addOutput(relu.outputs[0]!, info: ValueInfo(type: nil))
        let only = x.firstUse!
        only.link.next = only   // the list goes round: its one use listed again and again
        XCTAssertThrowsError(try graph.verify())
        only.link.next = nil
        XCTAssertNoThrow(try graph.verify())
        x.useCount = 2   // a count the list does not hold
        XCTAssertThrowsError(try graph.verify())
        x.useCount = 1
        relu.outputs[0]!.graphOutputCount = 2
        XCTAssertThrowsError(try graph.verify())
    }
}
