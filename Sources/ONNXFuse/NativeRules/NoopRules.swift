import ONNXFuseIR
import ONNXFuseOps
import ONNXFuseRewrite

// The no-op removals that inference makes possible: each forwards the node's input to its
// readers when the node provably changes neither type nor shape nor any element.

/// Whether two shapes are known to be equal: same rank, each dimension the same number or the
/// same symbol.
func shapesKnownEqual(_ a: [Dimension]?, _ b: [Dimension]?) -> Bool {
    guard let a, let b, a.count == b.count else { return false }
    for (x, y) in zip(a, b) {
        switch (x, y) {
        case (.value(let p), .value(let q)) where p == q: continue
        case (.param(let p), .param(let q)) where p == q: continue
        default: return false
        }
    }
    return true
}

/// Forwards input 0 to output 0 when the output is known to have the input's type and shape.
func forwardInput(_ node: Node, _ analysis: OperatorAnalysis) -> Result<NativeEdit, RuleRefusal> {
    guard let input = node.inputs.first ?? nil, let output = node.outputs.first ?? nil else {
        return .failure(RuleRefusal("the node has no input or output"))
    }
    let inputFacts = analysis.inference.facts(of: input)
    let outputFacts = analysis.inference.facts(of: output)
    guard let type = inputFacts.elementType, type == outputFacts.elementType else {
        return .failure(RuleRefusal("the element types are not known to be equal"))
    }
    guard shapesKnownEqual(inputFacts.shape, outputFacts.shape) else {
        return .failure(RuleRefusal("the shapes are not known to be equal"))
    }
    var replacements: [OutputReplacement?] = [.value(input)]
    replacements += Array(repeating: nil, count: max(0, node.outputs.count - 1))
    return .success(.replaceOutputs(replacements))
}

func removeNoopCast(_ node: Node, _ analysis: OperatorAnalysis, _ context: RewriteContext) -> Result<NativeEdit, RuleRefusal> {
    forwardInput(node, analysis)
}

func removeNoopReshape(_ node: Node, _ analysis: OperatorAnalysis, _ context: RewriteContext) -> Result<NativeEdit, RuleRefusal> {
    forwardInput(node, analysis)
}

func removeNoopConcat(_ node: Node, _ analysis: OperatorAnalysis, _ context: RewriteContext) -> Result<NativeEdit, RuleRefusal> {
    guard node.inputs.count == 1 else { return .failure(RuleRefusal("the Concat has more than one input")) }
    return forwardInput(node, analysis)
}

/// A Slice whose every sliced axis starts at 0 (or before) and ends at or past the
/// dimension's end with step 1; its constant inputs (opset 10 on) or attributes say so.
func removeNoopSlice(_ node: Node, _ analysis: OperatorAnalysis, _ context: RewriteContext) -> Result<NativeEdit, RuleRefusal> {
    guard let input = node.inputs.first ?? nil, let version = analysis.opsetVersion(of: node) else {
        return .failure(RuleRefusal("not a standard Slice"))
    }
    guard let shape = analysis.inference.facts(of: input).shape else { return .failure(RuleRefusal("the input's rank is unknown")) }
    let parameters: (starts: [Int64], ends: [Int64], axes: [Int], steps: [Int64])?
    if version < 10 {
        let attributes = OperatorContext(node: node, opsetVersion: version)
        guard let starts = try? attributes.ints("starts"), let ends = try? attributes.ints("ends") else {
            return .failure(RuleRefusal("the Slice has no starts or ends"))
        }
        parameters = normalizedSlice(starts: starts, ends: ends, axes: (try? attributes.ints("axes")) ?? nil, steps: nil, rank: shape.count)
    } else {
        parameters = sliceParameters(node, rank: shape.count, context)
    }
    guard let parameters else {
        return .failure(RuleRefusal("the Slice's parameters are not constants, or not valid"))
    }
    for (index, axis) in parameters.axes.enumerated() {
        guard parameters.steps[index] == 1 else { return .failure(RuleRefusal("a step is not 1")) }
        let start = parameters.starts[index], end = parameters.ends[index]
        let startsAtZero = start == 0 || (start < 0 && shape[axis] == .value(0))
        var endsPastEnd = end == Int64.max
        if !endsPastEnd, case .value(let dim) = shape[axis] { endsPastEnd = end >= dim }
        guard startsAtZero && endsPastEnd else { return .failure(RuleRefusal("the Slice does not take all of axis \(axis)")) }
    }
    return forwardInput(node, analysis)
}

