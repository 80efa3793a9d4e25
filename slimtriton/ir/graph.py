"""The recording graph: nodes in topological (recording) order, variables, collections.

    with st.Graph() as g:
        x = st.placeholder([None, 224, 224, 3], name="images")   # None: any batch
        net = slim.conv2d(x, 64, [7, 7], stride=2, scope="conv1")
    print(g)            # one line per node

Layers never compute: each call appends immutable `Node`s via `record`, whose
output shape and dtype come from the op's shape rule (ir/shapes.py).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import threading
from collections import Counter, OrderedDict
from typing import Any, Callable, Optional

from .node import NODE_DTYPES, Node, Tensor
from .ops import Op
from .shapes import infer

_local = threading.local()


def _graph_stack() -> list:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


def get_default_graph() -> "Graph":
    stack = _graph_stack()
    if not stack:
        raise RuntimeError("no active slimtriton graph: record layers inside `with st.Graph() as g:`")
    return stack[-1]


@dataclasses.dataclass
class VariableSpec:
    """What a TF-Slim variable is, without a value (values live in a weights dict)."""
    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    initializer: Optional[Callable] = None  # initializer(shape, dtype, rng) -> np.ndarray
    regularizer: Optional[Callable] = None  # recorded, never evaluated by the compiler
    trainable: bool = True
    collections: tuple[str, ...] = ()
    node: Optional[Node] = dataclasses.field(default=None, repr=False)

    @property
    def size(self) -> int:
        return math.prod(self.shape)


class Graph:
    def __init__(self):
        self.nodes: list[Node] = []
        self.variables: "OrderedDict[str, VariableSpec]" = OrderedDict()
        self.collections: "OrderedDict[str, list]" = OrderedDict()
        self.name_scope_prefix: str = ""  # "a/b/" while inside name scopes; set by the front end
        self.scope_state: dict[str, Any] = {}  # front-end bookkeeping (variable scopes, counters)
        self._names_in_use: dict[str, int] = {}
        self._by_name: dict[str, Node] = {}

    # -- context manager: the default graph -------------------------------------------------
    def __enter__(self) -> "Graph":
        _graph_stack().append(self)
        return self

    def __exit__(self, *exc) -> None:
        stack = _graph_stack()
        assert stack and stack[-1] is self, "graph contexts exited out of order"
        stack.pop()

    def as_default(self) -> "Graph":
        return self

    # -- names --------------------------------------------------------------------------------
    def unique_name(self, name: str, mark_as_used: bool = True) -> str:
        """TF's rule: the first `foo` stays `foo`, later ones become `foo_1`, `foo_2`, ..."""
        key = name.lower()
        count = self._names_in_use.get(key, 0)
        unique = name
        if count > 0:
            i = count
            while f"{key}_{i}" in self._names_in_use:
                i += 1
            unique = f"{name}_{i}"
            if mark_as_used:
                self._names_in_use[key] = i + 1
                self._names_in_use[unique.lower()] = 1
            return unique
        if mark_as_used:
            self._names_in_use[key] = 1
        return unique

    def node_by_name(self, name: str) -> Node:
        try:
            return self._by_name[name.split(":")[0]]
        except KeyError:
            raise KeyError(f"no node named {name!r} in this graph") from None

    def tensor(self, node_or_name) -> Tensor:
        node = node_or_name if isinstance(node_or_name, Node) else self.node_by_name(node_or_name)
        return Tensor(node, self)

    # -- recording ----------------------------------------------------------------------------
    def add_node(self, op: Op, inputs, attrs: dict, name: str) -> Node:
        """Append one node; `name` is the full (already scoped) base name, uniquified here."""
        inputs = tuple(inputs)
        for i in inputs:
            if not isinstance(i, Node):
                raise TypeError(f"{name}: inputs must be IR nodes, got {type(i).__name__}")
            if self._by_name.get(i.name) is not i:
                raise ValueError(f"{name}: input {i.name!r} belongs to another graph")
        unique = self.unique_name(name)
        if op is Op.VARIABLE and name not in self._by_name:
            unique = name  # a variable's node is named exactly as the variable (`conv/weights` beside `Conv/weights`)
        shape, dtype = infer(op, inputs, attrs, unique)
        node = Node.make(op, inputs, attrs, shape, dtype, unique)
        self.nodes.append(node)
        self._by_name[unique] = node
        return node

    # Recording with Tensors (Tensor's Python operators call these).
    def record(self, op: Op, inputs, attrs: dict, base_name: str) -> Tensor:
        return record(op, inputs, attrs, base_name)

    def binary_op(self, op: Op, a, b) -> Tensor:
        return binary_op(op, a, b)

    def add_to_collection(self, collection: str, value) -> None:
        self.collections.setdefault(collection, []).append(value)

    def get_collection(self, collection: str) -> list:
        return list(self.collections.get(collection, []))

    # -- printing -----------------------------------------------------------------------------
    def __str__(self) -> str:
        return format_nodes(self.nodes)

    def summary(self) -> str:
        counts = Counter(n.op.short for n in self.nodes if n.op is not Op.VARIABLE)
        n_params = sum(v.size for v in self.variables.values())
        parts = ", ".join(f"{k} {v}" for k, v in counts.most_common())
        return (f"Graph: {len(self.nodes)} nodes ({parts}); "
                f"{len(self.variables)} variables, {n_params:,} parameters")


