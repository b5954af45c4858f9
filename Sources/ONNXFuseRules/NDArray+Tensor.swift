import ONNXFuseIR
import ONNXFuseOps

/// Reading tensors into float64 arrays and rounding results back to an element type.
extension NDArray {
    /// The element types `compute` works with: the real floating-point types, the integer
    /// types of 8 to 64 bits, and bool.
    public static func canCompute(with dataType: DataType) -> Bool {
        dataType.isFloatingPoint || integerBounds(dataType) != nil
    }

    /// The elements of `tensor` as float64, exactly. Works for every field a file may keep
    /// them in (`raw_data` or the typed field). Integers beyond ±2^53 that float64 cannot hold
    /// exactly are an error, as are strings, complex, float8 and sub-byte types.
    public init(tensor: Tensor) throws(EvaluationError) {
        let type = tensor.dataType
        let label = tensor.name.map { "tensor '\($0)'" } ?? "a tensor"
        guard NDArray.canCompute(with: type) else {
            throw EvaluationError("cannot compute with \(type) (\(label))")
        }
        if let problem = tensor.payloadProblem {
            throw EvaluationError("\(label) \(problem)")
        }
        let shape = tensor.dims.map { Int($0) }  // payloadProblem checked sign and overflow
        let n = tensor.elementCount!
        var values: [Double]
        switch tensor.storage {
        case .none:
            values = []
        case .floatData(let b):
            values = (0..<n).map { Double(b.load(elementAt: $0, as: Float.self)) }
        case .doubleData(let b):
            values = (0..<n).map { b.load(elementAt: $0, as: Double.self) }
        case .int64Data(let b):
            values = try NDArray.exactly((0..<n).map { b.load(elementAt: $0, as: Int64.self) }, type, label)
        case .uint64Data(let b):
            values = try NDArray.exactly((0..<n).map { b.load(elementAt: $0, as: UInt64.self) }, type, label)
        case .int32Data(let b):
            let words = (0..<n).map { b.load(elementAt: $0, as: Int32.self) }
            switch type {
            case .float16: values = words.map { float16Value(UInt16(truncatingIfNeeded: $0)) }
            case .bfloat16: values = words.map { bfloat16Value(UInt16(truncatingIfNeeded: $0)) }
            default: values = words.map { Double($0) }
            }
        case .raw(let b):
            switch type {
            case .float: values = (0..<n).map { Double(Float(bitPattern: UInt32(littleEndian: b.load(elementAt: $0, as: UInt32.self)))) }
            case .double: values = (0..<n).map { Double(bitPattern: UInt64(littleEndian: b.load(elementAt: $0, as: UInt64.self))) }
            case .float16: values = (0..<n).map { float16Value(UInt16(littleEndian: b.load(elementAt: $0, as: UInt16.self))) }
            case .bfloat16: values = (0..<n).map { bfloat16Value(UInt16(littleEndian: b.load(elementAt: $0, as: UInt16.self))) }
            case .int8: values = (0..<n).map { Double(b.load(elementAt: $0, as: Int8.self)) }
            case .uint8, .bool: values = (0..<n).map { Double(b.load(elementAt: $0, as: UInt8.self)) }
            case .int16: values = (0..<n).map { Double(Int16(littleEndian: b.load(elementAt: $0, as: Int16.self))) }
            case .uint16: values = (0..<n).map { Double(UInt16(littleEndian: b.load(elementAt: $0, as: UInt16.self))) }
            case .int32: values = (0..<n).map { Double(Int32(littleEndian: b.load(elementAt: $0, as: Int32.self))) }
            case .uint32: values = (0..<n).map { Double(UInt32(littleEndian: b.load(elementAt: $0, as: UInt32.self))) }
            case .int64:
                values = try NDArray.exactly((0..<n).map { Int64(littleEndian: b.load(elementAt: $0, as: Int64.self)) }, type, label)
            case .uint64:
                values = try NDArray.exactly((0..<n).map { UInt64(littleEndian: b.load(elementAt: $0, as: UInt64.self)) }, type, label)
            default:
                throw EvaluationError("cannot compute with \(type) (\(label))")
            }
        case .stringData:
            throw EvaluationError("cannot compute with \(type) (\(label) holds strings)")
        }
        self.init(shape: shape, values: values)
    }

    /// 64-bit integers as doubles, or an error for the first one float64 cannot hold exactly.
    private static func exactly<I: BinaryInteger>(_ integers: [I], _ type: DataType, _ label: String) throws(EvaluationError) -> [Double] {
        var values = [Double]()
        values.reserveCapacity(integers.count)
        for (index, integer) in integers.enumerated() {
            guard let value = Double(exactly: integer) else {
                throw EvaluationError("element \(index) of \(label) (\(type)) is \(integer), which float64 cannot hold exactly")
            }
            values.append(value)
        }
        return values
    }

