#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import ONNXFuseIR
import ONNXFuseOps

/// A dense float64 array: the value of `compute` expressions. Row-major.
///
/// Every computation runs in float64 and the result is rounded once, by `tensor(as:)`, to the
/// element type it is stored as, except that integers stay exact: an array read from an integer
/// tensor (or made of integer literals) also holds its elements as `Int64`, and `+ - *`, an exact
/// `/`, negation, comparisons and the shape operations keep them so (float64 holds integers only
/// up to 2^53; `INT64_MAX`, a Slice's "to the end", is beyond). `shape.reduce(1, *) ==
/// values.count` always holds; a shape of `[]` is a scalar with one value.
public struct NDArray: Equatable, Sendable {
    /// The dimensions, outermost first; every one is zero or more.
    public var shape: [Int]
    /// The elements in row-major order (beyond 2^53, the nearest float64 of `integers`).
    public var values: [Double]
    /// The exact elements when the array holds integers (same order as `values`); nil for an
    /// array of reals.
    public var integers: [Int64]?

    /// An array of the given shape; `values.count` must be the product of `shape`.
    public init(shape: [Int], values: [Double]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(NDArray.elementCount(shape) == values.count, "shape \(shape) does not hold \(values.count) values")
        self.shape = shape
        self.values = values
    }

    /// Equal shapes and elements: exact integers compared exactly when both arrays hold them.
    public static func == (lhs: NDArray, rhs: NDArray) -> Bool {
        guard lhs.shape == rhs.shape else { return false }
        if let a = lhs.integers, let b = rhs.integers { return a == b }
        return lhs.values == rhs.values
    }

    /// An array of exact integers; `integers.count` must be the product of `shape`.
    public init(shape: [Int], integers: [Int64]) {
        self.init(shape: shape, values: integers.map { Double($0) })
        self.integers = integers
    }

    /// A one-dimensional array.
    public init(_ values: [Double]) {
        self.init(shape: [values.count], values: values)
    }

    /// A rank-0 array holding `value`.
    public static func scalar(_ value: Double) -> NDArray {
        NDArray(shape: [], values: [value])
    }

    /// The number of dimensions.
    public var rank: Int { shape.count }

    /// The number of elements.
    public var count: Int { values.count }

    /// Whether every element is finite (no infinity, no NaN).
    public var isFinite: Bool { values.withUnsafeBufferPointer(NDArray.allFinite) }

    /// Whether every one of `values` is finite.
    static func allFinite(_ values: UnsafeBufferPointer<Double>) -> Bool {
        // A flag per element rather than an early exit: the loop vectorizes.
        var nonFinite: UInt64 = 0
        for value in values {
            let exponent = value.bitPattern & 0x7ff0_0000_0000_0000
            nonFinite |= exponent == 0x7ff0_0000_0000_0000 ? 1 : 0
        }
        return nonFinite == 0
    }

    /// An array of zeros with this shape.
    public func zerosLike() -> NDArray {
        integers == nil ? NDArray(shape: shape, values: repeated(0, count: count)) : NDArray(shape: shape, integers: repeated(0, count: count))
    }

    /// An array of ones with this shape.
    public func onesLike() -> NDArray {
        integers == nil ? NDArray(shape: shape, values: repeated(1, count: count)) : NDArray(shape: shape, integers: repeated(1, count: count))
    }

    /// The most elements a value of the rule language may have (`EvaluationLimits.current`):
    /// every operation that makes a larger one is checked first and fails with an error.
    public static var maximumElements: Int { EvaluationLimits.current.maximumElements }

    /// The highest rank a value may have.
    public static let maximumRank = 64

    /// The most multiply-adds one `matmul` may do (`EvaluationLimits.current`).
    public static var maximumMatmulWork: Int { EvaluationLimits.current.maximumMatmulWork }

    /// Checks that a rank stays within the limit; `what` names the operation.
    static func checkRank(_ rank: Int, _ what: @autoclosure () -> String) throws(EvaluationError) {
        guard rank <= maximumRank else {
            throw EvaluationError.limit("\(what()): rank \(rank) is more than the limit of \(maximumRank)")
        }
    }

