#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
// What a program using the library names: the IR, loading and saving, and the engine's rule
// types (for rules written in Swift). Of the operator kernels (ONNXFuseOps) and the rule
// language's parser and evaluator (ONNXFuseRules), only the types below are re-exported (scoped
// imports), so that their helpers (`Expression`, `apply`, `broadcastShapes`, ...) do not enter
// every client's namespace.
@_exported import ONNXFuseIR
@_exported import ONNXFuseProto
@_exported import ONNXFuseRewrite
import ONNXFuseOps
import ONNXFuseRules

// The public types of the rule language and the kernels, one by one.
@_exported import struct ONNXFuseRules.CompiledRule
@_exported import struct ONNXFuseRules.RuleErrors
@_exported import struct ONNXFuseRules.RuleError
@_exported import struct ONNXFuseRules.SourceLocation
@_exported import struct ONNXFuseRules.FunctionTable
@_exported import struct ONNXFuseRules.NativeFunctionCall
@_exported import enum ONNXFuseRules.EvalValue
@_exported import struct ONNXFuseRules.EvaluationError
@_exported import struct ONNXFuseRules.EvaluationLimits
@_exported import enum ONNXFuseRules.ArgumentKind
@_exported import struct ONNXFuseRules.UndoingRules
@_exported import struct ONNXFuseOps.OperatorError

/// Counts of a model before and after a run, for summaries and reports.
public struct ModelStatistics: Equatable, Sendable {
    /// Nodes in every graph, subgraphs included.
    public var nodeCount: Int
    /// Nodes by operator type (`domain.Op` outside the default domain).
    public var nodesByOpType: [String: Int]

    /// The statistics of `model`.
    public init(_ model: Model) {
        // Counted by operator number first: a table lookup per node, a name per operator (two
        // domains may still name theirs alike, "a.b" + "c" and "a" + "b.c": their counts add).
        var counts: [Int] = []
        var names: [String] = []
        var count = 0
        for graph in model.allGraphs {
            for node in graph.nodes {
                count += 1
                let index = node.operatorID.index
                if index >= counts.count {
                    counts += repeatElement(0, count: index + 1 - counts.count)
                    names += repeatElement("", count: index + 1 - names.count)
                }
                if counts[index] == 0 { names[index] = node.isDefaultDomain ? node.opType : "\(node.domain!).\(node.opType)" }
                counts[index] += 1
            }
        }
        nodeCount = count
        nodesByOpType = Dictionary(zip(names, counts).filter { $0.1 > 0 }, uniquingKeysWith: +)
    }
}

/// Loading rule files.
public enum RuleFiles {
    /// The built-in rule files, by name, as shipped inside the library.
    public static let builtinFiles: [(name: String, text: String)] = [
        ("batchnorm.rules", String(decoding: PackageResources.batchnorm_rules, as: UTF8.self)),
        ("cleanup.rules", String(decoding: PackageResources.cleanup_rules, as: UTF8.self)),
        ("affine.rules", String(decoding: PackageResources.affine_rules, as: UTF8.self)),
        ("matmul.rules", String(decoding: PackageResources.matmul_rules, as: UTF8.self)),
        ("activation.rules", String(decoding: PackageResources.activation_rules, as: UTF8.self)),
        ("normalization.rules", String(decoding: PackageResources.normalization_rules, as: UTF8.self)),
        ("arithmetic.rules", String(decoding: PackageResources.arithmetic_rules, as: UTF8.self)),
        ("attention.rules", String(decoding: PackageResources.attention_rules, as: UTF8.self)),
    ]

    /// The built-in rules, which run unless turned off (`--no-builtin`): the native rules
    /// (folding, duplicate merging, no-op removal), then those of the built-in files. Compiled
    /// once per process, on first use, side by side on the machine's cores (about 17 ms); the
    /// files are tested to compile, so a failure here is a bug in the build. The command
    /// compiles only the rules a model can use instead (`builtin(for:)`).
    public static let builtin: [CompiledRule] = compileBuiltin(builtinSyntax)

    /// Parses and checks the rules in `text`; `file` names it in error messages. Calls may name
    /// the language's functions and those of `functions` (`FunctionTable.builtins` with native
    /// functions registered, `FunctionTable.register(matchFunction:arity:kinds:_:)`); two rules
    /// of one name are an error.
    ///
    /// The rules' expression trees are made with LeakSanitizer's leak detection off: a program
    /// may keep its rules in a global to the end, and Swift's layout of the trees hides them from
    /// it (`withoutLeakDetection`).
    public static func rules(in text: String, file: String = "<string>",
                             functions: FunctionTable = .builtins) throws(RuleErrors) -> [CompiledRule] {
        try withoutLeakDetection { () throws(RuleErrors) in
            // Syntax errors and the errors of the rules without any, in one pass.
            let (syntax, syntaxErrors) = parseRulesCollectingErrors(text, file: file)
            var errors = syntaxErrors
            var compiled: [CompiledRule] = []
            do throws(RuleErrors) {
                compiled = try compileRules(syntax, functions: functions)
            } catch {
                errors += error.errors
            }
            if !errors.isEmpty { throw RuleErrors(sortedByLocation(errors)) }
            return compiled
        }
    }

