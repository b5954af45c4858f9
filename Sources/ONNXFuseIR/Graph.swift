/// A graph output: the value it names and what the file declares about it.
public struct GraphOutput {
    /// The value; its name is the output's name.
    public let value: Value
    /// The declared type, documentation and metadata.
    public var info: ValueInfo

    /// A graph output.
    public init(value: Value, info: ValueInfo) {
        self.value = value
        self.info = info
    }
}

/// An entry of a graph's `value_info` list, in file order.
public enum ValueInfoEntry {
    /// The entry of a value this graph defines; the saver writes `value.info` under the
    /// value's current name while the value is still in the graph.
    case value(Value)
    /// An entry that names no value of this graph (an outer value, a duplicate, a stale
    /// name): kept as it is.
    case other(name: String, info: ValueInfo)
}

/// A computation graph (`GraphProto`): the main graph of a model or the body of an `If`,
/// `Loop` or `Scan`. Nodes are kept in order in an intrusive list (insertion and erasure are
/// O(1)); nodes of a subgraph may read values of every enclosing graph.
public final class Graph {
    /// The graph's name, if any.
    public var name: String?
    /// Documentation, if any.
    public var docString: String?
    /// The graph inputs, in order.
    public private(set) var inputs: [Value] = []
    /// The graph outputs, in order.
    public private(set) var outputs: [GraphOutput] = []
    /// The positions in `outputs` of the outputs naming each value (usually one), so that
    /// moving the outputs of one value does not scan them all. A set: moving one output of a
    /// value named by 160,000 outputs must not shift an array.
    private var outputPositionsByValue: [ObjectIdentifier: Set<Int>] = [:]
    /// The initializers, in file order (an overridable one is also in `inputs`).
    public var initializers: [Value] {
        removedInitializers == 0 ? initializerSlots.map { $0! } : initializerSlots.compactMap { $0 }
    }
    /// The number of initializers (without making the `initializers` array).
    public var initializerCount: Int { initializerSlots.count - removedInitializers }
    /// Initializers by slot; a removed one leaves a hole until the next compaction, so that
    /// removing is O(1) (rewrites remove many).
    // Unchecked for the reason given at `Node.inputs`.
    @exclusivity(unchecked) private var initializerSlots: [Value?] = []
    private var removedInitializers = 0
    /// The sparse initializers, in file order.
    public private(set) var sparseInitializers: [Value] = []
    /// The `value_info` list, in file order.
    public internal(set) var valueInfo: [ValueInfoEntry] = []
    /// Named metadata.
    public var metadataProps: [StringPair] = []
    /// The decoded message, for fields the IR does not interpret.
    package var origin: ProtoOrigin?

    /// The node whose attribute holds this graph; nil for a main graph.
    public internal(set) unowned var parentNode: Node?
    unowned var modelStorage: Model?

    // Unchecked for the reason given at `Node.next`.
    @exclusivity(unchecked) private var head: Node?
    @exclusivity(unchecked) private unowned var tail: Node?
    /// The number of nodes.
    @exclusivity(unchecked) public private(set) var nodeCount = 0
    /// The number of nodes that hold subgraphs: walks over every graph skip the nodes of a
    /// graph that has none.
    package internal(set) var subgraphHolderCount = 0

    /// An empty graph.
    public init(name: String? = nil) { self.name = name }

    deinit {
        // The back-references to this graph and between its nodes are unowned: a node or value
        // a caller still holds must not name the graph or a node it frees, so they are
        // cleared here, and a node kept leaves the use lists, as an erased one does (its
        // inputs stay, and are listed again if it is inserted anew). Unlink iteratively:
        // releasing a long chain through `next` would recurse once per node.
        for value in inputs { value.graphStorage = nil }
        for value in initializerSlots { value?.graphStorage = nil }
        for value in sparseInitializers { value.graphStorage = nil }
        var node = head
        head = nil
        tail = nil
        while let current = node {
            node = current.next
            current.next = nil
            current.previous = nil
            current.graph = nil
            current.unlistInputs()
            for output in current.outputs { output?.graphStorage = nil }
        }
    }

    /// The model this graph belongs to, through its enclosing graphs.
    public var model: Model? {
        var graph = self
        while let parent = graph.parentNode?.graph { graph = parent }
        return graph.modelStorage
    }

