// Helpers for onnx_fuse_load_fd: inputs in temporary files with a mapping beside them, the
// outcome of a load from a file, and the comparison with onnx_fuse_load on the same bytes.
import CONNX
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file open for reading and `count` bytes mapped for onnx_fuse_load_fd. By default the
/// mapping is the file itself; tests that check what is read from where pass another one.
final class MappedInput {
    enum Mapping {
        /// A read-only shared mapping of the file, as callers are meant to pass.
        case file
        /// A read-only anonymous mapping holding these bytes (the same count as the file's).
        case bytes([UInt8])
        /// An anonymous mapping that cannot be read at all: a read of it crashes.
        case inaccessible
    }

    let fd: Int32
    let base: UnsafeMutableRawPointer?
    let count: Int

    /// `fileBytes` in a new temporary file, removed at once (the descriptor keeps it), and
    /// `count` bytes mapped (default: as many as the file holds).
    convenience init(file fileBytes: [UInt8], mapping: Mapping = .file, count: Int? = nil) {
        let fd = makeTemporaryFile()
        fileBytes.withUnsafeBytes { precondition(onnx_fuse_write_all(fd, $0.baseAddress, $0.count) == 0) }
        self.init(fd: fd, count: count ?? fileBytes.count, mapping: mapping)
    }

    /// An existing file, mapped whole.
    convenience init(path: String) {
        let fd = open(path, O_RDONLY)
        precondition(fd >= 0, "cannot open \(path)")
        var st = stat()
        precondition(fstat(fd, &st) == 0)
        self.init(fd: fd, count: Int(st.st_size), mapping: .file)
    }

