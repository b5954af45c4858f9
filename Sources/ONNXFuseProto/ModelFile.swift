#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
internal import CONNX
import ONNXFuseIR

/// Limits that protect the loader from hostile files.
public struct LoadLimits: Sendable {
    /// The deepest message nesting accepted (the ModelProto is level 1).
    public var maximumDepth = 100
    /// Memory protobuf-c may allocate for the model structure, as a fixed allowance plus a
    /// multiple of the structure's size (the file without its raw weights, which stay in the
    /// mapped file and do not raise the budget). 10 MB of empty nodes would otherwise unpack
    /// to about 1 GB.
    public var unpackBudgetBase = 128 << 20
    /// See `unpackBudgetBase`.
    public var unpackBudgetPerStructureByte = 12

    /// The default limits.
    public init() {}
}

/// How to load a model.
public struct LoadOptions: Sendable {
    /// Limits that protect the loader from hostile files.
    public var limits = LoadLimits()
    /// Copy the model file and its external data files into memory of the process's own at
    /// load, so that nothing done to the files afterwards (truncated, rewritten, replaced)
    /// reaches the model, and `ModelFile.checkInputUnchanged` has nothing left to check. Off by
    /// default: the weights then stay in the files, mapped, and are never copied through memory,
    /// and a file changed under a loaded model is an error at the next check (`save`, say).
    /// The copy costs its size in memory (an anonymous in-memory file, resident until the model
    /// goes; the kernel may swap it, never drop it) and the time of copying it once: about 45 ms
    /// for a 100 MB model read from the page cache, and 10 more to free it, where loading it
    /// mapped takes under a millisecond (the whole ResNet-50 run, load to save, is about 66 ms).
    /// A file that changes while it is copied is an error (`ModelFileError.inputChanged`).
    public var copiesInputFiles = false

    /// The defaults: the default limits, the files mapped.
    public init() {}
}

/// What saving wrote.
public struct SaveReport: Sendable {
    /// Bytes of the model file.
    public var modelBytes: Int
    /// The external data file written beside it, if any (its file name).
    public var dataFileName: String?
    /// Bytes of that data file.
    public var dataBytes: Int
    /// Tensors written to it.
    public var externalTensorCount: Int
}

/// Options for saving.
public struct SaveOptions: Sendable {
    /// A model whose encoding would reach this size moves its largest tensors to an
    /// external data file (protobuf cannot represent messages of 2 GiB or more).
    public var maximumModelBytes = Int(Int32.max)
    /// Write to standard output instead of a file (no external data possible).
    public var toStandardOutput = false
    /// The output may replace the model's own input files (`--in-place`). Otherwise writing
    /// over any file the model was read from (the model, or one of its external data files,
    /// under any name) is refused.
    public var replaceInput = false
    /// Permission bits for an output file that does not exist yet (the input's, so that a
    /// private model stays private); an output written over an existing file keeps that
    /// file's bits. Nil: the process's default (0666 less the umask).
    public var newFilePermissions: UInt32?
    /// Paths that no file of the save may take or remove (a report written afterwards, say):
    /// the data file goes under another name.
    public var reservedPaths: [String] = []
    /// Check every IR invariant first (`Model.verify()`): a model that breaks one is an
    /// error, and nothing is written, rather than a file that loading refuses. Off only for a
    /// caller that has just verified the model itself (the command does after rewriting).
    public var verifiesModel = true

    /// The defaults.
    public init() {}
}

/// Reading and writing `.onnx` files.
public enum ModelFile {
    /// Loads the model at `path`: maps the file, reads and validates its wire format (the
    /// weights are skipped, not read), unpacks the structure with protobuf-c (tensors point
    /// into the mapping), and builds the IR, checking
    /// the model semantically. External data files are resolved relative to the model.
    ///
    /// The files stay mapped while the model lives: they must not change until it is saved.
    /// A change is an error (`ModelFileError.inputChanged`) at `save`, `serialize` or
    /// `ModelFile.checkInputUnchanged`, but a weight read after its file was truncated faults
    /// (SIGBUS). `LoadOptions.copiesInputFiles` copies them instead, at a cost.
    public static func load(path: String, limits: LoadLimits = LoadLimits()) throws -> Model {
        var options = LoadOptions()
        options.limits = limits
        return try load(path: path, options: options)
    }

    /// `load(path:limits:)` with `options`: the files mapped and watched for changes, or, with
    /// `options.copiesInputFiles`, copied into memory of the process's own.
    public static func load(path: String, options: LoadOptions) throws -> Model {
        let descriptor = try MappedFile.openForReading(path)
        let file = options.copiesInputFiles ? try MappedFile(copying: descriptor, path: path)
            : try MappedFile(path: path, descriptor: descriptor, watchedPath: absolutePath(path))
        return try load(file: file, displayName: path, modelDirectory: directoryName(of: path), limits: options.limits,
                        copiesExternalData: options.copiesInputFiles)
    }

    /// Reads a model from its bytes, as `load(path:)` reads a file: the bytes are copied into an
    /// anonymous in-memory file that the model maps. External data is read from `directory`
    /// (nil: a model with external tensors is an error); `name` names the model in errors.
    public static func load(bytes: some Collection<UInt8>, name: String = "<bytes>", directory: String? = nil,
                            limits: LoadLimits = LoadLimits()) throws -> Model {
        let fd = onnx_fuse_memory_file("onnx-fuse-model")
        guard fd >= 0 else { throw ModelFileError.io(file: name, operation: "memfd_create", errno: currentErrno) }
        let descriptor = FileDescriptor(fd)
        let copied: Int32? = bytes.withContiguousStorageIfAvailable { buffer in
            onnx_fuse_write_all(fd, buffer.baseAddress, buffer.count)
        }
        let status = copied ?? Array(bytes).withUnsafeBufferPointer { onnx_fuse_write_all(fd, $0.baseAddress, $0.count) }
        guard status == 0 else { throw ModelFileError.io(file: name, operation: "write", errno: status) }
        // Memory of the process's own: nothing to watch (its external data files are).
        let file = try MappedFile(path: name, descriptor: descriptor, watchedPath: nil)
        return try load(file: file, displayName: name, modelDirectory: directory, limits: limits, copiesExternalData: false)
    }

