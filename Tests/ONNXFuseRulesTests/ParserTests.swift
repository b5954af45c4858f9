import XCTest
@testable import ONNXFuseRules

/// The example file of the brief and of `docs/rules.md`, verbatim.
let parserExampleFile = """
# Fold an inference-mode BatchNormalization into the Conv that feeds it.
rule fold-conv-batchnorm {
  benefit 10
  match {
    y = Conv(x, w, b?)
    z = BatchNormalization<epsilon: eps = 1e-5, training_mode: tm = 0>(y, scale, shift, mean, var)
  }
  where {
    tm == 0 && constant(w, b, scale, shift, mean, var)
    rank(w) >= 3 && shape(scale) == [dim(w, 0)]
  }
  compute {
    k  = scale / sqrt(var + eps)
    w2 = w * reshape(k, [dim(w, 0)] ++ ones(rank(w) - 1))
    b2 = (default(b, 0) - mean) * k + shift
  }
  replace {
    z = Conv<...y>(x, w2, b2)
  }
}

# Replace a division by a constant with a multiplication by its reciprocal.
rule div-by-constant {
  match   { y = Div(x, c) }
  where   { constant(c) && dtype(c) in [float, double, float16] }
  compute { r = 1 / c }
  replace { y = Mul(x, r) }
}

"""

/// Renders syntax trees as compact text so tests can compare whole trees: binary operators
/// fully parenthesized, `(- x)` for unary minus, numbers written without `.` when integer.
enum ParseTestRender {
    static func of(_ e: ONNXFuseRules.Expression) -> String {
        switch e {
        case .number(let value, let integer, _):
            return integer.map { String($0) } ?? "\(value)"
        case .string(let value, _):
            let escaped = value.replacingOccurrences(of: "\\", with: "\\\\")
                .replacingOccurrences(of: "\"", with: "\\\"")
                .replacingOccurrences(of: "\n", with: "\\n")
            return "\"" + escaped + "\""
        case .boolean(let value, _):
            return String(value)
        case .name(let name, _):
            return name
        case .call(let name, let arguments, _):
            return name + "(" + arguments.map(of).joined(separator: ", ") + ")"
        case .list(let elements, _):
            return "[" + elements.map(of).joined(separator: ", ") + "]"
        case .unary(let op, let operand, _):
            return "(" + op.rawValue + " " + of(operand) + ")"
        case .binary(let op, let left, let right, _):
            return "(" + of(left) + " " + op.rawValue + " " + of(right) + ")"
        }
    }

    static func of(_ node: NodeSyntax) -> String {
        var text = node.outputs.map { $0 ?? "_" }.joined(separator: ", ") + " = "
        if let domain = node.domain { text += domain + "." }
        text += node.opType
        if !node.attributes.isEmpty {
            text += "<" + node.attributes.map(of).joined(separator: ", ") + ">"
        }
        return text + "(" + node.inputs.map(of).joined(separator: ", ") + ")"
    }

    static func of(_ attribute: AttributeSyntax) -> String {
        switch attribute {
        case .equals(let name, let value, _): return name + " = " + of(value)
        case .bind(let name, let variable, let value, _): return name + ": " + variable + (value.map { " = " + of($0) } ?? "")
        case .absent(let name, _): return "!" + name
        case .copyFrom(let variable, _): return "..." + variable
        }
    }

    static func of(_ input: InputSyntax) -> String {
        switch input {
        case .variable(let name): return name
        case .optional(let name): return name + "?"
        case .any: return "_"
        case .rest: return "..."
        }
    }

    static func of(_ replacement: Replacement) -> String {
        switch replacement {
        case .node(let node): return of(node)
        case .forward(let target, let source, _): return target + " -> " + source
        }
    }

    static func of(_ assignment: Assignment) -> String {
        assignment.name + " = " + of(assignment.value)
    }

    static func location(of attribute: AttributeSyntax) -> SourceLocation {
        switch attribute {
        case .equals(_, _, let l), .bind(_, _, _, let l), .absent(_, let l), .copyFrom(_, let l): return l
        }
    }
}

final class ParserTests: XCTestCase {
    typealias R = ParseTestRender

