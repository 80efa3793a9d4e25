"""Specialize a graph recorded with an unknown batch to a concrete one.

    nodes = specialize(g.nodes, batch=3)     # same names, same order; every [None, ...] -> [3, ...]

A graph recorded from `st.placeholder([None, H, W, C])` carries `None` as the leading
dimension of every node that keeps the batch. Executors and the compiler never see `None`:
they run a copy of the nodes made concrete by this pure function, which substitutes the
batch into the attributes that hold it (a placeholder's `shape`, a reshape's `shape`) and
re-infers every shape with the op's shape rule (so a node's shape can never disagree with
its rule). The input list is untouched; nodes without the batch are rebuilt with the same
fields. `Session` caches one specialization per batch; `st.compile(..., max_batch=N)`
plans one per batch bucket.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from .node import Node
from .ops import Op
from .shapes import infer

# Ops whose attributes hold a shape whose leading dimension may be the unknown batch.
_SHAPE_ATTR_OPS = (Op.PLACEHOLDER, Op.RESHAPE)


def has_dynamic_batch(nodes: Iterable[Node]) -> bool:
    """True when some node's leading dimension is the unknown batch (None)."""
    return any(n.dynamic_batch for n in nodes)


def specialize(nodes: Sequence[Node], batch: int) -> list[Node]:
    """`nodes` (topologically ordered) with the unknown batch replaced by `batch`; names,
    order, ops and every other attribute unchanged. Every node is re-inferred by its shape
    rule; a graph without an unknown batch comes back as equal copies."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    new: dict[int, Node] = {}
    out: list[Node] = []
    for node in nodes:
        try:
            inputs = tuple(new[id(i)] for i in node.inputs)
        except KeyError:
            missing = [i.name for i in node.inputs if id(i) not in new]
            raise ValueError(f"specialize: node {node.name} reads {missing}, not listed before it") from None
        attrs = dict(node.attrs)
        if node.op in _SHAPE_ATTR_OPS and attrs.get("shape") and attrs["shape"][0] is None:
            attrs["shape"] = (batch, *attrs["shape"][1:])
        shape, dtype = infer(node.op, inputs, attrs, node.name)
        made = Node.make(node.op, inputs, attrs, shape, dtype, node.name)
        new[id(node)] = made
        out.append(made)
    return out


def feed_batch(feeds: Mapping[Node, object], where: str = "feed_dict") -> "int | None":
    """The batch of the feeds of nodes with an unknown batch (their arrays' leading dimension),
    None when no such node is fed. Feeds that disagree are one ValueError naming them all."""
    batches: dict[str, int] = {}
    for node, value in feeds.items():
        if not node.dynamic_batch:
            continue
        if hasattr(value, "shape"):  # NumPy arrays, torch tensors
            shape = tuple(value.shape)
        else:  # nested lists, as feed_dict allows
            import numpy as np  # lazy: the IR imports no NumPy; only nested-list feeds need it
            shape = np.shape(value)
        if len(shape) != len(node.shape):
            raise ValueError(f"{where}: {node.name} expects shape {list(node.shape)} (any batch), got an array "
                             f"of shape {list(shape)}")
        batches[node.name] = int(shape[0])
    if not batches:
        return None
    if len(set(batches.values())) > 1:
        raise ValueError(f"{where}: the feeds of the unknown batch disagree on its size: "
                         + ", ".join(f"{k} has batch {v}" for k, v in batches.items()))
    batch = next(iter(batches.values()))
    if batch < 1:
        raise ValueError(f"{where}: batch {batch} fed to {sorted(batches)}; a batch must be >= 1")
    return batch