    static func load(file: MappedFile, displayName: String, modelDirectory: String?, limits: LoadLimits,
                     copiesExternalData: Bool) throws -> Model {
        guard file.count > 0 else {
            throw ModelFileError.invalidModel(file: displayName, location: "", reason: "the file is empty", offset: nil)
        }
        var loadLimits = onnx_fuse_load_limits()
        loadLimits.max_depth = limits.maximumDepth
        loadLimits.unpack_budget = limits.unpackBudgetBase
        loadLimits.unpack_budget_per_byte = limits.unpackBudgetPerStructureByte
        loadLimits.lift_min = Int(ONNX_FUSE_LIFT_MIN)
        var loaded = onnx_fuse_loaded()
        var error = onnx_fuse_error()
        // The structure is read with pread, never through the mapping: touching a mapped byte
        // maps the page-cache folio around it (up to 2 MB of weights) into the process.
        let status = onnx_fuse_load_fd(file.descriptor.rawValue, file.base!.assumingMemoryBound(to: UInt8.self), file.count,
                                       &loadLimits, &loaded, &error)
        guard status == ONNX_FUSE_OK, let arena = loaded.arena, let root = loaded.model else {
            throw translate(error, file: displayName)
        }
        let tree = DecodedTree(arena: arena, file: file)
        var decoder = Decoder(tree: tree, fileName: displayName, modelDirectory: modelDirectory, copiesExternalData: copiesExternalData)
        let model = try decoder.decodeModel(root)
        model.inputStorage = [file] + decoder.externalData.mappedFiles
        model.inputFiles = ([file] + decoder.externalData.mappedFiles).map {
            FileIdentity(path: $0.path, device: $0.loaded.device, inode: $0.loaded.inode)
        }
        return model
    }

    static func translate(_ error: onnx_fuse_error, file: String) -> ModelFileError {
        var error = error
        var path = withUnsafeBytes(of: &error.path) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        // Paths read like the decoder's (`graph.node[3]`), and stay short enough for one line.
        if path == "ModelProto" { path = "" }
        if path.hasPrefix("ModelProto.") { path.removeFirst("ModelProto.".count) }
        let truncated = path.hasPrefix("...") || path.count > 120
        if path.hasPrefix("...") { path.removeFirst(3) }
        if path.count > 120 { path = String(path.suffix(117)) }
        while path.hasPrefix(".") { path.removeFirst() }
        if truncated { path = "..." + path }
        let message = withUnsafeBytes(of: &error.message) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        switch error.status {
        case ONNX_FUSE_LIMIT:
            return .limitExceeded(file: file, location: path, reason: message)
        case ONNX_FUSE_NOMEM:
            return .limitExceeded(file: file, location: path, reason: message.isEmpty ? "out of memory" : message)
        case ONNX_FUSE_IO:
            return .io(file: file, operation: "read", errno: error.sys_errno)
        default:
            return .invalidModel(file: file, location: path, reason: message.isEmpty ? "not a valid ONNX model" : message, offset: error.offset)
        }
    }

    /// Saves `model` at `path` atomically: everything goes to temporary files in the target
    /// folder that are synced and renamed into place only when complete; on any error they
    /// are removed and nothing at `path` changes. Tensors that were external stay external,
    /// in a new data file named after the output (`<output>.data`); so do the largest
    /// tensors when the model would otherwise reach `options.maximumModelBytes`.
    ///
    /// The files the model was loaded from are checked first, before anything reads a tensor,
    /// and again before the output is put in place (`checkInputUnchanged`): one that changed
    /// since the load is `ModelFileError.inputChanged`, and nothing is written (to standard
    /// output, the bytes are out before the second check: a change it finds is still the error).
    @discardableResult
    public static func save(_ model: Model, to path: String, options: SaveOptions = SaveOptions()) throws -> SaveReport {
        try checkInputUnchanged(model)
        return try readingInput(of: model) { try write(model, to: path, options: options) }
    }

