#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import ONNXFuseIR

// Kernels of the unary operators: math functions, activations, IsNaN/IsInf, Clip, Shrink,
// Not and BitwiseNot.

extension ElementwiseKit {
    /// The forms of a unary operator by element kind (nil: not taken). Each is built from the
    /// node's attributes when the kernel runs.
    struct Unary: Sendable {
        /// On exact reals; the result is rounded once to the element type.
        var real: (@Sendable (OperatorContext) throws(OperatorError) -> (Double) -> Double)?
        /// On wrapping Int64s; the result is wrapped to the element type.
        var integer: (@Sendable (OperatorContext) throws(OperatorError) -> (Int64) -> Int64)?
        /// On uint64s.
        var unsigned: (@Sendable (OperatorContext) throws(OperatorError) -> (UInt64) -> UInt64)?
    }

    /// A kernel applying `operation` to each element.
    static func unaryKernel(_ operation: Unary) -> Kernel {
        return { context, inputs throws(OperatorError) in
            let x = try requiredInput(inputs, 0, context)
            switch x.elements {
            case .reals(let v):
                guard let make = operation.real else { break }
                let f = try make(context)
                return [reals(x.dataType, x.shape, v.map(f))]
            case .integers(let v):
                guard let make = operation.integer else { break }
                let f = try make(context)
                return [integers(x.dataType, x.shape, v.map(f))]
            case .unsigned(let v):
                guard let make = operation.unsigned else { break }
                let f = try make(context)
                return [TensorValue(x.dataType, shape: x.shape, .unsigned(v.map(f)))]
            default: break
            }
            throw OperatorError("\(context.opType) does not take \(x.dataType)")
        }
    }

    /// A real-only unary operator without attributes.
    static func realFunction(_ f: @escaping @Sendable (Double) -> Double) -> Unary {
        Unary(real: { _ throws(OperatorError) in f })
    }

