"""`Session`: run fetches of a recorded graph on a backend, TF1 style.

    sess = Session(g, weights, backend="reference")        # or "torch", "triton"
    logits, probs = sess.run([logits, end_points["predictions"]], {images: batch})
    out = sess.run({"logits": "resnet_v1_50/logits/BiasAdd:0"}, feed_dict={"images": batch})

Fetches are Tensors, Nodes, tensor names, or any nesting of list / tuple / dict of
them; the result has the same structure, with NumPy arrays cast to each fetched
node's dtype (bfloat16, which NumPy lacks, is returned as float32 holding
bfloat16-rounded values). The weights are checked once, at construction, against
the variables the graph uses.

Backends: "reference" (NumPy, float64 inside; the living definition), "torch"
(eager torch, option `dtype`, default float32; `device` default CPU or CUDA when
present) and "triton" (`slimtriton.compiler.compile(graph, outputs, weights,
device=..., **compile_options)`, one compiled model cached per fetch set).

Any batch: a graph recorded with an unknown batch (`st.placeholder([None, ...])`) runs at
the batch of its feeds. The recorded nodes are specialized to that batch
(slimtriton.ir.specialize: every shape re-inferred with the concrete batch), once per
batch (cached); the triton backend compiles one model per fetch set and batch.
"""
from __future__ import annotations

from typing import Any

from .executor import evaluate, needed_nodes
from .feeds import check_value, flatten_fetches, host_feed, rebuild, resolve_feeds, to_numpy
from .ir.graph import Graph
from .ir.node import Node, Tensor
from .ir.ops import Op
from .ir.specialize import feed_batch, has_dynamic_batch, specialize
from .reference import REFERENCE
from .weights import check_weights

BACKENDS = ("reference", "torch", "triton")
_TORCH_OPTIONS = ("dtype",)


def used_variables(graph: Graph, nodes=None) -> "dict[str, Any]":
    """The graph's VariableSpecs that some VARIABLE node in `nodes` (default: the graph) reads."""
    used = {n.attrs["var"] for n in (graph.nodes if nodes is None else nodes) if n.op is Op.VARIABLE}
    return {name: spec for name, spec in graph.variables.items() if name in used}


