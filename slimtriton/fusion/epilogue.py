"""Pass 4: epilogue fusion into the producing conv / GEMM (see fused_ops.md).

Every remaining conv / matmul becomes its FUSED_* form (identity epilogue), then, at each
consumer, in this order of preference:
  relu / relu6 of a fused node           -> its `act` (or `act2` after a residual add)
  add(fused, r)                           -> residual r  (the later-computed operand fuses)
  add(r, c * fused)                       -> residual r with residual_scale c (Inception-ResNet)
  c * fused (affine epilogue only)        -> scale, shift multiplied by c
The absorbed node must have no other consumer (nor be a requested output). What is left
of BN / bias / add / relu / scalar-mul becomes a FUSED_ELEMENTWISE (one pointwise kernel),
which later activations fuse into in turn (second stage, LEFTOVER_RULES).
"""
from __future__ import annotations

import numpy as np

from ..ir.ops import Op
from . import folding
from .common import (ACT_NAME, BASE_OPS, FUSED_OF, FUSED_OPS, bn_foldable, bn_recipe, fused_attrs, is_var,
                     plain_epilogue, var)
from .pattern import Pat, Rule

ACTS = frozenset(ACT_NAME)


def _lift(match, ctx):
    conv = match["root"]
    fused_op, _ = FUSED_OF[conv.op]
    n = conv.shape[-1]
    scale = ctx.filled(f"{conv.name}/epilogue_scale", n, 1.0, conv.dtype)
    shift = ctx.filled(f"{conv.name}/epilogue_shift", n, 0.0, conv.dtype)
    return ctx.node(fused_op, conv.inputs + (scale, shift), fused_attrs(conv.op, conv.attrs), conv.name)


def _elementwise(ctx, root, x, scale, shift, residual=None, **attrs):
    a = dict(act="none", residual=residual is not None, residual_scale=1.0, act2="none")
    a.update(attrs)
    ins = (x, scale, shift) + ((residual,) if residual is not None else ())
    return ctx.node(Op.FUSED_ELEMENTWISE, ins, a, root.name)


def _standalone_bn(match, ctx):
    bn = match["root"]
    sources, affine = bn_recipe(bn)
    n = bn.shape[-1]
    scale = ctx.param(f"{bn.name}/epilogue_scale", (n,), sources, lambda v: affine(v)[0], "batch norm scale", bn.dtype)
    shift = ctx.param(f"{bn.name}/epilogue_shift", (n,), sources, lambda v: affine(v)[1], "batch norm shift", bn.dtype)
    return _elementwise(ctx, bn, bn.inputs[0], scale, shift)


def _standalone_bias(match, ctx):
    root = match["root"]
    scale = ctx.filled(f"{root.name}/epilogue_scale", root.shape[-1], 1.0, root.dtype)
    return _elementwise(ctx, root, match["x"], scale, match["b"])


def _act_into_fused(match, ctx):
    fused, root = match["fused"], match["root"]
    key = "act2" if fused.attrs["residual"] else "act"
    if fused.attrs[key] != "none":
        return None
    return ctx.node(fused.op, fused.inputs, dict(fused.attrs, **{key: ACT_NAME[root.op]}), root.name)


def _residual_candidate(node, root, ctx) -> bool:
    return (node.op in FUSED_OPS and not node.attrs["residual"] and ctx.uses.get(node.name) == 1
            and node.shape == root.shape and node.dtype == root.dtype)


def _with_residual(ctx, fused, residual, root, scale: float):
    if residual.shape != root.shape or residual is fused:
        return None
    attrs = dict(fused.attrs, residual=True, residual_scale=float(scale))
    n_base = 1 if fused.op is Op.FUSED_ELEMENTWISE else 2
    ins = fused.inputs[:n_base + 2] + (residual,) + fused.inputs[n_base + 2:]
    return ctx.node(fused.op, ins, attrs, root.name)


def _add_residual(match, ctx):
    root = match["root"]
    a, b = root.inputs
    cands = [n for n in (a, b) if _residual_candidate(n, root, ctx)]
    if not cands:
        return None
    # Fuse into the operand computed last, so the other one already exists when it runs.
    fused = max(cands, key=lambda n: ctx.order.get(n.name, -1))
    return _with_residual(ctx, fused, b if fused is a else a, root, 1.0)


def _scalar(node):
    return float(node.attrs["value"])


