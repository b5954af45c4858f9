import Benchmark
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

// Micro-benchmarks per component, so that a regression shows where it is (issue 12):
//
//   loader     ModelFile.load of a many-node chain and of a model with large weights
//   matcher    the rule engine's search with nothing to rewrite, and the built-in rule set
//   compiler   parsing and compiling the built-in rule files
//   evaluator  the rule language's compute arithmetic (the BatchNormalization fold) on tensors
//   saver      ModelFile.save of a loaded model, unchanged and after folding
//
// Only the library's public API is used. Each benchmark runs in a process of its own (the
// plugin's way), builds its models in its setup and writes them to a scratch folder; work done
// to prepare an iteration (loading a fresh copy of a model that the run rewrites) is outside
// the measurement (`startMeasurement`), and so is freeing what an iteration made.
//
// Run: scripts/microbench [plugin options], e.g. `scripts/microbench --filter 'matcher.*'` (the
// filter is a regular expression that must match the whole name).

/// The chain most benchmarks run on: 2,000 Conv → BatchNormalization → Relu blocks of 8 channels
/// (6,000 nodes). The loader also reads the 20,000-block chain (60,000 nodes).
let chainBlocks = 2_000
let largeChainBlocks = 20_000
let chainChannels = 8
/// Convolutions with large weights: 512 → 512 channels, 3×3 (2,359,296 floats, 9.4 MB each).
let wideChannels = 512
let wideBlocks = 4

/// The built-in rule file `name`, compiled.
func builtinRuleFile(_ name: String) throws -> [CompiledRule] {
    guard let file = RuleFiles.builtinFiles.first(where: { $0.name == name }) else {
        throw BenchmarkSetupError("no built-in rule file \(name)")
    }
    return try RuleFiles.rules(in: file.text, file: "builtin:" + name)
}

/// A rule whose pattern matches every Conv → BatchNormalization → Relu block of the chain but
/// whose guard never holds: the engine searches at every Relu, binds the whole pattern and
/// evaluates the guard, and never rewrites.
let neverFiringRule = """
    rule never-fires {
      match {
        y = Conv(x, w)
        z = BatchNormalization(y, scale, shift, mean, var)
        r = Relu(z)
      }
      where { rank(w) == 7 }
      replace { r = Relu(y) }
    }
    """

/// A model in memory and the rules to run over it.
struct LoadedRun<Rules> {
    let model: Model
    let rules: Rules
}

/// A model file, loaded afresh for each iteration, and the rules to run over it.
struct FileRun {
    let path: String
    let rules: [CompiledRule]
}

/// A loaded model and where to save it.
struct SaveRun {
    let model: Model
    let output: String
}

struct BenchmarkSetupError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The inputs of the BatchNormalization fold for one Conv of `channels` → `channels`, 3×3, as
/// a rule's `compute` block sees them (float tensors read as float64).
struct FoldInputs {
    let w: EvalValue
    let b: EvalValue
    let scale: EvalValue
    let shift: EvalValue
    let mean: EvalValue
    let variance: EvalValue
    let epsilon: EvalValue
    let weight: Tensor

    init(channels c: Int) throws {
        var random = SplitMix64(seed: 1)
        func tensor(_ dims: [Int64], _ range: ClosedRange<Float>) -> Tensor {
            let count = dims.reduce(1) { $0 * Int($1) }
            return Tensor(dataType: .float, dims: dims, values: (0..<count).map { _ in random.nextFloat(in: range) })
        }
        func value(_ tensor: Tensor) throws -> EvalValue { .tensor(try NDArray(tensor: tensor), .float) }
        weight = tensor([Int64(c), Int64(c), 3, 3], -0.05...0.05)
        w = try value(weight)
        b = try value(tensor([Int64(c)], -0.1...0.1))
        scale = try value(tensor([Int64(c)], 0.5...1.5))
        shift = try value(tensor([Int64(c)], -0.2...0.2))
        mean = try value(tensor([Int64(c)], -0.5...0.5))
        variance = try value(tensor([Int64(c)], 0.5...2))
        epsilon = .real(Double(Float(1e-5)))  // a float attribute
    }

