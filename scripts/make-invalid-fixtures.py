#!/usr/bin/env python3
"""Generate the malformed models in fixtures/invalid/.

Each file is small and wrong in exactly one way (named by the file); a loader
must reject every one of them with an error, never crash or accept it.  See
fixtures/invalid/README.md for the error each one should produce.

    python scripts/make-invalid-fixtures.py            # writes fixtures/invalid/
    python scripts/make-invalid-fixtures.py --out DIR
    python scripts/make-invalid-fixtures.py --report   # also say whether onnx /
                                                       # onnxruntime reject each

Deterministic: running it again rewrites byte-identical files.  Needs onnx and
numpy (onnxruntime only for --report).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wire import field_bytes, field_varint  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_FIXTURE_BYTES = 100 * 1024
NESTING_DEPTH = 10_000

PRODUCER_NAME = "onnx-fuse-fixtures"
PRODUCER_VERSION = "1.0"


# --------------------------------------------------------------------------
# a small valid base model: X -> Conv(W, B) -> Relu -> Y


def weight_array() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.standard_normal((2, 2, 1, 1)).astype(np.float32)


def base_model(name: str, *, opset=True) -> onnx.ModelProto:
    w = numpy_helper.from_array(weight_array(), "W")
    b = numpy_helper.from_array(np.array([0.25, -0.5], dtype=np.float32), "B")
    g = helper.make_graph(
        [
            helper.make_node("Conv", ["X", "W", "B"], ["conv_out"], name="conv"),
            helper.make_node("Relu", ["conv_out"], ["Y"], name="relu"),
        ],
        name,
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 2, 3, 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 2, 3, 3])],
        [w, b],
    )
    return helper.make_model(
        g,
        opset_imports=[helper.make_opsetid("", 17)] if opset else [],
        ir_version=8,
        producer_name=PRODUCER_NAME,
        producer_version=PRODUCER_VERSION,
    )


def initializer(m: onnx.ModelProto, name: str) -> onnx.TensorProto:
    return next(t for t in m.graph.initializer if t.name == name)


def make_external(m: onnx.ModelProto, name: str, location: str, offset=0, length=None):
    t = initializer(m, name)
    nbytes = len(t.raw_data)
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    entries = [("location", location), ("offset", str(offset)), ("length", str(nbytes if length is None else length))]
    for k, v in entries:
        e = t.external_data.add()
        e.key, e.value = k, v




# --------------------------------------------------------------------------
# the cases: each returns {file name: bytes}; a value of ("symlink", target)
# makes a symlink instead of a file.


def raw_data_too_short():
    m = base_model("raw_data_too_short")
    t = initializer(m, "W")
    t.raw_data = t.raw_data[:-4]  # 16 bytes expected, 12 present
    return m


def raw_data_too_long():
    m = base_model("raw_data_too_long")
    t = initializer(m, "W")
    t.raw_data = t.raw_data + b"\0\0\0\0"  # 16 bytes expected, 20 present
    return m


def negative_dim():
    m = base_model("negative_dim")
    t = initializer(m, "B")
    t.dims[:] = [-2]  # raw_data still holds 2 floats
    return m


def duplicate_initializer():
    m = base_model("duplicate_initializer")
    dup = m.graph.initializer.add()
    dup.CopyFrom(initializer(m, "B"))
    dup.raw_data = np.array([1.0, 2.0], dtype=np.float32).tobytes()
    return m


def duplicate_node_output():
    m = base_model("duplicate_node_output")
    # a second node also writes "conv_out"
    m.graph.node.insert(1, helper.make_node("Identity", ["X"], ["conv_out"], name="identity"))
    return m


def cycle():
    m = base_model("cycle")
    del m.graph.node[:]
    m.graph.node.extend(
        [
            helper.make_node("Add", ["X", "b_out"], ["a_out"], name="a"),
            helper.make_node("Relu", ["a_out"], ["b_out"], name="b"),
            helper.make_node("Identity", ["b_out"], ["Y"], name="out"),
        ]
    )
    del m.graph.initializer[:]
    return m


def undefined_input():
    m = base_model("undefined_input")
    m.graph.node[1].input[0] = "nowhere"  # Relu reads a value nothing defines
    return m


def external_escape():
    m = base_model("external_escape")
    make_external(m, "W", "../secret.bin")
    return m


def external_absolute():
    m = base_model("external_absolute")
    make_external(m, "W", "/etc/passwd")
    return m


def external_symlink():
    m = base_model("external_symlink")
    data = initializer(m, "W").raw_data
    make_external(m, "W", "external_symlink.bin")
    return {
        "external_symlink.onnx": m.SerializeToString(),
        # the data is right; only the symlink is wrong
        "external_symlink_target.bin": data,
        "external_symlink.bin": ("symlink", "external_symlink_target.bin"),
    }


def external_out_of_range():
    m = base_model("external_out_of_range")
    data = initializer(m, "W").raw_data  # 16 bytes
    make_external(m, "W", "external_out_of_range.bin", offset=8, length=len(data))
    # the file holds 16 bytes, the tensor asks for bytes 8..24
    return {
        "external_out_of_range.onnx": m.SerializeToString(),
        "external_out_of_range.bin": data,
    }


def truncated():
    data = base_model("truncated").SerializeToString()
    return {"truncated.onnx": data[: len(data) // 2]}


def nested_10000():
    """NESTING_DEPTH protobuf messages nested inside ModelProto.graph:
    GraphProto.node -> NodeProto.attribute -> AttributeProto.g -> GraphProto ...
    (one level per message, so 3,334 graphs deep).  Written as wire bytes: the
    python protobuf runtime refuses to parse or build anything this deep."""
    # message k (1 = ModelProto.graph) is a Graph if k % 3 == 1, a Node if
    # k % 3 == 2, an Attribute if k % 3 == 0; each holds message k + 1.
    inner = b""  # the innermost message, empty
    for k in range(NESTING_DEPTH - 1, 0, -1):
        kind = k % 3
        if kind == 1:  # GraphProto.node = 1
            inner = field_bytes(1, inner)
        elif kind == 2:  # NodeProto.attribute = 5
            inner = field_bytes(5, inner)
        else:  # AttributeProto.g = 6
            inner = field_bytes(6, inner)
    model = (
        field_varint(1, 8)  # ir_version
        + field_bytes(8, field_varint(2, 17))  # opset_import { version: 17 }
        + field_bytes(7, inner)  # graph
    )
    return {"nested_10000.onnx": model}


def nul_in_name():
    m = base_model("nul_in_name")
    m.graph.node[0].name = "conv\x00hidden"
    data = m.SerializeToString()
    assert b"conv\x00hidden" in data
    return {"nul_in_name.onnx": data}


def missing_graph():
    m = base_model("missing_graph")
    m.ClearField("graph")
    return m


def missing_opset():
    m = base_model("missing_opset", opset=False)
    # an opset for another domain only; nothing for the default ("") domain
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return m


def two_data_fields():
    m = base_model("two_data_fields")
    t = initializer(m, "B")
    t.float_data.extend([0.25, -0.5])  # raw_data is set as well
    return m


def external_in_training_info():
    # training_info is carried through as it was read; an external tensor in it would point at
    # a file the output does not carry.
    m = base_model("external_in_training_info")
    t = numpy_helper.from_array(np.zeros((2,), dtype=np.float32), "step_init")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in [("location", "external_in_training_info.bin"), ("offset", "0"), ("length", "8")]:
        e = t.external_data.add()
        e.key, e.value = k, v
    init = helper.make_graph([], "init", [], [helper.make_tensor_value_info("step_init", TensorProto.FLOAT, [2])], [t])
    info = m.training_info.add()
    info.initialization.CopyFrom(init)
    info.algorithm.CopyFrom(helper.make_graph([], "algo", [], []))
    return {"external_in_training_info.onnx": m.SerializeToString(), "external_in_training_info.bin": bytes(8)}


CASES = [
    raw_data_too_short,
    raw_data_too_long,
    negative_dim,
    duplicate_initializer,
    duplicate_node_output,
    cycle,
    undefined_input,
    external_escape,
    external_absolute,
    external_symlink,
    external_out_of_range,
    truncated,
    nested_10000,
    nul_in_name,
    missing_graph,
    missing_opset,
    two_data_fields,
    external_in_training_info,
]


# --------------------------------------------------------------------------


def files_for(case):
    out = case()
    if isinstance(out, onnx.ModelProto):
        return {case.__name__ + ".onnx": out.SerializeToString()}
    return out


def write_files(files, out_dir):
    for fname, content in files.items():
        path = os.path.join(out_dir, fname)
        if os.path.lexists(path):
            os.remove(path)
        if isinstance(content, tuple):
            kind, target = content
            assert kind == "symlink" and not os.path.isabs(target)
            os.symlink(target, path)
        else:
            with open(path, "wb") as f:
                f.write(content)
            assert len(content) <= MAX_FIXTURE_BYTES, f"{fname} is {len(content)} bytes"


def report(path):
    """Whether the python onnx stack and onnxruntime reject the file."""
    verdicts = []
    try:
        m = onnx.load(path)
        onnx.checker.check_model(m, full_check=True)
        verdicts.append("onnx: accepted")
    except Exception as e:  # noqa: BLE001
        verdicts.append(f"onnx: {type(e).__name__}: {str(e).splitlines()[0][:100]}")
    try:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        verdicts.append("ort: accepted")
    except ImportError:
        pass
    except Exception as e:  # noqa: BLE001
        verdicts.append(f"ort: {type(e).__name__}: {str(e).splitlines()[0][:100]}")
    return verdicts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, "fixtures", "invalid"))
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for case in CASES:
        files = files_for(case)
        write_files(files, args.out)
        main_file = case.__name__ + ".onnx"
        size = os.path.getsize(os.path.join(args.out, main_file))
        line = f"{main_file}: {size} bytes"
        if args.report:
            line += "\n    " + "\n    ".join(report(os.path.join(args.out, main_file)))
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
