import ONNXFuseIR
import ONNXFuseOps
import ONNXFuseRewrite

/// The limits of `--verify`'s checks: a rewrite past them is reported as not verified.
public struct VerificationLimits: Sendable {
    /// The most nodes either side of one rewrite's check may evaluate (the match, and what the
    /// check walks back through to reach values both sides read).
    public var maximumNodes = 64
    /// The most elements of any one value a check makes, reads or computes.
    public var maximumElements = 1 << 25
    /// The most work (about one unit per multiply-add) one side of a check may take: about a
    /// second of the reference kernels (ResNet-50's largest Conv is about 2^27).
    public var maximumWork = 1 << 30
    /// The most work one run of a whole model may take (`--verify=model`; a ResNet-50 at 224 ×
    /// 224 is about 2^32).
    public var maximumModelWork = 1 << 35

    /// The defaults.
    public init() {}
}

/// What checking one rewrite found.
public enum RewriteCheck: Equatable, Sendable {
    /// Every replaced value is within the tolerance of its type; `error` is the worst relative
    /// error, `compared` the values compared (0 for a rewrite that only removes what nothing reads).
    case agree(error: Double, compared: Int)
    /// A replaced value is beyond tolerance; `reason` says what differs when the error alone does
    /// not (a type, a shape, integers, or the new side failing where the old one ran).
    case differ(value: String, error: Double, tolerance: Double, reason: String?)
    /// Nothing is known: an operator without a kernel, a value that cannot be made, a limit.
    case notVerified(reason: String)
}

/// A rewrite that changed the numbers.
public struct VerificationFailure: Sendable, CustomStringConvertible {
    /// The rule.
    public var rule: String
    /// The node the rule matched at (its name, else its first output's name).
    public var node: String
    /// The replaced value that differs.
    public var value: String
    /// Its error relative to the old value's magnitude (infinity when the new side failed).
    public var error: Double
    /// The tolerance of its element type.
    public var tolerance: Double
    /// What differs when the relative error does not say it: the type, the shape, elements of an
    /// exact type (how many, and the first), or the new side failing where the old one ran.
    public var reason: String?

    /// `rule 'r' at node 'n' changed 'y' by 0.25 (relative; tolerance 1e-05)`.
    public var description: String {
        if let reason { return "rule '\(rule)' at node '\(node)' changed '\(value)': \(reason)" }
        let amount = error.isFinite ? formatError(error) : "an infinite amount (a NaN, an infinity, a type or a shape differs)"
        return "rule '\(rule)' at node '\(node)' changed '\(value)' by \(amount) (relative to its magnitude; tolerance \(formatError(tolerance)))"
    }
}

/// Per rule, what `--verify` found.
public struct RuleVerification: Sendable {
    /// The rule.
    public var rule: String
    /// Rewrites checked (agreeing or not).
    public var checked = 0
    /// Rewrites that agreed.
    public var agreed = 0
    /// Rewrites that could not be checked.
    public var notVerified = 0
    /// Why the first of them could not be, naming its node.
    public var firstNotVerifiedReason: String?
    /// The worst relative error of the rewrites checked (infinity once one failed).
    public var worstError = 0.0

    /// An empty record for `rule`.
    public init(rule: String) { self.rule = rule }
}

/// What `--verify` found over a run: per rule (in the order the rules first fired), and the
/// rewrites beyond tolerance.
public struct VerificationReport: Sendable {
    /// Per rule.
    public var rules: [RuleVerification] = []
    /// The rewrites beyond tolerance, in the order they happened.
    public var failures: [VerificationFailure] = []
    /// Rewrites checked.
    public var checked: Int { rules.reduce(0) { $0 + $1.checked } }
    /// Rewrites that could not be checked.
    public var notVerified: Int { rules.reduce(0) { $0 + $1.notVerified } }

    /// An empty report.
    public init() {}
}

