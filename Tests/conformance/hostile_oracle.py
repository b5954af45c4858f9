"""The oracle of the hostile battery (test_hostile.py), run as a separate process.

Hostile models are fed to the onnx checker and onnxruntime only in this process: a crash, a
hang or a huge allocation there (onnx's shape inference and onnxruntime are not built for
hostile input) must not take the test session down. The parent (hostile_infra.oracle_probe)
sends one pickled request, prefixed by its length, on stdin and reads one answer the same way
on stdout; it kills and restarts the process when a request takes too long or the process dies.

Requests:
  ("probe", path, seed, feeds, run, full_check)
      load the model (external data included), run the checker (with full_check when asked),
      and when `run`, run it in onnxruntime on `feeds` (None: seeded random feeds made from the
      model's inputs, returned too, and the model run twice to notice nondeterminism).
Answer: a dict {"load": err|None, "check": err|None, "check_basic": err|None,
                "feeds": {...}|None, "run": {name: array}|err-string|None,
                "run2": second run of the same feeds (nondeterminism check), "outputs": [...]}
"""

from __future__ import annotations

import os
import pickle
import resource
import struct
import sys

import numpy as np

# An allocation past this fails instead of taking the machine down.
resource.setrlimit(resource.RLIMIT_AS, (12 << 30, 12 << 30))

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto  # noqa: E402

MAX_FEED_ELEMENTS = 1 << 20
SYMBOLIC_DIM = 1


def _err(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}"
    return text if len(text) < 600 else text[:600] + "..."


def make_feeds(model: onnx.ModelProto, seed: int):
    """Seeded random feeds for the required inputs, or a string saying why not."""
    inits = {t.name for t in model.graph.initializer} | {s.values.name for s in model.graph.sparse_initializer}
    rng = np.random.default_rng([seed, 7])
    feeds = {}
    total = 0
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        if not vi.type.HasField("tensor_type"):
            return "a non-tensor input"
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            return f"input {vi.name!r} has no shape"
        shape = tuple(d.dim_value if d.HasField("dim_value") else SYMBOLIC_DIM for d in tt.shape.dim)
        if any(d < 0 for d in shape):
            return "a negative input dimension"
        count = int(np.prod(shape, dtype=np.float64)) if shape else 1
        total += count
        if total > MAX_FEED_ELEMENTS:
            return "inputs too large"
        et = tt.elem_type
        if et in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16):
            value = rng.standard_normal(shape).astype(onnx.helper.tensor_dtype_to_np_dtype(et))
        elif et == TensorProto.BOOL:
            value = rng.integers(0, 2, shape).astype(bool)
        elif et in (TensorProto.INT8, TensorProto.INT16, TensorProto.INT32, TensorProto.INT64,
                    TensorProto.UINT8, TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64):
            value = rng.integers(0, 4, shape).astype(onnx.helper.tensor_dtype_to_np_dtype(et))
        else:
            return f"input element type {et}"
        feeds[vi.name] = value
    return feeds


def session(path: str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 4
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def probe(path: str, seed: int, feeds, run: bool, full_check: bool):
    answer = {"load": None, "check": None, "check_basic": None, "feeds": None, "run": None, "run2": None,
              "outputs": None}
    try:
        model = onnx.load(path)
    except BaseException as e:  # noqa: BLE001
        answer["load"] = _err(e)
        return answer
    answer["outputs"] = [(o.name, o.type.SerializeToString()) for o in model.graph.output]
    try:
        onnx.checker.check_model(model, full_check=False)
    except BaseException as e:  # noqa: BLE001
        answer["check_basic"] = _err(e)
    if full_check:
        try:
            onnx.checker.check_model(path, full_check=True)
        except BaseException as e:  # noqa: BLE001
            answer["check"] = _err(e)
    if not run:
        return answer
    if feeds is None:
        feeds = make_feeds(model, seed)
        answer["feeds"] = feeds
        if isinstance(feeds, str):
            return answer
    del model
    try:
        sess = session(path)
        names = [o.name for o in sess.get_outputs()]
        answer["run"] = dict(zip(names, sess.run(names, feeds)))
        if answer["feeds"] is not None:  # the input: run twice to notice nondeterministic models
            answer["run2"] = dict(zip(names, sess.run(names, feeds)))
    except BaseException as e:  # noqa: BLE001
        answer["run"] = _err(e)
    return answer


def main() -> None:
    stdin = sys.stdin.buffer
    # onnxruntime and onnx may write to fd 1; keep the answer channel private.
    answer_fd = os.dup(1)
    os.dup2(2, 1)
    out = os.fdopen(answer_fd, "wb")
    while True:
        header = stdin.read(8)
        if len(header) < 8:
            return
        (size,) = struct.unpack("<Q", header)
        request = pickle.loads(stdin.read(size))
        kind, args = request[0], request[1:]
        if kind == "probe":
            result = probe(*args)
        else:
            result = {"error": f"unknown request {kind!r}"}
        data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(struct.pack("<Q", len(data)) + data)
        out.flush()


if __name__ == "__main__":
    main()
