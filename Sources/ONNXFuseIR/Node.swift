/// An operator application (`NodeProto`). Inputs and outputs are `Value`s; an absent
/// optional input or output (an empty name in the file) is nil.
public final class Node {
    /// The node's name, if the file gives one.
    public var name: String?
    /// The operator, such as `Conv`.
    public var opType: String {
        didSet { operatorID = OperatorID(opType: opType, domain: domain) }
    }
    /// The operator set domain; nil or "" is the default ONNX domain.
    public var domain: String? {
        didSet { operatorID = OperatorID(opType: opType, domain: domain) }
    }
    /// The operator as a number, for comparisons and tables that cost less than the strings'.
    package private(set) var operatorID: OperatorID
    /// Scratch marks of the rewrite driver (queued, stale, matched), stamped with its run so
    /// that marks another run left mean nothing: flags on the node cost less than the hashed
    /// sets of identities they replace. (Beside `operatorID`, in what was padding: a node
    /// is no larger for it.)
    // Unchecked: only the driver assigns it, in plain stores.
    @exclusivity(unchecked) package var rewriteMarks: UInt32 = 0
    /// The function overload, if any.
    public var overload: String?
    /// The inputs; change them only through `setInput` and friends so use lists stay exact.
    // Unchecked, as are `outputs` and `holdsSubgraphs`: only this class changes them, in plain
    // assignments that call out to nothing that could read them meanwhile; the runtime's checks
    // cost a call on each read (every input and output of a model is read at load).
    @exclusivity(unchecked) public private(set) var inputs: [Value?]
    /// Each input slot's links in the use list of the value it reads (see `UseLink`), one
    /// per input.
    @exclusivity(unchecked) var useLinks: [UseLink]
    /// The outputs, which this node defines.
    @exclusivity(unchecked) public private(set) var outputs: [Value?]
    /// The attributes in file order. Graphs inside them become this node's subgraphs.
    public var attributes: [Attribute] {
        didSet { attributesChanged(from: oldValue) }
    }
    /// Documentation, if any.
    public var docString: String?
    /// Named metadata.
    public var metadataProps: [StringPair]
    /// The decoded message, for fields the IR does not interpret.
    package var origin: ProtoOrigin?

    /// The graph that holds the node; nil before insertion and after erasure.
    // The list links and the order key are unchecked: they are only assigned, never passed
    // inout or modified across a call, so no access can overlap another; the runtime's checks
    // cost a call each on every insertion (every node of a model at load).
    @exclusivity(unchecked) public internal(set) unowned var graph: Graph?
    @exclusivity(unchecked) var next: Node?
    @exclusivity(unchecked) unowned var previous: Node?

    /// The node's place in its graph's order: increasing from the first node to the last,
    /// kept by `Graph.insert` (with gaps, renumbered when an insertion finds none).
    @exclusivity(unchecked) var orderKey: UInt64 = 0

    deinit {
        // A node leaves the use lists when it leaves its graph (erased, or the graph freed):
        // this is a safety net, so that a list never names a freed node.
        unlistInputs()
        // Outputs and subgraphs a caller still holds no longer name it. (Their references to
        // it are only assigned here: reading an unowned reference to an object being
        // deinitialized traps. An output not detached is one this node produces.)
        for case let output? in outputs where output.definition != .detached {
            output.producerStorage = nil
            output.definition = .detached
        }
        if holdsSubgraphs {
            for graph in subgraphs { graph.parentNode = nil }
        }
    }

    /// Whether this node comes before `other` in their graph; constant time. Throws when the
    /// two are not in one graph (or this one is in none).
    public func isBefore(_ other: Node) throws(GraphEditError) -> Bool {
        guard let graph, graph === other.graph else {
            let place = graph.map { "in \($0.editLabel)" } ?? "in no graph"
            throw GraphEditError(.nodeNotInGraph, "cannot order \(editLabel) (\(place)) and \(other.editLabel): they are not in one graph")
        }
        return isBeforeUnchecked(other)
    }

