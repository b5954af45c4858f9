// onnx_fuse_load_fd: the outcome of onnx_fuse_load on the same bytes, with the file read
// through pread, lifted payloads not read, and the mapping never touched.
import CONNX
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Models

/// A model whose structure spans many windows of a file source: nodes with attributes of
/// every wire type (packed and unpacked ints, a fixed32, strings with multi-byte UTF-8),
/// unknown fields, Constant tensors and initializers with raw_data of the sizes in
/// `payloadSizes` (taken in turn) between the nodes, float_data and int64_data initializers.
/// `pad` lengthens the producer name, shifting everything after it.
func structuredModel(nodes: Int, pad: Int = 0, payloadSizes: [Int] = [0, 3, 100, 5_000, 9]) -> [UInt8] {
    var nextPayload = 0
    func nextSize() -> Int {
        defer { nextPayload += 1 }
        return payloadSizes[nextPayload % payloadSizes.count]
    }
    return Wire { m in
        m.varintField(F.Model.irVersion, 8)
        m.stringField(F.Model.producerName, "p" + String(repeating: "x", count: pad))
        m.messageField(F.Model.opsetImport) { o in
            o.stringField(F.Opset.domain, "")
            o.varintField(F.Opset.version, 17)
        }
        m.messageField(F.Model.graph) { g in
            g.stringField(F.Graph.name, "structured")
            for i in 0..<nodes {
                g.messageField(F.Graph.node) { n in
                    n.stringField(F.Node.input, "x\(i)")
                    n.stringField(F.Node.input, "w\(i)")
                    n.stringField(F.Node.output, "y\(i)")
                    n.stringField(F.Node.name, "node \(i) " + String(repeating: "é€𝄞", count: i % 5))
                    n.stringField(F.Node.opType, "Conv")
                    n.messageField(F.Node.attribute) { a in
                        a.stringField(F.Attribute.name, "kernel_shape")
                        var ints = Wire()
                        ints.varint(3)
                        ints.varint(UInt64(i) << 7)
                        ints.varint(UInt64(bitPattern: -1))
                        a.bytesField(F.Attribute.ints, ints.bytes) // packed
                        a.varintField(F.Attribute.type, 7)
                    }
                    n.messageField(F.Node.attribute) { a in
                        a.stringField(F.Attribute.name, "pads")
                        for k in 0..<4 { a.varintField(F.Attribute.ints, UInt64(k + i)) } // unpacked
                    }
                    n.messageField(F.Node.attribute) { a in
                        a.stringField(F.Attribute.name, "alpha")
                        a.fixed32Field(F.Attribute.f, 0x3f80_0000 &+ UInt32(i))
                        a.varintField(F.Attribute.type, 1)
                    }
                    if i % 3 == 0 {
                        let size = nextSize()
                        n.messageField(F.Node.attribute) { a in
                            a.stringField(F.Attribute.name, "value")
                            a.messageField(F.Attribute.t) { t in
                                t.varintField(F.Tensor.dims, UInt64(size))
                                t.varintField(F.Tensor.dataType, 2)
                                t.stringField(F.Tensor.name, "c\(i)")
                                t.bytesField(F.Tensor.rawData, payload(size, seed: UInt8(truncatingIfNeeded: i)))
                            }
                        }
                    }
                    if i % 4 == 1 { n.bytesField(1000 + UInt64(i % 3), [1, 2, 3]) }
                    if i % 5 == 2 { n.fixed64Field(2000, UInt64(i)) }
                }
                if i % 3 == 1 {
                    let size = nextSize()
                    g.messageField(F.Graph.initializer) { t in
                        t.varintField(F.Tensor.dims, UInt64(size / 4))
                        t.varintField(F.Tensor.dims, 4)
                        t.varintField(F.Tensor.dataType, 1)
                        t.stringField(F.Tensor.name, "w\(i)")
                        t.bytesField(F.Tensor.rawData, payload(size, seed: UInt8(truncatingIfNeeded: i &* 3)))
                    }
                }
                if i % 7 == 3 {
                    g.messageField(F.Graph.initializer) { t in
                        t.varintField(F.Tensor.dataType, 1)
                        var floats = Wire()
                        for k in 0..<(i % 11) { withUnsafeBytes(of: Float(k).bitPattern.littleEndian) { floats.raw(Array($0)) } }
                        t.bytesField(F.Tensor.floatData, floats.bytes)
                        var ints = Wire()
                        for k in 0..<(i % 5) { ints.varint(UInt64(k) << (7 * UInt64(k))) }
                        t.bytesField(F.Tensor.int64Data, ints.bytes)
                        t.stringField(F.Tensor.name, "f\(i)")
                    }
                }
            }
            g.messageField(F.Graph.input) { v in
                v.stringField(F.ValueInfo.name, "x0")
                v.messageField(F.ValueInfo.type) { ty in
                    ty.messageField(F.TypeP.tensorType) { tt in
                        tt.varintField(F.TypeTensor.elemType, 1)
                        tt.messageField(F.TypeTensor.shape) { s in
                            s.messageField(F.Shape.dim) { d in d.stringField(F.Dim.dimParam, "N") }
                        }
                    }
                }
            }
        }
        m.varintField(5000, 42)
    }.bytes
}

