import ONNXFuseIR
import ONNXFuseOps

/// A large `compute` result made element-wise from one stored constant and at most one small
/// operand (`w2 = w * reshape(k, ...)`, with reshapes of either), evaluated a chunk at a time:
/// neither the constant nor the result is ever whole in float64. The rewrite checks it (finite,
/// in float64 and once stored) and samples it in one pass; the save computes it again straight
/// into the output buffer. Each element is computed as `NDArray`'s broadcasting computes it, so
/// the bytes are those of the whole-array evaluation.
struct StreamedTensor {
    /// The constant.
    let source: Tensor
    /// Its bytes: little-endian elements of one of `NDArray.writableTypes`.
    let bytes: TensorBytes
    /// The number of elements, of the constant and of the result.
    let count: Int
    /// The shape the operand is broadcast against (the constant's, or a reshape of it).
    var shapeAtOperation: [Int]
    /// The result's shape.
    var shape: [Int]
    /// The operation with the small operand, when there is one.
    var operation: Operation?

    /// An element-wise operation with a small operand that broadcasts to the constant's shape.
    struct Operation {
        /// `+`, `-`, `*` or `/`.
        let op: String
        let operand: NDArray
        /// Whether the constant is the left operand (`w * k`, not `k * w`).
        let constantOnLeft: Bool
    }

    /// Elements per chunk: small enough to stay in cache.
    static let chunkLength = 8192

    /// The constant `source`, unchanged; nil when it cannot be streamed (a type or storage this
    /// does not read, or a payload that is not whole).
    init?(source: Tensor) {
        guard NDArray.writableTypes.contains(source.dataType), source.payloadProblem == nil,
              case .raw(let bytes) = source.storage, let count = source.elementCount,
              source.dataType.rawByteCount(elements: count) == bytes.count else { return nil }
        self.source = source
        self.bytes = bytes
        self.count = count
        shape = source.dims.map { Int($0) }
        shapeAtOperation = shape
    }

    /// The whole result, as the evaluation without streaming computes it.
    func materialize() throws(EvaluationError) -> NDArray {
        var array = try RuleProgram.Scope.read(source).withShape(shapeAtOperation)
        if let operation {
            let (lhs, rhs) = operation.constantOnLeft ? (array, operation.operand) : (operation.operand, array)
            switch operation.op {
            case "+": array = try lhs + rhs
            case "-": array = try lhs - rhs
            case "*": array = try lhs * rhs
            default: array = try lhs / rhs
            }
        }
        return array.withShape(shape)
    }

    /// Calls `body` with the result's elements in order, `chunkLength` at a time (the last
    /// chunk may be shorter), and the position of each chunk's first element.
    func forEachChunk(_ body: (Int, UnsafeBufferPointer<Double>) throws(EvaluationError) -> Void) throws(EvaluationError) {
        guard count > 0 else { return }
        do {
            // A deferred constant (another fold's weight) is computed for this pass only.
            try bytes.withTransientBytes { raw in try stream(raw, body) }
            if bytes.count >= EvaluationLimits.current.minimumDeferredBytes { bytes.releaseResidentPages() }
        } catch let error as EvaluationError {
            throw error
        } catch {
            throw EvaluationError("\(source.name.map { "tensor '\($0)'" } ?? "a computed tensor") could not be made: \(error)")
        }
    }

