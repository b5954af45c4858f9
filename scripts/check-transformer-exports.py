#!/usr/bin/env python3
"""Compare onnx-fuse's built-in rules with the standard ONNX optimizers on PyTorch exports of
transformers, LoRA models and vision networks (a manual check, not part of the test suite: it
needs torch, torchvision, transformers, peft, onnx, onnxruntime and, for --peers, onnxslim,
onnxoptimizer, onnxscript and optionally onnxsim).

Each case is a small model built from a configuration with seeded random weights (nothing is
downloaded): a tiny GPT-2, BERT and Llama from transformers, torch.nn.TransformerEncoder, peft LoRA
adapters on BERT and on an MLP (their B matrices randomized, so that they matter), a tiny
torchvision ViT, Swin and ConvNeXt, and ResNet-18 and MobileNetV3-small with BatchNormalization
statistics far from the identity. Inputs have a dynamic batch dimension (text models a dynamic
sequence too, the CNNs a dynamic height and width). Every case is exported with

    ts17-fold     the TorchScript exporter (dynamo=False), opset 17, do_constant_folding=True
    ts17-nofold   the same with do_constant_folding=False
    ts14-fold     (some cases) the same at opset 14
    ts14-nofold
    ts20-fold     the same at opset 20 (the TorchScript exporter's last; Gelu exists there)
    dynamo-noopt  the dynamo exporter (dynamo=True), its default opset, optimize=False
    dynamo-opt    the same export after the exporter's own optimizer (ONNXProgram.optimize(), which
                  is what optimize=True runs)

(an export the exporter refuses is skipped and reported; a model whose IR version onnxruntime
refuses is saved with ir_version 10). Then, for each export MODEL,

    ONNX_FUSE MODEL -o OUT --report REPORT --verify=model

runs with the built-in rules only, and an export passes when

  * onnx-fuse exits 0 (--verify=model: every rewrite was checked with the reference kernels and
    none changed the numbers, and the whole models agree where the kernels can run them; the
    worst error per rule over all exports is printed at the end) and
    onnx.checker.check_model(OUT, full_check=True) passes;
  * MODEL and OUT, run in onnxruntime with its graph optimizations off, agree on every output at
    two input shapes (e.g. batch 1 and 3, sequence 5 and 9) on seeded random inputs (float:
    rtol 1e-4, atol 1e-5; other types exactly);
  * onnx-fuse run on OUT changes nothing, byte for byte (idempotence);
  * for the CNNs' dynamo exports, no BatchNormalization is left in OUT;
  * no written-out normalization or activation is left that the opset has an operator for: a
    LayerNorm (a Sub of a ReduceMean of the same value) from opset 17, a Gelu (an Erf, or a Pow by
    3 under a Tanh) from opset 20, an RMSNorm (a Sqrt of a ReduceMean of a square, not a LayerNorm)
    from opset 23;
  * in the LoRA cases, no adapter is left: no initializer of OUT is named after peft's lora_A or
    lora_B.

(The TorchScript exporter bakes the example's sequence length into nn.MultiheadAttention's
Reshapes; an export that onnxruntime cannot run at the two shapes is checked at the example's
shape only, with a note.) When the second run does change the output, onnx-fuse is run again until
nothing changes (8 runs at most); the table's "fixpoint" column gives the nodes left then, and that
last output must give the same results too.

With --peers, the standard-ONNX optimizers run on the same MODEL, each in a child process of its
own (a crash or a timeout is recorded, not fatal): onnxslim.slim, onnxoptimizer.optimize (its
default passes), onnxscript.optimizer.optimize, onnxruntime's offline optimizer at
ORT_ENABLE_BASIC, and onnxsim.simplify when installed. Their results are run at the same two
shapes; one whose outputs differ from MODEL's is marked `!` and does not count as the best peer.

The table gives, per export: nodes before (main graph and subgraphs), after onnx-fuse, at its
fixpoint, after the best peer (which), after each peer, onnx-fuse's time (as its report gives it),
and the verdicts; then a summary (in how many exports onnx-fuse leaves no more nodes than the best
peer) and, where it leaves more, the operators it keeps more of than the best peer (and those of
which the peer keeps more). Everything goes to OUTDIR/results.json too; the models to
OUTDIR/models, onnx-fuse's outputs and reports to OUTDIR/fused, the peers' to OUTDIR/peers.

    "$VENV/bin/python" scripts/check-transformer-exports.py ONNX_FUSE OUTDIR [--cases a,b] [--peers]

(ONNX_FUSE: the onnx-fuse binary, e.g. from `swift build -c release --scratch-path DIR`; VENV: a
venv with the packages above; OUTDIR: any folder outside the repository.) Other options:
--variants ts17-fold,dynamo-noopt (a subset), --reuse (keep exports already in OUTDIR), --list.
The whole set takes a few minutes. Exit status 1 when any export fails a check above.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import select
import subprocess
import sys
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

RTOL, ATOL = 1e-4, 1e-5
PEER_TIMEOUT = 600  # seconds
PEERS = ["onnxslim", "onnxoptimizer", "onnxscript", "ort-basic", "onnxsim"]


# ---------------------------------------------------------------------------------------------
# Peers (each in a child process that imports it once: `python THIS --peer-worker NAME`, reading
# one JSON request a line, {"source": MODEL, "destination": OUT}, answering one JSON line)


def run_peer(name: str, source: str, destination: str) -> dict:
    """Runs one peer on `source`, writes its result to `destination`; returns its time."""
    model = onnx.load(source)
    start = time.perf_counter()
    if name == "onnxslim":
        import onnxslim

        result = onnxslim.slim(model)
    elif name == "onnxoptimizer":
        import onnxoptimizer

        result = onnxoptimizer.optimize(model)
    elif name == "onnxscript":
        import onnxscript.optimizer

        result = onnxscript.optimizer.optimize(model)
    elif name == "ort-basic":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = destination
        ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        result = None
    elif name == "onnxsim":
        import onnxsim

        result, _ = onnxsim.simplify(model)
    else:
        raise ValueError(f"unknown peer {name}")
    seconds = time.perf_counter() - start
    if result is not None:
        onnx.save(result, destination)
    return {"seconds": seconds}


def peer_available(name: str) -> bool:
    module = {"onnxslim": "onnxslim", "onnxoptimizer": "onnxoptimizer", "onnxscript": "onnxscript",
              "ort-basic": "onnxruntime", "onnxsim": "onnxsim"}[name]
    try:
        __import__(module)
        return True
    except Exception:  # noqa: BLE001 - not installed or broken: left out
        return False


def peer_worker(name: str) -> None:
    """The child process's loop. What the peer prints goes to stderr; answers go to stdout."""
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer = run_peer(name, request["source"], request["destination"])
        except Exception as e:  # noqa: BLE001 - recorded, not fatal
            answer = {"error": first_line(e)}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


