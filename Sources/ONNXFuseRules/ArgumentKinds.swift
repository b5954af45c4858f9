import ONNXFuseIR

/// What an argument of a function must be (`FunctionTable.register`'s `kinds`), checked when a
/// rule file is loaded for the arguments written as literals (a string, a boolean, a number, a
/// list or a data type name), so that `cast(w, 11)` or `reshape(w, "a")` is an error of the file,
/// naming the argument, before any model is read. Arguments computed from the match are checked
/// when the rule runs.
public enum ArgumentKind: Sendable {
    /// A tensor, a number (rank 0) or a list of numbers.
    case tensor
    /// A list of integers, an integer tensor or one integer (shapes, axes, permutations).
    case integers
    /// One integer.
    case integer
    /// One number.
    case number
    /// A list (or a tensor read as one).
    case list
    /// A data type name (`float`) or a string naming one.
    case dataType
    /// A string.
    case string
    /// Anything.
    case any

    /// How the kind is named in errors.
    var described: String {
        switch self {
        case .tensor: return "a tensor (or a number, or a list of numbers)"
        case .integers: return "a list of integers"
        case .integer: return "an integer"
        case .number: return "a number"
        case .list: return "a list"
        case .dataType: return "a data type such as float or int64"
        case .string: return "a string"
        case .any: return "anything"
        }
    }

    /// The problem with `argument` as this kind when it is a literal ("the string "a""), or nil
    /// when it fits or is not a literal. `isVariable` tells a variable from a data type name.
    func problem(with argument: Expression, isVariable: (String) -> Bool) -> String? {
        guard let literal = LiteralKind(argument, isVariable: isVariable) else { return nil }
        let fits: Bool
        switch self {
        case .any: fits = true
        case .tensor: fits = [.integer, .real, .list].contains(literal.kind)
        case .integers: fits = literal.kind == .integer || literal.kind == .list && !literal.listHasNonInteger
        case .integer: fits = literal.kind == .integer
        case .number: fits = literal.kind == .integer || literal.kind == .real
        case .list: fits = literal.kind == .list
        case .dataType: fits = literal.kind == .dataType || literal.kind == .string
        case .string: fits = literal.kind == .string
        }
        return fits ? nil : literal.described
    }
}

/// What a literal argument is.
struct LiteralKind {
    enum Kind { case integer, real, string, boolean, list, dataType }
    var kind: Kind
    /// How errors name it: "the number 1.5", "the string "a"".
    var described: String
    /// A list literal with an item that is not an integer literal (a real, a string...).
    var listHasNonInteger = false

    init?(_ expression: Expression, isVariable: (String) -> Bool) {
        switch expression {
        case .number(let value, let integer, _):
            kind = integer == nil ? .real : .integer
            described = "the number \(integer.map(String.init) ?? String(value))"
        case .unary(.negate, .number, _):
            guard let inner = LiteralKind(expression.children[0], isVariable: isVariable) else { return nil }
            self = inner
            described = "the number -" + inner.described.dropFirst("the number ".count)
        case .string(let text, _):
            kind = .string
            described = "the string \"\(text)\""
        case .boolean(let flag, _):
            kind = .boolean
            described = "the boolean \(flag)"
        case .list(let items, _):
            kind = .list
            described = "the list \(expression)"
            listHasNonInteger = items.contains { item in
                guard let literal = LiteralKind(item, isVariable: isVariable) else { return false }
                return literal.kind != .integer
            }
        case .name(let name, _) where !isVariable(name) && DataType(name: name) != nil:
            kind = .dataType
            described = "the data type \(name)"
        default:
            return nil
        }
    }
}