/// An error as text with two significant digits: `1.2e-07`, `0`, `inf`.
public func formatError(_ error: Double) -> String {
    if error == 0 { return "0" }
    if !error.isFinite { return "inf" }
    var exponent = 0
    var mantissa = error
    while mantissa >= 10 { mantissa /= 10; exponent += 1 }
    while mantissa < 1 { mantissa *= 10; exponent -= 1 }
    var rounded = (mantissa * 10).rounded() / 10
    if rounded >= 10 { rounded /= 10; exponent += 1 }
    return "\(rounded)e\(exponent < 0 ? "-" : "+")\(abs(exponent) < 10 ? "0" : "")\(abs(exponent))"
}

/// Checks each rewrite as it is applied: the values it replaces are computed with the
/// reference kernels from seeded inputs, before and after, and compared with
/// `NumericTolerance`.
///
/// The old side is the match; the new side the nodes the rewrite adds, or, for a value that
/// already exists (a duplicate merged into an earlier node, a value read through), what computes
/// it. Both read the same values at their boundary: constants keep their stored values (a
/// BatchNormalization's variance is the model's own), integer values known to inference (shape
/// arithmetic) keep theirs, and every other value is a seeded random tensor of its inferred type
/// and shape (a symbolic dimension takes a small size, the same for the same symbol). Integer
/// values are walked back through what computes them (a shape from a `Shape`), and the old side
/// is extended back to a value only the new side reads, so that both compute from one boundary.
final class RewriteVerifier {
    let model: Model
    let inference: ShapeInference
    let limits: VerificationLimits
    let freezeInitializerInputs: Bool
    let seed: UInt64
    private var events = 0
    private(set) var report = VerificationReport()
    private var ruleIndex: [String: Int] = [:]

    init(model: Model, inference: ShapeInference, limits: VerificationLimits, freezeInitializerInputs: Bool, seed: UInt64) {
        self.model = model
        self.inference = inference
        self.limits = limits
        self.freezeInitializerInputs = freezeInitializerInputs
        self.seed = seed
    }

    /// Checks `event` and records the outcome under its rule.
    func record(_ event: RewriteEvent) {
        let outcome = check(event)
        let index: Int
        if let known = ruleIndex[event.rule] {
            index = known
        } else {
            index = report.rules.count
            ruleIndex[event.rule] = index
            report.rules.append(RuleVerification(rule: event.rule))
        }
        let node = event.root.map(label) ?? ""
        switch outcome {
        case .agree(let error, _):
            report.rules[index].checked += 1
            report.rules[index].agreed += 1
            report.rules[index].worstError = max(report.rules[index].worstError, error)
        case .differ(let value, let error, let tolerance, let reason):
            report.rules[index].checked += 1
            report.rules[index].worstError = max(report.rules[index].worstError, error)
            report.failures.append(VerificationFailure(rule: event.rule, node: node, value: value, error: error,
                                                       tolerance: tolerance, reason: reason))
        case .notVerified(let reason):
            report.rules[index].notVerified += 1
            if report.rules[index].firstNotVerifiedReason == nil {
                report.rules[index].firstNotVerifiedReason = "at node '\(node)': \(reason)"
            }
        }
    }

    func label(_ node: Node) -> String { node.name ?? node.outputs.compactMap { $0?.name }.first ?? node.opType }

