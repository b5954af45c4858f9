import ONNXFuseIR
import ONNXFuseOps
import ONNXFuseProto
import Foundation
import XCTest

/// Facts about the generated schemas, checked against what onnx 1.23.2 says
/// (`onnx.defs.get_schema(...)`).
final class SchemaTests: XCTestCase {
    private func schema(_ opType: String, _ version: Int64, domain: String = "") throws -> OperatorSchema {
        try XCTUnwrap(OperatorSchemas.schema(opType, domain: domain, version: version), "\(opType) at opset \(version)")
    }

    func testTableComesFromThePinnedOnnx() {
        XCTAssertEqual(OperatorSchemas.onnxVersion, "1.23.2")
    }

    func testSchemaCountsForOnnx1_23_2() {
        // onnx 1.23.2: 654 schemas, 629 of the domain "" and 25 of ai.onnx.ml.
        let all = OperatorSchemas.all
        XCTAssertEqual(all.count, 654)
        XCTAssertEqual(all.filter { $0.domain == "" }.count, 629)
        XCTAssertEqual(all.filter { $0.domain == "ai.onnx.ml" }.count, 25)
        XCTAssertEqual(Set(all.map(\.domain)), ["", "ai.onnx.ml"])
        XCTAssertEqual(all.filter(\.deprecated).count, 5)
        XCTAssertEqual(all.filter(\.hasFunction).count, 42)
        XCTAssertEqual(all.filter(\.hasContextDependentFunction).count, 33)
    }

    func testAllIsSortedAndUnique() {
        let keys = OperatorSchemas.all.map { [$0.domain, $0.name, String($0.sinceVersion)] }
        XCTAssertEqual(Set(keys.map { $0.joined(separator: "|") }).count, keys.count)
        for (previous, next) in zip(OperatorSchemas.all, OperatorSchemas.all.dropFirst()) {
            XCTAssertTrue(
                (previous.domain, previous.name, previous.sinceVersion) < (next.domain, next.name, next.sinceVersion),
                "\(previous.name) \(previous.sinceVersion) before \(next.name) \(next.sinceVersion)")
        }
    }

    func testEveryParameterTypeIsAConstraintOrATypeString() {
        for schema in OperatorSchemas.all {
            let constraintNames = Set(schema.typeConstraints.map(\.name))
            for parameter in schema.inputs + schema.outputs {
                XCTAssertTrue(
                    constraintNames.contains(parameter.typeString) || parameter.typeString.hasSuffix(")"),
                    "\(schema.name) \(schema.sinceVersion): \(parameter.name) has type \(parameter.typeString)")
            }
            XCTAssertLessThanOrEqual(schema.minInputs, schema.maxInputs)
            XCTAssertLessThanOrEqual(schema.minOutputs, schema.maxOutputs)
        }
    }

