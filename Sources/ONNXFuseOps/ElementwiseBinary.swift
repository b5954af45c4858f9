#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import ONNXFuseIR

// Kernels of the binary operators with broadcasting: arithmetic (Add, Sub, Mul, Div, Mod,
// Pow), bit operations, PRelu, comparisons, logic, Where and the variadic Min/Max/Sum/Mean.

extension ElementwiseKit {
    // MARK: Arithmetic

    /// The integer, uint64 and real forms of a binary arithmetic operation (nil: the operator
    /// does not take that kind).
    struct Arithmetic: Sendable {
        /// On wrapping Int64s (results are wrapped to the element type afterwards).
        var integer: (@Sendable (Int64, Int64) -> Int64)?
        /// On uint64s, wrapping.
        var unsigned: (@Sendable (UInt64, UInt64) -> UInt64)?
        /// On exact reals (results are rounded to the element type afterwards).
        var real: (@Sendable (Double, Double) -> Double)?
        /// Whether an integer zero in the second operand is an error (division).
        var zeroDivisorIsError = false
    }

    /// The broadcast plan of a binary operator's two operands, with the limited broadcasting
    /// of opsets before 7 (the result then has A's shape).
    static func binaryPlan(_ a: TensorValue, _ b: TensorValue, _ context: OperatorContext) throws(OperatorError) -> (shape: [Int], count: Int, maps: [IndexMap]) {
        let bShape = try legacyOperandShape(a.shape, b.shape, context)
        let plan = try broadcast([a.shape, bShape], context)
        if context.opsetVersion < 7, plan.shape != a.shape {
            throw OperatorError("\(context.opType): B \(b.shape) does not broadcast to A \(a.shape)")
        }
        return plan
    }

    /// A kernel applying `operation` to two broadcast operands of one type.
    static func arithmeticKernel(_ operation: Arithmetic) -> Kernel {
        return { context, inputs throws(OperatorError) in
            let a = try requiredInput(inputs, 0, context), b = try requiredInput(inputs, 1, context)
            try checkSameType(a, b, context)
            let plan = try binaryPlan(a, b, context)
            let (am, bm) = (plan.maps[0], plan.maps[1])
            switch (a.elements, b.elements) {
            case (.integers(let x), .integers(let y)):
                guard let f = operation.integer else { break }
                if operation.zeroDivisorIsError, plan.count > 0, y.contains(0) {
                    throw OperatorError("\(context.opType): integer division by zero")
                }
                return [integers(a.dataType, plan.shape, map2(x, am, y, bm, count: plan.count, f))]
            case (.unsigned(let x), .unsigned(let y)):
                guard let f = operation.unsigned else { break }
                if operation.zeroDivisorIsError, plan.count > 0, y.contains(0) {
                    throw OperatorError("\(context.opType): integer division by zero")
                }
                return [TensorValue(a.dataType, shape: plan.shape, .unsigned(map2(x, am, y, bm, count: plan.count, f)))]
            case (.reals(let x), .reals(let y)):
                guard let f = operation.real else { break }
                return [reals(a.dataType, plan.shape, map2(x, am, y, bm, count: plan.count, f))]
            default: break
            }
            throw OperatorError("\(context.opType) does not take \(a.dataType)")
        }
    }

    /// Add, wrapping for integers.
    static let add = Arithmetic(integer: { $0 &+ $1 }, unsigned: { $0 &+ $1 }, real: { $0 + $1 })
    /// Sub, wrapping for integers.
    static let sub = Arithmetic(integer: { $0 &- $1 }, unsigned: { $0 &- $1 }, real: { $0 - $1 })
    /// Mul, wrapping for integers.
    static let mul = Arithmetic(integer: { $0 &* $1 }, unsigned: { $0 &* $1 }, real: { $0 * $1 })
    /// Integer division truncates toward zero (C); `Int64.min / -1` wraps.
    static let div = Arithmetic(integer: { $0.dividedReportingOverflow(by: $1).partialValue },
                                unsigned: { $0 / $1 }, real: { $0 / $1 }, zeroDivisorIsError: true)

