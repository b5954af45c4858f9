import XCTest
import Foundation
import ONNXFuse

/// Rules are `Sendable`: a global constant of them compiles in Swift 6 mode, and child tasks share it.
let sharedBuiltinRules = RuleFiles.builtin

/// Rules written in Swift (`RuleBuilder`), native functions that see the match, and what
/// `optimize` checks of the rules it is given.
final class SwiftRuleTests: XCTestCase {
    static let doubleNegation = try! CompiledRule(name: "fold-double-neg", summary: "Remove Neg(Neg(x)).") { rule in
        let x = rule.value("x")
        let once = rule.match("Neg", inputs: [x], outputs: ["once"])
        let twice = rule.match("Neg", inputs: [once.output], outputs: ["y"])
        rule.replace(twice.output, with: x)
    }

    func testASwiftRuleRewritesByNameAndIsCounted() throws {
        let g = RuleTestGraph(rules: [Self.doubleNegation])
        let x = g.input("x", [2, 3])
        try g.output(try g.node("Relu", [try g.node("Neg", [try g.node("Neg", [x], "n1")], "n2")], "y"))
        let report = try g.run()
        XCTAssertEqual(report.fired.map(\.rule), ["fold-double-neg"])
        XCTAssertEqual(report.fired.first?.count, 1)
        XCTAssertEqual(g.text, """
            g (float[2,3] x) => (? y)
            {
               y = Relu (x)
            }

            """)
    }

    func testTheReadmeRule() throws {
        let doubleNegation = try CompiledRule(name: "fold-double-neg", summary: "Remove Neg(Neg(x)).") { rule in
            let x = rule.value("x")
            let once = rule.match("Neg", inputs: [x], outputs: ["once"])
            let twice = rule.match("Neg", inputs: [once.output], outputs: ["y"])
            rule.require("x is not a graph input") { match in match[x]?.definition != .graphInput }
            rule.replace(twice.output, with: x)
        }
        for fromInput in [false, true] {
            let g = RuleTestGraph(rules: [doubleNegation])
            let x = g.input("x", [2])
            let source = fromInput ? x : try g.node("Relu", [x], "r")
            try g.output(try g.node("Abs", [try g.node("Neg", [try g.node("Neg", [source], "n1")], "n2")], "y"))
            if fromInput {
                XCTAssertTrue(try g.reasonsNothingFires(for: "fold-double-neg").contains("x is not a graph input"))
            } else {
                XCTAssertEqual(try g.run().fired.map(\.rule), ["fold-double-neg"])
                XCTAssertEqual(g.graph.nodes.map(\.opType), ["Relu", "Abs"])
            }
        }
    }

    func testASwiftRuleDoesNotFireWhereTheEngineForbids() throws {
        // The inner Neg's output is a graph output: removing it would lose the output.
        let g = RuleTestGraph(rules: [Self.doubleNegation])
        let x = g.input("x", [4])
        let inner = try g.node("Neg", [x], "n1")
        try g.output(try g.node("Neg", [inner], "n2"))
        try g.output(inner)
        let reasons = try g.reasonsNothingFires(for: "fold-double-neg")
        XCTAssertTrue(reasons.contains("once ('n1') is a graph output"), "\(reasons)")
    }

    /// y = (x * a) * b with a and b constant becomes x * (a * b), computed in Swift.
    static let mergeScales = try! CompiledRule(name: "merge-constant-scales") { rule in
        let x = rule.value("x"), a = rule.value("a"), b = rule.value("b")
        let first = rule.match("Mul", inputs: [x, a], outputs: ["scaled"])
        let second = rule.match("Mul", inputs: [first.output, b], outputs: ["y"])
        rule.require("a and b are constant scalars") { match in
            match.constant(a)?.elementCount == 1 && match.constant(b)?.elementCount == 1
                && match.constant(a)?.dataType == .float && match.constant(b)?.dataType == .float
        }
        let product = rule.compute("ab") { match in
            let values = [match.constant(a)!, match.constant(b)!].map { $0.doubleValues()![0] }
            return Tensor(dataType: .float, dims: [], values: [Float(values[0] * values[1])])
        }
        rule.create("Mul", inputs: [x, product], replacing: second.output)
    }

