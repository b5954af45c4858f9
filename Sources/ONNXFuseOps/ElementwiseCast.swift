import ONNXFuseIR

// Cast and CastLike between every pair of types the kernels hold (strings excepted).

extension ElementwiseKit {
    /// The target type of Cast: the `to` attribute, a type number (a type name such as
    /// "FLOAT" in opset 1).
    static func castTarget(_ context: OperatorContext) throws(OperatorError) -> DataType {
        guard let attribute = context.attribute("to"), let value = attribute.value else {
            throw OperatorError("Cast: the attribute to is required")
        }
        switch value {
        case .int(let raw):
            guard raw > 0, raw <= Int64(Int32.max) else { throw OperatorError("Cast: to \(raw) is not a type") }
            return DataType(rawValue: Int32(raw))
        case .string(let bytes):
            let name = String(decoding: bytes, as: UTF8.self).lowercased()
            guard let type = DataType(name: name) else { throw OperatorError("Cast: to \(name) is not a type") }
            return type
        default:
            throw OperatorError("Cast: the attribute to must be an integer")
        }
    }

    /// `value` converted to `type`: integers wrap (two's complement), reals truncate toward
    /// zero into integers (NaN, infinities and values out of the target's range are errors),
    /// integers round once into reals, reals round once into narrower reals, anything
    /// nonzero (NaN included) is true and booleans are 0 and 1. Strings are not converted.
    static func cast(_ value: TensorValue, to type: DataType) throws(OperatorError) -> TensorValue {
        if value.dataType == type { return value }
        guard let target = TensorValue.kind(of: type) else { throw OperatorError("Cast: no kernel computes with \(type)") }
        let shape = value.shape
        switch (value.elements, target) {
        case (.strings, _), (_, .string):
            throw OperatorError("Cast: casts from and to strings are not supported")
        // From integers.
        case (.integers(let v), .integer):
            return TensorValue(type, shape: shape, .integers(wrapped(v, to: type)))
        case (.integers(let v), .unsigned):
            return TensorValue(type, shape: shape, .unsigned(v.map { UInt64(bitPattern: $0) }))
        case (.integers(let v), .real):
            return TensorValue(type, shape: shape, .reals(v.map { real($0, to: type) }))
        case (.integers(let v), .boolean):
            return TensorValue(type, shape: shape, .booleans(v.map { $0 != 0 }))
        // From uint64.
        case (.unsigned(let v), .integer):
            return TensorValue(type, shape: shape, .integers(wrapped(v.map { Int64(bitPattern: $0) }, to: type)))
        case (.unsigned(let v), .real):
            return TensorValue(type, shape: shape, .reals(v.map { real(unsigned: $0, to: type) }))
        case (.unsigned(let v), .boolean):
            return TensorValue(type, shape: shape, .booleans(v.map { $0 != 0 }))
        // From reals.
        case (.reals(let v), .real):
            return TensorValue(type, shape: shape, .reals(rounded(v, to: type)))
        case (.reals(let v), .integer):
            var out: [Int64] = []
            out.reserveCapacity(v.count)
            for item in v {
                guard let i = truncatedInteger(item, to: type) else {
                    throw OperatorError("Cast: \(item) has no \(type) value")
                }
                out.append(i)
            }
            return TensorValue(type, shape: shape, .integers(out))
        case (.reals(let v), .unsigned):
            var out: [UInt64] = []
            out.reserveCapacity(v.count)
            for item in v {
                guard let i = truncatedUnsigned(item) else { throw OperatorError("Cast: \(item) has no uint64 value") }
                out.append(i)
            }
            return TensorValue(type, shape: shape, .unsigned(out))
        case (.reals(let v), .boolean):
            return TensorValue(type, shape: shape, .booleans(v.map { $0 != 0 }))
        // From booleans.
        case (.booleans(let v), .integer):
            return TensorValue(type, shape: shape, .integers(v.map { $0 ? 1 : 0 }))
        case (.booleans(let v), .unsigned):
            return TensorValue(type, shape: shape, .unsigned(v.map { $0 ? 1 : 0 }))
        case (.booleans(let v), .real):
            return TensorValue(type, shape: shape, .reals(v.map { $0 ? 1 : 0 }))
        case (.booleans(let v), .boolean):
            return TensorValue(type, shape: shape, .booleans(v))
        default:
            break
        }
        throw OperatorError("Cast: cannot cast \(value.dataType) to \(type)")
    }

    /// Cast: to the type the attribute `to` names.
    static let castKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context)
        return [try cast(x, to: try castTarget(context))]
    }

    /// CastLike: to the type of the second input.
    static let castLikeKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context), like = try requiredInput(inputs, 1, context)
        return [try cast(x, to: like.dataType)]
    }
}
