// onnx_fuse_load on invalid inputs: status, offset, path and message of each rejection.
import CONNX
import XCTest

final class RejectionTests: XCTestCase {
    /// Loads `bytes`, expects `status`, and checks that nothing was handed out.
    @discardableResult
    private func reject(_ bytes: [UInt8], _ status: onnx_fuse_status = ONNX_FUSE_INVALID,
                        path: String? = nil, message: String? = nil, offset: UInt64? = nil,
                        maxDepth: Int = 100, budget: Int = .max,
                        file: StaticString = #filePath, line: UInt = #line) -> Load {
        let load = Load(bytes, maxDepth: maxDepth, budget: budget)
        XCTAssertEqual(load.status, status, load.summary, file: file, line: line)
        XCTAssertEqual(load.error.status, status, file: file, line: line)
        XCTAssertNil(load.loaded.model, file: file, line: line)
        XCTAssertNil(load.loaded.arena, file: file, line: line)
        XCTAssertEqual(load.loaded.lifted_count, 0, file: file, line: line)
        XCTAssertFalse(load.errorMessage.isEmpty, file: file, line: line)
        XCTAssertFalse(load.errorMessage.hasSuffix("."), file: file, line: line)
        XCTAssertFalse(load.errorMessage.contains("\n"), file: file, line: line)
        if let path { XCTAssertEqual(load.path, path, file: file, line: line) }
        if let message { XCTAssertEqual(load.errorMessage, message, file: file, line: line) }
        if let offset { XCTAssertEqual(load.error.offset, offset, file: file, line: line) }
        return load
    }

    private func offset(of needle: [UInt8], in haystack: [UInt8]) -> Int {
        for i in 0...(haystack.count - needle.count) where Array(haystack[i..<i + needle.count]) == needle {
            return i
        }
        fatalError("needle not found")
    }

    // MARK: keys

    func testFieldNumberZero() {
        reject([0x00, 0x01], path: "ModelProto", message: "field number 0 is out of range", offset: 0)
        let nested = Wire { m in m.messageField(F.Model.graph) { g in g.varintField(0, 1) } }.bytes
        reject(nested, path: "ModelProto.graph", message: "field number 0 is out of range", offset: 2)
    }

    func testFieldNumberAboveTheMaximum() {
        var w = Wire()
        w.varintField(1 << 29, 1)
        reject(w.bytes, path: "ModelProto", message: "field number 536870912 is out of range")
        var large = Wire()
        large.varintField(UInt64(1) << 60, 1)
        reject(large.bytes)
    }

    func testLargestFieldNumberIsAnUnknownFieldOutsideTensors() {
        var w = Wire()
        w.varintField(UInt64(markerField), 1)
        let load = Load(w.bytes)
        XCTAssertEqual(load.status, ONNX_FUSE_OK, load.summary)
        XCTAssertEqual(load.message.pointee.n_unknown_fields, 1)
        XCTAssertEqual(pack(load.message), w.bytes)
    }

    func testGroupAndUndefinedWireTypes() {
        for wireType: UInt64 in [3, 4, 6, 7] {
            var w = Wire()
            w.varintField(F.Model.irVersion, 1)
            w.key(F.Model.graph, wireType)
            w.raw([0, 0, 0, 0, 0, 0, 0, 0])
            let load = reject(w.bytes, path: "ModelProto.graph", offset: 2)
            XCTAssertTrue(load.errorMessage.hasPrefix("wire type \(wireType) "), load.errorMessage)
        }
        // Also for unknown fields, which are otherwise only skipped.
        var u = Wire()
        u.key(1234, 3)
        reject(u.bytes, path: "ModelProto.#1234", message: "wire type 3 (group) is not supported")
    }