    func testASwiftRuleComputesATensor() throws {
        let g = RuleTestGraph(rules: [Self.mergeScales])
        let x = g.input("x", [3])
        let scaled = try g.node("Mul", [x, g.constant("a", [2], [])], "scaled")
        try g.output(try g.node("Mul", [scaled, g.constant("b", [-1.5], [])], "y"))
        let report = try g.run()  // checks the numbers of the rewrite
        XCTAssertEqual(report.fired.first?.rule, "merge-constant-scales")
        let mul = try XCTUnwrap(g.graph.nodes.first { $0.opType == "Mul" })
        XCTAssertEqual(g.graph.nodeCount, 1)
        XCTAssertEqual(mul.inputs[1]?.initializer?.doubleValues(), [-3])
        XCTAssertEqual(mul.outputs[0]?.name, "y")
    }

    func testASwiftRuleRequirementExplainsWhyItDidNotFire() throws {
        let g = RuleTestGraph(rules: [Self.mergeScales])
        let x = g.input("x", [3])
        let scaled = try g.node("Mul", [x, g.constant("a", [2], [])], "scaled")
        try g.output(try g.node("Mul", [scaled, g.input("b", [])], "y"))
        XCTAssertTrue(try g.reasonsNothingFires(for: "merge-constant-scales").contains("a and b are constant scalars"))
    }

    /// Relu(LeakyRelu(x)) is Relu(x) when alpha is not negative.
    static let reluOfLeakyRelu = try! CompiledRule(name: "relu-of-leaky-relu") { rule in
        let x = rule.value("x")
        let leaky = rule.match("LeakyRelu", inputs: [x], outputs: ["l"])
        let alpha = rule.attribute("alpha", of: leaky, default: .float(0.01))
        let relu = rule.match("Relu", inputs: [leaky.output], outputs: ["y"])
        rule.require("alpha is not negative") { match in
            if case .float(let value) = match[alpha] { return value >= 0 }
            return false
        }
        rule.create("Relu", inputs: [x], replacing: relu.output, attributes: [.copyAll(from: relu)])
    }

    func testASwiftRuleReadsAnAttributeByName() throws {
        for (alpha, fires) in [(Float(0.2), true), (-0.5, false)] {
            let g = RuleTestGraph(rules: [Self.reluOfLeakyRelu])
            let x = g.input("x", [5])
            let leaky = Node(opType: "LeakyRelu", name: "l", inputs: [x], outputNames: ["l"],
                             attributes: [Attribute(name: "alpha", value: .float(alpha))])
            try g.graph.append(leaky)
            try g.output(try g.node("Relu", [leaky.outputs[0]!], "y"))
            if fires {
                XCTAssertEqual(try g.run().fired.first?.rule, "relu-of-leaky-relu")
                XCTAssertEqual(g.graph.nodes.map(\.opType), ["Relu"])
            } else {
                XCTAssertEqual(try g.reasonsNothingFires(for: "relu-of-leaky-relu"), ["alpha is not negative"])
            }
        }
    }

    func testABuilderMistakeIsAnErrorOfTheRule() {
        XCTAssertThrowsError(try CompiledRule(name: "broken") { rule in
            let x = rule.value("x")
            rule.match("Neg", inputs: [x], outputs: ["y"])
            rule.match("Relu", inputs: [rule.value("elsewhere")], outputs: ["z"])
            rule.replace(rule.value("z"), with: x)
        }) { error in
            XCTAssertTrue("\(error)".contains("not connected"), "\(error)")
            XCTAssertTrue(error.localizedDescription.hasPrefix("swift:broken: "), error.localizedDescription)
        }
        XCTAssertThrowsError(try CompiledRule(name: "computed-replaced") { rule in
            let x = rule.value("x")
            let neg = rule.match("Neg", inputs: [x], outputs: ["y"])
            let t = rule.compute("t") { _ in Tensor(dataType: .float, dims: [], values: [Float(1)]) }
            rule.replace(t, with: neg.output)
        }) { error in
            XCTAssertTrue("\(error)".contains("'t' is not a value of the match"), "\(error)")
        }
    }

