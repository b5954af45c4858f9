import XCTest
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// A rule of several forms (issue 11): match blocks, alternatives on a line (`A(x) | B(x)`) and
/// optional nodes (`y = Cast(x)?`), each form checked on graphs where it must fire and where it
/// must not.
final class MatchFormTests: XCTestCase {
    /// ReduceSum over an axis of size 1 with keepdims is its input: one rule for the axes as an
    /// attribute (opset 11) and as an input (opset 13).
    let reduceOverUnitAxis = """
        rule drop-reduce-over-unit-axis {
          match {
            y = ReduceSum<axes: a, keepdims: k = 1>(x) | ReduceSum<keepdims: k = 1>(x, a)
          }
          where { k == 1 && constant(a) && numel(a) == 1 && dim(x, a[0]) == 1 }
          replace { y = Identity(x) }
        }
        """

    func testAnAttributeOrInputAlternativeFiresInEitherOpset() throws {
        for opset in [Int64(11), 13] {
            let test = RuleTestGraph(rules: try RuleFiles.rules(in: reduceOverUnitAxis), opset: opset)
            let x = test.input("x", [2, 1, 3])
            let reduce: Node
            if opset < 13 {
                reduce = Node(opType: "ReduceSum", name: "r", inputs: [x], outputNames: ["y"], attributes: [Attribute(name: "axes", value: .ints([1]))])
            } else {
                let axes = test.graph.addInitializer(name: "axes", tensor: Tensor(dataType: .int64, dims: [1], values: [Int64(-2)]))
                reduce = Node(opType: "ReduceSum", name: "r", inputs: [x, axes], outputNames: ["y"])
            }
            try test.graph.append(reduce)
            try test.output(test.node("Neg", [reduce.outputs[0]!], "out"))
            let report = try test.run()
            XCTAssertEqual(report.fired.map(\.rule), ["drop-reduce-over-unit-axis"], "opset \(opset)")
            XCTAssertEqual(test.graph.nodes.map(\.opType), ["Identity", "Neg"], "opset \(opset)")
        }
    }

    func testAnAttributeOrInputAlternativeRefusesAnAxisOfAnotherSize() throws {
        let test = RuleTestGraph(rules: try RuleFiles.rules(in: reduceOverUnitAxis), opset: 13)
        let x = test.input("x", [2, 1, 3])
        let axes = test.graph.addInitializer(name: "axes", tensor: Tensor(dataType: .int64, dims: [1], values: [Int64(2)]))
        let reduce = Node(opType: "ReduceSum", name: "r", inputs: [x, axes], outputNames: ["y"])
        try test.graph.append(reduce)
        try test.output(test.node("Neg", [reduce.outputs[0]!], "out"))
        let reasons = try test.reasonsNothingFires(for: "drop-reduce-over-unit-axis")
        // The input form got furthest: its failed condition explains the rule.
        XCTAssertEqual(reasons.count, 1)
        XCTAssertTrue(reasons[0].hasPrefix("form 2 of 2 (line 3: ReduceSum<keepdims>(x, a)):"), reasons[0])
        XCTAssertTrue(reasons[0].contains("dim(x, a[0]) == 1"), reasons[0])
    }

    /// Neg(Neg(x)) is x, with or without a Cast to x's own type between.
    let doubleNegation = """
        rule drop-double-negation {
          match {
            a = Neg(x)
            b = Cast<to: t>(a)?
            z = Neg(b)
          }
          where { absent(t) || t == dtype(x) }
          replace { z = x }
        }
        """

    func negations(cast: DataType?) throws -> RuleTestGraph {
        let test = RuleTestGraph(rules: try RuleFiles.rules(in: doubleNegation))
        let x = test.input("x", [2, 3])
        var a = try test.node("Neg", [x], "a")
        if let cast {
            let node = Node(opType: "Cast", name: "b", inputs: [a], outputNames: ["b"], attributes: [Attribute(name: "to", value: .int(Int64(cast.rawValue)))])
            try test.graph.append(node)
            a = node.outputs[0]!
        }
        try test.output(test.node("Relu", [test.node("Neg", [a], "z")], "out"))
        return test
    }

    func testAnOptionalNodeMayBePresentOrMissing() throws {
        for cast in [DataType.float, nil] {
            let test = try negations(cast: cast)
            let report = try test.run()
            XCTAssertEqual(report.fired.map(\.rule), ["drop-double-negation"], "cast \(String(describing: cast))")
            XCTAssertEqual(test.graph.nodes.map(\.opType), ["Relu"], "cast \(String(describing: cast))")
        }
    }

