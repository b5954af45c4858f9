"""The Python API: runs the bundled ``onnx-fuse`` binary on models and reads its JSON reports.

Every call runs the binary once, in a private temporary folder that holds what Python passed in
memory (a ModelProto, bytes, rule text) and what comes back; the folder is removed before the
call returns. Paths in the command's messages that point into that folder are shown as
``<model>``, ``<rules 1>``, ``<output>`` and the like.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from ._errors import OnnxFuseError, UsageError, error_for

if TYPE_CHECKING:  # onnx is optional: imported only where a ModelProto is made
    import onnx

PathLike = Union[str, "os.PathLike[str]"]
#: What :func:`optimize` reads: an ``onnx.ModelProto``, the bytes of a model, or a path.
ModelInput = Union["onnx.ModelProto", bytes, bytearray, memoryview, PathLike]
#: Rules: a path to a rule file, rule text (:class:`RuleText`, or a ``str`` holding a newline or
#: a brace), or a sequence of those.
RulesInput = Union["RuleText", PathLike, Sequence[Union["RuleText", PathLike]]]

_ERROR_PREFIX = "onnx-fuse: error: "
_BIN_ENVIRONMENT = "ONNX_FUSE_BINARY"


@dataclass(frozen=True)
class RuleText:
    """Rules given as text rather than as a file.

    ``name`` is how messages name it (``<rules 1>`` for the first text when empty)::

        onnx_fuse.optimize(model, rules=onnx_fuse.RuleText(open("my.rules").read(), "my.rules"))
    """

    text: str
    name: str = ""


@dataclass(frozen=True)
class Explanation:
    """Why a rule did not fire at a node its root operator matched (``explain=True``)."""

    rule: str
    node: str
    op_type: str
    reason: str


@dataclass(frozen=True)
class Report:
    """What :func:`optimize` did: the content of the command's ``--report`` JSON.

    Attributes:
        input: the path given, or None for a model passed in memory.
        output: the path written (``output=``), or None.
        rules_fired: how often each rule fired, in the order they first fired.
        nodes_before, nodes_after: the node counts (every graph, subgraphs included).
        nodes_by_op_type_before, nodes_by_op_type_after: node counts by operator.
        bytes_before, bytes_after: the sizes of the model files (``bytes_after`` is None when
            nothing was written).
        seconds: the command's time.
        reached_rewrite_cap: the rules stopped at the rewrite cap (``allow_rewrite_cap=True``).
        explanations: with ``explain=True``, why rules did not fire where their root matched.
        verification: with ``verify``, the command's verification report (per rule: rewrites
            checked, worst error; failures; the whole-model comparison), as a dict.
        messages: what the command printed on standard error besides errors (the summary
            line, verification lines, warnings).
        raw: the JSON as the command wrote it.
    """

    input: Optional[str]
    output: Optional[str]
    rules_fired: Dict[str, int]
    nodes_before: int
    nodes_after: int
    nodes_by_op_type_before: Dict[str, int]
    nodes_by_op_type_after: Dict[str, int]
    bytes_before: int
    bytes_after: Optional[int]
    seconds: float
    reached_rewrite_cap: bool
    explanations: List[Explanation]
    verification: Optional[Dict[str, Any]]
    messages: List[str] = field(default_factory=list)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        fired = ", ".join(f"{rule} ×{count}" for rule, count in self.rules_fired.items())
        return (f"{self.input or '<model>'}: {self.nodes_before} -> {self.nodes_after} nodes"
                + (f" ({fired})" if fired else "") + f", {self.seconds:.3f} s")


class Optimized(NamedTuple):
    """The result of :func:`optimize`: unpacks as ``model, report = optimize(...)``.

    ``model`` is of the kind given (bytes for bytes, an ``onnx.ModelProto`` for a ModelProto or
    a path), or None when ``output=`` named a file to write.
    """

    model: Any
    report: Report


@dataclass(frozen=True)
class Rule:
    """A rule, as :func:`list_rules` lists it."""

    name: str
    #: The rule file (``builtin:NAME`` for the built-in ones, ``<rules 1>`` for text).
    file: str
    #: The first line of its comment.
    summary: str
    comment: List[str]
    #: The rule's text as written.
    text: str


@dataclass(frozen=True)
class RuleCheckRow:
    """One rule on one model in :func:`check_rules`."""

    rule: str
    #: The nodes (initializers, imports) its root could match.
    candidates: int
    fired: int
    #: Rewrites checked and found within tolerance.
    verified: int
    #: Rewrites that could not be checked (no kernel, a subgraph, ...).
    not_verified: int
    #: The worst relative error of its rewrites (None when it did not fire, inf when unbounded).
    worst_error: Optional[float]
    first_not_verified_reason: Optional[str]
    #: The rule applied by itself, because another rule took all its candidates.
    alone: bool


@dataclass(frozen=True)
class ModelCheck:
    """What :func:`check_rules` found on one model."""

    model: str
    nodes_before: int
    nodes_after: int
    rules: List[RuleCheckRow]
    #: Rewrites beyond tolerance (rule, node, value, error, tolerance, reason).
    failures: List[Dict[str, Any]]
    #: The whole models compared: ``outcome`` is ``agree``, ``differ`` or ``not_run``.
    whole_model: Optional[Dict[str, Any]]
    #: What makes the check fail on this model.
    refusals: List[str]


@dataclass(frozen=True)
class RuleCheck:
    """The result of :func:`check_rules`."""

    #: The rule files (``<rules 1>`` for text).
    files: List[str]
    #: The names of their rules, in order.
    rules: List[str]
    #: Rules that may undo each other or a built-in rule.
    warnings: List[str]
    models: List[ModelCheck]
    #: Everything that makes the check fail (empty when it passed).
    refusals: List[str]
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """True when no rule changed the numbers of any model."""
        return not self.refusals


def binary_path() -> str:
    """The ``onnx-fuse`` binary this package runs: the one inside the package, or the one the
    ``ONNX_FUSE_BINARY`` environment variable names (to try a development build)."""
    chosen = os.environ.get(_BIN_ENVIRONMENT)
    path = chosen or os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bin", "onnx-fuse")
    if not os.path.isfile(path):
        where = f"{_BIN_ENVIRONMENT}={chosen}" if chosen else "this package"
        raise FileNotFoundError(f"{path}: the onnx-fuse binary is missing ({where}); reinstall the onnx-fuse wheel")
    if not os.access(path, os.X_OK):
        raise PermissionError(f"{path}: the onnx-fuse binary is not executable; reinstall the onnx-fuse wheel")
    return path


class _Workspace:
    """A private temporary folder for one call: the files made from what was passed in memory,
    and the names to show instead of their paths."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="onnx-fuse-")
        self._names: List[Tuple[str, str]] = []
        self._count = 0

    def __enter__(self) -> "_Workspace":
        return self

    def __exit__(self, *exception: object) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def path(self, file_name: str, shown_as: str) -> str:
        """A path in the folder, shown as ``shown_as`` in messages."""
        path = os.path.join(self.folder, file_name)
        self._names.append((path, shown_as))
        return path

    def model(self, model: ModelInput, shown_as: str = "<model>") -> Tuple[str, Optional[str]]:
        """The path the binary reads ``model`` from, and the path given (None for a model in
        memory)."""
        if isinstance(model, (str, os.PathLike)):
            path = os.fspath(model)
            return path, path
        if isinstance(model, (bytes, bytearray, memoryview)):
            self._count += 1
            path = self.path(f"model-{self._count}.onnx", shown_as)
            with open(path, "wb") as file:
                file.write(model)
            return path, None
        if hasattr(model, "SerializeToString") and hasattr(model, "graph"):
            _refuse_unloaded_external_data(model)
            self._count += 1
            path = self.path(f"model-{self._count}.onnx", shown_as)
            _write_model_proto(model, path)
            return path, None
        raise TypeError(f"expected an onnx.ModelProto, bytes or a path, not {type(model).__name__}")

    def rules(self, rules: Optional[RulesInput]) -> List[str]:
        """The rule file paths for ``rules``; text is written to files shown as ``<rules N>``
        (or the RuleText's name)."""
        if rules is None:
            return []
        if isinstance(rules, (bytes, bytearray, memoryview)):
            raise TypeError(f"rules: expected a path, rule text or RuleText, not {type(rules).__name__} "
                            "(decode rule text to str)")
        items: Sequence[Any] = [rules] if isinstance(rules, (str, os.PathLike, RuleText)) else list(rules)
        paths: List[str] = []
        for index, item in enumerate(items, start=1):
            if isinstance(item, str) and _looks_like_rule_text(item):
                item = RuleText(item)
            if isinstance(item, RuleText):
                path = self.path(f"rules-{index}.rules", item.name or f"<rules {index}>")
                with open(path, "w", encoding="utf-8") as file:
                    file.write(item.text)
                paths.append(path)
            elif isinstance(item, (str, os.PathLike)):
                paths.append(os.fspath(item))
            else:
                raise TypeError(f"rules: expected a path, rule text or RuleText, not {type(item).__name__}")
        return paths

    def shown(self, text: str) -> str:
        """``text`` with the folder's paths replaced by the names they stand for."""
        for path, name in sorted(self._names, key=lambda pair: -len(pair[0])):
            text = text.replace(path, name)
        text = text.replace(self.folder + os.sep, "")
        if "characters)…" not in text:
            return text
        # The command shortens a word of more than 200 characters to its start and end around
        # ``…(N characters)…``: with a long TMPDIR, the folder's paths are such words.
        names = dict(self._names)

        def shown_path(match: "re.Match[str]") -> str:
            if not self.folder.startswith(match.group(1)):
                return match.group(0)
            path = os.path.join(self.folder, match.group(2))
            return names.get(path, match.group(2)) + match.group(3)

        pattern = (r"(/\S*)…\(\d+ characters\)…\S*?" + re.escape(os.sep + os.path.basename(self.folder) + os.sep)
                   + r"([^\s:]+)(\S*)")
        return re.sub(pattern, shown_path, text)

    def shown_json(self, value: Any) -> Any:
        """``value`` (parsed JSON) with ``shown`` applied to every string in it."""
        if isinstance(value, str):
            return self.shown(value).translate(_FILE_NAME_BYTES)
        if isinstance(value, list):
            return [self.shown_json(item) for item in value]
        if isinstance(value, dict):
            return {self.shown(key): self.shown_json(item) for key, item in value.items()}
        return value