    /// The graph enclosing this subgraph.
    public var parentGraph: Graph? { parentNode?.graph }

    // MARK: Nodes

    /// The nodes in order.
    public var nodes: NodeSequence { NodeSequence(first: head) }

    /// The first node.
    public var firstNode: Node? { head }

    /// The last node.
    public var lastNode: Node? { tail }

    /// Appends `node`, registering its input uses and defining its outputs here. Throws, and
    /// changes nothing, where `insert(_:before:)` does.
    public func append(_ node: Node) throws(GraphEditError) { try insert(node, before: nil) }

    /// Inserts `node` before `successor` (at the end when nil), registering its input uses and
    /// defining its outputs here.
    ///
    /// Throws, and changes nothing, when `node` is already in a graph, when `successor` is not
    /// in this graph, when this graph is one of `node`'s own subgraphs, or when an input of
    /// `node` is not visible there: every input must be defined before that place in this
    /// graph, or in an enclosing graph before the node holding this one. (A subgraph that is
    /// not yet nested in a model, such as the body of a node not yet inserted, may read values
    /// of the graphs it will be nested in; inserting its node checks those reads.) Costs
    /// O(inputs × nesting depth), and O(size of its subgraphs) for a node that holds some.
    public func insert(_ node: Node, before successor: Node?) throws(GraphEditError) {
        if node.graph != nil {
            throw GraphEditError(.nodeAlreadyInGraph, "cannot insert \(node.editLabel) into \(editLabel): it is already in \(node.graph!.editLabel)")
        }
        if let successor, successor.graph !== self {
            throw GraphEditError(.nodeNotInGraph, "cannot insert \(node.editLabel) before \(successor.editLabel), which is not in \(editLabel)")
        }
        if node.holdsSubgraphs, node.subgraphs.contains(where: { self.isNested(in: $0) }) {
            throw GraphEditError(.nodeInsideItself, "cannot insert \(node.editLabel) into \(editLabel), one of its own subgraphs")
        }
        for case let input? in node.inputs {
            if let problem = visibilityProblem(of: input, before: successor) {
                throw GraphEditError(.valueNotVisible, "cannot insert \(node.editLabel) into \(editLabel): its input \(problem)")
            }
        }
        if node.holdsSubgraphs, let problem = subgraphVisibilityProblem(of: node, before: successor) {
            throw GraphEditError(.valueNotVisible, "cannot insert \(node.editLabel) into \(editLabel): \(problem)")
        }
        insertUnchecked(node, before: successor)
    }

    /// `append(_:)` without its checks, for the engine and the loader, which keep the
    /// invariants themselves.
    package func appendUnchecked(_ node: Node) { insertUnchecked(node, before: nil) }

    /// `insert(_:before:)` without its checks but those that keep the node list sound.
    package func insertUnchecked(_ node: Node, before successor: Node?) {
        precondition(node.graph == nil, "node is already in a graph")
        precondition(successor == nil || successor!.graph === self, "successor is not in this graph")
        node.graph = self
        if let successor {
            node.next = successor
            node.previous = successor.previous
            if let previous = successor.previous { previous.next = node } else { head = node }
            successor.previous = node
        } else {
            node.previous = tail
            if let tail { tail.next = node } else { head = node }
            tail = node
        }
        nodeCount += 1
        if node.holdsSubgraphs { subgraphHolderCount += 1 }
        assignOrderKey(node)
        for (index, output) in node.outputs.enumerated() {
            guard let output else { continue }
            output.definition = .nodeOutput(index: index)
            output.producerStorage = node
            output.graphStorage = self
        }
        node.registerUses()
    }

    /// The gap between the order keys of consecutive nodes after a renumbering.
    private static let orderKeySpacing: UInt64 = 1 << 20

    /// Gives a newly linked `node` a key between its neighbours', renumbering every node when
    /// there is no room left (rare: each renumbering leaves 2^20 between neighbours).
    private func assignOrderKey(_ node: Node) {
        let low = node.previous?.orderKey ?? 0
        guard let next = node.next else {
            node.orderKey = node.previous == nil ? 1 << 40 : low + Self.orderKeySpacing
            return
        }
        if next.orderKey > low, next.orderKey - low >= 2 {
            node.orderKey = low + (next.orderKey - low) / 2
            return
        }
        var key: UInt64 = 1 << 40
        var cursor = head
        while let current = cursor {
            current.orderKey = key
            key += Self.orderKeySpacing
            cursor = current.next
        }
    }

