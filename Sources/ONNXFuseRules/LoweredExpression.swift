import ONNXFuseIR

/// A `where`, `compute` or attribute expression with its names and functions resolved once,
/// when the rule is compiled: the form `RuleProgram.Scope` evaluates, so that a match looks up
/// no name or function by its text.
indirect enum LoweredExpression {
    /// A number, string or boolean literal's value.
    case literal(EvalValue)
    /// A value variable of the match: its index in `Match.values`, and its name.
    case valueVariable(Int, String)
    /// An attribute variable of the match: its index in `Match.attributes`, and its name.
    case attributeVariable(Int, String)
    /// A `compute` assignment's name: its slot in `Scope.computed`. Read before it is assigned,
    /// the name means what it would without the assignment (a data type's name, or nothing).
    case computed(Int, String)
    /// A data type's name, such as `float`.
    case dataType(DataType)
    /// A name that nothing defines: an error when evaluated.
    case undefined(String)
    /// `[a, b]`.
    case list([LoweredExpression])
    /// `-x`, `!x`.
    case unary(UnaryOperator, LoweredExpression)
    /// `a op b`.
    case binary(BinaryOperator, LoweredExpression, LoweredExpression)
    /// A graph function (`constant`, `shape`, `dim`, ...) reading values of the match: what
    /// each argument names, and the arguments (`dim`'s axis is evaluated).
    case graphCall(GraphFunction, [GraphArgument], [LoweredExpression])
    /// `opset()` or `opset(domain)`.
    case opset([LoweredExpression])
    /// A function of the rule's table, its arguments evaluated first.
    case call(ResolvedFunction, [LoweredExpression])

    /// The functions that read values of the match (`graphValueFunctions`).
    enum GraphFunction: String {
        case constant, unused, users, absent, rank, shape, dim, numel, dtype
    }

    /// What an argument of a graph function names.
    enum GraphArgument {
        /// A value variable: its index in `Match.values`, and its name.
        case value(Int, String)
        /// An attribute variable: its index in `Match.attributes`, and its name.
        case attribute(Int, String)
        /// A `compute` assignment's name: its slot, and the name.
        case computed(Int, String)
        /// Another name.
        case other(String)
        /// Not a name (`dim`'s axis).
        case notAName
    }

    /// Whether evaluating this counts the elements of its result as work (see `Scope.charge`):
    /// operations, calls and lists make a value; a name's or literal's exists already.
    var makesValue: Bool {
        switch self {
        case .literal, .valueVariable, .attributeVariable, .computed, .dataType, .undefined: return false
        case .list, .unary, .binary, .graphCall, .opset, .call: return true
        }
    }

    /// At most how many answers of the graph evaluating this records (`Scope.tape`): one per
    /// value variable, graph call and `opset` (a graph call's arguments are not recorded).
    var tapeEntryBound: Int {
        switch self {
        case .literal, .attributeVariable, .computed, .dataType, .undefined: return 0
        case .valueVariable, .graphCall: return 1
        case .list(let items): return items.reduce(0) { $0 + $1.tapeEntryBound }
        case .call(let function, let items): return items.reduce(function.seesMatch ? 1 : 0) { $0 + $1.tapeEntryBound }
        case .opset(let arguments): return arguments.reduce(1) { $0 + $1.tapeEntryBound }
        case .unary(_, let operand): return operand.tapeEntryBound
        case .binary(_, let lhs, let rhs): return lhs.tapeEntryBound + rhs.tapeEntryBound
        }
    }

    /// Whether this is a call (a refusal then gives the call's own reason).
    var isCall: Bool {
        switch self {
        case .graphCall, .opset, .call: return true
        default: return false
        }
    }
}

extension RuleProgram {
    /// `expression` with its names resolved against this rule's variables and assignments
    /// (`computeSlots`), and its calls against `functions`.
    static func lower(_ expression: Expression, valueVariables: [String: Int], attributeVariables: [String: Int],
                      computeSlots: [String: Int], functions: FunctionTable) -> LoweredExpression {
        func lower(_ expression: Expression) -> LoweredExpression {
            switch expression {
            case .number(let value, let integer, _):
                return .literal(integer.map { .integer($0) } ?? .real(value))
            case .string(let text, _):
                return .literal(.string(text))
            case .boolean(let flag, _):
                return .literal(.boolean(flag))
            case .name(let name, _):
                // The order `lookup` gave names before they were resolved.
                if let index = valueVariables[name] { return .valueVariable(index, name) }
                if let index = attributeVariables[name] { return .attributeVariable(index, name) }
                if let slot = computeSlots[name] { return .computed(slot, name) }
                if let type = DataType(name: name) { return .dataType(type) }
                return .undefined(name)
            case .list(let items, _):
                return .list(items.map(lower))
            case .unary(let op, let operand, _):
                return .unary(op, lower(operand))
            case .binary(let op, let lhs, let rhs, _):
                return .binary(op, lower(lhs), lower(rhs))
            case .call(let name, let arguments, _):
                if callReadsGraph(name, arguments, isMatchValue: { valueVariables[$0] != nil }) {
                    let named = arguments.map { argument -> LoweredExpression.GraphArgument in
                        guard case .name(let name, _) = argument else { return .notAName }
                        if let index = valueVariables[name] { return .value(index, name) }
                        if let index = attributeVariables[name] { return .attribute(index, name) }
                        if let slot = computeSlots[name] { return .computed(slot, name) }
                        return .other(name)
                    }
                    // `callReadsGraph` holds only for the names of `graphValueFunctions`.
                    return .graphCall(LoweredExpression.GraphFunction(rawValue: name)!, named, arguments.map(lower))
                }
                if name == "opset" { return .opset(arguments.map(lower)) }
                return .call(functions.resolve(name), arguments.map(lower))
            }
        }
        return lower(expression)
    }
}