#: The command writes a byte of a file name that is not UTF-8 as the code point U+10FF00 + byte
#: (U+10FF80 to U+10FFFF, at the end of a private-use plane); Python's file system encoding writes
#: it as the lone surrogate U+DC00 + byte (``surrogateescape``), which ``open`` and ``os.fsencode``
#: turn back into the byte. Applied to the strings of the command's JSON.
_FILE_NAME_BYTES = {0x10FF00 + byte: 0xDC00 + byte for byte in range(0x80, 0x100)}


def _refuse_unloaded_external_data(model: Any) -> None:
    """Refuses a ModelProto whose tensors are still in external data files (``onnx.load(...,
    load_external_data=False)``): written to the private folder, it would name files that are
    not there, and the command's message would name a file the caller cannot find."""
    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        for tensor in graph.initializer:
            if tensor.data_location == 1:  # TensorProto.EXTERNAL
                location = next((entry.value for entry in tensor.external_data if entry.key == "location"), "?")
                raise ValueError(f"the ModelProto's tensor '{tensor.name}' is in the external data file "
                                 f"'{location}', which is not loaded: load the model with its data "
                                 "(onnx.load(path)), or pass the model's path")
        for node in graph.node:
            for attribute in node.attribute:
                graphs.extend([attribute.g] if attribute.HasField("g") else [])
                graphs.extend(attribute.graphs)


