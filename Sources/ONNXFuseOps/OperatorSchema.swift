import ONNXFuseIR

/// The schema of one version of an operator: what `onnx.defs` says about its inputs, outputs,
/// attributes and type constraints, from the version it was introduced (`sinceVersion`) until
/// the next schema of the same operator.
///
/// Schemas of the domains "" (ai.onnx) and "ai.onnx.ml" are generated from the onnx package
/// (`scripts/gen-schemas`); look them up through `OperatorSchemas`.
public struct OperatorSchema: Sendable, Hashable {
    /// The operator type, e.g. `Conv`.
    public let name: String
    /// The domain: "" for the default domain (ai.onnx), or e.g. "ai.onnx.ml".
    public let domain: String
    /// The opset version of `domain` that introduced this schema.
    public let sinceVersion: Int64
    /// Whether the operator is deprecated from `sinceVersion` on (models should not use it).
    public let deprecated: Bool
    /// The formal inputs, in order.
    public let inputs: [FormalParameter]
    /// The formal outputs, in order.
    public let outputs: [FormalParameter]
    /// The attributes, sorted by name.
    public let attributes: [AttributeSchema]
    /// The type constraints that `inputs` and `outputs` name, in declared order.
    public let typeConstraints: [TypeConstraint]
    /// The fewest inputs a node may have.
    public let minInputs: Int
    /// The most inputs a node may have (`Int(Int32.max)` when unbounded).
    public let maxInputs: Int
    /// The fewest outputs a node may have.
    public let minOutputs: Int
    /// The most outputs a node may have (`Int(Int32.max)` when unbounded).
    public let maxOutputs: Int
    /// Whether the schema defines the operator by a function body (a graph of other operators).
    public let hasFunction: Bool
    /// Whether the schema defines the operator by a function body built for each node
    /// (from its attributes and input types).
    public let hasContextDependentFunction: Bool
    /// How each of `inputs` is type-checked (`violation`), found once rather than per node.
    let inputTypeChecks: [FormalTypeCheck]
    /// How each of `outputs` is type-checked.
    let outputTypeChecks: [FormalTypeCheck]

    /// A schema made of the given parts.
    public init(
        name: String, domain: String, sinceVersion: Int64, deprecated: Bool,
        inputs: [FormalParameter], outputs: [FormalParameter], attributes: [AttributeSchema],
        typeConstraints: [TypeConstraint], minInputs: Int, maxInputs: Int, minOutputs: Int,
        maxOutputs: Int, hasFunction: Bool, hasContextDependentFunction: Bool
    ) {
        self.name = name
        self.domain = domain
        self.sinceVersion = sinceVersion
        self.deprecated = deprecated
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
        self.typeConstraints = typeConstraints
        self.minInputs = minInputs
        self.maxInputs = maxInputs
        self.minOutputs = minOutputs
        self.maxOutputs = maxOutputs
        self.hasFunction = hasFunction
        self.hasContextDependentFunction = hasContextDependentFunction
        inputTypeChecks = inputs.map { FormalTypeCheck($0, typeConstraints) }
        outputTypeChecks = outputs.map { FormalTypeCheck($0, typeConstraints) }
    }

    /// The attribute called `name`, if the schema has one.
    public func attribute(_ name: String) -> AttributeSchema? {
        attributes.first { $0.name == name }
    }

    /// The default value of the attribute called `name`; nil when the schema has no such
    /// attribute or the attribute has no default.
    public func attributeDefault(_ name: String) -> AttributeValue? {
        attribute(name)?.defaultValue
    }

    /// The type constraint called `name` (e.g. "T"), if the schema has one.
    public func typeConstraint(_ name: String) -> TypeConstraint? {
        typeConstraints.first { $0.name == name }
    }
}

/// A formal input or output of an operator.
public struct FormalParameter: Sendable, Hashable {
    /// How many values a formal parameter stands for.
    public enum Option: String, Sendable, Hashable {
        /// Exactly one value.
        case single
        /// One value, which may be left out (an empty name in a node).
        case optional
        /// Any number of values, at least `minArity`; only the last parameter can be variadic.
        case variadic
    }

