/// Exact integers in arrays (`NDArray.integers`): the shape operations carry them, and `+ - * /`
/// between two integer arrays compute them in Int64.
extension NDArray {
    /// The same elements (exact integers too) with another shape of the same element count.
    func withShape(_ newShape: [Int]) -> NDArray {
        var array = NDArray(shape: newShape, values: values)
        array.integers = integers
        return array
    }

    /// The elements at `positions`, in that order, as an array of `shape` (exact integers too).
    func gathering(_ positions: [Int], shape newShape: [Int]) -> NDArray {
        if let integers { return NDArray(shape: newShape, integers: positions.map { integers[$0] }) }
        return NDArray(shape: newShape, values: positions.map { values[$0] })
    }

    /// The elements from `start` (inclusive) to `end` (exclusive) in row-major order, as an
    /// array of `shape` (exact integers too).
    func elements(_ range: Range<Int>, shape newShape: [Int]) -> NDArray {
        if let integers { return NDArray(shape: newShape, integers: Array(integers[range])) }
        return NDArray(shape: newShape, values: Array(values[range]))
    }

    /// Element `index` as a number of the rule language: an integer when the array holds exact
    /// integers, a real otherwise.
    func element(_ index: Int) -> EvalValue {
        if let integers { return .integer(integers[index]) }
        return .real(values[index])
    }

    /// The broadcast shape of `lhs` and `rhs`, and the plan that pairs their elements.
    static func broadcastPlan(_ lhs: NDArray, _ rhs: NDArray) throws(EvaluationError) -> (shape: [Int], plan: BroadcastPlan) {
        let shape = try broadcastShape(lhs.shape, rhs.shape)
        return (shape, BroadcastPlan(lhs.shape, rhs.shape, to: shape))
    }

    /// `operation` on the exact integers of two integer arrays, after broadcasting; nil when
    /// either holds reals. An element that overflows Int64 is an error naming `op`.
    static func integerElementwise(
        _ lhs: NDArray, _ rhs: NDArray, _ op: String, _ operation: (Int64, Int64) -> (partialValue: Int64, overflow: Bool)
    ) throws(EvaluationError) -> NDArray? {
        guard let a = lhs.integers, let b = rhs.integers else { return nil }
        let (shape, plan) = try broadcastPlan(lhs, rhs)
        var result = [Int64]()
        result.reserveCapacity(elementCount(shape) ?? 0)
        try plan.forEachPair { (i, j) throws(EvaluationError) in
            let (value, overflow) = operation(a[i], b[j])
            guard !overflow else { throw EvaluationError("integer overflow in \(a[i]) \(op) \(b[j])") }
            result.append(value)
            return true
        }
        return NDArray(shape: shape, integers: result)
    }

    /// The quotients of two integer arrays when every one is exact (no remainder, no division by
    /// zero, no overflow); nil otherwise (the quotient is then computed in float64).
    static func exactQuotient(_ lhs: NDArray, _ rhs: NDArray) throws(EvaluationError) -> NDArray? {
        guard let a = lhs.integers, let b = rhs.integers else { return nil }
        let (shape, plan) = try broadcastPlan(lhs, rhs)
        var result = [Int64]()
        result.reserveCapacity(elementCount(shape) ?? 0)
        var exact = true
        plan.forEachPair { i, j in
            let (x, y) = (a[i], b[j])
            exact = y != 0 && !(x == .min && y == -1) && x % y == 0
            if exact { result.append(x / y) }
            return exact
        }
        return exact ? NDArray(shape: shape, integers: result) : nil
    }

    /// `holds` on each pair of elements after broadcasting, as a 0/1 array: exactly on integers
    /// when both arrays hold them, else on the float64 values.
    static func comparison(_ lhs: NDArray, _ rhs: NDArray, integers: (Int64, Int64) -> Bool, reals: (Double, Double) -> Bool)
        throws(EvaluationError) -> NDArray {
        guard let a = lhs.integers, let b = rhs.integers else {
            return try elementwise(lhs, rhs) { reals($0, $1) ? 1 : 0 }
        }
        let (shape, plan) = try broadcastPlan(lhs, rhs)
        var result = [Double]()
        result.reserveCapacity(elementCount(shape) ?? 0)
        plan.forEachPair { i, j in
            result.append(integers(a[i], b[j]) ? 1 : 0)
            return true
        }
        return NDArray(shape: shape, values: result)
    }
}
