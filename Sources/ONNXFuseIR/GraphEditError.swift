/// A misuse of the IR's editing API (`Graph`, `Node`, `Value`), refused before anything
/// changed: the graph is as it was before the call. Its `description` is one line that names
/// the node or value.
public struct GraphEditError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What kind of misuse it is.
    public enum Reason: Equatable, Sendable {
        /// Inserting a node that is already in a graph.
        case nodeAlreadyInGraph
        /// A node that is not in the graph the call needs it in (erasing, inserting before
        /// it, comparing the order of nodes of two graphs).
        case nodeNotInGraph
        /// Inserting a node into one of its own subgraphs.
        case nodeInsideItself
        /// Removing a node, initializer or input that a node or graph output still reads.
        case valueStillUsed
        /// A value that is not a graph input of the graph.
        case notAnInput
        /// A value that is not an initializer of the graph.
        case notAnInitializer
        /// An input or output position past the end.
        case indexOutOfRange
        /// A node input or graph output naming a value that is not defined before it, in its
        /// graph or an enclosing one.
        case valueNotVisible
        /// Replacing the uses of a value by the value itself.
        case valueReplacesItself
    }

    /// What kind of misuse it is.
    public let reason: Reason
    /// The one-line message.
    public let description: String

    /// An error of `reason` with the message `description`.
    init(_ reason: Reason, _ description: String) {
        self.reason = reason
        self.description = description
    }
}

extension Node {
    /// How error messages name the node: its name and operator, or the operator and the first
    /// output of an unnamed one.
    var editLabel: String {
        if let name, !name.isEmpty { return "node '\(name)' (\(opType))" }
        if let output = outputs.lazy.compactMap({ $0 }).first { return "\(opType) node of output '\(output.name)'" }
        return "\(opType) node"
    }
}

extension Value {
    /// What still uses the value, for messages: "is still read by node 'r' (Relu)" or "is
    /// still a graph output".
    var usedLabel: String {
        guard let use = useList.first else { return "is still a graph output" }
        let more = useCount > 1 ? " and \(useCount - 1) more" : ""
        return "is still read by \(use.node.editLabel)\(more)"
    }
}

extension Graph {
    /// How error messages name the graph.
    var editLabel: String { name.map { "graph '\($0)'" } ?? "the unnamed graph" }

    /// Why a node placed before `anchor` in this graph (at the end when nil) cannot read
    /// `value`, as a clause naming the value, or nil when it can. It can when `value` is
    /// defined in this graph before that place, or in an enclosing graph before the node that
    /// (through its subgraphs) holds this one. O(nesting depth).
    ///
    /// When this graph is not nested in `value`'s graph and is not a model's main graph
    /// either (a subgraph being built before its node is inserted, or a graph of no model),
    /// it may be nested there later: nil, and `insert` checks the read when the node holding
    /// the subgraph is inserted (`verify()` catches the rest).
    func visibilityProblem(of value: Value, before anchor: Node?) -> String? {
        guard let home = value.graph else { return "'\(value.name)' is in no graph" }
        var graph = self
        var anchor = anchor
        while graph !== home {
            guard let holder = graph.parentNode, let outer = holder.graph else {
                // A value of a graph inside this one can never be read from here.
                if graph.modelStorage == nil && !home.isNested(in: self) { return nil }
                return "'\(value.name)' is defined in \(home.editLabel), not in \(editLabel) or one enclosing it"
            }
            graph = outer
            anchor = holder
        }
        guard case .nodeOutput = value.definition, let producer = value.producerStorage, let anchor else { return nil }
        if producer.orderKey < anchor.orderKey { return nil }
        return "'\(value.name)' is defined by \(producer.editLabel), which does not come before the reader"
    }

    /// Whether this graph is `graph` or one of its subgraphs, at any depth.
    func isNested(in graph: Graph) -> Bool {
        var current: Graph? = self
        while let g = current {
            if g === graph { return true }
            current = g.parentGraph
        }
        return false
    }

    /// The first read from inside `node`'s subgraphs of a value of no graph among them that a
    /// node placed before `anchor` in this graph cannot make, as a message; nil when there is
    /// none. These reads could not be checked when they were made if the subgraph was not yet
    /// nested in the value's graph (`visibilityProblem`). O(size of the subgraphs).
    func subgraphVisibilityProblem(of node: Node, before anchor: Node?) -> String? {
        /// Whether `value` is defined inside `node`'s subgraphs, read from `graph` (one of them).
        func isInside(_ value: Value, from graph: Graph) -> Bool {
            guard let home = value.graph else { return false }
            var current: Graph? = graph
            while let g = current, g.parentNode !== node {
                if g === home { return true }
                current = g.parentNode?.graph
            }
            return current === home
        }
        var pending = node.subgraphs
        while let graph = pending.popLast() {
            for reader in graph.nodes {
                for case let input? in reader.inputs where !isInside(input, from: graph) {
                    if let problem = visibilityProblem(of: input, before: anchor) {
                        return "\(reader.editLabel) in \(graph.editLabel) reads a value it cannot see: \(problem)"
                    }
                }
                pending += reader.subgraphs
            }
            for output in graph.outputs where !isInside(output.value, from: graph) {
                if let problem = visibilityProblem(of: output.value, before: anchor) {
                    return "an output of \(graph.editLabel) names a value it cannot see: \(problem)"
                }
            }
        }
        return nil
    }
}
