import XCTest
import ONNXFuseIR
import ONNXFuseTestSupport

final class GraphMutationTests: XCTestCase {
    func floatInput(_ graph: Graph, _ name: String) -> Value {
        graph.addInput(name: name, info: ValueInfo(type: .tensor(.float, [.value(2)])))
    }

    func testBuildingKeepsUseListsExact() throws {
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let x = floatInput(graph, "x")
        let a = Node(opType: "A", inputs: [x, x], outputNames: ["a"])
        try graph.append(a)
        let b = Node(opType: "B", inputs: [a.outputs[0], x], outputNames: ["b"])
        try graph.append(b)
        try graph.addOutput(b.outputs[0]!, info: ValueInfo(type: nil))
        XCTAssertEqual(x.uses.count, 3)
        XCTAssertEqual(Set(x.uses), [Use(node: a, inputIndex: 0), Use(node: a, inputIndex: 1), Use(node: b, inputIndex: 1)])
        XCTAssertTrue(b.outputs[0]!.isGraphOutput)
        XCTAssertTrue(a.outputs[0]!.producer === a)
        try model.verify()
    }

    func testNodeOrderSurvivesManyInsertionsAtOnePlace() throws {
        // Inserting again and again before the same node halves the gap between order keys
        // until none is left; the graph then renumbers, and the order stays exact.
        let graph = Graph(name: "g")
        let x = floatInput(graph, "x")
        let first = Node(opType: "A", name: "first", inputs: [x], outputNames: ["first"])
        let last = Node(opType: "A", name: "last", inputs: [x], outputNames: ["last"])
        try graph.append(first)
        try graph.append(last)
        var successor = last
        for index in 0..<200 {
            let node = Node(opType: "B", name: "n\(index)", inputs: [x], outputNames: ["n\(index)"])
            try graph.insert(node, before: index % 3 == 0 ? last : successor)
            successor = node
        }
        let order = Array(graph.nodes)
        for (i, a) in order.enumerated() {
            for b in order[(i + 1)...] {
                XCTAssertTrue(try a.isBefore(b), "\(a.name ?? "") before \(b.name ?? "")")
                XCTAssertFalse(try b.isBefore(a))
            }
        }
        // Erasing keeps the order of what stays.
        try graph.erase(order[5])
        XCTAssertTrue(try order[4].isBefore(order[6]))
    }

    func testSetInputUpdatesBothEnds() throws {
        let graph = Graph()
        let x = floatInput(graph, "x"), y = floatInput(graph, "y")
        let node = Node(opType: "A", inputs: [x], outputNames: ["a"])
        try graph.append(node)
        try node.setInput(0, to: y)
        XCTAssertTrue(x.uses.isEmpty)
        XCTAssertEqual(Array(y.uses), [Use(node: node, inputIndex: 0)])
        try node.setInput(0, to: nil)
        XCTAssertTrue(y.uses.isEmpty)
        try node.setInputs([x, y, x])
        XCTAssertEqual(x.uses.count, 2)
        try node.setInputs([y])
        XCTAssertTrue(x.uses.isEmpty)
        XCTAssertEqual(y.uses.count, 1)
        try graph.verify()
    }

    func testReplaceAllUsesLeavesGraphOutputsAlone() throws {
        let graph = Graph()
        let x = floatInput(graph, "x")
        let a = Node(opType: "A", inputs: [x], outputNames: ["a"])
        let b = Node(opType: "B", inputs: [x], outputNames: ["b"])
        try graph.append(a)
        try graph.append(b)
        let c = Node(opType: "C", inputs: [a.outputs[0], a.outputs[0]], outputNames: ["c"])
        try graph.append(c)
        try graph.addOutput(a.outputs[0]!, info: ValueInfo(type: nil))
        try graph.addOutput(c.outputs[0]!, info: ValueInfo(type: nil))
        try a.outputs[0]!.replaceAllUses(with: b.outputs[0]!)
        XCTAssertEqual(c.inputs.map { $0?.name }, ["b", "b"])
        XCTAssertTrue(a.outputs[0]!.isGraphOutput, "graph outputs are not node uses")
        try graph.setOutput(0, to: b.outputs[0]!)
        XCTAssertTrue(a.outputs[0]!.isUnused)
        try graph.erase(a)
        XCTAssertEqual(graph.nodeCount, 2)
        XCTAssertEqual(x.uses.count, 1)
        try graph.verify()
    }

