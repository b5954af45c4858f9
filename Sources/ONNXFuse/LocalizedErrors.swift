import Foundation

/// An error of the library: its `description` is the one-line message the command prints after
/// `onnx-fuse: error: `, and `localizedDescription` gives the same message (Foundation's
/// default for a Swift error is "The operation could not be completed. (… error 2.)").
public protocol ONNXFuseError: LocalizedError, CustomStringConvertible {}

extension ONNXFuseError {
    /// The one-line message.
    public var errorDescription: String? { description }
}

extension ModelFileError: ONNXFuseError {}
extension IRInvariantError: ONNXFuseError {}
extension GraphEditError: ONNXFuseError {}
extension OperatorError: ONNXFuseError {}
extension EvaluationError: ONNXFuseError {}
extension RuleError: ONNXFuseError {}
extension RuleErrors: ONNXFuseError {}
extension PatternError: ONNXFuseError {}
extension RuleRefusal: ONNXFuseError {}
extension EvaluationFailure: ONNXFuseError {}
extension InputShapeError: ONNXFuseError {}
