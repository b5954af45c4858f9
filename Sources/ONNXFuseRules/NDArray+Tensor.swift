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
        // One reader of stored tensors for the whole project: the kernels' exact one.
        let value: TensorValue
        do throws(OperatorError) {
            value = try TensorValue(tensor: tensor)
        } catch {
            throw EvaluationError("\(label): \(error.message)")
        }
        let values: [Double]
        switch value.elements {
        case .reals(let v): values = v
        case .integers(let v): values = try NDArray.exactly(v, type, label)
        case .unsigned(let v): values = try NDArray.exactly(v, type, label)
        case .booleans(let v): values = v.map { $0 ? 1 : 0 }
        case .strings: throw EvaluationError("cannot compute with \(type) (\(label) holds strings)")
        }
        self.init(shape: value.shape, values: values)
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
        // The kernels' tensor type rounds and packs: one writer for the whole project.
        switch dataType {
        case .float, .double, .float16, .bfloat16:
            return TensorValue(dataType, shape: shape, reals: values).tensor()
        case .bool:
            return TensorValue.bool(try checkedIntegers(dataType).map { $0 != 0 }, shape: shape).tensor()
        case .uint64:
            return TensorValue(.uint64, shape: shape, .unsigned(try checkedIntegers(dataType).map { UInt64($0) })).tensor()
        case .int8, .uint8, .int16, .uint16, .int32, .uint32, .int64:
            return TensorValue(dataType, shape: shape, integers: try checkedIntegers(dataType).map { Int64($0) }).tensor()
        default:
            throw EvaluationError("cannot compute with \(dataType)")
        }
    }

    /// Whether every value stays finite once rounded to `dataType` as `tensor(as:)` rounds it
    /// (3e38 × 2 is finite in float64, infinite as float); checked element by element, without
    /// a copy of the stored tensor.
    public func isFinite(storedAs dataType: DataType) -> Bool {
        switch dataType {
        case .float: return values.allSatisfy { Float($0).isFinite }
        case .float16: return values.allSatisfy { float16Value(float16Bits($0)).isFinite }
        case .bfloat16: return values.allSatisfy { bfloat16Value(bfloat16Bits($0)).isFinite }
        default: return isFinite
        }
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
