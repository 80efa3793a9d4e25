"""Pass 2: fold an explicit zero PAD of the spatial axes into the following convolution.

`resnet_utils.conv2d_same` writes a strided 'SAME' conv as PAD then a 'VALID' CONV2D; the
conv kernels take explicit per-side padding, so the padded copy is never materialized.
Only zero padding of H and W (NHWC axes 1, 2) folds; pooling is excluded (its padded
cells are ignored, not zeros). The PAD stays for any other consumer.
"""
from __future__ import annotations

from ..ir.ops import Op
from .pattern import Pat, Rule


def _spatial_zero_pad(n) -> bool:
    p = n.attrs["paddings"]
    return (len(p) == 4 and float(n.attrs.get("value", 0.0)) == 0.0
            and tuple(p[0]) == (0, 0) and tuple(p[3]) == (0, 0))


def _fold(match, ctx):
    conv, pad = match["conv"], match["pad"]
    (pt, pb), (pl, pr) = conv.attrs["padding"]
    (_, _), (qt, qb), (ql, qr), _ = pad.attrs["paddings"]
    attrs = dict(conv.attrs, padding=((pt + qt, pb + qb), (pl + ql, pr + qr)))
    return ctx.node(conv.op, (match["x"],) + conv.inputs[1:], attrs, conv.name)


RULES = [
    Rule("pad_into_conv",
         Pat({Op.CONV2D, Op.DEPTHWISE_CONV2D}, Pat(Op.PAD, Pat(name="x"), name="pad", where=_spatial_zero_pad),
             Pat(name="w"), name="conv"),
         _fold),
]
