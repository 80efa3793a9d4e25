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
from .log import FusionRecord


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
    found, records = [], []
    for node, low in lowered:
        r = residual_of(node)
        if r is None or not is_subsample(r):
            continue
        if low.kernel != "conv2d" or low.absorbed:
            why = f"{node.name} is already merged into a {low.kernel} kernel"
        elif uses.get(r.name) != 1:
            why = f"the subsample {r.name} has {uses.get(r.name)} consumers (or is a requested output)"
        elif r is node.inputs[0]:
            why = f"the subsample {r.name} is also the conv's input"
        else:
            found.append((node, (r,)))
            records.append(FusionRecord("strided_residual", "strided_residual", node.name, True,
                                        f"{r.name} read in place (residual_strides {tuple(r.attrs['strides'])})"))
            continue
        records.append(FusionRecord("strided_residual", "strided_residual", node.name, False, why))
    program.fusion_log[:] = [r for r in program.fusion_log if r.pass_name != "strided_residual"] + records
    return found
