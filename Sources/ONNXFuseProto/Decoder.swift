#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
internal import CONNX
import ONNXFuseIR

/// Owns a decoded protobuf-c tree: its arena (which holds the small raw_data payloads, copied)
/// and the mapped file that the lifted ones (`ONNX_FUSE_LIFT_MIN` bytes or more) point into.
/// IR objects keep it alive through their `origin` and `TensorBytes`.
final class DecodedTree: MappedFileStorage {
    let arena: OpaquePointer
    let file: MappedFile

    init(arena: OpaquePointer, file: MappedFile) {
        self.arena = arena
        self.file = file
    }

    deinit { onnx_fuse_arena_destroy(arena) }

    /// Only payloads inside the mapped file are released (the arena's are heap memory).
    override func releaseResidentPages(_ address: UnsafeRawPointer, count: Int) {
        file.releaseResidentPages(address, count: count)
    }

    override func changeSinceMapped() -> String? { file.changeSinceMapped() }
}

/// Builds the IR from a validated protobuf-c tree, checking what the wire pass cannot:
/// required fields, names defined before use (SSA across subgraph scopes), unique
/// initializers, tensor sizes, and external data.
struct Decoder {
    let tree: DecodedTree
    let fileName: String
    var externalData: ExternalDataResolver

    init(tree: DecodedTree, fileName: String, modelDirectory: String?, copiesExternalData: Bool) {
        self.tree = tree
        self.fileName = fileName
        self.externalData = ExternalDataResolver(modelDirectory: modelDirectory, modelFile: fileName, copiesFiles: copiesExternalData)
    }

    /// An invalid-model error; `location` is built only when there is an error.
    func invalid(_ location: @autoclosure () -> String, _ reason: String) -> ModelFileError {
        .invalidModel(file: fileName, location: location(), reason: reason, offset: nil)
    }

    func origin<T>(_ pointer: UnsafePointer<T>) -> ProtoOrigin {
        ProtoOrigin(owner: tree, address: UnsafeRawPointer(pointer))
    }

    // MARK: Model

    mutating func decodeModel(_ proto: UnsafePointer<Onnx__ModelProto>) throws -> Model {
        let m = proto.pointee
        guard m.has_ir_version != 0 else { throw invalid("", "the model has no ir_version") }
        guard m.ir_version >= 1 else { throw invalid("ir_version", "ir_version \(m.ir_version) is not a valid IR version") }
        let opsets = (0..<m.n_opset_import).map { i -> OpsetImport in
            let o = m.opset_import[i]!
            var opset = OpsetImport(domain: string(o.pointee.domain), version: o.pointee.has_version != 0 ? o.pointee.version : nil)
            opset.origin = origin(o)
            return opset
        }
        guard opsets.contains(where: { ($0.domain ?? "") == "" || $0.domain == "ai.onnx" }) else {
            throw invalid("opset_import", "no opset_import for the default ONNX domain")
        }
        var seenDomains = Set<String>()
        for opset in opsets {
            let domain = opset.domain == "ai.onnx" ? "" : (opset.domain ?? "")
            guard seenDomains.insert(domain).inserted else {
                throw invalid("opset_import", "domain '\(opset.domain ?? "")' is imported twice")
            }
        }
        guard let graphProto = m.graph else { throw invalid("", "the model has no graph") }
        let graph = try decodeGraph(graphProto, scope: nil, path: "graph")
        let model = Model(irVersion: m.ir_version, opsetImports: opsets, graph: graph)
        model.producerName = string(m.producer_name)
        model.producerVersion = string(m.producer_version)
        model.domain = string(m.domain)
        model.modelVersion = m.has_model_version != 0 ? m.model_version : nil
        model.docString = string(m.doc_string)
        model.metadataProps = pairs(m.metadata_props, m.n_metadata_props)
        model.opaqueReferences = opaqueReferences(m)
        // Functions and training information are written back as they were read: a tensor in
        // them with external data would point at a file the output does not carry (and that
        // replacing a pair removes).
        for i in 0..<m.n_functions {
            let function = m.functions[i]!.pointee
            if nodesHaveExternalTensor(function.node, function.n_node) {
                throw ModelFileError.unsupported(file: fileName, reason: "functions[\(i)] holds a tensor with external data, which onnx-fuse does not support in a model-local function")
            }
        }
        for i in 0..<m.n_training_info {
            let info = m.training_info[i]!.pointee
            if graphHasExternalTensor(info.initialization) || graphHasExternalTensor(info.algorithm) {
                throw ModelFileError.unsupported(file: fileName, reason: "training_info[\(i)] holds a tensor with external data, which onnx-fuse does not support in training information")
            }
        }
        model.origin = origin(proto)
        return model
    }

