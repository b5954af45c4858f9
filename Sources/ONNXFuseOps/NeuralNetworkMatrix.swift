import ONNXFuseIR

// MatMul, Gemm, MatMulInteger, Einsum (kernels and inference) and QLinearMatMul (inference; its
// kernel is in NeuralNetworkQuantization.swift).

extension NeuralNetworkKit {
    /// Registers this file's operators in `registry`.
    static func registerMatrixOperators(_ registry: inout OperatorRegistry) {
        registry.register(["MatMul"], kernel: matMulKernel)
        registry.register(["MatMul"], inference: matMulInference)
        registry.register(["Gemm"], kernel: gemmKernel)
        registry.register(["Gemm"], inference: gemmInference)
        registry.register(["MatMulInteger"], kernel: matMulIntegerKernel)
        registry.register(["MatMulInteger"], inference: matMulIntegerInference)
        registry.register(["QLinearMatMul"], inference: qLinearMatMulInference)
        registry.register(["Einsum"], kernel: einsumKernel)
        registry.register(["Einsum"], inference: einsumInference)
    }

    // MARK: - Element arithmetic

    /// The element types the matrix kernels accumulate in: `Double` for floating-point types
    /// (rounded once at the end), wrapping `Int64` and `UInt64` for integers.
    protocol AccumulatingElement {
        /// Zero.
        static var zero: Self { get }
        /// `accumulator + a * b`, wrapping for integers.
        static func multiplyAdd(_ accumulator: Self, _ a: Self, _ b: Self) -> Self
        /// `a * b`, wrapping for integers.
        static func multiply(_ a: Self, _ b: Self) -> Self
    }




    // MARK: - MatMul

    /// How a (batched, numpy-style) matrix product walks its operands.
    struct MatMulPlan {
        /// Rows of each product.
        var m: Int
        /// The contracted length.
        var k: Int
        /// Columns of each product.
        var n: Int
        /// For each broadcast batch entry, the offset of its matrix in A and in B.
        var aOffsets: [Int]
        var bOffsets: [Int]
        /// The output shape (1-D operands' dimensions removed).
        var outputShape: [Int]

        init(_ aShape: [Int], _ bShape: [Int], _ context: OperatorContext) throws(OperatorError) {
            guard !aShape.isEmpty, !bShape.isEmpty else {
                throw OperatorError("\(context.opType): operands must have rank 1 or more, got \(aShape) and \(bShape)")
            }
            let a2 = aShape.count == 1 ? [1, aShape[0]] : aShape
            let b2 = bShape.count == 1 ? [bShape[0], 1] : bShape
            m = a2[a2.count - 2]
            k = a2[a2.count - 1]
            n = b2[b2.count - 1]
            guard b2[b2.count - 2] == k else {
                throw OperatorError("\(context.opType): shapes \(aShape) and \(bShape) do not multiply")
            }
            let aBatch = Array(a2.dropLast(2)), bBatch = Array(b2.dropLast(2))
            let batch = try broadcastShapes(aBatch, bBatch)
            var shape = batch
            if aShape.count > 1 { shape.append(m) }
            if bShape.count > 1 { shape.append(n) }
            outputShape = shape
            _ = try checkElementCount(shape, context)
            _ = try checkElementCount(batch + [m, n], context)
            try checkWork(batch + [m, n, k], context)
            let mk = m * k, kn = k * n
            aOffsets = broadcastIndices(from: aBatch, to: batch).map { $0 * mk }
            bOffsets = broadcastIndices(from: bBatch, to: batch).map { $0 * kn }
        }

