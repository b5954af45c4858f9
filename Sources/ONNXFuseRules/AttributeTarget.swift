import ONNXFuseIR
import ONNXFuseOps

/// The attribute a replacement node's `name = value` entry sets: what its operator's schema
/// declares decides the type the value is written with.
struct AttributeTarget: Sendable {
    /// The operator.
    let opType: String
    /// Its domain ("" for the default one).
    let domain: String
    /// The attribute.
    let name: String

    /// The attribute's schemas across the operator's versions (empty for an operator without
    /// schemas); nil when the operator has schemas and none of them has the attribute.
    var declarations: [AttributeSchema]? {
        let versions = OperatorSchemas.versions(of: opType, domain: domain)
        guard !versions.isEmpty else { return [] }
        let declared = versions.compactMap { version in
            OperatorSchemas.schema(opType, domain: domain, version: version)?.attributes.first { $0.name == name }
        }
        return declared.isEmpty ? nil : declared
    }

    /// What is wrong with setting this attribute to `expression`, when it can be known before any
    /// model is read: an attribute the operator has in no version, or a literal of a type that
    /// no version accepts.
    func staticProblem(with expression: Expression) -> String? {
        guard let declarations else {
            return "\(opType) has no attribute '\(name)' in any version"
        }
        let literal: EvalValue?
        switch expression {
        case .number(let value, let integer, _): literal = integer.map { .integer($0) } ?? .real(value)
        case .string(let text, _): literal = .string(text)
        case .boolean(let value, _): literal = .boolean(value)
        default: literal = nil
        }
        guard let literal, !declarations.isEmpty else { return nil }
        for declaration in declarations where (try? value(of: literal, as: declaration.type, expression: expression)) != nil {
            return nil
        }
        return "\(opType)'s attribute '\(name)' is \(Self.describe(declarations[0].type)), not \(literal.kind)"
    }

    /// `value` as an attribute of `type`: a number or a one-element tensor for FLOAT and INT (an
    /// INT must be integral), a list, a number or a tensor of rank 0 or 1 for FLOATS and INTS, a
    /// string for STRING, a tensor (or a number) for TENSOR; anything else is an error naming the
    /// attribute and what the value is.
    func value(of value: EvalValue, as type: AttributeType, expression: Expression) throws(EvaluationError) -> AttributeValue {
        func mismatch(_ detail: String? = nil) -> EvaluationError {
            EvaluationError("\(opType)'s attribute '\(name)' is \(Self.describe(type)); `\(expression)` is \(detail ?? value.kind)")
        }
        /// The numbers a value holds, when it is a number, a list of numbers or a tensor of rank 0 or 1.
        func numbers() throws(EvaluationError) -> [Double] {
            switch value {
            case .integer(let i): return [Double(i)]
            case .real(let r): return [r]
            case .boolean(let b): return [b ? 1 : 0]
            case .tensor(let array, _):
                guard array.shape.count <= 1 else { throw mismatch("a tensor of shape \(array.shape)") }
                return array.values
            case .list(let items):
                var result: [Double] = []
                for item in items {
                    guard let number = item.numberValue else { throw mismatch("a list holding \(item.kind)") }
                    result.append(number)
                }
                return result
            default: throw mismatch()
            }
        }
        func integral(_ numbers: [Double]) throws(EvaluationError) -> [Int64] {
            var result: [Int64] = []
            for number in numbers {
                guard number.rounded() == number, abs(number) < 9.2e18 else { throw mismatch("\(number), not an integer") }
                result.append(Int64(number))
            }
            return result
        }
        switch type {
        case .float, .int:
            if case .list = value { throw mismatch() }
            if case .dataType(let code) = value, type == .int { return .int(Int64(code.rawValue)) }
            let held = try numbers()
            guard held.count == 1 else { throw mismatch("\(held.count) numbers") }
            return type == .float ? .float(Float(held[0])) : .int(try integral(held)[0])
        case .floats: return .floats(try numbers().map { Float($0) })
        case .ints: return .ints(try integral(try numbers()))
        case .string:
            guard case .string(let text) = value else { throw mismatch() }
            return .string(Array(text.utf8))
        case .tensor:
            switch value {
            case .tensor(let array, let elementType): return .tensor(try array.tensor(as: elementType ?? .float))
            case .integer(let i): return .tensor(try NDArray(shape: [], values: [Double(i)]).tensor(as: .int64))
            case .real(let r): return .tensor(try NDArray(shape: [], values: [r]).tensor(as: .float))
            default: throw mismatch()
            }
        default:
            throw EvaluationError("\(opType)'s attribute '\(name)' is \(Self.describe(type)), which a rule cannot set")
        }
    }

    /// `a FLOAT`, `a list of INTS`.
    static func describe(_ type: AttributeType) -> String {
        switch type {
        case .float: return "a FLOAT"
        case .int: return "an INT"
        case .string: return "a STRING"
        case .tensor: return "a TENSOR"
        case .floats: return "a FLOATS list"
        case .ints: return "an INTS list"
        case .strings: return "a STRINGS list"
        case .graph: return "a GRAPH"
        default: return "of attribute type \(type.rawValue)"
        }
    }
}
