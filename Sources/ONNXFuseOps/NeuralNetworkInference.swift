import ONNXFuseIR

// Inference of recurrent networks, quantization (kernels: NeuralNetworkQuantization.swift),
// attention, rotary embedding, control flow, detection and sampling operators, Fourier
// transforms and random generators (the random operators have no kernel: they are not
// deterministic).

extension NeuralNetworkKit {
    /// Registers this file's operators in `registry`.
    static func registerInferenceOnlyOperators(_ registry: inout OperatorRegistry) {
        registry.register(["RNN", "GRU", "LSTM"], inference: recurrentInference)
        registry.register(["QuantizeLinear"], inference: quantizeLinearInference)
        registry.register(["DequantizeLinear"], inference: dequantizeLinearInference)
        registry.register(["DynamicQuantizeLinear"], inference: dynamicQuantizeLinearInference)
        registry.register(["Attention"], inference: attentionInference)
        registry.register(["RotaryEmbedding"], inference: sameShapeInference)
        registry.register(["If"], inference: ifInference)
        registry.register(["Loop"], inference: loopInference)
        registry.register(["Scan"], inference: scanInference)
        registry.register(["NonMaxSuppression"], inference: nonMaxSuppressionInference)
        registry.register(["RoiAlign"], inference: roiAlignInference)
        registry.register(["GridSample"], inference: gridSampleInference)
        registry.register(["AffineGrid"], inference: affineGridInference)
        registry.register(["DFT"], inference: dftInference)
        registry.register(["STFT"], inference: stftInference)
        registry.register(["RandomNormal", "RandomUniform"], inference: randomInference)
        registry.register(["RandomNormalLike", "RandomUniformLike", "Bernoulli"], inference: randomLikeInference)
        registry.register(["Multinomial"], inference: multinomialInference)
    }

    // MARK: - Recurrent networks

    static let recurrentInference: InferenceFunction = { context throws(OperatorError) in
        let x = context.input(0)
        let type = x?.elementType
        let directions: Int64
        switch try context.node.string("direction") ?? "forward" {
        case "forward", "reverse": directions = 1
        case "bidirectional": directions = 2
        case let other: throw OperatorError("\(context.node.opType): direction '\(other)' is invalid")
        }
        let layout = context.node.opsetVersion >= 14 ? try context.node.int("layout", default: 0) : 0
        // hidden_size, else the last dimension of R (num_directions, gates * hidden, hidden).
        let hidden: Dimension
        if let h = try context.node.int("hidden_size") {
            guard h > 0 else { throw OperatorError("\(context.node.opType): hidden_size must be positive") }
            hidden = .value(h)
        } else if let r = context.input(2)?.shape, r.count == 3 {
            hidden = r[2]
        } else {
            hidden = context.freshDimension()
        }
        var sequence: Dimension = context.freshDimension(), batch: Dimension = context.freshDimension()
        if let shape = x?.shape {
            guard shape.count == 3 else { throw OperatorError("\(context.node.opType): X must have rank 3") }
            sequence = layout == 0 ? shape[0] : shape[1]
            batch = layout == 0 ? shape[1] : shape[0]
        }
        let d: Dimension = .value(directions)
        context.setOutput(0, type: type, shape: layout == 0 ? [sequence, d, batch, hidden] : [batch, sequence, d, hidden])
        let state: [Dimension] = layout == 0 ? [d, batch, hidden] : [batch, d, hidden]
        context.setOutput(1, type: type, shape: state)
        if context.node.opType == "LSTM" { context.setOutput(2, type: type, shape: state) }
    }

    // MARK: - Quantization

    static let quantizeLinearInference: InferenceFunction = { context throws(OperatorError) in
        var type: DataType = .uint8
        if let zeroPoint = context.input(2) {
            guard let t = zeroPoint.elementType else {
                context.setOutput(0, type: nil, shape: context.input(0)?.shape)
                return
            }
            type = t
        } else if context.node.opsetVersion >= 21, let t = try dataTypeAttribute(context.node, "output_dtype") {
            type = t
        }
        context.setOutput(0, type: type, shape: context.input(0)?.shape)
    }