    /// A `raw_data` tensor of `dataType` with these values, each rounded once from float64 to
    /// the nearest value of the type (ties to even; overflow gives ±infinity and NaN stays NaN,
    /// so check `isFinite` first when that matters). Integer and bool types take only values
    /// that are already integers in range.
    public func tensor(as dataType: DataType) throws(EvaluationError) -> Tensor {
        let dims = shape.map { Int64($0) }
        let bytes: TensorBytes
        switch dataType {
        case .float: bytes = NDArray.pack(values) { Float($0).bitPattern }
        case .double: bytes = NDArray.pack(values) { $0.bitPattern }
        case .float16: bytes = NDArray.pack(values) { float16Bits($0) }
        case .bfloat16: bytes = NDArray.pack(values) { bfloat16Bits($0) }
        case .int8: bytes = NDArray.pack(try checkedIntegers(dataType)) { Int8($0) }
        case .uint8, .bool: bytes = NDArray.pack(try checkedIntegers(dataType)) { UInt8($0) }
        case .int16: bytes = NDArray.pack(try checkedIntegers(dataType)) { Int16($0) }
        case .uint16: bytes = NDArray.pack(try checkedIntegers(dataType)) { UInt16($0) }
        case .int32: bytes = NDArray.pack(try checkedIntegers(dataType)) { Int32($0) }
        case .uint32: bytes = NDArray.pack(try checkedIntegers(dataType)) { UInt32($0) }
        case .int64: bytes = NDArray.pack(try checkedIntegers(dataType)) { Int64($0) }
        case .uint64: bytes = NDArray.pack(try checkedIntegers(dataType)) { UInt64($0) }
        default: throw EvaluationError("cannot compute with \(dataType)")
        }
        return Tensor(dataType: dataType, dims: dims, storage: .raw(bytes))
    }

    /// The values, after checking that each is an integer within the bounds of `dataType`.
    private func checkedIntegers(_ dataType: DataType) throws(EvaluationError) -> [Double] {
        let bounds = NDArray.integerBounds(dataType)!
        for (index, value) in values.enumerated() {
            guard value.rounded(.towardZero) == value else {
                throw EvaluationError("element \(index) is \(formatNumber(value)), not an integer, so it cannot be stored as \(dataType)")
            }
            guard value >= bounds.lowerBound, value < bounds.upperBound else {
                throw EvaluationError("element \(index) is \(formatNumber(value)), out of range for \(dataType)")
            }
        }
        return values
    }

    /// `values` converted by `convert` and stored little-endian.
    private static func pack<T: FixedWidthInteger>(_ values: [Double], _ convert: (Double) -> T) -> TensorBytes {
        let size = MemoryLayout<T>.size
        return TensorBytes(count: values.count * size) { buffer in
            for (index, value) in values.enumerated() {
                buffer.storeBytes(of: convert(value).littleEndian, toByteOffset: index * size, as: T.self)
            }
        }
    }

    /// For the integer types and bool: the smallest value and one past the largest, as doubles
    /// (all exact). Nil for other types.
    static func integerBounds(_ dataType: DataType) -> Range<Double>? {
        switch dataType {
        case .bool: return 0..<2
        case .int8: return -0x1p7..<0x1p7
        case .uint8: return 0..<0x1p8
        case .int16: return -0x1p15..<0x1p15
        case .uint16: return 0..<0x1p16
        case .int32: return -0x1p31..<0x1p31
        case .uint32: return 0..<0x1p32
        case .int64: return -0x1p63..<0x1p63
        case .uint64: return 0..<0x1p64
        default: return nil
        }
    }

    /// The values an ONNX `Cast` to `dataType` would produce, still as float64: floating-point
    /// types round to nearest (ties to even); integer types truncate toward zero and must be in
    /// range (NaN and infinity are errors); bool maps every nonzero value to 1.
    public func cast(to dataType: DataType) throws(EvaluationError) -> NDArray {
        switch dataType {
        case .double: return self
        case .float: return map { Double(Float($0)) }
        case .float16: return map { float16Value(float16Bits($0)) }
        case .bfloat16: return map { bfloat16Value(bfloat16Bits($0)) }
        case .bool: return map { $0 != 0 ? 1 : 0 }  // NaN is nonzero: true, as in ONNX
        default:
            guard let bounds = NDArray.integerBounds(dataType) else {
                throw EvaluationError("cannot compute with \(dataType)")
            }
            var result = [Double]()
            result.reserveCapacity(count)
            for (index, value) in values.enumerated() {
                let truncated = value.rounded(.towardZero)
                guard truncated >= bounds.lowerBound, truncated < bounds.upperBound else {
                    throw EvaluationError("cannot cast element \(index) (\(formatNumber(value))) to \(dataType): out of range")
                }
                result.append(truncated + 0)  // + 0 turns -0 into 0
            }
            return NDArray(shape: shape, values: result)
        }
    }
}

/// A double as rule authors write it: integral values without `.0`.
func formatNumber(_ value: Double) -> String {
    if value.isFinite, value.rounded(.towardZero) == value, value.magnitude < 0x1p64 {
        return (value < 0 ? "-" : "") + String(UInt64(value.magnitude))
    }
    return "\(value)"
}
