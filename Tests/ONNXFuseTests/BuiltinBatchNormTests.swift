import XCTest
import Foundation
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// The built-in BatchNormalization folds beyond Conv (`Sources/ONNXFuse/Rules/batchnorm.rules`):
/// ConvTranspose, Gemm (transB 0 and 1) and 2-D MatMul, on small graphs whose folded numbers are
/// computed by hand, and the cases where they must not fire.
///
/// Every graph ends in a BatchNormalization with epsilon 1 and, per channel,
/// scale (4, 9, 5, 8), shift (0.5, -1, 0, 1), mean (1, 0, 2, -1), var (3, 8, 0, 15):
/// sqrt(var + 1) = (2, 3, 1, 4), so k = scale / sqrt(var + 1) = (2, 3, 5, 2) and, without a bias,
/// -mean * k + shift = (-1.5, -1, -10, 3). Two-channel graphs use the first two channels.
final class BuiltinBatchNormTests: XCTestCase {
    /// The rules of the built-in batchnorm.rules, alone (other built-in files do not interfere).
    static var rules: [CompiledRule] { RuleFiles.builtin.filter { $0.file == "builtin:batchnorm.rules" } }

    typealias WeightKind = RuleTestGraph.Source

    /// What a must-not-fire case changes.
    struct Options {
        var weight = WeightKind.constant
        var bnChannels: Int?
        var training: Int64?
        /// The BatchNormalization's running-mean output exists and is a graph output.
        var meanOutputUsed = false
        /// The second channel's variance is -1, so that var + epsilon is 0.
        var zeroVariancePlusEpsilon = false
    }

    final class Fixture: RuleTestGraph {
        init() { super.init(rules: BuiltinBatchNormTests.rules) }

        /// A weight: an initializer, a graph input, or the output of a Relu of an initializer.
        func weight(_ kind: WeightKind, _ name: String, _ values: [Float], _ dims: [Int64]) throws -> Value {
            try value(kind, name, values, dims)
        }

        /// BatchNormalization(y) with the parameters of the class comment; its output `z` is a
        /// graph output.
        @discardableResult
        func batchNorm(after y: Value, channels: Int, options: Options) throws -> Node {
            let scale = constant("scale", Array([Float(4), 9, 5, 8][..<channels]), [Int64(channels)])
            let shift = constant("shift", Array([Float(0.5), -1, 0, 1][..<channels]), [Int64(channels)])
            let mean = constant("mean", Array([Float(1), 0, 2, -1][..<channels]), [Int64(channels)])
            var variances = Array([Float(3), 8, 0, 15][..<channels])
            if options.zeroVariancePlusEpsilon { variances[1] = -1 }
            let variance = constant("var", variances, [Int64(channels)])
            var attributes = [Attribute(name: "epsilon", value: .float(1))]
            if let training = options.training { attributes.append(Attribute(name: "training_mode", value: .int(training))) }
            let bn = Node(opType: "BatchNormalization", name: "bn", inputs: [y, scale, shift, mean, variance],
                          outputNames: options.meanOutputUsed ? ["z", "running_mean"] : ["z"], attributes: attributes)
            try graph.append(bn)
            try graph.addOutput(bn.outputs[0]!, info: ValueInfo(type: nil))
            if options.meanOutputUsed { try graph.addOutput(bn.outputs[1]!, info: ValueInfo(type: nil)) }
            return bn
        }
    }

    /// Builds the producer (output `y`) into the fixture and returns it with its channel count.
    typealias Build = (Fixture, Options) throws -> (producer: Node, channels: Int)

    func build(_ make: Build, _ options: Options = Options()) throws -> (Fixture, Node) {
        let fixture = Fixture()
        let (producer, channels) = try make(fixture, options)
        var options = options
        options.bnChannels = options.bnChannels ?? channels
        try fixture.batchNorm(after: producer.outputs[0]!, channels: options.bnChannels!, options: options)
        return (fixture, producer)
    }

    /// Runs `make` and expects `rule` to fire once, leaving `text`.
    func assertFolds(_ rule: String, _ make: Build, _ text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (fixture, _) = try build(make)
        let report = try fixture.run()
        XCTAssertEqual(report.fired.map(\.rule), [rule], file: file, line: line)
        XCTAssertEqual(report.after.nodesByOpType["BatchNormalization"], nil, file: file, line: line)
        XCTAssertEqual(Printer().print(fixture.graph), text, file: file, line: line)
    }

