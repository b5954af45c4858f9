/// What an operator-aware pass (shape inference) found out about a value. The IR only holds
/// these facts; it never computes them, and the saver writes them only when asked.
public struct InferredFacts: Equatable, Sendable {
    /// The element type of a tensor value, when known.
    public var elementType: DataType?
    /// The shape; nil when even the rank is unknown. Unknown dimensions are symbols too
    /// (fresh ones), so two dimensions with the same symbol are known to be equal.
    public var shape: [Dimension]?
    /// For an integer tensor of rank 0 or 1 that holds (part of) a shape: its elements, each a
    /// number or a symbol (`Shape(x)` of an `[N, 3]` value is `[N, 3]`).
    public var shapeValue: [Dimension]?

    /// Facts.
    public init(elementType: DataType? = nil, shape: [Dimension]? = nil, shapeValue: [Dimension]? = nil) {
        self.elementType = elementType
        self.shape = shape
        self.shapeValue = shapeValue
    }
}