    /// Removes `node`, dropping its input uses (and those of every node in its subgraphs) and
    /// detaching its outputs. Throws, and changes nothing, when `node` is not in this graph or
    /// when one of its outputs is still read by a node or named by a graph output.
    public func erase(_ node: Node) throws(GraphEditError) {
        guard node.graph === self else {
            throw GraphEditError(.nodeNotInGraph, "cannot erase \(node.editLabel): it is not in \(editLabel)")
        }
        for case let output? in node.outputs where !output.isUnused {
            throw GraphEditError(.valueStillUsed, "cannot erase \(node.editLabel): its output '\(output.name)' \(output.usedLabel)")
        }
        eraseUnchecked(node)
    }

    /// `erase(_:)` for the engine, which checks the uses itself.
    package func eraseUnchecked(_ node: Node) {
        precondition(node.graph === self, "node is not in this graph")
        for output in node.outputs {
            guard let output else { continue }
            precondition(output.isUnused, "erasing '\(node.opType)' whose output '\(output.name)' is still used")
        }
        node.unregisterUses()
        unlink(node)
        // Detached outputs have no producer; the reference goes too, so that an output kept
        // longer does not keep the node's memory (an unowned reference does until it goes).
        for case let output? in node.outputs {
            output.definition = .detached
            output.producerStorage = nil
        }
    }

    private func unlink(_ node: Node) {
        let next = node.next
        if let previous = node.previous { previous.next = next } else { head = next }
        if let next { next.previous = node.previous } else { tail = node.previous }
        node.next = nil
        node.previous = nil
        node.graph = nil
        nodeCount -= 1
        if node.holdsSubgraphs { subgraphHolderCount -= 1 }
    }

    /// Drops every use that nodes of this graph (and its subgraphs) hold, and empties it:
    /// for a subgraph that is being discarded. Its outputs go too: one naming a value of an
    /// enclosing graph counts as that value's use (`graphOutputCount`), which would otherwise
    /// keep it from ever reading as unused.
    func dropAllUses() {
        for output in outputs { output.value.graphOutputCount -= 1 }
        outputs = []
        outputPositionsByValue = [:]
        while let node = head {
            node.unregisterUses()
            unlink(node)
            // As `erase` leaves them: a node a caller keeps names no graph through its outputs.
            for case let output? in node.outputs {
                output.definition = .detached
                output.producerStorage = nil
            }
        }
    }

    // MARK: Inputs, initializers, outputs

    /// Adds a graph input.
    @discardableResult
    public func addInput(name: String, info: ValueInfo) -> Value {
        let value = Value(name: name, definition: .graphInput)
        value.info = info
        value.graphStorage = self
        inputs.append(value)
        return value
    }

    /// Adds an initializer that is not a graph input.
    @discardableResult
    public func addInitializer(name: String, tensor: consuming Tensor) -> Value {
        let value = Value(name: name, definition: .initializer)
        value.initializer = consume tensor
        value.graphStorage = self
        value.initializerSlot = initializerSlots.count
        initializerSlots.append(value)
        return value
    }

    /// Gives graph input `input` an initializer (its overridable default), or a new one.
    /// Throws, and changes nothing, when `input` is not a graph input of this graph.
    public func setInitializer(_ tensor: Tensor, forInput input: Value) throws(GraphEditError) {
        guard input.definition == .graphInput && input.graphStorage === self else {
            throw GraphEditError(.notAnInput, "cannot give '\(input.name)' an initializer: it is not an input of \(editLabel)")
        }
        setInitializerUnchecked(tensor, forInput: input)
    }

    /// `setInitializer(_:forInput:)` for the loader, which knows `input` is one.
    package func setInitializerUnchecked(_ tensor: Tensor, forInput input: Value) {
        precondition(input.definition == .graphInput && input.graphStorage === self, "not an input of this graph")
        if !input.hasInitializer {
            input.initializerSlot = initializerSlots.count
            initializerSlots.append(input)
        }
        input.initializer = tensor
    }

