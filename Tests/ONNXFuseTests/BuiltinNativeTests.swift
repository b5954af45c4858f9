import XCTest
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// The native built-in rules (Sources/ONNXFuse/NativeRules): folding, shape arithmetic,
/// duplicate merging and no-op removal, on graphs built in code; what they become, and where
/// they must not fire.
final class BuiltinNativeTests: XCTestCase {
    /// A model with one graph `g` and a dynamic batch `N`.
    final class Case {
        let graph = Graph(name: "g")
        let model: Model

        init(opset: Int64 = 17, irVersion: Int64 = 8) {
            model = Model(irVersion: irVersion, opsetImports: [OpsetImport(domain: "", version: opset)], graph: graph)
        }

        func input(_ name: String, _ dims: [ONNXFuseIR.Dimension], type: DataType = .float) -> Value {
            graph.addInput(name: name, info: ValueInfo(type: .tensor(type, dims)))
        }

        func floats(_ name: String, _ values: [Float], _ dims: [Int64]) -> Value {
            graph.addInitializer(name: name, tensor: Tensor(dataType: .float, dims: dims, values: values))
        }

        func ints(_ name: String, _ values: [Int64], _ dims: [Int64]? = nil) -> Value {
            graph.addInitializer(name: name, tensor: Tensor(dataType: .int64, dims: dims ?? [Int64(values.count)], values: values))
        }

        @discardableResult
        func node(_ op: String, _ inputs: [Value?], _ output: String, _ attributes: [Attribute] = []) throws -> Value {
            let node = Node(opType: op, name: output, inputs: inputs, outputNames: [output], attributes: attributes)
            try graph.append(node)
            return node.outputs[0]!
        }

        func output(_ value: Value) throws { try graph.addOutput(value, info: ValueInfo(type: nil)) }

        /// Runs every built-in rule (or only `only`) with explanations; checks the IR.
        @discardableResult
        func run(only: [String]? = nil, foldLimit: Int? = nil) throws -> OptimizationReport {
            var options = OptimizationOptions()
            options.explain = true
            options.only = only.map(Set.init)
            if let foldLimit { options.foldElementLimit = foldLimit }
            let report = try optimize(model, rules: RuleFiles.builtin, options: options)
            try model.verify()
            return report
        }

        var text: String { Printer().print(graph) }

        func fired(_ report: OptimizationReport) -> [String: Int] {
            Dictionary(uniqueKeysWithValues: report.fired.map { ($0.rule, $0.count) })
        }

        func initializer(_ name: String) -> TensorValue? {
            graph.initializers.first { $0.name == name }?.initializer.flatMap { try? TensorValue(tensor: $0) }
        }
    }

    func testNativeRulesAreListedWithTheBuiltins() {
        let names = Set(RuleFiles.builtin.map(\.name))
        for name in ["lift-constant", "fold-constants", "fold-shape-arithmetic", "merge-duplicates", "remove-noop-cast",
                     "remove-noop-reshape", "remove-noop-slice", "remove-noop-concat", "remove-noop-arithmetic",
                     "remove-noop-where", "remove-noop-pad", "constant-reshape-shape", "merge-reshapes", "merge-slices",
                     "merge-unsqueezes"] {
            XCTAssertTrue(names.contains(name), name)
        }
    }

    func testLiftConstantMakesAnInitializer() throws {
        let c = Case()
        let x = c.input("x", [.value(2)])
        let node = Node(opType: "Constant", name: "k", inputs: [], outputNames: ["k"],
                        attributes: [Attribute(name: "value_floats", value: .floats([1, 2]))])
        try c.graph.append(node)
        try c.output(c.node("Sub", [x, node.outputs[0]!], "y"))
        let report = try c.run(only: ["lift-constant"])
        XCTAssertEqual(c.fired(report), ["lift-constant": 1])
        XCTAssertEqual(c.graph.nodeCount, 1)
        XCTAssertEqual(c.initializer("k"), TensorValue(.float, shape: [2], reals: [1, 2]))
    }

    func testLiftConstantNeedsIRVersion4() throws {
        let c = Case(irVersion: 3)
        let node = Node(opType: "Constant", name: "k", inputs: [], outputNames: ["k"],
                        attributes: [Attribute(name: "value_float", value: .float(1))])
        try c.graph.append(node)
        try c.output(c.node("Neg", [node.outputs[0]!], "y"))
        XCTAssertEqual(c.fired(try c.run(only: ["lift-constant"])), [:])
    }