        /// The products, row-major, batch after batch.
        func run<T: AccumulatingElement>(_ a: [T], _ b: [T]) -> [T] {
            let (m, k, n) = (self.m, self.k, self.n)
            var out = [T](repeating: .zero, count: aOffsets.count * m * n)
            guard m > 0, n > 0 else { return out }
            a.withUnsafeBufferPointer { a in
                b.withUnsafeBufferPointer { b in
                    out.withUnsafeMutableBufferPointer { out in
                        for batch in 0..<aOffsets.count {
                            let aBase = aOffsets[batch], bBase = bOffsets[batch], oBase = batch * m * n
                            for i in 0..<m {
                                let row = oBase + i * n
                                for p in 0..<k {
                                    let av = a[aBase + i * k + p]
                                    let bRow = bBase + p * n
                                    for j in 0..<n {
                                        out[row + j] = T.multiplyAdd(out[row + j], av, b[bRow + j])
                                    }
                                }
                            }
                        }
                    }
                }
            }
            return out
        }
    }

    static let matMulKernel: Kernel = { context, inputs throws(OperatorError) in
        let a = try requiredInput(inputs, 0, context), b = try requiredInput(inputs, 1, context)
        guard a.dataType == b.dataType else {
            throw OperatorError("MatMul: operand types \(a.dataType) and \(b.dataType) differ")
        }
        let plan = try MatMulPlan(a.shape, b.shape, context)
        switch (a.elements, b.elements) {
        case (.reals(let x), .reals(let y)):
            return [TensorValue(a.dataType, shape: plan.outputShape, reals: plan.run(x, y))]
        case (.integers(let x), .integers(let y)):
            return [TensorValue(a.dataType, shape: plan.outputShape, integers: plan.run(x, y))]
        case (.unsigned(let x), .unsigned(let y)):
            return [TensorValue(a.dataType, shape: plan.outputShape, .unsigned(plan.run(x, y)))]
        default:
            throw OperatorError("MatMul: type \(a.dataType) is not supported")
        }
    }

    /// The shape of a numpy-style matrix product of shapes `a` and `b`; nil when a rank is unknown.
    static func matMulShape(_ a: [Dimension]?, _ b: [Dimension]?, _ context: InferenceContext) throws(OperatorError) -> [Dimension]? {
        guard let a, let b else { return nil }
        guard !a.isEmpty, !b.isEmpty else { throw OperatorError("\(context.node.opType): operands must have rank 1 or more") }
        let a2: [Dimension] = a.count == 1 ? [.value(1), a[0]] : a
        let b2: [Dimension] = b.count == 1 ? [b[0], .value(1)] : b
        if case .value(let x) = a2[a2.count - 1], case .value(let y) = b2[b2.count - 2], x != y {
            throw OperatorError("\(context.node.opType): contracted dimensions \(x) and \(y) differ")
        }
        guard var shape = try broadcastDimensions([Array(a2.dropLast(2)), Array(b2.dropLast(2))], fresh: context.freshDimension) else {
            return nil
        }
        if a.count > 1 { shape.append(a2[a2.count - 2]) }
        if b.count > 1 { shape.append(b2[b2.count - 1]) }
        return shape
    }

    static let matMulInference: InferenceFunction = { context throws(OperatorError) in
        let a = context.input(0), b = context.input(1)
        let shape = try matMulShape(a?.shape, b?.shape, context)
        context.setOutput(0, type: a?.elementType ?? b?.elementType, shape: shape)
    }

    // MARK: - Gemm

    /// `shape`'s matrix transposed into a new row-major array.
    static func transposedMatrix<T>(_ values: [T], rows: Int, columns: Int) -> [T] {
        guard rows > 0, columns > 0 else { return values }
        var result = values
        for r in 0..<rows {
            for c in 0..<columns { result[c * rows + r] = values[r * columns + c] }
        }
        return result
    }

