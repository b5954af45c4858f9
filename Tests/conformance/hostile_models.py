"""Class 1 of the hostile battery: hostile models.

Mutations of every fixture (truncated, bits flipped, byte runs overwritten, bytes inserted) and
models built to hurt: huge, negative and overflowing dims, absurd counts, deep If/Loop/type
nesting, 100k-attribute nodes, 20k readers of one value, long chains, cycles, duplicate names,
missing inputs, unknown operators and domains, constant folding of values that overflow, divide
by zero or have no valid result, external-data path tricks, odd IR and opset versions, and
models that are not regular files. Each runs with the built-in rules and with --no-builtin.
"""

from __future__ import annotations

import os
import random
import shutil
import stat
import struct
import sys
import threading
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hostile_infra import FIXTURES, FULL, IS_ROOT, REPO, Inv, Spec

sys.path.insert(0, str(REPO / "scripts"))
from wire import field_bytes, field_varint, varint  # noqa: E402  (the fixture generators' wire encoding)

# Sizes of the "many" cases: the sizes with ONNX_FUSE_HOSTILE_FULL=1 (meant for a release
# build: a debug build is up to 200 times slower on them), a tenth by default.
MANY = 20_000 if FULL else 2_000
CHAIN = 100_000 if FULL else 10_000

I64_MAX = (1 << 63) - 1
I64_MIN = -(1 << 63)

# ---------------------------------------------------------------------------
# Raw protobuf wire encoding (what the python protobuf API refuses to build, and fast nesting)


fv = field_varint


def fb(field: int, payload) -> bytes:
    return field_bytes(field, payload.encode() if isinstance(payload, str) else payload)


def ff(field: int, value: float) -> bytes:
    return varint(field << 3 | 5) + struct.pack("<f", value)


FLOAT, INT64, BOOL = 1, 7, 9


def w_dim(d) -> bytes:
    return fb(1, fv(1, d) if isinstance(d, int) else fb(2, d))


def w_tensor_type(elem: int, dims=None) -> bytes:
    body = fv(1, elem)
    if dims is not None:
        body += fb(2, b"".join(w_dim(d) for d in dims))
    return fb(1, body)


def w_value_info(name: str, type_bytes: bytes | None = None) -> bytes:
    return fb(1, name) + (fb(2, type_bytes) if type_bytes is not None else b"")


def w_attr_int(name, v) -> bytes:
    return fb(1, name) + fv(3, v) + fv(20, 2)


def w_attr_float(name, v) -> bytes:
    return fb(1, name) + ff(2, v) + fv(20, 1)


def w_attr_graph(name, g: bytes) -> bytes:
    return fb(1, name) + fb(6, g) + fv(20, 5)


def w_attr_ints(name, vs) -> bytes:
    return fb(1, name) + b"".join(fv(8, v) for v in vs) + fv(20, 7)


def w_node(op, inputs, outputs, attrs=(), name=None, domain=None) -> bytes:
    return (b"".join(fb(1, i) for i in inputs) + b"".join(fb(2, o) for o in outputs)
            + (fb(3, name) if name is not None else b"") + fb(4, op) + b"".join(fb(5, a) for a in attrs)
            + (fb(7, domain) if domain is not None else b""))


def w_tensor(name, dtype, dims, raw: bytes | None = None, extra: bytes = b"") -> bytes:
    return (b"".join(fv(1, d) for d in dims) + fv(2, dtype) + fb(8, name)
            + (fb(9, raw) if raw is not None else b"") + extra)


def w_graph(nodes, name, inputs=(), outputs=(), inits=(), value_info=()) -> bytes:
    return (b"".join(fb(1, n) for n in nodes) + fb(2, name) + b"".join(fb(5, t) for t in inits)
            + b"".join(fb(11, i) for i in inputs) + b"".join(fb(12, o) for o in outputs)
            + b"".join(fb(13, v) for v in value_info))


def w_model(graph: bytes | None, opsets=(("", 17),), ir: int | None = 8, extra: bytes = b"") -> bytes:
    return ((fv(1, ir) if ir is not None else b"") + fb(2, "hostile")
            + b"".join(fb(8, fb(1, d) + fv(2, v)) for d, v in opsets)
            + (fb(7, graph) if graph is not None else b"") + extra)


# ---------------------------------------------------------------------------
# Helpers


def vi(name, elem=TensorProto.FLOAT, shape=None):
    return helper.make_tensor_value_info(name, elem, shape)


def make(nodes, inputs, outputs, inits=(), opset=17, ir=8, extra_opsets=(), functions=()):
    g = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset), *extra_opsets],
                          functions=list(functions))
    m.ir_version = ir
    return m


def init(name, array) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def write(work: Path, name: str, data) -> str:
    path = work / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, (bytes, bytearray)) else data.SerializeToString())
    return name


def copy_fixture(fixture: str, work: Path, dest: str | None = None) -> str:
    """Copies a fixture (and external_data.onnx's data file) into work."""
    dest = dest or fixture
    shutil.copyfile(FIXTURES / fixture, work / dest)
    if fixture == "external_data.onnx":
        shutil.copyfile(FIXTURES / "external_data.onnx.data", work / "external_data.onnx.data")
    return dest


