import ONNXFuseIR

// Kernels of QuantizeLinear and DequantizeLinear (per-tensor, per-axis and blocked, for the
// integer types a TensorValue holds: 8-, 16- and 32-bit; float8, float4 and the 4- and 2-bit
// integer types are refused), DynamicQuantizeLinear, QLinearMatMul and QLinearConv.

extension NeuralNetworkKit {
    /// Registers this file's operators in `registry`.
    static func registerQuantizationOperators(_ registry: inout OperatorRegistry) {
        registry.register(["QuantizeLinear"], kernel: quantizeLinearKernel)
        registry.register(["DequantizeLinear"], kernel: dequantizeLinearKernel)
        registry.register(["DynamicQuantizeLinear"], kernel: dynamicQuantizeLinearKernel)
        registry.register(["QLinearMatMul"], kernel: qLinearMatMulKernel)
        registry.register(["QLinearConv"], kernel: qLinearConvKernel)
    }

    /// For each element of a tensor of `shape`, the index of its scale (and zero point): one
    /// for the tensor, one per entry along `axis` (1-D parameters), or one per block of
    /// `blockSize` entries along `axis` (parameters of the tensor's rank).
    static func quantizationParameterIndices(_ parameter: TensorValue, shape: [Int], axis axisAttribute: Int64,
                                             blockSize: Int64, _ context: OperatorContext) throws(OperatorError) -> [Int] {
        let count = shapeProduct(shape) ?? 0
        if parameter.count == 1 && (parameter.rank <= 1 || blockSize <= 0) { return [Int](repeating: 0, count: count) }
        guard !shape.isEmpty else { throw OperatorError("\(context.opType): a scalar input takes one scale") }
        let axis = try normalizeAxis(axisAttribute, rank: shape.count)
        let length = shape[axis]
        let inner = shapeProduct(Array(shape[(axis + 1)...])) ?? 0
        var indices = [Int](repeating: 0, count: count)
        if blockSize <= 0 {
            guard parameter.rank == 1, parameter.count == length else {
                throw OperatorError("\(context.opType): per-axis parameters of shape \(parameter.shape) do not fit axis \(axis) of \(shape)")
            }
            for i in 0..<count { indices[i] = inner == 0 ? 0 : (i / inner) % length }
            return indices
        }
        guard blockSize <= Int64(Int32.max) else { throw OperatorError("\(context.opType): block_size \(blockSize) is too large") }
        let block = Int(blockSize)
        let blocks = (length + block - 1) / block
        var expected = shape
        expected[axis] = blocks
        guard parameter.shape == expected else {
            throw OperatorError("\(context.opType): blocked parameters of shape \(parameter.shape) do not fit \(shape) with block_size \(block)")
        }
        for i in 0..<count {
            let r = i % inner, k = (i / inner) % length, o = i / (inner * length)
            indices[i] = (o * blocks + k / block) * inner + r
        }
        return indices
    }

    /// The range of a quantized integer type.
    static func quantizedRange(_ type: DataType) -> ClosedRange<Int64>? {
        switch type {
        case .uint8: return 0...255
        case .int8: return -128...127
        case .uint16: return 0...65535
        case .int16: return -32768...32767
        case .int32: return Int64(Int32.min)...Int64(Int32.max)
        default: return nil
        }
    }

    /// The type in which numpy would divide elements of these two types.
    static func divisionType(_ a: DataType, _ b: DataType) -> DataType {
        if a == .double || b == .double || !isRealType(a) || !isRealType(b) { return .double }
        if a == b { return a }
        return .float
    }

