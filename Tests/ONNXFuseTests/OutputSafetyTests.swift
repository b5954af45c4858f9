import XCTest
import Foundation
import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules

/// Nothing is lost around the output: onnx-fuse never writes over its input files (the model
/// and its external data, under any name), over a symbolic link, a folder or another special
/// file, or lets the report take one of those places; the output keeps the input's permission
/// bits. Each refusal comes before anything is written.
final class OutputSafetyTests: XCTestCase {
    func workspace() throws -> URL { try fixtureWorkspace(["external_data.onnx", "external_data.onnx.data", "conv_bn.onnx"]) }

    func run(_ arguments: [String], in directory: URL) throws -> CommandTests.Result { try runOnnxFuse(arguments, in: directory) }

    /// Runs `arguments`, expects exit 1 with `reason` in the message, and that no file changed.
    func expectRefusal(_ arguments: [String], _ reason: String, in directory: URL, file: StaticString = #filePath, line: UInt = #line) throws {
        let before = try filesByName(in: directory)
        let result = try run(arguments, in: directory)
        XCTAssertEqual(result.status, 1, result.stderr, file: file, line: line)
        XCTAssertTrue(result.stderr.contains(reason), result.stderr, file: file, line: line)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr, file: file, line: line)
        XCTAssertEqual(try filesByName(in: directory), before, "a file changed", file: file, line: line)
    }

    func testTheInputsExternalDataIsNeverWrittenOver() throws {
        let dir = try workspace()
        // -o naming the data file itself.
        try expectRefusal(["external_data.onnx", "-o", "external_data.onnx.data"], "it is the input's external data file", in: dir)
        // An input whose data file is the output's data file (<output>.data). Without rules
        // the weights stay external, so the output has a data file: under another name.
        try FileManager.default.moveItem(at: dir.appendingPathComponent("external_data.onnx"), to: dir.appendingPathComponent("m.onnx"))
        let aside = try run(["m.onnx", "--no-builtin", "-o", "external_data.onnx"], in: dir)
        XCTAssertEqual(aside.status, 0, aside.stderr)
        XCTAssertTrue(aside.stderr.contains("(+ external_data.onnx.data.1"), aside.stderr)
        XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("external_data.onnx.data")),
                       try Data(contentsOf: CommandTests.fixtures.appendingPathComponent("external_data.onnx.data")))
        XCTAssertNoThrow(try ModelFile.load(path: dir.appendingPathComponent("m.onnx").path))
        try FileManager.default.removeItem(at: dir.appendingPathComponent("external_data.onnx"))
        try FileManager.default.removeItem(at: dir.appendingPathComponent("external_data.onnx.data.1"))
        // When the folded weights are small enough to go inline, no data file is written:
        // nothing of the input is touched, and that is not refused.
        XCTAssertEqual(try run(["m.onnx", "-o", "external_data.onnx"], in: dir).status, 0)
        XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("external_data.onnx.data")),
                       try Data(contentsOf: CommandTests.fixtures.appendingPathComponent("external_data.onnx.data")))
        // Another folder is fine.
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("out"), withIntermediateDirectories: false)
        let result = try run(["m.onnx", "--no-builtin", "-o", "out/external_data.onnx"], in: dir)
        XCTAssertEqual(result.status, 0, result.stderr)
    }

    func testTheReportNeverTakesTheInputsOrTheOutputsPlace() throws {
        let dir = try workspace()
        for (report, reason) in [("external_data.onnx", "it is the input model"),
                                 ("./external_data.onnx.data", "it is the input's external data file"),
                                 ("out.onnx", "it is the output"), ("out.onnx.data", "it is the output's data file"),
                                 ("missing/report.json", "does not exist"),
                                 (String(repeating: "r", count: 256) + ".json", "File name too long")] {
            try expectRefusal(["external_data.onnx", "-o", "out.onnx", "--report", report], reason, in: dir)
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out.onnx").path))
        }
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("link.json").path, withDestinationPath: "conv_bn.onnx")
        try expectRefusal(["external_data.onnx", "-o", "out.onnx", "--report", "link.json"], "it is a symbolic link", in: dir)
        // The output through a symbolically linked folder: the same place under another spelling.
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("real"), withIntermediateDirectories: false)
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("linked").path, withDestinationPath: "real")
        try expectRefusal(["external_data.onnx", "--no-builtin", "-o", "real/out.onnx", "--report", "linked/out.onnx"], "it is the output", in: dir)
        try expectRefusal(["external_data.onnx", "--no-builtin", "-o", "real/out.onnx", "--report", "linked/out.onnx.data"],
                          "it is the output's data file", in: dir)
    }

    func testSpecialFilesAtTheOutputAreNotReplaced() throws {
        let dir = try workspace()
        // An existing folder: refused before its .data sibling is written.
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("folder"), withIntermediateDirectories: false)
        try expectRefusal(["external_data.onnx", "--no-builtin", "-o", "folder"], "it is a folder", in: dir)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("folder.data").path))
        // A symbolic link at the output, and --in-place on a link.
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("link.onnx").path, withDestinationPath: "elsewhere.onnx")
        try expectRefusal(["conv_bn.onnx", "-o", "link.onnx"], "it is a symbolic link", in: dir)
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("alias.onnx").path, withDestinationPath: "conv_bn.onnx")
        try expectRefusal(["alias.onnx", "--in-place"], "it is a symbolic link", in: dir)
        // A FIFO at the output.
        XCTAssertEqual(mkfifo(dir.appendingPathComponent("pipe.onnx").path, 0o600), 0)
        let result = try run(["conv_bn.onnx", "-o", "pipe.onnx"], in: dir)
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("it is a FIFO"), result.stderr)
    }

    func testTheOutputKeepsPermissionBits() throws {
        let dir = try workspace()
        func mode(_ name: String) throws -> Int {
            try (FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent(name).path)[.posixPermissions] as! NSNumber).intValue
        }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: dir.appendingPathComponent("external_data.onnx").path)
        XCTAssertEqual(try run(["external_data.onnx", "--no-builtin", "-o", "private.onnx"], in: dir).status, 0)
        XCTAssertEqual(try mode("private.onnx"), 0o600)
        XCTAssertEqual(try mode("private.onnx.data"), 0o600)
        // Over an existing output, that file's bits stay.
        try Data().write(to: dir.appendingPathComponent("shared.onnx"))
        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: dir.appendingPathComponent("shared.onnx").path)
        XCTAssertEqual(try run(["external_data.onnx", "-o", "shared.onnx"], in: dir).status, 0)
        XCTAssertEqual(try mode("shared.onnx"), 0o640)
        // --in-place keeps the input's.
        try FileManager.default.setAttributes([.posixPermissions: 0o604], ofItemAtPath: dir.appendingPathComponent("conv_bn.onnx").path)
        XCTAssertEqual(try run(["conv_bn.onnx", "--in-place"], in: dir).status, 0)
        XCTAssertEqual(try mode("conv_bn.onnx"), 0o604)
    }

    func testNamesFromAModelCannotInjectLinesOrEscapesAndLongOnesAreShortened() throws {
        // A Reshape that the no-op rule explains, named with a newline and a terminal escape,
        // and another with a 5,000-character name.
        let dir = try workspace()
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(2), .value(3)])))
        let shape = graph.addInitializer(name: "shape", tensor: Tensor(dataType: .int64, dims: [2], values: [Int64(3), 2]))
        let evil = Node(opType: "Reshape", name: "evil\n\u{1B}[31mred", inputs: [x, shape], outputNames: ["a"])
        try graph.append(evil)
        let flat = graph.addInitializer(name: "flat", tensor: Tensor(dataType: .int64, dims: [1], values: [Int64(6)]))
        let long = Node(opType: "Reshape", name: String(repeating: "n", count: 5000), inputs: [evil.outputs[0], flat], outputNames: ["b"])
        try graph.append(long)
        try graph.addOutput(long.outputs[0]!, info: ValueInfo(type: nil))
        try ModelFile.save(model, to: dir.appendingPathComponent("names.onnx").path)
        let result = try run(["names.onnx", "--explain", "--disable", "merge-reshapes", "--disable", "fuse-reshape-reshape",
                              "-o", "out.onnx"], in: dir)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertFalse(result.stderr.unicodeScalars.contains { $0.value == 0x1B }, result.stderr)
        XCTAssertTrue(result.stderr.contains("evil\\n\\u{1B}[31mred"), result.stderr)
        XCTAssertTrue(result.stderr.contains("…(4803 characters)…"), result.stderr)
        for line in result.stderr.split(separator: "\n") { XCTAssertLessThan(line.count, 4200) }
    }

    func testTemporaryFilesOfKilledRunsAreRemovedByTheNextRun() throws {
        let dir = try workspace()
        // A run killed with SIGKILL leaves `.out.onnx.tmp-<pid>-<suffix>`; process 1 is alive.
        let dead = dir.appendingPathComponent(".out.onnx.tmp-999999999-x1")
        let alive = dir.appendingPathComponent(".out.onnx.tmp-1-x2")
        let other = dir.appendingPathComponent(".other.onnx.tmp-999999999-x3")
        // A writer in another PID namespace: its pid is unknown here, but it holds the lock.
        let foreign = dir.appendingPathComponent(".out.onnx.tmp-999999998-x4")
        for url in [dead, alive, other, foreign] { try Data([1, 2, 3]).write(to: url) }
        let lock = open(foreign.path, O_RDONLY)
        XCTAssertEqual(flock(lock, LOCK_EX), 0)
        defer { close(lock) }
        XCTAssertEqual(try run(["conv_bn.onnx", "-o", "out.onnx"], in: dir).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dead.path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: alive.path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: foreign.path), "a file a live writer holds stays")
        XCTAssertTrue(FileManager.default.fileExists(atPath: other.path), "another output's leftovers are not this run's business")
    }

    func testAModelNamedRulesAndALongOutputName() throws {
        let dir = try workspace()
        try FileManager.default.copyItem(at: dir.appendingPathComponent("conv_bn.onnx"), to: dir.appendingPathComponent("rules"))
        let named = try run(["rules", "-o", "from-rules.onnx"], in: dir)
        XCTAssertEqual(named.status, 0, named.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("from-rules.onnx").path))
        // A legal 250-byte name: the temporary file beside it must stay within NAME_MAX too.
        let long = String(repeating: "o", count: 245) + ".onnx"
        let result = try run(["conv_bn.onnx", "-o", long], in: dir)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(long).path))
    }
}