def conv_bn_model(w_external=None) -> onnx.ModelProto:
    """X[1,3,6,6] -> Conv(W[4,3,3,3], B) -> BatchNormalization -> Y: the fold target."""
    rng = np.random.default_rng(5)
    W = init("W", rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    inits = [W, init("B", rng.standard_normal(4).astype(np.float32)),
             init("s", rng.random(4).astype(np.float32) + 0.5), init("t", rng.standard_normal(4).astype(np.float32)),
             init("m", rng.standard_normal(4).astype(np.float32)), init("v", rng.random(4).astype(np.float32) + 0.5)]
    nodes = [helper.make_node("Conv", ["X", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "t", "m", "v"], ["Y"], name="bn")]
    return make(nodes, [vi("X", shape=[1, 3, 6, 6])], [vi("Y", shape=[1, 4, 6, 6])], inits)


def external(m: onnx.ModelProto, tensor: str, location, offset=None, length=None, extra=()) -> bytes:
    """Moves initializer `tensor` out to external data described by the given (raw) keys;
    returns its bytes (to write into the data file)."""
    for t in m.graph.initializer:
        if t.name == tensor:
            data = t.raw_data or numpy_helper.to_array(t).tobytes()
            t.ClearField("raw_data")
            t.ClearField("float_data")
            t.data_location = TensorProto.EXTERNAL
            del t.external_data[:]
            if location is not None:
                e = t.external_data.add()
                e.key, e.value = "location", location
            if offset is not None:
                e = t.external_data.add()
                e.key, e.value = "offset", str(offset)
            if length is not None:
                e = t.external_data.add()
                e.key, e.value = "length", str(length)
            for k, v in extra:
                e = t.external_data.add()
                e.key, e.value = k, v
            return data
    raise KeyError(tensor)


# ---------------------------------------------------------------------------
# Mutations of the fixtures


def fixture_names() -> list[str]:
    return sorted(p.name for p in FIXTURES.glob("*.onnx"))


def mutate(data: bytes, kind: str, rng: random.Random) -> bytes:
    b = bytearray(data)
    if kind == "trunc":
        return bytes(b[: rng.randrange(len(b))])
    if kind == "flip":
        for _ in range(rng.choice([1, 1, 2, 3, 8])):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == "run":
        n = rng.choice([1, 2, 4, 8, 16, 64])
        i = rng.randrange(len(b))
        fill = rng.choice([0x00, 0xFF, 0x80, 0x7F, None])
        for j in range(i, min(len(b), i + n)):
            b[j] = rng.randrange(256) if fill is None else fill
        return bytes(b)
    if kind == "insert":
        i = rng.randrange(len(b) + 1)
        n = rng.choice([1, 3, 10, 100])
        return bytes(b[:i]) + bytes(rng.choice([rng.randrange(256), 0xFF, 0x80]) for _ in range(n)) + bytes(b[i:])
    raise ValueError(kind)


def model_args(rng: random.Random, builtin: bool) -> list[str]:
    args = [] if builtin else ["--no-builtin"]
    if rng.random() < 0.15:
        args.append("--infer-shapes")
    if rng.random() < 0.1:
        args.append("--freeze-initializer-inputs")
    if rng.random() < 0.1:
        args += ["--fold-limit", str(rng.choice([0, 1, 1 << 30]))]
    return args


def mutation_spec(fixture: str, kind: str, index: int) -> Spec:
    case_id = f"mutate-{kind}-{fixture[:-5]}-{index}"

    def setup(work: Path, aux: Path, rng: random.Random) -> Inv:
        name = copy_fixture(fixture, work)
        (work / name).write_bytes(mutate((FIXTURES / fixture).read_bytes(), kind, rng))
        if fixture == "external_data.onnx" and rng.random() < 0.3:
            data = (work / "external_data.onnx.data").read_bytes()
            (work / "external_data.onnx.data").write_bytes(mutate(data, rng.choice(["flip", "trunc", "run"]), rng))
        builtin = rng.random() < 0.5
        args = [name, "-o", "out.onnx", *model_args(rng, builtin)]
        report = None
        if rng.random() < 0.15:
            report = "report.json"
            args += ["--report", report]
        return Inv(argv=args, model=name, output="out.onnx", report=report)

    return Spec(case_id, setup)


def mutation_specs() -> list[Spec]:
    per_kind = {"trunc": 2, "flip": 2, "run": 1, "insert": 1}
    if FULL:
        per_kind = {k: v * 8 for k, v in per_kind.items()}
    specs = []
    for fixture in fixture_names():
        for kind, n in per_kind.items():
            specs += [mutation_spec(fixture, kind, i) for i in range(n)]
    return specs


# ---------------------------------------------------------------------------
# Built models. Each builder writes its files into work and returns a dict: "model" (relative
# path, default m.onnx), and optionally "numeric" (False where the input's result is undefined)
# and "args" (more arguments).

BUILDERS: dict[str, callable] = {}


def builder(name):
    def register(fn):
        assert name not in BUILDERS, name
        BUILDERS[name] = fn
        return fn
    return register


def simple(name, model_fn, numeric=True):
    @builder(name)
    def build(work, aux, rng):
        write(work, "m.onnx", model_fn())
        return {"numeric": numeric}


# --- huge, negative and overflowing dims; absurd counts -----------------------------------

def _tensor_model(tensor_bytes: bytes, use_as="B") -> bytes:
    """X[1,3,6,6] -> Conv(W, B=tensor) -> BN: the hostile tensor is read by the fold rule."""
    m = conv_bn_model()
    inits = [t for t in m.graph.initializer if t.name != use_as]
    nodes = b"".join(fb(1, n.SerializeToString()) for n in m.graph.node)
    g = (nodes + fb(2, "g") + b"".join(fb(5, t.SerializeToString()) for t in inits) + fb(5, tensor_bytes)
         + b"".join(fb(11, i.SerializeToString()) for i in m.graph.input)
         + b"".join(fb(12, o.SerializeToString()) for o in m.graph.output))
    return w_model(g)


for _name, _dims, _raw in [
    ("dims-2^40x2^40", [1 << 40, 1 << 40], b"\0" * 16),
    ("dims-product-overflow", [1 << 62, 4], b"\0" * 16),
    ("dims-int64-max", [I64_MAX], b"\0" * 16),
    ("dims-negative", [-4], b"\0" * 16),
    ("dims-int64-min", [I64_MIN], b"\0" * 16),
    ("dims-zero-and-huge", [0, 1 << 62], b""),
    ("dims-rank-1000", [1] * 999 + [4], b"\0" * 16),
    ("dims-rank-100000", [1] * 99999 + [4], b"\0" * 16),
    ("dims-2^31-cubed", [1 << 31] * 3, b"\0" * 16),
    ("dims-wrapping-to-4", [1 << 32, 1 << 32, 4], b"\0" * 16),
    ("dims-none", [], b"\0" * 16),
]:
    def _fn(dims=_dims, raw=_raw):
        return _tensor_model(w_tensor("B", FLOAT, dims, raw))
    simple(_name, _fn)

for _name, _tensor in [
    ("data-type-999", w_tensor("B", 999, [4], b"\0" * 16)),
    ("data-type-undefined", w_tensor("B", 0, [4], b"\0" * 16)),
    ("data-type-string-raw", w_tensor("B", 8, [4], b"\0" * 16)),
    ("float-data-count-short", w_tensor("B", FLOAT, [4]) + b"".join(ff(4, 1.0) for _ in range(3))),
    ("float-data-count-long", w_tensor("B", FLOAT, [4]) + b"".join(ff(4, 1.0) for _ in range(100000))),
    ("int64-data-for-float", w_tensor("B", FLOAT, [4]) + b"".join(fv(7, 1) for _ in range(4))),
    ("packed-count-absurd", w_tensor("B", FLOAT, [4]) + varint(4 << 3 | 2) + varint(1 << 40) + b"\0" * 16),
    ("packed-float-ragged", w_tensor("B", FLOAT, [4]) + fb(4, b"\0" * 15)),
    ("raw-and-float-data", w_tensor("B", FLOAT, [4], b"\0" * 16) + ff(4, 1.0)),
    ("string-data-for-float", w_tensor("B", FLOAT, [4]) + b"".join(fb(6, "x") for _ in range(4))),
    ("segment-field", w_tensor("B", FLOAT, [4], b"\0" * 16) + fb(3, fv(1, 0) + fv(2, 1 << 62))),
    ("name-empty", w_tensor("", FLOAT, [4], b"\0" * 16)),
    ("data-location-7", w_tensor("B", FLOAT, [4], b"\0" * 16) + fv(14, 7)),
    ("data-location-external-no-keys", w_tensor("B", FLOAT, [4]) + fv(14, 1)),
]:
    def _fn(t=_tensor):
        return _tensor_model(t)
    simple(_name, _fn)


@builder("input-dims-huge-shape-arithmetic")
def _(work, aux, rng):
    # Shape(X) of a static 2^40 x 2^40 x 2^40 input, multiplied out: int64 overflow in folding.
    nodes = [helper.make_node("Shape", ["X"], ["s"]),
             helper.make_node("ReduceProd", ["s"], ["p"], keepdims=0),
             helper.make_node("Mul", ["s", "s"], ["q"]),
             helper.make_node("Add", ["p", "one"], ["Y"]),
             helper.make_node("CumSum", ["q", "zero"], ["Z"])]
    m = make(nodes, [vi("X", shape=[1 << 40, 1 << 40, 1 << 40])],
             [vi("Y", TensorProto.INT64, []), vi("Z", TensorProto.INT64, [3])],
             [init("one", np.int64(1)), init("zero", np.int64(0))], opset=17)
    write(work, "m.onnx", m)
    return {"numeric": False}


@builder("input-dims-negative")
def _(work, aux, rng):
    m = make([helper.make_node("Relu", ["X"], ["Y"])], [vi("X", shape=[-5, 3])], [vi("Y", shape=[-5, 3])])
    write(work, "m.onnx", m)
    return {}


@builder("input-shape-overflow-reshape")
def _(work, aux, rng):
    nodes = [helper.make_node("Reshape", ["X", "shape"], ["Y"])]
    m = make(nodes, [vi("X", shape=[1 << 62, 4])], [vi("Y")], [init("shape", np.array([-1, 1 << 62], np.int64))])
    write(work, "m.onnx", m)
    return {"numeric": False}


# --- constant folding of values with no good result ---------------------------------------

def fold_case(name, op, inputs, out_elem, attrs=None, numeric=True, opset=17, n_out=1):
    def fn():
        names = [f"c{i}" for i in range(len(inputs))]
        inits = [init(n, v) for n, v in zip(names, inputs) if v is not None]
        node_inputs = [n if v is not None else "" for n, v in zip(names, inputs)]
        outs = [f"Y{i}" for i in range(n_out)]
        node = helper.make_node(op, node_inputs, outs, **(attrs or {}))
        # the folded value also feeds an Identity, so both a graph output and a reader exist
        nodes = [node, helper.make_node("Identity", ["Y0"], ["Z"])]
        return make(nodes, [], [vi(o, out_elem) for o in outs] + [vi("Z", out_elem)], inits, opset=opset)
    simple(f"fold-{name}", fn, numeric)


i64 = lambda *v: np.array(v, dtype=np.int64)  # noqa: E731
i32 = lambda *v: np.array(v, dtype=np.int32)  # noqa: E731
f32 = lambda *v: np.array(v, dtype=np.float32)  # noqa: E731

fold_case("div-int-by-zero", "Div", [i64(1, 2, 3), i64(0, 1, 0)], TensorProto.INT64, numeric=False)
fold_case("div-int-min-by-minus-one", "Div", [i64(I64_MIN), i64(-1)], TensorProto.INT64, numeric=False)
fold_case("div-int32-min-by-minus-one", "Div", [i32(-(1 << 31)), i32(-1)], TensorProto.INT32, numeric=False)
fold_case("mod-int-by-zero", "Mod", [i64(5, 7), i64(0, 0)], TensorProto.INT64, numeric=False)
fold_case("mod-int-min-by-minus-one", "Mod", [i64(I64_MIN), i64(-1)], TensorProto.INT64, numeric=False)
fold_case("fmod-int-min-by-minus-one", "Mod", [i64(I64_MIN), i64(-1)], TensorProto.INT64, {"fmod": 1}, numeric=False)
fold_case("add-int-overflow", "Add", [i64(I64_MAX), i64(1)], TensorProto.INT64, numeric=False)
fold_case("sub-int-overflow", "Sub", [i64(I64_MIN), i64(1)], TensorProto.INT64, numeric=False)
fold_case("mul-int-overflow", "Mul", [i64(I64_MAX), i64(2)], TensorProto.INT64, numeric=False)
fold_case("mul-int32-overflow", "Mul", [i32(1 << 30), i32(4)], TensorProto.INT32, numeric=False)
fold_case("neg-int-min", "Neg", [i64(I64_MIN)], TensorProto.INT64, numeric=False)
fold_case("abs-int-min", "Abs", [i64(I64_MIN)], TensorProto.INT64, numeric=False)
fold_case("abs-int8-min", "Abs", [np.array([-128], np.int8)], TensorProto.INT8, numeric=False)
fold_case("pow-int-overflow", "Pow", [i64(3), i64(100)], TensorProto.INT64, numeric=False)
fold_case("pow-int-negative-exponent", "Pow", [i64(2), i64(-1)], TensorProto.INT64, numeric=False)
fold_case("cast-nan-to-int64", "Cast", [f32(np.nan, 1.0)], TensorProto.INT64, {"to": TensorProto.INT64}, numeric=False)
fold_case("cast-inf-to-int32", "Cast", [f32(np.inf, -np.inf)], TensorProto.INT32, {"to": TensorProto.INT32}, numeric=False)
fold_case("cast-huge-to-int8", "Cast", [f32(1e30, -1e30)], TensorProto.INT8, {"to": TensorProto.INT8}, numeric=False)
fold_case("cast-huge-to-uint64", "Cast", [f32(3e38, -1)], TensorProto.UINT64, {"to": TensorProto.UINT64}, numeric=False)
fold_case("cast-nan-to-bool", "Cast", [f32(np.nan, 0.0)], TensorProto.BOOL, {"to": TensorProto.BOOL})
fold_case("cast-double-huge-to-float", "Cast", [np.array([1e300, -1e300], np.float64)], TensorProto.FLOAT,
          {"to": TensorProto.FLOAT})
fold_case("cast-int-max-to-float16", "Cast", [i64(I64_MAX, 70000)], TensorProto.FLOAT16, {"to": TensorProto.FLOAT16})
fold_case("cast-to-undefined-type", "Cast", [f32(1.0)], TensorProto.FLOAT, {"to": 0}, numeric=False)
fold_case("cast-to-type-999", "Cast", [f32(1.0)], TensorProto.FLOAT, {"to": 999}, numeric=False)
fold_case("sqrt-negative", "Sqrt", [f32(-1.0, 4.0)], TensorProto.FLOAT)
fold_case("log-zero", "Log", [f32(0.0, -1.0)], TensorProto.FLOAT)
fold_case("exp-overflow", "Exp", [f32(1000.0, -1000.0)], TensorProto.FLOAT)
fold_case("div-float-by-zero", "Div", [f32(1.0, 0.0, -1.0), f32(0.0, 0.0, 0.0)], TensorProto.FLOAT)
fold_case("add-float16-overflow", "Add", [np.array([65504], np.float16), np.array([65504], np.float16)],
          TensorProto.FLOAT16)
fold_case("range-huge", "Range", [i64(0), i64(I64_MAX), i64(1)], TensorProto.INT64)
fold_case("range-delta-zero", "Range", [i64(0), i64(10), i64(0)], TensorProto.INT64, numeric=False)
fold_case("range-overflowing-count", "Range", [i64(I64_MIN), i64(I64_MAX), i64(I64_MAX)], TensorProto.INT64,
          numeric=False)
fold_case("range-float-tiny-delta", "Range", [f32(0.0), f32(1.0), f32(1e-30)], TensorProto.FLOAT)
fold_case("constantofshape-huge", "ConstantOfShape", [i64(1 << 31, 1 << 31)], TensorProto.FLOAT)
fold_case("constantofshape-overflow", "ConstantOfShape", [i64(1 << 62, 1 << 62)], TensorProto.FLOAT, numeric=False)
fold_case("constantofshape-negative", "ConstantOfShape", [i64(-1)], TensorProto.FLOAT, numeric=False)
fold_case("constantofshape-limit", "ConstantOfShape", [i64(1 << 20)], TensorProto.FLOAT)
fold_case("constantofshape-limit-plus-one", "ConstantOfShape", [i64((1 << 20) + 1)], TensorProto.FLOAT)
fold_case("expand-huge", "Expand", [f32(1.0), i64(1 << 40, 1 << 40)], TensorProto.FLOAT)
fold_case("expand-negative", "Expand", [f32(1.0), i64(-3)], TensorProto.FLOAT, numeric=False)
fold_case("tile-huge", "Tile", [f32(1.0, 2.0), i64(1 << 62)], TensorProto.FLOAT)
fold_case("tile-negative", "Tile", [f32(1.0, 2.0), i64(-2)], TensorProto.FLOAT, numeric=False)
fold_case("reshape-two-minus-one", "Reshape", [f32(1, 2, 3, 4), i64(-1, -1)], TensorProto.FLOAT, numeric=False)
fold_case("reshape-overflow", "Reshape", [f32(1, 2, 3, 4), i64(1 << 62, 1 << 62, 0)], TensorProto.FLOAT,
          numeric=False)
fold_case("reshape-int-min", "Reshape", [f32(1, 2, 3, 4), i64(I64_MIN)], TensorProto.FLOAT, numeric=False)
fold_case("reshape-allowzero-minus-one", "Reshape", [np.zeros((0, 4), np.float32), i64(0, -1)], TensorProto.FLOAT,
          {"allowzero": 1}, numeric=False)
fold_case("slice-extreme", "Slice", [f32(1, 2, 3, 4, 5), i64(I64_MAX), i64(I64_MIN), i64(0), i64(-1)],
          TensorProto.FLOAT)
fold_case("slice-step-int-min", "Slice", [f32(1, 2, 3, 4, 5), i64(-1), i64(I64_MIN), i64(0), i64(I64_MIN)],
          TensorProto.FLOAT)
fold_case("slice-step-zero", "Slice", [f32(1, 2, 3), i64(0), i64(3), i64(0), i64(0)], TensorProto.FLOAT,
          numeric=False)
fold_case("slice-axis-out-of-range", "Slice", [f32(1, 2, 3), i64(0), i64(3), i64(I64_MIN)], TensorProto.FLOAT,
          numeric=False)
fold_case("gather-index-out-of-range", "Gather", [f32(1, 2, 3), i64(1 << 40)], TensorProto.FLOAT, numeric=False)
fold_case("gather-index-int-min", "Gather", [f32(1, 2, 3), i64(I64_MIN)], TensorProto.FLOAT, numeric=False)
fold_case("transpose-perm-repeated", "Transpose", [np.zeros((2, 3), np.float32)], TensorProto.FLOAT,
          {"perm": [0, 0]}, numeric=False)
fold_case("transpose-perm-out-of-range", "Transpose", [np.zeros((2, 3), np.float32)], TensorProto.FLOAT,
          {"perm": [I64_MAX, 0]}, numeric=False)
fold_case("squeeze-axis-out-of-range", "Squeeze", [np.zeros((1, 3), np.float32), i64(I64_MIN)], TensorProto.FLOAT,
          numeric=False)
fold_case("unsqueeze-axis-huge", "Unsqueeze", [f32(1.0), i64(I64_MAX)], TensorProto.FLOAT, numeric=False)
fold_case("unsqueeze-rank-200", "Unsqueeze", [f32(1.0), np.arange(200, dtype=np.int64)], TensorProto.FLOAT)
fold_case("concat-axis-int-min", "Concat", [f32(1.0), f32(2.0)], TensorProto.FLOAT, {"axis": I64_MIN},
          numeric=False)
fold_case("split-bad-sizes", "Split", [f32(1, 2, 3, 4), i64(-1, 5)], TensorProto.FLOAT, n_out=2, numeric=False)
fold_case("split-huge-num-outputs", "Split", [f32(1, 2, 3, 4)], TensorProto.FLOAT, {"num_outputs": I64_MAX},
          opset=18, numeric=False)
fold_case("onehot-huge-depth", "OneHot", [i64(1), i64(1 << 62), f32(0, 1)], TensorProto.FLOAT)
fold_case("cumsum-overflow", "CumSum", [i64(I64_MAX, I64_MAX), i64(0)], TensorProto.INT64, numeric=False)
fold_case("reducesum-overflow", "ReduceSum", [i64(I64_MAX, I64_MAX)], TensorProto.INT64, {"keepdims": 0},
          numeric=False)
fold_case("reduceprod-int-overflow", "ReduceProd", [i64(1 << 40, 1 << 40)], TensorProto.INT64, {"keepdims": 0},
          numeric=False)
fold_case("pad-huge", "Pad", [f32(1, 2), i64(1 << 40, 0)], TensorProto.FLOAT)
fold_case("pad-overflow", "Pad", [f32(1, 2), i64(I64_MAX, I64_MAX)], TensorProto.FLOAT, numeric=False)
fold_case("pad-negative-past-size", "Pad", [f32(1, 2), i64(-5, 0)], TensorProto.FLOAT, numeric=False)
fold_case("shape-start-end-extreme", "Shape", [np.zeros((2, 3), np.float32)], TensorProto.INT64,
          {"start": I64_MIN, "end": I64_MAX}, opset=17)
# 2^30 multiply-adds (the rule language's own limit) take about 2 s in a release build, a minute in a debug one
_MM = (1024, 1024) if FULL else (256, 1024)
fold_case(f"matmul-{_MM[0]}x{_MM[1]}x{_MM[0]}", "MatMul", [np.ones(_MM, np.float32), np.ones(_MM[::-1], np.float32)],
          TensorProto.FLOAT)
fold_case("matmul-shape-mismatch", "MatMul", [np.ones((2, 3), np.float32), np.ones((4, 5), np.float32)],
          TensorProto.FLOAT, numeric=False)
fold_case("where-broadcast-huge", "Where", [np.ones((1 << 11, 1), bool), np.ones((1, 1 << 11), np.float32),
                                            f32(0.0)], TensorProto.FLOAT)
fold_case("einsum-garbage", "Einsum", [f32(1, 2)], TensorProto.FLOAT, {"equation": "i,,->->>ij"}, numeric=False)
fold_case("topk-k-huge", "TopK", [f32(1, 2, 3), i64(1 << 40)], TensorProto.FLOAT, n_out=2, numeric=False)


@builder("fold-constant-node-garbage")
def _(work, aux, rng):
    # Constant nodes with several values, sparse values with indices out of range, huge lists.
    sparse = helper.make_sparse_tensor(init("v", f32(1.0, 2.0)), init("i", i64(5, 1 << 40)), [4])
    nodes = [
        helper.make_node("Constant", [], ["a"], value_float=1.0, value_int=3),
        helper.make_node("Constant", [], ["b"], sparse_value=sparse),
        helper.make_node("Constant", [], ["c"], value_ints=list(range(100000))),
        helper.make_node("Constant", [], ["d"], value_float=float("nan")),
        helper.make_node("Constant", [], ["e"]),
        helper.make_node("Add", ["b", "d"], ["Y"]),
    ]
    m = make(nodes, [], [vi("Y"), vi("a"), vi("c", TensorProto.INT64), vi("e")])
    write(work, "m.onnx", m)
    return {"numeric": False}


# --- built-in rule targets with hostile attributes and values -------------------------------

@builder("bn-absent-mean")
def _(work, aux, rng):
    m = conv_bn_model()
    m.graph.node[1].input[3] = ""
    write(work, "m.onnx", m)
    return {"numeric": False}


@builder("bn-negative-variance")
def _(work, aux, rng):
    m = conv_bn_model()
    for t in m.graph.initializer:
        if t.name == "v":
            t.CopyFrom(init("v", f32(-1, -2, 0, 1e-30)))
    write(work, "m.onnx", m)
    return {}


@builder("bn-epsilon-nan")
def _(work, aux, rng):
    m = conv_bn_model()
    m.graph.node[1].attribute.append(helper.make_attribute("epsilon", float("nan")))
    write(work, "m.onnx", m)
    return {}


@builder("bn-huge-weights")
def _(work, aux, rng):
    m = conv_bn_model()
    for t in m.graph.initializer:
        if t.name == "s":
            t.CopyFrom(init("s", f32(3e38, 3e38, -3e38, 1e-45)))
        if t.name == "v":
            t.CopyFrom(init("v", f32(1e-45, 1e-45, 1e-45, 1e-45)))
    write(work, "m.onnx", m)
    return {}


@builder("bn-scale-wrong-shape")
def _(work, aux, rng):
    m = conv_bn_model()
    for t in m.graph.initializer:
        if t.name == "s":
            t.CopyFrom(init("s", np.ones(5, np.float32)))
    write(work, "m.onnx", m)
    return {"numeric": False}


@builder("conv-attributes-garbage")
def _(work, aux, rng):
    m = conv_bn_model()
    conv = m.graph.node[0]
    del conv.attribute[:]
    conv.attribute.extend([helper.make_attribute("group", 0), helper.make_attribute("strides", [0, I64_MAX]),
                           helper.make_attribute("pads", [I64_MAX, I64_MIN, -1, 1 << 62]),
                           helper.make_attribute("dilations", [-1, 0]), helper.make_attribute("kernel_shape", [-3])])
    write(work, "m.onnx", m)
    return {"numeric": False}


@builder("pad-conv-overflowing-pads")
def _(work, aux, rng):
    m = conv_bn_model()
    nodes = [helper.make_node("Pad", ["X", "pads"], ["p"], mode="constant"),
             helper.make_node("Conv", ["p", "W"], ["Y"], pads=[1, 1, 1, 1])]
    inits = [t for t in m.graph.initializer if t.name == "W"] + [
        init("pads", i64(0, 0, I64_MAX, I64_MAX, 0, 0, I64_MAX, 1))]
    write(work, "m.onnx", make(nodes, [vi("X", shape=[1, 3, 6, 6])], [vi("Y")], inits))
    return {"numeric": False}


@builder("pad-conv-negative-pads")
def _(work, aux, rng):
    m = conv_bn_model()
    nodes = [helper.make_node("Pad", ["X", "pads"], ["p"], mode="constant"),
             helper.make_node("Conv", ["p", "W"], ["Y"], pads=[I64_MAX, 1, 1, 1])]
    inits = [t for t in m.graph.initializer if t.name == "W"] + [init("pads", i64(0, 0, -1, -1, 0, 0, -1, -1))]
    write(work, "m.onnx", make(nodes, [vi("X", shape=[1, 3, 6, 6])], [vi("Y")], inits))
    return {"numeric": False}


@builder("transpose-pair-huge-perms")
def _(work, aux, rng):
    nodes = [helper.make_node("Transpose", ["X"], ["t"], perm=[I64_MAX, I64_MIN]),
             helper.make_node("Transpose", ["t"], ["Y"], perm=[1, 0])]
    write(work, "m.onnx", make(nodes, [vi("X", shape=[2, 3])], [vi("Y")]))
    return {"numeric": False}


@builder("transpose-pair-rank-1000")
def _(work, aux, rng):
    perm = list(range(1000))
    perm[0], perm[999] = 999, 0
    nodes = [helper.make_node("Transpose", ["X"], ["t"], perm=perm),
             helper.make_node("Transpose", ["t"], ["Y"], perm=list(reversed(range(1000))))]
    write(work, "m.onnx", make(nodes, [vi("X")], [vi("Y")]))
    return {"numeric": False}


@builder("squeeze-unsqueeze-extreme-axes")
def _(work, aux, rng):
    nodes = [helper.make_node("Unsqueeze", ["X", "a"], ["u"]), helper.make_node("Squeeze", ["u", "a"], ["Y"])]
    write(work, "m.onnx", make(nodes, [vi("X", shape=[2, 3])], [vi("Y")], [init("a", i64(I64_MIN, I64_MAX))]))
    return {"numeric": False}


@builder("reshape-reshape-extreme")
def _(work, aux, rng):
    nodes = [helper.make_node("Reshape", ["X", "s1"], ["r"]), helper.make_node("Reshape", ["r", "s2"], ["Y"])]
    write(work, "m.onnx", make(nodes, [vi("X", shape=[2, 3])], [vi("Y")],
                               [init("s1", i64(I64_MIN, -1)), init("s2", i64(1 << 62, 1 << 62))]))
    return {"numeric": False}


@builder("gemm-alpha-inf-bn")
def _(work, aux, rng):
    r = np.random.default_rng(1)
    nodes = [helper.make_node("Gemm", ["X", "Bm"], ["g"], alpha=float("inf"), transB=0),
             helper.make_node("BatchNormalization", ["g", "s", "t", "m", "v"], ["Y"])]
    inits = [init("Bm", r.standard_normal((8, 4)).astype(np.float32))] + [
        init(n, np.ones(4, np.float32)) for n in "stmv"]
    write(work, "m.onnx", make(nodes, [vi("X", shape=[2, 8])], [vi("Y", shape=[2, 4])], inits))
    return {}


@builder("lora-mismatched-shapes")
def _(work, aux, rng):
    r = np.random.default_rng(2)
    nodes = [helper.make_node("MatMul", ["X", "W"], ["base"]), helper.make_node("MatMul", ["X", "A"], ["low"]),
             helper.make_node("MatMul", ["low", "B"], ["delta"]), helper.make_node("Add", ["base", "delta"], ["Y"])]
    inits = [init("W", r.standard_normal((16, 8)).astype(np.float32)),
             init("A", r.standard_normal((16, 3)).astype(np.float32)),
             init("B", r.standard_normal((4, 8)).astype(np.float32))]
    write(work, "m.onnx", make(nodes, [vi("X", shape=[2, 16])], [vi("Y")], inits))
    return {"numeric": False}


@builder("dropout-ratio-nan-training-input")
def _(work, aux, rng):
    nodes = [helper.make_node("Dropout", ["X", "r", "tm"], ["Y"])]
    write(work, "m.onnx", make(nodes, [vi("X", shape=[2, 4])], [vi("Y")],
                               [init("r", f32(np.nan).reshape(())), init("tm", np.array(False))]))
    return {}


# --- nesting ---------------------------------------------------------------------------------

def if_chain(depth: int) -> bytes:
    """depth Ifs, each inside the then_branch of the one before; the innermost returns X + 1."""
    t = w_tensor_type(FLOAT, [2])
    inner = w_graph([w_node("Add", ["X", "one"], [f"o{depth}"])], f"g{depth}", outputs=[w_value_info(f"o{depth}", t)])
    for level in reversed(range(depth)):
        else_g = w_graph([w_node("Identity", ["X"], [f"e{level}"])], f"e{level}", outputs=[w_value_info(f"e{level}", t)])
        node = w_node("If", ["C"], [f"o{level}"], [w_attr_graph("then_branch", inner), w_attr_graph("else_branch", else_g)])
        if level == 0:
            inner = w_graph([node], "main", inputs=[w_value_info("X", t), w_value_info("C", w_tensor_type(BOOL, []))],
                            outputs=[w_value_info("o0", t)],
                            inits=[w_tensor("one", FLOAT, [1], struct.pack("<f", 1.0))])
        else:
            inner = w_graph([node], f"g{level}", outputs=[w_value_info(f"o{level}", t)])
    return w_model(inner)


def loop_chain(depth: int) -> bytes:
    """depth Loops, each in the body of the one before, one trip each; the innermost scans Relu(X)."""
    t = w_tensor_type(FLOAT)
    body_in = lambda lv: [w_value_info(f"i{lv}", w_tensor_type(INT64, [])),  # noqa: E731
                          w_value_info(f"c{lv}", w_tensor_type(BOOL, []))]
    inner = w_graph([w_node("Identity", [f"c{depth}"], [f"co{depth}"]), w_node("Relu", ["X"], [f"s{depth}"])],
                    f"b{depth}", inputs=body_in(depth),
                    outputs=[w_value_info(f"co{depth}", w_tensor_type(BOOL, [])), w_value_info(f"s{depth}", t)])
    for level in reversed(range(1, depth + 1)):
        loop = w_node("Loop", ["M", "T"], [f"s{level - 1}"], [w_attr_graph("body", inner)])
        if level == 1:
            inner = w_graph([loop], "main", inputs=[w_value_info("X", w_tensor_type(FLOAT, [2]))],
                            outputs=[w_value_info("s0", t)],
                            inits=[w_tensor("M", INT64, [], struct.pack("<q", 1)), w_tensor("T", BOOL, [], b"\x01")])
        else:
            lv = level - 1
            inner = w_graph([w_node("Identity", [f"c{lv}"], [f"co{lv}"]), loop], f"b{lv}", inputs=body_in(lv),
                            outputs=[w_value_info(f"co{lv}", w_tensor_type(BOOL, [])), w_value_info(f"s{lv}", t)])
    return w_model(inner)


def type_chain(depth: int) -> bytes:
    t = w_tensor_type(FLOAT, [2])
    for _ in range(depth):
        t = fb(4, fb(1, t))  # sequence_type { elem_type: t }
    g = w_graph([w_node("Identity", ["X"], ["Y"])], "main", inputs=[w_value_info("X", t)],
                outputs=[w_value_info("Y", t)])
    return w_model(g)


for _d in [1, 8, 31, 32, 33, 34, 40, 100, 3000] + ([10000] if FULL else []):
    simple(f"nested-if-{_d}", lambda d=_d: if_chain(d))
for _d in [1, 5, 31, 33, 50, 1000]:
    simple(f"nested-loop-{_d}", lambda d=_d: loop_chain(d))
for _d in [1, 30, 47, 48, 49, 50, 1000, 50000]:
    simple(f"nested-type-{_d}", lambda d=_d: type_chain(d))


# --- sizes: many attributes, readers, nodes ------------------------------------------------

@builder("attributes-100k-distinct")
def _(work, aux, rng):
    attrs = [w_attr_int(f"a{i}", i) for i in range(100_000)]
    g = w_graph([w_node("Relu", ["X"], ["Y"], attrs)], "main", inputs=[w_value_info("X", w_tensor_type(FLOAT, [2]))],
                outputs=[w_value_info("Y", w_tensor_type(FLOAT, [2]))])
    write(work, "m.onnx", w_model(g))
    return {}


@builder("attributes-100k-same-name")
def _(work, aux, rng):
    attrs = [w_attr_float("alpha", 0.1 * (i % 7)) for i in range(100_000)]
    g = w_graph([w_node("LeakyRelu", ["X"], ["Y"], attrs)], "main",
                inputs=[w_value_info("X", w_tensor_type(FLOAT, [2]))], outputs=[w_value_info("Y", w_tensor_type(FLOAT, [2]))])
    write(work, "m.onnx", w_model(g))
    return {"numeric": False}


@builder("attributes-100k-on-folded-conv")
def _(work, aux, rng):
    m = conv_bn_model()
    m.graph.node[0].attribute.extend(helper.make_attribute(f"x{i}", i) for i in range(100_000))
    write(work, "m.onnx", m)
    return {"numeric": False}


@builder("attribute-ints-5M")
def _(work, aux, rng):
    attr = fb(1, "perm") + fv(8, 1) + fv(8, 0) * 5_000_001 + fv(20, 7)
    g = w_graph([w_node("Transpose", ["X"], ["Y"], [attr])], "main",
                inputs=[w_value_info("X", w_tensor_type(FLOAT, [2, 3]))], outputs=[w_value_info("Y")])
    write(work, "m.onnx", w_model(g))
    return {"numeric": False}


@builder(f"readers-{MANY}-relu-concat")
def _(work, aux, rng):
    n = MANY
    nodes = [helper.make_node("Relu", ["X"], [f"r{i}"]) for i in range(n)]
    nodes.append(helper.make_node("Concat", [f"r{i}" for i in range(n)], ["Y"], axis=0))
    write(work, "m.onnx", make(nodes, [vi("X", shape=[1, 2])], [vi("Y", shape=[n, 2])]))
    return {}


@builder(f"readers-{MANY}-of-conv-bn")
def _(work, aux, rng):
    m = conv_bn_model()
    bn = m.graph.node[1]
    for i in range(MANY):
        nb = m.graph.node.add()
        nb.CopyFrom(bn)
        nb.output[0] = f"z{i}"
        nb.name = f"bn{i}"
    nodes = list(m.graph.node)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    m.graph.node.append(helper.make_node("Sum", [f"z{i}" for i in range(0, MANY, 100)], ["S"]))
    m.graph.output.append(vi("S"))
    write(work, "m.onnx", m)
    return {}


@builder(f"readers-{MANY}-identity-outputs")
def _(work, aux, rng):
    n = MANY
    nodes = [helper.make_node("Relu", ["X"], ["r"])] + [helper.make_node("Identity", ["r"], [f"y{i}"]) for i in range(n)]
    write(work, "m.onnx", make(nodes, [vi("X", shape=[2])], [vi(f"y{i}", shape=[2]) for i in range(n)]))
    return {}


@builder(f"readers-{MANY}-transpose-pairs")
def _(work, aux, rng):
    n = MANY
    nodes = [helper.make_node("Transpose", ["X"], ["t"], perm=[1, 0])]
    nodes += [helper.make_node("Transpose", ["t"], [f"u{i}"], perm=[1, 0]) for i in range(n)]
    nodes.append(helper.make_node("Sum", [f"u{i}" for i in range(n)], ["Y"]))
    write(work, "m.onnx", make(nodes, [vi("X", shape=[2, 3])], [vi("Y", shape=[2, 3])]))
    return {}


@builder(f"initializers-{MANY // 5}-identical")
def _(work, aux, rng):
    # merge-duplicates merges them, and the Adds that read them, one pair at a time
    n = MANY // 5
    inits = [init(f"c{i}", np.ones(2, np.float32)) for i in range(n)]
    nodes = [helper.make_node("Add", ["X", f"c{i}"], [f"a{i}"]) for i in range(n)]
    nodes.append(helper.make_node("Concat", [f"a{i}" for i in range(n)], ["Y"], axis=0))
    write(work, "m.onnx", make(nodes, [vi("X", shape=[2])], [vi("Y", shape=[2 * n])], inits))
    return {}


@builder(f"chain-{CHAIN}-identity")
def _(work, aux, rng):
    n = CHAIN
    nodes = [helper.make_node("Identity", ["X" if i == 0 else f"v{i - 1}"], [f"v{i}" if i < n - 1 else "Y"]) for i in range(n)]
    write(work, "m.onnx", make(nodes, [vi("X", shape=[2])], [vi("Y", shape=[2])]))
    return {}


@builder(f"chain-{CHAIN}-relu")
def _(work, aux, rng):
    n = CHAIN
    nodes = [helper.make_node("Relu", ["X" if i == 0 else f"v{i - 1}"], [f"v{i}" if i < n - 1 else "Y"]) for i in range(n)]
    write(work, "m.onnx", make(nodes, [vi("X", shape=[2])], [vi("Y", shape=[2])]))
    return {"numeric": False}  # onnxruntime takes long on 100k nodes; the output is still checked


@builder(f"chain-{MANY}-transpose")
def _(work, aux, rng):
    n = MANY
    nodes = [helper.make_node("Transpose", ["X" if i == 0 else f"v{i - 1}"], [f"v{i}" if i < n - 1 else "Y"],
                              perm=[1, 2, 0]) for i in range(n)]
    write(work, "m.onnx", make(nodes, [vi("X", shape=[2, 3, 4])], [vi("Y")]))
    return {}


@builder(f"inputs-{MANY}-sum")
def _(work, aux, rng):
    n = MANY
    write(work, "m.onnx", make([helper.make_node("Sum", ["X"] * n, ["Y"])], [vi("X", shape=[2])], [vi("Y", shape=[2])]))
    return {}


@builder(f"outputs-{CHAIN}-split")
def _(work, aux, rng):
    n = CHAIN
    write(work, "m.onnx", make([helper.make_node("Split", ["X"], [f"y{i}" for i in range(n)], axis=0)],
                               [vi("X", shape=[n])], [vi("y0")]))
    return {"numeric": False}


@builder("nodes-2M-empty")
def _(work, aux, rng):
    g = fb(1, b"") * 2_000_000 + fb(2, "main")
    write(work, "m.onnx", w_model(g))
    return {}


@builder("inputs-1M-unnamed")
def _(work, aux, rng):
    g = fb(11, b"") * 1_000_000 + fb(2, "main")
    write(work, "m.onnx", w_model(g))
    return {}


@builder("opset-imports-1M-duplicate-100k-distinct")
def _(work, aux, rng):
    g = w_graph([w_node("Relu", ["X"], ["Y"])], "main", inputs=[w_value_info("X", w_tensor_type(FLOAT, [2]))],
                outputs=[w_value_info("Y", w_tensor_type(FLOAT, [2]))])
    write(work, "m.onnx", w_model(g, opsets=[("", 17)] + [(f"d{i}", 1) for i in range(100_000)])
          + fb(8, fb(1, "dup") + fv(2, 1)) * 1_000_000)
    return {}


@builder("doc-string-20MB")
def _(work, aux, rng):
    m = conv_bn_model()
    m.doc_string = "x" * 20_000_000
    write(work, "m.onnx", m)
    return {}


# --- graph structure ---------------------------------------------------------------------------

def _relu_add(nodes_spec, inputs=("X",), outputs=("Y",), inits=()):
    return make([helper.make_node(op, i, o) for op, i, o in nodes_spec], [vi(n, shape=[2]) for n in inputs],
                [vi(n, shape=[2]) for n in outputs], inits)


simple("cycle-two-nodes", lambda: _relu_add([("Relu", ["b"], ["a"]), ("Add", ["X", "a"], ["b"]), ("Relu", ["b"], ["Y"])]), False)
simple("cycle-self", lambda: _relu_add([("Add", ["X", "a"], ["a"]), ("Relu", ["a"], ["Y"])]), False)
simple("cycle-identity-ring", lambda: _relu_add([("Identity", ["c"], ["a"]), ("Identity", ["a"], ["b"]),
                                                 ("Identity", ["b"], ["c"]), ("Add", ["X", "c"], ["Y"])]), False)
simple("out-of-order", lambda: _relu_add([("Relu", ["a"], ["Y"]), ("Relu", ["X"], ["a"])]))
simple("duplicate-output-name", lambda: _relu_add([("Relu", ["X"], ["a"]), ("Neg", ["X"], ["a"]), ("Relu", ["a"], ["Y"])]), False)
simple("output-shadows-input", lambda: _relu_add([("Relu", ["X"], ["X"]), ("Relu", ["X"], ["Y"])]), False)
simple("output-shadows-initializer", lambda: _relu_add([("Relu", ["X"], ["k"]), ("Add", ["k", "X"], ["Y"])],
                                                        inits=[init("k", f32(1, 2))]), False)
simple("duplicate-graph-input", lambda: make([helper.make_node("Relu", ["X"], ["Y"])],
                                             [vi("X", shape=[2]), vi("X", shape=[3])], [vi("Y")]), False)
simple("duplicate-graph-output", lambda: _relu_add([("Relu", ["X"], ["a"]), ("Identity", ["a"], ["Y"])],
                                                    outputs=("Y", "Y")))
simple("graph-output-is-input", lambda: make([helper.make_node("Identity", ["X"], ["a"])], [vi("X", shape=[2])],
                                             [vi("X", shape=[2]), vi("a", shape=[2])]))
simple("duplicate-initializer-different-data", lambda: _relu_add([("Add", ["X", "k"], ["Y"])],
                                                                  inits=[init("k", f32(1, 2)), init("k", f32(3, 4))]), False)
simple("duplicate-node-names", lambda: make([helper.make_node("Relu", ["X"], ["a"], name="n"),
                                             helper.make_node("Identity", ["a"], ["Y"], name="n")],
                                            [vi("X", shape=[2])], [vi("Y", shape=[2])]))
simple("undefined-input", lambda: _relu_add([("Add", ["X", "nowhere"], ["Y"])]), False)
simple("undefined-graph-output", lambda: _relu_add([("Relu", ["X"], ["a"])]), False)
simple("empty-output-name", lambda: _relu_add([("Relu", ["X"], [""]), ("Relu", ["X"], ["Y"])]))
simple("empty-graph-output-name", lambda: _relu_add([("Relu", ["X"], ["Y"])], outputs=("Y", "")), False)
simple("empty-input-in-the-middle", lambda: _relu_add([("Clip", ["X", "", "hi"], ["Y"])], inits=[init("hi", np.float32(0.5))]))
simple("conv-without-inputs", lambda: _relu_add([("Conv", [], ["Y"])]), False)
simple("no-graph-outputs", lambda: make([helper.make_node("Relu", ["X"], ["Y"])], [vi("X", shape=[2])], []), False)
simple("no-nodes", lambda: make([], [vi("X", shape=[2])], [vi("X", shape=[2])]))


@builder("duplicate-opset-import")
def _(work, aux, rng):
    m = conv_bn_model()
    m.opset_import.append(helper.make_opsetid("", 11))
    write(work, "m.onnx", m)
    return {"numeric": False}


@builder("value-info-conflicting")
def _(work, aux, rng):
    m = conv_bn_model()
    m.graph.value_info.extend([vi("c", TensorProto.INT64, [7]), vi("c", TensorProto.BOOL, [1, 2, 3])])
    write(work, "m.onnx", m)
    return {"numeric": False}


@builder("subgraph-shadows-outer-name")
def _(work, aux, rng):
    then_g = helper.make_graph([helper.make_node("Relu", ["X"], ["a"])], "t", [], [vi("a", shape=[2])])
    else_g = helper.make_graph([helper.make_node("Neg", ["X"], ["b"])], "e", [], [vi("b", shape=[2])])
    nodes = [helper.make_node("Relu", ["X"], ["a"]),
             helper.make_node("If", ["C"], ["Y"], then_branch=then_g, else_branch=else_g)]
    write(work, "m.onnx", make(nodes, [vi("X", shape=[2]), vi("C", TensorProto.BOOL, [])], [vi("Y"), vi("a")]))
    return {"numeric": False}


@builder("subgraph-reads-own-if-output")
def _(work, aux, rng):
    then_g = helper.make_graph([helper.make_node("Relu", ["Y"], ["a"])], "t", [], [vi("a", shape=[2])])
    else_g = helper.make_graph([helper.make_node("Neg", ["X"], ["b"])], "e", [], [vi("b", shape=[2])])
    nodes = [helper.make_node("If", ["C"], ["Y"], then_branch=then_g, else_branch=else_g)]
    write(work, "m.onnx", make(nodes, [vi("X", shape=[2]), vi("C", TensorProto.BOOL, [])], [vi("Y")]))
    return {"numeric": False}


@builder("if-subgraph-bn-to-fold")
def _(work, aux, rng):
    m = conv_bn_model()
    then_g = helper.make_graph(list(m.graph.node), "t", [], [vi("Y", shape=[1, 4, 6, 6])])
    else_g = helper.make_graph([helper.make_node("Identity", ["X"], ["Z"])], "e", [], [vi("Z", shape=[1, 3, 6, 6])])
    nodes = [helper.make_node("If", ["C"], ["O"], then_branch=then_g, else_branch=else_g)]
    write(work, "m.onnx", make(nodes, [vi("X", shape=[1, 3, 6, 6]), vi("C", TensorProto.BOOL, [])], [vi("O")],
                               list(m.graph.initializer)))
    return {"numeric": False}  # the two branches have different shapes: onnxruntime may refuse


@builder("function-recursive")
def _(work, aux, rng):
    f = helper.make_function("local", "F", ["x"], ["y"], [helper.make_node("F", ["x"], ["y"], domain="local")],
                             [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)])
    nodes = [helper.make_node("F", ["X"], ["Y"], domain="local")]
    write(work, "m.onnx", make(nodes, [vi("X", shape=[2])], [vi("Y")], extra_opsets=[helper.make_opsetid("local", 1)],
                               functions=[f]))
    return {"numeric": False}


