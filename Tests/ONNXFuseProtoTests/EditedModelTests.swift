import XCTest
import Foundation
import ONNXFuseIR
@testable import ONNXFuseProto

/// Saving a model that was edited, or built from nothing: what the IR says is what the file
/// says, and what the IR does not interpret survives edits around it.
final class EditedModelTests: XCTestCase {
    func saveAndReload(_ model: Model) throws -> (Model, [UInt8]) {
        let directory = try temporaryDirectory(self)
        let path = directory.appendingPathComponent("edited.onnx").path
        try ModelFile.save(model, to: path)
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let reloaded = try ModelFile.load(path: path)
        try reloaded.verify()
        return (reloaded, bytes)
    }

    func contains(_ haystack: [UInt8], _ needle: String) -> Bool {
        let n = Array(needle.utf8)
        guard n.count <= haystack.count else { return false }
        return (0...(haystack.count - n.count)).contains { haystack[$0..<$0 + n.count].elementsEqual(n) }
    }

    func testUnknownFieldsSurviveEditsOfTheirMessages() throws {
        let model = try ModelFile.load(path: Paths.fixtures.appendingPathComponent("unknown_fields.onnx").path)
        let conv = try XCTUnwrap(model.graph.nodes.first { $0.opType == "Conv" })
        conv.name = "renamed-conv"
        conv.attributes[0].value = .ints([0, 0, 0, 0])  // pads: the attribute's value is replaced
        model.graph.name = "renamed-graph"
        model.producerName = "someone else"
        var weight = model.graph.initializers[0].initializer!
        weight.docString = "edited"
        model.graph.initializers[0].initializer = weight
        let (reloaded, bytes) = try saveAndReload(model)
        for marker in ["onnx-fuse:unknown:model", "onnx-fuse:unknown:graph", "onnx-fuse:unknown:node",
                       "onnx-fuse:unknown:tensor", "onnx-fuse:unknown:attribute"] {
            XCTAssertTrue(contains(bytes, marker), "\(marker) was lost")
        }
        let newConv = try XCTUnwrap(reloaded.graph.nodes.first { $0.opType == "Conv" })
        XCTAssertEqual(newConv.name, "renamed-conv")
        XCTAssertEqual(newConv.attribute("pads")?.ints, [0, 0, 0, 0])
        XCTAssertEqual(reloaded.graph.name, "renamed-graph")
        XCTAssertEqual(reloaded.producerName, "someone else")
        XCTAssertEqual(reloaded.graph.initializers[0].initializer?.docString, "edited")
        XCTAssertEqual(reloaded.graph.initializers[0].initializer?.storage, weight.storage)
    }

    func testFunctionsTrainingInfoAndSparseInitializersSurviveEdits() throws {
        let model = try ModelFile.load(path: Paths.fixtures.appendingPathComponent("functions_training.onnx").path)
        XCTAssertEqual(model.graph.sparseInitializers.map(\.name), ["B_sparse"])
        // What the opaque parts refer to, for the clean-ups to keep.
        XCTAssertEqual(model.opaqueReferences.domains, ["com.example", ""])
        XCTAssertTrue(model.opaqueReferences.hasTrainingInfo)
        model.producerName = "edited"
        model.graph.name = "edited-graph"
        let add = try XCTUnwrap(model.graph.nodes.first { $0.opType == "Add" })
        add.name = "edited-add"
        let (reloaded, bytes) = try saveAndReload(model)
        for marker in ["ScaledRelu", "x * s, then Relu", "W_new", "update", "SCALE_TENSOR", "B_sparse_indices"] {
            XCTAssertTrue(contains(bytes, marker), "\(marker) was lost")
        }
        XCTAssertEqual(reloaded.graph.sparseInitializers.first?.sparseInitializer?.values?.doubleValues(), [0.25, -0.5])
        XCTAssertEqual(reloaded.graph.nodes.first { $0.opType == "Add" }?.name, "edited-add")
    }

