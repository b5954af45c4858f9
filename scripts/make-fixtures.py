#!/usr/bin/env python3
"""Generate the valid ONNX fixtures in fixtures/.

Deterministic: fixed seeds, fixed producer fields, no timestamps, so running it
again rewrites byte-identical files.  Every model is checked with
onnx.checker.check_model(full_check=True) and run once in onnxruntime (when it
is installed) before it is written.

    python scripts/make-fixtures.py            # writes fixtures/*.onnx
    python scripts/make-fixtures.py --out DIR  # writes somewhere else
    python scripts/make-fixtures.py --no-ort   # skip the onnxruntime smoke run

Needs: onnx, numpy (and onnxruntime for the smoke run); see
Tests/conformance/requirements.txt, or use `scripts/venv`.
"""

from __future__ import annotations

import argparse
import os
import sys
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wire import field_bytes, field_fixed32, field_fixed64, field_varint  # noqa: E402

PRODUCER_NAME = "onnx-fuse-fixtures"
PRODUCER_VERSION = "1.0"
OPSET = 17
IR_VERSION = 8
MAX_FIXTURE_BYTES = 100 * 1024

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------
# helpers


def rng_for(name: str) -> np.random.Generator:
    """A generator seeded from the fixture name (stable across runs/platforms)."""
    return np.random.default_rng(zlib.crc32(name.encode("utf-8")))


def weight(rng, shape, dtype=np.float32, scale=0.5):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def bn_params(rng, prefix, channels, dtype=np.float32):
    """Non-trivial BatchNormalization parameters (var strictly positive)."""
    scale = rng.uniform(0.5, 1.5, channels).astype(dtype)
    bias = rng.uniform(-0.5, 0.5, channels).astype(dtype)
    mean = rng.uniform(-0.5, 0.5, channels).astype(dtype)
    var = rng.uniform(0.5, 2.0, channels).astype(dtype)
    names = [f"{prefix}_scale", f"{prefix}_bias", f"{prefix}_mean", f"{prefix}_var"]
    tensors = [numpy_helper.from_array(a, n) for a, n in zip((scale, bias, mean, var), names)]
    return names, tensors


def vi(name, elem_type, shape, doc=""):
    return helper.make_tensor_value_info(name, elem_type, shape, doc_string=doc)


def make_model(graph, *, opset=OPSET, ir_version=IR_VERSION, **kwargs):
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        ir_version=ir_version,
        producer_name=PRODUCER_NAME,
        producer_version=PRODUCER_VERSION,
        **kwargs,
    )
    return model


def conv_bn_relu_graph(
    name,
    rng,
    x_shape,
    w_shape,
    y_shape,
    *,
    with_bias=False,
    group=1,
    conv_attrs=None,
    elem_type=TensorProto.FLOAT,
    dtype=np.float32,
    op="Conv",
    epsilon=1e-5,
):
    """X -> Conv/ConvTranspose [-> +B] -> BatchNormalization -> Relu -> Y."""
    channels = y_shape[1]
    inits = [numpy_helper.from_array(weight(rng, w_shape, dtype), "W")]
    conv_inputs = ["X", "W"]
    if with_bias:
        inits.append(numpy_helper.from_array(weight(rng, [channels], dtype), "B"))
        conv_inputs.append("B")
    attrs = dict(conv_attrs or {})
    if group != 1:
        attrs["group"] = group
    bn_names, bn_inits = bn_params(rng, "bn", channels, dtype)
    inits += bn_inits
    nodes = [
        helper.make_node(op, conv_inputs, ["conv_out"], name="conv", **attrs),
        helper.make_node(
            "BatchNormalization", ["conv_out"] + bn_names, ["bn_out"], name="bn", epsilon=epsilon
        ),
        helper.make_node("Relu", ["bn_out"], ["Y"], name="relu"),
    ]
    return helper.make_graph(
        nodes, name, [vi("X", elem_type, x_shape)], [vi("Y", elem_type, y_shape)], inits
    )


# --------------------------------------------------------------------------
# fixtures: each returns (ModelProto, description)


def conv_bn():
    rng = rng_for("conv_bn")
    g = conv_bn_relu_graph(
        "conv_bn", rng, [1, 3, 8, 8], [4, 3, 3, 3], [1, 4, 8, 8], conv_attrs={"pads": [1, 1, 1, 1]}
    )
    return make_model(g)


def conv_bias_bn():
    rng = rng_for("conv_bias_bn")
    g = conv_bn_relu_graph(
        "conv_bias_bn",
        rng,
        [1, 3, 8, 8],
        [4, 3, 3, 3],
        [1, 4, 4, 4],
        with_bias=True,
        conv_attrs={"pads": [1, 1, 1, 1], "strides": [2, 2]},
        epsilon=1e-3,
    )
    return make_model(g)


