import XCTest
import ONNXFuseIR
import ONNXFuseOps

/// The whole-graph reference evaluator, the seeded inputs and the tolerances that `--verify`
/// builds on.
final class GraphEvaluatorTests: XCTestCase {
    func testRunsAGraphInOrderAndKeepsOutputsThatAreAlsoRead() throws {
        // y = x * w; z = y + x; both graph outputs (y is read again after it is an output).
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(3)])))
        let w = graph.addInitializer(name: "w", tensor: TensorValue(.float, shape: [3], reals: [2, -1, 0.5]).tensor())
        let y = Node(opType: "Mul", name: "y", inputs: [x, w], outputNames: ["y"])
        try graph.append(y)
        let z = Node(opType: "Add", name: "z", inputs: [y.outputs[0]!, x], outputNames: ["z"])
        try graph.append(z)
        try graph.addOutput(y.outputs[0]!, info: ValueInfo(type: nil))
        try graph.addOutput(z.outputs[0]!, info: ValueInfo(type: nil))
        let outputs = try GraphEvaluator(model: model).run(graph, inputs: ["x": TensorValue(.float, shape: [3], reals: [1, 2, 4])])
        XCTAssertEqual(outputs, [TensorValue(.float, shape: [3], reals: [2, -2, 2]), TensorValue(.float, shape: [3], reals: [3, 0, 6])])
        XCTAssertThrowsError(try GraphEvaluator(model: model).run(graph, inputs: [:])) { error in
            XCTAssertEqual("\(error)", "graph input 'x' has no value")
        }
    }

    func testAnOperatorWithoutKernelIsAnError() throws {
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(1)])))
        let node = Node(opType: "NoSuchOp", domain: "example", name: "n", inputs: [x], outputNames: ["y"])
        try graph.append(node)
        try graph.addOutput(node.outputs[0]!, info: ValueInfo(type: nil))
        XCTAssertThrowsError(try GraphEvaluator(model: model).run(graph, inputs: ["x": TensorValue(.float, shape: [1], reals: [1])])) { error in
            XCTAssertEqual("\(error)", "no kernel for example.NoSuchOp")
        }
    }

    func testLimitsAreCheckedBeforeAKernelAllocates() throws {
        // Small inputs that ask for large results: refused from their inferred shapes ("would
        // compute"), not after the kernel made them ("computes"). The fuzzer found the Range:
        // 2.5 × 10^8 doubles made, then refused.
        let graph = Graph(name: "g")
        func constant(_ name: String, _ value: TensorValue) -> Value { graph.addInitializer(name: name, tensor: value.tensor()) }
        func scalar(_ value: Double) -> TensorValue { TensorValue(.float, shape: [], reals: [value]) }
        let range = Node(opType: "Range", name: "range", inputs: [constant("s", scalar(0)), constant("l", scalar(2e8)), constant("d", scalar(1))],
                         outputNames: ["r"])
        let column = TensorValue(.float, shape: [16_384, 1], reals: [Double](repeating: 1, count: 16_384))
        let row = TensorValue(.float, shape: [1, 16_384], reals: [Double](repeating: 2, count: 16_384))
        let outer = Node(opType: "Mul", name: "outer", inputs: [constant("column", column), constant("row", row)], outputNames: ["o"])
        let registry = OperatorRegistry.standard
        func evaluate(_ node: Node, _ inputs: [TensorValue], workLimit: Int = .max, elementLimit: Int = 1 << 20) throws -> [TensorValue?] {
            var work = 0
            return try registry.evaluate(node, inputs: inputs, opsetVersion: 17, workLimit: workLimit, elementLimit: elementLimit, work: &work)
        }
        XCTAssertThrowsError(try evaluate(range, [scalar(0), scalar(2e8), scalar(1)])) { error in
            XCTAssertEqual("\(error)", "Range 'range' would compute 200000000 elements, more than the evaluation's limit (1048576)")
        }
        XCTAssertThrowsError(try evaluate(outer, [column, row])) { error in
            XCTAssertEqual("\(error)", "Mul 'outer' would compute 268435456 elements, more than the evaluation's limit (1048576)")
        }
        // Work: the elements read (32 Ki) and a share of those written.
        XCTAssertThrowsError(try evaluate(outer, [column, row], workLimit: 1 << 14, elementLimit: .max)) { error in
            XCTAssertEqual("\(error)", "Mul 'outer' would take the evaluation past its work limit (16384)")
        }
        // Within the limits, the kernel runs; the work done is added up.
        var work = 5
        let small = try registry.evaluate(range, inputs: [scalar(0), scalar(4), scalar(1)], opsetVersion: 17,
                                          workLimit: 100, elementLimit: 4, work: &work)
        XCTAssertEqual(small, [TensorValue(.float, shape: [4], reals: [0, 1, 2, 3])])
        XCTAssertEqual(work, 5 + GraphEvaluator.estimatedWork(of: range, inputs: [scalar(0), scalar(4), scalar(1)]))
    }

    func testWorkIsEstimatedFromWhatTheOperatorComputes() {
        func work(_ op: String, _ shapes: [[Int]], _ attributes: [Attribute] = []) -> Int {
            let graph = Graph(name: "g")
            let inputs = shapes.enumerated().map { index, shape in
                graph.addInput(name: "i\(index)", info: ValueInfo(type: .tensor(.float, shape.map { .value(Int64($0)) })))
            }
            let node = Node(opType: op, name: op, inputs: inputs, outputNames: ["y"], attributes: attributes)
            let values = shapes.map { TensorValue(.float, shape: $0, reals: [Double](repeating: 1, count: $0.reduce(1, *))) }
            return GraphEvaluator.estimatedWork(of: node, inputs: values)
        }
        // A matrix times a vector: one column (the elements read are more).
        XCTAssertEqual(work("MatMul", [[64, 128], [128]]), 64 * 128 + 128)
        // Batches broadcast: [1, 64, 1024] × [64, 1024, 64] is 64 products of 64 × 1024 × 64.
        XCTAssertEqual(work("MatMul", [[1, 64, 1024], [64, 1024, 64]]), 64 * 64 * 1024 * 64)
        // Gemm with transB: B is [N, K].
        XCTAssertEqual(work("Gemm", [[64, 128], [32, 128]], [Attribute(name: "transB", value: .int(1))]), 64 * 128 * 32)
        XCTAssertEqual(work("Gemm", [[64, 128], [128, 32]]), 64 * 128 * 32)
        // A Conv computes each output position: where the kernel fits, one per stride step.
        let conv = [[1, 4, 64, 64], [8, 4, 3, 3]]
        XCTAssertEqual(work("Conv", conv), 8 * 62 * 62 * 4 * 3 * 3)
        XCTAssertEqual(work("Conv", conv, [Attribute(name: "pads", value: .ints([1, 1, 1, 1]))]), 8 * 64 * 64 * 4 * 3 * 3)
        XCTAssertEqual(work("Conv", conv, [Attribute(name: "strides", value: .ints([2, 2]))]), 8 * 31 * 31 * 4 * 3 * 3)
        XCTAssertEqual(work("Conv", conv, [Attribute(name: "auto_pad", value: .string(Array("SAME_UPPER".utf8))),
                                           Attribute(name: "strides", value: .ints([2, 2]))]), 8 * 32 * 32 * 4 * 3 * 3)
        XCTAssertEqual(work("Conv", conv, [Attribute(name: "dilations", value: .ints([2, 2]))]), 8 * 60 * 60 * 4 * 3 * 3)
        // A Conv as a fully connected layer: one position (the elements read are more), and a
        // stride too large for any arithmetic is one position too.
        XCTAssertEqual(work("Conv", [[1, 64, 7, 7], [512, 64, 7, 7]]), 64 * 49 + 512 * 64 * 49)
        XCTAssertEqual(work("Conv", conv, [Attribute(name: "strides", value: .ints([Int64.max, 1]))]), 8 * 1 * 62 * 4 * 3 * 3)
        // An empty operand is no work: the elements read.
        XCTAssertEqual(work("MatMul", [[0, 64, 4096], [4096, 4096]]), 4096 * 4096)
        // A pool reads each output position's window.
        XCTAssertEqual(work("AveragePool", [[1, 4, 64, 64]], [Attribute(name: "kernel_shape", value: .ints([3, 3])),
                                                               Attribute(name: "strides", value: .ints([2, 2]))]), 4 * 31 * 31 * 9)
        // Other operators: the elements read.
        XCTAssertEqual(work("Add", [[8, 8], [8]]), 72)
    }

    func testTheSizeCheckLeavesOutAbsentOutputsAndReadsLargeInputsByShape() throws {
        // Unique of 64 elements with only its first and last outputs: the absent indices (64 of
        // them) are not counted against a limit of 16.
        let graph = Graph(name: "g")
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(64)])))
        let unique = Node(opType: "Unique", name: "unique", inputs: [x], outputNames: ["y", nil, nil, "counts"])
        let values = TensorValue(.float, shape: [64], reals: (0..<64).map { Double($0 % 3) })
        var work = 0
        let results = try OperatorRegistry.standard.evaluate(unique, inputs: [values], opsetVersion: 17, workLimit: .max,
                                                             elementLimit: 16, work: &work)
        XCTAssertEqual(results.map { $0?.shape }, [[3], nil, nil, [3]])
        // An Add of two large integer tensors: checked from their shapes, and computed.
        let big = TensorValue(.int64, shape: [1 << 17], integers: [Int64](repeating: 2, count: 1 << 17))
        let add = Node(opType: "Add", name: "add", inputs: [x, x], outputNames: ["sum"])
        let sum = try OperatorRegistry.standard.evaluate(add, inputs: [big, big], opsetVersion: 17, workLimit: .max,
                                                         elementLimit: 1 << 17, work: &work)
        XCTAssertEqual(sum.first??.count, 1 << 17)
        XCTAssertThrowsError(try OperatorRegistry.standard.evaluate(add, inputs: [big, big], opsetVersion: 17, workLimit: .max,
                                                                    elementLimit: 1 << 16, work: &work)) { error in
            XCTAssertEqual("\(error)", "Add 'add' would compute 131072 elements, more than the evaluation's limit (65536)")
        }
    }

    func testKernelsCountTheirStepsAgainstTheBudget() throws {
        // Einsum's estimate is the elements it reads (16 Ki here); its kernel counts its loops
        // (64 × 64 × 128 over 2 operands: 2^20) and refuses past what the budget leaves.
        let graph = Graph(name: "g")
        let a = graph.addInput(name: "a", info: ValueInfo(type: .tensor(.float, [.value(64), .value(128)])))
        let einsum = Node(opType: "Einsum", name: "e", inputs: [a, a], outputNames: ["y"],
                          attributes: [Attribute(name: "equation", value: .string(Array("ik,jk->ij".utf8)))])
        let operand = TensorValue(.float, shape: [64, 128], reals: [Double](repeating: 1, count: 64 * 128))
        var work = 0
        XCTAssertThrowsError(try OperatorRegistry.standard.evaluate(einsum, inputs: [operand, operand], opsetVersion: 17,
                                                                    workLimit: (1 << 20) - 1, elementLimit: .max, work: &work)) { error in
            XCTAssertEqual("\(error)", "Einsum: 64 x 64 x 128 x 2 steps are too many")
        }
        work = 0
        let product = try OperatorRegistry.standard.evaluate(einsum, inputs: [operand, operand], opsetVersion: 17,
                                                             workLimit: 1 << 20, elementLimit: .max, work: &work)
        XCTAssertEqual(product.first??.shape, [64, 64])
    }

    func testShapeInferenceComputesADataDependentShape() throws {
        // NonZero of 65,536 ones of rank 8: its [8, 65536] indices (half a million elements) are
        // computed, so its shape is known.
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let ones = graph.addInitializer(name: "ones", tensor: TensorValue(.int64, shape: [Int](repeating: 4, count: 8),
                                                                          integers: [Int64](repeating: 1, count: 1 << 16)).tensor())
        let nonZero = Node(opType: "NonZero", name: "nz", inputs: [ones], outputNames: ["indices"])
        try graph.append(nonZero)
        try graph.addOutput(nonZero.outputs[0]!, info: ValueInfo(type: nil))
        ShapeInference(model: model).run()
        XCTAssertEqual(nonZero.outputs[0]!.inferred?.shape, [.value(8), .value(65_536)])
    }

    func testShapeInferenceInfersWhatItWouldBeCostlyToCompute() throws {
        // `Grow(n)` makes n zeros; its kernel counts its calls. Inference runs the kernel on small
        // constant inputs (to know values), but not when the output would be large: then the
        // inference function gives the shape alone.
        final class Calls: @unchecked Sendable { var count = 0 }
        let calls = Calls()
        var registry = OperatorRegistry.standard
        registry.register(["Grow"], domain: "test.example") { _, inputs throws(OperatorError) in
            calls.count += 1
            let n = Int(try inputs[0]!.scalarInt64())
            return [TensorValue(.int64, shape: [n], integers: [Int64](repeating: 0, count: n))]
        }
        registry.register(["Grow"], domain: "test.example") { (context: inout InferenceContext) throws(OperatorError) in
            guard let n = context.input(0)?.staticShapeValue?.first else { return }
            context.setOutput(0, type: .int64, shape: [.value(n)])
        }
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17), OpsetImport(domain: "test.example", version: 1)],
                          graph: graph)
        func grow(_ n: Int64) throws -> Node {
            let size = graph.addInitializer(name: "n\(n)", tensor: TensorValue(.int64, shape: [], integers: [n]).tensor())
            let node = Node(opType: "Grow", domain: "test.example", name: "grow\(n)", inputs: [size], outputNames: ["zeros\(n)"])
            try graph.append(node)
            try graph.addOutput(node.outputs[0]!, info: ValueInfo(type: nil))
            return node
        }
        let small = try grow(3), large = try grow(100_000_000)
        let inference = ShapeInference(model: model, registry: registry)
        inference.run()
        XCTAssertEqual(calls.count, 1)
        XCTAssertEqual(inference.facts(of: small.outputs[0]!).staticShapeValue, [0, 0, 0])
        XCTAssertEqual(large.outputs[0]!.inferred?.shape, [.value(100_000_000)])
    }

    func testSeededInputsAreRepeatableAndSymbolsKeepTheirSize() throws {
        var first = SeededInputs(seed: 42), second = SeededInputs(seed: 42), other = SeededInputs(seed: 43)
        let shape: [ONNXFuseIR.Dimension] = [.param("N"), .value(3), .param("S")]
        let a = try XCTUnwrap(first.tensor(.float, shape: shape))
        XCTAssertEqual(a, second.tensor(.float, shape: shape))
        XCTAssertNotEqual(a, other.tensor(.float, shape: shape))
        XCTAssertEqual(a.shape, [2, 3, 3])
        XCTAssertEqual(first.tensor(.int64, shape: [.param("S"), .param("N")])?.shape, [3, 2], "a symbol keeps its size")
        XCTAssertEqual(first.symbolSizes, ["N": 2, "S": 3])
        for value in try a.doubleValues() {
            XCTAssertTrue(abs(value) <= 2 && (value * 64).rounded() == value * 64, "\(value)")
        }
        let bf16 = try XCTUnwrap(first.tensor(.bfloat16, shape: [.value(64)]))
        XCTAssertEqual(bf16, TensorValue(.bfloat16, shape: [64], reals: try bf16.doubleValues()), "exact in bfloat16")
        for value in try XCTUnwrap(first.tensor(.int32, shape: [.value(50)])).int64Values() { XCTAssertTrue((0..<2).contains(value)) }
        XCTAssertNil(first.tensor(.string, shape: [.value(1)]))
        XCTAssertNil(first.tensor(.float, shape: nil))
        XCTAssertNil(first.tensor(.float, shape: [.value(1 << 20), .value(1 << 20)]), "too large to make")
    }

    func testTolerancesByElementType() {
        func floats(_ values: [Double], _ type: DataType = .float) -> TensorValue { TensorValue(type, shape: [values.count], reals: values) }
        // Relative to the expected tensor's largest magnitude (here 100).
        XCTAssertEqual(NumericTolerance.error(of: floats([100, 0.001]), against: floats([100, 0])), 1e-5, accuracy: 1e-12)
        XCTAssertTrue(NumericTolerance.accepts(floats([100, 0.0009]), against: floats([100, 0])))
        XCTAssertFalse(NumericTolerance.accepts(floats([100, 0.002]), against: floats([100, 0])))
        XCTAssertFalse(NumericTolerance.accepts(floats([1, 1 + 1e-9], .double), against: floats([1, 1], .double)))
        XCTAssertTrue(NumericTolerance.accepts(floats([1, 1 + 1.0 / 512], .float16), against: floats([1, 1], .float16)))
        // -0 equals +0; NaN only where NaN was; infinities exactly.
        XCTAssertEqual(NumericTolerance.error(of: floats([-0.0]), against: floats([0.0])), 0)
        XCTAssertEqual(NumericTolerance.error(of: floats([.nan, 1]), against: floats([.nan, 1])), 0)
        XCTAssertEqual(NumericTolerance.error(of: floats([.nan]), against: floats([1])), .infinity)
        XCTAssertEqual(NumericTolerance.error(of: floats([-.infinity]), against: floats([.infinity])), .infinity)
        // Integers and booleans exactly; a different shape or type never.
        XCTAssertFalse(NumericTolerance.accepts(TensorValue(.int64, shape: [1], integers: [3]), against: TensorValue(.int64, shape: [1], integers: [4])))
        XCTAssertTrue(NumericTolerance.accepts(TensorValue.bool([true], shape: [1]), against: TensorValue.bool([true], shape: [1])))
        XCTAssertEqual(NumericTolerance.error(of: floats([1, 1]), against: TensorValue(.float, shape: [1, 2], reals: [1, 1])), .infinity)
        XCTAssertEqual(NumericTolerance.error(of: floats([1], .double), against: floats([1])), .infinity)
    }
}
