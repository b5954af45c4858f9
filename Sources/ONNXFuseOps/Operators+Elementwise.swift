import ONNXFuseIR

extension OperatorRegistry {
    /// Registers the kernels and inference functions of this family: binary arithmetic with
    /// broadcasting, bit operations, unary math and activations, comparisons and logic, Where,
    /// the variadic Min/Max/Sum/Mean, Clip, Shrink, Cast and CastLike (see the
    /// `Elementwise*.swift` files).
    mutating func registerElementwiseOperators() {
        typealias Kit = ElementwiseKit

        // Binary arithmetic.
        register(["Add"], kernel: Kit.arithmeticKernel(Kit.add))
        register(["Add"], inference: Kit.binaryInference(shapeValue: Kit.addShapeValue))
        register(["Sub"], kernel: Kit.arithmeticKernel(Kit.sub))
        register(["Sub"], inference: Kit.binaryInference(shapeValue: Kit.subShapeValue, keepsSign: false))
        register(["Mul"], kernel: Kit.arithmeticKernel(Kit.mul))
        register(["Mul"], inference: Kit.binaryInference(shapeValue: Kit.mulShapeValue))
        register(["Div"], kernel: Kit.arithmeticKernel(Kit.div))
        register(["Div"], inference: Kit.binaryInference(shapeValue: Kit.divShapeValue))
        register(["Mod"], kernel: Kit.modKernel())
        register(["Pow"], kernel: Kit.powKernel)
        register(["BitShift"], kernel: Kit.bitShiftKernel)
        register(["BitwiseAnd"], kernel: Kit.arithmeticKernel(Kit.bitwiseAnd))
        register(["BitwiseOr"], kernel: Kit.arithmeticKernel(Kit.bitwiseOr))
        register(["BitwiseXor"], kernel: Kit.arithmeticKernel(Kit.bitwiseXor))
        register(["Mod", "Pow", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor"], inference: Kit.binaryInference())
        register(["PRelu"], kernel: Kit.preluKernel)

        // Unary.
        for (opType, operation) in Kit.unaryOperators {
            register([opType], kernel: Kit.unaryKernel(operation))
        }
        register(Kit.unaryOperators.keys.filter { $0 != "Neg" }.sorted(), inference: Kit.sameAsInput)
        register(["Neg"], inference: Kit.negInference)
        register(["Not"], kernel: Kit.notKernel)
        register(["IsNaN"], kernel: Kit.isNaNKernel)
        register(["IsInf"], kernel: Kit.isInfKernel)
        register(["Not", "IsNaN", "IsInf"], inference: Kit.boolOfInputShape)
        register(["Clip"], kernel: Kit.clipKernel)
        register(["Shrink"], kernel: Kit.shrinkKernel)
        register(["Clip", "Shrink", "PRelu"], inference: Kit.sameAsInput)

        // Variadic.
        register(["Max"], kernel: Kit.variadicKernel(Kit.variadicMax))
        register(["Max"], inference: Kit.variadicInference(shapeValue: Kit.maxShapeValue))
        register(["Min"], kernel: Kit.variadicKernel(Kit.variadicMin))
        register(["Min"], inference: Kit.variadicInference(shapeValue: Kit.minShapeValue))
        register(["Sum"], kernel: Kit.variadicKernel(Kit.variadicSum))
        register(["Mean"], kernel: Kit.variadicKernel(Kit.variadicMean))
        register(["Sum", "Mean"], inference: Kit.variadicInference())

        // Comparisons and logic.
        register(["Equal"], kernel: Kit.comparisonKernel(Kit.equal))
        register(["Equal"], inference: Kit.binaryInference(boolOutput: true, shapeValue: Kit.equalShapeValue))
        register(["Less"], kernel: Kit.comparisonKernel(Kit.less))
        register(["LessOrEqual"], kernel: Kit.comparisonKernel(Kit.lessOrEqual))
        register(["Greater"], kernel: Kit.comparisonKernel(Kit.greater))
        register(["GreaterOrEqual"], kernel: Kit.comparisonKernel(Kit.greaterOrEqual))
        register(["And"], kernel: Kit.logicKernel { $0 && $1 })
        register(["Or"], kernel: Kit.logicKernel { $0 || $1 })
        register(["Xor"], kernel: Kit.logicKernel { $0 != $1 })
        register(["Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor"],
                 inference: Kit.binaryInference(boolOutput: true))
        register(["Where"], kernel: Kit.whereKernel)
        register(["Where"], inference: Kit.whereInference)

        // Casts.
        register(["Cast"], kernel: Kit.castKernel)
        register(["Cast"], inference: Kit.castInference)
        register(["CastLike"], kernel: Kit.castLikeKernel)
        register(["CastLike"], inference: Kit.castLikeInference)
    }
}