    func testFoldConstantsEvaluatesAChain() throws {
        let c = Case()
        let a = c.floats("a", [1, 2, 3], [3])
        let b = c.floats("b", [10, 20, 30], [3])
        let sum = try c.node("Add", [a, b], "sum")
        let x = c.input("x", [.param("N"), .value(3)])
        try c.output(c.node("Mul", [x, c.node("Neg", [sum], "negated")], "y"))
        let report = try c.run(only: ["fold-constants"])
        XCTAssertEqual(c.fired(report), ["fold-constants": 2])
        XCTAssertEqual(c.graph.nodeCount, 1)
        XCTAssertEqual(c.initializer("negated"), TensorValue(.float, shape: [3], reals: [-11, -22, -33]))
    }

    func testFoldConstantsKeepsExactInt64() throws {
        let c = Case()
        let big = c.ints("big", [Int64.max - 1], [])
        let one = c.ints("one", [1], [])
        let x = c.input("x", [], type: .int64)
        try c.output(c.node("Sub", [x, c.node("Add", [big, one], "max")], "y"))
        try c.run(only: ["fold-constants"])
        XCTAssertEqual(c.initializer("max"), .int64Scalar(Int64.max))
        XCTAssertTrue(c.text.contains("9223372036854775807"), c.text)
    }

    func testFoldConstantsMustNotFire() throws {
        // A graph input, an overridable initializer, a random operator, and a result over the limit.
        let c = Case()
        let x = c.input("x", [.value(3)])
        let a = c.floats("a", [1, 2, 3], [3])
        try c.output(c.node("Add", [x, a], "from_input"))
        let overridable = c.input("w", [.value(3)])
        try c.graph.setInitializer(Tensor(dataType: .float, dims: [3], values: [Float(1), 2, 3]), forInput: overridable)
        try c.output(c.node("Neg", [overridable], "from_overridable"))
        try c.output(c.node("RandomNormalLike", [a], "random"))
        let shape = c.ints("shape", [4, 3])
        try c.output(c.node("Expand", [a, shape], "expanded"))
        let before = c.text
        XCTAssertEqual(c.fired(try c.run(only: ["fold-constants"], foldLimit: 8)), [:])
        XCTAssertEqual(c.text, before)
        // Within the limit, the Expand folds (and only it).
        XCTAssertEqual(c.fired(try c.run(only: ["fold-constants"], foldLimit: 12)), ["fold-constants": 1])
    }

    func testFoldConstantsLeavesLargeOutputsOfSmallInputs() throws {
        // Small inputs that ask for a large result (found by the fuzzer: a Range of three scalars
        // made 2.5 × 10^8 elements before the limit was checked; GraphEvaluatorTests shows the limits
        // are checked before a kernel runs). Shape inference infers them instead of computing them.
        let c = Case()
        let scalar = { (name: String, value: Float) in c.floats(name, [value], []) }
        try c.output(c.node("Range", [scalar("start", 0), scalar("limit", 200_000_000), scalar("delta", 1)], "range"))
        let ones = [Float](repeating: 1, count: 16_384)
        let column = c.graph.addInitializer(name: "column", tensor: Tensor(dataType: .float, dims: [16_384, 1], values: ones))
        let row = c.graph.addInitializer(name: "row", tensor: Tensor(dataType: .float, dims: [1, 16_384], values: ones))
        try c.output(c.node("Mul", [column, row], "outer"))
        let before = c.text
        XCTAssertEqual(c.fired(try c.run(only: ["fold-constants"])), [:])
        XCTAssertEqual(c.text, before)
        XCTAssertEqual(c.graph.nodes.map { $0.outputs[0]!.inferred?.shape }, [[.value(200_000_000)], [.value(16_384), .value(16_384)]])
    }

