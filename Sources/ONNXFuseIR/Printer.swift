/// Prints models and graphs as text close to ONNX's textual syntax, deterministically, so
/// that tests can compare graphs as text and users can read them:
///
///     <ir_version: 8, opset_import: ["" : 17]>
///     main (float[1,3,8,8] x) => (float[1,4,8,8] y)
///        <float[4,3,3,3] w, float[4] b = {0.1, 0.2, 0.3, 0.4}>
///     {
///        c = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (x, w, b)
///        y = Relu (c)
///     }
public struct Printer {
    /// Tensors with at most this many elements print their values.
    public var maximumPrintedElements: Int

    /// A printer.
    public init(maximumPrintedElements: Int = 16) {
        self.maximumPrintedElements = maximumPrintedElements
    }

    /// The whole model: header then main graph.
    public func print(_ model: Model) -> String {
        var header: [String] = []
        if let v = model.irVersion { header.append("ir_version: \(v)") }
        let opsets = model.opsetImports.map { "\(quoted($0.domain ?? "")) : \($0.version.map(String.init) ?? "?")" }
        header.append("opset_import: [" + opsets.joined(separator: ", ") + "]")
        if let p = model.producerName { header.append("producer_name: \(quoted(p))") }
        if let p = model.producerVersion { header.append("producer_version: \(quoted(p))") }
        if let d = model.domain { header.append("domain: \(quoted(d))") }
        if let v = model.modelVersion { header.append("model_version: \(v)") }
        return "<\n   " + header.joined(separator: ",\n   ") + "\n>\n" + print(model.graph)
    }

    /// One graph and its subgraphs.
    public func print(_ graph: Graph) -> String {
        var out = ""
        write(graph, indent: "", into: &out)
        return out
    }

    /// One node on one line, as the graph prints it: `c = Conv <kernel_shape = [3, 3]> (x, w, b)`
    /// (a subgraph attribute over several).
    public func print(_ node: Node) -> String {
        var out = ""
        write(node, indent: "", into: &out)
        out.removeLast()  // the newline
        return out
    }

    /// A value as the graph's header declares it: `float[1,3,8,8] x` (`?` when its type is not known).
    public func print(_ value: Value) -> String {
        declaration(value.type, value.name)
    }

    private func write(_ graph: Graph, indent: String, into out: inout String) {
        let inputs = graph.inputs.map { declaration($0.info?.type, $0.name) }
        let outputs = graph.outputs.map { declaration($0.info.type, $0.value.name) }
        out += name(graph.name ?? "graph") + " (" + inputs.joined(separator: ", ") + ") => ("
            + outputs.joined(separator: ", ") + ")\n"
        let constants = graph.initializers.map { tensorDeclaration($0.initializer!, name: $0.name) }
            + graph.sparseInitializers.map { "sparse " + name($0.name) }
        if !constants.isEmpty {
            out += indent + "   <" + constants.joined(separator: ", ") + ">\n"
        }
        out += indent + "{\n"
        for node in graph.nodes {
            write(node, indent: indent + "   ", into: &out)
        }
        out += indent + "}"
        if indent.isEmpty { out += "\n" }
    }

    private func write(_ node: Node, indent: String, into out: inout String) {
        out += indent
        let outputs = node.outputs.map { $0.map { name($0.name) } ?? "" }
        if !outputs.isEmpty { out += outputs.joined(separator: ", ") + " = " }
        if let domain = node.domain, !node.isDefaultDomain { out += domain + "." }
        out += node.opType
        if !node.attributes.isEmpty {
            out += " <"
            for (index, attribute) in node.attributes.enumerated() {
                if index > 0 { out += ", " }
                out += attribute.name + " = "
                write(attribute, indent: indent, into: &out)
            }
            out += ">"
        }
        out += " (" + node.inputs.map { $0.map { name($0.name) } ?? "" }.joined(separator: ", ") + ")\n"
    }

