import Dispatch
import XCTest
import ONNXFuseIR

/// Operator numbers: one per op type and domain, the default domain however written, and a
/// node's number follows its op type and domain when they change.
final class OperatorIDTests: XCTestCase {
    func testOneNumberPerOperator() {
        let conv = OperatorID(opType: "Conv", domain: nil)
        XCTAssertEqual(conv, OperatorID(opType: "Conv", domain: ""))
        XCTAssertEqual(conv, OperatorID(opType: "Conv", domain: "ai.onnx"))
        XCTAssertNotEqual(conv, OperatorID(opType: "Conv", domain: "com.microsoft"))
        XCTAssertNotEqual(conv, OperatorID(opType: "conv", domain: nil))
        XCTAssertEqual(OperatorID(opType: "Conv", domain: "com.microsoft"), OperatorID(opType: "Conv", domain: "com.microsoft"))
        // A domain and op type that join into the same text are two operators.
        XCTAssertNotEqual(OperatorID(opType: "c", domain: "a.b"), OperatorID(opType: "b.c", domain: "a"))
    }

    func testNumbersAreSmallAndDistinct() {
        let ids = (0..<50).map { OperatorID(opType: "MadeUp\($0)", domain: "test.numbers") }
        XCTAssertEqual(Set(ids).count, 50)
        XCTAssertEqual(Set(ids.map(\.index)).count, 50)
        XCTAssertTrue(ids.allSatisfy { $0.index >= 0 })
    }

    func testNodeFollowsItsOperator() {
        let node = Node(opType: "Relu", inputs: [], outputNames: ["r"])
        XCTAssertEqual(node.operatorID, OperatorID(opType: "Relu", domain: nil))
        node.opType = "Sigmoid"
        XCTAssertEqual(node.operatorID, OperatorID(opType: "Sigmoid", domain: ""))
        node.domain = "custom"
        XCTAssertEqual(node.operatorID, OperatorID(opType: "Sigmoid", domain: "custom"))
        node.domain = "ai.onnx"
        XCTAssertEqual(node.operatorID, OperatorID(opType: "Sigmoid", domain: nil))
    }

    /// Many threads naming the same new operators get the same numbers.
    func testConcurrentNaming() {
        nonisolated(unsafe) let results = UnsafeMutableBufferPointer<Int>.allocate(capacity: 8 * 20)
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for op in 0..<20 { results[thread * 20 + op] = OperatorID(opType: "Concurrent\(op)", domain: "test.threads").index }
        }
        for thread in 1..<8 {
            XCTAssertEqual(Array(results[(thread * 20)..<(thread * 20 + 20)]), Array(results[0..<20]))
        }
        XCTAssertEqual(Set(results[0..<20]).count, 20)
    }
}