    static let dequantizeLinearInference: InferenceFunction = { context throws(OperatorError) in
        var type: DataType? = .float
        if context.node.opsetVersion >= 19 { type = context.input(1)?.elementType }
        if context.node.opsetVersion >= 23, let t = try dataTypeAttribute(context.node, "output_dtype") { type = t }
        context.setOutput(0, type: type, shape: context.input(0)?.shape)
    }

    static let dynamicQuantizeLinearInference: InferenceFunction = { context throws(OperatorError) in
        context.setOutput(0, type: .uint8, shape: context.input(0)?.shape)
        context.setOutput(1, type: .float, shape: [])
        context.setOutput(2, type: .uint8, shape: [])
    }

    // MARK: - Attention

    static let attentionInference: InferenceFunction = { context throws(OperatorError) in
        let q = context.input(0), k = context.input(1), v = context.input(2)
        let type = q?.elementType
        let qHeadsAttribute = try context.node.int("q_num_heads"), kvHeadsAttribute = try context.node.int("kv_num_heads")
        if let h = qHeadsAttribute, h <= 0 { throw OperatorError("Attention: q_num_heads must be positive") }
        if let h = kvHeadsAttribute, h <= 0 { throw OperatorError("Attention: kv_num_heads must be positive") }
        let symbols = context
        let fresh = { symbols.freshDimension() }
        // Per operand: batch, heads, sequence, head size (4-D, or 3-D split by the head counts).
        func split(_ shape: [Dimension]?, heads: Int64?) -> (batch: Dimension, heads: Dimension, sequence: Dimension, size: Dimension)? {
            guard let shape else { return nil }
            if shape.count == 4 { return (shape[0], shape[1], shape[2], shape[3]) }
            guard shape.count == 3 else { return nil }
            let size = heads.flatMap { divideDimension(shape[2], by: $0) } ?? fresh()
            return (shape[0], heads.map { .value($0) } ?? fresh(), shape[1], size)
        }
        let qs = split(q?.shape, heads: qHeadsAttribute), ks = split(k?.shape, heads: kvHeadsAttribute)
        let vs = split(v?.shape, heads: kvHeadsAttribute)
        // Y: 4-D (B, q_heads, q_seq, v_head_size), 3-D (B, q_seq, q_heads * v_head_size).
        if let shape = q?.shape, let qs {
            if shape.count == 4 {
                context.setOutput(0, type: type, shape: [qs.batch, qs.heads, qs.sequence, vs?.size ?? fresh()])
            } else {
                var hidden: Dimension = fresh()
                if let vShape = v?.shape, vShape.count == 3, let qh = qHeadsAttribute, let kvh = kvHeadsAttribute {
                    if qh == kvh { hidden = vShape[2] } else if let size = divideDimension(vShape[2], by: kvh), let h = multiplyDimension(size, by: qh) { hidden = h }
                } else if let vs, let qh = qHeadsAttribute, case .value = vs.size, let h = multiplyDimension(vs.size, by: qh) {
                    hidden = h
                }
                context.setOutput(0, type: type, shape: [qs.batch, qs.sequence, hidden])
            }
        } else {
            context.setOutput(0, type: type, shape: nil)
        }
        // Total sequence: past + current key sequence.
        let past = context.input(4)?.shape
        var total: Dimension? = ks?.sequence
        if context.input(4) != nil {
            if let past, past.count == 4, let current = ks?.sequence { total = addDimensions(past[2], current) } else { total = nil }
        }
        let totalSequence = total ?? fresh()
        if let ks {
            context.setOutput(1, type: type, shape: [ks.batch, ks.heads, totalSequence, ks.size])
        } else {
            context.setOutput(1, type: type, shape: nil)
        }
        if let vs {
            context.setOutput(2, type: v?.elementType, shape: [vs.batch, vs.heads, totalSequence, vs.size])
        } else {
            context.setOutput(2, type: v?.elementType, shape: nil)
        }
        if let qs {
            context.setOutput(3, type: type, shape: [qs.batch, qs.heads, qs.sequence, totalSequence])
        } else {
            context.setOutput(3, type: type, shape: nil)
        }
    }

