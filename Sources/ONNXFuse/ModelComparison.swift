import ONNXFuseIR
import ONNXFuseOps

/// What running two models with the reference kernels on the same seeded inputs found (the
/// whole-model check of `--verify=model`).
public struct ModelComparison: Sendable {
    /// The verdict.
    public enum Outcome: Equatable, Sendable {
        /// Every graph output is within the tolerance of its type.
        case agree
        /// A graph output is beyond tolerance (or the rewritten model failed where the original
        /// ran: `reason` says so and the error is infinite).
        case differ(output: String, error: Double, reason: String?)
        /// The original could not be run (an operator without a kernel, a subgraph, an input
        /// that cannot be made): nothing is known, which is never reported as agreeing.
        case notRun(reason: String)
    }

    /// The verdict.
    public let outcome: Outcome
    /// Per graph output of the original, by name: the error of the rewritten model's output
    /// relative to the original's magnitude (empty unless both models ran).
    public let errors: [(output: String, error: Double)]
    /// The sizes the symbolic dimensions of the inputs took.
    public let symbolSizes: [String: Int]
}

/// The smallest sizes symbolic dimensions are tried with, in turn, until the original model
/// runs: small sizes keep the check fast, but a CNN's stem needs an image larger than its kernel.
let comparisonSymbolSizes = [2, 8, 32, 224]

/// A model run with the reference kernels on seeded inputs (`evaluateModel`).
public struct ModelEvaluation: Sendable {
    /// The graph inputs given (those without an initializer), in order, by name.
    public let inputs: [(name: String, value: TensorValue)]
    /// The graph outputs, in order, by name.
    public let outputs: [(name: String, value: TensorValue)]
    /// The sizes the symbolic dimensions of the inputs took.
    public let symbolSizes: [String: Int]
    /// Per output, the largest magnitude among the floating-point operands of the node that
    /// computes it (`GraphEvaluator.runMeasuring`).
    public let operandMagnitudes: [Double]
}

/// Why a model could not be run with the reference kernels.
public struct EvaluationFailure: Error, Sendable, CustomStringConvertible {
    /// The first failure: at the smallest sizes, the model's own (a missing kernel).
    public let description: String
}

/// Runs `model` with the reference kernels on seeded inputs made from its graph inputs (their
/// inferred types and shapes; integers that index a table stay inside it): what `--verify=model`
/// compares. Symbolic dimensions take the sizes of `comparisonSymbolSizes` in turn until the
/// model runs (a CNN's stem needs an image larger than its kernel).
/// `limits` bound each value (`maximumElements`) and the run's work (`maximumModelWork`).
public func evaluateModel(_ model: Model, seed: UInt64 = 1, limits: VerificationLimits = VerificationLimits()) throws(EvaluationFailure) -> ModelEvaluation {
    let inference = ShapeInference(model: model)
    inference.run()
    // The first failure is reported: at the smallest sizes it is the model's own (a missing
    // kernel); at larger ones a model may fail only for the size (positions past a table).
    var failure: String?
    for smallest in comparisonSymbolSizes {
        var seeded = SeededInputs(seed: seed, smallestSymbolSize: smallest)
        var inputs: [(name: String, value: TensorValue)] = []
        for input in model.graph.inputs where input.initializer == nil {
            let facts = inference.facts(of: input)
            let bound = indexBound(of: input, readers: input.useList.map(\.node), facts: inference.facts(of:))
            guard let type = facts.elementType, let tensor = seeded.tensor(type, shape: facts.shape, integerBound: bound) else {
                throw EvaluationFailure(description: "no seeded value can be made for graph input '\(input.name)'")
            }
            inputs.append((input.name, tensor))
        }
        guard inputs.allSatisfy({ $0.value.count <= limits.maximumElements }) else {
            throw EvaluationFailure(description: "a graph input would have more than \(limits.maximumElements) elements")
        }
        do {
            let run = try evaluator(for: model, limits: limits).runMeasuring(model.graph, inputs: Dictionary(inputs, uniquingKeysWith: { a, _ in a }))
            return ModelEvaluation(inputs: inputs, outputs: Array(zip(model.graph.outputs.map(\.value.name), run.outputs)),
                                   symbolSizes: seeded.symbolSizes, operandMagnitudes: run.operandMagnitudes)
        } catch {
            failure = failure ?? "\(error)"
            // Larger sizes only help when some dimension is symbolic.
            if seeded.symbolSizes.isEmpty { break }
        }
    }
    throw EvaluationFailure(description: failure ?? "no sizes were tried")
}

