import XCTest
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// Constants merged through arithmetic: the chains of `arithmetic.rules` (merge-constant-adds,
/// merge-constant-muls) and the scale folds of `matmul.rules` (fold-scale-into-matmul,
/// fold-scale-into-gemm); every run checks each rewrite's numbers with the reference kernels
/// (`RuleTestGraph.run`), and the cases where a rule must not fire say why.
final class BuiltinArithmeticTests: XCTestCase {
    static var rules: [CompiledRule] {
        RuleFiles.builtin.filter { $0.file == "builtin:arithmetic.rules" || $0.name.hasPrefix("fold-scale-") }
    }

    final class Fixture: RuleTestGraph {
        init(opset: Int64 = 17, rules: [CompiledRule] = BuiltinArithmeticTests.rules) { super.init(rules: rules, opset: opset) }
        var opTypes: [String] { graph.nodes.map(\.opType) }
        /// The values of the constant input `position` of the first node.
        func constantInput(_ position: Int) -> [Double]? {
            graph.firstNode?.inputs[position]?.constantTensor(freezeInitializerInputs: false)?.doubleValues()
        }
    }

    // MARK: chains

    /// x [2, 3] → first(x, c1) → second(., c2) → Neg; `constantFirst` puts the constant on the left
    /// of an Add or Mul.
    func chain(_ first: String, _ c1: [Float], _ second: String, _ c2: [Float], dims1: [Int64] = [], dims2: [Int64] = [],
               constantFirst: Bool = false, xType: DataType = .float, middleUsedElsewhere: Bool = false) throws -> Fixture {
        let f = Fixture()
        let x = f.graph.addInput(name: "x", info: ValueInfo(type: .tensor(xType, [.value(2), .value(3)])))
        func constant(_ name: String, _ values: [Float], _ dims: [Int64]) -> Value {
            xType == .double ? f.graph.addInitializer(name: name, tensor: Tensor(dataType: .double, dims: dims, values: values.map(Double.init)))
                : f.constant(name, values, dims)
        }
        let k1 = constant("c1", c1, dims1), k2 = constant("c2", c2, dims2)
        let y = try f.node(first, constantFirst && first != "Sub" && first != "Div" ? [k1, x] : [x, k1], "y")
        if middleUsedElsewhere { try f.output(y) }
        try f.output(f.node("Neg", [f.node(second, [y, k2], "z")], "out"))
        return f
    }

    func testAddsAndSubsOfConstantsMerge() throws {
        // What each node adds has one sign: +2 then +3 however they are written.
        for (first, c1, second, c2) in [("Add", Float(2), "Add", Float(3)), ("Add", 2, "Sub", -3), ("Sub", -2, "Add", 3), ("Sub", -2, "Sub", -3)] {
            let expected = [5.0]
            for constantFirst in [false, true] {
                let f = try chain(first, [c1], second, [c2], constantFirst: constantFirst)
                XCTAssertEqual(try f.run().fired.map(\.rule), ["merge-constant-adds"], "\(first) \(second)")
                XCTAssertEqual(f.opTypes, ["Add", "Neg"])
                XCTAssertEqual(f.constantInput(1), expected, "\(first) \(second)")
            }
        }
        // A per-column constant and a scalar: the merged one has the larger one's shape.
        let wide = try chain("Add", [1, 2, 3], "Sub", [-1], dims1: [3], xType: .double)
        XCTAssertEqual(try wide.run().fired.map(\.rule), ["merge-constant-adds"])
        XCTAssertEqual(wide.constantInput(1), [2, 3, 4])
    }

    func testMulsAndDivsByConstantsMerge() throws {
        // Both factors at least 1, or both at most 1.
        let cases: [(String, Float, String, Float, Double)] = [
            ("Mul", 2, "Mul", 3, 6), ("Mul", 2, "Div", 0.5, 4), ("Div", 4, "Mul", 0.5, 0.125), ("Div", 2, "Div", 4, 0.125),
        ]
        for (first, c1, second, c2, product) in cases {
            let expected = [product]
            let f = try chain(first, [c1], second, [c2], constantFirst: true)
            XCTAssertEqual(try f.run().fired.map(\.rule), ["merge-constant-muls"], "\(first) \(second)")
            XCTAssertEqual(f.opTypes, ["Mul", "Neg"])
            XCTAssertEqual(try XCTUnwrap(f.constantInput(1)?.first), expected[0], accuracy: 1e-7, "\(first) \(second)")
        }
    }

