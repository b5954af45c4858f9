// Fuzz target `rules`: bytes as a rule file's UTF-8 text -> parse and compile (as `onnx-fuse
// rules check`) -> when rules compile, apply them to small bundled models so that the matcher
// and the evaluator run -> verify -> save -> load again. Rule errors (thrown, or reported by
// `optimize`) are expected; crashes, traps, sanitizer reports, hangs and `finding`s are bugs.
//
// The models come from the repository's fixtures/ folder (`fixturesFolder`). Bit 0 of the input's hash turns
// on --explain (the failure labels of rules that do not fire).
import FuzzSupport

let modelNames = ["conv_bn.onnx", "rule_traps.onnx", "shape_ops_mix.onnx"]

let modelPaths: [String] = {
    let paths = modelNames.map { fixturesFolder + "/" + $0 }
    for path in paths {
        do {
            _ = try ModelFile.load(path: path)
        } catch {
            fatalError("onnx-fuse-fuzz: cannot load the fixture \(path) (set ONNX_FUSE_FUZZ_FIXTURES to the fixtures folder): \(error)")
        }
    }
    return paths
}()

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    _ = modelPaths
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRules(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    reached(.input)
    guard let text = String(validating: bytes, as: UTF8.self) else { return 0 }
    let rules: [CompiledRule]
    do {
        rules = try RuleFiles.rules(in: text, file: "fuzz.rules")
    } catch {
        return 0
    }
    guard !rules.isEmpty else { return 0 }
    reached(.loaded)
    var options = OptimizationOptions()
    options.explain = inputHash(bytes) & 1 != 0
    for path in modelPaths {
        let model: Model
        do {
            model = try ModelFile.load(path: path)
        } catch {
            finding("the fixture \(path) no longer loads: \(error)")
        }
        let report: OptimizationReport
        do {
            report = try optimize(model, rules: rules, options: options)
        } catch {
            // A file's rules have distinct names (two of one name do not compile).
            finding("optimize refused rules that compiled: \(error)")
        }
        if options.explain {
            for explanation in report.explanations { _ = "\(explanation)" }
        }
        guard report.ruleErrors.isEmpty, report.changedOutputs.isEmpty, report.invalidNodes.isEmpty else { continue }
        reached(.rewritten)
        guard !report.fired.isEmpty else { continue }
        reached(.fired)
        checkSaveAndReload(model, what: "rules on \(path.split(separator: "/").last!)")
    }
    return 0
}
