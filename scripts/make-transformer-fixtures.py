#!/usr/bin/env python3
"""Generate the fixtures of the activation and normalization rules
(Sources/ONNXFuse/Rules/activation.rules and normalization.rules): Gelu in its erf and tanh
forms, HardSigmoid and HardSwish, LayerNormalization and RMSNormalization written out, each as
the exporters write them, beside look-alikes that must stay, and at opsets too old for the fused
operator.

Same conventions as scripts/make-fixtures.py, whose helpers it reuses: deterministic
(fixed seeds, fixed producer fields), every model checked with
onnx.checker.check_model(full_check=True) and run once in onnxruntime before it is written.
Each pattern reads a graph input of its own: patterns on one input would share their first
nodes once duplicates merge, and a shared interior value rightly stops a fusion.

    python scripts/make-transformer-fixtures.py            # writes fixtures/*.onnx
    python scripts/make-transformer-fixtures.py --out DIR  # writes somewhere else
    python scripts/make-transformer-fixtures.py --no-ort   # skip the onnxruntime smoke run

Needs: onnx, numpy (and onnxruntime for the smoke run); see
Tests/conformance/requirements.txt, or use `scripts/venv`.
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_generator import generate, make_fixtures as mf  # noqa: E402

FLOAT = TensorProto.FLOAT


def scalar(name, value):
    return numpy_helper.from_array(np.array(value, dtype=np.float32), name)


def vector(name, values):
    return numpy_helper.from_array(np.asarray(values, dtype=np.float32), name)


def ints(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


class Builder:
    """Nodes, initializers, inputs and outputs of one fixture; names get a per-branch prefix."""

    def __init__(self):
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []

    def input(self, name, shape):
        self.inputs.append(mf.vi(name, FLOAT, shape))
        return name

    def const(self, name, value):
        self.inits.append(scalar(name, value) if np.ndim(value) == 0 else vector(name, value))
        return name

    def const_ints(self, name, values):
        self.inits.append(ints(name, values))
        return name

    def node(self, op, inputs, output, **attrs):
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def output(self, name, shape):
        self.outputs.append(mf.vi(name, FLOAT, shape))

    def model(self, graph_name, opset, ir_version=None):
        g = helper.make_graph(self.nodes, graph_name, self.inputs, self.outputs, self.inits)
        kwargs = {"opset": opset}
        if ir_version is not None:
            kwargs["ir_version"] = ir_version
        return mf.make_model(g, **kwargs)


def rename_last(b, name):
    """Gives the last node's output (and the node) the name of a graph output."""
    b.nodes[-1].output[0] = name
    b.nodes[-1].name = name


# --------------------------------------------------------------------------
# Gelu


def gelu_erf_branch(b, p, x, form, half=0.5, via_reciprocal=False):
    """0.5 * x * (1 + erf(x / sqrt(2))) on x; `form` places the 0.5 (A: (x * 0.5) * a,
    B: (x * a) * 0.5 as TorchScript writes nn.GELU, C: x * (a * 0.5)); operands in varied order."""
    if via_reciprocal:
        d = b.node("Mul", [b.const(p + "inv_sqrt2", 1 / math.sqrt(2)), x], p + "d")
    else:
        d = b.node("Div", [x, b.const(p + "sqrt2", math.sqrt(2))], p + "d")
    e = b.node("Erf", [d], p + "e")
    a = b.node("Add", [b.const(p + "one", 1.0), e], p + "a")
    h = b.const(p + "half", half)
    if form == "A":
        return b.node("Mul", [b.node("Mul", [x, h], p + "h"), a], p + "y")
    if form == "B":
        return b.node("Mul", [b.node("Mul", [x, a], p + "m"), h], p + "y")
    return b.node("Mul", [x, b.node("Mul", [h, a], p + "g")], p + "y")


def gelu_tanh_branch(b, p, x, form, exponent=3.0):
    """0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))), as GPT-2's gelu_new."""
    pw = b.node("Pow", [x, b.const(p + "three", exponent)], p + "p")
    c = b.node("Mul", [b.const(p + "k", 0.044715), pw] if form == "B" else [pw, b.const(p + "k", 0.044715)], p + "c")
    s = b.node("Add", [x, c], p + "s")
    u = b.node("Mul", [s, b.const(p + "r", math.sqrt(2 / math.pi))], p + "u")
    t = b.node("Tanh", [u], p + "t")
    a = b.node("Add", [t, b.const(p + "one", 1.0)], p + "a")
    h = b.const(p + "half", 0.5)
    if form == "A":
        return b.node("Mul", [b.node("Mul", [x, h], p + "h"), a], p + "y")
    return b.node("Mul", [b.node("Mul", [x, a], p + "m"), h], p + "y")


