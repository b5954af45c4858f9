import ONNXFuseIR

/// How rules are applied.
public struct RewriteOptions: Sendable {
    /// Treat initializers that are also graph inputs as constants.
    public var freezeInitializerInputs = false
    /// Record why rules whose root matched did not fire.
    public var explain = false
    /// Stop after this many rewrites (nil: 10 per node of the model, at least 1,000).
    public var maximumRewrites: Int?
    /// Called now and then (every few hundred nodes tried) with how far the run is.
    public var progress: (@Sendable (RewriteProgress) -> Void)?
    /// Asked now and then (with `progress`): true stops the run, leaving the rewrites done so
    /// far, each complete (`RewriteReport.wasStopped`).
    public var shouldStop: (@Sendable () -> Bool)?
    /// An operator of one input and one output that passes its input through (ONNX's
    /// `Identity`), as the host's operator set names it (domain "" for the default one). A
    /// graph output that a rewrite forwards to a value that cannot take its name (a graph
    /// input, an initializer, another graph output, a value of an enclosing graph) gets a node
    /// of it that keeps the name. nil: such a rewrite is refused.
    public var passThroughOperator: (opType: String, domain: String)?

    /// The defaults.
    public init() {}
}

/// How far a run of the rules is (`RewriteOptions.progress`).
public struct RewriteProgress: Sendable, Equatable {
    /// Rewrites done so far.
    public var rewrites: Int
    /// Nodes tried so far (a node is tried again when a rewrite touches it).
    public var nodesTried: Int
    /// Nodes waiting to be tried.
    public var nodesQueued: Int

    /// A progress.
    public init(rewrites: Int, nodesTried: Int, nodesQueued: Int) {
        self.rewrites = rewrites
        self.nodesTried = nodesTried
        self.nodesQueued = nodesQueued
    }
}

/// Why a rule did not fire where its root matched.
public struct Explanation: Equatable, Sendable, CustomStringConvertible {
    /// The rule.
    public var rule: String
    /// The node's name (or its first output's name when it has none).
    public var node: String
    /// The node's operator.
    public var opType: String
    /// The check that failed.
    public var reason: String
    /// The line of the rule whose check failed ("rules.rules:7"), when one of its `where` or
    /// `compute` lines did (not for a pattern that does not meet the graph).
    public var ruleLine: String?

    /// `fold-conv-batchnorm at node 'bn3': y has 2 users`, then the rule's line when known
    /// (` (batchnorm.rules:12)`).
    public var description: String { "\(rule) at node '\(node)': \(reason)" + (ruleLine.map { " (\($0))" } ?? "") }
}

/// What a run of the rules did.
public struct RewriteReport: Sendable {
    /// Each rule that fired and how often, in rule order.
    public var fired: [(rule: String, count: Int)] = []
    /// Why rules did not fire (with `RewriteOptions.explain`), in the order first seen.
    public var explanations: [Explanation] = []
    /// Whether the rewrite cap stopped the run before a fixed point.
    public var reachedRewriteCap = false
    /// Rewrites done.
    public var rewrites = 0
    /// Whether `RewriteOptions.shouldStop` stopped the run.
    public var wasStopped = false
    /// Errors of the rules themselves (a limit exceeded), each once: a caller should treat the
    /// run as failed.
    public var ruleErrors: [String] = []
    /// Candidate nodes the pattern searches tried in all (for tests of the search's pruning).
    var candidatesTried = 0
}

/// Applies `rules` to every graph of `model` until none applies or the rewrite cap is
/// reached. Rules run in benefit order, then by name. A worklist revisits only the nodes a
/// rewrite created or touched, so a run is linear in the model's size for a fixed rule set;
/// the same model and rules always give the same result.
///
/// `inputsChanged` is called for every node that reads a value a rewrite put in place of
/// another; it returns the nodes whose facts changed as a result, which are tried again.
/// `nodeCreated` is called for every node a rewrite inserts, in order, once its inputs are
/// connected, with the name of the rule that made it: operator-aware passes (shape inference,
/// schema checks) keep their facts current through it. `rewriteWillApply` is called for every
/// rewrite once its new nodes are in place and before any old value is replaced, so that a
/// verifier can compute the old values and the new ones side by side. A rewrite that made a
/// node of an operator domain the model does not import yet imports it (at version 1).
public func applyRules(_ rules: [RewriteRule], to model: Model, options: RewriteOptions = RewriteOptions(),
                       analysis: AnyObject? = nil, nodeCreated: ((_ node: Node, _ rule: String) -> Void)? = nil,
                       inputsChanged: ((Node) -> [Node])? = nil,
                       rewriteWillApply: ((RewriteEvent) -> Void)? = nil) -> RewriteReport {
    var driver = Driver(rules: rules, model: model, options: options)
    driver.nodeCreated = nodeCreated
    driver.inputsChanged = inputsChanged
    driver.rewriteWillApply = rewriteWillApply
    driver.analysis = analysis
    return driver.run()
}

/// A rewrite about to be applied (`applyRules`' `rewriteWillApply`): the graph holds the old
/// nodes and the new ones side by side, and no value has been replaced yet.
public struct RewriteEvent {
    /// The rule.
    public let rule: String
    /// The node the rule matched at (nil for rules on initializers and operator set imports, which
    /// only remove what nothing reads).
    public let root: Node?
    /// The nodes whose values the rewrite replaces: the match (a native rule's node).
    public let removedNodes: [Node]
    /// The nodes the rewrite inserted, in order.
    public let addedNodes: [Node]
    /// Each used value that is replaced, and what holds the same value afterwards.
    public let replacements: [(old: Value, new: OutputReplacement)]
    /// For a rewrite that keeps its node and changes its inputs (`NativeEdit.rewireInputs`): the
    /// new inputs. The node's outputs are then both the old values and, computed from these
    /// inputs, the new ones.
    public let rewiredInputs: [(position: Int, input: OutputReplacement)]

    /// An event.
    public init(rule: String, root: Node?, removedNodes: [Node], addedNodes: [Node],
                replacements: [(old: Value, new: OutputReplacement)], rewiredInputs: [(position: Int, input: OutputReplacement)] = []) {
        self.rule = rule
        self.root = root
        self.removedNodes = removedNodes
        self.addedNodes = addedNodes
        self.replacements = replacements
        self.rewiredInputs = rewiredInputs
    }
}

