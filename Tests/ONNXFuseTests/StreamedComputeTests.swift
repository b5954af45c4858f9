import XCTest
import Foundation
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// A large `compute` result made element-wise from one constant and a small operand is
/// evaluated a chunk at a time, never whole in float64 (`StreamedTensor`). Whatever the form,
/// the bytes saved, the refusals and their messages must be those of the whole evaluation.
final class StreamedComputeTests: XCTestCase {
    /// The forms a computed weight takes in the rules, and forms that streaming hands back to
    /// the whole evaluation (two operations, a broadcast that grows the constant, an operand as
    /// large as it).
    static let forms = [
        "w * reshape([1.5, -2, 0.25, 3, 1, -1, 2, 0.5], [8, 1, 1, 1])",
        "reshape([1.5, -2, 0.25, 3, 1, -1, 2, 0.5], [dim(w, 0)] ++ ones(rank(w) - 1)) * w",
        "reshape(reshape(w, [2, 4, 4, 9]) / reshape([3, -0.5, 7, 1], [1, 1, 4, 1]), shape(w))",
        "w + 1",
        "0.5 - w",
        "reshape(w, [8, 36])",
        "w * reshape([1.5, -2, 0.25, 3, 1, -1, 2, 0.5], [8, 1, 1, 1]) * 3",
        "reshape(w * reshape([1, 2, 3], [3, 1, 1, 1, 1]), [8, 4, 3, 9])",
        "w * reshape([1, 2, 3], [1, 1, 1, 1, 3])",
        "w * w",
        "w * reshape([1, 2], [2, 1, 1, 1, 1])",
        // The operand advancing along the runs, on either side.
        "reshape(reshape(w, [8, 4, 9]) - reshape([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 9]), shape(w))",
        "reshape(reshape([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 9]) / reshape(w, [8, 4, 9]), shape(w))",
    ]