    private func stream(_ raw: UnsafeRawBufferPointer, _ body: (Int, UnsafeBufferPointer<Double>) throws(EvaluationError) -> Void) throws(EvaluationError) {
        let chunk = UnsafeMutableBufferPointer<Double>.allocate(capacity: min(count, Self.chunkLength))
        defer { chunk.deallocate() }
        var filled = 0
        var start = 0
        // `length` results from the constant's element `at` on, the operand read from
        // `operandAt` on in steps of `operandStep`.
        func take(_ at: Int, _ length: Int, _ operandAt: Int, _ operandStep: Int) throws(EvaluationError) {
            var done = 0
            while done < length {
                let n = min(length - done, chunk.count - filled)
                let destination = chunk.baseAddress! + filled
                decode(raw, from: at + done, count: n, into: destination)
                if let operation { apply(operation, to: destination, count: n, operandAt + done * operandStep, operandStep) }
                filled += n
                done += n
                if filled == chunk.count {
                    try body(start, UnsafeBufferPointer(chunk))
                    start += filled
                    filled = 0
                }
            }
        }
        if let operation {
            let shape = shapeAtOperation
            let plan = operation.constantOnLeft
                ? BroadcastPlan(shape, operation.operand.shape, to: shape) : BroadcastPlan(operation.operand.shape, shape, to: shape)
            try plan.forEachRun { (_, left, right, length, leftStep, rightStep) throws(EvaluationError) in
                // The constant has the result's shape: its runs are contiguous.
                if operation.constantOnLeft {
                    precondition(leftStep == 1 || length == 1, "the constant is read in order")
                    try take(left, length, right, rightStep)
                } else {
                    precondition(rightStep == 1 || length == 1, "the constant is read in order")
                    try take(right, length, left, leftStep)
                }
            }
        } else {
            try take(0, count, 0, 0)
        }
        if filled > 0 { try body(start, UnsafeBufferPointer(rebasing: chunk[..<filled])) }
    }

    /// Elements `from..<from + count` of the constant in float64, as `TensorValue` reads them.
    private func decode(_ raw: UnsafeRawBufferPointer, from first: Int, count: Int, into destination: UnsafeMutablePointer<Double>) {
        // A plain loop per type (float32 is nearly every weight): it vectorizes.
        switch source.dataType {
        case .float:
            let base = raw.baseAddress! + first &* 4
            for index in 0..<count {
                destination[index] = Double(Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: index &* 4, as: UInt32.self))))
            }
        case .double:
            let base = raw.baseAddress! + first &* 8
            for index in 0..<count {
                destination[index] = Double(bitPattern: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: index &* 8, as: UInt64.self)))
            }
        case .float16:
            let base = raw.baseAddress! + first &* 2
            for index in 0..<count {
                destination[index] = float16Value(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: index &* 2, as: UInt16.self)))
            }
        default:
            let base = raw.baseAddress! + first &* 2
            for index in 0..<count {
                destination[index] = bfloat16Value(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: index &* 2, as: UInt16.self)))
            }
        }
    }

    /// Combines `count` constant elements at `values` with the operand in place.
    private func apply(_ operation: Operation, to values: UnsafeMutablePointer<Double>, count: Int, _ operandAt: Int, _ operandStep: Int) {
        operation.operand.values.withUnsafeBufferPointer { operand in
            func each(_ combine: (Double, Double) -> Double) {
                if operandStep == 0 {
                    let y = operand[operandAt]
                    if operation.constantOnLeft {
                        for index in 0..<count { values[index] = combine(values[index], y) }
                    } else {
                        for index in 0..<count { values[index] = combine(y, values[index]) }
                    }
                } else if operation.constantOnLeft {
                    for index in 0..<count { values[index] = combine(values[index], operand[operandAt + index * operandStep]) }
                } else {
                    for index in 0..<count { values[index] = combine(operand[operandAt + index * operandStep], values[index]) }
                }
            }
            switch operation.op {
            case "+": each(+)
            case "-": each(-)
            case "*": each(*)
            default: each(/)
            }
        }
    }
}

/// A value of an expression evaluated with streaming allowed (`Scope.evaluateStreaming`).
enum StreamableValue {
    /// Evaluated as usual.
    case value(EvalValue)
    /// A large tensor left to be computed a chunk at a time, with its element type.
    case streamed(StreamedTensor, DataType?)
}

