"""`REFERENCE[op](node, inputs) -> value`: the NumPy interpretation of every IR op.

Float values are float64 arrays throughout (integer and bool values keep their
dtype); `slimtriton.session.Session` casts fetched values to each node's dtype.
Source ops receive the raw host value as their single input (the executor reads
it from the feeds or the weights and checks its shape and dtype first).
Fused ops are composed from the plain functions of `numpy_ops`, as
`slimtriton/fusion/fused_ops.md` defines them.
"""
from __future__ import annotations

import numpy as np

from ..ir.node import FLOAT_DTYPES
from ..ir.ops import ACTIVATION_OPS, Op, node_act
from . import numpy_ops as ref


def as_value(array, dtype: str) -> np.ndarray:
    """A host array as a reference value: float64 for float dtypes, the exact dtype otherwise."""
    if dtype in FLOAT_DTYPES:
        return np.asarray(array, dtype=np.float64)
    return np.asarray(array, dtype=np.dtype(dtype))


def _source(node, inputs):
    (raw,) = inputs
    return as_value(raw, node.dtype)


def _constant(node, inputs):
    return as_value(node.attrs["value"], node.dtype)


def _dropout(node, inputs):
    (x,) = inputs
    keep_prob = node.attrs["keep_prob"]
    if node.attrs["is_training"] and keep_prob < 1:
        raise ValueError(
            f"{node.name}: dropout with is_training=True (keep_prob={keep_prob}) is random; slimtriton "
            f"runs inference only. Build the net with is_training=False (dropout is then the identity)")
    return x


def _batch_norm(node, inputs):
    x, mean, variance = inputs[:3]
    rest = list(inputs[3:])
    gamma = rest.pop(0) if node.attrs["scale"] else None
    beta = rest.pop(0) if node.attrs["center"] else None
    if node.attrs["is_training"]:
        mean, variance = ref.batch_moments(x)
    return ref.batch_norm(x, mean, variance, gamma, beta, node.attrs["epsilon"])


def _one_hot(node, inputs):
    (labels,) = inputs
    a = node.attrs
    hot = labels[..., None] == np.arange(a["depth"])  # out-of-range labels give all off_value, as TF
    return as_value(np.where(hot, a["on_value"], a["off_value"]), a["dtype"])


def _channel_slice(node, inputs):
    b, act = node.attrs["begin"], node.attrs.get("act", "none")
    y = np.ascontiguousarray(inputs[0][..., b:b + node.attrs["size"]])
    return y if act == "none" else ref.activation(y, act)


def _pad(node, inputs):
    (x,) = inputs
    return np.pad(x, node.attrs["paddings"], mode="constant", constant_values=node.attrs["value"])


def _divide(node, inputs):
    a, b = inputs
    if node.dtype in FLOAT_DTYPES:
        return a / b
    return np.floor_divide(a, b)  # integer division keeps the integer dtype the shape rule promises


def _conv_window(node):
    a = node.attrs
    return a["strides"], a["padding"], a.get("dilations", (1, 1))


def _epilogue(node, acc, rest):
    """Apply the fused epilogue; `rest` = (scale, shift[, residual]) after the base operands."""
    a = node.attrs
    scale, shift = rest[0], rest[1]
    residual = rest[2] if a.get("residual") else None
    sh, sw = a.get("residual_strides", (1, 1))
    if residual is not None and (sh, sw) != (1, 1):  # the cells [n, oh*sh, ow*sw] (shape rule: exactly OH x OW)
        residual = residual[:, ::sh, ::sw]
    return ref.epilogue(acc, scale, shift, a.get("act", "none"), residual,
                        a.get("residual_scale", 1.0), a.get("act2", "none"))


def _prologue_input(node, inputs):
    """The conv input after the optional prologue (in_scale, in_shift are the last two inputs)."""
    x = inputs[0]
    if node.attrs.get("prologue"):
        x = ref.prologue(x, inputs[-2], inputs[-1], node.attrs.get("prologue_act", "none"))
    return x


def _fused_conv2d(node, inputs):
    acc = ref.conv2d(_prologue_input(node, inputs), inputs[1], *_conv_window(node))
    return _epilogue(node, acc, inputs[2:])


def _fused_depthwise(node, inputs):
    acc = ref.depthwise_conv2d(_prologue_input(node, inputs), inputs[1], *_conv_window(node))
    return _epilogue(node, acc, inputs[2:])


def _fused_conv2d_transpose(node, inputs):
    a = node.attrs
    acc = ref.conv2d_transpose(inputs[0], inputs[1], a["strides"], a["pad_before"], a["output_hw"])
    return _epilogue(node, acc, inputs[2:])


