"""Checks a rewritten model against its original in onnxruntime, for scripts/bench.

Both models run on the CPU provider with graph optimizations off, on the same seeded random
inputs (float inputs standard normal, integer inputs 0 or 1, booleans random; a symbolic or
unknown dimension is 1). Every output of the original must come out of the rewritten model with
the same name, shape and type, and float outputs must agree elementwise within

    |out - ref| <= ATOL * max(1, max |ref|) + RTOL * |ref|

(NaNs in the same places), which leaves room for the rounding of folded float32 weights; other
outputs must be equal.

onnxruntime's session set-up grows faster than linearly with the number of nodes and
initializers (about 40 s for the 60,000-node chain, 100,000 initializers), so a main graph of more
than CHUNK_NODES nodes with no subgraphs is run in pieces: the nodes in topological order are cut
into runs of CHUNK_NODES, each run becomes a model of its own (its inputs the values it reads
from earlier runs, its initializers those it reads, its outputs the values later runs or the
graph's outputs read), and the pieces run one after the other, each fed what the ones before
produced. The kernels and so the numbers are the same as in one session.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

RTOL = 1e-3
ATOL = 1e-4
CHUNK_NODES = 2000


class Unsupported(Exception):
    """The model cannot be checked this way (an input of a type we cannot make up, ...)."""


@dataclass
class Verdict:
    ok: bool
    error: float  # the largest |out - ref| / max(1, max |ref|) over the outputs
    message: str


def _options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    return options


def _session(model: str | bytes) -> ort.InferenceSession:
    return ort.InferenceSession(model, _options(), providers=["CPUExecutionProvider"])


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The main graph's inputs that are not initializers (IR < 4 lists those as inputs too)."""
    initializers = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def random_feed(model_path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random values for the model's inputs."""
    model = onnx.load(str(model_path), load_external_data=False)
    rng = np.random.default_rng(seed)
    feed = {}
    for value in graph_inputs(model):
        if not value.type.HasField("tensor_type"):
            raise Unsupported(f"input {value.name!r} is not a tensor")
        elem = value.type.tensor_type.elem_type
        shape = [d.dim_value if d.HasField("dim_value") else 1 for d in value.type.tensor_type.shape.dim]
        try:
            dtype = helper.tensor_dtype_to_np_dtype(elem)
        except Exception as e:  # noqa: BLE001 - undefined or unknown type
            raise Unsupported(f"input {value.name!r} has element type {elem}") from e
        if dtype == np.bool_:
            feed[value.name] = rng.random(shape) < 0.5
        elif np.issubdtype(dtype, np.integer):
            feed[value.name] = rng.integers(0, 2, shape).astype(dtype)
        elif np.issubdtype(dtype, np.floating) or dtype.kind == "V":  # bfloat16 and float8 are ml_dtypes
            feed[value.name] = rng.standard_normal(shape).astype(np.float32).astype(dtype)
        else:
            raise Unsupported(f"input {value.name!r} has element type {np.dtype(dtype).name}")
    return feed


def run(model_path: Path, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's outputs by name, in onnxruntime with graph optimizations off."""
    header = onnx.load(str(model_path), load_external_data=False)
    names = [i.name for i in graph_inputs(header)]
    missing = [n for n in names if n not in feed]
    if missing:
        raise Unsupported(f"the model has inputs the original does not: {', '.join(missing)}")
    feed = {n: feed[n] for n in names}
    if len(header.graph.node) <= CHUNK_NODES or _has_subgraphs(header.graph):
        session = _session(str(model_path))
        return dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
    del header
    return _run_in_pieces(onnx.load(str(model_path)), feed)


def _has_subgraphs(graph: onnx.GraphProto) -> bool:
    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
               for n in graph.node for a in n.attribute)


def _topological(graph: onnx.GraphProto, available: set[str]) -> list[onnx.NodeProto]:
    """The nodes in an order where each reads only what is available or produced before it
    (the file's order when that already is one)."""
    nodes = list(graph.node)
    known = set(available)
    in_order = True
    for node in nodes:
        if any(i and i not in known for i in node.input):
            in_order = False
            break
        known.update(node.output)
    if in_order:
        return nodes
    producer = {o: k for k, n in enumerate(nodes) for o in n.output if o}
    waiting = [sum(1 for i in set(n.input) if i in producer and i not in available) for n in nodes]
    readers: dict[int, list[int]] = {}
    for k, n in enumerate(nodes):
        for i in set(n.input):
            if i in producer and i not in available:
                readers.setdefault(producer[i], []).append(k)
    ready = deque(k for k, w in enumerate(waiting) if w == 0)
    order = []
    while ready:
        k = ready.popleft()
        order.append(nodes[k])
        for r in readers.get(k, []):
            waiting[r] -= 1
            if waiting[r] == 0:
                ready.append(r)
    if len(order) != len(nodes):
        raise Unsupported("the graph has a cycle")
    return order


def _run_in_pieces(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer if t.name not in feed}
    outputs = [o.name for o in graph.output]
    nodes = _topological(graph, set(feed) | set(initializers) | {""})
    last_read: dict[str, int] = {}
    for k, node in enumerate(nodes):
        for i in node.input:
            last_read[i] = k
    for name in outputs:
        last_read[name] = len(nodes)
    values = dict(feed)
    for start in range(0, len(nodes), CHUNK_NODES):
        piece = nodes[start:start + CHUNK_NODES]
        end = start + len(piece)
        produced, reads = set(), {}
        for node in piece:
            for i in node.input:
                if i and i not in produced:
                    reads.setdefault(i, None)
            produced.update(o for o in node.output if o)
        inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(values[n].dtype), values[n].shape)
                  for n in reads if n in values]
        weights = [initializers[n] for n in reads if n not in values and n in initializers]
        unknown = [n for n in reads if n not in values and n not in initializers]
        if unknown:
            raise Unsupported(f"value {unknown[0]!r} is read before it is produced")
        wanted = [o for node in piece for o in node.output if o and last_read.get(o, -1) >= end]
        sub = helper.make_model(helper.make_graph(piece, f"piece_{start}", inputs,
                                                  [helper.make_empty_tensor_value_info(o) for o in wanted], weights),
                                opset_imports=model.opset_import, ir_version=model.ir_version)
        sub.functions.extend(model.functions)
        session = _session(sub.SerializeToString())
        results = session.run(wanted, {i.name: values[i.name] for i in inputs})
        values.update(zip(wanted, results))
        for name in [n for n in values if last_read.get(n, -1) < end]:
            del values[name]
    result = {}
    for name in outputs:
        if name in values:
            result[name] = values[name]
        elif name in initializers:
            result[name] = numpy_helper.to_array(initializers[name])
        else:
            raise Unsupported(f"output {name!r} is never produced")
    return result


