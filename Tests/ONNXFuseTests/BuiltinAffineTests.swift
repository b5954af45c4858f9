import XCTest
import Foundation
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// The built-in affine folds (`Sources/ONNXFuse/Rules/affine.rules`): an Add or Mul by a constant
/// after a Conv or ConvTranspose becomes part of its bias and weight, on small graphs whose folded
/// numbers are computed by hand, and the cases where they must not fire.
///
/// Conv graphs: x [1, 1, 2, 2], w [2, 1, 1, 1] = (2, 3), bias (1, -1) when present: two output
/// channels, output y [1, 2, 2, 2]. The constant c follows as Add(y, c) or Add(c, y).
final class BuiltinAffineTests: XCTestCase {
    /// The rules of the built-in affine.rules, alone (other built-in files do not interfere).
    static var rules: [CompiledRule] { RuleFiles.builtin.filter { $0.file == "builtin:affine.rules" } }

    /// How the constant c is given.
    enum CKind { case constant, graphInput }

    final class Fixture: RuleTestGraph {
        var producer: Node!
        init() { super.init(rules: BuiltinAffineTests.rules) }
    }

    /// Conv(x, w, b?) as the class comment says; output `y`.
    static func conv(bias: Bool) -> (Fixture) throws -> Void {
        { fixture in
            let x = fixture.input("x", [1, 1, 2, 2])
            var inputs: [Value?] = [x, fixture.constant("w", [2, 3], [2, 1, 1, 1])]
            if bias { inputs.append(fixture.constant("b", [1, -1], [2])) }
            let node = Node(opType: "Conv", name: "conv", inputs: inputs, outputNames: ["y"],
                            attributes: [Attribute(name: "kernel_shape", value: .ints([1, 1]))])
            try fixture.graph.append(node)
            fixture.producer = node
        }
    }

    /// ConvTranspose(x, w, b?) with x [1, 2, 1, 1], w [2, 2, 1, 1] = (1, 2, 3, 4), the group
    /// given (2 or 4 output channels), bias all ones when present; output `y`.
    static func convTranspose(group: Int64, bias: Bool) -> (Fixture) throws -> Void {
        { fixture in
            let x = fixture.input("x", [1, 2, 1, 1])
            var inputs: [Value?] = [x, fixture.constant("w", [1, 2, 3, 4], [2, 2, 1, 1])]
            let channels = 2 * Int(group)
            if bias { inputs.append(fixture.constant("b", Array(repeating: 1, count: channels), [Int64(channels)])) }
            var attributes = [Attribute(name: "kernel_shape", value: .ints([1, 1]))]
            if group != 1 { attributes.append(Attribute(name: "group", value: .int(group))) }
            let node = Node(opType: "ConvTranspose", name: "convt", inputs: inputs, outputNames: ["y"], attributes: attributes)
            try fixture.graph.append(node)
            fixture.producer = node
        }
    }

    /// Builds `producer`, then `z = op(y, c)` (or `op(c, y)` when `constantFirst`), `z` a graph output.
    func build(_ producer: (Fixture) throws -> Void, _ op: String, _ values: [Float], _ dims: [Int64],
               constantFirst: Bool = false, kind: CKind = .constant) throws -> Fixture {
        let fixture = Fixture()
        try producer(fixture)
        let c = kind == .constant ? fixture.constant("c", values, dims) : fixture.input("c", dims)
        let y = fixture.producer.outputs[0]!
        let node = Node(opType: op, name: op.lowercased(), inputs: constantFirst ? [c, y] : [y, c], outputNames: ["z"])
        try fixture.graph.append(node)
        try fixture.graph.addOutput(node.outputs[0]!, info: ValueInfo(type: nil))
        return fixture
    }

    /// Expects `rule` to fire once on the graph built, leaving `text`.
    func assertFolds(_ rule: String, _ fixture: Fixture, _ text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let report = try fixture.run()
        XCTAssertEqual(report.fired.map(\.rule), [rule], file: file, line: line)
        XCTAssertEqual(fixture.text, text, file: file, line: line)
    }

