#!/usr/bin/env python3
"""Fold the BatchNormalization nodes of PyTorch-exported torchvision models with a rule file
(a manual check, not part of the test suite: it needs torch and torchvision).

PyTorch's exporters fold BatchNormalization themselves by default, so the models are
exported with it kept (TorchScript exporter, do_constant_folding=False, eval mode), with
random weights and non-trivial BatchNormalization statistics (seeded). For each model it runs

    ONNX_FUSE MODEL --no-builtin --rules RULES -o OUT

counts the BatchNormalization nodes before and after (every one that reads a Conv output
nothing else reads must be gone; the others, such as DenseNet's BatchNormalization after a
Concat, must stay), runs MODEL and OUT in onnxruntime
(graph optimizations off) on seeded random inputs and compares the outputs (relative error
||out - ref|| / ||ref|| must be at most 1e-5), and runs onnx.checker.check_model(OUT,
full_check=True). Exit status 0 when every model folds exactly those and matches.

    "$VENV/bin/python" scripts/check-batchnorm-folding.py .build/release/onnx-fuse \\
        docs/examples/conv-batchnorm.rules "$OUT" [--models resnet50,mobilenet_v2]

(VENV: a venv with torch, torchvision, onnx and onnxruntime; OUT: any folder outside the
repository.)
"""

import argparse
import subprocess
import sys
from collections import Counter
from pathlib import Path

import onnx
from onnx_comparison import count, relative_error

sys.path.insert(0, str(Path(__file__).resolve().parent / "benchlib"))
from export_torchvision import export  # noqa: E402  (needs torch and torchvision)

MODELS = ["resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0", "densenet121", "regnet_y_400mf"]
TOLERANCE = 1e-5


def foldable(path: Path) -> int:
    """BatchNormalization nodes that read a Conv output nothing else reads (what a Conv+BN rule folds)."""
    graph = onnx.load(str(path), load_external_data=False).graph
    producers = {out: n for n in graph.node for out in n.output}
    readers = Counter(i for n in graph.node for i in n.input)
    outputs = {o.name for o in graph.output}
    return sum(1 for n in graph.node if n.op_type == "BatchNormalization" and n.input[0] in producers
               and producers[n.input[0]].op_type == "Conv" and readers[n.input[0]] == 1 and n.input[0] not in outputs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary")
    parser.add_argument("rules")
    parser.add_argument("outdir")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    ok = True
    print(f"{'model':18} {'BN before':>9} {'foldable':>8} {'BN after':>8} {'nodes':>13} {'rel. error':>10}  checker")
    for name in args.models.split(","):
        original, folded = out / f"{name}.bn.onnx", out / f"{name}.folded.onnx"
        if not original.exists():
            export(name, original)
        run = subprocess.run([args.binary, str(original), "--no-builtin", "--rules", args.rules, "-o", str(folded), "-q"],
                             capture_output=True, text=True)
        if run.returncode != 0:
            print(f"{name:18} onnx-fuse failed ({run.returncode}): {run.stderr.strip()}")
            ok = False
            continue
        before, after, candidates = count(original), count(folded), foldable(original)
        error = relative_error(original, folded)
        onnx.checker.check_model(str(folded), full_check=True)
        passed = after["BatchNormalization"] == before["BatchNormalization"] - candidates and error <= TOLERANCE
        ok &= passed
        nodes = f"{sum(before.values())} -> {sum(after.values())}"
        print(f"{name:18} {before['BatchNormalization']:9} {candidates:8} {after['BatchNormalization']:8} {nodes:>13} {error:10.1e}  ok"
              + ("" if passed else "   FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