    /// `save`, once the input files were found unchanged.
    private static func write(_ model: Model, to path: String, options: SaveOptions) throws -> SaveReport {
        if options.verifiesModel { try verifyBeforeWriting(model, file: path) }
        var encoder = Encoder()
        var root = encoder.encode(model)
        var packedSize = onnx_fuse_packed_size(UnsafeMutableRawPointer(root).assumingMemoryBound(to: ProtobufCMessage.self))
        if packedSize >= options.maximumModelBytes {
            // Too big for one protobuf message: encode again with the largest payloads external.
            encoder = Encoder(forceExternal: largestPayloads(encoder, root: root, limit: options.maximumModelBytes))
            root = encoder.encode(model)
        }
        let message = UnsafeMutableRawPointer(root).assumingMemoryBound(to: ProtobufCMessage.self)
        // Laid out under the conventional name; the name may change below (see the steps).
        let external = ExternalLayout(encoder.externalTensors, dataName: baseName(of: path) + ".data")
        placeExternalTensors(encoder, layout: external, dataName: baseName(of: path) + ".data")
        // Measuring walks the whole tree: again only when placing external tensors changed it
        // (a second encoding has some: it moved payloads out).
        if !encoder.externalTensors.isEmpty { packedSize = onnx_fuse_packed_size(message) }
        if packedSize >= options.maximumModelBytes {
            throw ModelFileError.limitExceeded(file: path, location: "", reason: "the model is \(packedSize) bytes even with its tensors in external data; protobuf cannot represent \(options.maximumModelBytes) bytes or more")
        }
        let sources = encoder.mappedSources
        if let error = computedTensorError(encoder, file: path) { throw error }

        if options.toStandardOutput {
            guard external.segments.isEmpty else {
                throw ModelFileError.unwritable(file: path, reason: "the model has external data, which cannot go to standard output; name an output file with -o")
            }
            let written = try pack(message, encoder, to: STDOUT_FILENO, file: path)
            try checkInputUnchanged(model)
            return SaveReport(modelBytes: written, dataFileName: nil, dataBytes: 0, externalTensorCount: 0)
        }

        // Every target is checked before anything is written.
        let modelPermissions = try checkTarget(path, of: model, options: options)
        var pair = DataFilePlan(output: path, model: model, options: options)
        TemporaryFiles.removeLeftovers(of: [path, pair.directory + "/" + pair.conventionalName], among: pair.folderEntries)
        var temporaries = TemporaryFiles()
        defer { temporaries.removeAll() }

        // The steps, each durable before the next, so that a failure or a kill at any point
        // leaves a whole pair: (1) the new data and the new model are written to temporary
        // files; (2) the data file is renamed to a name nothing is at (never over a file, which
        // the model being replaced or another model may read); (3) the model is renamed over
        // the output; (4) the data files of the replaced pair named after the output are
        // removed. A kill before (3) leaves the old pair; after it, the new one.
        var dataBytes = 0
        var dataTemporary: String?
        // Open, and so locked (`TemporaryFiles.create`), until the save ends: a data file locked
        // is one whose model may not be in place yet, which `collectOrphans` of a concurrent save
        // leaves alone.
        var dataDescriptor: FileDescriptor?
        var dataName = pair.conventionalName
        if !external.segments.isEmpty {
            // The model names its data file in a string field, which must be UTF-8.
            guard FileNameBytes.isValidUTF8(pair.conventionalName) else {
                throw ModelFileError.unwritable(file: path, reason: "the model has external data, and its data file is named after the output, whose name is not valid UTF-8 (a model cannot name such a file); choose another output name")
            }
            dataName = try pair.nextName()
            placeExternalTensors(encoder, layout: external, dataName: dataName)
            let (fd, tmp) = try temporaries.create(beside: pair.directory + "/" + pair.conventionalName, permissions: pair.permissions(model: modelPermissions))
            dataTemporary = tmp
            dataDescriptor = fd
            let target = pair.directory + "/" + dataName
            try faultPoint("write-data", file: target)
            dataBytes = try writeExternalData(external, encoder, to: fd.rawValue, file: target, sources: sources)
            // Marked as not yet read by any model until the model is in place (`collectOrphans`).
            var marks = [DataFilePlan.unreadMark, DataFilePlan.unreadMark]
            futimens(fd.rawValue, &marks)
            try faultPoint("sync-data", file: target)
            try sync(fd, file: target)
        }
        let (fd, modelTemporary) = try temporaries.create(beside: path, permissions: modelPermissions)
        var written = try writeModel(message, encoder, to: fd, path: path, sources: sources, limit: options.maximumModelBytes,
                                     packedSize: encoder.externalTensors.isEmpty ? packedSize : nil)
        if let dataTemporary {
            // Another writer may have taken the name since it was chosen: then the next free
            // name, and the model written again to read it.
            while true {
                try faultPoint("rename-data", file: pair.directory + "/" + dataName)
                if try temporaries.claim(dataTemporary, as: pair.directory + "/" + dataName) { break }
                dataName = try pair.nextName()
                placeExternalTensors(encoder, layout: external, dataName: dataName)
                guard ftruncate(fd.rawValue, 0) == 0, lseek(fd.rawValue, 0, SEEK_SET) == 0 else {
                    throw ModelFileError.io(file: modelTemporary, operation: "truncate", errno: currentErrno)
                }
                written = try writeModel(message, encoder, to: fd, path: path, sources: sources, limit: options.maximumModelBytes)
            }
            try faultPoint("sync-folder", file: pair.directory)
            syncDirectory(pair.directory)
        }
        // The bytes written are the input's as loaded only if it did not change while they were read.
        try checkInputUnchanged(model)
        try faultPoint("rename-model", file: path)
        let claimedData = dataTemporary == nil ? nil : pair.directory + "/" + dataName
        // From here a signal must not remove the data file: the model that reads it may be in place.
        if let claimedData { temporaries.keep(claimedData) }
        do {
            try temporaries.commit(modelTemporary, to: path)
        } catch {
            if let claimedData { unlink(fsPath(claimedData)) }
            throw error
        }
        syncDirectory(pair.directory)
        // The data file is read now: its times become the present.
        if let dataDescriptor { futimens(dataDescriptor.rawValue, nil) }
        // A failure here (injected, too) leaves the old data files: the new pair is whole.
        if (try? faultPoint("remove-old-data", file: path)) != nil {
            pair.removeReplacedData(keeping: external.segments.isEmpty ? nil : dataName)
            pair.collectOrphans(output: path, keeping: external.segments.isEmpty ? nil : dataName)
        }
        if options.replaceInput { stopCheckingReplacedInputs(of: model) }
        withExtendedLifetime(dataDescriptor) {}
        return SaveReport(modelBytes: Int(written), dataFileName: external.segments.isEmpty ? nil : dataName,
                          dataBytes: dataBytes, externalTensorCount: external.entries.count)
    }

    /// The model's bytes, as `save` writes them into a file (computed tensors computed); `name`
    /// names the model in errors. A tensor read from external data stays there: the bytes name
    /// the data file it was read from, by its path relative to the model's folder (read them
    /// back with `load(bytes:directory:)` and that folder). A model of `maximumModelBytes` or
    /// more (protobuf's 2 GiB limit) cannot be one buffer: save it to a file, with external data.
    /// The input files are checked first and last, as `save` checks them.
    public static func serialize(_ model: Model, name: String = "<bytes>", maximumModelBytes: Int = Int(Int32.max)) throws -> [UInt8] {
        try checkInputUnchanged(model)
        let bytes = try readingInput(of: model) { try packed(model, name: name, maximumModelBytes: maximumModelBytes) }
        try checkInputUnchanged(model)
        return bytes
    }