    /// Checks one rewrite.
    func check(_ event: RewriteEvent) -> RewriteCheck {
        events += 1
        // What nothing reads need not hold the same (a TopK's unused indices).
        let used = event.replacements.filter { !$0.old.isUnused }
        let event = used.count == event.replacements.count ? event
            : RewriteEvent(rule: event.rule, root: event.root, removedNodes: event.removedNodes, addedNodes: event.addedNodes,
                           replacements: used, rewiredInputs: event.rewiredInputs)
        guard !event.replacements.isEmpty else { return .agree(error: 0, compared: 0) }
        guard let root = event.root, let graph = root.graph else { return .notVerified(reason: "the rewrite has no node") }
        var plan = CheckPlan(verifier: self, graph: graph, event: event)
        if let reason = plan.build() { return .notVerified(reason: reason) }
        let eventSeed = seed &+ UInt64(events) &* 0x9E37_79B9_7F4A_7C15
        var outcome = plan.run(seed: eventSeed)
        // Inference names the dimensions it cannot relate with fresh symbols, so seeded values
        // may not fit together (a Reshape of [s1, 49, 32] to [batch, 4, 4, 7, 7, 32]): the old
        // side then grows back a level at a time, towards values whose shapes agree.
        for _ in 0..<Self.growthAttempts {
            guard case .notVerified = outcome, plan.oldSideFailed, plan.growBack() else { break }
            outcome = plan.run(seed: eventSeed)
        }
        // Values in [-2, 2] and integers 0 or 1 cannot tell a Clip at 6 from a Relu, an Abs of an
        // integer from the integer, or a float from its round trip through float16: a check runs
        // again on large values, then on values of every precision. Where such values do not fit
        // (a shape of -3), the first run's verdict stands.
        // Affine operators on static shapes learn nothing from them: their narrow check is the
        // most telling (a wrong bias shows most beside small products), and ResNet-50's 53 folds
        // would take twice as long.
        let spreadsTellMore = !plan.isAffineOnStaticShapes
        // A tiny check (a few elements) draws its values several times: one draw of four
        // elements may not hold the one that overflows.
        let draws = plan.lastOldWork < Self.tinyCheckWork ? 4 : 1
        for (index, spread) in [SeededInputs.Spread.large, .fine].enumerated() where spreadsTellMore {
            for draw in 0..<draws {
                guard case .agree(let error, let compared) = outcome else { break }
                let again = plan.run(seed: eventSeed ^ (0xA5A5_A5A5_A5A5_A5A5 &+ UInt64(index * 16 + draw)), spread: spread)
                switch again {
                case .agree(let otherError, _): outcome = .agree(error: max(error, otherError), compared: compared)
                case .differ: outcome = again
                case .notVerified: break
                }
            }
        }
        return outcome
    }

    /// Below this much work (in `GraphEvaluator.estimatedWork` units) a check's large and fine
    /// values are drawn four times.
    static let tinyCheckWork = 1 << 16

    /// How many levels the old side grows back when it cannot be evaluated on seeded values.
    static let growthAttempts = 8

    /// The stored value of a constant, or nil for any other value.
    func constant(_ value: Value) -> Tensor? { value.constantTensor(freezeInitializerInputs: freezeInitializerInputs) }
}

/// What one rewrite's check evaluates: the old side's nodes, the new side's, and the values
/// both read.
private struct CheckPlan {
    let verifier: RewriteVerifier
    let graph: Graph
    let event: RewriteEvent
    /// The old side, in graph order once built.
    var old: [Node] = []
    var oldSet = Set<ObjectIdentifier>()
    /// Nodes outside the match the new side evaluates (an earlier duplicate the match merges into).
    var existing: [Node] = []
    var existingSet = Set<ObjectIdentifier>()
    /// Whether the last `run` could not evaluate the old side.
    var oldSideFailed = false
    /// The work the last `run`'s old side took.
    var lastOldWork = 0

    init(verifier: RewriteVerifier, graph: Graph, event: RewriteEvent) {
        self.verifier = verifier
        self.graph = graph
        self.event = event
    }

    func id(_ object: AnyObject) -> ObjectIdentifier { ObjectIdentifier(object) }

    /// Values the old side computes.
    var oldProduced: Set<ObjectIdentifier> {
        var produced = Set<ObjectIdentifier>()
        for node in old { for case let output? in node.outputs { produced.insert(id(output)) } }
        return produced
    }

    /// The values the old side reads and does not compute.
    var oldBoundary: [Value] {
        let produced = oldProduced
        var seen = Set<ObjectIdentifier>()
        var boundary: [Value] = []
        for node in old {
            for case let input? in node.inputs where !produced.contains(id(input)) && seen.insert(id(input)).inserted {
                boundary.append(input)
            }
        }
        return boundary
    }

    func evaluable(_ node: Node) -> String? {
        if node.attributes.contains(where: \.hasSubgraphs) { return "\(node.opType) '\(verifier.label(node))' has subgraphs" }
        return nil
    }

    mutating func addOld(_ node: Node) -> Bool {
        guard oldSet.insert(id(node)).inserted else { return true }
        old.append(node)
        return old.count <= verifier.limits.maximumNodes
    }

