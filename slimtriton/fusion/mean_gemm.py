"""Plan pass 7: a global spatial mean feeding a GEMM becomes one kernel (no pooled round trip).

    REDUCE_MEAN(x, axes [1, 2]) | AVG_POOL(x) over the whole image
      [-> RESHAPE ...] -> FUSED_CONV2D 1x1 | FUSED_MATMUL      =>   kernels.mean_matmul(x, w, ...)

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
from .common import unpadded


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


def _gemm_candidate(node) -> bool:
    if node.op not in (Op.FUSED_CONV2D, Op.FUSED_MATMUL) or node.attrs["residual"] or node.attrs.get("prologue"):
        return False
    if node.inputs[1].op is not Op.VARIABLE:
        return False
    if node.op is Op.FUSED_CONV2D:
        x = node.inputs[0]
        return tuple(node.inputs[1].shape[:2]) == (1, 1) and tuple(x.shape[1:3]) == (1, 1) and unpadded(node)
    return True


def _pointwise_prologue(x, uses):
    """x = act(y*s + t), a FUSED_ELEMENTWISE without residual read once, with parameter vectors."""
    return (x.op is Op.FUSED_ELEMENTWISE and not x.attrs["residual"] and uses.get(x.name) == 1
            and all(p.op is Op.VARIABLE for p in x.inputs[1:3]))


def match(node, uses):
    """(mean input, absorbed nodes, pointwise prologue | None) when `node` heads the pattern."""
    if not _gemm_candidate(node):
        return None
    chain = []
    a = node.inputs[0]
    while a.op is Op.RESHAPE and uses.get(a.name) == 1:
        chain.append(a)
        a = a.inputs[0]
    if not is_global_mean(a) or uses.get(a.name) != 1:
        return None
    x = a.inputs[0]
    n, c = x.shape[0], x.shape[3]
    rows = node.inputs[0].shape[:-1]
    if node.inputs[0].shape[-1] != c or tuple(rows) not in ((n,), (n, 1, 1)):
        return None
    if tuple(node.shape) not in ((n, node.shape[-1]), (n, 1, 1, node.shape[-1])):
        return None
    prologue = None
    if _pointwise_prologue(x, uses):
        prologue, x = x, x.inputs[0]
    return x, tuple(chain) + (a,), prologue


def find(lowered, program):
    """The plan pass's decisions: (GEMM node, (mean input, absorbed nodes, prologue | None)) for
    every match in the plan's (node, Lowered) list; runtime.lowering.PLAN_LOWERINGS['mean_gemm']
    turns each into one mean_matmul call (this module stays below the runtime)."""
    uses = program.uses()
    found = []
    for node, _ in lowered:
        m = match(node, uses)
        if m is not None:
            found.append((node, m))
    return found
