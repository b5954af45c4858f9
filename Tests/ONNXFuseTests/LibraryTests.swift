import XCTest
import Foundation
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// The library API as the README shows it.
final class LibraryTests: XCTestCase {
    /// The README's example of editing the IR, run as it is written there (its two paths
    /// replaced by `modelPath` and `outputPath`; `testTheReadmeShowsTheCodeTestedHere` checks
    /// that the lines are the README's).
    func testReadmeExample() throws {
        let modelPath = CommandTests.fixtures.appendingPathComponent("conv_bn.onnx").path
        let outputPath = try fixtureWorkspace([]).appendingPathComponent("model.out.onnx").path
        let original = try ModelFile.load(path: modelPath)
        let convWeights = original.graph.nodes.first { $0.opType == "Conv" }!.inputs.compactMap { $0?.name }.filter { $0 != "X" }

        // readme: begin
        let model = try ModelFile.load(path: modelPath)
        for node in model.graph.nodes where node.opType == "Conv" {
            print(node.name ?? "", node.inputs.map { $0?.name ?? "" })
        }
        let bn = model.graph.nodes.first { $0.opType == "BatchNormalization" }!
        try bn.outputs[0]!.replaceAllUses(with: bn.inputs[0]!)  // every use list stays exact
        try model.graph.erase(bn)                               // throws while an output is still read
        model.removeDeadCode()                                  // its scale, bias, mean and variance go too
        try model.verify()                                      // checks every IR invariant (save does too)
        try ModelFile.save(model, to: outputPath)               // atomic; unchanged parts byte-identical
        print(model)                                            // the text `Printer` writes; a node prints on one line
        // readme: end

        let saved = try ModelFile.load(path: outputPath)
        let text = Printer().print(saved)
        XCTAssertTrue(text.contains("Y = Relu (conv_out)"), text)
        XCTAssertEqual(ModelStatistics(saved).nodesByOpType, ["Conv": 1, "Relu": 1])
        XCTAssertEqual(original.graph.initializers.count, convWeights.count + 4, "the BatchNormalization's four tensors")
        XCTAssertEqual(saved.graph.initializers.map(\.name), convWeights, "nothing of the BatchNormalization is left behind")
    }

