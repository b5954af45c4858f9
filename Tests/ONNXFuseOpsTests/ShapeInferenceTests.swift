import XCTest
import ONNXFuseIR
@testable import ONNXFuseOps

/// Whole-graph inference: facts kept current after an edit, and the two kinds of symbols.
final class ShapeInferenceTests: XCTestCase {
    func testRefreshRedoesANodeWhenALongerPathChangesAnotherInput() throws {
        // s feeds d directly and through p1 → p2. p1 reads s before d does, so a walk that
        // finishes d on its first visit sees p2's old facts.
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(4)])))
        let target = graph.addInput(name: "target", info: ValueInfo(type: .tensor(.int64, [.value(2)])))
        func node(_ op: String, _ inputs: [Value], _ name: String) throws -> Node {
            let node = Node(opType: op, name: name, inputs: inputs, outputNames: [name])
            try graph.append(node)
            return node
        }
        let s = try node("Reshape", [x, target], "s")
        let p1 = try node("Neg", [s.outputs[0]!], "p1")
        let p2 = try node("Abs", [p1.outputs[0]!], "p2")
        let d = try node("Add", [s.outputs[0]!, p2.outputs[0]!], "d")
        try graph.addOutput(d.outputs[0]!, info: ValueInfo(type: nil))
        let inference = ShapeInference(model: model)
        inference.run()
        XCTAssertNotEqual(d.outputs[0]!.inferred?.shape, [.value(2), .value(2)])
        // The target becomes a constant, as folding would make it.
        let constant = graph.addInitializer(name: "fixed", tensor: TensorValue.int64([2, 2]).tensor())
        try s.setInput(1, to: constant)
        let changed = inference.refresh(from: s)
        XCTAssertEqual(d.outputs[0]!.inferred?.shape, [.value(2), .value(2)])
        XCTAssertEqual(Set(changed.map { $0.name ?? "" }), ["s", "p1", "p2", "d"])
    }

    func testFloatConstantsAreReadWhenAKernelAsks() throws {
        // A float initializer's facts read its elements only when asked for: Resize's scales
        // still give the output shape, and a fully constant node still folds to a value.
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(1), .value(1), .value(2), .value(3)])))
        let scales = graph.addInitializer(name: "scales", tensor: Tensor(dataType: .float, dims: [4], values: [Float(1), 1, 2, 0.5]))
        let resize = Node(opType: "Resize", inputs: [x, nil, scales], outputNames: ["r"])
        try graph.append(resize)
        let a = graph.addInitializer(name: "a", tensor: Tensor(dataType: .float, dims: [2], values: [Float(1.5), -2]))
        let add = Node(opType: "Add", inputs: [a, a], outputNames: ["s"])
        try graph.append(add)
        let inference = ShapeInference(model: model)
        let facts = inference.facts(of: scales)
        XCTAssertEqual(facts.elementType, .float)
        XCTAssertEqual(facts.shape, [.value(4)])
        XCTAssertEqual(try facts.constant?.doubleValues(), [1, 1, 2, 0.5])
        XCTAssertEqual(facts, ValueFacts(constant: try TensorValue(tensor: scales.initializer!)))
        // A weight computed when read (as a folded one is) shows when its elements are read:
        // not for its facts, nor for inferring a node that only needs its shape.
        final class Reads: @unchecked Sendable { var count = 0 }
        let reads = Reads()
        let values: [Float] = [0.5, -1, 2, 4]
        let samples = values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
        let computed = DeferredBytes(count: 16, samples: samples) { buffer in
            reads.count += 1
            buffer.copyBytes(from: samples)
        }
        let weight = graph.addInitializer(name: "weight", tensor: Tensor(name: "weight", dataType: .float, dims: [4],
                                                                          storage: .raw(TensorBytes(deferred: computed))))
        let y = graph.addInput(name: "y", info: ValueInfo(type: .tensor(.float, [.value(3), .value(4)])))
        let scaled = Node(opType: "Mul", inputs: [y, weight], outputNames: ["scaled"])
        try graph.append(scaled)
        let weightFacts = inference.facts(of: weight)
        XCTAssertEqual(weightFacts.shape, [.value(4)])
        XCTAssertEqual(reads.count, 0)
        inference.run()
        XCTAssertEqual(reads.count, 0, "inferring Mul read the weight's elements")
        XCTAssertEqual(scaled.outputs[0]!.inferred?.shape, [.value(3), .value(4)])
        XCTAssertEqual(try weightFacts.constant?.doubleValues(), values.map(Double.init))
        XCTAssertEqual(reads.count, 1)
        XCTAssertEqual(resize.outputs[0]!.inferred?.shape, [.value(1), .value(1), .value(4), .value(1)])
        XCTAssertEqual(add.outputs[0]!.inferred?.shape, [.value(2)])
        XCTAssertEqual(add.outputs[0]!.inferred?.elementType, .float)
    }

    func testDifferencesOfDimensionsAreValueSymbols() throws {
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.param("N"), .value(4)])))
        func node(_ op: String, _ inputs: [Value], _ name: String, _ attributes: [Attribute] = []) throws -> Value {
            let node = Node(opType: op, name: name, inputs: inputs, outputNames: [name], attributes: attributes)
            try graph.append(node)
            return node.outputs[0]!
        }
        let shape = try node("Shape", [x], "shape")
        let one = graph.addInitializer(name: "one", tensor: TensorValue.int64([1]).tensor())
        let less = try node("Sub", [shape, one], "less")
        let more = try node("Add", [shape, one], "more")
        let target = graph.addInitializer(name: "minus", tensor: TensorValue.int64([-1]).tensor())
        let lessIsMinusOne = try node("Equal", [less, target], "less_is_minus_one")
        let moreIsMinusOne = try node("Equal", [more, target], "more_is_minus_one")
        let reshaped = try node("Reshape", [x, less], "reshaped")
        let inference = ShapeInference(model: model)
        inference.run()
        // N + 1 is a dimension symbol; N - 1 may be negative.
        guard case .param(let moreSymbol)? = more.inferred?.shapeValue?.first,
              case .param(let lessSymbol)? = less.inferred?.shapeValue?.first else {
            return XCTFail("\(String(describing: more.inferred)) \(String(describing: less.inferred))")
        }
        XCTAssertTrue(SymbolAllocator.isDimension(moreSymbol))
        XCTAssertFalse(SymbolAllocator.isDimension(lessSymbol))
        XCTAssertEqual(moreIsMinusOne.inferred?.shapeValue, [.value(0), .value(0)])
        XCTAssertNotEqual(lessIsMinusOne.inferred?.shapeValue?.first, .value(0))
        // A Reshape to a value symbol does not take it as its dimension (it may be -1 or 0).
        XCTAssertNotEqual(reshaped.inferred?.shape?.first, .param(lessSymbol))
    }

    func testSignAndZeroAreNotAssumed() throws {
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.param("K"), .param("M")])))
        let z = graph.addInput(name: "z", info: ValueInfo(type: .tensor(.float, [.param("N"), .param("P")])))
        func node(_ op: String, _ inputs: [Value], _ name: String, _ attributes: [Attribute] = []) throws -> Value {
            let node = Node(opType: op, name: name, inputs: inputs, outputNames: [name], attributes: attributes)
            try graph.append(node)
            return node.outputs[0]!
        }
        func symbol(_ d: ONNXFuseIR.Dimension?) -> String? {
            if case .param(let p)? = d { return p }
            return nil
        }
        // Reshape(x, Shape(z)): where N is 0, the output's first dimension copies K.
        let reshaped = try node("Reshape", [x, node("Shape", [z], "shape_z")], "reshaped")
        // A dimension cast to int8 may wrap (255 is -1); N + 2^40 is still a dimension in int64,
        // N + 2^62 could wrap.
        let narrow = try node("Cast", [node("Shape", [x], "shape_x")], "narrow", [Attribute(name: "to", value: .int(3))])
        let big = graph.addInitializer(name: "big", tensor: TensorValue.int64([1 << 62]).tensor())
        let wrapped = try node("Add", [node("Shape", [z], "shape_z2"), big], "wrapped")
        let inference = ShapeInference(model: model)
        inference.run()
        XCTAssertNotEqual(reshaped.inferred?.shape?.first, .param("N"))
        XCTAssertFalse(symbol(narrow.inferred?.shapeValue?.first).map(SymbolAllocator.isDimension) ?? true)
        XCTAssertFalse(symbol(wrapped.inferred?.shapeValue?.first).map(SymbolAllocator.isDimension) ?? true)
    }
}
