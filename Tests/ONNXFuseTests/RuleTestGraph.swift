import XCTest
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// A small float graph for testing built-in rules: inputs, constants, nodes, and a run of a
/// rule set with explanations on. Each rule family's tests subclass it.
class RuleTestGraph {
    /// Where a value a rule reads comes from: the cases its guards must tell apart.
    enum Source { case constant, graphInput, computed }

    let graph = Graph(name: "g")
    let model: Model
    let rules: [CompiledRule]

    init(rules: [CompiledRule], opset: Int64 = 17) {
        self.rules = rules
        model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: opset)], graph: graph)
    }

    func input(_ name: String, _ dims: [Int64]) -> Value {
        graph.addInput(name: name, info: ValueInfo(type: .tensor(.float, dims.map { .value($0) })))
    }

    func constant(_ name: String, _ values: [Float], _ dims: [Int64]) -> Value {
        graph.addInitializer(name: name, tensor: Tensor(dataType: .float, dims: dims, values: values))
    }

    /// An initializer, a graph input, or the output of a Relu of an initializer.
    func value(_ source: Source, _ name: String, _ values: [Float], _ dims: [Int64]) throws -> Value {
        switch source {
        case .constant: return constant(name, values, dims)
        case .graphInput: return input(name, dims)
        case .computed: return try node("Relu", [constant(name + "_raw", values, dims)], name)
        }
    }

    /// A node with one output named `output` (which also names the node).
    @discardableResult
    func node(_ op: String, _ inputs: [Value], _ output: String) throws -> Value {
        let node = Node(opType: op, name: output, inputs: inputs, outputNames: [output])
        try graph.append(node)
        return node.outputs[0]!
    }

    func output(_ value: Value) throws { try graph.addOutput(value, info: ValueInfo(type: nil)) }

    /// Runs the rules with explanations and `--verify`'s check of every rewrite, and checks the
    /// IR afterwards: no rewrite may change the numbers, and every one must be checked.
    func run(file: StaticString = #filePath, line: UInt = #line) throws -> OptimizationReport {
        var options = OptimizationOptions()
        options.explain = true
        options.verifyRewrites = true
        let report = try optimize(model, rules: rules, options: options)
        try model.verify()
        let verification = try XCTUnwrap(report.verification)
        XCTAssertEqual(verification.failures.map(\.description), [], file: file, line: line)
        let notVerified = verification.rules.filter { $0.notVerified > 0 }.map { "\($0.rule): \($0.firstNotVerifiedReason ?? "")" }
        XCTAssertEqual(notVerified, [], file: file, line: line)
        XCTAssertEqual(verification.rules.reduce(0) { $0 + $1.checked }, report.fired.reduce(0) { $0 + $1.count }, file: file, line: line)
        return report
    }

    /// Runs the rules expecting nothing to fire or change; returns `rule`'s explanations.
    func reasonsNothingFires(for rule: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String] {
        let before = text
        let report = try run(file: file, line: line)
        XCTAssertTrue(report.fired.isEmpty, "\(report.fired)", file: file, line: line)
        XCTAssertEqual(text, before, "nothing changes", file: file, line: line)
        return report.explanations.filter { $0.rule == rule }.map(\.reason)
    }

    var text: String { Printer().print(graph) }
}
