#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import ONNXFuseIR

// Attention (opset 23): the kernel of the variant rules create, scaled dot-product attention on
// 4-D Q, K and V with an optional mask; other variants are declined (`OperatorError.unsupported`).

extension NeuralNetworkKit {
    /// Registers this file's kernel (Attention's inference is with the inference-only operators).
    static func registerAttentionOperators(_ registry: inout OperatorRegistry) {
        registry.register(["Attention"], kernel: attentionKernel)
    }

    /// softmax(Q·Kᵀ · scale + mask) · V per batch and head, Q [B, Hq, Sq, D], K [B, Hk, Skv, D],
    /// V [B, Hk, Skv, Dv] with Hq a multiple of Hk (query heads share key heads in groups), the
    /// mask additive (float) or a bool where true takes part, broadcast to [B, Hq, Sq, Skv]; a row
    /// that every key is masked from gives zeros. `scale` defaults to 1/√D. Declined: 3-D inputs,
    /// a cache, `nonpad_kv_seqlen`, causal masking, softcap, a `qk_matmul_output_mode` other than
    /// 0, outputs beyond Y, and opset 25's windows.
    static let attentionKernel: Kernel = { context, inputs throws(OperatorError) in
        let q = try requiredInput(inputs, 0, context), k = try requiredInput(inputs, 1, context), v = try requiredInput(inputs, 2, context)
        guard q.rank == 4, k.rank == 4, v.rank == 4 else { throw .unsupported("Attention: only 4-D Q, K and V are computed here") }
        guard inputs.count <= 4 || inputs[4...].allSatisfy({ $0 == nil }) else {
            throw .unsupported("Attention: a cache or nonpad_kv_seqlen is not computed here")
        }
        guard context.outputCount <= 1 else { throw .unsupported("Attention: only the output Y is computed here") }
        guard try context.int("is_causal", default: 0) == 0, try context.float("softcap", default: 0) == 0,
              try context.int("qk_matmul_output_mode", default: 0) == 0,
              try context.int("left_window_size", default: -1) == -1, try context.int("right_window_size", default: -1) == -1 else {
            throw .unsupported("Attention: causal masking, softcap, windows and qk_matmul_output are not computed here")
        }
        let (batch, qHeads, qLength, size) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (kvHeads, kvLength, valueSize) = (k.shape[1], k.shape[2], v.shape[3])
        guard k.shape[0] == batch, v.shape[0] == batch, k.shape[3] == size, v.shape[1] == kvHeads, v.shape[2] == kvLength else {
            throw OperatorError("Attention: Q \(q.shape), K \(k.shape) and V \(v.shape) do not fit")
        }
        guard kvHeads > 0, qHeads % kvHeads == 0 else { throw OperatorError("Attention: \(qHeads) query heads are not a multiple of \(kvHeads) key heads") }
        let qs = try realElements(q, context, "Q"), ks = try realElements(k, context, "K"), vs = try realElements(v, context, "V")
        let scale = context.attribute("scale") != nil ? try context.float("scale", default: 1) : 1 / Double(size).squareRoot()
        let scoreShape = [batch, qHeads, qLength, kvLength]
        try checkWork([batch, qHeads, qLength, kvLength, size + valueSize], context)
        // The mask as an additive bias over the scores.
        var bias: [Double]?
        if let mask = optionalInput(inputs, 3) {
            let indices = try parameterIndices(mask, to: scoreShape, context, "attn_mask")
            switch mask.elements {
            case .booleans(let allowed): bias = indices.map { allowed[$0] ? 0 : -.infinity }
            case .reals(let values): bias = indices.map { values[$0] }
            default: throw OperatorError("Attention: attn_mask must be bool or floating-point, not \(mask.dataType)")
            }
        }
        let group = qHeads / kvHeads
        var y = [Double](repeating: 0, count: batch * qHeads * qLength * valueSize)
        var scores = [Double](repeating: 0, count: kvLength)
        for b in 0..<batch {
            for h in 0..<qHeads {
                let kh = h / group
                for i in 0..<qLength {
                    let qBase = ((b * qHeads + h) * qLength + i) * size
                    var maximum = -Double.infinity
                    for j in 0..<kvLength {
                        let kBase = ((b * kvHeads + kh) * kvLength + j) * size
                        var dot = 0.0
                        for d in 0..<size { dot += qs[qBase + d] * ks[kBase + d] }
                        var score = dot * scale
                        if let bias { score += bias[((b * qHeads + h) * qLength + i) * kvLength + j] }
                        scores[j] = score
                        maximum = Swift.max(maximum, score)
                    }
                    // Every key masked: a row of zeros.
                    guard maximum > -.infinity else { continue }
                    var sum = 0.0
                    for j in 0..<kvLength {
                        scores[j] = exp(scores[j] - maximum)
                        sum += scores[j]
                    }
                    let yBase = ((b * qHeads + h) * qLength + i) * valueSize
                    for j in 0..<kvLength {
                        let weight = scores[j] / sum
                        let vBase = ((b * kvHeads + kh) * kvLength + j) * valueSize
                        for d in 0..<valueSize { y[yBase + d] += weight * vs[vBase + d] }
                    }
                }
            }
        }
        return [ElementwiseKit.reals(q.dataType, [batch, qHeads, qLength, valueSize], y)]
    }
}