    /// Checks that an array of `shape` stays within the limits; `what` names the operation.
    static func checkSize(_ shape: [Int], _ what: @autoclosure () -> String) throws(EvaluationError) {
        try checkRank(shape.count, what())
        guard let count = elementCount(shape), count <= maximumElements else {
            throw EvaluationError.limit("\(what()): a result of shape \(shape) would have more than \(maximumElements) elements, the limit")
        }
    }

    /// The product of `shape`, or nil when a dimension is negative or the product overflows.
    static func elementCount(_ shape: [Int]) -> Int? {
        var product = 1
        for dim in shape {
            guard dim >= 0 else { return nil }
            let (next, overflow) = product.multipliedReportingOverflow(by: dim)
            if overflow { return nil }
            product = next
        }
        return product
    }

    /// Row-major strides (in elements) of `shape`.
    static func strides(_ shape: [Int]) -> [Int] {
        var strides = repeated(1, count: shape.count)
        var stride = 1
        for axis in shape.indices.reversed() {
            strides[axis] = stride
            stride *= shape[axis]
        }
        return strides
    }
}

extension NDArray: CustomStringConvertible {
    /// `NDArray([2, 2]: [1.0, 2.0, 3.0, 4.0])`; only the first 16 values of larger arrays.
    public var description: String {
        guard count > 16 else { return "NDArray(\(shape): \(values))" }
        return "NDArray(\(shape): \(values.prefix(16).map(\.description).joined(separator: ", ")), ...)"
    }
}

// MARK: - Broadcasting and element-wise arithmetic

extension NDArray {
    /// The shape numpy broadcasting gives `lhs` and `rhs`: dimensions are aligned from the
    /// right; each pair must be equal or contain a 1 (which stretches to the other size).
    public static func broadcastShape(_ lhs: [Int], _ rhs: [Int]) throws(EvaluationError) -> [Int] {
        let rank = max(lhs.count, rhs.count)
        var result = repeated(0, count: rank)
        for axis in 0..<rank {
            let l = axis < rank - lhs.count ? 1 : lhs[axis - (rank - lhs.count)]
            let r = axis < rank - rhs.count ? 1 : rhs[axis - (rank - rhs.count)]
            if l == r || r == 1 {
                result[axis] = l
            } else if l == 1 {
                result[axis] = r
            } else {
                throw EvaluationError("cannot broadcast shapes \(lhs) and \(rhs)")
            }
        }
        try checkSize(result, "broadcasting \(lhs) and \(rhs)")
        return result
    }

    /// For each element of an array of shape `target` (row-major), the index of the element of
    /// an array of shape `source` that broadcasting reads there. `source` must broadcast to `target`.
    static func broadcastIndices(from source: [Int], to target: [Int]) -> [Int] {
        let count = elementCount(target) ?? 0
        if source == target { return Array(0..<count) }
        let offset = target.count - source.count
        let sourceStrides = strides(source)
        // Stride in the source for each target axis: 0 where the source is missing or stretched.
        var steps = repeated(0, count: target.count)
        for axis in source.indices where source[axis] != 1 || target[axis + offset] == 1 {
            steps[axis + offset] = sourceStrides[axis]
        }
        return stridedPositions(shape: target, steps: steps)
    }

    /// For each element of an array of shape `shape` (row-major), the source position reached
    /// by moving `steps[axis]` per step along each axis: a strided view of another array.
    static func stridedPositions(shape: [Int], steps: [Int]) -> [Int] {
        ONNXFuseOps.stridedPositions(shape: shape, steps: steps)
    }

    /// `operation` applied element by element after broadcasting both arrays.
    public static func elementwise(
        _ lhs: NDArray, _ rhs: NDArray, _ operation: (Double, Double) -> Double
    ) throws(EvaluationError) -> NDArray {
        try broadcasting(lhs, rhs, operation)
    }

