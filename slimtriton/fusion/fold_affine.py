"""Pass 3: fold inference batch norm and bias into conv / fully-connected weights.

    BATCH_NORM(CONV(x, w)) -> FUSED_CONV(x, w * s, scale=1, shift=beta - mean * s)
    BIAS_ADD(CONV(x, w), b) -> FUSED_CONV(x, w, scale=1, shift=b)
    BATCH_NORM / BIAS_ADD of a fused node whose epilogue is still only affine -> composed
    into its (scale, shift).

New parameters get derived names (`<bn scope>/folded_weights`, `.../epilogue_shift`) and are
computed in float64 from the originals (slimtriton.fusion.folding), which stay untouched.
The conv must have no other consumer; when its weights are not a parameter the BN scale
goes to the epilogue instead of the weights. A scale of constant 1 (a `fill`) is not loaded
by the kernels at all: the lowering passes scale=None (HAS_SCALE=False).

`keep_scale` (run by st.compile when the weights are known, after the IR passes) undoes the
folding of a layer whose folded weights would lose precision in the compute dtype
(folding.folding_precision_loss: e.g. gamma=1e-4, variance=1e4 makes float16 weights
subnormal): the conv keeps its own weights and the BN scale stays in the fp32 epilogue.
A plan without weights (the audit's) assumes every layer folds.
"""
from __future__ import annotations

import numpy as np

from ..ir.ops import Op
from . import folding, horizontal
from .common import (BASE_OPS, FUSED_OF, bn_foldable, bn_recipe, compose_into_epilogue, fused_attrs, is_var,
                     plain_epilogue, var)
from .pattern import Pat, Rule
from .program import FoldedScale, Program, parameter_values, rewrite


def _conv_bn(match, ctx):
    conv, bn = match["conv"], match["root"]
    fused_op, layout = FUSED_OF[conv.op]
    sources, affine = bn_recipe(bn)
    x, w = conv.inputs
    c_out = conv.shape[-1]
    if is_var(w):
        wname = var(w)
        new_w = ctx.param(f"{bn.name}/folded_weights", w.shape, [wname] + sources,
                          lambda v: folding.scale_output_channels(v[wname], affine(v)[0], layout),
                          "conv weights with the batch norm scale folded in", w.dtype)
        ctx.program.folds[var(new_w)] = FoldedScale(bn.name, w, tuple(sources), lambda v: affine(v)[0], layout)
        scale = ctx.filled(f"{bn.name}/epilogue_scale", c_out, 1.0, bn.dtype)
    else:
        new_w = w
        scale = ctx.param(f"{bn.name}/epilogue_scale", (c_out,), sources, lambda v: affine(v)[0],
                          "batch norm scale", bn.dtype)
    shift = ctx.param(f"{bn.name}/epilogue_shift", (c_out,), sources, lambda v: affine(v)[1],
                      "batch norm shift (beta - mean * scale)", bn.dtype)
    return ctx.node(fused_op, (x, new_w, scale, shift), fused_attrs(conv.op, conv.attrs), bn.name)


def _conv_bias(match, ctx):
    conv, root = match["conv"], match["root"]
    fused_op, _ = FUSED_OF[conv.op]
    scale = ctx.filled(f"{root.name}/epilogue_scale", conv.shape[-1], 1.0, root.dtype)
    return ctx.node(fused_op, conv.inputs + (scale, match["b"]), fused_attrs(conv.op, conv.attrs), root.name)


def _fused_bn(match, ctx):
    sources, affine = bn_recipe(match["root"])
    return compose_into_epilogue(ctx, match["fused"], match["root"], sources, affine,
                                 "batch norm composed into the epilogue")


def _fused_bias(match, ctx):
    """(x*scale + shift) + b: only the shift changes; the scale node is kept as it is (a
    constant 1 stays a constant the kernels need not load)."""
    fused, root, b = match["fused"], match["root"], var(match["b"])
    shift = fused.inputs[-1]
    if not is_var(shift):
        return None
    tn = var(shift)
    new_shift = ctx.param(f"{root.name}/epilogue_shift", (fused.shape[-1],), [tn, b], lambda v: v[tn] + v[b],
                          "bias composed into the epilogue", root.dtype)
    return ctx.node(fused.op, fused.inputs[:-1] + (new_shift,), dict(fused.attrs), root.name)


_BN = dict(where=bn_foldable, rest=True, name="root")
RULES = [
    Rule("conv_batch_norm", Pat(Op.BATCH_NORM, Pat(BASE_OPS, name="conv", one_use=True), **_BN), _conv_bn),
    Rule("conv_bias", Pat(Op.BIAS_ADD, Pat(BASE_OPS, name="conv", one_use=True), Pat(Op.VARIABLE, name="b"),
                          name="root"), _conv_bias),
    Rule("fused_batch_norm", Pat(Op.BATCH_NORM, Pat(where=plain_epilogue, name="fused", one_use=True), **_BN),
         _fused_bn),
    Rule("fused_bias", Pat(Op.BIAS_ADD, Pat(where=plain_epilogue, name="fused", one_use=True),
                           Pat(Op.VARIABLE, name="b"), name="root"), _fused_bias),
]


# -- undoing a fold that loses precision (needs the weights' values) ------------------------------
_GEMM_OPS = frozenset(f for f, _ in FUSED_OF.values()) | {Op.FUSED_MEAN_MATMUL}  # inputs x, w, scale, shift
# (weights input, scale input) pairs of a fused node that BN folding may have scaled: a window
# conv (pass 5b) carries its 1x1 weights / epilogue scale and its depthwise weights / win_scale.
_WEIGHT_SCALE_INPUTS = {**{op: ((1, 2),) for op in _GEMM_OPS}, Op.FUSED_WINDOW_CONV2D: ((1, 2), (4, 5))}