    /// For a difference the relative error does not describe (an integer, a NaN or an infinity
    /// that moved): how many elements differ, and the first.
    static func differingElements(_ actual: TensorValue, _ expected: TensorValue) -> String? {
        var count = 0
        var first: String?
        func note(_ index: Int, _ a: String, _ e: String) {
            count += 1
            if first == nil { first = "element \(index) is \(a) instead of \(e)" }
        }
        switch (actual.elements, expected.elements) {
        case (.reals(let a), .reals(let e)):
            // Only NaNs and infinities make a relative error infinite.
            for (index, (x, y)) in zip(a, e).enumerated() where (x.isNaN != y.isNaN) || ((x.isInfinite || y.isInfinite) && x != y) {
                note(index, "\(x)", "\(y)")
            }
        case (.integers(let a), .integers(let e)):
            for (index, (x, y)) in zip(a, e).enumerated() where x != y { note(index, "\(x)", "\(y)") }
        case (.booleans(let a), .booleans(let e)):
            for (index, (x, y)) in zip(a, e).enumerated() where x != y { note(index, "\(x)", "\(y)") }
        default:
            return nil
        }
        guard let first else { return nil }
        return "\(count) of \(expected.count) elements differ (\(first))"
    }

    /// Whether every node either side evaluates is affine (`OperatorRegistry.affineOperators`) and every value
    /// the check seeds is a float or double of a static shape.
    var isAffineOnStaticShapes: Bool {
        let nodes = old + existing + event.addedNodes
        guard nodes.allSatisfy({ $0.isDefaultDomain && OperatorRegistry.affineOperators.contains($0.opType) }) else { return false }
        for node in nodes {
            for case let input? in node.inputs where verifier.constant(input) == nil {
                let facts = verifier.inference.facts(of: input)
                guard facts.elementType == .float || facts.elementType == .double, facts.staticShape != nil else { return false }
            }
        }
        return true
    }

    /// Builds the plan; a reason when the rewrite cannot be checked.
    mutating func build() -> String? {
        for node in event.removedNodes { _ = addOld(node) }
        // What the new side reads and must get from the old side's boundary or computations.
        var addedProduced = Set<ObjectIdentifier>()
        for node in event.addedNodes { for case let output? in node.outputs { addedProduced.insert(id(output)) } }
        var needs: [Value] = []
        for node in event.addedNodes { needs += node.inputs.compactMap { $0 } }
        for case (_, .value(let value)) in event.rewiredInputs { needs.append(value) }
        for (old, new) in event.replacements {
            if case .value(let value) = new, value !== old { needs.append(value) }
        }
        walkBackIntegers()
        var next = 0
        while next < needs.count {
            let value = needs[next]
            next += 1
            if verifier.constant(value) != nil || addedProduced.contains(id(value)) { continue }
            if oldProduced.contains(id(value)) || oldBoundary.contains(where: { $0 === value }) { continue }
            if let producer = value.producer, existingSet.contains(id(producer)) { continue }
            // An ancestor of the old side: the old side grows back to it, so both read it.
            if let path = pathFromAncestor(value) {
                for node in path where !addOld(node) { return "the check would evaluate more than \(verifier.limits.maximumNodes) nodes" }
                continue
            }
            // Computed elsewhere (an earlier duplicate): the new side evaluates its producer.
            if let producer = value.producer, producer.graph === graph, !oldSet.contains(id(producer)) {
                guard existing.count < verifier.limits.maximumNodes else {
                    return "the check would evaluate more than \(verifier.limits.maximumNodes) nodes"
                }
                existingSet.insert(id(producer))
                existing.append(producer)
                needs += producer.inputs.compactMap { $0 }
            }
            // Otherwise (a graph input the old side does not read) it is seeded on its own.
        }
        walkBackIntegers()
        for node in old + existing + event.addedNodes {
            if let reason = evaluable(node) { return reason }
            // A node drawn at random (a Dropout that may train) has no one value to compare.
            if node.isDefaultDomain, let version = verifier.model.opsetVersion(domain: ""),
               !OperatorRegistry.isDeterministic(node, opsetVersion: version, constant: { value in
                   verifier.constant(value).flatMap { try? TensorValue(tensor: $0) }
               }) {
                return "\(node.opType) '\(verifier.label(node))' is not deterministic (a random operator, or a Dropout that may train)"
            }
        }
        old = inGraphOrder(old)
        existing = inGraphOrder(existing)
        return nil
    }