    /// The loop behind the element-wise operations: the broadcast result is walked as runs along
    /// its innermost (merged) axis, each operand either advancing by one or standing still, so
    /// the common cases (same shapes, a scalar, a per-channel vector against a weight) are plain
    /// loops over contiguous buffers with no index arrays.
    @inline(__always)
    static func broadcasting(
        _ lhs: NDArray, _ rhs: NDArray, _ operation: (Double, Double) -> Double
    ) throws(EvaluationError) -> NDArray {
        let sameShapes = lhs.shape == rhs.shape
        let shape = sameShapes ? lhs.shape : try broadcastShape(lhs.shape, rhs.shape)
        let count = elementCount(shape) ?? 0
        // One run, with no plan, when the operands have the result's shape or one of them is a
        // single element that does not add axes (`b - mean`, `var + eps`): the common cases.
        let (lhsWhole, rhsWhole) = (sameShapes || lhs.shape == shape, sameShapes || rhs.shape == shape)
        let singleRun: (leftStep: Int, rightStep: Int)? =
            lhsWhole && rhsWhole ? (1, 1) : lhsWhole && rhs.count == 1 ? (1, 0) : rhsWhole && lhs.count == 1 ? (0, 1) : nil
        // Else one run per element of an operand that spans the result's leading axes only, when
        // the other has the result's shape (`w * reshape(k, [C, 1, 1, 1])`): the runs the plan
        // would make, without making it.
        let perElement = singleRun == nil ? (lhsWhole ? leadingRuns(rhs.shape, of: shape) : rhsWhole ? leadingRuns(lhs.shape, of: shape) : nil) : nil
        let plan = singleRun == nil && perElement == nil ? BroadcastPlan(lhs.shape, rhs.shape, to: shape) : nil
        let values = [Double](unsafeUninitializedCapacity: count) { output, initialized in
            lhs.values.withUnsafeBufferPointer { left in
                rhs.values.withUnsafeBufferPointer { right in
                    if let (stepL, stepR) = singleRun {
                        if count > 0 { combineRun(count, left.baseAddress!, stepL, right.baseAddress!, stepR, into: output.baseAddress!, operation) }
                        return
                    }
                    if let length = perElement {
                        // The left operand has the result's shape, or the right one has.
                        for run in 0..<(length > 0 ? count / length : 0) {
                            let start = run * length
                            if lhsWhole {
                                combineRun(length, left.baseAddress! + start, 1, right.baseAddress! + run, 0, into: output.baseAddress! + start, operation)
                            } else {
                                combineRun(length, left.baseAddress! + run, 0, right.baseAddress! + start, 1, into: output.baseAddress! + start, operation)
                            }
                        }
                        return
                    }
                    plan!.forEachRun { out, l, r, length, stepL, stepR in
                        combineRun(length, left.baseAddress! + l, stepL, right.baseAddress! + r, stepR, into: output.baseAddress! + out, operation)
                    }
                }
            }
            initialized = count
        }
        return NDArray(shape: shape, values: values)
    }

    /// The run length when an operand of shape `operand` broadcast to `target` is, in row-major
    /// order, each of its elements repeated that many times: its axes (aligned from the right)
    /// equal `target`'s up to some axis and are 1 from there on. Nil otherwise.
    static func leadingRuns(_ operand: [Int], of target: [Int]) -> Int? {
        let offset = target.count - operand.count
        var length = 1
        var inLeading = true
        for axis in target.indices {
            let dim = axis < offset ? 1 : operand[axis - offset]
            if inLeading && dim == target[axis] { continue }
            inLeading = false
            guard dim == 1 else { return nil }
            length *= target[axis]
        }
        return length
    }

    /// `length` results of `operation` on a run of each operand, each advancing by its step (1)
    /// or standing still (0): the inner loop of every float64 element-wise operation, whole
    /// (`broadcasting`) or a chunk at a time (`StreamedTensor`). `output` may be an operand.
    @inline(__always)
    static func combineRun(_ length: Int, _ left: UnsafePointer<Double>, _ leftStep: Int, _ right: UnsafePointer<Double>, _ rightStep: Int,
                           into output: UnsafeMutablePointer<Double>, _ operation: (Double, Double) -> Double) {
        switch (leftStep, rightStep) {
        case (1, 1): for j in 0..<length { output[j] = operation(left[j], right[j]) }
        case (1, 0): let y = right[0]; for j in 0..<length { output[j] = operation(left[j], y) }
        case (0, 1): let x = left[0]; for j in 0..<length { output[j] = operation(x, right[j]) }
        default: let (x, y) = (left[0], right[0]); for j in 0..<length { output[j] = operation(x, y) }
        }
    }

