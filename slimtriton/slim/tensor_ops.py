"""The TF1 tensor ops that slim layers and nets call (re-exported by `slimtriton.tf`).

Each op records one IR node under the current name scope, named as TF names it
(`Relu`, `concat`, `Pad`, `Mean`, ...). Bad arguments raise at the call with a message
naming the op's scoped name, the argument and the shapes.
"""
from __future__ import annotations

import math
import numbers
import operator

import numpy as np

from ..ir.graph import (as_tensor, constant as _constant, get_default_graph, graph_of, placeholder as _placeholder,
                        record)
from ..ir.node import NODE_DTYPES, Tensor
from ..ir.ops import Act, Op
from ..ir.shapes import broadcast_shapes

__all__ = [
    "fail", "where_name", "resolve_padding", "normalize_padding", "activation", "ACTIVATION_FNS", "softmax",
    "identity", "bias_add", "concat", "pad", "reduce_mean", "squeeze", "reshape", "expand_dims", "tile",
    "add", "subtract", "multiply", "divide", "maximum", "minimum", "clip_by_value", "negative", "add_n", "one_hot",
    "placeholder",
    "constant", "convert_to_tensor", "max_pool", "avg_pool",
]


def fail(where: str, argument: str, message: str, exc=ValueError):
    """Raise `exc` with the one message format: `<where>: argument `<arg>`: <message>`."""
    raise exc(f"{where}: argument `{argument}`: {message}")


def where_name(fn: str, base: str, graph=None) -> str:
    """`tf.concat 'block1/concat'`: the op and the scoped name its node will get."""
    g = graph or get_default_graph()
    return f"{fn} '{g.name_scope_prefix}{base}'"


def _tensor(x, where, argument="x") -> Tensor:
    if not isinstance(x, Tensor):
        fail(where, argument, f"expected a slimtriton Tensor, got {type(x).__name__} "
                              f"(array constants are not part of the IR: make them variables)", TypeError)
    return x


def _axis(where, argument, axis, rank) -> int:
    try:
        a = operator.index(axis)
    except TypeError:
        fail(where, argument, f"axis must be an int, got {axis!r}", TypeError)
    if not -rank <= a < rank:
        fail(where, argument, f"axis {a} is out of range for rank {rank}")
    return a % rank


# -- padding -------------------------------------------------------------------------------
def normalize_padding(where, padding) -> str:
    if not isinstance(padding, str) or padding.upper() not in ("SAME", "VALID"):
        fail(where, "padding", f"unknown padding {padding!r}: expected 'SAME' or 'VALID'")
    return padding.upper()


