import ONNXFuseIR

/// Type and shape inference over a whole model, with symbolic dimensions: `dim_param` names
/// are kept, unknown dimensions become fresh symbols (`unk__N`), and the facts of every value
/// are stored in `Value.inferred`. One pass visits each node once, in order; after that,
/// `infer(_:)` updates the outputs of a node a rewrite created, so facts stay current without
/// a rescan.
///
/// What a value's file declares (`value_info`, graph outputs) is merged in: a dimension the
/// operator leaves unknown takes the declared one; when the two contradict each other, the
/// shape (or type) is left unknown rather than trusting either.
public final class ShapeInference {
    /// The model.
    public let model: Model
    /// The operator knowledge used.
    public let registry: OperatorRegistry
    /// Where fresh symbols come from.
    public let symbols: SymbolAllocator
    /// Treat initializers that are also graph inputs as constants.
    public let freezeInitializerInputs: Bool
    /// Integer and boolean constants with at most this many elements are read as values
    /// (shapes, axes, indices, masks).
    public var constantElementLimit = 1 << 16
    /// Floating-point constants with at most this many elements are read as values (weights
    /// are not: inference needs only their shapes).
    public var realConstantElementLimit = 1 << 10
    /// Nodes whose inputs are all constants are evaluated with their kernel when their inputs
    /// hold at most this many elements together.
    public var evaluationElementLimit = 1 << 16
    /// ... and when no output would hold more than this many elements (a Range or an Expand
    /// makes huge tensors from small inputs: those are inferred, not computed; a NonZero of
    /// 2^16 elements of rank 64 is computed) ...
    public var evaluationOutputElementLimit = 1 << 22
    /// ... and the kernel would do at most this much work (`GraphEvaluator.estimatedWork`).
    public var evaluationWorkLimit = 1 << 26

    /// An empty array with the capacity that `infer(_:)` needed so far.
    private var inputBuffer: [ValueFacts?] = []

    /// Inference for `model`.
    public init(model: Model, registry: OperatorRegistry = .standard, freezeInitializerInputs: Bool = false) {
        self.model = model
        self.registry = registry
        self.freezeInitializerInputs = freezeInitializerInputs
        var taken = Set<String>()
        func collect(_ type: TypeInfo?) {
            for case .param(let p) in type?.shape ?? [] { taken.insert(p) }
        }
        for graph in model.allGraphs {
            for value in graph.inputs { collect(value.info?.type) }
            for output in graph.outputs { collect(output.info.type) }
            for entry in graph.valueInfo {
                switch entry {
                case .value(let v): collect(v.info?.type)
                case .other(_, let info): collect(info.type)
                }
            }
        }
        symbols = SymbolAllocator(avoiding: taken)
    }

    /// Infers every value of every graph, outer graphs first, nodes in order.
    public func run() {
        for graph in model.allGraphs {
            for input in graph.inputs where input.inferred == nil || input.inferred?.shape == nil {
                let facts = declaredFacts(input.info?.type ?? input.type, freshUnknown: true)
                input.inferred = InferredFacts(elementType: facts.elementType, shape: facts.shape)
            }
            for node in graph.nodes { infer(node) }
        }
    }

    /// Infers `start` again (its inputs changed: a value became a constant, say) and, while the
    /// facts of a node's outputs change, the nodes that read them; returns the nodes whose facts
    /// changed or whose inputs' facts did (rules that read those facts may now apply). A change
    /// of fresh symbols alone is no change (the old facts stay), so this stops as soon as
    /// nothing more is known.
    public func refresh(from start: Node) -> [Node] {
        var visited: [Node] = []
        var seen: Set<ObjectIdentifier> = []
        // A node is inferred again each time an input's facts change, in the order the changes
        // are found: a node reached early by a short path is redone when a longer path changes
        // another of its inputs. The queue holds a node once at a time; the cap bounds the
        // (acyclic, so finite) work on pathological graphs.
        var queue = [start]
        var head = 0
        // The nodes queued after `start`, which comes first and is in neither set (nor seen
        // again, unless the graph has a cycle): most refreshes infer `start` alone, and then
        // neither set is ever built.
        var queued: Set<ObjectIdentifier> = []
        var budget = 1 << 16
        while head < queue.count, budget > 0 {
            let node = queue[head]
            head += 1
            budget -= 1
            let isStart = head == 1
            if !isStart { queued.remove(ObjectIdentifier(node)) }
            guard node.graph != nil else { continue }
            if isStart || (node !== start && seen.insert(ObjectIdentifier(node)).inserted) { visited.append(node) }
            let before = node.outputs.map { $0?.inferred }
            infer(node)
            var differs = false
            for (output, old) in zip(node.outputs, before) {
                guard let output else { continue }
                if let old, Self.sameUpToFreshSymbols(old, output.inferred) {
                    output.inferred = old
                } else {
                    differs = true
                }
            }
            guard differs else { continue }
            for case let output? in node.outputs {
                for use in output.useList where queued.insert(ObjectIdentifier(use.node)).inserted {
                    queue.append(use.node)
                }
            }
        }
        return visited
    }

