/// One dimension of a shape: a number, a symbolic name, or unknown.
public enum Dimension: Equatable, Sendable, CustomStringConvertible {
    /// A fixed size.
    case value(Int64)
    /// A symbolic size such as `N`.
    case param(String)
    /// Neither is given.
    case unknown

    /// `3`, `N` or `?`.
    public var description: String {
        switch self {
        case .value(let v): return String(v)
        case .param(let p): return p
        case .unknown: return "?"
        }
    }
}

/// The type of a value (`TypeProto`): a tensor type with element type and shape, or a
/// sequence, map, optional, sparse tensor or opaque type.
public struct TypeInfo: Sendable, CustomStringConvertible {
    /// The kinds of type.
    public indirect enum Kind: Sendable {
        /// A dense tensor; `shape` nil means the rank is unknown.
        case tensor(elementType: DataType?, shape: [Dimension]?)
        /// A sequence of elements of one type.
        case sequence(TypeInfo?)
        /// A map from a key element type to a value type.
        case map(keyType: DataType?, valueType: TypeInfo?)
        /// An optional value.
        case optional(TypeInfo?)
        /// A sparse tensor.
        case sparseTensor(elementType: DataType?, shape: [Dimension]?)
        /// An opaque type named by domain and name.
        case opaque(domain: String?, name: String?)
    }

    /// The kind; nil when the file sets none.
    public var kind: Kind? { didSet { origin = nil } }
    /// The denotation, if any.
    public var denotation: String? { didSet { origin = nil } }
    /// The unmodified decoded message, reused as is by the saver (it keeps dimension
    /// denotations and unknown fields); any change drops it.
    package var origin: ProtoOrigin?

    /// A type.
    public init(kind: Kind?, denotation: String? = nil) {
        self.kind = kind
        self.denotation = denotation
        self.origin = nil
    }

    /// A tensor type.
    public static func tensor(_ elementType: DataType, _ shape: [Dimension]?) -> TypeInfo {
        TypeInfo(kind: .tensor(elementType: elementType, shape: shape))
    }

    /// The element type of a tensor type.
    public var elementType: DataType? {
        if case .tensor(let t, _) = kind { return t }
        return nil
    }

    /// The shape of a tensor type, nil when unknown.
    public var shape: [Dimension]? {
        if case .tensor(_, let s) = kind { return s }
        return nil
    }

    /// ONNX textual syntax: `float[N,3,224,224]`, `seq(float[2])`, ...
    public var description: String {
        func shapeText(_ shape: [Dimension]?) -> String {
            guard let shape else { return "" }
            return "[" + shape.map(\.description).joined(separator: ",") + "]"
        }
        switch kind {
        case .tensor(let t, let s)?: return (t?.description ?? "?") + shapeText(s)
        case .sparseTensor(let t, let s)?: return "sparse_tensor(" + (t?.description ?? "?") + shapeText(s) + ")"
        case .sequence(let e)?: return "seq(" + (e?.description ?? "?") + ")"
        case .optional(let e)?: return "optional(" + (e?.description ?? "?") + ")"
        case .map(let k, let v)?: return "map(" + (k?.description ?? "?") + ", " + (v?.description ?? "?") + ")"
        case .opaque(let d, let n)?: return "opaque(" + (d ?? "") + "," + (n ?? "") + ")"
        case nil: return "?"
        }
    }
}

/// What a file declares about a value (`ValueInfoProto` without the name, which is the
/// value's): its type, documentation and metadata.
public struct ValueInfo: Sendable {
    /// The declared type.
    public var type: TypeInfo?
    /// Documentation, if any.
    public var docString: String?
    /// Named metadata.
    public var metadataProps: [StringPair]
    /// The decoded message, for fields the IR does not interpret.
    package var origin: ProtoOrigin?

    /// Declared information about a value.
    public init(type: TypeInfo?, docString: String? = nil, metadataProps: [StringPair] = []) {
        self.type = type
        self.docString = docString
        self.metadataProps = metadataProps
        self.origin = nil
    }
}
