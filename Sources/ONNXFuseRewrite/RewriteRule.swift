import ONNXFuseIR

/// A value a replacement node reads or a forward points to.
public enum ValueReference: Equatable, Sendable {
    /// A value bound in the match.
    case bound(Int)
    /// A tensor the rule computed (it becomes a new initializer).
    case computed(Int)
    /// Output `index` of the replacement's own new values (`ReplacementOutput.fresh`).
    case fresh(Int)
    /// No value: an absent optional input.
    case absent
}

/// What an output of a replacement node is.
public enum ReplacementOutput: Equatable, Sendable {
    /// Takes over bound value variable `variable`: its uses, graph outputs and name.
    case replaces(Int)
    /// A new value only replacement nodes read (`ValueReference.fresh(index)`).
    case fresh(Int)
    /// No output (an absent one).
    case none
}

/// An attribute entry of a replacement node, applied in order.
public enum ReplacementAttribute: Equatable, Sendable {
    /// Every attribute of the graph node that matched pattern node `node`.
    case copyAll(fromPatternNode: Int)
    /// Attribute `name` with the value the rule prepared in slot `slot` (added or overriding).
    case set(String, slot: Int)
}

/// A node the replacement creates.
public struct ReplacementNode: Sendable {
    /// The operator.
    public var opType: String
    /// The domain ("" for the default one).
    public var domain: String
    /// The inputs.
    public var inputs: [ValueReference]
    /// The outputs.
    public var outputs: [ReplacementOutput]
    /// The attributes.
    public var attributes: [ReplacementAttribute]

    /// A replacement node.
    public init(opType: String, domain: String = "", inputs: [ValueReference], outputs: [ReplacementOutput],
                attributes: [ReplacementAttribute] = []) {
        self.opType = opType
        self.domain = domain
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
    }
}

/// What a match becomes.
public struct Replacement: Sendable {
    /// New nodes, in order (a node may read the fresh outputs of the ones before it).
    public var nodes: [ReplacementNode]
    /// `target = source`: every use of bound variable `target` reads `source` instead.
    public var forwards: [(target: Int, source: ValueReference)]
    /// A name part for each computed slot, used to name the new initializers.
    public var computedNames: [String]
    /// A name part for each fresh value.
    public var freshNames: [String]

    /// A replacement.
    public init(nodes: [ReplacementNode], forwards: [(target: Int, source: ValueReference)] = [],
                computedNames: [String] = [], freshNames: [String] = []) {
        self.nodes = nodes
        self.forwards = forwards
        self.computedNames = computedNames
        self.freshNames = freshNames
    }

    /// The bound variables the replacement takes over (outputs that replace them, and forwards).
    public var replacedVariables: Set<Int> {
        var replaced = Set(forwards.map(\.target))
        for node in nodes {
            for case .replaces(let v) in node.outputs { replaced.insert(v) }
        }
        return replaced
    }

    /// The computed slots the replacement reads (its nodes' inputs and its forwards), ascending:
    /// only those become initializers when it is applied.
    public var computedSlotsRead: [Int] {
        var read = Set<Int>()
        for node in nodes { for case .computed(let slot) in node.inputs { read.insert(slot) } }
        for case (_, .computed(let slot)) in forwards { read.insert(slot) }
        return read.sorted()
    }

    /// The new nodes that would read their own result, each with the matched variable it reads:
    /// a node reading a value that it or a later node redefines, or that a forward points at a
    /// new node's output (the graph would have a cycle). Rule compilers refuse such a rule.
    package var nodesReadingTheirOwnResult: [(node: Int, variable: Int)] {
        var found: [(node: Int, variable: Int)] = []
        for (index, node) in nodes.enumerated() {
            for case .bound(let v) in node.inputs {
                let redefinedLater = nodes[index...].contains { $0.outputs.contains(.replaces(v)) }
                let forwardedToNew = forwards.contains { target, source in
                    guard target == v, case .fresh = source else { return false }
                    return true
                }
                if redefinedLater || forwardedToNew { found.append((index, v)) }
            }
        }
        return found
    }
}

