import XCTest
@testable import ONNXFuseIR

/// `print(node)` and string interpolation show the IR as the printer writes it.
final class IRDescriptionTests: XCTestCase {
    func testNodesValuesGraphsAndModelsDescribeThemselves() throws {
        let graph = Graph(name: "main")
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(1), .value(3)])))
        let relu = Node(opType: "LeakyRelu", name: "r", inputs: [x], outputNames: ["y"],
                        attributes: [Attribute(name: "alpha", value: .float(0.5))])
        try graph.append(relu)
        try graph.addOutput(relu.outputs[0]!, info: ValueInfo(type: nil))
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        XCTAssertEqual("\(relu)", "y = LeakyRelu <alpha = 0.5> (x)")
        XCTAssertEqual("\(x)", "float[1,3] x")
        XCTAssertEqual("\(relu.outputs[0]!)", "? y")
        XCTAssertEqual("\(graph)", Printer().print(graph))
        XCTAssertEqual("\(model)", Printer().print(model))
        XCTAssertTrue("\(model)".contains("y = LeakyRelu <alpha = 0.5> (x)"))
    }
}
