"""Random small graphs for the hostile battery's model class: seeded chains of shape-changing
and elementwise operators, constants that do nothing (0, 1, identity permutations, full slices)
or almost nothing (broadcasting ones, reversing slices), duplicate nodes, shape arithmetic, and
the patterns the built-in rules fold. Each is valid and runs in onnxruntime, so the built-in
rules must leave what it computes unchanged (a wrong result with exit 0 is caught by the
numeric comparison)."""

from __future__ import annotations

import random

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class G:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.nodes: list = []
        self.inits: list = []
        self.values: list[tuple[str, tuple]] = []  # float32 values and their static shapes
        self.n = 0

    def name(self, prefix="v"):
        self.n += 1
        return f"{prefix}{self.n}"

    def const(self, array: np.ndarray) -> str:
        name = self.name("c")
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op, inputs, shape, **attrs) -> str:
        out = self.name()
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.name("n"), **attrs))
        self.values.append((out, tuple(shape)))
        return out

    def pick(self):
        # mostly the latest value, sometimes an older one (more readers of one value)
        if self.rng.random() < 0.7:
            return self.values[-1]
        return self.rng.choice(self.values)

    def rand_array(self, shape, kind=None):
        r = self.rng
        kind = kind or r.choice(["normal", "normal", "zero", "one", "small"])
        if kind == "zero":
            return np.zeros(shape, np.float32)
        if kind == "one":
            return np.ones(shape, np.float32)
        if kind == "small":
            return np.full(shape, r.choice([0.5, 2.0, -1.0]), np.float32)
        seed = r.randrange(1 << 30)
        return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)

    def broadcast_shape_for(self, shape):
        """A shape that broadcasts to `shape` (or, now and then, one that widens it)."""
        r = self.rng
        if r.random() < 0.15 and len(shape) < 4:
            return (2,) + tuple(shape) if r.random() < 0.5 else (1,) * (len(shape) + 1)
        k = r.randrange(len(shape) + 1)
        return tuple(d if r.random() < 0.5 else 1 for d in shape[len(shape) - k:])


