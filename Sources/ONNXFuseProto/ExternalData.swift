#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
internal import CONNX
import ONNXFuseIR

/// Finds the bytes of external tensors (`data_location = EXTERNAL`) safely: the location
/// must be a relative path inside the model's folder with no `..`, no symbolic link on the
/// way and no hard-linked file; offset and length are digits that fit the file and the
/// tensor. Each data file is mapped once and shared. Payloads of a page or more are read in
/// place; smaller ones are copied at once, as the loader copies small `raw_data`
/// (`ONNX_FUSE_LIFT_MIN`), so reading them later maps nothing around them.
struct ExternalDataResolver {
    /// The folder external data is read from; nil for a model read from bytes without one,
    /// whose external tensors are then an error.
    let modelDirectory: String?
    let modelFile: String
    /// Data files are copied into private memory rather than mapped (`LoadOptions.copiesInputFiles`).
    let copiesFiles: Bool
    private var files: [String: MappedFile] = [:]

    init(modelDirectory: String?, modelFile: String, copiesFiles: Bool) {
        self.modelDirectory = modelDirectory
        self.modelFile = modelFile
        self.copiesFiles = copiesFiles
    }

    private func invalid(_ location: String, _ reason: String) -> ModelFileError {
        .invalidModel(file: modelFile, location: location, reason: reason, offset: nil)
    }

    /// The data files read so far, in the order of their paths.
    var mappedFiles: [MappedFile] { files.values.sorted { $0.path < $1.path } }

    mutating func bytes(for tensor: Tensor, expectedCount: Int, location: String) throws -> TensorBytes {
        var entries: [String: String] = [:]
        for pair in tensor.externalData {
            guard let key = pair.key else { throw invalid(location, "an external_data entry has no key") }
            guard entries[key] == nil else { throw invalid(location, "external_data key '\(key)' appears twice") }
            entries[key] = pair.value ?? ""
        }
        guard let path = entries["location"], !path.isEmpty else {
            throw invalid(location, "external data has no location")
        }
        let file = try mappedFile(path, location: location)
        let offset = try number(entries["offset"], "offset", location: location) ?? 0
        guard offset <= file.count else {
            throw invalid(location, "external data offset \(offset) is past the end of '\(path)' (\(file.count) bytes)")
        }
        let length = try number(entries["length"], "length", location: location) ?? (file.count - offset)
        guard length <= file.count - offset else {
            throw invalid(location, "external data at offset \(offset) with length \(length) runs past the end of '\(path)' (\(file.count) bytes)")
        }
        guard length == expectedCount else {
            throw invalid(location, "external data length \(length) does not match the \(expectedCount) bytes that dims \(tensor.dims) of \(tensor.dataType) need")
        }
        guard length < Int(ONNX_FUSE_LIFT_MIN) else {
            return TensorBytes(owner: file, baseAddress: file.base.map { $0 + offset }, count: length)
        }
        // pread, not the mapping: a read of the mapping would map the folio around it.
        let copy = ExternalCopy(file: file, offset: offset, block: HeapBlock(count: length))
        var done = 0
        while done < length {
            let n = pread(file.descriptor.rawValue, copy.block.pointer! + done, length - done, off_t(offset + done))
            if n < 0 && currentErrno == EINTR { continue }
            guard n > 0 else {
                throw n < 0 ? ModelFileError.io(file: path, operation: "read", errno: currentErrno)
                            : invalid(location, "external data file '\(path)' ended early")
            }
            done += n
        }
        return TensorBytes(owner: copy, baseAddress: copy.block.pointer.map { UnsafeRawPointer($0) }, count: length)
    }

    /// A digits-only decimal that fits in `Int`, or nil when absent.
    private func number(_ text: String?, _ key: String, location: String) throws -> Int? {
        guard let text else { return nil }
        var value = 0
        guard !text.isEmpty else { throw invalid(location, "external data \(key) is empty") }
        for byte in text.utf8 {
            guard byte >= 0x30 && byte <= 0x39 else { throw invalid(location, "external data \(key) '\(text)' is not a decimal number") }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int(byte - 0x30))
            guard !o1 && !o2 else { throw invalid(location, "external data \(key) '\(text)' is too large") }
            value = sum
        }
        return value
    }

    private mutating func mappedFile(_ path: String, location: String) throws -> MappedFile {
        if let file = files[path] { return file }
        guard !path.hasPrefix("/") else { throw invalid(location, "external data location '\(path)' is an absolute path") }
        let components = path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        guard !components.isEmpty else { throw invalid(location, "external data location '\(path)' names no file") }
        guard !components.contains("..") else {
            throw invalid(location, "external data location '\(path)' leaves the model's folder")
        }
        // Walk one component at a time with O_NOFOLLOW so that no symbolic link, in the
        // file or in any folder on the way, can lead outside the model's folder.
        guard let modelDirectory else {
            throw invalid(location, "external data '\(path)' needs the folder it is in (ModelFile.load(bytes:directory:))")
        }
        var directory = open(fsPath(modelDirectory), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { throw ModelFileError.io(file: modelDirectory, operation: "open", errno: currentErrno) }
        defer { close(directory) }
        for (index, component) in components.enumerated() {
            let isLast = index == components.count - 1
            // Non-blocking: a FIFO is refused below rather than waited on.
            let flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | (isLast ? 0 : O_DIRECTORY)
            let fd = openat(directory, fsPath(String(component)), flags)
            if fd < 0 {
                let code = currentErrno
                if code == ELOOP || (code == ENOTDIR && !isLast && isSymbolicLink(directory, String(component))) {
                    throw invalid(location, "external data location '\(path)' goes through a symbolic link ('\(component)')")
                }
                throw ModelFileError.io(file: dataPath(path), operation: "open", errno: code)
            }
            if isLast {
                let descriptor = FileDescriptor(fd)
                var info = stat()
                guard fstat(fd, &info) == 0 else { throw ModelFileError.io(file: dataPath(path), operation: "stat", errno: currentErrno) }
                guard (info.st_mode & S_IFMT) == S_IFREG else {
                    throw invalid(location, "external data location '\(path)' is not a regular file (it is \(fileKind(info.st_mode)))")
                }
                guard info.st_nlink == 1 else {
                    throw invalid(location, "external data file '\(path)' is hard-linked (\(info.st_nlink) links)")
                }
                let file = copiesFiles ? try MappedFile(copying: descriptor, path: dataPath(path))
                    : try MappedFile(path: dataPath(path), descriptor: descriptor, watchedPath: absolutePath(dataPath(path)))
                files[path] = file
                return file
            }
            close(directory)
            directory = fd
        }
        preconditionFailure("unreachable")
    }

    private func isSymbolicLink(_ directory: Int32, _ name: String) -> Bool {
        var info = stat()
        return fstatat(directory, fsPath(name), &info, AT_SYMLINK_NOFOLLOW) == 0 && (info.st_mode & S_IFMT) == S_IFLNK
    }

    private func dataPath(_ path: String) -> String {
        guard let modelDirectory, modelDirectory != "." else { return path }
        return modelDirectory + "/" + path
    }
}

/// The bytes of a small external tensor, copied from its data file at load. They remember
/// where they came from, so that saving can keep the data file's layout (`ExternalLayout`).
final class ExternalCopy {
    let file: MappedFile
    let offset: Int
    let block: HeapBlock

    init(file: MappedFile, offset: Int, block: HeapBlock) {
        self.file = file
        self.offset = offset
        self.block = block
    }
}
