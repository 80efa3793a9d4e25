"""Shared vocabulary of the fusion passes: which base op fuses into which FUSED_* op,
the default epilogue attributes, and small readers for batch-norm parameters."""
from __future__ import annotations

from ..ir.ops import FUSED_OPS, Op  # noqa: F401 - FUSED_OPS re-exported (the group, ir/ops.py)
from . import folding

# base op -> (fused op, weight layout for output-channel scaling)
FUSED_OF = {
    Op.CONV2D: (Op.FUSED_CONV2D, "hwio"),
    Op.DEPTHWISE_CONV2D: (Op.FUSED_DEPTHWISE_CONV2D, "depthwise"),
    Op.CONV2D_TRANSPOSE: (Op.FUSED_CONV2D_TRANSPOSE, "transpose"),
    Op.MATMUL: (Op.FUSED_MATMUL, "matmul"),
}
BASE_OPS = frozenset(FUSED_OF)
PROLOGUE_OPS = frozenset({Op.FUSED_CONV2D, Op.FUSED_DEPTHWISE_CONV2D})

EPILOGUE_DEFAULTS = dict(act="none", residual=False, residual_scale=1.0, act2="none")


def fused_attrs(base_op: Op, base_attrs) -> dict:
    attrs = dict(base_attrs)
    attrs.update(EPILOGUE_DEFAULTS)
    if base_op in (Op.CONV2D, Op.DEPTHWISE_CONV2D):
        attrs.update(prologue=False, prologue_act="none")
    return attrs


def unpadded(node) -> bool:
    """A conv / pool node with no padding on any side."""
    return tuple(map(tuple, node.attrs["padding"])) == ((0, 0), (0, 0))


def is_subsample(node) -> bool:
    """A 1x1 pool without padding (TF-Slim `resnet_utils.subsample`): the strided selection
    x[n, oh*s_h, ow*s_w, c]."""
    return (node.op in (Op.MAX_POOL, Op.AVG_POOL) and tuple(node.attrs["ksize"]) == (1, 1) and unpadded(node)
            and len(node.shape) == 4)


def n_base_inputs(op: Op) -> int:
    return 1 if op is Op.FUSED_ELEMENTWISE else 2


def epilogue_operands(node) -> dict:
    """A fused node's epilogue / prologue inputs by role, in fused_ops.md's order: scale, shift,
    [residual], [in_scale, in_shift] (the names of the kernels' keyword arguments)."""
    ins, k = node.inputs, n_base_inputs(node.op)
    roles = {"scale": ins[k], "shift": ins[k + 1]}
    k += 2
    if node.attrs["residual"]:
        roles["residual"] = ins[k]
        k += 1
    if node.attrs.get("prologue"):
        roles["in_scale"], roles["in_shift"] = ins[k], ins[k + 1]
    return roles


def plain_epilogue(node) -> bool:
    """A fused node whose epilogue is only the affine map (more can be composed onto it)."""
    return node.op in FUSED_OPS and node.attrs["act"] == "none" and not node.attrs["residual"]


def is_var(node) -> bool:
    return node.op is Op.VARIABLE


def var(node) -> str:
    return node.attrs["var"]


def bn_parts(bn):
    """(mean, var, gamma|None, beta|None) input nodes of an inference BATCH_NORM."""
    ins = list(bn.inputs[1:])
    mean, variance = ins[0], ins[1]
    k = 2
    gamma = beta = None
    if bn.attrs["scale"]:
        gamma = ins[k]
        k += 1
    if bn.attrs["center"]:
        beta = ins[k]
    return mean, variance, gamma, beta


def bn_foldable(bn) -> bool:
    return not bn.attrs["is_training"] and all(is_var(p) for p in bn.inputs[1:])


def bn_recipe(bn):
    """(sources, fn(values) -> (scale, shift)) for an inference BN with parameter inputs."""
    mean, variance, gamma, beta = bn_parts(bn)
    eps = float(bn.attrs["epsilon"])
    names = [var(mean), var(variance), var(gamma) if gamma is not None else None,
             var(beta) if beta is not None else None]

    def affine(values):
        return folding.batch_norm_affine(values[names[0]], values[names[1]],
                                         values[names[2]] if names[2] else None,
                                         values[names[3]] if names[3] else None, eps)
    return [n for n in names if n], affine


def compose_into_epilogue(ctx, fused, root, sources, affine, why: str):
    """`fused` (an affine-only epilogue with parameter scale, shift) followed by the per-channel
    affine map `affine(values) -> (s2, t2)` of parameters `sources`, as one fused node named
    `root` with composed scale and shift; None when scale or shift is not a parameter."""
    scale, shift = fused.inputs[-2], fused.inputs[-1]
    if not (is_var(scale) and is_var(shift)):
        return ctx.decline(f"{fused.name}'s epilogue scale / shift are computed at run time ({scale.op.short}, "
                           f"{shift.op.short}), not parameters")
    sn, tn = var(scale), var(shift)
    srcs = [sn, tn] + list(sources)

    def composed(v):
        s2, t2 = affine(v)
        return folding.compose_affine(v[sn], v[tn], s2, t2)
    n = fused.shape[-1]
    new_scale = ctx.param(f"{root.name}/epilogue_scale", (n,), srcs, lambda v: composed(v)[0], why, root.dtype)
    new_shift = ctx.param(f"{root.name}/epilogue_shift", (n,), srcs, lambda v: composed(v)[1], why, root.dtype)
    return ctx.node(fused.op, fused.inputs[:-2] + (new_scale, new_shift), dict(fused.attrs), root.name)
