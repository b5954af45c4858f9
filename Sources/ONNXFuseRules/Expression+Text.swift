extension Expression: CustomStringConvertible {
    /// The expression as it would be written in a rule (with the parentheses it needs).
    public var description: String { text(precedence: 0) }

    private static func precedence(_ op: BinaryOperator) -> Int {
        switch op {
        case .or: return 1
        case .and: return 2
        case .equal, .notEqual, .less, .lessOrEqual, .greater, .greaterOrEqual, .in: return 3
        case .concatenate: return 4
        case .add, .subtract: return 5
        case .multiply, .divide: return 6
        }
    }

    private func text(precedence outer: Int) -> String {
        switch self {
        case .number(let value, let integer, _):
            return integer.map { String($0) } ?? String(value)
        case .string(let value, _):
            var escaped = "\""
            for character in value {
                switch character {
                case "\"": escaped += "\\\""
                case "\\": escaped += "\\\\"
                case "\n": escaped += "\\n"
                default: escaped.append(character)
                }
            }
            return escaped + "\""
        case .boolean(let value, _):
            return value ? "true" : "false"
        case .name(let name, _):
            return name
        case .call(FunctionTable.indexFunction, let arguments, _) where arguments.count == 2:
            return arguments[0].text(precedence: 8) + "[" + arguments[1].text(precedence: 0) + "]"
        case .call(FunctionTable.sliceFunction, let arguments, _) where arguments.count == 3:
            return arguments[0].text(precedence: 8) + "[" + arguments[1].text(precedence: 0) + ":" + arguments[2].text(precedence: 0) + "]"
        case .call(FunctionTable.missingBound, _, _):
            return ""
        case .call(let name, let arguments, _):
            return name + "(" + arguments.map { $0.text(precedence: 0) }.joined(separator: ", ") + ")"
        case .list(let items, _):
            return "[" + items.map { $0.text(precedence: 0) }.joined(separator: ", ") + "]"
        case .unary(let op, let operand, _):
            return op.rawValue + operand.text(precedence: 7)
        case .binary(let op, let lhs, let rhs, _):
            let p = Self.precedence(op)
            let body = lhs.text(precedence: p) + " " + op.rawValue + " " + rhs.text(precedence: p + 1)
            return p < outer ? "(" + body + ")" : body
        }
    }

    /// The conditions an `&&` chain is made of, in order (the expression itself otherwise).
    var conjuncts: [Expression] {
        if case .binary(.and, let lhs, let rhs, _) = self { return lhs.conjuncts + rhs.conjuncts }
        return [self]
    }
}
