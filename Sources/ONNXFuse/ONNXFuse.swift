#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
@_exported import ONNXFuseIR
@_exported import ONNXFuseOps
@_exported import ONNXFuseProto
@_exported import ONNXFuseRewrite
@_exported import ONNXFuseRules

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
    /// (folding, duplicate merging, no-op removal), then those of the built-in files. The files
    /// are tested to load, so a failure here is a bug in the build.
    ///
    /// The files are parsed once per process (`builtinSyntax`) and compiled side by side on the
    /// machine's cores at each access: this is most of the command's start-up time, which is
    /// why the command compiles only the rules a model can use (`builtin(for:)`).
    public static var builtin: [CompiledRule] {
        let files = builtinSyntax
        let compiled = Slots<[CompiledRule]>(count: files.count)
        DispatchQueue.concurrentPerform(iterations: files.count) { index in
            do {
                compiled.store(try compileRules(files[index]), at: index)
            } catch {
                preconditionFailure("the built-in rule file \(files[index].file) does not compile: \(error)")
            }
        }
        return NativeRules.all + compiled.elements.flatMap { $0 ?? [] }
    }

    /// Parses and checks the rules in `text`; `file` names it in error messages.
    public static func rules(in text: String, file: String = "<string>") throws(RuleErrors) -> [CompiledRule] {
        // Syntax errors and the errors of the rules without any, in one pass.
        let (syntax, syntaxErrors) = parseRulesCollectingErrors(text, file: file)
        var errors = syntaxErrors
        var compiled: [CompiledRule] = []
        do throws(RuleErrors) {
            compiled = try compileRules(syntax)
        } catch {
            errors += error.errors
        }
        if !errors.isEmpty { throw RuleErrors(sortedByLocation(errors)) }
        return compiled
    }

    /// The largest rule file read, in bytes.
    public static let maximumFileSize = 16 << 20

    /// Reads, parses and checks the rule file at `path`.
    public static func load(path: String) throws -> [CompiledRule] {
        let data = try readRuleFile(path)
        guard let text = String(validating: data, as: UTF8.self) else {
            throw RuleFileError(file: path, message: "is not UTF-8 text")
        }
        return try rules(in: text, file: path)
    }
}

/// A rule file that cannot be read at all.
public struct RuleFileError: Error, CustomStringConvertible {
    /// The file.
    public var file: String
    /// What is wrong.
    public var message: String

    /// `file: message`.
    public var description: String { "\(file): \(message)" }
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
}

/// Rewrites `model` in place with `rules` (filtered by `options.only` and `disabled`) and
/// reports what changed. Type and shape inference runs first and is kept current as rules
/// rewrite (its facts are in `Value.inferred`; `writeInferredValueInfo` saves them).
@discardableResult
public func optimize(_ model: Model, rules: [CompiledRule], options: OptimizationOptions = OptimizationOptions()) -> OptimizationReport {
    EvaluationLimits.$current.withValue(options.evaluationLimits) { optimizeWithinLimits(model, rules: rules, options: options) }
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
                              verification: verifier?.report)
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

/// The bytes of the rule file at `path` (a regular file of at most `RuleFiles.maximumFileSize`
/// bytes); every failure says why.
func readRuleFile(_ path: String) throws(RuleFileError) -> [UInt8] {
    do {
        return try ModelFile.regularFileContents(path, limit: RuleFiles.maximumFileSize)
    } catch {
        throw RuleFileError(file: path, message: "cannot be read: \(error.problem)")
    }
}
