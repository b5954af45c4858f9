@_exported import ONNXFuseIR
@_exported import ONNXFuseProto

/// Counts of a model before and after a run, for summaries and reports.
public struct ModelStatistics: Equatable, Sendable {
    /// Nodes in every graph, subgraphs included.
    public var nodeCount: Int
    /// Nodes by operator type (`domain.Op` outside the default domain).
    public var nodesByOpType: [String: Int]

    /// The statistics of `model`.
    public init(_ model: Model) {
        var byType: [String: Int] = [:]
        var count = 0
        for graph in model.allGraphs {
            for node in graph.nodes {
                count += 1
                let key = node.isDefaultDomain ? node.opType : "\(node.domain!).\(node.opType)"
                byType[key, default: 0] += 1
            }
        }
        nodeCount = count
        nodesByOpType = byType
    }
}

/// How a run rewrites a model.
public struct OptimizationOptions: Sendable {
    /// Apply the built-in rule set. There are no built-in rules yet, so every run is a
    /// lossless round trip either way.
    public var useBuiltinRules = true

    /// The defaults.
    public init() {}
}

/// Rewrites `model` in place with the selected rules and returns what changed. With no rule
/// available (today) the model is left exactly as it was loaded.
@discardableResult
public func optimize(_ model: Model, options: OptimizationOptions = OptimizationOptions()) -> (before: ModelStatistics, after: ModelStatistics) {
    // No rule exists yet, so nothing changes and the statistics after are those before.
    let before = ModelStatistics(model)
    return (before, before)
}
