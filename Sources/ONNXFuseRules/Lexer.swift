/// The punctuation and operator symbols of the rule language.
enum Symbol: String, Sendable {
    case leftBrace = "{"
    case rightBrace = "}"
    case leftParen = "("
    case rightParen = ")"
    case leftBracket = "["
    case rightBracket = "]"
    case comma = ","
    case semicolon = ";"
    case colon = ":"
    case question = "?"
    case dot = "."
    case ellipsis = "..."
    case assign = "="
    case equal = "=="
    case bang = "!"
    case notEqual = "!="
    case less = "<"
    case lessOrEqual = "<="
    case greater = ">"
    case greaterOrEqual = ">="
    case plus = "+"
    case concatenate = "++"
    case minus = "-"
    case star = "*"
    case slash = "/"
    case and = "&&"
    case or = "||"
    /// Between the alternatives of a match line: `A(x) | B(x)`.
    case bar = "|"
}

/// What a token is.
enum TokenKind: Equatable, Sendable {
    /// A name: ASCII letters, digits and `_`, not starting with a digit (rule names also allow `-`).
    case identifier(String)
    /// A number literal, and its exact value when it is an integer (written without `.`, `e` or
    /// `E`; float64 holds integers only up to 2^53).
    case number(Double, integer: Int64?)
    /// A string literal, escapes resolved.
    case string(String)
    /// Punctuation or an operator.
    case symbol(Symbol)
    /// The end of a line (comments are skipped, so a comment line is a bare newline).
    case newline
    /// The end of the text.
    case end
    /// Text the lexer could not read; the message says why and what was expected.
    case invalid(String)
}

/// One token, with where it starts and ends.
struct Token: Sendable {
    var kind: TokenKind
    /// Offset of the first Unicode scalar in the source.
    var start: Int
    /// Offset just past the last Unicode scalar.
    var end: Int
    /// 1-based line and column of the first scalar.
    var line: Int
    var column: Int
    /// Column just past the last scalar (tokens never span lines).
    var endColumn: Int
    /// Nothing but blanks before this token on its line.
    var isFirstOnLine: Bool
    /// The token as written.
    var text: String

    func isSymbol(_ symbol: Symbol) -> Bool { kind == .symbol(symbol) }

    func isIdentifier(_ name: String) -> Bool { kind == .identifier(name) }

    var identifier: String? {
        if case .identifier(let name) = kind { return name }
        return nil
    }

    /// How an error message names this token: `'Conv'`, `end of line`...
    var quoted: String {
        switch kind {
        case .newline: return "end of line"
        case .end: return "end of file"
        case .string: return "string " + text
        default: return "'" + text + "'"
        }
    }
}

/// Splits rule-file text into tokens on demand. A value: copying it gives an independent
/// look-ahead.
struct Lexer: Sendable {
    /// The text, as Unicode scalars (columns count scalars).
    let scalars: [Unicode.Scalar]
    /// Next scalar to read.
    private(set) var position = 0
    /// Current 1-based line and the offset where it starts.
    private(set) var line = 1
    private var lineStart = 0
    /// Comments that are alone on their line, by line, without `#` and one leading space.
    private(set) var lineComments: [Int: String] = [:]

    init(_ text: String) {
        scalars = Array(text.unicodeScalars)
        if scalars.first == "\u{FEFF}" { position = 1; lineStart = 1 }
    }

    /// The source text between two offsets.
    func text(from start: Int, to end: Int) -> String {
        // Encoded straight into the string's storage (appending scalars one by one to a view
        // is a slow path, and a rule file is mostly short tokens).
        String(unsafeUninitializedCapacity: (end - start) * 4) { buffer in
            var count = 0
            for scalar in scalars[start..<end] {
                if scalar.isASCII {
                    buffer[count] = UInt8(scalar.value)
                    count += 1
                } else {
                    for byte in UTF8.encode(scalar)! {
                        buffer[count] = byte
                        count += 1
                    }
                }
            }
            return count
        }
    }

    /// Goes back to the start of `token`, to read it again differently.
    mutating func rewind(to token: Token) {
        position = token.start
        line = token.line
        lineStart = token.start - (token.column - 1)
    }