    /// Removes an unused initializer (or the initializer of an unused overridable input
    /// together with the input). Throws, and changes nothing, when `value` is not an
    /// initializer of this graph or is still read by a node or named by a graph output.
    public func removeInitializer(_ value: Value) throws(GraphEditError) {
        guard isInitializerSlotOwner(value) else {
            throw GraphEditError(.notAnInitializer, "cannot remove initializer '\(value.name)': it is not an initializer of \(editLabel)")
        }
        guard value.isUnused else {
            throw GraphEditError(.valueStillUsed, "cannot remove initializer '\(value.name)': it \(value.usedLabel)")
        }
        removeInitializerUnchecked(value)
    }

    /// Whether `value` holds an initializer slot of this graph.
    private func isInitializerSlotOwner(_ value: Value) -> Bool {
        value.initializerSlot < initializerSlots.count && initializerSlots[value.initializerSlot] === value
    }

    /// `removeInitializer(_:)` for the engine, which checks the uses itself.
    package func removeInitializerUnchecked(_ value: Value) {
        precondition(value.isUnused, "initializer '\(value.name)' is still used")
        guard isInitializerSlotOwner(value) else {
            preconditionFailure("'\(value.name)' is not an initializer of this graph")
        }
        initializerSlots[value.initializerSlot] = nil
        removedInitializers += 1
        if removedInitializers > 64 && removedInitializers * 2 > initializerSlots.count {
            initializerSlots = initializerSlots.filter { $0 != nil }
            for (slot, initializer) in initializerSlots.enumerated() { initializer!.initializerSlot = slot }
            removedInitializers = 0
        }
        if value.definition == .graphInput { inputs.removeAll { $0 === value } }
        value.initializer = nil
        value.definition = .detached
    }

    /// Adds a sparse initializer.
    @discardableResult
    public func addSparseInitializer(name: String, tensor: SparseTensor) -> Value {
        let value = Value(name: name, definition: .sparseInitializer)
        value.sparseInitializer = tensor
        value.graphStorage = self
        sparseInitializers.append(value)
        return value
    }

    /// Adds a graph output naming `value`. Throws, and changes nothing, when `value` is not
    /// defined in this graph or an enclosing one (before the node holding this one).
    public func addOutput(_ value: Value, info: ValueInfo) throws(GraphEditError) {
        try checkOutputVisible(value, "add an output naming")
        addOutputUnchecked(value, info: info)
    }

    /// Throws unless a graph output of this graph may name `value` (`visibilityProblem`).
    private func checkOutputVisible(_ value: Value, _ action: String) throws(GraphEditError) {
        if let problem = visibilityProblem(of: value, before: nil) {
            throw GraphEditError(.valueNotVisible, "cannot \(action) '\(value.name)' in \(editLabel): \(problem)")
        }
    }

    /// Throws unless `index` is the position of an output.
    private func checkOutputIndex(_ index: Int, _ action: String) throws(GraphEditError) {
        guard outputs.indices.contains(index) else {
            throw GraphEditError(.indexOutOfRange, "cannot \(action) output \(index) of \(editLabel): it has \(outputs.count)")
        }
    }

    /// `addOutput(_:info:)` for the loader, which looks the value up in scope.
    package func addOutputUnchecked(_ value: Value, info: ValueInfo) {
        outputs.append(GraphOutput(value: value, info: info))
        outputPositionsByValue[ObjectIdentifier(value), default: []].insert(outputs.count - 1)
        value.graphOutputCount += 1
    }

    /// The positions of the outputs that name `value`, in increasing order.
    public func outputPositions(of value: Value) -> [Int] {
        outputPositionsByValue[ObjectIdentifier(value)]?.sorted() ?? []
    }

    /// Whether output `index` names `value`, by the index of outputs (what `verify` checks).
    public func indexOfOutputs(names value: Value, at index: Int) -> Bool {
        outputPositionsByValue[ObjectIdentifier(value)]?.contains(index) ?? false
    }

    /// Makes output `index` name `value`, keeping its declared information. Throws, and
    /// changes nothing, when there is no output `index` or when `value` is not defined in this
    /// graph or an enclosing one.
    public func setOutput(_ index: Int, to value: Value) throws(GraphEditError) {
        try checkOutputIndex(index, "set")
        try checkOutputVisible(value, "make output \(index) name")
        let old = outputs[index].value
        if old === value { return }
        old.graphOutputCount -= 1
        value.graphOutputCount += 1
        outputs[index] = GraphOutput(value: value, info: outputs[index].info)
        forgetOutputPosition(index, of: old)
        outputPositionsByValue[ObjectIdentifier(value), default: []].insert(index)
    }

