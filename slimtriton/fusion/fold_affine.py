"""Pass 3: fold inference batch norm and bias into conv / fully-connected weights.

    BATCH_NORM(CONV(x, w)) -> FUSED_CONV(x, w * s, scale=1, shift=beta - mean * s)
    BIAS_ADD(CONV(x, w), b) -> FUSED_CONV(x, w, scale=1, shift=b)
    BATCH_NORM / BIAS_ADD of a fused node whose epilogue is still only affine -> composed
    into its (scale, shift).

New parameters get derived names (`<bn scope>/folded_weights`, `.../epilogue_shift`) and are
computed in float64 from the originals (slimtriton.fusion.folding), which stay untouched.
The conv must have no other consumer; when its weights are not a parameter the BN scale
goes to the epilogue instead of the weights.
"""
from __future__ import annotations

import numpy as np

from ..ir.ops import Op
from . import folding
from .common import (BASE_OPS, FUSED_OF, bn_foldable, bn_recipe, compose_into_epilogue, fused_attrs, is_var,
                     plain_epilogue, var)
from .pattern import Pat, Rule


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
    b = var(match["b"])
    return compose_into_epilogue(ctx, match["fused"], match["root"], [b],
                                 lambda v: (np.ones_like(v[b]), v[b]), "bias composed into the epilogue")


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