/// Graph initializers with large payloads and a little structure between them (a node
/// before each, outputs after the last): what the fd path is for.
func weightsModel(tensors: Int, payloadSize: Int) -> [UInt8] {
    Wire { m in
        m.varintField(F.Model.irVersion, 8)
        m.messageField(F.Model.graph) { g in
            for i in 0..<tensors {
                g.messageField(F.Graph.node) { n in
                    n.stringField(F.Node.input, "x")
                    n.stringField(F.Node.input, "w\(i)")
                    n.stringField(F.Node.output, "y\(i)")
                    n.stringField(F.Node.opType, "MatMul")
                }
                g.messageField(F.Graph.initializer) { t in
                    t.varintField(F.Tensor.dims, UInt64(payloadSize / 4))
                    t.varintField(F.Tensor.dataType, 1)
                    t.stringField(F.Tensor.name, "w\(i)")
                    // Cheap to build in a debug build, and different from tensor to tensor.
                    var data = [UInt8](repeating: UInt8(truncatingIfNeeded: i &+ 1), count: payloadSize)
                    for k in stride(from: 0, to: payloadSize, by: 4_093) { data[k] = UInt8(truncatingIfNeeded: k) }
                    t.bytesField(F.Tensor.rawData, data)
                }
            }
            g.messageField(F.Graph.output) { v in v.stringField(F.ValueInfo.name, "y0") }
        }
    }.bytes
}

/// The (offset, length) of every non-empty raw_data payload of `bytes`.
func payloadRanges(_ bytes: [UInt8]) -> [Range<Int>] {
    let load = Load(bytes, checkFile: false)
    precondition(load.status == ONNX_FUSE_OK, load.summary)
    return allTensors(load.message).compactMap { t in
        let bd = t.pointee.raw_data
        guard bd.len > 0 else { return nil }
        let offset = UnsafeRawPointer(bd.data!) - UnsafeRawPointer(load.input.pointer)
        return offset..<offset + bd.len
    }
}

/// `bytes` with every byte of `ranges` replaced by `fill(i)`.
func replacing(_ ranges: [Range<Int>], in bytes: [UInt8], with fill: (Int) -> UInt8) -> [UInt8] {
    var out = bytes
    for r in ranges { for i in r { out[i] = fill(i) } }
    return out
}

// MARK: - Tests

final class FileLoadTests: XCTestCase {
    /// Loads `bytes` both ways and checks that the outcomes agree; returns the status.
    @discardableResult
    private func compare(_ bytes: [UInt8], maxDepth: Int = 100, budget: Int = .max,
                         _ context: @autoclosure () -> String = "",
                         file: StaticString = #filePath, line: UInt = #line) -> onnx_fuse_status {
        let memory = Load(bytes, maxDepth: maxDepth, budget: budget, checkFile: false)
        let fromFile = FileLoad(bytes, maxDepth: maxDepth, budget: budget)
        assertSameLoad(memory, fromFile, context(), file: file, line: line)
        return memory.status
    }

    private var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    // MARK: equivalence

    func testFixtures() throws {
        var counts: [String: Int] = [:]
        for folder in ["fixtures", "fixtures/invalid"] {
            let directory = repository.appendingPathComponent(folder)
            let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
                .filter { $0.hasSuffix(".onnx") }.sorted()
            for name in names {
                let path = directory.appendingPathComponent(name).path
                // The fixture file itself, mapped, against its bytes in memory.
                let bytes = [UInt8](FileManager.default.contents(atPath: path)!)
                let memory = Load(bytes, checkFile: false)
                let fromFile = FileLoad(MappedInput(path: path))
                assertSameLoad(memory, fromFile, "\(folder)/\(name)")
                counts[folder, default: 0] += 1
                // And at depth limits that cut into them.
                for depth in [1, 3, 5] {
                    compare(bytes, maxDepth: depth, "\(folder)/\(name), max depth \(depth)")
                }
            }
        }
        print("testFixtures: \(counts.sorted { $0.key < $1.key })")
        XCTAssertGreaterThanOrEqual(counts["fixtures", default: 0], 20)
        XCTAssertGreaterThanOrEqual(counts["fixtures/invalid", default: 0], 15)
    }

