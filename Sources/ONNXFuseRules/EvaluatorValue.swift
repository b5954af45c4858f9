import ONNXFuseIR

/// The value of a `where` or `compute` expression.
public enum EvalValue: Equatable, Sendable {
    /// A tensor and the element type it came from (nil for one built from literals only).
    /// Arithmetic keeps the element type; `tensor(as:)` rounds to it once at the end.
    case tensor(NDArray, DataType?)
    /// An integer: an integer literal, an `int` attribute, a dimension, a count.
    case integer(Int64)
    /// A real number: a literal with `.` or an exponent, a `float` attribute.
    case real(Double)
    /// `true` or `false`, or the result of a comparison.
    case boolean(Bool)
    /// A string literal or a `string` attribute.
    case string(String)
    /// A list: a list literal, an `ints`/`floats` attribute, a shape.
    case list([EvalValue])
    /// An element type, such as `float16`.
    case dataType(DataType)
    /// A symbolic dimension (`dim(x, 0)` of an `[N, 3]` value): equal to itself, and of unknown
    /// relation to anything else.
    case symbol(String)
    /// Nothing: an absent optional input or attribute.
    case absent

    /// The elements a tensor holds, the items of a list (not counting nested lists' items
    /// twice: a list is built from values already counted), 0 for a scalar: the work measure of
    /// `EvaluationLimits.maximumWorkPerApplication`.
    public var elementCount: Int {
        switch self {
        case .tensor(let array, _): return array.count
        case .list(let items): return items.count
        default: return 0
        }
    }

    /// What kind of value this is, with an article, for messages: `a tensor`, `an integer`.
    public var kind: String {
        switch self {
        case .tensor: return "a tensor"
        case .integer: return "an integer"
        case .real: return "a real number"
        case .boolean: return "a boolean"
        case .string: return "a string"
        case .list: return "a list"
        case .dataType: return "a data type"
        case .symbol: return "a symbolic dimension"
        case .absent: return "absent"
        }
    }

    /// A tensor built from literals (`.tensor(array, nil)`).
    public static func literal(_ array: NDArray) -> EvalValue { .tensor(array, nil) }

    /// The number as a double, for `.integer` and `.real`; nil otherwise.
    public var numberValue: Double? {
        switch self {
        case .integer(let i): return Double(i)
        case .real(let r): return r
        default: return nil
        }
    }

    /// The value as an array and its element type: tensors as they are; numbers as rank-0
    /// literals; lists of numbers (nested to any depth, rectangular) as literals of that shape.
    public func asTensor() throws(EvaluationError) -> (NDArray, DataType?) {
        switch self {
        case .tensor(let array, let type): return (array, type)
        case .integer(let i): return (NDArray(shape: [], integers: [i]), nil)
        case .real(let r): return (.scalar(r), nil)
        case .list: return (try listArray(), nil)
        default: throw EvaluationError("expected a tensor, got \(kind)")
        }
    }

    /// A nested list of numbers as an array.
    private func listArray() throws(EvaluationError) -> NDArray {
        switch self {
        case .integer(let i): return NDArray(shape: [], integers: [i])
        case .real(let r): return .scalar(r)
        case .list(let items):
            var shape: [Int]?
            var values = [Double]()
            // Exact while every item is an integer.
            var integers: [Int64]? = []
            for item in items {
                let array = try item.listArray()
                guard shape == nil || shape == array.shape else {
                    throw EvaluationError("list is not rectangular: it holds items of shapes \(shape!) and \(array.shape)")
                }
                shape = array.shape
                values += array.values
                if let exact = array.integers { integers? += exact } else { integers = nil }
            }
            let fullShape = [items.count] + (shape ?? [])
            if let integers { return NDArray(shape: fullShape, integers: integers) }
            return NDArray(shape: fullShape, values: values)
        default:
            throw EvaluationError("expected a list of numbers, but it holds \(kind)")
        }
    }

    /// The value as one integer: an `.integer`, or a `.real` or one-element tensor holding one.
    public func asInteger() throws(EvaluationError) -> Int64 {
        switch self {
        case .integer(let i): return i
        case .real(let r):
            guard let i = Int64(exactly: r) else { throw EvaluationError("expected an integer, got \(formatNumber(r))") }
            return i
        case .tensor(let array, _) where array.count == 1:
            return try array.element(0).asInteger()
        default: throw EvaluationError("expected an integer, got \(kind)")
        }
    }

    /// The value as a list of integers (for shapes, axes, permutations): a list of integers,
    /// a tensor of integral values of rank 0 or 1, or a single integer.
    public func asIntegers() throws(EvaluationError) -> [Int] {
        switch self {
        case .list(let items):
            var result = [Int]()
            result.reserveCapacity(items.count)
            for item in items {
                guard item.numberValue != nil else { throw EvaluationError("expected a list of integers, but it holds \(item.kind)") }
                result.append(Int(try item.asInteger()))
            }
            return result
        case .tensor(let array, _):
            guard array.rank <= 1 else { throw EvaluationError("expected a list of integers, got a tensor of shape \(array.shape)") }
            var result = [Int]()
            result.reserveCapacity(array.count)
            for index in 0..<array.count { result.append(Int(try array.element(index).asInteger())) }
            return result
        case .integer, .real:
            return [Int(try asInteger())]
        default:
            throw EvaluationError("expected a list of integers, got \(kind)")
        }
    }

    /// The value as a data type: a `.dataType`, or a string naming one (`"float16"`).
    public func asDataType() throws(EvaluationError) -> DataType {
        switch self {
        case .dataType(let type): return type
        case .string(let name):
            guard let type = DataType(name: name) else { throw EvaluationError("'\(name)' is not a data type") }
            return type
        default: throw EvaluationError("expected a data type, got \(kind)")
        }
    }

    /// The boolean, or an error naming `what` needed it.
    public func asBoolean(for what: String) throws(EvaluationError) -> Bool {
        // A bool tensor (an elementwise comparison) holds when every element does: `all(...)`.
        if case .tensor(let array, .bool) = self { return array.values.allSatisfy { $0 != 0 } }
        guard case .boolean(let b) = self else { throw EvaluationError("\(what) needs a boolean, got \(kind)") }
        return b
    }
}

extension EvalValue: CustomStringConvertible {
    /// The value as a rule would write it; tensors as `tensor<float>[2, 3]`.
    public var description: String {
        switch self {
        case .tensor(let array, let type):
            let head = "tensor<\(type.map { "\($0)" } ?? "literal")>\(array.shape)"
            return array.count <= 8 ? "\(head) [\(array.values.map(formatNumber).joined(separator: ", "))]" : head
        case .integer(let i): return "\(i)"
        case .real(let r): return "\(r)"
        case .boolean(let b): return "\(b)"
        case .string(let s): return "\"\(s)\""
        case .list(let items): return "[\(items.map(\.description).joined(separator: ", "))]"
        case .dataType(let type): return "\(type)"
        case .symbol(let name): return name
        case .absent: return "absent"
        }
    }
}
