import XCTest
import ONNXFuseIR
@testable import ONNXFuseRewrite

/// The engine on toy operators (A, B, C, ...): no ONNX semantics anywhere.
final class EngineTests: XCTestCase {
    // MARK: Building graphs and rules

    final class Builder {
        let graph = Graph(name: "g")
        lazy var model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)

        func input(_ name: String) -> Value { graph.addInput(name: name, info: ValueInfo(type: nil)) }

        func constant(_ name: String, _ values: [Float]) -> Value {
            graph.addInitializer(name: name, tensor: Tensor(dataType: .float, dims: [Int64(values.count)], values: values))
        }

        @discardableResult
        func node(_ op: String, _ inputs: [Value?], _ outputs: [String], name: String? = nil, in target: Graph? = nil) throws -> Node {
            let node = Node(opType: op, name: name ?? outputs.first, inputs: inputs, outputNames: outputs)
            try (target ?? graph).append(node)
            return node
        }

        func output(_ value: Value?) throws { try graph.addOutput(value!, info: ValueInfo(type: nil)) }

        /// `count` pairs `a_i = A(...); b_i = B(a_i)` in a chain from `value`; the last B's output.
        func chainOfPairs(_ count: Int, from value: Value) throws -> Value {
            var value = value
            for i in 0..<count {
                let a = try node("A", [value], ["a\(i)"])
                value = try node("B", [a.outputs[0]], ["b\(i)"]).outputs[0]!
            }
            return value
        }

        var text: String { Printer().print(graph) }

