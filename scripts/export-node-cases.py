#!/usr/bin/env python3
"""Export the onnx package's operator test cases as self-contained .onnx files.

Each case of onnx.backend.test.case.node.collect_testcases() becomes
<out>/<case name>.onnx: the case's model where, from its first data set,
  * every graph input's data is an initializer of the same name (the input keeps
    its declaration and gains an initializer), and
  * every expected output is an extra initializer named `expected:<output name>`;
the case's tolerances are in the model's metadata_props (keys `rtol`, `atol`).
Models below IR version 4 move to 4, where an initializer need not be a graph
input.  Every model written passes onnx.checker.check_model.

Skipped, and counted by reason: cases whose inputs or outputs are not plain
tensors (sequences, optionals, maps, sparse tensors), whose data does not match
the declared element type, whose model imports no default-domain opset (which
onnx.proto requires and onnx-fuse's loader enforces), and whose file would
exceed --max-bytes.

Deterministic: cases in name order, no timestamps, deterministic serialization;
running it again writes byte-identical files.  Existing .onnx files in <out>
are removed first (other files, such as README.md, are kept).

    python scripts/export-node-cases.py                # writes Tests/ONNXFuseOpsTests/NodeCases
    python scripts/export-node-cases.py --out DIR      # writes somewhere else

Normally run through scripts/export-node-cases (which also has --check).
Needs: onnx, numpy; see Tests/conformance/requirements.txt, or use `scripts/venv`.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import warnings

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "Tests", "ONNXFuseOpsTests", "NodeCases")
DEFAULT_MAX_BYTES = 200 * 1024


class Skip(Exception):
    """A case that cannot be exported; the message is the counted reason."""


def value_kind(type_proto: onnx.TypeProto) -> str:
    return type_proto.WhichOneof("value") or "undefined"


def to_tensor(data: object, name: str, declared: onnx.TypeProto, role: str) -> TensorProto:
    """The TensorProto for one input or output value, named `name`."""
    kind = value_kind(declared)
    if kind != "tensor_type":
        what = {"sequence_type": "a sequence", "optional_type": "an optional", "map_type": "a map",
                "sparse_tensor_type": "a sparse tensor"}.get(kind, kind)
        raise Skip(f"{role} is {what}")
    if isinstance(data, TensorProto):
        tensor = TensorProto()
        tensor.CopyFrom(data)
        tensor.name = name
    elif isinstance(data, np.ndarray) or np.isscalar(data):
        tensor = numpy_helper.from_array(np.asarray(data), name)
    else:
        raise Skip(f"{role} data is a {type(data).__name__}, not a tensor")
    want = declared.tensor_type.elem_type
    if want != 0 and tensor.data_type != want:
        raise Skip(f"{role} data type does not match the declared type")
    return tensor


def export_case(case) -> onnx.ModelProto:
    """The case's model with its first data set as initializers."""
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    graph = model.graph
    if not any(o.domain in ("", "ai.onnx") for o in model.opset_import):
        # onnx.proto: "All ModelProtos MUST have at least one entry that specifies which version
        # of the ONNX OperatorSet is being imported"; onnx-fuse's loader rejects such models.
        raise Skip("model imports no default-domain opset")
    if graph.sparse_initializer:
        raise Skip("model has sparse initializers")
    inputs, outputs = case.data_sets[0]
    if len(inputs) != len(graph.input):
        raise Skip("input count differs from the graph's")
    if len(outputs) != len(graph.output):
        raise Skip("output count differs from the graph's")
    existing = {t.name for t in graph.initializer}
    tensors = []
    for data, value in zip(inputs, graph.input):
        if value.name in existing:
            raise Skip("graph input already has an initializer")
        tensors.append(to_tensor(data, value.name, value.type, "input"))
    for data, value in zip(outputs, graph.output):
        tensors.append(to_tensor(data, "expected:" + value.name, value.type, "output"))
    graph.initializer.extend(tensors)
    # Before IR version 4 every initializer must also be a graph input; the `expected:` ones
    # are not, so such models move to IR version 4 (where the inputs' initializers become
    # overridable defaults, as in every other case).
    model.ir_version = max(model.ir_version, 4)
    for key, tolerance in (("rtol", case.rtol), ("atol", case.atol)):
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = repr(float(tolerance))
    return model


