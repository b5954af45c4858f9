import XCTest
@testable import ONNXFuseIR

/// The raw-memory `NameTable` and `Graph.verify`'s scope chain (identity sets, one `NameTable`
/// per scope): what a name-keyed dictionary gave before, kept.
final class NameTableAndVerifyScopeTests: XCTestCase {
    func floatInput(_ graph: Graph, _ name: String) -> Value {
        graph.addInput(name: name, info: ValueInfo(type: .tensor(.float, [.value(2)])))
    }

    /// Names that stress the byte comparison: empty, NUL inside, non-ASCII, prefixes of
    /// each other, through several grows; every value is found by its name and by its bytes,
    /// a second value under a taken name is refused (the first stays), and the table holds
    /// its values only while it lives.
    func testNameTableGrowsFindsAndReleases() {
        var names = ["", "\u{0}", "a\u{0}b", "a\u{0}", "a", "ab", "caf\u{e9}", "cafe\u{301}", "\u{1F600}", "\u{10FFFF}"]
        for index in 0..<2_000 { names.append("v\(index)") }
        weak var probe: Value?
        do {
            let table = NameTable(capacity: 1)
            var values: [Value] = []
            for name in names {
                let value = Value.detached(name: name)
                XCTAssertNil(table.insert(value), "'\(name.debugDescription)' is taken")
                values.append(value)
            }
            probe = values[0]
            XCTAssertEqual(table.count, names.count)
            for (name, value) in zip(names, values) {
                XCTAssertTrue(table[name] === value, "\(name.debugDescription)")
                var bytes = Array(name.utf8)
                let found = bytes.withUnsafeMutableBytes { table.value(named: UnsafeRawBufferPointer($0)) }
                XCTAssertTrue(found === value, "\(name.debugDescription) by bytes")
                XCTAssertTrue(table.insert(Value.detached(name: name)) === value)
            }
            XCTAssertEqual(table.count, names.count)
            XCTAssertNil(table["a\u{0}c"])
            XCTAssertNil(table["v2000"])
            values.removeAll()
            XCTAssertNotNil(probe, "the table retains its values")
        }
        XCTAssertNil(probe, "the table releases its values when it goes")
    }

    /// Canonically equivalent but different bytes: two names for the loader and for
    /// `verify` (ONNX compares names as bytes). Before the NameTable, `verify` took them as one
    /// name ("reuses the name of another value in scope") and the command refused a model that
    /// `onnx.checker` accepts, once a rule had fired.
    func testCanonicallyEquivalentNamesAreTwoNames() throws {
        let graph = Graph(name: "g")
        let x = floatInput(graph, "x")
        let a = Node(opType: "A", inputs: [x], outputNames: ["caf\u{e9}"])
        try graph.append(a)
        let b = Node(opType: "B", inputs: [a.outputs[0]], outputNames: ["cafe\u{301}"])
        try graph.append(b)
        XCTAssertNoThrow(try graph.verify())
        b.outputs[0]!.name = "caf\u{e9}"
        XCTAssertThrowsError(try graph.verify()) { XCTAssertTrue("\($0)".contains("reuses the name"), "\($0)") }
    }

