/// Why a `compute` or `where` expression could not be evaluated: a type or shape mismatch, a
/// value that does not fit the element type it must be stored as, an unknown function.
public struct EvaluationError: Error, Equatable, CustomStringConvertible {
    /// What went wrong, as one sentence fragment without location (the caller adds where).
    public var message: String
    /// The expression asked for more than a limit of the language allows (elements, rank,
    /// work): an error of the rule file, not a reason for the rule not to fire here.
    public var exceedsLimit = false

    /// An error.
    public init(_ message: String) {
        self.message = message
    }

    /// An error for a limit of the language exceeded.
    public static func limit(_ message: String) -> EvaluationError {
        var error = EvaluationError(message)
        error.exceedsLimit = true
        return error
    }

    /// The message.
    public var description: String { message }
}