    /// The largest rule file read, in bytes.
    public static let maximumFileSize = 16 << 20

    /// Reads, parses and checks the rule file at `path`, as `rules(in:file:functions:)` does. A
    /// file that cannot be read, or is not UTF-8 text, is an error of the whole file (line 0).
    public static func load(path: String, functions: FunctionTable = .builtins) throws(RuleErrors) -> [CompiledRule] {
        let wholeFile = SourceLocation(file: path, line: 0, column: 0)
        let data: [UInt8]
        do {
            data = try ModelFile.regularFileContents(path, limit: maximumFileSize)
        } catch {
            throw RuleErrors([RuleError("cannot be read: \(error.problem)", at: wholeFile)])
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw RuleErrors([RuleError("is not UTF-8 text", at: wholeFile)])
        }
        return try rules(in: text, file: path, functions: functions)
    }
}

/// How a run rewrites a model.
public struct OptimizationOptions: Sendable {
    /// Only these rules run (by name); nil runs every rule given.
    public var only: Set<String>?
    /// These rules do not run.
    public var disabled: Set<String> = []
    /// Record why rules did not fire where their root matched.
    public var explain = false
    /// Treat initializers that are also graph inputs as constants.
    public var freezeInitializerInputs = false
    /// Stop after this many rewrites (nil: the engine's default cap).
    public var maximumRewrites: Int?
    /// `fold-constants` and `fold-shape-arithmetic` leave a value alone when it would hold more
    /// elements than this (so that folding does not make a model grow); `fold-constants` also
    /// leaves a node whose inputs hold more than 16 times this, or whose kernel would do more
    /// than 256 times this work (`GraphEvaluator.estimatedWork`).
    public var foldElementLimit = 1 << 20
    /// The limits on the work and memory of the rules' expressions (`where`, `compute`).
    public var evaluationLimits = EvaluationLimits()
    /// Check every rewrite as it is applied (`--verify`): the values it replaces are computed
    /// before and after with the reference kernels on seeded inputs and compared
    /// (`OptimizationReport.verification`).
    public var verifyRewrites = false
    /// The seed of the checks' inputs.
    public var verificationSeed: UInt64 = 1
    /// The limits of one rewrite's check.
    public var verificationLimits = VerificationLimits()
    /// Called now and then while the rules run, with how far they are.
    public var progress: (@Sendable (RewriteProgress) -> Void)?

    /// The defaults.
    public init() {}
}

/// What a run did.
public struct OptimizationReport: Sendable {
    /// Before the run.
    public var before: ModelStatistics
    /// After it.
    public var after: ModelStatistics
    /// Each rule that fired and how often.
    public var fired: [(rule: String, count: Int)]
    /// Why rules did not fire (with `explain`).
    public var explanations: [Explanation]
    /// Whether the rewrite cap stopped the run (a warning: the rules may not converge).
    public var reachedRewriteCap: Bool
    /// Errors of the rules themselves, such as a limit of the language exceeded, as
    /// `file:line:column: message`: the model may be partly rewritten and must not be saved.
    public var ruleErrors: [String] = []
    /// Graph outputs whose element type or rank the rewrite changed (a rule that computes
    /// something else), one message each: the model must not be saved.
    public var changedOutputs: [String] = []
    /// Nodes a rule created that their operator's schema rejects (inputs, outputs, attributes,
    /// types), one message each naming the rule and the node: the model must not be saved.
    public var invalidNodes: [String] = []
    /// What checking each rewrite found (with `verifyRewrites`): a model with failures must not
    /// be saved.
    public var verification: VerificationReport?
    /// Whether the task was cancelled (`optimize` then throws).
    var wasCancelled = false
}

/// Why `optimize` did not run, or stopped.
public struct OptimizationError: ONNXFuseError, Equatable {
    /// What went wrong.
    public enum Kind: Equatable, Sendable {
        /// `only` or `disabled` names a rule that is not among the rules given.
        case unknownRuleName(String)
        /// Two of the rules given have this name (reports count rules by name).
        case duplicateRuleName(String)
        /// The task running it was cancelled: the model holds the rewrites done until then,
        /// each of them complete (the model is valid and computes the same).
        case cancelled
        /// A file the model was loaded from changed since (`ModelFile.checkInputUnchanged`):
        /// its weights can no longer be read, and nothing was rewritten.
        case inputChanged(ModelFileError)
    }

