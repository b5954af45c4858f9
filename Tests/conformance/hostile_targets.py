"""Class 3 of the hostile battery: output targets.

-o, --report and --in-place aimed at what must be refused (the input under another name, its
data file, a symbolic link, a dangling one, a folder, a FIFO, a device node, a missing folder,
names too long for the file system) and at what must work without touching anything else (an
existing file, a read-only one, a data file name already taken by a link, a FIFO or a folder,
an earlier output pair, a data file shared with another model). Each scenario runs on a model
without external data (conv_bn) and on one with it (external_data).

A device node is made with mknod only when running as root, in the case's own folder; the real
/dev/null is never used as an output.
"""

from __future__ import annotations

import os
import random
import shutil
import stat
from pathlib import Path

import onnx

from hostile_infra import IS_ROOT, Inv, Spec, file_digest
from hostile_models import copy_fixture

REFUSED = frozenset({1})
PLAIN, EXT = "conv_bn.onnx", "external_data.onnx"
EXT_DATA = "external_data.onnx.data"

SCENARIOS: dict[str, callable] = {}
KINDS: dict[str, tuple] = {}  # the inputs a scenario applies to: (False,) plain, (True,) external, or both


def scenario(name, ext_only=False, plain_only=False):
    def register(fn):
        assert name not in SCENARIOS, name
        SCENARIOS[name] = fn
        KINDS[name] = (True,) if ext_only else (False,) if plain_only else (False, True)
        return fn
    return register


def mknod_or_skip(path: Path) -> bool:
    """A character device like /dev/null at path (root only); False when it cannot be made."""
    if not IS_ROOT:
        return False
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        return True
    except OSError:
        return False


def mode_is(rel: str, mode: int):
    def post(work: Path, run) -> list[str]:
        if run.returncode != 0:
            return []
        got = stat.S_IMODE(os.lstat(work / rel).st_mode)
        return [] if got == mode else [f"{rel} has mode {oct(got)} after the run, expected {oct(mode)}"]
    return post


def still_link(rel: str, target: str):
    def post(work: Path, run) -> list[str]:
        p = work / rel
        if not p.is_symlink() or os.readlink(p) != target:
            return [f"{rel} was a link to {target} and is not any more"]
        return []
    return post


def other_model_loads(rel: str):
    def post(work: Path, run) -> list[str]:
        try:
            onnx.load(str(work / rel))
        except Exception as e:  # noqa: BLE001
            return [f"data loss: {rel}, which shares a data file, no longer loads: {type(e).__name__}: {e}"]
        return []
    return post


# --- -o -------------------------------------------------------------------------------------

@scenario("o-input")
def _(work, model, ext, aux=None):
    return Inv([model, "-o", model], expect=REFUSED)


@scenario("o-input-other-spelling")
def _(work, model, ext, aux=None):
    (work / "sub").mkdir()
    return Inv([model, "-o", f"./sub/../{model}"], expect=REFUSED)


@scenario("o-input-absolute")
def _(work, model, ext, aux=None):
    return Inv([model, "-o", str(work / model)], expect=REFUSED)


@scenario("o-input-via-linked-folder")
def _(work, model, ext, aux=None):
    os.symlink(".", work / "here")
    return Inv([model, "-o", f"here/{model}"], expect=REFUSED)


@scenario("o-data-file-via-linked-folder", ext_only=True)
def _(work, model, ext, aux=None):
    os.symlink(".", work / "here")
    return Inv([model, "-o", f"here/{EXT_DATA}"], expect=REFUSED)


@scenario("report-input-via-linked-folder")
def _(work, model, ext, aux=None):
    os.symlink(".", work / "here")
    return Inv([model, "-o", "out.onnx", "--report", f"here/{model}"], expect=REFUSED)


@scenario("report-output-via-linked-folder")
def _(work, model, ext, aux=None):
    os.symlink(".", work / "here")
    return Inv([model, "-o", "out.onnx", "--report", "here/out.onnx"], expect=REFUSED)


