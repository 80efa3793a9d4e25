"""Pass 1b: activations written as arithmetic become the activation op they spell.

    MAXIMUM(z, MUL(z, a)), a a scalar constant with 0 < a < 1   ->   LEAKY_RELU(z, alpha=a)

(`tf.maximum(z, a * z)`, the leaky relu idiom of pre-`tf.nn.leaky_relu` code; either
operand order of both ops.) For 0 < a < 1, max(z, a*z) is z where z > 0 and a*z elsewhere,
exactly leaky relu, including NaN (both give NaN), +-inf and -0.0. The activation op then
fuses into its producer's epilogue like any other (pass 4). The multiply, when it has
other consumers, stays for them.
"""
from __future__ import annotations

from ..ir.ops import Op
from .pattern import Pat, Rule


def _slope(c) -> bool:
    return 0.0 < float(c.attrs["value"]) < 1.0


def _leaky_relu(match, ctx):
    root, z = match["root"], match["z"]
    if z.shape != root.shape:
        return None  # z is broadcast by the maximum (a shape the activation would not keep)
    return ctx.node(Op.LEAKY_RELU, (z,), {"alpha": float(match["a"].attrs["value"])}, root.name)


RULES = [
    Rule("leaky_relu_idiom",
         Pat(Op.MAXIMUM, Pat(name="z"),
             Pat(Op.MUL, Pat(name="z"), Pat(Op.CONSTANT, name="a", where=_slope), commutative=True),
             name="root", commutative=True),
         _leaky_relu),
]
