#!/usr/bin/env python3
"""Check onnx-fuse on models written by PyTorch's ONNX exporters (a manual check).

Not part of the test suite: it needs torch and torchvision, several minutes and
a few GB of disk.  For each model in MODELS (torchvision classifiers with random
weights, a small ConvTranspose generator and a 1-D conv net with a
Linear + BatchNorm1d head, all in eval mode, seeded with torch.manual_seed) and
each exporter it

  1. exports the model with torch.onnx.export:
       dynamo         dynamo=True, the exporter's defaults (default opset,
                      weights in an external `<model>.onnx.data` file)
       dynamo-inline  dynamo=True, external_data=False (weights in the .onnx)
       torchscript    dynamo=False, opset 17 (the legacy exporter)
     A model whose export fails is skipped, and the reason is printed;
  2. runs `ONNX_FUSE MODEL -o OUT --no-builtin` and records the exit code,
     stderr and wall time;
  3. compares OUT with MODEL: byte for byte (`cmp`, and the .data files too);
     when not identical, whether onnx.load(..., load_external_data=False) gives
     equal protos, whether MODEL is in canonical encoding, and the first
     differing field (on the parsed protos and on the wire).  For external
     data the tool writes its own OUT.data, keeping the source layout: with
     the same file name both files come back identical, otherwise only the
     location entries differ; then all tensors are compared after loading;
  4. runs MODEL and OUT in onnxruntime (CPU, graph optimizations off) on the
     same seeded random input and compares the outputs (rtol 1e-5);
  5. runs onnx.checker.check_model(OUT, full_check=True) (and on MODEL too when
     OUT fails it, to tell a pre-existing problem from a new one).

Run it from the repository root with a python that has torch, torchvision,
onnx, onnxscript and onnxruntime, in a venv kept outside the repository (VENV
and OUT below are any folders outside it; torch from PyPI is large, several GB
with its CUDA libraries, even though the check runs on the CPU):

    python3 -m venv "$VENV"
    "$VENV/bin/pip" install torch torchvision onnx onnxscript onnxruntime
    swift build -c release --scratch-path .build-release
    "$VENV/bin/python" scripts/check-pytorch-exports.py \\
        .build-release/release/onnx-fuse "$OUT"

Options: --models resnet18,vgg11 (a subset; --list prints all, including
big_linear, a 2.6 GB model that runs only when named), --exporters
dynamo,torchscript, --reuse (keep models already exported in the output
folder), --json FILE (also write the results as JSON).  Exported models go to
OUTDIR/models, the tool's outputs to OUTDIR/out; the whole default set takes
about 3 minutes and 7 GB of disk.

The table: MB is the model with its data files; opset/IR of the export; ext:
weights in external data; canon: the .onnx file is what onnx would serialize
(canonical encoding); exit: the tool's exit code; comparison is one of
  byte-identical     OUT (and OUT.data) equal MODEL (and its data) byte for byte
  equal-after-parse  bytes differ, but the parsed protos are equal
  equal-relaid-data  external data only: the protos differ only in the
                     external_data location/offset/length entries, and every
                     tensor is equal once the data is loaded
  differs            anything else (the first differing field is printed)
then the largest absolute difference between the onnxruntime outputs, the
checker's verdict (FAIL(orig too): the exported model fails it as well) and the
tool's wall time.  Details follow the table.  Exit status: 0 when every
exported model went through with equal content, equal outputs in onnxruntime
and no new checker failure; 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import gc
import io
import json
import os
import subprocess
import sys
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SEED = 0
TORCHSCRIPT_OPSET = 17
ORT_RTOL, ORT_ATOL = 1e-5, 1e-7
EXPORTERS = ("dynamo", "dynamo-inline", "torchscript")


# --------------------------------------------------------------------------
# models


def _small_models():
    import torch
    from torch import nn

    class Generator(nn.Module):
        """DCGAN-style: latent (N, 64, 1, 1) -> image (N, 3, 32, 32), with an output_padding layer."""

        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.ConvTranspose2d(64, 64, 4, 1, 0, bias=False),  # 4x4
                nn.BatchNorm2d(64),
                nn.ReLU(True),
                nn.ConvTranspose2d(64, 32, 3, 2, 1, output_padding=1, bias=False),  # 8x8
                nn.BatchNorm2d(32),
                nn.ReLU(True),
                nn.ConvTranspose2d(32, 16, 4, 2, 1, groups=2),  # 16x16, grouped with bias
                nn.BatchNorm2d(16),
                nn.LeakyReLU(0.2, True),
                nn.ConvTranspose2d(16, 3, 4, 2, 1),  # 32x32
                nn.Tanh(),
            )

        def forward(self, z):
            return self.net(z)

    class Conv1dNet(nn.Module):
        """Signal (N, 4, 128) -> 10 classes: Conv1d/BatchNorm1d blocks, then Linear + BatchNorm1d."""

        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv1d(4, 16, 5, padding=2),
                nn.BatchNorm1d(16),
                nn.ReLU(),
                nn.MaxPool1d(2),
                nn.Conv1d(16, 32, 3, padding=1, bias=False),
                nn.BatchNorm1d(32),
                nn.ReLU(),
                nn.Conv1d(32, 32, 3, padding=2, dilation=2, groups=4),
                nn.BatchNorm1d(32),
                nn.ReLU(),
                nn.AdaptiveAvgPool1d(1),
                nn.Flatten(),
            )
            self.head = nn.Sequential(
                nn.Linear(32, 64),
                nn.BatchNorm1d(64),
                nn.ReLU(),
                nn.Linear(64, 10),
            )

        def forward(self, x):
            return self.head(self.features(x))

    class BigLinear(nn.Module):
        """2.6 GB of weights: past protobuf's 2 GB, so every exporter writes external data
        (the TorchScript one a file per tensor, named after it)."""

        def __init__(self):
            super().__init__()
            self.a = nn.Linear(16384, 20000)
            self.bn = nn.BatchNorm1d(20000)
            self.b = nn.Linear(20000, 16384)

        def forward(self, x):
            return self.b(torch.relu(self.bn(self.a(x))))

    return {
        "convtranspose_generator": (Generator, (1, 64, 1, 1)),
        "conv1d_linear_bn": (Conv1dNet, (2, 4, 128)),
        "big_linear": (BigLinear, (2, 16384)),
    }


TORCHVISION_MODELS = [
    "resnet18",
    "resnet50",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "densenet121",
    "squeezenet1_0",
    "vgg11",
    "regnet_y_400mf",
    "convnext_tiny",
    "vit_b_16",
]
SMALL_MODELS = ["convtranspose_generator", "conv1d_linear_bn"]
MODELS = TORCHVISION_MODELS + SMALL_MODELS
# Only when named with --models (about 8 GB of disk per exporter and a few minutes).
OPTIONAL_MODELS = ["big_linear"]


def build_model(name: str):
    """The module (eval mode, seeded random weights and BatchNorm statistics) and an example input."""
    import torch

    torch.manual_seed(SEED)
    if name in TORCHVISION_MODELS:
        import torchvision

        module = torchvision.models.get_model(name, weights=None)
        shape = (1, 3, 224, 224)
    else:
        cls, shape = _small_models()[name]
        module = cls()
    # Non-trivial BatchNorm statistics, as a trained model has (the defaults are 0 and 1).
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                    m.bias.copy_(torch.randn(n, generator=generator) * 0.1)
    module.eval()
    example = torch.randn(*shape, generator=generator)
    return module, example


def export(name: str, exporter: str, path: Path) -> None:
    """Exports `name` with `exporter` to `path`; raises with the exporter's message on failure."""
    import torch

    module, example = build_model(name)
    if exporter == "dynamo":
        kwargs: dict[str, Any] = {"dynamo": True}
    elif exporter == "dynamo-inline":
        kwargs = {"dynamo": True, "external_data": False}
    elif exporter == "torchscript":
        kwargs = {"dynamo": False, "opset_version": TORCHSCRIPT_OPSET}
    else:
        raise ValueError(f"unknown exporter {exporter}")
    for stale in (path, path.with_name(path.name + ".data")):
        stale.unlink(missing_ok=True)
    # No torch.no_grad() here, as in PyTorch's own examples: under no_grad, eval-mode
    # nn.MultiheadAttention takes a fast path (aten::_native_multi_head_attention) that the
    # TorchScript exporter cannot export, so vit_b_16 would fail there.
    try:
        with warnings.catch_warnings(), captured_output():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), str(path), **kwargs)
    except Exception as error:  # noqa: BLE001 - any exporter failure skips the model
        message = str(error).strip()
        if len(message) > 1500:
            message = message[:1500] + " ..."
        raise RuntimeError(f"{type(error).__name__}: {message}") from error
    finally:
        del module
        gc.collect()
    if not path.exists():
        raise RuntimeError("the exporter returned but wrote no file")


