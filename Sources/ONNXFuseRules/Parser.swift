import ONNXFuseOps

/// Every syntax error of a rule file, in source order.
public struct RuleErrors: Error, Equatable, CustomStringConvertible {
    /// The errors, sorted by line and column.
    public var errors: [RuleError]

    /// Errors as found.
    public init(_ errors: [RuleError]) {
        self.errors = errors
    }

    /// Errors as found.
    public init(errors: [RuleError]) {
        self.errors = errors
    }

    /// One `file:line:column: message` per line.
    public var description: String {
        errors.map(\.description).joined(separator: "\n")
    }
}

/// Parses rule-file text (see `docs/rules.md`). `file` names it in locations and errors.
///
/// Reports every syntax error it can: after an error the parser skips to the end of the line
/// (or to the next `rule`) and goes on, so one call lists all of a file's mistakes.
public func parseRules(_ text: String, file: String = "<string>") throws(RuleErrors) -> RuleFileSyntax {
    let (syntax, errors) = parseRulesCollectingErrors(text, file: file)
    if !errors.isEmpty { throw RuleErrors(errors) }
    return syntax
}

/// Parses rule-file text, keeping going after errors: the rules parsed without an error, and
/// every syntax error in file order. The rules can then be checked further (unknown functions,
/// undefined names), so that one pass reports every error of the file.
public func parseRulesCollectingErrors(_ text: String, file: String = "<string>") -> (syntax: RuleFileSyntax, errors: [RuleError]) {
    var parser = Parser(text: text, file: file)
    let rules = parser.parseFile()
    return (RuleFileSyntax(file: file, rules: rules), sortedByLocation(parser.errors))
}

/// Errors in file order (line, then column; ties keep their order).
public func sortedByLocation(_ errors: [RuleError]) -> [RuleError] {
    errors.enumerated().sorted { a, b in
        let (l, r) = (a.element.location, b.element.location)
        return (l.line, l.column, a.offset) < (r.line, r.column, b.offset)
    }.map(\.element)
}

/// Thrown inside the parser once an error has been recorded, to unwind to the line's start.
struct SyntaxFailure: Error {}

/// The four kinds of block inside a rule.
enum BlockKind: String {
    case match, `where`, compute, replace
}

/// A recursive-descent parser over an on-demand `Lexer`. Newlines end lines except inside
/// `(...)`, `[...]` and `<...>` (`nesting > 0`) and after a binary operator.
struct Parser {
    let file: String
    var lexer: Lexer
    /// The next token (newlines included; `peek()` skips them when nested).
    var current: Token
    /// The last token consumed that is not a newline.
    var previous: Token?
    /// Open `(`, `[` and `<` around the current position.
    var nesting = 0
    /// Inside an attribute value of `<...>`: a top-level `>` closes the list.
    var inAttributeValue = false
    /// Depth of nested expressions, bounded so deep nesting is an error, not a stack overflow.
    var expressionDepth = 0
    /// Offset where the line being parsed starts: errors at a token on a later line than the
    /// previous one point just after the previous token, when that is inside this line.
    var statementStart = 0
    /// Everything reported so far.
    var errors: [RuleError] = []

    /// Deepest expression nesting (each unary operator, bracket and call counts). Each level
    /// takes a few kilobytes of stack, so this keeps parsing safe on a 512 KB thread.
    static let maximumExpressionDepth = 64
    /// The deepest an expression tree may be, counting operators chained without parentheses.
    static let maximumTreeDepth = 512

    init(text: String, file: String) {
        self.file = file
        lexer = Lexer(text)
        current = lexer.next()
    }

    // MARK: - Tokens

    /// The next token; newlines are skipped inside brackets.
    mutating func peek() -> Token {
        while nesting > 0, current.kind == .newline {
            current = lexer.next()
        }
        return current
    }

    /// The token after the next one, on the same line or not (only used outside brackets).
    func peekSecond() -> Token {
        var copy = lexer
        return copy.next()
    }

    /// Consumes and returns the next token.
    @discardableResult
    mutating func advance() -> Token {
        let token = peek()
        if token.kind != .newline { previous = token }
        if token.kind != .end { current = lexer.next() }
        return token
    }

    /// Consumes the next token when it is `symbol`.
    mutating func accept(_ symbol: Symbol) -> Token? {
        peek().isSymbol(symbol) ? advance() : nil
    }

    /// Consumes the next token, which must be `symbol`; otherwise reports `expected what`.
    @discardableResult
    mutating func expect(_ symbol: Symbol, _ what: @autoclosure () -> String) throws(SyntaxFailure) -> Token {
        if let token = accept(symbol) { return token }
        throw failure(expected: what())
    }