    private func write(_ attribute: Attribute, indent: String, into out: inout String) {
        if let ref = attribute.refAttrName {
            out += "@" + ref
            return
        }
        guard let value = attribute.value else {
            out += "?"
            return
        }
        switch value {
        case .float(let f): out += number(f)
        case .int(let i): out += String(i)
        case .string(let s): out += quoted(String(decoding: s, as: UTF8.self))
        case .tensor(let t): out += tensorDeclaration(t, name: nil)
        case .graph(let g): write(g, indent: indent + "   ", into: &out)
        case .sparseTensor(let t): out += "sparse_tensor[" + t.dims.map(String.init).joined(separator: ",") + "]"
        case .typeProto(let t): out += t.description
        case .floats(let fs): out += "[" + fs.map(number).joined(separator: ", ") + "]"
        case .ints(let i): out += "[" + i.map(String.init).joined(separator: ", ") + "]"
        case .strings(let s): out += "[" + s.map { quoted(String(decoding: $0, as: UTF8.self)) }.joined(separator: ", ") + "]"
        case .tensors(let ts): out += "[" + ts.map { tensorDeclaration($0, name: nil) }.joined(separator: ", ") + "]"
        case .graphs(let gs):
            out += "["
            for (index, g) in gs.enumerated() {
                if index > 0 { out += ", " }
                write(g, indent: indent + "   ", into: &out)
            }
            out += "]"
        case .sparseTensors(let s): out += "[\(s.count) sparse tensors]"
        case .typeProtos(let ts): out += "[" + ts.map(\.description).joined(separator: ", ") + "]"
        }
    }

    private func declaration(_ type: TypeInfo?, _ valueName: String) -> String {
        (type?.description ?? "?") + " " + name(valueName)
    }

    /// `float[2,3] w`, with ` = {…}` for small tensors.
    private func tensorDeclaration(_ tensor: Tensor, name tensorName: String?) -> String {
        var text = tensor.dataType.description + "[" + tensor.dims.map(String.init).joined(separator: ",") + "]"
        if let tensorName { text += " " + name(tensorName) }
        if tensor.isExternal { text += " (external)" }
        if let count = tensor.elementCount, count <= maximumPrintedElements {
            if let exact = exactWideIntegers(tensor) {
                text += (tensorName == nil ? " " : " = ") + "{" + exact.joined(separator: ", ") + "}"
            } else if let values = tensor.doubleValues() {
                let printed = values.map { tensor.dataType == .double ? number($0) : isIntegral(tensor.dataType) ? String(Int64($0)) : number(Float($0)) }
                text += (tensorName == nil ? " " : " = ") + "{" + printed.joined(separator: ", ") + "}"
            } else if case .stringData(let strings) = tensor.storage {
                text += (tensorName == nil ? " " : " = ") + "{" + strings.map { quoted(String(decoding: $0, as: UTF8.self)) }.joined(separator: ", ") + "}"
            }
        }
        return text
    }

    /// int64 and uint64 elements printed exactly (float64 cannot hold all of them, such as a
    /// Slice end of 2^63 - 1); nil for other types and storages.
    private func exactWideIntegers(_ tensor: Tensor) -> [String]? {
        guard tensor.payloadProblem == nil, let n = tensor.elementCount else { return nil }
        switch (tensor.dataType, tensor.storage) {
        case (.int64, .raw(let b)): return (0..<n).map { String(Int64(littleEndian: b.load(elementAt: $0, as: Int64.self))) }
        case (.int64, .int64Data(let b)): return (0..<n).map { String(b.load(elementAt: $0, as: Int64.self)) }
        case (.uint64, .raw(let b)): return (0..<n).map { String(UInt64(littleEndian: b.load(elementAt: $0, as: UInt64.self))) }
        case (.uint64, .uint64Data(let b)): return (0..<n).map { String(b.load(elementAt: $0, as: UInt64.self)) }
        default: return nil
        }
    }

    private func isIntegral(_ type: DataType) -> Bool {
        [.int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64, .bool].contains(type)
    }

    private func number<F: BinaryFloatingPoint & LosslessStringConvertible>(_ value: F) -> String {
        if value.isFinite, value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return value.description
    }

    /// A value name as is when it is a plain identifier-like token, else quoted.
    private func name(_ text: String) -> String {
        let plain = !text.isEmpty && text.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x5F || byte == 0x2E || byte == 0x2F || byte == 0x3A || byte == 0x2D
        }
        return plain ? text : quoted(text)
    }

    private func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 { out += "\\u{\(String(scalar.value, radix: 16))}" } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }
}

extension Model: CustomStringConvertible {
    /// The model as `Printer` prints it.
    public var description: String { Printer().print(self) }
}

extension Graph: CustomStringConvertible {
    /// The graph as `Printer` prints it.
    public var description: String { Printer().print(self) }
}

extension Node: CustomStringConvertible {
    /// The node on one line, as `Printer` prints it in its graph.
    public var description: String { Printer().print(self) }
}

extension Value: CustomStringConvertible {
    /// Its type and name, `float[1,3,8,8] x`.
    public var description: String { Printer().print(self) }
}
