import XCTest
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// Wrong rewrites that values in [-2, 2] and integers 0 or 1 cannot show (two red-team passes found
/// each), and correct folds whose errors look large only against a small output: the check must
/// catch the first and pass the second.
final class VerificationEdgeTests: XCTestCase {
    /// A one-graph model at an opset (17 by default).
    typealias Builder = BuiltinNativeTests.Case

    /// Runs `rules` (alone) with every rewrite checked.
    func verify(_ model: Model, _ rules: String, file: StaticString = #filePath, line: UInt = #line) throws -> VerificationReport {
        var options = OptimizationOptions()
        options.verifyRewrites = true
        let report = try optimize(model, rules: try RuleFiles.rules(in: rules), options: options)
        XCTAssertFalse(report.fired.isEmpty, "the rule did not fire", file: file, line: line)
        return try XCTUnwrap(report.verification, file: file, line: line)
    }

    func assertCaught(_ model: Model, _ rules: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let verification = try verify(model, rules, file: file, line: line)
        XCTAssertEqual(verification.failures.count, 1, "\(verification.rules)", file: file, line: line)
    }

    static let clipToRelu = """
        rule clip-to-relu {
          match { y = Clip(x, lo, hi) }
          where { constant(lo, hi) }
          replace { y = Relu(x) }
        }
        """

    func clipModel(high: Float, dims: [ONNXFuseIR.Dimension]) throws -> Model {
        let b = Builder()
        let x = b.input("x", dims)
        try b.output(b.node("Neg", [b.node("Clip", [x, b.floats("lo", [0], []), b.floats("hi", [high], [])], "y")], "out"))
        return b.model
    }

    func testAClipThatOnlyLargeValuesReachIsCaught() throws {
        try assertCaught(clipModel(high: 100, dims: [.value(4), .value(8)]), Self.clipToRelu)
        // A million elements: still small enough to be checked on large values too.
        try assertCaught(clipModel(high: 6, dims: [.value(1024), .value(1025)]), Self.clipToRelu)
    }

    func testARoundTripThroughANarrowerTypeIsCaught() throws {
        let rule = """
            rule drop-cast-roundtrip {
              match { a = Cast(x); y = Cast(a) }
              where { dtype(x) == dtype(y) }
              replace { y = x }
            }
            """
        for (type, narrow) in [(DataType.float, DataType.float16), (.float, .bfloat16), (.int32, .int8)] {
            let b = Builder()
            let x = try b.node("Neg", [b.input("x", [.value(4), .value(8)], type: type)], "x0")
            let a = try b.node("Cast", [x], "a", [Attribute(name: "to", value: .int(Int64(narrow.rawValue)))])
            let y = try b.node("Cast", [a], "y", [Attribute(name: "to", value: .int(Int64(type.rawValue)))])
            try b.output(b.node("Neg", [y], "out"))
            try assertCaught(b.model, rule)
        }
    }

    func testIntegerRewritesAreCheckedOnNegativeAndLargeValues() throws {
        let absolute = Builder()
        try absolute.output(absolute.node("Neg", [absolute.node("Abs", [absolute.input("x", [.value(1024), .value(1025)], type: .int32)], "y")], "out"))
        try assertCaught(absolute.model, """
            rule drop-abs-int { match { y = Abs(x) } where { dtype(x) in [int32, int64] } replace { y = x } }
            """)
        // Negative indices count from the end.
        let gather = Builder()
        let table = gather.floats("d", (0..<15).map(Float.init), [5, 3])
        try gather.output(gather.node("Neg", [gather.node("Gather", [table, gather.input("i", [.value(4)], type: .int64)], "y")], "out"))
        try assertCaught(gather.model, """
            rule gather-abs {
              match { y = Gather<!axis>(d, i) }
              replace { a = Abs(i); y = Gather<axis = 0>(d, a) }
            }
            """)
    }

    func testASymbolicDimensionIsAlsoTriedAtOne() throws {
        // Squeeze without axes removes every 1: at N = 1 it removes the first axis too.
        let b = Builder(opset: 13)
        try b.output(b.node("Neg", [b.node("Squeeze", [b.input("x", [.param("N"), .value(1), .value(4)], type: .float)], "y")], "out"))
        try assertCaught(b.model, """
            rule squeeze-axis1 {
              match { y = Squeeze(x) }
              where { rank(x) == 3 && dim(x, 1) == 1 }
              compute { ax = [1] }
              replace { y = Squeeze(x, ax) }
            }
            """)
    }

