#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Dispatch
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// `onnx-fuse MODEL`: load, rewrite, save. All logic lives in the ONNXFuse library; this
/// command parses arguments, prints, and turns errors into exit codes.
struct OnnxFuseCommand: ParsableCommand, Sendable {
    static let configuration = CommandConfiguration(
        commandName: "onnx-fuse",
        abstract: "Make ONNX models smaller and faster: fold and fuse their graphs, losslessly.",
        discussion: """
            Reads MODEL, rewrites its graph with the built-in rules and those of --rules files, and \
            writes MODEL.fused.onnx beside it (or the path given with -o). The input is never \
            modified unless --in-place is given; the output appears atomically or not at all.

            Many models: 'onnx-fuse a.onnx b.onnx DIR... [-o OUTDIR/] [--jobs N] [--fail-fast] [--batch]' \
            optimizes each (a folder is searched for *.onnx files, in byte order, without following \
            linked folders; without -o, *.fused.onnx files are skipped) on N threads; the outputs \
            keep their paths under OUTDIR (or go beside each model), the same bytes as one run each. \
            Each model gets one line (or its error), in input order, then a total line.

            'onnx-fuse rules list|show NAME|check FILE [--model M]' lists, prints or checks rules; \
            'onnx-fuse evaluate MODEL -o DATA' runs a model with the reference kernels.

            EXIT CODES:
              0  done
              1  usage error (bad arguments, a rule file with errors, rules that stop
                 at the rewrite cap)
              2  invalid or unsupported model
              3  I/O error, or an input file changed while onnx-fuse read it;
                 nothing written
              4  a limit exceeded (nesting depth, memory budget, size)
              5  --verify: a rewrite or the whole model changed the numbers (or, with
                 strict, something could not be checked); nothing written
            With many models, the largest code of any model (every model is still
            processed, unless --fail-fast); errors of the whole run (arguments, rule
            files, two models with one output) stop it before any model, with 1.
            """,
        version: "onnx-fuse 0.1.0")