    func testConvAtOpset11() throws {
        let conv = try schema("Conv", 11)
        XCTAssertEqual(conv.sinceVersion, 11)
        XCTAssertEqual(conv.domain, "")
        XCTAssertFalse(conv.deprecated)
        XCTAssertEqual(conv.inputs.map(\.name), ["X", "W", "B"])
        XCTAssertEqual(conv.inputs.map(\.option), [.single, .single, .optional])
        XCTAssertEqual(conv.outputs.map(\.name), ["Y"])
        XCTAssertEqual([conv.minInputs, conv.maxInputs, conv.minOutputs, conv.maxOutputs], [2, 3, 1, 1])
        XCTAssertEqual(conv.attributes.map(\.name), ["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"])

        let autoPad = try XCTUnwrap(conv.attribute("auto_pad"))
        XCTAssertEqual(autoPad.type, .string)
        XCTAssertFalse(autoPad.required)
        XCTAssertEqual(autoPad.declaredDefault, .string("NOTSET"))
        guard case .string(let bytes)? = conv.attributeDefault("auto_pad") else {
            return XCTFail("auto_pad default: \(String(describing: conv.attributeDefault("auto_pad")))")
        }
        XCTAssertEqual(bytes, Array("NOTSET".utf8))

        XCTAssertEqual(conv.attribute("group")?.type, .int)
        guard case .int(1)? = conv.attributeDefault("group") else {
            return XCTFail("group default: \(String(describing: conv.attributeDefault("group")))")
        }
        XCTAssertEqual(conv.attribute("kernel_shape")?.type, .ints)
        XCTAssertNil(conv.attribute("kernel_shape")?.declaredDefault)
        XCTAssertNil(conv.attributeDefault("kernel_shape"))
        XCTAssertNil(conv.attributeDefault("no_such_attribute"))

        XCTAssertEqual(OperatorSchemas.versions(of: "Conv", domain: ""), [1, 11, 22])
        XCTAssertEqual(try schema("Conv", 10).sinceVersion, 1)
        XCTAssertEqual(try schema("Conv", 21).sinceVersion, 11)
        XCTAssertEqual(try schema("Conv", 22).sinceVersion, 22)
        XCTAssertEqual(try schema("Conv", 1000).sinceVersion, 22)
    }

    func testReshapeGainsAllowzeroIn14() throws {
        XCTAssertEqual(OperatorSchemas.versions(of: "Reshape", domain: ""), [1, 5, 13, 14, 19, 21, 23, 24, 25])
        let reshape5 = try schema("Reshape", 5)
        let reshape13 = try schema("Reshape", 13)
        let reshape14 = try schema("Reshape", 14)
        XCTAssertEqual(reshape5.sinceVersion, 5)
        XCTAssertEqual(reshape13.sinceVersion, 13)
        XCTAssertEqual(reshape14.sinceVersion, 14)
        XCTAssertEqual(try schema("Reshape", 12).sinceVersion, 5)
        for reshape in [reshape5, reshape13, reshape14] {
            XCTAssertEqual(reshape.inputs.map(\.name), ["data", "shape"])
            XCTAssertEqual(reshape.inputs.map(\.typeString), ["T", "tensor(int64)"])
        }
        XCTAssertTrue(reshape5.attributes.isEmpty)
        XCTAssertTrue(reshape13.attributes.isEmpty)
        XCTAssertEqual(reshape14.attributes.map(\.name), ["allowzero"])
        guard case .int(0)? = reshape14.attributeDefault("allowzero") else {
            return XCTFail("allowzero default: \(String(describing: reshape14.attributeDefault("allowzero")))")
        }
        // Reshape 1 took the shape as an attribute.
        XCTAssertEqual(try schema("Reshape", 1).attribute("shape")?.type, .ints)
    }

    func testUnsqueezeAxesMoveFromAttributeToInputIn13() throws {
        XCTAssertEqual(OperatorSchemas.versions(of: "Unsqueeze", domain: ""), [1, 11, 13, 21, 23, 24, 25])
        let unsqueeze12 = try schema("Unsqueeze", 12)
        XCTAssertEqual(unsqueeze12.sinceVersion, 11)
        XCTAssertEqual(unsqueeze12.inputs.map(\.name), ["data"])
        let axesAttribute = try XCTUnwrap(unsqueeze12.attribute("axes"))
        XCTAssertEqual(axesAttribute.type, .ints)
        XCTAssertTrue(axesAttribute.required)

        let unsqueeze13 = try schema("Unsqueeze", 13)
        XCTAssertEqual(unsqueeze13.sinceVersion, 13)
        XCTAssertNil(unsqueeze13.attribute("axes"))
        XCTAssertEqual(unsqueeze13.inputs.map(\.name), ["data", "axes"])
        XCTAssertEqual(unsqueeze13.inputs[1].typeString, "tensor(int64)")
        XCTAssertEqual(unsqueeze13.inputs[1].option, .single)
    }

