/// Why a model could not be loaded or saved. Each case names the file; `description` is
/// the one-line message the command prints after `onnx-fuse: error: `.
public enum ModelFileError: Error, CustomStringConvertible, Equatable {
    /// The file is not a valid ONNX model (or uses something this build cannot represent).
    /// `location` is a field path such as `graph.node[3] (Conv 'conv1')`, `offset` the byte
    /// offset in the file when known.
    case invalidModel(file: String, location: String, reason: String, offset: UInt64?)
    /// A limit was exceeded: nesting depth, memory budget, file size.
    case limitExceeded(file: String, location: String, reason: String)
    /// A system call failed.
    case io(file: String, operation: String, errno: Int32)
    /// The file cannot be used as asked (a folder given as a model, for one).
    case unsupported(file: String, reason: String)
    /// The output cannot be written as asked (external data to standard output, for one): a
    /// usage problem, the model itself is fine.
    case unwritable(file: String, reason: String)
    /// A file the model was loaded from (the model file, or one of its external data files)
    /// changed since (`ModelFile.checkInputUnchanged`): the model's weights, read from it in
    /// place, can no longer be trusted. Load it again.
    case inputChanged(file: String, change: FileChange)

    /// The file the error is about.
    public var file: String {
        switch self {
        case .invalidModel(let f, _, _, _), .limitExceeded(let f, _, _), .io(let f, _, _), .unsupported(let f, _), .unwritable(let f, _),
             .inputChanged(let f, _):
            return f
        }
    }

    /// `<file>: <what is wrong, and where>`.
    public var description: String { "\(file): \(problem)" }

    /// What is wrong, and where, without the file.
    public var problem: String {
        switch self {
        case .invalidModel(_, let location, let reason, let offset):
            let at = offset.map { " (byte \($0))" } ?? ""
            return location.isEmpty ? "\(reason)\(at)" : "\(location): \(reason)\(at)"
        case .limitExceeded(_, let location, let reason):
            return location.isEmpty ? reason : "\(location): \(reason)"
        case .io(_, let operation, let code):
            return "\(operation) failed: \(systemErrorText(code))"
        case .unsupported(_, let reason), .unwritable(_, let reason):
            return reason
        case .inputChanged(_, let change):
            return "the file changed since the model was loaded from it (\(change))"
        }
    }
}
