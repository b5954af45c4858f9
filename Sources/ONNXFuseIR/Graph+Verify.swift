/// A broken IR invariant found by `Graph.verify()` or `Model.verify()`: always a bug in
/// whatever edited the graph, never a problem of the input file.
public struct IRInvariantError: Error, CustomStringConvertible {
    /// What is broken and where.
    public let description: String
}

extension Model {
    /// Checks every invariant of the main graph and all subgraphs (see `Graph.verify`).
    public func verify() throws {
        guard graph.parentNode == nil, graph.modelStorage === self else {
            throw IRInvariantError(description: "the main graph is not attached to this model")
        }
        try graph.verify()
    }
}

extension Graph {
    /// Checks the invariants of this graph and its subgraphs:
    /// - the node list is consistent and every node knows its graph;
    /// - every value is defined once, by what it says defines it, before it is used, in this
    ///   graph or an enclosing one, and its name is unique across that scope chain (names
    ///   are compared as UTF-8 bytes, as the loader and ONNX compare them: two canonically
    ///   equivalent spellings are two names);
    /// - every node input appears in its value's use list exactly once and every use is a
    ///   real input of a node in a graph; graph output counts match the outputs;
    /// - every subgraph knows the node that holds it; initializers hold tensors.
    public func verify() throws {
        // Only graph outputs are counted in a table: values are checked where they are defined
        // and read (this runs on every model a command writes, so no per-value tables).
        var outputCounts: [ObjectIdentifier: Int] = [:]
        var defined: [Value] = []
        var reads = 0
        var uncountedOutput = false
        try verify(enclosing: nil, outputCounts: &outputCounts, defined: &defined, reads: &reads, uncountedOutput: &uncountedOutput)
        // Each listed use is a distinct real read, and each read is listed: with equal totals,
        // no value lists a use that some node outside this model makes.
        let listed = defined.reduce(0) { $0 + $1.useCount }
        if listed != reads {
            throw IRInvariantError(description: "values list \(listed) uses but nodes of the model make \(reads) reads")
        }
        // A value that counts no graph output is looked up only when some output names such a value.
        for value in defined where value.graphOutputCount != 0 || (uncountedOutput && outputCounts[ObjectIdentifier(value)] != nil) {
            let named = outputCounts[ObjectIdentifier(value)] ?? 0
            if value.graphOutputCount != named {
                throw IRInvariantError(description: "value '\(value.name)' counts \(value.graphOutputCount) graph outputs but \(named) name it")
            }
        }
    }

    private func fail(_ text: String) -> IRInvariantError {
        IRInvariantError(description: "graph '\(name ?? "")': \(text)")
    }

    /// The values in scope while a graph is checked: its definitions so far, then those of the
    /// enclosing graphs before the node holding it. A subgraph's values live in its own scope,
    /// dropped when its check ends, so that its siblings and what follows do not see them.
    /// Names are unique across the chain (`define` checks), and do not change while `verify`
    /// runs: a value is in scope under its name exactly when it is one of the scope's members,
    /// which reads check by identity, without hashing the name again.
    private final class VerifyScope {
        let parent: VerifyScope?
        let names: NameTable
        @exclusivity(unchecked) var members: IdentitySet
        init(parent: VerifyScope?, capacity: Int) {
            self.parent = parent
            names = NameTable(capacity: capacity)
            members = IdentitySet(capacity: capacity)
        }
        /// Adds `value` under its name; the value in scope that has the name already, if any.
        func define(_ value: Value) -> Value? {
            if let existing = names.insert(value) { return existing }
            members.insert(value)
            var scope = parent
            while let current = scope {
                if let existing = current.names[value.name] { return existing }
                scope = current.parent
            }
            return nil
        }
        /// Whether `value` is in scope under its name.
        func holds(_ value: Value) -> Bool {
            var scope: VerifyScope? = self
            while let current = scope {
                if current.members.contains(value) { return true }
                scope = current.parent
            }
            return false
        }
    }

    /// A set of values by identity: open addressing on the address, which needs no hashing
    /// of names and touches nothing of the object.
    private struct IdentitySet {
        private var slots: [UInt]
        private var mask: Int
        private var count = 0

        init(capacity: Int) {
            var size = 16
            while size < capacity * 2 { size <<= 1 }
            slots = [UInt](repeating: 0, count: size)
            mask = size - 1
        }

        private func start(_ key: UInt) -> Int {
            // Objects are 16-byte aligned; Fibonacci hashing spreads the rest.
            Int(truncatingIfNeeded: ((key >> 4) &* 0x9E37_79B9_7F4A_7C15) >> 24) & mask
        }

        func contains(_ object: Value) -> Bool {
            let key = UInt(bitPattern: ObjectIdentifier(object))
            var index = start(key)
            while slots[index] != 0 {
                if slots[index] == key { return true }
                index = (index + 1) & mask
            }
            return false
        }

        mutating func insert(_ object: Value) {
            if (count + 1) * 2 > slots.count {
                let old = slots
                self = IdentitySet(capacity: slots.count)
                for key in old where key != 0 { insert(key) }
            }
            insert(UInt(bitPattern: ObjectIdentifier(object)))
        }

