import ArgumentParser
import Foundation
import ONNXFuse

/// Loads the built-in rules (unless `builtin` is false) and those of `files`; every rule
/// file error becomes one line, and loading stops before any model is read.
func loadRuleSet(files: [String], builtin: Bool) throws -> [CompiledRule] {
    var rules = builtin ? RuleFiles.builtin : []
    var errors: [String] = []
    for file in files {
        do {
            rules += try RuleFiles.load(path: file)
        } catch let error as RuleErrors {
            errors += error.errors.map(\.description)
        } catch {
            errors.append("\(error)")
        }
    }
    var seen: [String: String] = [:]
    for rule in rules {
        if let other = seen[rule.name] {
            errors.append("\(rule.file): rule '\(rule.name)' is also defined in \(other)")
        }
        seen[rule.name] = rule.file
    }
    if !errors.isEmpty { throw RuleLoadErrors(lines: errors) }
    return rules
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
            onnx-fuse rules check FILE...              load rule files and report their errors
            """)

    @Argument(help: "list, show or check.")
    var action: String

    @Argument(help: "The rule name (show) or the files (check).")
    var arguments: [String] = []

    @Option(name: .customLong("rules"), help: ArgumentHelp("A rule file to include (repeatable).", valueName: "file"))
    var ruleFiles: [String] = []

    @Flag(help: "Leave out the built-in rules.")
    var noBuiltin = false

    func run() throws {
        switch action {
        case "list":
            let rules = try loadRuleSet(files: ruleFiles, builtin: !noBuiltin)
            let width = rules.map(\.name.count).max() ?? 0
            for rule in rules {
                let padded = rule.name.padding(toLength: width, withPad: " ", startingAt: 0)
                print("\(padded)  \(rule.file)  \(rule.comment.first ?? "")")
            }
        case "show":
            guard arguments.count == 1 else { throw UsageError(message: "rules show takes one rule name") }
            let rules = try loadRuleSet(files: ruleFiles, builtin: !noBuiltin)
            guard let rule = rules.first(where: { $0.name == arguments[0] }) else {
                throw UsageError(message: "there is no rule named '\(arguments[0])'")
            }
            for line in rule.comment { print("# \(line)") }
            print(rule.text)
        case "check":
            guard !arguments.isEmpty else { throw UsageError(message: "rules check takes rule files") }
            let rules = try loadRuleSet(files: arguments, builtin: false)
            print("\(arguments.joined(separator: ", ")): \(rules.count) rule\(rules.count == 1 ? "" : "s"), no errors")
        default:
            throw UsageError(message: "unknown rules action '\(action)'; expected list, show or check")
        }
    }
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
    func refuse(_ why: String) -> UsageError { UsageError(message: "\(report): refusing to write the report: \(why)") }
    // Before the model is written: a report that cannot be written fails the run with nothing written.
    if let failure = ModelFile.lookupFailure(at: report) { throw refuse(failure) }
    let entry = ModelFile.entry(at: report)
    if let entry, !entry.isRegular { throw refuse("it is \(entry.kind)") }
    var taken: [(String, String)] = model.inputFiles.enumerated().map { index, file in
        (file.path, index == 0 ? "the input model" : "the input's external data file")
    }
    if let output { taken += [(output, "the output"), (output + ".data", "the output's data file")] }
    for (path, what) in taken {
        var same = ModelFile.resolvedPath(path) == ModelFile.resolvedPath(report)
        if !same, let entry, let other = ModelFile.entry(at: path) { same = entry.device == other.device && entry.inode == other.inode }
        if !same, let entry, model.inputFiles.contains(where: { $0.path == path && $0.device == entry.device && $0.inode == entry.inode }) { same = true }
        if same { throw refuse("it is \(what)") }
    }
    let folder = directoryName(of: report)
    guard ModelFile.isFolder(folder) else {
        throw refuse("its folder '\(folder)' does not exist")
    }
}

/// Writes the `--report` JSON; `output` and `bytesAfter` are nil when nothing was written.
func writeReport(_ path: String, result: OptimizationReport, input: String, output: String?,
                 bytesBefore: Int, bytesAfter: Int?, seconds: Double, comparison: ModelComparison? = nil, seed: UInt64 = 1) throws {
    let report = ReportFile(
        input: input, output: output,
        rulesFired: result.fired.map { ReportFile.Fired(rule: $0.rule, count: $0.count) },
        explanations: result.explanations.map { ReportFile.ExplanationEntry(rule: $0.rule, node: $0.node, opType: $0.opType, reason: $0.reason) },
        nodesBefore: result.before.nodeCount, nodesAfter: result.after.nodeCount,
        nodesByOpTypeBefore: result.before.nodesByOpType, nodesByOpTypeAfter: result.after.nodesByOpType,
        bytesBefore: bytesBefore, bytesAfter: bytesAfter, seconds: seconds, reachedRewriteCap: result.reachedRewriteCap,
        verification: result.verification.map { VerificationEntry($0, comparison: comparison, seed: seed) })
    let encoder = JSONEncoder()
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    do {
        // Written where the checks looked: the folder as the system resolves it.
        try ModelFile.writeAtomically(Array(encoder.encode(report)), to: ModelFile.resolvedPath(path))
    } catch let error as ModelFileError {
        throw UsageError(message: "\(path): cannot write the report: \(error.problem)")
    } catch {
        throw UsageError(message: "\(path): cannot write the report: \(error)")
    }
}
