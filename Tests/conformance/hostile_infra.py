"""The machinery of the hostile battery (test_hostile.py): running onnx-fuse under a timeout
with its own peak memory, snapshots of a case's folder, the oracle process, the checks every
case goes through, and the parallel runner.

A case is a `Spec`: an id and a `setup(work, aux, rng)` that creates the case's files in `work`
(the binary's working directory, whose every file is compared before and after) and, when it
needs them, files outside it in `aux`; it returns an `Inv` saying how to run the binary and
what a success must leave behind. `check_case` runs it and returns the problems found, as
readable lines (an empty list: the case passed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import random
import re
import select
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIXTURES = REPO / "fixtures"
BUILTIN_RULES = REPO / "Sources" / "ONNXFuse" / "Rules"

SEED = 20250917
FULL = os.environ.get("ONNX_FUSE_HOSTILE_FULL", "") not in ("", "0")
TIMEOUT_S = float(os.environ.get("ONNX_FUSE_HOSTILE_TIMEOUT", "20"))
ORACLE_TIMEOUT_S = 60.0
ORACLE_MAX_BYTES = 1 << 20  # bigger inputs are only loaded, not checked or run
MEMORY_LIMIT_KB = 1 << 20  # 1 GiB, as ru_maxrss counts it (KiB on Linux)
MAX_LINE_CHARS = 5000  # the command keeps a line to about 4,000 characters
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
EXIT_CODES = frozenset({0, 1, 2, 3, 4})  # 5 is not used yet
ERROR_PREFIX = "onnx-fuse: error: "
OTHER_PREFIXES = ("onnx-fuse: warning: ", "onnx-fuse: explain: ")

# Comparison bounds per element type (as test_conformance.py).
TOLERANCES = {
    np.dtype(np.float32): (1e-4, 1e-5),
    np.dtype(np.float16): (1e-2, 1e-3),
    np.dtype(np.float64): (1e-9, 1e-12),
}


def case_rng(case_id: str) -> random.Random:
    """The seeded generator of one case: the same id always builds the same files."""
    return random.Random(SEED * 1_000_003 + zlib.crc32(case_id.encode()))


# ---------------------------------------------------------------------------
# Cases


@dataclasses.dataclass
class Inv:
    """How to run one case, and what a success must leave behind.

    argv          the arguments after the binary (str or bytes), run with `work` as cwd
    model         the input model (relative to work) that the output is compared with
    oracle_model  an absolute path to compare with instead (a pristine copy, for --in-place)
    output        the model a success writes (relative to work)
    report        the --report file a success writes (relative to work)
    stdout_model  the model goes to standard output (-o -)
    in_place      the input is replaced on success
    numeric       a success must compute what the input computes (onnxruntime, seeded feeds);
                  False for user rules, which may change what a model computes
    expect        the exit codes this case may end with (default: any documented one)
    allowed       more paths (relative to work) that a success may create, change or remove
    env           extra environment variables
    post          post(work, run) -> more problems, checked after the run
    """

    argv: list
    model: str | None = None
    oracle_model: str | None = None
    output: str | None = None
    report: str | None = None
    stdout_model: bool = False
    in_place: bool = False
    numeric: bool = True
    expect: frozenset | None = None
    allowed: tuple = ()
    env: dict | None = None
    post: Callable[[Path, "Run"], list] | None = None  # more checks after the run


@dataclasses.dataclass
class Spec:
    id: str
    setup: Callable[[Path, Path, random.Random], "Inv | None"]
    # a custom case (kills): run(work, aux, rng, ctx) -> problems; replaces the generic run
    run: Callable[..., list[str]] | None = None
    # a rough cost: the costliest cases start first, so that none is left running alone at the end
    cost: float = 1.0


# ---------------------------------------------------------------------------
# Running the binary


@dataclasses.dataclass
class Run:
    argv: list
    cwd: Path
    returncode: int | None  # the exit status, when it exited
    signal: int | None  # the signal that ended it
    timed_out: bool
    stdout: bytes
    stderr: bytes
    maxrss_kb: int
    seconds: float

    def describe(self) -> str:
        args = " ".join(shell_quote(a) for a in self.argv)
        status = (f"exit {self.returncode}" if self.returncode is not None
                  else f"signal {signal_name(self.signal)}") + (" (timed out)" if self.timed_out else "")
        err = self.stderr.decode("utf-8", "backslashreplace")
        if len(err) > 3000:
            err = err[:3000] + f"... ({len(err)} characters)"
        return (f"  command (cwd {self.cwd}): {args}\n  {status}, {self.seconds:.2f} s, peak {self.maxrss_kb // 1024} MiB\n"
                f"  stderr: {err.rstrip()!r}")


def shell_quote(arg) -> str:
    text = arg.decode("utf-8", "backslashreplace") if isinstance(arg, bytes) else str(arg)
    if len(text) > 120:
        text = text[:60] + f"...({len(text)} chars)..." + text[-40:]
    return text if re.fullmatch(r"[\w./=,:+-]+", text) else repr(text)


def signal_name(number: int | None) -> str:
    try:
        return signal.Signals(number).name
    except (ValueError, TypeError):
        return str(number)


def binary() -> str:
    value = os.environ.get("ONNX_FUSE")
    if not value:
        raise RuntimeError("ONNX_FUSE is not set: set it to the onnx-fuse binary (see Tests/conformance/README.md)")
    path = shutil.which(value) if os.sep not in value else value
    if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise RuntimeError(f"ONNX_FUSE={value!r} is not an executable file")
    return os.path.abspath(path)


class _Server:
    """A helper process speaking length-prefixed pickles on stdin/stdout (hostile_spawn.py,
    hostile_oracle.py); restarted when it dies or takes too long."""

    def __init__(self, script: str, timeout: float):
        self.script, self.timeout = script, timeout
        self.proc: subprocess.Popen | None = None

    def start(self):
        self.proc = subprocess.Popen([sys.executable, str(HERE / self.script)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)

    def close(self):
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait()
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass
            self.proc = None

    def _read(self, n: int, deadline: float) -> bytes:
        fd = self.proc.stdout.fileno()
        buf = bytearray()
        while len(buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.script} took too long")
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, min(n - len(buf), 1 << 20))
                if not chunk:
                    raise EOFError(f"{self.script} died")
                buf += chunk
        return bytes(buf)

    def ask(self, request, timeout: float | None = None) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.close()
            self.start()
        data = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            self.proc.stdin.write(struct.pack("<Q", len(data)) + data)
            self.proc.stdin.flush()
            (size,) = struct.unpack("<Q", self._read(8, deadline))
            return pickle.loads(self._read(size, deadline))
        except (OSError, EOFError, TimeoutError, pickle.UnpicklingError) as e:
            self.close()
            return {"crash": f"{type(e).__name__}: {e}"}


_local = threading.local()
_servers: list[_Server] = []
_servers_lock = threading.Lock()


def _server(kind: str, script: str, timeout: float) -> _Server:
    s = getattr(_local, kind, None)
    if s is None:
        s = _Server(script, timeout)
        setattr(_local, kind, s)
        with _servers_lock:
            _servers.append(s)
    return s


def close_servers():
    with _servers_lock:
        for s in _servers:
            s.close()
        _servers.clear()


def run_binary(argv: list, cwd: Path, *, timeout: float = TIMEOUT_S, env: dict | None = None,
               kill_after: float | None = None, kill_signal: int = signal.SIGKILL) -> Run:
    """Runs argv (argv[0] an absolute path) in its own session with cwd, through the launcher
    (hostile_spawn.py), which reports the command's own peak memory. kill_after sends
    kill_signal to it after that many seconds; past `timeout` its whole session is killed."""
    full_env = dict(os.environ)
    full_env.pop("ONNX_FUSE_TEST_FAULT", None)
    full_env.pop("ONNX_FUSE_TRACE", None)
    if env:
        full_env.update(env)
    with tempfile.NamedTemporaryFile(prefix="hostile-out-") as out, tempfile.NamedTemporaryFile(prefix="hostile-err-") as err:
        request = {"argv": list(argv), "cwd": str(cwd), "env": full_env, "timeout": timeout, "kill_after": kill_after,
                   "kill_signal": int(kill_signal), "stdout": out.name, "stderr": err.name}
        answer = _server("spawner", "hostile_spawn.py", timeout + 30).ask(request)
        if "crash" in answer or "error" in answer:
            raise RuntimeError(f"the launcher failed: {answer}")
        stdout, stderr = out.read(), err.read()
    code = os.waitstatus_to_exitcode(answer["status"])
    return Run(argv=list(argv), cwd=cwd, returncode=code if code >= 0 else None, signal=-code if code < 0 else None,
               timed_out=answer["timed_out"], stdout=stdout, stderr=stderr, maxrss_kb=answer["maxrss_kb"],
               seconds=answer["seconds"])


# ---------------------------------------------------------------------------
# Snapshots


def file_digest(path: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb", buffering=0) as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                return h.hexdigest()
            h.update(chunk)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under root (links not followed, FIFOs and devices never opened):
    relative path -> (kind, details..., inode)."""
    entries: dict[str, tuple] = {}

    def walk(folder: str, rel: str):
        with os.scandir(folder) as it:
            for e in it:
                path, r = os.path.join(folder, e.name), rel + e.name
                st = os.lstat(path)
                mode = st.st_mode
                if stat.S_ISREG(mode):
                    sparse = st.st_size > (256 << 20) and st.st_blocks * 512 < st.st_size // 8
                    digest = f"sparse:{st.st_size}:{st.st_blocks}" if sparse else file_digest(path)
                    entries[r] = ("file", stat.S_IMODE(mode), st.st_size, digest, st.st_ino)
                elif stat.S_ISLNK(mode):
                    entries[r] = ("link", os.readlink(path), st.st_ino)
                elif stat.S_ISDIR(mode):
                    entries[r] = ("dir", stat.S_IMODE(mode), st.st_ino)
                    walk(path, r + "/")
                elif stat.S_ISFIFO(mode):
                    entries[r] = ("fifo", stat.S_IMODE(mode), st.st_ino)
                else:
                    entries[r] = ("special", mode, st.st_rdev, st.st_ino)

    walk(str(root), "")
    return entries