@builder("function-duplicate")
def _(work, aux, rng):
    fs = [helper.make_function("local", "F", ["x"], ["y"], [helper.make_node(op, ["x"], ["y"])],
                               [helper.make_opsetid("", 17)]) for op in ("Relu", "Neg")]
    nodes = [helper.make_node("F", ["X"], ["Y"], domain="local")]
    write(work, "m.onnx", make(nodes, [vi("X", shape=[2])], [vi("Y")], extra_opsets=[helper.make_opsetid("local", 1)],
                               functions=fs))
    return {"numeric": False}


@builder("sparse-initializer-garbage")
def _(work, aux, rng):
    m = conv_bn_model()
    m.graph.sparse_initializer.append(helper.make_sparse_tensor(init("sv", f32(1.0, 2.0)), init("si", i64(1 << 40, -1)),
                                                                [1 << 62, 4]))
    m.graph.node.append(helper.make_node("Identity", ["sv"], ["S"]))
    m.graph.output.append(vi("S"))
    write(work, "m.onnx", m)
    return {"numeric": False}


# --- operators, domains, versions ----------------------------------------------------------------

simple("unknown-op", lambda: _relu_add([("FooBarBaz", ["X"], ["Y"])]), False)
simple("op-too-new-for-opset", lambda: make([helper.make_node("Gelu", ["X"], ["Y"])], [vi("X", shape=[2])], [vi("Y")],
                                            opset=13), False)
