import ONNXFuseIR
import ONNXFuseOps

/// `lhs op rhs` for the infix operators of `where` and `compute` expressions, spelled as in
/// rule files: `+ - * /`, `== !=`, `< <= > >=`, `in`, `++`, `&&`, `||`.
///
/// - Arithmetic: integers with integers stay integers (overflow is an error; `/` gives an
///   integer when it divides exactly, else a real; dividing by integer zero is an error);
///   any real makes a real (IEEE: `1.0 / 0` is infinity). A tensor with a tensor or a number
///   broadcasts (numpy rules) and keeps the element type of its tensor operands, which must
///   agree; numbers and literal tensors adapt. Two lists of numbers of the same length
///   combine item by item.
/// - `==` and `!=` compare any two values and never fail: numbers by value (`2 == 2.0`),
///   lists item by item, tensors by shape and elements, a tensor and a number by whether every
///   element equals the number, a 1-D tensor and a list of numbers item by item; values of
///   other different kinds are unequal.
/// - Ordering compares numbers only (NaN is unordered: every comparison is false).
/// - `in` tests membership with `==` in the list on the right.
/// - `++` concatenates two lists (or two strings).
/// - `&&` and `||` take booleans; both operands are already evaluated, so short-circuiting is
///   the caller's business.
public func apply(_ op: String, _ lhs: EvalValue, _ rhs: EvalValue) throws(EvaluationError) -> EvalValue {
    guard let known = BinaryOperator(rawValue: op) else { throw EvaluationError("unknown operator '\(op)'") }
    return try apply(known, lhs, rhs)
}

/// `lhs op rhs` for an operator already parsed (what lowered expressions hold): as the public
/// `apply(_:_:_:)`, without reading the operator's spelling.
func apply(_ op: BinaryOperator, _ lhs: EvalValue, _ rhs: EvalValue) throws(EvaluationError) -> EvalValue {
    switch op {
    case .add, .subtract, .multiply, .divide:
        return try arithmetic(op, lhs, rhs)
    case .equal, .notEqual:
        // A symbolic dimension equals itself; against anything else the answer is unknown,
        // and an unknown answer must not let a rule fire either way.
        if lhs.containsSymbol || rhs.containsSymbol {
            guard let equal = symbolicEquality(lhs, rhs) else {
                throw EvaluationError("cannot tell whether \(lhs) equals \(rhs): a dimension is symbolic")
            }
            return .boolean(op == .equal ? equal : !equal)
        }
        return .boolean(op == .equal ? valuesEqual(lhs, rhs) : !valuesEqual(lhs, rhs))
    case .less, .lessOrEqual, .greater, .greaterOrEqual:
        if case .tensor = lhs { return try elementwiseComparison(op, lhs, rhs) }
        if case .tensor = rhs { return try elementwiseComparison(op, lhs, rhs) }
        guard lhs.numberValue != nil, rhs.numberValue != nil else {
            throw EvaluationError("'\(op.rawValue)' compares numbers, not \(lhs.kind) and \(rhs.kind)")
        }
        guard let order = compareNumbers(lhs, rhs) else { return .boolean(false) }
        switch op {
        case .less: return .boolean(order < 0)
        case .lessOrEqual: return .boolean(order <= 0)
        case .greater: return .boolean(order > 0)
        default: return .boolean(order >= 0)
        }
    case .in:
        // A tensor on the right is read as the flat list of its elements: `0 in shape_input`
        // (element by element: no list of them is made).
        if case .tensor(let array, _) = rhs { return .boolean((0..<array.count).contains { valuesEqual(lhs, array.element($0)) }) }
        guard let items = try rhs.listItems() else {
            throw EvaluationError("'in' needs a list or a tensor on its right, got \(rhs.kind)")
        }
        return .boolean(items.contains { valuesEqual(lhs, $0) })
    case .concatenate:
        switch (lhs, rhs) {
        case (.list(let a), .list(let b)): return .list(a + b)
        case (.string(let a), .string(let b)): return .string(a + b)
        default: throw EvaluationError("'++' concatenates two lists, not \(lhs.kind) and \(rhs.kind)")
        }
    case .and, .or:
        // A bool tensor counts as true when every element is (`asBoolean`).
        guard let a = try? lhs.asBoolean(for: op.rawValue), let b = try? rhs.asBoolean(for: op.rawValue) else {
            throw EvaluationError("'\(op.rawValue)' needs booleans, got \(lhs.kind) and \(rhs.kind)")
        }
        return .boolean(op == .and ? a && b : a || b)
    }
}

