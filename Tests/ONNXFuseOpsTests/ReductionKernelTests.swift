import Foundation
import ONNXFuseIR
import XCTest

@testable import ONNXFuseOps

private typealias Dimension = ONNXFuseIR.Dimension

/// Kernels and inference of the Reduce* operators, ArgMax/ArgMin, the softmax family and CumSum.
final class ReductionKernelTests: XCTestCase, SingleOutputKernelTestCase {
    // MARK: Helpers

    /// 0, 1, ..., 23 as a [2, 3, 4] tensor.
    private var cube: TensorValue { floats((0..<24).map(Double.init), [2, 3, 4]) }

    // MARK: Reduce*

    func testReduceSumAxesAttributeAndInput() throws {
        let byAttribute = try run("ReduceSum", [cube], [attr("axes", [1])], opset: 11)
        XCTAssertEqual(byAttribute.shape, [2, 1, 4])
        XCTAssertEqual(reals(byAttribute), [12, 15, 18, 21, 48, 51, 54, 57])
        let byInput = try run("ReduceSum", [cube, .int64([-1])], [attr("keepdims", 0)], opset: 13)
        XCTAssertEqual(byInput.shape, [2, 3])
        XCTAssertEqual(reals(byInput), [6, 22, 38, 54, 70, 86])
        // Non-adjacent axes.
        let outer = try run("ReduceSum", [cube, .int64([0, 2])], opset: 13)
        XCTAssertEqual(outer.shape, [1, 3, 1])
        XCTAssertEqual(reals(outer), [6 + 54, 22 + 70, 38 + 86])
        let all = try run("ReduceSum", [cube], [attr("keepdims", 0)], opset: 13)
        XCTAssertEqual(all.shape, [])
        XCTAssertEqual(reals(all), [276])
        XCTAssertEqual(try run("ReduceSum", [cube, .int64([])], opset: 13).shape, [1, 1, 1])
        XCTAssertEqual(try run("ReduceSum", [cube, .int64([])], [attr("noop_with_empty_axes", 1)], opset: 13), cube)
        // Before opset 13 the input is ignored; from 13 the attribute is.
        XCTAssertEqual(try run("ReduceSum", [cube], [attr("axes", [0])], opset: 13).shape, [1, 1, 1])
        fails("ReduceSum", [cube, .int64([1, 1])], opset: 13)
        fails("ReduceSum", [cube, .int64([3])], opset: 13)
    }

    func testReduceSumTypesAndEmptySets() throws {
        XCTAssertEqual(integers(try run("ReduceSum", [ints([Int64(Int32.max), 1], nil, .int32)])), [Int64(Int32.min)])
        XCTAssertEqual(try run("ReduceSum", [TensorValue(.uint64, shape: [2], .unsigned([UInt64.max, 2]))]).elements, .unsigned([1]))
        XCTAssertEqual(integers(try run("ReduceSum", [ints([Int64.max - 1, 1])])), [Int64.max])
        // float16 sums accumulate exactly and round once: 2048 + 1 + 1 is 2050 (stepwise: 2048).
        let half = try run("ReduceSum", [floats([2048, 1, 1], nil, .float16)])
        XCTAssertEqual(half.dataType, .float16)
        XCTAssertEqual(reals(half), [2050])
        let empty = TensorValue(.float, shape: [2, 0], .reals([]))
        XCTAssertEqual(reals(try run("ReduceSum", [empty, .int64([1])], opset: 13)), [0, 0])
        XCTAssertEqual(try run("ReduceSum", [empty, .int64([0])], opset: 13).shape, [1, 0])
    }

