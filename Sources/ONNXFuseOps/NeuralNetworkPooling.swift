#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import ONNXFuseIR

// MaxPool, AveragePool, LpPool, GlobalAveragePool, GlobalMaxPool, GlobalLpPool and LRN
// (kernels and inference).

extension NeuralNetworkKit {
    /// Registers this file's operators in `registry`.
    static func registerPoolingOperators(_ registry: inout OperatorRegistry) {
        registry.register(["MaxPool"], kernel: maxPoolKernel)
        registry.register(["AveragePool"], kernel: averagePoolKernel)
        registry.register(["LpPool"], kernel: lpPoolKernel)
        registry.register(["MaxPool", "AveragePool", "LpPool"], inference: poolInference)
        registry.register(["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"], kernel: globalPoolKernel)
        registry.register(["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"], inference: globalPoolInference)
        registry.register(["LRN"], kernel: lrnKernel)
        registry.register(["LRN"], inference: sameShapeInference)
    }

    /// Output 0 has input 0's type and shape.
    static let sameShapeInference: InferenceFunction = { context throws(OperatorError) in
        let x = context.input(0)
        context.setOutput(0, type: x?.elementType, shape: x?.shape)
    }

    /// The geometry of a pooling node on input `shape` (N, C, spatial...).
    struct PoolGeometry {
        var window: Window3D
        /// Pads at the end of each lifted axis.
        var padEnd: [Int]
        var outputShape: [Int]
        var planes: Int

        init(_ context: OperatorContext, shape: [Int]) throws(OperatorError) {
            guard shape.count >= 3, shape.count <= 5 else {
                throw OperatorError("\(context.opType): input must have rank 3 to 5, got \(shape)")
            }
            let spatial = shape.count - 2
            let attributes = try WindowAttributes(context, spatialRank: spatial, defaultKernel: nil)
            var output: [Int] = [], begin: [Int] = [], end: [Int] = []
            for axis in 0..<spatial {
                let w = try attributes.window(axis: axis, input: shape[axis + 2], context.opType)
                output.append(w.output)
                begin.append(w.padBegin)
                end.append(w.padEnd)
            }
            outputShape = Array(shape[0..<2]) + output
            _ = try checkElementCount(outputShape, context)
            try checkWork(outputShape + attributes.kernel, context)
            planes = shape[0] * shape[1]
            window = Window3D(input: Array(shape[2...]), output: output, kernel: attributes.kernel,
                              strides: attributes.strides, dilations: attributes.dilations, padBegin: begin)
            padEnd = Array(repeating: 0, count: 3 - end.count) + end
        }

        /// The kernel taps of output position `o` on `axis` that fall inside the input.
        @inline(__always) func taps(axis: Int, _ o: Int) -> Range<Int> {
            validRange(count: window.kernel[axis], limit: window.input[axis], stride: window.dilations[axis],
                       offset: o * window.strides[axis] - window.padBegin[axis])
        }

        /// The number of taps of output position `o` on `axis` inside the input and its pads.
        @inline(__always) func paddedTapCount(axis: Int, _ o: Int) -> Int {
            validRange(count: window.kernel[axis], limit: window.input[axis] + window.padBegin[axis] + padEnd[axis],
                       stride: window.dilations[axis], offset: o * window.strides[axis]).count
        }

        /// Calls `body(outputIndex, taps, paddedCount)` for every output position of one plane,
        /// where `taps` are the input offsets (within the plane) of the window's elements.
        func forEachWindow(_ body: (Int, [Int], Int) -> Void) {
            let g = window
            var taps: [Int] = []
            taps.reserveCapacity(g.kernelSize)
            var index = 0
            for od in 0..<g.output[0] {
                let rd = self.taps(axis: 0, od), cd = paddedTapCount(axis: 0, od)
                let d0 = od * g.strides[0] - g.padBegin[0]
                for oy in 0..<g.output[1] {
                    let rh = self.taps(axis: 1, oy), ch = paddedTapCount(axis: 1, oy)
                    let h0 = oy * g.strides[1] - g.padBegin[1]
                    for ox in 0..<g.output[2] {
                        let rw = self.taps(axis: 2, ox), cw = paddedTapCount(axis: 2, ox)
                        let w0 = ox * g.strides[2] - g.padBegin[2]
                        taps.removeAll(keepingCapacity: true)
                        for a in rd {
                            let id = d0 + a * g.dilations[0]
                            for b in rh {
                                let rowBase = (id * g.input[1] + h0 + b * g.dilations[1]) * g.input[2] + w0
                                for c in rw { taps.append(rowBase + c * g.dilations[2]) }
                            }
                        }
                        body(index, taps, cd * ch * cw)
                        index += 1
                    }
                }
            }
        }
    }

