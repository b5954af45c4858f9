import ONNXFuseIR
import ONNXFuseOps
import ONNXFuseRewrite

// Rules that turn shapes computed at run time into constants where inference proves what
// they hold, so the shape arithmetic that computed them goes.

/// The elements of `value` when it is a constant that holds integers (axes, shapes, pads);
/// nil when it is absent, not a constant, or not integers.
func constantInts(_ value: Value?, _ context: RewriteContext) -> [Int64]? {
    guard let tensor = value?.constantTensor(freezeInitializerInputs: context.freezeInitializerInputs) else { return nil }
    return try? TensorValue(tensor: tensor).int64Values()
}

/// A new int64 vector input, named after its role ("shape", "axes").
func int64Input(_ values: [Int64], role: String) -> OutputReplacement {
    var tensor = TensorValue(.int64, shape: [values.count], integers: values).tensor()
    tensor.name = role
    return .tensor(tensor)
}

// MARK: constant-reshape-shape

/// A Reshape whose target shape is computed at run time gets a constant one when each entry is
/// static, provably a copy of the input's dimension at the same position (0), or the only
/// entry left to infer (-1). A -1 is used only when every other entry is a static positive
/// number: beside a copied dimension that may be 0 at run time, -1 would be ambiguous, while
/// the original shape is not.
func constantReshapeShape(_ node: Node, _ analysis: OperatorAnalysis, _ context: RewriteContext) -> Result<NativeEdit, RuleRefusal> {
    if let refusal = refuseOtherDomains(node) ?? refuseOldIR(analysis) { return .failure(refusal) }
    guard let version = analysis.opsetVersion(of: node), version >= 5 else {
        return .failure(RuleRefusal("the target shape is an attribute before opset 5"))
    }
    guard node.inputs.count == 2, let data = node.inputs[0], let target = node.inputs[1] else {
        return .failure(RuleRefusal("the Reshape has no target shape"))
    }
    if target.constantTensor(freezeInitializerInputs: context.freezeInitializerInputs) != nil {
        return .failure(RuleRefusal("the target shape is a constant already"))
    }
    let targetFacts = analysis.inference.facts(of: target)
    guard targetFacts.elementType == .int64, let entries = targetFacts.shapeValue,
          targetFacts.shape == [.value(Int64(entries.count))] else {
        return .failure(RuleRefusal("the entries of the target shape are not known"))
    }
    guard let allowZero = try? OperatorContext(node: node, opsetVersion: version).reshapeAllowsZero() else {
        return .failure(RuleRefusal("the allowzero attribute is not an integer"))
    }
    let inputShape = analysis.inference.facts(of: data).shape
    var shape: [Int64] = []
    var unknown: [Int] = []
    for (index, entry) in entries.enumerated() {
        switch entry {
        case .value(let v):
            shape.append(v)
        case .param(let symbol):
            if !allowZero, let inputShape, index < inputShape.count, inputShape[index] == .param(symbol) {
                shape.append(0)
            } else {
                unknown.append(index)
                shape.append(-1)
            }
        case .unknown:
            unknown.append(index)
            shape.append(-1)
        }
    }
    if unknown.count == 1 {
        let others = shape.enumerated().filter { $0.offset != unknown[0] }.map(\.element)
        guard others.allSatisfy({ $0 > 0 }) else {
            return .failure(RuleRefusal("entry \(unknown[0]) is not known, and another entry is not a static positive number"))
        }
    } else if !unknown.isEmpty {
        return .failure(RuleRefusal("\(unknown.count) entries of the target shape are not known"))
    }
    return .success(.rewireInputs([(position: 1, input: int64Input(shape, role: "shape"))]))
}

// MARK: merge-unsqueezes