    func testOtherReductions() throws {
        let x = floats([1, -2, 3, -4], [2, 2])
        let axis1 = [attr("axes", [1])]
        XCTAssertEqual(reals(try run("ReduceMean", [x], axis1, opset: 13)), [-0.5, -0.5])
        XCTAssertEqual(reals(try run("ReduceProd", [x], axis1, opset: 13)), [-2, -12])
        XCTAssertEqual(reals(try run("ReduceMax", [x], axis1, opset: 13)), [1, 3])
        XCTAssertEqual(reals(try run("ReduceMin", [x], axis1, opset: 13)), [-2, -4])
        XCTAssertEqual(reals(try run("ReduceL1", [x], axis1, opset: 13)), [3, 7])
        XCTAssertEqual(reals(try run("ReduceL2", [x], axis1, opset: 13)), [Double(Float(5.0.squareRoot())), 5])
        XCTAssertEqual(reals(try run("ReduceSumSquare", [x], axis1, opset: 13)), [5, 25])
        assertClose(reals(try run("ReduceLogSum", [floats([1, 2, 3, 4], [2, 2])], axis1, opset: 13)), [log(3), log(7)])
        assertClose(reals(try run("ReduceLogSumExp", [x], axis1, opset: 13)), [log(exp(1) + exp(-2)), log(exp(3) + exp(-4))])
        // The same through the axes input from opset 18.
        XCTAssertEqual(reals(try run("ReduceMax", [x, .int64([0])], opset: 18)), [3, -2])
        XCTAssertEqual(reals(try run("ReduceMean", [x, .int64([0])], [attr("keepdims", 0)], opset: 18)), [2, -3])
        // noop_with_empty_axes keeps the elementwise part.
        XCTAssertEqual(reals(try run("ReduceSumSquare", [x], [attr("noop_with_empty_axes", 1)], opset: 18)), [1, 4, 9, 16])
        XCTAssertEqual(reals(try run("ReduceL1", [x], [attr("noop_with_empty_axes", 1)], opset: 18)), [1, 2, 3, 4])
    }

    func testReductionEdgeCases() throws {
        // LogSumExp of large values does not overflow; of -inf is -inf.
        assertClose(reals(try run("ReduceLogSumExp", [floats([1000, 1000], nil, .double)])), [1000 + log(2)], tolerance: 1e-15)
        XCTAssertEqual(reals(try run("ReduceLogSumExp", [floats([-.infinity, -.infinity])])), [-.infinity])
        XCTAssertEqual(reals(try run("ReduceLogSumExp", [floats([.infinity, 1])])), [.infinity])
        // NaN propagates through Max and Min.
        XCTAssertTrue(reals(try run("ReduceMax", [floats([1, .nan, 3])]))[0].isNaN)
        XCTAssertTrue(reals(try run("ReduceMin", [floats([.nan, 1])]))[0].isNaN)
        // Empty sets.
        let empty = TensorValue(.float, shape: [0, 2], .reals([]))
        let ax0: [TensorValue?] = [empty, .int64([0])]
        XCTAssertEqual(reals(try run("ReduceMax", ax0)), [-.infinity, -.infinity])
        XCTAssertEqual(reals(try run("ReduceMin", ax0)), [.infinity, .infinity])
        XCTAssertEqual(reals(try run("ReduceProd", ax0)), [1, 1])
        XCTAssertEqual(reals(try run("ReduceL2", ax0)), [0, 0])
        XCTAssertEqual(reals(try run("ReduceLogSum", ax0)), [-.infinity, -.infinity])
        XCTAssertEqual(reals(try run("ReduceLogSumExp", ax0)), [-.infinity, -.infinity])
        XCTAssertTrue(reals(try run("ReduceMean", ax0)).allSatisfy(\.isNaN))
        XCTAssertEqual(integers(try run("ReduceMax", [TensorValue(.int8, shape: [0], .integers([]))])), [-128])
        XCTAssertEqual(integers(try run("ReduceMin", [TensorValue(.uint8, shape: [0], .integers([]))])), [255])
        XCTAssertEqual(try run("ReduceMax", [TensorValue(.bool, shape: [0], .booleans([]))]).elements, .booleans([false]))
        fails("ReduceMean", [TensorValue(.int32, shape: [0], .integers([]))])
    }

