import XCTest
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// The native rules that turn run-time shapes into constants and merge chains of layout
/// operators (Sources/ONNXFuse/NativeRules/ShapeRules.swift and the no-op removals they
/// enable): what they become, that the graph computes the same numbers before and after (with
/// the reference kernels, at two batch sizes), and where they must not fire.
final class ShapeRuleTests: XCTestCase {
    typealias Case = BuiltinNativeTests.Case

    /// The graph's outputs by name for `inputs`, every node evaluated in order by its reference
    /// kernel (`GraphEvaluator`).
    func evaluate(_ model: Model, _ inputs: [String: TensorValue]) throws -> [String: TensorValue] {
        let results = try GraphEvaluator(model: model).run(model.graph, inputs: inputs)
        return Dictionary(zip(model.graph.outputs.map(\.value.name), results), uniquingKeysWith: { first, _ in first })
    }

    /// Deterministic float inputs: `x` with dims `dims` holding 0.25, 0.5, ... (mod 7).
    func ramp(_ dims: [Int]) -> TensorValue {
        let count = dims.reduce(1, *)
        return TensorValue(.float, shape: dims, reals: (0..<count).map { Double(($0 % 28) + 1) * 0.25 })
    }

    /// Runs the built-in rules on `c` and checks that every output is the same before and after
    /// for each input set; returns the report.
    @discardableResult
    func runAndCompare(_ c: Case, only: [String]? = nil, inputs: [[String: TensorValue]],
                       file: StaticString = #filePath, line: UInt = #line) throws -> OptimizationReport {
        let before = try inputs.map { try evaluate(c.model, $0) }
        let report = try c.run(only: only)
        for (set, expected) in zip(inputs, before) {
            let after = try evaluate(c.model, set)
            XCTAssertEqual(after, expected, "outputs differ for inputs of shapes \(set.mapValues(\.shape))\n\(c.text)",
                           file: file, line: line)
        }
        return report
    }

    /// `Unsqueeze(Gather(Shape(x), index), [0])`: one run-time dimension of x as a 1-element vector.
    func dimension(_ c: Case, _ shape: Value, _ index: Int64, _ name: String) throws -> Value {
        let scalar = try c.node("Gather", [shape, c.ints("\(name)_index", [index], [])], "\(name)_scalar",
                            [Attribute(name: "axis", value: .int(0))])
        return try c.node("Unsqueeze", [scalar, c.ints("\(name)_axes", [0])], name)
    }

    func concat(_ c: Case, _ inputs: [Value], _ name: String) throws -> Value {
        try c.node("Concat", inputs, name, [Attribute(name: "axis", value: .int(0))])
    }

    // MARK: constant-reshape-shape

    func testReshapeTargetBecomesAConstantWithCopiesAndOneInferredEntry() throws {
        let c = Case()
        let x = c.input("x", [.param("N"), .param("S"), .value(64)])
        let shape = try c.node("Shape", [x], "shape")
        let n = try dimension(c, shape, 0, "n"), s = try dimension(c, shape, 1, "s")
        // [N, S, 4, 16]: N and S copy x's dimensions (0).
        let split = try c.node("Reshape", [x, concat(c, [n, s, c.ints("heads", [4, 16])], "split_shape")], "split")
        let t = try c.node("Transpose", [split], "t", [Attribute(name: "perm", value: .ints([0, 2, 1, 3]))])
        // [N * 4, S, 16]: N * 4 is the one entry not known, beside static... S is not static, so
        // this one stays; [N * 4 * S, 16] has one unknown entry beside a static one: -1.
        let n4 = try c.node("Mul", [n, c.ints("four", [4])], "n4")
        let ns4 = try c.node("Mul", [n4, s], "ns4")
        try c.output(c.node("Reshape", [t, concat(c, [ns4, c.ints("sixteen", [16])], "flat_shape")], "flat"))
        try c.output(c.node("Reshape", [t, concat(c, [n4, s, c.ints("sixteen2", [16])], "kept_shape")], "kept"))
        let report = try runAndCompare(c, inputs: [["x": ramp([1, 2, 64])], ["x": ramp([3, 5, 64])]])
        XCTAssertEqual(c.fired(report)["constant-reshape-shape"], 2, "\(report.fired)")
        let targets = c.graph.nodes.filter { $0.opType == "Reshape" }.map { node -> [Int64]? in
            node.inputs[1]?.initializer.flatMap { try? TensorValue(tensor: $0).int64Values() }
        }
        XCTAssertEqual(targets, [[0, 0, 4, 16], [-1, 16], nil], c.text)
        XCTAssertTrue(report.explanations.contains { $0.rule == "constant-reshape-shape" && $0.reason.contains("2 entries") },
                      "\(report.explanations)")
    }