struct Driver {
    let rules: [RewriteRule]
    /// The rules by reference, for the hot paths: binding a `RewriteRule` to a local copies (and
    /// retains) each of its fields, at every one of the hundreds of thousands of attempts.
    let entries: [RuleEntry]
    /// For a rule whose pattern is one node: per output position of its pattern node, whether
    /// its replacement takes that output over. Every other output of the node must be unused,
    /// which is checked before matching.
    let singleNodeTakenOver: [[Bool]?]
    /// What each node rule's pattern search may skip; made at the rule's first search (most
    /// rules never meet their root operator in a given model, and making them all took a
    /// millisecond per round).
    var pruning: [MatchPruning?]
    /// Whether `pruning` has been made for the rule (at its first search; node-anchored rules only).
    var pruningMade: [Bool]
    /// Per rule: what the root's neighbours must be for its pattern to match (see `RootNeighbours`).
    let rootNeighbours: [RootNeighbours?]
    /// What each rule's searches found that holds while the graph does not change.
    let searchMemos: [SearchMemo]
    /// Per rule: the candidate nodes its pattern searches may still try in this run. Each search
    /// at one node stops at `Matcher.maximumSteps`; this bounds the sum over all nodes, so that
    /// a rule whose every search runs to that limit cannot take minutes on a large model.
    var searchBudget: [Int]
    /// Rules by root operator (without `anyOperatorRules`, which `resolvedRoots` merges in).
    var byRoot: [OperatorID: [Int]]
    /// Rules rooted at any operator, by domain.
    let anyOperatorRules: [String: [Int]]
    /// Each operator's rules once merged with the any-operator rules, by `OperatorID.index`,
    /// as looked up: nil not yet, `.some(nil)` none.
    var resolvedRoots: [[Int]??] = []
    let model: Model
    /// Whether training information (kept opaque) may read any initializer of the main graph,
    /// which then stay; read once (no rule changes it), not at every value a rewrite frees.
    let keepsMainInitializers: Bool
    let options: RewriteOptions
    /// `options.passThroughOperator` as a number, for the guard's comparisons.
    let passThrough: OperatorID?
    /// Made at the first new name: a run that rewrites nothing does not collect the model's names.
    var names: NameAllocator?
    /// The domains other than the default one of the nodes rewrites inserted, each once: the
    /// model imports those it did not yet at the end of the node rules.
    var insertedDomains: [String] = []
    var worklist: [Node] = []
    var head = 0
    /// This run's stamp in `Node.rewriteMarks` (see `NodeMark`), new for every run.
    let stamp = NodeMark.newStamp()
    /// Nodes whose inputs were replaced and whose facts are not refreshed yet (`inputsChanged`),
    /// in the order they became stale. A node is refreshed when it is next tried, or when the
    /// worklist runs dry: one refresh after many replacements of its inputs, not one each (a
    /// Concat of 2,000 merged values would be inferred 2,000 times). Facts not yet refreshed
    /// stay true (a replacement computes the same), only less precise.
    var stale: [Node] = []
    /// How many nodes are marked stale (`NodeMark.stale`).
    var staleCount = 0
    var report = RewriteReport()
    var counts: [Int]
    /// Per rule (by name: a rule's forms share one) and node: why it did not fire, and how far
    /// the furthest form got in the visit that explained it (`visits`): whether the pattern met
    /// the graph (a complete match refused), then how deep the search went.
    var explanations: [ExplanationKey: (order: Int, explanation: Explanation, node: Node, visit: Int, reach: (complete: Int, depth: Int))] = [:]
    /// Nodes taken from the worklist so far: the forms of one rule tried at one visit explain
    /// themselves together (the form that got furthest).
    var visits = 0
    var nodeCreated: ((Node, String) -> Void)?
    var inputsChanged: ((Node) -> [Node])?
    var rewriteWillApply: ((RewriteEvent) -> Void)?
    var analysis: AnyObject?

    struct ExplanationKey: Hashable {
        let rule: String
        let node: ObjectIdentifier
    }

    /// The search budget of a rule (see `searchBudget`): this many candidates per node of the
    /// model, and at least `minimumSearchBudget`.
    static let searchBudgetPerNode = 16
    /// How many nodes and readers the engine's guard looks at to order a replaced value count as
    /// one candidate (rules that take over a value other than the root's outputs are rare; the
    /// guard's two searches are short on real graphs, and this bounds them on hostile ones).
    static let guardedReadersPerStep = 8
    static let minimumSearchBudget = 100_000

    init(rules: [RewriteRule], model: Model, options: RewriteOptions) {
        self.rules = rules.sorted { ($1.benefit, $0.name, $0.form?.index ?? 0) < ($0.benefit, $1.name, $1.form?.index ?? 0) }
        entries = self.rules.map(RuleEntry.init)
        singleNodeTakenOver = zip(self.rules, entries).map { rule, entry in
            guard rule.native == nil, rule.pattern.anchor == .node, rule.pattern.nodes.count == 1 else { return nil }
            return rule.pattern.nodes[0].outputs.map { output in
                if case .variable(let v) = output { return entry.replaces(v) }
                return false
            }
        }
        pruning = Array(repeating: nil, count: self.rules.count)
        pruningMade = Array(repeating: false, count: self.rules.count)
        rootNeighbours = self.rules.map { rule in
            rule.native == nil && rule.pattern.anchor == .node ? RootNeighbours(rule.pattern) : nil
        }
        searchMemos = self.rules.map { _ in SearchMemo() }
        // Ample for real patterns (a few candidates per node), a second or so of searching at most.
        var nodeCount = 0
        for graph in model.allGraphs { for _ in graph.nodes { nodeCount += 1 } }
        searchBudget = Array(repeating: max(Self.minimumSearchBudget, Self.searchBudgetPerNode * nodeCount), count: self.rules.count)
        // Rules rooted at one operator are indexed by it; rules rooted at any operator of a
        // domain are merged into every operator of that domain as it is seen (rule order kept).
        var byRoot: [OperatorID: [Int]] = [:]
        var anyOperator: [String: [Int]] = [:]
        for (index, rule) in self.rules.enumerated() where rule.pattern.anchor == .node {
            let root = rule.pattern.nodes[rule.pattern.root]
            let domain = root.normalizedDomain
            if root.matchesAnyOperator {
                anyOperator[domain, default: []].append(index)
            } else {
                for opType in [root.opType] + rule.otherRootOpTypes {
                    byRoot[OperatorID(opType: opType, domain: domain), default: []].append(index)
                }
            }
        }
        self.byRoot = byRoot
        anyOperatorRules = anyOperator
        self.model = model
        keepsMainInitializers = model.opaqueReferences.hasTrainingInfo
        self.options = options
        passThrough = options.passThroughOperator.map { OperatorID(opType: $0.opType, domain: $0.domain) }
        counts = Array(repeating: 0, count: rules.count)
    }

    /// The rules to try at `node`, in rule order; nil when none.
    mutating func candidates(for node: Node) -> [Int]? {
        let index = node.operatorID.index
        if index < resolvedRoots.count, let resolved = resolvedRoots[index] { return resolved }
        var rules = byRoot[node.operatorID]
        if let any = anyOperatorRules[node.isDefaultDomain ? "" : node.domain!] { rules = ((rules ?? []) + any).sorted() }
        if index >= resolvedRoots.count { resolvedRoots += repeatElement(nil, count: index + 1 - resolvedRoots.count) }
        resolvedRoots[index] = .some(rules)
        return rules
    }

