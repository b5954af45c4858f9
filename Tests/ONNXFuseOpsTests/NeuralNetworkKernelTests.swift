import Foundation
import XCTest
import ONNXFuseIR
@testable import ONNXFuseOps

/// The IR's dimension (Foundation has a `Dimension` too).
private typealias Dimension = ONNXFuseIR.Dimension

/// Kernels and inference of the neural-network family (`NeuralNetwork*.swift`): matrix products,
/// convolutions, pooling, normalizations, and the inference-only operators.
final class NeuralNetworkKernelTests: XCTestCase, KernelTestCase {
    // MARK: Helpers

    /// Runs `op`'s kernel.
    private func run(_ op: String, _ inputs: [TensorValue?], _ attributes: [Attribute] = [], opset: Int64 = 22,
                     domain: String = "") throws -> [TensorValue] {
        try kernelOutputs(op, inputs, attributes, opset: opset, domain: domain)
    }

    /// Runs `op`'s inference.
    private func infer(_ op: String, _ inputs: [ValueFacts?], _ attributes: [Attribute] = [], outputs: Int = 1,
                       opset: Int64 = 22, domain: String = "") throws -> [ValueFacts] {
        try inferredOutputs(op, inputs, attributes, outputs: outputs, opset: opset, domain: domain)
    }

    private func floats(_ shape: [Int], _ values: [Double], _ type: DataType = .float) -> TensorValue {
        TensorValue(type, shape: shape, reals: values)
    }

    private func ints(_ shape: [Int], _ values: [Int64], _ type: DataType = .int64) -> TensorValue {
        TensorValue(type, shape: shape, integers: values)
    }