@scenario("o-input-hardlink")
def _(work, model, ext, aux=None):
    os.link(work / model, work / "hard.onnx")
    return Inv([model, "-o", "hard.onnx"], expect=REFUSED)


@scenario("o-input-symlink")
def _(work, model, ext, aux=None):
    os.symlink(model, work / "lnk.onnx")
    return Inv([model, "-o", "lnk.onnx"], expect=REFUSED)


@scenario("o-data-file", ext_only=True)
def _(work, model, ext, aux=None):
    return Inv([model, "-o", EXT_DATA], expect=REFUSED)


@scenario("o-data-file-hardlink", ext_only=True)
def _(work, model, ext, aux=None):
    (work / "d").mkdir()
    os.link(work / EXT_DATA, work / "d" / "x.onnx")
    return Inv([model, "-o", "d/x.onnx"], expect=REFUSED | {2})


@scenario("o-symlink-to-other-file")
def _(work, model, ext, aux=None):
    (work / "other.onnx").write_bytes(b"precious")
    os.symlink("other.onnx", work / "out.onnx")
    return Inv([model, "-o", "out.onnx"], expect=REFUSED)


@scenario("o-dangling-symlink")
def _(work, model, ext, aux=None):
    os.symlink("nowhere/at/all.onnx", work / "out.onnx")
    return Inv([model, "-o", "out.onnx"], expect=REFUSED)


@scenario("o-folder")
def _(work, model, ext, aux=None):
    (work / "out.onnx").mkdir()
    (work / "out.onnx" / "keep").write_bytes(b"keep")
    return Inv([model, "-o", "out.onnx"], expect=REFUSED)


@scenario("o-fifo")
def _(work, model, ext, aux=None):
    os.mkfifo(work / "out.onnx")
    return Inv([model, "-o", "out.onnx"], expect=REFUSED)


@scenario("o-device")
def _(work, model, ext, aux=None):
    if not mknod_or_skip(work / "null"):
        return None
    return Inv([model, "-o", "null"], expect=REFUSED)


@scenario("o-missing-folder")
def _(work, model, ext, aux=None):
    return Inv([model, "-o", "missing/dir/out.onnx"], expect=frozenset({1, 3}))


@scenario("o-file-as-folder")
def _(work, model, ext, aux=None):
    (work / "file").write_bytes(b"x")
    return Inv([model, "-o", "file/out.onnx"], expect=frozenset({1, 3}))


for _n in (200, 240, 245, 250, 255):
    @scenario(f"o-name-{_n}-bytes")
    def _(work, model, ext, aux=None, n=_n):
        name = "o" * (n - 5) + ".onnx"
        return Inv([model, "-o", name], model=model, output=name)


@scenario("o-name-256-bytes")
def _(work, model, ext, aux=None):
    return Inv([model, "-o", "o" * 251 + ".onnx"], expect=frozenset({1, 3}))


@scenario("o-path-4096-bytes")
def _(work, model, ext, aux=None):
    return Inv([model, "-o", "./" * 2100 + "out.onnx"], model=model, output="out.onnx")


@scenario("o-existing-file")
def _(work, model, ext, aux=None):
    (work / "out.onnx").write_bytes(b"old junk")
    os.chmod(work / "out.onnx", 0o640)
    return Inv([model, "-o", "out.onnx"], model=model, output="out.onnx", post=mode_is("out.onnx", 0o640))


@scenario("o-existing-read-only-file")
def _(work, model, ext, aux=None):
    (work / "out.onnx").write_bytes(b"old junk")
    os.chmod(work / "out.onnx", 0o444)
    return Inv([model, "-o", "out.onnx"], model=model, output="out.onnx", post=mode_is("out.onnx", 0o444))


@scenario("o-private-input")
def _(work, model, ext, aux=None):
    os.chmod(work / model, 0o600)
    return Inv([model, "-o", "out.onnx"], model=model, output="out.onnx", post=mode_is("out.onnx", 0o600))


@scenario("o-trailing-slash")
def _(work, model, ext, aux=None):
    return Inv([model, "-o", "out.onnx/"], expect=frozenset({1, 3}))


