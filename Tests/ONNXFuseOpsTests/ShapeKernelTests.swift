import Foundation
import XCTest
import ONNXFuseIR
@testable import ONNXFuseOps

/// The IR's dimension (Foundation has a `Dimension` too).
private typealias Dimension = ONNXFuseIR.Dimension

/// Kernels and inference of the shape and data-movement family (`Operators+Shape.swift`,
/// `ShapeOps*.swift`).
final class ShapeKernelTests: XCTestCase, KernelTestCase {
    // MARK: Helpers

    /// Runs `op`'s kernel.
    private func run(_ op: String, _ inputs: [TensorValue?], _ attributes: [Attribute] = [], opset: Int64 = 21,
                     outputs: Int = 1) throws -> [TensorValue] {
        try kernelOutputs(op, inputs, attributes, opset: opset, outputs: outputs)
    }

    /// Runs `op`'s kernel, expecting an error.
    private func assertKernelFails(_ op: String, _ inputs: [TensorValue?], _ attributes: [Attribute] = [], opset: Int64 = 21,
                                   outputs: Int = 1, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try run(op, inputs, attributes, opset: opset, outputs: outputs), file: file, line: line)
    }

    /// Runs `op`'s inference.
    private func infer(_ op: String, _ inputs: [ValueFacts?], _ attributes: [Attribute] = [], outputs: Int = 1,
                       opset: Int64 = 21) throws -> [ValueFacts] {
        try inferredOutputs(op, inputs, attributes, outputs: outputs, opset: opset, taken: ["N", "S", "B"])
    }

    private func f32(_ shape: [Int], _ values: [Double]) -> TensorValue { TensorValue(.float, shape: shape, reals: values) }
    private func f16(_ shape: [Int], _ values: [Double]) -> TensorValue { TensorValue(.float16, shape: shape, reals: values) }
    private func ints(_ shape: [Int], _ values: [Int64], _ type: DataType = .int64) -> TensorValue {
        TensorValue(type, shape: shape, integers: values)
    }
    private func i64(_ values: [Int64]) -> TensorValue { .int64(values) }
    private func scalar(_ value: Int64) -> TensorValue { .int64Scalar(value) }
    private func iota(_ shape: [Int], _ type: DataType = .int64) -> TensorValue {
        ints(shape, (0..<Int64(shapeProduct(shape)!)).map { $0 }, type)
    }

    private func attr(_ name: String, tensor: TensorValue) -> Attribute { Attribute(name: name, value: .tensor(tensor.tensor())) }

    /// The symbolic dimensions these tests name besides N (inference avoids them).
    private let s: Dimension = .param("S")
    private let b: Dimension = .param("B")
    private func v(_ x: Int64) -> Dimension { .value(x) }

    // MARK: Shape and Size

    func testShapeKernel() throws {
        let x = f32([2, 3, 4], Array(repeating: 0, count: 24))
        XCTAssertEqual(try run("Shape", [x])[0], i64([2, 3, 4]))
        XCTAssertEqual(try run("Shape", [x], [attr("start", -2)], opset: 15)[0], i64([3, 4]))
        XCTAssertEqual(try run("Shape", [x], [attr("end", 1)], opset: 15)[0], i64([2]))
        XCTAssertEqual(try run("Shape", [x], [attr("start", 5), attr("end", -10)], opset: 15)[0], i64([]))
        // Before opset 15 start/end do not exist.
        XCTAssertEqual(try run("Shape", [x], [attr("start", 1)], opset: 13)[0], i64([2, 3, 4]))
        XCTAssertEqual(try run("Shape", [scalar(3)])[0], i64([]))
    }

    func testShapeInferenceGivesTheShapeAsValue() throws {
        let out = try infer("Shape", [facts(.float, [n, v(3), v(224), v(224)])])[0]
        XCTAssertEqual(out.elementType, .int64)
        XCTAssertEqual(out.shape, [v(4)])
        XCTAssertEqual(out.shapeValue, [n, v(3), v(224), v(224)])
        let sliced = try infer("Shape", [facts(.float, [n, v(3), v(224)])], [attr("start", 1)], opset: 15)[0]
        XCTAssertEqual(sliced.shape, [v(2)])
        XCTAssertEqual(sliced.shapeValue, [v(3), v(224)])
        let unknownRank = try infer("Shape", [ValueFacts(elementType: .float)])[0]
        XCTAssertTrue(isFresh(unknownRank.shape?[0]))
        XCTAssertNil(unknownRank.shapeValue)
    }

    func testSize() throws {
        XCTAssertEqual(try run("Size", [f32([2, 3], Array(repeating: 1, count: 6))])[0], scalar(6))
        XCTAssertEqual(try infer("Size", [facts(.float, [v(2), v(3)])])[0].shapeValue, [v(6)])
        XCTAssertEqual(try infer("Size", [facts(.float, [n, v(1)])])[0].shapeValue, [n])
        XCTAssertEqual(try infer("Size", [facts(.float, [n, v(0)])])[0].shapeValue, [v(0)])
        let product = try infer("Size", [facts(.float, [n, v(3)])])[0]
        XCTAssertEqual(product.shape, [])
        XCTAssertNil(product.shapeValue)
    }

    // MARK: Reshape

    func testReshapeKernel() throws {
        let x = iota([2, 3, 4], .int8)
        let r = try run("Reshape", [x, i64([0, -1])])[0]
        XCTAssertEqual(r.shape, [2, 12])
        XCTAssertEqual(r.dataType, .int8)
        XCTAssertEqual(integers(r), (0..<24).map { Int64($0) })
        XCTAssertEqual(try run("Reshape", [x, i64([-1])])[0].shape, [24])
        XCTAssertEqual(try run("Reshape", [x, i64([4, 0, 2])])[0].shape, [4, 3, 2])
        assertKernelFails("Reshape", [x, i64([5, -1])])
        assertKernelFails("Reshape", [x, i64([-1, -1])])
        assertKernelFails("Reshape", [x, i64([0, 0, 0, 0])])
        // allowzero: 0 is a literal zero (opset 14 on).
        let empty = TensorValue(.float, shape: [0, 3], .reals([]))
        XCTAssertEqual(try run("Reshape", [empty, i64([3, 0])], [attr("allowzero", 1)], opset: 14)[0].shape, [3, 0])
        assertKernelFails("Reshape", [empty, i64([3, 0])], [attr("allowzero", 0)], opset: 14)
        // Opset 1: shape attribute.
        XCTAssertEqual(try run("Reshape", [x], [attr("shape", [6, 4])], opset: 1)[0].shape, [6, 4])
        let half = try run("Reshape", [f16([4], [0.5, 1, 65504, -2]), i64([2, 2])])[0]
        XCTAssertEqual(half.dataType, .float16)
        XCTAssertEqual(reals(half), [0.5, 1, 65504, -2])
    }

    func testReshapeInferenceSolvesMinusOneSymbolically() throws {
        let out = try infer("Reshape", [facts(.float, [n, v(3), v(4)]), ValueFacts(constant: i64([0, -1]))])[0]
        XCTAssertEqual(out.shape, [n, v(12)])
        // A target given as a shape value with symbols keeps exactly those symbols.
        let target = facts(.int64, [v(4)], value: [b, s, v(12), v(64)])
        XCTAssertEqual(try infer("Reshape", [facts(.float, [b, s, v(768)]), target])[0].shape, [b, s, v(12), v(64)])
        // [B, S, 12, 64] -> [0, 0, -1]: 768.
        let back = try infer("Reshape", [facts(.float, [b, s, v(12), v(64)]), ValueFacts(constant: i64([0, 0, -1]))])[0]
        XCTAssertEqual(back.shape, [b, s, v(768)])
        // -1 absorbing a symbol.
        let flat = try infer("Reshape", [facts(.float, [n, v(3), v(4)]), ValueFacts(constant: i64([-1, 4]))])[0]
        XCTAssertEqual(flat.shape?[1], v(4))
        XCTAssertTrue(isFresh(flat.shape?[0]), "3N is no single symbol")
        let flat2 = try infer("Reshape", [facts(.float, [n, v(3), v(4)]), ValueFacts(constant: i64([-1, 12]))])[0]
        XCTAssertEqual(flat2.shape, [n, v(12)])
        // Unknown target of known length: rank only.
        let unknown = try infer("Reshape", [facts(.float, [n, v(3)]), facts(.int64, [v(3)])])[0]
        XCTAssertEqual(unknown.shape?.count, 3)
        XCTAssertTrue(unknown.shape!.allSatisfy(isFresh))
        // Static mismatch is an error.
        XCTAssertThrowsError(try infer("Reshape", [facts(.float, [v(2), v(3)]), ValueFacts(constant: i64([4, -1]))]))
        // allowzero keeps literal zeros.
        let zero = try infer("Reshape", [facts(.float, [v(0), v(3)]), ValueFacts(constant: i64([3, 0]))], [attr("allowzero", 1)])[0]
        XCTAssertEqual(zero.shape, [v(3), v(0)])
        // Reshape of a shape value.
        let reshaped = try infer("Reshape", [facts(.int64, [], value: [n]), ValueFacts(constant: i64([1]))])[0]
        XCTAssertEqual(reshaped.shape, [v(1)])
        XCTAssertEqual(reshaped.shapeValue, [n])
    }

    /// `Shape(x) -> Gather(…, 0) -> Unsqueeze -> Concat(…, [-1]) -> Reshape`, the exporters' flatten.
    func testShapeGatherUnsqueezeConcatReshapeChain() throws {
        let x = facts(.float, [n, v(3), v(224), v(224)])
        let shape = try infer("Shape", [x])[0]
        let batch = try infer("Gather", [shape, ValueFacts(constant: scalar(0))])[0]
        XCTAssertEqual(batch.shape, [])
        XCTAssertEqual(batch.shapeValue, [n])
        let unsqueezed = try infer("Unsqueeze", [batch, ValueFacts(constant: i64([0]))], opset: 13)[0]
        XCTAssertEqual(unsqueezed.shape, [v(1)])
        XCTAssertEqual(unsqueezed.shapeValue, [n])
        let target = try infer("Concat", [unsqueezed, ValueFacts(constant: i64([-1]))], [attr("axis", 0)])[0]
        XCTAssertEqual(target.shape, [v(2)])
        XCTAssertEqual(target.shapeValue, [n, v(-1)])
        let reshaped = try infer("Reshape", [x, target])[0]
        XCTAssertEqual(reshaped.shape, [n, v(150528)])
        // The static dimension can be read as a constant.
        let channels = try infer("Gather", [shape, ValueFacts(constant: scalar(-3))])[0]
        XCTAssertEqual(channels.shapeValue, [v(3)])
        XCTAssertEqual(ValueFacts(elementType: .int64, shape: [], shapeValue: channels.shapeValue).staticShapeValue, [3])
    }

    /// `Shape -> Slice -> Concat -> Expand` and `ConstantOfShape(Shape(x))`.
    func testShapeSliceConcatExpandAndConstantOfShape() throws {
        let x = facts(.float, [b, s, v(768)])
        let shape = try infer("Shape", [x])[0]
        let prefix = try infer("Slice", [shape, ValueFacts(constant: i64([0])), ValueFacts(constant: i64([2]))], opset: 13)[0]
        XCTAssertEqual(prefix.shape, [v(2)])
        XCTAssertEqual(prefix.shapeValue, [b, s])
        let target = try infer("Concat", [prefix, ValueFacts(constant: i64([1, 1]))], [attr("axis", 0)])[0]
        XCTAssertEqual(target.shapeValue, [b, s, v(1), v(1)])
        let mask = facts(.bool, [v(1), v(1), s, s])
        let expanded = try infer("Expand", [mask, target])[0]
        XCTAssertEqual(expanded.shape, [b, s, s, s])
        let zeros = try infer("ConstantOfShape", [shape], [attr("value", tensor: ints([1], [7], .int32))])[0]
        XCTAssertEqual(zeros.elementType, .int32)
        XCTAssertEqual(zeros.shape, [b, s, v(768)])
        let defaults = try infer("ConstantOfShape", [prefix])[0]
        XCTAssertEqual(defaults.elementType, .float)
        XCTAssertEqual(defaults.shape, [b, s])
        // Slice from the end with a huge end.
        let tail = try infer("Slice", [shape, ValueFacts(constant: i64([-1])), ValueFacts(constant: i64([Int64.max]))], opset: 13)[0]
        XCTAssertEqual(tail.shapeValue, [v(768)])
    }

    /// `Range(0, Gather(Shape(x), 1), 1)`: positions.
    func testRangeOverAGatheredDimension() throws {
        let shape = try infer("Shape", [facts(.float, [b, s, v(768)])])[0]
        let length = try infer("Gather", [shape, ValueFacts(constant: scalar(1))])[0]
        let positions = try infer("Range", [ValueFacts(constant: scalar(0)), length, ValueFacts(constant: scalar(1))])[0]
        XCTAssertEqual(positions.elementType, .int64)
        XCTAssertEqual(positions.shape, [s])
        // Static through the shape value: exact length and elements.
        let hidden = try infer("Gather", [shape, ValueFacts(constant: scalar(2))])[0]
        let steps = try infer("Range", [ValueFacts(constant: scalar(0)), hidden, ValueFacts(constant: scalar(256))])[0]
        XCTAssertEqual(steps.shape, [v(3)])
        XCTAssertEqual(steps.shapeValue, [v(0), v(256), v(512)])
        // A start other than 0: unknown length.
        let shifted = try infer("Range", [ValueFacts(constant: scalar(1)), length, ValueFacts(constant: scalar(1))])[0]
        XCTAssertTrue(isFresh(shifted.shape?[0]))
    }

    // MARK: Flatten, Squeeze, Unsqueeze, Identity

    func testFlatten() throws {
        let x = iota([2, 3, 4], .uint16)
        XCTAssertEqual(try run("Flatten", [x])[0].shape, [2, 12])
        XCTAssertEqual(try run("Flatten", [x], [attr("axis", 0)])[0].shape, [1, 24])
        XCTAssertEqual(try run("Flatten", [x], [attr("axis", 3)])[0].shape, [24, 1])
        XCTAssertEqual(try run("Flatten", [x], [attr("axis", -1)])[0].shape, [6, 4])
        assertKernelFails("Flatten", [x], [attr("axis", 4)])
        XCTAssertEqual(try infer("Flatten", [facts(.float, [n, v(3), v(4)])])[0].shape, [n, v(12)])
        XCTAssertEqual(try infer("Flatten", [facts(.float, [n, v(3), v(4)])], [attr("axis", 2)])[0].shape?[1], v(4))
        XCTAssertEqual(try infer("Flatten", [facts(.float, [v(2), n])], [attr("axis", 0)])[0].shape?[0], v(1))
        XCTAssertTrue(isFresh(try infer("Flatten", [facts(.float, [v(2), n])], [attr("axis", 0)])[0].shape?[1]))
    }

    func testSqueezeAndUnsqueeze() throws {
        let x = iota([1, 3, 1, 2], .int32)
        XCTAssertEqual(try run("Squeeze", [x])[0].shape, [3, 2])
        XCTAssertEqual(try run("Squeeze", [x, i64([-2])], opset: 13)[0].shape, [1, 3, 2])
        XCTAssertEqual(try run("Squeeze", [x], [attr("axes", [0])], opset: 11)[0].shape, [3, 1, 2])
        assertKernelFails("Squeeze", [x, i64([1])], opset: 13)
        assertKernelFails("Squeeze", [x, i64([0, 0])], opset: 13)
        XCTAssertEqual(try run("Unsqueeze", [x, i64([0, -1])], opset: 13)[0].shape, [1, 1, 3, 1, 2, 1])
        XCTAssertEqual(try run("Unsqueeze", [x], [attr("axes", [2])], opset: 11)[0].shape, [1, 3, 1, 1, 2])
        XCTAssertEqual(try run("Unsqueeze", [scalar(5), i64([0])], opset: 13)[0], i64([5]))
        assertKernelFails("Unsqueeze", [x, i64([6])], opset: 13)

        let symbolic = facts(.float, [n, v(1), s])
        XCTAssertEqual(try infer("Squeeze", [symbolic, ValueFacts(constant: i64([1]))], opset: 13)[0].shape, [n, s])
        XCTAssertNil(try infer("Squeeze", [symbolic], opset: 13)[0].shape, "N or S could be 1")
        XCTAssertEqual(try infer("Squeeze", [facts(.float, [v(1), v(3)])], opset: 13)[0].shape, [v(3)])
        XCTAssertThrowsError(try infer("Squeeze", [facts(.float, [v(2), v(1)]), ValueFacts(constant: i64([0]))], opset: 13))
        XCTAssertEqual(try infer("Squeeze", [symbolic], [attr("axes", [1])], opset: 11)[0].shape, [n, s])
        XCTAssertEqual(try infer("Unsqueeze", [symbolic, ValueFacts(constant: i64([0, 4]))], opset: 13)[0].shape, [v(1), n, v(1), s, v(1)])
        XCTAssertEqual(try infer("Unsqueeze", [symbolic], [attr("axes", [-1])], opset: 11)[0].shape, [n, v(1), s, v(1)])
        let unknownAxes = try infer("Unsqueeze", [symbolic, facts(.int64, [v(2)])], opset: 13)[0]
        XCTAssertEqual(unknownAxes.shape?.count, 5)
        // Shape values pass through.
        let squeezed = try infer("Squeeze", [facts(.int64, [v(1)], value: [n]), ValueFacts(constant: i64([0]))], opset: 13)[0]
        XCTAssertEqual(squeezed.shape, [])
        XCTAssertEqual(squeezed.shapeValue, [n])
    }

    func testIdentity() throws {
        let x = TensorValue(.string, shape: [2], .strings([Array("a".utf8), Array("bc".utf8)]))
        XCTAssertEqual(try run("Identity", [x])[0], x)
        let out = try infer("Identity", [facts(.int64, [v(2)], value: [n, v(3)])])[0]
        XCTAssertEqual(out.shape, [v(2)])
        XCTAssertEqual(out.shapeValue, [n, v(3)])
    }

    // MARK: Constant and ConstantOfShape

    func testConstant() throws {
        XCTAssertEqual(try run("Constant", [], [attr("value_ints", [1, 2])])[0], i64([1, 2]))
        XCTAssertEqual(try run("Constant", [], [attr("value_int", 7)])[0], scalar(7))
        XCTAssertEqual(try run("Constant", [], [attr("value_float", float: 0.1)])[0], f32([], [Double(Float(0.1))]))
        XCTAssertEqual(try run("Constant", [], [Attribute(name: "value_floats", value: .floats([1, 2.5]))])[0], f32([2], [1, 2.5]))
        XCTAssertEqual(try run("Constant", [], [attr("value_string", "hi")])[0], TensorValue(.string, shape: [], .strings([Array("hi".utf8)])))
        let half = f16([2, 2], [1, 2, 3, 0.099975586])
        XCTAssertEqual(try run("Constant", [], [attr("value", tensor: half)])[0], half)
        let uint64 = TensorValue(.uint64, shape: [1], .unsigned([UInt64.max]))
        XCTAssertEqual(try run("Constant", [], [attr("value", tensor: uint64)])[0], uint64)
        assertKernelFails("Constant", [])
        let inferred = try infer("Constant", [], [attr("value_ints", [3, 4])])[0]
        XCTAssertEqual(inferred.shapeValue, [v(3), v(4)])
        XCTAssertEqual(try infer("Constant", [], [attr("value", tensor: half)])[0].shape, [v(2), v(2)])
    }

    func testConstantOfShape() throws {
        let filled = try run("ConstantOfShape", [i64([2, 3])], [attr("value", tensor: ints([1], [-5], .int8))])[0]
        XCTAssertEqual(filled, ints([2, 3], Array(repeating: -5, count: 6), .int8))
        XCTAssertEqual(try run("ConstantOfShape", [i64([2])])[0], f32([2], [0, 0]))
        XCTAssertEqual(try run("ConstantOfShape", [i64([])])[0], f32([], [0]))
        XCTAssertEqual(try run("ConstantOfShape", [i64([0, 4])])[0].shape, [0, 4])
        assertKernelFails("ConstantOfShape", [i64([-1])])
        assertKernelFails("ConstantOfShape", [i64([1 << 20, 1 << 20])])
        // A known shape value of ones is a shape value too.
        let ones = try infer("ConstantOfShape", [facts(.int64, [v(1)], value: [v(3)])], [attr("value", tensor: i64([1]))])[0]
        XCTAssertEqual(ones.shape, [v(3)])
        XCTAssertEqual(ones.shapeValue, [v(1), v(1), v(1)])
        let unknown = try infer("ConstantOfShape", [facts(.int64, [v(2)])])[0]
        XCTAssertEqual(unknown.shape?.count, 2)
    }

    // MARK: Range

    func testRangeKernel() throws {
        XCTAssertEqual(try run("Range", [scalar(3), scalar(9), scalar(3)])[0], i64([3, 6]))
        XCTAssertEqual(try run("Range", [scalar(10), scalar(4), scalar(-2)])[0], i64([10, 8, 6]))
        XCTAssertEqual(try run("Range", [scalar(10), scalar(4), scalar(2)])[0], i64([]))
        let top = try run("Range", [scalar(Int64.max - 2), scalar(Int64.max), scalar(1)])[0]
        XCTAssertEqual(top, i64([Int64.max - 2, Int64.max - 1]))
        XCTAssertEqual(try run("Range", [scalar(Int64.min), scalar(Int64.max), scalar(Int64.max)])[0].count, 3)
        assertKernelFails("Range", [scalar(0), scalar(Int64.max), scalar(1)])
        assertKernelFails("Range", [scalar(0), scalar(4), scalar(0)])
        let small = ints([], [1], .int16)
        XCTAssertEqual(try run("Range", [small, ints([], [7], .int16), ints([], [2], .int16)])[0], ints([3], [1, 3, 5], .int16))
        let real = try run("Range", [f32([], [1]), f32([], [2]), f32([], [0.3])])[0]
        XCTAssertEqual(real.shape, [4])
        // numpy's arange in double, rounded once to float32.
        let step = Double(Float(0.3))
        XCTAssertEqual(reals(real), [1, 1 + step, 1 + 2 * step, 1 + 3 * step].map { Double(Float($0)) })
        let half = try run("Range", [f16([], [0]), f16([], [1]), f16([], [0.25])], opset: 27)[0]
        XCTAssertEqual(reals(half), [0, 0.25, 0.5, 0.75])
        XCTAssertEqual(try infer("Range", [ValueFacts(constant: f32([], [0])), ValueFacts(constant: f32([], [1])),
                                             ValueFacts(constant: f32([], [0.1]))])[0].shape, [v(10)])
    }

    // MARK: Concat and Split

    func testConcat() throws {
        let a = iota([2, 2], .int32), b2 = ints([2, 1], [7, 8], .int32)
        XCTAssertEqual(try run("Concat", [a, b2], [attr("axis", 1)])[0], ints([2, 3], [0, 1, 7, 2, 3, 8], .int32))
        XCTAssertEqual(try run("Concat", [a, a], [attr("axis", -2)])[0].shape, [4, 2])
        let u = TensorValue(.uint64, shape: [1], .unsigned([UInt64.max]))
        XCTAssertEqual(try run("Concat", [u, u], [attr("axis", 0)])[0], TensorValue(.uint64, shape: [2], .unsigned([.max, .max])))
        let strings = TensorValue(.string, shape: [1], .strings([Array("x".utf8)]))
        XCTAssertEqual(try run("Concat", [strings, strings], [attr("axis", 0)])[0].count, 2)
        XCTAssertEqual(try run("Concat", [a, TensorValue(.int32, shape: [0, 2], .integers([]))], [attr("axis", 0)])[0], a)
        assertKernelFails("Concat", [a, b2], [attr("axis", 0)])
        assertKernelFails("Concat", [a, iota([2, 2])], [attr("axis", 0)])
        assertKernelFails("Concat", [a, a], opset: 11)
        // Opset 1 defaults the axis to 1.
        XCTAssertEqual(try run("Concat", [f32([1, 1], [1]), f32([1, 1], [2])], opset: 1)[0].shape, [1, 2])

        let out = try infer("Concat", [facts(.float, [n, v(3)]), facts(.float, [n, s]), facts(.float, [v(2), v(4)])], [attr("axis", 1)])[0]
        XCTAssertEqual(out.shape?[0], v(2), "inputs agree at run time, so N is 2")
        XCTAssertTrue(isFresh(out.shape?[1]))
        let rows = try infer("Concat", [facts(.float, [n, v(3)]), facts(.float, [v(0), v(3)])], [attr("axis", 0)])[0]
        XCTAssertEqual(rows.shape, [n, v(3)])
        let sum = try infer("Concat", [facts(.float, [v(2), v(3)]), facts(.float, [v(5), v(3)])], [attr("axis", 0)])[0]
        XCTAssertEqual(sum.shape, [v(7), v(3)])
    }

    func testSplit() throws {
        let x = iota([2, 6], .int16)
        let parts = try run("Split", [x, i64([2, 4])], [attr("axis", 1)], opset: 13)
        XCTAssertEqual(parts.count, 2)
        XCTAssertEqual(parts[0], ints([2, 2], [0, 1, 6, 7], .int16))
        XCTAssertEqual(parts[1], ints([2, 4], [2, 3, 4, 5, 8, 9, 10, 11], .int16))
        let uneven = try run("Split", [iota([7])], [attr("num_outputs", 3)], opset: 18)
        XCTAssertEqual(uneven.map(\.shape), [[3], [3], [1]])
        XCTAssertEqual(uneven[2], i64([6]))
        XCTAssertEqual(try run("Split", [x], [attr("axis", 1), attr("split", [3, 3])], opset: 11).map(\.shape), [[2, 3], [2, 3]])
        // Equal parts among the node's outputs.
        XCTAssertEqual(try run("Split", [x], [attr("axis", 1)], opset: 13, outputs: 3).map(\.shape), [[2, 2], [2, 2], [2, 2]])
        assertKernelFails("Split", [x], [attr("axis", 1)], opset: 13, outputs: 4)
        assertKernelFails("Split", [x, i64([2, 2])], [attr("axis", 1)], opset: 13)

        let outs = try infer("Split", [facts(.float, [n, v(6)]), ValueFacts(constant: i64([2, 4]))], [attr("axis", 1)], outputs: 2, opset: 13)
        XCTAssertEqual(outs.map(\.shape), [[n, v(2)], [n, v(4)]])
        let equal = try infer("Split", [facts(.float, [n, v(6)])], [attr("axis", -1)], outputs: 3, opset: 13)
        XCTAssertEqual(equal.map(\.shape), [[n, v(2)], [n, v(2)], [n, v(2)]])
        let symbolic = try infer("Split", [facts(.float, [n, v(6)])], [attr("axis", 0)], outputs: 2, opset: 13)
        XCTAssertTrue(isFresh(symbolic[0].shape?[0]))
        XCTAssertEqual(symbolic[0].shape?[1], v(6))
        let values = try infer("Split", [facts(.int64, [v(3)], value: [b, s, v(768)]), ValueFacts(constant: i64([2, 1]))], outputs: 2, opset: 13)
        XCTAssertEqual(values[0].shapeValue, [b, s])
        XCTAssertEqual(values[1].shapeValue, [v(768)])
    }

    // MARK: Slice

    func testSliceKernel() throws {
        let x = iota([2, 4])
        XCTAssertEqual(try run("Slice", [x, i64([1, 0]), i64([2, 3]), i64([0, 1]), i64([1, 2])])[0], ints([1, 2], [4, 6]))
        XCTAssertEqual(try run("Slice", [x, i64([0, 1]), i64([-1, 1000])])[0], ints([1, 3], [1, 2, 3]))
        // Negative steps with INT64_MIN / INT64_MAX clamping.
        let reversed = try run("Slice", [x, i64([Int64.max]), i64([Int64.min]), i64([1]), i64([-1])])[0]
        XCTAssertEqual(reversed, ints([2, 4], [3, 2, 1, 0, 7, 6, 5, 4]))
        XCTAssertEqual(try run("Slice", [x, i64([-1]), i64([-4]), i64([-1]), i64([-2])])[0], ints([2, 2], [3, 1, 7, 5]))
        XCTAssertEqual(try run("Slice", [x, i64([3]), i64([1]), i64([1])])[0].shape, [2, 0])
        XCTAssertEqual(try run("Slice", [x, i64([0]), i64([Int64.max]), i64([1]), i64([Int64.max])])[0], ints([2, 1], [0, 4]))
        // int32 parameters.
        let i32 = { (values: [Int64]) in self.ints([values.count], values, .int32) }
        XCTAssertEqual(try run("Slice", [x, i32([1]), i32([3]), i32([-1])])[0], ints([2, 2], [1, 2, 5, 6]))
        // Opset 1: attributes.
        XCTAssertEqual(try run("Slice", [x], [attr("starts", [1]), attr("ends", [2])], opset: 1)[0], ints([1, 4], [4, 5, 6, 7]))
        assertKernelFails("Slice", [x, i64([0]), i64([1]), i64([0]), i64([0])])
        assertKernelFails("Slice", [x, i64([0, 0]), i64([1, 1]), i64([1, 1])])
        let half = try run("Slice", [f16([3], [1, 2, 3]), i64([1]), i64([3])])[0]
        XCTAssertEqual(half, f16([2], [2, 3]))
    }

    func testSliceInference() throws {
        let x = facts(.float, [n, v(10), s])
        let constant = { (values: [Int64]) in ValueFacts(constant: self.i64(values)) }
        let out = try infer("Slice", [x, constant([0, 2, 0]), constant([Int64.max, -1, 5]), constant([0, 1, 2])])[0]
        XCTAssertEqual(out.shape?[0], n)
        XCTAssertEqual(out.shape?[1], v(7))
        XCTAssertTrue(isFresh(out.shape?[2]))
        let backwards = try infer("Slice", [x, constant([-1]), constant([Int64.min]), constant([2]), constant([-1])])[0]
        XCTAssertEqual(backwards.shape, [n, v(10), s])
        let empty = try infer("Slice", [x, constant([5]), constant([3]), constant([0])])[0]
        XCTAssertEqual(empty.shape?[0], v(0))
        let unknownStarts = try infer("Slice", [x, facts(.int64, [v(1)]), constant([3]), constant([1])])[0]
        XCTAssertEqual(unknownStarts.shape?[0], n)
        XCTAssertTrue(isFresh(unknownStarts.shape?[1]))
        XCTAssertEqual(unknownStarts.shape?[2], s)
        let stepped = try infer("Slice", [facts(.int64, [v(4)], value: [n, v(3), v(5), s]), constant([-1]), constant([0]),
                                          constant([0]), constant([-2])])[0]
        XCTAssertEqual(stepped.shape, [v(2)])
        XCTAssertEqual(stepped.shapeValue, [s, v(3)])
        // Symbolic ends: `x[:, :S]` keeps S when S is the axis' size, else it is unknown.
        let ends = facts(.int64, [v(2)], value: [s, v(4)])
        let prefix = try infer("Slice", [x, constant([0, 0]), ends, constant([2, 1])])[0]
        XCTAssertEqual(prefix.shape, [n, v(4), s])
        let other = try infer("Slice", [x, constant([0]), facts(.int64, [v(1)], value: [s]), constant([0])])[0]
        XCTAssertTrue(isFresh(other.shape?[0]))
        let attributes = try infer("Slice", [x], [attr("starts", [1]), attr("ends", [3]), attr("axes", [1])], opset: 9)[0]
        XCTAssertEqual(attributes.shape, [n, v(2), s])
    }

    // MARK: Gather family

    func testGatherKernels() throws {
        let data = iota([3, 2], .uint8)
        XCTAssertEqual(try run("Gather", [data, i64([2, -3])])[0], ints([2, 2], [4, 5, 0, 1], .uint8))
        XCTAssertEqual(try run("Gather", [data, scalar(1)], [attr("axis", 1)])[0], ints([3], [1, 3, 5], .uint8))
        XCTAssertEqual(try run("Gather", [data, ints([2, 1], [1, 0], .int32)], [attr("axis", -1)])[0].shape, [3, 2, 1])
        assertKernelFails("Gather", [data, i64([3])])
        XCTAssertEqual(try run("Gather", [data, i64([])])[0].shape, [0, 2])

        let elements = try run("GatherElements", [iota([2, 2]), ints([2, 2], [0, 0, 1, 0])], [attr("axis", 1)])[0]
        XCTAssertEqual(elements, ints([2, 2], [0, 0, 3, 2]))
        XCTAssertEqual(try run("GatherElements", [iota([3, 3]), ints([2, 3], [1, 2, 0, 2, 0, -1])])[0], ints([2, 3], [3, 7, 2, 6, 1, 8]))
        assertKernelFails("GatherElements", [iota([2, 2]), ints([2, 2], [0, 0, 2, 0])], [attr("axis", 1)])

        XCTAssertEqual(try run("GatherND", [iota([2, 2]), ints([2, 2], [0, 0, 1, 1])])[0], i64([0, 3]))
        XCTAssertEqual(try run("GatherND", [iota([2, 2]), ints([2, 1], [1, 0])])[0], ints([2, 2], [2, 3, 0, 1]))
        let batched = try run("GatherND", [iota([2, 2, 2]), ints([2, 1], [1, 0])], [attr("batch_dims", 1)])[0]
        XCTAssertEqual(batched, ints([2, 2], [2, 3, 4, 5]))

        let gathered = try infer("Gather", [facts(.float, [n, s, v(4)]), facts(.int64, [b])], [attr("axis", 1)])[0]
        XCTAssertEqual(gathered.shape, [n, b, v(4)])
        let nd = try infer("GatherND", [facts(.float, [n, v(5), v(6)]), facts(.int64, [n, v(3), v(1)])], [attr("batch_dims", 1)])[0]
        XCTAssertEqual(nd.shape, [n, v(3), v(6)])
        XCTAssertEqual(try infer("GatherElements", [facts(.float, [n, v(5)]), facts(.int64, [n, v(2)])])[0].shape, [n, v(2)])
        let picked = try infer("Gather", [facts(.int64, [v(3)], value: [b, s, v(768)]), ValueFacts(constant: i64([0, 2]))])[0]
        XCTAssertEqual(picked.shapeValue, [b, v(768)])
    }

    func testScatterKernels() throws {
        let data = ints([4], [1, 2, 3, 4], .int8)
        let added = try run("ScatterND", [data, ints([2, 1], [1, 1]), ints([2], [127, 1], .int8)], [attr("reduction", "add")], opset: 16)[0]
        XCTAssertEqual(added, ints([4], [1, -126, 3, 4], .int8), "int8 wraps")
        let replaced = try run("ScatterND", [iota([2, 2]), ints([1, 1], [1]), ints([1, 2], [9, 9])])[0]
        XCTAssertEqual(replaced, ints([2, 2], [0, 1, 9, 9]))
        assertKernelFails("ScatterND", [iota([2, 2]), ints([1, 1], [2]), ints([1, 2], [9, 9])])
        let maxed = try run("ScatterElements", [f32([2, 2], [1, 5, 3, 4]), ints([2, 1], [1, 0]), f32([2, 1], [2, .nan])],
                            [attr("axis", 1), attr("reduction", "max")], opset: 18)[0]
        XCTAssertEqual(reals(maxed)[0], 1)
        XCTAssertEqual(reals(maxed)[1], 5)
        XCTAssertTrue(reals(maxed)[2].isNaN, "max propagates NaN")
        XCTAssertEqual(reals(maxed)[3], 4)
        let elements = try run("ScatterElements", [iota([1, 5]), ints([1, 2], [1, -2]), ints([1, 2], [10, 20])], [attr("axis", 1)])[0]
        XCTAssertEqual(elements, ints([1, 5], [0, 10, 2, 20, 4]))
        let strings = TensorValue(.string, shape: [2], .strings([[1], [2]]))
        let scattered = try run("ScatterElements", [strings, i64([0]), TensorValue(.string, shape: [1], .strings([[9]]))])[0]
        XCTAssertEqual(scattered, TensorValue(.string, shape: [2], .strings([[9], [2]])))
        let inferred = try infer("ScatterND", [facts(.float, [n, v(3)]), facts(.int64, [v(2), v(1)]), facts(.float, [v(2), v(3)])])[0]
        XCTAssertEqual(inferred.shape, [n, v(3)])
    }

    // MARK: Transpose, Expand, Tile

    func testTranspose() throws {
        let x = iota([2, 3])
        XCTAssertEqual(try run("Transpose", [x])[0], ints([3, 2], [0, 3, 1, 4, 2, 5]))
        let cube = try run("Transpose", [iota([2, 3, 4], .int32)], [attr("perm", [1, 2, 0])])[0]
        XCTAssertEqual(cube.shape, [3, 4, 2])
        XCTAssertEqual(Array(integers(cube).prefix(4)), [0, 12, 1, 13])
        assertKernelFails("Transpose", [x], [attr("perm", [0, 0])])
        let half = try run("Transpose", [f16([2, 1], [0.5, 1.5])])[0]
        XCTAssertEqual(half, f16([1, 2], [0.5, 1.5]))
        XCTAssertEqual(try infer("Transpose", [facts(.float, [n, v(3), s])], [attr("perm", [2, 0, 1])])[0].shape, [s, n, v(3)])
    }

    func testExpandAndTile() throws {
        let x = ints([3, 1], [1, 2, 3], .int32)
        let expanded = try run("Expand", [x, i64([2, 1, 2])])[0]
        XCTAssertEqual(expanded.shape, [2, 3, 2])
        XCTAssertEqual(integers(expanded), [1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3])
        XCTAssertEqual(try run("Expand", [x, i64([3])])[0].shape, [3, 3])
        assertKernelFails("Expand", [x, i64([2, 2])])
        let tiled = try run("Tile", [ints([2], [1, 2], .int16), i64([3])])[0]
        XCTAssertEqual(tiled, ints([6], [1, 2, 1, 2, 1, 2], .int16))
        let tiled2 = try run("Tile", [iota([2, 2]), i64([1, 2])])[0]
        XCTAssertEqual(tiled2, ints([2, 4], [0, 1, 0, 1, 2, 3, 2, 3]))
        assertKernelFails("Tile", [iota([2, 2]), i64([2])])

        XCTAssertEqual(try infer("Expand", [facts(.float, [v(1), s]), ValueFacts(constant: i64([3, 1]))])[0].shape, [v(3), s])
        let both = try infer("Expand", [facts(.float, [n, v(1)]), facts(.int64, [v(2)], value: [s, v(4)])])[0]
        XCTAssertTrue(isFresh(both.shape?[0]), "N against S: either may be 1")
        XCTAssertEqual(both.shape?[1], v(4))
        let tile = try infer("Tile", [facts(.float, [n, v(1), v(3)]), facts(.int64, [v(3)], value: [v(1), s, v(2)])])[0]
        XCTAssertEqual(tile.shape, [n, s, v(6)])
    }

    // MARK: Pad

    func testPadKernel() throws {
        let x = iota([2, 3], .int32)
        let constant = try run("Pad", [x, i64([0, 1, 1, 0]), ints([], [-1], .int32)])[0]
        XCTAssertEqual(constant, ints([3, 4], [-1, 0, 1, 2, -1, 3, 4, 5, -1, -1, -1, -1], .int32))
        let reflect = try run("Pad", [x, i64([0, 2, 0, 2])], [attr("mode", "reflect")])[0]
        XCTAssertEqual(reflect, ints([2, 7], [2, 1, 0, 1, 2, 1, 0, 5, 4, 3, 4, 5, 4, 3], .int32))
        let edge = try run("Pad", [x, i64([1, 0, 0, 1])], [attr("mode", "edge")])[0]
        XCTAssertEqual(edge, ints([3, 4], [0, 1, 2, 2, 0, 1, 2, 2, 3, 4, 5, 5], .int32))
        let wrap = try run("Pad", [x, i64([0, 1, 0, 2])], [attr("mode", "wrap")], opset: 19)[0]
        XCTAssertEqual(wrap, ints([2, 6], [2, 0, 1, 2, 0, 1, 5, 3, 4, 5, 3, 4], .int32))
        let cropped = try run("Pad", [x, i64([0, -1, 0, 0])])[0]
        XCTAssertEqual(cropped, ints([2, 2], [1, 2, 4, 5], .int32))
        let axes = try run("Pad", [x, i64([1, 1]), nil, i64([-1])], opset: 18)[0]
        XCTAssertEqual(axes, ints([2, 5], [0, 0, 1, 2, 0, 0, 3, 4, 5, 0], .int32))
        let old = try run("Pad", [f16([2], [1, 2])], [attr("pads", [1, 0]), attr("value", float: 0.1)], opset: 2)[0]
        XCTAssertEqual(reals(old), [roundReal(0.1, to: .float16), 1, 2])
        assertKernelFails("Pad", [x, i64([0, -4, 0, 0])])
        assertKernelFails("Pad", [x, i64([0, 1, 0])])
    }

    func testPadInference() throws {
        let out = try infer("Pad", [facts(.float, [n, v(3), s, v(5)]), ValueFacts(constant: i64([0, 0, 0, 1, 0, 0, 2, 1]))])[0]
        XCTAssertEqual(out.shape?[0], n)
        XCTAssertEqual(out.shape?[1], v(3))
        XCTAssertTrue(isFresh(out.shape?[2]))
        XCTAssertEqual(out.shape?[3], v(7))
        let unknown = try infer("Pad", [facts(.float, [n, v(3)]), facts(.int64, [v(4)])])[0]
        XCTAssertEqual(unknown.shape?.count, 2)
        let attribute = try infer("Pad", [facts(.float, [n, v(3)])], [attr("pads", [0, 1, 0, 1])], opset: 2)[0]
        XCTAssertEqual(attribute.shape, [n, v(5)])
    }

    // MARK: DepthToSpace, SpaceToDepth, Trilu, EyeLike

    func testDepthAndSpace() throws {
        let x = iota([1, 8, 1, 1], .int32)
        let dcr = try run("DepthToSpace", [x], [attr("blocksize", 2)])[0]
        XCTAssertEqual(dcr.shape, [1, 2, 2, 2])
        XCTAssertEqual(integers(dcr), [0, 2, 4, 6, 1, 3, 5, 7])
        let crd = try run("DepthToSpace", [x], [attr("blocksize", 2), attr("mode", "CRD")])[0]
        XCTAssertEqual(integers(crd), [0, 1, 2, 3, 4, 5, 6, 7])
        let back = try run("SpaceToDepth", [dcr], [attr("blocksize", 2)])[0]
        XCTAssertEqual(back, x)
        assertKernelFails("DepthToSpace", [iota([1, 6, 1, 1])], [attr("blocksize", 2)])
        let inferred = try infer("DepthToSpace", [facts(.float, [n, v(12), s, v(5)])], [attr("blocksize", 2)])[0]
        XCTAssertEqual(inferred.shape?[0], n)
        XCTAssertEqual(inferred.shape?[1], v(3))
        XCTAssertTrue(isFresh(inferred.shape?[2]))
        XCTAssertEqual(inferred.shape?[3], v(10))
        XCTAssertEqual(try infer("SpaceToDepth", [facts(.float, [n, v(3), v(4), v(6)])], [attr("blocksize", 2)])[0].shape,
                       [n, v(12), v(2), v(3)])
    }

    func testTriluAndEyeLike() throws {
        let x = iota([2, 3], .uint32)
        XCTAssertEqual(try run("Trilu", [x])[0], ints([2, 3], [0, 1, 2, 0, 4, 5], .uint32))
        XCTAssertEqual(try run("Trilu", [x, scalar(1)])[0], ints([2, 3], [0, 1, 2, 0, 0, 5], .uint32))
        XCTAssertEqual(try run("Trilu", [x, scalar(-1)], [attr("upper", 0)])[0], ints([2, 3], [0, 0, 0, 3, 0, 0], .uint32))
        let flags = try run("Trilu", [TensorValue.bool([true, true, true, true], shape: [2, 2])], [attr("upper", 0)])[0]
        XCTAssertEqual(flags, .bool([true, false, true, true], shape: [2, 2]))
        XCTAssertEqual(try run("EyeLike", [iota([2, 3])], [attr("k", 1)])[0], ints([2, 3], [0, 1, 0, 0, 0, 1]))
        let typed = try run("EyeLike", [iota([2, 2])], [attr("dtype", Int64(DataType.float16.rawValue))])[0]
        XCTAssertEqual(typed, f16([2, 2], [1, 0, 0, 1]))
        XCTAssertEqual(try infer("EyeLike", [facts(.int64, [n, s])], [attr("dtype", 9)])[0].elementType, .bool)
    }

    // MARK: NonZero, OneHot, Compress, ReverseSequence

    func testNonZeroOneHotCompress() throws {
        XCTAssertEqual(try run("NonZero", [f32([2, 2], [1, 0, -0.0, 3])])[0], ints([2, 2], [0, 1, 0, 1]))
        XCTAssertEqual(try run("NonZero", [TensorValue.bool([false], shape: [1])])[0].shape, [1, 0])
        let nonzero = try infer("NonZero", [facts(.float, [n, v(3)])])[0]
        XCTAssertEqual(nonzero.shape?[0], v(2))
        XCTAssertTrue(isFresh(nonzero.shape?[1]))

        let hot = try run("OneHot", [i64([1, -1, 5]), scalar(3), ints([2], [0, 7], .int32)])[0]
        XCTAssertEqual(hot, ints([3, 3], [0, 7, 0, 0, 0, 7, 0, 0, 0], .int32))
        let axis0 = try run("OneHot", [f32([2], [0, 1.5]), f32([], [2]), f32([2], [-1, 1])], [attr("axis", 0)])[0]
        XCTAssertEqual(axis0, f32([2, 2], [1, -1, -1, -1]))
        let inferredHot = try infer("OneHot", [facts(.int64, [n]), ValueFacts(constant: scalar(10)), facts(.float, [v(2)])])[0]
        XCTAssertEqual(inferredHot.shape, [n, v(10)])

        let condition = TensorValue.bool([false, true, true], shape: [3])
        XCTAssertEqual(try run("Compress", [iota([3, 2]), condition], [attr("axis", 0)])[0], ints([2, 2], [2, 3, 4, 5]))
        XCTAssertEqual(try run("Compress", [iota([3, 2]), condition])[0], i64([1, 2]))
        assertKernelFails("Compress", [iota([2]), condition])
        let compressed = try infer("Compress", [facts(.float, [n, v(3)]), ValueFacts(constant: condition)], [attr("axis", 1)])[0]
        XCTAssertEqual(compressed.shape, [n, v(2)])
    }

    func testReverseSequence() throws {
        let x = iota([4, 4])
        let reversed = try run("ReverseSequence", [x, i64([4, 3, 2, 1])], [attr("batch_axis", 1), attr("time_axis", 0)])[0]
        XCTAssertEqual(integers(reversed), [12, 9, 6, 3, 8, 5, 2, 7, 4, 1, 10, 11, 0, 13, 14, 15])
        let batchFirst = try run("ReverseSequence", [x, i64([1, 2, 3, 4])], [attr("batch_axis", 0), attr("time_axis", 1)])[0]
        XCTAssertEqual(integers(batchFirst), [0, 1, 2, 3, 5, 4, 6, 7, 10, 9, 8, 11, 15, 14, 13, 12])
        assertKernelFails("ReverseSequence", [x, i64([5, 1, 1, 1])])
    }

    // MARK: TopK, Unique

    func testTopK() throws {
        let x = f32([2, 4], [1, 3, 3, 2, .nan, 0, 5, 5])
        let largest = try run("TopK", [x, i64([2])])
        XCTAssertEqual(integers(largest[1]), [1, 2, 0, 2], "ties: lower index first; NaN largest")
        XCTAssertTrue(reals(largest[0])[2].isNaN)
        let smallest = try run("TopK", [x, i64([3])], [attr("largest", 0)])
        XCTAssertEqual(integers(smallest[1]), [0, 3, 1, 1, 2, 3])
        let column = try run("TopK", [ints([3, 1], [5, -1, 7], .int32)], [attr("k", 1), attr("axis", 0)], opset: 1)
        XCTAssertEqual(column[0], ints([1, 1], [7], .int32))
        XCTAssertEqual(column[1], ints([1, 1], [2]))
        assertKernelFails("TopK", [x, i64([5])])
        let inferred = try infer("TopK", [facts(.float, [n, s]), ValueFacts(constant: i64([3]))], outputs: 2)
        XCTAssertEqual(inferred[0].shape, [n, v(3)])
        XCTAssertEqual(inferred[1].elementType, .int64)
    }

    func testUnique() throws {
        let x = i64([2, 1, 1, 3, 4, 3])
        let unsorted = try run("Unique", [x], [attr("sorted", 0)])
        XCTAssertEqual(unsorted[0], i64([2, 1, 3, 4]))
        XCTAssertEqual(unsorted[1], i64([0, 1, 3, 4]))
        XCTAssertEqual(unsorted[2], i64([0, 1, 1, 2, 3, 2]))
        XCTAssertEqual(unsorted[3], i64([1, 2, 2, 1]))
        let sorted = try run("Unique", [ints([2, 2], [1, 3, 2, 3])])
        XCTAssertEqual(sorted[0], i64([1, 2, 3]))
        XCTAssertEqual(sorted[1], i64([0, 2, 1]))
        XCTAssertEqual(sorted[2], i64([0, 2, 1, 2]))
        XCTAssertEqual(sorted[3], i64([1, 1, 2]))
        let rows = try run("Unique", [ints([3, 3], [1, 0, 0, 1, 0, 0, 2, 3, 4])], [attr("axis", 0)])
        XCTAssertEqual(rows[0], ints([2, 3], [1, 0, 0, 2, 3, 4]))
        XCTAssertEqual(rows[2], i64([0, 0, 1]))
        let inferred = try infer("Unique", [facts(.float, [n, v(3)])], outputs: 4)
        XCTAssertTrue(isFresh(inferred[0].shape?[0]))
        XCTAssertEqual(inferred[0].shape, inferred[1].shape)
        XCTAssertEqual(inferred[0].shape, inferred[3].shape)
        XCTAssertEqual(inferred[2].shape?.count, 1)
    }

    // MARK: Dropout

    func testDropout() throws {
        let x = f32([2], [1, 2])
        let outputs = try run("Dropout", [x, f32([], [0.5]), .bool([false], shape: [])], opset: 13)
        XCTAssertEqual(outputs[0], x)
        XCTAssertEqual(outputs[1], .bool([true, true], shape: [2]))
        XCTAssertEqual(try run("Dropout", [x], opset: 7)[1], f32([2], [1, 1]))
        XCTAssertEqual(try run("Dropout", [x], [attr("is_test", 1)], opset: 6)[0], x)
        assertKernelFails("Dropout", [x], opset: 6)
        assertKernelFails("Dropout", [x, nil, .bool([true], shape: [])], opset: 13)
        XCTAssertEqual(try run("Dropout", [x, f32([], [0]), .bool([true], shape: [])], opset: 13)[0], x)
        let inferred = try infer("Dropout", [facts(.float, [n, v(3)])], outputs: 2, opset: 13)
        XCTAssertEqual(inferred[0].shape, [n, v(3)])
        XCTAssertEqual(inferred[1].elementType, .bool)
    }

    // MARK: Resize and Upsample

    func testResizeAndUpsampleInference() throws {
        let x = facts(.float, [n, v(3), v(5), v(7)])
        let scales = ValueFacts(constant: f32([4], [1, 1, 2, 0.5]))
        let scaled = try infer("Resize", [x, nil, scales], opset: 13)[0]
        XCTAssertEqual(scaled.shape, [n, v(3), v(10), v(3)])
        let sizes = facts(.int64, [v(4)], value: [n, v(3), s, v(64)])
        let sized = try infer("Resize", [x, nil, nil, sizes], opset: 13)[0]
        XCTAssertEqual(sized.shape, [n, v(3), s, v(64)])
        let axes = try infer("Resize", [x, nil, nil, ValueFacts(constant: i64([10, 10]))],
                             [attr("axes", [2, 3]), attr("keep_aspect_ratio_policy", "not_larger")], opset: 19)[0]
        XCTAssertEqual(axes.shape, [n, v(3), v(7), v(10)])
        let unknown = try infer("Resize", [x, nil, facts(.float, [v(4)])], opset: 13)[0]
        XCTAssertEqual(unknown.shape?.count, 4)
        XCTAssertTrue(unknown.shape!.allSatisfy(isFresh), "unknown scales may resize any axis")
        let old = try infer("Resize", [x, scales], opset: 10)[0]
        XCTAssertEqual(old.shape, [n, v(3), v(10), v(3)])
        let upsample = try infer("Upsample", [x, scales], opset: 9)[0]
        XCTAssertEqual(upsample.shape, [n, v(3), v(10), v(3)])
        let upsample7 = try infer("Upsample", [x], [Attribute(name: "scales", value: .floats([1, 1, 3, 3]))], opset: 7)[0]
        XCTAssertEqual(upsample7.shape, [n, v(3), v(15), v(21)])
    }

    // MARK: Official cases, inference from symbolic shapes

    /// The operators of this family.
    private static let familyOperators: Set<String> = [
        "Shape", "Size", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice", "Gather",
        "GatherElements", "GatherND", "Transpose", "Expand", "Tile", "Range", "ConstantOfShape", "Constant", "Identity",
        "Trilu", "Pad", "NonZero", "OneHot", "ScatterND", "ScatterElements", "Scatter", "DepthToSpace", "SpaceToDepth",
        "EyeLike", "TopK", "Dropout", "Compress", "ReverseSequence", "Unique", "Resize", "Upsample",
    ]

    /// For every official single-node case of this family: inference with the first input's
    /// dimensions as symbols (`a0`, `a1`, ...) and the other inputs as constants, then with every
    /// input's dimensions as symbols. Whatever inference claims must hold for the case's actual
    /// values: a static dimension equals the expected one, an input symbol equals the input
    /// dimension it names, a fresh symbol stands for one size throughout, and shape values match
    /// the expected elements. With the parameters constant, the static cases must come out static.
    func testInferenceIsSoundOnOfficialCases() throws {
        var checked = 0, exact = 0
        var notStatic: [String] = []
        var problems: [String] = []
        for path in try NodeCase.paths() {
            let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            let testCase = try NodeCase.load(path: path)
            let graph = testCase.model.graph
            let nodes = Array(graph.nodes)
            guard nodes.count == 1, let node = nodes.first, node.isDefaultDomain,
                  Self.familyOperators.contains(node.opType) else { continue }
            let version = testCase.model.opsetVersion(domain: "") ?? 1
            var values: [TensorValue?] = []
            var skip = false
            for input in node.inputs {
                guard let input else { values.append(nil); continue }
                guard let tensor = testCase.inputs[input.name] ?? input.initializer, let value = try? TensorValue(tensor: tensor) else {
                    skip = true
                    break
                }
                values.append(value)
            }
            let expected = node.outputs.map { output in output.flatMap { o in testCase.expected.first { $0.name == o.name }?.tensor } }
            if skip { continue }
            // Mode 0: the first input symbolic, the others constant; mode 1: every input
            // symbolic; mode 2: the first input of static shape, the others constant.
            for mode in 0..<3 {
                var bindings: [String: Int64] = [:]
                var inputs: [ValueFacts?] = []
                for (index, value) in values.enumerated() {
                    guard let value else { inputs.append(nil); continue }
                    if index > 0 && mode != 1 {
                        inputs.append(ValueFacts(constant: value))
                        continue
                    }
                    if mode == 2 {
                        inputs.append(ValueFacts(elementType: value.dataType, shape: value.shape.map { .value(Int64($0)) }))
                        continue
                    }
                    var dims: [Dimension] = []
                    for (axis, size) in value.shape.enumerated() {
                        let symbol = "i\(index)_\(axis)"
                        bindings[symbol] = Int64(size)
                        dims.append(.param(symbol))
                    }
                    inputs.append(ValueFacts(elementType: value.dataType, shape: dims))
                }
                guard let inference = registry.inference(node.opType) else {
                    problems.append("\(name): no inference")
                    break
                }
                var context = InferenceContext(node: OperatorContext(node: node, opsetVersion: version), inputs: inputs,
                                               outputCount: node.outputs.count, symbols: SymbolAllocator(avoiding: Set(bindings.keys)))
                do {
                    try inference(&context)
                } catch {
                    problems.append("\(name) (mode \(mode)): inference threw \(error)")
                    continue
                }
                checked += 1
                var allStatic = true
                for (index, want) in expected.enumerated() {
                    guard let want else { continue }
                    let got = context.outputs[index]
                    if let type = got.elementType, type != want.dataType {
                        problems.append("\(name) (mode \(mode)): output \(index) type \(type), expected \(want.dataType)")
                    }
                    guard let shape = got.shape else { allStatic = false; continue }
                    guard shape.count == want.dims.count else {
                        problems.append("\(name) (mode \(mode)): output \(index) shape \(shape), expected \(want.dims)")
                        continue
                    }
                    func bind(_ dim: Dimension, _ actual: Int64, what: String) {
                        switch dim {
                        case .value(let v): if v != actual { problems.append("\(name) (mode \(mode)): \(what) is \(v), expected \(actual)") }
                        case .param(let p):
                            allStatic = false
                            if let bound = bindings[p], bound != actual {
                                problems.append("\(name) (mode \(mode)): \(what) is \(p) = \(bound), expected \(actual)")
                            }
                            bindings[p] = actual
                        case .unknown: allStatic = false
                        }
                    }
                    for (axis, (dim, actual)) in zip(shape, want.dims).enumerated() { bind(dim, actual, what: "output \(index) axis \(axis)") }
                    if let shapeValue = got.shapeValue, let actual = try? TensorValue(tensor: want).int64Values() {
                        guard shapeValue.count == actual.count else {
                            problems.append("\(name) (mode \(mode)): shape value \(shapeValue), expected \(actual)")
                            continue
                        }
                        for (position, (dim, value)) in zip(shapeValue, actual).enumerated() {
                            bind(dim, value, what: "output \(index) element \(position)")
                        }
                    }
                }
                if mode == 2 {
                    if allStatic { exact += 1 } else { notStatic.append(name) }
                }
            }
        }
        print("shape family inference: \(checked) case runs checked, \(exact) cases fully static with constant parameters; "
              + "not static: \(notStatic.joined(separator: " "))")
        XCTAssertGreaterThan(checked, 300)
        XCTAssertTrue(problems.isEmpty, problems.prefix(40).joined(separator: "\n"))
    }
}
