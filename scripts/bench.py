"""The benchmark of record (issue 12): onnx-fuse against the other ONNX optimizers, whole processes,
on generated models. Run it through `scripts/bench`, which builds the release binary and finds the
venvs; `scripts/bench --help` lists the options.

What it does, per model: generates it (scripts/benchlib/gen_resnet.py, gen_vgg.py, gen_chain.py), then runs
every tool on it as a whole process under GNU time (`/usr/bin/time -f "%M"`: peak resident set
size), timed by this script's clock (wall seconds, to the microsecond), interleaved: each round
runs every tool once, the order rotating by one tool per round, after warm-up rounds that are
not counted. Each run writes a fresh output (the previous one removed first), its input is read
once just before it and the file system is synced after it, outside the measured time, so that
every run starts with its input in the page cache and one tool's write-back does not land in the
next one's. The first output of every tool is checked in onnxruntime against the original model
(scripts/benchlib/ortcheck.py) and its nodes counted. A tool that fails, or outruns the timeout,
is not run again on that model.

The tools: onnx-fuse (`onnx-fuse MODEL -q -o OUT`, the built-in rules); for the load-and-save
comparison `onnx-fuse MODEL --no-builtin -q -o OUT` and Python's `onnx.save(onnx.load(MODEL),
OUT)`; and the peers, each its library's default entry point in a Python process of its own
(scripts/benchlib/peer_cli.py): onnxruntime's offline optimizer (ORT_ENABLE_BASIC), onnxsim,
onnxslim, onnxoptimizer, onnxscript. Peers run in the bench venv (.venv-bench, made by
`scripts/bench --install-peers`) and, where it lacks one, in the project venv; a peer found in
neither is skipped, and the table says so.

The report is Markdown: the machine, the commands, one table per model (median, min-max, peak
RSS, ratios to onnx-fuse, nodes after, check), the load-and-save table and the scaling table. It
goes to standard output, or with --write into BENCHMARKS.md between the markers
`<!-- bench:begin -->` and `<!-- bench:end -->` (a section "Benchmark of record (issue 12)" with
them is appended when they are missing).

Exit status: 0 when every run of onnx-fuse succeeded and every checked output matched; 1 when an
output failed its check or onnx-fuse failed or timed out (the report is still written, the cells
marked); 2 for a usage or set-up error.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "scripts" / "benchlib"
sys.path.insert(0, str(LIB))

import onnx  # noqa: E402
import ortcheck  # noqa: E402

GNU_TIME = "/usr/bin/time"
LOADS: list[float] = []  # the 1-minute load average after each run
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
SECTION = "## Benchmark of record (issue 12)"

# Peers, in the order of the tables: name -> (module to import, package whose version is shown).
PEERS = {
    "ort": ("onnxruntime", "onnxruntime"),
    "onnxsim": ("onnxsim", "onnxsim"),
    "onnxslim": ("onnxslim", "onnxslim"),
    "onnxoptimizer": ("onnxoptimizer", "onnxoptimizer"),
    "onnxscript": ("onnxscript.optimizer", "onnxscript"),
}
PEER_LABEL = {"ort": "onnxruntime (offline, basic)", "onnxsim": "onnxsim", "onnxslim": "onnxslim",
              "onnxoptimizer": "onnxoptimizer", "onnxscript": "onnxscript"}

DEFAULT_MODELS = "resnet50,vgg16bn,vgg16bn-w2.15-external,chain60k,chain600k,roundtrip-resnet50,roundtrip-chain60k,scaling-chain6k"
QUICK_MODELS = "resnet50-w0.25,chain600,roundtrip-chain600,scaling-chain60"

# ---------------------------------------------------------------------------------------------
# Models


@dataclass
class Model:
    name: str
    label: str
    generator: list[str] | None = None  # arguments of `python`, OUT standing for the model's path
    source: Path | None = None  # an external model
    path: Path | None = None
    nodes: int = 0
    size: int = 0  # bytes, model file and external data
    optimize: bool = False  # onnx-fuse and the peers
    fuse_only: bool = False  # onnx-fuse alone (a scaling row)
    roundtrip: bool = False  # onnx-fuse --no-builtin and python load + save


def generated_shape(name: str, shape: str, generator: str, width: str | None, flags: list[tuple[str, str]]) -> Model:
    """A CNN shape made by `generator` (in scripts/benchlib), at `width` (None: as built), with the
    generator's `flags` (each with what it adds to the label)."""
    options, label = [], f"{shape} shape"
    if width is not None:
        if not float(width) > 0:
            raise ValueError(f"{name}: the width must be positive")
        options += ["--width", width]
        label += f" at width {width}"
    for flag, text in flags:
        options.append(flag)
        label += f", {text}"
    return Model(name, f"{label} (`{' '.join([generator] + options)}`)", generator=[str(LIB / generator), "OUT"] + options)


