import ONNXFuseIR
import XCTest
@testable import ONNXFuseRules

/// `a[i]`, `a[s:e]` and `item(c)`.
final class IndexingTests: XCTestCase {
    private let table = FunctionTable.builtins

    func vector(_ values: [Double], _ type: DataType = .int64) -> EvalValue { .tensor(NDArray(shape: [values.count], values: values), type) }

    func testTheParserWritesIndexesAndSlicesAsCalls() throws {
        let file = try parseRules("""
            rule t {
              match { y = Transpose<perm: p>(x) }
              where { p[-1] == 1 && p[1:] == [2, 1] && p[:2][0] == 0 && s[ : ] == s && item(c) > 0 }
              compute { s = p[0:len(p) - 1] }
              replace { y = x }
            }
            """, file: "t")
        let text = file.rules[0].guards.flatMap(\.conjuncts).map { "\($0)" }
        XCTAssertEqual(text, ["p[-1] == 1", "p[1:] == [2, 1]", "p[:2][0] == 0", "s[:] == s", "item(c) > 0"])
        XCTAssertEqual("\(file.rules[0].computes[0].value)", "p[0:len(p) - 1]")
        // An unclosed bracket names where it opened.
        XCTAssertThrowsError(try parseRules("rule t {\n match { y = A(x) }\n where { p[1 == 2 }\n replace { y = x }\n}", file: "t")) {
            XCTAssertTrue("\($0)".contains("expected ']' to close the '[' at line 3, column 11"), "\($0)")
        }
    }

    func testIndexing() throws {
        let list = EvalValue.list([.integer(10), .integer(20), .integer(30)])
        XCTAssertEqual(try table.call(FunctionTable.indexFunction, [list, .integer(0)]), .integer(10))
        XCTAssertEqual(try table.call(FunctionTable.indexFunction, [list, .integer(-1)]), .integer(30))
        XCTAssertThrowsError(try table.call(FunctionTable.indexFunction, [list, .integer(3)])) {
            XCTAssertEqual("\($0)", "index 3 is out of range for 3 items")
        }
        // A tensor is indexed along its first axis; a vector gives a scalar of its type.
        XCTAssertEqual(try table.call(FunctionTable.indexFunction, [vector([4, 5, 6]), .integer(1)]),
                       .tensor(NDArray(shape: [], values: [5]), .int64))
        let matrix = EvalValue.tensor(NDArray(shape: [2, 2], values: [1, 2, 3, 4]), .float)
        XCTAssertEqual(try table.call(FunctionTable.indexFunction, [matrix, .integer(-1)]), .tensor(NDArray(shape: [2], values: [3, 4]), .float))
        XCTAssertThrowsError(try table.call(FunctionTable.indexFunction, [.integer(3), .integer(0)])) {
            XCTAssertEqual("\($0)", "an integer cannot be indexed (a list or a tensor can)")
        }
    }

    func testSlicingClampsAsPythonDoes() throws {
        let list = EvalValue.list([.integer(10), .integer(20), .integer(30)])
        func slice(_ value: EvalValue, _ start: EvalValue, _ end: EvalValue) throws -> EvalValue {
            try table.call(FunctionTable.sliceFunction, [value, start, end])
        }
        XCTAssertEqual(try slice(list, .integer(1), .absent), .list([.integer(20), .integer(30)]))
        XCTAssertEqual(try slice(list, .absent, .integer(-1)), .list([.integer(10), .integer(20)]))
        XCTAssertEqual(try slice(list, .integer(-10), .integer(10)), list)
        XCTAssertEqual(try slice(list, .integer(2), .integer(1)), .list([]))
        XCTAssertEqual(try slice(vector([1, 2, 3, 4]), .integer(1), .integer(3)), vector([2, 3]))
    }

    func testItem() throws {
        XCTAssertEqual(try table.call("item", [vector([7])]), .integer(7))
        XCTAssertEqual(try table.call("item", [.tensor(NDArray(shape: [], values: [0.5]), .float)]), .real(0.5))
        XCTAssertEqual(try table.call("item", [.tensor(NDArray(shape: [1, 1], values: [1]), .bool)]), .boolean(true))
        XCTAssertEqual(try table.call("item", [.list([.integer(3)])]), .integer(3))
        XCTAssertThrowsError(try table.call("item", [vector([1, 2])])) {
            XCTAssertEqual("\($0)", "item: the tensor has 2 elements, not 1")
        }
    }
}
