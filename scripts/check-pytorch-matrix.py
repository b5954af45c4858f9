#!/usr/bin/env python3
"""Run the built-in rules on a matrix of small PyTorch exports and check each result (a manual
check, not part of the test suite: it needs torch and torchvision).

Each case is a small torch.nn.Module: the foldable patterns of the built-in rule set, and the
traps where a rule must not fire, plus torchvision classification networks. Every case is
exported with PyTorch's TorchScript exporter (eval mode, opset 17), with seeded random weights and
BatchNormalization statistics. A model with BatchNormalization is exported with
do_constant_folding=False, since the exporter folds BatchNormalization itself otherwise; the
others with PyTorch's default constant folding (without it, a `w.view(1, C, 1, 1)` or an
`F.pad` becomes a subgraph of Reshape, Concat and Slice nodes that only a constant folder would
turn back into a constant). Then

    ONNX_FUSE MODEL -o OUT --report REPORT

runs with the built-in rules only. A case passes when

  * the operator counts the case lists are what is left in OUT (every foldable
    BatchNormalization gone; the must-not-fire cases keep theirs);
  * the rules the case lists fired, as often as listed;
  * MODEL and OUT, run in onnxruntime with its graph optimizations off on three seeded random
    inputs, agree within 1e-5 relative (||out - ref|| / ||ref||, per output);
  * onnx.checker.check_model(OUT, full_check=True) passes;
  * onnx-fuse run on OUT changes nothing, byte for byte (idempotence).

    "$VENV/bin/python" scripts/check-pytorch-matrix.py .build/release/onnx-fuse "$OUT" [--cases a,b]

(VENV: a venv with torch, torchvision, onnx and onnxruntime; OUT: any folder outside the
repository.) Exit status 0 when every case passes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
import torchvision
from onnx_comparison import count, relative_error
from torch import nn

TOLERANCE = 1e-5


@dataclasses.dataclass
class Case:
    """A module to export, its input shapes, and what the built-in rules must make of it."""

    name: str
    build: Callable[[], nn.Module]
    inputs: list[tuple[int, ...]]
    # Operator counts that must hold after the rules (only the operators listed).
    after: dict[str, int]
    # Rules that must fire, and how often (others may fire too).
    fired: dict[str, int] = dataclasses.field(default_factory=dict)
    # A rule that must not fire.
    not_fired: tuple[str, ...] = ()


def randomize(model: nn.Module) -> nn.Module:
    """Seeded weights, and BatchNormalization statistics far from the identity."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


class Lambda(nn.Module):
    """A module around a function of its inputs and some parameters."""

    def __init__(self, fn, **parameters):
        super().__init__()
        self.fn = fn
        for name, value in parameters.items():
            setattr(self, name, nn.Parameter(value) if isinstance(value, torch.Tensor) else value)

    def forward(self, *inputs):
        return self.fn(self, *inputs)


def seq(*modules: nn.Module) -> Callable[[], nn.Module]:
    return lambda: nn.Sequential(*modules)


class SharedWeight(nn.Module):
    """Two convolutions sharing one weight, each followed by its own BatchNormalization."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 3, 3, 3) * 0.2)
        self.bn1, self.bn2 = nn.BatchNorm2d(8), nn.BatchNorm2d(8)

    def forward(self, x):
        return self.bn1(F.conv2d(x, self.weight)), self.bn2(F.conv2d(x, self.weight, padding=1))


class ConvUsedTwice(nn.Module):
    """The Conv output feeds the BatchNormalization and a residual Add: must not fold."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


class ConvIsOutput(nn.Module):
    """The Conv output is also a graph output: must not fold."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y), y


class ConcatBN(nn.Module):
    """BatchNormalization after a Concat (DenseNet): nothing to fold into."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.bn = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1), nn.BatchNorm2d(8)

    def forward(self, x):
        return self.bn(torch.cat([self.a(x), self.b(x)], 1))


class Generator(nn.Module):
    """A DCGAN-style generator: ConvTranspose + BatchNormalization + ReLU blocks."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(16, 32, 4, 1, 0, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.ConvTranspose2d(32, 16, 4, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.ConvTranspose2d(16, 8, 4, 2, 1, groups=2, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.ConvTranspose2d(8, 3, 4, 2, 1, bias=False), nn.Tanh(),
        )

    def forward(self, z):
        return self.net(z)


class Net1d(nn.Module):
    """A 1-D network: Conv1d + BatchNorm1d blocks, then a Linear + BatchNorm1d head."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(2, 8, 5, padding=2), nn.BatchNorm1d(8), nn.ReLU(),
            nn.Conv1d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm1d(8), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Linear(8 * 16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 5))

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))


