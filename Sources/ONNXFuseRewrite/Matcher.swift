import ONNXFuseIR

/// A successful structural match: what each variable and pattern node stands for.
public struct Match {
    /// Per value variable: the value, `.some(nil)` for an absent optional value, nil if unbound.
    public internal(set) var values: [Value??]
    /// Per attribute variable: the attribute's value (or the default), nil if unbound.
    public internal(set) var attributes: [AttributeValue?]
    /// Per pattern node: the graph node it matched.
    public internal(set) var nodes: [Node?]

    init(pattern: Pattern) {
        // `map`, not `Array(repeating:count:)`: made at every search, and the latter takes an
        // unspecialized path through the runtime (several hundred instructions more per array).
        values = pattern.valueNames.map { _ in nil }
        attributes = pattern.attributeNames.map { _ in nil }
        nodes = pattern.nodes.map { _ in nil }
    }

    /// The value bound to `variable`; nil when absent or unbound.
    public func value(_ variable: Int) -> Value? { values[variable] ?? nil }

    /// The attributes alone: the values and nodes left unbound, so that the copy keeps no
    /// part of the graph alive (for computations run again after the rewrite).
    package func keepingAttributesOnly() -> Match {
        var copy = self
        copy.values = values.map { _ in nil }
        copy.nodes = nodes.map { _ in nil }
        return copy
    }

    /// The graph nodes matched, in pattern order.
    public var matchedNodes: [Node] { nodes.compactMap { $0 } }
}

/// Why a complete match was not taken.
struct MatchRefusal {
    /// The reason, for `--explain`.
    var reason: String
    /// The rule's `prepare` refused it (so every assignment binding what it reads alike is
    /// refused too); false for the engine's own guards.
    var byPrepare: Bool
    /// The check of `PrepareDependencies.checks` that refused, when one did.
    var failedCheck: Int?
    /// The line of the rule that refused (`RuleRefusal.ruleLine`).
    var ruleLine: String?
}

/// Finds matches of a pattern anchored at a node. A failed match is a result: the reason
/// of the deepest attempt, for `--explain`.
final class Matcher {
    let pattern: Pattern
    let pruning: MatchPruning
    /// Runs one of the rule's checks on a partial match (`PrepareDependencies.runCheck`).
    let runCheck: ((Int, Match) -> RuleRefusal?)?
    /// What searches on the same graph found (checks' answers, candidate lists).
    let memo: SearchMemo?
    private(set) var deepestFailure: (depth: Int, reason: String) = (-1, "")
    /// The line of the rule that gave `deepestFailure`, when the rule's own check did.
    private(set) var deepestFailureLine: String?
    /// Whether `deepestFailure` refused a complete match (the pattern met the graph, and a check
    /// or the engine's guard refused it) rather than a partial one.
    var deepestFailureIsComplete: Bool { deepestFailure.depth == pattern.plan.count }
    /// Candidate nodes tried in this search: a pattern of several interchangeable nodes
    /// (`a = Relu(x)`, `b = Relu(x)`, ...) against a value with many readers has a number of
    /// assignments exponential in the pattern's size, so the search stops at a budget (after
    /// `MatchPruning` has removed what it can).
    private(set) var steps = 0
    /// The most candidates one search at one node tries.
    static let maximumSteps = 10_000
    /// How many readers of a value listed (or checked alone) count as one candidate tried.
    static let readersPerStep = 64
    /// The most candidates this search tries: `maximumSteps`, or less when the rule's budget for
    /// the whole run (`Driver.searchBudget`) is nearly spent.
    let stepLimit: Int
    /// Whether failures say why (`deepestFailure`'s reason); without it no message is built.
    let explains: Bool
    /// Per plan step: the position in its candidate list of the candidate being tried.
    private var chosen: [Int]
    /// Per plan step: its candidate list (the same for the members of a symmetry class).
    private var lists: [[Node]]
    /// When set, the search goes back to this plan step (-1: it ends): nothing deeper can change
    /// the refusal just found.
    private var unwindTo: Int?
    /// Whether a complete assignment has been refused: from then on `--explain`'s reason is
    /// settled and the rule's checks may refuse partial matches.
    private var refusedComplete = false

    init(pattern: Pattern, pruning: MatchPruning? = nil, runCheck: ((Int, Match) -> RuleRefusal?)? = nil, memo: SearchMemo? = nil,
         stepLimit: Int = Matcher.maximumSteps, explains: Bool = true) {
        self.pattern = pattern
        self.stepLimit = stepLimit
        self.explains = explains
        self.pruning = pruning ?? MatchPruning(pattern: pattern)
        self.runCheck = runCheck
        self.memo = memo
        chosen = pattern.plan.map { _ in 0 }
        lists = pattern.plan.map { _ in [] }
    }

