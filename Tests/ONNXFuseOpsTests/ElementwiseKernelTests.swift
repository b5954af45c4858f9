import Foundation
import ONNXFuseIR
import XCTest

@testable import ONNXFuseOps

private typealias Dimension = ONNXFuseIR.Dimension

/// Kernels and inference of the elementwise operators.
final class ElementwiseKernelTests: XCTestCase, SingleOutputKernelTestCase {
    // MARK: Helpers

    private func uints(_ values: [UInt64], _ shape: [Int]? = nil) -> TensorValue {
        TensorValue(.uint64, shape: shape ?? [values.count], .unsigned(values))
    }

    private func bools(_ values: [Bool], _ shape: [Int]? = nil) -> TensorValue {
        TensorValue(.bool, shape: shape ?? [values.count], .booleans(values))
    }

    /// A scalar int64 value holding the dimension `dim` (as `Gather(Shape(x), i)` gives).
    private func dimension(_ dim: Dimension) -> ValueFacts {
        ValueFacts(elementType: .int64, shape: [], shapeValue: [dim])
    }

    // MARK: Binary arithmetic

    func testAddBroadcastsAndWraps() throws {
        let sum = try run("Add", [floats([1, 2, 3, 4, 5, 6], [2, 3]), floats([10, 20, 30])])
        XCTAssertEqual(sum.shape, [2, 3])
        XCTAssertEqual(reals(sum), [11, 22, 33, 14, 25, 36])
        XCTAssertEqual(integers(try run("Add", [ints([127, -128, 5], nil, .int8), ints([1, -1, 5], nil, .int8)])), [-128, 127, 10])
        XCTAssertEqual(integers(try run("Add", [ints([255], nil, .uint8), ints([1], nil, .uint8)])), [0])
        let wrapped = try run("Add", [uints([UInt64.max, 3]), uints([2])])
        XCTAssertEqual(wrapped.elements, .unsigned([1, 5]))
        // Column vector against row vector.
        let outer = try run("Add", [ints([1, 2], [2, 1]), ints([10, 20, 30], [1, 3])])
        XCTAssertEqual(outer.shape, [2, 3])
        XCTAssertEqual(integers(outer), [11, 21, 31, 12, 22, 32])
        // int64 extremes survive exactly.
        XCTAssertEqual(integers(try run("Add", [ints([Int64.max - 1]), ints([1])])), [Int64.max])
        fails("Add", [floats([1, 2]), floats([1, 2, 3])])
        fails("Add", [floats([1]), ints([1])])
    }

    func testFloat16AndFloatResultsAreRoundedOnce() throws {
        // 1 + 2^-11 lies halfway between two float16 values: ties to even gives 1.
        let half = try run("Add", [floats([1, 1], nil, .float16), floats([0x1p-11, 0x1.8p-11], nil, .float16)])
        XCTAssertEqual(half.dataType, .float16)
        XCTAssertEqual(reals(half), [1, 1 + 0x1p-10])
        let single = try run("Mul", [floats([1.0 / 3.0]), floats([3])])
        XCTAssertEqual(reals(single), [Double(Float(1.0 / 3.0) * 3)])
        let bf = try run("Sub", [floats([1], nil, .bfloat16), floats([0x1p-9], nil, .bfloat16)])
        XCTAssertEqual(reals(bf), [1])  // 1 - 2^-9 lies halfway between 1 - 2^-8 and 1: ties to even
    }

    func testLegacyBroadcastBeforeOpset7() throws {
        let a = floats([Double](repeating: 0, count: 24), [2, 3, 4])
        let b = floats([1, 2, 3])
        let result = try run("Add", [a, b], [attr("broadcast", 1), attr("axis", 1)], opset: 6)
        XCTAssertEqual(result.shape, [2, 3, 4])
        XCTAssertEqual(Array(reals(result).prefix(12)), [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3])
        // Suffix matching without axis; no broadcast attribute requires equal shapes.
        let suffix = try run("Mul", [floats([1, 2, 3, 4], [2, 2]), floats([10, 100])], [attr("broadcast", 1)], opset: 1)
        XCTAssertEqual(reals(suffix), [10, 200, 30, 400])
        fails("Add", [a, b], opset: 6)
        XCTAssertEqual(reals(try run("Add", [floats([1, 2]), floats([3, 4])], opset: 6)), [4, 6])
    }

    func testDivTruncatesTowardZeroAndRefusesZeroDivisors() throws {
        XCTAssertEqual(integers(try run("Div", [ints([-7, 7, -7, 7], nil, .int32), ints([2, -2, -2, 2], nil, .int32)])), [-3, -3, 3, 3])
        XCTAssertEqual(integers(try run("Div", [ints([Int64.min]), ints([-1])])), [Int64.min])
        XCTAssertEqual(integers(try run("Div", [ints([-128], nil, .int8), ints([-1], nil, .int8)])), [-128])
        XCTAssertEqual(try run("Div", [uints([UInt64.max]), uints([2])]).elements, .unsigned([UInt64.max / 2]))
        fails("Div", [ints([1, 2]), ints([1, 0])])
        fails("Div", [uints([1]), uints([0])])
        let real = reals(try run("Div", [floats([1, -1, 0]), floats([0, 0, 0])]))
        XCTAssertEqual(real[0], .infinity)
        XCTAssertEqual(real[1], -.infinity)
        XCTAssertTrue(real[2].isNaN)
    }

