"""The one interpreter of node lists, in the torch.fx `Interpreter` style.

    values = evaluate(graph.nodes, [logits], {images_node: batch}, weights, REFERENCE, "REFERENCE")

`Interpreter` walks the nodes the outputs need, in the given (topological) order, and runs
each through `run_node`, which looks the op up in the backend's table (`REFERENCE`:
NumPy, the definition; `TORCH`: eager torch; a missing entry is a NotImplementedError
naming the op and the table). Each table entry is ``table[op](node, inputs) -> value``.
Nodes whose values come from outside the walk (placeholders, variables, fed nodes, values
prepared once) are *loaded*: given to `run` by the caller (a call's feeds), else
`load(node)`, which each subclass defines.

One liveness rule (`frees_after_last_use`): a value is dropped right after the last node
that reads it, unless it is a requested output. It is computed once per interpreter, over
slots (one per node in the order), so the loop itself is straight-line code that
`torch.compile` traces (eager/torch_backend.py `build_torch_callable`).

The subclasses:
- `FeedDictInterpreter` (here; `evaluate`): TF1 feed_dict semantics for any table. Any node
  may be fed: a fed node's value replaces its computation and its inputs are not
  evaluated. PLACEHOLDER nodes must be fed; VARIABLE nodes read ``weights[attrs['var']]``.
  Fed and variable values are checked against the node's static shape and dtype
  (slimtriton/feeds.py `check_value`) before they enter the table, so a bad feed fails
  here with the node's name and both shapes, never deep inside an op. Source ops get the
  raw host value as their single input and convert it.
- `TorchCallable` (eager/torch_backend.py): weights converted once, placeholders fed
  positionally; `build_torch_callable` returns it as a plain function.

`runtime/executor.PlanExecutor` runs plan *steps* (fused kernels writing into arena
slots), not nodes, so it is not a subclass; its liveness is the memory plan's
(runtime/memory.py `frees_after`: a storage is dead after the last step that reads it,
unless it holds an output), the same rule over storages instead of slots.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from .feeds import check_value, describe, feed_node, resolve_feeds
from .ir.node import Node
from .ir.ops import Op, lookup


def needed_nodes(outputs: Iterable[Node], fed: Mapping[int, Any] | set = ()) -> set[int]:
    """ids of the nodes the outputs depend on; the walk stops at fed nodes (ids in `fed`)."""
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


def frees_after_last_use(step_inputs: Sequence[Sequence[int]], keep: Iterable[int]) -> list[tuple[int, ...]]:
    """The liveness rule of every interpreter: per step, the values (slots) it reads for the
    last time, which are dropped after it; `keep` (the requested outputs) are never dropped.

    step_inputs[k]: the slots step k reads (a slot read twice by one step counts once)."""
    last_use: dict[int, int] = {}
    for step, inputs in enumerate(step_inputs):
        for i in inputs:
            last_use[i] = step
    keep = set(keep)
    return [tuple(sorted({i for i in inputs if last_use[i] == step and i not in keep}))
            for step, inputs in enumerate(step_inputs)]


class Interpreter:
    """Run `outputs` of a topologically ordered node list with `table` (see the module docstring).

    nodes: the node list (e.g. ``graph.nodes``) containing the outputs and what they need.
    loaded: nodes whose values `load` gives (the walk does not go into their inputs); source
    ops (PLACEHOLDER, VARIABLE) are always loaded.
    """

    def __init__(self, nodes: Sequence[Node], outputs: Sequence, table: Mapping, table_name: str,
                 loaded: Iterable[Node] = ()):
        self.table, self.table_name = table, table_name
        self.outputs = [getattr(o, "node", o) for o in outputs]
        cut = {id(n) for n in loaded}
        needed = needed_nodes(self.outputs, cut)
        self.order = [n for n in nodes if id(n) in needed]
        if len(self.order) != len(needed):
            listed = {id(n) for n in self.order}
            missing = [o.name for o in self.outputs if id(o) not in listed]
            raise ValueError(f"{table_name}: nodes needed by the outputs are not in the node list "
                             f"(outputs not listed: {missing or 'none; an input is missing'})")
        slot = {id(n): k for k, n in enumerate(self.order)}
        self.slot = slot
        self.loads = [id(n) in cut or n.op in (Op.PLACEHOLDER, Op.VARIABLE) for n in self.order]
        self.input_slots = [() if load else tuple(slot[id(i)] for i in n.inputs)
                            for n, load in zip(self.order, self.loads)]
        self.output_slots = [slot[id(o)] for o in self.outputs]
        self.frees = frees_after_last_use(self.input_slots, self.output_slots)
        for n, load in zip(self.order, self.loads):  # every op the walk runs has an entry: fail now
            if not load:
                lookup(table, n.op, table_name)

    def load(self, node: Node):
        """The value of a loaded node (a placeholder, a variable, a fed node)."""
        raise NotImplementedError(f"{type(self).__name__} does not load {node.op.short} node {node.name}")

    def run_node(self, node: Node, inputs: list, op: Op | None = None):
        """`table[op](node, inputs)` (op: the node's own by default); a plain ValueError/TypeError
        of the op function gets the node's name, op and table added."""
        fn = lookup(self.table, node.op if op is None else op, self.table_name)
        try:
            return fn(node, inputs)
        except (ValueError, TypeError) as e:
            # Richer exception types (subclasses with their own fields) and messages that already
            # name the node pass as they are.
            if type(e) not in (ValueError, TypeError) or node.name in str(e):
                raise
            raise type(e)(f"{node.name} ({node.op.short}, {self.table_name}): {e}") from e

    def run(self, given: Mapping[int, Any] | None = None) -> list:
        """The outputs' values, in order. given: {slot: value} of loaded nodes whose values the
        caller has (a call's feeds), so that `load` is not asked and one interpreter serves
        concurrent calls."""
        given = {} if given is None else given
        values: list = [None] * len(self.order)
        for k, node in enumerate(self.order):
            if k in given:
                values[k] = given[k]
            elif self.loads[k]:
                values[k] = self.load(node)
            else:
                values[k] = self.run_node(node, [values[i] for i in self.input_slots[k]])
            for i in self.frees[k]:
                values[i] = None
        return [values[k] for k in self.output_slots]


class FeedDictInterpreter(Interpreter):
    """TF1 `sess.run(outputs, feed_dict)` on any table (see the module docstring).

    feeds: {Node | Tensor | name: raw value}; every needed placeholder must be fed.
    weights: {variable name: raw value}.
    """

    def __init__(self, nodes: Sequence[Node], outputs: Sequence, feeds: Mapping | None,
                 weights: Mapping[str, Any], table: Mapping, table_name: str):
        nodes = list(nodes)
        by_name = {n.name: n for n in nodes}

        def node_named(name: str) -> Node:
            if name not in by_name:
                raise KeyError(f"feed_dict key {name!r} names no node of this graph")
            return by_name[name]

        fed = resolve_feeds(feeds, lambda key: feed_node(key, node_named))
        self.feeds = {id(node): (node, value) for node, value in fed.items()}
        self.weights = weights
        super().__init__(nodes, outputs, table, table_name, loaded=[n for n, _ in self.feeds.values()])

    def load(self, node: Node):
        if id(node) in self.feeds:
            _, raw = self.feeds[id(node)]
            is_placeholder = node.op is Op.PLACEHOLDER
            check_value(node, raw, "placeholder" if is_placeholder else "feed for node")
            # a fed VARIABLE converts as a variable; any other fed node as a placeholder of its dtype
            return self.run_node(node, (raw,), node.op if node.op in (Op.PLACEHOLDER, Op.VARIABLE)
                                 else Op.PLACEHOLDER)
        if node.op is Op.PLACEHOLDER:
            fed_names = sorted(n.name for n, _ in self.feeds.values())
            raise ValueError(f"placeholder {node.name} {describe(node.dtype, node.shape)} must be fed "
                             f"(feed_dict has: {fed_names or 'nothing'})")
        var = node.attrs["var"]
        if var not in self.weights:
            raise KeyError(f"variable {var} (node {node.name}, {describe(node.dtype, node.shape)}) "
                           f"has no value in the weights")
        raw = self.weights[var]
        check_value(node, raw, "weights for variable")
        return self.run_node(node, (raw,), Op.VARIABLE)


def evaluate(nodes: Sequence[Node], outputs: Sequence, feeds: Mapping | None,
             weights: Mapping[str, Any], table: Mapping, table_name: str) -> list:
    """Interpret `outputs` with `table` under feed_dict semantics; returns their values, in order
    (`FeedDictInterpreter`)."""
    return FeedDictInterpreter(nodes, outputs, feeds, weights, table, table_name).run()