/// `op operand` for the prefix operators: `-` (numbers and tensors) and `!` (booleans).
public func applyUnary(_ op: String, _ operand: EvalValue) throws(EvaluationError) -> EvalValue {
    switch (op, operand) {
    case ("-", .integer(let i)):
        guard i != .min else { throw EvaluationError("integer overflow in -(\(i))") }
        return .integer(-i)
    case ("-", .real(let r)):
        return .real(-r)
    case ("-", .tensor(let array, let type)):
        return .tensor(array.neg(), type)
    case ("!", .boolean(let b)):
        return .boolean(!b)
    case ("!", .tensor(let array, .bool)):
        // Element by element: `!(c > 1)` holds when no element is above 1.
        return .tensor(array.map { $0 == 0 ? 1 : 0 }, .bool)
    case ("-", _):
        throw EvaluationError("'-' negates a number or a tensor, not \(operand.kind)")
    case ("!", _):
        throw EvaluationError("'!' needs a boolean, got \(operand.kind)")
    default:
        throw EvaluationError("unknown operator '\(op)'")
    }
}

/// The element type of a tensor computed from tensors of types `lhs` and `rhs` (nil: a literal,
/// which adapts to the other).
public func combinedElementType(_ lhs: DataType?, _ rhs: DataType?) throws(EvaluationError) -> DataType? {
    guard let lhs else { return rhs }
    guard let rhs else { return lhs }
    guard lhs == rhs else {
        throw EvaluationError("the expression mixes \(lhs) and \(rhs) tensors; cast one of them")
    }
    return lhs
}

/// `< <= > >=` with a tensor on either side: a bool tensor, element by element after
/// broadcasting, compared in the tensor's own element type (a number is rounded to it first, so
/// a float32 `1e-5` is not below the literal `1e-5`). NaN compares false.
private func elementwiseComparison(_ op: BinaryOperator, _ lhs: EvalValue, _ rhs: EvalValue) throws(EvaluationError) -> EvalValue {
    let (a, typeA) = try lhs.asTensor()
    let (b, typeB) = try rhs.asTensor()
    let type = try combinedElementType(typeA, typeB)
    let holds: (Int64, Int64) -> Bool = ordering(op)
    let real: (Double, Double) -> Bool = ordering(op)
    // Two integer arrays compare exactly; otherwise in the element type, as float64.
    if a.integers != nil && b.integers != nil { return .tensor(try NDArray.comparison(a, b, integers: holds, reals: real), .bool) }
    let left = type.map { t in a.map { roundReal($0, to: t) } } ?? a
    let right = type.map { t in b.map { roundReal($0, to: t) } } ?? b
    return .tensor(try NDArray.comparison(left, right, integers: holds, reals: real), .bool)
}

/// The order `op` (`<`, `<=`, `>` or `>=`) tests.
private func ordering<T: Comparable>(_ op: BinaryOperator) -> (T, T) -> Bool {
    switch op {
    case .less: return { $0 < $1 }
    case .lessOrEqual: return { $0 <= $1 }
    case .greater: return { $0 > $1 }
    default: return { $0 >= $1 }
    }
}

