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