    /// Runs `make` changed by `change` (and `options`) and expects nothing to fire or change,
    /// returning `rule`'s explanations.
    func reasons(_ rule: String, _ make: Build, _ options: Options = Options(), change: (Fixture, Node) throws -> Void = { _, _ in },
                 file: StaticString = #filePath, line: UInt = #line) throws -> [String] {
        let (fixture, producer) = try build(make, options)
        try change(fixture, producer)
        return try fixture.reasonsNothingFires(for: rule, file: file, line: line)
    }

    /// The must-not-fire cases every rule shares: the producer's output used twice or a graph
    /// output, the weight a graph input or computed, training mode, three BN channels.
    func assertCommonRefusals(_ rule: String, weight: String, shapeCheck: String, _ make: Build,
                              file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(try reasons(rule, make, change: { fixture, producer in
            let relu = Node(opType: "Relu", name: "other", inputs: [producer.outputs[0]], outputNames: ["r"])
            try fixture.graph.append(relu)
            try fixture.graph.addOutput(relu.outputs[0]!, info: ValueInfo(type: nil))
        }, file: file, line: line), ["y has 2 users"], "used twice", file: file, line: line)
        XCTAssertEqual(try reasons(rule, make, change: { fixture, producer in
            try fixture.graph.addOutput(producer.outputs[0]!, info: ValueInfo(type: nil))
        }, file: file, line: line), ["y is a graph output"], "graph output", file: file, line: line)
        XCTAssertEqual(try reasons(rule, make, Options(weight: .graphInput), file: file, line: line),
                       ["\(weight) is a graph input"], "weight input", file: file, line: line)
        XCTAssertEqual(try reasons(rule, make, Options(weight: .computed), file: file, line: line),
                       ["\(weight) is produced by Relu, not a constant"], "computed weight", file: file, line: line)
        XCTAssertEqual(try reasons(rule, make, Options(training: 1), file: file, line: line),
                       ["`tm == 0` is false"], "training mode", file: file, line: line)
        XCTAssertEqual(try reasons(rule, make, Options(bnChannels: 3), file: file, line: line),
                       ["`\(shapeCheck)` is false"], "three BN channels", file: file, line: line)
        XCTAssertEqual(try reasons(rule, make, Options(meanOutputUsed: true), file: file, line: line),
                       ["BatchNormalization 'bn' output 1 'running_mean' is used but not part of the pattern"],
                       "optional output used", file: file, line: line)
        // var + epsilon = 0 (epsilon is 1): an infinite scale.
        XCTAssertEqual(try reasons(rule, make, Options(zeroVariancePlusEpsilon: true), file: file, line: line),
                       ["k is not finite"], "non-finite scale", file: file, line: line)
    }

    func testTheRulesAreBuiltIn() {
        XCTAssertEqual(Self.rules.map(\.name), ["fold-conv-batchnorm", "fold-convtranspose-batchnorm", "fold-gemm-batchnorm",
                                                 "fold-gemm-transb-batchnorm", "fold-matmul-batchnorm",
                                                 "fold-matmul-transpose-batchnorm"])
        for rule in Self.rules {
            XCTAssertEqual(rule.rewrite.benefit, 10, rule.name)
            XCTAssertTrue(rule.comment.first?.hasPrefix("Fold an inference-mode BatchNormalization") ?? false, rule.name)
        }
    }

    // MARK: Conv

    /// Conv(x [1, 1, 2, 2], w [2, 1, 1, 1] = (1, 2)), 1x1 kernel, no bias.
    static func conv() -> Build {
        { fixture, options in
            let x = fixture.input("x", [1, 1, 2, 2])
            let w = try fixture.weight(options.weight, "w", [1, 2], [2, 1, 1, 1])
            let node = Node(opType: "Conv", name: "conv", inputs: [x, w], outputNames: ["y"],
                            attributes: [Attribute(name: "kernel_shape", value: .ints([1, 1]))])
            try fixture.graph.append(node)
            return (node, 2)
        }
    }