def conv_grouped_bn():
    rng = rng_for("conv_grouped_bn")
    g = conv_bn_relu_graph(
        "conv_grouped_bn",
        rng,
        [1, 4, 6, 6],
        [6, 2, 3, 3],
        [1, 6, 6, 6],
        group=2,
        with_bias=True,
        conv_attrs={"pads": [1, 1, 1, 1]},
    )
    return make_model(g)


def conv_depthwise_bn():
    rng = rng_for("conv_depthwise_bn")
    g = conv_bn_relu_graph(
        "conv_depthwise_bn",
        rng,
        [1, 4, 6, 6],
        [4, 1, 3, 3],
        [1, 4, 6, 6],
        group=4,
        conv_attrs={"pads": [1, 1, 1, 1]},
    )
    return make_model(g)


def conv1d_bn():
    rng = rng_for("conv1d_bn")
    g = conv_bn_relu_graph(
        "conv1d_bn", rng, [1, 3, 16], [4, 3, 3], [1, 4, 16], conv_attrs={"pads": [1, 1]}
    )
    return make_model(g)


def conv3d_bn():
    rng = rng_for("conv3d_bn")
    g = conv_bn_relu_graph(
        "conv3d_bn",
        rng,
        [1, 2, 4, 4, 4],
        [3, 2, 3, 3, 3],
        [1, 3, 4, 4, 4],
        with_bias=True,
        conv_attrs={"pads": [1, 1, 1, 1, 1, 1]},
    )
    return make_model(g)


def convtranspose_bn():
    # ConvTranspose weight layout is (C_in, C_out / group, k...).
    rng = rng_for("convtranspose_bn")
    g = conv_bn_relu_graph(
        "convtranspose_bn",
        rng,
        [1, 3, 4, 4],
        [3, 4, 3, 3],
        [1, 4, 7, 7],
        op="ConvTranspose",
        conv_attrs={"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [0, 0]},
    )
    return make_model(g)


def convtranspose_grouped_bn():
    rng = rng_for("convtranspose_grouped_bn")
    g = conv_bn_relu_graph(
        "convtranspose_grouped_bn",
        rng,
        [1, 4, 4, 4],
        [4, 3, 3, 3],
        [1, 6, 6, 6],
        op="ConvTranspose",
        group=2,
        with_bias=True,
    )
    return make_model(g)


def linear_bn_relu(name, op, weight_shape, rows, *, bias=True, op_attrs=None, bn_attrs=None, expose_linear=False):
    """X -> Gemm or MatMul (constant weight W, optional constant bias C) -> BatchNormalization
    -> Relu -> Y, with 6 features; `expose_linear` also makes the Gemm/MatMul output a graph
    output (a case where BN must not fold)."""
    rng = rng_for(name)
    bn_names, bn_inits = bn_params(rng, "bn", 6)
    inits = [numpy_helper.from_array(weight(rng, weight_shape), "W")]
    if bias:
        inits.append(numpy_helper.from_array(weight(rng, [6]), "C"))
    linear_out = "gemm_out" if op == "Gemm" else "mm_out"
    nodes = [
        helper.make_node(op, ["X", "W"] + (["C"] if bias else []), [linear_out], name=op.lower(), **(op_attrs or {})),
        helper.make_node("BatchNormalization", [linear_out] + bn_names, ["bn_out"], name="bn", **(bn_attrs or {})),
        helper.make_node("Relu", ["bn_out"], ["Y"], name="relu"),
    ]
    outputs = [vi("Y", TensorProto.FLOAT, [rows, 6])]
    if expose_linear:
        outputs.append(vi(linear_out, TensorProto.FLOAT, [rows, 6]))
    g = helper.make_graph(nodes, name, [vi("X", TensorProto.FLOAT, [rows, 8])], outputs, inits + bn_inits)
    return make_model(g)


def gemm_bn():
    return linear_bn_relu("gemm_bn", "Gemm", [6, 8], 2, op_attrs={"transB": 1})


def gemm_transb0_bn():
    """Gemm with transB=0 (B is K x N), alpha and beta not 1, a bias C -> BN -> Relu."""
    return linear_bn_relu("gemm_transb0_bn", "Gemm", [8, 6], 3, op_attrs={"alpha": 0.75, "beta": 1.5, "transB": 0},
                          bn_attrs={"epsilon": 1e-3})


def matmul_bn():
    """2-D MatMul with a constant weight -> BN -> Relu (folds into a Gemm with a bias)."""
    return linear_bn_relu("matmul_bn", "MatMul", [8, 6], 2, bias=False)


def gemm_bn_shared():
    """Gemm(transB=1) -> BN -> Relu whose Gemm output is also a graph output: must not fold."""
    return linear_bn_relu("gemm_bn_shared", "Gemm", [6, 8], 2, op_attrs={"transB": 1}, expose_linear=True)


def matmul_add():
    rng = rng_for("matmul_add")
    inits = [
        numpy_helper.from_array(weight(rng, [8, 6]), "W"),
        numpy_helper.from_array(weight(rng, [6]), "B"),
    ]
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["mm_out"], name="matmul"),
        helper.make_node("Add", ["mm_out", "B"], ["Y"], name="add"),
    ]
    g = helper.make_graph(
        nodes, "matmul_add", [vi("X", TensorProto.FLOAT, [2, 8])], [vi("Y", TensorProto.FLOAT, [2, 6])], inits
    )
    return make_model(g)


