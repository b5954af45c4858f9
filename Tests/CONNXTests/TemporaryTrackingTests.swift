import CONNX
import Foundation
import XCTest

/// The table of temporary files removed on interruption: saves on several threads at once
/// (two models saved concurrently) each get a slot of their own, without a lock (the signal
/// handler reads the table too).
final class TemporaryTrackingTests: XCTestCase {
    func testConcurrentTrackersNeverShareASlot() {
        final class Owners: @unchecked Sendable {
            let lock = NSLock()
            var owner = [Int](repeating: -1, count: 64)
            var shared = 0
            var untracked = 0
        }
        let owners = Owners()
        let threads = 4
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            let path = "temporary-\(thread)"
            for _ in 0..<200_000 {
                let slot = Int(onnx_fuse_track_temporary(path))
                guard slot >= 0 else {
                    owners.lock.lock(); owners.untracked += 1; owners.lock.unlock()
                    continue
                }
                owners.lock.lock()
                if owners.owner[slot] != -1 { owners.shared += 1 }
                owners.owner[slot] = thread
                owners.lock.unlock()
                owners.lock.lock()
                if owners.owner[slot] == thread { owners.owner[slot] = -1 }
                owners.lock.unlock()
                onnx_fuse_untrack_temporary(Int32(slot))
            }
        }
        XCTAssertEqual(owners.shared, 0, "two saves were given the same slot")
        XCTAssertEqual(owners.untracked, 0, "a save found no free slot")
    }

    /// 64 paths at once; past that a path is simply not tracked, and an untracked slot is free again.
    func testSlotsRunOutAndComeBack() {
        var slots: [Int32] = []
        while slots.count < 100 {
            let slot = onnx_fuse_track_temporary("temporary-\(slots.count)")
            guard slot >= 0 else { break }
            slots.append(slot)
        }
        XCTAssertEqual(slots.count, 64)
        XCTAssertEqual(Set(slots).count, slots.count)
        XCTAssertEqual(onnx_fuse_track_temporary("one-too-many"), -1)
        onnx_fuse_untrack_temporary(slots[10])
        onnx_fuse_untrack_temporary(slots[10])
        XCTAssertEqual(onnx_fuse_track_temporary("again"), slots[10])
        XCTAssertEqual(onnx_fuse_track_temporary(String(repeating: "x", count: 5000)), -1, "a path too long to keep")
        for slot in slots { onnx_fuse_untrack_temporary(slot) }
        onnx_fuse_untrack_temporary(-1)
    }
}