    /// Adds the producers of the old side's computed boundary values; false when there are none
    /// or the node limit would be passed.
    mutating func growBack() -> Bool {
        var producers: [Node] = []
        var seen = Set<ObjectIdentifier>()
        for value in oldBoundary where verifier.constant(value) == nil {
            guard let producer = value.producer, producer.graph === graph, !oldSet.contains(id(producer)),
                  evaluable(producer) == nil, seen.insert(id(producer)).inserted else { continue }
            producers.append(producer)
        }
        guard !producers.isEmpty, old.count + producers.count <= verifier.limits.maximumNodes else { return false }
        for producer in producers { _ = addOld(producer) }
        walkBackIntegers()
        old = inGraphOrder(old)
        return true
    }

    /// Extends the old side back through what computes its integer boundary values (shapes,
    /// indices computed from shapes), so that they are computed, not drawn at random; up to the
    /// node limit, past which they are seeded like any other value.
    mutating func walkBackIntegers() {
        var changed = true
        while changed {
            changed = false
            for value in oldBoundary where verifier.constant(value) == nil {
                guard old.count < verifier.limits.maximumNodes else { return }
                guard let type = verifier.inference.elementType(of: value),
                      TensorValue.kind(of: type) == .integer,
                      let producer = value.producer, producer.graph === graph, producer.isDefaultDomain,
                      !producer.attributes.contains(where: \.hasSubgraphs) else { continue }
                _ = addOld(producer)
                changed = true
            }
        }
    }

    /// When `value` is an ancestor of the old side (within a few levels): the nodes between it
    /// and the old side, which the old side must take in to read it.
    func pathFromAncestor(_ value: Value) -> [Node]? {
        // Ancestors of the old boundary, nearest first.
        var ancestors: [Node] = []
        var seen = Set<ObjectIdentifier>()
        var frontier = oldBoundary
        var found = false
        var depth = 0
        while !frontier.isEmpty && depth < 8 && ancestors.count < verifier.limits.maximumNodes {
            var next: [Value] = []
            for boundaryValue in frontier {
                if boundaryValue === value { found = true }
                guard let producer = boundaryValue.producer, producer.graph === graph, !oldSet.contains(id(producer)),
                      seen.insert(id(producer)).inserted else { continue }
                ancestors.append(producer)
                next += producer.inputs.compactMap { $0 }
            }
            if found { break }
            frontier = next
            depth += 1
        }
        guard found || ancestors.contains(where: { $0.inputs.contains { $0 === value } }) else { return nil }
        // The ancestors that read `value`, directly or through one another.
        var path = Set<ObjectIdentifier>()
        var reads = Set([id(value)])
        var grew = true
        while grew {
            grew = false
            for node in ancestors where !path.contains(id(node)) && node.inputs.contains(where: { $0.map { reads.contains(id($0)) } ?? false }) {
                path.insert(id(node))
                for case let output? in node.outputs { reads.insert(id(output)) }
                grew = true
            }
        }
        return ancestors.filter { path.contains(id($0)) }
    }

    /// `nodes` in the order of their graph (which is topological).
    func inGraphOrder(_ nodes: [Node]) -> [Node] {
        nodes.sorted { $0 !== $1 && $0.isBeforeUnchecked($1) }
    }