    func testFoldConvBatchNorm() throws {
        // k = (2, 3): w2 = (2, 6); b2 = shift - mean * k = (-1.5, -1).
        try assertFolds("fold-conv-batchnorm", Self.conv(), """
            g (float[1,1,2,2] x) => (? z)
               <float[2,1,1,1] z_w2 = {2, 6}, float[2] z_b2 = {-1.5, -1}>
            {
               z = Conv <kernel_shape = [1, 1]> (x, z_w2, z_b2)
            }

            """)
    }

    func testFoldConvBatchNormMustNotFire() throws {
        try assertCommonRefusals("fold-conv-batchnorm", weight: "w", shapeCheck: "shape(scale) == [dim(w, 0)]", Self.conv())
    }

    // MARK: Element types

    /// `values` as a little-endian tensor of `type` (float16, bfloat16, float or double); every
    /// value used here is exact in all four.
    static func tensor(_ type: DataType, _ values: [Double], _ dims: [Int64]) -> Tensor {
        switch type {
        case .float16: return Tensor(dataType: type, dims: dims, values: values.map { Float16($0).bitPattern })
        case .bfloat16: return Tensor(dataType: type, dims: dims, values: values.map { UInt16(Float($0).bitPattern >> 16) })
        case .double: return Tensor(dataType: type, dims: dims, values: values)
        default: return Tensor(dataType: type, dims: dims, values: values.map(Float.init))
        }
    }

    /// Conv (w = (1, 2) on two channels) and Gemm (transB 1, w = ((1, 2), (3, 4))) followed by the
    /// two-channel BatchNormalization of the class comment, every tensor of `type`: the folded
    /// weight and bias keep the type and hold the hand-computed numbers.
    func testFoldsKeepTheElementType() throws {
        for type in [DataType.float16, .bfloat16, .double, .float] {
            for op in ["Conv", "Gemm"] {
                let fixture = Fixture()
                let info = { (dims: [Int64]) in ValueInfo(type: .tensor(type, dims.map { .value($0) })) }
                let x = fixture.graph.addInput(name: "x", info: info(op == "Conv" ? [1, 1, 1, 1] : [1, 2]))
                let constant = { (name: String, values: [Double], dims: [Int64]) in
                    fixture.graph.addInitializer(name: name, tensor: Self.tensor(type, values, dims))
                }
                let producer: Node
                if op == "Conv" {
                    producer = Node(opType: "Conv", name: "conv", inputs: [x, constant("w", [1, 2], [2, 1, 1, 1])], outputNames: ["y"])
                } else {
                    producer = Node(opType: "Gemm", name: "gemm", inputs: [x, constant("w", [1, 2, 3, 4], [2, 2])], outputNames: ["y"],
                                    attributes: [Attribute(name: "transB", value: .int(1))])
                }
                try fixture.graph.append(producer)
                let bn = Node(opType: "BatchNormalization", name: "bn",
                              inputs: [producer.outputs[0], constant("scale", [4, 9], [2]), constant("shift", [0.5, -1], [2]),
                                       constant("mean", [1, 0], [2]), constant("var", [3, 8], [2])],
                              outputNames: ["z"], attributes: [Attribute(name: "epsilon", value: .float(1))])
                try fixture.graph.append(bn)
                try fixture.output(bn.outputs[0]!)

                let report = try fixture.run()
                XCTAssertEqual(report.fired.map(\.rule), [op == "Conv" ? "fold-conv-batchnorm" : "fold-gemm-transb-batchnorm"], "\(op) \(type)")
                let folded = try XCTUnwrap(fixture.graph.nodes.first { $0.opType == op }, "\(op) \(type)")
                let weight = try XCTUnwrap(folded.inputs[1]?.initializer), bias = try XCTUnwrap(folded.inputs[2]?.initializer)
                XCTAssertEqual(weight.dataType, type, "\(op) \(type)")
                XCTAssertEqual(bias.dataType, type, "\(op) \(type)")
                // k = (2, 3): the rows of w scale by k; b = -mean * k + shift = (-1.5, -1).
                XCTAssertEqual(weight.doubleValues(), op == "Conv" ? [2, 6] : [2, 4, 9, 12], "\(op) \(type)")
                XCTAssertEqual(bias.doubleValues(), [-1.5, -1], "\(op) \(type)")
            }
        }
    }

    // MARK: ConvTranspose