    /// Skips newlines (after a binary operator, a line goes on).
    mutating func skipNewlines() {
        while current.kind == .newline { current = lexer.next() }
    }

    /// True at a newline, `;`, `}` or the end: the end of a line of a block.
    mutating func atLineEnd() -> Bool {
        let token = peek()
        return token.kind == .newline || token.kind == .end || token.isSymbol(.semicolon)
            || token.isSymbol(.rightBrace)
    }

    func location(_ token: Token) -> SourceLocation {
        SourceLocation(file: file, line: token.line, column: token.column)
    }

    /// Just past `token`.
    func endLocation(_ token: Token) -> SourceLocation {
        SourceLocation(file: file, line: token.line, column: token.endColumn)
    }

    // MARK: - Errors

    /// Records an error and returns the failure to throw.
    mutating func failure(_ message: String, at location: SourceLocation) -> SyntaxFailure {
        errors.append(RuleError(message, at: location))
        return SyntaxFailure()
    }

    /// Records "expected `what`, found X" for the next token and returns the failure to throw.
    /// A token the lexer could not read reports the lexer's own message instead.
    mutating func failure(expected what: String) -> SyntaxFailure {
        let token = peek()
        if case .invalid(let message) = token.kind {
            return failure(message, at: location(token))
        }
        return failure("expected \(what), found \(token.quoted)", at: errorLocation(token))
    }

    /// Where a missing piece belongs: at `token`, or just after the previous token of the same
    /// line when `token` is the line's end or lies on a later line.
    func errorLocation(_ token: Token) -> SourceLocation {
        if let previous, previous.start >= statementStart,
           token.kind == .newline || token.kind == .end || token.line != previous.line {
            return endLocation(previous)
        }
        return location(token)
    }

    /// After an error in a line: resumes at the next line (or `;`, or the `}` that closes the
    /// block). When the error was found at the first token of a later line (a bracket left open),
    /// resumes right there.
    mutating func synchronize(afterLine line: Int) {
        nesting = 0
        inAttributeValue = false
        expressionDepth = 0
        var braces = 0
        if current.isFirstOnLine, current.line > line { return }
        while true {
            let token = current
            switch token.kind {
            case .newline, .end:
                return
            case .symbol(.semicolon) where braces == 0:
                return
            case .symbol(.leftBrace):
                braces += 1
            case .symbol(.rightBrace):
                if braces == 0 { return }
                braces -= 1
            default:
                break
            }
            advance()
        }
    }

    /// Starts a new line (for `errorLocation`).
    mutating func beginStatement() {
        statementStart = peek().start
    }

    /// Skips empty lines and `;` separators, starts the statement at the token after them
    /// and returns that token (not consumed).
    mutating func nextStatement() -> Token {
        while true {
            let token = peek()
            guard token.kind == .newline || token.isSymbol(.semicolon) else {
                beginStatement()
                return token
            }
            advance()
        }
    }

    // MARK: - File

    mutating func parseFile() -> [RuleSyntax] {
        var rules: [RuleSyntax] = []
        while true {
            let token = peek()
            beginStatement()
            switch token.kind {
            case .end:
                return rules
            case .newline:
                advance()
            case .identifier("rule"):
                // A rule with a syntax error is left out: checking it further would report
                // errors that only follow from the first.
                let known = errors.count
                if let rule = parseRule(), errors.count == known { rules.append(rule) }
            default:
                _ = failure(expected: "'rule' to start a rule, such as 'rule my-rule { ... }'")
                skipToNextRule()
            }
        }
    }

    /// Skips to the next `rule` that starts a line.
    mutating func skipToNextRule() {
        advance()
        while true {
            let token = peek()
            if token.kind == .end || (token.isIdentifier("rule") && token.isFirstOnLine) { return }
            advance()
        }
    }

    /// True when the next token is `rule` starting a line and followed by a name: a new rule,
    /// so whatever was open before it was left unclosed.
    mutating func atNextRule() -> Bool {
        let token = peek()
        guard token.isIdentifier("rule"), token.isFirstOnLine else { return false }
        let next = peekSecond()
        guard next.line == token.line else { return false }
        switch next.kind {
        case .identifier, .number, .invalid: return true
        default: return false
        }
    }

    // MARK: - Rule

    /// What has been read of a rule so far.
    struct RuleParts {
        var benefit: Int?
        var commutative: [String] = []
        var blocks: [BlockKind: Token] = [:]
        var matchBlocks: [MatchBlockSyntax] = []
        var items: [ItemMatchSyntax] = []
        var guards: [Expression] = []
        var computes: [Assignment] = []
        var replacements: [Replacement] = []
        /// Blocks with an error in them (an empty match then is no news).
        var broken: Set<BlockKind> = []
    }