    func testModFollowsTheDivisorOrTheDividend() throws {
        XCTAssertEqual(integers(try run("Mod", [ints([-7, 7, -7, 7]), ints([2, -2, -2, 2])])), [1, -1, -1, 1])
        XCTAssertEqual(integers(try run("Mod", [ints([-7, 7, -7, 7]), ints([2, -2, -2, 2])], [attr("fmod", 1)])), [-1, 1, -1, 1])
        XCTAssertEqual(integers(try run("Mod", [ints([Int64.min]), ints([-1])])), [0])
        fails("Mod", [ints([1]), ints([0])])
        let floored = reals(try run("Mod", [floats([-4, 4, 0, -0.0, .infinity, 5, -5]), floats([3, -3, -2, 2, 2, .infinity, .infinity])]))
        XCTAssertEqual(Array(floored[0..<2]), [2, -2])
        XCTAssertEqual(floored[2].sign, .minus)  // ±0 takes the divisor's sign
        XCTAssertEqual(floored[3].sign, .plus)
        XCTAssertTrue(floored[4].isNaN)
        XCTAssertEqual(floored[5], 5)
        XCTAssertEqual(floored[6], .infinity)  // signs differ: y
        XCTAssertEqual(reals(try run("Mod", [floats([-4, 5.5]), floats([3, 2])], [attr("fmod", 1)])), [-1, 1.5])
        let half = try run("Mod", [floats([-4.5], nil, .float16), floats([3], nil, .float16)])
        XCTAssertEqual(reals(half), [1.5])
        fails("Mod", [ints([1]), ints([1])], [attr("fmod", 2)])
    }

    func testPowMixesTypes() throws {
        XCTAssertEqual(reals(try run("Pow", [floats([2, 3, -2]), floats([3, 0.5, 2])])), [8, Double(Float(3.0.squareRoot())), 4])
        XCTAssertEqual(reals(try run("Pow", [floats([2, -2]), ints([10, 3])])), [1024, -8])
        XCTAssertEqual(integers(try run("Pow", [ints([3, 2, -1, 5]), ints([39, 64, -3, -1])])), [4052555153018976267, 0, -1, 0])
        XCTAssertEqual(integers(try run("Pow", [ints([2, 3], nil, .int32), floats([3, 0.5])])), [8, 1])
        XCTAssertEqual(integers(try run("Pow", [ints([2], nil, .int32), ints([31], nil, .int32)])), [Int64(Int32.min)])
        XCTAssertEqual(try run("Pow", [uints([3]), uints([2])]).elements, .unsigned([9]))
        XCTAssertEqual(integers(try run("Pow", [ints([4]), uints([3])])), [64])
        fails("Pow", [ints([0]), ints([-1])])
        fails("Pow", [ints([2], nil, .int32), floats([40])])  // 2^40 does not fit int32
    }

    func testBitShift() throws {
        let left = [attr("direction", "LEFT")], right = [attr("direction", "RIGHT")]
        XCTAssertEqual(integers(try run("BitShift", [ints([1, 64, 1, 3], nil, .int8), ints([2, 1, 8, -1], nil, .int8)], left)), [4, -128, 0, 0])
        XCTAssertEqual(integers(try run("BitShift", [ints([-16, -1, 16, -5], nil, .int32), ints([2, 40, 40, -1], nil, .int32)], right)), [-4, -1, 0, -1])
        XCTAssertEqual(integers(try run("BitShift", [ints([200], nil, .uint8), ints([1], nil, .uint8)], left)), [144])
        XCTAssertEqual(try run("BitShift", [uints([1, 1 << 63]), uints([63, 63])], left).elements, .unsigned([1 << 63, 0]))
        XCTAssertEqual(try run("BitShift", [uints([1 << 63, 5]), uints([63, 64])], right).elements, .unsigned([1, 0]))
        fails("BitShift", [ints([1]), ints([1])])
        fails("BitShift", [floats([1]), floats([1])], left)
    }

    func testBitwiseOperators() throws {
        XCTAssertEqual(integers(try run("BitwiseAnd", [ints([12, -1], nil, .int16), ints([10, 7], nil, .int16)])), [8, 7])
        XCTAssertEqual(integers(try run("BitwiseOr", [ints([12, -8], nil, .int8), ints([3], nil, .int8)])), [15, -5])
        XCTAssertEqual(integers(try run("BitwiseXor", [ints([255], nil, .uint8), ints([15], nil, .uint8)])), [240])
        XCTAssertEqual(integers(try run("BitwiseNot", [ints([5, -128], nil, .int8)])), [-6, 127])
        XCTAssertEqual(integers(try run("BitwiseNot", [ints([5], nil, .uint8)])), [250])
        XCTAssertEqual(integers(try run("BitwiseNot", [ints([0], nil, .uint32)])), [Int64(UInt32.max)])
        XCTAssertEqual(try run("BitwiseNot", [uints([0])]).elements, .unsigned([UInt64.max]))
        fails("BitwiseAnd", [floats([1]), floats([1])])
    }

