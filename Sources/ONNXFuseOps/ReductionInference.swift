import ONNXFuseIR

// Type and shape inference of the Reduce* operators and ArgMax/ArgMin, with shape values for
// sums, products, maxima and minima of a 1-D shape value (`ReduceProd(Shape(x))`).

extension ReductionKit {
    /// What inference knows of a reduction's axes.
    enum KnownAxes {
        /// None given (or an empty list): every axis, or none with noop_with_empty_axes.
        case absent
        /// These axes.
        case given([Int64])
        /// Some axes, not known which.
        case unknown
    }

    /// The axes of a Reduce* node as far as the facts tell.
    static func knownAxes(_ context: InferenceContext) throws(OperatorError) -> KnownAxes {
        let node = context.node
        if node.opsetVersion >= axesInputVersion[node.opType, default: 18] {
            guard let facts = context.input(1) else { return .absent }
            if let constant = facts.constant {
                let values = try constant.int64Values()
                return values.isEmpty ? .absent : .given(values)
            }
            if let shape = facts.shape, shape.count == 1, case .value(0) = shape[0] { return .absent }
            if let values = facts.staticShapeValue { return values.isEmpty ? .absent : .given(values) }
            return .unknown
        }
        guard let axes = try node.ints("axes"), !axes.isEmpty else { return .absent }
        return .given(axes)
    }

    /// Reduce*: the input's type; the shape with the reduced axes dropped or (keepdims) 1.
    static let reduceInference: InferenceFunction = { context throws(OperatorError) in
        let node = context.node
        let x = context.input(0)
        let type = x?.elementType
        let keepdims = try node.int("keepdims", default: 1) != 0
        let noop = try node.int("noop_with_empty_axes", default: 0) != 0
        let axes = try knownAxes(context)
        guard let shape = x?.shape else {
            // Reducing every axis without keepdims gives a scalar whatever the rank.
            if case .absent = axes, !noop, !keepdims {
                context.setOutput(0, type: type, shape: [])
            } else {
                context.setOutput(0, type: type, shape: nil)
            }
            return
        }
        let mask: [Bool]
        switch axes {
        case .unknown:
            // The axes are distinct, so their number tells the rank without keepdims (and
            // everything when it equals the rank). Each dimension is kept or becomes 1.
            var count: Int?
            if let axesShape = context.input(1)?.shape, axesShape.count <= 1 {
                if axesShape.isEmpty { count = 1 } else if case .value(let k) = axesShape[0] { count = Int(k) }
            }
            if count == shape.count {
                context.setOutput(0, type: type, shape: keepdims ? shape.map { _ in .value(1) } : [])
            } else if keepdims {
                context.setOutput(0, type: type, shape: shape.map { dim in
                    if case .value(1) = dim { return dim }
                    return context.freshDimension()
                })
            } else if let count, count < shape.count {
                let same = shape.allSatisfy { ElementwiseKit.certainlyEqual($0, shape[0]) }
                context.setOutput(0, type: type, shape: (0..<(shape.count - count)).map { _ in
                    same ? shape[0] : context.freshDimension()
                })
            } else {
                context.setOutput(0, type: type, shape: nil)
            }
            return
        case .absent: mask = try reducedMask(nil, rank: shape.count, noop: noop, node)
        case .given(let list): mask = try reducedMask(list, rank: shape.count, noop: noop, node)
        }
        var output: [Dimension] = []
        for (dim, reduced) in zip(shape, mask) {
            if !reduced { output.append(dim) } else if keepdims { output.append(.value(1)) }
        }
        context.setOutput(0, type: type, shape: output)
        if shape.count == 1, mask == [true], ElementwiseKit.holdsShapeValues(type),
           let elements = ElementwiseKit.shapeElements(x), !elements.isEmpty, let type,
           let value = reducedShapeValue(elements, node.opType, type) {
            let keepsSign = ElementwiseKit.keepsSignOfDimensions(type) && elements.allSatisfy(ElementwiseKit.isModestNonNegative)
            let unknown = keepsSign ? context.freshDimension() : context.freshValue()
            ElementwiseKit.attachShapeValue([value ?? unknown], to: &context)
        }
    }

    /// The sum, product, maximum or minimum of shape-value elements: nil when the operator
    /// has no such rule, `.some(nil)` when the result is not known.
    static func reducedShapeValue(_ elements: [Dimension], _ op: String, _ type: DataType) -> Dimension?? {
        var statics: [Int64] = []
        var symbolic: [Dimension] = []
        for d in elements {
            if case .value(let v) = d { statics.append(v) } else { symbolic.append(d) }
        }
        switch op {
        case "ReduceSum":
            let sum = statics.reduce(Int64(0)) { $0 &+ $1 }
            if symbolic.isEmpty { return .some(.value(wrapInteger(sum, to: type))) }
            if symbolic.count == 1, sum == 0 { return .some(ElementwiseKit.known(symbolic[0])) }
            return .some(nil)
        case "ReduceProd":
            if statics.contains(0) { return .some(.value(0)) }
            let product = statics.reduce(Int64(1)) { $0 &* $1 }
            if symbolic.isEmpty { return .some(.value(wrapInteger(product, to: type))) }
            if symbolic.count == 1, product == 1 { return .some(ElementwiseKit.known(symbolic[0])) }
            return .some(nil)
        case "ReduceMax":
            return .some(ElementwiseKit.maxShapeValue(elements, type))
        case "ReduceMin":
            return .some(ElementwiseKit.minShapeValue(elements, type))
        default:
            return nil
        }
    }

    /// ArgMax, ArgMin: int64; the axis dropped or (keepdims) 1.
    static let argInference: InferenceFunction = { context throws(OperatorError) in
        let node = context.node
        guard let shape = context.input(0)?.shape else {
            context.setOutput(0, type: .int64, shape: nil)
            return
        }
        let axis = try normalizeAxis(try node.int("axis", default: 0), rank: shape.count)
        var output = shape
        if try node.int("keepdims", default: 1) != 0 { output[axis] = .value(1) } else { output.remove(at: axis) }
        context.setOutput(0, type: .int64, shape: output)
    }
}
