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

/// The value of an attribute.
public enum AttributeValue {
    /// `f`
    case float(Float)
    /// `i`
    case int(Int64)
    /// `s`
    case string([UInt8])
    /// `t`
    indirect case tensor(Tensor)
    /// `g`: a subgraph of the node that holds the attribute.
    case graph(Graph)
    /// `sparse_tensor`
    indirect case sparseTensor(SparseTensor)
    /// `tp`
    indirect case typeProto(TypeInfo)
    /// `floats`
    case floats([Float])
    /// `ints`
    case ints([Int64])
    /// `strings`
    case strings([[UInt8]])
    /// `tensors`
    case tensors([Tensor])
    /// `graphs`: subgraphs of the node that holds the attribute.
    case graphs([Graph])
    /// `sparse_tensors`
    case sparseTensors([SparseTensor])
    /// `type_protos`
    case typeProtos([TypeInfo])

    /// The attribute type that holds this value.
    public var type: AttributeType {
        switch self {
        case .float: return .float
        case .int: return .int
        case .string: return .string
        case .tensor: return .tensor
        case .graph: return .graph
        case .sparseTensor: return .sparseTensor
        case .typeProto: return .typeProto
        case .floats: return .floats
        case .ints: return .ints
        case .strings: return .strings
        case .tensors: return .tensors
        case .graphs: return .graphs
        case .sparseTensors: return .sparseTensors
        case .typeProtos: return .typeProtos
        }
    }
}

/// A node attribute (`AttributeProto`): a name and a value.
///
/// Files written by old exporters may leave `type` out (the value then comes from whichever
/// field is present) or set more than one value field; the fields the value does not use
/// are kept from the file, unless `value` is changed.
public struct Attribute {
    /// The attribute's name.
    public var name: String
    /// The declared type; nil in files that leave it out.
    public var type: AttributeType?
    /// The value; nil when the file has none for the declared type.
    public var value: AttributeValue? {
        didSet { valueEdited = true }
    }
    /// In a function body, the caller's attribute this one refers to.
    public var refAttrName: String?
    /// Documentation, if any.
    public var docString: String?
    /// The decoded message, for the fields the IR does not interpret.
    package var origin: ProtoOrigin?
    /// Whether `value` changed since decoding: then no value field of `origin` survives.
    package private(set) var valueEdited = false

    /// An attribute holding `value`, with its type set.
    public init(name: String, value: AttributeValue) {
        self.name = name
        self.type = value.type
        self.value = value
    }

    /// An attribute as read from a file: `type` as declared (or nil), `value` as found.
    package init(name: String, type: AttributeType?, value: AttributeValue?, refAttrName: String?, docString: String?,
                 origin: ProtoOrigin?) {
        self.name = name
        self.type = type
        self.value = value
        self.refAttrName = refAttrName
        self.docString = docString
        self.origin = origin
    }

    /// Every subgraph the attribute holds.
    public var subgraphs: [Graph] {
        switch value {
        case .graph(let g)?: return [g]
        case .graphs(let gs)?: return gs
        default: return []
        }
    }

    /// This attribute with each subgraph `g` replaced by `transform(g)`, and as edited as it
    /// was (`valueEdited` stays, so that a copy saves as the original does): for `Model.copy()`.
    func mappingSubgraphs(_ transform: (Graph) -> Graph) -> Attribute {
        var mapped = self
        switch value {
        case .graph(let graph)?: mapped.value = .graph(transform(graph))
        case .graphs(let graphs)?: mapped.value = .graphs(graphs.map(transform))
        default: return self
        }
        mapped.valueEdited = valueEdited
        return mapped
    }

    /// Whether the attribute holds any subgraph, without building an array.
    public var hasSubgraphs: Bool {
        switch value {
        case .graph?, .graphs?: return true
        default: return false
        }
    }

    /// The value as a float, if it is one.
    public var float: Float? { if case .float(let v)? = value { return v }; return nil }
    /// The value as an integer, if it is one.
    public var int: Int64? { if case .int(let v)? = value { return v }; return nil }
    /// The value as text (UTF-8), if it is a string.
    public var string: String? { if case .string(let v)? = value { return String(decoding: v, as: UTF8.self) }; return nil }
    /// The value as a list of integers, if it is one.
    public var ints: [Int64]? { if case .ints(let v)? = value { return v }; return nil }
    /// The value as a list of floats, if it is one.
    public var floats: [Float]? { if case .floats(let v)? = value { return v }; return nil }
    /// The value as a tensor, if it is one.
    public var tensor: Tensor? { if case .tensor(let v)? = value { return v }; return nil }
}
