"""Conformance suite: onnx-fuse must preserve what a model computes.

For every case (by default every fixtures/*.onnx, plus anything added to
EXTRA_CASES) the onnx-fuse binary named by $ONNX_FUSE is run as

    $ONNX_FUSE <tmpdir>/<name>.onnx -o <tmpdir>/<name>.fused.onnx

(the fixture and any external data files it references are copied into a
fresh tmpdir first, and the binary runs with that tmpdir as its working
directory).  Then:

  * test_fuse_runs         the binary exits 0 and writes the output file
  * test_expected_rules_fire  with the built-in rules, exactly the rules of
                           EXPECTED_BUILTIN_FIRINGS fire, as often as listed
  * test_second_run_changes_nothing  onnx-fuse on its own output writes the
                           same bytes
  * test_output_checker    onnx.checker.check_model(output, full_check=True)
  * test_output_signature  the output parses with onnx and has the same graph
                           input and output names (in order) and types
  * test_output_numerics   original and output, run in onnxruntime with
                           ORT_DISABLE_ALL on the same seeded random inputs,
                           give the same outputs within the bounds below

See README.md beside this file for how to run it.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import zlib
from pathlib import Path, PurePosixPath
from typing import Any, Callable

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto

# ---------------------------------------------------------------------------
# Comparison bounds, per output element type: (rtol, atol), used as in
# numpy.allclose: |fused - original| <= atol + rtol * |original|, NaNs equal.
# Folding BatchNormalization into weights reorders float arithmetic, so floats
# are compared with a tolerance scaled to each type's precision; integer,
# bool and string outputs must match exactly.
FP32_RTOL, FP32_ATOL = 1e-4, 1e-5  # float32
FP16_RTOL, FP16_ATOL = 1e-2, 1e-3  # float16
BF16_RTOL, BF16_ATOL = 2e-2, 1e-2  # bfloat16
FP64_RTOL, FP64_ATOL = 1e-9, 1e-12  # float64
# Integer types (int8..int64, uint8..uint64), bool and string: exact.

TOLERANCES = {
    TensorProto.FLOAT: (FP32_RTOL, FP32_ATOL),
    TensorProto.FLOAT16: (FP16_RTOL, FP16_ATOL),
    TensorProto.BFLOAT16: (BF16_RTOL, BF16_ATOL),
    TensorProto.DOUBLE: (FP64_RTOL, FP64_ATOL),
}
EXACT_TYPES = {
    TensorProto.INT8,
    TensorProto.INT16,
    TensorProto.INT32,
    TensorProto.INT64,
    TensorProto.UINT8,
    TensorProto.UINT16,
    TensorProto.UINT32,
    TensorProto.UINT64,
    TensorProto.BOOL,
    TensorProto.STRING,
}

# Random inputs: floats ~ N(0, 1); integers uniform in [INT_LOW, INT_HIGH);
# bools uniform; symbolic or unknown dims are 1.  The seed of each case is
# derived from SEED and the case id, so every run feeds the same values.
SEED = 20240917
INT_LOW, INT_HIGH = 0, 4
SYMBOLIC_DIMS = (1, 3)  # every symbolic dim takes each value in turn: two input shapes

FUSE_TIMEOUT_S = 120

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES_DIR = REPO_ROOT / "fixtures"


# ---------------------------------------------------------------------------
# Cases


@dataclasses.dataclass(frozen=True)
class Case:
    """One model to run through onnx-fuse.

    path         the model (.onnx); external data files it references are
                 found relative to it and copied along
    feeds        one comparison per entry: each maps input names to fixed
                 values (anything numpy.asarray takes) that replace the random
                 ones; the default, ({},), is one run with random inputs only
    input_shapes shapes for graph inputs whose type has no shape
    args         extra command-line arguments for onnx-fuse, after the rest
    label        tells apart runs of one model with different args (part of the id)
    """

    path: Path
    feeds: tuple[dict[str, Any], ...] = ({},)
    input_shapes: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    args: tuple[str, ...] = ()
    label: str = ""

    @property
    def id(self) -> str:
        return f"{self.path.name}[{self.label}]" if self.label else self.path.name

    @property
    def stem(self) -> str:
        return self.path.name[: -len(".onnx")] if self.path.name.endswith(".onnx") else self.path.name


# Options for fixtures picked up by the glob, keyed by file name.
CASE_OPTIONS: dict[str, dict[str, Any]] = {
    # run both branches, whatever the random bool would have been
    "if_subgraph.onnx": {"feeds": ({"cond": np.array(True)}, {"cond": np.array(False)})},
}

# The rules that must fire on each fixture with the built-in rules, and how often: a rewrite
# that silently stops firing leaves a model that still computes the same numbers, so the
# numbers alone would not notice. Every fixture is listed; {} means no rule may fire.
EXPECTED_BUILTIN_FIRINGS: dict[str, dict[str, int]] = {
    "affine_variants.onnx": {"fuse-conv-mul": 1, "fuse-convtranspose-add": 1, "fuse-convtranspose-mul-nobias": 1},
    "bn_constant_nodes.onnx": {"lift-constant": 5, "fold-conv-batchnorm": 1},
    "conv1d_bn.onnx": {"fold-conv-batchnorm": 1},
    "conv3d_bn.onnx": {"fold-conv-batchnorm": 1},
    "conv_add_bias.onnx": {"fuse-conv-add": 1},
    "conv_add_trap.onnx": {},
    "conv_bias_bn.onnx": {"fold-conv-batchnorm": 1},
    "conv_bn.onnx": {"fold-conv-batchnorm": 1},
    # The computed weight Abs(constant) folds to a constant first; then its BatchNormalization folds.
    "conv_bn_traps.onnx": {"fold-constants": 1, "fold-conv-batchnorm": 1},
    "conv_depthwise_bn.onnx": {"fold-conv-batchnorm": 1},
    "conv_grouped_bn.onnx": {"fold-conv-batchnorm": 1},
    "conv_mul_scale.onnx": {"fuse-conv-mul-nobias": 1},
    "convtranspose_bn.onnx": {"fold-convtranspose-batchnorm": 1},
    "convtranspose_grouped_bn.onnx": {"fold-convtranspose-batchnorm": 1},
    "convtranspose_mul.onnx": {"fuse-convtranspose-mul": 1},
    # The dead chain goes a node at a time, each counted (the engine removes no node itself).
    "dead_nodes.onnx": {"remove-dead-node": 3, "remove-dead-node-ml": 1, "remove-unused-initializer": 1, "remove-unused-opset-import": 1},
    # Inference knows the MatMul's input is 2-D, so MatMul + Add becomes a Gemm.
    "double_weights.onnx": {"fold-gemm-transb-batchnorm": 1, "fuse-matmul-add": 1},
    "dropout_opset12.onnx": {"eliminate-dropout": 1},
    "dropout_training.onnx": {},
    "external_data.onnx": {"fold-conv-batchnorm": 1},
    "float_data.onnx": {"fold-conv-batchnorm": 1},
    "fp16_weights.onnx": {"fold-conv-batchnorm": 1},
    "functions_training.onnx": {"fuse-matmul-add": 1},
    "gemm_bn.onnx": {"fold-gemm-transb-batchnorm": 1},
    "gemm_bn_shared.onnx": {},
    "gemm_transb0_bn.onnx": {"fold-gemm-batchnorm": 1},
    "identity_chain.onnx": {"eliminate-identity": 2},
    "if_subgraph.onnx": {"fold-conv-batchnorm": 1},
    "lora.onnx": {"merge-lora": 1, "fuse-matmul-add": 1},
    # The adapter's scale folds into B first (fold-scale-into-matmul, or a Gemm's alpha); then the LoRA merges.
    "lora_scaled.onnx": {"fold-scale-into-matmul": 1, "merge-lora": 1},
    "cast_round_trip.onnx": {"remove-lossless-cast-round-trip": 1},
    "lora_peft.onnx": {"fold-scale-into-matmul": 1, "merge-lora-biased": 1},
    "lora_gemms.onnx": {"fold-scale-into-gemm": 1, "merge-lora-gemms": 1},
    "matmul_add.onnx": {"fuse-matmul-add": 1},
    # s4 and s6 are equal scalars: they merge; W4 is shared, so Y4's scale stays.
    "matmul_scale.onnx": {"merge-duplicates": 1, "fold-scale-into-matmul": 3, "fold-scale-into-gemm": 1},
    "constant_chains.onnx": {"merge-constant-adds": 1, "merge-constant-muls": 1},
    "matmul_add_3d.onnx": {},
    "matmul_bn.onnx": {"fold-matmul-batchnorm": 1},
    # The Transpose of a constant folds first; then the plain MatMul rule applies.
    "matmul_transpose_bn.onnx": {"fold-constants": 1, "fold-matmul-batchnorm": 1},
    "metadata_docstrings.onnx": {"fold-conv-batchnorm": 1},
    "overridable_initializer.onnx": {},
    "pad_conv.onnx": {"fuse-pad-conv": 2},
    "pad_conv_axes.onnx": {"fuse-pad-conv-axes": 1},
    "pad_conv_opset10.onnx": {"fuse-pad-conv-v2": 1},
    "pad_conv_trap.onnx": {"merge-duplicates": 1},  # P0 and P1 are equal initializers
    "reshape_reshape.onnx": {"remove-noop-reshape": 1, "fuse-reshape-reshape": 1},
    # The computed LoRA factor Abs(constant) folds to a constant first; then the LoRA merges.
    "rule_traps.onnx": {"fold-constants": 1, "merge-lora": 1},
    "shared_weights.onnx": {"fold-conv-batchnorm": 2},
    "squeeze_unsqueeze.onnx": {"cancel-squeeze-unsqueeze": 1, "cancel-unsqueeze-squeeze": 1},
    "squeeze_unsqueeze_opset11.onnx": {"cancel-squeeze-unsqueeze": 1, "cancel-unsqueeze-squeeze": 1},
    "transpose_pair.onnx": {"cancel-transpose-transpose": 1, "fuse-transpose-transpose": 1},
    # Small constants: fold-constants folds both Transposes and the Relu of W2 (see EXTRA_CASES).
    "transpose_constant.onnx": {"fold-constants": 3},
    "unknown_fields.onnx": {"fold-conv-batchnorm": 1},
    # The activation and normalization rules (scripts/make-transformer-fixtures.py).
    "gelu_erf.onnx": {"merge-duplicates": 7, "fuse-gelu-erf": 3},
    "gelu_tanh.onnx": {"merge-duplicates": 9, "fuse-gelu-tanh": 2},
    "gelu_opset17.onnx": {"merge-duplicates": 2},
    "hard_swish.onnx": {"merge-duplicates": 11, "fuse-hard-sigmoid": 2, "fuse-hard-swish": 2},
    "hard_sigmoid_opset10.onnx": {"fuse-hard-sigmoid": 1},
    "layernorm.onnx": {"merge-duplicates": 3, "fuse-layer-normalization": 2, "fuse-layer-normalization-scale": 2,
                       "fuse-layer-normalization-bias": 1},
    "layernorm_opset18.onnx": {"merge-duplicates": 4, "fuse-layer-normalization": 2, "fuse-layer-normalization-scale": 1,
                               "fuse-layer-normalization-bias": 1},
    "layernorm_opset14.onnx": {},
    "rmsnorm.onnx": {"merge-duplicates": 5, "fuse-rms-normalization": 3, "fuse-rms-normalization-scale": 3},
    "rmsnorm_opset20.onnx": {"merge-duplicates": 5},
    "attention.onnx": {"merge-duplicates": 1, "fuse-attention": 2},
    # The operator-aware built-ins (scripts/make-shape-fixtures.py).
    # Both Reshape targets become constants; the Shape chains left unread go as dead code, a
    # node at a time (merge-duplicates joins the second chain's nodes to the first's meanwhile).
    "shape_arithmetic.onnx": {
        "lift-constant": 1, "fold-constants": 2, "fold-shape-arithmetic": 1, "merge-duplicates": 5,
        "constant-reshape-shape": 2, "remove-noop-arithmetic": 1, "remove-noop-cast": 1, "cancel-transpose-transpose": 1,
        "remove-dead-node": 7,
    },
    "dynamo_conv_bn.onnx": {"lift-constant": 1, "fold-constants": 3, "fold-conv-batchnorm": 1},
    "shape_ops_mix.onnx": {
        "fold-constants": 5, "fold-shape-arithmetic": 1, "remove-noop-arithmetic": 1, "remove-noop-reshape": 1,
        "remove-noop-slice": 1, "merge-duplicates": 1, "remove-dead-node": 1,
    },
    # The [N, S * 4, 16] target stays computed; everything else the docstring lists goes.
    "transformer_shapes.onnx": {
        "fold-shape-arithmetic": 1, "merge-duplicates": 4, "constant-reshape-shape": 2, "remove-noop-arithmetic": 1,
        "remove-noop-pad": 1, "remove-noop-where": 1, "fuse-reshape-reshape": 2, "merge-reshapes": 1, "merge-slices": 1,
        "merge-unsqueezes": 1, "remove-dead-node": 6,
    },
}

# Models outside fixtures/*.onnx to add to the suite: append Case(...) here.
EXTRA_CASES: list[Case] = [
    # Above --fold-limit, fold-transpose-of-constant folds the Transpose of W1 (read by it alone).
    Case(FIXTURES_DIR / "transpose_constant.onnx", args=("--fold-limit", "4"), label="fold-limit-4"),
]

# Rule files every fixture is also run with (alone, with --no-builtin), by label.
RULE_FILES: dict[str, Path] = {
    "conv-batchnorm-example": FIXTURES_DIR.parent / "docs" / "examples" / "conv-batchnorm.rules",
}


def collect_cases() -> list[Case]:
    fixtures = sorted(FIXTURES_DIR.glob("*.onnx"))
    cases = [Case(p, **CASE_OPTIONS.get(p.name, {})) for p in fixtures]
    for label, rules in RULE_FILES.items():
        cases += [Case(p, **CASE_OPTIONS.get(p.name, {}), args=("--no-builtin", "--rules", str(rules)), label=label)
                  for p in fixtures]
    cases += EXTRA_CASES
    ids = [c.id for c in cases]
    dup = {i for i in ids if ids.count(i) > 1}
    assert not dup, f"duplicate case ids: {sorted(dup)}"
    return cases


CASES = collect_cases()
assert CASES, f"no cases found (looked for {FIXTURES_DIR}/*.onnx)"


# ---------------------------------------------------------------------------
# The binary


_ONNX_FUSE: list[str] = []


def onnx_fuse_binary() -> str:
    """The binary named by $ONNX_FUSE, as an absolute path (fails the test if unusable)."""
    if _ONNX_FUSE:
        return _ONNX_FUSE[0]
    value = os.environ.get("ONNX_FUSE")
    if not value:
        pytest.fail(
            "ONNX_FUSE is not set: set it to the onnx-fuse binary to test, e.g. "
            "ONNX_FUSE=.build/debug/onnx-fuse (see Tests/conformance/README.md)",
            pytrace=False,
        )
    path = shutil.which(value) if os.sep not in value else value
    if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
        pytest.fail(f"ONNX_FUSE={value!r} is not an executable file", pytrace=False)
    # absolute, because the binary runs with the case's tmpdir as cwd
    _ONNX_FUSE.append(os.path.abspath(path))
    return _ONNX_FUSE[0]


@dataclasses.dataclass
class FuseRun:
    case: Case
    workdir: Path
    original: Path  # the copy that was given to the binary
    output: Path
    report: Path  # the --report JSON
    command: list[str]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"command: {' '.join(self.command)}\n"
            f"exit status: {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


_FUSE_RUNS: dict[str, FuseRun] = {}


def _walk_tensors(graph: onnx.GraphProto):
    """Every TensorProto in graph and its subgraphs."""
    yield from graph.initializer
    for sp in graph.sparse_initializer:
        yield sp.values
        yield sp.indices
    for node in graph.node:
        yield from _walk_attr_tensors(node.attribute)


def _walk_attr_tensors(attributes):
    for attr in attributes:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        if attr.HasField("sparse_tensor"):
            yield attr.sparse_tensor.values
            yield attr.sparse_tensor.indices
        for sp in attr.sparse_tensors:
            yield sp.values
            yield sp.indices
        if attr.HasField("g"):
            yield from _walk_tensors(attr.g)
        for g in attr.graphs:
            yield from _walk_tensors(g)


def external_data_files(model: onnx.ModelProto) -> list[str]:
    """Relative locations of all external data files the model references."""
    tensors = list(_walk_tensors(model.graph))
    for fn in model.functions:
        for node in fn.node:
            tensors += list(_walk_attr_tensors(node.attribute))
    locations = set()
    for t in tensors:
        if t.data_location == TensorProto.EXTERNAL:
            for entry in t.external_data:
                if entry.key == "location":
                    locations.add(entry.value)
    return sorted(locations)


def copy_case(case: Case, workdir: Path) -> Path:
    """Copy the model and its external data files into workdir."""
    dest = workdir / case.path.name
    shutil.copyfile(case.path, dest)
    model = onnx.load(str(case.path), load_external_data=False)
    for location in external_data_files(model):
        rel = PurePosixPath(location)
        assert not rel.is_absolute() and ".." not in rel.parts, (
            f"{case.id}: external data location {location!r} leaves the model's directory"
        )
        src = case.path.parent / rel
        assert src.is_file(), f"{case.id}: external data file {src} is missing"
        (workdir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, workdir / rel)
    return dest


def run_binary(command: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run command in its own process group; on timeout kill the whole group."""
    proc = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=FUSE_TIMEOUT_S)
        return proc.returncode, stdout, stderr
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        return -1, stdout, stderr + f"\n(killed: timed out after {FUSE_TIMEOUT_S}s)"