def resolve_padding(where, padding, in_hw, kernel_hw, strides, rates=(1, 1), input_shape=None):
    """TF SAME/VALID -> explicit ((top, bottom), (left, right)); SAME puts the odd pixel after."""
    padding = normalize_padding(where, padding)
    pads = []
    for size, k, s, r in zip(in_hw, kernel_hw, strides, rates):
        k_eff = (k - 1) * r + 1
        if padding == "SAME":
            out = -(-size // s)
            total = max((out - 1) * s + k_eff - size, 0)
            pads.append((total // 2, total - total // 2))
        else:
            if k_eff > size:
                shape = list(input_shape) if input_shape is not None else list(in_hw)
                fail(where, "kernel_size",
                     f"VALID padding needs the (dilated) kernel {list(kernel_hw)} (rate {list(rates)}, effective "
                     f"{[(kk - 1) * rr + 1 for kk, rr in zip(kernel_hw, rates)]}) to fit the input "
                     f"spatial size {list(in_hw)} (input shape {shape})")
            pads.append((0, 0))
    return tuple(pads)


# -- elementwise ---------------------------------------------------------------------------
def _unary(op, x, name, fn):
    where = where_name(fn, name)
    return record(op, [_tensor(x, where, "features")], {}, name)


def activation(act: Act, features, name=None, fn=None, **param):
    """Record the activation `act` (ir/ops.py) of `features`, named as TF names it (`Relu`,
    `LeakyRelu`); `param`: its one parameter when it has one (leaky_relu's `alpha`)."""
    act = Act(act)
    base = name or "".join(w.capitalize() for w in act.value.split("_"))
    where = where_name(fn or f"tf.nn.{act.value}", base)
    attrs = {}
    if act.param is not None:
        key, default = act.param
        value = param.pop(key, default)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            fail(where, key, f"expected a finite number, got {value!r}", TypeError)
        attrs[key] = float(value)
    if param:
        fail(where, next(iter(param)), f"{act.value} takes no argument {next(iter(param))!r}", TypeError)
    return record(act.op, [_tensor(features, where, "features")], attrs, base)


def _tf_activation(act: Act, tf_name: str):
    """`tf.nn.<tf_name>(features[, <param>=default], name=None)` for the activation `act`."""
    if act.param is None:
        def fn(features, name=None):
            return activation(act, features, name, f"tf.nn.{tf_name}")
    else:
        key, default = act.param

        def fn(features, *args, name=None, **kwargs):
            if args:
                kwargs[key] = args[0]
            return activation(act, features, name, f"tf.nn.{tf_name}", **{key: kwargs.pop(key, default)}, **kwargs)
    fn.__name__ = fn.__qualname__ = tf_name
    fn.__doc__ = f"tf.nn.{tf_name}: records Op.{act.op.name} (the activation Act.{act.name})."
    return fn


# tf.nn.<name> for every activation of the vocabulary (ir/ops.py Act.tf_names): adding an
# activation there adds its front-end function here.
ACTIVATION_FNS = {tf_name: _tf_activation(act, tf_name) for act in Act for tf_name in act.tf_names}
globals().update(ACTIVATION_FNS)  # relu, relu6, sigmoid, tanh, ...: functions of this module
__all__ += list(ACTIVATION_FNS)


def identity(input, name=None):
    return _unary(Op.IDENTITY, input, name or "Identity", "tf.identity")


def negative(x, name=None):
    return _unary(Op.NEG, x, name or "Neg", "tf.negative")


def softmax(logits, axis=None, name=None, dim=None):
    name = name or "Softmax"
    where = where_name("tf.nn.softmax", name)
    x = _tensor(logits, where, "logits")
    axis = dim if axis is None else axis
    a = _axis(where, "axis", -1 if axis is None else axis, len(x.shape))
    return record(Op.SOFTMAX, [x], {"axis": a}, name)


def bias_add(value, bias, data_format=None, name=None):
    name = name or "BiasAdd"
    where = where_name("tf.nn.bias_add", name)
    x = _tensor(value, where, "value")
    b = _tensor(bias, where, "bias")
    if data_format not in (None, "NHWC", "N...C"):
        fail(where, "data_format", f"only channels-last is supported, got {data_format!r}")
    if len(x.shape) < 2 or tuple(b.shape) != (x.shape[-1],):
        fail(where, "bias", f"bias of shape {list(b.shape)} must be [{x.shape[-1] if x.shape else '?'}] "
                            f"for value of shape {list(x.shape)}")
    return record(Op.BIAS_ADD, [x, b], {}, name)


def _binary(op, x, y, name, fn):
    g = graph_of([x, y])
    where = where_name(fn, name, g)
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        fail(where, "x", "at least one operand must be a Tensor", TypeError)
    for arg, v in (("x", x), ("y", y)):
        if not isinstance(v, (Tensor, numbers.Number)) or isinstance(v, bool):
            fail(where, arg, f"expected a Tensor or a python scalar, got {type(v).__name__}", TypeError)
    ref = x if isinstance(x, Tensor) else y
    a, b = as_tensor(x, g, ref.dtype), as_tensor(y, g, ref.dtype)
    try:
        broadcast_shapes(where, a.shape, b.shape)
    except ValueError:
        fail(where, "y", f"shapes {list(a.shape)} and {list(b.shape)} do not broadcast")
    return record(op, [a, b], {}, name)


def add(x, y, name=None):
    return _binary(Op.ADD, x, y, name or "Add", "tf.add")


def subtract(x, y, name=None):
    return _binary(Op.SUB, x, y, name or "Sub", "tf.subtract")


def multiply(x, y, name=None):
    return _binary(Op.MUL, x, y, name or "Mul", "tf.multiply")


def divide(x, y, name=None):
    return _binary(Op.DIV, x, y, name or "truediv", "tf.divide")


def maximum(x, y, name=None):
    return _binary(Op.MAXIMUM, x, y, name or "Maximum", "tf.maximum")


def minimum(x, y, name=None):
    return _binary(Op.MINIMUM, x, y, name or "Minimum", "tf.minimum")


def clip_by_value(t, clip_value_min, clip_value_max, name=None):
    """TF1's `tf.clip_by_value`: `maximum(minimum(t, hi), lo)`, recorded as TF names it:
    `clip_by_value/Minimum` and the Maximum named by the scope itself, `clip_by_value`.

    The bounds are Tensors or python scalars and may broadcast to `t` but must not grow it;
    python-scalar bounds with lo > hi are rejected (TF would silently return lo everywhere).
    """
    g = graph_of([t, clip_value_min, clip_value_max])
    outer = g.name_scope_prefix
    # The name scope and the Maximum op share one name, as in TF (`name_scope(name)` then
    # `maximum(..., name=scope)`): pick the unique scope name first, record both ops under it.
    scope = g.unique_name(outer + (name or "clip_by_value"), mark_as_used=False)
    where = f"tf.clip_by_value '{scope}'"
    x = _tensor(t, where, "t")
    for arg, v in (("clip_value_min", clip_value_min), ("clip_value_max", clip_value_max)):
        if not isinstance(v, (Tensor, numbers.Number)) or isinstance(v, bool):
            fail(where, arg, f"expected a Tensor or a python scalar, got {type(v).__name__}", TypeError)
        if isinstance(v, Tensor):
            try:
                shape = broadcast_shapes(where, x.shape, v.shape)
            except ValueError:
                shape = None
            if shape is None or tuple(shape) != tuple(x.shape):
                fail(where, arg, f"shape {list(v.shape)} must broadcast to the shape of t {list(x.shape)} "
                                 f"without changing it")
            if v.dtype != x.dtype:
                fail(where, arg, f"dtype {v.dtype} differs from t's dtype {x.dtype}", TypeError)
    if (isinstance(clip_value_min, numbers.Number) and isinstance(clip_value_max, numbers.Number)
            and clip_value_min > clip_value_max):
        fail(where, "clip_value_min", f"{clip_value_min} is greater than clip_value_max {clip_value_max}")
    g.name_scope_prefix = scope + "/"
    try:
        hi = (clip_value_max if isinstance(clip_value_max, Tensor)
              else _constant(clip_value_max, x.dtype, name="Minimum/y", graph=g))
        lo = (clip_value_min if isinstance(clip_value_min, Tensor)
              else _constant(clip_value_min, x.dtype, name="y", graph=g))
        t_min = record(Op.MINIMUM, [x, hi], {}, "Minimum")
    finally:
        g.name_scope_prefix = outer
    return record(Op.MAXIMUM, [t_min, lo], {}, scope[len(outer):])


def add_n(inputs, name=None):
    name = name or "AddN"
    where = where_name("tf.add_n", name)
    if not isinstance(inputs, (list, tuple)) or not inputs:
        fail(where, "inputs", "expected a non-empty list of Tensors")
    xs = [_tensor(x, where, f"inputs[{i}]") for i, x in enumerate(inputs)]
    for i, x in enumerate(xs[1:], 1):
        if tuple(x.shape) != tuple(xs[0].shape):
            fail(where, f"inputs[{i}]", f"all inputs must have the same shape: "
                                        + ", ".join(f"{t.op_name}{list(t.shape)}" for t in xs))
    if len(xs) == 1:
        return record(Op.IDENTITY, xs, {}, name)
    out = xs[0]
    for x in xs[1:]:
        out = record(Op.ADD, [out, x], {}, name)
    return out


# -- shape ops -----------------------------------------------------------------------------
def concat(values, axis, name="concat"):
    where = where_name("tf.concat", name, graph_of([values]))
    if isinstance(values, Tensor) or not isinstance(values, (list, tuple)) or not values:
        fail(where, "values", "expected a non-empty list of Tensors")
    xs = [_tensor(v, where, f"values[{i}]") for i, v in enumerate(values)]
    rank = len(xs[0].shape)
    a = _axis(where, "axis", axis, rank)
    for i, x in enumerate(xs):
        if len(x.shape) != rank or any(d != e for k, (d, e) in enumerate(zip(x.shape, xs[0].shape)) if k != a):
            fail(where, "values", f"shapes must match except along axis {a}: "
                                  + ", ".join(f"{t.op_name}{list(t.shape)}" for t in xs))
    if len(xs) == 1:
        return record(Op.IDENTITY, xs, {}, name)
    return record(Op.CONCAT, xs, {"axis": a}, name)


def pad(tensor, paddings, mode="CONSTANT", name=None, constant_values=0):
    name = name or "Pad"
    where = where_name("tf.pad", name, graph_of([tensor]))
    x = _tensor(tensor, where, "tensor")
    if not isinstance(mode, str) or mode.upper() != "CONSTANT":
        fail(where, "mode", f"only mode='CONSTANT' is supported, got {mode!r}")
    try:
        p = np.asarray(paddings)
    except Exception:
        p = None
    if p is None or p.shape != (len(x.shape), 2) or not np.issubdtype(p.dtype, np.integer) or (p < 0).any():
        fail(where, "paddings", f"expected [[before, after]] non-negative ints for each of the {len(x.shape)} "
                                f"axes of shape {list(x.shape)}, got {paddings!r}")
    if not isinstance(constant_values, numbers.Number) or isinstance(constant_values, bool):
        fail(where, "constant_values", f"expected a python scalar, got {constant_values!r}", TypeError)
    pads = tuple((int(b), int(a)) for b, a in p)
    return record(Op.PAD, [x], {"paddings": pads, "value": float(constant_values)}, name)


def reduce_mean(input_tensor, axis=None, keepdims=None, name=None, reduction_indices=None, keep_dims=None):
    name = name or "Mean"
    where = where_name("tf.reduce_mean", name, graph_of([input_tensor]))
    x = _tensor(input_tensor, where, "input_tensor")
    if axis is None:
        axis = reduction_indices
    if keepdims is None:
        keepdims = bool(keep_dims) if keep_dims is not None else False
    rank = len(x.shape)
    if axis is None:
        axes = tuple(range(rank))
    else:
        seq = axis if isinstance(axis, (list, tuple)) else [axis]
        axes = tuple(sorted({_axis(where, "axis", a, rank) for a in seq}))
    return record(Op.REDUCE_MEAN, [x], {"axes": axes, "keepdims": bool(keepdims)}, name)


def reshape(tensor, shape, name=None):
    name = name or "Reshape"
    where = where_name("tf.reshape", name, graph_of([tensor]))
    x = _tensor(tensor, where, "tensor")
    try:
        dims = [None if (k == 0 and d is None) else operator.index(d) for k, d in enumerate(shape)]
    except TypeError:
        fail(where, "shape", f"expected a list of ints (None only as the leading, batch, dimension), "
                             f"got {shape!r}", TypeError)
    if dims.count(-1) > 1 or any(d is not None and d < -1 for d in dims):
        fail(where, "shape", f"at most one -1 and no other negative sizes allowed, got {dims}")
    if x.node.dynamic_batch:
        return record(Op.RESHAPE, [x], {"shape": _batch_reshape(where, x, dims)}, name)
    if None in dims:
        fail(where, "shape", f"None (an unknown batch) in the new shape {dims}, but {x.op_name} has a static "
                             f"shape {list(x.shape)}")
    known = math.prod(d for d in dims if d != -1)
    if -1 in dims:
        if known == 0 or x.node.size % known:
            fail(where, "shape", f"cannot reshape {list(x.shape)} ({x.node.size} elements) to {dims}")
        dims[dims.index(-1)] = x.node.size // known
    if math.prod(dims) != x.node.size:
        fail(where, "shape", f"cannot reshape {list(x.shape)} ({x.node.size} elements) to {dims}")
    return record(Op.RESHAPE, [x], {"shape": tuple(dims)}, name)


def _batch_reshape(where, x, dims) -> tuple:
    """The new shape of a reshape of `x`, whose batch is unknown: the batch must stay the leading
    dimension (`-1` or None there, as `tf.reshape(x, [-1, 1000])` writes it), and only the
    per-example part is reshaped (a -1 there is inferred from it)."""
    per_example = x.node.per_example_size
    if not dims or dims[0] not in (-1, None) or (dims[0] == -1 and -1 in dims[1:]):
        fail(where, "shape", f"{x.op_name} has an unknown batch (shape {list(x.shape)}): the new shape {dims} "
                             f"must keep the batch as its leading dimension (-1 or None) and reshape only the "
                             f"{per_example} elements of each example")
    rest = list(dims[1:])
    known = math.prod(d for d in rest if d != -1)
    if -1 in rest:
        if known == 0 or per_example % known:
            fail(where, "shape", f"cannot reshape {list(x.shape)} ({per_example} elements per example) to {dims}")
        rest[rest.index(-1)] = per_example // known
    if math.prod(rest) != per_example:
        fail(where, "shape", f"cannot reshape {list(x.shape)} ({per_example} elements per example) to {dims}: "
                             f"the batch (the leading -1 or None) must stay the batch")
    return (None, *rest)


def squeeze(input, axis=None, name=None, squeeze_dims=None):
    name = name or "Squeeze"
    where = where_name("tf.squeeze", name, graph_of([input]))
    x = _tensor(input, where, "input")
    if axis is None:
        axis = squeeze_dims
    rank = len(x.shape)
    if axis is None:
        axes = {i for i, d in enumerate(x.shape) if d == 1}
    else:
        seq = axis if isinstance(axis, (list, tuple)) else [axis]
        axes = {_axis(where, "axis", a, rank) for a in seq}
        for a in sorted(axes):
            if x.shape[a] != 1:
                fail(where, "axis", f"can not squeeze dim[{a}], expected a dimension of 1, got {x.shape[a]} "
                                    f"(shape {list(x.shape)})")
    new_shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    return record(Op.RESHAPE, [x], {"shape": new_shape}, name)


def expand_dims(input, axis, name=None):
    name = name or "ExpandDims"
    where = where_name("tf.expand_dims", name, graph_of([input]))
    x = _tensor(input, where, "input")
    a = _axis(where, "axis", axis, len(x.shape) + 1)
    shape = list(x.shape)
    shape.insert(a, 1)
    return record(Op.RESHAPE, [x], {"shape": tuple(shape)}, name)


def tile(input, multiples, name=None):
    name = name or "Tile"
    where = where_name("tf.tile", name, graph_of([input]))
    x = _tensor(input, where, "input")
    try:
        mult = tuple(operator.index(m) for m in multiples)
    except TypeError:
        fail(where, "multiples", f"expected a list of ints, got {multiples!r}", TypeError)
    if len(mult) != len(x.shape) or min(mult, default=1) < 1:
        fail(where, "multiples", f"expected {len(x.shape)} ints >= 1 for shape {list(x.shape)}, got {list(mult)}")
    return record(Op.TILE, [x], {"multiples": mult}, name)


def one_hot(indices, depth, on_value=None, off_value=None, axis=None, dtype=None, name=None):
    name = name or "one_hot"
    where = where_name("tf.one_hot", name, graph_of([indices]))
    x = _tensor(indices, where, "indices")
    if axis not in (None, -1, len(x.shape)):
        fail(where, "axis", f"only the last axis is supported, got {axis}")
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 1:
        fail(where, "depth", f"expected a positive int, got {depth!r}", TypeError)
    if x.dtype not in ("int32", "int64"):
        fail(where, "indices", f"labels must be an integer tensor, got dtype {x.dtype} (shape {list(x.shape)})",
             TypeError)
    dtype = str(dtype or "float32")
    on = 1.0 if on_value is None else float(on_value)
    off = 0.0 if off_value is None else float(off_value)
    return record(Op.ONE_HOT, [x], {"depth": int(depth), "on_value": on, "off_value": off, "dtype": dtype}, name)


# -- pools (tf.nn.*) -----------------------------------------------------------------------
def _pool(op, fn, base, value, ksize, strides, padding, data_format, name):
    name = name or base
    where = where_name(fn, name, graph_of([value]))
    x = _tensor(value, where, "value")
    if data_format not in (None, "NHWC"):
        fail(where, "data_format", f"only NHWC is supported, got {data_format!r}")
    if len(x.shape) != 4:
        fail(where, "value", f"expected a 4-D NHWC tensor, got shape {list(x.shape)}")

    def four(arg, v):
        vals = [v] * 4 if isinstance(v, int) else list(v)
        if len(vals) == 2:
            vals = [1, *vals, 1]
        if len(vals) != 4 or vals[0] != 1 or vals[3] != 1 or min(vals) < 1:
            fail(where, arg, f"expected [1, h, w, 1] (NHWC, no batch/channel pooling), got {v!r}")
        return vals[1], vals[2]
    k, s = four("ksize", ksize), four("strides", strides)
    pads = resolve_padding(where, padding, x.shape[1:3], k, s, input_shape=x.shape)
    return record(op, [x], {"ksize": k, "strides": s, "padding": pads}, name)


def max_pool(value, ksize, strides, padding, data_format="NHWC", name=None):
    return _pool(Op.MAX_POOL, "tf.nn.max_pool", "MaxPool", value, ksize, strides, padding, data_format, name)


def avg_pool(value, ksize, strides, padding, data_format="NHWC", name=None):
    return _pool(Op.AVG_POOL, "tf.nn.avg_pool", "AvgPool", value, ksize, strides, padding, data_format, name)


# -- sources -------------------------------------------------------------------------------
def placeholder(dtype="float32", shape=None, name=None):
    """TF1 argument order: tf.placeholder(dtype, shape, name); the shape is static except the
    leading (batch) dimension, which may be None: `tf.placeholder(tf.float32, (None, 224, 224, 3))`."""
    if shape is None:
        raise ValueError(f"tf.placeholder {name or 'Placeholder'!r}: argument `shape`: a shape is required "
                         f"(only its leading, batch, dimension may be None)")
    if str(dtype) not in NODE_DTYPES:
        raise TypeError(f"tf.placeholder {name or 'Placeholder'!r}: argument `dtype`: unknown dtype {dtype!r}")
    return _placeholder(list(shape), str(dtype), name or "Placeholder")


def constant(value, dtype=None, shape=None, name="Const"):
    if shape not in (None, (), []):
        raise ValueError(f"tf.constant {name!r}: argument `shape`: only scalar constants exist in the IR")
    return _constant(value, str(dtype or ("float32" if isinstance(value, float) else "int32")), name)


def convert_to_tensor(value, dtype=None, name=None):
    if isinstance(value, Tensor):
        return value
    return constant(value, dtype=dtype, name=name or "Const")
