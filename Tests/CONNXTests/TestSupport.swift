// Helpers shared by the CONNX tests: a protobuf wire writer for hand-made inputs, owned input
// buffers (lifted raw_data points into them), loading, packing and a descriptor-driven walk.
import CONNX
import XCTest

// MARK: - Field numbers (proto/onnx.proto)

enum F {
    enum Model {
        static let irVersion: UInt64 = 1, producerName: UInt64 = 2, graph: UInt64 = 7
        static let opsetImport: UInt64 = 8, trainingInfo: UInt64 = 20, functions: UInt64 = 25
    }
    enum Graph {
        static let node: UInt64 = 1, name: UInt64 = 2, initializer: UInt64 = 5
        static let input: UInt64 = 11, output: UInt64 = 12, sparseInitializer: UInt64 = 15
    }
    enum Node {
        static let input: UInt64 = 1, output: UInt64 = 2, name: UInt64 = 3, opType: UInt64 = 4
        static let attribute: UInt64 = 5
    }
    enum Attribute {
        static let name: UInt64 = 1, f: UInt64 = 2, i: UInt64 = 3, s: UInt64 = 4, t: UInt64 = 5
        static let g: UInt64 = 6, ints: UInt64 = 8, tensors: UInt64 = 10, type: UInt64 = 20
        static let sparseTensor: UInt64 = 22
    }
    enum Tensor {
        static let dims: UInt64 = 1, dataType: UInt64 = 2, floatData: UInt64 = 4
        static let int64Data: UInt64 = 7, name: UInt64 = 8, rawData: UInt64 = 9
    }
    enum Sparse { static let values: UInt64 = 1, indices: UInt64 = 2, dims: UInt64 = 3 }
    enum ValueInfo { static let name: UInt64 = 1, type: UInt64 = 2 }
    enum TypeP { static let tensorType: UInt64 = 1, sequenceType: UInt64 = 4 }
    enum TypeTensor { static let elemType: UInt64 = 1, shape: UInt64 = 2 }
    enum Shape { static let dim: UInt64 = 1 }
    enum Dim { static let dimValue: UInt64 = 1, dimParam: UInt64 = 2 }
    enum Sequence { static let elemType: UInt64 = 1 }
    enum Training { static let initialization: UInt64 = 1, algorithm: UInt64 = 2 }
    enum Function { static let name: UInt64 = 1, node: UInt64 = 7 }
    enum Opset { static let domain: UInt64 = 1, version: UInt64 = 2 }
}

/// The reserved field number of the lift marker (see onnx_fuse_shim.c).
let markerField: UInt32 = 536_870_911

// MARK: - Wire writer

/// Writes protobuf wire format by hand, so that tests control every byte.
struct Wire {
    var bytes: [UInt8] = []

    init() {}
    init(_ build: (inout Wire) -> Void) { build(&self) }

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }
    mutating func key(_ field: UInt64, _ wireType: UInt64) { varint(field << 3 | wireType) }
    mutating func varintField(_ field: UInt64, _ value: UInt64) { key(field, 0); varint(value) }
    mutating func fixed32Field(_ field: UInt64, _ value: UInt32) {
        key(field, 5)
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }
    mutating func fixed64Field(_ field: UInt64, _ value: UInt64) {
        key(field, 1)
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }
    mutating func bytesField(_ field: UInt64, _ payload: [UInt8]) {
        key(field, 2)
        varint(UInt64(payload.count))
        bytes += payload
    }
    mutating func stringField(_ field: UInt64, _ s: String) { bytesField(field, Array(s.utf8)) }
    mutating func messageField(_ field: UInt64, _ build: (inout Wire) -> Void) {
        bytesField(field, Wire(build).bytes)
    }
    mutating func raw(_ more: [UInt8]) { bytes += more }
}

/// `n` bytes that differ from payload to payload.
func payload(_ n: Int, seed: UInt8) -> [UInt8] {
    (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed) &* 7 &+ 1) }
}

