import XCTest
import Foundation
import ONNXFuseIR
@testable import ONNXFuseProto

/// Saving leaves the host program's signal handlers alone: only `removeTemporaryFilesOnSignals`
/// (which the command calls, and no test in this process) installs the library's.
final class SignalHandlerTests: XCTestCase {
    // Written by the signal handler, read after `raise` returns on the same thread.
    nonisolated(unsafe) private static var handled: sig_atomic_t = 0

    func testSavingKeepsTheHostsSignalHandlers() throws {
        let signals = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGBUS]
        var previous: [sigaction] = []
        for signal in signals {
            var mine = sigaction()
            mine.__sigaction_handler.sa_handler = { _ in SignalHandlerTests.handled = 1 }
            sigemptyset(&mine.sa_mask)
            var old = sigaction()
            XCTAssertEqual(sigaction(signal, &mine, &old), 0)
            previous.append(old)
        }
        defer { for (signal, var old) in zip(signals, previous) { sigaction(signal, &old, nil) } }
        let graph = Graph(name: "g")
        let x = graph.addInput(name: "x", info: ValueInfo(type: .tensor(.float, [.value(1)])))
        let relu = Node(opType: "Relu", inputs: [x], outputNames: ["y"])
        try graph.append(relu)
        try graph.addOutput(relu.outputs[0]!, info: ValueInfo(type: nil))
        let directory = try temporaryDirectory(self)
        try ModelFile.save(Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph),
                           to: directory.appendingPathComponent("out.onnx").path)
        // The host's handler still runs for each signal.
        for signal in signals {
            SignalHandlerTests.handled = 0
            raise(signal)
            XCTAssertEqual(SignalHandlerTests.handled, 1, "signal \(signal)")
        }
    }
}
