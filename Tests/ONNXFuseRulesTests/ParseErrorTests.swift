import XCTest
@testable import ONNXFuseRules

/// Every kind of syntax error: where it is reported, what the message expects, and that the
/// parser goes on to report the others.
final class ParseErrorTests: XCTestCase {
    /// The errors of `text`, as `line:column: message`.
    func errors(_ text: String, line: UInt = #line) -> [String] {
        do {
            _ = try parseRules(text, file: "bad.rules")
            XCTFail("parsed without errors", line: line)
            return []
        } catch {
            for e in error.errors { XCTAssertEqual(e.location.file, "bad.rules", line: line) }
            return error.errors.map { "\($0.location.line):\($0.location.column): \($0.message)" }
        }
    }

    /// Asserts that `text` has exactly the errors `expected`.
    func check(_ text: String, _ expected: String..., line: UInt = #line) {
        XCTAssertEqual(errors(text, line: line), expected, line: line)
    }

    /// A rule around `body` lines (starting at line 2).
    func rule(_ body: String) -> String {
        "rule t {\n" + body + "\n}"
    }

    /// A rule whose match block holds `lines` (starting at line 3).
    func match(_ lines: String) -> String {
        "rule t {\n  match {\n" + lines + "\n  }\n  replace { y = x }\n}"
    }

    /// A rule whose where block holds `lines` (starting at line 4).
    func condition(_ lines: String) -> String {
        "rule t {\n  match { y = A(x) }\n  where {\n" + lines + "\n  }\n  replace { y = x }\n}"
    }

    /// A rule whose replace block holds `lines` (starting at line 4).
    func replace(_ lines: String) -> String {
        "rule t {\n  match { y = A(x) }\n  replace {\n" + lines + "\n  }\n}"
    }

    // MARK: - Lexical errors

    func testCommuteOnlyOnOperatorsWhoseInputsAreInterchangeable() {
        let names = "Add, And, BitwiseAnd, BitwiseOr, BitwiseXor, Equal, Max, Mean, Min, Mul, Or, Sum, Xor"
        check(rule(" commute Add, Sub, Mul\n commute Div\n match { y = Sub(a, b) }\n replace { y = a }"),
              "2:15: commute Sub: Sub's inputs are not interchangeable (commute names \(names))",
              "3:10: commute Div: Div's inputs are not interchangeable (commute names \(names))")
        // An operator the schemas do not know (another domain's) is the rule's business.
        XCTAssertNoThrow(try parseRules(rule(" commute FusedAdd\n match { y = ms.FusedAdd(a, b) }\n replace { y = a }"), file: "ok.rules"))
    }

    func testWrongArgumentCountsAreNamedAllAtOnce() throws {
        let text = "rule t {\n  match { y = Relu(x) }\n  where { rank(x, 1) == 2 && constant() && dim(x) == 1 && sqrt(1, 2) > 0 }\n  replace { y = x }\n}\n"
        XCTAssertThrowsError(try compileRules(try parseRules(text, file: "bad.rules"))) { error in
            XCTAssertEqual((error as? RuleErrors)?.errors.map { "\($0.location.line):\($0.location.column): \($0.message)" }, [
                "3:11: rank() takes 1 argument, not 2",
                "3:30: constant() takes at least 1 argument, not 0",
                "3:44: dim() takes 2 arguments, not 1",
                "3:59: sqrt() takes 1 argument, not 2",
            ])
        }
    }

    func testUnterminatedString() {
        check(condition("    s == \"abc\n    t == 1"), "4:10: unterminated string, expected '\"' before the end of the line")
        check(condition("    s == \"abc\\\""), "4:10: unterminated string, expected '\"' before the end of the line")
    }

