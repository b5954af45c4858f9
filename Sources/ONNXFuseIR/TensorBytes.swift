#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Immutable bytes of a tensor payload that live somewhere else: a mapped model file, an
/// external data file, a heap block owned by this value, or bytes computed only when read
/// (`DeferredBytes`: a folded weight that the saver computes when it reaches it). Nothing is
/// copied when a model is loaded; `owner` keeps the memory alive.
///
/// The bytes are often misaligned (an offset inside a mapped file), so elements are read
/// with unaligned loads only.
public struct TensorBytes: @unchecked Sendable, Equatable, CustomStringConvertible {
    /// Keeps the memory alive: a mapping, an arena, a `HeapBlock`, or the `DeferredBytes`.
    public let owner: AnyObject?
    /// The first byte of resident bytes; nil for deferred ones and when `count` is 0.
    private let residentBase: UnsafeRawPointer?
    /// The number of bytes.
    public let count: Int

    /// The computation that makes the bytes, for deferred bytes (the only bytes without an
    /// address, their owner being the computation); nil for resident ones.
    @inline(__always)
    public var deferred: DeferredBytes? {
        residentBase == nil && count > 0 ? unsafeDowncast(owner.unsafelyUnwrapped, to: DeferredBytes.self) : nil
    }

    /// Bytes at `baseAddress` that `owner` keeps alive (no copy).
    public init(owner: AnyObject?, baseAddress: UnsafeRawPointer?, count: Int) {
        precondition(count >= 0 && (count == 0 || baseAddress != nil))
        self.owner = owner
        self.residentBase = count == 0 ? nil : baseAddress
        self.count = count
    }

    /// Bytes that `deferred` computes when they are first read.
    public init(deferred: DeferredBytes) {
        self.owner = deferred
        self.residentBase = nil
        self.count = deferred.count
    }

    /// A heap copy of `bytes`.
    public init<Bytes: Collection>(copying bytes: Bytes) where Bytes.Element == UInt8 {
        let block = HeapBlock(count: bytes.count)
        if block.count > 0 {
            UnsafeMutableRawBufferPointer(start: block.pointer, count: block.count).copyBytes(from: bytes)
        }
        self.init(owner: block, baseAddress: block.pointer.map { UnsafeRawPointer($0) }, count: block.count)
    }

    /// A heap block of `count` bytes that `initialize` fills.
    public init(count: Int, initialize: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        let block = HeapBlock(count: count)
        try initialize(UnsafeMutableRawBufferPointer(start: block.pointer, count: count))
        self.init(owner: block, baseAddress: block.pointer.map { UnsafeRawPointer($0) }, count: count)
    }

    /// No bytes.
    public static let empty = TensorBytes(owner: nil, baseAddress: nil, count: 0)

    /// The first byte; nil when `count` is 0. Deferred bytes are computed (once, and kept) on
    /// first use: a reader that can stream them uses `withTransientBytes` instead.
    public var baseAddress: UnsafeRawPointer? {
        guard let deferred, count > 0 else { return residentBase }
        return UnsafeRawPointer(deferred.resident().pointer)
    }

    /// The first byte without computing anything: nil for deferred bytes, even computed ones.
    public var residentAddress: UnsafeRawPointer? { residentBase }

