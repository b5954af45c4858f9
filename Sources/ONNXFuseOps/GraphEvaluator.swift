import ONNXFuseIR

/// Runs a graph with the reference kernels: what `--verify` compares a model's results with.
///
/// Nodes run in graph order (which is topological); a value is dropped after its last reader,
/// so a deep network holds a few activations at a time, not all of them. A graph input takes the
/// tensor given for its name, else its initializer (an overridable default); every other
/// initializer is read as stored.
public struct GraphEvaluator {
    /// The kernels.
    public let registry: OperatorRegistry
    /// The model's default-domain operator set version, which the kernels follow.
    public let opsetVersion: Int64
    /// The most work a run may do, in `estimatedWork` units (about one per multiply-add): past
    /// it, the run stops with an error instead of taking minutes.
    public var workLimit = Int.max
    /// The most elements any one value may have.
    public var elementLimit = Int.max

    /// An evaluator for the graphs of `model`.
    public init(model: Model, registry: OperatorRegistry = .standard) {
        self.registry = registry
        opsetVersion = model.opsetVersion(domain: "") ?? 1
    }

    /// Evaluates one node on `inputs` within the budget (`workLimit` for `work`, the work done so
    /// far, which it adds to; `elementLimit`), at `version` of its operator set (the default
    /// domain's by default).
    public func evaluate(_ node: Node, inputs: [TensorValue?], version: Int64? = nil, work: inout Int) throws(OperatorError) -> [TensorValue?] {
        try registry.evaluate(node, inputs: inputs, opsetVersion: version ?? opsetVersion, workLimit: workLimit,
                              elementLimit: elementLimit, work: &work)
    }

    /// About how many element operations `node` takes on `inputs`: multiply-adds for the
    /// convolutions and matrix products, window reads for pools and LRN, else the elements read
    /// (Einsum too: its kernel, like the others that count their steps, checks the exact count
    /// against `OperatorContext.workLimit`).
    public static func estimatedWork(of node: Node, inputs: [TensorValue?]) -> Int {
        var read = 0
        for case let input? in inputs { read = read &+ input.count }
        let shapes = inputs.map { $0?.shape }
        // The product, saturating at Int.max (0 when a factor is: an empty operand is no work).
        func multiplied(_ factors: [Int]) -> Int {
            var result = 1
            for factor in factors {
                let (p, o) = result.multipliedReportingOverflow(by: max(factor, 0))
                if o { return factors.contains(0) ? 0 : Int.max }
                result = p
            }
            return result
        }
        func intsAttribute(_ name: String) -> [Int]? {
            guard case .ints(let values)? = node.attribute(name)?.value else { return nil }
            return values.map { Int(clamping: $0) }
        }
        // A Conv's output positions along each axis, from its input sizes and kernel: the pads,
        // dilations and strides as ONNX defines them (auto_pad SAME: the input size over the
        // stride, rounded up). Saturating: the attributes are not checked yet.
        func convolutionOutputSizes(_ sizes: [Int], kernel: [Int]) -> [Int] {
            let n = sizes.count
            let strides = intsAttribute("strides") ?? [], dilations = intsAttribute("dilations") ?? []
            let pads = intsAttribute("pads") ?? []
            var autoPad = "NOTSET"
            if case .string(let bytes)? = node.attribute("auto_pad")?.value { autoPad = String(decoding: bytes, as: UTF8.self) }
            return sizes.indices.map { i in
                let size = max(sizes[i], 0)
                let stride = i < strides.count ? max(strides[i], 1) : 1
                if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" { return size / stride + (size % stride == 0 ? 0 : 1) }
                func saturatingSum(_ a: Int, _ b: Int) -> Int {
                    let (sum, overflow) = a.addingReportingOverflow(b)
                    return overflow ? Int.max : sum
                }
                let padded = autoPad == "VALID" || pads.count != 2 * n
                    ? size : saturatingSum(saturatingSum(size, max(pads[i], 0)), max(pads[i + n], 0))
                let dilation = i < dilations.count ? max(dilations[i], 1) : 1
                let taps = i < kernel.count ? max(kernel[i], 1) : 1
                // The kernel's extent less one; the positions where it fits, one per stride step.
                let (span, overflow) = dilation.multipliedReportingOverflow(by: taps - 1)
                guard !overflow, span < padded else { return 0 }
                return (padded - span - 1) / stride + 1
            }
        }
        switch node.opType {
        case "Conv", "ConvInteger", "QLinearConv", "ConvTranspose":
            // x [N, C, spatial...], w [M, C/group, kernel...] (ConvTranspose: [C, M/group, ...]).
            // A Conv computes each output position; a ConvTranspose scatters each input position.
            let wIndex = node.opType == "QLinearConv" ? 3 : 1
            guard let x = shapes.first ?? nil, wIndex < shapes.count, let w = shapes[wIndex], x.count >= 2, w.count >= 2 else { return read }
            var spatial = Array(x.dropFirst(2))
            if node.opType != "ConvTranspose" {
                spatial = convolutionOutputSizes(spatial, kernel: Array(w.dropFirst(2)))
            }
            return max(multiplied([x[0], w[0]] + spatial + Array(w.dropFirst())), read)
        case "AveragePool", "MaxPool", "LpPool":
            // x [N, C, spatial...]: each output position reads its window.
            guard let x = shapes.first ?? nil, x.count >= 3, let kernel = intsAttribute("kernel_shape") else { return read }
            return max(multiplied([x[0], x[1]] + convolutionOutputSizes(Array(x.dropFirst(2)), kernel: kernel) + kernel), read)
        case "LRN":
            var size = 1
            if case .int(let value)? = node.attribute("size")?.value { size = Int(clamping: value) }
            return max(multiplied([read, size]), read)
        case "MatMul", "MatMulInteger", "QLinearMatMul":
            // numpy's matmul: [..., M, K] × [..., K, N] (a 1-D operand is a row or a column),
            // the batch dimensions broadcast.
            let bIndex = node.opType == "QLinearMatMul" ? 3 : 1
            guard let a = shapes.first ?? nil, bIndex < shapes.count, let b = shapes[bIndex], !a.isEmpty, !b.isEmpty else { return read }
            let (m, k) = a.count == 1 ? (1, a[0]) : (a[a.count - 2], a[a.count - 1])
            let n = b.count == 1 ? 1 : b[b.count - 1]
            let aBatch = Array(a.dropLast(2)), bBatch = Array(b.dropLast(2))
            let rank = max(aBatch.count, bBatch.count)
            let batch = (0..<rank).map { i -> Int in
                let ai = i < rank - aBatch.count ? 1 : aBatch[i - (rank - aBatch.count)]
                let bi = i < rank - bBatch.count ? 1 : bBatch[i - (rank - bBatch.count)]
                return ai == 1 ? bi : ai  // broadcast: 1 stretches (to 0 too)
            }
            return max(multiplied(batch + [m, k, n]), read)
        case "Gemm":
            // A [M, K] (or [K, M] with transA), B [K, N] (or [N, K] with transB).
            guard let a = shapes.first ?? nil, shapes.count > 1, let b = shapes[1], a.count == 2, b.count == 2 else { return read }
            var transB = false
            if case .int(let flag)? = node.attribute("transB")?.value { transB = flag != 0 }
            return max(multiplied(a + [transB ? b[0] : b[1]]), read)
        default:
            return read
        }
    }

