import XCTest
import Foundation

/// `onnx-fuse a.onnx b.onnx dir/ -o OUT/`: many models in one run, run as a user would.
final class BatchCommandTests: XCTestCase {
    func run(_ arguments: [String], in directory: URL) throws -> CommandTests.Result {
        try runOnnxFuse(arguments, in: directory)
    }

    /// A workspace holding `files` (fixture name → path in the workspace, folders made).
    func workspace(_ files: [String: String]) throws -> URL {
        let dir = try fixtureWorkspace([])
        for (fixture, path) in files {
            let target = dir.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: CommandTests.fixtures.appendingPathComponent(fixture), to: target)
        }
        return dir
    }

    /// Every file under `directory`, by path relative to it.
    func tree(_ directory: URL) -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: directory.path)
        var paths: [String] = []
        while let path = enumerator?.nextObject() as? String {
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent(path).path, isDirectory: &isFolder), !isFolder.boolValue {
                paths.append(path)
            }
        }
        return paths.sorted()
    }

    func lines(_ result: CommandTests.Result) -> [String] {
        result.stderr.split(separator: "\n").map(String.init)
    }

    func testFolderIsSearchedRecursivelyInByteOrder() throws {
        let dir = try workspace([
            "conv_bn.onnx": "models/b.onnx", "gelu_erf.onnx": "models/a/x.onnx", "lora.onnx": "models/a.onnx",
            "identity_chain.onnx": "models/earlier.fused.onnx", "dead_nodes.onnx": "models/A/z.onnx",
        ])
        try Data("not a model".utf8).write(to: dir.appendingPathComponent("models/notes.txt"))
        // A linked folder is not followed (it could loop), a linked file is read.
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("models/loop").path, withDestinationPath: ".")
        let result = try run(["models", "--no-builtin"], in: dir)
        XCTAssertEqual(result.status, 0, result.stderr)
        let inputs = lines(result).dropLast().map { $0.split(separator: " ")[1] }
        // Byte order of the relative paths: "A/" before "a", "a.onnx" before "a/" ('.' < '/').
        XCTAssertEqual(inputs, ["models/A/z.onnx", "models/a.onnx", "models/a/x.onnx", "models/b.onnx"], result.stderr)
        XCTAssertTrue(lines(result).last!.hasPrefix("onnx-fuse: 4 models: 4 written, 0 failed; "), result.stderr)
        // Beside each input, as for one model; the earlier output was skipped.
        XCTAssertEqual(tree(dir.appendingPathComponent("models")), [
            "A/z.fused.onnx", "A/z.onnx", "a.fused.onnx", "a.onnx", "a/x.fused.onnx", "a/x.onnx",
            "b.fused.onnx", "b.onnx", "earlier.fused.onnx", "notes.txt",
        ])
        // With -o, the relative paths are kept under it, and an output folder inside is skipped.
        let again = try run(["models", "--no-builtin", "-o", "models/out", "-q"], in: dir)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(again.stderr, "")
        let twice = try run(["models", "--no-builtin", "-o", "models/out", "-q"], in: dir)
        XCTAssertEqual(twice.status, 0, twice.stderr)
        let written = tree(dir.appendingPathComponent("models/out"))
        XCTAssertTrue(written.contains("a/x.fused.onnx") && written.contains("earlier.fused.onnx"), "\(written)")
        XCTAssertFalse(written.contains { $0.hasPrefix("out/") }, "the output folder was searched: \(written)")
        XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("models/out/a/x.onnx")),
                       try Data(contentsOf: dir.appendingPathComponent("models/a/x.onnx")))
    }

    func testBatchMakesOneModelFileABatchAndFoldersOnlyForOutputsWritten() throws {
        let dir = try workspace(["conv_bn.onnx": "m/a.onnx"])
        try Data("not a model".utf8).write(to: dir.appendingPathComponent("m/bad.onnx"))
        // One file with --batch: -o names a folder (its parents made too), the report is a batch's.
        let one = try run(["m/a.onnx", "--batch", "-o", "new/out/", "--report", "one.json"], in: dir)
        XCTAssertEqual(one.status, 0, one.stderr)
        XCTAssertEqual(tree(dir.appendingPathComponent("new")), ["out/a.onnx"])
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("one.json"))) as! [String: Any]
        XCTAssertEqual((json["models"] as? [[String: Any]])?.map { $0["status"] as? String }, ["written"])
        XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("new/out/a.onnx")),
                       try run(["m/a.onnx", "-o", "-"], in: dir).stdout)
        // A model that fails makes no folder, with --fail-fast as without.
        for flags in [["--batch"], ["--batch", "--fail-fast"]] {
            let failed = try run(["m/bad.onnx", "-o", "failed/out/"] + flags, in: dir)
            XCTAssertEqual(failed.status, 2, failed.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("failed").path), "\(flags)")
        }
    }

    func testALinkToAModelOfTheRunIsLeftOut() throws {
        let dir = try workspace(["conv_bn.onnx": "models/v3.onnx", "gelu_erf.onnx": "elsewhere/other.onnx"])
        let models = dir.appendingPathComponent("models").path
        // latest.onnx sorts before its target; shared.onnx leads outside the run and is a model.
        try FileManager.default.createSymbolicLink(atPath: models + "/latest.onnx", withDestinationPath: "v3.onnx")
        try FileManager.default.createSymbolicLink(atPath: models + "/shared.onnx", withDestinationPath: "../elsewhere/other.onnx")
        let result = try run(["models", "--no-builtin", "-o", "out/"], in: dir)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(lines(result).first, "onnx-fuse: models/latest.onnx: skipped: a link to models/v3.onnx, a model of this run")
        XCTAssertTrue(lines(result).last!.hasPrefix("onnx-fuse: 2 models: 2 written, 0 failed; "), result.stderr)
        XCTAssertEqual(tree(dir.appendingPathComponent("out")), ["shared.onnx", "v3.onnx"])
        // Named twice by the user, the same model is still refused.
        let twice = try run(["models", "models/latest.onnx", "-o", "again/"], in: dir)
        XCTAssertEqual(twice.status, 1, twice.stderr)
        XCTAssertTrue(twice.stderr.contains("the model is given twice"), twice.stderr)
    }

    func testUsageErrorsStopBeforeAnyModelAndWriteNothing() throws {
        let dir = try workspace(["conv_bn.onnx": "a/m.onnx", "lora.onnx": "b/m.onnx", "gelu_erf.onnx": "g.onnx"])
        let before = tree(dir)
        let cases: [([String], String)] = [
            (["a/m.onnx", "b/m.onnx", "-o", "out/"], "out/m.onnx: two models would be written there"),
            (["a/m.onnx", "./a//m.onnx", "-o", "out/"], "./a//m.onnx: the model is given twice"),
            (["a", "a/m.onnx", "-o", "out/"], "a/m.onnx: the model is given twice"),
            (["g.onnx", "a/m.onnx", "-o", "."], "./g.onnx: refusing to overwrite the input g.onnx"),
            (["a", "b/m.onnx", "-o", "a"], "a: the folder to search is the output folder"),
            (["b/m.onnx", "g.onnx", "-o", "b/"], "b/m.onnx: refusing to overwrite the input b/m.onnx"),
            (["g.onnx", "absent.onnx", "-o", "out/"], "absent.onnx: no such file or folder"),
            (["g.onnx", "a/m.onnx", "--print"], "--print works on one model"),
            (["g.onnx", "a/m.onnx", "-o", "-"], "-o - writes one model to standard output"),
            (["g.onnx", "a/m.onnx", "-o", "out/", "--report", "a/m.onnx"], "a/m.onnx: refusing to write the report: it is the input model"),
            (["g.onnx", "a/m.onnx", "-o", "out/", "--report", "out/g.onnx.data"], "out/g.onnx.data: refusing to write the report"),
            (["g.onnx", "a", "--rules", "missing.rules"], "missing.rules"),
            (["g.onnx", "a", "--only", "no-such-rule"], "there is no rule named 'no-such-rule'"),
            (["g.onnx", "a", "--jobs", "0"], "--jobs must be at least 1"),
        ]
        for (arguments, message) in cases {
            let result = try run(arguments, in: dir)
            XCTAssertEqual(result.status, 1, "\(arguments): \(result.stderr)")
            XCTAssertEqual(lines(result).count, 1, "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.hasPrefix("onnx-fuse: error: "), result.stderr)
            XCTAssertTrue(result.stderr.contains(message), "\(arguments): \(result.stderr)")
            XCTAssertEqual(tree(dir), before, "\(arguments) wrote something")
        }
        // An output whose data file could be named like another output.
        try FileManager.default.copyItem(at: dir.appendingPathComponent("g.onnx"), to: dir.appendingPathComponent("g.onnx.data"))
        let data = try run(["g.onnx", "g.onnx.data", "-o", "out/"], in: dir)
        XCTAssertEqual(data.status, 1, data.stderr)
        XCTAssertTrue(data.stderr.contains("out/g.onnx: its data file could be named the output of g.onnx.data"), data.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out").path))
    }

    /// Every fixture through one batch on two threads gives the bytes that a run of each alone
    /// gives, and so do batches on one thread and on 32: the output is a
    /// function of the input, the rules and the flags (README, "Optimizing a model repository").
    func testOutputsAreByteIdenticalToRunsOfOneModel() throws {
        let fixtures = try FileManager.default.contentsOfDirectory(atPath: CommandTests.fixtures.path)
            .filter { $0.hasSuffix(".onnx") || $0.hasSuffix(".onnx.data") }
        let dir = try workspace(Dictionary(uniqueKeysWithValues: fixtures.map { ($0, "in/" + $0) }))
        let models = fixtures.filter { $0.hasSuffix(".onnx") }.sorted()
        XCTAssertGreaterThan(models.count, 50)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("single"), withIntermediateDirectories: false)
        // Two at a time: a process each, most of whose time is starting up.
        let failures = ThreadSafeList()
        DispatchQueue.concurrentPerform(iterations: models.count) { index in
            let model = models[index]
            let single = try? runOnnxFuse(["in/" + model, "-o", "single/" + model, "-q"], in: dir)
            if single?.status != 0 { failures.append("\(model): \(single?.stderr ?? "did not run")") }
        }
        XCTAssertEqual(failures.items, [])
        // 32 threads: more saves at once than the 16 let through (each holds up to three of the
        // 64 slots for temporary files); the others wait their turn.
        for (jobs, folder) in [("2", "batch2"), ("1", "batch1"), ("32", "batch32")] {
            let batch = try run(["in", "-o", folder + "/", "--jobs", jobs, "-q"], in: dir)
            XCTAssertEqual(batch.status, 0, batch.stderr)
            XCTAssertEqual(tree(dir.appendingPathComponent(folder)), tree(dir.appendingPathComponent("single")))
            for file in tree(dir.appendingPathComponent("single")) {
                XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent(folder + "/" + file)),
                               try Data(contentsOf: dir.appendingPathComponent("single/" + file)), "\(folder)/\(file)")
            }
        }
    }

    func testExitCodeIsTheWorstAndEveryModelIsProcessed() throws {
        let dir = try workspace([
            "conv_bn.onnx": "m/1-good.onnx", "invalid/truncated.onnx": "m/2-truncated.onnx",
            "invalid/nested_10000.onnx": "m/3-deep.onnx", "gelu_erf.onnx": "m/4-good.onnx",
        ])
        let result = try run(["m", "-o", "out/", "--jobs", "2"], in: dir)
        XCTAssertEqual(result.status, 4, "the largest exit code: \(result.stderr)")
        let output = lines(result)
        XCTAssertEqual(output.count, 5, result.stderr)
        // In input order, whatever finished first; each error line names its model.
        XCTAssertTrue(output[0].hasPrefix("onnx-fuse: m/1-good.onnx -> out/1-good.onnx: 3 -> 2 nodes"), output[0])
        XCTAssertTrue(output[1].hasPrefix("onnx-fuse: error: m/2-truncated.onnx: "), output[1])
        XCTAssertTrue(output[2].hasPrefix("onnx-fuse: error: m/3-deep.onnx: "), output[2])
        XCTAssertTrue(output[3].hasPrefix("onnx-fuse: m/4-good.onnx -> out/4-good.onnx: "), output[3])
        XCTAssertTrue(output[4].hasPrefix("onnx-fuse: 4 models: 2 written, 2 failed; 23 -> 10 nodes, "), output[4])
        XCTAssertEqual(tree(dir.appendingPathComponent("out")), ["1-good.onnx", "4-good.onnx"])
        // -q: the errors, and the total since something failed.
        let quiet = try run(["m", "-o", "out/", "-q"], in: dir)
        XCTAssertEqual(quiet.status, 4)
        let quietLines = lines(quiet)
        XCTAssertEqual(quietLines.count, 3, quiet.stderr)
        for (line, prefix) in zip(quietLines, ["onnx-fuse: error: m/2-truncated.onnx: ", "onnx-fuse: error: m/3-deep.onnx: ",
                                               "onnx-fuse: 4 models: 2 written, 2 failed; "]) {
            XCTAssertTrue(line.hasPrefix(prefix), line)
        }
        let allGood = try run(["m/1-good.onnx", "m/4-good.onnx", "-o", "out/", "-q"], in: dir)
        XCTAssertEqual(allGood.status, 0, allGood.stderr)
        XCTAssertEqual(allGood.stderr, "", "-q with nothing failed prints nothing")
    }

    func testFailFastStartsNoModelAfterAFailure() throws {
        let dir = try workspace([
            "conv_bn.onnx": "m/1.onnx", "invalid/cycle.onnx": "m/2.onnx", "gelu_erf.onnx": "m/3.onnx", "lora.onnx": "m/4.onnx",
        ])
        let result = try run(["m", "-o", "out/", "--jobs", "1", "--fail-fast"], in: dir)
        XCTAssertEqual(result.status, 2, result.stderr)
        let output = lines(result)
        XCTAssertEqual(output.count, 5, result.stderr)
        for (line, prefix) in zip(output, [
            "onnx-fuse: m/1.onnx -> out/1.onnx: ", "onnx-fuse: error: m/2.onnx: ", "onnx-fuse: m/3.onnx: skipped (a model failed; --fail-fast)",
            "onnx-fuse: m/4.onnx: skipped (a model failed; --fail-fast)", "onnx-fuse: 4 models: 1 written, 1 failed, 2 skipped; 3 -> 2 nodes, ",
        ]) {
            XCTAssertTrue(line.hasPrefix(prefix), "\(line) does not start with \(prefix)")
        }
        XCTAssertTrue(result.stderr.contains("4 models: 1 written, 1 failed, 2 skipped"), result.stderr)
        XCTAssertEqual(tree(dir.appendingPathComponent("out")), ["1.onnx"])
    }

    /// Each model's block (its --verify and --explain lines, then its summary line) is whole, in
    /// input order, and says what a run of that model alone says before its table of changes.
    func testEachModelsLinesArePrintedTogetherAsAloneInInputOrder() throws {
        let names = ["conv_add_trap.onnx", "gemm_bn_shared.onnx", "rule_traps.onnx"]
        let dir = try workspace(Dictionary(uniqueKeysWithValues: names.map { ($0, "m/" + $0) }))
        let batch = try run(["m", "-o", "out/", "--explain", "--verify", "--jobs", "2"], in: dir)
        XCTAssertEqual(batch.status, 0, batch.stderr)
        /// A summary line up to its output (the rest has a time).
        func withoutTime(_ line: String) -> String {
            line.hasPrefix("onnx-fuse: m/") && line.contains(" -> ") ? String(line.prefix { $0 != ">" }) : line
        }
        var expected: [String] = []
        for name in names {
            let alone = try run(["m/" + name, "-o", "alone-" + name, "--explain", "--verify"], in: dir)
            XCTAssertEqual(alone.status, 0, alone.stderr)
            let lines = self.lines(alone)
            let summary = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("onnx-fuse: m/") }, alone.stderr)
            expected += lines[...summary].map(withoutTime)
        }
        XCTAssertEqual(lines(batch).dropLast().map(withoutTime), expected)
    }

    func testReportHoldsOneEntryPerModelInInputOrder() throws {
        let dir = try workspace(["conv_bn.onnx": "m/a.onnx", "invalid/truncated.onnx": "m/b.onnx", "lora.onnx": "m/c.onnx"])
        let result = try run(["m", "-o", "out/", "--report", "report.json", "-q"], in: dir)
        XCTAssertEqual(result.status, 2, result.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("report.json"))) as! [String: Any]
        let models = json["models"] as! [[String: Any]]
        XCTAssertEqual(models.map { $0["input"] as? String }, ["m/a.onnx", "m/b.onnx", "m/c.onnx"])
        XCTAssertEqual(models.map { $0["status"] as? String }, ["written", "failed", "written"])
        XCTAssertEqual(models.map { $0["exit_code"] as? Int }, [0, 2, 0])
        XCTAssertEqual(models[0]["output"] as? String, "out/a.onnx")
        XCTAssertTrue(models[0]["error"] is NSNull)
        XCTAssertTrue((models[1]["error"] as? String)?.hasPrefix("m/b.onnx: ") == true, "\(models[1])")
        XCTAssertEqual(models[1]["errors"] as? [String], [models[1]["error"] as! String])
        XCTAssertEqual(models[0]["errors"] as? [String], [])
        XCTAssertTrue(models[1]["output"] is NSNull)
        // The fields of a run of one model's report.
        for key in ["rules_fired", "explanations", "nodes_before", "nodes_after", "nodes_by_op_type_before", "nodes_by_op_type_after",
                    "bytes_before", "bytes_after", "seconds", "reached_rewrite_cap"] {
            XCTAssertNotNil(models[0][key], key)
        }
        XCTAssertEqual((models[0]["rules_fired"] as? [[String: Any]])?.first?["rule"] as? String, "fold-conv-batchnorm")
        let total = json["total"] as! [String: Any]
        XCTAssertEqual(total["models"] as? Int, 3)
        XCTAssertEqual(total["written"] as? Int, 2)
        XCTAssertEqual(total["failed"] as? Int, 1)
        XCTAssertEqual(total["exit_code"] as? Int, 2)
        XCTAssertEqual(total["nodes_before"] as? Int, 8)
    }

    func testExternalDataModelsInABatch() throws {
        let dir = try workspace([
            "external_data.onnx": "m/external_data.onnx", "external_data.onnx.data": "m/external_data.onnx.data", "conv_bn.onnx": "m/conv_bn.onnx",
        ])
        let batch = try run(["m", "-o", "out/", "--no-builtin", "--jobs", "2"], in: dir)
        XCTAssertEqual(batch.status, 0, batch.stderr)
        XCTAssertEqual(tree(dir.appendingPathComponent("out")), ["conv_bn.onnx", "external_data.onnx", "external_data.onnx.data"])
        XCTAssertTrue(batch.stderr.contains("-> out/external_data.onnx (+ external_data.onnx.data, "), batch.stderr)
        // Kept as it was, data file included (the same name in another folder).
        for file in ["external_data.onnx", "external_data.onnx.data"] {
            XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("out/" + file)), try Data(contentsOf: dir.appendingPathComponent("m/" + file)))
        }
        // --in-place replaces each, its data file with it.
        let inPlace = try run(["m", "--in-place", "--no-builtin", "-q"], in: dir)
        XCTAssertEqual(inPlace.status, 0, inPlace.stderr)
        XCTAssertEqual(tree(dir.appendingPathComponent("m")).count, 3, "\(tree(dir))")
        let reread = try run(["m/external_data.onnx", "--no-builtin", "-o", "reread.onnx", "-q"], in: dir)
        XCTAssertEqual(reread.status, 0, reread.stderr)
        // An output over the data file another model of the run reads is refused: a model whose
        // data file is w/zzzzzzzzzzzzzzzz.onnx (its location renamed in place, same length), and
        // a model of that name written into w/.
        var bytes = try Data(contentsOf: CommandTests.fixtures.appendingPathComponent("external_data.onnx"))
        let location = Data("external_data.onnx.data".utf8), renamed = Data("w/zzzzzzzzzzzzzzzz.onnx".utf8)
        while let range = bytes.range(of: location) { bytes.replaceSubrange(range, with: renamed) }
        let reader = dir.appendingPathComponent("r")
        try FileManager.default.createDirectory(at: reader.appendingPathComponent("w"), withIntermediateDirectories: true)
        try bytes.write(to: reader.appendingPathComponent("y.onnx"))
        try FileManager.default.copyItem(at: CommandTests.fixtures.appendingPathComponent("external_data.onnx.data"),
                                         to: reader.appendingPathComponent("w/zzzzzzzzzzzzzzzz.onnx"))
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("k"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: CommandTests.fixtures.appendingPathComponent("conv_bn.onnx"),
                                         to: dir.appendingPathComponent("k/zzzzzzzzzzzzzzzz.onnx"))
        let readable = try run(["r/y.onnx", "--no-builtin", "-o", "alone.onnx", "-q"], in: dir)
        XCTAssertEqual(readable.status, 0, "the renamed location reads: \(readable.stderr)")
        let dataBefore = try Data(contentsOf: reader.appendingPathComponent("w/zzzzzzzzzzzzzzzz.onnx"))
        let over = try run(["r/y.onnx", "k/zzzzzzzzzzzzzzzz.onnx", "-o", "r/w/"], in: dir)
        XCTAssertEqual(over.status, 1, over.stderr)
        XCTAssertTrue(over.stderr.contains("r/w/zzzzzzzzzzzzzzzz.onnx: refusing to write the output of k/zzzzzzzzzzzzzzzz.onnx: "), over.stderr)
        XCTAssertTrue(over.stderr.contains("is a data file of the input r/y.onnx"), over.stderr)
        XCTAssertEqual(try Data(contentsOf: reader.appendingPathComponent("w/zzzzzzzzzzzzzzzz.onnx")), dataBefore)
    }
}

/// Strings appended from many threads.
final class ThreadSafeList: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []

    func append(_ item: String) { lock.withLock { list.append(item) } }
    var items: [String] { lock.withLock { list } }
}
