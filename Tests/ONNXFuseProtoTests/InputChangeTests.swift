import XCTest
import Foundation
import ONNXFuseIR
@testable import ONNXFuseProto

/// A loaded model's files changed under it (truncated, rewritten, replaced): `save` and
/// `serialize` throw `ModelFileError.inputChanged` naming the file before they read a weight,
/// and write nothing; a model loaded with `LoadOptions.copiesInputFiles` is not affected at all.
final class InputChangeTests: XCTestCase {
    /// Floats of each weight: 64 KiB, far above what the loader copies, so the weights stay in
    /// the file, mapped, and reading one past a truncation would fault.
    static let floats = 16_384

    /// A model whose two weights (`a`, `b`) are added to its input, written at `path` (its weights
    /// in `<path>.data` when `external`); the size of the model file.
    @discardableResult
    func writeModel(to path: String, external: Bool = false) throws -> Int {
        let graph = Graph(name: "weighted")
        let shape = ValueInfo(type: .tensor(.float, [.value(Int64(Self.floats))]))
        let x = graph.addInput(name: "x", info: shape)
        let a = graph.addInitializer(name: "a", tensor: Tensor(dataType: .float, dims: [Int64(Self.floats)], values: (0..<Self.floats).map { Float($0) }))
        let b = graph.addInitializer(name: "b", tensor: Tensor(dataType: .float, dims: [Int64(Self.floats)], values: (0..<Self.floats).map { -Float($0) / 2 }))
        let first = Node(opType: "Add", inputs: [x, a], outputNames: ["t"])
        try graph.append(first)
        let second = Node(opType: "Add", inputs: [first.outputs[0], b], outputNames: ["y"])
        try graph.append(second)
        try graph.addOutput(second.outputs[0]!, info: shape)
        var options = SaveOptions()
        if external { options.maximumModelBytes = 4096 }
        try ModelFile.save(Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph), to: path, options: options)
        return try XCTUnwrap(ModelFile.size(of: path))
    }

    /// A fresh folder with the model written as `model.onnx` in it: the folder and the model's path.
    func folderWithModel(external: Bool = false) throws -> (folder: URL, path: String, size: Int) {
        let folder = try temporaryDirectory(self)
        let path = folder.appendingPathComponent("model.onnx").path
        let size = try writeModel(to: path, external: external)
        return (folder, path, size)
    }

    func truncate(_ path: String, to size: Int) throws {
        let fd = open(path, O_WRONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        XCTAssertEqual(ftruncate(fd, off_t(size)), 0)
    }

    /// Writes `bytes` at `offset` of the file at `path`, in place.
    func overwrite(_ path: String, at offset: Int, with bytes: [UInt8]) {
        let fd = open(path, O_WRONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        XCTAssertEqual(pwrite(fd, bytes, bytes.count, off_t(offset)), bytes.count)
    }

    func contents(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    func entries(_ folder: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
    }

    /// `save` and `serialize` of `model` throw `expected`, and the save leaves `folder` as it was
    /// (no output, no temporary file).
    func assertRefused(_ model: Model, in folder: URL, _ expected: ModelFileError, file: StaticString = #filePath, line: UInt = #line) throws {
        let before = try entries(folder)
        XCTAssertThrowsError(try ModelFile.save(model, to: folder.appendingPathComponent("out.onnx").path), file: file, line: line) { error in
            XCTAssertEqual(error as? ModelFileError, expected, file: file, line: line)
            XCTAssertTrue(error.localizedDescription.contains(expected.file), error.localizedDescription, file: file, line: line)
            XCTAssertTrue(error.localizedDescription.contains("changed since the model was loaded"), error.localizedDescription, file: file, line: line)
        }
        XCTAssertEqual(try entries(folder), before, "the refused save left files", file: file, line: line)
        XCTAssertThrowsError(try ModelFile.serialize(model), file: file, line: line) { error in
            XCTAssertEqual(error as? ModelFileError, expected, file: file, line: line)
        }
        XCTAssertThrowsError(try ModelFile.checkInputUnchanged(model), file: file, line: line) { error in
            XCTAssertEqual(error as? ModelFileError, expected, file: file, line: line)
        }
    }

    func testAnUnchangedInputSaves() throws {
        let (folder, path, _) = try folderWithModel()
        let model = try ModelFile.load(path: path)
        XCTAssertNoThrow(try ModelFile.checkInputUnchanged(model))
        let output = folder.appendingPathComponent("out.onnx").path
        try ModelFile.save(model, to: output)
        XCTAssertEqual(try contents(output), try contents(path))
        XCTAssertEqual(try ModelFile.serialize(model), try contents(path))
    }

    func testATruncatedModelFileIsAnErrorNamingIt() throws {
        for keep in [0, 1] {
            let (folder, path, size) = try folderWithModel()
            let model = try ModelFile.load(path: path)
            try truncate(path, to: size * keep / 2)
            try assertRefused(model, in: folder, .inputChanged(file: path, change: .truncated(from: size, to: size * keep / 2)))
        }
    }

    func testACopyOfAModelChecksTheFilesOfTheOriginal() throws {
        // The copy's weights are the original's, mapped from the same file.
        let (folder, path, size) = try folderWithModel()
        let copy = try ModelFile.load(path: path).copy()
        try truncate(path, to: size / 2)
        try assertRefused(copy, in: folder, .inputChanged(file: path, change: .truncated(from: size, to: size / 2)))
    }

    func testAFileRewrittenInPlaceIsAnError() throws {
        let (folder, path, size) = try folderWithModel()
        let model = try ModelFile.load(path: path)
        overwrite(path, at: size / 2, with: [UInt8](repeating: 0x7F, count: 64))
        try assertRefused(model, in: folder, .inputChanged(file: path, change: .modified))
    }

    /// A rewrite whose author put the modification time back still moves the change time.
    func testARewriteWithItsModificationTimePutBackIsAnError() throws {
        let (folder, path, size) = try folderWithModel()
        var info = stat()
        XCTAssertEqual(stat(path, &info), 0)
        let model = try ModelFile.load(path: path)
        overwrite(path, at: size / 2, with: [UInt8](repeating: 0x7F, count: 64))
        var times = [info.st_atim, info.st_mtim]
        XCTAssertEqual(utimensat(AT_FDCWD, path, &times, 0), 0)
        try assertRefused(model, in: folder, .inputChanged(file: path, change: .statusChanged))
    }

    /// Another file renamed over the model's name is a change, even with the same bytes.
    func testAFileRenamedOverTheInputIsAnError() throws {
        let (folder, path, _) = try folderWithModel()
        let model = try ModelFile.load(path: path)
        let other = folder.appendingPathComponent("other.onnx").path
        try Data(try contents(path)).write(to: URL(fileURLWithPath: other))
        XCTAssertEqual(rename(other, path), 0)
        try assertRefused(model, in: folder, .inputChanged(file: path, change: .replaced))
    }

    func testARemovedInputIsAnError() throws {
        let (folder, path, _) = try folderWithModel()
        let model = try ModelFile.load(path: path)
        XCTAssertEqual(unlink(path), 0)
        try assertRefused(model, in: folder, .inputChanged(file: path, change: .removed))
    }

    /// Reading the file moves only its access time: not a change.
    func testReadingTheInputIsNotAChange() throws {
        let (folder, path, _) = try folderWithModel()
        let model = try ModelFile.load(path: path)
        _ = try contents(path)
        _ = try ModelFile.load(path: path)
        XCTAssertNoThrow(try ModelFile.checkInputUnchanged(model))
        try ModelFile.save(model, to: folder.appendingPathComponent("out.onnx").path)
    }

    func testATruncatedDataFileIsAnErrorNamingIt() throws {
        let (folder, path, _) = try folderWithModel(external: true)
        let data = path + ".data"
        let dataSize = try XCTUnwrap(ModelFile.size(of: data))
        let model = try ModelFile.load(path: path)
        XCTAssertEqual(model.inputFiles.map(\.path), [path, data])
        try truncate(data, to: dataSize / 2)
        try assertRefused(model, in: folder, .inputChanged(file: data, change: .truncated(from: dataSize, to: dataSize / 2)))
    }

    func testTheCheckFollowsTheFileNotTheCurrentFolder() throws {
        let (folder, _, _) = try folderWithModel(external: true)
        let previous = FileManager.default.currentDirectoryPath
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(folder.path))
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        let model = try ModelFile.load(path: "model.onnx")
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath("/"))
        XCTAssertNoThrow(try ModelFile.checkInputUnchanged(model))
    }

    /// A model saved over its own files keeps reading the replaced ones, unlinked: it saves again.
    func testAModelSavedInPlaceSavesAgain() throws {
        for external in [false, true] {
            let (folder, path, _) = try folderWithModel(external: external)
            let model = try ModelFile.load(path: path)
            var options = SaveOptions()
            options.replaceInput = true
            try ModelFile.save(model, to: path, options: options)
            XCTAssertNoThrow(try ModelFile.checkInputUnchanged(model))
            let again = folder.appendingPathComponent("again.onnx").path
            try ModelFile.save(model, to: again)
            XCTAssertNotNil(try ModelFile.load(path: again).graph.initializers.first)
        }
    }

    /// With `copiesInputFiles` nothing done to the files reaches the model: it reads and saves
    /// as an untouched load does.
    func testACopiedInputIsNotAffectedByItsFile() throws {
        for external in [false, true] {
            let (folder, path, _) = try folderWithModel(external: external)
            let untouched = folder.appendingPathComponent("untouched")
            let copied = folder.appendingPathComponent("copied")
            for subfolder in [untouched, copied] { try FileManager.default.createDirectory(at: subfolder, withIntermediateDirectories: false) }
            try ModelFile.save(try ModelFile.load(path: path), to: untouched.appendingPathComponent("out.onnx").path)

            var options = LoadOptions()
            options.copiesInputFiles = true
            let model = try ModelFile.load(path: path, options: options)
            XCTAssertEqual(model.inputFiles.first?.path, path, "the input is still the file, which saving never overwrites")
            try truncate(path, to: 0)
            if external { try truncate(path + ".data", to: 0) }
            XCTAssertNoThrow(try ModelFile.checkInputUnchanged(model))
            let weight = try XCTUnwrap(model.graph.initializers.first { $0.name == "b" }?.initializer?.doubleValues())
            XCTAssertEqual(weight.last, -Double(Self.floats - 1) / 2)
            try ModelFile.save(model, to: copied.appendingPathComponent("out.onnx").path)
            for name in external ? ["out.onnx", "out.onnx.data"] : ["out.onnx"] {
                XCTAssertEqual(try contents(copied.appendingPathComponent(name).path), try contents(untouched.appendingPathComponent(name).path), name)
            }
        }
    }

    /// A model read from bytes has no file to watch but its external data.
    func testAModelFromBytesChecksOnlyItsDataFiles() throws {
        let (folder, path, _) = try folderWithModel(external: true)
        let model = try ModelFile.load(bytes: try contents(path), name: "upload", directory: folder.path)
        try truncate(path, to: 0)
        XCTAssertNoThrow(try ModelFile.checkInputUnchanged(model))
        try truncate(path + ".data", to: 0)
        XCTAssertThrowsError(try ModelFile.checkInputUnchanged(model)) { error in
            XCTAssertEqual((error as? ModelFileError)?.file, path + ".data")
        }
    }

    /// Saves on several threads at once each write a whole output and leave no temporary file.
    func testSavesOnSeveralThreadsAtOnce() throws {
        let folder = try temporaryDirectory(self)
        let inputs = (0..<2).map { folder.appendingPathComponent("in\($0).onnx").path }
        for (index, input) in inputs.enumerated() { try writeModel(to: input, external: index == 1) }
        final class Failures: @unchecked Sendable {
            let lock = NSLock()
            var messages: [String] = []
            func add(_ message: String) { lock.lock(); messages.append(message); lock.unlock() }
        }
        let failures = Failures()
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            let input = inputs[thread % 2]
            let output = folder.appendingPathComponent("out\(thread).onnx").path
            for _ in 0..<5 {
                do {
                    try ModelFile.save(try ModelFile.load(path: input), to: output)
                } catch {
                    failures.add("thread \(thread): \(error)")
                }
            }
        }
        XCTAssertEqual(failures.messages, [])
        for thread in 0..<8 {
            let saved = try ModelFile.load(path: folder.appendingPathComponent("out\(thread).onnx").path)
            XCTAssertEqual(saved.inputFiles.count, 1 + thread % 2)
            XCTAssertEqual(saved.graph.initializers.first { $0.name == "b" }?.initializer?.doubleValues()?.last, -Double(Self.floats - 1) / 2)
        }
        XCTAssertEqual(try entries(folder).filter { $0.contains(".tmp-") }, [])
    }
}
