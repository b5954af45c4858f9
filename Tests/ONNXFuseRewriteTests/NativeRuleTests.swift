import XCTest
import ONNXFuseIR
@testable import ONNXFuseRewrite

/// Native rules (written in Swift) on toy operators: the engine applies what they return and
/// keeps its own guards, knowing no ONNX.
final class NativeRuleTests: XCTestCase {
    typealias Builder = EngineTests.Builder

    /// `K(x)` becomes the constant [7]; `P(x)` passes `x` through.
    let constantRule = RewriteRule(name: "k-to-constant", benefit: 2, opTypes: ["K"]) { _, _ in
        .success(.replaceOutputs([.tensor(Tensor(dataType: .float, dims: [1], values: [Float(7)]))]))
    }
    let passRule = RewriteRule(name: "p-passes", benefit: 1, opTypes: ["P"]) { node, _ in
        .success(.replaceOutputs([.value(node.inputs[0]!)]))
    }

    func testConstantReplacesTheNodeAndTakesItsName() throws {
        let b = Builder()
        let x = b.input("x")
        let k = try b.node("K", [x], ["k"])
        try b.output(b.node("U", [k.outputs[0]], ["y"]).outputs[0])
        let report = try b.rewrite(with: [constantRule])
        XCTAssertEqual(report.fired.map(\.count), [1])
        XCTAssertEqual(b.graph.nodeCount, 1)
        XCTAssertEqual(b.graph.initializers.map(\.name), ["k"])
        XCTAssertTrue(b.graph.firstNode!.inputs[0]!.hasInitializer)
    }

    func testAGraphOutputBecomesAConstantOrAnIdentityOfAGraphInput() throws {
        let b = Builder()
        let x = b.input("x")
        try b.output(b.node("K", [x], ["k"]).outputs[0])
        try b.output(b.node("P", [x], ["p"]).outputs[0])
        let report = try b.rewrite(with: [constantRule, passRule], passThrough: ("Identity", ""))
        XCTAssertEqual(report.fired.map(\.rule), ["k-to-constant", "p-passes"])
        XCTAssertEqual(b.graph.outputs.map(\.value.name), ["k", "p"])
        // The graph input cannot take the output's name p: an Identity of it keeps the name.
        XCTAssertEqual(b.graph.nodes.map(\.opType), ["Identity"])
        XCTAssertTrue(b.graph.outputs[1].value.producer?.inputs[0] === x)
        XCTAssertEqual(report.explanations.map(\.reason), [])
    }

    func testWithoutAPassThroughOperatorAGraphOutputCannotBecomeAGraphInput() throws {
        // The engine knows no operator: without one named by the host, the rewrite is refused.
        let b = Builder()
        let x = b.input("x")
        try b.output(b.node("P", [x], ["p"]).outputs[0])
        let report = try b.rewrite(with: [passRule])
        XCTAssertEqual(report.fired.map(\.rule), [])
        XCTAssertEqual(b.graph.nodes.map(\.opType), ["P"])
        XCTAssertEqual(report.explanations.map(\.reason), ["output 'p' is a graph output and what replaces it cannot take its name"])
    }

    func testAnIdentityIsNotReplacedByAnIdentity() throws {
        // A rule removing Identity nodes would only make its node again.
        let b = Builder()
        let x = b.input("x")
        try b.output(try b.node("Identity", [x], ["p"]).outputs[0])
        let removeIdentity = RewriteRule(name: "remove-identity", benefit: 1, opTypes: ["Identity"]) { node, _ in
            .success(.replaceOutputs([.value(node.inputs[0]!)]))
        }
        let report = try b.rewrite(with: [removeIdentity], passThrough: ("Identity", ""))
        XCTAssertEqual(report.fired.map(\.rule), [])
        XCTAssertEqual(report.explanations.map(\.reason), ["output 'p' is a graph output and what replaces it cannot take its name"])
    }

