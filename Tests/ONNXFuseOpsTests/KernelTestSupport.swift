import ONNXFuseIR
import XCTest

@testable import ONNXFuseOps

/// Helpers shared by the kernel and inference tests of the operator families (elementwise,
/// reduction, neural-network, shape): running kernels and inference from the standard registry,
/// building attributes and facts, reading elements and comparing reals.
protocol KernelTestCase: XCTestCase {}

extension KernelTestCase {
    var registry: OperatorRegistry { OperatorRegistry.standard }

    /// Runs `op`'s kernel and returns all its outputs.
    func kernelOutputs(_ op: String, _ inputs: [TensorValue?], _ attributes: [Attribute], opset: Int64, domain: String = "",
                       outputs: Int = 1, file: StaticString = #filePath, line: UInt = #line) throws -> [TensorValue] {
        let kernel = try XCTUnwrap(registry.kernel(op, domain: domain), "no kernel for \(op)", file: file, line: line)
        return try kernel(OperatorContext(opType: op, domain: domain, opsetVersion: opset, attributes: attributes, outputCount: outputs),
                          inputs)
    }

    /// Runs `op`'s inference for a node of `outputs` outputs and returns their facts; the fresh
    /// dimensions it makes avoid the names in `taken`.
    func inferredOutputs(_ op: String, _ inputs: [ValueFacts?], _ attributes: [Attribute], outputs: Int = 1, opset: Int64,
                         domain: String = "", taken: Set<String> = ["N", "M"], file: StaticString = #filePath,
                         line: UInt = #line) throws -> [ValueFacts] {
        let inference = try XCTUnwrap(registry.inference(op, domain: domain), "no inference for \(op)", file: file, line: line)
        var context = InferenceContext(node: OperatorContext(opType: op, domain: domain, opsetVersion: opset, attributes: attributes),
                                       inputs: inputs, outputCount: outputs, symbols: SymbolAllocator(avoiding: taken))
        try inference(&context)
        return context.outputs
    }

    func attr(_ name: String, _ value: AttributeValue) -> Attribute { Attribute(name: name, value: value) }
    func attr(_ name: String, _ i: Int64) -> Attribute { Attribute(name: name, value: .int(i)) }
    func attr(_ name: String, _ list: [Int64]) -> Attribute { Attribute(name: name, value: .ints(list)) }
    func attr(_ name: String, float f: Float) -> Attribute { Attribute(name: name, value: .float(f)) }
    func attr(_ name: String, _ s: String) -> Attribute { Attribute(name: name, value: .string(Array(s.utf8))) }

    /// The elements of a real tensor (a test failure for any other).
    func reals(_ value: TensorValue, file: StaticString = #filePath, line: UInt = #line) -> [Double] {
        if case .reals(let v) = value.elements { return v }
        XCTFail("expected reals, got \(value)", file: file, line: line)
        return []
    }

    /// The elements of a signed integer tensor (a test failure for any other).
    func integers(_ value: TensorValue, file: StaticString = #filePath, line: UInt = #line) -> [Int64] {
        if case .integers(let v) = value.elements { return v }
        XCTFail("expected integers, got \(value)", file: file, line: line)
        return []
    }

    /// The elements of a bool tensor (a test failure for any other).
    func booleans(_ value: TensorValue, file: StaticString = #filePath, line: UInt = #line) -> [Bool] {
        if case .booleans(let v) = value.elements { return v }
        XCTFail("expected booleans, got \(value)", file: file, line: line)
        return []
    }

    /// Checks that `actual` and `expected` have the same count and agree element by element within
    /// `tolerance`, relative to the expected value when its magnitude is above 1; NaN matches NaN.
    func assertClose(_ actual: [Double], _ expected: [Double], tolerance: Double = 1e-6,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, "counts", file: file, line: line)
        for (index, (a, e)) in zip(actual, expected).enumerated() where !(a.isNaN && e.isNaN) && a != e {
            XCTAssertLessThanOrEqual(abs(a - e), tolerance * max(1, abs(e)), "element \(index): \(a) vs \(e) in \(actual)",
                                     file: file, line: line)
        }
    }

    /// Facts of a value of `type` and shape `dims`, holding the dimensions `value` when given.
    func facts(_ type: DataType, _ dims: [ONNXFuseIR.Dimension], value: [ONNXFuseIR.Dimension]? = nil) -> ValueFacts {
        ValueFacts(elementType: type, shape: dims, shapeValue: value)
    }

    /// The symbolic dimensions the tests name (inference avoids them for its fresh ones).
    var n: ONNXFuseIR.Dimension { .param("N") }
    var m: ONNXFuseIR.Dimension { .param("M") }

    /// Whether `dim` is a fresh symbol made by inference.
    func isFresh(_ dim: ONNXFuseIR.Dimension?) -> Bool {
        if case .param(let p)? = dim { return SymbolAllocator.isFresh(p) }
        return false
    }
}

/// Helpers of the tests of one-output operators (elementwise, reduction): `run` and `infer` give
/// the first output, and tensors are built from their values first (the shape defaults to 1-D).
protocol SingleOutputKernelTestCase: KernelTestCase {}

extension SingleOutputKernelTestCase {
    /// Runs `op`'s kernel and returns its first output.
    func run(_ op: String, _ inputs: [TensorValue?], _ attributes: [Attribute] = [], opset: Int64 = 22,
             file: StaticString = #filePath, line: UInt = #line) throws -> TensorValue {
        let outputs = try kernelOutputs(op, inputs, attributes, opset: opset, file: file, line: line)
        return try XCTUnwrap(outputs.first, file: file, line: line)
    }

    /// Checks that `op`'s kernel refuses these inputs.
    func fails(_ op: String, _ inputs: [TensorValue?], _ attributes: [Attribute] = [], opset: Int64 = 22,
               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try run(op, inputs, attributes, opset: opset), "\(op) should fail", file: file, line: line)
    }

    /// Runs `op`'s inference and returns the facts of its first output.
    func infer(_ op: String, _ inputs: [ValueFacts?], _ attributes: [Attribute] = [], opset: Int64 = 22,
               file: StaticString = #filePath, line: UInt = #line) throws -> ValueFacts {
        try inferredOutputs(op, inputs, attributes, opset: opset, file: file, line: line)[0]
    }

    func floats(_ values: [Double], _ shape: [Int]? = nil, _ type: DataType = .float) -> TensorValue {
        TensorValue(type, shape: shape ?? [values.count], reals: values)
    }

    func ints(_ values: [Int64], _ shape: [Int]? = nil, _ type: DataType = .int64) -> TensorValue {
        TensorValue(type, shape: shape ?? [values.count], .integers(values))
    }
}
