import ONNXFuseIR

// Helpers shared by the shape and data-movement operators (Operators+Shape.swift and the
// Shape*.swift files): reading kernel inputs, computing flat index lists, moving elements of
// any kind, and the dimension arithmetic of inference.

/// Helpers, kernels and inference functions of the shape and data-movement operators, in one
/// namespace so that their names cannot collide with the other operator families.
enum ShapeKit {
    // MARK: - Kernel inputs and limits

    /// The most elements a shape-family kernel produces or indexes.
    static let elementLimit = 1 << 28

    /// The most elements a propagated `shapeValue` holds.
    static let shapeValueLimit = 1024

    /// Input `index` of a kernel; an error naming `name` when it is absent.
    static func requiredInput(_ inputs: [TensorValue?], _ index: Int, _ name: String) throws(OperatorError) -> TensorValue {
        guard index < inputs.count, let value = inputs[index] else { throw OperatorError("input '\(name)' is missing") }
        return value
    }

    /// The element count of `shape`, checked: no negative dimension, no overflow, at most
    /// `elementLimit` elements.
    @discardableResult
    static func checkedElementCount(_ shape: [Int]) throws(OperatorError) -> Int {
        for dim in shape where dim < 0 { throw OperatorError("negative dimension in shape \(shape)") }
        guard let count = shapeProduct(shape), count <= elementLimit else {
            throw OperatorError("shape \(shape) has too many elements")
        }
        return count
    }

    /// `values` as dimension sizes (each in 0...limit), for shapes read from tensors or attributes.
    static func dimensionSizes(_ values: [Int64], what: String) throws(OperatorError) -> [Int] {
        var result: [Int] = []
        result.reserveCapacity(values.count)
        for value in values {
            guard value >= 0, value <= Int64(elementLimit) else { throw OperatorError("\(what) has invalid dimension \(value)") }
            result.append(Int(value))
        }
        return result
    }

    /// The integers of a rank-0 or rank-1 kernel input (`int64Values`), checked to be at most rank 1.
    static func vectorInts(_ value: TensorValue, _ name: String) throws(OperatorError) -> [Int64] {
        guard value.rank <= 1 else { throw OperatorError("input '\(name)' must be a scalar or 1-D, got shape \(value.shape)") }
        return try value.int64Values()
    }

    /// Normalizes `axes` against `rank` and checks that none repeats.
    static func normalizeAxes(_ axes: [Int64], rank: Int) throws(OperatorError) -> [Int] {
        var result: [Int] = []
        for axis in axes {
            let resolved = try normalizeAxis(axis, rank: rank)
            guard !result.contains(resolved) else { throw OperatorError("axis \(axis) is repeated") }
            result.append(resolved)
        }
        return result
    }

    // MARK: - Flat index lists

    /// The flat indices of an affine view: for each position of `shape` (row-major), `offset` plus
    /// the position times `strides`. Transposes, slices, broadcasts and tiles are such views.
    static func affineIndices(shape: [Int], offset: Int, strides: [Int]) -> [Int] {
        let count = shapeProduct(shape) ?? 0
        var result: [Int] = []
        result.reserveCapacity(count)
        if count == 0 { return result }
        let rank = shape.count
        if rank == 0 { return [offset] }
        let innerCount = shape[rank - 1]
        let innerStride = strides[rank - 1]
        var position = [Int](repeating: 0, count: rank)
        var base = offset
        while true {
            var index = base
            for _ in 0..<innerCount {
                result.append(index)
                index += innerStride
            }
            var axis = rank - 2
            while axis >= 0 {
                position[axis] += 1
                base += strides[axis]
                if position[axis] < shape[axis] { break }
                base -= strides[axis] * shape[axis]
                position[axis] = 0
                axis -= 1
            }
            if axis < 0 { break }
        }
        return result
    }

    /// Picks `values[index]` for each index; a negative index takes `fill`.
    private static func pick<T>(_ values: [T], _ indices: [Int], fill: T) -> [T] {
        var result: [T] = []
        result.reserveCapacity(indices.count)
        for index in indices { result.append(index < 0 ? fill : values[index]) }
        return result
    }

