import XCTest
import Foundation
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// The built-in MatMul rules (`Sources/ONNXFuse/Rules/matmul.rules`): a low-rank adapter (LoRA)
/// merged into the weight beside it, with and without a scale, and a 2-D MatMul + constant Add
/// fused into a Gemm, on small graphs whose numbers are computed by hand, and the cases where
/// they must not fire.
///
/// The LoRA graphs share x [1, 2], W = ((1, 2), (3, 4)), A = (1, 2) as [2, 1] and
/// B = (10, 20) as [1, 2], so A·B = ((10, 20), (20, 40)) and W + A·B = ((11, 22), (23, 44)).
final class BuiltinMatMulTests: XCTestCase {
    /// The LoRA rules and fuse-matmul-add of the built-in matmul.rules, alone: other built-in
    /// files do not interfere, and the scale folds (tested on their own below) would fold an
    /// adapter's scale into B first, which changes which LoRA form fires, not the result.
    static var rules: [CompiledRule] { matmulRules.filter { !$0.name.hasPrefix("fold-scale-") } }

    /// Every rule of the built-in matmul.rules.
    static var matmulRules: [CompiledRule] { RuleFiles.builtin.filter { $0.file == "builtin:matmul.rules" } }

    typealias Kind = RuleTestGraph.Source

    final class Fixture: RuleTestGraph {
        init(rules: [CompiledRule] = BuiltinMatMulTests.rules) { super.init(rules: rules) }
    }

    /// What a LoRA case changes.
    struct LoRA {
        var w = Kind.constant, a = Kind.constant, b = Kind.constant
        var swapAdd = false
        /// The scale on the adapter's output: its values and dims; nil for none.
        var scale: (values: [Float], dims: [Int64])?
        var swapMul = false
        var xDims: [Int64] = [1, 2]
        var lowUsedElsewhere = false, deltaUsedElsewhere = false, baseIsOutput = false
        /// A constant bias added after y (then z, not y, is the graph output).
        var bias: [Float]?
    }

    /// base = MatMul(x, W), low = MatMul(x, A), delta = MatMul(low, B), [scaled = Mul(delta, s)],
    /// y = Add(base, delta or scaled), [z = Add(y, bias)]; y (or z) is a graph output.
    func lora(_ options: LoRA) throws -> Fixture {
        let f = Fixture()
        let x = f.input("x", options.xDims)
        let w = try f.value(options.w, "w", [1, 2, 3, 4], [2, 2])
        let a = try f.value(options.a, "a", [1, 2], [2, 1])
        let b = try f.value(options.b, "b", [10, 20], [1, 2])
        let base = try f.node("MatMul", [x, w], "base")
        let low = try f.node("MatMul", [x, a], "low")
        var delta = try f.node("MatMul", [low, b], "delta")
        if options.lowUsedElsewhere { try f.output(f.node("Relu", [low], "other")) }
        if options.deltaUsedElsewhere { try f.output(f.node("Relu", [delta], "other")) }
        if let scale = options.scale {
            let s = f.constant("s", scale.values, scale.dims)
            delta = try f.node("Mul", options.swapMul ? [s, delta] : [delta, s], "scaled")
        }
        let y = try f.node("Add", options.swapAdd ? [delta, base] : [base, delta], "y")
        if let bias = options.bias {
            try f.output(f.node("Add", [y, f.constant("bias", bias, [Int64(bias.count)])], "z"))
        } else {
            try f.output(y)
        }
        if options.baseIsOutput { try f.output(base) }
        return f
    }

    func assertFires(_ f: Fixture, _ rules: [String], _ text: String, _ message: String = "",
                     file: StaticString = #filePath, line: UInt = #line) throws {
        let report = try f.run()
        XCTAssertEqual(report.fired.map(\.rule), rules, message, file: file, line: line)
        XCTAssertEqual(f.text, text, message, file: file, line: line)
    }

    /// Expects nothing to fire or change, and returns `rule`'s explanations without the label of
    /// the form that gave them ("form 2 of 2 (line 20: without Mul): w is a graph input" is
    /// "w is a graph input"; the labels are MatchFormTests' business).
    func reasons(_ rule: String, _ f: Fixture, file: StaticString = #filePath, line: UInt = #line) throws -> [String] {
        try f.reasonsNothingFires(for: rule, file: file, line: line).map(Self.withoutFormLabel)
    }