class Peer:
    """A peer's worker process, restarted after a crash or a timeout."""

    def __init__(self, name: str, log: Path):
        self.name, self.log, self.process = name, log, None

    def run(self, source: Path, destination: Path) -> dict:
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen([sys.executable, __file__, "--peer-worker", self.name],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=open(self.log, "a"), text=True)
        self.process.stdin.write(json.dumps({"source": str(source), "destination": str(destination)}) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], PEER_TIMEOUT)
        if not ready:
            self.stop()
            return {"error": f"timeout after {PEER_TIMEOUT} s"}
        line = self.process.stdout.readline()
        if not line:  # the process died
            code = self.process.wait()
            self.process = None
            lines = [x for x in self.log.read_text(errors="replace").splitlines() if x.strip()]
            return {"error": f"crashed (exit {code})" + (f": {lines[-1][:200]}" if lines else "")}
        return json.loads(line)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


# ---------------------------------------------------------------------------------------------
# Cases

# Values of the symbolic dimensions: [at export, first check, second check].
SIZES = {"batch": (2, 1, 3), "seq": (7, 5, 9), "height": (72, 64, 96), "width": (72, 80, 64)}
VOCAB = 1000


@dataclasses.dataclass
class Input:
    name: str
    dims: tuple  # ints and names of SIZES
    kind: str = "float"  # float | ids | mask | types


@dataclasses.dataclass
class Case:
    name: str
    family: str  # text | vision | cnn | mlp
    build: Callable[[], "object"]  # -> torch.nn.Module whose forward takes the inputs in order
    inputs: list[Input]
    opset14: bool = False


def concrete(dims: tuple, which: int) -> list[int]:
    return [d if isinstance(d, int) else SIZES[d][which] for d in dims]


def make_feed(inputs: list[Input], which: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feed = {}
    for spec in inputs:
        shape = concrete(spec.dims, which)
        if spec.kind == "float":
            feed[spec.name] = rng.standard_normal(shape).astype(np.float32)
        elif spec.kind == "ids":
            feed[spec.name] = rng.integers(0, VOCAB, shape, dtype=np.int64)
        elif spec.kind == "types":
            feed[spec.name] = rng.integers(0, 2, shape, dtype=np.int64)
        elif spec.kind == "mask":  # each row: ones, then padding zeros (at least one 1)
            lengths = rng.integers(1, shape[-1] + 1, shape[:-1])
            feed[spec.name] = (np.arange(shape[-1]) < lengths[..., None]).astype(np.int64)
        else:
            raise ValueError(spec.kind)
    return feed


def randomize(model):
    """Seeded BatchNormalization statistics far from the identity, LoRA B matrices non-zero."""
    import torch
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.1)
    return model.eval()


