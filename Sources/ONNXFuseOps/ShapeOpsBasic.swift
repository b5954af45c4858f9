import ONNXFuseIR

// Shape, Size, Reshape, Flatten, Squeeze, Unsqueeze, Identity, Constant, ConstantOfShape, Range,
// Dropout and EyeLike: kernels and inference.

extension ShapeKit {
    /// Registers the operators of this file.
    static func registerBasic(_ registry: inout OperatorRegistry) {
        registry.register(["Shape"], kernel: shapeKernel)
        registry.register(["Shape"], inference: shapeInference)
        registry.register(["Size"], kernel: sizeKernel)
        registry.register(["Size"], inference: sizeInference)
        registry.register(["Reshape"], kernel: reshapeKernel)
        registry.register(["Reshape"], inference: reshapeInference)
        registry.register(["Flatten"], kernel: flattenKernel)
        registry.register(["Flatten"], inference: flattenInference)
        registry.register(["Squeeze"], kernel: squeezeKernel)
        registry.register(["Squeeze"], inference: squeezeInference)
        registry.register(["Unsqueeze"], kernel: unsqueezeKernel)
        registry.register(["Unsqueeze"], inference: unsqueezeInference)
        registry.register(["Identity"], kernel: identityKernel)
        registry.register(["Identity"], inference: identityInference)
        registry.register(["Constant"], kernel: constantKernel)
        registry.register(["Constant"], inference: constantInference)
        registry.register(["ConstantOfShape"], kernel: constantOfShapeKernel)
        registry.register(["ConstantOfShape"], inference: constantOfShapeInference)
        registry.register(["Range"], kernel: rangeKernel)
        registry.register(["Range"], inference: rangeInference)
        registry.register(["Dropout"], kernel: dropoutKernel)
        registry.register(["Dropout"], inference: dropoutInference)
        registry.register(["EyeLike"], kernel: eyeLikeKernel)
        registry.register(["EyeLike"], inference: eyeLikeInference)
    }

    // MARK: Shape

    /// The axes Shape returns for an input of `rank`: all, or opset 15's `start`/`end`, clamped.
    static func shapeAxes(_ context: OperatorContext, rank: Int) throws(OperatorError) -> Range<Int> {
        guard context.opsetVersion >= 15 else { return 0..<rank }
        func clamp(_ value: Int64) -> Int {
            let resolved = value < 0 ? value + Int64(rank) : value
            return Int(Swift.min(Swift.max(resolved, 0), Int64(rank)))
        }
        let start = clamp(try context.int("start", default: 0))
        let end = clamp(try context.int("end") ?? Int64(rank))
        return start..<Swift.max(start, end)
    }