simple("op-removed-in-opset", lambda: make([helper.make_node("Upsample", ["X", "s"], ["Y"])], [vi("X", shape=[1, 2])],
                                           [vi("Y")], [init("s", f32(1, 2))], opset=17), False)


@builder("unknown-domain-not-imported")
def _(work, aux, rng):
    nodes = [helper.make_node("Foo", ["X"], ["a"], domain="com.evil"), helper.make_node("Identity", ["a"], ["Y"])]
    write(work, "m.onnx", make(nodes, [vi("X", shape=[2])], [vi("Y")]))
    return {"numeric": False}


for _v in [0, -1, I64_MAX, 1 << 40]:
    @builder(f"unknown-domain-version-{_v}")
    def _(work, aux, rng, v=_v):
        nodes = [helper.make_node("Foo", ["X"], ["a"], domain="com.evil"), helper.make_node("Identity", ["a"], ["Y"])]
        write(work, "m.onnx", make(nodes, [vi("X", shape=[2])], [vi("Y")], extra_opsets=[helper.make_opsetid("com.evil", v)]))
        return {"numeric": False}

for _v in [0, 1, 6, 99, 1 << 40, -1, I64_MIN]:
    @builder(f"default-opset-{_v}")
    def _(work, aux, rng, v=_v):
        m = conv_bn_model()
        m.opset_import[0].version = v
        write(work, "m.onnx", m)
        return {"numeric": False}

