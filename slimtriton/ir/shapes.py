"""Shape rules: one entry per op, (node name, input nodes, attrs) -> (shape, dtype).

Used when recording (the front end) and again by the verifier after every pass.
Errors are ValueError/TypeError naming the node (its scope), the argument and the shapes.

An unknown batch: the leading dimension of a shape may be None (a placeholder recorded
with `[None, ...]`). Rules pass it through; a rule that would mix the batch with another
axis or reduce over it (concat/pad/tile/softmax/mean along axis 0, a reshape moving the
batch, broadcasting it against a real axis) refuses it, naming the node and the axis, and
`infer` checks that no result has None past its leading dimension.
"""
from __future__ import annotations

import math

from .node import NODE_DTYPES, FLOAT_DTYPES
from .ops import ACTIVATION_OPS, ELEMENTWISE_BINARY, Op, act_of_op, lookup, parse_act


def infer(op: Op, inputs, attrs, name: str):
    rule = lookup(SHAPE_RULES, op, "SHAPE_RULES")
    shape, dtype = rule(name, inputs, attrs)
    if None in tuple(shape)[1:]:
        _fail(name, f"output shape {list(shape)} would have an unknown dimension past the batch; only the "
                    f"leading (batch) dimension may be None")
    return shape, dtype


def _batch_axis(name, x, axis, what):
    """Refuse `what` along axis 0 of an input whose batch is unknown (it would mix examples)."""
    if axis == 0 and x.shape and x.shape[0] is None:
        _fail(name, f"{what} along axis 0 of {x.name}{list(x.shape)}: axis 0 is the unknown batch (None); "
                    f"an op may not mix or reduce examples of a dynamic batch")


def _fail(name, msg, exc=ValueError):
    raise exc(f"{name}: {msg}")


def _arity(name, inputs, *counts):
    if len(inputs) not in counts:
        _fail(name, f"expected {' or '.join(map(str, counts))} inputs, got {len(inputs)}")


def _same_dtype(name, inputs):
    dts = {i.dtype for i in inputs}
    if len(dts) > 1:
        _fail(name, "inputs have different dtypes: " + ", ".join(f"{i.name}:{i.dtype}" for i in inputs), TypeError)
    return inputs[0].dtype


def _rank(name, node, rank, what="input"):
    if len(node.shape) != rank:
        _fail(name, f"{what} {node.name} must have rank {rank}, got shape {list(node.shape)}")


def _vector(name, node, length, what):
    if tuple(node.shape) != (length,):
        _fail(name, f"{what} {node.name} must have shape [{length}], got {list(node.shape)}")


def broadcast_shapes(name, a, b):
    out = []
    for i in range(max(len(a), len(b))):
        da = a[len(a) - 1 - i] if i < len(a) else 1
        db = b[len(b) - 1 - i] if i < len(b) else 1
        if da is None or db is None:  # the unknown batch: broadcasts with itself or with 1 only
            if (da, db) not in ((None, None), (None, 1), (1, None)):
                _fail(name, f"shapes {list(a)} and {list(b)} do not broadcast: the unknown batch (None) meets "
                            f"a dimension of size {da if db is None else db}")
            out.append(None)
            continue
        if da != db and 1 not in (da, db):
            _fail(name, f"shapes {list(a)} and {list(b)} do not broadcast")
        out.append(max(da, db))
    return tuple(reversed(out))


def _source(name, inputs, attrs):
    _arity(name, inputs, 0)
    if attrs["dtype"] not in NODE_DTYPES:
        _fail(name, f"unknown dtype {attrs['dtype']!r}", TypeError)
    shape = tuple(attrs.get("shape", ()))
    if None in shape and ("var" in attrs or None in shape[1:]):
        _fail(name, f"shape {list(shape)}: only a placeholder's leading (batch) dimension may be None")
    return shape, attrs["dtype"]


def _constant(name, inputs, attrs):
    _arity(name, inputs, 0)
    return (), attrs["dtype"]


def _binary(name, inputs, attrs):
    _arity(name, inputs, 2)
    dtype = _same_dtype(name, inputs)
    return broadcast_shapes(name, inputs[0].shape, inputs[1].shape), dtype


def _unary(name, inputs, attrs):
    _arity(name, inputs, 1)
    return inputs[0].shape, inputs[0].dtype


def _activation(op: Op):
    act = act_of_op(op)

    def rule(name, inputs, attrs):
        _arity(name, inputs, 1)
        if act.param is not None and not isinstance(attrs.get(act.param[0]), (int, float)):
            _fail(name, f"{act.value} needs a number {act.param[0]!r}, got attrs {dict(attrs)}")
        return inputs[0].shape, inputs[0].dtype
    return rule