def fuse(case: Case, tmp_path_factory) -> FuseRun:
    """Run onnx-fuse on the case once per session; later calls reuse the run."""
    run = _FUSE_RUNS.get(case.id)
    if run is None:
        binary = onnx_fuse_binary()
        workdir = tmp_path_factory.mktemp(case.stem)
        original = copy_case(case, workdir)
        output = workdir / f"{case.stem}.fused.onnx"
        report = workdir / f"{case.stem}.report.json"
        command = [binary, str(original), "-o", str(output), "--report", str(report), *case.args]
        returncode, stdout, stderr = run_binary(command, workdir)
        run = FuseRun(case, workdir, original, output, report, command, returncode, stdout, stderr)
        _FUSE_RUNS[case.id] = run
    return run


def fused_ok(case: Case, tmp_path_factory) -> FuseRun:
    """A successful run of onnx-fuse on case; fails the test otherwise."""
    run = fuse(case, tmp_path_factory)
    if run.returncode != 0:
        pytest.fail(f"onnx-fuse failed on {case.id}\n{run.describe()}", pytrace=False)
    if not run.output.is_file():
        pytest.fail(f"onnx-fuse exited 0 but wrote no {run.output.name}\n{run.describe()}", pytrace=False)
    if run.output.stat().st_size == 0:
        pytest.fail(f"onnx-fuse wrote an empty {run.output.name}\n{run.describe()}", pytrace=False)
    return run


