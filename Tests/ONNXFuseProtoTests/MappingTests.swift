import XCTest
import Foundation
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

    /// A model with `count` initializers of `floats` floats each, all used by one Concat.
    func writeModel(count: Int, floats: Int, to path: String) throws {
        let graph = Graph(name: "many")
        var inputs: [Value?] = []
        for index in 0..<count {
            let values = (0..<floats).map { Float(index * floats + $0) }
            inputs.append(graph.addInitializer(name: "t\(index)", tensor: Tensor(dataType: .float, dims: [Int64(floats)], values: values)))
        }
        let concat = Node(opType: "Concat", inputs: inputs, outputNames: ["y"], attributes: [Attribute(name: "axis", value: .int(0))])
        graph.append(concat)
        graph.addOutput(concat.outputs[0]!, info: ValueInfo(type: .tensor(.float, [.value(Int64(count * floats))])))
        try ModelFile.save(Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph), to: path)
    }

    func testLoadingAndSavingLeaveTheWeightsUnmapped() throws {
        guard procFile("/proc/self/smaps")?.isEmpty == false else { throw XCTSkip("needs /proc/self/smaps") }
        let directory = try temporaryDirectory(self)
        let input = directory.appendingPathComponent("weights.onnx").path
        // 12 tensors of 1 MiB and 2,000 of 1 KiB, interleaved by name order.
        try writeModel(count: 12, floats: 1 << 18, to: input)
        let model = try ModelFile.load(path: input)
        XCTAssertEqual(residentKilobytes(of: input), 0, "loading mapped weights in")
        try ModelFile.save(model, to: directory.appendingPathComponent("out.onnx").path)
        XCTAssertEqual(residentKilobytes(of: input), 0, "saving mapped weights in")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: input)),
                       try Data(contentsOf: directory.appendingPathComponent("out.onnx")))
        // Reading a weight is what maps it; releasing the model's pages unmaps it, and a read
        // after that maps it again, with the same bytes.
        XCTAssertEqual(model.graph.initializers[0].initializer?.doubleValues()?[1], 1)
        XCTAssertGreaterThan(try XCTUnwrap(residentKilobytes(of: input)), 0)
        XCTAssertEqual(model.mappedByteCount, try FileManager.default.attributesOfItem(atPath: input)[.size] as? Int)
        model.releaseMappedPages()
        XCTAssertEqual(residentKilobytes(of: input), 0, "released pages stay mapped")
        XCTAssertEqual(model.graph.initializers[0].initializer?.doubleValues()?[1], 1)
        XCTAssertEqual(Model(irVersion: 8, opsetImports: [], graph: Graph()).mappedByteCount, 0)
    }

    func testManyTinyTensorsNeedFewReads() throws {
        guard readCalls() != nil else { throw XCTSkip("needs /proc/thread-self/io") }
        let directory = try temporaryDirectory(self)
        let input = directory.appendingPathComponent("tiny.onnx").path
        try writeModel(count: 20_000, floats: 8, to: input)  // about 1 MB
        let before = readCalls()!
        let model = try ModelFile.load(path: input)
        try ModelFile.save(model, to: directory.appendingPathComponent("out.onnx").path)
        let reads = readCalls()! - before
        XCTAssertLessThan(reads, 200, "\(reads) reads for 20,000 tiny tensors")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: input)),
                       try Data(contentsOf: directory.appendingPathComponent("out.onnx")))
    }
}