def parse_model(name: str) -> Model:
    m = re.fullmatch(r"resnet50(?:-w([0-9]*\.?[0-9]+))?", name)
    if m:
        return generated_shape(name, "ResNet-50", "gen_resnet.py", m.group(1), [])
    m = re.fullmatch(r"vgg16bn(?:-w([0-9]*\.?[0-9]+))?(-external)?", name)
    if m:
        external = [("--external", "weights as external data")] if m.group(2) else []
        return generated_shape(name, "VGG-16-BN", "gen_vgg.py", m.group(1), external)
    m = re.fullmatch(r"chain([0-9]+)(k?)", name)
    if m:
        nodes = int(m.group(1)) * (1000 if m.group(2) else 1)
        if nodes == 0 or nodes % 3:
            raise ValueError(f"{name}: a chain has a multiple of 3 nodes (3 per block)")
        blocks = nodes // 3
        return Model(name, f"Conv/BN/Relu chain (`gen_chain.py {blocks} 8`)",
                     generator=[str(LIB / "gen_chain.py"), str(blocks), "8", "OUT"])
    raise ValueError(f"unknown model {name!r} (resnet50, resnet50-wW, vgg16bn, vgg16bn-wW, vgg16bn[-wW]-external, chainN, chainNk with N a multiple of 3, "
                     "roundtrip-MODEL, scaling-chainN, roundtrip, scaling)")


def chain_name(nodes: int) -> str:
    return f"chain{nodes // 1000}k" if nodes % 1000 == 0 else f"chain{nodes}"


def plan(selectors: list[str], externals: list[Path]) -> tuple[dict[str, Model], list[str]]:
    """The models to run, by name, and the names of the scaling rows (1x, 10x, 100x)."""
    models: dict[str, Model] = {}
    scaling: list[str] = []

    def get(name: str) -> Model:
        if name not in models:
            models[name] = parse_model(name)
        return models[name]

    for selector in selectors:
        if selector == "roundtrip":
            selector_list = ["roundtrip-resnet50", "roundtrip-chain60k"]
        elif selector == "scaling":
            selector_list = ["scaling-chain6k"]
        else:
            selector_list = [selector]
        for s in selector_list:
            if s.startswith("roundtrip-"):
                get(s[len("roundtrip-"):]).roundtrip = True
            elif s.startswith("scaling-"):
                base = parse_model(s[len("scaling-"):])
                if base.name.startswith("resnet"):
                    raise ValueError(f"{s}: scaling runs on a chain")
                nodes = int(base.generator[1]) * 3
                if scaling:
                    raise ValueError("one scaling table at a time")
                for factor in (1, 10, 100):
                    name = chain_name(nodes * factor)
                    get(name).fuse_only = True
                    scaling.append(name)
            else:
                get(s).optimize = True
    for path in externals:
        if not path.is_file():
            raise ValueError(f"--model {path}: no such file")
        name = path.name
        while name in models:
            name += "'"
        models[name] = Model(name, f"`{path.name}` (given with --model)", source=path.resolve(), optimize=True)
    return models, scaling


def model_size(path: Path) -> int:
    """The model file and the external data files it names."""
    size = path.stat().st_size
    header = onnx.load(str(path), load_external_data=False)
    files = set()
    for tensor in header.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                files.add(entry.value)
    return size + sum((path.parent / f).stat().st_size for f in files if (path.parent / f).is_file())


def count_nodes(path: Path) -> int:
    return len(onnx.load(str(path), load_external_data=False).graph.node)


# ---------------------------------------------------------------------------------------------
# Tools


@dataclass
class Tool:
    key: str
    label: str
    argv: list[str]  # MODEL and OUT stand for the paths
    example: str  # the command line shown in the report
    skipped: str | None = None  # why it does not run

    def command(self, model: Path, out: Path) -> list[str]:
        return [str(model) if a == "MODEL" else str(out) if a == "OUT" else a for a in self.argv]


@dataclass
class Cell:
    """One tool on one model."""
    tool: Tool
    warmup: list[tuple[float, int]] = field(default_factory=list)
    runs: list[tuple[float, int]] = field(default_factory=list)  # (seconds, peak RSS KiB)
    failure: str | None = None  # "timeout after 300 s", "exit 2: ..."
    checked: bool = False
    check_ok: bool | None = None
    check: str = ""  # what the check found
    nodes_after: int | None = None
    out_size: int | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(t for t, _ in self.runs) if self.runs else None

    @property
    def rss(self) -> float | None:
        return statistics.median(m for _, m in self.runs) if self.runs else None