@contextlib.contextmanager
def captured_output():
    """Sends file descriptors 1 and 2 (C++ prints too) to a temporary file while exporting."""
    import tempfile

    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                yield log
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


# --------------------------------------------------------------------------
# comparisons


def data_files(path: Path) -> list[Path]:
    """The external data files `path` references (relative to its folder), sorted."""
    import onnx
    from onnx import external_data_helper

    model = onnx.load(str(path), load_external_data=False)
    names = set()
    for tensor in external_data_helper._get_all_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for entry in tensor.external_data:
                if entry.key == "location":
                    names.add(entry.value)
    return [path.parent / name for name in sorted(names)]


def first_proto_difference(a, b, where: str = "model") -> str | None:
    """The path of the first field that differs between two messages, with both values."""
    for fd in a.DESCRIPTOR.fields:
        name = fd.name
        here = f"{where}.{name}"
        va, vb = getattr(a, name), getattr(b, name)
        is_repeated = getattr(fd, "is_repeated", None)
        if is_repeated is None:
            is_repeated = fd.label == fd.LABEL_REPEATED
        if is_repeated:
            for i, (ea, eb) in enumerate(zip(va, vb)):
                if fd.message_type is not None:
                    d = first_proto_difference(ea, eb, f"{here}[{i}]")
                    if d:
                        return d
                elif ea != eb:
                    return f"{here}[{i}]: {_pair(ea, eb)}"
            if len(va) != len(vb):
                return f"{here}: {len(va)} entries != {len(vb)} entries"
        elif fd.message_type is not None:
            ha, hb = a.HasField(name), b.HasField(name)
            if ha != hb:
                return f"{here}: present={ha} != present={hb}"
            if ha:
                d = first_proto_difference(va, vb, here)
                if d:
                    return d
        else:
            has_presence = getattr(fd, "has_presence", False)
            if has_presence and a.HasField(name) != b.HasField(name):
                return f"{here}: present={a.HasField(name)} != present={b.HasField(name)}"
            if va != vb:
                return f"{here}: {_pair(va, vb)}"
    ua, ub = _unknown(a), _unknown(b)
    if ua != ub:
        return f"{where}: unknown fields {ua[:3]} != {ub[:3]}"
    return None


