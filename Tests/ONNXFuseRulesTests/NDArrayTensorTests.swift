import ONNXFuseOps
import ONNXFuseIR
import XCTest
@testable import ONNXFuseRules

/// Reading tensors into `NDArray` and rounding back to an element type once.
final class NDArrayTensorTests: XCTestCase {
    /// Host-order bytes of `values` (little-endian on every platform Swift runs on here).
    private func bytes<T: BitwiseCopyable>(_ values: [T]) -> TensorBytes {
        values.withUnsafeBytes { TensorBytes(copying: $0) }
    }

    private func values(_ tensor: Tensor, file: StaticString = #filePath, line: UInt = #line) -> [Double] {
        do {
            return try NDArray(tensor: tensor).values
        } catch {
            XCTFail(error.message, file: file, line: line)
            return []
        }
    }

    private func readError(_ tensor: Tensor, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            let array = try NDArray(tensor: tensor)
            XCTFail("expected an error, got \(array)", file: file, line: line)
            return ""
        } catch {
            return error.message
        }
    }

    private func writeError(_ values: [Double], _ type: DataType, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            let tensor = try NDArray(values).tensor(as: type)
            XCTFail("expected an error, got \(tensor)", file: file, line: line)
            return ""
        } catch {
            return error.message
        }
    }

    /// The raw bytes `values` become as `type`.
    private func rawBytes(_ values: [Double], _ type: DataType, file: StaticString = #filePath, line: UInt = #line) -> [UInt8] {
        do {
            let tensor = try NDArray(values).tensor(as: type)
            XCTAssertEqual(tensor.dataType, type, file: file, line: line)
            XCTAssertEqual(tensor.dims, [Int64(values.count)], file: file, line: line)
            XCTAssertNil(tensor.payloadProblem, file: file, line: line)
            guard case .raw(let b) = tensor.storage else {
                XCTFail("not raw_data", file: file, line: line)
                return []
            }
            return b.array
        } catch {
            XCTFail(error.message, file: file, line: line)
            return []
        }
    }

    /// The 16-bit patterns `values` become as `type` (float16 or bfloat16).
    private func bits16(_ values: [Double], _ type: DataType, file: StaticString = #filePath, line: UInt = #line) -> [UInt16] {
        let raw = rawBytes(values, type, file: file, line: line)
        return stride(from: 0, to: raw.count, by: 2).map { UInt16(raw[$0]) | UInt16(raw[$0 + 1]) << 8 }
    }

    // MARK: Reading

    func testReadsFloatsFromEveryField() {
        let dims: [Int64] = [2, 2]
        let floats: [Float] = [1.5, -2, 0.1, 3e38]
        let expected = floats.map(Double.init)
        XCTAssertEqual(values(Tensor(dataType: .float, dims: dims, values: floats)), expected)
        XCTAssertEqual(values(Tensor(dataType: .float, dims: dims, storage: .floatData(bytes(floats)))), expected)
        let doubles: [Double] = [1.5, -2, 0.1, 1e300]
        XCTAssertEqual(values(Tensor(dataType: .double, dims: dims, values: doubles)), doubles)
        XCTAssertEqual(values(Tensor(dataType: .double, dims: dims, storage: .doubleData(bytes(doubles)))), doubles)
        XCTAssertEqual(try NDArray(tensor: Tensor(dataType: .float, dims: dims, values: floats)).shape, [2, 2])
    }

    func testReadsHalfPrecision() {
        // 1, -2, the smallest subnormal 2^-24, the largest finite 65504, infinity, 0.333251953125.
        let half: [UInt16] = [0x3C00, 0xC000, 0x0001, 0x7BFF, 0x7C00, 0x3555]
        let expected: [Double] = [1, -2, 0x1p-24, 65504, .infinity, 0.333251953125]
        XCTAssertEqual(values(Tensor(dataType: .float16, dims: [6], values: half)), expected)
        XCTAssertEqual(values(Tensor(dataType: .float16, dims: [6], storage: .int32Data(bytes(half.map { Int32($0) })))), expected)
        let nan = values(Tensor(dataType: .float16, dims: [1], values: [UInt16(0x7E00)]))
        XCTAssertTrue(nan.first?.isNaN == true)
        // Every half decodes to what Float16 says it is.
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        for bits in 0...UInt16.max where !Float16(bitPattern: bits).isNaN {
            XCTAssertEqual(float16Value(bits), Double(Float16(bitPattern: bits)), "bits \(bits)")
        }
        #endif
    }

    func testReadsBFloat16() {
        // 1, 3.140625, -0.5, the smallest subnormal 2^-133, the largest finite.
        let bf: [UInt16] = [0x3F80, 0x4049, 0xBF00, 0x0001, 0x7F7F]
        let expected: [Double] = [1, 3.140625, -0.5, 0x1p-133, 0x1.FEp127]
        XCTAssertEqual(values(Tensor(dataType: .bfloat16, dims: [5], values: bf)), expected)
        XCTAssertEqual(values(Tensor(dataType: .bfloat16, dims: [5], storage: .int32Data(bytes(bf.map { Int32($0) })))), expected)
    }

    func testReadsIntegersAndBool() {
        XCTAssertEqual(values(Tensor(dataType: .int8, dims: [3], values: [Int8(-128), 0, 127])), [-128, 0, 127])
        XCTAssertEqual(values(Tensor(dataType: .int8, dims: [2], storage: .int32Data(bytes([Int32(-5), 7])))), [-5, 7])
        XCTAssertEqual(values(Tensor(dataType: .uint8, dims: [2], values: [UInt8(0), 255])), [0, 255])
        XCTAssertEqual(values(Tensor(dataType: .uint8, dims: [2], storage: .int32Data(bytes([Int32(200), 1])))), [200, 1])
        XCTAssertEqual(values(Tensor(dataType: .bool, dims: [2], values: [UInt8(1), 0])), [1, 0])
        XCTAssertEqual(values(Tensor(dataType: .bool, dims: [2], storage: .int32Data(bytes([Int32(0), 1])))), [0, 1])
        XCTAssertEqual(values(Tensor(dataType: .int16, dims: [2], values: [Int16.min, Int16.max])), [-32768, 32767])
        XCTAssertEqual(values(Tensor(dataType: .uint16, dims: [1], values: [UInt16.max])), [65535])
        XCTAssertEqual(values(Tensor(dataType: .int16, dims: [1], storage: .int32Data(bytes([Int32(-300)])))), [-300])
        XCTAssertEqual(values(Tensor(dataType: .int32, dims: [2], values: [Int32.min, Int32.max])), [-2147483648, 2147483647])
        XCTAssertEqual(values(Tensor(dataType: .int32, dims: [1], storage: .int32Data(bytes([Int32(-9)])))), [-9])
        XCTAssertEqual(values(Tensor(dataType: .uint32, dims: [1], values: [UInt32.max])), [4294967295])
        XCTAssertEqual(values(Tensor(dataType: .uint32, dims: [1], storage: .uint64Data(bytes([UInt64(4_000_000_000)])))), [4e9])
        XCTAssertEqual(values(Tensor(dataType: .int64, dims: [3], values: [Int64(-1), 1 << 53, -(1 << 53)])), [-1, 0x1p53, -0x1p53])
        XCTAssertEqual(values(Tensor(dataType: .int64, dims: [2], storage: .int64Data(bytes([Int64(2), -3])))), [2, -3])
        XCTAssertEqual(values(Tensor(dataType: .uint64, dims: [1], values: [UInt64(1) << 63])), [0x1p63])
        XCTAssertEqual(values(Tensor(dataType: .uint64, dims: [1], storage: .uint64Data(bytes([UInt64(42)])))), [42])
    }

    /// Raw data is little-endian regardless of the host, and may sit at any byte offset.
    func testReadsRawLittleEndianAtOddOffsets() {
        let block: [UInt8] = [0xAA, 0x00, 0x00, 0xC0, 0x3F, 0x01, 0x00]  // 1.5f at offset 1, then 1 as int16
        let storage = TensorBytes(copying: block)
        let misaligned = TensorBytes(owner: storage.owner, baseAddress: storage.baseAddress! + 1, count: 4)
        XCTAssertEqual(values(Tensor(dataType: .float, dims: [], storage: .raw(misaligned))), [1.5])
        let int16 = TensorBytes(owner: storage.owner, baseAddress: storage.baseAddress! + 5, count: 2)
        XCTAssertEqual(values(Tensor(dataType: .int16, dims: [], storage: .raw(int16))), [1])
    }

    func testReadsEmptyAndScalarTensors() throws {
        XCTAssertEqual(try NDArray(tensor: Tensor(dataType: .float, dims: [0], storage: .none)), NDArray(shape: [0], values: []))
        XCTAssertEqual(try NDArray(tensor: Tensor(dataType: .float, dims: [2, 0, 3], storage: .raw(.empty))), NDArray(shape: [2, 0, 3], values: []))
        XCTAssertEqual(try NDArray(tensor: Tensor(dataType: .float, dims: [], values: [Float(4)])), .scalar(4))
    }

    func testReadErrors() {
        XCTAssertEqual(readError(Tensor(name: "names", dataType: .string, dims: [1], storage: .stringData([[65]]))),
                       "cannot compute with string (tensor 'names')")
        XCTAssertEqual(readError(Tensor(dataType: .complex64, dims: [1], values: [Float(1), 2])), "cannot compute with complex64 (a tensor)")
        XCTAssertEqual(readError(Tensor(dataType: .float8e4m3fn, dims: [1], values: [UInt8(0x38)])), "cannot compute with float8e4m3fn (a tensor)")
        XCTAssertEqual(readError(Tensor(dataType: .int4, dims: [2], values: [UInt8(0x21)])), "cannot compute with int4 (a tensor)")
        XCTAssertEqual(readError(Tensor(dataType: .undefined, dims: [1], values: [UInt8(0)])), "cannot compute with undefined (a tensor)")
        XCTAssertEqual(readError(Tensor(name: "w", dataType: .float, dims: [2], storage: .raw(TensorBytes(copying: [0, 0, 0])))),
                       "tensor 'w' raw_data has 3 bytes but dims [2] of float need 8")
        // Beyond int64, a uint64 without a float64 is refused rather than computed with a neighbour.
        XCTAssertEqual(readError(Tensor(dataType: .uint64, dims: [1], storage: .uint64Data(bytes([UInt64.max])))),
                       "element 0 of a tensor (uint64) is 18446744073709551615, which neither int64 nor float64 holds exactly")
    }

    func testIntegersBeyondFloat64StayExact() throws {
        // 2^53 + 1 has no float64, INT64_MAX (a Slice's "to the end") neither: both are kept exactly,
        // compute exactly and are written back exactly.
        let ends = try NDArray(tensor: Tensor(name: "ends", dataType: .int64, dims: [2], values: [Int64(1), (1 << 53) + 1]))
        XCTAssertEqual(ends.integers, [1, (1 << 53) + 1])
        let sum = try ends + NDArray(shape: [], integers: [1])
        XCTAssertEqual(sum.integers, [2, (1 << 53) + 2])
        XCTAssertEqual(try (sum - ends).integers, [1, 1])
        XCTAssertEqual(try (ends * NDArray(shape: [2], integers: [3, 1])).integers, [3, (1 << 53) + 1])
        XCTAssertEqual(try (sum / NDArray(shape: [], integers: [2])).integers, [1, (1 << 52) + 1])
        XCTAssertEqual(try NDArray(tensor: ends.tensor(as: .int64)).integers, [1, (1 << 53) + 1])
        XCTAssertThrowsError(try NDArray(shape: [], integers: [.max]) + NDArray(shape: [], integers: [1])) { error in
            XCTAssertEqual((error as? EvaluationError)?.message, "integer overflow in 9223372036854775807 + 1")
        }
        // Compared exactly: 2^53 + 1 is not 2^53, though their float64 values are the same.
        let neighbour = NDArray(shape: [2], integers: [1, 1 << 53])
        XCTAssertNotEqual(ends, neighbour)
        XCTAssertEqual(try NDArray.comparison(ends, neighbour, integers: { $0 > $1 }, reals: { $0 > $1 }).values, [0, 1])
    }

    // MARK: Writing

    func testWritesFloatAndDouble() {
        XCTAssertEqual(rawBytes([1.5, -2], .float), [0, 0, 0xC0, 0x3F, 0, 0, 0, 0xC0])
        // 0.1 rounds once to the nearest float, 0x3DCCCCCD.
        XCTAssertEqual(rawBytes([0.1], .float), [0xCD, 0xCC, 0xCC, 0x3D])
        XCTAssertEqual(rawBytes([0.1], .double), [0x9A, 0x99, 0x99, 0x99, 0x99, 0x99, 0xB9, 0x3F])
        // Overflow to infinity; the caller checks isFinite.
        XCTAssertEqual(rawBytes([1e39, -1e39], .float), [0, 0, 0x80, 0x7F, 0, 0, 0x80, 0xFF])
    }

    func testWritesShapeAsDims() throws {
        let tensor = try NDArray(shape: [2, 1, 3], values: [1, 2, 3, 4, 5, 6]).tensor(as: .float)
        XCTAssertEqual(tensor.dims, [2, 1, 3])
        XCTAssertNil(tensor.payloadProblem)
        XCTAssertEqual(try NDArray(tensor: tensor), NDArray(shape: [2, 1, 3], values: [1, 2, 3, 4, 5, 6]))
        let empty = try NDArray(shape: [0, 2], values: []).tensor(as: .float16)
        XCTAssertEqual(empty.dims, [0, 2])
        XCTAssertNil(empty.payloadProblem)
        XCTAssertEqual(try NDArray.scalar(2).tensor(as: .int64).dims, [])
    }

    func testFloat16RoundsToNearestEven() {
        // Between 2048 and 2050 (spacing 2 there): 2049 is a tie and goes to the even 2048;
        // 2051 is a tie and goes to 2052.
        XCTAssertEqual(bits16([2049, 2051, 2049.0001], .float16), [0x6800, 0x6802, 0x6801])
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: to even, 1. 1 + 3 * 2^-11: up to 1 + 2^-9.
        XCTAssertEqual(bits16([1 + 0x1p-11, 1 + 0x3p-11, -(1 + 0x1p-11)], .float16), [0x3C00, 0x3C02, 0xBC00])
        XCTAssertEqual(bits16([0.1, 1.0 / 3], .float16), [0x2E66, 0x3555])
        XCTAssertEqual(bits16([0, -0.0], .float16), [0x0000, 0x8000])
    }

    /// 1 + 2^-11 + 2^-40 is just above a float16 tie. Rounding through float first loses the
    /// 2^-40 (float keeps 24 bits) and lands exactly on the tie, which then goes down to even.
    func testFloat16RoundsOnceNotThroughFloat() {
        let d = 1 + 0x1p-11 + 0x1p-40
        XCTAssertEqual(bits16([d], .float16), [0x3C01])
        XCTAssertEqual(float16Bits(Double(Float(d))), 0x3C00, "rounding via Float is wrong here")
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        // Swift's Float16(Double) rounds once too (compiler-rt's __truncdfhf2 on Linux x86_64).
        XCTAssertEqual(Float16(d).bitPattern, 0x3C01)
        XCTAssertEqual(Float16(Float(d)).bitPattern, 0x3C00)
        #endif
    }

    func testFloat16SubnormalsAndOverflow() {
        // Smallest subnormal 2^-24; 2^-25 is a tie between 0 and it (to even: 0); 3 * 2^-25 is
        // a tie between 2^-24 and 2^-23 (to even: 2^-23); just above 2^-25 rounds up.
        XCTAssertEqual(bits16([0x1p-24, 0x1p-25, 0x3p-25, 0x1p-25 + 0x1p-60, 0x1p-26], .float16),
                       [0x0001, 0x0000, 0x0002, 0x0001, 0x0000])
        // Largest subnormal 1023 * 2^-24; halfway to the smallest normal 2^-14 rounds up to it.
        XCTAssertEqual(bits16([0x3FFp-24, 0x7FFp-25], .float16), [0x03FF, 0x0400])
        // Largest finite 65504; 65520 is halfway to 65536 (= infinity) and rounds up to it.
        XCTAssertEqual(bits16([65504, 65519.99, 65520, -65520, 1e10], .float16), [0x7BFF, 0x7BFF, 0x7C00, 0xFC00, 0x7C00])
        XCTAssertEqual(bits16([.infinity, -.infinity], .float16), [0x7C00, 0xFC00])
        let nan = bits16([.nan], .float16)[0]
        XCTAssertEqual(nan & 0x7C00, 0x7C00)
        XCTAssertNotEqual(nan & 0x03FF, 0)
    }

    /// float16Bits agrees with Swift's Float16(Double) on seeded random doubles of every scale.
    func testFloat16AgreesWithSwiftFloat16() {
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        var generator = SeededRandom(seed: 16)
        var mismatches = 0
        for _ in 0..<200_000 where mismatches < 10 {
            let d = randomDouble(&generator, exponents: -30...17)
            if float16Bits(d) != Float16(d).bitPattern {
                XCTFail("\(d) (\(d.bitPattern)): \(float16Bits(d)) != Float16's \(Float16(d).bitPattern)")
                mismatches += 1
            }
        }
        #endif
    }

    /// The generic rounding with float32's format agrees with Float(Double), which the hardware
    /// rounds correctly: a check of `roundToBinary` itself, ties and subnormals included.
    func testGenericRoundingMatchesFloat32() {
        var generator = SeededRandom(seed: 32)
        var mismatches = 0
        for _ in 0..<200_000 where mismatches < 10 {
            let d = randomDouble(&generator, exponents: -155...130)
            let bits = roundToBinary(d, exponentBits: 8, fractionBits: 23)
            if bits != Float(d).bitPattern {
                XCTFail("\(d) (\(d.bitPattern)): \(bits) != Float's \(Float(d).bitPattern)")
                mismatches += 1
            }
        }
    }

    /// A random double with a random exponent in `exponents`, often exactly on or next to a tie
    /// of a narrow format.
    private func randomDouble(_ generator: inout SeededRandom, exponents: ClosedRange<Int>) -> Double {
        var significand = UInt64.random(in: 0..<(1 << 52), using: &generator)
        switch UInt8.random(in: 0..<4, using: &generator) {
        case 0: significand &= ~((1 << 40) - 1)  // short: many exact ties
        case 1: significand = (significand & ~((1 << 42) - 1)) | (1 << 41)  // a tie at 10 bits
        case 2: significand = (significand & ~((1 << 29) - 1)) | (1 << 28) | UInt64.random(in: 0...1, using: &generator)
        default: break
        }
        let exponent = Int.random(in: exponents, using: &generator)
        let magnitude = Double(sign: .plus, exponent: exponent, significand: 1 + Double(significand) * 0x1p-52)
        return Bool.random(using: &generator) ? -magnitude : magnitude
    }

    func testBFloat16RoundsToNearestEven() {
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7 (to even: 1); 1 + 3 * 2^-8 is halfway
        // between 1 + 2^-7 (odd) and 1 + 2^-6 (to even: the latter).
        XCTAssertEqual(bits16([1 + 0x1p-8, 1 + 0x3p-8, -(1 + 0x3p-8)], .bfloat16), [0x3F80, 0x3F82, 0xBF82])
        // pi: 0x40490FDB as a float; bfloat16 keeps 0x4049 (the dropped part is below half).
        XCTAssertEqual(bits16([Double.pi, 0.1, 1.0 / 3], .bfloat16), [0x4049, 0x3DCD, 0x3EAB])
        XCTAssertEqual(bits16([0, -0.0], .bfloat16), [0x0000, 0x8000])
    }

    /// 1 + 2^-8 + 2^-30 is just above a bfloat16 tie. Through float it becomes 1 + 2^-8 exactly
    /// (float keeps 24 bits), a tie, rounded down to even: 0x3F80. Rounded directly it is
    /// above the tie: 0x3F81, the nearest bfloat16.
    func testBFloat16RoundsDirectlyNotThroughFloat() {
        let d = 1 + 0x1p-8 + 0x1p-30
        XCTAssertEqual(Double(Float(d)), 1 + 0x1p-8)
        XCTAssertEqual(bfloat16Bits(Double(Float(d))), 0x3F80, "double rounding")
        XCTAssertEqual(bits16([d, -d], .bfloat16), [0x3F81, 0xBF81])
        // 1 + 2^-7 is nearer to d than 1 is.
        XCTAssertLessThan((1 + 0x1p-7) - d, d - 1)
        // The same at the low end, in the subnormal range: 2^-134 + 2^-160 is above the tie
        // between 0 and 2^-133, but as a float it is 2^-134 (a float subnormal), a tie.
        let tiny = 0x1p-134 + 0x1p-160
        XCTAssertEqual(Double(Float(tiny)), 0x1p-134)
        XCTAssertEqual(bfloat16Bits(Double(Float(tiny))), 0x0000)
        XCTAssertEqual(bits16([tiny], .bfloat16), [0x0001])
    }

    func testBFloat16SubnormalsAndOverflow() {
        // Smallest subnormal 2^-133; 2^-134 is a tie (to even: 0); 3 * 2^-134 a tie between
        // 2^-133 and 2^-132 (to even: 2^-132).
        XCTAssertEqual(bits16([0x1p-133, 0x1p-134, 0x3p-134, 0x1p-140, -0x1p-133], .bfloat16),
                       [0x0001, 0x0000, 0x0002, 0x0000, 0x8001])
        // Largest subnormal 127 * 2^-133; 127.5 * 2^-133 rounds up to the smallest normal 2^-126.
        XCTAssertEqual(bits16([0x7Fp-133, 0xFFp-134, 0x1p-126], .bfloat16), [0x007F, 0x0080, 0x0080])
        // Largest finite (2 - 2^-7) * 2^127 = 2^128 - 2^120; 2^128 - 2^119 is halfway to 2^128
        // and goes up (the largest finite has an odd significand): infinity.
        XCTAssertEqual(bits16([0x1p128 - 0x1p120, 0x1p128 - 0x1p119 - 0x1p100, 0x1p128 - 0x1p119, -(0x1p128 - 0x1p119)], .bfloat16),
                       [0x7F7F, 0x7F7F, 0x7F80, 0xFF80])
        // Float's largest finite is above the bfloat16 halfway point: infinity.
        XCTAssertEqual(bits16([Double(Float.greatestFiniteMagnitude), 1e39, .infinity, -.infinity], .bfloat16),
                       [0x7F80, 0x7F80, 0x7F80, 0xFF80])
        let nan = bits16([.nan, -.nan], .bfloat16)
        XCTAssertEqual(nan[0], 0x7FC0)
        XCTAssertEqual(nan[1], 0xFFC0)
    }

    /// Every finite 16-bit pattern decodes and encodes back to itself.
    func testSixteenBitRoundTrip() {
        for bits in 0...UInt16.max {
            let half = float16Value(bits)
            if !half.isNaN { XCTAssertEqual(float16Bits(half), bits) }
            let brain = bfloat16Value(bits)
            if !brain.isNaN { XCTAssertEqual(bfloat16Bits(brain), bits) }
        }
    }

    func testWritesIntegers() {
        XCTAssertEqual(rawBytes([1, -2, 127, -128], .int8), [1, 0xFE, 0x7F, 0x80])
        XCTAssertEqual(rawBytes([0, 255], .uint8), [0, 0xFF])
        XCTAssertEqual(rawBytes([0, 1, 1], .bool), [0, 1, 1])
        XCTAssertEqual(rawBytes([-2, 0x1p15 - 1], .int16), [0xFE, 0xFF, 0xFF, 0x7F])
        XCTAssertEqual(rawBytes([65535], .uint16), [0xFF, 0xFF])
        XCTAssertEqual(rawBytes([-1, 0x1p31 - 1], .int32), [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        XCTAssertEqual(rawBytes([0x1p32 - 1], .uint32), [0xFF, 0xFF, 0xFF, 0xFF])
        XCTAssertEqual(rawBytes([-0x1p63, 258], .int64), [0, 0, 0, 0, 0, 0, 0, 0x80, 2, 1, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(rawBytes([0x1p64 - 0x1p11], .uint64), [0, 0xF8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        XCTAssertEqual(rawBytes([-0.0], .int32), [0, 0, 0, 0])
    }

    func testIntegerErrors() {
        XCTAssertEqual(writeError([1, 128], .int8), "element 1 is 128, out of range for int8")
        XCTAssertEqual(writeError([-129], .int8), "element 0 is -129, out of range for int8")
        XCTAssertEqual(writeError([-1], .uint8), "element 0 is -1, out of range for uint8")
        XCTAssertEqual(writeError([256], .uint8), "element 0 is 256, out of range for uint8")
        XCTAssertEqual(writeError([2], .bool), "element 0 is 2, out of range for bool")
        XCTAssertEqual(writeError([65536], .uint16), "element 0 is 65536, out of range for uint16")
        XCTAssertEqual(writeError([0x1p31], .int32), "element 0 is 2147483648, out of range for int32")
        XCTAssertEqual(writeError([-1], .uint32), "element 0 is -1, out of range for uint32")
        XCTAssertEqual(writeError([0x1p63], .int64), "element 0 is 9223372036854775808, out of range for int64")
        XCTAssertEqual(writeError([0x1p64], .uint64), "element 0 is 1.8446744073709552e+19, out of range for uint64")
        XCTAssertEqual(writeError([3, 2.5], .int32), "element 1 is 2.5, not an integer, so it cannot be stored as int32")
        XCTAssertEqual(writeError([.nan], .int64), "element 0 is nan, not an integer, so it cannot be stored as int64")
        XCTAssertEqual(writeError([.infinity], .int64), "element 0 is inf, out of range for int64")
        XCTAssertEqual(writeError([1], .string), "cannot compute with string")
        XCTAssertEqual(writeError([1], .float8e5m2), "cannot compute with float8e5m2")
    }

    func testRoundTripsThroughEveryType() throws {
        let samples: [DataType: [Double]] = [
            .float: [0.1, -3.25, 1e-40], .double: [0.1, -0x1p-1070], .float16: [0.099975586, 65504].map { float16Value(float16Bits($0)) },
            .bfloat16: [3.140625, -0x1p-133], .int8: [-128, 127], .uint8: [0, 255], .int16: [-32768], .uint16: [65535],
            .int32: [-7], .uint32: [4e9], .int64: [-0x1p53], .uint64: [0x1p63], .bool: [1, 0],
        ]
        for (type, values) in samples {
            let exact = type == .float ? values.map { Double(Float($0)) } : values
            XCTAssertEqual(try NDArray(tensor: NDArray(exact).tensor(as: type)).values, exact, "\(type)")
        }
    }

    // MARK: Cast

    func testCast() throws {
        let a = NDArray([0.1, 2.7, -2.7, 65520])
        XCTAssertEqual(try a.cast(to: .double), a)
        XCTAssertEqual(try a.cast(to: .float).values, [0.10000000149011612, 2.700000047683716, -2.700000047683716, 65520])
        XCTAssertEqual(try a.cast(to: .float16).values, [0.0999755859375, 2.69921875, -2.69921875, .infinity])
        XCTAssertEqual(try a.cast(to: .bfloat16).values, [0.10009765625, 2.703125, -2.703125, 65536])
        XCTAssertEqual(try a.cast(to: .int32).values, [0, 2, -2, 65520])
        XCTAssertEqual(try NDArray([-0.5]).cast(to: .int32).values[0].sign, .plus)
        XCTAssertEqual(try NDArray([0, -0.5, 3, .nan]).cast(to: .bool).values, [0, 1, 1, 1])
        XCTAssertThrowsError(try a.cast(to: .int8)) { error in
            XCTAssertEqual((error as? EvaluationError)?.message, "cannot cast element 3 (65520) to int8: out of range")
        }
        XCTAssertThrowsError(try NDArray([.nan]).cast(to: .int64)) { error in
            XCTAssertEqual((error as? EvaluationError)?.message, "cannot cast element 0 (nan) to int64: out of range")
        }
        XCTAssertThrowsError(try a.cast(to: .complex128))
    }
}
