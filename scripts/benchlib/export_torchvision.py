"""Exports a torchvision classifier the way the benchmark of record's real exports are made:
random weights (seed 0), BatchNormalization statistics and affine parameters drawn at random too
(so that folding them changes the weights), the TorchScript exporter at opset 17 in eval mode,
without its constant folding, so that every BatchNormalization stays in the file for onnx-fuse
and the peers to fold. scripts/check-batchnorm-folding.py exports its networks with `export`.

usage: python export_torchvision.py MODEL OUT.onnx     (MODEL: resnet50, densenet121, vgg16_bn, ...)

Needs torch and torchvision (large: not in the project venv nor in CI). `resnet50`, `densenet121`
and `vgg16_bn` give the `--model` files of BENCHMARKS.md's record (102.5 MB, 32.4 MB, 553.5 MB).
"""
import argparse
from pathlib import Path

import torch
import torchvision


def prepared(name: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    """torchvision.models.NAME(**kwargs) in eval mode with weights and BatchNormalization
    statistics drawn at random from `seed`."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(**kwargs).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model


def export(name: str, path: Path | str) -> None:
    """torchvision.models.NAME with seeded random weights and BatchNormalization statistics,
    exported to `path` keeping every BatchNormalization."""
    model = prepared(name)
    torch.onnx.export(model, torch.randn(1, 3, 224, 224), str(path), dynamo=False, do_constant_folding=False,
                      opset_version=17, training=torch.onnx.TrainingMode.EVAL)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a torchvision.models constructor, e.g. resnet50")
    p.add_argument("out")
    a = p.parse_args()
    export(a.model, a.out)
