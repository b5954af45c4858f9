import ONNXFuseIR

/// What a search for one rule's pattern may skip, worked out once per rule from its pattern,
/// its replacement and what its `prepare` reads (`PrepareDependencies`). None of it changes
/// which match is found first, nor (until a complete assignment has been refused) the reason
/// `--explain` gives:
///
/// - **Reader counts.** A value read by k pattern nodes of one operator needs k distinct readers
///   of that operator: fewer, and no assignment below exists.
/// - **Symmetry.** Non-root pattern nodes that are interchangeable (same operator, inputs,
///   attribute constraints and link in the plan; no other pattern node reads their outputs;
///   `prepare` reads none of their variables; the replacement treats their outputs alike) are
///   assigned readers in increasing order of their common reader list only. Swapping two of them
///   in a match is then an automorphism of the pattern that keeps the engine's guards' and
///   `prepare`'s answers, so the accepted matches come in full orbits; the first accepted one in
///   the unrestricted order is increasing (else the swap that sorts it would come first), and
///   so is the first complete assignment, whose refusal `--explain` reports.
/// - **Refusals.** A complete match that `prepare` refuses is refused for every assignment that
///   binds what `prepare` reads alike (what the refusing check reads, when a check refused): the
///   search goes back to the last step binding one of those. Once a complete assignment has
///   been refused, each check runs as soon as what it reads is bound, and one that refuses
///   refuses every completion at once. A check that reads only what one step binds is a
///   property of that step's candidate: the candidates it refuses are skipped at once. Answers
///   and candidate lists are kept (`SearchMemo`) until the graph changes, so a candidate
///   refused at one root is not tried again at the next.
struct MatchPruning {
    /// Per plan step: the step of the previous member of its symmetry class, whose candidate
    /// this step's must follow in their common candidate list; nil when none.
    let follows: [Int?]
    /// Per plan step: how many members of its symmetry class come after it.
    let membersAfter: [Int]
    /// Per plan step that follows a value to its readers: how many pattern nodes of the step's
    /// operator read the value (0 otherwise).
    let requiredReaders: [Int]
    /// Per plan step: the last earlier step that binds the value it follows (-1: none).
    let linkStep: [Int]
    /// Per plan step: the checks that run once it is bound (those of `candidateChecks` aside).
    let checksAt: [[Int]]
    /// Per plan step: the checks that read only what the step binds, when its node has one
    /// input order (they refuse or take a candidate whatever the rest of the match).
    let candidateChecks: [[Int]]
    /// Every check that runs before the complete match, by step.
    let earlyChecks: [Int]
    /// Per check: the last plan step binding what it reads (-1: nothing).
    let checkStep: [Int]
    /// Per check: the value variables and the attribute variables it reads.
    let checkReads: [(values: [Int], attributes: [Int])]
    /// Per attribute variable: the pattern node that binds it (-1: none).
    let attributeNode: [Int]
    /// The last plan step binding what `prepare` reads; nil when it may read anything.
    let readsStep: Int?

    /// Nothing to skip.
    init(pattern: Pattern) {
        let count = pattern.plan.count
        follows = Array(repeating: nil, count: count)
        membersAfter = Array(repeating: 0, count: count)
        requiredReaders = Array(repeating: 0, count: count)
        linkStep = Array(repeating: -1, count: count)
        checksAt = Array(repeating: [], count: count)
        candidateChecks = Array(repeating: [], count: count)
        earlyChecks = []
        checkStep = []
        checkReads = []
        attributeNode = []
        readsStep = nil
    }