    /// The graph outputs of `graph`, in order, for `inputs` (tensors by graph input name).
    /// Throws when a node has no kernel, a kernel refuses its inputs, or a graph input has
    /// neither a tensor nor an initializer.
    public func run(_ graph: Graph, inputs: [String: TensorValue]) throws(OperatorError) -> [TensorValue] {
        try runMeasuring(graph, inputs: inputs).outputs
    }

    /// `run`, and for each graph output the largest finite magnitude among the floating-point
    /// inputs of the node that computes it (0 for a graph input or a constant): the scale of the
    /// last rounding that made it, for `NumericTolerance.error(of:against:magnitude:)`.
    public func runMeasuring(_ graph: Graph, inputs: [String: TensorValue]) throws(OperatorError) -> (outputs: [TensorValue], operandMagnitudes: [Double]) {
        var work = 0
        var operandMagnitude: [ObjectIdentifier: Double] = [:]
        let outputValues = Set(graph.outputs.map { ObjectIdentifier($0.value) })
        var values: [ObjectIdentifier: TensorValue] = [:]
        for input in graph.inputs {
            if let given = inputs[input.name] {
                values[ObjectIdentifier(input)] = given
            } else if let tensor = input.initializer {
                values[ObjectIdentifier(input)] = try TensorValue(tensor: tensor)
            } else {
                throw OperatorError("graph input '\(input.name)' has no value")
            }
        }
        // How many reads each value has left; graph outputs are never dropped.
        var readsLeft: [ObjectIdentifier: Int] = [:]
        for node in graph.nodes {
            for case let input? in node.inputs { readsLeft[ObjectIdentifier(input), default: 0] += 1 }
        }
        for output in graph.outputs { readsLeft[ObjectIdentifier(output.value), default: 0] += 1 }
        func value(_ input: Value) throws(OperatorError) -> TensorValue {
            let key = ObjectIdentifier(input)
            if let known = values[key] { return known }
            guard let tensor = input.initializer else {
                throw OperatorError("'\(input.name)' has no value (a value of an enclosing graph, or not computed)")
            }
            let decoded = try TensorValue(tensor: tensor)
            values[key] = decoded
            return decoded
        }
        for node in graph.nodes {
            if node.attributes.contains(where: \.hasSubgraphs) {
                throw OperatorError("\(node.opType) '\(node.name ?? "")' has subgraphs, which the evaluator does not run")
            }
            var arguments: [TensorValue?] = []
            arguments.reserveCapacity(node.inputs.count)
            for input in node.inputs { arguments.append(try input.map { input throws(OperatorError) in try value(input) }) }
            let results = try evaluate(node, inputs: arguments, work: &work)
            for (output, result) in zip(node.outputs, results) {
                if let output, let result { values[ObjectIdentifier(output)] = result }
            }
            if node.outputs.contains(where: { $0.map { outputValues.contains(ObjectIdentifier($0)) } ?? false }) {
                var magnitude = 0.0
                for case let argument? in arguments {
                    guard case .reals(let reals) = argument.elements else { continue }
                    for element in reals where element.isFinite { magnitude = max(magnitude, abs(element)) }
                }
                for case let output? in node.outputs { operandMagnitude[ObjectIdentifier(output)] = magnitude }
            }
            for case let input? in node.inputs {
                let key = ObjectIdentifier(input)
                readsLeft[key, default: 1] -= 1
                if readsLeft[key] == 0 { values[key] = nil }
            }
        }
        var outputs: [TensorValue] = []
        for output in graph.outputs { outputs.append(try value(output.value)) }
        return (outputs, graph.outputs.map { operandMagnitude[ObjectIdentifier($0.value)] ?? 0 })
    }
}