    /// Expects nothing to fire or change; returns `rule`'s explanations.
    func reasons(_ rule: String, _ fixture: RuleTestGraph, file: StaticString = #filePath, line: UInt = #line) throws -> [String] {
        try fixture.reasonsNothingFires(for: rule, file: file, line: line)
    }

    func testTheRulesAreBuiltIn() {
        XCTAssertEqual(Self.rules.map(\.name), ["fuse-conv-add", "fuse-conv-mul", "fuse-conv-mul-nobias", "fuse-convtranspose-add",
                                                 "fuse-convtranspose-mul", "fuse-convtranspose-mul-nobias", "fuse-pad-conv", "fuse-pad-conv-axes", "fuse-pad-conv-v2"])
        for rule in Self.rules {
            XCTAssertTrue(rule.comment.first?.hasPrefix("Fold a") ?? false, rule.name)
            XCTAssertEqual(rule.rewrite.benefit, 1, rule.name)
        }
    }

    // MARK: Conv + Add

    func testConvAddFoldsIntoTheBias() throws {
        // c (10, 20) as [2, 1, 1] on the right and as [1, 2, 1, 1] on the left: b2 = (1 + 10, -1 + 20).
        for (dims, first) in [([2, 1, 1] as [Int64], false), ([1, 2, 1, 1], true)] {
            try assertFolds("fuse-conv-add", build(Self.conv(bias: true), "Add", [10, 20], dims, constantFirst: first), """
                g (float[1,1,2,2] x) => (? z)
                   <float[2,1,1,1] w = {2, 3}, float[2] z_b2 = {11, 19}>
                {
                   z = Conv <kernel_shape = [1, 1]> (x, w, z_b2)
                }

                """)
        }
        // No bias: b2 = c = (10, 20).
        try assertFolds("fuse-conv-add", build(Self.conv(bias: false), "Add", [10, 20], [1, 2, 1, 1]), """
            g (float[1,1,2,2] x) => (? z)
               <float[2,1,1,1] w = {2, 3}, float[2] z_b2 = {10, 20}>
            {
               z = Conv <kernel_shape = [1, 1]> (x, w, z_b2)
            }

            """)
    }

    func testConvAddOfAScalarIsSpreadOverTheChannels() throws {
        // A scalar 5, on either side, with a bias: (6, 4); without: (5, 5). Same for [1] and [1, 1, 1, 1].
        for (dims, first) in [([] as [Int64], false), ([], true), ([1], false), ([1, 1, 1, 1], true)] {
            try assertFolds("fuse-conv-add", build(Self.conv(bias: true), "Add", [5], dims, constantFirst: first), """
                g (float[1,1,2,2] x) => (? z)
                   <float[2,1,1,1] w = {2, 3}, float[2] z_b2 = {6, 4}>
                {
                   z = Conv <kernel_shape = [1, 1]> (x, w, z_b2)
                }

                """)
        }
        try assertFolds("fuse-conv-add", build(Self.conv(bias: false), "Add", [5], [], constantFirst: true), """
            g (float[1,1,2,2] x) => (? z)
               <float[2,1,1,1] w = {2, 3}, float[2] z_b2 = {5, 5}>
            {
               z = Conv <kernel_shape = [1, 1]> (x, w, z_b2)
            }

            """)
    }

    // MARK: Conv + Mul

    func testConvMulScalesTheWeightAndBias() throws {
        // c (10, 20) as [2, 1, 1] on the right and [1, 2, 1, 1] on the left:
        // w2 = (2·10, 3·20) = (20, 60), b2 = (1·10, -1·20) = (10, -20).
        for (dims, first) in [([2, 1, 1] as [Int64], false), ([1, 2, 1, 1], true)] {
            try assertFolds("fuse-conv-mul", build(Self.conv(bias: true), "Mul", [10, 20], dims, constantFirst: first), """
                g (float[1,1,2,2] x) => (? z)
                   <float[2,1,1,1] z_w2 = {20, 60}, float[2] z_b2 = {10, -20}>
                {
                   z = Conv <kernel_shape = [1, 1]> (x, z_w2, z_b2)
                }

                """)
        }
        // No bias: only the weight, and the Conv stays without a bias.
        for (dims, first) in [([2, 1, 1] as [Int64], true), ([1, 2, 1, 1], false)] {
            try assertFolds("fuse-conv-mul-nobias", build(Self.conv(bias: false), "Mul", [10, 20], dims, constantFirst: first), """
                g (float[1,1,2,2] x) => (? z)
                   <float[2,1,1,1] z_w2 = {20, 60}>
                {
                   z = Conv <kernel_shape = [1, 1]> (x, z_w2)
                }

                """)
        }
    }

