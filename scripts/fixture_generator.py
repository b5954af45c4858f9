"""Shared by the fixture generators of the rule families (make-cleanup-, make-affine-,
make-matmul-fixtures.py): access to scripts/make-fixtures.py's helpers, and the common main
loop: build each model, check it with onnx.checker (full_check) before and after writing, run
it once in onnxruntime, and refuse fixtures over the size limit."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from typing import Callable

import onnx

_HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("make_fixtures", os.path.join(_HERE, "make-fixtures.py"))
make_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_fixtures)


def generate(fixtures: dict[str, Callable[[], onnx.ModelProto]], description: str, argv=None) -> int:
    """The command line of a generator: `--out DIR` (default fixtures/) and `--no-ort`."""
    mf = make_fixtures
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(mf.REPO_ROOT, "fixtures"))
    ap.add_argument("--no-ort", action="store_true", help="skip the onnxruntime smoke run")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    ok = True
    for name, build in fixtures.items():
        model = build()
        onnx.checker.check_model(model, full_check=True)
        path = mf.write(name, model, args.out)
        onnx.checker.check_model(path, full_check=True)
        if not args.no_ort:
            mf.smoke_run(path)
        size = os.path.getsize(path)
        if size > mf.MAX_FIXTURE_BYTES:
            print(f"error: {name} is {size} bytes, over {mf.MAX_FIXTURE_BYTES}", file=sys.stderr)
            ok = False
        print(f"{name}.onnx: {size} bytes")
    return 0 if ok else 1
