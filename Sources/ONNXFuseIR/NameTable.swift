#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The values of one graph scope by name, for the decoder and `Graph.verify`. An
/// open-addressing table with a cheap FNV-1a hash: value names are short, and a 60,000-node
/// graph looks up every input and defines every output, which made `Dictionary`'s SipHash
/// the decoder's largest cost.
///
/// A slot is 8 bytes (part of the hash and an index into `values`), so that a probe touches
/// one cache line; names are compared as UTF-8 bytes (the wire pass checked that strings are
/// valid UTF-8), which lets the decoder look up a name straight from the C string, without
/// making a `String` of it. The storage is raw memory owned by the table: no copy-on-write
/// check or array retain on the paths run for every value of a model.
package final class NameTable {
    private struct Slot {
        /// The high half of the name's hash, never 0 (0 marks an empty slot).
        var tag: UInt32
        /// Where the value is in `values`.
        var index: UInt32
    }

    @exclusivity(unchecked) private var slots: UnsafeMutablePointer<Slot>
    /// The values in insertion order, retained; room for half as many as there are slots.
    @exclusivity(unchecked) private var values: UnsafeMutablePointer<Unmanaged<Value>>
    @exclusivity(unchecked) private var mask: Int

    /// How many names the table holds.
    @exclusivity(unchecked) package private(set) var count = 0

    /// A table sized for `capacity` names (it grows past that).
    package init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = .allocate(capacity: size)
        slots.initialize(repeating: Slot(tag: 0, index: 0), count: size)
        values = .allocate(capacity: size / 2)
        mask = size - 1
    }

    deinit {
        for index in 0..<count { values[index].release() }
        slots.deallocate()
        values.deallocate()
    }

    private static let fnvOffset: UInt64 = 0xcbf2_9ce4_8422_2325
    private static let fnvPrime: UInt64 = 0x100_0000_01b3

    /// The FNV-1a hash of `bytes`.
    static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h = fnvOffset
        for byte in bytes { h = (h ^ UInt64(byte)) &* fnvPrime }
        return h
    }

    /// The value named by the bytes, or nil.
    package func value(named bytes: UnsafeRawBufferPointer) -> Value? {
        let index = slot(bytes, Self.hash(bytes))
        return slots[index].tag == 0 ? nil : values[Int(slots[index].index)].takeUnretainedValue()
    }

    /// The value named `name`, or nil.
    package subscript(name: String) -> Value? {
        var name = name
        return name.withUTF8 { value(named: UnsafeRawBufferPointer($0)) }
    }

    /// Inserts `value` under its name unless the name is taken; returns the value already there.
    package func insert(_ value: Value) -> Value? {
        if (count + 1) * 2 > mask + 1 { grow() }
        var name = value.name
        return name.withUTF8 { utf8 in
            let bytes = UnsafeRawBufferPointer(utf8)
            let h = Self.hash(bytes)
            let index = slot(bytes, h)
            if slots[index].tag != 0 { return values[Int(slots[index].index)].takeUnretainedValue() }
            slots[index] = Slot(tag: Self.tag(h), index: UInt32(count))
            values[count] = Unmanaged.passRetained(value)
            count += 1
            return nil
        }
    }

    private static func tag(_ hash: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: hash >> 32) | 1 }

    /// The slot holding the name `bytes`, or the empty slot where it would go.
    private func slot(_ bytes: UnsafeRawBufferPointer, _ hash: UInt64) -> Int {
        let tag = Self.tag(hash)
        var index = Int(truncatingIfNeeded: hash ^ (hash >> 29)) & mask
        while slots[index].tag != 0 {
            if slots[index].tag == tag && Self.name(of: values[Int(slots[index].index)].takeUnretainedValue(), equals: bytes) { break }
            index = (index + 1) & mask
        }
        return index
    }

    private static func name(of value: Value, equals bytes: UnsafeRawBufferPointer) -> Bool {
        var name = value.name
        return name.withUTF8 { utf8 in
            utf8.count == bytes.count && (bytes.isEmpty || memcmp(utf8.baseAddress!, bytes.baseAddress!, bytes.count) == 0)
        }
    }

    private func grow() {
        let oldSlots = slots, oldValues = values, oldCount = count
        let size = (mask + 1) * 2
        slots = .allocate(capacity: size)
        slots.initialize(repeating: Slot(tag: 0, index: 0), count: size)
        values = .allocate(capacity: size / 2)
        mask = size - 1
        count = 0
        for index in 0..<oldCount { _ = insert(oldValues[index].takeUnretainedValue()) }
        // The new table retained each value again.
        for index in 0..<oldCount { oldValues[index].release() }
        oldSlots.deallocate()
        oldValues.deallocate()
    }
}
