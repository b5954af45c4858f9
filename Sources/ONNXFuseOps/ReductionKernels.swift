#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import ONNXFuseIR

// Kernels of the Reduce* operators. Floating-point reductions accumulate in Double and round
// once at the end; integer ones wrap.

/// Helpers of the reduction operators.
enum ReductionKit {
    /// The operators whose `axes` became an input, and the opset where it did.
    static let axesInputVersion: [String: Int64] = [
        "ReduceSum": 13, "ReduceMean": 18, "ReduceProd": 18, "ReduceMax": 18, "ReduceMin": 18,
        "ReduceL1": 18, "ReduceL2": 18, "ReduceLogSum": 18, "ReduceLogSumExp": 18, "ReduceSumSquare": 18,
    ]

    /// The axes a Reduce* node reduces over, as given: nil when absent or empty; an attribute
    /// before `axesInputVersion`, the optional second input from then on.
    static func givenAxes(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [Int64]? {
        let axes: [Int64]?
        if context.opsetVersion >= axesInputVersion[context.opType, default: 18] {
            axes = try optionalInput(inputs, 1)?.int64Values()
        } else {
            axes = try context.ints("axes")
        }
        guard let axes, !axes.isEmpty else { return nil }
        return axes
    }

    /// Which axes of a rank-`rank` input are reduced: `axes` normalized (no repeats), or
    /// when nil every axis, or none with `noop_with_empty_axes`.
    static func reducedMask(_ axes: [Int64]?, rank: Int, noop: Bool, _ context: OperatorContext) throws(OperatorError) -> [Bool] {
        guard let axes else { return [Bool](repeating: !noop, count: rank) }
        var mask = [Bool](repeating: false, count: rank)
        for axis in axes {
            let index = try normalizeAxis(axis, rank: rank)
            guard !mask[index] else { throw OperatorError("\(context.opType): axis \(axis) is repeated") }
            mask[index] = true
        }
        return mask
    }

    /// How the elements of an input map onto the elements of a reduction's result.
    struct Plan {
        /// The number of result elements.
        var outputCount: Int
        /// The result's shape (keepdims applied).
        var outputShape: [Int]
        /// The number of input elements reduced into each result element.
        var groupSize: Int
        /// The layout.
        var layout: Layout

        /// The layouts, fastest first.
        enum Layout {
            /// Every result element reduces a contiguous run of `groupSize` inputs.
            case contiguous
            /// Input element `i` goes to result element `indices[i]`.
            case indexed([Int])
        }

        /// The plan of reducing `shape` over the axes `mask` marks.
        init(shape: [Int], mask: [Bool], keepdims: Bool, _ context: OperatorContext) throws(OperatorError) {
            var kept: [Int] = []
            var output: [Int] = []
            for (dim, reduced) in zip(shape, mask) {
                kept.append(reduced ? 1 : dim)
                if !reduced || keepdims { output.append(reduced ? 1 : dim) }
            }
            outputShape = output
            outputCount = try ElementwiseKit.checkedCount(kept, context)
            let inputCount = try ElementwiseKit.checkedCount(shape, context)
            groupSize = outputCount == 0 ? 0 : inputCount / outputCount
            // Reduced axes that are all trailing (or of size 1 elsewhere) leave contiguous runs.
            var contiguous = true
            var inSuffix = true
            for (dim, reduced) in zip(shape, mask).reversed() where dim != 1 {
                if !reduced {
                    inSuffix = false
                } else if !inSuffix {
                    contiguous = false
                    break
                }
            }
            layout = contiguous || inputCount == 0 ? .contiguous : .indexed(broadcastIndices(from: kept, to: shape))
        }

        /// `combine` folded over each group of `x`, starting from `initial`.
        @inline(__always)
        func reduce<T, A>(_ x: [T], initial: A, _ combine: (A, T) -> A) -> [A] {
            var acc = [A](repeating: initial, count: outputCount)
            switch layout {
            case .contiguous:
                guard groupSize > 0 else { return acc }
                for o in 0..<outputCount {
                    var a = initial
                    let base = o * groupSize
                    for i in base..<(base + groupSize) { a = combine(a, x[i]) }
                    acc[o] = a
                }
            case .indexed(let indices):
                for i in 0..<x.count { acc[indices[i]] = combine(acc[indices[i]], x[i]) }
            }
            return acc
        }
    }

    /// The state of a numerically stable log-sum-exp.
    struct LogSumExp {
        var maximum = -Double.infinity
        var scaledSum = 0.0
        var positiveInfinity = false
        var nan = false

        /// The state with `x` added.
        @inline(__always) func adding(_ x: Double) -> LogSumExp {
            var next = self
            if x.isNaN {
                next.nan = true
            } else if x == .infinity {
                next.positiveInfinity = true
            } else if x == -.infinity {
                // exp(-inf) adds nothing.
            } else if x > maximum {
                next.scaledSum = scaledSum * exp(maximum - x) + 1
                next.maximum = x
            } else {
                next.scaledSum += exp(x - maximum)
            }
            return next
        }

        /// log(sum(exp(x))).
        var value: Double {
            if nan { return .nan }
            if positiveInfinity { return .infinity }
            if scaledSum == 0 { return -.infinity }
            return maximum + log(scaledSum)
        }
    }

    /// The smallest and largest values of an integer type held as Int64.
    static func integerRange(_ type: DataType) -> (Int64, Int64) {
        switch type {
        case .int8: return (Int64(Int8.min), Int64(Int8.max))
        case .uint8: return (0, Int64(UInt8.max))
        case .int16: return (Int64(Int16.min), Int64(Int16.max))
        case .uint16: return (0, Int64(UInt16.max))
        case .int32: return (Int64(Int32.min), Int64(Int32.max))
        case .uint32: return (0, Int64(UInt32.max))
        default: return (Int64.min, Int64.max)
        }
    }

    /// The Reduce* kernels: axes, keepdims and noop_with_empty_axes as the opset has them.
    static let reduceKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context)
        let keepdims = try context.int("keepdims", default: 1) != 0
        let noop = try context.int("noop_with_empty_axes", default: 0) != 0
        let mask = try reducedMask(try givenAxes(context, inputs), rank: x.rank, noop: noop, context)
        let plan = try Plan(shape: x.shape, mask: mask, keepdims: keepdims, context)
        let op = context.opType
        let n = Double(plan.groupSize)
        let shape = plan.outputShape
        let type = x.dataType
        switch x.elements {
        case .reals(let v):
            let result: [Double]
            switch op {
            case "ReduceSum": result = plan.reduce(v, initial: 0.0) { $0 + $1 }
            case "ReduceMean": result = plan.reduce(v, initial: 0.0) { $0 + $1 }.map { $0 / n }
            case "ReduceProd": result = plan.reduce(v, initial: 1.0) { $0 * $1 }
            case "ReduceMax": result = plan.reduce(v, initial: -Double.infinity) { ElementwiseKit.realMax($0, $1) }
            case "ReduceMin": result = plan.reduce(v, initial: Double.infinity) { ElementwiseKit.realMin($0, $1) }
            case "ReduceL1": result = plan.reduce(v, initial: 0.0) { $0 + Swift.abs($1) }
            case "ReduceL2": result = plan.reduce(v, initial: 0.0) { $0 + $1 * $1 }.map { $0.squareRoot() }
            case "ReduceLogSum": result = plan.reduce(v, initial: 0.0) { $0 + $1 }.map { log($0) }
            case "ReduceSumSquare": result = plan.reduce(v, initial: 0.0) { $0 + $1 * $1 }
            case "ReduceLogSumExp": result = plan.reduce(v, initial: LogSumExp()) { $0.adding($1) }.map(\.value)
            default: throw OperatorError("\(op) is not a reduction")
            }
            return [ElementwiseKit.reals(type, shape, result)]
        case .integers(let v):
            let result: [Int64]
            let (lowest, highest) = integerRange(type)
            switch op {
            case "ReduceSum": result = plan.reduce(v, initial: Int64(0)) { $0 &+ $1 }
            case "ReduceMean":
                guard plan.groupSize > 0 || plan.outputCount == 0 else { throw OperatorError("\(op): mean of no integers") }
                let count = Int64(plan.groupSize)
                result = plan.reduce(v, initial: Int64(0)) { $0 &+ $1 }.map { $0 / count }
            case "ReduceProd": result = plan.reduce(v, initial: Int64(1)) { $0 &* $1 }
            case "ReduceMax": result = plan.reduce(v, initial: lowest) { Swift.max($0, $1) }
            case "ReduceMin": result = plan.reduce(v, initial: highest) { Swift.min($0, $1) }
            case "ReduceL1": result = plan.reduce(v, initial: Int64(0)) { $0 &+ ($1 < 0 ? 0 &- $1 : $1) }
            case "ReduceSumSquare": result = plan.reduce(v, initial: Int64(0)) { $0 &+ $1 &* $1 }
            case "ReduceL2":
                let sums = plan.reduce(v, initial: Int64(0)) { $0 &+ $1 &* $1 }
                var out: [Int64] = []
                out.reserveCapacity(sums.count)
                for sum in sums {
                    guard let root = ElementwiseKit.truncatedInteger(Double(sum).squareRoot(), to: type) else {
                        throw OperatorError("\(op): the square root of \(sum) has no \(type) value")
                    }
                    out.append(root)
                }
                result = out
            default: throw OperatorError("\(op) does not take \(type)")
            }
            return [ElementwiseKit.integers(type, shape, result)]
        case .unsigned(let v):
            let result: [UInt64]
            switch op {
            case "ReduceSum", "ReduceL1": result = plan.reduce(v, initial: UInt64(0)) { $0 &+ $1 }
            case "ReduceMean":
                guard plan.groupSize > 0 || plan.outputCount == 0 else { throw OperatorError("\(op): mean of no integers") }
                let count = UInt64(plan.groupSize)
                result = plan.reduce(v, initial: UInt64(0)) { $0 &+ $1 }.map { $0 / count }
            case "ReduceProd": result = plan.reduce(v, initial: UInt64(1)) { $0 &* $1 }
            case "ReduceMax": result = plan.reduce(v, initial: UInt64.min) { Swift.max($0, $1) }
            case "ReduceMin": result = plan.reduce(v, initial: UInt64.max) { Swift.min($0, $1) }
            case "ReduceSumSquare": result = plan.reduce(v, initial: UInt64(0)) { $0 &+ $1 &* $1 }
            case "ReduceL2":
                let sums = plan.reduce(v, initial: UInt64(0)) { $0 &+ $1 &* $1 }
                var out: [UInt64] = []
                out.reserveCapacity(sums.count)
                for sum in sums {
                    // The root of a uint64 is below 2^32: correct the Double estimate exactly.
                    var root = UInt64(Double(sum).squareRoot().rounded(.down))
                    while root > 0, root.multipliedReportingOverflow(by: root).overflow || root * root > sum { root -= 1 }
                    while !(root + 1).multipliedReportingOverflow(by: root + 1).overflow, (root + 1) * (root + 1) <= sum { root += 1 }
                    out.append(root)
                }
                result = out
            default: throw OperatorError("\(op) does not take \(type)")
            }
            return [TensorValue(type, shape: shape, .unsigned(result))]
        case .booleans(let v):
            let result: [Bool]
            switch op {
            case "ReduceMax": result = plan.reduce(v, initial: false) { $0 || $1 }
            case "ReduceMin": result = plan.reduce(v, initial: true) { $0 && $1 }
            default: throw OperatorError("\(op) does not take bool")
            }
            return [TensorValue(type, shape: shape, .booleans(result))]
        case .strings:
            throw OperatorError("\(op) does not take strings")
        }
    }
}
