// Hand-written ModelProto inputs for the CONNX tests.

/// One tensor with raw_data per interesting place: graph initializers, a node attribute
/// tensor and a sparse tensor inside a subgraph attribute, a sparse initializer, a training
/// graph and a function. Also a tensor without raw_data, one with empty raw_data, types with
/// oneofs and a few unknown fields.
struct RichModel {
    /// Tensor name -> raw_data payload.
    var payloads: [String: [UInt8]] = [
        "w": payload(16, seed: 1),
        "w2": payload(300, seed: 2),
        "sub_init": payload(8, seed: 3),
        "attr_t": payload(3, seed: 4),
        "sparse_values": payload(8, seed: 5),
        "sparse_indices": payload(16, seed: 6),
        "sparse_init_values": payload(12, seed: 7),
        "train_init": payload(5, seed: 8),
        "func_t": payload(7, seed: 9),
        "attr_tensors_1": payload(2, seed: 10),
    ]
    var withUnknownFields = true

    var liftedBytes: UInt64 { UInt64(payloads.values.reduce(0) { $0 + $1.count }) }

    private func tensor(_ w: inout Wire, _ name: String, dims: [UInt64] = [2], dataType: UInt64 = 1) {
        for d in dims { w.varintField(F.Tensor.dims, d) }
        w.varintField(F.Tensor.dataType, dataType)
        w.stringField(F.Tensor.name, name)
        if let p = payloads[name] { w.bytesField(F.Tensor.rawData, p) }
    }

