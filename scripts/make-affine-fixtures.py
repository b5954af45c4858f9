#!/usr/bin/env python3
"""Generate the fixtures of the affine rules (Sources/ONNXFuse/Rules/affine.rules).

Same conventions as scripts/make-fixtures.py, whose helpers it reuses: deterministic
(fixed seeds, fixed producer fields), every model checked with
onnx.checker.check_model(full_check=True) and run once in onnxruntime before it is written.

    python scripts/make-affine-fixtures.py            # writes fixtures/*.onnx
    python scripts/make-affine-fixtures.py --out DIR  # writes somewhere else
    python scripts/make-affine-fixtures.py --no-ort   # skip the onnxruntime smoke run

Needs: onnx, numpy (and onnxruntime for the smoke run); see
Tests/conformance/requirements.txt, or use `scripts/venv`.
"""

from __future__ import annotations

import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_generator import generate, make_fixtures as mf  # noqa: E402

FLOAT = TensorProto.FLOAT


def const(name, array):
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


# --------------------------------------------------------------------------
# fixtures


def conv_add_bias():
    """Conv (3 -> 4 channels, 3x3, pads 1, bias) -> Add(C, conv) with C of shape [1, 4, 1, 1]
    on the left of the Add -> Relu. Folds into the Conv's bias."""
    rng = mf.rng_for("conv_add_bias")
    nodes = [
        helper.make_node("Conv", ["X", "W", "B"], ["conv_out"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["C", "conv_out"], ["add_out"], name="add"),
        helper.make_node("Relu", ["add_out"], ["Y"], name="relu"),
    ]
    inits = [
        const("W", mf.weight(rng, [4, 3, 3, 3])),
        const("B", mf.weight(rng, [4])),
        const("C", mf.weight(rng, [1, 4, 1, 1])),
    ]
    g = helper.make_graph(nodes, "conv_add_bias", [mf.vi("X", FLOAT, [1, 3, 6, 6])], [mf.vi("Y", FLOAT, [1, 4, 6, 6])], inits)
    return mf.make_model(g)


def conv_mul_scale():
    """Conv (3 -> 4 channels, 3x3, no bias) -> Mul(conv, S) with S of shape [4, 1, 1] on the
    right of the Mul -> Relu. Folds into the Conv's weight."""
    rng = mf.rng_for("conv_mul_scale")
    nodes = [
        helper.make_node("Conv", ["X", "W"], ["conv_out"], name="conv", kernel_shape=[3, 3]),
        helper.make_node("Mul", ["conv_out", "S"], ["mul_out"], name="mul"),
        helper.make_node("Relu", ["mul_out"], ["Y"], name="relu"),
    ]
    inits = [
        const("W", mf.weight(rng, [4, 3, 3, 3])),
        const("S", mf.weight(rng, [4, 1, 1])),
    ]
    g = helper.make_graph(nodes, "conv_mul_scale", [mf.vi("X", FLOAT, [1, 3, 6, 6])], [mf.vi("Y", FLOAT, [1, 4, 4, 4])], inits)
    return mf.make_model(g)


def conv_add_trap():
    """Conv (3 -> 4 channels, 1x1, bias) on a 1x3x5x4 input -> Add(conv, C) with a 1-D C of
    shape [4]: valid ONNX because the width is 4 too, but C runs along the width, not the
    channels, so it must NOT fold into the bias."""
    rng = mf.rng_for("conv_add_trap")
    nodes = [
        helper.make_node("Conv", ["X", "W", "B"], ["conv_out"], name="conv", kernel_shape=[1, 1]),
        helper.make_node("Add", ["conv_out", "C"], ["add_out"], name="add"),
        helper.make_node("Relu", ["add_out"], ["Y"], name="relu"),
    ]
    inits = [
        const("W", mf.weight(rng, [4, 3, 1, 1])),
        const("B", mf.weight(rng, [4])),
        const("C", [1.0, -2.0, 3.0, -4.0]),
    ]
    g = helper.make_graph(nodes, "conv_add_trap", [mf.vi("X", FLOAT, [1, 3, 5, 4])], [mf.vi("Y", FLOAT, [1, 4, 5, 4])], inits)
    return mf.make_model(g)


def convtranspose_mul():
    """ConvTranspose (group 2, 4 -> 6 channels, weight 4x3x2x2, stride 2, bias) -> Mul(S, convt)
    with S of shape [1, 6, 1, 1] on the left of the Mul -> Relu. Folds into the weight (along
    axis 1 within each group) and the bias."""
    rng = mf.rng_for("convtranspose_mul")
    nodes = [
        helper.make_node(
            "ConvTranspose", ["X", "W", "B"], ["convt_out"], name="convt", kernel_shape=[2, 2], strides=[2, 2], group=2
        ),
        helper.make_node("Mul", ["S", "convt_out"], ["mul_out"], name="mul"),
        helper.make_node("Relu", ["mul_out"], ["Y"], name="relu"),
    ]
    inits = [
        const("W", mf.weight(rng, [4, 3, 2, 2])),
        const("B", mf.weight(rng, [6])),
        const("S", mf.weight(rng, [1, 6, 1, 1])),
    ]
    g = helper.make_graph(
        nodes, "convtranspose_mul", [mf.vi("X", FLOAT, [1, 4, 3, 3])], [mf.vi("Y", FLOAT, [1, 6, 6, 6])], inits
    )
    return mf.make_model(g)


def affine_variants():
    """The affine folds the other fixtures leave out, side by side on X [1, 4, 5, 5]:
    Conv (4 -> 3, 3x3, bias) -> Mul by M [3, 1, 1] (weight and bias scale: fuse-conv-mul);
    ConvTranspose (4 -> 6, group 2, 2x2, bias) -> Add of A [1, 6, 1, 1] on the left (the
    bias: fuse-convtranspose-add); ConvTranspose (4 -> 2, 3x3, no bias) -> Mul by the scalar
    K (the weight: fuse-convtranspose-mul-nobias)."""
    rng = mf.rng_for("affine_variants")
    nodes = [
        helper.make_node("Conv", ["X", "W1", "B1"], ["conv_out"], name="conv", kernel_shape=[3, 3]),
        helper.make_node("Mul", ["conv_out", "M"], ["Y1"], name="mul"),
        helper.make_node("ConvTranspose", ["X", "W2", "B2"], ["convt_out"], name="convt", kernel_shape=[2, 2], group=2),
        helper.make_node("Add", ["A", "convt_out"], ["Y2"], name="add"),
        helper.make_node("ConvTranspose", ["X", "W3"], ["convt3_out"], name="convt_nobias", kernel_shape=[3, 3]),
        helper.make_node("Mul", ["convt3_out", "K"], ["Y3"], name="mul_scalar"),
    ]
    inits = [
        const("W1", mf.weight(rng, [3, 4, 3, 3])),
        const("B1", mf.weight(rng, [3])),
        const("M", mf.weight(rng, [3, 1, 1])),
        const("W2", mf.weight(rng, [4, 3, 2, 2])),
        const("B2", mf.weight(rng, [6])),
        const("A", mf.weight(rng, [1, 6, 1, 1])),
        const("W3", mf.weight(rng, [4, 2, 3, 3])),
        const("K", np.array(1.75, dtype=np.float32)),
    ]
    g = helper.make_graph(
        nodes, "affine_variants", [mf.vi("X", FLOAT, [1, 4, 5, 5])],
        [mf.vi("Y1", FLOAT, [1, 3, 3, 3]), mf.vi("Y2", FLOAT, [1, 6, 6, 6]), mf.vi("Y3", FLOAT, [1, 2, 7, 7])], inits,
    )
    return mf.make_model(g)


def ints(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def pad_conv():
    """Opset 17, on a 1x3x6x7 input: Pad (top 1, left 2, bottom 3, right 0; pads and a zero value
    as initializers) -> Conv (3 -> 4, 3x3, pads 1, bias): one Conv with pads (2, 3, 4, 1). And Pad
    (1 on every side, no value) -> Conv without pads: one Conv with pads (1, 1, 1, 1)."""
    rng = mf.rng_for("pad_conv")
    nodes = [
        helper.make_node("Pad", ["X", "P", "V"], ["padded"], name="pad", mode="constant"),
        helper.make_node("Conv", ["padded", "W", "B"], ["Y"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Pad", ["X", "P1"], ["padded1"], name="pad_nopads"),
        helper.make_node("Conv", ["padded1", "W"], ["Y2"], name="conv_nopads", kernel_shape=[3, 3]),
    ]
    inits = [
        ints("P", [0, 0, 1, 2, 0, 0, 3, 0]),
        const("V", np.array(0.0, dtype=np.float32)),
        ints("P1", [0, 0, 1, 1, 0, 0, 1, 1]),
        const("W", mf.weight(rng, [4, 3, 3, 3])),
        const("B", mf.weight(rng, [4])),
    ]
    g = helper.make_graph(
        nodes, "pad_conv", [mf.vi("X", FLOAT, [1, 3, 6, 7])],
        [mf.vi("Y", FLOAT, [1, 4, 10, 9]), mf.vi("Y2", FLOAT, [1, 4, 6, 7])], inits,
    )
    return mf.make_model(g)


def pad_conv_opset10():
    """Opset 10 (pads and value as attributes): Pad (top 2, left 1, right 1) -> Conv (3 -> 4,
    3x3, pads (1, 0, 1, 0)): one Conv with pads (3, 1, 1, 1)."""
    rng = mf.rng_for("pad_conv_opset10")
    nodes = [
        helper.make_node("Pad", ["X"], ["padded"], name="pad", pads=[0, 0, 2, 1, 0, 0, 0, 1], value=0.0),
        helper.make_node("Conv", ["padded", "W"], ["Y"], name="conv", kernel_shape=[3, 3], pads=[1, 0, 1, 0]),
    ]
    inits = [const("W", mf.weight(rng, [4, 3, 3, 3]))]
    g = helper.make_graph(nodes, "pad_conv_opset10", [mf.vi("X", FLOAT, [1, 3, 6, 7])], [mf.vi("Y", FLOAT, [1, 4, 8, 7])], inits)
    return mf.make_model(g, opset=10, ir_version=5)


def pad_conv_axes():
    """Opset 18, Pad with an axes input, on a 1x3x6x7 input: Pad (pads (1, 2, 3, 0) over axes
    (2, 3), no value) -> Conv (3 -> 4, 3x3, pads 1): one Conv with pads (2, 3, 4, 1). And Pad
    over axis 3 only (pads (1, 1)) -> Conv: the axes are not all the spatial ones, so it stays."""
    rng = mf.rng_for("pad_conv_axes")
    nodes = [
        helper.make_node("Pad", ["X", "P", "", "A"], ["padded"], name="pad", mode="constant"),
        helper.make_node("Conv", ["padded", "W"], ["Y"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Pad", ["X", "P1", "", "A1"], ["padded1"], name="pad_width_only"),
        helper.make_node("Conv", ["padded1", "W"], ["Y2"], name="conv_width_only", kernel_shape=[3, 3]),
    ]
    inits = [
        ints("P", [1, 2, 3, 0]),
        ints("A", [2, 3]),
        ints("P1", [1, 1]),
        ints("A1", [3]),
        const("W", mf.weight(rng, [4, 3, 3, 3])),
    ]
    g = helper.make_graph(
        nodes, "pad_conv_axes", [mf.vi("X", FLOAT, [1, 3, 6, 7])],
        [mf.vi("Y", FLOAT, [1, 4, 10, 9]), mf.vi("Y2", FLOAT, [1, 4, 4, 7])], inits,
    )
    return mf.make_model(g, opset=18)


def pad_conv_trap():
    """Pads that must NOT fold into the Conv after them (opset 17, 1x3x6x7 input, Conv 3 -> 4,
    3x3 with pads 1): a reflect Pad, a Pad with value 1, and a Pad that crops (-1 at the top)."""
    rng = mf.rng_for("pad_conv_trap")
    nodes = []
    outputs = []
    for index, (pads, extra, attrs, shape) in enumerate([
        ([0, 0, 1, 1, 0, 0, 1, 1], [], {"mode": "reflect"}, [1, 4, 8, 9]),
        ([0, 0, 1, 1, 0, 0, 1, 1], ["ONE"], {}, [1, 4, 8, 9]),
        ([0, 0, -1, 1, 0, 0, 1, 1], [], {}, [1, 4, 6, 9]),
    ]):
        nodes.append(helper.make_node("Pad", ["X", f"P{index}"] + extra, [f"padded{index}"], name=f"pad{index}", **attrs))
        nodes.append(helper.make_node("Conv", [f"padded{index}", "W"], [f"Y{index}"], name=f"conv{index}",
                                      kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        outputs.append(mf.vi(f"Y{index}", FLOAT, shape))
    inits = [
        ints("P0", [0, 0, 1, 1, 0, 0, 1, 1]),
        ints("P1", [0, 0, 1, 1, 0, 0, 1, 1]),
        ints("P2", [0, 0, -1, 1, 0, 0, 1, 1]),
        const("ONE", np.array(1.0, dtype=np.float32)),
        const("W", mf.weight(rng, [4, 3, 3, 3])),
    ]
    g = helper.make_graph(nodes, "pad_conv_trap", [mf.vi("X", FLOAT, [1, 3, 6, 7])], outputs, inits)
    return mf.make_model(g)


FIXTURES = {
    "conv_add_bias": conv_add_bias,
    "conv_mul_scale": conv_mul_scale,
    "conv_add_trap": conv_add_trap,
    "convtranspose_mul": convtranspose_mul,
    "pad_conv": pad_conv,
    "pad_conv_opset10": pad_conv_opset10,
    "pad_conv_trap": pad_conv_trap,
    "pad_conv_axes": pad_conv_axes,
    "affine_variants": affine_variants,
}


if __name__ == "__main__":
    sys.exit(generate(FIXTURES, __doc__))