    func testIntegerAndBoolReductions() throws {
        let x = ints([7, -2, 4, 3], [2, 2], .int32)
        XCTAssertEqual(integers(try run("ReduceMean", [x], [attr("axes", [1])], opset: 13)), [2, 3])
        XCTAssertEqual(integers(try run("ReduceMean", [ints([-7, 0], nil, .int32)])), [-3])
        XCTAssertEqual(integers(try run("ReduceProd", [x])), [-168])
        XCTAssertEqual(integers(try run("ReduceMax", [ints([-5, -3], nil, .int8)])), [-3])
        XCTAssertEqual(integers(try run("ReduceL1", [x])), [16])
        XCTAssertEqual(integers(try run("ReduceL2", [ints([3, 4], nil, .int64)])), [5])
        XCTAssertEqual(integers(try run("ReduceSumSquare", [x])), [78])
        XCTAssertEqual(try run("ReduceL2", [TensorValue(.uint64, shape: [2], .unsigned([3, 4]))]).elements, .unsigned([5]))
        let b = TensorValue(.bool, shape: [2, 2], .booleans([true, false, true, true]))
        XCTAssertEqual(try run("ReduceMax", [b, .int64([1])]).elements, .booleans([true, true]))
        XCTAssertEqual(try run("ReduceMin", [b, .int64([1])]).elements, .booleans([false, true]))
        fails("ReduceSum", [b])
        fails("ReduceLogSum", [x])
    }

    // MARK: ArgMax, ArgMin

    func testArgMaxAndArgMin() throws {
        let x = floats([2, 5, 5, 1, 9, 0], [2, 3])
        let first = try run("ArgMax", [x], [attr("axis", 1)])
        XCTAssertEqual(first.dataType, .int64)
        XCTAssertEqual(first.shape, [2, 1])
        XCTAssertEqual(integers(first), [1, 1])
        XCTAssertEqual(integers(try run("ArgMax", [x], [attr("axis", 1), attr("select_last_index", 1)])), [2, 1])
        let noKeep = try run("ArgMin", [x], [attr("axis", -1), attr("keepdims", 0)])
        XCTAssertEqual(noKeep.shape, [2])
        XCTAssertEqual(integers(noKeep), [0, 2])
        XCTAssertEqual(integers(try run("ArgMax", [x])), [0, 1, 0])
        // NaN is the extreme, as numpy has it.
        XCTAssertEqual(integers(try run("ArgMax", [floats([1, .nan, 3, .nan])])), [1])
        XCTAssertEqual(integers(try run("ArgMin", [floats([1, .nan, -3, .nan])], [attr("select_last_index", 1)])), [3])
        XCTAssertEqual(integers(try run("ArgMin", [ints([3, -1, -1], nil, .int8)], [attr("select_last_index", 1)])), [2])
        XCTAssertEqual(integers(try run("ArgMax", [TensorValue(.uint64, shape: [2], .unsigned([1, UInt64.max]))])), [1])
        fails("ArgMax", [x], [attr("axis", 2)])
        fails("ArgMax", [TensorValue(.float, shape: [2, 0], .reals([]))], [attr("axis", 1)])
        XCTAssertEqual(try run("ArgMax", [TensorValue(.float, shape: [0, 2], .reals([]))], [attr("axis", 1)]).shape, [0, 1])
    }

    // MARK: Softmax family

