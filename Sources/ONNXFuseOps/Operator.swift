import ONNXFuseIR

/// What a kernel or an inference function sees of a node: its operator, the operator set
/// version in force, and its attributes, with typed accessors that fall back to defaults.
public struct OperatorContext {
    /// The operator.
    public let opType: String
    /// The domain ("" for the default ONNX domain).
    public let domain: String
    /// The version of the node's operator set that the model imports.
    public let opsetVersion: Int64
    /// The node's attributes.
    public let attributes: [Attribute]
    /// How many outputs the node has (absent ones included): Split into equal parts needs it.
    public let outputCount: Int
    /// The most multiply-adds (or window taps) a kernel that counts them may perform, below its
    /// own limit: the caller's budget (a fold's, an inference's). Kernels check it from their
    /// exact loop sizes before they compute.
    public var workLimit = Int.max

    /// The context of `node` in a model importing `opsetVersion` of its domain.
    public init(node: Node, opsetVersion: Int64) {
        self.init(node: node, domain: node.isDefaultDomain ? "" : node.domain!, opsetVersion: opsetVersion)
    }

    /// The context of `node`, whose domain the caller has normalized already.
    init(node: Node, domain: String, opsetVersion: Int64) {
        self.init(opType: node.opType, domain: domain, opsetVersion: opsetVersion, attributes: node.attributes,
                  outputCount: node.outputs.count)
    }

    /// A context built by hand.
    public init(opType: String, domain: String = "", opsetVersion: Int64, attributes: [Attribute] = [], outputCount: Int = 1) {
        self.opType = opType
        self.domain = domain
        self.opsetVersion = opsetVersion
        self.attributes = attributes
        self.outputCount = outputCount
    }

    /// The attribute named `name`.
    public func attribute(_ name: String) -> Attribute? { attributes.first { $0.name == name } }

    /// The value of the attribute named `name`, nil when absent or without one: what the typed
    /// accessors read, without copying the rest of the attribute out.
    private func value(_ name: String) -> AttributeValue? {
        for index in attributes.indices where attributes[index].name == name { return attributes[index].value }
        return nil
    }

    /// An `int` attribute; nil when absent, an error when of another type.
    public func int(_ name: String) throws(OperatorError) -> Int64? {
        guard let value = value(name) else { return nil }
        guard case .int(let i) = value else { throw OperatorError("attribute \(name) is not an integer") }
        return i
    }

    /// An `int` attribute, or `defaultValue` when absent.
    public func int(_ name: String, default defaultValue: Int64) throws(OperatorError) -> Int64 {
        try int(name) ?? defaultValue
    }

    /// An `ints` attribute; nil when absent.
    public func ints(_ name: String) throws(OperatorError) -> [Int64]? {
        guard let value = value(name) else { return nil }
        switch value {
        case .ints(let i): return i
        case .int(let i): return [i]  // some exporters write a one-element list as INT
        default: throw OperatorError("attribute \(name) is not a list of integers")
        }
    }

    /// A `float` attribute (an `int` is accepted), or `defaultValue` when absent.
    public func float(_ name: String, default defaultValue: Double) throws(OperatorError) -> Double {
        guard let value = value(name) else { return defaultValue }
        switch value {
        case .float(let f): return Double(f)
        case .int(let i): return Double(i)
        default: throw OperatorError("attribute \(name) is not a float")
        }
    }

    /// A `floats` attribute; nil when absent.
    public func floats(_ name: String) throws(OperatorError) -> [Double]? {
        guard let value = value(name) else { return nil }
        guard case .floats(let f) = value else { throw OperatorError("attribute \(name) is not a list of floats") }
        return f.map { Double($0) }
    }

    /// A `string` attribute; nil when absent.
    public func string(_ name: String) throws(OperatorError) -> String? {
        guard let value = value(name) else { return nil }
        guard case .string(let s) = value else { throw OperatorError("attribute \(name) is not a string") }
        return String(decoding: s, as: UTF8.self)
    }

