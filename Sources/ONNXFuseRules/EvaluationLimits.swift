/// The limits on what evaluating a rule's `where`, `compute` and attribute expressions may ask
/// for: a rule file comes from anywhere. Each is checked before the work or the allocation.
///
/// The limits in force are `current`, a task-local value: bind other ones around a run with
/// `EvaluationLimits.$current.withValue(limits) { ... }` (`optimize` does so with
/// `OptimizationOptions.evaluationLimits`). Nothing process-wide changes.
public struct EvaluationLimits: Sendable, Equatable {
    /// The most elements any one value may have (64 Mi, 512 MiB of float64).
    public var maximumElements = 1 << 26
    /// The most multiply-adds one `matmul` may do.
    public var maximumMatmulWork = 1 << 30
    /// The longest list `ones`, `zeros` and `range` make.
    public var maximumListLength = 1 << 20
    /// The most work one application of a rule (its guards, computations and attributes for
    /// one match) may do, counted as the elements of every intermediate result plus one per
    /// expression evaluated: 2^28 is a few seconds of evaluation at most.
    public var maximumWorkPerApplication = 1 << 28

    /// The defaults.
    public init() {}

    /// The limits in force for the current task (the defaults unless bound).
    @TaskLocal public static var current = EvaluationLimits()
}
