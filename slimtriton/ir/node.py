"""The one IR node, and the symbolic tensor that front-end code holds.

A `Node` is immutable: op, inputs (other nodes), attrs, shape, dtype and a
unique name (the TF-style op name, e.g. ``resnet_v1_50/conv1/Conv2D``). Every node
has exactly one output, so a node *is* the value it produces; `Tensor` is the
thin user-facing handle (TF1 habits: ``.shape``, ``.get_shape().as_list()``,
``.name`` with ``:0``, Python operators) around a node and its graph.

Shapes are static ints, except that the leading (batch) dimension may be ``None``: a
graph recorded from ``st.placeholder([None, 224, 224, 3])`` carries an unknown batch
through every node that keeps it. Executors never see ``None``: they run a copy of the
nodes specialized to a concrete batch (slimtriton.ir.specialize).
"""
from __future__ import annotations

import dataclasses
import math
import types
from typing import Any, Mapping

from .ops import Op

NODE_DTYPES = ("float32", "float16", "bfloat16", "float64", "int32", "int64", "bool")  # a node may carry
COMPUTE_DTYPES = ("float32", "float16", "bfloat16")  # the Triton kernels compute in (st.compile(dtype=))
FLOAT_DTYPES = ("float32", "float16", "bfloat16", "float64")
# Bytes per element of each dtype (memory reports, the byte model).
DTYPE_ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4, "bool": 1}


def _freeze(value: Any) -> Any:
    """Attribute values must be immutable: lists become tuples, recursively."""
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        raise TypeError("dict attribute values are not allowed; use a tuple of pairs")
    return value


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Node:
    op: Op
    inputs: tuple["Node", ...]
    attrs: Mapping[str, Any]
    shape: tuple[int, ...]
    dtype: str
    name: str

    @staticmethod
    def make(op: Op, inputs, attrs: Mapping[str, Any], shape, dtype: str, name: str) -> "Node":
        frozen = types.MappingProxyType({k: _freeze(v) for k, v in sorted(attrs.items())})
        dims = tuple(None if d is None else int(d) for d in shape)
        return Node(op, tuple(inputs), frozen, dims, str(dtype), str(name))

    def replace(self, **changes) -> "Node":
        """A new node with some fields changed (the original is untouched)."""
        fields = dict(op=self.op, inputs=self.inputs, attrs=dict(self.attrs),
                      shape=self.shape, dtype=self.dtype, name=self.name)
        fields.update(changes)
        return Node.make(**fields)

    @property
    def dynamic_batch(self) -> bool:
        """True when the leading (batch) dimension is unknown (None)."""
        return bool(self.shape) and self.shape[0] is None

    @property
    def size(self) -> int:
        if self.dynamic_batch:
            raise ValueError(f"{self.name}: shape {list(self.shape)} has an unknown batch; its number of "
                             f"elements is known per example only (per_example_size)")
        return math.prod(self.shape)

    @property
    def per_example_size(self) -> int:
        """Elements of one example: the product of every dimension after the batch (rank >= 1)."""
        return math.prod(self.shape[1:])

    def format_attrs(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.attrs.items())

    def __repr__(self) -> str:
        ins = ", ".join(i.name for i in self.inputs)
        return f"Node({self.name}: {self.op.short}({ins}) {{{self.format_attrs()}}} -> {self.dtype}{list(self.shape)})"


class TensorShape(tuple):
    """A shape with the TF1 `TensorShape` methods the slim nets call; an unknown batch is
    `None`, as in TF (`as_list()` -> [None, 224, 224, 3], `is_fully_defined()` False)."""

    @property
    def ndims(self) -> int:
        return len(self)

    rank = ndims

    def as_list(self) -> list[int]:
        return list(self)

    def num_elements(self) -> "int | None":
        """The number of elements, or None when a dimension is unknown (TF's rule)."""
        return None if None in self else math.prod(self)

    def is_fully_defined(self) -> bool:
        return None not in self

    def with_rank(self, rank: int) -> "TensorShape":
        if len(self) != rank:
            raise ValueError(f"Shape {list(self)} must have rank {rank}")
        return self

    def with_rank_at_least(self, rank: int) -> "TensorShape":
        if len(self) < rank:
            raise ValueError(f"Shape {list(self)} must have rank at least {rank}")
        return self

    def __getitem__(self, item):
        got = tuple.__getitem__(self, item)
        return TensorShape(got) if isinstance(item, slice) else got

    def __repr__(self) -> str:
        return f"TensorShape({list(self)})"


class Tensor:
    """Symbolic value recorded in a `Graph`; layers compute nothing, they record nodes."""

    __slots__ = ("node", "graph")
    __array_priority__ = 1000  # numpy scalars on the left defer to our operators

    def __init__(self, node: Node, graph):
        self.node = node
        self.graph = graph

    @property
    def shape(self) -> TensorShape:
        return TensorShape(self.node.shape)

    def get_shape(self) -> TensorShape:
        return self.shape

    @property
    def dtype(self) -> str:
        return self.node.dtype

    @property
    def name(self) -> str:
        return self.node.name + ":0"

    @property
    def op_name(self) -> str:
        return self.node.name

    def __repr__(self) -> str:
        return f"<slimtriton.Tensor '{self.name}' shape={list(self.node.shape)} dtype={self.dtype}>"

    def __hash__(self) -> int:
        return id(self.node)

    def __eq__(self, other):  # identity, as TF1 tensors: usable as dict keys (feed_dict)
        return isinstance(other, Tensor) and other.node is self.node

    def __bool__(self):
        raise TypeError("a symbolic slimtriton Tensor has no truth value; it is recorded, not computed")

    # Python operators record elementwise nodes through the tensor's own graph (Graph.binary_op,
    # Graph.record): this module stays below graph.py, which imports it.
    def _bin(self, other, op, reverse=False):
        return self.graph.binary_op(op, other, self) if reverse else self.graph.binary_op(op, self, other)

    def __add__(self, o): return self._bin(o, Op.ADD)
    def __radd__(self, o): return self._bin(o, Op.ADD, True)
    def __sub__(self, o): return self._bin(o, Op.SUB)
    def __rsub__(self, o): return self._bin(o, Op.SUB, True)
    def __mul__(self, o): return self._bin(o, Op.MUL)
    def __rmul__(self, o): return self._bin(o, Op.MUL, True)
    def __truediv__(self, o): return self._bin(o, Op.DIV)
    def __rtruediv__(self, o): return self._bin(o, Op.DIV, True)

    def __neg__(self):
        return self.graph.record(Op.NEG, [self], {}, "Neg")