    func testVarintLongerThanTenBytes() {
        var w = Wire()
        w.key(F.Model.irVersion, 0)
        w.raw([UInt8](repeating: 0x80, count: 10) + [0x00])
        reject(w.bytes, path: "ModelProto.ir_version", message: "varint value is longer than 10 bytes",
               offset: 1)
        // A ten-byte varint is fine.
        var ok = Wire()
        ok.key(F.Model.irVersion, 0)
        ok.raw([UInt8](repeating: 0xff, count: 9) + [0x01])
        XCTAssertEqual(Load(ok.bytes).status, ONNX_FUSE_OK)
        // Keys too.
        reject([UInt8](repeating: 0x80, count: 11) + [0x08], path: "ModelProto",
               message: "field key is longer than 10 bytes")
    }

    // MARK: lengths

    func testValuesPastTheEndOfTheEnclosingMessage() {
        // A fixed32 that needs bytes of the parent after the graph ends.
        let fixed32 = Wire { m in
            m.key(F.Model.graph, 2); m.varint(3)
            m.key(99, 5); m.raw([1, 2])        // 3 bytes of graph: key + 2 of 4 value bytes
            m.varintField(F.Model.irVersion, 1) // plenty of bytes after the graph
        }.bytes
        reject(fixed32, path: "ModelProto.graph.#99", message: "4-byte value runs past the end of the message",
               offset: 4)
        let fixed64 = Wire { m in m.key(99, 1); m.raw([1, 2, 3, 4, 5, 6, 7]) }.bytes
        reject(fixed64, message: "8-byte value runs past the end of the message")
        let length = Wire { m in
            m.messageField(F.Model.graph) { g in g.key(F.Graph.name, 2); g.varint(5); g.raw(Array("abc".utf8)) }
            m.stringField(F.Model.producerName, "padding after the graph")
        }.bytes
        reject(length, path: "ModelProto.graph.name", message: "length 5 runs past the end of the message",
               offset: 3)
        let varint = Wire { m in m.key(F.Model.irVersion, 0); m.raw([0x80, 0x80]) }.bytes
        reject(varint, message: "varint value runs past the end of the message")
        let hugeLength = Wire { m in m.key(F.Model.graph, 2); m.varint(UInt64.max) }.bytes
        reject(hugeLength, message: "length 18446744073709551615 runs past the end of the message")
    }

    func testTruncatedKeyInsideAMessage() {
        let bytes = Wire { m in m.key(F.Model.graph, 2); m.varint(1); m.raw([0x80]) }.bytes
        reject(bytes, path: "ModelProto.graph", message: "field key runs past the end of the message")
    }

    // MARK: wire types against the schema

    func testWireTypesThatDoNotFitTheField() {
        let graphAsVarint = Wire { $0.varintField(F.Model.graph, 1) }.bytes
        reject(graphAsVarint, path: "ModelProto.graph", message: "wire type 0 does not fit a message field")
        let irVersionAsBytes = Wire { $0.bytesField(F.Model.irVersion, [1]) }.bytes
        reject(irVersionAsBytes, path: "ModelProto.ir_version",
               message: "wire type 2 does not fit an int64 field")
        let nameAsFixed = Wire { $0.fixed32Field(F.Model.producerName, 1) }.bytes
        reject(nameAsFixed, message: "wire type 5 does not fit a string field")
        let dimsAsFixed = modelWithTensor { $0.fixed64Field(F.Tensor.dims, 1) }
        reject(dimsAsFixed, path: "ModelProto.graph.initializer[1].dims[0]",
               message: "wire type 1 does not fit a repeated int64 field")
        let floatsAsVarint = modelWithTensor { $0.varintField(F.Tensor.floatData, 1) }
        reject(floatsAsVarint, message: "wire type 0 does not fit a repeated float field")
        let nodesAsFixed = Wire { m in m.messageField(F.Model.graph) { g in g.fixed32Field(F.Graph.node, 0) } }.bytes
        reject(nodesAsFixed, path: "ModelProto.graph.node[0]")
        let enumAsFixed = Wire { m in
            m.messageField(F.Model.graph) { g in
                g.messageField(F.Graph.node) { n in
                    n.messageField(F.Node.attribute) { a in a.fixed32Field(F.Attribute.type, 1) }
                }
            }
        }.bytes
        reject(enumAsFixed, path: "ModelProto.graph.node[0].attribute[0].type",
               message: "wire type 5 does not fit an enum field")
        let rawDataAsVarint = modelWithTensor { $0.varintField(F.Tensor.rawData, 1) }
        reject(rawDataAsVarint, message: "wire type 0 does not fit a bytes field")
    }

