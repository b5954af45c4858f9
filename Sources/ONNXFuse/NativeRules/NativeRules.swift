import ONNXFuseIR
import ONNXFuseOps
import ONNXFuseRewrite
import ONNXFuseRules

/// What native rules know beyond the graph: inference facts and the folding limits. `optimize`
/// makes one per run and hands it to the engine, which passes it on in `RewriteContext`.
final class OperatorAnalysis {
    let inference: ShapeInference
    /// Folded outputs with more elements than this stay as they are (so a model does not grow).
    let foldElementLimit: Int
    /// Nodes whose constant inputs hold more elements than this together are not evaluated.
    let foldInputElementLimit: Int
    /// Nodes whose kernel would do more work than this (`GraphEvaluator.estimatedWork`: a
    /// constant Conv or MatMul) are not evaluated.
    let foldWorkLimit: Int
    // merge-duplicates' index: nodes seen so far by a hash of what makes two nodes equal
    // (operator, inputs, attributes), so a node is compared only with likely equals, not with
    // every reader of its first input. Entries of erased nodes are skipped and dropped.
    /// The first node of each signature (most have one: no array is made for them) ...
    var firstNodeBySignature: [Int: Node] = [:]
    /// ... and the later ones of the signatures that have more.
    var laterNodesBySignature: [Int: [Node]] = [:]
    /// The index's size after its last sweep of erased nodes (`sweepErasedNodes`).
    var sizeAfterSweep = 0

    init(inference: ShapeInference, foldElementLimit: Int) {
        self.inference = inference
        self.foldElementLimit = foldElementLimit
        let (inputLimit, overflow) = max(foldElementLimit, 1).multipliedReportingOverflow(by: 16)
        foldInputElementLimit = overflow ? Int.max : inputLimit
        let (workLimit, workOverflow) = foldInputElementLimit.multipliedReportingOverflow(by: 16)
        foldWorkLimit = workOverflow ? Int.max : workLimit
    }

    /// Drops the erased nodes from merge-duplicates' index once it has doubled since the last
    /// sweep: they are never matched again, and a run that rewrites most nodes (folding every
    /// BatchNormalization of a long chain) would keep them all alive to its end.
    func sweepErasedNodesWhenGrown() {
        guard firstNodeBySignature.count >= max(4_096, 2 * sizeAfterSweep) else { return }
        var later: [Int: [Node]] = [:]
        for (signature, nodes) in laterNodesBySignature {
            var alive = nodes.filter { $0.graph != nil }
            if let first = firstNodeBySignature[signature], first.graph != nil { alive.insert(first, at: 0) }
            // The first living node leads its signature; the rest stay behind it.
            firstNodeBySignature[signature] = alive.first
            if alive.count > 1 { later[signature] = Array(alive.dropFirst()) }
        }
        laterNodesBySignature = later
        firstNodeBySignature = firstNodeBySignature.filter { $0.value.graph != nil }
        sizeAfterSweep = firstNodeBySignature.count
    }

    /// The version of `node`'s operator set the model imports.
    func opsetVersion(of node: Node) -> Int64? {
        inference.model.opsetVersion(domain: node.isDefaultDomain ? "" : node.domain!)
    }
}