    func testSampleModels() {
        let rich = RichModel()
        var noUnknown = RichModel()
        noUnknown.withUnknownFields = false
        let models: [(String, [UInt8])] = [
            ("rich", rich.bytes),
            ("rich canonical", canonical(rich.bytes)),
            ("rich without unknown fields", noUnknown.bytes),
            ("graph with nodes", graphWithNodes(50, bad: 7) { a in a.stringField(F.Attribute.name, "a") }),
            ("graph with a NUL", graphWithNodes(50, bad: 7) { a in a.stringField(F.Attribute.name, "a\u{0}") }),
            ("model with tensor", modelWithTensor { t in t.bytesField(F.Tensor.rawData, payload(10, seed: 1)) }),
            ("structured", structuredModel(nodes: 300)),
            ("structured, large payloads",
             structuredModel(nodes: 200, payloadSizes: [0, 70_000, 3, 300_000, 65_536, 262_144, 4_096, 1])),
            ("weights", weightsModel(tensors: 12, payloadSize: 300_000)),
            ("empty", []),
        ]
        for (name, bytes) in models {
            compare(bytes, name)
            compare(canonical(bytes), "\(name), canonical")
        }
        // Limits are applied the same way.
        let bytes = structuredModel(nodes: 100)
        for depth in [0, 1, 2, 3, 4, 5, 6] { compare(bytes, maxDepth: depth, "max depth \(depth)") }
        for budget in [0, 1_000, 50_000, 200_000] { compare(bytes, budget: budget, "budget \(budget)") }
    }

    /// Everything shifted byte by byte, so that the window's refills fall inside every kind
    /// of key, varint, fixed value and string in turn.
    func testWindowBoundariesFallEverywhere() {
        var statuses: [UInt32: Int] = [:]
        for pad in 0..<128 {
            let bytes = structuredModel(nodes: 90, pad: pad, payloadSizes: [0, 3, 5_000, 100, 9_000, 17])
            statuses[compare(bytes, "pad \(pad)").rawValue, default: 0] += 1
        }
        XCTAssertEqual(statuses, [ONNX_FUSE_OK.rawValue: 128])
    }

