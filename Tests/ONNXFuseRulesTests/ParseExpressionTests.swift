import XCTest
@testable import ONNXFuseRules

/// Literals, precedence and associativity of expressions.
final class ParseExpressionTests: XCTestCase {
    /// The conditions of a `where` block holding `lines`, rendered fully parenthesized.
    func conditions(_ lines: String, line: UInt = #line) -> [String] {
        do {
            let file = try parseRules("rule t {\n match { y = A(x) }\n where {\n\(lines)\n }\n replace { y = x }\n}", file: "e")
            return file.rules[0].guards.map(ParseTestRender.of)
        } catch {
            XCTFail("unexpected errors:\n\(error)", line: line)
            return []
        }
    }

    /// The single condition `text`, rendered.
    func parsed(_ text: String, line: UInt = #line) -> String {
        let all = conditions(text, line: line)
        XCTAssertEqual(all.count, 1, "\(all)", line: line)
        return all.first ?? ""
    }

    /// The single condition `text`, as a tree.
    func tree(_ text: String, line: UInt = #line) throws -> ONNXFuseRules.Expression {
        let file = try parseRules("rule t {\n match { y = A(x) }\n where {\n\(text)\n }\n replace { y = x }\n}", file: "e")
        return try XCTUnwrap(file.rules.first?.guards.first, line: line)
    }

    // MARK: - Literals

    func testNumbers() throws {
        XCTAssertEqual(parsed("[1, 0.5, 1e-5, 2.0, 1E+3, 25e2, 007, 1.25e-2]"), "[1, 0.5, 1e-05, 2.0, 1000.0, 2500.0, 7, 0.0125]")
        // Integers keep their exact value: 2^53 + 1 and INT64_MAX have no float64.
        let cases: [(String, Double, Int64?)] = [
            ("1", 1, 1), ("0.5", 0.5, nil), ("1e-5", 1e-5, nil), ("2.0", 2, nil), ("3E2", 300, nil),
            ("123456789", 123456789, 123456789), ("9223372036854774784", 9223372036854774784, 9223372036854774784),
            ("9007199254740993", 9007199254740992, 9007199254740993), ("9223372036854775807", 0x1p63, .max),
            ("1e300", 1e300, nil),
        ]
        for (text, value, integer) in cases {
            guard case .number(let v, let i, let at) = try tree(text) else { return XCTFail(text) }
            XCTAssertEqual(v, value, text)
            XCTAssertEqual(i, integer, text)
            XCTAssertEqual(at, SourceLocation(file: "e", line: 4, column: 1))
        }
    }