        private mutating func insert(_ key: UInt) {
            var index = start(key)
            while slots[index] != 0 {
                if slots[index] == key { return }
                index = (index + 1) & mask
            }
            slots[index] = key
            count += 1
        }
    }

    private func verify(enclosing: VerifyScope?, outputCounts: inout [ObjectIdentifier: Int],
                        defined: inout [Value], reads: inout Int, uncountedOutput: inout Bool) throws {
        let scope = VerifyScope(parent: enclosing, capacity: inputs.count + initializerCount + sparseInitializers.count + nodeCount)
        // Messages are built only on failure: this runs for every value of every model loaded.
        func define(_ value: Value, _ what: @autoclosure () -> String) throws {
            if let existing = scope.define(value) {
                if existing === value { throw fail("\(what()) '\(value.name)' is defined twice") }
                throw fail("\(what()) '\(value.name)' reuses the name of another value in scope")
            }
            guard value.graphStorage === self else { throw fail("\(what()) '\(value.name)' belongs to another graph") }
            defined.append(value)
            try checkUseList(of: value)
        }

        for input in inputs {
            guard input.definition == .graphInput else { throw fail("input '\(input.name)' is not defined as a graph input") }
            try define(input, "input")
        }
        for value in initializers {
            guard value.initializer != nil else { throw fail("initializer '\(value.name)' has no tensor") }
            if value.definition == .graphInput {
                guard value.graphStorage === self, scope.holds(value) else {
                    throw fail("initializer '\(value.name)' is marked as an input but is not one")
                }
                continue
            }
            guard value.definition == .initializer else { throw fail("initializer '\(value.name)' is not defined as one") }
            try define(value, "initializer")
        }
        for value in sparseInitializers {
            guard value.definition == .sparseInitializer, value.sparseInitializer != nil else {
                throw fail("sparse initializer '\(value.name)' is not defined as one")
            }
            try define(value, "sparse initializer")
        }

        var count = 0
        var previous: Node?
        for node in nodes {
            count += 1
            guard node.graph === self else { throw fail("node '\(node.name ?? node.opType)' does not know its graph") }
            guard node.previous === previous else { throw fail("node list is broken before '\(node.name ?? node.opType)'") }
            previous = node
            func label() -> String { "node '\(node.name ?? "")' (\(node.opType))" }
            for (index, input) in node.inputs.enumerated() {
                guard let input else { continue }
                guard scope.holds(input) else {
                    throw fail("\(label()) reads '\(input.name)', which is not defined before it in scope")
                }
                // Every listed use is a distinct real read (checked where the value is
                // defined), and every read is listed: the uses are exactly the reads.
                guard input.hasUse(UseSlot(node: node, inputIndex: index)) else {
                    throw fail("\(label()) reads '\(input.name)' as input \(index), which the value does not list as a use")
                }
                reads += 1
            }
            for graph in node.subgraphs {
                guard graph.parentNode === node else { throw fail("a subgraph of \(label()) does not know its node") }
                try graph.verify(enclosing: scope, outputCounts: &outputCounts, defined: &defined, reads: &reads,
                                 uncountedOutput: &uncountedOutput)
            }
            for (index, output) in node.outputs.enumerated() {
                guard let output else { continue }
                guard output.definition == .nodeOutput(index: index), output.producerStorage === node else {
                    throw fail("\(label()) output \(index) '\(output.name)' does not name the node as its producer")
                }
                try define(output, "output of \(label())")
            }
        }
        guard count == nodeCount, previous === lastNode else { throw fail("node count or tail is wrong") }

        for (index, output) in outputs.enumerated() {
            guard scope.holds(output.value) else {
                throw fail("graph output '\(output.value.name)' is not defined in scope")
            }
            guard indexOfOutputs(names: output.value, at: index) else {
                throw fail("graph output \(index) '\(output.value.name)' is missing from the index of outputs")
            }
            outputCounts[ObjectIdentifier(output.value), default: 0] += 1
            if output.value.graphOutputCount == 0 { uncountedOutput = true }
        }
    }

    /// Checks that `value`'s use list holds `useCount` real reads of it, each once. Each slot
    /// has one `next` link, so a walk that ends within `useCount` steps visited distinct slots;
    /// a repeated one would make it loop past the count.
    private func checkUseList(of value: Value) throws {
        var visited = 0
        var previous: UseSlot?
        var cursor = value.firstUse
        while let use = cursor {
            guard visited < value.useCount else { throw fail("value '\(value.name)' lists more uses than it counts, or one twice") }
            guard use.inputIndex < use.node.inputs.count, use.node.inputs[use.inputIndex] === value, use.node.graph != nil else {
                throw fail("value '\(value.name)' lists a use (\(use.node.opType) input \(use.inputIndex)) that does not read it")
            }
            let link = use.link
            guard previous == nil || link.previous == previous else {
                throw fail("value '\(value.name)' has a use list whose links back are broken")
            }
            visited += 1
            previous = use
            cursor = link.next
        }
        guard visited == value.useCount, value.firstUse?.link.previous == previous else {
            throw fail("value '\(value.name)' counts \(value.useCount) uses but lists \(visited), or its last use is wrong")
        }
    }
}
