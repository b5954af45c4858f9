/// Node lines of `match` and `replace`: `outputs = [domain.]Op[<attributes>](inputs)`, and
/// forward lines `z = x` of `replace`.
extension Parser {
    /// A parsed node line.
    struct NodeLine {
        var replacement: Replacement

        var isForward: Bool {
            if case .forward = replacement { return true }
            return false
        }

        /// The node (match lines are always nodes).
        var node: NodeSyntax {
            guard case .node(let node) = replacement else { preconditionFailure("a match line is a node") }
            return node
        }
    }

    mutating func parseNode(in block: BlockKind) throws(SyntaxFailure) -> NodeLine {
        let first = peek()
        let start = location(first)

        var outputs: [String?] = []
        repeat {
            let token = peek()
            guard let name = token.identifier else {
                throw failure(expected: outputs.isEmpty
                    ? "a node line 'outputs = Op(inputs)', such as 'y = Relu(x)'"
                    : "an output name or '_' after ','")
            }
            advance()
            outputs.append(name == "_" ? nil : name)
        } while accept(.comma) != nil

        if accept(.assign) == nil {
            let next = peek()
            if outputs.count == 1, next.isSymbol(.leftParen) || next.isSymbol(.less) || next.isSymbol(.dot) {
                throw failure(
                    "expected the outputs and '=' before \(first.text), such as 'y = \(first.text)(...)'",
                    at: start
                )
            }
            throw failure(expected: "'=' after the outputs of a node")
        }

        return try parseOperatorAndInputs(in: block, outputs: outputs, start: start, isAlternative: false)
    }

    /// A match line: a node pattern, its alternatives after `|`, and `?` when the node may be
    /// missing.
    mutating func parseMatchLine() throws(SyntaxFailure) -> MatchLineSyntax {
        let first = try parseNode(in: .match).node
        var alternatives = [first]
        while accept(.bar) != nil {
            skipNewlines()
            if peek().identifier != nil, peekSecond().isSymbol(.assign) || peekSecond().isSymbol(.comma) {
                throw failure("an alternative after '|' is written without outputs: 'y = A(x) | B(x)' (they share the outputs of the first)",
                              at: location(peek()))
            }
            alternatives.append(try parseOperatorAndInputs(in: .match, outputs: first.outputs, start: location(peek()), isAlternative: true).node)
        }
        let question = accept(.question)
        if let question {
            // A missing node passes its first input on: it needs one named output and a first
            // input that is a variable.
            let named = first.outputs.compactMap { $0 }
            if first.outputs.count != 1 || named.count != 1 {
                _ = failure("an optional node ('?' at the end of the line) has one named output, which is its first input when the node is missing",
                            at: location(question))
            }
            for node in alternatives {
                guard case .variable? = node.inputs.first else {
                    _ = failure("an optional node ('?' at the end of the line) must have a plain variable as its first input of \(node.opType) (not '_', '...' or 'x?'): it is what the output becomes when the node is missing",
                                at: node.location)
                    break
                }
            }
        }
        return MatchLineSyntax(alternatives: alternatives, isOptional: question != nil)
    }

    /// `[domain.]Op[<attributes>](inputs)` after the outputs and `=` of a node line (or after
    /// `|` for an alternative, which is never a forward line).
    mutating func parseOperatorAndInputs(
        in block: BlockKind, outputs: [String?], start: SourceLocation, isAlternative: Bool
    ) throws(SyntaxFailure) -> NodeLine {
        // `_` is any operator (match only), and only as the operator part.
        let opToken = peek()
        guard let firstPart = opToken.identifier else {
            throw failure(expected: isAlternative ? "an operator name after '|'" : "an operator name after '='")
        }
        advance()
        var parts = [firstPart]
        while parts.last != "_", accept(.dot) != nil {
            let part = peek()
            guard let name = part.identifier else {
                throw failure(expected: "a name after '\(parts.joined(separator: ".")).'")
            }
            advance()
            parts.append(name)
        }
        let opType = parts.removeLast()
        if opType == "_" {
            if block == .replace, parts.isEmpty, atLineEnd() {
                throw failure("a forward line 'z = x' needs a value on the right, not '_'", at: location(opToken))
            }
            if block == .replace {
                throw failure("'_' (any operator) is only allowed in match; replace must name the operator", at: location(opToken))
            }
            if peek().isSymbol(.dot) {
                throw failure("'_' (any operator) must be the last part of the operator, after the domain", at: location(peek()))
            }
        }
        let domain = parts.isEmpty ? nil : parts.joined(separator: ".")
        let written = (domain.map { $0 + "." } ?? "") + opType

        if domain == nil, atLineEnd() {
            guard block == .replace, !isAlternative else {
                throw failure(expected: "'(' and the inputs after \(opType) (forward lines 'z = x' belong in replace)")
            }
            guard outputs.count == 1, let target = outputs[0] else {
                throw failure(
                    "expected '(' and the inputs after \(opType); a forward line 'z = x' has one name on each side",
                    at: errorLocation(peek())
                )
            }
            return NodeLine(replacement: .forward(target: target, source: opType, location: start))
        }

        var attributes: [AttributeSyntax] = []
        if accept(.less) != nil {
            nesting += 1
            repeat {
                attributes.append(try parseAttribute(in: block, op: written))
            } while accept(.comma) != nil
            try expect(.greater, "'>' after the attributes of \(written)")
            nesting -= 1
        }

        if attributes.isEmpty || peek().isSymbol(.leftParen) {
            try expect(.leftParen, "'(' and the inputs after \(written)")
        } else {
            try expect(.leftParen, "'(' and the inputs after \(written) (inside '<...>', put a comparison with '>' in parentheses)")
        }
        nesting += 1
        var inputs: [InputSyntax] = []
        if accept(.rightParen) == nil {
            repeat {
                inputs.append(try parseInput(in: block, op: written))
            } while accept(.comma) != nil
            try expect(.rightParen, "')' after the inputs of \(written)")
        }
        nesting -= 1

        let node = NodeSyntax(
            outputs: outputs, domain: domain, opType: opType, attributes: attributes, inputs: inputs, location: start
        )
        return NodeLine(replacement: .node(node))
    }