    func testStrings() throws {
        guard case .string(let value, let at) = try tree(#"  "a \"quoted\" back\\slash\nnew line # not a comment""#) else {
            return XCTFail()
        }
        XCTAssertEqual(value, "a \"quoted\" back\\slash\nnew line # not a comment")
        XCTAssertEqual(at, SourceLocation(file: "e", line: 4, column: 3))
        XCTAssertEqual(parsed(#""" == "é""#), #"("" == "é")"#)
    }

    func testBooleansAndNames() throws {
        XCTAssertEqual(parsed("true != false"), "(true != false)")
        guard case .binary(.notEqual, .boolean(true, _), .boolean(false, _), _) = try tree("true != false") else {
            return XCTFail()
        }
        XCTAssertEqual(parsed("[float, _x1, truex, in_, int8]"), "[float, _x1, truex, in_, int8]")
        guard case .list(let items, _) = try tree("[float, truex]"), case .name("truex", _) = items[1] else {
            return XCTFail()
        }
    }

    func testCallsAndLists() {
        XCTAssertEqual(parsed("f()"), "f()")
        XCTAssertEqual(parsed("f (a, g(b), [])"), "f(a, g(b), [])")
        XCTAssertEqual(parsed("[[1, 2], [], [f(x)]]"), "[[1, 2], [], [f(x)]]")
        XCTAssertEqual(parsed("((((a))))"), "a")
    }

    // MARK: - Precedence, loosest to tightest: || && (cmp) ++ (+ -) (* /) unary call

    func testEachLevelBindsTighterThanTheOneBefore() {
        XCTAssertEqual(parsed("a || b && c"), "(a || (b && c))")
        XCTAssertEqual(parsed("a && b || c"), "((a && b) || c)")
        XCTAssertEqual(parsed("a && b == c"), "(a && (b == c))")
        XCTAssertEqual(parsed("a == b && c"), "((a == b) && c)")
        XCTAssertEqual(parsed("a == b ++ c"), "(a == (b ++ c))")
        XCTAssertEqual(parsed("a ++ b == c"), "((a ++ b) == c)")
        XCTAssertEqual(parsed("a ++ b + c"), "(a ++ (b + c))")
        XCTAssertEqual(parsed("a - b ++ c"), "((a - b) ++ c)")
        XCTAssertEqual(parsed("a + b * c"), "(a + (b * c))")
        XCTAssertEqual(parsed("a / b - c"), "((a / b) - c)")
        XCTAssertEqual(parsed("-a * b"), "((- a) * b)")
        XCTAssertEqual(parsed("a * -b"), "(a * (- b))")
        XCTAssertEqual(parsed("-f(x)"), "(- f(x))")
        XCTAssertEqual(parsed("!a && b"), "((! a) && b)")
        XCTAssertEqual(parsed("!(a || b)"), "(! (a || b))")
        XCTAssertEqual(parsed("a || b && c == d ++ e + f * -g(h)"), "(a || (b && (c == (d ++ (e + (f * (- g(h))))))))")
        XCTAssertEqual(parsed("-g(h) * f + e ++ d == c && b || a"), "(((((((- g(h)) * f) + e) ++ d) == c) && b) || a)")
        XCTAssertEqual(parsed("(a || b) && c"), "((a || b) && c)")
        XCTAssertEqual(parsed("(a + b) * c"), "((a + b) * c)")
    }

    func testEveryComparisonOperatorAtTheSameLevel() {
        for op in ["==", "!=", "<", "<=", ">", ">=", "in"] {
            XCTAssertEqual(parsed("a + 1 \(op) b ++ c"), "((a + 1) \(op) (b ++ c))", op)
            XCTAssertEqual(parsed("a \(op) b && c \(op) d"), "((a \(op) b) && (c \(op) d))", op)
        }
    }

    func testLeftAssociativity() {
        XCTAssertEqual(parsed("a || b || c"), "((a || b) || c)")
        XCTAssertEqual(parsed("a && b && c"), "((a && b) && c)")
        XCTAssertEqual(parsed("a ++ b ++ c"), "((a ++ b) ++ c)")
        XCTAssertEqual(parsed("a - b - c"), "((a - b) - c)")
        XCTAssertEqual(parsed("a + b - c + d"), "(((a + b) - c) + d)")
        XCTAssertEqual(parsed("a / b / c"), "((a / b) / c)")
        XCTAssertEqual(parsed("a * b / c * d"), "(((a * b) / c) * d)")
        XCTAssertEqual(parsed("a - -b"), "(a - (- b))")
        XCTAssertEqual(parsed("--a"), "(- (- a))")
        XCTAssertEqual(parsed("!!a"), "(! (! a))")
        XCTAssertEqual(parsed("!-a"), "(! (- a))")
    }

    func testComparisonsAreNonAssociativeButParenthesesAllowChains() {
        XCTAssertEqual(parsed("(a < b) == c"), "((a < b) == c)")
        XCTAssertEqual(parsed("a == (b in c)"), "(a == (b in c))")
    }

    func testInIsAKeywordOnlyInOperatorPosition() {
        XCTAssertEqual(parsed("in in [in]"), "(in in [in])")
        XCTAssertEqual(parsed("f(in) in in"), "(f(in) in in)")
        XCTAssertEqual(parsed("in + 1"), "(in + 1)")
    }

    func testMinusIsAnOperatorInExpressions() {
        XCTAssertEqual(parsed("a-b"), "(a - b)")
        XCTAssertEqual(parsed("rank(w)-1"), "(rank(w) - 1)")
        XCTAssertEqual(parsed("a-1e-5"), "(a - 1e-05)")
    }

    func testLocationsAreWhereEachExpressionStarts() throws {
        let e = try tree("   -a + (b * c)")
        guard case .binary(.add, .unary(.negate, .name("a", let aAt), let negAt), .binary(.multiply, .name("b", let bAt), _, let mulAt), let addAt) = e else {
            return XCTFail("\(e)")
        }
        let at = { (column: Int) in SourceLocation(file: "e", line: 4, column: column) }
        XCTAssertEqual(addAt, at(4))
        XCTAssertEqual(negAt, at(4))
        XCTAssertEqual(aAt, at(5))
        XCTAssertEqual(mulAt, at(10))
        XCTAssertEqual(bAt, at(10))
        // A parenthesized left operand: the binary starts at its '('.
        guard case .binary(.multiply, _, _, let outer) = try tree("(a + b) * c") else { return XCTFail() }
        XCTAssertEqual(outer, at(1))
    }

    func testDeepestNestingFitsASmallThreadStack() {
        // 21 × (unary, list, call) + the name: 64 levels, the most the parser takes.
        let text = "rule t { match { y = A(x) }\n where { " + String(repeating: "-[f(", count: 21) + "a"
            + String(repeating: ")]", count: 21) + " }\n replace { y = x } }"
        let done = expectation(description: "parsed")
        let thread = Thread {
            do throws(RuleErrors) {
                let file = try parseRules(text)
                XCTAssertEqual(file.rules.first?.guards.count, 1)
            } catch {
                XCTFail("\(error)")
            }
            done.fulfill()
        }
        thread.stackSize = 512 * 1024
        thread.start()
        wait(for: [done], timeout: 10)
    }

    func testDeepButBoundedNesting() {
        let depth = 60
        XCTAssertEqual(parsed(String(repeating: "(", count: depth) + "a" + String(repeating: ")", count: depth)), "a")
        XCTAssertEqual(parsed(String(repeating: "-", count: depth) + "1").count, depth * 4 + 1)
    }
}
