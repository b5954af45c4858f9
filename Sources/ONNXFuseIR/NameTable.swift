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
/// check or array retain on the paths run for every value of a model. Each name is kept beside
/// its value, as it was at insertion: a table serves one pass (a load, a `verify`) in which
/// no value is renamed, and a probe then neither retains a value nor reads its `name`
/// through the runtime's access check.
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
    /// The name of each value in `values`, at the same index.
    @exclusivity(unchecked) private var names: UnsafeMutablePointer<String>
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
        names = .allocate(capacity: size / 2)
        mask = size - 1
    }

    deinit {
        for index in 0..<count { values[index].release() }
        names.deinitialize(count: count)
        slots.deallocate()
        values.deallocate()
        names.deallocate()
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
        let name = value.name
        var bytes = name
        let (existing, place) = bytes.withUTF8 { find(UnsafeRawBufferPointer($0)) }
        if existing == nil { insert(value, named: name, at: place) }
        return existing
    }

    /// Where a name goes in the table, as `find` saw it.
    package struct Place {
        fileprivate let index: Int
        fileprivate let tag: UInt32
    }

    /// The value named by the bytes, or nil and the place where `insert(_:at:)` puts a value
    /// of that name: one hash and one probe for a name that is looked up and then defined
    /// (the loader's initializers). Room for one more name is made first; insert nothing else
    /// before using the place.
    package func find(_ bytes: UnsafeRawBufferPointer) -> (value: Value?, place: Place) {
        if (count + 1) * 2 > mask + 1 { grow() }
        let h = Self.hash(bytes)
        let index = slot(bytes, h)
        let value = slots[index].tag == 0 ? nil : values[Int(slots[index].index)].takeUnretainedValue()
        return (value, Place(index: index, tag: Self.tag(h)))
    }

    /// Inserts `value`, whose name `find` was given, at the place it returned (nil there).
    package func insert(_ value: Value, at place: Place) {
        insert(value, named: value.name, at: place)
    }

    private func insert(_ value: Value, named name: String, at place: Place) {
        precondition(slots[place.index].tag == 0, "the place is taken")
        slots[place.index] = Slot(tag: place.tag, index: UInt32(count))
        values[count] = Unmanaged.passRetained(value)
        (names + count).initialize(to: name)
        count += 1
    }

    private static func tag(_ hash: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: hash >> 32) | 1 }

    /// Where the probe sequence of `hash` starts, before masking.
    private static func start(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: hash ^ (hash >> 29)) }

    /// The slot holding the name `bytes`, or the empty slot where it would go.
    private func slot(_ bytes: UnsafeRawBufferPointer, _ hash: UInt64) -> Int {
        let tag = Self.tag(hash)
        var index = Self.start(hash) & mask
        while slots[index].tag != 0 {
            if slots[index].tag == tag && Self.name(names + Int(slots[index].index), equals: bytes) { break }
            index = (index + 1) & mask
        }
        return index
    }

    private static func name(_ name: UnsafeMutablePointer<String>, equals bytes: UnsafeRawBufferPointer) -> Bool {
        // In place: the names are native strings, whose bytes `withUTF8` reads without a copy.
        name.pointee.withUTF8 { utf8 in
            utf8.count == bytes.count && (bytes.isEmpty || memcmp(utf8.baseAddress!, bytes.baseAddress!, bytes.count) == 0)
        }
    }

    /// Doubles the slots; values and names move over at the same indices, and each name,
    /// unique in the table, takes the first empty slot of its probe sequence.
    private func grow() {
        let oldValues = values, oldNames = names
        let size = (mask + 1) * 2
        slots.deallocate()
        slots = .allocate(capacity: size)
        slots.initialize(repeating: Slot(tag: 0, index: 0), count: size)
        values = .allocate(capacity: size / 2)
        values.moveInitialize(from: oldValues, count: count)
        names = .allocate(capacity: size / 2)
        names.moveInitialize(from: oldNames, count: count)
        oldValues.deallocate()
        oldNames.deallocate()
        mask = size - 1
        for index in 0..<count {
            let h = (names + index).pointee.withUTF8 { Self.hash(UnsafeRawBufferPointer($0)) }
            var slot = Self.start(h) & mask
            while slots[slot].tag != 0 { slot = (slot + 1) & mask }
            slots[slot] = Slot(tag: Self.tag(h), index: UInt32(index))
        }
    }
}
