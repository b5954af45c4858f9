import XCTest
import Foundation
import ONNXFuseIR
@testable import ONNXFuseProto

/// `Model.copy()` on loaded models: a copy saves to the original's bytes, what the IR does not
/// interpret included, and editing it leaves the original's bytes alone.
final class ModelCopySaveTests: XCTestCase {
    func testEveryFixtureAndItsCopySaveToTheSameBytes() throws {
        let fixtures = Paths.onnxFiles(in: Paths.fixtures)
        XCTAssertGreaterThanOrEqual(fixtures.count, 15, "fixtures missing")
        let directory = try temporaryDirectory(self)
        for fixture in fixtures {
            let name = fixture.lastPathComponent
            let model = try ModelFile.load(path: fixture.path)
            let copy = model.copy()
            try copy.verify()
            // Each saved under the fixture's own name, in a folder of its own (external data
            // keeps its file name and layout).
            var saved: [[UInt8]] = []
            for (label, model) in [("original", model), ("copy", copy)] {
                let folder = directory.appendingPathComponent(label)
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                let path = folder.appendingPathComponent(name).path
                try ModelFile.save(model, to: path)
                saved.append(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
            }
            XCTAssertEqual(saved[0], saved[1], "\(name): the copy saves differently")
            XCTAssertEqual(saved[1], Array(try Data(contentsOf: fixture)), "\(name): the copy is not byte-identical to the file")
            XCTAssertEqual(try ModelFile.serialize(copy), try ModelFile.serialize(model), name)
        }
        let data = "external_data.onnx.data"
        XCTAssertEqual(try Data(contentsOf: directory.appendingPathComponent("copy").appendingPathComponent(data)),
                       try Data(contentsOf: Paths.fixtures.appendingPathComponent(data)))
    }

    func testEditingACopyLeavesTheOriginalsBytes() throws {
        let fixture = Paths.fixtures.appendingPathComponent("conv_bn.onnx")
        let model = try ModelFile.load(path: fixture.path)
        let copy = model.copy()
        let bn = try XCTUnwrap(copy.graph.nodes.first { $0.opType == "BatchNormalization" })
        try bn.outputs[0]!.replaceAllUses(with: bn.inputs[0]!)
        try copy.graph.erase(bn)
        copy.graph.firstNode!.name = "renamed"
        copy.producerName = "edited"
        try copy.graph.firstNode!.setInput(1, to: copy.graph.initializers.last!)

        XCTAssertEqual(try ModelFile.serialize(model), Array(try Data(contentsOf: fixture)), "the original saves as it was read")
        let edited = try ModelFile.load(bytes: ModelFile.serialize(copy))
        XCTAssertEqual(edited.graph.nodes.map(\.opType), ["Conv", "Relu"])
        XCTAssertEqual(edited.graph.firstNode?.name, "renamed")
        XCTAssertEqual(edited.producerName, "edited")
        XCTAssertEqual(model.graph.nodes.map(\.opType), ["Conv", "BatchNormalization", "Relu"])
        XCTAssertNotEqual(model.graph.firstNode?.name, "renamed")
    }
}
