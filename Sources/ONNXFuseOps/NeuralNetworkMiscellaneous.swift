import ONNXFuseIR

// Operators of the onnx package's bundled models that no other family covers: the sequence
// operators (inference: their sequence-typed values cannot be described by tensor facts, so
// only tensor outputs get facts), StringNormalizer (inference), ai.onnx.ml Scaler (kernel and
// inference) and ai.onnx.preview.training Gradient (inference).

extension NeuralNetworkKit {
    /// Registers this file's operators in `registry`.
    static func registerMiscellaneousOperators(_ registry: inout OperatorRegistry) {
        // Outputs are sequences, or tensors whose type lives in a sequence's type: left unknown.
        registry.register(["SequenceConstruct", "SequenceEmpty", "SequenceInsert", "SequenceErase", "SplitToSequence",
                  "SequenceAt", "ConcatFromSequence", "SequenceMap"], inference: unknownOutputsInference)
        registry.register(["SequenceLength"], inference: sequenceLengthInference)
        registry.register(["StringNormalizer"], inference: stringNormalizerInference)
        registry.register(["Scaler"], domain: "ai.onnx.ml", kernel: scalerKernel)
        registry.register(["Scaler"], domain: "ai.onnx.ml", inference: scalerInference)
        registry.register(["Gradient"], domain: "ai.onnx.preview.training", inference: gradientInference)
    }

    /// Leaves every output unknown.
    static let unknownOutputsInference: InferenceFunction = { _ throws(OperatorError) in }

    static let sequenceLengthInference: InferenceFunction = { context throws(OperatorError) in
        context.setOutput(0, type: .int64, shape: [])
    }

    static let stringNormalizerInference: InferenceFunction = { context throws(OperatorError) in
        // Stop words (and, in the reference, empty strings) are dropped: the length is not known.
        guard let shape = context.input(0)?.shape else {
            context.setOutput(0, type: .string, shape: nil)
            return
        }
        switch shape.count {
        case 1: context.setOutput(0, type: .string, shape: [context.freshDimension()])
        case 2:
            guard shape[0] == .value(1) || shape[0] == .unknown || { if case .param = shape[0] { return true } else { return false } }() else {
                throw OperatorError("StringNormalizer: input must be [C] or [1, C]")
            }
            context.setOutput(0, type: .string, shape: [.value(1), context.freshDimension()])
        default: throw OperatorError("StringNormalizer: input must be [C] or [1, C]")
        }
    }

    static let scalerKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context)
        guard [.float, .double, .int64, .int32].contains(x.dataType) else {
            throw OperatorError("Scaler: type \(x.dataType) is not supported")
        }
        let values = try x.doubleValues()
        let offsets = try context.floats("offset") ?? [0]
        let scales = try context.floats("scale") ?? [1]
        let features = x.shape.last ?? 1
        guard offsets.count == 1 || offsets.count == features, scales.count == 1 || scales.count == features else {
            throw OperatorError("Scaler: offset and scale must have 1 or \(features) entries")
        }
        var result = [Double](repeating: 0, count: values.count)
        for index in values.indices {
            let feature = features == 0 ? 0 : index % features
            let offset = offsets.count == 1 ? offsets[0] : offsets[feature]
            let scale = scales.count == 1 ? scales[0] : scales[feature]
            result[index] = (values[index] - offset) * scale
        }
        return [TensorValue(.float, shape: x.shape, reals: result)]
    }

    static let scalerInference: InferenceFunction = { context throws(OperatorError) in
        context.setOutput(0, type: .float, shape: context.input(0)?.shape)
    }

    static let gradientInference: InferenceFunction = { context throws(OperatorError) in
        // Output i is the gradient with respect to input i (the values named by `xs`).
        var count: Int? = nil
        if case .strings(let names)? = context.node.attribute("xs")?.value { count = names.count }
        for index in 0..<min(context.outputs.count, count ?? context.outputs.count) {
            let facts = context.input(index)
            context.setOutput(index, type: facts?.elementType, shape: facts?.shape)
        }
    }
}