    func testTheReadmeShowsTheCodeTestedHere() throws {
        /// Lines with runs of spaces made one (comments stay aligned in both).
        func normalized<S: StringProtocol>(_ lines: [S]) -> [String] {
            lines.map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
        }
        let readme = try String(contentsOf: CommandTests.root.appendingPathComponent("README.md"), encoding: .utf8)
        let example = try XCTUnwrap(readme.components(separatedBy: "The graph IR can be edited directly too:").dropFirst().first)
        let block = example.components(separatedBy: "```swift\n")[1].components(separatedBy: "\n```")[0]
            .replacingOccurrences(of: "\"model.onnx\"", with: "modelPath")
            .replacingOccurrences(of: "\"model.out.onnx\"", with: "outputPath")
        let source = try String(contentsOf: URL(fileURLWithPath: #filePath), encoding: .utf8)
        let tested = source.components(separatedBy: "// readme: begin\n")[1].components(separatedBy: "\n        // readme: end")[0]
        XCTAssertGreaterThan(tested.split(separator: "\n").count, 10)
        XCTAssertEqual(normalized(tested.split(separator: "\n")), normalized(block.split(separator: "\n")))
    }

    /// `Model.removeDeadCode()` removes what the built-in clean-up rules for dead nodes and
    /// unused initializers remove, on every fixture (none has a dead If around a node of
    /// another domain, which only the rules remove).
    func testDeadCodeRemovalAgreesWithTheCleanupRules() throws {
        let names: Set = ["remove-dead-node", "remove-dead-node-ml", "remove-unused-initializer"]
        let rules = RuleFiles.builtin.filter { names.contains($0.name) }
        XCTAssertEqual(rules.count, names.count)
        let fixtures = try FileManager.default.contentsOfDirectory(atPath: CommandTests.fixtures.path).filter { $0.hasSuffix(".onnx") }
        var removedSomewhere = false
        for name in fixtures.sorted() {
            let byRules = try ModelFile.load(path: CommandTests.fixtures.appendingPathComponent(name).path)
            let byHand = byRules.copy()
            try optimize(byRules, rules: rules)
            let removed = byHand.removeDeadCode()
            removedSomewhere = removedSomewhere || removed.nodes > 0
            try byHand.verify()
            XCTAssertEqual(try ModelFile.serialize(byHand), try ModelFile.serialize(byRules), name)
        }
        XCTAssertTrue(removedSomewhere, "dead_nodes.onnx has dead nodes")
    }

    func testEveryBuiltinRuleHasAOneLineSummary() {
        // `rules list` prints the first comment line: it must be a whole sentence.
        XCTAssertGreaterThan(RuleFiles.builtin.count, 30)
        for rule in RuleFiles.builtin {
            let summary = rule.comment.first ?? ""
            XCTAssertTrue(summary.hasSuffix("."), "\(rule.name): '\(summary)'")
            XCTAssertLessThanOrEqual(summary.count, 110, rule.name)
        }
        XCTAssertEqual(Set(RuleFiles.builtin.map(\.name)).count, RuleFiles.builtin.count, "names are unique")
    }

    func testRulesFromTextAndNewDomainsAreImported() throws {
        let rules = try RuleFiles.rules(in: """
            # Fuse a Conv and the Relu after it into one node of another domain.
            rule fuse-conv-relu {
              match { y = Conv(x, w, b?); z = Relu(y) }
              replace { z = com.example.ConvRelu<...y>(x, w, b) }
            }
            """)
        let fold = try RuleFiles.load(path: CommandTests.root.appendingPathComponent("docs/examples/conv-batchnorm.rules").path)
        // Folding the BatchNormalization first makes the Conv+Relu pair the fusion needs.
        let model = try ModelFile.load(path: CommandTests.fixtures.appendingPathComponent("conv_bn.onnx").path)
        let report = try optimize(model, rules: fold + rules)
        XCTAssertEqual(report.fired.map(\.rule), ["fold-conv-batchnorm", "fuse-conv-relu"])
        XCTAssertEqual(model.opsetVersion(domain: "com.example"), 1)
        XCTAssertEqual(report.after.nodesByOpType["com.example.ConvRelu"], 1)
        XCTAssertEqual(model.graph.firstNode?.name, "conv", "the node keeps the name of the node whose attributes it copies")
        try model.verify()
    }

    func testErrorsNameTheFileAndThePlace() {
        let path = CommandTests.fixtures.appendingPathComponent("invalid/nested_10000.onnx").path
        XCTAssertThrowsError(try ModelFile.load(path: path)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix(path + ": ..."), text)
            XCTAssertTrue(text.hasSuffix(": messages nested deeper than 100 levels"), text)
            XCTAssertLessThan(text.count, path.count + 200, "one readable line")
        }
    }
}

/// The example rule file of the issue on every fixture: it folds every Conv+BatchNormalization
/// it should and none it should not.
final class ExampleRulesTests: XCTestCase {
    func testExampleRulesFoldExactlyTheConvBatchNormPairs() throws {
        let rules = try RuleFiles.load(path: CommandTests.root.appendingPathComponent("docs/examples/conv-batchnorm.rules").path)
        // BatchNormalization nodes left after the rules, by fixture.
        let expected: [String: Int] = [
            "bn_constant_nodes": 0, "conv1d_bn": 0, "conv3d_bn": 0, "conv_bias_bn": 0, "conv_bn": 0, "conv_depthwise_bn": 0,
            "conv_grouped_bn": 0, "external_data": 0, "float_data": 0, "fp16_weights": 0, "if_subgraph": 0,
            "metadata_docstrings": 0, "shared_weights": 0, "unknown_fields": 0,
            // Not a Conv before the BatchNormalization, or a weight that can be overridden.
            "convtranspose_bn": 1, "convtranspose_grouped_bn": 1, "double_weights": 1, "gemm_bn": 1, "overridable_initializer": 1,
            "gemm_transb0_bn": 1, "matmul_bn": 1, "gemm_bn_shared": 1,
            // Conv + BatchNormalization pairs that must not fold.
            "conv_bn_traps": 6, "rule_traps": 2,
            "functions_training": 0, "matmul_add": 0,
            // The clean-up rules' fixtures (scripts/make-cleanup-fixtures.py): no BatchNormalization.
            "identity_chain": 0, "dropout_opset12": 0, "dropout_training": 0, "transpose_pair": 0,
            "squeeze_unsqueeze": 0, "squeeze_unsqueeze_opset11": 0, "reshape_reshape": 0, "dead_nodes": 0,
            // The affine rules' fixtures (scripts/make-affine-fixtures.py): no BatchNormalization.
            "conv_add_bias": 0, "conv_mul_scale": 0, "conv_add_trap": 0, "convtranspose_mul": 0,
            "pad_conv": 0, "pad_conv_opset10": 0, "pad_conv_trap": 0, "pad_conv_axes": 0, "affine_variants": 0,
            // The MatMul rules' fixtures (scripts/make-matmul-fixtures.py): no BatchNormalization.
            "lora": 0, "lora_scaled": 0, "lora_peft": 0, "lora_gemms": 0, "matmul_add_3d": 0, "matmul_scale": 0, "constant_chains": 0,
            // The clean-up rules' Cast round trip (scripts/make-cleanup-fixtures.py).
            "cast_round_trip": 0, "transpose_constant": 0,
            // A MatMul by a transposed weight before the BatchNormalization: not a Conv.
            "matmul_transpose_bn": 1,
            // The operator-aware built-ins' fixtures (scripts/make-shape-fixtures.py): the dynamo
            // Conv's bias is computed at run time, so the example rule alone cannot fold it.
            "shape_arithmetic": 0, "dynamo_conv_bn": 1, "shape_ops_mix": 0, "transformer_shapes": 0,
            // The activation and normalization rules' fixtures (scripts/make-transformer-fixtures.py).
            "gelu_erf": 0, "gelu_tanh": 0, "gelu_opset17": 0, "hard_swish": 0, "hard_sigmoid_opset10": 0, "layernorm": 0,
            "layernorm_opset18": 0, "layernorm_opset14": 0, "rmsnorm": 0, "rmsnorm_opset20": 0, "attention": 0,
        ]
        let fixtures = ((try? FileManager.default.contentsOfDirectory(atPath: CommandTests.fixtures.path)) ?? []).filter { $0.hasSuffix(".onnx") }
        XCTAssertEqual(Set(fixtures.map { String($0.dropLast(5)) }), Set(expected.keys), "a fixture without an expectation")
        for name in fixtures.sorted() {
            let model = try ModelFile.load(path: CommandTests.fixtures.appendingPathComponent(name).path)
            let report = try optimize(model, rules: rules)
            try model.verify()
            XCTAssertEqual(report.after.nodesByOpType["BatchNormalization"] ?? 0, expected[String(name.dropLast(5))], name)
            let folded = (report.before.nodesByOpType["BatchNormalization"] ?? 0) - (report.after.nodesByOpType["BatchNormalization"] ?? 0)
            XCTAssertEqual(report.fired.first { $0.rule == "fold-conv-batchnorm" }?.count ?? 0, folded, name)
        }
    }

    func testRunningOnItsOwnOutputChangesNothing() throws {
        let rules = try RuleFiles.load(path: CommandTests.root.appendingPathComponent("docs/examples/conv-batchnorm.rules").path)
        let directory = try fixtureWorkspace([])
        for name in ["conv_bn.onnx", "shared_weights.onnx", "if_subgraph.onnx", "bn_constant_nodes.onnx"] {
            let first = try ModelFile.load(path: CommandTests.fixtures.appendingPathComponent(name).path)
            try optimize(first, rules: rules)
            let once = directory.appendingPathComponent("once-" + name).path
            try ModelFile.save(first, to: once)
            let second = try ModelFile.load(path: once)
            XCTAssertTrue(try optimize(second, rules: rules).fired.isEmpty, name)
            let twice = directory.appendingPathComponent("twice-" + name).path
            try ModelFile.save(second, to: twice)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: once)), try Data(contentsOf: URL(fileURLWithPath: twice)), name)
        }
    }
}
