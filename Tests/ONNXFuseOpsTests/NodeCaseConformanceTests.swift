import Foundation
import ONNXFuseIR
import XCTest

@testable import ONNXFuseOps

/// Runs the onnx package's official operator test cases (Tests/ONNXFuseOpsTests/NodeCases)
/// through the reference kernels and shape inference.
///
/// A case runs when every node of its model has a kernel: its outputs must match the expected
/// ones (exactly for integers, booleans and strings; within the case's rtol/atol for floats), and
/// inference must agree with their element types and shapes (it may leave a dimension symbolic,
/// never give a wrong number). `NODE_CASES=add,reshape` runs only cases whose names start with
/// `test_add` or `test_reshape`.
final class NodeCaseConformanceTests: XCTestCase {
    /// Cases known not to pass, with the reason; each must still fail (so the list stays honest).
    static let knownFailures: [String: String] = {
        // The onnx reference rounds to the 16-bit type after every numpy step inside Softmax and
        // MatMul; our kernels round once per operator, as the exact-arithmetic policy says, and
        // land one 16-bit step away on an element or two.
        let roundedOnce = "16-bit results rounded once per operator, not after every step as the reference does"
        var failures: [String: String] = [:]
        for name in ["test_attention_4d_padded_kv_bf16_expanded", "test_attention_3d_causal_bf16_expanded",
                     "test_attention_4d_attn_mask_causal_bf16_expanded", "test_attention_4d_causal_bf16_expanded",
                     "test_attention_4d_causal_fp16_expanded", "test_attention_4d_causal_padded_kv_bf16_expanded"] {
            failures[name] = roundedOnce
        }
        // Dropout in training mode is random: no deterministic kernel can give the reference's draw.
        for name in ["test_training_dropout", "test_training_dropout_default", "test_training_dropout_default_mask",
                     "test_training_dropout_mask"] {
            failures[name] = "training-mode Dropout is random"
        }
        return failures
    }()

    func testKernelsAndInferenceAgreeWithOfficialCases() throws {
        let filter = ProcessInfo.processInfo.environment["NODE_CASES"].map {
            $0.split(separator: ",").map { "test_" + $0.trimmingCharacters(in: .whitespaces) }
        }
        let registry = OperatorRegistry.standard
        var passed = 0, skipped = 0, inferredStatic = 0
        var failures: [String] = []
        var unexpectedPasses: [String] = []
        var skippedByReason: [String: Int] = [:]
        for path in try NodeCase.paths() {
            let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            if let filter, !filter.contains(where: { name.hasPrefix($0) }) { continue }
            let testCase = try NodeCase.load(path: path)
            let outcome = run(testCase, registry: registry)
            switch outcome {
            case .skipped(let reason):
                skipped += 1
                skippedByReason[reason, default: 0] += 1
            case .failed(let message):
                if Self.knownFailures[name] == nil { failures.append("\(name): \(message)") }
            case .passed(let shapesStatic):
                if Self.knownFailures[name] != nil { unexpectedPasses.append(name) }
                passed += 1
                if shapesStatic { inferredStatic += 1 }
            }
        }
        let summary = "node cases: \(passed) passed, \(failures.count) failed, \(skipped) skipped; "
            + "inference gave every output's full static shape in \(inferredStatic) of the passed cases"
        print(summary)
        for (reason, count) in skippedByReason.sorted(by: { $0.value > $1.value }).prefix(12) {
            print("  skipped \(count): \(reason)")
        }
        XCTAssertTrue(failures.isEmpty, "\(failures.count) cases failed:\n" + failures.prefix(60).joined(separator: "\n"))
        XCTAssertTrue(unexpectedPasses.isEmpty, "listed as known failures but pass: \(unexpectedPasses)")
        if filter == nil { XCTAssertGreaterThan(passed, 0) }
    }

    enum Outcome {
        case passed(shapesStatic: Bool)
        case failed(String)
        case skipped(String)
    }