    /// The first match at `root` that `accept` takes (in a deterministic search order), or nil.
    /// `accept` returns nil to take the match or a refusal to go on searching.
    func match(at root: Node, accept: (Match) -> MatchRefusal?) -> Match? {
        deepestFailure = (-1, "")
        deepestFailureLine = nil
        steps = 0
        unwindTo = nil
        refusedComplete = false
        guard pattern.nodes[pattern.root].hasOperator(of: root) else {
            fail(0, "\(root.opType) is not \(pattern.nodes[pattern.root].operatorDescription)")
            return nil
        }
        var result: Match?
        search(step: 0, Match(pattern: pattern), root: root, accept: accept, result: &result)
        return result
    }

    private func fail(_ depth: Int, _ reason: @autoclosure () -> String, line: String? = nil) {
        if depth > deepestFailure.depth {
            deepestFailure = (depth, explains ? reason() : "")
            deepestFailureLine = line
        }
    }

    private func name(_ variable: Int) -> String { pattern.valueNames[variable] }

    /// A pattern variable bound to `value`, as explanations name it (`variableLabel`).
    private func label(_ variable: Int, _ value: Value) -> String { variableLabel(pattern.valueNames[variable], value) }

    /// Goes back to plan step `target` (at most): the search resumes with that step's next
    /// candidate.
    private func unwind(to target: Int) {
        unwindTo = min(unwindTo ?? target, target)
    }

    private func search(step: Int, _ match: Match, root: Node, accept: (Match) -> MatchRefusal?, result: inout Match?) {
        if result != nil || steps > stepLimit { return }
        if step == pattern.plan.count {
            guard let refusal = accept(match) else {
                result = match
                return
            }
            fail(step, refusal.reason, line: refusal.ruleLine)
            refusedComplete = true
            // Every assignment that binds what refused alike is refused too.
            var target = step - 1
            if refusal.byPrepare, let readsStep = pruning.readsStep {
                if let check = refusal.failedCheck, check < pruning.checkStep.count {
                    target = pruning.checkStep[check]
                } else {
                    target = readsStep
                }
            }
            // A check that `prepare` did not reach may refuse on less.
            if let early = refusingStep(pruning.earlyChecks, match), early < target { target = early }
            if target < step - 1 { unwind(to: target) }
            return
        }
        let (index, link) = pattern.plan[step]
        var candidates: [Node] = []
        switch link {
        case .root:
            candidates = [root]
        case .producer(let v):
            guard let value = match.value(v) else { return fail(step, "\(name(v)) is absent") }
            guard let producer = value.producer else {
                return fail(step, "\(label(v, value)) is \(describeDefinition(value)), not an output of \(pattern.nodes[index].operatorDescription)")
            }
            guard pattern.nodes[index].hasOperator(of: producer) else {
                return fail(step, "\(label(v, value)) is produced by \(producer.opType) '\(producer.name ?? "")', not \(pattern.nodes[index].operatorDescription)")
            }
            candidates = [producer]
        case .consumer(let v):
            guard let value = match.value(v) else { return fail(step, "\(name(v)) is absent") }
            if let previous = pruning.follows[step] {
                // The previous member of its symmetry class read the same value.
                candidates = lists[previous]
                lists[step] = candidates
                break
            }
            candidates = readers(of: value, step: step, index: index)
            lists[step] = candidates
            if candidates.isEmpty { return fail(step, "nothing reads \(label(v, value)) as \(pattern.nodes[index].operatorDescription)") }
            // Each pattern node of this operator that reads the value needs a reader of its own;
            // this holds for every assignment that binds the value alike.
            let required = pruning.requiredReaders[step]
            if candidates.count < required {
                fail(step, "\(label(v, value)) has \(candidates.count) reader\(candidates.count == 1 ? "" : "s") that \(candidates.count == 1 ? "is" : "are") \(pattern.nodes[index].operatorDescription), not the pattern's \(required)")
                return unwind(to: pruning.linkStep[step])
            }
        }
        // A member of a symmetry class takes a later candidate than the member before it, and
        // leaves enough for the members after it.
        var first = 0
        if let previous = pruning.follows[step] { first = chosen[previous] + 1 }
        let last = candidates.count - 1 - pruning.membersAfter[step]
        // Once the reason to explain is settled, candidates that a check on them alone refuses
        // are skipped at once (`nextTaken` is the same list's, kept for the graph).
        var nextTaken: [Int]?
        var position = first - 1
        while true {
            position += 1
            if refusedComplete, !pruning.candidateChecks[step].isEmpty, case .consumer(let v) = link, let value = match.value(v) {
                if nextTaken == nil {
                    nextTaken = takenPositions(of: value, candidates, step: step, index: index)
                    // None of the value's readers will do: nothing bound since the value can help.
                    if nextTaken![0] == candidates.count { return unwind(to: pruning.linkStep[step]) }
                }
                position = nextTaken![position]
            }
            guard position <= last else { break }
            let candidate = candidates[position]
            chosen[step] = position
            steps += 1
            if steps > stepLimit {
                deepestFailureLine = nil
                deepestFailure = (Int.max, stepLimit < Self.maximumSteps
                    ? "the rule's pattern searches have tried as many candidate nodes as this model allows them (\(Driver.searchBudgetPerNode) per node, at least \(Driver.minimumSearchBudget)); it is not tried further"
                    : "the pattern search stopped after trying \(Self.maximumSteps) candidate nodes here")
                return
            }
            guard candidate.graph === root.graph else {
                fail(step, "\(pattern.nodes[index].operatorDescription) would be in another graph than the match")
                continue
            }
            if match.nodes.contains(where: { $0 === candidate }) { continue }
            for orderedInputs in Self.inputOrders(pattern.nodes[index]) {
                var next = match
                if let reason = bind(index, orderedInputs, to: candidate, &next) {
                    fail(step, reason)
                    continue
                }
                if refusedComplete, let refusal = refusingStep(pruning.checksAt[step], next) {
                    // Every completion is refused: back to where what the check reads was bound.
                    unwind(to: refusal)
                } else {
                    search(step: step + 1, next, root: root, accept: accept, result: &result)
                }
                if result != nil { return }
                // Going back to this step: its next alternative (input order or candidate).
                if let target = unwindTo {
                    if target < step { return }
                    unwindTo = nil
                }
            }
        }
    }