for _v in [0, 1, 2, 3, 4, 13, 100, I64_MAX, -1]:
    @builder(f"ir-version-{_v}")
    def _(work, aux, rng, v=_v):
        m = conv_bn_model()
        m.ir_version = v
        write(work, "m.onnx", m)
        return {"numeric": False}


@builder("ir-version-absent")
def _(work, aux, rng):
    m = conv_bn_model()
    m.ClearField("ir_version")
    write(work, "m.onnx", m)
    return {"numeric": False}


@builder("training-info-garbage")
def _(work, aux, rng):
    m = conv_bn_model()
    ti = m.training_info.add()
    ti.algorithm.CopyFrom(helper.make_graph([helper.make_node("Relu", ["nowhere"], ["W"])], "alg", [], []))
    ti.update_binding.add(key="W", value="nowhere")
    write(work, "m.onnx", m)
    return {"numeric": False}


@builder("strings-not-utf8")
def _(work, aux, rng):
    g = w_graph([w_node("Relu", ["X"], ["Y"], name=b"\xff\xfe\x1b[31m")], "main",
                inputs=[w_value_info("X", w_tensor_type(FLOAT, [2]))], outputs=[w_value_info("Y", w_tensor_type(FLOAT, [2]))])
    write(work, "m.onnx", w_model(g))
    return {}


