#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CONNX
import ONNXFuse

/// A batch ended with models that failed: their lines are printed; the exit code is the
/// largest of theirs.
struct BatchFailed: Error {
    let exitCode: Int32
}

/// How one model of a batch ended.
struct BatchOutcome: Sendable {
    /// Written, failed, or never started (`--fail-fast`).
    enum Status: String, Sendable {
        case written, failed, skipped
    }
    var status: Status
    /// The model's block for standard error, whole.
    var lines: [String]
    var exitCode: Int32 = 0
    /// The messages of its error lines (empty when it succeeded): one, or one per error of a
    /// rule file.
    var errors: [String] = []
    var summary: ModelSummary?
    /// The `--report` entry as a run of one model would write it, when it got that far.
    var report: ReportFile?
}

extension OnnxFuseCommand {
    /// Whether this is a run of many models: `--batch`, more than one MODEL, or a folder.
    /// Without `--batch`, one model file is a run of one model whatever `-o` names: `-o`
    /// naming a folder (`out`, `out/`, `/`) is refused as an output, as it always was, so that a
    /// mistyped path is an error rather than a file written somewhere else.
    var isBatch: Bool {
        batch || models.count > 1 || models.contains(where: ModelFile.isFolder)
    }

    /// Optimizes every model of the batch on `--jobs` threads and prints each model's block in
    /// input order, then the totals; throws `BatchFailed` when a model failed.
    func runBatch() throws {
        let clock = ContinuousClock()
        let start = clock.now
        if print { throw UsageError(message: "--print works on one model; drop it, or give one model") }
        if output == "-" { throw UsageError(message: "-o - writes one model to standard output; name an output folder for many") }
        let plan = try BatchPlan(models: models, outputFolder: output, defaultOutput: defaultOutputPath(of:))
        if plan.items.isEmpty { throw UsageError(message: "no *.onnx files in \(models.joined(separator: ", "))") }
        if !quiet {
            for (link, model) in plan.skippedLinks { printError("onnx-fuse: \(link): skipped: a link to \(model), a model of this run") }
        }
        try plan.checkCollisions(inPlace: inPlace, report: report)
        if let output, let failure = ModelFile.lookupFailure(at: output) {
            throw UsageError(message: "\(output): cannot use the output folder: \(failure)")
        }
        if let output, let entry = ModelFile.entry(at: output), !ModelFile.isFolder(output) {
            throw UsageError(message: "\(output): the output folder is \(entry.kind)")
        }
        if let report {
            let folder = directoryName(of: report)
            guard ModelFile.isFolder(folder) else {
                throw UsageError(message: "\(report): refusing to write the report: its folder '\(folder)' does not exist")
            }
        }
        let rules = try loadRunRules()
        let threadCount = min(jobs ?? Int(onnx_fuse_usable_processors()), plan.items.count)
        try plan.checkExternalData(threads: threadCount)
        for warning in rules.warnings { printError(warning) }

        let progress = ProgressLine(enabled: !quiet && isatty(STDERR_FILENO) == 1, total: plan.items.count)
        // Largest first: the models start in order of their size (with the usual data file), so
        // that a big one does not start last and leave the other threads idle while it runs (of
        // the 50 torchvision exports of BENCHMARKS.md, convnext_tiny alone is a third of the
        // work). Logs and outputs keep input order; only the start order changes. With
        // --fail-fast, input order: the models skipped after a failure are those after it.
        let sizes = plan.items.map { (ModelFile.size(of: $0.input) ?? 0) + (ModelFile.size(of: $0.input + ".data") ?? 0) }
        let startOrder = failFast ? Array(plan.items.indices)
            : plan.items.indices.sorted { sizes[$0] != sizes[$1] ? sizes[$0] > sizes[$1] : $0 < $1 }
        let run = BatchState(startOrder: startOrder, failFast: failFast)
        let command = self
        let threads = (0..<threadCount).map { _ in
            WorkerThread {
                while let index = run.nextModel() {
                    run.finish(index, command.batchModel(plan.items[index], rules: rules))
                }
            }
        }
        // The main thread prints: blocks in input order as they complete, and the progress line.
        var printed = 0
        while true {
            let (ready, snapshot, finished) = run.waitForProgress(printedUpTo: printed, seconds: 0.25)
            if !ready.isEmpty { progress.erase() }
            for outcome in ready {
                for line in outcome.lines { printError(line) }
            }
            printed += ready.count
            if finished { break }
            progress.show(snapshot, elapsed: secondsSince(start))
        }
        for thread in threads { thread.join() }
        progress.erase()
        // With --fail-fast, those never started.
        var outcomes = run.outcomes
        for index in outcomes.indices where outcomes[index] == nil {
            let item = plan.items[index]
            let line = quiet ? [] : ["onnx-fuse: \(item.input): skipped (a model failed; --fail-fast)"]
            outcomes[index] = BatchOutcome(status: .skipped, lines: line)
            for line in line { printError(line) }
        }
        let finished = outcomes.map { $0! }
        let totals = BatchTotals(finished, seconds: secondsSince(start))
        if !quiet || totals.failed + totals.skipped > 0 { printError(totals.line) }
        if let report {
            try writeJSONFile(report, BatchReport(items: plan.items, outcomes: finished, totals: totals))
        }
        let worst = finished.map(\.exitCode).max() ?? 0
        if worst != 0 { throw BatchFailed(exitCode: worst) }
    }