    func testFoldConstantsLeavesWorkOverItsLimit() throws {
        // A 64 × 4,096 by 4,096 × 64 product of constants: a small output (4,096 elements) from
        // 16 Mi multiply-adds. A fold limit of 32 Ki elements allows 16 times that in inputs
        // (512 Ki: these) and 16 times those in work (8 Mi), which leaves it; 4 Mi folds it.
        let c = Case()
        let ones = [Float](repeating: 1, count: 64 * 4_096)
        let a = c.graph.addInitializer(name: "a", tensor: Tensor(dataType: .float, dims: [64, 4_096], values: ones))
        let b = c.graph.addInitializer(name: "b", tensor: Tensor(dataType: .float, dims: [4_096, 64], values: ones))
        try c.output(c.node("MatMul", [a, b], "product"))
        XCTAssertEqual(c.fired(try c.run(only: ["fold-constants"], foldLimit: 1 << 15)), [:])
        XCTAssertEqual(c.fired(try c.run(only: ["fold-constants"], foldLimit: 1 << 22)), ["fold-constants": 1])
        XCTAssertEqual(c.initializer("product"), TensorValue(.float, shape: [64, 64], reals: [Double](repeating: 4_096, count: 4_096)))
    }

    func testFoldShapeArithmeticFoldsStaticDimensionsBesideSymbolicOnes() throws {
        let c = Case()
        let x = c.input("x", [.param("N"), .value(3), .value(4)])
        let shape = try c.node("Shape", [x], "shape")
        let batch = try c.node("Gather", [shape, c.ints("zero", [0], [])], "batch", [Attribute(name: "axis", value: .int(0))])
        let width = try c.node("Gather", [shape, c.ints("two", [2], [])], "width", [Attribute(name: "axis", value: .int(0))])
        try c.output(c.node("Mul", [batch, width], "product"))
        try c.output(c.node("Mul", [width, c.ints("ten", [10], [])], "forty"))
        let report = try c.run()
        XCTAssertEqual(c.fired(report)["fold-shape-arithmetic"], 1, "\(report.fired)")
        XCTAssertEqual(c.initializer("forty"), .int64Scalar(40))
        XCTAssertTrue(c.text.contains("Gather"), "the batch dimension stays symbolic:\n\(c.text)")
    }

    func testMergeDuplicatesKeepsTheFirst() throws {
        let c = Case()
        let x = c.input("x", [.param("N"), .value(3)])
        let first = try c.node("Relu", [x], "first")
        let second = try c.node("Relu", [x], "second")
        let other = try c.node("LeakyRelu", [x], "leaky", [Attribute(name: "alpha", value: .float(0.1))])
        let other2 = try c.node("LeakyRelu", [x], "leaky2", [Attribute(name: "alpha", value: .float(0.2))])
        try c.output(c.node("Add", [first, second], "sum"))
        try c.output(c.node("Add", [other, other2], "sum2"))
        let report = try c.run(only: ["merge-duplicates"])
        XCTAssertEqual(c.fired(report), ["merge-duplicates": 1])
        XCTAssertEqual(c.graph.nodes.filter { $0.opType == "Relu" }.count, 1)
        XCTAssertEqual(c.graph.nodes.filter { $0.opType == "LeakyRelu" }.count, 2, "different attributes stay apart")
    }

    func testMergeDuplicatesFindsEarlyNodesAfterItsIndexIsSwept() throws {
        // merge-duplicates' index drops erased nodes each time it doubles (from 4,096 entries):
        // the living ones stay, so duplicates met after 6,000 other nodes still merge.
        let c = Case()
        var value = c.input("x", [.param("N"), .value(3)])
        var chain: [Value] = []
        for index in 0..<6_000 {
            value = try c.node("Neg", [value], "n\(index)")
            chain.append(value)
        }
        for index in [0, 100, 2_999, 5_998] {
            let duplicate = try c.node("Neg", [index == 0 ? c.graph.inputs[0] : chain[index - 1]], "dup\(index)")
            try c.output(c.node("Add", [chain[index], duplicate], "sum\(index)"))
        }
        try c.output(value)
        let report = try c.run(only: ["merge-duplicates"])
        XCTAssertEqual(c.fired(report), ["merge-duplicates": 4])
        XCTAssertEqual(c.graph.nodes.filter { $0.opType == "Neg" }.count, 6_000)
    }

    func testMergeDuplicatesLeavesRandomOperatorsAndSharesInitializers() throws {
        let c = Case()
        let x = c.input("x", [.value(3)])
        try c.output(c.node("Add", [c.node("RandomUniformLike", [x], "r1"), c.node("RandomUniformLike", [x], "r2")], "noise"))
        let a = c.floats("a", [1, 2, 3], [3])
        let b = c.floats("b", [1, 2, 3], [3])
        try c.output(c.node("Add", [c.node("Mul", [x, a], "xa"), c.node("Mul", [x, b], "xb")], "y"))
        let report = try c.run(only: ["merge-duplicates"])
        // The initializers become one; then the two Muls read the same values and merge.
        XCTAssertEqual(c.fired(report), ["merge-duplicates": 2])
        XCTAssertEqual(c.graph.nodes.filter { $0.opType == "RandomUniformLike" }.count, 2)
        XCTAssertEqual(c.graph.nodes.filter { $0.opType == "Mul" }.count, 1)
    }

