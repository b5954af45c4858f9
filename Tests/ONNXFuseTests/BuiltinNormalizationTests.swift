import XCTest
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// The built-in normalization rules (`Sources/ONNXFuse/Rules/normalization.rules`):
/// LayerNormalization and RMSNormalization written out, fused into one node whose scale and bias
/// then take the constant Mul and Add after it; every run checks each rewrite's numbers with the
/// reference kernels (`RuleTestGraph.run`), and the cases where a rule must not fire say why.
final class BuiltinNormalizationTests: XCTestCase {
    static var rules: [CompiledRule] { RuleFiles.builtin.filter { $0.file == "builtin:normalization.rules" } }

    final class Fixture: RuleTestGraph {
        init(opset: Int64) { super.init(rules: BuiltinNormalizationTests.rules, opset: opset) }

        func scalar(_ name: String, _ value: Float) -> Value { constant(name, [value], []) }

        /// ReduceMean over `axes` with keepdims 1 (absent), the axes an attribute before opset 18
        /// and an input from it.
        func reduceMean(_ x: Value, _ axes: [Int64], _ output: String, keepdims: Int64? = nil) throws -> Value {
            let keep = keepdims.map { [Attribute(name: "keepdims", value: .int($0))] } ?? []
            let node: Node
            if opset >= 18 {
                let a = graph.addInitializer(name: output + "_axes", tensor: Tensor(dataType: .int64, dims: [Int64(axes.count)], values: axes))
                node = Node(opType: "ReduceMean", name: output, inputs: [x, a], outputNames: [output], attributes: keep)
            } else {
                node = Node(opType: "ReduceMean", name: output, inputs: [x], outputNames: [output],
                            attributes: [Attribute(name: "axes", value: .ints(axes))] + keep)
            }
            try graph.append(node)
            return node.outputs[0]!
        }

        var opset: Int64 { model.opsetVersion(domain: "") ?? 0 }
        var opTypes: [String] { graph.nodes.map(\.opType) }
    }

    /// What a LayerNorm case changes: x [2, 3, 4].
    struct LayerNorm {
        var opset: Int64 = 17
        var axes: [Int64] = [-1]
        var square = "Pow"
        var keepdims: Int64?
        var scale: [Float]? = [0.5, 1, 1.5, 2]
        var bias: [Float]? = [0.25, -0.5, 0.75, -1]
        var epsilonIsInput = false
        var centeredUsedElsewhere = false
    }

    func layerNorm(_ options: LayerNorm) throws -> Fixture {
        let f = Fixture(opset: options.opset)
        let x = f.input("x", [2, 3, 4])
        let m = try f.reduceMean(x, options.axes, "mean", keepdims: options.keepdims)
        let d = try f.node("Sub", [x, m], "d")
        if options.centeredUsedElsewhere { try f.output(f.node("Relu", [d], "other")) }
        let sq = try options.square == "Pow" ? f.node("Pow", [d, f.scalar("two", 2)], "sq") : f.node("Mul", [d, d], "sq")
        let v = try f.reduceMean(sq, options.axes, "var", keepdims: options.keepdims)
        let eps = options.epsilonIsInput ? f.input("eps", []) : f.scalar("eps", 1e-5)
        var y = try f.node("Div", [d, f.node("Sqrt", [f.node("Add", [v, eps], "e")], "s")], "n")
        if let scale = options.scale { y = try f.node("Mul", [f.constant("scale", scale, [4]), y], "w") }
        if let bias = options.bias { y = try f.node("Add", [y, f.constant("bias", bias, [4])], "y") }
        try f.output(f.node("Neg", [y], "out"))
        return f
    }

    func testLayerNormFusesWithItsScaleAndBias() throws {
        for opset: Int64 in [17, 18] {
            let f = try layerNorm(LayerNorm(opset: opset))
            XCTAssertEqual(try f.run().fired.map(\.rule),
                           ["fuse-layer-normalization", "fuse-layer-normalization-bias", "fuse-layer-normalization-scale"], "opset \(opset)")
            XCTAssertEqual(f.opTypes, ["LayerNormalization", "Neg"], "opset \(opset)")
            let node = try XCTUnwrap(f.graph.firstNode)
            XCTAssertEqual(node.attribute("axis")?.int, -1)
            XCTAssertEqual(node.attribute("epsilon")?.float, 1e-5)
            XCTAssertEqual(node.inputs.compactMap { $0?.constantTensor(freezeInitializerInputs: false)?.doubleValues() }, [[0.5, 1, 1.5, 2], [0.25, -0.5, 0.75, -1]])
        }
    }

    func testLayerNormFusesWithoutScaleOrBiasAndWithAProductForTheSquare() throws {
        let f = try layerNorm(LayerNorm(axes: [2], square: "Mul", keepdims: 1, scale: nil, bias: nil))
        XCTAssertEqual(try f.run().fired.map(\.rule), ["fuse-layer-normalization"])
        XCTAssertEqual(f.opTypes, ["LayerNormalization", "Neg"])
        // A scale of ones, as the node needs one.
        XCTAssertEqual(f.graph.firstNode!.inputs.count, 2)
        XCTAssertEqual(f.graph.firstNode!.inputs[1]?.constantTensor(freezeInitializerInputs: false)?.doubleValues(), [1, 1, 1, 1])
    }

