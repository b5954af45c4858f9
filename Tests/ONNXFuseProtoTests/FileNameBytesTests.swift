import XCTest
import ONNXFuseProto

/// File names are bytes: `FileNameBytes` keeps any byte string in a `String` and gives it back
/// exactly.
final class FileNameBytesTests: XCTestCase {
    func roundTrip(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) {
        let string = FileNameBytes.string(bytes)
        XCTAssertEqual(FileNameBytes.cString(string).dropLast().map { UInt8(bitPattern: $0) }, bytes, file: file, line: line)
    }

    func testValidUTF8StaysAsItIs() {
        XCTAssertEqual(FileNameBytes.string(Array("model é ✓.onnx".utf8)), "model é ✓.onnx")
        XCTAssertTrue(FileNameBytes.isValidUTF8("model é ✓.onnx"))
        roundTrip(Array("model é ✓.onnx".utf8))
    }

    func testBytesThatAreNotUTF8ComeBackExactly() {
        roundTrip([0x6D, 0xFE, 0x2E])
        roundTrip([0xC0, 0xAF])  // an overlong '/'
        roundTrip([0xED, 0xA0, 0x80])  // a surrogate
        roundTrip([0xE2, 0x82])  // a cut sequence
        roundTrip(Array("U+10FF80 itself: \u{10FF80}".utf8))  // the escape range, when really there
        XCTAssertFalse(FileNameBytes.isValidUTF8(FileNameBytes.string([0x6D, 0xFE])))
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            roundTrip((0..<Int.random(in: 0...12, using: &generator)).map { _ in UInt8.random(in: 1...255, using: &generator) })
        }
    }
}
