/// Where something is in a rule file: 1-based line and column.
public struct SourceLocation: Equatable, Sendable, CustomStringConvertible {
    /// The file name as given (or `<string>` for rules from a string).
    public var file: String
    /// 1-based line; 0 for the whole file (an error reading it).
    public var line: Int
    /// 1-based column, in Unicode scalars.
    public var column: Int

    /// A location.
    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// `file:line:column`, or `file` for the whole file.
    public var description: String { line == 0 ? file : "\(file):\(line):\(column)" }
}

/// An error in a rule file, found before any model is touched.
public struct RuleError: Error, Equatable, CustomStringConvertible {
    /// Where.
    public var location: SourceLocation
    /// What is wrong (and, for syntax errors, what was expected).
    public var message: String

    /// An error.
    public init(_ message: String, at location: SourceLocation) {
        self.location = location
        self.message = message
    }

    /// `file:line:column: message`.
    public var description: String { "\(location): \(message)" }
}

/// A parsed rule file.
public struct RuleFileSyntax: Sendable {
    /// The file name as given.
    public var file: String
    /// The rules, in file order.
    public var rules: [RuleSyntax]
}

/// One `rule NAME { ... }` block, as written.
public struct RuleSyntax: Sendable {
    /// The rule's name (kebab-case by convention).
    public var name: String
    /// Where `rule` is.
    public var location: SourceLocation
    /// The `#` comment lines right before `rule`, without the `#` and leading space.
    public var comment: [String]
    /// The rule's source text from `rule` to its closing brace, for `rules show`.
    public var text: String
    /// `benefit N`; 1 when absent. Higher runs first.
    public var benefit: Int
    /// Op types named by `commute A, B`: their first two inputs may match in either order.
    public var commutative: [String]
    /// The `match` blocks, in order: each is a form of the rule (see `MatchForm`); a rule
    /// anchored at an initializer or import has one block without lines.
    public var matchBlocks: [MatchBlockSyntax]
    /// The `match` block's `initializer NAME` and `opset_import NAME` lines (a valid rule has
    /// either one of them or node patterns).
    public var items: [ItemMatchSyntax] = []
    /// The `where` block: each line is one condition; all must hold.
    public var guards: [Expression]
    /// The `compute` block: `name = expression` lines, in order.
    public var computes: [Assignment]
    /// The `replace` block, in order.
    public var replacements: [Replacement]
}

extension RuleSyntax {
    /// The node patterns of the rule's first form: the first match block, each line as its
    /// first alternative, optional lines present (a rule of one block without alternatives:
    /// its nodes).
    public var match: [NodeSyntax] { matchBlocks.first?.lines.map { $0.alternatives[0] } ?? [] }
}

/// One `match { ... }` block.
public struct MatchBlockSyntax: Sendable {
    /// Its node lines, in order.
    public var lines: [MatchLineSyntax]
    /// Where `match` is.
    public var location: SourceLocation
}

/// One node line of a `match` block: `y = A(x)`, with alternatives `y = A(x) | B(x, c)` (the
/// node is any one of them; they share the outputs), optional when it ends with `?`
/// (`y = Cast(x)?`: the node may be missing, and then `y` is `x`, its first input).
public struct MatchLineSyntax: Sendable {
    /// The node as each alternative writes it, in order (at least one; all have the outputs
    /// of the first).
    public var alternatives: [NodeSyntax]
    /// Whether the node may be missing (`?` at the end of the line).
    public var isOptional: Bool
    /// Where the line starts.
    public var location: SourceLocation { alternatives[0].location }
}

/// `initializer NAME` or `opset_import NAME` in `match`: the rule is anchored at every
/// initializer that is not a graph input, or at every operator set import, instead of nodes.
public struct ItemMatchSyntax: Sendable {
    /// What the line anchors at.
    public enum Kind: String, Sendable {
        /// `initializer w`: `w` is the initializer's value.
        case initializer
        /// `opset_import d`: `d` is the imported domain as a string ("" for the default one).
        case opsetImport = "opset_import"
    }
    /// What the line anchors at.
    public var kind: Kind
    /// The variable it binds.
    public var name: String
    /// Where the line starts.
    public var location: SourceLocation
}