    /// Reads a rule name at `token`'s start: letters, digits, `_` and `-`, not starting with `-`.
    /// Returns nil (and reads nothing) when no name starts there.
    mutating func ruleName(at token: Token) -> Token? {
        guard token.start < scalars.count, isWordScalar(scalars[token.start]) else {
            return nil
        }
        rewind(to: token)
        let start = position
        while position < scalars.count, isWordScalar(scalars[position]) || scalars[position] == "-" {
            position += 1
        }
        let text = self.text(from: start, to: position)
        return makeToken(.identifier(text), from: start, text: text)
    }

    /// The next token.
    mutating func next() -> Token {
        skipBlanksAndComments()
        guard position < scalars.count else {
            return makeToken(.end, from: position)
        }
        let start = position
        let c = scalars[position]
        if c == "\n" {
            position += 1
            let token = makeToken(.newline, from: start, endColumn: start - lineStart + 2)
            line += 1
            lineStart = position
            return token
        }
        if isIdentifierStart(c) {
            while position < scalars.count, isWordScalar(scalars[position]) { position += 1 }
            let name = text(from: start, to: position)
            return makeToken(.identifier(name), from: start, text: name)
        }
        if isDigit(c) {
            return number()
        }
        if c == "\"" {
            return string()
        }
        return symbol()
    }

    // MARK: - Pieces

    private mutating func skipBlanksAndComments() {
        while position < scalars.count {
            let c = scalars[position]
            if c == " " || c == "\t" || c == "\r" || c == "\u{0B}" || c == "\u{0C}" {
                position += 1
            } else if c == "#" {
                let alone = isFirstOnLine(position)
                position += 1
                if position < scalars.count, scalars[position] == " " { position += 1 }
                let start = position
                while position < scalars.count, scalars[position] != "\n" { position += 1 }
                var end = position
                if end > start, scalars[end - 1] == "\r" { end -= 1 }
                if alone { lineComments[line] = text(from: start, to: end) }
            } else {
                return
            }
        }
    }

    /// `digits ["." digits] [("e" | "E") ["+" | "-"] digits]`.
    private mutating func number() -> Token {
        let start = position
        var isInteger = true
        var problem: String?
        skipDigits()
        if peek(0) == ".", peek(1).map(isDigit) == true {
            isInteger = false
            position += 1
            skipDigits()
        } else if peek(0) == ".", peek(1) != "." {
            position += 1
            problem = "expected a digit after '.' in the number '\(text(from: start, to: position))'"
        }
        if problem == nil, let e = peek(0), e == "e" || e == "E" {
            isInteger = false
            position += 1
            if let sign = peek(0), sign == "+" || sign == "-" { position += 1 }
            if peek(0).map(isDigit) == true {
                skipDigits()
            } else {
                problem = "expected digits in the exponent of the number '\(text(from: start, to: position))'"
            }
        }
        if let next = peek(0), isWordScalar(next) {
            while let next = peek(0), isWordScalar(next) || next == "." { position += 1 }
            problem = "invalid number '\(text(from: start, to: position))'"
        }
        if let problem {
            return makeToken(.invalid(problem), from: start)
        }
        let spelled = text(from: start, to: position)
        guard let value = Double(spelled), value.isFinite else {
            return makeToken(.invalid("the number '\(spelled)' is too large"), from: start)
        }
        // Integers are 64-bit in ONNX, and kept exactly.
        guard isInteger else { return makeToken(.number(value, integer: nil), from: start) }
        guard let integer = Int64(spelled) else {
            return makeToken(.invalid("the integer '\(spelled)' is too large (more than 9223372036854775807)"), from: start)
        }
        return makeToken(.number(value, integer: integer), from: start)
    }

    /// `"..."` with the escapes `\"`, `\\` and `\n`; a string ends on its line.
    private mutating func string() -> Token {
        let start = position
        position += 1
        var value = String.UnicodeScalarView()
        var problem: String?
        while true {
            guard let c = peek(0), c != "\n" else {
                var end = position
                while end > start, scalars[end - 1] == "\r" { end -= 1 }
                position = end
                return makeToken(.invalid("unterminated string, expected '\"' before the end of the line"), from: start)
            }
            position += 1
            if c == "\"" { break }
            if c == "\\" {
                guard let escaped = peek(0), escaped != "\n" else { continue }
                position += 1
                switch escaped {
                case "\"": value.append("\"")
                case "\\": value.append("\\")
                case "n": value.append("\n")
                default:
                    if problem == nil {
                        problem = "unknown escape '\\\(escaped)' in a string, expected \\\", \\\\ or \\n"
                    }
                }
            } else {
                value.append(c)
            }
        }
        if let problem {
            return makeToken(.invalid(problem), from: start)
        }
        return makeToken(.string(String(value)), from: start)
    }

