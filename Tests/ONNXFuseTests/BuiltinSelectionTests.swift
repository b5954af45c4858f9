import XCTest
import Foundation
@testable import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// `RuleFiles.builtin(for:)`: the built-in rules a model can use, compiled alone. It must
/// rewrite every model as the whole set does, and leave out what cannot fire.
final class BuiltinSelectionTests: XCTestCase {
    /// Every fixture saves to the same bytes and reports the same rules fired with the rules
    /// selected for it as with all of them.
    func testEveryFixtureRewritesAsWithEveryBuiltinRule() throws {
        let directory = try fixtureWorkspace([])
        let names = try FileManager.default.contentsOfDirectory(atPath: CommandTests.fixtures.path)
            .filter { $0.hasSuffix(".onnx") }.sorted()
        let every = RuleFiles.builtin
        var rewritten = 0, fewer = 0
        for name in names {
            let path = CommandTests.fixtures.appendingPathComponent(name).path
            guard let whole = try? ModelFile.load(path: path), (try? whole.verify()) != nil else { continue }
            let selectedModel = try ModelFile.load(path: path)
            let selected = RuleFiles.builtin(for: selectedModel)
            XCTAssertTrue(Set(selected.map(\.name)).isSubset(of: Set(every.map(\.name))), name)
            fewer += selected.count < every.count ? 1 : 0
            let wholeReport = try optimize(whole, rules: every)
            let selectedReport = try optimize(selectedModel, rules: selected)
            XCTAssertEqual(wholeReport.fired.map { "\($0.rule) ×\($0.count)" }, selectedReport.fired.map { "\($0.rule) ×\($0.count)" }, name)
            rewritten += wholeReport.fired.isEmpty ? 0 : 1
            try assertSaveToSameBytes(whole, selectedModel, in: directory, name: name)
        }
        XCTAssertGreaterThan(rewritten, 20, "the fixtures exercise the rules")
        XCTAssertGreaterThan(fewer, 20, "most fixtures need few rules")
    }

    /// `--only` naming a rule the selection leaves out: the command runs the usual pass, in
    /// which no rule fires but the domains of the nodes are imported, as with every rule
    /// compiled (`--explain` compiles them all).
    func testOnlyARuleLeftOutMakesTheSamePass() throws {
        let directory = try fixtureWorkspace([])
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(2)])))
        let node = Node(opType: "Foo", domain: "com.example", name: "foo", inputs: [x], outputNames: ["y"])
        try graph.append(node)
        try graph.addOutput(node.outputs[0]!, info: ValueInfo(type: .tensor(.float, [.value(2)])))
        try ModelFile.save(model, to: directory.appendingPathComponent("m.onnx").path)
        for (output, extra) in [("selected.onnx", [String]()), ("explained.onnx", ["--explain"])] {
            let run = try runOnnxFuse(["m.onnx", "--only", "fold-conv-batchnorm", "-o", output] + extra, in: directory)
            XCTAssertEqual(run.status, 0, run.stderr)
        }
        let selected = try Data(contentsOf: directory.appendingPathComponent("selected.onnx"))
        XCTAssertEqual(selected, try Data(contentsOf: directory.appendingPathComponent("explained.onnx")))
        let written = try ModelFile.load(path: directory.appendingPathComponent("selected.onnx").path)
        XCTAssertTrue(written.opsetImports.contains { $0.domain == "com.example" }, "\(written.opsetImports)")
    }

    func testTheBuiltinNamesAreThoseOfEveryBuiltinRule() {
        XCTAssertEqual(RuleFiles.builtinNames, RuleFiles.builtin.map(\.name))
    }

    /// Which rules a Conv + BatchNormalization model keeps: the fold, and the rules that can
    /// fire on what the kept rules create; not those that need an operator it lacks.
    func testAConvBatchNormalizationModelKeepsTheRulesItCanUse() throws {
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(1), .value(2), .value(4), .value(4)])))
        let conv = Node(opType: "Conv", name: "conv", inputs: [x], outputNames: ["y"])
        try graph.append(conv)
        let bn = Node(opType: "BatchNormalization", domain: "ai.onnx", name: "bn", inputs: [conv.outputs[0]!], outputNames: ["z"])
        try graph.append(bn)
        try graph.addOutput(bn.outputs[0]!, info: ValueInfo(type: nil))
        let selected = RuleFiles.builtin(for: model).map(\.name)
        XCTAssertEqual(RuleFiles.builtinNames(for: model), selected)
        let names = Set(selected)
        // Native rules always; the fold (its domain written "ai.onnx" in the model); not the
        // Gemm fold, the attention fusion or the Transpose pairs.
        for kept in ["fold-constants", "merge-duplicates", "fold-conv-batchnorm"] { XCTAssertTrue(names.contains(kept), kept) }
        for left in ["fold-gemm-batchnorm", "fuse-attention", "cancel-transpose-transpose"] { XCTAssertFalse(names.contains(left), left) }
    }

    /// A rule that can fire only on what another rule creates is kept with it; an optional
    /// match line does not have to be met, `_` meets any line, and a rule anchored at
    /// initializers is always kept.
    func testTheSelectionFollowsWhatRulesCreate() throws {
        let rules = try parseRules("""
            rule a-to-b {
              match { y = A(x) }
              replace { y = B(x) }
            }
            rule b-to-c {
              match {
                t = Cast(x)?
                y = B(t)
              }
              replace { y = custom.C(x) }
            }
            rule c-and-d {
              match {
                t = custom.C(x)
                y = D(t)
              }
              replace { y = E(x) }
            }
            rule any-then-f {
              match {
                t = _(x)
                y = F(t)
              }
              replace { y = Identity(x) }
            }
            rule initializers {
              match { initializer w }
              where { false }
              replace { }
            }
            """)
        func kept(_ operators: [(String?, String)]) -> [String] {
            let flags = RuleFiles.keptRules([rules.rules], operators: Set(operators.map { RuleFiles.OperatorKey(domain: $0.0, opType: $0.1) }))[0]
            return zip(rules.rules, flags).filter(\.1).map(\.0.name)
        }
        XCTAssertEqual(kept([]), ["initializers"])
        XCTAssertEqual(kept([(nil, "A")]), ["a-to-b", "b-to-c", "initializers"])
        XCTAssertEqual(kept([("ai.onnx", "A"), ("", "D")]), ["a-to-b", "b-to-c", "c-and-d", "initializers"])
        XCTAssertEqual(kept([(nil, "F")]), ["any-then-f", "initializers"])
        // `custom.C` is not `C` of the default domain.
        XCTAssertEqual(kept([(nil, "C"), (nil, "D")]), ["initializers"])
    }

    private func parseRules(_ text: String) throws -> RuleFileSyntax {
        let (syntax, errors) = parseRulesCollectingErrors(text)
        XCTAssertEqual(errors.map(\.description), [])
        return syntax
    }
}