def text_wrapper(model, with_types: bool = False):
    """A module taking (input_ids, attention_mask[, token_type_ids]) and returning tensors only."""
    from torch import nn

    def tensors(out):
        return tuple(v for v in out.values() if v is not None)

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return tensors(self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False))

    class Encoder(Decoder):
        def forward(self, input_ids, attention_mask, token_type_ids):
            return tensors(self.model(input_ids=input_ids, attention_mask=attention_mask,
                                      token_type_ids=token_type_ids))

    return Encoder() if with_types else Decoder()


def gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=VOCAB, n_positions=128)
    return text_wrapper(GPT2LMHeadModel(config))


def llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=128)
    return text_wrapper(LlamaForCausalLM(config))


def bert_model():
    from transformers import BertConfig, BertModel

    config = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                        vocab_size=VOCAB, max_position_embeddings=128, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    return BertModel(config)


def bert():
    return text_wrapper(bert_model(), with_types=True)


def bert_lora():
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(bert_model(), LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                                         target_modules=["query", "value", "dense"]))
    return text_wrapper(peft_model.base_model.model, with_types=True)


def mlp_lora():
    from peft import LoraConfig, get_peft_model
    from torch import nn

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(32, 64), nn.Linear(64, 64), nn.Linear(64, 10)

        def forward(self, x):
            return self.fc3(torch_relu(self.fc2(torch_relu(self.fc1(x)))))

    peft_model = get_peft_model(MLP(), LoraConfig(r=4, lora_alpha=16, lora_dropout=0.0,
                                                  target_modules=["fc1", "fc2"]))
    return peft_model.base_model.model


def torch_relu(x):
    import torch

    return torch.relu(x)


def transformer_encoder():
    from torch import nn

    layer = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)


def vit():
    from torchvision.models import VisionTransformer

    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128,
                             num_classes=10)


def swin():
    from torchvision.models.swin_transformer import SwinTransformer

    return SwinTransformer(patch_size=[4, 4], embed_dim=32, depths=[2, 2], num_heads=[2, 4],
                           window_size=[7, 7], stochastic_depth_prob=0.0, num_classes=10)


def convnext():
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    settings = [CNBlockConfig(16, 32, 2), CNBlockConfig(32, 64, 2), CNBlockConfig(64, 128, 2),
                CNBlockConfig(128, None, 2)]
    return ConvNeXt(settings, stochastic_depth_prob=0.0, num_classes=10)


def torchvision_model(name: str):
    def build():
        import torchvision

        return getattr(torchvision.models, name)(num_classes=10)

    return build


TEXT = [Input("input_ids", ("batch", "seq"), "ids"), Input("attention_mask", ("batch", "seq"), "mask")]
BERT_INPUTS = TEXT + [Input("token_type_ids", ("batch", "seq"), "types")]
IMAGE_HW = [Input("x", ("batch", 3, "height", "width"))]

CASES = [
    Case("gpt2", "text", gpt2, TEXT, opset14=True),
    Case("llama", "text", llama, TEXT),
    Case("bert", "text", bert, BERT_INPUTS),
    Case("bert_lora", "text", bert_lora, BERT_INPUTS),
    Case("transformer_encoder", "text", transformer_encoder, [Input("src", ("batch", "seq", 64))]),
    Case("mlp_lora", "mlp", mlp_lora, [Input("x", ("batch", 32))]),
    Case("vit", "vision", vit, [Input("x", ("batch", 3, 32, 32))]),
    Case("swin", "vision", swin, [Input("x", ("batch", 3, 112, 112))]),
    Case("convnext", "vision", convnext, IMAGE_HW),
    Case("resnet18", "cnn", torchvision_model("resnet18"), IMAGE_HW, opset14=True),
    Case("mobilenet_v3_small", "cnn", torchvision_model("mobilenet_v3_small"), IMAGE_HW),
]

VARIANTS = ["ts17-fold", "ts17-nofold", "ts14-fold", "ts14-nofold", "ts20-fold", "dynamo-noopt", "dynamo-opt"]


# ---------------------------------------------------------------------------------------------
# Export


def ort_accepts(path: Path) -> str | None:
    """None when onnxruntime loads the model, else its error."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return None
    except Exception as e:  # noqa: BLE001
        return str(e)


def save_for_ort(model: onnx.ModelProto, path: Path) -> None:
    """Saves inline; lowers ir_version to 10 when onnxruntime refuses the exporter's."""
    onnx.save(model, str(path))
    error = ort_accepts(path)
    if error and "IR version" in error and model.ir_version > 10:
        model.ir_version = 10
        onnx.save(model, str(path))