def parametrize_cases(fn: Callable) -> Callable:
    return pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])(fn)


# ---------------------------------------------------------------------------
# Inputs


def elem_type_name(elem_type: int) -> str:
    return TensorProto.DataType.Name(elem_type)


def has_symbolic_dims(vi: onnx.ValueInfoProto) -> bool:
    tt = vi.type.tensor_type
    return tt.HasField("shape") and any(not d.HasField("dim_value") for d in tt.shape.dim)


def input_shape(case: Case, vi: onnx.ValueInfoProto, symbolic_dim: int = SYMBOLIC_DIMS[0]) -> tuple[int, ...]:
    if vi.name in case.input_shapes:
        return tuple(case.input_shapes[vi.name])
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        pytest.fail(
            f"{case.id}: graph input {vi.name!r} has no shape; give one in the case's input_shapes",
            pytrace=False,
        )
    return tuple(
        d.dim_value if d.HasField("dim_value") else symbolic_dim for d in tt.shape.dim
    )


def random_tensor(rng: np.random.Generator, elem_type: int, shape: tuple[int, ...]) -> np.ndarray:
    """Random values for an input; bfloat16 comes back as an ml_dtypes array."""
    if elem_type in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16):
        dtype = onnx.helper.tensor_dtype_to_np_dtype(elem_type)
        return rng.standard_normal(shape).astype(dtype)
    if elem_type == TensorProto.BFLOAT16:
        import ml_dtypes

        return rng.standard_normal(shape).astype(np.float32).astype(ml_dtypes.bfloat16)
    if elem_type == TensorProto.BOOL:
        return rng.integers(0, 2, shape).astype(bool)
    if elem_type == TensorProto.STRING:
        return np.array(
            [f"s{v}" for v in rng.integers(0, 100, int(np.prod(shape, dtype=np.int64)))], dtype=object
        ).reshape(shape)
    if elem_type in EXACT_TYPES:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(elem_type)
        return rng.integers(INT_LOW, INT_HIGH, shape).astype(dtype)
    pytest.fail(f"no random input generator for element type {elem_type_name(elem_type)}", pytrace=False)