    /// A `tensor` attribute; nil when absent.
    public func tensor(_ name: String) throws(OperatorError) -> Tensor? {
        guard let value = value(name) else { return nil }
        guard case .tensor(let t) = value else { throw OperatorError("attribute \(name) is not a tensor") }
        return t
    }
}

extension OperatorContext {
    /// For a Reshape: whether a 0 in the target is a literal zero (opset 14's `allowzero`)
    /// rather than a copy of the input's dimension.
    public func reshapeAllowsZero() throws(OperatorError) -> Bool {
        guard opsetVersion >= 14 else { return false }
        return try int("allowzero", default: 0) != 0
    }
}

/// Input `index` of a kernel, which the operator requires: an error naming the operator when
/// it is absent. Every operator family uses it.
func requiredInput(_ inputs: [TensorValue?], _ index: Int, _ context: OperatorContext) throws(OperatorError) -> TensorValue {
    guard index < inputs.count, let value = inputs[index] else {
        throw OperatorError("\(context.opType): input \(index) is required")
    }
    return value
}

/// Input `index` of a kernel, or nil when absent or past the end.
func optionalInput(_ inputs: [TensorValue?], _ index: Int) -> TensorValue? {
    index < inputs.count ? inputs[index] : nil
}

/// A reference kernel: the outputs of an operator for constant inputs (nil: an absent
/// optional input). It returns one tensor per output the node can have, in order (callers
/// ignore the outputs the node leaves out).
public typealias Kernel = @Sendable (OperatorContext, [TensorValue?]) throws(OperatorError) -> [TensorValue]

/// An inference function: sets `context.outputs` from `context.inputs` and the attributes.
/// It leaves unknown what it cannot tell; it throws only when the node is invalid.
public typealias InferenceFunction = @Sendable (inout InferenceContext) throws(OperatorError) -> Void

/// What inference knows of one value.
public struct ValueFacts: Equatable, Sendable {
    /// The element type, when known.
    public var elementType: DataType?
    /// The shape; nil when the rank is unknown.
    public var shape: [Dimension]?
    /// For integer tensors of rank 0 or 1 holding dimensions: the elements (see `InferredFacts`).
    public var shapeValue: [Dimension]?
    /// The value, when it is a constant small enough to be read (see `InferenceContext`).
    public var constant: TensorValue? {
        get {
            switch constantSource {
            case .value(let value): return value
            case .tensor(let box): return try? TensorValue(tensor: box.value)
            case nil: return nil
            }
        }
        set { constantSource = newValue.map(ConstantSource.value) }
    }

    /// Where `constant` comes from: a value, or a tensor whose elements are read when asked
    /// for (most nodes with a constant float input, a Conv's weight, never look at it). The
    /// tensor stays in its box (an initializer's own): facts are copied often, a box is one
    /// reference where a tensor is many.
    private enum ConstantSource: Sendable {
        case value(TensorValue)
        case tensor(Box<Tensor>)
    }
    private var constantSource: ConstantSource?

    /// Whether `constant` gives a value, known without reading a lazily read constant.
    var holdsConstant: Bool { constantSource != nil }

    /// Facts.
    public init(elementType: DataType? = nil, shape: [Dimension]? = nil, shapeValue: [Dimension]? = nil,
                constant: TensorValue? = nil) {
        // The stored properties directly, not through `constant`'s setter: facts are made for
        // every input and output of every node inferred.
        self.elementType = elementType
        self.shape = shape
        self.shapeValue = shapeValue
        self.constantSource = constant.map(ConstantSource.value)
    }

    /// The facts of a floating-point constant tensor: its type and static shape, its value
    /// read from `tensor` only when `constant` is asked for. (An integer constant's facts take
    /// its elements at once: they may be a shape value.)
    public init(floatingPointConstant tensor: Tensor) {
        self.init(floatingPointConstant: Box(tensor))
    }