def _bias_add(name, inputs, attrs):
    _arity(name, inputs, 2)
    x, b = inputs
    if len(x.shape) < 2:
        _fail(name, f"input must have rank >= 2, got shape {list(x.shape)}")
    _vector(name, b, x.shape[-1], "biases")
    return x.shape, _same_dtype(name, inputs)


def _batch_norm(name, inputs, attrs):
    n_params = 2 + bool(attrs["scale"]) + bool(attrs["center"])
    _arity(name, inputs, 1 + n_params)
    x = inputs[0]
    if len(x.shape) < 2:
        _fail(name, f"input must have rank >= 2, got shape {list(x.shape)}")
    for p in inputs[1:]:
        _vector(name, p, x.shape[-1], "parameter")
    return x.shape, _same_dtype(name, inputs)


def conv_output_size(size, k, stride, dilation, pad_before, pad_after):
    k_eff = (k - 1) * dilation + 1
    return (size + pad_before + pad_after - k_eff) // stride + 1


def _window_attrs(name, attrs, x_shape, kernel_hw):
    sh, sw = attrs["strides"]
    dh, dw = attrs.get("dilations", (1, 1))
    (pt, pb), (pl, pr) = attrs["padding"]
    if min(sh, sw, dh, dw) < 1 or min(pt, pb, pl, pr) < 0:
        _fail(name, f"strides {attrs['strides']}, dilations {(dh, dw)} must be >= 1 and padding {attrs['padding']} >= 0")
    oh = conv_output_size(x_shape[1], kernel_hw[0], sh, dh, pt, pb)
    ow = conv_output_size(x_shape[2], kernel_hw[1], sw, dw, pl, pr)
    if oh < 1 or ow < 1:
        _fail(name, f"kernel {list(kernel_hw)} (dilation {(dh, dw)}) is larger than the padded input "
                    f"{[x_shape[1] + pt + pb, x_shape[2] + pl + pr]} (input shape {list(x_shape)})")
    return oh, ow


def _conv2d(name, inputs, attrs):
    _arity(name, inputs, 2)
    x, w = inputs
    _rank(name, x, 4)
    _rank(name, w, 4, "weights")
    if w.shape[2] != x.shape[3]:
        _fail(name, f"weights {list(w.shape)} expect {w.shape[2]} input channels, input has shape {list(x.shape)}")
    oh, ow = _window_attrs(name, attrs, x.shape, w.shape[:2])
    return (x.shape[0], oh, ow, w.shape[3]), _same_dtype(name, inputs)


def _depthwise(name, inputs, attrs):
    _arity(name, inputs, 2)
    x, w = inputs
    _rank(name, x, 4)
    _rank(name, w, 4, "depthwise weights")
    if w.shape[2] != x.shape[3]:
        _fail(name, f"depthwise weights {list(w.shape)} expect {w.shape[2]} channels, input has shape {list(x.shape)}")
    oh, ow = _window_attrs(name, attrs, x.shape, w.shape[:2])
    return (x.shape[0], oh, ow, w.shape[2] * w.shape[3]), _same_dtype(name, inputs)


def _conv2d_transpose(name, inputs, attrs):
    _arity(name, inputs, 2)
    x, w = inputs
    _rank(name, x, 4)
    _rank(name, w, 4, "weights")
    if w.shape[3] != x.shape[3]:
        _fail(name, f"transpose weights {list(w.shape)} expect {w.shape[3]} input channels, input has shape {list(x.shape)}")
    oh, ow = attrs["output_hw"]
    if oh < 1 or ow < 1:
        _fail(name, f"output size {attrs['output_hw']} must be positive")
    return (x.shape[0], oh, ow, w.shape[2]), _same_dtype(name, inputs)


def _matmul(name, inputs, attrs):
    _arity(name, inputs, 2)
    x, w = inputs
    _rank(name, w, 2, "weights")
    if len(x.shape) < 2 or x.shape[-1] != w.shape[0]:
        _fail(name, f"input shape {list(x.shape)} does not contract with weights {list(w.shape)} on the last axis")
    return tuple(x.shape[:-1]) + (w.shape[1],), _same_dtype(name, inputs)