    func testManyDuplicateReadersOfOneValueMergeIntoOne() throws {
        // Each merge replaces one more input of the Concat; its facts are refreshed once they
        // are needed, not at every merge, and end up the same.
        let c = Case()
        let x = c.input("x", [.value(1), .param("W")])
        let relus = try (0..<500).map { try c.node("Relu", [x], "r\($0)") }
        let concat = Node(opType: "Concat", name: "concat", inputs: relus, outputNames: ["y"], attributes: [Attribute(name: "axis", value: .int(0))])
        try c.graph.append(concat)
        try c.output(concat.outputs[0]!)
        let report = try c.run()
        XCTAssertEqual(c.fired(report), ["merge-duplicates": 499])
        XCTAssertEqual(c.graph.nodes.map(\.opType), ["Relu", "Concat"])
        XCTAssertEqual(Set(concat.inputs.map { ObjectIdentifier($0!) }).count, 1)
        XCTAssertEqual(concat.outputs[0]!.inferred?.shape, [.value(500), .param("W")])
    }

    func testMergeDuplicatesComparesTensorAttributesByContent() throws {
        // Same type and dims, different values: apart; same values: merged. Many nodes whose
        // signatures collide (string tensors alike in their first 64 strings) are each compared
        // with a bounded number of others, and a true duplicate of the first still merges.
        let c = Case()
        let shape = c.input("s", [.value(1)], type: .int64)
        func fill(_ value: Float, _ name: String) throws -> Value {
            try c.node("ConstantOfShape", [shape], name, [Attribute(name: "value", value: .tensor(Tensor(dataType: .float, dims: [1], values: [value])))])
        }
        try c.output(c.node("Concat", [fill(1, "one"), fill(2, "two"), fill(1, "one_again")], "filled", [Attribute(name: "axis", value: .int(0))]))
        let x = c.input("x", [.value(2)])
        var colliding: [Value] = []
        for index in 0..<40 {  // past the bucket limit (32)
            let strings = Array(repeating: Array("same".utf8), count: 64) + [Array("tail\(index)".utf8)]
            let tensor = Tensor(dataType: .string, dims: [65], storage: .stringData(strings))
            colliding.append(try c.node("Identity", [x], "id\(index)", [Attribute(name: "tag", value: .tensor(tensor))]))
        }
        let first = colliding[0].producer!.attributes
        colliding.append(try c.node("Identity", [x], "id_again", first))
        try c.output(c.node("Concat", colliding, "tags", [Attribute(name: "axis", value: .int(0))]))
        let report = try c.run(only: ["merge-duplicates"])
        XCTAssertEqual(c.fired(report), ["merge-duplicates": 2])
        XCTAssertEqual(c.graph.nodes.filter { $0.opType == "ConstantOfShape" }.map(\.name), ["one", "two"])
        XCTAssertFalse(c.graph.nodes.contains { $0.name == "id_again" })
    }

    func testMergeDuplicatesComparesManyAttributesByName() throws {
        // The same 500 attributes in another order: merged. One value apart: not.
        let c = Case()
        let x = c.input("x", [.value(2)])
        let attributes = (0..<500).map { Attribute(name: "k\($0)", value: .int(Int64($0))) }
        var apart = attributes
        apart[499] = Attribute(name: "k499", value: .int(-1))
        let first = try c.node("Identity", [x], "first", attributes)
        let shuffled = try c.node("Identity", [x], "shuffled", attributes.reversed())
        let other = try c.node("Identity", [x], "other", apart)
        try c.output(c.node("Concat", [first, shuffled, other], "y", [Attribute(name: "axis", value: .int(0))]))
        XCTAssertEqual(c.fired(try c.run(only: ["merge-duplicates"])), ["merge-duplicates": 1])
        XCTAssertEqual(c.graph.nodes.filter { $0.opType == "Identity" }.map(\.name), ["first", "other"])
    }

