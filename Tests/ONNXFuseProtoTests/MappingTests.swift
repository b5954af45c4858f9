import XCTest
import Foundation
import CONNX
import ONNXFuseIR
@testable import ONNXFuseProto

/// Weights stay out of the process: loading reads the structure with pread and saving copies
/// payloads from file to file, so no page of the input's mapping becomes resident.
final class MappingTests: XCTestCase {
    /// A /proc file read to its end (they report a size of 0).
    func procFile(_ path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        return String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
    }

    /// Resident kilobytes of the mappings of `path` in this process (Linux); nil when the
    /// file is not mapped or /proc cannot be read.
    func residentKilobytes(of path: String) -> Int? {
        guard let smaps = procFile("/proc/self/smaps") else { return nil }
        var total = 0, inFile = false, found = false
        for line in smaps.split(separator: "\n") {
            if let first = line.first, first.isHexDigit, line.contains("-") {
                inFile = line.hasSuffix(path)
                found = found || inFile
            } else if inFile, line.hasPrefix("Rss:") {
                total += Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
            }
        }
        return found ? total : nil
    }

    /// Read system calls made by this thread so far (Linux), or nil.
    func readCalls() -> Int? {
        guard let io = procFile("/proc/thread-self/io") else { return nil }
        return io.split(separator: "\n").first { $0.hasPrefix("syscr:") }.flatMap { Int($0.split(separator: " ").last!) }
    }

