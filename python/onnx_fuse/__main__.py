"""``python -m onnx_fuse ARGS`` runs the ``onnx-fuse`` command."""

from ._cli import main

main()
