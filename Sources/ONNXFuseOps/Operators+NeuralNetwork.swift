import ONNXFuseIR

extension OperatorRegistry {
    /// Registers the kernels and inference functions of this family: matrix products, convolutions,
    /// pooling, normalizations, and the inference of recurrent, quantized, attention, control-flow,
    /// random and sequence operators (see the `NeuralNetwork*.swift` files).
    mutating func registerNeuralNetworkOperators() {
        NeuralNetworkKit.registerMatrixOperators(&self)
        NeuralNetworkKit.registerConvolutionOperators(&self)
        NeuralNetworkKit.registerPoolingOperators(&self)
        NeuralNetworkKit.registerNormalizationOperators(&self)
        NeuralNetworkKit.registerAttentionOperators(&self)
        NeuralNetworkKit.registerQuantizationOperators(&self)
        NeuralNetworkKit.registerInferenceOnlyOperators(&self)
        NeuralNetworkKit.registerMiscellaneousOperators(&self)
    }
}

/// The kernels, inference functions and helpers of the neural-network family (matrix products,
/// convolutions, pooling, normalizations, and inference-only operators), kept in one namespace.
enum NeuralNetworkKit {
    // MARK: - Shared helpers of the neural-network family

    /// The largest number of elements a kernel of this family produces.
    static let neuralNetworkElementLimit = 1 << 28

    /// The most multiply-adds (or window taps) a kernel of this family performs: about 4.3e9,
    /// some thirty times ResNet-50's largest convolution.
    static let neuralNetworkWorkLimit = 1 << 32

    /// Throws unless the product of `factors` (a count of elementary steps) is within the limit
    /// (the family's, or the caller's `context.workLimit` when lower).
    static func checkWork(_ factors: [Int], _ context: OperatorContext) throws(OperatorError) {
        guard factors.allSatisfy({ $0 >= 0 }), let work = shapeProduct(factors), work <= min(neuralNetworkWorkLimit, context.workLimit) else {
            throw OperatorError("\(context.opType): \(factors.map(String.init).joined(separator: " x ")) steps are too many")
        }
    }

    /// The elements of a floating-point tensor.
    static func realElements(_ value: TensorValue, _ context: OperatorContext, _ what: String) throws(OperatorError) -> [Double] {
        guard case .reals(let v) = value.elements else {
            throw OperatorError("\(context.opType): \(what) must be a floating-point tensor, not \(value.dataType)")
        }
        return v
    }

    /// Whether `type` is one of the floating-point types the kernels compute with.
    static func isRealType(_ type: DataType) -> Bool { TensorValue.kind(of: type) == .real }

    /// Throws unless `count` elements are within the kernels' limit.
    static func checkElementCount(_ shape: [Int], _ context: OperatorContext) throws(OperatorError) -> Int {
        guard shape.allSatisfy({ $0 >= 0 }), let count = shapeProduct(shape), count <= neuralNetworkElementLimit else {
            throw OperatorError("\(context.opType): output shape \(shape) is too large")
        }
        return count
    }

    /// `a / b` rounded toward negative infinity (`b > 0`).
    @inline(__always) static func floorDivide(_ a: Int, _ b: Int) -> Int {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    /// `a / b` rounded toward positive infinity (`b > 0`).
    @inline(__always) static func ceilDivide(_ a: Int, _ b: Int) -> Int { -floorDivide(-a, b) }

    /// The static value of a dimension.
    static func staticValue(_ dim: Dimension) -> Int64? {
        if case .value(let v) = dim { return v }
        return nil
    }

    /// The sum of two dimensions, when both are static (or one is a static zero).
    static func addDimensions(_ a: Dimension, _ b: Dimension) -> Dimension? {
        switch (a, b) {
        case (.value(let x), .value(let y)):
            let (sum, overflow) = x.addingReportingOverflow(y)
            return overflow ? nil : .value(sum)
        case (.value(0), _): return b
        case (_, .value(0)): return a
        default: return nil
        }
    }

    /// `dim / divisor` when the division is certain: a static exact quotient, or the symbol itself
    /// when dividing by one.
    static func divideDimension(_ dim: Dimension, by divisor: Int64) -> Dimension? {
        guard divisor > 0 else { return nil }
        if divisor == 1 { return dim }
        if case .value(let v) = dim, v % divisor == 0 { return .value(v / divisor) }
        return nil
    }

    /// `dim * factor` when certain.
    static func multiplyDimension(_ dim: Dimension, by factor: Int64) -> Dimension? {
        if factor == 1 { return dim }
        if case .value(let v) = dim {
            let (product, overflow) = v.multipliedReportingOverflow(by: factor)
            return overflow ? nil : .value(product)
        }
        return nil
    }

    /// The element type named by an attribute holding a `TensorProto.DataType` number.
    static func dataTypeAttribute(_ context: OperatorContext, _ name: String) throws(OperatorError) -> DataType? {
        guard let raw = try context.int(name) else { return nil }
        guard raw > 0, raw <= 28 else { throw OperatorError("\(context.opType): \(name) \(raw) is not a type") }
        return DataType(rawValue: Int32(raw))
    }
}
