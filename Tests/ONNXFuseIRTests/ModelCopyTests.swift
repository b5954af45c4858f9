import XCTest
import ONNXFuseIR

/// `Model.copy()`: new objects throughout, the same content, and no edit of one shows in the other.
final class ModelCopyTests: XCTestCase {
    /// A model with a bit of everything: an overridable input, initializers dense and sparse,
    /// attributes, a branch reading outer values with a branch of its own, value information
    /// of both kinds, metadata, and a use list whose order differs from the node order.
    private func richModel() throws -> Model {
        let float2 = ValueInfo(type: .tensor(.float, [.value(2)]))
        let graph = Graph(name: "main")
        graph.docString = "the main graph"
        graph.metadataProps = [StringPair(key: "graph", value: "meta")]
        let model = Model(irVersion: 9, opsetImports: [OpsetImport(domain: "", version: 17), OpsetImport(domain: "com.example", version: 2)],
                          graph: graph)
        model.producerName = "test"
        model.producerVersion = "1"
        model.domain = "org.example"
        model.modelVersion = 3
        model.docString = "a model"
        model.metadataProps = [StringPair(key: "k", value: "v")]
        model.opaqueReferences.domains = ["com.example"]
        model.inputFiles = [FileIdentity(path: "model.onnx", device: 1, inode: 2)]
        let x = graph.addInput(name: "x", info: float2)
        let o = graph.addInput(name: "o", info: float2)
        let w = graph.addInitializer(name: "w", tensor: Tensor(dataType: .float, dims: [2], values: [Float(1), 2]))
        try graph.setInitializer(Tensor(dataType: .float, dims: [2], values: [Float(3), 4]), forInput: o)
        graph.addSparseInitializer(name: "s", tensor: SparseTensor(values: Tensor(name: "s", dataType: .float, dims: [1], values: [Float(5)]),
                                                                     indices: Tensor(dataType: .int64, dims: [1], values: [Int64(0)]), dims: [2]))
        let a = Node(opType: "Mul", name: "a", inputs: [nil, w], outputNames: ["a"])
        a.docString = "node doc"
        a.metadataProps = [StringPair(key: "node", value: "meta")]
        let b = Node(opType: "Custom", domain: "com.example", name: "b", inputs: [x, nil], outputNames: ["b", nil, "b2"],
                     attributes: [Attribute(name: "alpha", value: .float(0.5)), Attribute(name: "axes", value: .ints([0, 1]))])
        b.overload = "v2"
        try graph.append(a)
        try graph.append(b)
        try a.setInput(0, to: x)  // x lists b before a
        try b.setInput(1, to: o)
        a.outputs[0]!.info = float2
        a.outputs[0]!.inferred = InferredFacts(elementType: .float, shape: [.value(2)])
        graph.appendValueInfo(.value(a.outputs[0]!))
        graph.appendValueInfo(.other(name: "elsewhere", info: float2))

        let inner = Graph(name: "inner")
        let deep = Node(opType: "Add", name: "deep", inputs: [x, a.outputs[0]], outputNames: ["d"])
        try inner.append(deep)
        try inner.addOutput(deep.outputs[0]!, info: float2)
        let branch = Graph(name: "then")
        let holder = Node(opType: "If", name: "inner-if", inputs: [x], outputNames: ["h"],
                          attributes: [Attribute(name: "then_branch", value: .graph(inner))])
        try branch.append(holder)
        try branch.addOutput(holder.outputs[0]!, info: float2)
        try branch.addOutput(b.outputs[0]!, info: float2)  // an outer value as a branch output
        let other = Graph(name: "else")
        try other.addOutput(x, info: float2)
        let ifNode = Node(opType: "If", name: "if", inputs: [x], outputNames: ["y"],
                          attributes: [Attribute(name: "then_branch", value: .graph(branch)), Attribute(name: "else_branch", value: .graph(other))])
        try graph.append(ifNode)
        for value in [ifNode.outputs[0]!, b.outputs[2]!, ifNode.outputs[0]!] { try graph.addOutput(value, info: float2) }
        try model.verify()
        return model
    }

    /// Every graph, node and value object of `model`.
    private func objects(_ model: Model) -> Set<ObjectIdentifier> {
        var result: Set<ObjectIdentifier> = []
        for graph in model.allGraphs {
            result.insert(ObjectIdentifier(graph))
            for value in graph.inputs + graph.initializers + graph.sparseInitializers { result.insert(ObjectIdentifier(value)) }
            for node in graph.nodes {
                result.insert(ObjectIdentifier(node))
                for case let output? in node.outputs { result.insert(ObjectIdentifier(output)) }
            }
        }
        return result
    }