    /// The parameter's name in the specification, e.g. `X`.
    public let name: String
    /// A type-constraint name (e.g. "T", see `OperatorSchema.typeConstraints`) or a type string
    /// (e.g. "tensor(int64)").
    public let typeString: String
    /// Whether the parameter is single, optional or variadic.
    public let option: Option
    /// For a variadic parameter, whether all its values must have the same type.
    public let isHomogeneous: Bool
    /// For a variadic parameter, the fewest values it stands for.
    public let minArity: Int

    /// A parameter made of the given parts.
    public init(name: String, typeString: String, option: Option, isHomogeneous: Bool, minArity: Int) {
        self.name = name
        self.typeString = typeString
        self.option = option
        self.isHomogeneous = isHomogeneous
        self.minArity = minArity
    }
}

/// How a formal parameter's element type is judged (`OperatorSchema.violation`): by a type
/// constraint, as a fixed tensor type, or not at all.
enum FormalTypeCheck: Sendable, Hashable {
    /// By the type constraint at this position of `OperatorSchema.typeConstraints`.
    case constraint(Int)
    /// Exactly `tensor(type)`.
    case tensor(DataType)
    /// Another `tensor(...)` type string, compared as text (no `DataType` is spelled so).
    case typeString
    /// Not judged (a sequence, optional or other type string).
    case none

    /// How `formal` of a schema with `constraints` is judged: a constraint named by its type
    /// string first, then a `tensor(...)` type string.
    init(_ formal: FormalParameter, _ constraints: [TypeConstraint]) {
        if let position = constraints.firstIndex(where: { $0.name == formal.typeString }) {
            self = .constraint(position)
        } else if formal.typeString.hasPrefix("tensor(") {
            let inner = String(formal.typeString.dropFirst("tensor(".count).dropLast())
            if formal.typeString.hasSuffix(")"), let type = DataType(name: inner), "tensor(\(type))" == formal.typeString {
                self = .tensor(type)
            } else {
                self = .typeString
            }
        } else {
            self = .none
        }
    }
}

/// An attribute an operator accepts.
public struct AttributeSchema: Sendable, Hashable {
    /// The attribute's name.
    public let name: String
    /// The type its value must have.
    public let type: AttributeType
    /// Whether every node must set it.
    public let required: Bool
    /// The value the operator uses when a node leaves the attribute out, if the schema gives
    /// one. Only float, int, string and lists of those are kept (onnx 1.23.2 gives no other).
    public let declaredDefault: AttributeDefault?

    /// An attribute schema made of the given parts.
    public init(name: String, type: AttributeType, required: Bool, declaredDefault: AttributeDefault?) {
        self.name = name
        self.type = type
        self.required = required
        self.declaredDefault = declaredDefault
    }

    /// `declaredDefault` as an IR attribute value.
    public var defaultValue: AttributeValue? { declaredDefault?.attributeValue }
}

/// The default value of an attribute in a schema: a `Sendable` subset of `AttributeValue`.
public enum AttributeDefault: Sendable, Hashable {
    /// One float.
    case float(Float)
    /// One integer.
    case int(Int64)
    /// One string.
    case string(String)
    /// A list of floats.
    case floats([Float])
    /// A list of integers.
    case ints([Int64])
    /// A list of strings.
    case strings([String])

    /// The same value as an IR attribute value (strings as their UTF-8 bytes).
    public var attributeValue: AttributeValue {
        switch self {
        case .float(let value): return .float(value)
        case .int(let value): return .int(value)
        case .string(let value): return .string(Array(value.utf8))
        case .floats(let values): return .floats(values)
        case .ints(let values): return .ints(values)
        case .strings(let values): return .strings(values.map { Array($0.utf8) })
        }
    }
}

/// The types a type parameter (e.g. "T") of an operator may stand for.
public struct TypeConstraint: Sendable, Hashable {
    /// The type parameter's name, e.g. "T".
    public let name: String
    /// The allowed types as type strings, e.g. "tensor(float)" or "seq(tensor(int64))".
    public let allowedTypes: [String]
    /// Whether any allowed type is a tensor type (only those are judged by element type).
    public let allowsTensors: Bool
    /// The element types of the allowed tensor types, one bit per `DataType` number: checking a
    /// node's types builds no strings.
    let tensorElementTypes: UInt64

