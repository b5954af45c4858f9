import XCTest
@testable import ONNXFuseRules

/// `StreamedTensor.largestMagnitudeBits`, the vectorized bound behind a fold's finiteness check,
/// against a scalar scan: every length around the eight-lane step, every position of the
/// largest element, misaligned storage, and the special values.
final class LargestMagnitudeTests: XCTestCase {
    private func largestBits(_ values: [Float], misalignedBy offset: Int) -> UInt32 {
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: values.count * 4 + offset, alignment: 16)
        defer { bytes.deallocate() }
        for (index, value) in values.enumerated() {
            bytes.storeBytes(of: value.bitPattern, toByteOffset: offset + index * 4, as: UInt32.self)
        }
        let view = UnsafeRawBufferPointer(rebasing: bytes[offset...])
        return StreamedTensor.largestMagnitudeBits(view, count: values.count)
    }

    func testTheLargestMagnitudeIsFoundAtEveryPositionAndLength() {
        XCTAssertEqual(largestBits([], misalignedBy: 0), 0)
        for count in 1...35 {
            for position in 0..<count {
                var values = (0..<count).map { Float($0 % 5) * 0.25 - 0.5 }
                values[position] = -1_000
                for offset in [0, 1, 3] {
                    XCTAssertEqual(largestBits(values, misalignedBy: offset), Float(1_000).bitPattern,
                                   "count \(count), largest at \(position), offset \(offset)")
                }
            }
        }
    }

    func testInfinitiesAndNaNsRankAboveEveryFiniteValueWhereverTheyAre() {
        for special in [Float.infinity, -Float.infinity, Float.nan, -Float.nan] {
            for position in [0, 7, 8, 16, 18] {
                var values = [Float](repeating: -Float.greatestFiniteMagnitude, count: 19)
                values[position] = special
                XCTAssertGreaterThanOrEqual(largestBits(values, misalignedBy: 2), Float.infinity.bitPattern,
                                            "\(special) at \(position)")
            }
        }
        let finite = [Float](repeating: -Float.greatestFiniteMagnitude, count: 19)
        XCTAssertEqual(largestBits(finite, misalignedBy: 0), Float.greatestFiniteMagnitude.bitPattern)
    }
}
