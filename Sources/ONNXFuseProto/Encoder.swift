#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
internal import CONNX
import ONNXFuseIR

/// Builds the protobuf-c message tree of a model for packing.
///
/// Every IR object decoded from a file keeps the message it came from (`origin`). When the
/// object still says exactly what that message says, the encoder returns the message itself:
/// nothing is allocated or copied, so saving an unchanged part of a model costs a comparison.
/// Otherwise it builds a new message in its arena, starting from a copy of the old one (so
/// fields the IR does not interpret survive) with the IR's fields written over it. The
/// decoded messages are never modified.
///
/// Tensor payloads are never copied: raw_data points at the tensor's bytes, which the encoder
/// keeps alive until the tree is packed. Tensors that go to external data always get new
/// messages, which the saver completes with their location once the data file is laid out.
final class Encoder {
    let arena: OpaquePointer
    /// A tensor whose payload goes to the external data file.
    struct ExternalTensor {
        let message: UnsafeMutablePointer<Onnx__TensorProto>
        let bytes: TensorBytes
        let oldEntries: [StringPair]
    }
    /// The payloads that go to the external data file, in encoding order.
    private(set) var externalTensors: [ExternalTensor] = []
    /// The size of every raw payload written inline, by its ordinal among raw payloads.
    private(set) var inlinePayloads: [(ordinal: Int, count: Int)] = []
    /// Ordinals of raw payloads to move to external data (models of 2 GiB or more).
    let forceExternal: Set<Int>
    private var rawOrdinal = 0
    private var keepAlive: [TensorBytes] = []

    init(forceExternal: Set<Int> = []) {
        guard let arena = onnx_fuse_arena_create(Int.max) else { fatalError("onnx-fuse: out of memory") }
        self.arena = arena
        self.forceExternal = forceExternal
    }

    deinit { onnx_fuse_arena_destroy(arena) }

    /// The mapped files that the payloads being written live in, for kernel-side copies, and
    /// the source of computed payloads (`DeferredPayloads`), which is laid out here: call it
    /// once every tensor is encoded, before the payload addresses are used.
    var mappedSources: [onnx_fuse_mapped_source] {
        var files: [ObjectIdentifier: MappedFile] = [:]
        var previousOwner: ObjectIdentifier?
        for bytes in keepAlive {
            // Most payloads share one owner (the decoded tree): cast each owner once in a row.
            guard let owner = bytes.owner, ObjectIdentifier(owner) != previousOwner else { continue }
            previousOwner = ObjectIdentifier(owner)
            let file = (owner as? MappedFile) ?? (owner as? DecodedTree)?.file
            if let file, file.base != nil { files[ObjectIdentifier(file)] = file }
        }
        var sources = files.values.sorted { $0.path < $1.path }.map {
            onnx_fuse_mapped_source(base: $0.base!.assumingMemoryBound(to: UInt8.self), len: $0.count,
                                    fd: $0.descriptor.rawValue, produce: nil, context: nil)
        }
        if let source = deferred.source() { sources.append(source) }
        return sources
    }

    /// Computed payloads (folded weights): made while the model is written, one at a time.
    let deferred = DeferredPayloads()

    /// Where the packer finds `bytes`: their address, or for computed bytes their place in the
    /// reserved range of `deferred` (valid once `mappedSources` has laid it out).
    func payloadAddress(_ bytes: TensorBytes) -> UnsafePointer<UInt8>? {
        if let computed = bytes.deferred { return deferred.address(of: computed) }
        return bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
    }

    // MARK: Memory

    func allocate<T>(_ type: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        guard let raw = onnx_fuse_arena_alloc(arena, MemoryLayout<T>.stride * Swift.max(count, 1)) else {
            fatalError("onnx-fuse: out of memory while encoding")
        }
        return raw.bindMemory(to: T.self, capacity: Swift.max(count, 1))
    }

    /// A new message: a copy of `origin` when there is one, else a fresh `initialize`d one.
    func start<T>(_ origin: UnsafePointer<T>?, _ initialize: (UnsafeMutablePointer<T>) -> Void) -> UnsafeMutablePointer<T> {
        let message = allocate(T.self)
        if let origin { message.pointee = origin.pointee } else { initialize(message) }
        return message
    }

