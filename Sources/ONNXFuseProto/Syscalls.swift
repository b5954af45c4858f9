#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
internal import CONNX
import ONNXFuseIR

/// File names are bytes; Swift strings are Unicode. A name that is not valid UTF-8 (from the
/// command line, or read from a folder) is kept in a `String` by writing each byte that is not
/// part of valid UTF-8 as the scalar U+10FF00 + byte (the end of a private-use plane), and
/// every system call maps those back (`fsPath`): the name reaches the file system byte for
/// byte. A scalar of that range that a name really contains is written byte by byte the same
/// way, so the mapping is exact both ways.
public enum FileNameBytes {
    /// The scalar that stands for byte `0x80...0xFF`: U+10FF00 + byte.
    static let escapeBase: UInt32 = 0x10FF00

    /// Whether `scalar` stands for a byte that is not part of valid UTF-8.
    static func isEscape(_ scalar: Unicode.Scalar) -> Bool { scalar.value > escapeBase + 0x7F }

    /// The path for the bytes of a file name or a command-line argument.
    public static func string<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let bytes = Array(bytes)
        // The usual name, valid UTF-8 with no scalar of the escape range, is its own string: a
        // folder of a few thousand entries is listed at each save, and the scalar-by-scalar
        // path costs some 10,000 instructions a name.
        if let valid = String(validating: bytes, as: UTF8.self), !valid.unicodeScalars.contains(where: isEscape) {
            return valid
        }
        var result = String.UnicodeScalarView()
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var position = 0
        func escape(_ range: Range<Int>) {
            for byte in bytes[range] { result.append(Unicode.Scalar(escapeBase + UInt32(byte))!) }
        }
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let encoded):
                let scalar = Unicode.UTF8.decode(encoded)
                if isEscape(scalar) { escape(position..<position + encoded.count) } else { result.append(scalar) }
                position += encoded.count
            case .error(let length):
                escape(position..<position + length)
                position += length
            case .emptyInput:
                return String(result)
            }
        }
    }

    /// The bytes `path` stands for, NUL-terminated, for a system call.
    public static func cString(_ path: String) -> [CChar] {
        guard !isValidUTF8(path) else { return Array(path.utf8CString) }
        var bytes: [CChar] = []
        for scalar in path.unicodeScalars {
            if isEscape(scalar) {
                bytes.append(CChar(bitPattern: UInt8(scalar.value - escapeBase)))
            } else {
                bytes.append(contentsOf: String(scalar).utf8.map { CChar(bitPattern: $0) })
            }
        }
        bytes.append(0)
        return bytes
    }

    /// Whether `path` holds bytes that are not valid UTF-8 (which a model cannot name).
    public static func isValidUTF8(_ path: String) -> Bool {
        !path.unicodeScalars.contains(where: isEscape)
    }

    /// The name of a folder entry, read in place: a record is only as long as its name, so
    /// copying the `dirent` (its name field is 256 bytes) could read past the end of the
    /// system's buffer.
    static func name(ofEntry entry: UnsafeMutablePointer<dirent>) -> String {
        let name = UnsafeRawPointer(entry) + MemoryLayout<dirent>.offset(of: \dirent.d_name)!
        return string(UnsafeRawBufferPointer(start: name, count: strlen(name.assumingMemoryBound(to: CChar.self))))
    }
}

