import XCTest
@testable import ONNXFuseRules

/// The examples of `docs/rules.md`: every block fenced as `rules` is a whole rule file that
/// parses.
final class ParseDocsTests: XCTestCase {
    func testEveryRulesExampleOfTheReferenceParses() throws {
        let docs = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/rules.md")
        let text = try String(contentsOf: docs, encoding: .utf8)
        var blocks: [(line: Int, text: String)] = []
        var current: [String]?
        var start = 0
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if current == nil, line == "```rules" {
                current = []
                start = index + 2
            } else if current != nil, line == "```" {
                blocks.append((start, current!.joined(separator: "\n")))
                current = nil
            } else if current != nil {
                current!.append(String(line))
            }
        }
        XCTAssertGreaterThanOrEqual(blocks.count, 15)
        var names: [String] = []
        for block in blocks {
            do {
                let file = try parseRules(block.text, file: "docs/rules.md@\(block.line)")
                XCTAssertFalse(file.rules.isEmpty, "block at line \(block.line)")
                names += file.rules.map(\.name)
                // What a reader copies must also load: every example passes the compiler's checks.
                _ = try compileRules(file)
            } catch {
                XCTFail("the example at docs/rules.md:\(block.line) does not load:\n\(error)")
            }
        }
        XCTAssertEqual(names.first, "fold-conv-batchnorm")
        // The first example is the example file of the tests.
        XCTAssertEqual(blocks.first?.text, parserExampleFile.trimmingCharacters(in: .newlines))
    }
}
