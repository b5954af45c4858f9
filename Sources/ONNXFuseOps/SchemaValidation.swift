import ONNXFuseIR

extension OperatorSchemas {
    /// What the schemas reject in `node` at opset `version` of its domain (`OperatorSchema.violation`),
    /// or that the opset has no such operator in a domain the schemas cover; nil when it conforms
    /// or its domain is not covered.
    public static func problem(of node: Node, version: Int64, elementType: (Value) -> DataType?) -> String? {
        let domain = node.isDefaultDomain ? "" : node.domain!
        return problem(of: node, schema: schema(node.opType, domain: domain, version: version), version: version, elementType: elementType)
    }

    /// `problem(of:version:elementType:)` with `schema`, the node's operator's at `version`
    /// (`schema(_:domain:version:)`), already looked up: a caller that checks many nodes of one
    /// operator looks it up once.
    package static func problem(of node: Node, schema: OperatorSchema?, version: Int64, elementType: (Value) -> DataType?) -> String? {
        guard let schema else {
            let domain = node.isDefaultDomain ? "" : node.domain!
            return covers(domain: domain) ? "opset \(version) of \(domain.isEmpty ? "ai.onnx" : domain) does not have \(node.opType)" : nil
        }
        return schema.violation(of: node, elementType: elementType)
    }
}

extension OperatorSchema {
    /// What this schema rejects in `node`, or nil when the node conforms: the number of inputs
    /// and outputs, a required one left out, an attribute the operator does not have, of the
    /// wrong type or missing though required, and element types (`elementType` gives a value's,
    /// nil when unknown) outside a type constraint or differing where one type parameter binds
    /// them. Values of unknown type are not judged.
    public func violation(of node: Node, elementType: (Value) -> DataType?) -> String? {
        if let problem = arityViolation(node.inputs, formals: inputs, least: minInputs, most: maxInputs, what: "input") {
            return problem
        }
        if let problem = arityViolation(node.outputs, formals: outputs, least: minOutputs, most: maxOutputs, what: "output") {
            return problem
        }
        for attribute in node.attributes {
            guard let declared = self.attribute(attribute.name) else {
                return "\(name) has no attribute '\(attribute.name)'"
            }
            if let type = attribute.value?.type, type != declared.type {
                return "attribute '\(attribute.name)' must be \(Self.describe(declared.type)), not \(Self.describe(type))"
            }
        }
        for declared in attributes where declared.required && !node.attributes.contains(where: { $0.name == declared.name }) {
            return "\(name) needs attribute '\(declared.name)'"
        }
        return typeViolation(node, elementType: elementType)
    }

    /// The formal parameter that position `index` of a node's inputs (or outputs) stands for.
    private static func formal(_ formals: [FormalParameter], at index: Int) -> FormalParameter? {
        formalPosition(formals, at: index).map { formals[$0] }
    }

    /// Where in `formals` that parameter is (the last, variadic one for every later position).
    private static func formalPosition(_ formals: [FormalParameter], at index: Int) -> Int? {
        if index < formals.count { return index }
        if let last = formals.last, last.option == .variadic { return formals.count - 1 }
        return nil
    }

    private func arityViolation(_ values: [Value?], formals: [FormalParameter], least: Int, most: Int, what: String) -> String? {
        // Trailing absent optional values do not count (a node may leave them out).
        var count = values.count
        while count > 0, values[count - 1] == nil { count -= 1 }
        if count < least {
            return "\(name) takes at least \(least) \(what)\(least == 1 ? "" : "s"), not \(count)"
        }
        if count > most {
            return "\(name) takes at most \(most) \(what)\(most == 1 ? "" : "s"), not \(count)"
        }
        for index in 0..<count where values[index] == nil {
            if let formal = Self.formal(formals, at: index), formal.option != .optional {
                return "\(what) \(index) (\(formal.name)) of \(name) is required"
            }
        }
        return nil
    }

    private func typeViolation(_ node: Node, elementType: (Value) -> DataType?) -> String? {
        // Per type parameter bound so far (by its position in `typeConstraints`): its type and
        // where it was bound. The messages are made only for a violation: this runs for every
        // node a rule creates.
        var bound: [(constraint: Int, type: DataType, isOutput: Bool, index: Int)] = []
        func place(_ isOutput: Bool, _ index: Int) -> String {
            "\(isOutput ? "output" : "input") \(index) (\(Self.formal(isOutput ? outputs : inputs, at: index)!.name))"
        }
        func check(_ values: [Value?], _ formals: [FormalParameter], _ checks: [FormalTypeCheck], isOutput: Bool) -> String? {
            for (index, value) in values.enumerated() {
                guard let value, let type = elementType(value), let position = Self.formalPosition(formals, at: index) else { continue }
                let formal = formals[position]
                // `checks[position]`: how `formal` is judged, found when the schema was made.
                switch checks[position] {
                case .constraint(let constraintPosition):
                    let constraint = typeConstraints[constraintPosition]
                    // Only tensor types are judged: a constraint of sequences or optionals is
                    // about values whose element type says nothing.
                    guard constraint.allowsTensors else { continue }
                    if !constraint.allowsTensor(of: type) {
                        return "\(place(isOutput, index)) is \(type), which \(constraint.name) of \(name) does not allow"
                    }
                    guard formal.option != .variadic || formal.isHomogeneous else { continue }
                    if let earlier = bound.first(where: { $0.constraint == constraintPosition }) {
                        if earlier.type != type {
                            return "\(place(isOutput, index)) is \(type) but \(place(earlier.isOutput, earlier.index)) is \(earlier.type), "
                                + "and \(name) needs one type \(constraint.name) for both"
                        }
                    } else {
                        bound.append((constraintPosition, type, isOutput, index))
                    }
                case .tensor(let required):
                    if type != required {
                        return "\(place(isOutput, index)) is \(type), but \(name) takes \(formal.typeString)"
                    }
                case .typeString:
                    if formal.typeString != "tensor(\(type))" {
                        return "\(place(isOutput, index)) is \(type), but \(name) takes \(formal.typeString)"
                    }
                case .none:
                    continue
                }
            }
            return nil
        }
        return check(node.inputs, inputs, inputTypeChecks, isOutput: false) ?? check(node.outputs, outputs, outputTypeChecks, isOutput: true)
    }

    /// An attribute type as the ONNX specification writes it (`FLOAT`, `INTS`, ...).
    static func describe(_ type: AttributeType) -> String {
        let names: [Int32: String] = [1: "FLOAT", 2: "INT", 3: "STRING", 4: "TENSOR", 5: "GRAPH", 6: "FLOATS", 7: "INTS",
                                      8: "STRINGS", 9: "TENSORS", 10: "GRAPHS", 11: "SPARSE_TENSOR", 12: "SPARSE_TENSORS",
                                      13: "TYPE_PROTO", 14: "TYPE_PROTOS"]
        return names[type.rawValue] ?? "type \(type.rawValue)"
    }
}
