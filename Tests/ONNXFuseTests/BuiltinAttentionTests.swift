import XCTest
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// The built-in attention rule (`Sources/ONNXFuse/Rules/attention.rules`): softmax(Q·Kᵀ / s
/// [+ mask]) · V fused into Attention (opset 23); every run checks each rewrite's numbers with
/// the reference kernels (`RuleTestGraph.run`), and the cases where it must not fire say why.
final class BuiltinAttentionTests: XCTestCase {
    static var rules: [CompiledRule] { RuleFiles.builtin.filter { $0.file == "builtin:attention.rules" } }

    /// What an attention case changes: Q [2, 2, 3, 4], K and V [2, kvHeads, 3, 4].
    struct Case {
        var opset: Int64 = 23
        var kvHeads: Int64 = 2
        var perm: [Int64] = [0, 1, 3, 2]
        var multiply = false
        var mask: [Int64]?
        var axis: Int64 = -1
        var scale: [Float] = [2]
    }

    func attention(_ c: Case) throws -> RuleTestGraph {
        let test = RuleTestGraph(rules: Self.rules, opset: c.opset)
        let q = test.input("q", [2, 2, 3, 4]), k = test.input("k", [2, c.kvHeads, 3, 4]), v = test.input("v", [2, c.kvHeads, 3, 4])
        func node(_ op: String, _ inputs: [Value], _ output: String, _ attributes: [Attribute] = []) throws -> Value {
            let node = Node(opType: op, name: output, inputs: inputs, outputNames: [output], attributes: attributes)
            try test.graph.append(node)
            return node.outputs[0]!
        }
        let kt = try node("Transpose", [k], "kt", [Attribute(name: "perm", value: .ints(c.perm))])
        let s = try node("MatMul", [q, kt], "s")
        let scale = test.constant("scale", c.scale, c.scale.count == 1 ? [] : [Int64(c.scale.count)])
        var z = try c.multiply ? node("Mul", [scale, s], "z") : node("Div", [s, scale], "z")
        if let dims = c.mask {
            let count = Int(dims.reduce(1, *))
            z = try node("Add", [z, test.constant("mask", (0..<count).map { Float($0 % 3) - 1 }, dims)], "w")
        }
        let a = try node("Softmax", [z], "a", [Attribute(name: "axis", value: .int(c.axis))])
        try test.output(test.node("Neg", [node("MatMul", [a, v], "y")], "out"))
        return test
    }

    func testAttentionFusesWithItsScaleAndMask() throws {
        for c in [Case(mask: [2, 1, 3, 3]), Case(multiply: true), Case(kvHeads: 1, mask: [3, 3]), Case(axis: 3)] {
            let test = try attention(c)
            XCTAssertEqual(try test.run().fired.map(\.rule), ["fuse-attention"], "\(c)")
            XCTAssertEqual(test.graph.nodes.map(\.opType), ["Attention", "Neg"], "\(c)")
            let node = try XCTUnwrap(test.graph.firstNode)
            XCTAssertEqual(node.attribute("scale")?.float, c.multiply ? 2 : 0.5, "\(c)")
            XCTAssertEqual(node.inputs.count, c.mask == nil ? 3 : 4, "\(c)")
        }
    }

    func testAttentionStaysWhereItMust() throws {
        func reasons(_ c: Case) throws -> [String] { try attention(c).reasonsNothingFires(for: "fuse-attention") }
        XCTAssertTrue(try reasons(Case(opset: 22)).contains { $0.contains("opset() >= 23") })
        // Softmax over the queries, not the keys.
        XCTAssertTrue(try reasons(Case(axis: 2)).contains { $0.contains("ax == -1 || ax == 3") })
        // A Transpose that also swaps the heads and the batch.
        XCTAssertTrue(try reasons(Case(perm: [1, 0, 3, 2])).contains { $0.contains("p == [0, 1, 3, 2]") })
        // A scale per key is not Attention's one scale.
        XCTAssertTrue(try reasons(Case(scale: [1, 2, 3])).contains { $0.contains("numel(default(d, m)) == 1") })
        // A mask of rank 5 broadens the scores to rank 5: Attention's output would keep rank 4.
        XCTAssertTrue(try reasons(Case(mask: [2, 2, 2, 3, 3])).contains { $0.contains("rank(mask) <= 4") || $0.contains("shape(w) == shape(s)") })
    }
}