    /// Mod with `fmod` 0 (the result takes the divisor's sign) or 1 (the dividend's).
    static func modKernel() -> Kernel {
        let floored = arithmeticKernel(Arithmetic(
            integer: { x, y in
                let r = x.remainderReportingOverflow(dividingBy: y).partialValue
                return r != 0 && (r < 0) != (y < 0) ? r &+ y : r
            },
            unsigned: { $0 % $1 },
            real: { x, y in
                var r = fmod(x, y)
                if r != 0 {
                    if (r < 0) != (y < 0) { r += y }
                } else if !r.isNaN {
                    r = y.sign == .minus ? -0.0 : 0.0
                }
                return r
            },
            zeroDivisorIsError: true))
        let truncated = arithmeticKernel(Arithmetic(
            integer: { $0.remainderReportingOverflow(dividingBy: $1).partialValue },
            unsigned: { $0 % $1 },
            real: { fmod($0, $1) },
            zeroDivisorIsError: true))
        return { context, inputs throws(OperatorError) in
            switch try context.int("fmod", default: 0) {
            case 0: return try floored(context, inputs)
            case 1: return try truncated(context, inputs)
            case let other: throw OperatorError("Mod: fmod must be 0 or 1, not \(other)")
            }
        }
    }

    // MARK: Pow

    /// `base ** exponent` with wrapping integer arithmetic; nil for a zero base with a
    /// negative exponent.
    static func integerPower(_ base: Int64, _ exponent: Int64) -> Int64? {
        if exponent < 0 {
            switch base {
            case 0: return nil
            case 1: return 1
            case -1: return exponent & 1 == 0 ? 1 : -1
            default: return 0  // |1 / base^n| < 1 truncates to 0
            }
        }
        return Int64(bitPattern: unsignedPower(UInt64(bitPattern: base), UInt64(exponent)))
    }

    /// `base ** exponent` modulo 2^64.
    static func unsignedPower(_ base: UInt64, _ exponent: UInt64) -> UInt64 {
        var result: UInt64 = 1, factor = base, e = exponent
        while e > 0 {
            if e & 1 == 1 { result = result &* factor }
            factor = factor &* factor
            e >>= 1
        }
        return result
    }

    /// `pow(x, e)` for an integer exponent, with the sign right even where `e` does not fit
    /// a double exactly.
    static func realPower(_ x: Double, integer e: Int64) -> Double {
        if e.magnitude < 1 << 53 { return pow(x, Double(e)) }
        let r = pow(x.magnitude, Double(e))
        return x.sign == .minus && e & 1 == 1 ? -r : r
    }

    /// `pow(x, e)` for a uint64 exponent.
    static func realPower(_ x: Double, unsigned e: UInt64) -> Double {
        if e < 1 << 53 { return pow(x, Double(e)) }
        let r = pow(x.magnitude, Double(e))
        return x.sign == .minus && e & 1 == 1 ? -r : r
    }

