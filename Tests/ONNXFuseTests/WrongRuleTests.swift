import XCTest
import Foundation
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// Deliberately wrong rule files: each is caught by `--verify` (exit 5, nothing written, the
/// error naming the rule, the node and the error) and by `rules check --model` (exit 5), or, for
/// a rule that would drop a used output, refused by the engine before it changes anything.
final class WrongRuleTests: XCTestCase {
    /// The correct fold, which each wrong rule below alters in one place.
    static let foldConvBatchNorm = """
        rule fold {
          match {
            y = Conv(x, w, b?)
            z = BatchNormalization<epsilon: eps = 1e-5, training_mode: tm = 0>(y, scale, shift, mean, var)
          }
          where { tm == 0 && constant(w, b, scale, shift, mean, var) && rank(w) == 4 }
          compute {
            k  = scale / sqrt(var + eps)
            w2 = w * reshape(k, [dim(w, 0), 1, 1, 1])
            b2 = (default(b, 0) - mean) * k + shift
          }
          replace { z = Conv<...y>(x, w2, b2) }
        }
        """

    static let wrongRules: [(name: String, text: String, model: String)] = [
        ("a sign error in the folded bias",
         foldConvBatchNorm.replacingOccurrences(of: "(default(b, 0) - mean)", with: "(default(b, 0) + mean)"), "conv_bn.onnx"),
        ("a missing epsilon", foldConvBatchNorm.replacingOccurrences(of: "sqrt(var + eps)", with: "sqrt(var)"), "conv_bn.onnx"),
        ("the scale along the wrong axis of the weight",
         foldConvBatchNorm.replacingOccurrences(of: "reshape(k, [dim(w, 0), 1, 1, 1])", with: "reshape(k, [1, dim(w, 0), 1, 1])"),
         "conv_bn.onnx"),
        ("a weight not transposed", """
            rule fold-transpose {
              match {
                t = Transpose(w)
                y = MatMul(x, t)
              }
              where { constant(w) }
              replace { y = MatMul(x, w) }
            }
            """, "matmul_transpose.onnx"),
        ("a used output replaced by another value", """
            rule drop-dropout {
              match { y, m = Dropout(x) }
              replace {
                y = x
                m = x
              }
            }
            """, "dropout_mask.onnx"),
    ]

