/// Expressions of `where`, `compute` and attribute values. From loosest to tightest:
/// `||`; `&&`; `== != < <= > >= in` (non-associative); `++`; `+ -`; `* /`; unary `-` `!`;
/// calls. Binary operators other than comparisons associate to the left.
extension Parser {
    mutating func parseExpression() throws(SyntaxFailure) -> Expression {
        try parseLeftAssociative(operators: [.or: .or]) { (p: inout Parser) throws(SyntaxFailure) in
            try p.parseLeftAssociative(operators: [.and: .and]) { (p: inout Parser) throws(SyntaxFailure) in
                try p.parseComparison()
            }
        }
    }

    /// `operand (op operand)*`, grouped to the left; a line ending with `op` goes on.
    private mutating func parseLeftAssociative(
        operators: [Symbol: BinaryOperator],
        operand: (inout Parser) throws(SyntaxFailure) -> Expression
    ) throws(SyntaxFailure) -> Expression {
        let start = location(peek())
        var left = try operand(&self)
        while case .symbol(let symbol) = peek().kind, let op = operators[symbol] {
            advance()
            skipNewlines()
            let right = try operand(&self)
            left = .binary(op, left, right, start)
        }
        return left
    }

    /// `a OP b` with one comparison at most: `a < b < c` is an error.
    private mutating func parseComparison() throws(SyntaxFailure) -> Expression {
        let start = location(peek())
        let left = try parseConcatenation()
        guard let op = comparisonOperator() else { return left }
        let opToken = advance()
        skipNewlines()
        let right = try parseConcatenation()
        if comparisonOperator() != nil {
            let second = peek()
            throw failure(
                "comparisons do not chain: expected '&&', '||' or parentheses before '\(second.text)' "
                    + "(after '\(opToken.text)')",
                at: location(second)
            )
        }
        return .binary(op, left, right, start)
    }

    /// The comparison operator at the next token, if any (`in` only here, in operator position;
    /// `>` not at the top level of an attribute value, where it closes `<...>`).
    private mutating func comparisonOperator() -> BinaryOperator? {
        let token = peek()
        switch token.kind {
        case .symbol(.equal): return .equal
        case .symbol(.notEqual): return .notEqual
        case .symbol(.less): return .less
        case .symbol(.lessOrEqual): return .lessOrEqual
        case .symbol(.greater): return inAttributeValue ? nil : .greater
        case .symbol(.greaterOrEqual): return .greaterOrEqual
        case .identifier("in"): return .in
        default: return nil
        }
    }

    private mutating func parseConcatenation() throws(SyntaxFailure) -> Expression {
        try parseLeftAssociative(operators: [.concatenate: .concatenate]) { (p: inout Parser) throws(SyntaxFailure) in
            try p.parseLeftAssociative(operators: [.plus: .add, .minus: .subtract]) {
                (p: inout Parser) throws(SyntaxFailure) in
                try p.parseLeftAssociative(operators: [.star: .multiply, .slash: .divide]) {
                    (p: inout Parser) throws(SyntaxFailure) in
                    try p.parseUnary()
                }
            }
        }
    }

    /// `-x`, `!x`, or a primary expression.
    private mutating func parseUnary() throws(SyntaxFailure) -> Expression {
        let token = peek()
        expressionDepth += 1
        defer { expressionDepth -= 1 }
        if expressionDepth > Self.maximumExpressionDepth {
            throw failure("expression nested too deeply (more than \(Self.maximumExpressionDepth) levels)", at: location(token))
        }
        let op: UnaryOperator
        switch token.kind {
        case .symbol(.minus): op = .negate
        case .symbol(.bang): op = .not
        default: return try parsePrimary()
        }
        advance()
        let operand = try parseUnary()
        return .unary(op, operand, location(token))
    }

    /// A literal, a name, a call `f(a, b)`, a list `[a, b]` or `(expression)`.
    private mutating func parsePrimary() throws(SyntaxFailure) -> Expression {
        let token = peek()
        let at = location(token)
        switch token.kind {
        case .number(let value, let isInteger):
            advance()
            return .number(value, isInteger: isInteger, at)
        case .string(let value):
            advance()
            return .string(value, at)
        case .identifier("true"):
            advance()
            return .boolean(true, at)
        case .identifier("false"):
            advance()
            return .boolean(false, at)
        case .identifier(let name) where name != "_":
            advance()
            guard accept(.leftParen) != nil else { return .name(name, at) }
            let arguments = try parseBracketed(closing: .rightParen, "')' after the arguments of \(name)")
            return .call(name, arguments, at)
        case .symbol(.leftBracket):
            advance()
            let elements = try parseBracketed(closing: .rightBracket, "']' after the elements of the list")
            return .list(elements, at)
        case .symbol(.leftParen):
            advance()
            let inner = try nested { (p: inout Parser) throws(SyntaxFailure) in
                let inner = try p.parseExpression()
                try p.expect(.rightParen, "')' to close the '(' at line \(token.line), column \(token.column)")
                return inner
            }
            return inner
        default:
            throw failure(expected: "an expression")
        }
    }

    /// `a, b, c` up to `closing` (already past the opening bracket); may be empty.
    private mutating func parseBracketed(
        closing: Symbol, _ what: String
    ) throws(SyntaxFailure) -> [Expression] {
        try nested { (p: inout Parser) throws(SyntaxFailure) in
            var items: [Expression] = []
            if p.accept(closing) != nil { return items }
            repeat {
                items.append(try p.parseExpression())
            } while p.accept(.comma) != nil
            try p.expect(closing, what)
            return items
        }
    }

    /// Runs `body` inside brackets: newlines are blanks and `>` is an operator again.
    private mutating func nested<T>(
        _ body: (inout Parser) throws(SyntaxFailure) -> T
    ) throws(SyntaxFailure) -> T {
        let saved = inAttributeValue
        inAttributeValue = false
        nesting += 1
        let result = try body(&self)
        nesting -= 1
        inAttributeValue = saved
        return result
    }
}