    mutating func enqueue(_ node: Node?) {
        guard let node, node.graph != nil, !has(node, .queued), candidates(for: node) != nil else { return }
        mark(node, .queued)
        worklist.append(node)
    }

    /// Whether `node` carries `mark` in this run.
    func has(_ node: Node, _ mark: NodeMark) -> Bool { mark.isSet(on: node, stamp: stamp) }

    /// Sets `mark` on `node`.
    func mark(_ node: Node, _ mark: NodeMark) { mark.set(on: node, stamp: stamp) }

    /// Clears `mark` on `node`; false when it did not carry it.
    @discardableResult
    func unmark(_ node: Node, _ mark: NodeMark) -> Bool { mark.clear(on: node, stamp: stamp) }

    /// Reports progress and asks whether to stop (`RewriteOptions`).
    func stopRequested() -> Bool {
        options.progress?(RewriteProgress(rewrites: report.rewrites, nodesTried: visits, nodesQueued: worklist.count - head))
        return options.shouldStop?() ?? false
    }

    mutating func run() -> RewriteReport {
        var nodeCount = 0
        for graph in model.allGraphs {
            for node in graph.nodes {
                nodeCount += 1
                enqueue(node)
            }
        }
        let cap = options.maximumRewrites ?? max(1_000, 10 * nodeCount)
        // Read from the model at each call: a replacement may import a new domain.
        let model = self.model
        let context = RewriteContext(freezeInitializerInputs: options.freezeInitializerInputs,
                                     opsetVersion: { domain in model.opsetVersion(domain: domain) },
                                     analysis: analysis)
        repeat {
            while head < worklist.count {
                // Drop what was tried: a rule that never converges appends a node per rewrite,
                // and the erased nodes must not stay alive to the end (1.5 million rewrites on
                // a chain of 150,000 kept 1.2 GB).
                if head >= 4_096 && head * 2 >= worklist.count {
                    worklist.removeFirst(head)
                    head = 0
                }
                if visits & 255 == 255, options.progress != nil || options.shouldStop != nil, stopRequested() {
                    report.wasStopped = true
                    break
                }
                let node = worklist[head]
                head += 1
                visits += 1
                unmark(node, .queued)
                guard node.graph != nil, let candidates = candidates(for: node) else { continue }
                refreshIfStale(node)
                for ruleIndex in candidates {
                    if report.rewrites >= cap {
                        report.reachedRewriteCap = true
                        break
                    }
                    if attempt(ruleIndex, at: node, context: context) { break }
                }
                if report.reachedRewriteCap { break }
            }
            // What no rule tries is refreshed now; the nodes whose facts changed are tried again.
            for node in stale { refreshIfStale(node) }
            stale.removeAll()
        } while head < worklist.count && !report.reachedRewriteCap && !report.wasStopped
        // What the cap left untried loses its mark: no mark outlives its run.
        for node in worklist[head...] { unmark(node, .queued) }
        for domain in insertedDomains { model.importDomainIfMissing(domain) }
        if !report.reachedRewriteCap && !report.wasStopped { applyItemRules(context: context, cap: cap) }
        // A rule's forms are one rule in the report.
        for index in rules.indices where counts[index] > 0 {
            if let known = report.fired.firstIndex(where: { $0.rule == rules[index].name }) {
                report.fired[known].count += counts[index]
            } else {
                report.fired.append((rules[index].name, counts[index]))
            }
        }
        report.explanations = explanations.values
            .filter { $0.node.graph != nil }
            .sorted { $0.order < $1.order }
            .map(\.explanation)
        return report
    }

    /// Tries one rule at one node; true when it fired.
    mutating func attempt(_ ruleIndex: Int, at node: Node, context: RewriteContext) -> Bool {
        let entry = entries[ruleIndex]
        if let native = entry.rule.native { return attemptNative(ruleIndex, native, at: node, context: context) }
        // A one-node match removes the node's outputs it does not take over, so they must be
        // unused: the matcher and the engine's guard would refuse the same, but later and at a
        // cost that adds up for rules tried at every node. (With --explain, the full path runs,
        // so the explanation names the first check that failed.)
        if !options.explain, let takenOver = singleNodeTakenOver[ruleIndex] {
            for (position, output) in node.outputs.enumerated() where position >= takenOver.count || !takenOver[position] {
                if let output, !output.isUnused { return false }
            }
        }
        // The root's producers and readers must have the pattern's operators: most candidates of a
        // rule tried at every node of an operator fail here, before a search is set up.
        if !options.explain, let neighbours = rootNeighbours[ruleIndex], !neighbours.admit(node, entry.rule.pattern) { return false }
        let runCheck = entry.rule.dependencies.map { dependencies in
            { (check: Int, match: Match) in dependencies.runCheck(check, match, context) }
        }
        // A rewrite changes the graph: what earlier searches found may not hold.
        searchMemos[ruleIndex].use(version: report.rewrites)
        if !pruningMade[ruleIndex] {
            if entry.rule.pattern.anchor == .node { pruning[ruleIndex] = MatchPruning(rule: entry.rule) }
            pruningMade[ruleIndex] = true
        }
        let matcher = Matcher(pattern: entry.rule.pattern, pruning: pruning[ruleIndex], runCheck: runCheck, memo: searchMemos[ruleIndex],
                              stepLimit: min(Matcher.maximumSteps, searchBudget[ruleIndex]), explains: options.explain)
        var prepared: PreparedReplacement?
        var readersLookedAt = 0
        // Static, with what it reads passed in: a method call on `self` from this closure
        // copied the whole driver at every match.
        let stamp = stamp
        let match = matcher.match(at: node) { match in
            if let reason = Self.engineGuard(entry, match, root: node, stamp: stamp, passThrough: passThrough,
                                             readersLookedAt: &readersLookedAt) {
                return MatchRefusal(reason: reason, byPrepare: false)
            }
            switch entry.rule.prepare(match, context) {
            case .success(let values):
                prepared = values
                return nil
            case .failure(let refusal):
                if refusal.isRuleError { recordRuleError(refusal.description) }
                return MatchRefusal(reason: refusal.description, byPrepare: true, failedCheck: refusal.failedCheck, ruleLine: refusal.ruleLine)
            }
        }
        report.candidatesTried += matcher.steps
        // The guard's look at the readers of replaced values is charged too.
        searchBudget[ruleIndex] = max(0, searchBudget[ruleIndex] - matcher.steps - readersLookedAt / Self.guardedReadersPerStep)
        let key = ExplanationKey(rule: entry.rule.name, node: ObjectIdentifier(node))
        guard let match, let prepared else {
            // A rule rooted at any operator would explain itself at every node it leaves alone.
            if options.explain, !entry.rule.pattern.nodes[entry.rule.pattern.root].matchesAnyOperator {
                let failure = matcher.deepestFailure
                // Of a rule's forms tried at this visit, the one that got furthest explains it: a
                // complete match refused first (the pattern met the graph), then the deepest.
                let reach = (complete: matcher.deepestFailureIsComplete ? 1 : 0, depth: failure.depth)
                if let known = explanations[key], known.visit == visits, known.reach >= reach { return false }
                let label = node.name ?? node.outputs.compactMap { $0?.name }.first ?? node.opType
                let reason = entry.rule.form.map { "\($0.label): " + failure.reason } ?? failure.reason
                var explanation = Explanation(rule: entry.rule.name, node: label, opType: node.opType, reason: reason)
                explanation.ruleLine = matcher.deepestFailureLine
                explanations[key] = (explanations[key]?.order ?? explanations.count, explanation, node, visits, reach)
            }
            return false
        }
        if !explanations.isEmpty { explanations[key] = nil }
        apply(ruleIndex, match, prepared, root: node)
        counts[ruleIndex] += 1
        report.rewrites += 1
        return true
    }