    /// fold-conv-batchnorm's compute block, step by step as the rule program evaluates it:
    ///
    ///     k  = scale / sqrt(var + eps)
    ///     w2 = w * reshape(k, [dim(w, 0)] ++ ones(rank(w) - 1))
    ///     b2 = (b - mean) * k + shift
    func fold() throws -> (w2: EvalValue, b2: EvalValue) {
        let functions = FunctionTable.builtins
        let k = try apply("/", scale, try functions.call("sqrt", [try apply("+", variance, epsilon)]))
        let rankMinusOne = try apply("-", try functions.call("rank", [w]), .integer(1))
        let shape = try apply("++", .list([try functions.call("dim", [w, .integer(0)])]), try functions.call("ones", [rankMinusOne]))
        let w2 = try apply("*", w, try functions.call("reshape", [k, shape]))
        let b2 = try apply("+", try apply("*", try apply("-", b, mean), k), shift)
        return (w2, b2)
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .mallocBytesCount, .peakMemoryResidentDelta],
        warmupIterations: 1,
        maxDuration: .seconds(2),
        maxIterations: 200
    )
    let scratch = Scratch()

    // MARK: loader

    for blocks in [chainBlocks, largeChainBlocks] {
        Benchmark("loader: chain \(blocks) blocks, \(3 * blocks) nodes") { (benchmark: Benchmark, path: String) in
            let model = try ModelFile.load(path: path)
            benchmark.stopMeasurement()
            blackHole(model)
        } setup: {
            try scratch.create()
            return try Models.write(Models.chain(blocks: blocks, channels: chainChannels), to: scratch.path, name: "chain.onnx")
        } teardown: {
            scratch.remove()
        }
    }

    Benchmark("loader: \(wideBlocks) Conv \(wideChannels)x\(wideChannels)x3x3, 38 MB of weights") { (benchmark: Benchmark, path: String) in
        let model = try ModelFile.load(path: path)
        benchmark.stopMeasurement()
        blackHole(model)
    } setup: {
        try scratch.create()
        return try Models.write(Models.wideConvs(blocks: wideBlocks, channels: wideChannels), to: scratch.path, name: "wide.onnx")
    } teardown: {
        scratch.remove()
    }

    // MARK: matcher

    // The engine alone (applyRules, no shape inference): a rule that matches all the way and
    // never fires, and the cleanup rules, whose roots the chain does not have.
    Benchmark("matcher: never-firing 3-node rule, chain \(chainBlocks) blocks") { (benchmark: Benchmark, state: LoadedRun<[RewriteRule]>) in
        let report = applyRules(state.rules, to: state.model)
        benchmark.stopMeasurement()
        if report.rewrites != 0 { benchmark.error("the rule fired \(report.rewrites) times") }
    } setup: {
        let rules = try RuleFiles.rules(in: neverFiringRule, file: "never-fires.rules").flatMap(\.rewrites)
        return try LoadedRun(model: Models.chain(blocks: chainBlocks, channels: chainChannels), rules: rules)
    }

    Benchmark("matcher: cleanup rules, chain \(chainBlocks) blocks (none fires)") { (benchmark: Benchmark, state: LoadedRun<[RewriteRule]>) in
        let report = applyRules(state.rules, to: state.model)
        benchmark.stopMeasurement()
        if report.rewrites != 0 { benchmark.error("the cleanup rules fired \(report.rewrites) times") }
    } setup: {
        let rules = try builtinRuleFile("cleanup.rules").flatMap(\.rewrites)
        return try LoadedRun(model: Models.chain(blocks: chainBlocks, channels: chainChannels), rules: rules)
    }

    // The whole run of the built-in rules (`optimize`: inference, matching, folding): on a
    // chain already folded (nothing left to fire), and on the chain itself (2,000 folds; each
    // iteration loads a fresh copy, outside the measurement).
    Benchmark("matcher: built-in rules, folded chain \(chainBlocks) blocks (none fires)") { (benchmark: Benchmark, state: LoadedRun<[CompiledRule]>) in
        let report = try! optimize(state.model, rules: state.rules)
        benchmark.stopMeasurement()
        if !report.fired.isEmpty { benchmark.error("rules fired on the folded chain: \(report.fired)") }
    } setup: {
        let rules = RuleFiles.builtin
        let model = try Models.chain(blocks: chainBlocks, channels: chainChannels)
        _ = try! optimize(model, rules: rules)
        return LoadedRun(model: model, rules: rules)
    }

    Benchmark("matcher: built-in rules, chain \(chainBlocks) blocks (\(chainBlocks) folds)") { (benchmark: Benchmark, state: FileRun) in
        let model = try ModelFile.load(path: state.path)
        benchmark.startMeasurement()
        let report = try! optimize(model, rules: state.rules)
        benchmark.stopMeasurement()
        if report.after.nodeCount != 2 * chainBlocks { benchmark.error("\(report.after.nodeCount) nodes left, not \(2 * chainBlocks)") }
    } setup: {
        try scratch.create()
        let path = try Models.write(Models.chain(blocks: chainBlocks, channels: chainChannels), to: scratch.path, name: "chain.onnx")
        return FileRun(path: path, rules: RuleFiles.builtin)
    } teardown: {
        scratch.remove()
    }

    Benchmark("compiler: parse and compile the built-in rule files") { _ in
        blackHole(RuleFiles.builtin)
    }

    // MARK: evaluator

    Benchmark("evaluator: BatchNormalization fold arithmetic, w \(wideChannels)x\(wideChannels)x3x3") { (benchmark: Benchmark, inputs: FoldInputs) in
        let (w2, b2) = try inputs.fold()
        benchmark.stopMeasurement()
        blackHole((w2, b2))
    } setup: {
        try FoldInputs(channels: wideChannels)
    }

    Benchmark("evaluator: float tensor to NDArray and back, \(wideChannels)x\(wideChannels)x3x3") { (benchmark: Benchmark, inputs: FoldInputs) in
        let array = try NDArray(tensor: inputs.weight)
        let tensor = try array.tensor(as: .float)
        benchmark.stopMeasurement()
        blackHole(tensor)
    } setup: {
        try FoldInputs(channels: wideChannels)
    }

    // The same arithmetic through a rule: the built-in fold-conv-batchnorm alone (reading the
    // weights from the mapped file, computing, rounding, rewriting) on one such Conv.
    Benchmark("evaluator: fold-conv-batchnorm rule, one Conv \(wideChannels)x\(wideChannels)x3x3") { (benchmark: Benchmark, state: FileRun) in
        let model = try ModelFile.load(path: state.path)
        benchmark.startMeasurement()
        let report = try! optimize(model, rules: state.rules)
        benchmark.stopMeasurement()
        if report.after.nodeCount != 2 { benchmark.error("\(report.after.nodeCount) nodes left, not 2") }
    } setup: {
        try scratch.create()
        let path = try Models.write(Models.wideConvs(blocks: 1, channels: wideChannels), to: scratch.path, name: "wide1.onnx")
        return FileRun(path: path, rules: try builtinRuleFile("batchnorm.rules").filter { $0.name == "fold-conv-batchnorm" })
    } teardown: {
        scratch.remove()
    }

    // MARK: saver

    // Saving writes to a temporary file, syncs it and renames it over the previous output: the
    // wall clock includes the disk (fsync), the malloc figures are the saver's own work.
    Benchmark("saver: chain \(chainBlocks) blocks, unchanged") { (_: Benchmark, state: SaveRun) in
        try ModelFile.save(state.model, to: state.output)
    } setup: {
        try scratch.create()
        let path = try Models.write(Models.chain(blocks: chainBlocks, channels: chainChannels), to: scratch.path, name: "chain.onnx")
        return SaveRun(model: try ModelFile.load(path: path), output: scratch.path + "/out.onnx")
    } teardown: {
        scratch.remove()
    }

    Benchmark("saver: chain \(chainBlocks) blocks, after folding") { (_: Benchmark, state: SaveRun) in
        try ModelFile.save(state.model, to: state.output)
    } setup: {
        try scratch.create()
        let path = try Models.write(Models.chain(blocks: chainBlocks, channels: chainChannels), to: scratch.path, name: "chain.onnx")
        let model = try ModelFile.load(path: path)
        _ = try! optimize(model, rules: RuleFiles.builtin)
        return SaveRun(model: model, output: scratch.path + "/out.onnx")
    } teardown: {
        scratch.remove()
    }

    Benchmark("saver: \(wideBlocks) Conv \(wideChannels)x\(wideChannels)x3x3, unchanged, 38 MB of weights") { (_: Benchmark, state: SaveRun) in
        try ModelFile.save(state.model, to: state.output)
    } setup: {
        try scratch.create()
        let path = try Models.write(Models.wideConvs(blocks: wideBlocks, channels: wideChannels), to: scratch.path, name: "wide.onnx")
        return SaveRun(model: try ModelFile.load(path: path), output: scratch.path + "/out.onnx")
    } teardown: {
        scratch.remove()
    }
}

