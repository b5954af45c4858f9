import Foundation

/// A scratch folder for one benchmark process (each benchmark runs in a process of its own):
/// made by the benchmark's setup, removed by its teardown.
struct Scratch {
    let path = NSTemporaryDirectory() + "onnx-fuse-benchmarks-\(getpid())"

    func create() throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
