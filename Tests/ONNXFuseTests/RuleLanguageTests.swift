import XCTest
import ONNXFuse

/// Rule-language features of issue 11 on small graphs, checked as every rule test is.
final class RuleLanguageTests: XCTestCase {
    func testTypeNamesCompareWithTypeCodes() throws {
        // A Cast's `to` is an INT attribute (11); `t == double` compares it with the type's code.
        let rules = try RuleFiles.rules(in: """
            rule drop-cast-to-double {
              match { y = Cast<to: t>(x) }
              where { t == double && dtype(x) == double }
              replace { y = Identity(x) }
            }
            """)
        let test = RuleTestGraph(rules: rules)
        let x = test.graph.addInput(name: "x", info: ValueInfo(type: .tensor(.double, [.value(2)])))
        let cast = Node(opType: "Cast", name: "cast", inputs: [x], outputNames: ["y"], attributes: [Attribute(name: "to", value: .int(11))])
        test.graph.append(cast)
        test.output(test.node("Neg", [cast.outputs[0]!], "out"))
        let report = try test.run()
        XCTAssertEqual(report.fired.map(\.rule), ["drop-cast-to-double"])
        XCTAssertEqual(test.graph.nodes.map(\.opType), ["Identity", "Neg"])
    }
}

extension RuleLanguageTests {
    func testAnAxisIsDerivedFromAPermutationByIndexing() throws {
        // Softmax between a Transpose and its inverse is a Softmax on the axis the permutation
        // sends there: p[a] (a negative axis counts from the end, as p[-1] does).
        let rules = try RuleFiles.rules(in: """
            rule softmax-through-transposes {
              match {
                t = Transpose<perm: p>(x)
                s = Softmax<axis: a = -1>(t)
                y = Transpose<perm: q>(s)
              }
              where { len(p) == len(q) && permute(p, q) == range(len(p)) }
              replace { y = Softmax<axis = p[a]>(x) }
            }
            """)
        for axis in [Int64(2), -1, 0] {
            let test = RuleTestGraph(rules: rules)
            let x = test.input("x", [2, 3, 4])
            let t = Node(opType: "Transpose", name: "t", inputs: [x], outputNames: ["t"], attributes: [Attribute(name: "perm", value: .ints([0, 2, 1]))])
            let s = Node(opType: "Softmax", name: "s", inputs: [t.outputs[0]], outputNames: ["s"], attributes: [Attribute(name: "axis", value: .int(axis))])
            let y = Node(opType: "Transpose", name: "y", inputs: [s.outputs[0]], outputNames: ["y"], attributes: [Attribute(name: "perm", value: .ints([0, 2, 1]))])
            for node in [t, s, y] { test.graph.append(node) }
            test.output(test.node("Neg", [y.outputs[0]!], "out"))
            let report = try test.run()
            XCTAssertEqual(report.fired.map(\.rule), ["softmax-through-transposes"], "axis \(axis)")
            let softmax = try XCTUnwrap(test.graph.nodes.first { $0.opType == "Softmax" })
            XCTAssertEqual(softmax.attribute("axis")?.int, [0, 2, 1][Int(axis < 0 ? axis + 3 : axis)], "axis \(axis)")
        }
    }
}

extension RuleLanguageTests {
    func testAFloat32ConstantMatchesTheLiteralItWasWrittenFrom() throws {
        // `c == 1e-5` in float32, `allclose` for a constant stored at any precision, and an
        // elementwise `<` as a condition.
        let rules = try RuleFiles.rules(in: """
            rule commute-epsilon {
              match { y = Add(x, c) }
              where { constant(c) && c == 1e-5 && allclose(c, 0.00001) && c < 1 && !(c > 1) }
              replace { y = Add(c, x) }
            }
            """)
        let test = RuleTestGraph(rules: rules)
        let x = test.input("x", [2, 3])
        test.output(test.node("Neg", [test.node("Add", [x, test.constant("c", [1e-5], [1])], "y")], "out"))
        let report = try test.run()
        XCTAssertEqual(report.fired.map(\.rule), ["commute-epsilon"])
    }
}
