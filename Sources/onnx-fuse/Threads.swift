#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A counting semaphore of real threads: at most `limit` callers inside `withSlot` at once,
/// the others wait (a batch's worker threads, which may block).
final class CountingGate: @unchecked Sendable {
    private let limit: Int
    /// Guarded by `lock`.
    private var inside = 0
    private let lock = ThreadLock()

    /// A gate that lets `limit` callers in at once.
    init(limit: Int) { self.limit = limit }

    /// Runs `body` once fewer than `limit` others are running theirs.
    func withSlot<T>(_ body: () throws -> T) rethrows -> T {
        lock.withLock {
            while inside >= limit { lock.wait() }
            inside += 1
        }
        defer {
            lock.withLock {
                inside -= 1
                lock.signal()
            }
        }
        return try body()
    }
}

/// A pthread mutex with one condition variable, at fixed addresses (a Swift stored property
/// has none that `&` could promise), for the threads of a batch.
final class ThreadLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    /// A new mutex and condition.
    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Runs `body` holding the mutex.
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits for a signal (holding the mutex: inside `withLock`).
    func wait() { pthread_cond_wait(condition, mutex) }

    /// Waits for a signal or until `seconds` have passed (inside `withLock`).
    func wait(seconds: Double) {
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        let nanoseconds = Int(deadline.tv_nsec) + Int(seconds * 1e9)
        deadline.tv_sec += nanoseconds / 1_000_000_000
        deadline.tv_nsec = nanoseconds % 1_000_000_000
        pthread_cond_timedwait(condition, mutex, &deadline)
    }

    /// Wakes one waiter.
    func signal() { pthread_cond_signal(condition) }

    /// Wakes every waiter.
    func broadcast() { pthread_cond_broadcast(condition) }
}

/// A real thread (not a task, nor `concurrentPerform`, whose width the core count caps) that
/// runs `body` once; `join` waits for it.
final class WorkerThread: @unchecked Sendable {
    private var thread: pthread_t?

    init(_ body: @escaping @Sendable () -> Void) {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        // As much stack as the main thread usually has: rules and kernels recurse on nesting.
        pthread_attr_setstacksize(&attributes, 16 << 20)
        let context = Unmanaged.passRetained(Box(body)).toOpaque()
        var handle = pthread_t()
        let status = pthread_create(&handle, &attributes, { context in
            let box = Unmanaged<Box>.fromOpaque(context!).takeRetainedValue()
            box.body()
            return nil
        }, context)
        if status == 0 {
            thread = handle
        } else {
            // No thread: run here instead, so that the model still gets done.
            Unmanaged<Box>.fromOpaque(context).release()
            body()
        }
    }

    /// Waits until the thread has run its body.
    func join() {
        if let thread { pthread_join(thread, nil) }
    }

    /// The body, carried through `pthread_create`'s context pointer.
    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
}

/// `transform` of each of `0..<count` on up to `threads` real threads; the results in order.
func parallelMap<T: Sendable>(_ count: Int, threads: Int, _ transform: @escaping @Sendable (Int) -> T) -> [T] {
    let results = ParallelResults<T>(count)
    let workers = (0..<max(1, min(threads, count))).map { _ in
        WorkerThread {
            while let index = results.claim() { results.store(transform(index), at: index) }
        }
    }
    for worker in workers { worker.join() }
    return results.values
}

/// The indices `parallelMap` hands out and the results it collects, under one lock.
private final class ParallelResults<T: Sendable>: @unchecked Sendable {
    private let lock = ThreadLock()
    /// Guarded by `lock`.
    private var next = 0
    private var results: [T?]

    /// Room for `count` results.
    init(_ count: Int) { results = Array(repeating: nil, count: count) }

    /// The next index to compute, or nil when every one is taken.
    func claim() -> Int? {
        lock.withLock {
            guard next < results.count else { return nil }
            defer { next += 1 }
            return next
        }
    }

    /// Keeps the result of `index`.
    func store(_ value: T, at index: Int) { lock.withLock { results[index] = value } }

    /// Every result, once all are stored.
    var values: [T] { lock.withLock { results.map { $0! } } }
}
