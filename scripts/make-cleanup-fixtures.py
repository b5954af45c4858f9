#!/usr/bin/env python3
"""Generate the fixtures of the clean-up rules (Sources/ONNXFuse/Rules/cleanup.rules).

Same conventions as scripts/make-fixtures.py, whose helpers it reuses: deterministic
(fixed seeds, fixed producer fields), every model checked with
onnx.checker.check_model(full_check=True) and run once in onnxruntime before it is written.

    python scripts/make-cleanup-fixtures.py            # writes fixtures/*.onnx
    python scripts/make-cleanup-fixtures.py --out DIR  # writes somewhere else
    python scripts/make-cleanup-fixtures.py --no-ort   # skip the onnxruntime smoke run

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


def ints(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


# --------------------------------------------------------------------------
# fixtures


def identity_chain():
    """X -> Relu -> Identity -> Neg -> Identity -> Y, and Y2 = Identity(X).

    The first Identity is inside the graph, the second feeds the graph output Y (the Neg
    takes the name Y); the third reads a graph input and feeds a graph output, so it stays.
    """
    nodes = [
        helper.make_node("Relu", ["X"], ["r"], name="relu"),
        helper.make_node("Identity", ["r"], ["r_id"], name="id_inner"),
        helper.make_node("Neg", ["r_id"], ["n"], name="neg"),
        helper.make_node("Identity", ["n"], ["Y"], name="id_output"),
        helper.make_node("Identity", ["X"], ["Y2"], name="id_input_to_output"),
    ]
    g = helper.make_graph(
        nodes, "identity_chain", [mf.vi("X", FLOAT, [2, 3])], [mf.vi("Y", FLOAT, [2, 3]), mf.vi("Y2", FLOAT, [2, 3])]
    )
    return mf.make_model(g)


def dropout_opset12():
    """X -> Dropout(X, ratio = 0.5, training_mode absent) -> Relu -> Y, opset 17."""
    nodes = [
        helper.make_node("Dropout", ["X", "ratio"], ["d"], name="dropout"),
        helper.make_node("Relu", ["d"], ["Y"], name="relu"),
    ]
    inits = [numpy_helper.from_array(np.array(0.5, dtype=np.float32), "ratio")]
    g = helper.make_graph(nodes, "dropout_opset12", [mf.vi("X", FLOAT, [2, 4])], [mf.vi("Y", FLOAT, [2, 4])], inits)
    return mf.make_model(g)


def dropout_training():
    """Dropout with training_mode = true (a constant) and ratio 0: must not be removed.

    Ratio 0 keeps onnxruntime's training-mode Dropout deterministic (it passes X through).
    """
    nodes = [
        helper.make_node("Dropout", ["X", "ratio", "training_mode"], ["d"], name="dropout"),
        helper.make_node("Relu", ["d"], ["Y"], name="relu"),
    ]
    inits = [
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "ratio"),
        numpy_helper.from_array(np.array(True), "training_mode"),
    ]
    g = helper.make_graph(nodes, "dropout_training", [mf.vi("X", FLOAT, [2, 4])], [mf.vi("Y", FLOAT, [2, 4])], inits)
    return mf.make_model(g)


def transpose_pair():
    """Two Transpose pairs: one cancels (perm 0,2,3,1 then 0,3,1,2), one composes into a
    single Transpose (perm 1,0,2,3 then 0,2,1,3 = perm 1,2,0,3)."""
    nodes = [
        helper.make_node("Transpose", ["X"], ["t1"], name="t1", perm=[0, 2, 3, 1]),
        helper.make_node("Transpose", ["t1"], ["t2"], name="t2", perm=[0, 3, 1, 2]),
        helper.make_node("Relu", ["t2"], ["Y"], name="relu"),
        helper.make_node("Transpose", ["X"], ["u1"], name="u1", perm=[1, 0, 2, 3]),
        helper.make_node("Transpose", ["u1"], ["Y2"], name="u2", perm=[0, 2, 1, 3]),
    ]
    g = helper.make_graph(
        nodes,
        "transpose_pair",
        [mf.vi("X", FLOAT, [1, 2, 3, 4])],
        [mf.vi("Y", FLOAT, [1, 2, 3, 4]), mf.vi("Y2", FLOAT, [2, 3, 1, 4])],
    )
    return mf.make_model(g)


def squeeze_unsqueeze():
    """Opset 17 (axes as inputs): Unsqueeze [0] then Squeeze [0] (cancels), Relu then Squeeze
    [1] then Unsqueeze [1] (cancels), and Unsqueeze [0, 1] then Squeeze [0] (different axes: stays)."""
    nodes = [
        helper.make_node("Unsqueeze", ["X", "axes0"], ["u"], name="unsqueeze"),
        helper.make_node("Squeeze", ["u", "axes0"], ["s"], name="squeeze"),
        helper.make_node("Relu", ["s"], ["Y"], name="relu"),
        helper.make_node("Relu", ["Z"], ["zr"], name="relu_z"),
        helper.make_node("Squeeze", ["zr", "axes1"], ["zs"], name="squeeze_z"),
        helper.make_node("Unsqueeze", ["zs", "axes1"], ["Y2"], name="unsqueeze_z"),
        helper.make_node("Unsqueeze", ["X", "axes01"], ["w"], name="unsqueeze_w"),
        helper.make_node("Squeeze", ["w", "axes0"], ["Y3"], name="squeeze_w"),
    ]
    inits = [ints("axes0", [0]), ints("axes1", [1]), ints("axes01", [0, 1])]
    g = helper.make_graph(
        nodes,
        "squeeze_unsqueeze",
        [mf.vi("X", FLOAT, [2, 3]), mf.vi("Z", FLOAT, [2, 1, 3])],
        [mf.vi("Y", FLOAT, [2, 3]), mf.vi("Y2", FLOAT, [2, 1, 3]), mf.vi("Y3", FLOAT, [1, 2, 3])],
        inits,
    )
    return mf.make_model(g)


def squeeze_unsqueeze_opset11():
    """Opset 11 (axes as attributes): Unsqueeze then Squeeze of axes [1], Relu then
    Squeeze then Unsqueeze of axes [-2]."""
    nodes = [
        helper.make_node("Unsqueeze", ["X"], ["u"], name="unsqueeze", axes=[1]),
        helper.make_node("Squeeze", ["u"], ["s"], name="squeeze", axes=[1]),
        helper.make_node("Relu", ["s"], ["Y"], name="relu"),
        helper.make_node("Relu", ["Z"], ["zr"], name="relu_z"),
        helper.make_node("Squeeze", ["zr"], ["zs"], name="squeeze_z", axes=[-2]),
        helper.make_node("Unsqueeze", ["zs"], ["Y2"], name="unsqueeze_z", axes=[-2]),
    ]
    g = helper.make_graph(
        nodes,
        "squeeze_unsqueeze_opset11",
        [mf.vi("X", FLOAT, [2, 3]), mf.vi("Z", FLOAT, [2, 1, 3])],
        [mf.vi("Y", FLOAT, [2, 3]), mf.vi("Y2", FLOAT, [2, 1, 3])],
    )
    return mf.make_model(g, opset=11, ir_version=6)


def reshape_reshape():
    """Opset 17, shapes as int64 initializers: X[2,3,4] -> Reshape [0, -1] -> Reshape [4, -1]
    (one Reshape), and X -> Reshape [6, 4] -> Reshape [0, 4] (the 0 copies the 6 of the first
    output, not X's 2: stays)."""
    nodes = [
        helper.make_node("Reshape", ["X", "shape_a1"], ["a"], name="reshape_a1"),
        helper.make_node("Reshape", ["a", "shape_a2"], ["Y"], name="reshape_a2"),
        helper.make_node("Reshape", ["X", "shape_b1"], ["b"], name="reshape_b1"),
        helper.make_node("Reshape", ["b", "shape_b2"], ["Y2"], name="reshape_b2"),
    ]
    inits = [ints("shape_a1", [0, -1]), ints("shape_a2", [4, -1]), ints("shape_b1", [6, 4]), ints("shape_b2", [0, 4])]
    g = helper.make_graph(
        nodes,
        "reshape_reshape",
        [mf.vi("X", FLOAT, [2, 3, 4])],
        [mf.vi("Y", FLOAT, [4, 6]), mf.vi("Y2", FLOAT, [6, 4])],
        inits,
    )
    return mf.make_model(g)


def dead_nodes():
    """Y = Relu(X), with dead nodes, an unused initializer and an unused import around it.

    Dead: Sigmoid -> Add(bias) -> Neg (a chain; bias goes with it, and the value_info of
    the Sigmoid's output), and an ai.onnx.ml Scaler, the only node of its domain (the
    ai.onnx.ml import goes too). An initializer nothing reads ("unused") goes; a graph
    output that is an initializer ("C") and an overridable initializer ("O", also a graph
    input that nothing reads) stay.
    """
    rng = np.random.default_rng(31)
    nodes = [
        helper.make_node("Relu", ["X"], ["Y"], name="relu"),
        helper.make_node("Sigmoid", ["X"], ["s"], name="dead_sigmoid"),
        helper.make_node("Add", ["s", "bias"], ["a"], name="dead_add"),
        helper.make_node("Neg", ["a"], ["n"], name="dead_neg"),
        helper.make_node("Scaler", ["X"], ["scaled"], name="dead_scaler", domain="ai.onnx.ml", scale=[2.0], offset=[1.0]),
    ]
    initializers = [
        numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "bias"),
        numpy_helper.from_array(rng.standard_normal(5).astype(np.float32), "unused"),
        numpy_helper.from_array(np.array([1.5], dtype=np.float32), "C"),
        numpy_helper.from_array(np.array([2.5], dtype=np.float32), "O"),
    ]
    g = helper.make_graph(
        nodes,
        "dead_nodes",
        [mf.vi("X", FLOAT, [2, 3]), mf.vi("O", FLOAT, [1])],
        [mf.vi("Y", FLOAT, [2, 3]), mf.vi("C", FLOAT, [1])],
        initializer=initializers,
        value_info=[mf.vi("s", FLOAT, [2, 3])],
    )
    model = mf.make_model(g)
    model.opset_import.append(helper.make_opsetid("ai.onnx.ml", 3))
    return model