    func testFoldsKeepTheElementType() throws {
        // Conv (w = (2, 3), b = (1, -1)) then Mul by c = (10, 20) [1, 2, 1, 1], then Add of
        // d = (0.5, -0.5) [2, 1, 1]: w2 = (20, 60), b2 = (10.5, -20.5), every tensor of `type`.
        for type in [DataType.float16, .bfloat16, .double, .float] {
            let fixture = Fixture()
            let x = fixture.graph.addInput(name: "x", info: ValueInfo(type: .tensor(type, [1, 1, 2, 2].map { .value($0) })))
            let constant = { (name: String, values: [Double], dims: [Int64]) in
                fixture.graph.addInitializer(name: name, tensor: BuiltinBatchNormTests.tensor(type, values, dims))
            }
            let conv = Node(opType: "Conv", name: "conv", inputs: [x, constant("w", [2, 3], [2, 1, 1, 1]), constant("b", [1, -1], [2])],
                            outputNames: ["y"], attributes: [Attribute(name: "kernel_shape", value: .ints([1, 1]))])
            try fixture.graph.append(conv)
            let mul = Node(opType: "Mul", name: "mul", inputs: [conv.outputs[0], constant("c", [10, 20], [1, 2, 1, 1])], outputNames: ["m"])
            try fixture.graph.append(mul)
            let add = Node(opType: "Add", name: "add", inputs: [mul.outputs[0], constant("d", [0.5, -0.5], [2, 1, 1])], outputNames: ["z"])
            try fixture.graph.append(add)
            try fixture.output(add.outputs[0]!)
            let report = try fixture.run()
            XCTAssertEqual(report.fired.map(\.rule).sorted(), ["fuse-conv-add", "fuse-conv-mul"], "\(type)")
            let folded = try XCTUnwrap(fixture.graph.nodes.first { $0.opType == "Conv" })
            XCTAssertEqual(fixture.graph.nodeCount, 1, "\(type)")
            let weight = try XCTUnwrap(folded.inputs[1]?.initializer), bias = try XCTUnwrap(folded.inputs[2]?.initializer)
            XCTAssertEqual([weight.dataType, bias.dataType], [type, type], "\(type)")
            XCTAssertEqual(weight.doubleValues(), [20, 60], "\(type)")
            XCTAssertEqual(bias.doubleValues(), [10.5, -20.5], "\(type)")
        }
    }

    func testConvMulByAScalar() throws {
        // 0.5 on either side: w2 = (1, 1.5), b2 = (0.5, -0.5).
        for first in [false, true] {
            try assertFolds("fuse-conv-mul", build(Self.conv(bias: true), "Mul", [0.5], [], constantFirst: first), """
                g (float[1,1,2,2] x) => (? z)
                   <float[2,1,1,1] z_w2 = {1, 1.5}, float[2] z_b2 = {0.5, -0.5}>
                {
                   z = Conv <kernel_shape = [1, 1]> (x, z_w2, z_b2)
                }

                """)
            try assertFolds("fuse-conv-mul-nobias", build(Self.conv(bias: false), "Mul", [0.5], [1], constantFirst: first), """
                g (float[1,1,2,2] x) => (? z)
                   <float[2,1,1,1] z_w2 = {1, 1.5}>
                {
                   z = Conv <kernel_shape = [1, 1]> (x, z_w2)
                }

                """)
        }
    }

    // MARK: Conv: must not fire