def _pool(name, inputs, attrs):
    _arity(name, inputs, 1)
    x = inputs[0]
    _rank(name, x, 4)
    oh, ow = _window_attrs(name, attrs, x.shape, attrs["ksize"])
    # Pools ignore padded cells, so a window made only of padding has no value (max of
    # nothing, mean of nothing): reject such paddings rather than invent -inf or nan.
    for axis, (size, out, k, s, (before, _)) in enumerate(zip(
            x.shape[1:3], (oh, ow), attrs["ksize"], attrs["strides"], attrs["padding"])):
        if before > k - 1 or (out - 1) * s - before > size - 1:
            _fail(name, f"padding {attrs['padding']} leaves a pooling window with no input cell "
                        f"(kernel {list(attrs['ksize'])}, strides {list(attrs['strides'])}, input {list(x.shape)})")
    return (x.shape[0], oh, ow, x.shape[3]), x.dtype


def _axis(name, x, axis):
    if not 0 <= axis < len(x.shape):
        _fail(name, f"axis {axis} is out of range for shape {list(x.shape)}")


def _reduce_mean(name, inputs, attrs):
    _arity(name, inputs, 1)
    x = inputs[0]
    axes = tuple(attrs["axes"])
    for a in axes:
        _axis(name, x, a)
        _batch_axis(name, x, a, "mean")
    if attrs["keepdims"]:
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    else:
        shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    return shape, x.dtype


def _along_axis(name, inputs, attrs):
    _arity(name, inputs, 1)
    _axis(name, inputs[0], attrs["axis"])
    _batch_axis(name, inputs[0], attrs["axis"], "normalization")
    return inputs[0].shape, inputs[0].dtype


def _reshape(name, inputs, attrs):
    _arity(name, inputs, 1)
    x = inputs[0]
    shape = tuple(attrs["shape"])
    if x.dynamic_batch or None in shape:
        # an unknown batch stays the leading dimension: only the per-example part is reshaped
        if not (x.dynamic_batch and shape and shape[0] is None):
            _fail(name, f"cannot reshape {list(x.shape)} to {list(shape)}: the unknown batch (None) must stay "
                        f"the leading dimension of both shapes")
        if math.prod(shape[1:]) != x.per_example_size:
            _fail(name, f"cannot reshape {list(x.shape)} ({x.per_example_size} elements per example) to "
                        f"{list(shape)}")
        return shape, x.dtype
    if math.prod(shape) != x.size:
        _fail(name, f"cannot reshape {list(x.shape)} ({x.size} elements) to {list(shape)}")
    return shape, x.dtype


def _concat(name, inputs, attrs):
    if not inputs:
        _fail(name, "concat needs at least one input")
    axis = attrs["axis"]
    first = inputs[0]
    _axis(name, first, axis)
    for i in inputs:
        _batch_axis(name, i, axis, "concat")
    for i in inputs[1:]:
        if len(i.shape) != len(first.shape) or any(
                a != b for k, (a, b) in enumerate(zip(i.shape, first.shape)) if k != axis):
            _fail(name, f"concat along axis {axis}: shapes do not match: "
                        + ", ".join(f"{n.name}{list(n.shape)}" for n in inputs))
    shape = list(first.shape)
    shape[axis] = sum(i.shape[axis] for i in inputs)
    return tuple(shape), _same_dtype(name, inputs)


def _channel_slice(name, inputs, attrs):
    """act(x[..., begin:begin + size]): a non-empty range of the last axis."""
    _arity(name, inputs, 1)
    x = inputs[0]
    begin, size = attrs["begin"], attrs["size"]
    if not x.shape or not (isinstance(begin, int) and isinstance(size, int)) or begin < 0 or size < 1 \
            or begin + size > x.shape[-1]:
        _fail(name, f"channel slice [{begin}:{begin}+{size}] is not a non-empty range of the last axis of "
                    f"{x.name}{list(x.shape)}")
    parse_act(attrs.get("act", "none"), f"{name}: act")
    return x.shape[:-1] + (size,), x.dtype


def _pad(name, inputs, attrs):
    _arity(name, inputs, 1)
    x = inputs[0]
    pads = attrs["paddings"]
    if len(pads) != len(x.shape) or any(min(p) < 0 for p in pads):
        _fail(name, f"paddings {pads} must give (before, after) >= 0 for each of the {len(x.shape)} axes of {list(x.shape)}")
    if x.dynamic_batch and tuple(pads[0]) != (0, 0):
        _batch_axis(name, x, 0, f"padding {tuple(pads[0])}")
    return tuple(None if d is None else d + b + a for d, (b, a) in zip(x.shape, pads)), x.dtype