    func testRandomByteFlipsAndTruncations() {
        let env = ProcessInfo.processInfo.environment
        let seed = env["ONNX_FUSE_FUZZ_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        let iterations = Int(env["ONNX_FUSE_FUZZ_ITERATIONS"] ?? "") ?? 3_000
        print("testRandomByteFlipsAndTruncations: seed \(seed) (set ONNX_FUSE_FUZZ_SEED=\(seed) to repeat)")
        var rng = SplitMix64(seed: seed)
        let models = [
            canonical(RichModel().bytes),
            RichModel().bytes,
            structuredModel(nodes: 60),
            canonical(structuredModel(nodes: 40, pad: 3, payloadSizes: [6_000, 2, 0, 300])),
        ]
        var counts: [UInt32: Int] = [:]
        for i in 0..<iterations {
            var bytes = models[i % models.count]
            let mode = Int.random(in: 0..<4, using: &rng) // 0: truncate, 1: both, 2-3: flips only
            if mode <= 1 {
                bytes.removeLast(Int.random(in: 0...bytes.count, using: &rng))
            }
            if mode >= 1 && !bytes.isEmpty {
                for _ in 0..<Int.random(in: 1...6, using: &rng) {
                    let at = Int.random(in: 0..<bytes.count, using: &rng)
                    if Bool.random(using: &rng) {
                        bytes[at] ^= UInt8(1) << UInt8.random(in: 0...7, using: &rng)
                    } else {
                        bytes[at] = UInt8.random(in: 0...255, using: &rng)
                    }
                }
            }
            let status = compare(bytes, maxDepth: 64, budget: 64 << 20, "seed \(seed), iteration \(i)")
            counts[status.rawValue, default: 0] += 1
        }
        print("testRandomByteFlipsAndTruncations: statuses \(counts.sorted { $0.key < $1.key })")
        XCTAssertGreaterThan(counts[ONNX_FUSE_OK.rawValue, default: 0], 0)
        XCTAssertGreaterThan(counts[ONNX_FUSE_INVALID.rawValue, default: 0], 0)
    }

    // MARK: long fields (read straight into the compacted buffer)

    func testLongFields() {
        func model(_ build: (inout Wire) -> Void) -> [UInt8] {
            Wire { m in
                m.varintField(F.Model.irVersion, 8)
                m.stringField(F.Model.producerName, "long fields")
                build(&m)
                m.varintField(F.Model.irVersion, 9)
            }.bytes
        }
        // Multi-byte UTF-8 so that windows and chunks end inside characters.
        func text(_ n: Int) -> [UInt8] {
            let unit = Array("aé€𝄞".utf8) // 10 bytes
            var out: [UInt8] = []
            out.reserveCapacity(n + unit.count)
            while out.count < n { out += unit }
            return Array(out[0..<n])
        }
        let docString: UInt64 = 6 // ModelProto.doc_string
        for n in [65_535, 65_536, 65_537, 262_143, 262_144, 262_145, 1 << 20] {
            let s = text(n - n % 10) // whole characters
            compare(model { $0.bytesField(docString, s) }, "doc_string of \(s.count) bytes")
            var nul = s
            nul[s.count - 7] = 0
            XCTAssertEqual(compare(model { $0.bytesField(docString, nul) }, "NUL near the end of \(s.count)"),
                           ONNX_FUSE_INVALID)
            var bad = s
            bad[s.count / 2 + 1] = 0xff
            XCTAssertEqual(compare(model { $0.bytesField(docString, bad) }, "bad UTF-8 in \(s.count)"),
                           ONNX_FUSE_INVALID)
            // Cut inside the last character: invalid at its start.
            XCTAssertEqual(compare(model { $0.bytesField(docString, Array(s.dropLast(1))) }, "cut \(s.count)"),
                           ONNX_FUSE_INVALID)
            // Unknown and bytes fields are copied unchecked.
            compare(model { $0.bytesField(4242, nul) }, "unknown field of \(s.count) bytes")
        }
        // Packed varints of every length, and their failures.
        var ints = Wire()
        var k: UInt64 = 0
        while ints.bytes.count < 3 << 20 { ints.varint(k &* 0x9e37_79b9_7f4a_7c15 >> (k % 64)); k += 1 }
        let packedInts = ints.bytes
        let tensor = { (data: [UInt8], field: UInt64) in
            model { m in
                m.messageField(F.Model.graph) { g in
                    g.messageField(F.Graph.initializer) { t in
                        t.stringField(F.Tensor.name, "t")
                        t.bytesField(field, data)
                    }
                }
            }
        }
        XCTAssertEqual(compare(tensor(packedInts, F.Tensor.int64Data), "packed int64"), ONNX_FUSE_OK)
        var truncated = packedInts
        truncated.append(0x80)
        XCTAssertEqual(compare(tensor(truncated, F.Tensor.int64Data), "truncated last varint"), ONNX_FUSE_INVALID)
        var tooLong = packedInts
        tooLong.insert(contentsOf: [UInt8](repeating: 0xff, count: 10) + [0], at: 2 << 20)
        XCTAssertEqual(compare(tensor(tooLong, F.Tensor.int64Data), "11-byte varint"), ONNX_FUSE_INVALID)
        // Packed floats: 50 MB, and a length that is no multiple of 4 (refused unread).
        var floats = [UInt8](repeating: 0, count: 50 << 20)
        floats.withUnsafeMutableBytes { raw in
            let f = raw.bindMemory(to: UInt32.self)
            for i in stride(from: 0, to: f.count, by: 997) { f[i] = UInt32(truncatingIfNeeded: i) }
        }
        let big = tensor(floats, F.Tensor.floatData)
        let memory = Load(big, checkFile: false)
        let fromFile = FileLoad(big)
        assertSameLoad(memory, fromFile, packs: false, "50 MB of float_data")
        if fromFile.status == ONNX_FUSE_OK {
            let t = fromFile.model.pointee.graph.pointee.initializer[0]!.pointee
            XCTAssertEqual(t.n_float_data, 50 << 18)
            XCTAssertEqual(memcmp(t.float_data, memory.model.pointee.graph.pointee.initializer[0]!.pointee.float_data,
                                  50 << 20), 0)
        }
        floats.removeLast(1)
        XCTAssertEqual(compare(tensor(floats, F.Tensor.floatData), "floats of 50 MB - 1"), ONNX_FUSE_INVALID)
    }

    /// A field of 2^31 bytes is refused (protobuf-c cannot read it) after the same checks,
    /// read chunk by chunk through the window: in a sparse file, so nothing big is written.
    func testFieldsTooLargeForProtobufC() throws {
        let length = 1 << 31
        /// A sparse file: `header`, then `content` right after it, holes up to the end.
        func check(_ header: [UInt8], _ content: [UInt8], expect status: onnx_fuse_status, _ name: String,
                   maxRead: UInt64? = nil) throws {
            let fd = makeTemporaryFile()
            let count = header.count + length
            guard ftruncate(fd, off_t(count)) == 0 else {
                close(fd)
                throw XCTSkip("no room for a sparse file of \(count) bytes: errno \(errno)")
            }
            let bytes = header + content
            XCTAssertEqual(bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }, bytes.count)
            let input = MappedInput(fd: fd, count: count, mapping: .file)
            var memoryLoaded = onnx_fuse_loaded()
            var memoryError = onnx_fuse_error()
            let memoryStatus = onnx_fuse_load(input.bytes, count, nil, &memoryLoaded, &memoryError)
            var fileLoad: FileLoad?
            let reads = readsDuring { fileLoad = FileLoad(input) }
            let fromFile = fileLoad!
            XCTAssertEqual(memoryStatus, status, "\(name): \(cString(memoryError.message))")
            XCTAssertEqual(fromFile.status, memoryStatus, "\(name): \(fromFile.summary)")
            XCTAssertEqual(fromFile.error.offset, memoryError.offset, name)
            XCTAssertEqual(fromFile.path, cString(memoryError.path), name)
            XCTAssertEqual(fromFile.errorMessage, cString(memoryError.message), name)
            if let maxRead, let reads {
                XCTAssertLessThanOrEqual(reads.bytes, maxRead, "\(name): read \(reads.bytes) bytes")
            }
        }
        func key(_ field: UInt64, _ wireType: UInt64) -> [UInt8] { var w = Wire(); w.key(field, wireType); return w.bytes }
        func varint(_ v: Int) -> [UInt8] { var w = Wire(); w.varint(UInt64(v)); return w.bytes }

        // A string: checked until its first bad byte, far beyond one window.
        var euros: [UInt8] = []
        for _ in 0..<233_334 { euros += [0xe2, 0x82, 0xac] }
        let string = key(F.Model.producerName, 2) + varint(length)
        try check(string, euros, expect: ONNX_FUSE_INVALID, "NUL in a huge string")
        try check(string, euros + [0xe2, 0x28, 0xa1], expect: ONNX_FUSE_INVALID, "bad UTF-8 in a huge string")
        try check(string, [0x41], expect: ONNX_FUSE_INVALID, "NUL at the start of a huge string")
        // Unknown and bytes fields are not checked: refused without reading them.
        try check(key(4242, 2) + varint(length), euros, expect: ONNX_FUSE_LIMIT, "huge unknown field",
                  maxRead: 64 << 10)
        // Packed varints inside a tensor inside the graph: the enclosing lengths cover them.
        func inTensor(_ field: UInt64) -> [UInt8] {
            let inner = key(field, 2) + varint(length)
            let tensor = key(F.Graph.initializer, 2) + varint(inner.count + length) + inner
            return key(F.Model.graph, 2) + varint(tensor.count + length) + tensor
        }
        var threeByteVarints: [UInt8] = []
        for _ in 0..<233_334 { threeByteVarints += [0x81, 0x81, 0x01] }
        try check(inTensor(F.Tensor.int64Data), threeByteVarints + [UInt8](repeating: 0x80, count: 11),
                  expect: ONNX_FUSE_INVALID, "11-byte varint in huge packed int64_data")
        // Packed floats of a whole number of values: refused unread.
        try check(inTensor(F.Tensor.floatData), [], expect: ONNX_FUSE_LIMIT, "huge packed floats", maxRead: 64 << 10)
    }