#: Added to an I/O error of a model passed as bytes: the only files it can read are data files.
_IN_MEMORY_HINT = (" (a model passed in memory cannot read external data files beside it: "
                   "pass its path, or a ModelProto loaded with its data)")


def _looks_like_rule_text(text: str) -> bool:
    """Rule text has a newline or a brace; a path (in practice) has neither."""
    return "\n" in text or "{" in text


def _write_model_proto(model: Any, path: str) -> None:
    """Writes a ModelProto; past protobuf's 2 GB limit, its tensors go to external data."""
    if model.ByteSize() < (1 << 31) - 1:
        with open(path, "wb") as file:
            file.write(model.SerializeToString())
        return
    onnx = _import_onnx("a ModelProto of more than 2 GB")
    copy = type(model)()
    copy.CopyFrom(model)  # save_model with external data rewrites the tensors it moves
    onnx.save_model(copy, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=os.path.basename(path) + ".data")


def _import_onnx(purpose: str) -> Any:
    try:
        import onnx
    except ImportError as error:
        raise ImportError(f"onnx_fuse needs the onnx package for {purpose}: pip install 'onnx-fuse[onnx]' "
                          "(or pass bytes, or a path with output=)") from error
    return onnx


class _Completed(NamedTuple):
    """A run of the binary, paths in its output shown as names."""

    exit_code: int
    stdout: str
    stderr: str
    #: The error lines, without the ``onnx-fuse: error:`` prefix.
    errors: List[str]
    #: The other lines of standard error.
    messages: List[str]

    def with_hint(self, hint: str) -> "_Completed":
        """This run with ``hint`` added to its first error line."""
        if not self.errors:
            return self
        return self._replace(errors=[self.errors[0] + hint, *self.errors[1:]])

    def error(self, report: Any = None) -> OnnxFuseError:
        """The exception for a failed run."""
        return error_for(self.exit_code, self.errors, self.stderr, report)