    /// The nodes among `value`'s readers that can match the node of plan step `step` (pattern
    /// node `index`): those with its operator, filtered before the search branches on them. A
    /// node that reads the value more than once is listed once, where it first appears.
    private func readers(of value: Value, step: Int, index: Int) -> [Node] {
        let key = SearchMemo.ListKey(step: step, value: ObjectIdentifier(value))
        if let known = memo?[key] { return known.nodes }
        // Listing the readers is charged to the search: a rule that rewrites one of 40,000
        // readers of a value at each of 400,000 rewrites (a rule that never converges) would
        // scan 10^10 readers uncharged.
        steps += value.useList.count / Self.readersPerStep
        let patternNode = pattern.nodes[index]
        var candidates: [Node] = []
        var seen = Set<ObjectIdentifier>()
        for use in value.useList where patternNode.hasOperator(of: use.node) {
            let node = use.node
            if node.inputs.count > 1, node.inputs.lazy.filter({ $0 === value }).count > 1,
               !seen.insert(ObjectIdentifier(node)).inserted {
                continue
            }
            candidates.append(node)
        }
        memo?[key] = SearchMemo.Candidates(nodes: candidates, nextTaken: nil)
        return candidates
    }

    /// For each position of `candidates` (the readers of `value` for plan step `step`), the first
    /// position at or after it whose candidate the step's `candidateChecks` do not refuse
    /// (`candidates.count`: none), with one past the end.
    private func takenPositions(of value: Value, _ candidates: [Node], step: Int, index: Int) -> [Int] {
        let key = SearchMemo.ListKey(step: step, value: ObjectIdentifier(value))
        if let known = memo?[key]?.nextTaken { return known }
        steps += candidates.count / Self.readersPerStep
        let orderedInputs = pattern.nodes[index].inputs
        var next = Array(repeating: candidates.count, count: candidates.count + 2)
        for position in candidates.indices.reversed() {
            // What the checks read is bound by the candidate alone: a match of it alone will do
            // (a candidate that does not fit even alone fits no match).
            var alone = Match(pattern: pattern)
            let taken = bind(index, orderedInputs, to: candidates[position], &alone) == nil
                && refusingStep(pruning.candidateChecks[step], alone) == nil
            next[position] = taken ? position : next[position + 1]
        }
        next[candidates.count + 1] = candidates.count
        if let memo {
            memo[key] = SearchMemo.Candidates(nodes: candidates, nextTaken: next)
        }
        return next
    }