def without_inode(entry: tuple) -> tuple:
    return entry[:-1]


TMP_NAME = re.compile(r"(^|/)\.[^/]*\.tmp-[^/]*$")


def leftovers(snap: dict[str, tuple]) -> list[str]:
    return sorted(p for p in snap if TMP_NAME.search(p))


def differences(before: dict, after: dict, *, inodes: bool) -> dict[str, str]:
    """path -> 'created' | 'removed' | 'changed'."""
    key = (lambda e: e) if inodes else without_inode
    diff = {}
    for p in before.keys() | after.keys():
        if p not in after:
            diff[p] = "removed"
        elif p not in before:
            diff[p] = "created"
        elif key(before[p]) != key(after[p]):
            diff[p] = "changed"
    return diff


# ---------------------------------------------------------------------------
# The oracle process (hostile_oracle.py): onnx checker and onnxruntime, isolated


def oracle_probe(path, seed: int, feeds=None, run: bool = True, full_check: bool = True) -> dict:
    """Asks this thread's oracle process about one model (see hostile_oracle.py)."""
    return _server("oracle", "hostile_oracle.py", ORACLE_TIMEOUT_S).ask(("probe", str(path), seed, feeds, run, full_check))


# ---------------------------------------------------------------------------
# Checks


CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def check_process(run: Run, expect: frozenset | None = None, *, lines_ok: bool = True) -> list[str]:
    """Exit status, peak memory and the shape of standard error."""
    problems = []
    if run.timed_out:
        problems.append(f"hang: still running after {TIMEOUT_S:.0f} s, killed")
    elif run.signal is not None:
        problems.append(f"crash: ended by signal {signal_name(run.signal)}")
    elif run.returncode not in EXIT_CODES:
        problems.append(f"undocumented exit code {run.returncode}")
    elif expect is not None and run.returncode not in expect:
        problems.append(f"exit {run.returncode}, expected {' or '.join(map(str, sorted(expect)))}")
    if run.maxrss_kb > MEMORY_LIMIT_KB:
        problems.append(f"peak memory {run.maxrss_kb // 1024} MiB, over 1 GiB")
    try:
        text = run.stderr.decode("utf-8")
    except UnicodeDecodeError as e:
        problems.append(f"standard error is not UTF-8 ({e})")
        text = run.stderr.decode("utf-8", "replace")
    bad = CONTROL.search(text)
    if bad:
        problems.append(f"raw control character {bad.group()!r} on standard error at {bad.start()}")
    if text and not text.endswith("\n"):
        problems.append("standard error does not end with a newline")
    lines = text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")
    for line in lines:
        if len(line) > MAX_LINE_CHARS:
            problems.append(f"a {len(line)}-character line on standard error")
            break
    if run.returncode not in (None, 0) and not run.timed_out:
        errors = [l for l in lines if l.startswith(ERROR_PREFIX)]
        if not errors:
            problems.append("failed without an 'onnx-fuse: error:' line")
        if lines_ok:
            for l in lines:
                if not l.startswith(ERROR_PREFIX) and not l.startswith(OTHER_PREFIXES):
                    problems.append(f"a failure's standard error has a line that is not an error: {l[:200]!r}")
                    break
        for l in errors:
            if len(l) <= len(ERROR_PREFIX) + 3:
                problems.append(f"an empty error message: {l!r}")
    return problems


