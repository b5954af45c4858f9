import XCTest
import Foundation
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// Replacing a model and its external data file is atomic as a pair: a failure or a kill at
/// any step of the save leaves either the old pair or the new one, each whole, and data files
/// of the replaced pair named after the output are removed once the new model is in place.
final class PairReplacementTests: XCTestCase {
    /// A folder with `a.onnx` (the fixture with external data) and `b.onnx`, the same model
    /// with other weights (its data file's bytes changed), so that a model reading the other
    /// pair's data would load and compute something else.
    func workspace() throws -> URL {
        let dir = try fixtureWorkspace(["external_data.onnx", "external_data.onnx.data", "conv_bn.onnx"])
        for name in ["a", "b"] {
            try FileManager.default.createDirectory(at: dir.appendingPathComponent(name), withIntermediateDirectories: false)
            try FileManager.default.copyItem(at: dir.appendingPathComponent("external_data.onnx"),
                                             to: dir.appendingPathComponent("\(name)/external_data.onnx"))
            var data = try Data(contentsOf: dir.appendingPathComponent("external_data.onnx.data"))
            if name == "b" { for index in data.indices where index % 4 == 3 { data[index] ^= 0x01 } }
            try data.write(to: dir.appendingPathComponent("\(name)/external_data.onnx.data"))
        }
        return dir
    }

    /// The payload bytes of every initializer of the model at `path`, in graph order.
    func weights(_ path: URL) throws -> [[Double]] {
        try ModelFile.load(path: path.path).graph.initializers.map { $0.initializer?.doubleValues() ?? [] }
    }

    /// The high byte of every 1024th float of every initializer (the large models' weights are
    /// fills).
    func sampledWeights(_ path: URL) throws -> [[UInt8]] {
        try ModelFile.load(path: path.path).graph.initializers.map { value in
            guard case .raw(let bytes)? = value.initializer?.storage, let base = bytes.baseAddress else { return [] }
            return stride(from: 3, to: bytes.count, by: 4096).map { base.load(fromByteOffset: $0, as: UInt8.self) }
        }
    }

    static let steps = ["write-data", "sync-data", "write-model", "sync-model", "rename-data", "sync-folder", "rename-model"]

    func testAFailureAtAnyStepLeavesTheOldPairAndNothingElse() throws {
        let dir = try workspace()
        let replace = ["b/external_data.onnx", "--no-builtin", "-o", "out.onnx"]
        XCTAssertEqual(try runOnnxFuse(["a/external_data.onnx", "--no-builtin", "-o", "out.onnx"], in: dir).status, 0)
        let before = try filesByName(in: dir)
        let old = try weights(dir.appendingPathComponent("out.onnx"))
        for step in Self.steps {
            let result = try runOnnxFuse(replace, in: dir, environment: ["ONNX_FUSE_TEST_FAULT": step])
            XCTAssertEqual(result.status, 3, "\(step): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("Input/output error"), "\(step): \(result.stderr)")
            XCTAssertEqual(try filesByName(in: dir), before, "\(step): a file changed, or one was left")
            XCTAssertEqual(try weights(dir.appendingPathComponent("out.onnx")), old, step)
        }
        // Without a fault, the new pair replaces the old one, under the other name.
        let result = try runOnnxFuse(replace, in: dir)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try weights(dir.appendingPathComponent("out.onnx")), try weights(dir.appendingPathComponent("b/external_data.onnx")))
        XCTAssertNotEqual(try weights(dir.appendingPathComponent("out.onnx")), old)
        XCTAssertEqual(try filesByName(in: dir).keys.filter { $0.hasPrefix("out.onnx") }.sorted(), ["out.onnx", "out.onnx.data.1"])
    }