    /// Parses `text`, failing the test (with every error) when it does not parse.
    func parse(_ text: String, file: String = "test.rules", line: UInt = #line) throws -> [RuleSyntax] {
        do {
            return try parseRules(text, file: file).rules
        } catch {
            XCTFail("unexpected errors:\n\(error)", line: line)
            throw error
        }
    }

    /// The one rule of `text`.
    func rule(_ text: String, line: UInt = #line) throws -> RuleSyntax {
        let rules = try parse(text, line: line)
        XCTAssertEqual(rules.count, 1, line: line)
        return try XCTUnwrap(rules.first, line: line)
    }

    /// The rendered conditions of a rule whose `where` block is `conditions`.
    func guards(_ conditions: String, line: UInt = #line) throws -> [String] {
        try rule("rule t {\n match { y = A(x) }\n where {\n\(conditions)\n }\n replace { y = x }\n}", line: line)
            .guards.map(R.of)
    }

    /// The rendered value of the single condition `expression`.
    func expression(_ expression: String, line: UInt = #line) throws -> String {
        let all = try guards(expression, line: line)
        XCTAssertEqual(all.count, 1, "\(all)", line: line)
        return all.first ?? ""
    }

    func loc(_ line: Int, _ column: Int, file: String = "test.rules") -> SourceLocation {
        SourceLocation(file: file, line: line, column: column)
    }

    // MARK: - The example file

    func testExampleFileRulesAndHeaders() throws {
        let file = try parseRules(parserExampleFile, file: "example.rules")
        XCTAssertEqual(file.file, "example.rules")
        XCTAssertEqual(file.rules.map(\.name), ["fold-conv-batchnorm", "div-by-constant"])
        let (fold, div) = (file.rules[0], file.rules[1])
        XCTAssertEqual(fold.location, loc(2, 1, file: "example.rules"))
        XCTAssertEqual(div.location, loc(23, 1, file: "example.rules"))
        XCTAssertEqual(fold.comment, ["Fold an inference-mode BatchNormalization into the Conv that feeds it."])
        XCTAssertEqual(div.comment, ["Replace a division by a constant with a multiplication by its reciprocal."])
        XCTAssertEqual(fold.benefit, 10)
        XCTAssertEqual(div.benefit, 1)
        XCTAssertEqual(fold.commutative, [])
        XCTAssertEqual(div.commutative, [])
    }

    func testExampleFileText() throws {
        let rules = try parse(parserExampleFile)
        let lines = parserExampleFile.split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(rules[0].text, lines[1...19].joined(separator: "\n"))
        XCTAssertEqual(rules[1].text, lines[22...27].joined(separator: "\n"))
        XCTAssertTrue(rules[0].text.hasPrefix("rule fold-conv-batchnorm {\n  benefit 10\n"))
        XCTAssertTrue(rules[0].text.hasSuffix("    z = Conv<...y>(x, w2, b2)\n  }\n}"))
    }

    func testExampleFoldConvBatchnormTree() throws {
        let fold = try parse(parserExampleFile)[0]
        XCTAssertEqual(fold.match.map(R.of), [
            "y = Conv(x, w, b?)",
            "z = BatchNormalization<epsilon: eps = 1e-05, training_mode: tm = 0>(y, scale, shift, mean, var)",
        ])
        XCTAssertEqual(fold.guards.map(R.of), [
            "((tm == 0) && constant(w, b, scale, shift, mean, var))",
            "((rank(w) >= 3) && (shape(scale) == [dim(w, 0)]))",
        ])
        XCTAssertEqual(fold.computes.map(R.of), [
            "k = (scale / sqrt((var + eps)))",
            "w2 = (w * reshape(k, ([dim(w, 0)] ++ ones((rank(w) - 1)))))",
            "b2 = (((default(b, 0) - mean) * k) + shift)",
        ])
        XCTAssertEqual(fold.replacements.map(R.of), ["z = Conv<...y>(x, w2, b2)"])
    }