def _tile(name, inputs, attrs):
    _arity(name, inputs, 1)
    x = inputs[0]
    mult = attrs["multiples"]
    if len(mult) != len(x.shape) or min(mult) < 1:
        _fail(name, f"multiples {mult} must be >= 1 for each axis of {list(x.shape)}")
    if x.dynamic_batch and mult[0] != 1:
        _batch_axis(name, x, 0, f"tiling by {mult[0]}")
    return tuple(None if d is None else d * m for d, m in zip(x.shape, mult)), x.dtype


def _one_hot(name, inputs, attrs):
    _arity(name, inputs, 1)
    if inputs[0].dtype not in ("int32", "int64"):
        _fail(name, f"labels must be integers, got {inputs[0].dtype}", TypeError)
    return tuple(inputs[0].shape) + (attrs["depth"],), attrs["dtype"]


# -- fused ops: base op shape + epilogue operands ---------------------------------------------
def _residual_shape(name, r, out_shape, strides):
    """A residual has the output shape, or -- with residual_strides (s_h, s_w), FUSED_CONV2D
    only -- is the [N, RH, RW, C] tensor whose cells [n, oh*s_h, ow*s_w, c] are added (ResNet's
    subsample(x, s) shortcut read in place): (RH - 1) // s_h + 1 == OH, likewise W."""
    if strides == (1, 1):
        if tuple(r.shape) != tuple(out_shape):
            _fail(name, f"residual {r.name}{list(r.shape)} must have the output shape {list(out_shape)}")
        return
    n, oh, ow, c = out_shape
    if (len(r.shape) != 4 or r.shape[0] != n or r.shape[3] != c or min(strides) < 1
            or (r.shape[1] - 1) // strides[0] + 1 != oh or (r.shape[2] - 1) // strides[1] + 1 != ow):
        _fail(name, f"residual {r.name}{list(r.shape)} read with residual_strides {list(strides)} does not "
                    f"give the output shape {list(out_shape)}")


def _epilogue_inputs(name, inputs, attrs, n_base, out_shape, out_dtype, strided_residual=False):
    """Check (scale, shift[, residual][, in_scale, in_shift]) after the `n_base` operands."""
    for key in ("act", "act2", "prologue_act"):
        try:
            parse_act(attrs.get(key, "none"), f"{name}: {key}")
        except ValueError as e:
            _fail(name, str(e).split(": ", 1)[1])
    expected = n_base + 2 + bool(attrs.get("residual")) + 2 * bool(attrs.get("prologue"))
    _arity(name, inputs, expected)
    scale, shift = inputs[n_base], inputs[n_base + 1]
    _vector(name, scale, out_shape[-1], "epilogue scale")
    _vector(name, shift, out_shape[-1], "epilogue shift")
    k = n_base + 2
    strides = tuple(attrs.get("residual_strides", (1, 1)))
    if strides != (1, 1) and not (strided_residual and attrs.get("residual")):
        _fail(name, f"residual_strides {list(strides)} needs a residual of a fused conv2d")
    if attrs.get("residual"):
        _residual_shape(name, inputs[k], out_shape, strides)
        k += 1
    if attrs.get("prologue"):
        c_in = inputs[0].shape[-1]
        _vector(name, inputs[k], c_in, "prologue scale")
        _vector(name, inputs[k + 1], c_in, "prologue shift")
    _same_dtype(name, inputs)
    return tuple(out_shape), out_dtype


def _fused(base_rule, n_base, strided_residual=False):
    def rule(name, inputs, attrs):
        shape, dtype = base_rule(name, inputs[:n_base], attrs)
        return _epilogue_inputs(name, inputs, attrs, n_base, shape, dtype, strided_residual)
    return rule


def _fused_window_conv2d(name, inputs, attrs):
    """FUSED_WINDOW_CONV2D (fused_ops.md): x, w[1,1,C,Cout], scale, shift[, win_w[kh,kw,C,1],
    win_scale[C], win_shift[C]]; the output grid is the window's (avg pool / depthwise conv)."""
    window = attrs["window"]
    if window not in WINDOWS:
        _fail(name, f"window={window!r} is not one of {WINDOWS}")
    for key in ("act", "win_act"):
        parse_act(attrs.get(key, "none"), f"{name}: {key}")
    if attrs.get("residual") or attrs.get("act2", "none") != "none":
        _fail(name, "a windowed 1x1 conv has no residual")
    _arity(name, inputs, 7 if window == "depthwise" else 4)
    x, w = inputs[:2]
    win = window_attrs(attrs)
    if window == "depthwise":
        wd = inputs[4]
        if tuple(wd.shape) != (*attrs["ksize"], x.shape[-1], 1):
            _fail(name, f"depthwise weights {wd.name}{list(wd.shape)} must be [{attrs['ksize'][0]}, "
                        f"{attrs['ksize'][1]}, {x.shape[-1]}, 1] for input shape {list(x.shape)}")
        (n, oh, ow, c), _ = _depthwise(name, (x, wd), win)
        _vector(name, inputs[5], c, "window scale")
        _vector(name, inputs[6], c, "window shift")
    else:
        (n, oh, ow, c), _ = _pool(name, (x,), win)
    _rank(name, w, 4, "weights")
    if tuple(w.shape[:3]) != (1, 1, c):
        _fail(name, f"weights {w.name}{list(w.shape)} must be [1, 1, {c}, Cout] (input shape {list(x.shape)})")
    out = (n, oh, ow, w.shape[3])
    _vector(name, inputs[2], out[-1], "epilogue scale")
    _vector(name, inputs[3], out[-1], "epilogue shift")
    return out, _same_dtype(name, inputs)


WINDOWS = ("avg_pool", "depthwise")


def window_attrs(attrs) -> dict:
    """The pool / depthwise-conv attrs of a FUSED_WINDOW_CONV2D's window."""
    return {"ksize": tuple(attrs["ksize"]), "strides": tuple(attrs["win_strides"]),
            "padding": tuple(attrs["win_padding"]), "dilations": tuple(attrs["win_dilations"])}
def _mean_matmul(name, inputs, attrs):
    """x[N,H,W,C], w [C,Cout] or [1,1,C,Cout] -> [N,Cout] ([N,1,1,Cout] with keepdims)."""
    _arity(name, inputs, 2)
    x, w = inputs
    _rank(name, x, 4)
    if len(w.shape) not in (2, 4) or tuple(w.shape[:-2]) not in ((), (1, 1)) or w.shape[-2] != x.shape[3]:
        _fail(name, f"weights {list(w.shape)} must be [C, Cout] or [1, 1, C, Cout] with C = {x.shape[3]} "
                    f"(input shape {list(x.shape)})")
    cout = w.shape[-1]
    shape = (x.shape[0], 1, 1, cout) if attrs["keepdims"] else (x.shape[0], cout)
    return shape, _same_dtype(name, inputs)


def _identity_base(name, inputs, attrs):
    return inputs[0].shape, inputs[0].dtype


SHAPE_RULES = {
    Op.PLACEHOLDER: _source,
    Op.VARIABLE: _source,
    Op.CONSTANT: _constant,
    **{op: _binary for op in ELEMENTWISE_BINARY},
    Op.NEG: _unary,
    Op.IDENTITY: _unary,
    **{op: _activation(op) for op in ACTIVATION_OPS},
    Op.DROPOUT: _unary,
    Op.BIAS_ADD: _bias_add,
    Op.BATCH_NORM: _batch_norm,
    Op.UNIT_NORM: _along_axis,
    Op.SOFTMAX: _along_axis,
    Op.CONV2D: _conv2d,
    Op.DEPTHWISE_CONV2D: _depthwise,
    Op.CONV2D_TRANSPOSE: _conv2d_transpose,
    Op.MATMUL: _matmul,
    Op.MAX_POOL: _pool,
    Op.AVG_POOL: _pool,
    Op.REDUCE_MEAN: _reduce_mean,
    Op.RESHAPE: _reshape,
    Op.CONCAT: _concat,
    Op.CHANNEL_SLICE: _channel_slice,
    Op.PAD: _pad,
    Op.TILE: _tile,
    Op.ONE_HOT: _one_hot,
    Op.FUSED_CONV2D: _fused(_conv2d, 2, strided_residual=True),
    Op.FUSED_DEPTHWISE_CONV2D: _fused(_depthwise, 2),
    Op.FUSED_CONV2D_TRANSPOSE: _fused(_conv2d_transpose, 2),
    Op.FUSED_MATMUL: _fused(_matmul, 2),
    Op.FUSED_ELEMENTWISE: _fused(_identity_base, 1),
    Op.FUSED_WINDOW_CONV2D: _fused_window_conv2d,
    Op.FUSED_MEAN_MATMUL: _fused(_mean_matmul, 2),
}

_missing = set(Op) - set(SHAPE_RULES)
assert not _missing, f"SHAPE_RULES misses {_missing}"