    func testPackedPayloadsMustHoldWholeValues() {
        let floats = modelWithTensor { $0.bytesField(F.Tensor.floatData, [0, 0, 0x80, 0x3f, 0]) }
        reject(floats, path: "ModelProto.graph.initializer[1].float_data",
               message: "packed float values take 5 bytes, not a multiple of 4")
        let ints = modelWithTensor { $0.bytesField(F.Tensor.int64Data, [0x01, 0x80]) }
        reject(ints, path: "ModelProto.graph.initializer[1].int64_data",
               message: "packed value runs past the end of the message")
    }

    // MARK: strings

    func testNulByteInsideAString() {
        let bytes = graphWithNodes(5, bad: 3) { a in a.stringField(F.Attribute.name, "ab\u{0}cd") }
        let at = offset(of: Array("ab\u{0}cd".utf8), in: bytes) + 2
        reject(bytes, path: "ModelProto.graph.node[3].attribute[0].name",
               message: "NUL byte inside a string", offset: UInt64(at))
    }

    func testNulInRepeatedStringAndBytesFields() {
        let input = Wire { m in
            m.messageField(F.Model.graph) { g in
                g.messageField(F.Graph.node) { n in
                    n.stringField(F.Node.input, "x")
                    n.stringField(F.Node.input, "y\u{0}")
                }
            }
        }.bytes
        reject(input, path: "ModelProto.graph.node[0].input[1]", message: "NUL byte inside a string")
        // AttributeProto.s is bytes, not string: anything goes.
        let s = graphWithNodes(1, bad: 0) { a in a.bytesField(F.Attribute.s, [0, 0xff, 0xc0, 0x80]) }
        XCTAssertEqual(Load(s).status, ONNX_FUSE_OK)
    }

    func testInvalidUtf8() {
        let cases: [(String, [UInt8])] = [
            ("overlong 2-byte", [0xc0, 0x80]),
            ("overlong 2-byte C1", [0xc1, 0xbf]),
            ("overlong 3-byte", [0xe0, 0x80, 0x80]),
            ("overlong 4-byte", [0xf0, 0x80, 0x80, 0x80]),
            ("surrogate", [0xed, 0xa0, 0x80]),
            ("low surrogate", [0xed, 0xbf, 0xbf]),
            ("above U+10FFFF", [0xf4, 0x90, 0x80, 0x80]),
            ("F5 lead", [0xf5, 0x80, 0x80, 0x80]),
            ("FF", [0xff]),
            ("lone continuation", [0x80]),
            ("truncated", [0xe2, 0x82]),
            ("bad continuation", [0xe2, 0x28, 0xa1]),
            ("truncated 4-byte", [0xf0, 0x9f, 0x98]),
        ]
        for (name, bad) in cases {
            let bytes = Wire { m in
                m.messageField(F.Model.graph) { g in g.bytesField(F.Graph.name, Array("ok".utf8) + bad + [0x41]) }
            }.bytes
            reject(bytes, path: "ModelProto.graph.name", message: "invalid UTF-8 inside a string",
                   offset: UInt64(4 + 2))
            _ = name
        }
    }