    func testExampleFoldConvBatchnormDetails() throws {
        let fold = try parse(parserExampleFile)[0]
        let conv = fold.match[0], bn = fold.match[1]
        XCTAssertEqual(conv.outputs, ["y"])
        XCTAssertNil(conv.domain)
        XCTAssertEqual(conv.opType, "Conv")
        XCTAssertEqual(conv.inputs, [.variable("x"), .variable("w"), .optional("b")])
        XCTAssertTrue(conv.attributes.isEmpty)
        XCTAssertEqual(conv.location, loc(5, 5))
        XCTAssertEqual(bn.location, loc(6, 5))
        XCTAssertEqual(bn.inputs, [.variable("y"), .variable("scale"), .variable("shift"), .variable("mean"), .variable("var")])
        XCTAssertEqual(bn.attributes.count, 2)
        guard case .bind("epsilon", "eps", .number(let eps, integer: nil, let epsAt)?, let at0) = bn.attributes[0],
              case .bind("training_mode", "tm", .number(0, integer: 0, let tmAt)?, let at1) = bn.attributes[1] else {
            return XCTFail("attributes: \(bn.attributes)")
        }
        XCTAssertEqual(eps, 1e-5)
        XCTAssertEqual(at0, loc(6, 28))
        XCTAssertEqual(epsAt, loc(6, 43))
        XCTAssertEqual(at1, loc(6, 49))
        XCTAssertEqual(tmAt, loc(6, 69))

        guard case .binary(.and, .binary(.equal, .name("tm", let tmNameAt), .number(0, 0, _), let eqAt), .call("constant", let args, let callAt), let andAt) = fold.guards[0] else {
            return XCTFail("guard: \(fold.guards[0])")
        }
        XCTAssertEqual(args.count, 6)
        XCTAssertEqual(tmNameAt, loc(9, 5))
        XCTAssertEqual(eqAt, loc(9, 5))
        XCTAssertEqual(andAt, loc(9, 5))
        XCTAssertEqual(callAt, loc(9, 16))

        XCTAssertEqual(fold.computes.map(\.name), ["k", "w2", "b2"])
        XCTAssertEqual(fold.computes.map(\.location), [loc(13, 5), loc(14, 5), loc(15, 5)])
        // `(default(b, 0) - mean) * k + shift`: the product starts at the parenthesis.
        guard case .binary(.add, .binary(.multiply, .binary(.subtract, _, _, let innerAt), _, let productAt), _, _) = fold.computes[2].value else {
            return XCTFail("b2: \(fold.computes[2].value)")
        }
        XCTAssertEqual(productAt, loc(15, 10))
        XCTAssertEqual(innerAt, loc(15, 11))

        guard case .node(let conv2) = fold.replacements[0], case .copyFrom("y", let copyAt) = conv2.attributes[0] else {
            return XCTFail("replace: \(fold.replacements)")
        }
        XCTAssertEqual(conv2.location, loc(18, 5))
        XCTAssertEqual(copyAt, loc(18, 14))
        XCTAssertEqual(conv2.inputs, [.variable("x"), .variable("w2"), .variable("b2")])
    }

    func testExampleDivByConstantTree() throws {
        let div = try parse(parserExampleFile)[1]
        XCTAssertEqual(div.match.map(R.of), ["y = Div(x, c)"])
        XCTAssertEqual(div.match[0].location, loc(24, 13))
        XCTAssertEqual(div.guards.map(R.of), ["(constant(c) && (dtype(c) in [float, double, float16]))"])
        XCTAssertEqual(div.computes.map(R.of), ["r = (1 / c)"])
        XCTAssertEqual(div.computes[0].location, loc(26, 13))
        XCTAssertEqual(div.replacements.map(R.of), ["y = Mul(x, r)"])
        guard case .binary(.and, _, .binary(.in, _, .list(let types, let listAt), _), _) = div.guards[0] else {
            return XCTFail("guard: \(div.guards[0])")
        }
        XCTAssertEqual(listAt, loc(25, 40))
        guard case .name("float16", let at) = types[2] else { return XCTFail("\(types)") }
        XCTAssertEqual(at, loc(25, 56))
    }

    // MARK: - Rule headers

    func testCommuteRepeatsAndCollects() throws {
        let r = try rule("""
        rule t {
          commute Add, Mul
          match { y = Add(a, b) }
          commute Max
          replace { y = Mul(a, b) }
          commute And; commute Or
        }
        """)
        XCTAssertEqual(r.commutative, ["Add", "Mul", "Max", "And", "Or"])
    }