def norm(rel: str) -> str:
    return os.path.normpath(rel)


def data_file_pattern(model_rel: str) -> re.Pattern:
    """The data files named after a model: M.data and M.data.<k> (README), and M.<k>.data (the
    name an earlier version gave them)."""
    return re.compile(re.escape(norm(model_rel)) + r"(\.\d+)?\.data(\.\d+)?$")


def resolved_rel(work: Path, rel: str) -> str:
    """rel with its folder resolved (a link to a folder inside work counts as that folder)."""
    full = os.path.join(work, rel)
    folder = os.path.realpath(os.path.dirname(full))
    return os.path.relpath(os.path.join(folder, os.path.basename(full)), os.path.realpath(work))


def check_files(work: Path, before: dict, after: dict, run: Run, inv: Inv) -> list[str]:
    problems = []
    left = leftovers(after)
    if left:
        problems.append(f"temporary files left behind: {left[:5]}")
    if run.returncode != 0:
        diff = differences(before, after, inodes=True)
        diff = {p: d for p, d in diff.items() if p not in left}
        if diff:
            problems.append(f"a failed run changed files: {dict(sorted(diff.items())[:8])}")
        return problems
    allowed_exact = set()
    patterns = []
    for rel in (inv.output, inv.report, *inv.allowed):
        if rel:
            for r in {norm(rel), resolved_rel(work, rel)}:
                allowed_exact.add(r)
    for rel in (inv.output,) + ((inv.model,) if inv.in_place else ()):
        if rel:
            for r in {norm(rel), resolved_rel(work, rel)}:
                patterns.append(data_file_pattern(r))
    diff = differences(before, after, inodes=False)
    unexpected = {p: d for p, d in diff.items()
                  if p not in allowed_exact and not any(pt.fullmatch(p) for pt in patterns) and p not in left}
    if unexpected:
        problems.append(f"a successful run changed files it should not have: {dict(sorted(unexpected.items())[:8])}")
    if inv.output:
        full = work / inv.output
        if not (full.is_file() and not full.is_symlink()):
            problems.append(f"exit 0 but the output {inv.output} is not a regular file")
    if inv.report:
        full = work / inv.report
        if not (full.is_file() and not full.is_symlink()):
            problems.append(f"exit 0 but the report {inv.report} is not a regular file")
    return problems