    /// A type constraint made of the given parts.
    public init(name: String, allowedTypes: [String]) {
        self.name = name
        self.allowedTypes = allowedTypes
        var bits: UInt64 = 0
        for allowed in allowedTypes where allowed.hasPrefix("tensor(") && allowed.hasSuffix(")") {
            let elementName = String(allowed.dropFirst("tensor(".count).dropLast())
            if let type = DataType(name: elementName), (0..<64).contains(type.rawValue) { bits |= 1 << UInt64(type.rawValue) }
        }
        allowsTensors = allowedTypes.contains { $0.hasPrefix("tensor(") }
        tensorElementTypes = bits
    }

    /// Whether `tensor(type)` is among the allowed types.
    public func allowsTensor(of type: DataType) -> Bool {
        (0..<64).contains(type.rawValue) && tensorElementTypes & (1 << UInt64(type.rawValue)) != 0
    }
}

/// The operator schemas of the domains "" (ai.onnx) and "ai.onnx.ml", every version, as the
/// onnx package defines them (`onnxVersion`). The table is parsed once, at first use, and is
/// safe to use from any thread.
public enum OperatorSchemas {
    /// The version of the onnx package the schemas come from.
    public static var onnxVersion: String { GeneratedOperatorSchemaTable.onnxVersion }

    /// Every schema, sorted by domain, name and `sinceVersion`.
    public static var all: [OperatorSchema] { registry.all() }

    /// The schema of `opType` in force at opset `version` of `domain`: the one with the largest
    /// `sinceVersion` not above `version`. Nil when `domain` has no such operator, or only from
    /// a later version. "" and "ai.onnx" are the same domain. A deprecated schema is returned
    /// too; check `deprecated`.
    public static func schema(_ opType: String, domain: String, version: Int64) -> OperatorSchema? {
        guard let history = registry.history(SchemaKey(domain: canonicalDomain(domain), name: opType)) else {
            return nil
        }
        return history.last { $0.sinceVersion <= version }
    }

    /// The `sinceVersion`s of every schema of `opType` in `domain`, ascending; empty for an
    /// unknown operator. "" and "ai.onnx" are the same domain.
    public static func versions(of opType: String, domain: String) -> [Int64] {
        registry.history(SchemaKey(domain: canonicalDomain(domain), name: opType))?.map(\.sinceVersion) ?? []
    }

    /// Whether the schemas cover `domain`: an operator of it that has no schema does not exist
    /// there.
    public static func covers(domain: String) -> Bool {
        registry.domains.contains(canonicalDomain(domain))
    }

    /// The domain as the schemas spell it: "" for "ai.onnx".
    private static func canonicalDomain(_ domain: String) -> String {
        domain == "ai.onnx" ? "" : domain
    }

    /// The table's index; Swift initializes a `static let` once, thread-safely, at first use.
    private static let registry = SchemaRegistry(table: GeneratedOperatorSchemaTable.text)
}

/// An operator's identity within the schemas.
private struct SchemaKey: Hashable, Sendable {
    let domain: String
    let name: String
}

/// The generated table, indexed by operator at first use (one pass over its bytes), each
/// operator's schemas parsed when first asked for: a run reads the schemas of the few dozen
/// operators its model and rules use, not all 654.
private final class SchemaRegistry: @unchecked Sendable {
    /// A schema's lines: the byte range of `table` from its `op` line to the next, and the
    /// table line it starts at.
    private struct Block {
        let bytes: Range<Int>
        let lineNumber: Int
    }

    private let table: String
    /// Each operator's blocks, in table order (ascending `sinceVersion`).
    private let blocks: [SchemaKey: [Block]]
    /// Every operator, in table order.
    private let order: [SchemaKey]
    /// The domains with at least one operator.
    let domains: Set<String>
    private let lock = Lock()
    private var parsed: [SchemaKey: [OperatorSchema]] = [:]

