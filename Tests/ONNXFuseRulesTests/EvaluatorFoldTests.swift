import ONNXFuseOps
import ONNXFuseIR
import XCTest
@testable import ONNXFuseRules

/// The computation of fold-conv-batchnorm, done the way a rule's `compute` block does it
/// (operators and built-ins on `EvalValue`s), checked against values computed by hand in
/// float64:
///
///     k  = scale / sqrt(var + epsilon)
///     w2 = w * reshape(k, [dim(w, 0)] ++ ones(rank(w) - 1))
///     b2 = (b - mean) * k + shift
final class EvaluatorFoldTests: XCTestCase {
    private let functions = FunctionTable.builtins

    private func load(_ type: DataType, _ dims: [Int64], _ floats: [Float]) throws -> EvalValue {
        let tensor = Tensor(dataType: type, dims: dims, values: floats)
        return .tensor(try NDArray(tensor: tensor), type)
    }

    /// Runs the compute block; returns w2 and b2.
    private func fold(
        w: EvalValue, b: EvalValue, scale: EvalValue, shift: EvalValue, mean: EvalValue, variance: EvalValue, epsilon: EvalValue
    ) throws -> (w2: EvalValue, b2: EvalValue) {
        let k = try apply("/", scale, try functions.call("sqrt", [try apply("+", variance, epsilon)]))
        let rankMinusOne = try apply("-", try functions.call("rank", [w]), .integer(1))
        let shape = try apply("++", .list([try functions.call("dim", [w, .integer(0)])]), try functions.call("ones", [rankMinusOne]))
        let w2 = try apply("*", w, try functions.call("reshape", [k, shape]))
        let b2 = try apply("+", try apply("*", try apply("-", b, mean), k), shift)
        return (w2, b2)
    }

    /// The tensor a computed value becomes: finite, rounded once to its element type.
    private func store(_ value: EvalValue) throws -> Tensor {
        guard case .tensor(let array, let type?) = value else {
            throw EvaluationError("not a typed tensor: \(value)")
        }
        XCTAssertTrue(array.isFinite)
        return try array.tensor(as: type)
    }

    private func float32Bits(_ tensor: Tensor) -> [UInt32] {
        guard case .raw(let bytes) = tensor.storage else { return [] }
        return (0..<bytes.count / 4).map { UInt32(littleEndian: bytes.load(elementAt: $0, as: UInt32.self)) }
    }

    /// Values chosen so that every step is exact: var + eps is 4 and 0.25, k is 1.5 and 0.5.
    func testExactSmallConv() throws {
        let w = try load(.float, [2, 1, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8])
        let (w2, b2) = try fold(
            w: w,
            b: try load(.float, [2], [0.5, -1]),
            scale: try load(.float, [2], [3, 0.25]),
            shift: try load(.float, [2], [0.125, 0.25]),
            mean: try load(.float, [2], [1, -2]),
            variance: try load(.float, [2], [3.9375, 0.1875]),
            epsilon: .real(0.0625))
        // k = [3 / sqrt(4), 0.25 / sqrt(0.25)] = [1.5, 0.5].
        // w2: output channel 0 times 1.5, channel 1 times 0.5.
        XCTAssertEqual(w2, .tensor(NDArray(shape: [2, 1, 2, 2], values: [1.5, 3, 4.5, 6, 2.5, 3, 3.5, 4]), .float))
        // b2 = ([0.5, -1] - [1, -2]) * k + shift = [-0.5, 1] * [1.5, 0.5] + [0.125, 0.25] = [-0.625, 0.75].
        XCTAssertEqual(b2, .tensor(NDArray(shape: [2], values: [-0.625, 0.75]), .float))
        let stored = try store(w2)
        XCTAssertEqual(stored.dims, [2, 1, 2, 2])
        XCTAssertEqual(stored.dataType, .float)
        XCTAssertEqual(try NDArray(tensor: stored).values, [1.5, 3, 4.5, 6, 2.5, 3, 3.5, 4])
    }

