import XCTest
@testable import ONNXFuseIR
import ONNXFuseTestSupport

/// The intrusive use lists: exact after every kind of edit, and in the order that an array
/// with append and swap-remove gives (the driver visits readers in list order, so the order
/// shows in what a rewrite produces).
final class UseListTests: XCTestCase {
    func floatInput(_ graph: Graph, _ name: String) -> Value {
        graph.addInput(name: name, info: ValueInfo(type: .tensor(.float, [.value(2)])))
    }

    /// The uses as the array of uses before the intrusive lists kept them: appended, and
    /// removed by moving the last one into the hole.
    struct ArrayModel {
        var uses: [ObjectIdentifier: [Use]] = [:]

        mutating func add(_ value: Value?, _ use: Use) {
            guard let value else { return }
            uses[ObjectIdentifier(value), default: []].append(use)
        }

        mutating func remove(_ value: Value?, _ use: Use) {
            guard let value else { return }
            var list = uses[ObjectIdentifier(value)]!
            let index = list.firstIndex(of: use)!
            list.swapAt(index, list.count - 1)
            list.removeLast()
            uses[ObjectIdentifier(value)] = list
        }

        mutating func setInput(_ node: Node, _ index: Int, _ value: Value?) throws {
            let old = node.inputs[index]
            if old === value { return }
            remove(old, Use(node: node, inputIndex: index))
            add(value, Use(node: node, inputIndex: index))
            try node.setInput(index, to: value)
        }

        mutating func append(_ node: Node, to graph: Graph) throws {
            for (index, value) in node.inputs.enumerated() { add(value, Use(node: node, inputIndex: index)) }
            try graph.append(node)
        }

        mutating func erase(_ node: Node, from graph: Graph) throws {
            for (index, value) in node.inputs.enumerated() { remove(value, Use(node: node, inputIndex: index)) }
            try graph.erase(node)
        }

        mutating func replaceAllUses(of old: Value, with new: Value) throws {
            while let last = uses[ObjectIdentifier(old)]?.last { try setInput(last.node, last.inputIndex, new) }
            try old.replaceAllUses(with: new)
        }

        func check(_ value: Value, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
            let expected = uses[ObjectIdentifier(value)] ?? []
            let listed = value.uses
            XCTAssertEqual(Array(listed), expected, message, file: file, line: line)
            XCTAssertEqual(listed.count, expected.count, message, file: file, line: line)
            XCTAssertEqual(listed.isEmpty, expected.isEmpty, message, file: file, line: line)
            XCTAssertEqual(listed.first, expected.first, message, file: file, line: line)
            XCTAssertEqual(listed.last, expected.last, message, file: file, line: line)
        }
    }

    /// Seeded random inserts, erasures, rewirings (a node reading a value twice included),
    /// appended and removed inputs and whole replacements: each list in the array's order.
    func testRandomEditsKeepTheArrayOrder() throws {
        for seed in UInt64(1)...40 {
            var rng = SplitMix64(seed: seed)
            let graph = Graph(name: "g")
            let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
            let values = (0..<4).map { floatInput(graph, "v\($0)") }
            var mirror = ArrayModel()
            var readers: [Node] = []
            var counter = 0
            func someValue() -> Value? {
                let pick = Int.random(in: 0...values.count, using: &rng)
                return pick < values.count ? values[pick] : nil
            }
            for step in 0..<300 {
                switch Int.random(in: 0..<10, using: &rng) {
                case 0...1 where !readers.isEmpty:
                    try mirror.erase(readers.remove(at: Int.random(in: 0..<readers.count, using: &rng)), from: graph)
                case 2...4 where !readers.isEmpty:
                    let node = readers.randomElement(using: &rng)!
                    guard !node.inputs.isEmpty else { continue }
                    try mirror.setInput(node, Int.random(in: 0..<node.inputs.count, using: &rng), someValue())
                case 5 where !readers.isEmpty:
                    let node = readers.randomElement(using: &rng)!
                    if Bool.random(using: &rng) || node.inputs.isEmpty {
                        let value = someValue()
                        mirror.add(value, Use(node: node, inputIndex: node.inputs.count))
                        try node.appendInput(value)
                    } else {
                        let index = node.inputs.count - 1
                        mirror.remove(node.inputs[index], Use(node: node, inputIndex: index))
                        try node.removeLastInput()
                    }
                case 6:
                    let old = values.randomElement(using: &rng)!
                    let new = values.randomElement(using: &rng)!
                    if old !== new { try mirror.replaceAllUses(of: old, with: new) }
                default:
                    counter += 1
                    let inputs = (0..<Int.random(in: 0...3, using: &rng)).map { _ in someValue() }
                    let node = Node(opType: "A", inputs: inputs, outputNames: ["a\(counter)"])
                    try mirror.append(node, to: graph)
                    readers.append(node)
                }
                for value in values { mirror.check(value, "seed \(seed) step \(step)") }
            }
            try model.verify()
        }
    }

