"""The hostile battery: onnx-fuse against hostile models, rule files, output targets and kills.

Every case runs the binary named by $ONNX_FUSE with a timeout and checks what issue 9 asks of
it: no crash, no hang, no peak memory past 1 GiB (of that process alone, from wait4), an exit
code of 0 to 4, and on a failure one readable `onnx-fuse: error:` line per error (no raw control
characters) with every file of the case's folder as it was (no output, no temporary file, the
inputs byte for byte); on a success, only the output (its data file, the report) changed, the
output loads, passes onnx.checker (full_check) when the input does, and computes what the input
computes in onnxruntime (seeded random inputs; rtol 1e-4, atol 1e-5 for float32) wherever
onnxruntime runs the input. The checker and onnxruntime run in a separate oracle process, so a
hostile model that crashes them cannot take the session down.

The cases are generated, seeded, by the hostile_*.py modules beside this file:

  model    hostile_models.py   fixtures truncated, bit-flipped, overwritten; built hostile models
  rules    hostile_rules.py    hostile rule files, `--no-builtin --rules FILE` and `rules check FILE`
  target   hostile_targets.py  -o, --report and --in-place at links, folders, FIFOs, devices, ...
  kill     hostile_kills.py    SIGKILL/SIGTERM/SIGINT during runs on a model with ~50 MB of data

They run in parallel (ONNX_FUSE_HOSTILE_JOBS processes, default: 2 x CPUs, at most CPUs + 4) when the first test
of this file asks for the results; each test then reports its case. A failing case keeps its
folder under pytest's basetemp. It is part of the test command (scripts/test).
ONNX_FUSE_HOSTILE_FULL=1 runs many more cases (minutes);
ONNX_FUSE_HOSTILE_TIMEOUT changes the per-run timeout (20 s by default, for a debug build).
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

import hostile_infra as H
import hostile_kills
import hostile_models
import hostile_rules
import hostile_targets

CLASSES = {
    "model": hostile_models.specs(),
    "rules": hostile_rules.specs(),
    "target": hostile_targets.specs(),
    "kill": hostile_kills.specs(),
}
SPECS = {s.id: s for specs in CLASSES.values() for s in specs}
assert len(SPECS) == sum(len(v) for v in CLASSES.values()), "duplicate hostile case ids"


def _ids(kind: str) -> list[str]:
    return [s.id for s in CLASSES[kind]]


@pytest.fixture(scope="session")
def hostile_results(request, tmp_path_factory):
    """Runs every selected hostile case once, in parallel; maps case id -> problems."""
    selected = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        value = callspec.params.get("hostile_case") if callspec is not None else None
        if isinstance(value, str) and value in SPECS:
            selected.append(value)
    try:
        ctx = {"binary": H.binary()}
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    base = tmp_path_factory.mktemp("hostile")
    start = time.monotonic()
    results = H.run_all([SPECS[i] for i in selected], base, H.default_jobs(), ctx)
    elapsed = time.monotonic() - start
    shutil.rmtree(base / "kill-template", ignore_errors=True)  # 150 MB of models
    lines = [f"hostile battery: {len(selected)} cases in {elapsed:.1f} s"]
    if os.environ.get("ONNX_FUSE_HOSTILE_PROFILE"):
        durations = sorted(ctx.get("durations", {}).items(), key=lambda kv: -kv[1])
        lines += [f"  {seconds:6.2f} s  {case_id}" for case_id, seconds in durations[:40]]
        kind_of = {s.id: k for k, v in CLASSES.items() for s in v}
        by_class: dict[str, float] = {}
        for case_id, seconds in durations:
            by_class[kind_of[case_id]] = by_class.get(kind_of[case_id], 0.0) + seconds
        lines.append(f"  case-seconds by class: { {k: round(v, 1) for k, v in by_class.items()} }")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capman = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capman is not None:
        with capman.global_and_fixture_disabled():
            reporter.write_line("")
            for line in lines:
                reporter.write_line(line)
    return results


def _check(case_id: str, results: dict):
    problems = results[case_id]
    if problems == ["skip"]:
        pytest.skip("not applicable here")
    if problems:
        pytest.fail(f"{case_id}:\n" + "\n".join(problems), pytrace=False)


@pytest.mark.parametrize("hostile_case", _ids("model"))
def test_hostile_model(hostile_case, hostile_results):
    _check(hostile_case, hostile_results)


@pytest.mark.parametrize("hostile_case", _ids("rules"))
def test_hostile_rules(hostile_case, hostile_results):
    _check(hostile_case, hostile_results)


@pytest.mark.parametrize("hostile_case", _ids("target"))
def test_hostile_output_target(hostile_case, hostile_results):
    _check(hostile_case, hostile_results)


@pytest.mark.parametrize("hostile_case", _ids("kill"))
def test_hostile_kill(hostile_case, hostile_results):
    _check(hostile_case, hostile_results)