extension RuleProgram.Scope {
    /// `expression`'s value, where a large constant combined element-wise with small operands
    /// (`w * reshape(k, ...)`, reshapes of either) is left streamed rather than computed whole.
    /// Everything else is evaluated as `evaluate` does, in the same order, with the same work
    /// counted, the same tape recorded or replayed and the same errors: a streamed value's
    /// elements are the whole evaluation's, and an operation streaming cannot do (a second one,
    /// a broadcast that grows the constant) computes the whole value as `evaluate` would.
    mutating func evaluateStreaming(_ expression: Expression) throws(EvaluationError) -> StreamableValue {
        switch expression {
        case .name(let name, _):
            guard let source = streamableConstant(name), let streamed = StreamedTensor(source: source) else {
                return .value(try evaluate(expression))
            }
            try charge(expression, elements: streamed.count)
            return .streamed(streamed, source.dataType)
        case .call("reshape", let arguments, _) where arguments.count == 2 && program.functions.isBuiltin("reshape"):
            let first = try evaluateStreaming(arguments[0])
            let target = try evaluate(arguments[1])
            guard case .streamed(var streamed, let type) = first,
                  let newShape = try? target.asIntegers(),
                  let shape = try? NDArray.reshapedShape(streamed.shape, count: streamed.count, to: newShape) else {
                let value = try program.functions.call("reshape", [try materialized(first), target])
                try charge(expression, elements: value.elementCount)
                return .value(value)
            }
            streamed.shape = shape
            if streamed.operation == nil { streamed.shapeAtOperation = shape }
            try charge(expression, elements: streamed.count)
            return .streamed(streamed, type)
        case .binary(let op, let lhs, let rhs, _) where ["+", "-", "*", "/"].contains(op.rawValue):
            let left = try evaluateStreaming(lhs)
            let right: StreamableValue
            if case .value = left { right = try evaluateStreaming(rhs) } else { right = .value(try evaluate(rhs)) }
            var result: StreamableValue?
            switch (left, right) {
            case (.streamed(let streamed, let type), .value(let other)) where streamed.operation == nil:
                result = try combine(streamed, type, op.rawValue, other, constantOnLeft: true)
            case (.value(let other), .streamed(let streamed, let type)) where streamed.operation == nil:
                result = try combine(streamed, type, op.rawValue, other, constantOnLeft: false)
            default:
                break
            }
            if let result {
                if case .streamed(let streamed, _) = result { try charge(expression, elements: streamed.count) }
                return result
            }
            let value = try apply(op.rawValue, try materialized(left), try materialized(right))
            try charge(expression, elements: value.elementCount)
            return .value(value)
        default:
            return .value(try evaluate(expression))
        }
    }

    /// The value as `evaluate` gives it.
    private func materialized(_ value: StreamableValue) throws(EvaluationError) -> EvalValue {
        switch value {
        case .value(let value): return value
        case .streamed(let streamed, let type): return .tensor(try streamed.materialize(), type)
        }
    }

    /// `streamed op other` (or `other op streamed`) as a streamed value, with the element type
    /// `arithmetic` gives; nil when streaming cannot compute it (`other` is not a number or a
    /// tensor, or does not broadcast to the constant's shape without growing it).
    private func combine(_ streamed: StreamedTensor, _ type: DataType?, _ op: String, _ other: EvalValue,
                         constantOnLeft: Bool) throws(EvaluationError) -> StreamableValue? {
        switch other {
        case .tensor, .integer, .real: break
        default: return nil
        }
        let (operand, otherType) = try other.asTensor()
        let resultType = try constantOnLeft ? combinedElementType(type, otherType) : combinedElementType(otherType, type)
        guard let shape = try? NDArray.broadcastShape(streamed.shape, operand.shape), shape == streamed.shape else { return nil }
        var result = streamed
        result.shapeAtOperation = streamed.shape
        result.operation = StreamedTensor.Operation(op: op, operand: operand, constantOnLeft: constantOnLeft)
        return .streamed(result, resultType)
    }

    /// The constant a variable is bound to, read (recorded or replayed) as `lookup` reads it,
    /// when it is large enough to stream (at least `EvaluationLimits.minimumDeferredBytes`, as
    /// what is computed from it is deferred); nil otherwise, with nothing read.
    private mutating func streamableConstant(_ name: String) -> Tensor? {
        guard program.valueVariables[name] != nil else { return nil }
        let tensor: Tensor
        if replaying {
            guard cursor < tape.count, case .tensor(let recorded) = tape[cursor] else { return nil }
            tensor = recorded
        } else {
            guard let bound = graphValue(name), let value = bound, let constant = constant(value) else { return nil }
            tensor = constant
        }
        guard let count = tensor.elementCount, let bytes = tensor.dataType.rawByteCount(elements: count),
              bytes >= EvaluationLimits.current.minimumDeferredBytes, StreamedTensor(source: tensor) != nil else { return nil }
        if replaying {
            cursor += 1
        } else if recording {
            tape.append(.tensor(tensor))
        }
        return tensor
    }
}