    func cString(_ string: String?) -> UnsafeMutablePointer<CChar>? {
        guard var string else { return nil }
        return string.withUTF8 { utf8 in
            // The arena hands out zeroed memory, so the terminating NUL is already there.
            let copy = allocate(CChar.self, count: utf8.count + 1)
            if let base = utf8.baseAddress { UnsafeMutableRawPointer(copy).copyMemory(from: base, byteCount: utf8.count) }
            return copy
        }
    }

    func copy<T>(_ values: [T]) -> UnsafeMutablePointer<T>? {
        guard !values.isEmpty else { return nil }
        let copy = allocate(T.self, count: values.count)
        values.withUnsafeBufferPointer { copy.initialize(from: $0.baseAddress!, count: values.count) }
        return copy
    }

    func binary(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        ProtobufCBinaryData(len: bytes.count, data: copy(bytes))
    }

    func flag(_ present: Bool) -> protobuf_c_boolean { present ? 1 : 0 }

    /// A repeated message field: `count` and a pointer array in the arena.
    typealias MessageArray<Message> = (Int, UnsafeMutablePointer<UnsafeMutablePointer<Message>?>?)

    func array<Message>(_ messages: [UnsafeMutablePointer<Message>]) -> MessageArray<Message> {
        guard !messages.isEmpty else { return (0, nil) }
        let array = allocate(UnsafeMutablePointer<Message>?.self, count: messages.count)
        for (index, message) in messages.enumerated() { array[index] = message }
        return (messages.count, array)
    }

    /// A repeated string field naming `values` (an absent one as ""), without an array of names.
    func names(_ values: [Value?]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) {
        guard !values.isEmpty else { return (0, nil) }
        let array = allocate(UnsafeMutablePointer<CChar>?.self, count: values.count)
        for (index, value) in values.enumerated() { array[index] = cString(value?.name ?? "") }
        return (values.count, array)
    }

    // MARK: Comparisons with decoded messages

    /// Whether a C string says the same as `string` (both absent counts as equal).
    func same(_ c: UnsafeMutablePointer<CChar>?, _ string: String?) -> Bool {
        guard let c, var string else { return c == nil && string == nil }
        return string.withUTF8 { utf8 in
            guard let base = utf8.baseAddress else { return c.pointee == 0 }
            return strncmp(c, UnsafeRawPointer(base).assumingMemoryBound(to: CChar.self), utf8.count) == 0 && c[utf8.count] == 0
        }
    }

    /// Whether a repeated message field holds exactly `messages`.
    func same<Message>(_ count: Int, _ array: UnsafeMutablePointer<UnsafeMutablePointer<Message>?>?,
                       _ messages: [UnsafeMutablePointer<Message>]) -> Bool {
        guard count == messages.count else { return false }
        for index in 0..<count where array![index] != messages[index] { return false }
        return true
    }

    /// Whether a repeated string field names exactly `values` (an absent one as "").
    func same(_ count: Int, _ array: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ values: [Value?]) -> Bool {
        guard count == values.count else { return false }
        for index in 0..<count where !same(array![index], values[index]?.name ?? "") { return false }
        return true
    }

    func same<T: Equatable>(_ count: Int, _ pointer: UnsafeMutablePointer<T>?, _ values: [T]) -> Bool {
        guard count == values.count else { return false }
        for index in 0..<count where pointer![index] != values[index] { return false }
        return true
    }

    func same(_ count: Int, _ array: UnsafeMutablePointer<UnsafeMutablePointer<Onnx__StringStringEntryProto>?>?, _ pairs: [StringPair]) -> Bool {
        guard count == pairs.count else { return false }
        for index in 0..<count {
            let entry = array![index]!.pointee
            guard same(entry.key, pairs[index].key), same(entry.value, pairs[index].value) else { return false }
        }
        return true
    }

    func origin<T>(_ origin: ProtoOrigin?, _ type: T.Type) -> UnsafeMutablePointer<T>? {
        origin.map { UnsafeMutablePointer(mutating: $0.address.assumingMemoryBound(to: T.self)) }
    }

    // MARK: Messages