    func testRewiringRenamingAndErasingAreSaved() throws {
        let model = try ModelFile.load(path: Paths.fixtures.appendingPathComponent("conv_bn.onnx").path)
        let graph = model.graph
        let nodes = Array(graph.nodes)
        let (conv, bn, relu) = (nodes[0], nodes[1], nodes[2])
        XCTAssertEqual([conv.opType, bn.opType, relu.opType], ["Conv", "BatchNormalization", "Relu"])
        // Bypass the BatchNormalization: Relu reads the Conv directly, BN goes.
        try bn.outputs[0]!.replaceAllUses(with: conv.outputs[0]!)
        try graph.erase(bn)
        conv.outputs[0]!.name = "conv_out_renamed"
        let identity = Node(opType: "Identity", name: "added", inputs: [relu.outputs[0]], outputNames: ["extra"])
        try graph.append(identity)
        try graph.addOutput(identity.outputs[0]!, info: ValueInfo(type: .tensor(.float, [.value(1), .param("C"), .unknown])))
        try model.verify()
        let (reloaded, _) = try saveAndReload(model)
        let text = Printer().print(reloaded)
        XCTAssertFalse(text.contains("BatchNormalization"), text)
        XCTAssertTrue(text.contains("conv_out_renamed = Conv"), text)
        XCTAssertTrue(text.contains("Relu (conv_out_renamed)"), text)
        XCTAssertTrue(text.contains("extra = Identity"), text)
        XCTAssertTrue(text.contains("float[1,C,?] extra"), text)
        XCTAssertEqual(reloaded.graph.nodes.first { $0.opType == "Identity" }?.name, "added")
        // The BN parameters are still initializers (removing unused ones is a rule's job).
        XCTAssertEqual(reloaded.graph.initializers.count, graph.initializers.count)
    }