    /// `serialize`, once the input files were found unchanged.
    private static func packed(_ model: Model, name: String, maximumModelBytes: Int) throws -> [UInt8] {
        try verifyBeforeWriting(model, file: name)
        let encoder = Encoder()
        let root = encoder.encode(model)
        let message = UnsafeMutableRawPointer(root).assumingMemoryBound(to: ProtobufCMessage.self)
        let size = onnx_fuse_packed_size(message)
        if size >= maximumModelBytes {
            throw ModelFileError.limitExceeded(file: name, location: "", reason: "the model is \(size) bytes; protobuf cannot represent \(maximumModelBytes) bytes or more in one message")
        }
        if let error = computedTensorError(encoder, file: name) { throw error }
        // Packed through an in-memory file, as into any file: the packer writes large payloads
        // a piece at a time and copies mapped weights without mapping them in.
        let fd = onnx_fuse_memory_file("onnx-fuse-serialize")
        guard fd >= 0 else { throw ModelFileError.io(file: name, operation: "memfd_create", errno: currentErrno) }
        let descriptor = FileDescriptor(fd)
        let written = try pack(message, encoder, to: descriptor.rawValue, file: name)
        return try [UInt8](unsafeUninitializedCapacity: written) { buffer, initialized in
            var done = 0
            while done < written {
                let n = pread(descriptor.rawValue, buffer.baseAddress! + done, written - done, off_t(done))
                if n < 0 && currentErrno == EINTR { continue }
                guard n > 0 else { throw ModelFileError.io(file: name, operation: "read", errno: n < 0 ? currentErrno : EIO) }
                done += n
            }
            initialized = written
        }
    }

    /// `Model.verify()`, its error made a `ModelFileError` naming `file`.
    private static func verifyBeforeWriting(_ model: Model, file: String) throws {
        do {
            try model.verify()
        } catch {
            throw ModelFileError.invalidModel(file: file, location: "", reason: "the model is not valid (\(error)); nothing written", offset: nil)
        }
    }

    /// Packs `message` into `fd` as it is (no sync); the bytes written.
    private static func pack(_ message: UnsafeMutablePointer<ProtobufCMessage>, _ encoder: Encoder, to fd: Int32, file: String) throws -> Int {
        let sources = encoder.mappedSources
        var written: UInt64 = 0
        var error = onnx_fuse_error()
        guard onnx_fuse_pack_to_fd_from(message, fd, sources, sources.count, &written, &error) == ONNX_FUSE_OK else {
            throw writeError(encoder, file: file, errno: error.sys_errno)
        }
        return Int(written)
    }

    /// Packs the model into `fd` and syncs it; the bytes written. `packedSize`: the message's,
    /// when known (measuring walks the whole tree).
    private static func writeModel(_ message: UnsafeMutablePointer<ProtobufCMessage>, _ encoder: Encoder, to fd: FileDescriptor, path: String,
                                   sources: [onnx_fuse_mapped_source], limit: Int, packedSize: Int? = nil) throws -> UInt64 {
        let size = packedSize ?? onnx_fuse_packed_size(message)
        if size >= limit {
            throw ModelFileError.limitExceeded(file: path, location: "", reason: "the model is \(size) bytes even with its tensors in external data; protobuf cannot represent \(limit) bytes or more")
        }
        try faultPoint("write-model", file: path)
        // The file's blocks reserved at once: writing into reserved blocks skips the file
        // system's reservation per page (ResNet-50 export, 100 MB: the run 69 → 61 ms). Advice:
        // where it fails (a file system without fallocate, a full disk) the writes say what is wrong.
        _ = onnx_fuse_preallocate(fd.rawValue, UInt64(size))
        var written: UInt64 = 0
        var error = onnx_fuse_error()
        guard onnx_fuse_pack_to_fd_from(message, fd.rawValue, sources, sources.count, &written, &error) == ONNX_FUSE_OK else {
            throw writeError(encoder, file: path, errno: error.sys_errno)
        }
        try faultPoint("sync-model", file: path)
        try sync(fd, file: path)
        return written
    }

    /// The test hook for failures and kills while saving: the environment variable
    /// `ONNX_FUSE_TEST_FAULT=<step>` makes that step fail with EIO, and
    /// `ONNX_FUSE_TEST_FAULT=kill:<step>` ends the process at once before it, as SIGKILL
    /// would (temporary files stay). Steps: write-data, sync-data, write-model, sync-model,
    /// rename-data, sync-folder, rename-model, remove-old-data.
    static func faultPoint(_ step: String, file: String) throws {
        guard let fault = injectedFault else { return }
        if fault == "kill:" + step { _exit(137) }
        if fault == step { throw ModelFileError.io(file: file, operation: String(step.map { $0 == "-" ? " " : $0 }), errno: EIO) }
    }

    private static let injectedFault: String? = getenv("ONNX_FUSE_TEST_FAULT").map { String(cString: $0) }

    /// Checks that `target` may be written: it does not exist, or it is a regular file (never
    /// a symbolic link, a folder, a device or a FIFO, which a rename would replace) that is not
    /// one of the model's input files (unless `options.replaceInput`). Returns the permission
    /// bits the new file gets.
    static func checkTarget(_ target: String, of model: Model, options: SaveOptions) throws -> UInt32? {
        guard let existing = try existingTarget(target) else { return options.newFilePermissions }
        if !options.replaceInput, let input = model.inputFiles.firstIndex(where: {
            $0.device == existing.device && $0.inode == existing.inode
        }) {
            let what = input == 0 ? "the input model" : "the input's external data file '\(model.inputFiles[input].path)'"
            throw ModelFileError.unwritable(file: target, reason: "it is \(what), which onnx-fuse never writes over")
        }
        return existing.permissions
    }

