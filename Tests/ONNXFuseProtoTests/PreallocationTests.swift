import XCTest
import Foundation
import ONNXFuseIR
@testable import ONNXFuseProto

/// The saver reserves each file's blocks before writing it (`onnx_fuse_preallocate`): the
/// reservation must be exactly what is written, or the files would keep disk space past their end.
final class PreallocationTests: XCTestCase {
    /// The bytes of disk `path` holds, from `stat`'s 512-byte blocks.
    private func allocatedBytes(_ path: String) throws -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else { throw XCTSkip("cannot stat \(path)") }
        return Int(info.st_blocks) * 512
    }

    /// A model of four 1 MiB weights added to its input in turn.
    private func model() throws -> Model {
        let graph = Graph(name: "g")
        var value = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(1 << 18)])))
        for index in 0..<4 {
            let weight = graph.addInitializer(name: "w\(index)", tensor: Tensor(dataType: .float, dims: [1 << 18],
                                                                                values: (0..<(1 << 18)).map { Float($0 % 97 + index) }))
            let add = Node(opType: "Add", inputs: [value, weight], outputNames: ["y\(index)"])
            try graph.append(add)
            value = add.outputs[0]!
        }
        try graph.addOutput(value, info: ValueInfo(type: .tensor(.float, [.value(1 << 18)])))
        return Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
    }

    func testSavedFilesHoldNoDiskPastTheirEnd() throws {
        let directory = try temporaryDirectory(self)
        let inline = directory.appendingPathComponent("inline.onnx").path
        try ModelFile.save(model(), to: inline)
        var options = SaveOptions()
        options.maximumModelBytes = 2 << 20  // moves three weights out
        let split = directory.appendingPathComponent("split.onnx").path
        let report = try ModelFile.save(model(), to: split, options: options)
        XCTAssertEqual(report.externalTensorCount, 3)
        for path in [inline, split, split + ".data"] {
            let size = try XCTUnwrap(ModelFile.size(of: path))
            XCTAssertGreaterThan(size, 1 << 20, path)
            // A file system may hold a block or two of its own for a file (extent blocks).
            XCTAssertLessThanOrEqual(try allocatedBytes(path), (size + 4095) / 4096 * 4096 + 16 << 10, path)
        }
        let reloaded = try ModelFile.load(path: split)
        XCTAssertEqual(reloaded.graph.initializers.map { $0.initializer!.doubleValues()![5] }, [5, 6, 7, 8])
    }
}