def graph_inputs(model: onnx.ModelProto) -> tuple[list[onnx.ValueInfoProto], list[onnx.ValueInfoProto]]:
    """(required inputs, overridable inputs = graph inputs that also have an initializer)."""
    inits = {t.name for t in model.graph.initializer} | {
        sp.values.name for sp in model.graph.sparse_initializer
    }
    required = [i for i in model.graph.input if i.name not in inits]
    overridable = [i for i in model.graph.input if i.name in inits]
    return required, overridable


def make_feed_sets(case: Case, model: onnx.ModelProto) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(label, feeds) pairs: for each entry of case.feeds, one run with the
    required inputs and, if the model has overridable initializers, one more
    that also overrides those."""
    required, overridable = graph_inputs(model)
    for vi in required + overridable:
        if not vi.type.HasField("tensor_type"):
            pytest.fail(f"{case.id}: input {vi.name!r} is not a tensor; not supported yet", pytrace=False)
    sets = []
    symbolic = any(has_symbolic_dims(vi) for vi in required + overridable if vi.name not in case.input_shapes)
    for index, (fixed, symbolic_dim) in enumerate(
        (f, d) for f in case.feeds for d in (SYMBOLIC_DIMS if symbolic else SYMBOLIC_DIMS[:1])
    ):
        rng = np.random.default_rng([SEED, zlib.crc32(case.id.encode()), index])
        feeds = {}
        for vi in required:
            feeds[vi.name] = random_tensor(rng, vi.type.tensor_type.elem_type, input_shape(case, vi, symbolic_dim))
        extra = {}
        for vi in overridable:
            extra[vi.name] = random_tensor(rng, vi.type.tensor_type.elem_type, input_shape(case, vi, symbolic_dim))
        types = {vi.name: vi.type.tensor_type.elem_type for vi in required + overridable}
        for name, value in fixed.items():
            assert name in types, f"{case.id}: feeds name {name!r} is not a graph input"
            value = np.asarray(value)
            if types[name] != TensorProto.BFLOAT16:
                value = value.astype(onnx.helper.tensor_dtype_to_np_dtype(types[name]))
            (feeds if name in feeds else extra)[name] = value
        sets.append((f"feeds[{index}]", feeds))
        if extra:
            sets.append((f"feeds[{index}] + overridden initializers {sorted(extra)}", {**feeds, **extra}))
    return sets


# ---------------------------------------------------------------------------
# onnxruntime


def make_session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _bf16_to_ortvalue(arr) -> ort.OrtValue:
    bits = np.ascontiguousarray(arr).view(np.uint16)
    return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(bits, TensorProto.BFLOAT16)


def _ortvalue_to_numpy(value: ort.OrtValue):
    if value.is_tensor() and value.data_type() == "tensor(bfloat16)":
        import ml_dtypes

        shape = value.shape()
        count = int(np.prod(shape, dtype=np.int64))
        raw = ctypes.string_at(value.data_ptr(), 2 * count) if count else b""
        return np.frombuffer(raw, dtype=np.uint16).view(ml_dtypes.bfloat16).reshape(shape).copy()
    return value.numpy()


def run_model(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    """Outputs by name.  bfloat16 tensors go through OrtValues (numpy has no
    bfloat16 of its own, so plain InferenceSession.run refuses them)."""
    sess = make_session(path)
    names = [o.name for o in sess.get_outputs()]
    types = [i.type for i in sess.get_inputs()] + [o.type for o in sess.get_outputs()]
    if any("bfloat16" in t for t in types):
        bf16_inputs = {i.name for i in sess.get_inputs() if i.type == "tensor(bfloat16)"}
        if any(i.type == "tensor(string)" for i in sess.get_inputs()):
            pytest.fail(
                f"{path.name}: string inputs together with bfloat16 values cannot be fed through "
                "onnxruntime's python API (OrtValues take no strings)",
                pytrace=False,
            )
        ort_feeds = {
            k: _bf16_to_ortvalue(v) if k in bf16_inputs else ort.OrtValue.ortvalue_from_numpy(v)
            for k, v in feeds.items()
        }
        values = sess.run_with_ort_values(names, ort_feeds)
        outputs = [_ortvalue_to_numpy(v) for v in values]
    else:
        outputs = sess.run(names, feeds)
    return dict(zip(names, outputs))


# ---------------------------------------------------------------------------
# Comparison


def output_elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of each graph output (tensors, or the tensors in a sequence/optional)."""
    result = {}
    for vi in model.graph.output:
        t = vi.type
        while not t.HasField("tensor_type"):
            if t.HasField("sequence_type"):
                t = t.sequence_type.elem_type
            elif t.HasField("optional_type"):
                t = t.optional_type.elem_type
            else:
                break
        if t.HasField("tensor_type"):
            result[vi.name] = t.tensor_type.elem_type
    return result