@builder("names-with-control-characters")
def _(work, aux, rng):
    m = _relu_add([("Relu", ["X\n\x1b[2J"], ["a\u202e\r"]), ("Neg", ["a\u202e\r"], ["Y"])], inputs=("X\n\x1b[2J",))
    m.graph.node[0].op_type = "Relu\x1b]0;owned\x07"
    write(work, "m.onnx", m)
    return {"numeric": False}


@builder("names-1MB")
def _(work, aux, rng):
    big = "n" * 1_000_000
    write(work, "m.onnx", _relu_add([("Relu", ["X"], [big]), ("Nope", [big], ["Y"])]))
    return {"numeric": False}


# --- external data ----------------------------------------------------------------------------

def ext_case(name, location, offset=0, length=None, prepare=None, folder="", extra=(), numeric=True):
    """conv_bn with W external at `location`; prepare(work, model_dir, data) makes the files."""
    @builder(f"external-{name}")
    def build(work, aux, rng):
        m = conv_bn_model()
        data = external(m, "W", location, offset if offset is not None else None,
                        length if length is not None else (432 if location is not None else None), extra)
        model_dir = work / folder if folder else work
        model_dir.mkdir(parents=True, exist_ok=True)
        if prepare is not None:
            prepare(work, model_dir, data)
        rel = os.path.join(folder, "m.onnx") if folder else "m.onnx"
        write(work, rel, m)
        return {"model": rel, "numeric": numeric}


