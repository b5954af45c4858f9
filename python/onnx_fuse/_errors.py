"""The exceptions of the Python API: one per exit code of the ``onnx-fuse`` command."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Type

#: What each exit code of the ``onnx-fuse`` command means (as its ``--help`` says).
EXIT_CODE_MEANINGS: Dict[int, str] = {
    0: "done",
    1: "usage error (bad arguments, a rule file with errors, rules that stop at the rewrite cap)",
    2: "invalid or unsupported model",
    3: "I/O error, or an input file changed while onnx-fuse read it; nothing written",
    4: "a limit exceeded (nesting depth, memory budget, size)",
    5: "verification: a rule or the whole model changed the numbers (or, with strict, "
    "something could not be checked); nothing written",
}


class OnnxFuseError(Exception):
    """onnx-fuse refused or failed: the base of every error this package raises for a run.

    ``str(error)`` is the command's one-line message (``model.onnx: ...``); the attributes say
    more.

    Attributes:
        message: the first error line, without the ``onnx-fuse: error:`` prefix.
        errors: every error line (a rule file with several errors has one per error).
        exit_code: the command's exit code (negative: killed by that signal).
        meaning: what the exit code means (``EXIT_CODE_MEANINGS``).
        stderr: everything the command printed on standard error.
        report: for :func:`optimize`, the :class:`Report` when the command wrote one (a
            verification failure does); for :func:`check_rules`, the :class:`RuleCheck`.
    """

    def __init__(self, message: str, *, exit_code: int, errors: Optional[List[str]] = None,
                 stderr: str = "", report: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors: List[str] = list(errors) if errors else [message]
        self.exit_code = exit_code
        self.meaning = meaning_of(exit_code)
        self.stderr = stderr
        self.report = report

    def __str__(self) -> str:
        more = len(self.errors) - 1
        return self.message + (f" (and {more} more)" if more > 0 else "")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, exit_code={self.exit_code})"

    def __reduce__(self) -> Any:
        # Exception's own reduction calls the class with ``args`` alone, which lacks the
        # keyword-only exit_code: without this, pickle (a ProcessPoolExecutor or
        # multiprocessing worker sending the error back) and copy.copy would fail.
        return (_rebuild, (type(self), self.message, self.exit_code, self.errors, self.stderr, self.report),
                self.__dict__)


def _rebuild(kind: Type["OnnxFuseError"], message: str, exit_code: int, errors: List[str], stderr: str,
             report: Any) -> "OnnxFuseError":
    """An error unpickled (``OnnxFuseError.__reduce__``)."""
    return kind(message, exit_code=exit_code, errors=errors, stderr=stderr, report=report)


class UsageError(OnnxFuseError, ValueError):
    """Exit code 1: bad arguments, a rule file with errors, an unknown rule name, or rules that
    stopped at the rewrite cap."""


class InvalidModelError(OnnxFuseError, ValueError):
    """Exit code 2: the model is not valid ONNX, or uses something onnx-fuse does not support."""


class ModelIOError(OnnxFuseError, OSError):
    """Exit code 3: a file could not be read or written, or an input changed while it was read."""

    def __str__(self) -> str:  # OSError's own __str__ would print its (absent) errno
        return OnnxFuseError.__str__(self)


class LimitExceededError(OnnxFuseError):
    """Exit code 4: a limit was exceeded (nesting depth, memory budget, size)."""


class VerificationError(OnnxFuseError):
    """Exit code 5: verification found that a rewrite or the whole model changed the numbers
    (or, strict, that something could not be checked). Nothing was written; ``report`` says
    which rule, node and value."""


_BY_EXIT_CODE: Dict[int, Type[OnnxFuseError]] = {
    1: UsageError,
    2: InvalidModelError,
    3: ModelIOError,
    4: LimitExceededError,
    5: VerificationError,
}


def meaning_of(exit_code: int) -> str:
    """What ``exit_code`` of the command means."""
    if exit_code in EXIT_CODE_MEANINGS:
        return EXIT_CODE_MEANINGS[exit_code]
    if exit_code < 0:
        import signal

        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        return f"onnx-fuse was killed by {name}"
    return f"onnx-fuse failed with exit code {exit_code}"


def error_for(exit_code: int, errors: List[str], stderr: str, report: Any = None) -> OnnxFuseError:
    """The exception for a run that ended with ``exit_code`` and printed ``errors``."""
    kind = _BY_EXIT_CODE.get(exit_code, OnnxFuseError)
    if not errors:
        last = [line for line in stderr.splitlines() if line.strip()]
        errors = [last[-1]] if last else [meaning_of(exit_code)]
    return kind(errors[0], exit_code=exit_code, errors=errors, stderr=stderr, report=report)