        /// Applies `rules` to the model (explaining refusals when `explain` is set, at most `cap`
        /// rewrites when given), checks that the model still verifies, and returns the report.
        func rewrite(with rules: [RewriteRule], explain: Bool = true, cap: Int? = nil,
                     passThrough: (opType: String, domain: String)? = nil) throws -> RewriteReport {
            var options = RewriteOptions()
            options.explain = explain
            options.maximumRewrites = cap
            options.passThroughOperator = passThrough
            let report = applyRules(rules, to: model, options: options)
            try model.verify()
            return report
        }
    }

    /// `match { y = A(x); z = B(y) }  replace { z = C(x) }`, or with other names.
    func chainRule(name: String = "a-b-to-c", benefit: Int = 1, first: String = "A", second: String = "B", into: String = "C") throws -> RewriteRule {
        let pattern = try Pattern(nodes: [
            PatternNode(opType: first, inputs: [.variable(0)], outputs: [.variable(1)]),
            PatternNode(opType: second, inputs: [.variable(1)], outputs: [.variable(2)]),
        ], root: 1, valueNames: ["x", "y", "z"], attributeNames: [])
        let replacement = Replacement(nodes: [ReplacementNode(opType: into, inputs: [.bound(0)], outputs: [.replaces(2)])])
        return RewriteRule(name: name, benefit: benefit, pattern: pattern, replacement: replacement) { _, _ in .success(PreparedReplacement()) }
    }

    // MARK: Tests

    func testARuleThatMakesANodeOfANewDomainImportsIt() throws {
        let b = Builder()
        try b.output(b.node("B", [b.node("A", [b.input("x")], ["y"]).outputs[0]], ["z"]).outputs[0])
        let pattern = try Pattern(nodes: [
            PatternNode(opType: "A", inputs: [.variable(0)], outputs: [.variable(1)]),
            PatternNode(opType: "B", inputs: [.variable(1)], outputs: [.variable(2)]),
        ], root: 1, valueNames: ["x", "y", "z"], attributeNames: [])
        let replacement = Replacement(nodes: [ReplacementNode(opType: "Fused", domain: "com.example", inputs: [.bound(0)], outputs: [.replaces(2)])])
        let rule = RewriteRule(name: "a-b-to-fused", benefit: 1, pattern: pattern, replacement: replacement) { _, _ in .success(PreparedReplacement()) }
        let report = try b.rewrite(with: [rule])
        XCTAssertEqual(report.rewrites, 1)
        XCTAssertEqual(b.model.opsetImports.map { "\($0.domain ?? "") \($0.version.map(String.init) ?? "?")" }, [" 17", "com.example 1"])
        // Applying again imports nothing twice.
        _ = try b.rewrite(with: [rule])
        XCTAssertEqual(b.model.opsetImports.count, 2)
    }

    func testARulesSearchesAcrossTheWholeModelAreBounded() throws {
        // Five interchangeable pattern nodes, a refusal the engine cannot see into (a Swift
        // rule declares no dependencies, so nothing is pruned), and 20 readers of x: every
        // search runs to its 10,000 candidates; together they stop at the rule's budget.
        let b = Builder()
        let x = b.input("x")
        for index in 0..<20 { try b.output(b.node("A", [x], ["a\(index)"]).outputs[0]) }
        let pattern = try Pattern(nodes: (1...5).map { PatternNode(opType: "A", inputs: [.variable(0)], outputs: [.variable($0)]) },
                                  root: 0, valueNames: ["x", "a1", "a2", "a3", "a4", "a5"], attributeNames: [])
        let replacement = Replacement(nodes: [ReplacementNode(opType: "B", inputs: [.bound(0)], outputs: [.replaces(1)])])
        let rule = RewriteRule(name: "never", benefit: 1, pattern: pattern, replacement: replacement) { _, _ in .failure(RuleRefusal("no")) }
        let report = try b.rewrite(with: [rule])
        XCTAssertEqual(report.rewrites, 0)
        XCTAssertLessThanOrEqual(report.candidatesTried, Driver.minimumSearchBudget + Matcher.maximumSteps)
        XCTAssertGreaterThanOrEqual(report.candidatesTried, Driver.minimumSearchBudget)
        let reasons = Set(report.explanations.map(\.reason))
        XCTAssertTrue(reasons.contains("the pattern search stopped after trying 10000 candidate nodes here"), "\(reasons)")
        XCTAssertTrue(reasons.contains { $0.hasPrefix("the rule's pattern searches have tried as many candidate nodes as this model allows them") }, "\(reasons)")
    }

    func testListingManyReadersIsChargedToTheBudget() throws {
        // match { a = A(x); b = B(x) }  replace { a = A(x); b = B(x) }: it never converges, and
        // every rewrite makes the next search list x's 6,000 readers again. Listing them counts
        // (one candidate per `readersPerStep`), so the rule's budget stops it long before the
        // rewrite cap (60,000 rewrites, each listing 6,000 readers).
        let b = Builder()
        let x = b.input("x")
        for index in 0..<3_000 {
            try b.output(b.node("A", [x], ["a\(index)"]).outputs[0])
            try b.output(b.node("B", [x], ["b\(index)"]).outputs[0])
        }
        let pattern = try Pattern(nodes: [PatternNode(opType: "A", inputs: [.variable(0)], outputs: [.variable(1)]),
                                          PatternNode(opType: "B", inputs: [.variable(0)], outputs: [.variable(2)])],
                                  root: 0, valueNames: ["x", "a", "b"], attributeNames: [])
        let replacement = Replacement(nodes: [ReplacementNode(opType: "A", inputs: [.bound(0)], outputs: [.replaces(1)]),
                                              ReplacementNode(opType: "B", inputs: [.bound(0)], outputs: [.replaces(2)])])
        let rule = RewriteRule(name: "again", benefit: 1, pattern: pattern, replacement: replacement) { _, _ in .success(PreparedReplacement()) }
        let report = try b.rewrite(with: [rule], explain: false)
        XCTAssertFalse(report.reachedRewriteCap)
        let searches = Driver.minimumSearchBudget / (6_000 / Matcher.readersPerStep)
        XCTAssertLessThanOrEqual(report.rewrites, searches + 1)
        XCTAssertGreaterThan(report.rewrites, searches / 2)
        XCTAssertEqual(b.graph.nodeCount, 6_000)
    }

    func testChainFoldsAndTheOutputKeepsItsName() throws {
        let b = Builder()
        let x = b.input("x")
        let a = try b.node("A", [x], ["y"])
        let z = try b.node("B", [a.outputs[0]], ["z"])
        try b.output(z.outputs[0])
        let report = try b.rewrite(with: [chainRule()])
        XCTAssertEqual(report.fired.map(\.rule), ["a-b-to-c"])
        XCTAssertEqual(report.fired.map(\.count), [1])
        XCTAssertEqual(b.text, """
            g (? x) => (? z)
            {
               z = C (x)
            }

            """)
    }

    func testInteriorValueUsedOutsideTheMatchBlocksTheRewrite() throws {
        let b = Builder()
        let x = b.input("x")
        let a = try b.node("A", [x], ["y"], name: "a")
        let z = try b.node("B", [a.outputs[0]], ["z"], name: "bn3")
        let other = try b.node("D", [a.outputs[0]], ["w"])
        try b.output(z.outputs[0])
        try b.output(other.outputs[0])
        let before = b.text
        let report = try b.rewrite(with: [chainRule()])
        XCTAssertTrue(report.fired.isEmpty)
        XCTAssertEqual(b.text, before)
        XCTAssertEqual(report.explanations.map(\.description), ["a-b-to-c at node 'bn3': y has 2 users"])
    }

    func testInteriorGraphOutputBlocksTheRewrite() throws {
        let b = Builder()
        let x = b.input("x")
        let a = try b.node("A", [x], ["y"])
        let z = try b.node("B", [a.outputs[0]], ["z"])
        try b.output(z.outputs[0])
        try b.output(a.outputs[0])
        let report = try b.rewrite(with: [chainRule()])
        XCTAssertTrue(report.fired.isEmpty)
        XCTAssertEqual(report.explanations.first?.reason, "y is a graph output")
    }

    func testBenefitOrderThenName() throws {
        for (benefits, expected) in [([1, 5], "D"), ([5, 1], "C"), ([3, 3], "C")] {
            let b = Builder()
            let x = b.input("x")
            let a = try b.node("A", [x], ["y"])
            try b.output(b.node("B", [a.outputs[0]], ["z"]).outputs[0])
            let rules = [try chainRule(name: "alpha", benefit: benefits[0], into: "C"),
                         try chainRule(name: "beta", benefit: benefits[1], into: "D")]
            _ = try b.rewrite(with: rules)
            XCTAssertEqual(b.graph.firstNode?.opType, expected, "benefits \(benefits)")
        }
    }

    func testCommutativeMatching() throws {
        // match { k = K(); y = Add(x, k) } commute Add  replace { y = AddK(x) }
        let pattern = try Pattern(nodes: [
            PatternNode(opType: "K", inputs: [], outputs: [.variable(1)]),
            PatternNode(opType: "Add", inputs: [.variable(0), .variable(1)], outputs: [.variable(2)], commutative: true),
        ], root: 1, valueNames: ["x", "k", "y"], attributeNames: [])
        let rule = RewriteRule(name: "add-k", benefit: 1, pattern: pattern, replacement: Replacement(nodes: [
            ReplacementNode(opType: "AddK", inputs: [.bound(0)], outputs: [.replaces(2)]),
        ])) { _, _ in .success(PreparedReplacement()) }
        let b = Builder()
        let x = b.input("x")
        let k = try b.node("K", [], ["k"])
        let add = try b.node("Add", [k.outputs[0], x], ["y"])  // constant first: only commutative matching finds it
        try b.output(add.outputs[0])
        XCTAssertEqual(try b.rewrite(with: [rule]).fired.first?.count, 1)
        XCTAssertTrue(b.text.contains("y = AddK (x)"), b.text)

        var strict = pattern
        strict.nodes[1].commutative = false
        let rule2 = RewriteRule(name: "add-k", benefit: 1, pattern: try Pattern(nodes: strict.nodes, root: 1, valueNames: ["x", "k", "y"], attributeNames: []),
                                replacement: rule.replacement, prepare: rule.prepare)
        let c = Builder()
        let cx = c.input("x")
        let ck = try c.node("K", [], ["k"])
        try c.output(c.node("Add", [ck.outputs[0], cx], ["y"]).outputs[0])
        XCTAssertTrue(try c.rewrite(with: [rule2]).fired.isEmpty)
    }

    func testOptionalInputsMatchPresentAndAbsent() throws {
        // match { y = A(x, b?) }  replace { y = C(x, b) }: keeps b when present, and leaves it
        // out when absent (a trailing absent input is dropped, not written as "").
        let pattern = try Pattern(nodes: [PatternNode(opType: "A", inputs: [.variable(0), .optional(1)], outputs: [.variable(2)])],
                                  root: 0, valueNames: ["x", "b", "y"], attributeNames: [])
        let seen = Recorded<Bool>()
        let rule = RewriteRule(name: "a-to-c", benefit: 1, pattern: pattern, replacement: Replacement(nodes: [
            ReplacementNode(opType: "C", inputs: [.bound(0), .bound(1)], outputs: [.replaces(2)]),
        ])) { match, _ in
            seen.append(match.value(1) != nil)
            return .success(PreparedReplacement())
        }
        let b = Builder()
        let x = b.input("x"), bias = b.input("bias")
        try b.output(b.node("A", [x], ["y1"]).outputs[0])
        try b.output(b.node("A", [x, bias], ["y2"]).outputs[0])
        try b.output(b.node("A", [x, bias, x], ["y3"]).outputs[0])  // a third input: no match
        let report = try b.rewrite(with: [rule])
        XCTAssertEqual(report.fired.first?.count, 2)
        XCTAssertEqual(seen.elements, [false, true])
        XCTAssertTrue(b.text.contains("y1 = C (x)\n"), b.text)
        XCTAssertTrue(b.text.contains("y2 = C (x, bias)"), b.text)
        XCTAssertTrue(b.text.contains("y3 = A (x, bias, x)"), b.text)
        XCTAssertEqual(report.explanations.first?.reason, "A 'y3' has 3 inputs, more than the pattern's 2")
    }

    func testMultiOutputPatternOverADag() throws {
        // match { y = A(x); p = P(y); q = Q(y) }  replace { p = P2(x); q = Q2(x) }: y has two users,
        // both inside the match.
        let pattern = try Pattern(nodes: [
            PatternNode(opType: "A", inputs: [.variable(0)], outputs: [.variable(1)]),
            PatternNode(opType: "P", inputs: [.variable(1)], outputs: [.variable(2)]),
            PatternNode(opType: "Q", inputs: [.variable(1)], outputs: [.variable(3)]),
        ], root: 2, valueNames: ["x", "y", "p", "q"], attributeNames: [])
        let rule = RewriteRule(name: "split", benefit: 1, pattern: pattern, replacement: Replacement(nodes: [
            ReplacementNode(opType: "P2", inputs: [.bound(0)], outputs: [.replaces(2)]),
            ReplacementNode(opType: "Q2", inputs: [.bound(0)], outputs: [.replaces(3)]),
        ])) { _, _ in .success(PreparedReplacement()) }
        let b = Builder()
        let x = b.input("x")
        let a = try b.node("A", [x], ["y"])
        let p = try b.node("P", [a.outputs[0]], ["p"])
        let q = try b.node("Q", [a.outputs[0]], ["q"])
        try b.output(p.outputs[0])
        try b.output(q.outputs[0])
        XCTAssertEqual(try b.rewrite(with: [rule]).fired.first?.count, 1)
        XCTAssertEqual(b.text, """
            g (? x) => (? p, ? q)
            {
               p = P2 (x)
               q = Q2 (x)
            }

            """)
    }

    func testChainsConvergeAndTheCapStopsLoops() throws {
        let b = Builder()
        let value = try b.chainOfPairs(50, from: b.input("x"))
        try b.output(value)
        let report = try b.rewrite(with: [chainRule()])
        XCTAssertEqual(report.fired.first?.count, 50)
        XCTAssertFalse(report.reachedRewriteCap)
        XCTAssertEqual(b.graph.nodeCount, 50)

        // A rule that always applies to its own output never converges: the cap stops it.
        let loop = RewriteRule(name: "loop", benefit: 1, pattern: try Pattern(
            nodes: [PatternNode(opType: "A", inputs: [.variable(0)], outputs: [.variable(1)])],
            root: 0, valueNames: ["x", "y"], attributeNames: []),
            replacement: Replacement(nodes: [ReplacementNode(opType: "A", inputs: [.bound(0)], outputs: [.replaces(1)])])) { _, _ in
            .success(PreparedReplacement())
        }
        let c = Builder()
        try c.output(c.node("A", [c.input("x")], ["y"]).outputs[0])
        let capped = try c.rewrite(with: [loop], cap: 25)
        XCTAssertTrue(capped.reachedRewriteCap)
        XCTAssertEqual(capped.rewrites, 25)
    }

    func testARunStoppedByTheCapLeavesNoMarkTheNextRunSees() throws {
        // The first run stops with most nodes still queued: it clears their marks as it ends (and
        // the driver's marks carry its run's stamp besides), so the second run tries them all.
        let b = Builder()
        let value = try b.chainOfPairs(50, from: b.input("x"))
        try b.node("D", [value], ["d"])
        try b.output(b.graph.lastNode!.outputs[0])
        let capped = try b.rewrite(with: [chainRule()], cap: 10)
        XCTAssertTrue(capped.reachedRewriteCap)
        XCTAssertEqual(capped.rewrites, 10)
        for node in b.graph.nodes { XCTAssertEqual(node.rewriteMarks & NodeMark.all, 0) }
        var refreshed: [String] = []
        let report = applyRules([try chainRule()], to: b.model, inputsChanged: { node in
            refreshed.append(node.opType)
            return []
        })
        try b.model.verify()
        XCTAssertEqual(report.rewrites, 40)
        XCTAssertFalse(report.reachedRewriteCap)
        XCTAssertEqual(b.graph.nodeCount, 51)
        // Each fold replaces the input of the next pair's A, which the next fold erases before
        // it is refreshed; D, read by the last pair, is refreshed once.
        XCTAssertEqual(refreshed, ["D"])
        // A run that reaches its fixed point leaves no mark: the worklist is drained, every stale
        // node refreshed, and a guard clears the marks it sets.
        for node in b.graph.nodes { XCTAssertEqual(node.rewriteMarks & NodeMark.all, 0) }
    }

    func testSubgraphsAreMatched() throws {
        let b = Builder()
        let x = b.input("x")
        let body = Graph(name: "then")
        let a = try b.node("A", [x], ["y"], in: body)  // reads x from the enclosing graph
        let z = try b.node("B", [a.outputs[0]], ["z"], in: body)
        try body.addOutput(z.outputs[0]!, info: ValueInfo(type: nil))
        let branch = Node(opType: "If", inputs: [b.input("cond")], outputNames: ["out"],
                          attributes: [Attribute(name: "then_branch", value: .graph(body))])
        try b.graph.append(branch)
        try b.output(branch.outputs[0])
        XCTAssertEqual(try b.rewrite(with: [chainRule()]).fired.first?.count, 1)
        XCTAssertEqual(body.nodes.map(\.opType), ["C"])
        XCTAssertEqual(body.outputs.first?.value.name, "z")
    }

    func testForwardingKeepsGraphOutputNames() throws {
        // match { y = Id(x) }  replace { y = x }
        let pattern = try Pattern(nodes: [PatternNode(opType: "Id", inputs: [.variable(0)], outputs: [.variable(1)])],
                                  root: 0, valueNames: ["x", "y"], attributeNames: [])
        let rule = RewriteRule(name: "drop-id", benefit: 1, pattern: pattern,
                               replacement: Replacement(nodes: [], forwards: [(target: 1, source: .bound(0))])) { _, _ in .success(PreparedReplacement()) }
        let b = Builder()
        let x = b.input("x")
        let a = try b.node("A", [x], ["t"])
        let id1 = try b.node("Id", [a.outputs[0]], ["u"])
        let c = try b.node("C", [id1.outputs[0]], ["v"])
        let id2 = try b.node("Id", [c.outputs[0]], ["out"])
        try b.output(id2.outputs[0])
        let passthrough = try b.node("Id", [x], ["x_copy"])
        try b.output(passthrough.outputs[0])
        let report = try b.rewrite(with: [rule], passThrough: ("Identity", ""))
        XCTAssertEqual(report.fired.first?.count, 3)
        // The graph input x cannot take the name x_copy: an Identity keeps it.
        XCTAssertEqual(b.text, """
            g (? x) => (? out, ? x_copy)
            {
               t = A (x)
               out = C (t)
               x_copy = Identity (x)
            }

            """)
        XCTAssertEqual(report.explanations.map(\.reason), [])
    }

    func testComputedConstantsBecomeInitializersAndFreedOnesGo() throws {
        // match { y = Scale(x, s) }  replace { y = Mul(x, s2) } with s2 computed from s.
        let pattern = try Pattern(nodes: [PatternNode(opType: "Scale", inputs: [.variable(0), .variable(1)], outputs: [.variable(2)])],
                                  root: 0, valueNames: ["x", "s", "y"], attributeNames: [])
        let rule = RewriteRule(name: "scale-to-mul", benefit: 1, pattern: pattern, replacement: Replacement(
            nodes: [ReplacementNode(opType: "Mul", inputs: [.bound(0), .computed(0)], outputs: [.replaces(2)])],
            computedNames: ["s2"])) { match, _ in
            guard let s = match.value(1)?.constantTensor(), let values = s.doubleValues() else { return .failure(RuleRefusal("s is not a constant")) }
            return .success(PreparedReplacement(tensors: [Tensor(dataType: .float, dims: s.dims, values: values.map { Float($0 * 2) })]))
        }
        let b = Builder()
        let x = b.input("x")
        let s = b.constant("s", [1, 2])
        try b.output(b.node("Scale", [x, s], ["y"]).outputs[0])
        let dynamic = b.input("dynamic")
        try b.output(b.node("Scale", [x, dynamic], ["y2"]).outputs[0])
        let report = try b.rewrite(with: [rule])
        XCTAssertEqual(report.fired.first?.count, 1)
        XCTAssertEqual(b.graph.initializers.map(\.name), ["y_s2"], "the old constant went when nothing used it")
        XCTAssertEqual(b.graph.initializers.first?.initializer?.doubleValues(), [2, 4])
        XCTAssertEqual(report.explanations.map(\.description), ["scale-to-mul at node 'y2': s is not a constant"])
    }

    func testFreshNamesSkipTakenNamesAndNeverRepeat() throws {
        // match { z = A(x) }  replace { t = B(x); z = C(t) }: each rewrite adds a value `t`.
        let pattern = try Pattern(nodes: [PatternNode(opType: "A", inputs: [.variable(0)], outputs: [.variable(1)])],
                                  root: 0, valueNames: ["x", "z"], attributeNames: [])
        let rule = RewriteRule(name: "a-to-b-c", benefit: 1, pattern: pattern, replacement: Replacement(
            nodes: [ReplacementNode(opType: "B", inputs: [.bound(0)], outputs: [.fresh(0)]),
                    ReplacementNode(opType: "C", inputs: [.fresh(0)], outputs: [.replaces(1)])],
            freshNames: ["t"])) { _, _ in .success(PreparedReplacement()) }
        let b = Builder()
        var value = try b.node("T", [b.input("x")], ["t_2"]).outputs[0]!  // a name the model already has
        for i in 0..<300 { value = try b.node("A", [value], ["a\(i)"]).outputs[0]! }
        try b.output(value)
        XCTAssertEqual(try b.rewrite(with: [rule]).fired.first?.count, 300)
        let names = b.graph.nodes.filter { $0.opType == "B" }.map { $0.outputs[0]!.name }
        XCTAssertEqual(names, ["t", "t_1"] + (3...300).map { "t_\($0)" }, "counting from 1, skipping what is taken")
    }

    func testManyGraphOutputsOfOneValueMoveTogether() throws {
        let b = Builder()
        let z = try b.node("B", [b.node("A", [b.input("x")], ["y"]).outputs[0]], ["z"]).outputs[0]!
        for _ in 0..<2_000 { try b.output(z) }
        XCTAssertEqual(try b.rewrite(with: [chainRule()]).fired.first?.count, 1)
        let c = b.graph.nodes.first { $0.opType == "C" }!.outputs[0]!
        XCTAssertEqual(c.name, "z")
        XCTAssertEqual(c.graphOutputCount, 2_000)
        XCTAssertEqual(b.graph.outputPositions(of: c), Array(0..<2_000))
        XCTAssertEqual(b.graph.outputPositions(of: z), [])
    }

    func testAReplacedValueReadBeforeTheRootBlocksTheRewrite() throws {
        // match { y = A(x); z = B(y) }  replace { y = D(x); z = C(y) }: y's new producer goes
        // where B is, so a reader of y between A and B, itself or by a node of its subgraph,
        // would read it before it is defined.
        let pattern = try Pattern(nodes: [
            PatternNode(opType: "A", inputs: [.variable(0)], outputs: [.variable(1)]),
            PatternNode(opType: "B", inputs: [.variable(1)], outputs: [.variable(2)]),
        ], root: 1, valueNames: ["x", "y", "z"], attributeNames: [])
        let rule = RewriteRule(name: "a-b-to-d-c", benefit: 1, pattern: pattern, replacement: Replacement(nodes: [
            ReplacementNode(opType: "D", inputs: [.bound(0)], outputs: [.replaces(1)]),
            ReplacementNode(opType: "C", inputs: [.bound(1)], outputs: [.replaces(2)]),
        ])) { _, _ in .success(PreparedReplacement()) }
        for inSubgraph in [false, true] {
            let b = Builder()
            let y = try b.node("A", [b.input("x")], ["y"]).outputs[0]!
            if inSubgraph {
                let body = Graph(name: "body")
                let inner = try b.node("E", [y], ["inner"], in: body)
                try body.addOutput(inner.outputs[0]!, info: ValueInfo(type: nil))
                let loop = Node(opType: "S", name: "reader", inputs: [], outputNames: ["early"],
                                attributes: [Attribute(name: "body", value: .graph(body))])
                try b.graph.append(loop)
            } else {
                try b.node("E", [y], ["early"], name: "reader")
            }
            try b.output(b.graph.nodes.first { $0.name == "reader" }!.outputs[0])
            try b.output(b.node("B", [y], ["z"]).outputs[0])
            let before = b.text
            let report = try b.rewrite(with: [rule])
            XCTAssertTrue(report.fired.isEmpty, b.text)
            XCTAssertEqual(b.text, before)
            XCTAssertEqual(report.explanations.map(\.reason), ["\(inSubgraph ? "S" : "E") 'reader' reads a replaced value before the match ends"])
        }
        // 3,000 roots, each refused for readers before it that come late among y's readers (each
        // new B is put first in the graph), behind a node with a subgraph that stops the walk
        // back from the root: going through the readers is charged to the rule's budget, which
        // runs out instead of the scans adding up to 4.5 million.
        let many = Builder()
        let shared = try many.node("A", [many.input("x")], ["y"]).outputs[0]!
        var first: Node?
        for index in 0..<3_000 {
            let reader = Node(opType: "B", name: "z\(index)", inputs: [shared], outputNames: ["z\(index)"])
            try many.graph.insert(reader, before: first)
            try many.output(reader.outputs[0])
            let body = Graph(name: "body\(index)")
            let inner = try many.node("K", [], ["k\(index)"], in: body)
            try body.addOutput(inner.outputs[0]!, info: ValueInfo(type: nil))
            let wall = Node(opType: "S", name: "s\(index)", inputs: [], outputNames: ["s\(index)"],
                            attributes: [Attribute(name: "body", value: .graph(body))])
            try many.graph.insert(wall, before: reader)
            try many.output(wall.outputs[0])
            first = wall
        }
        let early = Node(opType: "E", name: "early", inputs: [shared], outputNames: ["e"])
        try many.graph.insert(early, before: first)
        try many.output(early.outputs[0])
        let refused = try many.rewrite(with: [rule])
        XCTAssertEqual(refused.rewrites, 0)
        let reasons = refused.explanations.map(\.reason)
        XCTAssertEqual(reasons.first, "E 'early' reads a replaced value before the match ends")
        XCTAssertTrue(reasons.contains("B 'z2999' reads a replaced value before the match ends"), "\(reasons.prefix(3))")
        XCTAssertTrue(reasons.contains { $0.hasPrefix("the rule's pattern searches have tried as many candidate nodes") }, "\(reasons.suffix(3))")
        // A reader after the root is fine: it reads the new y.
        let b = Builder()
        let y = try b.node("A", [b.input("x")], ["y"]).outputs[0]!
        try b.output(b.node("B", [y], ["z"]).outputs[0])
        try b.output(b.node("E", [y], ["late"]).outputs[0])
        XCTAssertEqual(try b.rewrite(with: [rule]).fired.first?.count, 1)
        XCTAssertEqual(b.graph.nodes.map(\.opType), ["D", "C", "E"])
    }

    func testDeterministic() throws {
        func build() throws -> Builder {
            let b = Builder()
            var values = [b.input("x")]
            for i in 0..<30 {
                let source = values[i % values.count]
                let a = try b.node("A", [source], ["a\(i)"])
                let z = try b.node("B", [a.outputs[0]], ["b\(i)"])
                values.append(z.outputs[0]!)
                if i % 7 == 0 { try b.node("D", [a.outputs[0]], ["d\(i)"]) }
            }
            for v in values.dropFirst() where v.uses.isEmpty { try b.output(v) }
            return b
        }
        let first = try build(), second = try build()
        let r1 = try first.rewrite(with: [chainRule(), chainRule(name: "other", into: "E")])
        let r2 = try second.rewrite(with: [chainRule(), chainRule(name: "other", into: "E")])
        XCTAssertEqual(first.text, second.text)
        XCTAssertEqual(r1.explanations, r2.explanations)
        XCTAssertEqual(r1.rewrites, r2.rewrites)
    }

    /// A pattern node matches by operator (the default domain however written), and follows
    /// its op type and domain when they change; `_` matches any operator of its domain.
    func testPatternNodeOperator() {
        var pattern = PatternNode(opType: "A", inputs: [], outputs: [])
        let a = Node(opType: "A", inputs: [], outputNames: ["a"])
        let aDefault = Node(opType: "A", domain: "ai.onnx", inputs: [], outputNames: ["a2"])
        let aCustom = Node(opType: "A", domain: "custom", inputs: [], outputNames: ["a3"])
        let b = Node(opType: "B", inputs: [], outputNames: ["b"])
        XCTAssertTrue(pattern.hasOperator(of: a))
        XCTAssertTrue(pattern.hasOperator(of: aDefault))
        XCTAssertFalse(pattern.hasOperator(of: aCustom))
        XCTAssertFalse(pattern.hasOperator(of: b))
        pattern.domain = "custom"
        XCTAssertTrue(pattern.hasOperator(of: aCustom))
        XCTAssertFalse(pattern.hasOperator(of: a))
        pattern.domain = ""
        pattern.opType = "B"
        XCTAssertTrue(pattern.hasOperator(of: b))
        XCTAssertFalse(pattern.hasOperator(of: a))
        pattern.opType = PatternNode.anyOperator
        XCTAssertTrue(pattern.hasOperator(of: a) && pattern.hasOperator(of: b) && pattern.hasOperator(of: aDefault))
        XCTAssertFalse(pattern.hasOperator(of: aCustom))
        b.opType = "A"
        pattern.opType = "A"
        XCTAssertTrue(pattern.hasOperator(of: b), "a node whose op type changed matches by its new one")
    }
}

/// What a rule's `prepare` saw, recorded from its `@Sendable` closure.
final class Recorded<Element>: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [Element] = []

    func append(_ element: Element) { lock.withLock { storage.append(element) } }
    var elements: [Element] { lock.withLock { storage } }
}