/// The built-in rules written in Swift: they need operator knowledge (kernels, inference) that
/// the rule language cannot reach yet. Each is named, listed, counted and `--disable`d like
/// any rule.
enum NativeRules {
    /// Every native rule, in the order `rules list` shows them.
    static var all: [CompiledRule] { [
        rule("lift-constant", benefit: 100, opTypes: ["Constant"],
             "Turn a Constant node into an initializer.", liftConstant),
        rule("fold-constants", benefit: 90, opTypes: [PatternNode.anyOperator],
             "Replace a node whose inputs are all constants (or that reads only a static type or shape) by its value.",
             foldConstants),
        rule("fold-shape-arithmetic", benefit: 80, opTypes: [PatternNode.anyOperator],
             "Replace an integer value computed from shapes by a constant when the dimensions it reads are static.",
             foldShapeArithmetic),
        rule("merge-duplicates", benefit: 70, opTypes: [PatternNode.anyOperator],
             "Merge a node into an earlier one with the same operator, attributes and inputs.", mergeDuplicates),
        rule("constant-reshape-shape", benefit: 65, opTypes: ["Reshape"],
             "Give a Reshape a constant target when each entry is known, a copy of the input (0) or the only unknown (-1).",
             constantReshapeShape),
        rule("remove-noop-cast", benefit: 60, opTypes: ["Cast", "CastLike"],
             "Remove a Cast or CastLike to the type its input already has.", removeNoopCast),
        rule("remove-noop-reshape", benefit: 60, opTypes: ["Reshape", "Expand", "Squeeze", "Unsqueeze", "Flatten"],
             "Remove a Reshape, Expand, Squeeze, Unsqueeze or Flatten that does not change the shape.", removeNoopReshape),
        rule("remove-noop-slice", benefit: 60, opTypes: ["Slice"],
             "Remove a Slice that takes everything.", removeNoopSlice),
        rule("remove-noop-concat", benefit: 60, opTypes: ["Concat"],
             "Remove a Concat of a single input.", removeNoopConcat),
        rule("remove-noop-arithmetic", benefit: 60, opTypes: ["Add", "Sub", "Mul", "Div", "And", "Or"],
             "Remove an Add/Sub of 0, a Mul/Div by 1, an And with true or an Or with false that keeps shape and type.",
             removeNoopArithmetic),
        rule("remove-noop-where", benefit: 60, opTypes: ["Where"],
             "Remove a Where whose constant condition is all true or all false, when the operand it picks keeps the shape.",
             removeNoopWhere),
        rule("remove-noop-pad", benefit: 60, opTypes: ["Pad"],
             "Remove a Pad whose pads are all 0.", removeNoopPad),
        rule("merge-slices", benefit: 55, opTypes: ["Slice"],
             "Merge a Slice of a Slice on other axes into one Slice (opset 10 on, constant parameters).", mergeSlices),
        // Below the rule files' default benefit (1): cleanup.rules' fuse-reshape-reshape, which
        // it extends (to more producers, shared ones, and computed targets with allowzero), goes first.
        rule("merge-reshapes", benefit: 0, opTypes: ["Reshape"],
             "Let a Reshape read through a Reshape, Flatten, Squeeze, Unsqueeze or size-1 Transpose before it.",
             mergeReshapes),
        rule("merge-unsqueezes", benefit: 55, opTypes: ["Unsqueeze"],
             "Merge an Unsqueeze of an Unsqueeze into one Unsqueeze (opset 13 on, constant axes).", mergeUnsqueezes),
    ] }

    static func rule(_ name: String, benefit: Int, opTypes: [String], _ summary: String,
                     _ body: @escaping @Sendable (Node, OperatorAnalysis, RewriteContext) -> Result<NativeEdit, RuleRefusal>) -> CompiledRule {
        let rewrite = RewriteRule(name: name, benefit: benefit, opTypes: opTypes) { node, context in
            guard let analysis = context.analysis as? OperatorAnalysis else {
                return .failure(RuleRefusal("no operator analysis for this run"))
            }
            return body(node, analysis, context)
        }
        return CompiledRule(name: name, file: "builtin:native", comment: [summary],
                            text: "# \(summary)\n# A native rule: it is written in Swift (Sources/ONNXFuse/NativeRules).\n",
                            rewrite: rewrite)
    }
}

/// The default ONNX domain only: other domains' operators are unknown to the kernels.
func refuseOtherDomains(_ node: Node) -> RuleRefusal? {
    node.isDefaultDomain ? nil : RuleRefusal("\(node.domain!).\(node.opType) is not a standard operator")
}

/// Initializers exist only from IR version 4 on without a graph input of the same name.
func refuseOldIR(_ analysis: OperatorAnalysis) -> RuleRefusal? {
    (analysis.inference.model.irVersion ?? 0) < 4 ? RuleRefusal("the model's IR version is below 4") : nil
}