    /// The file at `target` that a rename would replace: nil when nothing is there; an error
    /// when it is not a regular file (a symbolic link, a folder, a device or a FIFO).
    static func existingTarget(_ target: String) throws -> (permissions: UInt32, device: UInt64, inode: UInt64)? {
        var info = stat()
        guard lstat(fsPath(target), &info) == 0 else {
            guard currentErrno == ENOENT else { throw ModelFileError.io(file: target, operation: "stat", errno: currentErrno) }
            return nil
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw ModelFileError.unwritable(file: target, reason: "it is \(fileKind(info.st_mode)); onnx-fuse writes only over regular files")
        }
        return (UInt32(info.st_mode & 0o777), UInt64(info.st_dev), UInt64(info.st_ino))
    }

    /// The ordinals of the raw payloads to move out, largest first (ties in encoding order, so
    /// the choice is deterministic), until the model fits under `limit` with some room for
    /// the external_data entries that come in.
    static func largestPayloads(_ encoder: Encoder, root: UnsafeMutablePointer<Onnx__ModelProto>, limit: Int) -> Set<Int> {
        var size = onnx_fuse_packed_size(UnsafeMutableRawPointer(root).assumingMemoryBound(to: ProtobufCMessage.self))
        let margin = Swift.min(1 << 20, limit / 64)
        var chosen = Set<Int>()
        let candidates = encoder.inlinePayloads.sorted { ($0.count, $1.ordinal) > ($1.count, $0.ordinal) }
        for candidate in candidates where size + margin >= limit {
            // The payload, its length prefix and tag leave; external_data entries (about 100 bytes) come in.
            size = size - candidate.count - 12 + 128
            chosen.insert(candidate.ordinal)
        }
        return chosen
    }

    /// Points the external tensors' (new) messages at their places in `layout`, in the data
    /// file `dataName`.
    static func placeExternalTensors(_ encoder: Encoder, layout: ExternalLayout, dataName: String) {
        for (tensor, entries) in zip(encoder.externalTensors, layout.entries(dataName: dataName)) {
            (tensor.message.pointee.n_external_data, tensor.message.pointee.external_data) = encoder.pairs(entries)
            tensor.message.pointee.has_data_location = 1
            tensor.message.pointee.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL
        }
    }

    static func writeExternalData(_ layout: ExternalLayout, _ encoder: Encoder, to fd: Int32, file: String,
                                  sources: [onnx_fuse_mapped_source]) throws -> Int {
        var segments: [onnx_fuse_segment] = layout.segments.map {
            onnx_fuse_segment(data: encoder.payloadAddress($0.bytes), len: $0.bytes.count, offset: UInt64($0.offset))
        }
        if let last = layout.segments.last { _ = onnx_fuse_preallocate(fd, UInt64(last.offset + last.bytes.count)) }
        var written: UInt64 = 0
        var error = onnx_fuse_error()
        guard onnx_fuse_write_segments(fd, &segments, segments.count, sources, sources.count, &written, &error) == ONNX_FUSE_OK else {
            throw writeError(encoder, file: file, errno: error.sys_errno)
        }
        return Int(written)
    }

    /// The error of a failed write: a computed tensor that could not be made, or the system's.
    static func writeError(_ encoder: Encoder, file: String, errno code: Int32) -> ModelFileError {
        computedTensorError(encoder, file: file) ?? .io(file: file, operation: "write", errno: code)
    }

    /// The error of a computed tensor the encoder could not make, or nil.
    static func computedTensorError(_ encoder: Encoder, file: String) -> ModelFileError? {
        encoder.deferred.failure.map { .unwritable(file: file, reason: "a computed tensor could not be made: \($0)") }
    }

    static func sync(_ fd: FileDescriptor, file: String) throws {
        guard fsync(fd.rawValue) == 0 else { throw ModelFileError.io(file: file, operation: "fsync", errno: currentErrno) }
    }

    /// Makes the renames durable; a folder that cannot be opened or synced is not an error.
    static func syncDirectory(_ directory: String) {
        let fd = open(fsPath(directory), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }
}

/// Where the data file of a saved model goes, and which data files of the pair it replaces
/// go afterwards. The new data file never takes a name that the model being replaced reads,
/// so that pair stays whole until the new model is renamed over it.
struct DataFilePlan {
    let directory: String
    let base: String
    /// The data files that the model at the output reads before the save; nil when there is
    /// a file there that cannot be read as a model (then none is removed).
    let replaced: [FileIdentity]?
    /// Of those, the ones named after the output, with the change time they had when read:
    /// removed after the save only if still the same file (an inode can be reused at once).
    private var removable: [(path: String, device: UInt64, inode: UInt64, changed: timespec)] = []
    let inputFiles: [FileIdentity]
    let replaceInput: Bool
    /// Places no file of the save may take or remove (the report's).
    let reserved: [FilePlace]
    /// The names in the output's folder before the save (empty when it cannot be read).
    let folderEntries: [String]
    private var nextIndex = 0

    /// `<output>.data`.
    var conventionalName: String { base + ".data" }

    init(output: String, model: Model, options: SaveOptions) {
        let outputName = baseName(of: output)
        directory = directoryName(of: output)
        base = outputName
        inputFiles = model.inputFiles
        replaceInput = options.replaceInput
        reserved = options.reservedPaths.compactMap(FilePlace.init)
        let entries = folderEntryNames(directory)
        folderEntries = entries ?? []
        var info = stat()
        if lstat(fsPath(output), &info) != 0 {
            replaced = []
        } else if let entries, !entries.contains(where: { Self.isDataName($0, of: outputName) }) {
            // Nothing to keep whole or to remove: the old model need not be read.
            replaced = []
        } else if let input = model.inputFiles.first, input.device == UInt64(info.st_dev), input.inode == UInt64(info.st_ino) {
            replaced = Array(model.inputFiles.dropFirst())
        } else if let old = try? ModelFile.load(path: output) {
            replaced = Array(old.inputFiles.dropFirst())
        } else {
            replaced = nil
        }
        for file in replaced ?? [] where isNamedAfterOutput(file.path) {
            let path = directory + "/" + baseName(of: file.path)
            guard lstat(fsPath(path), &info) == 0, (info.st_mode & S_IFMT) == S_IFREG,
                  UInt64(info.st_dev) == file.device, UInt64(info.st_ino) == file.inode else { continue }
            removable.append((path, file.device, file.inode, info.st_ctim))
        }
    }