    init(table: String) {
        var table = table
        table.makeContiguousUTF8()
        self.table = table
        var blocks: [SchemaKey: [Block]] = [:]
        var order: [SchemaKey] = []
        var current: (key: SchemaKey, start: Int, line: Int)?
        table.utf8.withContiguousStorageIfAvailable { bytes in
            var lineStart = 0, lineNumber = 1
            func close(at end: Int) {
                guard let open = current else { return }
                blocks[open.key, default: []].append(Block(bytes: open.start..<end, lineNumber: open.line))
            }
            while lineStart < bytes.count {
                let lineEnd = bytes[lineStart...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
                // `op|NAME|DOMAIN|...`: a new block.
                if lineEnd - lineStart > 3, bytes[lineStart] == UInt8(ascii: "o"), bytes[lineStart + 1] == UInt8(ascii: "p"),
                   bytes[lineStart + 2] == UInt8(ascii: "|") {
                    close(at: lineStart)
                    let fields = bytes[(lineStart + 3)..<lineEnd].split(separator: UInt8(ascii: "|"), maxSplits: 2, omittingEmptySubsequences: false)
                    let key = SchemaKey(domain: String(decoding: fields.count > 1 ? fields[1] : [], as: UTF8.self),
                                        name: String(decoding: fields[0], as: UTF8.self))
                    current = (key, lineStart, lineNumber)
                    if order.last != key { order.append(key) }  // an operator's schemas are adjacent
                }
                lineStart = lineEnd + 1
                lineNumber += 1
            }
            close(at: bytes.count)
        }
        self.blocks = blocks
        self.order = order
        domains = Set(blocks.keys.map(\.domain))
    }

    /// The schemas of `key`, by ascending `sinceVersion`; nil for an unknown operator.
    func history(_ key: SchemaKey) -> [OperatorSchema]? {
        guard let keyBlocks = blocks[key] else { return nil }
        return lock.withLock {
            if let known = parsed[key] { return known }
            let schemas = keyBlocks.map(parse)
            parsed[key] = schemas
            return schemas
        }
    }

    /// Every schema, in table order (domain, name, sinceVersion).
    func all() -> [OperatorSchema] {
        order.flatMap { history($0)! }
    }

    private func parse(_ block: Block) -> OperatorSchema {
        let text = table.utf8.withContiguousStorageIfAvailable { String(decoding: $0[block.bytes], as: UTF8.self) }!
        var parser = SchemaTableParser()
        for (offset, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            parser.read(line, lineNumber: block.lineNumber + offset)
        }
        let schemas = parser.finish()
        precondition(schemas.count == 1, "table line \(block.lineNumber): a block holds one schema")
        return schemas[0]
    }
}

/// Reads the line-based table of `OperatorSchemaTable.swift` (its header describes the format).
/// The table is generated and checked in, so a malformed line is a bug: it stops the program
/// with the line's number.
private struct SchemaTableParser {
    /// The `op` line of the schema being read, and its parts read so far.
    private struct PendingSchema {
        let fields: [Substring]
        let lineNumber: Int
        var inputs: [FormalParameter] = []
        var outputs: [FormalParameter] = []
        var attributes: [AttributeSchema] = []
        var typeConstraints: [TypeConstraint] = []
    }

    private var schemas: [OperatorSchema] = []
    private var pending: PendingSchema?

    mutating func read(_ line: Substring, lineNumber: Int) {
        if line.isEmpty { return }
        let fields = line.split(separator: "|", omittingEmptySubsequences: false)
        switch fields[0] {
        case "op":
            flush()
            expect(fields.count == 9, "an op line has 9 fields", lineNumber)
            pending = PendingSchema(fields: fields, lineNumber: lineNumber)
        case "in", "out":
            expect(fields.count == 6, "an in or out line has 6 fields", lineNumber)
            guard let option = FormalParameter.Option(rawValue: String(fields[3])) else {
                malformed("unknown parameter option \(fields[3])", lineNumber)
            }
            let parameter = FormalParameter(
                name: String(fields[1]), typeString: String(fields[2]), option: option,
                isHomogeneous: flag(fields[4], lineNumber), minArity: integer(fields[5], lineNumber))
            if fields[0] == "in" {
                withPending(lineNumber) { $0.inputs.append(parameter) }
            } else {
                withPending(lineNumber) { $0.outputs.append(parameter) }
            }
        case "attr":
            let attribute = self.attribute(fields, lineNumber)
            withPending(lineNumber) { $0.attributes.append(attribute) }
        case "tc":
            expect(fields.count >= 2, "a tc line has a name", lineNumber)
            let constraint = TypeConstraint(name: String(fields[1]), allowedTypes: fields.dropFirst(2).map(String.init))
            withPending(lineNumber) { $0.typeConstraints.append(constraint) }
        default:
            malformed("unknown record \(fields[0])", lineNumber)
        }
    }