    func testABuilderRedefinitionTheEngineCannotApplyIsAnErrorOfTheRule() {
        // As the rule compiler refuses them in rule files: each would leave the graph invalid.
        func problem(_ build: (RuleBuilder) throws -> Void) -> String {
            do {
                _ = try CompiledRule(name: "bad", build)
                return "made"
            } catch {
                return "\(error)"
            }
        }
        // An input of the match: its other readers would read the new node, which takes its name.
        XCTAssertTrue(problem { rule in
            let x = rule.value("x")
            let exp = rule.match("Exp", inputs: [x], outputs: ["y"])
            rule.create("Abs", inputs: [x], replacing: x)
            rule.create("Exp", inputs: [x], replacing: exp.output)
        }.contains("'x' is not an output of a matched node and cannot be replaced by Abs"))
        XCTAssertTrue(problem { rule in
            let x = rule.value("x")
            let neg = rule.match("Neg", inputs: [x], outputs: ["y"])
            rule.replace(x, with: neg.output)
        }.contains("'x' is not an output of a matched node and cannot be replaced"))
        // A node that reads the value it redefines: a cycle.
        XCTAssertTrue(problem { rule in
            let exp = rule.match("Exp", inputs: [rule.value("x")], outputs: ["y"])
            rule.create("Relu", inputs: [exp.output], replacing: exp.output)
        }.contains("Relu reads 'y', which it or a later node redefines"))
        // Two definitions: two values of one name.
        XCTAssertTrue(problem { rule in
            let x = rule.value("x")
            let exp = rule.match("Exp", inputs: [x], outputs: ["y"])
            rule.create("Relu", inputs: [x], replacing: exp.output)
            rule.replace(exp.output, with: x)
        }.contains("'y' is redefined twice"))
    }

    func testARuleWhoseRootIsReadByAnotherNodeDoesNotReadAValueDefinedAfterIt() throws {
        // a = Neg(x), z = Exp(w), y = Add(a, z), rooted at the Neg: the Sub made in place of the
        // Add goes before the Neg, where z is not yet defined.
        let rootFirst = try CompiledRule(name: "root-first") { rule in
            let x = rule.value("x"), z = rule.value("z")
            let neg = rule.match("Neg", inputs: [x], outputs: ["a"])
            let add = rule.match("Add", inputs: [neg.output, z], outputs: ["y"])
            rule.root(neg)
            rule.create("Sub", inputs: [z, x], replacing: add.output)
        }
        let fromFile = try RuleFiles.rules(in: """
            rule root-first-file {
              match { y = Add(a, z); a = Neg(x) }
              replace { y = Sub(z, x) }
            }
            """)
        for rules in [[rootFirst], fromFile] {
            for zFirst in [false, true] {
                let g = RuleTestGraph(rules: rules)
                let x = g.input("x", [2]), w = g.input("w", [2])
                let z = zFirst ? try g.node("Exp", [w], "z") : nil
                let a = try g.node("Neg", [x], "a")
                try g.output(try g.node("Add", [a, try z ?? g.node("Exp", [w], "z")], "y"))
                if zFirst {
                    XCTAssertEqual(try g.run().fired.map(\.rule), [rules[0].name])
                    XCTAssertEqual(g.graph.nodes.map(\.opType), ["Exp", "Sub"])
                } else {
                    XCTAssertTrue(try g.reasonsNothingFires(for: rules[0].name).contains { $0.contains("z is defined after the root Neg 'a'") })
                    try g.model.verify()
                }
            }
        }
    }