    // MARK: - Control flow

    /// The declared output types of a graph attribute.
    static func subgraphOutputTypes(_ context: OperatorContext, _ name: String) -> [TypeInfo?]? {
        guard let attribute = context.attribute(name), case .graph(let graph)? = attribute.value else { return nil }
        return graph.outputs.map { $0.info.type }
    }

    /// A tensor type as facts; only static dimensions are kept (a subgraph's symbols are its own).
    static func subgraphFacts(_ type: TypeInfo?, _ context: InferenceContext) -> ValueFacts? {
        guard let type, case .tensor(let elementType, let shape)? = type.kind else { return nil }
        return ValueFacts(elementType: elementType, shape: shape?.map { dim in
            if case .value = dim { return dim }
            return context.freshDimension()
        })
    }

    static let ifInference: InferenceFunction = { context throws(OperatorError) in
        guard let thenTypes = subgraphOutputTypes(context.node, "then_branch"),
              let elseTypes = subgraphOutputTypes(context.node, "else_branch") else { return }
        for index in 0..<min(context.outputs.count, thenTypes.count, elseTypes.count) {
            guard let a = subgraphFacts(thenTypes[index], context), let b = subgraphFacts(elseTypes[index], context),
                  a.elementType == b.elementType else { continue }
            var shape: [Dimension]? = nil
            if let sa = a.shape, let sb = b.shape, sa.count == sb.count {
                shape = zip(sa, sb).map { x, y in
                    if case .value(let u) = x, case .value(let w) = y, u == w { return x }
                    return context.freshDimension()
                }
            }
            context.setOutput(index, type: a.elementType, shape: shape)
        }
    }

    static let loopInference: InferenceFunction = { context throws(OperatorError) in
        // Inputs: M, cond, N loop-carried values; outputs: the N final values, then K scan outputs.
        let carried = max(0, context.inputs.count - 2)
        for index in 0..<min(carried, context.outputs.count) {
            // A loop-carried value keeps its type; its shape may change between iterations.
            context.setOutput(index, type: context.input(index + 2)?.elementType, shape: nil)
        }
        if let body = subgraphOutputTypes(context.node, "body") {
            for index in carried..<max(carried, context.outputs.count) where index + 1 < body.count {
                if let facts = subgraphFacts(body[index + 1], context) {
                    context.setOutput(index, type: facts.elementType, shape: facts.shape.map { [context.freshDimension()] + $0 })
                }
            }
        }
    }

    static let scanInference: InferenceFunction = { context throws(OperatorError) in
        guard let scanInputs = try context.node.int("num_scan_inputs"), scanInputs >= 1, scanInputs <= Int64(context.inputs.count) else {
            return
        }
        // Opset 8 has a sequence_lens input first, and a batch axis first on every value.
        let offset = context.node.opsetVersion < 9 ? 1 : 0
        let states = max(0, context.inputs.count - offset - Int(scanInputs))
        for index in 0..<min(states, context.outputs.count) {
            let facts = context.input(index + offset)
            context.setOutput(index, type: facts?.elementType, shape: facts?.shape)
        }
        // The number of iterations: the first scan input's length along its scan axis.
        var iterations: Dimension? = nil
        if let first = context.input(offset + states)?.shape {
            let inputAxes = try context.node.ints("scan_input_axes")
            let axisValue = offset == 1 ? 1 : (inputAxes?.first ?? 0)
            if let axis = try? normalizeAxis(axisValue, rank: first.count) { iterations = first[axis] }
        }
        var batch: Dimension? = nil
        if offset == 1, let first = context.input(offset)?.shape ?? context.input(offset + states)?.shape, !first.isEmpty {
            batch = first[0]
        }
        guard let body = subgraphOutputTypes(context.node, "body") else { return }
        let outputAxes = try context.node.ints("scan_output_axes")
        for index in states..<max(states, context.outputs.count) where index < body.count {
            guard let facts = subgraphFacts(body[index], context) else { continue }
            var shape: [Dimension]? = nil
            if let s = facts.shape {
                let sequence = iterations ?? context.freshDimension()
                if offset == 1 {
                    shape = [batch ?? context.freshDimension(), sequence] + s
                } else {
                    let axisValue = outputAxes.flatMap { index - states < $0.count ? $0[index - states] : nil } ?? 0
                    let axis = axisValue < 0 ? Int(axisValue) + s.count + 1 : Int(axisValue)
                    if axis >= 0 && axis <= s.count {
                        var result = s
                        result.insert(sequence, at: axis)
                        shape = result
                    }
                }
            }
            context.setOutput(index, type: facts.elementType, shape: shape)
        }
    }