extension OperatorRegistry {
    /// Inputs with at most this many elements are given to the size check's inference as
    /// values; larger ones by their shape.
    static let valueFactsElementLimit = 1 << 16

    /// Evaluates `node` on constant inputs within a budget: `work` (the work done so far, in
    /// `GraphEvaluator.estimatedWork` units) may not pass `workLimit`, and no output may hold
    /// more than `elementLimit` elements. Throws what `evaluate(_:inputs:opsetVersion:)` throws,
    /// or the limit a node would pass.
    ///
    /// What an operator could make from small inputs (a Range or an Expand to 10^10 elements) is
    /// refused before its kernel allocates it: the output shapes are first inferred from the
    /// inputs.
    public func evaluate(_ node: Node, inputs: [TensorValue?], opsetVersion: Int64, workLimit: Int, elementLimit: Int,
                         work: inout Int) throws(OperatorError) -> [TensorValue?] {
        let cost = GraphEvaluator.estimatedWork(of: node, inputs: inputs)
        let (total, overflow) = work.addingReportingOverflow(cost)
        guard !overflow, total <= workLimit else {
            throw OperatorError("\(node.opType) '\(node.name ?? "")' would take the evaluation past its work limit (\(workLimit))")
        }
        work = total
        if elementLimit < Int.max, let infer = inference(node.opType, domain: node.isDefaultDomain ? "" : node.domain!) {
            // Small inputs as values (a shape, a Range's bounds); large ones by their shape alone,
            // which is all an element-wise operation's inference reads.
            let facts = inputs.map { input in
                input.map { $0.count <= Self.valueFactsElementLimit
                    ? ValueFacts(constant: $0) : ValueFacts(elementType: $0.dataType, shape: $0.shape.map { .value(Int64($0)) }) }
            }
            var context = InferenceContext(node: OperatorContext(node: node, opsetVersion: opsetVersion), inputs: facts,
                                           outputCount: node.outputs.count, symbols: SymbolAllocator())
            if (try? infer(&context)) != nil {
                for (index, facts) in context.outputs.enumerated() where index < node.outputs.count && node.outputs[index] != nil {
                    guard let shape = facts.staticShape else { continue }
                    var count = 1
                    for size in shape {
                        let (product, overflow) = count.multipliedReportingOverflow(by: max(size, 0))
                        count = overflow ? Int.max : product
                    }
                    if count > elementLimit {
                        throw OperatorError("\(node.opType) '\(node.name ?? "")' would compute \(count) elements, more than the evaluation's limit (\(elementLimit))")
                    }
                }
            }
        }
        // The kernels that count their steps (Einsum, attention, and the others the estimate
        // only approximates) check them against what is left of the budget.
        var context = OperatorContext(node: node, opsetVersion: opsetVersion)
        context.workLimit = workLimit - (total - cost)
        let results = try evaluate(node, inputs: inputs, context: context)
        for case let result? in results where result.count > elementLimit {
            throw OperatorError("\(node.opType) '\(node.name ?? "")' computes \(result.count) elements, more than the evaluation's limit (\(elementLimit))")
        }
        return results
    }
}

