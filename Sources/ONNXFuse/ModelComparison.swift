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

/// Runs `original` and `rewritten` with the reference kernels on the same seeded inputs (made
/// from the original's graph inputs, their inferred types and shapes) and compares their graph
/// outputs, position by position, with `NumericTolerance`.
public func compareModels(_ original: Model, _ rewritten: Model, seed: UInt64 = 1) -> ModelComparison {
    let inference = ShapeInference(model: original)
    inference.run()
    guard original.graph.outputs.count == rewritten.graph.outputs.count else {
        return ModelComparison(outcome: .differ(output: original.graph.outputs.first?.value.name ?? "", error: .infinity,
                                                reason: "the models have \(original.graph.outputs.count) and \(rewritten.graph.outputs.count) graph outputs"),
                               errors: [], symbolSizes: [:])
    }
    // The first failure is reported: at the smallest sizes it is the model's own (a missing
    // kernel); at larger ones a model may fail only for the size (positions past a table).
    var failure: String?
    for smallest in comparisonSymbolSizes {
        var seeded = SeededInputs(seed: seed, smallestSymbolSize: smallest)
        var inputs: [String: TensorValue] = [:]
        for input in original.graph.inputs where input.initializer == nil {
            let facts = inference.facts(of: input)
            guard let type = facts.elementType, let tensor = seeded.tensor(type, shape: facts.shape) else {
                return ModelComparison(outcome: .notRun(reason: "no seeded value can be made for graph input '\(input.name)'"),
                                       errors: [], symbolSizes: seeded.symbolSizes)
            }
            inputs[input.name] = tensor
        }
        let expected: [TensorValue]
        do {
            expected = try GraphEvaluator(model: original).run(original.graph, inputs: inputs)
        } catch {
            failure = failure ?? "\(error)"
            // Larger sizes only help when some dimension is symbolic.
            if seeded.symbolSizes.isEmpty { break }
            continue
        }
        let names = original.graph.outputs.map(\.value.name)
        let actual: [TensorValue]
        do {
            actual = try GraphEvaluator(model: rewritten).run(rewritten.graph, inputs: inputs)
        } catch {
            return ModelComparison(outcome: .differ(output: names.first ?? "", error: .infinity,
                                                    reason: "the rewritten model fails where the original runs: \(error)"),
                                   errors: [], symbolSizes: seeded.symbolSizes)
        }
        let errors = zip(names, zip(actual, expected)).map { name, pair in
            (output: name, error: NumericTolerance.error(of: pair.0, against: pair.1))
        }
        for ((name, error), reference) in zip(errors, expected) where !(error <= NumericTolerance.relative(for: reference.dataType)) {
            return ModelComparison(outcome: .differ(output: name, error: error, reason: nil), errors: errors, symbolSizes: seeded.symbolSizes)
        }
        return ModelComparison(outcome: .agree, errors: errors, symbolSizes: seeded.symbolSizes)
    }
    return ModelComparison(outcome: .notRun(reason: failure ?? "no sizes were tried"), errors: [], symbolSizes: [:])
}