    func run(_ testCase: NodeCase, registry: OperatorRegistry) -> Outcome {
        let model = testCase.model
        let graph = model.graph
        for node in graph.nodes {
            let domain = node.isDefaultDomain ? "" : node.domain!
            if registry.kernel(node.opType, domain: domain) == nil { return .skipped("no kernel for \(node.opType)") }
            if !node.subgraphs.isEmpty { return .skipped("subgraphs") }
        }
        for (_, tensor) in testCase.expected where TensorValue.kind(of: tensor.dataType) == nil {
            return .skipped("output type \(tensor.dataType)")
        }
        var environment: [String: TensorValue] = [:]
        for (name, tensor) in testCase.inputs {
            guard let value = try? TensorValue(tensor: tensor) else { return .skipped("input type \(tensor.dataType)") }
            environment[name] = value
        }
        for value in graph.initializers where environment[value.name] == nil && !value.name.hasPrefix(NodeCase.expectedPrefix) {
            guard let tensor = value.initializer, let converted = try? TensorValue(tensor: tensor) else {
                return .skipped("initializer type")
            }
            environment[value.name] = converted
        }
        for node in graph.nodes {
            let domain = node.isDefaultDomain ? "" : node.domain!
            let version = model.opsetVersion(domain: domain) ?? 1
            var inputs: [TensorValue?] = []
            for input in node.inputs {
                guard let input else { inputs.append(nil); continue }
                guard let value = environment[input.name] else { return .failed("\(node.opType): input '\(input.name)' was not computed") }
                inputs.append(value)
            }
            do {
                let outputs = try registry.evaluate(node, inputs: inputs, opsetVersion: version)
                for (output, value) in zip(node.outputs, outputs) {
                    guard let output else { continue }
                    guard let value else { return .failed("\(node.opType): output '\(output.name)' has no value") }
                    environment[output.name] = value
                }
            } catch {
                // A variant the kernel declines is not a wrong answer.
                if error.isUnsupported { return .skipped("kernel declines \(node.opType) variant") }
                return .failed("\(node.opType) (opset \(version)): \(error)")
            }
        }
        for (name, tensor) in testCase.expected {
            guard let expected = try? TensorValue(tensor: tensor) else { return .skipped("output type \(tensor.dataType)") }
            guard let actual = environment[name] else { return .failed("output '\(name)' was not computed") }
            if let problem = difference(expected, actual, rtol: testCase.rtol, atol: testCase.atol) {
                return .failed("output '\(name)': \(problem)")
            }
        }
        // Inference from the declared input types alone (inputs with initializers can be
        // overridden, so they are not constants).
        let inference = ShapeInference(model: model)
        inference.run()
        var allStatic = true
        for output in graph.outputs {
            guard let expected = testCase.expected.first(where: { $0.name == output.value.name })?.tensor else { continue }
            guard let facts = output.value.inferred else { allStatic = false; continue }
            if let type = facts.elementType, type != expected.dataType {
                return .failed("inference: output '\(output.value.name)' is \(type), expected \(expected.dataType)")
            }
            guard let shape = facts.shape else { allStatic = false; continue }
            guard shape.count == expected.dims.count else {
                return .failed("inference: output '\(output.value.name)' has rank \(shape.count), expected shape \(expected.dims)")
            }
            for (dim, want) in zip(shape, expected.dims) {
                switch dim {
                case .value(let v) where v != want:
                    return .failed("inference: output '\(output.value.name)' has shape \(shape), expected \(expected.dims)")
                case .value: break
                default: allStatic = false
                }
            }
        }
        return .passed(shapesStatic: allStatic)
    }

    /// Why `actual` does not match `expected`, or nil.
    func difference(_ expected: TensorValue, _ actual: TensorValue, rtol: Double, atol: Double) -> String? {
        guard expected.dataType == actual.dataType else { return "type \(actual.dataType), expected \(expected.dataType)" }
        guard expected.shape == actual.shape else { return "shape \(actual.shape), expected \(expected.shape)" }
        switch (expected.elements, actual.elements) {
        case (.reals(let e), .reals(let a)):
            for index in e.indices {
                let x = e[index], y = a[index]
                if x.isNaN && y.isNaN { continue }
                if x == y { continue }
                if !(abs(x - y) <= atol + rtol * abs(x)) {
                    return "element \(index) is \(y), expected \(x)"
                }
            }
            return nil
        default:
            return expected.elements == actual.elements ? nil : "elements differ: \(actual), expected \(expected)"
        }
    }
}