    /// `init(floatingPointConstant:)` with the tensor in a box that is shared, not copied.
    init(floatingPointConstant box: Box<Tensor>) {
        precondition(box.value.dataType.isFloatingPoint, "only floating-point constants are read lazily")
        elementType = box.value.dataType
        shape = box.value.dims.map { .value($0) }
        constantSource = .tensor(box)
    }

    /// Facts are equal when what they tell is: a lazily read constant compares by its value.
    public static func == (lhs: ValueFacts, rhs: ValueFacts) -> Bool {
        lhs.elementType == rhs.elementType && lhs.shape == rhs.shape && lhs.shapeValue == rhs.shapeValue
            && lhs.constant == rhs.constant
    }

    /// The facts of a known tensor: its type, static shape, value, and for small integer
    /// tensors of rank 0 or 1, its elements as a shape value.
    public init(constant: TensorValue) {
        self.init(elementType: constant.dataType, shape: constant.shape.map { .value(Int64($0)) }, constant: constant)
        if constant.rank <= 1, constant.kind == .integer, case .integers(let v) = constant.elements {
            shapeValue = v.map { .value($0) }
        }
    }

    /// The rank, when known.
    public var rank: Int? { shape?.count }

    /// The shape as numbers, when every dimension is static.
    public var staticShape: [Int]? {
        guard let shape else { return nil }
        var result: [Int] = []
        for dim in shape {
            guard case .value(let v) = dim else { return nil }
            result.append(Int(v))
        }
        return result
    }

    /// The shape value as numbers, when every element is static.
    public var staticShapeValue: [Int64]? {
        guard let shapeValue else { return nil }
        var result: [Int64] = []
        for dim in shapeValue {
            guard case .value(let v) = dim else { return nil }
            result.append(v)
        }
        return result
    }
}

/// The inputs of one node's inference and the outputs it fills in.
public struct InferenceContext {
    /// The node.
    public let node: OperatorContext
    /// What is known of each input (nil: an absent optional input).
    public let inputs: [ValueFacts?]
    /// What is known of each output; starts unknown, one entry per output of the node.
    public var outputs: [ValueFacts]
    let symbols: SymbolAllocator

    /// A context for a node with these inputs and `outputCount` outputs; fresh symbols come
    /// from `symbols`.
    public init(node: OperatorContext, inputs: [ValueFacts?], outputCount: Int, symbols: SymbolAllocator) {
        self.node = node
        self.inputs = inputs
        self.outputs = repeated(ValueFacts(), count: outputCount)
        self.symbols = symbols
    }

    /// Input `index`, or nil when absent or past the end.
    public func input(_ index: Int) -> ValueFacts? { index < inputs.count ? inputs[index] : nil }

    /// A dimension known to equal no other yet.
    public func freshDimension() -> Dimension { .param(symbols.fresh()) }

    /// An element of a shape value known to equal no other yet, which may be negative (a
    /// difference of dimensions, say): see `SymbolAllocator.isDimension(_:)`.
    public func freshValue() -> Dimension { .param(symbols.freshValue()) }

    /// Sets output `index` (ignored past the node's outputs).
    public mutating func setOutput(_ index: Int, _ facts: ValueFacts) {
        if index < outputs.count { outputs[index] = facts }
    }

    /// Sets output `index`'s type and shape.
    public mutating func setOutput(_ index: Int, type: DataType?, shape: [Dimension]?, shapeValue: [Dimension]? = nil) {
        setOutput(index, ValueFacts(elementType: type, shape: shape, shapeValue: shapeValue))
    }
}

/// Hands out symbol names (`unk__0`, `unk__1`, ...) that collide with no `dim_param` of the
/// model. A class: one allocator serves a whole model, across nodes and passes.
///
/// A symbol stands for a dimension (a size, never negative) unless it was made by
/// `freshValue()` (`val__N`): an integer inference could not tell, of either sign, such as
/// `N - 1`. Only dimension symbols may become dimensions of a shape without a check, and only
/// they are known to differ from a negative number.
public final class SymbolAllocator: @unchecked Sendable {
    private var next = 0
    private var taken: Set<String>