    func testReshapeTargetWithAllowZeroGetsNoCopies() throws {
        let c = Case()
        let x = c.input("x", [.param("N"), .value(64)])
        let n = try dimension(c, c.node("Shape", [x], "shape"), 0, "n")
        let attributes = [Attribute(name: "allowzero", value: .int(1))]
        try c.output(c.node("Reshape", [x, concat(c, [n, c.ints("sizes", [4, 16])], "target")], "y", attributes))
        let report = try runAndCompare(c, inputs: [["x": ramp([1, 64])], ["x": ramp([3, 64])]])
        XCTAssertEqual(c.fired(report)["constant-reshape-shape"], 1, "\(report.fired)")
        // With allowzero, 0 would mean an empty dimension: N becomes the one inferred entry.
        XCTAssertEqual(c.graph.firstNode?.inputs[1]?.initializer.flatMap { try? TensorValue(tensor: $0).int64Values() }, [-1, 4, 16])
    }

    func testReshapeTargetMustNotBecomeAmbiguous() throws {
        // [N, S * 4, 16] of x[N, S, 64]: N copies, S * 4 is unknown: -1 beside a copy that may be
        // 0 at run time would be ambiguous, so the target stays computed.
        let c = Case()
        let x = c.input("x", [.param("N"), .param("S"), .value(64)])
        let shape = try c.node("Shape", [x], "shape")
        let n = try dimension(c, shape, 0, "n"), s = try dimension(c, shape, 1, "s")
        let s4 = try c.node("Mul", [s, c.ints("four", [4])], "s4")
        try c.output(c.node("Reshape", [x, concat(c, [n, s4, c.ints("sixteen", [16])], "target")], "y"))
        let report = try c.run(only: ["constant-reshape-shape"])
        XCTAssertEqual(c.fired(report), [:])
        XCTAssertTrue(report.explanations.contains { $0.reason.contains("not a static positive number") }, "\(report.explanations)")
    }

    // MARK: value symbols

    func testEqualOfADimensionAndMinusOneIsFalseButNotOfADifference() throws {
        let c = Case()
        let x = c.input("x", [.param("N"), .value(4)])
        let shape = try c.node("Shape", [x], "shape")
        let n = try dimension(c, shape, 0, "n")
        // TorchScript's guard of expand(-1): Where(Equal(shape, -1), 1, shape).
        let target = try concat(c, [n, c.ints("four", [4])], "target")
        let isMinusOne = try c.node("Equal", [target, c.ints("minus_ones", [-1, -1])], "is_minus_one")
        let guarded = try c.node("Where", [isMinusOne, c.ints("ones", [1, 1]), target], "guarded")
        try c.output(c.node("Expand", [x, guarded], "y"))
        // N - 1 may be -1 (N = 0): that Equal stays.
        let previous = try c.node("Sub", [n, c.ints("one", [1])], "previous")
        try c.output(c.node("Equal", [previous, c.ints("minus_one", [-1])], "at_start"))
        let report = try runAndCompare(c, inputs: [["x": ramp([1, 4])], ["x": ramp([3, 4])]])
        XCTAssertEqual(c.fired(report)["remove-noop-where"], 1, "\(report.fired)")
        XCTAssertEqual(c.graph.nodes.filter { $0.opType == "Equal" }.map { $0.outputs[0]!.name }, ["at_start"], c.text)
        XCTAssertEqual(c.graph.nodes.filter { $0.opType == "Where" }.count, 0, c.text)
    }

    // MARK: merge-unsqueezes, merge-slices, merge-reshapes

    func testUnsqueezeChainsMerge() throws {
        let c = Case()
        let x = c.input("x", [.param("N"), .value(3)])
        let inner = try c.node("Unsqueeze", [x, c.ints("a", [1])], "inner")
        try c.output(c.node("Unsqueeze", [inner, c.ints("b", [0, -1])], "outer"))
        try c.output(c.node("Unsqueeze", [inner, c.ints("c", [3])], "other"))
        let report = try runAndCompare(c, inputs: [["x": ramp([1, 3])], ["x": ramp([3, 3])]])
        XCTAssertEqual(c.fired(report)["merge-unsqueezes"], 2, "\(report.fired)")
        let axes = c.graph.nodes.map { $0.inputs[1]!.initializer.flatMap { try? TensorValue(tensor: $0).int64Values() } }
        // x[N, 3] → [N, 1, 3] → [1, N, 1, 3, 1]: axes 0, 2 and 4; and [N, 1, 3, 1]: axes 1 and 3.
        XCTAssertEqual(axes, [[0, 2, 4], [1, 3]], c.text)
    }

