import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// The rules of a run: the built-in ones and those of the rule files, kept apart.
struct RuleSet {
    /// The built-in rules (none with `--no-builtin`).
    var builtin: [CompiledRule]
    /// The rules of the files, in file order.
    var fromFiles: [CompiledRule]
    /// Every rule, the built-in ones first.
    var all: [CompiledRule] { builtin + fromFiles }
}

/// Loads the built-in rules (unless `builtin` is false) and those of `files`; every rule
/// file error becomes one line, and loading stops before any model is read.
func loadRuleSet(files: [String], builtin: Bool) throws -> RuleSet {
    var set = RuleSet(builtin: builtin ? RuleFiles.builtin : [], fromFiles: [])
    var errors: [String] = []
    for file in files {
        do {
            set.fromFiles += try RuleFiles.load(path: file)
        } catch {
            errors += error.errors.map(\.description)
        }
    }
    var seen: [String: String] = [:]
    for rule in set.all {
        if let other = seen[rule.name] {
            errors.append("\(rule.file): rule '\(rule.name)' is also defined in \(other)")
        }
        seen[rule.name] = rule.file
    }
    if !errors.isEmpty { throw RuleLoadErrors(lines: errors) }
    return set
}

/// Warnings about the rules of rule files that may undo each other or a rule of `others` (the
/// built-in rules they run with), one line each: `onnx-fuse: warning: FILE: ...`.
func undoWarnings(_ fileRules: [CompiledRule], others: [CompiledRule]) -> [String] {
    guard !fileRules.isEmpty else { return [] }
    let file = Dictionary(fileRules.map { ($0.name, $0.file) }, uniquingKeysWith: { a, _ in a })
    let pairs = undoingRules(fileRules + others.filter { file[$0.name] == nil }, checked: Set(file.keys))
    return pairs.map { pair in "onnx-fuse: warning: \(file[pair.first] ?? file[pair.second] ?? ""): \(pair)" }
}

/// Rule file errors: one line each on standard error, exit code 1.
struct RuleLoadErrors: Error {
    let lines: [String]
}