    /// Small float models where each wrong rule fires: a Conv (4 channels in and out, so a
    /// scale along the wrong axis still fits) and a BatchNormalization whose variances are small,
    /// as trained ones are (a missing epsilon of 1e-5 then shows); a MatMul by a transposed square
    /// constant; a Dropout whose mask is a graph output.
    func writeModels(to directory: URL) throws {
        var random = SeededRandom(seed: 7)
        func values(_ count: Int, _ range: ClosedRange<Double>) -> [Float] {
            (0..<count).map { _ in Float(range.lowerBound + (range.upperBound - range.lowerBound) * Double(random.next() % 10_000) / 10_000) }
        }
        func model(_ build: (Graph) throws -> Void) throws -> Model {
            let graph = Graph(name: "g")
            let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
            try build(graph)
            return model
        }
        func constant(_ graph: Graph, _ name: String, _ values: [Float], _ dims: [Int64]) -> Value {
            graph.addInitializer(name: name, tensor: Tensor(dataType: .float, dims: dims, values: values))
        }
        let convBatchNorm = try model { graph in
            let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(1), .value(4), .value(6), .value(6)])))
            let conv = Node(opType: "Conv", name: "conv", inputs: [x, constant(graph, "w", values(144, -1...1), [4, 4, 3, 3]),
                                                                  constant(graph, "b", values(4, -0.5...0.5), [4])],
                            outputNames: ["y"], attributes: [Attribute(name: "pads", value: .ints([1, 1, 1, 1]))])
            try graph.append(conv)
            let bn = Node(opType: "BatchNormalization", name: "bn",
                          inputs: [conv.outputs[0], constant(graph, "scale", values(4, 0.5...1.5), [4]),
                                   constant(graph, "shift", values(4, -0.2...0.2), [4]), constant(graph, "mean", values(4, -0.5...0.5), [4]),
                                   constant(graph, "var", values(4, 0.0005...0.005), [4])],
                          outputNames: ["z"])
            try graph.append(bn)
            try graph.addOutput(bn.outputs[0]!, info: ValueInfo(type: nil))
        }
        let matmulTranspose = try model { graph in
            let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(2), .value(4)])))
            let transpose = Node(opType: "Transpose", name: "t", inputs: [constant(graph, "w", values(16, -1...1), [4, 4])], outputNames: ["t"])
            let matmul = Node(opType: "MatMul", name: "mm", inputs: [x, transpose.outputs[0]], outputNames: ["y"])
            try graph.append(transpose)
            try graph.append(matmul)
            try graph.addOutput(matmul.outputs[0]!, info: ValueInfo(type: nil))
        }
        let dropoutMask = try model { graph in
            let a = graph.addInput(name: "a", info: ValueInfo(type: .tensor(.float, [.value(2), .value(3)])))
            let first = Node(opType: "Relu", name: "first", inputs: [a], outputNames: ["x"])
            try graph.append(first)
            let dropout = Node(opType: "Dropout", name: "drop", inputs: [first.outputs[0]], outputNames: ["y", "m"])
            try graph.append(dropout)
            let relu = Node(opType: "Relu", name: "relu", inputs: [dropout.outputs[0]], outputNames: ["r"])
            try graph.append(relu)
            try graph.addOutput(relu.outputs[0]!, info: ValueInfo(type: nil))
            try graph.addOutput(dropout.outputs[1]!, info: ValueInfo(type: nil))
        }
        for (name, model) in [("conv_bn.onnx", convBatchNorm), ("matmul_transpose.onnx", matmulTranspose), ("dropout_mask.onnx", dropoutMask)] {
            _ = try ModelFile.save(model, to: directory.appendingPathComponent(name).path)
        }
    }

    func workspace() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("onnx-fuse-wrong-rules-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        try writeModels(to: url)
        return url
    }

    func testTheCorrectFoldPassesBothChecks() throws {
        let dir = try workspace()
        try Self.foldConvBatchNorm.write(to: dir.appendingPathComponent("fold.rules"), atomically: true, encoding: .utf8)
        let run = try runOnnxFuse(["conv_bn.onnx", "--no-builtin", "--rules", "fold.rules", "--verify=model,strict", "-o", "out.onnx"], in: dir)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("onnx-fuse: verify: 1 rewrite checked, 0 beyond tolerance, 0 not verified"), run.stderr)
        XCTAssertTrue(run.stderr.contains("onnx-fuse: verify: whole model: agrees"), run.stderr)
        let check = try runOnnxFuse(["rules", "check", "fold.rules", "--model", "conv_bn.onnx"], in: dir)
        XCTAssertEqual(check.status, 0, check.stderr)
    }

    func testEachWrongRuleIsCaughtByVerifyAndByRulesCheck() throws {
        let dir = try workspace()
        for (index, wrong) in Self.wrongRules.enumerated() {
            let rules = "wrong\(index).rules"
            try wrong.text.write(to: dir.appendingPathComponent(rules), atomically: true, encoding: .utf8)
            try? FileManager.default.removeItem(at: dir.appendingPathComponent("report.json"))
            let before = try filesByName(in: dir)
            let run = try runOnnxFuse([wrong.model, "--no-builtin", "--rules", rules, "--verify", "-o", "out.onnx",
                                       "--report", "report.json"], in: dir)
            XCTAssertEqual(run.status, 5, "\(wrong.name): \(run.stderr)")
            let error = run.stderr.split(separator: "\n").last.map(String.init) ?? ""
            XCTAssertTrue(error.hasPrefix("onnx-fuse: error: \(wrong.model): rule '"), "\(wrong.name): \(error)")
            XCTAssertTrue(error.contains("at node '") && error.hasSuffix("; nothing written"), "\(wrong.name): \(error)")
            // Nothing written but the report, which says what failed.
            var after = try filesByName(in: dir)
            let report = try XCTUnwrap(after.removeValue(forKey: "report.json"), wrong.name)
            XCTAssertEqual(after, before, wrong.name)
            let json = try JSONSerialization.jsonObject(with: report) as! [String: Any]
            XCTAssertNil(json["output"], wrong.name)
            let failures = (json["verification"] as? [String: Any])?["failures"] as? [[String: Any]]
            XCTAssertEqual(failures?.count, 1, wrong.name)

            let check = try runOnnxFuse(["rules", "check", rules, "--model", wrong.model], in: dir)
            XCTAssertEqual(check.status, 5, "\(wrong.name): \(check.stderr)")
            XCTAssertTrue(String(decoding: check.stdout, as: UTF8.self).contains("FAILED: rule '"), wrong.name)
            XCTAssertEqual(try filesByName(in: dir).filter { $0.key != "report.json" }, before, wrong.name)
        }
    }

    func testRulesCheckReportsWhatItFoundAsJSON() throws {
        let dir = try workspace()
        try Self.foldConvBatchNorm.write(to: dir.appendingPathComponent("fold.rules"), atomically: true, encoding: .utf8)
        let good = try runOnnxFuse(["rules", "check", "fold.rules", "--model", "conv_bn.onnx", "--report", "good.json"], in: dir)
        XCTAssertEqual(good.status, 0, good.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("good.json"))) as! [String: Any]
        XCTAssertEqual(json["files"] as? [String], ["fold.rules"])
        XCTAssertEqual(json["rules"] as? [String], ["fold"])
        XCTAssertEqual((json["refusals"] as? [String])?.count, 0)
        let model = try XCTUnwrap((json["models"] as? [[String: Any]])?.first)
        XCTAssertEqual(model["model"] as? String, "conv_bn.onnx")
        XCTAssertEqual(model["nodes_before"] as? Int, 2)
        XCTAssertEqual(model["nodes_after"] as? Int, 1)
        let rule = try XCTUnwrap((model["rules"] as? [[String: Any]])?.first)
        XCTAssertEqual(rule["rule"] as? String, "fold")
        XCTAssertEqual(rule["candidates"] as? Int, 1)
        XCTAssertEqual(rule["fired"] as? Int, 1)
        XCTAssertEqual(rule["verified"] as? Int, 1)
        XCTAssertLessThan(try XCTUnwrap(rule["worst_error"] as? Double), 1e-5)
        XCTAssertEqual((model["whole_model"] as? [String: Any])?["outcome"] as? String, "agree")

        // A rule that changes the numbers: exit 5, and the report says which rewrite failed.
        try Self.wrongRules[0].text.write(to: dir.appendingPathComponent("sign.rules"), atomically: true, encoding: .utf8)
        let wrong = try runOnnxFuse(["rules", "check", "sign.rules", "--model", "conv_bn.onnx", "--report", "wrong.json"], in: dir)
        XCTAssertEqual(wrong.status, 5, wrong.stderr)
        let refused = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("wrong.json"))) as! [String: Any]
        let refusals = try XCTUnwrap(refused["refusals"] as? [String])
        XCTAssertEqual(refusals.count, 1)
        XCTAssertTrue(refusals[0].hasPrefix("conv_bn.onnx: rule 'fold' at node 'bn' changed 'z' by "), refusals[0])
        let failures = (refused["models"] as? [[String: Any]])?.first?["failures"] as? [[String: Any]]
        XCTAssertEqual(failures?.first?["rule"] as? String, "fold")

        // The report never overwrites a rule file or a model, nothing is written then.
        let before = try filesByName(in: dir)
        for target in ["conv_bn.onnx", "fold.rules"] {
            let refusal = try runOnnxFuse(["rules", "check", "fold.rules", "--model", "conv_bn.onnx", "--report", target], in: dir)
            XCTAssertEqual(refusal.status, 1)
            XCTAssertEqual(refusal.stderr, "onnx-fuse: error: \(target): refusing to write the report: it is the input '\(target)'\n")
        }
        XCTAssertEqual(try filesByName(in: dir), before)
    }

    func testTheErrorNamesTheRuleTheNodeAndTheError() throws {
        let dir = try workspace()
        try Self.wrongRules[0].text.write(to: dir.appendingPathComponent("sign.rules"), atomically: true, encoding: .utf8)
        let run = try runOnnxFuse(["conv_bn.onnx", "--no-builtin", "--rules", "sign.rules", "--verify"], in: dir)
        XCTAssertEqual(run.status, 5)
        let error = try XCTUnwrap(run.stderr.split(separator: "\n").last)
        XCTAssertTrue(error.hasPrefix("onnx-fuse: error: conv_bn.onnx: rule 'fold' at node 'bn' changed 'z' by "), String(error))
        XCTAssertTrue(error.hasSuffix("(relative to its magnitude; tolerance 1.0e-05); nothing written"), String(error))
        XCTAssertTrue(run.stderr.contains("\n  fold        1 "), run.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("conv_bn.fused.onnx").path))
    }

    func testARuleThatWouldDropAUsedOutputIsRefusedBeforeItChangesAnything() throws {
        let dir = try workspace()
        // Binding the mask without replacing it is an error of the rule file.
        try """
            rule drop-dropout {
              match { y, m = Dropout(x) }
              replace { y = x }
            }
            """.write(to: dir.appendingPathComponent("bound.rules"), atomically: true, encoding: .utf8)
        let bound = try runOnnxFuse(["rules", "check", "bound.rules", "--model", "dropout_mask.onnx"], in: dir)
        XCTAssertEqual(bound.status, 1, bound.stderr)
        XCTAssertEqual(bound.stderr, "onnx-fuse: error: bound.rules:2:11: 'm', an output of Dropout, is not given a replacement\n")
        // Leaving it out of the match: the engine does not fire where the mask is read (here, a
        // graph output), and says why; the model is unchanged and checks as the original.
        try """
            rule drop-dropout {
              match { y, _ = Dropout(x) }
              replace { y = x }
            }
            """.write(to: dir.appendingPathComponent("drop.rules"), atomically: true, encoding: .utf8)
        let run = try runOnnxFuse(["dropout_mask.onnx", "--no-builtin", "--rules", "drop.rules", "--verify=model,strict",
                                   "--explain", "-o", "out.onnx"], in: dir)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("onnx-fuse: explain: drop-dropout: output 1 of Dropout 'drop' is a graph output (at node 'drop')"),
                      run.stderr)
        XCTAssertTrue(run.stderr.contains("3 -> 3 nodes"), run.stderr)
    }

    func testStrictMakesWhatCannotBeCheckedAnError() throws {
        // A rewrite of an operator without a kernel: reported as not verified, never as passed.
        let dir = try workspace()
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17), OpsetImport(domain: "example", version: 1)],
                          graph: graph)
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(2)])))
        let custom = Node(opType: "Custom", domain: "example", name: "custom", inputs: [x], outputNames: ["c"])
        let relu = Node(opType: "Relu", name: "relu", inputs: [custom.outputs[0]], outputNames: ["r"])
        try graph.append(custom)
        try graph.append(relu)
        try graph.addOutput(relu.outputs[0]!, info: ValueInfo(type: nil))
        _ = try ModelFile.save(model, to: dir.appendingPathComponent("custom.onnx").path)
        try """
            rule custom-to-abs {
              match { c = example.Custom(x) }
              replace { c = Abs(x) }
            }
            """.write(to: dir.appendingPathComponent("custom.rules"), atomically: true, encoding: .utf8)
        let plain = try runOnnxFuse(["custom.onnx", "--no-builtin", "--rules", "custom.rules", "--verify", "-o", "out.onnx"], in: dir)
        XCTAssertEqual(plain.status, 0, plain.stderr)
        XCTAssertTrue(plain.stderr.contains("0 rewrites checked, 0 beyond tolerance, 1 not verified"), plain.stderr)
        XCTAssertTrue(plain.stderr.contains("no kernel for example.Custom"), plain.stderr)
        let strict = try runOnnxFuse(["custom.onnx", "--no-builtin", "--rules", "custom.rules", "--verify=strict", "-o", "strict.onnx"], in: dir)
        XCTAssertEqual(strict.status, 5, strict.stderr)
        XCTAssertTrue(strict.stderr.contains("rule 'custom-to-abs': 1 rewrite not verified"), strict.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("strict.onnx").path))
    }

    func testVerifyIsAnOptionWithModes() throws {
        let dir = try workspace()
        let bad = try runOnnxFuse(["conv_bn.onnx", "--verify=everything"], in: dir)
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("--verify=everything: expected rewrites, model or strict"), bad.stderr)
        // --verify alone before the model is not taken as --verify's value.
        let bare = try runOnnxFuse(["--verify", "conv_bn.onnx", "-o", "out.onnx"], in: dir)
        XCTAssertEqual(bare.status, 0, bare.stderr)
        XCTAssertTrue(bare.stderr.contains("onnx-fuse: verify: 1 rewrite checked"), bare.stderr)
    }
}
