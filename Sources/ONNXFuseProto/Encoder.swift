internal import CONNX
import ONNXFuseIR

/// Builds a protobuf-c message tree from the IR in an arena. Each message starts as a copy
/// of the one it was decoded from (so fields the IR does not interpret survive) and the IR's
/// fields are written over it. Tensor payloads are not copied: raw_data points at the
/// tensor's bytes, which `keepAlive` holds until the tree is packed.
final class Encoder {
    let arena: OpaquePointer
    /// Every tensor written with a raw payload, in encoding order, and whether it goes to
    /// external data. The saver may move more of them out (models of 2 GiB or more).
    private(set) var rawTensors: [(proto: UnsafeMutablePointer<Onnx__TensorProto>, bytes: TensorBytes, external: Bool, pairs: [StringPair])] = []
    private var keepAlive: [TensorBytes] = []

    init() {
        guard let arena = onnx_fuse_arena_create(Int.max) else { fatalError("onnx-fuse: out of memory") }
        self.arena = arena
    }

    deinit { onnx_fuse_arena_destroy(arena) }

    /// The mapped files that the payloads being written live in, for kernel-side copies.
    var mappedSources: [onnx_fuse_mapped_source] {
        var files: [ObjectIdentifier: MappedFile] = [:]
        for bytes in keepAlive {
            let file = (bytes.owner as? MappedFile) ?? (bytes.owner as? DecodedTree)?.file
            if let file, file.base != nil { files[ObjectIdentifier(file)] = file }
        }
        return files.values.sorted { $0.path < $1.path }.map {
            onnx_fuse_mapped_source(base: $0.base!.assumingMemoryBound(to: UInt8.self), len: $0.count, fd: $0.descriptor.rawValue)
        }
    }

    // MARK: Memory

    func allocate<T>(_ type: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        guard let raw = onnx_fuse_arena_alloc(arena, MemoryLayout<T>.stride * Swift.max(count, 1)) else {
            fatalError("onnx-fuse: out of memory while encoding")
        }
        return raw.bindMemory(to: T.self, capacity: Swift.max(count, 1))
    }

    /// A message to fill: a copy of `origin` when there is one, else a fresh `initialize`d one.
    func start<T>(_ origin: ProtoOrigin?, _ initialize: (UnsafeMutablePointer<T>) -> Void) -> UnsafeMutablePointer<T> {
        let message = allocate(T.self)
        if let origin {
            message.pointee = origin.address.assumingMemoryBound(to: T.self).pointee
        } else {
            initialize(message)
        }
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

    /// An array of message pointers for a repeated message field.
    func list<Item, Message>(_ items: [Item], _ encode: (Item) -> UnsafeMutablePointer<Message>)
        -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<Message>?>?) {
        guard !items.isEmpty else { return (0, nil) }
        let array = allocate(UnsafeMutablePointer<Message>?.self, count: items.count)
        for (index, item) in items.enumerated() { array[index] = encode(item) }
        return (items.count, array)
    }

    func strings(_ values: [String]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) {
        guard !values.isEmpty else { return (0, nil) }
        let array = allocate(UnsafeMutablePointer<CChar>?.self, count: values.count)
        for (index, value) in values.enumerated() { array[index] = cString(value) }
        return (values.count, array)
    }

    func flag(_ present: Bool) -> protobuf_c_boolean { present ? 1 : 0 }

    // MARK: Messages

    func encode(_ model: Model) -> UnsafeMutablePointer<Onnx__ModelProto> {
        let m: UnsafeMutablePointer<Onnx__ModelProto> = start(model.origin, onnx__model_proto__init)
        m.pointee.has_ir_version = flag(model.irVersion != nil)
        m.pointee.ir_version = model.irVersion ?? 0
        (m.pointee.n_opset_import, m.pointee.opset_import) = list(model.opsetImports) { opset in
            let o: UnsafeMutablePointer<Onnx__OperatorSetIdProto> = start(opset.origin, onnx__operator_set_id_proto__init)
            o.pointee.domain = cString(opset.domain)
            o.pointee.has_version = flag(opset.version != nil)
            o.pointee.version = opset.version ?? 0
            return o
        }
        m.pointee.producer_name = cString(model.producerName)
        m.pointee.producer_version = cString(model.producerVersion)
        m.pointee.domain = cString(model.domain)
        m.pointee.has_model_version = flag(model.modelVersion != nil)
        m.pointee.model_version = model.modelVersion ?? 0
        m.pointee.doc_string = cString(model.docString)
        m.pointee.graph = encode(model.graph)
        (m.pointee.n_metadata_props, m.pointee.metadata_props) = pairs(model.metadataProps)
        return m
    }