    func encode(_ model: Model) -> UnsafeMutablePointer<Onnx__ModelProto> {
        let old = origin(model.origin, Onnx__ModelProto.self)
        let opsets = model.opsetImports.map { encode($0) }
        let graph = encode(model.graph)
        if let o = old?.pointee, o.has_ir_version == flag(model.irVersion != nil), model.irVersion.map({ $0 == o.ir_version }) ?? true,
           same(o.n_opset_import, o.opset_import, opsets), same(o.producer_name, model.producerName),
           same(o.producer_version, model.producerVersion), same(o.domain, model.domain),
           o.has_model_version == flag(model.modelVersion != nil), model.modelVersion.map({ $0 == o.model_version }) ?? true,
           same(o.doc_string, model.docString), o.graph == graph, same(o.n_metadata_props, o.metadata_props, model.metadataProps) {
            return old!
        }
        let m = start(old, onnx__model_proto__init)
        m.pointee.has_ir_version = flag(model.irVersion != nil)
        m.pointee.ir_version = model.irVersion ?? 0
        (m.pointee.n_opset_import, m.pointee.opset_import) = array(opsets)
        m.pointee.producer_name = cString(model.producerName)
        m.pointee.producer_version = cString(model.producerVersion)
        m.pointee.domain = cString(model.domain)
        m.pointee.has_model_version = flag(model.modelVersion != nil)
        m.pointee.model_version = model.modelVersion ?? 0
        m.pointee.doc_string = cString(model.docString)
        m.pointee.graph = graph
        (m.pointee.n_metadata_props, m.pointee.metadata_props) = pairs(model.metadataProps)
        return m
    }

    func encode(_ opset: OpsetImport) -> UnsafeMutablePointer<Onnx__OperatorSetIdProto> {
        let old = origin(opset.origin, Onnx__OperatorSetIdProto.self)
        if let o = old?.pointee, same(o.domain, opset.domain), o.has_version == flag(opset.version != nil),
           opset.version.map({ $0 == o.version }) ?? true {
            return old!
        }
        let p = start(old, onnx__operator_set_id_proto__init)
        p.pointee.domain = cString(opset.domain)
        p.pointee.has_version = flag(opset.version != nil)
        p.pointee.version = opset.version ?? 0
        return p
    }

    func encode(_ graph: Graph) -> UnsafeMutablePointer<Onnx__GraphProto> {
        let old = origin(graph.origin, Onnx__GraphProto.self)
        // Initializers before nodes, so external data keeps the order onnx itself writes.
        let initializers = graph.initializers.map { encode($0.initializer!, name: $0.name) }
        let sparse = graph.sparseInitializers.map { encode($0.sparseInitializer!, name: $0.name) }
        var nodes: [UnsafeMutablePointer<Onnx__NodeProto>] = []
        nodes.reserveCapacity(graph.nodeCount)
        for node in graph.nodes { nodes.append(encode(node)) }
        let inputs = graph.inputs.map { valueInfo(name: $0.name, $0.info ?? ValueInfo(type: nil)) }
        let outputs = graph.outputs.map { valueInfo(name: $0.value.name, $0.info) }
        var valueInfos: [UnsafeMutablePointer<Onnx__ValueInfoProto>] = []
        for entry in graph.valueInfo {
            switch entry {
            case .value(let value):
                // A value that left the graph takes its value_info entry with it.
                if value.graph === graph, let info = value.info { valueInfos.append(valueInfo(name: value.name, info)) }
            case .other(let name, let info):
                valueInfos.append(valueInfo(name: name, info))
            }
        }
        if let o = old?.pointee, same(o.n_node, o.node, nodes), same(o.name, graph.name),
           same(o.n_initializer, o.initializer, initializers), same(o.n_sparse_initializer, o.sparse_initializer, sparse),
           same(o.doc_string, graph.docString), same(o.n_input, o.input, inputs), same(o.n_output, o.output, outputs),
           same(o.n_value_info, o.value_info, valueInfos), same(o.n_metadata_props, o.metadata_props, graph.metadataProps) {
            return old!
        }
        let g = start(old, onnx__graph_proto__init)
        (g.pointee.n_node, g.pointee.node) = array(nodes)
        g.pointee.name = cString(graph.name)
        (g.pointee.n_initializer, g.pointee.initializer) = array(initializers)
        (g.pointee.n_sparse_initializer, g.pointee.sparse_initializer) = array(sparse)
        g.pointee.doc_string = cString(graph.docString)
        (g.pointee.n_input, g.pointee.input) = array(inputs)
        (g.pointee.n_output, g.pointee.output) = array(outputs)
        (g.pointee.n_value_info, g.pointee.value_info) = array(valueInfos)
        (g.pointee.n_metadata_props, g.pointee.metadata_props) = pairs(graph.metadataProps)
        return g
    }

