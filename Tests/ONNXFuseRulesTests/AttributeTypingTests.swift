import XCTest
import ONNXFuseIR
@testable import ONNXFuseRules

/// `name = value` in replace takes the type the operator's schema declares.
final class AttributeTypingTests: XCTestCase {
    let here = Expression.name("v", SourceLocation(file: "t", line: 1, column: 1))

    func typed(_ value: EvalValue, _ op: String, _ name: String) throws -> AttributeValue {
        let target = AttributeTarget(opType: op, domain: "", name: name)
        let declared = try XCTUnwrap(target.declarations?.last)
        return try target.value(of: value, as: declared.type, expression: here)
    }

    func testValuesBecomeTheDeclaredType() throws {
        let one = EvalValue.tensor(NDArray(shape: [1], values: [1e-5]), .float)
        guard case .float(let epsilon) = try typed(one, "LayerNormalization", "epsilon") else { return XCTFail() }
        XCTAssertEqual(epsilon, 1e-5)
        guard case .float(let alpha) = try typed(.integer(2), "LeakyRelu", "alpha") else { return XCTFail() }
        XCTAssertEqual(alpha, 2)
        guard case .int(let axis) = try typed(.tensor(NDArray(shape: [], values: [-1]), .int64), "Softmax", "axis") else { return XCTFail() }
        XCTAssertEqual(axis, -1)
        guard case .int(let to) = try typed(.dataType(.double), "Cast", "to") else { return XCTFail() }
        XCTAssertEqual(to, 11)
        guard case .ints(let perm) = try typed(.tensor(NDArray(shape: [3], values: [0, 2, 1]), .int64), "Transpose", "perm") else {
            return XCTFail()
        }
        XCTAssertEqual(perm, [0, 2, 1])
        guard case .ints(let single) = try typed(.integer(1), "ReduceSum", "axes") else { return XCTFail() }
        XCTAssertEqual(single, [1])
        guard case .string(let mode) = try typed(.string("tanh"), "Gelu", "approximate") else { return XCTFail() }
        XCTAssertEqual(String(decoding: mode, as: UTF8.self), "tanh")
    }

    func testWhatDoesNotFitIsRefusedWithTheReason() throws {
        XCTAssertThrowsError(try typed(.tensor(NDArray(shape: [3], values: [1, 2, 3]), .float), "LayerNormalization", "epsilon")) {
            XCTAssertEqual("\($0)", "LayerNormalization's attribute 'epsilon' is a FLOAT; `v` is 3 numbers")
        }
        XCTAssertThrowsError(try typed(.real(0.5), "Softmax", "axis")) {
            XCTAssertEqual("\($0)", "Softmax's attribute 'axis' is an INT; `v` is 0.5, not an integer")
        }
        XCTAssertThrowsError(try typed(.tensor(NDArray(shape: [2, 2], values: [0, 1, 2, 3]), .int64), "Transpose", "perm")) {
            XCTAssertEqual("\($0)", "Transpose's attribute 'perm' is an INTS list; `v` is a tensor of shape [2, 2]")
        }
        XCTAssertThrowsError(try typed(.integer(1), "Gelu", "approximate")) {
            XCTAssertEqual("\($0)", "Gelu's attribute 'approximate' is a STRING; `v` is an integer")
        }
    }

    func testStaticProblemsAreFoundWithoutAModel() {
        let location = SourceLocation(file: "t", line: 1, column: 1)
        XCTAssertEqual(AttributeTarget(opType: "Relu", domain: "", name: "alpha").staticProblem(with: .number(0.5, integer: nil, location)),
                       "Relu has no attribute 'alpha' in any version")
        XCTAssertNil(AttributeTarget(opType: "LeakyRelu", domain: "", name: "alpha").staticProblem(with: .number(1, integer: 1, location)))
        XCTAssertNil(AttributeTarget(opType: "Custom", domain: "example", name: "anything").staticProblem(with: .string("x", location)))
        // Not a literal: known only at a match.
        XCTAssertNil(AttributeTarget(opType: "Softmax", domain: "", name: "axis").staticProblem(with: here))
    }
}
