import ONNXFuseIR

/// The multidirectional (numpy) broadcast of two shapes, or an error naming both.
public func broadcastShapes(_ a: [Int], _ b: [Int]) throws(OperatorError) -> [Int] {
    let rank = max(a.count, b.count)
    var result = [Int](repeating: 1, count: rank)
    for axis in 0..<rank {
        let x = axis < rank - a.count ? 1 : a[axis - (rank - a.count)]
        let y = axis < rank - b.count ? 1 : b[axis - (rank - b.count)]
        guard x == y || x == 1 || y == 1 else { throw OperatorError("shapes \(a) and \(b) do not broadcast") }
        result[axis] = x == 1 ? y : x
    }
    return result
}

/// For each element of an `outputShape` tensor, the flat index of the element of an
/// `inputShape` tensor that broadcasts to it (`inputShape` must broadcast to `outputShape`).
public func broadcastIndices(from inputShape: [Int], to outputShape: [Int]) -> [Int] {
    if inputShape == outputShape { return Array(0..<(shapeProduct(outputShape) ?? 0)) }
    let offset = outputShape.count - inputShape.count
    let inputStrides = rowMajorStrides(inputShape)
    // The input's stride along each output axis: 0 where the input is missing or stretched.
    var steps = [Int](repeating: 0, count: outputShape.count)
    for axis in inputShape.indices where inputShape[axis] != 1 || outputShape[axis + offset] == 1 {
        steps[axis + offset] = inputStrides[axis]
    }
    return stridedPositions(shape: outputShape, steps: steps)
}

/// For each element of an array of shape `shape` (row-major), the position reached by moving
/// `steps[axis]` per step along each axis: a strided view of another array.
public func stridedPositions(shape: [Int], steps: [Int]) -> [Int] {
    let count = shapeProduct(shape) ?? 0
    var positions = [Int]()
    positions.reserveCapacity(count)
    guard count > 0 else { return positions }
    var counter = [Int](repeating: 0, count: shape.count)
    var position = 0
    for _ in 0..<count {
        positions.append(position)
        // Advance the row-major counter like an odometer, updating the position incrementally.
        var axis = shape.count - 1
        while axis >= 0 {
            counter[axis] += 1
            position += steps[axis]
            if counter[axis] < shape[axis] { break }
            position -= steps[axis] * counter[axis]
            counter[axis] = 0
            axis -= 1
        }
    }
    return positions
}

/// Row-major strides of `shape`.
public func rowMajorStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var running = 1
    for axis in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[axis] = running
        running *= shape[axis]
    }
    return strides
}

/// `axis` counted from the end when negative, checked against `rank`.
public func normalizeAxis(_ axis: Int64, rank: Int) throws(OperatorError) -> Int {
    let resolved = axis < 0 ? axis + Int64(rank) : axis
    guard resolved >= 0 && resolved < Int64(rank) else { throw OperatorError("axis \(axis) is out of range for rank \(rank)") }
    return Int(resolved)
}

/// The multidirectional broadcast of symbolic shapes: a dimension of 1 takes the other; equal
/// dimensions stay; a static size other than 1 wins over a symbol (the symbol must equal it
/// or be 1); two different symbols give a fresh one. Nil when a rank is unknown; an error when
/// two static sizes conflict.
public func broadcastDimensions(_ shapes: [[Dimension]?], fresh: () -> Dimension) throws(OperatorError) -> [Dimension]? {
    var known: [[Dimension]] = []
    for shape in shapes {
        guard let shape else { return nil }
        known.append(shape)
    }
    let rank = known.map(\.count).max() ?? 0
    var result: [Dimension] = []
    for axis in 0..<rank {
        var dim: Dimension = .value(1)
        var undecided = false
        for shape in known {
            let offset = rank - shape.count
            let other: Dimension = axis < offset ? .value(1) : shape[axis - offset]
            switch (dim, other) {
            case (_, .value(1)): break
            case (.value(1), _): dim = other
            case (.value(let a), .value(let b)):
                guard a == b else { throw OperatorError("dimensions \(a) and \(b) do not broadcast") }
            case (.value, _): break
            case (_, .value): dim = other
            case (.param(let a), .param(let b)) where a == b: break
            default: undecided = true
            }
        }
        if undecided, case .value(let v) = dim, v != 1 { undecided = false }
        result.append(undecided ? fresh() : dim)
    }
    return result
}

/// A product of dimensions: a number times symbols (with repeats), to solve for Reshape's
/// `-1` and compare element counts when some dimensions are symbolic.
public struct DimensionProduct: Equatable, Sendable {
    /// The static factor.
    public var coefficient: Int64
    /// The symbolic factors, sorted.
    public var symbols: [String]

    /// The product of `dims`; nil when one is unknown (`.unknown`) or the number overflows.
    public init?(_ dims: [Dimension]) {
        coefficient = 1
        symbols = []
        for dim in dims {
            switch dim {
            case .value(let v):
                let (product, overflow) = coefficient.multipliedReportingOverflow(by: v)
                guard !overflow else { return nil }
                coefficient = product
            case .param(let p): symbols.append(p)
            case .unknown: return nil
            }
        }
        symbols.sort()
    }

    /// `self / other` as one dimension, when the division is exact and leaves a number or a
    /// single symbol; nil otherwise.
    public func dividing(by other: DimensionProduct) -> Dimension? {
        guard other.coefficient != 0, coefficient % other.coefficient == 0 else { return nil }
        var remaining = symbols
        for symbol in other.symbols {
            guard let index = remaining.firstIndex(of: symbol) else { return nil }
            remaining.remove(at: index)
        }
        let factor = coefficient / other.coefficient
        if remaining.isEmpty { return .value(factor) }
        if remaining.count == 1 && factor == 1 { return .param(remaining[0]) }
        return nil
    }
}