    /// Whether a tensor in `graph` (initializers, sparse initializers, node attributes, nested
    /// graphs) has `data_location = EXTERNAL`. The nesting was bounded when the file was read.
    func graphHasExternalTensor(_ graph: UnsafeMutablePointer<Onnx__GraphProto>?) -> Bool {
        guard let g = graph?.pointee else { return false }
        for i in 0..<g.n_initializer where isExternal(g.initializer[i]) { return true }
        for i in 0..<g.n_sparse_initializer where sparseIsExternal(g.sparse_initializer[i]) { return true }
        return nodesHaveExternalTensor(g.node, g.n_node)
    }

    func nodesHaveExternalTensor(_ nodes: UnsafeMutablePointer<UnsafeMutablePointer<Onnx__NodeProto>?>?, _ count: Int) -> Bool {
        for i in 0..<count {
            guard let node = nodes?[i]?.pointee else { continue }
            for j in 0..<node.n_attribute {
                guard let a = node.attribute[j]?.pointee else { continue }
                if isExternal(a.t) || sparseIsExternal(a.sparse_tensor) || graphHasExternalTensor(a.g) { return true }
                for k in 0..<a.n_tensors where isExternal(a.tensors[k]) { return true }
                for k in 0..<a.n_sparse_tensors where sparseIsExternal(a.sparse_tensors[k]) { return true }
                for k in 0..<a.n_graphs where graphHasExternalTensor(a.graphs[k]) { return true }
            }
        }
        return false
    }

    private func isExternal(_ tensor: UnsafeMutablePointer<Onnx__TensorProto>?) -> Bool {
        guard let t = tensor?.pointee else { return false }
        return t.has_data_location != 0 && t.data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL
    }

    private func sparseIsExternal(_ tensor: UnsafeMutablePointer<Onnx__SparseTensorProto>?) -> Bool {
        guard let t = tensor?.pointee else { return false }
        return isExternal(t.values) || isExternal(t.indices)
    }

    /// The domains model-local functions are in or import, and whether training information
    /// is present: the IR keeps both opaque, so cleanups must treat what they name as used.
    func opaqueReferences(_ m: Onnx__ModelProto) -> OpaqueReferences {
        func normalized(_ domain: UnsafeMutablePointer<CChar>?) -> String {
            let name = string(domain) ?? ""
            return name == "ai.onnx" ? "" : name
        }
        var references = OpaqueReferences()
        references.hasTrainingInfo = m.n_training_info > 0
        for i in 0..<m.n_functions {
            let function = m.functions[i]!.pointee
            references.domains.insert(normalized(function.domain))
            for j in 0..<function.n_opset_import {
                references.domains.insert(normalized(function.opset_import[j]!.pointee.domain))
            }
        }
        return references
    }

    // MARK: Graph

    /// The names visible while decoding: this graph's so far, then the enclosing graphs'.
    final class Scope {
        let parent: Scope?
        let values: NameTable
        init(parent: Scope?, capacity: Int) {
            self.parent = parent
            values = NameTable(capacity: capacity)
        }
        func lookup(_ name: String) -> Value? {
            var name = name
            return name.withUTF8 { lookup(bytes: UnsafeRawBufferPointer($0)) }
        }
        func lookup(bytes: UnsafeRawBufferPointer) -> Value? {
            var scope: Scope? = self
            while let current = scope {
                if let value = current.values.value(named: bytes) { return value }
                scope = current.parent
            }
            return nil
        }
        /// The value named by a C string of the decoded tree, without making a `String` of it.
        func lookup(_ name: UnsafePointer<CChar>) -> Value? {
            lookup(bytes: UnsafeRawBufferPointer(start: name, count: strlen(name)))
        }
    }

    /// Up to this many attributes, a node's are checked for duplicate names by a scan.
    static let attributesScannedForDuplicates = 16

