#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import ONNXFuse

/// The models of a batch and where each goes, found and checked before any model is read:
/// every problem here is a usage error of the whole run (exit 1, nothing written).
///
/// A folder is searched recursively for `*.onnx` files, in the byte order of their paths
/// relative to it; symbolic links to folders are not followed (they could loop), the output
/// folder is skipped when it lies inside, and without `-o` so are `*.fused.onnx` files (the
/// outputs of earlier runs). A link found in a folder to a file that is another model of the run
/// (`latest.onnx` → `v3.onnx`) is left out: the model is optimized once, under its own name.
struct BatchPlan: Sendable {
    /// One model and its output.
    struct Item: Sendable {
        /// The model's path, as given or as the folder given and the path found in it.
        let input: String
        /// Where it goes (the input itself with --in-place).
        let output: String
    }

    let items: [Item]
    /// The links found in folders that were left out, each with the model of the run it leads to.
    let skippedLinks: [(link: String, model: String)]

    /// The plan for `models` (files and folders): with `outputFolder`, a file found in a folder
    /// goes to the same relative path under it and a file given by name to its base name
    /// there; without, `defaultOutput` says where (beside the input).
    init(models: [String], outputFolder: String?, defaultOutput: (String) -> String) throws {
        let skippedFolder = outputFolder.flatMap(Self.identity(of:))
        var items: [Item] = []
        var foundLinks: Set<Int> = []
        for argument in models {
            // A name that is not there is a mistyped argument (`onnx-fuse rules frobnicate`),
            // not a model that failed: the whole run stops before any model.
            if ModelFile.entry(at: argument) == nil {
                let failure = ModelFile.lookupFailure(at: argument) ?? "no such file or folder"
                throw UsageError(message: "\(argument): \(failure)" + (argument == "rules" ? " (the rules command: onnx-fuse rules list|show|check)" : ""))
            }
            if let skippedFolder, ModelFile.isFolder(argument), Self.identity(of: argument) == skippedFolder {
                throw UsageError(message: "\(argument): the folder to search is the output folder; name another with -o")
            }
            guard ModelFile.isFolder(argument) else {
                let output = outputFolder.map { joined($0, baseName(of: argument)) } ?? defaultOutput(argument)
                items.append(Item(input: argument, output: output))
                continue
            }
            var found: [(path: [CChar], isLink: Bool)] = []
            try Self.search(argument, relative: [], skipping: skippedFolder, into: &found)
            let relative = found.sorted { $0.path.lexicographicallyPrecedes($1.path) { UInt8(bitPattern: $0) < UInt8(bitPattern: $1) } }
            for entry in relative {
                let path = FileNameBytes.string(entry.path.map { UInt8(bitPattern: $0) })
                if outputFolder == nil && path.hasSuffix(".fused.onnx") { continue }
                let input = joined(argument, path)
                if entry.isLink { foundLinks.insert(items.count) }
                items.append(Item(input: input, output: outputFolder.map { joined($0, path) } ?? defaultOutput(input)))
            }
        }
        // Links found in folders to models of the run are left out (after the search: a link
        // sorts before or after its target). Everything else given twice is refused later.
        var modelByFile: [FileID: String] = [:]
        for (index, item) in items.enumerated() where !foundLinks.contains(index) {
            if let id = Self.identity(of: item.input), modelByFile[id] == nil { modelByFile[id] = item.input }
        }
        var kept: [Item] = []
        var skipped: [(link: String, model: String)] = []
        for (index, item) in items.enumerated() {
            if foundLinks.contains(index), let id = Self.identity(of: item.input) {
                if let model = modelByFile[id] {
                    skipped.append((item.input, model))
                    continue
                }
                modelByFile[id] = item.input  // two links to one file outside the run: the first is read
            }
            kept.append(item)
        }
        self.items = kept
        skippedLinks = skipped
    }

