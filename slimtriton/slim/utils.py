"""TF-Slim's layer utilities: end points (tensor aliases + collections) and argument parsing.

Aliases: TF-Slim stores them on the Tensor object (`tensor.aliases`); our `Tensor` is a
thin handle that can be re-created for the same node, so aliases are kept per node in
`graph.scope_state["aliases"]`, which gives the same answers.
"""
from __future__ import annotations

import operator
from collections import OrderedDict

from ..ir.graph import get_default_graph
from ..ir.node import Tensor, TensorShape
from .scopes import _dedupe, _state

__all__ = ["collect_named_outputs", "append_tensor_alias", "get_tensor_aliases", "gather_tensors_aliases",
           "convert_collection_to_dict", "get_variable_collections", "last_dimension", "channel_dimension",
           "two_element_tuple", "n_positive_integers", "static_cond", "smart_cond", "constant_value"]


def _aliases_table(tensor: Tensor) -> dict:
    return _state(tensor.graph)["aliases"]


def append_tensor_alias(tensor: Tensor, alias: str) -> Tensor:
    """Append `alias` (a trailing '/' is dropped) to the tensor's aliases."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"append_tensor_alias: expected a Tensor, got {type(tensor).__name__}")
    if alias and alias[-1] == "/":
        alias = alias[:-1]
    _aliases_table(tensor).setdefault(tensor.node.name, []).append(alias)
    return tensor


def get_tensor_aliases(tensor: Tensor) -> list:
    """The tensor's aliases, or `[op name]` if it has none."""
    aliases = _aliases_table(tensor).get(tensor.node.name)
    return list(aliases) if aliases else [tensor.node.name]


def gather_tensors_aliases(tensors) -> list:
    out = []
    for t in tensors:
        out += get_tensor_aliases(t)
    return out


def collect_named_outputs(collections, alias, outputs):
    """Tag `outputs` with `alias` and add it to `collections` (a name or a list; None skips)."""
    if collections:
        append_tensor_alias(outputs, alias)
        names = [collections] if isinstance(collections, str) else _dedupe(collections)
        for c in names:
            outputs.graph.add_to_collection(c, outputs)
    return outputs


def convert_collection_to_dict(collection, clear_collection=False, graph=None) -> "OrderedDict[str, Tensor]":
    """{alias: tensor} for every tensor of `collection`, in insertion order."""
    g = graph or get_default_graph()
    output = OrderedDict((alias, tensor) for tensor in g.get_collection(collection)
                         for alias in get_tensor_aliases(tensor))
    if clear_collection:
        g.collections.pop(collection, None)
    return output


def get_variable_collections(variables_collections, name):
    if isinstance(variables_collections, dict):
        return variables_collections.get(name, None)
    return variables_collections


def _shape_of(shape):
    if isinstance(shape, Tensor):
        return shape.shape
    return TensorShape(tuple(shape))


def _get_dimension(shape, dim, min_rank=1):
    shape = _shape_of(shape)
    if len(shape) < min_rank:
        raise ValueError(f"rank of shape must be at least {min_rank} not: {len(shape)}")
    return shape[dim]


def last_dimension(shape, min_rank=1) -> int:
    """The last dimension of `shape` (a TensorShape, list or Tensor), checking rank >= min_rank."""
    return _get_dimension(shape, -1, min_rank)


def channel_dimension(shape, data_format, min_rank=1) -> int:
    return _get_dimension(shape, 1 if data_format == "channels_first" else -1, min_rank)


def two_element_tuple(int_or_tuple) -> tuple:
    """An int `k` -> (k, k); a 2-element list/tuple/TensorShape -> (a, b)."""
    if isinstance(int_or_tuple, (list, tuple)):
        if len(int_or_tuple) != 2:
            raise ValueError(f"Must be a list with 2 elements: {list(int_or_tuple)}")
        return int(int_or_tuple[0]), int(int_or_tuple[1])
    if isinstance(int_or_tuple, int) and not isinstance(int_or_tuple, bool):
        return int(int_or_tuple), int(int_or_tuple)
    raise ValueError(f"Must be an int, a list with 2 elements or a TensorShape of length 2, got {int_or_tuple!r}")


def n_positive_integers(n, value) -> tuple:
    """`value` (an int or an n-sequence of ints) as a tuple of n positive ints."""
    n_orig = n
    n = int(n)
    if n < 1 or n != n_orig:
        raise ValueError("n must be a positive integer")
    try:
        value = operator.index(value)
    except TypeError:
        try:
            seq = list(value)
        except TypeError:
            raise ValueError(f"Expected sequence of {n} positive integers, but received {value!r}") from None
        if len(seq) != n:
            raise ValueError(f"Expected sequence of {n} positive integers, but received {value!r}")
        try:
            values = tuple(operator.index(v) for v in seq)
        except TypeError:
            raise ValueError(f"Expected sequence of {n} positive integers, but received {value!r}") from None
        if any(v <= 0 for v in values):
            raise ValueError(f"Expected sequence of {n} positive integers, but received {value!r}")
        return values
    if value <= 0:
        raise ValueError(f"Expected a positive integer, but received {value!r}")
    return (value,) * n


def constant_value(value_or_tensor_or_var, dtype=None):
    """The python value of a static predicate; a symbolic Tensor has none (TypeError)."""
    if isinstance(value_or_tensor_or_var, Tensor):
        raise TypeError(f"{value_or_tensor_or_var.name} is a symbolic tensor: only python bools are supported")
    return value_or_tensor_or_var


def static_cond(pred, fn1, fn2):
    if not callable(fn1) or not callable(fn2):
        raise TypeError("fn1 and fn2 must be callable.")
    return fn1() if pred else fn2()


smart_cond = static_cond
