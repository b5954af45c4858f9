/// Why a `compute` or `where` expression could not be evaluated: a type or shape mismatch, a
/// value that does not fit the element type it must be stored as, an unknown function.
public struct EvaluationError: Error, Equatable, CustomStringConvertible {
    /// What went wrong, as one sentence fragment without location (the caller adds where).
    public var message: String

    /// An error.
    public init(_ message: String) {
        self.message = message
    }

    /// The message.
    public var description: String { message }
}
