"""Class 4 of the hostile battery: kills.

A model with ~50 MB of external data (X[1, 4096] · W[4096, 3200] + b, which the built-in rules
turn into a Gemm, so that a new model and a new data file are written) is run with
`-o out.onnx` over an existing output pair made from other weights, or with --in-place, and
SIGKILL, SIGTERM or SIGINT arrives at a seeded random moment of the run. Afterwards:

- the process ended by that signal or exited with a documented code (never a crash signal);
- the input and its data file are byte for byte as they were;
- the output is there and loads, and computes either the old pair's result or the new one's
  (never a mix: the old model reading new data, or a half-written file);
- the next run, without a kill, succeeds, leaves no temporary file, and its output computes the
  new result.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import threading
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hostile_infra import (FULL, Spec, _same, check_process, file_digest, leftovers, oracle_probe, run_binary,
                           shell_quote, snapshot, signal_name)

K, N = 4096, 3200  # W is K x N float32: 52 MB
SEED = 4242
CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGTRAP,
                 signal.SIGSYS}

_lock = threading.Lock()


def big_model(path: Path, seed: int):
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((K, N), dtype=np.float32), "W")
    b = numpy_helper.from_array(rng.standard_normal(N).astype(np.float32), "b")
    nodes = [helper.make_node("MatMul", ["X", "W"], ["m"]), helper.make_node("Add", ["m", "b"], ["Y"])]
    g = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, K])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, N])], [w, b])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save_model(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=path.name + ".data", size_threshold=0)


def template(base: Path, binary: str) -> dict:
    """Built once per session: the input pair, an earlier output pair (other weights), the
    results of both, and how long a run takes."""
    with _lock:
        t = getattr(template, "cached", None)
        if t is not None:
            return t
        folder = base / "kill-template"
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "old").mkdir(parents=True)
        big_model(folder / "big.onnx", 1)
        big_model(folder / "old" / "big.onnx", 2)
        first = run_binary([binary, "big.onnx", "-o", "../out.onnx", "-q"], folder / "old", timeout=120)
        if first.returncode != 0:
            raise RuntimeError("making the earlier output pair failed:\n" + first.describe())
        timed = run_binary([binary, "big.onnx", "-o", "timed.onnx", "-q"], folder, timeout=120)
        if timed.returncode != 0:
            raise RuntimeError("a plain run on the kill model failed:\n" + timed.describe())
        new = oracle_probe(folder / "big.onnx", SEED, None, run=True, full_check=False)
        if not isinstance(new.get("run"), dict):
            raise RuntimeError(f"onnxruntime cannot run the kill model: {new}")
        old = oracle_probe(folder / "out.onnx", SEED, new["feeds"], run=True, full_check=False)
        if not isinstance(old.get("run"), dict):
            raise RuntimeError(f"onnxruntime cannot run the earlier output: {old}")
        for f in ("timed.onnx", "timed.onnx.data"):
            (folder / f).unlink(missing_ok=True)
        t = {
            "folder": folder,
            "feeds": new["feeds"],
            "new": new["run"],
            "old": old["run"],
            "seconds": timed.seconds,
            "digests": {f: file_digest(str(folder / f)) for f in ("big.onnx", "big.onnx.data")},
            "out_files": [p.name for p in folder.iterdir() if p.name.startswith("out.onnx")],
        }
        template.cached = t
        return t


def matches(result, expected) -> bool:
    return isinstance(result, dict) and all(_same(k, v, result.get(k)) is None for k, v in expected.items())


def kill_case(case_id: str, sig: int, in_place: bool) -> Spec:
    def run(work: Path, aux: Path, rng: random.Random, ctx: dict) -> list[str]:
        t = template(work.parent, ctx["binary"])
        for f in ("big.onnx", "big.onnx.data"):
            shutil.copyfile(t["folder"] / f, work / f)
        if not in_place:
            for f in t["out_files"]:
                shutil.copyfile(t["folder"] / f, work / f)
        target = "big.onnx" if in_place else "out.onnx"
        argv = [ctx["binary"], "big.onnx", *(["--in-place"] if in_place else ["-o", "out.onnx"])]
        # a moment of the run, a little past its usual end now and then
        delay = rng.uniform(0.0, 1.15 * t["seconds"])
        killed = run_binary(argv, work, kill_after=delay, kill_signal=sig)
        what = f"{signal_name(sig)} after {delay:.3f} s"
        problems = []
        if killed.signal is not None and killed.signal != sig:
            problems.append(f"{what}: ended by signal {signal_name(killed.signal)}" +
                            (" (a crash)" if killed.signal in CRASH_SIGNALS else ""))
        elif killed.signal is None:
            problems += [f"{what}: {p}" for p in check_process(killed, lines_ok=False)]
        if killed.timed_out:
            problems.append(f"{what}: hung")
        if not in_place:
            for f, digest in t["digests"].items():
                if not (work / f).is_file() or file_digest(str(work / f)) != digest:
                    problems.append(f"{what}: the input file {f} changed")
        if not (work / target).is_file():
            problems.append(f"{what}: data loss: {target} is gone")
        else:
            after = oracle_probe(work / target, SEED, t["feeds"], run=True, full_check=False)
            if "crash" in after or after.get("load"):
                problems.append(f"{what}: {target} does not load: {after.get('crash') or after.get('load')}")
            else:
                ok = matches(after.get("run"), t["new"]) or (not in_place and matches(after.get("run"), t["old"]))
                if not ok:
                    problems.append(f"{what}: {target} computes neither the old nor the new result: "
                                    f"{str(after.get('run'))[:300]}")
        # the next run succeeds and cleans up
        again = run_binary(argv, work)
        if again.returncode != 0:
            problems.append("the run after the kill failed:\n" + again.describe())
        else:
            left = leftovers(snapshot(work))
            if left:
                problems.append(f"temporary files left after the next run: {left}")
            final = oracle_probe(work / target, SEED, t["feeds"], run=True, full_check=False)
            if not matches(final.get("run"), t["new"]):
                problems.append(f"after the next run, {target} does not compute the new result: "
                                f"{str(final.get('run') or final)[:300]}")
        if problems:
            problems.append("  killed run: " + killed.describe().strip())
            problems.append(f"  files: {sorted(os.listdir(work))}")
            problems.append(f"  command: cd {work} && {' '.join(shell_quote(a) for a in argv)}")
        return problems

    return Spec(case_id, setup=lambda *a: None, run=run, cost=20.0)


def specs() -> list[Spec]:
    per_signal = 20 if FULL else 3
    out = []
    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
        for i in range(per_signal):
            out.append(kill_case(f"kill-{signal_name(sig)}-{i}", sig, in_place=False))
        for i in range(per_signal // 3 + 1):
            out.append(kill_case(f"kill-{signal_name(sig)}-in-place-{i}", sig, in_place=True))
    return out
