import ONNXFuseIR
import ONNXFuseRewrite
import XCTest
@testable import ONNXFuseRules

/// The list functions `permute`, `range`, `len`, `slice` and `zeros`, and the guard function `opset`.
final class FunctionTests: XCTestCase {
    private let table = FunctionTable.builtins

    func testPermute() {
        // Item i is list[perm[i]].
        XCTAssertEqual(call("permute", list(10, 20, 30), list(2, 0, 1)), list(30, 10, 20))
        XCTAssertEqual(call("permute", list(0, 2, 3, 1), list(0, 3, 1, 2)), list(0, 1, 2, 3))
        XCTAssertEqual(call("permute", .list([.string("a"), .real(1.5)]), list(1, 1, 0)),
                       .list([.real(1.5), .real(1.5), .string("a")]))
        XCTAssertEqual(call("permute", list(), list()), list())
        // A constant tensor is read as a flat list; the permutation may be a tensor too.
        XCTAssertEqual(call("permute", .tensor(NDArray(shape: [3], values: [7, 8, 9]), .int64),
                            .tensor(NDArray(shape: [3], values: [2, 1, 0]), .int64)), list(9, 8, 7))
        XCTAssertEqual(call("permute", .tensor(NDArray(shape: [2], values: [0.5, 2]), .float), list(1, 0)),
                       .list([.real(2), .real(0.5)]))
        XCTAssertEqual(callError("permute", list(1, 2), list(0, 2)), "permute: index 2 is out of range for a list of 2")
        XCTAssertEqual(callError("permute", list(1, 2), list(-1)), "permute: index -1 is out of range for a list of 2")
        XCTAssertEqual(callError("permute", .string("ab"), list(0)), "permute: argument 1 must be a list, got a string")
        XCTAssertTrue(callError("permute", list(1, 2), .list([.real(0.5)])).hasPrefix("permute: argument 2: "))
        XCTAssertEqual(table.arity(of: "permute"), 2...2)
    }

    func testSliceAndZeros() {
        // Items start..<end; negative indices count from the end.
        XCTAssertEqual(call("slice", list(0, 0, 1, 2, 0, 0, 3, 4), .integer(2), .integer(4)), list(1, 2))
        XCTAssertEqual(call("slice", list(10, 20, 30), .integer(-2), .integer(3)), list(20, 30))
        XCTAssertEqual(call("slice", list(10, 20, 30), .integer(1), .integer(1)), list())
        XCTAssertEqual(call("slice", list(), .integer(0), .integer(0)), list())
        // A constant tensor is read as a flat list.
        XCTAssertEqual(call("slice", .tensor(NDArray(shape: [4], values: [0, 1, 2, 3]), .int64), .integer(1), .integer(3)), list(1, 2))
        XCTAssertEqual(callError("slice", list(1, 2), .integer(0), .integer(3)), "slice: index 3 is out of range for a list of 2")
        XCTAssertEqual(callError("slice", list(1, 2), .integer(-3), .integer(1)), "slice: index -3 is out of range for a list of 2")
        XCTAssertEqual(callError("slice", list(1, 2, 3), .integer(2), .integer(1)), "slice: the start 2 is after the end 1")
        XCTAssertEqual(callError("slice", .integer(1), .integer(0), .integer(0)), "slice: argument 1 must be a list, got an integer")
        XCTAssertEqual(table.arity(of: "slice"), 3...3)

        XCTAssertEqual(call("zeros", .integer(3)), list(0, 0, 0))
        XCTAssertEqual(call("zeros", .integer(0)), list())
        XCTAssertEqual(callError("zeros", .integer(-1)), "zeros: the count -1 is negative")
    }

    func testRangeAndLen() {
        XCTAssertEqual(call("range", .integer(4)), list(0, 1, 2, 3))
        XCTAssertEqual(call("range", .integer(0)), list())
        XCTAssertEqual(call("range", .real(2)), list(0, 1))
        XCTAssertEqual(callError("range", .integer(-1)), "range: the count -1 is negative")
        XCTAssertEqual(call("range", .integer(2), .integer(5)), list(2, 3, 4))
        XCTAssertEqual(call("range", .integer(-2), .integer(0)), list(-2, -1))
        XCTAssertEqual(call("range", .integer(3), .integer(3)), list())
        XCTAssertEqual(call("range", .integer(3), .integer(1)), list())
        XCTAssertTrue(callError("range", .real(1.5)).hasPrefix("range: argument 1: "))
        XCTAssertEqual(call("len", list(4, 5, 6)), .integer(3))
        XCTAssertEqual(call("len", list()), .integer(0))
        XCTAssertEqual(call("len", .tensor(NDArray(shape: [2, 2], values: [1, 2, 3, 4]), .float)), .integer(4))
        XCTAssertEqual(callError("len", .integer(3)), "len: argument 1 must be a list, got an integer")
        // Together: whether a permutation composed of two is the identity.
        XCTAssertEqual(try apply("==", call("permute", list(1, 2, 0), list(2, 0, 1)), call("range", .integer(3))), .boolean(true))
    }

