import ONNXFuseIR
import XCTest
@testable import ONNXFuseRules

/// Comparisons in a tensor's own element type, elementwise `< <= > >=`, `all`, `any`, `isclose`
/// and `allclose`.
final class ComparisonTests: XCTestCase {
    private let table = FunctionTable.builtins

    func float32(_ values: [Double], shape: [Int]? = nil) -> EvalValue {
        .tensor(NDArray(shape: shape ?? [values.count], values: values.map { Double(Float($0)) }), .float)
    }

    func bools(_ flags: [Bool]) -> EvalValue { .tensor(NDArray(shape: [flags.count], values: flags.map { $0 ? 1 : 0 }), .bool) }

    func testAFloat32ConstantEqualsTheLiteralItWasWrittenFrom() throws {
        // Float(1e-5) is 9.99999974737875e-06 in float64: compared in float32 it is 1e-5.
        XCTAssertEqual(try apply("==", float32([1e-5]), .real(1e-5)), .boolean(true))
        XCTAssertEqual(try apply("!=", float32([1e-5]), .real(1e-5)), .boolean(false))
        XCTAssertEqual(try apply("==", float32([0.044715]), .real(0.044715)), .boolean(true))
        XCTAssertEqual(try apply("==", float32([0.1, 0.2]), .list([.real(0.1), .real(0.2)])), .boolean(true))
        // A double keeps its precision: float32's 1e-5 is not double's.
        XCTAssertEqual(try apply("==", .tensor(NDArray(shape: [1], values: [Double(Float(1e-5))]), .double), .real(1e-5)), .boolean(false))
        XCTAssertEqual(try apply("<", float32([1e-5]), .real(1e-5)), bools([false]))
    }

    func testOrderingIsElementwiseOnTensors() throws {
        XCTAssertEqual(try apply("<", float32([1, 2, 3]), .integer(2)), bools([true, false, false]))
        XCTAssertEqual(try apply(">=", .integer(2), float32([1, 2, 3])), bools([true, true, false]))
        XCTAssertEqual(try apply("<=", float32([1, 2], shape: [2, 1]), float32([1, 2])).description, "tensor<bool>[2, 2] [1, 1, 0, 1]")
        XCTAssertEqual(try apply(">", float32([.nan]), .integer(0)), bools([false]))
        XCTAssertThrowsError(try apply("<", float32([1]), .tensor(NDArray(shape: [1], values: [1]), .double))) {
            XCTAssertEqual("\($0)", "the expression mixes float and double tensors; cast one of them")
        }
        // As a condition (and with && and ||), a bool tensor holds when every element does.
        XCTAssertEqual(try apply("&&", bools([true, true]), .boolean(true)), .boolean(true))
        XCTAssertTrue(try bools([true, true]).asBoolean(for: "where"))
        XCTAssertFalse(try bools([true, false]).asBoolean(for: "where"))
    }

    func testAllAndAny() throws {
        XCTAssertEqual(try table.call("all", [bools([true, true])]), .boolean(true))
        XCTAssertEqual(try table.call("all", [bools([true, false])]), .boolean(false))
        XCTAssertEqual(try table.call("any", [bools([false, true])]), .boolean(true))
        XCTAssertEqual(try table.call("any", [bools([])]), .boolean(false))
        XCTAssertEqual(try table.call("all", [bools([])]), .boolean(true))
        XCTAssertEqual(try table.call("any", [.list([.boolean(false), .boolean(true)])]), .boolean(true))
        XCTAssertEqual(try table.call("all", [float32([1, 0.5])]), .boolean(true))
        XCTAssertThrowsError(try table.call("all", [.string("x")])) {
            XCTAssertEqual("\($0)", "all takes a boolean, a tensor or a list of booleans, not a string")
        }
    }

    func testIsCloseAndAllClose() throws {
        // The Gelu constant, stored as float32, against the literal.
        XCTAssertEqual(try table.call("allclose", [float32([0.044715]), .real(0.044715)]), .boolean(true))
        XCTAssertEqual(try table.call("allclose", [float32([0.7978845608]), .real(0.79788), .real(1e-3), .real(0)]), .boolean(true))
        XCTAssertEqual(try table.call("allclose", [float32([0.7978845608]), .real(0.7978)]), .boolean(false))
        XCTAssertEqual(try table.call("isclose", [float32([1, 2, .nan]), float32([1, 2.5, .nan]), .real(0), .real(0.1)]),
                       bools([true, false, false]))
        XCTAssertThrowsError(try table.call("allclose", [float32([1]), .real(1), .real(-1)])) {
            XCTAssertEqual("\($0)", "allclose: rtol and atol must not be negative")
        }
    }
}