func removeNoopArithmetic(_ node: Node, _ analysis: OperatorAnalysis, _ context: RewriteContext) -> Result<NativeEdit, RuleRefusal> {
    guard node.inputs.count == 2, let a = node.inputs[0], let b = node.inputs[1] else {
        return .failure(RuleRefusal("not a binary operator"))
    }
    let neutral: Double
    var constantSides: [(constant: Value, other: Value)]
    switch node.opType {
    case "Add": neutral = 0; constantSides = [(b, a), (a, b)]
    case "Sub": neutral = 0; constantSides = [(b, a)]
    case "Mul": neutral = 1; constantSides = [(b, a), (a, b)]
    case "Div": neutral = 1; constantSides = [(b, a)]
    case "And": neutral = 1; constantSides = [(b, a), (a, b)]
    case "Or": neutral = 0; constantSides = [(b, a), (a, b)]
    default: preconditionFailure("remove-noop-arithmetic is rooted at Add, Sub, Mul, Div, And and Or only")
    }
    // Exactly neutral, sign of zero included: `-0 + +0` is `+0` (and 1/x tells them apart), so
    // of the float zeros only `x + -0` and `x - +0` give back every x.
    let neutralZeroSign: FloatingPointSign = node.opType == "Sub" ? .plus : .minus
    var zeroOfTheWrongSign = false
    guard let output = node.outputs.first ?? nil else { return .failure(RuleRefusal("no output")) }
    let outputFacts = analysis.inference.facts(of: output)
    for (constant, other) in constantSides {
        guard let tensor = constant.constantTensor(freezeInitializerInputs: context.freezeInitializerInputs),
              (tensor.elementCount ?? Int.max) <= analysis.foldElementLimit,
              let values = try? TensorValue(tensor: tensor).doubleValues(),
              values.allSatisfy({ $0 == neutral }) else { continue }
        if neutral == 0, tensor.dataType.isFloatingPoint, values.contains(where: { $0.sign != neutralZeroSign }) {
            zeroOfTheWrongSign = true
            continue
        }
        let otherFacts = analysis.inference.facts(of: other)
        guard let type = otherFacts.elementType, type == outputFacts.elementType,
              shapesKnownEqual(otherFacts.shape, outputFacts.shape) else { continue }
        return .success(.replaceOutputs([.value(other)]))
    }
    if zeroOfTheWrongSign {
        return .failure(RuleRefusal(node.opType == "Sub"
            ? "x - (-0) turns -0 into +0; only x - (+0) leaves every x as it is"
            : "x + (+0) turns -0 into +0; only x + (-0) leaves every x as it is"))
    }
    return .failure(RuleRefusal("no operand is a neutral constant that keeps the shape"))
}

/// A Where whose condition is a constant, all true (it is X) or all false (it is Y), when the
/// operand it picks has the output's type and shape.
func removeNoopWhere(_ node: Node, _ analysis: OperatorAnalysis, _ context: RewriteContext) -> Result<NativeEdit, RuleRefusal> {
    guard node.inputs.count == 3, let condition = node.inputs[0], let x = node.inputs[1], let y = node.inputs[2],
          let output = node.outputs.first ?? nil else {
        return .failure(RuleRefusal("not a Where of three inputs"))
    }
    guard let tensor = condition.constantTensor(freezeInitializerInputs: context.freezeInitializerInputs),
          (tensor.elementCount ?? Int.max) <= analysis.foldElementLimit,
          let values = try? TensorValue(tensor: tensor).int64Values(), !values.isEmpty else {
        return .failure(RuleRefusal("the condition is not a constant"))
    }
    let picked: Value
    if values.allSatisfy({ $0 != 0 }) {
        picked = x
    } else if values.allSatisfy({ $0 == 0 }) {
        picked = y
    } else {
        return .failure(RuleRefusal("the condition is neither all true nor all false"))
    }
    let outputFacts = analysis.inference.facts(of: output), pickedFacts = analysis.inference.facts(of: picked)
    guard let type = pickedFacts.elementType, type == outputFacts.elementType,
          shapesKnownEqual(pickedFacts.shape, outputFacts.shape) else {
        return .failure(RuleRefusal("the operand it picks is broadcast to another shape"))
    }
    return .success(.replaceOutputs([.value(picked)]))
}
