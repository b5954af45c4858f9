import ONNXFuseIR

// Type and shape inference of the elementwise operators, with the elementwise arithmetic of
// shape values (`Gather(Shape(x), 0) * 4` and the like).

extension ElementwiseKit {
    /// One element of a shape-value computation: the result from the operands' elements and
    /// the result's element type, or nil when it is not known.
    typealias ShapeValueRule = @Sendable ([Dimension], DataType) -> Dimension?

    /// `d`, or nil when unknown.
    static func known(_ d: Dimension) -> Dimension? {
        if case .unknown = d { return nil }
        return d
    }

    /// Add: static sums; `x + 0` is x.
    static let addShapeValue: ShapeValueRule = { e, type in
        switch (e[0], e[1]) {
        case (.value(let x), .value(let y)): return .value(wrapInteger(x &+ y, to: type))
        case (.value(0), let d), (let d, .value(0)): return known(d)
        default: return nil
        }
    }

    /// Sub: static differences; `x - 0` is x and `x - x` is 0.
    static let subShapeValue: ShapeValueRule = { e, type in
        switch (e[0], e[1]) {
        case (.value(let x), .value(let y)): return .value(wrapInteger(x &- y, to: type))
        case (let d, .value(0)): return known(d)
        case (.param(let p), .param(let q)) where p == q: return .value(0)
        default: return nil
        }
    }

    /// Mul: static products; `x * 1` is x and `x * 0` is 0.
    static let mulShapeValue: ShapeValueRule = { e, type in
        switch (e[0], e[1]) {
        case (.value(let x), .value(let y)): return .value(wrapInteger(x &* y, to: type))
        case (.value(0), _), (_, .value(0)): return .value(0)
        case (.value(1), let d), (let d, .value(1)): return known(d)
        default: return nil
        }
    }

    /// Div (integers): static quotients truncated toward zero; `x / 1` is x.
    static let divShapeValue: ShapeValueRule = { e, type in
        switch (e[0], e[1]) {
        case (_, .value(0)): return nil
        case (.value(let x), .value(let y)): return .value(wrapInteger(x.dividedReportingOverflow(by: y).partialValue, to: type))
        case (let d, .value(1)): return known(d)
        default: return nil
        }
    }

    /// Max: static maxima; equal elements are themselves.
    static let maxShapeValue: ShapeValueRule = { e, _ in
        var result = e[0]
        for d in e.dropFirst() {
            switch (result, d) {
            case (.value(let x), .value(let y)): result = .value(Swift.max(x, y))
            default:
                guard certainlyEqual(result, d) else { return nil }
            }
        }
        return known(result)
    }

    /// Min: static minima; equal elements are themselves.
    static let minShapeValue: ShapeValueRule = { e, _ in
        var result = e[0]
        for d in e.dropFirst() {
            switch (result, d) {
            case (.value(let x), .value(let y)): result = .value(Swift.min(x, y))
            default:
                guard certainlyEqual(result, d) else { return nil }
            }
        }
        return known(result)
    }

    /// Equal: 1 or 0 for static elements, 1 for the same symbol, 0 for a dimension and a
    /// negative number (`Equal(shape, -1)`, as exporters write for `view(-1)` guards).
    static let equalShapeValue: ShapeValueRule = { e, _ in
        switch (e[0], e[1]) {
        case (.value(let x), .value(let y)): return .value(x == y ? 1 : 0)
        case (.param(let p), .param(let q)) where p == q: return .value(1)
        case (.param(let p), .value(let v)) where v < 0 && SymbolAllocator.isDimension(p): return .value(0)
        case (.value(let v), .param(let p)) where v < 0 && SymbolAllocator.isDimension(p): return .value(0)
        default: return nil
        }
    }

    /// Where: the element the static condition picks; when the condition is not static, the
    /// element X and Y agree on.
    static let whereShapeValue: ShapeValueRule = { e, _ in
        if case .value(let c) = e[0] { return known(c != 0 ? e[1] : e[2]) }
        return certainlyEqual(e[1], e[2]) ? e[1] : nil
    }

    // MARK: Inference functions

    /// Binary operators with multidirectional broadcasting (A's shape before opset 7): the
    /// output has A's type (bool when `boolOutput`); `shapeValue` as `rule` computes it.
    static func binaryInference(boolOutput: Bool = false, shapeValue rule: ShapeValueRule? = nil, keepsSign: Bool = true) -> InferenceFunction {
        return { context throws(OperatorError) in
            let a = context.input(0), b = context.input(1)
            let type = boolOutput ? DataType.bool : (a?.elementType ?? b?.elementType)
            let shape: [Dimension]?
            if context.node.opsetVersion < 7 {
                shape = a?.shape
            } else {
                shape = try broadcastDimensions([a?.shape, b?.shape], fresh: context.freshDimension)
            }
            context.setOutput(0, type: type, shape: shape)
            guard let rule, let outputType = type, holdsShapeValues(outputType),
                  let x = shapeElements(a), let y = shapeElements(b) else { return }
            attachShapeValue(combineShapeValues([x, y], context: context, keepsSign: keepsSign && keepsSignOfDimensions(outputType)) { rule($0, outputType) }, to: &context)
        }
    }