    /// The elements of `elements` at `indices`; a negative index takes the single element of
    /// `fill` (of the same kind).
    static func gather(_ elements: TensorValue.Elements, _ indices: [Int], fill: TensorValue.Elements) -> TensorValue.Elements {
        switch (elements, fill) {
        case (.integers(let v), .integers(let f)): return .integers(pick(v, indices, fill: f[0]))
        case (.unsigned(let v), .unsigned(let f)): return .unsigned(pick(v, indices, fill: f[0]))
        case (.reals(let v), .reals(let f)): return .reals(pick(v, indices, fill: f[0]))
        case (.booleans(let v), .booleans(let f)): return .booleans(pick(v, indices, fill: f[0]))
        case (.strings(let v), .strings(let f)): return .strings(pick(v, indices, fill: f[0]))
        default: preconditionFailure("fill of another kind")
        }
    }

    /// One zero (false, empty string) of `kind`.
    static func zeroElement(_ kind: TensorValue.ElementKind) -> TensorValue.Elements {
        switch kind {
        case .integer: return .integers([0])
        case .unsigned: return .unsigned([0])
        case .real: return .reals([0])
        case .boolean: return .booleans([false])
        case .string: return .strings([[]])
        }
    }

    /// One one (true) of `kind`; nil for strings.
    static func oneElement(_ kind: TensorValue.ElementKind) -> TensorValue.Elements? {
        switch kind {
        case .integer: return .integers([1])
        case .unsigned: return .unsigned([1])
        case .real: return .reals([1])
        case .boolean: return .booleans([true])
        case .string: return nil
        }
    }

    /// `count` copies of element `index` of `elements`.
    static func repeated(_ elements: TensorValue.Elements, _ index: Int, count: Int) -> TensorValue.Elements {
        switch elements {
        case .integers(let v): return .integers(Array(repeating: v[index], count: count))
        case .unsigned(let v): return .unsigned(Array(repeating: v[index], count: count))
        case .reals(let v): return .reals(Array(repeating: v[index], count: count))
        case .booleans(let v): return .booleans(Array(repeating: v[index], count: count))
        case .strings(let v): return .strings(Array(repeating: v[index], count: count))
        }
    }

    /// `parts` joined in order (all of one kind, checked by the caller through the data type).
    static func joinElements(_ parts: [TensorValue.Elements], kind: TensorValue.ElementKind) throws(OperatorError) -> TensorValue.Elements {
        let total = parts.reduce(0) { $0 + $1.count }
        func join<T>(_ extract: (TensorValue.Elements) -> [T]?) throws(OperatorError) -> [T] {
            var result: [T] = []
            result.reserveCapacity(total)
            for part in parts {
                guard let values = extract(part) else { throw OperatorError("inputs hold elements of different kinds") }
                result.append(contentsOf: values)
            }
            return result
        }
        switch kind {
        case .integer: return .integers(try join { if case .integers(let v) = $0 { v } else { nil } })
        case .unsigned: return .unsigned(try join { if case .unsigned(let v) = $0 { v } else { nil } })
        case .real: return .reals(try join { if case .reals(let v) = $0 { v } else { nil } })
        case .boolean: return .booleans(try join { if case .booleans(let v) = $0 { v } else { nil } })
        case .string: return .strings(try join { if case .strings(let v) = $0 { v } else { nil } })
        }
    }

    // MARK: - Scatter

    /// How scattered updates combine with the values already there.
    enum ScatterReduction: String {
        case none, add, mul, max, min

        /// The reduction named by the `reduction` attribute (default none).
        init(context: OperatorContext) throws(OperatorError) {
            let name = try context.string("reduction") ?? "none"
            guard let reduction = ScatterReduction(rawValue: name) else { throw OperatorError("unknown reduction '\(name)'") }
            self = reduction
        }
    }

    private static func scatterArray<T>(_ base: [T], _ positions: [Int], _ updates: [T], _ combine: ((T, T) -> T)?) -> [T] {
        var result = base
        if let combine {
            for (index, position) in positions.enumerated() { result[position] = combine(result[position], updates[index]) }
        } else {
            for (index, position) in positions.enumerated() { result[position] = updates[index] }
        }
        return result
    }

    /// NaN-propagating maximum and minimum (numpy's `maximum` / `minimum`).
    private static func realMax(_ a: Double, _ b: Double) -> Double { a.isNaN || b.isNaN ? .nan : Swift.max(a, b) }
    private static func realMin(_ a: Double, _ b: Double) -> Double { a.isNaN || b.isNaN ? .nan : Swift.min(a, b) }