    static let quantizeLinearKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context), scale = try requiredInput(inputs, 1, context)
        let zeroPoint = optionalInput(inputs, 2)
        let xs = try x.doubleValues()
        let scales = try realElements(scale, context, "y_scale")
        var type: DataType = .uint8
        if let zeroPoint {
            type = zeroPoint.dataType
        } else if context.opsetVersion >= 21, let t = try dataTypeAttribute(context, "output_dtype") {
            type = t
        }
        guard let range = quantizedRange(type), type != .int32 else {
            throw OperatorError("QuantizeLinear: output type \(type) is not supported")
        }
        let axis = try context.int("axis", default: 1)
        let blockSize = context.opsetVersion >= 21 ? try context.int("block_size", default: 0) : 0
        let scaleIndices = try quantizationParameterIndices(scale, shape: x.shape, axis: axis, blockSize: blockSize, context)
        var zeros: [Int64] = [0]
        var zeroIndices: [Int]? = nil
        if let zeroPoint {
            guard zeroPoint.shape == scale.shape || (zeroPoint.count == 1 && scale.count == 1),
                  case .integers(let z) = zeroPoint.elements else {
                throw OperatorError("QuantizeLinear: y_zero_point must be an integer tensor shaped like y_scale")
            }
            zeros = z
            zeroIndices = scaleIndices
        }
        let precision = try dataTypeAttribute(context, "precision").flatMap { isRealType($0) ? $0 : nil }
            ?? (x.kind == .real ? divisionType(x.dataType, scale.dataType) : .double)
        var result = [Int64](repeating: 0, count: xs.count)
        for i in xs.indices {
            let quotient = roundReal(xs[i] / scales[scaleIndices[i]], to: precision)
            guard !quotient.isNaN else { throw OperatorError("QuantizeLinear: NaN cannot be quantized") }
            let rounded = quotient.rounded(.toNearestOrEven)
            let zero = zeros[zeroIndices?[i] ?? 0]
            // Saturate: a quotient beyond the range (or infinite) clamps.
            let shifted = rounded + Double(zero)
            result[i] = shifted >= Double(range.upperBound) ? range.upperBound
                : shifted <= Double(range.lowerBound) ? range.lowerBound : Int64(shifted)
        }
        return [TensorValue(type, shape: x.shape, .integers(result))]
    }

    static let dequantizeLinearKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context), scale = try requiredInput(inputs, 1, context)
        guard quantizedRange(x.dataType) != nil, case .integers(let xs) = x.elements else {
            throw OperatorError("DequantizeLinear: input type \(x.dataType) is not supported")
        }
        let scales = try realElements(scale, context, "x_scale")
        var type: DataType = context.opsetVersion >= 19 ? scale.dataType : .float
        if context.opsetVersion >= 23, let t = try dataTypeAttribute(context, "output_dtype") {
            guard isRealType(t) else { throw OperatorError("DequantizeLinear: output_dtype \(t) is not supported") }
            type = t
        }
        let axis = try context.int("axis", default: 1)
        let blockSize = context.opsetVersion >= 21 ? try context.int("block_size", default: 0) : 0
        let scaleIndices = try quantizationParameterIndices(scale, shape: x.shape, axis: axis, blockSize: blockSize, context)
        var zeros: [Int64] = [0]
        var zeroIndices: [Int]? = nil
        if let zeroPoint = optionalInput(inputs, 2) {
            guard zeroPoint.dataType == x.dataType, zeroPoint.shape == scale.shape || (zeroPoint.count == 1 && scale.count == 1),
                  case .integers(let z) = zeroPoint.elements else {
                throw OperatorError("DequantizeLinear: x_zero_point must have x's type and y_scale's shape")
            }
            zeros = z
            zeroIndices = scaleIndices
        }
        var result = [Double](repeating: 0, count: xs.count)
        for i in xs.indices {
            result[i] = Double(xs[i] - zeros[zeroIndices?[i] ?? 0]) * scales[scaleIndices[i]]
        }
        return [TensorValue(type, shape: x.shape, reals: result)]
    }

    static let dynamicQuantizeLinearKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context)
        guard x.dataType == .float else { throw OperatorError("DynamicQuantizeLinear: x must be float") }
        let xs = try realElements(x, context, "x")
        guard !xs.contains(where: \.isNaN) else { throw OperatorError("DynamicQuantizeLinear: NaN cannot be quantized") }
        // float32 arithmetic, as the reference does it.
        func f(_ v: Double) -> Double { Double(Float(v)) }
        let maximum = max(0, xs.max() ?? 0), minimum = min(0, xs.min() ?? 0)
        let scale = maximum == minimum ? f(1.0 / 255) : f(f(maximum - minimum) / 255)
        let initial = f(0 - f(minimum / scale))
        let zero = min(255, max(0, initial)).rounded(.toNearestOrEven)
        var y = [Int64](repeating: 0, count: xs.count)
        for i in xs.indices {
            let q = f(xs[i] / scale).rounded(.toNearestOrEven) + zero
            y[i] = q >= 255 ? 255 : q <= 0 ? 0 : Int64(q)
        }
        return [TensorValue(.uint8, shape: x.shape, .integers(y)), TensorValue(.float, shape: [], .reals([scale])),
                TensorValue(.uint8, shape: [], .integers([Int64(zero)]))]
    }

    /// One scale value, or one per entry (of `count`).
    static func scaleValues(_ value: TensorValue, count: Int?, _ context: OperatorContext, _ what: String) throws(OperatorError) -> [Double] {
        let values = try realElements(value, context, what)
        guard values.count == 1 || (count != nil && values.count == count!) else {
            throw OperatorError("\(context.opType): \(what) has \(values.count) elements")
        }
        return values
    }

    /// An integer zero point: one value, or one per entry (of `count`); absent is 0.
    static func zeroPointValues(_ value: TensorValue?, type: DataType?, count: Int?, _ context: OperatorContext,
                                _ what: String) throws(OperatorError) -> [Int64] {
        guard let value else { return [0] }
        guard type == nil || value.dataType == type, case .integers(let z) = value.elements,
              z.count == 1 || (count != nil && z.count == count!) else {
            throw OperatorError("\(context.opType): \(what) does not fit")
        }
        return z
    }

    /// `values * factor + zero`, rounded half to even and saturated to `type`.
    static func requantize(_ accumulated: [Double], factor: (Int) -> Double, zero: (Int) -> Int64, type: DataType) -> [Int64] {
        let range = quantizedRange(type) ?? 0...255
        var result = [Int64](repeating: 0, count: accumulated.count)
        for i in accumulated.indices {
            let v = (accumulated[i] * factor(i) + Double(zero(i))).rounded(.toNearestOrEven)
            result[i] = v >= Double(range.upperBound) ? range.upperBound : v <= Double(range.lowerBound) ? range.lowerBound : Int64(v)
        }
        return result
    }

    /// The scales and zero points of a QLinearMatMul or QLinearConv node, whose inputs are
    /// (a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point), and its
    /// output type (y_zero_point's, else a's: int8 or uint8).
    struct QLinearParameters {
        let aScale: [Double], bScale: [Double], yScale: [Double]
        let aZero: [Int64], bZero: [Int64], yZero: [Int64]
        /// y_scale's type, in which the requantization factors are computed.
        let scaleType: DataType
        let outputType: DataType

        /// Reads them for operands `a` and `b`, which the operator's errors call `names` (as
        /// "a" and "b"); b's scale and zero point have one value or `bCount` (when given).
        init(_ inputs: [TensorValue?], a: TensorValue, b: TensorValue, names: (a: String, b: String), bCount: Int?,
             _ context: OperatorContext) throws(OperatorError) {
            aScale = try scaleValues(try requiredInput(inputs, 1, context), count: nil, context, "\(names.a)_scale")
            bScale = try scaleValues(try requiredInput(inputs, 4, context), count: bCount, context, "\(names.b)_scale")
            let yScaleTensor = try requiredInput(inputs, 6, context)
            yScale = try scaleValues(yScaleTensor, count: nil, context, "y_scale")
            aZero = try zeroPointValues(optionalInput(inputs, 2), type: a.dataType, count: nil, context, "\(names.a)_zero_point")
            bZero = try zeroPointValues(optionalInput(inputs, 5), type: b.dataType, count: bCount, context, "\(names.b)_zero_point")
            let yZeroTensor = optionalInput(inputs, 7)
            yZero = try zeroPointValues(yZeroTensor, type: nil, count: nil, context, "y_zero_point")
            outputType = yZeroTensor?.dataType ?? a.dataType
            guard [.int8, .uint8].contains(outputType) else {
                throw OperatorError("\(context.opType): output type \(outputType) is not supported")
            }
            scaleType = yScaleTensor.dataType
        }

        /// The factor from an accumulated product to the output, for one of b's scales: computed
        /// in the scales' type, as the reference does it.
        func factor(bScale: Double) -> Double {
            roundReal(roundReal(aScale[0] * bScale, to: scaleType) / yScale[0], to: scaleType)
        }
    }

    static let qLinearMatMulKernel: Kernel = { context, inputs throws(OperatorError) in
        let a = try requiredInput(inputs, 0, context), b = try requiredInput(inputs, 3, context)
        guard [.int8, .uint8].contains(a.dataType), [.int8, .uint8].contains(b.dataType),
              case .integers(var x) = a.elements, case .integers(var y) = b.elements else {
            throw OperatorError("QLinearMatMul: a and b must be int8 or uint8")
        }
        let plan = try MatMulPlan(a.shape, b.shape, context)
        let parameters = try QLinearParameters(inputs, a: a, b: b, names: ("a", "b"), bCount: nil, context)
        for i in x.indices { x[i] -= parameters.aZero[0] }
        for i in y.indices { y[i] -= parameters.bZero[0] }
        let product = plan.run(x, y).map { Double($0) }
        let factor = parameters.factor(bScale: parameters.bScale[0])
        let result = requantize(product, factor: { _ in factor }, zero: { _ in parameters.yZero[0] }, type: parameters.outputType)
        return [TensorValue(parameters.outputType, shape: plan.outputShape, .integers(result))]
    }

    static let qLinearConvKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context), w = try requiredInput(inputs, 3, context)
        guard [.int8, .uint8].contains(x.dataType), [.int8, .uint8].contains(w.dataType),
              case .integers(let xs) = x.elements, case .integers(let ws) = w.elements else {
            throw OperatorError("QLinearConv: x and w must be int8 or uint8")
        }
        let operands = try ConvolutionOperands(x: x, w: w, names: ("x", "w"), context)
        let m = operands.outputChannels
        let parameters = try QLinearParameters(inputs, a: x, b: w, names: ("x", "w"), bCount: m, context)
        var bias: [Double]? = nil
        if let b = optionalInput(inputs, 8) {
            guard b.dataType == .int32, b.count == m, case .integers(let v) = b.elements else {
                throw OperatorError("QLinearConv: B must be int32 with one value per output channel")
            }
            bias = v.map { Double($0) }
        }
        let (outShape, geometry) = try operands.window(context)
        let accumulated = operands.convolve(xs.map { Double($0 - parameters.aZero[0]) },
                                            operands.shiftedWeights(ws, zeroPoints: parameters.bZero), bias: bias, geometry: geometry)
        let factors = parameters.bScale.map(parameters.factor(bScale:))
        let plane = max(1, geometry.outputPlane)
        let result = requantize(accumulated, factor: { factors.count == 1 ? factors[0] : factors[($0 / plane) % m] },
                                zero: { _ in parameters.yZero[0] }, type: parameters.outputType)
        return [TensorValue(parameters.outputType, shape: outShape, .integers(result))]
    }
}