    static let gemmKernel: Kernel = { context, inputs throws(OperatorError) in
        let a = try requiredInput(inputs, 0, context), b = try requiredInput(inputs, 1, context)
        let c = optionalInput(inputs, 2)
        guard a.rank == 2, b.rank == 2 else { throw OperatorError("Gemm: A and B must be matrices, got \(a.shape) and \(b.shape)") }
        guard a.dataType == b.dataType, c == nil || c!.dataType == a.dataType else {
            throw OperatorError("Gemm: operand types differ")
        }
        let transA = try context.int("transA", default: 0) != 0, transB = try context.int("transB", default: 0) != 0
        let alpha = try context.float("alpha", default: 1), beta = try context.float("beta", default: 1)
        let m = transA ? a.shape[1] : a.shape[0], k = transA ? a.shape[0] : a.shape[1]
        let kb = transB ? b.shape[1] : b.shape[0], n = transB ? b.shape[0] : b.shape[1]
        guard k == kb else { throw OperatorError("Gemm: shapes \(a.shape) and \(b.shape) do not multiply") }
        let plan = try MatMulPlan([m, k], [k, n], context)
        let outShape = [m, n]
        // C, broadcast to (M, N); ignored when beta is 0 (as the reference does).
        var cIndices: [Int]? = nil
        if let c, beta != 0 {
            guard c.rank <= 2, (try? broadcastShapes(c.shape, outShape)) == outShape else {
                throw OperatorError("Gemm: C of shape \(c.shape) does not broadcast to \(outShape)")
            }
            if context.opsetVersion < 7, try context.int("broadcast", default: 0) == 0, c.shape != outShape {
                throw OperatorError("Gemm: C of shape \(c.shape) needs broadcast=1")
            }
            cIndices = broadcastIndices(from: c.shape, to: outShape)
        }
        /// A' B': with transB, rows of A' dot rows of B (both contiguous, B not copied).
        func multiply<T: AccumulatingElement>(_ x: [T], _ y: [T]) -> [T] {
            let rows = transA ? transposedMatrix(x, rows: a.shape[0], columns: a.shape[1]) : x
            guard transB else { return plan.run(rows, y) }
            var out = [T](repeating: .zero, count: m * n)
            guard k > 0 else { return out }
            rows.withUnsafeBufferPointer { p in
                y.withUnsafeBufferPointer { q in
                    for i in 0..<m {
                        for j in 0..<n {
                            var sum = T.zero
                            for t in 0..<k { sum = T.multiplyAdd(sum, p[i * k + t], q[j * k + t]) }
                            out[i * n + j] = sum
                        }
                    }
                }
            }
            return out
        }
        switch (a.elements, b.elements) {
        case (.reals(let x), .reals(let y)):
            var product = multiply(x, y)
            var cValues: [Double] = []
            if cIndices != nil, let c { cValues = try realElements(c, context, "C") }
            for index in product.indices {
                var value = alpha == 1 ? product[index] : alpha * product[index]
                if let cIndices { value += beta * cValues[cIndices[index]] }
                product[index] = value
            }
            return [TensorValue(a.dataType, shape: outShape, reals: product)]
        case (.integers(let x), .integers(let y)):
            let product = multiply(x, y)
            var cValues: [Int64] = []
            if cIndices != nil, let c, case .integers(let v) = c.elements { cValues = v }
            var result = [Int64](repeating: 0, count: product.count)
            if let alphaI = Int64(exactly: alpha), let betaI = Int64(exactly: beta) {
                for index in product.indices {
                    var value = alphaI &* product[index]
                    if let cIndices { value = value &+ betaI &* cValues[cIndices[index]] }
                    result[index] = value
                }
            } else {
                // A fractional alpha or beta: computed in float64 and truncated, as numpy's astype does.
                for index in product.indices {
                    var value = alpha * Double(product[index])
                    if let cIndices { value += beta * Double(cValues[cIndices[index]]) }
                    guard let truncated = Int64(exactly: value.rounded(.towardZero)) else {
                        throw OperatorError("Gemm: result \(value) does not fit in \(a.dataType)")
                    }
                    result[index] = truncated
                }
            }
            return [TensorValue(a.dataType, shape: outShape, integers: result)]
        case (.unsigned(let x), .unsigned(let y)):
            let product = multiply(x, y)
            var cValues: [UInt64] = []
            if cIndices != nil, let c, case .unsigned(let v) = c.elements { cValues = v }
            guard let alphaU = UInt64(exactly: alpha), let betaU = UInt64(exactly: beta) else {
                throw OperatorError("Gemm: uint64 needs whole non-negative alpha and beta")
            }
            var result = [UInt64](repeating: 0, count: product.count)
            for index in product.indices {
                var value = alphaU &* product[index]
                if let cIndices { value = value &+ betaU &* cValues[cIndices[index]] }
                result[index] = value
            }
            return [TensorValue(a.dataType, shape: outShape, .unsigned(result))]
        default:
            throw OperatorError("Gemm: type \(a.dataType) is not supported")
        }
    }