def gelu_erf():
    """Four erf Gelus on X1..X4 [2, 8], opset 20: TorchScript's form (B) on X1, (A) with
    x * (1 / sqrt(2)) on X2, (C) on X3 — fuse-gelu-erf fuses the three — and (B) with 0.6 in
    place of 0.5 on X4, which stays."""
    b = Builder()
    for i, (form, half, recip) in enumerate([("B", 0.5, False), ("A", 0.5, True), ("C", 0.5, False), ("B", 0.6, False)], 1):
        x = b.input(f"X{i}", [2, 8])
        gelu_erf_branch(b, f"b{i}_", x, form, half=half, via_reciprocal=recip)
        rename_last(b, f"Y{i}")
        b.output(f"Y{i}", [2, 8])
    return b.model("gelu_erf", opset=20)


def gelu_tanh():
    """Three tanh Gelus on X1..X3 [2, 8], opset 20: GPT-2's form on X1, the 0.5 last and
    0.044715 first on X2 — fuse-gelu-tanh fuses both — and x^2 in place of x^3 on X3, which stays."""
    b = Builder()
    for i, (form, exponent) in enumerate([("A", 3.0), ("B", 3.0), ("A", 2.0)], 1):
        x = b.input(f"X{i}", [2, 8])
        gelu_tanh_branch(b, f"b{i}_", x, form, exponent=exponent)
        rename_last(b, f"Y{i}")
        b.output(f"Y{i}", [2, 8])
    return b.model("gelu_tanh", opset=20)


def gelu_opset17():
    """An erf Gelu (X1) and a tanh Gelu (X2) at opset 17, which has no Gelu: both stay."""
    b = Builder()
    x1, x2 = b.input("X1", [2, 8]), b.input("X2", [2, 8])
    gelu_erf_branch(b, "e_", x1, "B")
    rename_last(b, "Y1")
    gelu_tanh_branch(b, "t_", x2, "A")
    rename_last(b, "Y2")
    b.output("Y1", [2, 8])
    b.output("Y2", [2, 8])
    return b.model("gelu_opset17", opset=17)


# --------------------------------------------------------------------------
# HardSigmoid and HardSwish


def clip(b, p, a, opset, hi=6.0):
    if opset >= 11:
        return b.node("Clip", [a, b.const(p + "lo", 0.0), b.const(p + "hi", hi)], p + "c")
    return b.node("Clip", [a], p + "c", min=0.0, max=hi)


def hard_swish():
    """Opset 14, X1..X4 [2, 8]: x * clip(x + 3, 0, 6) / 6 as torch writes hardswish (X1:
    fuse-hard-swish); clip(x + 3, 0, 6) * (1 / 6) alone (X2: fuse-hard-sigmoid); x * (clip(x + 3,
    0, 6) / 6) (X3: fuse-hard-sigmoid, then fuse-hard-swish); clip(x + 3, 0, 5) / 6 (X4: stays,
    the clip does not reach the divisor)."""
    b = Builder()
    x1, x2, x3, x4 = (b.input(f"X{i}", [2, 8]) for i in range(1, 5))
    c1 = clip(b, "s1_", b.node("Add", [x1, b.const("s1_three", 3.0)], "s1_a"), 14)
    b.node("Div", [b.node("Mul", [x1, c1], "s1_m"), b.const("s1_six", 6.0)], "Y1")
    c2 = clip(b, "s2_", b.node("Add", [b.const("s2_three", 3.0), x2], "s2_a"), 14)
    b.node("Mul", [c2, b.const("s2_sixth", 1 / 6)], "Y2")
    c3 = clip(b, "s3_", b.node("Add", [x3, b.const("s3_three", 3.0)], "s3_a"), 14)
    b.node("Mul", [x3, b.node("Div", [c3, b.const("s3_six", 6.0)], "s3_h")], "Y3")
    c4 = clip(b, "s4_", b.node("Add", [x4, b.const("s4_three", 3.0)], "s4_a"), 14, hi=5.0)
    b.node("Div", [c4, b.const("s4_six", 6.0)], "Y4")
    for i in range(1, 5):
        b.output(f"Y{i}", [2, 8])
    return b.model("hard_swish", opset=14)


