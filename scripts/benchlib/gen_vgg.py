"""A VGG-16-BN-shaped ONNX model (torchvision's vgg16_bn layout: thirteen Conv 3x3 -> BatchNormalization
-> Relu with five MaxPools, then three Gemm layers; about 550 MB of float weights), random weights, BN
left unfolded. For benchmarks.

usage: python gen_vgg.py OUT.onnx [--width W] [--external]

44 nodes, 13 of them BatchNormalization after a Conv; the classifier's 25088 x 4096 weight (411 MB)
is not touched by any fold, so the model also measures how a large unchanged tensor is carried.
--width W multiplies every layer's width (the weights grow about W^2 times: W 2.15 makes 2.5 GB);
--external stores the weights in OUT.onnx.data beside the model, as ONNX external data.
"""
import argparse
import numpy as np
import onnx
from onnx import TensorProto, helper
from cnn_parts import Builder

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("out")
p.add_argument("--width", type=float, default=1.0, help="multiply every layer's width by this")
p.add_argument("--external", action="store_true", help="store the weights as external data")
a = p.parse_args()


def wide(channels):
    return max(1, int(round(channels * a.width)))


builder = Builder()
rng, nodes, inits, fresh, tensor = builder.rng, builder.nodes, builder.inits, builder.fresh, builder.tensor


def conv_bn_relu(x, cin, cout):
    w = tensor(fresh("w"), rng.standard_normal((cout, cin, 3, 3), dtype=np.float32) * np.float32(np.sqrt(2.0 / (cin * 9))))
    b = tensor(fresh("b"), np.zeros(cout))
    c = fresh("conv")
    nodes.append(helper.make_node("Conv", [x, w, b], [c], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    y = builder.batchnorm(c, cout)
    r = fresh("relu")
    nodes.append(helper.make_node("Relu", [y], [r]))
    return r


x, cin = "input", 3
for item in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
    if item == "M":
        pooled = fresh("pool")
        nodes.append(helper.make_node("MaxPool", [x], [pooled], kernel_shape=[2, 2], strides=[2, 2]))
        x = pooled
    else:
        x, cin = conv_bn_relu(x, cin, wide(item)), wide(item)
nodes.append(helper.make_node("Flatten", [x], ["flat"]))
x, width = "flat", cin * 7 * 7
for index, out in enumerate((wide(4096), wide(4096), 1000)):
    w = tensor(f"fc{index}_w", rng.standard_normal((out, width), dtype=np.float32) * np.float32(0.01))
    b = tensor(f"fc{index}_b", np.zeros(out))
    y = "output" if out == 1000 else fresh("fc")
    nodes.append(helper.make_node("Gemm", [x, w, b], [y], transB=1))
    if out != 1000:
        r = fresh("relu")
        nodes.append(helper.make_node("Relu", [y], [r]))
        y = r
    x, width = y, out
graph = helper.make_graph(nodes, "vgg16_bn_shaped", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1000])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
if a.external:
    import os
    onnx.save(model, a.out, save_as_external_data=True, all_tensors_to_one_file=True,
              location=os.path.basename(a.out) + ".data", size_threshold=1024)
else:
    onnx.save(model, a.out)