    func testModelBuiltFromNothingRoundTrips() throws {
        let graph = Graph(name: "built")
        graph.docString = "a graph made in Swift"
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.param("N"), .value(4)]), docString: "the input"))
        let w = graph.addInitializer(name: "w", tensor: Tensor(dataType: .float, dims: [4], values: [Float(1), 2, 3, 4].map { $0.bitPattern.littleEndian }))
        let shape = graph.addInitializer(name: "shape", tensor: Tensor(dataType: .int64, dims: [2],
            storage: .int64Data([Int64(-1), 4].withUnsafeBytes { TensorBytes(copying: $0) })))
        let labels = graph.addInitializer(name: "labels", tensor: Tensor(dataType: .string, dims: [2], storage: .stringData([Array("a".utf8), Array("b".utf8)])))
        let mul = Node(opType: "Mul", name: "scale", inputs: [x, w], outputNames: ["y"])
        try graph.append(mul)
        let reshape = Node(opType: "Reshape", inputs: [mul.outputs[0], shape], outputNames: ["z"],
                           attributes: [Attribute(name: "allowzero", value: .int(0))])
        try graph.append(reshape)
        let body = Graph(name: "then")
        let inner = Node(opType: "Identity", inputs: [reshape.outputs[0]], outputNames: ["inner"])
        try body.append(inner)
        try body.addOutput(inner.outputs[0]!, info: ValueInfo(type: nil))
        let cond = graph.addInput(name: "cond", info: ValueInfo(type: .tensor(.bool, [])))
        let branch = Node(opType: "If", inputs: [cond], outputNames: ["out"], attributes: [
            Attribute(name: "then_branch", value: .graph(body)),
            Attribute(name: "else_branch", value: .graph(try {
                let g = Graph(name: "else")
                let n = Node(opType: "Neg", inputs: [reshape.outputs[0]], outputNames: ["negated"])
                try g.append(n)
                try g.addOutput(n.outputs[0]!, info: ValueInfo(type: nil))
                return g
            }())),
        ])
        try graph.append(branch)
        let custom = Node(opType: "Custom", domain: "com.example", inputs: [branch.outputs[0], nil, labels], outputNames: ["c", nil],
                          attributes: [Attribute(name: "floats", value: .floats([0.5, -1])), Attribute(name: "text", value: .string(Array("hi".utf8))),
                                       Attribute(name: "strings", value: .strings([Array("u".utf8)])),
                                       Attribute(name: "tensor", value: .tensor(Tensor(dataType: .double, dims: [], values: [Double(2.5).bitPattern.littleEndian]))),
                                       Attribute(name: "type", value: .typeProto(TypeInfo(kind: .sequence(.tensor(.float, nil)))))])
        try graph.append(custom)
        try graph.addOutput(custom.outputs[0]!, info: ValueInfo(type: TypeInfo(kind: .optional(.tensor(.float, nil)), denotation: "IMAGE")))
        graph.appendValueInfo(.value(mul.outputs[0]!))
        mul.outputs[0]!.info = ValueInfo(type: .tensor(.float, [.param("N"), .value(4)]))
        graph.metadataProps = [StringPair(key: "k", value: "v")]
        let model = Model(irVersion: 10, opsetImports: [OpsetImport(domain: "", version: 21), OpsetImport(domain: "com.example", version: 1)], graph: graph)
        model.producerName = "test"
        model.modelVersion = 3
        model.metadataProps = [StringPair(key: "author", value: nil)]
        try model.verify()

        let (reloaded, bytes) = try saveAndReload(model)
        XCTAssertEqual(Printer().print(reloaded), Printer().print(model))
        XCTAssertEqual(reloaded.modelVersion, 3)
        XCTAssertEqual(reloaded.metadataProps, [StringPair(key: "author", value: nil)])
        XCTAssertEqual(reloaded.graph.docString, "a graph made in Swift")
        XCTAssertEqual(reloaded.graph.inputs[0].info?.docString, "the input")
        XCTAssertEqual(reloaded.graph.initializers[1].initializer?.storage, shape.initializer?.storage)
        XCTAssertEqual(reloaded.graph.initializers[2].initializer?.storage, labels.initializer?.storage)
        XCTAssertEqual(reloaded.graph.valueInfo.count, 1)
        XCTAssertEqual(reloaded.graph.outputs[0].info.type?.denotation, "IMAGE")
        let reloadedCustom = try XCTUnwrap(reloaded.graph.nodes.first { $0.opType == "Custom" })
        XCTAssertEqual(reloadedCustom.domain, "com.example")
        XCTAssertNil(reloadedCustom.inputs[1])
        XCTAssertNil(reloadedCustom.outputs[1])
        XCTAssertEqual(reloadedCustom.attribute("floats")?.floats, [0.5, -1])
        XCTAssertEqual(reloadedCustom.attribute("tensor")?.tensor?.doubleValues(), [2.5])
        // Saving what was loaded changes nothing.
        let (_, again) = try saveAndReload(reloaded)
        XCTAssertEqual(again, bytes)
    }

    func testSharedAttributeOriginsStayIndependent() throws {
        // Two nodes holding copies of one decoded attribute; editing one must not touch the other.
        let model = try ModelFile.load(path: Paths.fixtures.appendingPathComponent("conv_bn.onnx").path)
        let conv = try XCTUnwrap(model.graph.nodes.first { $0.opType == "Conv" })
        let copy = Node(opType: "Conv", name: "copy", inputs: conv.inputs, outputNames: ["copy_out"], attributes: conv.attributes)
        try model.graph.append(copy)
        try model.graph.addOutput(copy.outputs[0]!, info: ValueInfo(type: nil))
        let index = try XCTUnwrap(copy.attributes.firstIndex { $0.name == "pads" })
        copy.attributes[index].value = .ints([0, 0, 0, 0])
        let (reloaded, _) = try saveAndReload(model)
        let nodes = reloaded.graph.nodes.filter { $0.opType == "Conv" }
        XCTAssertEqual(nodes.count, 2)
        XCTAssertEqual(nodes[1].attribute("pads")?.ints, [0, 0, 0, 0])
        XCTAssertEqual(nodes[0].attribute("pads")?.ints, [1, 1, 1, 1])
    }
}