@scenario("o-dot")
def _(work, model, ext, aux=None):
    return Inv([model, "-o", "."], expect=REFUSED)


@scenario("o-dotdot")
def _(work, model, ext, aux=None):
    return Inv([model, "-o", ".."], expect=REFUSED)


@scenario("o-empty")
def _(work, model, ext, aux=None):
    return Inv([model, "-o", ""], expect=frozenset({1, 3}))


@scenario("o-root")
def _(work, model, ext, aux=None):
    return Inv([model, "-o", "/"], expect=REFUSED)


@scenario("o-in-symlinked-folder")
def _(work, model, ext, aux=None):
    (work / "real").mkdir()
    os.symlink("real", work / "lnkdir")
    return Inv([model, "-o", "lnkdir/out.onnx"], model=model, output="lnkdir/out.onnx")


# (--no-builtin: the built-in rules fold every external tensor of external_data.onnx away)
@scenario("o-stdout")
def _(work, model, ext, aux=None):
    if ext:
        return Inv([model, "--no-builtin", "-o", "-"], expect=REFUSED)
    return Inv([model, "-o", "-"], model=model, stdout_model=True)


@scenario("o-not-utf8")
def _(work, model, ext, aux=None):
    name = b"out\xff\xfe.onnx"
    if ext:
        return Inv([model, "--no-builtin", "-o", name], expect=REFUSED)
    return Inv([model, "-o", name], model=model, output=os.fsdecode(name))


@scenario("o-control-characters")
def _(work, model, ext, aux=None):
    name = "out\n\x1b[31m\r.onnx"
    return Inv([model, "-o", name], model=model, output=name)


@scenario("o-data-name-link-to-input-data", ext_only=True)
def _(work, model, ext, aux=None):
    os.symlink(EXT_DATA, work / "out.onnx.data")
    return Inv([model, "-o", "out.onnx"], model=model, output="out.onnx", post=still_link("out.onnx.data", EXT_DATA))


@scenario("o-data-name-dangling-link", ext_only=True)
def _(work, model, ext, aux=None):
    os.symlink("nowhere.bin", work / "out.onnx.data")
    return Inv([model, "-o", "out.onnx"], model=model, output="out.onnx", post=still_link("out.onnx.data", "nowhere.bin"))


@scenario("o-data-name-fifo", ext_only=True)
def _(work, model, ext, aux=None):
    os.mkfifo(work / "out.onnx.data")
    return Inv([model, "-o", "out.onnx"], model=model, output="out.onnx")


@scenario("o-data-name-folder", ext_only=True)
def _(work, model, ext, aux=None):
    (work / "out.onnx.data").mkdir()
    return Inv([model, "-o", "out.onnx"], model=model, output="out.onnx")


@scenario("o-data-name-report", ext_only=True)
def _(work, model, ext, aux=None):
    return Inv([model, "-o", "out.onnx", "--report", "out.onnx.data"], expect=REFUSED)


def _retarget(work: Path, src: str, dest: str, location: str, data_name: str):
    """Copies model src to dest, its external data going to data_name (the location)."""
    m = onnx.load(str(work / src), load_external_data=False)
    for t in m.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    onnx.save(m, str(work / dest))
    shutil.copyfile(work / EXT_DATA, work / data_name)


@scenario("o-over-earlier-pair", ext_only=True)
def _(work, model, ext, aux=None):
    _retarget(work, model, "out.onnx", "out.onnx.data", "out.onnx.data")
    return Inv([model, "-o", "out.onnx"], model=model, output="out.onnx")


@scenario("o-over-earlier-pair-k-data", ext_only=True)
def _(work, model, ext, aux=None):
    _retarget(work, model, "out.onnx", "out.onnx.data.1", "out.onnx.data.1")
    (work / "out.onnx.data").write_bytes(b"unrelated file named like a data file")
    return Inv([model, "-o", "out.onnx"], model=model, output="out.onnx")


@scenario("o-over-pair-sharing-data", ext_only=True)
def _(work, model, ext, aux=None):
    _retarget(work, model, "out.onnx", "shared.bin", "shared.bin")
    _retarget(work, model, "other.onnx", "shared.bin", "shared.bin")
    return Inv([model, "-o", "out.onnx"], model=model, output="out.onnx", post=other_model_loads("other.onnx"))


