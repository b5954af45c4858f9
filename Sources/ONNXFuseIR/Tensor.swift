/// A key/value string pair (`StringStringEntryProto`); either side may be absent in a file.
public struct StringPair: Equatable, Sendable {
    /// The key, nil when the file leaves it out.
    public var key: String?
    /// The value, nil when the file leaves it out.
    public var value: String?

    /// A pair.
    public init(key: String?, value: String?) {
        self.key = key
        self.value = value
    }
}

/// Which field of a `TensorProto` holds the elements. Numeric fields other than `raw_data`
/// hold host-order arrays of the field's own element type (`float_data` holds `Float`s).
public enum TensorStorage: Equatable, Sendable {
    /// No elements stored (a tensor with zero elements).
    case none
    /// `raw_data`: little-endian, packed; for external tensors the bytes of the data file.
    case raw(TensorBytes)
    /// `float_data`: `Float` values.
    case floatData(TensorBytes)
    /// `int32_data`: `Int32` values.
    case int32Data(TensorBytes)
    /// `int64_data`: `Int64` values.
    case int64Data(TensorBytes)
    /// `double_data`: `Double` values.
    case doubleData(TensorBytes)
    /// `uint64_data`: `UInt64` values.
    case uint64Data(TensorBytes)
    /// `string_data`: byte strings.
    case stringData([[UInt8]])
}

/// A tensor constant (`TensorProto`): an initializer, a `Constant` node's value, or an
/// attribute. Weights are not copied: `storage` points into the mapped file.
public struct Tensor: Sendable {
    /// The tensor's own name; for an initializer the saver writes the value's name.
    public var name: String?
    /// The element type.
    public var dataType: DataType
    /// The shape.
    public var dims: [Int64]
    /// Where the elements are.
    public var storage: TensorStorage
    /// Documentation, if any.
    public var docString: String?
    /// `data_location` as in the file (nil when absent; 0 default, 1 external).
    public var dataLocation: Int32?
    /// `external_data` entries as in the file; the saver rewrites location, offset and length.
    public var externalData: [StringPair]
    /// Named metadata.
    public var metadataProps: [StringPair]
    /// The message this tensor was decoded from, for the fields the IR does not interpret.
    package var origin: ProtoOrigin?

    /// A tensor with the given elements.
    public init(name: String? = nil, dataType: DataType, dims: [Int64], storage: TensorStorage) {
        self.name = name
        self.dataType = dataType
        self.dims = dims
        self.storage = storage
        self.docString = nil
        self.dataLocation = nil
        self.externalData = []
        self.metadataProps = []
        self.origin = nil
    }

    /// A tensor as read from a file, every field at once: the loader builds thousands, and
    /// setting the fields one by one after `init(name:dataType:dims:storage:)` copies the
    /// tensor each time.
    package init(name: String?, dataType: DataType, dims: [Int64], storage: TensorStorage, docString: String?,
                 dataLocation: Int32?, externalData: [StringPair], metadataProps: [StringPair], origin: ProtoOrigin?) {
        self.name = name
        self.dataType = dataType
        self.dims = dims
        self.storage = storage
        self.docString = docString
        self.dataLocation = dataLocation
        self.externalData = externalData
        self.metadataProps = metadataProps
        self.origin = origin
    }

    /// A little-endian `raw_data` tensor holding `values`.
    public init<T: BitwiseCopyable>(name: String? = nil, dataType: DataType, dims: [Int64], values: [T]) {
        let bytes = values.withUnsafeBytes { TensorBytes(copying: $0) }
        self.init(name: name, dataType: dataType, dims: dims, storage: .raw(bytes))
    }

    /// `data_location == EXTERNAL`: the elements live in a data file beside the model.
    public var isExternal: Bool { dataLocation == 1 }

    /// The number of elements, or nil when a dim is negative or the product overflows.
    public var elementCount: Int? {
        var count = 1
        for dim in dims {
            guard dim >= 0, let d = Int(exactly: dim) else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            count = product
        }
        return count
    }