def cast_round_trip():
    """X float [2, 4] -> Neg -> Cast to double -> Cast to float -> Relu -> Y (goes: float in double
    is exact), and Neg -> Cast to float16 -> Cast to float -> Y2 (stays: float16 rounds).
    """
    nodes = [
        helper.make_node("Neg", ["X"], ["n"], name="neg"),
        helper.make_node("Cast", ["n"], ["d"], name="to_double", to=TensorProto.DOUBLE),
        helper.make_node("Cast", ["d"], ["back"], name="to_float", to=TensorProto.FLOAT),
        helper.make_node("Relu", ["back"], ["Y"], name="relu"),
        helper.make_node("Cast", ["n"], ["h"], name="to_half", to=TensorProto.FLOAT16),
        helper.make_node("Cast", ["h"], ["Y2"], name="from_half", to=TensorProto.FLOAT),
    ]
    g = helper.make_graph(nodes, "cast_round_trip", [mf.vi("X", FLOAT, [2, 4])],
                          [mf.vi("Y", FLOAT, [2, 4]), mf.vi("Y2", FLOAT, [2, 4])])
    return mf.make_model(g)


def transpose_constant():
    """Transposes of constants, X [2, 6]: Y1 = X · Transpose(W1) with W1 [4, 6] read by the
    Transpose alone (the Transpose folds into the constant: fold-constants under --fold-limit,
    fold-transpose-of-constant above it), and Y2 = X · Transpose(W2) beside Y3 = Relu(W2) with
    W2 [4, 6] read twice (fold-transpose-of-constant leaves it: both copies would stay).
    """
    rng = np.random.default_rng(7)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 6)).astype(np.float32), "W1"),
        numpy_helper.from_array(rng.standard_normal((4, 6)).astype(np.float32), "W2"),
    ]
    nodes = [
        helper.make_node("Transpose", ["W1"], ["w1t"], name="t1", perm=[1, 0]),
        helper.make_node("MatMul", ["X", "w1t"], ["Y1"], name="y1"),
        helper.make_node("Transpose", ["W2"], ["w2t"], name="t2", perm=[1, 0]),
        helper.make_node("MatMul", ["X", "w2t"], ["Y2"], name="y2"),
        helper.make_node("Relu", ["W2"], ["Y3"], name="y3"),
    ]
    g = helper.make_graph(
        nodes, "transpose_constant", [mf.vi("X", FLOAT, [2, 6])],
        [mf.vi("Y1", FLOAT, [2, 4]), mf.vi("Y2", FLOAT, [2, 4]), mf.vi("Y3", FLOAT, [4, 6])], inits,
    )
    return mf.make_model(g)


FIXTURES = {
    "transpose_constant": transpose_constant,
    "identity_chain": identity_chain,
    "cast_round_trip": cast_round_trip,
    "dropout_opset12": dropout_opset12,
    "dropout_training": dropout_training,
    "transpose_pair": transpose_pair,
    "squeeze_unsqueeze": squeeze_unsqueeze,
    "squeeze_unsqueeze_opset11": squeeze_unsqueeze_opset11,
    "reshape_reshape": reshape_reshape,
    "dead_nodes": dead_nodes,
}


if __name__ == "__main__":
    sys.exit(generate(FIXTURES, __doc__))
