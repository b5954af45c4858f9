// A structure-aware mutator for the `model` target. Random bytes rarely make a protobuf that
// still loads, so half of the mutations load the input with the library, change its graph
// (operator types, attributes, wiring, initializers, input shapes, opset) through the public
// IR, and save it again; the other half, and every input that does not load, get libFuzzer's
// byte mutations. A model that does not load after a change is still a useful input for the
// loader.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FuzzSupport

@_cdecl("LLVMFuzzerCustomMutator")
public func customMutator(_ data: UnsafeMutablePointer<UInt8>, _ size: Int, _ maxSize: Int, _ seed: CUnsignedInt) -> Int {
    var random = SplitMix(seed: UInt64(seed))
    if random.below(2) == 0 { return libFuzzerMutate(data, size, maxSize) }
    if let mutated = mutateGraph(UnsafeRawBufferPointer(start: data, count: size), maxSize: maxSize, random: &random) {
        mutated.withUnsafeBytes { data.update(from: $0.bindMemory(to: UInt8.self).baseAddress!, count: mutated.count) }
        return mutated.count
    }
    return libFuzzerMutate(data, size, maxSize)
}

/// Operators the built-in rules look at, and a few others.
let operatorTypes = [
    "Conv", "ConvTranspose", "BatchNormalization", "Relu", "MatMul", "Gemm", "Add", "Mul", "Sub", "Div",
    "Pad", "Transpose", "Reshape", "Identity", "Dropout", "Squeeze", "Unsqueeze", "Cast", "Concat",
    "Slice", "Expand", "Shape", "Gather", "Constant", "Neg", "Abs", "Range", "Equal", "Where",
    "ConstantOfShape", "Flatten", "Sqrt", "Reciprocal", "ReduceSum", "Softmax", "Split", "Tile",
]

/// Attribute names those operators read.
let attributeNames = [
    "perm", "pads", "axes", "axis", "group", "epsilon", "momentum", "training_mode", "transA", "transB",
    "alpha", "beta", "kernel_shape", "strides", "dilations", "output_padding", "output_shape", "allowzero",
    "to", "keepdims", "mode", "value", "value_float", "value_ints", "seed", "ratio", "auto_pad", "split",
    "noop_with_empty_axes", "batch_dims", "start", "end",
]

let dataTypes: [DataType] = [.float, .double, .float16, .bfloat16, .int64, .int32, .int8, .uint8, .bool, .string,
                             .undefined, .complex64, .float8e4m3fn, .int4, DataType(rawValue: 99)]

let interestingIntegers: [Int64] = [0, 1, 2, 3, -1, -2, 4, 8, 16, 255, 1 << 31, -(1 << 31), Int64.max, Int64.min, 1 << 40]
let interestingFloats: [Float] = [0, -0.0, 1, -1, 0.5, 1e-5, 1e38, -1e38, .infinity, -.infinity, .nan, .leastNonzeroMagnitude]

func mutateGraph(_ bytes: UnsafeRawBufferPointer, maxSize: Int, random: inout SplitMix) -> [UInt8]? {
    let input = scratchFolder + "/mutate-in.onnx"
    let output = scratchFolder + "/mutate-out.onnx"
    defer { clearScratch(["mutate-in.onnx", "mutate-out.onnx", "mutate-out.onnx.data"]) }
    writeFile(input, bytes)
    guard let model = try? ModelFile.load(path: input) else { return nil }
    let graphs = model.allGraphs
    for _ in 0..<(1 + random.below(3)) {
        guard let graph = random.pick(graphs) else { return nil }
        mutate(graph, in: model, random: &random)
    }
    guard (try? ModelFile.save(model, to: output)) != nil else { return nil }
    let fd = open(output, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var result = [UInt8](repeating: 0, count: maxSize + 1)
    var count = 0
    while count <= maxSize {
        let n = result.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, $0.count - count) }
        if n <= 0 { break }
        count += n
    }
    guard count > 0, count <= maxSize else { return nil }
    return Array(result[0..<count])
}

/// The values a node may read: graph inputs, initializers, and the outputs of earlier nodes.
func valuesBefore(_ node: Node, in graph: Graph) -> [Value] {
    var values = graph.inputs + graph.initializers
    for other in graph.nodes {
        if other === node { break }
        values += other.outputs.compactMap { $0 }
    }
    return values
}

func randomAttributeValue(_ random: inout SplitMix) -> AttributeValue {
    switch random.below(6) {
    case 0: return .int(random.pick(interestingIntegers)!)
    case 1: return .ints((0..<random.below(9)).map { _ in random.pick(interestingIntegers)! })
    case 2: return .float(random.pick(interestingFloats)!)
    case 3: return .floats((0..<random.below(5)).map { _ in random.pick(interestingFloats)! })
    case 4: return .string(Array(random.pick(["constant", "reflect", "edge", "NOTSET", "SAME_UPPER", "VALID", ""])!.utf8))
    default:
        let count = random.below(5)
        return .tensor(Tensor(dataType: random.pick([DataType.float, .int64])!, dims: count == 0 ? [] : [Int64(count)],
                              values: (0..<count).map { _ in random.pick(interestingFloats)! }))
    }
}

func randomDimension(_ random: inout SplitMix) -> Dimension {
    switch random.below(6) {
    case 0: return .param(random.pick(["N", "batch", "seq"])!)
    case 1: return .unknown
    case 2: return .value(random.pick([0, -1, 1 << 40])!)
    default: return .value(Int64(1 + random.below(8)))
    }
}