    /// Calls `body` with the bytes.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: baseAddress, count: count))
    }

    /// Calls `body` with the bytes; deferred bytes not yet kept are computed for this call
    /// only and freed after it (the saver's way: one folded weight in memory at a time).
    public func withTransientBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let deferred, count > 0 else { return try withUnsafeBytes(body) }
        return try deferred.withTransientBytes(body)
    }

    /// Element `index` of type `T`, read without any alignment assumption.
    public func load<T: BitwiseCopyable>(elementAt index: Int, as type: T.Type) -> T {
        precondition(index >= 0 && (index + 1) * MemoryLayout<T>.size <= count, "element \(index) out of range")
        return baseAddress!.loadUnaligned(fromByteOffset: index * MemoryLayout<T>.size, as: T.self)
    }

    /// The first `count` elements of type `T`, each transformed: one pass over the bytes.
    @inlinable
    public func mapElements<T: BitwiseCopyable, Result>(
        _ count: Int, as type: T.Type, _ transform: (T) throws -> Result
    ) rethrows -> [Result] {
        precondition(count >= 0 && count * MemoryLayout<T>.size <= self.count, "\(count) elements out of range")
        guard count > 0 else { return [] }
        return try withUnsafeBytes { raw in
            try [Result](unsafeUninitializedCapacity: count) { buffer, initialized in
                // The count is written once, at the end or when `transform` throws: a store per
                // element through `initialized` keeps the loop from being vectorized.
                var index = 0
                defer { initialized = index }
                let source = raw.baseAddress!
                let destination = buffer.baseAddress!
                while index < count {
                    (destination + index).initialize(to: try transform(source.loadUnaligned(fromByteOffset: index &* MemoryLayout<T>.size, as: T.self)))
                    index &+= 1
                }
            }
        }
    }

    /// A copy of the bytes as an array.
    public var array: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Tells the memory's owner that these bytes will not be read again soon: pages of a mapped
    /// file leave the process's resident memory (they are read again from the file if needed),
    /// with those of the 2 MiB blocks around them that reading them may have mapped too. Other
    /// memory is left alone.
    public func releaseResidentPages() {
        guard deferred == nil, let residentBase, let owner = owner as? MappedFileStorage else { return }
        owner.releaseResidentPages(residentBase, count: count)
    }

    /// How the file these bytes are mapped from changed since it was mapped (its size,
    /// modification or change time), or nil: unchanged, or not bytes of a file. Bytes read again later
    /// (a deferred tensor's computation at the save) are read only from an unchanged file: a
    /// shorter one would fault, another one would give other bytes than the rewrite checked.
    public var sourceChange: String? {
        guard deferred == nil, count > 0, let owner = owner as? MappedFileStorage else { return nil }
        return owner.changeSinceMapped()
    }

    /// Byte-wise equality.
    public static func == (lhs: TensorBytes, rhs: TensorBytes) -> Bool {
        guard lhs.count == rhs.count else { return false }
        if lhs.count == 0 || (lhs.deferred != nil && lhs.deferred === rhs.deferred) { return true }
        if lhs.deferred == nil, rhs.deferred == nil, lhs.residentBase == rhs.residentBase { return true }
        // Deferred bytes are compared without being kept; one that cannot be made is unequal.
        return (try? lhs.withTransientBytes { left in
            try rhs.withTransientBytes { right in memcmp(left.baseAddress!, right.baseAddress!, lhs.count) == 0 }
        }) ?? false
    }

    /// `N bytes`.
    public var description: String { deferred == nil ? "\(count) bytes" : "\(count) bytes, computed when read" }
}

/// An owner of memory mapped from a file: it can drop pages from the process's resident set
/// and tell whether the file changed under the mapping. A class to subclass rather than a
/// protocol: bytes tell such an owner from others with a class cast, a few instructions, where a
/// protocol conformance check took hundreds, for every constant a rule or a hash reads.
open class MappedFileStorage {
    /// Storage with nothing mapped yet.
    public init() {}
    /// Drops the pages of `count` bytes at `address` from resident memory (with the blocks around
    /// them that a read may have mapped: `MappedFile` drops the 2 MiB blocks that hold them).
    open func releaseResidentPages(_ address: UnsafeRawPointer, count: Int) {}
    /// What changed in the file since it was mapped (its size, modification or change time), or nil.
    open func changeSinceMapped() -> String? { nil }
}

/// Bytes that a computation makes when they are read: a folded weight is computed when the
/// model is written, one tensor at a time, instead of living in memory from the rewrite to the
/// save. `resident()` computes and keeps them (for readers that need an address);
/// `withTransientBytes` computes them for one use when they are not kept.
public final class DeferredBytes: @unchecked Sendable {
    /// The number of bytes.
    public let count: Int
    /// Samples of the bytes, made with their first computation, so that a reader can tell
    /// tensors apart without computing them: all the bytes when there are at most
    /// `3 * sampleLength`, else the first, middle (from `(count - sampleLength) / 2`) and last
    /// `sampleLength`, one after the other.
    public let samples: [UInt8]
    /// The length of each sample.
    public static let sampleLength = 64
    /// How many deferred computations making these bytes runs, itself included: one that reads
    /// other deferred bytes (not kept) is one deeper than the deepest of them.
    public let depth: Int
    /// Makes the bytes in order and passes them to its argument a piece at a time, `count` in
    /// all; deterministic, so every call gives the same bytes.
    private let produce: @Sendable (Emit) throws -> Void
    private let lock = Lock()
    private var kept: HeapBlock?

    /// Receives bytes being made, a piece at a time, in order; a piece is valid during the call.
    public typealias Emit = (UnsafeRawBufferPointer) throws -> Void

