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
    /// Its bytes: little-endian elements of of a type `NDArray.isWritable` takes.
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
        let op: BinaryOperator
        let operand: NDArray
        /// Whether the constant is the left operand (`w * k`, not `k * w`).
        let constantOnLeft: Bool
    }

    /// Elements per chunk: small enough to stay in cache.
    static let chunkLength = 8192

    /// The constant `source`, unchanged; nil when it cannot be streamed (a type or storage this
    /// does not read, or a payload that is not whole).
    init?(source: Tensor) {
        guard NDArray.isWritable(source.dataType), source.payloadProblem == nil,
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
            case .add: array = try lhs + rhs
            case .subtract: array = try lhs - rhs
            case .multiply: array = try lhs * rhs
            default: array = try lhs / rhs
            }
        }
        return array.withShape(shape)
    }

    /// Calls `body` with the result's elements in order, `chunkLength` at a time (the last
    /// chunk may be shorter), and the position of each chunk's first element. With `ranges`,
    /// only the elements in them are computed, and given in pieces as short as they are.
    func forEachChunk(in ranges: [Range<Int>]? = nil,
                      _ body: (Int, UnsafeBufferPointer<Double>) throws(EvaluationError) -> Void) throws(EvaluationError) {
        guard count > 0 else { return }
        try withConstantBytes { raw throws(EvaluationError) in try stream(raw, ranges, body) }
    }

    /// `body` on the constant's bytes, whose mapped pages are let go after. A deferred constant
    /// (another fold's weight) is computed for this pass only; when it cannot be, the error
    /// names the tensor.
    private func withConstantBytes(_ body: (UnsafeRawBufferPointer) throws(EvaluationError) -> Void) throws(EvaluationError) {
        do {
            try bytes.withTransientBytes { raw in try body(raw) }
            bytes.releaseResidentPages()
        } catch let error as EvaluationError {
            throw error
        } catch {
            throw EvaluationError("\(source.name.map { "tensor '\($0)'" } ?? "a computed tensor") could not be made: \(error)")
        }
    }

    private func stream(_ raw: UnsafeRawBufferPointer, _ ranges: [Range<Int>]?,
                        _ body: (Int, UnsafeBufferPointer<Double>) throws(EvaluationError) -> Void) throws(EvaluationError) {
        let chunk = UnsafeMutableBufferPointer<Double>.allocate(capacity: min(count, Self.chunkLength))
        let elementSize = bytes.count / count
        defer { chunk.deallocate() }
        // `n` results into `destination`: the constant's elements from `at` on, combined with
        // the operand read from `operandAt` on in steps of `operandStep`.
        func compute(_ n: Int, _ at: Int, _ operandAt: Int, _ operandStep: Int, _ destination: UnsafeMutablePointer<Double>) {
            readReals(raw.baseAddress! + at * elementSize, as: source.dataType, count: n, into: destination)
            if let operation { apply(operation, to: destination, count: n, operandAt, operandStep) }
        }
        guard let ranges else { return try fillChunks(chunk, compute, body) }
        // The result's position of the next run.
        var position = 0
        try forEachRun { (at, length, operandAt, operandStep) throws(EvaluationError) in
            let run = position..<(position + length)
            position += length
            for range in ranges where range.overlaps(run) {
                let common = range.clamped(to: run)
                let offset = common.lowerBound - run.lowerBound
                for piece in stride(from: 0, to: common.count, by: chunk.count) {
                    let n = min(common.count - piece, chunk.count)
                    compute(n, at + offset + piece, operandAt + (offset + piece) * operandStep, operandStep, chunk.baseAddress!)
                    try body(common.lowerBound + piece, UnsafeBufferPointer(rebasing: chunk[..<n]))
                }
            }
        }
    }

    /// Computes the whole result run by run into `chunk` with `compute(n, at, operandAt,
    /// operandStep, destination)` (`n` results from the constant's element `at` on, the operand
    /// read from `operandAt` on in steps of `operandStep`), and hands each full chunk (the last
    /// may be shorter) with the position of its first element to `flush`, in order.
    private func fillChunks<Element>(_ chunk: UnsafeMutableBufferPointer<Element>,
                                     _ compute: (Int, Int, Int, Int, UnsafeMutablePointer<Element>) -> Void,
                                     _ flush: (Int, UnsafeBufferPointer<Element>) throws(EvaluationError) -> Void) throws(EvaluationError) {
        var filled = 0
        var start = 0
        try forEachRun { (at, length, operandAt, operandStep) throws(EvaluationError) in
            var done = 0
            while done < length {
                let n = min(length - done, chunk.count - filled)
                compute(n, at + done, operandAt + done * operandStep, operandStep, chunk.baseAddress! + filled)
                filled += n
                done += n
                if filled == chunk.count {
                    try flush(start, UnsafeBufferPointer(chunk))
                    start += filled
                    filled = 0
                }
            }
        }
        if filled > 0 { try flush(start, UnsafeBufferPointer(rebasing: chunk[..<filled])) }
    }

    /// Calls `body(at, length, operandAt, operandStep)` for each run of the result, in order:
    /// `length` results from the constant's element `at` on, the operand read from `operandAt`
    /// on in steps of `operandStep` (0 or 1; any when `length` is 1).
    private func forEachRun<Failure: Error>(_ body: (Int, Int, Int, Int) throws(Failure) -> Void) throws(Failure) {
        guard let operation else { return try body(0, count, 0, 0) }
        let shape = shapeAtOperation
        let plan = operation.constantOnLeft
            ? BroadcastPlan(shape, operation.operand.shape, to: shape) : BroadcastPlan(operation.operand.shape, shape, to: shape)
        try plan.forEachRun { (_, left, right, length, leftStep, rightStep) throws(Failure) in
            // The constant has the result's shape: its runs are contiguous.
            if operation.constantOnLeft {
                precondition(leftStep == 1 || length == 1, "the constant is read in order")
                try body(left, length, right, rightStep)
            } else {
                precondition(rightStep == 1 || length == 1, "the constant is read in order")
                try body(right, length, left, leftStep)
            }
        }
    }

    /// Passes the result, stored as float, to `emit` as little-endian bytes a piece at a time:
    /// the bytes `forEachChunk` and `NDArray.BytePieces` make, in one loop per run without the
    /// float64 chunk and its second pass (a float constant written as float: nearly every folded
    /// weight, whose save this loop is most of).
    func forEachFloatPiece(_ emit: DeferredBytes.Emit) throws(EvaluationError) {
        precondition(source.dataType == .float, "forEachFloatPiece reads a float constant")
        guard count > 0 else { return }
        let piece = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: min(count, Self.chunkLength))
        defer { piece.deallocate() }
        func hand(_ bytes: UnsafeRawBufferPointer) throws(EvaluationError) {
            do {
                try emit(bytes)
            } catch {
                // The output stopped taking bytes (its consumer knows why).
                throw EvaluationError("\(error)")
            }
        }
        try withConstantBytes { raw throws(EvaluationError) in
            try fillChunks(piece, { n, at, operandAt, operandStep, destination in
                combineFloats(n, raw.baseAddress! + at * 4, operandAt, operandStep, into: destination)
            }) { _, chunk throws(EvaluationError) in try hand(UnsafeRawBufferPointer(chunk)) }
        }
    }

    /// `n` results as float bits at `output`: the float constant's elements at `constant`
    /// combined with the operand from `operandAt` on in steps of `operandStep`, each computed in
    /// float64 as `apply` computes it and rounded once, as `NDArray.store` rounds it.
    private func combineFloats(_ n: Int, _ constant: UnsafeRawPointer, _ operandAt: Int, _ operandStep: Int,
                               into output: UnsafeMutablePointer<UInt32>) {
        @inline(__always) func element(_ j: Int) -> Double {
            Double(Float(bitPattern: UInt32(littleEndian: constant.loadUnaligned(fromByteOffset: j &* 4, as: UInt32.self))))
        }
        guard let operation else {
            for j in 0..<n { output[j] = Float(element(j)).bitPattern.littleEndian }
            return
        }
        operation.operand.values.withUnsafeBufferPointer { operand in
            let other = operand.baseAddress! + operandAt
            // One loop per operator, side and step, so that each vectorizes.
            @inline(__always) func run(_ combine: (Double, Double) -> Double) {
                switch (operation.constantOnLeft, operandStep) {
                case (true, 0): let y = other[0]; for j in 0..<n { output[j] = Float(combine(element(j), y)).bitPattern.littleEndian }
                case (false, 0): let x = other[0]; for j in 0..<n { output[j] = Float(combine(x, element(j))).bitPattern.littleEndian }
                case (true, _): for j in 0..<n { output[j] = Float(combine(element(j), other[j &* operandStep])).bitPattern.littleEndian }
                case (false, _): for j in 0..<n { output[j] = Float(combine(other[j &* operandStep], element(j))).bitPattern.littleEndian }
                }
            }
            switch operation.op {
            case .add: run(+)
            case .subtract: run(-)
            case .multiply: run(*)
            default: run(/)
            }
        }
    }

    /// Whether every element is finite in float64 and once stored, shown without computing the
    /// result: from the largest magnitude of a float constant (one pass over its bits) and the
    /// operand's. False when that does not show it (it may still be finite): the caller then
    /// checks every element.
    func provablyFinite() throws(EvaluationError) -> Bool {
        // A deferred constant not kept in memory would be computed twice (here and for the samples).
        guard source.dataType == .float, count > 0, bytes.deferred?.isResident ?? true else { return false }
        var largestBits: UInt32 = 0
        do {
            try bytes.withTransientBytes { raw in largestBits = Self.largestMagnitudeBits(raw, count: count) }
            bytes.releaseResidentPages()
        } catch {
            return false
        }
        guard largestBits < 0x7f80_0000 else { return false }
        let largest = Double(Float(bitPattern: largestBits))
        guard let operation else { return true }
        var operandLargest = 0.0
        var operandSmallest = Double.infinity
        for value in operation.operand.values {
            guard value.isFinite else { return false }
            operandLargest = max(operandLargest, abs(value))
            operandSmallest = min(operandSmallest, abs(value))
        }
        let bound: Double
        switch operation.op {
        case .add, .subtract: bound = largest + operandLargest
        case .multiply: bound = largest * operandLargest
        default:
            guard operation.constantOnLeft, operandSmallest > 0 else { return false }
            bound = largest / operandSmallest
        }
        // A margin for the rounding of the one float64 operation; a value at most the largest
        // float rounds to a finite float.
        return bound * (1 + 1e-9) <= Double(Float.greatestFiniteMagnitude)
    }

    /// The largest of `count` float32 magnitudes at `raw` (unaligned), as bits: the magnitude's
    /// bits order non-negative floats as their values do, and put infinities and NaNs above
    /// every finite one. Eight lanes at a time, in a local, so the loop vectorizes.
    static func largestMagnitudeBits(_ raw: UnsafeRawBufferPointer, count: Int) -> UInt32 {
        let magnitude: UInt32 = 0x7fff_ffff
        var lanes = SIMD8<UInt32>(repeating: 0)
        var index = 0
        while index &+ 8 <= count {
            let bits = raw.loadUnaligned(fromByteOffset: index &* 4, as: SIMD8<UInt32>.self)
            lanes = pointwiseMax(lanes, bits & magnitude)
            index &+= 8
        }
        var largest = lanes.max()
        while index < count {
            largest = max(largest, raw.loadUnaligned(fromByteOffset: index &* 4, as: UInt32.self) & magnitude)
            index &+= 1
        }
        return largest
    }

    /// Combines `count` constant elements at `values` with the operand in place, with
    /// `broadcasting`'s loop.
    private func apply(_ operation: Operation, to values: UnsafeMutablePointer<Double>, count: Int, _ operandAt: Int, _ operandStep: Int) {
        operation.operand.values.withUnsafeBufferPointer { operand in
            let other = operand.baseAddress! + operandAt
            func run(_ combine: (Double, Double) -> Double) {
                if operation.constantOnLeft {
                    NDArray.combineRun(count, values, 1, other, operandStep, into: values, combine)
                } else {
                    NDArray.combineRun(count, other, operandStep, values, 1, into: values, combine)
                }
            }
            switch operation.op {
            case .add: run(+)
            case .subtract: run(-)
            case .multiply: run(*)
            default: run(/)
            }
        }
    }
}

