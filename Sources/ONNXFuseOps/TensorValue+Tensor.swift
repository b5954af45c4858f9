import ONNXFuseIR

/// Converting between the IR's stored tensors and kernel tensors, exactly.
extension TensorValue {
    /// The elements of `tensor`, read from whichever field holds them (`raw_data`, external
    /// data, or a typed field). Types the kernels do not compute with and inconsistent payloads
    /// are errors. A payload read in place from its file has its pages let go after the read
    /// (`Tensor.releaseMappedPages`): inference, rules and kernels read a model's constants
    /// through here, and each read maps the page-cache folio around them.
    public init(tensor: Tensor) throws(OperatorError) {
        defer { tensor.releaseMappedPages() }
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
            elements = .reals(b.mapElements(n, as: Float.self) { Double($0) })
        case .doubleData(let b):
            elements = .reals(b.mapElements(n, as: Double.self) { $0 })
        case .int64Data(let b):
            elements = .integers(b.mapElements(n, as: Int64.self) { $0 })
        case .uint64Data(let b):
            let words = b.mapElements(n, as: UInt64.self) { $0 }
            elements = type == .uint64 ? .unsigned(words) : .integers(words.map { Int64(truncatingIfNeeded: $0) })
        case .int32Data(let b):
            let words = b.mapElements(n, as: Int32.self) { $0 }
            switch type {
            case .float16: elements = .reals(words.map { float16Value(UInt16(truncatingIfNeeded: $0)) })
            case .bfloat16: elements = .reals(words.map { bfloat16Value(UInt16(truncatingIfNeeded: $0)) })
            case .bool: elements = .booleans(words.map { $0 != 0 })
            default: elements = .integers(words.map { wrapInteger(Int64($0), to: type) })
            }
        case .raw(let b):
            // One pass over the (little-endian) bytes per tensor, straight into the element array.
            switch type {
            case .float, .double, .float16, .bfloat16:
                elements = .reals(b.withUnsafeBytes { raw in
                    [Double](unsafeUninitializedCapacity: n) { buffer, initialized in
                        if n > 0 { readReals(raw.baseAddress!, as: type, count: n, into: buffer.baseAddress!) }
                        initialized = n
                    }
                })
            case .bool: elements = .booleans(b.mapElements(n, as: UInt8.self) { $0 != 0 })
            case .int8: elements = .integers(b.mapElements(n, as: Int8.self) { Int64($0) })
            case .uint8: elements = .integers(b.mapElements(n, as: UInt8.self) { Int64($0) })
            case .int16: elements = .integers(b.mapElements(n, as: Int16.self) { Int64(Int16(littleEndian: $0)) })
            case .uint16: elements = .integers(b.mapElements(n, as: UInt16.self) { Int64(UInt16(littleEndian: $0)) })
            case .int32: elements = .integers(b.mapElements(n, as: Int32.self) { Int64(Int32(littleEndian: $0)) })
            case .uint32: elements = .integers(b.mapElements(n, as: UInt32.self) { Int64(UInt32(littleEndian: $0)) })
            case .int64: elements = .integers(b.mapElements(n, as: Int64.self) { Int64(littleEndian: $0) })
            case .uint64: elements = .unsigned(b.mapElements(n, as: UInt64.self) { UInt64(littleEndian: $0) })
            default: throw OperatorError("no kernel computes with \(type)")
            }
        }
        self.init(type, shape: shape, elements)
    }

    /// A stored tensor with these elements: `raw_data`, little-endian (strings in `string_data`).
    public func tensor(name: String? = nil) -> Tensor {
        let dims = shape.map { Int64($0) }
        func pack<T: FixedWidthInteger>(_ values: [T]) -> Tensor {
            Tensor(name: name, dataType: dataType, dims: dims, storage: .raw(packLittleEndian(values.count) { values[$0] }))
        }
        func pack<Element, T: FixedWidthInteger>(_ values: [Element], _ transform: (Element) -> T) -> Tensor {
            Tensor(name: name, dataType: dataType, dims: dims, storage: .raw(packLittleEndian(values.count) { transform(values[$0]) }))
        }
        switch elements {
        case .strings(let v):
            return Tensor(name: name, dataType: dataType, dims: dims, storage: .stringData(v))
        case .booleans(let v):
            return pack(v) { UInt8($0 ? 1 : 0) }
        case .unsigned(let v):
            return pack(v)
        case .integers(let v):
            switch dataType {
            case .int8: return pack(v) { Int8(truncatingIfNeeded: $0) }
            case .uint8: return pack(v) { UInt8(truncatingIfNeeded: $0) }
            case .int16: return pack(v) { Int16(truncatingIfNeeded: $0) }
            case .uint16: return pack(v) { UInt16(truncatingIfNeeded: $0) }
            case .int32: return pack(v) { Int32(truncatingIfNeeded: $0) }
            case .uint32: return pack(v) { UInt32(truncatingIfNeeded: $0) }
            default: return pack(v)
            }
        case .reals(let v):
            switch dataType {
            case .float: return pack(v) { Float($0).bitPattern }
            case .float16: return pack(v, float16Bits)
            case .bfloat16: return pack(v, bfloat16Bits)
            default: return pack(v) { $0.bitPattern }
            }
        }
    }
}

/// `count` little-endian integers, element `i` being `element(i)`, in a new heap block.
private func packLittleEndian<T: FixedWidthInteger>(_ count: Int, _ element: (Int) -> T) -> TensorBytes {
    let size = MemoryLayout<T>.size
    return TensorBytes(count: count * size) { buffer in
        guard let base = buffer.baseAddress else { return }
        let typed = base.bindMemory(to: T.self, capacity: count)  // a HeapBlock is 64-byte aligned
        for index in 0..<count { typed[index] = element(index).littleEndian }
    }
}