    /// Records an error of a rule (once per message).
    mutating func recordRuleError(_ message: String) {
        if !report.ruleErrors.contains(message) { report.ruleErrors.append(message) }
    }

    /// The engine's own guards; a reason when the rule must not fire. `readersLookedAt` counts
    /// the nodes and readers it went through to order replaced values (charged to the rule's
    /// search budget).
    static func engineGuard(_ entry: RuleEntry, _ match: Match, root: Node, stamp: UInt32, passThrough: OperatorID?,
                            readersLookedAt: inout Int) -> String? {
        let pattern = entry.rule.pattern
        // The matched nodes carry `NodeMark.matched` while the guard runs.
        for case let node? in match.nodes { NodeMark.matched.set(on: node, stamp: stamp) }
        defer { for case let node? in match.nodes { NodeMark.matched.clear(on: node, stamp: stamp) } }
        func matched(_ node: Node) -> Bool { NodeMark.matched.isSet(on: node, stamp: stamp) }
        // Values the match produces: those not taken over must stay inside the match.
        for (index, patternNode) in pattern.nodes.enumerated() {
            let node = match.nodes[index]!
            for (position, output) in node.outputs.enumerated() {
                guard let output else { continue }
                var variable: Int?
                if position < patternNode.outputs.count, case .variable(let v) = patternNode.outputs[position] {
                    if entry.replaces(v) { continue }
                    variable = v
                }
                // Made only for a refusal: this runs at every match.
                var label: String {
                    variable.map { variableLabel(pattern.valueNames[$0], output) } ?? "output \(position) of \(node.opType) '\(node.name ?? "")'"
                }
                if output.isGraphOutput { return "\(label) is a graph output" }
                if output.useList.contains(where: { !matched($0.node) }) {
                    let count = output.useList.count
                    return "\(label) has \(count) user\(count == 1 ? "" : "s")"
                }
            }
        }
        // The replacement reads only values that survive the match.
        for replacementNode in entry.rule.replacement.nodes {
            for case .bound(let v) in replacementNode.inputs {
                if let value = match.value(v), let producer = value.producer, matched(producer), !entry.replaces(v) {
                    return "the replacement reads \(pattern.valueNames[v]), which the match removes"
                }
            }
            for case .copyAll(let source) in replacementNode.attributes where match.nodes[source]!.attributes.contains(where: \.hasSubgraphs) {
                return "\(match.nodes[source]!.opType) has subgraphs, which cannot be copied"
            }
        }
        // A forwarded graph output keeps its name: the value it gets must be able to take it, or
        // a pass-through node of it takes the name (`bridgeGraphOutput`).
        for (target, source) in entry.rule.replacement.forwards {
            guard let old = match.value(target), old.isGraphOutput else { continue }
            guard case .bound(let s) = source, let value = match.value(s) else {
                return "\(pattern.valueNames[target]) is a graph output and what replaces it cannot take its name"
            }
            if !canTakeGraphOutputName(value, in: root.graph!), !canBridgeGraphOutput(removing: match.matchedNodes, with: passThrough) {
                return "\(pattern.valueNames[target]) is a graph output and what replaces it cannot take its name"
            }
        }
        // The new nodes go before the root, and a graph output's pass-through node too: what they read,
        // and what replaces a value, must be defined there. It is when every matched node comes
        // before the root (reads into it); a pattern whose root is read by another of its nodes
        // may bind a value defined between the two.
        if !entry.rootIsLast {
            func definedAfterRoot(_ v: Int) -> Bool {
                guard let value = match.value(v), let producer = value.producer, producer.graph === root.graph,
                      !matched(producer) else { return false }
                return !producer.isBeforeUnchecked(root)
            }
            var read: [Int] = []
            for replacementNode in entry.rule.replacement.nodes {
                for case .bound(let v) in replacementNode.inputs { read.append(v) }
            }
            for case (_, .bound(let v)) in entry.rule.replacement.forwards { read.append(v) }
            if let late = read.first(where: definedAfterRoot) {
                return "\(variableLabel(pattern.valueNames[late], match.value(late))) is defined after the root \(root.opType) '\(root.name ?? "")', where the replacement goes"
            }
        }
        // Users of values taken over from nodes other than the root must come after the root,
        // where the new nodes go.
        for v in entry.replacedInOrder {
            guard let value = match.value(v), let producer = value.producer, producer !== root,
                  let reader = reader(of: value, before: root, after: producer, stamp: stamp, work: &readersLookedAt) else { continue }
            return "\(reader.opType) '\(reader.name ?? "")' reads a replaced value before the match ends"
        }
        return nil
    }

    /// A node of the root's graph, outside the match (`NodeMark.matched`), that reads `value` (itself or by a node of
    /// its subgraphs) and comes before `root`; nil when none. `work` counts the nodes and
    /// readers looked at.
    ///
    /// Two searches take turns and the first to finish answers: walking back from the root to
    /// the value's producer (short when a reader or the producer is near) and going through the
    /// value's readers (short when they are few). Each alone is quadratic on some graph (20,000
    /// far-apart pairs; 40,000 readers listed after the root first). The walk cannot see into
    /// subgraphs: at a node that has some it stops, and the readers answer.
    static func reader(of value: Value, before root: Node, after producer: Node, stamp: UInt32, work: inout Int) -> Node? {
        func matched(_ node: Node) -> Bool { NodeMark.matched.isSet(on: node, stamp: stamp) }
        var uses = value.useList.makeIterator()
        var cursor = root.previousNode
        var walking = true
        while true {
            if walking {
                guard let node = cursor, node !== producer else { return nil }
                work += 1 + node.inputs.count
                if !matched(node) {
                    if node.inputs.contains(where: { $0 === value }) { return node }
                    if node.attributes.contains(where: \.hasSubgraphs) { walking = false }
                }
                cursor = node.previousNode
            }
            guard let use = uses.next() else { return nil }
            work += 1
            var reader = use.node
            while reader.graph !== root.graph, let parent = reader.graph?.parentNode { reader = parent }
            if reader.graph === root.graph, reader.isBeforeUnchecked(root), !matched(reader) { return reader }
        }
    }