def export_case(case: Case, variants: list[str], folder: Path, reuse: bool) -> dict[str, dict]:
    """Exports `case` in each variant; returns {variant: {"path": ..., "seconds": ...} or {"error": ...}}."""
    import torch

    # The fast path of nn.MultiheadAttention (eval mode, no grad) has no ONNX export.
    torch.backends.mha.set_fastpath_enabled(False)
    torch.manual_seed(0)
    with output_to(folder / "export.log"):
        model = randomize(case.build())
    example_feed = make_feed(case.inputs, 0, seed=0)
    args = tuple(torch.from_numpy(example_feed[i.name]) for i in case.inputs)
    names = [i.name for i in case.inputs]
    dynamic_axes = {i.name: {k: d for k, d in enumerate(i.dims) if isinstance(d, str)} for i in case.inputs}
    results: dict[str, dict] = {}
    for variant in variants:
        if variant.startswith("ts14") and not case.opset14:
            continue
        path = folder / f"{case.name}.{variant}.onnx"
        if reuse and path.exists():
            results[variant] = {"path": path, "seconds": None}
            continue
        if variant in results:
            continue  # dynamo-opt, written with dynamo-noopt
        start = time.perf_counter()
        try:
            with torch.no_grad(), warnings.catch_warnings(), output_to(folder / "export.log"):
                warnings.simplefilter("ignore")
                if variant.startswith("ts"):
                    opset = int(variant[2:4])
                    tmp = folder / f"{case.name}.{variant}.export.onnx"
                    torch.onnx.export(model, args, str(tmp), dynamo=False, opset_version=opset,
                                      do_constant_folding=variant.endswith("-fold"), input_names=names,
                                      dynamic_axes=dynamic_axes, training=torch.onnx.TrainingMode.EVAL)
                    proto = onnx.load(str(tmp))
                    for extra in folder.glob(f"{case.name}.{variant}.export.onnx*"):
                        extra.unlink()
                    save_for_ort(proto, path)
                    results[variant] = {"path": path, "seconds": time.perf_counter() - start}
                else:
                    dims: dict = {}
                    shapes = tuple({k: dims.setdefault(d, torch.export.Dim(d, min=1, max=4096))
                                    for k, d in enumerate(i.dims) if isinstance(d, str)} for i in case.inputs)
                    program = torch.onnx.export(model, args, dynamo=True, optimize=False, input_names=names,
                                                dynamic_shapes=shapes, external_data=False)
                    seconds = time.perf_counter() - start
                    if variant == "dynamo-noopt":
                        save_for_ort(program.model_proto, path)
                        results[variant] = {"path": path, "seconds": seconds}
                    opt_path = folder / f"{case.name}.dynamo-opt.onnx"
                    if "dynamo-opt" in variants and not (reuse and opt_path.exists()):
                        start = time.perf_counter()
                        try:
                            program.optimize()
                            save_for_ort(program.model_proto, opt_path)
                            results["dynamo-opt"] = {"path": opt_path,
                                                     "seconds": seconds + time.perf_counter() - start}
                        except Exception as e:  # noqa: BLE001
                            results["dynamo-opt"] = {"error": first_line(e)}
        except Exception as e:  # noqa: BLE001 - the exporter refused: skip and report
            results[variant] = {"error": first_line(e)}
    return results