/// `+ - * /` on numbers and tensors, and item by item on two lists of the same length.
private func arithmetic(_ op: BinaryOperator, _ lhs: EvalValue, _ rhs: EvalValue) throws(EvaluationError) -> EvalValue {
    switch (lhs, rhs) {
    case (.list(let a), .list(let b)):
        // Pads and other attribute lists add up item by item: [1, 2] + [3, 4] is [4, 6]
        // (`++` concatenates).
        guard a.count == b.count else {
            throw EvaluationError("'\(op.rawValue)' combines lists of the same length, not \(a.count) and \(b.count) items")
        }
        var items: [EvalValue] = []
        items.reserveCapacity(a.count)
        for (x, y) in zip(a, b) {
            guard x.numberValue != nil, y.numberValue != nil else {
                throw EvaluationError("'\(op.rawValue)' combines lists of numbers, not \(x.kind) and \(y.kind)")
            }
            items.append(try arithmetic(op, x, y))
        }
        return .list(items)
    case (.integer(let a), .integer(let b)):
        return try integerArithmetic(op, a, b)
    case (.integer, .real), (.real, .integer), (.real, .real):
        let a = lhs.numberValue!, b = rhs.numberValue!
        switch op {
        case .add: return .real(a + b)
        case .subtract: return .real(a - b)
        case .multiply: return .real(a * b)
        default: return .real(a / b)
        }
    case (.tensor(let array, let type), _) where array.integers == nil && rhs.numberValue != nil:
        // A float64 tensor and a number (`var + eps`): as against a rank-0 array, without one.
        return .tensor(try tensorAndNumber(op, array, rhs.numberValue!, numberOnLeft: false), type)
    case (_, .tensor(let array, let type)) where array.integers == nil && lhs.numberValue != nil:
        return .tensor(try tensorAndNumber(op, array, lhs.numberValue!, numberOnLeft: true), type)
    case (.tensor, .tensor), (.tensor, .integer), (.tensor, .real), (.integer, .tensor), (.real, .tensor):
        let (a, typeA) = try lhs.asTensor()
        let (b, typeB) = try rhs.asTensor()
        let type = try combinedElementType(typeA, typeB)
        switch op {
        case .add: return .tensor(try a + b, type)
        case .subtract: return .tensor(try a - b, type)
        case .multiply: return .tensor(try a * b, type)
        default: return .tensor(try a / b, type)
        }
    default:
        throw EvaluationError("'\(op.rawValue)' needs numbers or tensors, got \(lhs.kind) and \(rhs.kind)")
    }
}

/// `array op number` (`number op array` when `numberOnLeft`) for `+ - * /` (`NDArray.combining`).
private func tensorAndNumber(_ op: BinaryOperator, _ array: NDArray, _ number: Double, numberOnLeft: Bool) throws(EvaluationError) -> NDArray {
    switch op {
    case .add: return try NDArray.combining(array, number, numberOnLeft: numberOnLeft, +)
    case .subtract: return try NDArray.combining(array, number, numberOnLeft: numberOnLeft, -)
    case .multiply: return try NDArray.combining(array, number, numberOnLeft: numberOnLeft, *)
    default: return try NDArray.combining(array, number, numberOnLeft: numberOnLeft, /)
    }
}

/// `+ - * /` on two integers, with overflow checks.
private func integerArithmetic(_ op: BinaryOperator, _ a: Int64, _ b: Int64) throws(EvaluationError) -> EvalValue {
    let (result, overflow): (Int64, Bool)
    switch op {
    case .add: (result, overflow) = a.addingReportingOverflow(b)
    case .subtract: (result, overflow) = a.subtractingReportingOverflow(b)
    case .multiply: (result, overflow) = a.multipliedReportingOverflow(by: b)
    default:
        guard b != 0 else { throw EvaluationError("division by zero in \(a) / \(b)") }
        let (quotient, remainder) = a.quotientAndRemainderReportingOverflow(dividingBy: b)
        guard remainder == 0 else { return .real(Double(a) / Double(b)) }
        (result, overflow) = quotient
    }
    guard !overflow else { throw EvaluationError("integer overflow in \(a) \(op.rawValue) \(b)") }
    return .integer(result)
}

extension Int64 {
    /// Quotient and remainder; the quotient reports overflow (only `min / -1` overflows).
    fileprivate func quotientAndRemainderReportingOverflow(dividingBy divisor: Int64) -> ((Int64, Bool), Int64) {
        let quotient = dividedReportingOverflow(by: divisor)
        let remainder = remainderReportingOverflow(dividingBy: divisor).partialValue
        return (quotient, remainder)
    }
}

extension EvalValue {
    /// Whether a symbolic dimension is in it (at any depth of a list).
    var containsSymbol: Bool {
        switch self {
        case .symbol: return true
        case .list(let items): return items.contains { $0.containsSymbol }
        default: return false
        }
    }
}