def assert_same_value(where: str, expected, actual, elem_type: int | None) -> None:
    if isinstance(expected, (list, tuple)):
        assert isinstance(actual, (list, tuple)), f"{where}: expected a sequence, got {type(actual).__name__}"
        assert len(expected) == len(actual), f"{where}: sequence length {len(actual)} != {len(expected)}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            assert_same_value(f"{where}[{i}]", e, a, elem_type)
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected a map, got {type(actual).__name__}"
        assert sorted(expected) == sorted(actual), f"{where}: map keys differ"
        for k in expected:
            assert_same_value(f"{where}[{k!r}]", expected[k], actual[k], elem_type)
        return
    if expected is None or actual is None:
        assert expected is None and actual is None, f"{where}: optional presence differs"
        return
    expected, actual = np.asarray(expected), np.asarray(actual)
    assert actual.shape == expected.shape, f"{where}: shape {actual.shape} != original {expected.shape}"
    assert actual.dtype == expected.dtype, f"{where}: dtype {actual.dtype} != original {expected.dtype}"
    if elem_type in TOLERANCES:
        rtol, atol = TOLERANCES[elem_type]
        e64, a64 = expected.astype(np.float64), actual.astype(np.float64)
        close = np.isclose(a64, e64, rtol=rtol, atol=atol, equal_nan=True)
        if not close.all():
            bad = np.argwhere(~close)
            err = np.abs(a64 - e64)
            err[np.isnan(err)] = np.inf
            worst = np.unravel_index(np.argmax(np.where(close, -1, err)), e64.shape)
            pytest.fail(
                f"{where} ({elem_type_name(elem_type)}, rtol={rtol}, atol={atol}): "
                f"{len(bad)} of {expected.size} elements differ; worst at {tuple(int(i) for i in worst)}: "
                f"original {float(e64[worst])!r}, fused {float(a64[worst])!r}, |diff| {err[worst]:.3g}",
                pytrace=False,
            )
    elif elem_type in EXACT_TYPES:
        if not np.array_equal(actual, expected):
            bad = np.argwhere(actual != expected)
            first = tuple(int(i) for i in bad[0])
            pytest.fail(
                f"{where} ({elem_type_name(elem_type)}, exact): {len(bad)} of {expected.size} elements differ; "
                f"first at {first}: original {expected[first].item()!r}, fused {actual[first].item()!r}",
                pytrace=False,
            )
    else:
        name = elem_type_name(elem_type) if elem_type is not None else "unknown"
        pytest.fail(f"{where}: no comparison rule for element type {name}; add one to TOLERANCES", pytrace=False)


