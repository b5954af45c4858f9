/// An operator (an op type of a domain) as a small number, the same wherever the operator is
/// named in the process: on nodes, patterns and registries. Telling two operators apart is
/// then one integer comparison rather than two string comparisons, and a table indexed by it
/// replaces a dictionary that hashes strings at every node. The default domain is one domain
/// however it is written (nil, "" or "ai.onnx").
package struct OperatorID: Hashable, Sendable {
    // Inlinable: the engine and the registry compare and index with it at every node, and a
    // call into this module for each would cost what it saves.
    @usableFromInline let number: UInt32

    /// The operator `opType` of `domain`.
    package init(opType: String, domain: String?) {
        number = OperatorTable.shared.number(opType: opType, domain: domain)
    }

    /// Its number: operators are numbered from 0 in the order they are first named, so it
    /// indexes a table of operators directly.
    @inlinable package var index: Int { Int(number) }

    /// Whether both are the same operator.
    @inlinable package static func == (lhs: OperatorID, rhs: OperatorID) -> Bool { lhs.number == rhs.number }

    /// Hashes the number.
    @inlinable package func hash(into hasher: inout Hasher) { hasher.combine(number) }

    /// Whether `domain` is the default ONNX domain as nodes may spell it.
    package static func isDefaultDomain(_ domain: String?) -> Bool {
        domain == nil || domain == "" || domain == "ai.onnx"
    }
}

/// The numbers given so far, behind a lock: nodes may be made on several threads at once.
/// It only grows; a process names a few hundred operators at most. Every node made asks it
/// once (60,000 times to load a 60,000-node model), so it is an open-addressing table with
/// an FNV-1a hash of the names' bytes rather than a `Dictionary`, whose hashing of two
/// strings costs several times as much.
private final class OperatorTable: @unchecked Sendable {
    static let shared = OperatorTable()

    private struct Entry {
        let opType: String
        /// nil for the default domain.
        let domain: String?
    }

    private let lock = Lock()
    // Only read and written with the lock held.
    @exclusivity(unchecked) private var entries: [Entry] = []
    /// Numbers into `entries` plus one; 0 is an empty slot. Never more than half full.
    @exclusivity(unchecked) private var slots = [UInt32](repeating: 0, count: 256)

    func number(opType: String, domain: String?) -> UInt32 {
        let domain = OperatorID.isDefaultDomain(domain) ? nil : domain
        let hash = Self.hash(opType: opType, domain: domain)
        return lock.withLock {
            var slot = Self.start(hash, slotCount: slots.count)
            while slots[slot] != 0 {
                let number = slots[slot] - 1
                let entry = entries[Int(number)]
                if entry.opType == opType && entry.domain == domain { return number }
                slot = (slot + 1) & (slots.count - 1)
            }
            let number = UInt32(entries.count)
            entries.append(Entry(opType: opType, domain: domain))
            slots[slot] = number + 1
            if entries.count * 2 > slots.count { rehash() }
            return number
        }
    }

    /// FNV-1a of the op type's bytes, then, for a domain other than the default, of a
    /// separator no name holds (so that "a.b" + "c" and "a" + "b.c" differ) and the domain's.
    private static func hash(opType: String, domain: String?) -> UInt64 {
        let hash = fnv(opType, 0xcbf2_9ce4_8422_2325)
        guard let domain else { return hash }
        return fnv(domain, (hash ^ 0xff) &* 0x100_0000_01b3)
    }

    /// FNV-1a from `hash` over the bytes of `text`, read in place: the UTF-8 view's iterator
    /// costs several times as much.
    private static func fnv(_ text: String, _ hash: UInt64) -> UInt64 {
        var text = text
        return text.withUTF8 { bytes in
            var hash = hash
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            return hash
        }
    }

    /// The first slot to probe: Fibonacci hashing spreads FNV's weak low bits.
    private static func start(_ hash: UInt64, slotCount: Int) -> Int {
        Int(truncatingIfNeeded: (hash &* 0x9E37_79B9_7F4A_7C15) >> 32) & (slotCount - 1)
    }

    /// Doubles the slots, placing every entry again.
    private func rehash() {
        var grown = [UInt32](repeating: 0, count: slots.count * 2)
        for (number, entry) in entries.enumerated() {
            var slot = Self.start(Self.hash(opType: entry.opType, domain: entry.domain), slotCount: grown.count)
            while grown[slot] != 0 { slot = (slot + 1) & (grown.count - 1) }
            grown[slot] = UInt32(number) + 1
        }
        slots = grown
    }
}