    /// Bytes that `produce` makes into a buffer of `count` bytes; `samples` and `depth` as
    /// described there.
    public convenience init(count: Int, samples: [UInt8], depth: Int = 1, produce: @escaping @Sendable (UnsafeMutableRawBufferPointer) throws -> Void) {
        self.init(count: count, samples: samples, depth: depth, producingInPieces: { emit in
            let block = HeapBlock(count: count)
            try produce(UnsafeMutableRawBufferPointer(start: block.pointer, count: count))
            try emit(UnsafeRawBufferPointer(start: block.pointer, count: count))
        })
    }

    /// Bytes that `produce` makes in order and passes to its argument a piece at a time (the
    /// saver writes each piece while the next is made, and never holds them all); `samples` and
    /// `depth` as described there.
    public init(count: Int, samples: [UInt8], depth: Int = 1, producingInPieces produce: @escaping @Sendable (Emit) throws -> Void) {
        precondition(samples.count == Swift.min(count, 3 * DeferredBytes.sampleLength), "\(samples.count) bytes of samples for \(count) bytes")
        self.count = count
        self.samples = samples
        self.depth = depth
        self.produce = produce
    }

    /// The byte ranges `samples` holds, in order, for bytes of `count`.
    public static func sampleRanges(count: Int) -> [Range<Int>] {
        let length = sampleLength
        guard count > 3 * length else { return [0..<count] }
        let middle = (count - length) / 2
        return [0..<length, middle..<(middle + length), (count - length)..<count]
    }

    /// Whether the bytes have been computed and kept.
    public var isResident: Bool { lock.withLock { kept != nil } }

    /// The bytes, computed and kept on first use. A computation that fails here (it did not
    /// when the rewrite checked it) is a broken invariant.
    public func resident() -> HeapBlock {
        lock.withLock {
            if let kept { return kept }
            let block = HeapBlock(count: count)
            do {
                try fill(block)
            } catch {
                fatalError("onnx-fuse: a computed tensor failed when read again: \(error)")
            }
            kept = block
            return block
        }
    }

    /// Passes the bytes to `emit` in order, a piece at a time: the kept ones at once, else as
    /// they are made (then a computation that makes more or fewer than `count` bytes throws).
    public func forEachPiece(_ emit: Emit) throws {
        if let block = lock.withLock({ kept }) {
            if count > 0 { try emit(UnsafeRawBufferPointer(start: block.pointer, count: count)) }
            return
        }
        try forEachPieceMade(emit)
    }

    /// Calls `body` with the bytes: the kept ones, or ones computed for this call and freed after.
    public func withTransientBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        if let block = lock.withLock({ kept }) {
            return try body(UnsafeRawBufferPointer(start: block.pointer, count: count))
        }
        let block = HeapBlock(count: count)
        try fill(block)
        return try body(UnsafeRawBufferPointer(start: block.pointer, count: count))
    }

    /// Computes the bytes into `block` (of `count` bytes).
    private func fill(_ block: HeapBlock) throws {
        var filled = 0
        try forEachPieceMade { piece in
            (block.pointer! + filled).copyMemory(from: piece.baseAddress!, byteCount: piece.count)
            filled += piece.count
        }
    }

    /// `forEachPiece` for bytes not kept.
    private func forEachPieceMade(_ emit: Emit) throws {
        var made = 0
        try produce { piece in
            guard piece.count <= count - made else { throw MiscountedBytes(expected: count, made: made + piece.count, stopped: true) }
            made += piece.count
            if !piece.isEmpty { try emit(piece) }
        }
        guard made == count else { throw MiscountedBytes(expected: count, made: made, stopped: false) }
    }

    /// A computation made more or fewer bytes than it was to.
    struct MiscountedBytes: Error, CustomStringConvertible {
        let expected: Int
        let made: Int
        /// Stopped where it went past `expected`.
        let stopped: Bool
        var description: String { "a computation made \(made)\(stopped ? " or more" : "") bytes where \(expected) were expected" }
    }
}

/// A mutual-exclusion lock (pthread's), for the little shared state of immutable values.
package final class Lock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    package init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    package func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

/// A heap allocation freed when the last reference goes.
public final class HeapBlock {
    /// The memory; nil for an empty block.
    public let pointer: UnsafeMutableRawPointer?
    /// Its size in bytes.
    public let count: Int

    /// Allocates `count` bytes, 64-byte aligned.
    public init(count: Int) {
        self.count = count
        pointer = count == 0 ? nil : UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 64)
    }

    deinit { pointer?.deallocate() }
}
