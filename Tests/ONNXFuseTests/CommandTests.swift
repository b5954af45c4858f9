import XCTest
import Foundation

/// Runs the built `onnx-fuse` as a user would and checks exit codes, messages and files.
final class CommandTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = root.appendingPathComponent("fixtures")

    /// The executable built beside this test bundle.
    static var executable: URL {
        let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments.first { $0.hasSuffix(".xctest") } ?? CommandLine.arguments[0])
            .deletingLastPathComponent()
        return bundleDirectory.appendingPathComponent("onnx-fuse")
    }

    struct Result {
        var status: Int32
        var stdout: Data
        var stderr: String
    }

    func run(_ arguments: [String], in directory: URL? = nil) throws -> Result {
        try runOnnxFuse(arguments, in: directory)
    }

    func workspace(with fixtures: [String]) throws -> URL { try fixtureWorkspace(fixtures) }

    func files(in directory: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).sorted()
    }

    /// The single error line: `onnx-fuse: error: ...`.
    func assertOneErrorLine(_ result: Result, startingWith prefix: String, file: StaticString = #filePath, line: UInt = #line) {
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        XCTAssertEqual(lines.count, 1, "one line expected: \(result.stderr)", file: file, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("onnx-fuse: error: " + prefix), result.stderr, file: file, line: line)
    }

    func testDefaultOutputIsBesideTheInputAndIdentical() throws {
        let dir = try workspace(with: ["conv_bn.onnx"])
        let result = try run(["conv_bn.onnx", "--no-builtin"], in: dir)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(files(in: dir), ["conv_bn.fused.onnx", "conv_bn.onnx"])
        XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("conv_bn.fused.onnx")),
                       try Data(contentsOf: dir.appendingPathComponent("conv_bn.onnx")))
        // The summary: one line with nodes, sizes and time.
        XCTAssertTrue(result.stderr.hasPrefix("onnx-fuse: conv_bn.onnx -> conv_bn.fused.onnx: 3 -> 3 nodes, 859 B -> 859 B, "), result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1)
    }

    func testOutputOptionStandardOutputAndQuiet() throws {
        let dir = try workspace(with: ["if_subgraph.onnx"])
        let toFile = try run(["if_subgraph.onnx", "--no-builtin", "-o", "sub/../out.onnx", "-q"], in: dir)
        XCTAssertEqual(toFile.status, 3, "the folder 'sub' does not exist: \(toFile.stderr)")
        let ok = try run(["if_subgraph.onnx", "--no-builtin", "-o", "out.onnx", "--quiet"], in: dir)
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertEqual(ok.stderr, "")
        let piped = try run(["if_subgraph.onnx", "--no-builtin", "-o", "-", "-q"], in: dir)
        XCTAssertEqual(piped.status, 0, piped.stderr)
        XCTAssertEqual(piped.stdout, try Data(contentsOf: dir.appendingPathComponent("if_subgraph.onnx")))
    }

    func testInputIsNeverOverwrittenWithoutInPlace() throws {
        let dir = try workspace(with: ["conv_bn.onnx"])
        let original = try Data(contentsOf: dir.appendingPathComponent("conv_bn.onnx"))
        let refused = try run(["conv_bn.onnx", "-o", "./conv_bn.onnx"], in: dir)
        XCTAssertEqual(refused.status, 1)
        assertOneErrorLine(refused, startingWith: "./conv_bn.onnx: refusing to overwrite the input")
        let inPlace = try run(["conv_bn.onnx", "--no-builtin", "--in-place"], in: dir)
        XCTAssertEqual(inPlace.status, 0, inPlace.stderr)
        XCTAssertTrue(inPlace.stderr.contains("3 -> 3 nodes, 859 B -> 859 B"), inPlace.stderr)
        XCTAssertEqual(files(in: dir), ["conv_bn.onnx"], "no temporary file left")
        XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("conv_bn.onnx")), original)
    }

    func testBuiltinRulesRunByDefault() throws {
        let dir = try workspace(with: ["conv_bn.onnx"])
        let result = try run(["conv_bn.onnx"], in: dir)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("3 -> 2 nodes (fold-conv-batchnorm ×1)"), result.stderr)
        // Under the summary: the rules that fired, and the operators whose count changed.
        XCTAssertEqual(result.stderr.split(separator: "\n").dropFirst().map(String.init), [
            "  rule                  fired",
            "  fold-conv-batchnorm       1",
            "  operator             before   after",
            "  BatchNormalization        1       0",
        ])
        let list = try run(["rules", "list"])
        let line = String(decoding: list.stdout, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix("fold-conv-batchnorm ") }
        XCTAssertEqual(line?.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first, "builtin:batchnorm.rules")
    }

    func testPrintWritesTextAndNoModel() throws {
        let dir = try workspace(with: ["conv_bn.onnx"])
        let result = try run(["conv_bn.onnx", "--no-builtin", "--print"], in: dir)
        XCTAssertEqual(result.status, 0, result.stderr)
        let text = String(decoding: result.stdout, as: UTF8.self)
        XCTAssertTrue(text.contains("= Conv <"), text)
        XCTAssertTrue(text.contains("= BatchNormalization <epsilon = "), text)
        XCTAssertEqual(files(in: dir), ["conv_bn.onnx"])
    }

    func testExitCodesAndOneLineErrors() throws {
        let dir = try workspace(with: [])
        let invalid = Self.fixtures.appendingPathComponent("invalid")
        for name in ["raw_data_too_short.onnx", "cycle.onnx", "external_escape.onnx", "nul_in_name.onnx", "truncated.onnx"] {
            let path = invalid.appendingPathComponent(name).path
            let output = dir.appendingPathComponent(name).path
            let result = try run([path, "-o", output])
            XCTAssertEqual(result.status, 2, "\(name): \(result.stderr)")
            assertOneErrorLine(result, startingWith: path + ": ")
        }
        let deep = invalid.appendingPathComponent("nested_10000.onnx").path
        let limit = try run([deep, "-o", dir.appendingPathComponent("deep.onnx").path])
        XCTAssertEqual(limit.status, 4, limit.stderr)
        assertOneErrorLine(limit, startingWith: deep + ": ")
        let missing = try run([dir.appendingPathComponent("absent.onnx").path])
        XCTAssertEqual(missing.status, 3, missing.stderr)
        assertOneErrorLine(missing, startingWith: dir.appendingPathComponent("absent.onnx").path + ": open failed")
        // An output in a folder that does not exist: the error names the folder.
        let folder = dir.appendingPathComponent("absent").path
        let noFolder = try run([Self.fixtures.appendingPathComponent("conv_bn.onnx").path, "-o", folder + "/out.onnx"])
        XCTAssertEqual(noFolder.status, 3, noFolder.stderr)
        XCTAssertEqual(noFolder.stderr, "onnx-fuse: error: \(folder)/out.onnx: create a temporary file in its folder '\(folder)' "
            + "failed: No such file or directory\n")
        let usage = try run(["--no-such-flag"])
        XCTAssertEqual(usage.status, 1)
        assertOneErrorLine(usage, startingWith: "")
        let noModel = try run([])
        XCTAssertEqual(noModel.status, 1)
        XCTAssertEqual(files(in: dir), [], "no output or temporary file after errors")
    }

    func testExternalDataCannotGoToStandardOutput() throws {
        let dir = try workspace(with: ["external_data.onnx", "external_data.onnx.data"])
        let result = try run(["external_data.onnx", "--no-builtin", "-o", "-"], in: dir)
        XCTAssertEqual(result.status, 1, "a usage problem: \(result.stderr)")
        assertOneErrorLine(result, startingWith: "external_data.onnx: the model has external data")
        XCTAssertTrue(result.stdout.isEmpty)
        let saved = try run(["external_data.onnx", "--no-builtin", "-q"], in: dir)
        XCTAssertEqual(saved.status, 0, saved.stderr)
        XCTAssertEqual(files(in: dir), ["external_data.fused.onnx", "external_data.fused.onnx.data", "external_data.onnx", "external_data.onnx.data"])
    }

    /// `--help` is part of the interface: compare with the recorded text
    /// (`ONNX_FUSE_RECORD=1 swift test` records it anew; review the diff).
    func testHelpSnapshot() throws {
        let result = try run(["--help"])
        XCTAssertEqual(result.status, 0)
        let help = String(decoding: result.stdout, as: UTF8.self)
        let snapshot = Self.root.appendingPathComponent("Tests/ONNXFuseTests/Snapshots/help.txt")
        if ProcessInfo.processInfo.environment["ONNX_FUSE_RECORD"] == "1" {
            try FileManager.default.createDirectory(at: snapshot.deletingLastPathComponent(), withIntermediateDirectories: true)
            try help.write(to: snapshot, atomically: true, encoding: .utf8)
        }
        XCTAssertEqual(help, try String(contentsOf: snapshot, encoding: .utf8))
        for code in ["0  done", "1  usage error", "2  invalid or unsupported model", "3  I/O error", "4  a limit exceeded", "5  --verify"] {
            XCTAssertTrue(help.contains(code), code)
        }
    }
}

/// Runs the built `onnx-fuse` with `arguments` in `directory` and collects what it did.
extension XCTestCase {
    /// A fresh temporary folder holding copies of `fixtures`, removed when the test ends.
    func fixtureWorkspace(_ fixtures: [String]) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("onnx-fuse-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        for name in fixtures {
            try FileManager.default.copyItem(at: CommandTests.fixtures.appendingPathComponent(name), to: url.appendingPathComponent(name))
        }
        return url
    }
}

func runOnnxFuse(_ arguments: [String], in directory: URL? = nil, environment: [String: String] = [:]) throws -> CommandTests.Result {
    let process = Process()
    process.executableURL = CommandTests.executable
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CommandTests.Result(status: process.terminationStatus, stdout: stdout, stderr: String(decoding: stderr, as: UTF8.self))
}

/// The regular files directly in `directory`, by name, with their contents.
func filesByName(in directory: URL) throws -> [String: Data] {
    var result: [String: Data] = [:]
    for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) {
        let url = directory.appendingPathComponent(name)
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), !isFolder.boolValue {
            result[name] = try Data(contentsOf: url)
        }
    }
    return result
}
