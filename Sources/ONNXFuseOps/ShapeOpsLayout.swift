import ONNXFuseIR

// Concat, Split, Slice, Transpose, Expand, Tile, Pad, DepthToSpace, SpaceToDepth, Trilu and
// ReverseSequence: kernels and inference.

extension ShapeKit {
    /// Registers the operators of this file.
    static func registerLayout(_ registry: inout OperatorRegistry) {
        registry.register(["Concat"], kernel: concatKernel)
        registry.register(["Concat"], inference: concatInference)
        registry.register(["Split"], kernel: splitKernel)
        registry.register(["Split"], inference: splitInference)
        registry.register(["Slice"], kernel: sliceKernel)
        registry.register(["Slice"], inference: sliceInference)
        registry.register(["Transpose"], kernel: transposeKernel)
        registry.register(["Transpose"], inference: transposeInference)
        registry.register(["Expand"], kernel: expandKernel)
        registry.register(["Expand"], inference: expandInference)
        registry.register(["Tile"], kernel: tileKernel)
        registry.register(["Tile"], inference: tileInference)
        registry.register(["Pad"], kernel: padKernel)
        registry.register(["Pad"], inference: padInference)
        registry.register(["DepthToSpace"], kernel: depthToSpaceKernel)
        registry.register(["DepthToSpace"], inference: depthToSpaceInference)
        registry.register(["SpaceToDepth"], kernel: spaceToDepthKernel)
        registry.register(["SpaceToDepth"], inference: spaceToDepthInference)
        registry.register(["Trilu"], kernel: triluKernel)
        registry.register(["Trilu"], inference: sameShapeInference)
        registry.register(["ReverseSequence"], kernel: reverseSequenceKernel)
        registry.register(["ReverseSequence"], inference: sameShapeInference)
    }

    /// Output 0 has input 0's type and shape.
    static func sameShapeInference(_ context: inout InferenceContext) throws(OperatorError) {
        let input = context.input(0)
        context.setOutput(0, type: input?.elementType, shape: input?.shape)
    }

    // MARK: Concat

    /// Concat's axis attribute (opset 1 defaults it to 1).
    static func concatAxis(_ context: OperatorContext) throws(OperatorError) -> Int64 {
        if let axis = try context.int("axis") { return axis }
        guard context.opsetVersion < 4 else { throw OperatorError("attribute 'axis' is missing") }
        return 1
    }