    /// Appends the paths (relative to the folder searched, as bytes) of the `*.onnx` regular
    /// files under `folder`, and of links to such files (marked), to `found`; folders are entered, links
    /// to folders and the folder `skipping` identifies are not.
    private static func search(_ folder: String, relative: [CChar], skipping: FileID?,
                               into found: inout [(path: [CChar], isLink: Bool)]) throws {
        if let skipping, identity(of: folder) == skipping { return }
        guard let names = folderEntryBytes(folder) else {
            throw UsageError(message: "\(folder): cannot read the folder: \(String(cString: strerror(errno)))")
        }
        for name in names {
            let path = relative.isEmpty ? name : relative + [47] + name  // "/"
            let full = folder + "/" + FileNameBytes.string(name.map { UInt8(bitPattern: $0) })
            var info = stat()
            guard lstat(FileNameBytes.cString(full), &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                try search(full, relative: path, skipping: skipping, into: &found)
            case S_IFREG, S_IFLNK:
                // A link counts when it leads to a regular file; one to a folder is not followed.
                guard name.count > 5, name.suffix(5) == Array(".onnx".utf8CString.dropLast()) else { continue }
                let isLink = (info.st_mode & S_IFMT) == S_IFLNK
                if isLink {
                    guard stat(FileNameBytes.cString(full), &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
                }
                found.append((path, isLink))
            default:
                continue
            }
        }
    }

    /// A file's device and inode.
    struct FileID: Hashable, Sendable {
        let device: UInt64
        let inode: UInt64
    }

    /// The identity of what `path` names (following links), or nil when nothing is there.
    static func identity(of path: String) -> FileID? {
        var info = stat()
        guard stat(FileNameBytes.cString(path), &info) == 0 else { return nil }
        return FileID(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    /// Refuses, before anything is read or written, a model given twice, two models with one
    /// output, an output that is an input (but for `--in-place`, its own), an output whose data
    /// file could be named like another output or an input (`OUT.data`, `OUT.data.N`), and a
    /// report that is one of those files.
    func checkCollisions(inPlace: Bool, report: String?) throws {
        /// One place however spelled: its identity when it exists, else its resolved path.
        enum Place: Hashable {
            case file(FileID)
            case path(String)
        }
        func place(_ path: String) -> Place {
            identity(path).map(Place.file) ?? .path(ModelFile.resolvedPath(normalized(path)))
        }
        func identity(_ path: String) -> FileID? { Self.identity(of: path) }
        var inputs: [Place: String] = [:]
        for item in items {
            let key = place(item.input)
            if let first = inputs[key] {
                throw UsageError(message: "\(item.input): the model is given twice (also as \(first))")
            }
            inputs[key] = item.input
        }
        var outputs: [Place: String] = [:]
        for item in items {
            let key = place(item.output)
            if let first = outputs[key] {
                throw UsageError(message: "\(item.output): two models would be written there (\(first) and \(item.input))")
            }
            outputs[key] = item.input
            if let input = inputs[key], !(inPlace && input == item.input) {
                throw UsageError(message: "\(item.output): refusing to overwrite the input \(input) with the output of \(item.input)")
            }
        }
        // The names a data file of each output can take, against every other file of the run.
        let resolved = items.map { (input: ModelFile.resolvedPath(normalized($0.input)), output: ModelFile.resolvedPath(normalized($0.output))) }
        for (index, item) in items.enumerated() {
            let data = resolved[index].output + ".data"
            for (other, paths) in resolved.enumerated() {
                for (path, what) in [(paths.input, "the input"), (paths.output, "the output")] where !(other == index && what == "the input" && inPlace) {
                    guard path.hasPrefix(data) else { continue }
                    let rest = path.dropFirst(data.count)
                    guard rest.isEmpty || (rest.first == "." && rest.count > 1 && rest.dropFirst().allSatisfy(\.isNumber)) else { continue }
                    throw UsageError(message: "\(item.output): its data file could be named \(what) of \(items[other].input)")
                }
            }
        }
        if let report {
            let key = place(report)
            let reportPath = ModelFile.resolvedPath(normalized(report))
            for (index, item) in items.enumerated() {
                if inputs[key] == item.input || reportPath == resolved[index].input {
                    throw UsageError(message: "\(report): refusing to write the report: it is the input model \(item.input)")
                }
                if outputs[key] == item.input || reportPath == resolved[index].output {
                    throw UsageError(message: "\(report): refusing to write the report: it is the output of \(item.input)")
                }
                if reportPath.hasPrefix(resolved[index].output + ".data") {
                    throw UsageError(message: "\(report): refusing to write the report: it is the output's data file of \(item.input)")
                }
            }
        }
    }

    /// Refuses an output that would replace, or whose replacement would remove, a data file an
    /// input model reads. Only an output that already exists can (a new data file never
    /// replaces a file), and only one under the folder of the model (external data lies in the
    /// model's folder): those models are loaded to learn their data files, and released.
    func checkExternalData(threads: Int) throws {
        var existing: [FileID: Int] = [:]
        var folders: Set<String> = []
        var entries: [String: [String]] = [:]
        for (index, item) in items.enumerated() {
            let output = ModelFile.resolvedPath(normalized(item.output))
            let folder = directoryName(of: output)
            if entries[folder] == nil { entries[folder] = folderEntries(folder) }
            var paths = [output]
            // The data files named after the output, which its replacement removes.
            for name in entries[folder]! where (folder + "/" + name).hasPrefix(output + ".data") {
                paths.append(folder + "/" + name)
            }
            for path in paths {
                guard let id = Self.identity(of: path) else { continue }
                existing[id] = index
                folders.insert(folder + "/")
            }
        }
        guard !existing.isEmpty else { return }
        let items = self.items
        let candidates = items.indices.filter { index in
            let folder = directoryName(of: ModelFile.resolvedPath(normalized(items[index].input))) + "/"
            return folders.contains { $0.hasPrefix(folder) }
        }
        // Loaded on the batch's threads (a load maps the file and reads its structure: some
        // milliseconds each), then released.
        let dataFiles = parallelMap(candidates.count, threads: threads) { position -> [FileIdentity] in
            // A model that cannot be read gets its own error when it runs.
            guard let model = try? ModelFile.load(path: items[candidates[position]].input) else { return [] }
            return Array(model.inputFiles.dropFirst())
        }
        for (position, index) in candidates.enumerated() {
            for file in dataFiles[position] {
                if let other = existing[FileID(device: file.device, inode: file.inode)], other != index {
                    throw UsageError(message: "\(items[other].output): refusing to write the output of \(items[other].input): "
                        + "\(file.path) is a data file of the input \(items[index].input)")
                }
            }
        }
    }

    /// The names in `folder` (none when it cannot be read).
    private func folderEntries(_ folder: String) -> [String] {
        (folderEntryBytes(folder) ?? []).map { name in FileNameBytes.string(name.map { UInt8(bitPattern: $0) }) }
    }
}

/// The names in `folder` but `.` and `..`, as bytes; nil when it cannot be read (`errno` says why).
private func folderEntryBytes(_ folder: String) -> [[CChar]]? {
    guard let stream = opendir(FileNameBytes.cString(folder)) else { return nil }
    defer { closedir(stream) }
    var names: [[CChar]] = []
    while let entry = readdir(stream) {
        // Read in place: a record is only as long as its name, so copying the `dirent` (its
        // name field is 256 bytes) could read past the end of the system's buffer.
        let pointer = (UnsafeRawPointer(entry) + MemoryLayout<dirent>.offset(of: \dirent.d_name)!).assumingMemoryBound(to: CChar.self)
        let name = Array(UnsafeBufferPointer(start: pointer, count: strlen(pointer)))
        if name == [46] || name == [46, 46] { continue }  // "." and ".."
        names.append(name)
    }
    return names
}

/// `folder` and `name` joined by one slash.
func joined(_ folder: String, _ name: String) -> String {
    folder.hasSuffix("/") ? folder + name : folder + "/" + name
}

/// `path` without `.` components and repeated slashes (`a//./b` is `a/b`), so that two
/// spellings of a path not yet made compare equal; `..` stays (a link could make it anything).
func normalized(_ path: String) -> String {
    let absolute = path.hasPrefix("/")
    let parts = path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
    let joinedParts = parts.joined(separator: "/")
    return absolute ? "/" + joinedParts : (joinedParts.isEmpty ? "." : joinedParts)
}