extension Replacement {
    /// New node `index` for `match`, detached (in no graph), as the engine makes it: inputs from
    /// `resolve` (an absent optional input at the end is left out), the attributes of the nodes
    /// it copies, then those it sets (`attributeValues`, by slot), outputs named by `outputName`
    /// (nil: an absent output). Attributes are indexed by name: a node may carry very many (a
    /// hostile model), a copy of a name already copied moves to the end, a set replaces in place.
    public func makeNode(_ index: Int, for match: Match, attributeValues: [AttributeValue], name: String?,
                         resolve: (ValueReference) -> Value?, outputName: (ReplacementOutput) -> String?) -> Node {
        let spec = nodes[index]
        var slots: [Attribute?] = []
        // Made once the node has many attributes; until then a search of `slots` is cheaper
        // (each name has at most one slot that is not nil).
        var slotOfName: [String: Int]?
        let indexedCount = 16
        func place(_ attribute: Attribute, replacingInPlace: Bool) {
            if slotOfName == nil, slots.count >= indexedCount {
                var names: [String: Int] = [:]
                for (index, slot) in slots.enumerated() { if let slot { names[slot.name] = index } }
                slotOfName = names
            }
            let existing = if let slotOfName { slotOfName[attribute.name] } else { slots.firstIndex { $0?.name == attribute.name } }
            if let index = existing {
                if replacingInPlace { slots[index] = attribute; return }
                slots[index] = nil
            }
            slotOfName?[attribute.name] = slots.count
            slots.append(attribute)
        }
        for entry in spec.attributes {
            switch entry {
            case .copyAll(let source):
                for attribute in match.nodes[source]!.attributes { place(attribute, replacingInPlace: false) }
            case .set(let name, let slot):
                place(Attribute(name: name, value: attributeValues[slot]), replacingInPlace: true)
            }
        }
        var inputs = spec.inputs.map(resolve)
        while let last = inputs.last, last == nil { inputs.removeLast() }
        return Node(opType: spec.opType, domain: spec.domain.isEmpty ? nil : spec.domain, name: name,
                    inputs: inputs, outputNames: spec.outputs.map(outputName), attributes: slots.compactMap { $0 })
    }
}

/// Variables of a match: value variables and attribute variables, by index.
public struct MatchVariables: Equatable, Sendable {
    /// Value variables.
    public var values: Set<Int>
    /// Attribute variables.
    public var attributes: Set<Int>

    /// Variables.
    public init(values: Set<Int> = [], attributes: Set<Int> = []) {
        self.values = values
        self.attributes = attributes
    }

    /// Adds the variables of `other`.
    public mutating func formUnion(_ other: MatchVariables) {
        values.formUnion(other.values)
        attributes.formUnion(other.attributes)
    }
}

/// What a rule's `prepare` reads of a match, declared by whoever builds the rule (the rule
/// compiler does), so that the matcher can skip assignments that cannot change its answer
/// (`MatchPruning`):
/// - a match refused by `prepare` is refused for every other assignment that binds what it
///   read alike, so the search goes back to the last step that binds one of those;
/// - `checks` (the `where` conditions) run on partial matches as soon as what they read is
///   bound, and one that refuses refuses every completion;
/// - pattern nodes that are interchangeable and whose variables `prepare` does not read are
///   bound in one order only.
///
/// The contract: `prepare`'s answer depends only on the variables in `reads`, a check's only on
/// those it lists (and both on the graph, which does not change during a search); `prepare`
/// refuses every match that a check refuses, and says which (`RuleRefusal.failedCheck`) when
/// it refuses because of a check.
public struct PrepareDependencies: Sendable {
    /// Every variable `prepare` reads.
    public var reads: MatchVariables
    /// The checks `prepare` runs, in its order, each with the variables it reads.
    public var checks: [MatchVariables]
    /// Runs check `index` alone on a match that binds at least what the check reads: nil when it
    /// holds, else the refusal it gives.
    public var runCheck: @Sendable (Int, Match, RewriteContext) -> RuleRefusal?

