import ONNXFuseIR

extension OperatorRegistry {
    /// Registers the kernels and inference functions of this family: shape computation and data
    /// movement (Shape, Reshape, Slice, Gather, Concat, Pad, ...), see `ShapeKit`.
    mutating func registerShapeOperators() {
        ShapeKit.registerBasic(&self)
        ShapeKit.registerLayout(&self)
        ShapeKit.registerIndexing(&self)
        ShapeKit.registerResize(&self)
    }
}
