import ONNXFuseIR

/// A tensor as the reference kernels compute with it: an element type, a shape and the
/// elements, unpacked into the widest exact Swift type of their kind.
///
/// - Signed and unsigned integers up to 32 bits and `int64` are `Int64`s, always within the
///   range of their type (kernels wrap results to it, as two's complement hardware does).
/// - `uint64` is `UInt64`.
/// - `float`, `double`, `float16` and `bfloat16` are `Double`s, always exactly a value of their
///   type: every kernel rounds its results once to the element type (IEEE: nearest, ties to
///   even), so float32 arithmetic done in float64 and rounded once gives the float32 result for
///   the basic operations.
/// - `bool` is `Bool`; `string` is byte strings.
public struct TensorValue: Equatable, Sendable, CustomStringConvertible {
    /// The elements, row-major.
    public enum Elements: Equatable, Sendable {
        /// Integers of every integer type but `uint64`.
        case integers([Int64])
        /// `uint64` elements.
        case unsigned([UInt64])
        /// Floating-point elements, each exactly representable in the element type.
        case reals([Double])
        /// Booleans.
        case booleans([Bool])
        /// Byte strings.
        case strings([[UInt8]])

        /// The number of elements.
        public var count: Int {
            switch self {
            case .integers(let v): return v.count
            case .unsigned(let v): return v.count
            case .reals(let v): return v.count
            case .booleans(let v): return v.count
            case .strings(let v): return v.count
            }
        }
    }

    /// The element type.
    public let dataType: DataType
    /// The dimensions, outermost first.
    public let shape: [Int]
    /// The elements, `shape.product` of them.
    public let elements: Elements

    /// A tensor; the elements must suit the type and number the shape's product.
    public init(_ dataType: DataType, shape: [Int], _ elements: Elements) {
        precondition(TensorValue.kind(of: dataType) == elements.kind, "\(dataType) cannot hold \(elements.kind) elements")
        precondition(shape.allSatisfy { $0 >= 0 } && shapeProduct(shape) == elements.count,
                     "shape \(shape) does not hold \(elements.count) elements")
        self.dataType = dataType
        self.shape = shape
        self.elements = elements
    }

    /// Integers of `dataType` (any integer type but uint64), wrapped to its range.
    public init(_ dataType: DataType, shape: [Int], integers: [Int64]) {
        self.init(dataType, shape: shape, .integers(integers.map { wrapInteger($0, to: dataType) }))
    }

    /// Reals rounded once to `dataType` (a floating-point type).
    public init(_ dataType: DataType, shape: [Int], reals: [Double]) {
        self.init(dataType, shape: shape, .reals(reals.map { roundReal($0, to: dataType) }))
    }

    /// An int64 tensor.
    public static func int64(_ values: [Int64], shape: [Int]? = nil) -> TensorValue {
        TensorValue(.int64, shape: shape ?? [values.count], .integers(values))
    }

    /// A rank-0 int64 tensor.
    public static func int64Scalar(_ value: Int64) -> TensorValue { TensorValue(.int64, shape: [], .integers([value])) }

    /// A bool tensor.
    public static func bool(_ values: [Bool], shape: [Int]) -> TensorValue { TensorValue(.bool, shape: shape, .booleans(values)) }

    /// The number of elements.
    public var count: Int { elements.count }

    /// The number of dimensions.
    public var rank: Int { shape.count }

    /// `float[2,3]` followed by up to eight elements.
    public var description: String {
        let head = "\(dataType)\(shape)"
        let items: [String]
        switch elements {
        case .integers(let v): items = v.prefix(8).map { "\($0)" }
        case .unsigned(let v): items = v.prefix(8).map { "\($0)" }
        case .reals(let v): items = v.prefix(8).map { "\($0)" }
        case .booleans(let v): items = v.prefix(8).map { "\($0)" }
        case .strings(let v): items = v.prefix(8).map { "\"\(String(decoding: $0, as: UTF8.self))\"" }
        }
        return head + " [" + items.joined(separator: ", ") + (count > 8 ? ", ..." : "") + "]"
    }

    // MARK: Element kinds

    /// How the elements of a type are held.
    public enum ElementKind: Equatable, Sendable {
        /// `Int64`.
        case integer
        /// `UInt64`.
        case unsigned
        /// `Double`.
        case real
        /// `Bool`.
        case boolean
        /// Byte strings.
        case string
    }

    /// How elements of `dataType` are held; nil for types the kernels do not compute with
    /// (complex, float8, sub-byte and unknown types).
    public static func kind(of dataType: DataType) -> ElementKind? {
        switch dataType {
        case .int8, .int16, .int32, .int64, .uint8, .uint16, .uint32: return .integer
        case .uint64: return .unsigned
        case .float, .double, .float16, .bfloat16: return .real
        case .bool: return .boolean
        case .string: return .string
        default: return nil
        }
    }

    /// How the elements are held.
    public var kind: ElementKind { elements.kind }

    // MARK: Reading elements

