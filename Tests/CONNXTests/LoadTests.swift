// onnx_fuse_load on valid inputs: lifting, healing, round trips.
import CONNX
import XCTest

final class LoadTests: XCTestCase {
    /// Calls `check` with each tensor of `load` that `model` gives a payload, and that payload,
    /// after checking its raw_data holds it; fails unless every payload was met.
    private func forEachPayload(_ load: Load, of model: RichModel,
                                _ check: (UnsafeMutablePointer<Onnx__TensorProto>, String, [UInt8]) -> Void) {
        var seen = Set<String>()
        for t in allTensors(load.message) {
            let name = tensorName(t)
            guard let expected = model.payloads[name] else { continue }
            seen.insert(name)
            XCTAssertEqual(t.pointee.has_raw_data, 1, name)
            XCTAssertEqual(rawData(t), expected, name)
            check(t, name, expected)
        }
        XCTAssertEqual(seen, Set(model.payloads.keys))
    }

    func testLiftedRawDataPointsIntoTheInput() {
        let model = RichModel()
        let load = Load(model.bytes)
        XCTAssertEqual(load.status, ONNX_FUSE_OK, load.summary)
        XCTAssertEqual(load.loaded.lifted_count, model.payloads.count)
        XCTAssertEqual(load.loaded.lifted_bytes, model.liftedBytes)
        checkInvariants(load)

        forEachPayload(load, of: model) { t, name, expected in
            let p = UnsafeRawPointer(t.pointee.raw_data.data!)
            XCTAssertTrue(load.input.contains(p, length: expected.count), name)
            // Exactly where the payload sits in the input: no copy was made.
            let offset = p - UnsafeRawPointer(load.input.pointer)
            XCTAssertEqual(Array(model.bytes[offset..<offset + expected.count]), expected, name)
        }
    }

    /// With `lift_min` (the Swift loader passes ONNX_FUSE_LIFT_MIN), raw_data below it is
    /// copied into the tree and the rest lifted; the bytes are the same either way, from memory
    /// and from a file alike (`Load` compares the two).
    func testRawDataBelowLiftMinIsCopied() {
        let lift = Int(ONNX_FUSE_LIFT_MIN)
        var model = RichModel()
        model.payloads["w"] = payload(lift - 1, seed: 11)
        model.payloads["w2"] = payload(lift, seed: 12)
        model.payloads["attr_t"] = payload(lift + 5, seed: 13)
        let load = Load(model.bytes, liftMin: lift)
        XCTAssertEqual(load.status, ONNX_FUSE_OK, load.summary)
        XCTAssertEqual(load.loaded.lifted_count, 2)
        XCTAssertEqual(load.loaded.lifted_bytes, UInt64(2 * lift + 5))
        checkInvariants(load)
        forEachPayload(load, of: model) { t, name, expected in
            let inInput = load.input.contains(UnsafeRawPointer(t.pointee.raw_data.data!), length: expected.count)
            XCTAssertEqual(inInput, expected.count >= lift, name)
        }
        XCTAssertEqual(pack(load.message), canonical(model.bytes))
    }

    func testCountsMessages() {
        let bytes = Wire { m in
            m.messageField(F.Model.graph) { g in
                g.messageField(F.Graph.node) { _ in }
                g.messageField(F.Graph.node) { n in n.messageField(F.Node.attribute) { _ in } }
            }
            m.bytesField(77, nested([1, 1, 1])) // inside an unknown field: not counted
        }.bytes
        let load = Load(bytes)
        XCTAssertEqual(load.status, ONNX_FUSE_OK, load.summary)
        XCTAssertEqual(load.loaded.message_count, 5)
        XCTAssertEqual(allMessages(load.message).count, 5)
    }

    func testPackReproducesCanonicalInput() {
        let c = canonical(RichModel().bytes)
        let load = Load(c)
        XCTAssertEqual(load.status, ONNX_FUSE_OK, load.summary)
        XCTAssertEqual(onnx_fuse_packed_size(load.message), c.count)
        XCTAssertEqual(pack(load.message), c)
    }

