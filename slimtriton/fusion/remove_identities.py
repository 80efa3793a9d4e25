"""Pass 1: remove computations that return their input (dead code goes with every rewrite).

Identity, inference dropout, 1x1 stride-1 unpadded pooling (`subsample` by 1), reshape to
the same shape, and reshape of a reshape (only the last shape matters: reshapes are views).
"""
from __future__ import annotations

from ..ir.ops import Op
from .common import is_subsample
from .pattern import Pat, Rule


def _forward_input(match, ctx):
    return match["x"]


def _is_trivial_pool(n) -> bool:
    return is_subsample(n) and tuple(n.attrs["strides"]) == (1, 1)


def _reshape_of_reshape(match, ctx):
    root = match["root"]
    return ctx.node(Op.RESHAPE, [match["x"]], dict(root.attrs), root.name)


RULES = [
    Rule("identity", Pat(Op.IDENTITY, Pat(name="x")), _forward_input),
    Rule("inference_dropout", Pat(Op.DROPOUT, Pat(name="x"), where=lambda n: not n.attrs["is_training"]),
         _forward_input),
    Rule("subsample_by_1", Pat({Op.MAX_POOL, Op.AVG_POOL}, Pat(name="x"), where=_is_trivial_pool), _forward_input),
    Rule("reshape_to_same_shape", Pat(Op.RESHAPE, Pat(name="x"), where=lambda n: n.shape == n.inputs[0].shape),
         _forward_input),
    Rule("reshape_of_reshape", Pat(Op.RESHAPE, Pat(Op.RESHAPE, Pat(name="x")), name="root"), _reshape_of_reshape),
]