    func encode(_ node: Node) -> UnsafeMutablePointer<Onnx__NodeProto> {
        let old = origin(node.origin, Onnx__NodeProto.self)
        let attributes = node.attributes.map { encode($0) }
        if let o = old?.pointee, same(o.n_input, o.input, node.inputs), same(o.n_output, o.output, node.outputs),
           same(o.name, node.name), same(o.op_type, node.opType), same(o.domain, node.domain), same(o.overload, node.overload),
           same(o.n_attribute, o.attribute, attributes), same(o.doc_string, node.docString),
           same(o.n_metadata_props, o.metadata_props, node.metadataProps) {
            return old!
        }
        let n = start(old, onnx__node_proto__init)
        (n.pointee.n_input, n.pointee.input) = names(node.inputs)
        (n.pointee.n_output, n.pointee.output) = names(node.outputs)
        n.pointee.name = cString(node.name)
        n.pointee.op_type = cString(node.opType)
        n.pointee.domain = cString(node.domain)
        n.pointee.overload = cString(node.overload)
        (n.pointee.n_attribute, n.pointee.attribute) = array(attributes)
        n.pointee.doc_string = cString(node.docString)
        (n.pointee.n_metadata_props, n.pointee.metadata_props) = pairs(node.metadataProps)
        return n
    }

    func encode(_ attribute: Attribute) -> UnsafeMutablePointer<Onnx__AttributeProto> {
        let old = origin(attribute.origin, Onnx__AttributeProto.self)
        let type = Onnx__AttributeProto__AttributeType(rawValue: UInt32(bitPattern: attribute.type?.rawValue ?? 0))
        // Subgraphs and tensors are always encoded, since their contents or data files may change.
        var tensor: UnsafeMutablePointer<Onnx__TensorProto>?
        var graph: UnsafeMutablePointer<Onnx__GraphProto>?
        var sparse: UnsafeMutablePointer<Onnx__SparseTensorProto>?
        var tensors: [UnsafeMutablePointer<Onnx__TensorProto>] = []
        var graphs: [UnsafeMutablePointer<Onnx__GraphProto>] = []
        var sparses: [UnsafeMutablePointer<Onnx__SparseTensorProto>] = []
        switch attribute.value {
        case .tensor(let t)?: tensor = encode(t, name: t.name)
        case .graph(let g)?: graph = encode(g)
        case .sparseTensor(let s)?: sparse = encode(s, name: s.values?.name)
        case .tensors(let v)?: tensors = v.map { encode($0, name: $0.name) }
        case .graphs(let v)?: graphs = v.map { encode($0) }
        case .sparseTensors(let v)?: sparses = v.map { encode($0, name: $0.values?.name) }
        default: break
        }
        // An unedited value is the one the message holds, apart from the children encoded above.
        if !attribute.valueEdited, let o = old?.pointee, same(o.name, attribute.name), same(o.ref_attr_name, attribute.refAttrName),
           same(o.doc_string, attribute.docString), o.has_type == flag(attribute.type != nil), attribute.type == nil || o.type == type,
           tensor == nil || o.t == tensor, graph == nil || o.g == graph, sparse == nil || o.sparse_tensor == sparse,
           tensors.isEmpty || same(o.n_tensors, o.tensors, tensors), graphs.isEmpty || same(o.n_graphs, o.graphs, graphs),
           sparses.isEmpty || same(o.n_sparse_tensors, o.sparse_tensors, sparses) {
            return old!
        }
        let a = start(old, onnx__attribute_proto__init)
        if attribute.valueEdited {
            // A new value replaces every value field the file had; unknown fields stay.
            let unknown = (a.pointee.base.n_unknown_fields, a.pointee.base.unknown_fields)
            onnx__attribute_proto__init(a)
            (a.pointee.base.n_unknown_fields, a.pointee.base.unknown_fields) = unknown
        }
        a.pointee.name = cString(attribute.name)
        a.pointee.ref_attr_name = cString(attribute.refAttrName)
        a.pointee.doc_string = cString(attribute.docString)
        a.pointee.has_type = flag(attribute.type != nil)
        a.pointee.type = type
        switch attribute.value {
        case .float(let v)?: (a.pointee.has_f, a.pointee.f) = (1, v)
        case .int(let v)?: (a.pointee.has_i, a.pointee.i) = (1, v)
        case .string(let v)?: (a.pointee.has_s, a.pointee.s) = (1, binary(v))
        case .tensor?: a.pointee.t = tensor
        case .graph?: a.pointee.g = graph
        case .sparseTensor?: a.pointee.sparse_tensor = sparse
        case .typeProto(let t)?: a.pointee.tp = encode(t)
        case .floats(let v)?: (a.pointee.n_floats, a.pointee.floats) = (v.count, copy(v))
        case .ints(let v)?: (a.pointee.n_ints, a.pointee.ints) = (v.count, copy(v))
        case .strings(let v)?: (a.pointee.n_strings, a.pointee.strings) = (v.count, copy(v.map { binary($0) }))
        case .tensors?: (a.pointee.n_tensors, a.pointee.tensors) = array(tensors)
        case .graphs?: (a.pointee.n_graphs, a.pointee.graphs) = array(graphs)
        case .sparseTensors?: (a.pointee.n_sparse_tensors, a.pointee.sparse_tensors) = array(sparses)
        case .typeProtos(let v)?: (a.pointee.n_type_protos, a.pointee.type_protos) = array(v.map { encode($0) })
        case nil: break
        }
        return a
    }