// MARK: lift-constant

func liftConstant(_ node: Node, _ analysis: OperatorAnalysis, _ context: RewriteContext) -> Result<NativeEdit, RuleRefusal> {
    if let refusal = refuseOtherDomains(node) ?? refuseOldIR(analysis) { return .failure(refusal) }
    guard let output = node.outputs.first ?? nil, let tensor = output.constantTensor() else {
        return .failure(RuleRefusal("the Constant's value is not a dense tensor"))
    }
    var lifted = tensor
    lifted.name = nil
    return .success(.replaceOutputs([.tensor(lifted)]))
}

// MARK: fold-constants

/// Refuses a node whose outputs are drawn at random (a random operator, a Dropout that may run
/// in training mode): two of them are not the same value, and none has a value to fold.
func refuseNondeterministic(_ node: Node, _ analysis: OperatorAnalysis, _ context: RewriteContext) -> RuleRefusal? {
    // Without an imported version, the oldest (Dropout trains unless is_test says otherwise).
    let version = analysis.opsetVersion(of: node) ?? 1
    let deterministic = OperatorRegistry.isDeterministic(node, opsetVersion: version) { value in
        // Only a one-element constant can be a valid training_mode or ratio.
        guard let tensor = value.constantTensor(freezeInitializerInputs: context.freezeInitializerInputs),
              tensor.elementCount == 1 else { return nil }
        return try? TensorValue(tensor: tensor)
    }
    return deterministic ? nil : RuleRefusal("\(node.opType) is not deterministic")
}

/// The refusal of a rule tried at every node whose cheapest check failed. (A rule rooted at any
/// operator is not explained, so the one message serves, and none is built per node.)
let notApplicableHere = RuleRefusal("the node is not one this rule rewrites")

func foldConstants(_ node: Node, _ analysis: OperatorAnalysis, _ context: RewriteContext) -> Result<NativeEdit, RuleRefusal> {
    // Most nodes read a computed value: that is looked at first, as this rule is tried at every
    // node. (Shape and Size fold from their input's facts; CastLike reads its second input's type.)
    let readsShapeOnly = node.opType == "Shape" || node.opType == "Size"
    var constants: [Tensor?] = []
    if !readsShapeOnly {
        for (index, input) in node.inputs.enumerated() {
            guard let input, !(index == 1 && node.opType == "CastLike") else { constants.append(nil); continue }
            guard let tensor = input.constantTensor(freezeInitializerInputs: context.freezeInitializerInputs) else {
                return .failure(notApplicableHere)
            }
            constants.append(tensor)
        }
    }
    if let refusal = refuseOtherDomains(node) ?? refuseOldIR(analysis) { return .failure(refusal) }
    if node.opType == "Constant" || node.inputs.isEmpty { return .failure(RuleRefusal("the node has no inputs")) }
    if !node.subgraphs.isEmpty { return .failure(RuleRefusal("the node has subgraphs")) }
    if let refusal = refuseNondeterministic(node, analysis, context) { return .failure(refusal) }
    // Shape and Size read only their input's shape: static output facts are their value.
    if readsShapeOnly { return staticIntegerOutputs(node, analysis) }
    guard let version = analysis.opsetVersion(of: node) else { return .failure(RuleRefusal("the model does not import the operator's domain")) }
    var inputs: [TensorValue?] = []
    var total = 0
    for (index, input) in node.inputs.enumerated() {
        guard let input else { inputs.append(nil); continue }
        if node.opType == "CastLike" && index == 1 {
            // CastLike reads only the element type of its second input.
            guard let type = analysis.inference.elementType(of: input), let kind = TensorValue.kind(of: type) else {
                return .failure(RuleRefusal("the element type of '\(input.name)' is unknown"))
            }
            inputs.append(TensorValue(type, shape: [0], .empty(kind)))
            continue
        }
        let tensor = constants[index]!
        total += tensor.elementCount ?? Int.max
        guard total <= analysis.foldInputElementLimit else {
            return .failure(RuleRefusal("its inputs hold more than \(analysis.foldInputElementLimit) elements"))
        }
        do {
            inputs.append(try TensorValue(tensor: tensor))
        } catch {
            return .failure(RuleRefusal("'\(input.name)': \(error.message)"))
        }
    }
    let results: [TensorValue?]
    do {
        // Within the limits: an output's size is checked before the kernel makes it (a Range of
        // three scalars can ask for 2^28 elements).
        var work = 0
        results = try analysis.inference.registry.evaluate(node, inputs: inputs, opsetVersion: version, workLimit: analysis.foldWorkLimit,
                                                           elementLimit: analysis.foldElementLimit, work: &work)
    } catch {
        return .failure(RuleRefusal(error.message))
    }
    return constantOutputs(node, results, analysis)
}