    func testConvRulesMustNotFire() throws {
        let shapeCheck = "shape(c) == [dim(w, 0)] ++ ones(rank(w) - 2) || shape(c) == [1, dim(w, 0)] ++ ones(rank(w) - 2) "
            + "|| numel(c) == 1 && rank(c) <= rank(w)"
        for (op, rule, bias) in [("Add", "fuse-conv-add", true), ("Add", "fuse-conv-add", false), ("Mul", "fuse-conv-mul", true),
                                 ("Mul", "fuse-conv-mul-nobias", false)] {
            let conv = Self.conv(bias: bias)
            // The trap: a 1-D [C] constant runs along the width of the 4-D output, not the channels.
            XCTAssertEqual(try reasons(rule, build(conv, op, [10, 20], [2])), ["`\(shapeCheck)` is false"], "\(rule) [C]")
            XCTAssertEqual(try reasons(rule, build(conv, op, [10, 20], [2], constantFirst: true)), ["`\(shapeCheck)` is false"],
                           "\(rule) [C] first")
            // [1, C, H, W] with H, W > 1: not per channel.
            XCTAssertEqual(try reasons(rule, build(conv, op, Array(repeating: 2, count: 8), [1, 2, 2, 2])), ["`\(shapeCheck)` is false"],
                           "\(rule) [1, C, H, W]")
            // A single element of a higher rank than the output would change the output's shape.
            XCTAssertEqual(try reasons(rule, build(conv, op, [2], [1, 1, 1, 1, 1])), ["`\(shapeCheck)` is false"], "\(rule) rank 5")
            // A c that is not a constant.
            XCTAssertEqual(try reasons(rule, build(conv, op, [], [2, 1, 1], kind: .graphInput)), ["c is a graph input"], "\(rule) input")
            // The Conv output used twice, or a graph output.
            let twice = try build(conv, op, [10, 20], [2, 1, 1])
            let relu = Node(opType: "Relu", name: "other", inputs: [twice.producer.outputs[0]], outputNames: ["r"])
            try twice.graph.append(relu)
            try twice.graph.addOutput(relu.outputs[0]!, info: ValueInfo(type: nil))
            XCTAssertEqual(try reasons(rule, twice), ["y has 2 users"], "\(rule) used twice")
            let output = try build(conv, op, [10, 20], [2, 1, 1])
            try output.graph.addOutput(output.producer.outputs[0]!, info: ValueInfo(type: nil))
            XCTAssertEqual(try reasons(rule, output), ["y is a graph output"], "\(rule) graph output")
        }
    }

    func testAOneChannelConvFoldsA1DConstant() throws {
        // With C == 1, a [1] constant is a single element: it broadcasts the same either way.
        let fixture = Fixture()
        let x = fixture.input("x", [1, 1, 2, 2])
        let conv = Node(opType: "Conv", name: "conv", inputs: [x, fixture.constant("w", [2], [1, 1, 1, 1])], outputNames: ["y"])
        try fixture.graph.append(conv)
        let add = Node(opType: "Add", name: "add", inputs: [conv.outputs[0], fixture.constant("c", [7], [1])], outputNames: ["z"])
        try fixture.graph.append(add)
        try fixture.graph.addOutput(add.outputs[0]!, info: ValueInfo(type: nil))
        try assertFolds("fuse-conv-add", fixture, """
            g (float[1,1,2,2] x) => (? z)
               <float[1,1,1,1] w = {2}, float[1] z_b2 = {7}>
            {
               z = Conv (x, w, z_b2)
            }

            """)
    }

    // MARK: ConvTranspose

