import XCTest
@testable import ONNXFuseRules

/// Helpers the evaluator and function tests share for calling built-in functions.
extension XCTestCase {
    /// A list of integers.
    func list(_ integers: Int64...) -> EvalValue { .list(integers.map { .integer($0) }) }

    /// The built-in function `name(arguments)`, or a failure.
    func call(_ name: String, _ arguments: EvalValue..., file: StaticString = #filePath, line: UInt = #line) -> EvalValue {
        do {
            return try FunctionTable.builtins.call(name, arguments)
        } catch {
            XCTFail(error.message, file: file, line: line)
            return .absent
        }
    }

    /// The message of the error the built-in function `name(arguments)` throws.
    func callError(_ name: String, _ arguments: EvalValue..., file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            let value = try FunctionTable.builtins.call(name, arguments)
            XCTFail("expected an error, got \(value)", file: file, line: line)
            return ""
        } catch {
            return error.message
        }
    }
}
