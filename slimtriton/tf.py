"""The TF1 subset the slim nets use: `from slimtriton import tf`.

    tf.concat([a, b], axis=3)        tf.pad(x, [[0, 0], [3, 3], [3, 3], [0, 0]])
    tf.reduce_mean(x, [1, 2], keep_dims=True, name='pool5')
    with tf.variable_scope('block1'): ...
    tf.nn.relu(x)                    tf.nn.leaky_relu(x, alpha=0.1)   tf.nn.swish(x)

Each op records one IR node (see slimtriton/slim/tensor_ops.py); dtypes are strings
(`tf.float32 == 'float32'`); initializers are slimtriton's NumPy initializers.
"""
from __future__ import annotations

import re as _re
import sys as _sys
import types as _types

from .ir.graph import Graph, get_default_graph
from .ir.node import Tensor, TensorShape
from .slim.initializers import (constant_initializer, glorot_normal_initializer, glorot_uniform_initializer,
                                ones_initializer, random_normal_initializer, random_uniform_initializer,
                                truncated_normal_initializer, zeros_initializer)
from .slim.initializers import core_variance_scaling_initializer as variance_scaling_initializer
from .slim.scopes import (AUTO_REUSE, GraphKeys, VariableScope, get_variable, get_variable_scope, name_scope,
                          variable_scope)
from .slim.tensor_ops import (add, add_n, clip_by_value, concat, constant, convert_to_tensor, divide, expand_dims,
                              identity, maximum, minimum, multiply, negative, one_hot, pad, placeholder, reduce_mean,
                              reshape, sigmoid, squeeze, subtract, tanh, tile)
from .slim import tensor_ops as _ops

float16 = "float16"
bfloat16 = "bfloat16"
float32 = "float32"
float64 = "float64"
int32 = "int32"
int64 = "int64"
bool = "bool"  # noqa: A001 - TF's name

nn = _types.SimpleNamespace(
    **_ops.ACTIVATION_FNS,  # relu, relu6, sigmoid, tanh, elu, leaky_relu, swish, silu: one per Act
    softmax=_ops.softmax, bias_add=_ops.bias_add, max_pool=_ops.max_pool, avg_pool=_ops.avg_pool,
    max_pool2d=_ops.max_pool, avg_pool2d=_ops.avg_pool,
)


def get_collection(key, scope=None):
    """Items of a graph collection; with `scope`, those whose name re.match-es it."""
    items = get_default_graph().get_collection(key)
    if scope is None:
        return items
    pattern = _re.compile(scope)
    out = []
    for item in items:
        name = getattr(item, "name", None)
        if name is not None and pattern.match(name):
            out.append(item)
    return out


def add_to_collection(name, value):
    get_default_graph().add_to_collection(name, value)


def add_to_collections(names, value):
    for n in ([names] if isinstance(names, str) else list(dict.fromkeys(names))):
        get_default_graph().add_to_collection(n, value)


# `tf.compat.v1.variable_scope(...)` etc.: the TF1 API is this module itself.
compat = _types.SimpleNamespace(v1=_sys.modules[__name__])

__all__ = [
    "compat", "Graph", "Tensor", "TensorShape", "get_default_graph", "AUTO_REUSE", "GraphKeys", "VariableScope",
    "get_variable", "get_variable_scope", "name_scope", "variable_scope", "add", "add_n", "concat", "constant",
    "clip_by_value", "convert_to_tensor", "divide", "expand_dims", "identity", "maximum", "minimum", "multiply",
    "negative", "one_hot", "pad",
    "placeholder", "reduce_mean", "reshape", "sigmoid", "squeeze", "subtract", "tanh", "tile", "nn",
    "constant_initializer", "glorot_normal_initializer", "glorot_uniform_initializer", "ones_initializer",
    "random_normal_initializer", "random_uniform_initializer", "truncated_normal_initializer",
    "variance_scaling_initializer", "zeros_initializer", "float16", "bfloat16", "float32", "float64", "int32",
    "int64", "bool", "get_collection", "add_to_collection", "add_to_collections",
]