def shown_path(path: Path) -> str:
    """A path as the report shows it: relative to the repository, else its name alone (so that no
    path of the measuring machine ends up in BENCHMARKS.md)."""
    try:
        return str(Path(os.path.abspath(path)).relative_to(ROOT))
    except ValueError:
        return path.name


def probe_python(python: Path) -> dict[str, str | None]:
    """Which peer modules `python` can import, with the versions of their packages."""
    script = (
        "import importlib, importlib.metadata as md, json, sys\n"
        "out = {}\n"
        "for name, (module, package) in json.loads(sys.argv[1]).items():\n"
        "    try:\n"
        "        importlib.import_module(module)\n"
        "        out[name] = md.version(package)\n"
        "    except Exception:\n"
        "        out[name] = None\n"
        "for package in ('onnx', 'numpy'):\n"
        "    try: out[package] = md.version(package)\n"
        "    except Exception: out[package] = None\n"
        "out['python'] = sys.version.split()[0]\n"
        "print(json.dumps(out))\n")
    result = subprocess.run([str(python), "-c", script, json.dumps(PEERS)], capture_output=True, text=True,
                            timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"{python}: {result.stderr.strip().splitlines()[-1:] or result.returncode}")
    return json.loads(result.stdout)


# ---------------------------------------------------------------------------------------------
# Measuring