    /// Dependencies.
    public init(reads: MatchVariables, checks: [MatchVariables] = [],
                runCheck: @escaping @Sendable (Int, Match, RewriteContext) -> RuleRefusal? = { _, _, _ in nil }) {
        self.reads = reads
        self.checks = checks
        self.runCheck = runCheck
    }
}

/// What a rule computed for one match: tensors for the computed slots, attribute values for
/// the attribute slots.
public struct PreparedReplacement {
    /// One tensor per `Replacement.computedNames` entry.
    public var tensors: [Tensor]
    /// One value per attribute slot.
    public var attributeValues: [AttributeValue]

    /// Prepared values.
    public init(tensors: [Tensor] = [], attributeValues: [AttributeValue] = []) {
        self.tensors = tensors
        self.attributeValues = attributeValues
    }
}

/// Facts a rule may need beyond the match.
public struct RewriteContext {
    /// Treat initializers that are also graph inputs as constants.
    public var freezeInitializerInputs: Bool
    /// The version the model imports of an operator set domain ("" or "ai.onnx": the default
    /// domain), or nil when it does not import the domain.
    public var opsetVersion: (String) -> Int64?
    /// Operator-aware facts the host passes to its native rules (shape inference); the engine
    /// only hands it over.
    public var analysis: AnyObject?

    /// Facts for one run.
    public init(freezeInitializerInputs: Bool = false, opsetVersion: @escaping (String) -> Int64? = { _ in nil },
                analysis: AnyObject? = nil) {
        self.freezeInitializerInputs = freezeInitializerInputs
        self.opsetVersion = opsetVersion
        self.analysis = analysis
    }
}

/// A value a native rule puts in place: an output of the node it rewrites, or an input.
public enum OutputReplacement {
    /// An existing value that holds the same at run time (it must be defined before the node).
    case value(Value)
    /// A constant: it becomes a new initializer of the node's graph.
    case tensor(Tensor)
}

/// What a native rule does to the node it is rooted at.
public enum NativeEdit {
    /// The node goes, and each of its outputs becomes the given value (nil: an output that must
    /// be absent or unused).
    case replaceOutputs([OutputReplacement?])
    /// The node stays and computes the same values from other inputs: input `position` reads
    /// `input` instead (a position past the end is appended; an existing value must be defined
    /// before the node; a new constant is named after the node and the tensor's own name, its
    /// role, such as "shape"). Its outputs keep their names, uses and facts.
    case rewireInputs([(position: Int, input: OutputReplacement)])
}

/// The body of a native rule: for a node with the rule's root operator, what becomes of it, or
/// why the rule must not fire. It must not edit the graph; the engine applies the edit and keeps
/// its own guards (a graph output can only be taken over by a new constant or by a node output
/// of the same graph).
public typealias NativeRewrite = @Sendable (Node, RewriteContext) -> Result<NativeEdit, RuleRefusal>