def _unknown(message) -> list:
    try:
        from google.protobuf import unknown_fields

        return [(f.field_number, f.wire_type, f.data) for f in unknown_fields.UnknownFieldSet(message)]
    except Exception:  # noqa: BLE001 - older protobuf: no way to see them
        return []


def _pair(a, b) -> str:
    """`a != b`, shortened; for long byte strings, where they first differ."""
    if isinstance(a, bytes) and isinstance(b, bytes) and (len(a) > 40 or len(b) > 40):
        n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        lo = max(0, n - 4)
        return (f"{len(a)} vs {len(b)} bytes, first differing at byte {n}: "
                f"...{_short(a[lo:n + 8])} != ...{_short(b[lo:n + 8])}")
    return f"{_short(a)} != {_short(b)}"


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def _wire_fields(data: bytes):
    """(field number, wire type, raw field bytes incl. tag, payload start, payload end) in order."""
    pos = 0
    while pos < len(data):
        start = pos
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(data, pos)
            payload = (pos, pos)
        elif wire == 1:
            pos += 8
            payload = (pos - 8, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            payload = (pos, pos + length)
            pos += length
        elif wire == 5:
            pos += 4
            payload = (pos - 4, pos)
        else:
            raise ValueError(f"wire type {wire} at byte {start}")
        yield number, wire, start, pos, payload


def first_wire_difference(a: bytes, b: bytes, descriptor, where: str = "model", base: int = 0) -> str | None:
    """The first field whose encoding differs, following the schema into sub-messages."""
    try:
        fa, fb = list(_wire_fields(a)), list(_wire_fields(b))
    except (ValueError, IndexError) as error:
        return f"{where}: not parseable as fields ({error})"
    seen: dict[int, int] = {}
    for x, y in zip(fa, fb):
        na, wa, sa, ea, (pa0, pa1) = x
        nb, wb, sb, eb, (pb0, pb1) = y
        fd = descriptor.fields_by_number.get(na) if descriptor is not None else None
        label = fd.name if fd is not None else f"#{na}"
        index = seen.get(na, 0)
        seen[na] = index + 1
        here = f"{where}.{label}[{index}]"
        if (na, wa) != (nb, wb):
            other = descriptor.fields_by_number.get(nb) if descriptor is not None else None
            return (f"{where}: field order differs at byte {base + sa}: original has {label} (wire type {wa}), "
                    f"output has {other.name if other else '#' + str(nb)} (wire type {wb})")
        if a[sa:ea] == b[sb:eb]:
            continue
        if wa == 2 and fd is not None and fd.message_type is not None:
            d = first_wire_difference(a[pa0:pa1], b[pb0:pb1], fd.message_type, here, base + pa0)
            if d:
                return d
        return f"{here} at byte {base + sa}: {_pair(a[sa:ea], b[sb:eb])}"
    if len(fa) != len(fb):
        extra = fa[len(fb):] if len(fa) > len(fb) else fb[len(fa):]
        number = extra[0][0]
        fd = descriptor.fields_by_number.get(number) if descriptor is not None else None
        side = "original" if len(fa) > len(fb) else "output"
        return f"{where}: the {side} has {len(extra)} more field(s), first {fd.name if fd else '#' + str(number)}"
    return None


def strip_external_pointers(model) -> None:
    """Removes location/offset/length/checksum from every external tensor (they name a file's layout)."""
    from onnx import external_data_helper

    for tensor in external_data_helper._get_all_tensors(model):
        keep = [(e.key, e.value) for e in tensor.external_data
                if e.key not in ("location", "offset", "length", "checksum")]
        del tensor.external_data[:]
        for key, value in keep:
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value


@dataclass
class Comparison:
    verdict: str  # byte-identical | equal-after-parse | equal-relaid-data | differs | not-compared
    canonical: bool | None = None
    notes: list[str] = field(default_factory=list)


def compare_files(original: Path, output: Path) -> Comparison:
    import onnx

    raw_a, raw_b = original.read_bytes(), output.read_bytes()
    files_a, files_b = data_files(original), data_files(output)
    missing = [f.name for f in files_b if not f.is_file()]
    a = onnx.load(str(original), load_external_data=False)
    canonical = a.SerializeToString() == raw_a
    result = Comparison("differs", canonical)
    if not canonical:
        result.notes.append("the original is not in canonical encoding (onnx re-serializes it differently)")
    if raw_a == raw_b and not files_a:
        result.verdict = "byte-identical"
        return result
    if raw_a != raw_b:
        n = next((i for i, (x, y) in enumerate(zip(raw_a, raw_b)) if x != y), min(len(raw_a), len(raw_b)))
        result.notes.append(f"model files differ from byte {n} ({len(raw_a)} vs {len(raw_b)} bytes)")
        wire = first_wire_difference(raw_a, raw_b, onnx.ModelProto.DESCRIPTOR)
        if wire:
            result.notes.append(f"first difference on the wire: {wire}")
    try:
        b = onnx.load(str(output), load_external_data=False)
    except Exception as error:  # noqa: BLE001
        result.notes.append(f"onnx cannot parse the output: {error}")
        return result
    protos_equal = a == b
    if not files_a:
        if protos_equal:
            result.verdict = "equal-after-parse"
        else:
            result.notes.append(f"first differing field: {first_proto_difference(a, b)}")
        return result
    # External data: the output has its own data file, so the pointers differ by design.
    if missing:
        result.notes.append(f"the output references data files that do not exist: {missing}")
        return result
    if len(files_b) != 1 or files_b[0].name != output.name + ".data":
        result.notes.append(f"the output references data files {[f.name for f in files_b]}, not {output.name}.data")
    data_identical = False
    if len(files_a) == len(files_b):
        data_identical = True
        for fa, fb in zip(files_a, files_b):
            same = filecmp.cmp(fa, fb, shallow=False)
            data_identical = data_identical and same
            result.notes.append(f"data file {fa.name} ({fa.stat().st_size} B) vs {fb.name} ({fb.stat().st_size} B): "
                                + ("byte-identical" if same else "differ"))
    else:
        listed = ", ".join(f.name for f in files_a[:5]) + (", ..." if len(files_a) > 5 else "")
        result.notes.append(f"the original has {len(files_a)} data files ({listed}), "
                            f"the output {len(files_b)} ({', '.join(f.name for f in files_b)})")
    if raw_a == raw_b and data_identical:
        result.verdict = "byte-identical"
        return result
    sa, sb = onnx.ModelProto(), onnx.ModelProto()
    sa.CopyFrom(a)
    sb.CopyFrom(b)
    strip_external_pointers(sa)
    strip_external_pointers(sb)
    if sa != sb:
        result.notes.append(f"first differing field (external pointers ignored): {first_proto_difference(sa, sb)}")
        return result
    if protos_equal:
        result.notes.append("protos are equal even with the external pointers")
    full_a, full_b = onnx.load(str(original)), onnx.load(str(output))
    if full_a == full_b:
        result.verdict = "equal-after-parse" if protos_equal else "equal-relaid-data"
        result.notes.append("all tensors are equal after loading the external data")
    else:
        result.notes.append(f"after loading external data: {first_proto_difference(full_a, full_b)}")
    return result


def random_feeds(path: Path) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(SEED)
    types = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
             "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}
    feeds = {}
    for i in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
        dtype = types[i.type]
        if np.issubdtype(dtype, np.floating):
            feeds[i.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[i.name] = rng.integers(0, 2, shape).astype(np.bool_)
        else:
            feeds[i.name] = rng.integers(0, 4, shape).astype(dtype)
    return feeds


def run_ort(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1  # the same arithmetic order in both runs
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def compare_ort(original: Path, output: Path) -> tuple[float | None, bool, str]:
    """(max abs diff, within rtol, note)."""
    try:
        feeds = random_feeds(original)
        ya = run_ort(original, feeds)
    except Exception as error:  # noqa: BLE001
        return None, True, f"the original does not run in onnxruntime: {str(error).strip()[:500]}"
    try:
        yb = run_ort(output, feeds)
    except Exception as error:  # noqa: BLE001
        return None, False, f"the output does not run in onnxruntime (the original does): {str(error).strip()[:500]}"
    if len(ya) != len(yb):
        return None, False, f"{len(ya)} outputs vs {len(yb)}"
    worst, ok = 0.0, True
    for x, y in zip(ya, yb):
        if x.shape != y.shape or x.dtype != y.dtype:
            return None, False, f"output shape/type {x.shape} {x.dtype} vs {y.shape} {y.dtype}"
        if x.size:
            worst = max(worst, float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))))
        ok = ok and bool(np.allclose(y, x, rtol=ORT_RTOL, atol=ORT_ATOL, equal_nan=True))
    return worst, ok, ""


