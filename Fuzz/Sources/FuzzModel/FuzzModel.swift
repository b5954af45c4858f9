// Fuzz target `model`: bytes -> a model file -> load -> verify -> the built-in rules (as
// `onnx-fuse MODEL` runs them, all of them: none may fire that `RuleFiles.builtin(for:)`
// leaves out) -> verify -> save -> load again. Errors thrown for a bad input
// are expected; crashes, traps, sanitizer reports, hangs and the `finding`s below are bugs.
//
// The input's hash also chooses two options, so that both paths are covered: bit 0
// --infer-shapes (writeInferredValueInfo before saving), bit 1 --freeze-initializer-inputs.
// The input is written as `in.onnx` in a scratch folder that also holds the fixtures' external
// data files, so external data is read (and written on save) too.
import FuzzSupport

/// Data files that inputs may name as external data (as the fixture `external_data.onnx` does),
/// copied once into the scratch folder beside the input.
let dataFiles = ["external_data.onnx.data"]

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    for name in dataFiles { copyFile(fixturesFolder + "/" + name, to: scratchFolder + "/" + name) }
    _ = builtinRules
    return 0
}

/// The built-in rules, compiled once.
nonisolated(unsafe) let builtinRules = RuleFiles.builtin

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzModel(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    reached(.input)
    let input = scratchFolder + "/in.onnx"
    clearScratch(["in.onnx", "out.onnx", "out.onnx.data"])
    writeFile(input, bytes)
    let model: Model
    do {
        model = try ModelFile.load(path: input)
    } catch {
        return 0
    }
    do {
        try model.verify()
    } catch {
        finding("the loader accepted a model that breaks an IR invariant: \(error)")
    }
    reached(.loaded)
    let hash = inputHash(bytes)
    var options = OptimizationOptions()
    options.freezeInitializerInputs = hash & 2 != 0
    // The command compiles only the built-in rules the model can use: none other may fire.
    let selected = Set(RuleFiles.builtinNames(for: model))
    let report: OptimizationReport
    do {
        report = try optimize(model, rules: builtinRules, options: options)
    } catch {
        finding("the built-in rules were refused: \(error)")
    }
    for fired in report.fired where !selected.contains(fired.rule) {
        finding("built-in rules: '\(fired.rule)' fired although RuleFiles.builtin(for:) leaves it out")
    }
    // As the command: rule errors, changed outputs and nodes a schema rejects mean that nothing is written.
    guard report.ruleErrors.isEmpty, report.changedOutputs.isEmpty, report.invalidNodes.isEmpty else { return 0 }
    reached(.rewritten)
    if !report.fired.isEmpty { reached(.fired) }
    if hash & 1 != 0 {
        do {
            try model.verify()
        } catch {
            finding("built-in rules: the rewritten model breaks an IR invariant: \(error)")
        }
        writeInferredValueInfo(model, freezeInitializerInputs: options.freezeInitializerInputs)
    }
    checkSaveAndReload(model, what: "built-in rules")
    return 0
}