def _same(where: str, expected, actual) -> str | None:
    if isinstance(expected, (list, tuple)):
        if not isinstance(actual, (list, tuple)) or len(actual) != len(expected):
            return f"{where}: a sequence of {len(expected)} became {type(actual).__name__}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            r = _same(f"{where}[{i}]", e, a)
            if r:
                return r
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or sorted(expected) != sorted(actual):
            return f"{where}: map keys differ"
        for k in expected:
            r = _same(f"{where}[{k!r}]", expected[k], actual[k])
            if r:
                return r
        return None
    if expected is None or actual is None:
        return None if expected is None and actual is None else f"{where}: optional presence differs"
    e, a = np.asarray(expected), np.asarray(actual)
    if e.shape != a.shape:
        return f"{where}: shape {a.shape}, the input gives {e.shape}"
    if e.dtype != a.dtype:
        return f"{where}: dtype {a.dtype}, the input gives {e.dtype}"
    if e.dtype in TOLERANCES:
        rtol, atol = TOLERANCES[e.dtype]
        e64, a64 = e.astype(np.float64), a.astype(np.float64)
        close = np.isclose(a64, e64, rtol=rtol, atol=atol, equal_nan=True)
        # Folding reorders arithmetic, so a value at the edge of the type's range may overflow on
        # one side only: an infinity against a finite value of the same sign past half the
        # largest finite value counts as equal.
        edge = np.finfo(e.dtype).max / 2
        close |= np.isinf(e64) & np.isfinite(a64) & (np.sign(e64) == np.sign(a64)) & (np.abs(a64) >= edge)
        close |= np.isinf(a64) & np.isfinite(e64) & (np.sign(e64) == np.sign(a64)) & (np.abs(e64) >= edge)
        if not close.all():
            i = tuple(int(x) for x in np.argwhere(~close)[0])
            return f"{where}: {int((~close).sum())} of {e.size} elements differ; at {i}: input {e[i]!r}, output {a[i]!r}"
        return None
    if e.dtype == object:
        return None if e.tolist() == a.tolist() else f"{where}: strings differ"
    if not np.array_equal(e, a):
        i = tuple(int(x) for x in np.argwhere(e != a)[0])
        return f"{where}: {int((e != a).sum())} of {e.size} elements differ; at {i}: input {e[i]!r}, output {a[i]!r}"
    return None


