import ONNXFuseIR

// Gather, GatherElements, GatherND, ScatterND, ScatterElements, OneHot, NonZero, Compress,
// TopK and Unique: kernels and inference.

extension ShapeKit {
    /// Registers the operators of this file.
    static func registerIndexing(_ registry: inout OperatorRegistry) {
        registry.register(["Gather"], kernel: gatherKernel)
        registry.register(["Gather"], inference: gatherInference)
        registry.register(["GatherElements"], kernel: gatherElementsKernel)
        registry.register(["GatherElements"], inference: gatherElementsInference)
        registry.register(["GatherND"], kernel: gatherNDKernel)
        registry.register(["GatherND"], inference: gatherNDInference)
        registry.register(["ScatterND"], kernel: scatterNDKernel)
        registry.register(["ScatterND"], inference: sameShapeInference)
        registry.register(["ScatterElements"], kernel: scatterElementsKernel)
        registry.register(["ScatterElements"], inference: sameShapeInference)
        // Scatter (opsets 9 and 10, deprecated) is ScatterElements without reduction.
        registry.register(["Scatter"], kernel: scatterElementsKernel)
        registry.register(["Scatter"], inference: sameShapeInference)
        registry.register(["OneHot"], kernel: oneHotKernel)
        registry.register(["OneHot"], inference: oneHotInference)
        registry.register(["NonZero"], kernel: nonZeroKernel)
        registry.register(["NonZero"], inference: nonZeroInference)
        registry.register(["Compress"], kernel: compressKernel)
        registry.register(["Compress"], inference: compressInference)
        registry.register(["TopK"], kernel: topKKernel)
        registry.register(["TopK"], inference: topKInference)
        registry.register(["Unique"], kernel: uniqueKernel)
        registry.register(["Unique"], inference: uniqueInference)
    }

    /// `index` resolved against an axis of `dim` (negative counts from the end), checked.
    static func resolveIndex(_ index: Int64, dim: Int) throws(OperatorError) -> Int {
        let resolved = index < 0 ? index + Int64(dim) : index
        guard resolved >= 0 && resolved < Int64(dim) else { throw OperatorError("index \(index) is out of range for dimension \(dim)") }
        return Int(resolved)
    }

    /// The integers of an index tensor (an integer type).
    static func indexValues(_ value: TensorValue, _ name: String) throws(OperatorError) -> [Int64] {
        guard value.kind == .integer || value.kind == .unsigned else { throw OperatorError("input '\(name)' must hold integers") }
        return try value.int64Values()
    }

    /// The flat positions in a tensor of `shape` of the elements that taking `positions` along
    /// `axis` gives, in the result's order: for each index before the axis, each of `positions`,
    /// then each index after it.
    static func flatPositions(selecting positions: [Int], along axis: Int, of shape: [Int]) -> [Int] {
        let dim = shape[axis]
        let outer = shapeProduct(Array(shape[..<axis])) ?? 0
        let inner = shapeProduct(Array(shape[(axis + 1)...])) ?? 0
        var flat: [Int] = []
        flat.reserveCapacity(outer * positions.count * inner)
        for o in 0..<outer {
            for k in positions {
                let base = (o * dim + k) * inner
                for i in base..<(base + inner) { flat.append(i) }
            }
        }
        return flat
    }

    // MARK: Gather