    func testProtobufCBuiltModelRoundTrips() {
        // Built through protobuf-c's own structs rather than by hand.
        let raw: [UInt8] = payload(40, seed: 42)
        var tensor = Onnx__TensorProto()
        onnx__tensor_proto__init(&tensor)
        var dims: [Int64] = [10]
        var packedBytes: [UInt8] = []
        "weights".withCString { name in
            raw.withUnsafeBufferPointer { rawBuf in
                dims.withUnsafeMutableBufferPointer { dimsBuf in
                    tensor.name = UnsafeMutablePointer(mutating: name)
                    tensor.n_dims = 1
                    tensor.dims = dimsBuf.baseAddress
                    tensor.has_data_type = 1
                    tensor.data_type = 1
                    tensor.has_raw_data = 1
                    tensor.raw_data = ProtobufCBinaryData(len: rawBuf.count, data: UnsafeMutablePointer(mutating: rawBuf.baseAddress))
                    withUnsafeMutablePointer(to: &tensor) { tp in
                        var initializers: [UnsafeMutablePointer<Onnx__TensorProto>?] = [tp]
                        var graph = Onnx__GraphProto()
                        onnx__graph_proto__init(&graph)
                        initializers.withUnsafeMutableBufferPointer { ib in
                            graph.n_initializer = 1
                            graph.initializer = ib.baseAddress
                            withUnsafeMutablePointer(to: &graph) { gp in
                                var model = Onnx__ModelProto()
                                onnx__model_proto__init(&model)
                                model.has_ir_version = 1
                                model.ir_version = 9
                                model.graph = gp
                                let size = onnx__model_proto__get_packed_size(&model)
                                packedBytes = [UInt8](repeating: 0, count: size)
                                packedBytes.withUnsafeMutableBufferPointer { out in
                                    _ = onnx__model_proto__pack(&model, out.baseAddress)
                                }
                            }
                        }
                    }
                }
            }
        }
        let load = Load(packedBytes)
        XCTAssertEqual(load.status, ONNX_FUSE_OK, load.summary)
        XCTAssertEqual(load.loaded.lifted_count, 1)
        XCTAssertEqual(load.model.pointee.ir_version, 9)
        let t = load.model.pointee.graph.pointee.initializer[0]!
        XCTAssertEqual(tensorName(t), "weights")
        XCTAssertEqual(rawData(t), raw)
        XCTAssertEqual(pack(load.message), packedBytes)
    }

    func testUnknownFieldsSurvive() {
        let model = RichModel()
        let load = Load(model.bytes)
        XCTAssertEqual(load.status, ONNX_FUSE_OK, load.summary)
        let m = load.message.pointee
        XCTAssertEqual(m.n_unknown_fields, 4)
        let tags = (0..<Int(m.n_unknown_fields)).map { m.unknown_fields[$0].tag }
        XCTAssertEqual(tags, [5000, 5001, 5002, markerField])
        let node0 = load.model.pointee.graph.pointee.node[0]!.pointee.base
        XCTAssertEqual(node0.n_unknown_fields, 1)
        XCTAssertEqual(node0.unknown_fields[0].tag, 1000)
        let floats = allTensors(load.message).first { tensorName($0) == "floats" }!
        XCTAssertEqual(floats.pointee.base.n_unknown_fields, 1)
        XCTAssertEqual(floats.pointee.base.unknown_fields[0].tag, 999)
        XCTAssertEqual(floats.pointee.n_float_data, 2)
        XCTAssertEqual(floats.pointee.float_data[1], 2.0)
        // Unknown fields are written back after the known ones, byte for byte.
        XCTAssertEqual(pack(load.message), canonical(model.bytes))
    }

    func testEmptyInputIsAnEmptyModel() {
        let load = Load([])
        XCTAssertEqual(load.status, ONNX_FUSE_OK, load.summary)
        XCTAssertNotNil(load.loaded.model)
        XCTAssertNil(load.model.pointee.graph)
        XCTAssertEqual(load.loaded.message_count, 1)
        XCTAssertEqual(load.loaded.lifted_count, 0)
        XCTAssertEqual(onnx_fuse_packed_size(load.message), 0)

        var loaded = onnx_fuse_loaded()
        var error = onnx_fuse_error()
        XCTAssertEqual(onnx_fuse_load(nil, 0, nil, &loaded, &error), ONNX_FUSE_OK)
        onnx_fuse_arena_destroy(loaded.arena)
    }

    func testEmptyRawDataIsNotLifted() {
        let load = Load(modelWithTensor { t in t.bytesField(F.Tensor.rawData, []) })
        XCTAssertEqual(load.status, ONNX_FUSE_OK, load.summary)
        XCTAssertEqual(load.loaded.lifted_count, 0)
        let t = load.model.pointee.graph.pointee.initializer[1]!
        XCTAssertEqual(t.pointee.has_raw_data, 1)
        XCTAssertEqual(t.pointee.raw_data.len, 0)
    }

    func testNonMinimalVarintsAreAccepted() {
        // Keys and lengths padded with 0x80 continuation bytes, longer than protobuf-c
        // accepts (5 bytes); the compacted copy re-encodes them.
        var w = Wire()
        w.raw([0x8a | 0x30, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]) // key of field 7 (graph), 7 bytes
        var graph = Wire()
        graph.raw([0x92, 0x80, 0x80, 0x80, 0x80, 0x00])           // key of field 2 (name), 6 bytes
        graph.raw([0x84, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00])     // length 4 in 7 bytes
        graph.raw(Array("main".utf8))
        graph.messageField(F.Graph.initializer) { t in
            t.key(F.Tensor.rawData, 2)
            t.raw([0x83, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]) // length 3 in 10 bytes
            t.raw([9, 8, 7])
            t.key(F.Tensor.dataType, 0)
            t.raw([0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]) // 1 in 10 bytes
        }
        w.varint(UInt64(graph.bytes.count))
        w.raw(graph.bytes)
        let load = Load(w.bytes)
        XCTAssertEqual(load.status, ONNX_FUSE_OK, load.summary)
        let g = load.model.pointee.graph.pointee
        XCTAssertEqual(String(cString: g.name), "main")
        XCTAssertEqual(rawData(g.initializer[0]!), [9, 8, 7])
        XCTAssertEqual(g.initializer[0]!.pointee.data_type, 1)
    }

