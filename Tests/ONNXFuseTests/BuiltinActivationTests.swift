import XCTest
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// The built-in activation rules (`Sources/ONNXFuse/Rules/activation.rules`): Gelu in its erf and
/// tanh forms, HardSigmoid and HardSwish written out, fused into one node; every run checks each
/// rewrite's numbers with the reference kernels (`RuleTestGraph.run`), and the cases where a rule
/// must not fire say why.
final class BuiltinActivationTests: XCTestCase {
    static var rules: [CompiledRule] { RuleFiles.builtin.filter { $0.file == "builtin:activation.rules" } }

    final class Fixture: RuleTestGraph {
        init(opset: Int64) { super.init(rules: BuiltinActivationTests.rules, opset: opset) }

        func scalar(_ name: String, _ value: Float) -> Value { constant(name, [value], []) }

        /// A node with attributes and one output named `output`.
        @discardableResult
        func node(_ op: String, _ inputs: [Value], _ output: String, _ attributes: [Attribute]) throws -> Value {
            let node = Node(opType: op, name: output, inputs: inputs, outputNames: [output], attributes: attributes)
            try graph.append(node)
            return node.outputs[0]!
        }

        var opTypes: [String] { graph.nodes.map(\.opType) }
    }

    /// Where the 0.5 goes: (x * 0.5) * a, (x * a) * 0.5 (TorchScript's nn.GELU), x * (a * 0.5).
    enum HalfPlacement: CaseIterable { case first, last, inner }

    func finish(_ f: Fixture, _ x: Value, _ a: Value, _ half: Value, _ placement: HalfPlacement) throws {
        let y: Value
        switch placement {
        case .first: y = try f.node("Mul", [f.node("Mul", [x, half], "h"), a], "y")
        case .last: y = try f.node("Mul", [f.node("Mul", [a, x], "m"), half], "y")
        case .inner: y = try f.node("Mul", [x, f.node("Mul", [half, a], "g")], "y")
        }
        try f.output(f.node("Neg", [y], "out"))
    }

    /// 0.5 * x * (1 + erf(x / sqrt(2))) on x [2, 3].
    func geluErf(opset: Int64 = 20, placement: HalfPlacement = .last, reciprocal: Bool = false, half: Float = 0.5,
                 erfUsedElsewhere: Bool = false) throws -> Fixture {
        let f = Fixture(opset: opset)
        let x = f.input("x", [2, 3])
        let d = try reciprocal ? f.node("Mul", [f.scalar("inv", 0.70710677), x], "d") : f.node("Div", [x, f.scalar("sqrt2", 1.4142135)], "d")
        let e = try f.node("Erf", [d], "e")
        if erfUsedElsewhere { try f.output(e) }
        let a = try f.node("Add", [e, f.scalar("one", 1)], "a")
        try finish(f, x, a, f.scalar("half", half), placement)
        return f
    }

    func testGeluErfFusesInEveryPlacementOfTheHalf() throws {
        for placement in HalfPlacement.allCases {
            for reciprocal in [false, true] {
                let f = try geluErf(placement: placement, reciprocal: reciprocal)
                XCTAssertEqual(try f.run().fired.map(\.rule), ["fuse-gelu-erf"], "\(placement) \(reciprocal)")
                XCTAssertEqual(f.opTypes, ["Gelu", "Neg"], "\(placement) \(reciprocal)")
                XCTAssertNil(f.graph.firstNode!.attribute("approximate"))
            }
        }
    }

    func testGeluErfStaysWhereItMust() throws {
        // Opset 17 has no Gelu.
        XCTAssertTrue(try geluErf(opset: 17).reasonsNothingFires(for: "fuse-gelu-erf").contains { $0.hasSuffix("`opset() >= 20` is false") })
        // 0.6 * x * (...) is not Gelu.
        XCTAssertTrue(try geluErf(half: 0.6).reasonsNothingFires(for: "fuse-gelu-erf").contains { $0.hasSuffix("`allclose(half, 0.5, 0.0001, 0)` is false") })
        // The erf is read outside the pattern: it must stay, and so must what computes it.
        XCTAssertTrue(try geluErf(erfUsedElsewhere: true).reasonsNothingFires(for: "fuse-gelu-erf").contains { $0.hasSuffix("e is a graph output") })
    }

    /// 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^exponent))) on x [2, 3].
    func geluTanh(opset: Int64 = 20, placement: HalfPlacement = .first, exponent: Float = 3, k: Float = 0.044715) throws -> Fixture {
        let f = Fixture(opset: opset)
        let x = f.input("x", [2, 3])
        let p = try f.node("Pow", [x, f.scalar("three", exponent)], "p")
        let c = try f.node("Mul", [f.scalar("k", k), p], "c")
        let s = try f.node("Add", [x, c], "s")
        let u = try f.node("Mul", [s, f.scalar("r", 0.7978846)], "u")
        let a = try f.node("Add", [f.scalar("one", 1), f.node("Tanh", [u], "t")], "a")
        try finish(f, x, a, f.scalar("half", 0.5), placement)
        return f
    }