    static func concatKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        var parts: [TensorValue] = []
        for (index, input) in inputs.enumerated() {
            guard let input else { throw OperatorError("input \(index) is missing") }
            parts.append(input)
        }
        guard let first = parts.first else { throw OperatorError("Concat has no inputs") }
        guard first.rank > 0 else { throw OperatorError("Concat cannot join scalars") }
        let axis = try normalizeAxis(try concatAxis(context), rank: first.rank)
        var shape = first.shape
        shape[axis] = 0
        for part in parts {
            guard part.dataType == first.dataType else { throw OperatorError("inputs are \(first.dataType) and \(part.dataType)") }
            guard part.rank == first.rank,
                  part.shape.indices.allSatisfy({ $0 == axis || part.shape[$0] == first.shape[$0] }) else {
                throw OperatorError("shapes \(first.shape) and \(part.shape) do not concatenate on axis \(axis)")
            }
            shape[axis] += part.shape[axis]
        }
        let count = try checkedElementCount(shape)
        let joined = try joinElements(parts.map(\.elements), kind: first.kind)
        let outer = shapeProduct(Array(shape[..<axis])) ?? 0
        let inner = shapeProduct(Array(shape[(axis + 1)...])) ?? 0
        var indices: [Int] = []
        indices.reserveCapacity(count)
        for o in 0..<outer {
            var base = 0
            for part in parts {
                let chunk = part.shape[axis] * inner
                let start = base + o * chunk
                for index in start..<(start + chunk) { indices.append(index) }
                base += part.count
            }
        }
        return [TensorValue(first.dataType, shape: shape, joined.gathering(indices))]
    }

    static func concatInference(_ context: inout InferenceContext) throws(OperatorError) {
        let inputs = context.inputs
        let type = inputs.lazy.compactMap { $0?.elementType }.first
        guard !inputs.isEmpty, let rank = inputs.lazy.compactMap({ $0?.rank }).first else {
            context.setOutput(0, type: type, shape: nil)
            return
        }
        let axis = try normalizeAxis(try concatAxis(context.node), rank: rank)
        let fresh = freshDimensions(context)
        var shape: [Dimension] = Array(repeating: .unknown, count: rank)
        var axisDim: Dimension = .value(0)
        var values: [Dimension]? = []
        for input in inputs {
            if let dims = knownDimensions(input), input?.rank == 1 { values?.append(contentsOf: dims) } else { values = nil }
            guard let inputShape = input?.shape else {
                axisDim = fresh()
                continue
            }
            guard inputShape.count == rank else { throw OperatorError("Concat inputs differ in rank") }
            for index in 0..<rank where index != axis { shape[index] = try mergedDimension(shape[index], inputShape[index]) }
            axisDim = sumDimension(axisDim, concreteDimension(inputShape[axis], fresh: fresh), fresh: fresh)
        }
        shape[axis] = axisDim
        shape = shape.map { concreteDimension($0, fresh: fresh) }
        context.setOutput(0, outputFacts(type: type, shape: shape, shapeValue: values))
    }

    // MARK: Split

    /// The sizes Split gives its outputs along an axis of `dim`: from `split` (attribute or
    /// input), from `num_outputs` (opset 18), or equal parts among `outputCount` outputs.
    static func splitSizes(_ context: OperatorContext, split: [Int64]?, dim: Int64, outputCount: Int) throws(OperatorError) -> [Int64] {
        if let split {
            guard split.allSatisfy({ $0 >= 0 }), split.reduce(0, { $0 &+ $1 }) == dim else {
                throw OperatorError("split \(split) does not add up to \(dim)")
            }
            return split
        }
        var parts: Int64
        if context.opsetVersion >= 18, let count = try context.int("num_outputs") {
            parts = count
        } else {
            parts = Int64(outputCount)
        }
        guard parts > 0, parts <= 1 << 16 else { throw OperatorError("invalid number of outputs \(parts)") }
        if dim % parts == 0 { return Array(repeating: dim / parts, count: Int(parts)) }
        guard context.opsetVersion >= 18 else { throw OperatorError("\(dim) does not split into \(parts) equal parts") }
        let chunk = dim / parts + 1
        let last = dim - chunk * (parts - 1)
        guard last >= 0 else { throw OperatorError("\(dim) does not split into \(parts) parts") }
        return Array(repeating: chunk, count: Int(parts) - 1) + [last]
    }

    /// Split's explicit sizes from attribute or input, when given; nil when absent. `known`
    /// reads an input.
    static func splitArgument(_ context: OperatorContext, input: () throws(OperatorError) -> [Int64]?) throws(OperatorError) -> [Int64]? {
        if context.opsetVersion >= 13 { return try input() }
        if let attribute = try context.ints("split"), !attribute.isEmpty { return attribute }
        return context.opsetVersion < 2 ? try input() : nil
    }

    static func splitKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let input = try requiredInput(inputs, 0, "input")
        let axis = try normalizeAxis(try context.int("axis", default: 0), rank: input.rank)
        let split = try splitArgument(context) { () throws(OperatorError) -> [Int64]? in
            guard let value = optionalInput(inputs, 1) else { return nil }
            return try vectorInts(value, "split")
        }
        let sizes = try splitSizes(context, split: split, dim: Int64(input.shape[axis]), outputCount: context.outputCount)
        let strides = rowMajorStrides(input.shape)
        var results: [TensorValue] = []
        var start = 0
        for size in sizes {
            var shape = input.shape
            shape[axis] = Int(size)
            let indices = affineIndices(shape: shape, offset: start * strides[axis], strides: strides)
            results.append(input.gathering(indices, shape: shape))
            start += Int(size)
        }
        return results
    }

    static func splitInference(_ context: inout InferenceContext) throws(OperatorError) {
        let input = context.input(0)
        let type = input?.elementType
        let outputCount = context.outputs.count
        guard let shape = input?.shape else {
            for index in 0..<outputCount { context.setOutput(index, type: type, shape: nil) }
            return
        }
        let axis = try normalizeAxis(try context.node.int("axis", default: 0), rank: shape.count)
        let fresh = freshDimensions(context)
        var splitUnknown = false
        let split = try splitArgument(context.node) { () -> [Int64]? in
            guard let facts = context.input(1) else { return nil }
            let values = knownInts(facts)
            splitUnknown = values == nil
            return values
        }
        var sizes: [Dimension]
        if splitUnknown {
            sizes = (0..<outputCount).map { _ in fresh() }
        } else if case .value(let dim) = shape[axis] {
            sizes = try splitSizes(context.node, split: split, dim: dim, outputCount: outputCount).map { .value($0) }
        } else if let split {
            sizes = split.map { .value($0) }
        } else if outputCount == 1 {
            sizes = [concreteDimension(shape[axis], fresh: fresh)]
        } else {
            sizes = (0..<outputCount).map { _ in fresh() }
        }
        let values = shape.count == 1 ? knownDimensions(input) : nil
        var start = 0
        for (index, size) in sizes.enumerated() {
            var outputShape = shape.map { concreteDimension($0, fresh: fresh) }
            outputShape[axis] = size
            var part: [Dimension]?
            if let values, case .value(let n) = size, start >= 0, start + Int(n) <= values.count {
                part = Array(values[start..<(start + Int(n))])
                start += Int(n)
            } else {
                start = -1
            }
            context.setOutput(index, outputFacts(type: type, shape: outputShape, shapeValue: part))
        }
    }

    // MARK: Slice

    /// A start or end at least this large (in magnitude) lies beyond any real dimension.
    static let unboundedIndex = Int64(Int32.max)

    /// The first index and the count of `start:end:step` over a dimension of `dim`, with the
    /// ONNX clamping rules.
    static func sliceRange(start: Int64, end: Int64, step: Int64, dim: Int) -> (first: Int, count: Int) {
        let d = Int64(dim)
        var s = start < 0 ? start + d : start
        var e = end < 0 ? end + d : end
        if step > 0 {
            s = Swift.min(Swift.max(s, 0), d)
            e = Swift.min(Swift.max(e, 0), d)
            return (Int(s), e > s ? Int((e - s - 1) / step + 1) : 0)
        }
        s = Swift.min(Swift.max(s, 0), d - 1)  // -1 when d == 0: then the count is 0
        e = Swift.min(Swift.max(e, -1), d - 1)
        return (Int(s), s > e ? Int(UInt64(s - e - 1) / step.magnitude + 1) : 0)
    }

    /// Slice's parameters: starts, ends, axes (nil: the first ones) and steps (nil: ones), read
    /// from attributes before opset 10, else by `read` from inputs 1 to 4 (nil when unknown).
    struct SliceParameters {
        var starts: [Int64]?
        var ends: [Int64]?
        var axes: [Int64]?
        var steps: [Int64]?
        var axesUnknown = false
        var stepsUnknown = false
    }

    /// Slice's parameters; `read(i, name)` gives input `i`'s integers, `present(i)` tells whether it is given.
    static func sliceParameters(_ context: OperatorContext, read: (Int, String) throws(OperatorError) -> [Int64]?,
                                present: (Int) -> Bool) throws(OperatorError) -> SliceParameters {
        var parameters = SliceParameters()
        if context.opsetVersion < 10 {
            parameters.starts = try context.ints("starts")
            parameters.ends = try context.ints("ends")
            parameters.axes = try context.ints("axes")
            guard parameters.starts != nil, parameters.ends != nil else { throw OperatorError("attributes 'starts' and 'ends' are required") }
            if parameters.axes?.isEmpty == true { parameters.axes = nil }
            return parameters
        }
        parameters.starts = try read(1, "starts")
        parameters.ends = try read(2, "ends")
        if present(3) {
            parameters.axes = try read(3, "axes")
            parameters.axesUnknown = parameters.axes == nil
        }
        if present(4) {
            parameters.steps = try read(4, "steps")
            parameters.stepsUnknown = parameters.steps == nil
        }
        return parameters
    }

    /// Per axis of a rank-`rank` input: (start, end, step) for the sliced axes, checked.
    static func sliceAxes(_ parameters: SliceParameters, rank: Int) throws(OperatorError) -> [Int: (start: Int64, end: Int64, step: Int64)] {
        guard let starts = parameters.starts, let ends = parameters.ends, starts.count == ends.count else {
            throw OperatorError("starts and ends differ in length")
        }
        let axes = parameters.axes ?? (0..<Int64(starts.count)).map { $0 }
        let steps = parameters.steps ?? Array(repeating: 1, count: starts.count)
        guard axes.count == starts.count, steps.count == starts.count else { throw OperatorError("axes or steps differ in length from starts") }
        let resolved = try normalizeAxes(axes, rank: rank)
        var result: [Int: (start: Int64, end: Int64, step: Int64)] = [:]
        for (index, axis) in resolved.enumerated() {
            guard steps[index] != 0 else { throw OperatorError("Slice step is 0") }
            result[axis] = (starts[index], ends[index], steps[index])
        }
        return result
    }

    static func sliceKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let data = try requiredInput(inputs, 0, "data")
        let parameters = try sliceParameters(context, read: { (index, name) throws(OperatorError) -> [Int64]? in
            guard let value = optionalInput(inputs, index) else {
                if index <= 2 { throw OperatorError("input '\(name)' is missing") }
                return nil
            }
            return try vectorInts(value, name)
        }, present: { optionalInput(inputs, $0) != nil })
        let axes = try sliceAxes(parameters, rank: data.rank)
        let strides = rowMajorStrides(data.shape)
        var shape = data.shape
        var viewStrides = strides
        var offset = 0
        for (axis, range) in axes {
            let (first, count) = sliceRange(start: range.start, end: range.end, step: range.step, dim: data.shape[axis])
            shape[axis] = count
            if count > 0 { offset += first * strides[axis] }
            viewStrides[axis] = count > 1 ? strides[axis] * Int(range.step) : 0  // count > 1: |step| < dim
        }
        if shape.contains(0) { return [TensorValue(data.dataType, shape: shape, .empty(data.kind))] }
        return [data.gathering(affineIndices(shape: shape, offset: offset, strides: viewStrides), shape: shape)]
    }

    /// The length of `start:end:step` over a symbolic dimension `dim`, when certain.
    static func symbolicSliceLength(start: Int64, end: Int64, step: Int64, dim: Dimension) -> Dimension? {
        // The whole axis, forwards or backwards.
        if step == 1, start == 0 || start <= -unboundedIndex, end >= unboundedIndex { return dim }
        if step == -1, start == -1 || start >= unboundedIndex, end <= -unboundedIndex { return dim }
        // Empty whatever the dimension: both ends on the same side and in the wrong order.
        if step > 0 && (start >= 0) == (end >= 0) && end <= start { return .value(0) }
        if step < 0 && start >= 0 && end >= start { return .value(0) }
        return nil
    }

    static func sliceInference(_ context: inout InferenceContext) throws(OperatorError) {
        let data = context.input(0)
        let type = data?.elementType
        let inputs = context.inputs
        let parameters = try sliceParameters(context.node, read: { index, _ in
            index < inputs.count ? knownInts(inputs[index]) : nil
        }, present: { $0 < inputs.count && inputs[$0] != nil })
        guard let shape = data?.shape else {
            context.setOutput(0, type: type, shape: nil)
            return
        }
        let fresh = freshDimensions(context)
        var output = shape.map { concreteDimension($0, fresh: fresh) }
        if let starts = parameters.starts, parameters.ends == nil, !parameters.axesUnknown, !parameters.stepsUnknown,
           context.node.opsetVersion >= 10, let ends = knownDimensions(context.input(2)), ends.count == starts.count {
            // Symbolic ends, as `x[:, :S]` with S from a Shape: the whole axis when S is its size.
            let axes = try normalizeAxes(parameters.axes ?? (0..<Int64(starts.count)).map { $0 }, rank: shape.count)
            let steps = parameters.steps ?? Array(repeating: 1, count: starts.count)
            guard axes.count == starts.count, steps.count == starts.count else { throw OperatorError("axes or steps differ in length from starts") }
            for (index, axis) in axes.enumerated() {
                guard steps[index] != 0 else { throw OperatorError("Slice step is 0") }
                switch (ends[index], shape[axis]) {
                case (.value(let end), .value(let dim)):
                    output[axis] = .value(Int64(sliceRange(start: starts[index], end: end, step: steps[index], dim: Int(dim)).count))
                case (.value(let end), _):
                    output[axis] = symbolicSliceLength(start: starts[index], end: end, step: steps[index], dim: output[axis]) ?? fresh()
                case (.param(let end), .param(let dim)) where end == dim && steps[index] == 1
                    && (starts[index] == 0 || starts[index] <= -unboundedIndex):
                    output[axis] = shape[axis]
                default:
                    output[axis] = fresh()
                }
            }
            context.setOutput(0, type: type, shape: output)
            return
        }
        guard parameters.starts != nil, parameters.ends != nil, !parameters.axesUnknown, !parameters.stepsUnknown else {
            if !parameters.axesUnknown, let axes = parameters.axes {
                for axis in try normalizeAxes(axes, rank: shape.count) { output[axis] = fresh() }
            } else {
                output = output.map { _ in fresh() }
            }
            context.setOutput(0, type: type, shape: output)
            return
        }
        let axes = try sliceAxes(parameters, rank: shape.count)
        for (axis, range) in axes {
            if case .value(let dim) = shape[axis] {
                output[axis] = .value(Int64(sliceRange(start: range.start, end: range.end, step: range.step, dim: Int(dim)).count))
            } else {
                output[axis] = symbolicSliceLength(start: range.start, end: range.end, step: range.step, dim: output[axis]) ?? fresh()
            }
        }
        var values: [Dimension]?
        if shape.count == 1, let elements = knownDimensions(data), let range = axes[0] {
            let (first, count) = sliceRange(start: range.start, end: range.end, step: range.step, dim: elements.count)
            values = (0..<count).map { elements[first + $0 * Int(range.step)] }
        }
        context.setOutput(0, outputFacts(type: type, shape: output, shapeValue: values))
    }

    // MARK: Transpose

    /// Transpose's permutation for `rank` (default: reversed), checked.
    static func transposePermutation(_ context: OperatorContext, rank: Int) throws(OperatorError) -> [Int] {
        guard let perm = try context.ints("perm") else { return Array((0..<rank).reversed()) }
        guard perm.count == rank, Set(perm).count == rank, perm.allSatisfy({ $0 >= 0 && $0 < Int64(rank) }) else {
            throw OperatorError("perm \(perm) is not a permutation of \(rank) axes")
        }
        return perm.map { Int($0) }
    }

    static func transposeKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let data = try requiredInput(inputs, 0, "data")
        let perm = try transposePermutation(context, rank: data.rank)
        let strides = rowMajorStrides(data.shape)
        let shape = perm.map { data.shape[$0] }
        if perm == Array(0..<data.rank) { return [data] }
        return [data.gathering(affineIndices(shape: shape, offset: 0, strides: perm.map { strides[$0] }), shape: shape)]
    }

    static func transposeInference(_ context: inout InferenceContext) throws(OperatorError) {
        let data = context.input(0)
        guard let shape = data?.shape else {
            context.setOutput(0, type: data?.elementType, shape: nil)
            return
        }
        let perm = try transposePermutation(context.node, rank: shape.count)
        context.setOutput(0, outputFacts(type: data?.elementType, shape: perm.map { shape[$0] }, shapeValue: knownDimensions(data)))
    }

    // MARK: Expand

    static func expandKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let input = try requiredInput(inputs, 0, "input")
        let shapeInput = try requiredInput(inputs, 1, "shape")
        guard shapeInput.rank == 1 else { throw OperatorError("the shape must be 1-D, got shape \(shapeInput.shape)") }
        let target = try dimensionSizes(try shapeInput.int64Values(), what: "the shape")
        let shape = try broadcastShapes(input.shape, target)
        try checkedElementCount(shape)
        let padded = [Int](repeating: 1, count: shape.count - input.rank) + input.shape
        let strides = [Int](repeating: 0, count: shape.count - input.rank) + rowMajorStrides(input.shape)
        let viewStrides = shape.indices.map { padded[$0] == 1 ? 0 : strides[$0] }
        return [input.gathering(affineIndices(shape: shape, offset: 0, strides: viewStrides), shape: shape)]
    }

    static func expandInference(_ context: inout InferenceContext) throws(OperatorError) {
        let input = context.input(0)
        let type = input?.elementType
        let fresh = freshDimensions(context)
        var target: [Dimension]?
        if let dims = knownDimensions(context.input(1)) {
            target = []
            for dim in dims {
                if case .value(let v) = dim, v < 0 { throw OperatorError("negative dimension \(v) in the shape") }
                target?.append(concreteDimension(dim, fresh: fresh))
            }
        } else if let shapeShape = context.input(1)?.staticShape, shapeShape.count == 1 {
            target = freshShape(rank: shapeShape[0], fresh: fresh)
        }
        guard let target, let inputShape = input?.shape else {
            context.setOutput(0, type: type, shape: nil)
            return
        }
        guard let shape = try broadcastDimensions([inputShape.map { concreteDimension($0, fresh: fresh) }, target], fresh: fresh) else {
            context.setOutput(0, type: type, shape: nil)
            return
        }
        var values: [Dimension]?
        if shape.count <= 1, let elements = knownDimensions(input) {
            if shape.isEmpty || shape == [.value(Int64(elements.count))] {
                values = elements
            } else if elements.count == 1, case .value(let n) = shape[0], n <= Int64(shapeValueLimit) {
                values = Array(repeating: elements[0], count: Int(n))
            }
        }
        context.setOutput(0, outputFacts(type: type, shape: shape, shapeValue: values))
    }

    // MARK: Tile

    static func tileKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let input = try requiredInput(inputs, 0, "input")
        let repeatsInput = try requiredInput(inputs, 1, "repeats")
        let repeats = try dimensionSizes(try vectorInts(repeatsInput, "repeats"), what: "repeats")
        guard repeats.count == input.rank else { throw OperatorError("repeats has \(repeats.count) elements for rank \(input.rank)") }
        let shape = input.shape.indices.map { input.shape[$0] * repeats[$0] }
        try checkedElementCount(shape)
        let strides = rowMajorStrides(input.shape)
        var viewShape: [Int] = []
        var viewStrides: [Int] = []
        for axis in input.shape.indices {
            viewShape += [repeats[axis], input.shape[axis]]
            viewStrides += [0, strides[axis]]
        }
        return [input.gathering(affineIndices(shape: viewShape, offset: 0, strides: viewStrides), shape: shape)]
    }

    static func tileInference(_ context: inout InferenceContext) throws(OperatorError) {
        let input = context.input(0)
        let type = input?.elementType
        let fresh = freshDimensions(context)
        guard let shape = input?.shape else {
            context.setOutput(0, type: type, shape: nil)
            return
        }
        guard let repeats = knownDimensions(context.input(1)) else {
            context.setOutput(0, type: type, shape: shape.map { _ in fresh() })
            return
        }
        guard repeats.count == shape.count else { throw OperatorError("repeats has \(repeats.count) elements for rank \(shape.count)") }
        var output: [Dimension] = []
        for (dim, count) in zip(shape, repeats) {
            switch count {
            case .value(let k):
                guard k >= 0 else { throw OperatorError("negative repeat \(k)") }
                output.append(scaledDimension(dim, by: k, fresh: fresh))
            case .param where dim == .value(1): output.append(count)
            default: output.append(dim == .value(0) ? .value(0) : fresh())
            }
        }
        var values: [Dimension]?
        if shape.count == 1, let elements = knownDimensions(input), case .value(let k) = repeats[0],
           k >= 0, k <= Int64(shapeValueLimit), Int64(elements.count) * k <= Int64(shapeValueLimit) {
            values = Array(repeatElement(elements, count: Int(k)).joined())
        }
        context.setOutput(0, outputFacts(type: type, shape: output, shapeValue: values))
    }

    // MARK: Pad

    /// Pad's mode attribute.
    static func padMode(_ context: OperatorContext) throws(OperatorError) -> String {
        let mode = try context.string("mode") ?? "constant"
        guard ["constant", "reflect", "edge", "wrap"].contains(mode) else { throw OperatorError("unknown pad mode '\(mode)'") }
        return mode
    }

    /// Per-axis (begin, end) pads for a rank-`rank` input from `pads` over `axes` (nil: all).
    static func padAmounts(_ pads: [Int64], axes: [Int64]?, rank: Int) throws(OperatorError) -> [(begin: Int64, end: Int64)] {
        let resolved = try axes.map { (axes) throws(OperatorError) in try normalizeAxes(axes, rank: rank) } ?? Array(0..<rank)
        guard pads.count == 2 * resolved.count else { throw OperatorError("pads has \(pads.count) elements for \(resolved.count) axes") }
        var result = [(begin: Int64, end: Int64)](repeating: (0, 0), count: rank)
        for (index, axis) in resolved.enumerated() { result[axis] = (pads[index], pads[resolved.count + index]) }
        return result
    }

    /// The input coordinate that output coordinate `o` of a padded axis reads, or -1 for the
    /// constant.
    static func padSource(_ o: Int, begin: Int, dim: Int, mode: String) -> Int {
        let i = o - begin
        if i >= 0 && i < dim { return i }
        switch mode {
        case "edge": return i < 0 ? 0 : dim - 1
        case "wrap": return ((i % dim) + dim) % dim
        case "reflect":
            if dim == 1 { return 0 }
            let period = 2 * (dim - 1)
            let folded = ((i % period) + period) % period
            return folded < dim ? folded : period - folded
        default: return -1
        }
    }

    static func padKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let data = try requiredInput(inputs, 0, "data")
        let mode = try padMode(context)
        let pads: [Int64]
        var axes: [Int64]?
        var fill = zeroElement(data.kind)
        if context.opsetVersion < 11 {
            guard let attribute = try context.ints(context.opsetVersion < 2 ? "paddings" : "pads") else {
                throw OperatorError("attribute 'pads' is missing")
            }
            pads = attribute
            let value = try context.float("value", default: 0)
            guard data.kind == .real else { throw OperatorError("Pad before opset 11 supports floating-point data only") }
            fill = .reals([roundReal(value, to: data.dataType)])
        } else {
            pads = try vectorInts(try requiredInput(inputs, 1, "pads"), "pads")
            if let constant = optionalInput(inputs, 2), constant.count > 0 {
                guard constant.dataType == data.dataType else { throw OperatorError("constant_value is \(constant.dataType), data is \(data.dataType)") }
                fill = constant.elements.gathering([0])
            }
            if context.opsetVersion >= 18, let axesInput = optionalInput(inputs, 3) { axes = try vectorInts(axesInput, "axes") }
        }
        let amounts = try padAmounts(pads, axes: axes, rank: data.rank)
        var shape: [Int] = []
        for (dim, pad) in zip(data.shape, amounts) {
            // A pad removes at most the whole axis and adds at most `elementLimit`.
            guard pad.begin >= -Int64(dim), pad.end >= -Int64(dim), pad.begin <= Int64(elementLimit), pad.end <= Int64(elementLimit) else {
                throw OperatorError("invalid pads \(pad.begin), \(pad.end) for dimension \(dim)")
            }
            let size = Int64(dim) + pad.begin + pad.end
            guard size >= 0, size <= Int64(elementLimit) else { throw OperatorError("padding gives dimension \(size)") }
            if size > 0 && dim == 0 && mode != "constant" && (pad.begin > 0 || pad.end > 0) {
                throw OperatorError("cannot \(mode)-pad an empty axis")
            }
            shape.append(Int(size))
        }
        let count = try checkedElementCount(shape)
        if count == 0 { return [TensorValue(data.dataType, shape: shape, .empty(data.kind))] }
        let rank = data.rank
        if rank == 0 { return [data] }
        let strides = rowMajorStrides(data.shape)
        // Per axis, the input offset each output coordinate reads (-1: the constant).
        let tables: [[Int]] = (0..<rank).map { axis in
            (0..<shape[axis]).map { o in
                let source = padSource(o, begin: Int(amounts[axis].begin), dim: data.shape[axis], mode: mode)
                return source < 0 ? -1 : source * strides[axis]
            }
        }
        var indices: [Int] = []
        indices.reserveCapacity(count)
        var position = [Int](repeating: 0, count: rank)
        let inner = tables[rank - 1]
        while true {
            var base = 0
            for axis in 0..<(rank - 1) {
                let offset = tables[axis][position[axis]]
                if offset < 0 { base = -1; break }
                base += offset
            }
            if base < 0 {
                indices.append(contentsOf: repeatElement(-1, count: inner.count))
            } else {
                for offset in inner { indices.append(offset < 0 ? -1 : base + offset) }
            }
            var axis = rank - 2
            while axis >= 0 {
                position[axis] += 1
                if position[axis] < shape[axis] { break }
                position[axis] = 0
                axis -= 1
            }
            if axis < 0 { break }
        }
        return [TensorValue(data.dataType, shape: shape, gather(data.elements, indices, fill: fill))]
    }

    static func padInference(_ context: inout InferenceContext) throws(OperatorError) {
        let data = context.input(0)
        let type = data?.elementType
        guard let shape = data?.shape else {
            context.setOutput(0, type: type, shape: nil)
            return
        }
        let fresh = freshDimensions(context)
        var pads: [Int64]?
        var axes: [Int64]?
        var axesUnknown = false
        if context.node.opsetVersion < 11 {
            pads = try context.node.ints(context.node.opsetVersion < 2 ? "paddings" : "pads")
        } else {
            pads = knownInts(context.input(1))
            if context.node.opsetVersion >= 18, let axesFacts = context.input(3) {
                axes = knownInts(axesFacts)
                axesUnknown = axes == nil
            }
        }
        guard let pads, !axesUnknown else {
            context.setOutput(0, type: type, shape: shape.map { _ in fresh() })
            return
        }
        let amounts = try padAmounts(pads, axes: axes, rank: shape.count)
        var output: [Dimension] = []
        for (dim, pad) in zip(shape, amounts) {
            let (total, overflow) = pad.begin.addingReportingOverflow(pad.end)
            if overflow { throw OperatorError("pads overflow") }
            if case .value(let v) = dim {
                let (size, overflow) = v.addingReportingOverflow(total)
                if overflow || size < 0 { throw OperatorError("invalid pads for dimension \(v)") }
            }
            output.append(sumDimension(concreteDimension(dim, fresh: fresh), .value(total), fresh: fresh))
        }
        context.setOutput(0, type: type, shape: output)
    }

    // MARK: DepthToSpace and SpaceToDepth

    /// The block size and mode ("DCR" or "CRD") of DepthToSpace / SpaceToDepth.
    static func blockParameters(_ context: OperatorContext) throws(OperatorError) -> (size: Int64, mode: String) {
        guard let size = try context.int("blocksize"), size > 0, size <= 1 << 16 else {
            throw OperatorError("attribute 'blocksize' is missing or invalid")
        }
        let mode = try context.string("mode") ?? "DCR"
        guard mode == "DCR" || mode == "CRD" else { throw OperatorError("unknown mode '\(mode)'") }
        return (size, mode)
    }

    static func depthToSpaceKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let input = try requiredInput(inputs, 0, "input")
        let (blockSize, mode) = try blockParameters(context)
        let bs = Int(blockSize)
        guard input.rank == 4 else { throw OperatorError("DepthToSpace needs a 4-D input, got shape \(input.shape)") }
        let (b, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        guard c % (bs * bs) == 0 else { throw OperatorError("\(c) channels do not divide by blocksize² \(bs * bs)") }
        let depth = c / (bs * bs)
        // Read the input as 6-D, transposed: output [b, depth, h, bs, w, bs].
        let shape6: [Int]
        let perm: [Int]
        if mode == "DCR" {
            shape6 = [b, bs, bs, depth, h, w]
            perm = [0, 3, 4, 1, 5, 2]
        } else {
            shape6 = [b, depth, bs, bs, h, w]
            perm = [0, 1, 4, 2, 5, 3]
        }
        let strides6 = rowMajorStrides(shape6)
        let indices = affineIndices(shape: perm.map { shape6[$0] }, offset: 0, strides: perm.map { strides6[$0] })
        return [input.gathering(indices, shape: [b, depth, h * bs, w * bs])]
    }

    static func spaceToDepthKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let input = try requiredInput(inputs, 0, "input")
        let (blockSize, mode) = try blockParameters(context)
        let bs = Int(blockSize)
        guard input.rank == 4 else { throw OperatorError("SpaceToDepth needs a 4-D input, got shape \(input.shape)") }
        let (b, c, h, w) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        guard h % bs == 0, w % bs == 0 else { throw OperatorError("spatial size \(h)x\(w) does not divide by blocksize \(bs)") }
        let shape6 = [b, c, h / bs, bs, w / bs, bs]
        let perm = mode == "DCR" ? [0, 3, 5, 1, 2, 4] : [0, 1, 3, 5, 2, 4]
        let strides6 = rowMajorStrides(shape6)
        let indices = affineIndices(shape: perm.map { shape6[$0] }, offset: 0, strides: perm.map { strides6[$0] })
        return [input.gathering(indices, shape: [b, c * bs * bs, h / bs, w / bs])]
    }

    static func depthToSpaceInference(_ context: inout InferenceContext) throws(OperatorError) {
        try blockInference(&context, toSpace: true)
    }

    static func spaceToDepthInference(_ context: inout InferenceContext) throws(OperatorError) {
        try blockInference(&context, toSpace: false)
    }

    /// DepthToSpace (`toSpace`) or SpaceToDepth: channels divide or multiply by blocksize², the
    /// spatial sizes the other way by blocksize.
    static func blockInference(_ context: inout InferenceContext, toSpace: Bool) throws(OperatorError) {
        let input = context.input(0)
        let type = input?.elementType
        let (size, _) = try blockParameters(context.node)
        let fresh = freshDimensions(context)
        guard let shape = input?.shape else {
            context.setOutput(0, type: type, shape: (0..<4).map { _ in fresh() })
            return
        }
        guard shape.count == 4 else { throw OperatorError("a 4-D input is required") }
        func divided(_ dim: Dimension, by factor: Int64) throws(OperatorError) -> Dimension {
            if factor == 1 { return concreteDimension(dim, fresh: fresh) }
            guard case .value(let v) = dim else { return fresh() }
            guard v % factor == 0 else { throw OperatorError("\(v) does not divide by \(factor)") }
            return .value(v / factor)
        }
        let output: [Dimension]
        if toSpace {
            output = [concreteDimension(shape[0], fresh: fresh), try divided(shape[1], by: size * size),
                      scaledDimension(shape[2], by: size, fresh: fresh), scaledDimension(shape[3], by: size, fresh: fresh)]
        } else {
            output = [concreteDimension(shape[0], fresh: fresh), scaledDimension(shape[1], by: size * size, fresh: fresh),
                      try divided(shape[2], by: size), try divided(shape[3], by: size)]
        }
        context.setOutput(0, type: type, shape: output)
    }

    // MARK: Trilu

    static func triluKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let input = try requiredInput(inputs, 0, "input")
        guard input.rank >= 2 else { throw OperatorError("Trilu needs at least 2 dimensions, got shape \(input.shape)") }
        let k = try optionalInput(inputs, 1).map { (value) throws(OperatorError) in try value.scalarInt64() } ?? 0
        let upper = try context.int("upper", default: 1) != 0
        let rows = input.shape[input.rank - 2], columns = input.shape[input.rank - 1]
        let matrix = rows * columns
        var indices: [Int] = []
        indices.reserveCapacity(input.count)
        var base = 0
        while base < input.count {
            for row in 0..<rows {
                for column in 0..<columns {
                    let offset = Int64(column) - Int64(row)
                    let keep = upper ? offset >= k : offset <= k
                    indices.append(keep ? base + row * columns + column : -1)
                }
            }
            base += matrix
        }
        return [TensorValue(input.dataType, shape: input.shape, gather(input.elements, indices, fill: zeroElement(input.kind)))]
    }

    // MARK: ReverseSequence

    static func reverseSequenceKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let input = try requiredInput(inputs, 0, "input")
        let lengths = try vectorInts(try requiredInput(inputs, 1, "sequence_lens"), "sequence_lens")
        let batchAxis = try context.int("batch_axis", default: 1)
        let timeAxis = try context.int("time_axis", default: 0)
        guard input.rank >= 2, Set([batchAxis, timeAxis]) == [0, 1] else {
            throw OperatorError("batch_axis and time_axis must be 0 and 1 of an input of rank 2 or more")
        }
        let batch = input.shape[Int(batchAxis)], time = input.shape[Int(timeAxis)]
        guard lengths.count == batch else { throw OperatorError("sequence_lens has \(lengths.count) elements for batch \(batch)") }
        let strides = rowMajorStrides(input.shape)
        let batchStride = strides[Int(batchAxis)], timeStride = strides[Int(timeAxis)]
        let inner = input.rank > 2 ? strides[1] : 1
        var indices = Array(0..<input.count)
        for b in 0..<batch {
            let length = lengths[b]
            guard length >= 0, length <= Int64(time) else { throw OperatorError("sequence length \(length) is out of range") }
            for t in 0..<Int(length) {
                let target = b * batchStride + t * timeStride
                let source = b * batchStride + (Int(length) - 1 - t) * timeStride
                for r in 0..<inner { indices[target + r] = source + r }
            }
        }
        return [input.gathering(indices, shape: input.shape)]
    }
}