/// File names are bytes: names that are not valid UTF-8 reach the file system unchanged.
final class ByteFileNameTests: XCTestCase {
    /// Runs the binary with arguments given as raw bytes (Foundation's `Process` would encode
    /// them as UTF-8); the exit status and standard error.
    func runWithByteArguments(_ arguments: [[UInt8]]) throws -> (status: Int32, stderr: String) {
        let argv = ([Array(CommandTests.executable.path.utf8)] + arguments).map { bytes -> UnsafeMutablePointer<CChar>? in
            let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count + 1)
            for (index, byte) in bytes.enumerated() { pointer[index] = CChar(bitPattern: byte) }
            pointer[bytes.count] = 0
            return pointer
        } + [nil]
        defer { for pointer in argv { pointer?.deallocate() } }
        var pipe: [Int32] = [0, 0]
        XCTAssertEqual(Glibc.pipe(&pipe), 0)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipe[1], STDERR_FILENO)
        posix_spawn_file_actions_addclose(&actions, pipe[0])
        var pid: pid_t = 0
        XCTAssertEqual(posix_spawn(&pid, CommandTests.executable.path, &actions, nil, argv, environ), 0)
        close(pipe[1])
        let stderr = FileHandle(fileDescriptor: pipe[0], closeOnDealloc: true).readDataToEndOfFile()
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return ((status >> 8) & 0xFF, String(decoding: stderr, as: UTF8.self))
    }

    func testNamesThatAreNotUTF8ReachTheFileSystemUnchanged() throws {
        let dir = try fixtureWorkspace(["conv_bn.onnx", "external_data.onnx", "external_data.onnx.data"])
        let folder = Array(dir.path.utf8) + [UInt8(ascii: "/")]
        let input = folder + Array("m".utf8) + [0xFE] + Array(".onnx".utf8)
        let output = folder + Array("o".utf8) + [0xFF, 0xFE] + Array(".onnx".utf8)
        let report = folder + Array("r".utf8) + [0xFD] + Array(".json".utf8)
        try write(Data(contentsOf: dir.appendingPathComponent("conv_bn.onnx")), toBytePath: input)
        let result = try runWithByteArguments([input, Array("-o".utf8), output, Array("--report".utf8), report])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("m\\xFE.onnx -> "), result.stderr)
        XCTAssertTrue(result.stderr.contains("o\\xFF\\xFE.onnx"), result.stderr)
        var names = Set<[UInt8]>()
        let stream = try XCTUnwrap(opendir(dir.path))
        while let entry = readdir(stream) {
            names.insert(withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) })
        }
        closedir(stream)
        for expected in [input, output, report] { XCTAssertTrue(names.contains(Array(expected.dropFirst(folder.count))), "\(expected)") }
        XCTAssertEqual(names.count, 8, "no other file (., .., three fixtures, input, output, report)")
        // A missing name is named in the message, its bytes shown as \xNN.
        let missing = try runWithByteArguments([folder + Array("gone".utf8) + [0xC0] + Array(".onnx".utf8)])
        XCTAssertEqual(missing.status, 3, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("gone\\xC0.onnx: open failed: No such file or directory"), missing.stderr)
        // A model with external data cannot name a data file whose name is not UTF-8: refused.
        let external = try runWithByteArguments([folder + Array("external_data.onnx".utf8), Array("--no-builtin".utf8), Array("-o".utf8),
                                                 folder + [0x78, 0xFE] + Array(".onnx".utf8)])
        XCTAssertEqual(external.status, 1, external.stderr)
        XCTAssertTrue(external.stderr.contains("whose name is not valid UTF-8"), external.stderr)
    }

    /// Writes `data` to the file whose path is `path`, byte for byte.
    func write(_ data: Data, toBytePath path: [UInt8]) throws {
        let fd = open((path + [0]).map { CChar(bitPattern: $0) }, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        let written = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        XCTAssertEqual(written, data.count)
    }
}