/// A value of an expression evaluated with streaming allowed (`Scope.evaluateStreaming`).
enum StreamableValue {
    /// Evaluated as usual.
    case value(EvalValue)
    /// A large tensor left to be computed a chunk at a time (of its constant's element type:
    /// arithmetic keeps a tensor's type).
    case streamed(StreamedTensor)
}

extension RuleProgram.Scope {
    /// `expression`'s value, where a large constant combined element-wise with small operands
    /// (`w * reshape(k, ...)`, reshapes of either) is left streamed rather than computed whole.
    /// Everything else is evaluated as `evaluate` does, in the same order, with the same work
    /// counted, the same tape recorded or replayed and the same errors: a streamed value's
    /// elements are the whole evaluation's, and an operation streaming cannot do (a second one,
    /// a broadcast that grows the constant) computes the whole value as `evaluate` would.
    mutating func evaluateStreaming(_ expression: LoweredExpression) throws(EvaluationError) -> StreamableValue {
        switch expression {
        case .valueVariable(let index, _):
            guard let streamed = streamableConstant(index) else { return .value(try evaluate(expression)) }
            try charge(expression, elements: streamed.count)
            return .streamed(streamed)
        case .call(let function, let arguments) where Self.streamsThrough(function, arguments):
            let first = try evaluateStreaming(arguments[0])
            let target = try evaluate(arguments[1])
            guard case .streamed(var streamed) = first,
                  let newShape = try? target.asIntegers(),
                  let shape = try? NDArray.reshapedShape(streamed.shape, count: streamed.count, to: newShape) else {
                let value = try function.call([try materialized(first), target])
                try charge(expression, elements: value.elementCount)
                return .value(value)
            }
            streamed.shape = shape
            if streamed.operation == nil { streamed.shapeAtOperation = shape }
            try charge(expression, elements: streamed.count)
            return .streamed(streamed)
        case .binary(let op, let lhs, let rhs) where Self.streamsThrough(op):
            let left = try evaluateStreaming(lhs)
            let right: StreamableValue
            if case .value = left { right = try evaluateStreaming(rhs) } else { right = .value(try evaluate(rhs)) }
            var result: StreamableValue?
            switch (left, right) {
            case (.streamed(let streamed), .value(let other)) where streamed.operation == nil:
                result = try combine(streamed, op, other, constantOnLeft: true)
            case (.value(let other), .streamed(let streamed)) where streamed.operation == nil:
                result = try combine(streamed, op, other, constantOnLeft: false)
            default:
                break
            }
            if let result {
                if case .streamed(let streamed) = result { try charge(expression, elements: streamed.count) }
                return result
            }
            let value = try apply(op, try materialized(left), try materialized(right))
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
        case .streamed(let streamed): return .tensor(try streamed.materialize(), streamed.source.dataType)
        }
    }