/// A message nested through `fields` (outermost first), with lengths computed inside out
/// so that building 10,000 levels stays linear.
func nested(_ fields: [UInt64], innermost: [UInt8] = []) -> [UInt8] {
    func varintSize(_ v: UInt64) -> Int { var v = v, n = 1; while v >= 0x80 { v >>= 7; n += 1 }; return n }
    var contentSizes = [Int](repeating: 0, count: fields.count)
    var size = innermost.count
    for k in stride(from: fields.count - 1, through: 0, by: -1) {
        contentSizes[k] = size
        size = varintSize(fields[k] << 3 | 2) + varintSize(UInt64(size)) + size
    }
    var w = Wire()
    w.bytes.reserveCapacity(size)
    for k in 0..<fields.count {
        w.key(fields[k], 2)
        w.varint(UInt64(contentSizes[k]))
    }
    w.raw(innermost)
    return w.bytes
}

// MARK: - Descriptors

/// The address of a generated descriptor, taken from an initialized message (Swift cannot
/// take the address of an imported `const` global).
func modelDescriptor() -> UnsafePointer<ProtobufCMessageDescriptor> {
    var m = Onnx__ModelProto()
    onnx__model_proto__init(&m)
    return m.base.descriptor
}

func tensorDescriptor() -> UnsafePointer<ProtobufCMessageDescriptor> {
    var t = Onnx__TensorProto()
    onnx__tensor_proto__init(&t)
    return t.base.descriptor
}

// MARK: - Input, loading and packing

/// Input bytes at a stable address that outlives the loaded tree.
final class Input {
    let pointer: UnsafeMutablePointer<UInt8>
    let count: Int

    init(_ bytes: [UInt8]) {
        count = bytes.count
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(from: bytes, count: count)
    }
    deinit { pointer.deallocate() }

    func contains(_ p: UnsafeRawPointer, length: Int) -> Bool {
        let start = UnsafeRawPointer(pointer)
        return p >= start && length <= count && p <= start + (count - length)
    }
}

/// The outcome of onnx_fuse_load; destroys the arena when released.
///
/// Unless `checkFile` is false, every load also writes the bytes to a temporary file and
/// checks that onnx_fuse_load_fd on it gives the same outcome (assertSameLoad), so that
/// every input of these tests covers both entry points.
/// What a load gives back, for the assertions.
protocol LoadOutcome: AnyObject {
    var status: onnx_fuse_status { get }
    var loaded: onnx_fuse_loaded { get }
    var error: onnx_fuse_error { get }
}

extension LoadOutcome {
    var model: UnsafeMutablePointer<Onnx__ModelProto> { loaded.model }
    var message: UnsafeMutablePointer<ProtobufCMessage> {
        UnsafeMutableRawPointer(loaded.model).assumingMemoryBound(to: ProtobufCMessage.self)
    }
    var path: String { cString(error.path) }
    var errorMessage: String { cString(error.message) }
    var summary: String { "status \(status.rawValue) at \(error.offset) \(path): \(errorMessage)" }
}

final class Load: LoadOutcome {
    let input: Input
    let liftMin: Int
    let status: onnx_fuse_status
    var loaded = onnx_fuse_loaded()
    var error = onnx_fuse_error()

    /// `liftMin` 0 lifts every non-empty raw_data (most tests look at lifting with tiny payloads).
    init(_ bytes: [UInt8], maxDepth: Int = 100, budget: Int = .max, liftMin: Int = 0, checkFile: Bool = true,
         file: StaticString = #filePath, line: UInt = #line) {
        input = Input(bytes)
        self.liftMin = liftMin
        var limits = onnx_fuse_load_limits(max_depth: maxDepth, unpack_budget: budget, unpack_budget_per_byte: 0, lift_min: liftMin)
        status = onnx_fuse_load(input.pointer, input.count, &limits, &loaded, &error)
        if checkFile {
            let fileLoad = FileLoad(bytes, maxDepth: maxDepth, budget: budget, liftMin: liftMin)
            assertSameLoad(self, fileLoad, "\(bytes.count)-byte input loaded from a file",
                           file: file, line: line)
        }
    }
    deinit { onnx_fuse_arena_destroy(loaded.arena) }

}

/// A NUL-terminated C char array imported as a tuple.
func cString<T>(_ tuple: T) -> String {
    withUnsafeBytes(of: tuple) { raw in
        String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
    }
}

func asMessage(_ p: UnsafeMutableRawPointer) -> UnsafeMutablePointer<ProtobufCMessage> {
    p.assumingMemoryBound(to: ProtobufCMessage.self)
}

