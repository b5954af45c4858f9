import XCTest
@testable import ONNXFuseIR
import ONNXFuseTestSupport

/// Seeded random edits across a graph and the subgraphs of its If nodes (whose nodes read
/// outer values): after each, every value lists exactly the reads that the nodes in graphs
/// make, and the model verifies; then the model is released while some nodes and values are
/// kept, and the kept values list exactly the kept nodes' reads.
final class UseListSubgraphFuzzTests: XCTestCase {
    /// The reads of `value` by nodes that are in a graph, as (node, input) pairs.
    func reads(of value: Value, in nodes: [Node]) -> Set<Use> {
        var result = Set<Use>()
        for node in nodes where node.graph != nil {
            for (index, input) in node.inputs.enumerated() where input === value { result.insert(Use(node: node, inputIndex: index)) }
        }
        return result
    }

    func testRandomEditsAcrossSubgraphs() throws {
        for seed in UInt64(1)...60 {
            var rng = SplitMix64(seed: seed)
            var keptValues: [Value] = []
            var keptNodes: [Node] = []
            do {
                let graph = Graph(name: "g")
                let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
                let values = (0..<4).map { graph.addInput(name: "v\($0)", info: ValueInfo(type: nil)) }
                var all: [Node] = []          // every node made, in a graph or not
                var bodies: [Graph] = []      // subgraphs of If nodes in the main graph
                var counter = 0
                func name() -> String { counter += 1; return "n\(counter)" }
                func someValue() -> Value? {
                    let pick = Int.random(in: 0...values.count, using: &rng)
                    return pick < values.count ? values[pick] : nil
                }
                func someGraph() -> Graph {
                    let pick = Int.random(in: 0...bodies.count, using: &rng)
                    return pick < bodies.count ? bodies[pick] : graph
                }
                for step in 0..<250 {
                    let inGraph = all.filter { $0.graph != nil && $0.opType != "If" }
                    switch Int.random(in: 0..<12, using: &rng) {
                    case 0 where !inGraph.isEmpty:
                        let node = inGraph.randomElement(using: &rng)!
                        guard node.outputs.allSatisfy({ $0?.isUnused ?? true }) else { continue }
                        try node.graph!.erase(node)
                    case 1...3 where !inGraph.isEmpty:
                        let node = inGraph.randomElement(using: &rng)!
                        guard !node.inputs.isEmpty else { continue }
                        try node.setInput(Int.random(in: 0..<node.inputs.count, using: &rng), to: someValue())
                    case 4 where !inGraph.isEmpty:
                        let node = inGraph.randomElement(using: &rng)!
                        try node.setInputs((0..<Int.random(in: 0...4, using: &rng)).map { _ in someValue() })
                    case 5:
                        // An If whose branches read outer values.
                        let thenBody = Graph(name: name()), elseBody = Graph(name: name())
                        for body in [thenBody, elseBody] {
                            let inner = Node(opType: "A", inputs: [someValue(), someValue()], outputNames: [name()])
                            try body.append(inner)
                            try body.addOutput(inner.outputs[0]!, info: ValueInfo(type: nil))
                            all.append(inner)
                        }
                        let ifNode = Node(opType: "If", inputs: [someValue()], outputNames: [name()],
                                          attributes: [Attribute(name: "then_branch", value: .graph(thenBody)),
                                                       Attribute(name: "else_branch", value: .graph(elseBody))])
                        try graph.append(ifNode)
                        all.append(ifNode)
                        bodies += [thenBody, elseBody]
                    case 6:
                        // Erase an If (its subgraphs' uses go), or drop one of its branches.
                        guard let ifNode = all.first(where: { $0.opType == "If" && $0.graph != nil }) else { continue }
                        if Bool.random(using: &rng) {
                            try graph.erase(ifNode)
                        } else {
                            ifNode.attributes = Array(ifNode.attributes.prefix(1))
                        }
                        bodies = all.filter { $0.opType == "If" && $0.graph != nil }.flatMap(\.subgraphs)
                    case 7 where !inGraph.isEmpty:
                        // Move a node to another graph of the model.
                        let node = inGraph.randomElement(using: &rng)!
                        guard node.outputs.allSatisfy({ $0?.isUnused ?? true }) else { continue }
                        try node.graph!.erase(node)
                        try someGraph().append(node)
                    case 8:
                        let old = values.randomElement(using: &rng)!, new = values.randomElement(using: &rng)!
                        if old !== new { try old.replaceAllUses(with: new) }
                    case 9 where !inGraph.isEmpty:
                        let node = inGraph.randomElement(using: &rng)!
                        if Bool.random(using: &rng) || node.inputs.isEmpty { try node.appendInput(someValue()) } else { try node.removeLastInput() }
                    default:
                        let node = Node(opType: "A", inputs: (0..<Int.random(in: 0...3, using: &rng)).map { _ in someValue() },
                                        outputNames: [name()])
                        try someGraph().append(node)
                        all.append(node)
                    }
                    for value in values {
                        XCTAssertEqual(Set(value.uses), reads(of: value, in: all), "seed \(seed) step \(step) \(value.name)")
                        XCTAssertEqual(value.uses.count, reads(of: value, in: all).count, "seed \(seed) step \(step)")
                    }
                    try model.verify()
                }
                keptValues = values.filter { _ in Bool.random(using: &rng) }
                keptNodes = all.filter { _ in Int.random(in: 0..<4, using: &rng) == 0 }
            }
            // The model and its graphs are gone; the kept nodes (and the nodes of their
            // subgraphs, which they hold) are still listed, nothing else.
            var alive: [Node] = []
            var pending = keptNodes
            while let node = pending.popLast() {
                alive.append(node)
                for body in node.subgraphs { pending += Array(body.nodes) }
            }
            for value in keptValues {
                var expected = Set<Use>()
                for node in alive where node.useLinks.contains(where: \.isListed) {
                    for (index, input) in node.inputs.enumerated() where input === value { expected.insert(Use(node: node, inputIndex: index)) }
                }
                let listed = Set(value.uses)
                XCTAssertTrue(listed.allSatisfy { use in alive.contains { $0 === use.node } }, "seed \(seed): a released node is listed")
                XCTAssertEqual(listed, expected, "seed \(seed)")
            }
            alive = []
            keptNodes = []
            for value in keptValues { XCTAssertTrue(value.uses.isEmpty, "seed \(seed)") }
        }
    }
}