    /// Whether two facts say the same, taking any two fresh symbols as alike.
    static func sameUpToFreshSymbols(_ a: InferredFacts, _ b: InferredFacts?) -> Bool {
        guard let b, a.elementType == b.elementType else { return false }
        func same(_ x: [Dimension]?, _ y: [Dimension]?) -> Bool {
            guard let x, let y else { return x == nil && y == nil }
            guard x.count == y.count else { return false }
            return zip(x, y).allSatisfy { p, q in
                if p == q { return true }
                if case .param(let m) = p, case .param(let n) = q {
                    return SymbolAllocator.isFresh(m) && SymbolAllocator.isFresh(n)
                        && SymbolAllocator.isDimension(m) == SymbolAllocator.isDimension(n)
                }
                return false
            }
        }
        return same(a.shape, b.shape) && same(a.shapeValue, b.shapeValue)
    }

    /// What is known of `value`: a constant's exact facts, else the inferred ones, else what
    /// the file declares.
    public func facts(of value: Value) -> ValueFacts {
        if let box = value.constantTensorBox(freezeInitializerInputs: freezeInitializerInputs) {
            let tensor = box.value
            let limit = tensor.dataType.isFloatingPoint ? realConstantElementLimit : constantElementLimit
            if let count = tensor.elementCount, count <= limit {
                if tensor.dataType.isFloatingPoint { return ValueFacts(floatingPointConstant: box) }
                if let constant = try? TensorValue(tensor: tensor) { return ValueFacts(constant: constant) }
            }
            return ValueFacts(elementType: tensor.dataType, shape: tensor.dims.map { .value($0) })
        }
        if let inferred = value.inferred {
            return ValueFacts(elementType: inferred.elementType, shape: inferred.shape, shapeValue: inferred.shapeValue)
        }
        return declaredFacts(value.type, freshUnknown: false)
    }

    /// The element type `facts(of:)` gives `value`, without reading a constant's elements.
    public func elementType(of value: Value) -> DataType? {
        // Through the constant's box, as `facts(of:)` reads it: `withConstantTensor`'s closure
        // would copy the tensor.
        if let box = value.constantTensorBox(freezeInitializerInputs: freezeInitializerInputs) { return box.value.dataType }
        if let inferred = value.inferred { return inferred.elementType }
        guard case .tensor(let elementType, _)? = value.type?.kind else { return nil }
        return elementType
    }

    /// Facts from a declared type; unknown dimensions become fresh symbols when asked.
    func declaredFacts(_ type: TypeInfo?, freshUnknown: Bool) -> ValueFacts {
        guard let type, case .tensor(let elementType, let shape)? = type.kind else { return ValueFacts() }
        let dims = shape?.map { dim -> Dimension in
            if case .unknown = dim, freshUnknown { return .param(symbols.fresh()) }
            return dim
        }
        return ValueFacts(elementType: elementType, shape: dims)
    }