def bn_constant_nodes():
    rng = rng_for("bn_constant_nodes")
    w = weight(rng, [4, 3, 3, 3])
    scale = rng.uniform(0.5, 1.5, 4).astype(np.float32)
    bias = rng.uniform(-0.5, 0.5, 4).astype(np.float32)
    mean = rng.uniform(-0.5, 0.5, 4).astype(np.float32)
    var = rng.uniform(0.5, 2.0, 4).astype(np.float32)
    consts = []
    for n, a in [("W", w), ("bn_scale", scale), ("bn_bias", bias), ("bn_mean", mean), ("bn_var", var)]:
        consts.append(
            helper.make_node("Constant", [], [n], name=f"const_{n}", value=numpy_helper.from_array(a, n + "_value"))
        )
    nodes = consts + [
        helper.make_node("Conv", ["X", "W"], ["conv_out"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node(
            "BatchNormalization",
            ["conv_out", "bn_scale", "bn_bias", "bn_mean", "bn_var"],
            ["bn_out"],
            name="bn",
        ),
        helper.make_node("Relu", ["bn_out"], ["Y"], name="relu"),
    ]
    g = helper.make_graph(
        nodes,
        "bn_constant_nodes",
        [vi("X", TensorProto.FLOAT, [1, 3, 6, 6])],
        [vi("Y", TensorProto.FLOAT, [1, 4, 6, 6])],
    )
    return make_model(g)


def if_subgraph():
    """If whose branches capture outer values: X (graph input), W and B_outer
    (outer initializers).  The then-branch holds Conv+BN(+Relu) with its BN
    parameters as subgraph initializers; the else-branch a plain Conv with bias."""
    rng = rng_for("if_subgraph")
    w = numpy_helper.from_array(weight(rng, [4, 3, 3, 3]), "W")
    b_outer = numpy_helper.from_array(weight(rng, [4]), "B_outer")
    bn_names, bn_inits = bn_params(rng, "then_bn", 4)
    then_g = helper.make_graph(
        [
            helper.make_node("Conv", ["X", "W"], ["then_conv"], name="then_conv", pads=[1, 1, 1, 1]),
            helper.make_node("BatchNormalization", ["then_conv"] + bn_names, ["then_bn_out"], name="then_bn"),
            helper.make_node("Relu", ["then_bn_out"], ["then_out"], name="then_relu"),
        ],
        "then_branch",
        [],
        [vi("then_out", TensorProto.FLOAT, [1, 4, 6, 6])],
        bn_inits,
    )
    else_g = helper.make_graph(
        [helper.make_node("Conv", ["X", "W", "B_outer"], ["else_out"], name="else_conv", pads=[1, 1, 1, 1])],
        "else_branch",
        [],
        [vi("else_out", TensorProto.FLOAT, [1, 4, 6, 6])],
    )
    nodes = [
        helper.make_node("If", ["cond"], ["if_out"], name="if", then_branch=then_g, else_branch=else_g),
        helper.make_node("Add", ["if_out", "B_outer_4d"], ["Y"], name="add_outer"),
    ]
    b4 = numpy_helper.from_array(weight(rng, [1, 4, 1, 1]), "B_outer_4d")
    g = helper.make_graph(
        nodes,
        "if_subgraph",
        [vi("X", TensorProto.FLOAT, [1, 3, 6, 6]), vi("cond", TensorProto.BOOL, [])],
        [vi("Y", TensorProto.FLOAT, [1, 4, 6, 6])],
        [w, b_outer, b4],
    )
    return make_model(g)


def shared_weights():
    """One weight W feeds two Convs, each followed by its own BN."""
    rng = rng_for("shared_weights")
    w = numpy_helper.from_array(weight(rng, [4, 3, 3, 3]), "W")
    bn1_names, bn1_inits = bn_params(rng, "bn1", 4)
    bn2_names, bn2_inits = bn_params(rng, "bn2", 4)
    nodes = [
        helper.make_node("Conv", ["X", "W"], ["conv1_out"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["conv1_out"] + bn1_names, ["bn1_out"], name="bn1"),
        helper.make_node("Relu", ["bn1_out"], ["Y1"], name="relu1"),
        helper.make_node("Conv", ["X", "W"], ["conv2_out"], name="conv2", strides=[2, 2]),
        helper.make_node("BatchNormalization", ["conv2_out"] + bn2_names, ["Y2"], name="bn2", epsilon=1e-3),
    ]
    g = helper.make_graph(
        nodes,
        "shared_weights",
        [vi("X", TensorProto.FLOAT, [1, 3, 7, 7])],
        [vi("Y1", TensorProto.FLOAT, [1, 4, 7, 7]), vi("Y2", TensorProto.FLOAT, [1, 4, 3, 3])],
        [w] + bn1_inits + bn2_inits,
    )
    return make_model(g)


def fp16_weights():
    rng = rng_for("fp16_weights")
    g = conv_bn_relu_graph(
        "fp16_weights",
        rng,
        [1, 3, 6, 6],
        [4, 3, 3, 3],
        [1, 4, 6, 6],
        with_bias=True,
        conv_attrs={"pads": [1, 1, 1, 1]},
        elem_type=TensorProto.FLOAT16,
        dtype=np.float16,
    )
    return make_model(g)


def double_weights():
    """float64 model.  onnxruntime's CPU provider has no double Conv (nor
    ConvTranspose) kernel, so the double-precision folding cases are
    Gemm(transB=1)+BatchNormalization+Relu and MatMul+Add, all in float64."""
    rng = rng_for("double_weights")
    f64 = np.float64
    bn_names, bn_inits = bn_params(rng, "bn", 6, f64)
    inits = [
        numpy_helper.from_array(weight(rng, [6, 8], f64), "W"),
        numpy_helper.from_array(weight(rng, [6], f64), "C"),
        numpy_helper.from_array(weight(rng, [6, 5], f64), "W2"),
        numpy_helper.from_array(weight(rng, [5], f64), "B2"),
    ] + bn_inits
    nodes = [
        helper.make_node("Gemm", ["X", "W", "C"], ["gemm_out"], name="gemm", transB=1),
        helper.make_node("BatchNormalization", ["gemm_out"] + bn_names, ["bn_out"], name="bn", epsilon=1e-7),
        helper.make_node("Relu", ["bn_out"], ["relu_out"], name="relu"),
        helper.make_node("MatMul", ["relu_out", "W2"], ["mm_out"], name="matmul"),
        helper.make_node("Add", ["mm_out", "B2"], ["Y"], name="add"),
    ]
    g = helper.make_graph(
        nodes,
        "double_weights",
        [vi("X", TensorProto.DOUBLE, [2, 8])],
        [vi("Y", TensorProto.DOUBLE, [2, 5])],
        inits,
    )
    return make_model(g)


def external_data():
    rng = rng_for("external_data")
    g = conv_bn_relu_graph(
        "external_data",
        rng,
        [1, 3, 6, 6],
        [4, 3, 3, 3],
        [1, 4, 6, 6],
        with_bias=True,
        conv_attrs={"pads": [1, 1, 1, 1]},
    )
    return make_model(g)


EXTERNAL_DATA_LOCATION = "external_data.onnx.data"


# Unknown-field payloads, also used by the self-check below.
UNKNOWN_FIELDS = {
    "model": field_varint(1000, 1234567) + field_bytes(1001, b"onnx-fuse:unknown:model"),
    "graph": field_bytes(1000, b"onnx-fuse:unknown:graph"),
    "node": field_bytes(1000, b"onnx-fuse:unknown:node") + field_varint(1002, 7),
    "tensor": field_bytes(1000, b"onnx-fuse:unknown:tensor")
    + field_fixed64(1003, 0x0102030405060708),
    "attribute": field_bytes(1000, b"onnx-fuse:unknown:attribute")
    + field_fixed32(1004, 0xCAFEF00D),
}


def _with_unknown(msg, extra: bytes):
    """Append raw wire bytes to msg's serialization and re-parse it in place;
    the protobuf runtime keeps fields it does not know as unknown fields."""
    data = msg.SerializeToString() + extra
    msg.ParseFromString(data)


def unknown_fields():
    rng = rng_for("unknown_fields")
    g = conv_bn_relu_graph(
        "unknown_fields", rng, [1, 3, 6, 6], [4, 3, 3, 3], [1, 4, 6, 6], conv_attrs={"pads": [1, 1, 1, 1]}
    )
    m = make_model(g)
    # innermost first: a re-parse of an outer message would keep inner unknowns anyway
    conv = m.graph.node[0]
    _with_unknown(conv.attribute[0], UNKNOWN_FIELDS["attribute"])  # "pads"
    _with_unknown(m.graph.initializer[0], UNKNOWN_FIELDS["tensor"])  # "W"
    _with_unknown(conv, UNKNOWN_FIELDS["node"])
    _with_unknown(m.graph, UNKNOWN_FIELDS["graph"])
    _with_unknown(m, UNKNOWN_FIELDS["model"])
    data = m.SerializeToString()
    for key, extra in UNKNOWN_FIELDS.items():
        assert extra in data, f"unknown field for {key} was dropped"
    return m


def metadata_docstrings():
    rng = rng_for("metadata_docstrings")
    md = helper.set_metadata_props

    w = numpy_helper.from_array(weight(rng, [4, 3, 3, 3]), "W")
    w.doc_string = "conv weight (OIHW)"
    b = numpy_helper.from_array(weight(rng, [4]), "B")
    b.doc_string = "conv bias"
    bn_names, bn_inits = bn_params(rng, "bn", 4)
    for t in bn_inits:
        t.doc_string = f"batch-norm parameter {t.name}"

    conv = helper.make_node(
        "Conv", ["X", "W", "B"], ["conv_out"], name="conv", doc_string="3x3 convolution", pads=[1, 1, 1, 1]
    )
    md(conv, {"onnx-fuse.test": "conv-node", "layer": "0"})
    bn = helper.make_node(
        "BatchNormalization", ["conv_out"] + bn_names, ["bn_out"], name="bn", doc_string="batch norm"
    )
    md(bn, {"onnx-fuse.test": "bn-node"})
    relu = helper.make_node("Relu", ["bn_out"], ["Y"], name="relu", doc_string="activation")
    pool = helper.make_node("GlobalAveragePool", ["Y"], ["Z"], name="pool", doc_string="second output")

    g = helper.make_graph(
        [conv, bn, relu, pool],
        "metadata_docstrings",
        [vi("X", TensorProto.FLOAT, [1, 3, 6, 6], "input image")],
        [
            vi("Y", TensorProto.FLOAT, [1, 4, 6, 6], "feature map"),
            vi("Z", TensorProto.FLOAT, [1, 4, 1, 1], "pooled features"),
        ],
        [w, b] + bn_inits,
        doc_string="graph doc string",
        value_info=[
            vi("conv_out", TensorProto.FLOAT, [1, 4, 6, 6], "conv output"),
            vi("bn_out", TensorProto.FLOAT, [1, 4, 6, 6], "bn output"),
        ],
    )
    md(g, {"onnx-fuse.test": "graph", "purpose": "metadata round-trip"})
    # GraphProto/NodeProto.metadata_props are IR version 10 fields.
    m = make_model(
        g,
        ir_version=10,
        doc_string="model doc string",
        domain="org.onnx-fuse.fixtures",
        model_version=3,
    )
    md(m, {"author": "onnx-fuse", "license": "Apache-2.0", "onnx-fuse.test": "model"})
    return m


def float_data():
    """Weights in the typed fields (float_data / int64_data), not raw_data."""
    rng = rng_for("float_data")

    def typed(name, arr, elem_type):
        arr = np.asarray(arr)
        return helper.make_tensor(name, elem_type, arr.shape, arr.flatten().tolist(), raw=False)

    w = weight(rng, [4, 3, 3, 3])
    b = weight(rng, [4])
    scale = rng.uniform(0.5, 1.5, 4).astype(np.float32)
    bias = rng.uniform(-0.5, 0.5, 4).astype(np.float32)
    mean = rng.uniform(-0.5, 0.5, 4).astype(np.float32)
    var = rng.uniform(0.5, 2.0, 4).astype(np.float32)
    inits = [
        typed("W", w, TensorProto.FLOAT),
        typed("B", b, TensorProto.FLOAT),
        typed("bn_scale", scale, TensorProto.FLOAT),
        typed("bn_bias", bias, TensorProto.FLOAT),
        typed("bn_mean", mean, TensorProto.FLOAT),
        typed("bn_var", var, TensorProto.FLOAT),
        typed("shape", np.array([1, -1], dtype=np.int64), TensorProto.INT64),
    ]
    for t in inits:
        assert not t.HasField("raw_data")
    nodes = [
        helper.make_node("Conv", ["X", "W", "B"], ["conv_out"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node(
            "BatchNormalization",
            ["conv_out", "bn_scale", "bn_bias", "bn_mean", "bn_var"],
            ["bn_out"],
            name="bn",
        ),
        helper.make_node("Relu", ["bn_out"], ["relu_out"], name="relu"),
        helper.make_node("Reshape", ["relu_out", "shape"], ["Y"], name="flatten"),
    ]
    g = helper.make_graph(
        nodes,
        "float_data",
        [vi("X", TensorProto.FLOAT, [1, 3, 4, 4])],
        [vi("Y", TensorProto.FLOAT, [1, 64])],
        inits,
    )
    return make_model(g)


def overridable_initializer():
    """IR 8: the conv weight W is an initializer *and* a graph input, so a
    caller may override it; its value must not be folded into anything."""
    rng = rng_for("overridable_initializer")
    g = conv_bn_relu_graph(
        "overridable_initializer",
        rng,
        [1, 3, 6, 6],
        [4, 3, 3, 3],
        [1, 4, 6, 6],
        with_bias=True,
        conv_attrs={"pads": [1, 1, 1, 1]},
    )
    g.input.append(vi("W", TensorProto.FLOAT, [4, 3, 3, 3]))
    return make_model(g)


def functions_training():
    """The parts onnx-fuse keeps without interpreting them: a model-local function that a
    node calls, a sparse initializer (unused: onnx's type inference accepts no sparse input
    to Add), training information (an algorithm graph and its update binding) and a
    quantization annotation."""
    rng = rng_for("functions_training")
    scaled_relu = helper.make_function(
        "com.example", "ScaledRelu", ["X", "S"], ["Y"],
        [helper.make_node("Mul", ["X", "S"], ["XS"]), helper.make_node("Relu", ["XS"], ["Y"])],
        opset_imports=[helper.make_opsetid("", OPSET)], doc_string="x * s, then Relu",
    )
    w = numpy_helper.from_array(weight(rng, [4, 4]), "W")
    b = numpy_helper.from_array(np.array([0.0, 0.25, 0.0, -0.5], dtype=np.float32), "B")
    s = numpy_helper.from_array(np.array([1.5], dtype=np.float32), "S")
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([0.25, -0.5], dtype=np.float32), "B_sparse"),
        numpy_helper.from_array(np.array([1, 3], dtype=np.int64), "B_sparse_indices"),
        [4],
    )
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["mm"]),
            helper.make_node("Add", ["mm", "B"], ["biased"]),
            helper.make_node("ScaledRelu", ["biased", "S"], ["Y"], domain="com.example"),
        ],
        "functions_training",
        [vi("X", TensorProto.FLOAT, [2, 4])],
        [vi("Y", TensorProto.FLOAT, [2, 4])],
        [w, b, s],
        sparse_initializer=[sparse],
    )
    annotation = onnx.TensorAnnotation(tensor_name="mm")
    annotation.quant_parameter_tensor_names.add(key="SCALE_TENSOR", value="S")
    graph.quantization_annotation.append(annotation)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("com.example", 1)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER_NAME,
        producer_version=PRODUCER_VERSION,
        functions=[scaled_relu],
    )
    step = numpy_helper.from_array(np.array(0.1, dtype=np.float32), "step")
    algorithm = helper.make_graph(
        [helper.make_node("Mul", ["W", "step"], ["delta"]), helper.make_node("Sub", ["W", "delta"], ["W_new"])],
        "update", [], [vi("W_new", TensorProto.FLOAT, [4, 4])], [step],
    )
    training = model.training_info.add()
    training.algorithm.CopyFrom(algorithm)
    training.update_binding.add(key="W", value="W_new")
    return model