# ---------------------------------------------------------------------------
# Tests


@parametrize_cases
def test_fuse_runs(case: Case, tmp_path_factory):
    """The binary exits 0 and writes a non-empty output file."""
    fused_ok(case, tmp_path_factory)


def test_every_fixture_has_expected_firings():
    """A new fixture must say which built-in rules fire on it."""
    names = {p.name for p in FIXTURES_DIR.glob("*.onnx")}
    assert names == set(EXPECTED_BUILTIN_FIRINGS), (
        f"missing: {sorted(names - set(EXPECTED_BUILTIN_FIRINGS))}, "
        f"stale: {sorted(set(EXPECTED_BUILTIN_FIRINGS) - names)}"
    )


BUILTIN_FIXTURE_CASES = [c for c in CASES if not c.args and c.path.parent == FIXTURES_DIR]


@pytest.mark.parametrize("case", BUILTIN_FIXTURE_CASES, ids=[c.id for c in BUILTIN_FIXTURE_CASES])
def test_expected_rules_fire(case: Case, tmp_path_factory):
    """With the built-in rules, exactly the expected rules fire, as often as expected."""
    fused = fused_ok(case, tmp_path_factory)
    report = json.loads(fused.report.read_text())
    fired = {entry["rule"]: entry["count"] for entry in report["rules_fired"]}
    assert fired == EXPECTED_BUILTIN_FIRINGS.get(case.path.name), fused.describe()
    if not fired:
        # Nothing fired: the output is the input, byte for byte.
        assert fused.output.read_bytes() == fused.original.read_bytes(), "no rule fired, yet the bytes changed"