/// `onnx-fuse rules list|show|check`.
struct RulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "onnx-fuse rules",
        abstract: "List, print or check rewrite rules.",
        discussion: """
            onnx-fuse rules list [--rules FILE]...     each rule's name, source and first comment line
            onnx-fuse rules show NAME [--rules FILE]... a rule's text
            onnx-fuse rules check FILE...              load rule files and report their errors (and, as
                                                       warnings, rules that may undo each other)
            onnx-fuse rules check FILE... --model M...  also apply them to each model, check every
                                                       rewrite and the whole model (as --verify=model),
                                                       and print per rule: candidate nodes, fired,
                                                       verified, worst error; nothing is written
                                                       but the --report JSON, if asked for
            onnx-fuse rules list --json                 the rules as JSON (name, file, summary, comment, text)

            EXIT CODES (check): 0 no errors; 1 a rule file with errors; 2-4 a model that cannot be             read (as for onnx-fuse MODEL); 5 a rule changed the numbers of a model (or, with --strict,             a rewrite or a whole model could not be checked).
            """)

    @Argument(help: "list, show or check.")
    var action: String

    @Argument(help: "The rule name (show) or the files (check).")
    var arguments: [String] = []

    @Option(name: .customLong("rules"), help: ArgumentHelp("A rule file to include (repeatable).", valueName: "file"))
    var ruleFiles: [String] = []

    @Flag(help: "Leave out the built-in rules.")
    var noBuiltin = false

    @Option(name: .customLong("model"), help: ArgumentHelp("check: a model to apply the rules to and verify them on (repeatable).", valueName: "file"))
    var models: [String] = []

    @Option(help: ArgumentHelp("check: the seed of the verification's inputs.", valueName: "n"))
    var verifySeed: UInt64 = 1

    @Flag(help: "check: a rewrite or a whole model that cannot be checked is an error too.")
    var strict = false

    @Flag(help: "list: print the rules as a JSON array (name, file, summary, comment, text).")
    var json = false

    @Option(help: ArgumentHelp("check: write what was found as JSON to this file (also when a rule changed the numbers).", valueName: "path"))
    var report: String?

    func run() throws {
        switch action {
        case "list":
            let rules = try loadRuleSet(files: ruleFiles, builtin: !noBuiltin).all
            if json {
                print(try encodeJSON(rules.map(RuleListEntry.init)))
                return
            }
            let width = rules.map(\.name.count).max() ?? 0
            for rule in rules {
                let padded = rule.name.padded(to: width)
                print("\(padded)  \(rule.file)  \(rule.comment.first ?? "")")
            }
        case "show":
            guard arguments.count == 1 else { throw UsageError(message: "rules show takes one rule name") }
            let rules = try loadRuleSet(files: ruleFiles, builtin: !noBuiltin).all
            guard let rule = rules.first(where: { $0.name == arguments[0] }) else {
                throw UsageError(message: "there is no rule named '\(arguments[0])'")
            }
            for line in rule.comment { print("# \(line)") }
            print(rule.text)
        case "check":
            guard !arguments.isEmpty else { throw UsageError(message: "rules check takes rule files") }
            func inputs(_ paths: [String]) -> [(path: String, what: String, identity: FileIdentity?)] {
                paths.map { ($0, "the input '\($0)'", nil) }
            }
            if let report { try checkReportPath(report, notOverwriting: inputs(arguments + models)) }
            let rules = try loadRuleSet(files: arguments, builtin: false).fromFiles
            print("\(arguments.joined(separator: ", ")): \(rules.count) rule\(rules.count == 1 ? "" : "s"), no errors")
            // With the built-in rules they run beside (unless --no-builtin).
            let warnings = undoWarnings(rules, others: noBuiltin ? [] : RuleFiles.builtin)
            for warning in warnings { printError(warning) }
            var entries: [RuleCheckEntry] = []
            for model in models {
                entries.append(try checkRules(rules, on: model, seed: verifySeed, strict: strict))
            }
            let refusals = entries.flatMap(\.refusals)
            if let report {
                // Checked again with the external data files the models turned out to read.
                try checkReportPath(report, notOverwriting: inputs(arguments + entries.flatMap(\.inputFiles)))
                let file = RuleCheckReport(files: arguments, rules: rules.map(\.name), warnings: warnings, models: entries, refusals: refusals)
                try writeJSONFile(report, file)
            }
            if let first = refusals.first {
                let more = refusals.count > 1 ? " (and \(refusals.count - 1) more)" : ""
                throw VerificationFailed(message: first + more)
            }
        default:
            throw UsageError(message: "unknown rules action '\(action)'; expected list, show or check")
        }
    }
}