    /// `data` with update `i` written (or combined by `reduction`) at flat position `positions[i]`,
    /// in order. Positions must be in range and `updates` must have `positions.count` elements.
    static func scatter(_ data: TensorValue, positions: [Int], updates: TensorValue, reduction: ScatterReduction) throws(OperatorError) -> TensorValue {
        guard updates.dataType == data.dataType else { throw OperatorError("updates are \(updates.dataType), data is \(data.dataType)") }
        let type = data.dataType
        let elements: TensorValue.Elements
        switch (data.elements, updates.elements) {
        case (.integers(let d), .integers(let u)):
            let combine: ((Int64, Int64) -> Int64)?
            switch reduction {
            case .none: combine = nil
            case .add: combine = { wrapInteger($0 &+ $1, to: type) }
            case .mul: combine = { wrapInteger($0 &* $1, to: type) }
            case .max: combine = { Swift.max($0, $1) }
            case .min: combine = { Swift.min($0, $1) }
            }
            elements = .integers(scatterArray(d, positions, u, combine))
        case (.unsigned(let d), .unsigned(let u)):
            let combine: ((UInt64, UInt64) -> UInt64)?
            switch reduction {
            case .none: combine = nil
            case .add: combine = { $0 &+ $1 }
            case .mul: combine = { $0 &* $1 }
            case .max: combine = { Swift.max($0, $1) }
            case .min: combine = { Swift.min($0, $1) }
            }
            elements = .unsigned(scatterArray(d, positions, u, combine))
        case (.reals(let d), .reals(let u)):
            let combine: ((Double, Double) -> Double)?
            switch reduction {
            case .none: combine = nil
            case .add: combine = { roundReal($0 + $1, to: type) }
            case .mul: combine = { roundReal($0 * $1, to: type) }
            case .max: combine = realMax
            case .min: combine = realMin
            }
            elements = .reals(scatterArray(d, positions, u, combine))
        case (.booleans(let d), .booleans(let u)):
            let combine: ((Bool, Bool) -> Bool)?
            switch reduction {
            case .none: combine = nil
            case .add, .max: combine = { $0 || $1 }
            case .mul, .min: combine = { $0 && $1 }
            }
            elements = .booleans(scatterArray(d, positions, u, combine))
        case (.strings(let d), .strings(let u)):
            guard reduction == .none else { throw OperatorError("reduction \(reduction.rawValue) does not apply to strings") }
            elements = .strings(scatterArray(d, positions, u, nil))
        default:
            throw OperatorError("updates and data hold elements of different kinds")
        }
        return TensorValue(type, shape: data.shape, elements)
    }

    // MARK: - Ordering

    /// A three-way comparison of elements `i` and `j` of `elements` (NaN above every number and
    /// equal to NaN; false below true; strings bytewise).
    static func elementComparator(_ elements: TensorValue.Elements) -> (Int, Int) -> Int {
        switch elements {
        case .integers(let v): return { v[$0] < v[$1] ? -1 : v[$0] > v[$1] ? 1 : 0 }
        case .unsigned(let v): return { v[$0] < v[$1] ? -1 : v[$0] > v[$1] ? 1 : 0 }
        case .reals(let v):
            return { i, j in
                let a = v[i], b = v[j]
                if a.isNaN || b.isNaN { return a.isNaN == b.isNaN ? 0 : a.isNaN ? 1 : -1 }
                return a < b ? -1 : a > b ? 1 : 0
            }
        case .booleans(let v): return { v[$0] == v[$1] ? 0 : v[$1] ? -1 : 1 }
        case .strings(let v): return { v[$0].lexicographicallyPrecedes(v[$1]) ? -1 : v[$0] == v[$1] ? 0 : 1 }
        }
    }

    // MARK: - Inference helpers

    /// A maker of fresh dimensions for `context` (usable while `context` is being mutated).
    static func freshDimensions(_ context: InferenceContext) -> () -> Dimension {
        let symbols = context.symbols
        return { .param(symbols.fresh()) }
    }

    /// The integers of a value, when they are all known: a constant's elements or a fully static
    /// shape value.
    static func knownInts(_ facts: ValueFacts?) -> [Int64]? {
        guard let facts else { return nil }
        if let constant = facts.constant {
            guard constant.kind == .integer || constant.kind == .unsigned else { return nil }
            return try? constant.int64Values()
        }
        return facts.staticShapeValue
    }

    /// The reals of a constant floating-point or integer value.
    static func knownReals(_ facts: ValueFacts?) -> [Double]? {
        guard let constant = facts?.constant, constant.kind == .real || constant.kind == .integer else { return nil }
        return try? constant.doubleValues()
    }