def conv_bn_traps():
    """Conv -> BatchNormalization pairs that must NOT fold, side by side on X [2, 3, 6, 6] (each
    Conv 3 -> 4, 3x3): the Conv output also read by a Relu; the Conv output also a graph
    output; a weight computed at run time (Abs of an initializer); var + epsilon = 0 in one
    channel (epsilon 0, variance 0: the scale would be infinite); training mode with the
    running mean used as a graph output (the running variance unused); training mode with both
    running statistics unused (the schema requires the three outputs in training mode)."""
    rng = rng_for("conv_bn_traps")
    nodes, inits, outputs = [], [], []
    out_shape = [2, 4, 4, 4]

    def branch(tag, weight_name, bn_attrs=None, bn_outputs=None, var=None):
        names, tensors = bn_params(rng, f"{tag}_bn", 4)
        if var is not None:
            tensors[3] = numpy_helper.from_array(np.array(var, dtype=np.float32), names[3])
        inits.extend(tensors)
        nodes.append(helper.make_node("Conv", ["X", weight_name], [f"{tag}_conv"], name=f"{tag}_conv", kernel_shape=[3, 3]))
        nodes.append(helper.make_node("BatchNormalization", [f"{tag}_conv"] + names, bn_outputs or [f"{tag}_Y"],
                                      name=f"{tag}_bn", **(bn_attrs or {})))
        outputs.append(vi(f"{tag}_Y", TensorProto.FLOAT, out_shape))

    for tag in ["twice", "output", "inf", "train_mean", "train"]:
        inits.append(numpy_helper.from_array(weight(rng, [4, 3, 3, 3]), f"{tag}_W"))
    branch("twice", "twice_W")
    nodes.append(helper.make_node("Relu", ["twice_conv"], ["twice_relu"], name="twice_relu"))
    outputs.append(vi("twice_relu", TensorProto.FLOAT, out_shape))
    branch("output", "output_W")
    outputs.append(vi("output_conv", TensorProto.FLOAT, out_shape))
    inits.append(numpy_helper.from_array(weight(rng, [4, 3, 3, 3]), "computed_W_raw"))
    nodes.append(helper.make_node("Abs", ["computed_W_raw"], ["computed_W"], name="computed_abs"))
    branch("computed", "computed_W")
    branch("inf", "inf_W", bn_attrs={"epsilon": 0.0}, var=[1.0, 0.0, 2.0, 0.5])
    branch("train_mean", "train_mean_W", bn_attrs={"training_mode": 1},
           bn_outputs=["train_mean_Y", "train_mean_running_mean", "train_mean_running_var"])
    outputs.append(vi("train_mean_running_mean", TensorProto.FLOAT, [4]))
    branch("train", "train_W", bn_attrs={"training_mode": 1}, bn_outputs=["train_Y", "train_running_mean", "train_running_var"])
    g = helper.make_graph(nodes, "conv_bn_traps", [vi("X", TensorProto.FLOAT, [2, 3, 6, 6])], outputs, inits)
    return make_model(g)