    func testUnknownEscape() {
        check(condition(#"    s == "a\tb""#), #"4:10: unknown escape '\t' in a string, expected \", \\ or \n"#)
    }

    func testUnexpectedCharacters() {
        check(condition("    a @ b"), "4:7: unexpected character '@'")
        check(condition("    a & b"), "4:7: unexpected character '&', expected '&&'")
        check(condition("    a | b"), "4:7: unexpected character '|', expected '||'")
        check(condition("    a $ b"), "4:7: unexpected character '$'")
        check(condition("    a \u{0}"), "4:7: unexpected character 'U+0'")
        check(condition("    é"), "4:5: unexpected character 'é'")
    }

    func testMalformedNumbers() {
        check(condition("    x == .5"), "4:10: a number starts with a digit: write '0.5' instead of '.5'")
        check(condition("    x == 1e"), "4:10: expected digits in the exponent of the number '1e'")
        check(condition("    x == 1e+"), "4:10: expected digits in the exponent of the number '1e+'")
        check(condition("    x == 1."), "4:10: expected a digit after '.' in the number '1.'")
        check(condition("    x == 12abc"), "4:10: invalid number '12abc'")
        check(condition("    x == 1" + String(repeating: "0", count: 400) + ".0"),
              "4:10: the number '1\(String(repeating: "0", count: 400)).0' is too large")
        check(condition("    x == 9223372036854775808"), "4:10: the integer '9223372036854775808' is too large (more than 9223372036854775807)")
    }

    // MARK: - File and rule structure

    func testTopLevelMustBeRules() {
        check("match { y = A(x) }\nrule a { match { y = A(x) }; replace { y = x } }",
              "1:1: expected 'rule' to start a rule, such as 'rule my-rule { ... }', found 'match'")
        check("rule a { match { y = A(x) }; replace { y = x } } }",
              "1:50: expected 'rule' to start a rule, such as 'rule my-rule { ... }', found '}'")
    }

    func testMissingRuleName() {
        check("rule {\n}", "1:6: expected a rule name after 'rule' (letters, digits, '-' and '_'), found '{'")
        check("rule\nfoo {\n}", "1:5: expected a rule name after 'rule' (letters, digits, '-' and '_'), found end of line")
        check("rule \"a\" {\n}", "1:6: expected a rule name after 'rule' (letters, digits, '-' and '_'), found string \"a\"")
    }

    func testMissingBraceAfterRuleName() {
        check("rule a\n  match { y = A(x) }\n}", "1:7: expected '{' after the name of rule 'a', found end of line")
        check("rule a.b { }", "1:7: expected '{' after the name of rule 'a', found '.'")
    }

    func testUnknownBlock() {
        check(rule("  match { y = A(x) }\n  mach { y = A(x) }\n  replace { y = x }"),
              "3:3: unknown block 'mach', expected match, where, compute or replace")
    }

    func testUnknownItem() {
        check(rule("  match { y = A(x) }\n  priority 3\n  replace { y = x }"),
              "3:3: unknown item 'priority' in rule 't', expected benefit, commute, match, where, compute or replace")
        check(rule("  match { y = A(x) }\n  3\n  replace { y = x }"),
              "3:3: expected benefit, commute, match, where, compute or replace or '}' in rule 't', found '3'")
    }

    func testDuplicateBlocksAndBenefit() {
        // Two match blocks are two forms of the rule; two where blocks are a mistake.
        check(rule("  match { y = A(x) }\n  match { y = B(x) }\n  where { true }\n  where { true }\n  replace { y = x }\n  benefit 2\n  benefit 3"),
              "5:3: rule 't' has more than one where block",
              "8:3: rule 't' has more than one benefit")
    }

    func testMissingRequiredBlocks() {
        check(rule("  where { x > 1 }"),
              "1:1: rule 't' has no match block, expected 'match { ... }'",
              "1:1: rule 't' has no replace block, expected 'replace { ... }'")
        check("# c\nrule t { match { y = A(x) } }", "2:1: rule 't' has no replace block, expected 'replace { ... }'")
    }

    func testEmptyMatch() {
        check(rule("  match {\n  }\n  replace { y = x }"), "2:3: expected at least one node pattern in the match block of rule 't'")
    }

    func testMissingBraceAfterBlockKeyword() {
        check(rule("  match\n    y = A(x)\n  replace { y = x }"), "2:8: expected '{' after 'match', found end of line")
    }

    func testBenefitNeedsAnInteger() {
        check(rule("  benefit 1.5\n  match { y = A(x) }\n  replace { y = x }"), "2:11: expected an integer after 'benefit', found '1.5'")
        check(rule("  benefit\n  match { y = A(x) }\n  replace { y = x }"), "2:10: expected an integer after 'benefit', found end of line")
        check(rule("  benefit 2 3\n  match { y = A(x) }\n  replace { y = x }"), "2:13: expected end of line after 'benefit', found '3'")
    }

    func testCommuteNeedsOperatorNames() {
        check(rule("  commute\n  match { y = A(x) }\n  replace { y = x }"), "2:10: expected an operator name after 'commute', found end of line")
        check(rule("  commute Add,\n  match { y = A(x) }\n  replace { y = x }"), "2:15: expected an operator name after ',', found end of line")
        check(rule("  commute Add Mul\n  match { y = A(x) }\n  replace { y = x }"), "2:15: expected end of line after 'commute', found 'Mul'")
    }

    func testUnclosedBlockBeforeTheNextBlock() {
        check(rule("  match {\n    y = A(x)\n  replace { y = x }"), "4:3: expected '}' to close the match block before 'replace'")
    }

    func testUnclosedRuleBeforeTheNextRule() {
        check("rule a {\n  match { y = A(x) }\n  replace { y = x }\nrule b {\n  match { y = A(x) }\n  replace { y = x }\n}",
              "4:1: expected '}' to close rule 'a' before the next rule")
        check("rule a {\n  match { y = A(x) }\n  replace {\n    y = x\nrule b {\n  match { y = A(x) }\n  replace { y = x }\n}",
              "5:1: expected '}' to close rule 'a' before the next rule")
    }

    func testUnclosedRuleAtTheEnd() {
        check("rule a {\n  match { y = A(x) }\n  replace { y = x }\n\n", "3:20: expected '}' at the end of rule 'a' (opened at line 1)")
        check("rule a {\n  match { y = A(x) }\n  replace {\n    y = x", "4:10: expected '}' at the end of rule 'a' (opened at line 1)")
    }

    // MARK: - Node lines

    func testMissingCloseParenthesisOfInputs() {
        check(match("    y = Conv(x, w\n    z = Relu(y)"), "3:18: expected ')' after the inputs of Conv, found 'z'")
        check(match("    y = Conv(x, w b)"), "3:19: expected ')' after the inputs of Conv, found 'b'")
        check(match("    y = com.ms.Conv(x"), "3:22: expected ')' after the inputs of com.ms.Conv, found '}'")
    }

    func testMissingEquals() {
        check(match("    y Conv(x)"), "3:7: expected '=' after the outputs of a node, found 'Conv'")
        check(match("    Relu(x)"), "3:5: expected the outputs and '=' before Relu, such as 'y = Relu(...)'")
        check(match("    y, = A(x)"), "3:8: expected an output name or '_' after ',', found '='")
        check(match("    \"y\" = A(x)"), "3:5: expected a node line 'outputs = Op(inputs)', such as 'y = Relu(x)', found string \"y\"")
    }

    func testMissingOperator() {
        check(match("    y = (x)"), "3:9: expected an operator name after '=', found '('")
        check(match("    y ="), "3:8: expected an operator name after '=', found end of line")
        check(match("    y = com.(x)"), "3:13: expected a name after 'com.', found '('")
    }

    func testMissingInputs() {
        check(match("    y = x"), "3:10: expected '(' and the inputs after x (forward lines 'z = x' belong in replace), found end of line")
        check(match("    y = Relu x"), "3:14: expected '(' and the inputs after Relu, found 'x'")
        check(match("    y = A<a = 1 > 2>(x)"), "3:19: expected '(' and the inputs after A (inside '<...>', put a comparison with '>' in parentheses), found '2'")
    }

    func testBadInputs() {
        check(match("    y = A(x, 1)"), "3:14: expected an input of A: a name, 'name?', '_' or '...', found '1'")
        check(match("    y = A(x,)"), "3:13: expected an input of A: a name, 'name?', '_' or '...', found ')'")
        check(match("    y = A(..., x)"), "3:11: '...' must be the last input of A")
        check(match("    y = A(_?)"), "3:12: '_' cannot be optional, expected a name before '?'")
        check(replace("    y = A(x, ...)"), "4:14: '...' (any further inputs) is only allowed in match")
    }

    func testBadAttributes() {
        check(match("    y = A<>(x)"), "3:11: expected an attribute of A: 'name = value', 'name: variable', '!name' or '...variable', found '>'")
        check(match("    y = A<axis>(x)"), "3:15: expected '=' or ':' after the attribute name 'axis', found '>'")
        check(match("    y = A<axis = 1(x)"), "3:19: expected '>' after the attributes of A, found '('")
        check(match("    y = A<axis:>(x)"), "3:16: expected a variable name after 'axis:', found '>'")
        check(match("    y = A<!>(x)"), "3:12: expected an attribute name after '!', found '>'")
        check(match("    y = A<...>(x)"), "3:14: expected a variable after '...', such as '...y' to copy the attributes of y's node, found '>'")
        check(match("    y = A<axis = >(x)"), "3:18: expected an expression, found '>'")
    }

    func testAttributeFormsInTheWrongBlock() {
        check(match("    y = A<...z>(x)"), "3:11: '...z' (copy the attributes of z's node) is only allowed in replace")
        check(replace("    y = A<!axis>(x)"), "4:11: '!axis' (the attribute must be absent) is only allowed in match")
        check(replace("    y = A<axis: a>(x)"), "4:11: 'axis: a' binds an attribute, which only match does; write 'axis = a'")
    }

    func testForwardLineShapes() {
        check(replace("    a, b = x"), "4:13: expected '(' and the inputs after x; a forward line 'z = x' has one name on each side")
        check(replace("    _ = x"), "4:10: expected '(' and the inputs after x; a forward line 'z = x' has one name on each side")
        check(replace("    y = x z"), "4:11: expected '(' and the inputs after x, found 'z'")
    }

    func testExtraTextAfterALine() {
        check(match("    y = A(x) B"), "3:14: expected end of line after a node pattern, found 'B'")
        check(replace("    y = A(x) B"), "4:14: expected end of line after a node, found 'B'")
        check(replace("    y = x)"), "4:10: expected '(' and the inputs after x, found ')'")
    }

    // MARK: - Expressions

    func testMissingExpression() {
        check(condition("    x =="), "4:9: expected an expression, found '}'")
        check(condition("    x +"), "4:8: expected an expression, found '}'")
        check(condition("    x && )"), "4:10: expected an expression, found ')'")
        check(condition("    _ == 1"), "4:5: expected an expression, found '_'")
    }

    func testComparisonsDoNotChain() {
        check(condition("    a < b < c"), "4:11: comparisons do not chain: expected '&&', '||' or parentheses before '<' (after '<')")
        check(condition("    a == b in c"), "4:12: comparisons do not chain: expected '&&', '||' or parentheses before 'in' (after '==')")
    }

    func testAssignmentInWhere() {
        check(condition("    a = 1"), "4:7: expected '==' to compare, found '='")
    }

    func testUnclosedBrackets() {
        check(condition("    (a + b"), "4:11: expected ')' to close the '(' at line 4, column 5, found '}'")
        check(condition("    [a, b"), "4:10: expected ']' after the elements of the list, found '}'")
        check(condition("    [a b]"), "4:8: expected ']' after the elements of the list, found 'b'")
        check(condition("    f(a, b\n    g(x)"), "4:11: expected ')' after the arguments of f, found 'g'")
    }

    func testExtraTextAfterAnExpression() {
        check(condition("    a b"), "4:7: expected end of line after a condition, found 'b'")
        check(condition("    (a)(b)"), "4:8: expected end of line after a condition, found '('")
    }

    func testComputeLines() {
        let compute = { (line: String) in "rule t {\n  match { y = A(x) }\n  compute {\n\(line)\n  }\n  replace { y = x }\n}" }
        check(compute("    k"), "4:6: expected '=' after 'k' in a compute line 'name = expression', found end of line")
        check(compute("    k == 1"), "4:7: expected '=' after 'k' in a compute line 'name = expression', found '=='")
        check(compute("    1 = k"), "4:5: expected a compute line 'name = expression', found '1'")
        check(compute("    k = 1 2"), "4:11: expected end of line after the value of 'k', found '2'")
        check(compute("    k ="), "4:8: expected an expression, found end of line")
    }

    func testTooDeeplyNested() {
        let deep = String(repeating: "(", count: 300) + "a" + String(repeating: ")", count: 300)
        check(condition("    " + deep), "4:69: expression nested too deeply (more than 64 levels)")
    }

    func testLongFlatChainsAreRefusedNotOverflowingTheStack() {
        // 30,000 operators without parentheses made a tree as deep, which overflowed the stack
        // of the checker; the tree's depth is bounded (512 levels) wherever it comes from.
        for op in ["+", "&&", "||", "++", "*"] {
            let chain = (0..<30_000).map { _ in "1" }.joined(separator: " \(op) ")
            let found = errors(condition("    " + chain + " == 1"))
            XCTAssertEqual(found.count, 1, op)
            XCTAssertTrue(found.first?.contains("4:5: expression more than 512 levels deep") ?? false, "\(op): \(found)")
        }
        // 500 is fine, and checks and compiles.
        let fine = (0..<500).map { _ in "1" }.joined(separator: " + ")
        XCTAssertNoThrow(try compileRules(try parseRules(condition("    " + fine + " == 500"), file: "fine.rules")))
    }

    // MARK: - Several errors

    func testEveryErrorOfAFileIsReported() {
        let text = """
        # Errors on lines 3, 5, 6, 9, 10, 11, 12, 13, 16, 19, 20 and 22; the rest is fine.
        rule first {
          mach { y = A(x) }
          match {
            y = Conv(x, w
            z = BatchNormalization<epsilon: = 1>(y)
            ok = Relu(z)
          }
          where { a < b < c }
          where { ok == 1 }
          compute { k = "abc }
          replace {
            z = Conv(x, w, ...)
            y = x
          }
          benefit x
        }
        rule second {
          match { y = Div(x, c) } where { s == .5 }
          replace { y = Mul(x, r @) }
        }
        rule
        rule third { match { y = A(x) }; replace { y = x } }
        """
        XCTAssertEqual(errors(text), [
            "3:3: unknown block 'mach', expected match, where, compute or replace",
            "5:18: expected ')' after the inputs of Conv, found 'z'",
            "6:37: expected a variable name after 'epsilon:', found '='",
            "10:3: rule 'first' has more than one where block",
            "9:17: comparisons do not chain: expected '&&', '||' or parentheses before '<' (after '<')",
            "11:17: unterminated string, expected '\"' before the end of the line",
            // The unterminated string took the compute block's '}' with it.
            "12:3: expected '}' to close the compute block before 'replace'",
            "13:20: '...' (any further inputs) is only allowed in match",
            "16:11: expected an integer after 'benefit', found 'x'",
            "19:40: a number starts with a digit: write '0.5' instead of '.5'",
            "20:26: unexpected character '@'",
            "22:5: expected a rule name after 'rule' (letters, digits, '-' and '_'), found end of line",
        ].sorted { a, b in
            let (la, lb) = (a.split(separator: ":"), b.split(separator: ":"))
            return (Int(la[0])!, Int(la[1])!) < (Int(lb[0])!, Int(lb[1])!)
        })
    }

    func testRecoveryDoesNotCascade() {
        // One mistake per line; each line reports exactly one error and the good lines none.
        check(match("    y = A(x y)\n    z = B(y)\n    w = C(z,, y)\n    v = D(w)"),
              "3:13: expected ')' after the inputs of A, found 'y'",
              "5:13: expected an input of C: a name, 'name?', '_' or '...', found ','")
    }

    func testDescriptionListsOneErrorPerLine() {
        do {
            _ = try parseRules("rule a {\n  match { y = A(x }\n  replace { y = x ] }\n}", file: "dir/my.rules")
            XCTFail("parsed")
        } catch {
            XCTAssertEqual(error.description, """
            dir/my.rules:2:19: expected ')' after the inputs of A, found '}'
            dir/my.rules:3:19: expected '(' and the inputs after x, found ']'
            """)
            XCTAssertEqual(error.errors.map(\.description), error.description.split(separator: "\n").map(String.init))
        }
    }

    func testAnyOperatorBelongsToMatchAndEndsTheOperator() {
        check(replace("y = _(x)"), "4:5: '_' (any operator) is only allowed in match; replace must name the operator")
        check(replace("y = _"), "4:5: a forward line 'z = x' needs a value on the right, not '_'")
        check(match("y = ai._.Relu(x)"), "3:9: '_' (any operator) must be the last part of the operator, after the domain")
        check(match("initializer w x"), "3:15: expected end of line after 'initializer w', found 'x'")
    }

    func testAHundredThousandTermChainIsAnErrorNotACrash() {
        // The tree is not built past the limit: releasing a 100,000-level tree recursed
        // through the stack (found by the hostile battery).
        let guardText = Array(repeating: "true", count: 100_000).joined(separator: " && ")
        let text = "rule r {\n  match { y = Relu(x) }\n  where { \(guardText) }\n  replace { y = Relu(x) }\n}\n"
        check(text, "3:11: expression more than 512 levels deep (a chain of that many operators); split it into lines of the guard or use lists")
    }
}