    /// Every schema read, once the whole table has been.
    mutating func finish() -> [OperatorSchema] {
        flush()
        return schemas
    }

    private mutating func withPending(_ lineNumber: Int, _ update: (inout PendingSchema) -> Void) {
        guard pending != nil else { malformed("a record before the first op line", lineNumber) }
        update(&pending!)
    }

    private mutating func flush() {
        guard let schema = pending else { return }
        pending = nil
        let fields = schema.fields, line = schema.lineNumber
        let flags = fields[4]
        schemas.append(OperatorSchema(
            name: String(fields[1]), domain: String(fields[2]), sinceVersion: Int64(integer(fields[3], line)),
            deprecated: flags.contains("d"), inputs: schema.inputs, outputs: schema.outputs,
            attributes: schema.attributes, typeConstraints: schema.typeConstraints,
            minInputs: integer(fields[5], line), maxInputs: integer(fields[6], line),
            minOutputs: integer(fields[7], line), maxOutputs: integer(fields[8], line),
            hasFunction: flags.contains("f"), hasContextDependentFunction: flags.contains("c")))
    }

    /// `attr|NAME|TYPE_NUMBER|REQUIRED`, optionally followed by `|=|VALUE...`.
    private func attribute(_ fields: [Substring], _ lineNumber: Int) -> AttributeSchema {
        expect(fields.count == 4 || (fields.count >= 5 && fields[4] == "="), "an attr line has 4 fields, or = and values", lineNumber)
        guard let typeNumber = Int32(fields[2]) else { malformed("bad attribute type \(fields[2])", lineNumber) }
        let type = AttributeType(rawValue: typeNumber)
        let values = fields.dropFirst(5)
        var declaredDefault: AttributeDefault?
        if fields.count > 4 {
            func single() -> Substring {
                expect(values.count == 1, "one default value", lineNumber)
                return values.first!
            }
            switch type {
            case .float: declaredDefault = .float(float(single(), lineNumber))
            case .int: declaredDefault = .int(Int64(integer(single(), lineNumber)))
            case .string: declaredDefault = .string(String(single()))
            case .floats: declaredDefault = .floats(values.map { float($0, lineNumber) })
            case .ints: declaredDefault = .ints(values.map { Int64(integer($0, lineNumber)) })
            case .strings: declaredDefault = .strings(values.map(String.init))
            default: malformed("a default of attribute type \(typeNumber)", lineNumber)
            }
        }
        return AttributeSchema(
            name: String(fields[1]), type: type, required: flag(fields[3], lineNumber),
            declaredDefault: declaredDefault)
    }

    private func integer(_ field: Substring, _ lineNumber: Int) -> Int {
        guard let value = Int(field) else { malformed("bad integer \(field)", lineNumber) }
        return value
    }

    private func float(_ field: Substring, _ lineNumber: Int) -> Float {
        guard let value = Float(field) else { malformed("bad float \(field)", lineNumber) }
        return value
    }

    private func flag(_ field: Substring, _ lineNumber: Int) -> Bool {
        switch field {
        case "1": return true
        case "0": return false
        default: malformed("bad flag \(field)", lineNumber)
        }
    }

    private func expect(_ condition: Bool, _ what: String, _ lineNumber: Int) {
        if !condition { malformed("expected \(what)", lineNumber) }
    }

    private func malformed(_ message: String, _ lineNumber: Int) -> Never {
        fatalError("OperatorSchemaTable.swift, table line \(lineNumber): \(message); run scripts/gen-schemas")
    }
}