    func testConvTransposeMulScalesAlongAxis1WithinGroups() throws {
        // Group 2: input channel 0 feeds output channels 0 and 1, input channel 1 output channels 2
        // and 3; c = (1, 2, 3, 4): w2 = (1·1, 2·2, 3·3, 4·4) = (1, 4, 9, 16), b2 = (1, 2, 3, 4).
        for (dims, first) in [([4, 1, 1] as [Int64], false), ([1, 4, 1, 1], true)] {
            try assertFolds("fuse-convtranspose-mul",
                            build(Self.convTranspose(group: 2, bias: true), "Mul", [1, 2, 3, 4], dims, constantFirst: first), """
                g (float[1,2,1,1] x) => (? z)
                   <float[2,2,1,1] z_w2 = {1, 4, 9, 16}, float[4] z_b2 = {1, 2, 3, 4}>
                {
                   z = ConvTranspose <kernel_shape = [1, 1], group = 2> (x, z_w2, z_b2)
                }

                """)
        }
        // Group 1: w ((1, 2), (3, 4)), output channels along axis 1, c = (2, 3): ((2, 6), (6, 12)).
        try assertFolds("fuse-convtranspose-mul-nobias",
                        build(Self.convTranspose(group: 1, bias: false), "Mul", [2, 3], [2, 1, 1]), """
            g (float[1,2,1,1] x) => (? z)
               <float[2,2,1,1] z_w2 = {2, 6, 6, 12}>
            {
               z = ConvTranspose <kernel_shape = [1, 1]> (x, z_w2)
            }

            """)
        // A scalar 2 on the left, group 2, no bias: every weight doubles.
        try assertFolds("fuse-convtranspose-mul-nobias",
                        build(Self.convTranspose(group: 2, bias: false), "Mul", [2], [], constantFirst: true), """
            g (float[1,2,1,1] x) => (? z)
               <float[2,2,1,1] z_w2 = {2, 4, 6, 8}>
            {
               z = ConvTranspose <kernel_shape = [1, 1], group = 2> (x, z_w2)
            }

            """)
    }

    func testConvTransposeAddFoldsIntoTheBias() throws {
        // Group 2, bias ones, c = (1, 2, 3, 4) as [1, 4, 1, 1] on the left: b2 = (2, 3, 4, 5).
        try assertFolds("fuse-convtranspose-add",
                        build(Self.convTranspose(group: 2, bias: true), "Add", [1, 2, 3, 4], [1, 4, 1, 1], constantFirst: true), """
            g (float[1,2,1,1] x) => (? z)
               <float[2,2,1,1] w = {1, 2, 3, 4}, float[4] z_b2 = {2, 3, 4, 5}>
            {
               z = ConvTranspose <kernel_shape = [1, 1], group = 2> (x, w, z_b2)
            }

            """)
        // Group 1, no bias, a scalar -1 on the right: b2 = (-1, -1).
        try assertFolds("fuse-convtranspose-add", build(Self.convTranspose(group: 1, bias: false), "Add", [-1], []), """
            g (float[1,2,1,1] x) => (? z)
               <float[2,2,1,1] w = {1, 2, 3, 4}, float[2] z_b2 = {-1, -1}>
            {
               z = ConvTranspose <kernel_shape = [1, 1]> (x, w, z_b2)
            }

            """)
    }

    func testConvTransposeRulesMustNotFire() throws {
        let shapeCheck = "shape(c) == [dim(w, 1) * g] ++ ones(rank(w) - 2) || shape(c) == [1, dim(w, 1) * g] ++ ones(rank(w) - 2) "
            + "|| numel(c) == 1 && rank(c) <= rank(w)"
        for (op, rule, bias) in [("Add", "fuse-convtranspose-add", true), ("Mul", "fuse-convtranspose-mul", true),
                                 ("Mul", "fuse-convtranspose-mul-nobias", false)] {
            let convt = Self.convTranspose(group: 2, bias: bias)
            // The trap: [C] along the width; and [C_out / group] (the weight's axis 1) is not the channel count.
            XCTAssertEqual(try reasons(rule, build(convt, op, [1, 2, 3, 4], [4])), ["`\(shapeCheck)` is false"], "\(rule) [C]")
            XCTAssertEqual(try reasons(rule, build(convt, op, [1, 2], [2, 1, 1])), ["`\(shapeCheck)` is false"], "\(rule) [C/g]")
            XCTAssertEqual(try reasons(rule, build(convt, op, [], [4, 1, 1], kind: .graphInput)), ["c is a graph input"], "\(rule) input")
            let output = try build(convt, op, [1, 2, 3, 4], [4, 1, 1])
            try output.graph.addOutput(output.producer.outputs[0]!, info: ValueInfo(type: nil))
            XCTAssertEqual(try reasons(rule, output), ["y is a graph output"], "\(rule) graph output")
        }
    }