    @Argument(help: ArgumentHelp("The ONNX models to read, or folders to search for *.onnx files (more than one, "
        + "or a folder, optimizes them all: see 'Many models in one run' in the README).", valueName: "model"))
    var models: [String]

    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("Where to write the result; '-' writes to standard output.", valueName: "path"))
    var output: String?

    @Flag(help: "Replace MODEL with the result (atomically).")
    var inPlace = false

    @Flag(help: "Do not apply the built-in rules.")
    var noBuiltin = false

    @Option(name: .customLong("rules"), help: ArgumentHelp("A rule file to apply too (repeatable).", valueName: "file"))
    var ruleFiles: [String] = []

    @Option(help: ArgumentHelp("Apply only this rule (repeatable).", valueName: "name"))
    var only: [String] = []

    @Option(help: ArgumentHelp("Do not apply this rule (repeatable).", valueName: "name"))
    var disable: [String] = []

    @Option(help: ArgumentHelp("Say why rules did not fire where their root operator matched: once per rule and reason, "
        + "with the nodes ('--explain' alone), or one line per node ('--explain=all').", valueName: "summary|all"))
    var explain: String?

    @Option(help: ArgumentHelp("Write what happened as JSON to this file.", valueName: "path"))
    var report: String?

    @Flag(help: "Treat initializers that are also graph inputs as constants (they can be overridden at run time).")
    var freezeInitializerInputs = false

    @Flag(help: "Write the inferred types and shapes of intermediate values into value_info.")
    var inferShapes = false

    @Option(name: .customLong("input-shape"), help: ArgumentHelp("Fix the dimensions of a graph input, e.g. 'x=1,3,224,224' (repeatable).", valueName: "name=dims"))
    var inputShapes: [String] = []

    @Option(help: ArgumentHelp("Fold no value with more elements than this (nor inputs of more than 16 times this, or more than 256 times this multiply-adds).", valueName: "n"))
    var foldLimit: Int = 1 << 20

    @Option(help: ArgumentHelp("The most elements any value of a rule's expressions may have.", valueName: "n"))
    var ruleElementLimit: Int = EvaluationLimits().maximumElements

    @Option(help: ArgumentHelp("The most elements one application of a rule may create (the results of its operations and calls).", valueName: "n"))
    var ruleWorkLimit: Int = EvaluationLimits().maximumWorkPerApplication

    @Option(help: ArgumentHelp("Check every rewrite with the reference kernels on seeded inputs ('--verify' alone); "
        + "'model' also compares the whole models, 'strict' makes what cannot be checked an error (e.g. --verify=model,strict).",
        valueName: "rewrites|model|strict"))
    var verify: String?

    @Option(help: ArgumentHelp("The seed of --verify's inputs.", valueName: "n"))
    var verifySeed: UInt64 = 1

    @Flag(help: "Write the result even when the rules stopped at the rewrite cap (they may not converge).")
    var allowRewriteCap = false

    @Flag(help: "Print the graph as text to standard output instead of writing a model.")
    var print = false

    @Flag(name: [.customShort("q"), .long], help: "Print nothing but errors.")
    var quiet = false

    @Option(help: ArgumentHelp("Many models: optimize this many at once, on as many threads (default: the CPUs this process may use).",
        valueName: "n"))
    var jobs: Int?

    @Flag(help: "Many models: after the first one fails, start no other (those running finish; the rest are skipped).")
    var failFast = false

    @Flag(help: ArgumentHelp("Run as many models even when one model file is given (-o names a folder, the report has an entry "
        + "per model): for scripts whose lists may hold one model."))
    var batch = false

    /// `--input-shape` values as names and dimensions.
    func parsedInputShapes() throws -> [(name: String, dims: [Int64])] { try parseInputShapes(inputShapes) }

    func validate() throws {
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        _ = try parsedInputShapes()
        if foldLimit < 0 { throw ValidationError("--fold-limit must not be negative") }
        if ruleElementLimit <= 0 || ruleWorkLimit <= 0 { throw ValidationError("--rule-element-limit and --rule-work-limit must be positive") }
        if inPlace && output != nil { throw ValidationError("--in-place and -o cannot be used together") }
        if print && (inPlace || output != nil) { throw ValidationError("--print writes no model; drop -o and --in-place") }
        if let explain, !["summary", "all"].contains(explain) {
            throw ValidationError("--explain=\(explain): expected summary or all")
        }
        if let verify, VerifyMode(verify) == nil {
            throw ValidationError("--verify=\(verify): expected rewrites, model or strict (or a comma-separated list)")
        }
    }

    /// The output path of a run of one model: -o, the input itself with --in-place, else
    /// MODEL.fused.onnx.
    var outputPath: String {
        if let output { return output }
        return defaultOutputPath(of: model)
    }

    /// Where `model` goes without -o: itself with --in-place, else MODEL.fused.onnx beside it.
    func defaultOutputPath(of model: String) -> String {
        if inPlace { return model }
        if model.hasSuffix(".onnx") { return String(model.dropLast(5)) + ".fused.onnx" }
        return model + ".fused.onnx"
    }

    /// The one model of a run of one model.
    var model: String { models[0] }

    func run() throws {
        if isBatch {
            try runBatch()
            return
        }
        let target = outputPath
        let toStandardOutput = target == "-" && !print
        if !print && !inPlace && !toStandardOutput && ModelFile.isSameFile(model, target) {
            throw UsageError(message: "\(target): refusing to overwrite the input; pass --in-place to replace it")
        }
        let rules = try loadRunRules()
        for warning in rules.warnings { printError(warning) }
        var style = ModelRunStyle(emit: printError)
        if let report {
            style.record = { entry in try writeJSONFile(report, entry) }
        }
        _ = try optimizeModel(model, to: target, rules: rules, style: style)
    }

    /// Loads and checks the rules every model of the run shares: rule files (errors stop the run
    /// before any model is read), the built-in rules unless they are compiled per model, and the
    /// names of --only and --disable.
    func loadRunRules() throws -> RunRules {
        // Rule files are checked before the model is touched. Without them, the built-in rules
        // are compiled once the model is read, only those it can use (`RuleFiles.builtin(for:)`):
        // compiling them all is most of the start-up. Beside rule files, all are compiled, for
        // the checks of names and of rules undoing each other; and with --explain, which says
        // why a rule whose root operator is there did not fire.
        let compilesBuiltinsForModel = !noBuiltin && ruleFiles.isEmpty && explain == nil
        if compilesBuiltinsForModel {
            // The built-in files are parsed on another thread while the model loads.
            DispatchQueue.global(qos: .userInitiated).async { _ = RuleFiles.builtinNames }
        }
        let ruleSet = try loadRuleSet(files: ruleFiles, builtin: !noBuiltin && !compilesBuiltinsForModel)
        if !(only + disable).isEmpty {
            let ruleNames = Set(ruleSet.all.map(\.name) + (compilesBuiltinsForModel ? RuleFiles.builtinNames : []))
            for name in only + disable where !ruleNames.contains(name) {
                throw UsageError(message: "there is no rule named '\(name)'")
            }
        }
        return RunRules(ruleSet: ruleSet, compilesBuiltinsForModel: compilesBuiltinsForModel,
                        warnings: undoWarnings(ruleSet.fromFiles, others: ruleSet.builtin))
    }
}