def hard_sigmoid_opset10():
    """Opset 10, X [2, 8]: x * (clip(x + 3, 0, 6) / 6) with the Clip's bounds as attributes:
    fuse-hard-sigmoid fuses the division; HardSwish (opset 14) is too new, the product stays."""
    b = Builder()
    x = b.input("X", [2, 8])
    c = clip(b, "h_", b.node("Add", [x, b.const("three", 3.0)], "h_a"), 10)
    b.node("Mul", [x, b.node("Div", [c, b.const("six", 6.0)], "h")], "Y")
    b.output("Y", [2, 8])
    return b.model("hard_sigmoid_opset10", opset=10)


# --------------------------------------------------------------------------
# LayerNormalization and RMSNormalization

RNG = np.random.default_rng(11)


def reduce_mean(b, x, output, axes, opset):
    if opset >= 18:
        return b.node("ReduceMean", [x, b.const_ints(output + "_axes", axes)], output)
    return b.node("ReduceMean", [x], output, axes=axes)


def layer_norm_branch(b, p, x, opset, d_model, axes=(-1,), square="Pow", bias=True, eps=1e-5):
    m = reduce_mean(b, x, p + "mean", list(axes), opset)
    d = b.node("Sub", [x, m], p + "d")
    if square == "Pow":
        sq = b.node("Pow", [d, b.const(p + "two", 2.0)], p + "sq")
    else:
        sq = b.node("Mul", [d, d], p + "sq")
    v = reduce_mean(b, sq, p + "var", list(axes), opset)
    e = b.node("Add", [v, b.const(p + "eps", eps)], p + "e")
    s = b.node("Sqrt", [e], p + "s")
    n = b.node("Div", [d, s], p + "n")
    w = b.node("Mul", [n, b.const(p + "scale", RNG.uniform(0.5, 1.5, d_model))], p + "w")
    if bias:
        return b.node("Add", [b.const(p + "bias", RNG.uniform(-0.5, 0.5, d_model)), w], p + "y")
    return w


def layernorm():
    """Opset 17 (axes attributes), X1..X3 [2, 3, 8]: GPT-2's LayerNorm with a scale and a bias
    (X1) and one with d * d, a positive last axis and no bias (X2) — fuse-layer-normalization fuses
    both, and the scales and the bias join the nodes — and one over axis 1 (X3), which stays."""
    b = Builder()
    for i, kwargs in enumerate([{}, {"square": "Mul", "axes": (2,), "bias": False}, {"axes": (1,)}], 1):
        x = b.input(f"X{i}", [2, 3, 8])
        d_model = 3 if kwargs.get("axes") == (1,) else 8
        if d_model == 3:
            # scale and bias along axis 1: [3, 1] broadcasts against [2, 3, 8]
            layer_norm_branch(b, f"n{i}_", x, 17, d_model, **kwargs)
            for init in b.inits[-2:]:
                init.dims[:] = [3, 1]
        else:
            layer_norm_branch(b, f"n{i}_", x, 17, d_model, **kwargs)
        rename_last(b, f"Y{i}")
        b.output(f"Y{i}", [2, 3, 8])
    return b.model("layernorm", opset=17)


def layernorm_opset18():
    """Opset 18 (axes inputs), X1 [2, 5, 8]: a LayerNorm with a scale and a bias, fused with both;
    X2: one whose scale has one element (shape [1]): the normalization fuses, the Mul by that
    scale stays after the node (LayerNormalization's scale has the normalized shape)."""
    b = Builder()
    x1, x2 = b.input("X1", [2, 5, 8]), b.input("X2", [2, 5, 8])
    layer_norm_branch(b, "n1_", x1, 18, 8, eps=1e-12)
    rename_last(b, "Y1")
    layer_norm_branch(b, "n2_", x2, 18, 8)
    for init in b.inits:
        if init.name == "n2_scale":
            init.CopyFrom(vector("n2_scale", [1.25]))
    rename_last(b, "Y2")
    b.output("Y1", [2, 5, 8])
    b.output("Y2", [2, 5, 8])
    return b.model("layernorm_opset18", opset=18)


def layernorm_opset14():
    """GPT-2's LayerNorm at opset 14 (as the TorchScript exporter writes it there), which has no
    LayerNormalization: it stays."""
    b = Builder()
    x = b.input("X", [2, 3, 8])
    layer_norm_branch(b, "n_", x, 14, 8)
    rename_last(b, "Y")
    b.output("Y", [2, 3, 8])
    return b.model("layernorm_opset14", opset=14)


