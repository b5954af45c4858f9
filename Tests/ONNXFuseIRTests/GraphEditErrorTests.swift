import XCTest
import ONNXFuseIR

/// Every misuse of the public editing API throws a `GraphEditError` that names what is wrong,
/// and leaves every graph involved exactly as it was.
final class GraphEditErrorTests: XCTestCase {
    /// The graph every test edits: inputs x, cond and o (with an initializer), initializer w;
    /// nodes `a = Neg(x)`, `b = Add(a, w)`, `late = Sub(x, b)`, `if = If(cond)` whose branch
    /// computes `t = Mul(x, b)`, `y = Relu(if)`; graph output y. x's use list starts with
    /// `late` (a's input is set to x afterwards), so that a check that stopped at the first
    /// reader it cannot rewire would have rewired `late` already. And another model, whose
    /// values no node of the first may read.
    final class Fixture {
        let model: Model
        let graph: Graph
        let x, cond, o, w: Value
        let a, b, late, ifNode, relu, mul: Node
        let body: Graph
        let otherModel: Model
        let other: Graph
        let z: Value
        let otherNode: Node

        init() throws {
            graph = Graph(name: "main")
            model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
            let float2 = ValueInfo(type: .tensor(.float, [.value(2)]))
            x = graph.addInput(name: "x", info: float2)
            cond = graph.addInput(name: "cond", info: ValueInfo(type: .tensor(.bool, [])))
            o = graph.addInput(name: "o", info: float2)
            try graph.setInitializer(Tensor(dataType: .float, dims: [2], values: [Float(1), 2]), forInput: o)
            w = graph.addInitializer(name: "w", tensor: Tensor(dataType: .float, dims: [2], values: [Float(3), 4]))
            a = Node(opType: "Neg", name: "a", inputs: [nil], outputNames: ["a"])
            b = Node(opType: "Add", name: "b", inputs: [a.outputs[0], w], outputNames: ["b"])
            late = Node(opType: "Sub", name: "late", inputs: [x, nil], outputNames: ["late"])
            try graph.append(a)
            try graph.append(b)
            try graph.append(late)
            try late.setInput(1, to: b.outputs[0])
            try a.setInput(0, to: x)
            body = Graph(name: "then")
            mul = Node(opType: "Mul", name: "mul", inputs: [x, b.outputs[0]], outputNames: ["t"])
            try body.append(mul)
            try body.addOutput(mul.outputs[0]!, info: float2)
            ifNode = Node(opType: "If", name: "if", inputs: [cond], outputNames: ["if"],
                          attributes: [Attribute(name: "then_branch", value: .graph(body))])
            try graph.append(ifNode)
            relu = Node(opType: "Relu", name: "relu", inputs: [ifNode.outputs[0]], outputNames: ["y"])
            try graph.append(relu)
            try graph.addOutput(relu.outputs[0]!, info: float2)

            other = Graph(name: "other")
            otherModel = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: other)
            z = other.addInput(name: "z", info: float2)
            otherNode = Node(opType: "Abs", name: "abs", inputs: [z], outputNames: ["abs"])
            try other.append(otherNode)
            try other.addOutput(otherNode.outputs[0]!, info: float2)
            try model.verify()
            try otherModel.verify()
        }
    }

    /// Checks that `edit` throws `reason` with a message containing `message`, and that
    /// `models`, `values` and `nodes` are as they were (and the models verify if they did).
    func assertRefused(_ reason: GraphEditError.Reason, _ message: String, _ models: [Model], values: [Value] = [],
                       nodes: [Node] = [], file: StaticString = #filePath, line: UInt = #line,
                       _ edit: () throws -> Void) {
        let before = irState(models, values: values, nodes: nodes)
        let verified = models.map { (try? $0.verify()) != nil }
        do {
            try edit()
            XCTFail("no error; expected \(reason)", file: file, line: line)
        } catch let error as GraphEditError {
            XCTAssertEqual(error.reason, reason, "\(error)", file: file, line: line)
            XCTAssertTrue(error.description.contains(message), "'\(error)' does not contain '\(message)'", file: file, line: line)
            XCTAssertFalse(error.description.contains("\n"), "one line", file: file, line: line)
        } catch {
            XCTFail("not a GraphEditError: \(error)", file: file, line: line)
        }
        XCTAssertEqual(irState(models, values: values, nodes: nodes), before, "the refused edit changed something", file: file, line: line)
        XCTAssertEqual(models.map { (try? $0.verify()) != nil }, verified, "verify's verdict changed", file: file, line: line)
    }

    // MARK: Erasing

    func testErasingANodeWhoseOutputIsReadThrows() throws {
        let f = try Fixture()
        assertRefused(.valueStillUsed, "cannot erase node 'a' (Neg): its output 'a' is still read by node 'b' (Add)", [f.model]) {
            try f.graph.erase(f.a)
        }
        assertRefused(.valueStillUsed, "its output 'b' is still read by node 'late' (Sub) and 1 more", [f.model]) {
            try f.graph.erase(f.b)
        }
    }

    func testErasingANodeWhoseOutputIsAGraphOutputThrows() throws {
        let f = try Fixture()
        assertRefused(.valueStillUsed, "cannot erase node 'relu' (Relu): its output 'y' is still a graph output", [f.model]) {
            try f.graph.erase(f.relu)
        }
    }

    func testErasingANodeOfAnotherGraphThrows() throws {
        let f = try Fixture()
        assertRefused(.nodeNotInGraph, "cannot erase node 'abs' (Abs): it is not in graph 'main'", [f.model, f.otherModel]) {
            try f.graph.erase(f.otherNode)
        }
        // A node of a subgraph is not in the main graph either.
        assertRefused(.nodeNotInGraph, "cannot erase node 'mul' (Mul): it is not in graph 'main'", [f.model]) {
            try f.graph.erase(f.mul)
        }
        let detached = Node(opType: "Neg", inputs: [f.x], outputNames: ["n"])
        assertRefused(.nodeNotInGraph, "cannot erase Neg node of output 'n': it is not in graph 'main'", [f.model], nodes: [detached]) {
            try f.graph.erase(detached)
        }
    }

    // MARK: Inserting

    func testInsertingANodeAlreadyInAGraphThrows() throws {
        let f = try Fixture()
        assertRefused(.nodeAlreadyInGraph, "cannot insert node 'abs' (Abs) into graph 'main': it is already in graph 'other'",
                      [f.model, f.otherModel]) {
            try f.graph.append(f.otherNode)
        }
        assertRefused(.nodeAlreadyInGraph, "cannot insert node 'a' (Neg) into graph 'main': it is already in graph 'main'", [f.model]) {
            try f.graph.insert(f.a, before: f.relu)
        }
    }

    func testInsertingBeforeANodeOfAnotherGraphThrows() throws {
        let f = try Fixture()
        let node = Node(opType: "Neg", name: "n", inputs: [f.x], outputNames: ["n"])
        assertRefused(.nodeNotInGraph, "cannot insert node 'n' (Neg) before node 'abs' (Abs), which is not in graph 'main'",
                      [f.model, f.otherModel], nodes: [node]) {
            try f.graph.insert(node, before: f.otherNode)
        }
        assertRefused(.nodeNotInGraph, "before node 'mul' (Mul), which is not in graph 'main'", [f.model], nodes: [node]) {
            try f.graph.insert(node, before: f.mul)
        }
    }

    func testInsertingANodeThatReadsAValueOfAnotherGraphThrows() throws {
        let f = try Fixture()
        let node = Node(opType: "Neg", name: "n", inputs: [f.z], outputNames: ["n"])
        assertRefused(.valueNotVisible, "cannot insert node 'n' (Neg) into graph 'main': its input 'z' is defined in graph 'other', not in graph 'main' or one enclosing it",
                      [f.model, f.otherModel], nodes: [node]) {
            try f.graph.append(node)
        }
        // A value of a subgraph is not visible in the graph around it.
        let reader = Node(opType: "Neg", name: "r", inputs: [f.mul.outputs[0]], outputNames: ["r"])
        assertRefused(.valueNotVisible, "its input 't' is defined in graph 'then', not in graph 'main' or one enclosing it", [f.model],
                      nodes: [reader]) {
            try f.graph.append(reader)
        }
    }

    func testInsertingANodeThatReadsAValueDefinedAfterItThrows() throws {
        let f = try Fixture()
        let node = Node(opType: "Neg", name: "n", inputs: [f.x, f.b.outputs[0]], outputNames: ["n"])
        assertRefused(.valueNotVisible, "its input 'b' is defined by node 'b' (Add), which does not come before the reader", [f.model], nodes: [node]) {
            try f.graph.insert(node, before: f.a)
        }
        assertRefused(.valueNotVisible, "its input 'b' is defined by node 'b' (Add), which does not come before the reader", [f.model], nodes: [node]) {
            try f.graph.insert(node, before: f.b)
        }
        // An outer value read inside a subgraph must come before the node holding it.
        let inner = Node(opType: "Neg", name: "inner", inputs: [f.relu.outputs[0]], outputNames: ["inner"])
        assertRefused(.valueNotVisible, "cannot insert node 'inner' (Neg) into graph 'then': its input 'y' is defined by node 'relu' (Relu), which does not come before the reader", [f.model], nodes: [inner]) {
            try f.body.append(inner)
        }
    }

    func testInsertingANodeThatReadsADetachedValueThrows() throws {
        let f = try Fixture()
        let ghost = Value.detached(name: "ghost")
        let node = Node(opType: "Neg", name: "n", inputs: [ghost], outputNames: ["n"])
        assertRefused(.valueNotVisible, "its input 'ghost' is in no graph", [f.model], values: [ghost], nodes: [node]) {
            try f.graph.append(node)
        }
        // A node reading its own output.
        let loop = Node(opType: "Neg", name: "loop", inputs: [nil], outputNames: ["loop"])
        try loop.setInput(0, to: loop.outputs[0])
        assertRefused(.valueNotVisible, "its input 'loop' is in no graph", [f.model], nodes: [loop]) {
            try f.graph.append(loop)
        }
    }

    func testInsertingANodeWhoseSubgraphReadsAValueItCannotSeeThrows() throws {
        let f = try Fixture()
        // A body built on its own may read what it will see once nested...
        let body = Graph(name: "body")
        let inner = Node(opType: "Mul", name: "inner", inputs: [f.x, f.relu.outputs[0]], outputNames: ["inner"])
        try body.append(inner)
        try body.addOutput(inner.outputs[0]!, info: ValueInfo(type: nil))
        let holder = Node(opType: "If", name: "holder", inputs: [f.cond], outputNames: ["h"],
                          attributes: [Attribute(name: "then_branch", value: .graph(body))])
        // ...and inserting its node checks those reads: y comes after b.
        assertRefused(.valueNotVisible, "cannot insert node 'holder' (If) into graph 'main': node 'inner' (Mul) in graph 'body' reads a value it cannot see: 'y' is defined by node 'relu' (Relu)",
                      [f.model], nodes: [holder, inner]) {
            try f.graph.insert(holder, before: f.b)
        }
        // A value of another model, in a body nested one level deeper.
        let deep = Graph(name: "deep")
        let deepNode = Node(opType: "Neg", name: "deep-neg", inputs: [f.z], outputNames: ["d"])
        try deep.append(deepNode)
        let outerBody = Graph(name: "outer-body")
        let middle = Node(opType: "If", name: "middle", inputs: [f.cond], outputNames: [],
                          attributes: [Attribute(name: "then_branch", value: .graph(deep))])
        try outerBody.append(middle)
        let top = Node(opType: "If", name: "top", inputs: [f.cond], outputNames: [],
                       attributes: [Attribute(name: "then_branch", value: .graph(outerBody))])
        assertRefused(.valueNotVisible, "node 'deep-neg' (Neg) in graph 'deep' reads a value it cannot see: 'z' is defined in graph 'other'",
                      [f.model, f.otherModel], nodes: [top, deepNode]) {
            try f.graph.append(top)
        }
        // A subgraph output naming an outer value defined too late.
        let passThrough = Graph(name: "pass")
        try passThrough.addOutput(f.relu.outputs[0]!, info: ValueInfo(type: nil))
        let passer = Node(opType: "If", name: "passer", inputs: [f.cond], outputNames: ["p"],
                          attributes: [Attribute(name: "then_branch", value: .graph(passThrough))])
        assertRefused(.valueNotVisible, "an output of graph 'pass' names a value it cannot see: 'y' is defined by node 'relu' (Relu)", [f.model], nodes: [passer]) {
            try f.graph.insert(passer, before: f.relu)
        }
        // Placed after what they read, all are fine. (A body built for a node not inserted
        // lists its reads of outer values: `top` must go for the model to verify.)
        try f.graph.append(holder)
        try f.graph.append(passer)
        try outerBody.erase(middle)
        try f.model.verify()
    }

    func testInsertingANodeIntoItsOwnSubgraphThrows() throws {
        let f = try Fixture()
        let body = Graph(name: "own")
        let holder = Node(opType: "If", name: "holder", inputs: [], outputNames: ["h"],
                          attributes: [Attribute(name: "then_branch", value: .graph(body))])
        assertRefused(.nodeInsideItself, "cannot insert node 'holder' (If) into graph 'own', one of its own subgraphs", [f.model], nodes: [holder]) {
            try body.append(holder)
        }
        // Deeper down too.
        let inner = Graph(name: "inner")
        try body.append(Node(opType: "Loop", name: "loop", inputs: [], outputNames: [],
                             attributes: [Attribute(name: "body", value: .graph(inner))]))
        assertRefused(.nodeInsideItself, "cannot insert node 'holder' (If) into graph 'inner', one of its own subgraphs", [f.model],
                      nodes: [holder, body.firstNode!]) {
            try inner.append(holder)
        }
    }

    // MARK: Node inputs

    func testSettingAnInputPastTheEndThrows() throws {
        let f = try Fixture()
        assertRefused(.indexOutOfRange, "cannot set input 1 of node 'a' (Neg): it has 1", [f.model]) {
            try f.a.setInput(1, to: f.x)
        }
        assertRefused(.indexOutOfRange, "cannot set input -1 of node 'a' (Neg): it has 1", [f.model]) {
            try f.a.setInput(-1, to: nil)
        }
    }

    func testSettingAnInputToAValueItCannotSeeThrows() throws {
        let f = try Fixture()
        assertRefused(.valueNotVisible, "cannot set input 0 of node 'a' (Neg): 'b' is defined by node 'b' (Add), which does not come before the reader", [f.model]) {
            try f.a.setInput(0, to: f.b.outputs[0])
        }
        assertRefused(.valueNotVisible, "cannot set input 0 of node 'b' (Add): 'b' is defined by node 'b' (Add), which does not come before the reader", [f.model]) {
            try f.b.setInput(0, to: f.b.outputs[0])
        }
        assertRefused(.valueNotVisible, "cannot set input 0 of node 'a' (Neg): 'z' is defined in graph 'other', not in graph 'main' or one enclosing it", [f.model, f.otherModel]) {
            try f.a.setInput(0, to: f.z)
        }
        assertRefused(.valueNotVisible, "cannot set input 0 of node 'relu' (Relu): 't' is defined in graph 'then'", [f.model]) {
            try f.relu.setInput(0, to: f.mul.outputs[0])
        }
        // An erased node's output is in no graph.
        let dead = Node(opType: "Neg", name: "dead", inputs: [f.x], outputNames: ["dead"])
        try f.graph.append(dead)
        try f.graph.erase(dead)
        assertRefused(.valueNotVisible, "cannot set input 0 of node 'relu' (Relu): 'dead' is in no graph", [f.model], nodes: [dead]) {
            try f.relu.setInput(0, to: dead.outputs[0])
        }
    }

    func testSettingAllInputsChecksEveryOneFirst() throws {
        let f = try Fixture()
        assertRefused(.valueNotVisible, "cannot set the inputs of node 'late' (Sub): 'y' is defined by node 'relu' (Relu)", [f.model]) {
            try f.late.setInputs([f.w, f.x, f.relu.outputs[0]])
        }
        assertRefused(.valueNotVisible, "cannot set the inputs of node 'late' (Sub): 'y'", [f.model]) {
            try f.late.setInputs([f.relu.outputs[0]])
        }
        assertRefused(.valueNotVisible, "cannot append an input to node 'late' (Sub): 'y'", [f.model]) {
            try f.late.appendInput(f.relu.outputs[0])
        }
    }

    func testRemovingTheLastInputOfANodeWithoutInputsThrows() throws {
        let f = try Fixture()
        let empty = Node(opType: "Constant", name: "k", inputs: [], outputNames: ["k"])
        try f.graph.insert(empty, before: f.a)
        assertRefused(.indexOutOfRange, "cannot remove the last input of node 'k' (Constant): it has none", [f.model]) {
            try empty.removeLastInput()
        }
    }

    func testADetachedNodeMayReadAnythingUntilItIsInserted() throws {
        let f = try Fixture()
        let node = Node(opType: "Neg", name: "n", inputs: [nil], outputNames: ["n"])
        try node.setInput(0, to: f.z)
        try node.setInputs([f.z, f.relu.outputs[0]])
        try node.appendInput(Value.detached(name: "later"))
        XCTAssertEqual(node.inputs.map { $0?.name }, ["z", "y", "later"])
        XCTAssertEqual(f.z.uses.map(\.node.name), ["abs"], "a node outside a graph is listed by none of its inputs")
    }

    // MARK: Replacing uses

    func testReplacingAValueByItselfThrows() throws {
        let f = try Fixture()
        assertRefused(.valueReplacesItself, "cannot replace the uses of 'x' by 'x' itself", [f.model]) {
            try f.x.replaceAllUses(with: f.x)
        }
    }

    func testReplacingByAValueSomeReaderCannotSeeChangesNoReader() throws {
        let f = try Fixture()
        // late and the branch's Mul could read b; a, which comes before b, cannot.
        XCTAssertEqual(f.x.uses.map(\.node.name), ["late", "a", "mul"])
        assertRefused(.valueNotVisible, "cannot replace the uses of 'x' by 'b' in node 'a' (Neg): 'b' is defined by node 'b' (Add)", [f.model]) {
            try f.x.replaceAllUses(with: f.b.outputs[0]!)
        }
        assertRefused(.valueNotVisible, "cannot replace the uses of 'w' by 'z' in node 'b' (Add): 'z' is defined in graph 'other'", [f.model, f.otherModel]) {
            try f.w.replaceAllUses(with: f.z)
        }
    }

    // MARK: Graph outputs

    func testOutputPositionsPastTheEndThrow() throws {
        let f = try Fixture()
        assertRefused(.indexOutOfRange, "cannot set output 1 of graph 'main': it has 1", [f.model]) {
            try f.graph.setOutput(1, to: f.x)
        }
        assertRefused(.indexOutOfRange, "cannot set the information of output 3 of graph 'main': it has 1", [f.model]) {
            try f.graph.setOutputInfo(3, ValueInfo(type: nil))
        }
        assertRefused(.indexOutOfRange, "cannot remove output -1 of graph 'main': it has 1", [f.model]) {
            try f.graph.removeOutput(at: -1)
        }
        try f.other.removeOutput(at: 0)
        assertRefused(.indexOutOfRange, "cannot remove output 0 of graph 'other': it has 0", [f.otherModel]) {
            try f.other.removeOutput(at: 0)
        }
    }

    func testGraphOutputsNamingValuesOutOfScopeThrow() throws {
        let f = try Fixture()
        assertRefused(.valueNotVisible, "cannot make output 0 name 't' in graph 'main': 't' is defined in graph 'then'", [f.model]) {
            try f.graph.setOutput(0, to: f.mul.outputs[0]!)
        }
        assertRefused(.valueNotVisible, "cannot add an output naming 'z' in graph 'main': 'z' is defined in graph 'other'", [f.model, f.otherModel]) {
            try f.graph.addOutput(f.z, info: ValueInfo(type: nil))
        }
        assertRefused(.valueNotVisible, "cannot move the outputs naming 'y' to 'z' in graph 'main'", [f.model, f.otherModel]) {
            try f.graph.moveOutputs(from: f.relu.outputs[0]!, to: f.z)
        }
        // No output names x: nothing to move, nothing to refuse.
        XCTAssertEqual(try f.graph.moveOutputs(from: f.x, to: f.z), 0)
        // A subgraph output may name a value of the graph around it.
        try f.body.addOutput(f.b.outputs[0]!, info: ValueInfo(type: nil))
        try f.model.verify()
    }

    // MARK: Initializers and inputs

    func testRemovingAnInitializerThatIsReadThrows() throws {
        let f = try Fixture()
        assertRefused(.valueStillUsed, "cannot remove initializer 'w': it is still read by node 'b' (Add)", [f.model]) {
            try f.graph.removeInitializer(f.w)
        }
        try f.graph.addOutput(f.o, info: ValueInfo(type: nil))
        assertRefused(.valueStillUsed, "cannot remove initializer 'o': it is still a graph output", [f.model]) {
            try f.graph.removeInitializer(f.o)
        }
    }

    func testRemovingWhatIsNotAnInitializerThrows() throws {
        let f = try Fixture()
        assertRefused(.notAnInitializer, "cannot remove initializer 'x': it is not an initializer of graph 'main'", [f.model]) {
            try f.graph.removeInitializer(f.x)
        }
        assertRefused(.notAnInitializer, "cannot remove initializer 'a': it is not an initializer of graph 'main'", [f.model]) {
            try f.graph.removeInitializer(f.a.outputs[0]!)
        }
        let theirs = f.other.addInitializer(name: "v", tensor: Tensor(dataType: .float, dims: [1], values: [Float(1)]))
        assertRefused(.notAnInitializer, "cannot remove initializer 'v': it is not an initializer of graph 'main'", [f.model, f.otherModel]) {
            try f.graph.removeInitializer(theirs)
        }
        // Removed once, it is not one any more.
        try f.other.removeInitializer(theirs)
        assertRefused(.notAnInitializer, "cannot remove initializer 'v'", [f.otherModel], values: [theirs]) {
            try f.other.removeInitializer(theirs)
        }
    }

    func testGivingAnInitializerToWhatIsNotAnInputThrows() throws {
        let f = try Fixture()
        let tensor = Tensor(dataType: .float, dims: [1], values: [Float(1)])
        assertRefused(.notAnInput, "cannot give 'w' an initializer: it is not an input of graph 'main'", [f.model]) {
            try f.graph.setInitializer(tensor, forInput: f.w)
        }
        assertRefused(.notAnInput, "cannot give 'a' an initializer: it is not an input of graph 'main'", [f.model]) {
            try f.graph.setInitializer(tensor, forInput: f.a.outputs[0]!)
        }
        assertRefused(.notAnInput, "cannot give 'z' an initializer: it is not an input of graph 'main'", [f.model, f.otherModel]) {
            try f.graph.setInitializer(tensor, forInput: f.z)
        }
    }

    func testRemovingAnInputThatIsReadOrIsNotOneThrows() throws {
        let f = try Fixture()
        assertRefused(.valueStillUsed, "cannot remove input 'x': it is still read by node 'late' (Sub) and 2 more", [f.model]) {
            try f.graph.removeInput(f.x)
        }
        assertRefused(.notAnInput, "cannot remove input 'w': it is not an input of graph 'main'", [f.model]) {
            try f.graph.removeInput(f.w)
        }
        assertRefused(.notAnInput, "cannot remove input 'z': it is not an input of graph 'main'", [f.model, f.otherModel]) {
            try f.graph.removeInput(f.z)
        }
    }

    // MARK: Order

    func testOrderingNodesOfTwoGraphsThrows() throws {
        let f = try Fixture()
        XCTAssertTrue(try f.a.isBefore(f.b))
        XCTAssertFalse(try f.b.isBefore(f.a))
        XCTAssertFalse(try f.a.isBefore(f.a))
        assertRefused(.nodeNotInGraph, "cannot order node 'a' (Neg) (in graph 'main') and node 'mul' (Mul): they are not in one graph", [f.model]) {
            _ = try f.a.isBefore(f.mul)
        }
        let detached = Node(opType: "Neg", name: "n", inputs: [], outputNames: ["n"])
        assertRefused(.nodeNotInGraph, "cannot order node 'n' (Neg) (in no graph) and node 'a' (Neg)", [f.model]) {
            _ = try detached.isBefore(f.a)
        }
    }
}