    func testADropoutThatMayTrainIsNotVerified() throws {
        let b = Builder(opset: 13)
        let x = b.input("x", [.value(4), .value(8)], type: .float)
        let ratio = b.floats("r", [0.5], [])
        let training = b.input("tm", [], type: .bool)
        try b.output(b.node("Neg", [b.node("Dropout", [x, ratio, training], "y")], "out"))
        let verification = try verify(b.model, """
            rule drop-dropout-any { match { y = Dropout(x, r, tm) } replace { y = x } }
            """)
        XCTAssertEqual(verification.failures.count, 0)
        XCTAssertEqual(verification.notVerified, 1)
        XCTAssertEqual(verification.rules.first?.firstNotVerifiedReason,
                       "at node 'y': Dropout 'y' is not deterministic (a random operator, or a Dropout that may train)")
    }

    /// A Conv then a BatchNormalization (epsilon 0), one channel.
    func convBatchNorm(_ type: DataType, weight: Float, bias: Float, mean: Float, variance: Float, shift: Float) throws -> Model {
        let b = Builder(opset: 15)
        func constant(_ name: String, _ value: Float, _ dims: [Int64]) -> Value {
            b.graph.addInitializer(name: name, tensor: TensorValue(type, shape: dims.map { Int($0) }, reals: [Double(value)]).tensor())
        }
        let x = b.input("x", [.value(1), .value(1), .value(4), .value(4)], type: type)
        let y = try b.node("Conv", [x, constant("w", weight, [1, 1, 1, 1]), constant("b", bias, [1])], "y")
        let z = try b.node("BatchNormalization", [y, constant("s", 1, [1]), constant("sh", shift, [1]), constant("m", mean, [1]),
                                              constant("v", variance, [1])], "z", [Attribute(name: "epsilon", value: .float(0))])
        try b.output(z)
        return b.model
    }

    func testFoldsThatCancelABiasAgainstTheMeanAgree() throws {
        // The output is exactly 0, or small beside the Conv's output that it was computed from:
        // the fold rounds differently at the Conv's magnitude, which is what the error is measured against.
        let cases = [
            try convBatchNorm(.float, weight: 0, bias: 49, mean: 0, variance: 2401, shift: -1),
            try convBatchNorm(.float, weight: 1, bias: 1000, mean: 1000, variance: 1, shift: 0),
            try convBatchNorm(.float16, weight: 1, bias: 100, mean: 100, variance: 1, shift: 0),
        ]
        for (index, model) in cases.enumerated() {
            let original = try ModelFile.load(path: try saved(model))
            var options = OptimizationOptions()
            options.verifyRewrites = true
            let report = try optimize(model, rules: RuleFiles.builtin, options: options)
            XCTAssertTrue(report.fired.contains { $0.rule == "fold-conv-batchnorm" }, "case \(index): \(report.fired)")
            XCTAssertEqual(report.verification?.failures.map(\.description), [], "case \(index)")
            XCTAssertEqual(compareModels(original, model).outcome, .agree, "case \(index)")
        }
    }

    func testAForwardToAValueTheRuleAlsoReplacesGetsTheNewValue() throws {
        // `y2 = y1` beside a new `y1`: y2's readers read the new y1 (the old one leaves the graph).
        let b = Builder()
        let x = b.input("x", [.value(4), .value(8)], type: .float)
        let y1 = try b.node("Relu", [x], "y1"), y2 = try b.node("Relu", [x], "y2")
        try b.output(b.node("Neg", [y1], "o1"))
        try b.output(b.node("Neg", [y2], "o2"))
        let original = try ModelFile.load(path: try saved(b.model))
        let verification = try verify(b.model, """
            rule dedupe-relu {
              match { y1 = Relu(x); y2 = Relu(x) }
              replace { y1 = LeakyRelu<alpha = 0.0>(x); y2 = y1 }
            }
            """)
        XCTAssertEqual(verification.failures.count, 0)
        XCTAssertEqual(verification.checked, 1)
        try b.model.verify()
        XCTAssertEqual(b.graph.nodes.map(\.opType), ["LeakyRelu", "Neg", "Neg"])
        XCTAssertEqual(compareModels(original, b.model).outcome, .agree)
    }