    /// A model `y = Mul(x, w)` (the rule makes it `Add(x, w2)`, once) with a weight `w` of `type` and `dims` holding `values`.
    private func model(_ type: DataType, _ values: [Double], dims: [Int64]) throws -> Model {
        let graph = Graph(name: "g")
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(type, dims.map { .value($0) })))
        let stored: Tensor
        switch type {
        case .double: stored = Tensor(dataType: type, dims: dims, values: values.map { $0.bitPattern.littleEndian })
        case .float16: stored = Tensor(dataType: type, dims: dims, values: values.map { Float16(Float($0)).bitPattern.littleEndian })
        case .bfloat16: stored = Tensor(dataType: type, dims: dims, values: values.map { UInt16(Float($0).bitPattern >> 16).littleEndian })
        default: stored = Tensor(dataType: type, dims: dims, values: values.map { Float($0).bitPattern.littleEndian })
        }
        let w = graph.addInitializer(name: "w", tensor: stored)
        let mul = Node(opType: "Mul", name: "mul", inputs: [x, w], outputNames: ["y"])
        try graph.append(mul)
        try graph.addOutput(mul.outputs[0]!, info: ValueInfo(type: nil))
        return Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
    }

    private func rules(_ form: String) throws -> [CompiledRule] {
        try RuleFiles.rules(in: """
            rule stream-form {
              match {
                y = Mul(x, w)
              }
              where {
                constant(w)
              }
              compute {
                w2 = \(form)
              }
              replace {
                y = Add(x, w2)
              }
            }
            """)
    }

    /// The saved bytes, the rules fired and the explanations, with every computed tensor
    /// streamed where it can be (`streamed`) or every one computed whole.
    private func run(_ form: String, _ type: DataType, _ values: [Double], dims: [Int64] = [8, 4, 3, 3],
                     streamed: Bool) throws -> (bytes: Data, fired: [String], explanations: [String]) {
        let model = try model(type, values, dims: dims)
        var options = OptimizationOptions()
        options.explain = true
        options.evaluationLimits.minimumDeferredBytes = streamed ? 0 : .max
        let report = try optimize(model, rules: try rules(form), options: options)
        let directory = try fixtureWorkspace([])
        let path = directory.appendingPathComponent("out.onnx").path
        try ModelFile.save(model, to: path)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        // Serialized to a buffer, computed tensors (written by the saver's second thread past 1 MiB) alike.
        XCTAssertEqual(Data(try ModelFile.serialize(model)), bytes, form)
        return (bytes, report.fired.map { "\($0.rule) ×\($0.count)" }, report.explanations.map(\.description))
    }

    /// Every form on every floating-point type saves the same bytes streamed and whole.
    func testEveryFormSavesTheBytesOfTheWholeEvaluation() throws {
        let values = (0..<288).map { Double($0 % 17) * 0.37 - 2.9 }
        for type in [DataType.float, .double, .float16, .bfloat16] {
            for form in Self.forms {
                let whole = try run(form, type, values, streamed: false)
                let streamed = try run(form, type, values, streamed: true)
                XCTAssertEqual(whole.fired, ["stream-form ×1"], "\(type): \(form): \(whole.explanations)")
                XCTAssertEqual(streamed.fired, whole.fired, "\(type): \(form)")
                XCTAssertEqual(streamed.bytes, whole.bytes, "\(type): \(form)")
            }
        }
    }

    /// A weight of many chunks, whose per-channel runs (576 elements) and samples straddle the
    /// chunks' boundaries.
    func testLargeWeightsSaveTheBytesOfTheWholeEvaluation() throws {
        let values = (0..<36_864).map { Double($0 % 101) * 0.013 - 0.6 }
        for form in ["w * reshape(range(64), [dim(w, 0)] ++ ones(rank(w) - 1))", "reshape(range(64), [64, 1, 1, 1]) - w",
                     "reshape(reshape(w, [4, 16, 64, 9]) * reshape(range(64), [1, 1, 64, 1]), shape(w))", "w / 3"] {
            for type in [DataType.float, .float16] {
                let whole = try run(form, type, values, dims: [64, 64, 3, 3], streamed: false)
                let streamed = try run(form, type, values, dims: [64, 64, 3, 3], streamed: true)
                XCTAssertEqual(whole.fired, ["stream-form ×1"], "\(type): \(form): \(whole.explanations)")
                XCTAssertEqual(streamed.bytes, whole.bytes, "\(type): \(form)")
            }
        }
    }

    /// A weight of more than 1 MiB is written by the saver's second thread while it is made,
    /// chunk by chunk: the bytes are still those of the whole evaluation.
    func testWeightsWrittenWhileTheyAreMadeSaveTheBytesOfTheWholeEvaluation() throws {
        let values = (0..<589_824).map { Double($0 % 211) * 0.007 - 0.7 }
        for form in ["w * reshape(range(256), [dim(w, 0)] ++ ones(rank(w) - 1))", "w - 0.25"] {
            let whole = try run(form, .float, values, dims: [256, 256, 3, 3], streamed: false)
            let streamed = try run(form, .float, values, dims: [256, 256, 3, 3], streamed: true)
            XCTAssertEqual(whole.fired, ["stream-form ×1"], "\(form): \(whole.explanations)")
            XCTAssertEqual(streamed.bytes, whole.bytes, form)
        }
    }

    /// An empty weight streams to an empty tensor, deferred or kept, as the whole evaluation gives it.
    func testAnEmptyWeight() throws {
        for form in ["w * 2", "reshape(w, [0, 36]) - 1"] {
            let whole = try run(form, .float, [], dims: [0, 4, 3, 3], streamed: false)
            let streamed = try run(form, .float, [], dims: [0, 4, 3, 3], streamed: true)
            XCTAssertEqual(whole.fired, ["stream-form ×1"], "\(form): \(whole.explanations)")
            XCTAssertEqual(streamed.fired, whole.fired, form)
            XCTAssertEqual(streamed.bytes, whole.bytes, form)
        }
    }

    /// A result that is not finite, in float64 or once stored, is refused with the whole
    /// evaluation's message, wherever in the tensor the element is.
    func testNonFiniteResultsAreRefusedAlike() throws {
        for position in [0, 150, 287] {
            var values = [Double](repeating: 1, count: 288)
            values[position] = 3e38
            for (form, message) in [("w * 2", "w2 is not finite once stored as float (an element overflows it)"),
                                    ("w / reshape([1, 1, 1, 1, 0, 1, 1, 1], [8, 1, 1, 1])", "w2 is not finite")] {
                let whole = try run(form, .float, values, streamed: false)
                let streamed = try run(form, .float, values, streamed: true)
                XCTAssertEqual(whole.fired, [], form)
                XCTAssertEqual(streamed.fired, [], form)
                XCTAssertTrue(whole.explanations.first?.contains(message) ?? false, "\(whole.explanations)")
                XCTAssertEqual(streamed.explanations, whole.explanations, "\(form) at \(position)")
            }
        }
    }

    /// A float weight's largest magnitude usually shows the result finite without computing it;
    /// where it does not (an element near the largest float, in a channel scaled down), every
    /// element is checked, and a result that is finite still fires and saves the same bytes.
    /// A NaN or an infinity in the weight is refused as before.
    func testResultsTheLargestMagnitudeDoesNotShowFiniteAreCheckedElementByElement() throws {
        var values = (0..<288).map { Double($0 % 13) * 0.5 - 3 }
        values[40] = 3e38  // channel 1, scaled by 0.5 below
        let scaled = "w * reshape([2, 0.5, 1, 1, 1, 1, 1, 1], [8, 1, 1, 1])"
        let whole = try run(scaled, .float, values, streamed: false)
        let streamed = try run(scaled, .float, values, streamed: true)
        XCTAssertEqual(whole.fired, ["stream-form ×1"], "\(whole.explanations)")
        XCTAssertEqual(streamed.fired, whole.fired)
        XCTAssertEqual(streamed.bytes, whole.bytes)
        for bad in [Double.nan, .infinity] {
            values[200] = bad
            let whole = try run("w * 0.5", .float, values, streamed: false)
            let streamed = try run("w * 0.5", .float, values, streamed: true)
            XCTAssertEqual(whole.fired, [], "\(bad)")
            XCTAssertEqual(streamed.explanations, whole.explanations, "\(bad)")
        }
    }

    /// Errors of the operations streamed (a reshape to the wrong size, tensors of two element
    /// types) are the whole evaluation's.
    func testErrorsAreThoseOfTheWholeEvaluation() throws {
        let values = (0..<288).map { Double($0) }
        for form in ["reshape(w, [7, 36])", "w * cast(reshape([1, 2], [2, 1, 1, 1]), float16)", "reshape(w, [-1, -1])"] {
            let whole = try run(form, .float, values, streamed: false)
            let streamed = try run(form, .float, values, streamed: true)
            XCTAssertEqual(whole.fired, [], form)
            XCTAssertEqual(streamed.explanations, whole.explanations, form)
            XCTAssertFalse(whole.explanations.isEmpty, form)
        }
    }
}