    func testSizesAreCheckedBeforeAnythingIsAllocated() {
        // Each of these trapped or aborted, or took seconds and gigabytes, before the limits.
        XCTAssertTrue(callError("full", list(4294967296, 4294967296), .integer(1)).contains("more than 33554432 elements"))
        XCTAssertTrue(callError("full", list(268435456), .integer(1)).contains("the limit"))
        XCTAssertTrue(callError("ones", .integer(1_000_000_000_000)).contains("more than the limit of 1048576"))
        XCTAssertTrue(callError("ones", .integer(4611686018427387904)).contains("the limit"))
        XCTAssertTrue(callError("zeros", .integer(100_000_000_000)).contains("the limit"))
        XCTAssertTrue(callError("range", .integer(Int64.min), .integer(Int64.max)).contains("the limit"))
        XCTAssertTrue(callError("range", .integer(-5), .integer(Int64.max)).contains("the limit"))
        let wide = EvalValue.tensor(NDArray(shape: [1 << 14, 1], values: Array(repeating: 1, count: 1 << 14)), .float)
        let long = EvalValue.tensor(NDArray(shape: [1, 1 << 14], values: Array(repeating: 1, count: 1 << 14)), .float)
        XCTAssertThrowsError(try apply("+", wide, long)) { XCTAssertTrue("\($0)".contains("the limit"), "\($0)") }
        let square = EvalValue.tensor(NDArray(shape: [2048, 2048], values: Array(repeating: 0.5, count: 2048 * 2048)), .float)
        XCTAssertTrue(callError("matmul", square, square).contains("multiply-adds is more than the limit"))
        XCTAssertTrue(callError("unsqueeze", .tensor(NDArray.scalar(1), .float), call("range", .integer(100_000))).contains("rank 100000"))
        // Within the limits, the same functions work.
        XCTAssertEqual(call("range", .integer(-2), .integer(1)), list(-2, -1, 0))
        XCTAssertEqual(call("ones", .integer(2)), list(1, 1))
    }

    func testOpsetNeedsAModel() {
        XCTAssertEqual(table.arity(of: "opset"), 0...1)
        XCTAssertEqual(callError("opset"), "opset() needs a model: it is only available in rules")
    }

    /// Runs `rule` on Relu(x) in a model importing `imports`; the explanations, or "fired".
    private func outcome(_ guardText: String, _ imports: [OpsetImport]) throws -> String {
        let rules = try compileRules(try parseRules("""
            rule r {
              match { y = Relu(x) }
              where { \(guardText) }
              replace { y = Neg(x) }
            }
            """, file: "test.rules"))
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: imports, graph: graph)
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(2)])))
        try graph.append(Node(opType: "Relu", name: "relu", inputs: [x], outputNames: ["y"]))
        try graph.addOutput(graph.lastNode!.outputs[0]!, info: ValueInfo(type: nil))
        var options = RewriteOptions()
        options.explain = true
        let report = applyRules(rules.flatMap(\.rewrites), to: model, options: options)
        try model.verify()
        return report.fired.isEmpty ? report.explanations.map(\.reason).joined(separator: "; ") : "fired"
    }

    func testOpsetReadsTheModelsImports() throws {
        let imports = [OpsetImport(domain: "", version: 11), OpsetImport(domain: "com.microsoft", version: 1)]
        XCTAssertEqual(try outcome("opset() == 11", imports), "fired")
        XCTAssertEqual(try outcome("opset(\"\") == 11 && opset(\"ai.onnx\") == 11", imports), "fired")
        XCTAssertEqual(try outcome("opset(\"com.microsoft\") == 1", imports), "fired")
        XCTAssertEqual(try outcome("opset() >= 12", imports), "`opset() >= 12` is false")
        XCTAssertEqual(try outcome("opset() >= 12", [OpsetImport(domain: "ai.onnx", version: 13)]), "fired")
        XCTAssertEqual(try outcome("opset(\"com.example\") >= 1", imports),
                       "the model does not import the operator set 'com.example'")
        // A literal of the wrong kind is an error of the file, found when it is loaded.
        XCTAssertThrowsError(try outcome("opset(1) >= 1", imports)) { error in
            XCTAssertTrue("\(error)".hasSuffix("opset(): argument 1 must be a string, not the number 1"), "\(error)")
        }
    }

    func testOpsetTakesAtMostOneDomain() throws {
        // A wrong number of arguments is found when the file is loaded.
        XCTAssertThrowsError(try outcome("opset(\"\", \"x\") >= 1", [OpsetImport(domain: "", version: 17)])) { error in
            XCTAssertTrue("\(error)".contains("opset() takes 0 to 1 arguments, not 2"), "\(error)")
        }
    }

    func testFullMakesATensorOfAShape() throws {
        let table = FunctionTable.builtins
        XCTAssertEqual(try table.call("full", [.list([.integer(2), .integer(3)]), .integer(0)]),
                       .tensor(NDArray(shape: [2, 3], values: Array(repeating: 0, count: 6)), nil))
        XCTAssertEqual(try table.call("full", [.list([]), .real(1.5)]), .tensor(NDArray(shape: [], values: [1.5]), nil))
        // A scalar plus a [C] of zeros: the scalar broadcast to C values, in the type of the scalar.
        let sum = try apply("+", .tensor(NDArray(shape: [1], values: [4]), .float), try table.call("full", [.list([.integer(3)]), .integer(0)]))
        XCTAssertEqual(sum, .tensor(NDArray(shape: [3], values: [4, 4, 4]), .float))
        XCTAssertThrowsError(try table.call("full", [.list([.integer(-1)]), .integer(0)]))
        XCTAssertThrowsError(try table.call("full", [.list([.integer(2)]), .string("x")]))
    }
}
