"""The reference kernels against onnxruntime, and --verify on every fixture.

  * test_reference_kernels_agree_with_onnxruntime
        `onnx-fuse evaluate FIXTURE -o DATA.onnx` runs the fixture with the reference
        kernels (what --verify compares) on its seeded inputs; onnxruntime runs the
        same fixture on the same inputs; the outputs agree within the suite's bounds.
        The fixtures the kernels cannot run are listed, with the reason.
  * test_verify_model_passes
        `onnx-fuse FIXTURE --verify=model` with the built-in rules: every rewrite is
        checked and within tolerance, the whole models agree (or cannot be run, for
        the fixtures listed), and the report says so per rule.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from test_conformance import (
    BUILTIN_FIXTURE_CASES,
    Case,
    assert_same_value,
    copy_case,
    onnx_fuse_binary,
    output_elem_types,
    run_binary,
    run_model,
)

# What the reference kernels cannot run, and why (exit code 2 from `onnx-fuse evaluate`).
NOT_EVALUATED = {
    "functions_training.onnx": "no kernel for com.example.ScaledRelu",
    "if_subgraph.onnx": "If 'if' has subgraphs, which the evaluator does not run",
}

# Outputs where onnxruntime departs from the operator's definition, which the kernels follow:
# these are compared with onnx's own reference evaluator instead.
ORT_DEPARTS = {
    # BatchNormalization with a variance of 0 and epsilon 0: the definition divides X - mean by
    # 0 (±inf); onnxruntime multiplies by the infinite factor and subtracts mean × it (inf - inf = NaN).
    ("conv_bn_traps.onnx", "inf_Y"): "a zero variance with epsilon 0",
}

CASE_IDS = [c.id for c in BUILTIN_FIXTURE_CASES]


@pytest.mark.parametrize("case", BUILTIN_FIXTURE_CASES, ids=CASE_IDS)
def test_reference_kernels_agree_with_onnxruntime(case: Case, tmp_path: Path):
    original = copy_case(case, tmp_path)
    data = tmp_path / "data.onnx"
    code, _, stderr = run_binary([onnx_fuse_binary(), "evaluate", str(original), "-o", str(data)], tmp_path)
    if case.path.name in NOT_EVALUATED:
        assert code == 2, stderr
        assert NOT_EVALUATED[case.path.name] in stderr, stderr
        assert not data.exists()
        return
    assert code == 0, stderr
    tensors = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(data)).graph.initializer}
    model = onnx.load(str(original), load_external_data=False)
    initialized = {t.name for t in model.graph.initializer}
    feeds = {i.name: tensors[i.name] for i in model.graph.input if i.name not in initialized}
    expected = run_model(original, feeds)
    elem_types = output_elem_types(model)
    for output in model.graph.output:
        reference = "onnxruntime"
        if (case.path.name, output.name) in ORT_DEPARTS:
            from onnx.reference import ReferenceEvaluator

            with np.errstate(divide="ignore", invalid="ignore"):
                expected[output.name] = ReferenceEvaluator(model).run([output.name], feeds)[0]
            reference = "onnx.reference"
        assert_same_value(f"{case.id} output {output.name!r} (reference kernels vs {reference})",
                          expected[output.name], tensors[output.name], elem_types.get(output.name))


@pytest.mark.parametrize("case", BUILTIN_FIXTURE_CASES, ids=CASE_IDS)
def test_verify_model_passes(case: Case, tmp_path: Path):
    original = copy_case(case, tmp_path)
    report = tmp_path / "report.json"
    command = [onnx_fuse_binary(), str(original), "-o", str(tmp_path / "out.onnx"), "--verify=model", "--report", str(report)]
    code, _, stderr = run_binary(command, tmp_path)
    assert code == 0, stderr
    verification = json.loads(report.read_text())["verification"]
    assert verification["failures"] == [], stderr
    fired = {entry["rule"]: entry["count"] for entry in json.loads(report.read_text())["rules_fired"]}
    checked = {rule["rule"]: rule["checked"] + rule["not_verified"] for rule in verification["rules"]}
    assert checked == fired, stderr
    not_verified = {rule["rule"]: rule["first_not_verified_reason"] for rule in verification["rules"] if rule["not_verified"]}
    assert not_verified == {}, stderr
    whole = verification["whole_model"]
    if case.path.name in NOT_EVALUATED:
        assert whole["outcome"] == "not_run" and NOT_EVALUATED[case.path.name] in whole["reason"], whole
    else:
        assert whole["outcome"] == "agree", whole
