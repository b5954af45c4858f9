#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import ONNXFuseIR

// Kernels of the operators that work along one axis: ArgMax, ArgMin, Softmax, LogSoftmax,
// Hardmax and CumSum.

extension ReductionKit {
    /// A tensor seen as `outer` x `length` x `inner`, walking one axis of length `length`.
    struct AxisLayout {
        var outer: Int
        var length: Int
        var inner: Int

        /// A layout from its sizes.
        init(outer: Int, length: Int, inner: Int) {
            self.outer = outer
            self.length = length
            self.inner = inner
        }

        /// The layout of `shape` around `axis`.
        init(_ shape: [Int], axis: Int) {
            outer = shape[..<axis].reduce(1, *)
            length = shape[axis]
            inner = shape[(axis + 1)...].reduce(1, *)
        }

        /// The layout of `shape` coerced to 2-D at `axis` (`[prod(..<axis), prod(axis...)]`).
        init(coercing shape: [Int], at axis: Int) {
            outer = shape[..<axis].reduce(1, *)
            length = shape[axis...].reduce(1, *)
            inner = 1
        }

        /// For each (outer, inner) pair, in output order, `body(base)` where the pair's
        /// elements are at `base + k * inner` for k in 0..<length.
        @inline(__always) func forEachLine(_ body: (Int) -> Void) {
            for o in 0..<outer {
                for i in 0..<inner { body(o * length * inner + i) }
            }
        }
    }

    // MARK: ArgMax, ArgMin

    /// The index along a line of the element `better` prefers over every other (ties keep
    /// the current one).
    @inline(__always)
    static func arg<T>(_ x: [T], _ layout: AxisLayout, _ better: (T, T) -> Bool) -> [Int64] {
        var out: [Int64] = []
        out.reserveCapacity(layout.outer * layout.inner)
        let step = layout.inner
        layout.forEachLine { base in
            var best = x[base]
            var bestIndex = 0
            for k in 1..<Swift.max(layout.length, 1) {
                let v = x[base + k * step]
                if better(v, best) {
                    best = v
                    bestIndex = k
                }
            }
            out.append(Int64(bestIndex))
        }
        return out
    }

