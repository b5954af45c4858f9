import ONNXFuseIR

/// One input position of a pattern node.
public enum PatternInput: Equatable, Sendable {
    /// A value variable; the same index anywhere in the pattern is the same value.
    case variable(Int)
    /// An optional input: absent, or bound like `variable`.
    case optional(Int)
    /// Any value, or none.
    case any
    /// Any further inputs (only last).
    case rest
}

/// One output position of a pattern node.
public enum PatternOutput: Equatable, Sendable {
    /// Binds the output (absent when the node has fewer outputs).
    case variable(Int)
    /// An output the rule does not name: it must be absent or unused outside the match.
    case ignored
}

/// A literal an attribute must equal.
public enum AttributeLiteral: Equatable, Sendable, CustomStringConvertible {
    /// An integer.
    case int(Int64)
    /// A real number (compared after rounding to the attribute's float).
    case float(Double)
    /// A string.
    case string(String)
    /// A list of integers.
    case ints([Int64])
    /// A list of reals.
    case floats([Double])

    /// Whether `value` equals the literal (an integer literal also matches a float attribute of that value).
    public func matches(_ value: AttributeValue) -> Bool {
        switch (self, value) {
        case (.int(let a), .int(let b)): return a == b
        case (.int(let a), .float(let b)): return Double(b) == Double(a)
        case (.float(let a), .float(let b)): return Float(a) == b
        case (.string(let a), .string(let b)): return Array(a.utf8) == b
        case (.ints(let a), .ints(let b)): return a == b
        case (.floats(let a), .floats(let b)): return a.map { Float($0) } == b
        case (.ints(let a), .floats(let b)): return a.map { Float($0) } == b
        default: return false
        }
    }

    /// The attribute value the literal stands for (reals rounded to the attribute's float).
    public var attributeValue: AttributeValue {
        switch self {
        case .int(let v): return .int(v)
        case .float(let v): return .float(Float(v))
        case .string(let v): return .string(Array(v.utf8))
        case .ints(let v): return .ints(v)
        case .floats(let v): return .floats(v.map { Float($0) })
        }
    }

    /// The literal as it would be written in a rule.
    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .float(let v): return String(v)
        case .string(let v): return "\"\(v)\""
        case .ints(let v): return "[" + v.map(String.init).joined(separator: ", ") + "]"
        case .floats(let v): return "[" + v.map { String($0) }.joined(separator: ", ") + "]"
        }
    }
}

/// A condition on one attribute of a pattern node.
public enum AttributeConstraint: Sendable {
    /// The attribute must be present and equal the literal.
    case equals(String, AttributeLiteral)
    /// Binds attribute variable `variable` to the attribute's value; without a default, a
    /// node without the attribute does not match.
    case bind(String, variable: Int, defaultValue: AttributeLiteral?)
    /// The attribute must be absent.
    case absent(String)
}

/// One node of a pattern.
public struct PatternNode: Sendable {
    /// The operator name that matches any operator of the node's domain (written `_`).
    public static let anyOperator = "_"

    /// The operator.
    public var opType: String {
        didSet { operatorID = OperatorID(opType: opType, domain: domain) }
    }
    /// The domain; "" is the default ONNX domain (which also matches "ai.onnx").
    public var domain: String {
        didSet { operatorID = OperatorID(opType: opType, domain: domain) }
    }
    /// The operator as a number, which `hasOperator(of:)` compares with the node's.
    private(set) var operatorID: OperatorID
    /// The inputs.
    public var inputs: [PatternInput]
    /// The outputs.
    public var outputs: [PatternOutput]
    /// Conditions on attributes.
    public var attributes: [AttributeConstraint]
    /// Whether the first two inputs may match in either order.
    public var commutative: Bool

    /// A pattern node.
    public init(opType: String, domain: String = "", inputs: [PatternInput], outputs: [PatternOutput],
                attributes: [AttributeConstraint] = [], commutative: Bool = false) {
        self.opType = opType
        self.domain = domain
        self.operatorID = OperatorID(opType: opType, domain: domain)
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
        self.commutative = commutative
    }

    /// Whether it matches any operator of its domain.
    public var matchesAnyOperator: Bool { opType == Self.anyOperator }

    /// What the operator is called in explanations.
    var operatorDescription: String { matchesAnyOperator ? "any operator" : opType }

    /// The domain, "" for the default one however written.
    var normalizedDomain: String { domain == "ai.onnx" ? "" : domain }