    /// Makes every output naming `old` name `new` instead, keeping their declared information;
    /// returns how many moved. One pass over those outputs, however many there are. Throws,
    /// and changes nothing, when some output names `old` and `new` is not defined in this graph
    /// or an enclosing one.
    @discardableResult
    public func moveOutputs(from old: Value, to new: Value) throws(GraphEditError) -> Int {
        if old !== new, outputPositionsByValue[ObjectIdentifier(old)] != nil {
            try checkOutputVisible(new, "move the outputs naming '\(old.name)' to")
        }
        return moveOutputsUnchecked(from: old, to: new)
    }

    /// `moveOutputs(from:to:)` for the engine, whose replacement values are in scope.
    @discardableResult
    package func moveOutputsUnchecked(from old: Value, to new: Value) -> Int {
        guard old !== new, let positions = outputPositionsByValue.removeValue(forKey: ObjectIdentifier(old)) else { return 0 }
        for index in positions { outputs[index] = GraphOutput(value: new, info: outputs[index].info) }
        old.graphOutputCount -= positions.count
        new.graphOutputCount += positions.count
        outputPositionsByValue[ObjectIdentifier(new), default: []].formUnion(positions)
        return positions.count
    }

    /// Changes what output `index` declares. Throws, and changes nothing, when there is no
    /// output `index`.
    public func setOutputInfo(_ index: Int, _ info: ValueInfo) throws(GraphEditError) {
        try checkOutputIndex(index, "set the information of")
        outputs[index].info = info
    }

    /// Removes output `index`; the outputs after it move up one place. The value it named stays
    /// (only its graph output count drops). Throws, and changes nothing, when there is no
    /// output `index`. O(number of outputs).
    public func removeOutput(at index: Int) throws(GraphEditError) {
        try checkOutputIndex(index, "remove")
        let value = outputs.remove(at: index).value
        value.graphOutputCount -= 1
        forgetOutputPosition(index, of: value)
        for position in index..<outputs.count {
            let key = ObjectIdentifier(outputs[position].value)
            outputPositionsByValue[key]!.remove(position + 1)
            outputPositionsByValue[key]!.insert(position)
        }
    }

    /// Takes `index` out of the positions of `value`'s outputs.
    private func forgetOutputPosition(_ index: Int, of value: Value) {
        let key = ObjectIdentifier(value)
        outputPositionsByValue[key]?.remove(index)
        if outputPositionsByValue[key]?.isEmpty ?? false { outputPositionsByValue[key] = nil }
    }

    /// Removes graph input `input`, and its initializer if it has one: the value leaves the
    /// graph (it reads as detached). Throws, and changes nothing, when `input` is not an
    /// input of this graph or is still read by a node or named by a graph output. O(number
    /// of inputs).
    public func removeInput(_ input: Value) throws(GraphEditError) {
        guard input.definition == .graphInput && input.graphStorage === self else {
            throw GraphEditError(.notAnInput, "cannot remove input '\(input.name)': it is not an input of \(editLabel)")
        }
        guard input.isUnused else {
            throw GraphEditError(.valueStillUsed, "cannot remove input '\(input.name)': it \(input.usedLabel)")
        }
        if input.hasInitializer {
            removeInitializerUnchecked(input)
        } else {
            inputs.removeAll { $0 === input }
            input.definition = .detached
        }
    }

    /// Adds a `value_info` entry for `value` (a value this graph defines), or for a name it
    /// does not define.
    public func appendValueInfo(_ entry: ValueInfoEntry) { valueInfo.append(entry) }
}

/// The nodes of a graph in order. Erasing the node just returned by the iterator is safe.
public struct NodeSequence: Sequence {
    let first: Node?

    /// An iterator from the first node.
    public func makeIterator() -> Iterator { Iterator(next: first) }

    /// Walks the intrusive list; it reads the successor before returning a node.
    public struct Iterator: IteratorProtocol {
        var nextNode: Node?
        init(next: Node?) { nextNode = next }
        /// The next node.
        public mutating func next() -> Node? {
            guard let node = nextNode else { return nil }
            nextNode = node.next
            return node
        }
    }
}