    func testMergeDuplicatesLeavesDropoutsThatMayTrain() throws {
        // training_mode from a graph input or a constant true: each Dropout draws its own mask.
        let c = Case()
        let x = c.input("x", [.value(3)])
        let ratio = c.floats("ratio", [0.5], [])
        let training = c.input("training", [], type: .bool)
        let on = c.graph.addInitializer(name: "on", tensor: Tensor(dataType: .bool, dims: [], values: [true]))
        try c.output(c.node("Add", [c.node("Dropout", [x, ratio, training], "d1"), c.node("Dropout", [x, ratio, training], "d2")], "y"))
        try c.output(c.node("Add", [c.node("Dropout", [x, ratio, on], "d3"), c.node("Dropout", [x, ratio, on], "d4")], "z"))
        let before = c.text
        XCTAssertEqual(c.fired(try c.run(only: ["merge-duplicates", "fold-constants"])), [:])
        XCTAssertEqual(c.text, before)
        // A constant false: the same value (inference mode), merged.
        let d = Case()
        let y = d.input("x", [.value(3)])
        let off = d.graph.addInitializer(name: "off", tensor: Tensor(dataType: .bool, dims: [], values: [false]))
        try d.output(d.node("Add", [d.node("Dropout", [y, nil, off], "d1"), d.node("Dropout", [y, nil, off], "d2")], "y"))
        XCTAssertEqual(d.fired(try d.run(only: ["merge-duplicates"])), ["merge-duplicates": 1])
    }

    func testNoopRemovals() throws {
        let c = Case()
        let x = c.input("x", [.param("N"), .value(3)])
        let cast = try c.node("Cast", [x], "cast", [Attribute(name: "to", value: .int(1))])
        let shape = try c.node("Shape", [cast], "shape")
        let batch = try c.node("Slice", [shape, c.ints("s0", [0]), c.ints("s1", [1])], "batch")
        let target = Node(opType: "Concat", name: "target", inputs: [batch, c.ints("three", [3])], outputNames: ["target"],
                          attributes: [Attribute(name: "axis", value: .int(0))])
        try c.graph.append(target)
        let reshaped = try c.node("Reshape", [cast, target.outputs[0]!], "reshaped")
        let sliced = try c.node("Slice", [reshaped, c.ints("start", [0]), c.ints("end", [Int64.max]), c.ints("axes", [1])], "sliced")
        let single = Node(opType: "Concat", name: "single", inputs: [sliced], outputNames: ["single"],
                          attributes: [Attribute(name: "axis", value: .int(1))])
        try c.graph.append(single)
        let plusZero = try c.node("Add", [single.outputs[0]!, c.floats("zeros", [-0.0, -0.0, -0.0], [3])], "plus_zero")
        try c.output(c.node("Mul", [plusZero, c.floats("one", [1], [1])], "y"))
        let report = try c.run()
        let fired = c.fired(report)
        XCTAssertEqual(fired["remove-noop-cast"], 1, "\(fired)")
        XCTAssertEqual(fired["remove-noop-slice"], 1, "\(fired)")
        XCTAssertEqual(fired["remove-noop-concat"], 1, "\(fired)")
        XCTAssertEqual(fired["remove-noop-arithmetic"], 2, "\(fired)")
        // The Reshape's target becomes [0, 3] (it copies N): the Reshape is a no-op too. The
        // graph input x cannot take the name of the graph output y, so an Identity keeps it.
        XCTAssertEqual(fired["constant-reshape-shape"], 1, "\(fired)")
        XCTAssertEqual(fired["remove-noop-reshape"], 1, "\(fired)")
        XCTAssertEqual(c.graph.nodes.map(\.opType), ["Identity"], c.text)
        XCTAssertTrue(c.graph.firstNode!.inputs[0]!.definition == .graphInput, c.text)
        XCTAssertEqual(c.graph.outputs.map(\.value.name), ["y"])
    }

    func testNoopRemovalsMustNotFire() throws {
        let c = Case()
        let x = c.input("x", [.param("N"), .value(3)])
        // A Cast that changes the type, an Add of zero that broadcasts to a larger shape, a
        // Reshape to a different shape, a Slice that drops an element, an Add of non-zero.
        try c.output(c.node("Cast", [x], "to_double", [Attribute(name: "to", value: .int(11))]))
        try c.output(c.node("Add", [x, c.floats("zeros", [0, 0, 0, 0, 0, 0], [2, 1, 3])], "broadcast"))
        try c.output(c.node("Reshape", [x, c.ints("flat", [-1])], "flat_x"))
        try c.output(c.node("Slice", [x, c.ints("start", [1]), c.ints("end", [Int64.max]), c.ints("axes", [1])], "tail"))
        try c.output(c.node("Add", [x, c.floats("half", [0.5], [1])], "plus_half"))
        let before = c.text
        let report = try c.run(only: ["remove-noop-cast", "remove-noop-reshape", "remove-noop-slice", "remove-noop-arithmetic"])
        XCTAssertEqual(c.fired(report), [:])
        XCTAssertEqual(c.text, before)
    }

