// The arena: alignment, zeroing, budget, large allocations, use by protobuf-c.
import CONNX
import Foundation
import XCTest

final class ArenaTests: XCTestCase {
    func testAllocationsAreAlignedZeroedAndDisjoint() {
        checkAllocations(onnx_fuse_arena_create(Int.max)!, sizes: [1, 3, 16, 17, 100, 4096, 20_000, 70_000, 1, 0, 65_536, 1_000_000, 33])
    }

    /// A tree's arena maps blocks of 2 MiB and more on their own (in huge pages where the kernel
    /// gives them): the bump blocks past 2 MiB, and single requests of megabytes, land there.
    func testTreeArenaAllocationsAreAlignedZeroedAndDisjoint() {
        checkAllocations(onnx_fuse_arena_create_for_tree(Int.max)!,
                         sizes: [1, 3, 16, 17, 100, 4096, 20_000, 70_000, 1, 0, 65_536, 1_000_000, 33, 3_000_000, 2_097_152, 300_000])
    }

    func testTreeArenaUnpacksAModel() {
        let arena = onnx_fuse_arena_create_for_tree(Int.max)!
        defer { onnx_fuse_arena_destroy(arena) }
        // Bump blocks double from 64 KiB: past 2 MiB of small requests they are mapped ones, where
        // the tree then lands.
        for _ in 0..<6_000 { XCTAssertNotNil(onnx_fuse_arena_alloc(arena, 1_000)) }
        let bytes = canonical(RichModel().bytes)
        let message = bytes.withUnsafeBufferPointer {
            onnx__model_proto__unpack(onnx_fuse_arena_allocator(arena), $0.count, $0.baseAddress)
        }
        XCTAssertNotNil(message)
        XCTAssertEqual(message.map { onnx__model_proto__get_packed_size($0) }, bytes.count)
    }

    private func checkAllocations(_ arena: OpaquePointer, sizes: [Int]) {
        defer { onnx_fuse_arena_destroy(arena) }
        var blocks: [(UnsafeMutableRawPointer, Int)] = []
        for round in 0..<8 {
            for size in sizes {
                let p = onnx_fuse_arena_alloc(arena, size)!
                XCTAssertEqual(Int(bitPattern: p) % 16, 0)
                let bytes = p.assumingMemoryBound(to: UInt8.self)
                for i in 0..<size where bytes[i] != 0 {
                    XCTFail("byte \(i) of a fresh \(size)-byte allocation is not zero")
                    break
                }
                // Fill, so that overlapping allocations would show as non-zero memory above.
                memset(p, Int32(round + 1), size)
                blocks.append((p, size))
            }
        }
        let sorted = blocks.sorted { $0.0 < $1.0 }
        for k in 1..<sorted.count {
            XCTAssertGreaterThanOrEqual(sorted[k].0, sorted[k - 1].0 + max(sorted[k - 1].1, 1))
        }
        let expected = blocks.reduce(0) { $0 + (max($1.1, 1) + 15) / 16 * 16 }
        XCTAssertEqual(onnx_fuse_arena_used(arena), expected)
        XCTAssertEqual(onnx_fuse_arena_over_budget(arena), 0)
    }

    func testBudgetRefusesAndReports() {
        let arena = onnx_fuse_arena_create(1000)!
        defer { onnx_fuse_arena_destroy(arena) }
        XCTAssertNotNil(onnx_fuse_arena_alloc(arena, 500))   // 512 with rounding
        XCTAssertEqual(onnx_fuse_arena_used(arena), 512)
        XCTAssertEqual(onnx_fuse_arena_over_budget(arena), 0)
        XCTAssertNil(onnx_fuse_arena_alloc(arena, 500))
        XCTAssertEqual(onnx_fuse_arena_over_budget(arena), 1)
        XCTAssertEqual(onnx_fuse_arena_used(arena), 512)
        XCTAssertNotNil(onnx_fuse_arena_alloc(arena, 480))   // exactly up to 992
        XCTAssertEqual(onnx_fuse_arena_used(arena), 992)
    }

    func testHugeRequestsFailCleanly() {
        // size_t is Int in Swift: SIZE_MAX, "no budget", is Int(bitPattern: UInt.max).
        let arena = onnx_fuse_arena_create(Int(bitPattern: UInt.max))!
        defer { onnx_fuse_arena_destroy(arena) }
        XCTAssertNil(onnx_fuse_arena_alloc(arena, Int.max))       // no memory: not a budget matter
        XCTAssertEqual(onnx_fuse_arena_over_budget(arena), 0)
        XCTAssertNil(onnx_fuse_arena_alloc(arena, Int(bitPattern: UInt.max))) // would overflow rounding
        XCTAssertEqual(onnx_fuse_arena_over_budget(arena), 0)
        XCTAssertNotNil(onnx_fuse_arena_alloc(arena, 100))
        XCTAssertEqual(onnx_fuse_arena_used(arena), 112)
        let limited = onnx_fuse_arena_create(1 << 20)!
        defer { onnx_fuse_arena_destroy(limited) }
        XCTAssertNil(onnx_fuse_arena_alloc(limited, Int.max))
        XCTAssertEqual(onnx_fuse_arena_over_budget(limited), 1)
        XCTAssertNotNil(onnx_fuse_arena_alloc(limited, 100))
    }

    func testAllocatorViewWorksWithProtobufC() {
        let arena = onnx_fuse_arena_create(Int.max)!
        defer { onnx_fuse_arena_destroy(arena) }
        let allocator = onnx_fuse_arena_allocator(arena)!
        XCTAssertEqual(allocator.pointee.allocator_data, UnsafeMutableRawPointer(arena))
        let p = allocator.pointee.alloc(allocator.pointee.allocator_data, 24)
        XCTAssertNotNil(p)
        allocator.pointee.free(allocator.pointee.allocator_data, p) // a no-op
        let bytes = canonical(RichModel().bytes)
        let message = bytes.withUnsafeBufferPointer {
            onnx__model_proto__unpack(allocator, $0.count, $0.baseAddress)
        }
        XCTAssertNotNil(message)
        // Freeing through the arena view is harmless; the arena still owns everything.
        onnx__model_proto__free_unpacked(message, allocator)
        XCTAssertGreaterThan(onnx_fuse_arena_used(arena), 0)
    }

    func testUnpackTrusted() {
        let bytes = canonical(RichModel().bytes)
        let arena = onnx_fuse_arena_create(Int.max)!
        defer { onnx_fuse_arena_destroy(arena) }
        let message = bytes.withUnsafeBufferPointer {
            onnx_fuse_unpack_trusted(modelDescriptor(), $0.baseAddress, $0.count, arena)
        }!
        XCTAssertEqual(pack(message), bytes)
        // The payloads were copied into the arena: nothing points at `bytes`.
        XCTAssertEqual(allTensors(message).filter { $0.pointee.raw_data.len > 0 }.count, RichModel().payloads.count)

        let small = onnx_fuse_arena_create(100)!
        defer { onnx_fuse_arena_destroy(small) }
        let refused = bytes.withUnsafeBufferPointer {
            onnx_fuse_unpack_trusted(modelDescriptor(), $0.baseAddress, $0.count, small)
        }
        XCTAssertNil(refused)
        XCTAssertEqual(onnx_fuse_arena_over_budget(small), 1)
        XCTAssertNil(onnx_fuse_unpack_trusted(modelDescriptor(), nil, 0, nil))
    }

    func testDestroyAcceptsNull() {
        onnx_fuse_arena_destroy(nil)
    }
}