    /// ArgMax and ArgMin: int64 indices along `axis`; NaN is the extreme (as numpy);
    /// select_last_index picks the last of equal extremes.
    static let argKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context)
        let isMax = context.opType == "ArgMax"
        let axis = try normalizeAxis(try context.int("axis", default: 0), rank: x.rank)
        let keepdims = try context.int("keepdims", default: 1) != 0
        let last = try context.int("select_last_index", default: 0) != 0
        let layout = AxisLayout(x.shape, axis: axis)
        var shape = x.shape
        if keepdims { shape[axis] = 1 } else { shape.remove(at: axis) }
        if layout.outer * layout.inner > 0 && layout.length == 0 {
            throw OperatorError("\(context.opType): axis \(axis) has no elements")
        }
        let result: [Int64]
        switch x.elements {
        case .reals(let v):
            switch (isMax, last) {
            case (true, false): result = arg(v, layout) { c, b in !b.isNaN && (c.isNaN || c > b) }
            case (true, true): result = arg(v, layout) { c, b in c.isNaN || (!b.isNaN && c >= b) }
            case (false, false): result = arg(v, layout) { c, b in !b.isNaN && (c.isNaN || c < b) }
            case (false, true): result = arg(v, layout) { c, b in c.isNaN || (!b.isNaN && c <= b) }
            }
        case .integers(let v):
            switch (isMax, last) {
            case (true, false): result = arg(v, layout) { $0 > $1 }
            case (true, true): result = arg(v, layout) { $0 >= $1 }
            case (false, false): result = arg(v, layout) { $0 < $1 }
            case (false, true): result = arg(v, layout) { $0 <= $1 }
            }
        case .unsigned(let v):
            switch (isMax, last) {
            case (true, false): result = arg(v, layout) { $0 > $1 }
            case (true, true): result = arg(v, layout) { $0 >= $1 }
            case (false, false): result = arg(v, layout) { $0 < $1 }
            case (false, true): result = arg(v, layout) { $0 <= $1 }
            }
        default:
            throw OperatorError("\(context.opType) does not take \(x.dataType)")
        }
        return [TensorValue(.int64, shape: shape, .integers(result))]
    }

    // MARK: Softmax, LogSoftmax, Hardmax

    /// The axis layout of the softmax family: before opset 13 the input is coerced to 2-D at
    /// `axis` (default 1), from 13 on the operator works along `axis` (default -1).
    static func softmaxLayout(_ x: TensorValue, _ context: OperatorContext) throws(OperatorError) -> AxisLayout {
        if context.opsetVersion < 13 {
            let given = try context.int("axis", default: 1)
            // The coercion accepts axis == rank (a [N, 1] matrix).
            let axis = given == Int64(x.rank) ? x.rank : try normalizeAxis(given, rank: x.rank)
            return axis == x.rank ? AxisLayout(outer: x.count, length: 1, inner: 1) : AxisLayout(coercing: x.shape, at: axis)
        }
        return AxisLayout(x.shape, axis: try normalizeAxis(try context.int("axis", default: -1), rank: x.rank))
    }

    /// Softmax, LogSoftmax and Hardmax, in Double, rounded once.
    static let softmaxKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context)
        guard case .reals(let v) = x.elements else { throw OperatorError("\(context.opType) does not take \(x.dataType)") }
        let layout = try softmaxLayout(x, context)
        var out = [Double](repeating: 0, count: v.count)
        let step = layout.inner, length = layout.length
        guard length > 0 else { return [x] }
        switch context.opType {
        case "Hardmax":
            let indices = arg(v, layout) { c, b in !b.isNaN && (c.isNaN || c > b) }
            var line = 0
            layout.forEachLine { base in
                out[base + Int(indices[line]) * step] = 1
                line += 1
            }
        case let op:
            let logarithmic = op == "LogSoftmax"
            layout.forEachLine { base in
                var maximum = -Double.infinity
                for k in 0..<length { maximum = ElementwiseKit.realMax(maximum, v[base + k * step]) }
                var sum = 0.0
                for k in 0..<length {
                    let e = exp(v[base + k * step] - maximum)
                    if !logarithmic { out[base + k * step] = e }
                    sum += e
                }
                if logarithmic {
                    let shift = maximum + log(sum)
                    for k in 0..<length { out[base + k * step] = v[base + k * step] - shift }
                } else {
                    for k in 0..<length { out[base + k * step] /= sum }
                }
            }
        }
        return [ElementwiseKit.reals(x.dataType, x.shape, out)]
    }

    // MARK: CumSum

    /// Cumulative sums along a line: inclusive or exclusive, forward or reversed.
    @inline(__always)
    static func cumulative<T, A>(_ x: [T], _ layout: AxisLayout, exclusive: Bool, reverse: Bool,
                                 zero: A, _ add: (A, T) -> A) -> [A] {
        var out = [A](repeating: zero, count: x.count)
        let step = layout.inner, length = layout.length
        guard length > 0 else { return out }
        layout.forEachLine { base in
            var acc = zero
            for j in 0..<length {
                let k = reverse ? length - 1 - j : j
                let index = base + k * step
                if exclusive {
                    out[index] = acc
                    acc = add(acc, x[index])
                } else {
                    acc = add(acc, x[index])
                    out[index] = acc
                }
            }
        }
        return out
    }

    /// CumSum: the axis is a scalar input; reals accumulate in Double and each sum is rounded
    /// once; integers wrap.
    static let cumSumKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context)
        let axisTensor = try requiredInput(inputs, 1, context)
        let axis = try normalizeAxis(try axisTensor.scalarInt64(), rank: x.rank)
        let exclusive = try context.int("exclusive", default: 0) != 0
        let reverse = try context.int("reverse", default: 0) != 0
        let layout = AxisLayout(x.shape, axis: axis)
        switch x.elements {
        case .reals(let v):
            return [ElementwiseKit.reals(x.dataType, x.shape,
                                         cumulative(v, layout, exclusive: exclusive, reverse: reverse, zero: 0.0) { $0 + $1 })]
        case .integers(let v):
            return [ElementwiseKit.integers(x.dataType, x.shape,
                                            cumulative(v, layout, exclusive: exclusive, reverse: reverse, zero: Int64(0)) { $0 &+ $1 })]
        case .unsigned(let v):
            return [TensorValue(x.dataType, shape: x.shape, .unsigned(
                cumulative(v, layout, exclusive: exclusive, reverse: reverse, zero: UInt64(0)) { $0 &+ $1 }))]
        default:
            throw OperatorError("CumSum does not take \(x.dataType)")
        }
    }
}