    /// The elements of a rank-0/1 integer value as dimensions: its shape value, or a constant's
    /// integers.
    static func knownDimensions(_ facts: ValueFacts?) -> [Dimension]? {
        guard let facts else { return nil }
        if let shapeValue = facts.shapeValue { return shapeValue }
        if let constant = facts.constant, constant.rank <= 1, constant.kind == .integer || constant.kind == .unsigned,
           let values = try? constant.int64Values() {
            return values.map { .value($0) }
        }
        return nil
    }

    /// The single element of a rank-0 or one-element value as a dimension, when known.
    static func knownScalarDimension(_ facts: ValueFacts?) -> Dimension? {
        guard let dims = knownDimensions(facts), dims.count == 1 else { return nil }
        return dims[0]
    }

    /// The product of `dims` as one dimension: a number, the one symbol of a product of a symbol
    /// and ones, 0 when a factor is 0, else a fresh dimension.
    static func productDimension(_ dims: [Dimension], fresh: () -> Dimension) -> Dimension {
        if dims.contains(.value(0)) { return .value(0) }
        guard let product = DimensionProduct(dims) else { return fresh() }
        if product.symbols.isEmpty { return .value(product.coefficient) }
        if product.symbols.count == 1 && product.coefficient == 1 { return .param(product.symbols[0]) }
        return fresh()
    }

    /// `a + b` as a dimension: numbers add, adding 0 keeps the other, anything else is fresh.
    static func sumDimension(_ a: Dimension, _ b: Dimension, fresh: () -> Dimension) -> Dimension {
        switch (a, b) {
        case (.value(let x), .value(let y)):
            let (sum, overflow) = x.addingReportingOverflow(y)
            return overflow ? fresh() : .value(sum)
        case (.value(0), _): return b == .unknown ? fresh() : b
        case (_, .value(0)): return a == .unknown ? fresh() : a
        default: return fresh()
        }
    }

    /// `dim * factor` for a static factor: numbers multiply, a factor of 1 keeps the dimension.
    static func scaledDimension(_ dim: Dimension, by factor: Int64, fresh: () -> Dimension) -> Dimension {
        if factor == 1 { return dim == .unknown ? fresh() : dim }
        if factor == 0 { return .value(0) }
        if case .value(let v) = dim {
            let (product, overflow) = v.multipliedReportingOverflow(by: factor)
            return overflow ? fresh() : .value(product)
        }
        return fresh()
    }

    /// `rank` fresh dimensions; nil (rank unknown) for a negative or implausibly large rank.
    static func freshShape(rank: Int, fresh: () -> Dimension) -> [Dimension]? {
        guard rank >= 0, rank <= shapeValueLimit else { return nil }
        return (0..<rank).map { _ in fresh() }
    }

    /// `dim` with `.unknown` replaced by a fresh dimension.
    static func concreteDimension(_ dim: Dimension, fresh: () -> Dimension) -> Dimension {
        dim == .unknown ? fresh() : dim
    }

    /// Whether `type` is an integer type whose values can be dimensions (a shape value).
    static func holdsShapeValues(_ type: DataType?) -> Bool {
        guard let type else { return false }
        return TensorValue.kind(of: type) == .integer
    }

    /// A shape value for an output of `type` and `shape`, when it is rank 0 or 1, its element count
    /// matches and is small; nil otherwise.
    static func checkedShapeValue(_ values: [Dimension]?, type: DataType?, shape: [Dimension]?) -> [Dimension]? {
        guard let values, holdsShapeValues(type), let shape, shape.count <= 1, values.count <= shapeValueLimit else { return nil }
        if shape.count == 0 { return values.count == 1 ? values : nil }
        guard case .value(let n) = shape[0], n == Int64(values.count) else { return nil }
        return values
    }

    /// The type, shape and shape value of an output.
    static func outputFacts(type: DataType?, shape: [Dimension]?, shapeValue: [Dimension]? = nil) -> ValueFacts {
        ValueFacts(elementType: type, shape: shape, shapeValue: checkedShapeValue(shapeValue, type: type, shape: shape))
    }

    /// Two dimensions known to be equal at run time (for inputs the operator requires to match):
    /// the static one if any, else the first.
    static func mergedDimension(_ a: Dimension, _ b: Dimension) throws(OperatorError) -> Dimension {
        switch (a, b) {
        case (.value(let x), .value(let y)):
            guard x == y else { throw OperatorError("dimensions \(x) and \(y) differ") }
            return a
        case (.value, _): return a
        case (_, .value): return b
        case (.unknown, _): return b
        default: return a
        }
    }
}