def compare(reference: dict[str, np.ndarray], result: dict[str, np.ndarray], names: list[str]) -> Verdict:
    """Checks `result` against `reference` on the original's outputs `names`."""
    worst = 0.0
    for name in names:
        if name not in result:
            return Verdict(False, worst, f"output {name!r} is missing")
        ref, out = reference[name], result[name]
        if ref.shape != out.shape or ref.dtype != out.dtype:
            return Verdict(False, worst, f"output {name!r} is {out.dtype}{list(out.shape)}, "
                                         f"the original's {ref.dtype}{list(ref.shape)}")
        if ref.dtype.kind == "f" or ref.dtype.kind == "V":
            x, y = ref.astype(np.float64), out.astype(np.float64)
            if not np.array_equal(np.isnan(x), np.isnan(y)):
                return Verdict(False, worst, f"output {name!r} has NaNs in other places")
            finite = ~np.isnan(x)
            x, y = x[finite], y[finite]
            if x.size == 0:
                continue
            scale = max(1.0, float(np.max(np.abs(x), initial=0.0)))
            with np.errstate(invalid="ignore"):
                delta = np.abs(y - x)
                delta[x == y] = 0.0  # equal infinities
            error = float(np.max(delta)) / scale
            worst = max(worst, error)
            if not np.all(delta <= ATOL * scale + RTOL * np.abs(x)):
                return Verdict(False, worst, f"output {name!r} differs by up to {error:.2g} of its scale "
                                             f"(tolerance {ATOL:g} of the scale + {RTOL:g} relative)")
        elif not np.array_equal(ref, out):
            return Verdict(False, worst, f"output {name!r} differs")
    return Verdict(True, worst, "ok")


def output_names(model_path: Path) -> list[str]:
    return [o.name for o in onnx.load(str(model_path), load_external_data=False).graph.output]
