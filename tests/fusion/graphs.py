"""Small IR graphs for the pass tests, built node by node (no front end needed)."""
from __future__ import annotations

import numpy as np

from slimtriton.ir import Graph, Op


class Builder:
    def __init__(self):
        self.g = Graph()
        self.rng = np.random.default_rng(0)
        self.weights: dict[str, np.ndarray] = {}

    def placeholder(self, shape, name="x"):
        return self.g.add_node(Op.PLACEHOLDER, (), {"shape": tuple(shape), "dtype": "float32"}, name)

    def var(self, name, shape, low=None, high=None):
        if low is None:
            value = self.rng.standard_normal(shape) * (1.0 / np.sqrt(max(1, np.prod(shape[:-1]))))
        else:
            value = self.rng.uniform(low, high, shape)
        self.weights[name] = value.astype(np.float32)
        return self.g.add_node(Op.VARIABLE, (), {"var": name, "shape": tuple(shape), "dtype": "float32"}, name)

    def const(self, value, name="Const"):
        return self.g.add_node(Op.CONSTANT, (), {"value": float(value), "dtype": "float32"}, name)

    def conv(self, x, cout, k=3, stride=1, padding=((1, 1), (1, 1)), dilation=1, scope="conv"):
        w = self.var(f"{scope}/weights", (k, k, x.shape[-1], cout))
        return self.g.add_node(Op.CONV2D, (x, w), {"strides": (stride, stride), "padding": padding,
                                                   "dilations": (dilation, dilation)}, f"{scope}/Conv2D")

    def depthwise(self, x, k=3, dm=1, stride=1, padding=((1, 1), (1, 1)), scope="dw"):
        w = self.var(f"{scope}/depthwise_weights", (k, k, x.shape[-1], dm))
        return self.g.add_node(Op.DEPTHWISE_CONV2D, (x, w), {"strides": (stride, stride), "padding": padding,
                                                             "dilations": (1, 1)}, f"{scope}/depthwise")

    def fc(self, x, n, scope="fc"):
        w = self.var(f"{scope}/weights", (x.shape[-1], n))
        return self.g.add_node(Op.MATMUL, (x, w), {}, f"{scope}/MatMul")

    def bias(self, x, scope):
        b = self.var(f"{scope}/biases", (x.shape[-1],))
        return self.g.add_node(Op.BIAS_ADD, (x, b), {}, f"{scope}/BiasAdd")

    def bn(self, x, scope, scale=True, center=True, eps=1e-3):
        c = x.shape[-1]
        ins = [x, self.var(f"{scope}/moving_mean", (c,), -0.5, 0.5),
               self.var(f"{scope}/moving_variance", (c,), 0.5, 1.5)]
        if scale:
            ins.append(self.var(f"{scope}/gamma", (c,), 0.5, 1.5))
        if center:
            ins.append(self.var(f"{scope}/beta", (c,), -0.5, 0.5))
        return self.g.add_node(Op.BATCH_NORM, ins, {"epsilon": eps, "center": center, "scale": scale,
                                                    "is_training": False}, f"{scope}/FusedBatchNorm")

    def op(self, op, *inputs, name=None, **attrs):
        return self.g.add_node(op, inputs, attrs, name or op.short)

    def relu(self, x, name="Relu"):
        return self.op(Op.RELU, x, name=name)

    def pad(self, x, pads, name="Pad"):
        return self.op(Op.PAD, x, name=name, paddings=pads, value=0.0)

    def feeds(self, seed=1):
        rng = np.random.default_rng(seed)
        return {n: rng.standard_normal(n.shape).astype(np.float32) for n in self.g.nodes if n.op is Op.PLACEHOLDER}


def reference(nodes, outputs, feeds, weights):
    from slimtriton.executor import evaluate
    from slimtriton.reference import REFERENCE
    return evaluate(nodes, outputs, feeds, weights, REFERENCE, "REFERENCE")


def reference_of_program(program, feeds, weights):
    """Run a (transformed) program on the reference: derived parameters resolved first."""
    from slimtriton.fusion.program import resolve_parameters
    params = resolve_parameters(program, weights)
    by_name = {n.name: n for n in program.nodes}
    feeds = {by_name[k.name]: v for k, v in feeds.items() if k.name in by_name}
    return reference(program.nodes, program.outputs, feeds, params)
