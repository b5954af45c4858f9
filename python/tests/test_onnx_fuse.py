"""The Python package as a user gets it: the wheel installed in a fresh venv (scripts/test-python).

Round trips of every kind of input, folds checked in onnxruntime, the report, errors as
exceptions, external data, rule text, the installed command, and the binary's independence from
Swift and libprotobuf-c. ``ONNX_FUSE_WHEEL`` names the wheel (for the venv without onnx);
``ONNX_FUSE_TORCH=1`` adds a torchvision ResNet-50 export (needs torch and torchvision).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_fuse

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
EXAMPLE_RULES = ROOT / "docs" / "examples" / "conv-batchnorm.rules"

DIV_BY_CONSTANT = """
# Replace a division by a constant with a multiplication by its reciprocal.
rule div-by-constant {
  match   { y = Div(x, c) }
  where   { constant(c) && dtype(c) in [float, double, float16] }
  compute { r = 1 / c }
  replace { y = Mul(x, r) }
}
"""

# Wrong on purpose: a sign error in the folded bias, which verification must catch.
WRONG_FOLD = """
rule drop-batchnorm-shift {
  match {
    y = Conv(x, w, b?)
    z = BatchNormalization<epsilon: eps = 1e-5, training_mode: tm = 0>(y, scale, shift, mean, var)
  }
  where { tm == 0 && constant(w, b, scale, shift, mean, var) && rank(w) == 4 }
  compute {
    k  = scale / sqrt(var + eps)
    w2 = w * reshape(k, [dim(w, 0), 1, 1, 1])
    b2 = (default(b, 0) + mean) * k + shift
  }
  replace { z = Conv<...y>(x, w2, b2) }
}
"""


def run_model(model: onnx.ModelProto | str | Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def assert_same_outputs(before, after, feeds, rtol=1e-4, atol=1e-5) -> None:
    for expected, actual in zip(run_model(before, feeds), run_model(after, feeds), strict=True):
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def small_cnn(seed: int = 0, tail: bool = False) -> onnx.ModelProto:
    """Conv -> BatchNormalization -> Relu -> Conv (with bias) -> BatchNormalization -> Add, with
    statistics far from the identity, as a trained network has them; with ``tail``, a last Conv
    that no rule changes."""
    rng = np.random.default_rng(seed)

    def tensor(name: str, *shape: int, low: float = -1.0, high: float = 1.0) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.uniform(low, high, shape).astype(np.float32), name)

    initializers = [
        tensor("w1", 8, 3, 3, 3), tensor("s1", 8, low=0.5, high=2), tensor("b1", 8), tensor("m1", 8),
        tensor("v1", 8, low=0.1, high=3),
        tensor("w2", 8, 8, 1, 1), tensor("c2", 8), tensor("s2", 8, low=0.5, high=2), tensor("b2", 8),
        tensor("m2", 8), tensor("v2", 8, low=0.1, high=3),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["y1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["y1", "s1", "b1", "m1", "v1"], ["z1"], name="bn1", epsilon=1e-3),
        helper.make_node("Relu", ["z1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "c2"], ["y2"], name="conv2"),
        helper.make_node("BatchNormalization", ["y2", "s2", "b2", "m2", "v2"], ["z2"], name="bn2"),
        helper.make_node("Add", ["z2", "r1"], ["out"], name="residual"),
    ]
    if tail:
        initializers.append(tensor("w3", 8, 8, 3, 3))
        nodes[-1].output[0] = "sum"
        nodes.append(helper.make_node("Conv", ["sum", "w3"], ["out"], name="conv3", pads=[1, 1, 1, 1]))
    graph = helper.make_graph(nodes, "small_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 8, 16, 16])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def image(seed: int = 1) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((1, 3, 16, 16)).astype(np.float32)}


def op_types(model: onnx.ModelProto) -> list[str]:
    return [node.op_type for node in model.graph.node]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# The package itself


def test_the_package_is_the_installed_wheel() -> None:
    # Not the source tree: the test runs against what pip installed.
    assert Path(onnx_fuse.__file__).resolve().is_relative_to(Path(sysconfig.get_paths()["purelib"]).resolve())
    assert "ONNX_FUSE_BINARY" not in os.environ
    binary = Path(onnx_fuse.binary_path())
    assert binary.parent.parent == Path(onnx_fuse.__file__).parent
    assert os.access(binary, os.X_OK)
    with open(ROOT / "python" / "pyproject.toml", "rb") as file:
        version = tomllib.load(file)["project"]["version"]
    assert onnx_fuse.__version__ == version
    shown = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout
    assert shown.strip() == f"onnx-fuse {version}"
    assert (Path(onnx_fuse.__file__).parent / "py.typed").exists()


def test_the_api_type_checks_strictly(tmp_path: Path) -> None:
    # The package's hints (py.typed) as a client's type checker sees them, with a client's code.
    client = tmp_path / "client.py"
    client.write_text("""
