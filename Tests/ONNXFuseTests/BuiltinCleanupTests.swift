import XCTest
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// The built-in clean-up rules (Sources/ONNXFuse/Rules/cleanup.rules) on small graphs built in
/// code: what they become, and where they must not fire.
final class BuiltinCleanupTests: XCTestCase {
    static var rules: [CompiledRule] {
        let file = RuleFiles.builtinFiles.first { $0.name == "cleanup.rules" }!
        return try! RuleFiles.rules(in: file.text, file: "builtin:cleanup.rules")
    }

    /// A model with one graph `g`, opset `opset`, built by `build`.
    struct Case {
        let graph = Graph(name: "g")
        let model: Model

        init(opset: Int64 = 17, _ build: (Graph) throws -> Void) throws {
            model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: opset)], graph: graph)
            try build(graph)
        }

        /// Runs the clean-up rules (with explanations unless `explain` is false); returns the report.
        func run(explain: Bool = true) throws -> OptimizationReport {
            var options = OptimizationOptions()
            options.explain = explain
            let report = try optimize(model, rules: BuiltinCleanupTests.rules, options: options)
            try model.verify()
            return report
        }

        var text: String { Printer().print(graph) }
    }

    static func float(_ dims: Int64...) -> ValueInfo { ValueInfo(type: .tensor(.float, dims.map { .value($0) })) }

    @discardableResult
    static func node(_ graph: Graph, _ op: String, _ inputs: [Value?], _ output: String,
                     _ attributes: [Attribute] = [], outputs: [String]? = nil) throws -> Node {
        let node = Node(opType: op, name: output, inputs: inputs, outputNames: outputs ?? [output], attributes: attributes)
        try graph.append(node)
        return node
    }

    /// An If node reading a new graph input `cond`, with `body` as its then-branch, whose
    /// output `output` is a graph output.
    static func ifNode(_ graph: Graph, then body: Graph, output: String) throws {
        let cond = graph.addInput(name: "cond", info: ValueInfo(type: .tensor(.bool, [])))
        let branch = Node(opType: "If", name: "if", inputs: [cond], outputNames: [output],
                          attributes: [Attribute(name: "then_branch", value: .graph(body))])
        try graph.append(branch)
        try graph.addOutput(branch.outputs[0]!, info: float(2))
    }

    static func ints(_ graph: Graph, _ name: String, _ values: [Int64]) -> Value {
        graph.addInitializer(name: name, tensor: Tensor(dataType: .int64, dims: [Int64(values.count)], values: values))
    }

    func testTheFileLoadsInOrder() {
        XCTAssertEqual(Self.rules.map(\.name), [
            "eliminate-identity", "remove-lossless-cast-round-trip", "eliminate-dropout", "cancel-transpose-transpose", "fuse-transpose-transpose",
            "fold-transpose-of-constant",
            "cancel-unsqueeze-squeeze", "cancel-squeeze-unsqueeze",
            "fuse-reshape-reshape", "fuse-reshape-reshape-v1",
            "remove-dead-node", "remove-dead-node-ml", "remove-unused-initializer", "remove-unused-opset-import",
        ])
        for rule in Self.rules { XCTAssertFalse(rule.comment.isEmpty, rule.name) }
    }

    // MARK: Cast round trips

    /// x (of `type`) → Cast to `through` → Cast back to `type` → Neg; checked with every rewrite
    /// verified (RuleTestGraph), on large and fine values too.
    func castRoundTrip(_ type: DataType, through: DataType) throws -> (fired: [String], ops: [String], reasons: [String]) {
        let test = RuleTestGraph(rules: Self.rules)
        let x = test.graph.addInput(name: "x", info: ValueInfo(type: .tensor(type, [.value(4), .value(8)])))
        let a = try Self.node(test.graph, "Cast", [x], "a", [Attribute(name: "to", value: .int(Int64(through.rawValue)))])
        let y = try Self.node(test.graph, "Cast", [a.outputs[0]], "y", [Attribute(name: "to", value: .int(Int64(type.rawValue)))])
        try test.output(Self.node(test.graph, "Neg", [y.outputs[0]], "out").outputs[0]!)
        let report = try test.run()
        return (report.fired.map(\.rule), test.graph.nodes.map(\.opType),
                report.explanations.filter { $0.rule == "remove-lossless-cast-round-trip" && $0.node == "y" }.map(\.reason))
    }

    func testLosslessCastRoundTripsGo() throws {
        for (type, through) in [(DataType.float, DataType.double), (.float16, .float), (.bfloat16, .double), (.int32, .int64),
                                (.int8, .float16), (.uint8, .int16), (.bool, .int32), (.uint16, .float)] {
            let outcome = try castRoundTrip(type, through: through)
            XCTAssertEqual(outcome.fired, ["remove-lossless-cast-round-trip"], "\(type) through \(through)")
            XCTAssertEqual(outcome.ops, ["Neg"], "\(type) through \(through)")
        }
    }

    func testLossyCastRoundTripsStay() throws {
        // A narrower type, an int64 through double (above 2^53), a float through an integer.
        for (type, through) in [(DataType.float, DataType.float16), (.float, .bfloat16), (.int32, .int8), (.int64, .double),
                                (.float, .int32), (.int32, .float), (.double, .float)] {
            let outcome = try castRoundTrip(type, through: through)
            XCTAssertEqual(outcome.fired, [], "\(type) through \(through)")
            XCTAssertEqual(outcome.ops, ["Cast", "Cast", "Neg"], "\(type) through \(through)")
            XCTAssertEqual(outcome.reasons.count, 1, "\(type) through \(through)")
            XCTAssertTrue(outcome.reasons.first?.hasPrefix("`[dtype(x), t1] in") ?? false, "\(outcome.reasons)")
        }
    }

    // MARK: Identity

    func testIdentityInsideAndBeforeAGraphOutput() throws {
        let c = try Case { g in
            let x = g.addInput(name: "x", info: Self.float(2))
            let r = try Self.node(g, "Relu", [x], "r")
            let i = try Self.node(g, "Identity", [r.outputs[0]], "i")
            let n = try Self.node(g, "Neg", [i.outputs[0]], "n")
            let y = try Self.node(g, "Identity", [n.outputs[0]], "y")
            try g.addOutput(y.outputs[0]!, info: Self.float(2))
        }
        let report = try c.run()
        XCTAssertEqual(report.fired.map(\.rule), ["eliminate-identity"])
        XCTAssertEqual(report.fired.first?.count, 2)
        XCTAssertEqual(c.text, """
            g (float[2] x) => (float[2] y)
            {
               r = Relu (x)
               y = Neg (r)
            }

            """)
    }

    func testIdentityOfAGraphInputToAGraphOutputStays() throws {
        let c = try Case { g in
            let x = g.addInput(name: "x", info: Self.float(2))
            let y = try Self.node(g, "Identity", [x], "y")
            try g.addOutput(y.outputs[0]!, info: Self.float(2))
        }
        let before = c.text
        let report = try c.run()
        XCTAssertTrue(report.fired.isEmpty)
        XCTAssertEqual(c.text, before)
        XCTAssertEqual(report.explanations.map(\.description),
                       ["eliminate-identity at node 'y': y is a graph output and what replaces it cannot take its name"])
    }

    func testTransposesBetweenAGraphInputAndAGraphOutputBecomeAnIdentity() throws {
        // x -> Transpose -> Transpose -> y: x cannot take y's name, so an Identity keeps it and
        // both Transposes go.
        let c = try Case { g in
            let x = g.addInput(name: "x", info: Self.float(2, 3))
            let t1 = try Self.node(g, "Transpose", [x], "t1", [Attribute(name: "perm", value: .ints([1, 0]))])
            let y = try Self.node(g, "Transpose", [t1.outputs[0]], "y", [Attribute(name: "perm", value: .ints([1, 0]))])
            try g.addOutput(y.outputs[0]!, info: Self.float(2, 3))
        }
        var options = OptimizationOptions()
        options.verifyRewrites = true
        let report = try optimize(c.model, rules: Self.rules, options: options)
        try c.model.verify()
        XCTAssertEqual(report.fired.map(\.rule), ["cancel-transpose-transpose"])
        XCTAssertEqual(report.verification?.failures.count, 0)
        XCTAssertEqual(report.verification?.rules.first?.checked, 1)
        XCTAssertEqual(c.text, """
            g (float[2,3] x) => (float[2,3] y)
            {
               y = Identity (x)
            }

            """)
        // The Identity left is the one eliminate-identity refuses to remove (above).
        XCTAssertTrue(try c.run().fired.isEmpty)
    }

    // MARK: Dropout

    /// x -> Dropout(x, inputs...) -> Relu -> z.
    func dropout(opset: Int64, inputs: (Graph) throws -> [Value?] = { _ in [] }, attributes: [Attribute] = [],
                 maskUsed: Bool = false) throws -> Case {
        try Case(opset: opset) { g in
            let x = g.addInput(name: "x", info: Self.float(2))
            let d = try Self.node(g, "Dropout", [x] + inputs(g), "d", attributes, outputs: ["d", "mask"])
            let z = try Self.node(g, "Relu", [d.outputs[0]], "z")
            try g.addOutput(z.outputs[0]!, info: Self.float(2))
            if maskUsed { try g.addOutput(d.outputs[1]!, info: ValueInfo(type: nil)) }
        }
    }

    static let removedDropout = """
        g (float[2] x) => (float[2] z)
        {
           z = Relu (x)
        }

        """

    func testDropoutInInferenceModeIsRemoved() throws {
        let cases = [
            // Opset 12+: training_mode absent, or a constant false; ratio absent or present.
            try dropout(opset: 17),
            try dropout(opset: 13, inputs: { g in
                [g.addInitializer(name: "ratio", tensor: Tensor(dataType: .float, dims: [], values: [Float(0.5)]))]
            }),
            try dropout(opset: 17, inputs: { g in
                [nil, g.addInitializer(name: "tm", tensor: Tensor(dataType: .bool, dims: [], values: [false]))]
            }),
            // Opsets 7 to 11: always inference.
            try dropout(opset: 10),
            // Opsets 1 to 6: is_test = 1.
            try dropout(opset: 6, attributes: [Attribute(name: "is_test", value: .int(1))]),
        ]
        for (index, c) in cases.enumerated() {
            let report = try c.run()
            XCTAssertEqual(report.fired.map(\.rule), ["eliminate-dropout"], "case \(index)")
            XCTAssertEqual(c.text, Self.removedDropout, "case \(index)")
        }
    }

    func testDropoutMustNotFire() throws {
        func reasons(_ c: Case, file: StaticString = #filePath, line: UInt = #line) throws -> [String] {
            let before = c.text
            let report = try c.run()
            XCTAssertTrue(report.fired.isEmpty, file: file, line: line)
            XCTAssertEqual(c.text, before, "nothing changes", file: file, line: line)
            return report.explanations.map(\.reason)
        }
        // Training mode: a constant true.
        XCTAssertEqual(try reasons(dropout(opset: 17, inputs: { g in
            [nil, g.addInitializer(name: "tm", tensor: Tensor(dataType: .bool, dims: [], values: [true]))]
        })), ["`default(tm, 0) == 0` is false"])
        // Training mode: not a constant.
        XCTAssertEqual(try reasons(dropout(opset: 17, inputs: { g in
            [nil, g.addInput(name: "training", info: ValueInfo(type: .tensor(.bool, [])))]
        })), ["tm ('training') is a graph input"])
        // Opsets 1 to 6 without is_test, or with is_test = 0: training.
        XCTAssertEqual(try reasons(dropout(opset: 6)), ["`opset() >= 7 || t == 1` is false"])
        XCTAssertEqual(try reasons(dropout(opset: 6, attributes: [Attribute(name: "is_test", value: .int(0))])),
                       ["`opset() >= 7 || t == 1` is false"])
        // The mask is used.
        XCTAssertEqual(try reasons(dropout(opset: 17, maskUsed: true)).count, 1)
    }

    // MARK: Transpose

    /// x[2,3,4] -> Transpose(p1) -> Transpose(p2) -> Relu -> z.
    func transposes(_ p1: [Int64]?, _ p2: [Int64]?) throws -> Case {
        try Case { g in
            let x = g.addInput(name: "x", info: Self.float(2, 3, 4))
            let t1 = try Self.node(g, "Transpose", [x], "t1", p1.map { [Attribute(name: "perm", value: .ints($0))] } ?? [])
            let t2 = try Self.node(g, "Transpose", [t1.outputs[0]], "t2", p2.map { [Attribute(name: "perm", value: .ints($0))] } ?? [])
            let z = try Self.node(g, "Relu", [t2.outputs[0]], "z")
            try g.addOutput(z.outputs[0]!, info: ValueInfo(type: nil))
        }
    }

    func testTransposePairs() throws {
        // Inverse permutations cancel.
        let cancel = try transposes([1, 2, 0], [2, 0, 1])
        XCTAssertEqual(try cancel.run().fired.map(\.rule), ["cancel-transpose-transpose"])
        XCTAssertEqual(cancel.text, """
            g (float[2,3,4] x) => (? z)
            {
               z = Relu (x)
            }

            """)
        // Others compose: item i is p1[p2[i]].
        let fuse = try transposes([1, 0, 2], [0, 2, 1])
        XCTAssertEqual(try fuse.run().fired.map(\.rule), ["fuse-transpose-transpose"])
        XCTAssertEqual(fuse.text, """
            g (float[2,3,4] x) => (? z)
            {
               t2 = Transpose <perm = [1, 2, 0]> (x)
               z = Relu (t2)
            }

            """)
        // Three in a row: the first two compose, then the result cancels with the third.
        let three = try Case { g in
            let x = g.addInput(name: "x", info: Self.float(2, 3, 4))
            var last = x
            for (index, perm) in [[Int64(1), 0, 2], [0, 2, 1], [2, 0, 1]].enumerated() {
                last = try Self.node(g, "Transpose", [last], "t\(index)", [Attribute(name: "perm", value: .ints(perm))]).outputs[0]!
            }
            try Self.node(g, "Relu", [last], "z")
            try g.addOutput(g.lastNode!.outputs[0]!, info: ValueInfo(type: nil))
        }
        let report = try three.run()
        XCTAssertEqual(Set(report.fired.map { $0.rule }), ["fuse-transpose-transpose", "cancel-transpose-transpose"])
        XCTAssertTrue(three.text.contains("z = Relu (x)"), three.text)
    }

    func testTransposeWithoutPermIsLeftAlone() throws {
        let c = try transposes(nil, [2, 1, 0])
        let before = c.text
        XCTAssertTrue(try c.run().fired.isEmpty)
        XCTAssertEqual(c.text, before)
        // Permutations of different lengths (an invalid model) are refused, not folded.
        let mismatched = try transposes([1, 0], [2, 0, 1])
        XCTAssertTrue(try mismatched.run().fired.isEmpty)
    }

    // MARK: Squeeze and Unsqueeze

    /// x -> Relu -> first(axes1) -> second(axes2) -> Relu -> z, axes as inputs (opset 13+) or
    /// attributes (opset 11).
    func pair(_ first: String, _ axes1: [Int64], _ second: String, _ axes2: [Int64], opset: Int64 = 17,
              x: [Int64] = [2, 3]) throws -> Case {
        try Case(opset: opset) { g in
            let input = g.addInput(name: "x", info: ValueInfo(type: .tensor(.float, x.map { .value($0) })))
            let r = try Self.node(g, "Relu", [input], "r")
            let a: Node, b: Node
            if opset >= 13 {
                a = try Self.node(g, first, [r.outputs[0], Self.ints(g, "axes1", axes1)], "a")
                b = try Self.node(g, second, [a.outputs[0], Self.ints(g, "axes2", axes2)], "b")
            } else {
                a = try Self.node(g, first, [r.outputs[0]], "a", [Attribute(name: "axes", value: .ints(axes1))])
                b = try Self.node(g, second, [a.outputs[0]], "b", [Attribute(name: "axes", value: .ints(axes2))])
            }
            let z = try Self.node(g, "Neg", [b.outputs[0]], "z")
            try g.addOutput(z.outputs[0]!, info: ValueInfo(type: nil))
        }
    }

    static let cancelled = """
        g (float[2,3] x) => (? z)
        {
           r = Relu (x)
           z = Neg (r)
        }

        """

    func testUnsqueezeSqueezeCancel() throws {
        // Axes as inputs (opset 17) and as attributes (opset 11): the rule's two forms.
        for opset in [Int64(17), 11] {
            let c = try pair("Unsqueeze", [0, 2], "Squeeze", [0, 2], opset: opset)
            XCTAssertEqual(try c.run().fired.map(\.rule), ["cancel-unsqueeze-squeeze"])
            XCTAssertEqual(c.text, Self.cancelled)
        }
    }

    func testSqueezeUnsqueezeCancel() throws {
        for opset in [Int64(17), 11] {
            let c = try pair("Squeeze", [-2], "Unsqueeze", [-2], opset: opset, x: [2, 1, 3])
            XCTAssertEqual(try c.run().fired.map(\.rule), ["cancel-squeeze-unsqueeze"])
            XCTAssertEqual(c.text, """
                g (float[2,1,3] x) => (? z)
                {
                   r = Relu (x)
                   z = Neg (r)
                }

                """)
        }
    }

    func testSqueezeOfOtherAxesStays() throws {
        for opset: Int64 in [17, 11] {
            let c = try pair("Unsqueeze", [0, 1], "Squeeze", [0], opset: opset)
            let before = c.text
            let report = try c.run()
            XCTAssertTrue(report.fired.isEmpty)
            XCTAssertEqual(c.text, before)
            // The other rules' roots match too, and say why their patterns do not.
            // The form of the model's opset says which condition failed, and where in the file.
            let form = opset >= 13 ? "form 1 of 2" : "form 2 of 2"
            XCTAssertTrue(report.explanations.contains {
                $0.rule == "cancel-unsqueeze-squeeze" && $0.reason.hasPrefix(form) && $0.reason.hasSuffix("`a1 == a2` is false")
                    && $0.ruleLine?.hasPrefix("builtin:cleanup.rules:") == true
            },
                          "\(report.explanations.map(\.description))")
            let reverse = try pair("Squeeze", [1], "Unsqueeze", [0], opset: opset, x: [2, 1, 3])
            XCTAssertTrue(try reverse.run().fired.isEmpty)
        }
        // Axes that are not constants.
        let c = try Case { g in
            let x = g.addInput(name: "x", info: Self.float(2, 3))
            let axes = g.addInput(name: "axes", info: ValueInfo(type: .tensor(.int64, [.value(1)])))
            let r = try Self.node(g, "Relu", [x], "r")
            let a = try Self.node(g, "Unsqueeze", [r.outputs[0], axes], "a")
            let b = try Self.node(g, "Squeeze", [a.outputs[0], axes], "b")
            try Self.node(g, "Neg", [b.outputs[0]], "z")
            try g.addOutput(g.lastNode!.outputs[0]!, info: ValueInfo(type: nil))
        }
        let report = try c.run()
        XCTAssertTrue(report.fired.isEmpty)
        XCTAssertTrue(report.explanations.contains { $0.node == "b" && $0.reason.hasSuffix("a1 ('axes') is a graph input") },
                      "\(report.explanations.map(\.description))")
    }

    // MARK: Reshape

    /// x[2,3,4] -> Reshape(s1) -> Reshape(s2) -> Neg -> z, the shapes as initializers (opset
    /// 17) or attributes (opset 4); `allowzero` on the second Reshape when given.
    func reshapes(_ s1: [Int64], _ s2: [Int64], opset: Int64 = 17, allowzero: Int64? = nil) throws -> Case {
        try Case(opset: opset) { g in
            let x = g.addInput(name: "x", info: Self.float(2, 3, 4))
            let second = allowzero.map { [Attribute(name: "allowzero", value: .int($0))] } ?? []
            let a: Node, b: Node
            if opset >= 5 {
                a = try Self.node(g, "Reshape", [x, Self.ints(g, "s1", s1)], "a")
                b = try Self.node(g, "Reshape", [a.outputs[0], Self.ints(g, "s2", s2)], "b", second)
            } else {
                a = try Self.node(g, "Reshape", [x], "a", [Attribute(name: "shape", value: .ints(s1))])
                b = try Self.node(g, "Reshape", [a.outputs[0]], "b", [Attribute(name: "shape", value: .ints(s2))])
            }
            let z = try Self.node(g, "Neg", [b.outputs[0]], "z")
            try g.addOutput(z.outputs[0]!, info: ValueInfo(type: nil))
        }
    }

    func testReshapePairsMerge() throws {
        // The second shape's -1 is inferred from x as it was from the first Reshape's output;
        // the first shape may hold 0 and -1 (it goes away), and so does its initializer.
        let c = try reshapes([0, -1], [4, -1])
        XCTAssertEqual(try c.run().fired.map(\.rule), ["fuse-reshape-reshape"])
        XCTAssertEqual(c.text, """
            g (float[2,3,4] x) => (? z)
               <int64[2] s2 = {4, -1}>
            {
               b = Reshape (x, s2)
               z = Neg (b)
            }

            """)
        // With allowzero = 1 a 0 is a literal size, and the attribute stays on the merged node.
        let literalZero = try reshapes([6, 4], [0, 24], allowzero: 1)
        XCTAssertEqual(try literalZero.run().fired.map(\.rule), ["fuse-reshape-reshape"])
        XCTAssertTrue(literalZero.text.contains("b = Reshape <allowzero = 1> (x, s2)"), literalZero.text)
        // Opsets 1 to 4: the shapes are attributes.
        let v1 = try reshapes([6, 4], [3, 8], opset: 4)
        XCTAssertEqual(try v1.run().fired.map(\.rule), ["fuse-reshape-reshape-v1"])
        XCTAssertEqual(v1.text, """
            g (float[2,3,4] x) => (? z)
            {
               b = Reshape <shape = [3, 8]> (x)
               z = Neg (b)
            }

            """)
    }

    func testReshapeCopyingADimensionStays() throws {
        // A 0 in the second shape copies a dimension of the first Reshape's output (6 here, not
        // x's 2), so merging would change the result.
        for opset: Int64 in [17, 4] {
            let c = try reshapes([6, 4], [0, 4], opset: opset)
            let before = c.text
            let report = try c.run()
            XCTAssertTrue(report.fired.isEmpty, "opset \(opset)")
            XCTAssertEqual(c.text, before)
            XCTAssertTrue(report.explanations.contains { $0.reason == "`!(0 in s2)` is false" || $0.reason.contains("0 in s2") },
                          "\(report.explanations.map(\.description))")
        }
        // allowzero = 0 written out is the default.
        XCTAssertTrue(try reshapes([6, 4], [0, 4], allowzero: 0).run().fired.isEmpty)
    }

    func testReshapeWithAShapeNotConstantOrAnIntermediateUsedTwiceStays() throws {
        let input = try Case { g in
            let x = g.addInput(name: "x", info: Self.float(2, 3, 4))
            let shape = g.addInput(name: "shape", info: ValueInfo(type: .tensor(.int64, [.value(2)])))
            let a = try Self.node(g, "Reshape", [x, Self.ints(g, "s1", [6, 4])], "a")
            try Self.node(g, "Reshape", [a.outputs[0], shape], "b")
            try g.addOutput(g.lastNode!.outputs[0]!, info: ValueInfo(type: nil))
        }
        let report = try input.run()
        XCTAssertTrue(report.fired.isEmpty)
        XCTAssertTrue(report.explanations.contains { $0.rule == "fuse-reshape-reshape" && $0.node == "b" && $0.reason == "s2 ('shape') is a graph input" },
                      "\(report.explanations.map(\.description))")

        let twice = try reshapes([6, 4], [4, 6])
        try twice.graph.addOutput(twice.graph.nodes.first { $0.name == "a" }!.outputs[0]!, info: ValueInfo(type: nil))
        let before = twice.text
        XCTAssertTrue(try twice.run().fired.isEmpty)
        XCTAssertEqual(twice.text, before)
    }

    // MARK: Dead nodes, unused initializers and imports

    func testDeadNodesGoAndLiveOnesStay() throws {
        // Without explanations the engine rejects one-node matches early; the result is the same.
        for explain in [true, false] {
            try deadChainGoesWithWhatOnlyItRead(explain: explain)
            try nodesWithAnOutputInUseStay(explain: explain)
        }
    }

    /// `s = com.example.Side(x); t = Neg(s)`, t read by nothing: the Neg goes, and with it the
    /// last reader of Side, which stays (an operator of another domain may have effects). The
    /// engine removes no node of its own accord: with remove-dead-node disabled, both stay.
    func testDeadNodesOfOtherDomainsStayAndRemovalIsTheRulesAlone() throws {
        for disabled in [Set<String>(), ["remove-dead-node"]] {
            let c = try Case { g in
                let x = g.addInput(name: "x", info: Self.float(2))
                let y = try Self.node(g, "Relu", [x], "y")
                try g.addOutput(y.outputs[0]!, info: Self.float(2))
                let side = Node(opType: "Side", domain: "com.example", name: "side", inputs: [x], outputNames: ["s"])
                try g.append(side)
                try Self.node(g, "Neg", [side.outputs[0]], "t")
            }
            c.model.opsetImports.append(OpsetImport(domain: "com.example", version: 1))
            var options = OptimizationOptions()
            options.disabled = disabled
            let report = try optimize(c.model, rules: Self.rules, options: options)
            try c.model.verify()
            XCTAssertEqual(report.fired.map { "\($0.rule) ×\($0.count)" }, disabled.isEmpty ? ["remove-dead-node ×1"] : [])
            XCTAssertEqual(c.graph.nodes.map(\.opType), disabled.isEmpty ? ["Relu", "Side"] : ["Relu", "Side", "Neg"])
        }
    }

    func deadChainGoesWithWhatOnlyItRead(explain: Bool) throws {
        let c = try Case { g in
            let x = g.addInput(name: "x", info: Self.float(2))
            let y = try Self.node(g, "Relu", [x], "y")
            try g.addOutput(y.outputs[0]!, info: Self.float(2))
            let s = try Self.node(g, "Sigmoid", [x], "s")
            let bias = g.addInitializer(name: "bias", tensor: Tensor(dataType: .float, dims: [2], values: [Float(1), 2]))
            let a = try Self.node(g, "Add", [s.outputs[0], bias], "a")
            try Self.node(g, "Neg", [a.outputs[0]], "n")
            // Two outputs, neither read.
            try Self.node(g, "Split", [x], "p", outputs: ["p0", "p1"])
        }
        let report = try c.run(explain: explain)
        XCTAssertEqual(report.fired.map(\.rule), ["remove-dead-node"])
        XCTAssertEqual(c.text, """
            g (float[2] x) => (float[2] y)
            {
               y = Relu (x)
            }

            """)
        XCTAssertTrue(c.graph.initializers.isEmpty)
        XCTAssertTrue(report.explanations.isEmpty, "a rule rooted at any operator explains nothing")
    }

    func nodesWithAnOutputInUseStay(explain: Bool) throws {
        let c = try Case { g in
            let x = g.addInput(name: "x", info: Self.float(2))
            // One output of two read.
            let split = try Self.node(g, "Split", [x], "p", outputs: ["p0", "p1"])
            let y = try Self.node(g, "Relu", [split.outputs[1]], "y")
            try g.addOutput(y.outputs[0]!, info: Self.float(2))
            // A graph output that nothing else reads.
            let z = try Self.node(g, "Neg", [x], "z")
            try g.addOutput(z.outputs[0]!, info: Self.float(2))
            // Read only inside a subgraph.
            let outer = try Self.node(g, "Abs", [x], "outer")
            let body = Graph(name: "then")
            let inner = Node(opType: "Neg", name: "inner", inputs: [outer.outputs[0]], outputNames: ["inner"])
            try body.append(inner)
            try body.addOutput(inner.outputs[0]!, info: Self.float(2))
            try Self.ifNode(g, then: body, output: "w")
        }
        let before = c.text
        let report = try c.run(explain: explain)
        XCTAssertTrue(report.fired.isEmpty)
        XCTAssertEqual(c.text, before)
    }

    func testDeadNodesOfOtherDomainsAndInSubgraphs() throws {
        let c = try Case { g in
            let x = g.addInput(name: "x", info: Self.float(2))
            let body = Graph(name: "then")
            let deadInside = Node(opType: "Neg", name: "dead_inside", inputs: [x], outputNames: ["dead_inside"])
            try body.append(deadInside)
            let live = Node(opType: "Abs", name: "live_inside", inputs: [x], outputNames: ["live_inside"])
            try body.append(live)
            try body.addOutput(live.outputs[0]!, info: Self.float(2))
            try Self.ifNode(g, then: body, output: "y")
            try g.append(Node(opType: "Scaler", domain: "ai.onnx.ml", name: "ml", inputs: [x], outputNames: ["ml"]))
            try g.append(Node(opType: "Custom", domain: "my.domain", name: "custom", inputs: [x], outputNames: ["custom"]))
        }
        let report = try c.run()
        XCTAssertEqual(report.fired.map(\.rule), ["remove-dead-node", "remove-dead-node-ml"])
        XCTAssertEqual(c.graph.nodes.map(\.opType), ["If", "Custom"])
        XCTAssertEqual(c.graph.firstNode!.subgraphs.first!.nodes.map(\.opType), ["Abs"])
    }

    func testUnusedInitializers() throws {
        let c = try Case { g in
            let x = g.addInput(name: "x", info: Self.float(2))
            _ = Self.ints(g, "unused", [1, 2])
            // Overridable: part of the signature.
            let overridable = g.addInput(name: "overridable", info: ValueInfo(type: .tensor(.int64, [.value(2)])))
            try g.setInitializer(Tensor(dataType: .int64, dims: [2], values: [Int64(1), 2]), forInput: overridable)
            // A graph output.
            try g.addOutput(Self.ints(g, "as_output", [3]), info: ValueInfo(type: nil))
            // Read only inside a subgraph.
            let shape = Self.ints(g, "read_inside", [2])
            let body = Graph(name: "then")
            let inner = Node(opType: "Reshape", name: "inner", inputs: [x, shape], outputNames: ["inner"])
            try body.append(inner)
            try body.addOutput(inner.outputs[0]!, info: Self.float(2))
            try Self.ifNode(g, then: body, output: "y")
            // An unused initializer of a subgraph.
            body.addInitializer(name: "unused_inside", tensor: Tensor(dataType: .int64, dims: [1], values: [Int64(0)]))
        }
        let report = try c.run()
        XCTAssertEqual(report.fired.map(\.rule), ["remove-unused-initializer"])
        XCTAssertEqual(report.fired.first?.count, 2)
        XCTAssertEqual(c.graph.initializers.map(\.name), ["overridable", "as_output", "read_inside"])
        XCTAssertTrue(c.graph.firstNode!.subgraphs.first!.initializers.isEmpty)
    }

    func testTrainingInformationKeepsTheMainGraphsInitializersAndImports() throws {
        let c = try Case { g in
            let x = g.addInput(name: "x", info: Self.float(2))
            let y = try Self.node(g, "Relu", [x], "y")
            try g.addOutput(y.outputs[0]!, info: Self.float(2))
            _ = Self.ints(g, "trained", [1])
            let dead = try Self.node(g, "Neg", [Self.ints(g, "read_by_dead_node", [1])], "dead")
            _ = dead
        }
        c.model.opsetImports.append(OpsetImport(domain: "ai.onnx.ml", version: 3))
        c.model.opaqueReferences.hasTrainingInfo = true
        let report = try c.run()
        XCTAssertEqual(report.fired.map(\.rule), ["remove-dead-node"])
        XCTAssertEqual(c.graph.initializers.map(\.name), ["trained", "read_by_dead_node"])
        XCTAssertEqual(c.model.opsetImports.map(\.domain), ["", "ai.onnx.ml"])
    }

    func testUnusedOpsetImports() throws {
        let c = try Case { g in
            let x = g.addInput(name: "x", info: Self.float(2))
            let body = Graph(name: "then")
            let inner = Node(opType: "Scaler", domain: "ai.onnx.ml", name: "inner", inputs: [x], outputNames: ["inner"])
            try body.append(inner)
            try body.addOutput(inner.outputs[0]!, info: Self.float(2))
            try Self.ifNode(g, then: body, output: "y")
        }
        // The default domain is imported as "ai.onnx" and no node of the main graph uses it.
        c.model.opsetImports = [OpsetImport(domain: "ai.onnx", version: 17), OpsetImport(domain: "unused.domain", version: 1),
                                OpsetImport(domain: "ai.onnx.ml", version: 3), OpsetImport(domain: "of.a.function", version: 1),
                                OpsetImport(domain: "com.microsoft", version: 1)]
        c.model.opaqueReferences.domains = ["of.a.function"]
        let report = try c.run()
        XCTAssertEqual(report.fired.map(\.rule), ["remove-unused-opset-import"])
        XCTAssertEqual(report.fired.first?.count, 2)
        XCTAssertEqual(c.model.opsetImports.map(\.domain), ["ai.onnx", "ai.onnx.ml", "of.a.function"])
    }

    func testRemovingADeadReaderLetsAFoldFire() throws {
        let c = RuleTestGraph(rules: RuleFiles.builtin)
        let x = c.input("x", [1, 1, 2, 2])
        let w = c.constant("w", [2], [1, 1, 1, 1])
        let conv = Node(opType: "Conv", name: "conv", inputs: [x, w], outputNames: ["conv"])
        try c.graph.append(conv)
        let y = conv.outputs[0]!
        let bn = Node(opType: "BatchNormalization", name: "bn",
                      inputs: [y, c.constant("s", [2], [1]), c.constant("b", [1], [1]), c.constant("m", [0], [1]), c.constant("v", [1], [1])],
                      outputNames: ["z"])
        try c.graph.append(bn)
        try c.output(bn.outputs[0]!)
        _ = try c.node("Sigmoid", [y], "dead")
        let report = try c.run()
        // (merge-duplicates shares the equal initializers b and v.)
        XCTAssertEqual(report.fired.map(\.rule).sorted(), ["fold-conv-batchnorm", "merge-duplicates", "remove-dead-node"])
        XCTAssertEqual(c.graph.nodes.map(\.opType), ["Conv"])
    }
}