    /// `name`, `name?`, `_` or `...` (last, match only).
    mutating func parseInput(in block: BlockKind, op: String) throws(SyntaxFailure) -> InputSyntax {
        let token = peek()
        if token.isSymbol(.ellipsis) {
            advance()
            if block == .replace {
                _ = failure("'...' (any further inputs) is only allowed in match", at: location(token))
            } else if peek().isSymbol(.comma) {
                _ = failure("'...' must be the last input of \(op)", at: location(token))
            }
            return .rest
        }
        guard let name = token.identifier else {
            throw failure(expected: "an input of \(op): a name, 'name?', '_' or '...'")
        }
        advance()
        if name == "_" {
            if let question = accept(.question) {
                _ = failure("'_' cannot be optional, expected a name before '?'", at: location(question))
            }
            return .any
        }
        return accept(.question) != nil ? .optional(name) : .variable(name)
    }

    /// `name = expr`, `name: var`, `name: var = expr`, `!name` (match) or `...var` (replace).
    mutating func parseAttribute(in block: BlockKind, op: String) throws(SyntaxFailure) -> AttributeSyntax {
        let token = peek()
        let at = location(token)
        if token.isSymbol(.bang) {
            advance()
            let name = try attributeName(after: "'!'")
            if block == .replace {
                _ = failure("'!\(name)' (the attribute must be absent) is only allowed in match", at: at)
            }
            return .absent(name: name, location: at)
        }
        if token.isSymbol(.ellipsis) {
            advance()
            let name = try expectName("a variable after '...', such as '...y' to copy the attributes of y's node")
            if block == .match {
                _ = failure("'...\(name)' (copy the attributes of \(name)'s node) is only allowed in replace", at: at)
            }
            return .copyFrom(variable: name, location: at)
        }
        guard let name = token.identifier, name != "_" else {
            throw failure(expected: "an attribute of \(op): 'name = value', 'name: variable', '!name' or '...variable'")
        }
        advance()
        if accept(.assign) != nil {
            return .equals(name: name, value: try parseAttributeValue(), location: at)
        }
        guard accept(.colon) != nil else {
            throw failure(expected: "'=' or ':' after the attribute name '\(name)'")
        }
        let variable = try expectName("a variable name after '\(name):'")
        if block == .replace {
            _ = failure("'\(name): \(variable)' binds an attribute, which only match does; write '\(name) = \(variable)'", at: at)
        }
        let defaultValue = accept(.assign) != nil ? try parseAttributeValue() : nil
        return .bind(name: name, variable: variable, defaultValue: defaultValue, location: at)
    }

    /// An attribute name after `what`.
    mutating func attributeName(after what: String) throws(SyntaxFailure) -> String {
        try expectName("an attribute name after \(what)")
    }

    /// A name (not `_`), read; otherwise a failure saying `expected`.
    mutating func expectName(_ expected: String) throws(SyntaxFailure) -> String {
        guard let name = peek().identifier, name != "_" else { throw failure(expected: expected) }
        advance()
        return name
    }

    /// An expression inside `<...>`: a `>` outside brackets ends it.
    mutating func parseAttributeValue() throws(SyntaxFailure) -> Expression {
        let saved = inAttributeValue
        inAttributeValue = true
        defer { inAttributeValue = saved }
        return try parseExpression()
    }
}
