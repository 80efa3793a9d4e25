"""Pass 7: a global spatial mean feeding a GEMM becomes one op, one kernel (no pooled round trip).

    REDUCE_MEAN(x, axes [1, 2]) | AVG_POOL(x) over the whole image
      [-> RESHAPE ...] -> FUSED_CONV2D 1x1 | FUSED_MATMUL
        =>   FUSED_MEAN_MATMUL(x, w, scale, shift[, in_scale, in_shift])   (kernels.mean_matmul)

An IR rewrite like the others: the reference and torch executors run FUSED_MEAN_MATMUL
(mean over H, W of the optional prologue, then the GEMM and its epilogue; fused_ops.md), so
the fusion is checked against the reference. A GEMM reading a global mean that does not
qualify is declined with the reason (program.fusion_log).

(ResNet `pool5` + `logits`, Inception / MobileNet `AvgPool` + 1x1 `Logits`, a mean then
`fully_connected`.) The GEMM's A operand is the mean, computed in fp32 while loading A; the
pooled [N, C] tensor is never written. When x itself is a FUSED_ELEMENTWISE act(y*s + t)
(no residual) read only by the mean -- ResNet v2's `postnorm` BN+ReLU -- it is applied per
pixel in the same kernel, so that kernel disappears too.

Conditions: the mean, every reshape in between and the absorbed pointwise node have exactly
one consumer and are not requested outputs; the GEMM has no residual and no prologue; its
input rows are the N images ([N, C] or [N, 1, 1, C]) and a conv is 1x1 without padding.
"""
from __future__ import annotations

from ..ir.ops import Op
from .common import EPILOGUE_DEFAULTS, unpadded
from .pattern import Pat, Rule


def is_global_mean(node) -> bool:
    """A mean over all H x W pixels of an NHWC tensor, with or without kept dims."""
    if len(node.inputs) != 1 or len(node.inputs[0].shape) != 4:
        return False
    _, h, w, _ = node.inputs[0].shape
    if node.op is Op.REDUCE_MEAN:
        return tuple(node.attrs["axes"]) == (1, 2)
    if node.op is Op.AVG_POOL:
        return tuple(node.attrs["ksize"]) == (h, w) and tuple(node.shape[1:3]) == (1, 1) and unpadded(node)
    return False


def _why_not_gemm(node) -> str | None:
    """Why `node` is not a GEMM the mean can feed (None: it is)."""
    if node.op not in (Op.FUSED_CONV2D, Op.FUSED_MATMUL):
        return f"{node.name} is a {node.op.short}, not a 1x1 conv or fully connected layer"
    if node.attrs["residual"] or node.attrs.get("prologue"):
        return f"{node.name} has a residual or a prologue"
    if node.inputs[1].op is not Op.VARIABLE:
        return f"{node.name}'s weights are computed at run time"
    if node.op is Op.FUSED_CONV2D:
        x = node.inputs[0]
        if not (tuple(node.inputs[1].shape[:2]) == (1, 1) and tuple(x.shape[1:3]) == (1, 1) and unpadded(node)):
            return f"{node.name} is not a 1x1 unpadded conv of a 1x1 input"
    return None


def _gemm_candidate(node) -> bool:
    return _why_not_gemm(node) is None


def _pointwise_prologue(x, uses):
    """x = act(y*s + t), a FUSED_ELEMENTWISE without residual read once, with parameter vectors."""
    return (x.op is Op.FUSED_ELEMENTWISE and not x.attrs["residual"] and uses.get(x.name) == 1
            and all(p.op is Op.VARIABLE for p in x.inputs[1:3]))


def _mean_under(node):
    """The global mean `node` reads, through reshapes (None when there is none)."""
    if node.op not in (Op.FUSED_CONV2D, Op.FUSED_MATMUL):
        return None
    a = node.inputs[0]
    while a.op is Op.RESHAPE:
        a = a.inputs[0]
    return a if is_global_mean(a) else None


def explain(node, uses):
    """((mean input, absorbed nodes, pointwise prologue | None), None) when `node` heads the
    pattern, else (None, why not)."""
    why = _why_not_gemm(node)
    if why is not None:
        return None, why
    chain = []
    a = node.inputs[0]
    while a.op is Op.RESHAPE and uses.get(a.name) == 1:
        chain.append(a)
        a = a.inputs[0]
    if a.op is Op.RESHAPE:
        return None, f"reshape {a.name} has {uses.get(a.name)} consumers"
    if not is_global_mean(a):
        return None, f"its input {a.name} ({a.op.short}) is not a global spatial mean"
    if uses.get(a.name) != 1:
        return None, f"the mean {a.name} has {uses.get(a.name)} consumers (or is a requested output)"
    x = a.inputs[0]
    n, c = x.shape[0], x.shape[3]
    rows = node.inputs[0].shape[:-1]
    if node.inputs[0].shape[-1] != c or tuple(rows) not in ((n,), (n, 1, 1)):
        return None, f"the GEMM's input rows {list(node.inputs[0].shape)} are not the {n} images"
    if tuple(node.shape) not in ((n, node.shape[-1]), (n, 1, 1, node.shape[-1])):
        return None, f"the GEMM's output {list(node.shape)} is not [N, C] or [N, 1, 1, C]"
    prologue = None
    if _pointwise_prologue(x, uses):
        prologue, x = x, x.inputs[0]
    return (x, tuple(chain) + (a,), prologue), None


def match(node, uses):
    """(mean input, absorbed nodes, pointwise prologue | None) when `node` heads the pattern."""
    return explain(node, uses)[0]


def _into_mean_matmul(match, ctx):
    node = match["root"]
    m, why = explain(node, ctx.uses)
    if m is None:
        return ctx.decline(why)
    x, _, prologue = m
    w, scale, shift = node.inputs[1:4]
    inputs = (x, w, scale, shift) + (tuple(prologue.inputs[1:3]) if prologue is not None else ())
    attrs = dict(EPILOGUE_DEFAULTS, act=node.attrs["act"], prologue=prologue is not None,
                 prologue_act=prologue.attrs["act"] if prologue is not None else "none",
                 keepdims=len(node.shape) == 4)
    return ctx.node(Op.FUSED_MEAN_MATMUL, inputs, attrs, node.name)


RULES = [
    Rule("mean_gemm", Pat({Op.FUSED_CONV2D, Op.FUSED_MATMUL}, name="root", where=lambda n: _mean_under(n) is not None),
         _into_mean_matmul),
]