    func testPRelu() throws {
        let x = floats([-1, 2, -3, 4, -5, 6], [2, 3])
        XCTAssertEqual(reals(try run("PRelu", [x, floats([0.5, 1, 2])])), [-0.5, 2, -6, 4, -5, 6])
        XCTAssertEqual(reals(try run("PRelu", [x, floats([0.1])])).map { ($0 * 10).rounded() / 10 }, [-0.1, 2, -0.3, 4, -0.5, 6])
        // A 1-D slope matching one axis of X (as the onnx reference accepts).
        XCTAssertEqual(reals(try run("PRelu", [x, floats([1, 2])])), [-1, 2, -3, 4, -10, 6])
        XCTAssertEqual(integers(try run("PRelu", [ints([-3, 3], nil, .int32), ints([2], nil, .int32)])), [-6, 3])
        fails("PRelu", [floats([1, 2]), floats([1, 2, 3], [3, 1])])
    }

    // MARK: Unary

    func testIntegerAwareUnaryOperators() throws {
        XCTAssertEqual(integers(try run("Neg", [ints([5, -128, 0], nil, .int8)])), [-5, -128, 0])
        XCTAssertEqual(integers(try run("Neg", [ints([Int64.min])])), [Int64.min])
        XCTAssertEqual(integers(try run("Abs", [ints([-5, -128, 7], nil, .int8)])), [5, -128, 7])
        XCTAssertEqual(integers(try run("Abs", [ints([200], nil, .uint8)])), [200])
        XCTAssertEqual(integers(try run("Sign", [ints([-9, 0, 4], nil, .int32)])), [-1, 0, 1])
        XCTAssertEqual(integers(try run("Relu", [ints([-9, 0, 4], nil, .int32)])), [0, 0, 4])
        XCTAssertEqual(try run("Sign", [uints([0, 7])]).elements, .unsigned([0, 1]))
        let sign = reals(try run("Sign", [floats([-2, 0, 3, .nan])]))
        XCTAssertEqual(Array(sign.prefix(3)), [-1, 0, 1])
        XCTAssertTrue(sign[3].isNaN)
        XCTAssertEqual(reals(try run("Neg", [floats([1.5, -0.0])])).map(\.sign), [.minus, .plus])
        fails("Sqrt", [ints([4])])
        fails("Neg", [bools([true])])
    }

    func testMathFunctions() throws {
        let x = [0.25, 0.5, 0.75]
        let cases: [(String, (Double) -> Double)] = [
            ("Sqrt", { $0.squareRoot() }), ("Exp", { Foundation.exp($0) }), ("Log", { Foundation.log($0) }),
            ("Reciprocal", { 1 / $0 }), ("Erf", { Foundation.erf($0) }), ("Sin", { Foundation.sin($0) }),
            ("Cos", { Foundation.cos($0) }), ("Tan", { Foundation.tan($0) }), ("Asin", { Foundation.asin($0) }),
            ("Acos", { Foundation.acos($0) }), ("Atan", { Foundation.atan($0) }), ("Sinh", { Foundation.sinh($0) }),
            ("Cosh", { Foundation.cosh($0) }), ("Asinh", { Foundation.asinh($0) }), ("Atanh", { Foundation.atanh($0) }),
            ("Tanh", { Foundation.tanh($0) }),
        ]
        for (op, f) in cases {
            let result = try run(op, [floats(x, nil, .double)])
            XCTAssertEqual(result.dataType, .double)
            assertClose(reals(result), x.map(f), tolerance: 1e-15)
            // float results are the double result rounded once.
            XCTAssertEqual(reals(try run(op, [floats(x)])), x.map { Double(Float(f($0))) }, op)
        }
        assertClose(reals(try run("Acosh", [floats([1, 2, 10], nil, .double)])), [0, 1.3169578969248166, 2.993222846126381])
        XCTAssertEqual(reals(try run("Exp", [floats([1], nil, .float16)])), [roundReal(2.718281828459045, to: .float16)])
        XCTAssertTrue(reals(try run("Sqrt", [floats([-1])]))[0].isNaN)
        XCTAssertEqual(reals(try run("Log", [floats([0])])), [-.infinity])
    }

    func testRoundingFunctions() throws {
        XCTAssertEqual(reals(try run("Round", [floats([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, -2.6])])), [0, 2, 2, -0.0, -2, 2, -3])
        XCTAssertEqual(reals(try run("Floor", [floats([-1.5, 1.5, 2])])), [-2, 1, 2])
        XCTAssertEqual(reals(try run("Ceil", [floats([-1.5, 1.5, 2])])), [-1, 2, 2])
    }