    func testChainsStayWhereTheyMust() throws {
        // The middle value is read elsewhere.
        XCTAssertTrue(try chain("Add", [2], "Add", [3], middleUsedElsewhere: true).reasonsNothingFires(for: "merge-constant-adds")
            .contains { $0.hasSuffix("y is a graph output") })
        // [3, 1] and [1, 3] would broadcast to [3, 3]: the model would grow.
        XCTAssertTrue(try chain("Mul", [1, 2, 3], "Mul", [4, 5, 6], dims1: [3, 1], dims2: [1, 3]).reasonsNothingFires(for: "merge-constant-muls")
            .contains { $0.contains("numel(default(m1, d1) * default(m2, d2))") })
        // float16 would round the merged constant.
        let half = Fixture()
        let x = half.graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float16, [.value(2)])))
        let c = half.graph.addInitializer(name: "c", tensor: Tensor(dataType: .float16, dims: [], values: [Float16(2)]))
        try half.output(half.node("Neg", [half.node("Mul", [half.node("Mul", [x, c], "y"), c], "z")], "out"))
        XCTAssertTrue(try half.reasonsNothingFires(for: "merge-constant-muls").contains { $0.contains("dtype(x) in [float, double]") })
        // Additions that cancel: x + 12582912 - 12582912 rounds x to an integer, on purpose.
        XCTAssertTrue(try chain("Add", [12582912], "Sub", [12582912]).reasonsNothingFires(for: "merge-constant-adds")
            .contains { $0.contains("all(default(a1, 0) - default(s1, 0) >= 0)") })
        // Factors on both sides of 1: x * 1e30 / 1e30 overflows for large x, on purpose.
        XCTAssertTrue(try chain("Mul", [1e30], "Div", [1e30]).reasonsNothingFires(for: "merge-constant-muls")
            .contains { $0.contains("all(abs(default(m1, 1) / default(d1, 1)) >= 1)") })
        // A product below float's normal range.
        XCTAssertTrue(try chain("Mul", [1e-20], "Mul", [1e-20]).reasonsNothingFires(for: "merge-constant-muls")
            .contains { $0.contains("1.1754944e-38") })
    }

    // MARK: scale folds

    /// MatMul(x [2, 2], W) with W = ((1, 2), (3, 4)), then the scale; `before` scales x instead.
    func matmulScale(_ op: String, _ s: [Float], dims: [Int64] = [], before: Bool = false, weightShared: Bool = false,
                     weightKind: RuleTestGraph.Source = .constant) throws -> Fixture {
        let f = Fixture()
        let x = f.input("x", [2, 2])
        let w = try f.value(weightKind, "w", [1, 2, 3, 4], [2, 2])
        let s = f.constant("s", s, dims)
        let z: Value
        if before {
            z = try f.node("MatMul", [f.node(op, [x, s], "t"), w], "z")
        } else {
            z = try f.node(op, op == "Mul" ? [s, f.node("MatMul", [x, w], "y")] : [f.node("MatMul", [x, w], "y"), s], "z")
        }
        if weightShared { try f.output(f.node("MatMul", [x, w], "other")) }
        try f.output(f.node("Neg", [z], "out"))
        return f
    }

    func testAScaleFoldsIntoTheMatMulWeight() throws {
        let cases: [(String, [Float], [Int64], Bool, [Double])] = [
            ("Mul", [2], [], false, [2, 4, 6, 8]),
            ("Div", [2], [1], false, [0.5, 1, 1.5, 2]),
            ("Mul", [10, 100], [2], false, [10, 200, 30, 400]),  // per column
            ("Mul", [2], [1, 1], true, [2, 4, 6, 8]),            // x * s, then MatMul
            ("Div", [4], [], true, [0.25, 0.5, 0.75, 1]),
        ]
        for (op, s, dims, before, expected) in cases {
            let f = try matmulScale(op, s, dims: dims, before: before)
            XCTAssertEqual(try f.run().fired.map(\.rule), ["fold-scale-into-matmul"], "\(op) \(s) \(before)")
            XCTAssertEqual(f.opTypes, ["MatMul", "Neg"])
            XCTAssertEqual(f.constantInput(1), expected, "\(op) \(s) \(before)")
        }
    }

    func testAScaleStaysOutsideTheMatMulWhereItMust() throws {
        func reasons(_ f: Fixture) throws -> [String] { try f.reasonsNothingFires(for: "fold-scale-into-matmul") }
        XCTAssertTrue(try reasons(matmulScale("Mul", [2], weightShared: true)).contains { $0.hasSuffix("`users(w) == 1` is false") })
        XCTAssertTrue(try reasons(matmulScale("Mul", [2], weightKind: .graphInput)).contains { $0.hasSuffix("w is a graph input") })
        // Per row of the product: not a column scale of W.
        XCTAssertTrue(try reasons(matmulScale("Mul", [10, 100], dims: [2, 1])).contains { $0.contains("dim(default(m, d), -1) == dim(w, 1)") })
        // Scaling x per column before the MatMul scales W's rows: only a scalar is taken there.
        XCTAssertTrue(try reasons(matmulScale("Mul", [10, 100], dims: [2], before: true)).contains { $0.contains("numel(default(m, d)) == 1") })
        // A scalar of rank 3 would raise the product's rank.
        XCTAssertTrue(try reasons(matmulScale("Mul", [2], dims: [1, 1, 1])).contains { $0.contains("rank(default(m, d)) <= rank(x)") })
    }

    /// Gemm(a [2, 2], b, c) with alpha `alpha` and beta 0.5, then Mul or Div by a scalar.
    func gemmScale(_ op: String, _ s: Float, alpha: Float = 1) throws -> Fixture {
        let f = Fixture()
        let a = f.input("a", [2, 2]), b = f.input("b", [2, 2])
        let gemm = Node(opType: "Gemm", name: "y", inputs: [a, b, f.constant("c", [1, -1], [2])], outputNames: ["y"],
                        attributes: [Attribute(name: "alpha", value: .float(alpha)), Attribute(name: "beta", value: .float(0.5))])
        try f.graph.append(gemm)
        try f.output(f.node("Neg", [f.node(op, [gemm.outputs[0]!, f.constant("s", [s], [])], "z")], "out"))
        return f
    }

    func testAScalarFoldsIntoTheGemmsAlphaAndBeta() throws {
        for (op, s, alpha, expected) in [("Mul", Float(3), Float(2), (Float(6), Float(1.5))), ("Div", 4, 1, (0.25, 0.125))] {
            let f = try gemmScale(op, s, alpha: alpha)
            XCTAssertEqual(try f.run().fired.map(\.rule), ["fold-scale-into-gemm"], op)
            XCTAssertEqual(f.opTypes, ["Gemm", "Neg"])
            XCTAssertEqual(f.graph.firstNode?.attribute("alpha")?.float, expected.0, op)
            XCTAssertEqual(f.graph.firstNode?.attribute("beta")?.float, expected.1, op)
        }
        XCTAssertTrue(try gemmScale("Div", 0).reasonsNothingFires(for: "fold-scale-into-gemm").contains { $0.hasSuffix("`absent(d) || all(d != 0)` is false") })
        // alpha 2 then half: the Gemm's product before the scale may overflow where a fused alpha 1 would not.
        XCTAssertTrue(try gemmScale("Mul", 0.5, alpha: 2).reasonsNothingFires(for: "fold-scale-into-gemm").contains { $0.contains("abs(al) >= 1") })
        // An alpha that no float holds.
        XCTAssertTrue(try gemmScale("Mul", 1e30, alpha: 1e10).reasonsNothingFires(for: "fold-scale-into-gemm").contains { $0.contains("3.4028234e+38") || $0.contains("3.4028234e38") })
    }

    func testEveryPeftLoRAStillMergesWhenTheScaleFoldsFirst() throws {
        // With every rule of matmul.rules, the adapter's scale may fold into B (or a Gemm's alpha)
        // before the LoRA rule looks at the Add: each form still ends as one node (and a bias).
        let test = BuiltinMatMulTests(name: "peft", testClosure: { _ in })
        for (base, left) in [("matmul", ["MatMul", "Add"]), ("gemm", ["Gemm"]), ("gemm-transb", ["Gemm"]), ("gemms", ["Gemm"])] {
            let f = try test.peft(base, scale: 0.5, rules: BuiltinMatMulTests.matmulRules)
            let fired = try f.run().fired.map { $0.rule }
            XCTAssertTrue(fired.contains { $0.hasPrefix("merge-lora") }, "\(base): \(fired)")
            XCTAssertEqual(f.graph.nodes.map { $0.opType }, left, base)
        }
    }
}