/// Applies `rules` (alone) to the model at `path` with every rewrite checked and the whole
/// model compared, prints a line per rule (candidate nodes, fired, verified, not verified,
/// worst error), and returns what was found, with what makes the check fail (`refusals`, empty
/// when the rules keep the numbers).
func checkRules(_ rules: [CompiledRule], on path: String, seed: UInt64, strict: Bool) throws -> RuleCheckEntry {
    let model = try ModelFile.load(path: path)
    // Candidates: the nodes (initializers, imports) each rule's anchor could match.
    var candidates: [String: Int] = [:]
    for rule in rules {
        let pattern = rule.rewrite.pattern
        var count = 0
        switch pattern.anchor {
        case .node:
            // A node counts once however many of the rule's forms are rooted at its operator.
            let roots = rule.rewrites.map { rewrite in
                let root = rewrite.pattern.nodes[rewrite.pattern.root]
                return (domain: root.domain == "ai.onnx" ? "" : root.domain, any: root.matchesAnyOperator,
                        opTypes: Set([root.opType] + rewrite.otherRootOpTypes))
            }
            for graph in model.allGraphs {
                for node in graph.nodes {
                    let domain = node.isDefaultDomain ? "" : node.domain!
                    if roots.contains(where: { $0.domain == domain && ($0.any || $0.opTypes.contains(node.opType)) }) { count += 1 }
                }
            }
        case .initializer:
            for graph in model.allGraphs { count += graph.initializers.count }
        case .opsetImport:
            count = model.opsetImports.count
        }
        candidates[rule.name] = count
    }
    var options = OptimizationOptions()
    options.verifyRewrites = true
    options.verificationSeed = seed
    let result = try optimize(model, rules: rules, options: options)
    if result.reachedRewriteCap { throw UsageError(message: "\(path): \(rewriteCapMessage(result))") }
    var refusals = result.ruleErrors.map { "\(path): \($0)" }
    refusals += (result.invalidNodes + result.changedOutputs).map { "\(path): \($0)" }
    let original = try ModelFile.load(path: path)
    let comparison = compareModels(original, model, seed: seed)
    let verification = result.verification ?? VerificationReport()
    let fired = Dictionary(result.fired.map { ($0.rule, $0.count) }, uniquingKeysWith: +)
    let byRule = Dictionary(verification.rules.map { ($0.rule, $0) }, uniquingKeysWith: { a, _ in a })
    print("\(path): \(result.before.nodeCount) -> \(result.after.nodeCount) nodes")
    let width = max(rules.map(\.name.count).max() ?? 0, "rule".count)
    func pad(_ text: String) -> String { text.padded(to: width) }
    func right(_ text: String, _ columns: Int) -> String { String(repeating: " ", count: max(0, columns - text.count)) + text }
    print("  \(pad("rule"))  candidates  fired  verified  not verified  worst error")
    var ruleEntries: [RuleCheckEntry.Rule] = []
    for rule in rules {
        let record = byRule[rule.name]
        let checked = record.map { $0.agreed } ?? 0
        var line = "  \(pad(rule.name)) \(right(String(candidates[rule.name] ?? 0), 11)) \(right(String(fired[rule.name] ?? 0), 6))"
            + " \(right(String(checked), 9)) \(right(String(record?.notVerified ?? 0), 13)) \(right(record.map { formatError($0.worstError) } ?? "-", 12))"
        if let reason = record?.firstNotVerifiedReason { line += "  (not verified: first \(reason))" }
        print(line)
        ruleEntries.append(RuleCheckEntry.Rule(
            rule: rule.name, candidates: candidates[rule.name] ?? 0, fired: fired[rule.name] ?? 0, verified: checked,
            notVerified: record?.notVerified ?? 0, worstError: record.map { VerificationEntry.Number(value: $0.worstError) },
            firstNotVerifiedReason: record?.firstNotVerifiedReason, alone: false))
    }
    print("  whole model: \(describe(comparison))")
    for failure in verification.failures.prefix(10) { print("  FAILED: \(failure)") }
    if verification.failures.count > 10 { print("  (and \(verification.failures.count - 10) more rewrites beyond tolerance)") }
    _ = Unmanaged.passRetained(original)
    _ = Unmanaged.passRetained(model)
    if let refusal = verificationRefusal(verification, comparison: comparison, strict: strict) {
        refusals.append("\(path): \(refusal)")
    }
    var failures = verification.failures
    // A rule another one took every candidate from is applied alone too: it would fire on a
    // model where the other does not match, and must be checked here all the same.
    for rule in rules where (candidates[rule.name] ?? 0) > 0 && fired[rule.name] == nil {
        let alone = try ModelFile.load(path: path)
        let result = try optimize(alone, rules: [rule], options: options)
        _ = Unmanaged.passRetained(alone)
        guard let record = result.verification?.rules.first(where: { $0.rule == rule.name }) else { continue }
        var line = "  \(rule.name) alone: fired \(record.checked + record.notVerified), verified \(record.agreed), "
            + "not verified \(record.notVerified), worst error \(formatError(record.worstError))"
        if let reason = record.firstNotVerifiedReason { line += " (not verified: first \(reason))" }
        print(line)
        ruleEntries.append(RuleCheckEntry.Rule(
            rule: rule.name, candidates: candidates[rule.name] ?? 0, fired: record.checked + record.notVerified, verified: record.agreed,
            notVerified: record.notVerified, worstError: VerificationEntry.Number(value: record.worstError),
            firstNotVerifiedReason: record.firstNotVerifiedReason, alone: true))
        let aloneFailures = result.verification?.failures ?? []
        for failure in aloneFailures.prefix(10) { print("  FAILED: \(failure) (the rule alone)") }
        if aloneFailures.count > 10 { print("  (and \(aloneFailures.count - 10) more rewrites beyond tolerance)") }
        failures += aloneFailures
        let aloneVerification = result.verification ?? VerificationReport()
        if let refusal = verificationRefusal(aloneVerification, comparison: nil, strict: strict) {
            refusals.append("\(path): \(refusal) (the rule alone)")
        }
        refusals += result.ruleErrors.map { "\(path): \($0)" }
    }
    var checked = verification
    checked.failures = failures
    return RuleCheckEntry(
        model: path, nodesBefore: result.before.nodeCount, nodesAfter: result.after.nodeCount, rules: ruleEntries,
        failures: VerificationEntry(checked, comparison: comparison, seed: seed).failures,
        wholeModel: VerificationEntry(verification, comparison: comparison, seed: seed).wholeModel, refusals: refusals,
        inputFiles: model.inputFiles.map(\.path))
}

