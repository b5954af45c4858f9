"""A ResNet-50-shaped ONNX model (torchvision layout: Conv -> BatchNormalization -> Relu, bottleneck blocks
[3, 4, 6, 3], about 100 MB of float weights), random weights, BN left unfolded. For benchmarks.

usage: python gen_resnet.py OUT.onnx [--width W]   (W scales every channel count; 1.0 is ResNet-50)

175 nodes at every width, 53 of them BatchNormalization after a Conv. (Copied from the shared
bench generators; the output is byte-identical to theirs.)
"""
import argparse
import numpy as np
import onnx
from onnx import TensorProto, helper
from cnn_parts import Builder

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("out")
p.add_argument("--width", type=float, default=1.0)
a = p.parse_args()
if not a.width > 0:
    p.error("--width must be positive")
builder = Builder()
rng, nodes, inits, fresh, tensor = builder.rng, builder.nodes, builder.inits, builder.fresh, builder.tensor


def conv_bn(x, cin, cout, k, stride, relu=True):
    w = tensor(fresh("w"), rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k)))
    c = fresh("conv")
    nodes.append(helper.make_node("Conv", [x, w], [c], kernel_shape=[k, k], strides=[stride, stride],
                                  pads=[k // 2] * 4))
    y = builder.batchnorm(c, cout)
    if not relu:
        return y
    r = fresh("relu")
    nodes.append(helper.make_node("Relu", [y], [r]))
    return r


def ch(n):
    return max(8, int(n * a.width))


x = conv_bn("input", 3, ch(64), 7, 2)
nodes.append(helper.make_node("MaxPool", [x], ["pool"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
x, cin = "pool", ch(64)
for blocks, width, stride in ((3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2)):
    for i in range(blocks):
        s = stride if i == 0 else 1
        y = conv_bn(x, cin, ch(width), 1, 1)
        y = conv_bn(y, ch(width), ch(width), 3, s)
        y = conv_bn(y, ch(width), ch(width) * 4, 1, 1, relu=False)
        shortcut = conv_bn(x, cin, ch(width) * 4, 1, s, relu=False) if i == 0 else x
        add, out = fresh("add"), fresh("relu")
        nodes += [helper.make_node("Add", [y, shortcut], [add]), helper.make_node("Relu", [add], [out])]
        x, cin = out, ch(width) * 4
nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
nodes.append(helper.make_node("Flatten", ["gap"], ["flat"]))
fc_w = tensor("fc_w", rng.standard_normal((1000, cin)) * 0.01)
fc_b = tensor("fc_b", np.zeros(1000))
nodes.append(helper.make_node("Gemm", ["flat", fc_w, fc_b], ["output"], transB=1))
graph = helper.make_graph(nodes, "resnet50_shaped", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1000])], inits)
onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), a.out)
