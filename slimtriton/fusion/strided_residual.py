"""Pass 6: ResNet's subsampled shortcut read in place by the residual conv's epilogue.

    FUSED_CONV2D(..., residual = MAX_POOL | AVG_POOL 1x1, stride s, no padding (x))
      =>  FUSED_CONV2D(..., residual = x, residual_strides = s)

TF-Slim's `resnet_utils.subsample(x, s)` is a 1x1 pool: a window of one cell, i.e. the
strided selection x[n, oh*s_h, ow*s_w, c]. The conv's epilogue reads exactly those cells
(fused_ops.md: residual_strides; the reference and torch executors slice x[:, ::s_h, ::s_w]),
so the pool kernel -- a full read of x and a write of the subsampled tensor -- disappears.
Byte model: the conv reads only the selected cells (runtime/lowering.py read_shapes), the
pool's output size. ResNet v1 and v2 shortcut the last unit of blocks 1-3 this way.

Conditions (else the match is declined, with the reason, in program.fusion_log): the pool is
read only by this conv's residual (not a requested output, not also the conv's input).
"""
from __future__ import annotations

from ..ir.ops import Op
from .common import epilogue_operands, is_subsample
from .pattern import Pat, Rule


def _strided_candidate(node) -> bool:
    """A residual FUSED_CONV2D whose residual is a subsample, not yet read strided."""
    return (node.attrs["residual"] and tuple(node.attrs.get("residual_strides", (1, 1))) == (1, 1)
            and is_subsample(epilogue_operands(node)["residual"]))


def _read_in_place(match, ctx):
    conv = match["root"]
    pool = epilogue_operands(conv)["residual"]
    if ctx.uses.get(pool.name) != 1:
        return ctx.decline(f"the subsample {pool.name} has {ctx.uses.get(pool.name)} consumers "
                           f"(or is a requested output)")
    if pool is conv.inputs[0]:
        return ctx.decline(f"the subsample {pool.name} is also the conv's input")
    inputs = tuple(pool.inputs[0] if n is pool else n for n in conv.inputs)
    attrs = dict(conv.attrs, residual_strides=tuple(pool.attrs["strides"]))
    return ctx.node(conv.op, inputs, attrs, conv.name)


RULES = [
    Rule("strided_residual", Pat(Op.FUSED_CONV2D, name="root", where=_strided_candidate), _read_in_place),
]