    func encode(_ tensor: Tensor, name: String?) -> UnsafeMutablePointer<Onnx__TensorProto> {
        let old = origin(tensor.origin, Onnx__TensorProto.self)
        var goesExternal = false
        if case .raw(let bytes) = tensor.storage {
            keepAlive.append(bytes)
            goesExternal = tensor.isExternal || forceExternal.contains(rawOrdinal)
            if !goesExternal { inlinePayloads.append((rawOrdinal, bytes.count)) }
            rawOrdinal += 1
        }
        if !goesExternal, let o = old?.pointee, same(o.n_dims, o.dims, tensor.dims), o.has_data_type == 1,
           o.data_type == tensor.dataType.rawValue, same(o.name, name), same(o.doc_string, tensor.docString),
           storageUnchanged(o, tensor.storage), same(o.n_external_data, o.external_data, tensor.externalData),
           o.has_data_location == flag(tensor.dataLocation != nil),
           tensor.dataLocation.map({ UInt32(bitPattern: $0) == o.data_location.rawValue }) ?? true,
           same(o.n_metadata_props, o.metadata_props, tensor.metadataProps) {
            return old!
        }
        let t = start(old, onnx__tensor_proto__init)
        t.pointee.n_dims = tensor.dims.count
        t.pointee.dims = copy(tensor.dims)
        t.pointee.has_data_type = 1
        t.pointee.data_type = tensor.dataType.rawValue
        (t.pointee.n_float_data, t.pointee.float_data) = (0, nil)
        (t.pointee.n_int32_data, t.pointee.int32_data) = (0, nil)
        (t.pointee.n_int64_data, t.pointee.int64_data) = (0, nil)
        (t.pointee.n_double_data, t.pointee.double_data) = (0, nil)
        (t.pointee.n_uint64_data, t.pointee.uint64_data) = (0, nil)
        (t.pointee.n_string_data, t.pointee.string_data) = (0, nil)
        (t.pointee.has_raw_data, t.pointee.raw_data) = (0, ProtobufCBinaryData(len: 0, data: nil))
        switch tensor.storage {
        case .none:
            break
        case .raw(let bytes):
            if goesExternal {
                if let computed = bytes.deferred { deferred.add(computed, message: nil) }
                externalTensors.append(ExternalTensor(message: t, bytes: bytes, oldEntries: tensor.externalData))
            } else {
                t.pointee.has_raw_data = 1
                if let computed = bytes.deferred {
                    // Pointed at its place in the reserved range once all payloads are known.
                    deferred.add(computed, message: t)
                    t.pointee.raw_data = ProtobufCBinaryData(len: bytes.count, data: nil)
                } else {
                    t.pointee.raw_data = ProtobufCBinaryData(len: bytes.count, data: UnsafeMutablePointer(mutating: bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)))
                }
            }
        case .floatData(let bytes): (t.pointee.n_float_data, t.pointee.float_data) = (bytes.count / 4, typed(bytes, Float.self))
        case .int32Data(let bytes): (t.pointee.n_int32_data, t.pointee.int32_data) = (bytes.count / 4, typed(bytes, Int32.self))
        case .int64Data(let bytes): (t.pointee.n_int64_data, t.pointee.int64_data) = (bytes.count / 8, typed(bytes, Int64.self))
        case .doubleData(let bytes): (t.pointee.n_double_data, t.pointee.double_data) = (bytes.count / 8, typed(bytes, Double.self))
        case .uint64Data(let bytes): (t.pointee.n_uint64_data, t.pointee.uint64_data) = (bytes.count / 8, typed(bytes, UInt64.self))
        case .stringData(let values):
            t.pointee.n_string_data = values.count
            t.pointee.string_data = copy(values.map { binary($0) })
        }
        t.pointee.name = cString(name)
        t.pointee.doc_string = cString(tensor.docString)
        (t.pointee.n_external_data, t.pointee.external_data) = pairs(tensor.externalData)
        t.pointee.has_data_location = flag(tensor.dataLocation != nil)
        t.pointee.data_location = Onnx__TensorProto__DataLocation(rawValue: UInt32(bitPattern: tensor.dataLocation ?? 0))
        (t.pointee.n_metadata_props, t.pointee.metadata_props) = pairs(tensor.metadataProps)
        return t
    }

    /// Whether `storage` is exactly the data field of `o` (the same bytes, not a copy).
    private func storageUnchanged(_ o: Onnx__TensorProto, _ storage: TensorStorage) -> Bool {
        let fields = (o.has_raw_data != 0 ? 1 : 0) + (o.n_float_data > 0 ? 1 : 0) + (o.n_int32_data > 0 ? 1 : 0)
            + (o.n_int64_data > 0 ? 1 : 0) + (o.n_double_data > 0 ? 1 : 0) + (o.n_uint64_data > 0 ? 1 : 0) + (o.n_string_data > 0 ? 1 : 0)
        func at<T>(_ pointer: UnsafeMutablePointer<T>?, _ count: Int, _ bytes: TensorBytes) -> Bool {
            fields == 1 && UnsafeRawPointer(pointer) == bytes.residentAddress && count * MemoryLayout<T>.stride == bytes.count
        }
        switch storage {
        case .none: return fields == 0
        case .raw(let b): return fields == 1 && o.has_raw_data != 0 && UnsafeRawPointer(o.raw_data.data) == b.residentAddress && o.raw_data.len == b.count
        case .floatData(let b): return at(o.float_data, o.n_float_data, b)
        case .int32Data(let b): return at(o.int32_data, o.n_int32_data, b)
        case .int64Data(let b): return at(o.int64_data, o.n_int64_data, b)
        case .doubleData(let b): return at(o.double_data, o.n_double_data, b)
        case .uint64Data(let b): return at(o.uint64_data, o.n_uint64_data, b)
        case .stringData(let strings):
            guard fields == 1, o.n_string_data == strings.count else { return false }
            for index in 0..<strings.count {
                let data = o.string_data[index]
                guard data.len == strings[index].count,
                      strings[index].withUnsafeBytes({ data.len == 0 || memcmp($0.baseAddress!, data.data, data.len) == 0 }) else { return false }
            }
            return true
        }
    }

    /// A pointer to `bytes` as an array of `T`; copied when misaligned for `T`.
    private func typed<T>(_ bytes: TensorBytes, _ type: T.Type) -> UnsafeMutablePointer<T>? {
        guard let base = bytes.baseAddress else { return nil }
        if Int(bitPattern: base) % MemoryLayout<T>.alignment == 0 {
            keepAlive.append(bytes)
            return UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: T.self))
        }
        let copy = allocate(UInt8.self, count: bytes.count)
        copy.initialize(from: base.assumingMemoryBound(to: UInt8.self), count: bytes.count)
        return UnsafeMutableRawPointer(copy).assumingMemoryBound(to: T.self)
    }

    func encode(_ sparse: SparseTensor, name: String?) -> UnsafeMutablePointer<Onnx__SparseTensorProto> {
        let old = origin(sparse.origin, Onnx__SparseTensorProto.self)
        let values = sparse.values.map { encode($0, name: name) }
        let indices = sparse.indices.map { encode($0, name: $0.name) }
        if let o = old?.pointee, o.values == values, o.indices == indices, same(o.n_dims, o.dims, sparse.dims) {
            return old!
        }
        let s = start(old, onnx__sparse_tensor_proto__init)
        s.pointee.values = values
        s.pointee.indices = indices
        s.pointee.n_dims = sparse.dims.count
        s.pointee.dims = copy(sparse.dims)
        return s
    }

    func valueInfo(name: String, _ info: ValueInfo) -> UnsafeMutablePointer<Onnx__ValueInfoProto> {
        let old = origin(info.origin, Onnx__ValueInfoProto.self)
        let type = info.type.map { encode($0) }
        if let o = old?.pointee, same(o.name, name), o.type == type, same(o.doc_string, info.docString),
           same(o.n_metadata_props, o.metadata_props, info.metadataProps) {
            return old!
        }
        let v = start(old, onnx__value_info_proto__init)
        v.pointee.name = cString(name)
        v.pointee.type = type
        v.pointee.doc_string = cString(info.docString)
        (v.pointee.n_metadata_props, v.pointee.metadata_props) = pairs(info.metadataProps)
        return v
    }

    func encode(_ type: TypeInfo) -> UnsafeMutablePointer<Onnx__TypeProto> {
        // An unchanged type is the decoded message itself, denotations and unknown fields included.
        if let old = origin(type.origin, Onnx__TypeProto.self) { return old }
        let t = allocate(Onnx__TypeProto.self)
        onnx__type_proto__init(t)
        t.pointee.denotation = cString(type.denotation)
        func shape(_ dims: [Dimension]?) -> UnsafeMutablePointer<Onnx__TensorShapeProto>? {
            guard let dims else { return nil }
            let s = allocate(Onnx__TensorShapeProto.self)
            onnx__tensor_shape_proto__init(s)
            (s.pointee.n_dim, s.pointee.dim) = array(dims.map { dim in
                let d = allocate(Onnx__TensorShapeProto__Dimension.self)
                onnx__tensor_shape_proto__dimension__init(d)
                switch dim {
                case .value(let v):
                    d.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                    d.pointee.dim_value = v
                case .param(let p):
                    d.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                    d.pointee.dim_param = cString(p)
                case .unknown:
                    break
                }
                return d
            })
            return s
        }
        switch type.kind {
        case .tensor(let element, let dims)?:
            let x = allocate(Onnx__TypeProto__Tensor.self)
            onnx__type_proto__tensor__init(x)
            x.pointee.has_elem_type = flag(element != nil)
            x.pointee.elem_type = element?.rawValue ?? 0
            x.pointee.shape = shape(dims)
            t.pointee.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
            t.pointee.tensor_type = x
        case .sparseTensor(let element, let dims)?:
            let x = allocate(Onnx__TypeProto__SparseTensor.self)
            onnx__type_proto__sparse_tensor__init(x)
            x.pointee.has_elem_type = flag(element != nil)
            x.pointee.elem_type = element?.rawValue ?? 0
            x.pointee.shape = shape(dims)
            t.pointee.value_case = ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE
            t.pointee.sparse_tensor_type = x
        case .sequence(let element)?:
            let x = allocate(Onnx__TypeProto__Sequence.self)
            onnx__type_proto__sequence__init(x)
            x.pointee.elem_type = element.map { encode($0) }
            t.pointee.value_case = ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE
            t.pointee.sequence_type = x
        case .optional(let element)?:
            let x = allocate(Onnx__TypeProto__Optional.self)
            onnx__type_proto__optional__init(x)
            x.pointee.elem_type = element.map { encode($0) }
            t.pointee.value_case = ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE
            t.pointee.optional_type = x
        case .map(let key, let value)?:
            let x = allocate(Onnx__TypeProto__Map.self)
            onnx__type_proto__map__init(x)
            x.pointee.has_key_type = flag(key != nil)
            x.pointee.key_type = key?.rawValue ?? 0
            x.pointee.value_type = value.map { encode($0) }
            t.pointee.value_case = ONNX__TYPE_PROTO__VALUE_MAP_TYPE
            t.pointee.map_type = x
        case .opaque(let domain, let name)?:
            let x = allocate(Onnx__TypeProto__Opaque.self)
            onnx__type_proto__opaque__init(x)
            x.pointee.domain = cString(domain)
            x.pointee.name = cString(name)
            t.pointee.value_case = ONNX__TYPE_PROTO__VALUE_OPAQUE_TYPE
            t.pointee.opaque_type = x
        case nil:
            break
        }
        return t
    }

    func pairs(_ pairs: [StringPair]) -> MessageArray<Onnx__StringStringEntryProto> {
        array(pairs.map { pair in
            let p = allocate(Onnx__StringStringEntryProto.self)
            onnx__string_string_entry_proto__init(p)
            p.pointee.key = cString(pair.key)
            p.pointee.value = cString(pair.value)
            return p
        })
    }
}