    /// The elements as `Int64`s: integers as they are, uint64 beyond Int64's range, reals that
    /// are not integers and NaN are errors; booleans are 0 and 1. For indices, axes and shapes.
    public func int64Values() throws(OperatorError) -> [Int64] {
        switch elements {
        case .integers(let v): return v
        case .unsigned(let v):
            var result: [Int64] = []
            result.reserveCapacity(v.count)
            for item in v {
                guard let i = Int64(exactly: item) else { throw OperatorError("\(item) does not fit in int64") }
                result.append(i)
            }
            return result
        case .reals(let v):
            var result: [Int64] = []
            result.reserveCapacity(v.count)
            for item in v {
                guard let i = Int64(exactly: item) else { throw OperatorError("\(item) is not an integer") }
                result.append(i)
            }
            return result
        case .booleans(let v): return v.map { $0 ? 1 : 0 }
        case .strings: throw OperatorError("expected numbers, got strings")
        }
    }

    /// The elements as `Double`s (integers beyond 2^53 round); strings are an error.
    public func doubleValues() throws(OperatorError) -> [Double] {
        switch elements {
        case .integers(let v): return v.map { Double($0) }
        case .unsigned(let v): return v.map { Double($0) }
        case .reals(let v): return v
        case .booleans(let v): return v.map { $0 ? 1 : 0 }
        case .strings: throw OperatorError("expected numbers, got strings")
        }
    }

    /// The single element as an `Int64` (a rank-0 or one-element tensor).
    public func scalarInt64() throws(OperatorError) -> Int64 {
        guard count == 1 else { throw OperatorError("expected one element, got shape \(shape)") }
        return try int64Values()[0]
    }

    /// The same elements with another shape (same element count).
    public func reshaped(_ newShape: [Int]) -> TensorValue { TensorValue(dataType, shape: newShape, elements) }

    /// The elements at `indices` (flat, row-major), in that order, with shape `newShape`.
    public func gathering(_ indices: [Int], shape newShape: [Int]) -> TensorValue {
        TensorValue(dataType, shape: newShape, elements.gathering(indices))
    }
}

extension TensorValue.Elements {
    /// The kind of element held.
    public var kind: TensorValue.ElementKind {
        switch self {
        case .integers: return .integer
        case .unsigned: return .unsigned
        case .reals: return .real
        case .booleans: return .boolean
        case .strings: return .string
        }
    }

    /// The elements at `indices`, in that order.
    public func gathering(_ indices: [Int]) -> TensorValue.Elements {
        switch self {
        case .integers(let v): return .integers(indices.map { v[$0] })
        case .unsigned(let v): return .unsigned(indices.map { v[$0] })
        case .reals(let v): return .reals(indices.map { v[$0] })
        case .booleans(let v): return .booleans(indices.map { v[$0] })
        case .strings(let v): return .strings(indices.map { v[$0] })
        }
    }

    /// These elements followed by `other`'s (of the same kind).
    public func appending(_ other: TensorValue.Elements) -> TensorValue.Elements {
        switch (self, other) {
        case (.integers(let a), .integers(let b)): return .integers(a + b)
        case (.unsigned(let a), .unsigned(let b)): return .unsigned(a + b)
        case (.reals(let a), .reals(let b)): return .reals(a + b)
        case (.booleans(let a), .booleans(let b)): return .booleans(a + b)
        case (.strings(let a), .strings(let b)): return .strings(a + b)
        default: preconditionFailure("appending \(other.kind) elements to \(kind) elements")
        }
    }

    /// No elements of `kind`.
    public static func empty(_ kind: TensorValue.ElementKind) -> TensorValue.Elements {
        switch kind {
        case .integer: return .integers([])
        case .unsigned: return .unsigned([])
        case .real: return .reals([])
        case .boolean: return .booleans([])
        case .string: return .strings([])
        }
    }
}

/// The product of a shape's dimensions, or nil when it overflows.
public func shapeProduct(_ shape: [Int]) -> Int? {
    var product = 1
    for dim in shape {
        let (next, overflow) = product.multipliedReportingOverflow(by: dim)
        if overflow { return nil }
        product = next
    }
    return product
}

/// `value` wrapped to the range of the integer type `dataType` (two's complement).
public func wrapInteger(_ value: Int64, to dataType: DataType) -> Int64 {
    switch dataType {
    case .int8: return Int64(Int8(truncatingIfNeeded: value))
    case .uint8: return Int64(UInt8(truncatingIfNeeded: value))
    case .int16: return Int64(Int16(truncatingIfNeeded: value))
    case .uint16: return Int64(UInt16(truncatingIfNeeded: value))
    case .int32: return Int64(Int32(truncatingIfNeeded: value))
    case .uint32: return Int64(UInt32(truncatingIfNeeded: value))
    default: return value
    }
}

/// `value` rounded once to the floating-point type `dataType` (nearest, ties to even;
/// overflow gives infinity; NaN stays NaN).
public func roundReal(_ value: Double, to dataType: DataType) -> Double {
    switch dataType {
    case .float: return Double(Float(value))
    case .float16: return float16Value(float16Bits(value))
    case .bfloat16: return bfloat16Value(bfloat16Bits(value))
    default: return value
    }
}

/// What went wrong evaluating or inferring an operator: a message for reports.
public struct OperatorError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The message.
    public let message: String
    /// The kernel does not compute this variant of its operator (it says which); the node is
    /// valid, only not evaluated here.
    public var isUnsupported = false
    /// An error with `message`.
    public init(_ message: String) { self.message = message }

    /// A variant of the operator the kernel does not compute.
    public static func unsupported(_ message: String) -> OperatorError {
        var error = OperatorError(message)
        error.isUnsupported = true
        return error
    }
    /// The message.
    public var description: String { message }
}