    mutating func decodeGraph(_ proto: UnsafePointer<Onnx__GraphProto>, scope outer: Scope?, path: @autoclosure () -> String) throws -> Graph {
        let g = proto.pointee
        let graph = Graph(name: string(g.name))
        graph.docString = string(g.doc_string)
        graph.metadataProps = pairs(g.metadata_props, g.n_metadata_props)
        graph.origin = origin(proto)
        let scope = Scope(parent: outer, capacity: g.n_input + g.n_initializer + g.n_node)

        func define(_ value: Value, _ location: @autoclosure () -> String) throws {
            // One hash for the common case: insert, and look at what was there.
            if scope.values.insert(value) != nil {
                throw invalid(location(), "'\(value.name)' is already defined in this graph (names must be unique: single static assignment)")
            }
            try checkNotOuter(value, location())
        }
        func checkNotOuter(_ value: Value, _ location: @autoclosure () -> String) throws {
            if let outer = scope.parent, outer.lookup(value.name) != nil {
                throw invalid(location(), "'\(value.name)' is already defined in an enclosing graph (names must be unique: single static assignment)")
            }
        }

        for i in 0..<g.n_input {
            let info = g.input[i]!
            guard let name = string(info.pointee.name), !name.isEmpty else { throw invalid("\(path()).input[\(i)]", "a graph input has no name") }
            let value = graph.addInput(name: name, info: valueInfo(info))
            try define(value, "\(path()).input[\(i)]")
        }
        for i in 0..<g.n_initializer {
            let proto = g.initializer[i]!
            func location() -> String { "\(path()).initializer[\(i)]" }
            guard let cName = proto.pointee.name, cName.pointee != 0 else { throw invalid(location(), "an initializer has no name") }
            let tensor = try decodeTensor(proto, location: "\(location()) '\(String(cString: cName))'")
            // One probe finds a graph input of the name or the place for the new value.
            let (existing, place) = scope.values.find(UnsafeRawBufferPointer(start: cName, count: strlen(cName)))
            if let existing {
                // An initializer may give a graph input its default, once.
                guard existing.definition == .graphInput, !existing.hasInitializer else {
                    throw invalid(location(), "initializer '\(existing.name)' is defined twice")
                }
                graph.setInitializerUnchecked(tensor, forInput: existing)
            } else {
                // The tensor's own name is the same string: no second one is made.
                let name = tensor.name!
                let value = graph.addInitializer(name: name, tensor: consume tensor)
                scope.values.insert(value, at: place)
                try checkNotOuter(value, location())
            }
        }
        for i in 0..<g.n_sparse_initializer {
            let proto = g.sparse_initializer[i]!
            let sparse = try decodeSparseTensor(proto, location: "\(path()).sparse_initializer[\(i)]")
            guard let name = sparse.values?.name, !name.isEmpty else { throw invalid("\(path()).sparse_initializer[\(i)]", "a sparse initializer has no name") }
            try define(graph.addSparseInitializer(name: name, tensor: sparse), "\(path()).sparse_initializer[\(i)]")
        }

        /// Whether a node of this graph defines `name`: tells "used before defined" from "never defined".
        func definedByANode(_ name: String) -> Bool {
            (0..<g.n_node).contains { i in
                let n = g.node[i]!.pointee
                return (0..<n.n_output).contains { String(cString: n.output[$0]!) == name }
            }
        }

        for i in 0..<g.n_node {
            let proto = g.node[i]!
            let n = proto.pointee
            let opType = string(n.op_type) ?? ""
            let nodeName = string(n.name)
            func location() -> String { "\(path()).node[\(i)] (\(opType.isEmpty ? "?" : opType)\(nodeName.map { " '\($0)'" } ?? ""))" }
            guard !opType.isEmpty else { throw invalid(location(), "the node has no op_type") }
            var inputs: [Value?] = []
            inputs.reserveCapacity(n.n_input)
            for j in 0..<n.n_input {
                let cName = n.input[j]!
                if cName.pointee == 0 { inputs.append(nil); continue }
                guard let value = scope.lookup(cName) else {
                    let name = String(cString: cName)
                    if definedByANode(name) {
                        throw invalid(location(), "input '\(name)' is used before the node that defines it (nodes are not in topological order, or form a cycle)")
                    }
                    throw invalid(location(), "input '\(name)' is not defined")
                }
                inputs.append(value)
            }
            var attributes: [Attribute] = []
            if n.n_attribute > 0 { attributes.reserveCapacity(n.n_attribute) }
            // A scan for the usual few attributes; a set beyond, so that a node with 100,000
            // attributes does not cost 10^10 comparisons.
            var attributeNames: Set<String>? = n.n_attribute > Self.attributesScannedForDuplicates ? [] : nil
            for j in 0..<n.n_attribute {
                let attribute = try decodeAttribute(n.attribute[j]!, scope: scope, path: "\(location()).attribute[\(j)]")
                let isNew = attributeNames?.insert(attribute.name).inserted ?? !attributes.contains { $0.name == attribute.name }
                guard isNew else { throw invalid(location(), "attribute '\(attribute.name)' appears twice") }
                attributes.append(attribute)
            }
            let node = Node(opType: opType, domain: string(n.domain), name: nodeName, inputs: inputs,
                            outputCount: n.n_output, outputName: { j in
                                let name = n.output[j]!
                                return name.pointee == 0 ? nil : String(cString: name)
                            }, attributes: attributes)
            node.overload = string(n.overload)
            node.docString = string(n.doc_string)
            node.metadataProps = pairs(n.metadata_props, n.n_metadata_props)
            node.origin = origin(proto)
            graph.appendUnchecked(node)
            for (j, output) in node.outputs.enumerated() {
                if let output { try define(output, "\(location()).output[\(j)]") }
            }
        }

        for i in 0..<g.n_output {
            let info = g.output[i]!
            guard let name = string(info.pointee.name), !name.isEmpty else { throw invalid("\(path()).output[\(i)]", "a graph output has no name") }
            guard let value = scope.lookup(name) else { throw invalid("\(path()).output[\(i)]", "graph output '\(name)' is not defined") }
            graph.addOutputUnchecked(value, info: valueInfo(info))
        }
        for i in 0..<g.n_value_info {
            let info = g.value_info[i]!
            let name = string(info.pointee.name) ?? ""
            if let value = scope.values[name], value.definition != .graphInput, value.info == nil {
                value.info = valueInfo(info)
                graph.appendValueInfo(.value(value))
            } else {
                graph.appendValueInfo(.other(name: name, info: valueInfo(info)))
            }
        }
        return graph
    }