    /// What went wrong.
    public let kind: Kind

    /// The one-line message.
    public var description: String {
        switch kind {
        case .unknownRuleName(let name): return "there is no rule named '\(name)' among the rules given"
        case .duplicateRuleName(let name): return "two rules are named '\(name)'"
        case .cancelled: return "the optimization was cancelled; the model holds the rewrites done until then"
        case .inputChanged(let error): return error.description
        }
    }
}

/// Rewrites `model` in place with `rules` (filtered by `options.only` and `disabled`) and
/// reports what changed. Type and shape inference runs first and is kept current as rules
/// rewrite (its facts are in `Value.inferred`; `writeInferredValueInfo` saves them).
///
/// Rules of every origin run alike and are counted in the report by name: the built-in ones
/// (`RuleFiles.builtin`), those of rule files and strings (`RuleFiles.load`, `RuleFiles.rules`)
/// and those written in Swift (`CompiledRule(name:benefit:summary:_:)`). Two rules of one name,
/// or a name in `only` or `disabled` that no rule has, are errors, thrown before anything
/// changes, and so is a file the model was loaded from that changed since (the weights it maps
/// would be read). Cancelling the task that runs it stops the rules within a few hundred nodes.
@discardableResult
public func optimize(_ model: Model, rules: [CompiledRule],
                     options: OptimizationOptions = OptimizationOptions()) throws(OptimizationError) -> OptimizationReport {
    var names = Set<String>()
    for rule in rules where !names.insert(rule.name).inserted {
        throw OptimizationError(kind: .duplicateRuleName(rule.name))
    }
    for name in (options.only ?? []).union(options.disabled).sorted() where !names.contains(name) {
        throw OptimizationError(kind: .unknownRuleName(name))
    }
    do {
        try ModelFile.checkInputUnchanged(model)
    } catch {
        throw OptimizationError(kind: .inputChanged(error))
    }
    let report = EvaluationLimits.$current.withValue(options.evaluationLimits) {
        optimizeWithinLimits(model, rules: rules, options: options)
    }
    if report.wasCancelled { throw OptimizationError(kind: .cancelled) }
    return report
}

