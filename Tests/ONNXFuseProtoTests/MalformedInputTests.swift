import XCTest
import Foundation
import ONNXFuseIR
import ONNXFuseTestSupport
@testable import ONNXFuseProto

final class MalformedInputTests: XCTestCase {
    enum Kind { case invalid, limit, io, unsupported }

    /// Loads `path` and checks it fails with an error of `kind` whose message contains `text`.
    func expectRejection(_ path: String, _ kind: Kind, _ text: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try ModelFile.load(path: path)
            XCTFail("\(path) was accepted", file: file, line: line)
        } catch let error as ModelFileError {
            switch (kind, error) {
            case (.invalid, .invalidModel), (.limit, .limitExceeded), (.io, .io), (.unsupported, .unsupported): break
            default: XCTFail("\(path): wrong kind of error: \(error)", file: file, line: line)
            }
            let message = error.description
            XCTAssertTrue(message.hasPrefix(path + ": "), "the message must start with the file: \(message)", file: file, line: line)
            XCTAssertTrue(message.contains(text), "expected '\(text)' in: \(message)", file: file, line: line)
            XCTAssertFalse(message.contains("\n"), "one line: \(message)", file: file, line: line)
        } catch {
            XCTFail("\(path): unexpected error type \(error)", file: file, line: line)
        }
    }

    func invalid(_ name: String) -> String { Paths.invalidFixtures.appendingPathComponent(name).path }

    func testEveryInvalidFixtureIsRejectedWithItsReason() {
        expectRejection(invalid("raw_data_too_short.onnx"), .invalid, "raw_data has 12 bytes but dims [2, 2, 1, 1] of float need 16")
        expectRejection(invalid("raw_data_too_long.onnx"), .invalid, "raw_data has 20 bytes but dims [2, 2, 1, 1] of float need 16")
        expectRejection(invalid("negative_dim.onnx"), .invalid, "dim 0 is negative (-2)")
        expectRejection(invalid("duplicate_initializer.onnx"), .invalid, "initializer 'B' is defined twice")
        expectRejection(invalid("duplicate_node_output.onnx"), .invalid, "'conv_out' is already defined in this graph")
        expectRejection(invalid("cycle.onnx"), .invalid, "is used before the node that defines it")
        expectRejection(invalid("undefined_input.onnx"), .invalid, "input 'nowhere' is not defined")
        expectRejection(invalid("external_escape.onnx"), .invalid, "leaves the model's folder")
        expectRejection(invalid("external_absolute.onnx"), .invalid, "is an absolute path")
        expectRejection(invalid("external_symlink.onnx"), .invalid, "symbolic link")
        expectRejection(invalid("external_out_of_range.onnx"), .invalid, "runs past the end of 'external_out_of_range.bin'")
        expectRejection(invalid("truncated.onnx"), .invalid, "runs past the end")
        expectRejection(invalid("nested_10000.onnx"), .limit, "nest")
        expectRejection(invalid("nul_in_name.onnx"), .invalid, "NUL")
        expectRejection(invalid("missing_graph.onnx"), .invalid, "the model has no graph")
        expectRejection(invalid("missing_opset.onnx"), .invalid, "no opset_import for the default ONNX domain")
        expectRejection(invalid("two_data_fields.onnx"), .invalid, "stores its data in both raw_data and float_data")
        expectRejection(invalid("external_in_training_info.onnx"), .unsupported, "training_info[0] holds a tensor with external data")
    }

    func testMissingAndEmptyFiles() throws {
        let directory = try temporaryDirectory(self)
        expectRejection(directory.appendingPathComponent("absent.onnx").path, .io, "open failed: No such file or directory")
        let empty = directory.appendingPathComponent("empty.onnx")
        try Data().write(to: empty)
        expectRejection(empty.path, .invalid, "the file is empty")
        do {
            _ = try ModelFile.load(path: directory.path)
            XCTFail("a folder was accepted")
        } catch let error as ModelFileError {
            XCTAssertTrue(error.description.contains("not a regular file") || error.description.contains("read failed"), "\(error)")
        }
    }

    func testSpecialFilesAreRefusedWithoutWaiting() throws {
        // A FIFO without a writer would block a plain open() forever.
        let directory = try temporaryDirectory(self)
        let fifo = directory.appendingPathComponent("model.onnx")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        expectRejection(fifo.path, .unsupported, "not a regular file (it is a FIFO)")
        // The same as a model's external data file.
        try FileManager.default.copyItem(at: Paths.fixtures.appendingPathComponent("external_data.onnx"),
                                         to: directory.appendingPathComponent("m.onnx"))
        XCTAssertEqual(mkfifo(directory.appendingPathComponent("external_data.onnx.data").path, 0o600), 0)
        expectRejection(directory.appendingPathComponent("m.onnx").path, .invalid, "is not a regular file (it is a FIFO)")
    }

    func testHardLinkedExternalDataIsRefused() throws {
        let directory = try temporaryDirectory(self)
        let fixture = Paths.fixtures.appendingPathComponent("external_data.onnx")
        try FileManager.default.copyItem(at: fixture, to: directory.appendingPathComponent("m.onnx"))
        try FileManager.default.copyItem(at: Paths.fixtures.appendingPathComponent("external_data.onnx.data"),
                                         to: directory.appendingPathComponent("external_data.onnx.data"))
        XCTAssertNoThrow(try ModelFile.load(path: directory.appendingPathComponent("m.onnx").path))
        try FileManager.default.linkItem(at: directory.appendingPathComponent("external_data.onnx.data"),
                                         to: directory.appendingPathComponent("second-name.data"))
        expectRejection(directory.appendingPathComponent("m.onnx").path, .invalid, "is hard-linked (2 links)")
    }

    func testSymbolicLinkInAParentFolderIsRefused() throws {
        let directory = try temporaryDirectory(self)
        let real = directory.appendingPathComponent("real")
        try FileManager.default.createDirectory(at: real, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Paths.fixtures.appendingPathComponent("external_data.onnx.data"),
                                         to: real.appendingPathComponent("external_data.onnx.data"))
        try FileManager.default.createSymbolicLink(atPath: directory.appendingPathComponent("sub").path, withDestinationPath: "real")
        // Rewrite the location to go through the linked folder.
        let model = try ModelFile.load(path: Paths.fixtures.appendingPathComponent("external_data.onnx").path)
        let target = directory.appendingPathComponent("m.onnx").path
        try ModelFile.save(model, to: target)
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: target)))
        let old = Array("m.onnx.data".utf8), new = Array("sub/extdata".utf8)
        XCTAssertEqual(old.count, new.count)
        var replaced = 0
        var i = 0
        while i + old.count <= bytes.count {
            if Array(bytes[i..<i + old.count]) == old {
                bytes.replaceSubrange(i..<i + old.count, with: new)
                replaced += 1
            }
            i += 1
        }
        XCTAssertGreaterThan(replaced, 0)
        try Data(bytes).write(to: URL(fileURLWithPath: target))
        try FileManager.default.moveItem(at: directory.appendingPathComponent("m.onnx.data"), to: real.appendingPathComponent("extdata"))
        expectRejection(target, .invalid, "goes through a symbolic link ('sub')")
    }

    /// Every prefix of every fixture either loads or fails with a clear error: never a crash.
    func testTruncationsNeverCrash() throws {
        let directory = try temporaryDirectory(self)
        for fixture in Paths.onnxFiles(in: Paths.fixtures) where !fixture.lastPathComponent.hasPrefix("external") {
            let bytes = Array(try Data(contentsOf: fixture))
            let cut = directory.appendingPathComponent(fixture.lastPathComponent)
            var rejected = 0
            for length in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 97)) {
                try Data(bytes[0..<length]).write(to: cut)
                do {
                    _ = try ModelFile.load(path: cut.path)
                } catch let error as ModelFileError {
                    rejected += 1
                    XCTAssertTrue(error.description.hasPrefix(cut.path + ": "), "\(error)")
                }
            }
            XCTAssertGreaterThan(rejected, 0, fixture.lastPathComponent)
        }
    }

    /// Seeded random bytes and random corruption of real fixtures: each load succeeds or
    /// throws a `ModelFileError`, and whatever loads also passes `verify()` and saves.
    func testRandomBytesAndCorruptionNeverCrash() throws {
        let directory = try temporaryDirectory(self)
        let path = directory.appendingPathComponent("random.onnx")
        let fixtures = Paths.onnxFiles(in: Paths.fixtures).filter { !$0.lastPathComponent.hasPrefix("external") }
            .map { Array(try! Data(contentsOf: $0)) }
        for seed in UInt64(1)...400 {
            var rng = SplitMix64(seed: seed)
            var bytes: [UInt8]
            if seed % 4 == 0 {
                bytes = (0..<Int.random(in: 1...512, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                bytes = fixtures.randomElement(using: &rng)!
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            }
            try Data(bytes).write(to: path)
            do {
                let model = try ModelFile.load(path: path.path)
                try model.verify()
                try ModelFile.save(model, to: directory.appendingPathComponent("out.onnx").path)
            } catch is ModelFileError {
                continue
            } catch {
                XCTFail("seed \(seed): \(error)")
            }
        }
    }

    func testDeepNestingIsALimitNotACrash() throws {
        // 10,000 levels of GraphProto.node > NodeProto.attribute > AttributeProto.g > ...
        func lengthDelimited(_ field: UInt8, _ payload: [UInt8]) -> [UInt8] {
            var out: [UInt8] = [field << 3 | 2]
            var n = payload.count
            while n >= 0x80 {
                out.append(UInt8(n & 0x7F) | 0x80)
                n >>= 7
            }
            out.append(UInt8(n))
            return out + payload
        }
        var graph: [UInt8] = []
        for _ in 0..<3334 {
            let attribute = lengthDelimited(6, graph)  // AttributeProto.g
            let node = lengthDelimited(5, attribute)   // NodeProto.attribute
            graph = lengthDelimited(1, node)           // GraphProto.node
        }
        let model: [UInt8] = [0x08, 0x08] + lengthDelimited(7, graph)  // ir_version 8, graph
        let directory = try temporaryDirectory(self)
        let path = directory.appendingPathComponent("deep.onnx").path
        try Data(model).write(to: URL(fileURLWithPath: path))
        expectRejection(path, .limit, "nest")
    }

    func testUnpackBudgetStopsMemoryBlowUp() throws {
        // 1 MB of empty NodeProtos (two bytes each) inside one graph, with a small budget.
        var nodes: [UInt8] = []
        nodes.reserveCapacity(1 << 20)
        for _ in 0..<(1 << 19) { nodes += [0x0A, 0x00] }
        var length: [UInt8] = []
        var n = nodes.count
        while n >= 0x80 {
            length.append(UInt8(n & 0x7F) | 0x80)
            n >>= 7
        }
        length.append(UInt8(n))
        let model: [UInt8] = [0x08, 0x08, 0x3A] + length + nodes
        let directory = try temporaryDirectory(self)
        let path = directory.appendingPathComponent("wide.onnx").path
        try Data(model).write(to: URL(fileURLWithPath: path))
        var limits = LoadLimits()
        limits.unpackBudgetBase = 1 << 20
        limits.unpackBudgetPerStructureByte = 4
        do {
            _ = try ModelFile.load(path: path, limits: limits)
            XCTFail("accepted")
        } catch let error as ModelFileError {
            guard case .limitExceeded = error else { return XCTFail("\(error)") }
            XCTAssertTrue(error.description.contains("memory"), "\(error)")
        }
    }
}
