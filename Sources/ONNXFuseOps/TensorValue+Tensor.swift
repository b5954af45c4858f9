import ONNXFuseIR

/// Converting between the IR's stored tensors and kernel tensors, exactly.
extension TensorValue {
    /// The elements of `tensor`, read from whichever field holds them (`raw_data`, external
    /// data, or a typed field). Types the kernels do not compute with and inconsistent payloads
    /// are errors.
    public init(tensor: Tensor) throws(OperatorError) {
        let type = tensor.dataType
        guard let kind = TensorValue.kind(of: type) else { throw OperatorError("no kernel computes with \(type)") }
        if let problem = tensor.payloadProblem { throw OperatorError("tensor \(problem)") }
        let n = tensor.elementCount!
        let shape = tensor.dims.map { Int($0) }
        let elements: Elements
        switch tensor.storage {
        case .none:
            elements = .empty(kind)
        case .stringData(let strings):
            elements = .strings(strings)
        case .floatData(let b):
            elements = .reals((0..<n).map { Double(b.load(elementAt: $0, as: Float.self)) })
        case .doubleData(let b):
            elements = .reals((0..<n).map { b.load(elementAt: $0, as: Double.self) })
        case .int64Data(let b):
            elements = .integers((0..<n).map { b.load(elementAt: $0, as: Int64.self) })
        case .uint64Data(let b):
            let words = (0..<n).map { b.load(elementAt: $0, as: UInt64.self) }
            elements = type == .uint64 ? .unsigned(words) : .integers(words.map { Int64(truncatingIfNeeded: $0) })
        case .int32Data(let b):
            let words = (0..<n).map { b.load(elementAt: $0, as: Int32.self) }
            switch type {
            case .float16: elements = .reals(words.map { float16Value(UInt16(truncatingIfNeeded: $0)) })
            case .bfloat16: elements = .reals(words.map { bfloat16Value(UInt16(truncatingIfNeeded: $0)) })
            case .bool: elements = .booleans(words.map { $0 != 0 })
            default: elements = .integers(words.map { wrapInteger(Int64($0), to: type) })
            }
        case .raw(let b):
            func load<T: FixedWidthInteger & BitwiseCopyable>(_: T.Type) -> [T] { (0..<n).map { T(littleEndian: b.load(elementAt: $0, as: T.self)) } }
            switch type {
            case .float: elements = .reals(load(UInt32.self).map { Double(Float(bitPattern: $0)) })
            case .double: elements = .reals(load(UInt64.self).map { Double(bitPattern: $0) })
            case .float16: elements = .reals(load(UInt16.self).map(float16Value))
            case .bfloat16: elements = .reals(load(UInt16.self).map(bfloat16Value))
            case .bool: elements = .booleans(load(UInt8.self).map { $0 != 0 })
            case .int8: elements = .integers(load(Int8.self).map { Int64($0) })
            case .uint8: elements = .integers(load(UInt8.self).map { Int64($0) })
            case .int16: elements = .integers(load(Int16.self).map { Int64($0) })
            case .uint16: elements = .integers(load(UInt16.self).map { Int64($0) })
            case .int32: elements = .integers(load(Int32.self).map { Int64($0) })
            case .uint32: elements = .integers(load(UInt32.self).map { Int64($0) })
            case .int64: elements = .integers(load(Int64.self))
            case .uint64: elements = .unsigned(load(UInt64.self))
            default: throw OperatorError("no kernel computes with \(type)")
            }
        }
        self.init(type, shape: shape, elements)
    }

    /// A stored tensor with these elements: `raw_data`, little-endian (strings in `string_data`).
    public func tensor(name: String? = nil) -> Tensor {
        let dims = shape.map { Int64($0) }
        func pack<T: FixedWidthInteger>(_ values: [T]) -> Tensor {
            let size = MemoryLayout<T>.size
            let bytes = TensorBytes(count: values.count * size) { buffer in
                for (index, value) in values.enumerated() {
                    buffer.storeBytes(of: value.littleEndian, toByteOffset: index * size, as: T.self)
                }
            }
            return Tensor(name: name, dataType: dataType, dims: dims, storage: .raw(bytes))
        }
        switch elements {
        case .strings(let v):
            return Tensor(name: name, dataType: dataType, dims: dims, storage: .stringData(v))
        case .booleans(let v):
            return pack(v.map { UInt8($0 ? 1 : 0) })
        case .unsigned(let v):
            return pack(v)
        case .integers(let v):
            switch dataType {
            case .int8: return pack(v.map { Int8(truncatingIfNeeded: $0) })
            case .uint8: return pack(v.map { UInt8(truncatingIfNeeded: $0) })
            case .int16: return pack(v.map { Int16(truncatingIfNeeded: $0) })
            case .uint16: return pack(v.map { UInt16(truncatingIfNeeded: $0) })
            case .int32: return pack(v.map { Int32(truncatingIfNeeded: $0) })
            case .uint32: return pack(v.map { UInt32(truncatingIfNeeded: $0) })
            default: return pack(v)
            }
        case .reals(let v):
            switch dataType {
            case .float: return pack(v.map { Float($0).bitPattern })
            case .float16: return pack(v.map(float16Bits))
            case .bfloat16: return pack(v.map(bfloat16Bits))
            default: return pack(v.map(\.bitPattern))
            }
        }
    }
}