    func encode(_ graph: Graph) -> UnsafeMutablePointer<Onnx__GraphProto> {
        let g: UnsafeMutablePointer<Onnx__GraphProto> = start(graph.origin, onnx__graph_proto__init)
        g.pointee.name = cString(graph.name)
        g.pointee.doc_string = cString(graph.docString)
        // Initializers before nodes, so external data keeps the order onnx itself writes.
        (g.pointee.n_initializer, g.pointee.initializer) = list(graph.initializers) { encode($0.initializer!, name: $0.name) }
        (g.pointee.n_sparse_initializer, g.pointee.sparse_initializer) = list(graph.sparseInitializers) {
            encode($0.sparseInitializer!, name: $0.name)
        }
        (g.pointee.n_node, g.pointee.node) = list(Array(graph.nodes)) { encode($0) }
        (g.pointee.n_input, g.pointee.input) = list(graph.inputs) { valueInfo(name: $0.name, $0.info ?? ValueInfo(type: nil)) }
        (g.pointee.n_output, g.pointee.output) = list(graph.outputs) { valueInfo(name: $0.value.name, $0.info) }
        var entries: [(String, ValueInfo)] = []
        for entry in graph.valueInfo {
            switch entry {
            case .value(let value):
                // A value that left the graph takes its value_info entry with it.
                if value.graph === graph, let info = value.info { entries.append((value.name, info)) }
            case .other(let name, let info):
                entries.append((name, info))
            }
        }
        (g.pointee.n_value_info, g.pointee.value_info) = list(entries) { valueInfo(name: $0.0, $0.1) }
        (g.pointee.n_metadata_props, g.pointee.metadata_props) = pairs(graph.metadataProps)
        return g
    }

    func encode(_ node: Node) -> UnsafeMutablePointer<Onnx__NodeProto> {
        let n: UnsafeMutablePointer<Onnx__NodeProto> = start(node.origin, onnx__node_proto__init)
        (n.pointee.n_input, n.pointee.input) = strings(node.inputs.map { $0?.name ?? "" })
        (n.pointee.n_output, n.pointee.output) = strings(node.outputs.map { $0?.name ?? "" })
        n.pointee.name = cString(node.name)
        n.pointee.op_type = cString(node.opType)
        n.pointee.domain = cString(node.domain)
        n.pointee.overload = cString(node.overload)
        (n.pointee.n_attribute, n.pointee.attribute) = list(node.attributes) { encode($0) }
        n.pointee.doc_string = cString(node.docString)
        (n.pointee.n_metadata_props, n.pointee.metadata_props) = pairs(node.metadataProps)
        return n
    }

    func encode(_ attribute: Attribute) -> UnsafeMutablePointer<Onnx__AttributeProto> {
        let a: UnsafeMutablePointer<Onnx__AttributeProto> = start(attribute.origin, onnx__attribute_proto__init)
        a.pointee.name = cString(attribute.name)
        a.pointee.ref_attr_name = cString(attribute.refAttrName)
        a.pointee.doc_string = cString(attribute.docString)
        a.pointee.has_type = flag(attribute.type != nil)
        a.pointee.type = Onnx__AttributeProto__AttributeType(rawValue: UInt32(bitPattern: attribute.type?.rawValue ?? 0))
        if attribute.valueEdited {
            // A new value replaces every value field the file had.
            let name = a.pointee.name, ref = a.pointee.ref_attr_name, doc = a.pointee.doc_string
            let (hasType, type) = (a.pointee.has_type, a.pointee.type)
            let unknown = (a.pointee.base.n_unknown_fields, a.pointee.base.unknown_fields)
            onnx__attribute_proto__init(a)
            (a.pointee.name, a.pointee.ref_attr_name, a.pointee.doc_string) = (name, ref, doc)
            (a.pointee.has_type, a.pointee.type) = (hasType, type)
            (a.pointee.base.n_unknown_fields, a.pointee.base.unknown_fields) = unknown
        }
        // Unedited values are written over the same field with the same value; subgraphs and
        // tensors are always encoded again, since their contents or data files may change.
        switch attribute.value {
        case .float(let v)?: (a.pointee.has_f, a.pointee.f) = (1, v)
        case .int(let v)?: (a.pointee.has_i, a.pointee.i) = (1, v)
        case .string(let v)?: (a.pointee.has_s, a.pointee.s) = (1, binary(v))
        case .tensor(let t)?: a.pointee.t = encode(t, name: t.name)
        case .graph(let g)?: a.pointee.g = encode(g)
        case .sparseTensor(let s)?: a.pointee.sparse_tensor = encode(s, name: s.values?.name)
        case .typeProto(let t)?: a.pointee.tp = encode(t)
        case .floats(let v)?: (a.pointee.n_floats, a.pointee.floats) = (v.count, copy(v))
        case .ints(let v)?: (a.pointee.n_ints, a.pointee.ints) = (v.count, copy(v))
        case .strings(let v)?: (a.pointee.n_strings, a.pointee.strings) = (v.count, copy(v.map { binary($0) }))
        case .tensors(let v)?: (a.pointee.n_tensors, a.pointee.tensors) = list(v) { encode($0, name: $0.name) }
        case .graphs(let v)?: (a.pointee.n_graphs, a.pointee.graphs) = list(v) { encode($0) }
        case .sparseTensors(let v)?: (a.pointee.n_sparse_tensors, a.pointee.sparse_tensors) = list(v) { encode($0, name: $0.values?.name) }
        case .typeProtos(let v)?: (a.pointee.n_type_protos, a.pointee.type_protos) = list(v) { encode($0) }
        case nil: break
        }
        return a
    }