    func testSqueezeAxesBecomeAnOptionalInputIn13() throws {
        XCTAssertEqual(OperatorSchemas.versions(of: "Squeeze", domain: ""), [1, 11, 13, 21, 23, 24, 25])
        let squeeze11 = try schema("Squeeze", 12)
        XCTAssertEqual(squeeze11.sinceVersion, 11)
        XCTAssertEqual(squeeze11.attribute("axes")?.type, .ints)
        XCTAssertEqual(squeeze11.attribute("axes")?.required, false)
        let squeeze13 = try schema("Squeeze", 13)
        XCTAssertNil(squeeze13.attribute("axes"))
        XCTAssertEqual(squeeze13.inputs.map(\.name), ["data", "axes"])
        XCTAssertEqual(squeeze13.inputs.map(\.option), [.single, .optional])
        XCTAssertEqual([squeeze13.minInputs, squeeze13.maxInputs], [1, 2])
    }

    func testSliceMovesStartsAndEndsToInputsIn10() throws {
        XCTAssertEqual(OperatorSchemas.versions(of: "Slice", domain: ""), [1, 10, 11, 13])
        let slice1 = try schema("Slice", 9)
        XCTAssertEqual(slice1.sinceVersion, 1)
        XCTAssertEqual(slice1.inputs.map(\.name), ["data"])
        XCTAssertEqual(slice1.attributes.map(\.name), ["axes", "ends", "starts"])
        XCTAssertEqual(slice1.attribute("starts")?.required, true)
        XCTAssertEqual(slice1.attribute("axes")?.required, false)

        let slice10 = try schema("Slice", 10)
        XCTAssertEqual(slice10.sinceVersion, 10)
        XCTAssertTrue(slice10.attributes.isEmpty)
        XCTAssertEqual(slice10.inputs.map(\.name), ["data", "starts", "ends", "axes", "steps"])
        XCTAssertEqual(slice10.inputs.map(\.option), [.single, .single, .single, .optional, .optional])
        XCTAssertEqual([slice10.minInputs, slice10.maxInputs], [3, 5])
        XCTAssertEqual(try schema("Slice", 12).sinceVersion, 11)
        XCTAssertEqual(try schema("Slice", 25).sinceVersion, 13)
    }

    func testOpset1Lookups() throws {
        XCTAssertEqual(try schema("Add", 1).sinceVersion, 1)
        XCTAssertEqual(try schema("Add", 1).attribute("broadcast")?.type, .int)
        XCTAssertEqual(try schema("Abs", 1).attribute("consumed_inputs")?.type, .ints)
        XCTAssertEqual(try schema("Relu", 1).sinceVersion, 1)
        XCTAssertNil(OperatorSchemas.schema("Reshape", domain: "", version: 0))
        // Introduced later than opset 1.
        XCTAssertNil(OperatorSchemas.schema("Shrink", domain: "", version: 1))
        XCTAssertEqual(try schema("Shrink", 9).sinceVersion, 9)
        XCTAssertNil(OperatorSchemas.schema("LayerNormalization", domain: "", version: 16))
    }

    func testUnknownOperatorsAndDomains() {
        XCTAssertNil(OperatorSchemas.schema("NoSuchOp", domain: "", version: 13))
        XCTAssertEqual(OperatorSchemas.versions(of: "NoSuchOp", domain: ""), [])
        XCTAssertNil(OperatorSchemas.schema("Conv", domain: "com.microsoft", version: 1))
        XCTAssertNil(OperatorSchemas.schema("Conv", domain: "ai.onnx.ml", version: 5))
        XCTAssertNil(OperatorSchemas.schema("conv", domain: "", version: 13), "operator types are case-sensitive")
        XCTAssertNil(OperatorSchemas.schema("LinearClassifier", domain: "", version: 13))
    }

