import ONNXFuseIR

/// The limits on what evaluating a rule's `where`, `compute` and attribute expressions may ask
/// for: a rule file comes from anywhere. Each is checked before the work or the allocation.
///
/// The limits in force are `current`, a task-local value: bind other ones around a run with
/// `EvaluationLimits.$current.withValue(limits) { ... }` (`optimize` does so with
/// `OptimizationOptions.evaluationLimits`). Nothing process-wide changes.
public struct EvaluationLimits: Sendable, Equatable {
    /// The most elements any one value may have (32 Mi, 256 MiB of float64).
    public var maximumElements = 1 << 25
    /// The most multiply-adds of all the `matmul`s of one application of a rule (its guards,
    /// computations and attributes for one match): about a second of work.
    public var maximumMatmulWork = 1 << 30
    /// The longest list `ones`, `zeros` and `range` make, and the longest tensor read as a list
    /// (`slice`, `permute`).
    public var maximumListLength = 1 << 20
    /// The most elements one application of a rule may create in total: the results of every
    /// operation and function call, plus one per expression evaluated (a name or a literal
    /// costs one; the model's constants themselves are not counted). 64 Mi elements are
    /// 512 MiB of float64 if all were kept at once, and a second or so of evaluation: with the
    /// one value made past the limit, a rule stays under a gigabyte and a few seconds.
    public var maximumWorkPerApplication = 1 << 26

    /// Computed tensors of at least this many bytes are not kept once the rewrite has checked
    /// them: they are computed again when the model is written (or first read), one at a time,
    /// so that a model's folded weights are never all in memory at once. Not a limit on rules.
    public var minimumDeferredBytes = 1 << 16

    /// The longest chain of deferred tensors: one computed from a deferred tensor (folds in a
    /// chain, each reading the weight the last one made) computes that one again each time it
    /// is made, so past this depth a computed tensor is kept instead. A rule that keeps
    /// rewriting one weight would otherwise make its n-th weight in n steps, n² in all.
    public var maximumDeferredDepth = 4

    /// The defaults.
    public init() {}

    /// The limits in force for the current task (the defaults unless bound).
    @TaskLocal public static var current = EvaluationLimits()
}