/// The outputs as constants, within the size limit; an absent result for a present output refuses.
func constantOutputs(_ node: Node, _ results: [TensorValue?], _ analysis: OperatorAnalysis) -> Result<NativeEdit, RuleRefusal> {
    var replacements: [OutputReplacement?] = []
    for (index, output) in node.outputs.enumerated() {
        guard let output else { replacements.append(nil); continue }
        guard let result = results[index] else { return .failure(RuleRefusal("output '\(output.name)' has no value")) }
        guard result.count <= analysis.foldElementLimit else {
            return .failure(RuleRefusal("output '\(output.name)' would hold \(result.count) elements, more than the limit of \(analysis.foldElementLimit)"))
        }
        replacements.append(.tensor(result.tensor()))
    }
    return .success(.replaceOutputs(replacements))
}

/// The outputs as integer (or bool) constants when inference knows every element.
func staticIntegerOutputs(_ node: Node, _ analysis: OperatorAnalysis) -> Result<NativeEdit, RuleRefusal> {
    var results: [TensorValue?] = []
    for output in node.outputs {
        guard let output else { results.append(nil); continue }
        guard let facts = output.inferred, let type = facts.elementType,
              TensorValue.kind(of: type) == .integer || type == .bool,
              let shape = facts.shape, shape.count <= 1,
              let values = ValueFacts(shapeValue: facts.shapeValue).staticShapeValue,
              (shape.isEmpty && values.count == 1) || (shape.count == 1 && shape[0] == .value(Int64(values.count))) else {
            return .failure(RuleRefusal("output '\(output.name)' is not known statically"))
        }
        let dims = shape.isEmpty ? [] : [values.count]
        results.append(type == .bool ? .bool(values.map { $0 != 0 }, shape: dims) : TensorValue(type, shape: dims, integers: values))
    }
    return constantOutputs(node, results, analysis)
}

// MARK: fold-shape-arithmetic

func foldShapeArithmetic(_ node: Node, _ analysis: OperatorAnalysis, _ context: RewriteContext) -> Result<NativeEdit, RuleRefusal> {
    // Only integer and bool outputs fold (`staticIntegerOutputs`): most nodes fail here, first.
    for case let output? in node.outputs {
        guard let type = output.inferred?.elementType, type == .bool || TensorValue.kind(of: type) == .integer else {
            return .failure(notApplicableHere)
        }
    }
    if let refusal = refuseOtherDomains(node) ?? refuseOldIR(analysis) { return .failure(refusal) }
    if node.opType == "Constant" || node.inputs.isEmpty || !node.subgraphs.isEmpty {
        return .failure(RuleRefusal("not a shape computation"))
    }
    if let refusal = refuseNondeterministic(node, analysis, context) { return .failure(refusal) }
    return staticIntegerOutputs(node, analysis)
}

// MARK: merge-duplicates

