"""Shared by the manual PyTorch checks (check-batchnorm-folding.py, check-pytorch-matrix.py):
operator counts of a model, and how far a rewritten model's outputs are from the original's in
onnxruntime with its graph optimizations off."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort


def count(path: Path) -> Counter:
    """Nodes of the main graph by operator."""
    return Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)


def relative_error(original: Path, rewritten: Path, seeds: int = 3) -> float:
    """The largest ||out - ref|| / ||ref|| over the outputs, on `seeds` seeded random float
    inputs (symbolic dimensions 1)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    a = ort.InferenceSession(str(original), options, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(rewritten), options, providers=["CPUExecutionProvider"])
    worst = 0.0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        feed = {i.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
                for i in a.get_inputs()}
        for x, y in zip(a.run(None, feed), b.run(None, feed)):
            x, y = x.astype(np.float64), y.astype(np.float64)
            worst = max(worst, float(np.linalg.norm(x - y) / max(np.linalg.norm(x), 1e-30)))
    return worst