    /// Evaluates both sides on one seeded boundary and compares the replaced values.
    mutating func run(seed: UInt64, spread: SeededInputs.Spread = .narrow) -> RewriteCheck {
        oldSideFailed = false
        let limits = verifier.limits
        var evaluator = GraphEvaluator(model: verifier.model)
        evaluator.workLimit = limits.maximumWork
        evaluator.elementLimit = limits.maximumElements
        // With large values, a symbol's first size is 1: what broadcasts or squeezes at 1.
        var seeded = SeededInputs(seed: seed, smallestSymbolSize: spread == .large ? 1 : 2)
        seeded.spread = spread
        var values: [ObjectIdentifier: TensorValue] = [:]
        // The boundary: what the old side, the existing nodes and the added ones read and none computes.
        var computed = oldProduced
        for node in existing + event.addedNodes { for case let output? in node.outputs { computed.insert(id(output)) } }
        var boundary: [Value] = []
        var seen = Set<ObjectIdentifier>()
        var extra: [Value] = []
        for case (_, .value(let value)) in event.rewiredInputs { extra.append(value) }
        for (old, new) in event.replacements { if case .value(let value) = new, value !== old { extra.append(value) } }
        for value in (old + existing + event.addedNodes).flatMap({ $0.inputs.compactMap { $0 } }) + extra
            where !computed.contains(id(value)) && seen.insert(id(value)).inserted {
            boundary.append(value)
        }
        let indexBounds = self.indexBounds()
        for value in boundary {
            switch boundaryValue(value, seeded: &seeded, indexBound: indexBounds[id(value)]) {
            case .success(let tensor): values[id(value)] = tensor
            case .failure(let error): return .notVerified(reason: error.message)
            }
        }
        func version(_ node: Node) -> Int64 {
            verifier.model.opsetVersion(domain: node.isDefaultDomain ? "" : node.domain!) ?? 1
        }
        func evaluate(_ node: Node, inputs: [Value?], given: [Int: TensorValue] = [:], into values: inout [ObjectIdentifier: TensorValue],
                      work: inout Int) throws(OperatorError) {
            var arguments: [TensorValue?] = []
            for (position, input) in inputs.enumerated() {
                if let tensor = given[position] { arguments.append(tensor); continue }
                guard let input else { arguments.append(nil); continue }
                guard let tensor = values[id(input)] else { throw OperatorError("'\(input.name)' has no value in the check") }
                arguments.append(tensor)
            }
            let results = try evaluator.evaluate(node, inputs: arguments, version: version(node), work: &work)
            for (output, result) in zip(node.outputs, results) { if let output, let result { values[id(output)] = result } }
        }
        // The old side.
        var oldWork = 0
        do {
            defer { lastOldWork = oldWork }
            for node in old { try evaluate(node, inputs: node.inputs, into: &values, work: &oldWork) }
        } catch {
            oldSideFailed = true
            return .notVerified(reason: "the matched nodes cannot be evaluated: \(error.message)")
        }
        // Each value's error is relative to the largest magnitude of what it is computed from
        // through affine operators (`magnitude(of:)`): a BatchNormalization that cancels a Conv's
        // bias against its mean rounds at the Conv's magnitude, and an output of exactly 0 has no
        // magnitude of its own; but a Softmax of a -1e9 mask is measured at its own scale.
        func magnitude(of value: Value) -> Double {
            var largest = 0.0
            var stack = [value]
            var seen = Set([id(value)])
            while let next = stack.popLast() {
                if let tensor = values[id(next)], case .reals(let reals) = tensor.elements {
                    for element in reals where element.isFinite { largest = max(largest, abs(element)) }
                }
                guard let producer = next.producer, oldSet.contains(id(producer)), producer.isDefaultDomain,
                      OperatorRegistry.scalePreservingOperators.contains(producer.opType) else { continue }
                for case let input? in producer.inputs where seen.insert(id(input)).inserted { stack.append(input) }
            }
            return largest
        }
        var expected: [TensorValue] = []
        for (old, _) in event.replacements {
            guard let value = values[id(old)] else { return .notVerified(reason: "'\(old.name)' was not computed") }
            expected.append(value)
        }
        // The new side: the old values it replaces are forgotten first.
        var newValues = values
        for (old, _) in event.replacements { newValues[id(old)] = nil }
        var newWork = 0
        var actual: [TensorValue] = []
        do {
            for node in existing { try evaluate(node, inputs: node.inputs, into: &newValues, work: &newWork) }
            for node in event.addedNodes { try evaluate(node, inputs: node.inputs, into: &newValues, work: &newWork) }
            if !event.rewiredInputs.isEmpty, let root = event.root {
                var inputs: [Value?] = root.inputs
                var given: [Int: TensorValue] = [:]
                for (position, input) in event.rewiredInputs {
                    while inputs.count <= position { inputs.append(nil) }
                    switch input {
                    case .value(let value): inputs[position] = value
                    case .tensor(let tensor): given[position] = try TensorValue(tensor: tensor)
                    }
                }
                try evaluate(root, inputs: inputs, given: given, into: &newValues, work: &newWork)
            }
            for (old, new) in event.replacements {
                switch new {
                case .value(let value):
                    guard let tensor = newValues[id(value)] else { throw OperatorError("'\(value.name)' was not computed") }
                    actual.append(tensor)
                case .tensor(let tensor):
                    _ = old
                    actual.append(try TensorValue(tensor: tensor))
                }
            }
        } catch {
            let name = event.replacements.first?.old.name ?? ""
            return .differ(value: name, error: .infinity, tolerance: 0,
                           reason: "the replacement cannot be computed where the matched nodes can: \(error)")
        }
        var worst = 0.0
        for ((old, _), (expected, actual)) in zip(event.replacements, zip(expected, actual)) {
            let error = NumericTolerance.error(of: actual, against: expected, magnitude: magnitude(of: old))
            let tolerance = NumericTolerance.relative(for: expected.dataType)
            if !(error <= tolerance) {
                var reason: String?
                if actual.dataType != expected.dataType {
                    reason = "its type changes from \(expected.dataType) to \(actual.dataType)"
                } else if actual.shape != expected.shape {
                    reason = "its shape changes from \(expected.shape) to \(actual.shape)"
                } else {
                    reason = Self.differingElements(actual, expected)
                }
                return .differ(value: old.name, error: error, tolerance: tolerance, reason: reason)
            }
            worst = max(worst, error)
        }
        return .agree(error: worst, compared: expected.count)
    }