    // MARK: - Detection and sampling

    static let nonMaxSuppressionInference: InferenceFunction = { context throws(OperatorError) in
        context.setOutput(0, type: .int64, shape: [context.freshDimension(), .value(3)])
    }

    static let roiAlignInference: InferenceFunction = { context throws(OperatorError) in
        let x = context.input(0)
        let rois = context.input(1)?.shape?.first ?? context.input(2)?.shape?.first ?? context.freshDimension()
        let channels = x?.shape.flatMap { $0.count == 4 ? $0[1] : nil } ?? context.freshDimension()
        let height = try context.node.int("output_height", default: 1), width = try context.node.int("output_width", default: 1)
        guard height > 0, width > 0 else { throw OperatorError("RoiAlign: output_height and output_width must be positive") }
        context.setOutput(0, type: x?.elementType ?? context.input(1)?.elementType,
                          shape: [rois, channels, .value(height), .value(width)])
    }

    static let gridSampleInference: InferenceFunction = { context throws(OperatorError) in
        let x = context.input(0), grid = context.input(1)?.shape
        guard let grid, grid.count >= 3 else {
            context.setOutput(0, type: x?.elementType, shape: nil)
            return
        }
        let batch = x?.shape?.first ?? grid[0]
        let channels = x?.shape.flatMap { $0.count >= 2 ? $0[1] : nil } ?? context.freshDimension()
        context.setOutput(0, type: x?.elementType, shape: [batch, channels] + Array(grid[1..<(grid.count - 1)]))
    }

    static let affineGridInference: InferenceFunction = { context throws(OperatorError) in
        let theta = context.input(0)
        let type = theta?.elementType
        let size = context.input(1)
        let count = size?.shapeValue?.count ?? size?.staticShape.flatMap { $0.count == 1 ? $0[0] : nil }
        guard let count, count == 4 || count == 5 else {
            context.setOutput(0, type: type, shape: nil)
            return
        }
        let values = size?.shapeValue
        let batch = theta?.shape?.first ?? values?[0] ?? context.freshDimension()
        let spatial: [Dimension] = (2..<count).map { values?[$0] ?? context.freshDimension() }
        context.setOutput(0, type: type, shape: [batch] + spatial + [.value(Int64(count - 2))])
    }

    // MARK: - Fourier transforms