    init(rule: RewriteRule) {
        let pattern = rule.pattern
        let plan = pattern.plan
        // The plan step that first binds each variable (an input, optional or not, or an output
        // of the step's node; an attribute variable with its node).
        var valueStep = Array(repeating: -1, count: pattern.valueNames.count)
        var attributeStep = Array(repeating: -1, count: pattern.attributeNames.count)
        var attributeNode = Array(repeating: -1, count: pattern.attributeNames.count)
        for (step, (index, _)) in plan.enumerated().reversed() {
            let node = pattern.nodes[index]
            for input in node.inputs {
                switch input {
                case .variable(let v), .optional(let v): valueStep[v] = step
                case .any, .rest: break
                }
            }
            for case .variable(let v) in node.outputs { valueStep[v] = step }
            for case .bind(_, let a, _) in node.attributes {
                attributeStep[a] = step
                attributeNode[a] = index
            }
        }
        self.attributeNode = attributeNode
        func lastStep(_ variables: MatchVariables) -> Int {
            max(variables.values.map { valueStep[$0] }.max() ?? -1, variables.attributes.map { attributeStep[$0] }.max() ?? -1)
        }

        var requiredReaders = Array(repeating: 0, count: plan.count)
        var linkStep = Array(repeating: -1, count: plan.count)
        for (step, (index, link)) in plan.enumerated() {
            guard case .consumer(let v) = link else { continue }
            linkStep[step] = valueStep[v]
            let node = pattern.nodes[index]
            requiredReaders[step] = pattern.nodes.filter { other in
                other.inputs.contains(.variable(v)) && other.normalizedDomain == node.normalizedDomain
                    && (node.matchesAnyOperator || other.opType == node.opType)
            }.count
        }
        self.requiredReaders = requiredReaders
        self.linkStep = linkStep

        var checksAt: [[Int]] = Array(repeating: [], count: plan.count)
        var candidateChecks: [[Int]] = Array(repeating: [], count: plan.count)
        var checkStep: [Int] = []
        if let dependencies = rule.dependencies {
            for (check, reads) in dependencies.checks.enumerated() {
                // A check runs where what it reads is bound (maybe before checks written before
                // it: a refusal is a refusal whichever check gives it).
                let step = max(lastStep(reads), 0)
                checkStep.append(lastStep(reads))
                let (index, link) = plan[step]
                let firstStep = reads.values.map { valueStep[$0] } + reads.attributes.map { attributeStep[$0] }
                if case .consumer = link, firstStep.allSatisfy({ $0 == step }), Matcher.inputOrders(pattern.nodes[index]).count == 1 {
                    candidateChecks[step].append(check)
                } else {
                    checksAt[step].append(check)
                }
            }
            checkReads = dependencies.checks.map { ($0.values.sorted(), $0.attributes.sorted()) }
            readsStep = lastStep(dependencies.reads)
        } else {
            checkReads = []
            readsStep = nil
        }
        self.checksAt = checksAt
        self.candidateChecks = candidateChecks
        earlyChecks = zip(checksAt, candidateChecks).flatMap { $1 + $0 }
        self.checkStep = checkStep

        var follows = [Int?](repeating: nil, count: plan.count)
        var membersAfter = Array(repeating: 0, count: plan.count)
        for members in Self.symmetryClasses(rule) {
            for (position, step) in members.enumerated() {
                follows[step] = position == 0 ? nil : members[position - 1]
                membersAfter[step] = members.count - 1 - position
            }
        }
        self.follows = follows
        self.membersAfter = membersAfter
    }

