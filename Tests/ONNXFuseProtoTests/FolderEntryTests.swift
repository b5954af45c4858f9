import Foundation
import XCTest
@testable import ONNXFuseProto

/// Listing a folder reads each entry's name within its record: a record is only as long as
/// its name, and the last one of the system's buffer ends where the buffer does (copying the
/// whole `dirent`, with its 256-byte name field, read past it; AddressSanitizer reported it
/// on a save into a folder of a few hundred files).
final class FolderEntryTests: XCTestCase {
    func testManyShortNamesAreListedExactly() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("onnx-fuse-entries-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var expected: Set<String> = []
        for index in 0..<3_000 {
            let name = String(index, radix: 36) + (index % 7 == 0 ? "é" : "")
            _ = FileManager.default.createFile(atPath: directory.appendingPathComponent(name).path, contents: nil)
            expected.insert(name)
        }
        let listed = try XCTUnwrap(folderEntryNames(directory.path))
        XCTAssertEqual(listed.count, expected.count)
        XCTAssertEqual(Set(listed), expected)
    }
}
