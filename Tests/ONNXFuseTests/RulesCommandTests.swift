import XCTest
import Foundation
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// `--rules`, `--only`, `--disable`, `--explain`, `--report` and `onnx-fuse rules ...`, run
/// as a user would, with the example rule file of `docs/examples`.
final class RulesCommandTests: XCTestCase {
    static let example = CommandTests.root.appendingPathComponent("docs/examples/conv-batchnorm.rules").path

    func run(_ arguments: [String], in directory: URL? = nil) throws -> CommandTests.Result {
        try runOnnxFuse(arguments, in: directory)
    }

    func workspace(_ fixtures: [String]) throws -> URL { try fixtureWorkspace(fixtures) }

    func testRulesFoldAndTheSummaryNamesThem() throws {
        let dir = try workspace(["conv_bn.onnx"])
        let result = try run(["conv_bn.onnx", "--no-builtin", "--rules", Self.example, "-o", "out.onnx"], in: dir)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("3 -> 2 nodes (fold-conv-batchnorm ×1)"), result.stderr)
        let printed = try run(["out.onnx", "--print"], in: dir)
        XCTAssertFalse(String(decoding: printed.stdout, as: UTF8.self).contains("BatchNormalization"))
    }

    func testOnlyDisableAndUnknownNames() throws {
        let dir = try workspace(["conv_bn.onnx"])
        let disabled = try run(["conv_bn.onnx", "--no-builtin", "--rules", Self.example, "--disable", "fold-conv-batchnorm", "-o", "a.onnx"], in: dir)
        XCTAssertTrue(disabled.stderr.contains("3 -> 3 nodes,"), disabled.stderr)
        let only = try run(["conv_bn.onnx", "--no-builtin", "--rules", Self.example, "--only", "div-by-constant", "-o", "b.onnx"], in: dir)
        XCTAssertTrue(only.stderr.contains("3 -> 3 nodes,"), only.stderr)
        let unknown = try run(["conv_bn.onnx", "--no-builtin", "--rules", Self.example, "--only", "no-such-rule"], in: dir)
        XCTAssertEqual(unknown.status, 1)
        XCTAssertEqual(unknown.stderr, "onnx-fuse: error: there is no rule named 'no-such-rule'\n")
    }

    func testExplainAndReport() throws {
        let dir = try workspace(["overridable_initializer.onnx"])
        let result = try run(["overridable_initializer.onnx", "--no-builtin", "--rules", Self.example, "--explain",
                              "--report", "report.json", "-o", "out.onnx"], in: dir)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("onnx-fuse: explain: fold-conv-batchnorm: w ('W') is an initializer that is also a graph input (at node 'bn'; \(Self.example):9)"),
                      result.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("report.json"))) as! [String: Any]
        XCTAssertEqual(report["nodes_before"] as? Int, 3)
        XCTAssertEqual(report["nodes_after"] as? Int, 3)
        XCTAssertEqual((report["rules_fired"] as? [Any])?.count, 0)
        let explanations = report["explanations"] as? [[String: String]]
        XCTAssertEqual(explanations?.first?["reason"], "w ('W') is an initializer that is also a graph input")
        XCTAssertNotNil(report["seconds"] as? Double)

        let frozen = try run(["overridable_initializer.onnx", "--no-builtin", "--rules", Self.example, "--freeze-initializer-inputs",
                              "--report", "frozen.json", "-o", "frozen.onnx"], in: dir)
        XCTAssertTrue(frozen.stderr.contains("(fold-conv-batchnorm ×1)"), frozen.stderr)
        let frozenReport = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("frozen.json"))) as! [String: Any]
        XCTAssertEqual((frozenReport["rules_fired"] as? [[String: Any]])?.first?["count"] as? Int, 1)
    }

    func testRuleFilesThatAreNotRegularFilesAreRefusedWithTheReason() throws {
        let dir = try workspace(["conv_bn.onnx"])
        XCTAssertEqual(mkfifo(dir.appendingPathComponent("pipe.rules").path, 0o600), 0)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("folder.rules"), withIntermediateDirectories: false)
        for (name, reason) in [("pipe.rules", "it is a FIFO"), ("folder.rules", "it is a folder"),
                               ("absent.rules", "open failed: No such file or directory")] {
            let result = try run(["conv_bn.onnx", "--rules", name, "-o", "out.onnx"], in: dir)
            XCTAssertEqual(result.status, 1, result.stderr)
            XCTAssertTrue(result.stderr.contains("\(name): cannot be read") && result.stderr.contains(reason), result.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out.onnx").path))
        }
        let check = try run(["rules", "check", "pipe.rules"], in: dir)
        XCTAssertEqual(check.status, 1, check.stderr)
        XCTAssertTrue(check.stderr.contains("it is a FIFO"), check.stderr)
        // A model that is a FIFO: exit 2 (not a model onnx-fuse can read), at once.
        XCTAssertEqual(mkfifo(dir.appendingPathComponent("pipe.onnx").path, 0o600), 0)
        let model = try run(["pipe.onnx", "-o", "out.onnx"], in: dir)
        XCTAssertEqual(model.status, 2, model.stderr)
        XCTAssertTrue(model.stderr.contains("it is a FIFO"), model.stderr)
    }

    func testALimitExceededIsAnErrorOfTheRuleAndNothingIsWritten() throws {
        let dir = try workspace(["conv_bn.onnx"])
        let text = """
            rule huge {
              match { y = Relu(x) }
              compute { k = full([4294967296, 4294967296], 1) }
              replace { y = Relu(x) }
            }
            """
        try text.write(to: dir.appendingPathComponent("huge.rules"), atomically: true, encoding: .utf8)
        let result = try run(["conv_bn.onnx", "--no-builtin", "--rules", "huge.rules", "-o", "out.onnx"], in: dir)
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("huge.rules:3:17: k: full: a result of shape [4294967296, 4294967296] would have more than 33554432 elements"),
                      result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out.onnx").path))
    }

    func testATensorReadAsAListIsBoundedLikeAList() throws {
        // A list item takes several times a tensor element's memory: a tensor longer than the
        // longest list is refused where a list is needed; len() counts it without a list.
        let dir = try workspace(["conv_bn.onnx"])
        let text = """
            rule long {
              match { y = Relu(x) }
              compute { n = len(full([2000000], 1)); p = permute(full([2000000], 1), [0]) }
              replace { y = Relu(x) }
            }
            """
        try text.write(to: dir.appendingPathComponent("long.rules"), atomically: true, encoding: .utf8)
        let result = try run(["conv_bn.onnx", "--no-builtin", "--rules", "long.rules", "-o", "out.onnx"], in: dir)
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("long.rules:3:46: p: a tensor of 2000000 elements is read as a list, longer than the limit of 1048576"),
                      result.stderr)
    }

    func testTheRuleLimitsCanBeSet() throws {
        let dir = try workspace(["conv_bn.onnx"])
        let text = """
            rule busy {
              match { y = Relu(x) }
              compute { a = full([100, 100], 1); b = a + a; c = b * b }
              replace { y = Relu(x) }
            }
            """
        try text.write(to: dir.appendingPathComponent("busy.rules"), atomically: true, encoding: .utf8)
        // The rule matches its own result until the rewrite cap: allowed here, where the limits are the point.
        let within = try run(["conv_bn.onnx", "--no-builtin", "--rules", "busy.rules", "-o", "out.onnx", "--allow-rewrite-cap"], in: dir)
        XCTAssertEqual(within.status, 0, within.stderr)
        let elements = try run(["conv_bn.onnx", "--no-builtin", "--rules", "busy.rules", "--rule-element-limit", "1000", "-o", "out2.onnx"], in: dir)
        XCTAssertEqual(elements.status, 1, elements.stderr)
        XCTAssertTrue(elements.stderr.contains("busy.rules:3:17: a: full: a result of shape [100, 100] would have more than 1000 elements, the limit"), elements.stderr)
        let work = try run(["conv_bn.onnx", "--no-builtin", "--rules", "busy.rules", "--rule-work-limit", "25000", "-o", "out2.onnx"], in: dir)
        XCTAssertEqual(work.status, 1, work.stderr)
        XCTAssertTrue(work.stderr.contains("busy.rules:3:53: c: the rule created more than 25000 elements for one match"), work.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out2.onnx").path))
    }

    func testARuleThatChangesAGraphOutputsTypeIsRefusedBeforeWriting() throws {
        let dir = try workspace(["conv_bn.onnx"])
        let text = """
            rule wrong-type {
              match { y = Relu(x) }
              replace { y = Cast<to = 7>(x) }
            }
            rule wrong-rank {
              match { y = Relu(x) }
              replace { y = Flatten(x) }
            }
            """
        try text.write(to: dir.appendingPathComponent("wrong.rules"), atomically: true, encoding: .utf8)
        for (rule, change) in [("wrong-type", "to int64 of rank 4"), ("wrong-rank", "to float of rank 2")] {
            let result = try run(["conv_bn.onnx", "--no-builtin", "--rules", "wrong.rules", "--only", rule, "-o", "out.onnx"], in: dir)
            XCTAssertEqual(result.status, 2, result.stderr)
            XCTAssertTrue(result.stderr.contains("graph output 'Y' changed from float of rank 4 \(change)"), result.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out.onnx").path))
        }
    }

    func testANodeItsOperatorsSchemaRejectsIsNeverMade() throws {
        // The rewrite is refused before anything changes, with the schema's reason and the
        // replace line; the model is written as it was.
        let dir = try workspace(["conv_bn.onnx"])
        let cases: [(rule: String, replacement: String, reason: String)] = [
            ("too-many-inputs", "y = Relu(x, x)", "Relu takes at most 1 input, not 2"),
            ("too-few-inputs", "y = Gemm(x)", "Gemm takes at least 2 inputs, not 1"),
            ("missing-attribute", "y = Cast(x)", "Cast needs attribute 'to'"),
            ("mixed-types", "y = Add(x, s)", "input 1 (B) is int64 but input 0 (A) is float, and Add needs one type T for both"),
            ("float-shape", "y = Reshape(x, f)", "input 1 (shape) is float, but Reshape takes tensor(int64)"),
            ("unknown-operator", "y = Frobnicate(x)", "opset 17 of ai.onnx does not have Frobnicate"),
        ]
        let text = cases.map { c in
            "rule \(c.rule) {\n  match { y = Relu(x) }\n  compute { s = cast(1, int64); f = cast([1, 1, 1, 1], float) }\n  replace { \(c.replacement) }\n}\n"
        }.joined()
        try text.write(to: dir.appendingPathComponent("invalid.rules"), atomically: true, encoding: .utf8)
        for c in cases {
            let result = try run(["conv_bn.onnx", "--no-builtin", "--rules", "invalid.rules", "--only", c.rule, "-o", "out.onnx", "--explain"], in: dir)
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertTrue(result.stderr.contains("onnx-fuse: explain: \(c.rule): the new "), result.stderr)
            XCTAssertTrue(result.stderr.contains(c.reason + " (at node "), result.stderr)
            XCTAssertTrue(result.stderr.contains("invalid.rules:"), result.stderr)
            XCTAssertTrue(result.stderr.contains("3 -> 3 nodes,"), result.stderr)
        }
        // Optional inputs may be left out, and a valid replacement is written.
        try "rule clip {\n  match { y = Relu(x) }\n  replace { y = Clip(x) }\n}\n".write(to: dir.appendingPathComponent("clip.rules"), atomically: true, encoding: .utf8)
        let valid = try run(["conv_bn.onnx", "--no-builtin", "--rules", "clip.rules", "-o", "out.onnx"], in: dir)
        XCTAssertEqual(valid.status, 0, valid.stderr)
    }

    func testAttributesTakeTheTypeTheSchemaDeclares() throws {
        let dir = try workspace(["conv_bn.onnx"])
        // Known before any model is read: an attribute no version has, a literal of the wrong type.
        try """
            rule extra { match { y = Relu(x) } replace { y = Relu<alpha = 0.5>(x) } }
            rule typed { match { y = Relu(x) } replace { y = LeakyRelu<alpha = "a">(x) } }
            rule fraction { match { y = Relu(x) } replace { y = Softmax<axis = 1.5>(x) } }
            """.write(to: dir.appendingPathComponent("static.rules"), atomically: true, encoding: .utf8)
        let statics = try run(["rules", "check", "static.rules"], in: dir)
        XCTAssertEqual(statics.status, 1)
        XCTAssertEqual(statics.stderr, """
            onnx-fuse: error: static.rules:1:55: Relu has no attribute 'alpha' in any version
            onnx-fuse: error: static.rules:2:60: LeakyRelu's attribute 'alpha' is a FLOAT, not a string
            onnx-fuse: error: static.rules:3:61: Softmax's attribute 'axis' is an INT, not a real number

            """)
        // A one-element constant becomes a FLOAT, a list or a vector an INTS; a value that does not
        // fit is refused at the match, with the reason.
        try """
            rule float-from-tensor {
              match { z = BatchNormalization<epsilon: e>(y, scale, shift, mean, var) }
              compute { k = cast([0.25], float) }
              replace { z = LeakyRelu<alpha = k>(y) }
            }
            rule floats-from-tensor {
              match { z = BatchNormalization(y, scale, shift, mean, var) }
              replace { z = LeakyRelu<alpha = scale>(y) }
            }
            """.write(to: dir.appendingPathComponent("typed.rules"), atomically: true, encoding: .utf8)
        let model = try ModelFile.load(path: dir.appendingPathComponent("conv_bn.onnx").path)
        var options = OptimizationOptions()
        options.only = ["float-from-tensor"]
        _ = try optimize(model, rules: try RuleFiles.load(path: dir.appendingPathComponent("typed.rules").path), options: options)
        let leaky = try XCTUnwrap(model.graph.nodes.first { $0.opType == "LeakyRelu" })
        guard case .float(let alpha)? = leaky.attribute("alpha")?.value else { return XCTFail("\(leaky.attributes)") }
        XCTAssertEqual(alpha, 0.25)
        let refused = try run(["conv_bn.onnx", "--no-builtin", "--rules", "typed.rules", "--only", "floats-from-tensor", "-o", "refused.onnx",
                               "--explain"], in: dir)
        XCTAssertEqual(refused.status, 0, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("floats-from-tensor: LeakyRelu's attribute 'alpha' is a FLOAT; `scale` is 4 numbers (at node 'bn'; typed.rules:8)"),
                      refused.stderr)
        XCTAssertTrue(refused.stderr.contains("3 -> 3 nodes"), refused.stderr)
    }

    func testExplainSummarizesPerRuleAndReasonAndAllGivesEveryNode() throws {
        // conv_bn_traps: the Pad rules fail alike at six Convs that read a graph input.
        let dir = try workspace(["conv_bn_traps.onnx"])
        let summary = try run(["conv_bn_traps.onnx", "--explain", "-o", "a.onnx"], in: dir)
        XCTAssertEqual(summary.status, 0, summary.stderr)
        XCTAssertTrue(summary.stderr.contains("onnx-fuse: explain: fuse-pad-conv: y ('X') is a graph input, not an output of Pad "
            + "(at 6 nodes: 'twice_conv', 'output_conv', 'inf_conv', ...)\n"), summary.stderr)
        let all = try run(["conv_bn_traps.onnx", "--explain=all", "-o", "b.onnx"], in: dir)
        XCTAssertEqual(all.status, 0, all.stderr)
        XCTAssertTrue(all.stderr.contains("onnx-fuse: explain: fuse-pad-conv at node 'inf_conv': y ('X') is a graph input, not an output of Pad\n"),
                      all.stderr)
        XCTAssertGreaterThan(all.stderr.components(separatedBy: "\n").count, summary.stderr.components(separatedBy: "\n").count)
        let bad = try run(["conv_bn_traps.onnx", "--explain=some"], in: dir)
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("--explain=some: expected summary or all"), bad.stderr)
    }

    func testRulesThatStopAtTheRewriteCapAreAnError() throws {
        // Add(p, q) -> Add(q, p) undoes itself forever.
        let dir = try workspace(["conv_add_bias.onnx"])
        try "rule swap {\n  match { y = Add(p, q) }\n  replace { y = Add(q, p) }\n}\n"
            .write(to: dir.appendingPathComponent("loop.rules"), atomically: true, encoding: .utf8)
        let refused = try run(["conv_add_bias.onnx", "--no-builtin", "--rules", "loop.rules", "-o", "out.onnx"], in: dir)
        XCTAssertEqual(refused.status, 1)
        // The static check saw it coming: a warning before the model is read, then the error.
        XCTAssertEqual(refused.stderr, "onnx-fuse: warning: loop.rules: rule 'swap' may undo itself: its replacement has the shape of its "
            + "match (the operators and how they connect), so where its conditions hold again it rewrites its own result and only the "
            + "rewrite cap stops it\n"
            + "onnx-fuse: error: conv_add_bias.onnx: the rules stopped at the rewrite cap after 1000 rewrites "
            + "(swap ×1000): they may not converge (a rule that undoes another, or one that matches its own result); nothing written "
            + "(--allow-rewrite-cap writes it anyway)\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out.onnx").path))
        let allowed = try run(["conv_add_bias.onnx", "--no-builtin", "--rules", "loop.rules", "-o", "out.onnx", "--allow-rewrite-cap"], in: dir)
        XCTAssertEqual(allowed.status, 0, allowed.stderr)
        XCTAssertTrue(allowed.stderr.contains("onnx-fuse: warning: the rules stopped at the rewrite cap after 1000 rewrites"), allowed.stderr)
        let check = try run(["rules", "check", "loop.rules", "--model", "conv_add_bias.onnx"], in: dir)
        XCTAssertEqual(check.status, 1)
        XCTAssertTrue(check.stderr.contains("conv_add_bias.onnx: the rules stopped at the rewrite cap"), check.stderr)
    }

    func testRuleFileErrorsComeFirstWithTheirPlace() throws {
        let dir = try workspace(["conv_bn.onnx"])
        let bad = dir.appendingPathComponent("bad.rules")
        try """
            rule broken {
              match { y = Div(x, c) }
              where { constant(c) && frobnicate(c) }
              replace { y = Mul(x, r) }
            }
            """.write(to: bad, atomically: true, encoding: .utf8)
        let result = try run(["conv_bn.onnx", "--rules", "bad.rules"], in: dir)
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stderr, """
            onnx-fuse: error: bad.rules:3:26: unknown function 'frobnicate'
            onnx-fuse: error: bad.rules:4:13: 'r' is not defined (not in match, compute, or an earlier replace line)

            """)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("conv_bn.fused.onnx").path), "no model touched")
        let check = try run(["rules", "check", "bad.rules"], in: dir)
        XCTAssertEqual(check.status, 1)
        XCTAssertTrue(check.stderr.hasPrefix("onnx-fuse: error: bad.rules:3:26:"), check.stderr)
    }

    func testRulesListShowAndCheck() throws {
        let list = try run(["rules", "list", "--no-builtin", "--rules", Self.example])
        XCTAssertEqual(list.status, 0, list.stderr)
        let lines = String(decoding: list.stdout, as: UTF8.self).split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        XCTAssertTrue(lines[0].hasPrefix("fold-conv-batchnorm  "), String(lines[0]))
        XCTAssertTrue(lines[0].hasSuffix("Fold an inference-mode BatchNormalization into the Conv that feeds it."), String(lines[0]))
        let show = try run(["rules", "show", "div-by-constant", "--no-builtin", "--rules", Self.example])
        // The rule as the file writes it: its comment, then its text.
        let file = try String(contentsOfFile: Self.example, encoding: .utf8)
        let rule = try XCTUnwrap(file.range(of: "# Replace a division")).lowerBound
        XCTAssertEqual(String(decoding: show.stdout, as: UTF8.self),
                       file[rule...].trimmingCharacters(in: .newlines) + "\n")
        let check = try run(["rules", "check", Self.example])
        XCTAssertEqual(check.status, 0)
        XCTAssertTrue(String(decoding: check.stdout, as: UTF8.self).hasSuffix(": 2 rules, no errors\n"))
        // As JSON: each rule's name, file, first comment line, comment and text, in order.
        let json = try run(["rules", "list", "--json", "--no-builtin", "--rules", Self.example])
        XCTAssertEqual(json.status, 0, json.stderr)
        let entries = try XCTUnwrap(JSONSerialization.jsonObject(with: json.stdout) as? [[String: Any]])
        XCTAssertEqual(entries.map { $0["name"] as? String }, ["fold-conv-batchnorm", "div-by-constant"])
        XCTAssertEqual(entries[0]["file"] as? String, Self.example)
        XCTAssertEqual(entries[0]["summary"] as? String, "Fold an inference-mode BatchNormalization into the Conv that feeds it.")
        XCTAssertEqual((entries[1]["text"] as? String).map { "# Replace a division by a constant with a multiplication by its reciprocal.\n" + $0 + "\n" },
                       String(decoding: show.stdout, as: UTF8.self))
        let builtin = try run(["rules", "list", "--json"])
        let builtinEntries = try XCTUnwrap(JSONSerialization.jsonObject(with: builtin.stdout) as? [[String: Any]])
        XCTAssertEqual(builtinEntries.map { $0["name"] as? String }, RuleFiles.builtin.map(\.name))
        let unknown = try run(["rules", "frobnicate"])
        XCTAssertEqual(unknown.status, 1)
    }
}