    /// Bytes held by the payload (for `string_data`, the sum of the strings).
    public var payloadByteCount: Int {
        switch storage {
        case .none: return 0
        case .raw(let b), .floatData(let b), .int32Data(let b), .int64Data(let b), .doubleData(let b), .uint64Data(let b):
            return b.count
        case .stringData(let strings): return strings.reduce(0) { $0 + $1.count }
        }
    }

    /// Lets go of the pages of the payload's mapped file that reading it mapped into the
    /// process (`TensorBytes.releaseResidentPages`); nothing for a payload in memory. Only
    /// payloads of a page or more are read in place from a file (smaller ones are copied at
    /// load), so one system call covers at least a page the read brought in, and the page-cache
    /// folio around it.
    public func releaseMappedPages() {
        switch storage {
        case .raw(let b), .floatData(let b), .int32Data(let b), .int64Data(let b), .doubleData(let b), .uint64Data(let b):
            b.releaseResidentPages()
        case .none, .stringData: break
        }
    }

    /// What is inconsistent between the type, the dims and the stored elements, or nil.
    public var payloadProblem: String? {
        guard dataType != .undefined else { return "has no data_type" }
        for (axis, dim) in dims.enumerated() where dim < 0 {
            return "dim \(axis) is negative (\(dim))"
        }
        guard let n = elementCount else { return "dims \(dims) have a product that overflows" }
        let bits = dataType.bitWidth
        func expect(_ field: String, _ have: Int, _ want: Int?, unit: String) -> String? {
            guard let want else { return "\(field) cannot hold \(dataType)" }
            return have == want ? nil : "\(field) has \(have) \(unit) but dims \(dims) of \(dataType) need \(want)"
        }
        switch storage {
        case .none:
            return n == 0 ? nil : "has no data for \(n) elements"
        case .raw(let bytes):
            if dataType == .string { return "raw_data cannot hold strings" }
            return expect(isExternal ? "external data" : "raw_data", bytes.count, dataType.rawByteCount(elements: n), unit: "bytes")
        case .floatData(let bytes):
            let want = dataType == .float ? n : dataType == .complex64 ? n.multipliedReportingOverflow(by: 2).partialValue : nil
            return expect("float_data", bytes.count / 4, want, unit: "values")
        case .doubleData(let bytes):
            let want = dataType == .double ? n : dataType == .complex128 ? n.multipliedReportingOverflow(by: 2).partialValue : nil
            return expect("double_data", bytes.count / 8, want, unit: "values")
        case .int64Data(let bytes):
            return expect("int64_data", bytes.count / 8, dataType == .int64 ? n : nil, unit: "values")
        case .uint64Data(let bytes):
            return expect("uint64_data", bytes.count / 8, dataType == .uint32 || dataType == .uint64 ? n : nil, unit: "values")
        case .int32Data(let bytes):
            var want: Int?
            if let bits, bits <= 32, ![DataType.float, .uint32, .complex64].contains(dataType) {
                want = bits == 4 ? (n + 1) / 2 : bits == 2 ? (n + 3) / 4 : n
            }
            return expect("int32_data", bytes.count / 4, want, unit: "values")
        case .stringData(let strings):
            return expect("string_data", strings.count, dataType == .string ? n : nil, unit: "strings")
        }
    }

