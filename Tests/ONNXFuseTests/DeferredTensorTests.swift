import XCTest
import Foundation
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// Computed tensors kept as a way to compute them (`DeferredBytes`) until the save writes them.
final class DeferredTensorTests: XCTestCase {
    /// Options under which every computed float tensor is deferred, however small.
    private var deferAll: OptimizationOptions {
        var options = OptimizationOptions()
        options.evaluationLimits.minimumDeferredBytes = 0
        return options
    }

    /// A fixture optimized by the built-in rules with computed tensors kept, and deferred.
    private func optimizedTwice(_ name: String) throws -> (kept: Model, deferred: Model) {
        let path = CommandTests.fixtures.appendingPathComponent(name).path
        let kept = try ModelFile.load(path: path)
        let deferred = try ModelFile.load(path: path)
        try optimize(kept, rules: RuleFiles.builtin)
        try optimize(deferred, rules: RuleFiles.builtin, options: deferAll)
        return (kept, deferred)
    }

    private func deferredInitializers(_ model: Model) -> [Value] {
        model.graph.initializers.filter { value in
            guard case .raw(let bytes)? = value.initializer?.storage else { return false }
            return bytes.deferred != nil
        }
    }

    /// Every fixture the built-in rules rewrite saves to the same bytes whether its computed
    /// tensors are deferred or kept: the replay gives the first computation's bytes, and the
    /// passes that read tensors (merging duplicates among them) see the same values.
    func testEveryFixtureSavesTheSameBytesWithDeferredTensors() throws {
        let directory = try fixtureWorkspace([])
        let names = try FileManager.default.contentsOfDirectory(atPath: CommandTests.fixtures.path)
            .filter { $0.hasSuffix(".onnx") }.sorted()
        var deferredSomewhere = 0
        for name in names {
            let path = CommandTests.fixtures.appendingPathComponent(name).path
            guard let kept = try? ModelFile.load(path: path), (try? kept.verify()) != nil else { continue }
            let deferred = try ModelFile.load(path: path)
            try optimize(kept, rules: RuleFiles.builtin)
            try optimize(deferred, rules: RuleFiles.builtin, options: deferAll)
            let computed = deferredInitializers(deferred)
            deferredSomewhere += computed.isEmpty ? 0 : 1
            // (Shape inference reads small constants, so some may be kept already.)
            let notKept = computed.filter { value in
                guard case .raw(let bytes)? = value.initializer?.storage else { return false }
                return !bytes.deferred!.isResident
            }
            let keptPath = directory.appendingPathComponent("kept-" + name).path
            let deferredPath = directory.appendingPathComponent("deferred-" + name).path
            try ModelFile.save(kept, to: keptPath)
            try ModelFile.save(deferred, to: deferredPath)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: keptPath)), try Data(contentsOf: URL(fileURLWithPath: deferredPath)), name)
            // Written by streaming: the save computed them without keeping them.
            for value in notKept {
                guard case .raw(let bytes)? = value.initializer?.storage else { continue }
                XCTAssertFalse(bytes.deferred!.isResident, "\(name): \(value.name) was kept by the save")
            }
        }
        XCTAssertGreaterThan(deferredSomewhere, 10, "the fixtures exercise deferred tensors")
    }

    /// A folded weight stays a computation after the rewrite, with the bytes of the weight
    /// computed at once.
    func testAFoldedWeightIsAComputationWithTheSameBytes() throws {
        let (kept, deferred) = try optimizedTwice("conv_bn.onnx")
        let weight = try XCTUnwrap(deferred.graph.nodes.first { $0.opType == "Conv" }?.inputs[1]?.initializer)
        guard case .raw(let bytes) = weight.storage, let computation = bytes.deferred else {
            return XCTFail("the folded weight is not deferred")
        }
        XCTAssertEqual(computation.samples.count, min(bytes.count, 3 * DeferredBytes.sampleLength))
        let all = bytes.array
        XCTAssertEqual(computation.samples, DeferredBytes.sampleRanges(count: bytes.count).flatMap { all[$0] })
        let keptWeight = try XCTUnwrap(kept.graph.nodes.first { $0.opType == "Conv" }?.inputs[1]?.initializer)
        guard case .raw(let keptBytes) = keptWeight.storage else { return XCTFail("the kept weight is not raw") }
        XCTAssertNil(keptBytes.deferred)
        XCTAssertEqual(bytes, keptBytes)
    }

    /// Reading deferred bytes for a moment computes them each time; asking for their address
    /// computes and keeps them once.
    func testDeferredBytesAreKeptOnlyWhenAnAddressIsAskedFor() throws {
        final class Counter: @unchecked Sendable { var calls = 0 }
        let counter = Counter()
        let values: [UInt8] = Array(0..<200)
        let computation = DeferredBytes(count: 200, samples: Array(values[0..<64] + values[68..<132] + values[136..<200])) { buffer in
            counter.calls += 1
            buffer.copyBytes(from: values)
        }
        XCTAssertEqual(DeferredBytes.sampleRanges(count: 200), [0..<64, 68..<132, 136..<200])
        let bytes = TensorBytes(deferred: computation)
        XCTAssertNil(bytes.residentAddress)
        XCTAssertEqual(try bytes.withTransientBytes { Array($0) }, values)
        XCTAssertEqual(try bytes.withTransientBytes { Array($0) }, values)
        XCTAssertEqual(counter.calls, 2)
        XCTAssertFalse(computation.isResident)
        XCTAssertEqual(bytes, TensorBytes(copying: values))
        XCTAssertNotEqual(bytes, TensorBytes(copying: values.reversed()))
        XCTAssertFalse(computation.isResident)
        XCTAssertEqual(bytes.load(elementAt: 3, as: UInt8.self), 3)
        XCTAssertTrue(computation.isResident)
        let calls = counter.calls
        XCTAssertEqual(bytes.array, values)
        XCTAssertEqual(try bytes.withTransientBytes { Array($0) }, values)
        XCTAssertEqual(counter.calls, calls, "kept bytes are not computed again")
        XCTAssertNil(bytes.residentAddress, "still not resident bytes of their own")
    }

    /// Deferred tensors that go to external data (here, because the model would be too large
    /// for one message) are computed into the data file.
    func testDeferredTensorsGoToExternalData() throws {
        let (kept, deferred) = try optimizedTwice("conv_bn.onnx")
        XCTAssertFalse(deferredInitializers(deferred).isEmpty)
        let directory = try fixtureWorkspace([])
        // Just too large for one message: the largest payload (the folded weight) goes out.
        let whole = try ModelFile.save(kept, to: directory.appendingPathComponent("whole.onnx").path)
        var options = SaveOptions()
        options.maximumModelBytes = whole.modelBytes
        let keptPath = directory.appendingPathComponent("kept.onnx").path
        let deferredPath = directory.appendingPathComponent("deferred.onnx").path
        let keptReport = try ModelFile.save(kept, to: keptPath, options: options)
        let deferredReport = try ModelFile.save(deferred, to: deferredPath, options: options)
        XCTAssertGreaterThan(deferredReport.externalTensorCount, 0)
        XCTAssertEqual(keptReport.externalTensorCount, deferredReport.externalTensorCount)
        let keptData = try Data(contentsOf: URL(fileURLWithPath: keptPath + ".data"))
        let deferredData = try Data(contentsOf: URL(fileURLWithPath: deferredPath + ".data"))
        XCTAssertEqual(keptData, deferredData)
        let reloaded = try ModelFile.load(path: deferredPath)
        XCTAssertEqual(Printer().print(reloaded), Printer().print(try ModelFile.load(path: keptPath)))
    }

    /// `conv_bn.onnx` with `computation` as its Conv's bias (a float tensor of its bytes).
    private func convBatchNorm(withBias computation: DeferredBytes) throws -> Model {
        let model = try ModelFile.load(path: CommandTests.fixtures.appendingPathComponent("conv_bn.onnx").path)
        let tensor = Tensor(dataType: .float, dims: [Int64(computation.count / 4)], storage: .raw(TensorBytes(deferred: computation)))
        let value = model.graph.addInitializer(name: "computed", tensor: tensor)
        let conv = try XCTUnwrap(model.graph.nodes.first { $0.opType == "Conv" })
        if conv.inputs.count > 2 { try conv.setInput(2, to: value) } else { try conv.appendInput(value) }
        return model
    }

    /// A computation that fails when the save reaches it fails the save with the file's name and
    /// the reason, and leaves nothing behind: a small one; a large one that fails halfway, after
    /// the saver's second thread has written the pieces made so far; and ones that make more or
    /// fewer bytes than they are to.
    func testAFailingComputationFailsTheSaveAndWritesNothing() throws {
        struct Broken: Error, CustomStringConvertible { var description: String { "the inputs changed" } }
        let zeros = [UInt8](repeating: 0, count: 64 << 10)
        let samples = [UInt8](repeating: 0, count: 3 * DeferredBytes.sampleLength)
        let small = DeferredBytes(count: 16, samples: Array(repeating: 0, count: 16), produce: { _ in throw Broken() })
        // Six slots' worth before failing: the producer has waited for the writer to free one.
        let large = DeferredBytes(count: 2 << 20, samples: samples, producingInPieces: { emit in
            for _ in 0..<24 { try zeros.withUnsafeBytes { try emit($0) } }
            throw Broken()
        })
        let short = DeferredBytes(count: 2 << 20, samples: samples, producingInPieces: { emit in
            for _ in 0..<31 { try zeros.withUnsafeBytes { try emit($0) } }
        })
        let long = DeferredBytes(count: 16, samples: Array(repeating: 0, count: 16), producingInPieces: { emit in
            try zeros.withUnsafeBytes { try emit(UnsafeRawBufferPointer(rebasing: $0[..<17])) }
        })
        let cases = [(small, "the inputs changed"), (large, "the inputs changed"),
                     (short, "a computation made 2031616 bytes where 2097152 were expected"),
                     (long, "a computation made 17 or more bytes where 16 were expected")]
        for (computation, reason) in cases {
            let model = try convBatchNorm(withBias: computation)
            let directory = try fixtureWorkspace([])
            let output = directory.appendingPathComponent("out.onnx").path
            XCTAssertThrowsError(try ModelFile.save(model, to: output)) { error in
                XCTAssertTrue("\(error)".contains("out.onnx"), "\(error)")
                XCTAssertTrue("\(error)".contains("a computed tensor could not be made: \(reason)"), "\(error)")
            }
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [])
        }
    }

    /// Bytes that look random, `count` of them, made in pieces of 7,919 bytes with an empty
    /// piece after every tenth; `pieces` counts the calls.
    private final class PieceCounter: @unchecked Sendable { var pieces = 0 }
    private func computation(of bytes: [UInt8], counting counter: PieceCounter) -> DeferredBytes {
        let count = bytes.count
        return DeferredBytes(count: count, samples: DeferredBytes.sampleRanges(count: count).flatMap { bytes[$0] },
                             producingInPieces: { emit in
                                 try bytes.withUnsafeBytes { all in
                                     for start in stride(from: 0, to: count, by: 7_919) {
                                         counter.pieces += 1
                                         try emit(UnsafeRawBufferPointer(rebasing: all[start..<min(start + 7_919, count)]))
                                         if counter.pieces % 10 == 0 { try emit(UnsafeRawBufferPointer(rebasing: all[start..<start])) }
                                     }
                                 }
                             })
    }

    /// Adds a float initializer `name` whose `bytes` are computed when the save writes them.
    private func addComputed(_ model: Model, _ name: String, _ bytes: [UInt8], counting counter: PieceCounter = PieceCounter()) {
        let tensor = Tensor(dataType: .float, dims: [Int64(bytes.count / 4)],
                            storage: .raw(TensorBytes(deferred: computation(of: bytes, counting: counter))))
        model.graph.addInitializer(name: name, tensor: tensor)
    }

    private func patterned(_ count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 13) }
    }

    /// A computed payload is written as it is made, in whatever pieces its computation makes:
    /// through the saver's ring of slots when it is large (here over ten slots' worth, in pieces
    /// that straddle the slots' ends, and exactly twelve slots), straight into the output's
    /// buffer when small. Either way the file holds exactly its bytes.
    func testComputedPayloadsAreWrittenPieceByPiece() throws {
        for count in [4 * 1_000, 4 * 750_001, 3 << 20] {
            let bytes = patterned(count)
            let counter = PieceCounter()
            let computation = computation(of: bytes, counting: counter)
            let model = try convBatchNorm(withBias: computation)
            let directory = try fixtureWorkspace([])
            let output = directory.appendingPathComponent("out.onnx").path
            try ModelFile.save(model, to: output)
            XCTAssertEqual(counter.pieces, (count + 7_918) / 7_919)
            let reloaded = try ModelFile.load(path: output)
            let bias = try XCTUnwrap(reloaded.graph.initializers.first { $0.name == "computed" }?.initializer)
            guard case .raw(let stored) = bias.storage else { return XCTFail("the bias is not raw bytes") }
            XCTAssertTrue(stored.array == bytes, "the \(count) bytes read back differ")
            XCTAssertFalse(computation.isResident, "written without being kept")
        }
    }

    /// Several large computed payloads in one save, with ordinary tensors and a small computed
    /// one between them, come out whole and in order; and when the second large one fails,
    /// after the first was written, the save fails and leaves nothing.
    func testSeveralLargePayloadsOfOneSaveComeOutInOrder() throws {
        let sizes = [3 << 20, 16, 4 * 300_001, 2 << 20]
        let contents = sizes.enumerated().map { index, count in patterned(count + index).suffix(count).map { $0 } }
        let model = try convBatchNorm(withBias: computation(of: contents[0], counting: PieceCounter()))
        for (index, bytes) in contents.enumerated().dropFirst() {
            let plain = Tensor(dataType: .float, dims: [Int64(index)], values: (0..<index).map { Float($0).bitPattern.littleEndian })
            model.graph.addInitializer(name: "plain\(index)", tensor: plain)
            addComputed(model, "computed\(index)", bytes)
        }
        let directory = try fixtureWorkspace([])
        let output = directory.appendingPathComponent("out.onnx").path
        try ModelFile.save(model, to: output)
        let reloaded = try ModelFile.load(path: output)
        for (index, bytes) in contents.enumerated() {
            let name = index == 0 ? "computed" : "computed\(index)"
            let tensor = try XCTUnwrap(reloaded.graph.initializers.first { $0.name == name }?.initializer)
            guard case .raw(let stored) = tensor.storage else { return XCTFail("\(name) is not raw bytes") }
            XCTAssertTrue(stored.array == bytes, "\(name): the \(bytes.count) bytes read back differ")
            if index > 0 {
                let plain = try XCTUnwrap(reloaded.graph.initializers.first { $0.name == "plain\(index)" }?.initializer)
                XCTAssertEqual(plain.dims, [Int64(index)])
            }
        }

        struct Broken: Error, CustomStringConvertible { var description: String { "the second one broke" } }
        let failing = try convBatchNorm(withBias: computation(of: contents[0], counting: PieceCounter()))
        let samples = [UInt8](repeating: 0, count: 3 * DeferredBytes.sampleLength)
        let broken = DeferredBytes(count: 2 << 20, samples: samples, producingInPieces: { emit in
            try contents[3].withUnsafeBytes { try emit(UnsafeRawBufferPointer(rebasing: $0[..<(1 << 20)])) }
            throw Broken()
        })
        failing.graph.addInitializer(name: "broken", tensor: Tensor(dataType: .float, dims: [Int64(1 << 19)], storage: .raw(TensorBytes(deferred: broken))))
        let failed = directory.appendingPathComponent("failed.onnx").path
        XCTAssertThrowsError(try ModelFile.save(failing, to: failed)) { error in
            XCTAssertTrue("\(error)".contains("a computed tensor could not be made: the second one broke"), "\(error)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["out.onnx"])
    }

    /// Runs `body` with the process's standard output sent into a pipe whose reader takes
    /// `limit` bytes and then closes it: later writes fail with EPIPE (SIGPIPE is ignored
    /// meanwhile).
    private func withStandardOutputClosedAfter<R>(_ limit: Int, _ body: () throws -> R) throws -> R {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw XCTSkip("no pipe") }
        let previousHandler = signal(SIGPIPE, SIG_IGN)
        fflush(nil)  // what is buffered for standard output goes there first
        let saved = dup(STDOUT_FILENO)
        dup2(fds[1], STDOUT_FILENO)
        close(fds[1])
        let done = DispatchSemaphore(value: 0)
        let readEnd = fds[0]
        Thread {
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            var total = 0
            while total < limit {
                let n = read(readEnd, &buffer, min(buffer.count, limit - total))
                if n <= 0 { break }
                total += n
            }
            close(readEnd)
            done.signal()
        }.start()
        defer {
            dup2(saved, STDOUT_FILENO)  // closes the pipe's last write end: the reader ends
            close(saved)
            done.wait()
            signal(SIGPIPE, previousHandler)
        }
        return try body()
    }

    /// An output that fails in the middle of a computed payload (a full disk, a closed pipe)
    /// stops the computation and fails the save with the system's error, not as a computation
    /// that failed: a large payload of pieces, and a large folded weight made a chunk at a time.
    func testAFullOutputDuringAComputedPayloadIsAWriteError() throws {
        let counter = PieceCounter()
        let pieces = try convBatchNorm(withBias: computation(of: patterned(3 << 20), counting: counter))
        // Conv 256 → 256, 3×3 (a 2.25 MiB weight) → BatchNormalization: the fold streams it.
        let graph = Graph(name: "wide")
        let type = TypeInfo.tensor(.float, [.value(1), .value(256), .value(4), .value(4)])
        let x = graph.addInput(name: "x", info: ValueInfo(type: type))
        func constant(_ name: String, _ dims: [Int64], _ value: Float) -> Value {
            let count = dims.reduce(1) { $0 * Int($1) }
            return graph.addInitializer(name: name, tensor: Tensor(dataType: .float, dims: dims, values: (0..<count).map { Float($0 % 7) * 0.01 + value }))
        }
        let conv = Node(opType: "Conv", name: "conv", inputs: [x, constant("W", [256, 256, 3, 3], 0)], outputNames: ["c"],
                        attributes: [Attribute(name: "pads", value: .ints([1, 1, 1, 1]))])
        let norm = Node(opType: "BatchNormalization", name: "bn",
                        inputs: [conv.outputs[0]!, constant("s", [256], 1), constant("b", [256], 0), constant("m", [256], 0), constant("v", [256], 1)],
                        outputNames: ["y"])
        try graph.append(conv)
        try graph.append(norm)
        try graph.addOutput(norm.outputs[0]!, info: ValueInfo(type: type))
        let folded = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        try optimize(folded, rules: RuleFiles.builtin)
        XCTAssertEqual(folded.graph.nodes.map(\.opType), ["Conv"])
        XCTAssertFalse(deferredInitializers(folded).isEmpty, "the folded weight is made when written")
        for model in [pieces, folded] {
            var options = SaveOptions()
            options.toStandardOutput = true
            let outcome = try withStandardOutputClosedAfter(1 << 20) { Result { try ModelFile.save(model, to: "out.onnx", options: options) } }
            XCTAssertThrowsError(try outcome.get()) { error in
                XCTAssertEqual("\(error)", "out.onnx: write failed: \(String(cString: strerror(EPIPE)))")
            }
        }
        XCTAssertGreaterThan(counter.pieces, 100, "the output took the first mebibyte")
        XCTAssertLessThan(counter.pieces, (3 << 20) / 7_919, "the computation stopped early")
    }

    /// The threads and open files of the process, from /proc (nil elsewhere).
    private func threadAndFileCounts() -> (threads: Int, files: Int)? {
        guard let threads = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task"),
              let files = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return nil }
        return (threads.count, files.count)
    }

    /// An output that fails during the second of several large payloads (the writer thread
    /// wrote the first): the save fails with the system's error and the file's name, the third
    /// payload is not made, and saving many times, failing or not, leaves no thread or file open.
    func testAFailureInALaterLargePayloadEndsTheWriterAndLeaksNothing() throws {
        let first = patterned(3 << 20)
        let second = patterned(2 << 20 + 4)
        let third = patterned(4 << 20 + 8)
        let thirdCounter = PieceCounter()
        let model = try convBatchNorm(withBias: computation(of: first, counting: PieceCounter()))
        addComputed(model, "second", second)
        addComputed(model, "third", third, counting: thirdCounter)
        var options = SaveOptions()
        options.toStandardOutput = true
        let outcome = try withStandardOutputClosedAfter(4 << 20) { Result { try ModelFile.save(model, to: "out.onnx", options: options) } }
        XCTAssertThrowsError(try outcome.get()) { error in
            XCTAssertEqual("\(error)", "out.onnx: write failed: \(String(cString: strerror(EPIPE)))")
        }
        XCTAssertEqual(thirdCounter.pieces, 0, "the payload after the failure is not made")

        let directory = try fixtureWorkspace([])
        let output = directory.appendingPathComponent("out.onnx").path
        try ModelFile.save(model, to: output)  // warms up whatever the first save starts
        let before = threadAndFileCounts()
        for round in 0..<6 {
            if round % 2 == 0 {
                try ModelFile.save(model, to: output)
            } else {
                _ = try withStandardOutputClosedAfter(4 << 20) { Result { try ModelFile.save(model, to: "out.onnx", options: options) } }
            }
        }
        let after = threadAndFileCounts()
        if let before, let after {
            XCTAssertLessThanOrEqual(after.threads, before.threads, "a writer thread outlived its save")
            XCTAssertLessThanOrEqual(after.files, before.files, "a file stayed open")
        }
        let reloaded = try ModelFile.load(path: output)
        for (name, bytes) in [("computed", first), ("second", second), ("third", third)] {
            let tensor = try XCTUnwrap(reloaded.graph.initializers.first { $0.name == name }?.initializer)
            guard case .raw(let stored) = tensor.storage else { return XCTFail("\(name) is not raw bytes") }
            XCTAssertTrue(stored.array == bytes, name)
        }
    }

    /// Conv (64 → 64, 3×3: a 147 KiB weight, deferred under the default threshold) →
    /// BatchNormalization → Mul by a per-channel constant, written to `directory`: folding makes
    /// a deferred weight that a second fold reads.
    private func writeConvBatchNormMul(in directory: URL) throws -> String {
        var state: UInt64 = 1
        func next() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(state >> 40) / Float(1 << 24) - 0.5
        }
        let graph = Graph(name: "chain")
        let type = TypeInfo.tensor(.float, [.value(1), .value(64), .value(8), .value(8)])
        let x = graph.addInput(name: "x", info: ValueInfo(type: type))
        func constant(_ name: String, _ dims: [Int64], offset: Float) -> Value {
            let count = dims.reduce(1) { $0 * Int($1) }
            return graph.addInitializer(name: name, tensor: Tensor(dataType: .float, dims: dims, values: (0..<count).map { _ in next() + offset }))
        }
        let w = constant("W", [64, 64, 3, 3], offset: 0)
        let conv = Node(opType: "Conv", name: "conv", inputs: [x, w], outputNames: ["c"],
                        attributes: [Attribute(name: "pads", value: .ints([1, 1, 1, 1]))])
        let norm = Node(opType: "BatchNormalization", name: "bn",
                        inputs: [conv.outputs[0]!, constant("s", [64], offset: 1), constant("b", [64], offset: 0),
                                 constant("m", [64], offset: 0), constant("v", [64], offset: 1)],
                        outputNames: ["n"])
        let mul = Node(opType: "Mul", name: "mul", inputs: [norm.outputs[0]!, constant("k", [64, 1, 1], offset: 1)], outputNames: ["y"])
        for node in [conv, norm, mul] { try graph.append(node) }
        try graph.addOutput(mul.outputs[0]!, info: ValueInfo(type: type))
        let path = directory.appendingPathComponent("conv_bn_mul.onnx").path
        try ModelFile.save(Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph), to: path)
        return path
    }

    /// In a chain of folds the later fold reads the earlier deferred weight for the moment only:
    /// it stays a computation (the later one is made from it), not bytes in memory; and the
    /// chain saves what it saves with every weight kept.
    func testAnIntermediateWeightOfAChainIsNotKept() throws {
        let directory = try fixtureWorkspace([])
        let path = try writeConvBatchNormMul(in: directory)
        let model = try ModelFile.load(path: path)
        var first = OptimizationOptions()
        first.only = ["fold-conv-batchnorm"]
        XCTAssertFalse(try optimize(model, rules: RuleFiles.builtin, options: first).fired.isEmpty)
        let conv = try XCTUnwrap(model.graph.nodes.first { $0.opType == "Conv" })
        guard case .raw(let bytes)? = conv.inputs[1]?.initializer?.storage, let intermediate = bytes.deferred else {
            return XCTFail("the folded weight is not deferred")
        }
        XCTAssertFalse(intermediate.isResident)
        var second = OptimizationOptions()
        second.only = ["fuse-conv-mul", "remove-unused-initializer"]
        XCTAssertEqual(try optimize(model, rules: RuleFiles.builtin, options: second).fired.first?.rule, "fuse-conv-mul")
        XCTAssertFalse(intermediate.isResident, "read by the second fold without being kept")
        let deferredPath = directory.appendingPathComponent("deferred.onnx").path
        try ModelFile.save(model, to: deferredPath)
        XCTAssertFalse(intermediate.isResident, "made again by the save without being kept")

        let kept = try ModelFile.load(path: path)
        var keepAll = OptimizationOptions()
        keepAll.evaluationLimits.minimumDeferredBytes = .max
        keepAll.only = first.only
        try optimize(kept, rules: RuleFiles.builtin, options: keepAll)
        keepAll.only = second.only
        try optimize(kept, rules: RuleFiles.builtin, options: keepAll)
        XCTAssertTrue(deferredInitializers(kept).isEmpty)
        let keptPath = directory.appendingPathComponent("kept.onnx").path
        try ModelFile.save(kept, to: keptPath)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: deferredPath)), try Data(contentsOf: URL(fileURLWithPath: keptPath)))
    }

    /// A rule that keeps rewriting one weight (here to the rewrite cap) makes each weight from
    /// the last: past `maximumDeferredDepth` one is kept rather than deferred, so that making the
    /// n-th weight does not compute all the ones before it. The bytes are those of a run that
    /// keeps every weight, for a form evaluated a chunk at a time and for one evaluated whole.
    func testAChainOfDeferredWeightsStaysShallow() throws {
        let graph = Graph(name: "g")
        let dims: [Int64] = [64, 64, 3, 3]
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, dims.map { .value($0) })))
        let w = graph.addInitializer(name: "w", tensor: Tensor(dataType: .float, dims: dims, values: (0..<36_864).map { Float($0 % 89) * 0.01 }))
        let mul = Node(opType: "Mul", name: "mul", inputs: [x, w], outputNames: ["y"])
        try graph.append(mul)
        try graph.addOutput(mul.outputs[0]!, info: ValueInfo(type: nil))
        let path = try fixtureWorkspace([]).appendingPathComponent("chain.onnx").path
        try ModelFile.save(Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph), to: path)
        for form in ["w + 0", "transpose(transpose(w))"] {
            let rules = try RuleFiles.rules(in: """
                rule again {
                  match {
                    y = Mul(x, w)
                  }
                  where {
                    constant(w)
                  }
                  compute {
                    w2 = \(form)
                  }
                  replace {
                    y = Mul(x, w2)
                  }
                }
                """)
            var saved: [Data] = []
            for keepAll in [false, true] {
                let model = try ModelFile.load(path: path)
                var options = OptimizationOptions()
                options.maximumRewrites = 40
                if keepAll { options.evaluationLimits.minimumDeferredBytes = .max }
                let report = try optimize(model, rules: rules, options: options)
                XCTAssertEqual(report.fired.first?.count, 40, form)
                let weight = try XCTUnwrap(model.graph.nodes.first { $0.opType == "Mul" }?.inputs[1]?.initializer)
                if case .raw(let bytes) = weight.storage, let computation = bytes.deferred {
                    XCTAssertLessThanOrEqual(computation.depth, EvaluationLimits().maximumDeferredDepth, form)
                }
                let output = try fixtureWorkspace([]).appendingPathComponent("out.onnx").path
                try ModelFile.save(model, to: output)
                saved.append(try Data(contentsOf: URL(fileURLWithPath: output)))
            }
            XCTAssertEqual(saved[0], saved[1], form)
        }
    }

    /// A deferred weight is made at the save from the input file: if another program changed
    /// that file since it was loaded (in place, or shortened), the save fails with a clear error
    /// naming the file and writes nothing, instead of writing what the rewrite never checked or
    /// faulting (the save checks its input files first).
    func testAnInputChangedAfterTheRewriteFailsTheSave() throws {
        for shortened in [false, true] {
            let directory = try fixtureWorkspace([])
            let path = try writeConvBatchNormMul(in: directory)
            let model = try ModelFile.load(path: path)
            XCTAssertFalse(try optimize(model, rules: RuleFiles.builtin).fired.isEmpty)
            XCTAssertGreaterThan(deferredInitializers(model).count, 0)
            let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: path))
            if shortened {
                handle.truncateFile(atOffset: 1_000)
            } else {
                handle.seek(toFileOffset: 20_000)
                handle.write(Data(repeating: 0xFF, count: 4_096))  // NaNs in W
            }
            handle.closeFile()
            let output = directory.appendingPathComponent("out.onnx").path
            XCTAssertThrowsError(try ModelFile.save(model, to: output)) { error in
                XCTAssertEqual((error as? ModelFileError)?.file, path, "\(error)")
                XCTAssertTrue("\(error)".contains(shortened ? "truncated" : "modified"), "\(error)")
            }
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["conv_bn_mul.onnx"])
        }
    }
}
