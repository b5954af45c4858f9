"""onnx-fuse: make ONNX models smaller and faster, from Python.

The package carries the native ``onnx-fuse`` binary (statically linked) and runs it on your
models: :func:`optimize` rewrites a model, :func:`optimize_files` many model files in one run,
:func:`check_rules` checks rule files or rule text on models, :func:`list_rules` lists the rules. Errors are :class:`OnnxFuseError` exceptions
carrying the command's one-line message and the meaning of its exit code.

``onnx`` is optional: it is needed only to pass or receive an ``onnx.ModelProto``; bytes and
paths work without it.
"""

from __future__ import annotations

from ._errors import (
    EXIT_CODE_MEANINGS,
    InvalidModelError,
    LimitExceededError,
    ModelIOError,
    OnnxFuseError,
    UsageError,
    VerificationError,
)
from ._api import (
    Explanation,
    FileResult,
    FilesResult,
    ModelCheck,
    Optimized,
    Report,
    Rule,
    RuleCheck,
    RuleCheckRow,
    RuleText,
    binary_path,
    check_rules,
    list_rules,
    optimize,
    optimize_files,
)

__version__ = "0.1.0"

__all__ = [
    "EXIT_CODE_MEANINGS",
    "Explanation",
    "FileResult",
    "FilesResult",
    "InvalidModelError",
    "LimitExceededError",
    "ModelCheck",
    "ModelIOError",
    "OnnxFuseError",
    "Optimized",
    "Report",
    "Rule",
    "RuleCheck",
    "RuleCheckRow",
    "RuleText",
    "UsageError",
    "VerificationError",
    "__version__",
    "binary_path",
    "check_rules",
    "list_rules",
    "optimize",
    "optimize_files",
]