    /// `isBefore(_:)` for the engine, which compares nodes of one graph.
    package func isBeforeUnchecked(_ other: Node) -> Bool {
        precondition(graph != nil && graph === other.graph, "isBefore compares nodes of one graph")
        return orderKey < other.orderKey
    }

    /// The node before this one in its graph.
    public var previousNode: Node? { previous }
    /// The node after this one in its graph.
    public var nextNode: Node? { next }

    /// A node, not yet in a graph, that defines new values named `outputNames` (nil: an
    /// absent output).
    public convenience init(opType: String, domain: String? = nil, name: String? = nil, inputs: [Value?],
                            outputNames: [String?], attributes: [Attribute] = []) {
        self.init(opType: opType, domain: domain, name: name, inputs: inputs, outputCount: outputNames.count,
                  outputName: { outputNames[$0] }, attributes: attributes)
    }

    /// A node whose output `index` (of `outputCount`) is named `outputName(index)` (nil: an
    /// absent output): for the loader, which reads the names from the file one by one.
    package init(opType: String, domain: String?, name: String?, inputs: [Value?],
                 outputCount: Int, outputName: (Int) -> String?, attributes: [Attribute]) {
        self.opType = opType
        self.domain = domain
        self.operatorID = OperatorID(opType: opType, domain: domain)
        self.name = name
        self.inputs = inputs
        self.useLinks = repeated(UseLink(), count: inputs.count)
        // Made before `self` is complete, so that `outputs` is initialized once rather than
        // assigned; the outputs' producer is set when the node is inserted (until then they
        // are detached, and a detached value has none).
        var outputs: [Value?] = []
        outputs.reserveCapacity(outputCount)
        for index in 0..<outputCount { outputs.append(outputName(index).map { Value(name: $0, definition: .detached) }) }
        self.outputs = outputs
        self.attributes = attributes
        self.metadataProps = []
        if attributes.contains(where: { $0.hasSubgraphs }) {
            holdsSubgraphs = true
            for graph in subgraphs { graph.parentNode = self }
        }
    }

    /// Whether the domain is the default ONNX domain ("" or `ai.onnx`).
    public var isDefaultDomain: Bool { OperatorID.isDefaultDomain(domain) }

    /// The attribute named `name`.
    public func attribute(_ name: String) -> Attribute? { attributes.first { $0.name == name } }

    /// Whether an attribute holds a graph (kept with `attributes`, for the graph's count).
    @exclusivity(unchecked) package private(set) var holdsSubgraphs = false

    /// Every graph held by an attribute, in attribute order.
    public var subgraphs: [Graph] {
        guard holdsSubgraphs else { return [] }
        var result: [Graph] = []
        for index in attributes.indices where attributes[index].hasSubgraphs {
            result += attributes[index].subgraphs
        }
        return result
    }

    /// Input `index`, or nil when absent or past the end.
    public func input(_ index: Int) -> Value? { index < inputs.count ? inputs[index] : nil }

    /// Makes input `index` read `value` (nil: absent), updating both use lists. Throws, and
    /// changes nothing, when there is no input `index`, or, for a node in a graph, when
    /// `value` is not visible to it: defined before it in its graph, or in an enclosing graph
    /// before the node holding its graph (see `Graph.insert(_:before:)`). O(nesting depth).
    public func setInput(_ index: Int, to value: Value?) throws(GraphEditError) {
        guard inputs.indices.contains(index) else {
            throw GraphEditError(.indexOutOfRange, "cannot set input \(index) of \(editLabel): it has \(inputs.count)")
        }
        try checkVisible(value, "set input \(index) of")
        setInputUnchecked(index, to: value)
    }