    static let gemmInference: InferenceFunction = { context throws(OperatorError) in
        let a = context.input(0), b = context.input(1)
        let type = a?.elementType ?? b?.elementType
        guard let sa = a?.shape, let sb = b?.shape else {
            context.setOutput(0, type: type, shape: [context.freshDimension(), context.freshDimension()])
            return
        }
        guard sa.count == 2, sb.count == 2 else { throw OperatorError("Gemm: A and B must be matrices") }
        let transA = try context.node.int("transA", default: 0) != 0, transB = try context.node.int("transB", default: 0) != 0
        let m = transA ? sa[1] : sa[0], n = transB ? sb[0] : sb[1]
        let ka = transA ? sa[0] : sa[1], kb = transB ? sb[1] : sb[0]
        if case .value(let x) = ka, case .value(let y) = kb, x != y {
            throw OperatorError("Gemm: contracted dimensions \(x) and \(y) differ")
        }
        context.setOutput(0, type: type, shape: [m, n])
    }

    // MARK: - MatMulInteger and QLinearMatMul

    static let matMulIntegerKernel: Kernel = { context, inputs throws(OperatorError) in
        let a = try requiredInput(inputs, 0, context), b = try requiredInput(inputs, 1, context)
        guard [.int8, .uint8].contains(a.dataType), [.int8, .uint8].contains(b.dataType),
              case .integers(var x) = a.elements, case .integers(var y) = b.elements else {
            throw OperatorError("MatMulInteger: A and B must be int8 or uint8")
        }
        let plan = try MatMulPlan(a.shape, b.shape, context)
        if let zero = optionalInput(inputs, 2) {
            guard zero.dataType == a.dataType, case .integers(let z) = zero.elements else {
                throw OperatorError("MatMulInteger: a_zero_point must have A's type")
            }
            // 1-D: one zero point per row of A.
            let shape = zero.rank == 1 && zero.count != 1 && a.rank >= 2 ? [zero.count, 1] : zero.shape
            guard (try? broadcastShapes(shape, a.shape)) == a.shape else {
                throw OperatorError("MatMulInteger: a_zero_point of shape \(zero.shape) does not fit A \(a.shape)")
            }
            let indices = broadcastIndices(from: shape, to: a.shape)
            for i in x.indices { x[i] -= z[indices[i]] }
        }
        if let zero = optionalInput(inputs, 3) {
            guard zero.dataType == b.dataType, case .integers(let z) = zero.elements else {
                throw OperatorError("MatMulInteger: b_zero_point must have B's type")
            }
            guard (try? broadcastShapes(zero.shape, b.shape)) == b.shape else {
                throw OperatorError("MatMulInteger: b_zero_point of shape \(zero.shape) does not fit B \(b.shape)")
            }
            let indices = broadcastIndices(from: zero.shape, to: b.shape)
            for i in y.indices { y[i] -= z[indices[i]] }
        }
        return [TensorValue(.int32, shape: plan.outputShape, integers: plan.run(x, y))]
    }