#: How long an interrupted command may take to remove its temporary files before it is killed.
_STOP_SECONDS = 10.0


def _stop(process: "subprocess.Popen[bytes]") -> None:
    """Stops a command that is still running: SIGTERM (its temporary files are removed), then
    SIGKILL if it has not ended within ``_STOP_SECONDS``. A second interrupt kills it at once."""
    if process.poll() is not None:
        return
    try:
        process.terminate()
        process.wait(timeout=_STOP_SECONDS)
    except BaseException:  # the timeout, or a second interrupt
        process.kill()
        process.wait()


#: The command's advice in its messages, as the Python API's arguments say it.
_PYTHON_WORDS = [
    ("; pass --in-place to replace it", "; name another output (optimize_files replaces inputs with in_place=True)"),
    ("(--allow-rewrite-cap writes it anyway)", "(allow_rewrite_cap=True writes it anyway)"),
]


def _run(arguments: List[str], workspace: _Workspace) -> _Completed:
    """Runs the binary with ``arguments`` (options first, then ``--`` and the paths that could
    begin with a dash: option values are attached with ``=`` for the same reason).

    Interrupted (KeyboardInterrupt, or any exception while it waits), the command is asked to
    stop with SIGTERM, which makes it remove the temporary files of the outputs it was writing,
    and is waited for; only if it does not stop within ``_STOP_SECONDS`` is it killed.
    """
    with subprocess.Popen([binary_path(), *arguments], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        try:
            stdout_bytes, stderr_bytes = process.communicate()
        except BaseException:
            _stop(process)
            raise
    completed = subprocess.CompletedProcess(process.args, process.returncode, stdout_bytes, stderr_bytes)
    stderr = workspace.shown(completed.stderr.decode("utf-8", errors="replace"))
    errors: List[str] = []
    messages: List[str] = []
    for line in stderr.splitlines():
        if line.startswith(_ERROR_PREFIX):
            error = line[len(_ERROR_PREFIX):]
            for command_words, python_words in _PYTHON_WORDS:
                error = error.replace(command_words, python_words)
            errors.append(error)
        elif line:
            messages.append(line)
    # Standard output is left as it is: JSON there escapes the paths ``shown`` would replace.
    stdout = completed.stdout.decode("utf-8", errors="replace")
    return _Completed(completed.returncode, stdout, stderr, errors, messages)


def _names(option: str, names: Optional[Union[str, Iterable[str]]]) -> List[str]:
    if names is None:
        return []
    listed = [names] if isinstance(names, str) else list(names)
    if not listed and option == "--only":
        raise ValueError("only= is empty: pass None to apply every rule")
    for name in listed:
        if not isinstance(name, str):
            raise TypeError(f"{option.strip('-')}=: rule names are strings, not {type(name).__name__}")
    return [f"{option}={name}" for name in listed]


def _rule_arguments(workspace: _Workspace, rules: Optional[RulesInput], only: Optional[Union[str, Iterable[str]]],
                    disable: Optional[Union[str, Iterable[str]]], builtin: bool,
                    verify: Union[bool, str, Sequence[str]], explain: bool) -> List[str]:
    """The options :func:`optimize` and :func:`optimize_files` share: the rules, which of them
    run, verification and explanations."""
    arguments = ["--rules=" + path for path in workspace.rules(rules)]
    arguments += _names("--only", only) + _names("--disable", disable)
    if not builtin:
        arguments.append("--no-builtin")
    arguments += _verify_argument(verify)
    if explain:
        arguments.append("--explain=summary")
    return arguments


def _verify_argument(verify: Union[bool, str, Sequence[str], None]) -> List[str]:
    if verify is None or verify is False:
        return []
    if verify is True:
        return ["--verify=rewrites"]
    modes = [verify] if isinstance(verify, str) else list(verify)
    if not modes:
        raise ValueError("verify= is empty: pass True, \"model\", \"strict\" or a list of those (False for none)")
    return ["--verify=" + ",".join(modes)]


def _report(raw: Dict[str, Any], given_input: Optional[str], output: Optional[str], messages: List[str]) -> Report:
    fired: Dict[str, int] = {}
    for entry in raw.get("rules_fired", []):
        fired[entry["rule"]] = fired.get(entry["rule"], 0) + entry["count"]
    return Report(
        input=given_input,
        output=output,
        rules_fired=fired,
        nodes_before=raw["nodes_before"],
        nodes_after=raw["nodes_after"],
        nodes_by_op_type_before=dict(raw.get("nodes_by_op_type_before", {})),
        nodes_by_op_type_after=dict(raw.get("nodes_by_op_type_after", {})),
        bytes_before=raw.get("bytes_before", 0),
        bytes_after=raw.get("bytes_after"),
        seconds=raw.get("seconds", 0.0),
        reached_rewrite_cap=raw.get("reached_rewrite_cap", False),
        explanations=[Explanation(e["rule"], e["node"], e["op_type"], e["reason"]) for e in raw.get("explanations", [])],
        verification=raw.get("verification"),
        messages=messages,
        raw=raw,
    )


def optimize(
    model: ModelInput,
    rules: Optional[RulesInput] = None,
    only: Optional[Union[str, Iterable[str]]] = None,
    disable: Optional[Union[str, Iterable[str]]] = None,
    builtin: bool = True,
    verify: Union[bool, str, Sequence[str]] = False,
    output: Optional[PathLike] = None,
    *,
    explain: bool = False,
    input_shapes: Optional[Mapping[str, Sequence[int]]] = None,
    infer_shapes: bool = False,
    freeze_initializer_inputs: bool = False,
    fold_limit: Optional[int] = None,
    verify_seed: Optional[int] = None,
    allow_rewrite_cap: bool = False,
) -> Optimized:
    """Rewrites a model with the built-in rules and ``rules``; returns the result and a report.

    Args:
        model: an ``onnx.ModelProto``, the bytes of a model, or a path (models with external
            data work by path: their data is read from beside the file).
        rules: rule files or rule text to apply too: a path, a :class:`RuleText`, a ``str``
            holding rule text (one with a newline or a brace), or a sequence of those.
        only: apply only these rules (names, as :func:`list_rules` gives them).
        disable: do not apply these rules.
        builtin: apply the built-in rules (``False``: only ``rules``).
        verify: check every rewrite with the reference kernels on seeded inputs (``True``);
            ``"model"`` also compares the whole models, ``"strict"`` makes what cannot be
            checked an error (``"model,strict"`` or ``["model", "strict"]`` for both). A rewrite
            that changes the numbers raises :class:`VerificationError`.
        output: write the result to this path (with its external data beside it when it has
            any) instead of returning it; atomically, and never over the input.
        explain: record in ``report.explanations`` why rules did not fire where their root
            operator matched.
        input_shapes: fix the dimensions of graph inputs, e.g. ``{"x": [1, 3, 224, 224]}``.
        infer_shapes: write the inferred types and shapes of intermediate values.
        freeze_initializer_inputs: treat initializers that are also graph inputs as constants.
        fold_limit: fold no value with more elements than this.
        verify_seed: the seed of verification's inputs.
        allow_rewrite_cap: return the result even when the rules stopped at the rewrite cap.

    Returns:
        ``Optimized(model, report)``: ``model`` is bytes when bytes were given, an
        ``onnx.ModelProto`` for a ModelProto or a path (this needs ``onnx``), None with
        ``output=``.

    Raises:
        UsageError, InvalidModelError, ModelIOError, LimitExceededError, VerificationError:
            the command refused (see :class:`OnnxFuseError`); nothing was written.
        TypeError, ValueError: an argument of the wrong kind.
    """
    for path, what in ((model, "model"), (output, "output")):
        if isinstance(path, (str, os.PathLike)) and (os.path.isdir(path) or os.fspath(path).endswith(os.sep)):
            raise IsADirectoryError(f"{os.fspath(path)}: {what}= is a folder: optimize takes one model "
                                    "(optimize_files takes many)")
    with _Workspace() as workspace:
        input_path, given_input = workspace.model(model)
        returns_bytes = isinstance(model, (bytes, bytearray, memoryview))
        if output is None and not returns_bytes:
            _import_onnx("a ModelProto result")  # before the work, not after it
        target = os.fspath(output) if output is not None else workspace.path("out.onnx", "<output>")
        report_path = workspace.path("report.json", "<report>")
        arguments = ["--output=" + target, "--report=" + report_path]
        arguments += _rule_arguments(workspace, rules, only, disable, builtin, verify, explain)
        for name, dims in (input_shapes or {}).items():
            arguments.append(f"--input-shape={name}=" + ",".join(str(int(d)) for d in dims))
        if infer_shapes:
            arguments.append("--infer-shapes")
        if freeze_initializer_inputs:
            arguments.append("--freeze-initializer-inputs")
        if fold_limit is not None:
            arguments += ["--fold-limit", str(int(fold_limit))]
        if verify_seed is not None:
            arguments += ["--verify-seed", str(int(verify_seed))]
        if allow_rewrite_cap:
            arguments.append("--allow-rewrite-cap")
        arguments += ["--", input_path]

        run = _run(arguments, workspace)
        report: Optional[Report] = None
        if os.path.exists(report_path):
            with open(report_path, encoding="utf-8") as file:
                raw = workspace.shown_json(json.load(file))
            # The output the command wrote: None when it wrote none, or when it went to the workspace.
            written = os.fspath(output) if output is not None and raw.get("output") is not None else None
            report = _report(raw, given_input, written, run.messages)
        if run.exit_code == 3 and given_input is None:
            run = run.with_hint(_IN_MEMORY_HINT)
        if run.exit_code != 0:
            raise run.error(report)
        if report is None:
            raise OnnxFuseError("onnx-fuse wrote no report", exit_code=run.exit_code, stderr=run.stderr)
        if output is not None:
            return Optimized(None, report)
        if returns_bytes:
            if os.path.exists(target + ".data"):
                raise UsageError("the result has external data, which bytes cannot hold: pass output=",
                                 exit_code=1)
            return Optimized(Path(target).read_bytes(), report)
        onnx = _import_onnx("a ModelProto result")
        return Optimized(onnx.load(target), report)


@dataclass(frozen=True)
class FileResult:
    """One model of :func:`optimize_files`."""

    #: The model's path, as given or as found in a folder.
    input: str
    #: Where it was written (None unless ``status`` is ``written``).
    output: Optional[str]
    #: ``written``, ``failed`` or ``skipped`` (``fail_fast`` after a failure).
    status: str
    #: Its exit code, as a run of it alone would end (0 when written).
    exit_code: int
    #: The one-line error when it failed (the first of ``errors``).
    error: Optional[str]
    #: What was done, as :func:`optimize` reports it (None when the model could not be read).
    report: Optional[Report]
    #: Every error line (one, or one per error of a rule file); empty when it succeeded.
    errors: List[str] = field(default_factory=list)

    def exception(self) -> Optional[OnnxFuseError]:
        """The exception a run of this model alone would raise (None when it was written)."""
        if self.status != "failed":
            return None
        errors = self.errors or ([self.error] if self.error else [])
        return error_for(self.exit_code, errors, "\n".join(errors), self.report)


@dataclass(frozen=True)
class FilesResult:
    """The result of :func:`optimize_files`: one entry per model, in input order, and totals."""

    models: List[FileResult]
    #: ``models``, ``written``, ``failed``, ``skipped``, ``nodes_before``, ``nodes_after``,
    #: ``bytes_before``, ``bytes_after``, ``seconds`` and ``exit_code`` (the largest of any model).
    total: Dict[str, Any]
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def failures(self) -> List[FileResult]:
        """The models that failed."""
        return [result for result in self.models if result.status == "failed"]

    def raise_for_failures(self) -> None:
        """Raises the exception of the failure with the largest exit code, if any model failed."""
        worst = max(self.failures, key=lambda result: result.exit_code, default=None)
        if worst is not None:
            error = worst.exception()
            assert error is not None
            raise error


def optimize_files(
    models: Union[PathLike, Iterable[PathLike]],
    output_dir: Optional[PathLike] = None,
    *,
    rules: Optional[RulesInput] = None,
    only: Optional[Union[str, Iterable[str]]] = None,
    disable: Optional[Union[str, Iterable[str]]] = None,
    builtin: bool = True,
    verify: Union[bool, str, Sequence[str]] = False,
    explain: bool = False,
    in_place: bool = False,
    jobs: Optional[int] = None,
    fail_fast: bool = False,
) -> FilesResult:
    """Optimizes many model files in one run of the command (its batch mode): ``jobs`` at once
    (default: the number of cores) in one process, each output the same bytes as
    :func:`optimize` of that model alone would write.

    Args:
        models: model files and folders (searched recursively for ``*.onnx``).
        output_dir: the folder to write to (a model found in a folder keeps its path relative
            to it); None writes each beside its input as ``MODEL.fused.onnx`` (or replaces it
            with ``in_place``).
        rules, only, disable, builtin, verify, explain: as for :func:`optimize`.
        jobs: how many models at once.
        fail_fast: start no model after the first failure (the rest are ``skipped``).

    Returns:
        a :class:`FilesResult`: a model that fails does not stop the others, and is not raised;
        ``result.raise_for_failures()`` raises the worst.

    Raises:
        UsageError: what concerns the whole run, found before any model is read: bad arguments,
            a rule file with errors, a model that does not exist, a model given twice, two
            models written to one output, an output over an input.
    """
    paths = [os.fspath(path) for path in ([models] if isinstance(models, (str, os.PathLike)) else models)]
    if not paths:
        raise ValueError("optimize_files: no models given")
    with _Workspace() as workspace:
        report_path = workspace.path("batch.json", "<report>")
        # --batch: one model file is a batch of one too (-o a folder, the report per model).
        arguments = ["--batch", "--report=" + report_path, "-q"]
        if output_dir is not None:
            arguments.append("--output=" + os.path.join(os.fspath(output_dir), ""))
        if in_place:
            arguments.append("--in-place")
        arguments += _rule_arguments(workspace, rules, only, disable, builtin, verify, explain)
        if jobs is not None:
            arguments += ["--jobs", str(int(jobs))]
        if fail_fast:
            arguments.append("--fail-fast")
        arguments += ["--", *paths]
        run = _run(arguments, workspace)
        if not os.path.exists(report_path):
            raise run.error()
        with open(report_path, encoding="utf-8") as file:
            raw = workspace.shown_json(json.load(file))
        results = []
        for entry in raw["models"]:
            report = _report(entry, entry["input"], entry.get("output"), []) if "nodes_before" in entry else None
            results.append(FileResult(input=entry["input"], output=entry.get("output"), status=entry["status"],
                                      exit_code=entry["exit_code"], error=entry.get("error"), report=report,
                                      errors=list(entry.get("errors", []))))
        return FilesResult(models=results, total=raw["total"], raw=raw)


def check_rules(
    rules: RulesInput,
    models: Iterable[ModelInput] = (),
    *,
    builtin: bool = True,
    strict: bool = False,
    seed: int = 1,
) -> RuleCheck:
    """Loads rule files or rule text and reports their errors; with ``models``, applies them
    (alone) to each model with every rewrite checked and the whole model compared.

    Args:
        rules: a path, a :class:`RuleText`, a ``str`` of rule text, or a sequence of those.
        models: models to check the rules on (ModelProto, bytes or paths).
        builtin: check for rules that may undo a built-in rule too (the warnings).
        strict: a rewrite or a whole model that cannot be checked is a failure too.
        seed: the seed of the verification's inputs.

    Returns:
        a :class:`RuleCheck`: per model and rule, candidates, fired, verified, worst error.

    Raises:
        UsageError: a rule file has errors (``errors`` lists them, ``file:line:column: ...``),
            or the rules stop at the rewrite cap on a model.
        VerificationError: a rule changed the numbers of a model; ``report`` is the
            :class:`RuleCheck`.
        InvalidModelError, ModelIOError, LimitExceededError: a model cannot be read.
    """
    with _Workspace() as workspace:
        paths = workspace.rules(rules)
        if not paths:
            raise ValueError("check_rules: no rules given")
        arguments = ["rules", "check"]
        for index, model in enumerate(models, start=1):
            path, _ = workspace.model(model, shown_as=f"<model {index}>")
            arguments.append("--model=" + path)
        report_path = workspace.path("check.json", "<report>")
        arguments += ["--report=" + report_path, "--verify-seed", str(int(seed))]
        if strict:
            arguments.append("--strict")
        if not builtin:
            arguments.append("--no-builtin")
        arguments += ["--", *paths]
        run = _run(arguments, workspace)
        check: Optional[RuleCheck] = None
        if os.path.exists(report_path):
            with open(report_path, encoding="utf-8") as file:
                check = _rule_check(workspace.shown_json(json.load(file)))
        if run.exit_code != 0:
            raise run.error(check)
        if check is None:
            raise OnnxFuseError("onnx-fuse wrote no report", exit_code=run.exit_code, stderr=run.stderr)
        return check


def _rule_check(raw: Dict[str, Any]) -> RuleCheck:
    def worst_error(row: Dict[str, Any]) -> Optional[float]:
        # A rule that did not fire has none; the command writes an unbounded error (inf) as null.
        if "worst_error" not in row:
            return None
        return float("inf") if row["worst_error"] is None else float(row["worst_error"])

    models = [
        ModelCheck(
            model=entry["model"],
            nodes_before=entry["nodes_before"],
            nodes_after=entry["nodes_after"],
            rules=[RuleCheckRow(
                rule=row["rule"], candidates=row["candidates"], fired=row["fired"], verified=row["verified"],
                not_verified=row["not_verified"],
                worst_error=worst_error(row),
                first_not_verified_reason=row.get("first_not_verified_reason"), alone=row["alone"])
                for row in entry["rules"]],
            failures=entry.get("failures", []),
            whole_model=entry.get("whole_model"),
            refusals=entry.get("refusals", []),
        )
        for entry in raw.get("models", [])
    ]
    return RuleCheck(files=raw["files"], rules=raw["rules"], warnings=raw.get("warnings", []), models=models,
                     refusals=raw.get("refusals", []), raw=raw)


def list_rules(rules: Optional[RulesInput] = None, builtin: bool = True) -> List[Rule]:
    """The rules a run would apply: the built-in ones (unless ``builtin=False``) and those of
    ``rules`` (paths or text), in order, with their file, summary, comment and text.

    Raises:
        UsageError: a rule file has errors.
    """
    with _Workspace() as workspace:
        arguments = ["rules", "list", "--json"]
        arguments += ["--rules=" + path for path in workspace.rules(rules)]
        if not builtin:
            arguments.append("--no-builtin")
        run = _run(arguments, workspace)
        if run.exit_code != 0:
            raise run.error()
        entries = workspace.shown_json(json.loads(run.stdout))
        return [Rule(name=entry["name"], file=entry["file"], summary=entry["summary"], comment=entry["comment"],
                     text=entry["text"]) for entry in entries]