    func testSwiftFileAndBuiltinRulesRunTogether() throws {
        let fromText = try RuleFiles.rules(in: """
            # Remove Abs(Abs(x)).
            rule abs-abs {
              match { a = Abs(x); y = Abs(a) }
              replace { y = Abs(x) }
            }
            """)
        let g = RuleTestGraph(rules: sharedBuiltinRules + fromText + [Self.doubleNegation])
        let x = g.input("x", [2])
        let negs = try g.node("Neg", [try g.node("Neg", [x], "n1")], "n2")
        try g.output(try g.node("Abs", [try g.node("Abs", [negs], "a1")], "y"))
        let report = try g.run()
        XCTAssertEqual(Set(report.fired.map(\.rule)), ["abs-abs", "fold-double-neg"])
        XCTAssertEqual(g.graph.nodes.map(\.opType), ["Abs"])
    }

    func testANativeFunctionSeesTheMatch() throws {
        var functions = FunctionTable.builtins
        // Whether the rule's `x` is a graph input: a question of the graph, not of a tensor.
        functions.register(matchFunction: "is_graph_input", arity: 1...1) { call throws(EvaluationError) in
            guard case .string(let name) = call.arguments[0], let value = call.match?.value(named: name) else {
                throw EvaluationError("is_graph_input takes the name of a value of the match")
            }
            return .boolean(value.definition == .graphInput)
        }
        let rules = try RuleFiles.rules(in: """
            # Remove Neg(Neg(x)) when x is a graph input.
            rule neg-neg-of-input {
              match { a = Neg(x); y = Neg(a) }
              where { is_graph_input("x") }
              replace { y = Abs(x) }
            }
            """, functions: functions)
        for fromInput in [true, false] {
            let g = RuleTestGraph(rules: rules)
            let x = g.input("x", [3])
            let source = fromInput ? x : try g.node("Relu", [x], "r")
            try g.output(try g.node("Neg", [try g.node("Neg", [source], "n1")], "y"))
            var options = OptimizationOptions()
            options.explain = true
            let report = try optimize(g.model, rules: rules, options: options)
            XCTAssertEqual(report.fired.map(\.rule), fromInput ? ["neg-neg-of-input"] : [])
            if !fromInput {
                XCTAssertTrue(report.explanations.map(\.reason).contains("`is_graph_input(\"x\")` is false"), "\(report.explanations)")
            }
        }
        // A rule file naming a function the table does not have is refused when it loads.
        XCTAssertThrowsError(try RuleFiles.rules(in: """
            rule r {
              match { y = Neg(x) }
              where { is_graph_input("x") }
              replace { y = x }
            }
            """))
    }

    func testRuleFileErrorsAreOneType() {
        XCTAssertThrowsError(try RuleFiles.load(path: "/nonexistent/my.rules")) { error in
            XCTAssertTrue((error as? RuleErrors)?.errors.first?.description.hasPrefix("/nonexistent/my.rules: cannot be read") ?? false, "\(error)")
        }
    }

    func testOptimizeRefusesDuplicateAndUnknownRuleNames() throws {
        let model = try ModelFile.load(path: CommandTests.fixtures.appendingPathComponent("conv_bn.onnx").path)
        let before = Printer().print(model)
        XCTAssertThrowsError(try optimize(model, rules: [Self.doubleNegation, Self.doubleNegation])) { error in
            XCTAssertEqual((error as? OptimizationError)?.kind, .duplicateRuleName("fold-double-neg"))
            XCTAssertEqual(error.localizedDescription, "two rules are named 'fold-double-neg'")
        }
        var options = OptimizationOptions()
        options.only = ["fold-conv-batchnrom"]
        XCTAssertThrowsError(try optimize(model, rules: sharedBuiltinRules, options: options)) { error in
            XCTAssertEqual((error as? OptimizationError)?.kind, .unknownRuleName("fold-conv-batchnrom"))
        }
        options.only = nil
        options.disabled = ["no-such-rule"]
        XCTAssertThrowsError(try optimize(model, rules: sharedBuiltinRules, options: options))
        XCTAssertEqual(Printer().print(model), before, "nothing changed")
    }