    static func withoutFormLabel(_ reason: String) -> String {
        guard reason.hasPrefix("form ") else { return reason }
        var depth = 0
        var index = reason.startIndex
        while index < reason.endIndex {
            switch reason[index] {
            case "(": depth += 1
            case ")": depth -= 1
            case ":" where depth == 0: return String(reason[reason.index(index, offsetBy: 2)...])
            default: break
            }
            index = reason.index(after: index)
        }
        return reason
    }

    func testTheRulesAreBuiltIn() {
        XCTAssertEqual(Self.matmulRules.map(\.name), ["merge-lora", "merge-lora-biased", "merge-lora-gemm", "merge-lora-gemm-transb",
                                                      "merge-lora-gemms", "fuse-matmul-add", "fold-scale-into-matmul", "fold-scale-into-gemm"])
        XCTAssertEqual(Self.matmulRules.map(\.rewrite.benefit), [20, 20, 20, 20, 20, 5, 1, 1], "the LoRA rules are tried first at the Add")
        // Each LoRA rule has a form with the adapter's scale and one without.
        XCTAssertEqual(Self.matmulRules.prefix(5).map(\.rewrites.count), [2, 2, 2, 2, 2])
    }

    // MARK: merge-lora

    func testMergeLoRA() throws {
        for swapAdd in [false, true] {
            try assertFires(lora(LoRA(swapAdd: swapAdd)), ["merge-lora"], """
                g (float[1,2] x) => (? y)
                   <float[2,2] y_w2 = {11, 22, 23, 44}>
                {
                   y = MatMul (x, y_w2)
                }

                """, "swapAdd: \(swapAdd)")
        }
    }

    func testMergeScaledLoRA() throws {
        // s = 0.5: W + 0.5·A·B = ((1 + 5, 2 + 10), (3 + 10, 4 + 20)).
        for swapAdd in [false, true] {
            for swapMul in [false, true] {
                try assertFires(lora(LoRA(swapAdd: swapAdd, scale: ([0.5], []), swapMul: swapMul)), ["merge-lora"], """
                    g (float[1,2] x) => (? y)
                       <float[2,2] y_w2 = {6, 12, 13, 24}>
                    {
                       y = MatMul (x, y_w2)
                    }

                    """, "swapAdd: \(swapAdd), swapMul: \(swapMul)")
            }
        }
        // Per output column, s = (0.5, 2) as [N] and as [1, N]: A·B * s = ((5, 40), (10, 80)).
        for dims: [Int64] in [[2], [1, 2]] {
            try assertFires(lora(LoRA(scale: ([0.5, 2], dims), swapMul: true)), ["merge-lora"], """
                g (float[1,2] x) => (? y)
                   <float[2,2] y_w2 = {6, 42, 13, 84}>
                {
                   y = MatMul (x, y_w2)
                }

                """, "\(dims)")
        }
    }

    func testMergeLoRAThenFuseTheBias() throws {
        // merge-lora first, then the merged MatMul and the bias (1, -1) become a Gemm.
        try assertFires(lora(LoRA(bias: [1, -1])), ["merge-lora", "fuse-matmul-add"], """
            g (float[1,2] x) => (? z)
               <float[2] bias = {1, -1}, float[2,2] y_w2 = {11, 22, 23, 44}>
            {
               z = Gemm (x, y_w2, bias)
            }

            """)
    }

    func testMergeLoRAMustNotFire() throws {
        XCTAssertEqual(try reasons("merge-lora", lora(LoRA(w: .graphInput))), ["w is a graph input"])
        XCTAssertEqual(try reasons("merge-lora", lora(LoRA(a: .computed))), ["a is produced by Relu, not a constant"])
        XCTAssertEqual(try reasons("merge-lora", lora(LoRA(b: .graphInput))), ["b is a graph input"])
        XCTAssertEqual(try reasons("merge-lora", lora(LoRA(lowUsedElsewhere: true))), ["low has 2 users"])
        XCTAssertEqual(try reasons("merge-lora", lora(LoRA(deltaUsedElsewhere: true))), ["delta has 2 users"])
        XCTAssertEqual(try reasons("merge-lora", lora(LoRA(baseIsOutput: true))), ["base is a graph output"])
    }