    func testGeluTanhFusesIntoTheTanhApproximation() throws {
        for placement in HalfPlacement.allCases {
            let f = try geluTanh(placement: placement)
            XCTAssertEqual(try f.run().fired.map(\.rule), ["fuse-gelu-tanh"], "\(placement)")
            XCTAssertEqual(f.opTypes, ["Gelu", "Neg"], "\(placement)")
            XCTAssertEqual(f.graph.firstNode!.attribute("approximate")?.string, "tanh")
        }
    }

    func testGeluTanhStaysWhereItMust() throws {
        XCTAssertTrue(try geluTanh(opset: 19).reasonsNothingFires(for: "fuse-gelu-tanh").contains { $0.hasSuffix("`opset() >= 20` is false") })
        XCTAssertTrue(try geluTanh(exponent: 2).reasonsNothingFires(for: "fuse-gelu-tanh").contains { $0.contains("three == 3") })
        XCTAssertTrue(try geluTanh(k: 0.05).reasonsNothingFires(for: "fuse-gelu-tanh").contains { $0.contains("allclose(k, 0.044715") })
    }

    /// clip(x + b, lo, hi) / six (or * (1 / six)) on x [2, 3], the bounds as inputs (opset 11+)
    /// or attributes; optionally x * (that) (HardSwish as x * HardSigmoid(x)) or x * clip / 6.
    func hardSigmoid(opset: Int64 = 14, b: Float = 3, hi: Float = 6, six: Float = 6, multiply: Bool = false,
                     swish: Bool = false, productFirst: Bool = false) throws -> Fixture {
        let f = Fixture(opset: opset)
        let x = f.input("x", [2, 3])
        let a = try f.node("Add", [x, f.scalar("b", b)], "a")
        let c = try opset >= 11
            ? f.node("Clip", [a, f.scalar("lo", 0), f.scalar("hi", hi)], "c")
            : f.node("Clip", [a], "c", [Attribute(name: "min", value: .float(0)), Attribute(name: "max", value: .float(hi))])
        let scaled: (Value, String) throws -> Value = { v, name in
            try multiply ? f.node("Mul", [v, f.scalar("inv", 1 / six)], name) : f.node("Div", [v, f.scalar("six", six)], name)
        }
        let y: Value
        if productFirst {
            y = try scaled(f.node("Mul", [x, c], "m"), "y")
        } else {
            let h = try scaled(c, "h")
            y = try swish ? f.node("Mul", [x, h], "y") : h
        }
        try f.output(f.node("Neg", [y], "out"))
        return f
    }

    func testHardSigmoidFusesWithTheBoundsAsInputsOrAttributes() throws {
        for opset: Int64 in [14, 10] {
            for multiply in [false, true] {
                let f = try hardSigmoid(opset: opset, b: 2, multiply: multiply)
                XCTAssertEqual(try f.run().fired.map(\.rule), ["fuse-hard-sigmoid"], "opset \(opset)")
                XCTAssertEqual(f.opTypes, ["HardSigmoid", "Neg"], "opset \(opset)")
                let node = f.graph.firstNode!
                XCTAssertEqual(Double(try XCTUnwrap(node.attribute("alpha")?.float)), 1.0 / 6, accuracy: 1e-7)
                XCTAssertEqual(Double(try XCTUnwrap(node.attribute("beta")?.float)), 2.0 / 6, accuracy: 1e-7)
            }
        }
    }

    func testHardSigmoidStaysWhenTheClipDoesNotReachTheDivisor() throws {
        XCTAssertTrue(try hardSigmoid(hi: 5).reasonsNothingFires(for: "fuse-hard-sigmoid").contains { $0.contains("allclose(hi * default(inv") })
    }

    func testHardSwishFusesFromTheProductOrFromHardSigmoid() throws {
        let torch = try hardSigmoid(productFirst: true)
        XCTAssertEqual(try torch.run().fired.map(\.rule), ["fuse-hard-swish"])
        XCTAssertEqual(torch.opTypes, ["HardSwish", "Neg"])
        let twoSteps = try hardSigmoid(multiply: true, swish: true)
        XCTAssertEqual(Set(try twoSteps.run().fired.map(\.rule)), ["fuse-hard-sigmoid", "fuse-hard-swish"])
        XCTAssertEqual(twoSteps.opTypes, ["HardSwish", "Neg"])
    }

    func testHardSwishStaysWhereItMust() throws {
        // Opset 13 has HardSigmoid but no HardSwish: the division fuses, the product stays.
        let old = try hardSigmoid(opset: 13, swish: true)
        XCTAssertEqual(try old.run().fired.map(\.rule), ["fuse-hard-sigmoid"])
        XCTAssertEqual(old.opTypes, ["HardSigmoid", "Mul", "Neg"])
        // x * clip(x + 2, 0, 6) / 6 is not HardSwish (its HardSigmoid has beta 1/3).
        let shifted = try hardSigmoid(b: 2, swish: true)
        let report = try shifted.run()
        XCTAssertEqual(report.fired.map(\.rule), ["fuse-hard-sigmoid"])
        XCTAssertTrue(report.explanations.contains { $0.rule == "fuse-hard-swish" && $0.reason.contains("allclose(be, 0.5") },
                      "\(report.explanations)")
    }
}
