import ONNXFuseIR

/// The values of one graph scope by name, for the decoder. An open-addressing table with a
/// cheap FNV-1a hash: value names are short, and a 60,000-node graph looks up every input
/// and defines every output, which made `Dictionary`'s SipHash the decoder's largest cost.
struct NameTable {
    private var hashes: [UInt64]
    private var names: [String]
    private var values: [Value?]
    private var mask: Int
    private(set) var count = 0

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        hashes = [UInt64](repeating: 0, count: size)
        names = [String](repeating: "", count: size)
        values = [Value?](repeating: nil, count: size)
        mask = size - 1
    }

    static func hash(_ name: String) -> UInt64 {
        var name = name
        return name.withUTF8 { bytes in
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in bytes { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
            return h | 1  // never 0, which marks an empty slot
        }
    }

    /// The slot holding `name`, or the empty slot where it would go.
    private func slot(_ name: String, _ hash: UInt64) -> Int {
        var index = Int(truncatingIfNeeded: hash ^ (hash >> 29)) & mask
        while hashes[index] != 0 && (hashes[index] != hash || names[index] != name) {
            index = (index + 1) & mask
        }
        return index
    }

    subscript(name: String) -> Value? {
        let h = Self.hash(name)
        return values[slot(name, h)]
    }

    /// Inserts `value` under its name unless the name is taken; returns the value already there.
    mutating func insert(_ value: Value) -> Value? {
        if (count + 1) * 2 > hashes.count { grow() }
        let h = Self.hash(value.name)
        let index = slot(value.name, h)
        if let existing = values[index] { return existing }
        hashes[index] = h
        names[index] = value.name
        values[index] = value
        count += 1
        return nil
    }

    private mutating func grow() {
        let old = values.compactMap { $0 }
        self = NameTable(capacity: hashes.count)
        for value in old { _ = insert(value) }
    }
}