    private mutating func symbol() -> Token {
        let start = position
        let c = scalars[position]
        let second = peek(1)
        func take(_ symbol: Symbol) -> Token {
            position += symbol.rawValue.utf8.count // ASCII: one scalar per byte
            return makeToken(.symbol(symbol), from: start)
        }
        switch c {
        case "{": return take(.leftBrace)
        case "}": return take(.rightBrace)
        case "(": return take(.leftParen)
        case ")": return take(.rightParen)
        case "[": return take(.leftBracket)
        case "]": return take(.rightBracket)
        case ",": return take(.comma)
        case ";": return take(.semicolon)
        case ":": return take(.colon)
        case "?": return take(.question)
        case "*": return take(.star)
        case "/": return take(.slash)
        case "-": return take(.minus)
        case "+": return take(second == "+" ? .concatenate : .plus)
        case "=": return take(second == "=" ? .equal : .assign)
        case "!": return take(second == "=" ? .notEqual : .bang)
        case "<": return take(second == "=" ? .lessOrEqual : .less)
        case ">": return take(second == "=" ? .greaterOrEqual : .greater)
        case "&" where second == "&": return take(.and)
        case "|": return take(second == "|" ? .or : .bar)
        case "&":
            position += 1
            return makeToken(.invalid("unexpected character '\(c)', expected '\(c)\(c)'"), from: start)
        case ".":
            if second == ".", peek(2) == "." { return take(.ellipsis) }
            if second == "." {
                position += 2
                return makeToken(.invalid("unexpected '..', expected '.' or '...'"), from: start)
            }
            if let second, isDigit(second) {
                position += 1
                skipDigits()
                let written = text(from: start, to: position)
                return makeToken(.invalid("a number starts with a digit: write '0\(written)' instead of '\(written)'"), from: start)
            }
            return take(.dot)
        default:
            position += 1
            let shown = c.properties.isWhitespace || c.value < 0x20 || c.value == 0x7F
                ? "U+" + String(c.value, radix: 16, uppercase: true)
                : String(c)
            return makeToken(.invalid("unexpected character '\(shown)'"), from: start)
        }
    }

    // MARK: - Helpers

    private func peek(_ ahead: Int) -> Unicode.Scalar? {
        position + ahead < scalars.count ? scalars[position + ahead] : nil
    }

    private mutating func skipDigits() {
        while let c = peek(0), isDigit(c) { position += 1 }
    }

    private func isFirstOnLine(_ offset: Int) -> Bool {
        var i = offset - 1
        while i >= lineStart {
            let c = scalars[i]
            if !(c == " " || c == "\t" || c == "\r" || c == "\u{0B}" || c == "\u{0C}" || c == "\u{FEFF}") {
                return false
            }
            i -= 1
        }
        return true
    }

    /// A token of `kind` from `start` to the current position; `text`, when the caller has it.
    private func makeToken(_ kind: TokenKind, from start: Int, endColumn: Int? = nil, text known: String? = nil) -> Token {
        Token(
            kind: kind,
            start: start,
            end: position,
            line: line,
            column: start - lineStart + 1,
            endColumn: endColumn ?? (position - lineStart + 1),
            isFirstOnLine: isFirstOnLine(start),
            text: known ?? (kind == .newline || kind == .end ? "" : text(from: start, to: position))
        )
    }
}

/// An ASCII letter or `_`.
func isIdentifierStart(_ c: Unicode.Scalar) -> Bool {
    (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c == "_"
}

/// An ASCII digit.
func isDigit(_ c: Unicode.Scalar) -> Bool {
    c >= "0" && c <= "9"
}

/// An ASCII letter, digit or `_`.
func isWordScalar(_ c: Unicode.Scalar) -> Bool {
    isIdentifierStart(c) || isDigit(c)
}