@parametrize_cases
def test_second_run_changes_nothing(case: Case, tmp_path_factory):
    """onnx-fuse on its own output (same arguments) writes the same bytes."""
    fused = fused_ok(case, tmp_path_factory)
    again = fused.workdir / f"{case.stem}.again.onnx"
    command = [onnx_fuse_binary(), str(fused.output), "-o", str(again), *case.args]
    returncode, stdout, stderr = run_binary(command, fused.workdir)
    assert returncode == 0, f"{' '.join(command)}\n{stderr}"
    assert again.read_bytes() == fused.output.read_bytes(), f"a second run changed {fused.output.name}"


@parametrize_cases
def test_output_checker(case: Case, tmp_path_factory):
    fused = fused_ok(case, tmp_path_factory)
    error = None
    try:
        onnx.checker.check_model(str(fused.output), full_check=True)
    except Exception as e:  # noqa: BLE001 - report any checker failure the same way
        error = f"{type(e).__name__}: {e}"
    if error:
        pytest.fail(f"onnx checker rejects {fused.output.name}: {error}", pytrace=False)


def _signature(values) -> list[tuple[str, str]]:
    """(name, full type) of each value, in order; compared exactly."""
    return [(v.name, onnx.helper.printable_type(v.type) + " | " + str(v.type).replace("\n", " ")) for v in values]