/// Seeded random tensors for a graph's inputs, the same for the same seed on every machine.
///
/// A symbolic dimension takes a small size, the same for the same symbol (`smallestSymbolSize`,
/// then one more for each symbol, in the order they are first seen); an unknown one takes the
/// smallest size. Floats are multiples of 1/64 in
/// [-2, 2] (exact in every float type, bfloat16 included); integers are 0 or 1 (they are often
/// indices into small tables, such as BERT's two token types, or masks); booleans are fair coins.
public struct SeededInputs {
    /// The sizes given to symbolic dimensions so far.
    public private(set) var symbolSizes: [String: Int] = [:]
    /// The size of the first symbol (2 by default).
    public let smallestSymbolSize: Int
    /// How far values spread.
    public enum Spread: Sendable {
        /// Floats are multiples of 1/64 in [-2, 2]; integers 0 or 1 (indices anywhere in the
        /// table they index).
        case narrow
        /// Half the floats as `narrow`, a quarter up to ±32,768 and (but for float16, which ends at
        /// 65,504) a quarter up to about ±8.8 × 10^12 (m/8 × 2^s, m in [-64, 64], exact in every
        /// float type); integers a quarter in [-64, 64], a quarter anywhere in their type's range
        /// within ±2^40, half within 64 of either end of it (indices anywhere in [-n, n)).
        case large
        /// Floats anywhere in [-4, 4), rounded to the type (values a narrower type cannot hold);
        /// integers as `large`.
        case fine
    }
    /// How far values spread (`narrow` by default).
    public var spread = Spread.narrow
    private var generator: SeededRandom

    /// A generator of inputs from `seed`, symbols sized from `smallestSymbolSize` up.
    public init(seed: UInt64, smallestSymbolSize: Int = 2) {
        generator = SeededRandom(seed: seed)
        self.smallestSymbolSize = max(1, smallestSymbolSize)
    }

    /// A tensor of `elementType` and `shape`; nil for an element type it does not make (strings,
    /// uint64) or an unknown rank. A value that indexes a table of n entries passes n as
    /// `integerBound`, so that its integers stay inside it.
    public mutating func tensor(_ elementType: DataType, shape: [Dimension]?, integerBound: Int? = nil) -> TensorValue? {
        guard let shape else { return nil }
        let sizes = shape.map { dimension -> Int in
            switch dimension {
            case .value(let size): return Int(clamping: size)
            case .param(let symbol):
                if let size = symbolSizes[symbol] { return size }
                let size = smallestSymbolSize + symbolSizes.count
                symbolSizes[symbol] = size
                return size
            case .unknown: return smallestSymbolSize
            }
        }
        guard sizes.allSatisfy({ $0 >= 0 }) else { return nil }
        var count = 1
        for size in sizes {
            let (product, overflow) = count.multipliedReportingOverflow(by: size)
            guard !overflow, product <= 1 << 26 else { return nil }
            count = product
        }
        switch TensorValue.kind(of: elementType) {
        case .real:
            switch spread {
            case .narrow:
                return TensorValue(elementType, shape: sizes, reals: (0..<count).map { _ in Double(Int(next() % 257) - 128) / 64 })
            case .large:
                // float16 ends at 65,504; the wider types take values up to about 10^13 too.
                let wide = elementType != .float16
                return TensorValue(elementType, shape: sizes, reals: (0..<count).map { _ in
                    let bits = next()
                    if bits & 1 == 0 { return Double(Int((bits >> 2) % 257) - 128) / 64 }
                    // m/8 × 2^s: exact in every float type.
                    let m = Double(Int((bits >> 2) % 129) - 64) / 8
                    let s = bits & 2 == 0 || !wide ? Int((bits >> 32) % 10) : 10 + Int((bits >> 32) % 31)
                    return m * Double(1 << s)
                })
            case .fine:
                return TensorValue(elementType, shape: sizes, reals: (0..<count).map { _ in Double(next() >> 11) / Double(1 << 53) * 8 - 4 })
            }
        case .integer:
            if let integerBound {
                // Indices into a table of n entries: [0, n), or [-n, n) spread further.
                let n = UInt64(max(1, integerBound))
                return TensorValue(elementType, shape: sizes, integers: (0..<count).map { _ in
                    spread == .narrow ? Int64(next() % n) : Int64(next() % (2 * n)) - Int64(n)
                })
            }
            guard spread != .narrow else {
                return TensorValue(elementType, shape: sizes, integers: (0..<count).map { _ in Int64(next() & 1) })
            }
            let range = Self.spreadIntegerRange(elementType)
            let width = UInt64(range.upperBound - range.lowerBound) + 1
            return TensorValue(elementType, shape: sizes, integers: (0..<count).map { _ in
                let bits = next()
                switch bits & 3 {
                // Small (masks, counts).
                case 0: return max(range.lowerBound, Int64((bits >> 2) % 129) - 64)
                // Anywhere in the range.
                case 1: return range.lowerBound + Int64((bits >> 2) % width)
                // Near either end, where sums and products overflow.
                default:
                    let offset = Int64((bits >> 2) % 64)
                    return bits & 4 == 0 ? range.upperBound - offset : max(range.lowerBound, range.lowerBound + offset)
                }
            })
        case .boolean:
            return TensorValue.bool((0..<count).map { _ in next() & 1 == 1 }, shape: sizes)
        default:
            return nil
        }
    }