    func testBenefit() throws {
        XCTAssertEqual(try rule("rule t { benefit 7\n match { y = A(x) }\n replace { y = x } }").benefit, 7)
        XCTAssertEqual(try rule("rule t { benefit -2\n match { y = A(x) }\n replace { y = x } }").benefit, -2)
        XCTAssertEqual(try rule("rule t { match { y = A(x) }\n replace { y = x } }").benefit, 1)
    }

    func testBlocksInAnyOrder() throws {
        let r = try rule("""
        rule any-order {
          replace { y = B(x, k) }
          compute { k = 2 }
          where { x != 0 }
          benefit 3
          match { y = A(x) }
        }
        """)
        XCTAssertEqual(r.match.map(R.of), ["y = A(x)"])
        XCTAssertEqual(r.guards.map(R.of), ["(x != 0)"])
        XCTAssertEqual(r.computes.map(R.of), ["k = 2"])
        XCTAssertEqual(r.replacements.map(R.of), ["y = B(x, k)"])
        XCTAssertEqual(r.benefit, 3)
    }

    func testRuleNames() throws {
        let rules = try parse("""
        rule a { match { y = A(x) }; replace { y = x } }
        rule fold_2-step-3 { match { y = A(x) }; replace { y = x } }
        rule 3d-pool { match { y = A(x) }; replace { y = x } }
        rule A-B { match { y = A(x) }; replace { y = x } }
        """)
        XCTAssertEqual(rules.map(\.name), ["a", "fold_2-step-3", "3d-pool", "A-B"])
    }

    func testEmptyFileAndCommentsOnly() throws {
        XCTAssertEqual(try parse("").count, 0)
        XCTAssertEqual(try parse("\n\n# just a comment\n   # another\n\n").count, 0)
        XCTAssertEqual(try parseRules("", file: "x").file, "x")
    }

    func testDefaultFileName() throws {
        let file = try parseRules("rule a { match { y = A(x) }; replace { y = x } }")
        XCTAssertEqual(file.file, "<string>")
        XCTAssertEqual(file.rules[0].location.file, "<string>")
    }

    // MARK: - Comments and text

    func testCommentIsTheRunOfCommentLinesRightBeforeRule() throws {
        let rules = try parse("""
        # File header, separated by a blank line.

        # First line.
        #Second line without a space.
        #   Indented: only one space is stripped.
        #
          # Indented comment lines count too.
        rule a { # not part of the comment
          # neither is this
          match { y = A(x) } # nor this
          replace { y = x }
        }
        # Right after the previous rule's brace.
        rule b { match { y = A(x) }; replace { y = x } }
        rule c { match { y = A(x) }; replace { y = x } } # a trailing comment is no comment line
        rule d { match { y = A(x) }; replace { y = x } }
        """)
        XCTAssertEqual(rules.count, 4)
        XCTAssertEqual(rules[0].comment, [
            "First line.",
            "Second line without a space.",
            "  Indented: only one space is stripped.",
            "",
            "Indented comment lines count too.",
        ])
        XCTAssertEqual(rules[1].comment, ["Right after the previous rule's brace."])
        XCTAssertEqual(rules[2].comment, [])
        XCTAssertEqual(rules[3].comment, [])
    }

    func testCommentsAreIgnoredInsideRulesAndStringsKeepHashes() throws {
        let r = try rule("""
        rule t {
          match {
            # a comment line in a block
            y = A(x) # and after a line
          }
          where { s == "# not a comment" } # after a block
          replace { y = x }
        }
        """)
        XCTAssertEqual(r.match.map(R.of), ["y = A(x)"])
        XCTAssertEqual(r.guards.map(R.of), ["(s == \"# not a comment\")"])
    }

    func testTextIsExactIncludingCommentsAndCarriageReturns() throws {
        let source = "# c\r\nrule t {\r\n  match { y = A(x) } # m\r\n  replace { y = x }\r\n}\r\nrule u { match { y = A(x) }; replace { y = x } }"
        let rules = try parse(source)
        XCTAssertEqual(rules[0].comment, ["c"])
        XCTAssertEqual(rules[0].text, "rule t {\r\n  match { y = A(x) } # m\r\n  replace { y = x }\r\n}")
        XCTAssertEqual(rules[1].text, "rule u { match { y = A(x) }; replace { y = x } }")
        XCTAssertEqual(rules[1].location, loc(6, 1))
    }