def _folds(program: Program, node) -> list[tuple[int, int, FoldedScale]]:
    """(weights index, scale index, fold record) of each BN-folded weight of a fused conv / GEMM."""
    found = []
    for wi, si in _WEIGHT_SCALE_INPUTS.get(node.op, ()):
        if si < len(node.inputs) and is_var(node.inputs[wi]) and is_var(node.inputs[si]):
            fold = program.folds.get(var(node.inputs[wi]))
            if fold is not None:
                found.append((wi, si, fold))
    return found


def _wide_members(program: Program, node) -> tuple[str, ...]:
    """The member weights (parameter names, in column order) of a wide conv of sibling convs
    (fusion/horizontal.py), or () for any other node."""
    if node.op is not Op.FUSED_CONV2D or not is_var(node.inputs[1]):
        return ()
    d = program.derived.get(var(node.inputs[1]))
    return d.sources if d is not None and d.why == horizontal.WEIGHTS_WHY else ()


def _unfold_wide(ctx, node, losing_members: dict):
    """A wide conv with the members in `losing_members` ({member weights name: fold}) unfolded:
    their unfolded weights in the concatenation, their BN scale in their range of the epilogue scale."""
    program = ctx.program
    members = _wide_members(program, node)
    losing_members = {m: f for m, f in losing_members.items() if m in members}
    if not losing_members:
        return None  # already unfolded (the rewrite's next sweep)
    scale = node.inputs[2]
    sd = program.derived.get(var(scale))
    scale_parts = sd.sources if sd is not None and sd.why == horizontal.SCALE_WHY else None
    fill = scale.attrs.get("fill", 1.0)
    parts = tuple(var(losing_members[m].weights) if m in losing_members else m for m in members)
    for m in members:
        if m in losing_members:
            ctx.emit(losing_members[m].weights)
    new_w = ctx.param(f"{node.name}/weights", node.inputs[1].shape, parts,
                      lambda v, p=parts: folding.concat_output_channels([v[n] for n in p]),
                      horizontal.WEIGHTS_WHY, node.inputs[1].dtype)

    def wide_scale(v):
        cols = []
        for k, m in enumerate(members):
            s = v[scale_parts[k]] if scale_parts else np.full(v[m].shape[-1], fill)
            cols.append(s * losing_members[m].scale(v) if m in losing_members else s)
        return folding.concat_output_channels(cols)
    sources = list(members) + list(scale_parts or ()) + [s for f in losing_members.values() for s in f.sources]
    new_scale = ctx.param(f"{node.name}/epilogue_scale", scale.shape, tuple(dict.fromkeys(sources)), wide_scale,
                          "sibling epilogue scales side by side, batch norm scale kept out of the weights of "
                          + ", ".join(f.layer for f in losing_members.values()), scale.dtype)
    return ctx.node(node.op, (node.inputs[0], new_w, new_scale) + node.inputs[3:], dict(node.attrs), node.name)


def keep_scale(program: Program, weights, dtype: str, log=None) -> Program:
    """`program` with the BN scale moved back from the weights into the fp32 epilogue of every
    layer whose folded weights lose precision in `dtype`; `program.kept_scale` says which and why
    (keyed by the fused node, `node:window` for a window conv's depthwise weights, or `node:<batch norm>`
    for a member of a wide conv of sibling convs)."""
    value = parameter_values(program, weights)
    losing: dict[str, str] = {}
    wide_losing: dict[str, dict] = {}  # wide conv (fusion/horizontal.py) -> {member weights name: fold}
    for node in program.nodes:
        for wi, _, fold in _folds(program, node):
            why = folding.folding_precision_loss(value(var(fold.weights)), fold.scale(
                {s: value(s) for s in fold.sources}), fold.layout, dtype)
            if why is not None:
                losing[_key(node, wi)] = why
        for member in _wide_members(program, node):
            fold = program.folds.get(member)
            if fold is not None:
                why = folding.folding_precision_loss(value(var(fold.weights)), fold.scale(
                    {s: value(s) for s in fold.sources}), fold.layout, dtype)
                if why is not None:
                    losing[f"{node.name}:{fold.layer}"] = why
                    wide_losing.setdefault(node.name, {})[member] = fold

    def unfold(match, ctx):
        node = match["root"]
        if node.name in wide_losing:
            return _unfold_wide(ctx, node, wide_losing[node.name])
        ins = list(node.inputs)
        for wi, si, fold in _folds(ctx.program, node):
            if _key(node, wi) not in losing:
                continue
            old_scale = var(ins[si])  # a constant 1, or what later passes composed onto it
            ins[si] = ctx.param(f"{fold.layer}/epilogue_scale", (ins[si].shape[-1],), (old_scale,) + fold.sources,
                                lambda v, o=old_scale, f=fold: v[o] * f.scale(v), "batch norm scale (kept out of "
                                "the weights: folding loses precision)", ins[si].dtype)
            ctx.emit(fold.weights)
            ins[wi] = fold.weights
        if all(a is b for a, b in zip(ins, node.inputs)):
            return None
        return ctx.node(node.op, tuple(ins), dict(node.attrs), node.name)

    if losing:
        program = rewrite(program, [Rule("keep_scale", Pat(frozenset(_WEIGHT_SCALE_INPUTS), name="root"), unfold)], after="keep_scale")
    for name, why in losing.items():
        if log is not None:
            log(f"keep_scale: {name}: batch norm scale kept in the fp32 epilogue: {why}")
    program.kept_scale = dict(losing)
    return program


def _key(node, weights_index: int) -> str:
    return node.name if weights_index == 1 else f"{node.name}:window"