/// Runs `original` and `rewritten` with the reference kernels on the same seeded inputs (made
/// from the original's graph inputs, as `evaluateModel` does) and compares their graph
/// outputs, position by position, with `NumericTolerance`.
public func compareModels(_ original: Model, _ rewritten: Model, seed: UInt64 = 1,
                          limits: VerificationLimits = VerificationLimits()) -> ModelComparison {
    guard original.graph.outputs.count == rewritten.graph.outputs.count else {
        return ModelComparison(outcome: .differ(output: original.graph.outputs.first?.value.name ?? "", error: .infinity,
                                                reason: "the models have \(original.graph.outputs.count) and \(rewritten.graph.outputs.count) graph outputs"),
                               errors: [], symbolSizes: [:])
    }
    let expected: ModelEvaluation
    do {
        expected = try evaluateModel(original, seed: seed, limits: limits)
    } catch {
        return ModelComparison(outcome: .notRun(reason: error.description), errors: [], symbolSizes: [:])
    }
    let names = expected.outputs.map(\.name)
    let actual: [TensorValue]
    do {
        actual = try evaluator(for: rewritten, limits: limits).run(rewritten.graph, inputs: Dictionary(expected.inputs, uniquingKeysWith: { a, _ in a }))
    } catch {
        return ModelComparison(outcome: .differ(output: names.first ?? "", error: .infinity,
                                                reason: "the rewritten model fails where the original runs: \(error)"),
                               errors: [], symbolSizes: expected.symbolSizes)
    }
    // Relative to the output's magnitude, or to that of what its last operation read when that
    // is larger: a BatchNormalization that cancels a Conv's bias against its mean rounds at the
    // Conv's magnitude, and an output of exactly 0 has none of its own.
    let errors = names.indices.map { index in
        (output: names[index], error: NumericTolerance.error(of: actual[index], against: expected.outputs[index].value,
                                                              magnitude: expected.operandMagnitudes[index]))
    }
    for ((name, error), reference) in zip(errors, expected.outputs) where !(error <= NumericTolerance.relative(for: reference.value.dataType)) {
        return ModelComparison(outcome: .differ(output: name, error: error, reason: nil), errors: errors, symbolSizes: expected.symbolSizes)
    }
    return ModelComparison(outcome: .agree, errors: errors, symbolSizes: expected.symbolSizes)
}

/// An evaluator for a whole run of `model` within `limits`.
func evaluator(for model: Model, limits: VerificationLimits) -> GraphEvaluator {
    var evaluator = GraphEvaluator(model: model)
    evaluator.elementLimit = limits.maximumElements
    evaluator.workLimit = limits.maximumModelWork
    return evaluator
}

/// For an integer value that `readers` use as indices into a table (Gather, GatherElements):
/// the size of the smallest axis it indexes, so that seeded indices stay inside the table (token
/// ids take the whole vocabulary, token types its two rows); nil when it indexes none.
func indexBound(of value: Value, readers: [Node], facts: (Value) -> ValueFacts) -> Int? {
    var bound: Int?
    for node in readers where node.isDefaultDomain && ["Gather", "GatherElements"].contains(node.opType) {
        guard node.input(1) === value, let data = node.input(0), let shape = facts(data).shape, !shape.isEmpty else { continue }
        var axis = Int(node.attribute("axis")?.int ?? 0)
        if axis < 0 { axis += shape.count }
        guard axis >= 0, axis < shape.count, case .value(let size) = shape[axis], size > 0 else { continue }
        bound = min(bound ?? Int.max, Int(clamping: size))
    }
    return bound
}
