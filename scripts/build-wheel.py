#!/usr/bin/env python3
"""Assembles the onnx-fuse wheel from python/ and a built binary (scripts/wheel builds it).

No build backend: the wheel is a zip written here, entries in sorted order with fixed
timestamps and permissions, so the same sources and binary give the same bytes on any machine
(the zip's compression is zlib's at a fixed level). The binary is normalized: the parts a Swift
build derives from the checkout's folder are cleared (`normalized_binary`). The metadata comes
from python/pyproject.toml's [project] table; the version must match the package's __version__
and the binary's --version, or nothing is written.

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
import struct
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


def elf_sections(data: bytes) -> dict[str, tuple[int, int]]:
    """The sections of an ELF64 little-endian file: name -> (file offset, size)."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        sys.exit("build-wheel: the binary is not a 64-bit little-endian ELF file")
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(index: int) -> tuple[int, int, int]:
        base = shoff + index * shentsize
        name = struct.unpack_from("<I", data, base)[0]
        offset, size = struct.unpack_from("<QQ", data, base + 0x18)
        return name, offset, size

    names_offset = header(shstrndx)[1]
    sections = {}
    for index in range(shnum):
        name, offset, size = header(index)
        end = data.index(b"\0", names_offset + name)
        sections[data[names_offset + name:end].decode()] = (offset, size)
    return sections


def normalized_binary(data: bytes) -> bytes:
    """The binary without what depends on the folder it was built in.

    Swift writes into each object a hash of its LLVM module (section `.swift_modhash`), which
    only the compiler reads, to skip code generation when an object is current; the module's
    identifier in it is the object's output path, so the hash changes with the checkout's
    folder. It is zeroed; then the GNU build ID, which the linker computed over it, is
    recomputed over the result (SHA-1 of the file with the ID zeroed).
    """
    sections = elf_sections(data)
    patched = bytearray(data)
    if ".swift_modhash" in sections:
        offset, size = sections[".swift_modhash"]
        patched[offset:offset + size] = bytes(size)
    if ".note.gnu.build-id" in sections:
        offset, size = sections[".note.gnu.build-id"]
        name_size, desc_size, kind = struct.unpack_from("<III", patched, offset)
        desc = offset + 12 + (name_size + 3) // 4 * 4
        if kind != 3 or desc + desc_size > offset + size:
            sys.exit("build-wheel: unexpected build ID note")
        patched[desc:desc + desc_size] = bytes(desc_size)
        patched[desc:desc + desc_size] = hashlib.sha1(patched).digest()[:desc_size].ljust(desc_size, b"\0")
    return bytes(patched)


def files(binary: Path, info: dict) -> list[tuple[str, bytes, int]]:
    """Every entry but RECORD: (name in the wheel, bytes, permissions)."""
    name = info["name"].replace("-", "_")
    dist_info = f"{name}-{info['version']}.dist-info"
    entries: list[tuple[str, bytes, int]] = []
    for path in sorted((PYTHON / "onnx_fuse").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            entries.append((path.relative_to(PYTHON).as_posix(), path.read_bytes(), 0o644))
    entries.append(("onnx_fuse/_bin/onnx-fuse", normalized_binary(binary.read_bytes()), 0o755))
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
