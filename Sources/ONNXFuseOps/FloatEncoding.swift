import ONNXFuseIR

// Exact conversions between float64 and the 16-bit floating-point encodings, shared by the
// reference kernels and the rule language's evaluator.

// MARK: - 16-bit floating-point encodings

/// The IEEE half-precision value with these bits, exactly.
package func float16Value(_ bits: UInt16) -> Double {
    let negative = bits & 0x8000 != 0
    let exponent = Int(bits >> 10) & 0x1F
    let fraction = Double(bits & 0x3FF)
    let magnitude: Double
    switch exponent {
    case 0x1F: magnitude = fraction == 0 ? .infinity : .nan
    case 0: magnitude = fraction * 0x1p-24
    default: magnitude = (1024 + fraction) * Double(sign: .plus, exponent: exponent - 25, significand: 1)
    }
    return negative ? -magnitude : magnitude
}

/// The bfloat16 value with these bits (the upper half of a float32), exactly.
package func bfloat16Value(_ bits: UInt16) -> Double {
    Double(Float(bitPattern: UInt32(bits) << 16))
}

/// Reads `count` little-endian elements of the floating-point `type` (float, double, float16
/// or bfloat16) at `source` into float64, exactly: the one reader behind `TensorValue`'s and
/// the rule evaluator's, so that a weight read whole or a chunk at a time gives the same values.
package func readReals(_ source: UnsafeRawPointer, as type: DataType, count: Int, into destination: UnsafeMutablePointer<Double>) {
    // A plain loop per type (float32 is nearly every weight): it vectorizes.
    switch type {
    case .float:
        for index in 0..<count {
            destination[index] = Double(Float(bitPattern: UInt32(littleEndian: source.loadUnaligned(fromByteOffset: index &* 4, as: UInt32.self))))
        }
    case .double:
        for index in 0..<count {
            destination[index] = Double(bitPattern: UInt64(littleEndian: source.loadUnaligned(fromByteOffset: index &* 8, as: UInt64.self)))
        }
    case .float16:
        for index in 0..<count { destination[index] = float16Value(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: index &* 2, as: UInt16.self))) }
    default:
        precondition(type == .bfloat16, "readReals reads float, double, float16 and bfloat16, not \(type)")
        for index in 0..<count { destination[index] = bfloat16Value(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: index &* 2, as: UInt16.self))) }
    }
}

/// The IEEE half-precision bits nearest to `value` (one rounding, ties to even).
package func float16Bits(_ value: Double) -> UInt16 {
    UInt16(roundToBinary(value, exponentBits: 5, fractionBits: 10))
}

/// The bfloat16 bits nearest to `value`, rounding the double directly (not through float32,
/// which would round twice): 8 significant bits, float32's exponent range and subnormals.
package func bfloat16Bits(_ value: Double) -> UInt16 {
    UInt16(roundToBinary(value, exponentBits: 8, fractionBits: 7))
}

/// The bit pattern of the value nearest to `value` (ties to even) in the IEEE-style binary
/// format with `exponentBits` and `fractionBits` (1 + exponentBits + fractionBits <= 32,
/// fractionBits < 52). Too large values become infinity, NaN a quiet NaN of the same sign.
package func roundToBinary(_ value: Double, exponentBits: Int, fractionBits: Int) -> UInt32 {
    let signBit: UInt32 = value.sign == .minus ? 1 << UInt32(exponentBits + fractionBits) : 0
    let infinityBits = UInt32((1 << exponentBits) - 1) << UInt32(fractionBits)
    if value.isNaN { return signBit | infinityBits | 1 << UInt32(fractionBits - 1) }
    if value.isInfinite { return signBit | infinityBits }
    if value == 0 { return signBit }
    let magnitude = value.magnitude
    // magnitude = significand * 2^scale, exactly.
    let significand: UInt64
    let scale: Int
    if magnitude.isNormal {
        significand = magnitude.significandBitPattern | 1 << 52
        scale = Int(magnitude.exponent) - 52
    } else {
        significand = magnitude.significandBitPattern
        scale = -1074
    }
    let bias = (1 << (exponentBits - 1)) - 1
    let minExponent = 1 - bias
    // The spacing of the target format around `magnitude` is 2^quantum.
    let quantum = max(Int(magnitude.exponent), minExponent) - fractionBits
    let shift = quantum - scale  // > 0 for every format narrower than double
    var units: UInt64  // magnitude / 2^quantum, rounded to nearest, ties to even
    if shift >= 54 {
        units = 0  // below half the smallest subnormal: significand < 2^53 <= 2^(shift - 1)
    } else {
        units = significand >> UInt64(shift)
        let remainder = significand & ((1 << UInt64(shift)) - 1)
        let half: UInt64 = 1 << UInt64(shift - 1)
        if remainder > half || (remainder == half && units & 1 == 1) { units += 1 }
    }
    // Exponent field and fraction together: a carry out of the fraction bumps the exponent,
    // and a subnormal that rounds up to 2^fractionBits becomes the smallest normal.
    let exponentOffset = UInt64(max(Int(magnitude.exponent), minExponent) - minExponent)
    let bits = exponentOffset << UInt64(fractionBits) + units
    return bits >= UInt64(infinityBits) ? signBit | infinityBits : signBit | UInt32(bits)
}
