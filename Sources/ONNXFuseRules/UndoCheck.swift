import ONNXFuseRewrite

/// Two rules (or one rule with itself) whose rewrites can undo each other: the replacement of
/// `first` has the shape of `second`'s match, and `second`'s replacement the shape of `first`'s
/// match. Where both rules' conditions hold, each rewrite gives the other something to rewrite back
/// and the run only stops at the rewrite cap.
public struct UndoingRules: Equatable, Sendable, CustomStringConvertible {
    /// The rule whose replacement the other matches.
    public var first: String
    /// The rule that matches it (the same as `first` for a rule that undoes itself).
    public var second: String

    /// A warning for `rules check` and for the rule files a run loads.
    public var description: String {
        if first == second {
            return "rule '\(first)' may undo itself: its replacement has the shape of its match (the operators and how they connect), so where its conditions hold again it rewrites its own result and only the rewrite cap stops it"
        }
        return "rules '\(first)' and '\(second)' may undo each other: each one's replacement has the shape of the other's match (the operators and how they connect), so where both conditions hold they rewrite each other's result and only the rewrite cap stops them"
    }
}

/// The pairs of `rules` that may undo each other (see `UndoingRules`), each once, in rule order.
/// Only pairs with at least one rule among `checked` are reported (nil: every pair), so that a
/// rule file is checked against the built-in rules without re-checking the built-ins together.
///
/// What is found: two rewrites (forms) each of whose replacement has exactly the nodes of the
/// other's match, connected the same way. Not found: a cycle through three rules or more, and a
/// replacement that only contains another rule's match among more nodes (such as `Relu(x)` made
/// `Relu(Neg(Neg(x)))` beside a rule that removes `Neg(Neg(x))`); the rewrite cap still stops
/// those. Conditions are not looked at: two shapes that fit are reported even when the conditions
/// of the rules can never both hold, which is why this is a warning. Each comparison is bounded
/// (`ShapeGraph.maximumSteps`): one that would take longer is given up, not reported.
public func undoingRules(_ rules: [CompiledRule], checked: Set<String>? = nil) -> [UndoingRules] {
    let shapes = rules.map { rule in rule.rewrites.compactMap(RewriteShape.init) }
    // Forms by the operators of their match (sorted): a replacement can only fit a match with the
    // same operators, so each form is compared with few others. A match with `_` (any operator)
    // is compared with every form.
    var byMatch: [String: [(rule: Int, form: Int)]] = [:]
    var anyOperator: [(rule: Int, form: Int)] = []
    for (rule, forms) in shapes.enumerated() {
        for (form, shape) in forms.enumerated() {
            if shape.match.hasAnyOperator {
                anyOperator.append((rule, form))
            } else {
                byMatch[shape.match.operatorKey, default: []].append((rule, form))
            }
        }
    }
    var pairs = Set<[Int]>()
    for (a, forms) in shapes.enumerated() {
        for x in forms {
            for (b, form) in (byMatch[x.replacement.operatorKey] ?? []) + anyOperator {
                let (first, second) = (min(a, b), max(a, b))
                if pairs.contains([first, second]) { continue }
                if let checked, !checked.contains(rules[a].name), !checked.contains(rules[b].name) { continue }
                let y = shapes[b][form]
                if x.replacement.fits(in: y.match) && y.replacement.fits(in: x.match) { pairs.insert([first, second]) }
            }
        }
    }
    return pairs.sorted { ($0[0], $0[1]) < ($1[0], $1[1]) }.map { UndoingRules(first: rules[$0[0]].name, second: rules[$0[1]].name) }
}

/// The match and the replacement of one rewrite, as operators and how their values connect.
struct RewriteShape {
    var match: ShapeGraph
    var replacement: ShapeGraph