def _show(values) -> str:
    return ", ".join(onnx.helper.printable_value_info(v) for v in values) or "(none)"


@parametrize_cases
def test_output_signature(case: Case, tmp_path_factory):
    fused = fused_ok(case, tmp_path_factory)
    error = None
    try:
        output = onnx.load(str(fused.output))
    except Exception as e:  # noqa: BLE001
        error = f"{type(e).__name__}: {e}"
    if error:
        pytest.fail(f"onnx cannot load {fused.output.name}: {error}", pytrace=False)
    original = onnx.load(str(fused.original), load_external_data=False)
    for kind in ("input", "output"):
        want, got = getattr(original.graph, kind), getattr(output.graph, kind)
        if _signature(got) != _signature(want):
            pytest.fail(
                f"graph {kind}s differ\n  original: {_show(want)}\n  fused:    {_show(got)}"
                + (
                    "\n  (same names and printed types: the TypeProtos differ in detail, e.g. denotation)"
                    if _show(got) == _show(want)
                    else ""
                ),
                pytrace=False,
            )


@parametrize_cases
def test_output_numerics(case: Case, tmp_path_factory):
    fused = fused_ok(case, tmp_path_factory)
    original_model = onnx.load(str(fused.original), load_external_data=False)
    elem_types = output_elem_types(original_model)
    for label, feeds in make_feed_sets(case, original_model):
        expected = run_model(fused.original, feeds)
        error = None
        try:
            actual = run_model(fused.output, feeds)
        except Exception as e:  # noqa: BLE001
            error = f"{type(e).__name__}: {e}"
        if error:
            pytest.fail(f"onnxruntime cannot run {fused.output.name} ({label}): {error}", pytrace=False)
        if list(actual) != list(expected):
            pytest.fail(f"output names {list(actual)} != original {list(expected)}", pytrace=False)
        for name in expected:
            assert_same_value(
                f"{case.id} {label} output {name!r}", expected[name], actual[name], elem_types.get(name)
            )