    /// `rule NAME { ... }`; nil when the rule is too broken to return (errors are recorded).
    mutating func parseRule() -> RuleSyntax? {
        let ruleToken = advance()
        var comment: [String] = []
        if ruleToken.isFirstOnLine {
            var line = ruleToken.line - 1
            while let text = lexer.lineComments[line] {
                comment.insert(text, at: 0)
                line -= 1
            }
        }

        let candidate = peek()
        guard candidate.line == ruleToken.line, let nameToken = lexer.ruleName(at: candidate) else {
            _ = failure(expected: "a rule name after 'rule' (letters, digits, '-' and '_')")
            skipToNextRule()
            return nil
        }
        current = nameToken
        advance()
        let name = nameToken.text
        guard peek().isSymbol(.leftBrace) else {
            _ = failure(expected: "'{' after the name of rule '\(name)'")
            skipToNextRule()
            return nil
        }
        advance()

        var parts = RuleParts()
        while true {
            let token = nextStatement()
            switch token.kind {
            case .symbol(.rightBrace):
                advance()
                return finishRule(name: name, ruleToken: ruleToken, closing: token, comment: comment, parts: parts)
            case .end:
                let at = previous.map(endLocation) ?? location(token)
                _ = failure("expected '}' at the end of rule '\(name)' (opened at line \(ruleToken.line))", at: at)
                return nil
            default:
                if atNextRule() {
                    _ = failure("expected '}' to close rule '\(name)' before the next rule", at: location(token))
                    return nil
                }
                do {
                    try parseRuleItem(rule: name, into: &parts)
                } catch {
                    synchronize(afterLine: token.line)
                }
            }
        }
    }

    /// Checks the required blocks and builds the rule.
    mutating func finishRule(
        name: String, ruleToken: Token, closing: Token, comment: [String], parts: RuleParts
    ) -> RuleSyntax {
        let at = location(ruleToken)
        for required in [BlockKind.match, .replace] where parts.blocks[required] == nil {
            _ = failure("rule '\(name)' has no \(required) block, expected '\(required) { ... }'", at: at)
        }
        if parts.items.isEmpty, !parts.broken.contains(.match) {
            for block in parts.matchBlocks where block.lines.isEmpty {
                _ = failure("expected at least one node pattern in the match block of rule '\(name)'", at: block.location)
            }
        }
        var rule = RuleSyntax(
            name: name,
            location: at,
            comment: comment,
            text: lexer.text(from: ruleToken.start, to: closing.end),
            benefit: parts.benefit ?? 1,
            commutative: parts.commutative,
            matchBlocks: parts.matchBlocks,
            guards: parts.guards,
            computes: parts.computes,
            replacements: parts.replacements
        )
        rule.items = parts.items
        return rule
    }

    /// One item of a rule's body: `benefit`, `commute` or a block.
    mutating func parseRuleItem(rule: String, into parts: inout RuleParts) throws(SyntaxFailure) {
        let token = peek()
        let items = "benefit, commute, match, where, compute or replace"
        guard let word = token.identifier else {
            throw failure(expected: "\(items) or '}' in rule '\(rule)'")
        }
        if let kind = BlockKind(rawValue: word) {
            advance()
            if kind == .match {
                // Each match block is a form of the rule: several are alternatives.
                parts.blocks[kind] = parts.blocks[kind] ?? token
                parts.matchBlocks.append(MatchBlockSyntax(lines: [], location: location(token)))
                let known = errors.count
                defer { if errors.count > known { parts.broken.insert(kind) } }
                try parseBlock(kind, keyword: token, rule: rule, into: &parts)
            } else if parts.blocks[kind] != nil {
                _ = failure("rule '\(rule)' has more than one \(word) block", at: location(token))
                var ignored = RuleParts()
                try parseBlock(kind, keyword: token, rule: rule, into: &ignored)
            } else {
                parts.blocks[kind] = token
                let known = errors.count
                defer { if errors.count > known { parts.broken.insert(kind) } }
                try parseBlock(kind, keyword: token, rule: rule, into: &parts)
            }
            return
        }
        switch word {
        case "benefit":
            advance()
            let negative = accept(.minus) != nil
            let number = peek()
            guard case .number(_, integer: _?) = number.kind, let value = Int(number.text) else {
                throw failure(expected: "an integer after 'benefit'")
            }
            advance()
            if parts.benefit != nil {
                _ = failure("rule '\(rule)' has more than one benefit", at: location(token))
            }
            parts.benefit = negative ? -value : value
        case "commute":
            advance()
            repeat {
                let op = peek()
                guard let name = op.identifier, name != "_" else {
                    throw failure(expected: "an operator name after \(previous?.isSymbol(.comma) == true ? "','" : "'commute'")")
                }
                advance()
                // Swapping the inputs of Sub or Div changes what they compute: only operators
                // whose first two inputs are interchangeable may commute (an operator the schemas
                // do not know, of another domain, is the rule's business).
                if !OperatorRegistry.commutativeOperators.contains(name) && !OperatorSchemas.versions(of: name, domain: "").isEmpty {
                    _ = failure("commute \(name): \(name)'s inputs are not interchangeable (commute names "
                                + OperatorRegistry.commutativeOperators.sorted().joined(separator: ", ") + ")", at: location(op))
                }
                parts.commutative.append(name)
            } while accept(.comma) != nil
        default:
            if peekSecond().isSymbol(.leftBrace) {
                _ = failure("unknown block '\(word)', expected match, where, compute or replace", at: location(token))
                advance()
                skipBracedBlock()
                return
            }
            throw failure("unknown item '\(word)' in rule '\(rule)', expected \(items)", at: location(token))
        }
        guard atLineEnd() else {
            throw failure(expected: "end of line after '\(word)'")
        }
    }