    /// Rewrites `match` (every check passed; nothing here can fail).
    mutating func apply(_ ruleIndex: Int, _ match: Match, _ prepared: PreparedReplacement, root: Node) {
        let entry = entries[ruleIndex]
        let graph = root.graph!
        let replacement = entry.rule.replacement
        let anchorName = entry.replacedInOrder.lazy.compactMap { match.value($0)?.name }.first
            ?? root.name ?? root.opType
        // Only the computed tensors the replacement reads become initializers.
        var computed: [Value?] = prepared.tensors.map { _ in nil }
        for slot in entry.computedSlotsRead {
            computed[slot] = graph.addInitializer(name: freshName("\(anchorName)_\(replacement.computedNames[slot])"),
                                                  tensor: prepared.tensors[slot])
        }
        var fresh: [Value?] = replacement.freshNames.map { _ in nil }
        var takeOver: [(old: Value, new: Value)] = []
        var created: [Node] = []
        func resolve(_ reference: ValueReference) -> Value? {
            switch reference {
            case .bound(let v): return match.value(v)
            case .computed(let slot): return computed[slot]
            case .fresh(let index): return fresh[index]
            case .absent: return nil
            }
        }
        for (index, spec) in replacement.nodes.enumerated() {
            // Node names stay: the name of the node whose attributes it copies, else of the node
            // whose output it takes over.
            var nodeName: String?
            for case .copyAll(let source) in spec.attributes { nodeName = nodeName ?? match.nodes[source]!.name }
            for case .replaces(let v) in spec.outputs { nodeName = nodeName ?? match.value(v)!.producer?.name }
            let node = replacement.makeNode(index, for: match, attributeValues: prepared.attributeValues, name: nodeName,
                                            resolve: resolve) { output in
                switch output {
                // The new value takes the old one's name at once: the old value leaves the
                // graph before this rewrite ends.
                case .replaces(let v): return match.value(v)!.name
                case .fresh(let index): return freshName(replacement.freshNames[index])
                case .none: return nil
                }
            }
            graph.insertUnchecked(node, before: root)
            if !node.isDefaultDomain, let domain = node.domain, !insertedDomains.contains(domain) { insertedDomains.append(domain) }
            created.append(node)
            nodeCreated?(node, rules[ruleIndex].name)
            for (position, output) in spec.outputs.enumerated() {
                switch output {
                case .replaces(let v): takeOver.append((match.value(v)!, node.outputs[position]!))
                case .fresh(let index): fresh[index] = node.outputs[position]
                case .none: break
                }
            }
        }
        // A forward to a value the replacement also takes over (`y2 = y1` beside a new `y1`) gets
        // the new value: the old one is about to leave the graph.
        // (A replacement takes over a few values: a search of them costs less than a dictionary.)
        func forwarded(_ source: ValueReference) -> Value? {
            resolve(source).map { value in takeOver.last(where: { $0.old === value })?.new ?? value }
        }
        if let rewriteWillApply {
            var replacements = takeOver.map { (old: $0.old, new: OutputReplacement.value($0.new)) }
            for (target, source) in replacement.forwards {
                if let old = match.value(target), let new = forwarded(source) { replacements.append((old, .value(new))) }
            }
            rewriteWillApply(RewriteEvent(rule: entry.rule.name, root: root, removedNodes: match.matchedNodes, addedNodes: created,
                                          replacements: replacements))
        }
        var renames: [(Value, String)] = []
        var readers: [Node] = []
        // A graph output forwarded to a value that cannot take its name gets a pass-through node.
        var bridged: [Int] = []
        for (target, source) in replacement.forwards {
            guard let old = match.value(target), old.isGraphOutput, let new = forwarded(source),
                  !Self.canTakeGraphOutputName(new, in: graph) else { continue }
            let bridge = bridgeGraphOutput(old, to: new, before: root, rule: rules[ruleIndex].name)
            created.append(bridge.producer!)
            takeOver.append((old, bridge))
            bridged.append(target)
        }
        for (old, new) in takeOver { readers += replace(old, with: new) }
        for (target, source) in replacement.forwards where !bridged.contains(target) {
            guard let old = match.value(target), let new = forwarded(source) else { continue }
            if old.isGraphOutput { renames.append((new, old.name)) }
            readers += replace(old, with: new)
        }
        // Remove the matched nodes, consumers first; remember what they read.
        var freed: [Value] = []
        var pending = match.matchedNodes
        while !pending.isEmpty {
            guard let index = pending.firstIndex(where: { $0.outputs.allSatisfy { $0?.isUnused ?? true } }) else { break }
            let node = pending.remove(at: index)
            for case let input? in node.inputs { freed.append(input) }
            graph.eraseUnchecked(node)
        }
        for (value, name) in renames { value.name = name }
        removeUnused(freed)
        // Revisit what changed: the new nodes and their producers, what now reads a value in
        // place of another (its facts are refreshed), what else reads a forwarded value, and what
        // read the values the match freed (a value may have lost a user).
        for value in freed { revisit(value) }
        for node in created {
            enqueue(node)
            for input in node.inputs { enqueue(input?.producer) }
        }
        for reader in readers where reader.graph != nil {
            markStale(reader)
            enqueue(reader)
        }
        for (_, source) in replacement.forwards {
            if let value = forwarded(source) { revisit(value) }
        }
    }

    /// Whether `value` can take the name of a graph output of `graph` it replaces: a node output
    /// of that graph that is not a graph output itself (a graph input, an initializer or a value
    /// of an enclosing graph has its own name).
    static func canTakeGraphOutputName(_ value: Value, in graph: Graph) -> Bool {
        value.producer != nil && !value.isGraphOutput && value.graph === graph
    }

    /// Whether a graph output may keep its name through a node of `passThrough` reading the
    /// value that replaces it (`bridgeGraphOutput`), where the rewrite removes `removed`: the
    /// host names such an operator, and not every node removed is one (the rewrite would only
    /// make it again).
    static func canBridgeGraphOutput(removing removed: [Node], with passThrough: OperatorID?) -> Bool {
        guard let passThrough else { return false }
        return !removed.allSatisfy { $0.operatorID == passThrough }
    }

    /// A node of `options.passThroughOperator` reading `value`, inserted before `root`, whose
    /// output takes the name of graph output `old` (x → Transpose → Transpose → y, with x a
    /// graph input and y a graph output, becomes y = Identity(x)): its output, which replaces
    /// `old`. It is named after the node that made `old`.
    mutating func bridgeGraphOutput(_ old: Value, to value: Value, before root: Node, rule: String) -> Value {
        let spec = options.passThroughOperator!
        let bridge = Node(opType: spec.opType, domain: spec.domain.isEmpty ? nil : spec.domain, name: old.producer?.name,
                          inputs: [value], outputNames: [old.name])
        root.graph!.insertUnchecked(bridge, before: root)
        if !bridge.isDefaultDomain, !insertedDomains.contains(spec.domain) { insertedDomains.append(spec.domain) }
        nodeCreated?(bridge, rule)
        enqueue(bridge)
        return bridge.outputs[0]!
    }

