import XCTest
import Foundation
import ONNXFuse
import ONNXFuseOps

/// Every fixture the reference kernels can run computes the same outputs, within the tolerance
/// of their types, before and after the built-in rules, on seeded inputs (the comparison that
/// `--verify=model` will make).
final class WholeModelVerificationTests: XCTestCase {
    func testFixturesComputeTheSameBeforeAndAfterTheBuiltInRules() throws {
        let urls = try FileManager.default.contentsOfDirectory(at: CommandTests.fixtures, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "onnx" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        var compared: [String] = []
        var skipped: [String: String] = [:]
        for url in urls {
            let name = url.lastPathComponent
            guard let model = try? ModelFile.load(path: url.path) else { continue }
            let inference = ShapeInference(model: model)
            inference.run()
            var seeded = SeededInputs(seed: 7)
            var inputs: [String: TensorValue] = [:]
            var missing: String?
            for input in model.graph.inputs where input.initializer == nil {
                let facts = inference.facts(of: input)
                guard let type = facts.elementType, let tensor = seeded.tensor(type, shape: facts.shape) else {
                    missing = "no seeded value for '\(input.name)'"
                    break
                }
                inputs[input.name] = tensor
            }
            if let missing {
                skipped[name] = missing
                continue
            }
            let before: [TensorValue]
            do {
                before = try GraphEvaluator(model: model).run(model.graph, inputs: inputs)
            } catch {
                skipped[name] = "\(error)"
                continue
            }
            _ = optimize(model, rules: RuleFiles.builtin)
            let after = try GraphEvaluator(model: model).run(model.graph, inputs: inputs)
            XCTAssertEqual(after.count, before.count, name)
            for (index, (actual, expected)) in zip(after, before).enumerated() {
                let error = NumericTolerance.error(of: actual, against: expected)
                XCTAssertLessThanOrEqual(error, NumericTolerance.relative(for: expected.dataType),
                                         "\(name) output \(index): error \(error)")
            }
            compared.append(name)
        }
        // 49 of the 51 fixtures run; the others hold a custom operator or an If.
        XCTAssertGreaterThanOrEqual(compared.count, 45, "compared \(compared), skipped \(skipped)")
        XCTAssertTrue(compared.contains("conv_bn.onnx") && compared.contains("transformer_shapes.onnx"), "\(compared)")
    }
}