def rule_traps():
    """Places where the other built-in rules must NOT fire, side by side: ConvTranspose -> BN
    whose ConvTranspose output a Relu also reads; a LoRA adapter whose A is computed at run
    time (Abs of an initializer); two Transposes without perm; a rank-3 MatMul -> BN (the BN's
    channels are the MatMul's rows, not its columns)."""
    rng = rng_for("rule_traps")
    f = TensorProto.FLOAT
    ct_names, ct_inits = bn_params(rng, "ct_bn", 4)
    mm_names, mm_inits = bn_params(rng, "mm_bn", 3)
    nodes = [
        helper.make_node("ConvTranspose", ["X1", "CT_W"], ["ct_out"], name="convt", kernel_shape=[2, 2]),
        helper.make_node("BatchNormalization", ["ct_out"] + ct_names, ["Y1"], name="ct_bn"),
        helper.make_node("Relu", ["ct_out"], ["Y1b"], name="ct_relu"),
        helper.make_node("MatMul", ["X2", "L_W"], ["base"], name="lora_base"),
        helper.make_node("Abs", ["L_A_raw"], ["L_A"], name="lora_a"),
        helper.make_node("MatMul", ["X2", "L_A"], ["down"], name="lora_down"),
        helper.make_node("MatMul", ["down", "L_B"], ["up"], name="lora_up"),
        helper.make_node("Add", ["base", "up"], ["Y2"], name="lora_add"),
        helper.make_node("Transpose", ["X3"], ["t1"], name="transpose1"),
        helper.make_node("Transpose", ["t1"], ["Y3"], name="transpose2"),
        helper.make_node("MatMul", ["X4", "M_W"], ["mm_out"], name="matmul3d"),
        helper.make_node("BatchNormalization", ["mm_out"] + mm_names, ["Y4"], name="mm_bn"),
    ]
    inits = [
        numpy_helper.from_array(weight(rng, [3, 4, 2, 2]), "CT_W"),
        numpy_helper.from_array(weight(rng, [16, 12]), "L_W"),
        numpy_helper.from_array(weight(rng, [16, 2]), "L_A_raw"),
        numpy_helper.from_array(weight(rng, [2, 12]), "L_B"),
        numpy_helper.from_array(weight(rng, [8, 6]), "M_W"),
    ] + ct_inits + mm_inits
    g = helper.make_graph(
        nodes, "rule_traps",
        [vi("X1", f, [1, 3, 4, 4]), vi("X2", f, [5, 16]), vi("X3", f, [2, 3, 4]), vi("X4", f, [2, 3, 8])],
        [vi("Y1", f, [1, 4, 5, 5]), vi("Y1b", f, [1, 4, 5, 5]), vi("Y2", f, [5, 12]), vi("Y3", f, [2, 3, 4]),
         vi("Y4", f, [2, 3, 6])],
        inits,
    )
    return make_model(g)