    func testAKillAtAnyStepLeavesOneWholePair() throws {
        let dir = try workspace()
        let a = try weights(dir.appendingPathComponent("a/external_data.onnx"))
        let b = try weights(dir.appendingPathComponent("b/external_data.onnx"))
        XCTAssertNotEqual(a, b)
        XCTAssertEqual(try runOnnxFuse(["b/external_data.onnx", "--no-builtin", "-o", "out.onnx"], in: dir).status, 0)
        // Alternately a over b and b over a, killed before each step in turn.
        for (index, step) in (Self.steps + ["remove-old-data"]).enumerated() {
            let from = index % 2 == 0 ? "a" : "b"
            let old = try weights(dir.appendingPathComponent("out.onnx"))
            let killed = try runOnnxFuse(["\(from)/external_data.onnx", "--no-builtin", "-o", "out.onnx"], in: dir,
                                         environment: ["ONNX_FUSE_TEST_FAULT": "kill:" + step])
            XCTAssertEqual(killed.status, 137, "\(step): \(killed.stderr)")
            let now = try weights(dir.appendingPathComponent("out.onnx"))
            let new = from == "a" ? a : b
            XCTAssertTrue(now == old || now == new, "\(step): the model reads another pair's data")
            XCTAssertEqual(now == new, step == "remove-old-data", "\(step): the model was replaced too early or too late")
            // Whatever the kill left, the next run completes and leaves one pair.
            let result = try runOnnxFuse(["\(from)/external_data.onnx", "--no-builtin", "-o", "out.onnx"], in: dir)
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertEqual(try weights(dir.appendingPathComponent("out.onnx")), new, step)
        }
        // Temporary files of the killed runs went with the later runs, and so did data files left
        // by a kill between the data's rename and the model's. Left: the pair, and the old data
        // of the run killed after its model was in place (a model read it: never collected).
        let names = try filesByName(in: dir).keys.filter { $0.hasPrefix("out.onnx") || $0.hasPrefix(".out.onnx") }
        XCTAssertEqual(names.count, 3, "\(names)")
    }