    /// `operation` of each element of `array` (which holds reals) and `number`, the number on
    /// the left when `numberOnLeft`: what `broadcasting` gives against a rank-0 array of
    /// `number`, its checks and errors included, without making that array.
    @inline(__always)
    static func combining(_ array: NDArray, _ number: Double, numberOnLeft: Bool,
                          _ operation: (Double, Double) -> Double) throws(EvaluationError) -> NDArray {
        if !array.shape.isEmpty {
            try checkSize(array.shape, "broadcasting \(numberOnLeft ? [] : array.shape) and \(numberOnLeft ? array.shape : [])")
        }
        let count = array.count
        let values = [Double](unsafeUninitializedCapacity: count) { output, initialized in
            array.values.withUnsafeBufferPointer { elements in
                withUnsafePointer(to: number) { scalar in
                    guard count > 0 else { return }
                    if numberOnLeft {
                        combineRun(count, scalar, 0, elements.baseAddress!, 1, into: output.baseAddress!, operation)
                    } else {
                        combineRun(count, elements.baseAddress!, 1, scalar, 0, into: output.baseAddress!, operation)
                    }
                }
            }
            initialized = count
        }
        return NDArray(shape: array.shape, values: values)
    }

    /// Element-wise sum, with broadcasting (exact, overflow an error, for two integer arrays).
    public static func + (lhs: NDArray, rhs: NDArray) throws(EvaluationError) -> NDArray {
        if let exact = try integerElementwise(lhs, rhs, "+", { $0.addingReportingOverflow($1) }) { return exact }
        return try broadcasting(lhs, rhs, +)
    }

    /// Element-wise difference, with broadcasting (exact for two integer arrays).
    public static func - (lhs: NDArray, rhs: NDArray) throws(EvaluationError) -> NDArray {
        if let exact = try integerElementwise(lhs, rhs, "-", { $0.subtractingReportingOverflow($1) }) { return exact }
        return try broadcasting(lhs, rhs, -)
    }

    /// Element-wise product, with broadcasting (exact for two integer arrays).
    public static func * (lhs: NDArray, rhs: NDArray) throws(EvaluationError) -> NDArray {
        if let exact = try integerElementwise(lhs, rhs, "*", { $0.multipliedReportingOverflow(by: $1) }) { return exact }
        return try broadcasting(lhs, rhs, *)
    }

    /// Element-wise IEEE quotient (x/0 is ±inf or NaN), with broadcasting; two integer arrays
    /// whose every quotient is exact give exact integers.
    public static func / (lhs: NDArray, rhs: NDArray) throws(EvaluationError) -> NDArray {
        if let exact = try exactQuotient(lhs, rhs) { return exact }
        return try broadcasting(lhs, rhs, /)
    }

    /// Element-wise negation.
    public static prefix func - (operand: NDArray) -> NDArray { operand.neg() }

    /// `transform` applied to every element.
    public func map(_ transform: (Double) -> Double) -> NDArray {
        NDArray(shape: shape, values: values.map(transform))
    }

    /// Element-wise square root (NaN for negative elements).
    public func sqrt() -> NDArray { map { $0.squareRoot() } }
    /// Element-wise absolute value (exact for integers, but for Int64.min).
    public func abs() -> NDArray {
        if let integers, !integers.contains(.min) { return NDArray(shape: shape, integers: integers.map { Swift.abs($0) }) }
        return map { $0.magnitude }
    }
    /// Element-wise negation (exact for integers, but for Int64.min).
    public func neg() -> NDArray {
        if let integers, !integers.contains(.min) { return NDArray(shape: shape, integers: integers.map { -$0 }) }
        return map { -$0 }
    }
    /// Element-wise e^x.
    public func exp() -> NDArray { map(naturalExponential) }
    /// Element-wise natural logarithm (-inf at 0, NaN below).
    public func log() -> NDArray { map(naturalLogarithm) }
    /// Element-wise 1/x.
    public func reciprocal() -> NDArray { map { 1 / $0 } }
}

/// `exp` from the C library (a method named `exp` hides it inside `NDArray`).
private func naturalExponential(_ x: Double) -> Double { exp(x) }
/// `log` from the C library.
private func naturalLogarithm(_ x: Double) -> Double { log(x) }

// MARK: - Shape operations

extension NDArray {
    /// `axis` made non-negative for an array of rank `rank`, or an error naming `what`.
    static func normalize(axis: Int, rank: Int, _ what: String) throws(EvaluationError) -> Int {
        let normalized = axis < 0 ? axis + rank : axis
        guard normalized >= 0, normalized < rank else {
            throw EvaluationError("\(what) axis \(axis) is out of range for rank \(rank)")
        }
        return normalized
    }

