import ONNXFuseIR

/// A text of everything an edit could change in `models`: the printed model, and each
/// value's identity, definition, graph, uses and graph output count, each node's inputs
/// by identity; then the same for `values` and `nodes` outside the models.
func irState(_ models: [Model], values: [Value] = [], nodes: [Node] = []) -> String {
    var ids: [ObjectIdentifier: Int] = [:]
    func id(_ object: AnyObject) -> String {
        let key = ObjectIdentifier(object)
        if ids[key] == nil { ids[key] = ids.count }
        return "#\(ids[key]!)"
    }
    func value(_ v: Value) -> String {
        let uses = v.uses.map { "\(id($0.node)).\($0.inputIndex)" }
        return "\(v.name)\(id(v)) \(v.definition) in \(v.graph.map { id($0) } ?? "-") uses \(uses) outputs \(v.graphOutputCount)"
            + " initializer \(v.hasInitializer)"
    }
    func node(_ n: Node) -> String {
        "\(n.opType)\(id(n)) in \(n.graph.map { id($0) } ?? "-") reads \(n.inputs.map { $0.map(value) ?? "-" })"
            + " makes \(n.outputs.map { $0.map(value) ?? "-" })"
    }
    var lines: [String] = []
    for model in models {
        lines.append(Printer().print(model))
        for graph in model.allGraphs {
            lines.append("graph \(id(graph)) in \(graph.parentNode.map { id($0) } ?? "-")")
            lines += (graph.inputs + graph.initializers + graph.sparseInitializers).map(value)
            lines += graph.nodes.map(node)
            lines += graph.outputs.map { "output \(value($0.value)) \($0.info.type?.description ?? "-")" }
        }
    }
    lines += values.map(value) + nodes.map(node)
    return lines.joined(separator: "\n")
}
