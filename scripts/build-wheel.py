#!/usr/bin/env python3
"""Assembles the onnx-fuse wheel from python/ and a built binary (scripts/wheel builds it).

No build backend: the wheel is a zip written here, entries in sorted order with fixed
timestamps and permissions, so the same sources and binary give the same bytes on any machine
(the zip's compression is zlib's at a fixed level). The metadata comes from
python/pyproject.toml's [project] table; the version must match the package's __version__ and
the binary's --version, or nothing is written.

    scripts/build-wheel.py --binary PATH [--out dist] [--check]

--check assembles the wheel twice in memory and fails unless both are identical.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / "python"
# The binary is static (no interpreter, no shared libraries), so the wheel fits any x86_64 Linux
# that pip's manylinux2014 tag admits (glibc 2.17 and later).
TAG = "py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64"
# Zip timestamps cannot be before 1980; every entry gets this one.
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def project() -> dict:
    with open(PYTHON / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["project"]


def metadata(info: dict) -> str:
    """The METADATA file (core metadata 2.1)."""
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {info['name']}",
        f"Version: {info['version']}",
        f"Summary: {info['description']}",
        f"Requires-Python: {info['requires-python']}",
        f"Keywords: {','.join(info.get('keywords', []))}",
    ]
    lines += [f"Classifier: {classifier}" for classifier in info.get("classifiers", [])]
    for extra, requirements in sorted(info.get("optional-dependencies", {}).items()):
        lines.append(f"Provides-Extra: {extra}")
        lines += [f'Requires-Dist: {requirement}; extra == "{extra}"' for requirement in requirements]
    lines.append("Description-Content-Type: text/markdown")
    readme = (PYTHON / info["readme"]).read_text(encoding="utf-8")
    return "\n".join(lines) + "\n\n" + readme


def entry_points(info: dict) -> str:
    scripts = info.get("scripts", {})
    return "[console_scripts]\n" + "".join(f"{name} = {target}\n" for name, target in sorted(scripts.items()))


def package_version() -> str:
    text = (PYTHON / "onnx_fuse" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if not match:
        sys.exit("build-wheel: python/onnx_fuse/__init__.py has no __version__")
    return match.group(1)


def binary_version(binary: Path) -> str:
    output = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout
    return output.strip().removeprefix("onnx-fuse ").strip()


def files(binary: Path, info: dict) -> list[tuple[str, bytes, int]]:
    """Every entry but RECORD: (name in the wheel, bytes, permissions)."""
    name = info["name"].replace("-", "_")
    dist_info = f"{name}-{info['version']}.dist-info"
    entries: list[tuple[str, bytes, int]] = []
    for path in sorted((PYTHON / "onnx_fuse").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            entries.append((path.relative_to(PYTHON).as_posix(), path.read_bytes(), 0o644))
    entries.append(("onnx_fuse/_bin/onnx-fuse", binary.read_bytes(), 0o755))
    entries.append((f"{dist_info}/METADATA", metadata(info).encode(), 0o644))
    entries.append((f"{dist_info}/WHEEL", (
        "Wheel-Version: 1.0\nGenerator: onnx-fuse scripts/build-wheel.py\nRoot-Is-Purelib: false\n"
        + "".join(f"Tag: {tag}\n" for tag in expand_tags(TAG))).encode(), 0o644))
    entries.append((f"{dist_info}/entry_points.txt", entry_points(info).encode(), 0o644))
    return sorted(entries)


def expand_tags(compressed: str) -> list[str]:
    python, abi, platforms = compressed.split("-")
    return [f"{python}-{abi}-{platform}" for platform in platforms.split(".")]


def wheel_bytes(binary: Path, info: dict) -> bytes:
    name = info["name"].replace("-", "_")
    record_name = f"{name}-{info['version']}.dist-info/RECORD"
    entries = files(binary, info)
    record = io.StringIO()
    for path, data, _ in entries:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.write(f"{path},sha256={digest},{len(data)}\n")
    record.write(f"{record_name},,\n")
    entries.append((record_name, record.getvalue().encode(), 0o644))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data, mode in entries:
            item = zipfile.ZipInfo(path, date_time=FIXED_TIME)
            item.compress_type = zipfile.ZIP_DEFLATED
            item.create_system = 3  # Unix, so that the permissions below count
            item.external_attr = (0o100000 | mode) << 16
            archive.writestr(item, data, compresslevel=9)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", type=Path, required=True, help="the release onnx-fuse binary to put in the wheel")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="the folder to write the wheel to")
    parser.add_argument("--check", action="store_true", help="assemble twice and fail unless identical")
    arguments = parser.parse_args()
    info = project()
    versions = {"pyproject.toml": info["version"], "onnx_fuse.__version__": package_version(),
                "onnx-fuse --version": binary_version(arguments.binary)}
    if len(set(versions.values())) != 1:
        sys.exit("build-wheel: the versions differ: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    data = wheel_bytes(arguments.binary, info)
    if arguments.check and wheel_bytes(arguments.binary, info) != data:
        sys.exit("build-wheel: two assemblies of the wheel differ")
    arguments.out.mkdir(parents=True, exist_ok=True)
    target = arguments.out / f"{info['name'].replace('-', '_')}-{info['version']}-{TAG}.whl"
    temporary = target.with_suffix(".whl.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, target)
    print(target)


if __name__ == "__main__":
    main()