    /// The logistic function, without overflow.
    static func sigmoid(_ x: Double) -> Double {
        x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x))
    }

    /// log(1 + exp(x)), without overflow.
    static func softplus(_ x: Double) -> Double {
        x > 0 ? x + log1p(exp(-x)) : log1p(exp(x))
    }

    /// The unary operators with a kernel built by `unaryKernel`, by operator type.
    static let unaryOperators: [String: Unary] = [
        "Neg": Unary(real: { _ throws(OperatorError) in { -$0 } }, integer: { _ throws(OperatorError) in { 0 &- $0 } }),
        "Abs": Unary(real: { _ throws(OperatorError) in { Swift.abs($0) } },
                     integer: { _ throws(OperatorError) in { $0 < 0 ? 0 &- $0 : $0 } },
                     unsigned: { _ throws(OperatorError) in { $0 } }),
        "Sign": Unary(real: { _ throws(OperatorError) in { $0 > 0 ? 1 : $0 < 0 ? -1 : $0.isNaN ? .nan : 0 } },
                      integer: { _ throws(OperatorError) in { $0 > 0 ? 1 : $0 < 0 ? -1 : 0 } },
                      unsigned: { _ throws(OperatorError) in { $0 > 0 ? 1 : 0 } }),
        "Relu": Unary(real: { _ throws(OperatorError) in { $0 < 0 ? 0 : $0 } },
                      integer: { _ throws(OperatorError) in { Swift.max($0, 0) } },
                      unsigned: { _ throws(OperatorError) in { $0 } }),
        "Sqrt": realFunction { sqrt($0) },
        "Exp": realFunction { exp($0) },
        "Log": realFunction { log($0) },
        "Reciprocal": realFunction { 1 / $0 },
        "Floor": realFunction { $0.rounded(.down) },
        "Ceil": realFunction { $0.rounded(.up) },
        "Round": realFunction { $0.rounded(.toNearestOrEven) },
        "Erf": realFunction { erf($0) },
        "Sin": realFunction { sin($0) },
        "Cos": realFunction { cos($0) },
        "Tan": realFunction { tan($0) },
        "Asin": realFunction { asin($0) },
        "Acos": realFunction { acos($0) },
        "Atan": realFunction { atan($0) },
        "Sinh": realFunction { sinh($0) },
        "Cosh": realFunction { cosh($0) },
        "Asinh": realFunction { asinh($0) },
        "Acosh": realFunction { acosh($0) },
        "Atanh": realFunction { atanh($0) },
        "Tanh": realFunction { tanh($0) },
        "Sigmoid": realFunction { sigmoid($0) },
        "Softplus": realFunction { softplus($0) },
        "Softsign": realFunction { $0 / (1 + Swift.abs($0)) },
        "Mish": realFunction { $0 * tanh(softplus($0)) },
        "HardSwish": realFunction { $0 * Swift.max(0, Swift.min(1, $0 / 6 + 0.5)) },
        "LeakyRelu": Unary(real: { context throws(OperatorError) in
            let alpha = try context.float("alpha", default: Double(Float(0.01)))
            return { $0 < 0 ? alpha * $0 : $0 }
        }),
        "Elu": Unary(real: { context throws(OperatorError) in
            let alpha = try context.float("alpha", default: 1)
            return { $0 < 0 ? alpha * expm1($0) : $0 }
        }),
        "Selu": Unary(real: { context throws(OperatorError) in
            let alpha = try context.float("alpha", default: Double(Float(1.67326319217681884765625)))
            let gamma = try context.float("gamma", default: Double(Float(1.05070102214813232421875)))
            return { $0 <= 0 ? gamma * alpha * expm1($0) : gamma * $0 }
        }),
        "Celu": Unary(real: { context throws(OperatorError) in
            let alpha = try context.float("alpha", default: 1)
            return { Swift.max(0, $0) + Swift.min(0, alpha * expm1($0 / alpha)) }
        }),
        "ThresholdedRelu": Unary(real: { context throws(OperatorError) in
            let alpha = try context.float("alpha", default: 1)
            return { $0 > alpha ? $0 : 0 }
        }),
        "HardSigmoid": Unary(real: { context throws(OperatorError) in
            let alpha = try context.float("alpha", default: Double(Float(0.2)))
            let beta = try context.float("beta", default: 0.5)
            return { Swift.max(0, Swift.min(1, alpha * $0 + beta)) }
        }),
        "Gelu": Unary(real: { context throws(OperatorError) in
            switch try context.string("approximate") ?? "none" {
            case "none": return { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }
            case "tanh":
                let c = (2 / Double.pi).squareRoot()
                return { 0.5 * $0 * (1 + tanh(c * ($0 + 0.044715 * $0 * $0 * $0))) }
            case let other: throw OperatorError("Gelu: approximate must be none or tanh, not \(other)")
            }
        }),
        "BitwiseNot": Unary(integer: { _ throws(OperatorError) in { ~$0 } }, unsigned: { _ throws(OperatorError) in { ~$0 } }),
    ]

    /// Not: logical negation of a bool tensor.
    static let notKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context)
        guard case .booleans(let v) = x.elements else { throw OperatorError("Not takes bool, not \(x.dataType)") }
        return [TensorValue(.bool, shape: x.shape, .booleans(v.map { !$0 }))]
    }

    /// IsNaN: whether each element is NaN (false for integers).
    static let isNaNKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context)
        guard case .reals(let v) = x.elements else { throw OperatorError("IsNaN does not take \(x.dataType)") }
        return [TensorValue(.bool, shape: x.shape, .booleans(v.map { $0.isNaN }))]
    }

    /// IsInf: whether each element is an infinity of a sign asked for.
    static let isInfKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context)
        guard case .reals(let v) = x.elements else { throw OperatorError("IsInf does not take \(x.dataType)") }
        let positive = try context.int("detect_positive", default: 1) != 0
        let negative = try context.int("detect_negative", default: 1) != 0
        return [TensorValue(.bool, shape: x.shape, .booleans(v.map {
            $0.isInfinite && ($0 > 0 ? positive : negative)
        }))]
    }

    // MARK: Clip

    /// Clip: min/max attributes (lowest and highest float by default) before opset 11,
    /// optional scalar inputs of the input's type after. A NaN stays NaN; when min > max,
    /// every element becomes max (as numpy's clip).
    static let clipKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context)
        if context.opsetVersion < 11 {
            guard case .reals(let v) = x.elements else { throw OperatorError("Clip does not take \(x.dataType) before opset 11") }
            let lo = roundReal(try context.float("min", default: -Double(Float.greatestFiniteMagnitude)), to: x.dataType)
            let hi = roundReal(try context.float("max", default: Double(Float.greatestFiniteMagnitude)), to: x.dataType)
            return [TensorValue(x.dataType, shape: x.shape, .reals(v.map { clamp($0, lo, hi) }))]
        }
        var bounds: [TensorValue?] = [nil, nil]
        for index in 1...2 {
            guard let bound = optionalInput(inputs, index) else { continue }
            try checkSameType(x, bound, context)
            guard bound.count == 1 else { throw OperatorError("Clip: bounds must have one element, got shape \(bound.shape)") }
            bounds[index - 1] = bound
        }
        switch x.elements {
        case .reals(let v):
            var lo = -Double.infinity, hi = Double.infinity
            if case .reals(let b)? = bounds[0]?.elements { lo = b[0] }
            if case .reals(let b)? = bounds[1]?.elements { hi = b[0] }
            return [TensorValue(x.dataType, shape: x.shape, .reals(v.map { clamp($0, lo, hi) }))]
        case .integers(let v):
            var lo = Int64.min, hi = Int64.max
            if case .integers(let b)? = bounds[0]?.elements { lo = b[0] }
            if case .integers(let b)? = bounds[1]?.elements { hi = b[0] }
            return [TensorValue(x.dataType, shape: x.shape, .integers(v.map { clamp($0, lo, hi) }))]
        case .unsigned(let v):
            var lo = UInt64.min, hi = UInt64.max
            if case .unsigned(let b)? = bounds[0]?.elements { lo = b[0] }
            if case .unsigned(let b)? = bounds[1]?.elements { hi = b[0] }
            return [TensorValue(x.dataType, shape: x.shape, .unsigned(v.map { clamp($0, lo, hi) }))]
        default:
            throw OperatorError("Clip does not take \(x.dataType)")
        }
    }

    /// `min(max(x, lo), hi)`, keeping a NaN `x`.
    @inline(__always) static func clamp<T: Comparable>(_ x: T, _ lo: T, _ hi: T) -> T {
        let raised = x < lo ? lo : x
        return raised > hi ? hi : raised
    }

    // MARK: Shrink

    /// Whether the integer `x` is below the real `d`, exactly.
    static func integer(_ x: Int64, isBelow d: Double) -> Bool {
        if d.isNaN { return false }
        let c = d.rounded(.up)
        if c > 9.2e18 { return true }
        if c < -9.2e18 { return false }
        return x < Int64(c)
    }

    /// Whether the integer `x` is above the real `d`, exactly.
    static func integer(_ x: Int64, isAbove d: Double) -> Bool {
        if d.isNaN { return false }
        let f = d.rounded(.down)
        if f > 9.2e18 { return false }
        if f < -9.2e18 { return true }
        return x > Int64(f)
    }

    /// Shrink: `x + bias` where x < -lambd, `x - bias` where x > lambd, else 0. On integers
    /// the comparisons are exact; an integral bias is applied exactly, another one in Double
    /// with the result truncated.
    static let shrinkKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context)
        let bias = try context.float("bias", default: 0)
        let lambd = try context.float("lambd", default: 0.5)
        switch x.elements {
        case .reals(let v):
            return [reals(x.dataType, x.shape, v.map { $0 < -lambd ? $0 + bias : $0 > lambd ? $0 - bias : 0 })]
        case .integers(let v):
            var out: [Int64] = []
            out.reserveCapacity(v.count)
            let exactBias = Int64(exactly: bias)
            for item in v {
                let below = integer(item, isBelow: -lambd), above = integer(item, isAbove: lambd)
                guard below || above else { out.append(0); continue }
                if let b = exactBias {
                    out.append(below ? item &+ b : item &- b)
                } else {
                    let r = below ? Double(item) + bias : Double(item) - bias
                    guard let i = truncatedInteger(r, to: x.dataType) else { throw OperatorError("Shrink: \(r) does not fit in \(x.dataType)") }
                    out.append(i)
                }
            }
            return [integers(x.dataType, x.shape, out)]
        case .unsigned(let v):
            var out: [UInt64] = []
            out.reserveCapacity(v.count)
            let exactBias = Int64(exactly: bias)
            for item in v {
                let value = Double(item)
                let below = value < -lambd, above = item > Int64.max.magnitude || integer(Int64(item), isAbove: lambd)
                guard below || above else { out.append(0); continue }
                if let b = exactBias {
                    let delta = UInt64(bitPattern: b)
                    out.append(below ? item &+ delta : item &- delta)
                } else {
                    let r = below ? value + bias : value - bias
                    guard let i = truncatedUnsigned(r) else { throw OperatorError("Shrink: \(r) does not fit in uint64") }
                    out.append(i)
                }
            }
            return [TensorValue(x.dataType, shape: x.shape, .unsigned(out))]
        default:
            throw OperatorError("Shrink does not take \(x.dataType)")
        }
    }
}
