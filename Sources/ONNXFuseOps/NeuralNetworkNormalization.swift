import ONNXFuseIR

// BatchNormalization, InstanceNormalization, LayerNormalization, GroupNormalization,
// MeanVarianceNormalization, LpNormalization and RMSNormalization (kernels and inference).

extension NeuralNetworkKit {
    /// Registers this file's operators in `registry`.
    static func registerNormalizationOperators(_ registry: inout OperatorRegistry) {
        registry.register(["BatchNormalization"], kernel: batchNormalizationKernel)
        registry.register(["BatchNormalization"], inference: batchNormalizationInference)
        registry.register(["InstanceNormalization"], kernel: instanceNormalizationKernel)
        registry.register(["LayerNormalization"], kernel: layerNormalizationKernel)
        registry.register(["LayerNormalization"], inference: layerNormalizationInference)
        registry.register(["GroupNormalization"], kernel: groupNormalizationKernel)
        registry.register(["MeanVarianceNormalization"], kernel: meanVarianceNormalizationKernel)
        registry.register(["LpNormalization"], kernel: lpNormalizationKernel)
        registry.register(["RMSNormalization"], kernel: rmsNormalizationKernel)
        registry.register(["RMSNormalization"], inference: rmsNormalizationInference)
        registry.register(["InstanceNormalization", "GroupNormalization", "MeanVarianceNormalization", "LpNormalization"],
                 inference: sameShapeInference)
    }

    /// Input `index` as reals with `count` elements (or 1, broadcast).
    static func channelValues(_ inputs: [TensorValue?], _ index: Int, count: Int, _ context: OperatorContext,
                       _ what: String) throws(OperatorError) -> [Double] {
        let value = try requiredInput(inputs, index, context)
        let values = try realElements(value, context, what)
        guard values.count == count else {
            throw OperatorError("\(context.opType): \(what) has \(values.count) elements, expected \(count)")
        }
        return values
    }

    /// Input 0 of a normalization over channels (X, of rank 2 or more) as reals, with its batch
    /// size, its channel count and the elements per channel of one sample.
    static func channelLayout(_ inputs: [TensorValue?], _ context: OperatorContext) throws(OperatorError)
        -> (x: TensorValue, xs: [Double], batch: Int, channels: Int, plane: Int) {
        let x = try requiredInput(inputs, 0, context)
        let xs = try realElements(x, context, "X")
        guard x.rank >= 2 else { throw OperatorError("\(context.opType): X must have rank 2 or more") }
        let (batch, channels) = (x.shape[0], x.shape[1])
        let plane = batch * channels == 0 ? 0 : x.count / (batch * channels)
        return (x, xs, batch, channels, plane)
    }

    // MARK: - BatchNormalization