    func testAnUnreplacedOutputMustBeUnused() throws {
        let b = Builder()
        let x = b.input("x")
        let two = try b.node("K", [x], ["first", "second"])
        try b.output(b.node("U", [two.outputs[0], two.outputs[1]], ["y"]).outputs[0])
        let before = b.text
        let report = try b.rewrite(with: [constantRule])
        XCTAssertEqual(report.fired.count, 0)
        XCTAssertEqual(b.text, before)
        XCTAssertEqual(report.explanations.map(\.reason), ["output 'second' is used and the rule does not replace it"])
    }

    func testChainsOfPassThroughsCollapseAndUsersAreRevisited() throws {
        let b = Builder()
        let x = b.input("x")
        var value = x
        for index in 0..<5 { value = try b.node("P", [value], ["p\(index)"]).outputs[0]! }
        try b.output(b.node("U", [value], ["y"]).outputs[0])
        let report = try b.rewrite(with: [passRule])
        XCTAssertEqual(report.fired.map(\.count), [5])
        XCTAssertEqual(b.graph.nodeCount, 1)
        XCTAssertTrue(b.graph.firstNode!.inputs[0] === x)
    }

    func testARuleWithSeveralRootsIsTriedAtEachAndNowhereElse() throws {
        let pass = RewriteRule(name: "p-or-q-passes", benefit: 1, opTypes: ["P", "Q"]) { node, _ in .success(.replaceOutputs([.value(node.inputs[0]!)])) }
        let b = Builder()
        let x = b.input("x")
        let q = try b.node("Q", [b.node("P", [x], ["p"]).outputs[0]], ["q"])
        let r = try b.node("R", [q.outputs[0]], ["r"])
        try b.output(b.node("U", [r.outputs[0]], ["y"]).outputs[0])
        let report = try b.rewrite(with: [pass])
        XCTAssertEqual(report.fired.map(\.count), [2])
        XCTAssertEqual(b.graph.nodes.map(\.opType), ["R", "U"])
    }

    func testRefusalIsExplained() throws {
        let refuse = RewriteRule(name: "never", benefit: 1, opTypes: ["K"]) { _, _ in .failure(RuleRefusal("not today")) }
        let b = Builder()
        try b.output(b.node("K", [b.input("x")], ["k"]).outputs[0])
        let report = try b.rewrite(with: [refuse])
        XCTAssertEqual(report.explanations.map(\.description), ["never at node 'k': not today"])
    }

    func testRewiredInputsKeepTheNodeAndLeaveWhatNoLongerHasReadersToItsRule() throws {
        // S(P(x)) reads x directly and a constant [3] in place of its second input. P, now
        // unread, is not the engine's to remove (it may have effects): only a rule removes it,
        // and is counted for it.
        let skip = RewriteRule(name: "s-skips-p", benefit: 1, opTypes: ["S"]) { node, _ in
            guard let inner = node.inputs[0]?.producer, inner.opType == "P" else { return .failure(RuleRefusal("no P")) }
            return .success(.rewireInputs([(position: 0, input: .value(inner.inputs[0]!)),
                                           (position: 1, input: .tensor(Tensor(dataType: .float, dims: [1], values: [Float(3)])))]))
        }
        let dropDead = RewriteRule(name: "drop-dead-p", benefit: 0, opTypes: ["P"]) { node, _ in
            guard node.outputs.allSatisfy({ $0?.isUnused ?? true }) else { return .failure(RuleRefusal("read")) }
            return .success(.replaceOutputs(node.outputs.map { _ in nil }))
        }
        for rules in [[skip], [skip, dropDead]] {
            let b = Builder()
            let x = b.input("x")
            let s = try b.node("S", [b.node("P", [x], ["p"]).outputs[0], b.input("old")], ["s"])
            try b.output(s.outputs[0])
            let report = try b.rewrite(with: rules)
            XCTAssertEqual(report.fired.map { "\($0.rule) ×\($0.count)" }, rules.map { "\($0.name) ×1" })
            XCTAssertEqual(b.graph.nodes.map(\.opType), rules.count == 1 ? ["P", "S"] : ["S"])
            XCTAssertTrue(s.inputs[0] === x)
            XCTAssertTrue(s.inputs[1]!.hasInitializer)
            XCTAssertEqual(b.graph.outputs.map(\.value.name), ["s"])
        }
    }
}