    /// ConvTranspose(x, w, b?) with x of `inChannels` channels and w [inChannels, 2, 1, 1]
    /// holding 1, 2, 3...; bias (1, 1, ...) when `bias`.
    static func convTranspose(group: Int64, inChannels: Int64 = 2, bias: Bool = false) -> Build {
        { fixture, options in
            let perGroup = 2   // output channels per group: 2 for group 1, 4 for group 2
            let dims: [Int64] = [inChannels, Int64(perGroup), 1, 1]
            let count = Int(inChannels) * perGroup
            let x = fixture.input("x", [1, inChannels, 2, 2])
            let w = try fixture.weight(options.weight, "w", (1...count).map(Float.init), dims)
            var inputs: [Value?] = [x, w]
            let channels = perGroup * Int(group)
            if bias { inputs.append(fixture.constant("b", Array(repeating: 1, count: channels), [Int64(channels)])) }
            var attributes = [Attribute(name: "kernel_shape", value: .ints([1, 1]))]
            if group != 1 { attributes.append(Attribute(name: "group", value: .int(group))) }
            let node = Node(opType: "ConvTranspose", name: "convt", inputs: inputs, outputNames: ["y"], attributes: attributes)
            try fixture.graph.append(node)
            return (node, channels)
        }
    }

    func testFoldConvTransposeBatchNorm() throws {
        // Group 1: w [2, 2, 1, 1] = ((1, 2), (3, 4)), output channels along axis 1, k = (2, 3):
        // w2 = ((2, 6), (6, 12)); b2 = (1 - mean) * k + shift = (0.5, 2).
        try assertFolds("fold-convtranspose-batchnorm", Self.convTranspose(group: 1, bias: true), """
            g (float[1,2,2,2] x) => (? z)
               <float[2,2,1,1] z_w2 = {2, 6, 6, 12}, float[2] z_b2 = {0.5, 2}>
            {
               z = ConvTranspose <kernel_shape = [1, 1]> (x, z_w2, z_b2)
            }

            """)
    }

    func testFoldGroupedConvTransposeBatchNorm() throws {
        // Group 2: w [2, 2, 1, 1]; input channel 0 (group 0) feeds output channels 0 and 1,
        // input channel 1 (group 1) output channels 2 and 3, k = (2, 3, 5, 2):
        // w2 = (1·2, 2·3, 3·5, 4·2) = (2, 6, 15, 8); no bias: b2 = -mean * k + shift = (-1.5, -1, -10, 3).
        try assertFolds("fold-convtranspose-batchnorm", Self.convTranspose(group: 2), """
            g (float[1,2,2,2] x) => (? z)
               <float[2,2,1,1] z_w2 = {2, 6, 15, 8}, float[4] z_b2 = {-1.5, -1, -10, 3}>
            {
               z = ConvTranspose <kernel_shape = [1, 1], group = 2> (x, z_w2, z_b2)
            }

            """)
    }

    func testFoldConvTransposeBatchNormMustNotFire() throws {
        let rule = "fold-convtranspose-batchnorm"
        try assertCommonRefusals(rule, weight: "w", shapeCheck: "shape(scale) == [dim(w, 1) * g]", Self.convTranspose(group: 1))
        try assertCommonRefusals(rule, weight: "w", shapeCheck: "shape(scale) == [dim(w, 1) * g]", Self.convTranspose(group: 2))
        // Grouped, but the 3 input channels do not divide into 2 groups.
        XCTAssertEqual(try reasons(rule, Self.convTranspose(group: 2, inChannels: 3)),
                       ["wg: reshape: argument 2: expected an integer, got 1.5"])
    }

    // MARK: Gemm

    /// Gemm(x, B, C?) with x [1, 2] (or the shape given), B [2, 2] = ((1, 2), (3, 4)) (or of the
    /// rank given) and the attributes given.
    static func gemm(transB: Int64?, alpha: Float? = nil, beta: Float? = nil, c: (values: [Float], dims: [Int64])? = nil,
                     xDims: [Int64] = [1, 2], bRank: Int = 2) -> Build {
        { fixture, options in
            let x = fixture.input("x", xDims)
            let b = try fixture.weight(options.weight, "bm", [1, 2, 3, 4], Array(repeating: 1, count: bRank - 2) + [2, 2])
            var inputs: [Value?] = [x, b]
            if let c { inputs.append(fixture.constant("c", c.values, c.dims)) }
            var attributes = [Attribute]()
            if let alpha { attributes.append(Attribute(name: "alpha", value: .float(alpha))) }
            if let beta { attributes.append(Attribute(name: "beta", value: .float(beta))) }
            if let transB { attributes.append(Attribute(name: "transB", value: .int(transB))) }
            let node = Node(opType: "Gemm", name: "gemm", inputs: inputs, outputNames: ["y"], attributes: attributes)
            try fixture.graph.append(node)
            return (node, 2)
        }
    }