    var bytes: [UInt8] {
        Wire { m in
            m.varintField(F.Model.irVersion, 8)
            m.stringField(F.Model.producerName, "onnx-fuse tests ✓")
            m.messageField(F.Model.opsetImport) { o in
                o.stringField(F.Opset.domain, "")
                o.varintField(F.Opset.version, 17)
            }
            m.messageField(F.Model.graph) { g in
                g.messageField(F.Graph.node) { n in
                    n.stringField(F.Node.input, "x")
                    n.stringField(F.Node.input, "w")
                    n.stringField(F.Node.output, "y")
                    n.stringField(F.Node.name, "matmul")
                    n.stringField(F.Node.opType, "MatMul")
                    if withUnknownFields { n.bytesField(1000, [1, 2, 3]) }
                }
                g.messageField(F.Graph.node) { n in
                    n.stringField(F.Node.opType, "If")
                    n.messageField(F.Node.attribute) { a in
                        a.stringField(F.Attribute.name, "then_branch")
                        a.varintField(F.Attribute.type, 5)
                        a.messageField(F.Attribute.g) { sub in
                            sub.messageField(F.Graph.node) { n2 in
                                n2.stringField(F.Node.opType, "Constant")
                                n2.messageField(F.Node.attribute) { a2 in
                                    a2.stringField(F.Attribute.name, "value")
                                    a2.varintField(F.Attribute.type, 4)
                                    a2.messageField(F.Attribute.t) { t in tensor(&t, "attr_t", dims: [3], dataType: 2) }
                                }
                            }
                            sub.messageField(F.Graph.node) { n2 in
                                n2.stringField(F.Node.opType, "Constant")
                                n2.messageField(F.Node.attribute) { a2 in
                                    a2.stringField(F.Attribute.name, "sparse_value")
                                    a2.varintField(F.Attribute.type, 11)
                                    a2.messageField(F.Attribute.sparseTensor) { s in
                                        s.messageField(F.Sparse.values) { t in tensor(&t, "sparse_values") }
                                        s.messageField(F.Sparse.indices) { t in tensor(&t, "sparse_indices", dataType: 7) }
                                        s.varintField(F.Sparse.dims, 10)
                                    }
                                }
                                n2.messageField(F.Node.attribute) { a2 in
                                    a2.stringField(F.Attribute.name, "list")
                                    a2.messageField(F.Attribute.tensors) { t in tensor(&t, "attr_tensors_0") }
                                    a2.messageField(F.Attribute.tensors) { t in tensor(&t, "attr_tensors_1") }
                                }
                            }
                            sub.stringField(F.Graph.name, "then")
                            sub.messageField(F.Graph.initializer) { t in tensor(&t, "sub_init") }
                        }
                    }
                }
                g.stringField(F.Graph.name, "main")
                g.messageField(F.Graph.initializer) { t in tensor(&t, "w", dims: [2, 2]) }
                g.messageField(F.Graph.initializer) { t in tensor(&t, "w2", dims: [75]) }
                g.messageField(F.Graph.initializer) { t in
                    // float_data, not raw_data: packed, as protobuf-c writes it.
                    t.varintField(F.Tensor.dims, 2)
                    t.varintField(F.Tensor.dataType, 1)
                    var floats = Wire()
                    floats.raw([0, 0, 0x80, 0x3f, 0, 0, 0, 0x40])
                    t.bytesField(F.Tensor.floatData, floats.bytes)
                    t.stringField(F.Tensor.name, "floats")
                    if withUnknownFields { t.fixed32Field(999, 0xdead_beef) }
                }
                g.messageField(F.Graph.initializer) { t in
                    t.stringField(F.Tensor.name, "empty_raw")
                    t.bytesField(F.Tensor.rawData, [])
                }
                g.messageField(F.Graph.input) { v in
                    v.stringField(F.ValueInfo.name, "x")
                    v.messageField(F.ValueInfo.type) { ty in
                        ty.messageField(F.TypeP.tensorType) { tt in
                            tt.varintField(F.TypeTensor.elemType, 1)
                            tt.messageField(F.TypeTensor.shape) { s in
                                s.messageField(F.Shape.dim) { d in d.varintField(F.Dim.dimValue, 2) }
                                s.messageField(F.Shape.dim) { d in d.stringField(F.Dim.dimParam, "N") }
                            }
                        }
                    }
                }
                g.messageField(F.Graph.output) { v in
                    v.stringField(F.ValueInfo.name, "y")
                    v.messageField(F.ValueInfo.type) { ty in
                        ty.messageField(F.TypeP.sequenceType) { sq in
                            sq.messageField(F.Sequence.elemType) { ty2 in
                                ty2.messageField(F.TypeP.tensorType) { tt in tt.varintField(F.TypeTensor.elemType, 1) }
                            }
                        }
                    }
                }
                g.messageField(F.Graph.sparseInitializer) { s in
                    s.messageField(F.Sparse.values) { t in tensor(&t, "sparse_init_values", dims: [3]) }
                    s.varintField(F.Sparse.dims, 4)
                }
            }
            m.messageField(F.Model.trainingInfo) { ti in
                ti.messageField(F.Training.initialization) { g in
                    g.messageField(F.Graph.initializer) { t in tensor(&t, "train_init", dims: [5], dataType: 2) }
                }
            }
            m.messageField(F.Model.functions) { fn in
                fn.stringField(F.Function.name, "f")
                fn.messageField(F.Function.node) { n in
                    n.stringField(F.Node.opType, "Constant")
                    n.messageField(F.Node.attribute) { a in
                        a.stringField(F.Attribute.name, "value")
                        a.messageField(F.Attribute.t) { t in tensor(&t, "func_t", dims: [7], dataType: 2) }
                    }
                }
            }
            if withUnknownFields {
                m.varintField(5000, 42)
                m.fixed64Field(5001, 0x0123_4567_89ab_cdef)
                m.bytesField(5002, Array("unknown".utf8))
                // The marker's number is an ordinary unknown field outside a TensorProto.
                m.varintField(UInt64(markerField), 7)
            }
        }.bytes
    }
}

/// A graph with `nodes` nodes; node `bad` gets the attribute built by `attribute`.
func graphWithNodes(_ nodes: Int, bad: Int, attribute: @escaping (inout Wire) -> Void) -> [UInt8] {
    Wire { m in
        m.messageField(F.Model.graph) { g in
            for i in 0..<nodes {
                g.messageField(F.Graph.node) { n in
                    n.stringField(F.Node.opType, "Relu")
                    if i == bad { n.messageField(F.Node.attribute, attribute) }
                }
            }
        }
    }.bytes
}

/// A model whose only initializer is built by `tensor`.
func modelWithTensor(_ tensor: @escaping (inout Wire) -> Void) -> [UInt8] {
    Wire { m in
        m.messageField(F.Model.graph) { g in
            g.messageField(F.Graph.initializer) { t in t.stringField(F.Tensor.name, "first") }
            g.messageField(F.Graph.initializer, tensor)
        }
    }.bytes
}