    // MARK: what is read, and from where

    /// raw_data points into the mapping passed, not at bytes read from the file: here the
    /// mapping has the payloads zeroed and the file has them.
    func testPayloadsPointIntoTheMapping() {
        let bytes = weightsModel(tensors: 6, payloadSize: 100_000)
        let ranges = payloadRanges(bytes)
        XCTAssertEqual(ranges.count, 6)
        let zeroed = replacing(ranges, in: bytes) { _ in 0 }
        let fromFile = FileLoad(MappedInput(file: bytes, mapping: .bytes(zeroed)))
        XCTAssertEqual(fromFile.status, ONNX_FUSE_OK, fromFile.summary)
        // The same as loading the zeroed bytes from memory: offsets, tree and zero payloads.
        assertSameLoad(Load(zeroed, checkFile: false), fromFile, "payloads zeroed in the mapping")
        for t in allTensors(fromFile.message) where t.pointee.raw_data.len > 0 {
            XCTAssertTrue(fromFile.input.contains(t.pointee.raw_data.data!, length: t.pointee.raw_data.len))
            XCTAssertTrue(rawData(t).allSatisfy { $0 == 0 }, tensorName(t))
        }
    }

    /// The file's payload bytes do not matter and are not read: garbage there (bytes that
    /// would be invalid structure if they were parsed) changes nothing, and the reads done
    /// during the load add up to the structure bytes and a little read-ahead, not the
    /// payloads.
    func testPayloadsOfTheFileAreNotRead() throws {
        let bytes = weightsModel(tensors: 16, payloadSize: 1 << 20)
        let ranges = payloadRanges(bytes)
        let payloadBytes = ranges.reduce(0) { $0 + $1.count }
        let structureBytes = bytes.count - payloadBytes
        let garbage = replacing(ranges, in: bytes) { i in UInt8(truncatingIfNeeded: i &* 131) | 0x80 }
        let input = MappedInput(file: garbage, mapping: .bytes(bytes))
        var fileLoad: FileLoad?
        let reads = readsDuring { fileLoad = FileLoad(input) }
        let fromFile = fileLoad!
        XCTAssertEqual(fromFile.status, ONNX_FUSE_OK, fromFile.summary)
        XCTAssertEqual(Int(fromFile.loaded.lifted_bytes), payloadBytes)
        // The tree of the real bytes, payloads from the mapping.
        assertSameLoad(Load(bytes, checkFile: false), fromFile, "garbage payloads in the file")
        guard let reads else { throw XCTSkip("no /proc/thread-self/io here") }
        print("testPayloadsOfTheFileAreNotRead: \(bytes.count)-byte file, \(structureBytes) structure bytes, "
              + "\(ranges.count) payloads: read \(reads.bytes) bytes in \(reads.calls) calls")
        // Each payload may lose at most one small read-ahead (512 bytes after the jump over
        // the one before, 1 KiB for the first); nothing like the 16 MiB of payloads.
        XCTAssertLessThanOrEqual(reads.bytes, UInt64(structureBytes + (ranges.count + 1) * 1_024))
        XCTAssertLessThanOrEqual(reads.calls, UInt64(2 * ranges.count + 4))
    }

