internal import CONNX
import ONNXFuseIR

/// Where the payloads of external tensors go in the output's data file.
///
/// When the tensors are still laid out as in their source data file (one file, in the same
/// order, with nothing but small gaps between them), the layout is kept: same offsets, gap
/// bytes copied from the source, entries as they were but for the location. A model loaded
/// and saved unchanged then comes back byte-identical even with external data (PyTorch's
/// exporter writes every model that way). Otherwise the payloads are packed in encoding order
/// at aligned offsets: 4096 bytes for payloads of 64 KiB or more, 64 bytes for the others.
struct ExternalLayout {
    /// Bytes written at `offset` of the data file: a payload, or a gap copied from the source.
    struct Segment {
        let bytes: TensorBytes
        let offset: Int
    }

    /// What the data file holds, in increasing offset order.
    private(set) var segments: [Segment] = []
    /// The `external_data` entries of each tensor, in the order of `Encoder.externalTensors`.
    private(set) var entries: [[StringPair]] = []

    /// The entries with the data file named `dataName` (the layout does not depend on it).
    func entries(dataName: String) -> [[StringPair]] {
        entries.map { pairs in pairs.map { $0.key == "location" ? StringPair(key: "location", value: dataName) : $0 } }
    }

    /// A gap above this many bytes means the source held something else there (a tensor that
    /// is gone): the payloads are packed anew rather than carrying the gap along.
    static let largestKeptGap = 4096

    init(_ tensors: [Encoder.ExternalTensor], dataName: String) {
        if !keepSourceLayout(tensors, dataName: dataName) { pack(tensors, dataName: dataName) }
    }

    /// The data file `bytes` were read from: in place from its mapping, or copied from it at load.
    private static func sourceFile(of bytes: TensorBytes) -> MappedFile? {
        (bytes.owner as? MappedFile) ?? (bytes.owner as? ExternalCopy)?.file
    }

    /// Where `bytes` lie in `file`, or nil when they do not come from it.
    private static func offset(of bytes: TensorBytes, in file: MappedFile) -> Int? {
        if let copy = bytes.owner as? ExternalCopy { return copy.file === file ? copy.offset : nil }
        guard bytes.owner === file, let start = bytes.baseAddress, let base = file.base else { return nil }
        return start - base
    }

    /// Keeps the source file's layout if the tensors still form it; false when they do not.
    private mutating func keepSourceLayout(_ tensors: [Encoder.ExternalTensor], dataName: String) -> Bool {
        guard let file = tensors.first.flatMap({ Self.sourceFile(of: $0.bytes) }), let base = file.base else { return false }
        var end = 0
        var planned: [(Segment?, Segment, [StringPair])] = []
        for tensor in tensors {
            guard tensor.bytes.count > 0, let offset = Self.offset(of: tensor.bytes, in: file) else { return false }
            guard offset >= end, offset - end <= Self.largestKeptGap, tensor.oldEntries.contains(where: { $0.key == "location" }) else {
                return false
            }
            // The entries must say where the bytes are, as they do in the source.
            let stated = tensor.oldEntries.first { $0.key == "offset" }?.value.flatMap { Int($0) } ?? 0
            let length = tensor.oldEntries.first { $0.key == "length" }?.value.flatMap { Int($0) }
            guard stated == offset, length == nil || length == tensor.bytes.count else { return false }
            let gap = offset > end ? Segment(bytes: TensorBytes(owner: file, baseAddress: base + end, count: offset - end), offset: end) : nil
            let entries = tensor.oldEntries.compactMap { pair -> StringPair? in
                switch pair.key {
                case "location": return StringPair(key: "location", value: dataName)
                case "checksum": return nil  // the new file may end differently
                default: return pair
                }
            }
            planned.append((gap, Segment(bytes: tensor.bytes, offset: offset), entries))
            end = offset + tensor.bytes.count
        }
        for (gap, payload, entries) in planned {
            if let gap { segments.append(gap) }
            segments.append(payload)
            self.entries.append(entries)
        }
        return true
    }

    /// Packs the payloads in encoding order at aligned offsets.
    private mutating func pack(_ tensors: [Encoder.ExternalTensor], dataName: String) {
        var offset = 0
        for tensor in tensors {
            let alignment = tensor.bytes.count >= 1 << 16 ? 4096 : 64
            offset = (offset + alignment - 1) / alignment * alignment
            segments.append(Segment(bytes: tensor.bytes, offset: offset))
            // Keep the user's own keys; a checksum no longer describes the new file.
            entries.append([StringPair(key: "location", value: dataName), StringPair(key: "offset", value: String(offset)),
                            StringPair(key: "length", value: String(tensor.bytes.count))]
                + tensor.oldEntries.filter { !["location", "offset", "length", "checksum"].contains($0.key ?? "") })
            offset += tensor.bytes.count
        }
    }
}
