#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// The rules every model of a run shares, loaded and checked once (`loadRunRules`).
struct RunRules: Sendable {
    /// The built-in rules (unless compiled per model) and those of the rule files.
    let ruleSet: RuleSet
    /// Whether each model compiles the built-in rules it can use (`RuleFiles.builtin(for:)`)
    /// instead of running `ruleSet`'s: without rule files and --explain.
    let compilesBuiltinsForModel: Bool
    /// Rules of the files that may undo each other, printed once before any model.
    let warnings: [String]
}

/// How the work on one model reports, which differs between a run of one model (printed at
/// once, the model left alive for the process's end) and a batch (collected, released).
struct ModelRunStyle {
    /// Receives each line for standard error, in order.
    var emit: (String) -> Void
    /// Receives the `--report` entry where a run of one model writes its report: after the
    /// save, or before a refusal of `--verify`.
    var record: (ReportFile) throws -> Void = { _ in }
    /// Runs right before the save, once every check has passed (a batch makes the output's
    /// folders there).
    var beforeSave: () throws -> Void = {}
    /// Prints the table of rules fired and operators changed under the summary line.
    var showsChangeTable = true
    /// Leaves the model allocated when done: the process ends right after, and releasing every
    /// node and value one by one would only cost time (a tenth of a second on a 60,000-node
    /// graph). A batch releases each model, or 50 models' memory would pile up.
    var keepsModelAlive = true
}

/// What one model's run gives the totals of a batch.
struct ModelSummary: Sendable {
    var nodesBefore: Int
    var nodesAfter: Int
    /// The model file and its external data files, before and after.
    var bytesBefore: Int
    var bytesAfter: Int
}

/// At most this many saves at once: each holds up to three of the shim's 64 slots for the
/// temporary files a signal removes (the model's, the data file's and a data file claimed
/// under its name), and a slot that is not free leaves a file a signal would not remove.
let concurrentSaves = CountingGate(limit: 16)

extension OnnxFuseCommand {
    /// Loads `model`, rewrites it with `rules` and writes it to `target` ("-": standard
    /// output), sending every line to `style.emit`; throws the error that stopped it (nothing
    /// written then). A run of one model and each model of a batch go through here, so that a
    /// batch writes the same bytes.
    func optimizeModel(_ model: String, to target: String, rules runRules: RunRules, style: ModelRunStyle) throws -> ModelSummary {
        let clock = ContinuousClock()
        let start = clock.now
        let toStandardOutput = target == "-" && !print
        var trace = PhaseTrace()
        let sizeBefore = ModelFile.size(of: model) ?? 0
        let loaded = try ModelFile.load(path: model)
        defer { if style.keepsModelAlive { _ = Unmanaged.passRetained(loaded) } }
        do {
            try setInputShapes(loaded, try parsedInputShapes())
        } catch let error as InputShapeError {
            throw UsageError(message: "\(model): \(error.description)")
        }
        trace.mark("load")
        var options = OptimizationOptions()
        options.only = only.isEmpty ? nil : Set(only)
        options.disabled = Set(disable)
        let rules = runRules.compilesBuiltinsForModel
            ? RuleFiles.builtin(for: loaded, only: options.only, disabled: options.disabled) : runRules.ruleSet.all
        // The names were checked against every rule before; those the model cannot use were
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
            defer { if style.keepsModelAlive { _ = Unmanaged.passRetained(original) } }
            return compareModels(original, loaded, seed: verifySeed)
        }
        // A rewrite that changed the numbers is reported first: the checks below would name a
        // symptom of it (a graph output of another type) without the rule and the node.
        func refuseVerification(_ refusal: String, _ verification: VerificationReport, _ comparison: ModelComparison?) throws -> Never {
            for line in verificationLines(verification, comparison: comparison) { style.emit(line) }
            if let report {
                try checkReportPath(report, model: loaded, output: nil)
                try style.record(reportEntry(result: result, input: model, output: nil, bytesBefore: sizeBefore,
                                             bytesAfter: nil, seconds: secondsSince(start), comparison: comparison, seed: verifySeed))
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
                for line in verificationLines(verification, comparison: comparison) { style.emit(line) }
            }
        }
        if inferShapes { writeInferredValueInfo(loaded, freezeInitializerInputs: freezeInitializerInputs) }
        if explain == "all" {
            for explanation in result.explanations { style.emit("onnx-fuse: explain: \(explanation)") }
        } else if explain != nil {
            for line in explanationSummary(result.explanations) { style.emit(line) }
        }
        if result.reachedRewriteCap {
            style.emit("onnx-fuse: warning: \(rewriteCapMessage(result))")
        }
        if print {
            Swift.print(Printer().print(loaded), terminator: "")
            return ModelSummary(nodesBefore: result.before.nodeCount, nodesAfter: result.after.nodeCount, bytesBefore: sizeBefore, bytesAfter: 0)
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
        try style.beforeSave()
        let saved = try concurrentSaves.withSlot {
            try ModelFile.save(loaded, to: toStandardOutput ? model : target, options: saveOptions)
        }
        trace.mark("save")
        for line in trace.lines() { style.emit(line) }
        let elapsed = clock.now - start
        let destination = toStandardOutput ? "standard output" : target
        if !quiet {
            let data = saved.dataFileName.map { " (+ \($0), \(formatBytes(saved.dataBytes)))" } ?? ""
            let fired = result.fired.isEmpty ? "" : " (" + result.fired.map { "\($0.rule) ×\($0.count)" }.joined(separator: ", ") + ")"
            style.emit("onnx-fuse: \(model) -> \(destination)\(data): \(result.before.nodeCount) -> \(result.after.nodeCount) nodes\(fired), "
                + "\(formatBytes(sizeBefore)) -> \(formatBytes(saved.modelBytes)), \(formatDuration(elapsed))")
            if style.showsChangeTable {
                for line in changeTable(result) { style.emit(line) }
            }
        }
        if report != nil {
            try style.record(reportEntry(result: result, input: model, output: destination, bytesBefore: sizeBefore,
                                         bytesAfter: saved.modelBytes, seconds: secondsSince(start), comparison: comparison, seed: verifySeed))
        }
        let dataBefore = loaded.inputFiles.dropFirst().reduce(0) { $0 + (ModelFile.size(of: $1.path) ?? 0) }
        return ModelSummary(nodesBefore: result.before.nodeCount, nodesAfter: result.after.nodeCount,
                            bytesBefore: sizeBefore + dataBefore, bytesAfter: saved.modelBytes + saved.dataBytes)
    }
}