extension BuiltinCleanupTests {
    /// x [2, 3] · Transpose(w) with w [4, 3]; `shared`: w is read by a Relu too.
    func transposeOfConstant(shared: Bool) throws -> RuleTestGraph {
        let test = RuleTestGraph(rules: Self.rules)
        let x = test.input("x", [2, 3])
        let w = test.constant("w", (0..<12).map { Float($0) }, [4, 3])
        let t = Node(opType: "Transpose", name: "t", inputs: [w], outputNames: ["wt"], attributes: [Attribute(name: "perm", value: .ints([1, 0]))])
        try test.graph.append(t)
        try test.output(test.node("MatMul", [x, t.outputs[0]!], "y"))
        if shared { try test.output(test.node("Relu", [w], "other")) }
        return test
    }

    func testATransposeOfAConstantFoldsIntoIt() throws {
        let test = try transposeOfConstant(shared: false)
        XCTAssertEqual(try test.run().fired.map(\.rule), ["fold-transpose-of-constant"])
        XCTAssertEqual(test.graph.nodes.map(\.opType), ["MatMul"])
        let folded = try XCTUnwrap(test.graph.firstNode?.inputs[1]?.constantTensor(freezeInitializerInputs: false))
        XCTAssertEqual(folded.dims, [3, 4])
        XCTAssertEqual(folded.doubleValues(), [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11])
    }

    func testATransposeOfASharedConstantStays() throws {
        // Folding would keep both the constant and its transposed copy.
        XCTAssertEqual(try transposeOfConstant(shared: true).reasonsNothingFires(for: "fold-transpose-of-constant"), ["`users(w) == 1` is false"])
    }
}