    /// Throws unless this node, where it is, may read `value`; the message starts with
    /// "cannot \(action) <this node>".
    private func checkVisible(_ value: Value?, _ action: @autoclosure () -> String) throws(GraphEditError) {
        guard let value, let graph, let problem = graph.visibilityProblem(of: value, before: self) else { return }
        throw GraphEditError(.valueNotVisible, "cannot \(action()) \(editLabel): \(problem)")
    }

    /// The one place that changes an input: updates the node and both use lists. For the
    /// engine, which keeps the order of definitions itself.
    package func setInputUnchecked(_ index: Int, to value: Value?) {
        let old = inputs[index]
        if old === value { return }
        if graph != nil {
            old?.removeUse(UseSlot(node: self, inputIndex: index))
            value?.addUse(UseSlot(node: self, inputIndex: index))
        }
        inputs[index] = value
    }

    /// Replaces every input, growing or shrinking the list. Throws, and changes nothing, when
    /// the node is in a graph and one of `values` is not visible to it (see `setInput`).
    public func setInputs(_ values: [Value?]) throws(GraphEditError) {
        for value in values { try checkVisible(value, "set the inputs of") }
        while inputs.count > values.count { removeLastInputUnchecked() }
        for (index, value) in values.enumerated() {
            if index < inputs.count { setInputUnchecked(index, to: value) } else { appendInputUnchecked(value) }
        }
    }

    /// Adds an input at the end. Throws, and changes nothing, when the node is in a graph and
    /// `value` is not visible to it (see `setInput`).
    public func appendInput(_ value: Value?) throws(GraphEditError) {
        try checkVisible(value, "append an input to")
        appendInputUnchecked(value)
    }

    /// `appendInput(_:)` for the engine.
    package func appendInputUnchecked(_ value: Value?) {
        inputs.append(nil)
        useLinks.append(UseLink())
        setInputUnchecked(inputs.count - 1, to: value)
    }

    /// Removes the last input. Throws, and changes nothing, when the node has none.
    public func removeLastInput() throws(GraphEditError) {
        guard !inputs.isEmpty else { throw GraphEditError(.indexOutOfRange, "cannot remove the last input of \(editLabel): it has none") }
        removeLastInputUnchecked()
    }

    /// `removeLastInput()` once the node is known to have an input.
    private func removeLastInputUnchecked() {
        setInputUnchecked(inputs.count - 1, to: nil)
        inputs.removeLast()
        useLinks.removeLast()
    }

    /// Registers this node's input uses (and those inside its subgraphs) on insertion.
    func registerUses() {
        for (index, value) in inputs.enumerated() { value?.addUse(UseSlot(node: self, inputIndex: index)) }
    }

    /// Takes this node's listed input slots out of their values' use lists (the values are
    /// alive: it holds them); its subgraphs are left as they are.
    func unlistInputs() {
        for index in useLinks.indices where useLinks[index].isListed {
            inputs[index]?.removeUse(UseSlot(node: self, inputIndex: index))
        }
    }

    /// Drops this node's input uses and those of every node inside its subgraphs.
    func unregisterUses() {
        for (index, value) in inputs.enumerated() { value?.removeUse(UseSlot(node: self, inputIndex: index)) }
        if holdsSubgraphs {
            for graph in subgraphs { graph.dropAllUses() }
        }
    }

    private func attributesChanged(from old: [Attribute]) {
        let held = old.contains(where: { $0.hasSubgraphs })
        let holds = attributes.contains(where: { $0.hasSubgraphs })
        if held != holds, let graph { graph.subgraphHolderCount += holds ? 1 : -1 }
        holdsSubgraphs = holds
        let oldGraphs = held ? old.flatMap(\.subgraphs) : []
        let newGraphs = subgraphs
        if oldGraphs.isEmpty && newGraphs.isEmpty { return }
        let kept = Set(newGraphs.map(ObjectIdentifier.init))
        for graph in oldGraphs where !kept.contains(ObjectIdentifier(graph)) {
            graph.dropAllUses()
            graph.parentNode = nil
        }
        for graph in newGraphs { graph.parentNode = self }
    }
}