    /// `streamed op other` (or `other op streamed`) as a streamed value; nil when streaming cannot
    /// compute it (`other` is not a number or a tensor, or does not broadcast to the constant's
    /// shape without growing it). Tensors of two element types are `arithmetic`'s error.
    private func combine(_ streamed: StreamedTensor, _ op: BinaryOperator, _ other: EvalValue,
                         constantOnLeft: Bool) throws(EvaluationError) -> StreamableValue? {
        switch other {
        case .tensor, .integer, .real: break
        default: return nil
        }
        let (operand, otherType) = try other.asTensor()
        let type = streamed.source.dataType
        _ = try constantOnLeft ? combinedElementType(type, otherType) : combinedElementType(otherType, type)
        guard let shape = try? NDArray.broadcastShape(streamed.shape, operand.shape), shape == streamed.shape else { return nil }
        var result = streamed
        result.shapeAtOperation = streamed.shape
        result.operation = StreamedTensor.Operation(op: op, operand: operand, constantOnLeft: constantOnLeft)
        return .streamed(result)
    }

    /// Whether `value` is a constant of at least `minimum` bytes, its size read in place.
    private func isLargeConstant(_ value: Value, _ minimum: Int) -> Bool {
        // The tensor's box, read in place: no copy of the tensor, no generic closure.
        guard let box = value.constantTensorBox(freezeInitializerInputs: context.freezeInitializerInputs),
              let count = box.value.elementCount, let bytes = box.value.dataType.rawByteCount(elements: count) else { return false }
        return bytes >= minimum
    }