def lora(scale: float | None):
    def forward(m, x):
        adapter = (x @ m.a) @ m.b
        return x @ m.w + (adapter * m.s if scale is not None else adapter)

    torch.manual_seed(3)
    return lambda: Lambda(forward, w=torch.randn(16, 12), a=torch.randn(16, 2), b=torch.randn(2, 12),
                          s=torch.tensor(scale if scale is not None else 1.0))


def tv(name: str) -> Callable[[], nn.Module]:
    return lambda: getattr(torchvision.models, name)()


CASES = [
    # BatchNormalization folding
    Case("conv2d_bn", seq(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU()), [(1, 3, 12, 12)],
         {"BatchNormalization": 0, "Conv": 1}, {"fold-conv-batchnorm": 1}),
    Case("conv2d_bias_bn", seq(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)), [(2, 3, 10, 10)],
         {"BatchNormalization": 0}, {"fold-conv-batchnorm": 1}),
    Case("conv1d_bn", seq(nn.Conv1d(3, 6, 3), nn.BatchNorm1d(6)), [(2, 3, 20)],
         {"BatchNormalization": 0}, {"fold-conv-batchnorm": 1}),
    Case("conv3d_bn", seq(nn.Conv3d(2, 4, 3), nn.BatchNorm3d(4)), [(1, 2, 6, 6, 6)],
         {"BatchNormalization": 0}, {"fold-conv-batchnorm": 1}),
    Case("conv_grouped_bn", seq(nn.Conv2d(8, 8, 3, groups=4), nn.BatchNorm2d(8)), [(1, 8, 9, 9)],
         {"BatchNormalization": 0}, {"fold-conv-batchnorm": 1}),
    Case("conv_depthwise_bn", seq(nn.Conv2d(6, 6, 3, groups=6, bias=False), nn.BatchNorm2d(6)), [(1, 6, 9, 9)],
         {"BatchNormalization": 0}, {"fold-conv-batchnorm": 1}),
    Case("conv_bn_eps", seq(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, eps=1e-3)), [(1, 3, 5, 5)],
         {"BatchNormalization": 0}, {"fold-conv-batchnorm": 1}),
    Case("convtranspose_bn", seq(nn.ConvTranspose2d(4, 6, 3, stride=2), nn.BatchNorm2d(6)), [(1, 4, 5, 5)],
         {"BatchNormalization": 0}, {"fold-convtranspose-batchnorm": 1}),
    Case("convtranspose_grouped_bn", seq(nn.ConvTranspose2d(6, 9, 3, groups=3), nn.BatchNorm2d(9)), [(1, 6, 5, 5)],
         {"BatchNormalization": 0}, {"fold-convtranspose-batchnorm": 1}),
    Case("convtranspose1d_bn", seq(nn.ConvTranspose1d(3, 5, 4, stride=2, bias=False), nn.BatchNorm1d(5)), [(2, 3, 7)],
         {"BatchNormalization": 0}, {"fold-convtranspose-batchnorm": 1}),
    Case("linear_bn1d", seq(nn.Linear(10, 6), nn.BatchNorm1d(6), nn.ReLU()), [(4, 10)],
         {"BatchNormalization": 0, "Gemm": 1}),
    Case("linear_nobias_bn1d", seq(nn.Linear(10, 6, bias=False), nn.BatchNorm1d(6)), [(4, 10)],
         {"BatchNormalization": 0}),
    Case("shared_weight_bn", SharedWeight, [(1, 3, 8, 8)], {"BatchNormalization": 0}, {"fold-conv-batchnorm": 2}),
    Case("generator_convtranspose", Generator, [(2, 16, 1, 1)],
         {"BatchNormalization": 0, "ConvTranspose": 4}, {"fold-convtranspose-batchnorm": 3}),
    Case("net1d_linear_bn1d_head", Net1d, [(3, 2, 16)], {"BatchNormalization": 0}, {"fold-conv-batchnorm": 2}),
    # Where BatchNormalization must stay
    Case("conv_used_twice", ConvUsedTwice, [(1, 4, 6, 6)], {"BatchNormalization": 1}, not_fired=("fold-conv-batchnorm",)),
    Case("conv_is_output", ConvIsOutput, [(1, 3, 6, 6)], {"BatchNormalization": 1}, not_fired=("fold-conv-batchnorm",)),
    Case("concat_bn", ConcatBN, [(1, 3, 6, 6)], {"BatchNormalization": 1}, not_fired=("fold-conv-batchnorm",)),
    Case("bn_alone", seq(nn.BatchNorm2d(3), nn.ReLU()), [(1, 3, 4, 4)], {"BatchNormalization": 1}),
    # Affine fusions
    Case("conv_mul_channel", lambda: Lambda(lambda m, x: F.conv2d(x, m.w, m.b) * m.s.view(1, 4, 1, 1),
                                            w=torch.randn(4, 3, 3, 3), b=torch.randn(4), s=torch.rand(4) + 0.5),
         [(1, 3, 7, 7)], {"Mul": 0, "Conv": 1}, {"fuse-conv-mul": 1}),
    Case("conv_add_channel", lambda: Lambda(lambda m, x: m.c.view(1, 4, 1, 1) + F.conv2d(x, m.w),
                                            w=torch.randn(4, 3, 3, 3), c=torch.randn(4)),
         [(1, 3, 7, 7)], {"Add": 0, "Conv": 1}, {"fuse-conv-add": 1}),
    Case("conv_add_width_trap", lambda: Lambda(lambda m, x: F.conv2d(x, m.w, m.b) + m.c,
                                               w=torch.randn(4, 3, 3, 3), b=torch.randn(4), c=torch.randn(4)),
         [(1, 3, 6, 6)], {"Add": 1}, not_fired=("fuse-conv-add",)),
    Case("convtranspose_mul", lambda: Lambda(lambda m, x: F.conv_transpose2d(x, m.w) * m.s.view(1, 5, 1, 1),
                                             w=torch.randn(3, 5, 2, 2), s=torch.rand(5) + 0.5),
         [(1, 3, 4, 4)], {"Mul": 0}, {"fuse-convtranspose-mul-nobias": 1}),
    # The TorchScript exporter computes F.pad's pads at run time (ConstantOfShape, Concat, Slice,
    # Transpose, Reshape, Cast; its constant folding leaves them), so the Pad cannot fold without a
    # constant folder; the numbers must still hold. (The dynamo exporter folds it into the Conv.)
    Case("pad_conv", lambda: Lambda(lambda m, x: F.conv2d(F.pad(x, (1, 2, 0, 1)), m.w), w=torch.randn(4, 3, 3, 3)),
         [(1, 3, 8, 8)], {"Pad": 1, "Conv": 1}),
    Case("pad_reflect_conv_trap", lambda: Lambda(lambda m, x: F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), m.w),
                                                 w=torch.randn(4, 3, 3, 3)),
         [(1, 3, 8, 8)], {"Pad": 1}),
    Case("pad_value_conv_trap", lambda: Lambda(lambda m, x: F.conv2d(F.pad(x, (1, 1, 1, 1), value=0.5), m.w),
                                               w=torch.randn(4, 3, 3, 3)),
         [(1, 3, 8, 8)], {"Pad": 1}),
    # MatMul
    Case("matmul_add_2d", lambda: Lambda(lambda m, x: x @ m.w + m.b, w=torch.randn(8, 5), b=torch.randn(5)),
         [(3, 8)], {"Gemm": 1, "MatMul": 0, "Add": 0}, {"fuse-matmul-add": 1}),
    Case("matmul_add_3d_trap", lambda: Lambda(lambda m, x: x @ m.w + m.b, w=torch.randn(8, 5), b=torch.randn(5)),
         [(2, 3, 8)], {"Gemm": 0, "MatMul": 1}, not_fired=("fuse-matmul-add",)),
    Case("matmul_bn1d", lambda: nn.Sequential(Lambda(lambda m, x: x @ m.w, w=torch.randn(8, 6)), nn.BatchNorm1d(6)),
         [(4, 8)], {"BatchNormalization": 0, "MatMul": 0}, {"fold-matmul-batchnorm": 1}),
    Case("lora", lora(None), [(5, 16)], {"MatMul": 1}, {"merge-lora": 1}),
    Case("lora_scaled", lora(0.5), [(5, 16)], {"MatMul": 1}, {"fold-scale-into-matmul": 1, "merge-lora": 1}),
    # Clean-ups (the exporter itself merges the Transposes of consecutive permutes)
    Case("transpose_cancel", lambda: Lambda(lambda m, x: torch.relu(x.permute(0, 2, 3, 1).permute(0, 3, 1, 2))),
         [(1, 2, 3, 4)], {"Transpose": 0}),
    Case("transpose_merge", lambda: Lambda(lambda m, x: torch.relu(x.permute(0, 2, 3, 1).permute(1, 0, 3, 2))),
         [(1, 2, 3, 4)], {"Transpose": 1}),
    Case("reshape_reshape", lambda: Lambda(lambda m, x: torch.relu(x.reshape(6, 4).reshape(4, 6))),
         [(2, 3, 4)], {"Reshape": 1}),
    Case("unsqueeze_squeeze", lambda: Lambda(lambda m, x: torch.relu(torch.relu(x).unsqueeze(1).squeeze(1))),
         [(2, 3)], {"Unsqueeze": 0, "Squeeze": 0}),
    # torchvision classification networks
    Case("resnet18", tv("resnet18"), [(1, 3, 224, 224)], {"BatchNormalization": 0}, {"fold-conv-batchnorm": 20}),
    Case("mobilenet_v3_small", tv("mobilenet_v3_small"), [(1, 3, 224, 224)], {"BatchNormalization": 0}),
    Case("efficientnet_b0", tv("efficientnet_b0"), [(1, 3, 224, 224)], {"BatchNormalization": 0}),
    Case("shufflenet_v2_x0_5", tv("shufflenet_v2_x0_5"), [(1, 3, 224, 224)], {"BatchNormalization": 0}),
    Case("densenet121", tv("densenet121"), [(1, 3, 224, 224)], {"BatchNormalization": 62}, {"fold-conv-batchnorm": 59}),
]


