"""The ``onnx-fuse`` command of the wheel: the bundled binary, run in place of Python."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from ._api import binary_path


def main() -> NoReturn:
    """Replaces this process with the binary, so that its exit code, signals, standard streams
    and terminal (the progress line) are the command's own."""
    try:
        binary = binary_path()
    except OSError as error:
        print(f"onnx-fuse: error: {error}", file=sys.stderr)
        sys.exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(binary, ["onnx-fuse", *sys.argv[1:]])


if __name__ == "__main__":
    main()
