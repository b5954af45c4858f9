import ONNXFuseIR

// Shared machinery of the elementwise and reduction families: input access, broadcasting
// plans and loops, rounding and wrapping passes, exact integer-to-real conversion, and the
// elementwise arithmetic of shape values. Everything is namespaced in `ElementwiseKit` so
// that the other families' helpers cannot collide with these.

/// Helpers of the elementwise and reduction operators.
enum ElementwiseKit {
    /// The largest number of elements an elementwise or reduction kernel produces.
    static let elementLimit = 1 << 28

    /// Throws unless `shape` holds at most `elementLimit` elements; returns the count.
    static func checkedCount(_ shape: [Int], _ context: OperatorContext) throws(OperatorError) -> Int {
        guard shape.allSatisfy({ $0 >= 0 }), let count = shapeProduct(shape), count <= elementLimit else {
            throw OperatorError("\(context.opType): result shape \(shape) is too large")
        }
        return count
    }

    /// Throws unless `a` and `b` have the same element type.
    static func checkSameType(_ a: TensorValue, _ b: TensorValue, _ context: OperatorContext) throws(OperatorError) {
        guard a.dataType == b.dataType else {
            throw OperatorError("\(context.opType): input types \(a.dataType) and \(b.dataType) differ")
        }
    }

    // MARK: Broadcasting

    /// How an operand's elements map onto the elements of a broadcast result.
    enum IndexMap {
        /// The operand has the result's shape.
        case identity
        /// The operand has one element.
        case scalar
        /// Result element `i` reads operand element `indices[i]`.
        case gather([Int])

        /// The operand element that result element `i` reads.
        @inline(__always) func index(_ i: Int) -> Int {
            switch self {
            case .identity: return i
            case .scalar: return 0
            case .gather(let indices): return indices[i]
            }
        }
    }

    /// The broadcast of `shapes` (multidirectional), its element count and each operand's map.
    static func broadcast(_ shapes: [[Int]], _ context: OperatorContext) throws(OperatorError) -> (shape: [Int], count: Int, maps: [IndexMap]) {
        var shape: [Int] = []
        for operand in shapes {
            do {
                shape = try broadcastShapes(shape, operand)
            } catch {
                throw OperatorError("\(context.opType): input shapes \(shapes) do not broadcast")
            }
        }
        let count = try checkedCount(shape, context)
        let maps = shapes.map { operand -> IndexMap in map(from: operand, to: shape) }
        return (shape, count, maps)
    }

    /// The map of an operand of shape `operand` broadcast to `shape` (which it must broadcast to).
    static func map(from operand: [Int], to shape: [Int]) -> IndexMap {
        // Without replication (same element count), the layout is the same.
        if operand == shape || shapeProduct(operand) == shapeProduct(shape) { return .identity }
        if shapeProduct(operand) == 1 { return .scalar }
        return .gather(broadcastIndices(from: operand, to: shape))
    }

    /// `f` applied to the elements of two broadcast operands.
    @inline(__always)
    static func map2<A, B, R>(_ a: [A], _ am: IndexMap, _ b: [B], _ bm: IndexMap, count: Int, _ f: (A, B) -> R) -> [R] {
        var out: [R] = []
        out.reserveCapacity(count)
        guard count > 0 else { return out }
        switch (am, bm) {
        case (.identity, .identity):
            for i in 0..<count { out.append(f(a[i], b[i])) }
        case (.identity, .scalar):
            let y = b[0]
            for i in 0..<count { out.append(f(a[i], y)) }
        case (.scalar, .identity):
            let x = a[0]
            for i in 0..<count { out.append(f(x, b[i])) }
        default:
            for i in 0..<count { out.append(f(a[am.index(i)], b[bm.index(i)])) }
        }
        return out
    }

    /// `f` applied to the elements of three broadcast operands.
    @inline(__always)
    static func map3<A, B, C, R>(_ a: [A], _ am: IndexMap, _ b: [B], _ bm: IndexMap, _ c: [C], _ cm: IndexMap,
                                 count: Int, _ f: (A, B, C) -> R) -> [R] {
        var out: [R] = []
        out.reserveCapacity(count)
        guard count > 0 else { return out }
        switch (am, bm, cm) {
        case (.identity, .identity, .identity):
            for i in 0..<count { out.append(f(a[i], b[i], c[i])) }
        default:
            for i in 0..<count { out.append(f(a[am.index(i)], b[bm.index(i)], c[cm.index(i)])) }
        }
        return out
    }

