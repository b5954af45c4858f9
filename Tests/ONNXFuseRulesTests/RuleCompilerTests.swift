import XCTest
import Foundation
import ONNXFuseIR
import ONNXFuseRewrite
@testable import ONNXFuseRules

/// Rule files from text to engine rules, and the example rules of the issue on small graphs
/// whose folded numbers are computed by hand.
final class RuleCompilerTests: XCTestCase {
    /// The example rule file (the same text the parser tests check).
    static let example = parserExampleFile

    func compile(_ text: String) throws -> [CompiledRule] {
        try compileRules(try parseRules(text, file: "test.rules"))
    }

    /// The messages of compiling `text`, which must fail.
    func errors(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> [String] {
        do {
            _ = try compile(text)
            XCTFail("compiled", file: file, line: line)
            return []
        } catch let error as RuleErrors {
            return error.errors.map(\.description)
        } catch {
            XCTFail("\(error)", file: file, line: line)
            return []
        }
    }

    // MARK: Load-time errors

    func testTheShippedExampleFileIsTheExample() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/examples/conv-batchnorm.rules")
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8).trimmingCharacters(in: .newlines),
                       Self.example.trimmingCharacters(in: .newlines))
    }

    func testTheExampleCompiles() throws {
        let rules = try compile(Self.example)
        XCTAssertEqual(rules.map(\.name), ["fold-conv-batchnorm", "div-by-constant"])
        XCTAssertEqual(rules[0].comment, ["Fold an inference-mode BatchNormalization into the Conv that feeds it."])
        XCTAssertEqual(rules[0].rewrite.benefit, 10)
        XCTAssertTrue(rules[0].text.hasPrefix("rule fold-conv-batchnorm {"))
    }

    func testAnyOperatorAndItemAnchors() throws {
        let rules = try compile("""
            rule dead { match { _ = _(...) }; replace { } }
            rule dead-ml { match { _ = ai.onnx.ml._(x, ...) }; replace { } }
            rule init { match { initializer w }; where { rank(w) == 1 }; replace { } }
            rule opset { match { opset_import d }; where { d != "" }; replace { } }
            """)
        let dead = rules[0].rewrite.pattern
        XCTAssertEqual(dead.anchor, .node)
        XCTAssertTrue(dead.nodes[0].matchesAnyOperator)
        XCTAssertEqual(dead.nodes[0].domain, "")
        XCTAssertEqual(rules[1].rewrite.pattern.nodes[0].domain, "ai.onnx.ml")
        XCTAssertEqual(rules[2].rewrite.pattern.anchor, .initializer)
        XCTAssertEqual(rules[2].rewrite.pattern.valueNames, ["w"])
        XCTAssertEqual(rules[3].rewrite.pattern.anchor, .opsetImport)
        XCTAssertEqual(rules[3].rewrite.pattern.attributeNames, ["d"])
        for rule in rules { XCTAssertTrue(rule.rewrite.replacement.nodes.isEmpty && rule.rewrite.replacement.forwards.isEmpty) }
    }

    func testItemAnchorsStandAloneAndRemove() {
        XCTAssertEqual(errors("""
            rule r {
              match {
                initializer w
                opset_import d
                y = Relu(w)
              }
              where { rank(v) == 1 }
              replace { y = w }
            }
            """), [
            "test.rules:4:5: 'initializer w' stands alone in match; it cannot be combined with 'opset_import d'",
            "test.rules:5:5: 'initializer w' stands alone in match; it cannot be combined with node patterns",
            "test.rules:8:13: a rule that matches 'initializer w' removes it: its replace block must be empty",
            "test.rules:7:16: 'v' is not defined",
        ])
        // A node rule with an empty replace must still give every named output a producer.
        XCTAssertEqual(errors("rule r { match { y = _(x) }; replace { } }"),
                       ["test.rules:1:18: 'y', an output of _, is not given a replacement"])
    }

    func testUndefinedVariablesAndUnknownFunctionsAreLoadTimeErrors() {
        XCTAssertEqual(errors("""
            rule r {
              match { y = Div(x, c) }
              where { constant(d) && frobnicate(c) && sqrt(c, c) }
              compute { r = 1 / q }
              replace { y = Mul(x, r2) }
            }
            """), [
            "test.rules:3:20: constant() takes variables of the match",
            "test.rules:3:26: unknown function 'frobnicate'",
            "test.rules:3:43: sqrt() takes 1 argument, not 2",
            "test.rules:4:21: 'q' is not defined",
            "test.rules:5:13: 'r2' is not defined (not in match, compute, or an earlier replace line)",
        ])
    }

    func testEveryValueTheMatchProducesNeedsAProducer() {
        XCTAssertEqual(errors("""
            rule r {
              match { y = A(x); z = B(y) }
              replace { y = C(x) }
            }
            """), ["test.rules:2:21: 'z', an output of B, is not given a replacement"])
        XCTAssertEqual(errors("""
            rule r {
              match { y = A(x) }
              replace { x = C(y) }
            }
            """), [
            "test.rules:3:13: 'x' comes from outside the match; replace can only redefine values the match produces",
            "test.rules:2:11: 'y', an output of A, is not given a replacement",
        ])
    }

    func testAValueRedefinedTwiceInReplaceIsRefused() {
        // Found by the rules fuzz target (fixtures/fuzz/rules/crash-replace-redefines-value-twice):
        // two new values of one name.
        XCTAssertEqual(errors("""
            rule r {
              match { y = Relu(x) }
              replace { y = Relu(x); y = Neg(x) }
            }
            rule s {
              match { y = Relu(x) }
              replace { y = x; y = Neg(x) }
            }
            rule t {
              match { y = Relu(x) }
              replace { y, y = Split(x) }
            }
            """), ["test.rules:3:26: 'y' is redefined twice in replace", "test.rules:7:20: 'y' is redefined twice in replace",
                   "test.rules:11:13: 'y' is redefined twice in replace"])
    }

    func testAReplacementThatWouldReadItsOwnResultIsRefused() {
        // y = Add(x, y) reads the matched y, which the same line redefines: a cycle.
        XCTAssertEqual(errors("""
            rule r {
              match { y = Relu(x) }
              replace { y = Add(x, y) }
            }
            """), ["test.rules:3:13: 'y' is read by a replace line before (or where) it is redefined: the new node would read its own result, a cycle"])
        // Read by an earlier line than the one that redefines it, or forwarded to a new value.
        XCTAssertEqual(errors("""
            rule r {
              match { m = Relu(x); y = Neg(m) }
              replace {
                t = Abs(y)
                m = x
                y = Sin(t)
              }
            }
            """).count, 1)
        XCTAssertEqual(errors("""
            rule r {
              match { y = Relu(x) }
              replace {
                t = Abs(y)
                y = t
              }
            }
            """).count, 1)
        // Reading it after the line that redefines it is the new value: fine.
        XCTAssertNoThrow(try compile("""
            rule r {
              match { m = Relu(x); y = Neg(m) }
              replace {
                m = Abs(x)
                y = Neg(m)
              }
            }
            """))
    }

    func testMisplacedSyntaxIsReportedWithItsPlace() {
        let messages = errors("""
            rule r {
              match { y = A<...x>(x) }
              replace { y = B<k: v>(x, ...) }
            }
            rule r {
              match { y = A(x) }
              replace { y = x }
            }
            """)
        XCTAssertEqual(messages.map { String($0.prefix(while: { $0 != " " })) }, ["test.rules:2:17:", "test.rules:3:19:", "test.rules:3:28:"],
                       "\(messages)")
        XCTAssertEqual(errors("""
            rule r {
              match { y = A(x) }
              replace { y = x }
            }
            rule r {
              match { y = A(x) }
              replace { y = x }
            }
            """), ["test.rules:5:1: rule 'r' is defined twice in this file"])
    }

    // MARK: The example rules on graphs

    struct ConvBatchNorm {
        let graph = Graph(name: "g")
        let model: Model
        var conv: Node!
        var bn: Node!

        /// Conv(x, w) with w = [2, 1, 1, 1] = (1, 2), BN with scale (4, 9), shift (0.5, -1),
        /// mean (1, 0), var (3, 8), epsilon 1: k = scale / sqrt(var + 1) = (2, 3),
        /// w2 = (2, 6), b2 = (0 - mean) * k + shift = (-1.5, -1).
        init(training: Int64? = nil, scaleCount: Int = 2, variance: [Float] = [3, 8], weightIsInput: Bool = false) throws {
            model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
            let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(1), .value(1), .value(2), .value(2)])))
            func constant(_ name: String, _ values: [Float], dims: [Int64]? = nil) -> Value {
                graph.addInitializer(name: name, tensor: Tensor(dataType: .float, dims: dims ?? [Int64(values.count)], values: values))
            }
            let w: Value
            if weightIsInput {
                w = graph.addInput(name: "w", info: ValueInfo(type: .tensor(.float, [.value(2), .value(1), .value(1), .value(1)])))
            } else {
                w = constant("w", [1, 2], dims: [2, 1, 1, 1])
            }
            let scale = constant("scale", Array([4, 9, 1][..<scaleCount]))
            let shift = constant("shift", [0.5, -1]), mean = constant("mean", [1, 0]), variance = constant("var", variance)
            conv = Node(opType: "Conv", name: "conv", inputs: [x, w], outputNames: ["y"],
                        attributes: [Attribute(name: "kernel_shape", value: .ints([1, 1]))])
            try graph.append(conv)
            var attributes = [Attribute(name: "epsilon", value: .float(1))]
            if let training { attributes.append(Attribute(name: "training_mode", value: .int(training))) }
            bn = Node(opType: "BatchNormalization", name: "bn3", inputs: [conv.outputs[0], scale, shift, mean, variance],
                      outputNames: ["z"], attributes: attributes)
            try graph.append(bn)
            try graph.addOutput(bn.outputs[0]!, info: ValueInfo(type: nil))
        }

        func run(_ rules: [CompiledRule]) throws -> RewriteReport {
            var options = RewriteOptions()
            options.explain = true
            let report = applyRules(rules.map(\.rewrite), to: model, options: options)
            try model.verify()
            return report
        }
    }

    func testFoldConvBatchNormNumbersAndText() throws {
        let case_ = try ConvBatchNorm()
        let report = try case_.run(compile(Self.example))
        XCTAssertEqual(report.fired.map(\.rule), ["fold-conv-batchnorm"])
        XCTAssertEqual(Printer().print(case_.graph), """
            g (float[1,1,2,2] x) => (? z)
               <float[2,1,1,1] z_w2 = {2, 6}, float[2] z_b2 = {-1.5, -1}>
            {
               z = Conv <kernel_shape = [1, 1]> (x, z_w2, z_b2)
            }

            """)
    }

    func testFoldConvBatchNormMustNotFire() throws {
        let rules = try compile(Self.example)
        func reasons(_ build: (inout ConvBatchNorm) throws -> Void) throws -> [String] {
            var case_ = try ConvBatchNorm()
            try build(&case_)
            let before = Printer().print(case_.graph)
            let report = try case_.run(rules)
            XCTAssertTrue(report.fired.isEmpty)
            XCTAssertEqual(Printer().print(case_.graph), before, "nothing changes")
            return report.explanations.map(\.description)
        }
        // The Conv output is used twice.
        XCTAssertEqual(try reasons { c in
            try c.graph.append(Node(opType: "Relu", inputs: [c.conv.outputs[0]], outputNames: ["r"]))
            try c.graph.addOutput(c.graph.lastNode!.outputs[0]!, info: ValueInfo(type: nil))
        }, ["fold-conv-batchnorm at node 'bn3': y has 2 users"])
        // The Conv output is a graph output.
        XCTAssertEqual(try reasons { c in try c.graph.addOutput(c.conv.outputs[0]!, info: ValueInfo(type: nil)) },
                       ["fold-conv-batchnorm at node 'bn3': y is a graph output"])
        // Training mode.
        let training = try ConvBatchNorm(training: 1)
        XCTAssertTrue(try training.run(rules).fired.isEmpty)
        // The weight is a graph input.
        let input = try ConvBatchNorm(weightIsInput: true)
        XCTAssertEqual(try input.run(rules).explanations.map(\.reason), ["w is a graph input"])
        // Mismatched shapes: three scales for two channels.
        let shapes = try ConvBatchNorm(scaleCount: 3)
        XCTAssertEqual(try shapes.run(rules).explanations.map(\.reason), ["`shape(scale) == [dim(w, 0)]` is false"])
        // Variance and epsilon giving a non-finite scale: var + eps = 0.
        let infinite = try ConvBatchNorm(variance: [-1, 8])
        XCTAssertEqual(try infinite.run(rules).explanations.map(\.reason), ["k is not finite"])
    }

    func testDivByConstantOnlyForFloatingPointConstants() throws {
        let rules = try compile(Self.example)
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(2)])))
        let c = graph.addInitializer(name: "c", tensor: Tensor(dataType: .float, dims: [2], values: [Float(2), 4]))
        let n = graph.addInput(name: "n", info: ValueInfo(type: .tensor(.int64, [.value(2)])))
        let i = graph.addInitializer(name: "i", tensor: Tensor(dataType: .int64, dims: [2], values: [Int64(2), 4]))
        try graph.append(Node(opType: "Div", inputs: [x, c], outputNames: ["y"]))
        try graph.append(Node(opType: "Div", inputs: [n, i], outputNames: ["q"]))
        try graph.addOutput(graph.firstNode!.outputs[0]!, info: ValueInfo(type: nil))
        try graph.addOutput(graph.lastNode!.outputs[0]!, info: ValueInfo(type: nil))
        var options = RewriteOptions()
        options.explain = true
        let report = applyRules(rules.map(\.rewrite), to: model, options: options)
        try model.verify()
        XCTAssertEqual(report.fired.map(\.rule), ["div-by-constant"])
        XCTAssertEqual(Printer().print(graph), """
            g (float[2] x, int64[2] n) => (? y, ? q)
               <int64[2] i = {2, 4}, float[2] y_r = {0.5, 0.25}>
            {
               y = Mul (x, y_r)
               q = Div (n, i)
            }

            """)
        XCTAssertEqual(report.explanations.map(\.description), ["div-by-constant at node 'q': `dtype(c) in [float, double, float16]` is false (test.rules:25)"])
    }

    func testADagWithASharedInputAndCommutativeAdd() throws {
        // A low-rank adapter beside a MatMul: MatMul(x, W) + MatMul(MatMul(x, A), B), the Add
        // in either order, becomes MatMul(x, W + A·B).
        let rules = try compile("""
            rule merge-lora {
              commute Add
              match {
                base = MatMul(x, w)
                low = MatMul(x, a)
                delta = MatMul(low, b)
                y = Add(base, delta)
              }
              where { constant(w, a, b) }
              compute { w2 = w + matmul(a, b) }
              replace { y = MatMul(x, w2) }
            }
            """)
        for swapped in [false, true] {
            let graph = Graph(name: "g")
            let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
            let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(1), .value(2)])))
            let w = graph.addInitializer(name: "w", tensor: Tensor(dataType: .float, dims: [2, 2], values: [Float(1), 2, 3, 4]))
            let a = graph.addInitializer(name: "a", tensor: Tensor(dataType: .float, dims: [2, 1], values: [Float(1), 2]))
            let b = graph.addInitializer(name: "b", tensor: Tensor(dataType: .float, dims: [1, 2], values: [Float(10), 20]))
            let base = Node(opType: "MatMul", inputs: [x, w], outputNames: ["base"])
            let low = Node(opType: "MatMul", inputs: [x, a], outputNames: ["low"])
            try graph.append(base)
            try graph.append(low)
            let delta = Node(opType: "MatMul", inputs: [low.outputs[0], b], outputNames: ["delta"])
            try graph.append(delta)
            let add = Node(opType: "Add", inputs: swapped ? [delta.outputs[0], base.outputs[0]] : [base.outputs[0], delta.outputs[0]], outputNames: ["y"])
            try graph.append(add)
            try graph.addOutput(add.outputs[0]!, info: ValueInfo(type: nil))
            let report = applyRules(rules.map(\.rewrite), to: model)
            try model.verify()
            XCTAssertEqual(report.fired.first?.count, 1, "swapped: \(swapped)")
            // w + a·b = [[1 + 10, 2 + 20], [3 + 20, 4 + 40]]
            XCTAssertEqual(Printer().print(graph), """
                g (float[1,2] x) => (? y)
                   <float[2,2] y_w2 = {11, 22, 23, 44}>
                {
                   y = MatMul (x, y_w2)
                }

                """)
        }
    }

    func testIntegerListsReadByNodesBecomeInt64Tensors() throws {
        // Flatten of a constant-shaped input as a Reshape with a computed shape.
        let rules = try compile("""
            rule flatten-to-reshape {
              match { y = Flatten<axis: ax = 1>(x) }
              where { ax == 1 && rank(x) == 4 }
              compute { s = [dim(x, 0), -1] }
              replace { y = Reshape(x, s) }
            }
            """)
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(2), .value(3), .value(4), .value(5)])))
        try graph.append(Node(opType: "Flatten", inputs: [x], outputNames: ["y"]))
        try graph.addOutput(graph.lastNode!.outputs[0]!, info: ValueInfo(type: nil))
        XCTAssertEqual(applyRules(rules.map(\.rewrite), to: model).fired.first?.count, 1)
        try model.verify()
        XCTAssertTrue(Printer().print(graph).contains("<int64[2] y_s = {2, -1}>"), Printer().print(graph))
    }
}