    static let dftInference: InferenceFunction = { context throws(OperatorError) in
        let input = context.input(0)
        let type = input?.elementType
        guard let shape = input?.shape, shape.count >= 2 else {
            context.setOutput(0, type: type, shape: nil)
            return
        }
        let rank = shape.count
        let inverse = try context.node.int("inverse", default: 0) != 0
        let onesided = try context.node.int("onesided", default: 0) != 0
        var axisValue: Int64? = 1
        if context.node.opsetVersion >= 20 {
            if let axisInput = context.input(2) {
                axisValue = axisInput.constant.flatMap { try? $0.scalarInt64() } ?? axisInput.staticShapeValue?.first
            } else {
                axisValue = -2
            }
        } else {
            axisValue = try context.node.int("axis", default: 1)
        }
        let irfft = inverse && onesided
        var result = shape
        result[rank - 1] = .value(irfft ? 1 : 2)
        guard let axisValue, let axis = try? normalizeAxis(axisValue, rank: rank), axis < rank - 1 else {
            // Which axis changes is not known: every signal axis but the batch may.
            for index in 0..<(rank - 1) { result[index] = index == 0 ? shape[0] : context.freshDimension() }
            context.setOutput(0, type: type, shape: result)
            return
        }
        // The transform length: dft_length, else the axis (2 * (axis - 1) for IRFFT).
        var length: Dimension?
        if let lengthInput = context.input(1) {
            length = (lengthInput.constant.flatMap { try? $0.scalarInt64() }).map { .value($0) } ?? lengthInput.shapeValue?.first
        } else if irfft {
            length = staticValue(shape[axis]).flatMap { $0 >= 1 ? multiplyDimension(.value($0 - 1), by: 2) : nil }
        } else {
            length = shape[axis]
        }
        if onesided && !inverse {
            result[axis] = length.flatMap(staticValue).map { .value($0 / 2 + 1) } ?? context.freshDimension()
        } else {
            result[axis] = length ?? context.freshDimension()
        }
        context.setOutput(0, type: type, shape: result)
    }

    static let stftInference: InferenceFunction = { context throws(OperatorError) in
        let signal = context.input(0)
        let type = signal?.elementType
        let onesided = try context.node.int("onesided", default: 1) != 0
        let batch = signal?.shape?.first ?? context.freshDimension()
        func scalar(_ index: Int) -> Int64? {
            guard let facts = context.input(index) else { return nil }
            return facts.constant.flatMap { try? $0.scalarInt64() } ?? facts.staticShapeValue?.first
        }
        let frameLength: Int64? = scalar(3) ?? context.input(2)?.staticShape.flatMap { $0.count == 1 ? Int64($0[0]) : nil }
            ?? (context.input(2) == nil && context.input(3) == nil ? signal?.staticShape.flatMap { $0.count == 3 ? Int64($0[1]) : nil } : nil)
        let step = scalar(1)
        var frames: Dimension = context.freshDimension()
        if let frameLength, frameLength > 0, let step, step > 0, let signalShape = signal?.staticShape, signalShape.count == 3,
           Int64(signalShape[1]) >= frameLength {
            frames = .value((Int64(signalShape[1]) - frameLength) / step + 1)
        }
        let bins: Dimension = frameLength.flatMap { $0 > 0 ? .value(onesided ? $0 / 2 + 1 : $0) : nil } ?? context.freshDimension()
        context.setOutput(0, type: type, shape: [batch, frames, bins, .value(2)])
    }

    // MARK: - Random generators

    static let randomInference: InferenceFunction = { context throws(OperatorError) in
        let type = try dataTypeAttribute(context.node, "dtype") ?? .float
        let shape = try context.node.ints("shape")
        if let shape, shape.contains(where: { $0 < 0 }) { throw OperatorError("\(context.node.opType): shape \(shape) is invalid") }
        context.setOutput(0, type: type, shape: shape?.map { .value($0) })
    }

    static let randomLikeInference: InferenceFunction = { context throws(OperatorError) in
        let input = context.input(0)
        let type = try dataTypeAttribute(context.node, "dtype") ?? input?.elementType
        context.setOutput(0, type: type, shape: input?.shape)
    }

    static let multinomialInference: InferenceFunction = { context throws(OperatorError) in
        let type = try dataTypeAttribute(context.node, "dtype") ?? .int32
        let samples = try context.node.int("sample_size", default: 1)
        guard samples >= 0 else { throw OperatorError("Multinomial: sample_size must not be negative") }
        let batch = context.input(0)?.shape.flatMap { $0.count == 2 ? $0[0] : nil } ?? context.freshDimension()
        context.setOutput(0, type: type, shape: [batch, .value(samples)])
    }
}