    /// Realistic float32 values and epsilon 1e-5 (a float attribute). Expected values come from
    /// the same formula evaluated in float64 (Python floats) on the float32 inputs, then
    /// rounded once to float32.
    func testRealisticSmallConv() throws {
        let epsilon = Double(Float(1e-5))  // the attribute is a float32
        let (w2, b2) = try fold(
            w: try load(.float, [2, 1, 2, 2], [0.1, -0.2, 0.3, 0.4, 1.5, -2.5, 0.7, 0.05]),
            b: try load(.float, [2], [0.01, -0.3]),
            scale: try load(.float, [2], [0.9, 1.1]),
            shift: try load(.float, [2], [0.05, -0.02]),
            mean: try load(.float, [2], [0.2, -0.1]),
            variance: try load(.float, [2], [0.5, 2.0]),
            epsilon: .real(epsilon))
        // k = [1.2727794446878198, 0.7778155316275924]
        guard case .tensor(let w2Array, .float?) = w2, case .tensor(let b2Array, .float?) = b2 else {
            return XCTFail("not float tensors: \(w2), \(b2)")
        }
        XCTAssertEqual(w2Array.shape, [2, 1, 2, 2])
        XCTAssertEqual(w2Array.values, [
            0.12727794636537115, -0.2545558927307423, 0.3818338485790593, 0.5091117854614846,
            1.1667232974413886, -1.9445388290689811, 0.5444708628670311, 0.03889077716089735,
        ])
        XCTAssertEqual(b2Array.values, [-0.1918280978232944, -0.17556311399173188])
        XCTAssertEqual(float32Bits(try store(w2)),
                       [0x3E02_5526, 0xBE82_5526, 0x3EC3_7FBA, 0x3F02_5526, 0x3F95_5730, 0xBFF8_E6A6, 0x3F0B_6271, 0x3D1F_4BF0])
        XCTAssertEqual(float32Bits(try store(b2)), [0xBE44_6E96, 0xBE33_C6D1])
    }

    /// A float16 model: the arithmetic runs in float64 and the result is rounded once to
    /// float16 (not step by step).
    func testFloat16ConvRoundsOnce() throws {
        func load16(_ dims: [Int64], _ values: [Float]) throws -> EvalValue {
            let bits = values.map { float16Bits(Double($0)) }
            return .tensor(try NDArray(tensor: Tensor(dataType: .float16, dims: dims, values: bits)), .float16)
        }
        // var + eps = 3 (not a square): k = 1 / sqrt(3) = 0.5773502691896258 in float64.
        let (w2, b2) = try fold(
            w: try load16([2, 1, 2, 2], [1, 2, 3, 4, 1, 1, 1, 1]),
            b: try load16([2], [0, 0]),
            scale: try load16([2], [1, 1]),
            shift: try load16([2], [0, 0]),
            mean: try load16([2], [0, 0]),
            variance: try load16([2], [2.75, 2.75]),
            epsilon: .real(0.25))
        guard case .tensor(let array, .float16?) = w2 else { return XCTFail("not a float16 tensor: \(w2)") }
        let k = 1 / 3.0.squareRoot()
        XCTAssertEqual(array.values, [k, 2 * k, 3 * k, 4 * k, k, k, k, k])
        // 1/sqrt(3) = 0.57735..., float16 0x389E (0.5771484375); 3k = 1.7320508... -> 0x3EEE (1.732421875).
        let stored = try store(w2)
        guard case .raw(let bytes) = stored.storage else { return XCTFail("not raw") }
        let bits = (0..<8).map { UInt16(littleEndian: bytes.load(elementAt: $0, as: UInt16.self)) }
        XCTAssertEqual(bits, [0x389E, 0x3C9E, 0x3EEE, 0x409E, 0x389E, 0x389E, 0x389E, 0x389E])
        XCTAssertEqual(b2, .tensor(NDArray(shape: [2], values: [0, 0]), .float16))
    }

    func testMixedElementTypesAreAnError() throws {
        XCTAssertThrowsError(try fold(
            w: try load(.float, [2, 1, 1, 1], [1, 2]),
            b: .tensor(NDArray([0, 0]), .float16),
            scale: try load(.float, [2], [1, 1]),
            shift: try load(.float, [2], [0, 0]),
            mean: try load(.float, [2], [0, 0]),
            variance: try load(.float, [2], [1, 1]),
            epsilon: .real(0))) { error in
            XCTAssertEqual((error as? EvaluationError)?.message, "the expression mixes float16 and float tensors; cast one of them")
        }
    }

    /// A zero variance with zero epsilon divides by zero: the result is not finite, which the
    /// caller checks before storing.
    func testNonFiniteResultIsVisible() throws {
        let (w2, _) = try fold(
            w: try load(.float, [2, 1, 1, 1], [1, 2]),
            b: try load(.float, [2], [0, 0]),
            scale: try load(.float, [2], [1, 1]),
            shift: try load(.float, [2], [0, 0]),
            mean: try load(.float, [2], [0, 0]),
            variance: try load(.float, [2], [1, 0]),
            epsilon: .real(0))
        guard case .tensor(let array, _) = w2 else { return XCTFail("not a tensor") }
        XCTAssertEqual(array.values, [1, .infinity])
        XCTAssertFalse(array.isFinite)
    }
}