import onnx
import onnx_fuse

def fold(path: str) -> int:
    model, report = onnx_fuse.optimize(onnx.load(path), rules=[onnx_fuse.RuleText("rule x {}", "x")],
                                       disable=["merge-duplicates"], verify="model")
    assert isinstance(model, onnx.ModelProto)
    fired: dict[str, int] = report.rules_fired
    rules: list[onnx_fuse.Rule] = onnx_fuse.list_rules(builtin=False)
    check: onnx_fuse.RuleCheck = onnx_fuse.check_rules("my.rules", models=[path])
    try:
        onnx_fuse.optimize(b"")
    except onnx_fuse.OnnxFuseError as error:
        meaning: str = error.meaning
        return error.exit_code
    return len(fired) + len(rules) + len(check.models)
""")
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--ignore-missing-imports", "--no-incremental",
                             "-p", "onnx_fuse", "-m", "client"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def elf_program_header_types(path: Path) -> set[int]:
    """The types of an ELF64 file's program headers (PT_INTERP = 3, PT_DYNAMIC = 2)."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2, "not an ELF64 file"
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return {struct.unpack_from("<I", data, phoff + index * phentsize)[0] for index in range(phnum)}


def test_the_binary_needs_no_shared_library() -> None:
    # No interpreter and no dynamic section: neither Swift's runtime nor libprotobuf-c nor the C
    # library is looked up on the machine it runs on.
    types = elf_program_header_types(Path(onnx_fuse.binary_path()))
    assert 3 not in types, "the binary asks for a dynamic loader"
    assert 2 not in types, "the binary has a dynamic section"


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_the_binary_runs_on_an_empty_root(tmp_path: Path) -> None:
    # A root holding nothing but the binary, a model and /proc: no Swift, no libprotobuf-c, no C
    # library, no Python.
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "onnx-fuse").write_bytes(Path(onnx_fuse.binary_path()).read_bytes())
    (root / "onnx-fuse").chmod(0o755)
    (root / "model.onnx").write_bytes(small_cnn().SerializeToString())
    if not shutil.which("chroot", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
        pytest.skip("no chroot command")
    mounted = subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount /proc in a chroot: {mounted.stderr.strip()}")
    try:
        result = subprocess.run([shutil.which("chroot", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"), str(root), "/onnx-fuse", "/model.onnx", "-o", "/out.onnx", "--verify=model"],
                                capture_output=True, text=True, env={})
    finally:
        subprocess.run(["umount", str(root / "proc")], check=True)
    assert result.returncode == 0, result.stderr
    assert "fold-conv-batchnorm ×2" in result.stderr
    assert "whole model: agrees" in result.stderr
    assert_same_outputs(small_cnn(), root / "out.onnx", image())


# Round trips


def test_a_model_proto_comes_back_folded_with_the_same_outputs() -> None:
    before = small_cnn()
    after, report = onnx_fuse.optimize(before)
    assert isinstance(after, onnx.ModelProto)
    assert op_types(after) == ["Conv", "Relu", "Conv", "Add"]
    onnx.checker.check_model(after)
    assert_same_outputs(before, after, image())
    assert report.rules_fired == {"fold-conv-batchnorm": 2}
    assert (report.nodes_before, report.nodes_after) == (6, 4)
    assert report.nodes_by_op_type_before["BatchNormalization"] == 2
    assert "BatchNormalization" not in report.nodes_by_op_type_after
    assert report.input is None and report.output is None
    assert report.bytes_after is not None and report.bytes_after < report.bytes_before
    assert str(report).startswith("<model>: 6 -> 4 nodes (fold-conv-batchnorm ×2), ")
    # The input is left as it was.
    assert before == small_cnn()


def test_bytes_in_bytes_out_and_paths_in_model_out(tmp_path: Path) -> None:
    data = small_cnn().SerializeToString()
    folded, report = onnx_fuse.optimize(data)
    assert isinstance(folded, bytes)
    path = tmp_path / "cnn.onnx"
    path.write_bytes(data)
    from_path, path_report = onnx_fuse.optimize(path)
    assert isinstance(from_path, onnx.ModelProto)
    assert from_path.SerializeToString() == folded
    assert path_report.input == str(path)
    # output= writes the file and returns no model; the same bytes as the command writes.
    target = tmp_path / "out.onnx"
    model, written = onnx_fuse.optimize(str(path), output=target)
    assert model is None and written.output == str(target)
    assert target.read_bytes() == folded
    command = subprocess.run([onnx_fuse.binary_path(), str(path), "-o", str(tmp_path / "cli.onnx"), "-q"])
    assert command.returncode == 0
    assert (tmp_path / "cli.onnx").read_bytes() == folded
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.onnx", "cnn.onnx", "out.onnx"]


def test_a_model_no_rule_changes_comes_back_byte_for_byte() -> None:
    for fixture in ["conv_bn.onnx", "metadata_docstrings.onnx", "unknown_fields.onnx", "if_subgraph.onnx"]:
        data = (FIXTURES / fixture).read_bytes()
        same, report = onnx_fuse.optimize(data, builtin=False)
        assert same == data, fixture
        assert report.rules_fired == {}


def test_fixtures_keep_their_outputs_in_onnxruntime() -> None:
    checked = 0
    for fixture in ["conv_bn.onnx", "conv_bias_bn.onnx", "gemm_bn.onnx", "matmul_add.onnx", "gelu_erf.onnx",
                    "layernorm.onnx", "pad_conv.onnx", "transpose_pair.onnx", "constant_chains.onnx"]:
        before = onnx.load(str(FIXTURES / fixture))
        after, report = onnx_fuse.optimize(before, verify="model")
        assert report.rules_fired, fixture
        assert report.verification["whole_model"]["outcome"] == "agree", fixture
        rng = np.random.default_rng(3)
        feeds = {}
        initializers = {init.name for init in before.graph.initializer}
        for value in before.graph.input:
            if value.name in initializers:
                continue
            shape = [d.dim_value if d.HasField("dim_value") else 2 for d in value.type.tensor_type.shape.dim]
            dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
        assert_same_outputs(before, after, feeds)
        checked += 1
    assert checked == 9


def test_the_report_is_the_commands_report(tmp_path: Path) -> None:
    path = tmp_path / "cnn.onnx"
    onnx.save(small_cnn(), str(path))
    _, report = onnx_fuse.optimize(path, verify="model", explain=True)
    command = subprocess.run([onnx_fuse.binary_path(), str(path), "-o", str(tmp_path / "cli.onnx"), "--verify=model",
                              "--explain", "--report", str(tmp_path / "report.json")], capture_output=True)
    assert command.returncode == 0, command.stderr
    expected = json.loads((tmp_path / "report.json").read_text())
    assert set(expected) >= {"rules_fired", "nodes_before", "nodes_after", "explanations", "verification"}
    drop = {"input", "output", "seconds"}
    assert {k: v for k, v in report.raw.items() if k not in drop} == {k: v for k, v in expected.items() if k not in drop}
    assert report.verification["rules"][0]["rule"] == "fold-conv-batchnorm"
    assert report.verification["rules"][0]["checked"] == 2
    assert any(line.startswith("onnx-fuse: verify: 2 rewrites checked, 0 beyond tolerance") for line in report.messages)


def test_explanations_say_why_a_rule_did_not_fire() -> None:
    model = onnx.load(str(FIXTURES / "overridable_initializer.onnx"))
    _, report = onnx_fuse.optimize(model, explain=True)
    assert report.explanations, report
    first = report.explanations[0]
    assert isinstance(first, onnx_fuse.Explanation)
    assert first.rule and first.node and first.op_type and first.reason
    _, quiet = onnx_fuse.optimize(model)
    assert quiet.explanations == []


def test_only_disable_and_builtin() -> None:
    model = small_cnn()
    kept, report = onnx_fuse.optimize(model, disable=["fold-conv-batchnorm"])
    assert "BatchNormalization" in op_types(kept) and "fold-conv-batchnorm" not in report.rules_fired
    _, only = onnx_fuse.optimize(model, only="fold-conv-batchnorm")
    assert only.rules_fired == {"fold-conv-batchnorm": 2}
    untouched, none = onnx_fuse.optimize(model, builtin=False)
    assert untouched == model and none.rules_fired == {}


def test_calls_from_many_threads_agree() -> None:
    data = small_cnn().SerializeToString()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: onnx_fuse.optimize(data).model, range(8)))
    assert len(set(results)) == 1


# Many files in one run


def test_optimize_files_runs_a_folder_in_one_process(tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "sub").mkdir(parents=True)
    onnx.save(small_cnn(0), str(models / "a.onnx"))
    onnx.save(small_cnn(1, tail=True), str(models / "sub" / "b.onnx"))
    (models / "bad.onnx").write_bytes(b"not a model")
    output = tmp_path / "out"
    result = onnx_fuse.optimize_files(models, output, jobs=2)
    by_name = {Path(entry.input).relative_to(models).as_posix(): entry for entry in result.models}
    assert sorted(by_name) == ["a.onnx", "bad.onnx", "sub/b.onnx"]
    for name in ["a.onnx", "sub/b.onnx"]:
        entry = by_name[name]
        assert entry.status == "written" and entry.exit_code == 0 and entry.error is None
        assert entry.output == str(output / name)
        assert entry.report is not None and entry.report.rules_fired == {"fold-conv-batchnorm": 2}
        # The bytes optimize gives that model alone.
        alone, _ = onnx_fuse.optimize((models / name).read_bytes())
        assert (output / name).read_bytes() == alone
    bad = by_name["bad.onnx"]
    assert (bad.status, bad.exit_code, bad.output) == ("failed", 2, None)
    assert bad.error is not None and bad.error.startswith(f"{models / 'bad.onnx'}: ")
    assert bad.errors == [bad.error]
    assert by_name["a.onnx"].errors == []
    assert isinstance(bad.exception(), onnx_fuse.InvalidModelError)
    assert result.failures == [bad]
    assert {key: result.total[key] for key in ("models", "written", "failed", "skipped", "exit_code")} == {
        "models": 3, "written": 2, "failed": 1, "skipped": 0, "exit_code": 2}
    with pytest.raises(onnx_fuse.InvalidModelError):
        result.raise_for_failures()

    # One file is a batch of one, with the same bytes.
    one = onnx_fuse.optimize_files(models / "a.onnx", tmp_path / "one")
    assert [(entry.status, entry.output) for entry in one.models] == [("written", str(tmp_path / "one" / "a.onnx"))]
    assert (tmp_path / "one" / "a.onnx").read_bytes() == (output / "a.onnx").read_bytes()
    one.raise_for_failures()
    failed_one = onnx_fuse.optimize_files(models / "bad.onnx", tmp_path / "one")
    assert failed_one.models[0].status == "failed" and failed_one.total["exit_code"] == 2
    assert failed_one.models[0].errors == [failed_one.models[0].error]

    # What concerns the whole run raises before any model.
    with pytest.raises(onnx_fuse.UsageError):
        onnx_fuse.optimize_files([models / "a.onnx", models / "a.onnx"], tmp_path / "twice")
    assert not (tmp_path / "twice").exists()
    with pytest.raises(IsADirectoryError):
        onnx_fuse.optimize(models)


# Errors


def test_optimize_files_gives_file_names_that_are_not_utf8_as_python_does(tmp_path: Path) -> None:
    # The names found in a folder come back as os.fsdecode gives them, so that they open.
    folder = tmp_path / "models"
    folder.mkdir()
    onnx.save(small_cnn(), os.fsdecode(bytes(folder) + b"/caf\xe9.onnx"))
    result = onnx_fuse.optimize_files([folder], tmp_path / "out")
    [model] = result.models
    assert model.status == "written"
    assert os.fsencode(model.input) == bytes(folder) + b"/caf\xe9.onnx"
    assert os.fsencode(model.output) == bytes(tmp_path) + b"/out/caf\xe9.onnx"
    assert os.path.exists(model.output) and model.report is not None
    assert os.fsencode(model.report.input or "") == os.fsencode(model.input)


def test_optimize_files_makes_no_output_folder_for_a_run_that_fails(tmp_path: Path) -> None:
    # As the batch mode makes OUTDIR only once every check has passed, so does a run of one file.
    path = tmp_path / "cnn.onnx"
    onnx.save(small_cnn(), str(path))
    for models in ([path], [path, path.with_name("copy.onnx")]):
        shutil.copy(path, path.with_name("copy.onnx"))
        with pytest.raises(onnx_fuse.UsageError, match="^<rules 1>:1:"):
            onnx_fuse.optimize_files(models, tmp_path / "out" / "fused", rules="rule broken {")
        assert not (tmp_path / "out").exists()
    # A model that does not exist is an error of the whole run, for one model as for many.
    for models in ([tmp_path / "missing.onnx"], [tmp_path / "missing.onnx", path]):
        with pytest.raises(onnx_fuse.UsageError, match="missing.onnx: no such file or folder$"):
            onnx_fuse.optimize_files(models, tmp_path / "out" / "fused")
        assert not (tmp_path / "out").exists()
    # So is an output over an input.
    for models in ([path], [path, path.with_name("copy.onnx")]):
        with pytest.raises(onnx_fuse.UsageError, match=f"^{path}: refusing to overwrite the input {path} with the"):
            onnx_fuse.optimize_files(models, tmp_path)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    failed = onnx_fuse.optimize_files(garbage, tmp_path / "out" / "fused")
    assert failed.models[0].status == "failed" and not (tmp_path / "out").exists()
    written = onnx_fuse.optimize_files(path, tmp_path / "out" / "fused")
    assert written.models[0].output == str(tmp_path / "out" / "fused" / "cnn.onnx")


def test_errors_are_exceptions_with_the_message_and_the_exit_codes_meaning(tmp_path: Path) -> None:
    with pytest.raises(onnx_fuse.InvalidModelError) as garbage:
        onnx_fuse.optimize(b"this is not a model")
    assert garbage.value.exit_code == 2
    assert garbage.value.meaning == "invalid or unsupported model"
    assert str(garbage.value).startswith("<model>: ")
    assert isinstance(garbage.value, ValueError) and isinstance(garbage.value, onnx_fuse.OnnxFuseError)

    missing = tmp_path / "missing.onnx"
    with pytest.raises(onnx_fuse.ModelIOError) as io_error:
        onnx_fuse.optimize(missing)
    assert io_error.value.exit_code == 3 and isinstance(io_error.value, OSError)
    assert str(io_error.value) == f"{missing}: open failed: No such file or directory"
    assert io_error.value.meaning.startswith("I/O error")

    with pytest.raises(onnx_fuse.UsageError) as unknown:
        onnx_fuse.optimize(small_cnn(), only=["no-such-rule"])
    assert str(unknown.value) == "there is no rule named 'no-such-rule'"
    assert unknown.value.exit_code == 1 and unknown.value.meaning.startswith("usage error")

    # The output is never the input, and nothing is written on failure.
    path = tmp_path / "cnn.onnx"
    onnx.save(small_cnn(), str(path))
    before = digest(path)
    with pytest.raises(onnx_fuse.UsageError, match="refusing to overwrite the input") as same:
        onnx_fuse.optimize(path, output=path)
    # The advice in the API's words, not the command's.
    assert "--in-place" not in str(same.value) and "in_place=True" in str(same.value)
    assert digest(path) == before
    with pytest.raises(onnx_fuse.ModelIOError):
        onnx_fuse.optimize(path, output=tmp_path / "no-such-folder" / "out.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn.onnx"]

    with pytest.raises(TypeError, match="expected an onnx.ModelProto, bytes or a path, not int"):
        onnx_fuse.optimize(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only= is empty"):
        onnx_fuse.optimize(small_cnn(), only=[])
    with pytest.raises(ValueError, match="verify= is empty"):
        onnx_fuse.optimize(small_cnn(), verify=[])
    with pytest.raises(TypeError, match=r"^rules: expected a path, rule text or RuleText, not bytes \(decode"):
        onnx_fuse.optimize(small_cnn(), rules=DIV_BY_CONSTANT.encode())  # type: ignore[arg-type]


def test_paths_that_begin_with_a_dash_are_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Relative names such as "-x.onnx" reach the command as paths, never as options: the
    # model, the output, rule files, the models of a batch and of check_rules.
    monkeypatch.chdir(tmp_path)
    onnx.save(small_cnn(), "-x.onnx")
    shutil.copy(EXAMPLE_RULES, "-extra.rules")
    model, report = onnx_fuse.optimize("-x.onnx")
    assert report.input == "-x.onnx" and report.nodes_after < report.nodes_before
    _, written = onnx_fuse.optimize("-x.onnx", output="-out.onnx", rules="-extra.rules", builtin=False)
    assert written.output == "-out.onnx" and Path("-out.onnx").exists()
    assert written.rules_fired == {"fold-conv-batchnorm": 2}
    assert [rule.name for rule in onnx_fuse.list_rules("-extra.rules", builtin=False)][0] == "fold-conv-batchnorm"
    assert onnx_fuse.check_rules("-extra.rules", models=["-x.onnx"], builtin=False).ok
    batch = onnx_fuse.optimize_files(["-x.onnx", "-out.onnx"], "-fused")
    assert [(m.input, m.output, m.status) for m in batch.models] == [
        ("-x.onnx", "-fused/-x.onnx", "written"), ("-out.onnx", "-fused/-out.onnx", "written")]
    alone = onnx_fuse.optimize_files("-x.onnx", "-alone")
    assert alone.models[0].output == "-alone/-x.onnx"
    assert Path("-alone/-x.onnx").read_bytes() == Path("-fused/-x.onnx").read_bytes()


def test_errors_survive_pickling_and_process_pools() -> None:
    # A worker of a ProcessPoolExecutor sends its exception back pickled: an error that cannot
    # be rebuilt breaks the whole pool (BrokenProcessPool) instead of raising it.
    import copy
    import pickle

    with pytest.raises(onnx_fuse.InvalidModelError) as raised:
        onnx_fuse.optimize(b"this is not a model")
    for copied in (pickle.loads(pickle.dumps(raised.value)), copy.copy(raised.value)):
        assert type(copied) is onnx_fuse.InvalidModelError
        assert (str(copied), copied.exit_code, copied.meaning, copied.errors, copied.stderr) == (
            str(raised.value), 2, raised.value.meaning, raised.value.errors, raised.value.stderr)
    with pytest.raises(onnx_fuse.ModelIOError) as io_error:
        onnx_fuse.optimize("no-such-model.onnx")
    assert str(pickle.loads(pickle.dumps(io_error.value))) == "no-such-model.onnx: open failed: No such file or directory"
    with concurrent.futures.ProcessPoolExecutor(1) as pool:
        with pytest.raises(onnx_fuse.InvalidModelError, match="^<model>: "):
            pool.submit(onnx_fuse.optimize, b"this is not a model").result(timeout=60)


def test_an_interrupted_call_stops_the_command_and_leaves_no_files(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # A KeyboardInterrupt that reaches Python alone (Jupyter's interrupt, a signal to this
    # process) asks the command to stop with SIGTERM, on which it removes the temporary files
    # of its outputs, rather than SIGKILL, which would leave them: a stand-in for the binary
    # that holds such a file shows it. The call's private folder is removed too.
    import signal
    import threading
    import time

    marker = tmp_path / ".out.onnx.tmp-1"
    stand_in = tmp_path / "onnx-fuse"
    stand_in.write_text(f"""#!/bin/sh
: > '{marker}'
trap 'kill $! 2>/dev/null; rm -f "{marker}"; exit 143' TERM
sleep 30 &
wait
""")
    stand_in.chmod(0o755)
    monkeypatch.setenv("ONNX_FUSE_BINARY", str(stand_in))
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))

    def interrupt() -> None:
        for _ in range(500):
            if marker.exists():
                break
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        onnx_fuse.optimize(small_cnn().SerializeToString(), output=tmp_path / "out.onnx")
    assert time.monotonic() - started < 8
    assert not marker.exists(), "the command was killed before it could remove its temporary file"
    assert list(private.iterdir()) == []


def test_messages_name_what_was_passed_in_memory_under_a_long_tmpdir(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # The command shortens words of more than 200 characters (…(N characters)…): the private
    # folder's paths under a long TMPDIR (a build sandbox's) must still be shown as names.
    long = tmp_path.joinpath(*["sandbox-" + "x" * 40] * 5)
    long.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(long))
    with pytest.raises(onnx_fuse.InvalidModelError) as garbage:
        onnx_fuse.optimize(b"this is not a model")
    assert str(garbage.value).startswith("<model>: ") and "sandbox-" not in garbage.value.stderr
    with pytest.raises(onnx_fuse.UsageError) as broken:
        onnx_fuse.optimize(small_cnn(), rules=["rule a {", onnx_fuse.RuleText("rule b {", "b.rules")])
    assert [error.split(":")[0] for error in broken.value.errors] == ["<rules 1>", "b.rules"]
    _, report = onnx_fuse.optimize(small_cnn())
    assert report.messages[0].startswith("onnx-fuse: <model> -> <output>: ")
    with pytest.raises(onnx_fuse.UsageError, match="^<rules 1>:1:"):
        onnx_fuse.check_rules("rule a {", models=[small_cnn()])


def test_a_rule_that_changes_the_numbers_raises_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.onnx"
    with pytest.raises(onnx_fuse.VerificationError) as failure:
        onnx_fuse.optimize(small_cnn(), rules=WRONG_FOLD, builtin=False, verify=True, output=target)
    error = failure.value
    assert error.exit_code == 5
    assert str(error).startswith("<model>: rule 'drop-batchnorm-shift' at node 'bn")
    assert str(error).endswith("; nothing written") or " (and " in str(error)
    assert error.report is not None and error.report.output is None
    assert error.report.verification["failures"][0]["rule"] == "drop-batchnorm-shift"
    assert not target.exists()


def test_rule_file_errors_name_the_text_and_the_line() -> None:
    text = "rule broken {\n  match { y = Relu(x }\n  replace { y = x }\n}\n"
    with pytest.raises(onnx_fuse.UsageError) as broken:
        onnx_fuse.optimize(small_cnn(), rules=[EXAMPLE_RULES, text], builtin=False)
    assert all(line.startswith("<rules 2>:") for line in broken.value.errors), broken.value.errors
    assert broken.value.errors[0].startswith("<rules 2>:2:")
    with pytest.raises(onnx_fuse.UsageError) as named:
        onnx_fuse.list_rules(rules=onnx_fuse.RuleText(text, "mine.rules"))
    assert named.value.errors[0].startswith("mine.rules:2:")


# External data


def test_models_with_external_data_work_by_path(tmp_path: Path) -> None:
    source = tmp_path / "in" / "cnn.onnx"
    source.parent.mkdir()
    # conv3's weight stays as it is, and so stays external; the folded weights are new.
    onnx.save(small_cnn(tail=True), str(source), save_as_external_data=True, all_tensors_to_one_file=True,
              location="cnn.weights", size_threshold=0)
    inputs = {path.name: digest(path) for path in source.parent.iterdir()}
    assert set(inputs) == {"cnn.onnx", "cnn.weights"}

    model, report = onnx_fuse.optimize(source, verify="model")
    assert op_types(model) == ["Conv", "Relu", "Conv", "Add", "Conv"]
    assert report.verification["whole_model"]["outcome"] == "agree"
    # Returned with the weights in it: the temporary files are gone.
    assert all(t.data_location == TensorProto.DEFAULT and t.raw_data for t in model.graph.initializer)
    assert_same_outputs(small_cnn(tail=True), model, image())

    target = tmp_path / "out" / "cnn.onnx"
    target.parent.mkdir()
    none, written = onnx_fuse.optimize(source, output=target)
    assert none is None
    assert sorted(path.name for path in target.parent.iterdir()) == ["cnn.onnx", "cnn.onnx.data"]
    assert_same_outputs(small_cnn(tail=True), target, image())
    assert {path.name: digest(path) for path in source.parent.iterdir()} == inputs


# Rule text and rule checks


def test_a_model_in_memory_whose_data_is_not_loaded_says_so(tmp_path: Path) -> None:
    # Its data files cannot be found from the private folder: the message says what to do
    # instead of naming a data file as if the caller's folder lacked it.
    path = tmp_path / "cnn.onnx"
    onnx.save(small_cnn(), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="cnn.onnx.data", size_threshold=0)
    unloaded = onnx.load(str(path), load_external_data=False)
    with pytest.raises(ValueError, match="^the ModelProto's tensor 'w1' is in the external data file 'cnn.onnx.data', "
                                         "which is not loaded: "):
        onnx_fuse.optimize(unloaded)
    with pytest.raises(ValueError, match="which is not loaded"):
        onnx_fuse.check_rules(EXAMPLE_RULES, models=[unloaded], builtin=False)
    with pytest.raises(onnx_fuse.ModelIOError) as from_bytes:
        onnx_fuse.optimize(path.read_bytes())
    assert str(from_bytes.value).startswith("cnn.onnx.data: open failed: No such file or directory (a model passed in "
                                            "memory cannot read external data files beside it: pass its path")
    assert onnx_fuse.optimize(onnx.load(str(path))).report.nodes_after < 6


def test_rule_text_applies_lists_and_checks() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    divisor = numpy_helper.from_array(np.array([2.0, 4.0, 8.0], np.float32), "c")
    graph = helper.make_graph([helper.make_node("Div", ["x", "c"], ["y"], name="div")], "div", [x], [y], [divisor])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)

    after, report = onnx_fuse.optimize(model, rules=DIV_BY_CONSTANT, builtin=False, verify=True)
    assert op_types(after) == ["Mul"]
    assert report.rules_fired == {"div-by-constant": 1}
    feeds = {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}
    assert_same_outputs(model, after, feeds, rtol=1e-6)

    rules = onnx_fuse.list_rules(rules=DIV_BY_CONSTANT, builtin=False)
    assert [(rule.name, rule.file) for rule in rules] == [("div-by-constant", "<rules 1>")]
    assert rules[0].summary == "Replace a division by a constant with a multiplication by its reciprocal."
    assert rules[0].text.startswith("rule div-by-constant {")

    check = onnx_fuse.check_rules(DIV_BY_CONSTANT, models=[model, FIXTURES / "conv_bn.onnx"])
    assert check.ok and check.files == ["<rules 1>"] and check.rules == ["div-by-constant"]
    on_div, on_conv = check.models
    assert on_div.model == "<model 1>" and on_conv.model == str(FIXTURES / "conv_bn.onnx")
    row = on_div.rules[0]
    assert (row.rule, row.candidates, row.fired, row.verified, row.not_verified) == ("div-by-constant", 1, 1, 1, 0)
    assert row.worst_error is not None and row.worst_error < 1e-6
    assert on_div.whole_model["outcome"] == "agree"
    assert on_conv.rules[0].fired == 0 and on_conv.rules[0].worst_error is None