    /// Queues the producer and the readers of `value`, which lost or gained a reader.
    mutating func revisit(_ value: Value) {
        guard value.graph != nil else { return }
        enqueue(value.producer)
        // Such a value matters to its other readers only through its use count, which guards
        // compare with the few readers a pattern matches: past a handful, its readers are not
        // queued again (10,000 dead readers of one value would cost 10^8 retries). The readers
        // that gained it are queued by `replace(_:with:)`'s callers.
        guard value.useList.count <= Self.revisitedReaderLimit else { return }
        for use in value.useList { enqueue(use.node) }
    }

    /// How many readers a value that lost or gained one may have for them to be tried again.
    static let revisitedReaderLimit = 4

    /// Points every reader of `old` (graph outputs included) at `new`; returns the nodes that
    /// read `old` (a node once per input that read it): their inputs changed, so their facts are
    /// to be refreshed and they are to be tried again.
    mutating func replace(_ old: Value, with new: Value) -> [Node] {
        // A node reading `old` twice is listed twice: the callers' marking and queueing take
        // each node once, which costs less than a set here.
        var readers: [Node] = []
        readers.reserveCapacity(old.useList.count)
        for use in old.useList { readers.append(use.node) }
        old.replaceAllUsesUnchecked(with: new)
        moveGraphOutputs(from: old, to: new)
        return readers
    }

    // MARK: Native rules

    /// Tries a native rule at `node`; true when it fired.
    mutating func attemptNative(_ ruleIndex: Int, _ native: NativeRewrite, at node: Node, context: RewriteContext) -> Bool {
        let entry = entries[ruleIndex]
        let key = ExplanationKey(rule: entry.rule.name, node: ObjectIdentifier(node))
        func refuse(_ reason: String) -> Bool {
            if options.explain, !entry.rule.pattern.nodes[0].matchesAnyOperator {
                let label = node.name ?? node.outputs.compactMap { $0?.name }.first ?? node.opType
                let explanation = Explanation(rule: entry.rule.name, node: label, opType: node.opType, reason: reason)
                explanations[key] = (explanations[key]?.order ?? explanations.count, explanation, node, visits, (0, 0))
            }
            return false
        }
        let replacements: [OutputReplacement?]
        switch native(node, context) {
        case .success(.replaceOutputs(let result)): replacements = result
        case .success(.rewireInputs(let edits)):
            if !explanations.isEmpty { explanations[key] = nil }
            if let rewriteWillApply {
                rewriteWillApply(RewriteEvent(rule: entry.rule.name, root: node, removedNodes: [node], addedNodes: [],
                                              replacements: node.outputs.compactMap { $0 }.filter { !$0.isUnused }.map { ($0, .value($0)) },
                                              rewiredInputs: edits))
            }
            rewire(node, edits)
            counts[ruleIndex] += 1
            report.rewrites += 1
            return true
        case .failure(let refusal):
            if refusal.isRuleError { recordRuleError(refusal.description) }
            return refuse(refusal.description)
        }
        let graph = node.graph!
        // The engine's guards: what is not replaced must be unused; a graph output can only be
        // taken over by a value that can take its name.
        for (position, output) in node.outputs.enumerated() {
            guard let output else { continue }
            let replacement = position < replacements.count ? replacements[position] : nil
            guard let replacement else {
                if !output.isUnused { return refuse("output '\(output.name)' is used and the rule does not replace it") }
                continue
            }
            if case .value(let value) = replacement {
                if value === output { return refuse("output '\(output.name)' would replace itself") }
                if output.isGraphOutput && !Self.canTakeGraphOutputName(value, in: graph) && !Self.canBridgeGraphOutput(removing: [node], with: passThrough) {
                    return refuse("output '\(output.name)' is a graph output and what replaces it cannot take its name")
                }
            }
        }
        if !explanations.isEmpty { explanations[key] = nil }
        if let rewriteWillApply {
            var replaced: [(old: Value, new: OutputReplacement)] = []
            for (position, output) in node.outputs.enumerated() {
                guard let output, !output.isUnused, position < replacements.count, let replacement = replacements[position] else { continue }
                replaced.append((output, replacement))
            }
            rewriteWillApply(RewriteEvent(rule: entry.rule.name, root: node, removedNodes: [node], addedNodes: [], replacements: replaced))
        }
        var renames: [(Value, String)] = []
        var touched: [Value] = []
        var readers: [Node] = []
        for (position, output) in node.outputs.enumerated() {
            // An unused output needs nothing in its place (no stray initializer).
            guard let output, !output.isUnused, position < replacements.count, let replacement = replacements[position] else {
                continue
            }
            var new: Value
            switch replacement {
            case .value(let value):
                new = value
                if output.isGraphOutput {
                    if Self.canTakeGraphOutputName(value, in: graph) {
                        renames.append((value, output.name))
                    } else {
                        new = bridgeGraphOutput(output, to: value, before: node, rule: entry.rule.name)
                    }
                }
            case .tensor(let tensor):
                // The constant takes the replaced value's name once that value is gone.
                new = graph.addInitializer(name: freshName(output.name), tensor: tensor)
                renames.append((new, output.name))
            }
            readers += replace(output, with: new)
            touched.append(new)
        }
        let freed = node.inputs.compactMap { $0 }
        graph.eraseUnchecked(node)
        for (value, name) in renames { value.name = name }
        removeUnused(freed)
        for value in freed { revisit(value) }
        for reader in readers where reader.graph != nil {
            markStale(reader)
            enqueue(reader)
        }
        for value in touched { revisit(value) }
        counts[ruleIndex] += 1
        report.rewrites += 1
        return true
    }

    /// Points inputs of `node` at other values (a native rule's `rewireInputs`), drops what no
    /// longer has a reader, and revisits the node: it computes the same, but its facts may be
    /// refreshed and other rules may now apply.
    mutating func rewire(_ node: Node, _ edits: [(position: Int, input: OutputReplacement)]) {
        let graph = node.graph!
        var freed: [Value] = []
        for (position, input) in edits {
            let new: Value
            switch input {
            case .value(let value): new = value
            case .tensor(var tensor):
                // Named after the node and the input's role (the tensor's name, when the rule gives one).
                let owner = node.outputs.compactMap({ $0?.name }).first ?? node.name ?? node.opType
                let base = "\(owner)_\(tensor.name ?? "input\(position)")"
                tensor.name = nil
                new = graph.addInitializer(name: freshName(base), tensor: tensor)
            }
            if let old = node.input(position) { freed.append(old) }
            while node.inputs.count <= position { node.appendInputUnchecked(nil) }
            node.setInputUnchecked(position, to: new)
            enqueue(new.producer)
        }
        removeUnused(freed)
        for value in freed { revisit(value) }
        markStale(node)
        enqueue(node)
    }