    /// Whether `evaluateStreaming` may stream anything of an expression whose candidates
    /// (`RuleProgram.streamCandidates`) are the value variables `candidates`: one of them is
    /// bound to a constant large enough (as `streamableConstant` judges it before reading).
    /// When none is, `evaluateStreaming` evaluates as `evaluate` does, and `evaluate` is cheaper.
    func mayStream(_ candidates: [Int]) -> Bool {
        if replaying { return true }
        let minimum = EvaluationLimits.current.minimumDeferredBytes
        return candidates.contains { index in graphValue(index).map { isLargeConstant($0, minimum) } ?? false }
    }

    /// Whether `evaluateStreaming` streams through a call: the built-in `reshape` of a value and
    /// a shape.
    static func streamsThrough(_ function: ResolvedFunction, _ arguments: [LoweredExpression]) -> Bool {
        arguments.count == 2 && function.name == "reshape" && function.isBuiltin
    }

    /// Whether `evaluateStreaming` streams through a binary operation: `+ - * /`.
    static func streamsThrough(_ op: BinaryOperator) -> Bool {
        op == .add || op == .subtract || op == .multiply || op == .divide
    }

    /// The value variables `evaluateStreaming` may stream in `expression`: those it reaches
    /// through `+ - * /` operands and the first argument of the built-in `reshape`.
    static func streamCandidates(_ expression: LoweredExpression) -> [Int] {
        switch expression {
        case .valueVariable(let index, _):
            return [index]
        case .call(let function, let arguments) where Self.streamsThrough(function, arguments):
            return streamCandidates(arguments[0])
        case .binary(let op, let lhs, let rhs) where Self.streamsThrough(op):
            return streamCandidates(lhs) + streamCandidates(rhs)
        default:
            return []
        }
    }

    /// The constant a variable is bound to, read (recorded or replayed) as `lookup` reads it, to
    /// stream when it is large enough (at least `EvaluationLimits.minimumDeferredBytes`, as what
    /// is computed from it is deferred); nil otherwise, with nothing read.
    private mutating func streamableConstant(_ index: Int) -> StreamedTensor? {
        let box: Box<Tensor>
        let minimum = EvaluationLimits.current.minimumDeferredBytes
        if replaying {
            guard cursor < tape.count, case .tensor(let recorded) = tape[cursor] else { return nil }
            box = recorded
        } else {
            // Most constants of a match are small: their size is read in place, and only a large
            // one is streamed.
            guard let value = graphValue(index), isLargeConstant(value, minimum),
                  let constant = value.constantTensorBox(freezeInitializerInputs: context.freezeInitializerInputs) else { return nil }
            box = constant
        }
        guard let streamed = StreamedTensor(source: box.value), streamed.bytes.count >= minimum else {
            return nil
        }
        if replaying {
            cursor += 1
        } else if recording {
            tape.append(.tensor(box))
        }
        return streamed
    }
}