    static let matMulIntegerInference: InferenceFunction = { context throws(OperatorError) in
        context.setOutput(0, type: .int32, shape: try matMulShape(context.input(0)?.shape, context.input(1)?.shape, context))
    }

    static let qLinearMatMulInference: InferenceFunction = { context throws(OperatorError) in
        let type = context.input(7)?.elementType ?? context.input(0)?.elementType
        context.setOutput(0, type: type, shape: try matMulShape(context.input(0)?.shape, context.input(3)?.shape, context))
    }

    // MARK: - Einsum

    /// A parsed Einsum equation: for each operand its labels, and the output's labels. A letter's
    /// label is its ASCII code; the ellipsis' dimensions are -E...-1, right-aligned so that the
    /// operands' ellipses broadcast numpy-style.
    struct EinsumEquation {
        /// Labels per operand, outermost first.
        var operands: [[Int]]
        /// The output's labels.
        var output: [Int]

        /// Parses `equation` for operands of the given ranks (nil: unknown, allowed only when the
        /// operand has no ellipsis).
        init(_ equation: String, ranks: [Int?], _ opType: String) throws(OperatorError) {
            let characters = Array(equation.filter { !$0.isWhitespace })
            // Split at "->".
            var sides: [[Character]] = [[]]
            var index = 0
            while index < characters.count {
                if characters[index] == "-", index + 1 < characters.count, characters[index + 1] == ">" {
                    sides.append([])
                    index += 2
                } else {
                    sides[sides.count - 1].append(characters[index])
                    index += 1
                }
            }
            guard sides.count <= 2 else { throw OperatorError("\(opType): equation '\(equation)' has more than one '->'") }
            let terms = sides[0].split(separator: ",", omittingEmptySubsequences: false).map { Array($0) }
            guard terms.count == ranks.count else {
                throw OperatorError("\(opType): equation '\(equation)' has \(terms.count) operands, the node \(ranks.count)")
            }
            /// The term's letters in order, nil standing for the ellipsis.
            func tokens(_ term: [Character]) throws(OperatorError) -> [Int?] {
                var result: [Int?] = []
                var i = 0
                while i < term.count {
                    if term[i] == "." {
                        guard i + 2 < term.count, term[i + 1] == ".", term[i + 2] == ".", !result.contains(where: { $0 == nil }) else {
                            throw OperatorError("\(opType): bad ellipsis in '\(equation)'")
                        }
                        result.append(nil)
                        i += 3
                    } else {
                        guard let ascii = term[i].asciiValue, term[i].isLetter else {
                            throw OperatorError("\(opType): '\(term[i])' is not a label in '\(equation)'")
                        }
                        result.append(Int(ascii))
                        i += 1
                    }
                }
                return result
            }
            func expand(_ tokens: [Int?], ellipsis: Int) -> [Int] {
                var labels: [Int] = []
                for token in tokens {
                    if let token { labels.append(token) } else { labels.append(contentsOf: (0..<ellipsis).map { $0 - ellipsis }) }
                }
                return labels
            }
            var operands: [[Int]] = []
            var ellipsisRank = 0
            for (term, rank) in zip(terms, ranks) {
                let parsed = try tokens(term)
                let explicit = parsed.filter { $0 != nil }.count
                if parsed.count == explicit {
                    if let rank, rank != explicit {
                        throw OperatorError("\(opType): term '\(String(term))' has \(explicit) labels for rank \(rank)")
                    }
                    operands.append(expand(parsed, ellipsis: 0))
                } else {
                    guard let rank else { throw OperatorError("\(opType): rank unknown for term '\(String(term))'") }
                    guard rank >= explicit else {
                        throw OperatorError("\(opType): term '\(String(term))' has too many labels for rank \(rank)")
                    }
                    operands.append(expand(parsed, ellipsis: rank - explicit))
                    ellipsisRank = max(ellipsisRank, rank - explicit)
                }
            }
            self.operands = operands
            if sides.count == 2 {
                let labels = expand(try tokens(sides[1]), ellipsis: ellipsisRank)
                guard Set(labels).count == labels.count else {
                    throw OperatorError("\(opType): output '\(String(sides[1]))' repeats a label")
                }
                let inputLabels = Set(operands.joined())
                guard labels.allSatisfy({ $0 < 0 || inputLabels.contains($0) }) else {
                    throw OperatorError("\(opType): an output label of '\(equation)' is in no operand")
                }
                output = labels
            } else {
                // Implicit output: the ellipsis, then the letters used once, in alphabetical order.
                var counts: [Int: Int] = [:]
                for label in operands.joined() where label > 0 { counts[label, default: 0] += 1 }
                output = (0..<ellipsisRank).map { $0 - ellipsisRank } + counts.filter { $0.value == 1 }.keys.sorted()
            }
        }
    }