    /// An allocator avoiding the names in `taken`.
    public init(avoiding taken: Set<String> = []) { self.taken = taken }

    /// A new dimension symbol.
    public func fresh() -> String { make("unk__") }

    /// A new symbol for an integer of unknown sign.
    public func freshValue() -> String { make("val__") }

    private func make(_ prefix: String) -> String {
        while true {
            let name = "\(prefix)\(next)"
            next += 1
            if !taken.contains(name) { return name }
        }
    }

    /// Whether `symbol` was made by this kind of allocator (rather than named by the model).
    public static func isFresh(_ symbol: String) -> Bool { symbol.hasPrefix("unk__") || symbol.hasPrefix("val__") }

    /// Whether `symbol` stands for a dimension, which is never negative.
    public static func isDimension(_ symbol: String) -> Bool { !symbol.hasPrefix("val__") }
}

/// Operator knowledge by operator: reference kernels and inference functions. `standard`
/// holds everything this build knows; a host may extend a copy.
public struct OperatorRegistry: Sendable {
    private struct Entry: Sendable {
        var kernel: Kernel?
        var inference: InferenceFunction?
    }

    /// The default domain's operators, by operator; a lookup hashes one string (inference
    /// looks up every node of a model, nearly all of the default domain).
    private var defaultDomain: [String: Entry] = [:]
    /// Other domains' operators, by domain then operator.
    private var otherDomains: [String: [String: Entry]] = [:]
    /// Every operator's entry by `OperatorID.index` (nil: none): inference and folding look up
    /// each node of a model, and indexing costs less than hashing its op type.
    private var byOperator: [Entry?] = []

    /// An empty registry.
    public init() {}

    private static func isDefault(_ domain: String) -> Bool { domain.isEmpty || domain == "ai.onnx" }

    private mutating func update(_ opTypes: [String], _ domain: String, _ change: (inout Entry) -> Void) {
        for op in opTypes {
            let entry: Entry
            if Self.isDefault(domain) {
                change(&defaultDomain[op, default: Entry()])
                entry = defaultDomain[op]!
            } else {
                change(&otherDomains[domain, default: [:]][op, default: Entry()])
                entry = otherDomains[domain]![op]!
            }
            let index = OperatorID(opType: op, domain: domain).index
            if index >= byOperator.count { byOperator += repeatElement(nil, count: index + 1 - byOperator.count) }
            byOperator[index] = entry
        }
    }

    /// Registers `kernel` for each of `opTypes` in `domain`.
    public mutating func register(_ opTypes: [String], domain: String = "", kernel: @escaping Kernel) {
        update(opTypes, domain) { $0.kernel = kernel }
    }

    /// Registers `inference` for each of `opTypes` in `domain`.
    public mutating func register(_ opTypes: [String], domain: String = "", inference: @escaping InferenceFunction) {
        update(opTypes, domain) { $0.inference = inference }
    }

    /// The kernel of an operator, if any.
    public func kernel(_ opType: String, domain: String = "") -> Kernel? {
        Self.isDefault(domain) ? defaultDomain[opType]?.kernel : otherDomains[domain]?[opType]?.kernel
    }

    /// The inference function of an operator, if any.
    public func inference(_ opType: String, domain: String = "") -> InferenceFunction? {
        Self.isDefault(domain) ? defaultDomain[opType]?.inference : otherDomains[domain]?[opType]?.inference
    }

    /// The kernel of an operator given by number, if any.
    package func kernel(_ id: OperatorID) -> Kernel? { entry(id)?.kernel }

    /// The inference function of an operator given by number, if any.
    package func inference(_ id: OperatorID) -> InferenceFunction? { entry(id)?.inference }

    private func entry(_ id: OperatorID) -> Entry? { id.index < byOperator.count ? byOperator[id.index] : nil }

    /// Operators with a kernel, as `domain.Op` (`Op` for the default domain), sorted.
    public var operatorsWithKernels: [String] { names { $0.kernel != nil } }