    /// Whether `name` is `<base>.data` or `<base>.data.<k>` (k decimal digits). No model's
    /// conventional data file (`<model>.data`) is named `<base>.data.<k>`.
    static func isDataName(_ name: String, of base: String) -> Bool {
        // Compared in place, without arrays: every entry of the output's folder is tested at
        // each save.
        var name = name, base = base
        return name.withUTF8 { name in
            base.withUTF8 { base in
                let prefixCount = base.count + 5
                guard name.count >= prefixCount, name[..<base.count].elementsEqual(base),
                      name[base.count..<prefixCount].elementsEqual(".data".utf8) else { return false }
                if name.count == prefixCount { return true }
                let suffix = name[prefixCount...]
                return suffix.count >= 2 && suffix.first == UInt8(ascii: ".")
                    && suffix.dropFirst().allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
            }
        }
    }

    /// The next name to try for the new data file: `<output>.data`, then `<output>.data.1`,
    /// `.data.2`, ..., skipping every name something is at (the new data file never replaces a
    /// file: the replaced model, or another model, may read it) and the reserved places.
    mutating func nextName() throws -> String {
        while nextIndex < 100_000 {
            let name = nextIndex == 0 ? conventionalName : "\(conventionalName).\(nextIndex)"
            nextIndex += 1
            let path = directory + "/" + name
            if let place = FilePlace(path), reserved.contains(place) { continue }
            var info = stat()
            if lstat(fsPath(path), &info) == 0 { continue }
            switch currentErrno {
            case ENOENT:
                return name
            case ENAMETOOLONG:
                throw ModelFileError.unwritable(file: directory + "/" + conventionalName, reason: "that name is taken (the model being replaced, or another file, may read it) and '\(name)' is longer than a file name may be; choose a shorter output name")
            default:
                throw ModelFileError.io(file: path, operation: "stat", errno: currentErrno)
            }
        }
        throw ModelFileError.unwritable(file: directory + "/" + conventionalName,
                                        reason: "no free name for the data file (\(conventionalName).1 to .99999 are taken)")
    }

    /// The permission bits of the new data file: those of the replaced model's data named after
    /// the output; else the bits both the model's and the input's first data file have (a
    /// private model or private weights stay private); else the model's.
    func permissions(model: UInt32?) -> UInt32? {
        for file in removable {
            if let bits = ModelFile.regularFilePermissions(file.path) { return bits }
        }
        if let data = inputFiles.dropFirst().first, let bits = ModelFile.regularFilePermissions(data.path) {
            return model.map { $0 & bits } ?? bits
        }
        return model
    }

    /// Whether `path` is in the output's folder and named `<output>.data` or `<output>.data.<k>`.
    func isNamedAfterOutput(_ path: String) -> Bool {
        let name = baseName(of: path)
        guard let folder = FilePlace(path), FilePlace(directory + "/" + name) == folder else { return false }
        return Self.isDataName(name, of: base)
    }

    /// Once the new model is in place: removes the data files the replaced model read that are
    /// named after the output (other than `keeping`, the new one), if they are still the same
    /// files. Never an input file unless the save replaces its input, nor a reserved place.
    func removeReplacedData(keeping: String?) {
        var removed = false
        for file in removable where baseName(of: file.path) != keeping {
            var info = stat()
            guard lstat(fsPath(file.path), &info) == 0, (info.st_mode & S_IFMT) == S_IFREG,
                  UInt64(info.st_dev) == file.device, UInt64(info.st_ino) == file.inode,
                  info.st_ctim.tv_sec == file.changed.tv_sec, info.st_ctim.tv_nsec == file.changed.tv_nsec else { continue }
            if let place = FilePlace(file.path), reserved.contains(place) { continue }
            let isInput = inputFiles.contains { $0.device == file.device && $0.inode == file.inode }
            if isInput && !replaceInput { continue }
            removed = unlink(fsPath(file.path)) == 0 || removed
        }
        if removed { ModelFile.syncDirectory(directory) }
    }

    /// The modification time a new data file has until its model is in place (1970-01-01
    /// 00:00:01.123456789): no other file has it in practice.
    static let unreadMark = timespec(tv_sec: 1, tv_nsec: 123_456_789)