    func encode(_ tensor: Tensor, name: String?) -> UnsafeMutablePointer<Onnx__TensorProto> {
        let t: UnsafeMutablePointer<Onnx__TensorProto> = start(tensor.origin, onnx__tensor_proto__init)
        t.pointee.n_dims = tensor.dims.count
        t.pointee.dims = copy(tensor.dims)
        t.pointee.has_data_type = 1
        t.pointee.data_type = tensor.dataType.rawValue
        t.pointee.n_float_data = 0
        t.pointee.float_data = nil
        t.pointee.n_int32_data = 0
        t.pointee.int32_data = nil
        t.pointee.n_int64_data = 0
        t.pointee.int64_data = nil
        t.pointee.n_double_data = 0
        t.pointee.double_data = nil
        t.pointee.n_uint64_data = 0
        t.pointee.uint64_data = nil
        t.pointee.n_string_data = 0
        t.pointee.string_data = nil
        t.pointee.has_raw_data = 0
        t.pointee.raw_data = ProtobufCBinaryData(len: 0, data: nil)
        switch tensor.storage {
        case .none:
            break
        case .raw(let bytes):
            keepAlive.append(bytes)
            rawTensors.append((t, bytes, tensor.isExternal, tensor.externalData))
            if !tensor.isExternal {
                t.pointee.has_raw_data = 1
                t.pointee.raw_data = ProtobufCBinaryData(len: bytes.count, data: UnsafeMutablePointer(mutating: bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)))
            }
        case .floatData(let bytes):
            (t.pointee.n_float_data, t.pointee.float_data) = (bytes.count / 4, typed(bytes, Float.self))
        case .int32Data(let bytes):
            (t.pointee.n_int32_data, t.pointee.int32_data) = (bytes.count / 4, typed(bytes, Int32.self))
        case .int64Data(let bytes):
            (t.pointee.n_int64_data, t.pointee.int64_data) = (bytes.count / 8, typed(bytes, Int64.self))
        case .doubleData(let bytes):
            (t.pointee.n_double_data, t.pointee.double_data) = (bytes.count / 8, typed(bytes, Double.self))
        case .uint64Data(let bytes):
            (t.pointee.n_uint64_data, t.pointee.uint64_data) = (bytes.count / 8, typed(bytes, UInt64.self))
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
        let s: UnsafeMutablePointer<Onnx__SparseTensorProto> = start(sparse.origin, onnx__sparse_tensor_proto__init)
        s.pointee.values = sparse.values.map { encode($0, name: name) }
        s.pointee.indices = sparse.indices.map { encode($0, name: $0.name) }
        s.pointee.n_dims = sparse.dims.count
        s.pointee.dims = copy(sparse.dims)
        return s
    }

    func valueInfo(name: String, _ info: ValueInfo) -> UnsafeMutablePointer<Onnx__ValueInfoProto> {
        let v: UnsafeMutablePointer<Onnx__ValueInfoProto> = start(info.origin, onnx__value_info_proto__init)
        v.pointee.name = cString(name)
        v.pointee.type = info.type.map { encode($0) }
        v.pointee.doc_string = cString(info.docString)
        (v.pointee.n_metadata_props, v.pointee.metadata_props) = pairs(info.metadataProps)
        return v
    }

    func encode(_ type: TypeInfo) -> UnsafeMutablePointer<Onnx__TypeProto> {
        // An unchanged type is the decoded message itself, denotations and unknown fields included.
        if let origin = type.origin {
            return UnsafeMutablePointer(mutating: origin.address.assumingMemoryBound(to: Onnx__TypeProto.self))
        }
        let t = allocate(Onnx__TypeProto.self)
        onnx__type_proto__init(t)
        t.pointee.denotation = cString(type.denotation)
        func shape(_ dims: [Dimension]?) -> UnsafeMutablePointer<Onnx__TensorShapeProto>? {
            guard let dims else { return nil }
            let s = allocate(Onnx__TensorShapeProto.self)
            onnx__tensor_shape_proto__init(s)
            (s.pointee.n_dim, s.pointee.dim) = list(dims) { dim in
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
            }
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

    func pairs(_ pairs: [StringPair]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<Onnx__StringStringEntryProto>?>?) {
        list(pairs) { pair in
            let p = allocate(Onnx__StringStringEntryProto.self)
            onnx__string_string_entry_proto__init(p)
            p.pointee.key = cString(pair.key)
            p.pointee.value = cString(pair.value)
            return p
        }
    }
}