    func testOptimizeRefusesAModelWhoseFileChanged() throws {
        let directory = try fixtureWorkspace(["conv_bn.onnx"])
        let path = directory.appendingPathComponent("conv_bn.onnx").path
        let model = try ModelFile.load(path: path)
        let size = try XCTUnwrap(ModelFile.size(of: path))
        XCTAssertEqual(truncate(path, 0), 0)
        XCTAssertThrowsError(try optimize(model, rules: sharedBuiltinRules)) { error in
            XCTAssertEqual((error as? OptimizationError)?.kind,
                           .inputChanged(.inputChanged(file: path, change: .truncated(from: size, to: 0))))
            XCTAssertTrue(error.localizedDescription.hasPrefix(path + ": the file changed since the model was loaded"),
                          error.localizedDescription)
        }
    }

    /// A chain of `pairs` Neg pairs.
    static func negationChain(_ pairs: Int) throws -> Model {
        let graph = Graph(name: "chain")
        var value = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(4)])))
        for index in 0..<(2 * pairs) {
            let node = Node(opType: "Neg", name: "n\(index)", inputs: [value], outputNames: ["v\(index)"])
            try graph.append(node)
            value = node.outputs[0]!
        }
        try graph.addOutput(value, info: ValueInfo(type: .tensor(.float, [.value(4)])))
        return Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
    }

    func testProgressIsReportedAndCancellationStops() async throws {
        let progress = Recorded<RewriteProgress>()
        var options = OptimizationOptions()
        options.progress = { progress.append($0) }
        let model = try Self.negationChain(2_000)
        let report = try optimize(model, rules: [Self.doubleNegation], options: options)
        // x is a graph input and y a graph output: an Identity keeps the name y.
        XCTAssertEqual(report.after.nodesByOpType, ["Identity": 1])
        XCTAssertGreaterThan(progress.elements.count, 3)
        XCTAssertEqual(progress.elements.map(\.nodesTried), progress.elements.map(\.nodesTried).sorted())

        let (partial, failure) = await Task.detached { SwiftRuleTests.optimizeInCancelledTask() }.value
        XCTAssertEqual(failure, .cancelled)
        XCTAssertGreaterThan(partial.graph.nodeCount, 0, "stopped before the end")
        XCTAssertEqual(partial.graph.nodeCount % 2, 0, "every rewrite complete")
        try partial.verify()
    }

    /// Optimizes a chain in the current task, cancelled first.
    static func optimizeInCancelledTask() -> (Model, OptimizationError.Kind?) {
        withUnsafeCurrentTask { $0?.cancel() }
        let model = try! negationChain(2_000)
        do {
            try optimize(model, rules: [doubleNegation])
            return (model, nil)
        } catch {
            return (model, error.kind)
        }
    }

    func testModelsAreOptimizedInChildTasksWithSharedRules() async throws {
        let names = ["conv_bn.onnx", "gemm_bn.onnx", "dead_nodes.onnx", "transformer_shapes.onnx"]
        var serial: [String: [UInt8]] = [:]
        for name in names {
            let model = try ModelFile.load(path: CommandTests.fixtures.appendingPathComponent(name).path)
            try optimize(model, rules: sharedBuiltinRules)
            serial[name] = try ModelFile.serialize(model)
        }
        let parallel = try await withThrowingTaskGroup(of: (String, Model).self) { group in
            for _ in 0..<2 {
                for name in names {
                    group.addTask {
                        let model = try ModelFile.load(path: CommandTests.fixtures.appendingPathComponent(name).path)
                        try optimize(model, rules: sharedBuiltinRules)
                        return (name, model)  // a Model moves from the child task to its parent
                    }
                }
            }
            var models: [(String, Model)] = []
            for try await result in group { models.append(result) }
            return models
        }
        XCTAssertEqual(parallel.count, 2 * names.count)
        for (name, model) in parallel {
            XCTAssertEqual(try ModelFile.serialize(model), serial[name], name)
        }
    }
}

/// What a `@Sendable` callback saw.
final class Recorded<Element>: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [Element] = []

    func append(_ element: Element) { lock.withLock { storage.append(element) } }
    var elements: [Element] { lock.withLock { storage } }
}