    /// The elements as `Double`s for the real numeric types (float, double, float16,
    /// bfloat16 and the integer types), nil for others or an inconsistent payload.
    public func doubleValues() -> [Double]? {
        guard payloadProblem == nil, let n = elementCount else { return nil }
        switch storage {
        case .none: return []
        case .floatData(let b) where dataType == .float:
            return (0..<n).map { Double(b.load(elementAt: $0, as: Float.self)) }
        case .doubleData(let b) where dataType == .double:
            return (0..<n).map { b.load(elementAt: $0, as: Double.self) }
        case .int64Data(let b):
            return (0..<n).map { Double(b.load(elementAt: $0, as: Int64.self)) }
        case .uint64Data(let b):
            return (0..<n).map { Double(b.load(elementAt: $0, as: UInt64.self)) }
        case .int32Data(let b):
            switch dataType {
            case .float16: return (0..<n).map { Double(halfToFloat(UInt16(truncatingIfNeeded: b.load(elementAt: $0, as: Int32.self)))) }
            case .bfloat16: return (0..<n).map { Double(Float(bitPattern: UInt32(UInt16(truncatingIfNeeded: b.load(elementAt: $0, as: Int32.self))) << 16)) }
            case .int32, .int16, .int8, .uint16, .uint8, .bool: return (0..<n).map { Double(b.load(elementAt: $0, as: Int32.self)) }
            default: return nil
            }
        case .raw(let b):
            switch dataType {
            case .float: return (0..<n).map { Double(Float(bitPattern: UInt32(littleEndian: b.load(elementAt: $0, as: UInt32.self)))) }
            case .double: return (0..<n).map { Double(bitPattern: UInt64(littleEndian: b.load(elementAt: $0, as: UInt64.self))) }
            case .float16: return (0..<n).map { Double(halfToFloat(UInt16(littleEndian: b.load(elementAt: $0, as: UInt16.self)))) }
            case .bfloat16: return (0..<n).map { Double(Float(bitPattern: UInt32(UInt16(littleEndian: b.load(elementAt: $0, as: UInt16.self))) << 16)) }
            case .int8: return (0..<n).map { Double(b.load(elementAt: $0, as: Int8.self)) }
            case .uint8, .bool: return (0..<n).map { Double(b.load(elementAt: $0, as: UInt8.self)) }
            case .int16: return (0..<n).map { Double(Int16(littleEndian: b.load(elementAt: $0, as: Int16.self))) }
            case .uint16: return (0..<n).map { Double(UInt16(littleEndian: b.load(elementAt: $0, as: UInt16.self))) }
            case .int32: return (0..<n).map { Double(Int32(littleEndian: b.load(elementAt: $0, as: Int32.self))) }
            case .uint32: return (0..<n).map { Double(UInt32(littleEndian: b.load(elementAt: $0, as: UInt32.self))) }
            case .int64: return (0..<n).map { Double(Int64(littleEndian: b.load(elementAt: $0, as: Int64.self))) }
            case .uint64: return (0..<n).map { Double(UInt64(littleEndian: b.load(elementAt: $0, as: UInt64.self))) }
            default: return nil
            }
        default: return nil
        }
    }
}

/// IEEE half to single precision, exact (every half is a float).
func halfToFloat(_ bits: UInt16) -> Float {
    let sign = UInt32(bits & 0x8000) << 16
    let exponent = Int(bits >> 10) & 0x1F
    let mantissa = UInt32(bits & 0x3FF)
    if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
    if exponent == 0 {
        let magnitude = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
        return sign == 0 ? magnitude : -magnitude
    }
    return Float(bitPattern: sign | UInt32(exponent + 112) << 23 | (mantissa << 13))
}

/// A sparse tensor (`SparseTensorProto`): non-default values, their indices, and the shape.
public struct SparseTensor: Sendable {
    /// The non-default values, shape [NNZ]; its name is the sparse tensor's name.
    public var values: Tensor?
    /// Their indices, shape [NNZ] (linearized) or [NNZ, rank].
    public var indices: Tensor?
    /// The dense shape.
    public var dims: [Int64]
    /// The message this was decoded from.
    package var origin: ProtoOrigin?

    /// A sparse tensor.
    public init(values: Tensor?, indices: Tensor?, dims: [Int64]) {
        self.values = values
        self.indices = indices
        self.dims = dims
        self.origin = nil
    }
}

/// Keeps a decoded protobuf message reachable for the fields the IR does not interpret
/// (unknown fields, device configurations, segments): the saver starts from a copy of it.
/// Opaque to everything but the proto layer.
package struct ProtoOrigin: @unchecked Sendable {
    /// Keeps the decoded message tree alive.
    package let owner: AnyObject
    /// The decoded message.
    package let address: UnsafeRawPointer

    /// An origin at `address`, kept alive by `owner`.
    package init(owner: AnyObject, address: UnsafeRawPointer) {
        self.owner = owner
        self.address = address
    }
}
