import CONNX
import Glibc
import XCTest

/// `onnx_fuse_usable_processors`, the default of `--jobs`.
final class ProcessorCountTests: XCTestCase {
    func testTheCountFollowsTheAffinityMask() throws {
        let online = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        let usable = Int(onnx_fuse_usable_processors())
        XCTAssertGreaterThanOrEqual(usable, 1)
        XCTAssertLessThanOrEqual(usable, online)
        // Narrowed to one processor (as `taskset -c 0` or a container would), on a thread of its
        // own: the mask is per thread, and the count must say 1.
        var narrowed = -1
        var thread = pthread_t()
        let status = pthread_create(&thread, nil, { context in
            var mask = cpu_set_t()  // zeroed
            withUnsafeMutableBytes(of: &mask) { $0[0] = 1 }  // processor 0
            let result = context!.assumingMemoryBound(to: Int.self)
            // Glibc's module leaves sched_setaffinity out (it needs _GNU_SOURCE).
            typealias SetAffinity = @convention(c) (pid_t, Int, UnsafeRawPointer) -> Int32
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "sched_setaffinity") else {
                result.pointee = -3
                return nil
            }
            let setAffinity = unsafeBitCast(symbol, to: SetAffinity.self)
            result.pointee = setAffinity(0, MemoryLayout<cpu_set_t>.size, &mask) == 0
                ? Int(onnx_fuse_usable_processors()) : -2
            return nil
        }, &narrowed)
        XCTAssertEqual(status, 0)
        pthread_join(thread, nil)
        XCTAssertEqual(narrowed, 1)
    }
}