    /// The strict form for the last payload: a file that ends where it starts loads (with a
    /// mapping that has it), so no byte of it is needed, not even to finish the varint
    /// before it; one byte less is an I/O error. The header grows byte by byte so that the
    /// window's first reads end inside and around that varint.
    func testTheLastPayloadNeedNotBeInTheFile() {
        let payloadSize = 5_000
        let lastPayload = payload(payloadSize, seed: 9)
        for pad in 0..<700 {
            let bytes = Wire { m in
                m.varintField(F.Model.irVersion, 8)
                m.messageField(F.Model.graph) { g in
                    g.messageField(F.Graph.node) { n in n.stringField(F.Node.opType, "Relu") }
                    g.messageField(F.Graph.initializer) { t in
                        t.stringField(F.Tensor.name, "w" + String(repeating: "x", count: pad))
                        t.bytesField(F.Tensor.rawData, lastPayload)
                    }
                }
            }.bytes
            let start = bytes.count - payloadSize
            if pad == 0 { XCTAssertEqual(payloadRanges(bytes), [start..<bytes.count]) }
            let memory = Load(bytes, checkFile: false)
            let withoutPayload = FileLoad(MappedInput(file: Array(bytes[0..<start]), mapping: .bytes(bytes),
                                                      count: bytes.count))
            assertSameLoad(memory, withoutPayload, "file without the last payload, pad \(pad)")

            let short = FileLoad(MappedInput(file: Array(bytes[0..<start - 1]), mapping: .inaccessible,
                                             count: bytes.count))
            XCTAssertEqual(short.status, ONNX_FUSE_IO, short.summary)
            XCTAssertEqual(short.error.sys_errno, EIO)
            XCTAssertEqual(short.error.offset, UInt64(start - 1))
            XCTAssertEqual(short.path, "ModelProto.graph.initializer[0].raw_data")
            XCTAssertEqual(short.errorMessage, "the file ends before byte \(start - 1) of the \(bytes.count) bytes "
                           + "it was said to hold (it changed while loading)")
            XCTAssertNil(short.loaded.model)
            XCTAssertNil(short.loaded.arena)
        }
    }