    /// Whether `node` has this pattern node's operator.
    func hasOperator(of node: Node) -> Bool {
        guard matchesAnyOperator else { return node.operatorID == operatorID }
        let nodeDomain = node.isDefaultDomain ? "" : node.domain!
        return nodeDomain == normalizedDomain
    }
}

/// What a pattern is anchored at.
public enum PatternAnchor: Equatable, Sendable {
    /// A node: the pattern is a DAG of nodes matched from its root.
    case node
    /// An initializer of a graph that is not a graph input, bound to value variable 0.
    case initializer
    /// An operator set the model imports; its domain ("" for the default one) is bound to
    /// attribute variable 0 as a string.
    case opsetImport
}

/// A connected DAG of pattern nodes, matched anchored at `root`; or a single initializer or
/// operator set import.
public struct Pattern: Sendable {
    /// What the pattern is anchored at.
    public let anchor: PatternAnchor
    /// The nodes (none unless anchored at a node).
    public var nodes: [PatternNode]
    /// The anchor: candidates are the graph nodes with this node's operator.
    public var root: Int
    /// Names of the value variables, for explanations.
    public var valueNames: [String]
    /// Names of the attribute variables.
    public var attributeNames: [String]
    /// The order in which the matcher visits pattern nodes, and how it finds each one's candidates.
    let plan: [(node: Int, via: Link)]

    /// How the matcher finds a pattern node's candidates from what is already bound.
    enum Link {
        /// The root: the candidate given.
        case root
        /// The producer of bound value variable `variable`.
        case producer(Int)
        /// The nodes that read bound value variable `variable`.
        case consumer(Int)
    }

    /// A pattern; fails when a node is not connected to the root through value variables.
    public init(nodes: [PatternNode], root: Int, valueNames: [String], attributeNames: [String]) throws(PatternError) {
        anchor = .node
        self.nodes = nodes
        self.root = root
        self.valueNames = valueNames
        self.attributeNames = attributeNames
        func inputVariables(_ n: PatternNode) -> [Int] {
            n.inputs.compactMap { if case .variable(let v) = $0 { return v }; return nil }
        }
        func optionalVariables(_ n: PatternNode) -> [Int] {
            n.inputs.compactMap { if case .optional(let v) = $0 { return v }; return nil }
        }
        func outputVariables(_ n: PatternNode) -> [Int] {
            n.outputs.compactMap { if case .variable(let v) = $0 { return v }; return nil }
        }
        // Breadth-first from the root; a variable is "surely bound" once a visited node has it
        // as a required input or an output (an optional input may be absent).
        var plan: [(Int, Link)] = [(root, .root)]
        var visited: Set<Int> = [root]
        var bound = Set(inputVariables(nodes[root]) + outputVariables(nodes[root]))
        while visited.count < nodes.count {
            var progressed = false
            for (index, node) in nodes.enumerated() where !visited.contains(index) {
                var link: Link?
                if let v = outputVariables(node).first(where: bound.contains) {
                    link = .producer(v)
                } else if let v = inputVariables(node).first(where: bound.contains) {
                    link = .consumer(v)
                } else if let v = optionalVariables(node).first(where: bound.contains) {
                    link = .consumer(v)
                }
                guard let link else { continue }
                plan.append((index, link))
                visited.insert(index)
                bound.formUnion(inputVariables(node) + outputVariables(node))
                progressed = true
            }
            if !progressed {
                let lost = nodes.indices.first { !visited.contains($0) }!
                throw PatternError("\(nodes[lost].opType) is not connected to \(nodes[root].opType) through a value")
            }
        }
        self.plan = plan
    }
}

extension Pattern {
    /// A pattern anchored at every initializer that is not a graph input (`anchor` is
    /// `.initializer`, the value is variable 0 named `name`) or at every operator set import
    /// (`.opsetImport`, the domain is attribute variable 0 named `name`).
    public init(itemAnchor anchor: PatternAnchor, name: String) {
        precondition(anchor != .node, "a node pattern needs nodes")
        self.anchor = anchor
        nodes = []
        root = 0
        valueNames = anchor == .initializer ? [name] : []
        attributeNames = anchor == .opsetImport ? [name] : []
        plan = []
    }
}

/// A pattern that cannot be matched as written.
public struct PatternError: Error, CustomStringConvertible {
    /// What is wrong.
    public let description: String
    init(_ description: String) { self.description = description }
}
