#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

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
final class MappedFile {
    let path: String
    let base: UnsafeRawPointer?
    let count: Int
    /// Kept open so that saving can copy payloads from the file in the kernel.
    let descriptor: FileDescriptor
    /// Device and inode, to tell whether two paths are the same file.
    let identity: (dev: UInt64, ino: UInt64)

    /// Maps the file at `path` (relative to `directory` when given, never following a
    /// symbolic link for the last component in that case).
    init(path: String, descriptor: FileDescriptor) throws {
        self.path = path
        self.descriptor = descriptor
        var info = stat()
        guard fstat(descriptor.rawValue, &info) == 0 else { throw ModelFileError.io(file: path, operation: "stat", errno: currentErrno) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw ModelFileError.unsupported(file: path, reason: "not a regular file (it is \(fileKind(info.st_mode)))")
        }
        identity = (UInt64(info.st_dev), UInt64(info.st_ino))
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
    }

    /// Opens and maps `path`. It opens without blocking, so that a FIFO or a device is refused
    /// (it is not a regular file) instead of waiting forever for a writer.
    convenience init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw ModelFileError.io(file: path, operation: "open", errno: currentErrno) }
        try self.init(path: path, descriptor: FileDescriptor(fd))
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), count) }
    }

    /// Whether `pointer` points inside the mapping.
    func contains(_ pointer: UnsafeRawPointer) -> Bool {
        guard let base else { return false }
        return pointer >= base && pointer < base + count
    }
}

/// The folder part of a path ("." when there is none).
func directoryName(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    if slash == path.startIndex { return "/" }
    return String(path[..<slash])
}

/// The last component of a path.
func baseName(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return path }
    return String(path[path.index(after: slash)...])
}
