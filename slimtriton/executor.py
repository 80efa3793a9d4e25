"""One interpretive loop for every table-driven backend (REFERENCE, TORCH).

    values = evaluate(graph.nodes, [logits], {images_node: batch}, weights, REFERENCE, "REFERENCE")

Only the nodes the outputs need are interpreted, in the given (topological) order.
Any node may be fed (as TF1's feed_dict allows): a fed node's value replaces its
computation and its inputs are not evaluated. PLACEHOLDER nodes must be fed;
VARIABLE nodes read ``weights[attrs['var']]``. Fed and variable values are checked
against the node's static shape and dtype before they enter the table, so a bad
feed fails here with the node's name and both shapes, never deep inside an op.
Each table entry is ``table[op](node, inputs) -> value``; source ops (placeholder,
variable) get the raw host value as their single input and convert it.
Intermediate values are dropped after their last use.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .ir.node import FLOAT_DTYPES, Node
from .ir.ops import Op, lookup

_INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def dtype_name(value) -> str:
    """'float32', 'int64', ... for a NumPy array, a torch tensor or a Python scalar/list."""
    dt = getattr(value, "dtype", None)
    if dt is None:
        dt = np.asarray(value).dtype
    return str(dt).replace("torch.", "")


def _kind(dtype: str) -> str:
    if dtype in FLOAT_DTYPES:
        return "float"
    if dtype in _INT_DTYPES:
        return "int"
    return dtype


def _describe(dtype: str, shape) -> str:
    return f"{dtype}[{','.join(str(int(d)) for d in shape)}]"


def check_value(node: Node, value, what: str) -> None:
    """Raise ValueError unless `value` has the node's shape and a dtype of the same kind.

    Any float array may feed a float node (it is converted, as TF1's feed_dict does);
    integers feed integer nodes, bools feed bool nodes.
    """
    shape = tuple(int(d) for d in getattr(value, "shape", np.shape(value)))
    dtype = dtype_name(value)
    if shape != tuple(node.shape) or _kind(dtype) != _kind(node.dtype):
        raise ValueError(f"{what} {node.name}: expected {_describe(node.dtype, node.shape)}, "
                         f"got {_describe(dtype, shape)}")


def _resolve_feeds(feeds: Mapping | None, by_name: dict[str, Node]) -> dict[int, tuple[Node, Any]]:
    resolved: dict[int, tuple[Node, Any]] = {}
    for key, value in (feeds or {}).items():
        node = getattr(key, "node", key)  # a Tensor, a Node or a name
        if isinstance(node, str):
            name = node.split(":")[0]
            if name not in by_name:
                raise KeyError(f"feed_dict key {key!r} names no node of this graph")
            node = by_name[name]
        if not isinstance(node, Node):
            raise TypeError(f"feed_dict keys must be Tensors, Nodes or names, got {type(key).__name__}")
        resolved[id(node)] = (node, value)
    return resolved


def needed_nodes(outputs: Iterable[Node], fed: Mapping[int, Any] = ()) -> set[int]:
    """ids of the nodes the outputs depend on; the walk stops at fed nodes."""
    needed: set[int] = set()
    stack = list(outputs)
    while stack:
        node = stack.pop()
        if id(node) in needed:
            continue
        needed.add(id(node))
        if id(node) not in fed:
            stack.extend(node.inputs)
    return needed


def evaluate(nodes: Sequence[Node], outputs: Sequence[Node], feeds: Mapping | None,
             weights: Mapping[str, Any], table: Mapping, table_name: str) -> list:
    """Interpret `outputs` with `table`; returns their values, in order.

    nodes: topologically ordered node list (e.g. ``graph.nodes``) containing the outputs.
    feeds: {Node | Tensor | name: value}; every needed placeholder must be fed.
    weights: {variable name: array}.
    """
    outputs = [getattr(o, "node", o) for o in outputs]
    by_name = {n.name: n for n in nodes}
    fed = _resolve_feeds(feeds, by_name)
    needed = needed_nodes(outputs, fed)

    order = [n for n in nodes if id(n) in needed]
    if len(order) != len(needed):
        listed = {id(n) for n in order}
        missing = [o.name for o in outputs if id(o) not in listed]
        raise ValueError(f"{table_name}: nodes needed by the outputs are not in the node list "
                         f"(outputs not listed: {missing or 'none; an input is missing'})")
    # Drop each value after its last consumer (outputs are kept to the end).
    last_use: dict[int, int] = {}
    for step, node in enumerate(order):
        if id(node) not in fed:
            for i in node.inputs:
                last_use[id(i)] = step
    keep = {id(o) for o in outputs}

    values: dict[int, Any] = {}
    for step, node in enumerate(order):
        if id(node) in fed:
            _, raw = fed[id(node)]
            check_value(node, raw, "placeholder" if node.op is Op.PLACEHOLDER else "feed for node")
            values[id(node)] = _apply(table, table_name, node, node.op if node.op in (
                Op.PLACEHOLDER, Op.VARIABLE) else Op.PLACEHOLDER, (raw,))
        elif node.op is Op.PLACEHOLDER:
            fed_names = sorted(n.name for n, _ in fed.values())
            raise ValueError(f"placeholder {node.name} {_describe(node.dtype, node.shape)} must be fed "
                             f"(feed_dict has: {fed_names or 'nothing'})")
        elif node.op is Op.VARIABLE:
            var = node.attrs["var"]
            if var not in weights:
                raise KeyError(f"variable {var} (node {node.name}, {_describe(node.dtype, node.shape)}) "
                               f"has no value in the weights")
            raw = weights[var]
            check_value(node, raw, "weights for variable")
            values[id(node)] = _apply(table, table_name, node, Op.VARIABLE, (raw,))
        else:
            inputs = [values[id(i)] for i in node.inputs]
            values[id(node)] = _apply(table, table_name, node, node.op, inputs)
            for i in node.inputs:
                if last_use.get(id(i)) == step and id(i) not in keep:
                    values.pop(id(i), None)
    return [values[id(o)] for o in outputs]


def _apply(table, table_name: str, node: Node, op: Op, inputs):
    fn = lookup(table, op, table_name)
    try:
        return fn(node, inputs)
    except (ValueError, TypeError) as e:
        # Add the node's name to plain errors from the op functions; richer exception types
        # (subclasses with their own fields) and messages that already name the node pass as-is.
        if type(e) not in (ValueError, TypeError) or node.name in str(e):
            raise
        raise type(e)(f"{node.name} ({node.op.short}, {table_name}): {e}") from e
