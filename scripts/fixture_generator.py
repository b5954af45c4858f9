"""Shared by the fixture generators of the rule families (make-cleanup-, make-affine-,
make-matmul-fixtures.py): access to scripts/make-fixtures.py's helpers, and the common main
loop: build each model, check it with onnx.checker (full_check) before and after writing, run
it once in onnxruntime, and refuse fixtures over the size limit."""

from __future__ import annotations

import importlib.util
import os
from typing import Callable

import onnx

_HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("make_fixtures", os.path.join(_HERE, "make-fixtures.py"))
make_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_fixtures)


def generate(fixtures: dict[str, Callable[[], onnx.ModelProto]], description: str, argv=None) -> int:
    """The command line of a generator: `--out DIR` (default fixtures/) and `--no-ort` (see
    make-fixtures.py's generate_fixtures)."""
    return make_fixtures.generate_fixtures(fixtures, description, argv)
