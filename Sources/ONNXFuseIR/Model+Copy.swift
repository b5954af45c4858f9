extension Model {
    /// A deep copy: new `Graph`, `Node` and `Value` objects throughout, subgraphs included,
    /// with the same attributes, value information, initializers, operator set imports,
    /// metadata, opaque references and input files. Editing one leaves the other as it was,
    /// and both save to the same bytes until one is edited.
    ///
    /// Tensors are values: the copy's initializers share their bytes with the original's (a
    /// mapped file, a heap block; never copied). Each value's uses are listed in the same
    /// order as in the original, so that rewriting the copy gives what rewriting the original
    /// gives. Uses that nodes outside the model hold on its values (a subgraph built for a
    /// node that was never inserted) are not copied. O(size of the model).
    public func copy() -> Model {
        var copier = ModelCopier()
        let graph = copier.copyStructure(of: self.graph)
        copier.finish()
        let copy = Model(irVersion: irVersion, opsetImports: opsetImports, graph: graph)
        copy.producerName = producerName
        copy.producerVersion = producerVersion
        copy.domain = domain
        copy.modelVersion = modelVersion
        copy.docString = docString
        copy.metadataProps = metadataProps
        copy.opaqueReferences = opaqueReferences
        copy.inputFiles = inputFiles
        copy.inputStorage = inputStorage
        copy.origin = origin
        return copy
    }
}

/// Copies a model's graphs in two steps: first every graph, value and node (nodes reading
/// nothing yet), then the node inputs, graph outputs and value information, once every value
/// has its copy, so that the copy needs no particular order of definitions.
private struct ModelCopier {
    /// The copy of each value, by the original's identity.
    private var values: [ObjectIdentifier: Value] = [:]
    /// The copy of each node, by the original's identity.
    private var nodes: [ObjectIdentifier: Node] = [:]
    /// The values copied, in the order they were: their use lists are copied in that order.
    private var copiedValues: [(original: Value, copy: Value)] = []
    private var copiedNodes: [(original: Node, copy: Node)] = []
    private var copiedGraphs: [(original: Graph, copy: Graph)] = []

    /// `copy` stands for `original` from now on; it gets the fields that are not structure.
    private mutating func map(_ original: Value, to copy: Value) {
        copy.info = original.info
        copy.inferred = original.inferred
        values[ObjectIdentifier(original)] = copy
        copiedValues.append((original, copy))
    }

    /// The copy of `value`; a value the model does not define (an input of a node that breaks
    /// the invariants) becomes a detached copy of its own.
    private mutating func copy(of value: Value) -> Value {
        if let copy = values[ObjectIdentifier(value)] { return copy }
        let copy = Value.detached(name: value.name)
        copy.initializer = value.initializer
        copy.sparseInitializer = value.sparseInitializer
        map(value, to: copy)
        return copy
    }

    /// A copy of `graph`, its subgraphs included, with its values and nodes; node inputs,
    /// graph outputs and value information wait for `finish`.
    mutating func copyStructure(of graph: Graph) -> Graph {
        let copy = Graph(name: graph.name)
        copy.docString = graph.docString
        copy.metadataProps = graph.metadataProps
        copy.origin = graph.origin
        copiedGraphs.append((graph, copy))
        for input in graph.inputs {
            map(input, to: copy.addInput(name: input.name, info: ValueInfo(type: nil)))
        }
        // In file order, graph inputs' defaults among them.
        for value in graph.initializers {
            guard let tensor = value.initializer else { continue }
            if value.definition == .graphInput, let input = values[ObjectIdentifier(value)], input.graph === copy {
                copy.setInitializerUnchecked(tensor, forInput: input)
            } else {
                map(value, to: copy.addInitializer(name: value.name, tensor: tensor))
            }
        }
        for value in graph.sparseInitializers {
            let sparse = copy.addSparseInitializer(name: value.name, tensor: SparseTensor(values: nil, indices: nil, dims: []))
            sparse.sparseInitializer = value.sparseInitializer
            map(value, to: sparse)
        }
        for node in graph.nodes {
            let shell = Node(opType: node.opType, domain: node.domain, name: node.name, inputs: repeated(nil, count: node.inputs.count),
                             outputCount: node.outputs.count, outputName: { node.outputs[$0]?.name }, attributes: [])
            shell.overload = node.overload
            shell.docString = node.docString
            shell.metadataProps = node.metadataProps
            shell.origin = node.origin
            for (output, copied) in zip(node.outputs, shell.outputs) {
                if let output, let copied { map(output, to: copied) }
            }
            if node.holdsSubgraphs {
                shell.attributes = node.attributes.map { $0.mappingSubgraphs { copyStructure(of: $0) } }
            } else {
                shell.attributes = node.attributes
            }
            copy.appendUnchecked(shell)
            nodes[ObjectIdentifier(node)] = shell
            copiedNodes.append((node, shell))
        }
        return copy
    }

    /// Sets the node inputs, value by value in the order of each use list, then whatever input
    /// no list holds, and the graph outputs and value information.
    mutating func finish() {
        for (original, copy) in copiedValues {
            for use in original.useList {
                nodes[ObjectIdentifier(use.node)]?.setInputUnchecked(use.inputIndex, to: copy)
            }
        }
        for (original, copy) in copiedNodes {
            for (index, input) in original.inputs.enumerated() where copy.inputs[index] == nil {
                if let input { copy.setInputUnchecked(index, to: self.copy(of: input)) }
            }
        }
        for (original, copy) in copiedGraphs {
            for output in original.outputs { copy.addOutputUnchecked(self.copy(of: output.value), info: output.info) }
            for entry in original.valueInfo {
                switch entry {
                case .value(let value): copy.appendValueInfo(.value(self.copy(of: value)))
                case .other: copy.appendValueInfo(entry)
                }
            }
        }
    }
}