    func testProtobufCAcceptsPaddedFiveByteLengths() {
        // What the compacted buffer relies on: a sub-message length as a 5-byte varint.
        let bytes: [UInt8] = [0x3a, 0x88, 0x80, 0x80, 0x80, 0x00]   // graph, length 8 in 5 bytes
            + [0x12, 0x84, 0x80, 0x00] + Array("g!!!".utf8)            // name, length 4 in 3 bytes
        let arena = onnx_fuse_arena_create(Int.max)!
        defer { onnx_fuse_arena_destroy(arena) }
        let message = bytes.withUnsafeBufferPointer {
            onnx_fuse_unpack_trusted(modelDescriptor(), $0.baseAddress, $0.count, arena)
        }
        XCTAssertNotNil(message)
        let model = UnsafeMutableRawPointer(message!).assumingMemoryBound(to: Onnx__ModelProto.self)
        XCTAssertEqual(String(cString: model.pointee.graph.pointee.name), "g!!!")
    }

    func testPackedAndUnpackedRepeatedScalars() {
        let bytes = modelWithTensor { t in
            // dims (not declared packed) given packed; float_data (declared packed) unpacked.
            var dims = Wire()
            dims.varint(3); dims.varint(300)
            t.bytesField(F.Tensor.dims, dims.bytes)
            t.fixed32Field(F.Tensor.floatData, 0x3f80_0000)
            t.fixed32Field(F.Tensor.floatData, 0x4000_0000)
            var ints = Wire()
            ints.varint(1); ints.varint(UInt64(bitPattern: -5))
            t.bytesField(F.Tensor.int64Data, ints.bytes)
            t.varintField(F.Tensor.int64Data, 7)
        }
        let load = Load(bytes)
        XCTAssertEqual(load.status, ONNX_FUSE_OK, load.summary)
        let t = load.model.pointee.graph.pointee.initializer[1]!.pointee
        XCTAssertEqual(Array(UnsafeBufferPointer(start: t.dims, count: t.n_dims)), [3, 300])
        XCTAssertEqual(Array(UnsafeBufferPointer(start: t.float_data, count: t.n_float_data)), [1, 2])
        XCTAssertEqual(Array(UnsafeBufferPointer(start: t.int64_data, count: t.n_int64_data)), [1, -5, 7])
    }

    func testOneofsAreWalked() {
        let load = Load(RichModel().bytes)
        XCTAssertEqual(load.status, ONNX_FUSE_OK, load.summary)
        let output = load.model.pointee.graph.pointee.output[0]!.pointee
        XCTAssertEqual(output.type.pointee.value_case, ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE)
        let input = load.model.pointee.graph.pointee.input[0]!.pointee
        let shape = input.type.pointee.tensor_type.pointee.shape.pointee
        XCTAssertEqual(shape.n_dim, 2)
        XCTAssertEqual(shape.dim[0]!.pointee.dim_value, 2)
        XCTAssertEqual(String(cString: shape.dim[1]!.pointee.dim_param), "N")
    }

    func testUnicodeStringsAreAccepted() {
        let valid: [[UInt8]] = [
            Array("é€𝄞".utf8),
            [0xf4, 0x8f, 0xbf, 0xbf],   // U+10FFFF
            [0xef, 0xbf, 0xbf],         // U+FFFF
            [0xed, 0x9f, 0xbf],         // U+D7FF, just below the surrogates
            [0xee, 0x80, 0x80],         // U+E000, just above
            [0xc2, 0x80],               // U+0080
            [0xe0, 0xa0, 0x80],         // U+0800
            [0xf0, 0x90, 0x80, 0x80],   // U+10000
        ]
        for s in valid {
            let load = Load(Wire { $0.bytesField(F.Model.producerName, s) }.bytes)
            XCTAssertEqual(load.status, ONNX_FUSE_OK, "\(s): \(load.summary)")
        }
    }

    func testDepthLimitCountsTheRootAsOne() {
        let bytes = graphWithNodes(1, bad: 0) { a in a.stringField(F.Attribute.name, "a") }
        XCTAssertEqual(Load(bytes, maxDepth: 4).status, ONNX_FUSE_OK)
        let load = Load(bytes, maxDepth: 3)
        XCTAssertEqual(load.status, ONNX_FUSE_LIMIT)
        XCTAssertEqual(load.path, "ModelProto.graph.node[0].attribute[0]")
        XCTAssertEqual(load.errorMessage, "messages nested deeper than 3 levels")
    }

    func testLoadOnlyAllocatesInTheArena() {
        let load = Load(RichModel().bytes)
        XCTAssertEqual(load.status, ONNX_FUSE_OK)
        XCTAssertGreaterThan(onnx_fuse_arena_used(load.loaded.arena), 0)
        XCTAssertEqual(onnx_fuse_arena_over_budget(load.loaded.arena), 0)
    }
}
