import ONNXFuseIR
import ONNXFuseRewrite
import ONNXFuseRules

/// A value of a rule written in Swift (`RuleBuilder`): a value of the match, a tensor the rule
/// computes, or an output of a node the rule creates. Its name is the one the rule gave it.
public struct RuleValue: Equatable, Sendable {
    /// What the engine reads for it.
    let reference: ValueReference
    /// The name the rule gave it.
    public let name: String

    /// The index of the value variable it stands for, when it is one.
    var variable: Int? {
        if case .bound(let index) = reference { return index }
        return nil
    }
}

/// An attribute variable of a rule written in Swift: the value of a matched node's attribute.
public struct RuleAttribute: Hashable, Sendable {
    /// Its index among the pattern's attribute variables.
    let variable: Int
    /// The name the rule gave it.
    public let name: String
}

/// A node of a rule's pattern, as `RuleBuilder.match` gives it.
public struct RuleNode: Equatable, Sendable {
    /// Its index among the pattern's nodes.
    let index: Int
    /// Its outputs, in order, by the names the rule gave them.
    public let outputs: [RuleValue]
    /// Its first output.
    public var output: RuleValue { outputs[0] }
}

/// An input position of a pattern node (`RuleBuilder.match(_:domain:inputs:outputs:attributes:commutative:)`).
public enum RuleInput: Sendable {
    /// The input is this value (the same value wherever the rule names it).
    case value(RuleValue)
    /// The input is absent, or this value.
    case optional(RuleValue)
    /// Any value, or none.
    case any
    /// Any further inputs (last only).
    case rest
}

/// An output of a node a rule creates (`RuleBuilder.create`).
public enum RuleOutput: Sendable {
    /// The output takes the place of this value of the match: its uses, graph outputs and name.
    case replacing(RuleValue)
    /// A new value, read only by other nodes the rule creates.
    case new(String)
}

/// An attribute of a node a rule creates, applied in order.
public enum RuleNodeAttribute: Sendable {
    /// Every attribute of the matched node.
    case copyAll(from: RuleNode)
    /// An attribute of a constant value.
    case set(String, AttributeLiteral)
    /// An attribute whose value the rule computes for each match (throwing refuses the match).
    case compute(String, @Sendable (MatchView) throws -> AttributeValue)
}

/// Writes a rewrite rule in Swift, its values, attributes and nodes by name: what to match
/// (`match`), when it may fire (`require`), what it computes (`compute`) and what the match
/// becomes (`create`, `replace`). `CompiledRule(name:benefit:summary:_:)` gives it a builder
/// and makes the rule, which runs with the built-in ones and those of rule files, and is
/// counted in the report the same way:
///
/// ```swift
/// let rule = try CompiledRule(name: "fold-double-neg") { rule in
///     let x = rule.value("x")
///     let once = rule.match("Neg", inputs: [x], outputs: ["once"])
///     let twice = rule.match("Neg", inputs: [once.output], outputs: ["y"])
///     rule.replace(twice.output, with: x)
/// }
/// ```
///
/// The engine adds its own guards, as for every rule: a value of the match that the rule does
/// not replace must be read only inside the match and must not be a graph output.
public final class RuleBuilder {
    /// The rule's name.
    public let name: String
    private var valueNames: [String] = []
    private var attributeNames: [String] = []
    private var patternNodes: [PatternNode] = []
    private var rootNode: Int?
    private var requirements: [(description: String, holds: @Sendable (MatchView) -> Bool)] = []
    private var computations: [(name: String, body: @Sendable (MatchView) throws -> Tensor)] = []
    private var attributeComputations: [@Sendable (MatchView) throws -> AttributeValue] = []
    private var replacementNodes: [ReplacementNode] = []
    private var forwards: [(target: Int, source: ValueReference)] = []
    private var newValueNames: [String] = []
    private var problems: [String] = []

    init(name: String) { self.name = name }

    /// The value variable `name`: the same value wherever the rule uses it.
    public func value(_ name: String) -> RuleValue {
        if let index = valueNames.firstIndex(of: name) { return RuleValue(reference: .bound(index), name: name) }
        valueNames.append(name)
        return RuleValue(reference: .bound(valueNames.count - 1), name: name)
    }