/// `--explain`'s lines: one per rule and reason, in the order first seen, with how many nodes
/// and the first few of them, and the rule's line that failed when one did (`--explain=all` gives one
/// line per node instead).
func explanationSummary(_ explanations: [Explanation]) -> [String] {
    var order: [String] = []
    var nodes: [String: [String]] = [:]
    var lines: [String: String] = [:]
    for explanation in explanations {
        let key = "\(explanation.rule): \(explanation.reason)"
        if nodes[key] == nil { order.append(key) }
        nodes[key, default: []].append(explanation.node)
        if let line = explanation.ruleLine { lines[key] = line }
    }
    return order.map { key in
        let at = nodes[key]!
        let shown = at.prefix(3).map { "'\($0)'" }.joined(separator: ", ")
        let place = at.count == 1 ? "at node \(shown)" : "at \(at.count) nodes: \(shown)\(at.count > 3 ? ", ..." : "")"
        return "onnx-fuse: explain: \(key) (\(place)\(lines[key].map { "; \($0)" } ?? ""))"
    }
}

/// `--input-shape` values (`NAME=D1,D2,...`) as names and dimensions.
func parseInputShapes(_ texts: [String]) throws -> [(name: String, dims: [Int64])] {
    try texts.map { text in
        guard let equals = text.lastIndex(of: "="), equals != text.startIndex else {
            throw ValidationError("--input-shape '\(text)': expected NAME=D1,D2,...")
        }
        let name = String(text[..<equals])
        let dimsText = text[text.index(after: equals)...]
        let dims = dimsText.isEmpty ? [] : dimsText.split(separator: ",", omittingEmptySubsequences: false).map { Int64($0) }
        guard dims.allSatisfy({ $0 != nil && $0! >= 0 }) else {
            throw ValidationError("--input-shape '\(text)': dimensions must be non-negative integers")
        }
        return (name, dims.map { $0! })
    }
}

/// What stopping at the rewrite cap means, with the rules that fired most.
func rewriteCapMessage(_ result: OptimizationReport) -> String {
    let total = result.fired.reduce(0) { $0 + $1.count }
    let busiest = result.fired.sorted { $0.count > $1.count }.prefix(3).map { "\($0.rule) ×\($0.count)" }.joined(separator: ", ")
    return "the rules stopped at the rewrite cap after \(total) rewrites (\(busiest)): they may not converge (a rule that undoes another, or one that matches its own result)"
}

/// Seconds since `start`.
func secondsSince(_ start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock().now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

/// A usage error found after parsing (exit code 1).
struct UsageError: Error {
    let message: String
}

/// Phase timings on standard error when `ONNX_FUSE_TRACE=1`, for profiling and benchmarks,
/// each with the process's peak resident memory at its end (which phase raised it).
struct PhaseTrace {
    private let enabled = getenv("ONNX_FUSE_TRACE").map { String(cString: $0) == "1" } ?? false
    private let clock = ContinuousClock()
    private var last: ContinuousClock.Instant
    private var phases: [(name: String, duration: Duration, peakKiB: Int)] = []

    init() { last = clock.now }

    mutating func mark(_ phase: String) {
        guard enabled else { return }
        let now = clock.now
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        phases.append((phase, now - last, usage.ru_maxrss))
        last = now
    }

    /// The trace's line, or none when tracing is off.
    func lines() -> [String] {
        guard enabled else { return [] }
        return ["onnx-fuse: trace: " + phases.map { "\($0.name) \(formatDuration($0.duration)) (peak \($0.peakKiB / 1024) MiB)" }
            .joined(separator: ", ")]
    }
}

/// The table under the summary when rules fired: each rule and how often, then the node
/// counts by operator that changed.
func changeTable(_ result: OptimizationReport) -> [String] {
    guard !result.fired.isEmpty else { return [] }
    var changed: [(String, Int, Int)] = []
    for op in Set(result.before.nodesByOpType.keys).union(result.after.nodesByOpType.keys).sorted() {
        let before = result.before.nodesByOpType[op] ?? 0, after = result.after.nodesByOpType[op] ?? 0
        if before != after { changed.append((op, before, after)) }
    }
    let width = max(result.fired.map(\.rule.count).max() ?? 0, changed.map(\.0.count).max() ?? 0, "operator".count)
    func pad(_ text: String) -> String { text.padded(to: width) }
    func right(_ text: String, _ columns: Int) -> String { String(repeating: " ", count: max(0, columns - text.count)) + text }
    var lines = ["  \(pad("rule"))   fired"]
    lines += result.fired.map { "  \(pad($0.rule)) \(right(String($0.count), 7))" }
    lines.append("  \(pad("operator"))  before   after")
    lines += changed.map { "  \(pad($0.0)) \(right(String($0.1), 7)) \(right(String($0.2), 7))" }
    return lines
}

extension String {
    /// The string with spaces appended up to `width` characters (unchanged when already as wide),
    /// for the aligned columns of the summaries; Foundation's `padding(toLength:)` without Foundation.
    func padded(to width: Int) -> String {
        let missing = width - count
        return missing > 0 ? self + String(repeating: " ", count: missing) : self
    }
}
