import XCTest
import Foundation
import ONNXFuseIR
@testable import ONNXFuseProto

/// `save` and `serialize` check the model first: a model that breaks an IR invariant is an error
/// naming the file, and nothing is written, rather than a file that loading then refuses.
final class SaveVerificationTests: XCTestCase {
    /// `y = Relu(nowhere)`: the input is defined nowhere (the public `append` refuses that; the
    /// unchecked form the engine uses does not).
    private func brokenModel() throws -> Model {
        let graph = Graph(name: "g")
        let relu = Node(opType: "Relu", inputs: [Value.detached(name: "nowhere")], outputNames: ["y"])
        graph.appendUnchecked(relu)
        try graph.addOutput(relu.outputs[0]!, info: ValueInfo(type: nil))
        return Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
    }

    func testAnInvalidModelIsNotSaved() throws {
        let directory = try temporaryDirectory(self)
        let path = directory.appendingPathComponent("out.onnx").path
        XCTAssertThrowsError(try ModelFile.save(brokenModel(), to: path)) { error in
            guard case ModelFileError.invalidModel(let file, _, let reason, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(file, path)
            XCTAssertTrue(reason.contains("nowhere") && reason.contains("nothing written"), reason)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [])
        XCTAssertThrowsError(try ModelFile.serialize(brokenModel(), name: "buffer")) { error in
            XCTAssertTrue("\(error)".hasPrefix("buffer: "), "\(error)")
        }
        // A caller that verified the model itself may skip the check: the file is then written.
        var options = SaveOptions()
        options.verifiesModel = false
        XCTAssertNoThrow(try ModelFile.save(brokenModel(), to: path, options: options))
        XCTAssertThrowsError(try ModelFile.load(path: path))
    }
}
