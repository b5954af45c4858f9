import XCTest
import Foundation
import ONNXFuseIR
@testable import ONNXFuseProto

/// Models read from bytes and written to bytes (`ModelFile.load(bytes:)`, `ModelFile.serialize`),
/// as a program that has no file at hand uses them: the same model and the same bytes as files give.
final class ModelBytesTests: XCTestCase {
    private func fixtureBytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: Paths.fixtures.appendingPathComponent(name)))
    }

    func testEveryFixtureReadFromBytesSerializesToTheBytesItsFileSavesTo() throws {
        let directory = try temporaryDirectory(self)
        var compared = 0
        for url in Paths.onnxFiles(in: Paths.fixtures) {
            // A model with external data saves a data file of its own; see below.
            guard let fromFile = try? ModelFile.load(path: url.path),
                  !fromFile.graph.initializers.contains(where: { $0.initializer!.isExternal }) else { continue }
            let saved = directory.appendingPathComponent("saved.onnx").path
            try ModelFile.save(fromFile, to: saved)
            let fromBytes = try ModelFile.load(bytes: try Data(contentsOf: url), name: url.lastPathComponent,
                                               directory: url.deletingLastPathComponent().path)
            XCTAssertEqual(try ModelFile.serialize(fromBytes), [UInt8](try Data(contentsOf: URL(fileURLWithPath: saved))), url.lastPathComponent)
            compared += 1
        }
        XCTAssertGreaterThan(compared, 40)
    }

    func testAModelReadFromBytesOutlivesThem() throws {
        var bytes: [UInt8]? = try fixtureBytes("conv_bn.onnx")
        let model = try ModelFile.load(bytes: bytes!)
        let original = bytes!
        bytes = nil
        XCTAssertNoThrow(try model.verify())
        let weights = model.graph.initializers.compactMap { $0.initializer?.doubleValues() }
        XCTAssertFalse(weights.isEmpty)
        XCTAssertEqual(try ModelFile.serialize(model), original)
    }

    func testExternalDataNeedsItsFolder() throws {
        let bytes = try fixtureBytes("external_data.onnx")
        XCTAssertThrowsError(try ModelFile.load(bytes: bytes, name: "external_data.onnx")) { error in
            XCTAssertTrue("\(error)".hasPrefix("external_data.onnx: "), "\(error)")
            XCTAssertTrue("\(error)".contains("needs the folder it is in"), "\(error)")
        }
        let model = try ModelFile.load(bytes: bytes, directory: Paths.fixtures.path)
        let values = model.graph.initializers.map { $0.initializer!.doubleValues() }
        XCTAssertTrue(model.graph.initializers.contains { $0.initializer!.isExternal })
        // Serialized, the external tensors still name the data file they were read from.
        let again = try ModelFile.load(bytes: try ModelFile.serialize(model), directory: Paths.fixtures.path)
        XCTAssertEqual(again.graph.initializers.map { $0.initializer!.doubleValues() }, values)
        XCTAssertEqual(again.graph.initializers.filter { $0.initializer!.isExternal }.count,
                       model.graph.initializers.filter { $0.initializer!.isExternal }.count)
    }

    func testBytesThatAreNoModelAreAnErrorNamingThem() {
        XCTAssertThrowsError(try ModelFile.load(bytes: [UInt8](repeating: 0xff, count: 64), name: "upload")) { error in
            guard case ModelFileError.invalidModel(let file, _, _, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(file, "upload")
        }
        XCTAssertThrowsError(try ModelFile.load(bytes: [UInt8]())) { error in
            XCTAssertTrue("\(error)".contains("<bytes>"), "\(error)")
        }
    }

    func testAModelTooLargeForOneBufferIsAnError() throws {
        let model = try ModelFile.load(bytes: try fixtureBytes("conv_bn.onnx"))
        XCTAssertThrowsError(try ModelFile.serialize(model, maximumModelBytes: 100)) { error in
            guard case ModelFileError.limitExceeded = error else { return XCTFail("\(error)") }
        }
    }
}