    func testSubgraphUsesOuterValuesAndErasureDropsThem() throws {
        let graph = Graph(name: "main")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let x = floatInput(graph, "x")
        let w = graph.addInitializer(name: "w", tensor: Tensor(dataType: .float, dims: [2], values: [Float(1), 2]))
        let body = Graph(name: "then")
        let inner = Node(opType: "Mul", inputs: [x, w], outputNames: ["t"])
        try body.append(inner)
        try body.addOutput(inner.outputs[0]!, info: ValueInfo(type: nil))
        let cond = floatInput(graph, "cond")
        let ifNode = Node(opType: "If", inputs: [cond], outputNames: ["y"],
                          attributes: [Attribute(name: "then_branch", value: .graph(body))])
        try graph.append(ifNode)
        try graph.addOutput(ifNode.outputs[0]!, info: ValueInfo(type: nil))
        XCTAssertTrue(body.parentNode === ifNode)
        XCTAssertTrue(body.model === model)
        XCTAssertEqual(x.uses.count, 1)
        XCTAssertEqual(w.uses.count, 1)
        try model.verify()

        // Replacing the attribute drops the old subgraph's uses of outer values.
        ifNode.attributes = []
        XCTAssertTrue(x.uses.isEmpty)
        XCTAssertTrue(w.uses.isEmpty)
        try model.verify()
    }

    func testVerifyCatchesBrokenInvariants() throws {
        let graph = Graph()
        let x = floatInput(graph, "x")
        let a = Node(opType: "A", inputs: [x], outputNames: ["a"])
        try graph.append(a)
        let b = Node(opType: "B", inputs: [a.outputs[0]], outputNames: ["b"])
        try graph.append(b)
        b.outputs[0]!.name = "x"
        XCTAssertThrowsError(try graph.verify()) { error in
            XCTAssertTrue("\(error)".contains("reuses the name"), "\(error)")
        }
        b.outputs[0]!.name = "b"
        XCTAssertNoThrow(try graph.verify())

        // A node that reads a value defined after it breaks topological order.
        let c = Node(opType: "C", inputs: [x], outputNames: ["c"])
        try graph.insert(c, before: a)
        // (The public `setInput` refuses this: the unchecked form the engine uses does not.)
        c.setInputUnchecked(0, to: b.outputs[0])
        XCTAssertThrowsError(try graph.verify()) { error in
            XCTAssertTrue("\(error)".contains("not defined before it"), "\(error)")
        }
    }

    func testConstantsAndOverridableInitializers() throws {
        let graph = Graph()
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let tensor = Tensor(dataType: .float, dims: [1], values: [Float(3)])
        let fixed = graph.addInitializer(name: "fixed", tensor: tensor)
        let input = floatInput(graph, "overridable")
        try graph.setInitializer(tensor, forInput: input)
        let plain = floatInput(graph, "plain")
        XCTAssertNotNil(fixed.constantTensor())
        XCTAssertNil(input.constantTensor(), "an initializer that is also an input can be overridden")
        XCTAssertNotNil(input.constantTensor(freezeInitializerInputs: true))
        XCTAssertNil(plain.constantTensor())
        model.irVersion = 3
        XCTAssertNotNil(input.constantTensor(), "before IR version 4 initializers are constants")

        let constant = Node(opType: "Constant", inputs: [], outputNames: ["k"],
                            attributes: [Attribute(name: "value_floats", value: .floats([1, 2]))])
        try graph.append(constant)
        XCTAssertEqual(constant.outputs[0]!.constantTensor()?.doubleValues(), [1, 2])
        let custom = Node(opType: "Constant", domain: "custom", inputs: [], outputNames: ["k2"],
                          attributes: [Attribute(name: "value_floats", value: .floats([1, 2]))])
        try graph.append(custom)
        XCTAssertNil(custom.outputs[0]!.constantTensor(), "only the default domain's Constant is known")
    }

    /// A value read hundreds of times: erasing, rewiring and adding readers in random order
    /// keeps the use list exact.
    func testManyReadersKeepExactUseLists() throws {
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let x = floatInput(graph, "x")
        let y = floatInput(graph, "y")
        var readers: [Node] = []
        for index in 0..<300 {
            let node = Node(opType: "A", inputs: index % 3 == 0 ? [x, x] : [x, y], outputNames: ["a\(index)"])
            try graph.append(node)
            readers.append(node)
        }
        func expected(_ value: Value) -> Set<Use> {
            var uses = Set<Use>()
            for node in graph.nodes {
                for (index, input) in node.inputs.enumerated() where input === value { uses.insert(Use(node: node, inputIndex: index)) }
            }
            return uses
        }
        var rng = SplitMix64(seed: 7)
        var counter = 0
        for step in 0..<900 {
            switch Int.random(in: 0..<4, using: &rng) {
            case 0 where !readers.isEmpty:
                try graph.erase(readers.remove(at: Int.random(in: 0..<readers.count, using: &rng)))
            case 1 where !readers.isEmpty:
                let node = readers.randomElement(using: &rng)!
                try node.setInput(Int.random(in: 0..<2, using: &rng), to: Bool.random(using: &rng) ? x : y)
            default:
                counter += 1
                let node = Node(opType: "B", inputs: [y, x, x], outputNames: ["b\(counter)"])
                try graph.append(node)
                readers.append(node)
            }
            XCTAssertEqual(x.uses.count, Set(x.uses).count, "step \(step)")
            XCTAssertEqual(Set(x.uses), expected(x), "step \(step)")
            XCTAssertEqual(Set(y.uses), expected(y), "step \(step)")
        }
        try model.verify()
        // Down to a few readers, and up again.
        while readers.count > 3 { try graph.erase(readers.removeLast()) }
        XCTAssertEqual(Set(x.uses), expected(x))
        for index in 0..<100 { try graph.append(Node(opType: "C", inputs: [x], outputNames: ["c\(index)"])) }
        XCTAssertEqual(Set(x.uses), expected(x))
        try model.verify()
    }