    /// One model of a batch: its lines collected, its error caught and turned into its line,
    /// the model released when done.
    func batchModel(_ item: BatchPlan.Item, rules: RunRules) -> BatchOutcome {
        var lines: [String] = []
        var report: ReportFile?
        var style = ModelRunStyle(emit: { lines.append($0) })
        style.record = { report = $0 }
        style.showsChangeTable = false
        style.keepsModelAlive = false
        // An output's folders are made right before its save: a model that fails, or a run
        // stopped by --fail-fast, leaves no empty folder.
        if output != nil {
            style.beforeSave = { try makeFolders(directoryName(of: item.output)) }
        }
        do {
            let summary = try optimizeModel(item.input, to: item.output, rules: rules, style: style)
            return BatchOutcome(status: .written, lines: lines, summary: summary, report: report)
        } catch {
            var messages = failureLines(for: error) ?? ["onnx-fuse: error: \(error)"]
            // Each error line names its model, whatever the error was about.
            let prefix = "onnx-fuse: error: "
            messages = messages.map { line in
                let message = line.dropFirst(prefix.count)
                return message.hasPrefix(item.input + ":") ? line : prefix + item.input + ": " + message
            }
            return BatchOutcome(status: .failed, lines: lines + messages, exitCode: exitStatus(for: error),
                                errors: messages.map { String($0.dropFirst(prefix.count)) }, report: report)
        }
    }
}

/// Creates `folder` and the folders above it that are missing (OUTDIR's, too: `-o new/out/`).
private func makeFolders(_ folder: String) throws {
    guard !ModelFile.isFolder(folder) else { return }
    let parent = directoryName(of: folder)
    if parent != folder { try makeFolders(parent) }
    // Another thread may make it at the same moment: EEXIST is success.
    if mkdir(FileNameBytes.cString(folder), 0o777) != 0 && errno != EEXIST {
        throw UsageError(message: "\(folder): cannot create the output folder: \(String(cString: strerror(errno)))")
    }
}

/// What the threads of a batch share, under one lock: the next model to start, each model's
/// outcome, and whether --fail-fast stopped new starts.
final class BatchState: @unchecked Sendable {
    private let lock = ThreadLock()
    /// The models' indices in the order they start.
    private let startOrder: [Int]
    private let failFast: Bool
    /// Guarded by `lock`: how many of `startOrder` have started, how many run, the outcomes by
    /// index, and whether a failure stopped new starts.
    private var next = 0
    private var running = 0
    private var stopped = false
    private var results: [BatchOutcome?]

    /// The state of a batch whose models start in `startOrder`.
    init(startOrder: [Int], failFast: Bool) {
        self.startOrder = startOrder
        results = Array(repeating: nil, count: startOrder.count)
        self.failFast = failFast
    }

    /// The index of the next model to start, or nil when there is none (or a failure stopped
    /// new starts).
    func nextModel() -> Int? {
        lock.withLock {
            guard !stopped, next < startOrder.count else { return nil }
            defer { next += 1 }
            running += 1
            return startOrder[next]
        }
    }

    /// Records the outcome of model `index`.
    func finish(_ index: Int, _ outcome: BatchOutcome) {
        lock.withLock {
            results[index] = outcome
            running -= 1
            if failFast && outcome.status == .failed { stopped = true }
            lock.broadcast()
        }
    }

    /// Waits until a model completes or `seconds` pass; returns the outcomes that can be printed
    /// after the first `printedUpTo` (completed, with all before them), the counts for the
    /// progress line, and whether the batch is over (nothing running, nothing left to start).
    func waitForProgress(printedUpTo printed: Int, seconds: Double) -> ([BatchOutcome], ProgressLine.Counts, Bool) {
        lock.withLock {
            if printed < results.count && results[printed] == nil && !isOver { lock.wait(seconds: seconds) }
            var ready: [BatchOutcome] = []
            var index = printed
            while index < results.count, let outcome = results[index] {
                ready.append(outcome)
                index += 1
            }
            let done = results.lazy.compactMap { $0 }
            let counts = ProgressLine.Counts(done: done.count, running: running, failed: done.filter { $0.status == .failed }.count)
            return (ready, counts, isOver && (index == results.count || results[index] == nil))
        }
    }

