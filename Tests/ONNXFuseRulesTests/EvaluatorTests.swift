import ONNXFuseIR
import XCTest
@testable import ONNXFuseRules

/// Operators and built-in functions on `EvalValue`s.
final class EvaluatorTests: XCTestCase {
    private let table = FunctionTable.builtins

    private func tensor(_ shape: [Int], _ values: [Double], _ type: DataType? = .float) -> EvalValue {
        .tensor(NDArray(shape: shape, values: values), type)
    }

    /// `lhs op rhs`, or a failure.
    private func op(_ lhs: EvalValue, _ op: String, _ rhs: EvalValue, file: StaticString = #filePath, line: UInt = #line) -> EvalValue {
        do {
            return try apply(op, lhs, rhs)
        } catch {
            XCTFail(error.message, file: file, line: line)
            return .absent
        }
    }

    /// The message of the error `lhs op rhs` throws.
    private func opError(_ lhs: EvalValue, _ op: String, _ rhs: EvalValue, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            let value = try apply(op, lhs, rhs)
            XCTFail("expected an error, got \(value)", file: file, line: line)
            return ""
        } catch {
            return error.message
        }
    }

    // MARK: Numbers

    func testIntegerArithmetic() {
        XCTAssertEqual(op(.integer(2), "+", .integer(3)), .integer(5))
        XCTAssertEqual(op(.integer(7), "-", .integer(10)), .integer(-3))
        XCTAssertEqual(op(.integer(4), "*", .integer(-5)), .integer(-20))
        XCTAssertEqual(op(.integer(6), "/", .integer(3)), .integer(2))
        XCTAssertEqual(op(.integer(-6), "/", .integer(4)), .real(-1.5))
        XCTAssertEqual(op(.integer(7), "/", .integer(2)), .real(3.5))
        XCTAssertEqual(opError(.integer(1), "/", .integer(0)), "division by zero in 1 / 0")
        XCTAssertEqual(opError(.integer(.max), "+", .integer(1)), "integer overflow in 9223372036854775807 + 1")
        XCTAssertEqual(opError(.integer(.min), "-", .integer(1)), "integer overflow in -9223372036854775808 - 1")
        XCTAssertEqual(opError(.integer(1 << 62), "*", .integer(2)), "integer overflow in 4611686018427387904 * 2")
        XCTAssertEqual(opError(.integer(.min), "/", .integer(-1)), "integer overflow in -9223372036854775808 / -1")
    }

    func testRealArithmetic() {
        XCTAssertEqual(op(.integer(2), "+", .real(0.5)), .real(2.5))
        XCTAssertEqual(op(.real(0.5), "-", .integer(2)), .real(-1.5))
        XCTAssertEqual(op(.real(1.5), "*", .real(4)), .real(6))
        XCTAssertEqual(op(.real(1), "/", .integer(4)), .real(0.25))
        XCTAssertEqual(op(.real(1), "/", .integer(0)), .real(.infinity))
        XCTAssertEqual(opError(.string("a"), "+", .integer(1)), "'+' needs numbers or tensors, got a string and an integer")
        XCTAssertEqual(opError(.list([]), "*", .integer(1)), "'*' needs numbers or tensors, got a list and an integer")
        XCTAssertEqual(opError(.boolean(true), "-", .boolean(false)), "'-' needs numbers or tensors, got a boolean and a boolean")
    }

    func testOrdering() {
        XCTAssertEqual(op(.integer(2), "<", .integer(3)), .boolean(true))
        XCTAssertEqual(op(.integer(2), "<=", .real(2)), .boolean(true))
        XCTAssertEqual(op(.integer(2), ">", .real(2)), .boolean(false))
        XCTAssertEqual(op(.real(2.5), ">=", .integer(3)), .boolean(false))
        XCTAssertEqual(op(.real(-0.5), "<", .integer(0)), .boolean(true))
        XCTAssertEqual(op(.integer(-1), "<", .real(-0.5)), .boolean(true))
        XCTAssertEqual(op(.real(.nan), "<", .integer(1)), .boolean(false))
        XCTAssertEqual(op(.real(.nan), ">=", .integer(1)), .boolean(false))
        // Exact even where doubles are not: 2^53 + 1 > 2^53; Int64.max < 2^63.
        XCTAssertEqual(op(.integer((1 << 53) + 1), ">", .real(0x1p53)), .boolean(true))
        XCTAssertEqual(op(.integer(.max), "<", .real(0x1p63)), .boolean(true))
        XCTAssertEqual(op(.integer(.min), "==", .real(-0x1p63)), .boolean(true))
        XCTAssertEqual(op(.integer(.min), ">", .real(-0x1p64)), .boolean(true))
        XCTAssertEqual(opError(.string("a"), "<", .string("b")), "'<' compares numbers, not a string and a string")
        // With a tensor, element by element (ComparisonTests).
        XCTAssertEqual(op(tensor([1], [1]), ">", .integer(0)), .tensor(NDArray(shape: [1], values: [1]), .bool))
    }

    func testEquality() {
        XCTAssertEqual(op(.integer(2), "==", .real(2)), .boolean(true))
        XCTAssertEqual(op(.integer(2), "!=", .real(2.5)), .boolean(true))
        XCTAssertEqual(op(.real(.nan), "==", .real(.nan)), .boolean(false))
        XCTAssertEqual(op(.string("NCHW"), "==", .string("NCHW")), .boolean(true))
        XCTAssertEqual(op(.boolean(true), "!=", .boolean(false)), .boolean(true))
        XCTAssertEqual(op(.dataType(.float16), "==", .dataType(.float16)), .boolean(true))
        XCTAssertEqual(op(.dataType(.float16), "==", .dataType(.bfloat16)), .boolean(false))
        // A type name equals its code (a Cast's `to`), both ways round.
        XCTAssertEqual(op(.integer(11), "==", .dataType(.double)), .boolean(true))
        XCTAssertEqual(op(.dataType(.double), "==", .integer(11)), .boolean(true))
        XCTAssertEqual(op(.integer(1), "==", .dataType(.double)), .boolean(false))
        XCTAssertEqual(op(.integer(11), "!=", .dataType(.double)), .boolean(false))
        XCTAssertEqual(op(.integer(10), "in", .list([.dataType(.float16), .dataType(.bfloat16)])), .boolean(true))
        XCTAssertEqual(op(.absent, "==", .absent), .boolean(true))
        XCTAssertEqual(op(.integer(0), "==", .absent), .boolean(false))
        XCTAssertEqual(op(.string("1"), "==", .integer(1)), .boolean(false))
        XCTAssertEqual(op(.string("1"), "!=", .integer(1)), .boolean(true))
        // Lists: item by item.
        XCTAssertEqual(op(list(1, 2), "==", .list([.integer(1), .real(2)])), .boolean(true))
        XCTAssertEqual(op(list(1, 2), "==", list(1, 2, 3)), .boolean(false))
        XCTAssertEqual(op(list(1, 2), "!=", list(2, 1)), .boolean(true))
        XCTAssertEqual(op(.list([list(1), .string("a")]), "==", .list([list(1), .string("a")])), .boolean(true))
        XCTAssertEqual(op(.list([]), "==", .list([])), .boolean(true))
        // Tensors: shape and elements (not the element type).
        XCTAssertEqual(op(tensor([2], [1, 2]), "==", tensor([2], [1, 2], .float16)), .boolean(true))
        XCTAssertEqual(op(tensor([2], [1, 2]), "==", tensor([1, 2], [1, 2])), .boolean(false))
        // A 1-D tensor and a list: item by item; any other rank is unequal.
        XCTAssertEqual(op(tensor([2], [2, 3], .int64), "==", list(2, 3)), .boolean(true))
        XCTAssertEqual(op(list(2, 3), "==", tensor([2], [2, 3], .int64)), .boolean(true))
        XCTAssertEqual(op(tensor([2], [3, 2], .int64), "==", list(2, 3)), .boolean(false))
        XCTAssertEqual(op(tensor([1, 2], [2, 3], .int64), "==", list(2, 3)), .boolean(false))
        XCTAssertEqual(op(tensor([2], [2, 3], .int64), "==", .list([.integer(2), .string("3")])), .boolean(false))
        // A tensor and a number: every element equals it.
        XCTAssertEqual(op(tensor([3], [0, 0, 0]), "==", .integer(0)), .boolean(true))
        XCTAssertEqual(op(.real(0), "==", tensor([3], [0, 0, 1])), .boolean(false))
        XCTAssertEqual(op(tensor([2], [1, 1]), "!=", .real(1)), .boolean(false))
    }

    func testMembership() {
        XCTAssertEqual(op(.integer(3), "in", list(1, 2, 3)), .boolean(true))
        XCTAssertEqual(op(.real(2), "in", list(1, 2)), .boolean(true))
        XCTAssertEqual(op(.integer(4), "in", list(1, 2)), .boolean(false))
        XCTAssertEqual(op(.integer(4), "in", .list([])), .boolean(false))
        XCTAssertEqual(op(.dataType(.float16), "in", .list([.dataType(.float), .dataType(.float16)])), .boolean(true))
        XCTAssertEqual(op(.string("SAME_UPPER"), "in", .list([.string("NOTSET"), .string("VALID")])), .boolean(false))
        XCTAssertEqual(op(list(1, 1), "in", .list([list(1), list(1, 1)])), .boolean(true))
        // A tensor is read as the flat list of its elements.
        XCTAssertEqual(op(.integer(0), "in", tensor([3], [2, 0, -1], .int64)), .boolean(true))
        XCTAssertEqual(op(.integer(0), "in", tensor([2, 2], [1, 2, 3, 4], .int64)), .boolean(false))
        XCTAssertEqual(op(.real(0.5), "in", tensor([2], [0.5, 1])), .boolean(true))
        XCTAssertEqual(opError(.integer(1), "in", .integer(1)), "'in' needs a list or a tensor on its right, got an integer")
    }

    func testListArithmeticGoesItemByItem() {
        XCTAssertEqual(op(list(1, 2, 0, 0), "+", list(3, 4, 5, 6)), list(4, 6, 5, 6))
        XCTAssertEqual(op(list(5), "-", list(7)), list(-2))
        XCTAssertEqual(op(list(6, 1), "/", list(3, 2)), .list([.integer(2), .real(0.5)]))
        XCTAssertEqual(op(.list([]), "*", .list([])), .list([]))
        XCTAssertEqual(opError(list(1, 2), "+", list(1)), "'+' combines lists of the same length, not 2 and 1 items")
        XCTAssertEqual(opError(.list([.string("a")]), "+", list(1)), "'+' combines lists of numbers, not a string and an integer")
        XCTAssertEqual(opError(list(.max), "+", list(1)), "integer overflow in 9223372036854775807 + 1")
    }

    func testConcatenation() {
        XCTAssertEqual(op(list(1), "++", list(2, 3)), list(1, 2, 3))
        XCTAssertEqual(op(.list([]), "++", .list([])), .list([]))
        XCTAssertEqual(op(.string("ab"), "++", .string("c")), .string("abc"))
        XCTAssertEqual(opError(.integer(1), "++", list(2)), "'++' concatenates two lists, not an integer and a list")
    }

    func testLogic() {
        XCTAssertEqual(op(.boolean(true), "&&", .boolean(false)), .boolean(false))
        XCTAssertEqual(op(.boolean(true), "&&", .boolean(true)), .boolean(true))
        XCTAssertEqual(op(.boolean(false), "||", .boolean(true)), .boolean(true))
        XCTAssertEqual(op(.boolean(false), "||", .boolean(false)), .boolean(false))
        XCTAssertEqual(opError(.integer(1), "&&", .boolean(true)), "'&&' needs booleans, got an integer and a boolean")
        XCTAssertEqual(opError(.boolean(true), "%", .boolean(true)), "unknown operator '%'")
    }

    func testUnaryOperators() throws {
        XCTAssertEqual(try applyUnary("-", .integer(3)), .integer(-3))
        XCTAssertEqual(try applyUnary("-", .real(2.5)), .real(-2.5))
        XCTAssertEqual(try applyUnary("-", tensor([2], [1, -2], .float16)), tensor([2], [-1, 2], .float16))
        XCTAssertEqual(try applyUnary("!", .boolean(true)), .boolean(false))
        XCTAssertThrowsError(try applyUnary("-", .integer(.min))) { error in
            XCTAssertEqual((error as? EvaluationError)?.message, "integer overflow in -(-9223372036854775808)")
        }
        XCTAssertThrowsError(try applyUnary("-", .boolean(true))) { error in
            XCTAssertEqual((error as? EvaluationError)?.message, "'-' negates a number or a tensor, not a boolean")
        }
        XCTAssertThrowsError(try applyUnary("!", .integer(0))) { error in
            XCTAssertEqual((error as? EvaluationError)?.message, "'!' needs a boolean, got an integer")
        }
        XCTAssertThrowsError(try applyUnary("~", .integer(0))) { error in
            XCTAssertEqual((error as? EvaluationError)?.message, "unknown operator '~'")
        }
    }

    // MARK: Tensors in expressions

    func testTensorArithmeticKeepsElementType() {
        let w = tensor([2], [1, 2], .float16)
        XCTAssertEqual(op(w, "+", .integer(1)), tensor([2], [2, 3], .float16))
        XCTAssertEqual(op(.integer(2), "-", w), tensor([2], [1, 0], .float16))
        XCTAssertEqual(op(w, "*", .real(0.5)), tensor([2], [0.5, 1], .float16))
        XCTAssertEqual(op(.real(1), "/", w), tensor([2], [1, 0.5], .float16))
        XCTAssertEqual(op(w, "*", tensor([2, 1], [1, 10], nil)), tensor([2, 2], [1, 2, 10, 20], .float16))
        XCTAssertEqual(op(tensor([1], [3], nil), "+", .integer(1)), tensor([1], [4], nil))
        XCTAssertEqual(op(w, "+", tensor([2], [1, 1], .float16)), tensor([2], [2, 3], .float16))
    }

    func testTensorErrors() {
        XCTAssertEqual(opError(tensor([2], [1, 2], .float), "+", tensor([2], [1, 2], .float16)),
                       "the expression mixes float and float16 tensors; cast one of them")
        XCTAssertEqual(opError(tensor([2], [1, 2], .int64), "*", tensor([2], [1, 2], .float)),
                       "the expression mixes int64 and float tensors; cast one of them")
        XCTAssertEqual(opError(tensor([3], [1, 2, 3]), "+", tensor([2], [1, 2])), "cannot broadcast shapes [3] and [2]")
        XCTAssertEqual(opError(tensor([2], [1, 2]), "+", list(1, 2)), "'+' needs numbers or tensors, got a tensor and a list")
    }

    // MARK: Built-in functions

    func testElementwiseFunctions() {
        XCTAssertEqual(call("sqrt", .integer(4)), .real(2))
        XCTAssertEqual(call("sqrt", .real(2.25)), .real(1.5))
        XCTAssertEqual(call("sqrt", tensor([2], [4, 9], .float16)), tensor([2], [2, 3], .float16))
        XCTAssertEqual(call("abs", .integer(-3)), .integer(3))
        XCTAssertEqual(call("abs", .real(-2.5)), .real(2.5))
        XCTAssertEqual(call("abs", tensor([2], [-1, 2])), tensor([2], [1, 2]))
        XCTAssertEqual(call("neg", .integer(3)), .integer(-3))
        XCTAssertEqual(call("neg", tensor([1], [2])), tensor([1], [-2]))
        XCTAssertEqual(call("exp", .integer(0)), .real(1))
        XCTAssertEqual(call("exp", tensor([1], [1])), tensor([1], [2.718281828459045]))
        XCTAssertEqual(call("log", .integer(1)), .real(0))
        XCTAssertEqual(call("log", tensor([1], [0])), tensor([1], [-.infinity]))
        XCTAssertEqual(call("reciprocal", .integer(4)), .real(0.25))
        XCTAssertEqual(call("reciprocal", tensor([2], [2, -0.5], .bfloat16)), tensor([2], [0.5, -2], .bfloat16))
        XCTAssertEqual(call("sqrt", list(4, 9)), tensor([2], [2, 3], nil))
        XCTAssertEqual(callError("abs", .integer(.min)), "integer overflow in abs(-9223372036854775808)")
        XCTAssertEqual(callError("sqrt", .boolean(true)), "sqrt: argument 1 must be a tensor, got a boolean")
        XCTAssertEqual(callError("exp", .list([.string("a")])), "exp: argument 1: expected a list of numbers, but it holds a string")
    }

    func testShapeFunctions() {
        let m = tensor([2, 3], [1, 2, 3, 4, 5, 6], .float16)
        XCTAssertEqual(call("reshape", m, list(3, -1)), tensor([3, 2], [1, 2, 3, 4, 5, 6], .float16))
        XCTAssertEqual(call("reshape", m, .list([.real(6)])), tensor([6], [1, 2, 3, 4, 5, 6], .float16))
        XCTAssertEqual(call("reshape", m, tensor([2], [6, 1], .int64)), tensor([6, 1], [1, 2, 3, 4, 5, 6], .float16))
        XCTAssertEqual(call("unsqueeze", m, list(0)), tensor([1, 2, 3], [1, 2, 3, 4, 5, 6], .float16))
        XCTAssertEqual(call("unsqueeze", m, .integer(-1)), tensor([2, 3, 1], [1, 2, 3, 4, 5, 6], .float16))
        XCTAssertEqual(call("squeeze", tensor([1, 2, 1], [1, 2])), tensor([2], [1, 2]))
        XCTAssertEqual(call("squeeze", tensor([1, 2, 1], [1, 2]), list(0)), tensor([2, 1], [1, 2]))
        XCTAssertEqual(call("transpose", m), tensor([3, 2], [1, 4, 2, 5, 3, 6], .float16))
        XCTAssertEqual(call("transpose", m, list(1, 0)), tensor([3, 2], [1, 4, 2, 5, 3, 6], .float16))
        XCTAssertEqual(call("matmul", m, tensor([3], [1, 0, -1], nil)), tensor([2], [-2, -2], .float16))
        XCTAssertEqual(call("zeros_like", m), tensor([2, 3], [0, 0, 0, 0, 0, 0], .float16))
        XCTAssertEqual(call("ones_like", m), tensor([2, 3], [1, 1, 1, 1, 1, 1], .float16))
        XCTAssertEqual(call("numel", m), .integer(6))
        XCTAssertEqual(call("rank", m), .integer(2))
        XCTAssertEqual(call("rank", .real(1)), .integer(0))
        XCTAssertEqual(call("shape", m), list(2, 3))
        XCTAssertEqual(call("shape", .real(1)), .list([]))
        XCTAssertEqual(call("dim", m, .integer(1)), .integer(3))
        XCTAssertEqual(call("dim", m, .integer(-2)), .integer(2))
        XCTAssertEqual(call("dtype", m), .dataType(.float16))
        XCTAssertEqual(call("dtype", tensor([1], [1], nil)), .absent)
        XCTAssertEqual(callError("reshape", m, .list([.real(2.5), .integer(-1)])), "reshape: argument 2: expected an integer, got 2.5")
        XCTAssertEqual(callError("reshape", m, .list([.string("x")])), "reshape: argument 2: expected a list of integers, but it holds a string")
        XCTAssertEqual(callError("reshape", m, list(4)), "cannot reshape [2, 3] (6 elements) to [4] (4 elements)")
        XCTAssertEqual(callError("reshape", .string("w"), list(4)), "reshape: argument 1 must be a tensor, got a string")
        XCTAssertEqual(callError("squeeze", m, list(0)), "cannot squeeze axis 0 of shape [2, 3]: its size is 2, not 1")
        XCTAssertEqual(callError("matmul", m, tensor([3], [1, 2, 3], .float)), "the expression mixes float16 and float tensors; cast one of them")
        XCTAssertEqual(callError("dim", m, .integer(2)), "dim axis 2 is out of range for rank 2")
        XCTAssertEqual(callError("transpose", m, .boolean(true)), "transpose: argument 2: expected a list of integers, got a boolean")
    }

    /// The shape arithmetic of fold-conv-batchnorm: `[dim(w, 0)] ++ ones(rank(w) - 1)`.
    func testShapeArithmetic() throws {
        let w = tensor([2, 1, 2, 2], Array(repeating: 0, count: 8))
        let rankMinusOne = op(call("rank", w), "-", .integer(1))
        XCTAssertEqual(rankMinusOne, .integer(3))
        XCTAssertEqual(call("ones", rankMinusOne), list(1, 1, 1))
        let shape = op(.list([call("dim", w, .integer(0))]), "++", call("ones", rankMinusOne))
        XCTAssertEqual(shape, list(2, 1, 1, 1))
        XCTAssertEqual(call("reshape", tensor([2], [3, 4]), shape), tensor([2, 1, 1, 1], [3, 4]))
        XCTAssertEqual(call("ones", .integer(0)), .list([]))
        XCTAssertEqual(callError("ones", .integer(-1)), "ones: the count -1 is negative")
        XCTAssertEqual(callError("ones", .real(1.5)), "ones: argument 1: expected an integer, got 1.5")
    }

    func testCastFunction() {
        let t = tensor([3], [0.1, 2.7, -2.7], .float)
        XCTAssertEqual(call("cast", t, .dataType(.float16)), tensor([3], [0.0999755859375, 2.69921875, -2.69921875], .float16))
        XCTAssertEqual(call("cast", t, .string("bfloat16")), tensor([3], [0.10009765625, 2.703125, -2.703125], .bfloat16))
        XCTAssertEqual(call("cast", t, .dataType(.int32)), tensor([3], [0, 2, -2], .int32))
        XCTAssertEqual(call("cast", t, .dataType(.double)), tensor([3], [0.1, 2.7, -2.7], .double))
        XCTAssertEqual(call("cast", .real(0.1), .dataType(.float)), tensor([], [0.10000000149011612], .float))
        // After a cast the tensors agree and can be combined.
        let half = tensor([3], [1, 2, 3], .float16)
        XCTAssertEqual(op(call("cast", t, .dataType(.float16)), "+", half), tensor([3], [1.0999755859375, 4.69921875, 0.30078125], .float16))
        XCTAssertEqual(callError("cast", t, .dataType(.string)), "cast: cannot compute with string")
        XCTAssertEqual(callError("cast", t, .string("half")), "cast: argument 2: 'half' is not a data type")
        XCTAssertEqual(callError("cast", t, .integer(1)), "cast: argument 2: expected a data type, got an integer")
        XCTAssertEqual(callError("cast", tensor([1], [1e10]), .dataType(.int32)), "cannot cast element 0 (10000000000) to int32: out of range")
    }

    func testDefaultMinMax() {
        XCTAssertEqual(call("default", .absent, .real(1e-5)), .real(1e-5))
        XCTAssertEqual(call("default", .real(0.001), .real(1e-5)), .real(0.001))
        XCTAssertEqual(call("default", .list([]), .integer(1)), .list([]))
        XCTAssertEqual(call("min", .integer(2), .integer(3)), .integer(2))
        XCTAssertEqual(call("max", .integer(2), .integer(3)), .integer(3))
        XCTAssertEqual(call("max", .integer(2), .real(2.5)), .real(2.5))
        XCTAssertEqual(call("min", .integer(1), .real(2)), .real(1))
        XCTAssertEqual(call("max", .real(-1), .real(-2)), .real(-1))
        if case .real(let r) = call("min", .real(.nan), .integer(1)) { XCTAssertTrue(r.isNaN) } else { XCTFail("not a real") }
        XCTAssertEqual(callError("min", .string("a"), .integer(1)), "min takes two numbers, got a string and an integer")
    }

    func testArityAndUnknownFunctions() {
        XCTAssertEqual(callError("sqrt"), "sqrt takes 1 argument, got 0")
        XCTAssertEqual(callError("reshape", .integer(1)), "reshape takes 2 arguments, got 1")
        XCTAssertEqual(callError("squeeze", .integer(1), list(0), list(0)), "squeeze takes 1 or 2 arguments, got 3")
        XCTAssertEqual(callError("frobnicate", .integer(1)), "unknown function 'frobnicate'")
    }

    func testTableListsTheBuiltins() {
        let required = ["sqrt", "abs", "neg", "exp", "log", "reciprocal", "reshape", "unsqueeze", "squeeze", "transpose",
                        "cast", "default", "ones", "zeros_like", "ones_like", "matmul", "numel", "rank", "shape", "min", "max"]
        for name in required {
            XCTAssertTrue(table.contains(name), name)
        }
        XCTAssertFalse(table.contains("frobnicate"))
        XCTAssertEqual(table.arity(of: "squeeze"), 1...2)
        XCTAssertEqual(table.arity(of: "matmul"), 2...2)
        XCTAssertNil(table.arity(of: "frobnicate"))
        XCTAssertEqual(table.names, table.names.sorted())
        // `a[i]` and `a[s:e]` call functions no rule can name (brackets are not in identifiers).
        XCTAssertEqual(Set(table.names), Set(required + ["dim", "dtype", "permute", "range", "len", "opset", "full", "zeros", "slice", "item",
                                                         "all", "any", "isclose", "allclose",
                                                         FunctionTable.indexFunction, FunctionTable.sliceFunction, FunctionTable.missingBound]))
        XCTAssertTrue(FunctionTable().names.isEmpty)
    }

    func testRegisterNativeFunctions() throws {
        var extended = FunctionTable.builtins
        extended.register("channel_count", arity: 1...1) { arguments throws(EvaluationError) in
            guard case .tensor(let array, _) = arguments[0], let first = array.shape.first else {
                throw EvaluationError("channel_count needs a tensor of rank 1 or more")
            }
            return .integer(Int64(first))
        }
        extended.register("sum", arity: 0...3) { arguments throws(EvaluationError) in
            var total = EvalValue.integer(0)
            for argument in arguments { total = try apply("+", total, argument) }
            return total
        }
        XCTAssertTrue(extended.contains("channel_count"))
        XCTAssertFalse(FunctionTable.builtins.contains("channel_count"), "the built-in table is a value")
        XCTAssertEqual(try extended.call("channel_count", [tensor([4, 2], Array(repeating: 0, count: 8))]), .integer(4))
        XCTAssertEqual(try extended.call("sum", []), .integer(0))
        XCTAssertEqual(try extended.call("sum", [.integer(1), .real(2), .integer(3)]), .real(6))
        XCTAssertThrowsError(try extended.call("sum", [.integer(1), .integer(1), .integer(1), .integer(1)])) { error in
            XCTAssertEqual((error as? EvaluationError)?.message, "sum takes 0 to 3 arguments, got 4")
        }
        XCTAssertThrowsError(try extended.call("channel_count", [.integer(1)])) { error in
            XCTAssertEqual((error as? EvaluationError)?.message, "channel_count needs a tensor of rank 1 or more")
        }
        // Registering a name again replaces the function; built-ins still work.
        extended.register("abs", arity: 1...1) { _ throws(EvaluationError) in .string("mine") }
        XCTAssertEqual(try extended.call("abs", [.integer(-1)]), .string("mine"))
        XCTAssertEqual(try extended.call("sqrt", [.integer(9)]), .real(3))
        XCTAssertEqual(try FunctionTable.builtins.call("abs", [.integer(-1)]), .integer(1))
    }

    // MARK: Value conversions

    func testValueConversions() throws {
        XCTAssertEqual(try EvalValue.list([list(1, 2), list(3, 4)]).asTensor().0, NDArray(shape: [2, 2], values: [1, 2, 3, 4]))
        XCTAssertEqual(try EvalValue.list([]).asTensor().0, NDArray(shape: [0], values: []))
        XCTAssertEqual(try EvalValue.real(2).asTensor().0, .scalar(2))
        XCTAssertThrowsError(try EvalValue.list([list(1, 2), list(3)]).asTensor()) { error in
            XCTAssertEqual((error as? EvaluationError)?.message, "list is not rectangular: it holds items of shapes [2] and [1]")
        }
        XCTAssertEqual(try EvalValue.real(3).asInteger(), 3)
        XCTAssertEqual(try tensor([1], [5]).asInteger(), 5)
        XCTAssertEqual(try list(1, -1).asIntegers(), [1, -1])
        XCTAssertEqual(try EvalValue.integer(2).asIntegers(), [2])
        XCTAssertThrowsError(try tensor([1, 2], [1, 2]).asIntegers()) { error in
            XCTAssertEqual((error as? EvaluationError)?.message, "expected a list of integers, got a tensor of shape [1, 2]")
        }
        XCTAssertEqual(try EvalValue.string("float16").asDataType(), .float16)
        XCTAssertEqual(try EvalValue.boolean(true).asBoolean(for: "where"), true)
        XCTAssertThrowsError(try EvalValue.integer(1).asBoolean(for: "a where condition")) { error in
            XCTAssertEqual((error as? EvaluationError)?.message, "a where condition needs a boolean, got an integer")
        }
    }

    func testDescriptions() {
        XCTAssertEqual(tensor([2], [1, 0.5], .float16).description, "tensor<float16>[2] [1, 0.5]")
        XCTAssertEqual(tensor([3, 3], Array(repeating: 0, count: 9), nil).description, "tensor<literal>[3, 3]")
        XCTAssertEqual(EvalValue.list([.integer(1), .real(2.5), .string("a"), .boolean(true), .dataType(.float), .absent]).description,
                       "[1, 2.5, \"a\", true, float, absent]")
        XCTAssertEqual(EvaluationError("x").description, "x")
    }
}
