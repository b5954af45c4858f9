"""What the generated CNN shapes (gen_resnet.py, gen_vgg.py) share: seeded random values, fresh
names, float initializers, and a BatchNormalization with random statistics left unfolded."""
import numpy as np
from onnx import helper, numpy_helper


class Builder:
    """The nodes and initializers of one generated graph."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.count = [], [], 0

    def fresh(self, prefix):
        """`prefix_N`, N counting every name made."""
        self.count += 1
        return f"{prefix}_{self.count}"

    def tensor(self, name, array):
        """A float initializer named `name`; returns the name."""
        self.inits.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def batchnorm(self, x, channels):
        """An inference-mode BatchNormalization of `x` with random scale, shift, mean and
        variance; returns its output's name."""
        rng = self.rng
        params = [self.tensor(self.fresh(s), v) for s, v in (
            ("scale", rng.uniform(0.5, 1.5, channels)), ("shift", rng.uniform(-0.2, 0.2, channels)),
            ("mean", rng.uniform(-0.5, 0.5, channels)), ("var", rng.uniform(0.5, 2.0, channels)))]
        y = self.fresh("bn")
        self.nodes.append(helper.make_node("BatchNormalization", [x] + params, [y], epsilon=1e-5))
        return y