def format_nodes(nodes) -> str:
    """One line per node: name, op(inputs), attributes, output dtype and shape."""
    lines = []
    for n in nodes:
        if n.op is Op.VARIABLE:
            continue  # variables are listed by g.variables; their reads are plain inputs
        ins = ", ".join(i.name for i in n.inputs)
        attrs = " ".join(f"{k}={_short(v)}" for k, v in n.attrs.items()
                         if not (n.op is Op.PLACEHOLDER and k in ("shape", "dtype")))
        lines.append(f"{n.name:<60s} {n.op.short}({ins}) {attrs} -> {n.dtype}{list(n.shape)}".rstrip())
    return "\n".join(lines)


def _short(v):
    return str(v).replace(" ", "")


# -- recording helpers used by the front end and Tensor operators -------------------------
def graph_of(values) -> "Graph":
    """The graph of the first Tensor in `values` (a list may hold lists of Tensors; None is
    empty), else the default graph."""
    for v in values or ():
        if isinstance(v, Tensor):
            return v.graph
        if isinstance(v, (list, tuple)):
            for w in v:
                if isinstance(w, Tensor):
                    return w.graph
    return get_default_graph()


def record(op: Op, inputs, attrs: dict, base_name: str) -> Tensor:
    """Record one node under the current name scope and return its tensor."""
    g = graph_of(inputs)
    nodes = [as_tensor(i, g).node for i in inputs]
    node = g.add_node(op, nodes, attrs, g.name_scope_prefix + base_name)
    return Tensor(node, g)


def check_placeholder_shape(shape, where: str) -> tuple:
    """The shape as a tuple of positive ints, whose leading (batch) dimension may be None
    (unknown: any batch). A None anywhere else, or any other value, is a ValueError naming
    the dimension."""
    try:
        shape = tuple(shape)
    except TypeError:
        raise ValueError(f"{where}: shape must be a list of ints, got {shape!r}") from None
    for axis, d in enumerate(shape):
        if d is None:
            if axis != 0:
                raise ValueError(f"{where}: dimension {axis} of shape {list(shape)} is None; only the leading "
                                 f"(batch) dimension may be unknown")
        elif isinstance(d, bool) or not isinstance(d, int) or d <= 0:
            raise ValueError(f"{where}: dimension {axis} of shape {list(shape)} must be a positive int"
                             + (" (or None for the batch, dimension 0)" if axis == 0 else "") + f", got {d!r}")
    return shape


def placeholder(shape, dtype: str = "float32", name: str = "Placeholder") -> Tensor:
    """`shape`: positive ints; the leading (batch) dimension may be None (any batch)."""
    g = get_default_graph()
    if dtype not in NODE_DTYPES:
        raise TypeError(f"placeholder {name!r}: unknown dtype {dtype!r}; expected one of {NODE_DTYPES}")
    shape = check_placeholder_shape(shape, f"placeholder {name!r}")
    node = g.add_node(Op.PLACEHOLDER, (), {"shape": shape, "dtype": dtype}, g.name_scope_prefix + name)
    return Tensor(node, g)


def constant(value, dtype: str = "float32", name: str = "Const", graph: "Graph | None" = None) -> Tensor:
    """A scalar constant (the IR holds no array constants: arrays are variables)."""
    if not isinstance(value, numbers.Number) or isinstance(value, bool):
        raise TypeError(f"constant {name!r}: only python scalars are supported, got {type(value).__name__}")
    g = graph or get_default_graph()
    value = float(value) if dtype in ("float32", "float16", "bfloat16", "float64") else int(value)
    node = g.add_node(Op.CONSTANT, (), {"value": value, "dtype": dtype}, g.name_scope_prefix + name)
    return Tensor(node, g)


def as_tensor(value, graph: "Graph", dtype: str = "float32") -> Tensor:
    if isinstance(value, Tensor):
        if value.graph is not graph:
            raise ValueError(f"tensor {value.name} belongs to another graph")
        return value
    return constant(value, dtype, graph=graph)


_OP_NAMES = {Op.ADD: "add", Op.SUB: "sub", Op.MUL: "mul", Op.DIV: "truediv", Op.MAXIMUM: "Maximum",
             Op.MINIMUM: "Minimum"}


def binary_op(op: Op, a, b) -> Tensor:
    g = graph_of([a, b])
    ref = a if isinstance(a, Tensor) else b
    a = as_tensor(a, g, ref.dtype)
    b = as_tensor(b, g, ref.dtype)
    return record(op, [a, b], {}, _OP_NAMES[op])