func pack(_ message: UnsafeMutablePointer<ProtobufCMessage>) -> [UInt8] {
    let size = onnx_fuse_packed_size(message)
    var out = [UInt8](repeating: 0, count: size)
    let written = out.withUnsafeMutableBufferPointer { protobuf_c_message_pack(message, $0.baseAddress) }
    precondition(written == size)
    return out
}

/// protobuf-c's own serialization of `bytes`, to compare round trips against.
func canonical(_ bytes: [UInt8]) -> [UInt8] {
    let arena = onnx_fuse_arena_create(Int.max)!
    defer { onnx_fuse_arena_destroy(arena) }
    let message = bytes.withUnsafeBufferPointer {
        onnx_fuse_unpack_trusted(modelDescriptor(), $0.baseAddress, $0.count, arena)
    }
    precondition(message != nil, "protobuf-c rejected a test model")
    return pack(message!)
}

// MARK: - Tree walk

/// Every message of a tree, found through the descriptors without recursion.
func allMessages(_ root: UnsafeMutablePointer<ProtobufCMessage>) -> [UnsafeMutablePointer<ProtobufCMessage>] {
    var result: [UnsafeMutablePointer<ProtobufCMessage>] = []
    var stack = [root]
    while let message = stack.popLast() {
        result.append(message)
        let desc = message.pointee.descriptor!
        let base = UnsafeMutableRawPointer(message)
        for i in 0..<Int(desc.pointee.n_fields) {
            let field = desc.pointee.fields[i]
            guard field.type == PROTOBUF_C_TYPE_MESSAGE else { continue }
            if field.flags & PROTOBUF_C_FIELD_FLAG_ONEOF.rawValue != 0,
               base.load(fromByteOffset: Int(field.quantifier_offset), as: UInt32.self) != field.id {
                continue
            }
            if field.label == PROTOBUF_C_LABEL_REPEATED {
                let n = base.load(fromByteOffset: Int(field.quantifier_offset), as: Int.self)
                guard n > 0, let items = base.load(
                    fromByteOffset: Int(field.offset),
                    as: UnsafeMutablePointer<UnsafeMutablePointer<ProtobufCMessage>?>?.self)
                else { continue }
                for k in 0..<n { if let item = items[k] { stack.append(item) } }
            } else if let child = base.load(
                fromByteOffset: Int(field.offset), as: UnsafeMutablePointer<ProtobufCMessage>?.self) {
                stack.append(child)
            }
        }
    }
    return result
}

func allTensors(_ root: UnsafeMutablePointer<ProtobufCMessage>) -> [UnsafeMutablePointer<Onnx__TensorProto>] {
    let tensor = tensorDescriptor()
    return allMessages(root).filter { $0.pointee.descriptor == tensor }.map {
        UnsafeMutableRawPointer($0).assumingMemoryBound(to: Onnx__TensorProto.self)
    }
}

func tensorName(_ t: UnsafeMutablePointer<Onnx__TensorProto>) -> String {
    t.pointee.name.map { String(cString: $0) } ?? ""
}

func rawData(_ t: UnsafeMutablePointer<Onnx__TensorProto>) -> [UInt8] {
    let bd = t.pointee.raw_data
    guard bd.len > 0, let data = bd.data else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: bd.len))
}

/// The load contract: no marker left in any tensor, every non-empty raw_data inside the input.
func checkInvariants(_ load: Load, _ context: @autoclosure () -> String = "",
                     file: StaticString = #filePath, line: UInt = #line) {
    for t in allTensors(load.message) {
        let base = t.pointee.base
        for i in 0..<Int(base.n_unknown_fields) where base.unknown_fields[i].tag == markerField {
            XCTFail("marker left in tensor \(tensorName(t)) \(context())", file: file, line: line)
        }
        let bd = t.pointee.raw_data
        if bd.len > 0 {
            XCTAssertEqual(t.pointee.has_raw_data, 1, context(), file: file, line: line)
            // Lifted payloads point into the input; smaller ones were copied.
            XCTAssertEqual(load.input.contains(UnsafeRawPointer(bd.data!), length: bd.len), bd.len >= load.liftMin,
                           "raw_data of \(bd.len) bytes \(bd.len >= load.liftMin ? "outside" : "inside") the input \(context())",
                           file: file, line: line)
        }
    }
}