    func testMergeScaledLoRAMustNotFire() throws {
        let scale: ([Float], [Int64]) = ([0.5], [])
        XCTAssertEqual(try reasons("merge-lora", lora(LoRA(w: .computed, scale: scale))), ["w is produced by Relu, not a constant"])
        XCTAssertEqual(try reasons("merge-lora", lora(LoRA(a: .graphInput, scale: scale))), ["a is a graph input"])
        XCTAssertEqual(try reasons("merge-lora", lora(LoRA(scale: scale, deltaUsedElsewhere: true))), ["delta has 2 users"])
        XCTAssertEqual(try reasons("merge-lora", lora(LoRA(scale: scale, baseIsOutput: true))), ["base is a graph output"])
        // A scale per row of the output cannot go into the weight.
        XCTAssertEqual(try reasons("merge-lora", lora(LoRA(scale: ([0.5, 2], [2, 1])))),
                       ["`absent(s) || rank(s) <= 2 && (numel(s) == 1 || dim(s, -1) == dim(b, 1))` is false"])
        // [1, N] on a 1-D x would raise the output's rank.
        XCTAssertEqual(try reasons("merge-lora", lora(LoRA(scale: ([0.5, 2], [1, 2]), xDims: [2]))),
                       ["`absent(s) || rank(s) <= 1 || dim(s, 0) == 1 && rank(x) >= 2` is false"])
    }

    // MARK: LoRA as peft exports it: a biased base, Gemm bases, Gemm adapters

    /// The peft forms on the shared LoRA numbers (x [1, 2], W, A, B as above), scale 0.5 unless
    /// `scale` is nil: `base` is "matmul" (MatMul then Add of a bias c = (1, -1), the bias first,
    /// x [1, 1, 2] as a transformer's activations, so that fuse-matmul-add leaves the bias alone),
    /// "gemm" (Gemm(x, W, c)), "gemm-transb" (Gemm(x, Wᵀ, c), transB 1) or "gemms" (the adapter
    /// Gemms too, A and B stored transposed, transB 1).
    func peft(_ base: String, scale: Float? = 0.5, biasKind: Kind = .constant, alpha: Float = 1,
              adapterBias: Bool = false, transB: Int64? = nil, rules: [CompiledRule] = BuiltinMatMulTests.rules) throws -> Fixture {
        let f = Fixture(rules: rules)
        let x = f.input("x", base == "matmul" ? [1, 1, 2] : [1, 2])
        let c = try f.value(biasKind, "c", [1, -1], [2])
        func gemm(_ inputs: [Value], _ output: String, transB: Int64) throws -> Value {
            var attributes = [Attribute(name: "transB", value: .int(transB))]
            if alpha != 1 { attributes.append(Attribute(name: "alpha", value: .float(alpha))) }
            let node = Node(opType: "Gemm", name: output, inputs: inputs, outputNames: [output], attributes: attributes)
            try f.graph.append(node)
            return node.outputs[0]!
        }
        let baseValue: Value
        switch base {
        case "matmul": baseValue = try f.node("Add", [c, f.node("MatMul", [x, f.constant("w", [1, 2, 3, 4], [2, 2])], "base")], "biased")
        case "gemm": baseValue = try gemm([x, f.constant("w", [1, 2, 3, 4], [2, 2]), c], "base", transB: transB ?? 0)
        default: baseValue = try gemm([x, f.constant("w", [1, 3, 2, 4], [2, 2]), c], "base", transB: transB ?? 1)
        }
        var delta: Value
        if base == "gemms" {
            let low = try gemm([x, f.constant("a", [1, 2], [1, 2])] + (adapterBias ? [f.constant("lb", [1], [1])] : []), "low", transB: 1)
            delta = try gemm([low, f.constant("b", [10, 20], [2, 1])], "delta", transB: 1)
        } else {
            delta = try f.node("MatMul", [f.node("MatMul", [x, f.constant("a", [1, 2], [2, 1])], "low"), f.constant("b", [10, 20], [1, 2])], "delta")
        }
        if let scale { delta = try f.node("Mul", [delta, f.constant("s", [scale], [])], "scaled") }
        try f.output(f.node("Add", [baseValue, delta], "y"))
        return f
    }

    func testMergeLoRAOfPeftExports() throws {
        // Every form merges into one MatMul and a bias, or one Gemm; RuleTestGraph.run checks the numbers.
        let cases: [(String, Float?, [String], [String])] = [
            ("matmul", 0.5, ["merge-lora-biased"], ["MatMul", "Add"]),
            ("matmul", nil, ["merge-lora-biased"], ["MatMul", "Add"]),
            ("gemm", 0.5, ["merge-lora-gemm"], ["Gemm"]),
            ("gemm-transb", 0.5, ["merge-lora-gemm-transb"], ["Gemm"]),
            ("gemms", 0.5, ["merge-lora-gemms"], ["Gemm"]),
        ]
        for (base, scale, fired, left) in cases {
            let f = try peft(base, scale: scale)
            let report = try f.run()
            XCTAssertEqual(report.fired.map(\.rule), fired, base)
            XCTAssertEqual(f.graph.nodes.map(\.opType), left, base)
        }
    }

