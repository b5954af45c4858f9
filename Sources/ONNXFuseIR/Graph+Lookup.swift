extension Graph {
    /// The value of this graph named `name`: a graph input, an initializer, a sparse
    /// initializer or a node output of this graph (not a value of an enclosing graph or of a
    /// subgraph); nil when there is none. Names are compared as Swift strings.
    ///
    /// O(values of the graph): no name table is kept while a graph is edited (`Value.name`
    /// can change at any time, and the engine would pay to keep one). For many look-ups, make
    /// a dictionary of the values once.
    public func value(named name: String) -> Value? {
        if let input = inputs.first(where: { $0.name == name }) { return input }
        if let initializer = initializers.first(where: { $0.name == name }) { return initializer }
        if let sparse = sparseInitializers.first(where: { $0.name == name }) { return sparse }
        for node in nodes {
            for case let output? in node.outputs where output.name == name { return output }
        }
        return nil
    }

    /// The first node of this graph named `name` (names are optional and need not be unique),
    /// or nil; the node producing a value is `value(named:)?.producer`. O(nodes of the graph).
    public func node(named name: String) -> Node? {
        nodes.first { $0.name == name }
    }
}