    /// Removes the data files named after the output that a save wrote but whose model never
    /// came into place (the save was killed between its two renames): those still marked
    /// unread (`unreadMark`), that no save is writing (none holds its lock) and that the model
    /// now at the output does not read. A data file whose model was in place is never
    /// collected, even if nothing reads it any more: another model (the output renamed, say)
    /// may. Never an input file unless the save replaces its input, nor a reserved place.
    /// The folder's names from before the save serve: a data file made since is locked, or
    /// was in place, and is left alone either way.
    func collectOrphans(output: String, keeping: String?) {
        let names = folderEntries.filter { $0 != keeping && Self.isDataName($0, of: base) }
        guard !names.isEmpty else { return }
        // Lock every candidate first: a locked file cannot become read by a model meanwhile
        // (a save only installs a model reading the file it claimed and holds locked).
        var locked: [(path: String, descriptor: FileDescriptor, device: UInt64, inode: UInt64)] = []
        for name in names {
            let path = directory + "/" + name
            if let place = FilePlace(path), reserved.contains(place) { continue }
            let fd = open(fsPath(path), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
            guard fd >= 0 else { continue }
            let descriptor = FileDescriptor(fd)
            var info = stat()
            guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG,
                  info.st_mtim.tv_sec == Self.unreadMark.tv_sec, info.st_mtim.tv_nsec == Self.unreadMark.tv_nsec,
                  flock(fd, LOCK_EX | LOCK_NB) == 0 else { continue }
            let (device, inode) = (UInt64(info.st_dev), UInt64(info.st_ino))
            if inputFiles.contains(where: { $0.device == device && $0.inode == inode }) && !replaceInput { continue }
            locked.append((path, descriptor, device, inode))
        }
        guard !locked.isEmpty, let current = try? ModelFile.load(path: output) else { return }
        let read = current.inputFiles.dropFirst()
        var removed = false
        for file in locked where !read.contains(where: { $0.device == file.device && $0.inode == file.inode }) {
            var info = stat()
            guard lstat(fsPath(file.path), &info) == 0, UInt64(info.st_dev) == file.device, UInt64(info.st_ino) == file.inode else { continue }
            removed = unlink(fsPath(file.path)) == 0 || removed
        }
        if removed { ModelFile.syncDirectory(directory) }
    }
}

/// A place in the file system that may not exist yet: its folder's identity and its name, so
/// that two spellings of one place (`a/x`, `./b/../a/x`, a linked folder) compare equal.
struct FilePlace: Equatable {
    let folderDevice: UInt64
    let folderInode: UInt64
    let name: String

    /// Nil when the folder does not exist.
    init?(_ path: String) {
        var info = stat()
        guard stat(fsPath(directoryName(of: path)), &info) == 0 else { return nil }
        folderDevice = UInt64(info.st_dev)
        folderInode = UInt64(info.st_ino)
        name = baseName(of: path)
    }
}

/// Temporary files beside their targets, removed unless committed (renamed into place),
/// also when the process is interrupted by a signal.
struct TemporaryFiles {
    private var pending: [(path: String, slot: Int32)] = []
    /// Creates `.<name>.tmp-<pid>-<random>` in the target's folder, exclusively, with
    /// `permissions` when given.
    mutating func create(beside target: String, permissions: UInt32? = nil) throws -> (FileDescriptor, String) {
        let directory = directoryName(of: target)
        for _ in 0..<100 {
            let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 36)
            let path = directory + "/" + Self.temporaryPrefix(of: target) + "\(getpid())-\(suffix)"
            let fd = open(fsPath(path), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
            if fd >= 0 {
                let descriptor = FileDescriptor(fd)
                // Held while the file is open: `removeLeftovers` of another run leaves it alone.
                flock(fd, LOCK_EX)
                pending.append((path, onnx_fuse_track_temporary(fsPath(path))))
                if let permissions, fchmod(fd, mode_t(permissions)) != 0 {
                    throw ModelFileError.io(file: target, operation: "set the permissions of", errno: currentErrno)
                }
                return (descriptor, path)
            }
            // The folder is named: "No such file or directory" alone reads as if the output were missing.
            if currentErrno != EEXIST {
                throw ModelFileError.io(file: target, operation: "create a temporary file in its folder '\(directory)'", errno: currentErrno)
            }
        }
        throw ModelFileError.io(file: target, operation: "create a temporary file in its folder '\(directory)'", errno: EEXIST)
    }

    /// `.<name>.tmp-` for `target`'s file name, the name cut to 200 bytes (at a character
    /// boundary) so that the temporary name stays within NAME_MAX (255) for any legal name.
    static func temporaryPrefix(of target: String) -> String {
        var name = ""
        var bytes = 0
        for character in baseName(of: target) {
            bytes += character.utf8.count
            if bytes > 200 { break }
            name.append(character)
        }
        return "." + name + ".tmp-"
    }