func mutate(_ graph: Graph, in model: Model, random: inout SplitMix) {
    let nodes = Array(graph.nodes)
    switch random.below(12) {
    case 0: // another operator type
        guard let node = random.pick(nodes) else { return }
        node.opType = random.pick(operatorTypes)!
    case 1: // set an attribute, new or existing
        guard let node = random.pick(nodes) else { return }
        let name = random.below(2) == 0 ? (random.pick(node.attributes)?.name ?? random.pick(attributeNames)!) : random.pick(attributeNames)!
        let attribute = Attribute(name: name, value: randomAttributeValue(&random))
        if let index = node.attributes.firstIndex(where: { $0.name == name }) {
            node.attributes[index] = attribute
        } else {
            node.attributes.append(attribute)
        }
    case 2: // remove an attribute
        guard let node = random.pick(nodes), !node.attributes.isEmpty else { return }
        node.attributes.remove(at: random.below(node.attributes.count))
    case 3: // nudge an integer attribute
        guard let node = random.pick(nodes), let index = node.attributes.indices.randomElement(using: &random) else { return }
        switch node.attributes[index].value {
        case .int(let v)?: node.attributes[index].value = .int(v &+ Int64(random.below(5)) &- 2)
        case .ints(var v)? where !v.isEmpty:
            let i = random.below(v.count)
            v[i] = v[i] &+ Int64(random.below(5)) &- 2
            node.attributes[index].value = .ints(v)
        case .float(let v)?: node.attributes[index].value = .float(v * Float(random.below(5)) - 1)
        default: return
        }
    case 4: // read another value
        guard let node = random.pick(nodes), !node.inputs.isEmpty else { return }
        try? node.setInput(random.below(node.inputs.count), to: random.below(8) == 0 ? nil : random.pick(valuesBefore(node, in: graph)))
    case 5: // one input more or less
        guard let node = random.pick(nodes) else { return }
        if random.below(2) == 0, !node.inputs.isEmpty {
            try? node.removeLastInput()
        } else {
            try? node.appendInput(random.pick(valuesBefore(node, in: graph)))
        }
    case 6: // swap two inputs
        guard let node = random.pick(nodes), node.inputs.count >= 2 else { return }
        let i = random.below(node.inputs.count), j = random.below(node.inputs.count)
        let a = node.inputs[i], b = node.inputs[j]
        try? node.setInput(i, to: b)
        try? node.setInput(j, to: a)
    case 7: // initializer dimensions
        guard let value = random.pick(graph.initializers), var tensor = value.initializer else { return }
        switch random.below(3) {
        case 0: tensor.dims.reverse()
        case 1: tensor.dims = tensor.dims.isEmpty ? [1] : Array(tensor.dims.dropLast()) + [1, tensor.dims.last!]
        default: if !tensor.dims.isEmpty { tensor.dims.removeFirst() }
        }
        value.initializer = tensor
    case 8: // initializer values or element type
        guard let value = random.pick(graph.initializers), var tensor = value.initializer else { return }
        if random.below(4) == 0 {
            tensor.dataType = random.pick(dataTypes)!
        } else if tensor.dataType == .float, let count = tensor.elementCount, count < 4096 {
            let values = (0..<count).map { _ in random.below(3) == 0 ? random.pick(interestingFloats)! : Float(random.below(7)) - 3 }
            tensor = Tensor(name: tensor.name, dataType: .float, dims: tensor.dims, values: values)
        } else if tensor.dataType == .int64, let count = tensor.elementCount, count < 4096 {
            tensor = Tensor(name: tensor.name, dataType: .int64, dims: tensor.dims,
                            values: (0..<count).map { _ in random.pick(interestingIntegers)! })
        } else {
            return
        }
        value.initializer = tensor
    case 9: // a graph input's shape
        guard let value = random.pick(graph.inputs), let type = value.info?.type, case .tensor(let elementType, let shape)? = type.kind else { return }
        var dims = shape ?? []
        switch random.below(4) {
        case 0 where !dims.isEmpty: dims[random.below(dims.count)] = randomDimension(&random)
        case 1: dims.append(randomDimension(&random))
        case 2 where !dims.isEmpty: dims.removeLast()
        default: dims = dims.map { _ in randomDimension(&random) }
        }
        value.info?.type = TypeInfo(kind: .tensor(elementType: random.below(8) == 0 ? random.pick(dataTypes) : elementType,
                                                  shape: random.below(10) == 0 ? nil : dims))
    case 10: // opset version
        guard let index = model.opsetImports.indices.randomElement(using: &random) else { return }
        model.opsetImports[index].version = Int64(random.pick([1, 6, 7, 9, 10, 11, 12, 13, 14, 17, 18, 21, 23, 30])!)
    default: // a new node of a random type between an earlier value and a later reader
        guard let reader = random.pick(nodes), !reader.inputs.isEmpty,
              let source = random.pick(valuesBefore(reader, in: graph)) else { return }
        let name = "fuzz_\(random.next() % 1_000_000)"
        let node = Node(opType: random.pick(operatorTypes)!, inputs: [source] + (random.below(2) == 0 ? [random.pick(valuesBefore(reader, in: graph))] : []),
                        outputNames: [name], attributes: random.below(2) == 0 ? [] : [Attribute(name: random.pick(attributeNames)!, value: randomAttributeValue(&random))])
        guard (try? graph.insert(node, before: reader)) != nil else { return }
        try? reader.setInput(random.below(reader.inputs.count), to: node.outputs[0])
    }
}