    func testKillsDuringTheWriteOfALargePairLeaveOneWholePair() throws {
        // 24 MB of weights make the write long enough to be interrupted at random points.
        let dir = try fixtureWorkspace([])
        func make(_ name: String, fill: Float) throws {
            let graph = Graph(name: "g")
            let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
            let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(3_000_000)])))
            var last = x
            for index in 0..<2 {
                let w = graph.addInitializer(name: "w\(index)", tensor: Tensor(dataType: .float, dims: [3_000_000],
                                                                              values: [Float](repeating: fill + Float(index), count: 3_000_000)))
                let node = Node(opType: "Add", name: "add\(index)", inputs: [last, w], outputNames: ["y\(index)"])
                try graph.append(node)
                last = node.outputs[0]!
            }
            try graph.addOutput(last, info: ValueInfo(type: nil))
            var options = SaveOptions()
            options.maximumModelBytes = 1 << 20
            try ModelFile.save(model, to: dir.appendingPathComponent(name).path, options: options)
        }
        try make("a.onnx", fill: 1)
        try make("b.onnx", fill: 2)
        let a = try sampledWeights(dir.appendingPathComponent("a.onnx"))
        let b = try sampledWeights(dir.appendingPathComponent("b.onnx"))
        XCTAssertTrue(a != b)
        // One whole run gives the span in which the kills fall.
        let start = Date()
        XCTAssertEqual(try runOnnxFuse(["a.onnx", "--no-builtin", "-o", "out.onnx"], in: dir).status, 0)
        let span = UInt32(Date().timeIntervalSince(start) * 1_000_000)
        var generator = SystemRandomNumberGenerator()
        var interrupted = 0
        for round in 0..<12 {
            let source = round % 2 == 0 ? "b.onnx" : "a.onnx"
            let process = Process()
            process.executableURL = CommandTests.executable
            process.arguments = [source, "--no-builtin", "-o", "out.onnx"]
            process.currentDirectoryURL = dir
            process.standardError = FileHandle.nullDevice
            try process.run()
            usleep(UInt32.random(in: 0...span, using: &generator))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            if process.terminationReason == .uncaughtSignal { interrupted += 1 }
            let now = try sampledWeights(dir.appendingPathComponent("out.onnx"))
            XCTAssertTrue(now == a || now == b, "round \(round): the model reads another pair's data")
        }
        XCTAssertGreaterThan(interrupted, 0, "no run was interrupted")
    }

    func testTheOldPairsDataGoesAndOnlyDataNamedAfterTheOutput() throws {
        let dir = try workspace()
        // --in-place on a pair: the new data alternates between two names, the old one goes.
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: dir.appendingPathComponent("a/external_data.onnx.data").path)
        let weightsBefore = try weights(dir.appendingPathComponent("a/external_data.onnx"))
        for expected in ["external_data.onnx.data.1", "external_data.onnx.data", "external_data.onnx.data.1"] {
            let result = try runOnnxFuse(["a/external_data.onnx", "--no-builtin", "--in-place"], in: dir)
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertEqual(try filesByName(in: dir.appendingPathComponent("a")).keys.sorted(), ["external_data.onnx", expected])
            XCTAssertEqual(try weights(dir.appendingPathComponent("a/external_data.onnx")), weightsBefore)
            let bits = try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("a/" + expected).path)[.posixPermissions] as! NSNumber
            XCTAssertEqual(bits.intValue, 0o600, "the data file keeps the replaced data's permission bits")
        }
        // A model without external data over a pair: the pair's data file goes too.
        XCTAssertEqual(try runOnnxFuse(["conv_bn.onnx", "-o", "a/external_data.onnx"], in: dir).status, 0)
        XCTAssertEqual(try filesByName(in: dir.appendingPathComponent("a")).keys.sorted(), ["external_data.onnx"])

        // Data under another name (shared, say) is never removed; nor a file the old model
        // does not read, though named like the output's data.
        try FileManager.default.moveItem(at: dir.appendingPathComponent("b/external_data.onnx"), to: dir.appendingPathComponent("b/m.onnx"))
        try Data("not the model's".utf8).write(to: dir.appendingPathComponent("b/m.onnx.data.7"))
        XCTAssertEqual(try runOnnxFuse(["b/m.onnx", "--no-builtin", "--in-place"], in: dir).status, 0)
        XCTAssertEqual(try filesByName(in: dir.appendingPathComponent("b")).keys.sorted(), ["external_data.onnx.data", "m.onnx", "m.onnx.data", "m.onnx.data.7"])
        // The output renamed away from its data keeps reading it: a later run to the old name
        // leaves that data alone.
        XCTAssertEqual(try runOnnxFuse(["b/m.onnx", "--no-builtin", "--in-place"], in: dir).status, 0)
        try FileManager.default.moveItem(at: dir.appendingPathComponent("b/m.onnx"), to: dir.appendingPathComponent("b/kept.onnx"))
        let kept = try weights(dir.appendingPathComponent("b/kept.onnx"))
        XCTAssertEqual(try runOnnxFuse(["a/external_data.onnx", "--no-builtin", "-o", "b/m.onnx"], in: dir).status, 0)
        XCTAssertEqual(try weights(dir.appendingPathComponent("b/kept.onnx")), kept)
    }

    func testTheReportNeverTakesTheDataFilesName() throws {
        let dir = try workspace()
        XCTAssertEqual(try runOnnxFuse(["a/external_data.onnx", "--no-builtin", "-o", "out.onnx"], in: dir).status, 0)
        // The next run would put its data in out.onnx.data.1: the report's place.
        let result = try runOnnxFuse(["b/external_data.onnx", "--no-builtin", "-o", "out.onnx", "--report", "out.onnx.data.1"], in: dir)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("(+ out.onnx.data.2"), result.stderr)
        XCTAssertEqual(try weights(dir.appendingPathComponent("out.onnx")), try weights(dir.appendingPathComponent("b/external_data.onnx")))
        XCTAssertTrue(try String(decoding: Data(contentsOf: dir.appendingPathComponent("out.onnx.data.1")), as: UTF8.self).hasPrefix("{"))
    }

    func testAnotherModelsDataUnderTheOutputsDataNameIsNeverReplaced() throws {
        let dir = try workspace()
        // c/other.onnx reads c/external_data.onnx.data: the name the output's data would take.
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("c"), withIntermediateDirectories: false)
        try FileManager.default.copyItem(at: dir.appendingPathComponent("b/external_data.onnx"), to: dir.appendingPathComponent("c/other.onnx"))
        try FileManager.default.copyItem(at: dir.appendingPathComponent("b/external_data.onnx.data"), to: dir.appendingPathComponent("c/external_data.onnx.data"))
        let other = try weights(dir.appendingPathComponent("c/other.onnx"))
        let result = try runOnnxFuse(["a/external_data.onnx", "--no-builtin", "-o", "c/external_data.onnx"], in: dir)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("(+ external_data.onnx.data.1"), result.stderr)
        XCTAssertEqual(try weights(dir.appendingPathComponent("c/other.onnx")), other)
        XCTAssertEqual(try weights(dir.appendingPathComponent("c/external_data.onnx")), try weights(dir.appendingPathComponent("a/external_data.onnx")))
    }

    func testConcurrentWritersOfOneOutputLeaveAWholePair() throws {
        let dir = try workspace()
        let a = try weights(dir.appendingPathComponent("a/external_data.onnx"))
        let b = try weights(dir.appendingPathComponent("b/external_data.onnx"))
        for round in 0..<6 {
            let processes = try (0..<6).map { index -> Process in
                let process = Process()
                process.executableURL = CommandTests.executable
                process.arguments = [index % 2 == 0 ? "a/external_data.onnx" : "b/external_data.onnx", "--no-builtin", "-q", "-o", "out.onnx"]
                process.currentDirectoryURL = dir
                process.standardError = FileHandle.nullDevice
                try process.run()
                return process
            }
            for process in processes {
                process.waitUntilExit()
                XCTAssertEqual(process.terminationStatus, 0, "round \(round)")
            }
            let now = try weights(dir.appendingPathComponent("out.onnx"))
            XCTAssertTrue(now == a || now == b, "round \(round): the model reads another pair's data")
        }
        // No temporary file is left (the data files of the runs that lost the race are: each was
        // read by a model in place for a while, which may have been copied).
        XCTAssertFalse(try filesByName(in: dir).keys.contains { $0.hasPrefix(".out.onnx") })
    }

    func testALongOutputNameThatLeavesNoRoomForAnotherDataNameIsRefusedClearly() throws {
        let dir = try workspace()
        let name = String(repeating: "y", count: 245) + ".onnx"  // <name>.data is 255 bytes
        XCTAssertEqual(try runOnnxFuse(["a/external_data.onnx", "--no-builtin", "-q", "-o", name], in: dir).status, 0)
        let result = try runOnnxFuse([name, "--no-builtin", "--in-place"], in: dir)
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("is longer than a file name may be; choose a shorter output name"), result.stderr)
        XCTAssertNoThrow(try weights(dir.appendingPathComponent(name)))
    }

    func testANewDataFileIsAsPrivateAsTheInputsModelAndData() throws {
        let dir = try workspace()
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: dir.appendingPathComponent("a/external_data.onnx.data").path)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: dir.appendingPathComponent("a/external_data.onnx").path)
        XCTAssertEqual(try runOnnxFuse(["a/external_data.onnx", "--no-builtin", "-o", "out.onnx"], in: dir).status, 0)
        let bits = try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("out.onnx.data").path)[.posixPermissions] as! NSNumber
        XCTAssertEqual(bits.intValue, 0o600)
    }
}
