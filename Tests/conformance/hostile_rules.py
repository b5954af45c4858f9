"""Class 2 of the hostile battery: hostile rule files.

Each file runs as `--no-builtin --rules FILE` on a small fixture and through `rules check FILE`:
expressions nested and chained past the documented limits, values past the element, rank, list
and matmul limits, numbers and names at their edges, byte and token soup, random mutations of the
built-in rules, replacements that make invalid nodes (attributes, input counts, types, cycles,
changed output types) and rule sets that never converge.

A user's rule may change what a model computes, so the numbers are compared only for the files
written to keep them (the expression and value bombs, the loops); every other success must
still load and pass the onnx checker when the input does.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from hostile_infra import BUILTIN_RULES, FIXTURES, FULL, Inv, Spec
from hostile_models import copy_fixture

I64_MAX = (1 << 63) - 1

# ---------------------------------------------------------------------------
# Templates


def where_rule(cond: str) -> str:
    """On identity_chain.onnx: the condition is evaluated at every Identity; true forwards it."""
    return f"rule bomb {{\n  match {{ y = Identity(x) }}\n  where {{ {cond} }}\n  replace {{ y = x }}\n}}\n"


def compute_rule(line: str) -> str:
    """On conv_bn.onnx: the BatchNormalization fold with one more compute line (every compute
    line is evaluated, read or not)."""
    return (
        "rule bomb {\n  match {\n    y = Conv(x, w, b?)\n"
        "    z = BatchNormalization<epsilon: eps = 1e-5, training_mode: tm = 0>(y, scale, shift, mean, var)\n  }\n"
        "  where { tm == 0 && constant(w, b, scale, shift, mean, var) }\n"
        f"  compute {{\n    big = {line}\n    k = scale / sqrt(var + eps)\n"
        "    w2 = w * reshape(k, [dim(w, 0)] ++ ones(rank(w) - 1))\n"
        "    b2 = (default(b, 0) - mean) * k + shift\n  }\n"
        "  replace { z = Conv<...y>(x, w2, b2) }\n}\n")


def replace_rule(match: str, replace: str, compute: str = "", where: str = "") -> str:
    parts = [f"  match {{ {match} }}"]
    if where:
        parts.append(f"  where {{ {where} }}")
    if compute:
        parts.append(f"  compute {{ {compute} }}")
    parts.append(f"  replace {{ {replace} }}")
    return "rule hostile {\n" + "\n".join(parts) + "\n}\n"


# name -> (rule text (str or bytes) or a function of rng, fixture, numeric)
FILES: dict[str, tuple] = {}


def add(name, text, fixture="identity_chain.onnx", numeric=True, run=True, expect=None):
    """expect: the exit codes both the run and `rules check` must end with (default: any
    documented one)."""
    assert name not in FILES, name
    FILES[name] = (text, fixture, numeric, run, expect)


# --- nesting and chains ------------------------------------------------------------------------

for d in (63, 64, 65, 1000, 100_000):
    add(f"parens-{d}", where_rule("(" * d + "true" + ")" * d))
    add(f"brackets-{d}", where_rule("[" * d + "1" + "]" * d + " != []"))
    add(f"calls-{d}", where_rule("abs(" * d + "1" + ")" * d + " > 0"))
    add(f"not-{d}", where_rule("!" * d + ("true" if d % 2 == 0 else "false")))
    add(f"minus-{d}", where_rule("-" * d + "1 != 0"))
for n in (511, 512, 513, 30_000, 100_000):
    add(f"and-chain-{n}", where_rule(" && ".join(["true"] * n)))
    add(f"or-chain-{n}", where_rule(" || ".join(["false"] * (n - 1) + ["true"])))
    add(f"plus-chain-{n}", where_rule(" + ".join(["1"] * n) + f" == {n}"))
    add(f"concat-chain-{n}", where_rule(" ++ ".join(["[1]"] * n) + " != []"))
    add(f"mul-chain-{n}", where_rule(" * ".join(["1"] * n) + " == 1"))
add("plus-chain-30000-in-parens", where_rule("(" + " + ".join(["1"] * 30_000) + ") == 30000"))
add("plus-chain-multiline-30000", where_rule(" +\n".join(["1"] * 30_000) + " == 30000"))
add("and-lines-30000", where_rule("\n".join(["true"] * 30_000)))
add("parens-and-chains-mixed", where_rule("(" * 60 + " && ".join(["true"] * 500) + ")" * 60))
add("comparison-chain", where_rule("1 < 2 < 3"))
if FULL:
    add("and-chain-1M-8MB", where_rule(" && ".join(["true"] * 1_000_000)))

# --- values past the limits --------------------------------------------------------------------

# Values of 32 and 64 Mi elements (the limits of one value and of one application of a rule;
# 64 Mi for one value before) and 2^30 multiply-adds take 20 s and more each in a debug build
# when they are computed: most run only with ONNX_FUSE_HOSTILE_FULL=1 (len-of-32Mi, 5 s in a
# debug build and over 1 GiB, stays).
SLOW_VALUES = {"full-64Mi-chain", "broadcast-64Mi", "transpose-rank-26-64Mi", "matmul-batched-broadcast", "len-of-64Mi",
               "range-1Mi-concat", "full-32Mi-times-2", "broadcast-32Mi", "transpose-rank-25-32Mi"}

for name, line in {
    "full-1e6-squared": "full([1000000, 1000000], 1)",
    "full-2^32-squared": "full([4294967296, 4294967296], 0)",
    "full-overflowing-shape": "full([4611686018427387904, 4], 0)",
    "full-negative-shape": "full([-1], 0)",
    "full-64Mi": "full([8192, 8192], 1.0)",
    "full-64Mi-plus-one": "full([8192, 8193], 1.0)",
    "full-64Mi-sum": "full([8192, 8192], 1.0) + full([8192, 8192], 2.0)",
    "full-64Mi-chain": "full([8192, 8192], 1.0) * 2 + 1 - full([8192, 8192], 3.0)",
    "broadcast-64Mi": "full([8192, 1], 1) * full([1, 8192], 1)",
    "broadcast-over": "full([8193, 1], 1) * full([1, 8192], 1)",
    "broadcast-huge": "full([65536, 1, 65536], 1) * full([1, 65536, 1], 1)",
    "ones-1Mi": "full(ones(1048576), 1)",
    "ones-1Mi-plus-one": "ones(1048577)",
    "ones-2^62": "ones(4611686018427387904)",
    "ones-negative": "ones(-1)",
    "ones-fraction": "ones(0.5)",
    "zeros-2^62": "zeros(4611686018427387904)",
    "range-2^62": "range(0, 4611686018427387904)",
    "range-int64": f"range(-{I64_MAX} - 1, {I64_MAX})",
    "range-1e300": "range(1e300)",
    "range-nan": "range(0 / 0)",
    "range-1Mi-concat": "range(1048576) ++ range(1048576) ++ range(1048576)",
    "rank-64": "reshape(full([1], 1), ones(64))",
    "rank-65": "reshape(full([1], 1), ones(65))",
    "unsqueeze-65": "unsqueeze(full([1], 1), range(65))",
    "transpose-rank-26-64Mi": "transpose(full(ones(26) + ones(26), 1.0))",
    "matmul-2^30": ("matmul(full([1024, 1024], 1), full([1024, 1024], 1))" if FULL
                    else "matmul(full([1025, 1024], 1), full([1024, 1024], 1))"),
    "matmul-batched-broadcast": "matmul(full([4096, 1, 1, 64], 1), full([1, 4096, 64, 1], 1))",
    "matmul-2^31-outer": "matmul(full([2147483648, 1], 1), full([1, 2147483648], 1))",
    "matmul-rank-0": "matmul(1, 2)",
    "permute-1Mi": "permute(range(1048576), range(1048576))",
    "permute-out-of-range": "permute([1, 2], [5, 0])",
    "slice-huge": "slice(range(10), 0, 4611686018427387904)",
    "slice-int-min": f"slice(range(10), -{I64_MAX} - 1, 5)",
    "dim-huge": "dim(w, 4611686018427387904)",
    "dim-int-min": f"dim(w, -{I64_MAX} - 1)",
    "int-overflow": f"{I64_MAX} + 1",
    "int-min-minus": f"-{I64_MAX} - 2",
    "int-2^63-literal": "9223372036854775808",
    "int-times-overflow": "4611686018427387904 * 4",
    "float-1e400": "1e400",
    "div-zero": "1 / 0",
    "zero-div-zero": "0 / 0",
    "cast-huge-int8": "cast(full([4], 1e300), int8)",
    "cast-nan-int64": "cast(full([4], 0) / 0, int64)",
    "cast-undefined": "cast(w, undefined)",
    "cast-string": "cast(w, string)",
    "cast-garbage": "cast(w, 17)",
    "reshape-two-minus-one": "reshape(w, [-1, -1])",
    "reshape-zero-minus-one": "reshape(w, [0, -1])",
    "reshape-huge": f"reshape(w, [{I64_MAX}, 2])",
    "squeeze-huge-axis": f"squeeze(w, [{I64_MAX}])",
    "len-of-number": "len(5)",
    "string-arith": '"a" + 1',
    "list-arith-mismatch": "[1, 2] + [1, 2, 3]",
    "tensor-compare-list": "w == [1, 2]",
    "default-of-number": "default(5, w)",
    "exp-overflow": "exp(full([4], 1000.0))",
    "log-negative": "log(full([4], -1.0))",
    "sqrt-negative": "sqrt(-1)",
    "len-of-64Mi": "len(full([8192, 8192], 1.0))",
    # at the element limit of one value (32 Mi) and the work limit of an application (64 Mi)
    "full-32Mi": "full([4096, 8192], 1.0)",
    "full-32Mi-times-2": "full([4096, 8192], 1.0) * 2",
    "broadcast-32Mi": "full([4096, 1], 1) * full([1, 8192], 1)",
    "transpose-rank-25-32Mi": "transpose(full(ones(25) + ones(25), 1.0))",
    "full-32Mi-sum": "full([4096, 8192], 1.0) + full([4096, 8192], 2.0)",
    "len-of-32Mi": "len(full([4096, 8192], 1.0))",
}.items():
    if name in SLOW_VALUES and not FULL:
        continue
    add(f"value-{name}", compute_rule(line), fixture="conv_bn.onnx")

# docs/rules.md: "rank(t), shape(t), numel(t) | of a computed tensor"
add("numel-of-computed", compute_rule("numel(k0)").replace("    big = numel(k0)", "    k0 = full([4], 1.0)\n    big = numel(k0)"),
    fixture="conv_bn.onnx", expect=frozenset({0}))

# --- numbers, names and text at their edges -------------------------------------------------

add("number-huge-literal", where_rule("1" * 100_000 + " > 0"))
add("number-exponent-huge", where_rule("1e999999999 > 0"))
add("number-trailing-dot", where_rule("1. > 0"))
add("number-leading-dot", where_rule(".5 > 0"))
add("benefit-2^63", "rule r {\n  benefit 9223372036854775808\n  match { y = Identity(x) }\n  replace { y = x }\n}\n")
add("benefit-int-min", f"rule r {{\n  benefit -{I64_MAX + 1}\n  match {{ y = Identity(x) }}\n  replace {{ y = x }}\n}}\n")
add("benefit-huge", "rule r {\n  benefit 99999999999999999999999999\n  match { y = Identity(x) }\n  replace { y = x }\n}\n")
BIG = 1_000_000 if FULL else 100_000
add(f"identifier-{BIG}", where_rule("a" * BIG + " == 1"))
add(f"rule-name-{BIG}", "rule " + "r" * BIG + " {\n  match { y = Identity(x) }\n  replace { y = x }\n}\n")
add(f"string-{BIG * 10}", where_rule('"' + "s" * (BIG * 10) + '" != ""'))
add("string-escapes", where_rule('"\\q\\x1b\\u{0}" != ""'))
add(f"rules-{BIG // 20}", "".join(f"rule r{i} {{ match {{ y = Identity(x) }} replace {{ y = x }} }}\n"
                                  for i in range(BIG // 20)))
add("rules-duplicate-names", "rule r { match { y = Identity(x) } replace { y = x } }\n" * 3)
add("commute-100k", "rule r {\n" + "  commute Add\n" * 100_000 + "  match { y = Identity(x) }\n  replace { y = x }\n}\n")
add("match-1000-node-chain", "rule r {\n  match {\n" + "".join(
    f"    v{i + 1} = Identity(v{i})\n" for i in range(1000)) + "  }\n  replace { v1000 = v0 }\n}\n")
add("file-16MiB", ("# " + "x" * 1022 + "\n") * (16 * 1024) + "rule r { match { y = Identity(x) } replace { y = x } }\n")
add("file-16MiB-exactly", ("# " + "x" * 1022 + "\n") * (16 * 1024))
add("file-empty", "")
add("file-bom", "\ufeffrule r { match { y = Identity(x) } replace { y = x } }\n")
add("file-crlf", "rule r {\r\n  match { y = Identity(x) }\r\n  replace { y = x }\r\n}\r\n")
add("file-cr-only", "rule r {\r  match { y = Identity(x) }\r  replace { y = x }\r}\r")
add("file-nul-bytes", b"rule r {\0 match { y = Identity(x) }\0 replace { y = x } }\n")
add("file-not-utf8", b"rule r\xff\xfe {\n  match { y = Identity(x) }\n  replace { y = x }\n}\n")
add("file-control-characters", "rule r\x1b[2J {\n  match { y = Id\x07entity(x) }\n  replace { y = x\x9b }\n}\n")
add("file-line-separators", "rule r {\u2028  match { y = Identity(x) }\u2029  replace { y = x }\n}\n")
add("file-unicode-names", "rule ré {\n  match { ÿ = Identity(x) }\n  replace { ÿ = x }\n}\n")
add("file-unterminated", "rule r {\n  match { y = Identity(x")
add("file-only-braces", "{" * 100_000 + "}" * 100_000)
add("file-10k-errors", "rule r {\n" + "  bogus ]]]\n" * 10_000 + "}\n")

# --- replacements that make invalid nodes -----------------------------------------------------

BN_MATCH = ("y = Conv(x, w, b?)\n    z = BatchNormalization<epsilon: eps = 1e-5>(y, scale, shift, mean, var)")
BN_COMPUTE = ("k = scale / sqrt(var + eps)\n    w2 = w * reshape(k, [dim(w, 0)] ++ ones(rank(w) - 1))\n"
              "    b2 = (default(b, 0) - mean) * k + shift\n    bi = cast(b2, int64)\n    ci = [1, 2]\n"
              "    bd = cast(b2, double)")
for name, replace in {
    "attr-group-string": 'z = Conv<...y, group = "x">(x, w2, b2)',
    "attr-kernel-float": "z = Conv<...y, kernel_shape = 1.5>(x, w2, b2)",
    "attr-pads-floats": "z = Conv<...y, pads = [1.5, 1.5, 1.5, 1.5]>(x, w2, b2)",
    "attr-group-tensor": "z = Conv<...y, group = w2>(x, w2, b2)",
    "attr-unknown": "z = Conv<...y, bogus = 1>(x, w2, b2)",
    "attr-auto-pad-garbage": 'z = Conv<...y, auto_pad = "SIDEWAYS">(x, w2, b2)',
    "attr-group-zero": "z = Conv<...y, group = 0>(x, w2, b2)",
    "attr-huge-list": "z = Conv<...y, dilations = range(1048576)>(x, w2, b2)",
    "inputs-too-many": "z = Conv<...y>(x, w2, b2, b2, b2)",
    "inputs-too-few": "z = Conv<...y>()",
    "inputs-required-absent": "z = Conv<...y>(_, w2, b2)",
    "type-mismatch-int-bias": "z = Conv<...y>(x, w2, bi)",
    "type-mismatch-computed-int": "z = Add(x, ci)",
    "type-mismatch-double": "z = Add(x, bd)",
    "outputs-too-many": "z, q, r = Conv<...y>(x, w2, b2)",
    "output-type-changed": "z = Cast<to = 7>(x)",
    "output-rank-changed": "z = ReduceSum<keepdims = 0>(x)",
    "output-shape": "z = Shape(x)",
    "op-not-in-opset": "z = Gelu(x)",
    "op-unknown-default-domain": "z = FooBar(x)",
    "op-unknown-domain": "z = com.evil.Foo(x, w2, b2)",
    "op-ml-domain": "z = ai.onnx.ml.Normalizer<norm = \"MAX\">(x)",
    "cycle-self": "z = Add(x, z)",
    "cycle-indirect": "t = Relu(z)\n    z = Add(x, t)",
    "cycle-through-new": "t = Relu(u)\n    u = Relu(t)\n    z = Add(t, x)",
    "reads-interior": "z = Conv<...y>(y, w2, b2)",
    "forward-to-input": "z = x",
    "forward-to-computed": "z = w2",
    "empty": "",
    "ten-thousand-nodes": "\n    ".join(["t0 = Conv<...y>(x, w2, b2)"] + [f"t{i} = Identity(t{i - 1})" for i in range(1, 10_000)]
                                       + ["z = Identity(t9999)"]),
    "redefine-input": "x = Relu(x)\n    z = Conv<...y>(x, w2, b2)",
    "two-defs": "z = Conv<...y>(x, w2, b2)\n    z = Relu(x)",
    "copy-attrs-of-input": "z = Conv<...x>(x, w2, b2)",
}.items():
    add(f"replace-{name}", replace_rule(BN_MATCH, replace, BN_COMPUTE).replace("match { y", "match {\n    y"),
        fixture="conv_bn.onnx", numeric=False)

add("replace-subgraph-attrs", replace_rule("y = If(c)", "y = If<...y>(c)"), fixture="if_subgraph.onnx", numeric=False)
add("replace-graph-output-removed", replace_rule("y = Relu(x)", ""), fixture="conv_bn.onnx", numeric=False)
add("anchor-initializer-all", "rule r {\n  match { initializer w }\n  replace { }\n}\n", fixture="conv_bn.onnx")
add("anchor-opset-all", "rule r {\n  match { opset_import d }\n  replace { }\n}\n", fixture="conv_bn.onnx")
add("anchor-initializer-with-replace", "rule r {\n  match { initializer w }\n  replace { y = Relu(w) }\n}\n",
    fixture="conv_bn.onnx", numeric=False)
add("any-op-remove-everything", "rule r {\n  match { _ = _(...) }\n  replace { }\n}\n", fixture="dead_nodes.onnx")
add("any-op-replace-relu", "rule r {\n  match { y = _(x, ...) }\n  replace { y = Relu(x) }\n}\n", fixture="conv_bn.onnx",
    numeric=False)
add("builtin-name-clash", "rule fold-conv-batchnorm {\n  match { y = Identity(x) }\n  replace { y = x }\n}\n", run=True)

# --- rule sets that never converge -------------------------------------------------------------

add("loop-self", "rule a {\n  match { y = Relu(x) }\n  replace { y = Relu(x) }\n}\n", fixture="conv_bn.onnx")
add("loop-commute", "rule a {\n  match { y = Add(p, q) }\n  replace { y = Add(q, p) }\n}\n", fixture="conv_add_bias.onnx")
add("loop-two-rules",
    "rule a {\n  match { y = Relu(x) }\n  replace { t = Transpose<perm = [1, 0]>(x)\n    u = Transpose<perm = [1, 0]>(t)\n"
    "    y = Relu(u) }\n}\n"
    "rule b {\n  match { t = Transpose<perm = [1, 0]>(x)\n    u = Transpose<perm = [1, 0]>(t) }\n  replace { u = x }\n}\n",
    fixture="identity_chain.onnx")
add("loop-growth-identity", "rule a {\n  match { y = Identity(x) }\n  replace { t = Identity(x)\n    y = Identity(t) }\n}\n")
add("loop-growth-doubling",
    "rule a {\n  match { y = Relu(x) }\n  replace { p = Relu(x)\n    q = Relu(x)\n    y = Max(p, q) }\n}\n")
add("loop-new-initializer-each-time",
    "rule a {\n  match { y = Conv(x, w) }\n  where { constant(w) }\n  compute { w2 = w * 1 }\n  replace { y = Conv<...y>(x, w2) }\n}\n",
    fixture="conv_bn.onnx")
add("loop-growing-initializer",
    "rule a {\n  match { y = Conv(x, w) }\n  where { constant(w) }\n"
    "  compute { w2 = w * 1\n    big = full([numel(w) * 64], 1.0) }\n  replace { y = Conv<...y>(x, w2) }\n}\n",
    fixture="conv_bn.onnx")
add("exponential-pattern",
    "rule a {\n  match {\n" + "".join(f"    a{i} = Relu(x)\n" for i in range(12))
    + "    z = Sum(" + ", ".join(f"a{i}" for i in range(12)) + ")\n  }\n  replace { z = Relu(x) }\n}\n",
    fixture="many_relus")

# ---------------------------------------------------------------------------
# Soup and mutations

TOKENS = ["rule", "r", "{", "}", "match", "where", "compute", "replace", "benefit", "commute", "(", ")", "[", "]",
          "<", ">", "=", "==", "!=", "&&", "||", "++", "+", "-", "*", "/", "!", ",", ";", ":", "?", "...", "_", "y", "x",
          "w", "Conv", "Identity", "Relu", "BatchNormalization", "1", "0.5", "1e-5", '"s"', "true", "false", "in",
          "initializer", "opset_import", "full", "ones", "range", "matmul", "reshape", "\n", "#", ".", "com.x.Op",
          "9223372036854775807", "-1", "...y"]
OPS = ["Conv", "Relu", "Add", "Mul", "Gemm", "MatMul", "Identity", "Transpose", "Reshape", "Cast", "If", "Loop",
       "Constant", "BatchNormalization", "Pad", "Squeeze", "Unsqueeze", "Dropout", "Foo", "Shape", "Split", "Concat"]
HOSTILE_NUMBERS = ["0", "1", "-1", "2", "1e308", "1e-320", "9223372036854775807", "9223372036854775808", "0.5",
                   "4611686018427387904", "1048577", "65", "3e38", "100000"]


def soup_bytes(rng: random.Random) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.choice([1, 16, 256, 4096])))


def soup_ascii(rng: random.Random) -> bytes:
    return "".join(chr(rng.randrange(32, 127)) if rng.random() > 0.05 else "\n"
                   for _ in range(rng.choice([16, 256, 4096]))).encode()


def soup_tokens(rng: random.Random) -> bytes:
    n = rng.choice([5, 20, 100, 1000])
    return " ".join(rng.choice(TOKENS) for _ in range(n)).encode()


TOKEN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\"(?:[^\"\\\n]|\\.)*\"|\.\.\.|"
                      r"&&|\|\||\+\+|==|!=|<=|>=|#[^\n]*|\s+|.", re.S)


def mutate_rules(text: str, rng: random.Random) -> str:
    for _ in range(rng.choice([1, 1, 2, 3])):
        tokens = TOKEN_RE.findall(text)
        solid = [i for i, t in enumerate(tokens) if not t.isspace() and not t.startswith("#")]
        if not solid:
            break
        i = rng.choice(solid)
        kind = rng.randrange(10)
        if kind == 0:
            tokens[i] = ""
        elif kind == 1:
            tokens[i] = tokens[i] + " " + tokens[i]
        elif kind == 2:
            j = rng.choice(solid)
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif kind == 3:
            names = [t for t in tokens if re.fullmatch(r"[a-z_][a-z0-9_]*", t)]
            tokens[i] = rng.choice(names) if names else tokens[i]
        elif kind == 4:
            nums = [k for k in solid if re.fullmatch(r"\d.*", tokens[k])]
            tokens[rng.choice(nums) if nums else i] = rng.choice(HOSTILE_NUMBERS)
        elif kind == 5:
            ops = [k for k in solid if tokens[k] in OPS]
            tokens[rng.choice(ops) if ops else i] = rng.choice(OPS)
        elif kind == 6:
            tokens[i] = rng.choice(TOKENS)
        else:
            lines = "".join(tokens).split("\n")
            k = rng.randrange(len(lines))
            if kind == 7:
                del lines[k]
            elif kind == 8:
                lines.insert(k, lines[k])
            else:
                j = rng.randrange(len(lines))
                lines[k], lines[j] = lines[j], lines[k]
            text = "\n".join(lines)
            continue
        text = "".join(tokens)
    return text


MUTATION_FIXTURES = {
    "batchnorm.rules": ["conv_bn.onnx", "conv_bias_bn.onnx", "convtranspose_bn.onnx", "convtranspose_grouped_bn.onnx",
                        "gemm_bn.onnx", "gemm_transb0_bn.onnx", "matmul_bn.onnx", "matmul_transpose_bn.onnx",
                        "conv1d_bn.onnx", "conv3d_bn.onnx", "fp16_weights.onnx", "conv_bn_traps.onnx"],
    "affine.rules": ["affine_variants.onnx", "conv_add_bias.onnx", "conv_mul_scale.onnx", "convtranspose_mul.onnx",
                     "pad_conv.onnx", "pad_conv_axes.onnx", "pad_conv_opset10.onnx", "conv_add_trap.onnx"],
    "matmul.rules": ["lora.onnx", "lora_scaled.onnx", "matmul_scale.onnx", "matmul_add.onnx", "double_weights.onnx", "rule_traps.onnx"],
    "arithmetic.rules": ["constant_chains.onnx", "matmul_scale.onnx"],
    "attention.rules": ["attention.onnx"],
    "activation.rules": ["gelu_erf.onnx", "gelu_tanh.onnx", "hard_swish.onnx", "hard_sigmoid_opset10.onnx"],
    "normalization.rules": ["layernorm.onnx", "layernorm_opset18.onnx", "rmsnorm.onnx"],
    "cleanup.rules": ["identity_chain.onnx", "transpose_constant.onnx", "dropout_opset12.onnx", "transpose_pair.onnx", "squeeze_unsqueeze.onnx",
                      "squeeze_unsqueeze_opset11.onnx", "reshape_reshape.onnx", "dead_nodes.onnx"],
}

# ---------------------------------------------------------------------------
# Specs


def many_relus(work: Path) -> str:
    import onnx
    from onnx import TensorProto, helper

    n = 30
    nodes = [helper.make_node("Relu", ["X"], [f"a{i}"]) for i in range(n)]
    nodes.append(helper.make_node("Sum", [f"a{i}" for i in range(n)], ["Y"]))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(work / "many_relus.onnx"))
    return "many_relus.onnx"


def place_model(fixture: str, work: Path) -> str:
    return many_relus(work) if fixture == "many_relus" else copy_fixture(fixture, work)


def run_spec(case_id: str, make_text, fixture: str, numeric: bool, builtin: bool = False, cost: float = 1.0,
             expect=None) -> Spec:
    def setup(work: Path, aux: Path, rng: random.Random) -> Inv:
        text = make_text(rng) if callable(make_text) else make_text
        (work / "r.rules").write_bytes(text.encode() if isinstance(text, str) else text)
        model = place_model(fixture, work)
        args = ([] if builtin else ["--no-builtin"]) + ["--rules", "r.rules", model, "-o", "out.onnx"]
        return Inv(argv=args, model=model, output="out.onnx", numeric=numeric, expect=expect)

    return Spec(case_id, setup, cost=cost)


def check_spec(case_id: str, make_text, cost: float = 1.0, expect=None) -> Spec:
    def setup(work: Path, aux: Path, rng: random.Random) -> Inv:
        text = make_text(rng) if callable(make_text) else make_text
        (work / "r.rules").write_bytes(text.encode() if isinstance(text, str) else text)
        return Inv(argv=["rules", "check", "r.rules"], expect=expect or frozenset({0, 1}))

    return Spec(case_id, setup, cost=cost)


def specs() -> list[Spec]:
    out = []
    for name, (text, fixture, numeric, run, expect) in FILES.items():
        big = len(text) > 100_000 if isinstance(text, (str, bytes)) else False
        cost = 8.0 if big or "value-" in name else 1.5
        out.append(run_spec(f"rules-run-{name}", text, fixture, numeric, builtin=name == "builtin-name-clash", cost=cost,
                            expect=expect))
        out.append(check_spec(f"rules-check-{name}", text, cost=cost, expect=expect))
    n_soup = 60 if FULL else 15
    for kind, fn in (("bytes", soup_bytes), ("ascii", soup_ascii), ("tokens", soup_tokens)):
        for i in range(n_soup):
            out.append(run_spec(f"rules-run-soup-{kind}-{i}", fn, "conv_bn.onnx", numeric=False))
            out.append(check_spec(f"rules-check-soup-{kind}-{i}", fn))
    n_mut = 150 if FULL else 20
    for file, fixtures in MUTATION_FIXTURES.items():
        source = (BUILTIN_RULES / file).read_text()
        for i in range(n_mut):
            fixture = fixtures[i % len(fixtures)]
            make_text = (lambda rng, s=source: mutate_rules(s, rng))
            out.append(run_spec(f"rules-run-mutate-{file[:-6]}-{i}", make_text, fixture, numeric=False))
            if i % 3 == 0:
                out.append(check_spec(f"rules-check-mutate-{file[:-6]}-{i}", make_text))
    assert all((FIXTURES / f).is_file() for fs in MUTATION_FIXTURES.values() for f in fs)
    return out