def _deterministic(first, second) -> bool:
    return isinstance(first, dict) and isinstance(second, dict) and all(
        _same("", first[k], second.get(k)) is None for k in first)


def check_output_model(input_path: Path | None, output_path: Path, seed: int, numeric: bool) -> list[str]:
    """The output loads; it passes the checker when the input does; where onnxruntime runs the
    input, the output gives the same results (numeric cases)."""
    problems = []
    if input_path is not None and input_path.is_file() and input_path.stat().st_size > ORACLE_MAX_BYTES:
        # onnx's checker and onnxruntime take seconds on such models: only load the output
        pout = oracle_probe(output_path, seed, None, run=False, full_check=False)
        return [f"exit 0 but the output does not load: {pout['load']}"] if pout.get("load") else []
    pin = oracle_probe(input_path, seed, None, run=numeric) if input_path is not None else {"crash": "no input"}
    if "crash" in pin:
        pin = {}
    feeds = pin.get("feeds") if isinstance(pin.get("feeds"), dict) else None
    run_out = numeric and feeds is not None and isinstance(pin.get("run"), dict)
    pout = oracle_probe(output_path, seed, feeds, run=run_out)
    if "crash" in pout:
        if pin:
            return [f"the oracle (onnx/onnxruntime) crashed or hung on the output, not on the input: {pout['crash']}"]
        return []
    if pout["load"]:
        return [f"exit 0 but the output does not load: {pout['load']}"]
    if pin and not pin.get("load"):
        # A user's rule may change shapes, which only full_check (shape inference) sees; the
        # command promises schema-valid nodes and the graph outputs' element types and ranks.
        if numeric and pin.get("check") is None and pout.get("check"):
            problems.append(f"the input passes onnx.checker (full_check) but the output does not: {pout['check']}")
        elif pin.get("check_basic") is None and pout.get("check_basic"):
            problems.append(f"the input passes onnx.checker but the output does not: {pout['check_basic']}")
        in_names = [n for n, _ in pin.get("outputs") or []]
        out_names = [n for n, _ in pout.get("outputs") or []]
        if in_names != out_names:
            problems.append(f"graph outputs {out_names[:6]} differ from the input's {in_names[:6]}")
    if run_out and _deterministic(pin["run"], pin.get("run2")):
        if not isinstance(pout.get("run"), dict):
            problems.append(f"onnxruntime runs the input but not the output: {pout.get('run')}")
        else:
            for name, value in pin["run"].items():
                if name not in pout["run"]:
                    problems.append(f"wrong result: output {name!r} is missing")
                    break
                r = _same(f"output {name!r}", value, pout["run"][name])
                if r:
                    problems.append("wrong result with exit 0: " + r)
                    break
    return problems