def step(g: G):
    r = g.rng
    x, shape = g.pick()
    rank = len(shape)
    op = r.choice(["unary", "unary", "binary", "binary", "binary", "transpose", "reshape", "unsqueeze", "squeeze",
                   "slice", "concat", "expand", "cast", "shape", "pad", "where", "reduce", "duplicate", "identity",
                   "dropout", "matmul", "conv", "transpose2", "reshape2", "sum"])
    if op == "unary":
        u = r.choice(["Relu", "Neg", "Abs", "Sigmoid", "Tanh", "Floor", "Ceil", "Softsign"])
        return g.node(u, [x], shape)
    if op == "binary":
        b = r.choice(["Add", "Sub", "Mul", "Div", "Max", "Min"])
        if r.random() < 0.3 and len(g.values) > 1:
            y, yshape = r.choice(g.values)
            try:
                out = np.broadcast_shapes(shape, yshape)
            except ValueError:
                return None
            if b == "Div":
                b = "Mul"
            ins = [x, y] if r.random() < 0.5 else [y, x]
            return g.node(b, ins, out)
        cshape = g.broadcast_shape_for(shape)
        c = g.rand_array(cshape, kind=r.choice(["zero", "one", "normal", "small"]))
        if b == "Div":
            c = np.where(c == 0, np.float32(1), c).astype(np.float32)
        cn = g.const(c)
        out = np.broadcast_shapes(shape, cshape)
        ins = [x, cn] if r.random() < 0.7 or b == "Div" else [cn, x]
        return g.node(b, ins, out)
    if op in ("transpose", "transpose2") and rank == 0:
        return None
    if op == "transpose":
        perm = list(range(rank))
        if r.random() < 0.7:
            r.shuffle(perm)
        return g.node("Transpose", [x], [shape[p] for p in perm], perm=perm)
    if op == "transpose2":
        perm = list(range(rank))
        r.shuffle(perm)
        t = g.node("Transpose", [x], [shape[p] for p in perm], perm=perm)
        inv = [perm.index(i) for i in range(rank)] if r.random() < 0.5 else list(range(rank))
        r.shuffle(inv) if r.random() < 0.3 else None
        return g.node("Transpose", [t], [[shape[p] for p in perm][i] for i in inv], perm=inv)
    if op in ("reshape", "reshape2"):
        n = int(np.prod(shape))
        target = list(shape) if r.random() < 0.3 else random_factorization(r, n)
        spec = list(target)
        if spec and r.random() < 0.3:
            spec[r.randrange(len(spec))] = -1
        if spec and r.random() < 0.3:
            i = r.randrange(min(len(spec), rank)) if rank else None
            if i is not None and i < rank and target[i] == shape[i] and spec.count(-1) <= 1:
                spec[i] = 0
        if spec.count(-1) > 1:
            return None
        y = g.node("Reshape", [x, g.const(np.array(spec, np.int64))], target)
        if op == "reshape2":
            t2 = random_factorization(r, n)
            spec2 = list(t2)
            if spec2 and r.random() < 0.4:
                spec2[0] = 0 if target and t2[0] == target[0] else spec2[0]
            return g.node("Reshape", [y, g.const(np.array(spec2, np.int64))], t2)
        return y
    if op == "unsqueeze" and rank < 5:
        ax = r.randrange(-(rank + 1), rank + 1)
        pos = ax if ax >= 0 else ax + rank + 1
        out = list(shape)
        out.insert(pos, 1)
        y = g.node("Unsqueeze", [x, g.const(np.array([ax], np.int64))], out)
        if r.random() < 0.5:
            return g.node("Squeeze", [y, g.const(np.array([ax], np.int64))], shape)
        return y
    if op == "squeeze":
        ones = [i for i, d in enumerate(shape) if d == 1]
        if not ones:
            return None
        ax = r.choice(ones)
        out = [d for i, d in enumerate(shape) if i != ax]
        y = g.node("Squeeze", [x, g.const(np.array([ax], np.int64))], out)
        if r.random() < 0.5:
            return g.node("Unsqueeze", [y, g.const(np.array([ax], np.int64))], shape)
        return y
    if op == "slice" and rank:
        ax = r.randrange(rank)
        d = shape[ax]
        kind = r.choice(["full", "full-big", "reverse", "part"])
        if kind == "full":
            s, e, st, out = 0, d, 1, d
        elif kind == "full-big":
            s, e, st, out = 0, (1 << 62), 1, d
        elif kind == "reverse":
            s, e, st, out = -1, -(1 << 62), -1, d
        else:
            s = r.randrange(d)
            e = r.randrange(s + 1, d + 1)
            st, out = 1, e - s
        oshape = list(shape)
        oshape[ax] = out
        return g.node("Slice", [x, g.const(np.array([s], np.int64)), g.const(np.array([e], np.int64)),
                                g.const(np.array([ax], np.int64)), g.const(np.array([st], np.int64))], oshape)
    if op == "concat" and rank:
        ax = r.randrange(rank)
        k = r.choice([1, 2])
        oshape = list(shape)
        oshape[ax] *= k
        return g.node("Concat", [x] * k, oshape, axis=ax)
    if op == "expand":
        target = [d for d in shape]
        if r.random() < 0.3:
            target = [2] + target if len(target) < 4 else target
        spec = [1 if r.random() < 0.5 else d for d in target]
        return g.node("Expand", [x, g.const(np.array(spec, np.int64))], np.broadcast_shapes(shape, tuple(spec)))
    if op == "cast":
        to = r.choice([TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16])
        y = g.nodes.append(helper.make_node("Cast", [x], [g.name("k")], to=to)) or g.nodes[-1].output[0]
        return g.node("Cast", [y], shape, to=TensorProto.FLOAT)
    if op == "shape" and rank:
        s = g.nodes.append(helper.make_node("Shape", [x], [g.name("s")])) or g.nodes[-1].output[0]
        i = r.randrange(rank)
        gathered = g.name("g")
        g.nodes.append(helper.make_node("Gather", [s, g.const(np.array([i], np.int64))], [gathered], axis=0))
        neg = g.name("m")
        g.nodes.append(helper.make_node("Concat", [g.const(np.array([-1], np.int64)), gathered], [neg], axis=0))
        n = int(np.prod(shape))
        return g.node("Reshape", [x, neg], [n // shape[i], shape[i]])
    if op == "pad" and rank:
        pads = [0] * (2 * rank)
        i = r.randrange(2 * rank)
        pads[i] = r.choice([0, 1, 2])
        oshape = list(shape)
        oshape[i % rank] += pads[i]
        ins = [x, g.const(np.array(pads, np.int64))]
        if r.random() < 0.3:
            ins.append(g.const(np.array(r.choice([0.0, 1.0]), np.float32)))
        return g.node("Pad", ins, oshape, mode="constant")
    if op == "where":
        cshape = g.broadcast_shape_for(shape)
        cond = np.random.default_rng(r.randrange(1 << 30)).integers(0, 2, cshape).astype(bool)
        if r.random() < 0.3:
            cond[...] = True
        other = x if r.random() < 0.4 else g.const(g.rand_array(shape))
        return g.node("Where", [g.const(cond), x, other], np.broadcast_shapes(shape, cshape))
    if op == "reduce" and rank:
        ax = r.randrange(rank)
        keep = r.choice([0, 1])
        oshape = [d for i, d in enumerate(shape) if i != ax] if not keep else [1 if i == ax else d for i, d in enumerate(shape)]
        return g.node("ReduceSum", [x, g.const(np.array([ax], np.int64))], oshape, keepdims=keep)
    if op == "duplicate" and g.nodes:
        last = g.nodes[-1]
        if len(last.output) == 1 and last.output[0] in dict(g.values):
            dup = helper.make_node(last.op_type, list(last.input), [g.name()], name=g.name("n"))
            dup.attribute.extend(last.attribute)
            g.nodes.append(dup)
            g.values.append((dup.output[0], dict(g.values)[last.output[0]]))
            return g.node("Sub", [last.output[0], dup.output[0]], dict(g.values)[last.output[0]])
        return None
    if op == "identity":
        return g.node("Identity", [x], shape)
    if op == "dropout":
        return g.node("Dropout", [x], shape)
    if op == "sum":
        return g.node("Sum", [x] * r.choice([1, 2, 3]), shape)
    if op == "matmul" and rank == 2:
        n = r.choice([1, 3, 4])
        y = g.node("MatMul", [x, g.const(g.rand_array((shape[1], n), "normal"))], (shape[0], n))
        if r.random() < 0.6:
            bshape = r.choice([(n,), (1, n), (shape[0], n), (1,), (shape[0], 1)])
            return g.node("Add", [y, g.const(g.rand_array(bshape, "normal"))], (shape[0], n))
        return y
    if op == "conv" and rank == 4:
        c = shape[1]
        m = r.choice([1, 2, 3])
        w = g.const(g.rand_array((m, c, 1, 1), "normal"))
        y = g.node("Conv", [x, w], (shape[0], m, shape[2], shape[3]))
        if r.random() < 0.6:
            ps = [g.const(g.rand_array((m,), "normal")) for _ in range(3)]
            var = g.const(np.abs(g.rand_array((m,), "normal")) + 0.1)
            return g.node("BatchNormalization", [y, *ps, var], (shape[0], m, shape[2], shape[3]))
        return y
    return None


def random_factorization(r: random.Random, n: int) -> list[int]:
    dims = []
    rest = n
    for _ in range(r.randrange(1, 4)):
        divisors = [d for d in range(1, rest + 1) if rest % d == 0]
        d = r.choice(divisors)
        dims.append(d)
        rest //= d
    dims.append(rest)
    r.shuffle(dims)
    return dims[: 5]


def random_graph(rng: random.Random) -> onnx.ModelProto:
    g = G(rng)
    rank = rng.randrange(1, 5)
    shape = tuple(rng.choice([1, 2, 3, 4]) for _ in range(rank))
    g.values.append(("X", shape))
    steps = rng.randrange(4, 25)
    tries = 0
    while len(g.nodes) < steps and tries < 200:
        tries += 1
        step(g)
    outs = [g.values[-1]] + [rng.choice(g.values[1:])] if len(g.values) > 2 else [g.values[-1]]
    seen, outputs = set(), []
    for name, s in outs:
        if name not in seen and name != "X":
            seen.add(name)
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [int(d) for d in s]))
    if not outputs:
        g.nodes.append(helper.make_node("Identity", ["X"], ["Y"]))
        outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, list(shape))]
    graph = helper.make_graph(g.nodes, "random", [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(shape))],
                              outputs, g.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m