    /// The elements of `values` broadcast to a result through `map`.
    static func expand<T>(_ values: [T], _ map: IndexMap, count: Int) -> [T] {
        switch map {
        case .identity: return values
        case .scalar: return count == 0 ? [] : [T](repeating: values[0], count: count)
        case .gather(let indices):
            var out: [T] = []
            out.reserveCapacity(count)
            for i in 0..<count { out.append(values[indices[i]]) }
            return out
        }
    }

    /// The shape of the second operand of a binary operator before opset 7 (limited broadcast:
    /// with `broadcast=1`, B's shape is a contiguous run of A's, starting at `axis` or
    /// matching A's suffix), padded with ones so that numpy broadcasting does the same. From
    /// opset 7 on, `b` as is.
    static func legacyOperandShape(_ a: [Int], _ b: [Int], _ context: OperatorContext) throws(OperatorError) -> [Int] {
        guard context.opsetVersion < 7 else { return b }
        guard try context.int("broadcast", default: 0) != 0 else {
            guard a == b else {
                throw OperatorError("\(context.opType): shapes \(a) and \(b) differ and broadcast is not set")
            }
            return b
        }
        if shapeProduct(b) == 1 { return [] }
        guard b.count <= a.count else { throw OperatorError("\(context.opType): B \(b) has a higher rank than A \(a)") }
        let axis: Int
        if let given = try context.int("axis") {
            axis = try normalizeAxis(given, rank: a.count)
        } else {
            axis = a.count - b.count
        }
        guard axis + b.count <= a.count else {
            throw OperatorError("\(context.opType): B \(b) does not fit in A \(a) at axis \(axis)")
        }
        var padded = [Int](repeating: 1, count: axis) + b
        padded += [Int](repeating: 1, count: a.count - padded.count)
        for (x, y) in zip(a, padded) where y != 1 && x != y {
            throw OperatorError("\(context.opType): B \(b) does not match A \(a) at axis \(axis)")
        }
        return padded
    }

    // MARK: Element passes

    /// `values` wrapped to the integer type `type`.
    static func wrapped(_ values: [Int64], to type: DataType) -> [Int64] {
        switch type {
        case .int8: return values.map { Int64(Int8(truncatingIfNeeded: $0)) }
        case .uint8: return values.map { Int64(UInt8(truncatingIfNeeded: $0)) }
        case .int16: return values.map { Int64(Int16(truncatingIfNeeded: $0)) }
        case .uint16: return values.map { Int64(UInt16(truncatingIfNeeded: $0)) }
        case .int32: return values.map { Int64(Int32(truncatingIfNeeded: $0)) }
        case .uint32: return values.map { Int64(UInt32(truncatingIfNeeded: $0)) }
        default: return values
        }
    }

    /// `values` rounded once to the floating-point type `type`.
    static func rounded(_ values: [Double], to type: DataType) -> [Double] {
        switch type {
        case .float: return values.map { Double(Float($0)) }
        case .float16, .bfloat16: return values.map { roundReal($0, to: type) }
        default: return values
        }
    }

    /// A tensor of integers computed with wrapping Int64 arithmetic, wrapped to `type`.
    static func integers(_ type: DataType, _ shape: [Int], _ values: [Int64]) -> TensorValue {
        TensorValue(type, shape: shape, .integers(wrapped(values, to: type)))
    }

    /// A tensor of reals computed in Double, rounded once to `type`.
    static func reals(_ type: DataType, _ shape: [Int], _ values: [Double]) -> TensorValue {
        TensorValue(type, shape: shape, .reals(rounded(values, to: type)))
    }

    /// The value of `type` nearest to the integer `value` (one rounding).
    static func real(_ value: Int64, to type: DataType) -> Double {
        if type == .double || value.magnitude < 1 << 53 { return roundReal(Double(value), to: type) }
        let magnitude = real(unsigned: value.magnitude, to: type)
        return value < 0 ? -magnitude : magnitude
    }

    /// The value of `type` nearest to the unsigned integer `value` (one rounding).
    static func real(unsigned value: UInt64, to type: DataType) -> Double {
        if type == .double || value < 1 << 53 { return roundReal(Double(value), to: type) }
        // Round to odd at 53 bits (exact with a sticky bit), then once to the narrower type:
        // correct for every type with at most 51 significant bits.
        let shift = (64 - value.leadingZeroBitCount) - 53
        let kept = value >> UInt64(shift)
        let sticky: UInt64 = value & ((1 << UInt64(shift)) - 1) != 0 ? 1 : 0
        let odd = Double(kept | sticky) * Double(sign: .plus, exponent: shift, significand: 1)
        return roundReal(odd, to: type)
    }