    func testAiOnnxIsTheDefaultDomain() throws {
        let viaAlias = try XCTUnwrap(OperatorSchemas.schema("Conv", domain: "ai.onnx", version: 11))
        XCTAssertEqual(viaAlias, try schema("Conv", 11))
        XCTAssertEqual(viaAlias.domain, "")
        XCTAssertEqual(OperatorSchemas.versions(of: "Conv", domain: "ai.onnx"), [1, 11, 22])
    }

    func testAiOnnxMlLinearClassifier() throws {
        let classifier = try schema("LinearClassifier", 1, domain: "ai.onnx.ml")
        XCTAssertEqual(classifier.domain, "ai.onnx.ml")
        XCTAssertEqual(classifier.sinceVersion, 1)
        XCTAssertEqual(try schema("LinearClassifier", 5, domain: "ai.onnx.ml").sinceVersion, 1)
        XCTAssertEqual(classifier.outputs.map(\.name), ["Y", "Z"])
        XCTAssertEqual(classifier.outputs.map(\.typeString), ["T2", "tensor(float)"])
        XCTAssertEqual(classifier.attribute("coefficients")?.type, .floats)
        XCTAssertEqual(classifier.attribute("coefficients")?.required, true)
        XCTAssertEqual(classifier.attribute("post_transform")?.declaredDefault, .string("NONE"))
        XCTAssertEqual(classifier.attribute("multi_class")?.declaredDefault, .int(0))
        XCTAssertEqual(classifier.attribute("classlabels_strings")?.type, .strings)
        XCTAssertEqual(classifier.typeConstraint("T1")?.allowedTypes,
                       ["tensor(float)", "tensor(double)", "tensor(int64)", "tensor(int32)"])
        XCTAssertEqual(classifier.typeConstraint("T2")?.allowedTypes, ["tensor(string)", "tensor(int64)"])

        let mlOperators = Set(OperatorSchemas.all.filter { $0.domain == "ai.onnx.ml" }.map(\.name))
        XCTAssertTrue(mlOperators.isSuperset(of: ["LinearClassifier", "TreeEnsemble", "ZipMap", "LabelEncoder", "SVMClassifier"]))
        XCTAssertEqual(mlOperators.count, 19)
    }

    func testAddTypeConstraints() throws {
        let add = try schema("Add", 14)
        XCTAssertEqual(add.sinceVersion, 14)
        XCTAssertEqual(add.typeConstraints.map(\.name), ["T"])
        let allowed = try XCTUnwrap(add.typeConstraint("T")).allowedTypes
        XCTAssertTrue(allowed.contains("tensor(float)"))
        XCTAssertTrue(allowed.contains("tensor(bfloat16)"))
        XCTAssertFalse(allowed.contains("tensor(string)"))
        XCTAssertEqual(add.inputs.map(\.typeString), ["T", "T"])
        XCTAssertEqual(OperatorSchemas.versions(of: "Add", domain: ""), [1, 6, 7, 13, 14])
    }

    func testSequenceTypeStrings() throws {
        let construct = try schema("SequenceConstruct", 11)
        XCTAssertEqual(construct.typeConstraint("S")?.allowedTypes.contains("seq(tensor(int64))"), true)
        XCTAssertEqual(construct.inputs.first?.option, .variadic)
    }

    func testVariadicParameters() throws {
        let concat = try schema("Concat", 13)
        XCTAssertEqual(concat.inputs.count, 1)
        XCTAssertEqual(concat.inputs[0].option, .variadic)
        XCTAssertTrue(concat.inputs[0].isHomogeneous)
        XCTAssertEqual(concat.inputs[0].minArity, 1)
        XCTAssertEqual(concat.maxInputs, Int(Int32.max))

        let loop = try schema("Loop", 16)
        let initialValues = try XCTUnwrap(loop.inputs.last)
        XCTAssertEqual(initialValues.name, "v_initial")
        XCTAssertEqual(initialValues.option, .variadic)
        XCTAssertFalse(initialValues.isHomogeneous)
        XCTAssertEqual(initialValues.minArity, 0)
        XCTAssertEqual(loop.attribute("body")?.type, .graph)
        XCTAssertEqual(loop.attribute("body")?.required, true)
    }

