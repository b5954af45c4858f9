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
struct OnnxFuseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "onnx-fuse",
        abstract: "Make ONNX models smaller and faster: fold and fuse their graphs, losslessly.",
        discussion: """
            Reads MODEL, rewrites its graph with the built-in rules and those of --rules files, and \
            writes MODEL.fused.onnx beside it (or the path given with -o). The input is never \
            modified unless --in-place is given; the output appears atomically or not at all.

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
            """,
        version: "onnx-fuse 0.1.0")

    @Argument(help: "The ONNX model to read.")
    var model: String

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

    /// `--input-shape` values as names and dimensions.
    func parsedInputShapes() throws -> [(name: String, dims: [Int64])] { try parseInputShapes(inputShapes) }

    func validate() throws {
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

    /// The output path: -o, the input itself with --in-place, else MODEL.fused.onnx.
    var outputPath: String {
        if let output { return output }
        if inPlace { return model }
        if model.hasSuffix(".onnx") { return String(model.dropLast(5)) + ".fused.onnx" }
        return model + ".fused.onnx"
    }

    func run() throws {
        let clock = ContinuousClock()
        let start = clock.now
        let target = outputPath
        let toStandardOutput = target == "-" && !print
        if !print && !inPlace && !toStandardOutput && ModelFile.isSameFile(model, target) {
            throw UsageError(message: "\(target): refusing to overwrite the input; pass --in-place to replace it")
        }
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
        for warning in undoWarnings(ruleSet.fromFiles, others: ruleSet.builtin) { printError(warning) }
        var trace = PhaseTrace()
        let sizeBefore = ModelFile.size(of: model) ?? 0
        let loaded = try ModelFile.load(path: model)
        do {
            try setInputShapes(loaded, try parsedInputShapes())
        } catch let error as InputShapeError {
            throw UsageError(message: "\(model): \(error.description)")
        }
        trace.mark("load")
        var options = OptimizationOptions()
        options.only = only.isEmpty ? nil : Set(only)
        options.disabled = Set(disable)
        let rules = compilesBuiltinsForModel
            ? RuleFiles.builtin(for: loaded, only: options.only, disabled: options.disabled) : ruleSet.all
        // The names were checked against every rule above; those the model cannot use were
        // left out of `rules`, and name nothing that runs.
        let ruleNames = Set(rules.map(\.name))
        options.only = options.only?.intersection(ruleNames)
        options.disabled.formIntersection(ruleNames)
        options.explain = explain != nil
        options.freezeInitializerInputs = freezeInitializerInputs
        options.foldElementLimit = foldLimit
        options.evaluationLimits.maximumElements = ruleElementLimit
        options.evaluationLimits.maximumWorkPerApplication = ruleWorkLimit
        let verifyMode = verify.flatMap(VerifyMode.init)
        options.verifyRewrites = verifyMode != nil
        options.verificationSeed = verifySeed
        let result = try optimize(loaded, rules: rules, options: options)
        trace.mark("optimize")
        if let first = result.ruleErrors.first {
            let more = result.ruleErrors.count > 1 ? " (and \(result.ruleErrors.count - 1) more)" : ""
            throw UsageError(message: first + more + "; nothing written")
        }
        if result.reachedRewriteCap && !allowRewriteCap {
            throw UsageError(message: "\(model): " + rewriteCapMessage(result) + "; nothing written (--allow-rewrite-cap writes it anyway)")
        }
        // The original, read again (loading maps the file: cheap), on the same input shapes.
        // Only while the file is the one rewritten: another one would be compared, and a
        // truncated one would fault where the comparison reads the weights.
        func compareWithOriginal() throws -> ModelComparison {
            try ModelFile.checkInputUnchanged(loaded)
            let original = try ModelFile.load(path: model)
            try? setInputShapes(original, try parsedInputShapes())
            defer { _ = Unmanaged.passRetained(original) }
            return compareModels(original, loaded, seed: verifySeed)
        }
        // A rewrite that changed the numbers is reported first: the checks below would name a
        // symptom of it (a graph output of another type) without the rule and the node.
        func refuseVerification(_ refusal: String, _ verification: VerificationReport, _ comparison: ModelComparison?) throws -> Never {
            for line in verificationLines(verification, comparison: comparison) { printError(line) }
            if let report {
                try checkReportPath(report, model: loaded, output: nil)
                try writeReport(report, result: result, input: model, output: nil, bytesBefore: sizeBefore,
                                bytesAfter: nil, seconds: secondsSince(start), comparison: comparison, seed: verifySeed)
            }
            throw VerificationFailed(message: "\(model): \(refusal); nothing written")
        }
        if let verification = result.verification, let refusal = verificationRefusal(verification, comparison: nil, strict: false) {
            // The whole-model verdict is still given when asked for: it says how far the outputs moved.
            try refuseVerification(refusal, verification, verifyMode?.model == true ? try compareWithOriginal() : nil)
        }
        if let first = result.invalidNodes.first {
            let more = result.invalidNodes.count > 1 ? " (and \(result.invalidNodes.count - 1) more)" : ""
            throw ModelFileError.invalidModel(file: model, location: "",
                                              reason: "\(first)\(more): the operator's schema rejects it; nothing written", offset: nil)
        }
        if let first = result.changedOutputs.first {
            throw ModelFileError.invalidModel(file: model, location: "",
                                              reason: "\(first): a rule changed what the model computes; nothing written", offset: nil)
        }
        // The rewritten graph must still be well formed (acyclic, in order, every value defined
        // once): a rule that broke it is a bug, and its result is not written. (When no rule
        // fired, the graph is as the loader built it.)
        do {
            if !result.fired.isEmpty { try loaded.verify() }
        } catch {
            throw ModelFileError.invalidModel(file: model, location: "",
                                              reason: "the rewritten model is not valid (\(error)); nothing written", offset: nil)
        }
        var comparison: ModelComparison?
        if let verification = result.verification, let verifyMode {
            if verifyMode.model { comparison = try compareWithOriginal() }
            trace.mark("verify")
            if let refusal = verificationRefusal(verification, comparison: comparison, strict: verifyMode.strict) {
                try refuseVerification(refusal, verification, comparison)
            }
            if !quiet {
                for line in verificationLines(verification, comparison: comparison) { printError(line) }
            }
        }
        if inferShapes { writeInferredValueInfo(loaded, freezeInitializerInputs: freezeInitializerInputs) }
        if explain == "all" {
            for explanation in result.explanations { printError("onnx-fuse: explain: \(explanation)") }
        } else if explain != nil {
            for line in explanationSummary(result.explanations) { printError(line) }
        }
        if result.reachedRewriteCap {
            printError("onnx-fuse: warning: \(rewriteCapMessage(result))")
        }
        if print {
            Swift.print(Printer().print(loaded), terminator: "")
            _ = Unmanaged.passRetained(loaded)
            return
        }
        if let report { try checkReportPath(report, model: loaded, output: toStandardOutput ? nil : target) }
        var saveOptions = SaveOptions()
        saveOptions.toStandardOutput = toStandardOutput
        saveOptions.replaceInput = inPlace
        saveOptions.newFilePermissions = ModelFile.permissions(of: model)
        // The report is written after the model: its place is not for the data file.
        saveOptions.reservedPaths = report.map { [$0] } ?? []
        // Verified above when a rule fired; otherwise the model is as the loader built it.
        saveOptions.verifiesModel = false
        let saved = try ModelFile.save(loaded, to: toStandardOutput ? model : target, options: saveOptions)
        trace.mark("save")
        trace.report()
        let elapsed = clock.now - start
        let destination = toStandardOutput ? "standard output" : target
        if !quiet {
            let data = saved.dataFileName.map { " (+ \($0), \(formatBytes(saved.dataBytes)))" } ?? ""
            let fired = result.fired.isEmpty ? "" : " (" + result.fired.map { "\($0.rule) ×\($0.count)" }.joined(separator: ", ") + ")"
            printError("onnx-fuse: \(model) -> \(destination)\(data): \(result.before.nodeCount) -> \(result.after.nodeCount) nodes\(fired), "
                + "\(formatBytes(sizeBefore)) -> \(formatBytes(saved.modelBytes)), \(formatDuration(elapsed))")
            for line in changeTable(result) { printError(line) }
        }
        if let report {
            try writeReport(report, result: result, input: model, output: destination, bytesBefore: sizeBefore,
                            bytesAfter: saved.modelBytes, seconds: secondsSince(start), comparison: comparison, seed: verifySeed)
        }
        // The process ends right after this; releasing every node and value one by one would
        // only cost time (a tenth of a second on a 60,000-node graph).
        _ = Unmanaged.passRetained(loaded)
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

    func report() {
        guard enabled else { return }
        printError("onnx-fuse: trace: " + phases.map { "\($0.name) \(formatDuration($0.duration)) (peak \($0.peakKiB / 1024) MiB)" }
            .joined(separator: ", "))
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
