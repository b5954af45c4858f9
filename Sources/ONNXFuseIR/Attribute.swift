/// The `AttributeProto.AttributeType` number.
public struct AttributeType: RawRepresentable, Hashable, Sendable {
    /// The number.
    public var rawValue: Int32
    /// Wraps a number.
    public init(rawValue: Int32) { self.rawValue = rawValue }
    /// One float.
    public static let float = AttributeType(rawValue: 1)
    /// One integer.
    public static let int = AttributeType(rawValue: 2)
    /// One byte string.
    public static let string = AttributeType(rawValue: 3)
    /// One tensor.
    public static let tensor = AttributeType(rawValue: 4)
    /// One graph.
    public static let graph = AttributeType(rawValue: 5)
    /// A list of floats.
    public static let floats = AttributeType(rawValue: 6)
    /// A list of integers.
    public static let ints = AttributeType(rawValue: 7)
    /// A list of byte strings.
    public static let strings = AttributeType(rawValue: 8)
    /// A list of tensors.
    public static let tensors = AttributeType(rawValue: 9)
    /// A list of graphs.
    public static let graphs = AttributeType(rawValue: 10)
    /// One sparse tensor.
    public static let sparseTensor = AttributeType(rawValue: 11)
    /// A list of sparse tensors.
    public static let sparseTensors = AttributeType(rawValue: 12)
    /// One type.
    public static let typeProto = AttributeType(rawValue: 13)
    /// A list of types.
    public static let typeProtos = AttributeType(rawValue: 14)
}

/// The value of an attribute, by its declared type.
public enum AttributeValue {
    /// `f`
    case float(Float)
    /// `i`
    case int(Int64)
    /// `s`
    case string([UInt8])
    /// `t`
    case tensor(Tensor)
    /// `g`
    case graph(Graph)
    /// `sparse_tensor`
    case sparseTensor(SparseTensor)
    /// `tp`
    case typeProto(TypeInfo)
    /// `floats`
    case floats([Float])
    /// `ints`
    case ints([Int64])
    /// `strings`
    case strings([[UInt8]])
    /// `tensors`
    case tensors([Tensor])
    /// `graphs`
    case graphs([Graph])
    /// `sparse_tensors`
    case sparseTensors([SparseTensor])
    /// `type_protos`
    case typeProtos([TypeInfo])
}

/// A node attribute (`AttributeProto`). Every field is kept as the file has it, so that
/// files round-trip exactly; `value` reads the one that `type` selects.
public struct Attribute {
    /// The attribute's name.
    public var name: String
    /// In a function body, the caller's attribute this one refers to.
    public var refAttrName: String?
    /// Documentation, if any.
    public var docString: String?
    /// The declared type; nil in files that leave it out.
    public var type: AttributeType?
    /// `f`, when present.
    public var f: Float?
    /// `i`, when present.
    public var i: Int64?
    /// `s`, when present.
    public var s: [UInt8]?
    /// `t`, when present.
    public var t: Tensor?
    /// `g`, when present: a subgraph of the node that holds this attribute.
    public var g: Graph?
    /// `sparse_tensor`, when present.
    public var sparseTensor: SparseTensor?
    /// `tp`, when present.
    public var tp: TypeInfo?
    /// `floats`
    public var floats: [Float] = []
    /// `ints`
    public var ints: [Int64] = []
    /// `strings`
    public var strings: [[UInt8]] = []
    /// `tensors`
    public var tensors: [Tensor] = []
    /// `graphs`: subgraphs of the node that holds this attribute.
    public var graphs: [Graph] = []
    /// `sparse_tensors`
    public var sparseTensors: [SparseTensor] = []
    /// `type_protos`
    public var typeProtos: [TypeInfo] = []
    /// The decoded message, for fields the IR does not interpret.
    package var origin: ProtoOrigin?

    /// An attribute with only a name; set the fields or use `init(name:value:)`.
    public init(name: String) { self.name = name }

    /// An attribute holding `value`, with its type set.
    public init(name: String, value: AttributeValue) {
        self.name = name
        switch value {
        case .float(let v): type = .float; f = v
        case .int(let v): type = .int; i = v
        case .string(let v): type = .string; s = v
        case .tensor(let v): type = .tensor; t = v
        case .graph(let v): type = .graph; g = v
        case .sparseTensor(let v): type = .sparseTensor; sparseTensor = v
        case .typeProto(let v): type = .typeProto; tp = v
        case .floats(let v): type = .floats; floats = v
        case .ints(let v): type = .ints; ints = v
        case .strings(let v): type = .strings; strings = v
        case .tensors(let v): type = .tensors; tensors = v
        case .graphs(let v): type = .graphs; graphs = v
        case .sparseTensors(let v): type = .sparseTensors; sparseTensors = v
        case .typeProtos(let v): type = .typeProtos; typeProtos = v
        }
    }

    /// The value that `type` selects; nil when the type is missing, unknown, or its field is absent.
    public var value: AttributeValue? {
        switch type {
        case .float?: return f.map { .float($0) }
        case .int?: return i.map { .int($0) }
        case .string?: return s.map { .string($0) }
        case .tensor?: return t.map { .tensor($0) }
        case .graph?: return g.map { .graph($0) }
        case .sparseTensor?: return sparseTensor.map { .sparseTensor($0) }
        case .typeProto?: return tp.map { .typeProto($0) }
        case .floats?: return .floats(floats)
        case .ints?: return .ints(ints)
        case .strings?: return .strings(strings)
        case .tensors?: return .tensors(tensors)
        case .graphs?: return .graphs(graphs)
        case .sparseTensors?: return .sparseTensors(sparseTensors)
        case .typeProtos?: return .typeProtos(typeProtos)
        default: return nil
        }
    }

    /// Every subgraph the attribute holds (`g` and `graphs`).
    public var subgraphs: [Graph] { (g.map { [$0] } ?? []) + graphs }
}
