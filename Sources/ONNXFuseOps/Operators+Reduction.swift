import ONNXFuseIR

extension OperatorRegistry {
    /// Registers the kernels and inference functions of this family: the Reduce* operators,
    /// ArgMax/ArgMin, Softmax/LogSoftmax/Hardmax and CumSum (see the `Reduction*.swift` files).
    mutating func registerReductionOperators() {
        let reductions = ReductionKit.axesInputVersion.keys.sorted()
        register(reductions, kernel: ReductionKit.reduceKernel)
        register(reductions, inference: ReductionKit.reduceInference)
        register(["ArgMax", "ArgMin"], kernel: ReductionKit.argKernel)
        register(["ArgMax", "ArgMin"], inference: ReductionKit.argInference)
        register(["Softmax", "LogSoftmax", "Hardmax"], kernel: ReductionKit.softmaxKernel)
        register(["CumSum"], kernel: ReductionKit.cumSumKernel)
        register(["Softmax", "LogSoftmax", "Hardmax", "CumSum"], inference: ElementwiseKit.sameAsInput)
    }
}