    /// Pow: the result has the base's type; the exponent may have another numeric type
    /// (opset 12 on). Integer powers are exact (wrapping); an integer base with a real
    /// exponent is computed in Double and truncated.
    static let powKernel: Kernel = { context, inputs throws(OperatorError) in
        let a = try requiredInput(inputs, 0, context), b = try requiredInput(inputs, 1, context)
        let plan = try binaryPlan(a, b, context)
        let (am, bm, n) = (plan.maps[0], plan.maps[1], plan.count)
        let type = a.dataType
        switch (a.elements, b.elements) {
        case (.reals(let x), .reals(let y)):
            return [reals(type, plan.shape, map2(x, am, y, bm, count: n) { pow($0, $1) })]
        case (.reals(let x), .integers(let y)):
            return [reals(type, plan.shape, map2(x, am, y, bm, count: n) { realPower($0, integer: $1) })]
        case (.reals(let x), .unsigned(let y)):
            return [reals(type, plan.shape, map2(x, am, y, bm, count: n) { realPower($0, unsigned: $1) })]
        case (.integers(let x), .integers(let y)):
            let results = map2(x, am, y, bm, count: n) { integerPower($0, $1) }
            var values: [Int64] = []
            values.reserveCapacity(n)
            for r in results {
                guard let r else { throw OperatorError("Pow: zero to a negative power") }
                values.append(r)
            }
            return [integers(type, plan.shape, values)]
        case (.integers(let x), .unsigned(let y)):
            return [integers(type, plan.shape, map2(x, am, y, bm, count: n) {
                Int64(bitPattern: unsignedPower(UInt64(bitPattern: $0), $1))
            })]
        case (.unsigned(let x), .integers(let y)):
            let results = map2(x, am, y, bm, count: n) { base, e -> UInt64? in
                if e >= 0 { return unsignedPower(base, UInt64(e)) }
                return base == 0 ? nil : base == 1 ? 1 : 0
            }
            var values: [UInt64] = []
            values.reserveCapacity(n)
            for r in results {
                guard let r else { throw OperatorError("Pow: zero to a negative power") }
                values.append(r)
            }
            return [TensorValue(type, shape: plan.shape, .unsigned(values))]
        case (.unsigned(let x), .unsigned(let y)):
            return [TensorValue(type, shape: plan.shape, .unsigned(map2(x, am, y, bm, count: n) { unsignedPower($0, $1) }))]
        case (.integers(let x), .reals(let y)):
            let results = map2(x, am, y, bm, count: n) { pow(Double($0), $1) }
            var values: [Int64] = []
            values.reserveCapacity(n)
            for r in results {
                guard let i = truncatedInteger(r, to: type) else {
                    throw OperatorError("Pow: \(r) does not fit in \(type)")
                }
                values.append(i)
            }
            return [TensorValue(type, shape: plan.shape, .integers(values))]
        case (.unsigned(let x), .reals(let y)):
            let results = map2(x, am, y, bm, count: n) { pow(Double($0), $1) }
            var values: [UInt64] = []
            values.reserveCapacity(n)
            for r in results {
                guard let i = truncatedUnsigned(r) else { throw OperatorError("Pow: \(r) does not fit in uint64") }
                values.append(i)
            }
            return [TensorValue(type, shape: plan.shape, .unsigned(values))]
        default:
            throw OperatorError("Pow does not take \(a.dataType) and \(b.dataType)")
        }
    }

    // MARK: Bit operations

    /// BitShift: shifts of the width of the type or more, or negative, give 0 (or -1 for a
    /// right shift of a negative signed value).
    static let bitShiftKernel: Kernel = { context, inputs throws(OperatorError) in
        let left: Bool
        switch try context.string("direction") {
        case "LEFT": left = true
        case "RIGHT": left = false
        case let other: throw OperatorError("BitShift: direction must be LEFT or RIGHT, not \(other ?? "absent")")
        }
        let a = try requiredInput(inputs, 0, context), b = try requiredInput(inputs, 1, context)
        try checkSameType(a, b, context)
        let plan = try binaryPlan(a, b, context)
        let (am, bm, n) = (plan.maps[0], plan.maps[1], plan.count)
        switch (a.elements, b.elements) {
        case (.integers(let x), .integers(let y)):
            let width = Int64(a.dataType.bitWidth ?? 64)
            let values: [Int64]
            if left {
                values = map2(x, am, y, bm, count: n) { v, s in s < 0 || s >= width ? 0 : v &<< s }
            } else {
                values = map2(x, am, y, bm, count: n) { v, s in s < 0 || s >= width ? (v < 0 ? -1 : 0) : v >> s }
            }
            return [integers(a.dataType, plan.shape, values)]
        case (.unsigned(let x), .unsigned(let y)):
            let values = left
                ? map2(x, am, y, bm, count: n) { v, s in s >= 64 ? 0 : v << s }
                : map2(x, am, y, bm, count: n) { v, s in s >= 64 ? 0 : v >> s }
            return [TensorValue(a.dataType, shape: plan.shape, .unsigned(values))]
        default:
            throw OperatorError("BitShift does not take \(a.dataType)")
        }
    }