FIXTURES = {
    "conv_bn": conv_bn,
    "conv_bias_bn": conv_bias_bn,
    "conv_grouped_bn": conv_grouped_bn,
    "conv_depthwise_bn": conv_depthwise_bn,
    "conv1d_bn": conv1d_bn,
    "conv3d_bn": conv3d_bn,
    "convtranspose_bn": convtranspose_bn,
    "convtranspose_grouped_bn": convtranspose_grouped_bn,
    "gemm_bn": gemm_bn,
    "gemm_transb0_bn": gemm_transb0_bn,
    "matmul_bn": matmul_bn,
    "gemm_bn_shared": gemm_bn_shared,
    "matmul_add": matmul_add,
    "bn_constant_nodes": bn_constant_nodes,
    "if_subgraph": if_subgraph,
    "shared_weights": shared_weights,
    "fp16_weights": fp16_weights,
    "double_weights": double_weights,
    "external_data": external_data,
    "unknown_fields": unknown_fields,
    "metadata_docstrings": metadata_docstrings,
    "float_data": float_data,
    "overridable_initializer": overridable_initializer,
    "functions_training": functions_training,
    "conv_bn_traps": conv_bn_traps,
    "rule_traps": rule_traps,
}


# --------------------------------------------------------------------------
# checks and output


