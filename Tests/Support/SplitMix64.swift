import ONNXFuseOps

/// A small deterministic random generator, so that a failing seed can be replayed (the one
/// `SeededInputs` uses).
public typealias SplitMix64 = SeededRandom
