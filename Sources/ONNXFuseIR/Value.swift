/// A named value in a graph: a graph input, an initializer, or a node output. It knows who
/// defines it and every node input that reads it (its use list), which the graph keeps
/// exact through `Node.setInput`.
public final class Value {
    /// How a value is defined.
    public enum Definition: Equatable, Sendable {
        /// A graph input (possibly with an initializer as its overridable default).
        case graphInput
        /// An initializer that is not a graph input.
        case initializer
        /// A sparse initializer.
        case sparseInitializer
        /// Output `index` of `producer`.
        case nodeOutput(index: Int)
        /// Removed from its graph, or not yet inserted.
        case detached
    }

    /// The name; unique in its graph and every graph that encloses it (`Graph.verify` checks).
    public var name: String
    /// What the file declares about it: the graph input's `ValueInfoProto`, or its `value_info` entry.
    public var info: ValueInfo? {
        get { infoBox?.value }
        set { infoBox = newValue.map(Box.init) }
    }
    /// The tensor of an initializer, or the overridable default of a graph input.
    public var initializer: Tensor? {
        get { initializerBox?.value }
        set { initializerBox = newValue.map(Box.init) }
    }
    /// The tensor of a sparse initializer.
    public var sparseInitializer: SparseTensor? {
        get { sparseBox?.value }
        set { sparseBox = newValue.map(Box.init) }
    }
    /// What shape inference found out about it; nil until inference runs (see `ONNXFuseOps`).
    public var inferred: InferredFacts?
    /// `body`'s result on the initializer tensor, read in place (nil when there is none).
    public func withInitializer<R>(_ body: (Tensor) throws -> R) rethrows -> R? {
        guard let box = initializerBox else { return nil }
        return try body(box.value)
    }

    /// Whether it has an initializer tensor (without copying the tensor out).
    public var hasInitializer: Bool { initializerBox != nil }

    // Most values have none of these; boxes keep every value small (they are the bulk of a model's memory).
    private var infoBox: Box<ValueInfo>?
    private var initializerBox: Box<Tensor>?
    private var sparseBox: Box<SparseTensor>?
    /// How it is defined.
    // This and the other trivial fields set at insertion are unchecked: a plain assignment of
    // a trivial value runs no code that could overlap it.
    @exclusivity(unchecked) public internal(set) var definition: Definition
    /// Every node input that reads it, first to last, as they are now: a copy, so that the
    /// readers can be rewired while going through it (`for use in x.uses {
    /// try use.node.setInput(use.inputIndex, to: y) }` moves every one).
    public var uses: [Use] { Array(useList) }
    /// The uses as a view of the live list, which allocates nothing (see `Uses`): for the
    /// engine's hot paths, which do not change the list while they go through it.
    package var useList: Uses { Uses(value: self) }
    /// The head of the use list, threaded through the readers' input slots (see `UseLink`).
    @exclusivity(unchecked) var firstUse: UseSlot?
    /// How many uses the list holds.
    @exclusivity(unchecked) var useCount = 0
    /// How many graph outputs name it.
    // Unchecked like `useCount`: read by `isUnused` at every guard and clean-up, and only
    // changed by the graph in plain increments.
    @exclusivity(unchecked) public internal(set) var graphOutputCount = 0

    /// Where it is among its graph's initializers (see `Graph.initializers`).
    @exclusivity(unchecked) var initializerSlot = 0
    @exclusivity(unchecked) unowned var producerStorage: Node?
    @exclusivity(unchecked) unowned var graphStorage: Graph?

    init(name: String, definition: Definition) {
        self.name = name
        self.definition = definition
    }

    /// A value of no graph and no node: a stand-in for one that does not exist yet (what a
    /// rewrite would compute), to build a detached node that reads it.
    public static func detached(name: String) -> Value { Value(name: name, definition: .detached) }

    /// The node that produces it, if it is a node output.
    public var producer: Node? {
        if case .nodeOutput = definition { return producerStorage }
        return nil
    }

    /// The graph that defines it; nil when detached or not yet inserted.
    public var graph: Graph? { definition == .detached ? nil : graphStorage }

    /// Whether some graph output names it.
    public var isGraphOutput: Bool { graphOutputCount > 0 }

    /// Whether nothing reads it: no node input and no graph output.
    public var isUnused: Bool { useCount == 0 && graphOutputCount == 0 }

    /// The declared or known type: `info`'s type, else the initializer's element type and shape.
    public var type: TypeInfo? {
        if let t = info?.type { return t }
        if let t = initializer { return .tensor(t.dataType, t.dims.map { .value($0) }) }
        return nil
    }

    /// Whether it is a graph input with an initializer that a caller may override at run
    /// time (from IR version 4 on). Such a value is not a constant.
    public var isOverridableInitializer: Bool {
        guard definition == .graphInput, initializerBox != nil else { return false }
        return (graph?.model?.irVersion ?? Int64.max) >= 4
    }

    /// The default domain's `Constant`.
    private static let constantOperator = OperatorID(opType: "Constant", domain: nil)

    /// The tensor this value always holds, or nil: a non-overridable initializer, or the
    /// output of a default-domain `Constant` node. With `freezeInitializerInputs`, an
    /// overridable initializer counts as constant too.
    public func constantTensor(freezeInitializerInputs: Bool = false) -> Tensor? {
        if case .nodeOutput(let index) = definition { return constantNodeOutput(index) }
        return constantInitializerBox(freezeInitializerInputs: freezeInitializerInputs)?.value
    }