    /// Pow: the base's type, the operands' broadcast shape.
    static let powInference: InferenceFunction = binaryInference()

    /// Variadic operators: the first input's type, every input's broadcast shape.
    static func variadicInference(shapeValue rule: ShapeValueRule? = nil) -> InferenceFunction {
        return { context throws(OperatorError) in
            let inputs = context.inputs.map { $0 ?? ValueFacts() }
            let type = inputs.lazy.compactMap(\.elementType).first
            let shape = try broadcastDimensions(inputs.map(\.shape), fresh: context.freshDimension)
            context.setOutput(0, type: type, shape: shape)
            guard let rule, let outputType = type, holdsShapeValues(outputType) else { return }
            var operands: [[Dimension]] = []
            for facts in inputs {
                guard let elements = shapeElements(facts) else { return }
                operands.append(elements)
            }
            attachShapeValue(combineShapeValues(operands, context: context, keepsSign: keepsSignOfDimensions(outputType)) { rule($0, outputType) }, to: &context)
        }
    }

    /// Operators whose output has the type and shape of input 0.
    static let sameAsInput: InferenceFunction = { context throws(OperatorError) in
        let x = context.input(0)
        context.setOutput(0, type: x?.elementType, shape: x?.shape)
    }

    /// Neg: the input's type and shape; static shape values are negated.
    static let negInference: InferenceFunction = { context throws(OperatorError) in
        let x = context.input(0)
        context.setOutput(0, type: x?.elementType, shape: x?.shape)
        guard let type = x?.elementType, holdsShapeValues(type), let elements = shapeElements(x) else { return }
        attachShapeValue(elements.map { d in
            if case .value(let v) = d { return .value(wrapInteger(0 &- v, to: type)) }
            return context.freshValue()
        }, to: &context)
    }

    /// Operators with a bool output of the input's shape (IsNaN, IsInf, Not).
    static let boolOfInputShape: InferenceFunction = { context throws(OperatorError) in
        context.setOutput(0, type: .bool, shape: context.input(0)?.shape)
    }

    /// Where: X's type, the three inputs' broadcast shape; shape values picked elementwise.
    static let whereInference: InferenceFunction = { context throws(OperatorError) in
        let c = context.input(0), x = context.input(1), y = context.input(2)
        let type = x?.elementType ?? y?.elementType
        let shape = try broadcastDimensions([c?.shape, x?.shape, y?.shape], fresh: context.freshDimension)
        context.setOutput(0, type: type, shape: shape)
        guard let outputType = type, holdsShapeValues(outputType),
              let ce = shapeElements(c), let xe = shapeElements(x), let ye = shapeElements(y) else { return }
        attachShapeValue(combineShapeValues([ce, xe, ye], context: context, keepsSign: true) { whereShapeValue($0, outputType) }, to: &context)
    }

    /// Whether `type` holds every dimension (taken to be below 2^31): 32- and 64-bit integers.
    static func holdsDimensions(_ type: DataType) -> Bool {
        [.int32, .int64, .uint32, .uint64].contains(type)
    }

    /// Whether sums and products of dimensions stay non-negative in `type`: 64-bit integers only
    /// (in int32, a dimension plus a large constant wraps).
    static func keepsSignOfDimensions(_ type: DataType) -> Bool { type == .int64 || type == .uint64 }

    /// Shape values converted to the integer type `type` (or bool): static elements are
    /// converted, dimension symbols kept into 32- and 64-bit integers; anything else becomes a
    /// value symbol (a dimension symbol into bool).
    static func castShapeValue(_ facts: ValueFacts?, to type: DataType, context: inout InferenceContext) {
        guard let source = facts?.elementType, holdsShapeValues(source), holdsShapeValues(type),
              let elements = shapeElements(facts) else { return }
        attachShapeValue(elements.map { d in
            switch d {
            case .value(let v): return .value(type == .bool ? (v != 0 ? 1 : 0) : wrapInteger(v, to: type))
            // A dimension keeps its value in 32- and 64-bit integers (dimensions are taken to be
            // below 2^31); a narrower type may wrap it.
            case .param(let p) where holdsDimensions(type) && SymbolAllocator.isDimension(p): return d
            default: return type == .bool ? context.freshDimension() : context.freshValue()
            }
        }, to: &context)
    }

    /// Cast: the type `to` names, the input's shape.
    static let castInference: InferenceFunction = { context throws(OperatorError) in
        let x = context.input(0)
        let type = try castTarget(context.node)
        context.setOutput(0, type: type, shape: x?.shape)
        castShapeValue(x, to: type, context: &context)
    }

    /// CastLike: the second input's type, the first input's shape.
    static let castLikeInference: InferenceFunction = { context throws(OperatorError) in
        let x = context.input(0)
        let type = context.input(1)?.elementType
        context.setOutput(0, type: type, shape: x?.shape)
        if let type { castShapeValue(x, to: type, context: &context) }
    }
}
