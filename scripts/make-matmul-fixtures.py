#!/usr/bin/env python3
"""Generate the fixtures of the MatMul rules (Sources/ONNXFuse/Rules/matmul.rules) and of the
arithmetic rules (arithmetic.rules).

Same conventions as scripts/make-fixtures.py, whose helpers it reuses: deterministic
(fixed seeds, fixed producer fields), every model checked with
onnx.checker.check_model(full_check=True) and run once in onnxruntime before it is written.

    python scripts/make-matmul-fixtures.py            # writes fixtures/*.onnx
    python scripts/make-matmul-fixtures.py --out DIR  # writes somewhere else
    python scripts/make-matmul-fixtures.py --no-ort   # skip the onnxruntime smoke run

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


# --------------------------------------------------------------------------
# fixtures


def lora():
    """Y = (X·W + (X·A)·B) + bias, X [2, 16], W [16, 12], A [16, 4], B [4, 12], bias [12].

    merge-lora folds the adapter into W, then fuse-matmul-add makes MatMul + Add a Gemm.
    """
    rng = mf.rng_for("lora")
    inits = [
        numpy_helper.from_array(mf.weight(rng, [16, 12]), "W"),
        numpy_helper.from_array(mf.weight(rng, [16, 4]), "A"),
        numpy_helper.from_array(mf.weight(rng, [4, 12]), "B"),
        numpy_helper.from_array(mf.weight(rng, [12]), "bias"),
    ]
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["base"], name="base"),
        helper.make_node("MatMul", ["X", "A"], ["low"], name="lora_a"),
        helper.make_node("MatMul", ["low", "B"], ["delta"], name="lora_b"),
        helper.make_node("Add", ["base", "delta"], ["sum"], name="merge"),
        helper.make_node("Add", ["sum", "bias"], ["Y"], name="bias"),
    ]
    g = helper.make_graph(nodes, "lora", [mf.vi("X", FLOAT, [2, 16])], [mf.vi("Y", FLOAT, [2, 12])], inits)
    return mf.make_model(g)


def lora_scaled():
    """Y = (s * ((X·A)·B)) + X·W, batched X [2, 3, 16], W [16, 12], A [16, 4], B [4, 12], s = 0.5.

    The Mul takes the constant first and the Add the adapter first: fold-scale-into-matmul folds
    s into B, then merge-lora makes it one MatMul (not a Gemm: X has rank 3).
    """
    rng = mf.rng_for("lora_scaled")
    inits = [
        numpy_helper.from_array(mf.weight(rng, [16, 12]), "W"),
        numpy_helper.from_array(mf.weight(rng, [16, 4]), "A"),
        numpy_helper.from_array(mf.weight(rng, [4, 12]), "B"),
        numpy_helper.from_array(np.array(0.5, dtype=np.float32), "s"),
    ]
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["base"], name="base"),
        helper.make_node("MatMul", ["X", "A"], ["low"], name="lora_a"),
        helper.make_node("MatMul", ["low", "B"], ["delta"], name="lora_b"),
        helper.make_node("Mul", ["s", "delta"], ["scaled"], name="scale"),
        helper.make_node("Add", ["scaled", "base"], ["Y"], name="merge"),
    ]
    g = helper.make_graph(nodes, "lora_scaled", [mf.vi("X", FLOAT, [2, 3, 16])], [mf.vi("Y", FLOAT, [2, 3, 12])], inits)
    return mf.make_model(g)


def matmul_add_3d():
    """Y = X·W + B with X [2, 3, 8], W [8, 6], B [6]: rank 3, so it must not become a Gemm."""
    rng = mf.rng_for("matmul_add_3d")
    inits = [
        numpy_helper.from_array(mf.weight(rng, [8, 6]), "W"),
        numpy_helper.from_array(mf.weight(rng, [6]), "B"),
    ]
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["mm_out"], name="matmul"),
        helper.make_node("Add", ["mm_out", "B"], ["Y"], name="add"),
    ]
    g = helper.make_graph(nodes, "matmul_add_3d", [mf.vi("X", FLOAT, [2, 3, 8])], [mf.vi("Y", FLOAT, [2, 3, 6])], inits)
    return mf.make_model(g)


def matmul_transpose_bn():
    """X [2, 8] -> MatMul(X, Transpose(W [6, 8])) -> BatchNormalization -> Relu -> Y, as PyTorch
    exports a Linear without bias followed by BatchNorm1d when it does not fold constants: folds
    into one Gemm (transB = 1) with a bias."""
    rng = mf.rng_for("matmul_transpose_bn")
    bn_names, bn_inits = mf.bn_params(rng, "bn", 6)
    nodes = [
        helper.make_node("Transpose", ["W"], ["wt"], name="transpose", perm=[1, 0]),
        helper.make_node("MatMul", ["X", "wt"], ["mm_out"], name="matmul"),
        helper.make_node("BatchNormalization", ["mm_out"] + bn_names, ["bn_out"], name="bn"),
        helper.make_node("Relu", ["bn_out"], ["Y"], name="relu"),
    ]
    inits = [numpy_helper.from_array(mf.weight(rng, [6, 8]), "W")] + bn_inits
    g = helper.make_graph(nodes, "matmul_transpose_bn", [mf.vi("X", FLOAT, [2, 8])], [mf.vi("Y", FLOAT, [2, 6])], inits)
    return mf.make_model(g)


def lora_peft():
    """Y = Relu((c + X·W) + ((X·A)·B) * s), X [2, 3, 16], as peft exports a LoRA on nn.Linear
    with the TorchScript exporter: the bias is added to the base product first (the bias
    first), the scale s = 2 after the adapter. fold-scale-into-matmul folds s into B, then
    merge-lora-biased makes it one MatMul and the Add of the bias.
    """
    rng = mf.rng_for("lora_peft")
    inits = [
        numpy_helper.from_array(mf.weight(rng, [16, 12]), "W"),
        numpy_helper.from_array(mf.weight(rng, [12]), "c"),
        numpy_helper.from_array(mf.weight(rng, [16, 4]), "A"),
        numpy_helper.from_array(mf.weight(rng, [4, 12]), "B"),
        numpy_helper.from_array(np.array(2.0, dtype=np.float32), "s"),
    ]
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["base"], name="base"),
        helper.make_node("Add", ["c", "base"], ["biased"], name="bias"),
        helper.make_node("MatMul", ["X", "A"], ["low"], name="lora_a"),
        helper.make_node("MatMul", ["low", "B"], ["delta"], name="lora_b"),
        helper.make_node("Mul", ["delta", "s"], ["scaled"], name="scale"),
        helper.make_node("Add", ["biased", "scaled"], ["sum"], name="merge"),
        helper.make_node("Relu", ["sum"], ["Y"], name="relu"),
    ]
    g = helper.make_graph(nodes, "lora_peft", [mf.vi("X", FLOAT, [2, 3, 16])], [mf.vi("Y", FLOAT, [2, 3, 12])], inits)
    return mf.make_model(g)


def lora_gemms():
    """Y = Gemm(X, W, c) + Gemm(Gemm(X, A), B) * s with every Gemm transB 1, X [4, 16], W [12, 16],
    A [4, 16], B [12, 4], s = 2: a peft LoRA as the dynamo exporter writes nn.Linear.
    fold-scale-into-gemm puts s in the adapter Gemm's alpha, then merge-lora-gemms makes it one Gemm.
    """
    rng = mf.rng_for("lora_gemms")
    inits = [
        numpy_helper.from_array(mf.weight(rng, [12, 16]), "W"),
        numpy_helper.from_array(mf.weight(rng, [12]), "c"),
        numpy_helper.from_array(mf.weight(rng, [4, 16]), "A"),
        numpy_helper.from_array(mf.weight(rng, [12, 4]), "B"),
        numpy_helper.from_array(np.array(2.0, dtype=np.float32), "s"),
    ]
    nodes = [
        helper.make_node("Gemm", ["X", "W", "c"], ["base"], name="base", transB=1),
        helper.make_node("Gemm", ["X", "A"], ["low"], name="lora_a", transB=1),
        helper.make_node("Gemm", ["low", "B"], ["delta"], name="lora_b", transB=1),
        helper.make_node("Mul", ["delta", "s"], ["scaled"], name="scale"),
        helper.make_node("Add", ["base", "scaled"], ["Y"], name="merge"),
    ]
    g = helper.make_graph(nodes, "lora_gemms", [mf.vi("X", FLOAT, [4, 16])], [mf.vi("Y", FLOAT, [4, 12])], inits)
    return mf.make_model(g)


def matmul_scale():
    """Scales around MatMuls and a Gemm, batched X [2, 3, 8]:

    Y1 = (X·W1) * s1, s1 a scalar [1] (the scale after, on the right): fold-scale-into-matmul;
    Y2 = (X·W2) / d2, d2 of shape [6] (per column): fold-scale-into-matmul;
    Y3 = (0.25 * X)·W3 (the scalar before): fold-scale-into-matmul;
    Y4 = (X·W4) * s4 and Y5 = X2·W4, X2 [4, 8]: W4 is shared, so the scale stays (the weight
    would be copied);
    Y6 = Gemm(X2, W6, c6, alpha 2, beta 0.5) * 3, X2 [4, 8]: fold-scale-into-gemm (alpha 6, beta 1.5).
    """
    rng = mf.rng_for("matmul_scale")
    inits = [numpy_helper.from_array(mf.weight(rng, [8, 6]), name) for name in ["W1", "W2", "W3", "W4"]]
    inits += [
        numpy_helper.from_array(np.array([0.5], dtype=np.float32), "s1"),
        numpy_helper.from_array(np.array([1, 2, 4, 8, 0.5, 0.25], dtype=np.float32), "d2"),
        numpy_helper.from_array(np.array(0.25, dtype=np.float32), "q3"),
        numpy_helper.from_array(np.array(3.0, dtype=np.float32), "s4"),
        numpy_helper.from_array(mf.weight(rng, [8, 6]), "W6"),
        numpy_helper.from_array(mf.weight(rng, [6]), "c6"),
        numpy_helper.from_array(np.array(3.0, dtype=np.float32), "s6"),
    ]
    nodes = [
        helper.make_node("MatMul", ["X", "W1"], ["m1"], name="m1"),
        helper.make_node("Mul", ["m1", "s1"], ["Y1"], name="y1"),
        helper.make_node("MatMul", ["X", "W2"], ["m2"], name="m2"),
        helper.make_node("Div", ["m2", "d2"], ["Y2"], name="y2"),
        helper.make_node("Mul", ["q3", "X"], ["x3"], name="x3"),
        helper.make_node("MatMul", ["x3", "W3"], ["Y3"], name="y3"),
        helper.make_node("MatMul", ["X", "W4"], ["m4"], name="m4"),
        helper.make_node("Mul", ["m4", "s4"], ["Y4"], name="y4"),
        helper.make_node("MatMul", ["X2", "W4"], ["Y5"], name="y5"),
        helper.make_node("Gemm", ["X2", "W6", "c6"], ["g6"], name="g6", alpha=2.0, beta=0.5),
        helper.make_node("Mul", ["g6", "s6"], ["Y6"], name="y6"),
    ]
    outputs = [mf.vi(f"Y{i}", FLOAT, [2, 3, 6]) for i in range(1, 5)] + [mf.vi("Y5", FLOAT, [4, 6]), mf.vi("Y6", FLOAT, [4, 6])]
    g = helper.make_graph(nodes, "matmul_scale", [mf.vi("X", FLOAT, [2, 3, 8]), mf.vi("X2", FLOAT, [4, 8])], outputs, inits)
    return mf.make_model(g)


def constant_chains():
    """Chains of constant arithmetic (the built-in arithmetic.rules), each on an input of its own:

    Y1 = (X1 + 2) - c1 with c1 = (-0.5, -1, -1.5, -2) [4]: merge-constant-adds (one Add of 2 - c1;
    both add a positive amount);
    Y2 = (X2 / 4) * 0.5: merge-constant-muls (one Mul by 0.125; both factors below 1);
    Y3 = (X3 * a3) * b3 with a3 [4, 1] and b3 [1, 4] on X3 [4, 4]: stays (the merged constant
    would have 16 elements);
    Y4 = Relu(X4 + 1) + 1: stays (a Relu between);
    Y5 = (X5i + 1) + 2 on int64: stays (integers are left alone);
    Y6 = (X6 + 12582912) - 12582912, rounding X6 to an integer: stays (the additions cancel);
    Y7 = (X7 * 1e30) / 1e30: stays (factors on both sides of 1: the product may overflow on purpose).
    """
    inits = [
        numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two"),
        numpy_helper.from_array(np.array([-0.5, -1, -1.5, -2], dtype=np.float32), "c1"),
        numpy_helper.from_array(np.array(4.0, dtype=np.float32), "four"),
        numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"),
        numpy_helper.from_array(np.array([[1], [2], [3], [4]], dtype=np.float32), "a3"),
        numpy_helper.from_array(np.array([[1, 2, 3, 4]], dtype=np.float32), "b3"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
        numpy_helper.from_array(np.array(1, dtype=np.int64), "one_i"),
        numpy_helper.from_array(np.array(2, dtype=np.int64), "two_i"),
        numpy_helper.from_array(np.array(12582912.0, dtype=np.float32), "magic"),
        numpy_helper.from_array(np.array(1e30, dtype=np.float32), "big"),
    ]
    nodes = [
        helper.make_node("Add", ["X1", "two"], ["a1"], name="a1"),
        helper.make_node("Sub", ["a1", "c1"], ["Y1"], name="y1"),
        helper.make_node("Div", ["X2", "four"], ["m2"], name="m2"),
        helper.make_node("Mul", ["half", "m2"], ["Y2"], name="y2"),
        helper.make_node("Mul", ["X3", "a3"], ["m3"], name="m3"),
        helper.make_node("Mul", ["m3", "b3"], ["Y3"], name="y3"),
        helper.make_node("Add", ["X4", "one"], ["a4"], name="a4"),
        helper.make_node("Relu", ["a4"], ["r4"], name="r4"),
        helper.make_node("Add", ["r4", "one"], ["Y4"], name="y4"),
        helper.make_node("Add", ["X5", "one_i"], ["a5"], name="a5"),
        helper.make_node("Add", ["a5", "two_i"], ["Y5"], name="y5"),
        helper.make_node("Add", ["X6", "magic"], ["a6"], name="a6"),
        helper.make_node("Sub", ["a6", "magic"], ["Y6"], name="y6"),
        helper.make_node("Mul", ["X7", "big"], ["m7"], name="m7"),
        helper.make_node("Div", ["m7", "big"], ["Y7"], name="y7"),
    ]
    f = lambda name, shape: mf.vi(name, FLOAT, shape)  # noqa: E731
    inputs = [f("X1", [2, 4]), f("X2", [2, 4]), f("X3", [4, 4]), f("X4", [2, 4]), mf.vi("X5", TensorProto.INT64, [2, 4]),
              f("X6", [2, 4]), f("X7", [2, 4])]
    outputs = [f("Y1", [2, 4]), f("Y2", [2, 4]), f("Y3", [4, 4]), f("Y4", [2, 4]), mf.vi("Y5", TensorProto.INT64, [2, 4]),
               f("Y6", [2, 4]), f("Y7", [2, 4])]
    g = helper.make_graph(nodes, "constant_chains", inputs, outputs, inits)
    return mf.make_model(g)


FIXTURES = {
    "matmul_scale": matmul_scale,
    "constant_chains": constant_chains,
    "lora": lora,
    "lora_scaled": lora_scaled,
    "lora_peft": lora_peft,
    "lora_gemms": lora_gemms,
    "matmul_add_3d": matmul_add_3d,
    "matmul_transpose_bn": matmul_transpose_bn,
}


if __name__ == "__main__":
    sys.exit(generate(FIXTURES, __doc__))