    static let batchNormalizationKernel: Kernel = { context, inputs throws(OperatorError) in
        let (x, xs, batch, channels, plane) = try channelLayout(inputs, context)
        let epsilon = try context.float("epsilon", default: 1e-5)
        let training: Bool
        if context.opsetVersion >= 14 {
            training = try context.int("training_mode", default: 0) != 0
        } else if context.opsetVersion <= 6 {
            training = try context.int("is_test", default: 0) == 0
        } else {
            // Opsets 7 to 13 have no attribute for it: a node with its optional running-statistics
            // outputs is in training mode.
            training = context.outputCount > 1
        }
        // Per-channel parameters; before opset 9, spatial = 0 gives one per element of a sample.
        let spatialAttribute = try context.int("spatial", default: 1)
        let perElement = context.opsetVersion < 9 && spatialAttribute == 0
        let paramCount = perElement ? channels * plane : channels
        let scale = try channelValues(inputs, 1, count: paramCount, context, "scale")
        let bias = try channelValues(inputs, 2, count: paramCount, context, "B")
        var mean = try channelValues(inputs, 3, count: paramCount, context, "mean")
        var variance = try channelValues(inputs, 4, count: paramCount, context, "var")
        let statsType = try requiredInput(inputs, 3, context).dataType
        var extra: [TensorValue] = []
        if training {
            guard !perElement else { throw OperatorError("BatchNormalization: training with spatial = 0 is not supported") }
            let momentum = try context.float("momentum", default: 0.9)
            let count = Double(batch * plane)
            var batchMean = [Double](repeating: 0, count: channels), batchVariance = [Double](repeating: 0, count: channels)
            for c in 0..<channels {
                var sum = 0.0
                for n in 0..<batch { for i in 0..<plane { sum += xs[(n * channels + c) * plane + i] } }
                let m = sum / count
                var squares = 0.0
                for n in 0..<batch {
                    for i in 0..<plane {
                        let d = xs[(n * channels + c) * plane + i] - m
                        squares += d * d
                    }
                }
                batchMean[c] = m
                batchVariance[c] = squares / count
            }
            let runningMean = (0..<channels).map { mean[$0] * momentum + batchMean[$0] * (1 - momentum) }
            let runningVariance = (0..<channels).map { variance[$0] * momentum + batchVariance[$0] * (1 - momentum) }
            if context.opsetVersion >= 14 {
                extra = [TensorValue(statsType, shape: [channels], reals: runningMean),
                         TensorValue(statsType, shape: [channels], reals: runningVariance)]
            }
            mean = batchMean
            variance = batchVariance
        }
        var y = [Double](repeating: 0, count: x.count)
        for n in 0..<batch {
            for c in 0..<channels {
                let base = (n * channels + c) * plane
                if perElement {
                    for i in 0..<plane {
                        let p = c * plane + i
                        y[base + i] = scale[p] * (xs[base + i] - mean[p]) / (variance[p] + epsilon).squareRoot() + bias[p]
                    }
                } else {
                    let deviation = (variance[c] + epsilon).squareRoot()
                    for i in 0..<plane { y[base + i] = scale[c] * (xs[base + i] - mean[c]) / deviation + bias[c] }
                }
            }
        }
        return [TensorValue(x.dataType, shape: x.shape, reals: y)] + extra
    }

    static let batchNormalizationInference: InferenceFunction = { context throws(OperatorError) in
        let x = context.input(0)
        context.setOutput(0, type: x?.elementType, shape: x?.shape)
        // Training outputs (running or saved statistics): one value per channel.
        let channel: Dimension = x?.shape.flatMap { $0.count >= 2 ? $0[1] : nil } ?? context.input(3)?.shape?.first ?? context.freshDimension()
        let statsType = context.node.opsetVersion >= 15 ? context.input(3)?.elementType : x?.elementType
        for index in 1..<max(1, context.outputs.count) {
            context.setOutput(index, type: statsType ?? x?.elementType, shape: [channel])
        }
    }

    // MARK: - InstanceNormalization

    static let instanceNormalizationKernel: Kernel = { context, inputs throws(OperatorError) in
        let (x, xs, batch, channels, plane) = try channelLayout(inputs, context)
        let epsilon = try context.float("epsilon", default: 1e-5)
        let scale = try channelValues(inputs, 1, count: channels, context, "scale")
        let bias = try channelValues(inputs, 2, count: channels, context, "B")
        var y = [Double](repeating: 0, count: x.count)
        for n in 0..<batch {
            for c in 0..<channels {
                let base = (n * channels + c) * plane
                let (mean, variance) = meanAndVariance(xs, base: base, count: plane)
                let deviation = (variance + epsilon).squareRoot()
                for i in 0..<plane { y[base + i] = scale[c] * (xs[base + i] - mean) / deviation + bias[c] }
            }
        }
        return [TensorValue(x.dataType, shape: x.shape, reals: y)]
    }

    /// The mean and population variance of `count` contiguous values from `base`.
    @inline(__always) static func meanAndVariance(_ values: [Double], base: Int, count: Int) -> (Double, Double) {
        var sum = 0.0
        for i in 0..<count { sum += values[base + i] }
        let mean = sum / Double(count)
        var squares = 0.0
        for i in 0..<count {
            let d = values[base + i] - mean
            squares += d * d
        }
        return (mean, squares / Double(count))
    }

    // MARK: - LayerNormalization

    /// For each element of a tensor of `shape`, the element of `parameter` (unidirectionally
    /// broadcast to `shape`) it uses.
    static func parameterIndices(_ parameter: TensorValue, to shape: [Int], _ context: OperatorContext,
                          _ what: String) throws(OperatorError) -> [Int] {
        guard parameter.rank <= shape.count, (try? broadcastShapes(parameter.shape, shape)) == shape else {
            throw OperatorError("\(context.opType): \(what) of shape \(parameter.shape) does not broadcast to \(shape)")
        }
        return broadcastIndices(from: parameter.shape, to: shape)
    }