    func saved(_ model: Model) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("onnx-fuse-edge-\(UUID().uuidString).onnx")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        _ = try ModelFile.save(model, to: url.path)
        return url.path
    }

    // MARK: The second red-team pass

    func testASoftmaxIsMeasuredAtItsOwnScaleWhateverTheMaskHeld() throws {
        // Dropping an attention mask of -1e9: the Softmax's output is at most 1, not 1e9.
        let b = Builder()
        let scores = b.input("s", [.value(2), .value(8)])
        let mask = b.floats("mask", (0..<16).map { $0 % 8 < 4 ? 0 : -1e9 }, [2, 8])
        let p = try b.node("Softmax", [b.node("Add", [scores, mask], "t")], "p", [Attribute(name: "axis", value: .int(-1))])
        try b.output(b.node("Neg", [p], "out"))
        try assertCaught(b.model, """
            rule drop-mask {
              match { t = Add(s, mask); p = Softmax<axis: a = -1>(t) }
              where { constant(mask) }
              replace { p = Softmax<...p>(s) }
            }
            """)
    }

    func testLargeValuesReachFloat16sLargestAndIntegersOverflow() throws {
        // A clamp to float16's range in a float32 model.
        try assertCaught(clipModel(high: 65504, dims: [.value(4), .value(8)]), Self.clipToRelu)
        // An int32 sum where the match added in int64.
        let b = Builder()
        let a = try b.node("Cast", [b.input("a", [.value(4)], type: .int32)], "a64", [Attribute(name: "to", value: .int(7))])
        let c = try b.node("Cast", [b.input("b", [.value(4)], type: .int32)], "b64", [Attribute(name: "to", value: .int(7))])
        try b.output(b.node("Neg", [b.node("Add", [a, c], "s")], "out"))
        try assertCaught(b.model, """
            rule add-then-widen {
              match { a64 = Cast<to: t1>(a); b64 = Cast<to: t2>(b); s = Add(a64, b64) }
              where { dtype(a) == int32 && dtype(b) == int32 && t1 == 7 && t2 == 7 }
              replace { s32 = Add(a, b); s = Cast<to = 7>(s32) }
            }
            """)
    }

    func testAConvFollowedByAClipIsCheckedOnLargeValuesToo() throws {
        // Only affine checks skip the large values; a Clip at 6 rewritten to a Relu after a Conv is caught.
        let b = Builder()
        let x = b.input("x", [.value(1), .value(4), .value(8), .value(8)])
        let conv = try b.node("Conv", [x, b.floats("w", (0..<144).map { Float($0 % 7) / 10 - 0.3 }, [4, 4, 3, 3])], "y",
                          [Attribute(name: "pads", value: .ints([1, 1, 1, 1]))])
        let clip = try b.node("Clip", [conv, b.floats("lo", [0], []), b.floats("hi", [6], [])], "z")
        try b.output(b.node("Neg", [clip], "out"))
        try assertCaught(b.model, """
            rule conv-relu6-to-relu {
              match { y = Conv(x, w, b?); z = Clip(y, lo, hi) }
              where { constant(lo, hi) && numel(lo) == 1 && lo == 0.0 }
              replace { y2 = Conv<...y>(x, w, b?); z = Relu(y2) }
            }
            """)
    }

    func testADoubleFoldThatCancelsALargeMeanAgrees() throws {
        // BatchNormalization subtracts a mean of 1e5 inside its kernel: the fold is measured at that scale.
        let model = try convBatchNorm(.double, weight: 1, bias: 0, mean: 1e5, variance: 1, shift: 1e5)
        var options = OptimizationOptions()
        options.verifyRewrites = true
        let report = try optimize(model, rules: RuleFiles.builtin, options: options)
        XCTAssertTrue(report.fired.contains { $0.rule == "fold-conv-batchnorm" }, "\(report.fired)")
        XCTAssertEqual(report.verification?.failures.map(\.description), [])
    }
}