    func testActivations() throws {
        let x = [-2.0, -0.5, 0, 0.5, 2]
        func check(_ op: String, _ attributes: [Attribute] = [], _ f: (Double) -> Double, line: UInt = #line) throws {
            let result = try run(op, [floats(x, nil, .double)], attributes)
            assertClose(reals(result), x.map(f), tolerance: 1e-12, line: line)
        }
        let sig: (Double) -> Double = { 1 / (1 + Foundation.exp(-$0)) }
        try check("Sigmoid", [], sig)
        try check("Relu", []) { max(0, $0) }
        try check("LeakyRelu", [attr("alpha", float: Float(0.1))]) { $0 < 0 ? Double(Float(0.1)) * $0 : $0 }
        try check("LeakyRelu", []) { $0 < 0 ? Double(Float(0.01)) * $0 : $0 }
        try check("Elu", [attr("alpha", float: Float(2))]) { $0 < 0 ? 2 * (Foundation.exp($0) - 1) : $0 }
        let (alpha, gamma) = (Double(Float(1.6732632423543772)), Double(Float(1.0507009873554805)))
        try check("Selu", []) { $0 <= 0 ? gamma * (alpha * Foundation.exp($0) - alpha) : gamma * $0 }
        try check("Celu", [attr("alpha", float: Float(2))]) { max(0, $0) + min(0, 2 * (Foundation.exp($0 / 2) - 1)) }
        try check("ThresholdedRelu", [attr("alpha", float: Float(0.5))]) { $0 > 0.5 ? $0 : 0 }
        try check("HardSigmoid", []) { max(0, min(1, Double(Float(0.2)) * $0 + 0.5)) }
        try check("HardSwish", []) { $0 * max(0, min(1, $0 / 6 + 0.5)) }
        try check("Softplus", []) { Foundation.log(Foundation.exp($0) + 1) }
        try check("Softsign", []) { $0 / (1 + abs($0)) }
        try check("Mish", []) { $0 * Foundation.tanh(Foundation.log(1 + Foundation.exp($0))) }
        try check("Gelu", []) { 0.5 * $0 * (1 + Foundation.erf($0 / 2.0.squareRoot())) }
        try check("Gelu", [attr("approximate", "tanh")]) {
            0.5 * $0 * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0)))
        }
        // No overflow for large inputs.
        XCTAssertEqual(reals(try run("Softplus", [floats([1000, -1000], nil, .double)])), [1000, 0])
        XCTAssertEqual(reals(try run("Sigmoid", [floats([-1000, 1000], nil, .double)])), [0, 1])
        XCTAssertEqual(reals(try run("Mish", [floats([1000], nil, .double)])), [1000])
        fails("Gelu", [floats([1])], [attr("approximate", "fast")])
        XCTAssertEqual(reals(try run("HardSigmoid", [floats([1], nil, .float16)])).count, 1)
    }

    func testIsNaNAndIsInf() throws {
        let x = floats([1, .nan, .infinity, -.infinity], nil, .float16)
        XCTAssertEqual(booleans(try run("IsNaN", [x])), [false, true, false, false])
        XCTAssertEqual(booleans(try run("IsInf", [x])), [false, false, true, true])
        XCTAssertEqual(booleans(try run("IsInf", [x], [attr("detect_negative", 0)])), [false, false, true, false])
        XCTAssertEqual(booleans(try run("IsInf", [x], [attr("detect_positive", 0)])), [false, false, false, true])
        XCTAssertEqual(try run("IsNaN", [x]).dataType, .bool)
    }

    func testClip() throws {
        let x = floats([-3, -1, 0, 1, 3, .nan])
        let attrs = try run("Clip", [x], [attr("min", float: Float(-1.5)), attr("max", float: Float(2))], opset: 6)
        XCTAssertEqual(Array(reals(attrs).prefix(5)), [-1.5, -1, 0, 1, 2])
        XCTAssertTrue(reals(attrs)[5].isNaN)
        XCTAssertEqual(reals(try run("Clip", [floats([-.infinity, .infinity])], opset: 6)),
                       [-Double(Float.greatestFiniteMagnitude), Double(Float.greatestFiniteMagnitude)])
        let inputs = try run("Clip", [x, floats([-1.5], []), floats([2], [])], opset: 13)
        XCTAssertEqual(Array(reals(inputs).prefix(5)), [-1.5, -1, 0, 1, 2])
        XCTAssertEqual(Array(reals(try run("Clip", [x, nil, floats([0], [])], opset: 13)).prefix(5)), [-3, -1, 0, 0, 0])
        XCTAssertEqual(Array(reals(try run("Clip", [x], opset: 13)).prefix(5)), [-3, -1, 0, 1, 3])
        XCTAssertEqual(integers(try run("Clip", [ints([-100, 5, 100], nil, .int8), ints([-10], [], .int8), ints([10], [], .int8)], opset: 13)), [-10, 5, 10])
        // min > max gives max everywhere.
        XCTAssertEqual(Array(reals(try run("Clip", [x, floats([2], []), floats([1], [])], opset: 13)).prefix(5)), [1, 1, 1, 1, 1])
        fails("Clip", [x, floats([1, 2])], opset: 13)
        fails("Clip", [x, ints([1], [])], opset: 13)
    }

    func testShrink() throws {
        let x = floats([-2, -1, -0.5, 0, 0.5, 1, 2])
        XCTAssertEqual(reals(try run("Shrink", [x], [attr("lambd", float: Float(1.5))])), [-2, 0, 0, 0, 0, 0, 2])
        XCTAssertEqual(reals(try run("Shrink", [x], [attr("lambd", float: Float(0.5)), attr("bias", float: Float(0.5))])), [-1.5, -0.5, 0, 0, 0, 0.5, 1.5])
        XCTAssertEqual(integers(try run("Shrink", [ints([-3, -1, 0, 1, 3], nil, .int8)], [attr("lambd", float: Float(1.5)), attr("bias", float: Float(1))])),
                       [-2, 0, 0, 0, 2])
        XCTAssertEqual(integers(try run("Shrink", [ints([Int64.max, Int64.min + 5])], [attr("lambd", float: Float(0)), attr("bias", float: Float(0))])),
                       [Int64.max, Int64.min + 5])
    }

    func testNot() throws {
        XCTAssertEqual(booleans(try run("Not", [bools([true, false])])), [false, true])
        fails("Not", [ints([1])])
    }

    // MARK: Variadic

    func testVariadicOperators() throws {
        let a = floats([1, 5, 3], [3]), b = floats([4, 2, 6, 0, 9, 1], [2, 3]), c = floats([2], [])
        XCTAssertEqual(reals(try run("Max", [a, b, c])), [4, 5, 6, 2, 9, 3])
        XCTAssertEqual(reals(try run("Min", [a, b, c])), [1, 2, 2, 0, 2, 1])
        XCTAssertEqual(reals(try run("Sum", [a, b, c])), [7, 9, 11, 3, 16, 6])
        XCTAssertEqual(reals(try run("Mean", [a, b, c])).map { ($0 * 3).rounded() }, [7, 9, 11, 3, 16, 6])
        XCTAssertEqual(try run("Sum", [a, b, c]).shape, [2, 3])
        XCTAssertEqual(reals(try run("Max", [a])), [1, 5, 3])
        XCTAssertTrue(reals(try run("Max", [floats([.nan, 1]), floats([1, .nan])])).allSatisfy(\.isNaN))
        XCTAssertTrue(reals(try run("Min", [floats([.nan]), floats([1])]))[0].isNaN)
        XCTAssertEqual(integers(try run("Max", [ints([-5, 3], nil, .int8), ints([2, -7], nil, .int8)])), [2, 3])
        XCTAssertEqual(try run("Min", [uints([UInt64.max, 2]), uints([3])]).elements, .unsigned([3, 2]))
        XCTAssertEqual(integers(try run("Sum", [ints([100], nil, .int8), ints([100], nil, .int8)])), [-56])
        // Sums of floats are rounded once: (1 + 2^-24) + 2^-24 rounds to 1 stepwise, to 1 + 2^-23 at once.
        XCTAssertEqual(reals(try run("Sum", [floats([1]), floats([0x1p-24]), floats([0x1p-24])])), [1 + 0x1p-23])
        fails("Max", [a, b], opset: 6)
        fails("Max", [])
        fails("Mean", [ints([1]), ints([2])])
        fails("Sum", [floats([1]), nil])
    }

    // MARK: Comparisons and logic

    func testComparisons() throws {
        let a = floats([1, 2, 3, .nan]), b = floats([2, 2, 2, .nan])
        XCTAssertEqual(booleans(try run("Equal", [a, b])), [false, true, false, false])
        XCTAssertEqual(booleans(try run("Less", [a, b])), [true, false, false, false])
        XCTAssertEqual(booleans(try run("LessOrEqual", [a, b])), [true, true, false, false])
        XCTAssertEqual(booleans(try run("Greater", [a, b])), [false, false, true, false])
        XCTAssertEqual(booleans(try run("GreaterOrEqual", [a, b])), [false, true, true, false])
        XCTAssertEqual(booleans(try run("Greater", [uints([UInt64.max, 0]), uints([1])])), [true, false])
        XCTAssertEqual(booleans(try run("Less", [ints([-1, 3], nil, .int8), ints([0], [], .int8)])), [true, false])
        let strings = TensorValue(.string, shape: [2], .strings([Array("a".utf8), Array("b".utf8)]))
        let one = TensorValue(.string, shape: [], .strings([Array("b".utf8)]))
        XCTAssertEqual(booleans(try run("Equal", [strings, one])), [false, true])
        XCTAssertEqual(booleans(try run("Equal", [bools([true, false]), bools([true])])), [true, false])
        let broadcast = try run("Equal", [ints([1, 2], [2, 1]), ints([1, 2, 3], [3])])
        XCTAssertEqual(broadcast.shape, [2, 3])
        XCTAssertEqual(booleans(broadcast), [true, false, false, false, true, false])
        fails("Less", [bools([true]), bools([false])])
        fails("Less", [strings, strings])
        fails("Equal", [ints([1]), floats([1])])
    }

    func testLogic() throws {
        let a = bools([true, true, false, false]), b = bools([true, false, true, false])
        XCTAssertEqual(booleans(try run("And", [a, b])), [true, false, false, false])
        XCTAssertEqual(booleans(try run("Or", [a, b])), [true, true, true, false])
        XCTAssertEqual(booleans(try run("Xor", [a, b])), [false, true, true, false])
        XCTAssertEqual(try run("And", [bools([true, false], [2, 1]), bools([true, false, true], [3])]).shape, [2, 3])
        fails("And", [ints([1]), ints([1])])
    }

    func testWhere() throws {
        let c = bools([true, false, true], [3])
        let result = try run("Where", [c, floats([1, 2, 3, 4, 5, 6], [2, 3]), floats([-1], [])])
        XCTAssertEqual(result.shape, [2, 3])
        XCTAssertEqual(reals(result), [1, -1, 3, 4, -1, 6])
        XCTAssertEqual(integers(try run("Where", [c, ints([1], [], .int8), ints([2], [], .int8)])), [1, 2, 1])
        let s = try run("Where", [bools([false]), TensorValue(.string, shape: [1], .strings([[65]])), TensorValue(.string, shape: [1], .strings([[66]]))])
        XCTAssertEqual(s.elements, .strings([[66]]))
        fails("Where", [ints([1]), floats([1]), floats([2])])
        fails("Where", [c, floats([1]), ints([2])])
    }

    // MARK: Cast

    func testCastBetweenKinds() throws {
        let to: (DataType) -> [Attribute] = { [Attribute(name: "to", value: .int(Int64($0.rawValue)))] }
        XCTAssertEqual(integers(try run("Cast", [floats([-2.7, 2.7, -0.5, 127.9])], to(.int8))), [-2, 2, 0, 127])
        fails("Cast", [floats([128])], to(.int8))
        fails("Cast", [floats([.nan])], to(.int32))
        fails("Cast", [floats([-1])], to(.uint64))
        XCTAssertEqual(try run("Cast", [floats([1e19], nil, .double)], to(.uint64)).elements, .unsigned([10_000_000_000_000_000_000]))
        XCTAssertEqual(integers(try run("Cast", [ints([300, -1])], to(.uint8))), [44, 255])
        XCTAssertEqual(try run("Cast", [ints([-1], nil, .int8)], to(.uint64)).elements, .unsigned([UInt64.max]))
        XCTAssertEqual(integers(try run("Cast", [uints([UInt64.max])], to(.int64))), [-1])
        // Integers round once into reals.
        XCTAssertEqual(reals(try run("Cast", [ints([(1 << 53) + 1])], to(.float))), [0x1p53])
        XCTAssertEqual(reals(try run("Cast", [ints([(1 << 53) + 1])], to(.double))), [0x1p53])
        // 2^62 + 2^54 + 1 is just above the midpoint of two bfloat16 values: one rounding goes up,
        // rounding through double first would land on the midpoint and go down to even.
        let tricky: Int64 = (1 << 62) + (1 << 54) + 1
        XCTAssertEqual(reals(try run("Cast", [ints([tricky])], to(.bfloat16))), [0x1p62 + 0x1p55])
        XCTAssertEqual(reals(try run("Cast", [uints([UInt64.max])], to(.float))), [0x1p64])
        XCTAssertEqual(reals(try run("Cast", [ints([70000, -3])], to(.float16))), [.infinity, -3])
        XCTAssertEqual(reals(try run("Cast", [floats([0.1], nil, .double)], to(.float))), [Double(Float(0.1))])
        XCTAssertEqual(reals(try run("Cast", [floats([0.1])], to(.double))), [Double(Float(0.1))])
        XCTAssertEqual(reals(try run("Cast", [floats([1 + 0x1p-11], nil, .double)], to(.float16))), [1])
        XCTAssertEqual(booleans(try run("Cast", [floats([0, -0.0, 2, .nan])], to(.bool))), [false, false, true, true])
        XCTAssertEqual(booleans(try run("Cast", [ints([0, 5])], to(.bool))), [false, true])
        XCTAssertEqual(reals(try run("Cast", [bools([true, false])], to(.float16))), [1, 0])
        XCTAssertEqual(integers(try run("Cast", [bools([true, false])], to(.int32))), [1, 0])
        let same = ints([1, 2])
        XCTAssertEqual(try run("Cast", [same], to(.int64)), same)
        // Opset 1 names the type.
        XCTAssertEqual(try run("Cast", [ints([1])], [attr("to", "FLOAT")], opset: 1).dataType, .float)
        fails("Cast", [ints([1])])
        fails("Cast", [ints([1])], to(.string))
        fails("Cast", [ints([1])], to(.float8e4m3fn))
        XCTAssertEqual(integers(try run("CastLike", [floats([3.9]), ints([], [0], .int16)])), [3])
        XCTAssertEqual(try run("CastLike", [floats([3.9]), ints([], [0], .int16)]).dataType, .int16)
    }

    // MARK: Inference

    func testBinaryInferenceBroadcastsSymbols() throws {
        let sum = try infer("Add", [facts(.float, [n, .value(3)]), facts(.float, [.value(1), .value(3)])])
        XCTAssertEqual(sum.elementType, .float)
        XCTAssertEqual(sum.shape, [n, .value(3)])
        XCTAssertEqual(try infer("Mul", [facts(.float, [n, .value(1)]), facts(.float, [m])]).shape, [n, m])
        let mixed = try infer("Sub", [facts(.float, [n]), facts(.float, [m])]).shape
        XCTAssertEqual(mixed?.count, 1)
        XCTAssertTrue(isFresh(mixed?[0]))
        XCTAssertEqual(try infer("Div", [facts(.float, [n, .value(4)]), facts(.float, [])]).shape, [n, .value(4)])
        XCTAssertEqual(try infer("Add", [facts(.float, [n]), ValueFacts(elementType: .float)]).shape, nil)
        XCTAssertThrowsError(try infer("Add", [facts(.float, [.value(2)]), facts(.float, [.value(3)])]))
        let compare = try infer("Less", [facts(.int32, [n, .value(1)]), facts(.int32, [.value(5)])])
        XCTAssertEqual(compare.elementType, .bool)
        XCTAssertEqual(compare.shape, [n, .value(5)])
        XCTAssertEqual(try infer("Pow", [facts(.float, [n]), facts(.int64, [])]).elementType, .float)
        XCTAssertEqual(try infer("BitShift", [facts(.uint8, [n, .value(2)]), facts(.uint8, [.value(2)])]).shape, [n, .value(2)])
        XCTAssertEqual(try infer("Add", [facts(.float, [n, .value(3), .value(4)]), facts(.float, [.value(3)])], opset: 6).shape, [n, .value(3), .value(4)])
        let logic = try infer("And", [facts(.bool, [n]), facts(.bool, [n])])
        XCTAssertEqual(logic.elementType, .bool)
        XCTAssertEqual(logic.shape, [n])
    }

    func testUnaryAndOtherInference() throws {
        for op in ["Relu", "Sqrt", "Gelu", "Clip", "Shrink", "PRelu", "BitwiseNot", "Neg", "Round"] {
            let result = try infer(op, [facts(.float16, [n, .value(3)])])
            XCTAssertEqual(result.elementType, .float16, op)
            XCTAssertEqual(result.shape, [n, .value(3)], op)
        }
        for op in ["IsNaN", "IsInf", "Not"] {
            XCTAssertEqual(try infer(op, [facts(.float, [n])]), ValueFacts(elementType: .bool, shape: [n]), op)
        }
        let variadic = try infer("Max", [facts(.float, [n, .value(1)]), facts(.float, [.value(3)]), facts(.float, [])])
        XCTAssertEqual(variadic.shape, [n, .value(3)])
        XCTAssertEqual(try infer("Mean", [facts(.float, [n])]).shape, [n])
        let chosen = try infer("Where", [facts(.bool, [n, .value(1)]), facts(.int64, [m]), facts(.int64, [])])
        XCTAssertEqual(chosen.elementType, .int64)
        XCTAssertEqual(chosen.shape, [n, m])
        let cast = try infer("Cast", [facts(.float, [n, .value(2)])], [Attribute(name: "to", value: .int(7))])
        XCTAssertEqual(cast.elementType, .int64)
        XCTAssertEqual(cast.shape, [n, .value(2)])
        let castLike = try infer("CastLike", [facts(.float, [n]), ValueFacts(elementType: .float16)])
        XCTAssertEqual(castLike, ValueFacts(elementType: .float16, shape: [n]))
    }

    func testShapeValueArithmetic() throws {
        let four = ValueFacts(constant: .int64Scalar(4))
        // N * 4 is some other number: a fresh symbol; N * 1, N + 0, N / 1 stay N.
        let times4 = try infer("Mul", [dimension(n), four])
        XCTAssertEqual(times4.shape, [])
        XCTAssertEqual(times4.shapeValue?.count, 1)
        XCTAssertTrue(isFresh(times4.shapeValue?[0]))
        XCTAssertEqual(try infer("Mul", [dimension(n), ValueFacts(constant: .int64Scalar(1))]).shapeValue, [n])
        XCTAssertEqual(try infer("Mul", [dimension(n), ValueFacts(constant: .int64Scalar(0))]).shapeValue, [.value(0)])
        XCTAssertEqual(try infer("Add", [ValueFacts(constant: .int64Scalar(0)), dimension(n)]).shapeValue, [n])
        XCTAssertEqual(try infer("Div", [dimension(n), ValueFacts(constant: .int64Scalar(1))]).shapeValue, [n])
        XCTAssertEqual(try infer("Sub", [dimension(n), dimension(n)]).shapeValue, [.value(0)])
        XCTAssertTrue(isFresh(try infer("Div", [dimension(n), dimension(n)]).shapeValue?[0]))
        // Static elements compute.
        let shape = ValueFacts(elementType: .int64, shape: [.value(3)], shapeValue: [n, .value(6), .value(8)])
        let divided = try infer("Div", [shape, ValueFacts(constant: .int64([1, 4, -3]))])
        XCTAssertEqual(divided.shape, [.value(3)])
        XCTAssertEqual(divided.shapeValue, [n, .value(1), .value(-2)])
        XCTAssertEqual(try infer("Add", [shape, ValueFacts(constant: .int64([0]))]).shapeValue, [n, .value(6), .value(8)])
        XCTAssertTrue(isFresh(try infer("Div", [shape, ValueFacts(constant: .int64Scalar(0))]).shapeValue?[1]))
        let negated = try infer("Neg", [shape])
        XCTAssertTrue(isFresh(negated.shapeValue?[0]))
        // -N, N - 4 may be negative: value symbols; N * 4, N + 4 are dimensions.
        func isDimension(_ d: ONNXFuseIR.Dimension?) -> Bool {
            if case .param(let p)? = d { return SymbolAllocator.isDimension(p) }
            return false
        }
        XCTAssertFalse(isDimension(negated.shapeValue?[0]))
        XCTAssertFalse(isDimension(try infer("Sub", [dimension(n), four]).shapeValue?[0]))
        XCTAssertTrue(isDimension(times4.shapeValue?[0]))
        XCTAssertTrue(isDimension(try infer("Add", [dimension(n), four]).shapeValue?[0]))
        XCTAssertEqual(Array(negated.shapeValue?.dropFirst() ?? []), [.value(-6), .value(-8)])
        XCTAssertEqual(try infer("Max", [shape, ValueFacts(constant: .int64([7, 7, 7]))]).shapeValue?.dropFirst().map { $0 },
                       [.value(7), .value(8)])
        XCTAssertEqual(try infer("Min", [shape, shape]).shapeValue, [n, .value(6), .value(8)])
        // No shape value for floats or when an operand has none.
        XCTAssertNil(try infer("Add", [ValueFacts(elementType: .float, shape: []), ValueFacts(constant: TensorValue(.float, shape: [], reals: [1]))]).shapeValue)
        XCTAssertNil(try infer("Add", [ValueFacts(elementType: .int64, shape: [.value(2)]), ValueFacts(constant: .int64([1, 2]))]).shapeValue)
        // int32 arithmetic wraps.
        let int32 = ValueFacts(constant: TensorValue(.int32, shape: [1], integers: [Int64(Int32.max)]))
        XCTAssertEqual(try infer("Add", [int32, int32]).shapeValue, [.value(-2)])
    }

    func testShapeValueSelection() throws {
        // The exporters' pattern Where(Equal(shape, 0), 1, shape).
        let shape = ValueFacts(elementType: .int64, shape: [.value(3)], shapeValue: [n, .value(0), .value(5)])
        let isZero = try infer("Equal", [shape, ValueFacts(constant: .int64Scalar(0))])
        XCTAssertEqual(isZero.elementType, .bool)
        XCTAssertEqual(isZero.shape, [.value(3)])
        XCTAssertTrue(isFresh(isZero.shapeValue?[0]))
        XCTAssertEqual(Array(isZero.shapeValue?.dropFirst() ?? []), [.value(1), .value(0)])
        let picked = try infer("Where", [isZero, ValueFacts(constant: .int64Scalar(1)), shape])
        XCTAssertEqual(picked.shape, [.value(3)])
        XCTAssertTrue(isFresh(picked.shapeValue?[0]))
        XCTAssertEqual(Array(picked.shapeValue?.dropFirst() ?? []), [.value(1), .value(5)])
        // A constant condition picks symbols too; an unknown one keeps what both sides agree on.
        let constant = ValueFacts(constant: .bool([true, false, true], shape: [3]))
        XCTAssertEqual(try infer("Where", [constant, shape, ValueFacts(constant: .int64([9, 9, 9]))]).shapeValue, [n, .value(9), .value(5)])
        let unknown = ValueFacts(elementType: .bool, shape: [.value(3)])
        XCTAssertNil(try infer("Where", [unknown, shape, shape]).shapeValue)
        let agreed = ValueFacts(elementType: .bool, shape: [.value(3)], shapeValue: [.param("unk__9"), .param("unk__9"), .param("unk__9")])
        XCTAssertEqual(try infer("Where", [agreed, shape, shape]).shapeValue, [n, .value(0), .value(5)])
        XCTAssertEqual(try infer("Equal", [dimension(n), dimension(n)]).shapeValue, [.value(1)])
    }

    func testCastKeepsShapeValuesBetweenIntegerTypes() throws {
        let shape = ValueFacts(elementType: .int64, shape: [.value(2)], shapeValue: [n, .value(3)])
        let to32 = try infer("Cast", [shape], [Attribute(name: "to", value: .int(Int64(DataType.int32.rawValue)))])
        XCTAssertEqual(to32.elementType, .int32)
        XCTAssertEqual(to32.shapeValue, [n, .value(3)])
        XCTAssertNil(try infer("Cast", [shape], [Attribute(name: "to", value: .int(Int64(DataType.float.rawValue)))]).shapeValue)
        let toBool = try infer("Cast", [shape], [Attribute(name: "to", value: .int(Int64(DataType.bool.rawValue)))])
        XCTAssertTrue(isFresh(toBool.shapeValue?[0]))
        XCTAssertEqual(toBool.shapeValue?[1], .value(1))
        let wrapped = try infer("Cast", [ValueFacts(constant: .int64([300]))], [Attribute(name: "to", value: .int(Int64(DataType.uint8.rawValue)))])
        XCTAssertEqual(wrapped.shapeValue, [.value(44)])
        XCTAssertEqual(try infer("CastLike", [shape, ValueFacts(elementType: .int32, shape: [])]).shapeValue, [n, .value(3)])
    }

    // MARK: Size and speed

    func testLargeTensorsAreFastAndRefusedBeyondTheLimit() throws {
        let count = 1 << 21
        let a = TensorValue(.float, shape: [count], .reals([Double](repeating: 1.5, count: count)))
        let b = TensorValue(.float, shape: [1], .reals([2]))
        let start = Date()
        let sum = try run("Add", [a, b])
        XCTAssertEqual(sum.count, count)
        _ = try run("Sigmoid", [a])
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        let wide = TensorValue(.float, shape: [1 << 15, 1], .reals([Double](repeating: 0, count: 1 << 15)))
        let tall = TensorValue(.float, shape: [1, 1 << 15], .reals([Double](repeating: 0, count: 1 << 15)))
        fails("Add", [wide, tall])
    }
}