    func testUtf8ErrorsInsideLongAsciiRuns() {
        // The check skips ASCII 8 bytes at a time: the offending byte at every position of
        // a word, after and before runs of every length.
        let cases: [([UInt8], String)] = [
            ([0x00], "NUL byte inside a string"),
            ([0xff], "invalid UTF-8 inside a string"),
            ([0x80], "invalid UTF-8 inside a string"),
            ([0xc0, 0x80], "invalid UTF-8 inside a string"),
            ([0xe2, 0x82], "invalid UTF-8 inside a string"), // cut: bad at its start
        ]
        for prefix in 0..<24 {
            for suffix in [0, 1, 7, 8, 9, 30] {
                for (bad, message) in cases {
                    // A cut sequence is only cut at the end.
                    if bad == [0xe2, 0x82] && suffix > 0 { continue }
                    let s = [UInt8](repeating: 0x61, count: prefix) + bad + [UInt8](repeating: 0x7f, count: suffix)
                    let bytes = Wire { $0.bytesField(F.Model.producerName, s) }.bytes
                    reject(bytes, path: "ModelProto.producer_name", message: message,
                           offset: UInt64(bytes.count - s.count + prefix))
                }
            }
            // Multi-byte characters and DEL between ASCII runs are fine.
            let ok = String(repeating: "a", count: prefix) + "é€𝄞\u{7f}" + String(repeating: "b", count: prefix)
            XCTAssertEqual(Load(Wire { $0.stringField(F.Model.producerName, ok) }.bytes).status, ONNX_FUSE_OK)
        }
    }

    // MARK: tensors

    func testRawDataGivenTwice() {
        let twice = modelWithTensor { t in
            t.bytesField(F.Tensor.rawData, [1, 2])
            t.stringField(F.Tensor.name, "t")
            t.bytesField(F.Tensor.rawData, [3])
        }
        reject(twice, path: "ModelProto.graph.initializer[1].raw_data", message: "raw_data given more than once")
        let emptyThenFull = modelWithTensor { t in
            t.bytesField(F.Tensor.rawData, [])
            t.bytesField(F.Tensor.rawData, [3])
        }
        reject(emptyThenFull, message: "raw_data given more than once")
        // Once in each of two tensors is fine.
        let two = Wire { m in
            m.messageField(F.Model.graph) { g in
                g.messageField(F.Graph.initializer) { $0.bytesField(F.Tensor.rawData, [1]) }
                g.messageField(F.Graph.initializer) { $0.bytesField(F.Tensor.rawData, [2]) }
            }
        }.bytes
        XCTAssertEqual(Load(two).loaded.lifted_count, 2)
    }

    func testTensorCarryingTheMarkerNumber() {
        let bytes = modelWithTensor { t in t.varintField(UInt64(markerField), 0) }
        reject(bytes, path: "ModelProto.graph.initializer[1].#536870911",
               message: "TensorProto uses field number 536870911, which the loader reserves")
        let asBytes = graphWithNodes(1, bad: 0) { a in
            a.messageField(F.Attribute.t) { t in t.bytesField(UInt64(markerField), [1, 2]) }
        }
        reject(asBytes, path: "ModelProto.graph.node[0].attribute[0].t.#536870911")
    }