    /// `axes` made non-negative, checked for range and duplicates.
    static func normalize(axes: [Int], rank: Int, _ what: String) throws(EvaluationError) -> [Int] {
        var seen = Set<Int>()
        var result = [Int]()
        for axis in axes {
            let normalized = try normalize(axis: axis, rank: rank, what)
            guard seen.insert(normalized).inserted else {
                throw EvaluationError("\(what) axes \(axes) name axis \(normalized) twice")
            }
            result.append(normalized)
        }
        return result
    }

    /// The same elements with shape `newShape`. One dimension may be -1: it is inferred from
    /// the element count. 0 is a dimension of size zero (not ONNX Reshape's "copy").
    public func reshape(_ newShape: [Int]) throws(EvaluationError) -> NDArray {
        withShape(try NDArray.reshapedShape(shape, count: count, to: newShape))
    }

    /// The shape `reshape(newShape)` gives an array of `shape` holding `count` elements (a -1
    /// inferred), or its error.
    static func reshapedShape(_ currentShape: [Int], count: Int, to newShape: [Int]) throws(EvaluationError) -> [Int] {
        try NDArray.checkRank(newShape.count, "reshape")
        var inferred: Int?
        var known = 1
        for (axis, dim) in newShape.enumerated() {
            if dim == -1 {
                guard inferred == nil else {
                    throw EvaluationError("reshape to \(newShape): only one dimension may be -1")
                }
                inferred = axis
            } else if dim < 0 {
                throw EvaluationError("reshape to \(newShape): dimension \(dim) is negative")
            } else {
                let (product, overflow) = known.multipliedReportingOverflow(by: dim)
                guard !overflow else { throw EvaluationError("reshape to \(newShape): too many elements") }
                known = product
            }
        }
        var shape = newShape
        if let inferred {
            guard known > 0, count % known == 0 else {
                throw EvaluationError("cannot reshape \(currentShape) (\(count) elements) to \(newShape)")
            }
            shape[inferred] = count / known
        } else if known != count {
            throw EvaluationError("cannot reshape \(currentShape) (\(count) elements) to \(newShape) (\(known) elements)")
        }
        return shape
    }

    /// The same elements with size-1 dimensions inserted at `axes`, which index the result
    /// (ONNX Unsqueeze; negative axes count from the end of the result).
    public func unsqueeze(axes: [Int]) throws(EvaluationError) -> NDArray {
        let outputRank = rank + axes.count
        try NDArray.checkRank(outputRank, "unsqueeze")
        let inserted = Set(try NDArray.normalize(axes: axes, rank: outputRank, "unsqueeze"))
        var newShape = [Int]()
        var next = shape.makeIterator()
        for axis in 0..<outputRank {
            newShape.append(inserted.contains(axis) ? 1 : next.next()!)
        }
        return withShape(newShape)
    }

    /// The same elements without the size-1 dimensions `axes` (nil: every size-1 dimension).
    public func squeeze(axes: [Int]? = nil) throws(EvaluationError) -> NDArray {
        guard let axes else { return withShape(shape.filter { $0 != 1 }) }
        let removed = Set(try NDArray.normalize(axes: axes, rank: rank, "squeeze"))
        for axis in removed.sorted() where shape[axis] != 1 {
            throw EvaluationError("cannot squeeze axis \(axis) of shape \(shape): its size is \(shape[axis]), not 1")
        }
        let newShape = shape.indices.filter { !removed.contains($0) }.map { shape[$0] }
        return withShape(newShape)
    }

    /// The array with its axes permuted: axis `i` of the result is axis `perm[i]` of this one
    /// (nil: reversed, as numpy and ONNX Transpose do).
    public func transpose(_ perm: [Int]? = nil) throws(EvaluationError) -> NDArray {
        let perm = perm ?? Array((0..<rank).reversed())
        guard perm.count == rank else {
            throw EvaluationError("transpose permutation \(perm) does not match rank \(rank) of shape \(shape)")
        }
        let axes = try NDArray.normalize(axes: perm, rank: rank, "transpose")
        if axes == Array(0..<rank) { return self }
        let newShape = axes.map { shape[$0] }
        let sourceStrides = NDArray.strides(shape)
        let steps = axes.map { sourceStrides[$0] }
        return gathering(NDArray.stridedPositions(shape: newShape, steps: steps), shape: newShape)
    }