# ---------------------------------------------------------------------------
# One case


def case_dirs(base: Path, case_id: str) -> tuple[Path, Path]:
    safe = re.sub(r"[^\w.-]+", "_", case_id)[:100] + f"-{zlib.crc32(case_id.encode()):08x}"
    work, aux = base / safe, base / (safe + ".aux")
    for d in (work, aux):
        if d.exists():
            shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    return work, aux


def check_case(spec: Spec, base: Path, ctx: dict) -> list[str]:
    """Runs one case; returns its problems (each a line), with the command when there are any."""
    start = time.monotonic()
    try:
        return _check_case(spec, base, ctx)
    finally:
        ctx.setdefault("durations", {})[spec.id] = time.monotonic() - start


def _check_case(spec: Spec, base: Path, ctx: dict) -> list[str]:
    work, aux = case_dirs(base, spec.id)
    rng = case_rng(spec.id)
    try:
        if spec.run is not None:
            problems = spec.run(work, aux, rng, ctx)
        else:
            inv = spec.setup(work, aux, rng)
            if inv is None:
                return ["skip"]
            problems = run_generic(work, aux, inv, rng, ctx)
    except Exception as e:  # noqa: BLE001 - a broken generator is a failure of the battery itself
        import traceback

        return [f"the battery itself failed: {type(e).__name__}: {e}\n{traceback.format_exc()}"]
    if not problems or problems == ["skip"]:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(aux, ignore_errors=True)
    return problems


def run_generic(work: Path, aux: Path, inv: Inv, rng: random.Random, ctx: dict) -> list[str]:
    before = snapshot(work)
    run = run_binary([ctx["binary"], *inv.argv], work, env=inv.env)
    problems = check_process(run, inv.expect)
    after = snapshot(work)
    problems += check_files(work, before, after, run, inv)
    if inv.post is not None:
        problems += inv.post(work, run)
    if run.returncode == 0 and (inv.output or inv.stdout_model) and not problems:
        if inv.stdout_model:
            out_path = aux / "stdout.onnx"
            out_path.write_bytes(run.stdout)
        else:
            out_path = work / inv.output
            try:
                str(out_path).encode()
            except UnicodeEncodeError:  # onnx and onnxruntime take only UTF-8 paths
                shutil.copyfile(out_path, aux / "output.onnx")
                out_path = aux / "output.onnx"
        in_path = Path(inv.oracle_model) if inv.oracle_model else (work / inv.model if inv.model else None)
        problems += check_output_model(in_path, out_path, rng.randrange(1 << 30), inv.numeric)
    if problems:
        problems.append(run.describe())
    return problems


# ---------------------------------------------------------------------------
# The runner


def run_all(specs: list[Spec], base: Path, jobs: int, ctx: dict) -> dict[str, list[str]]:
    from concurrent.futures import ThreadPoolExecutor

    results: dict[str, list[str]] = {}
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            ordered = sorted(specs, key=lambda s: -s.cost)
            futures = {pool.submit(check_case, s, base, ctx): s.id for s in ordered}
            for f, case_id in futures.items():
                results[case_id] = f.result()
    finally:
        close_servers()
    return results


def default_jobs() -> int:
    value = os.environ.get("ONNX_FUSE_HOSTILE_JOBS")
    if value:
        return max(1, int(value))
    cpus = os.cpu_count() or 2
    return min(2 * cpus, cpus + 4)

