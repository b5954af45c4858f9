import XCTest
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// The static check for rules that undo each other (`undoingRules`, and the warnings of
/// `rules check` and of a run with `--rules`).
final class UndoCheckTests: XCTestCase {
    func testRulesThatRewriteEachOtherBackAreFound() throws {
        let rules = try RuleFiles.rules(in: """
            rule sub-to-add {
              match { y = Sub(a, b) }
              where { constant(b) }
              compute { n = -b }
              replace { y = Add(a, n) }
            }
            rule add-to-sub {
              match { y = Add(a, b) }
              where { constant(b) }
              compute { n = -b }
              replace { y = Sub(a, n) }
            }
            rule swap-add {
              commute Add
              match { y = Add(a, b) }
              replace { y = Add(b, a) }
            }
            rule relu-of-relu {
              match { y = Relu(x); z = Relu(y) }
              replace { z = Relu(x) }
            }
            """)
        XCTAssertEqual(undoingRules(rules).map { String($0.description.prefix(40)) }, [
            "rules 'sub-to-add' and 'add-to-sub' may ",
            "rule 'swap-add' may undo itself: its rep",
        ])
        // Only pairs with a rule of the checked set: swap-add alone.
        XCTAssertEqual(undoingRules(rules, checked: ["swap-add"]).map(\.first), ["swap-add"])
    }

    func testAFormThatUndoesAnotherRuleIsFound() throws {
        // split-relu6 makes a Relu and a Min from a Clip, and fuse-relu6 makes the Clip back from
        // either operand order of the Min (two match blocks): its second form undoes split-relu6.
        let rules = try RuleFiles.rules(in: """
            rule fuse-relu6 {
              match { r = Relu(x); y = Min(six, r) }
              match { r = Relu(x); y = Min(r, six) }
              where { constant(six) && six == 6 }
              compute { zero = six * 0 }
              replace { y = Clip(x, zero, six) }
            }
            rule split-relu6 {
              match { y = Clip(x, lo, hi) }
              where { constant(lo, hi) && lo == 0 }
              replace { r = Relu(x); y = Min(r, hi) }
            }
            """)
        XCTAssertEqual(undoingRules(rules).map { [$0.first, $0.second] }, [["fuse-relu6", "split-relu6"]])
    }

    func testTheComparisonOfManyNodesOfOneOperatorStaysShort() throws {
        // Ten Negs in a chain against ten Negs in another shape: every assignment of one to the
        // other would be 10! candidates; the connections already placed cut the search at once.
        let chain = (1...12).map { "a\($0) = Neg(\($0 == 1 ? "x" : "a\($0 - 1)"))" }.joined(separator: "; ")
        let fan = (1...11).map { "b\($0) = Neg(x)" }.joined(separator: "; ") + "; a12 = Neg(b1)"
        let rules = try RuleFiles.rules(in: "rule fan-out {\n  match { \(chain) }\n  replace { \(fan) }\n}\n")
        XCTAssertEqual(undoingRules(rules), [])
    }

    func testTheBuiltInRulesDoNotUndoEachOther() {
        XCTAssertEqual(undoingRules(RuleFiles.builtin), [])
    }

    func testRulesCheckWarnsAndStillSucceeds() throws {
        let dir = try fixtureWorkspace([])
        try """
            rule swap-mul {
              match { y = Mul(a, b) }
              replace { y = Mul(b, a) }
            }
            """.write(to: dir.appendingPathComponent("swap.rules"), atomically: true, encoding: .utf8)
        let result = try runOnnxFuse(["rules", "check", "swap.rules"], in: dir)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("onnx-fuse: warning: swap.rules: rule 'swap-mul' may undo itself"), result.stderr)
    }
}