    /// Records that `node`'s inputs were replaced (see `stale`); false when it already was.
    @discardableResult
    mutating func markStale(_ node: Node) -> Bool {
        guard inputsChanged != nil, !has(node, .stale) else { return false }
        mark(node, .stale)
        staleCount += 1
        stale.append(node)
        // Mostly refreshed already (when tried) or erased: compact, so that a long run does not
        // keep every node it ever replaced alive.
        if stale.count >= 4_096 && stale.count >= 2 * staleCount {
            var kept = Set<ObjectIdentifier>()
            var erased = 0
            let stamp = stamp
            stale.removeAll { node in
                if node.graph == nil {
                    if NodeMark.stale.clear(on: node, stamp: stamp) { erased += 1 }
                    return true
                }
                return !NodeMark.stale.isSet(on: node, stamp: stamp) || !kept.insert(ObjectIdentifier(node)).inserted
            }
            staleCount -= erased
        }
        return true
    }

    /// Refreshes the facts of `node` if its inputs were replaced since, and queues the nodes
    /// whose facts changed.
    mutating func refreshIfStale(_ node: Node) {
        guard unmark(node, .stale) else { return }
        staleCount -= 1
        guard node.graph != nil, let inputsChanged else { return }
        for changed in inputsChanged(node) where changed !== node { enqueue(changed) }
    }

    // MARK: Initializer and operator set rules

    /// Runs the rules anchored at initializers, then those anchored at operator set imports,
    /// once the node rules are done (they only remove what nothing uses, so no node rule can
    /// apply afterwards).
    mutating func applyItemRules(context: RewriteContext, cap: Int) {
        let initializerRules = rules.indices.filter { rules[$0].pattern.anchor == .initializer }
        let opsetRules = rules.indices.filter { rules[$0].pattern.anchor == .opsetImport }
        if !initializerRules.isEmpty {
            for graph in model.allGraphs {
                // Training information (kept opaque) may read any initializer of the main graph.
                if graph === model.graph && model.opaqueReferences.hasTrainingInfo { continue }
                for value in graph.initializers where value.definition == .initializer {
                    for ruleIndex in initializerRules {
                        guard report.rewrites < cap else { report.reachedRewriteCap = true; return }
                        // An initializer rule removes what it matched: the value must be unused.
                        guard value.isUnused else { break }
                        var match = Match(pattern: rules[ruleIndex].pattern)
                        match.values[0] = .some(value)
                        guard case .success = rules[ruleIndex].prepare(match, context) else { continue }
                        rewriteWillApply?(RewriteEvent(rule: rules[ruleIndex].name, root: nil, removedNodes: [], addedNodes: [], replacements: []))
                        graph.removeInitializerUnchecked(value)
                        counts[ruleIndex] += 1
                        report.rewrites += 1
                        break
                    }
                }
            }
        }
        guard !opsetRules.isEmpty, !model.opaqueReferences.hasTrainingInfo else { return }
        var usedDomains = model.opaqueReferences.domains
        for graph in model.allGraphs {
            for node in graph.nodes { usedDomains.insert(node.isDefaultDomain ? "" : node.domain!) }
        }
        var index = 0
        while index < model.opsetImports.count {
            let imported = model.opsetImports[index].domain
            let domain = OperatorID.isDefaultDomain(imported) ? "" : imported!
            var removed = false
            // An operator set rule removes the import: no node may use its domain.
            for ruleIndex in opsetRules where !usedDomains.contains(domain) {
                guard report.rewrites < cap else { report.reachedRewriteCap = true; return }
                var match = Match(pattern: rules[ruleIndex].pattern)
                match.attributes[0] = .string(Array(domain.utf8))
                guard case .success = rules[ruleIndex].prepare(match, context) else { continue }
                rewriteWillApply?(RewriteEvent(rule: rules[ruleIndex].name, root: nil, removedNodes: [], addedNodes: [], replacements: []))
                model.opsetImports.remove(at: index)
                counts[ruleIndex] += 1
                report.rewrites += 1
                removed = true
                break
            }
            if !removed { index += 1 }
        }
    }

    /// Points every graph output naming `old` at `new`.
    func moveGraphOutputs(from old: Value, to new: Value) {
        guard old.isGraphOutput else { return }
        // Its own graph first; a subgraph's output may name it too (an outer value).
        var remaining = old.graphOutputCount
        func move(in graph: Graph) { remaining -= graph.moveOutputsUnchecked(from: old, to: new) }
        if let home = old.graph { move(in: home) }
        guard remaining > 0 else { return }
        for graph in model.allGraphs where graph !== old.graph {
            move(in: graph)
            if remaining == 0 { return }
        }
    }

    /// A name no value of the model has, from `base`.
    mutating func freshName(_ base: String) -> String {
        if names == nil { names = NameAllocator(model: model) }
        return names!.fresh(base)
    }

    /// Removes the initializers among `values` that nothing uses any more. A node whose outputs
    /// nothing reads any more is not the engine's to remove: it may have effects (an operator
    /// of another domain), and removing dead nodes is a rule of its own (the built-in
    /// remove-dead-node), counted and disabled like any other. Such a node is queued for it.
    mutating func removeUnused(_ values: [Value]) {
        for value in values {
            guard value.isUnused, let graph = value.graph else { continue }
            switch value.definition {
            case .initializer:
                if keepsMainInitializers && graph === model.graph { continue }
                graph.removeInitializerUnchecked(value)
            case .nodeOutput:
                guard let producer = value.producer, producer.outputs.allSatisfy({ $0?.isUnused ?? true }) else { continue }
                enqueue(producer)
            default:
                continue
            }
        }
    }
}

/// A rule held by reference (`Driver.entries`).
final class RuleEntry {
    let rule: RewriteRule
    /// What the replacement tells of itself, made once (the replacement derives it at each ask):
    /// the variables it takes over, in order (where a rewrite's new names come from, and the
    /// order the guard looks at them in), and the computed tensors it reads.
    let replacedInOrder: [Int]
    let computedSlotsRead: [Int]
    /// Whether each variable is taken over, for the guard's per-match lookups (no hashing).
    private let isReplaced: [Bool]
    /// Whether every other node of the pattern reads into the root, directly or not, so that
    /// every value the match binds is defined before the root (where the new nodes go).
    let rootIsLast: Bool

    init(_ rule: RewriteRule) {
        self.rule = rule
        replacedInOrder = rule.replacement.replacedVariables.sorted()
        computedSlotsRead = rule.replacement.computedSlotsRead
        var isReplaced = repeated(false, count: max(rule.pattern.valueNames.count, (replacedInOrder.last ?? -1) + 1))
        for v in replacedInOrder { isReplaced[v] = true }
        self.isReplaced = isReplaced
        rootIsLast = Self.everyNodeReadsInto(rule.pattern)
    }

