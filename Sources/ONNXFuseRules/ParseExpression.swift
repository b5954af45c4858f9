/// Expressions of `where`, `compute` and attribute values. From loosest to tightest:
/// `||`; `&&`; `== != < <= > >= in` (non-associative); `++`; `+ -`; `* /`; unary `-` `!`;
/// calls. Binary operators other than comparisons associate to the left.
extension Parser {
    mutating func parseExpression() throws(SyntaxFailure) -> Expression {
        let outermost = expressionDepth == 0
        let expression = try parseBinary(above: 0)
        // A flat chain (`a && b && ...`) nests without recursion here, but every walk of the
        // tree afterwards recurses once per level: the whole tree's depth is bounded too.
        if outermost, Self.isDeeper(expression, than: Self.maximumTreeDepth) {
            throw failure("expression more than \(Self.maximumTreeDepth) levels deep (a chain of that many operators); split it into lines of the guard or use lists",
                          at: expression.location)
        }
        return expression
    }

    /// Whether `expression`'s tree is deeper than `limit`, found without recursion.
    static func isDeeper(_ expression: Expression, than limit: Int) -> Bool {
        var stack: [(Expression, Int)] = [(expression, 1)]
        while let (node, depth) = stack.popLast() {
            if depth > limit { return true }
            stack += node.children.map { ($0, depth + 1) }
        }
        return false
    }

    /// Binding strength of a binary operator, loosest first.
    private enum Level: Int {
        case or = 1, and, comparison, concatenation, addition, multiplication
    }

    /// The binary operator at the next token, if any, and its level. `in` is an operator only
    /// here, in operator position; `>` is none at the top level of an attribute value, where it
    /// closes `<...>`.
    private mutating func binaryOperator() -> (BinaryOperator, Level)? {
        switch peek().kind {
        case .symbol(.or): return (.or, .or)
        case .symbol(.and): return (.and, .and)
        case .symbol(.equal): return (.equal, .comparison)
        case .symbol(.notEqual): return (.notEqual, .comparison)
        case .symbol(.less): return (.less, .comparison)
        case .symbol(.lessOrEqual): return (.lessOrEqual, .comparison)
        case .symbol(.greater): return inAttributeValue ? nil : (.greater, .comparison)
        case .symbol(.greaterOrEqual): return (.greaterOrEqual, .comparison)
        case .identifier("in"): return (.in, .comparison)
        case .symbol(.concatenate): return (.concatenate, .concatenation)
        case .symbol(.plus): return (.add, .addition)
        case .symbol(.minus): return (.subtract, .addition)
        case .symbol(.star): return (.multiply, .multiplication)
        case .symbol(.slash): return (.divide, .multiplication)
        default: return nil
        }
    }

    /// Operands joined by operators binding tighter than `level` (precedence climbing): each
    /// level groups to the left, except comparisons, which do not chain. A line that ends with
    /// an operator goes on.
    private mutating func parseBinary(above level: Int) throws(SyntaxFailure) -> Expression {
        let start = location(peek())
        var left = try parseUnary()
        var chained = 0
        while let (op, opLevel) = binaryOperator(), opLevel.rawValue > level {
            // Each operator of a flat chain nests the tree one level deeper: stop before it is
            // too deep to release (Swift frees a chain of indirect enums recursively).
            chained += 1
            if chained >= Self.maximumTreeDepth {
                throw failure("expression more than \(Self.maximumTreeDepth) levels deep (a chain of that many operators); split it into lines of the guard or use lists",
                              at: start)
            }
            let opToken = advance()
            skipNewlines()
            let right = try parseBinary(above: opLevel.rawValue)
            left = .binary(op, left, right, start)
            if opLevel == .comparison, let (_, next) = binaryOperator(), next == .comparison {
                let second = peek()
                throw failure(
                    "comparisons do not chain: expected '&&', '||' or parentheses before '\(second.text)' "
                        + "(after '\(opToken.text)')",
                    at: location(second)
                )
            }
        }
        // `|` separates the alternatives of a match line; in an expression it is a typo for `||`.
        if peek().isSymbol(.bar) {
            throw failure("unexpected character '|', expected '||'", at: location(peek()))
        }
        return left
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
        default: return try parsePostfix()
        }
        advance()
        let operand = try parseUnary()
        return .unary(op, operand, location(token))
    }

    /// A primary expression followed by any number of indexes `[i]` and slices `[s:e]` (either
    /// bound may be left out), on the same line.
    private mutating func parsePostfix() throws(SyntaxFailure) -> Expression {
        var expression = try parsePrimary()
        while case .symbol(.leftBracket) = peek().kind {
            let open = advance()
            let at = location(open)
            let saved = enterBrackets()
            func missing() -> Expression { .call(FunctionTable.missingBound, [], at) }
            let first: Expression = if case .symbol(.colon) = peek().kind { missing() } else { try parseExpression() }
            if accept(.colon) != nil {
                let second: Expression = if case .symbol(.rightBracket) = peek().kind { missing() } else { try parseExpression() }
                expression = .call(FunctionTable.sliceFunction, [expression, first, second], at)
            } else {
                expression = .call(FunctionTable.indexFunction, [expression, first], at)
            }
            try expect(.rightBracket, "']' to close the '[' at line \(open.line), column \(open.column)")
            leaveBrackets(saved)
        }
        return expression
    }

    /// A literal, a name, a call `f(a, b)`, a list `[a, b]` or `(expression)`.
    private mutating func parsePrimary() throws(SyntaxFailure) -> Expression {
        let token = peek()
        let at = location(token)
        switch token.kind {
        case .number(let value, let integer):
            advance()
            return .number(value, integer: integer, at)
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
            let saved = enterBrackets()
            let inner = try parseExpression()
            try expect(.rightParen, "')' to close the '(' at line \(token.line), column \(token.column)")
            leaveBrackets(saved)
            return inner
        default:
            throw failure(expected: "an expression")
        }
    }

    /// `a, b, c` up to `closing` (already past the opening bracket); may be empty.
    private mutating func parseBracketed(closing: Symbol, _ what: String) throws(SyntaxFailure) -> [Expression] {
        let saved = enterBrackets()
        var items: [Expression] = []
        if accept(closing) == nil {
            repeat {
                items.append(try parseExpression())
            } while accept(.comma) != nil
            try expect(closing, what)
        }
        leaveBrackets(saved)
        return items
    }

    /// Inside brackets newlines are blanks and `>` is an operator again. Returns what
    /// `leaveBrackets` restores (after an error, `synchronize` resets both).
    private mutating func enterBrackets() -> Bool {
        let saved = inAttributeValue
        inAttributeValue = false
        nesting += 1
        return saved
    }

    private mutating func leaveBrackets(_ saved: Bool) {
        nesting -= 1
        inAttributeValue = saved
    }
}
