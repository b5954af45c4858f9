"""A synthetic scale model for benchmarks: BLOCKS blocks of Conv(1x1, CHANNELS channels) ->
BatchNormalization -> Relu on a 1 x CHANNELS x 4 x 4 input (3 x BLOCKS nodes, small weights,
seeded), opset 17, IR version 8. Every BatchNormalization follows a Conv, so all of them can fold.

usage: python gen_chain.py BLOCKS CHANNELS OUT.onnx

`gen_chain.py 20000 8` is the 60,000-node chain of BENCHMARKS.md. (Copied from the shared bench
generators; the output is byte-identical to theirs.)
"""
import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("blocks", type=int)
p.add_argument("channels", type=int)
p.add_argument("out")
a = p.parse_args()
if a.blocks < 1 or a.channels < 1:
    p.error("BLOCKS and CHANNELS must be positive")
n, c = a.blocks, a.channels

rng = np.random.default_rng(0)
nodes, inits = [], []
x = "input"
for i in range(n):
    w, s, b, m, v = (f"w{i}", f"s{i}", f"b{i}", f"m{i}", f"v{i}")
    inits += [numpy_helper.from_array((rng.standard_normal((c, c, 1, 1)) * (1 / np.sqrt(c))).astype(np.float32), w),
              numpy_helper.from_array(rng.uniform(0.5, 1.5, c).astype(np.float32), s),
              numpy_helper.from_array(rng.uniform(-.2, .2, c).astype(np.float32), b),
              numpy_helper.from_array(rng.uniform(-.5, .5, c).astype(np.float32), m),
              numpy_helper.from_array(rng.uniform(.5, 2, c).astype(np.float32), v)]
    nodes += [helper.make_node("Conv", [x, w], [f"c{i}"], kernel_shape=[1, 1]),
              helper.make_node("BatchNormalization", [f"c{i}", s, b, m, v], [f"n{i}"], epsilon=1e-5),
              helper.make_node("Relu", [f"n{i}"], [f"r{i}"])]
    x = f"r{i}"
graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, c, 4, 4])],
                          [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, c, 4, 4])], inits)
onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), a.out)
