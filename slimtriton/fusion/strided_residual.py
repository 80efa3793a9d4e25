"""Plan pass 7b: ResNet's subsampled shortcut read in place by the residual conv's epilogue.

    MAX_POOL | AVG_POOL 1x1, stride s, no padding (TF-Slim `resnet_utils.subsample(x, s)`)
      -> residual of FUSED_CONV2D          =>   conv2d(..., residual=x, residual_strides=s)

A 1x1 window holds one cell, so the pool is the strided selection x[n, oh*s_h, ow*s_w, c];
the conv epilogue reads exactly those cells, and the pool kernel (a full read of x and a
write of the subsampled tensor) disappears. Byte model: the conv reads only the selected
cells (rows of C contiguous channels), i.e. the pool's output size. ResNet v1 and v2 both
shortcut the last unit of blocks 1-3 this way. The pool must have this conv as its only
consumer and not be a requested output.
"""
from __future__ import annotations

from ..ir.ops import Op
from .common import epilogue_operands, is_subsample


def residual_of(node):
    """The residual input of a FUSED_CONV2D with a residual epilogue (inputs x, w, scale, shift, r, ...)."""
    if node.op is not Op.FUSED_CONV2D or not node.attrs["residual"]:
        return None
    return epilogue_operands(node)["residual"]


def find(lowered, program):
    """The plan pass's decisions: (conv node, (pool,)) for every residual conv of the plan's
    (node, Lowered) list whose residual is a subsample read only by it;
    runtime.lowering.PLAN_LOWERINGS['strided_residual'] lowers each."""
    uses = program.uses()
    found = []
    for node, low in lowered:
        r = residual_of(node)
        if (r is not None and low.kernel == "conv2d" and not low.absorbed and is_subsample(r)
                and uses.get(r.name) == 1 and r is not node.inputs[0]):
            found.append((node, (r,)))
    return found