    /// Nothing running and nothing more to start (inside the lock).
    private var isOver: Bool { running == 0 && (stopped || next == results.count) }

    /// Every outcome; nil for a model never started.
    var outcomes: [BatchOutcome?] { lock.withLock { results } }
}

/// The line on a terminal's standard error that says how far a batch is, rewritten in place
/// (`\r`, then clear to the end of the line): shown only once the run has lasted a second, and
/// erased before any other line is printed and at the end, so that it never mixes with them.
final class ProgressLine {
    /// The counts it shows.
    struct Counts {
        var done: Int
        var running: Int
        var failed: Int
    }

    private let enabled: Bool
    private let total: Int
    private var visible = false

    /// A progress line for `total` models, drawn only when `enabled`.
    init(enabled: Bool, total: Int) {
        self.enabled = enabled
        self.total = total
    }

    /// Draws `onnx-fuse: [12/50] 2 running, 1 failed, 8.2 s` over the previous one.
    func show(_ counts: Counts, elapsed: Double) {
        guard enabled, elapsed > 1 else { return }
        let failed = counts.failed > 0 ? ", \(counts.failed) failed" : ""
        let seconds = String(Double(Int(elapsed * 10)) / 10)
        draw("\r\u{1B}[Konnx-fuse: [\(counts.done)/\(total)] \(counts.running) running\(failed), \(seconds) s")
        visible = true
    }

    /// Removes the line, if shown.
    func erase() {
        guard visible else { return }
        draw("\r\u{1B}[K")
        visible = false
    }

    /// Writes `text` to standard error as it is (`printError` would escape the control characters).
    private func draw(_ text: String) {
        var text = text
        text.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}

/// The sums of a batch, and its last line.
struct BatchTotals: Encodable {
    var models = 0
    var written = 0
    var failed = 0
    var skipped = 0
    var nodesBefore = 0
    var nodesAfter = 0
    var bytesBefore = 0
    var bytesAfter = 0
    var seconds: Double
    var exitCode: Int32 = 0

    /// The sums of `outcomes`, a run of `seconds`.
    init(_ outcomes: [BatchOutcome], seconds: Double) {
        self.seconds = seconds
        models = outcomes.count
        for outcome in outcomes {
            switch outcome.status {
            case .written: written += 1
            case .failed: failed += 1
            case .skipped: skipped += 1
            }
            exitCode = max(exitCode, outcome.exitCode)
            guard let summary = outcome.summary else { continue }
            nodesBefore += summary.nodesBefore
            nodesAfter += summary.nodesAfter
            bytesBefore += summary.bytesBefore
            bytesAfter += summary.bytesAfter
        }
    }

    /// `onnx-fuse: 50 models: 48 written, 2 failed; 6000 -> 4000 nodes, 500 MB -> 480 MB, 12.3 s`
    /// (the nodes and bytes of the models written, data files included).
    var line: String {
        let skippedText = skipped > 0 ? ", \(skipped) skipped" : ""
        let elapsed = Duration.seconds(seconds)
        return "onnx-fuse: \(models) model\(models == 1 ? "" : "s"): \(written) written, \(failed) failed\(skippedText); "
            + "\(nodesBefore) -> \(nodesAfter) nodes, \(formatBytes(bytesBefore)) -> \(formatBytes(bytesAfter)), \(formatDuration(elapsed))"
    }
}

/// The `--report` JSON of a batch: one entry per model in input order, then the totals.
struct BatchReport: Encodable {
    /// A model's entry: the fields of a run of one model's report (those it got to), and how it
    /// ended.
    struct Entry: Encodable {
        let input: String
        let output: String?
        let report: ReportFile?
        let status: String
        let exitCode: Int32
        /// The messages of its error lines: `error` is the first (null when it succeeded).
        let errors: [String]

        enum CodingKeys: String, CodingKey {
            case input, output, status, exitCode, error, errors
        }

        /// The model's own fields, then these beside them in the same object.
        func encode(to encoder: Encoder) throws {
            try report?.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(input, forKey: .input)
            try container.encode(output, forKey: .output)
            try container.encode(status, forKey: .status)
            try container.encode(exitCode, forKey: .exitCode)
            try container.encode(errors.first, forKey: .error)
            try container.encode(errors, forKey: .errors)
        }
    }

    let models: [Entry]
    let total: BatchTotals

    /// The report of `items`, which ended as `outcomes`.
    init(items: [BatchPlan.Item], outcomes: [BatchOutcome], totals: BatchTotals) {
        models = zip(items, outcomes).map { item, outcome in
            Entry(input: item.input, output: outcome.status == .written ? item.output : nil, report: outcome.report,
                  status: outcome.status.rawValue, exitCode: outcome.exitCode, errors: outcome.errors)
        }
        total = totals
    }
}