    func testColumnsCountUnicodeScalars() throws {
        // "é" is one scalar (two UTF-8 bytes); "👍" is one scalar (four bytes).
        let r = try rule("rule t {\n match { y = A(x) }\n where { \"é👍\" == x }\n replace { y = x }\n}")
        guard case .binary(.equal, .string("é👍", let s), .name("x", let x), _) = r.guards[0] else {
            return XCTFail("\(r.guards)")
        }
        XCTAssertEqual(s, loc(3, 10))
        XCTAssertEqual(x, loc(3, 18))
    }

    func testByteOrderMarkIsSkipped() throws {
        let rules = try parse("\u{FEFF}# c\nrule a { match { y = A(x) }; replace { y = x } }")
        XCTAssertEqual(rules[0].comment, ["c"])
        XCTAssertEqual(rules[0].location, loc(2, 1))
    }

    // MARK: - Layout

    func testOneLineBlocksSemicolonsAndWholeRuleOnOneLine() throws {
        let rules = try parse("""
        rule a { match { y = A(x); z = B(y) }; where { x > 0; y < 1 }; compute { k = 1; j = 2 }; replace { z = C(x, k); y = x } }
        rule b { match { y = A(x) } replace { y = x } }
        rule c {
          match {
            y = A(x) ;; z = B(y)

          }
          replace { z = C(x) };
        }
        """)
        XCTAssertEqual(rules.map(\.name), ["a", "b", "c"])
        XCTAssertEqual(rules[0].match.map(R.of), ["y = A(x)", "z = B(y)"])
        XCTAssertEqual(rules[0].guards.map(R.of), ["(x > 0)", "(y < 1)"])
        XCTAssertEqual(rules[0].computes.map(R.of), ["k = 1", "j = 2"])
        XCTAssertEqual(rules[0].replacements.map(R.of), ["z = C(x, k)", "y -> x"])
        XCTAssertEqual(rules[2].match.map(R.of), ["y = A(x)", "z = B(y)"])
    }

    func testMultiLineExpressions() throws {
        XCTAssertEqual(try guards("""
            f(a,
              b)
            [1,
             2] == x
            (a
              + b) > 0
            a &&
              b ||
              c
            a ==
              b
            a + b
            - c
            """), [
            "f(a, b)",
            "([1, 2] == x)",
            "((a + b) > 0)",
            "((a && b) || c)",
            "(a == b)",
            "(a + b)",
            "(- c)",
        ])
        XCTAssertEqual(try guards("x in\n  [a, b]\na ++\n b"), ["(x in [a, b])", "(a ++ b)"])
    }

    func testMultiLineNodes() throws {
        let r = try rule("""
        rule t {
          match {
            y = Op<
              a = 1,
              b: v
            >(
              x,
              w
            )
          }
          replace { y = x }
        }
        """)
        XCTAssertEqual(r.match.map(R.of), ["y = Op<a = 1, b: v>(x, w)"])
    }

    // MARK: - Node patterns

    func testNodeOutputsDomainsAndInputs() throws {
        let r = try rule("""
        rule t {
          match {
            a, _, c = Split(x)
            _ = com.microsoft.FusedConv(x, w, _, b?)
            d = ai.onnx.ml.Scaler(...)
            e = Concat(a, c, ...)
            f = RandomNormal()
            g = Op(_, _)
          }
          replace { a = x }
        }
        """)
        XCTAssertEqual(r.match.map(R.of), [
            "a, _, c = Split(x)",
            "_ = com.microsoft.FusedConv(x, w, _, b?)",
            "d = ai.onnx.ml.Scaler(...)",
            "e = Concat(a, c, ...)",
            "f = RandomNormal()",
            "g = Op(_, _)",
        ])
        XCTAssertEqual(r.match[0].outputs, ["a", nil, "c"])
        XCTAssertEqual(r.match[1].outputs, [nil])
        XCTAssertEqual(r.match[1].domain, "com.microsoft")
        XCTAssertEqual(r.match[1].opType, "FusedConv")
        XCTAssertEqual(r.match[1].inputs, [.variable("x"), .variable("w"), .any, .optional("b")])
        XCTAssertEqual(r.match[2].domain, "ai.onnx.ml")
        XCTAssertEqual(r.match[2].opType, "Scaler")
        XCTAssertEqual(r.match[2].inputs, [.rest])
        XCTAssertEqual(r.match[3].inputs, [.variable("a"), .variable("c"), .rest])
        XCTAssertEqual(r.match[4].inputs, [])
        XCTAssertEqual(r.match[5].inputs, [.any, .any])
    }