def check(path: Path) -> str | None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
        return None
    except Exception as error:  # noqa: BLE001
        return f"{type(error).__name__}: {str(error).strip()[:800]}"


# --------------------------------------------------------------------------
# driver


@dataclass
class Result:
    model: str
    exporter: str
    size_mb: float | None = None
    export_seconds: float | None = None
    export_error: str | None = None
    external_data: bool = False
    opset: str = "-"
    exit_code: int | None = None
    stderr: str = ""
    seconds: float | None = None
    verdict: str = "not-compared"
    canonical: bool | None = None
    notes: list[str] = field(default_factory=list)
    ort_max_abs: float | None = None
    ort_ok: bool | None = None
    checker: str = "-"
    checker_error: str | None = None

    @property
    def passed(self) -> bool:
        if self.export_error:
            return True  # reported, not counted
        return (self.exit_code == 0 and self.verdict != "differs" and self.ort_ok is not False
                and self.checker in ("ok", "FAIL(orig too)"))


def run_one(binary: str, outdir: Path, model: str, exporter: str, reuse: bool) -> Result:
    result = Result(model, exporter)
    original = outdir / "models" / f"{model}.{exporter}.onnx"
    output = outdir / "out" / f"{model}.{exporter}.onnx"
    if not (reuse and original.exists()):
        start = time.perf_counter()
        try:
            export(model, exporter, original)
        except Exception as error:  # noqa: BLE001
            result.export_error = str(error)
            print(f"  export failed, skipped: {error}", flush=True)
            return result
        result.export_seconds = time.perf_counter() - start
    files = data_files(original)
    result.external_data = bool(files)
    import onnx

    header = onnx.load(str(original), load_external_data=False)
    default_opset = next((o.version for o in header.opset_import if o.domain in ("", "ai.onnx")), None)
    result.opset = f"{default_opset}/ir{header.ir_version}"
    del header
    result.size_mb = (original.stat().st_size + sum(f.stat().st_size for f in files if f.exists())) / 1e6
    for stale in (output, output.with_name(output.name + ".data")):
        stale.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.run([binary, str(original), "-o", str(output), "--no-builtin"],
                          capture_output=True, text=True, errors="replace")
    result.seconds = time.perf_counter() - start
    result.exit_code = proc.returncode
    result.stderr = proc.stderr.strip()
    if proc.returncode != 0 or not output.exists():
        if proc.returncode == 0:
            result.notes.append("exit code 0 but no output file")
        return result
    comparison = compare_files(original, output)
    result.verdict, result.canonical, result.notes = comparison.verdict, comparison.canonical, comparison.notes
    result.ort_max_abs, result.ort_ok, note = compare_ort(original, output)
    if note:
        result.notes.append(f"onnxruntime: {note}")
    error = check(output)
    if error is None:
        result.checker = "ok"
    else:
        result.checker_error = error
        result.checker = "FAIL(orig too)" if check(original) is not None else "FAIL"
    return result