    static let einsumKernel: Kernel = { context, inputs throws(OperatorError) in
        guard let equationText = try context.string("equation") else { throw OperatorError("Einsum: equation is required") }
        var operands: [TensorValue] = []
        for index in inputs.indices { operands.append(try requiredInput(inputs, index, context)) }
        guard let first = operands.first else { throw OperatorError("Einsum: no operands") }
        guard operands.allSatisfy({ $0.dataType == first.dataType }) else { throw OperatorError("Einsum: operand types differ") }
        let equation = try EinsumEquation(equationText, ranks: operands.map { Optional($0.rank) }, "Einsum")
        // Sizes of every label; ellipsis dimensions broadcast.
        var sizes: [Int: Int] = [:]
        for (operand, labels) in zip(operands, equation.operands) {
            for (dim, label) in zip(operand.shape, labels) {
                if let known = sizes[label], known != dim {
                    if label < 0 && (known == 1 || dim == 1) { sizes[label] = max(known, dim); continue }
                    throw OperatorError("Einsum: label sizes \(known) and \(dim) conflict")
                }
                sizes[label] = dim
            }
        }
        for label in equation.output where sizes[label] == nil { sizes[label] = 1 }
        let outputLabels = equation.output
        let summed = Array(Set(equation.operands.joined()).subtracting(outputLabels)).sorted()
        let loopLabels = outputLabels + summed
        let loopSizes = loopLabels.map { sizes[$0] ?? 1 }
        let outShape = outputLabels.map { sizes[$0] ?? 1 }
        let outCount = try checkElementCount(outShape, context)
        try checkWork(loopSizes + [operands.count], context)
        let iterations = shapeProduct(loopSizes) ?? 0
        // Each operand's stride along each loop label (0 where absent or broadcast).
        let strides: [[Int]] = zip(operands, equation.operands).map { operand, labels in
            let own = rowMajorStrides(operand.shape)
            return loopLabels.map { label in
                var stride = 0
                for (axis, l) in labels.enumerated() where l == label && operand.shape[axis] != 1 { stride += own[axis] }
                return stride
            }
        }
        let innerCount = shapeProduct(summed.map { sizes[$0] ?? 1 }) ?? 1
        func run<T: AccumulatingElement>(_ values: [[T]], one: T) -> [T] {
            var out = [T](repeating: .zero, count: outCount)
            guard iterations > 0 else { return out }
            var position = [Int](repeating: 0, count: loopLabels.count)
            var offsets = [Int](repeating: 0, count: values.count)
            for flat in 0..<outCount {
                var sum = T.zero
                for _ in 0..<innerCount {
                    var product = one
                    for op in 0..<values.count { product = T.multiply(product, values[op][offsets[op]]) }
                    sum = T.multiplyAdd(sum, product, one)
                    // Advance the odometer.
                    var axis = loopLabels.count - 1
                    while axis >= 0 {
                        position[axis] += 1
                        for op in 0..<values.count { offsets[op] += strides[op][axis] }
                        if position[axis] < loopSizes[axis] { break }
                        for op in 0..<values.count { offsets[op] -= strides[op][axis] * position[axis] }
                        position[axis] = 0
                        axis -= 1
                    }
                }
                out[flat] = sum
            }
            return out
        }
        switch first.kind {
        case .real:
            var values: [[Double]] = []
            for operand in operands { values.append(try realElements(operand, context, "operand")) }
            return [TensorValue(first.dataType, shape: outShape, reals: run(values, one: 1.0))]
        case .integer:
            let values: [[Int64]] = operands.map { if case .integers(let v) = $0.elements { return v } else { return [] } }
            return [TensorValue(first.dataType, shape: outShape, integers: run(values, one: Int64(1)))]
        case .unsigned:
            let values: [[UInt64]] = operands.map { if case .unsigned(let v) = $0.elements { return v } else { return [] } }
            return [TensorValue(first.dataType, shape: outShape, .unsigned(run(values, one: UInt64(1))))]
        default:
            throw OperatorError("Einsum: type \(first.dataType) is not supported")
        }
    }

