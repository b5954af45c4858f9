import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// What `--verify[=MODES]` asks for: `rewrites` (the default: every rewrite is checked),
/// `model` (the whole models are compared too), `strict` (what cannot be checked is an error).
struct VerifyMode: Equatable {
    var model = false
    var strict = false

    /// The modes of `text`, a comma-separated list; nil when one is unknown.
    init?(_ text: String) {
        for word in text.split(separator: ",", omittingEmptySubsequences: false) {
            switch word {
            case "rewrites": break
            case "model": model = true
            case "strict": strict = true
            default: return nil
            }
        }
    }

    /// `--verify` alone becomes `--verify=rewrites`, `--explain` alone `--explain=summary` (an
    /// option needs a value to parse).
    static func expandingBareFlag(_ arguments: [String]) -> [String] {
        var expanded: [String] = []
        var afterTerminator = false
        for argument in arguments {
            if argument == "--" { afterTerminator = true }
            switch argument {
            case "--verify" where !afterTerminator: expanded.append("--verify=rewrites")
            case "--explain" where !afterTerminator: expanded.append("--explain=summary")
            default: expanded.append(argument)
            }
        }
        return expanded
    }
}

/// A rewrite or the whole model changed the numbers, or (with `strict`) something could not be
/// checked: exit code 5, nothing written.
struct VerificationFailed: Error {
    let message: String
}

/// The lines `--verify` prints: per rule, the rewrites checked, the worst error and those that
/// could not be checked; then the whole-model comparison.
func verificationLines(_ report: VerificationReport, comparison: ModelComparison?) -> [String] {
    var lines: [String] = []
    let failed = report.failures.count
    lines.append("onnx-fuse: verify: \(report.checked) rewrite\(report.checked == 1 ? "" : "s") checked, "
        + "\(failed) beyond tolerance, \(report.notVerified) not verified")
    if !report.rules.isEmpty {
        let width = max(report.rules.map(\.rule.count).max() ?? 0, "rule".count)
        func pad(_ text: String) -> String { text.padded(to: width) }
        func right(_ text: String, _ columns: Int) -> String { String(repeating: " ", count: max(0, columns - text.count)) + text }
        lines.append("  \(pad("rule"))  checked  worst error  not verified")
        for rule in report.rules {
            var line = "  \(pad(rule.rule)) \(right(String(rule.checked), 8)) \(right(formatError(rule.worstError), 12)) \(right(String(rule.notVerified), 13))"
            if let reason = rule.firstNotVerifiedReason { line += "  (first \(reason))" }
            lines.append(line)
        }
    }
    if let comparison { lines.append("onnx-fuse: verify: whole model: " + describe(comparison)) }
    return lines
}

/// `agrees (worst error 1.2e-07 on 'logits')`, `not run: no kernel for Loop`.
func describe(_ comparison: ModelComparison) -> String {
    let sizes = comparison.symbolSizes.isEmpty ? ""
        : "; " + comparison.symbolSizes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
    switch comparison.outcome {
    case .agree:
        let worst = comparison.errors.max { $0.error < $1.error }
        let on = worst.map { $0.error > 0 ? " on '\($0.output)'" : "" } ?? ""
        return "agrees (worst error \(formatError(worst?.error ?? 0))\(on)\(sizes))"
    case .differ(let output, let error, let reason):
        return "graph output '\(output)' differs" + (reason.map { ": \($0)" } ?? " by \(formatError(error)) relative to its magnitude") + sizes
    case .notRun(let reason):
        return "not run: \(reason)"
    }
}

/// The verification part of the `--report` JSON.
struct VerificationEntry: Encodable {
    /// A number written as null when it is not finite (infinity is not JSON), never left out.
    struct Number: Encodable {
        let value: Double
        func encode(to encoder: Encoder) throws {
            var container = encoder.singleValueContainer()
            if value.isFinite { try container.encode(value) } else { try container.encodeNil() }
        }
    }
    struct Rule: Encodable {
        let rule: String
        let checked: Int
        let agreed: Int
        let notVerified: Int
        let worstError: Number
        let firstNotVerifiedReason: String?
    }
    struct Failure: Encodable {
        let rule: String
        let node: String
        let value: String
        let error: Number
        let tolerance: Double
        let reason: String?
    }
    struct WholeModel: Encodable {
        let outcome: String
        let output: String?
        /// With `differ`: the error of `output`.
        let error: Number?
        let reason: String?
        let errors: [String: Number]
        let symbolSizes: [String: Int]
    }
    let seed: UInt64
    let rules: [Rule]
    let failures: [Failure]
    let wholeModel: WholeModel?

    init(_ report: VerificationReport, comparison: ModelComparison?, seed: UInt64) {
        self.seed = seed
        rules = report.rules.map {
            Rule(rule: $0.rule, checked: $0.checked, agreed: $0.agreed, notVerified: $0.notVerified,
                 worstError: Number(value: $0.worstError), firstNotVerifiedReason: $0.firstNotVerifiedReason)
        }
        failures = report.failures.map {
            Failure(rule: $0.rule, node: $0.node, value: $0.value, error: Number(value: $0.error), tolerance: $0.tolerance, reason: $0.reason)
        }
        wholeModel = comparison.map { comparison in
            let errors = Dictionary(comparison.errors.map { ($0.output, Number(value: $0.error)) }, uniquingKeysWith: { a, _ in a })
            switch comparison.outcome {
            case .agree:
                return WholeModel(outcome: "agree", output: nil, error: nil, reason: nil, errors: errors, symbolSizes: comparison.symbolSizes)
            case .differ(let output, let error, let reason):
                return WholeModel(outcome: "differ", output: output, error: Number(value: error), reason: reason, errors: errors,
                                  symbolSizes: comparison.symbolSizes)
            case .notRun(let reason):
                return WholeModel(outcome: "not_run", output: nil, error: nil, reason: reason, errors: errors, symbolSizes: comparison.symbolSizes)
            }
        }
    }
}

/// The first reason `--verify` refuses the result (`strict`: also what could not be checked);
/// nil when it may be written.
func verificationRefusal(_ report: VerificationReport, comparison: ModelComparison?, strict: Bool) -> String? {
    if let first = report.failures.first {
        let more = report.failures.count > 1 ? " (and \(report.failures.count - 1) more)" : ""
        return "\(first)\(more)"
    }
    if let comparison, case .differ = comparison.outcome { return "the whole model: \(describe(comparison))" }
    guard strict else { return nil }
    if let rule = report.rules.first(where: { $0.notVerified > 0 }) {
        return "rule '\(rule.rule)': \(rule.notVerified) rewrite\(rule.notVerified == 1 ? "" : "s") not verified, "
            + "first \(rule.firstNotVerifiedReason ?? "")"
    }
    if let comparison, case .notRun = comparison.outcome { return "the whole model was not compared: \(describe(comparison))" }
    return nil
}