def same_up_to_rounding(committed: bytes, fresh: bytes) -> str | None:
    """None when two exports of one case differ only in the rounding of expected float outputs,
    else what differs. numpy's reference results depend on the CPU's vector units and BLAS (tan,
    acos or an attention's softmax come out an ulp or a few apart on another machine); a
    difference within a hundredth of the case's own tolerance cannot change what the test
    decides."""
    a, b = onnx.ModelProto(), onnx.ModelProto()
    a.ParseFromString(committed)
    b.ParseFromString(fresh)
    expected_a = {t.name: t for t in a.graph.initializer if t.name.startswith("expected:")}
    expected_b = {t.name: t for t in b.graph.initializer if t.name.startswith("expected:")}
    if expected_a.keys() != expected_b.keys():
        return "the expected outputs differ in names"
    for model in (a, b):
        kept = [t for t in model.graph.initializer if not t.name.startswith("expected:")]
        del model.graph.initializer[:]
        model.graph.initializer.extend(kept)
    if a.SerializeToString(deterministic=True) != b.SerializeToString(deterministic=True):
        return "the model, its inputs or its tolerances differ"
    tolerance = {entry.key: float(entry.value) for entry in a.metadata_props}
    rtol, atol = tolerance.get("rtol", 0.0) / 100, tolerance.get("atol", 0.0) / 100
    for name, tensor in expected_a.items():
        x, y = numpy_helper.to_array(tensor), numpy_helper.to_array(expected_b[name])
        if x.dtype != y.dtype or x.shape != y.shape:
            return f"{name} differs in type or shape"
        if x.dtype.kind != "f":
            if not np.array_equal(x, y):
                return f"{name} differs"
            continue
        x, y = x.astype(np.float64), y.astype(np.float64)
        if not np.array_equal(np.isnan(x), np.isnan(y)) or not np.array_equal(np.isinf(x), np.isinf(y)):
            return f"{name} differs in where it is NaN or infinite"
        with np.errstate(invalid="ignore"):
            if not np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True):
                return f"{name} differs by more than a hundredth of the case's tolerance"
    return None


def main() -> int:
    if len(sys.argv) >= 4 and sys.argv[1] == "--same-up-to-rounding":
        # --same-up-to-rounding COMMITTED_DIR FRESH_DIR NAME...: prints "NAME differs: why" for
        # each case that differs by more than rounding.
        committed_dir, fresh_dir = sys.argv[2], sys.argv[3]
        for name in sys.argv[4:]:
            with open(os.path.join(committed_dir, name), "rb") as committed, open(os.path.join(fresh_dir, name), "rb") as fresh:
                reason = same_up_to_rounding(committed.read(), fresh.read())
            if reason:
                print(f"{name} differs: {reason}")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                        help="skip cases whose file would be larger (default: %(default)s)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the summary line")
    args = parser.parse_args()

    from onnx.backend.test.case import node

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the case generators overflow and divide by zero on purpose
        cases = node.collect_testcases()
    by_name = {}
    for case in cases:
        if case.name in by_name:
            raise SystemExit(f"export-node-cases: duplicate case name {case.name}")
        by_name[case.name] = case

    written: dict[str, bytes] = {}
    skipped: dict[str, list[str]] = collections.defaultdict(list)
    for name in sorted(by_name):
        case = by_name[name]
        try:
            if case.kind != "node" or case.model is None or not case.data_sets:
                raise Skip("not a node case with data")
            if os.sep in name or name.startswith("."):
                raise Skip("name is not a file name")
            model = export_case(case)
            try:
                onnx.checker.check_model(model)
            except onnx.checker.ValidationError as error:
                raise Skip("fails onnx.checker: " + str(error).split("\n")[0]) from None
            data = model.SerializeToString(deterministic=True)
            if len(data) > args.max_bytes:
                raise Skip(f"file would exceed {args.max_bytes // 1024} KB")
            written[name] = data
        except Skip as reason:
            skipped[str(reason)].append(name)

    os.makedirs(args.out, exist_ok=True)
    for entry in sorted(os.listdir(args.out)):
        if entry.endswith(".onnx") and entry[: -len(".onnx")] not in written:
            os.remove(os.path.join(args.out, entry))
    for name, data in written.items():
        path = os.path.join(args.out, name + ".onnx")
        try:
            with open(path, "rb") as f:
                if f.read() == data:
                    continue
        except FileNotFoundError:
            pass
        with open(path, "wb") as f:
            f.write(data)

    total = sum(len(d) for d in written.values())
    if not args.quiet:
        for reason in sorted(skipped, key=lambda r: (-len(skipped[r]), r)):
            names = skipped[reason]
            print(f"  skipped {len(names):4d}: {reason}")
    print(f"export-node-cases: onnx {onnx.__version__}: {len(cases)} cases, wrote {len(written)}, "
          f"skipped {sum(len(v) for v in skipped.values())}, {total / 1e6:.2f} MB total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