    /// Removes temporary files of earlier runs for `targets` (all in one folder, whose entries
    /// are `names`) whose process is gone (a run killed with SIGKILL cannot clean up): regular
    /// files named `.<name>.tmp-<pid>-<suffix>`, where no process `pid` exists and nothing
    /// holds the file's lock (a writer holds it while the file is open: a process of another
    /// PID namespace, such as another container writing to a shared folder, has a pid this one
    /// cannot see).
    static func removeLeftovers(of targets: [String], among names: [String]) {
        guard let directory = targets.first.map(directoryName(of:)) else { return }
        let prefixes = targets.map(temporaryPrefix(of:))
        for name in names {
            guard let prefix = prefixes.first(where: { name.hasPrefix($0) }) else { continue }
            let rest = name.dropFirst(prefix.count)
            guard let dash = rest.firstIndex(of: "-"), let pid = Int32(rest[..<dash]), pid > 0, pid != getpid() else { continue }
            guard kill(pid, 0) != 0, currentErrno == ESRCH else { continue }
            let path = directory + "/" + name
            let fd = open(fsPath(path), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var info = stat()
            guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, flock(fd, LOCK_EX | LOCK_NB) == 0 else { continue }
            unlink(fsPath(path))
        }
    }

    /// Renames `temporary` to `target` only when nothing is at `target` (false when something
    /// is). The name is claimed first by creating it exclusively (`O_EXCL`, which every file
    /// system honours; `rename` alone would replace a file another writer put there), then the
    /// temporary file is renamed over that placeholder. The file stays tracked under its new
    /// name, removed on failure or interruption, until `keep`.
    mutating func claim(_ temporary: String, as target: String) throws -> Bool {
        let placeholder = open(fsPath(target), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard placeholder >= 0 else {
            if currentErrno == EEXIST { return false }
            throw ModelFileError.io(file: target, operation: "create", errno: currentErrno)
        }
        close(placeholder)
        guard rename(fsPath(temporary), fsPath(target)) == 0 else {
            let code = currentErrno
            unlink(fsPath(target))
            throw ModelFileError.io(file: target, operation: "rename", errno: code)
        }
        keep(temporary)
        pending.append((target, onnx_fuse_track_temporary(fsPath(target))))
        return true
    }

    /// Stops tracking `path`: it is no longer removed on failure or interruption.
    mutating func keep(_ path: String) {
        for entry in pending where entry.path == path { onnx_fuse_untrack_temporary(entry.slot) }
        pending.removeAll { $0.path == path }
    }

    /// Renames `temporary` over `target`.
    mutating func commit(_ temporary: String, to target: String) throws {
        guard rename(fsPath(temporary), fsPath(target)) == 0 else { throw ModelFileError.io(file: target, operation: "rename", errno: currentErrno) }
        keep(temporary)
    }

    /// Removes every temporary file not committed.
    mutating func removeAll() {
        for entry in pending {
            unlink(fsPath(entry.path))
            onnx_fuse_untrack_temporary(entry.slot)
        }
        pending.removeAll()
    }
}

extension ModelFile {
    /// The bytes of the regular file at `path`, at most `limit` of them (a rule file, say). It
    /// opens as models are opened: without blocking, so a FIFO or a device is refused, naming
    /// what it is, instead of waited on.
    package static func regularFileContents(_ path: String, limit: Int) throws(ModelFileError) -> [UInt8] {
        let file: MappedFile
        do {
            file = try MappedFile(path: path)
        } catch let error as ModelFileError {
            throw error
        } catch {
            throw .unsupported(file: path, reason: "\(error)")
        }
        guard file.count <= limit else {
            throw .limitExceeded(file: path, location: "", reason: "it is \(file.count) bytes, more than the limit of \(limit)")
        }
        guard let base = file.base else { return [] }
        return Array(UnsafeRawBufferPointer(start: base, count: file.count))
    }

    /// Makes SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGBUS remove the temporary files of saves in
    /// progress before the process dies of the signal; a signal the process ignores stays
    /// ignored. It replaces those signals' handlers for the whole process, so a program with
    /// handlers of its own should not call it (without it, an interrupted save may leave a
    /// `.NAME.tmp-*` temporary file beside its output). The command calls it at start-up.
    public static func removeTemporaryFilesOnSignals() {
        onnx_fuse_remove_temporaries_on_signals()
    }

    /// Whether two paths name the same existing file (same device and inode).
    public static func isSameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        guard stat(fsPath(a), &sa) == 0, stat(fsPath(b), &sb) == 0 else { return false }
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }

    /// `path` with its folder resolved by the system (symbolic links, `.` and `..`, as opening it
    /// would) and the last component kept, so that two spellings of one place compare equal; the
    /// path as given when its folder does not exist.
    package static func resolvedPath(_ path: String) -> String {
        guard let resolved = realpath(fsPath(directoryName(of: path)), nil) else { return path }
        defer { free(resolved) }
        let folder = FileNameBytes.string(UnsafeRawBufferPointer(start: resolved, count: strlen(resolved)))
        return (folder == "/" ? "" : folder) + "/" + baseName(of: path)
    }

    /// Writes `bytes` to `path` as the model is written: to a temporary file beside it, synced,
    /// then renamed over it (never over anything but a regular file). A new file gets
    /// `permissions` (nil: 0666 less the umask).
    package static func writeAtomically(_ bytes: [UInt8], to path: String, permissions: UInt32? = nil) throws {
        let bits = try existingTarget(path)?.permissions ?? permissions
        TemporaryFiles.removeLeftovers(of: [path], among: folderEntryNames(directoryName(of: path)) ?? [])
        var temporaries = TemporaryFiles()
        defer { temporaries.removeAll() }
        let (fd, temporary) = try temporaries.create(beside: path, permissions: bits)
        let status = bytes.withUnsafeBytes { onnx_fuse_write_all(fd.rawValue, $0.baseAddress, $0.count) }
        guard status == 0 else { throw ModelFileError.io(file: path, operation: "write", errno: status) }
        try sync(fd, file: path)
        try temporaries.commit(temporary, to: path)
        syncDirectory(directoryName(of: path))
    }

    /// Whether `path` is a folder (or a symbolic link to one).
    package static func isFolder(_ path: String) -> Bool {
        var info = stat()
        return stat(fsPath(path), &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// The permission bits of the regular file at `path` (not following a symbolic link), or nil.
    static func regularFilePermissions(_ path: String) -> UInt32? {
        var info = stat()
        guard lstat(fsPath(path), &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return UInt32(info.st_mode & 0o777)
    }

    /// The permission bits of the file at `path`, or nil when it cannot be read.
    public static func permissions(of path: String) -> UInt32? {
        var info = stat()
        guard stat(fsPath(path), &info) == 0 else { return nil }
        return UInt32(info.st_mode & 0o777)
    }

    /// Why `path` cannot even be looked up (a name longer than the file system allows, a folder
    /// that cannot be searched, ...), as the system says it; nil when the lookup works or only
    /// finds that nothing is there.
    public static func lookupFailure(at path: String) -> String? {
        var info = stat()
        guard lstat(fsPath(path), &info) != 0 else { return nil }
        let code = currentErrno
        return code == ENOENT ? nil : systemErrorText(code)
    }

    /// What is at `path` without following a final symbolic link: nil when nothing is, else
    /// its kind ("a regular file", "a symbolic link", "a folder", ...) and identity.
    public static func entry(at path: String) -> (kind: String, isRegular: Bool, device: UInt64, inode: UInt64)? {
        var info = stat()
        guard lstat(fsPath(path), &info) == 0 else { return nil }
        return (fileKind(info.st_mode), (info.st_mode & S_IFMT) == S_IFREG, UInt64(info.st_dev), UInt64(info.st_ino))
    }

    /// The size of the file at `path` in bytes, or nil when it cannot be read.
    public static func size(of path: String) -> Int? {
        var info = stat()
        guard stat(fsPath(path), &info) == 0 else { return nil }
        return Int(info.st_size)
    }
}