    /// `body`'s result on `constantTensor(freezeInitializerInputs:)`, an initializer read in
    /// place rather than copied out; nil when there is no constant tensor.
    public func withConstantTensor<R>(freezeInitializerInputs: Bool = false, _ body: (Tensor) throws -> R) rethrows -> R? {
        if case .nodeOutput(let index) = definition { return try constantNodeOutput(index).map(body) }
        guard let box = constantInitializerBox(freezeInitializerInputs: freezeInitializerInputs) else { return nil }
        return try body(box.value)
    }

    /// The box holding `constantTensor(freezeInitializerInputs:)`: an initializer's own box,
    /// shared rather than copied (inference keeps it in the facts of the values that read
    /// it), or a new one around a `Constant` node's tensor; nil when there is no constant tensor.
    package func constantTensorBox(freezeInitializerInputs: Bool = false) -> Box<Tensor>? {
        if case .nodeOutput(let index) = definition { return constantNodeOutput(index).map(Box.init) }
        return constantInitializerBox(freezeInitializerInputs: freezeInitializerInputs)
    }

    /// The initializer's box when the initializer is a constant.
    private func constantInitializerBox(freezeInitializerInputs: Bool) -> Box<Tensor>? {
        switch definition {
        case .initializer:
            return initializerBox
        case .graphInput:
            guard let box = initializerBox, freezeInitializerInputs || !isOverridableInitializer else { return nil }
            return box
        case .nodeOutput, .sparseInitializer, .detached:
            return nil
        }
    }

    /// The tensor of output `index` of a default-domain `Constant` node that defines this value.
    private func constantNodeOutput(_ index: Int) -> Tensor? {
        // The operator first: most producers are not Constant nodes, and that takes one comparison.
        guard index == 0, let node = producer, node.operatorID == Self.constantOperator else { return nil }
        return Value.constantNodeTensor(node)
    }

    /// The dims of `constantTensor(freezeInitializerInputs:)`, without copying the tensor; nil
    /// when there is no constant tensor.
    public func constantDims(freezeInitializerInputs: Bool = false) -> [Int64]? {
        withConstantTensor(freezeInitializerInputs: freezeInitializerInputs) { $0.dims }
    }

    /// Whether `constantTensor(freezeInitializerInputs:)` gives a tensor (without copying it).
    public func isConstant(freezeInitializerInputs: Bool = false) -> Bool {
        constantDims(freezeInitializerInputs: freezeInitializerInputs) != nil
    }

    /// The tensor a `Constant` node produces, from whichever value attribute it carries.
    static func constantNodeTensor(_ node: Node) -> Tensor? {
        guard node.attributes.count == 1, let attribute = node.attributes.first, let value = attribute.value,
              attribute.refAttrName == nil else { return nil }
        switch (attribute.name, value) {
        case ("value", .tensor(let t)): return t
        case ("value_float", .float(let f)): return Tensor(dataType: .float, dims: [], values: [f.bitPattern.littleEndian])
        case ("value_floats", .floats(let fs)):
            return Tensor(dataType: .float, dims: [Int64(fs.count)], values: fs.map { $0.bitPattern.littleEndian })
        case ("value_int", .int(let i)): return Tensor(dataType: .int64, dims: [], values: [i.littleEndian])
        case ("value_ints", .ints(let i)): return Tensor(dataType: .int64, dims: [Int64(i.count)], values: i.map { $0.littleEndian })
        case ("value_string", .string(let s)): return Tensor(dataType: .string, dims: [], storage: .stringData([s]))
        case ("value_strings", .strings(let s)): return Tensor(dataType: .string, dims: [Int64(s.count)], storage: .stringData(s))
        default: return nil
        }
    }

    /// Makes every node input that reads this value read `replacement` instead. Graph
    /// outputs are not node inputs: they keep naming this value (see `Graph.setOutput`).
    /// Throws, and changes nothing, when `replacement` is this value, or when it is not
    /// visible to one of the readers (see `Node.setInput`). O(uses × nesting depth).
    public func replaceAllUses(with replacement: Value) throws(GraphEditError) {
        guard replacement !== self else {
            throw GraphEditError(.valueReplacesItself, "cannot replace the uses of '\(name)' by '\(name)' itself")
        }
        for use in useList {
            if let problem = use.node.graph?.visibilityProblem(of: replacement, before: use.node) {
                throw GraphEditError(.valueNotVisible, "cannot replace the uses of '\(name)' by '\(replacement.name)' in \(use.node.editLabel): \(problem)")
            }
        }
        replaceAllUsesUnchecked(with: replacement)
    }

    /// `replaceAllUses(with:)` for the engine, whose replacements are visible to the readers.
    package func replaceAllUsesUnchecked(with replacement: Value) {
        precondition(replacement !== self, "a value cannot replace itself")
        // From the last use on, so that no removal moves another use (the order stays the one
        // an array of uses gave).
        while let use = useList.last {
            use.node.setInputUnchecked(use.inputIndex, to: replacement)
        }
    }
}

/// A heap cell for a rarely present, large value; immutable, so that it can be shared
/// (passing it on retains one object instead of copying every field of the value).
package final class Box<Wrapped> {
    package let value: Wrapped
    package init(_ value: Wrapped) { self.value = value }
}

extension Box: Sendable where Wrapped: Sendable {}