    // MARK: Attributes

    mutating func decodeAttribute(_ proto: UnsafePointer<Onnx__AttributeProto>, scope: Scope, path: @autoclosure () -> String) throws -> Attribute {
        let a = proto.pointee
        guard let name = string(a.name), !name.isEmpty else { throw invalid(path(), "an attribute has no name") }
        func location() -> String { "\(path()) '\(name)'" }
        let declared = a.has_type != 0 ? AttributeType(rawValue: Int32(bitPattern: a.type.rawValue)) : nil

        /// The value held in the field of `type`, or nil when that field is absent.
        func value(of type: AttributeType) throws -> AttributeValue? {
            switch type {
            case .float: return a.has_f != 0 ? .float(a.f) : nil
            case .int: return a.has_i != 0 ? .int(a.i) : nil
            case .string: return a.has_s != 0 ? .string(bytes(a.s)) : nil
            case .tensor: return try a.t.map { .tensor(try decodeTensor($0, location: "\(location()).t")) }
            case .graph: return try a.g.map { .graph(try decodeGraph($0, scope: scope, path: "\(location()).g")) }
            case .sparseTensor: return try a.sparse_tensor.map { .sparseTensor(try decodeSparseTensor($0, location: "\(location()).sparse_tensor")) }
            case .typeProto: return a.tp.map { .typeProto(typeInfo($0)) }
            case .floats: return .floats(Array(UnsafeBufferPointer(start: a.floats, count: a.n_floats)))
            case .ints: return .ints(Array(UnsafeBufferPointer(start: a.ints, count: a.n_ints)))
            case .strings: return .strings((0..<a.n_strings).map { bytes(a.strings[$0]) })
            case .tensors:
                return .tensors(try (0..<a.n_tensors).map { try decodeTensor(a.tensors[$0]!, location: "\(location()).tensors[\($0)]") })
            case .graphs:
                return .graphs(try (0..<a.n_graphs).map { try decodeGraph(a.graphs[$0]!, scope: scope, path: "\(location()).graphs[\($0)]") })
            case .sparseTensors:
                return .sparseTensors(try (0..<a.n_sparse_tensors).map {
                    try decodeSparseTensor(a.sparse_tensors[$0]!, location: "\(location()).sparse_tensors[\($0)]")
                })
            case .typeProtos: return .typeProtos((0..<a.n_type_protos).map { typeInfo(a.type_protos[$0]!) })
            default: return nil
            }
        }

        var found: AttributeValue?
        if let declared {
            found = try value(of: declared)
        } else {
            // No declared type (old files): the first field present, in onnx's own order.
            let present: [(Bool, AttributeType)] = [
                (a.has_f != 0, .float), (a.has_i != 0, .int), (a.has_s != 0, .string), (a.t != nil, .tensor),
                (a.g != nil, .graph), (a.sparse_tensor != nil, .sparseTensor), (a.tp != nil, .typeProto),
                (a.n_floats > 0, .floats), (a.n_ints > 0, .ints), (a.n_strings > 0, .strings), (a.n_tensors > 0, .tensors),
                (a.n_graphs > 0, .graphs), (a.n_sparse_tensors > 0, .sparseTensors), (a.n_type_protos > 0, .typeProtos),
            ]
            if let first = present.first(where: \.0) { found = try value(of: first.1) }
        }
        return Attribute(name: name, type: declared, value: found, refAttrName: string(a.ref_attr_name),
                         docString: string(a.doc_string), origin: origin(proto))
    }