/// The computed payloads of one save (`DeferredBytes`), given addresses in a range of reserved,
/// inaccessible address space so that the packer can tell them apart from memory and files;
/// the shim calls `produce` for each when it reaches it, and the bytes go to the output a
/// piece at a time as they are made.
final class DeferredPayloads {
    private var payloads: [DeferredBytes] = []
    private var index: [ObjectIdentifier: Int] = [:]
    private var messages: [(message: UnsafeMutablePointer<Onnx__TensorProto>, payload: Int)] = []
    /// Each payload's offset in the reserved range, once laid out.
    private var offsets: [Int] = []
    private var reserved: (base: UnsafeMutableRawPointer, count: Int)?
    /// The first error of a computation, for the saver's message.
    private(set) var failure: (any Error)?

    deinit {
        if let reserved { munmap(reserved.base, reserved.count) }
    }

    /// Registers `bytes`, written inline in `message` (nil for an external tensor's).
    func add(_ bytes: DeferredBytes, message: UnsafeMutablePointer<Onnx__TensorProto>?) {
        let position: Int
        if let known = index[ObjectIdentifier(bytes)] {
            position = known
        } else {
            position = payloads.count
            index[ObjectIdentifier(bytes)] = position
            payloads.append(bytes)
        }
        if let message { messages.append((message, position)) }
    }