    /// A graph with a subgraph, built right; `corrupt` then breaks it and `verify` must say so.
    private func check(_ expected: String, file: StaticString = #filePath, line: UInt = #line,
                       _ corrupt: (_ graph: Graph, _ x: Value, _ ifNode: Node, _ thenBody: Graph, _ elseBody: Graph) -> Void) throws {
        let graph = Graph(name: "main")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let x = floatInput(graph, "x")
        let thenBody = Graph(name: "then")
        let t = Node(opType: "Neg", inputs: [x], outputNames: ["t"])
        try thenBody.append(t)
        try thenBody.addOutput(t.outputs[0]!, info: ValueInfo(type: nil))
        let elseBody = Graph(name: "else")
        let e = Node(opType: "Abs", inputs: [x], outputNames: ["e"])
        try elseBody.append(e)
        try elseBody.addOutput(e.outputs[0]!, info: ValueInfo(type: nil))
        let ifNode = Node(opType: "If", inputs: [x], outputNames: ["y"],
                          attributes: [Attribute(name: "then_branch", value: .graph(thenBody)),
                                       Attribute(name: "else_branch", value: .graph(elseBody))])
        try graph.append(ifNode)
        let after = Node(opType: "Relu", inputs: [ifNode.outputs[0]], outputNames: ["z"])
        try graph.append(after)
        try graph.addOutput(after.outputs[0]!, info: ValueInfo(type: nil))
        XCTAssertNoThrow(try model.verify(), file: file, line: line)
        corrupt(graph, x, ifNode, thenBody, elseBody)
        XCTAssertThrowsError(try model.verify(), "not caught: \(expected)", file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(expected), "\(error)", file: file, line: line)
        }
    }

    func testScopeChainInvariantsAreCaught() throws {
        // A sibling subgraph's value, read in the other branch.
        try check("which is not defined before it in scope") { _, _, _, thenBody, elseBody in
            elseBody.firstNode!.setInputUnchecked(0, to: thenBody.firstNode!.outputs[0])
        }
        // A subgraph's value, read by a node of the enclosing graph after it.
        try check("which is not defined before it in scope") { graph, _, _, thenBody, _ in
            graph.lastNode!.setInputUnchecked(0, to: thenBody.firstNode!.outputs[0])
        }
        // An outer value defined after the node that holds the subgraph, read inside it.
        try check("which is not defined before it in scope") { graph, _, _, thenBody, _ in
            thenBody.firstNode!.setInputUnchecked(0, to: graph.lastNode!.outputs[0])
        }
        // A subgraph value that takes the name of an enclosing graph's value.
        try check("reuses the name of another value in scope") { _, _, _, thenBody, _ in
            thenBody.firstNode!.outputs[0]!.name = "x"
        }
        // ... of one defined in the enclosing graph after the holder: allowed (not in scope).
        // A graph output naming a value of a subgraph.
        try check("graph output 'e' is not defined in scope") { graph, _, _, _, elseBody in
            graph.moveOutputsUnchecked(from: graph.outputs[0].value, to: elseBody.firstNode!.outputs[0]!)
        }
        // A value that counts no graph output but one names it (the uncounted-output pass).
        try check("counts 0 graph outputs but 1 name it") { graph, _, _, _, _ in
            graph.outputs[0].value.graphOutputCount = 0
        }
        // ... and one inside a subgraph.
        try check("counts 0 graph outputs but 1 name it") { _, _, _, thenBody, _ in
            thenBody.outputs[0].value.graphOutputCount = 0
        }
        // A value that counts a graph output nobody names.
        try check("counts 1 graph outputs but 0 name it") { graph, x, _, _, _ in
            x.graphOutputCount = 1
        }
    }

    /// Many values in one scope and in a subgraph (the tables and identity sets grow past their
    /// first size, nodes with several outputs outnumbering the estimate): a read of a value
    /// out of scope is still found among them.
    func testLargeScopesStillCatchReadsOutOfScope() throws {
        let graph = Graph(name: "main")
        var last = floatInput(graph, "x")
        let body = Graph(name: "body")
        var inner = last
        for index in 0..<500 {
            let node = Node(opType: "Split", inputs: [inner], outputNames: (0..<4).map { "s\(index)_\($0)" })
            try body.append(node)
            inner = node.outputs[3]!
        }
        try body.addOutput(inner, info: ValueInfo(type: nil))
        let holder = Node(opType: "Loop", inputs: [last], outputNames: ["l"], attributes: [Attribute(name: "body", value: .graph(body))])
        try graph.append(holder)
        last = holder.outputs[0]!
        for index in 0..<500 {
            let node = Node(opType: "Split", inputs: [last], outputNames: (0..<4).map { "o\(index)_\($0)" })
            try graph.append(node)
            last = node.outputs[2]!
        }
        try graph.addOutput(last, info: ValueInfo(type: nil))
        XCTAssertNoThrow(try graph.verify())
        graph.lastNode!.setInputUnchecked(0, to: body.lastNode!.outputs[1])
        XCTAssertThrowsError(try graph.verify()) { XCTAssertTrue("\($0)".contains("not defined before it in scope"), "\($0)") }
    }
}