def _file(name, size_pad=0, at=0):
    def prepare(work, model_dir, data):
        p = model_dir / name
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as f:
            if at:
                f.truncate(at)
                f.seek(at)
            f.write(data + b"\0" * size_pad)
    return prepare


def _symlinked_file(work, model_dir, data):
    (model_dir / "real.bin").write_bytes(data)
    os.symlink("real.bin", model_dir / "w.bin")


def _symlinked_folder(work, model_dir, data):
    (model_dir / "real").mkdir()
    (model_dir / "real" / "w.bin").write_bytes(data)
    os.symlink("real", model_dir / "lnk")


def _fifo(work, model_dir, data):
    os.mkfifo(model_dir / "w.bin")


def _folder(work, model_dir, data):
    (model_dir / "w.bin").mkdir()


def _hardlink(work, model_dir, data):
    (model_dir / "w.bin").write_bytes(data)
    os.link(model_dir / "w.bin", model_dir / "w2.bin")


def _parent(work, model_dir, data):
    (work / "w.bin").write_bytes(data)


def _device(work, model_dir, data):
    os.mknod(model_dir / "w.bin", 0o600 | stat.S_IFCHR, os.makedev(1, 5))


ext_case("plain", "w.bin", prepare=_file("w.bin"))
ext_case("subfolder", "sub/w.bin", prepare=_file("sub/w.bin"))
ext_case("dot-slash", "./w.bin", prepare=_file("w.bin"))
ext_case("dotdot", "../w.bin", prepare=_parent, folder="m")
ext_case("dotdot-inside", "sub/../w.bin", prepare=_file("w.bin"))
ext_case("absolute-etc-passwd", "/etc/passwd")
ext_case("absolute-dev-zero", "/dev/zero")
ext_case("absolute-proc-self-mem", "/proc/self/mem")
ext_case("symlink-file", "w.bin", prepare=_symlinked_file)
ext_case("symlink-folder", "lnk/w.bin", prepare=_symlinked_folder)
ext_case("fifo", "w.bin", prepare=_fifo)
ext_case("folder", "w.bin", prepare=_folder)
ext_case("hardlink", "w.bin", prepare=_hardlink)
ext_case("missing-file", "w.bin")
ext_case("empty-location", "", prepare=_file("w.bin"))
ext_case("dot-location", ".", prepare=_file("w.bin"))
ext_case("no-location", None, prepare=_file("w.bin"))
ext_case("offset-huge", "w.bin", offset=1 << 62, prepare=_file("w.bin"))
ext_case("length-huge", "w.bin", length=1 << 62, prepare=_file("w.bin"))
ext_case("offset-plus-length-overflow", "w.bin", offset=I64_MAX, length=I64_MAX, prepare=_file("w.bin"))
ext_case("offset-negative", "w.bin", offset=-1, prepare=_file("w.bin"))
ext_case("offset-garbage", "w.bin", offset="abc", prepare=_file("w.bin"))
ext_case("offset-hex", "w.bin", offset="0x10", prepare=_file("w.bin", 16))
ext_case("offset-space", "w.bin", offset=" 0", prepare=_file("w.bin"))
ext_case("offset-exponent", "w.bin", offset="1e3", prepare=_file("w.bin", 1000))
ext_case("offset-u64-wrap", "w.bin", offset=str(1 << 64), prepare=_file("w.bin"))
ext_case("length-short", "w.bin", length=400, prepare=_file("w.bin"))
ext_case("length-zero", "w.bin", length=0, prepare=_file("w.bin"))
ext_case("file-short", "w.bin", prepare=lambda w, d, data: (d / "w.bin").write_bytes(data[:100]))
ext_case("offset-past-end-of-sparse-64GiB", "w.bin", offset=1 << 36, prepare=_file("w.bin", at=1 << 36))
ext_case("duplicate-location-key", "w.bin", extra=(("location", "other.bin"),), prepare=_file("w.bin"))
ext_case("unknown-key", "w.bin", extra=(("checksum", "x" * 10000), ("\x1b[2J", "\n")), prepare=_file("w.bin"))
ext_case("control-characters", "w\n\x1b[31m.bin", prepare=_file("w\n\x1b[31m.bin"))
ext_case("name-300-chars", "w" * 300 + ".bin")
ext_case("location-is-the-model", "m.onnx", length=432)
ext_case("nul-in-location", "w.bin\0.txt", prepare=_file("w.bin"))
if IS_ROOT:
    ext_case("char-device", "w.bin", prepare=_device)


@builder("external-two-tensors-overlapping")
def _(work, aux, rng):
    m = conv_bn_model()
    data = external(m, "W", "w.bin", 0, 432)
    external(m, "B", "w.bin", 0, 16)
    (work / "w.bin").write_bytes(data)
    write(work, "m.onnx", m)
    return {}


@builder("external-and-raw-data")
def _(work, aux, rng):
    m = conv_bn_model()
    data = external(m, "W", "w.bin", 0, 432)
    for t in m.graph.initializer:
        if t.name == "W":
            t.raw_data = data
    (work / "w.bin").write_bytes(data)
    write(work, "m.onnx", m)
    return {"numeric": False}


@builder("external-in-subgraph-and-constant")
def _(work, aux, rng):
    m = conv_bn_model()
    data = external(m, "W", "w.bin", 0, 432)
    t = onnx.TensorProto()
    t.CopyFrom([x for x in m.graph.initializer if x.name == "W"][0])
    t.name = "Wc"
    then_g = helper.make_graph([helper.make_node("Constant", [], ["k"], value=t),
                                helper.make_node("Conv", ["X", "k"], ["a"])], "t", [], [vi("a")])
    else_g = helper.make_graph([helper.make_node("Conv", ["X", "W"], ["b"])], "e", [], [vi("b")])
    m.graph.node.append(helper.make_node("If", ["C"], ["Z"], then_branch=then_g, else_branch=else_g))
    m.graph.input.append(vi("C", TensorProto.BOOL, []))
    m.graph.output.append(vi("Z"))
    (work / "w.bin").write_bytes(data)
    write(work, "m.onnx", m)
    return {}


# --- the model file itself ------------------------------------------------------------------

@builder("file-empty")
def _(work, aux, rng):
    write(work, "m.onnx", b"")
    return {}


@builder("file-zeros-sparse-1GiB")
def _(work, aux, rng):
    with open(work / "m.onnx", "wb") as f:
        f.truncate(1 << 30)
    return {}


@builder("file-fifo")
def _(work, aux, rng):
    os.mkfifo(work / "m.onnx")
    return {}


@builder("file-folder")
def _(work, aux, rng):
    (work / "m.onnx").mkdir()
    return {}


@builder("file-missing")
def _(work, aux, rng):
    return {}


@builder("file-symlink-to-model")
def _(work, aux, rng):
    write(work, "real.onnx", conv_bn_model())
    os.symlink("real.onnx", work / "m.onnx")
    return {}


@builder("file-dev-zero")
def _(work, aux, rng):
    return {"model": "/dev/zero"}


@builder("file-proc-self-status")
def _(work, aux, rng):
    return {"model": "/proc/self/status", "numeric": False}


@builder("file-text")
def _(work, aux, rng):
    write(work, "m.onnx", b"ir_version: 8\ngraph { node { op_type: 'Relu' } }\n" * 1000)
    return {}


@builder("file-varint-11-bytes")
def _(work, aux, rng):
    write(work, "m.onnx", b"\x08" + b"\xff" * 10 + b"\x01")
    return {}


@builder("file-length-overflow")
def _(work, aux, rng):
    write(work, "m.onnx", b"\x3a" + b"\xff" * 9 + b"\x01" + b"\0" * 100)
    return {}


@builder("file-group-wire-types")
def _(work, aux, rng):
    write(work, "m.onnx", b"\x0b" * 5000 + b"\x0c" * 5000)
    return {}


_cache: dict[str, tuple[dict, dict | None]] = {}
_cache_locks: dict[str, threading.Lock] = {}
_cache_lock = threading.Lock()