    func testACopyHasTheSameContentInNewObjects() throws {
        let model = try richModel()
        let copy = model.copy()
        try copy.verify()
        XCTAssertEqual(irState([copy]), irState([model]), "same structure, use lists in the same order")
        XCTAssertTrue(objects(model).isDisjoint(with: objects(copy)))
        XCTAssertEqual(objects(model).count, objects(copy).count)
        XCTAssertTrue(copy.graph.model === copy)
        XCTAssertEqual(copy.allGraphs.map(\.name), model.allGraphs.map(\.name))
        XCTAssertTrue(copy.allGraphs.dropFirst().allSatisfy { $0.model === copy })

        XCTAssertEqual(copy.irVersion, 9)
        XCTAssertEqual(copy.opsetImports.map(\.domain), ["", "com.example"])
        XCTAssertEqual([copy.producerName, copy.producerVersion, copy.domain, copy.docString], ["test", "1", "org.example", "a model"])
        XCTAssertEqual(copy.modelVersion, 3)
        XCTAssertEqual(copy.metadataProps, model.metadataProps)
        XCTAssertEqual(copy.opaqueReferences.domains, ["com.example"])
        XCTAssertEqual(copy.inputFiles, model.inputFiles)
        XCTAssertEqual(copy.graph.docString, "the main graph")
        XCTAssertEqual(copy.graph.metadataProps, model.graph.metadataProps)

        let a = try XCTUnwrap(copy.graph.node(named: "a")), b = try XCTUnwrap(copy.graph.node(named: "b"))
        XCTAssertEqual(a.docString, "node doc")
        XCTAssertEqual(a.metadataProps, [StringPair(key: "node", value: "meta")])
        XCTAssertEqual(b.domain, "com.example")
        XCTAssertEqual(b.overload, "v2")
        XCTAssertEqual(b.outputs.map { $0?.name }, ["b", nil, "b2"])
        XCTAssertEqual(b.attribute("alpha")?.float, 0.5)
        XCTAssertEqual(b.attribute("axes")?.ints, [0, 1])
        XCTAssertEqual(a.outputs[0]!.inferred, InferredFacts(elementType: .float, shape: [.value(2)]))
        XCTAssertEqual(a.outputs[0]!.type?.description, model.graph.node(named: "a")!.outputs[0]!.type?.description)
        guard case .value(let described) = copy.graph.valueInfo[0], case .other(let name, _) = copy.graph.valueInfo[1] else {
            return XCTFail("value information \(copy.graph.valueInfo)")
        }
        XCTAssertTrue(described === a.outputs[0], "the entry names the copy's value")
        XCTAssertEqual(name, "elsewhere")
        XCTAssertEqual(copy.graph.value(named: "s")?.sparseInitializer?.values?.doubleValues(), [5])

        // A branch reads the copy's values, not the original's.
        let deep = copy.allGraphs.first { $0.name == "inner" }!.firstNode!
        XCTAssertTrue(deep.inputs[0] === copy.graph.value(named: "x"))
        XCTAssertTrue(deep.inputs[1] === a.outputs[0])
        XCTAssertTrue(copy.allGraphs.first { $0.name == "then" }!.outputs[1].value === b.outputs[0])
    }

    func testTensorsShareTheirBytes() throws {
        let model = try richModel()
        let copy = model.copy()
        for name in ["w", "o"] {
            guard case .raw(let original)? = model.graph.value(named: name)?.initializer?.storage,
                  case .raw(let copied)? = copy.graph.value(named: name)?.initializer?.storage else { return XCTFail(name) }
            XCTAssertTrue(original.owner === copied.owner, "\(name)'s bytes are shared, not copied")
        }
        // Giving the copy's value another tensor leaves the original's.
        copy.graph.value(named: "w")!.initializer = Tensor(dataType: .float, dims: [2], values: [Float(9), 9])
        XCTAssertEqual(model.graph.value(named: "w")?.initializer?.doubleValues(), [1, 2])
    }

    func testEditingTheCopyLeavesTheOriginalAsItWas() throws {
        let model = try richModel()
        let before = irState([model])
        let copy = model.copy()
        let graph = copy.graph
        // Rewire, erase, remove, rename, change attributes and outputs, add nodes.
        let x = graph.value(named: "x")!
        let a = graph.node(named: "a")!
        try graph.removeOutput(at: 1)
        try graph.setOutput(0, to: x)
        try graph.setOutput(1, to: x)
        try graph.erase(graph.node(named: "if")!)
        try a.outputs[0]!.replaceAllUses(with: x)
        try graph.erase(a)
        try graph.removeInitializer(graph.value(named: "w")!)
        try graph.node(named: "b")!.setInput(1, to: nil)
        try graph.removeInput(graph.value(named: "o")!)
        graph.node(named: "b")!.attributes = []
        graph.node(named: "b")!.outputs[0]!.name = "renamed"
        try graph.append(Node(opType: "Relu", name: "new", inputs: [x], outputNames: ["new"]))
        copy.opsetImports.removeLast()
        copy.metadataProps = []
        try copy.verify()
        XCTAssertEqual(irState([model]), before)
        XCTAssertEqual(model.opsetImports.count, 2)
        XCTAssertEqual(model.metadataProps.count, 1)
        XCTAssertEqual(model.graph.valueInfo.count, 2)
        try model.verify()

        // And the other way round.
        let second = model.copy()
        let secondState = irState([second])
        try model.graph.removeOutput(at: 0)
        try model.graph.removeOutput(at: 1)
        try model.graph.erase(model.graph.node(named: "if")!)
        XCTAssertEqual(irState([second]), secondState)
        try second.verify()
    }

    func testUsesFromNodesOutsideTheModelAreNotCopied() throws {
        let model = try richModel()
        let x = model.graph.value(named: "x")!
        // A branch built for an If that is never inserted lists its read of x.
        let body = Graph(name: "unused")
        try body.append(Node(opType: "Neg", inputs: [x], outputNames: ["n"]))
        _ = Node(opType: "If", inputs: [x], outputNames: [], attributes: [Attribute(name: "then_branch", value: .graph(body))])
        let copy = model.copy()
        XCTAssertEqual(copy.graph.value(named: "x")!.uses.count, x.uses.count - 1)
        try copy.verify()
    }

    func testACopyOfACopyAndOfAnEmptyModel() throws {
        let model = try richModel()
        XCTAssertEqual(irState([model.copy().copy()]), irState([model]))
        let empty = Model(irVersion: nil, opsetImports: [], graph: Graph())
        let copy = empty.copy()
        XCTAssertNil(copy.irVersion)
        XCTAssertEqual(copy.graph.nodeCount, 0)
        XCTAssertFalse(copy.graph === empty.graph)
    }
}