    /// The mapping is never read: an inaccessible one (any read of it would crash) works,
    /// and raw_data points into it at the payloads' offsets.
    func testTheMappingIsNeverRead() {
        for bytes in [weightsModel(tensors: 5, payloadSize: 300_000), structuredModel(nodes: 400), RichModel().bytes] {
            let memory = Load(bytes, checkFile: false)
            XCTAssertEqual(memory.status, ONNX_FUSE_OK)
            let fromFile = FileLoad(MappedInput(file: bytes, mapping: .inaccessible))
            XCTAssertEqual(fromFile.status, ONNX_FUSE_OK, fromFile.summary)
            XCTAssertEqual(fromFile.loaded.message_count, memory.loaded.message_count)
            XCTAssertEqual(fromFile.loaded.lifted_count, memory.loaded.lifted_count)
            XCTAssertEqual(fromFile.rawDataOffsets, rawDataOffsets(memory.message, base: memory.input.pointer, liftMin: memory.liftMin))
            XCTAssertEqual(rawDataLengths(fromFile.message), rawDataLengths(memory.message))
            // Invalid inputs fail the same way, still without reading the mapping.
            let cut = Array(bytes.dropLast(1))
            let memoryCut = Load(cut, checkFile: false)
            let fileCut = FileLoad(MappedInput(file: cut, mapping: .inaccessible))
            XCTAssertEqual(fileCut.summary, memoryCut.summary)
        }
    }

    /// What onnx_fuse_load_fd is for: with a real file mapping, no page of it is mapped
    /// into the process by the load (onnx_fuse_load, touching the structure bytes between
    /// the weights, maps some).
    func testNoPageOfTheMappingIsMappedIn() throws {
        let bytes = weightsModel(tensors: 8, payloadSize: 1 << 20)
        let input = MappedInput(file: bytes)
        guard let before = residentKiB(of: input) else { throw XCTSkip("no /proc/self/smaps here") }
        XCTAssertEqual(before, 0)
        let fromFile = FileLoad(input)
        XCTAssertEqual(fromFile.status, ONNX_FUSE_OK, fromFile.summary)
        XCTAssertEqual(fromFile.loaded.lifted_count, 8)
        XCTAssertEqual(residentKiB(of: input), 0, "onnx_fuse_load_fd mapped pages of the mapping in")
        // The measurement works: the memory path over the same mapping maps pages in.
        var loaded = onnx_fuse_loaded()
        var error = onnx_fuse_error()
        XCTAssertEqual(onnx_fuse_load(input.bytes, input.count, nil, &loaded, &error), ONNX_FUSE_OK)
        onnx_fuse_arena_destroy(loaded.arena)
        XCTAssertGreaterThan(residentKiB(of: input) ?? 0, 0)
    }