    func testMergeLoRAOfPeftExportsMustNotFire() throws {
        XCTAssertEqual(try reasons("merge-lora-biased", peft("matmul", biasKind: .graphInput)),
                       ["biased ('c') is a graph input, not an output of Add", "c is a graph input"])
        // alpha scales the base product, not the adapter.
        XCTAssertEqual(try reasons("merge-lora-gemm", peft("gemm", alpha: 2)), ["`al == 1.0` is false"])
        // A Gemm with transB 0 whose weight is stored transposed does not fit the weight's shape test.
        XCTAssertEqual(try reasons("merge-lora-gemms", peft("gemms", transB: 0)), ["`tb == 1` is false"])
        // An adapter Gemm with a bias of its own is not a low-rank product.
        XCTAssertTrue(try reasons("merge-lora-gemms", peft("gemms", adapterBias: true)).first?.contains("3 inputs") ?? false)
    }

    // MARK: fuse-matmul-add

    /// y = MatMul(x, b) with x [2, 2] (or `xDims`) and b [2, 2] = ((1, 2), (3, 4)) (a constant or
    /// a graph input), z = Add(y, c) with c as given; z is a graph output.
    func matmulAdd(c: (values: [Float], dims: [Int64]), cKind: Kind = .constant, b bKind: Kind = .constant,
                   xDims: [Int64] = [2, 2], swapAdd: Bool = false, yIsOutput: Bool = false) throws -> Fixture {
        let f = Fixture()
        let x = f.input("x", xDims)
        let b = try f.value(bKind, "b", [1, 2, 3, 4], [2, 2])
        let c = try f.value(cKind, "c", c.values, c.dims)
        let y = try f.node("MatMul", [x, b], "y")
        try f.output(f.node("Add", swapAdd ? [c, y] : [y, c], "z"))
        if yIsOutput { try f.output(y) }
        return f
    }

    func testFuseMatMulAdd() throws {
        let shapes: [(values: [Float], dims: [Int64], text: String)] = [
            ([1, -1], [2], "float[2] c = {1, -1}"),
            ([1, -1], [1, 2], "float[1,2] c = {1, -1}"),
            ([1, -1], [2, 1], "float[2,1] c = {1, -1}"),
            ([1, 2, 3, 4], [2, 2], "float[2,2] c = {1, 2, 3, 4}"),
            ([7], [], "float[] c = {7}"),
            ([7], [1], "float[1] c = {7}"),
        ]
        for (values, dims, text) in shapes {
            for swapAdd in [false, true] {
                try assertFires(matmulAdd(c: (values, dims), swapAdd: swapAdd), ["fuse-matmul-add"], """
                    g (float[2,2] x) => (? z)
                       <float[2,2] b = {1, 2, 3, 4}, \(text)>
                    {
                       z = Gemm (x, b, c)
                    }

                    """, "\(dims), swapAdd: \(swapAdd)")
            }
        }
        // B need not be a constant.
        try assertFires(matmulAdd(c: ([1, -1], [2]), b: .graphInput), ["fuse-matmul-add"], """
            g (float[2,2] x, float[2,2] b) => (? z)
               <float[2] c = {1, -1}>
            {
               z = Gemm (x, b, c)
            }

            """)
    }

    func testFuseMatMulAddMustNotFire() throws {
        let rule = "fuse-matmul-add"
        XCTAssertEqual(try reasons(rule, matmulAdd(c: ([1, -1], [2]), xDims: [1, 2, 2])), ["`rank(a) == 2` is false"])
        XCTAssertEqual(try reasons(rule, matmulAdd(c: ([1, -1], [2]), cKind: .graphInput)), ["c is a graph input"])
        XCTAssertEqual(try reasons(rule, matmulAdd(c: ([1, -1], [2]), yIsOutput: true)), ["y is a graph output"])
        XCTAssertEqual(try reasons(rule, matmulAdd(c: ([1, 2, 3], [3]))),
                       ["`numel(c) == 1 || dim(c, -1) == dim(b, 1) || rank(c) == 2 && dim(c, 1) == 1` is false"])
        XCTAssertEqual(try reasons(rule, matmulAdd(c: ([1, 2, 3, 4, 5, 6], [3, 2]))),
                       ["`rank(c) <= 1 || dim(c, 0) == 1 || dim(c, 0) == dim(a, 0)` is false"])
        XCTAssertEqual(try reasons(rule, matmulAdd(c: ([1, -1], [1, 1, 2]))), ["`rank(c) <= 2` is false"])
    }
}