def _fused_window_conv2d(node, inputs):
    """avg_pool(x), or win_act(depthwise(x) * win_scale + win_shift); then the 1x1 conv + epilogue."""
    a = node.attrs
    x = inputs[0]
    if a["window"] == "avg_pool":
        win = ref.avg_pool(x, a["ksize"], a["win_strides"], a["win_padding"])
    else:
        acc = ref.depthwise_conv2d(x, inputs[4], a["win_strides"], a["win_padding"], a["win_dilations"])
        win = ref.epilogue(acc, inputs[5], inputs[6], a["win_act"])
    return _epilogue(node, ref.conv2d(win, inputs[1]), inputs[2:4])
def _fused_mean_matmul(node, inputs):
    x, w = _prologue_input(node, inputs), inputs[1]
    acc = ref.matmul(ref.reduce_mean(x, (1, 2), False), np.reshape(w, w.shape[-2:]))
    y = _epilogue(node, acc, inputs[2:])
    return y.reshape(node.shape)


REFERENCE = {
    Op.PLACEHOLDER: _source,
    Op.VARIABLE: _source,
    Op.CONSTANT: _constant,
    Op.ADD: lambda n, i: i[0] + i[1],
    Op.SUB: lambda n, i: i[0] - i[1],
    Op.MUL: lambda n, i: i[0] * i[1],
    Op.DIV: _divide,
    Op.MAXIMUM: lambda n, i: np.maximum(i[0], i[1]),
    Op.MINIMUM: lambda n, i: np.minimum(i[0], i[1]),
    Op.NEG: lambda n, i: -i[0],
    **{op: lambda n, i: ref.activation(i[0], node_act(n)) for op in ACTIVATION_OPS},
    Op.IDENTITY: lambda n, i: i[0],
    Op.BIAS_ADD: lambda n, i: i[0] + i[1],
    Op.DROPOUT: _dropout,
    Op.BATCH_NORM: _batch_norm,
    Op.UNIT_NORM: lambda n, i: ref.unit_norm(i[0], n.attrs["axis"], n.attrs["epsilon"]),
    Op.SOFTMAX: lambda n, i: ref.softmax(i[0], n.attrs["axis"]),
    Op.CONV2D: lambda n, i: ref.conv2d(i[0], i[1], *_conv_window(n)),
    Op.DEPTHWISE_CONV2D: lambda n, i: ref.depthwise_conv2d(i[0], i[1], *_conv_window(n)),
    Op.CONV2D_TRANSPOSE: lambda n, i: ref.conv2d_transpose(
        i[0], i[1], n.attrs["strides"], n.attrs["pad_before"], n.attrs["output_hw"]),
    Op.MATMUL: lambda n, i: ref.matmul(i[0], i[1]),
    Op.MAX_POOL: lambda n, i: ref.max_pool(i[0], n.attrs["ksize"], n.attrs["strides"], n.attrs["padding"]),
    Op.AVG_POOL: lambda n, i: ref.avg_pool(i[0], n.attrs["ksize"], n.attrs["strides"], n.attrs["padding"]),
    Op.REDUCE_MEAN: lambda n, i: ref.reduce_mean(i[0], n.attrs["axes"], n.attrs["keepdims"]),
    Op.RESHAPE: lambda n, i: np.reshape(i[0], n.attrs["shape"]),
    Op.CONCAT: lambda n, i: np.concatenate(i, axis=n.attrs["axis"]),
    Op.CHANNEL_SLICE: _channel_slice,
    Op.PAD: _pad,
    Op.TILE: lambda n, i: np.tile(i[0], n.attrs["multiples"]),
    Op.ONE_HOT: _one_hot,
    Op.FUSED_CONV2D: _fused_conv2d,
    Op.FUSED_DEPTHWISE_CONV2D: _fused_depthwise,
    Op.FUSED_CONV2D_TRANSPOSE: _fused_conv2d_transpose,
    Op.FUSED_MATMUL: lambda n, i: _epilogue(n, ref.matmul(i[0], i[1]), i[2:]),
    Op.FUSED_ELEMENTWISE: lambda n, i: _epilogue(n, i[0], i[1:]),
    Op.FUSED_WINDOW_CONV2D: _fused_window_conv2d,
    Op.FUSED_MEAN_MATMUL: _fused_mean_matmul,
}

_missing = set(Op) - set(REFERENCE)
assert not _missing, f"REFERENCE misses {_missing}"