    func testFoldGemmBatchNorm() throws {
        // transB = 0: B is K × N, its columns scale by k = (2, 3): ((2, 6), (6, 12)).
        // alpha 0.5 stays; beta 2 with C = (1, 1): C2 = (2·1 - mean) * k + shift = (2.5, 5), beta 1.
        try assertFolds("fold-gemm-batchnorm", Self.gemm(transB: nil, alpha: 0.5, beta: 2, c: ([1, 1], [2])), """
            g (float[1,2] x) => (? z)
               <float[2,2] z_b2 = {2, 6, 6, 12}, float[2] z_c2 = {2.5, 5}>
            {
               z = Gemm <alpha = 0.5, beta = 1> (x, z_b2, z_c2)
            }

            """)
    }

    func testFoldGemmBatchNormWithAMatrixBias() throws {
        // transB = 0 written out, C of shape [M, N] = [2, 2] = ((1, 2), (3, 4)), beta 1:
        // C2 = (C - mean) * k + shift = ((0.5, 5), (4.5, 11)).
        try assertFolds("fold-gemm-batchnorm", Self.gemm(transB: 0, c: ([1, 2, 3, 4], [2, 2]), xDims: [2, 2]), """
            g (float[2,2] x) => (? z)
               <float[2,2] z_b2 = {2, 6, 6, 12}, float[2,2] z_c2 = {0.5, 5, 4.5, 11}>
            {
               z = Gemm <transB = 0, beta = 1> (x, z_b2, z_c2)
            }

            """)
    }

    func testFoldGemmTransBBatchNorm() throws {
        // transB = 1: B is N × K, its rows scale by k = (2, 3): ((2, 4), (9, 12)).
        // A scalar C = 1: C2 = (1 - mean) * k + shift = (0.5, 2).
        try assertFolds("fold-gemm-transb-batchnorm", Self.gemm(transB: 1, c: ([1], [])), """
            g (float[1,2] x) => (? z)
               <float[2,2] z_b2 = {2, 4, 9, 12}, float[2] z_c2 = {0.5, 2}>
            {
               z = Gemm <transB = 1, beta = 1> (x, z_b2, z_c2)
            }

            """)
        // No C: C2 = -mean * k + shift = (-1.5, -1).
        try assertFolds("fold-gemm-transb-batchnorm", Self.gemm(transB: 1, alpha: 2), """
            g (float[1,2] x) => (? z)
               <float[2,2] z_b2 = {2, 4, 9, 12}, float[2] z_c2 = {-1.5, -1}>
            {
               z = Gemm <alpha = 2, transB = 1, beta = 1> (x, z_b2, z_c2)
            }

            """)
    }

    func testFoldGemmBatchNormMustNotFire() throws {
        try assertCommonRefusals("fold-gemm-batchnorm", weight: "bm", shapeCheck: "shape(scale) == [dim(bm, 1)]",
                                 Self.gemm(transB: 0, c: ([1, 1], [2])))
        try assertCommonRefusals("fold-gemm-transb-batchnorm", weight: "bm", shapeCheck: "shape(scale) == [dim(bm, 0)]",
                                 Self.gemm(transB: 1))
        // Each rule leaves the other transB value alone.
        XCTAssertEqual(try reasons("fold-gemm-batchnorm", Self.gemm(transB: 1), Options(training: 1)), ["`tm == 0` is false"])
        XCTAssertEqual(try reasons("fold-gemm-batchnorm", Self.gemm(transB: 1), Options(bnChannels: 3)), ["`tb == 0` is false"])
        XCTAssertEqual(try reasons("fold-gemm-transb-batchnorm", Self.gemm(transB: 0), Options(bnChannels: 3)), ["`tb == 1` is false"])
        // A non-constant C.
        XCTAssertEqual(try reasons("fold-gemm-transb-batchnorm", Self.gemm(transB: 1), change: { fixture, gemm in
            try gemm.appendInput(fixture.input("c", [2]))
        }), ["c is a graph input"])
        // B of the wrong rank.
        XCTAssertEqual(try reasons("fold-gemm-transb-batchnorm", Self.gemm(transB: 1, bRank: 3)), ["`rank(bm) == 2` is false"])
        XCTAssertEqual(try reasons("fold-gemm-batchnorm", Self.gemm(transB: 0, bRank: 3)), ["`rank(bm) == 2` is false"])
    }