def _add_scaled_residual(match, ctx):
    root, fused = match["root"], match["fused"]
    if not _residual_candidate(fused, match["mul"], ctx):
        return None
    return _with_residual(ctx, fused, match["r"], root, _scalar(match["c"]))


def _scale_epilogue(match, ctx):
    fused, root, c = match["fused"], match["root"], _scalar(match["c"])
    scale, shift = fused.inputs[-2], fused.inputs[-1]
    if not (is_var(scale) and is_var(shift)):
        return None
    sn, tn = var(scale), var(shift)
    n = fused.shape[-1]
    new_scale = ctx.param(f"{root.name}/epilogue_scale", (n,), [sn], lambda v: v[sn] * c, f"scale * {c}", root.dtype)
    new_shift = ctx.param(f"{root.name}/epilogue_shift", (n,), [tn], lambda v: v[tn] * c, f"shift * {c}", root.dtype)
    return ctx.node(fused.op, fused.inputs[:-2] + (new_scale, new_shift), dict(fused.attrs), root.name)


def _leftover_add(match, ctx):
    root = match["root"]
    a, b = root.inputs
    n = root.shape[-1]
    one = ctx.filled(f"{root.name}/epilogue_scale", n, 1.0, root.dtype)
    zero = ctx.filled(f"{root.name}/epilogue_shift", n, 0.0, root.dtype)
    return _elementwise(ctx, root, a, one, zero, residual=b)


def _leftover_act(match, ctx):
    root = match["root"]
    n = root.shape[-1]
    one = ctx.filled(f"{root.name}/epilogue_scale", n, 1.0, root.dtype)
    zero = ctx.filled(f"{root.name}/epilogue_shift", n, 0.0, root.dtype)
    return _elementwise(ctx, root, root.inputs[0], one, zero, act=ACT_NAME[root.op])


def _leftover_scalar_mul(match, ctx):
    root, c = match["root"], _scalar(match["c"])
    n = root.shape[-1]
    scale = ctx.filled(f"{root.name}/epilogue_scale", n, c, root.dtype)
    zero = ctx.filled(f"{root.name}/epilogue_shift", n, 0.0, root.dtype)
    return _elementwise(ctx, root, match["x"], scale, zero)


def _same_shape_add(n) -> bool:
    a, b = n.inputs
    return a.shape == b.shape == n.shape and len(n.shape) >= 1


def _has_channels(n) -> bool:
    return len(n.shape) >= 1 and n.shape[-1] >= 1


_CONST = Pat(Op.CONSTANT, name="c")
_FUSED_ONE = Pat(FUSED_OPS, name="fused", one_use=True)
RULES = [
    Rule("lift_conv", Pat(BASE_OPS, name="root"), _lift),
    Rule("batch_norm_to_pointwise", Pat(Op.BATCH_NORM, name="root", where=bn_foldable), _standalone_bn),
    Rule("bias_to_pointwise", Pat(Op.BIAS_ADD, Pat(name="x"), Pat(Op.VARIABLE, name="b"), name="root"),
         _standalone_bias),
    Rule("activation", Pat(ACTS, _FUSED_ONE, name="root"), _act_into_fused),
    Rule("scaled_residual_add",
         Pat(Op.ADD, Pat(name="r"), Pat(Op.MUL, Pat(FUSED_OPS, name="fused", one_use=True), _CONST, name="mul",
                                        one_use=True, commutative=True),
             name="root", commutative=True, where=_same_shape_add), _add_scaled_residual),
    Rule("residual_add", Pat(Op.ADD, name="root", where=_same_shape_add), _add_residual),
    Rule("scalar_mul", Pat(Op.MUL, Pat(where=plain_epilogue, name="fused", one_use=True), _CONST, name="root",
                           commutative=True), _scale_epilogue),
]

# Second stage: what could not fuse into a producer becomes its own pointwise kernel (run
# after RULES reached a fixpoint, so a leftover never pre-empts a fusion further down).
LEFTOVER_RULES = RULES + [
    Rule("add_to_pointwise", Pat(Op.ADD, name="root", where=lambda n: _same_shape_add(n) and _has_channels(n)),
         _leftover_add),
    Rule("activation_to_pointwise", Pat(ACTS, Pat(), name="root", where=_has_channels), _leftover_act),
    Rule("scalar_mul_to_pointwise", Pat(Op.MUL, Pat(name="x"), _CONST, name="root", commutative=True,
                                        where=_has_channels), _leftover_scalar_mul),
]
