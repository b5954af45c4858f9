import XCTest
import Foundation
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// Runs of the driver on the same objects again, after a capped run, on several models at once,
/// and after a node's operator changed in place: the marks and operator numbers of one run
/// never leak into another.
final class RepeatedRunTests: XCTestCase {
    static let names: [String] = {
        let all = ((try? FileManager.default.contentsOfDirectory(atPath: CommandTests.fixtures.path)) ?? [])
        return all.filter { $0.hasSuffix(".onnx") && !$0.contains("external") }.sorted()
    }()

    static func bytes(of model: Model, _ directory: URL, _ tag: String) throws -> Data {
        let path = directory.appendingPathComponent("\(tag).onnx").path
        try ModelFile.save(model, to: path)
        return try Data(contentsOf: URL(fileURLWithPath: path))
    }

    /// Optimizing on several threads at once gives what optimizing in turn gives.
    func testConcurrentOptimizeMatchesSerial() throws {
        let rules = RuleFiles.builtin
        let directory = try fixtureWorkspace([])
        var expected: [String: Data] = [:]
        for name in Self.names {
            guard let model = try? ModelFile.load(path: CommandTests.fixtures.appendingPathComponent(name).path) else { continue }
            try optimize(model, rules: rules)
            expected[name] = try Self.bytes(of: model, directory, "serial-" + name)
        }
        let names = Array(expected.keys).sorted()
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var data: [Int: Data] = [:]
        }
        let results = Results()
        DispatchQueue.concurrentPerform(iterations: names.count * 2) { index in
            let name = names[index % names.count]
            let model = try! ModelFile.load(path: CommandTests.fixtures.appendingPathComponent(name).path)
            _ = try! optimize(model, rules: RuleFiles.builtin)
            let data = try! Self.bytes(of: model, directory, "par\(index)-" + name)
            results.lock.lock(); results.data[index] = data; results.lock.unlock()
        }
        for index in 0..<(names.count * 2) {
            XCTAssertEqual(results.data[index], expected[names[index % names.count]], names[index % names.count])
        }
    }

    /// Optimizing twice in one process, and once more on a copy loaded from the output: the
    /// second run on the same objects finds what a fresh load finds.
    func testSecondRunOnTheSameObjectsMatchesAFreshLoad() throws {
        let rules = RuleFiles.builtin
        let directory = try fixtureWorkspace([])
        for name in Self.names {
            guard let model = try? ModelFile.load(path: CommandTests.fixtures.appendingPathComponent(name).path) else { continue }
            var options = OptimizationOptions()
            options.maximumRewrites = 1
            try optimize(model, rules: rules, options: options)
            try optimize(model, rules: rules)
            let again = try optimize(model, rules: rules)
            try model.verify()
            let once = try Self.bytes(of: model, directory, "a-" + name)
            let fresh = try ModelFile.load(path: directory.appendingPathComponent("a-" + name + ".onnx").path)
            let freshReport = try optimize(fresh, rules: rules)
            let twice = try Self.bytes(of: fresh, directory, "b-" + name)
            XCTAssertEqual(again.fired.map(\.rule), freshReport.fired.map(\.rule), name)
            XCTAssertEqual(once, twice, name)
        }
    }

    /// A node whose operator changes in the graph is matched as its new operator.
    func testOperatorChangedInPlaceIsMatchedAsTheNewOne() throws {
        let rules = try RuleFiles.rules(in: """
            # Relu of Relu is Relu.
            rule relu-relu {
              match { y = Relu(x); z = Relu(y) }
              replace { z = Relu(x) }
            }
            """)
        let model = try ModelFile.load(path: CommandTests.fixtures.appendingPathComponent("conv_bn.onnx").path)
        let nodes = Array(model.graph.nodes)
        // conv -> bn -> relu: make bn a Relu.
        let bn = nodes.first { $0.opType == "BatchNormalization" }!
        let x = bn.inputs[0]!
        try bn.setInputs([x])
        bn.opType = "Relu"
        bn.domain = "ai.onnx"
        try model.verify()
        let report = try optimize(model, rules: rules)
        XCTAssertEqual(report.fired.map(\.rule), ["relu-relu"])
        XCTAssertEqual(ModelStatistics(model).nodesByOpType["Relu"], 1)
        // And back: a node turned from Relu to something else no longer matches.
        let relu = model.graph.nodes.first { $0.opType == "Relu" }!
        relu.opType = "Sigmoid"
        let second = try optimize(model, rules: rules)
        XCTAssertTrue(second.fired.isEmpty)
        XCTAssertEqual(ModelStatistics(model).nodesByOpType["Sigmoid"], 1)
    }
}
