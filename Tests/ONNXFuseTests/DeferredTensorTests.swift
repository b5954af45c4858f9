import XCTest
import Foundation
import ONNXFuse

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
        optimize(kept, rules: RuleFiles.builtin)
        optimize(deferred, rules: RuleFiles.builtin, options: deferAll)
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
            optimize(kept, rules: RuleFiles.builtin)
            optimize(deferred, rules: RuleFiles.builtin, options: deferAll)
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

    /// A computation that fails when the save reaches it fails the save with the file's name and
    /// the reason, and leaves nothing behind.
    func testAFailingComputationFailsTheSaveAndWritesNothing() throws {
        struct Broken: Error, CustomStringConvertible { var description: String { "the inputs changed" } }
        let model = try ModelFile.load(path: CommandTests.fixtures.appendingPathComponent("conv_bn.onnx").path)
        let computation = DeferredBytes(count: 16, samples: Array(repeating: 0, count: 16)) { _ in throw Broken() }
        let value = model.graph.addInitializer(name: "broken", tensor: Tensor(dataType: .float, dims: [4], storage: .raw(TensorBytes(deferred: computation))))
        let conv = try XCTUnwrap(model.graph.nodes.first { $0.opType == "Conv" })
        if conv.inputs.count > 2 { conv.setInput(2, to: value) } else { conv.appendInput(value) }
        let directory = try fixtureWorkspace([])
        let output = directory.appendingPathComponent("out.onnx").path
        XCTAssertThrowsError(try ModelFile.save(model, to: output)) { error in
            XCTAssertTrue("\(error)".contains("out.onnx"), "\(error)")
            XCTAssertTrue("\(error)".contains("a computed tensor could not be made: the inputs changed"), "\(error)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [])
    }
}