    /// The input of a pooling kernel as float64 (int8 and uint8 exactly).
    static func poolInput(_ x: TensorValue, _ context: OperatorContext, allowIntegers: Bool) throws(OperatorError) -> [Double] {
        switch x.elements {
        case .reals(let v): return v
        case .integers(let v) where allowIntegers && (x.dataType == .int8 || x.dataType == .uint8): return v.map { Double($0) }
        default: throw OperatorError("\(context.opType): type \(x.dataType) is not supported")
        }
    }

    /// The pooled values as a tensor of `x`'s type.
    static func poolOutput(_ values: [Double], like x: TensorValue, shape: [Int]) -> TensorValue {
        if x.kind == .integer { return TensorValue(x.dataType, shape: shape, integers: values.map { Int64($0) }) }
        return TensorValue(x.dataType, shape: shape, reals: values)
    }

    static let maxPoolKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context)
        let values = try poolInput(x, context, allowIntegers: true)
        let geometry = try PoolGeometry(context, shape: x.shape)
        let columnMajor = try context.int("storage_order", default: 0) != 0
        let g = geometry.window
        let inPlane = g.inputPlane, outPlane = g.outputPlane
        // Column-major position of each row-major offset within a plane (storage_order = 1).
        var columnIndex: [Int] = []
        if columnMajor {
            columnIndex = [Int](repeating: 0, count: inPlane)
            for d in 0..<g.input[0] {
                for h in 0..<g.input[1] {
                    for w in 0..<g.input[2] {
                        columnIndex[(d * g.input[1] + h) * g.input[2] + w] = d + h * g.input[0] + w * g.input[0] * g.input[1]
                    }
                }
            }
        }
        var result = [Double](repeating: 0, count: geometry.planes * outPlane)
        var indices = [Int64](repeating: 0, count: geometry.planes * outPlane)
        var emptyWindow = false
        for plane in 0..<geometry.planes {
            let xBase = plane * inPlane, oBase = plane * outPlane
            geometry.forEachWindow { o, taps, _ in
                var best = -Double.infinity
                var bestTap = -1
                for tap in taps {
                    let v = values[xBase + tap]
                    // NaN is skipped unless every element is NaN (as the reference's padding is).
                    if bestTap < 0 || v > best || (best.isNaN && !v.isNaN) {
                        best = v
                        bestTap = tap
                    }
                }
                if bestTap < 0 { emptyWindow = true; return }
                result[oBase + o] = best
                indices[oBase + o] = Int64(xBase + (columnMajor ? columnIndex[bestTap] : bestTap))
            }
        }
        if emptyWindow { throw OperatorError("MaxPool: a window covers only padding") }
        return [poolOutput(result, like: x, shape: geometry.outputShape), TensorValue(.int64, shape: geometry.outputShape, .integers(indices))]
    }

    static let averagePoolKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context)
        let values = try poolInput(x, context, allowIntegers: false)
        let geometry = try PoolGeometry(context, shape: x.shape)
        let includePad = try context.int("count_include_pad", default: 0) != 0
        let inPlane = geometry.window.inputPlane, outPlane = geometry.window.outputPlane
        var result = [Double](repeating: 0, count: geometry.planes * outPlane)
        for plane in 0..<geometry.planes {
            let xBase = plane * inPlane, oBase = plane * outPlane
            geometry.forEachWindow { o, taps, paddedCount in
                var sum = 0.0
                for tap in taps { sum += values[xBase + tap] }
                result[oBase + o] = sum / Double(includePad ? paddedCount : taps.count)
            }
        }
        return [TensorValue(x.dataType, shape: geometry.outputShape, reals: result)]
    }

    /// `(sum |v|^p)^(1/p)`, with exact squares and square roots for p = 2.
    @inline(__always) static func lpNorm(_ sum: Double, p: Double) -> Double {
        p == 2 ? sum.squareRoot() : p == 1 ? sum : pow(sum, 1 / p)
    }

    @inline(__always) static func lpPower(_ v: Double, p: Double) -> Double {
        p == 2 ? v * v : p == 1 ? abs(v) : pow(abs(v), p)
    }

    static let lpPoolKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context)
        let values = try poolInput(x, context, allowIntegers: false)
        let geometry = try PoolGeometry(context, shape: x.shape)
        let p = try context.float("p", default: 2)
        guard p > 0 else { throw OperatorError("LpPool: p must be positive") }
        let inPlane = geometry.window.inputPlane, outPlane = geometry.window.outputPlane
        var result = [Double](repeating: 0, count: geometry.planes * outPlane)
        for plane in 0..<geometry.planes {
            let xBase = plane * inPlane, oBase = plane * outPlane
            geometry.forEachWindow { o, taps, _ in
                var sum = 0.0
                for tap in taps { sum += lpPower(values[xBase + tap], p: p) }
                result[oBase + o] = lpNorm(sum, p: p)
            }
        }
        return [TensorValue(x.dataType, shape: geometry.outputShape, reals: result)]
    }

    static let poolInference: InferenceFunction = { context throws(OperatorError) in
        let x = context.input(0)
        let type = x?.elementType
        guard let shape = x?.shape else {
            context.setOutput(0, type: type, shape: nil)
            context.setOutput(1, type: .int64, shape: nil)
            return
        }
        guard shape.count >= 3 else { throw OperatorError("\(context.node.opType): input must have rank 3 or more") }
        let spatial = shape.count - 2
        var result = Array(shape[0..<2])
        if let attributes = try? WindowAttributes(context.node, spatialRank: spatial, defaultKernel: nil) {
            for axis in 0..<spatial {
                result.append(try attributes.windowDimension(axis: axis, input: shape[axis + 2], context.node.opType) ?? context.freshDimension())
            }
        } else {
            result += (0..<spatial).map { _ in context.freshDimension() }
        }
        context.setOutput(0, type: type, shape: result)
        context.setOutput(1, type: .int64, shape: result)
    }

    static let globalPoolKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context)
        guard x.rank >= 2 else { throw OperatorError("\(context.opType): input must have rank 2 or more") }
        let values = try realElements(x, context, "X")
        let planes = x.shape[0] * x.shape[1]
        let size = planes == 0 ? 0 : x.count / planes
        let p = context.opType == "GlobalLpPool" ? try context.float("p", default: 2) : 0
        var result = [Double](repeating: 0, count: planes)
        for plane in 0..<planes {
            let base = plane * size
            switch context.opType {
            case "GlobalMaxPool":
                var best = -Double.infinity
                for i in 0..<size {
                    let v = values[base + i]
                    if v > best || v.isNaN { best = v; if v.isNaN { break } }
                }
                result[plane] = best
            case "GlobalLpPool":
                var sum = 0.0
                for i in 0..<size { sum += lpPower(values[base + i], p: p) }
                result[plane] = lpNorm(sum, p: p)
            default:
                var sum = 0.0
                for i in 0..<size { sum += values[base + i] }
                result[plane] = sum / Double(size)
            }
        }
        let shape = Array(x.shape[0..<2]) + Array(repeating: 1, count: x.rank - 2)
        return [TensorValue(x.dataType, shape: shape, reals: result)]
    }

    static let globalPoolInference: InferenceFunction = { context throws(OperatorError) in
        let x = context.input(0)
        guard let shape = x?.shape else {
            context.setOutput(0, type: x?.elementType, shape: nil)
            return
        }
        guard shape.count >= 2 else { throw OperatorError("\(context.node.opType): input must have rank 2 or more") }
        context.setOutput(0, type: x?.elementType, shape: Array(shape[0..<2]) + Array(repeating: .value(1), count: shape.count - 2))
    }

    static let lrnKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context)
        guard x.rank >= 2 else { throw OperatorError("LRN: input must have rank 2 or more") }
        let values = try realElements(x, context, "X")
        let alpha = try context.float("alpha", default: 0.0001), beta = try context.float("beta", default: 0.75)
        let bias = try context.float("bias", default: 1)
        guard let sizeAttribute = try context.int("size"), sizeAttribute >= 1, sizeAttribute <= Int64(Int32.max) else {
            throw OperatorError("LRN: size must be a positive integer")
        }
        let size = Int(sizeAttribute)
        let (batch, channels) = (x.shape[0], x.shape[1])
        try checkWork([x.count, min(size, channels)], context)
        let plane = batch * channels == 0 ? 0 : x.count / (batch * channels)
        let below = (size - 1) / 2, above = size - 1 - below  // floor and ceil of (size - 1) / 2
        var result = [Double](repeating: 0, count: x.count)
        for n in 0..<batch {
            for c in 0..<channels {
                let lo = max(0, c - below), hi = min(channels - 1, c + above)
                let base = (n * channels + c) * plane
                for i in 0..<plane {
                    var squares = 0.0
                    if lo <= hi {
                        for cc in lo...hi {
                            let v = values[(n * channels + cc) * plane + i]
                            squares += v * v
                        }
                    }
                    result[base + i] = values[base + i] / pow(bias + alpha / Double(size) * squares, beta)
                }
            }
        }
        return [TensorValue(x.dataType, shape: x.shape, reals: result)]
    }
}