    /// The Rss of the mapping of `input` in /proc/self/smaps.
    private func residentKiB(of input: MappedInput) -> Int? {
        // /proc files report a size of 0: read until the end.
        let fd = open("/proc/self/smaps", O_RDONLY)
        guard let base = input.base, fd >= 0 else { return nil }
        defer { close(fd) }
        var contents: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            contents += chunk[0..<n]
        }
        let smaps = String(decoding: contents, as: UTF8.self)
        let start = String(UInt(bitPattern: base), radix: 16)
        var inMapping = false
        for line in smaps.split(separator: "\n") {
            if let dash = line.firstIndex(of: "-"), line[..<dash].allSatisfy(\.isHexDigit) {
                inMapping = line[..<dash].drop(while: { $0 == "0" }) == start[...]
            } else if inMapping, line.hasPrefix("Rss:") {
                return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
            }
        }
        return nil
    }

    // MARK: read errors

    func testReadErrors() {
        let bytes = structuredModel(nodes: 20)
        // A closed descriptor.
        let input = MappedInput(file: bytes)
        let closed = makeTemporaryFile()
        close(closed)
        let load = FileLoad(input, fd: closed)
        XCTAssertEqual(load.status, ONNX_FUSE_IO, load.summary)
        XCTAssertEqual(load.error.status, ONNX_FUSE_IO)
        XCTAssertEqual(load.error.sys_errno, EBADF)
        XCTAssertEqual(load.error.offset, 0)
        XCTAssertEqual(load.path, "ModelProto")
        XCTAssertTrue(load.errorMessage.hasPrefix("read failed at byte 0: "), load.errorMessage)
        XCTAssertNil(load.loaded.model)
        XCTAssertNil(load.loaded.arena)
        XCTAssertEqual(FileLoad(input, fd: -1).error.sys_errno, EBADF)
        // A descriptor open for writing only, and a directory.
        let writeOnly = open("/dev/null", O_WRONLY)
        defer { close(writeOnly) }
        XCTAssertEqual(FileLoad(input, fd: writeOnly).error.sys_errno, EBADF)
        let directory = open(NSTemporaryDirectory(), O_RDONLY | O_DIRECTORY)
        defer { close(directory) }
        let fromDirectory = FileLoad(input, fd: directory)
        XCTAssertEqual(fromDirectory.status, ONNX_FUSE_IO)
        XCTAssertEqual(fromDirectory.error.sys_errno, EISDIR)
        // Nothing to read: nothing fails.
        let empty = FileLoad(input, fd: closed, count: 0)
        XCTAssertEqual(empty.status, ONNX_FUSE_OK, empty.summary)
    }

    /// A file shorter than the length given (it shrank after it was mapped) is an I/O
    /// error wherever it ends, never a crash or a read of the mapping.
    func testFileShorterThanTheLengthGiven() {
        let bytes = structuredModel(nodes: 200, payloadSizes: [0, 3, 70_000, 100, 9_000])
        var rng = SplitMix64(seed: 7)
        var cuts = [0, 1, bytes.count - 1]
        for _ in 0..<150 { cuts.append(Int.random(in: 0..<bytes.count, using: &rng)) }
        var statuses: [UInt32: Int] = [:]
        for cut in cuts {
            let load = FileLoad(MappedInput(file: Array(bytes[0..<cut]), mapping: .inaccessible, count: bytes.count))
            statuses[load.status.rawValue, default: 0] += 1
            if load.status == ONNX_FUSE_IO {
                XCTAssertEqual(load.error.sys_errno, EIO, "cut at \(cut)")
                XCTAssertGreaterThanOrEqual(load.error.offset, UInt64(cut), "cut at \(cut)")
                XCTAssertTrue(load.errorMessage.hasPrefix(
                    "the file ends before byte \(load.error.offset) of the \(bytes.count) bytes"),
                              "cut at \(cut): \(load.summary)")
                XCTAssertNil(load.loaded.model)
            } else {
                // Only a cut inside a payload that nothing after it needs can load.
                XCTAssertEqual(load.status, ONNX_FUSE_OK, "cut at \(cut): \(load.summary)")
            }
        }
        XCTAssertGreaterThan(statuses[ONNX_FUSE_IO.rawValue, default: 0], 100)
    }

    func testEmptyAndMissingInput() {
        var loaded = onnx_fuse_loaded()
        var error = onnx_fuse_error()
        XCTAssertEqual(onnx_fuse_load_fd(-1, nil, 0, nil, &loaded, &error), ONNX_FUSE_OK)
        XCTAssertEqual(loaded.message_count, 1)
        onnx_fuse_arena_destroy(loaded.arena)
        XCTAssertEqual(onnx_fuse_load_fd(-1, nil, 10, nil, &loaded, &error), ONNX_FUSE_INVALID)
        XCTAssertEqual(cString(error.message), "no input bytes")
        XCTAssertNil(loaded.model)
        XCTAssertEqual(onnx_fuse_load_fd(-1, nil, 0, nil, nil, &error), ONNX_FUSE_INVALID)
        XCTAssertEqual(cString(error.message), "no place for the result")
        XCTAssertEqual(onnx_fuse_load_fd(-1, nil, 0, nil, &loaded, nil), ONNX_FUSE_OK)
        onnx_fuse_arena_destroy(loaded.arena)
    }

    /// Structure-heavy models read in few, large reads; weights are skipped.
    func testReadsAreFewAndLarge() throws {
        let bytes = structuredModel(nodes: 6_000, payloadSizes: [0, 3, 9])
        let input = MappedInput(file: bytes)
        var fileLoad: FileLoad?
        guard let reads = readsDuring({ fileLoad = FileLoad(input) }) else {
            throw XCTSkip("no /proc/thread-self/io here")
        }
        XCTAssertEqual(fileLoad!.status, ONNX_FUSE_OK, fileLoad!.summary)
        print("testReadsAreFewAndLarge: \(bytes.count) bytes read as \(reads.bytes) bytes in \(reads.calls) calls")
        XCTAssertEqual(reads.bytes, UInt64(bytes.count)) // every byte once
        // 512 bytes doubling up to 256 KiB: ten reads for the first 512 KiB.
        XCTAssertLessThanOrEqual(reads.calls, UInt64(bytes.count / (256 << 10) + 12))
    }
}