    /// How `matmul` of operands of shapes `left` and `right` goes: the batch dimensions of each
    /// and broadcast, and the matrices' m × k by k × n; an error when they do not fit.
    static func matmulDimensions(_ left: [Int], _ right: [Int]) throws(EvaluationError)
        -> (batchA: [Int], batchB: [Int], batch: [Int], m: Int, k: Int, n: Int) {
        guard !left.isEmpty, !right.isEmpty else {
            throw EvaluationError("matmul needs operands of rank 1 or more, got shapes \(left) and \(right)")
        }
        let a = left.count == 1 ? [1, left[0]] : left
        let b = right.count == 1 ? [right[0], 1] : right
        let (m, k) = (a[a.count - 2], a[a.count - 1])
        let (k2, n) = (b[b.count - 2], b[b.count - 1])
        guard k == k2 else {
            throw EvaluationError("matmul of shapes \(left) and \(right): inner dimensions \(k) and \(k2) differ")
        }
        let batchA = Array(a.dropLast(2)), batchB = Array(b.dropLast(2))
        do throws(EvaluationError) {
            return (batchA, batchB, try NDArray.broadcastShape(batchA, batchB), m, k, n)
        } catch {
            if error.exceedsLimit { throw error }
            throw EvaluationError("matmul of shapes \(left) and \(right): batch dimensions \(batchA) and \(batchB) do not broadcast")
        }
    }

    /// The multiply-adds of a `matmul` (`Int.max` when that overflows).
    static func matmulWork(batch: [Int], m: Int, k: Int, n: Int) -> Int {
        NDArray.elementCount(batch + [m, n, k]) ?? Int.max
    }

    /// The multiply-adds `matmul` of operands of shapes `left` and `right` would do; nil when
    /// they do not fit (`matmul` then says why).
    public static func matmulWork(_ left: [Int], _ right: [Int]) -> Int? {
        guard let (_, _, batch, m, k, n) = try? matmulDimensions(left, right) else { return nil }
        return matmulWork(batch: batch, m: m, k: k, n: n)
    }

    /// The matrix product with numpy `matmul` semantics: a 1-D left operand is a row vector and
    /// a 1-D right operand a column vector (the added dimension is removed from the result);
    /// dimensions before the last two are batch dimensions and broadcast.
    public func matmul(_ other: NDArray) throws(EvaluationError) -> NDArray {
        let (batchA, batchB, batch, m, k, n) = try NDArray.matmulDimensions(shape, other.shape)
        try NDArray.checkSize(batch + [m, n], "matmul of shapes \(shape) and \(other.shape)")
        let work = NDArray.matmulWork(batch: batch, m: m, k: k, n: n)
        guard work <= NDArray.maximumMatmulWork else {
            throw EvaluationError.limit("matmul of shapes \(shape) and \(other.shape): \(work) multiply-adds is more than the limit of \(NDArray.maximumMatmulWork)")
        }
        let batchIndicesA = NDArray.broadcastIndices(from: batchA, to: batch)
        let batchIndicesB = NDArray.broadcastIndices(from: batchB, to: batch)
        // Row by row, adding one row of `other` scaled by one element at a time: the innermost
        // loop runs over contiguous memory (it vectorizes), and each result element still sums
        // its products in order of the inner index, as a dot product would.
        var result = [Double](repeating: 0, count: batchIndicesA.count * m * n)
        values.withUnsafeBufferPointer { a in
            other.values.withUnsafeBufferPointer { b in
                result.withUnsafeMutableBufferPointer { r in
                    for (batchIndex, (ia, ib)) in zip(batchIndicesA, batchIndicesB).enumerated() {
                        let baseA = ia * m * k, baseB = ib * k * n, baseR = batchIndex * m * n
                        for row in 0..<m {
                            let rowR = baseR + row * n
                            for inner in 0..<k {
                                let scale = a[baseA + row * k + inner]
                                let rowB = baseB + inner * n
                                for column in 0..<n { r[rowR + column] += scale * b[rowB + column] }
                            }
                        }
                    }
                }
            }
        }
        var newShape = batch
        if rank > 1 { newShape.append(m) }
        if other.rank > 1 { newShape.append(n) }
        if integers != nil, other.integers != nil {
            // Integers: exact when no partial sum can pass 2^53 (float64 holds every integer to there).
            let largestA = values.lazy.map(\.magnitude).max() ?? 0, largestB = other.values.lazy.map(\.magnitude).max() ?? 0
            guard largestA * largestB * Double(k) <= 0x1p53 else {
                throw EvaluationError("matmul of integers as large as \(formatNumber(largestA)) and \(formatNumber(largestB)) is not exact in float64")
            }
            return NDArray(shape: newShape, integers: result.map { Int64($0) })
        }
        return NDArray(shape: newShape, values: result)
    }
}