    func testSoftmaxFamily() throws {
        let x = floats([1, 2, 3, 1, 1, 1], [2, 3], .double)
        let e: [Double] = [exp(1.0), exp(2.0), exp(3.0)]
        let s: Double = e.reduce(0, +)
        let third: Double = 1.0 / 3
        let softmax: [Double] = e.map { $0 / s } + [third, third, third]
        let logSoftmax: [Double] = softmax.map { log($0) }
        assertClose(reals(try run("Softmax", [x])), softmax, tolerance: 1e-15)
        assertClose(reals(try run("LogSoftmax", [x])), logSoftmax, tolerance: 1e-14)
        XCTAssertEqual(reals(try run("Hardmax", [x])), [0, 0, 1, 1, 0, 0])
        let columns: [Double] = [0.5, 1 / (1 + exp(-1.0)), 1 / (1 + exp(-2.0)), 0.5, 1 / (1 + exp(1.0)), 1 / (1 + exp(2.0))]
        assertClose(reals(try run("Softmax", [x], [attr("axis", 0)])), columns, tolerance: 1e-15)
        XCTAssertEqual(reals(try run("Hardmax", [x], [attr("axis", 0)])), [1, 1, 1, 0, 0, 0])
        // Large values do not overflow.
        XCTAssertEqual(reals(try run("Softmax", [floats([1000, 1000])])), [0.5, 0.5])
        // Before opset 13 the input is a matrix at axis (default 1).
        let cube = floats([0, 0, 0, 0, 1, 1, 1, 1], [2, 2, 2])
        XCTAssertEqual(reals(try run("Softmax", [cube], opset: 11)), [0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25])
        XCTAssertEqual(reals(try run("Softmax", [cube], opset: 13)), [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
        XCTAssertEqual(reals(try run("Hardmax", [floats([1, 3, 3, 2], [1, 2, 2])], opset: 11)), [0, 1, 0, 0])
        XCTAssertEqual(reals(try run("Softmax", [floats([5, 7], [2, 1])], [attr("axis", 2)], opset: 11)), [1, 1])
        XCTAssertEqual(reals(try run("Softmax", [floats([0, 0], nil, .float16)])), [0.5, 0.5])
        fails("Softmax", [ints([1, 2])])
        fails("Softmax", [floats([1, 2])], [attr("axis", 1)])
    }

    // MARK: CumSum

    func testCumSum() throws {
        let x = floats([1, 2, 3, 4, 5, 6], [2, 3])
        XCTAssertEqual(reals(try run("CumSum", [x, .int64Scalar(1)])), [1, 3, 6, 4, 9, 15])
        XCTAssertEqual(reals(try run("CumSum", [x, .int64Scalar(0)])), [1, 2, 3, 5, 7, 9])
        XCTAssertEqual(reals(try run("CumSum", [x, .int64Scalar(-1)], [attr("exclusive", 1)])), [0, 1, 3, 0, 4, 9])
        XCTAssertEqual(reals(try run("CumSum", [x, .int64Scalar(1)], [attr("reverse", 1)])), [6, 5, 3, 15, 11, 6])
        XCTAssertEqual(reals(try run("CumSum", [x, .int64Scalar(1)], [attr("reverse", 1), attr("exclusive", 1)])), [5, 3, 0, 11, 6, 0])
        XCTAssertEqual(integers(try run("CumSum", [ints([100, 100, -50], nil, .int8), TensorValue(.int32, shape: [], .integers([0]))])), [100, -56, -106])
        // Each float sum is rounded once.
        XCTAssertEqual(reals(try run("CumSum", [floats([1, 0x1p-24, 0x1p-24]), .int64Scalar(0)])), [1, 1, 1 + 0x1p-23])
        fails("CumSum", [x, .int64Scalar(2)])
        fails("CumSum", [x])
    }

    // MARK: Inference

    func testReduceInference() throws {
        let x = facts(.float, [n, .value(3), m])
        XCTAssertEqual(try infer("ReduceSum", [x, ValueFacts(constant: .int64([1]))]).shape, [n, .value(1), m])
        XCTAssertEqual(try infer("ReduceSum", [x, ValueFacts(constant: .int64([-1, 0]))], [attr("keepdims", 0)]).shape, [.value(3)])
        XCTAssertEqual(try infer("ReduceMean", [x], [attr("axes", [2])], opset: 13).shape, [n, .value(3), .value(1)])
        XCTAssertEqual(try infer("ReduceMean", [x]).shape, [.value(1), .value(1), .value(1)])
        XCTAssertEqual(try infer("ReduceMean", [x], [attr("noop_with_empty_axes", 1)]).shape, [n, .value(3), m])
        XCTAssertEqual(try infer("ReduceMax", [x, ValueFacts(constant: .int64([]))], [attr("keepdims", 0)]).shape, [])
        XCTAssertEqual(try infer("ReduceMax", [x, ValueFacts(elementType: .int64, shape: [.value(1)], shapeValue: [.value(1)])]).shape, [n, .value(1), m])
        XCTAssertEqual(try infer("ReduceL2", [x]).elementType, .float)
        // Unknown axes: each dimension is kept or becomes 1.
        let unknown = try infer("ReduceSum", [facts(.float, [n, .value(1), .value(4)]), facts(.int64, [.value(1)])])
        XCTAssertEqual(unknown.shape?.count, 3)
        XCTAssertTrue(isFresh(unknown.shape?[0]))
        XCTAssertEqual(unknown.shape?[1], .value(1))
        XCTAssertTrue(isFresh(unknown.shape?[2]))
        // Without keepdims, the number of axes gives the rank; as many axes as dimensions reduce all.
        let dropped = try infer("ReduceSum", [x, facts(.int64, [.value(1)])], [attr("keepdims", 0)]).shape
        XCTAssertEqual(dropped?.count, 2)
        XCTAssertTrue(dropped?.allSatisfy(isFresh) ?? false)
        XCTAssertEqual(try infer("ReduceSum", [facts(.float, [n, n, n]), facts(.int64, [.value(2)])], [attr("keepdims", 0)]).shape, [n])
        XCTAssertEqual(try infer("ReduceSum", [x, facts(.int64, [.value(3)])]).shape, [.value(1), .value(1), .value(1)])
        XCTAssertEqual(try infer("ReduceSum", [x, facts(.int64, [.value(3)])], [attr("keepdims", 0)]).shape, [])
        XCTAssertNil(try infer("ReduceSum", [x, facts(.int64, [m])], [attr("keepdims", 0)]).shape)
        // Unknown rank: a full reduction without keepdims is a scalar.
        XCTAssertEqual(try infer("ReduceSum", [ValueFacts(elementType: .float)], [attr("keepdims", 0)]).shape, [])
        XCTAssertNil(try infer("ReduceSum", [ValueFacts(elementType: .float)]).shape)
        XCTAssertThrowsError(try infer("ReduceSum", [x, ValueFacts(constant: .int64([3]))]))
    }

    func testReductionShapeValues() throws {
        // ReduceProd(Shape(x)) of an [N, 1] value is N; of [N, 3] something else.
        let shape = ValueFacts(elementType: .int64, shape: [.value(2)], shapeValue: [n, .value(1)])
        let product = try infer("ReduceProd", [shape], [attr("keepdims", 0)])
        XCTAssertEqual(product.shape, [])
        XCTAssertEqual(product.shapeValue, [n])
        let other = try infer("ReduceProd", [ValueFacts(elementType: .int64, shape: [.value(2)], shapeValue: [n, .value(3)])])
        XCTAssertEqual(other.shape, [.value(1)])
        XCTAssertTrue(isFresh(other.shapeValue?[0]))
        XCTAssertEqual(try infer("ReduceProd", [ValueFacts(constant: .int64([2, 3, 4]))]).shapeValue, [.value(24)])
        XCTAssertEqual(try infer("ReduceSum", [ValueFacts(elementType: .int64, shape: [.value(2)], shapeValue: [n, .value(0)])], opset: 13).shapeValue, [n])
        XCTAssertEqual(try infer("ReduceMax", [ValueFacts(constant: .int64([2, 7, 4]))]).shapeValue, [.value(7)])
        XCTAssertEqual(try infer("ReduceMin", [ValueFacts(elementType: .int64, shape: [.value(2)], shapeValue: [n, n])]).shapeValue, [n])
        XCTAssertNil(try infer("ReduceMean", [ValueFacts(constant: .int64([2, 4]))]).shapeValue)
    }

    func testAxisOperatorInference() throws {
        let x = facts(.float16, [n, .value(3), m])
        let arg = try infer("ArgMax", [x], [attr("axis", 1)])
        XCTAssertEqual(arg, ValueFacts(elementType: .int64, shape: [n, .value(1), m]))
        XCTAssertEqual(try infer("ArgMin", [x], [attr("axis", -1), attr("keepdims", 0)]).shape, [n, .value(3)])
        XCTAssertEqual(try infer("ArgMin", [x]).shape, [.value(1), .value(3), m])
        XCTAssertNil(try infer("ArgMax", [ValueFacts(elementType: .float)]).shape)
        XCTAssertThrowsError(try infer("ArgMax", [x], [attr("axis", 3)]))
        for op in ["Softmax", "LogSoftmax", "Hardmax", "CumSum"] {
            XCTAssertEqual(try infer(op, [x, ValueFacts(constant: .int64Scalar(0))]), x, op)
        }
    }

    func testLargeReductionsAreFast() throws {
        let count = 1 << 21
        let x = TensorValue(.float, shape: [64, 128, 256], .reals([Double](repeating: 0.5, count: count)))
        let start = Date()
        XCTAssertEqual(try run("ReduceMean", [x, .int64([2])]).count, 64 * 128)
        XCTAssertEqual(try run("ReduceSum", [x, .int64([0, 2])]).count, 128)
        XCTAssertEqual(try run("Softmax", [x], [attr("axis", 1)]).count, count)
        XCTAssertLessThan(Date().timeIntervalSince(start), 10)
    }
}
