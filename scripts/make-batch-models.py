#!/usr/bin/env python3
"""Write a folder of 50 exported torchvision models for the batch-mode benchmark (opt-in).

Not part of the test suite: it needs torch, torchvision and onnxscript (PyPI's torch
is several GB; keep its venv outside the repository) and takes a few minutes.

    python3 -m venv "$VENV"
    "$VENV/bin/pip" install torch torchvision onnx onnxscript
    "$VENV/bin/python" scripts/make-batch-models.py "$OUT"

The folder's makeup (BENCHMARKS.md, "Many models in one run"): every model in
ARCHITECTURES through the classic exporter (dynamo=False, opset 17, IR version 8,
weights inside the .onnx file) as torchscript/NAME.onnx, and the first DYNAMO_COUNT
of them through the dynamo exporter too (dynamo=True, its default opset, weights
in an external NAME.onnx.data file) as dynamo/NAME.onnx: 50 models.  Weights are
random (torch.manual_seed per model), with BatchNormalization statistics drawn
away from the identity so that folding them changes the weights.  A model already
in the folder is kept (delete the folder to export anew).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "benchlib"))

ARCHITECTURES = [
    "resnet18", "resnet34", "resnet50", "resnext50_32x4d", "mobilenet_v2",
    "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "efficientnet_b1",
    "densenet121", "squeezenet1_0", "squeezenet1_1", "shufflenet_v2_x0_5",
    "shufflenet_v2_x1_0", "regnet_x_400mf", "regnet_y_400mf", "regnet_x_800mf",
    "mnasnet0_5", "mnasnet1_0", "googlenet", "alexnet", "vgg11_bn", "resnet101",
    "densenet169", "efficientnet_b2", "regnet_y_800mf", "shufflenet_v2_x1_5",
    "regnet_x_1_6gf", "convnext_tiny", "mnasnet0_75",
]
# The models also exported with the dynamo exporter (30 + 20 = 50).
DYNAMO_COUNT = 20


def export(name: str, seed: int, path: Path, dynamo: bool) -> None:
    """Exports `name` to `path` with the chosen exporter."""
    import torch
    from export_torchvision import prepared

    path.parent.mkdir(parents=True, exist_ok=True)
    # googlenet's auxiliary heads are for training; without them it wants its weights drawn.
    kwargs = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    model = prepared(name, seed, **kwargs)
    example = torch.randn(1, 3, 224, 224)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(model, (example,), str(path), dynamo=True)
        else:
            torch.onnx.export(model, example, str(path), dynamo=False, do_constant_folding=False,
                              opset_version=17, training=torch.onnx.TrainingMode.EVAL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="where to write the models (created)")
    arguments = parser.parse_args()
    jobs = [(name, index, False, arguments.folder / "torchscript" / f"{index:02d}-{name}.onnx")
            for index, name in enumerate(ARCHITECTURES)]
    jobs += [(name, index, True, arguments.folder / "dynamo" / f"{index:02d}-{name}.onnx")
             for index, name in enumerate(ARCHITECTURES[:DYNAMO_COUNT])]
    for name, seed, dynamo, path in jobs:
        if path.exists():
            continue
        print(f"{path.relative_to(arguments.folder)}", flush=True)
        export(name, seed, path, dynamo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
