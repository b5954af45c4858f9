// onnx_fuse_load on damaged inputs: truncations and random byte flips must never crash.
import CONNX
import Foundation
import XCTest

/// SplitMix64: small, seedable, the same on every platform.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

final class RobustnessTests: XCTestCase {
    private let allowed: Set<UInt32> = [ONNX_FUSE_OK.rawValue, ONNX_FUSE_INVALID.rawValue, ONNX_FUSE_LIMIT.rawValue]

    /// After any load: a consistent result, and a tree that packs without crashing.
    private func exercise(_ bytes: [UInt8], _ context: @autoclosure () -> String) -> onnx_fuse_status {
        let load = Load(bytes, maxDepth: 64, budget: 64 << 20)
        XCTAssertTrue(allowed.contains(load.status.rawValue), "\(context()): \(load.summary)")
        if load.status == ONNX_FUSE_OK {
            checkInvariants(load, context())
            XCTAssertEqual(load.error.status, ONNX_FUSE_OK, context())
            _ = pack(load.message)
        } else {
            XCTAssertNil(load.loaded.model, context())
            XCTAssertNil(load.loaded.arena, context())
        }
        return load.status
    }

    func testTruncationAtEveryOffset() {
        let bytes = canonical(RichModel().bytes)
        var ok = 0
        for n in 0...bytes.count {
            let status = exercise(Array(bytes[0..<n]), "truncated to \(n) of \(bytes.count) bytes")
            XCTAssertTrue(status == ONNX_FUSE_OK || status == ONNX_FUSE_INVALID, "truncated to \(n)")
            if status == ONNX_FUSE_OK { ok += 1 }
        }
        // Cuts at top-level field boundaries leave valid models; the full input is one.
        XCTAssertGreaterThan(ok, 1)
        XCTAssertEqual(exercise(bytes, "whole"), ONNX_FUSE_OK)
    }

    func testRandomByteFlips() {
        // ONNX_FUSE_FUZZ_SEED reproduces a run; otherwise every run tries new inputs.
        let env = ProcessInfo.processInfo.environment["ONNX_FUSE_FUZZ_SEED"]
        let seed = env.flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        let iterations = Int(ProcessInfo.processInfo.environment["ONNX_FUSE_FUZZ_ITERATIONS"] ?? "") ?? 3_000
        print("testRandomByteFlips: seed \(seed) (set ONNX_FUSE_FUZZ_SEED=\(seed) to repeat)")
        var rng = SplitMix64(seed: seed)
        let models = [canonical(RichModel().bytes), RichModel().bytes]
        var counts: [UInt32: Int] = [:]
        for i in 0..<iterations {
            var bytes = models[i % models.count]
            let flips = Int.random(in: 1...6, using: &rng)
            for _ in 0..<flips {
                let at = Int.random(in: 0..<bytes.count, using: &rng)
                // Mostly single-bit flips (they keep lengths plausible), sometimes whole bytes.
                if Bool.random(using: &rng) {
                    bytes[at] ^= UInt8(1) << UInt8.random(in: 0...7, using: &rng)
                } else {
                    bytes[at] = UInt8.random(in: 0...255, using: &rng)
                }
            }
            let status = exercise(bytes, "seed \(seed), iteration \(i)")
            counts[status.rawValue, default: 0] += 1
        }
        print("testRandomByteFlips: statuses \(counts.sorted { $0.key < $1.key })")
    }

    func testRandomBytes() {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SplitMix64(seed: seed)
        for i in 0..<2_000 {
            let n = Int.random(in: 0...64, using: &rng)
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = exercise(bytes, "random bytes, seed \(seed), iteration \(i)")
        }
    }
}
