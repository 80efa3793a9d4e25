"""The IR verifier, run after recording and after every pass.

Checks: each node appears once and its name is unique (single assignment); every
input is defined earlier in the list (topological order, no dangling inputs);
every output is defined; the stored shape and dtype equal what the op's shape
rule infers from the inputs (so a pass cannot leave a node with a stale shape). An unknown
batch (None) is allowed as the leading dimension only, and only where the shape rules carry
it from a placeholder (a variable or a None past dimension 0 is refused by `infer`).
"""
from __future__ import annotations

from .node import NODE_DTYPES, Node
from .shapes import infer


class VerificationError(Exception):
    pass


def verify(nodes, outputs=(), after: str = "recording") -> None:
    seen: set[int] = set()
    names: dict[str, Node] = {}

    def fail(node: Node, msg: str):
        raise VerificationError(f"IR invalid after {after}: node {node.name} ({node.op.short}): {msg}")

    for node in nodes:
        if not isinstance(node, Node):
            raise VerificationError(f"IR invalid after {after}: {node!r} is not a Node")
        if id(node) in seen:
            fail(node, "appears twice in the node list")
        if node.name in names:
            fail(node, f"name is already defined by {names[node.name]!r} (single assignment)")
        for i in node.inputs:
            if id(i) not in seen:
                fail(node, f"input {i.name} is not defined before its use (dangling or out of order)")
        if node.dtype not in NODE_DTYPES:
            fail(node, f"unknown dtype {node.dtype!r}")
        try:
            shape, dtype = infer(node.op, node.inputs, node.attrs, node.name)
        except (ValueError, TypeError, KeyError) as e:
            fail(node, f"shape rule rejects it: {e}")
        if tuple(shape) != node.shape or dtype != node.dtype:
            fail(node, f"stored {node.dtype}{list(node.shape)} but the shape rule gives {dtype}{list(shape)}")
        seen.add(id(node))
        names[node.name] = node
    for out in outputs:
        if id(out) not in seen:
            raise VerificationError(f"IR invalid after {after}: output {out.name} is not defined by any node")
