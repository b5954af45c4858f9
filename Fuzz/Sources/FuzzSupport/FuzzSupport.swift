// What both fuzz targets share: a private scratch folder, writing the input to a file, and the
// save-and-reload check.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
@_exported import ONNXFuse
@_exported import ONNXFuseOps
@_exported import ONNXFuseRules

/// Stops the process with `message`: libFuzzer records the input as a crash. Only for bugs of
/// onnx-fuse, never for errors that a bad input is expected to cause.
public func finding(_ message: String) -> Never {
    fatalError("onnx-fuse-fuzz: finding: " + message)
}

/// A folder of this process's own, in memory where possible (`/dev/shm`), else under `$TMPDIR`
/// or `/tmp`; removed at exit, or by a later process when this one crashed.
public let scratchFolder: String = {
    var parents: [String] = []
    if let shm = opendir("/dev/shm") {
        closedir(shm)
        parents.append("/dev/shm")
    }
    if let tmp = getenv("TMPDIR") { parents.append(String(cString: tmp)) }
    parents.append("/tmp")
    for parent in parents {
        removeStaleFolders(in: parent)
        var template = Array((parent + "/onnx-fuse-fuzz-\(getpid())-XXXXXX").utf8CString)
        if let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) {
            let path = String(cString: made)
            scratchToRemove = path
            atexit {
                // libFuzzer exits through exit() after a run, -runs or a timeout.
                if let folder = scratchToRemove { removeFolder(folder) }
            }
            return path
        }
    }
    fatalError("onnx-fuse-fuzz: cannot create a scratch folder")
}()

nonisolated(unsafe) private var scratchToRemove: String?

/// The names in the folder at `path` (without `.` and `..`).
private func entries(of path: String) -> [String] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// Removes a scratch folder (it holds files only).
private func removeFolder(_ path: String) {
    for name in entries(of: path) { unlink(path + "/" + name) }
    rmdir(path)
}

/// Removes the scratch folders of processes that no longer run (a crash skips atexit).
private func removeStaleFolders(in parent: String) {
    for name in entries(of: parent) where name.hasPrefix("onnx-fuse-fuzz-") {
        let parts = name.split(separator: "-")
        guard parts.count == 5, let pid = pid_t(parts[3]) else { continue }
        if kill(pid, 0) != 0 && errno == ESRCH { removeFolder(parent + "/" + name) }
    }
}

/// The repository's fixtures/ folder: `$ONNX_FUSE_FUZZ_FIXTURES` (scripts/fuzz sets it), else
/// found from this source file's place in the repository.
public let fixturesFolder: String = {
    if let set = getenv("ONNX_FUSE_FUZZ_FIXTURES") { return String(cString: set) }
    var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(4) // Fuzz/Sources/FuzzSupport/FuzzSupport.swift
    return parts.joined(separator: "/") + "/fixtures"
}()

/// Copies the file at `source` to `path` (for data files that inputs may name).
public func copyFile(_ source: String, to path: String) {
    let fd = open(source, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
        fatalError("onnx-fuse-fuzz: cannot open \(source) (set ONNX_FUSE_FUZZ_FIXTURES to the fixtures folder): errno \(errno)")
    }
    defer { close(fd) }
    var contents: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n >= 0 else { fatalError("onnx-fuse-fuzz: cannot read \(source): errno \(errno)") }
        if n == 0 { break }
        contents += buffer[0..<n]
    }
    contents.withUnsafeBytes { writeFile(path, $0) }
}

/// Writes `bytes` to a new file at `path` (a new inode: a mapping of an earlier file stays valid).
public func writeFile(_ path: String, _ bytes: UnsafeRawBufferPointer) {
    unlink(path)
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard fd >= 0 else { fatalError("onnx-fuse-fuzz: cannot create \(path): errno \(errno)") }
    var offset = 0
    while offset < bytes.count {
        let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        guard n > 0 else { fatalError("onnx-fuse-fuzz: cannot write \(path): errno \(errno)") }
        offset += n
    }
    close(fd)
}

/// Removes every file a previous input may have left in the scratch folder, so that each input
/// runs alone (what one input's model names as external data does not exist for the next).
public func clearScratch(_ names: [String]) {
    for name in names { unlink(scratchFolder + "/" + name) }
}

/// Checks a rewritten model, saves it and loads the saved file again. A model that `verify()`
/// rejects, that cannot be saved (but for an I/O error), or whose saved file does not load, is a
/// finding. Returns the reloaded model.
@discardableResult
public func checkSaveAndReload(_ model: Model, what: String) -> Model? {
    do {
        try model.verify()
    } catch {
        finding("\(what): the rewritten model breaks an IR invariant: \(error)")
    }
    let output = scratchFolder + "/out.onnx"
    clearScratch(["out.onnx", "out.onnx.data"])
    do {
        try ModelFile.save(model, to: output)
    } catch let error as ModelFileError {
        if case .io = error { return nil }
        finding("\(what): a model that loaded and was rewritten cannot be saved: \(error)")
    } catch {
        finding("\(what): saving failed: \(error)")
    }
    let reloaded: Model
    reached(.saved)
    do {
        reloaded = try ModelFile.load(path: output)
    } catch {
        finding("\(what): the saved model does not load again: \(error)")
    }
    do {
        try reloaded.verify()
    } catch {
        finding("\(what): the saved model, loaded again, breaks an IR invariant: \(error)")
    }
    return reloaded
}

/// How far inputs got, printed at exit when `ONNX_FUSE_FUZZ_STATS=1` (to judge a harness).
public enum Stage: Int, CaseIterable {
    case input, loaded, rewritten, fired, saved
}

nonisolated(unsafe) private var stageCounts = [Int](repeating: 0, count: Stage.allCases.count)
private let countsStages: Bool = {
    guard let set = getenv("ONNX_FUSE_FUZZ_STATS"), String(cString: set) == "1" else { return false }
    atexit {
        let line = Stage.allCases.map { "\($0): \(stageCounts[$0.rawValue])" }.joined(separator: ", ")
        var text = "onnx-fuse-fuzz: stages: \(line)\n"
        text.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
    return true
}()

/// Counts an input that reached `stage` (with `ONNX_FUSE_FUZZ_STATS=1`).
public func reached(_ stage: Stage) {
    if countsStages { stageCounts[stage.rawValue] += 1 }
}

/// A 64-bit FNV-1a hash of the input, to choose options deterministically from it.
public func inputHash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes {
        hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
    }
    return hash
}

/// libFuzzer's own byte mutation (the default a custom mutator falls back to).
@_silgen_name("LLVMFuzzerMutate")
public func libFuzzerMutate(_ data: UnsafeMutablePointer<UInt8>, _ size: Int, _ maxSize: Int) -> Int

/// A small, seedable generator: the mutation of an input is reproducible from its seed (the one
/// `SeededInputs` uses).
public typealias SplitMix = SeededRandom

extension SeededRandom {
    /// A number in `0..<n`.
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    /// One of `items`, nil when there are none.
    public mutating func pick<T>(_ items: [T]) -> T? { items.isEmpty ? nil : items[below(items.count)] }
}