private func optimizeWithinLimits(_ model: Model, rules: [CompiledRule], options: OptimizationOptions) -> OptimizationReport {
    let before = ModelStatistics(model)
    let selected = rules.filter { (options.only?.contains($0.name) ?? true) && !options.disabled.contains($0.name) }
    guard !selected.isEmpty else {
        return OptimizationReport(before: before, after: before, fired: [], explanations: [], reachedRewriteCap: false)
    }
    let inference = ShapeInference(model: model, freezeInitializerInputs: options.freezeInitializerInputs)
    inference.run()
    // What each graph output is before any rule runs, to check that no rule changed it.
    let outputsBefore = model.graph.outputs.map { output in
        let facts = inference.facts(of: output.value)
        return (output.value.name, facts.elementType, facts.shape?.count)
    }
    let analysis = OperatorAnalysis(inference: inference, foldElementLimit: options.foldElementLimit)
    let mergesDuplicates = selected.contains { $0.name == "merge-duplicates" }
    var sharedInitializers = mergesDuplicates ? mergeDuplicateInitializers(model) : 0
    let verifier = options.verifyRewrites
        ? RewriteVerifier(model: model, inference: inference, limits: options.verificationLimits,
                          freezeInitializerInputs: options.freezeInitializerInputs, seed: options.verificationSeed)
        : nil
    if let verifier, sharedInitializers > 0 {
        // Initializers of equal content read as one: nothing to compute.
        for _ in 0..<sharedInitializers {
            verifier.record(RewriteEvent(rule: "merge-duplicates", root: nil, removedNodes: [], addedNodes: [], replacements: []))
        }
    }
    var rewriteOptions = RewriteOptions()
    rewriteOptions.explain = options.explain
    rewriteOptions.freezeInitializerInputs = options.freezeInitializerInputs
    rewriteOptions.maximumRewrites = options.maximumRewrites
    rewriteOptions.progress = options.progress
    rewriteOptions.shouldStop = { Task.isCancelled }
    // A graph output forwarded to a graph input (or another value that cannot take its name)
    // keeps its name through an Identity, which every opset of the default domain has.
    rewriteOptions.passThroughOperator = model.opsetVersion(domain: "") != nil ? ("Identity", "") : nil
    var wasCancelled = false
    // Sharing initializers can make nodes equal that were not, so rules run again after it
    // (a few rounds at most: each round only merges).
    var explanations: [Explanation] = []
    var reachedRewriteCap = false
    var ruleErrors: [String] = []
    var counts: [String: Int] = [:]
    var order: [String] = []
    var created: [(node: Node, rule: String)] = []
    // Nodes created and erased since are dropped now and then: a rule that never converges
    // creates one per rewrite, up to the rewrite cap (1.5 million kept ~1 GB alive).
    var compactCreatedAt = 4_096
    for round in 0..<4 {
        let roundReport = applyRules(selected.flatMap(\.rewrites), to: model, options: rewriteOptions, analysis: analysis,
                                     nodeCreated: { node, rule in
                                         inference.infer(node)
                                         created.append((node, rule))
                                         if created.count >= compactCreatedAt {
                                             created.removeAll { $0.node.graph == nil }
                                             compactCreatedAt = max(4_096, 2 * created.count)
                                         }
                                     },
                                     inputsChanged: { inference.refresh(from: $0) },
                                     rewriteWillApply: verifier.map { verifier in { verifier.record($0) } })
        for (rule, count) in roundReport.fired {
            if counts[rule] == nil { order.append(rule) }
            counts[rule, default: 0] += count
        }
        explanations = roundReport.explanations
        reachedRewriteCap = roundReport.reachedRewriteCap
        if roundReport.wasStopped { wasCancelled = true; break }
        for error in roundReport.ruleErrors where !ruleErrors.contains(error) { ruleErrors.append(error) }
        if !ruleErrors.isEmpty { break }
        let shared = mergesDuplicates && !roundReport.reachedRewriteCap ? mergeDuplicateInitializers(model) : 0
        for _ in 0..<shared {
            verifier?.record(RewriteEvent(rule: "merge-duplicates", root: nil, removedNodes: [], addedNodes: [], replacements: []))
        }
        sharedInitializers += shared
        if shared == 0 || round == 3 { break }
    }
    if sharedInitializers > 0 {
        if counts["merge-duplicates"] == nil { order.append("merge-duplicates") }
        counts["merge-duplicates", default: 0] += sharedInitializers
    }
    // In the engine's rule order: higher benefit first, then by name.
    let benefit = Dictionary(selected.map { ($0.name, $0.rewrite.benefit) }, uniquingKeysWith: { a, _ in a })
    let fired = order.sorted { (benefit[$1] ?? 0, $0) < (benefit[$0] ?? 0, $1) }.map { (rule: $0, count: counts[$0]!) }
    // The engine imported the domains its rewrites introduced; a node the input already had in
    // an unimported domain gets its import here, so that the output is valid.
    for graph in model.allGraphs {
        for node in graph.nodes where !node.isDefaultDomain { model.importDomainIfMissing(node.domain!) }
    }
    var changedOutputs: [String] = []
    for ((name, type, rank), output) in zip(outputsBefore, model.graph.outputs) {
        let facts = inference.facts(of: output.value)
        func describe(_ type: DataType?, _ rank: Int?) -> String {
            "\(type.map { "\($0)" } ?? "?") of rank \(rank.map(String.init) ?? "?")"
        }
        if let type, let now = facts.elementType, type != now {
            changedOutputs.append("graph output '\(name)' changed from \(describe(type, rank)) to \(describe(now, facts.shape?.count))")
        } else if let rank, let now = facts.shape?.count, rank != now {
            changedOutputs.append("graph output '\(name)' changed from \(describe(type, rank)) to \(describe(facts.elementType, now))")
        }
    }
    return OptimizationReport(before: before, after: ModelStatistics(model), fired: fired,
                              explanations: explanations, reachedRewriteCap: reachedRewriteCap, ruleErrors: ruleErrors,
                              changedOutputs: changedOutputs, invalidNodes: schemaViolations(created, in: model, inference: inference),
                              verification: verifier?.report, wasCancelled: wasCancelled)
}

/// The nodes of `created` still in the model that their operator's schema (at the model's
/// opset) rejects, as messages naming the rule and the node. Operators of domains without
/// known schemas are not judged; an operator the opset does not have is a violation.
func schemaViolations(_ created: [(node: Node, rule: String)], in model: Model, inference: ShapeInference) -> [String] {
    var messages: [String] = []
    for (node, rule) in created where node.graph != nil {
        let domain = node.isDefaultDomain ? "" : node.domain!
        guard let version = model.opsetVersion(domain: domain) else { continue }
        if let problem = OperatorSchemas.problem(of: node, version: version, elementType: inference.elementType(of:)) {
            messages.append("rule '\(rule)' made \(node.opType) '\(node.name ?? "")': \(problem)")
        }
    }
    return messages
}