    func testSlicesOfOtherAxesMergeAndOfTheSameAxisDoNot() throws {
        let c = Case()
        let x = c.input("x", [.param("N"), .value(6), .value(8)])
        let inner = try c.node("Slice", [x, c.ints("s1", [1]), c.ints("e1", [5]), c.ints("a1", [1])], "inner")
        try c.output(c.node("Slice", [inner, c.ints("s2", [-1]), c.ints("e2", [0]), c.ints("a2", [2]), c.ints("st2", [-2])], "merged"))
        try c.output(c.node("Slice", [inner, c.ints("s3", [1]), c.ints("e3", [3]), c.ints("a3", [1])], "same_axis"))
        let report = try runAndCompare(c, inputs: [["x": ramp([1, 6, 8])], ["x": ramp([3, 6, 8])]])
        XCTAssertEqual(c.fired(report)["merge-slices"], 1, "\(report.fired)")
        XCTAssertEqual(c.graph.nodes.filter { $0.opType == "Slice" }.count, 3, c.text)
        let merged = c.graph.nodes.first { $0.outputs[0]?.name == "merged" }!
        XCTAssertTrue(merged.inputs[0]!.definition == .graphInput, c.text)
        XCTAssertTrue(report.explanations.contains { $0.rule == "merge-slices" && $0.reason.contains("same axis") }, "\(report.explanations)")
    }

    func testReshapeReadsThroughOrderKeepingNodes() throws {
        let c = Case()
        let x = c.input("x", [.param("N"), .value(1), .value(1), .value(8)])
        // [N, 1, 1, 8] → [N, 8, 1, 1] moves only size-1 dimensions.
        let moved = try c.node("Transpose", [x, ], "moved", [Attribute(name: "perm", value: .ints([0, 3, 1, 2]))])
        try c.output(c.node("Reshape", [moved, c.ints("flat_shape", [-1, 8])], "flat"))
        let y = c.input("y", [.param("N"), .value(2), .value(1), .value(8)])
        // [N, 2, 1, 8] → [N, 8, 2, 1] reorders 2 and 8: it stays.
        let reordered = try c.node("Transpose", [y], "reordered", [Attribute(name: "perm", value: .ints([0, 3, 1, 2]))])
        try c.output(c.node("Reshape", [reordered, c.ints("flat2_shape", [-1, 16])], "flat2"))
        // A target with a 0 copies a dimension of its own input: it stays.
        let squeezed = try c.node("Squeeze", [y, c.ints("axis2", [2])], "squeezed")
        try c.output(c.node("Reshape", [squeezed, c.ints("copy", [0, -1])], "copied"))
        let inputs = [["x": ramp([1, 1, 1, 8]), "y": ramp([1, 2, 1, 8])], ["x": ramp([3, 1, 1, 8]), "y": ramp([3, 2, 1, 8])]]
        let report = try runAndCompare(c, inputs: inputs)
        XCTAssertEqual(c.fired(report)["merge-reshapes"], 1, "\(report.fired)")
        XCTAssertEqual(c.graph.nodes.map(\.opType), ["Reshape", "Transpose", "Reshape", "Squeeze", "Reshape"], c.text)
    }

    // MARK: no-op Pad, And, Or, Where