    /// The classes of interchangeable pattern nodes, each as its plan steps in order (two
    /// members at least).
    static func symmetryClasses(_ rule: RewriteRule) -> [[Int]] {
        guard let dependencies = rule.dependencies, rule.native == nil, rule.pattern.anchor == .node else { return [] }
        let pattern = rule.pattern
        let replacement = rule.replacement
        let replaced = replacement.replacedVariables
        // Values some pattern node reads, or some forward puts in place of another.
        var readInPattern = Set<Int>()
        for node in pattern.nodes {
            for input in node.inputs {
                if case .variable(let v) = input { readInPattern.insert(v) }
                if case .optional(let v) = input { readInPattern.insert(v) }
            }
        }
        var forwardSources = Set<Int>()
        for case (_, .bound(let v)) in replacement.forwards { forwardSources.insert(v) }
        var readByReplacement = Set<Int>()
        for node in replacement.nodes { for case .bound(let v) in node.inputs { readByReplacement.insert(v) } }
        var copied = Set<Int>()
        for node in replacement.nodes { for case .copyAll(let source) in node.attributes { copied.insert(source) } }

        var classes: [String: [Int]] = [:]
        var order: [String] = []
        for (step, (index, link)) in pattern.plan.enumerated() {
            guard case .consumer(let linkVariable) = link else { continue }
            let node = pattern.nodes[index]
            let outputs = node.outputs.compactMap { if case .variable(let v) = $0 { return v }; return nil }
            let attributes = node.attributes.compactMap { if case .bind(_, let a, _) = $0 { return a }; return nil }
            // Its variables move with it: nothing else may tell them apart.
            guard outputs.allSatisfy({ !readInPattern.contains($0) && !forwardSources.contains($0) && !dependencies.reads.values.contains($0) }),
                  attributes.allSatisfy({ !dependencies.reads.attributes.contains($0) }) else { continue }
            var key = "\(node.opType)|\(node.normalizedDomain)|\(node.commutative)|\(node.inputs)|via \(linkVariable)|copied \(copied.contains(index))"
            for output in node.outputs {
                guard case .variable(let v) = output else { key += "|_"; continue }
                let sources = replacement.forwards.filter { $0.target == v }.map { "\($0.source)" }.sorted()
                key += "|out replaced \(replaced.contains(v)) read \(readByReplacement.contains(v)) forwarded \(sources)"
            }
            for constraint in node.attributes {
                switch constraint {
                case .equals(let name, let literal): key += "|\(name) = \(literal)"
                case .bind(let name, _, let defaultValue): key += "|\(name): \(defaultValue.map { String(describing: $0) } ?? "-")"
                case .absent(let name): key += "|!\(name)"
                }
            }
            if classes[key] == nil { order.append(key) }
            classes[key, default: []].append(step)
        }
        return order.compactMap { classes[$0]!.count > 1 ? classes[$0] : nil }
    }
}

/// What one rule's searches found that holds while the graph does not change (a check's answer
/// depends only on what it reads, by `PrepareDependencies`' contract; a value's readers are the
/// graph's): the same candidate refused at every root is then refused once.
final class SearchMemo {
    struct CheckKey: Hashable {
        let check: Int
        /// The values the check reads (nil: absent), then the nodes that bound the attributes it reads.
        let bound: [ObjectIdentifier?]
    }

    struct ListKey: Hashable {
        let step: Int
        let value: ObjectIdentifier
    }

    /// A plan step's candidates among the readers of a value, and for each position the first
    /// position at or after it whose candidate the step's `candidateChecks` take (nil until needed).
    struct Candidates {
        var nodes: [Node]
        var nextTaken: [Int]?
    }

    /// The graph's version (`RewriteReport.rewrites`) what is kept holds for.
    private var version = -1
    /// Per check and what it read: whether it refused (and not as an error of the rule).
    private var refused: [CheckKey: Bool] = [:]
    private var lists: [ListKey: Candidates] = [:]
    /// The most entries kept in each table (past it, they are dropped and found again).
    static let capacity = 100_000

    /// Forgets everything when the graph has changed since it was found.
    func use(version: Int) {
        guard version != self.version else { return }
        self.version = version
        refused.removeAll(keepingCapacity: true)
        lists.removeAll(keepingCapacity: true)
    }

    subscript(key: CheckKey) -> Bool? {
        get { refused[key] }
        set {
            if refused.count >= Self.capacity { refused.removeAll(keepingCapacity: true) }
            refused[key] = newValue
        }
    }

    subscript(key: ListKey) -> Candidates? {
        get { lists[key] }
        set {
            if lists.count >= Self.capacity { lists.removeAll(keepingCapacity: true) }
            lists[key] = newValue
        }
    }
}
