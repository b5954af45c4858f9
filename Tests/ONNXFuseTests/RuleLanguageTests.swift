import XCTest
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

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
        try test.graph.append(cast)
        try test.output(test.node("Neg", [cast.outputs[0]!], "out"))
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
            for node in [t, s, y] { try test.graph.append(node) }
            try test.output(test.node("Neg", [y.outputs[0]!], "out"))
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
        try test.output(test.node("Neg", [test.node("Add", [x, test.constant("c", [1e-5], [1])], "y")], "out"))
        let report = try test.run()
        XCTAssertEqual(report.fired.map(\.rule), ["commute-epsilon"])
    }
}

extension RuleLanguageTests {
    func testIntegersBeyondFloat64AreExact() throws {
        // A Slice "to the end" (INT64_MAX, which float64 rounds to 2^63) is recognised exactly,
        // and INT64_MAX - 1 computed from it is stored exactly.
        let rules = try RuleFiles.rules(in: """
            rule slice-end-one-less {
              match { y = Slice(x, s, e, a) }
              where { constant(s, e, a) && s == [0] && e == [9223372036854775807] && e - 9223372036854775806 == [1] && e > 9223372036854775806 }
              compute { e2 = e - 1 }
              replace { y = Slice(x, s, e2, a) }
            }
            """)
        let test = RuleTestGraph(rules: rules)
        let x = test.input("x", [2, 3])
        let int64 = { (name: String, value: Int64) in
            test.graph.addInitializer(name: name, tensor: Tensor(dataType: .int64, dims: [1], values: [value]))
        }
        try test.output(test.node("Neg", [test.node("Slice", [x, int64("s", 0), int64("e", .max), int64("a", 1)], "y")], "out"))
        let report = try test.run()
        XCTAssertEqual(report.fired.map(\.rule), ["slice-end-one-less"])
        let end = try XCTUnwrap(test.graph.firstNode?.inputs[2]?.constantTensor(freezeInitializerInputs: false))
        XCTAssertEqual(try NDArray(tensor: end).integers, [.max - 1])
    }
}

extension RuleLanguageTests {
    func testLiteralArgumentsOfTheWrongKindAreErrorsOfTheFileNamingTheArgument() {
        // Every error of the file at once, each naming the function and the argument.
        XCTAssertThrowsError(try RuleFiles.rules(in: """
            rule wrong-arguments {
              match { y = Mul(x, w) }
              where { constant(w) && dim(w, "last") == 2 && allclose(w, 1, "tight") }
              compute {
                a = cast(w, 11)
                b = reshape(w, [2, 1.5])
                c = full("3", 1)
                d = sqrt(true)
                e = cast(w, float16)
              }
              replace { y = Mul(x, e) }
            }
            """, file: "wrong.rules")) { error in
            XCTAssertEqual("\(error)".components(separatedBy: "\n"), [
                "wrong.rules:3:33: dim(): argument 2 must be an integer, not the string \"last\"",
                "wrong.rules:3:64: allclose(): argument 3 must be a number, not the string \"tight\"",
                "wrong.rules:5:17: cast(): argument 2 must be a data type such as float or int64, not the number 11",
                "wrong.rules:6:20: reshape(): argument 2 must be a list of integers, not the list [2, 1.5]",
                "wrong.rules:7:14: full(): argument 1 must be a list of integers, not the string \"3\"",
                "wrong.rules:8:14: sqrt(): argument 1 must be a tensor (or a number, or a list of numbers), not the boolean true",
            ])
        }
    }
}

extension RuleLanguageTests {
    func testSyntaxErrorsAndTheOtherRulesErrorsComeInOnePass() {
        // Rule a has a syntax error (it is not checked further); rule b parses but calls an
        // unknown function and reads an undefined name: all three errors at once, in file order.
        XCTAssertThrowsError(try RuleFiles.rules(in: """
            rule a {
              match { y = Relu(x)
              replace { y = x }
            }
            rule b {
              match { y = Relu(x) }
              where { frobnicate(x) && rank(q) == 2 }
              replace { y = x }
            }
            """, file: "stages.rules")) { error in
            XCTAssertEqual("\(error)".components(separatedBy: "\n"), [
                "stages.rules:3:3: expected '}' to close the match block before 'replace'",
                "stages.rules:7:11: unknown function 'frobnicate'",
                "stages.rules:7:33: 'q' is not defined",
            ])
        }
    }
}