def cached_build(name: str, fn, work: Path, aux: Path) -> dict:
    """Runs builder `name` once (seeded by its name); later calls copy its regular files when it
    made nothing else (links, FIFOs, devices and folders are built anew each time)."""
    with _cache_lock:
        lock = _cache_locks.setdefault(name, threading.Lock())
    with lock:
        if name in _cache:
            info, files = _cache[name]
            if files is not None:
                for rel, data in files.items():
                    (work / rel).parent.mkdir(parents=True, exist_ok=True)
                    (work / rel).write_bytes(data)
                return info
        info = fn(work, aux, random.Random(name)) or {}
        files: dict | None = {}
        for root, dirs, names in os.walk(work):
            for n in names:
                p = Path(root) / n
                if not stat.S_ISREG(os.lstat(p).st_mode) or os.lstat(p).st_size > (64 << 20):
                    files = None
                    break
                files[str(p.relative_to(work))] = p.read_bytes()
            if files is None or any(os.path.islink(Path(root) / d) for d in dirs):
                files = None
                break
        _cache[name] = (info, files)
        return info


# --- nondeterministic nodes must not be merged ------------------------------------------------

def _count_ops(op: str, at_least: int):
    def post(work: Path, run) -> list[str]:
        if run.returncode != 0:
            return []
        m = onnx.load(str(work / "out.onnx"), load_external_data=False)
        n = sum(1 for node in m.graph.node if node.op_type == op)
        return [] if n >= at_least else [f"wrong result with exit 0: {at_least} random {op} nodes became {n} "
                                         f"(merged: they no longer draw independently)"]
    return post


for _op, _nodes, _inputs in [
    ("Dropout", [helper.make_node("Dropout", ["X", "r", "t"], ["a"]), helper.make_node("Dropout", ["X", "r", "t"], ["b"])],
     [vi("X", shape=[8]), vi("r", shape=[]), vi("t", TensorProto.BOOL, [])]),
    ("RandomUniformLike", [helper.make_node("RandomUniformLike", ["X"], ["a"]),
                           helper.make_node("RandomUniformLike", ["X"], ["b"])], [vi("X", shape=[8])]),
    ("RandomNormal", [helper.make_node("RandomNormal", [], ["a"], shape=[8]),
                      helper.make_node("RandomNormal", [], ["b"], shape=[8])], [vi("X", shape=[8])]),
]:
    @builder(f"random-{_op}-twice")
    def _(work, aux, rng, op=_op, nodes=_nodes, inputs=_inputs):
        m = make(list(nodes) + [helper.make_node("Sub", ["a", "b"], ["d"]), helper.make_node("Add", ["X", "d"], ["Y"])],
                 inputs, [vi("Y", shape=[8])])
        write(work, "m.onnx", m)
        return {"numeric": False, "post": _count_ops(op, 2)}


# --- hostile arguments ------------------------------------------------------------------------

def args_case(name, fixture, args, numeric=False):
    @builder(f"args-{name}")
    def build(work, aux, rng):
        model = copy_fixture(fixture, work) if fixture else None
        return {"model": model or "m.onnx", "args": list(args), "numeric": numeric}


_H = 1 << 62
args_case("input-shape-huge-conv", "conv_bn.onnx", ["--input-shape", f"X=1,3,{_H},{_H}"])
args_case("input-shape-int64-max-conv", "conv_bn.onnx", ["--input-shape", f"X={I64_MAX},3,8,8"])
args_case("input-shape-huge-shape-arithmetic", "shape_arithmetic.onnx", ["--input-shape", f"X={_H},{_H},64"])
args_case("input-shape-int64-max-shape-arithmetic", "shape_arithmetic.onnx", ["--input-shape", f"X={I64_MAX},1,64"])
args_case("input-shape-2^31-transformer", "transformer_shapes.onnx", ["--input-shape", f"X={1 << 31},{1 << 31},64"])
args_case("input-shape-huge-transformer", "transformer_shapes.onnx", ["--input-shape", f"X={_H},{_H},64",
                                                                      "--infer-shapes"])
args_case("input-shape-huge-dynamo", "dynamo_conv_bn.onnx", ["--input-shape", f"X={_H},3,8,8", "--infer-shapes"])
args_case("input-shape-huge-shape-ops", "shape_ops_mix.onnx", ["--input-shape", f"X={I64_MAX},4"])
args_case("input-shape-zero", "shape_arithmetic.onnx", ["--input-shape", "X=0,0,64", "--infer-shapes"])
args_case("input-shape-zero-transformer", "transformer_shapes.onnx", ["--input-shape", "X=0,5,64"])
args_case("input-shape-negative", "conv_bn.onnx", ["--input-shape", "X=-1,3,8,8"])
args_case("input-shape-literal-overflow", "conv_bn.onnx", ["--input-shape", "X=99999999999999999999,3,8,8"])
args_case("input-shape-wrong-rank", "conv_bn.onnx", ["--input-shape", "X=1,3"])
args_case("input-shape-disagrees", "conv_bn.onnx", ["--input-shape", "X=2,3,8,8"])
args_case("input-shape-unknown-name", "conv_bn.onnx", ["--input-shape", "nope=1"])
args_case("input-shape-60k-dims", "conv_bn.onnx", ["--input-shape", "X=" + ",".join(["1"] * 60_000)])
args_case("input-shape-empty-name", "conv_bn.onnx", ["--input-shape", "=1,3,8,8"])
args_case("input-shape-control-characters", "conv_bn.onnx", ["--input-shape", "X\n\x1b[2J=1"])
args_case("input-shape-twice", "dynamo_conv_bn.onnx", ["--input-shape", "X=1,3,8,8", "--input-shape", "X=2,3,8,8"])
args_case("fold-limit-negative", "conv_bn.onnx", ["--fold-limit", "-1"])
args_case("fold-limit-overflow", "conv_bn.onnx", ["--fold-limit", "99999999999999999999"])
args_case("fold-limit-int64-max", "shape_ops_mix.onnx", ["--fold-limit", str(I64_MAX)], numeric=True)
args_case("only-unknown", "conv_bn.onnx", ["--only", "no-such-rule"])
args_case("only-control-characters", "conv_bn.onnx", ["--only", "\x1b[2J\n"])
args_case("disable-everything", "shape_arithmetic.onnx",
          [a for r in ("lift-constant", "fold-constants", "fold-shape-arithmetic", "merge-duplicates")
           for a in ("--disable", r)], numeric=True)
args_case("explain-everything", "conv_bn_traps.onnx", ["--explain", "--infer-shapes", "--freeze-initializer-inputs"],
          numeric=True)
args_case("two-models", "conv_bn.onnx", ["conv_bn.onnx"])
args_case("unknown-flag", "conv_bn.onnx", ["--frobnicate"])
args_case("print", "transformer_shapes.onnx", ["--print"])
args_case("rules-missing-file", "conv_bn.onnx", ["--rules", "missing.rules"])
args_case("rules-folder", "conv_bn.onnx", ["--rules", "."])
args_case("rules-dev-zero", "conv_bn.onnx", ["--rules", "/dev/zero"])
args_case("rules-dev-stdin", "conv_bn.onnx", ["--rules", "/dev/stdin"])
args_case("rules-the-model", "conv_bn.onnx", ["--rules", "conv_bn.onnx"])


@builder("args-rules-fifo")
def _(work, aux, rng):
    copy_fixture("conv_bn.onnx", work)
    os.mkfifo(work / "r.rules")
    return {"model": "conv_bn.onnx", "args": ["--rules", "r.rules"], "numeric": False}


@builder("args-rules-300-times")
def _(work, aux, rng):
    copy_fixture("conv_bn.onnx", work)
    (work / "r.rules").write_text("rule mine { match { y = Identity(x) } replace { y = x } }\n")
    return {"model": "conv_bn.onnx", "args": ["--rules", "r.rules"] * 300, "numeric": False}


def built_specs() -> list[Spec]:
    specs = []
    for name, fn in BUILDERS.items():
        for builtin in (True, False):
            specs.append(built_spec(name, fn, builtin))
    return specs


def built_spec(name: str, fn, builtin: bool) -> Spec:
    case_id = f"model-{name}-{'builtin' if builtin else 'nobuiltin'}"

    def setup(work: Path, aux: Path, rng: random.Random) -> Inv | None:
        info = cached_build(name, fn, work, aux)
        model = info.get("model", "m.onnx")
        extra = info.get("args", [])
        output = None if "--print" in extra else "out.onnx"
        args = [model, *(["-o", output] if output else []), *([] if builtin else ["--no-builtin"]), *extra]
        in_work = not os.path.isabs(model)
        return Inv(argv=args, model=model if in_work else None, output=output, numeric=info.get("numeric", True),
                   post=info.get("post"))

    heavy = any(k in name for k in ("readers", "chain", "inputs-", "outputs-", "100k", "5M", "1M", "2M", "matmul",
                                     "20MB", "nested", "rank-", "where"))
    return Spec(case_id, setup, cost=10.0 if heavy else 2.0)


def random_graph_spec(i: int) -> Spec:
    from hostile_graphs import random_graph

    case_id = f"random-graph-{i}"

    def setup(work: Path, aux: Path, rng: random.Random) -> Inv:
        write(work, "m.onnx", random_graph(rng))
        args = ["m.onnx", "-o", "out.onnx"]
        if rng.random() < 0.2:
            args.append("--infer-shapes")
        # With every rewrite checked and the whole models compared: a built-in rule that
        # changes the numbers would exit 5, which no case expects.
        if rng.random() < 0.3:
            args.append("--verify=model")
        return Inv(argv=args, model="m.onnx", output="out.onnx")

    return Spec(case_id, setup)


def specs() -> list[Spec]:
    n_graphs = 1500 if FULL else 120
    return mutation_specs() + built_specs() + [random_graph_spec(i) for i in range(n_graphs)]