    /// Infers the outputs of `node` from what is known of its inputs, and stores the facts.
    public func infer(_ node: Node) {
        let domain = node.isDefaultDomain ? "" : node.domain!
        // The inputs' facts go into the buffer of the previous node's, emptied: an array
        // allocated and freed per node costs more than a simple node's inference does.
        var inputs = inputBuffer
        inputBuffer = []
        for value in node.inputs { inputs.append(value.map(facts(of:))) }
        defer {
            inputs.removeAll(keepingCapacity: true)
            inputBuffer = inputs
        }
        // One entry per output of the node when anything is known.
        var outputs: [ValueFacts]?
        if let version = model.opsetVersion(domain: domain) {
            let context = OperatorContext(node: node, domain: domain, opsetVersion: version)
            if let evaluated = evaluate(node, context: context, inputs: inputs) {
                outputs = evaluated
            } else if let inference = registry.inference(node.operatorID) {
                var inferenceContext = InferenceContext(node: context, inputs: inputs, outputCount: node.outputs.count,
                                                        symbols: symbols)
                if (try? inference(&inferenceContext)) != nil { outputs = inferenceContext.outputs }
            }
        }
        for (index, output) in node.outputs.enumerated() {
            guard let output else { continue }
            let result = merge(outputs?[index] ?? ValueFacts(), declared: output.info?.type)
            // Unknown dimensions become symbols of their own, so that later equalities hold.
            var shape = result.shape
            if shape?.contains(where: { if case .unknown = $0 { true } else { false } }) == true {
                shape = shape?.map { dim in
                    if case .unknown = dim { return .param(symbols.fresh()) }
                    return dim
                }
            }
            output.inferred = InferredFacts(elementType: result.elementType, shape: shape, shapeValue: result.shapeValue)
        }
    }

    /// The outputs of a node whose inputs are all small constants, by its kernel (random
    /// operators have none); nil when that does not apply or fails.
    func evaluate(_ node: Node, context: OperatorContext, inputs: [ValueFacts?]) -> [ValueFacts]? {
        // Most nodes read a value that is not a constant: that is seen before any lookup.
        guard !inputs.contains(where: { $0.map { !$0.holdsConstant } ?? false }),
              !node.inputs.isEmpty || node.opType == "Constant", node.subgraphs.isEmpty,
              registry.kernel(node.operatorID) != nil else { return nil }
        var values: [TensorValue?] = []
        var total = 0
        for facts in inputs {
            guard let facts else { values.append(nil); continue }
            guard let constant = facts.constant else { return nil }
            total += constant.count
            values.append(constant)
        }
        var work = 0
        guard total <= evaluationElementLimit,
              let results = try? registry.evaluate(node, inputs: values, opsetVersion: context.opsetVersion,
                                                   workLimit: evaluationWorkLimit,
                                                   elementLimit: evaluationOutputElementLimit, work: &work) else { return nil }
        return node.outputs.indices.map { index in
            guard let result = results[index] else { return ValueFacts() }
            // Values are not stored on outputs (folding makes them constants), only their facts.
            var facts = ValueFacts(constant: result)
            facts.constant = nil
            if result.count > constantElementLimit { facts.shapeValue = nil }
            return facts
        }
    }

    /// Inferred facts merged with a declared type.
    func merge(_ inferred: ValueFacts, declared: TypeInfo?) -> ValueFacts {
        guard let declared, case .tensor(let declaredType, let declaredShape)? = declared.kind else { return inferred }
        var result = inferred
        switch (inferred.elementType, declaredType) {
        case (nil, let d): result.elementType = d
        case (let i?, let d?) where i != d: result.elementType = nil
        default: break
        }
        guard let declaredShape else { return result }
        guard let shape = inferred.shape else {
            result.shape = declaredShape
            return result
        }
        guard shape.count == declaredShape.count else {
            result.shape = nil
            result.shapeValue = nil
            return result
        }
        var merged: [Dimension] = []
        for (mine, theirs) in zip(shape, declaredShape) {
            switch (mine, theirs) {
            case (.value(let a), .value(let b)):
                guard a == b else {
                    result.shape = nil
                    result.shapeValue = nil
                    return result
                }
                merged.append(mine)
            case (.value, _): merged.append(mine)
            case (_, .value): merged.append(theirs)
            case (.param(let p), .param) where !SymbolAllocator.isFresh(p): merged.append(mine)
            case (_, .param): merged.append(theirs)
            default: merged.append(mine)
            }
        }
        result.shape = merged
        return result
    }
}
