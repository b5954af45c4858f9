import ONNXFuseIR
import ONNXFuseOps

/// Reading tensors into float64 arrays and rounding results back to an element type.
extension NDArray {
    /// The element types `compute` works with: the real floating-point types, the integer
    /// types of 8 to 64 bits, and bool.
    public static func canCompute(with dataType: DataType) -> Bool {
        dataType.isFloatingPoint || integerBounds(dataType) != nil
    }

    /// The elements of `tensor` as float64, and as exact `integers` for the integer types. Works
    /// for every field a file may keep them in (`raw_data` or the typed field). A uint64 beyond
    /// 2^63 is an error, as are strings, complex, float8 and sub-byte types.
    public init(tensor: Tensor) throws(EvaluationError) {
        let type = tensor.dataType
        // Made only for an error: this runs for every constant a rule reads.
        var label: String { tensor.name.map { "tensor '\($0)'" } ?? "a tensor" }
        guard NDArray.canCompute(with: type) else {
            throw EvaluationError("cannot compute with \(type) (\(label))")
        }
        if let problem = tensor.payloadProblem {
            throw EvaluationError("\(label) \(problem)")
        }
        if case .raw(let bytes) = tensor.storage, NDArray.isWritable(type) {
            // Most constants a rule reads: the kernels' reader of floating-point elements
            // (`readReals`, as `TensorValue` reads them) straight into the array.
            defer { tensor.releaseMappedPages() }
            let count = tensor.elementCount!
            let values = bytes.withUnsafeBytes { raw in
                [Double](unsafeUninitializedCapacity: count) { buffer, initialized in
                    if count > 0 { readReals(raw.baseAddress!, as: type, count: count, into: buffer.baseAddress!) }
                    initialized = count
                }
            }
            self.init(shape: tensor.dims.map { Int($0) }, values: values)
            return
        }
        // One reader of stored tensors for the whole project: the kernels' exact one.
        let value: TensorValue
        do throws(OperatorError) {
            value = try TensorValue(tensor: tensor)
        } catch {
            throw EvaluationError("\(label): \(error.message)")
        }
        switch value.elements {
        case .reals(let v): self.init(shape: value.shape, values: v)
        case .integers(let v): self.init(shape: value.shape, integers: v)
        case .unsigned(let v):
            if v.allSatisfy({ $0 <= UInt64(Int64.max) }) {
                self.init(shape: value.shape, integers: v.map { Int64($0) })
            } else {
                // Beyond int64: exact as float64, or an error.
                var values = [Double]()
                values.reserveCapacity(v.count)
                for (index, integer) in v.enumerated() {
                    guard let exact = Double(exactly: integer) else {
                        throw EvaluationError("element \(index) of \(label) (\(type)) is \(integer), which neither int64 nor float64 holds exactly")
                    }
                    values.append(exact)
                }
                self.init(shape: value.shape, values: values)
            }
        case .booleans(let v): self.init(shape: value.shape, values: v.map { $0 ? 1 : 0 })
        case .strings: throw EvaluationError("cannot compute with \(type) (\(label) holds strings)")
        }
    }

    /// A `raw_data` tensor of `dataType` with these values, each rounded once from float64 to
    /// the nearest value of the type (ties to even; overflow gives ±infinity and NaN stays NaN,
    /// so check `isFinite` first when that matters). Integer and bool types take only values
    /// that are already integers in range.
    public func tensor(as dataType: DataType) throws(EvaluationError) -> Tensor {
        // The kernels' tensor type rounds and packs: one writer for the whole project.
        switch dataType {
        case .float, .double, .float16, .bfloat16:
            // Rounded and packed in one pass (the kernels' rounding: nearest, ties to even).
            let bytes = TensorBytes(count: dataType.rawByteCount(elements: count)!) { store(0..<count, as: dataType, into: $0.baseAddress) }
            return Tensor(dataType: dataType, dims: shape.map { Int64($0) }, storage: .raw(bytes))
        case .bool:
            return TensorValue.bool(try checkedIntegers(dataType).map { $0 != 0 }, shape: shape).tensor()
        case .uint64:
            if let integers = try exactIntegers(dataType) { return TensorValue(.uint64, shape: shape, .unsigned(integers.map { UInt64($0) })).tensor() }
            return TensorValue(.uint64, shape: shape, .unsigned(try checkedIntegers(dataType).map { UInt64($0) })).tensor()
        case .int8, .uint8, .int16, .uint16, .int32, .uint32, .int64:
            if let integers = try exactIntegers(dataType) { return TensorValue(dataType, shape: shape, integers: integers).tensor() }
            return TensorValue(dataType, shape: shape, integers: try checkedIntegers(dataType).map { Int64($0) }).tensor()
        default:
            throw EvaluationError("cannot compute with \(dataType)")
        }
    }

