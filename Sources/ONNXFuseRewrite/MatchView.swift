import ONNXFuseIR

/// A match as a rule's own Swift code sees it: the graph values, attributes and nodes bound by
/// the pattern's variables, looked up by the names the rule gave them. Guards and computations
/// of rules written in Swift (`RuleBuilder`) and native functions of rule files
/// (`FunctionTable.register(matchFunction:arity:kinds:_:)`) get one.
public struct MatchView {
    /// The match, by variable index.
    public let match: Match
    /// The value variables' names, by index (`Pattern.valueNames`).
    public let valueNames: [String]
    /// The attribute variables' names, by index (`Pattern.attributeNames`).
    public let attributeNames: [String]
    /// The run's facts (opset versions, whether initializer inputs count as constants).
    public let context: RewriteContext

    /// A view of `match` of a pattern with these variable names.
    public init(match: Match, valueNames: [String], attributeNames: [String], context: RewriteContext) {
        self.match = match
        self.valueNames = valueNames
        self.attributeNames = attributeNames
        self.context = context
    }

    /// A view of `match` of `pattern`.
    public init(match: Match, pattern: Pattern, context: RewriteContext) {
        self.init(match: match, valueNames: pattern.valueNames, attributeNames: pattern.attributeNames, context: context)
    }

    /// The graph value bound to the value variable `name`; nil when there is no such variable,
    /// or it is an optional input the node lacks.
    public func value(named name: String) -> Value? {
        valueNames.firstIndex(of: name).flatMap { match.value($0) }
    }

    /// The value of the attribute variable `name` (or its default); nil when there is none.
    public func attribute(named name: String) -> AttributeValue? {
        attributeNames.firstIndex(of: name).flatMap { match.attributes[$0] }
    }

    /// The constant the value variable `name` is bound to (an initializer that is not a graph
    /// input unless the run freezes those, or a `Constant` node's tensor); nil otherwise.
    public func constant(named name: String) -> Tensor? {
        value(named: name)?.constantTensor(freezeInitializerInputs: context.freezeInitializerInputs)
    }

    /// The graph nodes matched, in pattern order.
    public var nodes: [Node] { match.matchedNodes }
}