    // MARK: Tensors

    mutating func decodeTensor(_ proto: UnsafePointer<Onnx__TensorProto>, location: @autoclosure () -> String) throws -> Tensor {
        let t = proto.pointee
        guard t.has_data_type != 0 else { throw invalid(location(), "the tensor has no data_type") }
        // Exactly one data field may hold the elements.
        var storage = TensorStorage.none
        var storageField: String?
        func use(_ field: String, _ present: Bool, _ make: () -> TensorStorage) throws {
            guard present else { return }
            if let storageField { throw invalid(location(), "the tensor stores its data in both \(storageField) and \(field)") }
            storageField = field
            storage = make()
        }
        func bytes<T>(_ pointer: UnsafeMutablePointer<T>?, _ count: Int) -> TensorBytes {
            TensorBytes(owner: tree, baseAddress: UnsafeRawPointer(pointer), count: count * MemoryLayout<T>.stride)
        }
        try use("raw_data", t.has_raw_data != 0) { .raw(TensorBytes(owner: tree, baseAddress: UnsafeRawPointer(t.raw_data.data), count: t.raw_data.len)) }
        try use("float_data", t.n_float_data > 0) { .floatData(bytes(t.float_data, t.n_float_data)) }
        try use("int32_data", t.n_int32_data > 0) { .int32Data(bytes(t.int32_data, t.n_int32_data)) }
        try use("string_data", t.n_string_data > 0) { .stringData((0..<t.n_string_data).map { self.bytes(t.string_data[$0]) }) }
        try use("int64_data", t.n_int64_data > 0) { .int64Data(bytes(t.int64_data, t.n_int64_data)) }
        try use("double_data", t.n_double_data > 0) { .doubleData(bytes(t.double_data, t.n_double_data)) }
        try use("uint64_data", t.n_uint64_data > 0) { .uint64Data(bytes(t.uint64_data, t.n_uint64_data)) }
        let dataLocation = t.has_data_location != 0 ? Int32(bitPattern: t.data_location.rawValue) : nil
        // A `let`, built once: a `var` tensor is copied whole (every field retained and
        // released) to read its properties.
        let tensor = Tensor(name: string(t.name), dataType: DataType(rawValue: t.data_type),
                            dims: t.n_dims == 0 ? [] : Array(UnsafeBufferPointer(start: t.dims, count: t.n_dims)),
                            storage: storage, docString: string(t.doc_string), dataLocation: dataLocation,
                            externalData: pairs(t.external_data, t.n_external_data),
                            metadataProps: pairs(t.metadata_props, t.n_metadata_props), origin: origin(proto))
        if let dataLocation, dataLocation != 0 && dataLocation != 1 {
            throw invalid(location(), "data_location \(dataLocation) is not DEFAULT (0) or EXTERNAL (1)")
        }
        if tensor.isExternal { return try externalTensor(tensor, location: location()) }
        if let problem = tensor.payloadProblem { throw invalid(location(), problem) }
        return tensor
    }