    /// Takes `fd` (closed on deinit) and maps `count` bytes as `mapping` says.
    init(fd: Int32, count: Int, mapping: Mapping) {
        self.fd = fd
        self.count = count
        guard count > 0 else {
            base = nil // mmap refuses a length of 0; onnx_fuse_load_fd takes NULL
            return
        }
        let failed = UnsafeMutableRawPointer(bitPattern: -1)
        var p: UnsafeMutableRawPointer?
        switch mapping {
        case .file:
            p = mmap(nil, count, PROT_READ, MAP_SHARED, fd, 0)
        case .bytes(let bytes):
            precondition(bytes.count == count)
            p = mmap(nil, count, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            precondition(p != failed)
            bytes.withUnsafeBytes { p!.copyMemory(from: $0.baseAddress!, byteCount: count) }
            precondition(mprotect(p, count, PROT_READ) == 0)
        case .inaccessible:
            p = mmap(nil, count, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        }
        precondition(p != nil && p != failed, "mmap failed: errno \(errno)")
        base = p
    }

    deinit {
        if let base { munmap(base, count) }
        if fd >= 0 { close(fd) }
    }

    var bytes: UnsafePointer<UInt8>? { base.map { UnsafePointer($0.assumingMemoryBound(to: UInt8.self)) } }

    func contains(_ p: UnsafeRawPointer, length: Int) -> Bool {
        guard let base else { return false }
        let start = UnsafeRawPointer(base)
        return p >= start && length <= count && p <= start + (count - length)
    }
}

/// A new temporary file, open for reading and writing, already unlinked.
func makeTemporaryFile() -> Int32 {
    var template = Array((NSTemporaryDirectory() + "/onnx-fuse-load-XXXXXX").utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    precondition(fd >= 0, "mkstemp failed: errno \(errno)")
    template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
    return fd
}

/// The outcome of onnx_fuse_load_fd; destroys the arena when released.
final class FileLoad: LoadOutcome {
    let input: MappedInput
    let liftMin: Int
    let status: onnx_fuse_status
    var loaded = onnx_fuse_loaded()
    var error = onnx_fuse_error()

    /// Loads `input` (its descriptor and mapping); `fd` and `count` override them.
    init(_ input: MappedInput, maxDepth: Int = 100, budget: Int = .max, liftMin: Int = 0, fd: Int32? = nil, count: Int? = nil) {
        self.input = input
        self.liftMin = liftMin
        var limits = onnx_fuse_load_limits(max_depth: maxDepth, unpack_budget: budget, unpack_budget_per_byte: 0, lift_min: liftMin)
        status = onnx_fuse_load_fd(fd ?? input.fd, input.bytes, count ?? input.count, &limits, &loaded, &error)
    }

    convenience init(_ bytes: [UInt8], maxDepth: Int = 100, budget: Int = .max, liftMin: Int = 0) {
        self.init(MappedInput(file: bytes), maxDepth: maxDepth, budget: budget, liftMin: liftMin)
    }

    deinit { onnx_fuse_arena_destroy(loaded.arena) }


    /// Offsets of the lifted raw_data payloads in the mapping, in tree order.
    var rawDataOffsets: [Int?] { CONNXTests.rawDataOffsets(message, base: input.base, liftMin: liftMin) }
}

/// The offset from `base` of every tensor's raw_data in tree order: nil for an empty or
/// missing one, and for one below `liftMin` (copied, not lifted).
func rawDataOffsets(_ root: UnsafeMutablePointer<ProtobufCMessage>, base: UnsafeRawPointer?, liftMin: Int) -> [Int?] {
    allTensors(root).map { t in
        let bd = t.pointee.raw_data
        guard t.pointee.has_raw_data != 0, bd.len > 0, bd.len >= liftMin, let data = bd.data, let base else { return nil }
        return UnsafeRawPointer(data) - base
    }
}

/// The lengths of every tensor's raw_data in tree order (-1: has_raw_data not set).
func rawDataLengths(_ root: UnsafeMutablePointer<ProtobufCMessage>) -> [Int] {
    allTensors(root).map { $0.pointee.has_raw_data != 0 ? $0.pointee.raw_data.len : -1 }
}

/// onnx_fuse_load_fd gave what onnx_fuse_load gave on the same bytes: the same status and
/// error (offset, path, message), and on success the same counts, the same packed bytes and
/// every lifted raw_data at the same offset of its input. `packs` false skips packing (which
/// reads every payload).
func assertSameLoad(_ memory: Load, _ file: FileLoad, packs: Bool = true,
                    _ context: @autoclosure () -> String = "",
                    file sourceFile: StaticString = #filePath, line: UInt = #line) {
    let what = "\(context()) [memory: \(memory.summary)] [file: \(file.summary)]"
    XCTAssertEqual(file.status, memory.status, what, file: sourceFile, line: line)
    XCTAssertEqual(file.error.status, memory.error.status, what, file: sourceFile, line: line)
    XCTAssertEqual(file.error.offset, memory.error.offset, what, file: sourceFile, line: line)
    XCTAssertEqual(file.path, memory.path, what, file: sourceFile, line: line)
    XCTAssertEqual(file.errorMessage, memory.errorMessage, what, file: sourceFile, line: line)
    XCTAssertEqual(file.error.sys_errno, memory.error.sys_errno, what, file: sourceFile, line: line)
    guard file.status == memory.status else { return }
    guard memory.status == ONNX_FUSE_OK else {
        XCTAssertNil(file.loaded.model, what, file: sourceFile, line: line)
        XCTAssertNil(file.loaded.arena, what, file: sourceFile, line: line)
        return
    }
    XCTAssertEqual(file.loaded.message_count, memory.loaded.message_count, what, file: sourceFile, line: line)
    XCTAssertEqual(file.loaded.lifted_count, memory.loaded.lifted_count, what, file: sourceFile, line: line)
    XCTAssertEqual(file.loaded.lifted_bytes, memory.loaded.lifted_bytes, what, file: sourceFile, line: line)
    XCTAssertEqual(rawDataLengths(file.message), rawDataLengths(memory.message), what, file: sourceFile, line: line)
    XCTAssertEqual(file.rawDataOffsets, rawDataOffsets(memory.message, base: memory.input.pointer, liftMin: memory.liftMin), what,
                   file: sourceFile, line: line)
    for t in allTensors(file.message) where t.pointee.raw_data.len > 0 {
        // Lifted payloads point into the mapping; smaller ones were copied.
        let lifted = t.pointee.raw_data.len >= file.liftMin
        XCTAssertEqual(file.input.contains(t.pointee.raw_data.data!, length: t.pointee.raw_data.len), lifted,
                       "raw_data \(lifted ? "outside" : "inside") the mapping \(what)", file: sourceFile, line: line)
    }
    if packs {
        XCTAssertTrue(pack(file.message) == pack(memory.message), "packed trees differ \(what)",
                      file: sourceFile, line: line)
    }
}

/// This thread's read accounting (/proc/thread-self/io): bytes passed to read-like calls and
/// their number. nil where the file does not exist.
func threadReadCounters() -> (bytes: UInt64, calls: UInt64)? {
    let fd = open("/proc/thread-self/io", O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 1024)
    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    guard n > 0 else { return nil }
    var bytes: UInt64?, calls: UInt64?
    for line in String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n") {
        let parts = line.split(separator: ":")
        guard parts.count == 2, let v = UInt64(parts[1].trimmingCharacters(in: .whitespaces)) else { continue }
        if parts[0] == "rchar" { bytes = v }
        if parts[0] == "syscr" { calls = v }
    }
    guard let bytes, let calls else { return nil }
    return (bytes, calls)
}

/// Reads done by `body` on this thread, less those of the measurement itself.
func readsDuring(_ body: () -> Void) -> (bytes: UInt64, calls: UInt64)? {
    guard let a = threadReadCounters(), let b = threadReadCounters() else { return nil }
    let overhead = (bytes: b.bytes - a.bytes, calls: b.calls - a.calls)
    guard let before = threadReadCounters() else { return nil }
    body()
    guard let after = threadReadCounters() else { return nil }
    return (after.bytes - before.bytes - overhead.bytes, after.calls - before.calls - overhead.calls)
}
