#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import CONNX
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// Writes one line to standard error, made safe for a terminal and a log (`safeLine`).
func printError(_ line: String) {
    var text = safeLine(line) + "\n"
    text.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

/// `line` as one printable line: control characters (newlines, escape sequences, C1 codes)
/// become `\n`, `\u{1B}` and the like, so names from a model or a rule file cannot inject
/// lines or terminal commands; a word longer than `maximumWord` characters (a huge
/// identifier or path) keeps its start and end around `…(N characters)…`, and so does the line
/// past `maximumLine`.
func safeLine(_ line: String, maximumWord: Int = 200, maximumLine: Int = 4000) -> String {
    var escaped = ""
    for scalar in line.unicodeScalars {
        switch scalar.value {
        case 0x0A: escaped += "\\n"
        case 0x0D: escaped += "\\r"
        case 0x09: escaped += "\\t"
        case 0..<0x20, 0x7F, 0x80..<0xA0, 0x2028, 0x2029:
            escaped += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
        case 0x10FF80...0x10FFFF:
            // A byte of a file name that is not UTF-8 (`FileNameBytes`).
            escaped += "\\x" + String(scalar.value - 0x10FF00, radix: 16, uppercase: true)
        default: escaped.unicodeScalars.append(scalar)
        }
    }
    func shortened(_ text: Substring, _ limit: Int) -> String {
        guard text.count > limit else { return String(text) }
        let keep = limit / 2
        return text.prefix(keep) + "…(\(text.count - 2 * keep) characters)…" + text.suffix(keep)
    }
    let words = escaped.split(separator: " ", omittingEmptySubsequences: false).map { shortened($0, maximumWord) }
    return shortened(Substring(words.joined(separator: " ")), maximumLine)
}

/// `1.2 MB`, `512 B`.
func formatBytes(_ count: Int) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"]
    var value = Double(count)
    var unit = 0
    while value >= 1000 && unit < units.count - 1 {
        value /= 1000
        unit += 1
    }
    return unit == 0 ? "\(count) B" : String(Double(Int(value * 10)) / 10) + " " + units[unit]
}

/// `12.3 ms`, `1.52 s`.
func formatDuration(_ duration: Duration) -> String {
    let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    if seconds < 1 { return String(Double(Int(seconds * 10_000)) / 10) + " ms" }
    return String(Double(Int(seconds * 100)) / 100) + " s"
}

/// The exit code of an error, as documented in `--help` and the README.
func exitStatus(for error: Error) -> Int32 {
    switch error {
    case is UsageError, is RuleLoadErrors: return 1
    case let error as BatchFailed: return error.exitCode
    case is VerificationFailed: return 5
    case let error as ModelFileError:
        switch error {
        case .unwritable: return 1
        case .invalidModel, .unsupported: return 2
        case .io, .inputChanged: return 3
        case .limitExceeded: return 4
        }
    default: return 1
    }
}

/// The lines that report `error` on standard error (`onnx-fuse: error: ...`), or nil for an
/// error of the argument parser, which has its own words (and help and version, which are not
/// failures). One place for every command, and for each model of a batch.
func failureLines(for error: Error) -> [String]? {
    switch error {
    case let error as RuleLoadErrors: return error.lines.map { "onnx-fuse: error: \($0)" }
    case let error as VerificationFailed: return ["onnx-fuse: error: \(error.message)"]
    case let error as UsageError: return ["onnx-fuse: error: \(error.message)"]
    case let error as ModelFileError: return ["onnx-fuse: error: \(error)"]
    case is BatchFailed: return []
    default: return nil
    }
}

// The C allocator keeps freed memory for reuse: folding computes weights in buffers of up to
// tens of megabytes, one after another, and by default each is a fresh `mmap` whose pages the
// kernel faults in and zeroes, then an `munmap` (on ResNet-50, about 0.2 s of system time in a
// 0.4 s run before weights were streamed). Blocks up to 32 MB (glibc's largest threshold) come
// from the heap instead, and up to 256 MB freed stays in the process. Process-wide, so the
// command sets it, not the library.
onnx_fuse_keep_freed_memory(32 << 20, 256 << 20)
// An interrupted save removes its temporary files before the process dies of the signal: the
// library leaves a host program's signal handlers alone unless asked, and the command asks.
ModelFile.removeTemporaryFilesOnSignals()
// The one place where errors become messages and exit codes.
// The arguments as bytes: a file name that is not valid UTF-8 reaches the file system unchanged
// (`FileNameBytes`), where `CommandLine.arguments` would have replaced its bytes with U+FFFD.
let arguments = (1..<Int(CommandLine.argc)).map { index in
    CommandLine.unsafeArgv[index].map { FileNameBytes.string(UnsafeRawBufferPointer(start: $0, count: strlen($0))) } ?? ""
}
// `rules` is the subcommand only before one of its actions (or alone, or before --help): a model
// file named `rules` stays a model (`onnx-fuse rules -o out.onnx`).
let isRulesCommand = arguments.first == "rules"
    && (arguments.count == 1 || ["list", "show", "check", "help", "-h", "--help"].contains(arguments[1]))
// `evaluate` likewise, before a model (or --help).
let isEvaluateCommand = arguments.first == "evaluate" && arguments.count > 1
    && (!arguments[1].hasPrefix("-") || ["-h", "--help"].contains(arguments[1]))
do {
    if isEvaluateCommand {
        var command = try EvaluateCommand.parseAsRoot(Array(arguments.dropFirst()))
        try command.run()
    } else if isRulesCommand {
        var command = try RulesCommand.parseAsRoot(Array(arguments.dropFirst()))
        try command.run()
    } else {
        var command = try OnnxFuseCommand.parseAsRoot(VerifyMode.expandingBareFlag(arguments))
        try command.run()
    }
} catch {
    if let lines = failureLines(for: error) {
        for line in lines { printError(line) }
        exit(exitStatus(for: error))
    }
    // ArgumentParser: help and version are successes; everything else is a usage error.
    let command: any ParsableCommand.Type = isEvaluateCommand ? EvaluateCommand.self : isRulesCommand ? RulesCommand.self : OnnxFuseCommand.self
    if command.exitCode(for: error) == .success {
        Swift.print(command.fullMessage(for: error))
        exit(0)
    }
    let full = command.message(for: error)
    let message = full.split(separator: "\n").first.map(String.init) ?? "invalid arguments"
    printError("onnx-fuse: error: \(message) (see 'onnx-fuse --help')")
    exit(1)
}