    static func shapeKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let data = try requiredInput(inputs, 0, "data")
        let axes = try shapeAxes(context, rank: data.rank)
        return [.int64(data.shape[axes].map { Int64($0) })]
    }

    static func shapeInference(_ context: inout InferenceContext) throws(OperatorError) {
        guard let shape = context.input(0)?.shape else {
            context.setOutput(0, type: .int64, shape: [context.freshDimension()])
            return
        }
        let fresh = freshDimensions(context)
        let dims = try shape[shapeAxes(context.node, rank: shape.count)].map { concreteDimension($0, fresh: fresh) }
        context.setOutput(0, outputFacts(type: .int64, shape: [.value(Int64(dims.count))], shapeValue: dims))
    }

    // MARK: Size

    static func sizeKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        [.int64Scalar(Int64(try requiredInput(inputs, 0, "data").count))]
    }

    static func sizeInference(_ context: inout InferenceContext) throws(OperatorError) {
        var value: [Dimension]?
        if let shape = context.input(0)?.shape {
            if shape.contains(.value(0)) {
                value = [.value(0)]
            } else if let product = DimensionProduct(shape) {
                if product.symbols.isEmpty {
                    value = [.value(product.coefficient)]
                } else if product.symbols.count == 1 && product.coefficient == 1 {
                    value = [.param(product.symbols[0])]
                }
            }
        }
        context.setOutput(0, outputFacts(type: .int64, shape: [], shapeValue: value))
    }

    // MARK: Reshape

    static func reshapeKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let data = try requiredInput(inputs, 0, "data")
        let target: [Int64]
        if context.opsetVersion < 5 {
            guard let attribute = try context.ints("shape") else { throw OperatorError("attribute 'shape' is missing") }
            target = attribute
        } else {
            let shape = try requiredInput(inputs, 1, "shape")
            guard shape.rank == 1 else { throw OperatorError("the target shape must be 1-D, got shape \(shape.shape)") }
            target = try shape.int64Values()
        }
        let allowZero = try context.reshapeAllowsZero()
        var output: [Int] = []
        var inferred: Int?
        for (index, size) in target.enumerated() {
            if size == 0 && !allowZero {
                guard index < data.rank else { throw OperatorError("target dimension \(index) copies a dimension the input lacks") }
                output.append(data.shape[index])
            } else if size == -1 {
                guard inferred == nil else { throw OperatorError("more than one -1 in target shape \(target)") }
                inferred = index
                output.append(1)
            } else {
                guard size >= 0, size <= Int64(elementLimit) else { throw OperatorError("invalid target dimension \(size)") }
                output.append(Int(size))
            }
        }
        if let inferred {
            guard let known = shapeProduct(output), known != 0, data.count % known == 0 else {
                throw OperatorError("cannot reshape \(data.shape) to \(target)")
            }
            output[inferred] = data.count / known
        }
        guard shapeProduct(output) == data.count else { throw OperatorError("cannot reshape \(data.shape) to \(target)") }
        return [data.reshaped(output)]
    }

    static func reshapeInference(_ context: inout InferenceContext) throws(OperatorError) {
        let data = context.input(0)
        let type = data?.elementType
        let fresh = freshDimensions(context)
        let target: [Dimension]
        if context.node.opsetVersion < 5 {
            guard let attribute = try context.node.ints("shape") else { throw OperatorError("attribute 'shape' is missing") }
            target = attribute.map { .value($0) }
        } else if let known = knownDimensions(context.input(1)) {
            target = known
        } else {
            if let shapeShape = context.input(1)?.staticShape, shapeShape.count == 1 {
                context.setOutput(0, type: type, shape: freshShape(rank: shapeShape[0], fresh: fresh))
            } else {
                context.setOutput(0, type: type, shape: nil)
            }
            return
        }
        let allowZero = try context.node.reshapeAllowsZero()
        let inputShape = data?.shape
        var output: [Dimension] = []
        var inferred: Int?
        for (index, size) in target.enumerated() {
            switch size {
            case .value(0) where !allowZero:
                if let inputShape {
                    guard index < inputShape.count else {
                        throw OperatorError("target dimension \(index) copies a dimension the input lacks")
                    }
                    output.append(concreteDimension(inputShape[index], fresh: fresh))
                } else {
                    output.append(fresh())
                }
            case .value(-1):
                guard inferred == nil else { throw OperatorError("more than one -1 in the target shape") }
                inferred = index
                output.append(.value(1))
            case .value(let v):
                guard v >= 0 else { throw OperatorError("invalid target dimension \(v)") }
                output.append(size)
            case .param(let symbol) where SymbolAllocator.isDimension(symbol):
                // A dimension symbol that is 0 at run time copies the input's dimension instead
                // (without allowzero): it is the output's dimension only when that copy is the
                // same symbol, or there is nothing to copy (the reshape would fail).
                if allowZero || inputShape.map({ index >= $0.count || $0[index] == size }) == true {
                    output.append(size)
                } else {
                    output.append(fresh())
                }
            case .param, .unknown:
                // A value symbol may be 0 or -1 at run time: the dimension is not known.
                output.append(fresh())
            }
        }
        if let inferred {
            var solved: Dimension?
            if let inputShape, let total = DimensionProduct(inputShape), let known = DimensionProduct(output) {
                solved = total.dividing(by: known)
                if solved == nil, total.symbols.isEmpty, known.symbols.isEmpty {
                    throw OperatorError("cannot reshape \(inputShape) to \(target)")
                }
            }
            output[inferred] = solved ?? fresh()
        }
        if let inputShape, let a = DimensionProduct(inputShape), let b = DimensionProduct(output),
           a.symbols.isEmpty, b.symbols.isEmpty, a.coefficient != b.coefficient {
            throw OperatorError("cannot reshape \(inputShape) to \(output)")
        }
        context.setOutput(0, outputFacts(type: type, shape: output, shapeValue: knownDimensions(data)))
    }

    // MARK: Flatten

    /// Flatten's split point for an input of `rank`.
    static func flattenAxis(_ context: OperatorContext, rank: Int) throws(OperatorError) -> Int {
        let axis = try context.int("axis", default: 1)
        let resolved = axis < 0 ? axis + Int64(rank) : axis
        guard resolved >= 0 && resolved <= Int64(rank) else { throw OperatorError("axis \(axis) is out of range for rank \(rank)") }
        return Int(resolved)
    }

    static func flattenKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let input = try requiredInput(inputs, 0, "input")
        let axis = try flattenAxis(context, rank: input.rank)
        let outer = shapeProduct(Array(input.shape[..<axis])) ?? 0
        return [input.reshaped([outer, outer == 0 ? shapeProduct(Array(input.shape[axis...])) ?? 0 : input.count / outer])]
    }

    static func flattenInference(_ context: inout InferenceContext) throws(OperatorError) {
        let input = context.input(0)
        guard let shape = input?.shape else {
            context.setOutput(0, type: input?.elementType, shape: [context.freshDimension(), context.freshDimension()])
            return
        }
        let axis = try flattenAxis(context.node, rank: shape.count)
        let fresh = freshDimensions(context)
        context.setOutput(0, type: input?.elementType,
                          shape: [productDimension(Array(shape[..<axis]), fresh: fresh), productDimension(Array(shape[axis...]), fresh: fresh)])
    }

    // MARK: Squeeze and Unsqueeze

    static func squeezeKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let data = try requiredInput(inputs, 0, "data")
        let axes: [Int64]?
        if context.opsetVersion < 13 {
            let attribute = try context.ints("axes")
            axes = attribute?.isEmpty == true ? nil : attribute  // an empty list squeezes every 1
        } else {
            axes = try optionalInput(inputs, 1).map { (value) throws(OperatorError) in try vectorInts(value, "axes") }
        }
        guard let axes else { return [data.reshaped(data.shape.filter { $0 != 1 })] }
        if axes.isEmpty && data.shape.contains(1) {
            // Runtimes differ: onnxruntime squeezes every 1, the reference implementation none.
            throw OperatorError("Squeeze with an empty axes input is ambiguous")
        }
        let removed = try normalizeAxes(axes, rank: data.rank)
        for axis in removed where data.shape[axis] != 1 {
            throw OperatorError("cannot squeeze axis \(axis) of size \(data.shape[axis])")
        }
        return [data.reshaped(data.shape.indices.filter { !removed.contains($0) }.map { data.shape[$0] })]
    }

    static func squeezeInference(_ context: inout InferenceContext) throws(OperatorError) {
        let data = context.input(0)
        let type = data?.elementType
        var axes: [Int64]?
        var axesUnknown = false
        if context.node.opsetVersion < 13 {
            let attribute = try context.node.ints("axes")
            axes = attribute?.isEmpty == true ? nil : attribute
        } else if let axesFacts = context.input(1) {
            axes = knownInts(axesFacts)
            axesUnknown = axes == nil
        }
        guard let shape = data?.shape else {
            context.setOutput(0, type: type, shape: nil)
            return
        }
        if axes?.isEmpty == true, data?.staticShape?.contains(1) != false {
            // An empty axes input: ambiguous when a dimension is or may be 1 (see the kernel).
            context.setOutput(0, type: type, shape: nil)
            return
        }
        if axesUnknown {
            let fresh = freshDimensions(context)
            if let axesShape = context.input(1)?.staticShape, axesShape.count <= 1, shape.count >= (axesShape.first ?? 1) {
                context.setOutput(0, type: type, shape: freshShape(rank: shape.count - (axesShape.first ?? 1), fresh: fresh))
            } else {
                context.setOutput(0, type: type, shape: nil)
            }
            return
        }
        let output: [Dimension]
        if let axes {
            let removed = try normalizeAxes(axes, rank: shape.count)
            for axis in removed {
                if case .value(let v) = shape[axis], v != 1 { throw OperatorError("cannot squeeze axis \(axis) of size \(v)") }
            }
            let fresh = freshDimensions(context)
            output = shape.indices.filter { !removed.contains($0) }.map { concreteDimension(shape[$0], fresh: fresh) }
        } else {
            // Without axes every dimension of size 1 goes: only certain when all are static.
            guard let sizes = data?.staticShape else {
                context.setOutput(0, type: type, shape: nil)
                return
            }
            output = sizes.filter { $0 != 1 }.map { .value(Int64($0)) }
        }
        context.setOutput(0, outputFacts(type: type, shape: output, shapeValue: knownDimensions(data)))
    }

    /// Unsqueeze's output shape: `shape` with ones inserted at `axes` (of the output).
    static func unsqueezedShape<D>(_ shape: [D], axes: [Int64], one: D) throws(OperatorError) -> [D] {
        let rank = shape.count + axes.count
        let inserted = try normalizeAxes(axes, rank: rank)
        var output: [D] = []
        var next = 0
        for axis in 0..<rank {
            if inserted.contains(axis) {
                output.append(one)
            } else {
                output.append(shape[next])
                next += 1
            }
        }
        return output
    }

    static func unsqueezeKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let data = try requiredInput(inputs, 0, "data")
        let axes: [Int64]
        if context.opsetVersion < 13 {
            guard let attribute = try context.ints("axes") else { throw OperatorError("attribute 'axes' is missing") }
            axes = attribute
        } else {
            axes = try vectorInts(try requiredInput(inputs, 1, "axes"), "axes")
        }
        return [data.reshaped(try unsqueezedShape(data.shape, axes: axes, one: 1))]
    }

    static func unsqueezeInference(_ context: inout InferenceContext) throws(OperatorError) {
        let data = context.input(0)
        let type = data?.elementType
        let axes: [Int64]?
        if context.node.opsetVersion < 13 {
            guard let attribute = try context.node.ints("axes") else { throw OperatorError("attribute 'axes' is missing") }
            axes = attribute
        } else {
            axes = knownInts(context.input(1))
        }
        guard let shape = data?.shape else {
            context.setOutput(0, type: type, shape: nil)
            return
        }
        let fresh = freshDimensions(context)
        guard let axes else {
            if let axesShape = context.input(1)?.staticShape, axesShape.count <= 1 {
                context.setOutput(0, type: type, shape: freshShape(rank: shape.count + (axesShape.first ?? 1), fresh: fresh))
            } else {
                context.setOutput(0, type: type, shape: nil)
            }
            return
        }
        let output = try unsqueezedShape(shape.map { concreteDimension($0, fresh: fresh) }, axes: axes, one: Dimension.value(1))
        context.setOutput(0, outputFacts(type: type, shape: output, shapeValue: knownDimensions(data)))
    }

    // MARK: Identity

    static func identityKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        [try requiredInput(inputs, 0, "input")]
    }

    static func identityInference(_ context: inout InferenceContext) throws(OperatorError) {
        guard let input = context.input(0) else { return }
        context.setOutput(0, outputFacts(type: input.elementType, shape: input.shape, shapeValue: knownDimensions(input)))
    }

    // MARK: Constant

    static func constantKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        for attribute in context.attributes {
            guard let value = attribute.value else { continue }
            switch (attribute.name, value) {
            case ("value", .tensor(let tensor)): return [try TensorValue(tensor: tensor)]
            case ("value_float", .float(let f)): return [TensorValue(.float, shape: [], reals: [Double(f)])]
            case ("value_floats", .floats(let f)): return [TensorValue(.float, shape: [f.count], reals: f.map { Double($0) })]
            case ("value_int", .int(let i)): return [.int64Scalar(i)]
            case ("value_ints", .ints(let i)): return [.int64(i)]
            case ("value_string", .string(let s)): return [TensorValue(.string, shape: [], .strings([s]))]
            case ("value_strings", .strings(let s)): return [TensorValue(.string, shape: [s.count], .strings(s))]
            case ("sparse_value", _): throw OperatorError("Constant with sparse_value is not supported")
            default: continue
            }
        }
        throw OperatorError("Constant has no value attribute")
    }

    static func constantInference(_ context: inout InferenceContext) throws(OperatorError) {
        for attribute in context.node.attributes {
            guard let value = attribute.value else { continue }
            switch (attribute.name, value) {
            case ("value", .tensor(let tensor)):
                context.setOutput(0, type: tensor.dataType, shape: tensor.dims.map { .value($0) })
            case ("value_float", .float): context.setOutput(0, type: .float, shape: [])
            case ("value_floats", .floats(let f)): context.setOutput(0, type: .float, shape: [.value(Int64(f.count))])
            case ("value_int", .int(let i)): context.setOutput(0, outputFacts(type: .int64, shape: [], shapeValue: [.value(i)]))
            case ("value_ints", .ints(let i)):
                context.setOutput(0, outputFacts(type: .int64, shape: [.value(Int64(i.count))], shapeValue: i.map { .value($0) }))
            case ("value_string", .string): context.setOutput(0, type: .string, shape: [])
            case ("value_strings", .strings(let s)): context.setOutput(0, type: .string, shape: [.value(Int64(s.count))])
            case ("sparse_value", .sparseTensor(let sparse)):
                context.setOutput(0, type: sparse.values?.dataType, shape: sparse.dims.map { .value($0) })
            default: continue
            }
            return
        }
    }

    // MARK: ConstantOfShape

    /// ConstantOfShape's fill value: the `value` attribute (one element) or a float 0.
    static func constantOfShapeValue(_ context: OperatorContext) throws(OperatorError) -> TensorValue {
        guard let tensor = try context.tensor("value") else { return TensorValue(.float, shape: [], .reals([0])) }
        let value = try TensorValue(tensor: tensor)
        guard value.count == 1 else { throw OperatorError("attribute 'value' must hold one element, got \(value.count)") }
        return value
    }

    static func constantOfShapeKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let shapeInput = try requiredInput(inputs, 0, "input")
        let shape = try dimensionSizes(try vectorInts(shapeInput, "input"), what: "the shape")
        let count = try checkedElementCount(shape)
        let value = try constantOfShapeValue(context)
        return [TensorValue(value.dataType, shape: shape, repeated(value.elements, 0, count: count))]
    }

    static func constantOfShapeInference(_ context: inout InferenceContext) throws(OperatorError) {
        var type: DataType = .float
        var value: TensorValue?
        if let tensor = try context.node.tensor("value") {
            type = tensor.dataType
            value = try? TensorValue(tensor: tensor)
        } else {
            value = TensorValue(.float, shape: [], .reals([0]))
        }
        let fresh = freshDimensions(context)
        var shape: [Dimension]?
        if let dims = knownDimensions(context.input(0)) {
            shape = []
            for dim in dims {
                if case .value(let v) = dim, v < 0 { throw OperatorError("negative dimension \(v)") }
                shape?.append(concreteDimension(dim, fresh: fresh))
            }
        } else if let shapeShape = context.input(0)?.staticShape, shapeShape.count == 1 {
            shape = freshShape(rank: shapeShape[0], fresh: fresh)
        }
        var shapeValue: [Dimension]?
        if let shape, shape.count <= 1, let value, value.kind == .integer, case .integers(let v) = value.elements {
            if shape.isEmpty {
                shapeValue = [.value(v[0])]
            } else if case .value(let n) = shape[0], n <= Int64(shapeValueLimit) {
                shapeValue = Array(repeating: .value(v[0]), count: Int(n))
            }
        }
        context.setOutput(0, outputFacts(type: type, shape: shape, shapeValue: shapeValue))
    }

    // MARK: Range

    /// The length of an integer range, or nil when it exceeds `elementLimit`.
    static func integerRangeCount(start: Int64, limit: Int64, delta: Int64) throws(OperatorError) -> Int {
        guard delta != 0 else { throw OperatorError("Range delta is 0") }
        let span = Int128(limit) - Int128(start)
        let step = Int128(delta)
        let count: Int128
        if (span > 0) != (step > 0) || span == 0 {
            count = 0
        } else {
            let magnitude = span.magnitude, stepMagnitude = step.magnitude
            count = Int128((magnitude + stepMagnitude - 1) / stepMagnitude)
        }
        guard count <= Int128(elementLimit) else { throw OperatorError("Range has too many elements") }
        return Int(count)
    }

    /// The length of a floating-point range as numpy's `arange` computes it.
    static func realRangeCount(start: Double, limit: Double, delta: Double) throws(OperatorError) -> Int {
        guard delta != 0 else { throw OperatorError("Range delta is 0") }
        let length = ((limit - start) / delta).rounded(.up)
        guard !length.isNaN else { throw OperatorError("Range length is not a number") }
        guard length <= Double(elementLimit) else { throw OperatorError("Range has too many elements") }
        return length <= 0 ? 0 : Int(length)
    }

    static func rangeKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let start = try requiredInput(inputs, 0, "start")
        let limit = try requiredInput(inputs, 1, "limit")
        let delta = try requiredInput(inputs, 2, "delta")
        let type = start.dataType
        guard limit.dataType == type, delta.dataType == type else { throw OperatorError("Range inputs differ in type") }
        switch start.kind {
        case .integer:
            let s = try start.scalarInt64(), l = try limit.scalarInt64(), d = try delta.scalarInt64()
            let count = try integerRangeCount(start: s, limit: l, delta: d)
            var values: [Int64] = []
            values.reserveCapacity(count)
            var value = s
            for _ in 0..<count {
                values.append(value)
                value = value &+ d
            }
            return [TensorValue(type, shape: [count], integers: values)]
        case .real:
            guard start.count == 1, limit.count == 1, delta.count == 1 else { throw OperatorError("Range inputs must be scalars") }
            let s = try start.doubleValues()[0], l = try limit.doubleValues()[0], d = try delta.doubleValues()[0]
            let count = try realRangeCount(start: s, limit: l, delta: d)
            var values: [Double] = []
            values.reserveCapacity(count)
            let lowPrecision = type == .float16 || type == .bfloat16
            let stash = context.opsetVersion >= 27 && lowPrecision ? try context.int("stash_type", default: 1) : 11
            if stash == 1 {
                // numpy's arange in float32: the first two elements in double, then
                // start + i * (second - start) in float32.
                let first = Float(s)
                let step = Float(Double(first) + d) - first
                for i in 0..<count { values.append(i == 0 ? Double(first) : i == 1 ? Double(Float(Double(first) + d)) : Double(first + Float(i) * step)) }
            } else if stash == 11 {
                // numpy's arange in double: start + i * (second - start).
                let step = (s + d) - s
                for i in 0..<count { values.append(i == 0 ? s : i == 1 ? s + d : s + Double(i) * step) }
            } else {
                throw OperatorError("unsupported stash_type \(stash)")
            }
            return [TensorValue(type, shape: [count], reals: values)]
        default:
            throw OperatorError("Range does not support \(type)")
        }
    }

    static func rangeInference(_ context: inout InferenceContext) throws(OperatorError) {
        let type = context.input(0)?.elementType ?? context.input(1)?.elementType ?? context.input(2)?.elementType
        let fresh = freshDimensions(context)
        let kind = type.flatMap { TensorValue.kind(of: $0) }
        if kind == .integer {
            let s = knownScalarDimension(context.input(0)), l = knownScalarDimension(context.input(1)),
                d = knownScalarDimension(context.input(2))
            if case .value(let start)? = s, case .value(let limit)? = l, case .value(let delta)? = d {
                let count = try integerRangeCount(start: start, limit: limit, delta: delta)
                var values: [Dimension]?
                if count <= shapeValueLimit, let type {
                    values = (0..<count).map { .value(wrapInteger(start &+ Int64($0) &* delta, to: type)) }
                }
                context.setOutput(0, outputFacts(type: type, shape: [.value(Int64(count))], shapeValue: values))
                return
            }
            if case .value(0)? = s, case .value(1)? = d, case .param? = l {
                context.setOutput(0, type: type, shape: [l!])
                return
            }
        } else if kind == .real, let s = knownReals(context.input(0)), let l = knownReals(context.input(1)),
                  let d = knownReals(context.input(2)), s.count == 1, l.count == 1, d.count == 1 {
            let count = try realRangeCount(start: s[0], limit: l[0], delta: d[0])
            context.setOutput(0, type: type, shape: [.value(Int64(count))])
            return
        }
        context.setOutput(0, type: type, shape: [fresh()])
    }

    // MARK: Dropout

    /// Whether a Dropout node runs as inference (output = input); an error when it would drop.
    static func dropoutIsInference(_ context: OperatorContext, training: TensorValue?, ratio: TensorValue?) throws(OperatorError) -> Bool {
        if context.opsetVersion >= 12 {
            guard let training else { return true }
            guard training.count == 1, case .booleans(let flag) = training.elements else {
                throw OperatorError("training_mode must be one bool")
            }
            if !flag[0] { return true }
            if let ratio, ratio.count == 1, try ratio.doubleValues()[0] == 0 { return true }
            return false
        }
        if context.opsetVersion < 7 { return try context.int("is_test", default: 0) != 0 }
        return true
    }

    static func dropoutKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let data = try requiredInput(inputs, 0, "data")
        guard try dropoutIsInference(context, training: optionalInput(inputs, 2), ratio: optionalInput(inputs, 1)) else {
            throw OperatorError("Dropout in training mode is random")
        }
        let mask: TensorValue
        if context.opsetVersion >= 10 {
            mask = .bool(Array(repeating: true, count: data.count), shape: data.shape)
        } else {
            guard let one = oneElement(data.kind) else { throw OperatorError("Dropout does not support \(data.dataType)") }
            mask = TensorValue(data.dataType, shape: data.shape, repeated(one, 0, count: data.count))
        }
        return [data, mask]
    }

    static func dropoutInference(_ context: inout InferenceContext) throws(OperatorError) {
        let data = context.input(0)
        context.setOutput(0, type: data?.elementType, shape: data?.shape)
        context.setOutput(1, type: context.node.opsetVersion >= 10 ? .bool : data?.elementType, shape: data?.shape)
    }

    // MARK: EyeLike

    /// EyeLike's output type: `dtype`, or the input's.
    static func eyeLikeType(_ context: OperatorContext, input: DataType?) throws(OperatorError) -> DataType? {
        guard let dtype = try context.int("dtype") else { return input }
        guard let raw = Int32(exactly: dtype) else { throw OperatorError("invalid dtype \(dtype)") }
        return DataType(rawValue: raw)
    }

    static func eyeLikeKernel(_ context: OperatorContext, _ inputs: [TensorValue?]) throws(OperatorError) -> [TensorValue] {
        let input = try requiredInput(inputs, 0, "input")
        guard input.rank == 2 else { throw OperatorError("EyeLike needs a 2-D input, got shape \(input.shape)") }
        guard let type = try eyeLikeType(context, input: input.dataType), let kind = TensorValue.kind(of: type),
              let one = oneElement(kind) else {
            throw OperatorError("EyeLike does not support this output type")
        }
        let k = try context.int("k", default: 0)
        let rows = input.shape[0], columns = input.shape[1]
        var selection = [Int](repeating: 0, count: rows * columns)
        if k > -Int64(rows) && k < Int64(columns) {
            for row in 0..<rows {
                let column = Int64(row) + k
                if column >= 0 && column < Int64(columns) { selection[row * columns + Int(column)] = 1 }
            }
        }
        let table = try joinElements([zeroElement(kind), one], kind: kind)
        return [TensorValue(type, shape: input.shape, table.gathering(selection))]
    }

    static func eyeLikeInference(_ context: inout InferenceContext) throws(OperatorError) {
        let input = context.input(0)
        if let rank = input?.rank, rank != 2 { throw OperatorError("EyeLike needs a 2-D input") }
        context.setOutput(0, type: try eyeLikeType(context.node, input: input?.elementType), shape: input?.shape)
    }
}
