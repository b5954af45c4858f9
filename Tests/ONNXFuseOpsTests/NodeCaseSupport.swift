#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import XCTest
import ONNXFuseIR
import ONNXFuseProto

/// One of the onnx package's operator test cases, as `scripts/export-node-cases` wrote it to
/// `NodeCases/<name>.onnx` (see `NodeCases/README.md`).
///
/// The file is the case's model with the first data set as initializers: each graph input has
/// its data as its initializer, and each graph output `y` has its expected data in an extra
/// initializer `expected:y`. `load` takes the `expected:` initializers out of `model` again, so
/// `model` is the case's model with its inputs' data as their initializers (`inputs` holds the
/// same tensors). Every case is IR version 4 or later, so those initializers are overridable
/// defaults: `Value.constantTensor()` does not see them as constants.
struct NodeCase {
    /// The case's name, also the file's name without `.onnx` (`test_abs`).
    let name: String
    /// The model, with the inputs' data as their initializers and without the `expected:` ones.
    let model: Model
    /// The data of every graph input, by input name.
    let inputs: [String: Tensor]
    /// The expected value of every graph output, in graph-output order.
    let expected: [(name: String, tensor: Tensor)]
    /// The relative tolerance the onnx package gives the case.
    let rtol: Double
    /// The absolute tolerance the onnx package gives the case.
    let atol: Double

    /// How many files `scripts/export-node-cases` writes (onnx 1.23.2; 55 of its 1,884 cases
    /// are skipped). Update it, and `NodeCases/README.md`, when regenerating changes it.
    static let exportedCount = 1829

    /// The prefix of the initializers that hold the expected outputs.
    static let expectedPrefix = "expected:"

    /// The folder holding the case files.
    static let directory: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("NodeCases", isDirectory: true)

    /// Every case file, sorted by case name.
    static func paths() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".onnx") }
            .sorted()
            .map { directory.appendingPathComponent($0).path }
    }

    /// Every case, sorted by name. Each loaded model keeps its file open (its tensors point
    /// into the mapped file), so this raises the open-file limit as far as it can first.
    static func all() throws -> [NodeCase] {
        let paths = try paths()
        raiseOpenFileLimit(toAtLeast: paths.count + 256)
        return try paths.map { try load(path: $0) }
    }

    /// The case named `name` (`test_abs`).
    static func load(name: String) throws -> NodeCase {
        try load(path: directory.appendingPathComponent(name + ".onnx").path)
    }

    /// The case in the file at `path`.
    static func load(path: String) throws -> NodeCase {
        let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        func fail(_ reason: String) -> NodeCaseError { NodeCaseError(path: path, reason: reason) }
        let model = try ModelFile.load(path: path)
        let graph = model.graph

        var inputs: [String: Tensor] = [:]
        for input in graph.inputs {
            guard let tensor = input.initializer else { throw fail("graph input '\(input.name)' has no initializer") }
            inputs[input.name] = tensor
        }

        var byName: [String: Value] = [:]
        for value in graph.initializers where value.name.hasPrefix(expectedPrefix) {
            byName[value.name] = value
        }
        var expected: [(name: String, tensor: Tensor)] = []
        for output in graph.outputs {
            let outputName = output.value.name
            guard let value = byName.removeValue(forKey: expectedPrefix + outputName), let tensor = value.initializer else {
                throw fail("graph output '\(outputName)' has no initializer '\(expectedPrefix)\(outputName)'")
            }
            expected.append((outputName, tensor))
            guard value.isUnused else { throw fail("'\(value.name)' is read by the graph") }
            try graph.removeInitializer(value)
        }
        if let extra = byName.keys.sorted().first { throw fail("'\(extra)' names no graph output") }

        func tolerance(_ key: String) throws -> Double {
            let values = model.metadataProps.filter { $0.key == key }
            guard values.count == 1, let text = values[0].value, let number = Double(text) else {
                throw fail("metadata_props has no single numeric '\(key)'")
            }
            return number
        }
        return NodeCase(name: name, model: model, inputs: inputs, expected: expected,
                        rtol: try tolerance("rtol"), atol: try tolerance("atol"))
    }

    /// Raises the soft limit on open files to `count` (or the hard limit, if lower).
    private static func raiseOpenFileLimit(toAtLeast count: Int) {
        #if canImport(Glibc)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
        let resource = RLIMIT_NOFILE
        #endif
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0, limit.rlim_cur < rlim_t(count) else { return }
        limit.rlim_cur = min(rlim_t(count), limit.rlim_max)
        _ = setrlimit(resource, &limit)
    }
}

/// A case file that is not what `scripts/export-node-cases` writes.
struct NodeCaseError: Error, CustomStringConvertible {
    let path: String
    let reason: String
    var description: String { "\(path): \(reason)" }
}

/// The case files themselves: every one loads and is complete.
final class NodeCaseFilesTests: XCTestCase {
    func testEveryCaseLoads() throws {
        let paths = try NodeCase.paths()
        var loaded = 0
        for path in paths {
            // One at a time: each model keeps its file open until it is released.
            do {
                let testCase = try NodeCase.load(path: path)
                let outputs = testCase.model.graph.outputs.map(\.value.name)
                XCTAssertEqual(testCase.expected.map(\.name), outputs, testCase.name)
                XCTAssertEqual(Set(testCase.inputs.keys), Set(testCase.model.graph.inputs.map(\.name)), testCase.name)
                for (name, tensor) in testCase.inputs.sorted(by: { $0.key < $1.key }) {
                    XCTAssertNil(tensor.payloadProblem, "\(testCase.name): input \(name)")
                }
                for (name, tensor) in testCase.expected {
                    XCTAssertNil(tensor.payloadProblem, "\(testCase.name): expected \(name)")
                }
                XCTAssertFalse(testCase.model.graph.initializers.contains { $0.name.hasPrefix(NodeCase.expectedPrefix) }, testCase.name)
                XCTAssertGreaterThan(testCase.rtol, 0, testCase.name)
                XCTAssertGreaterThan(testCase.atol, 0, testCase.name)
                loaded += 1
            } catch {
                XCTFail("\(error)")
            }
        }
        XCTAssertEqual(paths.count, NodeCase.exportedCount,
                       "NodeCases has \(paths.count) files; scripts/export-node-cases writes \(NodeCase.exportedCount)")
        XCTAssertEqual(loaded, paths.count, "\(paths.count - loaded) case files did not load")
    }

    func testAllLoadsEveryCaseSortedByName() throws {
        let cases = try NodeCase.all()
        XCTAssertEqual(cases.count, NodeCase.exportedCount)
        XCTAssertEqual(cases.map(\.name), cases.map(\.name).sorted())
        let abs = try XCTUnwrap(cases.first { $0.name == "test_abs" })
        XCTAssertEqual(abs.model.graph.nodes.map(\.opType), ["Abs"])
        XCTAssertEqual(abs.inputs["x"]?.dims, [3, 4, 5])
        XCTAssertEqual(abs.expected.map(\.name), ["y"])
        XCTAssertEqual(abs.rtol, 1e-3)
        XCTAssertEqual(abs.atol, 1e-7)
        let x = try XCTUnwrap(abs.inputs["x"]?.doubleValues())
        let y = try XCTUnwrap(abs.expected[0].tensor.doubleValues())
        XCTAssertEqual(x.map { Swift.abs($0) }, y)
    }
}