    /// `decoded`, a tensor whose data is external, with its bytes from its data file.
    mutating func externalTensor(_ decoded: Tensor, location: @autoclosure () -> String) throws -> Tensor {
        var tensor = decoded
        guard case .none = tensor.storage else {
            throw invalid(location(), "an external tensor also stores data inside the model")
        }
        guard let count = tensor.elementCount, let byteCount = tensor.dataType.rawByteCount(elements: count) else {
            throw invalid(location(), tensor.payloadProblem ?? "external data cannot hold \(tensor.dataType)")
        }
        tensor.storage = .raw(try externalData.bytes(for: tensor, expectedCount: byteCount, location: location()))
        if let problem = tensor.payloadProblem { throw invalid(location(), problem) }
        return tensor
    }

    mutating func decodeSparseTensor(_ proto: UnsafePointer<Onnx__SparseTensorProto>, location: @autoclosure () -> String) throws -> SparseTensor {
        let s = proto.pointee
        var sparse = SparseTensor(
            values: try s.values.map { try decodeTensor($0, location: "\(location()).values") },
            indices: try s.indices.map { try decodeTensor($0, location: "\(location()).indices") },
            dims: Array(UnsafeBufferPointer(start: s.dims, count: s.n_dims)))
        sparse.origin = origin(proto)
        return sparse
    }

    // MARK: Types and small messages

    func valueInfo(_ proto: UnsafePointer<Onnx__ValueInfoProto>) -> ValueInfo {
        let v = proto.pointee
        var info = ValueInfo(type: v.type.map { typeInfo($0) }, docString: string(v.doc_string),
                             metadataProps: pairs(v.metadata_props, v.n_metadata_props))
        info.origin = origin(proto)
        return info
    }

    func typeInfo(_ proto: UnsafePointer<Onnx__TypeProto>) -> TypeInfo {
        let t = proto.pointee
        func shape(_ s: UnsafeMutablePointer<Onnx__TensorShapeProto>?) -> [Dimension]? {
            guard let s else { return nil }
            return (0..<s.pointee.n_dim).map { i in
                let d = s.pointee.dim[i]!.pointee
                switch d.value_case.rawValue {
                case 1: return .value(d.dim_value)
                case 2: return d.dim_param.map { .param(String(cString: $0)) } ?? .unknown
                default: return .unknown
                }
            }
        }
        func element(_ has: protobuf_c_boolean, _ value: Int32) -> DataType? { has != 0 ? DataType(rawValue: value) : nil }
        var kind: TypeInfo.Kind?
        switch t.value_case.rawValue {
        case 1:
            let x = t.tensor_type.pointee
            kind = .tensor(elementType: element(x.has_elem_type, x.elem_type), shape: shape(x.shape))
        case 4: kind = .sequence(t.sequence_type.pointee.elem_type.map { typeInfo($0) })
        case 5:
            let x = t.map_type.pointee
            kind = .map(keyType: element(x.has_key_type, x.key_type), valueType: x.value_type.map { typeInfo($0) })
        case 9: kind = .optional(t.optional_type.pointee.elem_type.map { typeInfo($0) })
        case 8:
            let x = t.sparse_tensor_type.pointee
            kind = .sparseTensor(elementType: element(x.has_elem_type, x.elem_type), shape: shape(x.shape))
        case 7: kind = .opaque(domain: string(t.opaque_type.pointee.domain), name: string(t.opaque_type.pointee.name))
        default: kind = nil
        }
        var info = TypeInfo(kind: kind, denotation: string(t.denotation))
        info.origin = origin(proto)
        return info
    }

    func pairs(_ list: UnsafeMutablePointer<UnsafeMutablePointer<Onnx__StringStringEntryProto>?>?, _ count: Int) -> [StringPair] {
        if count == 0 { return [] }
        return (0..<count).map { i in
            let p = list![i]!.pointee
            return StringPair(key: string(p.key), value: string(p.value))
        }
    }

    func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String? {
        pointer.map { String(cString: $0) }
    }

    func bytes(_ data: ProtobufCBinaryData) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: data.data, count: data.len))
    }
}
