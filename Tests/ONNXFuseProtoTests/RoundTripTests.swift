import XCTest
import Foundation
import CONNX
import ONNXFuseIR
@testable import ONNXFuseProto

/// The repository's folders, found from this file.
enum Paths {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = root.appendingPathComponent("fixtures")
    static let invalidFixtures = fixtures.appendingPathComponent("invalid")

    static func onnxFiles(in directory: URL) -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".onnx") }.sorted().map { directory.appendingPathComponent($0) }
    }
}

/// A fresh temporary folder, removed at the end of the test.
func temporaryDirectory(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("onnx-fuse-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// The canonical encoding of `bytes` according to protobuf-c alone (plain unpack and pack,
/// none of our code): what a lossless load and save must produce.
func canonicalEncoding(_ bytes: [UInt8]) -> [UInt8]? {
    bytes.withUnsafeBufferPointer { buffer -> [UInt8]? in
        guard let message = protobuf_c_message_unpack(onnx_fuse_model_descriptor(), nil, buffer.count, buffer.baseAddress) else { return nil }
        defer { protobuf_c_message_free_unpacked(message, nil) }
        var out = [UInt8](repeating: 0, count: protobuf_c_message_get_packed_size(message))
        _ = out.withUnsafeMutableBufferPointer { protobuf_c_message_pack(message, $0.baseAddress) }
        return out
    }
}

final class RoundTripTests: XCTestCase {
    /// Loads `input`, saves it into `directory` under the same name, returns the bytes written.
    func roundTrip(_ input: URL, into directory: URL) throws -> [UInt8] {
        let model = try ModelFile.load(path: input.path)
        try model.verify()
        let output = directory.appendingPathComponent(input.lastPathComponent)
        try ModelFile.save(model, to: output.path)
        return Array(try Data(contentsOf: output))
    }

    func testEveryFixtureRoundTripsByteIdentical() throws {
        let fixtures = Paths.onnxFiles(in: Paths.fixtures)
        XCTAssertGreaterThanOrEqual(fixtures.count, 15, "fixtures missing")
        let directory = try temporaryDirectory(self)
        for fixture in fixtures where fixture.lastPathComponent != "external_data.onnx" {
            let original = Array(try Data(contentsOf: fixture))
            let written = try roundTrip(fixture, into: directory)
            XCTAssertEqual(written, original, "\(fixture.lastPathComponent) changed in a round trip")
        }
    }

    func testExternalDataStaysExternalInItsOwnFile() throws {
        let fixture = Paths.fixtures.appendingPathComponent("external_data.onnx")
        let directory = try temporaryDirectory(self)
        let outputPath = directory.appendingPathComponent("out.onnx").path
        let model = try ModelFile.load(path: fixture.path)
        let externalNames = model.graph.initializers.filter { $0.initializer!.isExternal }.map(\.name)
        XCTAssertFalse(externalNames.isEmpty)
        let report = try ModelFile.save(model, to: outputPath)
        XCTAssertEqual(report.dataFileName, "out.onnx.data")
        XCTAssertEqual(report.externalTensorCount, externalNames.count)

        // The output reads back with the same tensors, now from its own data file.
        let reloaded = try ModelFile.load(path: outputPath)
        for name in externalNames {
            let before = model.graph.initializers.first { $0.name == name }!.initializer!
            let after = reloaded.graph.initializers.first { $0.name == name }!.initializer!
            XCTAssertTrue(after.isExternal)
            XCTAssertEqual(after.storage, before.storage, name)
            XCTAssertEqual(after.externalData.first { $0.key == "location" }?.value, "out.onnx.data")
        }
        // Saving the output again under the same name changes nothing, data file included.
        let first = try Data(contentsOf: URL(fileURLWithPath: outputPath))
        let firstData = try Data(contentsOf: URL(fileURLWithPath: outputPath + ".data"))
        let again = directory.appendingPathComponent("again")
        try FileManager.default.createDirectory(at: again, withIntermediateDirectories: true)
        try ModelFile.save(reloaded, to: again.appendingPathComponent("out.onnx").path)
        XCTAssertEqual(try Data(contentsOf: again.appendingPathComponent("out.onnx")), first)
        XCTAssertEqual(try Data(contentsOf: again.appendingPathComponent("out.onnx.data")), firstData)
    }

    func testExternalDataKeepsItsLayoutAndComesBackIdentical() throws {
        // Saved under the same name elsewhere, a model with external data is byte-identical,
        // and so is its data file.
        let directory = try temporaryDirectory(self)
        let model = try ModelFile.load(path: Paths.fixtures.appendingPathComponent("external_data.onnx").path)
        let output = directory.appendingPathComponent("external_data.onnx")
        try ModelFile.save(model, to: output.path)
        XCTAssertEqual(try Data(contentsOf: output), try Data(contentsOf: Paths.fixtures.appendingPathComponent("external_data.onnx")))
        XCTAssertEqual(try Data(contentsOf: directory.appendingPathComponent("external_data.onnx.data")),
                       try Data(contentsOf: Paths.fixtures.appendingPathComponent("external_data.onnx.data")))
    }

    func testExternalDataIsPackedAnewWhenALargeHoleAppears() throws {
        // Two 100 KB tensors in external data; drop the first: the second moves to offset 0
        // instead of leaving a 100 KB hole.
        let directory = try temporaryDirectory(self)
        let graph = Graph(name: "g")
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(25_000)])))
        let a = graph.addInitializer(name: "a", tensor: Tensor(dataType: .float, dims: [25_000], values: [Float](repeating: 1, count: 25_000)))
        let b = graph.addInitializer(name: "b", tensor: Tensor(dataType: .float, dims: [25_000], values: [Float](repeating: 2, count: 25_000)))
        let addA = Node(opType: "Add", inputs: [x, a], outputNames: ["xa"])
        try graph.append(addA)
        let addB = Node(opType: "Add", inputs: [addA.outputs[0], b], outputNames: ["y"])
        try graph.append(addB)
        try graph.addOutput(addB.outputs[0]!, info: ValueInfo(type: .tensor(.float, [.value(25_000)])))
        var options = SaveOptions()
        options.maximumModelBytes = 50_000  // forces both tensors out
        let first = directory.appendingPathComponent("first.onnx").path
        let report = try ModelFile.save(Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph), to: first, options: options)
        XCTAssertEqual(report.externalTensorCount, 2)

        let loaded = try ModelFile.load(path: first)
        let offsets = loaded.graph.initializers.map { Int($0.initializer!.externalData.first { $0.key == "offset" }!.value!)! }
        XCTAssertEqual(offsets, [0, 102_400], "packed at 4096-byte alignment")
        let addNode = loaded.graph.firstNode!
        try addNode.outputs[0]!.replaceAllUses(with: addNode.inputs[0]!)
        try loaded.graph.erase(addNode)
        try loaded.graph.removeInitializer(loaded.graph.initializers[0])
        let second = directory.appendingPathComponent("second.onnx").path
        try ModelFile.save(loaded, to: second)
        let reloaded = try ModelFile.load(path: second)
        let remaining = try XCTUnwrap(reloaded.graph.initializers.first?.initializer)
        XCTAssertEqual(remaining.externalData.first { $0.key == "offset" }?.value, "0")
        XCTAssertEqual(remaining.doubleValues()?.first, 2)
        XCTAssertEqual(ModelFile.size(of: second + ".data"), 100_000)
    }

    func testLargeModelsMoveTheirBiggestTensorsToExternalData() throws {
        // The 2 GiB limit, scaled down: a model over the limit must go external, and load back equal.
        let fixture = Paths.fixtures.appendingPathComponent("conv_bn.onnx")
        let directory = try temporaryDirectory(self)
        let model = try ModelFile.load(path: fixture.path)
        // A limit 100 bytes below the inline size: moving the largest tensor is enough.
        var options = SaveOptions()
        options.maximumModelBytes = try Data(contentsOf: fixture).count - 100
        let path = directory.appendingPathComponent("big.onnx").path
        let report = try ModelFile.save(model, to: path, options: options)
        XCTAssertEqual(report.externalTensorCount, 1)
        XCTAssertEqual(report.dataFileName, "big.onnx.data")
        XCTAssertLessThan(report.modelBytes, options.maximumModelBytes)
        let largest = model.graph.initializers.max { $0.initializer!.payloadByteCount < $1.initializer!.payloadByteCount }!
        let reloaded = try ModelFile.load(path: path)
        for (a, b) in zip(model.graph.initializers, reloaded.graph.initializers) {
            XCTAssertEqual(a.name, b.name)
            XCTAssertEqual(a.initializer!.doubleValues(), b.initializer!.doubleValues())
        }
        XCTAssertEqual(reloaded.graph.initializers.filter { $0.initializer!.isExternal }.map(\.name), [largest.name])

        // When even the structure is over the limit, saving fails and writes nothing.
        options.maximumModelBytes = 64
        XCTAssertThrowsError(try ModelFile.save(model, to: directory.appendingPathComponent("huge.onnx").path, options: options))
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("huge.onnx").path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("huge.onnx.data").path))
    }

    /// The real limit: a model over 2 GiB is saved with its big tensor external, and reads
    /// back. Writes 2.2 GB, so it runs only with `ONNX_FUSE_LARGE_TESTS=1`.
    func testModelsOverTwoGiBGoExternal() throws {
        guard ProcessInfo.processInfo.environment["ONNX_FUSE_LARGE_TESTS"] == "1" else {
            throw XCTSkip("set ONNX_FUSE_LARGE_TESTS=1 to write a 2.2 GB model")
        }
        let directory = try temporaryDirectory(self)
        // A sparse file of zeros stands for the weights: no memory, no disk until written.
        let weights = directory.appendingPathComponent("weights.bin")
        let count = 2_200_000_000
        XCTAssertTrue(FileManager.default.createFile(atPath: weights.path, contents: nil))
        let handle = try FileHandle(forWritingTo: weights)
        try handle.truncate(atOffset: UInt64(count))
        try handle.close()
        let file = try MappedFile(path: weights.path)
        let model = try ModelFile.load(path: Paths.fixtures.appendingPathComponent("matmul_add.onnx").path)
        let big = Tensor(dataType: .uint8, dims: [Int64(count)], storage: .raw(TensorBytes(owner: file, baseAddress: file.base, count: count)))
        model.graph.addInitializer(name: "big", tensor: big)
        let path = directory.appendingPathComponent("huge.onnx").path
        let report = try ModelFile.save(model, to: path)
        XCTAssertEqual(report.externalTensorCount, 1)
        XCTAssertEqual(report.dataFileName, "huge.onnx.data")
        XCTAssertLessThan(report.modelBytes, 1 << 20)
        let reloaded = try ModelFile.load(path: path)
        let tensor = try XCTUnwrap(reloaded.graph.initializers.first { $0.name == "big" }?.initializer)
        XCTAssertTrue(tensor.isExternal)
        XCTAssertEqual(tensor.payloadByteCount, count)
    }

    func testWeightsAreNotCopied() throws {
        // Payloads of a page or more are read in place from the mapping; smaller ones were
        // copied at load (ONNX_FUSE_LIFT_MIN), so that reading them maps nothing.
        let directory = try temporaryDirectory(self)
        let graph = Graph(name: "g")
        let lift = Int(ONNX_FUSE_LIFT_MIN)
        var inputs: [Value?] = []
        for (index, floats) in [1, lift / 4 - 1, lift / 4, 1 << 18].enumerated() {
            let values = (0..<floats).map { Float($0 + index) }
            inputs.append(graph.addInitializer(name: "t\(index)", tensor: Tensor(dataType: .float, dims: [Int64(floats)], values: values)))
        }
        let concat = Node(opType: "Concat", inputs: inputs, outputNames: ["y"], attributes: [Attribute(name: "axis", value: .int(0))])
        try graph.append(concat)
        try graph.addOutput(concat.outputs[0]!, info: ValueInfo(type: .tensor(.float, [.value(Int64(1 + lift / 2 - 1 + (1 << 18)))])))
        let path = directory.appendingPathComponent("weights.onnx").path
        try ModelFile.save(Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph), to: path)
        let model = try ModelFile.load(path: path)
        var inPlace: [Int] = []
        for value in model.graph.initializers {
            guard case .raw(let bytes) = value.initializer!.storage else { return XCTFail("\(value.name) is not raw_data") }
            let tree = try XCTUnwrap(bytes.owner as? DecodedTree)
            if tree.file.contains(bytes.baseAddress!) { inPlace.append(bytes.count) }
            XCTAssertEqual(value.initializer?.doubleValues()?[0], Double(value.name.dropFirst())!, value.name)
        }
        XCTAssertEqual(inPlace.sorted(), [lift, 1 << 20])
    }

    func testPrinterShowsTheGraph() throws {
        let model = try ModelFile.load(path: Paths.fixtures.appendingPathComponent("if_subgraph.onnx").path)
        let text = Printer().print(model)
        XCTAssertTrue(text.contains("If <"), text)
        XCTAssertTrue(text.contains("then_branch = "), text)
        XCTAssertTrue(text.contains("opset_import: [\"\" : 17]"), text)
    }

    /// Every model of the onnx package's backend tests (when the package is installed and
    /// `ONNX_BACKEND_DATA` names its `backend/test/data` folder): the output equals protobuf-c's
    /// canonical encoding of the input, which for canonical inputs is the input itself.
    func testOnnxBackendModelsRoundTrip() throws {
        guard let root = ProcessInfo.processInfo.environment["ONNX_BACKEND_DATA"], !root.isEmpty else {
            throw XCTSkip("set ONNX_BACKEND_DATA to the onnx package's backend/test/data folder")
        }
        let enumerator = FileManager.default.enumerator(atPath: root)
        var models: [String] = []
        while let path = enumerator?.nextObject() as? String {
            if path.hasSuffix(".onnx") { models.append(root + "/" + path) }
        }
        XCTAssertGreaterThan(models.count, 100)
        let directory = try temporaryDirectory(self)
        var identical = 0, canonicalOnly = 0
        for (index, path) in models.sorted().enumerated() {
            let input = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
            let model: Model
            do {
                model = try ModelFile.load(path: path)
            } catch {
                XCTFail("\(path): \(error)")
                continue
            }
            try model.verify()
            let output = directory.appendingPathComponent("m\(index).onnx")
            try ModelFile.save(model, to: output.path)
            let written = Array(try Data(contentsOf: output))
            if written == input {
                identical += 1
            } else if written == canonicalEncoding(input) {
                canonicalOnly += 1
            } else {
                XCTFail("\(path): output differs from the canonical encoding")
            }
        }
        print("onnx backend models: \(models.count), byte-identical \(identical), non-canonical inputs equal after parsing \(canonicalOnly)")
    }
}