/// How two arrays broadcast to a result shape, as runs: the result's axes are merged where both
/// operands are contiguous across them, the innermost merged axis is a run, and along it each
/// operand's step is 1 (it advances) or 0 (it is broadcast).
struct BroadcastPlan {
    /// The merged result shape, outermost first; never empty.
    private var shape: [Int] = []
    /// Per merged axis, the step of each operand (elements of its own storage).
    private var leftSteps: [Int] = []
    private var rightSteps: [Int] = []

    /// The plan for operands of shapes `lhs` and `rhs` that broadcast to `target`.
    init(_ lhs: [Int], _ rhs: [Int], to target: [Int]) {
        let left = BroadcastPlan.steps(lhs, target)
        let right = BroadcastPlan.steps(rhs, target)
        for axis in target.indices where target[axis] != 1 {
            // Merge into the previous axis when both operands continue it contiguously
            // (the previous step is this axis's step times its size, 0 staying 0).
            if let last = shape.indices.last,
               leftSteps[last] == left[axis] * target[axis], rightSteps[last] == right[axis] * target[axis] {
                shape[last] *= target[axis]
                leftSteps[last] = left[axis]
                rightSteps[last] = right[axis]
                continue
            }
            shape.append(target[axis])
            leftSteps.append(left[axis])
            rightSteps.append(right[axis])
        }
        if shape.isEmpty {
            shape = [1]
            leftSteps = [0]
            rightSteps = [0]
        }
    }

    /// Row-major steps of an operand of shape `source` read at each axis of `target`: 0 where the
    /// operand is missing or stretched.
    private static func steps(_ source: [Int], _ target: [Int]) -> [Int] {
        var steps = repeated(0, count: target.count)
        let offset = target.count - source.count
        var stride = 1
        for axis in source.indices.reversed() {
            if source[axis] != 1 { steps[axis + offset] = stride }
            stride *= source[axis]
        }
        return steps
    }

    /// Calls `body(output, left, right, length, leftStep, rightStep)` for each run, in row-major
    /// order: `length` results starting at `output`, reading the operands from `left` and `right`.
    @inline(__always)
    func forEachRun<Failure: Error>(_ body: (Int, Int, Int, Int, Int, Int) throws(Failure) -> Void) throws(Failure) {
        let inner = shape.count - 1
        let length = shape[inner]
        let count = shape.reduce(1, *)
        guard count > 0 else { return }
        if inner == 0 {
            try body(0, 0, 0, length, leftSteps[0], rightSteps[0])
            return
        }
        var index = repeated(0, count: inner)
        var (left, right) = (0, 0)
        var output = 0
        while output < count {
            try body(output, left, right, length, leftSteps[inner], rightSteps[inner])
            output += length
            // The odometer over the outer axes.
            var axis = inner - 1
            while axis >= 0 {
                index[axis] += 1
                left += leftSteps[axis]
                right += rightSteps[axis]
                if index[axis] < shape[axis] { break }
                left -= leftSteps[axis] * shape[axis]
                right -= rightSteps[axis] * shape[axis]
                index[axis] = 0
                axis -= 1
            }
        }
    }

    /// Calls `body(left, right)` with the operands' positions of each result element, in
    /// row-major order, until it returns false (for the element-wise loops that are not plain
    /// float64 arithmetic: exact integers, comparisons).
    func forEachPair<Failure: Error>(_ body: (Int, Int) throws(Failure) -> Bool) throws(Failure) {
        var going = true
        try forEachRun { (_, left, right, length, leftStep, rightStep) throws(Failure) in
            var j = 0
            while going && j < length {
                going = try body(left + j * leftStep, right + j * rightStep)
                j += 1
            }
        }
    }
}
