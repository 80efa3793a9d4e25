"""Pass 5: pre-activation BN+ReLU (ResNet v2 `preact`) fused into its consumers' prologue.

A FUSED_ELEMENTWISE e = act(x * s + t) without residual, whose every consumer is a conv /
depthwise conv reading it as its input (not as a residual), can instead be applied by each
consumer while it loads x (`prologue`; padded cells stay zero, fused_ops.md).

The rule, from the byte model (slimtriton.ir.cost.kernel_bytes, the one used for the
report): with n consumers, keeping e costs one pointwise kernel (read x, s, t; write y) plus
n reads of y; the prologue costs n reads of x (and of s, t). The prologue wins when
n * bytes(x) + n * bytes(s, t) < bytes(x) + bytes(s, t) + bytes(y) + n * bytes(y) -- with
y the size of x, that always holds in bytes -- *and* the recomputation it buys is bounded:
a consumer with a kh x kw window re-applies the prologue to each input element kh*kw / (sh*sw)
times, once per output-channel tile, so the summed taps over all consumers must stay within
`MAX_PROLOGUE_TAPS` (1x1 consumers, as ResNet v2's conv1 and projection shortcut, qualify;
a 3x3 consumer or many consumers keep the pointwise kernel). A requested output, a
residual or non-conv consumer (pooling, GEMM, concat) keeps e as its own kernel.
"""
from __future__ import annotations

from ..ir.cost import tensor_bytes
from ..ir.ops import Op
from .common import PROLOGUE_OPS
from .pattern import Pat, Rule

MAX_PROLOGUE_TAPS = 4


def _candidate(e) -> bool:
    return e.op is Op.FUSED_ELEMENTWISE and not e.attrs["residual"]


def _taps(conv) -> float:
    w = conv.inputs[1]
    sh, sw = conv.attrs["strides"]
    return w.shape[0] * w.shape[1] / (sh * sw)


def pointwise_and_prologue_bytes(e, n: int, dtype: str) -> tuple[int, int]:
    """The byte model of the module docstring for `e` read by `n` consumers: (keeping e as its
    own kernel, applying it as the consumers' prologue)."""
    x, s, t = e.inputs[:3]
    vec = tensor_bytes(s.shape, dtype) + tensor_bytes(t.shape, dtype)
    keep = tensor_bytes(x.shape, dtype) + vec + tensor_bytes(e.shape, dtype) + n * tensor_bytes(e.shape, dtype)
    fuse = n * (tensor_bytes(x.shape, dtype) + vec)
    return keep, fuse


def prologue_saves_bytes(e, consumers) -> bool:
    keep, fuse = pointwise_and_prologue_bytes(e, len(consumers), e.dtype)
    return fuse < keep


def _why_not_eligible(e, ctx) -> str | None:
    """Why e stays its own kernel (None: every consumer applies it as its prologue)."""
    users = ctx.consumers.get(e.name, [])
    if not users or ctx.uses.get(e.name, 0) != sum(sum(i.name == e.name for i in u.inputs) for u in users):
        return f"{e.name} is a requested output"
    for u in users:
        if u.op not in PROLOGUE_OPS or u.attrs["prologue"] or u.inputs[0].name != e.name:
            return (f"consumer {u.name} ({u.op.short}) cannot apply it as its input prologue "
                    f"(not a conv / depthwise input, or it has a prologue already)")
        if any(i.name == e.name for i in u.inputs[1:]):
            return f"consumer {u.name} also reads it as another operand"
    taps = sum(_taps(u) for u in users)
    if taps > MAX_PROLOGUE_TAPS:
        return (f"byte model: {len(users)} consumer(s) would re-apply it {taps:g} times per input element "
                f"(> MAX_PROLOGUE_TAPS = {MAX_PROLOGUE_TAPS})")
    if not prologue_saves_bytes(e, users):
        keep, fuse = pointwise_and_prologue_bytes(e, len(users), e.dtype)
        return f"byte model: the prologue reads {fuse} bytes, keeping the kernel {keep}"
    return None


def _into_prologue(match, ctx):
    conv, e = match["root"], match["e"]
    why = _why_not_eligible(e, ctx)
    if why is not None:
        return ctx.decline(why)
    x, s, t = e.inputs[:3]
    attrs = dict(conv.attrs, prologue=True, prologue_act=e.attrs["act"])
    return ctx.node(conv.op, (x,) + conv.inputs[1:] + (s, t), attrs, conv.name)


RULES = [
    Rule("pointwise_into_prologue", Pat(PROLOGUE_OPS, Pat(where=_candidate, name="e"), name="root", rest=True),
         _into_prologue),
]