    /// The address of `bytes` (registered by `add` while encoding) in the reserved range; nil
    /// before the layout.
    func address(of bytes: DeferredBytes) -> UnsafePointer<UInt8>? {
        guard let reserved, let position = index[ObjectIdentifier(bytes)] else { return nil }
        return UnsafePointer((reserved.base + offsets[position]).assumingMemoryBound(to: UInt8.self))
    }

    /// Lays the payloads out in a reserved range (once), points the inline messages at their
    /// places, and returns the source the shim reads them from; nil without payloads.
    func source() -> onnx_fuse_mapped_source? {
        guard !payloads.isEmpty else { return nil }
        if reserved == nil {
            var total = 0
            offsets = payloads.map { payload in
                defer { total += Swift.max(payload.count, 1) }
                return total
            }
            // Address space only: no memory is committed, and any access would fault.
            let address = mmap(nil, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
            guard let address, address != MAP_FAILED else {
                // The saver checks `failure` before it packs anything.
                failure = ReservationFailure(bytes: total, errno: currentErrno)
                return nil
            }
            reserved = (address, total)
            for (message, payload) in messages {
                message.pointee.raw_data.data = (address + offsets[payload]).assumingMemoryBound(to: UInt8.self)
            }
        }
        return onnx_fuse_mapped_source(
            base: UnsafePointer(reserved!.base.assumingMemoryBound(to: UInt8.self)), len: reserved!.count, fd: -1,
            produce: { context, offset, count, emit, sink in
                Unmanaged<DeferredPayloads>.fromOpaque(context!).takeUnretainedValue().produce(offset: offset, count: count) { piece in
                    emit!(sink, piece.baseAddress?.assumingMemoryBound(to: UInt8.self), piece.count)
                }
            },
            context: Unmanaged.passUnretained(self).toOpaque())
    }

    /// The reserved range could not be had (`ulimit -v`, for one).
    struct ReservationFailure: Error, CustomStringConvertible {
        let bytes: Int
        let errno: Int32
        var description: String { "\(bytes) bytes of address space for the computed tensors could not be reserved (\(String(cString: strerror(errno))))" }
    }

    /// Makes the `count` bytes at `offset` (one whole payload) and passes them to `emit` a piece
    /// at a time, in order; 0, or an errno: emit's, which stops the computation, or EIO when
    /// the computation fails (kept in `failure`).
    private func produce(offset: Int, count: Int, emit: (UnsafeRawBufferPointer) -> Int32) -> Int32 {
        // The payload starting at `offset` (offsets are increasing).
        var low = 0, high = offsets.count
        while low < high {
            let middle = (low + high) / 2
            if offsets[middle] < offset { low = middle + 1 } else { high = middle }
        }
        guard low < offsets.count, offsets[low] == offset, payloads[low].count == count else { return EINVAL }
        // The output's errno when it refused a piece: the computation then stops with some
        // error (however it carries it out), and the saver reports the errno.
        var outputStatus: Int32 = 0
        do {
            try payloads[low].forEachPiece { piece in
                outputStatus = emit(piece)
                if outputStatus != 0 { throw OutputRefused() }
            }
            return 0
        } catch {
            if outputStatus != 0 { return outputStatus }
            if failure == nil { failure = error }
            return EIO
        }
    }

    /// The output refused a piece (the saver reports its errno).
    private struct OutputRefused: Error {}
}