    static func gatherKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let data = try requiredInput(inputs, 0, "data")
        let indices = try requiredInput(inputs, 1, "indices")
        guard data.rank >= 1 else { throw OperatorError("Gather needs data of rank 1 or more") }
        let axis = try normalizeAxis(try context.int("axis", default: 0), rank: data.rank)
        let dim = data.shape[axis]
        var resolved: [Int] = []
        resolved.reserveCapacity(indices.count)
        for index in try indexValues(indices, "indices") { resolved.append(try resolveIndex(index, dim: dim)) }
        let shape = Array(data.shape[..<axis]) + indices.shape + Array(data.shape[(axis + 1)...])
        _ = try checkedElementCount(shape)
        return [data.gathering(flatPositions(selecting: resolved, along: axis, of: data.shape), shape: shape)]
    }

    static func gatherInference(_ context: inout InferenceContext) throws(OperatorError) {
        let data = context.input(0)
        let indices = context.input(1)
        let type = data?.elementType
        guard let dataShape = data?.shape, let indicesShape = indices?.shape else {
            context.setOutput(0, type: type, shape: nil)
            return
        }
        guard !dataShape.isEmpty else { throw OperatorError("Gather needs data of rank 1 or more") }
        let axis = try normalizeAxis(try context.node.int("axis", default: 0), rank: dataShape.count)
        let fresh = freshDimensions(context)
        let shape = (Array(dataShape[..<axis]) + indicesShape + Array(dataShape[(axis + 1)...])).map { concreteDimension($0, fresh: fresh) }
        var values: [Dimension]?
        if dataShape.count == 1, indicesShape.count <= 1, let elements = knownDimensions(data), let positions = knownInts(indices) {
            values = []
            for position in positions { values?.append(elements[try resolveIndex(position, dim: elements.count)]) }
        }
        context.setOutput(0, outputFacts(type: type, shape: shape, shapeValue: values))
    }

    // MARK: GatherElements and ScatterElements

    /// For GatherElements / ScatterElements: the flat data position of each element of an
    /// `indices` tensor along `axis`.
    static func elementPositions(data: TensorValue, indices: TensorValue, axis: Int) throws(OperatorError) -> [Int] {
        guard indices.rank == data.rank else { throw OperatorError("indices rank \(indices.rank) differs from data rank \(data.rank)") }
        for d in 0..<data.rank where d != axis && indices.shape[d] > data.shape[d] {
            throw OperatorError("indices shape \(indices.shape) exceeds data shape \(data.shape)")
        }
        let strides = rowMajorStrides(data.shape)
        var viewStrides = strides
        viewStrides[axis] = 0
        var positions = affineIndices(shape: indices.shape, offset: 0, strides: viewStrides)
        let values = try indexValues(indices, "indices")
        let dim = data.shape[axis]
        for i in positions.indices { positions[i] += try resolveIndex(values[i], dim: dim) * strides[axis] }
        return positions
    }

    static func gatherElementsKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let data = try requiredInput(inputs, 0, "data")
        let indices = try requiredInput(inputs, 1, "indices")
        guard data.rank >= 1 else { throw OperatorError("GatherElements needs data of rank 1 or more") }
        let axis = try normalizeAxis(try context.int("axis", default: 0), rank: data.rank)
        return [data.gathering(try elementPositions(data: data, indices: indices, axis: axis), shape: indices.shape)]
    }

    static func gatherElementsInference(_ context: inout InferenceContext) throws(OperatorError) {
        let data = context.input(0)
        let indices = context.input(1)
        var values: [Dimension]?
        if data?.rank == 1, indices?.rank == 1, let elements = knownDimensions(data), let positions = knownInts(indices) {
            values = []
            for position in positions { values?.append(elements[try resolveIndex(position, dim: elements.count)]) }
        }
        context.setOutput(0, outputFacts(type: data?.elementType, shape: indices?.shape, shapeValue: values))
    }

    static func scatterElementsKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let data = try requiredInput(inputs, 0, "data")
        let indices = try requiredInput(inputs, 1, "indices")
        let updates = try requiredInput(inputs, 2, "updates")
        guard data.rank >= 1 else { throw OperatorError("ScatterElements needs data of rank 1 or more") }
        guard updates.shape == indices.shape else { throw OperatorError("updates shape \(updates.shape) differs from indices shape \(indices.shape)") }
        let axis = try normalizeAxis(try context.int("axis", default: 0), rank: data.rank)
        let reduction = context.opType == "ScatterElements" && context.opsetVersion >= 16 ? try ScatterReduction(context: context) : .none
        let positions = try elementPositions(data: data, indices: indices, axis: axis)
        return [try scatter(data, positions: positions, updates: updates, reduction: reduction)]
    }

    // MARK: GatherND and ScatterND

    /// For GatherND / ScatterND: the flat data offset each index tuple selects (with
    /// `batchDims` leading batch dimensions), and the size of the slice it selects.
    static func tupleOffsets(data: TensorValue, indices: TensorValue, batchDims: Int) throws(OperatorError) -> (offsets: [Int], slice: Int) {
        let q = indices.rank, r = data.rank
        guard q >= 1, r >= 1 else { throw OperatorError("data and indices need rank 1 or more") }
        let k = indices.shape[q - 1]
        guard batchDims >= 0, batchDims < Swift.min(q, r), batchDims + k <= r else {
            throw OperatorError("indices shape \(indices.shape) does not index data shape \(data.shape)")
        }
        guard Array(indices.shape[..<batchDims]) == Array(data.shape[..<batchDims]) else {
            throw OperatorError("batch dimensions of \(indices.shape) and \(data.shape) differ")
        }
        let values = try indexValues(indices, "indices")
        let strides = rowMajorStrides(data.shape)
        let slice = shapeProduct(Array(data.shape[(batchDims + k)...])) ?? 0
        let batchCount = shapeProduct(Array(data.shape[..<batchDims])) ?? 0
        let batchSize = shapeProduct(Array(data.shape[batchDims...])) ?? 0
        let tuples = shapeProduct(Array(indices.shape[batchDims..<(q - 1)])) ?? 0
        var offsets: [Int] = []
        offsets.reserveCapacity(batchCount * tuples)
        for batch in 0..<batchCount {
            for t in 0..<tuples {
                let start = (batch * tuples + t) * k
                var offset = batch * batchSize
                for j in 0..<k { offset += try resolveIndex(values[start + j], dim: data.shape[batchDims + j]) * strides[batchDims + j] }
                offsets.append(offset)
            }
        }
        return (offsets, slice)
    }

    static func gatherNDKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let data = try requiredInput(inputs, 0, "data")
        let indices = try requiredInput(inputs, 1, "indices")
        let batchDims = context.opsetVersion >= 12 ? Int(clamping: try context.int("batch_dims", default: 0)) : 0
        let (offsets, slice) = try tupleOffsets(data: data, indices: indices, batchDims: batchDims)
        let k = indices.shape[indices.rank - 1]
        let shape = Array(indices.shape[..<(indices.rank - 1)]) + Array(data.shape[(batchDims + k)...])
        let count = try checkedElementCount(shape)
        var flat: [Int] = []
        flat.reserveCapacity(count)
        for offset in offsets {
            for i in offset..<(offset + slice) { flat.append(i) }
        }
        return [data.gathering(flat, shape: shape)]
    }

    static func gatherNDInference(_ context: inout InferenceContext) throws(OperatorError) {
        let data = context.input(0)
        let type = data?.elementType
        let batchDims = context.node.opsetVersion >= 12 ? Int(clamping: try context.node.int("batch_dims", default: 0)) : 0
        guard let dataShape = data?.shape, let indicesShape = context.input(1)?.shape, let last = indicesShape.last,
              case .value(let k) = last else {
            context.setOutput(0, type: type, shape: nil)
            return
        }
        guard batchDims >= 0, batchDims < Swift.min(indicesShape.count, dataShape.count), Int64(batchDims) + k <= Int64(dataShape.count) else {
            throw OperatorError("indices do not index data")
        }
        let fresh = freshDimensions(context)
        var shape: [Dimension] = []
        for index in 0..<(indicesShape.count - 1) {
            shape.append(index < batchDims ? try mergedDimension(indicesShape[index], dataShape[index]) : indicesShape[index])
        }
        shape += dataShape[(batchDims + Int(k))...]
        context.setOutput(0, type: type, shape: shape.map { concreteDimension($0, fresh: fresh) })
    }

    static func scatterNDKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let data = try requiredInput(inputs, 0, "data")
        let indices = try requiredInput(inputs, 1, "indices")
        let updates = try requiredInput(inputs, 2, "updates")
        let reduction = context.opsetVersion >= 16 ? try ScatterReduction(context: context) : .none
        let (offsets, slice) = try tupleOffsets(data: data, indices: indices, batchDims: 0)
        let k = indices.shape[indices.rank - 1]
        let expected = Array(indices.shape[..<(indices.rank - 1)]) + Array(data.shape[k...])
        guard updates.shape == expected else { throw OperatorError("updates shape \(updates.shape) should be \(expected)") }
        var positions: [Int] = []
        positions.reserveCapacity(updates.count)
        for offset in offsets {
            for i in offset..<(offset + slice) { positions.append(i) }
        }
        return [try scatter(data, positions: positions, updates: updates, reduction: reduction)]
    }

    // MARK: OneHot

    /// OneHot's depth from its input (an integer or integral real, at least 1).
    static func oneHotDepth(_ value: TensorValue) throws(OperatorError) -> Int64 {
        guard value.count == 1 else { throw OperatorError("depth must have one element") }
        let depth: Int64
        switch value.elements {
        case .reals(let v):
            guard v[0].isFinite, v[0] == v[0].rounded(), v[0].magnitude < 0x1p62 else { throw OperatorError("invalid depth \(v[0])") }
            depth = Int64(v[0])
        default: depth = try value.scalarInt64()
        }
        guard depth >= 1 else { throw OperatorError("depth \(depth) must be positive") }
        return depth
    }

    static func oneHotKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let indices = try requiredInput(inputs, 0, "indices")
        let depth = try oneHotDepth(try requiredInput(inputs, 1, "depth"))
        let values = try requiredInput(inputs, 2, "values")
        guard values.count == 2 else { throw OperatorError("values must hold [off, on]") }
        let rank = indices.rank
        let axis = try normalizeAxis(try context.int("axis", default: -1), rank: rank + 1)
        guard depth <= Int64(elementLimit) else { throw OperatorError("depth \(depth) is too large") }
        let d = Int(depth)
        let shape = Array(indices.shape[..<axis]) + [d] + Array(indices.shape[axis...])
        let count = try checkedElementCount(shape)
        // Each index as a position in 0..<depth, or -1 (no match).
        var hot: [Int] = []
        hot.reserveCapacity(indices.count)
        func place(_ index: Int64) -> Int {
            let resolved = index < 0 ? index &+ depth : index
            return resolved >= 0 && resolved < depth ? Int(resolved) : -1
        }
        switch indices.elements {
        case .integers(let v): for index in v { hot.append(place(index)) }
        case .unsigned(let v): for index in v { hot.append(index < UInt64(depth) ? Int(index) : -1) }
        case .reals(let v):
            for index in v {
                guard index.isFinite, index == index.rounded(), index.magnitude < 0x1p62 else { hot.append(-1); continue }
                hot.append(place(Int64(index)))
            }
        default: throw OperatorError("indices must be numbers")
        }
        let outer = shapeProduct(Array(indices.shape[..<axis])) ?? 0
        let inner = shapeProduct(Array(indices.shape[axis...])) ?? 0
        var selection: [Int] = []
        selection.reserveCapacity(count)
        for o in 0..<outer {
            for position in 0..<d {
                for i in 0..<inner { selection.append(hot[o * inner + i] == position ? 1 : 0) }
            }
        }
        return [values.gathering(selection, shape: shape)]
    }

    static func oneHotInference(_ context: inout InferenceContext) throws(OperatorError) {
        let type = context.input(2)?.elementType
        guard let shape = context.input(0)?.shape else {
            context.setOutput(0, type: type, shape: nil)
            return
        }
        let axis = try normalizeAxis(try context.node.int("axis", default: -1), rank: shape.count + 1)
        let fresh = freshDimensions(context)
        var depth: Dimension = fresh()
        if let constant = context.input(1)?.constant {
            depth = .value(try oneHotDepth(constant))
        } else if case .param(let p)? = knownScalarDimension(context.input(1)) {
            depth = .param(p)
        }
        let output = Array(shape[..<axis]) + [depth] + Array(shape[axis...])
        context.setOutput(0, type: type, shape: output.map { concreteDimension($0, fresh: fresh) })
    }

    // MARK: NonZero

    static func nonZeroKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let input = try requiredInput(inputs, 0, "X")
        var positions: [Int] = []
        switch input.elements {
        case .integers(let v): for (i, x) in v.enumerated() where x != 0 { positions.append(i) }
        case .unsigned(let v): for (i, x) in v.enumerated() where x != 0 { positions.append(i) }
        case .reals(let v): for (i, x) in v.enumerated() where x != 0 { positions.append(i) }
        case .booleans(let v): for (i, x) in v.enumerated() where x { positions.append(i) }
        case .strings(let v): for (i, x) in v.enumerated() where !x.isEmpty { positions.append(i) }
        }
        let rank = input.rank
        if rank == 0 { return [TensorValue(.int64, shape: [0, positions.count], .integers([]))] }
        let strides = rowMajorStrides(input.shape)
        var coordinates: [Int64] = []
        coordinates.reserveCapacity(rank * positions.count)
        for axis in 0..<rank {
            for position in positions { coordinates.append(Int64((position / strides[axis]) % input.shape[axis])) }
        }
        return [TensorValue(.int64, shape: [rank, positions.count], .integers(coordinates))]
    }

    static func nonZeroInference(_ context: inout InferenceContext) throws(OperatorError) {
        guard let rank = context.input(0)?.rank else {
            context.setOutput(0, type: .int64, shape: [context.freshDimension(), context.freshDimension()])
            return
        }
        context.setOutput(0, type: .int64, shape: [.value(Int64(rank)), context.freshDimension()])
    }

    // MARK: Compress

    /// The positions Compress keeps along an axis of `dim`.
    static func compressPositions(_ condition: TensorValue, dim: Int) throws(OperatorError) -> [Int] {
        guard condition.rank == 1 else { throw OperatorError("condition must be 1-D, got shape \(condition.shape)") }
        var kept: [Int] = []
        for (index, flag) in try condition.int64Values().enumerated() where flag != 0 {
            guard index < dim else { throw OperatorError("condition selects index \(index) beyond dimension \(dim)") }
            kept.append(index)
        }
        return kept
    }

    static func compressKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let input = try requiredInput(inputs, 0, "input")
        let condition = try requiredInput(inputs, 1, "condition")
        guard let axisAttribute = try context.int("axis") else {
            let kept = try compressPositions(condition, dim: input.count)
            return [input.gathering(kept, shape: [kept.count])]
        }
        let axis = try normalizeAxis(axisAttribute, rank: input.rank)
        let dim = input.shape[axis]
        let kept = try compressPositions(condition, dim: dim)
        var shape = input.shape
        shape[axis] = kept.count
        return [input.gathering(flatPositions(selecting: kept, along: axis, of: input.shape), shape: shape)]
    }

    static func compressInference(_ context: inout InferenceContext) throws(OperatorError) {
        let input = context.input(0)
        let type = input?.elementType
        let fresh = freshDimensions(context)
        var selected = fresh()
        if let condition = context.input(1)?.constant, condition.rank == 1 {
            selected = .value(Int64(try condition.int64Values().filter { $0 != 0 }.count))
        }
        guard let axisAttribute = try context.node.int("axis") else {
            context.setOutput(0, type: type, shape: [selected])
            return
        }
        guard var shape = input?.shape else {
            context.setOutput(0, type: type, shape: nil)
            return
        }
        let axis = try normalizeAxis(axisAttribute, rank: shape.count)
        shape[axis] = selected
        context.setOutput(0, type: type, shape: shape.map { concreteDimension($0, fresh: fresh) })
    }

    // MARK: TopK

    /// TopK's K: the `k` attribute before opset 10, else input 1.
    static func topKCount(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> Int64 {
        if context.opsetVersion < 10 {
            guard let k = try context.int("k") else { throw OperatorError("attribute 'k' is missing") }
            return k
        }
        return try requiredInput(inputs, 1, "K").scalarInt64()
    }

    static func topKKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let input = try requiredInput(inputs, 0, "X")
        guard input.kind != .string, input.kind != .boolean else { throw OperatorError("TopK does not support \(input.dataType)") }
        guard input.rank >= 1 else { throw OperatorError("TopK needs rank 1 or more") }
        let k64 = try topKCount(context, inputs)
        let axis = try normalizeAxis(try context.int("axis", default: -1), rank: input.rank)
        let largest = context.opsetVersion >= 11 ? try context.int("largest", default: 1) != 0 : true
        let dim = input.shape[axis]
        guard k64 >= 0, k64 <= Int64(dim) else { throw OperatorError("K \(k64) is out of range for dimension \(dim)") }
        let k = Int(k64)
        var shape = input.shape
        shape[axis] = k
        let count = try checkedElementCount(shape)
        let outer = shapeProduct(Array(input.shape[..<axis])) ?? 0
        let inner = shapeProduct(Array(input.shape[(axis + 1)...])) ?? 0
        let compare = elementComparator(input.elements)
        var flat = [Int](repeating: 0, count: count)
        var positions = [Int64](repeating: 0, count: count)
        var order: [Int] = []
        order.reserveCapacity(dim)
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * dim * inner + i
                order.removeAll(keepingCapacity: true)
                order.append(contentsOf: 0..<dim)
                order.sort { a, b in
                    let c = compare(base + a * inner, base + b * inner)
                    if c != 0 { return largest ? c > 0 : c < 0 }
                    return a < b
                }
                for j in 0..<k {
                    let target = (o * k + j) * inner + i
                    flat[target] = base + order[j] * inner
                    positions[target] = Int64(order[j])
                }
            }
        }
        return [input.gathering(flat, shape: shape), TensorValue(.int64, shape: shape, .integers(positions))]
    }

    static func topKInference(_ context: inout InferenceContext) throws(OperatorError) {
        let input = context.input(0)
        let type = input?.elementType
        guard var shape = input?.shape else {
            context.setOutput(0, type: type, shape: nil)
            context.setOutput(1, type: .int64, shape: nil)
            return
        }
        let axis = try normalizeAxis(try context.node.int("axis", default: -1), rank: shape.count)
        let fresh = freshDimensions(context)
        var k: Dimension = fresh()
        if context.node.opsetVersion < 10 {
            guard let attribute = try context.node.int("k") else { throw OperatorError("attribute 'k' is missing") }
            k = .value(attribute)
        } else if let known = knownScalarDimension(context.input(1)), known != .unknown {
            k = known
        }
        if case .value(let v) = k, case .value(let dim) = shape[axis], v < 0 || v > dim {
            throw OperatorError("K \(v) is out of range for dimension \(dim)")
        }
        shape[axis] = k
        shape = shape.map { concreteDimension($0, fresh: fresh) }
        context.setOutput(0, type: type, shape: shape)
        context.setOutput(1, type: .int64, shape: shape)
    }

    // MARK: Unique

    static func uniqueKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let input = try requiredInput(inputs, 0, "X")
        let sorted = try context.int("sorted", default: 1) != 0
        let axisAttribute = try context.int("axis")
        // Items along the axis (or single elements); item i, outer o, inner j is at (o * n + i) * inner + j.
        let n: Int, outer: Int, inner: Int
        var axis = 0
        if let axisAttribute {
            axis = try normalizeAxis(axisAttribute, rank: input.rank)
            n = input.shape[axis]
            outer = shapeProduct(Array(input.shape[..<axis])) ?? 0
            inner = shapeProduct(Array(input.shape[(axis + 1)...])) ?? 0
        } else {
            (n, outer, inner) = (input.count, 1, 1)
        }
        let compare = elementComparator(input.elements)
        func compareItems(_ p: Int, _ q: Int) -> Int {
            for o in 0..<outer {
                for j in 0..<inner {
                    let c = compare((o * n + p) * inner + j, (o * n + q) * inner + j)
                    if c != 0 { return c }
                }
            }
            return 0
        }
        let order = (0..<n).sorted { a, b in
            let c = compareItems(a, b)
            return c != 0 ? c < 0 : a < b
        }
        // Groups of equal items in sorted order: their first occurrence and size.
        var firsts: [Int] = []
        var counts: [Int64] = []
        var groupOf = [Int](repeating: 0, count: n)
        for (rank, item) in order.enumerated() {
            if rank == 0 || compareItems(order[rank - 1], item) != 0 {
                firsts.append(item)
                counts.append(0)
            }
            groupOf[item] = firsts.count - 1
            counts[counts.count - 1] += 1
        }
        // Output order of the groups: sorted, or by first occurrence.
        var outputOrder = Array(firsts.indices)
        if !sorted { outputOrder.sort { firsts[$0] < firsts[$1] } }
        var rankOfGroup = [Int](repeating: 0, count: firsts.count)
        for (rank, group) in outputOrder.enumerated() { rankOfGroup[group] = rank }
        let u = firsts.count
        var flat: [Int] = []
        flat.reserveCapacity(outer * u * inner)
        for o in 0..<outer {
            for group in outputOrder {
                let base = (o * n + firsts[group]) * inner
                for j in base..<(base + inner) { flat.append(j) }
            }
        }
        var shape = [u]
        if axisAttribute != nil {
            shape = input.shape
            shape[axis] = u
        }
        return [input.gathering(flat, shape: shape),
                .int64(outputOrder.map { Int64(firsts[$0]) }),
                .int64(groupOf.map { Int64(rankOfGroup[$0]) }),
                .int64(outputOrder.map { counts[$0] })]
    }

    static func uniqueInference(_ context: inout InferenceContext) throws(OperatorError) {
        let input = context.input(0)
        let type = input?.elementType
        let fresh = freshDimensions(context)
        let u = fresh()
        var inverse: [Dimension]?
        if let axisAttribute = try context.node.int("axis") {
            if var shape = input?.shape {
                let axis = try normalizeAxis(axisAttribute, rank: shape.count)
                inverse = [concreteDimension(shape[axis], fresh: fresh)]
                shape[axis] = u
                context.setOutput(0, type: type, shape: shape.map { concreteDimension($0, fresh: fresh) })
            } else {
                context.setOutput(0, type: type, shape: nil)
                inverse = [fresh()]
            }
        } else {
            context.setOutput(0, type: type, shape: [u])
            inverse = [input?.shape.map { productDimension($0, fresh: fresh) } ?? fresh()]
        }
        context.setOutput(1, type: .int64, shape: [u])
        context.setOutput(2, type: .int64, shape: inverse)
        context.setOutput(3, type: .int64, shape: [u])
    }
}
