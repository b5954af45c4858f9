import XCTest
import Foundation
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// The fuzz targets' regression seeds (`fixtures/fuzz/`), replayed through the same steps as the
/// targets in `Fuzz/` but without sanitizers, so that `swift test` keeps every finding fixed;
/// `scripts/fuzz TARGET 0` replays them with AddressSanitizer.
final class FuzzSeedTests: XCTestCase {
    static let seeds = CommandTests.fixtures.appendingPathComponent("fuzz")

    func seedFiles(_ target: String) throws -> [URL] {
        let folder = Self.seeds.appendingPathComponent(target)
        return try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted().map { folder.appendingPathComponent($0) }
    }

    /// Verifies `model`, saves it, loads it again and verifies that: what a rewrite must keep.
    func checkSaveAndReload(_ model: Model, _ what: String) throws {
        XCTAssertNoThrow(try model.verify(), what)
        let folder = try fixtureWorkspace([])
        let output = folder.appendingPathComponent("out.onnx").path
        try ModelFile.save(model, to: output)
        let reloaded = try ModelFile.load(path: output)
        XCTAssertNoThrow(try reloaded.verify(), what)
    }

    func testModelSeeds() throws {
        let files = try seedFiles("model")
        XCTAssertFalse(files.isEmpty)
        for file in files {
            guard let model = try? ModelFile.load(path: file.path) else { continue }
            XCTAssertNoThrow(try model.verify(), file.lastPathComponent)
            let report = try optimize(model, rules: RuleFiles.builtin)
            guard report.ruleErrors.isEmpty, report.changedOutputs.isEmpty, report.invalidNodes.isEmpty else { continue }
            try checkSaveAndReload(model, file.lastPathComponent)
        }
    }

    func testRuleSeeds() throws {
        let files = try seedFiles("rules")
        XCTAssertFalse(files.isEmpty)
        for file in files {
            let text = try String(contentsOf: file, encoding: .utf8)
            guard let rules = try? RuleFiles.rules(in: text, file: file.lastPathComponent), !rules.isEmpty else { continue }
            for name in ["conv_bn.onnx", "rule_traps.onnx", "shape_ops_mix.onnx"] {
                let model = try ModelFile.load(path: CommandTests.fixtures.appendingPathComponent(name).path)
                let report = try optimize(model, rules: rules)
                guard report.ruleErrors.isEmpty, report.changedOutputs.isEmpty, report.invalidNodes.isEmpty, !report.fired.isEmpty else { continue }
                try checkSaveAndReload(model, "\(file.lastPathComponent) on \(name)")
            }
        }
    }
}
