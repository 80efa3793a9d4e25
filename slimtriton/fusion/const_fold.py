"""Pass 0: fold weight-only subgraphs into new parameters.

A node whose inputs are all parameters (VARIABLE) or scalar CONSTANTs computes the same
array on every call (e.g. the TILE that spreads conv2d_in_plane's one kernel over every
channel). It becomes a derived parameter, computed once from the weights with the NumPy
reference; folding proceeds forward, so chains of such nodes fold to their last node.
"""
from __future__ import annotations

import numpy as np

from ..ir.ops import PARAMETER_OPS, SOURCE_OPS, Op, lookup
from ..reference import REFERENCE  # the living definition of every op computes the folded values
from .pattern import Pat, Rule

def _weight_only(node) -> bool:
    return (node.op not in SOURCE_OPS and bool(node.inputs)
            and all(i.op in PARAMETER_OPS for i in node.inputs)
            and any(i.op is Op.VARIABLE for i in node.inputs))


def _fold(match, ctx):
    node = match["root"]
    inputs = node.inputs

    def compute(values, node=node, inputs=inputs):
        args = [values[i.attrs["var"]] if i.op is Op.VARIABLE else np.float64(i.attrs["value"]) for i in inputs]
        return lookup(REFERENCE, node.op, "REFERENCE")(node, args)

    sources = [i.attrs["var"] for i in inputs if i.op is Op.VARIABLE]
    return ctx.param(f"{node.name}/folded", node.shape, sources, compute,
                     f"weight-only {node.op.short} folded", node.dtype)


RULES = [Rule("fold_weight_only", Pat(where=_weight_only, name="root"), _fold)]