    /// Whether `dataType` is one of the floating-point types values are written as
    /// (`BytePieces`, `tensor(as:)`). A switch, not a set: asked for every constant read.
    static func isWritable(_ dataType: DataType) -> Bool {
        switch dataType {
        case .float, .double, .float16, .bfloat16: return true
        default: return false
        }
    }

    /// Elements rounded to a stored type (as `tensor(as:)` rounds them), little-endian, handed
    /// on as bytes a few thousand at a time through one small buffer that stays in cache.
    struct BytePieces: ~Copyable {
        let dataType: DataType
        private let size: Int
        private let buffer: UnsafeMutableRawBufferPointer
        /// Elements per piece.
        static let length = 8192

        /// Pieces of `dataType`, `isWritable`.
        init(as dataType: DataType) throws(EvaluationError) {
            guard NDArray.isWritable(dataType), let size = dataType.rawByteCount(elements: 1) else {
                throw EvaluationError("cannot write elements as \(dataType)")
            }
            self.dataType = dataType
            self.size = size
            buffer = .allocate(byteCount: Self.length * size, alignment: 64)
        }

        deinit { buffer.deallocate() }

        /// Passes `values`, rounded, to `emit` as bytes, in order.
        func emit(_ values: UnsafeBufferPointer<Double>, _ emit: DeferredBytes.Emit) throws {
            for start in stride(from: 0, to: values.count, by: Self.length) {
                let piece = UnsafeBufferPointer(rebasing: values[start..<Swift.min(start + Self.length, values.count)])
                NDArray.store(piece, as: dataType, into: buffer.baseAddress)
                try emit(UnsafeRawBufferPointer(rebasing: buffer[..<(piece.count * size)]))
            }
        }
    }

    /// The elements `range`, rounded to `dataType` (`isWritable`), little-endian, from
    /// `base` on: the one loop behind `tensor(as:)` and `sampledBytes` (`BytePieces` calls the
    /// static one).
    private func store(_ range: Range<Int>, as dataType: DataType, into base: UnsafeMutableRawPointer?) {
        values.withUnsafeBufferPointer { NDArray.store(UnsafeBufferPointer(rebasing: $0[range]), as: dataType, into: base) }
    }

    /// `values` rounded to `dataType` (`isWritable`), little-endian, from `base` on.
    static func store(_ values: UnsafeBufferPointer<Double>, as dataType: DataType, into base: UnsafeMutableRawPointer?) {
        guard !values.isEmpty, let base else { return }
        func each<T: FixedWidthInteger>(_ encode: (Double) -> T) {
            for index in values.indices {
                base.storeBytes(of: encode(values[index]).littleEndian, toByteOffset: index &* MemoryLayout<T>.size, as: T.self)
            }
        }
        switch dataType {
        case .float: each { Float($0).bitPattern }
        case .double: each { $0.bitPattern }
        case .float16: each(float16Bits)
        default: each(bfloat16Bits)
        }
    }

    /// The bytes `BytePieces` would hand on at `DeferredBytes.sampleRanges`, one after the
    /// other: the samples of a deferred tensor, made without writing it all.
    public func sampledBytes(as dataType: DataType) throws(EvaluationError) -> [UInt8] {
        let ranges = try NDArray.sampledElements(count: count, as: dataType)
        return NDArray.sampledBytes(count: count, as: dataType, ranges.map { Array(values[$0]) })
    }