    /// The integers `large` and `fine` draw from for `type`: its whole range, within ±2^40 (an
    /// int32 sum can overflow).
    static func spreadIntegerRange(_ type: DataType) -> ClosedRange<Int64> {
        switch type {
        case .int8: return -128...127
        case .uint8: return 0...255
        case .int16: return -32_768...32_767
        case .uint16: return 0...65_535
        case .int32: return Int64(Int32.min)...Int64(Int32.max)
        case .uint32: return 0...Int64(UInt32.max)
        case .uint64: return 0...(1 << 40)
        default: return -(1 << 40)...(1 << 40)
        }
    }

    private mutating func next() -> UInt64 { generator.next() }
}

/// SplitMix64: a small, fast random generator that gives the same numbers for the same seed on
/// every machine, so a seed names the same inputs.
public struct SeededRandom: RandomNumberGenerator {
    /// The generator's state.
    public var state: UInt64
    /// A generator starting from `seed`.
    public init(seed: UInt64) { state = seed }
    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// How far a result may be from the expected one, by element type (docs/operators.md,
/// "Verification"): relative to the expected tensor's magnitude (its largest finite absolute
/// value, at least 1e-30), 1e-5 for float, 1e-12 for double, 4 ulp at 1 for float16 (4 × 2^-10)
/// and bfloat16 (4 × 2^-7); integers, booleans and strings exactly. NaNs must be where they were;
/// infinities must be equal; -0 equals +0.
public enum NumericTolerance {
    /// The relative tolerance of `dataType`; 0 for exact types.
    public static func relative(for dataType: DataType) -> Double {
        switch dataType {
        case .float: return 1e-5
        case .double: return 1e-12
        case .float16: return 4.0 / 1024
        case .bfloat16: return 4.0 / 128
        default: return 0
        }
    }

    /// The error of `actual` against `expected` relative to the expected tensor's magnitude, or
    /// to `magnitude` when that is larger (the magnitude of the computation that made it)
    /// (0 for equal tensors; infinity for a different type, shape, NaN or infinity, or any
    /// difference in an exact type).
    public static func error(of actual: TensorValue, against expected: TensorValue, magnitude atLeast: Double = 0) -> Double {
        guard actual.dataType == expected.dataType, actual.shape == expected.shape else { return .infinity }
        switch (actual.elements, expected.elements) {
        case (.reals(let a), .reals(let e)):
            var magnitude = max(1e-30, atLeast)
            for value in e where value.isFinite { magnitude = max(magnitude, abs(value)) }
            var worst = 0.0
            for (x, y) in zip(a, e) {
                if x.isNaN || y.isNaN {
                    if x.isNaN != y.isNaN { return .infinity }
                    continue
                }
                if x.isInfinite || y.isInfinite {
                    if x != y { return .infinity }
                    continue
                }
                worst = max(worst, abs(x - y) / magnitude)
            }
            return worst
        default:
            return actual == expected ? 0 : .infinity
        }
    }

    /// Whether `actual` is within the tolerance of its type of `expected`.
    public static func accepts(_ actual: TensorValue, against expected: TensorValue) -> Bool {
        error(of: actual, against: expected) <= relative(for: expected.dataType)
    }
}