    // MARK: Pad + Conv

    /// x [1, 1, 3, 3] -> Pad(pads, value?) -> Conv(w [1, 1, 2, 2], pads?) -> z, with the Pad's
    /// pads and value as initializers (opset 17) or attributes (opset 10).
    func padConv(_ pads: [Int64], value: Float? = nil, mode: String? = nil, convPads: [Int64]? = [1, 0, 0, 1],
                 autoPad: String? = nil, opset: Int64 = 17, axes: [Int64]? = nil) throws -> RuleTestGraph {
        let fixture = RuleTestGraph(rules: Self.rules, opset: opset)
        let x = fixture.input("x", [1, 1, 3, 3])
        var padAttributes = mode.map { [Attribute(name: "mode", value: .string(Array($0.utf8)))] } ?? []
        var padInputs: [Value?] = [x]
        if opset >= 11 {
            padInputs.append(fixture.graph.addInitializer(name: "p", tensor: Tensor(dataType: .int64, dims: [Int64(pads.count)], values: pads)))
            if let value { padInputs.append(fixture.constant("v", [value], [])) }
            if let axes {
                if value == nil { padInputs.append(nil) }
                padInputs.append(fixture.graph.addInitializer(name: "a", tensor: Tensor(dataType: .int64, dims: [Int64(axes.count)], values: axes)))
            }
        } else {
            padAttributes.append(Attribute(name: "pads", value: .ints(pads)))
            if let value { padAttributes.append(Attribute(name: "value", value: .float(value))) }
        }
        let pad = Node(opType: "Pad", name: "pad", inputs: padInputs, outputNames: ["y"], attributes: padAttributes)
        try fixture.graph.append(pad)
        var convAttributes = [Attribute(name: "kernel_shape", value: .ints([2, 2]))]
        if let convPads { convAttributes.append(Attribute(name: "pads", value: .ints(convPads))) }
        if let autoPad { convAttributes.append(Attribute(name: "auto_pad", value: .string(Array(autoPad.utf8)))) }
        let conv = Node(opType: "Conv", name: "conv", inputs: [pad.outputs[0], fixture.constant("w", [1, 2, 3, 4], [1, 1, 2, 2])],
                        outputNames: ["z"], attributes: convAttributes)
        try fixture.graph.append(conv)
        try fixture.output(conv.outputs[0]!)
        return fixture
    }

    func testPadFoldsIntoTheConvPads() throws {
        // Pad (top 1, left 2, bottom 0, right 3) plus the Conv's (1, 0, 0, 1): (2, 2, 0, 4).
        let fold = try padConv([0, 0, 1, 2, 0, 0, 0, 3])
        XCTAssertEqual(try fold.run().fired.map(\.rule), ["fuse-pad-conv"])
        XCTAssertEqual(fold.text, """
            g (float[1,1,3,3] x) => (? z)
               <float[1,1,2,2] w = {1, 2, 3, 4}>
            {
               z = Conv <kernel_shape = [2, 2], pads = [2, 2, 0, 4]> (x, w)
            }

            """)
        // A Conv without pads has zeros; a value input of 0 written out is the default.
        let noPads = try padConv([0, 0, 1, 1, 0, 0, 1, 1], value: 0, mode: "constant", convPads: nil)
        XCTAssertEqual(try noPads.run().fired.map(\.rule), ["fuse-pad-conv"])
        XCTAssertTrue(noPads.text.contains("z = Conv <kernel_shape = [2, 2], pads = [1, 1, 1, 1]> (x, w)"), noPads.text)
        // Opset 10: pads and value are attributes.
        let v2 = try padConv([0, 0, 0, 1, 0, 0, 2, 0], value: 0, opset: 10)
        XCTAssertEqual(try v2.run().fired.map(\.rule), ["fuse-pad-conv-v2"])
        XCTAssertTrue(v2.text.contains("z = Conv <kernel_shape = [2, 2], pads = [1, 1, 2, 1]> (x, w)"), v2.text)
    }