    /// Whether every node of `pattern` is the root or an ancestor of it through value variables.
    static func everyNodeReadsInto(_ pattern: Pattern) -> Bool {
        let nodes = pattern.nodes
        guard nodes.count > 1 else { return true }
        var reached: Set<Int> = [pattern.root]
        var pending = [pattern.root]
        while let index = pending.popLast() {
            for input in nodes[index].inputs {
                let v: Int
                switch input {
                case .variable(let variable), .optional(let variable): v = variable
                default: continue
                }
                for (producer, node) in nodes.enumerated() where !reached.contains(producer) && node.outputs.contains(.variable(v)) {
                    reached.insert(producer)
                    pending.append(producer)
                }
            }
        }
        return reached.count == nodes.count
    }

    /// Whether the replacement takes over variable `v`.
    func replaces(_ v: Int) -> Bool { v >= 0 && v < isReplaced.count && isReplaced[v] }
}

/// What the nodes next to a root must be for a pattern to match there, checked before the
/// search: the pattern nodes the plan reaches from the root in one step (the producer of a
/// root input, a reader of a root output) need a graph node of their operator in that place.
/// The search would fail at the same point; this only fails sooner. (`--explain` runs the full
/// search, so that its reason names the check.)
struct RootNeighbours {
    /// Per pattern node produced into a root input: the root input positions that may hold its
    /// output (both of the first two for a commutative root) and the pattern node.
    let producers: [(positions: [Int], node: Int)]
    /// Per pattern node reading a root output: the output's position and the pattern node.
    let readers: [(position: Int, node: Int)]
    /// The most readers of a root output looked through (a value with more is left to the search).
    static let readerScanLimit = 16

    init?(_ pattern: Pattern) {
        let root = pattern.nodes[pattern.root]
        var producers: [(positions: [Int], node: Int)] = []
        var readers: [(position: Int, node: Int)] = []
        for (index, via) in pattern.plan {
            switch via {
            case .producer(let v):
                let positions = root.inputs.indices.filter { root.inputs[$0] == .variable(v) }
                guard !positions.isEmpty else { continue }
                if root.commutative, root.inputs.count >= 2, root.inputs[0] != root.inputs[1], positions.contains(where: { $0 < 2 }) {
                    producers.append(([0, 1] + positions.filter { $0 >= 2 }, index))
                } else {
                    producers.append((positions, index))
                }
            case .consumer(let v):
                guard let position = root.outputs.firstIndex(of: .variable(v)) else { continue }
                readers.append((position, index))
            case .root:
                continue
            }
        }
        guard !producers.isEmpty || !readers.isEmpty else { return nil }
        self.producers = producers
        self.readers = readers
    }

    /// False when no match can be rooted at `node`.
    func admit(_ node: Node, _ pattern: Pattern) -> Bool {
        for (positions, index) in producers {
            let wanted = pattern.nodes[index]
            guard positions.contains(where: { position in
                guard let producer = node.input(position)?.producer else { return false }
                return wanted.hasOperator(of: producer)
            }) else { return false }
        }
        for (position, index) in readers {
            guard position < node.outputs.count, let output = node.outputs[position] else { return false }
            let uses = output.useList
            guard uses.count <= Self.readerScanLimit else { continue }
            let wanted = pattern.nodes[index]
            guard uses.contains(where: { wanted.hasOperator(of: $0.node) }) else { return false }
        }
        return true
    }
}

/// Every value name a model has had during a run, to give new values names that collide with
/// nothing in any scope (names of removed values stay taken: simpler, and still deterministic).
/// `base`, then `base_1`, `base_2`, ...
struct NameAllocator {
    private var used = Set<String>()
    /// The next suffix to try per base. Every `base_k` below it is taken, and names are never
    /// given back, so starting there gives the same name as counting from 1, without retrying
    /// every earlier suffix (a rule adding a value named `t` 20,000 times tried 2 × 10^8 names).
    private var nextSuffix: [String: Int] = [:]

    init(model: Model) {
        // Sized once: growing a set of 100,000 names rehashes every name several times.
        var count = 0
        for graph in model.allGraphs {
            count += graph.inputs.count + graph.initializerCount + graph.sparseInitializers.count + 2 * graph.nodeCount
        }
        used.reserveCapacity(count)
        for graph in model.allGraphs {
            for value in graph.inputs { used.insert(value.name) }
            for value in graph.initializers { used.insert(value.name) }
            for value in graph.sparseInitializers { used.insert(value.name) }
            for node in graph.nodes { for output in node.outputs { if let output { used.insert(output.name) } } }
        }
    }

    mutating func fresh(_ base: String) -> String {
        if used.insert(base).inserted { return base }
        var counter = nextSuffix[base, default: 1]
        while !used.insert("\(base)_\(counter)").inserted { counter += 1 }
        nextSuffix[base] = counter + 1
        return "\(base)_\(counter)"
    }
}

/// The driver's marks on a node (`Node.rewriteMarks`): the low bits, below the run's stamp.
struct NodeMark: OptionSet {
    let rawValue: UInt32

    /// In the worklist and not yet tried.
    static let queued = NodeMark(rawValue: 1)
    /// Its inputs were replaced and its facts are not refreshed yet (`Driver.stale`).
    static let stale = NodeMark(rawValue: 2)
    /// Part of the match the engine's guard is looking at.
    static let matched = NodeMark(rawValue: 4)
    /// Every mark's bit.
    static let all: UInt32 = 7

    /// Whether `node` carries this mark in the run of `stamp`.
    func isSet(on node: Node, stamp: UInt32) -> Bool {
        let marks = node.rewriteMarks
        return marks & ~Self.all == stamp && marks & rawValue != 0
    }

    /// Sets this mark on `node` for the run of `stamp` (dropping marks another run left).
    func set(on node: Node, stamp: UInt32) {
        let marks = node.rewriteMarks
        node.rewriteMarks = (marks & ~Self.all == stamp ? marks : stamp) | rawValue
    }

    /// Clears this mark on `node`; false when it did not carry it in the run of `stamp`.
    @discardableResult
    func clear(on node: Node, stamp: UInt32) -> Bool {
        guard isSet(on: node, stamp: stamp) else { return false }
        node.rewriteMarks &= ~rawValue
        return true
    }

    private static let lock = Lock()
    nonisolated(unsafe) private static var lastStamp: UInt32 = 0

    /// A stamp other than the last runs' (the bits above `all`; never 0, a new node's): a node
    /// marked by another run, or by none, carries no mark of this one. Stamps come round again
    /// after 2^29 runs, which is harmless: a run leaves no mark set when it ends.
    static func newStamp() -> UInt32 {
        lock.withLock {
            lastStamp &+= all + 1
            if lastStamp == 0 { lastStamp = all + 1 }
            return lastStamp
        }
    }
}