    func testAnOptionalNodeThatChangesTheTypeIsRefused() throws {
        // Neg, Cast to double, Neg: the Cast is there and changes the type; without it, the
        // pattern does not meet the graph at all.
        let test = try negations(cast: .double)
        let report = try test.run()
        XCTAssertEqual(report.fired.count, 0)
        // At the first Neg, neither form meets the graph; at the last one, the form with the Cast
        // does, and its condition explains the rule.
        let reasons = report.explanations.filter { $0.node == "z" }.map(\.reason)
        XCTAssertEqual(reasons.count, 1)
        XCTAssertTrue(reasons[0].hasPrefix("form 1 of 2 (line 4: with Cast):"), reasons[0])
        XCTAssertTrue(reasons[0].contains("absent(t) || t == dtype(x)"), reasons[0])
    }

    func testMatchBlocksAreFormsTriedInOrder() throws {
        let rules = try RuleFiles.rules(in: """
            rule drop-unit-scale {
              match { y = Mul(x, c) }
              match { y = Div(x, c) }
              where { constant(c) && numel(c) == 1 && c == 1 }
              replace { y = Identity(x) }
            }
            """)
        XCTAssertEqual(rules.count, 1)
        XCTAssertEqual(rules[0].rewrites.map(\.pattern.nodes.first?.opType), ["Mul", "Div"])
        let test = RuleTestGraph(rules: rules)
        let x = test.input("x", [2, 3])
        let one = test.constant("one", [1], [])
        let two = test.constant("two", [2], [])
        let scaled = try test.node("Div", [test.node("Mul", [x, one], "m"), one], "d")
        try test.output(test.node("Neg", [test.node("Mul", [scaled, two], "kept")], "out"))
        let report = try test.run()
        // Both forms fired, counted as one rule.
        XCTAssertEqual(report.fired.map(\.rule), ["drop-unit-scale"])
        XCTAssertEqual(report.fired.first?.count, 2)
        XCTAssertEqual(test.graph.nodes.map(\.opType), ["Identity", "Identity", "Mul", "Neg"])
    }

    func testAnErrorOfSomeFormsNamesThem() {
        XCTAssertThrowsError(try RuleFiles.rules(in: """
            rule copy-from-a-missing-node {
              match { m = Relu(x); y = Neg(m) }
              match { y = Neg(x) }
              replace { y = Neg<...m>(x) }
            }
            """, file: "forms.rules")) { error in
            XCTAssertEqual("\(error)", "forms.rules:4:21: '...m' must name a value that a match node produces (in form 2 of 2 (match at line 3))")
        }
    }

    func testAnAttributeOfOneFormCannotFeedANode() {
        // The bounds are inputs in one form and attributes in the other: the attribute form cannot
        // hand them to a new node as inputs, and the error says so and names that form.
        XCTAssertThrowsError(try RuleFiles.rules(in: """
            rule split-clip {
              match { y = Clip(x, lo, hi) }
              match { y = Clip<min: lo, max: hi>(x) }
              replace { r = Relu(x); y = Min(r, hi) }
            }
            """, file: "clip.rules")) { error in
            XCTAssertEqual("\(error)", "clip.rules:4:26: 'hi' is an attribute of the match, which a node cannot read as an input; set it as an attribute ('name = hi') or compute a tensor from it (in form 2 of 2 (match at line 3))")
        }
    }

    func testTheFormsOfARuleAreLimited() {
        let lines = (0..<7).map { "    v\($0 + 1) = Neg(v\($0))?" }.joined(separator: "\n")
        XCTAssertThrowsError(try RuleFiles.rules(in: "rule many {\n  match {\n\(lines)\n  }\n  replace { v7 = v0 }\n}", file: "many.rules")) { error in
            XCTAssertTrue("\(error)".hasPrefix("many.rules:1:1: rule 'many' has more than 64 forms"), "\(error)")
        }
    }

    func testAlternativesAndOptionalNodesAreWrittenAsDocumented() {
        XCTAssertThrowsError(try RuleFiles.rules(in: "rule r {\n  match { y = A(x) | z = B(x) }\n  replace { y = x }\n}", file: "r.rules")) { error in
            XCTAssertEqual("\(error)", "r.rules:2:22: an alternative after '|' is written without outputs: 'y = A(x) | B(x)' (they share the outputs of the first)")
        }
        XCTAssertThrowsError(try RuleFiles.rules(in: "rule r {\n  match { y = A(_)?; z = B(y) }\n  replace { z = y }\n}", file: "r.rules")) { error in
            XCTAssertTrue("\(error)".contains("r.rules:2:11: an optional node ('?' at the end of the line) must have a plain variable as its first input of A"), "\(error)")
        }
        XCTAssertThrowsError(try RuleFiles.rules(in: "rule r {\n  match { y = A(x)\n  z = B(y) | }\n  replace { z = y }\n}", file: "r.rules")) { error in
            XCTAssertTrue("\(error)".contains("r.rules:3:14"), "\(error)")
        }
    }
}
