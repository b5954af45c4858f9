import ONNXFuseIR

// Resize and Upsample: inference only (their kernels interpolate; they belong elsewhere).

extension ShapeKit {
    /// Registers the operators of this file.
    static func registerResize(_ registry: inout OperatorRegistry) {
        registry.register(["Resize"], inference: resizeInference)
        registry.register(["Upsample"], inference: upsampleInference)
    }

    /// `floor(dim * scale)`, when certain: float32 and float64 arithmetic agree (runtimes
    /// differ in which they use), a scale of 1 keeps a symbol; else a fresh dimension.
    static func scaledFloor(_ dim: Dimension, scale: Double, fresh: () -> Dimension) throws(OperatorError) -> Dimension {
        guard scale.isFinite, scale > 0 else { throw OperatorError("invalid scale \(scale)") }
        if scale == 1 { return concreteDimension(dim, fresh: fresh) }
        guard case .value(let v) = dim else { return fresh() }
        let wide = (Double(v) * scale).rounded(.down)
        let narrow = Double((Float(v) * Float(scale)).rounded(.down))
        guard wide == narrow, wide < 0x1p62 else { return fresh() }
        return .value(Int64(wide))
    }

    static func resizeInference(_ context: inout InferenceContext) throws(OperatorError) {
        let input = context.input(0)
        let type = input?.elementType
        let fresh = freshDimensions(context)
        let version = context.node.opsetVersion
        // Inputs: X, scales (opset 10); X, roi, scales, sizes (opset 11 on).
        let scalesFacts = version < 11 ? context.input(1) : context.input(2)
        let sizesFacts = version < 11 ? nil : context.input(3)
        let scalesGiven = scalesFacts != nil && scalesFacts?.staticShape != [0]
        let sizesGiven = sizesFacts != nil && sizesFacts?.staticShape != [0]
        let axesAttribute = version >= 18 ? try context.node.ints("axes") : nil
        guard let shape = input?.shape else {
            // The rank is the length of scales or sizes when they cover every axis.
            let length = (sizesGiven ? sizesFacts : scalesFacts)?.staticShape
            if axesAttribute == nil, let length, length.count == 1 {
                context.setOutput(0, type: type, shape: freshShape(rank: length[0], fresh: fresh))
            } else {
                context.setOutput(0, type: type, shape: nil)
            }
            return
        }
        let rank = shape.count
        let axes = try axesAttribute.map { (axes) throws(OperatorError) in try normalizeAxes(axes, rank: rank) } ?? Array(0..<rank)
        var output = shape.map { concreteDimension($0, fresh: fresh) }
        if sizesGiven {
            guard let sizes = knownDimensions(sizesFacts) else {
                for axis in axes { output[axis] = fresh() }
                context.setOutput(0, type: type, shape: output)
                return
            }
            guard sizes.count == axes.count else { throw OperatorError("sizes has \(sizes.count) elements for \(axes.count) axes") }
            let policy = version >= 18 ? try context.node.string("keep_aspect_ratio_policy") ?? "stretch" : "stretch"
            if policy == "stretch" {
                for (index, axis) in axes.enumerated() {
                    if case .value(let size) = sizes[index], size < 0 { throw OperatorError("negative size \(size)") }
                    output[axis] = concreteDimension(sizes[index], fresh: fresh)
                }
            } else {
                guard policy == "not_larger" || policy == "not_smaller" else {
                    throw OperatorError("unknown keep_aspect_ratio_policy '\(policy)'")
                }
                var ratios: [Double] = []
                for (index, axis) in axes.enumerated() {
                    guard case .value(let size) = sizes[index], case .value(let dim) = shape[axis], dim > 0 else {
                        for axis in axes { output[axis] = fresh() }
                        context.setOutput(0, type: type, shape: output)
                        return
                    }
                    ratios.append(Double(size) / Double(dim))
                }
                guard let scale = policy == "not_larger" ? ratios.min() : ratios.max() else {
                    context.setOutput(0, type: type, shape: output)
                    return
                }
                for axis in axes {
                    guard case .value(let dim) = shape[axis] else { continue }
                    let size = (scale * Double(dim) + 0.5).rounded(.down)
                    guard size.isFinite, size >= 0, size < 0x1p62 else { throw OperatorError("invalid output size \(size)") }
                    output[axis] = .value(Int64(size))
                }
            }
        } else if scalesGiven {
            guard let scales = knownReals(scalesFacts) else {
                for axis in axes { output[axis] = fresh() }
                context.setOutput(0, type: type, shape: output)
                return
            }
            guard scales.count == axes.count else { throw OperatorError("scales has \(scales.count) elements for \(axes.count) axes") }
            let mode = version >= 11 ? try context.node.string("coordinate_transformation_mode") : nil
            let cropping = mode == "tf_crop_and_resize"
            for (index, axis) in axes.enumerated() {
                // tf_crop_and_resize scales the region of interest, not the input: leave it unknown.
                output[axis] = cropping ? fresh() : try scaledFloor(shape[axis], scale: scales[index], fresh: fresh)
            }
        } else {
            throw OperatorError("Resize needs scales or sizes")
        }
        context.setOutput(0, type: type, shape: output)
    }

    static func upsampleInference(_ context: inout InferenceContext) throws(OperatorError) {
        let input = context.input(0)
        let type = input?.elementType
        let fresh = freshDimensions(context)
        let version = context.node.opsetVersion
        guard let shape = input?.shape else {
            context.setOutput(0, type: type, shape: nil)
            return
        }
        var scales: [Double]?
        if version < 7 {
            // Upsample-1: height_scale and width_scale of a 4-D input.
            guard shape.count == 4 else { throw OperatorError("Upsample-1 needs a 4-D input") }
            scales = [1, 1, try context.node.float("height_scale", default: 1), try context.node.float("width_scale", default: 1)]
        } else if version < 9 {
            scales = try context.node.floats("scales")
        } else {
            scales = knownReals(context.input(1))
        }
        guard let scales else {
            context.setOutput(0, type: type, shape: shape.map { _ in fresh() })
            return
        }
        guard scales.count == shape.count else { throw OperatorError("scales has \(scales.count) elements for rank \(shape.count)") }
        var output: [Dimension] = []
        for (dim, scale) in zip(shape, scales) { output.append(try scaledFloor(dim, scale: scale, fresh: fresh)) }
        context.setOutput(0, type: type, shape: output)
    }
}