func mergeDuplicates(_ node: Node, _ analysis: OperatorAnalysis, _ context: RewriteContext) -> Result<NativeEdit, RuleRefusal> {
    guard node.isDefaultDomain || node.domain == "ai.onnx.ml" else { return .failure(RuleRefusal("not a standard operator")) }
    if node.holdsSubgraphs { return .failure(RuleRefusal("the node has subgraphs")) }
    guard node.inputs.contains(where: { $0 != nil }) else { return .failure(RuleRefusal("the node has no inputs")) }
    if let attribute = node.attributes.first(where: { !isComparable($0.value) }) {
        return .failure(RuleRefusal("attribute '\(attribute.name)' is of a kind that is not compared"))
    }
    let signature = nodeSignature(node)
    guard let first = analysis.firstNodeBySignature[signature] else {
        // The first of its kind, deterministic or not: a later equal node is refused below.
        analysis.firstNodeBySignature[signature] = node
        analysis.sweepErasedNodesWhenGrown()
        return .failure(RuleRefusal("no earlier node computes the same"))
    }
    // Tried again while it still leads its signature alone: there is nothing to compare it
    // with, and the bucket below would be taken out and put back as it was.
    if first === node && analysis.laterNodesBySignature[signature] == nil {
        return .failure(RuleRefusal("no earlier node computes the same"))
    }
    if let refusal = refuseNondeterministic(node, analysis, context) { return .failure(refusal) }
    // Taken out while it is worked on, and put back at the end. Entries of erased nodes are
    // dropped as they are met.
    var bucket = [first] + (analysis.laterNodesBySignature.removeValue(forKey: signature) ?? [])
    bucket.removeAll { $0.graph == nil }
    defer {
        analysis.firstNodeBySignature[signature] = bucket.first
        if bucket.count > 1 { analysis.laterNodesBySignature[signature] = Array(bucket.dropFirst()) }
    }
    for other in bucket {
        guard other !== node, other.graph === node.graph, other.opType == node.opType,
              other.isDefaultDomain == node.isDefaultDomain, other.domain == node.domain || node.isDefaultDomain,
              other.inputs.count == node.inputs.count, other.outputs.count == node.outputs.count,
              zip(other.inputs, node.inputs).allSatisfy({ $0 === $1 }),
              // Every output of this node that is read must exist on the other one.
              zip(other.outputs, node.outputs).allSatisfy({ theirs, mine in theirs != nil || (mine?.isUnused ?? true) }),
              attributesEqual(other.attributes, node.attributes), other.isBeforeUnchecked(node) else { continue }
        let replacements: [OutputReplacement?] = zip(node.outputs, other.outputs).map { mine, theirs in
            guard let mine, !mine.isUnused, let theirs else { return nil }
            return .value(theirs)
        }
        return .success(.replaceOutputs(replacements))
    }
    // Not merged: this node is a candidate for later ones. Equal signatures almost always mean
    // equal nodes, so a bucket stays small; one that grows past a few dozen nodes (made to
    // collide) takes no more, so that each node is compared with a bounded number of others.
    if bucket.count < maximumSignatureBucket, !bucket.contains(where: { $0 === node }) {
        bucket.append(node)
    }
    return .failure(RuleRefusal("no earlier node computes the same"))
}

/// The most nodes merge-duplicates keeps for one signature.
let maximumSignatureBucket = 32

/// Whether merge-duplicates compares attribute values of this kind (graphs, sparse tensors and
/// types are not: a node carrying one is never merged).
func isComparable(_ value: AttributeValue?) -> Bool {
    switch value {
    case .int?, .float?, .string?, .ints?, .floats?, .strings?, .tensor?: return true
    default: return false
    }
}

