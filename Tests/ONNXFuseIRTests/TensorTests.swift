import XCTest
import ONNXFuseIR

final class TensorTests: XCTestCase {
    func testPayloadSizeMustMatchDims() {
        let ok = Tensor(dataType: .float, dims: [2, 3], values: [Float](repeating: 1, count: 6))
        XCTAssertNil(ok.payloadProblem)
        let short = Tensor(dataType: .float, dims: [2, 3], values: [Float](repeating: 1, count: 5))
        XCTAssertEqual(short.payloadProblem, "raw_data has 20 bytes but dims [2, 3] of float need 24")
        let long = Tensor(dataType: .float, dims: [2, 3], values: [Float](repeating: 1, count: 7))
        XCTAssertNotNil(long.payloadProblem)
        XCTAssertEqual(Tensor(dataType: .float, dims: [-1], values: [Float(1)]).payloadProblem, "dim 0 is negative (-1)")
        XCTAssertNotNil(Tensor(dataType: .float, dims: [Int64.max, 4], storage: .none).payloadProblem)
        XCTAssertNil(Tensor(dataType: .float, dims: [0, 4], storage: .none).payloadProblem)
        XCTAssertEqual(Tensor(dataType: .float, dims: [3], storage: .none).payloadProblem, "has no data for 3 elements")
    }

    func testSubByteTypesPackIntoWholeBytes() {
        XCTAssertEqual(DataType.int4.rawByteCount(elements: 5), 3)
        XCTAssertEqual(DataType.uint2.rawByteCount(elements: 5), 2)
        XCTAssertEqual(DataType.float6e2m3.rawByteCount(elements: 5), 4)
        XCTAssertEqual(DataType.complex128.rawByteCount(elements: 2), 32)
        XCTAssertNil(DataType.string.rawByteCount(elements: 1))
        XCTAssertNil(DataType.double.rawByteCount(elements: Int.max))
    }

    func testTypedFieldsAreCheckedForTheirType() {
        let floats = [Float](repeating: 0, count: 4).withUnsafeBytes { TensorBytes(copying: $0) }
        XCTAssertNil(Tensor(dataType: .float, dims: [4], storage: .floatData(floats)).payloadProblem)
        XCTAssertNil(Tensor(dataType: .complex64, dims: [2], storage: .floatData(floats)).payloadProblem)
        XCTAssertEqual(Tensor(dataType: .int64, dims: [4], storage: .floatData(floats)).payloadProblem, "float_data cannot hold int64")
        let int32s = [Int32](repeating: 0, count: 2).withUnsafeBytes { TensorBytes(copying: $0) }
        XCTAssertNil(Tensor(dataType: .int4, dims: [3], storage: .int32Data(int32s)).payloadProblem)
        XCTAssertNil(Tensor(dataType: .float16, dims: [2], storage: .int32Data(int32s)).payloadProblem)
    }

    func testValuesAreReadWithoutAlignment() {
        // Five bytes of padding put every float at an odd address.
        let raw: [UInt8] = [0, 0, 0, 0, 0] + [Float(1.5), -2, 0.25].flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
        let storage = TensorBytes(copying: raw)
        let shifted = TensorBytes(owner: storage.owner, baseAddress: storage.baseAddress! + 5, count: 12)
        let tensor = Tensor(dataType: .float, dims: [3], storage: .raw(shifted))
        XCTAssertEqual(tensor.doubleValues(), [1.5, -2, 0.25])
    }

    func testHalfAndBFloat16Decode() {
        let half: [UInt16] = [0x3C00, 0xC000, 0x0001, 0x7C00]  // 1, -2, smallest subnormal, +inf
        let t = Tensor(dataType: .float16, dims: [4], values: half.map(\.littleEndian))
        let values = t.doubleValues()!
        XCTAssertEqual(values[0], 1)
        XCTAssertEqual(values[1], -2)
        XCTAssertEqual(values[2], 5.960464477539063e-08)
        XCTAssertEqual(values[3], .infinity)
        let bf: [UInt16] = [0x3FC0]  // 1.5
        XCTAssertEqual(Tensor(dataType: .bfloat16, dims: [1], values: bf).doubleValues(), [1.5])
    }
}