    func testDeprecatedAndFunctionFlags() throws {
        let upsample = try schema("Upsample", 10)
        XCTAssertTrue(upsample.deprecated)
        XCTAssertEqual(upsample.sinceVersion, 10)
        XCTAssertFalse(try schema("Upsample", 9).deprecated)
        XCTAssertEqual(try schema("Upsample", 30).sinceVersion, 10, "a deprecated schema stays in force")
        XCTAssertTrue(try schema("Scatter", 11).deprecated)

        let layerNorm = try schema("LayerNormalization", 17)
        XCTAssertTrue(layerNorm.hasContextDependentFunction)
        XCTAssertFalse(layerNorm.hasFunction)
        XCTAssertTrue(try schema("MeanVarianceNormalization", 13).hasFunction)
        XCTAssertFalse(try schema("Conv", 22).hasFunction)
    }

    func testListAndFloatDefaults() throws {
        let mvn = try schema("MeanVarianceNormalization", 13)
        XCTAssertEqual(mvn.attribute("axes")?.declaredDefault, .ints([0, 2, 3]))
        guard case .ints([0, 2, 3])? = mvn.attributeDefault("axes") else {
            return XCTFail("axes default: \(String(describing: mvn.attributeDefault("axes")))")
        }
        XCTAssertEqual(try schema("RNN", 14).attribute("activations")?.declaredDefault, .strings(["Tanh", "Tanh"]))
        guard case .strings(let activations)? = try schema("RNN", 14).attributeDefault("activations") else {
            return XCTFail("RNN activations default")
        }
        XCTAssertEqual(activations, [Array("Tanh".utf8), Array("Tanh".utf8)])

        XCTAssertEqual(try schema("LeakyRelu", 16).attribute("alpha")?.declaredDefault, .float(0.01))
        XCTAssertEqual(try schema("BatchNormalization", 15).attribute("epsilon")?.declaredDefault, .float(1e-5))
        XCTAssertEqual(try schema("Clip", 6).attribute("max")?.declaredDefault, .float(Float.greatestFiniteMagnitude))
        XCTAssertEqual(try schema("Clip", 6).attribute("min")?.declaredDefault, .float(-Float.greatestFiniteMagnitude))
        guard case .float(let alpha)? = try schema("LeakyRelu", 16).attributeDefault("alpha") else {
            return XCTFail("LeakyRelu alpha default")
        }
        XCTAssertEqual(alpha, 0.01)
    }

    func testCastRequiresTo() throws {
        let cast = try schema("Cast", 21)
        XCTAssertEqual(cast.attribute("to")?.required, true)
        XCTAssertEqual(cast.attribute("to")?.type, .int)
        XCTAssertNil(cast.attribute("to")?.declaredDefault)
        XCTAssertEqual(cast.attribute("saturate")?.declaredDefault, .int(1))
    }

    func testConstantAttributesWithoutDefaults() throws {
        let constant = try schema("Constant", 21)
        XCTAssertEqual(constant.attribute("value")?.type, .tensor)
        XCTAssertEqual(constant.attribute("sparse_value")?.type, .sparseTensor)
        XCTAssertTrue(constant.attributes.allSatisfy { $0.declaredDefault == nil && !$0.required })
        XCTAssertEqual([constant.minInputs, constant.maxInputs], [0, 0])
    }

    func testConcurrentFirstUseIsSafe() async {
        let counts = await withTaskGroup(of: Int.self) { group in
            for index in 0..<8 {
                group.addTask {
                    OperatorSchemas.schema(index.isMultiple(of: 2) ? "Conv" : "Reshape", domain: "", version: 13)?.attributes.count ?? -1
                }
            }
            var results: [Int] = []
            for await count in group { results.append(count) }
            return results
        }
        XCTAssertEqual(counts.sorted(), [0, 0, 0, 0, 6, 6, 6, 6], "Reshape 13 has no attribute, Conv 11 six")
    }
}