# Outputs meant to be infinite or NaN (conv_bn_traps: a BatchNormalization whose var + epsilon
# is 0), which the smoke run does not hold against a model.
NON_FINITE_OUTPUTS = {"inf_Y"}


def smoke_run(path: str) -> None:
    """Run the model once in onnxruntime with deterministic inputs."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {}
    for inp in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        if inp.type == "tensor(bool)":
            feeds[inp.name] = np.array(rng.integers(0, 2, shape).astype(bool))
        elif inp.type in ("tensor(int64)", "tensor(int32)"):
            feeds[inp.name] = rng.integers(-100, 100, shape).astype(np.int64 if inp.type == "tensor(int64)" else np.int32)
        else:
            dtype = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}[inp.type]
            feeds[inp.name] = rng.standard_normal(shape).astype(dtype)
    names = [o.name for o in sess.get_outputs()]
    for name, o in zip(names, sess.run(None, feeds)):
        if name in NON_FINITE_OUTPUTS:
            continue
        assert np.all(np.isfinite(o.astype(np.float64))), f"{path}: non-finite output {name}"


def write(name: str, model: onnx.ModelProto, out_dir: str) -> str:
    path = os.path.join(out_dir, name + ".onnx")
    if name == "external_data":
        data_path = os.path.join(out_dir, EXTERNAL_DATA_LOCATION)
        # onnx appends to an existing data file: start from scratch every time.
        if os.path.exists(data_path):
            os.remove(data_path)
        onnx.save(
            model,
            path,
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=EXTERNAL_DATA_LOCATION,
            size_threshold=0,
        )
        os.chmod(data_path, 0o644)  # onnx creates it 0600
    else:
        # Serialize ourselves so unknown fields and field order are kept exactly.
        with open(path, "wb") as f:
            f.write(model.SerializeToString())
    return path


def generate_fixtures(fixtures, description: str, argv=None) -> int:
    """The command line of every fixture generator: `--out DIR` (default fixtures/) and
    `--no-ort`. Builds each model, checks it with onnx.checker (full_check) before and after
    writing, runs it once in onnxruntime, and refuses fixtures over the size limit."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, "fixtures"))
    ap.add_argument("--no-ort", action="store_true", help="skip the onnxruntime smoke run")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    ok = True
    for name, build in fixtures.items():
        model = build()
        # check the in-memory model first (external data is checked by path below)
        onnx.checker.check_model(model, full_check=True)
        path = write(name, model, args.out)
        onnx.checker.check_model(path, full_check=True)
        if not args.no_ort:
            smoke_run(path)
        size = os.path.getsize(path)
        extra = ""
        if name == "external_data":
            dsize = os.path.getsize(os.path.join(args.out, EXTERNAL_DATA_LOCATION))
            size += dsize
            extra = f" (+ {EXTERNAL_DATA_LOCATION})"
        if size > MAX_FIXTURE_BYTES:
            print(f"error: {name} is {size} bytes, over {MAX_FIXTURE_BYTES}", file=sys.stderr)
            ok = False
        print(f"{name}.onnx{extra}: {size} bytes")
    return 0 if ok else 1


def main(argv=None) -> int:
    return generate_fixtures(FIXTURES, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