def measure(argv: list[str], timeout: float, scratch: Path, cwd: Path) -> tuple[float, int] | str:
    """Runs argv in `cwd` under GNU time: (wall seconds, peak RSS KiB), or why it failed. The wall
    time is this script's clock around the run (microseconds; GNU time's own `%e` has 10 ms steps,
    which moved the ratios of 70 ms runs by 15 %), GNU time's start included, the same for every
    tool; the peak RSS is GNU time's `%M` (the kernel's figure for the tool alone: measured from
    here, it would count the Python process the tool is forked from)."""
    times, errors = scratch / "time.txt", scratch / "stderr.txt"
    times.unlink(missing_ok=True)
    with open(errors, "wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen([GNU_TIME, "-o", str(times), "-f", "%M", *argv], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=err, cwd=cwd, start_new_session=True)
        # A blocking wait returns at the exit; `wait(timeout=)` polls, with sleeps of up to 50 ms
        # that would count as the run's time. A timer kills a run that outlasts the timeout.
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            kill_group(process.pid)

        timer = threading.Timer(timeout, expire)
        timer.start()
        try:
            code = process.wait()
        except BaseException:  # interrupted: the run goes with us
            timer.cancel()
            kill(process)
            raise
        elapsed = time.perf_counter() - started
        timer.cancel()
    if expired.is_set():
        return f"timeout after {timeout:g} s"
    if code != 0:
        lines = [x for x in errors.read_text(errors="replace").splitlines() if x.strip()]
        return f"exit {code}" + (f": {lines[-1].strip()[:160]}" if lines else "")
    return elapsed, int(times.read_text().split()[-1])


def kill_group(pid: int) -> None:
    """Kills a run's whole process group (GNU time, the tool and anything it started)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def kill(process: subprocess.Popen) -> None:
    """Ends a run: its process group killed, GNU time reaped."""
    kill_group(process.pid)
    process.wait()


def read_through(model: Path) -> None:
    """Reads the model file (and a generated model's external data, `MODEL.data`) once, outside
    the measured time, before every run of every tool, so that each run starts with its input in
    the page cache: files left alone for a while do not stay there on every machine (this one's
    kernel pages out file pages idle for about a minute), and a run would then read its input
    back itself. (The page cache's folios are kept as they are: an input written in small
    pieces, or paged out and read back through faults, still costs more faults to map; see
    BENCHMARKS.md, tenth session.)"""
    for path in (model, model.with_name(model.name + ".data")):
        try:
            with open(path, "rb", buffering=0) as f:
                while f.read(8 << 20):
                    pass
        except FileNotFoundError:
            continue


def clear(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def check_output(model: Model, cell: Cell, out: Path, reference: dict) -> None:
    """Counts the output's nodes and compares it with the original in onnxruntime. `reference`
    keeps the original's inputs and outputs between the tools (or why it could not be run)."""
    cell.checked = True
    try:
        cell.nodes_after, cell.out_size = count_nodes(out), model_size(out)
    except Exception as e:  # noqa: BLE001 - not a model onnx can read
        cell.check_ok, cell.check = False, f"FAILED: onnx cannot read the output: {first_line(e)}"
        return
    if out.read_bytes() == model.path.read_bytes():
        cell.check_ok, cell.check = True, "identical bytes"
        return
    if not reference:
        try:
            feed = ortcheck.random_feed(model.path)
            reference.update(feed=feed, outputs=ortcheck.run(model.path, feed), names=ortcheck.output_names(model.path))
        except Exception as e:  # noqa: BLE001 - onnxruntime cannot run the original: nothing to compare with
            reference["unusable"] = f"not checked: onnxruntime cannot run the original: {first_line(e)}"
    if "unusable" in reference:
        cell.check_ok, cell.check = None, reference["unusable"]
        return
    try:
        verdict = ortcheck.compare(reference["outputs"], ortcheck.run(out, reference["feed"]), reference["names"])
    except ortcheck.Unsupported as e:
        cell.check_ok, cell.check = False, f"FAILED: {e}"
        return
    except Exception as e:  # noqa: BLE001 - onnxruntime refusing the output is a failed check
        cell.check_ok, cell.check = False, f"FAILED: onnxruntime: {first_line(e)}"
        return
    cell.check_ok = verdict.ok
    cell.check = f"ok ({verdict.error:.1e})" if verdict.ok else f"FAILED: {verdict.message}"


def first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return (lines[0] if lines else type(e).__name__)[:160]


def run_model(model: Model, tools: list[Tool], args, work: Path) -> dict[str, Cell]:
    cells = {t.key: Cell(t) for t in tools}
    active = [t for t in tools if t.skipped is None]
    reference: dict = {}
    rounds = args.warmup + args.runs
    for r in range(rounds):
        shift = r % len(active) if active else 0
        for tool in active[shift:] + active[:shift]:
            cell = cells[tool.key]
            if cell.failure:
                continue
            folder = work / "out" / tool.key.replace(" ", "_")
            clear(folder)
            out = folder / "out.onnx"
            read_through(model.path)
            result = measure(tool.command(model.path, out), args.timeout, work, folder)
            LOADS.append(os.getloadavg()[0])
            os.sync()
            phase = "warm-up" if r < args.warmup else f"run {r - args.warmup + 1}/{args.runs}"
            if isinstance(result, str):
                cell.failure = result
                log(f"{model.name}: {tool.label}: {phase}: {result}")
                continue
            (cell.warmup if r < args.warmup else cell.runs).append(result)
            log(f"{model.name}: {tool.label}: {phase}: {result[0]:.3f} s, {result[1] / 1024:.0f} MiB")
            if not cell.checked:
                if not out.is_file():
                    cell.checked, cell.check_ok, cell.check = True, False, "FAILED: no output written"
                    continue
                started = time.monotonic()
                check_output(model, cell, out, reference)
                log(f"{model.name}: {tool.label}: {cell.nodes_after} nodes, check {cell.check} "
                    f"({time.monotonic() - started:.0f} s)")
    shutil.rmtree(work / "out", ignore_errors=True)
    return cells


# ---------------------------------------------------------------------------------------------
# Report


def seconds(t: float | None) -> str:
    if t is None:
        return "—"
    # Three significant digits: the clock is finer than the runs vary.
    return f"{t:.3f} s" if t < 1 else f"{t:.2f} s" if t < 10 else f"{t:.1f} s" if t < 100 else f"{t:.0f} s"


def mib(kib: float | None) -> str:
    return "—" if kib is None else f"{kib / 1024:,.0f} MiB" if kib >= 10 * 1024 else f"{kib / 1024:.1f} MiB"


def ratio(x: float | None, y: float | None) -> str:
    if x is None or y is None or y == 0:
        return "—"
    r = x / y
    return f"{r:.2f}×" if r < 10 else f"{r:.1f}×" if r < 100 else f"{r:,.0f}×"


def spread(cell: Cell) -> str:
    if not cell.runs:
        return "—"
    times = [t for t, _ in cell.runs]
    return f"{seconds(min(times))} – {seconds(max(times))}" if len(times) > 1 else "—"


def status(cell: Cell) -> str | None:
    """What stands in the time column when there is no median."""
    if cell.tool.skipped:
        return cell.tool.skipped
    if cell.failure and not cell.runs:
        return cell.failure
    return None


def check_cell(cell: Cell) -> str:
    text = cell.check or "—"
    return f"**{text}**" if cell.check_ok is False else text


def nodes_cell(cell: Cell) -> str:
    return "—" if cell.nodes_after is None else f"{cell.nodes_after:,}"


def size_text(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.0f} kB"


def optimize_table(model: Model, cells: dict[str, Cell]) -> list[str]:
    fuse = cells["onnx-fuse"]
    lines = [f"**{model.label}**: {model.nodes:,} nodes, {size_text(model.size)}.", "",
             "| tool | median | min – max | peak RSS | time ÷ onnx-fuse | memory ÷ onnx-fuse | nodes after | check |",
             "|---|---|---|---|---|---|---|---|"]
    for key, cell in cells.items():
        if key not in ("onnx-fuse",) and key not in PEERS:
            continue
        note = status(cell)
        if note:
            lines.append(f"| {cell.tool.label} | {note} | | | | | {nodes_cell(cell)} | {check_cell(cell) if cell.checked else ''} |")
            continue
        median = seconds(cell.median) + (f" ({cell.failure} after {len(cell.runs)} runs)" if cell.failure else "")
        same = key == "onnx-fuse"
        lines.append(f"| {cell.tool.label} | {median} | {spread(cell)} | {mib(cell.rss)} | "
                     f"{'1×' if same else ratio(cell.median, fuse.median)} | {'1×' if same else ratio(cell.rss, fuse.rss)} | "
                     f"{nodes_cell(cell)} | {check_cell(cell)} |")
    return lines


def roundtrip_table(models: dict[str, Model], results: dict[str, dict[str, Cell]]) -> list[str]:
    lines = ["| model | file | nodes | onnx-fuse `--no-builtin` | peak RSS | Python `onnx.load` + `onnx.save` | peak RSS | "
             "time ÷ onnx-fuse | memory ÷ onnx-fuse | check (onnx-fuse / Python) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for model in models.values():
        if not model.roundtrip:
            continue
        ours, theirs = results[model.name]["onnx-fuse --no-builtin"], results[model.name]["onnx"]

        def time_cell(cell: Cell) -> str:
            return status(cell) or seconds(cell.median) + (f" ({spread(cell)})" if len(cell.runs) > 1 else "")

        lines.append(f"| {model.label} | {size_text(model.size)} | {model.nodes:,} | {time_cell(ours)} | {mib(ours.rss)} | "
                     f"{time_cell(theirs)} | {mib(theirs.rss)} | {ratio(theirs.median, ours.median)} | "
                     f"{ratio(theirs.rss, ours.rss)} | {check_cell(ours)} / {check_cell(theirs)} |")
    return lines


def scaling_table(models: dict[str, Model], results: dict[str, dict[str, Cell]], scaling: list[str]) -> list[str]:
    lines = ["| size | model | nodes | median | min – max | µs per node | µs per added node | peak RSS | check |",
             "|---|---|---|---|---|---|---|---|---|"]
    previous = None
    for factor, name in zip(("1×", "10×", "100×"), scaling):
        model, cell = models[name], results[name]["onnx-fuse"]
        per_node = added = "—"
        if cell.median is not None:
            per_node = f"{cell.median / model.nodes * 1e6:.1f}"
            if previous is not None and previous[1] is not None:
                added = f"{(cell.median - previous[1]) / (model.nodes - previous[0]) * 1e6:.1f}"
        previous = (model.nodes, cell.median)
        lines.append(f"| {factor} | {model.label} | {model.nodes:,} | {status(cell) or seconds(cell.median)} | {spread(cell)} | "
                     f"{per_node} | {added} | {mib(cell.rss)} | {check_cell(cell)} |")
    return lines


def machine() -> list[str]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    system = platform.system()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                system = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    swift = "not found"
    if shutil.which("swift"):
        out = subprocess.run(["swift", "--version"], capture_output=True, text=True)
        swift = next((x.strip() for x in (out.stdout + out.stderr).splitlines() if "Swift version" in x), swift)
    return [f"CPU: {cpu}, {os.cpu_count()} logical cores ({len(os.sched_getaffinity(0))} usable); "
            f"memory {memory}; {system}, Linux {platform.release()}; {swift}"]


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        sources = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h", "--", "Sources", "Package.swift"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "Sources", "Package.swift"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return (f"`{head}`" + (f", sources as of `{sources}`" if sources and sources != head else "")
                + (" with uncommitted changes to Sources" if dirty else ""))
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def invocation(args) -> str:
    """The bench command as given, with its paths reduced to names."""
    parts = ["scripts/bench"]
    if args.quick:
        parts.append("--quick")
    for option, default in (("runs", args.default_runs), ("warmup", args.default_warmup), ("timeout", 300.0),
                            ("peer_max_nodes", 100_000), ("peer_max_mb", 1_000)):
        value = getattr(args, option)
        if value != default:
            parts += [f"--{option.replace('_', '-')}", f"{value:g}" if isinstance(value, float) else str(value)]
    if args.models_given:
        parts += ["--models", args.models]
    if args.peers is not None:
        parts += ["--peers", args.peers]
    for path in args.model:
        parts += ["--model", Path(path).name]
    if args.write:
        parts.append("--write")
    return shlex.join(parts)


def links_swift_runtime(binary: Path) -> bool:
    """Whether the binary loads the Swift runtime's shared library (not when built with
    --static-swift-stdlib); true when that cannot be told."""
    try:
        result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return True
    return result.returncode != 0 or "libswiftCore" in result.stdout


def report(args, models, scaling, results, tools_seen, versions, started, loads) -> str:
    fuse_bin = shown_path(Path(args.onnx_fuse))
    if fuse_bin == Path(args.onnx_fuse).name:  # outside the checkout: its source is not known here
        measured = f"the onnx-fuse binary given with --onnx-fuse (the checkout is at commit {git_commit()})"
    else:
        build = "release build" if "release" in fuse_bin.split(os.sep) else "build"
        linked = "" if links_swift_runtime(Path(args.onnx_fuse)) else ", the Swift runtime linked in"
        measured = f"onnx-fuse commit {git_commit()} ({build} `{fuse_bin}`{linked})"
    lines = [f"Measured {started:%Y-%m-%d} with `{invocation(args)}` on {measured}. Whole processes: wall time from the "
             f"benchmark's clock around each run (to the microsecond), peak RSS from GNU time (`/usr/bin/time -f %M`); "
             f"{args.runs} run{'s' if args.runs != 1 else ''} "
             f"of each tool after {args.warmup} warm-up round{'s' if args.warmup != 1 else ''}, interleaved; "
             f"medians. Load average (1 minute) {loads[0]} at the start, {loads[1]} at the end"
             + (f", {min(LOADS):.2f} to {max(LOADS):.2f} after the runs." if LOADS else "."), ""]
    lines += machine()
    v = versions["project"]
    lines[-1] += f"; Python {v['python']}, onnx {v['onnx']}, onnxruntime {v['ort']} (checks), numpy {v['numpy']}."
    peer_versions = []
    for name in PEERS:
        where = versions["where"].get(name)
        if where and name in tools_seen:
            peer_versions.append(f"{PEERS[name][1]} {versions[where][name]}"
                                 + (" (from the project venv)" if where == "project" else ""))
    if peer_versions:
        lines += ["", "Peers: " + ", ".join(peer_versions) + "."]
    missing = [n for n in PEERS if not versions["where"].get(n)]
    if missing:
        lines += ["", "Not installed, so not run: " + ", ".join(missing) + " (`scripts/bench --install-peers`)."]
    lines += ["", "Commands (MODEL the generated model, OUT a fresh path):", ""]
    for tool in tools_seen.values():
        lines.append(f"- {tool.label}: `{tool.example}`")
    lines.append("")
    for model in models.values():
        if model.optimize:
            lines += optimize_table(model, results[model.name]) + [""]
    if any(m.roundtrip for m in models.values()):
        lines += ["Load and save, no rewrite (each output is compared with the input byte for byte, and in "
                  "onnxruntime when it differs):", ""]
        lines += roundtrip_table(models, results) + [""]
    if scaling:
        lines += ["Scaling, onnx-fuse with its built-in rules on chains 1×, 10× and 100× as long (µs per node: "
                  "the median time ÷ the nodes before, start-up included; µs per added node: the difference "
                  "to the row above ÷ the nodes added):", ""]
        lines += scaling_table(models, results, scaling) + [""]
    return "\n".join(lines).rstrip() + "\n"


def write_benchmarks(text: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    old = path.read_text()
    block = f"{BEGIN}\n{text}{END}"
    if BEGIN in old and END in old and old.index(BEGIN) < old.index(END):
        new = old[:old.index(BEGIN)] + block + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + f"\n\n{SECTION}\n\nWritten by `scripts/bench --write`; see the top of " \
                                 f"`scripts/bench.py` for what it measures.\n\n{block}\n"
    path.write_text(new)


# ---------------------------------------------------------------------------------------------


def options(argv: list[str]):
    p = argparse.ArgumentParser(
        prog="scripts/bench",
        description="The benchmark of record: onnx-fuse against onnxruntime's offline optimizer, onnxsim, "
                    "onnxslim, onnxoptimizer and onnxscript, whole processes on generated models.",
        epilog="MODELS is a comma-separated list of: resnet50 (resnet50-wW at width W), vgg16bn (vgg16bn-wW at width W; "
               "-external after either stores its weights as external data: vgg16bn-w2.15-external is 2.5 GB), chainN or chainNk "
               "(a Conv/BN/Relu chain of N or N thousand nodes, N a multiple of 3: chain60k is gen_chain.py 20000 8), "
               "roundtrip-MODEL (onnx-fuse --no-builtin against Python onnx.load + onnx.save), scaling-chainN "
               "(onnx-fuse on chainN and chains 10 and 100 times as long), roundtrip (= roundtrip-resnet50,"
               f"roundtrip-chain60k), scaling (= scaling-chain6k). Default: {DEFAULT_MODELS}; with --quick: "
               f"{QUICK_MODELS}. The wrapper scripts/bench also takes --install-peers (creates .venv-bench with the "
               "peers first).")
    p.add_argument("--models", help="the models to run (see below)")
    p.add_argument("--model", action="append", default=[], metavar="PATH",
                   help="an ONNX file to run onnx-fuse and the peers on too (repeatable), e.g. a PyTorch export")
    p.add_argument("--runs", type=int, help="measured runs of each tool on each model (default 5; --quick 1)")
    p.add_argument("--warmup", type=int, help="warm-up rounds, not counted (default 1; --quick 0)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds one run may take (default 300)")
    p.add_argument("--peers", help="the peers to run, comma-separated, or 'none' (default: all that are installed: "
                                   + ",".join(PEERS) + ")")
    p.add_argument("--peer-max-nodes", type=int, default=100_000,
                   help="skip the peers on models with more nodes (default 100000; 0: no limit)")
    p.add_argument("--peer-max-mb", type=int, default=1_000,
                   help="skip the peers on models larger than this many MB, external data included (default 1000; "
                        "0: no limit): each needs several times the model's size in memory")
    p.add_argument("--quick", action="store_true", help="a smoke test: small models, 1 run, no warm-up")
    p.add_argument("--write", action="store_true", help="write the report into BENCHMARKS.md instead of printing it")
    p.add_argument("--json", metavar="FILE", help="also write every measurement as JSON to FILE")
    p.add_argument("--onnx-fuse", required=True, metavar="BIN", help="the onnx-fuse binary (scripts/bench passes it)")
    p.add_argument("--peer-python", metavar="PYTHON", help="the bench venv's python (scripts/bench passes it)")
    args = p.parse_args(argv)
    args.default_runs, args.default_warmup = (1, 0) if args.quick else (5, 1)
    args.runs = args.default_runs if args.runs is None else args.runs
    args.warmup = args.default_warmup if args.warmup is None else args.warmup
    args.models_given = args.models is not None
    if args.models is None:
        args.models = "" if args.model else QUICK_MODELS if args.quick else DEFAULT_MODELS
    if args.runs < 1 or args.warmup < 0 or args.timeout <= 0 or args.peer_max_nodes < 0 or args.peer_max_mb < 0:
        p.error("--runs must be at least 1, --warmup at least 0, --timeout, --peer-max-nodes and --peer-max-mb positive")
    if args.write and args.quick:
        p.error("--write records the benchmark of record; --quick is a smoke test: use one or the other")
    return p, args


def main(argv: list[str]) -> int:
    parser, args = options(argv)
    try:
        models, scaling = plan([s for s in args.models.split(",") if s.strip()], [Path(m) for m in args.model])
    except ValueError as e:
        parser.error(str(e))
    if not models:
        parser.error("no model to run")
    if not (os.path.isfile(args.onnx_fuse) and os.access(args.onnx_fuse, os.X_OK)):
        parser.error(f"--onnx-fuse {args.onnx_fuse}: not an executable file")
    if not os.access(GNU_TIME, os.X_OK):
        print(f"bench: {GNU_TIME} (GNU time) not found: apt-get install time", file=sys.stderr)
        return 2
    for script in ("gen_chain.py", "gen_resnet.py", "gen_vgg.py", "peer_cli.py"):
        if not (LIB / script).is_file():
            print(f"bench: {shown_path(LIB / script)} not found", file=sys.stderr)
            return 2
    wanted = list(PEERS) if args.peers is None else [] if args.peers == "none" else args.peers.split(",")
    unknown = [p for p in wanted if p not in PEERS]
    if unknown:
        parser.error(f"--peers: unknown {', '.join(unknown)} (known: {', '.join(PEERS)}, or none)")

    # Where each peer runs: the bench venv, else the project venv (which has onnxruntime).
    versions: dict = {"project": probe_python(Path(sys.executable)), "where": {}}
    pythons = {"project": Path(sys.executable)}
    if args.peer_python:
        try:
            versions["bench"] = probe_python(Path(args.peer_python))
            pythons["bench"] = Path(args.peer_python)
        except (OSError, RuntimeError, ValueError) as e:
            log(f"the bench venv does not work, its peers are left out ({first_line(e)}); "
                "remove .venv-bench and run scripts/bench --install-peers")
    for name in PEERS:
        for where in ("bench", "project"):
            if where in versions and versions[where].get(name):
                versions["where"][name] = where
                break
    if versions["project"].get("onnx") is None or versions["project"].get("ort") is None:
        print("bench: the project venv lacks onnx or onnxruntime (scripts/venv)", file=sys.stderr)
        return 2

    fuse = Path(args.onnx_fuse).resolve()
    fuse_shown = shown_path(Path(args.onnx_fuse))
    peer_cli = LIB / "peer_cli.py"
    venv_shown = {"project": ".venv/bin/python", "bench": ".venv-bench/bin/python"}

    def peer_tool(name: str) -> Tool:
        label = PEER_LABEL[name]
        where = versions["where"].get(name)
        if name not in wanted:
            return Tool(name, label, [], "", skipped="not selected (--peers)")
        if where is None:
            return Tool(name, label, [], "", skipped="not installed")
        return Tool(name, label, [str(pythons[where]), str(peer_cli), name, "MODEL", "OUT"],
                    f"{venv_shown[where]} scripts/benchlib/peer_cli.py {name} MODEL OUT")

    tools = {
        "onnx-fuse": Tool("onnx-fuse", "onnx-fuse", [str(fuse), "MODEL", "-q", "-o", "OUT"], f"{fuse_shown} MODEL -q -o OUT"),
        "onnx-fuse --no-builtin": Tool("onnx-fuse --no-builtin", "onnx-fuse --no-builtin",
                                       [str(fuse), "MODEL", "--no-builtin", "-q", "-o", "OUT"],
                                       f"{fuse_shown} MODEL --no-builtin -q -o OUT"),
        "onnx": Tool("onnx", "Python onnx.load + onnx.save", [sys.executable, str(peer_cli), "onnx", "MODEL", "OUT"],
                     ".venv/bin/python scripts/benchlib/peer_cli.py onnx MODEL OUT"),
    }
    tools.update({name: peer_tool(name) for name in PEERS})

    started = datetime.datetime.now()
    loads = [f"{os.getloadavg()[0]:.2f}"]
    work = Path(tempfile.mkdtemp(prefix="onnx-fuse-bench-"))
    results: dict[str, dict[str, Cell]] = {}
    tools_seen: dict[str, Tool] = {}
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        for model in models.values():
            if model.source is not None:
                model.path = model.source
            else:
                model.path = work / f"{model.name}.onnx"
                log(f"generating {model.name}")
                subprocess.run([sys.executable] + [str(model.path) if a == "OUT" else a for a in model.generator],
                               check=True)
            model.nodes, model.size = count_nodes(model.path), model_size(model.path)
            os.sync()  # the generated file's write-back would otherwise run during the measurements
            chosen: list[Tool] = []
            if model.optimize or model.fuse_only:
                chosen.append(tools["onnx-fuse"])
            if model.optimize:
                for name in PEERS:
                    tool = tools[name]
                    if tool.skipped is None and args.peer_max_nodes and model.nodes > args.peer_max_nodes:
                        tool = Tool(name, tool.label, [], "",
                                    skipped=f"skipped: over {args.peer_max_nodes:,} nodes (--peer-max-nodes)")
                    elif tool.skipped is None and args.peer_max_mb and model.size > args.peer_max_mb * 1e6:
                        tool = Tool(name, tool.label, [], "",
                                    skipped=f"skipped: over {args.peer_max_mb:,} MB (--peer-max-mb)")
                    chosen.append(tool)
            if model.roundtrip:
                chosen += [tools["onnx-fuse --no-builtin"], tools["onnx"]]
            for tool in chosen:
                if tool.skipped is None:
                    tools_seen.setdefault(tool.key, tool)
            log(f"{model.name}: {model.nodes:,} nodes, {size_text(model.size)}; "
                f"{', '.join(t.label for t in chosen if t.skipped is None)}")
            results[model.name] = run_model(model, chosen, args, work)
            if model.source is None:
                model.path.unlink(missing_ok=True)
                model.path.with_name(model.path.name + ".data").unlink(missing_ok=True)  # external data
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except subprocess.CalledProcessError as e:
        print(f"bench: {shown_path(Path(e.cmd[1]))} failed (exit {e.returncode})", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(work, ignore_errors=True)
    loads.append(f"{os.getloadavg()[0]:.2f}")

    text = report(args, models, scaling, results, tools_seen, versions, started, loads)
    if args.write:
        write_benchmarks(text)
        log("BENCHMARKS.md updated")
    else:
        sys.stdout.write(text)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "date": started.isoformat(timespec="seconds"), "versions": versions, "load_after_runs": LOADS,
            "models": {m.name: {"label": m.label, "nodes": m.nodes, "bytes": m.size,
                                "tools": {k: {"warmup": c.warmup, "runs": c.runs, "failure": c.failure,
                                              "skipped": c.tool.skipped, "check": c.check, "check_ok": c.check_ok,
                                              "nodes_after": c.nodes_after, "bytes_after": c.out_size}
                                          for k, c in results[m.name].items()}}
                       for m in models.values()}}, indent=1) + "\n")

    failed = [f"{name}: {cell.tool.label}: {cell.check}" for name, cells in results.items() for cell in cells.values()
              if cell.check_ok is False]
    failed += [f"{name}: {cell.tool.label}: {cell.failure}" for name, cells in results.items()
               for key, cell in cells.items() if key.startswith("onnx-fuse") and cell.failure]
    for line in failed:
        print(f"bench: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