    func testLayerNormStaysWhereItMust() throws {
        func reasons(_ options: LayerNorm) throws -> [String] {
            try layerNorm(options).reasonsNothingFires(for: "fuse-layer-normalization")
        }
        XCTAssertTrue(try reasons(LayerNorm(opset: 16)).contains { $0.hasSuffix("is false") && $0.contains("opset() >= 17") })
        // Over axis 1 of 3, not the last one.
        XCTAssertTrue(try reasons(LayerNorm(axes: [1], scale: nil, bias: nil)).contains { $0.contains("a1[0] == -1 || a1[0] == rank(x) - 1") })
        // keepdims 0: the mean does not broadcast back.
        XCTAssertTrue(try reasons(LayerNorm(keepdims: 0, scale: nil, bias: nil)).contains { $0.contains("k1 == 1") })
        XCTAssertTrue(try reasons(LayerNorm(epsilonIsInput: true)).contains { $0.hasSuffix("eps is a graph input") })
        XCTAssertTrue(try reasons(LayerNorm(centeredUsedElsewhere: true)).contains { $0.hasSuffix("d has 3 users") })
    }

    func testAConstantOfAnotherShapeStaysAfterTheNode() throws {
        // A scalar scale and a bias along axis 1 ([3, 1]) are not the node's: they stay outside it.
        let f = Fixture(opset: 17)
        let x = f.input("x", [2, 3, 4])
        let scale = f.constant("ones", [1, 1, 1, 1], [4])
        let n = Node(opType: "LayerNormalization", name: "ln", inputs: [x, scale], outputNames: ["n"])
        try f.graph.append(n)
        let w = try f.node("Mul", [n.outputs[0]!, f.constant("c", [2], [])], "w")
        try f.output(f.node("Add", [w, f.constant("b", [1, 2, 3], [3, 1])], "y"))
        XCTAssertEqual(try f.reasonsNothingFires(for: "fuse-layer-normalization-scale"), ["`shape(c) == shape(x)[ax:]` is false"])
    }

    /// Llama's RMSNorm on x [2, 3, 4]: x * (1 / sqrt(mean(x^2) + eps)), x * Reciprocal(...) or
    /// x / sqrt(...), times a scale.
    func rmsNorm(opset: Int64 = 23, form: String, scale: [Float]? = [0.5, 1, 1.5, 2], two: Float = 2, twoDims: [Int64] = []) throws -> Fixture {
        let f = Fixture(opset: opset)
        let x = f.input("x", [2, 3, 4])
        let v = try f.reduceMean(f.node("Pow", [x, f.constant("two", [two], twoDims)], "sq"), [-1], "var")
        let s = try f.node("Sqrt", [f.node("Add", [f.scalar("eps", 1e-6), v], "e")], "s")
        var y: Value
        switch form {
        case "one-over": y = try f.node("Mul", [x, f.node("Div", [f.scalar("one", 1), s], "r")], "n")
        case "reciprocal": y = try f.node("Mul", [f.node("Reciprocal", [s], "r"), x], "n")
        default: y = try f.node("Div", [x, s], "n")
        }
        if let scale { y = try f.node("Mul", [f.constant("scale", scale, [4]), y], "y") }
        try f.output(f.node("Neg", [y], "out"))
        return f
    }

    func testRMSNormFusesInEachForm() throws {
        for form in ["one-over", "reciprocal", "div"] {
            let f = try rmsNorm(form: form)
            XCTAssertEqual(try f.run().fired.map(\.rule), ["fuse-rms-normalization", "fuse-rms-normalization-scale"], form)
            XCTAssertEqual(f.opTypes, ["RMSNormalization", "Neg"], form)
            XCTAssertEqual(f.graph.firstNode!.inputs[1]?.constantTensor(freezeInitializerInputs: false)?.doubleValues(), [0.5, 1, 1.5, 2], form)
        }
        let bare = try rmsNorm(form: "div", scale: nil)
        XCTAssertEqual(try bare.run().fired.map(\.rule), ["fuse-rms-normalization"])
    }

    func testRMSNormStaysWhereItMust() throws {
        XCTAssertTrue(try rmsNorm(opset: 22, form: "div").reasonsNothingFires(for: "fuse-rms-normalization").contains { $0.contains("opset() >= 23") })
        XCTAssertTrue(try rmsNorm(form: "div", two: 3).reasonsNothingFires(for: "fuse-rms-normalization").contains { $0.contains("two == 2") })
        // A one-element constant of rank 4 broadcasts the result to rank 4: the node would keep x's 3.
        XCTAssertTrue(try rmsNorm(form: "div", scale: nil, twoDims: [1, 1, 1, 1]).reasonsNothingFires(for: "fuse-rms-normalization")
            .contains { $0.contains("rank(y) == rank(x)") })
    }
}