/// What `rules check --report` writes.
struct RuleCheckReport: Encodable {
    /// The rule files checked.
    let files: [String]
    /// The names of their rules, in file order.
    let rules: [String]
    /// The warnings printed (rules that may undo each other).
    let warnings: [String]
    /// One entry per `--model`, in order.
    let models: [RuleCheckEntry]
    /// Everything that makes the check fail, over every model.
    let refusals: [String]
}

/// One model of `rules check --model`: per rule what `checkRules` printed, the rewrites beyond
/// tolerance and the whole-model comparison.
struct RuleCheckEntry: Encodable {
    /// A rule's line: with `alone`, the rule applied by itself (another took all its candidates).
    struct Rule: Encodable {
        let rule: String
        let candidates: Int
        let fired: Int
        let verified: Int
        let notVerified: Int
        /// Nil when the rule did not fire.
        let worstError: VerificationEntry.Number?
        let firstNotVerifiedReason: String?
        let alone: Bool
    }
    let model: String
    let nodesBefore: Int
    let nodesAfter: Int
    let rules: [Rule]
    let failures: [VerificationEntry.Failure]
    let wholeModel: VerificationEntry.WholeModel?
    let refusals: [String]
    /// The files the model was read from (itself and its external data), which the report must
    /// not overwrite; not part of the JSON.
    let inputFiles: [String]

    private enum CodingKeys: String, CodingKey {
        case model, nodesBefore, nodesAfter, rules, failures, wholeModel, refusals
    }
}

/// One rule of `rules list --json`.
struct RuleListEntry: Encodable {
    let name: String
    let file: String
    /// The first line of its comment (empty without one).
    let summary: String
    let comment: [String]
    let text: String

    init(_ rule: CompiledRule) {
        name = rule.name
        file = rule.file
        summary = rule.comment.first ?? ""
        comment = rule.comment
        text = rule.text
    }
}