    static let einsumInference: InferenceFunction = { context throws(OperatorError) in
        let type = context.inputs.compactMap { $0?.elementType }.first
        guard let text = try context.node.string("equation") else { throw OperatorError("Einsum: equation is required") }
        let ranks = context.inputs.map { $0?.rank }
        guard let equation = try? EinsumEquation(text, ranks: ranks, "Einsum") else {
            context.setOutput(0, type: type, shape: nil)
            return
        }
        // Letter dimensions: a static size wins; otherwise a symbol seen for the label.
        var dims: [Int: Dimension] = [:]
        var ellipsisShapes: [[Dimension]?] = []
        for (facts, labels) in zip(context.inputs, equation.operands) {
            guard let shape = facts?.shape else {
                if labels.contains(where: { $0 < 0 }) { ellipsisShapes.append(nil) }
                continue
            }
            ellipsisShapes.append(zip(shape, labels).filter { $0.1 < 0 }.map(\.0))
            for (dim, label) in zip(shape, labels) where label > 0 {
                switch (dims[label], dim) {
                case (nil, _): dims[label] = dim
                case (.value(let a)?, .value(let b)) where a != b:
                    throw OperatorError("Einsum: label sizes \(a) and \(b) conflict")
                case (.value?, _): break
                case (_, .value): dims[label] = dim
                default: break
                }
            }
        }
        let ellipsis = try broadcastDimensions(ellipsisShapes, fresh: context.freshDimension)
        var shape: [Dimension] = []
        for label in equation.output {
            if label < 0 {
                guard let ellipsis else { context.setOutput(0, type: type, shape: nil); return }
                let index = ellipsis.count + label
                shape.append(index >= 0 ? ellipsis[index] : .value(1))
            } else {
                shape.append(dims[label] ?? context.freshDimension())
            }
        }
        context.setOutput(0, type: type, shape: shape)
    }
}

extension Double: NeuralNetworkKit.AccumulatingElement {
    @inline(__always) static func multiplyAdd(_ accumulator: Double, _ a: Double, _ b: Double) -> Double { accumulator + a * b }
    @inline(__always) static func multiply(_ a: Double, _ b: Double) -> Double { a * b }
}

extension Int64: NeuralNetworkKit.AccumulatingElement {
    @inline(__always) static func multiplyAdd(_ accumulator: Int64, _ a: Int64, _ b: Int64) -> Int64 { accumulator &+ a &* b }
    @inline(__always) static func multiply(_ a: Int64, _ b: Int64) -> Int64 { a &* b }
}

extension UInt64: NeuralNetworkKit.AccumulatingElement {
    @inline(__always) static func multiplyAdd(_ accumulator: UInt64, _ a: UInt64, _ b: UInt64) -> UInt64 { accumulator &+ a &* b }
    @inline(__always) static func multiply(_ a: UInt64, _ b: UInt64) -> UInt64 { a &* b }
}
