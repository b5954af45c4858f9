import XCTest
import Foundation
import ONNXFuse

/// The library API as the README shows it.
final class LibraryTests: XCTestCase {
    func testReadmeExample() throws {
        let fixtures = CommandTests.fixtures
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("onnx-fuse-lib-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: directory) }

        let model = try ModelFile.load(path: fixtures.appendingPathComponent("conv_bn.onnx").path)
        let convs = model.graph.nodes.filter { $0.opType == "Conv" }
        XCTAssertEqual(convs.first?.inputs.map { $0?.name ?? "" }, ["X", "W"])
        let bn = model.graph.nodes.first { $0.opType == "BatchNormalization" }!
        bn.outputs[0]!.replaceAllUses(with: bn.inputs[0]!)
        model.graph.erase(bn)
        try model.verify()
        let output = directory.appendingPathComponent("model.out.onnx").path
        try ModelFile.save(model, to: output)
        let text = Printer().print(try ModelFile.load(path: output))
        XCTAssertTrue(text.contains("Y = Relu (conv_out)"), text)
        XCTAssertEqual(ModelStatistics(model).nodesByOpType, ["Conv": 1, "Relu": 1])
    }

    func testErrorsNameTheFileAndThePlace() {
        let path = CommandTests.fixtures.appendingPathComponent("invalid/nested_10000.onnx").path
        XCTAssertThrowsError(try ModelFile.load(path: path)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix(path + ": ..."), text)
            XCTAssertTrue(text.hasSuffix(": messages nested deeper than 100 levels"), text)
            XCTAssertLessThan(text.count, path.count + 200, "one readable line")
        }
    }
}