@scenario("o-other-folder-same-name")
def _(work, model, ext, aux=None):
    (work / "sub").mkdir()
    return Inv([model, "-o", f"sub/{model}"], model=model, output=f"sub/{model}")


def unchanged(rel: str, work: Path):
    digest = file_digest(str(work / rel))

    def post(w: Path, run) -> list[str]:
        p = w / rel
        if not p.is_file() or p.is_symlink() or file_digest(str(p)) != digest:
            return [f"data loss: {rel}, a file the input reads, was changed or replaced"]
        return []
    return post


@scenario("o-input-data-named-after-output", ext_only=True)
def _(work, model, ext, aux=None):
    _retarget(work, model, "in.onnx", "out.onnx.data", "out.onnx.data")
    return Inv(["in.onnx", "-o", "out.onnx"], model="in.onnx", output="out.onnx",
               post=unchanged("out.onnx.data", work))


@scenario("o-input-data-named-after-output-k", ext_only=True)
def _(work, model, ext, aux=None):
    _retarget(work, model, "in.onnx", "out.onnx.data.1", "out.onnx.data.1")
    _retarget(work, model, "out.onnx", "out.onnx.data", "out.onnx.data")
    return Inv(["in.onnx", "-o", "out.onnx"], model="in.onnx", output="out.onnx",
               post=unchanged("out.onnx.data.1", work))


@scenario("o-with-in-place")
def _(work, model, ext, aux=None):
    return Inv([model, "--in-place", "-o", "out.onnx"], expect=REFUSED)


@scenario("o-with-print")
def _(work, model, ext, aux=None):
    return Inv([model, "--print", "-o", "out.onnx"], expect=REFUSED)


# --- --report -------------------------------------------------------------------------------

def report_case(name, prepare, expect=REFUSED, ok_report=None, ext_only=False):
    @scenario(f"report-{name}", ext_only=ext_only)
    def _(work, model, ext, aux=None):
        target = prepare(work, model, ext)
        if target is None:
            return None
        if expect == REFUSED:
            return Inv([model, "-o", "out.onnx", "--report", target], expect=expect)
        return Inv([model, "-o", "out.onnx", "--report", target], model=model, output="out.onnx",
                   report=ok_report or target, expect=expect)


def _link_other(work, model, ext):
    (work / "other.json").write_bytes(b"precious")
    os.symlink("other.json", work / "r.json")
    return "r.json"


def _dangling(work, model, ext):
    os.symlink("nowhere.json", work / "r.json")
    return "r.json"


def _folder(work, model, ext):
    (work / "r.json").mkdir()
    return "r.json"


def _fifo(work, model, ext):
    os.mkfifo(work / "r.json")
    return "r.json"


def _device(work, model, ext):
    return "null" if mknod_or_skip(work / "null") else None


def _existing(work, model, ext):
    (work / "r.json").write_bytes(b"old")
    return "r.json"


report_case("input", lambda w, m, e: m)
report_case("input-data", lambda w, m, e: EXT_DATA, ext_only=True)
report_case("input-hardlink", lambda w, m, e: (os.link(w / m, w / "h.json"), "h.json")[1])
report_case("input-data-hardlink", lambda w, m, e: (os.link(w / EXT_DATA, w / "h.json"), "h.json")[1],
            expect=frozenset({1, 2}), ext_only=True)
report_case("output", lambda w, m, e: "out.onnx")
report_case("output-other-spelling", lambda w, m, e: ((w / "s").mkdir(), "s/../out.onnx")[1])
report_case("output-data", lambda w, m, e: "out.onnx.data")
report_case("link", _link_other)
report_case("dangling-link", _dangling)
report_case("folder", _folder)
report_case("fifo", _fifo)
report_case("device", _device)
report_case("missing-folder", lambda w, m, e: "missing/r.json")
report_case("name-256-bytes", lambda w, m, e: "r" * 251 + ".json", expect=frozenset({1, 3}))
report_case("name-250-bytes", lambda w, m, e: "r" * 245 + ".json", expect=None)
report_case("existing-file", _existing, expect=None)
report_case("dash", lambda w, m, e: "-", expect=None)
report_case("control-characters", lambda w, m, e: "r\n\x1b[1m.json", expect=None)