    /// A value with thousands of readers, erased in random order: the list stays exact.
    func testManyReadersErasedInRandomOrder() throws {
        let graph = Graph(name: "g")
        let x = floatInput(graph, "x")
        var mirror = ArrayModel()
        var readers: [Node] = []
        for index in 0..<2000 {
            let node = Node(opType: "A", inputs: index % 5 == 0 ? [x, x] : [x], outputNames: ["a\(index)"])
            try mirror.append(node, to: graph)
            readers.append(node)
        }
        XCTAssertEqual(x.uses.count, 2400)
        var rng = SplitMix64(seed: 3)
        readers.shuffle(using: &rng)
        for (step, node) in readers.enumerated() {
            try mirror.erase(node, from: graph)
            if step % 250 == 0 { mirror.check(x, "step \(step)") }
        }
        XCTAssertTrue(x.uses.isEmpty)
        XCTAssertNil(x.uses.first)
        XCTAssertTrue(x.isUnused)
        try graph.verify()
    }

    /// A node that reads one value twice lists two uses; replacing the value moves both, and
    /// the replacement lists them in the order the arrays gave (last use first).
    func testReplaceAllUsesMovesEveryUse() throws {
        let graph = Graph(name: "g")
        let x = floatInput(graph, "x")
        let y = floatInput(graph, "y")
        let a = Node(opType: "A", inputs: [x, x], outputNames: ["a"])
        let b = Node(opType: "B", inputs: [y, x], outputNames: ["b"])
        try graph.append(a)
        try graph.append(b)
        XCTAssertEqual(Array(x.uses), [Use(node: a, inputIndex: 0), Use(node: a, inputIndex: 1), Use(node: b, inputIndex: 1)])
        try x.replaceAllUses(with: y)
        XCTAssertTrue(x.uses.isEmpty)
        XCTAssertEqual(Array(y.uses), [Use(node: b, inputIndex: 0), Use(node: b, inputIndex: 1),
                                       Use(node: a, inputIndex: 1), Use(node: a, inputIndex: 0)])
        XCTAssertTrue(a.inputs.allSatisfy { $0 === y })
        try graph.verify()
    }

    /// A node outside a graph lists no uses; inserting lists them, erasing takes them away
    /// again, and a node that is inserted anew lists them anew.
    func testDetachedNodesListNoUses() throws {
        let graph = Graph(name: "g")
        let x = floatInput(graph, "x")
        let node = Node(opType: "A", inputs: [x, nil, x], outputNames: ["a"])
        XCTAssertTrue(x.uses.isEmpty)
        try node.setInput(1, to: x)
        XCTAssertTrue(x.uses.isEmpty, "a detached node's inputs are not uses")
        try graph.append(node)
        XCTAssertEqual(Array(x.uses).map(\.inputIndex), [0, 1, 2])
        try graph.erase(node)
        XCTAssertTrue(x.uses.isEmpty)
        try graph.append(node)
        XCTAssertEqual(x.uses.count, 3)
        try graph.verify()
    }

    /// Nodes of a subgraph list their uses of outer values; erasing the node that holds the
    /// subgraph, or replacing the attribute, drops them.
    func testSubgraphUsesOfOuterValues() throws {
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let x = floatInput(graph, "x")
        let cond = floatInput(graph, "cond")
        func branch(_ name: String) throws -> (Graph, Node) {
            let body = Graph(name: name)
            let inner = Node(opType: "Mul", inputs: [x, x], outputNames: ["\(name)_t"])
            try body.append(inner)
            try body.addOutput(inner.outputs[0]!, info: ValueInfo(type: nil))
            return (body, inner)
        }
        let (thenBody, thenNode) = try branch("then")
        let (elseBody, elseNode) = try branch("else")
        let outer = Node(opType: "Relu", inputs: [x], outputNames: ["r"])
        try graph.append(outer)
        let ifNode = Node(opType: "If", inputs: [cond], outputNames: ["y"],
                          attributes: [Attribute(name: "then_branch", value: .graph(thenBody)),
                                       Attribute(name: "else_branch", value: .graph(elseBody))])
        try graph.append(ifNode)
        XCTAssertEqual(Set(x.uses), [Use(node: thenNode, inputIndex: 0), Use(node: thenNode, inputIndex: 1),
                                     Use(node: elseNode, inputIndex: 0), Use(node: elseNode, inputIndex: 1),
                                     Use(node: outer, inputIndex: 0)])
        try model.verify()

        ifNode.attributes = [Attribute(name: "then_branch", value: .graph(thenBody))]
        XCTAssertEqual(Set(x.uses), [Use(node: thenNode, inputIndex: 0), Use(node: thenNode, inputIndex: 1),
                                     Use(node: outer, inputIndex: 0)])
        try model.verify()

        try graph.erase(ifNode)
        XCTAssertEqual(Array(x.uses), [Use(node: outer, inputIndex: 0)])
        XCTAssertTrue(cond.uses.isEmpty)
        try model.verify()
    }