    /// The elements whose bytes `sampledBytes` takes: the whole elements that cover each of
    /// `DeferredBytes.sampleRanges`, in order.
    static func sampledElements(count: Int, as dataType: DataType) throws(EvaluationError) -> [Range<Int>] {
        guard NDArray.isWritable(dataType), let total = dataType.rawByteCount(elements: count) else {
            throw EvaluationError("cannot write \(count) elements as \(dataType)")
        }
        let size = total / Swift.max(count, 1)
        return DeferredBytes.sampleRanges(count: total).filter { !$0.isEmpty }.map { range in
            (range.lowerBound / size)..<((range.upperBound - 1) / size + 1)
        }
    }

    /// The samples of `count` elements written as `dataType`, from the values of the ranges of
    /// `sampledElements`, in order.
    static func sampledBytes(count: Int, as dataType: DataType, _ sampledValues: [[Double]]) -> [UInt8] {
        let total = dataType.rawByteCount(elements: count)!
        let size = total / Swift.max(count, 1)
        var samples: [UInt8] = []
        for (range, values) in zip(DeferredBytes.sampleRanges(count: total).filter { !$0.isEmpty }, sampledValues) {
            // The whole elements that cover the range, written, then the range cut out.
            let first = range.lowerBound / size
            var bytes = [UInt8](repeating: 0, count: values.count * size)
            bytes.withUnsafeMutableBytes { raw in values.withUnsafeBufferPointer { store($0, as: dataType, into: raw.baseAddress) } }
            let offset = range.lowerBound - first * size
            samples += bytes[offset..<(offset + range.count)]
        }
        return samples
    }

    /// Whether every value stays finite once rounded to `dataType` as `tensor(as:)` rounds it
    /// (3e38 × 2 is finite in float64, infinite as float); checked element by element, without
    /// a copy of the stored tensor.
    public func isFinite(storedAs dataType: DataType) -> Bool {
        values.withUnsafeBufferPointer { NDArray.allFinite($0, storedAs: dataType) }
    }

    /// Whether every one of `values` stays finite once rounded to `dataType`.
    static func allFinite(_ values: UnsafeBufferPointer<Double>, storedAs dataType: DataType) -> Bool {
        switch dataType {
        case .float:
            // A flag per element rather than an early exit: the loop vectorizes.
            var nonFinite: UInt32 = 0
            for value in values {
                let exponent = Float(value).bitPattern & 0x7f80_0000
                nonFinite |= exponent == 0x7f80_0000 ? 1 : 0
            }
            return nonFinite == 0
        case .float16: return values.allSatisfy { float16Value(float16Bits($0)).isFinite }
        case .bfloat16: return values.allSatisfy { bfloat16Value(bfloat16Bits($0)).isFinite }
        default: return allFinite(values)
        }
    }

    /// The exact integers, after checking that each is within the bounds of `dataType`; nil for
    /// an array of reals.
    private func exactIntegers(_ dataType: DataType) throws(EvaluationError) -> [Int64]? {
        guard let integers, let range = NDArray.int64Range(dataType) else { return nil }
        if let index = integers.firstIndex(where: { !range.contains($0) }) {
            throw EvaluationError("element \(index) is \(integers[index]), out of range for \(dataType)")
        }
        return integers
    }

    /// The values of an integer type that an Int64 holds (all of them but uint64's upper half).
    static func int64Range(_ dataType: DataType) -> ClosedRange<Int64>? {
        switch dataType {
        case .int8: return Int64(Int8.min)...Int64(Int8.max)
        case .uint8: return 0...Int64(UInt8.max)
        case .int16: return Int64(Int16.min)...Int64(Int16.max)
        case .uint16: return 0...Int64(UInt16.max)
        case .int32: return Int64(Int32.min)...Int64(Int32.max)
        case .uint32: return 0...Int64(UInt32.max)
        case .int64: return Int64.min...Int64.max
        case .uint64: return 0...Int64.max
        default: return nil
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
            if let integers, let range = NDArray.int64Range(dataType) {
                // Integers to an integer type: exact, and in range or an error.
                if let index = integers.firstIndex(where: { !range.contains($0) }) {
                    throw EvaluationError("cannot cast element \(index) (\(integers[index])) to \(dataType): out of range")
                }
                return self
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
            // Truncated and in range: each is an Int64 exactly (a uint64 of 2^63 or more is not).
            guard result.allSatisfy({ $0 < 0x1p63 }) else { return NDArray(shape: shape, values: result) }
            return NDArray(shape: shape, integers: result.map { Int64($0) })
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