/// Equality where symbolic dimensions may appear: true or false when certain, nil when a
/// symbol meets another symbol or a number (they may or may not be equal at run time).
func symbolicEquality(_ lhs: EvalValue, _ rhs: EvalValue) -> Bool? {
    switch (lhs, rhs) {
    case (.symbol(let a), .symbol(let b)): return a == b ? true : nil
    case (.symbol, _), (_, .symbol): return nil
    case (.list(let a), .list(let b)):
        guard a.count == b.count else { return false }
        var result: Bool? = true
        for (x, y) in zip(a, b) {
            guard let equal = symbolicEquality(x, y) else { result = nil; continue }
            if !equal { return false }  // one certain difference decides
        }
        return result
    default:
        return valuesEqual(lhs, rhs)
    }
}

/// Whether two values are equal in the sense of `==` (see `apply`).
public func valuesEqual(_ lhs: EvalValue, _ rhs: EvalValue) -> Bool {
    switch (lhs, rhs) {
    case (.integer, .integer), (.integer, .real), (.real, .integer), (.real, .real):
        return compareNumbers(lhs, rhs) == 0
    case (.boolean(let a), .boolean(let b)): return a == b
    case (.string(let a), .string(let b)): return a == b
    case (.dataType(let a), .dataType(let b)): return a == b
    // A type name equals its code: a Cast's `to` (an INT attribute) against `double`.
    case (.dataType(let a), .integer(let b)), (.integer(let b), .dataType(let a)): return Int64(a.rawValue) == b
    case (.absent, .absent): return true
    case (.list(let a), .list(let b)):
        return a.count == b.count && zip(a, b).allSatisfy { valuesEqual($0, $1) }
    case (.tensor(let a, _), .tensor(let b, _)):
        guard a.shape == b.shape else { return false }
        if let x = a.integers, let y = b.integers { return x == y }
        if a.integers == nil && b.integers == nil { return a.values == b.values }
        return (0..<a.count).allSatisfy { compareNumbers(a.element($0), b.element($0)) == 0 }
    case (.tensor(let a, _), .integer(let i)) where a.integers != nil:
        return a.integers!.allSatisfy { $0 == i }
    case (.tensor(let a, _), .real) where a.integers != nil:
        return (0..<a.count).allSatisfy { compareNumbers(a.element($0), rhs) == 0 }
    case (.tensor(let a, let type), .integer), (.tensor(let a, let type), .real):
        // In the tensor's own element type: a float32 1e-5 equals the literal 1e-5.
        let number = type.map { roundReal(rhs.numberValue!, to: $0) } ?? rhs.numberValue!
        return a.values.allSatisfy { $0 == number }
    case (.integer, .tensor), (.real, .tensor):
        return valuesEqual(rhs, lhs)
    case (.tensor(let a, _), .list(let items)) where a.integers != nil:
        return a.shape.count == 1 && a.count == items.count && items.indices.allSatisfy { compareNumbers(a.element($0), items[$0]) == 0 }
    case (.tensor(let a, let type), .list(let items)):
        // A 1-D tensor equals the list of its elements: `axes == [2, 3]` (in its element type).
        return a.shape.count == 1 && a.values.count == items.count
            && zip(a.values, items).allSatisfy { value, item in
                guard let number = item.numberValue else { return false }
                return (type.map { roundReal(number, to: $0) } ?? number) == value
            }
    case (.list, .tensor):
        return valuesEqual(rhs, lhs)
    default:
        return false
    }
}

/// -1, 0 or 1 as `lhs` is less than, equal to or greater than `rhs`, compared exactly (an
/// integer beyond 2^53 against a real too); nil when either is NaN or not a number.
public func compareNumbers(_ lhs: EvalValue, _ rhs: EvalValue) -> Int? {
    switch (lhs, rhs) {
    case (.integer(let a), .integer(let b)):
        return a < b ? -1 : a > b ? 1 : 0
    case (.real(let a), .real(let b)):
        if a.isNaN || b.isNaN { return nil }
        return a < b ? -1 : a > b ? 1 : 0
    case (.integer(let a), .real(let b)):
        if b.isNaN { return nil }
        if b >= 0x1p63 { return -1 }
        if b < -0x1p63 { return 1 }
        let floor = Int64(b.rounded(.down))
        if a != floor { return a < floor ? -1 : 1 }
        return b == b.rounded(.down) ? 0 : -1
    case (.real, .integer):
        return compareNumbers(rhs, lhs).map { -$0 }
    default:
        return nil
    }
}