    /// Operators with an inference function, sorted.
    public var operatorsWithInference: [String] { names { $0.inference != nil } }

    private func names(_ include: (Entry) -> Bool) -> [String] {
        let own = defaultDomain.filter { include($0.value) }.keys
        let others = otherDomains.flatMap { domain, operators in operators.filter { include($0.value) }.keys.map { "\(domain).\($0)" } }
        return (Array(own) + others).sorted()
    }

    /// Operators whose outputs are drawn at random: they have no kernel, and two of them with
    /// the same inputs are not the same value.
    public static let nondeterministicOperators: Set<String> = [
        "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli",
    ]

    /// The operators whose first two inputs can be swapped without changing what they compute
    /// (what a rule's `commute` may name).
    public static let commutativeOperators: Set<String> = [
        "Add", "Mul", "And", "Or", "Xor", "Equal", "Max", "Min", "Sum", "Mean", "BitwiseAnd", "BitwiseOr", "BitwiseXor",
    ]

    /// The operators affine in what they read besides constants: scaling their inputs scales
    /// what they compute, and no threshold, rounding or type is crossed.
    public static let affineOperators: Set<String> = ["Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization", "Add", "Sub", "Mul"]

    /// The operators whose result is rounded at the scale of their inputs (the affine ones, and
    /// division, reductions by sum or mean, and layout): a cancellation inside them rounds at
    /// their operands' magnitude.
    public static let scalePreservingOperators: Set<String> = affineOperators.union([
        "Div", "Neg", "Sum", "Identity", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "ReduceSum", "ReduceMean",
    ])

    /// Whether `node` (of the default domain) computes the same outputs each time it runs on the
    /// same inputs: not a random operator, and not a Dropout that may run in training mode
    /// (its `training_mode` input is there and not a constant false, or opset 6 and earlier
    /// without `is_test`). `constant` gives an input's value when it is a constant.
    public static func isDeterministic(_ node: Node, opsetVersion: Int64, constant: (Value) -> TensorValue?) -> Bool {
        if nondeterministicOperators.contains(node.opType) { return false }
        guard node.opType == "Dropout" else { return true }
        func input(_ position: Int) -> (present: Bool, value: TensorValue?) {
            guard let value = node.input(position) else { return (false, nil) }
            return (true, constant(value))
        }
        let training = input(2), ratio = input(1)
        if training.present && training.value == nil { return false }
        let context = OperatorContext(node: node, opsetVersion: opsetVersion)
        return (try? ShapeKit.dropoutIsInference(context, training: training.value, ratio: ratio.value)) ?? false
    }

    /// Everything this build knows.
    public static let standard: OperatorRegistry = {
        var registry = OperatorRegistry()
        registry.registerElementwiseOperators()
        registry.registerReductionOperators()
        registry.registerShapeOperators()
        registry.registerNeuralNetworkOperators()
        return registry
    }()

    /// Evaluates `node` on constant inputs: one tensor per output of the node (absent outputs
    /// of the node are left out as nil).
    public func evaluate(_ node: Node, inputs: [TensorValue?], opsetVersion: Int64) throws(OperatorError) -> [TensorValue?] {
        try evaluate(node, inputs: inputs, context: OperatorContext(node: node, opsetVersion: opsetVersion))
    }

    /// `evaluate(_:inputs:opsetVersion:)` with the kernel's context given (its `workLimit`).
    func evaluate(_ node: Node, inputs: [TensorValue?], context: OperatorContext) throws(OperatorError) -> [TensorValue?] {
        let domain = node.isDefaultDomain ? "" : node.domain!
        guard let kernel = kernel(node.opType, domain: domain) else {
            throw OperatorError("no kernel for \(domain.isEmpty ? "" : domain + ".")\(node.opType)")
        }
        let results = try kernel(context, inputs)
        return node.outputs.indices.map { index in
            node.outputs[index] == nil || index >= results.count ? nil : results[index]
        }
    }
}
