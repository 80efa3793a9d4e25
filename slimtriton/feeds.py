"""Feeds and fetches: the one helper every way of running a graph uses.

`Session.run`, `CompiledModel(...)`, the torch backend (`build_torch_callable`) and
`executor.evaluate` all take values for placeholders ("feeds") and return values for a
nested structure of requested tensors ("fetches"). This module is the one place that

- turns a feed key (a `Tensor`, a `Node` or a tensor name "scope/x:0") into its node or
  its name: `feed_node`, `feed_name`, `resolve_feeds` (a node fed twice is an error);
- checks a fed value against its node: `check_value` (shape, and a dtype of the same
  kind: any float feeds a float node, as TF1's feed_dict converts; ints feed ints, bools
  bools), with one message format, `placeholder images: expected float32[2,8,8,3], got
  float64[8,8,3]`;
- flattens a nested fetch (list / tuple / namedtuple / dict of leaves) into a node list
  and rebuilds the same structure from the values: `flatten_fetches`, `rebuild`;
- converts a backend's value (NumPy array, torch tensor, scalar) to the NumPy array of a
  node's dtype: `to_numpy` (bfloat16, which NumPy lacks, as float32 holding
  bfloat16-rounded values).

Layer 1 (beside the interpreters): it knows nodes and values, not graphs' backends;
torch is imported only when a torch value is converted.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from .ir.node import FLOAT_DTYPES, Node

INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


# -- checking one value ---------------------------------------------------------------------------
def dtype_name(value) -> str:
    """'float32', 'int64', ... for a NumPy array, a torch tensor or a Python scalar/list."""
    dt = getattr(value, "dtype", None)
    if dt is None:
        dt = np.asarray(value).dtype
    return str(dt).replace("torch.", "")


def dtype_kind(dtype: str) -> str:
    """'float', 'int', or the dtype itself (bool): what may feed what."""
    if dtype in FLOAT_DTYPES:
        return "float"
    if dtype in INT_DTYPES:
        return "int"
    return dtype


def value_shape(value) -> tuple:
    return tuple(int(d) for d in getattr(value, "shape", np.shape(value)))


def describe(dtype: str, shape) -> str:
    """'float32[2,8,8,3]' (an unknown batch is 'None')."""
    return f"{dtype}[{','.join('None' if d is None else str(int(d)) for d in shape)}]"


def check_value(node: Node, value, what: str, shape=None, also_dtypes=()) -> None:
    """Raise ValueError unless `value` has the node's shape (or `shape`, e.g. the node's at a
    fed batch) and a dtype of the same kind as the node's or one of `also_dtypes`.

    `what` names the role ('placeholder', 'feed for node', 'weights for variable'); the
    message names it, the node, and both dtype[shape]s.
    """
    expected = tuple(node.shape) if shape is None else tuple(shape)
    got_shape, got_dtype = value_shape(value), dtype_name(value)
    kinds = {dtype_kind(node.dtype)} | {dtype_kind(d) for d in also_dtypes}
    if got_shape != expected or dtype_kind(got_dtype) not in kinds:
        also = "".join(f" (or {d})" for d in also_dtypes if d != node.dtype)
        raise ValueError(f"{what} {node.name}: expected {describe(node.dtype, expected)}{also}, "
                         f"got {describe(got_dtype, got_shape)}")


# -- feed keys ------------------------------------------------------------------------------------
def feed_name(key, what: str = "feed_dict") -> str:
    """The node name a feed key names: a Tensor's or a Node's name, or a string (a tensor name
    'scope/x:0' or a node name 'scope/x')."""
    node = getattr(key, "node", key)
    if isinstance(node, Node):
        return node.name
    if isinstance(node, str):
        return node.split(":")[0]
    raise TypeError(f"{what} keys must be Tensors, Nodes or names, got {type(key).__name__}")


def feed_node(key, by_name: Callable[[str], Node], what: str = "feed_dict") -> Node:
    """The node a feed key names: a Tensor's node, a Node, or `by_name(name)` for a string."""
    node = getattr(key, "node", key)
    return node if isinstance(node, Node) else by_name(feed_name(key, what))


def resolve_feeds(feed_dict: Mapping | None, node_of: Callable[[Any], Node],
                  what: str = "feed_dict") -> dict[Node, Any]:
    """{node: value} of a feed_dict {Tensor | Node | name: value}; `node_of(key)` resolves a
    key (and raises for a key that names nothing). A node fed twice is a ValueError."""
    feeds: dict[Node, Any] = {}
    for key, value in (feed_dict or {}).items():
        node = node_of(key)
        if node in feeds:
            raise ValueError(f"{what} feeds {node.name} twice")
        feeds[node] = value
    return feeds


# -- fetches --------------------------------------------------------------------------------------
def flatten_fetches(fetches, node_of: Callable[[Any], Node]) -> tuple[list[Node], Any]:
    """(the nodes of the leaves of `fetches`, in order, a spec for `rebuild`). Containers are
    dicts, lists, tuples and namedtuples; every other value is a leaf, `node_of(leaf)`."""
    nodes: list[Node] = []

    def walk(o):
        if isinstance(o, dict):
            return ("dict", type(o), [(k, walk(v)) for k, v in o.items()])
        if isinstance(o, (list, tuple)):
            return ("seq", type(o), [walk(v) for v in o])
        nodes.append(node_of(o))
        return ("leaf", len(nodes) - 1)
    return nodes, walk(fetches)


def rebuild(spec, values):
    """The structure `spec` (from `flatten_fetches`) with its k-th leaf replaced by values[k]."""
    kind = spec[0]
    if kind == "leaf":
        return values[spec[1]]
    if kind == "dict":
        return spec[1]((k, rebuild(v, values)) for k, v in spec[2])
    seq = [rebuild(v, values) for v in spec[2]]
    if hasattr(spec[1], "_fields"):  # namedtuple
        return spec[1](*seq)
    return spec[1](seq)


# -- values ---------------------------------------------------------------------------------------
def host_feed(value, dtype: str):
    """A feed as a host array of the placeholder's dtype (torch tensors pass through; bfloat16,
    which NumPy lacks, goes as float32)."""
    if hasattr(value, "detach"):
        return value
    return np.asarray(value, dtype=np.float32 if dtype == "bfloat16" else np.dtype(dtype))


def to_numpy(value, dtype: str) -> np.ndarray:
    """A backend value (NumPy array, torch tensor, scalar) as a NumPy array of the node's dtype
    (bfloat16: float32 holding bfloat16-rounded values)."""
    if hasattr(value, "detach"):  # a torch tensor
        import torch  # lazy: the reference backend and the IR run without torch
        value = value.detach()
        if dtype == "bfloat16":
            return value.to(torch.bfloat16).float().cpu().numpy()
        if value.dtype == torch.bfloat16:
            value = value.float()
        return value.cpu().numpy().astype(np.dtype(dtype), copy=False)
    if dtype == "bfloat16":
        import torch  # lazy: as above; NumPy cannot round to bfloat16
        rounded = torch.from_numpy(np.asarray(value, dtype=np.float32)).to(torch.bfloat16).float()
        return rounded.numpy()
    return np.asarray(value).astype(np.dtype(dtype), copy=False)