class Session:
    def __init__(self, graph: Graph, weights, backend: str = "reference", device=None, **compile_options):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
        if not isinstance(graph, Graph):
            raise TypeError(f"Session needs a slimtriton Graph, got {type(graph).__name__}")
        if backend == "reference" and compile_options:
            raise TypeError(f"backend 'reference' takes no options, got {sorted(compile_options)}")
        if backend == "torch":
            unknown = sorted(set(compile_options) - set(_TORCH_OPTIONS))
            if unknown:
                raise TypeError(f"backend 'torch' options are {_TORCH_OPTIONS}, got unknown {unknown}")
        self.graph = graph
        self.backend = backend
        self.device = device
        self.compile_options = dict(compile_options)
        # Every variable a node reads must be given; declared-but-unused ones may be absent (checked
        # when given); any name the graph does not declare is an error. The same check as st.compile.
        check_weights(graph, weights)
        self.weights = dict(weights)
        self._compiled: dict[tuple, Any] = {}
        self._torch = None  # (table, weights on device) built on first use
        self._dynamic = has_dynamic_batch(graph.nodes)
        self._specialized: dict[int, tuple[list[Node], dict[str, Node]]] = {}  # batch -> (nodes, by name)

    # -- context manager (TF1 habit: `with Session(...) as sess:`) ------------------------------
    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._compiled.clear()
        self._specialized.clear()
        self._torch = None

    # -- fetches --------------------------------------------------------------------------------
    def _node(self, fetch) -> Node:
        if isinstance(fetch, Tensor):
            if fetch.graph is not self.graph:
                raise ValueError(f"fetch {fetch.name} belongs to another graph")
            return fetch.node
        if isinstance(fetch, Node):
            if self.graph._by_name.get(fetch.name) is not fetch:
                raise ValueError(f"fetch node {fetch.name} belongs to another graph")
            return fetch
        if isinstance(fetch, str):
            return self.graph.node_by_name(fetch)
        raise TypeError(f"cannot fetch a {type(fetch).__name__} ({fetch!r}); fetches are Tensors, "
                        f"tensor names, or lists/tuples/dicts of them")

    def run(self, fetches, feed_dict=None):
        """Evaluate `fetches` (same structure back, NumPy arrays) with `feed_dict` {Tensor|name: array}."""
        nodes, spec = flatten_fetches(fetches, self._node)
        feeds = resolve_feeds(feed_dict, self._node)
        graph_nodes, batch = self.graph.nodes, None
        if self._dynamic and self.backend != "triton":  # triton: compiled for the batch (_run_triton)
            batch = feed_batch(feeds) or 1  # nothing of the batch fed: no fetched value depends on it
            graph_nodes, by_name = self._specialize(batch)
            nodes = [by_name[n.name] for n in nodes]
            feeds = {by_name[n.name]: v for n, v in feeds.items()}
        if self.backend == "reference":
            values = evaluate(graph_nodes, nodes, feeds, self.weights, REFERENCE, "REFERENCE")
        elif self.backend == "torch":
            values = self._run_torch(graph_nodes, nodes, feeds)
        else:
            values = self._run_triton(nodes, feeds)
        arrays = [to_numpy(v, n.dtype) for v, n in zip(values, nodes)]
        return rebuild(spec, arrays)

    def _specialize(self, batch: int):
        """(the graph's nodes at `batch`, {name: node}), computed once per batch."""
        if batch not in self._specialized:
            nodes = specialize(self.graph.nodes, batch)
            self._specialized[batch] = (nodes, {n.name: n for n in nodes})
        return self._specialized[batch]

    # -- backends -------------------------------------------------------------------------------
    def _run_torch(self, graph_nodes, nodes, feeds):
        from .eager.torch_backend import convert_weights, ieee_float32, make_torch_table, torch_device  # lazy: torch
        dtype = self.compile_options.get("dtype", "float32")
        device = torch_device(self.device)
        if self._torch is None:
            table = make_torch_table(device, dtype, cache_weight_layouts=True)
            self._torch = (table, convert_weights(self.weights, used_variables(self.graph), device, dtype))
        table, weights = self._torch
        with ieee_float32(device, dtype):  # float32 means float32 on CUDA too (no TF32 convs)
            return evaluate(graph_nodes, nodes, feeds, weights, table, "TORCH")

    def _run_triton(self, nodes, feeds):
        """Compile once per fetch set; call the model with feeds by placeholder name."""
        from . import compiler  # lazy: the fusion pipeline and torch, for this backend only
        if not nodes:
            return []
        for node, value in feeds.items():
            if node.op is not Op.PLACEHOLDER:
                raise ValueError(f"backend 'triton' feeds placeholders only; {node.name} is a "
                                 f"{node.op.short} node (use the reference or torch backend to feed it)")
        batch = feed_batch(feeds) if self._dynamic else None
        for node, value in feeds.items():
            # a placeholder of the unknown batch is checked at the fed batch
            check_value(self._specialize(batch)[1][node.name] if node.dynamic_batch else node, value, "placeholder")
        needed = needed_nodes(nodes)
        unfed = [n.name for n in self.graph.nodes
                 if n.op is Op.PLACEHOLDER and id(n) in needed and n not in feeds]
        if unfed:
            raise ValueError(f"placeholders {unfed} must be fed (feed_dict has: "
                             f"{sorted(n.name for n in feeds) or 'nothing'})")
        # the unknown batch: one model per fed batch, planned at exactly that batch
        uses_batch = any(n.dynamic_batch for n in self.graph.nodes if id(n) in needed)
        batch_options = {"batch_sizes": [batch]} if uses_batch and batch is not None else {}
        key = (tuple(id(n) for n in nodes), batch if uses_batch else None)
        model = self._compiled.get(key)
        if model is None:
            model = compiler.compile(self.graph, [Tensor(n, self.graph) for n in nodes], self.weights,
                                     device=self.device, **batch_options, **self.compile_options)
            self._compiled[key] = model
        # Every placeholder feed goes to the model, which ignores those its outputs do not need
        # (the rule of the compiled model and of every Session backend).
        kwargs = {node.name: host_feed(value, node.dtype) for node, value in feeds.items()}
        result = model(**kwargs)
        if len(result) != len(nodes):
            raise RuntimeError(f"compiled model returned {len(result)} values for {len(nodes)} fetches")
        return list(result)

