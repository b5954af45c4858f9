import Dispatch
import ONNXFuseIR
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Conv, ConvTranspose and ConvInteger (kernels and inference), QLinearConv (inference; its
// kernel is in NeuralNetworkQuantization.swift), and the sliding-window geometry shared with the
// pooling operators.

extension NeuralNetworkKit {
    /// Registers this file's operators in `registry`.
    static func registerConvolutionOperators(_ registry: inout OperatorRegistry) {
        registry.register(["Conv"], kernel: convKernel)
        registry.register(["Conv"], inference: convInference(outputType: nil, weightIndex: 1))
        registry.register(["ConvInteger"], kernel: convIntegerKernel)
        registry.register(["ConvInteger"], inference: convInference(outputType: .int32, weightIndex: 1))
        registry.register(["QLinearConv"], inference: convInference(outputType: nil, weightIndex: 3, typeIndex: 7))
        registry.register(["ConvTranspose"], kernel: convTransposeKernel)
        registry.register(["ConvTranspose"], inference: convTransposeInference)
    }

    // MARK: - Window geometry

    /// The `auto_pad` attribute.
    enum AutoPad: Equatable {
        case notSet, sameUpper, sameLower, valid

        init(_ context: OperatorContext) throws(OperatorError) {
            switch try context.string("auto_pad") ?? "NOTSET" {
            case "NOTSET", "": self = .notSet
            case "SAME_UPPER": self = .sameUpper
            case "SAME_LOWER": self = .sameLower
            case "VALID": self = .valid
            case let other: throw OperatorError("\(context.opType): auto_pad '\(other)' is not NOTSET, SAME_UPPER, SAME_LOWER or VALID")
            }
        }

        var isSame: Bool { self == .sameUpper || self == .sameLower }
    }

    /// The largest kernel size, stride, dilation, pad or output padding accepted: far beyond any
    /// real model, small enough that no size arithmetic overflows.
    static let attributeBound = 1 << 24

    /// The window attributes of a convolution or pooling node, one entry per spatial axis.
    struct WindowAttributes {
        var kernel: [Int]
        var strides: [Int]
        var dilations: [Int]
        /// Explicit pads: begin of every axis, then end of every axis.
        var pads: [Int]
        var autoPad: AutoPad
        var ceilMode: Bool

        /// Reads the attributes for `spatialRank` axes; `kernel` is the kernel_shape attribute or,
        /// when absent, `defaultKernel` (from the weights).
        init(_ context: OperatorContext, spatialRank: Int, defaultKernel: [Int]?) throws(OperatorError) {
            let op = context.opType
            func list(_ name: String, count: Int, default value: Int) throws(OperatorError) -> [Int] {
                guard let given = try context.ints(name) else { return Self.filled(value, count: count) }
                return try checked(name, given, count: count)
            }
            func checked(_ name: String, _ given: [Int64], count: Int) throws(OperatorError) -> [Int] {
                guard given.count == count else {
                    throw OperatorError("\(op): \(name) has \(given.count) entries for \(spatialRank) spatial axes")
                }
                var result: [Int] = []
                result.reserveCapacity(count)
                for v in given {
                    guard v >= -attributeBound, v <= attributeBound else { throw OperatorError("\(op): \(name) entry \(v) is out of range") }
                    result.append(Int(v))
                }
                return result
            }
            if let given = try context.ints("kernel_shape") {
                kernel = try checked("kernel_shape", given, count: spatialRank)
                if let defaultKernel, defaultKernel != kernel {
                    throw OperatorError("\(op): kernel_shape \(kernel) differs from the weights' \(defaultKernel)")
                }
            } else if let defaultKernel {
                guard defaultKernel.count == spatialRank else { throw OperatorError("\(op): the weights' rank does not match the input's") }
                kernel = defaultKernel
            } else {
                throw OperatorError("\(op): kernel_shape is required")
            }
            strides = try list("strides", count: spatialRank, default: 1)
            dilations = try list("dilations", count: spatialRank, default: 1)
            autoPad = try AutoPad(context)
            pads = autoPad == .notSet ? try list("pads", count: 2 * spatialRank, default: 0) : Self.filled(0, count: 2 * spatialRank)
            ceilMode = try context.int("ceil_mode", default: 0) != 0
            guard kernel.allSatisfy({ $0 >= 1 && $0 <= attributeBound }), strides.allSatisfy({ $0 >= 1 }),
                  dilations.allSatisfy({ $0 >= 1 }), pads.allSatisfy({ $0 >= 0 }),
                  let size = shapeProduct(kernel), size <= neuralNetworkElementLimit else {
                throw OperatorError("\(op): kernel \(kernel), strides \(strides), dilations \(dilations) or pads \(pads) are invalid")
            }
        }

        var spatialRank: Int { kernel.count }

        /// The defaults of absent attributes (strides and dilations of 1, pads of 0) for up to
        /// three spatial axes, made once: inference reads the attributes of every Conv.
        private static let ones: [[Int]] = [[], [1], [1, 1], [1, 1, 1]]
        private static let zeros: [[Int]] = [[], [0, 0], [0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]

        /// `count` copies of `value`, shared when it is one of the defaults above.
        private static func filled(_ value: Int, count: Int) -> [Int] {
            if value == 1, count < ones.count { return ones[count] }
            if value == 0, count % 2 == 0, count / 2 < zeros.count { return zeros[count / 2] }
            return repeated(value, count: count)
        }

        /// The extent of the dilated kernel on `axis`.
        func effectiveKernel(_ axis: Int) -> Int { (kernel[axis] - 1) * dilations[axis] + 1 }

        /// The output size and the begin and end pads of a sliding window over `input` elements
        /// on `axis`.
        func window(axis: Int, input: Int, _ opType: String) throws(OperatorError) -> (output: Int, padBegin: Int, padEnd: Int) {
            let s = strides[axis], ek = effectiveKernel(axis)
            switch autoPad {
            case .sameUpper, .sameLower:
                let output = ceilDivide(input, s)
                let total = max(0, (output - 1) * s + ek - input)
                let begin = autoPad == .sameUpper ? total / 2 : total - total / 2
                return (output, begin, total - begin)
            case .valid:
                let span = input - ek
                guard span >= 0 else { throw OperatorError("\(opType): kernel extent \(ek) exceeds input size \(input)") }
                return (span / s + 1, 0, 0)
            case .notSet:
                let pb = pads[axis], pe = pads[axis + spatialRank]
                let span = input + pb + pe - ek
                guard span >= 0 else { throw OperatorError("\(opType): kernel extent \(ek) exceeds padded input size \(input + pb + pe)") }
                var output = (ceilMode ? ceilDivide(span, s) : span / s) + 1
                // The last window must start inside the input or its begin padding.
                if ceilMode && (output - 1) * s >= input + pb { output -= 1 }
                return (output, pb, pe)
            }
        }

        /// The output dimension for a symbolic or static input dimension; nil when not certain.
        func windowDimension(axis: Int, input: Dimension, _ opType: String) throws(OperatorError) -> Dimension? {
            if case .value(let v) = input {
                guard v >= 0, v <= Int64(Int32.max) else { return nil }
                return .value(Int64(try window(axis: axis, input: Int(v), opType).output))
            }
            guard strides[axis] == 1 else { return nil }
            switch autoPad {
            case .sameUpper, .sameLower: return input
            case .valid: return effectiveKernel(axis) == 1 ? input : nil
            case .notSet: return pads[axis] + pads[axis + spatialRank] == effectiveKernel(axis) - 1 ? input : nil
            }
        }
    }

    /// The indices `j` in `0..<count` with `0 <= j * stride + offset < limit`.
    @inline(__always) static func validRange(count: Int, limit: Int, stride: Int, offset: Int) -> Range<Int> {
        let lo = max(0, ceilDivide(-offset, stride))
        let hi = min(count, floorDivide(limit - 1 - offset, stride) + 1)
        return lo < hi ? lo..<hi : lo..<lo
    }

    /// Three-dimensional window geometry: 1-D and 2-D problems get leading axes of size 1.
    struct Window3D {
        var input: [Int]
        var output: [Int]
        var kernel: [Int]
        var strides: [Int]
        var dilations: [Int]
        var padBegin: [Int]

        init(input: [Int], output: [Int], kernel: [Int], strides: [Int], dilations: [Int], padBegin: [Int]) {
            func lift(_ v: [Int]) -> [Int] { Array(repeating: 1, count: 3 - v.count) + v }
            self.input = lift(input)
            self.output = lift(output)
            self.kernel = lift(kernel)
            self.strides = lift(strides)
            self.dilations = lift(dilations)
            self.padBegin = Array(repeating: 0, count: 3 - padBegin.count) + padBegin
        }

        var inputPlane: Int { input[0] * input[1] * input[2] }
        var outputPlane: Int { output[0] * output[1] * output[2] }
        var kernelSize: Int { kernel[0] * kernel[1] * kernel[2] }

        /// For each axis and kernel tap, the output positions whose tap lands inside the input.
        func convolutionRanges() -> [[Range<Int>]] {
            (0..<3).map { axis in
                (0..<kernel[axis]).map { k in
                    validRange(count: output[axis], limit: input[axis], stride: strides[axis],
                               offset: k * dilations[axis] - padBegin[axis])
                }
            }
        }

        /// For each axis and kernel tap, the input positions whose tap lands inside the output.
        func transposedRanges() -> [[Range<Int>]] {
            (0..<3).map { axis in
                (0..<kernel[axis]).map { k in
                    validRange(count: input[axis], limit: output[axis], stride: strides[axis],
                               offset: k * dilations[axis] - padBegin[axis])
                }
            }
        }
    }

    // MARK: - Conv

    /// The multiply-adds past which a convolution spreads its output channels over the cores.
    static let parallelConvolutionWork = 1 << 22

    /// The cores this process may use.
    static let processorCount = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    /// The buffers of a convolution, handed to the threads that fill disjoint rows of `out`.
    struct ConvolutionPointers: @unchecked Sendable {
        let x: UnsafePointer<Double>
        let w: UnsafePointer<Double>
        let out: UnsafeMutablePointer<Double>
    }

    /// Direct convolution: `x` is (N, C, D, H, W), `w` is (M, C/group, KD, KH, KW); accumulates
    /// in float64; the result is (N, M, OD, OH, OW).
    static func directConvolution(x: [Double], batch: Int, channels: Int, w: [Double], outputChannels: Int, group: Int,
                           bias: [Double]?, geometry g: Window3D) -> [Double] {
        let cg = channels / group, mg = outputChannels / group
        let inPlane = g.inputPlane, outPlane = g.outputPlane, kernelSize = g.kernelSize
        let (kd, kh, kw) = (g.kernel[0], g.kernel[1], g.kernel[2])
        let (ih, iw) = (g.input[1], g.input[2])
        let (oh, ow) = (g.output[1], g.output[2])
        let (sd, sh, sw) = (g.strides[0], g.strides[1], g.strides[2])
        let (dd, dh, dw) = (g.dilations[0], g.dilations[1], g.dilations[2])
        let (pd, ph, pw) = (g.padBegin[0], g.padBegin[1], g.padBegin[2])
        let ranges = g.convolutionRanges()
        // A tap covers the whole output plane contiguously when strides are 1 and sizes match.
        let contiguousPlane = sd == 1 && sh == 1 && sw == 1 && g.input == g.output
        var out = [Double](repeating: 0, count: batch * outputChannels * outPlane)
        guard !out.isEmpty, !x.isEmpty, !w.isEmpty, cg > 0 else {
            if let bias, !out.isEmpty {
                for index in out.indices { out[index] = bias.count == 1 ? bias[0] : bias[(index / max(outPlane, 1)) % outputChannels] }
            }
            return out
        }
        let outputDepth = g.output[0]
        x.withUnsafeBufferPointer { xBuffer in
            w.withUnsafeBufferPointer { wBuffer in
                out.withUnsafeMutableBufferPointer { outBuffer in
                    // Non-empty buffers (checked above) have base addresses.
                    guard let x = xBuffer.baseAddress, let w = wBuffer.baseAddress, let out = outBuffer.baseAddress else { return }
                    // Output channels go in blocks of up to four that share each input load;
                    // blocks write disjoint rows, so large convolutions spread them over the cores.
                    let pointers = ConvolutionPointers(x: x, w: w, out: out)
                    @Sendable func convolveBlock(_ n: Int, _ group: Int, _ first: Int) {
                        let x = pointers.x, w = pointers.w, out = pointers.out
                        let block = min(4, (group + 1) * mg - first)
                        let o0 = out + (n * outputChannels + first) * outPlane
                        let o1 = block > 1 ? o0 + outPlane : o0, o2 = block > 2 ? o0 + 2 * outPlane : o0
                        let o3 = block > 3 ? o0 + 3 * outPlane : o0
                        for cl in 0..<cg {
                            let xBase = (n * channels + group * cg + cl) * inPlane
                            let wBase = (first * cg + cl) * kernelSize, wStride = cg * kernelSize
                            for a in 0..<kd {
                                let rd = ranges[0][a]
                                for b in 0..<kh {
                                    let rh = ranges[1][b]
                                    for c in 0..<kw {
                                        let rw = ranges[2][c]
                                        let tap = wBase + (a * kh + b) * kw + c
                                        let w0 = w[tap]
                                        let w1 = block > 1 ? w[tap + wStride] : 0, w2 = block > 2 ? w[tap + 2 * wStride] : 0
                                        let w3 = block > 3 ? w[tap + 3 * wStride] : 0
                                        let full = contiguousPlane && rd.count == outputDepth && rh.count == oh && rw.count == ow
                                        // Each run: `count` outputs from `oOffset`, inputs from `xOffset` every `step`.
                                        @inline(__always) func accumulate(_ oOffset: Int, _ xOffset: Int, _ count: Int, _ step: Int) {
                                            let xr = x + xOffset
                                            let r0 = o0 + oOffset, r1 = o1 + oOffset, r2 = o2 + oOffset, r3 = o3 + oOffset
                                            // The first `rows` output channels of the block take each input.
                                            // `rows` is a constant at every call: inlined, its tests fold
                                            // away and each block size keeps a loop of its own.
                                            @inline(__always) func accumulateRows(_ rows: Int) {
                                                for j in 0..<count {
                                                    let v = xr[j * step]
                                                    r0[j] += w0 * v
                                                    if rows > 1 { r1[j] += w1 * v }
                                                    if rows > 2 { r2[j] += w2 * v }
                                                    if rows > 3 { r3[j] += w3 * v }
                                                }
                                            }
                                            switch block {
                                            case 4: accumulateRows(4)
                                            case 3: accumulateRows(3)
                                            case 2: accumulateRows(2)
                                            default:
                                                if step == 1 {
                                                    for j in 0..<count { r0[j] += w0 * xr[j] }
                                                } else {
                                                    accumulateRows(1)
                                                }
                                            }
                                        }
                                        if full {
                                            // Input and output planes line up: one contiguous run.
                                            accumulate(0, xBase + ((a * dd - pd) * ih + (b * dh - ph)) * iw + (c * dw - pw), outPlane, 1)
                                            continue
                                        }
                                        let width = rw.count
                                        if width == 0 { continue }
                                        for od in rd {
                                            let id = od * sd - pd + a * dd
                                            for oy in rh {
                                                let iy = oy * sh - ph + b * dh
                                                let ix = rw.lowerBound * sw - pw + c * dw
                                                accumulate((od * oh + oy) * ow + rw.lowerBound, xBase + (id * ih + iy) * iw + ix, width, sw)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    var blocks: [(n: Int, group: Int, first: Int)] = []
                    for n in 0..<batch {
                        for group in 0..<(outputChannels / mg) {
                            for first in stride(from: group * mg, to: (group + 1) * mg, by: 4) { blocks.append((n, group, first)) }
                        }
                    }
                    let work = batch * outputChannels * outPlane * cg * kernelSize
                    if work >= parallelConvolutionWork && blocks.count > 1 && processorCount > 1 {
                        let blockList = blocks
                        DispatchQueue.concurrentPerform(iterations: blockList.count) { index in
                            let block = blockList[index]
                            convolveBlock(block.n, block.group, block.first)
                        }
                    } else {
                        for block in blocks { convolveBlock(block.n, block.group, block.first) }
                    }
                    for n in 0..<batch {
                        if let bias {
                            for m in 0..<outputChannels {
                                let o = out + (n * outputChannels + m) * outPlane
                                let b = bias.count == 1 ? bias[0] : bias[m]
                                for i in 0..<outPlane { o[i] += b }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// The operands of a Conv, ConvInteger or QLinearConv node, checked: X is (N, C, spatial...)
    /// and W is (M, C/group, kernel...), both of rank 3 to 5.
    struct ConvolutionOperands {
        let x: TensorValue, w: TensorValue
        let batch: Int, channels: Int, outputChannels: Int, group: Int

        /// Checks the ranks of `x` and `w` and that they fit the group attribute; `names` are
        /// what the operator's errors call them ("X" and "W", or "x" and "w").
        init(x: TensorValue, w: TensorValue, names: (x: String, w: String), _ context: OperatorContext) throws(OperatorError) {
            let op = context.opType
            guard x.rank >= 3, w.rank == x.rank, x.rank <= 5 else {
                throw OperatorError("\(op): \(names.x) \(x.shape) and \(names.w) \(w.shape) must be of rank 3 to 5 and equal rank")
            }
            let group = Int(try context.int("group", default: 1))
            let (channels, m) = (x.shape[1], w.shape[0])
            guard group >= 1, channels % group == 0, m % group == 0, w.shape[1] * group == channels else {
                throw OperatorError("\(op): \(names.x) \(x.shape), \(names.w) \(w.shape) and group \(group) do not fit")
            }
            (self.x, self.w, batch, self.channels, outputChannels, self.group) = (x, w, x.shape[0], channels, m, group)
        }

        /// Reads the window attributes and checks the output size and the work: the output shape
        /// (N, M, spatial...) and the window geometry.
        func window(_ context: OperatorContext) throws(OperatorError) -> (outputShape: [Int], geometry: Window3D) {
            let spatial = x.rank - 2
            let attributes = try WindowAttributes(context, spatialRank: spatial, defaultKernel: Array(w.shape[2...]))
            var output: [Int] = [], padBegin: [Int] = []
            for axis in 0..<spatial {
                let window = try attributes.window(axis: axis, input: x.shape[axis + 2], context.opType)
                output.append(window.output)
                padBegin.append(window.padBegin)
            }
            let outputShape = [batch, outputChannels] + output
            _ = try checkElementCount(outputShape, context)
            try checkWork(outputShape + [channels / group, w.count / max(w.shape[0] * w.shape[1], 1)], context)
            let geometry = Window3D(input: Array(x.shape[2...]), output: output, kernel: attributes.kernel,
                                    strides: attributes.strides, dilations: attributes.dilations, padBegin: padBegin)
            return (outputShape, geometry)
        }

        /// The direct convolution of `xs` (X's elements) with `ws` (W's), plus `bias`.
        func convolve(_ xs: [Double], _ ws: [Double], bias: [Double]?, geometry: Window3D) -> [Double] {
            directConvolution(x: xs, batch: batch, channels: channels, w: ws, outputChannels: outputChannels, group: group,
                              bias: bias, geometry: geometry)
        }

        /// W's integer elements less their zero point: `zeroPoints` has one value, or one per
        /// output channel.
        func shiftedWeights(_ ws: [Int64], zeroPoints: [Int64]) -> [Double] {
            let perFilter = ws.count / max(outputChannels, 1)
            var shifted = [Double](repeating: 0, count: ws.count)
            for index in ws.indices { shifted[index] = Double(ws[index] - zeroPoints[zeroPoints.count == 1 ? 0 : index / perFilter]) }
            return shifted
        }
    }

    /// The bias of a convolution: one value per output channel, or a single value.
    static func convolutionBias(_ inputs: [TensorValue?], index: Int, channels: Int, type: DataType,
                         _ context: OperatorContext) throws(OperatorError) -> [Double]? {
        guard let bias = optionalInput(inputs, index) else { return nil }
        guard bias.dataType == type else { throw OperatorError("\(context.opType): B must have X's type") }
        let values = try realElements(bias, context, "B")
        guard values.count == channels || values.count == 1 else {
            throw OperatorError("\(context.opType): B has \(values.count) elements for \(channels) output channels")
        }
        return values
    }

    static let convKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context), w = try requiredInput(inputs, 1, context)
        guard isRealType(x.dataType), w.dataType == x.dataType else {
            throw OperatorError("Conv: X and W must be of one floating-point type, got \(x.dataType) and \(w.dataType)")
        }
        let operands = try ConvolutionOperands(x: x, w: w, names: ("X", "W"), context)
        let (outShape, geometry) = try operands.window(context)
        let bias = try convolutionBias(inputs, index: 2, channels: operands.outputChannels, type: x.dataType, context)
        let result = operands.convolve(try realElements(x, context, "X"), try realElements(w, context, "W"), bias: bias, geometry: geometry)
        return [TensorValue(x.dataType, shape: outShape, reals: result)]
    }

    /// ConvInteger: (x - x_zero_point) convolved with (w - w_zero_point), exactly, as int32.
    static let convIntegerKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context), w = try requiredInput(inputs, 1, context)
        guard [.int8, .uint8].contains(x.dataType), [.int8, .uint8].contains(w.dataType),
              case .integers(let xs) = x.elements, case .integers(let ws) = w.elements else {
            throw OperatorError("ConvInteger: x and w must be int8 or uint8")
        }
        let operands = try ConvolutionOperands(x: x, w: w, names: ("x", "w"), context)
        let m = operands.outputChannels
        // Zero points: one for x; one for w or one per output channel.
        var xZero: Int64 = 0
        if let zero = optionalInput(inputs, 2) {
            guard zero.dataType == x.dataType, zero.count == 1 else { throw OperatorError("ConvInteger: x_zero_point must be one x-typed value") }
            xZero = try zero.scalarInt64()
        }
        var wZeros: [Int64] = [0]
        if let zero = optionalInput(inputs, 3) {
            guard zero.dataType == w.dataType, zero.count == 1 || zero.count == m, case .integers(let z) = zero.elements else {
                throw OperatorError("ConvInteger: w_zero_point must be one w-typed value or one per output channel")
            }
            wZeros = z
        }
        let (outShape, geometry) = try operands.window(context)
        // Products of 9-bit values summed in float64 are exact far beyond any real kernel size.
        let result = operands.convolve(xs.map { Double($0 - xZero) }, operands.shiftedWeights(ws, zeroPoints: wZeros),
                                       bias: nil, geometry: geometry)
        return [TensorValue(.int32, shape: outShape, integers: result.map { Int64($0) })]
    }

    /// Inference for Conv-like operators: X is input 0, W input `weightIndex`; the output type is
    /// `outputType`, else the type of input `typeIndex`.
    static func convInference(outputType: DataType?, weightIndex: Int, typeIndex: Int = 0) -> InferenceFunction {
        { context throws(OperatorError) in
            let type = outputType ?? context.input(typeIndex)?.elementType
            let x = context.input(0)?.shape, w = context.input(weightIndex)?.shape
            guard let x else {
                if let w, w.count >= 3 {
                    context.setOutput(0, type: type, shape: [context.freshDimension(), w[0]] + (2..<w.count).map { _ in context.freshDimension() })
                } else {
                    context.setOutput(0, type: type, shape: nil)
                }
                return
            }
            guard x.count >= 3 else { throw OperatorError("\(context.node.opType): X must have rank 3 or more") }
            if let w, w.count != x.count { throw OperatorError("\(context.node.opType): W's rank differs from X's") }
            let spatial = x.count - 2
            // The kernel from the weights; an axis whose size is symbolic gets a placeholder
            // and a fresh output dimension (unless kernel_shape gives it).
            var kernel: [Int]? = nil
            var unknownAxes: Set<Int> = []
            if let w, try context.node.ints("kernel_shape") == nil {
                kernel = w[2...].enumerated().map { axis, dim in
                    if case .value(let v) = dim, v > 0, v <= Int64(Int32.max) { return Int(v) }
                    unknownAxes.insert(axis)
                    return 1
                }
            }
            let m = w?[0] ?? context.freshDimension()
            var shape: [Dimension] = []
            shape.reserveCapacity(x.count)
            shape.append(x[0])
            shape.append(m)
            if let attributes = try? WindowAttributes(context.node, spatialRank: spatial, defaultKernel: kernel) {
                for axis in 0..<spatial {
                    let dim = unknownAxes.contains(axis) ? nil : try attributes.windowDimension(axis: axis, input: x[axis + 2], context.node.opType)
                    shape.append(dim ?? context.freshDimension())
                }
            } else {
                shape += (0..<spatial).map { _ in context.freshDimension() }
            }
            context.setOutput(0, type: type, shape: shape)
        }
    }

    // MARK: - ConvTranspose

    /// The output sizes and begin pads of a ConvTranspose node.
    struct TransposedWindow {
        var output: [Int]
        var padBegin: [Int]
        var attributes: WindowAttributes
        var outputPadding: [Int]
        var outputShape: [Int]?

        init(_ context: OperatorContext, spatialRank: Int, defaultKernel: [Int]?) throws(OperatorError) {
            attributes = try WindowAttributes(context, spatialRank: spatialRank, defaultKernel: defaultKernel)
            let padding = try context.ints("output_padding")?.map { Int(clamping: $0) } ?? Array(repeating: 0, count: spatialRank)
            guard padding.count == spatialRank, padding.allSatisfy({ $0 >= 0 && $0 <= attributeBound }) else {
                throw OperatorError("ConvTranspose: output_padding \(padding) is invalid for \(spatialRank) spatial axes")
            }
            outputPadding = padding
            if let shape = try context.ints("output_shape") {
                guard shape.count >= spatialRank, shape.suffix(spatialRank).allSatisfy({ $0 >= 0 && $0 <= Int64(Int32.max) }) else {
                    throw OperatorError("ConvTranspose: output_shape \(shape) is invalid")
                }
                outputShape = shape.suffix(spatialRank).map { Int($0) }
            }
            output = []
            padBegin = []
        }

        /// Fills `output` and `padBegin` for these input sizes.
        mutating func resolve(input: [Int]) throws(OperatorError) {
            output = []
            padBegin = []
            let r = attributes.spatialRank
            for axis in 0..<r {
                guard input[axis] >= 0, input[axis] <= Int(Int32.max) else {
                    throw OperatorError("ConvTranspose: input size \(input[axis]) is out of range")
                }
                let s = attributes.strides[axis], ek = attributes.effectiveKernel(axis)
                let full = s * (input[axis] - 1) + outputPadding[axis] + ek
                if outputShape != nil || attributes.autoPad.isSame {
                    let target = outputShape?[axis] ?? input[axis] * s
                    let total = full - target
                    let half = floorDivide(total, 2)
                    output.append(target)
                    padBegin.append(attributes.autoPad == .sameUpper ? half : total - half)
                } else {
                    let pb = attributes.autoPad == .valid ? 0 : attributes.pads[axis]
                    let pe = attributes.autoPad == .valid ? 0 : attributes.pads[axis + r]
                    let size = full - pb - pe
                    guard size >= 0 else { throw OperatorError("ConvTranspose: pads exceed the output size") }
                    output.append(size)
                    padBegin.append(pb)
                }
            }
        }
    }

    static let convTransposeKernel: Kernel = { context, inputs throws(OperatorError) in
        let x = try requiredInput(inputs, 0, context), w = try requiredInput(inputs, 1, context)
        guard isRealType(x.dataType), w.dataType == x.dataType else {
            throw OperatorError("ConvTranspose: X and W must be of one floating-point type, got \(x.dataType) and \(w.dataType)")
        }
        guard x.rank >= 3, w.rank == x.rank, x.rank <= 5 else {
            throw OperatorError("ConvTranspose: X \(x.shape) and W \(w.shape) must be of rank 3 to 5 and equal rank")
        }
        let spatial = x.rank - 2
        let group = Int(try context.int("group", default: 1))
        let (batch, channels) = (x.shape[0], x.shape[1])
        guard group >= 1, channels % group == 0, w.shape[0] == channels else {
            throw OperatorError("ConvTranspose: X \(x.shape), W \(w.shape) and group \(group) do not fit")
        }
        let mg = w.shape[1], m = mg * group
        var window = try TransposedWindow(context, spatialRank: spatial, defaultKernel: Array(w.shape[2...]))
        try window.resolve(input: Array(x.shape[2...]))
        let outShape = [batch, m] + window.output
        _ = try checkElementCount(outShape, context)
        try checkWork(x.shape + [w.count / max(channels, 1)], context)
        let bias = try convolutionBias(inputs, index: 2, channels: m, type: x.dataType, context)
        let g = Window3D(input: Array(x.shape[2...]), output: window.output, kernel: window.attributes.kernel,
                         strides: window.attributes.strides, dilations: window.attributes.dilations, padBegin: window.padBegin)
        let xs = try realElements(x, context, "X"), ws = try realElements(w, context, "W")
        let cg = channels / group
        let inPlane = g.inputPlane, outPlane = g.outputPlane, kernelSize = g.kernelSize
        let (kd, kh, kw) = (g.kernel[0], g.kernel[1], g.kernel[2])
        let (ih, iw) = (g.input[1], g.input[2])
        let (oh, ow) = (g.output[1], g.output[2])
        let (sd, sh, sw) = (g.strides[0], g.strides[1], g.strides[2])
        let (dd, dh, dw) = (g.dilations[0], g.dilations[1], g.dilations[2])
        let (pd, ph, pw) = (g.padBegin[0], g.padBegin[1], g.padBegin[2])
        let ranges = g.transposedRanges()
        var out = [Double](repeating: 0, count: batch * m * outPlane)
        xs.withUnsafeBufferPointer { xs in
            ws.withUnsafeBufferPointer { ws in
                out.withUnsafeMutableBufferPointer { out in
                    for n in 0..<batch {
                        for oc in 0..<m {
                            let group = oc / mg, ml = oc % mg
                            let oBase = (n * m + oc) * outPlane
                            for cl in 0..<cg {
                                let c = group * cg + cl
                                let xBase = (n * channels + c) * inPlane
                                let wBase = (c * mg + ml) * kernelSize
                                for a in 0..<kd {
                                    for b in 0..<kh {
                                        for e in 0..<kw {
                                            let wv = ws[wBase + (a * kh + b) * kw + e]
                                            let rw = ranges[2][e]
                                            for id in ranges[0][a] {
                                                let od = id * sd - pd + a * dd
                                                for iy in ranges[1][b] {
                                                    let oy = iy * sh - ph + b * dh
                                                    let oRow = oBase + (od * oh + oy) * ow - pw + e * dw
                                                    let xRow = xBase + (id * ih + iy) * iw
                                                    for ix in rw { out[oRow + ix * sw] += wv * xs[xRow + ix] }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                            if let bias {
                                let b = bias.count == 1 ? bias[0] : bias[oc]
                                for i in 0..<outPlane { out[oBase + i] += b }
                            }
                        }
                    }
                }
            }
        }
        return [TensorValue(x.dataType, shape: outShape, reals: out)]
    }

    static let convTransposeInference: InferenceFunction = { context throws(OperatorError) in
        let type = context.input(0)?.elementType ?? context.input(1)?.elementType
        guard let x = context.input(0)?.shape else {
            context.setOutput(0, type: type, shape: nil)
            return
        }
        guard x.count >= 3 else { throw OperatorError("ConvTranspose: X must have rank 3 or more") }
        let w = context.input(1)?.shape
        if let w, w.count != x.count { throw OperatorError("ConvTranspose: W's rank differs from X's") }
        let spatial = x.count - 2
        let group = try context.node.int("group", default: 1)
        var kernel: [Int]? = nil
        if let w {
            let dims = w[2...].compactMap { dim -> Int? in
                if case .value(let v) = dim, v > 0, v <= Int64(Int32.max) { return Int(v) }
                return nil
            }
            if dims.count == spatial { kernel = dims }
        }
        let m = w.flatMap { multiplyDimension($0[1], by: group) } ?? context.freshDimension()
        var shape: [Dimension] = [x[0], m]
        guard var window = try? TransposedWindow(context.node, spatialRank: spatial, defaultKernel: kernel) else {
            context.setOutput(0, type: type, shape: shape + (0..<spatial).map { _ in context.freshDimension() })
            return
        }
        if let outputShape = window.outputShape {
            shape += outputShape.map { .value(Int64($0)) }
        } else if let input = context.input(0)?.staticShape {
            try window.resolve(input: Array(input[2...]))
            shape += window.output.map { .value(Int64($0)) }
        } else {
            for axis in 0..<spatial {
                // A static axis gives a static size; a symbolic one keeps its symbol when the
                // transposed window maps n to n (stride 1, kernel extent - 1 = pads + padding).
                if case .value(let v) = x[axis + 2], v >= 0, v <= Int64(Int32.max) {
                    var one = window
                    var probe = Array(repeating: 1, count: spatial)
                    probe[axis] = Int(v)
                    try one.resolve(input: probe)
                    shape.append(.value(Int64(one.output[axis])))
                } else {
                    let a = window.attributes
                    let keeps = a.strides[axis] == 1 && (a.autoPad.isSame
                        || (a.autoPad == .notSet && a.effectiveKernel(axis) - 1 + window.outputPadding[axis] == a.pads[axis] + a.pads[axis + spatial])
                        || (a.autoPad == .valid && a.effectiveKernel(axis) - 1 + window.outputPadding[axis] == 0))
                    shape.append(keeps ? x[axis + 2] : context.freshDimension())
                }
            }
        }
        context.setOutput(0, type: type, shape: shape)
    }
}