/// The names in the folder at `directory` (without `.` and `..`), or nil when it cannot be read.
func folderEntryNames(_ directory: String) -> [String]? {
    guard let stream = opendir(fsPath(directory)) else { return nil }
    defer { closedir(stream) }
    var names: [String] = []
    while let entry = readdir(stream) {
        let name = FileNameBytes.name(ofEntry: entry)
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// `FileNameBytes.cString(path)`: what every system call here is given for a path.
func fsPath(_ path: String) -> [CChar] { FileNameBytes.cString(path) }

/// The text of a C `errno` value.
func systemErrorText(_ code: Int32) -> String { String(cString: strerror(code)) }

/// What kind of file a `st_mode` says, for messages ("a folder", "a FIFO").
func fileKind(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFREG: return "a regular file"
    case S_IFDIR: return "a folder"
    case S_IFIFO: return "a FIFO"
    case S_IFSOCK: return "a socket"
    case S_IFCHR: return "a character device"
    case S_IFBLK: return "a block device"
    case S_IFLNK: return "a symbolic link"
    default: return "not a regular file"
    }
}

/// The thread's current `errno`.
var currentErrno: Int32 { errno }

/// An open file descriptor closed when the value goes.
final class FileDescriptor {
    let rawValue: Int32
    init(_ rawValue: Int32) { self.rawValue = rawValue }
    deinit { close(rawValue) }
}

/// A whole file mapped read-only. The mapping lives as long as this object; tensors that
/// point into it keep it alive through `TensorBytes.owner`.
final class MappedFile: MappedFileStorage {
    let path: String
    let base: UnsafeRawPointer?
    let count: Int
    /// Kept open so that saving can copy payloads from the file in the kernel, and so that
    /// `change()` examines the file mapped, whatever its name names now.
    let descriptor: FileDescriptor
    /// The file as it was when mapped; for a private copy, the file copied. Its device and
    /// inode tell whether two paths are the same file.
    let loaded: FileState
    /// The absolute path `change()` looks up again; nil for memory of the process's own (a
    /// private copy, a model's bytes), which nothing outside the process changes.
    private let watchedPath: String?
    /// Set when a save of the model replaced the file under its name (`stopWatchingIfReplaced`).
    private var detached = false
    private let detachedLock = Lock()

    /// Maps the file open at `descriptor`, named `path` in errors. `watchedPath`: see the
    /// property. `copied`: the state of the file the descriptor's file is a private copy of.
    init(path: String, descriptor: FileDescriptor, watchedPath: String?, copyOf copied: FileState? = nil) throws {
        self.path = path
        self.descriptor = descriptor
        self.watchedPath = watchedPath
        let info = try Self.regularFileStatus(descriptor, path: path)
        loaded = copied ?? FileState(info)
        count = Int(info.st_size)
        if count == 0 {
            base = nil
            return
        }
        let address = mmap(nil, count, PROT_READ, MAP_PRIVATE, descriptor.rawValue, 0)
        guard let address, address != MAP_FAILED else {
            throw ModelFileError.io(file: path, operation: "mmap", errno: currentErrno)
        }
        base = UnsafeRawPointer(address)
        // Pages a fault reads from the disk come in 2 MiB folios, as a `read` makes them, not one
        // page at a time: a weight not in the page cache is read in large requests, and the page
        // cache it leaves is as quick to map again as a freshly written file's (ResNet-50's
        // optimize phase after its file was paged back in by faults: 25 → 20 ms; cold, the whole
        // run 0.20 → 0.15 s). Mapped pages are let go in 2 MiB blocks already
        // (`releaseResidentPages`). A hint: refused where transparent huge pages are off.
        _ = madvise(address, count, MADV_HUGEPAGE)
    }

    /// Opens and maps `path`, unwatched (a rule file, read at once).
    convenience init(path: String) throws {
        try self.init(path: path, descriptor: try Self.openForReading(path), watchedPath: nil)
    }

    /// Maps a private copy of the regular file open at `source` (named `path` in errors): an
    /// anonymous in-memory file that nothing done to the source afterwards reaches. A source
    /// that changes while it is copied is an error (`ModelFileError.inputChanged`).
    convenience init(copying source: FileDescriptor, path: String) throws {
        let original = FileState(try Self.regularFileStatus(source, path: path))
        let fd = onnx_fuse_memory_file("onnx-fuse-input")
        guard fd >= 0 else { throw ModelFileError.io(file: path, operation: "memfd_create", errno: currentErrno) }
        let copy = FileDescriptor(fd)
        let status = onnx_fuse_copy_file(fd, source.rawValue, UInt64(original.size))
        let after = FileState(try Self.regularFileStatus(source, path: path))
        if let change = original.contentChange(to: after) { throw ModelFileError.inputChanged(file: path, change: change) }
        guard status == 0 else { throw ModelFileError.io(file: path, operation: "copy", errno: status) }
        try self.init(path: path, descriptor: copy, watchedPath: nil, copyOf: original)
    }

    /// The status of the file open at `descriptor`, which must be a regular file.
    private static func regularFileStatus(_ descriptor: FileDescriptor, path: String) throws -> stat {
        var info = stat()
        guard fstat(descriptor.rawValue, &info) == 0 else { throw ModelFileError.io(file: path, operation: "stat", errno: currentErrno) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw ModelFileError.unsupported(file: path, reason: "not a regular file (it is \(fileKind(info.st_mode)))")
        }
        return info
    }

    /// Opens `path` for reading. It opens without blocking, so that a FIFO or a device is refused
    /// (it is not a regular file) instead of waiting forever for a writer.
    static func openForReading(_ path: String) throws -> FileDescriptor {
        let fd = open(fsPath(path), O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw ModelFileError.io(file: path, operation: "open", errno: currentErrno) }
        return FileDescriptor(fd)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), count) }
    }

    /// Whether `pointer` points inside the mapping.
    func contains(_ pointer: UnsafeRawPointer) -> Bool {
        guard let base else { return false }
        return pointer >= base && pointer < base + count
    }

    /// `madvise(MADV_DONTNEED)` on the range, widened to the 2 MiB blocks around it and clamped
    /// to the mapping: the mapping is private and never written, so the pages are read again from
    /// the file when touched. The blocks, because a read of a page maps more than that page: the
    /// cached pages of its 64 KiB block (the kernel faults around), or the whole large folio that
    /// holds it (up to 2 MiB, file-offset aligned: a freshly written file's page cache is made of
    /// them). A small tensor read next to a large weight kept pieces of the weight resident after
    /// its own pages were released: the generated ResNet-50, whose BatchNormalization tensors lie
    /// between the weights, peaked at 68 MB instead of 46 with 4 KiB blocks. (Small tensors are
    /// not read through the mapping at all: the loader copies them, see `ONNX_FUSE_LIFT_MIN`.)
    /// Addresses outside the mapping are ignored.
    override func releaseResidentPages(_ address: UnsafeRawPointer, count: Int) {
        guard let base, count > 0, address >= base, address - base <= self.count - count else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let window = 2 << 20
        let start = (address - base) / window * window
        let end = min((address - base + count + window - 1) / window * window, (self.count + page - 1) / page * page)
        guard end > start else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
    }

    /// How the file changed since it was mapped, by what its descriptor and its path say now, or
    /// nil: unchanged, or not watched (memory of the process's own, or a file a save replaced).
    /// A new size comes first (it is what faults); then the path, since renaming a file over
    /// it or removing it moves the change time of the file mapped too; then the times.
    func change() -> FileChange? {
        guard let watchedPath, !isDetached else { return nil }
        var info = stat()
        guard fstat(descriptor.rawValue, &info) == 0 else { return .cannotExamine(errno: currentErrno) }
        let now = FileState(info)
        if now.size != loaded.size { return loaded.contentChange(to: now) }
        guard stat(fsPath(watchedPath), &info) == 0 else {
            let code = currentErrno
            return code == ENOENT || code == ENOTDIR ? .removed : .cannotExamine(errno: code)
        }
        guard UInt64(info.st_dev) == loaded.device && UInt64(info.st_ino) == loaded.inode else { return .replaced }
        return loaded.contentChange(to: now)
    }

    /// How the bytes of the file mapped changed (its size and times, by its descriptor), or nil.
    private func contentChange() -> FileChange? {
        guard watchedPath != nil, !isDetached else { return nil }
        var info = stat()
        guard fstat(descriptor.rawValue, &info) == 0 else { return .cannotExamine(errno: currentErrno) }
        return loaded.contentChange(to: FileState(info))
    }

    private var isDetached: Bool { detachedLock.withLock { detached } }

    /// Stops watching the file when its path no longer names it: a save over the model's own
    /// files (`SaveOptions.replaceInput`) put the output there or removed it, and its unlinked
    /// inode's change time moved with it.
    func stopWatchingIfReplaced() {
        guard let watchedPath else { return }
        var info = stat()
        let named = stat(fsPath(watchedPath), &info) == 0 && UInt64(info.st_dev) == loaded.device && UInt64(info.st_ino) == loaded.inode
        if !named { detachedLock.withLock { detached = true } }
    }

    override func changeSinceMapped() -> String? { contentChange()?.description }
}

/// The folder part of a path ("." when there is none).
package func directoryName(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    if slash == path.startIndex { return "/" }
    return String(path[..<slash])
}

/// The last component of a path.
package func baseName(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return path }
    return String(path[path.index(after: slash)...])
}

/// Runs `body` with LeakSanitizer's leak detection off for the allocations it makes on this
/// thread (when the process runs under it; otherwise it just runs `body`). For what a global
/// may keep to the end, such as the expression trees of rules: Swift keeps an indirect enum's
/// case in spare bits of its pointers, which LeakSanitizer does not follow, so a tree still
/// held at exit reads as leaked. They are freed like any other value when released.
package func withoutLeakDetection<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
    onnx_fuse_leak_detection_off()
    defer { onnx_fuse_leak_detection_on() }
    return try body()
}