    /// Erasing readers while going through the live list (`useList`) never reads a freed node:
    /// the walk sees the list as it changes and ends where an erased slot was unlinked.
    func testErasingReadersWhileIterating() throws {
        let graph = Graph(name: "g")
        let x = floatInput(graph, "x")
        for index in 0..<10 { try graph.append(Node(opType: "A", inputs: [x], outputNames: ["a\(index)"])) }
        var visited = 0
        for use in x.useList {
            visited += 1
            try graph.erase(use.node)
        }
        XCTAssertGreaterThan(visited, 0)
        XCTAssertLessThanOrEqual(visited, 10)
        XCTAssertEqual(x.uses.count, 10 - visited)
        // `uses`, a copy, visits every one.
        for use in x.uses { try graph.erase(use.node) }
        XCTAssertTrue(x.uses.isEmpty)
        XCTAssertNil(graph.firstNode)
        try graph.verify()
    }

    /// A value that outlives its graph lists none of the graph's nodes, not even one a caller
    /// keeps: nodes leave the lists with their graph.
    func testAValueThatOutlivesItsGraph() throws {
        var x: Value?
        var kept: Node?
        do {
            let graph = Graph(name: "g")
            let input = floatInput(graph, "x")
            for index in 0..<5 { try graph.append(Node(opType: "A", inputs: [input, input], outputNames: ["a\(index)"])) }
            kept = graph.lastNode
            x = input
            XCTAssertEqual(input.uses.count, 10)
        }
        // The kept node left the lists with its graph, as an erased one does; it still reads x.
        XCTAssertTrue(x!.uses.isEmpty)
        XCTAssertNil(x!.uses.first)
        XCTAssertTrue(kept!.inputs.allSatisfy { $0 === x })
        kept = nil
        XCTAssertTrue(x!.uses.isEmpty)
    }

    /// `uses` is a copy: going through it while moving every reader to another value moves
    /// every one (a walk of the live list would lose its place at each move).
    func testRewiringEveryReaderWhileGoingThroughUsesMovesThemAll() throws {
        let graph = Graph(name: "g")
        let x = floatInput(graph, "x")
        let y = floatInput(graph, "y")
        for name in ["A", "B", "C"] { try graph.append(Node(opType: name, inputs: [x, x], outputNames: [name.lowercased()])) }
        for use in x.uses { try use.node.setInput(use.inputIndex, to: y) }
        XCTAssertTrue(x.uses.isEmpty)
        XCTAssertEqual(y.uses.count, 6)
        XCTAssertTrue(graph.nodes.allSatisfy { $0.inputs.allSatisfy { $0 === y } })
        try graph.verify()
    }

    /// A view of the live list (`useList`) kept while readers come and go reads the list as it
    /// is then.
    func testAViewKeptAWhileReadsTheListAsItIs() throws {
        let graph = Graph(name: "g")
        let x = floatInput(graph, "x")
        let view = x.useList
        XCTAssertTrue(view.isEmpty)
        try graph.append(Node(opType: "A", inputs: [x], outputNames: ["a"]))
        try graph.append(Node(opType: "B", inputs: [x], outputNames: ["b"]))
        XCTAssertEqual(view.count, 2)
        XCTAssertEqual(view.map(\.node.opType), ["A", "B"])
        try graph.erase(graph.firstNode!)
        XCTAssertEqual(view.map(\.node.opType), ["B"])
        XCTAssertEqual(view.first?.node.opType, "B")
        XCTAssertEqual(view.last?.node.opType, "B")
        try graph.verify()
    }
}
