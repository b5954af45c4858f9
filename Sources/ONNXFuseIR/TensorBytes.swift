#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Immutable bytes of a tensor payload that live somewhere else: a mapped model file, an
/// external data file, or a heap block owned by this value. Nothing is copied when a model
/// is loaded; `owner` keeps the memory alive.
///
/// The bytes are often misaligned (an offset inside a mapped file), so elements are read
/// with unaligned loads only.
public struct TensorBytes: @unchecked Sendable, Equatable, CustomStringConvertible {
    /// Keeps the memory alive: a mapping, an arena, or a `HeapBlock`.
    public let owner: AnyObject?
    /// The first byte; nil when `count` is 0.
    public let baseAddress: UnsafeRawPointer?
    /// The number of bytes.
    public let count: Int

    /// Bytes at `baseAddress` that `owner` keeps alive (no copy).
    public init(owner: AnyObject?, baseAddress: UnsafeRawPointer?, count: Int) {
        precondition(count >= 0 && (count == 0 || baseAddress != nil))
        self.owner = owner
        self.baseAddress = count == 0 ? nil : baseAddress
        self.count = count
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

    /// Calls `body` with the bytes.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: baseAddress, count: count))
    }

    /// Element `index` of type `T`, read without any alignment assumption.
    public func load<T: BitwiseCopyable>(elementAt index: Int, as type: T.Type) -> T {
        precondition(index >= 0 && (index + 1) * MemoryLayout<T>.size <= count, "element \(index) out of range")
        return baseAddress!.loadUnaligned(fromByteOffset: index * MemoryLayout<T>.size, as: T.self)
    }

    /// A copy of the bytes as an array.
    public var array: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Byte-wise equality.
    public static func == (lhs: TensorBytes, rhs: TensorBytes) -> Bool {
        guard lhs.count == rhs.count else { return false }
        if lhs.count == 0 || lhs.baseAddress == rhs.baseAddress { return true }
        return memcmp(lhs.baseAddress!, rhs.baseAddress!, lhs.count) == 0
    }

    /// `N bytes`.
    public var description: String { "\(count) bytes" }
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