    /// `value` truncated toward zero as an integer of `type` (any integer type but uint64);
    /// nil when NaN, infinite or out of the type's range.
    static func truncatedInteger(_ value: Double, to type: DataType) -> Int64? {
        guard value.isFinite else { return nil }
        let t = value.rounded(.towardZero)
        guard t >= -9223372036854775808.0, t < 9223372036854775808.0 else { return nil }
        let i = Int64(t)
        return wrapInteger(i, to: type) == i ? i : nil
    }

    /// `value` truncated toward zero as a uint64; nil when NaN, infinite or out of range.
    static func truncatedUnsigned(_ value: Double) -> UInt64? {
        guard value.isFinite else { return nil }
        let t = value.rounded(.towardZero)
        guard t > -1, t < 18446744073709551616.0 else { return nil }
        return UInt64(t)
    }

    // MARK: Shape values

    /// The elements of a value of rank 0 or 1 as dimensions: its constant's integers or
    /// booleans (0 and 1), else its inferred shape value.
    static func shapeElements(_ facts: ValueFacts?) -> [Dimension]? {
        guard let facts else { return nil }
        if let constant = facts.constant {
            guard constant.rank <= 1 else { return nil }
            switch constant.elements {
            case .integers(let v): return v.map { .value($0) }
            case .booleans(let v): return v.map { .value($0 ? 1 : 0) }
            default: return nil
            }
        }
        if let value = facts.shapeValue, facts.rank ?? 1 <= 1 { return value }
        return nil
    }

    /// Whether `type` holds its elements as `Int64`s or booleans, as shape values do.
    static func holdsShapeValues(_ type: DataType?) -> Bool {
        guard let type else { return false }
        let kind = TensorValue.kind(of: type)
        return kind == .integer || kind == .boolean
    }

    /// Whether an element of a shape value is known not to be negative: a number that is not, or
    /// a dimension symbol.
    static func isNonNegative(_ d: Dimension) -> Bool {
        switch d {
        case .value(let v): return v >= 0
        case .param(let p): return SymbolAllocator.isDimension(p)
        case .unknown: return false
        }
    }

    /// Whether an element is a dimension symbol or a number in [0, 2^31]: sums and products of
    /// such elements stay non-negative in int64 (dimensions of real tensors are far below 2^31
    /// times 2^31), while a large constant could wrap them negative.
    static func isModestNonNegative(_ d: Dimension) -> Bool {
        if case .value(let v) = d { return v >= 0 && v <= 1 << 31 }
        return isNonNegative(d)
    }

    /// `f` applied elementwise to shape values broadcast against each other (lengths equal or
    /// one of them 1); nil when the lengths do not broadcast. `f` returns nil for "not known",
    /// which becomes a fresh symbol: a dimension symbol when `keepsSign` (the operator maps
    /// non-negative operands to a non-negative result) and the operands are not negative, else
    /// a value symbol.
    static func combineShapeValues(_ operands: [[Dimension]], context: InferenceContext, keepsSign: Bool,
                                   _ f: ([Dimension]) -> Dimension?) -> [Dimension]? {
        guard let length = operands.map(\.count).max() else { return nil }
        guard operands.allSatisfy({ $0.count == length || $0.count == 1 }) else { return nil }
        var result: [Dimension] = []
        result.reserveCapacity(length)
        for i in 0..<length {
            let elements = operands.map { $0.count == 1 ? $0[0] : $0[i] }
            if let known = f(elements) {
                result.append(known)
            } else {
                let nonNegative = keepsSign && elements.allSatisfy(isModestNonNegative)
                result.append(nonNegative ? context.freshDimension() : context.freshValue())
            }
        }
        return result
    }

    /// Sets `shapeValue` on output 0 when its shape is known to have rank 0 or 1 and the
    /// number of elements agrees (a rank-1 length that inference left symbolic becomes the
    /// known count).
    static func attachShapeValue(_ value: [Dimension]?, to context: inout InferenceContext) {
        guard let value, !context.outputs.isEmpty, holdsShapeValues(context.outputs[0].elementType),
              let shape = context.outputs[0].shape else { return }
        switch shape.count {
        case 0:
            guard value.count == 1 else { return }
        case 1:
            if case .value(let n) = shape[0], n != Int64(value.count) { return }
            context.outputs[0].shape = [.value(Int64(value.count))]
        default:
            return
        }
        context.outputs[0].shapeValue = value
    }

    /// Whether two dimensions are certainly equal (same number or same symbol).
    static func certainlyEqual(_ a: Dimension, _ b: Dimension) -> Bool {
        switch (a, b) {
        case (.value(let x), .value(let y)): return x == y
        case (.param(let p), .param(let q)): return p == q
        default: return false
        }
    }
}