@scenario("report-in-place-input")
def _(work, model, ext, aux=None):
    return Inv([model, "--in-place", "--report", model], expect=REFUSED)


@scenario("report-stdout-model", plain_only=True)
def _(work, model, ext, aux=None):
    return Inv([model, "-o", "-", "--report", model], expect=REFUSED)


# --- --in-place -----------------------------------------------------------------------------

def _pristine(work: Path, aux: Path, model: str, ext: bool) -> str:
    shutil.copyfile(work / model, aux / model)
    if ext:
        shutil.copyfile(work / EXT_DATA, aux / EXT_DATA)
    return str(aux / model)


@scenario("in-place")
def _(work, model, ext, aux=None):
    return Inv([model, "--in-place"], model=model, in_place=True, output=model, oracle_model=_pristine(work, aux, model, ext))


@scenario("in-place-twice-named")
def _(work, model, ext, aux=None):
    os.link(work / model, work / "other-name.onnx")
    return Inv([model, "--in-place"], model=model, in_place=True, output=model,
               oracle_model=_pristine(work, aux, model, ext), expect=None)


@scenario("in-place-read-only")
def _(work, model, ext, aux=None):
    os.chmod(work / model, 0o444)
    return Inv([model, "--in-place"], model=model, in_place=True, output=model,
               oracle_model=_pristine(work, aux, model, ext), post=mode_is(model, 0o444))


@scenario("in-place-symlink")
def _(work, model, ext, aux=None):
    os.symlink(model, work / "lnk.onnx")
    return Inv(["lnk.onnx", "--in-place"], expect=REFUSED)


@scenario("in-place-dangling-symlink")
def _(work, model, ext, aux=None):
    os.symlink("nowhere.onnx", work / "lnk.onnx")
    return Inv(["lnk.onnx", "--in-place"], expect=frozenset({1, 2, 3}))


@scenario("in-place-fifo")
def _(work, model, ext, aux=None):
    os.mkfifo(work / "f.onnx")
    return Inv(["f.onnx", "--in-place"], expect=frozenset({1, 2}))


@scenario("in-place-shared-data", ext_only=True)
def _(work, model, ext, aux=None):
    _retarget(work, model, "a.onnx", "shared.bin", "shared.bin")
    _retarget(work, model, "b.onnx", "shared.bin", "shared.bin")
    pristine_dir = aux
    shutil.copyfile(work / "a.onnx", pristine_dir / "a.onnx")
    shutil.copyfile(work / "shared.bin", pristine_dir / "shared.bin")
    return Inv(["a.onnx", "--in-place"], model="a.onnx", in_place=True, output="a.onnx",
               oracle_model=str(pristine_dir / "a.onnx"), post=other_model_loads("b.onnx"))


@scenario("in-place-data-is-link", ext_only=True)
def _(work, model, ext, aux=None):
    os.rename(work / EXT_DATA, work / "real.data")
    os.symlink("real.data", work / EXT_DATA)
    return Inv([model, "--in-place"], expect=frozenset({2}))


# ---------------------------------------------------------------------------


def target_spec(name: str, fn, ext: bool) -> Spec:
    case_id = f"target-{name}-{'external' if ext else 'plain'}"

    def setup(work: Path, aux: Path, rng: random.Random) -> Inv | None:
        model = copy_fixture(EXT if ext else PLAIN, work)
        inv = fn(work, model, ext, aux=aux)
        if inv is not None and ext and "--no-builtin" not in inv.argv:
            # the built-in rules fold every external tensor of this model away: keep them
            inv.argv.append("--no-builtin")
        return inv

    return Spec(case_id, setup)


def specs() -> list[Spec]:
    return [target_spec(name, fn, ext) for name, fn in SCENARIOS.items() for ext in KINDS[name]]