/// `value` as the JSON the command writes: keys in snake case and sorted, indented.
func encodeJSON(_ value: some Encodable) throws -> String {
    let encoder = JSONEncoder()
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// Writes `value` as JSON to `path` atomically; a failure is a usage error naming the file.
func writeJSONFile(_ path: String, _ value: some Encodable) throws {
    do {
        // Written where the checks looked: the folder as the system resolves it.
        try ModelFile.writeAtomically(Array(try encodeJSON(value).utf8), to: ModelFile.resolvedPath(path))
    } catch let error as ModelFileError {
        throw UsageError(message: "\(path): cannot write the report: \(error.problem)")
    } catch {
        throw UsageError(message: "\(path): cannot write the report: \(error)")
    }
}

/// Refuses a report path that would overwrite one of `taken` (each a path, what it is for the
/// message, and the identity it had when read: a file renamed since is still recognized), that is
/// not a regular file, or whose folder does not exist: checked before anything is written.
func checkReportPath(_ report: String, notOverwriting taken: [(path: String, what: String, identity: FileIdentity?)]) throws {
    func refuse(_ why: String) -> UsageError { UsageError(message: "\(report): refusing to write the report: \(why)") }
    if let failure = ModelFile.lookupFailure(at: report) { throw refuse(failure) }
    let entry = ModelFile.entry(at: report)
    if let entry, !entry.isRegular { throw refuse("it is \(entry.kind)") }
    for (path, what, identity) in taken {
        var same = ModelFile.resolvedPath(path) == ModelFile.resolvedPath(report)
        if !same, let entry, let other = ModelFile.entry(at: path) { same = entry.device == other.device && entry.inode == other.inode }
        if !same, let entry, let identity { same = identity.device == entry.device && identity.inode == entry.inode }
        if same { throw refuse("it is \(what)") }
    }
    let folder = directoryName(of: report)
    guard ModelFile.isFolder(folder) else { throw refuse("its folder '\(folder)' does not exist") }
}

/// The JSON that `--report` writes.
struct ReportFile: Encodable {
    struct Fired: Encodable {
        let rule: String
        let count: Int
    }
    let input: String
    /// Nil when nothing was written (`--verify` refused the result).
    let output: String?
    let rulesFired: [Fired]
    let explanations: [ExplanationEntry]
    let nodesBefore: Int
    let nodesAfter: Int
    let nodesByOpTypeBefore: [String: Int]
    let nodesByOpTypeAfter: [String: Int]
    let bytesBefore: Int
    let bytesAfter: Int?
    let seconds: Double
    let reachedRewriteCap: Bool
    /// With `--verify`.
    let verification: VerificationEntry?

    struct ExplanationEntry: Encodable {
        let rule: String
        let node: String
        let opType: String
        let reason: String
    }
}

/// Refuses a report path that would overwrite the input model, one of its external data files,
/// the output or the output's data file (by name, and by identity when they exist), or that is
/// not a regular file, or whose folder does not exist: checked before anything is written.
func checkReportPath(_ report: String, model: Model, output: String?) throws {
    var taken: [(path: String, what: String, identity: FileIdentity?)] = model.inputFiles.enumerated().map { index, file in
        (file.path, index == 0 ? "the input model" : "the input's external data file", file)
    }
    if let output { taken += [(output, "the output", nil), (output + ".data", "the output's data file", nil)] }
    try checkReportPath(report, notOverwriting: taken)
}

/// The `--report` entry of a model; `output` and `bytesAfter` are nil when nothing was written.
func reportEntry(result: OptimizationReport, input: String, output: String?, bytesBefore: Int, bytesAfter: Int?,
                 seconds: Double, comparison: ModelComparison? = nil, seed: UInt64 = 1) -> ReportFile {
    ReportFile(
        input: input, output: output,
        rulesFired: result.fired.map { ReportFile.Fired(rule: $0.rule, count: $0.count) },
        explanations: result.explanations.map { ReportFile.ExplanationEntry(rule: $0.rule, node: $0.node, opType: $0.opType, reason: $0.reason) },
        nodesBefore: result.before.nodeCount, nodesAfter: result.after.nodeCount,
        nodesByOpTypeBefore: result.before.nodesByOpType, nodesByOpTypeAfter: result.after.nodesByOpType,
        bytesBefore: bytesBefore, bytesAfter: bytesAfter, seconds: seconds, reachedRewriteCap: result.reachedRewriteCap,
        verification: result.verification.map { VerificationEntry($0, comparison: comparison, seed: seed) })
}