    func testMatchAttributesOfEveryKind() throws {
        let r = try rule("""
        rule t {
          match {
            y = Op<axis = -1, mode = "constant", keep = true, pads = [0, 0], k: kv, e: ev = 1e-5, !group, flag = 2 * 3>(x)
          }
          replace { y = x }
        }
        """)
        XCTAssertEqual(r.match.map(R.of), [
            "y = Op<axis = (- 1), mode = \"constant\", keep = true, pads = [0, 0], k: kv, e: ev = 1e-05, !group, flag = (2 * 3)>(x)",
        ])
        let attributes = r.match[0].attributes
        XCTAssertEqual(attributes.map(R.location), [
            loc(3, 12), loc(3, 23), loc(3, 42), loc(3, 55), loc(3, 70), loc(3, 77), loc(3, 91), loc(3, 99),
        ])
        guard case .absent("group", _) = attributes[6], case .bind("k", "kv", nil, _) = attributes[4] else {
            return XCTFail("\(attributes)")
        }
    }

    func testReplaceAttributes() throws {
        let r = try rule("""
        rule t {
          match { y = Conv<group: g>(x, w) }
          replace {
            y = Conv<...y, group = g * 2, strides = [1, 1]>(x, w)
            z = Relu(y)
          }
        }
        """)
        XCTAssertEqual(r.replacements.map(R.of), [
            "y = Conv<...y, group = (g * 2), strides = [1, 1]>(x, w)",
            "z = Relu(y)",
        ])
    }

    func testGreaterThanInsideAttributesNeedsParentheses() throws {
        let r = try rule("""
        rule t {
          match { y = A<a = 1, b = (x > 2), c = [x > 2], d = f(x > 2), e = x >= 2, f = x < 2>(x) }
          replace { y = x }
        }
        """)
        XCTAssertEqual(r.match.map(R.of), ["y = A<a = 1, b = (x > 2), c = [(x > 2)], d = f((x > 2)), e = (x >= 2), f = (x < 2)>(x)"])
    }

    func testForwardLines() throws {
        let r = try rule("""
        rule t {
          match { y = Identity(x) }
          replace {
            y = x
            z = com.ms.Op(y)
            w = Op<a = 1>(y)
          }
        }
        """)
        XCTAssertEqual(r.replacements.map(R.of), ["y -> x", "z = com.ms.Op(y)", "w = Op<a = 1>(y)"])
        guard case .forward("y", "x", let at) = r.replacements[0] else { return XCTFail() }
        XCTAssertEqual(at, loc(4, 5))
    }

    func testReplaceInputsMayBeAbsentOrOptional() throws {
        let r = try rule("rule t { match { y = A(x, b?) }\n replace { y = B(x, _, b?) } }")
        guard case .node(let node) = r.replacements[0] else { return XCTFail() }
        XCTAssertEqual(node.inputs, [.variable("x"), .any, .optional("b")])
    }

    func testBlockKeywordsAreOrdinaryNamesInsideBlocks() throws {
        let r = try rule("""
        rule t {
          match { match, where = Split(rule) }
          compute { compute = where + match }
          replace { replace = B(compute) }
        }
        """)
        XCTAssertEqual(r.match.map(R.of), ["match, where = Split(rule)"])
        XCTAssertEqual(r.computes.map(R.of), ["compute = (where + match)"])
        XCTAssertEqual(r.replacements.map(R.of), ["replace = B(compute)"])
    }
}