@contextlib.contextmanager
def output_to(log: Path):
    """Sends this process's stdout and stderr (file descriptors included) to `log`."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "a") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def first_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else text)[:300]


# ---------------------------------------------------------------------------------------------
# Checks


def decompositions_left(model: onnx.ModelProto, opset: int) -> list[str]:
    """The written-out LayerNorms, Gelus and RMSNorms in the main graph whose fused operator the
    opset has (see the module's docstring), as failure messages."""
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    constants = {i.name for i in graph.initializer} | {n.output[0] for n in graph.node if n.op_type == "Constant"}

    def made_by(value: str, op: str):
        node = producer.get(value)
        return node if node is not None and node.op_type == op else None

    def constant_value(value: str):
        for init in graph.initializer:
            if init.name == value:
                return onnx.numpy_helper.to_array(init)
        node = producer.get(value)
        if node is not None and node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            return onnx.numpy_helper.to_array(node.attribute[0].t)
        return None

    layer_norms = [n for n in graph.node if n.op_type == "Sub" and (m := made_by(n.input[1], "ReduceMean")) is not None
                   and m.input[0] == n.input[0]]
    erfs = [n for n in graph.node if n.op_type == "Erf"]
    cubes = [n for n in graph.node if n.op_type == "Pow" and n.input[1] in constants
             and (v := constant_value(n.input[1])) is not None and v.size == 1 and float(v.reshape(-1)[0]) == 3.0]
    rms = [n for n in graph.node if n.op_type == "Sqrt" and (a := made_by(n.input[0], "Add")) is not None
           and any((m := made_by(x, "ReduceMean")) is not None and (made_by(m.input[0], "Pow") or made_by(m.input[0], "Mul"))
                   and not made_by((made_by(m.input[0], "Pow") or made_by(m.input[0], "Mul")).input[0], "Sub")
                   for x in a.input)]
    failures = []
    if opset >= 17 and layer_norms:
        failures.append(f"{len(layer_norms)} written-out LayerNorm left at opset {opset}")
    if opset >= 20 and (erfs or cubes):
        failures.append(f"{len(erfs) + len(cubes)} written-out Gelu left at opset {opset}")
    if opset >= 23 and rms:
        failures.append(f"{len(rms)} written-out RMSNorm left at opset {opset}")
    return failures


def node_histogram(model: onnx.ModelProto) -> Counter:
    """Nodes by operator, in the main graph and its subgraphs."""
    histogram: Counter = Counter()

    def visit(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            histogram[node.op_type] += 1
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    visit(attribute.g)
                for g in attribute.graphs:
                    visit(g)

    visit(model.graph)
    return histogram


def histogram_of(path: Path) -> Counter:
    return node_histogram(onnx.load(str(path), load_external_data=False))


def session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class Reference:
    """The original model's outputs at the two check shapes, computed once."""

    def __init__(self, case: Case, path: Path):
        self.case = case
        self.sess = session(path)
        self.names = [o.name for o in self.sess.get_outputs()]
        self.note = None
        try:
            self.feeds = [make_feed(case.inputs, which, seed=which) for which in (1, 2)]
            self.outputs = [dict(zip(self.names, self.sess.run(None, feed))) for feed in self.feeds]
        except Exception as e:  # noqa: BLE001 - the export baked in its example's shapes
            self.note = f"the export fails in onnxruntime at other shapes than the example's, checked at that " \
                        f"shape only ({first_line(e)[:160]})"
            self.feeds = [make_feed(case.inputs, 0, seed=which) for which in (1, 2)]
            self.outputs = [dict(zip(self.names, self.sess.run(None, feed))) for feed in self.feeds]

    def compare(self, path: Path) -> str | None:
        """None when `path` gives the same outputs at both shapes, else what differs."""
        try:
            other = session(path)
        except Exception as e:  # noqa: BLE001
            return f"onnxruntime cannot load it: {first_line(e)}"
        other_names = [o.name for o in other.get_outputs()]
        if sorted(other_names) != sorted(self.names):
            return f"outputs {other_names} instead of {self.names}"
        input_names = {i.name for i in other.get_inputs()}
        for which, (feed, reference) in enumerate(zip(self.feeds, self.outputs), start=1):
            shape = {k: list(v.shape) for k, v in feed.items()}
            try:
                got = dict(zip(other_names, other.run(None, {k: v for k, v in feed.items() if k in input_names})))
            except Exception as e:  # noqa: BLE001
                return f"at {shape}: {first_line(e)}"
            for name in self.names:
                a, b = reference[name], got[name]
                if a.shape != b.shape or a.dtype != b.dtype:
                    return f"at {shape}: output {name} is {b.dtype}{list(b.shape)}, expected {a.dtype}{list(a.shape)}"
                if np.issubdtype(a.dtype, np.floating):
                    if not np.allclose(b, a, rtol=RTOL, atol=ATOL, equal_nan=True):
                        worst = float(np.max(np.abs(b.astype(np.float64) - a.astype(np.float64))))
                        return f"at {shape}: output {name} differs by up to {worst:.3g}"
                elif not np.array_equal(a, b):
                    return f"at {shape}: output {name} differs"
        return None


def same_files(a: Path, b: Path) -> bool:
    if a.read_bytes() != b.read_bytes():
        return False
    data_a, data_b = Path(str(a) + ".data"), Path(str(b) + ".data")
    if data_a.exists() or data_b.exists():
        return data_a.exists() and data_b.exists() and data_a.read_bytes() == data_b.read_bytes()
    return True


def fixpoint(binary: str, start: Path, limit: int = 8) -> tuple[Path, int]:
    """Runs onnx-fuse again and again from `start` (the second run's output) until its output no
    longer changes; returns the last output and the number of runs that changed something
    (limit + 1: still changing after `limit` runs)."""
    current = start
    for runs in range(3, limit + 1):
        following = Path(str(start).replace(".again.onnx", f".run{runs}.onnx"))
        if subprocess.run([binary, str(current), "-o", str(following), "-q"], capture_output=True).returncode != 0:
            break
        if same_files(current, following):
            return current, runs - 1
        current = following
    return current, limit + 1


def check_export(case: Case, variant: str, model_path: Path, binary: str, out: Path, peers: list[Peer]) -> dict:
    base = out / "fused" / model_path.stem
    fused, again, report_path = Path(f"{base}.fused.onnx"), Path(f"{base}.again.onnx"), Path(f"{base}.report.json")
    row: dict = {"model": case.name, "variant": variant, "failures": []}
    proto = onnx.load(str(model_path), load_external_data=False)
    row["opset"] = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    row["ir"] = proto.ir_version
    before = node_histogram(proto)
    row["before"], row["hist_before"] = sum(before.values()), dict(before)
    reference = Reference(case, model_path)
    if reference.note:
        row["note"] = reference.note

    start = time.perf_counter()
    run = subprocess.run([binary, str(model_path), "-o", str(fused), "--report", str(report_path), "-q", "--verify=model"],
                         capture_output=True, text=True)
    row["fuse_wall"] = time.perf_counter() - start
    if run.returncode != 0:
        row["failures"].append(f"onnx-fuse exited {run.returncode}: {run.stderr.strip()[:500]}")
        row["after"] = None
    else:
        report = json.loads(report_path.read_text())
        row["fuse_seconds"] = report.get("seconds")
        row["fired"] = {e["rule"]: e["count"] for e in report.get("rules_fired", [])}
        verification = report.get("verification") or {}
        row["verify"] = {r["rule"]: (r["checked"], r["not_verified"], r["worst_error"]) for r in verification.get("rules", [])}
        whole = verification.get("whole_model") or {}
        row["whole_model"] = whole.get("outcome")
        if whole.get("outcome") == "not_run":
            row["verify_note"] = f"whole model not run: {whole.get('reason')}"
        if report.get("reached_rewrite_cap"):
            row["failures"].append("reached the rewrite cap")
        after = histogram_of(fused)
        row["after"], row["hist_after"] = sum(after.values()), dict(after)
        try:
            onnx.checker.check_model(str(fused), full_check=True)
        except Exception as e:  # noqa: BLE001
            try:
                onnx.checker.check_model(str(model_path), full_check=True)
                row["failures"].append(f"checker: {first_line(e)}")
            except Exception:  # noqa: BLE001
                row["checker_note"] = f"checker fails on the export too: {first_line(e)}"
        problem = reference.compare(fused)
        row["numerics"] = problem is None
        if problem:
            row["failures"].append(f"numerics: {problem}")
        rerun = subprocess.run([binary, str(fused), "-o", str(again), "-q"], capture_output=True, text=True)
        row["idempotent"] = rerun.returncode == 0 and same_files(fused, again)
        if not row["idempotent"]:
            detail = f"exit {rerun.returncode} {rerun.stderr.strip()[:300]}" if rerun.returncode else ""
            if rerun.returncode == 0:
                second = histogram_of(again)
                detail = f"{row['after']} -> {sum(second.values())} nodes"
                changed = {op: (after.get(op, 0), second.get(op, 0)) for op in set(after) | set(second)
                           if after.get(op, 0) != second.get(op, 0)}
                if changed:
                    detail += " (" + ", ".join(f"{op} {a}->{b}" for op, (a, b) in sorted(changed.items())) + ")"
            row["failures"].append(f"a second run changed the output: {detail}")
            if rerun.returncode == 0:
                last, row["fixpoint_runs"] = fixpoint(binary, again)
                final = histogram_of(last)
                row["fixpoint"], row["hist_fixpoint"] = sum(final.values()), dict(final)
                problem = reference.compare(last)
                if problem:
                    row["failures"].append(f"numerics after {row['fixpoint_runs']} runs: {problem}")
        if case.family == "cnn" and variant.startswith("dynamo") and after.get("BatchNormalization", 0):
            row["failures"].append(f"{after['BatchNormalization']} BatchNormalization left")
        row["failures"] += decompositions_left(onnx.load(str(fused)), row["opset"] or 0)
        if "lora" in case.name:
            left = [i.name for i in onnx.load(str(fused), load_external_data=False).graph.initializer if "lora_" in i.name]
            if left:
                row["failures"].append(f"{len(left)} LoRA weights left ({left[0]}, ...)")

    row["peers"] = {}
    for peer in peers:
        destination = out / "peers" / f"{model_path.stem}.{peer.name}.onnx"
        destination.unlink(missing_ok=True)
        entry = peer.run(model_path, destination)
        if "error" not in entry and not destination.exists():
            entry = {"error": "wrote nothing"}
        if "error" not in entry:
            histogram = histogram_of(destination)
            entry["nodes"], entry["hist"] = sum(histogram.values()), dict(histogram)
            problem = reference.compare(destination)
            entry["ok"] = problem is None
            if problem:
                entry["problem"] = problem
        row["peers"][peer.name] = entry
    valid = [(e["nodes"], p) for p, e in row["peers"].items() if e.get("ok")]
    if valid:
        row["best_peer_nodes"], row["best_peer"] = min(valid)
    return row


# ---------------------------------------------------------------------------------------------
# Report


def peer_cell(entry: dict | None) -> str:
    if not entry:
        return "-"
    if "error" in entry:
        return "crash" if "timeout" not in entry["error"] else "timeout"
    return f"{entry['nodes']}" + ("" if entry.get("ok") else "!")


def print_table(rows: list[dict], peers: list[str]) -> None:
    head = ["model", "variant", "opset", "before", "onnx-fuse", "fixpoint", "best peer"] + peers \
        + ["fuse s", "numerics", "idempotent"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for row in rows:
        if "error" in row:
            cells = [row["model"], row["variant"], "", "", "export refused", "", ""] + [""] * len(peers) + ["", "", ""]
        else:
            best = f"{row['best_peer_nodes']} ({row['best_peer']})" if "best_peer" in row else "-"
            fuse_after = "-" if row.get("after") is None else str(row["after"])
            numerics = "ok" if row.get("numerics") else "FAIL"
            idempotent = "ok" if row.get("idempotent") else "FAIL"
            seconds = row.get("fuse_seconds") or row.get("fuse_wall")
            fix = fuse_after if "fixpoint" not in row else f"{row['fixpoint']} ({row['fixpoint_runs']} runs)" \
                if row["fixpoint_runs"] <= 8 else f"{row['fixpoint']} (still changing)"
            cells = [row["model"], row["variant"], str(row["opset"]), str(row["before"]), fuse_after, fix, best] \
                + [peer_cell(row["peers"].get(p)) for p in peers] \
                + [f"{seconds:.3f}" if seconds is not None else "-", numerics, idempotent]
        print("| " + " | ".join(cells) + " |")


def histogram_difference(mine: Counter, theirs: Counter) -> str:
    """The operators of which `mine` has more, most first; then those of which `theirs` has more."""
    more = sorted(((mine[op] - theirs[op], op) for op in mine if mine[op] > theirs[op]), reverse=True)
    fewer = sorted(((theirs[op] - mine[op], op) for op in theirs if theirs[op] > mine[op]), reverse=True)
    text = ", ".join(f"{op} {mine[op]} vs {theirs[op]}" for _, op in more)
    if fewer:
        text += "; the peer has more: " + ", ".join(f"{op} {mine[op]} vs {theirs[op]}" for _, op in fewer)
    return text


def print_findings(rows: list[dict], peers: list[str]) -> None:
    checked = [r for r in rows if "error" not in r]
    refused = [r for r in rows if "error" in r]
    if peers:
        compared = [r for r in checked if r.get("after") is not None and "best_peer" in r]
        wins = [r for r in compared if r["after"] <= r["best_peer_nodes"]]
        by_model: dict[str, bool] = {}
        for r in compared:
            by_model[r["model"]] = by_model.get(r["model"], True) and r["after"] <= r["best_peer_nodes"]
        at_fixpoint = [r for r in compared if r.get("fixpoint", r["after"]) <= r["best_peer_nodes"]]
        print(f"\nonnx-fuse leaves <= nodes than the best peer in {len(wins)} of {len(compared)} exports "
              f"({sum(by_model.values())} of {len(by_model)} models in every variant; "
              f"{len(at_fixpoint)} of {len(compared)} exports if run until nothing changes)")
        losses = [r for r in compared if r["after"] > r["best_peer_nodes"]]
        if losses:
            print("\nWhere onnx-fuse leaves more nodes than the best peer (operators onnx-fuse keeps more of):")
        for r in losses:
            theirs = Counter(r["peers"][r["best_peer"]]["hist"])
            print(f"  {r['model']} {r['variant']}: {r['after']} vs {r['best_peer_nodes']} ({r['best_peer']}): "
                  + histogram_difference(Counter(r["hist_after"]), theirs))
            if "hist_fixpoint" in r and r["fixpoint"] > r["best_peer_nodes"]:
                print(f"    after {r['fixpoint_runs']} runs, {r['fixpoint']}: "
                      + histogram_difference(Counter(r["hist_fixpoint"]), theirs))
            elif "hist_fixpoint" in r:
                print(f"    after {r['fixpoint_runs']} runs, {r['fixpoint']}: no more than the peer")
    peer_problems = [(r, p, e) for r in checked for p, e in r.get("peers", {}).items()
                     if "error" in e or not e.get("ok")]
    if peer_problems:
        print("\nPeer crashes and wrong results (not counted):")
        for r, p, e in peer_problems:
            print(f"  {r['model']} {r['variant']} {p}: {e.get('error') or e.get('problem')}")
    if refused:
        print("\nExports refused by the exporter (skipped):")
        for r in refused:
            print(f"  {r['model']} {r['variant']}: {r['error']}")
    totals: dict[str, list] = {}
    for r in checked:
        for rule, (count, not_verified, worst) in r.get("verify", {}).items():
            entry = totals.setdefault(rule, [0, 0, 0, 0.0])
            entry[0] += 1
            entry[1] += count
            entry[2] += not_verified
            entry[3] = max(entry[3], worst if worst is not None else float("inf"))
    if totals:
        print("\n--verify=model, per rule over all exports (exports where it fired, rewrites checked, not verified, worst error):")
        for rule, (exports, count, not_verified, worst) in sorted(totals.items()):
            print(f"  {rule:32} {exports:4} {count:7} {not_verified:5}  {worst:.1e}")
        agreed = sum(1 for r in checked if r.get("whole_model") == "agree")
        print(f"  whole models agree in {agreed} of {len(checked)} exports (the others could not be run by the reference kernels)")
    notes = [(r, r[key]) for r in checked for key in ("note", "checker_note", "verify_note") if key in r]
    if notes:
        print("\nNotes:")
    for r, note in notes:
        print(f"  {r['model']} {r['variant']}: {note}")
    failed = [r for r in checked if r["failures"]]
    if failed:
        print("\nFAILURES:")
        for r in failed:
            for failure in r["failures"]:
                print(f"  {r['model']} {r['variant']}: {failure}")
    print(f"\n{len(checked) - len(failed)} of {len(checked)} exports pass")


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--peer-worker":
        peer_worker(sys.argv[2])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary", nargs="?")
    parser.add_argument("outdir", nargs="?")
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--variants", help="comma-separated export variants (default: all)")
    parser.add_argument("--peers", action="store_true", help="run the standard ONNX optimizers too")
    parser.add_argument("--reuse", action="store_true", help="keep exports already in OUTDIR")
    parser.add_argument("--list", action="store_true", help="list the cases and variants")
    args = parser.parse_args()
    if args.list:
        print("cases:", ", ".join(c.name for c in CASES))
        print("variants:", ", ".join(VARIANTS))
        return 0
    if not args.binary or not args.outdir:
        parser.error("ONNX_FUSE and OUTDIR are required")
    import onnxruntime as ort
    import torch

    out = Path(args.outdir)
    for sub in ("models", "fused", "peers"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    wanted = set(args.cases.split(",")) if args.cases else None
    cases = [c for c in CASES if wanted is None or c.name in wanted]
    if wanted and wanted - {c.name for c in CASES}:
        parser.error(f"unknown cases: {', '.join(sorted(wanted - {c.name for c in CASES}))}")
    variants = args.variants.split(",") if args.variants else VARIANTS
    peers = [p for p in PEERS if peer_available(p)] if args.peers else []
    missing = [p for p in PEERS if args.peers and p not in peers]
    print(f"torch {torch.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}"
          + (f"; peers: {', '.join(peers)}" if peers else "")
          + (f" (not installed: {', '.join(missing)})" if missing else ""), flush=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    workers = [Peer(p, out / "peers" / f"{p}.log") for p in peers]
    rows = []
    for case in cases:
        exports = export_case(case, variants, out / "models", args.reuse)
        for variant in variants:
            if variant not in exports:
                continue
            entry = exports[variant]
            if "error" in entry:
                rows.append({"model": case.name, "variant": variant, "error": entry["error"]})
                print(f"{case.name} {variant}: export refused: {entry['error']}", flush=True)
                continue
            try:
                row = check_export(case, variant, entry["path"], args.binary, out, workers)
            except Exception as e:  # noqa: BLE001 - a broken export: report it, go on
                traceback.print_exc()
                row = {"model": case.name, "variant": variant, "error": f"check crashed: {first_line(e)}"}
                rows.append(row)
                continue
            row["export_seconds"] = entry["seconds"]
            rows.append(row)
            status = "ok" if not row["failures"] else "FAILED: " + "; ".join(row["failures"])
            best = f", best peer {row['best_peer_nodes']} ({row['best_peer']})" if "best_peer" in row else ""
            print(f"{case.name} {variant}: {row['before']} -> {row['after']} nodes{best}, "
                  f"{row['fuse_wall']:.2f} s: {status}", flush=True)
    for worker in workers:
        worker.stop()
    (out / "results.json").write_text(json.dumps(rows, indent=1, default=str))
    print()
    print_table(rows, peers)
    print_findings(rows, peers)
    bad = any(r.get("failures") for r in rows) or any(r.get("error", "").startswith("check crashed") for r in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
