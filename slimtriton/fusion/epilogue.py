"""Pass 4: epilogue fusion into the producing conv / GEMM (see fused_ops.md).

Every remaining conv / matmul becomes its FUSED_* form (identity epilogue), then, at each
consumer, in this order of preference:
  an activation of a fused node          -> its `act` (or `act2` after a residual add)
  add(fused, r)                           -> residual r  (the later-computed operand fuses)
  add(r, c * fused)                       -> residual r with residual_scale c (Inception-ResNet)
  c * fused (affine epilogue only)        -> scale, shift multiplied by c
The absorbed node must have no other consumer (nor be a requested output). What is left
of BN / bias / add / relu / scalar-mul becomes a FUSED_ELEMENTWISE (one pointwise kernel),
which later activations fuse into in turn (second stage, LEFTOVER_RULES).
"""
from __future__ import annotations

from ..ir.ops import ACTIVATION_OPS, FUSED_OPS, Op, node_act
from .common import (BASE_OPS, EPILOGUE_DEFAULTS, FUSED_OF, bn_foldable, bn_recipe, compose_into_epilogue,
                     fused_attrs, n_base_inputs, plain_epilogue)
from .pattern import Pat, Rule


def _constant_affine(ctx, root, scale: float = 1.0):
    """(scale, shift) parameter vectors of `root`'s channels: every scale `scale`, every shift 0."""
    n = root.shape[-1]
    return (ctx.filled(f"{root.name}/epilogue_scale", n, scale, root.dtype),
            ctx.filled(f"{root.name}/epilogue_shift", n, 0.0, root.dtype))


def _lift(match, ctx):
    conv = match["root"]
    fused_op, _ = FUSED_OF[conv.op]
    return ctx.node(fused_op, conv.inputs + _constant_affine(ctx, conv), fused_attrs(conv.op, conv.attrs), conv.name)


def _elementwise(ctx, root, x, scale, shift, residual=None, **attrs):
    a = dict(EPILOGUE_DEFAULTS, residual=residual is not None, **attrs)
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
        return ctx.decline(f"{fused.name} already applies {key}={fused.attrs[key]!r}")
    return ctx.node(fused.op, fused.inputs, dict(fused.attrs, **{key: node_act(root)}), root.name)


def _why_not_candidate(node, root, ctx) -> str | None:
    """Why `node` cannot take `root`'s add as its residual epilogue (None: it can)."""
    if node.op not in FUSED_OPS:
        return f"{node.name} is a {node.op.short}, not a fused conv / GEMM / pointwise node"
    if node.attrs["residual"]:
        return f"{node.name} already has a residual"
    if ctx.uses.get(node.name) != 1:
        return f"{node.name} has {ctx.uses.get(node.name)} consumers (its own output is still needed)"
    if node.shape != root.shape or node.dtype != root.dtype:
        return f"{node.name} is {node.dtype}{list(node.shape)}, the sum {root.dtype}{list(root.shape)}"
    return None


def _residual_candidate(node, root, ctx) -> bool:
    return _why_not_candidate(node, root, ctx) is None


def _with_residual(ctx, fused, residual, root, scale: float):
    if residual.shape != root.shape:
        return ctx.decline(f"the other operand {residual.name}{list(residual.shape)} is broadcast to "
                           f"{list(root.shape)}")
    if residual is fused:
        return ctx.decline(f"both operands are {fused.name}")
    attrs = dict(fused.attrs, residual=True, residual_scale=float(scale))
    n_base = n_base_inputs(fused.op)
    ins = fused.inputs[:n_base + 2] + (residual,) + fused.inputs[n_base + 2:]
    return ctx.node(fused.op, ins, attrs, root.name)


def _add_residual(match, ctx):
    root = match["root"]
    a, b = root.inputs
    cands = [n for n in (a, b) if _residual_candidate(n, root, ctx)]
    if not cands:
        return ctx.decline("; ".join(dict.fromkeys(_why_not_candidate(n, root, ctx) for n in (a, b))))
    # Fuse into the operand computed last, so the other one already exists when it runs.
    fused = max(cands, key=lambda n: ctx.order.get(n.name, -1))
    return _with_residual(ctx, fused, b if fused is a else a, root, 1.0)


def _scalar(node):
    return float(node.attrs["value"])


def _add_scaled_residual(match, ctx):
    root, fused = match["root"], match["fused"]
    why = _why_not_candidate(fused, match["mul"], ctx)
    if why is not None:
        return ctx.decline(why)
    return _with_residual(ctx, fused, match["r"], root, _scalar(match["c"]))


def _scale_epilogue(match, ctx):
    c = _scalar(match["c"])
    return compose_into_epilogue(ctx, match["fused"], match["root"], [], lambda v: (c, 0.0),
                                 f"scalar {c} composed into the epilogue")


def _leftover_add(match, ctx):
    root = match["root"]
    a, b = root.inputs
    return _elementwise(ctx, root, a, *_constant_affine(ctx, root), residual=b)


def _leftover_act(match, ctx):
    root = match["root"]
    return _elementwise(ctx, root, root.inputs[0], *_constant_affine(ctx, root), act=node_act(root))


def _leftover_scalar_mul(match, ctx):
    root = match["root"]
    return _elementwise(ctx, root, match["x"], *_constant_affine(ctx, root, _scalar(match["c"])))


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
    Rule("activation", Pat(ACTIVATION_OPS, _FUSED_ONE, name="root"), _act_into_fused),
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
    Rule("activation_to_pointwise", Pat(ACTIVATION_OPS, Pat(), name="root", where=_has_channels), _leftover_act),
    Rule("scalar_mul_to_pointwise", Pat(Op.MUL, Pat(name="x"), _CONST, name="root", commutative=True,
                                        where=_has_channels), _leftover_scalar_mul),
]