    /// Nil for a rewrite without node patterns or new nodes (a native rule, an item rule, a
    /// replacement of forwards only): nothing can match those.
    init?(_ rewrite: RewriteRule) {
        guard rewrite.native == nil, rewrite.pattern.anchor == .node, !rewrite.replacement.nodes.isEmpty else { return nil }
        match = ShapeGraph(pattern: rewrite.pattern)
        replacement = ShapeGraph(replacement: rewrite.replacement)
    }
}

/// A small DAG of operators: each input is the output of another node of the graph, a value from
/// outside (a leaf: the same leaf is the same value), anything, or nothing.
struct ShapeGraph {
    enum Input: Equatable {
        /// Output `output` of node `node` of this graph.
        case node(Int, output: Int)
        /// A value from outside; the same number is the same value.
        case leaf(Int)
        /// Any value (a pattern's `_`), or none.
        case any
        /// No value (an absent input of a replacement).
        case none
    }

    struct Node {
        var opType: String
        var domain: String
        var inputs: [Input]
        /// A pattern node that takes further inputs (`...`).
        var takesMore = false
        /// Its first two inputs may swap (a pattern node of a `commute` operator).
        var commutative = false
    }

    var nodes: [Node]

    /// The most candidate nodes one comparison (`fits`) tries before it gives up.
    static let maximumSteps = 100_000

    /// Whether a node matches any operator (`_`).
    var hasAnyOperator: Bool { nodes.contains { $0.opType == "_" } }

    /// The operators, sorted: graphs that can fit each other have the same key (without `_`).
    var operatorKey: String { nodes.map { $0.domain + "." + $0.opType }.sorted().joined(separator: ",") }

    init(pattern: Pattern) {
        var producer: [Int: (Int, Int)] = [:]
        for (index, node) in pattern.nodes.enumerated() {
            for (position, output) in node.outputs.enumerated() {
                if case .variable(let v) = output { producer[v] = (index, position) }
            }
        }
        nodes = pattern.nodes.map { node in
            var inputs: [Input] = []
            var takesMore = false
            for input in node.inputs {
                switch input {
                case .variable(let v), .optional(let v):
                    inputs.append(producer[v].map { .node($0.0, output: $0.1) } ?? .leaf(v))
                case .any: inputs.append(.any)
                case .rest: takesMore = true
                }
            }
            return Node(opType: node.opType, domain: node.domain == "ai.onnx" ? "" : node.domain, inputs: inputs, takesMore: takesMore,
                        commutative: node.commutative)
        }
    }

    init(replacement: ONNXFuseRewrite.Replacement) {
        var fresh: [Int: (Int, Int)] = [:]
        var replaced: [Int: (Int, Int)] = [:]
        for (index, node) in replacement.nodes.enumerated() {
            for (position, output) in node.outputs.enumerated() {
                switch output {
                case .fresh(let f): fresh[f] = (index, position)
                case .replaces(let v): replaced[v] = (index, position)
                case .none: break
                }
            }
        }
        nodes = replacement.nodes.map { node in
            let inputs: [Input] = node.inputs.map { reference in
                switch reference {
                case .bound(let v): return .leaf(v)
                // A computed constant is a value from outside the new nodes; each its own.
                case .computed(let slot): return .leaf(1_000_000 + slot)
                case .fresh(let f): return fresh[f].map { .node($0.0, output: $0.1) } ?? .none
                case .absent: return .none
                }
            }
            return Node(opType: node.opType, domain: node.domain == "ai.onnx" ? "" : node.domain, inputs: inputs)
        }
    }

    /// Whether `pattern` matches this graph node for node: every node of one stands for exactly
    /// one of the other (same operator, or any operator for `_`), internal connections map onto
    /// internal connections, and a pattern leaf stands for the same value wherever it appears.
    func fits(in pattern: ShapeGraph) -> Bool {
        guard pattern.nodes.count == nodes.count else { return false }
        var assignment = Array(repeating: -1, count: pattern.nodes.count)
        var used = Array(repeating: false, count: nodes.count)
        var leaves: [Int: Input] = [:]
        var steps = 0
        return assign(0, pattern, &assignment, &used, &leaves, &steps)
    }

