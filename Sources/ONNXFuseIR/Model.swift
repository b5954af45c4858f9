/// An operator set a model imports (`OperatorSetIdProto`).
public struct OpsetImport: Sendable {
    /// The domain; nil or "" is the default ONNX domain.
    public var domain: String?
    /// The version.
    public var version: Int64?
    /// The decoded message, for fields the IR does not interpret.
    package var origin: ProtoOrigin?

    /// An import.
    public init(domain: String?, version: Int64?) {
        self.domain = domain
        self.version = version
    }
}

/// What the parts of a model that the IR keeps opaque (model-local functions, training
/// information) may refer to: rewrites must keep these.
public struct OpaqueReferences: Sendable {
    /// Operator set domains that model-local functions belong to or import ("" for the
    /// default domain).
    public var domains: Set<String> = []
    /// Whether the model has training information, whose graphs may read any initializer of
    /// the main graph and nodes of any domain.
    public var hasTrainingInfo = false

    /// No references.
    public init() {}
}

/// An ONNX model (`ModelProto`): metadata, operator set imports and the main graph.
/// Functions, training information and device configurations are kept as they were read.
public final class Model {
    /// The IR version.
    public var irVersion: Int64?
    /// The operator sets used.
    public var opsetImports: [OpsetImport]
    /// The producing tool's name.
    public var producerName: String?
    /// The producing tool's version.
    public var producerVersion: String?
    /// The model's domain.
    public var domain: String?
    /// The model's own version.
    public var modelVersion: Int64?
    /// Documentation, if any.
    public var docString: String?
    /// Named metadata.
    public var metadataProps: [StringPair] = []
    /// What the model's opaque parts refer to.
    public var opaqueReferences = OpaqueReferences()
    /// The files the model was read from: its own file first, then every external data file
    /// it read (empty for a model built in memory). Saving never writes over them unless told
    /// to replace the input.
    public var inputFiles: [FileIdentity] = []
    /// The mapped files the model was read from, in the order of `inputFiles`: kept so that
    /// `ModelFile.checkInputUnchanged` can tell whether they changed since.
    package var inputStorage: [MappedFileStorage] = []
    /// The main graph.
    public var graph: Graph {
        didSet {
            // The graph let go of no longer names this model (it may outlive it).
            if oldValue !== graph, oldValue.modelStorage === self { oldValue.modelStorage = nil }
            graph.modelStorage = self
        }
    }
    /// The decoded message, for the fields the IR does not interpret.
    package var origin: ProtoOrigin?

    /// A model around `graph`.
    public init(irVersion: Int64?, opsetImports: [OpsetImport], graph: Graph) {
        self.irVersion = irVersion
        self.opsetImports = opsetImports
        self.graph = graph
        graph.modelStorage = self
    }

    deinit {
        // A graph a caller still holds no longer names this model (only assigned: reading an
        // unowned reference to an object being deinitialized traps).
        graph.modelStorage = nil
    }

    /// Imports `domain` (not the default one) at version 1 unless the model imports it already:
    /// a node of an unimported domain makes the model invalid.
    package func importDomainIfMissing(_ domain: String) {
        guard !OperatorID.isDefaultDomain(domain), !opsetImports.contains(where: { $0.domain == domain }) else { return }
        opsetImports.append(OpsetImport(domain: domain, version: 1))
    }

    /// The version of the default domain ("" or `ai.onnx`) or of `domain`.
    public func opsetVersion(domain: String = "") -> Int64? {
        let isDefault = domain == "" || domain == "ai.onnx"
        return opsetImports.first { import_ in
            let d = import_.domain ?? ""
            return isDefault ? (d == "" || d == "ai.onnx") : d == domain
        }?.version
    }

    /// Every graph of the model: the main graph and all subgraphs, outer before inner.
    public var allGraphs: [Graph] {
        var result: [Graph] = []
        var stack = [graph]
        while let g = stack.popLast() {
            result.append(g)
            guard g.subgraphHolderCount > 0 else { continue }
            for node in g.nodes {
                stack.append(contentsOf: node.subgraphs.reversed())
            }
        }
        return result
    }
}

/// A file by path and by identity (device and inode), to recognize it under another name.
public struct FileIdentity: Equatable, Sendable {
    /// The path it was opened by.
    public var path: String
    /// The device it is on.
    public var device: UInt64
    /// Its inode.
    public var inode: UInt64

    /// A file identity.
    public init(path: String, device: UInt64, inode: UInt64) {
        self.path = path
        self.device = device
        self.inode = inode
    }
}

/// A model may move from one task or thread to another (returned from a `Task`, made in a child
/// task), with its graphs, nodes and values. It is not synchronized: one task at a time may use
/// it and what it holds, as with any mutable object graph. Rules (`CompiledRule`) are
/// `Sendable` and may be shared freely.
extension Model: @unchecked Sendable {}