/// `outputs = [domain.]Op<attributes>(inputs)`, in `match` or `replace`; `Op` is `_` for any
/// operator of the domain (match only).
public struct NodeSyntax: Sendable {
    /// Output names, or nil for `_`.
    public var outputs: [String?]
    /// The domain when written (`com.microsoft.FusedConv` has domain `com.microsoft`); nil otherwise.
    public var domain: String?
    /// The operator, such as `Conv`.
    public var opType: String
    /// The attribute entries inside `<...>`, in order.
    public var attributes: [AttributeSyntax]
    /// The inputs.
    public var inputs: [InputSyntax]
    /// Where the line starts.
    public var location: SourceLocation
}

/// An input inside `(...)`.
public enum InputSyntax: Equatable, Sendable {
    /// A variable: the same name is the same value.
    case variable(String)
    /// `x?`: an optional input that may be absent.
    case optional(String)
    /// `_`: any value (in `replace`: an absent input).
    case any
    /// `...`: any further inputs (match only, last).
    case rest
}

/// An attribute entry inside `<...>`.
public enum AttributeSyntax: Sendable {
    /// `name = expression`: in match, the attribute must equal the (literal) value; in replace,
    /// it is set to the value.
    case equals(name: String, value: Expression, location: SourceLocation)
    /// `name: variable` (no match when absent) or `name: variable = default`.
    case bind(name: String, variable: String, defaultValue: Expression?, location: SourceLocation)
    /// `!name`: the attribute must be absent (match only).
    case absent(name: String, location: SourceLocation)
    /// `...y`: every attribute of the node that produced `y` (replace only).
    case copyFrom(variable: String, location: SourceLocation)
}

/// One line of `compute`: `name = expression`.
public struct Assignment: Sendable {
    /// The new variable.
    public var name: String
    /// Its value.
    public var value: Expression
    /// Where the line starts.
    public var location: SourceLocation
}

/// One line of `replace`.
public enum Replacement: Sendable {
    /// A new node.
    case node(NodeSyntax)
    /// `z = x`: every use of `z` reads `x` instead.
    case forward(target: String, source: String, location: SourceLocation)
}

/// An expression of `where` and `compute`.
public indirect enum Expression: Sendable {
    /// A number literal, with its exact value when it is an integer (written without `.`, `e`
    /// or `E`).
    case number(Double, integer: Int64?, SourceLocation)
    /// A string literal.
    case string(String, SourceLocation)
    /// `true` or `false`.
    case boolean(Bool, SourceLocation)
    /// A variable, an attribute variable, or a bare name such as a data type (`float`).
    case name(String, SourceLocation)
    /// `f(a, b)`.
    case call(String, [Expression], SourceLocation)
    /// `[a, b]`.
    case list([Expression], SourceLocation)
    /// `-x`, `!x`.
    case unary(UnaryOperator, Expression, SourceLocation)
    /// `a op b`.
    case binary(BinaryOperator, Expression, Expression, SourceLocation)

    /// The expressions directly inside this one (arguments, items, operands).
    public var children: [Expression] {
        switch self {
        case .number, .string, .boolean, .name: return []
        case .call(_, let items, _), .list(let items, _): return items
        case .unary(_, let operand, _): return [operand]
        case .binary(_, let left, let right, _): return [left, right]
        }
    }

    /// Where the expression starts.
    public var location: SourceLocation {
        switch self {
        case .number(_, _, let l), .string(_, let l), .boolean(_, let l), .name(_, let l), .call(_, _, let l),
             .list(_, let l), .unary(_, _, let l), .binary(_, _, _, let l):
            return l
        }
    }
}

/// Prefix operators.
public enum UnaryOperator: String, Sendable {
    /// Arithmetic negation.
    case negate = "-"
    /// Logical not.
    case not = "!"
}

/// Infix operators, from loosest to tightest: `||`; `&&`; `== != < <= > >= in`; `++`; `+ -`; `* /`.
public enum BinaryOperator: String, Sendable {
    /// Logical or.
    case or = "||"
    /// Logical and.
    case and = "&&"
    /// Equality (numbers, lists, data types, strings).
    case equal = "=="
    /// Inequality.
    case notEqual = "!="
    /// Less than.
    case less = "<"
    /// Less or equal.
    case lessOrEqual = "<="
    /// Greater than.
    case greater = ">"
    /// Greater or equal.
    case greaterOrEqual = ">="
    /// Membership in a list.
    case `in` = "in"
    /// List concatenation.
    case concatenate = "++"
    /// Addition (broadcasting for tensors).
    case add = "+"
    /// Subtraction.
    case subtract = "-"
    /// Multiplication.
    case multiply = "*"
    /// Division.
    case divide = "/"
}