    func testNoopPadAndLogicAndWhere() throws {
        let c = Case()
        let x = c.input("x", [.param("N"), .value(4)])
        let padded = try c.node("Pad", [x, c.ints("zeros", [0, 0, 0, 0])], "padded")
        let grown = try c.node("Pad", [padded, c.ints("one_more", [0, 0, 0, 1])], "grown")
        let positive = try c.node("Greater", [grown, c.floats("zero", [0], [])], "positive")
        let both = try c.node("And", [positive, c.graph.addInitializer(name: "yes", tensor: TensorValue.bool([true], shape: [1]).tensor())], "both")
        let either = try c.node("Or", [c.graph.addInitializer(name: "no", tensor: TensorValue.bool([false, false, false, false, false], shape: [5]).tensor()), both], "either")
        let picked = try c.node("Where", [c.graph.addInitializer(name: "always", tensor: TensorValue.bool([true], shape: []).tensor()), grown, c.floats("other", [7], [])], "picked")
        try c.output(c.node("Where", [either, picked, c.floats("minus", [-1], [])], "y"))
        let report = try runAndCompare(c, inputs: [["x": ramp([1, 4])], ["x": ramp([3, 4])]])
        let fired = c.fired(report)
        XCTAssertEqual(fired["remove-noop-pad"], 1, "\(fired)")
        XCTAssertEqual(fired["remove-noop-arithmetic"], 2, "\(fired)")
        XCTAssertEqual(fired["remove-noop-where"], 1, "\(fired)")
        XCTAssertEqual(c.graph.nodes.map(\.opType), ["Pad", "Greater", "Where"], c.text)
    }

    /// `-0 + +0` is `+0`: only `x + (-0)` and `x - (+0)` leave every float x as it is. A
    /// Reciprocal after each makes the sign of zero visible (-inf against +inf).
    func testNoopArithmeticKeepsTheSignOfZero() throws {
        let c = Case()
        let x = c.input("x", [.value(4)])
        let n = try c.node("Neg", [x], "n")
        let minusZero = c.floats("minus_zero", [-0.0], [1]), plusZero = c.floats("plus_zero", [0.0], [1])
        let cases: [(String, [Value])] = [
            ("Add", [n, minusZero]), ("Add", [minusZero, n]), ("Sub", [n, plusZero]),  // removed
            ("Add", [n, plusZero]), ("Add", [plusZero, n]), ("Sub", [n, minusZero]),   // kept
        ]
        for (index, (opType, inputs)) in cases.enumerated() {
            try c.output(c.node("Reciprocal", [c.node(opType, inputs, "op\(index)")], "r\(index)"))
        }
        let signedZeros = TensorValue(.float, shape: [4], reals: [0.0, -0.0, 1, -2])
        let report = try runAndCompare(c, only: ["remove-noop-arithmetic"], inputs: [["x": signedZeros]])
        XCTAssertEqual(c.fired(report)["remove-noop-arithmetic"], 3, "\(report.fired)")
        XCTAssertEqual(c.graph.nodes.filter { $0.opType != "Reciprocal" }.map(\.opType), ["Neg", "Add", "Add", "Sub"], c.text)
        let after = try evaluate(c.model, ["x": signedZeros])
        XCTAssertEqual(after["r0"], TensorValue(.float, shape: [4], reals: [-.infinity, .infinity, -1, 0.5]))
        XCTAssertEqual(after["r3"], TensorValue(.float, shape: [4], reals: [.infinity, .infinity, -1, 0.5]))
    }

    func testNoopWhereMustNotPickABroadcastOperand() throws {
        // The condition is all true, but X is broadcast to the condition's shape: it stays.
        let c = Case()
        let x = c.input("x", [.value(1)])
        let condition = c.graph.addInitializer(name: "always", tensor: TensorValue.bool([true, true, true], shape: [3]).tensor())
        try c.output(c.node("Where", [condition, x, c.floats("other", [0], [])], "y"))
        let report = try c.run(only: ["remove-noop-where"])
        XCTAssertEqual(c.fired(report), [:])
    }

    // MARK: what a removed chain frees

    func testAValueLeftWithOneReaderByAFoldIsTriedAgain() throws {
        // t1 has two readers, t2 and a Shape whose static entry folds away; then t2 fuses with t1.
        let c = Case()
        let x = c.input("x", [.param("N"), .value(3), .value(4)])
        let t1 = try c.node("Transpose", [x], "t1", [Attribute(name: "perm", value: .ints([0, 2, 1]))])
        let t2 = try c.node("Transpose", [t1], "t2", [Attribute(name: "perm", value: .ints([1, 2, 0]))])
        let width = try c.node("Gather", [c.node("Shape", [t1], "s"), c.ints("one", [1], [])], "width",
                           [Attribute(name: "axis", value: .int(0))])
        let scale = try c.node("Cast", [width], "scale", [Attribute(name: "to", value: .int(1))])
        try c.output(c.node("Mul", [t2, scale], "y"))
        let report = try runAndCompare(c, inputs: [["x": ramp([1, 3, 4])], ["x": ramp([2, 3, 4])]])
        XCTAssertEqual(c.graph.nodes.filter { $0.opType == "Transpose" }.count, 1, "\(report.fired)\n\(c.text)")
    }
}
