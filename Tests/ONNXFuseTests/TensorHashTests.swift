import XCTest
@testable import ONNXFuse
import ONNXFuseOps
import ONNXFuseRules
import ONNXFuseIR

/// `tensorHash`, which groups initializers for merge-duplicates: equal tensors hash alike however
/// their bytes are held, and sharing still compares the tensors in full.
final class TensorHashTests: XCTestCase {
    private func resident(_ bytes: [UInt8], dims: [Int64]) -> Box<Tensor> {
        Box(Tensor(dataType: .uint8, dims: dims, storage: .raw(TensorBytes(count: bytes.count) { $0.copyBytes(from: bytes) })))
    }

    private func deferred(_ bytes: [UInt8], dims: [Int64]) -> Box<Tensor> {
        let samples = DeferredBytes.sampleRanges(count: bytes.count).flatMap { bytes[$0] }
        let computation = DeferredBytes(count: bytes.count, samples: samples) { $0.copyBytes(from: bytes) }
        return Box(Tensor(dataType: .uint8, dims: dims, storage: .raw(TensorBytes(deferred: computation))))
    }

    func testDeferredBytesHashAsTheirResidentBytes() {
        // Below, at and above three samples' worth (192 bytes), sampled and whole.
        for count in [1, 16, 63, 191, 192, 193, 200, 4_096] {
            let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            for whole in [false, true] {
                XCTAssertEqual(tensorHash(resident(bytes, dims: [Int64(count)]), whole: whole),
                               tensorHash(deferred(bytes, dims: [Int64(count)]), whole: whole), "\(count) bytes, whole: \(whole)")
            }
        }
    }

    func testWhatTellsTensorsApart() {
        let bytes = (0..<1_000).map { UInt8(truncatingIfNeeded: $0) }
        let base = tensorHash(resident(bytes, dims: [1_000]), whole: false)
        XCTAssertEqual(base, tensorHash(resident(bytes, dims: [1_000]), whole: false))
        XCTAssertNotEqual(base, tensorHash(resident(bytes, dims: [10, 100]), whole: false))
        var sampled = bytes
        sampled[0] ^= 1
        XCTAssertNotEqual(base, tensorHash(resident(sampled, dims: [1_000]), whole: false))
        // A byte between the samples: only the whole hash sees it.
        var between = bytes
        between[300] ^= 1
        XCTAssertEqual(base, tensorHash(resident(between, dims: [1_000]), whole: false))
        XCTAssertNotEqual(tensorHash(resident(bytes, dims: [1_000]), whole: true),
                          tensorHash(resident(between, dims: [1_000]), whole: true))
    }

    func testInitializersEqualInFullAreSharedOthersAreNot() throws {
        let graph = Graph(name: "g")
        let model = Model(irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)], graph: graph)
        let bytes = (0..<1_000).map { UInt8(truncatingIfNeeded: $0) }
        var between = bytes
        between[300] ^= 1
        let tensors = [resident(bytes, dims: [1_000]), deferred(bytes, dims: [1_000]),  // equal
                       resident(between, dims: [1_000]),  // equal samples, other bytes
                       resident(bytes, dims: [10, 100])]  // other dims
        let values = tensors.enumerated().map { graph.addInitializer(name: "t\($0.offset)", tensor: $0.element.value) }
        let sum = Node(opType: "Concat", inputs: values, outputNames: ["y"], attributes: [Attribute(name: "axis", value: .int(0))])
        try graph.append(sum)
        XCTAssertEqual(mergeDuplicateInitializers(model), 1)
        XCTAssertEqual(sum.inputs.map { $0!.name }, ["t0", "t0", "t2", "t3"])
        XCTAssertEqual(mergeDuplicateInitializers(model), 0)
    }
}
