import XCTest
import Foundation
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// The library's errors read as their one-line message through `localizedDescription`, where
/// Foundation's default would say "The operation could not be completed".
final class LocalizedErrorTests: XCTestCase {
    private func assertLocalized(_ error: Error, contains text: String, file: StaticString = #filePath, line: UInt = #line) {
        let message = error.localizedDescription
        XCTAssertEqual(message, "\(error)", file: file, line: line)
        XCTAssertTrue(error is any ONNXFuseError, "\(type(of: error))", file: file, line: line)
        XCTAssertTrue(message.contains(text), message, file: file, line: line)
        XCTAssertFalse(message.contains("could not be completed"), message, file: file, line: line)
    }

    func testModelFileErrorsNameTheFile() {
        XCTAssertThrowsError(try ModelFile.load(path: "/nonexistent/model.onnx")) { error in
            assertLocalized(error, contains: "/nonexistent/model.onnx")
        }
    }

    func testAChangedInputNamesTheFile() {
        let error = ModelFileError.inputChanged(file: "model.onnx", change: .truncated(from: 4096, to: 0))
        assertLocalized(error, contains: "model.onnx: the file changed since the model was loaded from it (truncated from 4096 to 0 bytes)")
    }

    func testRuleFileErrorsGiveTheirLocation() {
        XCTAssertThrowsError(try RuleFiles.rules(in: "rule broken {")) { error in
            assertLocalized(error, contains: "1:")
        }
    }

    func testInvariantErrorsSayWhatIsBroken() throws {
        let graph = Graph(name: "g")
        let node = Node(opType: "Relu", inputs: [Value.detached(name: "nowhere")], outputNames: ["y"])
        // The public `append` refuses the node (see the next test): only unchecked edits break invariants.
        graph.appendUnchecked(node)
        XCTAssertThrowsError(try graph.verify()) { error in
            assertLocalized(error, contains: "nowhere")
        }
    }

    func testGraphEditErrorsNameTheNodeAndTheValue() {
        let graph = Graph(name: "g")
        let node = Node(opType: "Relu", name: "relu", inputs: [Value.detached(name: "nowhere")], outputNames: ["y"])
        XCTAssertThrowsError(try graph.append(node)) { error in
            assertLocalized(error, contains: "cannot insert node 'relu' (Relu) into graph 'g': its input 'nowhere' is in no graph")
        }
    }
}