    /// Runs `checks` on `match` until one refuses; the plan step to go back to then (a refusal
    /// that is an error of the rule is left for the complete match).
    private func refusingStep(_ checks: [Int], _ match: Match) -> Int? {
        guard let runCheck else { return nil }
        for check in checks {
            let refused: Bool
            if let memo {
                let reads = pruning.checkReads[check]
                var bound: [ObjectIdentifier?] = []
                bound.reserveCapacity(reads.values.count + reads.attributes.count)
                for v in reads.values { bound.append(match.value(v).map(ObjectIdentifier.init)) }
                for a in reads.attributes {
                    let node = pruning.attributeNode[a]
                    bound.append(node < 0 ? nil : match.nodes[node].map(ObjectIdentifier.init))
                }
                let key = SearchMemo.CheckKey(check: check, bound: bound)
                if let known = memo[key] {
                    refused = known
                } else {
                    refused = runCheck(check, match).map { !$0.isRuleError } ?? false
                    memo[key] = refused
                }
            } else {
                refused = runCheck(check, match).map { !$0.isRuleError } ?? false
            }
            if refused { return pruning.checkStep[check] }
        }
        return nil
    }

    /// The input lists to try: as written, and with the first two swapped when commutative.
    static func inputOrders(_ node: PatternNode) -> [[PatternInput]] {
        guard node.commutative, node.inputs.count >= 2, node.inputs[0] != node.inputs[1] else { return [node.inputs] }
        var swapped = node.inputs
        swapped.swapAt(0, 1)
        return [node.inputs, swapped]
    }

    private func describeDefinition(_ value: Value) -> String {
        switch value.definition {
        case .graphInput: return value.hasInitializer ? "an initializer that is also a graph input" : "a graph input"
        case .initializer, .sparseInitializer: return "an initializer"
        case .nodeOutput: return "a node output"
        case .detached: return "detached"
        }
    }

    /// Binds pattern node `index` to `node`; a reason when it does not fit.
    private func bind(_ index: Int, _ inputs: [PatternInput], to node: Node, _ match: inout Match) -> String? {
        let p = pattern.nodes[index]
        // Built only for a failure's message, and only when explaining: binding is the
        // search's inner loop.
        var label: String { "\(p.matchesAnyOperator ? node.opType : p.opType) '\(node.name ?? "")'" }
        func failure(_ reason: @autoclosure () -> String) -> String { explains ? reason() : "" }
        guard p.hasOperator(of: node) else { return failure("\(label) is \(node.opType)") }
        var consumedAll = false
        for (position, input) in inputs.enumerated() {
            let actual = node.input(position)
            switch input {
            case .rest:
                consumedAll = true
            case .any:
                break
            case .variable(let v):
                guard let actual else { return failure("\(label) has no input \(position) for \(name(v))") }
                if let bound = match.values[v] {
                    guard bound === actual else { return failure("\(label) reads \(actual.name) where \(name(v)) is \(bound?.name ?? "absent")") }
                } else {
                    match.values[v] = .some(actual)
                }
            case .optional(let v):
                if let bound = match.values[v] {
                    guard bound === actual else { return failure("\(label) reads \(actual?.name ?? "nothing") where \(name(v)) is \(bound?.name ?? "absent")") }
                } else {
                    match.values[v] = .some(actual)
                }
            }
            if consumedAll { break }
        }
        if !consumedAll, node.inputs.count > inputs.count, node.inputs[inputs.count...].contains(where: { $0 != nil }) {
            return failure("\(label) has \(node.inputs.count) inputs, more than the pattern's \(inputs.count)")
        }
        for (position, output) in p.outputs.enumerated() {
            let actual = position < node.outputs.count ? node.outputs[position] : nil
            guard case .variable(let v) = output else { continue }
            if let bound = match.values[v] {
                guard bound === actual else { return failure("\(label) output \(position) is not \(name(v))") }
            } else {
                match.values[v] = .some(actual)
            }
        }
        for position in p.outputs.count..<max(p.outputs.count, node.outputs.count) {
            if let extra = node.outputs[position], !extra.isUnused {
                return failure("\(label) output \(position) '\(extra.name)' is used but not part of the pattern")
            }
        }
        for constraint in p.attributes {
            switch constraint {
            case .equals(let attributeName, let literal):
                guard let value = node.attribute(attributeName)?.value else { return failure("\(label) has no attribute \(attributeName)") }
                guard literal.matches(value) else { return failure("\(label) attribute \(attributeName) is not \(literal)") }
            case .bind(let attributeName, let variable, let defaultValue):
                if let value = node.attribute(attributeName)?.value {
                    match.attributes[variable] = value
                } else if let defaultValue {
                    match.attributes[variable] = defaultValue.attributeValue
                } else {
                    return failure("\(label) has no attribute \(attributeName)")
                }
            case .absent(let attributeName):
                if node.attribute(attributeName) != nil { return failure("\(label) has attribute \(attributeName)") }
            }
        }
        match.nodes[index] = node
        return nil
    }
}