    // MARK: MatMul

    /// MatMul(x, w) with x of the shape given and w [2, 2] = ((1, 2), (3, 4)); with
    /// `transposed`, MatMul(x, Transpose<perm>(w)) as PyTorch exports a Linear without bias when
    /// it does not fold constants.
    static func matMul(xDims: [Int64] = [1, 2], transposed perm: [Int64]? = nil) -> Build {
        { fixture, options in
            let x = fixture.input("x", xDims)
            var w = try fixture.weight(options.weight, "w", [1, 2, 3, 4], [2, 2])
            if let perm {
                let transpose = Node(opType: "Transpose", name: "wt", inputs: [w], outputNames: ["wt"],
                                     attributes: [Attribute(name: "perm", value: .ints(perm))])
                try fixture.graph.append(transpose)
                w = transpose.outputs[0]!
            }
            let node = Node(opType: "MatMul", name: "matmul", inputs: [x, w], outputNames: ["y"])
            try fixture.graph.append(node)
            return (node, 2)
        }
    }

    func testFoldMatMulBatchNorm() throws {
        // Columns of w scale by k = (2, 3): ((2, 6), (6, 12)); c = shift - mean * k = (-1.5, -1).
        try assertFolds("fold-matmul-batchnorm", Self.matMul(), """
            g (float[1,2] x) => (? z)
               <float[2,2] z_w2 = {2, 6, 6, 12}, float[2] z_c = {-1.5, -1}>
            {
               z = Gemm (x, z_w2, z_c)
            }

            """)
    }

    func testFoldMatMulBatchNormMustNotFire() throws {
        let rule = "fold-matmul-batchnorm"
        try assertCommonRefusals(rule, weight: "w", shapeCheck: "shape(scale) == [dim(w, 1)]", Self.matMul())
        // x of rank 3 (the BatchNormalization's channels would not be the MatMul's columns).
        XCTAssertEqual(try reasons(rule, Self.matMul(xDims: [1, 2, 2])), ["`rank(x) == 2` is false"])
        // x of unknown rank (an operator inference knows nothing of).
        XCTAssertEqual(try reasons(rule, Self.matMul(), change: { fixture, matmul in
            let relu = Node(opType: "Opaque", domain: "com.example", name: "unknown", inputs: [matmul.inputs[0]], outputNames: ["x2"])
            try fixture.graph.insert(relu, before: matmul)
            try matmul.setInput(0, to: relu.outputs[0])
        }).count, 1)
    }

    func testFoldMatMulTransposeBatchNorm() throws {
        // Rows of w scale by k = (2, 3): ((2, 4), (9, 12)), used with transB = 1; c = (-1.5, -1).
        try assertFolds("fold-matmul-transpose-batchnorm", Self.matMul(transposed: [1, 0]), """
            g (float[1,2] x) => (? z)
               <float[2,2] z_w2 = {2, 4, 9, 12}, float[2] z_c = {-1.5, -1}>
            {
               z = Gemm <transB = 1> (x, z_w2, z_c)
            }

            """)
    }

    func testFoldMatMulTransposeBatchNormMustNotFire() throws {
        let rule = "fold-matmul-transpose-batchnorm"
        try assertCommonRefusals(rule, weight: "w", shapeCheck: "shape(scale) == [dim(w, 0)]", Self.matMul(transposed: [1, 0]))
        // The Transpose read elsewhere too, and a Transpose that is not [1, 0].
        XCTAssertEqual(try reasons(rule, Self.matMul(transposed: [1, 0]), change: { fixture, matmul in
            try fixture.graph.addOutput(matmul.inputs[1]!, info: ValueInfo(type: nil))
        }), ["wt is a graph output"])
        XCTAssertEqual(try reasons(rule, Self.matMul(transposed: [0, 1])), ["Transpose 'wt' attribute perm is not [1, 0]"])
    }
}