    /// A deterministic pseudo-random sequence.
    private func sequence(_ count: Int, seed: UInt64, scale: Double = 1) -> [Double] {
        var state = seed &* 6364136223846793005 &+ 1442695040888963407
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return (Double(state >> 40) / Double(1 << 24) - 0.5) * 2 * scale
        }
    }

    // MARK: MatMul

    func testMatMul2DAndBatchedBroadcast() throws {
        let a = floats([2, 3], [1, 2, 3, 4, 5, 6]), b = floats([3, 2], [7, 8, 9, 10, 11, 12])
        XCTAssertEqual(reals(try run("MatMul", [a, b])[0]), [58, 64, 139, 154])
        // (2, 1, 2, 3) x (3, 3, 2) -> (2, 3, 2, 2)
        let x = floats([2, 1, 2, 3], sequence(12, seed: 1)), y = floats([3, 3, 2], sequence(18, seed: 2))
        let out = try run("MatMul", [x, y])[0]
        XCTAssertEqual(out.shape, [2, 3, 2, 2])
        let xs = reals(x), ys = reals(y), os = reals(out)
        for batch in 0..<2 {
            for other in 0..<3 {
                for i in 0..<2 {
                    for j in 0..<2 {
                        var sum = 0.0
                        for k in 0..<3 { sum += xs[batch * 6 + i * 3 + k] * ys[other * 6 + k * 2 + j] }
                        XCTAssertEqual(os[((batch * 3 + other) * 2 + i) * 2 + j], Double(Float(sum)), accuracy: 1e-6)
                    }
                }
            }
        }
    }

    func testMatMulOneDimensionalOperands() throws {
        let v = floats([3], [1, 2, 3]), m2 = floats([3, 2], [1, 0, 0, 1, 1, 1])
        let vm = try run("MatMul", [v, m2])[0]
        XCTAssertEqual(vm.shape, [2])
        XCTAssertEqual(reals(vm), [4, 5])
        let mv = try run("MatMul", [floats([2, 3], [1, 0, 0, 1, 1, 1]), v])[0]
        XCTAssertEqual(mv.shape, [2])
        XCTAssertEqual(reals(mv), [1, 6])
        let dot = try run("MatMul", [v, v])[0]
        XCTAssertEqual(dot.shape, [])
        XCTAssertEqual(reals(dot), [14])
        // (3) x (2, 3, 4) -> (2, 4)
        let batched = try run("MatMul", [v, floats([2, 3, 4], Array(repeating: 1, count: 24))])[0]
        XCTAssertEqual(batched.shape, [2, 4])
        XCTAssertEqual(reals(batched), Array(repeating: 6, count: 8))
        XCTAssertThrowsError(try run("MatMul", [floats([2, 3], Array(repeating: 0, count: 6)), floats([2, 3], Array(repeating: 0, count: 6))]))
        XCTAssertThrowsError(try run("MatMul", [floats([], [1]), v]))
    }

    func testMatMulIntegersWrapAndStayExact() throws {
        // int32 wraps; int64 keeps 2^62-scale products exact; uint64 wraps modulo 2^64.
        let a32 = ints([1, 2], [Int64(Int32.max), 2], .int32), b32 = ints([2, 1], [2, 1], .int32)
        XCTAssertEqual(integers(try run("MatMul", [a32, b32])[0]), [Int64(Int32(truncatingIfNeeded: Int64(Int32.max) * 2 + 2))])
        let big = Int64(1) << 61 + 1
        XCTAssertEqual(integers(try run("MatMul", [ints([1, 1], [big]), ints([1, 1], [3])])[0]), [big &* 3])
        let u = TensorValue(.uint64, shape: [1, 1], .unsigned([UInt64.max])), two = TensorValue(.uint64, shape: [1, 1], .unsigned([2]))
        XCTAssertEqual(try run("MatMul", [u, two])[0].elements, .unsigned([UInt64.max &* 2]))
        XCTAssertEqual(integers(try run("MatMul", [ints([2, 2], [1, 2, 3, 4], .uint32), ints([2, 2], [5, 6, 7, 8], .uint32)])[0]), [19, 22, 43, 50])
    }

    func testMatMulFloat16RoundsOnce() throws {
        let a = floats([1, 3], [0.1, 0.2, 0.3], .float16), b = floats([3, 1], [0.7, 0.11, 0.13], .float16)
        let out = try run("MatMul", [a, b])[0]
        XCTAssertEqual(out.dataType, .float16)
        let av = reals(a), bv = reals(b)
        let exact = av[0] * bv[0] + av[1] * bv[1] + av[2] * bv[2]
        XCTAssertEqual(reals(out), [roundReal(exact, to: .float16)])
        let bf = try run("MatMul", [floats([1, 2], [1, 1], .bfloat16), floats([2, 1], [256, 1], .bfloat16)])[0]
        XCTAssertEqual(reals(bf), [256])  // 257 rounds to even in bfloat16
    }

    func testMatMulNaNAndInfinity() throws {
        let out = try run("MatMul", [floats([1, 2], [.infinity, 1]), floats([2, 1], [0, 1])])[0]
        XCTAssertTrue(reals(out)[0].isNaN)
    }

    func testMatMulInferenceKeepsSymbols() throws {
        let out = try infer("MatMul", [facts(.float, [n, .value(1), .value(4), .value(8)]), facts(.float, [.value(3), .value(8), m])])
        XCTAssertEqual(out[0].elementType, .float)
        XCTAssertEqual(out[0].shape, [n, .value(3), .value(4), m])
        let vector = try infer("MatMul", [facts(.float, [.value(8)]), facts(.float, [n, .value(8), m])])
        XCTAssertEqual(vector[0].shape, [n, m])
        XCTAssertThrowsError(try infer("MatMul", [facts(.float, [.value(2), .value(3)]), facts(.float, [.value(4), .value(2)])]))
        XCTAssertNil(try infer("MatMul", [ValueFacts(elementType: .float), facts(.float, [.value(3)])])[0].shape)
    }

    // MARK: Gemm

    func testGemmTransposesAlphaBetaAndBroadcastC() throws {
        let a = floats([3, 2], [1, 4, 2, 5, 3, 6])  // A^T = [[1,2,3],[4,5,6]]
        let b = floats([2, 3], [7, 9, 11, 8, 10, 12])  // B^T = [[7,8],[9,10],[11,12]]
        let c = floats([2], [1, 2])
        let out = try run("Gemm", [a, b, c], [attr("transA", 1), attr("transB", 1), attr("alpha", float: 2), attr("beta", float: 0.5)])[0]
        XCTAssertEqual(out.shape, [2, 2])
        let expectedGemm: [Double] = [116.5, 129, 278.5, 309]
        XCTAssertEqual(reals(out), expectedGemm)
        // C of shape (2, 1), and no C.
        let column = try run("Gemm", [floats([2, 2], [1, 0, 0, 1]), floats([2, 2], [1, 2, 3, 4]), floats([2, 1], [10, 20])])[0]
        XCTAssertEqual(reals(column), [11, 12, 23, 24])
        XCTAssertEqual(reals(try run("Gemm", [floats([1, 1], [3]), floats([1, 1], [4])])[0]), [12])
        // beta = 0 ignores C, even a NaN one.
        XCTAssertEqual(reals(try run("Gemm", [floats([1, 1], [3]), floats([1, 1], [4]), floats([1], [.nan])], [attr("beta", float: 0)])[0]), [12])
        XCTAssertThrowsError(try run("Gemm", [floats([2, 2], [1, 0, 0, 1]), floats([2, 2], [1, 2, 3, 4]), floats([3], [1, 2, 3])]))
        XCTAssertThrowsError(try run("Gemm", [floats([2, 3], Array(repeating: 1, count: 6)), floats([2, 3], Array(repeating: 1, count: 6))]))
    }

    func testGemmIntegers() throws {
        let a = ints([1, 2], [Int64(Int32.max), 1], .int32), b = ints([2, 1], [1, 1], .int32)
        XCTAssertEqual(integers(try run("Gemm", [a, b, ints([1], [1], .int32)])[0]), [Int64(Int32.min) + 1])
        // A fractional alpha truncates like numpy's astype.
        XCTAssertEqual(integers(try run("Gemm", [ints([1, 1], [3]), ints([1, 1], [3])], [attr("alpha", float: 0.5)])[0]), [4])
        XCTAssertEqual(integers(try run("Gemm", [ints([1, 1], [-3]), ints([1, 1], [3])], [attr("alpha", float: 0.5)])[0]), [-4])
    }

    func testGemmInference() throws {
        let out = try infer("Gemm", [facts(.float, [.value(8), n]), facts(.float, [m, .value(8)]), facts(.float, [m])],
                            [attr("transA", 1), attr("transB", 1)])
        XCTAssertEqual(out[0].shape, [n, m])
        XCTAssertEqual(out[0].elementType, DataType.float)
        XCTAssertThrowsError(try infer("Gemm", [facts(.float, [.value(2), .value(3)]), facts(.float, [.value(4), .value(5)])]))
    }

    // MARK: MatMulInteger

    func testMatMulIntegerZeroPoints() throws {
        let a = ints([2, 2], [10, 20, 30, 40], .uint8), b = ints([2, 2], [1, 2, 3, 4], .int8)
        let out = try run("MatMulInteger", [a, b, ints([], [10], .uint8), ints([2], [1, -1], .int8)])[0]
        XCTAssertEqual(out.dataType, .int32)
        // A - 10 = [[0, 10], [20, 30]]; B - [1, -1] = [[0, 3], [2, 5]]
        XCTAssertEqual(integers(out), [20, 50, 60, 210])
        // Per-row zero point of A.
        let rows = try run("MatMulInteger", [a, b, ints([2], [10, 30], .uint8)])[0]
        XCTAssertEqual(integers(rows), [30, 40, 30, 40])
        let inferred = try infer("MatMulInteger", [facts(.uint8, [n, .value(2)]), facts(.int8, [.value(2), m])])
        XCTAssertEqual(inferred[0].elementType, .int32)
        XCTAssertEqual(inferred[0].shape, [n, m])
    }

    // MARK: Einsum

    func testEinsumForms() throws {
        let a = floats([2, 3], [1, 2, 3, 4, 5, 6]), b = floats([3, 2], [1, 0, 0, 1, 1, 1])
        XCTAssertEqual(reals(try run("Einsum", [a, b], [attr("equation", "ij,jk->ik")])[0]), [4, 5, 10, 11])
        let transposed = try run("Einsum", [a], [attr("equation", "ij->ji")])[0]
        XCTAssertEqual(transposed.shape, [3, 2])
        XCTAssertEqual(reals(transposed), [1, 4, 2, 5, 3, 6])
        // Implicit output: letters used once, sorted; "ij,jk" gives "ik".
        XCTAssertEqual(reals(try run("Einsum", [a, b], [attr("equation", "ij,jk")])[0]), [4, 5, 10, 11])
        // Trace (repeated label), sum, scalar output.
        let square = floats([2, 2], [1, 2, 3, 4])
        let trace = try run("Einsum", [square], [attr("equation", "ii")])[0]
        XCTAssertEqual(trace.shape, [])
        XCTAssertEqual(reals(trace), [5])
        XCTAssertEqual(reals(try run("Einsum", [square], [attr("equation", "ii->i")])[0]), [1, 4])
        XCTAssertEqual(reals(try run("Einsum", [a], [attr("equation", "ij->")])[0]), [21])
        // Ellipsis broadcasting: (2, 1, 2, 3) x (3, 3, 2).
        let x = floats([2, 1, 2, 3], sequence(12, seed: 3)), y = floats([3, 3, 2], sequence(18, seed: 4))
        let viaEinsum = try run("Einsum", [x, y], [attr("equation", "...ij,...jk->...ik")])[0]
        let viaMatMul = try run("MatMul", [x, y])[0]
        XCTAssertEqual(viaEinsum.shape, viaMatMul.shape)
        assertClose(reals(viaEinsum), reals(viaMatMul))
        // Integers wrap.
        let big = ints([2], [Int64(Int32.max), 2], .int32)
        XCTAssertEqual(integers(try run("Einsum", [big, big], [attr("equation", "i,i")])[0]),
                       [Int64(Int32(truncatingIfNeeded: Int64(Int32.max) * Int64(Int32.max) + 4))])
        XCTAssertThrowsError(try run("Einsum", [a, a], [attr("equation", "ij,jk->ik")]))
        XCTAssertThrowsError(try run("Einsum", [a], [attr("equation", "ij->k")]))
    }

    func testEinsumInference() throws {
        let out = try infer("Einsum", [facts(.float, [n, .value(4), .value(5)]), facts(.float, [n, .value(5), m])],
                            [attr("equation", "bij,bjk->bik")])
        XCTAssertEqual(out[0].shape, [n, .value(4), m])
        let implicit = try infer("Einsum", [facts(.float, [n, .value(4), .value(5)])], [attr("equation", "...ij")])
        XCTAssertEqual(implicit[0].shape, [n, .value(4), .value(5)])
        let swapped = try infer("Einsum", [facts(.float, [n, .value(4), .value(5)])], [attr("equation", "...ij->...ji")])
        XCTAssertEqual(swapped[0].shape, [n, .value(5), .value(4)])
        XCTAssertThrowsError(try infer("Einsum", [facts(.float, [.value(2), .value(3)]), facts(.float, [.value(4), .value(2)])],
                                       [attr("equation", "ij,jk->ik")]))
    }

    // MARK: Conv

    /// Every multi-index of `shape`, row-major.
    private func indices(_ shape: [Int]) -> [[Int]] {
        var result: [[Int]] = [[]]
        for dim in shape { result = result.flatMap { prefix in (0..<dim).map { prefix + [$0] } } }
        return result
    }

    private func flat(_ index: [Int], _ shape: [Int]) -> Int { zip(index, shape).reduce(0) { $0 * $1.1 + $1.0 } }

    /// Where kernel tap `k` of the window at `window` (a position of the strided side) lands on
    /// the other side: `window * stride - padBegin + k * dilation` on every spatial axis.
    private func tapPosition(_ window: [Int], _ k: [Int], strides: [Int], dilations: [Int], padBegin: [Int]) -> [Int] {
        (0..<window.count).map { (axis: Int) -> Int in
            let start: Int = window[axis] * strides[axis] - padBegin[axis]
            return start + k[axis] * dilations[axis]
        }
    }

    /// Convolution straight from the definition.
    private func naiveConvolution(x: TensorValue, w: TensorValue, bias: [Double]?, group: Int, strides: [Int], dilations: [Int],
                                  padBegin: [Int], output: [Int]) -> [Double] {
        let xs = reals(x), ws = reals(w)
        let channels = x.shape[1], m = w.shape[0], cg = channels / group, mg = m / group
        let kernel = Array(w.shape[2...]), spatial = Array(x.shape[2...])
        var result: [Double] = []
        for index in indices([x.shape[0], m] + output) {
            let (batch, oc) = (index[0], index[1])
            let o = Array(index[2...])
            var sum = 0.0
            for cl in 0..<cg {
                for k in indices(kernel) {
                    let position = tapPosition(o, k, strides: strides, dilations: dilations, padBegin: padBegin)
                    guard zip(position, spatial).allSatisfy({ $0 >= 0 && $0 < $1 }) else { continue }
                    let c = (oc / mg) * cg + cl
                    sum += xs[flat([batch, c] + position, x.shape)] * ws[flat([oc, cl] + k, w.shape)]
                }
            }
            result.append(sum + (bias?[oc] ?? 0))
        }
        return result
    }

    func testConvMatchesDefinitionAcrossGeometries() throws {
        struct Setup { var x: [Int]; var w: [Int]; var group: Int; var strides: [Int]; var dilations: [Int]; var pads: [Int] }
        let setups = [
            Setup(x: [2, 3, 7], w: [4, 3, 3], group: 1, strides: [2], dilations: [1], pads: [1, 0]),
            Setup(x: [1, 4, 6, 5], w: [6, 2, 3, 2], group: 2, strides: [1, 2], dilations: [2, 1], pads: [2, 0, 1, 1]),
            Setup(x: [1, 3, 5, 5], w: [3, 1, 3, 3], group: 3, strides: [1, 1], dilations: [1, 1], pads: [1, 1, 1, 1]),
            Setup(x: [2, 2, 4, 4], w: [5, 2, 1, 1], group: 1, strides: [1, 1], dilations: [1, 1], pads: [0, 0, 0, 0]),
            Setup(x: [1, 2, 4, 5, 3], w: [2, 2, 2, 3, 2], group: 1, strides: [1, 2, 1], dilations: [1, 1, 2], pads: [0, 1, 1, 1, 0, 1]),
            Setup(x: [1, 2, 3, 3], w: [2, 2, 5, 5], group: 1, strides: [3, 3], dilations: [1, 1], pads: [2, 2, 2, 2]),
        ]
        for (number, setup) in setups.enumerated() {
            let x = floats(setup.x, sequence(setup.x.reduce(1, *), seed: UInt64(10 + number)))
            let w = floats(setup.w, sequence(setup.w.reduce(1, *), seed: UInt64(20 + number)))
            let bias = sequence(setup.w[0], seed: UInt64(30 + number))
            let r = setup.x.count - 2
            let output = (0..<r).map { axis in
                (setup.x[axis + 2] + setup.pads[axis] + setup.pads[axis + r] - (setup.w[axis + 2] - 1) * setup.dilations[axis] - 1)
                    / setup.strides[axis] + 1
            }
            let out = try run("Conv", [x, w, floats([setup.w[0]], bias)],
                              [attr("group", Int64(setup.group)), attr("strides", setup.strides.map(Int64.init)),
                               attr("dilations", setup.dilations.map(Int64.init)), attr("pads", setup.pads.map(Int64.init))])[0]
            XCTAssertEqual(out.shape, [setup.x[0], setup.w[0]] + output, "setup \(number)")
            let expected = naiveConvolution(x: x, w: w, bias: reals(floats([setup.w[0]], bias)), group: setup.group, strides: setup.strides,
                                            dilations: setup.dilations, padBegin: Array(setup.pads[..<r]), output: output)
            assertClose(reals(out), expected.map { Double(Float($0)) }, tolerance: 1e-6)
        }
    }

    func testConvAutoPad() throws {
        let x = floats([1, 1, 4, 4], sequence(16, seed: 5)), w = floats([1, 1, 2, 2], [1, 2, 3, 4])
        // SAME_UPPER puts the odd pad at the end, SAME_LOWER at the beginning.
        let upper = try run("Conv", [x, w], [attr("auto_pad", "SAME_UPPER")])[0]
        let upperExplicit = try run("Conv", [x, w], [attr("pads", [0, 0, 1, 1])])[0]
        XCTAssertEqual(upper, upperExplicit)
        let lower = try run("Conv", [x, w], [attr("auto_pad", "SAME_LOWER")])[0]
        let lowerExplicit = try run("Conv", [x, w], [attr("pads", [1, 1, 0, 0])])[0]
        XCTAssertEqual(lower, lowerExplicit)
        let strided = try run("Conv", [floats([1, 1, 5, 5], sequence(25, seed: 6)), floats([1, 1, 3, 3], sequence(9, seed: 7))],
                              [attr("auto_pad", "SAME_UPPER"), attr("strides", [2, 2])])[0]
        XCTAssertEqual(strided.shape, [1, 1, 3, 3])
        let valid = try run("Conv", [x, w], [attr("auto_pad", "VALID"), attr("pads", [5, 5, 5, 5])])[0]
        XCTAssertEqual(valid.shape, [1, 1, 3, 3])
        XCTAssertThrowsError(try run("Conv", [x, w], [attr("auto_pad", "SAME")]))
    }

    func testConvFloat16AndErrors() throws {
        let x = floats([1, 1, 1, 3], [0.1, 0.2, 0.3], .float16), w = floats([1, 1, 1, 3], [0.3, 0.2, 0.1], .float16)
        let out = try run("Conv", [x, w])[0]
        XCTAssertEqual(out.dataType, .float16)
        let xs = reals(x), ws = reals(w)
        XCTAssertEqual(reals(out), [roundReal(xs[0] * ws[0] + xs[1] * ws[1] + xs[2] * ws[2], to: .float16)])
        XCTAssertThrowsError(try run("Conv", [x, floats([1, 2, 1, 3], Array(repeating: 1, count: 6), .float16)]))
        XCTAssertThrowsError(try run("Conv", [x, floats([1, 1, 1, 3], [1, 1, 1])]))  // type mismatch
        XCTAssertThrowsError(try run("Conv", [x, w], [attr("kernel_shape", [1, 2])]))
        XCTAssertThrowsError(try run("Conv", [x, floats([1, 1, 1, 5], Array(repeating: 1, count: 5), .float16)]))
        XCTAssertThrowsError(try run("Conv", [x, w], [attr("strides", [0, 1])]))
        XCTAssertThrowsError(try run("Conv", [x, w, floats([2], [1, 2], .float16)]))
    }

    func testConvInteger() throws {
        let x = ints([1, 1, 3, 3], [2, 3, 4, 5, 6, 7, 8, 9, 10], .uint8), w = ints([1, 1, 2, 2], [1, 1, 1, 1], .uint8)
        let out = try run("ConvInteger", [x, w, ints([], [1], .uint8)])[0]
        XCTAssertEqual(out.dataType, .int32)
        XCTAssertEqual(out.shape, [1, 1, 2, 2])
        XCTAssertEqual(integers(out), [12, 16, 24, 28])
        let padded = try run("ConvInteger", [x, w, ints([], [1], .uint8)], [attr("pads", [1, 1, 1, 1])])[0]
        XCTAssertEqual(padded.shape, [1, 1, 4, 4])
        XCTAssertEqual(integers(padded)[0], 1)
    }

    func testConvInferenceKeepsSymbols() throws {
        let x = facts(.float, [n, .value(3), .param("H"), .value(224)])
        let w = facts(.float, [.value(64), .value(3), .value(3), .value(3)])
        let same = try infer("Conv", [x, w], [attr("pads", [1, 1, 1, 1])])
        XCTAssertEqual(same[0].shape, [n, .value(64), .param("H"), .value(224)])
        let strided = try infer("Conv", [x, w], [attr("pads", [1, 1, 1, 1]), attr("strides", [2, 2])])
        XCTAssertEqual(strided[0].shape?[3], .value(112))
        XCTAssertTrue(isFresh(strided[0].shape![2]))
        let auto = try infer("Conv", [x, w], [attr("auto_pad", "SAME_UPPER")])
        XCTAssertEqual(auto[0].shape, [n, .value(64), .param("H"), .value(224)])
        let unknownWeights = try infer("Conv", [x, facts(.float, [m, .value(3), .param("K"), .value(3)])])
        XCTAssertEqual(unknownWeights[0].shape?[1], m)
        XCTAssertEqual(unknownWeights[0].shape?[3], .value(222))
        let integer = try infer("ConvInteger", [facts(.uint8, [n, .value(3), .value(8), .value(8)]), facts(.uint8, [.value(4), .value(3), .value(3), .value(3)])])
        XCTAssertEqual(integer[0].elementType, .int32)
        XCTAssertEqual(integer[0].shape, [n, .value(4), .value(6), .value(6)])
        let quantized = try infer("QLinearConv", [facts(.uint8, [n, .value(3), .value(8), .value(8)]), nil, nil,
                                                  facts(.uint8, [.value(4), .value(3), .value(3), .value(3)]), nil, nil, nil,
                                                  facts(.int8, [])])
        XCTAssertEqual(quantized[0].elementType, .int8)
        XCTAssertEqual(quantized[0].shape, [n, .value(4), .value(6), .value(6)])
    }

    // MARK: ConvTranspose

    private func naiveTransposed(x: TensorValue, w: TensorValue, group: Int, strides: [Int], dilations: [Int], padBegin: [Int],
                                 output: [Int]) -> [Double] {
        let xs = reals(x), ws = reals(w)
        let channels = x.shape[1], mg = w.shape[1], m = mg * group, cg = channels / group
        let outShape = [x.shape[0], m] + output
        var result = [Double](repeating: 0, count: outShape.reduce(1, *))
        let kernel = Array(w.shape[2...])
        for index in indices(x.shape) {
            let (batch, c) = (index[0], index[1])
            let i = Array(index[2...])
            for ml in 0..<mg {
                for k in indices(kernel) {
                    let o = tapPosition(i, k, strides: strides, dilations: dilations, padBegin: padBegin)
                    guard zip(o, output).allSatisfy({ $0 >= 0 && $0 < $1 }) else { continue }
                    let oc = (c / cg) * mg + ml
                    result[flat([batch, oc] + o, outShape)] += xs[flat(index, x.shape)] * ws[flat([c, ml] + k, w.shape)]
                }
            }
        }
        return result
    }

    func testConvTransposeMatchesDefinition() throws {
        let x = floats([1, 4, 3, 4], sequence(48, seed: 40)), w = floats([4, 3, 3, 2], sequence(72, seed: 41))
        let out = try run("ConvTranspose", [x, w], [attr("group", 2), attr("strides", [2, 3]), attr("dilations", [1, 2]),
                                                   attr("pads", [1, 0, 0, 2]), attr("output_padding", [1, 1])])[0]
        // (3-1)*2 + 1 + 3 - 1 - 0 = 7; (4-1)*3 + 1 + (2-1)*2+1 - 0 - 2 = 11
        XCTAssertEqual(out.shape, [1, 6, 7, 11])
        let expected = naiveTransposed(x: x, w: w, group: 2, strides: [2, 3], dilations: [1, 2], padBegin: [1, 0], output: [7, 11])
        assertClose(reals(out), expected.map { Double(Float($0)) })
        // output_shape sets the size; the pads split as the specification says.
        let shaped = try run("ConvTranspose", [floats([1, 1, 3], [1, 2, 3]), floats([1, 1, 3], [1, 1, 1])],
                             [attr("strides", [2]), attr("output_shape", [8])])[0]
        XCTAssertEqual(shaped.shape, [1, 1, 8])
        // full size 7, total pad -1: nothing at the beginning, one extra element at the end.
        XCTAssertEqual(reals(shaped), [1, 1, 3, 2, 5, 3, 3, 0])
        let same = try run("ConvTranspose", [floats([1, 1, 3], [1, 2, 3]), floats([1, 1, 3], [1, 1, 1])],
                           [attr("strides", [2]), attr("auto_pad", "SAME_UPPER")])[0]
        XCTAssertEqual(same.shape, [1, 1, 6])
        // total pad 1: SAME_UPPER puts pads[start] = 1 / 2 = 0 at the beginning.
        XCTAssertEqual(reals(same), [1, 1, 3, 2, 5, 3])
        let biased = try run("ConvTranspose", [floats([1, 1, 1], [2]), floats([1, 2, 1], [1, 3]), floats([2], [10, 20])])[0]
        XCTAssertEqual(reals(biased), [12, 26])
    }

    func testConvTransposeInference() throws {
        let x = facts(.float, [n, .value(4), .value(5), .param("W")])
        let w = facts(.float, [.value(4), .value(3), .value(3), .value(3)])
        let out = try infer("ConvTranspose", [x, w], [attr("group", 2), attr("strides", [2, 1]), attr("pads", [0, 1, 0, 1])])
        XCTAssertEqual(out[0].shape, [n, .value(6), .value(11), .param("W")])
        let shaped = try infer("ConvTranspose", [x, w], [attr("output_shape", [9, 9])])
        XCTAssertEqual(shaped[0].shape, [n, .value(3), .value(9), .value(9)])
        let same = try infer("ConvTranspose", [x, w], [attr("auto_pad", "SAME_LOWER"), attr("strides", [2, 1])])
        XCTAssertEqual(same[0].shape, [n, .value(3), .value(10), .param("W")])
    }

    // MARK: Pooling

    func testMaxPoolWithIndicesAndStorageOrder() throws {
        let x = floats([1, 1, 3, 3], [1, 9, 2, 4, 5, 6, 7, 8, 3])
        let out = try run("MaxPool", [x], [attr("kernel_shape", [2, 2])])
        XCTAssertEqual(out[0].shape, [1, 1, 2, 2])
        XCTAssertEqual(reals(out[0]), [9, 9, 8, 8])
        XCTAssertEqual(integers(out[1]), [1, 1, 7, 7])
        let columns = try run("MaxPool", [x], [attr("kernel_shape", [2, 2]), attr("storage_order", 1)])
        XCTAssertEqual(integers(columns[1]), [3, 3, 5, 5])
        // Padding never wins, even against negative values; batch and channel offsets count.
        let negative = floats([1, 2, 1, 2], [-5, -6, -1, -2])
        let padded = try run("MaxPool", [negative], [attr("kernel_shape", [1, 2]), attr("pads", [0, 1, 0, 1])])
        XCTAssertEqual(reals(padded[0]), [-5, -5, -6, -1, -1, -2])
        XCTAssertEqual(integers(padded[1]), [0, 0, 1, 2, 2, 3])
        // int8 and uint8.
        let bytes = try run("MaxPool", [ints([1, 1, 4], [-3, 7, -8, 2], .int8)], [attr("kernel_shape", [2]), attr("strides", [2])])
        XCTAssertEqual(bytes[0].dataType, .int8)
        XCTAssertEqual(integers(bytes[0]), [7, 2])
        XCTAssertThrowsError(try run("MaxPool", [ints([1, 1, 4], [1, 2, 3, 4], .int32)], [attr("kernel_shape", [2])]))
        XCTAssertThrowsError(try run("MaxPool", [x]))  // kernel_shape is required
    }

    func testPoolCeilModeAndDilations() throws {
        let x = floats([1, 1, 5], [1, 2, 3, 4, 5])
        let ceil = try run("MaxPool", [x], [attr("kernel_shape", [2]), attr("strides", [2]), attr("ceil_mode", 1)])
        XCTAssertEqual(reals(ceil[0]), [2, 4, 5])
        let floor = try run("MaxPool", [x], [attr("kernel_shape", [2]), attr("strides", [2])])
        XCTAssertEqual(reals(floor[0]), [2, 4])
        let dilated = try run("MaxPool", [x], [attr("kernel_shape", [2]), attr("dilations", [3])])
        XCTAssertEqual(reals(dilated[0]), [4, 5])
        let average = try run("AveragePool", [x], [attr("kernel_shape", [2]), attr("strides", [2]), attr("ceil_mode", 1)])
        XCTAssertEqual(reals(average[0]), [1.5, 3.5, 5])
    }

    func testAveragePoolCountIncludePad() throws {
        let x = floats([1, 1, 3], [3, 6, 9])
        let excluded = try run("AveragePool", [x], [attr("kernel_shape", [3]), attr("pads", [1, 1])])[0]
        XCTAssertEqual(reals(excluded), [4.5, 6, 7.5])
        let included = try run("AveragePool", [x], [attr("kernel_shape", [3]), attr("pads", [1, 1]), attr("count_include_pad", 1)])[0]
        XCTAssertEqual(reals(included), [3, 6, 5])
        let same = try run("AveragePool", [floats([1, 1, 4], [1, 2, 3, 4])], [attr("kernel_shape", [2]), attr("auto_pad", "SAME_LOWER")])[0]
        XCTAssertEqual(reals(same), [1, 1.5, 2.5, 3.5])
    }

    func testLpPoolAndGlobalPools() throws {
        let x = floats([1, 2, 2], [3, 4, 1, -1])
        XCTAssertEqual(reals(try run("LpPool", [x], [attr("kernel_shape", [2])])[0]), [5, 2.0.squareRoot()].map { Double(Float($0)) })
        XCTAssertEqual(reals(try run("LpPool", [x], [attr("kernel_shape", [2]), attr("p", 1)])[0]), [7, 2])
        let y = floats([1, 2, 2, 2], [1, 2, 3, 4, -1, -2, -3, .nan])
        let average = try run("GlobalAveragePool", [y])[0]
        XCTAssertEqual(average.shape, [1, 2, 1, 1])
        XCTAssertEqual(reals(average)[0], 2.5)
        XCTAssertTrue(reals(average)[1].isNaN)
        let maximum = try run("GlobalMaxPool", [y])[0]
        XCTAssertEqual(reals(maximum)[0], 4)
        XCTAssertTrue(reals(maximum)[1].isNaN)
        XCTAssertEqual(reals(try run("GlobalLpPool", [floats([1, 1, 2], [3, 4])])[0]), [5])
    }

    func testPoolInference() throws {
        let x = facts(.float, [n, .value(64), .param("H"), .value(112)])
        let out = try infer("MaxPool", [x], [attr("kernel_shape", [3, 3]), attr("strides", [2, 2]), attr("pads", [1, 1, 1, 1])], outputs: 2)
        XCTAssertEqual(out[0].shape?[0], n)
        XCTAssertEqual(out[0].shape?[1], .value(64))
        XCTAssertTrue(isFresh(out[0].shape![2]))
        XCTAssertEqual(out[0].shape?[3], .value(56))
        XCTAssertEqual(out[1].elementType, .int64)
        XCTAssertEqual(out[1].shape, out[0].shape)
        let ceil = try infer("AveragePool", [facts(.float, [n, .value(1), .value(5), .value(5)])],
                             [attr("kernel_shape", [2, 2]), attr("strides", [2, 2]), attr("ceil_mode", 1)])
        XCTAssertEqual(ceil[0].shape, [n, .value(1), .value(3), .value(3)])
        let global = try infer("GlobalAveragePool", [x])
        XCTAssertEqual(global[0].shape, [n, .value(64), .value(1), .value(1)])
        let lrn = try infer("LRN", [x], [attr("size", 3)])
        XCTAssertEqual(lrn[0].shape, x.shape)
    }

    func testLRN() throws {
        let x = floats([1, 3, 1, 1], [1, 2, 3])
        let out = try run("LRN", [x], [attr("size", 2), attr("alpha", float: 1), attr("beta", float: 1), attr("bias", float: 1)])[0]
        // size 2: channel c sums squares of c and c + 1.
        let expected = [1 / (1 + 0.5 * 5), 2 / (1 + 0.5 * 13), 3 / (1 + 0.5 * 9)]
        assertClose(reals(out), expected.map { Double(Float($0)) })
        XCTAssertThrowsError(try run("LRN", [x]))
    }

    // MARK: Normalizations

    func testBatchNormalizationInferenceAndTraining() throws {
        let x = floats([2, 2, 1], [1, 2, 3, 4])
        let scale = floats([2], [1, 2]), bias = floats([2], [0, 1]), mean = floats([2], [2, 3]), variance = floats([2], [1, 4])
        let out = try run("BatchNormalization", [x, scale, bias, mean, variance], [attr("epsilon", float: 0)], opset: 15)
        XCTAssertEqual(out.count, 1)
        XCTAssertEqual(reals(out[0]), [-1, 0, 1, 2])
        let training = try run("BatchNormalization", [x, scale, bias, mean, variance],
                               [attr("epsilon", float: 0), attr("training_mode", 1), attr("momentum", float: 0.5)], opset: 15)
        XCTAssertEqual(training.count, 3)
        // Batch statistics: channel 0 holds 1 and 3 (mean 2, variance 1), channel 1 holds 2 and 4.
        XCTAssertEqual(reals(training[0]), [-1, -1, 1, 3])
        XCTAssertEqual(reals(training[1]), [2, 3])
        XCTAssertEqual(reals(training[2]), [1, 2.5])
        // float16 data with float statistics (opset 15).
        let half = try run("BatchNormalization", [floats([1, 1], [0.1], .float16), floats([1], [3]), floats([1], [0]),
                                                  floats([1], [0]), floats([1], [1])], [attr("epsilon", float: 0)], opset: 15)[0]
        XCTAssertEqual(half.dataType, .float16)
        XCTAssertEqual(reals(half), [roundReal(reals(floats([1], [0.1], .float16))[0] * 3, to: .float16)])
        XCTAssertThrowsError(try run("BatchNormalization", [x, floats([3], [1, 1, 1]), bias, mean, variance]))
        let inferred = try infer("BatchNormalization", [facts(.float16, [n, .value(8), .value(4)]), nil, nil, facts(.float, [.value(8)]), nil],
                                 outputs: 3, opset: 15)
        XCTAssertEqual(inferred[0].shape, [n, .value(8), .value(4)])
        XCTAssertEqual(inferred[1].elementType, .float)
        XCTAssertEqual(inferred[2].shape, [.value(8)])
    }

    func testInstanceAndGroupNormalization() throws {
        let x = floats([1, 2, 2], [1, 3, 5, 9])
        let instance = try run("InstanceNormalization", [x, floats([2], [1, 2]), floats([2], [0, 1])], [attr("epsilon", float: 0)])[0]
        XCTAssertEqual(reals(instance), [-1, 1, -1, 3])
        // One group over both channels: mean 4.5, variance 8.75.
        let group = try run("GroupNormalization", [x, floats([2], [1, 1]), floats([2], [0, 0])],
                            [attr("num_groups", 1), attr("epsilon", float: 0)], opset: 21)[0]
        let d = 8.75.squareRoot()
        assertClose(reals(group), [(1 - 4.5) / d, (3 - 4.5) / d, (5 - 4.5) / d, (9 - 4.5) / d].map { Double(Float($0)) })
        // Opset 18: one scale per group.
        let old = try run("GroupNormalization", [x, floats([2], [1, 2]), floats([2], [0, 1])],
                          [attr("num_groups", 2), attr("epsilon", float: 0)], opset: 18)[0]
        XCTAssertEqual(reals(old), [-1, 1, -1, 3])
        XCTAssertThrowsError(try run("GroupNormalization", [x, floats([2], [1, 1]), floats([2], [0, 0])], [attr("num_groups", 3)], opset: 21))
    }

    func testLayerNormalization() throws {
        let x = floats([2, 2], [1, 3, 2, 2])
        let out = try run("LayerNormalization", [x, floats([2], [1, 2]), floats([2], [0, 1])], [attr("epsilon", float: 0)], opset: 17)
        XCTAssertEqual(out.count, 3)
        XCTAssertEqual(reals(out[0])[0], -1)
        XCTAssertEqual(reals(out[0])[1], 3)
        XCTAssertTrue(reals(out[0])[2].isNaN)  // zero variance and zero epsilon
        XCTAssertEqual(out[1].shape, [2, 1])
        XCTAssertEqual(reals(out[1]), [2, 2])
        XCTAssertEqual(reals(out[2])[0], 1)
        let axis0 = try run("LayerNormalization", [x, floats([2, 2], [1, 1, 1, 1])], [attr("axis", 0)], opset: 17)
        XCTAssertEqual(axis0[1].shape, [1, 1])
        let inferred = try infer("LayerNormalization", [facts(.float16, [n, m, .value(8)]), facts(.float16, [.value(8)])],
                                 [attr("axis", -1)], outputs: 3, opset: 17)
        XCTAssertEqual(inferred[0].shape, [n, m, .value(8)])
        XCTAssertEqual(inferred[0].elementType, .float16)
        XCTAssertEqual(inferred[1].elementType, .float)
        XCTAssertEqual(inferred[2].shape, [n, m, .value(1)])
    }

    func testMeanVarianceAndLpNormalization() throws {
        let x = floats([2, 1, 1, 1], [1, 3])
        let mvn = try run("MeanVarianceNormalization", [x])[0]
        assertClose(reals(mvn), [-1, 1], tolerance: 1e-6)
        let lp = try run("LpNormalization", [floats([2, 2], [3, 4, 0, 0])])[0]
        XCTAssertEqual(reals(lp), [0.6, 0.8].map { Double(Float($0)) } + [0, 0])
        let l1 = try run("LpNormalization", [floats([2, 2], [1, -3, 2, 2])], [attr("axis", 0), attr("p", 1)])[0]
        XCTAssertEqual(reals(l1), [1.0 / 3, -0.6, 2.0 / 3, 0.4].map { Double(Float($0)) })
        XCTAssertThrowsError(try run("LpNormalization", [x], [attr("p", 3)]))
    }

    func testRMSNormalization() throws {
        let out = try run("RMSNormalization", [floats([2, 2], [3, 4, 0, 0]), floats([2], [1, 2])], [attr("epsilon", float: 0)], opset: 23)[0]
        let r = (12.5).squareRoot()
        XCTAssertEqual(reals(out)[0], Double(Float(3 / r)))
        XCTAssertEqual(reals(out)[1], Double(Float(8 / r)))
        XCTAssertTrue(reals(out)[2].isNaN)
        let inferred = try infer("RMSNormalization", [facts(.float, [n, .value(4)]), facts(.float16, [.value(4)])], opset: 23)
        XCTAssertEqual(inferred[0].elementType, .float16)
        XCTAssertEqual(inferred[0].shape, [n, .value(4)])
    }

    // MARK: Limits and empty tensors

    func testAbsurdAttributesAndEmptyTensorsNeverCrash() throws {
        let x = floats([1, 1, 1, 1], [1]), w = floats([1, 1, 1, 1], [2])
        XCTAssertThrowsError(try run("Conv", [x, w], [attr("pads", [1 << 30, 0, 0, 0])]))
        XCTAssertThrowsError(try run("Conv", [x, w], [attr("pads", [1 << 20, 1 << 20, 1 << 20, 1 << 20])]))  // output too large
        XCTAssertThrowsError(try run("ConvTranspose", [x, w], [attr("strides", [Int64(Int32.max), 1])]))
        XCTAssertThrowsError(try run("MaxPool", [floats([1, 1, 1, 1, 1], [1])],
                                     [attr("kernel_shape", [1 << 20, 1 << 20, 1 << 20]), attr("pads", [1 << 19, 1 << 19, 1 << 19, 1 << 19, 1 << 19, 1 << 19])]))
        XCTAssertThrowsError(try run("LRN", [x], [attr("size", Int64.max)]))
        // Empty tensors give empty (or zero) results.
        let empty = try run("Conv", [floats([0, 1, 3, 3], []), floats([2, 1, 2, 2], Array(repeating: 1, count: 8))])[0]
        XCTAssertEqual(empty.shape, [0, 2, 2, 2])
        let noChannels = try run("Conv", [floats([1, 0, 3], []), floats([2, 0, 2], []), floats([2], [1, 2])])[0]
        XCTAssertEqual(reals(noChannels), [1, 1, 2, 2])
        let zeroK = try run("MatMul", [floats([2, 0], []), floats([0, 3], [])])[0]
        XCTAssertEqual(zeroK.shape, [2, 3])
        XCTAssertEqual(reals(zeroK), Array(repeating: 0, count: 6))
        XCTAssertEqual(try run("MaxPool", [floats([0, 1, 4], [])], [attr("kernel_shape", [2])])[0].shape, [0, 1, 3])
        XCTAssertEqual(try run("BatchNormalization", [floats([0, 2], []), floats([2], [1, 1]), floats([2], [0, 0]), floats([2], [0, 0]),
                                                      floats([2], [1, 1])], opset: 15)[0].shape, [0, 2])
        XCTAssertEqual(try run("Einsum", [floats([0, 2], [])], [attr("equation", "ij->j")])[0].elements, .reals([0, 0]))
    }

    /// Random shapes, types and attributes: kernels and inference throw or succeed, never crash.
    func testMalformedNodesNeverCrash() throws {
        let ops = ["MatMul", "Gemm", "MatMulInteger", "Einsum", "Conv", "ConvInteger", "ConvTranspose", "MaxPool", "AveragePool",
                   "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "LRN", "BatchNormalization",
                   "InstanceNormalization", "LayerNormalization", "GroupNormalization", "MeanVarianceNormalization",
                   "LpNormalization", "RMSNormalization", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
                   "QLinearMatMul", "QLinearConv", "RNN", "GRU", "LSTM", "Attention", "RotaryEmbedding", "NonMaxSuppression",
                   "RoiAlign", "GridSample", "AffineGrid", "DFT", "STFT", "RandomNormal", "RandomUniformLike", "Multinomial",
                   "StringNormalizer", "If", "Loop", "Scan"]
        let types: [DataType] = [.float, .float16, .double, .int8, .uint8, .int32, .int64, .uint64, .bool]
        let names = ["transA", "transB", "alpha", "beta", "group", "kernel_shape", "strides", "dilations", "pads", "auto_pad",
                     "output_padding", "output_shape", "ceil_mode", "storage_order", "count_include_pad", "p", "size", "axis",
                     "axes", "epsilon", "num_groups", "training_mode", "block_size", "output_dtype", "hidden_size", "layout",
                     "direction", "q_num_heads", "kv_num_heads", "equation", "dtype", "shape", "sample_size", "num_scan_inputs"]
        var state = UInt64(ProcessInfo.processInfo.environment["NN_FUZZ_SEED"] ?? "") ?? 12345
        func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(bound))
        }
        func randomTensor() -> TensorValue {
            let shape = (0..<next(6)).map { _ in next(4) }
            let count = shape.reduce(1, *)
            let type = types[next(types.count)]
            switch TensorValue.kind(of: type)! {
            case .real: return TensorValue(type, shape: shape, reals: (0..<count).map { _ in Double(next(9)) - 4 })
            case .integer: return TensorValue(type, shape: shape, integers: (0..<count).map { _ in Int64(next(9)) - 4 })
            case .unsigned: return TensorValue(type, shape: shape, .unsigned((0..<count).map { _ in UInt64(next(9)) }))
            default: return TensorValue(type, shape: shape, .booleans((0..<count).map { _ in next(2) == 1 }))
            }
        }
        func randomAttribute() -> Attribute {
            let name = names[next(names.count)]
            let values: [Int64] = [0, 1, 2, 3, -1, -7, Int64(Int32.max), Int64.max, Int64.min, 1 << 40]
            switch next(5) {
            case 0: return attr(name, values[next(values.count)])
            case 1: return attr(name, (0..<next(7)).map { _ in values[next(values.count)] })
            case 2: return attr(name, float: [Float(0), -1, 0.5, .nan, .infinity][next(5)])
            case 3: return attr(name, ["SAME_UPPER", "VALID", "ij,jk->ik", "...i->i", "bidirectional", "ii", "->", "..."][next(8)])
            default: return attr(name, (0..<next(4)).map { _ in Int64(next(5)) })
            }
        }
        let rounds = Int(ProcessInfo.processInfo.environment["NN_FUZZ_ROUNDS"] ?? "") ?? 3000
        for round in 0..<rounds {
            let op = ops[round % ops.count]
            let inputs: [TensorValue?] = (0..<next(10)).map { _ in next(6) == 0 ? nil : randomTensor() }
            let attributes = (0..<next(5)).map { _ in randomAttribute() }
            let opset = [7, 13, 18, 21, 23][next(5)]
            if let kernel = registry.kernel(op) {
                _ = try? kernel(OperatorContext(opType: op, opsetVersion: Int64(opset), attributes: attributes), inputs)
            }
            let facts: [ValueFacts?] = inputs.map { value in
                value.map { v in ValueFacts(elementType: v.dataType, shape: v.shape.map { next(3) == 0 ? .param("S\($0)") : .value(Int64($0)) }) }
            }
            _ = try? infer(op, facts, attributes, outputs: next(5), opset: Int64(opset))
        }
        // Valid nodes with extreme attributes and dimensions.
        let bases: [(String, [TensorValue])] = [
            ("Conv", [floats([1, 2, 5, 5], sequence(50, seed: 1)), floats([2, 2, 3, 3], sequence(36, seed: 2))]),
            ("ConvTranspose", [floats([1, 2, 3, 3], sequence(18, seed: 3)), floats([2, 2, 2, 2], sequence(16, seed: 4))]),
            ("ConvInteger", [ints([1, 1, 4], [1, 2, 3, 4], .uint8), ints([1, 1, 2], [1, 1], .uint8)]),
            ("MaxPool", [floats([1, 1, 4, 4], sequence(16, seed: 5))]),
            ("AveragePool", [floats([1, 1, 4, 4], sequence(16, seed: 6))]),
            ("LpPool", [floats([1, 1, 4], sequence(4, seed: 7))]),
            ("Gemm", [floats([2, 2], [1, 2, 3, 4]), floats([2, 2], [1, 2, 3, 4]), floats([2], [1, 2])]),
            ("LRN", [floats([1, 3, 2], sequence(6, seed: 8))]),
            ("LayerNormalization", [floats([2, 3], sequence(6, seed: 9)), floats([3], [1, 1, 1])]),
            ("GroupNormalization", [floats([1, 4, 2], sequence(8, seed: 10)), floats([4], [1, 1, 1, 1]), floats([4], [0, 0, 0, 0])]),
            ("QuantizeLinear", [floats([2, 4], sequence(8, seed: 11)), floats([2, 2], [1, 1, 1, 1])]),
            ("Einsum", [floats([2, 3], sequence(6, seed: 12)), floats([3, 2], sequence(6, seed: 13))]),
        ]
        let extremes: [Int64] = [0, 1, 2, 5, -1, 100, 1 << 31, Int64(Int32.max), Int64.max, Int64.min]
        for round in 0..<rounds {
            let (op, inputs) = bases[round % bases.count]
            let attributes = (0..<(1 + next(3))).map { _ -> Attribute in
                let name = names[next(names.count)]
                return next(2) == 0 ? attr(name, extremes[next(extremes.count)])
                    : attr(name, (0..<(1 + next(6))).map { _ in extremes[next(extremes.count)] })
            }
            _ = try? registry.kernel(op)?(OperatorContext(opType: op, opsetVersion: 21, attributes: attributes), inputs)
            let facts: [ValueFacts?] = inputs.map { v in
                ValueFacts(elementType: v.dataType, shape: v.shape.map { _ in
                    [Dimension.param("S"), .value(extremes[next(extremes.count)]), .value(Int64(next(5)))][next(3)]
                })
            }
            _ = try? infer(op, facts, attributes, outputs: 3, opset: 21)
        }
    }

    // MARK: Quantization

    func testQuantizeAndDequantizeLinear() throws {
        let x = floats([2, 3], [-1.5, 0.25, 2.5, 300, -300, 3.5])
        let q = try run("QuantizeLinear", [x, floats([], [0.5]), ints([], [10], .uint8)], opset: 21)[0]
        XCTAssertEqual(q.dataType, .uint8)
        // x / 0.5 rounds half to even, then + 10, saturated.
        XCTAssertEqual(integers(q), [7, 10, 15, 255, 0, 17])
        let signed = try run("QuantizeLinear", [x, floats([], [1])], [attr("output_dtype", 3)], opset: 21)[0]
        XCTAssertEqual(signed.dataType, .int8)
        XCTAssertEqual(integers(signed), [-2, 0, 2, 127, -128, 4])
        XCTAssertEqual(try run("QuantizeLinear", [x, floats([], [1])], opset: 13)[0].dataType, .uint8)
        // Per-axis (axis 1) and blocked (block_size 2 on axis 1) parameters.
        let perAxis = try run("DequantizeLinear", [ints([2, 3], [1, 2, 3, 4, 5, 6], .int8), floats([3], [1, 10, 100]), ints([3], [0, 1, 2], .int8)], opset: 21)[0]
        XCTAssertEqual(reals(perAxis), [1, 10, 100, 4, 40, 400])
        let blocked = try run("DequantizeLinear", [ints([2, 3], [1, 2, 3, 4, 5, 6], .int8), floats([2, 2], [1, 10, 100, 1000])],
                              [attr("block_size", 2)], opset: 21)[0]
        XCTAssertEqual(reals(blocked), [1, 2, 30, 400, 500, 6000])
        let half = try run("DequantizeLinear", [ints([1], [3], .uint8), floats([], [0.1], .float16)], opset: 21)[0]
        XCTAssertEqual(half.dataType, .float16)
        XCTAssertEqual(reals(half), [roundReal(3 * reals(floats([], [0.1], .float16))[0], to: .float16)])
        XCTAssertThrowsError(try run("DequantizeLinear", [ints([2, 3], [1, 2, 3, 4, 5, 6], .int8), floats([2], [1, 2])], opset: 21))
        XCTAssertThrowsError(try run("QuantizeLinear", [floats([1], [.nan]), floats([], [1])], opset: 21))
    }

    func testQuantizedProductsAndConvolution() throws {
        let dynamic = try run("DynamicQuantizeLinear", [floats([3], [0, 2, -1.5])])
        XCTAssertEqual(reals(dynamic[1]), [Double(Float(Float(3.5) / 255))])
        XCTAssertEqual(integers(dynamic[2]), [109])
        XCTAssertEqual(integers(dynamic[0]), [109, 255, 0])
        let a = ints([1, 2], [3, 5], .uint8), b = ints([2, 1], [2, 4], .uint8)
        let product = try run("QLinearMatMul", [a, floats([], [0.5]), ints([], [1], .uint8), b, floats([], [1]), ints([], [0], .uint8),
                                                floats([], [2]), ints([], [100], .uint8)])[0]
        // (2 * 2 + 4 * 4) * 0.5 / 2 + 100 = 105
        XCTAssertEqual(integers(product), [105])
        let conv = try run("QLinearConv", [ints([1, 1, 2, 2], [1, 2, 3, 4], .uint8), floats([], [1]), ints([], [0], .uint8),
                                           ints([2, 1, 1, 1], [1, 2], .int8), floats([2], [1, 0.5]), ints([2], [0, 0], .int8),
                                           floats([], [1]), ints([], [0], .int8), ints([2], [1, -1], .int32)])[0]
        XCTAssertEqual(conv.dataType, .int8)
        XCTAssertEqual(integers(conv), [2, 3, 4, 5, 0, 2, 2, 4])  // (x * 2 - 1) * 0.5: 0.5 and 2.5 round to even
    }

    /// Every operator of the onnx package's bundled models and of the fixtures that this family
    /// owns has inference.
    func testBundledModelOperatorsOfThisFamilyHaveInference() {
        let owned = ["AveragePool", "BatchNormalization", "Conv", "ConvTranspose", "Gemm", "GlobalAveragePool", "If",
                     "InstanceNormalization", "LRN", "MatMul", "MaxPool", "ConcatFromSequence", "SequenceAt", "SequenceConstruct",
                     "SequenceEmpty", "SequenceErase", "SequenceInsert", "SequenceLength", "SplitToSequence", "StringNormalizer"]
        for op in owned { XCTAssertNotNil(registry.inference(op), op) }
        XCTAssertNotNil(registry.inference("Scaler", domain: "ai.onnx.ml"))
        XCTAssertNotNil(registry.inference("Gradient", domain: "ai.onnx.preview.training"))
        for op in ["AveragePool", "BatchNormalization", "Conv", "ConvTranspose", "Gemm", "GlobalAveragePool",
                   "InstanceNormalization", "LRN", "MatMul", "MaxPool"] {
            XCTAssertNotNil(registry.kernel(op), op)
        }
        // Random operators have no kernel.
        for op in ["RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial"] {
            XCTAssertNil(registry.kernel(op), op)
            XCTAssertNotNil(registry.inference(op), op)
        }
    }

    // MARK: Inference-only operators

    func testRecurrentInference() throws {
        let x = facts(.float, [.param("S"), n, .value(10)])
        let lstm = try infer("LSTM", [x, nil, facts(.float, [.value(2), .value(80), .value(20)])], [attr("direction", "bidirectional")], outputs: 3)
        XCTAssertEqual(lstm[0].shape, [.param("S"), .value(2), n, .value(20)])
        XCTAssertEqual(lstm[1].shape, [.value(2), n, .value(20)])
        XCTAssertEqual(lstm[2].shape, [.value(2), n, .value(20)])
        let gru = try infer("GRU", [facts(.float, [n, .param("S"), .value(10)])], [attr("hidden_size", 5), attr("layout", 1)], outputs: 2)
        XCTAssertEqual(gru[0].shape, [n, .param("S"), .value(1), .value(5)])
        XCTAssertEqual(gru[1].shape, [n, .value(1), .value(5)])
    }

    func testQuantizationAndAttentionInference() throws {
        let q = try infer("QuantizeLinear", [facts(.float, [n, .value(3)]), facts(.float, []), facts(.int8, [])])
        XCTAssertEqual(q[0].elementType, .int8)
        XCTAssertEqual(q[0].shape, [n, .value(3)])
        XCTAssertEqual(try infer("QuantizeLinear", [facts(.float, [n]), facts(.float, [])])[0].elementType, .uint8)
        XCTAssertEqual(try infer("DequantizeLinear", [facts(.int8, [n]), facts(.float16, [])])[0].elementType, .float16)
        let dynamic = try infer("DynamicQuantizeLinear", [facts(.float, [n, m])], outputs: 3)
        XCTAssertEqual(dynamic[1].shape, [])
        XCTAssertEqual(dynamic[2].elementType, .uint8)
        let matmul = try infer("QLinearMatMul", [facts(.uint8, [n, .value(4)]), nil, nil, facts(.uint8, [.value(4), m]), nil, nil, nil, facts(.uint8, [])])
        XCTAssertEqual(matmul[0].shape, [n, m])
        let attention = try infer("Attention", [facts(.float, [n, .param("S"), .value(64)]), facts(.float, [n, .param("L"), .value(32)]),
                                                facts(.float, [n, .param("L"), .value(48)]), nil,
                                                facts(.float, [n, .value(2), .param("P"), .value(16)]), nil],
                                  [attr("q_num_heads", 4), attr("kv_num_heads", 2)], outputs: 4)
        XCTAssertEqual(attention[0].shape, [n, .param("S"), .value(96)])
        XCTAssertEqual(attention[1].shape?[0], n)
        XCTAssertEqual(attention[1].shape?[1], .value(2))
        XCTAssertTrue(isFresh(attention[1].shape![2]))  // P + L
        XCTAssertEqual(attention[1].shape?[3], .value(16))
        XCTAssertEqual(attention[2].shape?[3], .value(24))
        XCTAssertEqual(attention[3].shape?[1], .value(4))
    }

    func testRandomAndMiscellaneousInference() throws {
        let normal = try infer("RandomNormal", [], [attr("shape", [2, 3]), attr("dtype", 11)])
        XCTAssertEqual(normal[0].elementType, .double)
        XCTAssertEqual(normal[0].shape, [.value(2), .value(3)])
        XCTAssertEqual(try infer("RandomUniformLike", [facts(.float16, [n])])[0].elementType, .float16)
        XCTAssertEqual(try infer("Bernoulli", [facts(.float, [n])], [attr("dtype", 9)])[0].elementType, .bool)
        let multinomial = try infer("Multinomial", [facts(.float, [n, .value(5)])], [attr("sample_size", 7)])
        XCTAssertEqual(multinomial[0].elementType, .int32)
        XCTAssertEqual(multinomial[0].shape, [n, .value(7)])
        let nms = try infer("NonMaxSuppression", [facts(.float, [n, .value(6), .value(4)])])
        XCTAssertEqual(nms[0].shape?[1], .value(3))
        let grid = try infer("GridSample", [facts(.float, [n, .value(3), .value(8), .value(8)]), facts(.float, [n, .value(4), .value(5), .value(2)])])
        XCTAssertEqual(grid[0].shape, [n, .value(3), .value(4), .value(5)])
        let affine = try infer("AffineGrid", [facts(.float, [n, .value(2), .value(3)]),
                                              ValueFacts(elementType: .int64, shape: [.value(4)], shapeValue: [n, .value(3), m, .value(5)])])
        XCTAssertEqual(affine[0].shape, [n, m, .value(5), .value(2)])
        XCTAssertEqual(try infer("SequenceLength", [nil])[0].shape, [])
        let scaler = try run("Scaler", [ints([2, 2], [1, 2, 3, 4])], [attr("offset", .floats([1, 2])), attr("scale", .floats([2]))],
                             opset: 1, domain: "ai.onnx.ml")[0]
        XCTAssertEqual(scaler.dataType, .float)
        XCTAssertEqual(reals(scaler), [0, 0, 4, 4])
        let strings = try infer("StringNormalizer", [facts(.string, [.value(1), .value(4)])])
        XCTAssertEqual(strings[0].shape?[0], .value(1))
        XCTAssertTrue(isFresh(strings[0].shape![1]))
    }

    // MARK: Official cases: inference

    /// The operators whose inference this family provides.
    static let inferredOperators: Set<String> = [
        "MatMul", "Gemm", "MatMulInteger", "QLinearMatMul", "Einsum", "Conv", "ConvInteger", "QLinearConv", "ConvTranspose",
        "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "LRN",
        "BatchNormalization", "InstanceNormalization", "LayerNormalization", "GroupNormalization",
        "MeanVarianceNormalization", "LpNormalization", "RMSNormalization", "RNN", "GRU", "LSTM", "QuantizeLinear", "DequantizeLinear",
        "DynamicQuantizeLinear", "Attention", "RotaryEmbedding", "If", "Loop", "Scan", "NonMaxSuppression", "RoiAlign",
        "GridSample", "AffineGrid", "DFT", "STFT", "RandomNormal", "RandomUniform", "RandomNormalLike",
        "RandomUniformLike", "Bernoulli", "Multinomial", "StringNormalizer", "SequenceLength",
    ]

    /// Every official case made of one node of this family: inference from the declared inputs,
    /// and again with the inputs' data as constants, never contradicts the expected outputs.
    func testInferenceAgreesWithOfficialCases() throws {
        var checked = 0, fullyStatic = 0
        var failures: [String] = []
        for path in try NodeCase.paths() {
            let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            if name.hasSuffix("_expanded") || name.contains("_expanded_") { continue }
            let testCase = try NodeCase.load(path: path)
            let nodes = Array(testCase.model.graph.nodes)
            guard nodes.count == 1, nodes[0].isDefaultDomain, Self.inferredOperators.contains(nodes[0].opType) else { continue }
            for frozen in [false, true] {
                let inference = ShapeInference(model: testCase.model, freezeInitializerInputs: frozen)
                inference.run()
                var allStatic = true
                for output in testCase.model.graph.outputs {
                    guard let expected = testCase.expected.first(where: { $0.name == output.value.name })?.tensor else { continue }
                    let facts = output.value.inferred
                    if let type = facts?.elementType, type != expected.dataType {
                        failures.append("\(name) (frozen: \(frozen)): \(output.value.name) is \(type), expected \(expected.dataType)")
                    }
                    guard let shape = facts?.shape else { allStatic = false; continue }
                    if shape.count != expected.dims.count {
                        failures.append("\(name) (frozen: \(frozen)): \(output.value.name) has shape \(shape), expected \(expected.dims)")
                        continue
                    }
                    for (dim, want) in zip(shape, expected.dims) {
                        if case .value(let v) = dim {
                            if v != want { failures.append("\(name) (frozen: \(frozen)): \(output.value.name) has shape \(shape), expected \(expected.dims)") }
                        } else {
                            allStatic = false
                        }
                    }
                }
                if frozen && allStatic { fullyStatic += 1 }
                if frozen && !allStatic && ProcessInfo.processInfo.environment["NN_VERBOSE"] != nil { print("not static: \(name)") }
            }
            checked += 1
        }
        print("neural-network inference: \(checked) official cases checked, \(fullyStatic) fully static with constant inputs")
        XCTAssertGreaterThan(checked, 300)
        XCTAssertTrue(failures.isEmpty, failures.prefix(40).joined(separator: "\n"))
    }
}