    /// A node of `opType` (of `domain`, "" for ONNX) reading `inputs`, whose outputs get the
    /// names `outputs` (a name already used is the same value). `attributes` must equal the
    /// given literals; `commutative` lets the first two inputs match in either order. The last
    /// node matched is the rule's root (where the engine looks for matches) unless `root(_:)`
    /// says otherwise.
    @discardableResult
    public func match(_ opType: String, domain: String = "", inputs: [RuleInput], outputs: [String],
                      attributes: [String: AttributeLiteral] = [:], commutative: Bool = false) -> RuleNode {
        let patternInputs: [PatternInput] = inputs.map { input in
            switch input {
            case .value(let value): return variable(of: value, use: "read by \(opType)").map { .variable($0) } ?? .any
            case .optional(let value): return variable(of: value, use: "read by \(opType)").map { .optional($0) } ?? .any
            case .any: return .any
            case .rest: return .rest
            }
        }
        if let rest = inputs.firstIndex(where: { if case .rest = $0 { return true }; return false }), rest != inputs.count - 1 {
            problems.append("\(opType): .rest must be the last input")
        }
        let outputValues = outputs.map(value)
        let constraints = attributes.sorted { $0.key < $1.key }.map { AttributeConstraint.equals($0.key, $0.value) }
        patternNodes.append(PatternNode(opType: opType, domain: domain, inputs: patternInputs,
                                        outputs: outputValues.map { .variable($0.variable!) },
                                        attributes: constraints, commutative: commutative))
        return RuleNode(index: patternNodes.count - 1, outputs: outputValues)
    }

    /// A node reading the values `inputs`, as `match(_:domain:inputs:outputs:attributes:commutative:)`.
    @discardableResult
    public func match(_ opType: String, domain: String = "", inputs: [RuleValue], outputs: [String],
                      attributes: [String: AttributeLiteral] = [:], commutative: Bool = false) -> RuleNode {
        match(opType, domain: domain, inputs: inputs.map(RuleInput.value), outputs: outputs, attributes: attributes,
              commutative: commutative)
    }

    /// The attribute `attribute` of matched `node`, named `name` (the attribute's own name by
    /// default). A node without it does not match, unless `defaultValue` is given.
    public func attribute(_ attribute: String, of node: RuleNode, as name: String? = nil,
                          default defaultValue: AttributeLiteral? = nil) -> RuleAttribute {
        attributeNames.append(name ?? attribute)
        let variable = attributeNames.count - 1
        patternNodes[node.index].attributes.append(.bind(attribute, variable: variable, defaultValue: defaultValue))
        return RuleAttribute(variable: variable, name: name ?? attribute)
    }

    /// Makes `node` the rule's root: the engine tries the rule at each node of its operator.
    public func root(_ node: RuleNode) { rootNode = node.index }

    /// A condition the match must meet; `description` is the reason explanations give when it
    /// does not ("w is not constant"). Conditions run in order, before any computation.
    public func require(_ description: String, _ condition: @escaping @Sendable (MatchView) -> Bool) {
        requirements.append((description, condition))
    }

    /// A tensor the rule computes for each match, which created nodes may read (it becomes an
    /// initializer named after `name`). Throwing refuses the match, the error its reason.
    public func compute(_ name: String, _ body: @escaping @Sendable (MatchView) throws -> Tensor) -> RuleValue {
        computations.append((name, body))
        return RuleValue(reference: .computed(computations.count - 1), name: name)
    }

    /// Creates a node of `opType` reading `inputs` (nil: an absent input) with `outputs`; gives
    /// its outputs, in order, for other created nodes to read.
    @discardableResult
    public func create(_ opType: String, domain: String = "", inputs: [RuleValue?], outputs: [RuleOutput],
                       attributes: [RuleNodeAttribute] = []) -> [RuleValue] {
        var made: [RuleValue] = []
        let specOutputs: [ReplacementOutput] = outputs.map { output in
            switch output {
            case .replacing(let value):
                guard let index = variable(of: value, use: "replaced by \(opType)") else { return .none }
                made.append(value)
                return .replaces(index)
            case .new(let name):
                newValueNames.append(name)
                let fresh = newValueNames.count - 1
                made.append(RuleValue(reference: .fresh(fresh), name: name))
                return .fresh(fresh)
            }
        }
        let specAttributes: [ReplacementAttribute] = attributes.map { attribute in
            switch attribute {
            case .copyAll(let node): return .copyAll(fromPatternNode: node.index)
            case .set(let name, let literal):
                attributeComputations.append { _ in literal.attributeValue }
                return .set(name, slot: attributeComputations.count - 1)
            case .compute(let name, let body):
                attributeComputations.append(body)
                return .set(name, slot: attributeComputations.count - 1)
            }
        }
        replacementNodes.append(ReplacementNode(opType: opType, domain: domain,
                                                inputs: inputs.map { $0?.reference ?? .absent },
                                                outputs: specOutputs, attributes: specAttributes))
        return made
    }

    /// Creates a node whose one output takes the place of `value`.
    public func create(_ opType: String, domain: String = "", inputs: [RuleValue?], replacing value: RuleValue,
                       attributes: [RuleNodeAttribute] = []) {
        create(opType, domain: domain, inputs: inputs, outputs: [.replacing(value)], attributes: attributes)
    }

    /// Every reader of `value` (a value of the match) reads `source` instead.
    public func replace(_ value: RuleValue, with source: RuleValue) {
        guard let target = variable(of: value, use: "replaced") else { return }
        forwards.append((target, source.reference))
    }

