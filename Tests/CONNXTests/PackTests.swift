// Saving: onnx_fuse_pack_to_fd, onnx_fuse_write_all, onnx_fuse_packed_size.
import CONNX
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

final class PackTests: XCTestCase {
    private var paths: [String] = []

    override func tearDown() {
        for path in paths { unlink(path) }
        paths = []
        super.tearDown()
    }

    /// A new empty temporary file, open for writing.
    private func tempFile() -> (fd: Int32, path: String) {
        var template = Array((NSTemporaryDirectory() + "/onnx-fuse-pack-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        XCTAssertGreaterThanOrEqual(fd, 0)
        let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        paths.append(path)
        return (fd, path)
    }

    private func contents(_ path: String) -> [UInt8] {
        [UInt8](FileManager.default.contents(atPath: path) ?? Data())
    }

    private func packToFile(_ message: UnsafeMutablePointer<ProtobufCMessage>) -> [UInt8] {
        let (fd, path) = tempFile()
        var written: UInt64 = 0
        var error = onnx_fuse_error()
        let status = onnx_fuse_pack_to_fd(message, fd, &written, &error)
        XCTAssertEqual(status, ONNX_FUSE_OK, cString(error.message))
        XCTAssertEqual(close(fd), 0)
        XCTAssertEqual(Int(written), onnx_fuse_packed_size(message))
        return contents(path)
    }

    func testPackToFdReproducesTheBytes() {
        let bytes = canonical(RichModel().bytes)
        let load = Load(bytes)
        XCTAssertEqual(load.status, ONNX_FUSE_OK, load.summary)
        XCTAssertEqual(packToFile(load.message), bytes)
    }

    func testPackToFdWithLargePayloadsWrittenDirectly() {
        // Payloads around and above the direct-write threshold and the buffer size, mixed
        // with small fields, so that order across flushes and direct writes matters.
        var model = RichModel()
        model.payloads["w"] = payload(3 << 20, seed: 11)
        model.payloads["w2"] = payload(256 << 10, seed: 12)
        model.payloads["sub_init"] = payload((256 << 10) - 1, seed: 13)
        model.payloads["attr_t"] = payload(1 << 20, seed: 14)
        let bytes = canonical(model.bytes)
        let load = Load(bytes)
        XCTAssertEqual(load.status, ONNX_FUSE_OK, load.summary)
        XCTAssertEqual(load.loaded.lifted_bytes, model.liftedBytes)
        XCTAssertEqual(packToFile(load.message), bytes)
    }

    func testManySmallAppendsCrossTheBuffer() {
        // About 2.8 MB of small fields: several buffer flushes.
        let bytes = canonical(Wire { m in
            m.messageField(F.Model.graph) { g in
                for i in 0..<120_000 {
                    g.messageField(F.Graph.node) { n in
                        n.stringField(F.Node.name, "node\(i)")
                        n.stringField(F.Node.opType, "Identity")
                    }
                }
            }
        }.bytes)
        XCTAssertGreaterThan(bytes.count, 2 << 20)
        let load = Load(bytes, budget: 1 << 30)
        XCTAssertEqual(load.status, ONNX_FUSE_OK, load.summary)
        XCTAssertEqual(packToFile(load.message), bytes)
    }

    func testPackToInvalidFdIsAnIOError() {
        let load = Load(RichModel().bytes)
        XCTAssertEqual(load.status, ONNX_FUSE_OK)
        var written: UInt64 = 99
        var error = onnx_fuse_error()
        XCTAssertEqual(onnx_fuse_pack_to_fd(load.message, -1, &written, &error), ONNX_FUSE_IO)
        XCTAssertEqual(error.status, ONNX_FUSE_IO)
        XCTAssertEqual(error.sys_errno, EBADF)
        XCTAssertEqual(written, 0)
        XCTAssertFalse(cString(error.message).isEmpty)

        let (fd, _) = tempFile()
        XCTAssertEqual(close(fd), 0)
        XCTAssertEqual(onnx_fuse_pack_to_fd(load.message, fd, &written, &error), ONNX_FUSE_IO)
        XCTAssertEqual(error.sys_errno, EBADF)
    }

    func testPackToReadOnlyFdIsAnIOError() {
        let (fd, path) = tempFile()
        close(fd)
        let readOnly = open(path, O_RDONLY)
        XCTAssertGreaterThanOrEqual(readOnly, 0)
        defer { close(readOnly) }
        let load = Load(RichModel().bytes)
        var error = onnx_fuse_error()
        XCTAssertEqual(onnx_fuse_pack_to_fd(load.message, readOnly, nil, &error), ONNX_FUSE_IO)
        XCTAssertEqual(error.sys_errno, EBADF)
    }

    func testPackToAFullDeviceIsAnIOError() throws {
        let fd = open("/dev/full", O_WRONLY)
        guard fd >= 0 else { throw XCTSkip("no /dev/full here") }
        defer { close(fd) }
        let load = Load(RichModel().bytes)
        var written: UInt64 = 0
        var error = onnx_fuse_error()
        XCTAssertEqual(onnx_fuse_pack_to_fd(load.message, fd, &written, &error), ONNX_FUSE_IO)
        XCTAssertEqual(error.sys_errno, ENOSPC)
        XCTAssertEqual(written, 0)
    }

    func testWriteAll() {
        let (fd, path) = tempFile()
        let data = payload(5 << 20, seed: 3)
        let result = data.withUnsafeBytes { onnx_fuse_write_all(fd, $0.baseAddress, $0.count) }
        XCTAssertEqual(result, 0)
        XCTAssertEqual(onnx_fuse_write_all(fd, nil, 0), 0)
        close(fd)
        XCTAssertEqual(contents(path), data)
        XCTAssertEqual(onnx_fuse_write_all(-1, data, 1), EBADF)
    }

    func testWriteAllThroughAPipe() {
        // Much more than a pipe holds, with a reader draining it concurrently.
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        let data = payload(3 << 20, seed: 5)
        let readFd = fds[0]
        let box = ReceivedBox()
        let reader = Thread {
            var received = [UInt8]()
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(readFd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                received += chunk[0..<n]
            }
            close(readFd)
            box.set(received)
        }
        reader.start()
        let result = data.withUnsafeBytes { onnx_fuse_write_all(fds[1], $0.baseAddress, $0.count) }
        XCTAssertEqual(result, 0)
        close(fds[1])
        let deadline = Date().addingTimeInterval(30)
        while box.get() == nil && Date() < deadline { usleep(1000) }
        XCTAssertEqual(box.get(), data)
    }

    func testPackedSize() {
        let bytes = canonical(RichModel().bytes)
        let load = Load(bytes)
        XCTAssertEqual(onnx_fuse_packed_size(load.message), bytes.count)
    }
}

/// Hands the pipe reader's bytes to the test thread.
final class ReceivedBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: [UInt8]?
    func set(_ v: [UInt8]) { lock.lock(); value = v; lock.unlock() }
    func get() -> [UInt8]? { lock.lock(); defer { lock.unlock() }; return value }
}