    func testDynamoConvBiasFoldsAndBatchNormalizationFolds() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../fixtures/dynamo_conv_bn.onnx").standardized.path
        let model = try ModelFile.load(path: path)
        let report = try optimize(model, rules: RuleFiles.builtin)
        try model.verify()
        XCTAssertEqual(ModelStatistics(model).nodesByOpType, ["Conv": 1], "\(report.fired)")
    }

    func testShapeArithmeticFixtureShrinks() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../fixtures/shape_arithmetic.onnx").standardized.path
        let model = try ModelFile.load(path: path)
        let report = try optimize(model, rules: RuleFiles.builtin)
        try model.verify()
        let counts = ModelStatistics(model).nodesByOpType
        XCTAssertNil(counts["Cast"], "\(counts) \(report.fired)")
        XCTAssertNil(counts["Sqrt"], "\(counts)")
        // Both Reshape targets become constants ([0, 0, 4, 16] and [0, 0, 64]): no Shape is left.
        XCTAssertEqual(counts, ["Reshape": 2, "Div": 1], "\(report.fired)")
    }

    func testInputShapeFixesDimensionsAndInferShapesWritesValueInfo() throws {
        let c = Case()
        let x = c.input("x", [.param("N"), .value(3)])
        try c.output(c.node("Relu", [c.node("Neg", [x], "negated")], "y"))
        try setInputShapes(c.model, [(name: "x", dims: [2, 3])])
        writeInferredValueInfo(c.model)
        let negated = c.graph.firstNode!.outputs[0]!
        XCTAssertEqual(negated.info?.type?.description, "float[2,3]")
        XCTAssertThrowsError(try setInputShapes(c.model, [(name: "x", dims: [2, 4])]))
        XCTAssertThrowsError(try setInputShapes(c.model, [(name: "nope", dims: [1])]))
    }

    func testRuleLanguageSeesSymbolicDimensions() throws {
        let text = """
            rule same-batch {
              match { z = Add(x, y) }
              where { rank(x) == 2 && dim(x, 0) == dim(y, 0) && dim(x, 1) == 3 && dtype(z) == float }
              replace { z = Sub(x, y) }
            }
            """
        let rules = try RuleFiles.rules(in: text)
        let c = Case()
        let x = c.input("x", [.param("N"), .value(3)])
        let y = c.input("y", [.param("N"), .value(3)])
        let w = c.input("w", [.param("M"), .value(3)])
        try c.output(c.node("Add", [x, y], "same"))
        try c.output(c.node("Add", [x, w], "different"))
        var options = OptimizationOptions()
        options.explain = true
        let report = try optimize(c.model, rules: rules, options: options)
        XCTAssertEqual(report.fired.first?.count, 1)
        XCTAssertTrue(c.text.contains("Sub"))
        XCTAssertTrue(report.explanations.contains { $0.reason.contains("symbolic") }, "\(report.explanations)")
    }

    func testShapeFunctionsTakeComputedTensors() throws {
        // rank, shape, dim and numel of a tensor the rule computes (as docs/rules.md says),
        // beside the same functions of a value of the match; len and `in` of a tensor.
        let text = """
            rule scale-by-size {
              match { y = Mul(x, w) }
              where { constant(w) && numel(w) == 1 && 1.5 in w && !(2 in w) }
              compute {
                k = reshape(w, [1]) * full([2, 3], 1.0)
                n = numel(k) + rank(k) + dim(k, 1) + len(shape(k)) + len(k) + numel(reshape(k, [-1]))
                w2 = w * n
              }
              replace { y = Mul(x, w2) }
            }
            """
        let rules = try RuleFiles.rules(in: text)
        let c = Case()
        let x = c.input("x", [.value(2)])
        try c.output(c.node("Mul", [x, c.floats("w", [1.5], [])], "y"))
        var options = OptimizationOptions()
        options.explain = true
        let report = try optimize(c.model, rules: rules, options: options)
        XCTAssertEqual(report.fired.first?.count, 1, "\(report.explanations)")
        XCTAssertEqual(c.graph.initializers.compactMap { $0.initializer.flatMap { try? TensorValue(tensor: $0) } }.last,
                       TensorValue(.float, shape: [], reals: [1.5 * 25]))
    }

    func testAComputedWeightThatOverflowsItsStoredTypeIsRefused() throws {
        // Finite in float64, infinite once rounded to float (or float16): checked after rounding.
        let text = """
            rule fold-neg-scale {
              match {
                m = Mul(x, w)
                y = Neg(m)
              }
              where { constant(w) }
              compute { w2 = w * -2 }
              replace { y = Mul(x, w2) }
            }
            """
        let rules = try RuleFiles.rules(in: text)
        for (type, big, fine) in [(DataType.float, Float(3e38), Float(1e38)), (.float16, Float(60000), Float(30000)),
                                  (.bfloat16, Float(3e38), Float(1e38))] {
            for (value, fires) in [(big, false), (fine, true)] {
                let c = Case()
                let x = c.input("x", [.value(2)], type: type)
                let w = c.graph.addInitializer(name: "w", tensor: TensorValue(type, shape: [1], reals: [Double(value)]).tensor())
                try c.output(c.node("Neg", [c.node("Mul", [x, w], "m")], "y"))
                var options = OptimizationOptions()
                options.explain = true
                let report = try optimize(c.model, rules: rules, options: options)
                XCTAssertEqual(report.fired.isEmpty, !fires, "\(type) \(value)")
                if !fires {
                    XCTAssertEqual(report.explanations.map(\.reason), ["w2 is not finite once stored as \(type) (an element overflows it)"])
                }
            }
        }
    }

    func testASymmetricPatternWithAFalseGuardStopsAtOnce() throws {
        // Five interchangeable pattern nodes against 12 readers: 7,920 ordered choices below
        // each (40 readers: 78 million), none accepted. The condition reads x only, so its
        // refusal holds for every choice of the others: one complete match is tried per root.
        let text = """
            rule five {
              match {
                a1 = Relu(x)
                a2 = Relu(x)
                a3 = Relu(x)
                a4 = Relu(x)
                a5 = Relu(x)
              }
              where { rank(x) == 7 }
              replace {
                a1 = Neg(x)
                a2 = Neg(x)
                a3 = Neg(x)
                a4 = Neg(x)
                a5 = Neg(x)
              }
            }
            """
        let rules = try RuleFiles.rules(in: text)
        let c = Case()
        let x = c.input("x", [.value(2)])
        for index in 0..<12 { try c.output(c.node("Relu", [x], "r\(index)")) }
        var options = OptimizationOptions()
        options.explain = true
        let report = try optimize(c.model, rules: rules, options: options)
        XCTAssertTrue(report.fired.isEmpty)
        XCTAssertEqual(report.explanations.map(\.reason), Array(repeating: "`rank(x) == 7` is false", count: 12))
    }

    func testAPatternSearchStopsAtItsBudget() throws {
        // Four pattern nodes that one condition reads together, against 14 readers: 24,024
        // ordered choices, none accepted, none of them interchangeable for the condition. The
        // search stops at its budget and says so.
        let text = """
            rule four {
              match {
                a1 = Relu(x)
                a2 = Relu(x)
                a3 = Relu(x)
                a4 = Relu(x)
                y = Sigmoid(x)
              }
              where { rank(a1) + rank(a2) + rank(a3) + rank(a4) == 7 }
              replace {
                a1 = Neg(x)
                a2 = Neg(x)
                a3 = Neg(x)
                a4 = Neg(x)
                y = Neg(x)
              }
            }
            """
        let rules = try RuleFiles.rules(in: text)
        let c = Case()
        let x = c.input("x", [.value(2)])
        for index in 0..<14 { try c.output(c.node("Relu", [x], "r\(index)")) }
        try c.output(c.node("Sigmoid", [x], "s"))
        var options = OptimizationOptions()
        options.explain = true
        let report = try optimize(c.model, rules: rules, options: options)
        XCTAssertTrue(report.fired.isEmpty)
        XCTAssertEqual(report.explanations.map(\.reason), ["the pattern search stopped after trying 10000 candidate nodes here"])
    }
}