/// The schema check that guards rule output (`OperatorSchema.violation(of:elementType:)`):
/// every node of the onnx package's own operator test cases passes it, with the element types
/// that inference gives, and each kind of defect is named.
final class SchemaValidationTests: XCTestCase {
    func testEveryNodeOfTheOfficialCasesConforms() throws {
        var checked = 0
        var violations: [String] = []
        for path in try NodeCase.paths() {
            let model = try ModelFile.load(path: path)
            let inference = ShapeInference(model: model)
            inference.run()
            for node in model.graph.nodes {
                let domain = node.isDefaultDomain ? "" : node.domain!
                guard let version = model.opsetVersion(domain: domain),
                      let schema = OperatorSchemas.schema(node.opType, domain: domain, version: version) else { continue }
                checked += 1
                if let problem = schema.violation(of: node, elementType: { inference.facts(of: $0).elementType }) {
                    violations.append("\(URL(fileURLWithPath: path).lastPathComponent): \(node.opType): \(problem)")
                }
            }
        }
        XCTAssertGreaterThan(checked, 1800)
        XCTAssertEqual(violations, [])
    }

    func testEachKindOfDefectIsNamed() throws {
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(2), .value(3)])))
        let n = graph.addInput(name: "n", info: ValueInfo(type: .tensor(.int64, [.value(2)])))
        let inference = ShapeInference(model: model)
        inference.run()
        func problem(_ node: Node) -> String? {
            let schema = OperatorSchemas.schema(node.opType, domain: "", version: 17)!
            return schema.violation(of: node, elementType: { inference.facts(of: $0).elementType })
        }
        // Variadic inputs of one type, and an optional input left out in the middle.
        XCTAssertNil(problem(Node(opType: "Concat", inputs: [x, x, x], outputNames: ["c"], attributes: [Attribute(name: "axis", value: .int(0))])))
        XCTAssertNil(problem(Node(opType: "Resize", inputs: [x, nil, nil, n], outputNames: ["r"])))
        XCTAssertEqual(problem(Node(opType: "Concat", inputs: [x, n], outputNames: ["c"], attributes: [Attribute(name: "axis", value: .int(0))])),
                       "input 1 (inputs) is int64 but input 0 (inputs) is float, and Concat needs one type T for both")
        XCTAssertEqual(problem(Node(opType: "Concat", inputs: [], outputNames: ["c"], attributes: [Attribute(name: "axis", value: .int(0))])),
                       "Concat takes at least 1 input, not 0")
        XCTAssertEqual(problem(Node(opType: "Concat", inputs: [x], outputNames: ["c"])), "Concat needs attribute 'axis'")
        XCTAssertEqual(problem(Node(opType: "Gemm", inputs: [x, nil, x], outputNames: ["g"])), "input 1 (B) of Gemm is required")
        XCTAssertEqual(problem(Node(opType: "Relu", inputs: [x], outputNames: ["a", "b"])), "Relu takes at most 1 output, not 2")
        XCTAssertEqual(problem(Node(opType: "Sqrt", inputs: [n], outputNames: ["a"])), "input 0 (X) is int64, which T of Sqrt does not allow")
        XCTAssertEqual(problem(Node(opType: "Reshape", inputs: [x, x], outputNames: ["a"])),
                       "input 1 (shape) is float, but Reshape takes tensor(int64)")
        XCTAssertEqual(problem(Node(opType: "Relu", inputs: [x], outputNames: ["a"], attributes: [Attribute(name: "alpha", value: .float(1))])),
                       "Relu has no attribute 'alpha'")
        XCTAssertEqual(problem(Node(opType: "Elu", inputs: [x], outputNames: ["a"], attributes: [Attribute(name: "alpha", value: .ints([1]))])),
                       "attribute 'alpha' must be FLOAT, not INTS")
    }
}
