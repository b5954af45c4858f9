import XCTest
import Foundation
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// The whole-model comparison (`compareModels`, what `--verify=model` will run): every fixture
/// the reference kernels can run computes the same outputs, within the tolerance of their types,
/// before and after the built-in rules, on seeded inputs; a wrong rewrite is caught; what cannot
/// be run is never reported as agreeing.
final class WholeModelVerificationTests: XCTestCase {
    func load(_ name: String) throws -> Model {
        try ModelFile.load(path: CommandTests.fixtures.appendingPathComponent(name).path)
    }

    func testFixturesComputeTheSameBeforeAndAfterTheBuiltInRules() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: CommandTests.fixtures.path)
            .filter { $0.hasSuffix(".onnx") }
            .sorted()
        var agreed: [String] = []
        var notRun: [String: String] = [:]
        for name in names {
            let original = try load(name), rewritten = try load(name)
            _ = try optimize(rewritten, rules: RuleFiles.builtin)
            let comparison = compareModels(original, rewritten)
            switch comparison.outcome {
            case .agree: agreed.append(name)
            case .notRun(let reason): notRun[name] = reason
            case .differ(let output, let error, let reason):
                XCTFail("\(name): output '\(output)' differs by \(error) \(reason ?? "")")
            }
        }
        XCTAssertGreaterThanOrEqual(agreed.count, 49, "agreed \(agreed), not run \(notRun)")
        XCTAssertEqual(notRun, ["functions_training.onnx": "no kernel for com.example.ScaledRelu",
                                "if_subgraph.onnx": "If 'if' has subgraphs, which the evaluator does not run"])
    }

    func testAWrongRewriteIsCaughtAndNamed() throws {
        // The optimized conv_bn with its output negated: what a sign error in a folded bias
        // and weight would give.
        let original = try load("conv_bn.onnx"), rewritten = try load("conv_bn.onnx")
        _ = try optimize(rewritten, rules: RuleFiles.builtin)
        let graph = rewritten.graph
        let negated = Node(opType: "Neg", name: "wrong", inputs: [graph.outputs[0].value], outputNames: ["wrong"])
        try graph.append(negated)
        try graph.setOutput(0, to: negated.outputs[0]!)
        guard case .differ(let output, let error, nil) = compareModels(original, rewritten).outcome else {
            return XCTFail("not caught")
        }
        XCTAssertEqual(output, original.graph.outputs[0].value.name)
        XCTAssertGreaterThan(error, 1e-5)
        // A rewritten model that fails where the original runs differs too.
        let broken = try load("conv_bn.onnx")
        let bad = Node(opType: "NoSuchOp", domain: "example", name: "bad", inputs: [broken.graph.outputs[0].value], outputNames: ["bad"])
        try broken.graph.append(bad)
        try broken.graph.setOutput(0, to: bad.outputs[0]!)
        guard case .differ(_, .infinity, let reason?) = compareModels(original, broken).outcome else { return XCTFail("not caught") }
        XCTAssertEqual(reason, "the rewritten model fails where the original runs: no kernel for example.NoSuchOp")
    }

    func testSymbolicImageSizesGrowUntilTheModelRuns() throws {
        // A 4×4 stride-4 stem on an image of symbolic height and width: sizes 2 and 3 are too
        // small for the kernel; the next sizes tried (8 and 9) run.
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(1), .value(1), .param("H"), .param("W")])))
        let w = graph.addInitializer(name: "w", tensor: TensorValue(.float, shape: [1, 1, 4, 4], reals: (0..<16).map { Double($0) / 8 }).tensor())
        let conv = Node(opType: "Conv", name: "stem", inputs: [x, w], outputNames: ["y"],
                        attributes: [Attribute(name: "strides", value: .ints([4, 4]))])
        try graph.append(conv)
        try graph.addOutput(conv.outputs[0]!, info: ValueInfo(type: nil))
        let comparison = compareModels(model, model)
        XCTAssertEqual(comparison.outcome, .agree)
        XCTAssertEqual(comparison.symbolSizes, ["H": 8, "W": 9])
        XCTAssertEqual(comparison.errors.map(\.error), [0])
    }
}
