import XCTest
import ONNXFuseIR
@testable import ONNXFuseRewrite
@testable import ONNXFuseRules

/// Patterns with interchangeable nodes (`a1 = Relu(x)`, `a2 = Relu(x)`, ...) against values
/// with many readers: the search skips what cannot change its answer (`MatchPruning`), and finds
/// the same first match, and explains the same, as the search that tries every ordered
/// assignment (the rules with what they declare of `prepare` removed).
final class SymmetricMatchTests: XCTestCase {
    /// `x` read by one node per entry of `readers` (operator, rank of its output or nil when
    /// the output has no declared type, whether the output is a graph output), named `r0`, `r1`, ...
    func build(_ readers: [(op: String, rank: Int?, isOutput: Bool)]) throws -> (Model, Graph) {
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(2), .value(3)])))
        for (index, reader) in readers.enumerated() {
            let node = Node(opType: reader.op, name: "r\(index)", inputs: [x], outputNames: ["r\(index)"])
            try graph.append(node)
            let output = node.outputs[0]!
            if let rank = reader.rank {
                output.info = ValueInfo(type: .tensor(.float, Array(repeating: .value(2), count: rank)))
            }
            if reader.isOutput { try graph.addOutput(output, info: ValueInfo(type: nil)) }
        }
        return (model, graph)
    }

    /// Runs the rules of `text` on a model `build` makes, as compiled and without their
    /// `PrepareDependencies`; checks that both give the same graph, firings and explanations,
    /// and returns the printed graph and the candidates each search tried.
    func compare(_ text: String, _ readers: [(op: String, rank: Int?, isOutput: Bool)],
                 file: StaticString = #filePath, line: UInt = #line) throws
        -> (graph: String, explanations: [String], pruned: Int, plain: Int) {
        let rules = try compileRules(try parseRules(text, file: "test.rules")).map(\.rewrite)
        var options = RewriteOptions()
        options.explain = true
        let (prunedModel, prunedGraph) = try build(readers)
        let pruned = applyRules(rules, to: prunedModel, options: options)
        try prunedModel.verify()
        let (plainModel, plainGraph) = try build(readers)
        let plain = applyRules(rules.map { rule in
            var rule = rule
            rule.dependencies = nil
            return rule
        }, to: plainModel, options: options)
        let printed = Printer().print(prunedGraph)
        XCTAssertEqual(printed, Printer().print(plainGraph), file: file, line: line)
        XCTAssertEqual(pruned.fired.map(\.rule), plain.fired.map(\.rule), file: file, line: line)
        XCTAssertEqual(pruned.fired.map(\.count), plain.fired.map(\.count), file: file, line: line)
        XCTAssertEqual(pruned.explanations, plain.explanations, file: file, line: line)
        return (printed, pruned.explanations.map(\.description), pruned.candidatesTried, plain.candidatesTried)
    }

    func testInterchangeableNodesAreTriedInOneOrderOnly() throws {
        // Three interchangeable dead Relus beside a Sigmoid: ten Relus read x, and only the last
        // three are unused (the engine's guard refuses the others). Every ordered choice of
        // three is tried before (720 at the last level); in increasing order only 120.
        let text = """
            rule drop-three {
              match {
                _ = Relu(x)
                _ = Relu(x)
                _ = Relu(x)
                y = Sigmoid(x)
              }
              replace { y = Neg(x) }
            }
            """
        let readers = (0..<10).map { (op: "Relu", rank: nil as Int?, isOutput: $0 < 7) } + [(op: "Sigmoid", rank: nil, isOutput: true)]
        let outcome = try compare(text, readers)
        XCTAssertTrue(outcome.graph.contains("r10 = Neg (x)"), outcome.graph)
        XCTAssertFalse(outcome.graph.contains("r7 ="), outcome.graph)
        XCTAssertFalse(outcome.graph.contains("r9 ="), outcome.graph)
        XCTAssertTrue(outcome.graph.contains("r6 = Relu (x)"), outcome.graph)
        XCTAssertGreaterThan(outcome.plain, 500)
        XCTAssertLessThan(outcome.pruned, 200, "plain: \(outcome.plain)")
    }

    func testAGuardThatReadsNoneOfTheNodesIsEvaluatedOncePerRoot() throws {
        // Five interchangeable Relus against eight readers, refused by a condition on x only:
        // 840 ordered choices below each root before, one now (the refusal holds for every
        // assignment that binds x alike): a handful of candidates per root (one per pattern
        // node, and the readers already taken passed over).
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
        let outcome = try compare(text, (0..<8).map { _ in (op: "Relu", rank: nil, isOutput: true) })
        XCTAssertEqual(outcome.explanations.count, 8)
        XCTAssertEqual(outcome.explanations.first, "five at node 'r0': `rank(x) == 7` is false (test.rules:9)")
        XCTAssertGreaterThan(outcome.plain, 8 * 840)
        XCTAssertLessThanOrEqual(outcome.pruned, 8 * 6)
    }

    func testAGuardOnOneNodeStillFindsTheSameMatch() throws {
        // The condition reads a1 only: a1 is not interchangeable with the others, which are.
        // Only r7 has rank 3; the match at r0 (the first root) takes r7 for a1 and the first
        // readers left, in order, for a2, a3 and a4, and each gets its own replacement.
        let text = """
            rule pick {
              match {
                a1 = Relu(x)
                a2 = Relu(x)
                a3 = Relu(x)
                a4 = Relu(x)
                a5 = Relu(x)
              }
              where { rank(a1) == 3 }
              replace {
                a1 = Neg(x)
                a2 = Abs(x)
                a3 = Sqrt(x)
                a4 = Exp(x)
                a5 = Floor(x)
              }
            }
            """
        let readers = (0..<12).map { (op: "Relu", rank: $0 == 7 ? 3 : 2 as Int?, isOutput: true) }
        let outcome = try compare(text, readers)
        for expected in ["r0 = Floor (x)", "r1 = Abs (x)", "r2 = Sqrt (x)", "r3 = Exp (x)", "r7 = Neg (x)", "r4 = Relu (x)"] {
            XCTAssertTrue(outcome.graph.contains(expected), "\(expected) in \(outcome.graph)")
        }
        XCTAssertLessThan(outcome.pruned * 5, outcome.plain)
    }

    func testAConditionOnTheLastNodeSkipsTheReadersItRefuses() throws {
        // The condition reads a4, the last node bound: the readers it refuses are skipped at
        // every root once found, instead of trying each below every choice of a1, a2 and a3.
        let text = """
            rule last {
              match {
                a1 = Relu(x)
                a2 = Relu(x)
                a3 = Relu(x)
                a4 = Relu(x)
                a5 = Relu(x)
              }
              where { rank(a4) == 3 }
              replace {
                a1 = Neg(x)
                a2 = Neg(x)
                a3 = Neg(x)
                a4 = Neg(x)
                a5 = Neg(x)
              }
            }
            """
        let outcome = try compare(text, (0..<8).map { _ in (op: "Relu", rank: 2, isOutput: true) })
        XCTAssertEqual(outcome.explanations.first, "last at node 'r0': `rank(a4) == 3` is false (test.rules:9)")
        XCTAssertGreaterThan(outcome.plain, 8 * 840)
        // One complete match per root: a4 passes over the readers a5, a1, a2 and a3 took.
        XCTAssertLessThanOrEqual(outcome.pruned, 8 * 10)
    }

    func testTooFewReadersAreExplained() throws {
        let text = """
            rule five {
              match {
                a1 = Relu(x)
                a2 = Relu(x)
                a3 = Relu(x)
                a4 = Relu(x)
                a5 = Relu(x)
              }
              replace {
                a1 = Neg(x)
                a2 = Neg(x)
                a3 = Neg(x)
                a4 = Neg(x)
                a5 = Neg(x)
              }
            }
            """
        let rules = try compileRules(try parseRules(text, file: "test.rules")).map(\.rewrite)
        var options = RewriteOptions()
        options.explain = true
        let (model, _) = try build([("Relu", nil, true), ("Sigmoid", nil, true), ("Relu", nil, true), ("Relu", nil, true)])
        let report = applyRules(rules, to: model, options: options)
        XCTAssertEqual(report.explanations.map(\.reason), Array(repeating: "x has 3 readers that are Relu, not the pattern's 5", count: 3))
        XCTAssertEqual(report.candidatesTried, 3)
    }

    func testTheSymmetryClasses() throws {
        // a2 and a3 are interchangeable; a1 is read by the condition, a4 by the replacement
        // (which a2 and a3 are not), a5 is the root; b1 and b2 have their own class (another
        // operator), c1 is alone in its.
        let text = """
            rule classes {
              match {
                a1 = Relu(x)
                a2 = Relu(x)
                a3 = Relu(x)
                a4 = Relu(x)
                b1 = Sigmoid(x)
                b2 = Sigmoid(x)
                c1 = Sigmoid<alpha = 1>(x)
                a5 = Relu(x)
              }
              where { rank(a1) == 2 }
              replace {
                a1 = Neg(x)
                a2 = Neg(x)
                a3 = Neg(x)
                a4 = x
                b1 = Neg(x)
                b2 = Neg(x)
                c1 = Neg(x)
                a5 = Neg(x)
              }
            }
            """
        let rule = try compileRules(try parseRules(text, file: "test.rules"))[0].rewrite
        let classes = MatchPruning.symmetryClasses(rule).map { $0.map { rule.pattern.plan[$0].node } }
        XCTAssertEqual(classes, [[1, 2], [4, 5]])
    }
}