    func testSingularTensorGivenTwiceWouldLoseItsRawData() {
        // protobuf-c merges the two AttributeProto.t and drops the first one's unknown
        // fields, which hold the marker: refused rather than silently losing weights.
        let bytes = graphWithNodes(1, bad: 0) { a in
            a.messageField(F.Attribute.t) { t in t.bytesField(F.Tensor.rawData, [1, 2, 3]) }
            a.messageField(F.Attribute.t) { t in t.stringField(F.Tensor.name, "later") }
        }
        reject(bytes, path: "ModelProto.graph.node[0].attribute[0].t",
               message: "a TensorProto given twice as a singular field would lose its raw_data")
        // The same whatever the payload's size: a small one is copied, not lifted, and
        // protobuf-c's merge would keep it where other readers take a later empty raw_data.
        for later: [UInt8] in [[], [4]] {
            let small = graphWithNodes(1, bad: 0) { a in
                a.messageField(F.Attribute.t) { t in t.bytesField(F.Tensor.rawData, [1, 2, 3]) }
                a.messageField(F.Attribute.t) { t in t.bytesField(F.Tensor.rawData, later) }
            }
            let load = Load(small, liftMin: Int(ONNX_FUSE_LIFT_MIN))
            XCTAssertEqual(load.status, ONNX_FUSE_INVALID, load.summary)
            XCTAssertEqual(load.path, "ModelProto.graph.node[0].attribute[0].t")
            XCTAssertEqual(load.errorMessage, "a TensorProto given twice as a singular field would lose its raw_data")
        }
        // Merging without raw_data in the earlier one is fine.
        let fine = graphWithNodes(1, bad: 0) { a in
            a.messageField(F.Attribute.t) { t in t.stringField(F.Tensor.name, "earlier") }
            a.messageField(F.Attribute.t) { t in t.bytesField(F.Tensor.rawData, [1, 2, 3]) }
        }
        let load = Load(fine)
        XCTAssertEqual(load.status, ONNX_FUSE_OK, load.summary)
        let t = load.model.pointee.graph.pointee.node[0]!.pointee.attribute[0]!.pointee.t!
        XCTAssertEqual(tensorName(t), "earlier")
        XCTAssertEqual(rawData(t), [1, 2, 3])
    }

    // MARK: limits

    func testDeepNestingIsALimitNotACrash() {
        // ModelProto.graph.input[0].type, then TypeProto.sequence_type.elem_type 5,000 times.
        let fields: [UInt64] = [F.Model.graph, F.Graph.input, F.ValueInfo.type]
            + Array(repeating: [F.TypeP.sequenceType, F.Sequence.elemType], count: 5_000).flatMap { $0 }
        XCTAssertEqual(fields.count, 10_003)
        let bytes = nested(fields)
        let load = reject(bytes, ONNX_FUSE_LIMIT, message: "messages nested deeper than 100 levels")
        XCTAssertTrue(load.path.hasPrefix("..."), load.path)
        XCTAssertTrue(load.path.hasSuffix("sequence_type.elem_type.sequence_type"), load.path)
        XCTAssertLessThan(load.path.utf8.count, 512)
        // The innermost TypeProto is at depth 10,004: still refused with a generous limit,
        // before protobuf-c (which recurses) ever sees it.
        reject(bytes, ONNX_FUSE_LIMIT, message: "messages nested deeper than 10000 levels", maxDepth: 10_000)
    }

    func testDeepNestingInsideAnUnknownFieldIsNotFollowed() {
        let bytes = Wire { m in m.bytesField(4242, nested(Array(repeating: 1, count: 10_000))) }.bytes
        let load = Load(bytes)
        XCTAssertEqual(load.status, ONNX_FUSE_OK, load.summary)
        XCTAssertEqual(load.loaded.message_count, 1)
    }

    func testManyEmptyNodesExceedASmallBudget() {
        // 10 MB of empty NodeProtos: 5 million two-byte entries.
        var graph = [UInt8]()
        graph.reserveCapacity(10_000_000)
        for _ in 0..<5_000_000 { graph.append(0x0a); graph.append(0x00) }
        var w = Wire()
        w.bytesField(F.Model.graph, graph)
        reject(w.bytes, ONNX_FUSE_LIMIT, path: "ModelProto",
               message: "unpacking needs more than 1048576 bytes of memory", budget: 1 << 20)
    }

    func testBudgetTooSmallForTheRoot() {
        reject(RichModel().bytes, ONNX_FUSE_LIMIT, budget: 64)
        reject([], ONNX_FUSE_LIMIT, message: "unpacking needs more than 0 bytes of memory", budget: 0)
    }

    func testMaxDepthZeroRejectsEverything() {
        reject([], ONNX_FUSE_LIMIT, maxDepth: 0)
    }
}