/// `Unsqueeze(Unsqueeze(x, a), b)` becomes `Unsqueeze(x, c)`, c the positions the two insert
/// into the final shape (opset 13 on, where the axes are an input; both constant). The inner
/// Unsqueeze stays while something else reads it.
func mergeUnsqueezes(_ node: Node, _ analysis: OperatorAnalysis, _ context: RewriteContext) -> Result<NativeEdit, RuleRefusal> {
    if let refusal = refuseOtherDomains(node) ?? refuseOldIR(analysis) { return .failure(refusal) }
    guard let version = analysis.opsetVersion(of: node), version >= 13 else {
        return .failure(RuleRefusal("the axes are an attribute before opset 13"))
    }
    guard node.inputs.count == 2, let middle = node.inputs[0], let outerAxes = node.inputs[1],
          let inner = middle.producer, inner.opType == "Unsqueeze", inner.isDefaultDomain,
          inner.inputs.count == 2, let x = inner.inputs[0], let innerAxes = inner.inputs[1] else {
        return .failure(RuleRefusal("the input is not made by an Unsqueeze with axes"))
    }
    guard let a = constantInts(innerAxes, context), let b = constantInts(outerAxes, context) else { return .failure(RuleRefusal("the axes are not constants")) }
    guard let rank = analysis.inference.facts(of: x).shape?.count else { return .failure(RuleRefusal("the rank of the input is not known")) }
    let middleRank = rank + a.count, finalRank = middleRank + b.count
    func normalized(_ list: [Int64], rank: Int) -> Set<Int>? {
        var result = Set<Int>()
        for axis in list {
            guard let resolved = try? normalizeAxis(axis, rank: rank), result.insert(resolved).inserted else { return nil }
        }
        return result
    }
    guard let inserted = normalized(a, rank: middleRank), let outer = normalized(b, rank: finalRank) else {
        return .failure(RuleRefusal("the axes are out of range or repeated"))
    }
    // The middle value's dimensions land, in order, on the final positions the outer one leaves.
    let kept = (0..<finalRank).filter { !outer.contains($0) }
    let combined = (outer.union(inserted.map { kept[$0] })).sorted().map(Int64.init)
    return .success(.rewireInputs([(position: 0, input: .value(x)), (position: 1, input: int64Input(combined, role: "axes"))]))
}

// MARK: merge-slices

/// `Slice(Slice(x, ...), ...)` on different axes becomes one Slice of x (opset 10 on, every
/// parameter constant): slices of distinct axes do not interact. The inner Slice stays while
/// something else reads it.
func mergeSlices(_ node: Node, _ analysis: OperatorAnalysis, _ context: RewriteContext) -> Result<NativeEdit, RuleRefusal> {
    if let refusal = refuseOtherDomains(node) ?? refuseOldIR(analysis) { return .failure(refusal) }
    guard let version = analysis.opsetVersion(of: node), version >= 10 else {
        return .failure(RuleRefusal("the parameters are attributes before opset 10"))
    }
    guard let middle = node.input(0), let inner = middle.producer, inner.opType == "Slice", inner.isDefaultDomain,
          let x = inner.input(0) else {
        return .failure(RuleRefusal("the input is not made by a Slice"))
    }
    guard let rank = analysis.inference.facts(of: x).shape?.count else { return .failure(RuleRefusal("the rank of the input is not known")) }
    guard let first = sliceParameters(inner, rank: rank, context), let second = sliceParameters(node, rank: rank, context) else {
        return .failure(RuleRefusal("the parameters are not constants, or not valid"))
    }
    guard Set(first.axes).isDisjoint(with: second.axes) else { return .failure(RuleRefusal("both slice the same axis")) }
    return .success(.rewireInputs([
        (position: 0, input: .value(x)),
        (position: 1, input: int64Input(first.starts + second.starts, role: "starts")),
        (position: 2, input: int64Input(first.ends + second.ends, role: "ends")),
        (position: 3, input: int64Input((first.axes + second.axes).map(Int64.init), role: "axes")),
        (position: 4, input: int64Input(first.steps + second.steps, role: "steps")),
    ]))
}

/// A Slice's constant starts, ends, axes (normalized, distinct) and steps (1 when absent), for
/// an input of `rank`; nil when one is not a constant or they are not valid.
func sliceParameters(_ node: Node, rank: Int, _ context: RewriteContext)
    -> (starts: [Int64], ends: [Int64], axes: [Int], steps: [Int64])? {
    // nil: not a constant; .some(nil): absent (optional inputs take their defaults).
    func ints(_ index: Int) -> [Int64]?? {
        guard node.input(index) != nil else { return .some(nil) }
        return constantInts(node.input(index), context).map { .some($0) }
    }
    guard let s = ints(1), let starts = s, let e = ints(2), let ends = e, let a = ints(3), let st = ints(4) else { return nil }
    return normalizedSlice(starts: starts, ends: ends, axes: a, steps: st, rank: rank)
}