    func testPadWithAxesFoldsIntoTheConvPads() throws {
        // Opset 18: the axes name the spatial axes, as 2, 3 or as -2, -1; pads list only them.
        for axes in [[Int64(2), 3], [-2, -1]] {
            let fold = try padConv([1, 2, 0, 3], opset: 18, axes: axes)
            XCTAssertEqual(try fold.run().fired.map(\.rule), ["fuse-pad-conv-axes"], "\(axes)")
            XCTAssertTrue(fold.text.contains("z = Conv <kernel_shape = [2, 2], pads = [2, 2, 0, 4]> (x, w)"), fold.text)
        }
        // Other axes: the channel axis, one spatial axis only, the spatial axes out of order.
        XCTAssertEqual(try reasons("fuse-pad-conv-axes", padConv([0, 1, 0, 1], opset: 18, axes: [1, 2])),
                       ["`a == range(2, rank(w)) || a == range(2 - rank(w), 0)` is false"])
        XCTAssertEqual(try reasons("fuse-pad-conv-axes", padConv([1, 1], opset: 18, axes: [3])),
                       ["`a == range(2, rank(w)) || a == range(2 - rank(w), 0)` is false"])
        XCTAssertEqual(try reasons("fuse-pad-conv-axes", padConv([1, 0, 1, 0], opset: 18, axes: [3, 2])),
                       ["`a == range(2, rank(w)) || a == range(2 - rank(w), 0)` is false"])
        // Cropping, and a value that is not zero.
        XCTAssertEqual(try reasons("fuse-pad-conv-axes", padConv([1, -1, 0, 0], opset: 18, axes: [2, 3])),
                       ["`abs(p) == reshape(p, [-1])` is false"])
        XCTAssertEqual(try reasons("fuse-pad-conv-axes", padConv([1, 1, 0, 0], value: 3, opset: 18, axes: [2, 3])),
                       ["`default(v, 0) == 0` is false"])
    }

    func testPadConvMustNotFire() throws {
        // Padding the batch or channel axes, at the start or at the end.
        XCTAssertEqual(try reasons("fuse-pad-conv", padConv([1, 0, 1, 1, 0, 0, 1, 1])), ["`slice(p, 0, 2) == [0, 0]` is false"])
        XCTAssertEqual(try reasons("fuse-pad-conv", padConv([0, 0, 1, 1, 0, 1, 1, 1])),
                       ["`slice(p, len(p) / 2, len(p) / 2 + 2) == [0, 0]` is false"])
        // Cropping (a negative pad) is not padding.
        XCTAssertEqual(try reasons("fuse-pad-conv", padConv([0, 0, -1, 1, 0, 0, 1, 1])),
                       ["`abs(p) == reshape(p, [-1])` is false"])
        // A value other than zero; another mode; a Conv that computes its own padding.
        XCTAssertEqual(try reasons("fuse-pad-conv", padConv([0, 0, 1, 1, 0, 0, 1, 1], value: 1)), ["`default(v, 0) == 0` is false"])
        XCTAssertEqual(try reasons("fuse-pad-conv", padConv([0, 0, 1, 1, 0, 0, 1, 1], mode: "reflect")), ["`m == \"constant\"` is false"])
        XCTAssertEqual(try reasons("fuse-pad-conv", padConv([0, 0, 1, 1, 0, 0, 1, 1], convPads: nil, autoPad: "SAME_UPPER")),
                       ["`ap == \"NOTSET\"` is false"])
        XCTAssertEqual(try reasons("fuse-pad-conv-v2", padConv([0, 0, 1, 1, 0, 0, 1, 1], value: 2, opset: 10)), ["`v == 0` is false"])
        // The padded value read by something else too.
        let shared = try padConv([0, 0, 1, 1, 0, 0, 1, 1])
        try shared.output(shared.graph.nodes.first { $0.opType == "Pad" }!.outputs[0]!)
        XCTAssertEqual(try reasons("fuse-pad-conv", shared), ["y is a graph output"])
    }
}
