"""One peer optimizer as a whole process, the way a user would call it from Python: load MODEL,
rewrite it with the tool's default entry point, save OUT.

usage: python peer_cli.py TOOL MODEL OUT

TOOL is one of (each runs its library's default pipeline; `python peer_cli.py --list` prints them):
  ort            onnxruntime's offline optimizer: an InferenceSession at ORT_ENABLE_BASIC (the
                 level whose fusions, Conv+BatchNormalization among them, are provider-independent)
                 writing the optimized model to OUT
  onnxsim        onnxsim.simplify(model)
  onnxslim       onnxslim.slim(model)
  onnxoptimizer  onnxoptimizer.optimize(model) (its fuse-and-elimination passes, fuse_bn_into_conv
                 among them)
  onnxscript     onnxscript.optimizer.optimize(model) (constant folding and the default rewrite
                 rules, Conv+BatchNormalization fusion among them)
  onnx           no rewrite, the floor: onnx.save(onnx.load(MODEL), OUT)

Models whose weights do not fit in one protobuf (2 GB) are saved with external data beside OUT, and
so is onnxruntime's output when the input has external data.
Adapted from the shared bench's peer_cli.py (which ran onnxoptimizer with fuse_bn_into_conv alone
and onnxscript's rewriter without its optimizer).
"""
import os
import sys

TOOLS = {"ort": "onnxruntime", "onnxsim": "onnxsim", "onnxslim": "onnxslim",
         "onnxoptimizer": "onnxoptimizer", "onnxscript": "onnxscript", "onnx": "onnx"}


def save(model, path):
    import onnx
    onnx.save(model, path, save_as_external_data=model.ByteSize() > 2**31 - 2**20)


def main(argv):
    if argv == ["--list"]:
        print("\n".join(TOOLS))
        return 0
    if len(argv) != 3 or argv[0] not in TOOLS:
        print(__doc__, file=sys.stderr)
        return 2
    tool, src, dst = argv
    if tool == "ort":
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = dst
        import onnx
        header = onnx.load(src, load_external_data=False)
        if any(t.data_location == onnx.TensorProto.EXTERNAL for t in header.graph.initializer):
            # else the output would name the input's data file, relative to the output's folder
            options.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                             os.path.basename(dst) + ".data")
        del header
        ort.InferenceSession(src, options, providers=["CPUExecutionProvider"])
        return 0
    import onnx
    model = onnx.load(src)
    if tool == "onnxsim":
        import onnxsim
        model, _ = onnxsim.simplify(model)
    elif tool == "onnxslim":
        import onnxslim
        model = onnxslim.slim(model)
    elif tool == "onnxoptimizer":
        import onnxoptimizer
        model = onnxoptimizer.optimize(model)
    elif tool == "onnxscript":
        import onnxscript.optimizer
        model = onnxscript.optimizer.optimize(model)
    save(model, dst)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