    /// The value variable `value` is, or a problem noted.
    private func variable(of value: RuleValue, use: String) -> Int? {
        if let index = value.variable { return index }
        problems.append("'\(value.name)' is not a value of the match, and cannot be \(use)")
        return nil
    }

    /// Notes the redefinitions the engine cannot apply, as the rule compiler does for rule
    /// files: a value the matched nodes do not produce (an input of the match: its other readers
    /// would read the new value, which also takes its name), a value redefined twice (two values
    /// of one name), and a created node that reads a value it or a later created node redefines,
    /// or that a replacement points at a created node's output (the node would read its own
    /// result: a cycle).
    private func checkRedefinitions() {
        var produced = Set<Int>()
        for node in patternNodes {
            for case .variable(let v) in node.outputs { produced.insert(v) }
        }
        var redefined = Set<Int>()
        func redefine(_ v: Int, by what: String) {
            if !produced.contains(v) {
                problems.append("'\(valueNames[v])' is not an output of a matched node and cannot be \(what): a rule can only redefine values the match produces")
            } else if !redefined.insert(v).inserted {
                problems.append("'\(valueNames[v])' is redefined twice")
            }
        }
        for node in replacementNodes {
            for case .replaces(let v) in node.outputs { redefine(v, by: "replaced by \(node.opType)") }
        }
        for (target, _) in forwards { redefine(target, by: "replaced") }
        let replacement = Replacement(nodes: replacementNodes, forwards: forwards, computedNames: [], freshNames: newValueNames)
        for (index, v) in replacement.nodesReadingTheirOwnResult {
            problems.append("\(replacementNodes[index].opType) reads '\(valueNames[v])', which it or a later node redefines: it would read its own result, a cycle")
        }
    }

    /// The rewrite the builder describes.
    func rewrite(benefit: Int) throws(RuleErrors) -> RewriteRule {
        let location = SourceLocation(file: "swift:" + name, line: 0, column: 0)
        if patternNodes.isEmpty { problems.append("the rule matches no node") }
        if replacementNodes.isEmpty && forwards.isEmpty { problems.append("the rule creates nothing and replaces nothing") }
        checkRedefinitions()
        guard problems.isEmpty else { throw RuleErrors(problems.map { RuleError($0, at: location) }) }
        let pattern: Pattern
        do {
            pattern = try Pattern(nodes: patternNodes, root: rootNode ?? patternNodes.count - 1,
                                  valueNames: valueNames, attributeNames: attributeNames)
        } catch {
            throw RuleErrors([RuleError(error.description, at: location)])
        }
        let replacement = Replacement(nodes: replacementNodes, forwards: forwards,
                                      computedNames: computations.map(\.name), freshNames: newValueNames)
        let requirements = requirements, computations = computations, attributeComputations = attributeComputations
        let valueNames = valueNames, attributeNames = attributeNames
        return RewriteRule(name: name, benefit: benefit, pattern: pattern, replacement: replacement) { match, context in
            let view = MatchView(match: match, valueNames: valueNames, attributeNames: attributeNames, context: context)
            for requirement in requirements where !requirement.holds(view) {
                return .failure(RuleRefusal(requirement.description))
            }
            do {
                return .success(PreparedReplacement(tensors: try computations.map { try $0.body(view) },
                                                    attributeValues: try attributeComputations.map { try $0(view) }))
            } catch let refusal as RuleRefusal {
                return .failure(refusal)
            } catch {
                return .failure(RuleRefusal(String(describing: error)))
            }
        }
    }
}

extension CompiledRule {
    /// A rule written in Swift: `build` describes it on a `RuleBuilder`. `benefit` orders it
    /// among the rules (higher first; the rule files' default is 1); `summary` is what
    /// `rules list` and explanations show of it. A description the engine cannot match (a
    /// node not connected to the root, a value that is not the match's replaced) is an error.
    public init(name: String, benefit: Int = 1, summary: String = "",
                _ build: (RuleBuilder) throws -> Void) throws {
        let builder = RuleBuilder(name: name)
        try build(builder)
        let rewrite = try builder.rewrite(benefit: benefit)
        self.init(name: name, file: "swift", comment: summary.isEmpty ? [] : [summary],
                  text: (summary.isEmpty ? "" : "# \(summary)\n") + "# A rule written in Swift.\n", rewrite: rewrite)
    }
}

extension MatchView {
    /// The graph value `value` (a value of the match) is bound to; nil when it is absent.
    public subscript(_ value: RuleValue) -> Value? {
        value.variable.flatMap { match.value($0) }
    }

    /// The attribute's value (or its default).
    public subscript(_ attribute: RuleAttribute) -> AttributeValue? {
        match.attributes[attribute.variable]
    }

    /// The graph node `node` matched.
    public func node(_ node: RuleNode) -> Node { match.nodes[node.index]! }

    /// The constant `value` is bound to, as `constant(named:)`.
    public func constant(_ value: RuleValue) -> Tensor? {
        self[value]?.constantTensor(freezeInitializerInputs: context.freezeInitializerInputs)
    }
}