def print_table(results: list[Result]) -> None:
    headers = ["model", "MB", "exporter", "opset/IR", "ext", "canon", "exit", "comparison", "ORT max|diff|", "checker", "time s"]
    rows = []
    for r in results:
        if r.export_error:
            rows.append([r.model, "-", r.exporter, "-", "-", "-", "-", "export failed", "-", "-", "-"])
            continue
        ort_text = "-" if r.ort_max_abs is None else f"{r.ort_max_abs:.3g}" + ("" if r.ort_ok else " (FAIL)")
        if r.ort_ok is False and r.ort_max_abs is None:
            ort_text = "FAIL"
        canon = "-" if r.canonical is None else ("yes" if r.canonical else "no")
        rows.append([r.model, f"{r.size_mb:.1f}", r.exporter, r.opset, "yes" if r.external_data else "no", canon,
                     str(r.exit_code), r.verdict, ort_text, r.checker, f"{r.seconds:.2f}"])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    print(" | ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths)))


def print_details(results: list[Result]) -> None:
    for r in results:
        lines = []
        if r.export_error:
            lines.append(f"export failed: {r.export_error}")
        else:
            if r.exit_code != 0:
                lines.append(f"exit code {r.exit_code}; stderr:\n      {r.stderr}")
            if r.verdict not in ("byte-identical",) or r.notes:
                lines += r.notes
            if r.checker_error:
                lines.append(f"checker ({r.checker}): {r.checker_error}")
        if lines:
            print(f"\n{r.model} [{r.exporter}]:")
            for line in lines:
                print(f"    {line}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("binary", nargs="?", help="the onnx-fuse binary")
    parser.add_argument("outdir", nargs="?", help="folder for exported models (OUTDIR/models) and outputs (OUTDIR/out)")
    parser.add_argument("--models", help="comma-separated subset of the models (default: all)")
    parser.add_argument("--exporters", default=",".join(EXPORTERS), help=f"comma-separated subset of {EXPORTERS}")
    parser.add_argument("--reuse", action="store_true", help="do not export again models that exist in OUTDIR/models")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--list", action="store_true", help="print the model names and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(MODELS + [f"{name} (only when named)" for name in OPTIONAL_MODELS]))
        return 0
    if not args.binary or not args.outdir:
        parser.error("the onnx-fuse binary and an output folder are required")
    models = args.models.split(",") if args.models else MODELS
    exporters = args.exporters.split(",")
    for name in models:
        if name not in MODELS + OPTIONAL_MODELS:
            parser.error(f"unknown model {name!r}; --list prints the known ones")
    for name in exporters:
        if name not in EXPORTERS:
            parser.error(f"unknown exporter {name!r}; one of {EXPORTERS}")
    binary = os.path.abspath(args.binary) if os.sep in args.binary else args.binary
    outdir = Path(args.outdir)
    (outdir / "models").mkdir(parents=True, exist_ok=True)
    (outdir / "out").mkdir(parents=True, exist_ok=True)

    import onnx
    import onnxruntime
    import torch
    import torchvision

    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, onnx {onnx.__version__}, "
          f"onnxruntime {onnxruntime.__version__}", flush=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    results = []
    for model in models:
        for exporter in exporters:
            print(f"{model} [{exporter}] ...", flush=True)
            try:
                r = run_one(binary, outdir, model, exporter, args.reuse)
            except Exception:  # noqa: BLE001 - a bug in this script: report it, go on
                r = Result(model, exporter, verdict="differs", notes=["check crashed:\n" + traceback.format_exc()])
                r.exit_code = -999
            state = "export failed" if r.export_error else (
                f"exit {r.exit_code}, {r.verdict}, ORT {r.ort_max_abs}, checker {r.checker}, {r.seconds:.2f} s"
                + (f", export {r.export_seconds:.1f} s" if r.export_seconds else ""))
            print(f"  {state}", flush=True)
            results.append(r)
    print()
    print_table(results)
    print_details(results)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