    /// Skips `{ ... }` with nested braces.
    mutating func skipBracedBlock() {
        var depth = 0
        while true {
            let token = advance()
            switch token.kind {
            case .end: return
            case .symbol(.leftBrace): depth += 1
            case .symbol(.rightBrace):
                depth -= 1
                if depth <= 0 { return }
            default: break
            }
        }
    }

    // MARK: - Blocks

    /// `{ line; line ... }` of one block; the keyword is consumed. Stops without consuming at a
    /// new block keyword followed by `{` (reporting the missing `}`), at the next rule or at the
    /// end of the file (those the rule reports).
    mutating func parseBlock(
        _ kind: BlockKind, keyword: Token, rule: String, into parts: inout RuleParts
    ) throws(SyntaxFailure) {
        // Without its '{', the block is read as if it were there (the lines that follow are
        // most likely its lines), and the next block keyword closes it without another error.
        let braceless = accept(.leftBrace) == nil
        if braceless {
            _ = failure(expected: "'{' after '\(kind)'")
        }
        while true {
            let token = nextStatement()
            switch token.kind {
            case .symbol(.rightBrace):
                advance()
                return
            case .end:
                return
            case .identifier(let word):
                if atNextRule() { return }
                if let next = BlockKind(rawValue: word), peekSecond().isSymbol(.leftBrace) {
                    if braceless { return }
                    _ = failure("expected '}' to close the \(kind) block before '\(next)'", at: location(token))
                    return
                }
            default:
                break
            }
            do {
                try parseLine(kind, into: &parts)
            } catch {
                synchronize(afterLine: token.line)
            }
        }
    }

    /// One line of a block, up to its end.
    mutating func parseLine(_ kind: BlockKind, into parts: inout RuleParts) throws(SyntaxFailure) {
        switch kind {
        case .match:
            let first = peek()
            if let word = first.identifier, let kind = ItemMatchSyntax.Kind(rawValue: word), let name = peekSecond().identifier,
               name != "_" {
                advance()
                advance()
                parts.items.append(ItemMatchSyntax(kind: kind, name: name, location: location(first)))
                try expectLineEnd("'\(word) \(name)'")
                return
            }
            let line = try parseMatchLine()
            parts.matchBlocks[parts.matchBlocks.count - 1].lines.append(line)
            try expectLineEnd("a node pattern")
        case .replace:
            let line = try parseNode(in: .replace)
            parts.replacements.append(line.replacement)
            try expectLineEnd(line.isForward ? "a forward line" : "a node")
        case .where:
            parts.guards.append(try parseExpression())
            if peek().isSymbol(.assign) {
                throw failure("expected '==' to compare, found '='", at: location(peek()))
            }
            try expectLineEnd("a condition")
        case .compute:
            let name = peek()
            guard let variable = name.identifier, variable != "_" else {
                throw failure(expected: "a compute line 'name = expression'")
            }
            advance()
            try expect(.assign, "'=' after '\(variable)' in a compute line 'name = expression'")
            let value = try parseExpression()
            parts.computes.append(Assignment(name: variable, value: value, location: location(name)))
            try expectLineEnd("the value of '\(variable)'")
        }
    }

    /// The line must end here (newline, `;`, `}` or end of file).
    mutating func expectLineEnd(_ what: String) throws(SyntaxFailure) {
        guard atLineEnd() else {
            throw failure(expected: "end of line after \(what)")
        }
    }
}