    /// Seeded random edits through the public API, `verify()` after every step.
    func testRandomEditsKeepInvariants() throws {
        for seed in UInt64(1)...200 {
            var rng = SplitMix64(seed: seed)
            do {
                try runRandomEdits(&rng, steps: 60)
            } catch {
                XCTFail("seed \(seed): \(error)")
                return
            }
        }
    }

    private func runRandomEdits(_ rng: inout SplitMix64, steps: Int) throws {
        let graph = Graph(name: "main")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        var counter = 0
        func fresh() -> String {
            counter += 1
            return "v\(counter)"
        }
        _ = floatInput(graph, fresh())
        _ = graph.addInitializer(name: fresh(), tensor: Tensor(dataType: .float, dims: [1], values: [Float(1)]))

        /// Values visible before `node` (or at the end), in definition order.
        func visible(before node: Node?) -> [Value] {
            var values = graph.inputs + graph.initializers.filter { $0.definition == .initializer }
            for n in graph.nodes {
                if n === node { break }
                values += n.outputs.compactMap { $0 }
            }
            return values
        }

        for _ in 0..<steps {
            let nodes = Array(graph.nodes)
            switch Int.random(in: 0..<7, using: &rng) {
            case 0, 1:
                // Insert a node at a random position reading values visible there.
                let successor = nodes.isEmpty || Bool.random(using: &rng) ? nil : nodes.randomElement(using: &rng)
                let candidates = visible(before: successor)
                let inputs: [Value?] = (0..<Int.random(in: 0...3, using: &rng)).map { _ in
                    Int.random(in: 0..<5, using: &rng) == 0 ? nil : candidates.randomElement(using: &rng)
                }
                let outputs: [String?] = (0..<Int.random(in: 1...2, using: &rng)).map { _ in fresh() }
                try graph.insert(Node(opType: "Op", inputs: inputs, outputNames: outputs), before: successor)
            case 2:
                // Rewire one input to another value visible before its node.
                guard let node = nodes.randomElement(using: &rng), !node.inputs.isEmpty else { continue }
                let index = Int.random(in: 0..<node.inputs.count, using: &rng)
                try node.setInput(index, to: visible(before: node).randomElement(using: &rng))
            case 3:
                // Erase a node whose outputs nobody reads.
                guard let node = nodes.filter({ $0.outputs.allSatisfy { $0?.isUnused ?? true } }).randomElement(using: &rng) else { continue }
                try graph.erase(node)
            case 4:
                // Replace all uses of a node output by a value defined before that node.
                guard let node = nodes.randomElement(using: &rng), let output = node.outputs.compactMap({ $0 }).first,
                      let replacement = visible(before: node).randomElement(using: &rng) else { continue }
                try output.replaceAllUses(with: replacement)
            case 5:
                // Add a subgraph that reads outer values.
                guard let node = nodes.randomElement(using: &rng) else { continue }
                let body = Graph(name: fresh())
                let outer = visible(before: node)
                let inner = Node(opType: "Inner", inputs: [outer.randomElement(using: &rng)], outputNames: [fresh()])
                try body.append(inner)
                try body.addOutput(inner.outputs[0]!, info: ValueInfo(type: nil))
                node.attributes.append(Attribute(name: fresh(), value: .graph(body)))
            default:
                // Toggle a graph output.
                if let output = graph.outputs.indices.randomElement(using: &rng), Bool.random(using: &rng),
                   let value = visible(before: nil).randomElement(using: &rng) {
                    try graph.setOutput(output, to: value)
                } else if let value = visible(before: nil).randomElement(using: &rng) {
                    try graph.addOutput(value, info: ValueInfo(type: nil))
                }
            }
            try model.verify()
        }
    }
}