    /// For integer boundary values that index a table (Gather's indices): the size of the axis
    /// they index, so that seeded indices stay inside it.
    func indexBounds() -> [ObjectIdentifier: Int] {
        var bounds: [ObjectIdentifier: Int] = [:]
        let nodes = old + existing + event.addedNodes
        for node in nodes {
            guard let indices = node.input(1), bounds[id(indices)] == nil,
                  let bound = indexBound(of: indices, readers: nodes, facts: verifier.inference.facts(of:)) else { continue }
            bounds[id(indices)] = bound
        }
        return bounds
    }

    /// The tensor a boundary value takes: a constant's stored value, an integer value inference
    /// knows, else a seeded one.
    func boundaryValue(_ value: Value, seeded: inout SeededInputs, indexBound: Int?) -> Result<TensorValue, OperatorError> {
        let limit = verifier.limits.maximumElements
        if let tensor = verifier.constant(value) {
            if let count = tensor.elementCount, count > limit {
                return .failure(OperatorError("'\(value.name)' has \(count) elements, more than a check reads (\(limit))"))
            }
            do { return .success(try TensorValue(tensor: tensor)) } catch { return .failure(error) }
        }
        let facts = verifier.inference.facts(of: value)
        guard let type = facts.elementType, let shape = facts.shape else {
            return .failure(OperatorError("the type or shape of '\(value.name)' is not known"))
        }
        if TensorValue.kind(of: type) == .integer, shape.count <= 1, let known = facts.shapeValue,
           case let dims = known.compactMap({ if case .value(let v) = $0 { return v } else { return nil } }), dims.count == known.count {
            return .success(TensorValue(type, shape: shape.isEmpty ? [] : [dims.count], integers: dims))
        }
        var staticCount = 1
        for case .value(let size) in shape {
            let (product, overflow) = staticCount.multipliedReportingOverflow(by: Int(clamping: max(size, 0)))
            staticCount = overflow ? Int.max : product
        }
        guard staticCount <= limit else {
            return .failure(OperatorError("'\(value.name)' would have \(staticCount) elements, more than a check makes (\(limit))"))
        }
        guard let tensor = seeded.tensor(type, shape: shape, integerBound: indexBound) else {
            return .failure(OperatorError("no seeded value can be made for '\(value.name)' (\(type), shape \(shape))"))
        }
        guard tensor.count <= limit else {
            return .failure(OperatorError("'\(value.name)' has \(tensor.count) elements, more than a check makes (\(limit))"))
        }
        return .success(tensor)
    }
}