    /// A model with `count` initializers of `floats` floats each (every `largeEvery`th one
    /// `largeFloats` floats instead, when given), all used by one Concat.
    func writeModel(count: Int, floats: Int, largeEvery: Int? = nil, largeFloats: Int = 0, to path: String) throws {
        let graph = Graph(name: "many")
        var inputs: [Value?] = []
        var total = 0
        for index in 0..<count {
            let length = largeEvery.map { index % $0 == 0 } == true ? largeFloats : floats
            let values = (0..<length).map { Float(index * floats + $0) }
            total += length
            inputs.append(graph.addInitializer(name: "t\(index)", tensor: Tensor(dataType: .float, dims: [Int64(length)], values: values)))
        }
        let concat = Node(opType: "Concat", inputs: inputs, outputNames: ["y"], attributes: [Attribute(name: "axis", value: .int(0))])
        try graph.append(concat)
        try graph.addOutput(concat.outputs[0]!, info: ValueInfo(type: .tensor(.float, [.value(Int64(total))])))
        try ModelFile.save(Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph), to: path)
    }

    /// Skips the test where `residentKilobytes` cannot tell (no /proc/self/smaps).
    func requireSmaps() throws {
        guard procFile("/proc/self/smaps")?.isEmpty == false else { throw XCTSkip("needs /proc/self/smaps") }
    }

    /// `writeModel`'s model, written as `name` in a fresh folder: the folder and the file's path.
    func writtenModel(_ name: String, count: Int, floats: Int, largeEvery: Int? = nil, largeFloats: Int = 0) throws -> (directory: URL, path: String) {
        let directory = try temporaryDirectory(self)
        let path = directory.appendingPathComponent(name).path
        try writeModel(count: count, floats: floats, largeEvery: largeEvery, largeFloats: largeFloats, to: path)
        return (directory, path)
    }

    func testLoadingAndSavingLeaveTheWeightsUnmapped() throws {
        try requireSmaps()
        let (directory, input) = try writtenModel("weights.onnx", count: 12, floats: 1 << 18)
        let model = try ModelFile.load(path: input)
        XCTAssertEqual(residentKilobytes(of: input), 0, "loading mapped weights in")
        try ModelFile.save(model, to: directory.appendingPathComponent("out.onnx").path)
        XCTAssertEqual(residentKilobytes(of: input), 0, "saving mapped weights in")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: input)),
                       try Data(contentsOf: directory.appendingPathComponent("out.onnx")))
        // Reading a weight is what maps it.
        XCTAssertEqual(model.graph.initializers[0].initializer?.doubleValues()?[1], 1)
        XCTAssertGreaterThan(try XCTUnwrap(residentKilobytes(of: input)), 0)
    }

    /// Tensors under a page are copied at load (`ONNX_FUSE_LIFT_MIN`): reading every one of
    /// them, as shape inference and rules do, maps nothing of the file, not even the large
    /// weights around them (a read of a mapping maps the page-cache folio around it, up to
    /// 2 MiB of a freshly written file).
    func testReadingSmallTensorsMapsNothing() throws {
        try requireSmaps()
        // 2,000 tensors of 1 KiB, every 100th of 1 MiB instead: small ones lie between the weights.
        let (directory, input) = try writtenModel("mixed.onnx", count: 2_000, floats: 256, largeEvery: 100, largeFloats: 1 << 18)
        let model = try ModelFile.load(path: input)
        var small = 0
        for value in model.graph.initializers where value.initializer!.dims == [256] {
            let index = Int(value.name.dropFirst())!
            XCTAssertEqual(value.initializer?.doubleValues()?[255], Double(index * 256 + 255))
            small += 1
        }
        XCTAssertEqual(small, 1_980)
        XCTAssertEqual(residentKilobytes(of: input), 0, "reading small tensors mapped the file in")
        let out = directory.appendingPathComponent("out.onnx")
        try ModelFile.save(model, to: out.path)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: input)), try Data(contentsOf: out))
    }

    /// A tensor of a page or more is read in place: reading it maps the file around it, and
    /// `Tensor.releaseMappedPages` (which shape inference and rules call after a read) lets go
    /// of that again.
    func testTensorsReadInPlaceAreReleasedAfterTheRead() throws {
        try requireSmaps()
        // 200 tensors of 8 KiB, every 50th of 1 MiB instead.
        let (_, input) = try writtenModel("pages.onnx", count: 200, floats: 2_048, largeEvery: 50, largeFloats: 1 << 18)
        let model = try ModelFile.load(path: input)
        let pageSized = model.graph.initializers.filter { $0.initializer!.dims == [2_048] }
        XCTAssertEqual(pageSized.count, 196)
        XCTAssertEqual(pageSized[0].initializer?.doubleValues()?[1], Double(Int(pageSized[0].name.dropFirst())! * 2_048 + 1))
        XCTAssertGreaterThan(try XCTUnwrap(residentKilobytes(of: input)), 0, "reading in place maps the file")
        pageSized[0].initializer!.releaseMappedPages()
        XCTAssertEqual(residentKilobytes(of: input), 0)
        for value in pageSized {
            let tensor = value.initializer!
            XCTAssertEqual(tensor.doubleValues()?[2_047], Double(Int(value.name.dropFirst())! * 2_048 + 2_047))
            tensor.releaseMappedPages()
        }
        XCTAssertEqual(residentKilobytes(of: input), 0, "released pages stay mapped")
    }

    /// Small external tensors are copied at load too (with pread): reading them maps nothing of
    /// the data file, and saving keeps its layout (`testExternalDataKeepsItsLayoutAndComesBackIdentical`).
    func testReadingSmallExternalTensorsMapsNothing() throws {
        try requireSmaps()
        let directory = try temporaryDirectory(self)
        for name in ["external_data.onnx", "external_data.onnx.data"] {
            try FileManager.default.copyItem(at: Paths.fixtures.appendingPathComponent(name), to: directory.appendingPathComponent(name))
        }
        let model = try ModelFile.load(path: directory.appendingPathComponent("external_data.onnx").path)
        let external = model.graph.initializers.filter { $0.initializer!.isExternal }
        XCTAssertFalse(external.isEmpty)
        for value in external {
            XCTAssertNotNil(value.initializer?.doubleValues(), value.name)
            XCTAssertTrue(value.initializer!.payloadByteCount < Int(ONNX_FUSE_LIFT_MIN), value.name)
        }
        XCTAssertEqual(residentKilobytes(of: directory.appendingPathComponent("external_data.onnx.data").path), 0,
                       "reading small external tensors mapped the data file in")
    }

    func testManyTinyTensorsNeedFewReads() throws {
        guard readCalls() != nil else { throw XCTSkip("needs /proc/thread-self/io") }
        let (directory, input) = try writtenModel("tiny.onnx", count: 20_000, floats: 8)  // about 1 MB
        let before = readCalls()!
        let model = try ModelFile.load(path: input)
        try ModelFile.save(model, to: directory.appendingPathComponent("out.onnx").path)
        let reads = readCalls()! - before
        XCTAssertLessThan(reads, 200, "\(reads) reads for 20,000 tiny tensors")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: input)),
                       try Data(contentsOf: directory.appendingPathComponent("out.onnx")))
    }
}