    static let layerNormalizationKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context)
        let xs = try realElements(x, context, "X")
        let scale = try requiredInput(inputs, 1, context)
        let scales = try realElements(scale, context, "Scale")
        let bias = optionalInput(inputs, 2)
        let biases = try bias.map { b throws(OperatorError) in try realElements(b, context, "B") }
        guard x.rank >= 1 else { throw OperatorError("LayerNormalization: X must have rank 1 or more") }
        let axis = try normalizeAxis(try context.int("axis", default: -1), rank: x.rank)
        let epsilon = try context.float("epsilon", default: 1e-5)
        let statsType = try dataTypeAttribute(context, "stash_type").flatMap { isRealType($0) ? $0 : nil } ?? .float
        let rows = shapeProduct(Array(x.shape[..<axis])) ?? 0
        let columns = shapeProduct(Array(x.shape[axis...])) ?? 0
        let scaleIndices = try parameterIndices(scale, to: x.shape, context, "Scale")
        let biasIndices = try bias.map { b throws(OperatorError) in try parameterIndices(b, to: x.shape, context, "B") }
        var y = [Double](repeating: 0, count: x.count)
        var means = [Double](repeating: 0, count: rows), inverses = [Double](repeating: 0, count: rows)
        for row in 0..<rows {
            let base = row * columns
            let (mean, variance) = meanAndVariance(xs, base: base, count: columns)
            let inverse = 1 / (variance + epsilon).squareRoot()
            means[row] = mean
            inverses[row] = inverse
            for i in base..<(base + columns) {
                var v = (xs[i] - mean) * inverse * scales[scaleIndices[i]]
                if let biases, let biasIndices { v += biases[biasIndices[i]] }
                y[i] = v
            }
        }
        let statsShape = Array(x.shape[..<axis]) + Array(repeating: 1, count: x.rank - axis)
        return [TensorValue(x.dataType, shape: x.shape, reals: y),
                TensorValue(statsType, shape: statsShape, reals: means),
                TensorValue(statsType, shape: statsShape, reals: inverses)]
    }

    static let layerNormalizationInference: InferenceFunction = { context throws(OperatorError) in
        let x = context.input(0)
        context.setOutput(0, type: x?.elementType, shape: x?.shape)
        let statsType = try dataTypeAttribute(context.node, "stash_type") ?? .float
        var statsShape: [Dimension]? = nil
        if let shape = x?.shape {
            let axis = try normalizeAxis(try context.node.int("axis", default: -1), rank: shape.count)
            statsShape = Array(shape[..<axis]) + Array(repeating: .value(1), count: shape.count - axis)
        }
        context.setOutput(1, type: statsType, shape: statsShape)
        context.setOutput(2, type: statsType, shape: statsShape)
    }

    // MARK: - RMSNormalization

    /// Y (of Scale's type) = X / sqrt(mean(X^2 over the axes from `axis`) + epsilon) * Scale.
    static let rmsNormalizationKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context)
        let xs = try realElements(x, context, "X")
        let scale = try requiredInput(inputs, 1, context)
        let scales = try realElements(scale, context, "scale")
        guard x.rank >= 1 else { throw OperatorError("RMSNormalization: X must have rank 1 or more") }
        let axis = try normalizeAxis(try context.int("axis", default: -1), rank: x.rank)
        let epsilon = try context.float("epsilon", default: 1e-5)
        let rows = shapeProduct(Array(x.shape[..<axis])) ?? 0
        let columns = shapeProduct(Array(x.shape[axis...])) ?? 0
        let scaleIndices = try parameterIndices(scale, to: x.shape, context, "scale")
        var y = [Double](repeating: 0, count: x.count)
        for row in 0..<rows {
            let base = row * columns
            var squares = 0.0
            for i in base..<(base + columns) { squares += xs[i] * xs[i] }
            let inverse = 1 / (squares / Double(columns) + epsilon).squareRoot()
            for i in base..<(base + columns) { y[i] = xs[i] * inverse * scales[scaleIndices[i]] }
        }
        return [TensorValue(scale.dataType, shape: x.shape, reals: y)]
    }

    static let rmsNormalizationInference: InferenceFunction = { context throws(OperatorError) in
        context.setOutput(0, type: context.input(1)?.elementType ?? context.input(0)?.elementType, shape: context.input(0)?.shape)
    }

    // MARK: - GroupNormalization

    static let groupNormalizationKernel: Kernel = { context, inputs throws(OperatorError) in
        let (x, xs, batch, channels, plane) = try channelLayout(inputs, context)
        guard let groupsAttribute = try context.int("num_groups"), groupsAttribute >= 1, groupsAttribute <= Int64(Int32.max) else {
            throw OperatorError("GroupNormalization: num_groups must be a positive integer")
        }
        let groups = Int(groupsAttribute)
        guard channels % groups == 0 else {
            throw OperatorError("GroupNormalization: \(channels) channels do not split into \(groups) groups")
        }
        let epsilon = try context.float("epsilon", default: 1e-5)
        // Opset 18 has one scale and bias per group, opset 21 one per channel.
        let perChannel = context.opsetVersion >= 21
        let scale = try channelValues(inputs, 1, count: perChannel ? channels : groups, context, "scale")
        let bias = try channelValues(inputs, 2, count: perChannel ? channels : groups, context, "bias")
        let groupChannels = channels / groups
        var y = [Double](repeating: 0, count: x.count)
        for n in 0..<batch {
            for g in 0..<groups {
                let base = (n * channels + g * groupChannels) * plane
                let (mean, variance) = meanAndVariance(xs, base: base, count: groupChannels * plane)
                let deviation = (variance + epsilon).squareRoot()
                for cl in 0..<groupChannels {
                    let c = g * groupChannels + cl
                    let p = perChannel ? c : g
                    let start = base + cl * plane
                    for i in start..<(start + plane) { y[i] = scale[p] * ((xs[i] - mean) / deviation) + bias[p] }
                }
            }
        }
        return [TensorValue(x.dataType, shape: x.shape, reals: y)]
    }

    // MARK: - MeanVarianceNormalization

    static let meanVarianceNormalizationKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context)
        let xs = try realElements(x, context, "X")
        let axesAttribute = try context.ints("axes") ?? [0, 2, 3]
        var reduced = x.shape
        for axis in axesAttribute { reduced[try normalizeAxis(axis, rank: x.rank)] = 1 }
        let groupOf = broadcastIndices(from: reduced, to: x.shape)
        let groupCount = shapeProduct(reduced) ?? 0
        let perGroup = groupCount == 0 ? 0.0 : Double(x.count / groupCount)
        var sums = [Double](repeating: 0, count: groupCount)
        for i in xs.indices { sums[groupOf[i]] += xs[i] }
        let means = sums.map { $0 / perGroup }
        var squares = [Double](repeating: 0, count: groupCount)
        for i in xs.indices {
            let d = xs[i] - means[groupOf[i]]
            squares[groupOf[i]] += d * d
        }
        // The function body adds a float epsilon of 1e-9 to the standard deviation.
        let epsilon = Double(Float(1e-9))
        let deviations = squares.map { ($0 / perGroup).squareRoot() + epsilon }
        var y = [Double](repeating: 0, count: x.count)
        for i in xs.indices { y[i] = (xs[i] - means[groupOf[i]]) / deviations[groupOf[i]] }
        return [TensorValue(x.dataType, shape: x.shape, reals: y)]
    }

    // MARK: - LpNormalization

    static let lpNormalizationKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context)
        let xs = try realElements(x, context, "X")
        guard x.rank >= 1 else { throw OperatorError("LpNormalization: X must have rank 1 or more") }
        let axis = try normalizeAxis(try context.int("axis", default: -1), rank: x.rank)
        let p = try context.int("p", default: 2)
        guard p == 1 || p == 2 else { throw OperatorError("LpNormalization: p must be 1 or 2, got \(p)") }
        let length = x.shape[axis]
        let inner = shapeProduct(Array(x.shape[(axis + 1)...])) ?? 0
        let outer = shapeProduct(Array(x.shape[..<axis])) ?? 0
        var y = [Double](repeating: 0, count: x.count)
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * length * inner + i
                var sum = 0.0
                for k in 0..<length {
                    let v = xs[base + k * inner]
                    sum += p == 2 ? v * v : abs(v)
                }
                let norm = p == 2 ? sum.squareRoot() : sum
                for k in 0..<length {
                    let index = base + k * inner
                    y[index] = norm == 0 ? 0 : xs[index] / norm
                }
            }
        }
        return [TensorValue(x.dataType, shape: x.shape, reals: y)]
    }
}
