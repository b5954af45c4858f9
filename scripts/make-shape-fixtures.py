#!/usr/bin/env python3
"""Generate the fixtures of the operator-aware built-ins (inference, folding, duplicate merging,
no-op removal): the shape arithmetic of transformer exports and the dynamo exporter's Conv bias.

Same conventions as scripts/make-fixtures.py, whose helpers it reuses: deterministic, every model
checked with onnx.checker.check_model(full_check=True) and run once in onnxruntime.

    python scripts/make-shape-fixtures.py            # writes fixtures/*.onnx
    python scripts/make-shape-fixtures.py --out DIR  # writes somewhere else
"""

from __future__ import annotations

import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_generator import generate, make_fixtures as mf  # noqa: E402

FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64


def ints(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def shape_arithmetic():
    """An attention-style head split with a dynamic batch N and sequence S, as TorchScript writes it.

    X[N, S, 64] is reshaped to [N, S, 4, 16] with a target built at run time from Shape(X)
    (Gather, Unsqueeze, Concat), transposed, and reshaped back with a target computed by a
    second, identical Shape(X) chain (merge-duplicates). Gather(Shape(X), 2) is static (64):
    Cast to float, Sqrt, and the Div by it fold (fold-shape-arithmetic, fold-constants). A Cast
    of a float to float and a Mul by a Constant 1 are no-ops.
    """
    nodes = [
        helper.make_node("Shape", ["X"], ["shape_a"], name="shape_a"),
        helper.make_node("Gather", ["shape_a", "zero"], ["n_a"], name="gather_n_a", axis=0),
        helper.make_node("Gather", ["shape_a", "one"], ["s_a"], name="gather_s_a", axis=0),
        helper.make_node("Unsqueeze", ["n_a", "axes0"], ["n_a1"], name="unsq_n_a"),
        helper.make_node("Unsqueeze", ["s_a", "axes0"], ["s_a1"], name="unsq_s_a"),
        helper.make_node("Concat", ["n_a1", "s_a1", "heads"], ["target_a"], name="concat_a", axis=0),
        helper.make_node("Reshape", ["X", "target_a"], ["split"], name="reshape_split"),
        helper.make_node("Transpose", ["split"], ["t"], name="transpose", perm=[0, 2, 1, 3]),
        helper.make_node("Transpose", ["t"], ["t_back"], name="transpose_back", perm=[0, 2, 1, 3]),
        # The same computation again, as exporters repeat it for every use.
        helper.make_node("Shape", ["X"], ["shape_b"], name="shape_b"),
        helper.make_node("Gather", ["shape_b", "zero"], ["n_b"], name="gather_n_b", axis=0),
        helper.make_node("Gather", ["shape_b", "one"], ["s_b"], name="gather_s_b", axis=0),
        helper.make_node("Unsqueeze", ["n_b", "axes0"], ["n_b1"], name="unsq_n_b"),
        helper.make_node("Unsqueeze", ["s_b", "axes0"], ["s_b1"], name="unsq_s_b"),
        helper.make_node("Concat", ["n_b1", "s_b1", "width"], ["target_b"], name="concat_b", axis=0),
        helper.make_node("Reshape", ["t_back", "target_b"], ["merged"], name="reshape_merge"),
        # Scale by 1 / sqrt(64), with 64 read from the shape.
        helper.make_node("Gather", ["shape_a", "two"], ["d"], name="gather_d", axis=0),
        helper.make_node("Cast", ["d"], ["d_float"], name="cast_d", to=FLOAT),
        helper.make_node("Sqrt", ["d_float"], ["sqrt_d"], name="sqrt_d"),
        helper.make_node("Div", ["merged", "sqrt_d"], ["scaled"], name="div_scale"),
        helper.make_node("Cast", ["scaled"], ["scaled_f"], name="cast_noop", to=FLOAT),
        helper.make_node("Constant", [], ["one_f"], name="const_one", value=numpy_helper.from_array(np.array(1.0, dtype=np.float32))),
        helper.make_node("Mul", ["scaled_f", "one_f"], ["Y"], name="mul_one"),
    ]
    inits = [
        ints("zero", 0), ints("one", 1), ints("two", 2), ints("axes0", [0]),
        ints("heads", [4, 16]), ints("width", [64]),
    ]
    g = helper.make_graph(
        nodes, "shape_arithmetic", [mf.vi("X", FLOAT, ["N", "S", 64])], [mf.vi("Y", FLOAT, ["N", "S", 64])], inits
    )
    return mf.make_model(g)


def dynamo_conv_bn():
    """The dynamo exporter without its optimizer: the Conv bias is built at run time as
    Expand(CastLike(0, X), Shape(W, end=1)), so BatchNormalization folds only after folding."""
    rng = mf.rng_for("dynamo_conv_bn")
    w = mf.weight(rng, (4, 3, 3, 3))
    bn_names, bn_tensors = mf.bn_params(rng, "bn", 4)
    nodes = [
        helper.make_node("Constant", [], ["zero_f"], name="const_zero", value=numpy_helper.from_array(np.array(0.0, dtype=np.float32))),
        helper.make_node("CastLike", ["zero_f", "X"], ["zero_like"], name="castlike"),
        helper.make_node("Shape", ["W"], ["out_channels"], name="shape_w", end=1),
        helper.make_node("Expand", ["zero_like", "out_channels"], ["bias"], name="expand_bias"),
        helper.make_node("Conv", ["X", "W", "bias"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", *bn_names], ["Y"], name="bn"),
    ]
    inits = [numpy_helper.from_array(w, "W"), *bn_tensors]
    g = helper.make_graph(
        nodes, "dynamo_conv_bn", [mf.vi("X", FLOAT, ["N", 3, 8, 8])], [mf.vi("Y", FLOAT, ["N", 4, 8, 8])], inits
    )
    return mf.make_model(g)


def shape_ops_mix():
    """The other shape operators exporters emit, around a dynamic batch N: Range over a static
    dimension, Equal and Where, ConstantOfShape, a Mul by ones, a Slice to INT64_MAX, an
    Expand to the input's own shape (no-ops), and a graph output computed from constants only
    (it becomes an initializer that is a graph output)."""
    nodes = [
        helper.make_node("Shape", ["X"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "one"], ["four"], name="gather_width", axis=0),
        helper.make_node("Range", ["zero", "four", "one"], ["r"], name="range"),
        helper.make_node("Equal", ["r", "two"], ["is_two"], name="equal"),
        helper.make_node("Where", ["is_two", "X", "zero_f"], ["w"], name="where"),
        helper.make_node("Unsqueeze", ["four", "axes0"], ["four1"], name="unsqueeze"),
        helper.make_node("ConstantOfShape", ["four1"], ["ones"], name="ones",
                         value=numpy_helper.from_array(np.array([1.0], dtype=np.float32))),
        helper.make_node("Mul", ["w", "ones"], ["m"], name="mul_ones"),
        helper.make_node("Slice", ["m", "starts", "ends", "axes1"], ["sl"], name="slice_all"),
        helper.make_node("Relu", ["sl"], ["Y"], name="relu"),
        helper.make_node("Expand", ["X", "s"], ["ex"], name="expand_same"),
        helper.make_node("Neg", ["ex"], ["Y2"], name="neg"),
        helper.make_node("Add", ["k", "k"], ["K"], name="add_constants"),
    ]
    inits = [
        ints("zero", 0), ints("one", 1), ints("two", 2), ints("axes0", [0]), ints("axes1", [1]),
        ints("starts", [0]), ints("ends", [np.iinfo(np.int64).max]),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero_f"),
        numpy_helper.from_array(np.array([1.5, -2.0, 3.25], dtype=np.float32), "k"),
    ]
    g = helper.make_graph(
        nodes, "shape_ops_mix", [mf.vi("X", FLOAT, ["N", 4])],
        [mf.vi("Y", FLOAT, ["N", 4]), mf.vi("Y2", FLOAT, ["N", 4]), mf.vi("K", FLOAT, [3])], inits,
    )
    return mf.make_model(g)


def transformer_shapes():
    """The shape computations of transformer exports that need more than folding, around a
    dynamic batch N and sequence S (X[N, S, 64]):

    * head split and merge: Reshape targets built from Shape(X) at run time become constants,
      [0, 0, 4, 16] (N and S copy X's dimensions) and [-1, 64] (N * S, the only unknown);
    * TorchScript's guard of expand(-1): Where(Equal(target, -1), 1, target) picks the target,
      because a dimension is never -1; a mask And-ed with a constant true;
    * Unsqueeze(Unsqueeze(Range(0, S, 1))), one Unsqueeze; Slices of two axes in a row (Swin's
      patch merging), one Slice; a Pad by zeros; a Transpose that moves only 1s before a
      Reshape to [-1, 64];
    * and one that must stay: the target [N, S * 4, 16] would need -1 beside a copy of N.
    """
    nodes = [
        helper.make_node("Shape", ["X"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "zero"], ["n"], name="gather_n", axis=0),
        helper.make_node("Gather", ["shape", "one"], ["s"], name="gather_s", axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"], name="unsq_n"),
        helper.make_node("Unsqueeze", ["s", "axes0"], ["s1"], name="unsq_s"),
        helper.make_node("Concat", ["n1", "s1", "heads"], ["split_shape"], name="concat_split", axis=0),
        helper.make_node("Reshape", ["X", "split_shape"], ["split"], name="reshape_split"),
        helper.make_node("Mul", ["n1", "s1"], ["ns"], name="mul_ns"),
        helper.make_node("Concat", ["ns", "width"], ["flat_shape"], name="concat_flat", axis=0),
        helper.make_node("Reshape", ["split", "flat_shape"], ["flat"], name="reshape_flat"),
        # expand(-1) guard around a bias [1, 1, 64] expanded to [N, S, 64].
        helper.make_node("Concat", ["n1", "s1", "width"], ["bias_shape"], name="concat_bias", axis=0),
        helper.make_node("Equal", ["bias_shape", "minus_ones"], ["is_minus_one"], name="equal_guard"),
        helper.make_node("Where", ["is_minus_one", "ones3", "bias_shape"], ["guarded"], name="where_guard"),
        helper.make_node("Expand", ["bias", "guarded"], ["bias_full"], name="expand_bias"),
        # A position mask: Range(0, S) unsqueezed twice, compared, And-ed with true.
        helper.make_node("Range", ["zero", "s", "one"], ["positions"], name="range"),
        helper.make_node("Unsqueeze", ["positions", "axes0"], ["positions1"], name="unsq_p1"),
        helper.make_node("Unsqueeze", ["positions1", "axes2"], ["positions2"], name="unsq_p2"),
        helper.make_node("Less", ["positions2", "three"], ["early"], name="less"),
        helper.make_node("And", ["early", "always"], ["mask"], name="and_true"),
        helper.make_node("Where", ["mask", "X", "bias_full"], ["mixed"], name="where_mask"),
        # Patch merging: every other row, then every other column; a Pad by zeros.
        helper.make_node("Slice", ["mixed", "start0", "end_max", "axes1", "step2"], ["rows"], name="slice_rows"),
        helper.make_node("Slice", ["rows", "start1", "end_max", "axes2", "step2"], ["cells"], name="slice_cells"),
        helper.make_node("Pad", ["cells", "no_pads"], ["padded"], name="pad_zero"),
        helper.make_node("Relu", ["padded"], ["Y2"], name="relu_cells"),
        # A pooled [N, 1, 1, 64] transposed to [N, 64, 1, 1] and flattened.
        helper.make_node("ReduceMean", ["X"], ["pooled"], name="pool", axes=[1], keepdims=1),
        helper.make_node("Reshape", ["pooled", "pooled_shape"], ["pooled4"], name="reshape_pooled"),
        helper.make_node("Transpose", ["pooled4"], ["channels_first"], name="transpose_ones", perm=[0, 3, 1, 2]),
        helper.make_node("Reshape", ["channels_first", "width_last"], ["Y3"], name="reshape_flatten"),
        # Must stay computed: [N, S * 4, 16].
        helper.make_node("Mul", ["s1", "four"], ["s4"], name="mul_s4"),
        helper.make_node("Concat", ["n1", "s4", "sixteen"], ["kept_shape"], name="concat_kept", axis=0),
        helper.make_node("Reshape", ["flat", "kept_shape"], ["kept"], name="reshape_kept"),
        helper.make_node("Neg", ["kept"], ["Y"], name="neg"),
    ]
    inits = [
        ints("zero", 0), ints("one", 1), ints("three", 3), ints("axes0", [0]), ints("axes1", [1]), ints("axes2", [2]),
        ints("heads", [4, 16]), ints("width", [64]), ints("minus_ones", [-1, -1, -1]),
        ints("ones3", [1, 1, 1]), ints("start0", [0]), ints("start1", [1]), ints("end_max", [np.iinfo(np.int64).max]),
        ints("step2", [2]), ints("no_pads", [0, 0, 0, 0, 0, 0]), ints("pooled_shape", [0, 1, 1, 64]),
        ints("width_last", [-1, 64]), ints("four", [4]), ints("sixteen", [16]),
        numpy_helper.from_array(np.linspace(-1, 1, 64, dtype=np.float32).reshape(1, 1, 64), "bias"),
        numpy_helper.from_array(np.array([True]), "always"),
    ]
    g = helper.make_graph(
        nodes, "transformer_shapes", [mf.vi("X", FLOAT, ["N", "S", 64])],
        [mf.vi("Y", FLOAT, ["N", None, 16]), mf.vi("Y2", FLOAT, ["N", None, 32]), mf.vi("Y3", FLOAT, ["N", 64])],
        inits,
    )
    return mf.make_model(g)


FIXTURES = {
    "shape_ops_mix": shape_ops_mix,
    "shape_arithmetic": shape_arithmetic,
    "dynamo_conv_bn": dynamo_conv_bn,
    "transformer_shapes": transformer_shapes,
}


if __name__ == "__main__":
    sys.exit(generate(FIXTURES, __doc__))