    /// BitwiseAnd.
    static let bitwiseAnd = Arithmetic(integer: { $0 & $1 }, unsigned: { $0 & $1 }, real: nil)
    /// BitwiseOr.
    static let bitwiseOr = Arithmetic(integer: { $0 | $1 }, unsigned: { $0 | $1 }, real: nil)
    /// BitwiseXor.
    static let bitwiseXor = Arithmetic(integer: { $0 ^ $1 }, unsigned: { $0 ^ $1 }, real: nil)

    // MARK: PRelu

    /// The shape slope broadcasts with to X's shape: numpy broadcasting, or else (as the
    /// onnx reference does) a 1-D slope aligned with the one axis of X of its length.
    static func preluSlopeShape(_ x: [Int], _ slope: [Int]) -> [Int]? {
        if let shape = try? broadcastShapes(x, slope), shape == x { return slope }
        guard slope.count == 1 else { return nil }
        let matches = x.indices.filter { x[$0] == slope[0] }
        guard matches.count == 1 else { return nil }
        var shape = [Int](repeating: 1, count: x.count)
        shape[matches[0]] = slope[0]
        return shape
    }

    /// PRelu: `slope * x` where x < 0, else x; slope broadcasts to X (unidirectionally).
    static let preluKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context), slope = try requiredInput(inputs, 1, context)
        try checkSameType(x, slope, context)
        guard let slopeShape = preluSlopeShape(x.shape, slope.shape) else {
            throw OperatorError("PRelu: slope \(slope.shape) does not broadcast to X \(x.shape)")
        }
        let plan = try broadcast([x.shape, slopeShape], context)
        let (xm, sm, n) = (plan.maps[0], plan.maps[1], plan.count)
        switch (x.elements, slope.elements) {
        case (.reals(let v), .reals(let s)):
            return [reals(x.dataType, plan.shape, map2(v, xm, s, sm, count: n) { $0 < 0 ? $1 * $0 : $0 })]
        case (.integers(let v), .integers(let s)):
            return [integers(x.dataType, plan.shape, map2(v, xm, s, sm, count: n) { $0 < 0 ? $1 &* $0 : $0 })]
        case (.unsigned(let v), .unsigned):
            return [TensorValue(x.dataType, shape: plan.shape, .unsigned(expand(v, xm, count: n)))]
        default:
            throw OperatorError("PRelu does not take \(x.dataType)")
        }
    }

    // MARK: Comparisons and logic

    /// The forms of a comparison by element kind (nil: not taken).
    struct Comparison: Sendable {
        var integer: @Sendable (Int64, Int64) -> Bool
        var unsigned: @Sendable (UInt64, UInt64) -> Bool
        var real: @Sendable (Double, Double) -> Bool
        var boolean: (@Sendable (Bool, Bool) -> Bool)?
        var string: (@Sendable ([UInt8], [UInt8]) -> Bool)?
    }

    /// Equal (every kind, strings and booleans included).
    static let equal = Comparison(integer: { $0 == $1 }, unsigned: { $0 == $1 }, real: { $0 == $1 },
                                  boolean: { $0 == $1 }, string: { $0 == $1 })
    /// Less.
    static let less = Comparison(integer: { $0 < $1 }, unsigned: { $0 < $1 }, real: { $0 < $1 })
    /// LessOrEqual.
    static let lessOrEqual = Comparison(integer: { $0 <= $1 }, unsigned: { $0 <= $1 }, real: { $0 <= $1 })
    /// Greater.
    static let greater = Comparison(integer: { $0 > $1 }, unsigned: { $0 > $1 }, real: { $0 > $1 })
    /// GreaterOrEqual.
    static let greaterOrEqual = Comparison(integer: { $0 >= $1 }, unsigned: { $0 >= $1 }, real: { $0 >= $1 })

    /// A kernel comparing two broadcast operands of one type into booleans.
    static func comparisonKernel(_ comparison: Comparison) -> Kernel {
        return { context, inputs throws(OperatorError) in
            let a = try requiredInput(inputs, 0, context), b = try requiredInput(inputs, 1, context)
            try checkSameType(a, b, context)
            let plan = try binaryPlan(a, b, context)
            let (am, bm, n) = (plan.maps[0], plan.maps[1], plan.count)
            let values: [Bool]
            switch (a.elements, b.elements) {
            case (.integers(let x), .integers(let y)): values = map2(x, am, y, bm, count: n, comparison.integer)
            case (.unsigned(let x), .unsigned(let y)): values = map2(x, am, y, bm, count: n, comparison.unsigned)
            case (.reals(let x), .reals(let y)): values = map2(x, am, y, bm, count: n, comparison.real)
            case (.booleans(let x), .booleans(let y)):
                guard let f = comparison.boolean else { throw OperatorError("\(context.opType) does not take bool") }
                values = map2(x, am, y, bm, count: n, f)
            case (.strings(let x), .strings(let y)):
                guard let f = comparison.string else { throw OperatorError("\(context.opType) does not take strings") }
                values = map2(x, am, y, bm, count: n, f)
            default:
                throw OperatorError("\(context.opType) does not take \(a.dataType)")
            }
            return [TensorValue(.bool, shape: plan.shape, .booleans(values))]
        }
    }

    /// A kernel combining two broadcast boolean operands.
    static func logicKernel(_ f: @escaping @Sendable (Bool, Bool) -> Bool) -> Kernel {
        return { context, inputs throws(OperatorError) in
            let a = try requiredInput(inputs, 0, context), b = try requiredInput(inputs, 1, context)
            guard case .booleans(let x) = a.elements, case .booleans(let y) = b.elements else {
                throw OperatorError("\(context.opType) takes bool tensors, not \(a.dataType) and \(b.dataType)")
            }
            let plan = try binaryPlan(a, b, context)
            return [TensorValue(.bool, shape: plan.shape, .booleans(map2(x, plan.maps[0], y, plan.maps[1], count: plan.count, f)))]
        }
    }

    /// Where: X where the condition holds, else Y, all three broadcast.
    static let whereKernel: Kernel = { context, inputs throws(OperatorError) in
        let c = try requiredInput(inputs, 0, context), x = try requiredInput(inputs, 1, context), y = try requiredInput(inputs, 2, context)
        guard case .booleans(let cv) = c.elements else { throw OperatorError("Where: the condition must be bool, not \(c.dataType)") }
        try checkSameType(x, y, context)
        let plan = try broadcast([c.shape, x.shape, y.shape], context)
        let (cm, xm, ym, n) = (plan.maps[0], plan.maps[1], plan.maps[2], plan.count)
        let elements: TensorValue.Elements
        switch (x.elements, y.elements) {
        case (.integers(let a), .integers(let b)): elements = .integers(map3(cv, cm, a, xm, b, ym, count: n) { $0 ? $1 : $2 })
        case (.unsigned(let a), .unsigned(let b)): elements = .unsigned(map3(cv, cm, a, xm, b, ym, count: n) { $0 ? $1 : $2 })
        case (.reals(let a), .reals(let b)): elements = .reals(map3(cv, cm, a, xm, b, ym, count: n) { $0 ? $1 : $2 })
        case (.booleans(let a), .booleans(let b)): elements = .booleans(map3(cv, cm, a, xm, b, ym, count: n) { $0 ? $1 : $2 })
        case (.strings(let a), .strings(let b)): elements = .strings(map3(cv, cm, a, xm, b, ym, count: n) { $0 ? $1 : $2 })
        default: throw OperatorError("Where: X and Y differ in kind")
        }
        return [TensorValue(x.dataType, shape: plan.shape, elements)]
    }

    // MARK: Variadic

    /// The forms of a variadic elementwise reduction (Min, Max, Sum, Mean).
    struct Variadic: Sendable {
        var integer: (@Sendable (Int64, Int64) -> Int64)?
        var unsigned: (@Sendable (UInt64, UInt64) -> UInt64)?
        var real: @Sendable (Double, Double) -> Double
        /// Reals are divided by the number of inputs at the end (Mean).
        var mean = false
    }

    /// NaN-propagating maximum (as numpy's `maximum`).
    static func realMax(_ a: Double, _ b: Double) -> Double { a.isNaN || b.isNaN ? .nan : Swift.max(a, b) }
    /// NaN-propagating minimum.
    static func realMin(_ a: Double, _ b: Double) -> Double { a.isNaN || b.isNaN ? .nan : Swift.min(a, b) }

    /// Max over any number of inputs.
    static let variadicMax = Variadic(integer: { Swift.max($0, $1) }, unsigned: { Swift.max($0, $1) }, real: realMax)
    /// Min over any number of inputs.
    static let variadicMin = Variadic(integer: { Swift.min($0, $1) }, unsigned: { Swift.min($0, $1) }, real: realMin)
    /// Sum over any number of inputs.
    static let variadicSum = Variadic(integer: { $0 &+ $1 }, unsigned: { $0 &+ $1 }, real: { $0 + $1 })
    /// Mean over any number of inputs (floating-point only).
    static let variadicMean = Variadic(integer: nil, unsigned: nil, real: { $0 + $1 }, mean: true)

    /// A kernel folding any number of broadcast operands of one type (before opset 8 they
    /// must have one shape). Reals accumulate in Double and round once.
    static func variadicKernel(_ operation: Variadic) -> Kernel {
        return { context, inputs throws(OperatorError) in
            var operands: [TensorValue] = []
            for item in inputs {
                guard let item else { throw OperatorError("\(context.opType): inputs cannot be absent") }
                operands.append(item)
            }
            guard let first = operands.first else { throw OperatorError("\(context.opType) needs at least one input") }
            for operand in operands.dropFirst() { try checkSameType(first, operand, context) }
            if context.opsetVersion < 8, operands.contains(where: { $0.shape != first.shape }) {
                throw OperatorError("\(context.opType): inputs must have one shape before opset 8")
            }
            let plan = try broadcast(operands.map(\.shape), context)
            let n = plan.count
            switch first.elements {
            case .integers:
                guard let f = operation.integer else { break }
                var acc: [Int64] = []
                for (index, operand) in operands.enumerated() {
                    guard case .integers(let v) = operand.elements else { break }
                    acc = index == 0 ? expand(v, plan.maps[0], count: n) : map2(acc, .identity, v, plan.maps[index], count: n, f)
                }
                return [integers(first.dataType, plan.shape, acc)]
            case .unsigned:
                guard let f = operation.unsigned else { break }
                var acc: [UInt64] = []
                for (index, operand) in operands.enumerated() {
                    guard case .unsigned(let v) = operand.elements else { break }
                    acc = index == 0 ? expand(v, plan.maps[0], count: n) : map2(acc, .identity, v, plan.maps[index], count: n, f)
                }
                return [TensorValue(first.dataType, shape: plan.shape, .unsigned(acc))]
            case .reals:
                var acc: [Double] = []
                for (index, operand) in operands.enumerated() {
                    guard case .reals(let v) = operand.elements else { break }
                    acc = index == 0 ? expand(v, plan.maps[0], count: n) : map2(acc, .identity, v, plan.maps[index], count: n, operation.real)
                }
                if operation.mean {
                    let divisor = Double(operands.count)
                    acc = acc.map { $0 / divisor }
                }
                return [reals(first.dataType, plan.shape, acc)]
            default: break
            }
            throw OperatorError("\(context.opType) does not take \(first.dataType)")
        }
    }
}