    private func assign(_ index: Int, _ pattern: ShapeGraph, _ assignment: inout [Int], _ used: inout [Bool],
                        _ leaves: inout [Int: Input], _ steps: inout Int) -> Bool {
        if index == pattern.nodes.count { return connectionsFit(pattern, assignment, &leaves) }
        let wanted = pattern.nodes[index]
        for (candidate, node) in nodes.enumerated() where !used[candidate] {
            guard wanted.opType == "_" || wanted.opType == node.opType, wanted.domain == node.domain else { continue }
            steps += 1
            if steps > Self.maximumSteps { return false }
            assignment[index] = candidate
            // The connections to nodes already placed must be there, whatever the input order.
            guard connectedAlike(index, candidate, pattern, assignment) else {
                assignment[index] = -1
                continue
            }
            used[candidate] = true
            var trial = leaves
            if assign(index + 1, pattern, &assignment, &used, &trial, &steps) {
                leaves = trial
                return true
            }
            used[candidate] = false
            if steps > Self.maximumSteps { break }
        }
        assignment[index] = -1
        return false
    }

    /// Whether pattern node `index`, placed on `candidate`, reads the nodes already placed as the
    /// candidate does, and they read it alike: each such read of the pattern is a read of the
    /// graph (counted, in any order; the order, and reads a pattern's `_` stands for, are checked
    /// once every node is placed). A necessary condition, so the search can give up early.
    private func connectedAlike(_ index: Int, _ candidate: Int, _ pattern: ShapeGraph, _ assignment: [Int]) -> Bool {
        for (p, wanted) in pattern.nodes.enumerated() where assignment[p] >= 0 {
            // Only what involves the new placement can have changed.
            let involved = p == index || wanted.inputs.contains { if case .node(index, _) = $0 { return true }; return false }
            guard involved else { continue }
            var available: [String: Int] = [:]
            for case .node(let j, let output) in nodes[assignment[p]].inputs { available["\(j):\(output)", default: 0] += 1 }
            for case .node(let j, let output) in wanted.inputs where assignment[j] >= 0 {
                let key = "\(assignment[j]):\(output)"
                guard let count = available[key], count > 0 else { return false }
                available[key] = count - 1
            }
        }
        return true
    }

    /// Once every pattern node has its node: the inputs agree, in either order for a
    /// commutative pattern node.
    private func connectionsFit(_ pattern: ShapeGraph, _ assignment: [Int], _ leaves: inout [Int: Input]) -> Bool {
        for (index, wanted) in pattern.nodes.enumerated() {
            let node = nodes[assignment[index]]
            var orders = [wanted.inputs]
            if wanted.commutative, wanted.inputs.count >= 2 {
                var swapped = wanted.inputs
                swapped.swapAt(0, 1)
                orders.append(swapped)
            }
            var fitted = false
            for order in orders {
                var trial = leaves
                if inputsFit(order, wanted.takesMore, node.inputs, assignment, &trial) {
                    leaves = trial
                    fitted = true
                    break
                }
            }
            if !fitted { return false }
        }
        return true
    }

    private func inputsFit(_ wanted: [Input], _ takesMore: Bool, _ actual: [Input], _ assignment: [Int],
                           _ leaves: inout [Int: Input]) -> Bool {
        let actual = Array(actual.reversed().drop { $0 == .none }.reversed())
        guard actual.count <= wanted.count || takesMore else { return false }
        for (position, input) in wanted.enumerated() {
            let value = position < actual.count ? actual[position] : .none
            switch input {
            case .any: continue
            case .none: if value != .none { return false }
            case .node(let node, let output):
                guard value == .node(assignment[node], output: output) else { return false }
            case .leaf(let v):
                // A pattern leaf stands for any one value outside the matched nodes, the same each time.
                if case .node = value { return false }
                if let bound = leaves[v] {
                    if bound != value { return false }
                } else {
                    leaves[v] = value
                }
            }
        }
        return true
    }
}