def test_check_rules_raises_when_a_rule_changes_the_numbers() -> None:
    with pytest.raises(onnx_fuse.VerificationError) as failure:
        onnx_fuse.check_rules(onnx_fuse.RuleText(WRONG_FOLD, "wrong.rules"), models=[small_cnn()])
    check = failure.value.report
    assert isinstance(check, onnx_fuse.RuleCheck) and not check.ok
    assert check.refusals[0].startswith("<model 1>: rule 'drop-batchnorm-shift' at node 'bn")
    assert check.models[0].failures[0]["rule"] == "drop-batchnorm-shift"


def test_the_builtin_rules_are_listed() -> None:
    rules = onnx_fuse.list_rules()
    names = [rule.name for rule in rules]
    assert "fold-conv-batchnorm" in names and "fold-constants" in names
    assert len(names) == len(set(names))
    assert all(rule.file.startswith("builtin:") and rule.summary for rule in rules)
    with_file = onnx_fuse.list_rules(rules=EXAMPLE_RULES, builtin=False)
    assert [rule.file for rule in with_file] == [str(EXAMPLE_RULES)] * 2


# The command


def test_the_command_is_installed() -> None:
    command = Path(sys.executable).parent / "onnx-fuse"
    assert command.exists()
    version = subprocess.run([str(command), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip() == f"onnx-fuse {onnx_fuse.__version__}"
    invalid = subprocess.run([str(command), str(FIXTURES / "invalid")], capture_output=True, text=True)
    assert invalid.returncode != 0 and invalid.stderr.startswith("onnx-fuse: error: ")
    module = subprocess.run([sys.executable, "-m", "onnx_fuse", "rules", "list"], capture_output=True, text=True)
    assert module.returncode == 0 and "fold-conv-batchnorm" in module.stdout


def test_exit_codes_pass_through_the_command(tmp_path: Path) -> None:
    command = Path(sys.executable).parent / "onnx-fuse"
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff\xff\xff")
    result = subprocess.run([str(command), str(bad)], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"onnx-fuse: error: {bad}: ")
    assert not (tmp_path / "bad.fused.onnx").exists()


# Without onnx


def test_bytes_and_paths_work_without_onnx(tmp_path: Path) -> None:
    wheel = os.environ.get("ONNX_FUSE_WHEEL")
    if not wheel:
        pytest.skip("ONNX_FUSE_WHEEL is not set (scripts/test-python sets it)")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The wheel alone: no onnx, no network.
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                    "--disable-pip-version-check", wheel], check=True)
    script = f"""
import onnx_fuse, sys
try:
    import onnx
    sys.exit("onnx is installed")
except ImportError:
    pass
data = open({str(FIXTURES / 'conv_bn.onnx')!r}, "rb").read()
folded, report = onnx_fuse.optimize(data)
assert isinstance(folded, bytes) and report.rules_fired == {{"fold-conv-batchnorm": 1}}, report
none, report = onnx_fuse.optimize({str(FIXTURES / 'conv_bn.onnx')!r}, output={str(tmp_path / 'out.onnx')!r})
assert none is None and open({str(tmp_path / 'out.onnx')!r}, "rb").read() == folded
try:
    onnx_fuse.optimize({str(FIXTURES / 'conv_bn.onnx')!r})
    sys.exit("a ModelProto result without onnx")
except ImportError as error:
    assert "pip install 'onnx-fuse[onnx]'" in str(error), error
print("ok")
"""
    result = subprocess.run([str(python), "-c", script], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr


# Opt-in: a real PyTorch export


@pytest.mark.skipif(os.environ.get("ONNX_FUSE_TORCH") != "1", reason="set ONNX_FUSE_TORCH=1 (needs torch and torchvision)")
@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_a_torchvision_resnet50_export_folds_with_the_same_outputs(tmp_path: Path, exporter: str) -> None:
    import torch
    import torchvision

    torch.manual_seed(0)
    network = torchvision.models.resnet50(weights=None).eval()
    # Statistics a trained network would have, so that folding them is not a no-op.
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    path = tmp_path / "resnet50.onnx"
    # Recent exporters fold BatchNormalization themselves in eval mode unless told not to (the
    # dynamo one's optimize, the TorchScript one's constant folding): as an export for training
    # or from an older torch has it.
    options = {"dynamo": True, "optimize": False} if exporter == "dynamo" else {"dynamo": False, "do_constant_folding": False}
    torch.onnx.export(network, (torch.randn(1, 3, 224, 224),), str(path), opset_version=18,
                      input_names=["x"], output_names=["logits"], **options)
    before = onnx.load(str(path))
    assert "BatchNormalization" in op_types(before)
    after, report = onnx_fuse.optimize(onnx.load(str(path)))
    assert "BatchNormalization" not in op_types(after)
    assert report.rules_fired.get("fold-conv-batchnorm") == 53
    assert report.nodes_after < report.nodes_before
    feeds = {"x": np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)}
    assert_same_outputs(before, after, feeds, rtol=1e-3, atol=1e-4)
