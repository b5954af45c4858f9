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
        values = Array(repeating: nil, count: pattern.valueNames.count)
        attributes = Array(repeating: nil, count: pattern.attributeNames.count)
        nodes = Array(repeating: nil, count: pattern.nodes.count)
    }

    /// The value bound to `variable`; nil when absent or unbound.
    public func value(_ variable: Int) -> Value? { values[variable] ?? nil }

    /// The graph nodes matched, in pattern order.
    public var matchedNodes: [Node] { nodes.compactMap { $0 } }
}

/// Finds matches of a pattern anchored at a node. A failed match is a result: the reason
/// of the deepest attempt, for `--explain`.
final class Matcher {
    let pattern: Pattern
    private(set) var deepestFailure: (depth: Int, reason: String) = (-1, "")
    /// Candidate nodes tried in this search: a pattern of several interchangeable nodes
    /// (`a = Relu(x)`, `b = Relu(x)`, ...) against a value with many readers has a number of
    /// assignments exponential in the pattern's size, so the search stops at a budget.
    private var steps = 0
    /// The most candidates one search at one node tries.
    static let maximumSteps = 10_000

    init(pattern: Pattern) { self.pattern = pattern }

    /// The first match at `root` that `accept` takes (in a deterministic search order), or nil.
    /// `accept` returns nil to take the match or a reason to go on searching.
    func match(at root: Node, accept: (Match) -> String?) -> Match? {
        deepestFailure = (-1, "")
        steps = 0
        guard pattern.nodes[pattern.root].hasOperator(of: root) else {
            fail(0, "\(root.opType) is not \(pattern.nodes[pattern.root].operatorDescription)")
            return nil
        }
        var result: Match?
        search(step: 0, Match(pattern: pattern), root: root, accept: accept, result: &result)
        return result
    }

    private func fail(_ depth: Int, _ reason: @autoclosure () -> String) {
        if depth > deepestFailure.depth { deepestFailure = (depth, reason()) }
    }

    private func name(_ variable: Int) -> String { pattern.valueNames[variable] }

    private func search(step: Int, _ match: Match, root: Node, accept: (Match) -> String?, result: inout Match?) {
        if result != nil || steps > Self.maximumSteps { return }
        if step == pattern.plan.count {
            if let reason = accept(match) { fail(step, reason) } else { result = match }
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
                return fail(step, "\(name(v)) is \(describeDefinition(value)), not an output of \(pattern.nodes[index].operatorDescription)")
            }
            guard pattern.nodes[index].hasOperator(of: producer) else {
                return fail(step, "\(name(v)) is produced by \(producer.opType) '\(producer.name ?? "")', not \(pattern.nodes[index].operatorDescription)")
            }
            candidates = [producer]
        case .consumer(let v):
            guard let value = match.value(v) else { return fail(step, "\(name(v)) is absent") }
            var seen = Set<ObjectIdentifier>()
            // Only readers with the pattern node's operator can match: filtered before the
            // search branches on them.
            for use in value.uses where pattern.nodes[index].hasOperator(of: use.node) && seen.insert(ObjectIdentifier(use.node)).inserted {
                candidates.append(use.node)
            }
            if candidates.isEmpty { return fail(step, "nothing reads \(name(v)) as \(pattern.nodes[index].operatorDescription)") }
        }
        for candidate in candidates {
            steps += 1
            if steps > Self.maximumSteps {
                deepestFailure = (Int.max, "the pattern search stopped after trying \(Self.maximumSteps) candidate nodes here")
                return
            }
            guard candidate.graph === root.graph else {
                fail(step, "\(pattern.nodes[index].operatorDescription) would be in another graph than the match")
                continue
            }
            if match.nodes.contains(where: { $0 === candidate }) { continue }
            for orderedInputs in inputOrders(pattern.nodes[index]) {
                var next = match
                if let reason = bind(index, orderedInputs, to: candidate, &next) {
                    fail(step, reason)
                    continue
                }
                search(step: step + 1, next, root: root, accept: accept, result: &result)
                if result != nil { return }
            }
        }
    }

    /// The input lists to try: as written, and with the first two swapped when commutative.
    private func inputOrders(_ node: PatternNode) -> [[PatternInput]] {
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
        // Built only for a failure's message: binding is the search's inner loop.
        var label: String { "\(p.matchesAnyOperator ? node.opType : p.opType) '\(node.name ?? "")'" }
        guard p.hasOperator(of: node) else { return "\(label) is \(node.opType)" }
        var consumedAll = false
        for (position, input) in inputs.enumerated() {
            let actual = node.input(position)
            switch input {
            case .rest:
                consumedAll = true
            case .any:
                break
            case .variable(let v):
                guard let actual else { return "\(label) has no input \(position) for \(name(v))" }
                if let bound = match.values[v] {
                    guard bound === actual else { return "\(label) reads \(actual.name) where \(name(v)) is \(bound?.name ?? "absent")" }
                } else {
                    match.values[v] = .some(actual)
                }
            case .optional(let v):
                if let bound = match.values[v] {
                    guard bound === actual else { return "\(label) reads \(actual?.name ?? "nothing") where \(name(v)) is \(bound?.name ?? "absent")" }
                } else {
                    match.values[v] = .some(actual)
                }
            }
            if consumedAll { break }
        }
        if !consumedAll, node.inputs.count > inputs.count, node.inputs[inputs.count...].contains(where: { $0 != nil }) {
            return "\(label) has \(node.inputs.count) inputs, more than the pattern's \(inputs.count)"
        }
        for (position, output) in p.outputs.enumerated() {
            let actual = position < node.outputs.count ? node.outputs[position] : nil
            guard case .variable(let v) = output else { continue }
            if let bound = match.values[v] {
                guard bound === actual else { return "\(label) output \(position) is not \(name(v))" }
            } else {
                match.values[v] = .some(actual)
            }
        }
        for position in p.outputs.count..<max(p.outputs.count, node.outputs.count) {
            if let extra = node.outputs[position], !extra.isUnused {
                return "\(label) output \(position) '\(extra.name)' is used but not part of the pattern"
            }
        }
        for constraint in p.attributes {
            switch constraint {
            case .equals(let attributeName, let literal):
                guard let value = node.attribute(attributeName)?.value else { return "\(label) has no attribute \(attributeName)" }
                guard literal.matches(value) else { return "\(label) attribute \(attributeName) is not \(literal)" }
            case .bind(let attributeName, let variable, let defaultValue):
                if let value = node.attribute(attributeName)?.value {
                    match.attributes[variable] = value
                } else if let defaultValue {
                    match.attributes[variable] = defaultValue
                } else {
                    return "\(label) has no attribute \(attributeName)"
                }
            case .absent(let attributeName):
                if node.attribute(attributeName) != nil { return "\(label) has attribute \(attributeName)" }
            }
        }
        match.nodes[index] = node
        return nil
    }
}