def rms_norm_branch(b, p, x, opset, d_model, form):
    sq = b.node("Pow", [x, b.const(p + "two", 2.0)], p + "sq") if form != "Div" else b.node("Mul", [x, x], p + "sq")
    v = reduce_mean(b, sq, p + "var", [-1], opset)
    e = b.node("Add", [v, b.const(p + "eps", 1e-6)], p + "e")
    s = b.node("Sqrt", [e], p + "s")
    if form == "OneOver":
        n = b.node("Mul", [x, b.node("Div", [b.const(p + "one", 1.0), s], p + "r")], p + "n")
    elif form == "Reciprocal":
        n = b.node("Mul", [b.node("Reciprocal", [s], p + "r"), x], p + "n")
    else:
        n = b.node("Div", [x, s], p + "n")
    return b.node("Mul", [b.const(p + "scale", RNG.uniform(0.5, 1.5, d_model)), n], p + "y")


def rmsnorm_model(name, opset):
    b = Builder()
    for i, form in enumerate(["OneOver", "Reciprocal", "Div"], 1):
        x = b.input(f"X{i}", [2, 3, 8])
        rms_norm_branch(b, f"r{i}_", x, opset, 8, form)
        rename_last(b, f"Y{i}")
        b.output(f"Y{i}", [2, 3, 8])
    return b.model(name, opset=opset, ir_version=10 if opset >= 21 else None)


def rmsnorm():
    """Opset 23, X1..X3 [2, 3, 8]: Llama's RMSNorm as TorchScript writes it, x * (1 / sqrt(mean(x^2)
    + eps)) * w (X1), with Reciprocal as the dynamo exporter writes it (X2), and x / sqrt(...) with
    x * x (X3): fuse-rms-normalization fuses the three."""
    return rmsnorm_model("rmsnorm", 23)


def rmsnorm_opset20():
    """The three RMSNorms of rmsnorm.onnx at opset 20, which has no RMSNormalization: they stay."""
    return rmsnorm_model("rmsnorm_opset20", 20)


def attention_branch(b, p, q, k, v, scale_op="Div", mask=None, axis=-1):
    kt = b.node("Transpose", [k], p + "kt", perm=[0, 1, 3, 2])
    s = b.node("MatMul", [q, kt], p + "s")
    if scale_op == "Div":
        z = b.node("Div", [s, b.const(p + "sqrt_d", math.sqrt(8))], p + "z")
    else:
        z = b.node("Mul", [b.const(p + "inv_sqrt_d", 1 / math.sqrt(8)), s], p + "z")
    if mask is not None:
        z = b.node("Add", [z, mask], p + "w")
    a = b.node("Softmax", [z], p + "a", axis=axis)
    return b.node("MatMul", [a, v], p + "y")


def attention():
    """Opset 23, IR 10, Q, K, V [2, 3, 4, 8] per branch (batch, heads, sequence, head size):
    softmax(Q·Kᵀ / √8 + mask) · V with a float mask [2, 1, 4, 4] (Y1), softmax((1/√8) · Q·Kᵀ) · V
    (Y2) — fuse-attention makes two Attention nodes — and one with the Softmax over axis 2, not
    the keys (Y3), which stays."""
    b = Builder()
    shape = [2, 3, 4, 8]
    names = lambda i: [b.input(f"{t}{i}", shape) for t in "QKV"]  # noqa: E731
    mask = b.input("M", [2, 1, 4, 4])
    attention_branch(b, "a1_", *names(1), mask=mask)
    rename_last(b, "Y1")
    attention_branch(b, "a2_", *names(2), scale_op="Mul")
    rename_last(b, "Y2")
    attention_branch(b, "a3_", *names(3), axis=2)
    rename_last(b, "Y3")
    for i in range(1, 4):
        b.output(f"Y{i}", shape)
    return b.model("attention", opset=23, ir_version=10)


FIXTURES = {
    "attention": attention,
    "gelu_erf": gelu_erf,
    "gelu_tanh": gelu_tanh,
    "gelu_opset17": gelu_opset17,
    "hard_swish": hard_swish,
    "hard_sigmoid_opset10": hard_sigmoid_opset10,
    "layernorm": layernorm,
    "layernorm_opset18": layernorm_opset18,
    "layernorm_opset14": layernorm_opset14,
    "rmsnorm": rmsnorm,
    "rmsnorm_opset20": rmsnorm_opset20,
}


if __name__ == "__main__":
    sys.exit(generate(FIXTURES, __doc__))