def export(case: Case, path: Path) -> None:
    torch.manual_seed(0)
    model = randomize(case.build())
    args = tuple(torch.randn(*shape) for shape in case.inputs)
    has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    with torch.no_grad():
        torch.onnx.export(model, args, str(path), dynamo=False, do_constant_folding=not has_batchnorm, opset_version=17,
                          training=torch.onnx.TrainingMode.EVAL)



def check(case: Case, binary: str, out: Path) -> list[str]:
    """The failures of one case (empty when it passes)."""
    original, fused, again = out / f"{case.name}.onnx", out / f"{case.name}.fused.onnx", out / f"{case.name}.again.onnx"
    report_path = out / f"{case.name}.report.json"
    export(case, original)
    run = subprocess.run([binary, str(original), "-o", str(fused), "--report", str(report_path), "-q"],
                         capture_output=True, text=True)
    if run.returncode != 0:
        return [f"onnx-fuse exited {run.returncode}: {run.stderr.strip()}"]
    failures = []
    after = count(fused)
    for op, expected in case.after.items():
        if after[op] != expected:
            failures.append(f"{after[op]} {op} left, expected {expected}")
    fired = {entry["rule"]: entry["count"] for entry in json.loads(report_path.read_text())["rules_fired"]}
    for rule, expected in case.fired.items():
        if fired.get(rule, 0) != expected:
            failures.append(f"{rule} fired {fired.get(rule, 0)} times, expected {expected}")
    for rule in case.not_fired:
        if rule in fired:
            failures.append(f"{rule} fired")
    error = relative_error(original, fused)
    if not error <= TOLERANCE:
        failures.append(f"relative error {error:.2e} > {TOLERANCE}")
    try:
        onnx.checker.check_model(str(fused), full_check=True)
    except Exception as e:  # noqa: BLE001 - report any checker failure
        failures.append(f"checker: {e}")
    rerun = subprocess.run([binary, str(fused), "-o", str(again), "-q"], capture_output=True, text=True)
    if rerun.returncode != 0 or again.read_bytes() != fused.read_bytes():
        failures.append("a second run changed the output")
    before = count(original)
    rules = ", ".join(f"{rule} x{n}" for rule, n in fired.items())
    print(f"{case.name:26} {sum(before.values()):5} -> {sum(after.values()):<5} {error:9.1e}  {rules}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary")
    parser.add_argument("outdir")
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    args = parser.parse_args()
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    cases = CASES if not args.cases else [c for c in CASES if c.name in args.cases.split(",")]
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, onnxruntime {ort.__version__}")
    print(f"{'case':26} {'nodes':>13} {'rel. error':>9}  rules fired")
    failed = 0
    for case in cases:
        failures = check(case, args.binary, out)
        for failure in failures:
            print(f"  FAILED {case.name}: {failure}")
        failed += bool(failures)
    print(f"{len(cases) - failed} of {len(cases)} cases pass")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
