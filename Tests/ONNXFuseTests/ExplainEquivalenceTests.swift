import XCTest
import Foundation
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// Without `--explain` the engine takes shortcuts that refuse a candidate before its pattern
/// search is set up (a one-node match whose other outputs are read, a root whose producers or
/// readers have the wrong operators); with it, every search runs in full so that the
/// explanation names the check that failed. Both must rewrite alike.
final class ExplainEquivalenceTests: XCTestCase {
    /// Every fixture the built-in rules rewrite saves to the same bytes, and reports the same
    /// rules fired as often, with explanations on and off.
    func testEveryFixtureRewritesAlikeWithAndWithoutExplanations() throws {
        let directory = try fixtureWorkspace([])
        let names = try FileManager.default.contentsOfDirectory(atPath: CommandTests.fixtures.path)
            .filter { $0.hasSuffix(".onnx") }.sorted()
        var rewritten = 0
        for name in names {
            let path = CommandTests.fixtures.appendingPathComponent(name).path
            guard let plain = try? ModelFile.load(path: path), (try? plain.verify()) != nil else { continue }
            let explained = try ModelFile.load(path: path)
            var explaining = OptimizationOptions()
            explaining.explain = true
            let plainReport = try optimize(plain, rules: RuleFiles.builtin)
            let explainedReport = try optimize(explained, rules: RuleFiles.builtin, options: explaining)
            XCTAssertEqual(plainReport.fired.map { "\($0.rule) ×\($0.count)" }, explainedReport.fired.map { "\($0.rule) ×\($0.count)" }, name)
            XCTAssertTrue(plainReport.explanations.isEmpty, name)
            rewritten += plainReport.fired.isEmpty ? 0 : 1
            try assertSaveToSameBytes(plain, explained, in: directory, name: name)
        }
        XCTAssertGreaterThan(rewritten, 20, "the fixtures exercise the rules")
    }

    /// A rule whose root reads the output of another pattern node: the check of the root's
    /// producer before the search admits the matches (either input of a commuted root) and
    /// refuses the rest, as the search does.
    func testTheRootsProducerIsCheckedOnEitherInputOfACommutedRoot() throws {
        let rules = try RuleFiles.rules(in: """
            rule add-of-neg {
              commute Add
              match {
                n = Neg(a)
                y = Add(n, b)
              }
              replace {
                y = Sub(b, a)
              }
            }

            rule relu-of-abs {
              match {
                t = Abs(x)
                y = Relu(t)
              }
              replace {
                y = Abs(x)
              }
            }
            """)
        for explain in [false, true] {
            let graph = Graph(name: "g")
            let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
            let a = graph.addInput(name: "a", info: ValueInfo(type: .tensor(.float, [.value(4)])))
            let b = graph.addInput(name: "b", info: ValueInfo(type: .tensor(.float, [.value(4)])))
            func node(_ op: String, _ inputs: [Value], _ output: String) throws -> Value {
                let node = Node(opType: op, name: output, inputs: inputs, outputNames: [output])
                try graph.append(node)
                return node.outputs[0]!
            }
            let negA = try node("Neg", [a], "neg_a")
            let negB = try node("Neg", [b], "neg_b")
            let expA = try node("Exp", [a], "exp_a")
            // The Neg on the left, on the right, on neither side.
            try graph.addOutput(node("Add", [negA, b], "left"), info: ValueInfo(type: nil))
            try graph.addOutput(node("Add", [a, negB], "right"), info: ValueInfo(type: nil))
            try graph.addOutput(node("Add", [expA, b], "neither"), info: ValueInfo(type: nil))
            // Relu of an Abs and of an Exp.
            try graph.addOutput(node("Relu", [node("Abs", [a], "abs_a")], "relu_abs"), info: ValueInfo(type: nil))
            try graph.addOutput(node("Relu", [expA], "relu_exp"), info: ValueInfo(type: nil))
            var options = OptimizationOptions()
            options.explain = explain
            options.verifyRewrites = true
            let report = try optimize(model, rules: rules, options: options)
            try model.verify()
            XCTAssertEqual(report.fired.map { "\($0.rule) ×\($0.count)" }, ["add-of-neg ×2", "relu-of-abs ×1"], "explain: \(explain)")
            XCTAssertEqual(report.verification?.failures.map(\.description), [], "explain: \(explain)")
            let producers = graph.outputs.map { $0.value.producer?.opType ?? "" }
            XCTAssertEqual(producers, ["Sub", "Sub", "Add", "Abs", "Relu"], "explain: \(explain)")
            if explain {
                let reasons = report.explanations.filter { $0.node == "neither" || $0.node == "relu_exp" }.map(\.description)
                XCTAssertEqual(reasons.count, 2, "\(report.explanations)")
            }
        }
    }
}

extension XCTestCase {
    /// Saves `first` and `second` in `directory` (files named after `name`) and checks that
    /// they are the same bytes.
    func assertSaveToSameBytes(_ first: Model, _ second: Model, in directory: URL, name: String,
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let firstPath = directory.appendingPathComponent("first-" + name).path
        let secondPath = directory.appendingPathComponent("second-" + name).path
        try ModelFile.save(first, to: firstPath)
        try ModelFile.save(second, to: secondPath)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: firstPath)), try Data(contentsOf: URL(fileURLWithPath: secondPath)), name,
                       file: file, line: line)
    }
}
