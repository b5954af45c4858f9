import XCTest
import Foundation
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// `--verify`, `rules check --model` and `evaluate` as a user runs them, on the bundled fixtures;
/// and the library's side of them.
final class VerifyCommandTests: XCTestCase {
    func workspace(_ fixtures: [String]) throws -> URL { try fixtureWorkspace(fixtures) }

    func testVerifyModelReportsPerRuleAndInTheJSONReport() throws {
        let dir = try workspace(["conv_bn_traps.onnx"])
        let run = try runOnnxFuse(["conv_bn_traps.onnx", "--verify=model", "--report", "report.json", "-o", "out.onnx"], in: dir)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("onnx-fuse: verify: 2 rewrites checked, 0 beyond tolerance, 0 not verified"), run.stderr)
        XCTAssertTrue(run.stderr.contains("onnx-fuse: verify: whole model: agrees (worst error "), run.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("report.json"))) as! [String: Any]
        XCTAssertEqual(report["output"] as? String, "out.onnx")
        let verification = try XCTUnwrap(report["verification"] as? [String: Any])
        XCTAssertEqual(verification["seed"] as? Int, 1)
        XCTAssertEqual((verification["failures"] as? [Any])?.count, 0)
        let rules = try XCTUnwrap(verification["rules"] as? [[String: Any]])
        XCTAssertEqual(Set(rules.compactMap { $0["rule"] as? String }), ["fold-constants", "fold-conv-batchnorm"])
        for rule in rules {
            XCTAssertEqual(rule["checked"] as? Int, 1)
            XCTAssertEqual(rule["agreed"] as? Int, 1)
            XCTAssertEqual(rule["not_verified"] as? Int, 0)
            XCTAssertLessThanOrEqual(try XCTUnwrap(rule["worst_error"] as? Double), 1e-5)
        }
        let whole = try XCTUnwrap(verification["whole_model"] as? [String: Any])
        XCTAssertEqual(whole["outcome"] as? String, "agree")
        XCTAssertEqual((whole["errors"] as? [String: Any])?.count, 9)
        // Quiet: nothing but errors.
        let quiet = try runOnnxFuse(["conv_bn_traps.onnx", "--verify=model", "-q", "-o", "quiet.onnx"], in: dir)
        XCTAssertEqual(quiet.status, 0, quiet.stderr)
        XCTAssertEqual(quiet.stderr, "")
    }

    func testAModelTheKernelsCannotRunIsNotVerifiedAndStrictRefusesIt() throws {
        let dir = try workspace(["if_subgraph.onnx"])
        let run = try runOnnxFuse(["if_subgraph.onnx", "--verify=model", "-o", "out.onnx"], in: dir)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("whole model: not run: If 'if' has subgraphs, which the evaluator does not run"), run.stderr)
        let strict = try runOnnxFuse(["if_subgraph.onnx", "--verify=model,strict", "-o", "strict.onnx"], in: dir)
        XCTAssertEqual(strict.status, 5, strict.stderr)
        XCTAssertTrue(strict.stderr.hasSuffix("the whole model was not compared: not run: If 'if' has subgraphs, which the evaluator does not run; nothing written\n"),
                      strict.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("strict.onnx").path))
    }

    func testRulesCheckWithAModelPrintsATablePerRule() throws {
        let dir = try workspace(["conv_bn.onnx", "conv_bias_bn.onnx"])
        let example = CommandTests.root.appendingPathComponent("docs/examples/conv-batchnorm.rules").path
        let check = try runOnnxFuse(["rules", "check", example, "--model", "conv_bn.onnx", "--model", "conv_bias_bn.onnx"], in: dir)
        XCTAssertEqual(check.status, 0, check.stderr)
        let lines = String(decoding: check.stdout, as: UTF8.self).split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains("conv_bn.onnx: 3 -> 2 nodes"), "\(lines)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("  rule ") && $0.hasSuffix("candidates  fired  verified  not verified  worst error") }, "\(lines)")
        let fold = lines.filter { $0.hasPrefix("  fold-conv-batchnorm ") }
        XCTAssertEqual(fold.count, 2, "\(lines)")
        for line in fold {
            XCTAssertEqual(line.split(separator: " ").dropFirst().prefix(4), ["1", "1", "1", "0"], line)
        }
        XCTAssertEqual(lines.filter { $0.hasPrefix("  whole model: agrees") }.count, 2, "\(lines)")
        // Nothing is written.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["conv_bias_bn.onnx", "conv_bn.onnx"])
        // A model that cannot be read is the model's error.
        let missing = try runOnnxFuse(["rules", "check", example, "--model", "missing.onnx"], in: dir)
        XCTAssertEqual(missing.status, 3, missing.stderr)
    }

    func testEvaluateWritesTheSeededInputsAndOutputs() throws {
        let dir = try workspace(["conv_bn.onnx", "if_subgraph.onnx"])
        let run = try runOnnxFuse(["evaluate", "conv_bn.onnx", "-o", "data.onnx", "--seed", "3"], in: dir)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stderr, "onnx-fuse: conv_bn.onnx -> data.onnx: 1 inputs, 1 outputs\n")
        let data = try ModelFile.load(path: dir.appendingPathComponent("data.onnx").path)
        XCTAssertEqual(data.graph.initializers.map(\.name), ["X", "Y"])
        XCTAssertEqual(data.graph.outputs.map(\.value.name), ["Y"])
        // The same values as the library's run with the same seed.
        let model = try ModelFile.load(path: dir.appendingPathComponent("conv_bn.onnx").path)
        let evaluation = try evaluateModel(model, seed: 3)
        XCTAssertEqual(try TensorValue(tensor: data.graph.initializers[0].initializer!), evaluation.inputs[0].value)
        XCTAssertEqual(try TensorValue(tensor: data.graph.initializers[1].initializer!), evaluation.outputs[0].value)
        // What the kernels cannot run is refused, and nothing is written.
        let refused = try runOnnxFuse(["evaluate", "if_subgraph.onnx", "-o", "if.onnx"], in: dir)
        XCTAssertEqual(refused.status, 2)
        XCTAssertEqual(refused.stderr, "onnx-fuse: error: if_subgraph.onnx: the reference kernels cannot run it: "
            + "If 'if' has subgraphs, which the evaluator does not run\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("if.onnx").path))
        let overwrite = try runOnnxFuse(["evaluate", "conv_bn.onnx", "-o", "conv_bn.onnx"], in: dir)
        XCTAssertEqual(overwrite.status, 1)
    }

    func testTheLibraryChecksEveryRewriteWhenAsked() throws {
        let model = try ModelFile.load(path: CommandTests.fixtures.appendingPathComponent("shape_arithmetic.onnx").path)
        var options = OptimizationOptions()
        options.verifyRewrites = true
        let report = try optimize(model, rules: RuleFiles.builtin, options: options)
        let verification = try XCTUnwrap(report.verification)
        XCTAssertEqual(verification.failures.count, 0)
        XCTAssertEqual(verification.notVerified, 0)
        XCTAssertEqual(verification.checked, report.fired.reduce(0) { $0 + $1.count })
        XCTAssertEqual(Set(verification.rules.map(\.rule)), Set(report.fired.map(\.rule)))
        // Without the option, nothing is checked.
        let plain = try ModelFile.load(path: CommandTests.fixtures.appendingPathComponent("shape_arithmetic.onnx").path)
        XCTAssertNil(try optimize(plain, rules: RuleFiles.builtin).verification)
    }

    func testWhatWouldBeTooLargeToEvaluateIsNotVerifiedNotAttempted() throws {
        // A float Expanded to 10^10 elements (80 GB of float64), behind an Identity that a
        // built-in rule removes: the rewrite's check would seed it, the whole-model run compute it.
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(1)])))
        let shape = graph.addInitializer(name: "shape", tensor: Tensor(dataType: .int64, dims: [2], values: [Int64(100_000), 100_000]))
        let expand = Node(opType: "Expand", name: "expand", inputs: [x, shape], outputNames: ["big"])
        let identity = Node(opType: "Identity", name: "identity", inputs: [expand.outputs[0]], outputNames: ["same"])
        let sum = Node(opType: "ReduceSum", name: "sum", inputs: [identity.outputs[0]], outputNames: ["total"])
        for node in [expand, identity, sum] { try graph.append(node) }
        try graph.addOutput(sum.outputs[0]!, info: ValueInfo(type: nil))
        let original = try ModelFile.load(path: try saved(model))
        var options = OptimizationOptions()
        options.verifyRewrites = true
        let report = try optimize(model, rules: RuleFiles.builtin, options: options)
        let verification = try XCTUnwrap(report.verification)
        XCTAssertEqual(verification.failures.count, 0)
        XCTAssertEqual(verification.notVerified, 1, "\(verification.rules)")
        XCTAssertTrue(verification.rules.first?.firstNotVerifiedReason?.contains("10000000000") ?? false, "\(verification.rules)")
        guard case .notRun(let reason) = compareModels(original, model).outcome else { return XCTFail("ran") }
        XCTAssertEqual(reason, "Expand 'expand' would compute 10000000000 elements, more than the evaluation's limit (33554432)")
    }

    func saved(_ model: Model) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("onnx-fuse-verify-\(UUID().uuidString).onnx")
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        _ = try ModelFile.save(model, to: url.path)
        return url.path
    }
}
