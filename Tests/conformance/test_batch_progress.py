"""The progress line of a batch (`onnx-fuse DIR -o OUT/`), on a terminal and off one.

  * test_progress_line_on_a_terminal
        With standard error on a pseudo-terminal, a batch that lasts more than a second
        shows `onnx-fuse: [done/total] N running, ...` rewritten in place (`\\r`, clear to
        the end of the line), erased before every log line and at the end: with the
        progress writes taken out, the log is the log of a run without a terminal.
  * test_no_progress_line_without_a_terminal
        Standard error on a pipe, or -q on a terminal: no progress line, no escape.

Whether a run lasts more than a second depends on the machine: the batch grows (more
copies of one long model) until a run takes 1.5 s; the assertion is about the run that
did, never about a time.
"""

from __future__ import annotations

import os
import pty
import re
import shutil
import subprocess
import time
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from test_conformance import onnx_fuse_binary

# One progress write: back to the start of the line, clear it, and maybe draw it anew.
PROGRESS = re.compile(rb"\r\x1b\[K(onnx-fuse: \[\d+/\d+\] \d+ running(, \d+ failed)?, [\d.]+ s)?")


def write_chain(path: Path, length: int) -> None:
    """A model of `length` Identity nodes in a row (each one a rewrite for onnx-fuse)."""
    nodes = [helper.make_node("Identity", [f"v{i}"], [f"v{i + 1}"], name=f"n{i}") for i in range(length)]
    graph = helper.make_graph(
        nodes, "chain",
        [helper.make_tensor_value_info("v0", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info(f"v{length}", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def run_on_terminal(arguments: list[str], cwd: Path) -> tuple[int, bytes, float]:
    """Runs onnx-fuse with standard error on a pseudo-terminal; its exit code, what it wrote
    there (the terminal's \\r\\n made \\n again) and the seconds it took."""
    controller, terminal = pty.openpty()
    start = time.monotonic()
    process = subprocess.Popen([onnx_fuse_binary(), *arguments], cwd=cwd, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=terminal)
    os.close(terminal)
    written = bytearray()
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the last writer closed the terminal
            break
        if not chunk:
            break
        written += chunk
    code = process.wait(timeout=300)
    seconds = time.monotonic() - start
    os.close(controller)
    return code, bytes(written).replace(b"\r\n", b"\n"), seconds


@pytest.fixture(scope="module")
def long_batch(tmp_path_factory) -> tuple[list[str], Path]:
    """Arguments of a batch that runs for more than 1.5 s here, and the folder to run in
    (found once for both tests)."""
    tmp_path = tmp_path_factory.mktemp("batch")
    models = tmp_path / "models"
    models.mkdir()
    write_chain(models / "m000.onnx", 4000)
    copies = 1
    while True:
        arguments = ["models", "-o", "out/", "--jobs", "1"]
        _, _, seconds = run_on_terminal(arguments, tmp_path)
        if seconds > 1.5 or copies >= 256:
            return arguments, tmp_path
        for index in range(copies, copies * 2):
            shutil.copy(models / "m000.onnx", models / f"m{index:03d}.onnx")
        copies *= 2


def test_progress_line_on_a_terminal(long_batch):
    arguments, cwd = long_batch
    code, written, seconds = run_on_terminal(arguments, cwd)
    assert code == 0, written
    assert seconds > 1, "the batch got faster than a second between two runs"
    assert PROGRESS.search(written) and b"onnx-fuse: [" in written, written[-2000:]
    # Every write of it is erased before a log line: taken out, the log is whole lines.
    log = PROGRESS.sub(b"", written)
    assert b"\x1b" not in log and b"\r" not in log, log[-2000:]
    lines = log.decode().splitlines()
    assert lines[-1].startswith(f"onnx-fuse: {len(lines) - 1} models: {len(lines) - 1} written, 0 failed; "), lines[-3:]
    assert all(line.startswith("onnx-fuse: models/m") for line in lines[:-1]), lines[:3]
    # The line ends erased: the last thing written is the total line.
    assert written.endswith(b" s\n"), written[-200:]


def test_no_progress_line_without_a_terminal(long_batch):
    arguments, cwd = long_batch
    piped = subprocess.run([onnx_fuse_binary(), *arguments], cwd=cwd, capture_output=True, timeout=300)
    assert piped.returncode == 0, piped.stderr
    assert b"\x1b" not in piped.stderr and b"\r" not in piped.stderr and b"onnx-fuse: [" not in piped.stderr
    code, written, _ = run_on_terminal([*arguments, "-q"], cwd)
    assert code == 0 and written == b"", written[-2000:]