/// A rewrite: where it applies (pattern), whether it may and what it computes (prepare), and
/// what the match becomes (replacement). The engine adds its own guards: every value the
/// match produces and the replacement does not take over must be used only inside the match
/// and must not be a graph output.
public struct RewriteRule: Sendable {
    /// The name reports use.
    public var name: String
    /// Higher runs first; ties by name.
    public var benefit: Int
    /// What to find.
    public var pattern: Pattern
    /// What it becomes.
    public var replacement: Replacement
    /// The rule's own checks and computations for a structural match: the prepared values, or
    /// the reason it must not fire.
    public var prepare: @Sendable (Match, RewriteContext) -> Result<PreparedReplacement, RuleRefusal>
    /// For a native rule (one written in Swift, for rewrites that need operator knowledge the
    /// rule language cannot yet express): what the root node's outputs become. Its pattern is
    /// the root node alone, and `replacement` and `prepare` are unused.
    public var native: NativeRewrite?
    /// Further operators a native rule is rooted at, besides its pattern's root (so a rule for a
    /// few operators is not tried at every node).
    public var otherRootOpTypes: [String] = []
    /// What `prepare` reads of a match; nil when unknown (it may read anything).
    public var dependencies: PrepareDependencies?
    /// Which form of its rule this is, when the rule has several (a rule file's rule whose match
    /// has alternatives): the forms share the name, run in `index` order, and count as one rule
    /// in reports.
    public var form: RuleForm?

    /// A native rule rooted at each of `opTypes` of `domain` (`[PatternNode.anyOperator]` for
    /// any operator).
    public init(name: String, benefit: Int, opTypes: [String], domain: String = "", native: @escaping NativeRewrite) {
        precondition(!opTypes.isEmpty, "a native rule needs a root operator")
        self.name = name
        self.benefit = benefit
        // A single node can never be disconnected: this pattern always builds.
        self.pattern = try! Pattern(nodes: [PatternNode(opType: opTypes[0], domain: domain, inputs: [.rest], outputs: [])],
                                    root: 0, valueNames: [], attributeNames: [])
        self.otherRootOpTypes = Array(opTypes.dropFirst())
        self.replacement = Replacement(nodes: [])
        self.prepare = { _, _ in .failure(RuleRefusal("a native rule has no prepare step")) }
        self.native = native
    }

    /// A rule.
    public init(name: String, benefit: Int, pattern: Pattern, replacement: Replacement,
                dependencies: PrepareDependencies? = nil,
                prepare: @escaping @Sendable (Match, RewriteContext) -> Result<PreparedReplacement, RuleRefusal>) {
        self.name = name
        self.benefit = benefit
        self.pattern = pattern
        self.replacement = replacement
        self.dependencies = dependencies
        self.prepare = prepare
    }
}

/// One of several forms of a rule (`RewriteRule.form`).
public struct RuleForm: Sendable, Equatable {
    /// Its position among the rule's forms, from 0: the order in which they are tried.
    public var index: Int
    /// How explanations tell it apart: "form 2 of 4 (line 7: ReduceMean(x, a))".
    public var label: String

    /// A form.
    public init(index: Int, label: String) {
        self.index = index
        self.label = label
    }
}

/// Why a rule does not fire on a match.
public struct RuleRefusal: Error, CustomStringConvertible, Sendable {
    /// The reason, such as "w is a graph input".
    public let description: String
    /// The rule itself is at fault (it asked for more than a limit allows): the run reports it
    /// as an error of the rule (`RewriteReport.ruleErrors`) instead of an explanation.
    public var isRuleError = false
    /// The check of `PrepareDependencies.checks` that refused, when one did: the refusal then
    /// depends only on what that check reads.
    public var failedCheck: Int?
    /// Where the rule says what refused ("file:line" of the `where` or `compute` line), for
    /// explanations; nil when no line of the rule did.
    public var ruleLine: String?

    /// A reason.
    public init(_ description: String) { self.description = description }

    /// An error of the rule.
    public static func ruleError(_ description: String) -> RuleRefusal {
        var refusal = RuleRefusal(description)
        refusal.isRuleError = true
        return refusal
    }
}

/// A pattern variable as explanations name it: `y`, or `y ('conv_out')` when the model's value it
/// is bound to has another name, so that "y is a graph input" cannot be read as the model's `y`.
package func variableLabel(_ variable: String, _ value: Value?) -> String {
    guard let value, value.name != variable else { return variable }
    return "\(variable) ('\(value.name)')"
}