/// Slice parameters with their defaults filled in (axes 0..<n, steps 1) and the axes
/// normalized for `rank`; nil when their lengths differ, an axis is out of range or repeated,
/// or a step is 0.
func normalizedSlice(starts: [Int64], ends: [Int64], axes: [Int64]?, steps: [Int64]?, rank: Int)
    -> (starts: [Int64], ends: [Int64], axes: [Int], steps: [Int64])? {
    let axisList = axes ?? (0..<starts.count).map(Int64.init)
    let steps = steps ?? Array(repeating: 1, count: starts.count)
    guard ends.count == starts.count, axisList.count == starts.count, steps.count == starts.count, !steps.contains(0) else {
        return nil
    }
    var normalized: [Int] = []
    for axis in axisList {
        guard let resolved = try? normalizeAxis(axis, rank: rank), !normalized.contains(resolved) else { return nil }
        normalized.append(resolved)
    }
    return (starts, ends, normalized, steps)
}

// MARK: remove-noop-pad

/// A Pad whose pads are all 0 (constant or known from inference) changes nothing, whatever
/// its mode.
func removeNoopPad(_ node: Node, _ analysis: OperatorAnalysis, _ context: RewriteContext) -> Result<NativeEdit, RuleRefusal> {
    if let refusal = refuseOtherDomains(node) { return .failure(refusal) }
    guard let version = analysis.opsetVersion(of: node) else { return .failure(RuleRefusal("not a standard Pad")) }
    let pads: [Int64]?
    if version < 11 {
        pads = try? OperatorContext(node: node, opsetVersion: version).ints(version < 2 ? "paddings" : "pads")
    } else if let value = node.input(1) {
        let facts = analysis.inference.facts(of: value)
        pads = (facts.constant.flatMap { try? $0.int64Values() }) ?? facts.staticShapeValue
    } else {
        pads = nil
    }
    guard let pads, pads.allSatisfy({ $0 == 0 }) else { return .failure(RuleRefusal("the pads are not known to be all 0")) }
    return forwardInput(node, analysis)
}

// MARK: merge-reshapes

/// A Reshape to a shape that does not depend on its input's dimensions (a constant without 0
/// entries, or any shape with allowzero) reads through a Reshape, Flatten, Squeeze or
/// Unsqueeze before it, or a Transpose that moves only dimensions of size 1: none of them
/// changes the order of the elements, so the outer Reshape gives the same from their input.
/// The inner node stays while something else reads it.
func mergeReshapes(_ node: Node, _ analysis: OperatorAnalysis, _ context: RewriteContext) -> Result<NativeEdit, RuleRefusal> {
    if let refusal = refuseOtherDomains(node) { return .failure(refusal) }
    guard let version = analysis.opsetVersion(of: node), version >= 5 else {
        return .failure(RuleRefusal("the target shape is an attribute before opset 5"))
    }
    guard node.inputs.count == 2, let middle = node.inputs[0], let target = node.inputs[1],
          let inner = middle.producer, inner.isDefaultDomain, let x = inner.input(0) else {
        return .failure(RuleRefusal("the input is not made by a node"))
    }
    guard let allowZero = try? OperatorContext(node: node, opsetVersion: version).reshapeAllowsZero() else {
        return .failure(RuleRefusal("the allowzero attribute is not an integer"))
    }
    if !allowZero {
        guard let entries = constantInts(target, context), !entries.contains(0) else {
            return .failure(RuleRefusal("the target shape may copy a dimension of the input (0), or is not a constant"))
        }
    }
    switch inner.opType {
    case "Reshape", "Flatten", "Squeeze", "Unsqueeze":
        break
    case "Transpose":
        guard let shape = analysis.inference.facts(of: x).shape,
              let version = analysis.opsetVersion(of: inner),
              case let perm = (try? OperatorContext(node: inner, opsetVersion: version).ints("perm")) ?? nil,
              case let order = perm ?? (0..<Int64(shape.count)).reversed(), order.count == shape.count else {
            return .failure(RuleRefusal("the Transpose's input rank or permutation is not known"))
        }
        let moved = order.map(Int.init).filter { $0 >= 0 && $0 < shape.count && shape[$0] != .value(1) }
        guard moved == moved.sorted() else { return .failure(RuleRefusal("the Transpose reorders dimensions larger than 1")) }
    default:
        return .failure(RuleRefusal("the input is made by \(inner.opType), which may reorder elements"))
    }
    return .success(.rewireInputs([(position: 0, input: .value(x))]))
}
