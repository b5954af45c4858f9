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
    ///   graph or an enclosing one, and its name is unique across that scope chain;
    /// - every node input appears in its value's use list exactly once and every use is a
    ///   real input of a node in a graph; graph output counts match the outputs;
    /// - every subgraph knows the node that holds it; initializers hold tensors.
    public func verify() throws {
        // Only graph outputs are counted in a table: values are checked where they are defined
        // and read (this runs on every model a command writes, so no per-value tables).
        var outputCounts: [ObjectIdentifier: Int] = [:]
        var defined: [Value] = []
        var reads = 0
        var visible: [String: Value] = [:]
        visible.reserveCapacity(inputs.count + initializers.count + nodeCount * 2)
        try verify(visible: &visible, outputCounts: &outputCounts, defined: &defined, reads: &reads)
        // Each listed use is a distinct real read, and each read is listed: with equal totals,
        // no value lists a use that some node outside this model makes.
        let listed = defined.reduce(0) { $0 + $1.uses.count }
        if listed != reads {
            throw IRInvariantError(description: "values list \(listed) uses but nodes of the model make \(reads) reads")
        }
        for value in defined where value.graphOutputCount != 0 || outputCounts[ObjectIdentifier(value)] != nil {
            let named = outputCounts[ObjectIdentifier(value)] ?? 0
            if value.graphOutputCount != named {
                throw IRInvariantError(description: "value '\(value.name)' counts \(value.graphOutputCount) graph outputs but \(named) name it")
            }
        }
    }

    private func fail(_ text: String) -> IRInvariantError {
        IRInvariantError(description: "graph '\(name ?? "")': \(text)")
    }

    /// `visible` holds the values in scope by name: this graph's definitions so far and those
    /// of the enclosing graphs before the node holding it. A subgraph's own names leave it when
    /// its check ends, so that its siblings and what follows do not see them.
    private func verify(visible: inout [String: Value], outputCounts: inout [ObjectIdentifier: Int],
                        defined: inout [Value], reads: inout Int) throws {
        let firstDefined = defined.count
        defer {
            if parentNode != nil {
                for value in defined[firstDefined...] where visible[value.name] === value { visible[value.name] = nil }
            }
        }
        // Messages are built only on failure: this runs for every value of every model loaded.
        func define(_ value: Value, _ what: @autoclosure () -> String) throws {
            if let existing = visible.updateValue(value, forKey: value.name) {
                visible[value.name] = existing
                if existing === value { throw fail("\(what()) '\(value.name)' is defined twice") }
                throw fail("\(what()) '\(value.name)' reuses the name of another value in scope")
            }
            guard value.graphStorage === self else { throw fail("\(what()) '\(value.name)' belongs to another graph") }
            defined.append(value)
            for use in value.uses {
                guard use.inputIndex < use.node.inputs.count, use.node.inputs[use.inputIndex] === value, use.node.graph != nil else {
                    throw fail("value '\(value.name)' lists a use (\(use.node.opType) input \(use.inputIndex)) that does not read it")
                }
            }
            if value.uses.count > 1, Self.hasRepeatedUse(value.uses) { throw fail("value '\(value.name)' lists a use twice") }
        }

        for input in inputs {
            guard input.definition == .graphInput else { throw fail("input '\(input.name)' is not defined as a graph input") }
            try define(input, "input")
        }
        for value in initializers {
            guard value.initializer != nil else { throw fail("initializer '\(value.name)' has no tensor") }
            if value.definition == .graphInput {
                guard value.graphStorage === self, visible[value.name] === value else {
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
                guard visible[input.name] === input else {
                    throw fail("\(label()) reads '\(input.name)', which is not defined before it in scope")
                }
                // Every listed use is a distinct real read (checked where the value is
                // defined), and every read is listed: the uses are exactly the reads.
                guard input.hasUse(Use(node: node, inputIndex: index)) else {
                    throw fail("\(label()) reads '\(input.name)' as input \(index), which the value does not list as a use")
                }
                reads += 1
            }
            for graph in node.subgraphs {
                guard graph.parentNode === node else { throw fail("a subgraph of \(label()) does not know its node") }
                try graph.verify(visible: &visible, outputCounts: &outputCounts, defined: &defined, reads: &reads)
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
            guard visible[output.value.name] === output.value else {
                throw fail("graph output '\(output.value.name)' is not defined in scope")
            }
            guard indexOfOutputs(names: output.value, at: index) else {
                throw fail("graph output \(index) '\(output.value.name)' is missing from the index of outputs")
            }
            outputCounts[ObjectIdentifier(output.value), default: 0] += 1
        }
    }

    /// Whether a use appears twice (a few uses are compared pairwise, more through a set).
    private static func hasRepeatedUse(_ uses: [Use]) -> Bool {
        guard uses.count > 8 else {
            for i in uses.indices { for j in uses.indices where j > i && uses[i] == uses[j] { return true } }
            return false
        }
        return Set(uses).count != uses.count
    }
}