/// A hash of what two equal nodes share: operator, domain, the identity of each input, and
/// the attributes' names and values (a tensor attribute by its type, dims and its first
/// 64 KiB of elements; equal hashes are compared in full).
func nodeSignature(_ node: Node) -> Int {
    var hasher = Hasher()
    // The operator's number stands for its type and domain: equal exactly when both are.
    hasher.combine(node.operatorID)
    for input in node.inputs { hasher.combine(input.map(ObjectIdentifier.init)) }
    // By name, so that the order attributes are written in does not matter (most nodes have
    // them in order already, or one or none: no sorted copy then).
    let attributes = node.attributes
    let inOrder = zip(attributes, attributes.dropFirst()).allSatisfy { $0.name < $1.name }
    for attribute in inOrder ? attributes : attributes.sorted(by: { $0.name < $1.name }) {
        hasher.combine(attribute.name)
        switch attribute.value {
        case .int(let i)?: hasher.combine(i)
        case .float(let f)?: hasher.combine(f.bitPattern)
        case .string(let s)?: hasher.combine(s)
        case .ints(let i)?: hasher.combine(i)
        case .floats(let f)?:
            // As an array of the bit patterns hashes, without making one.
            hasher.combine(f.count)
            for x in f { hasher.combine(x.bitPattern) }
        case .strings(let s)?: hasher.combine(s)
        case .tensor(let t)?:
            hasher.combine(t.dataType.rawValue)
            hasher.combine(t.dims)
            hashPrefix(of: t.storage, into: &hasher)
        default: hasher.combine(0)
        }
    }
    return hasher.finalize()
}

/// Hashes the first 64 KiB of a tensor's stored elements (and which field holds them).
func hashPrefix(of storage: TensorStorage, into hasher: inout Hasher) {
    let limit = 1 << 16
    func combine(_ field: Int, _ bytes: TensorBytes) {
        hasher.combine(field)
        bytes.withUnsafeBytes { hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: $0.prefix(limit))) }
    }
    switch storage {
    case .none: hasher.combine(0)
    case .raw(let bytes): combine(1, bytes)
    case .floatData(let bytes): combine(2, bytes)
    case .int32Data(let bytes): combine(3, bytes)
    case .int64Data(let bytes): combine(4, bytes)
    case .doubleData(let bytes): combine(5, bytes)
    case .uint64Data(let bytes): combine(6, bytes)
    case .stringData(let strings):
        hasher.combine(7)
        for string in strings.prefix(64) { hasher.combine(string) }
    }
}

/// Attributes equal as lists (same names, order-insensitive, same values); subgraphs never are.
func attributesEqual(_ a: [Attribute], _ b: [Attribute]) -> Bool {
    guard a.count == b.count else { return false }
    // A few attributes are compared by scanning; many by name lookup (two nodes with 80,000
    // attributes each took 14 s to compare by scanning).
    let lookup: (String) -> Attribute?
    if b.count <= 16 {
        lookup = { name in b.first { $0.name == name } }
    } else {
        let byName = Dictionary(b.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        lookup = { byName[$0] }
    }
    for attribute in a {
        guard let other = lookup(attribute.name), let x = attribute.value, let y = other.value,
              attributeValuesEqual(x, y) else { return false }
    }
    return true
}

func attributeValuesEqual(_ x: AttributeValue, _ y: AttributeValue) -> Bool {
    switch (x, y) {
    case (.int(let a), .int(let b)): return a == b
    case (.float(let a), .float(let b)): return a.bitPattern == b.bitPattern
    case (.string(let a), .string(let b)): return a == b
    case (.ints(let a), .ints(let b)): return a == b
    case (.floats(let a), .floats(let b)): return a.map(\.bitPattern) == b.map(\.bitPattern)
    case (.strings(let a), .strings(let b)): return a == b
    case (.tensor(let a), .tensor(let b)): return tensorsEqual(a, b)
    default: return false
    }
}

/// Same type, dims and elements (compared through the kernel form, so the storage field does
/// not matter).
func tensorsEqual(_ a: Tensor, _ b: Tensor) -> Bool {
    guard a.dataType == b.dataType, a.dims == b.dims else { return false }
    if case .raw(let x) = a.storage, case .raw(let y) = b.storage { return x == y }
    guard let x = try? TensorValue(tensor: a), let y = try? TensorValue(tensor: b) else { return false }
    if case .reals(let p) = x.elements, case .reals(let q) = y.elements { return p.map(\.bitPattern) == q.map(\.bitPattern) }
    return x == y
}
