#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import ONNXFuseIR

/// How a file a model was loaded from changed since (`ModelFileError.inputChanged`).
public enum FileChange: Equatable, Sendable, CustomStringConvertible {
    /// It is shorter than when it was read: reading a weight past its new end would fault.
    case truncated(from: Int, to: Int)
    /// It is longer than when it was read.
    case extended(from: Int, to: Int)
    /// Its bytes were written (its modification time moved).
    case modified
    /// Its inode changed with its size and modification time as they were: a rewrite that put
    /// the modification time back, or a change of its permissions, owner or links.
    case statusChanged
    /// Its path names another file now (one renamed or copied over it).
    case replaced
    /// Its path names no file now (it was removed or renamed).
    case removed
    /// The system cannot say (the error of `stat`).
    case cannotExamine(errno: Int32)

    /// What happened, as the end of a sentence: `truncated from 4096 to 0 bytes`.
    public var description: String {
        switch self {
        case .truncated(let from, let to): return "truncated from \(from) to \(to) bytes"
        case .extended(let from, let to): return "extended from \(from) to \(to) bytes"
        case .modified: return "modified"
        case .statusChanged: return "changed (its inode change time moved: rewritten with its modification time put back, or its permissions, owner or links changed)"
        case .replaced: return "replaced by another file"
        case .removed: return "removed or renamed"
        case .cannotExamine(let code): return "no longer examinable (\(systemErrorText(code)))"
        }
    }
}

/// What tells one state of a file's content from another: which file it is (device and inode),
/// and its size and times, which every write moves. The change time (ctime) cannot be set by a
/// program, so a rewrite that puts the modification time back still shows; reading does not
/// move either time (only the access time, which is not compared).
struct FileState {
    let device: UInt64
    let inode: UInt64
    let size: Int
    let modified: timespec
    let statusChanged: timespec

    init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int(info.st_size)
        modified = info.st_mtim
        statusChanged = info.st_ctim
    }

    /// How the content went from this state to `now` (the same file, examined again), or nil.
    func contentChange(to now: FileState) -> FileChange? {
        if now.size < size { return .truncated(from: size, to: now.size) }
        if now.size > size { return .extended(from: size, to: now.size) }
        if !Self.same(modified, now.modified) { return .modified }
        if !Self.same(statusChanged, now.statusChanged) { return .statusChanged }
        return nil
    }

    private static func same(_ a: timespec, _ b: timespec) -> Bool { a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec }
}

extension ModelFile {
    /// Checks that every file `model` was loaded from (the model file and its external data
    /// files) is still the one loaded, unchanged, else throws `ModelFileError.inputChanged`
    /// naming the first that is not and how it changed: truncated (with both sizes), modified,
    /// replaced by another file under its name, removed. It compares what identifies the file's
    /// content (device, inode, size, modification and change times) with what they were at the
    /// load: one `fstat` and one `stat` a file; nothing is read. Reading a file is not a change.
    ///
    /// A model's weights stay in its files, mapped, for its lifetime: a file truncated under it
    /// makes the next read of a weight past the new end fault (SIGBUS), and a file rewritten in
    /// place gives the new bytes. `save` and `serialize` run this check before they read
    /// anything, and again before the output is put in place, so that a changed input is this
    /// error and nothing is written; `optimize`, or a program that reads weights itself, can
    /// run it before reading. The window between checks stays: a file truncated *while* a
    /// weight is being read still faults there. Loading with `LoadOptions.copiesInputFiles`
    /// closes it (the model then has no file to check). A model read from bytes checks only its
    /// external data files; one built in memory has nothing to check.
    ///
    /// On kernels before Linux 6.13, a file's times move in clock ticks (a few milliseconds): a
    /// rewrite of the same size within the tick of the load can keep both times, and go unseen.
    public static func checkInputUnchanged(_ model: Model) throws(ModelFileError) {
        if let error = inputChange(model) { throw error }
    }

    /// `checkInputUnchanged`'s error, or nil.
    static func inputChange(_ model: Model) -> ModelFileError? {
        for case let file as MappedFile in model.inputStorage {
            if let change = file.change() { return .inputChanged(file: file.path, change: change) }
        }
        return nil
    }

    /// Runs `body`, which reads `model`'s tensors; an error it throws while an input file has
    /// changed (a read cut short by a truncation, a computed tensor refusing a changed source)
    /// becomes the change, its cause.
    static func readingInput<R>(of model: Model, _ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch {
            if let change = inputChange(model) { throw change }
            throw error
        }
    }

    /// After `model` was saved over its own files (`SaveOptions.replaceInput`): the files whose
    /// paths now name the new output, or nothing, are no longer checked. The model keeps reading
    /// them, open and unlinked, where no other program can change them by name.
    static func stopCheckingReplacedInputs(of model: Model) {
        for case let file as MappedFile in model.inputStorage { file.stopWatchingIfReplaced() }
    }
}

/// `path` made absolute with the current folder (as the system would resolve it now), so that
/// looking it up later does not depend on the folder the process is in then; `path` itself
/// when the current folder is unknown.
func absolutePath(_ path: String) -> String {
    guard !path.hasPrefix("/"), let folder = getcwd(nil, 0) else { return path }
    defer { free(folder) }
    let text = FileNameBytes.string(UnsafeRawBufferPointer(start: folder, count: strlen(folder)))
    return (text == "/" ? "" : text) + "/" + path
}
