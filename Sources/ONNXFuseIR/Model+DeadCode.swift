extension Model {
    /// Removes what nothing reads after hand edits, in every graph, subgraphs included:
    /// - nodes of the ONNX and ONNX-ML domains ("", `ai.onnx`, `ai.onnx.ml`) none of whose
    ///   outputs is read by a node (a node of a subgraph included) or named by a graph output,
    ///   until none is left: a chain dies from its end, and a node read only inside a branch
    ///   dies with the branch's readers. Nodes of other domains stay, since their operators may
    ///   have effects, and so does a node holding a subgraph that has such a node anywhere;
    /// - then initializers that nothing reads and that are not graph inputs (those can be
    ///   overridden at run time, and belong to the graph's signature). A model with training
    ///   information keeps every initializer of its main graph: its training graphs, which the
    ///   IR keeps opaque, may read them. Sparse initializers stay.
    ///
    /// Returns how many nodes and initializers went. O(size of the model): each graph is walked
    /// once from its last node to its first, inner graphs before the graphs around them, which
    /// is enough, since a node is read only by nodes after it or inside their subgraphs.
    @discardableResult
    public func removeDeadCode() -> (nodes: Int, initializers: Int) {
        var nodes = 0
        for graph in allGraphs.reversed() {
            var cursor = graph.lastNode
            while let node = cursor {
                cursor = node.previousNode
                guard node.outputs.allSatisfy({ $0?.isUnused ?? true }), node.isFreeOfEffects else { continue }
                graph.eraseUnchecked(node)
                nodes += 1
            }
        }
        var initializers = 0
        for graph in allGraphs where !(graph === self.graph && opaqueReferences.hasTrainingInfo) {
            for value in graph.initializers where value.definition == .initializer && value.isUnused {
                graph.removeInitializerUnchecked(value)
                initializers += 1
            }
        }
        return (nodes, initializers)
    }
}

extension Node {
    /// Whether removing the node can change nothing but its outputs: its operator, and every
    /// operator in its subgraphs, is of the ONNX or ONNX-ML domain.
    fileprivate var isFreeOfEffects: Bool {
        guard isDefaultDomain || domain == "ai.onnx.ml" else { return false }
        return subgraphs.allSatisfy { graph in graph.nodes.allSatisfy(\.isFreeOfEffects) }
    }
}
