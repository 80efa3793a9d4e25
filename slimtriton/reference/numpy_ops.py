"""The NumPy reference ops: plain functions on float64 NHWC arrays.

This module is the living definition of what every op computes. It is naive on
purpose: convolutions loop over kernel taps and contract channels with
`np.tensordot`, pools loop over window taps. It never shares code with the
Triton kernels or the torch executor, so that a bug cannot hide in both.

Conventions (TF semantics, see shared/reference/tf-slim-semantics.md):
  * `padding` is always explicit, possibly asymmetric: ((top, bottom), (left, right)).
  * Pools ignore padded cells: max pooling pads with -inf, average pooling divides
    each window by the number of real (non-padded) cells in it.
  * Depthwise output channel `c*dm + m` comes from input channel `c` and multiplier `m`.
  * conv2d_transpose: out[o] += x[i] * w[k] with o = i*stride + k - pad_before.
  * Everything is computed in float64; the caller casts the result.
"""
from __future__ import annotations

import numpy as np

from ..ir.ops import Act, parse_act


def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _check_padding(padding, what: str):
    (pt, pb), (pl, pr) = padding
    if min(pt, pb, pl, pr) < 0:
        raise ValueError(f"{what}: padding {padding} must be >= 0")
    return int(pt), int(pb), int(pl), int(pr)


def _pad_hw(x: np.ndarray, padding, value: float, what: str) -> np.ndarray:
    pt, pb, pl, pr = _check_padding(padding, what)
    return np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), mode="constant", constant_values=value)


def _out_size(size: int, k: int, stride: int, dilation: int, what: str, axis: str) -> int:
    """Output length of a VALID window sweep over an (already padded) axis."""
    k_eff = (k - 1) * dilation + 1
    out = (size - k_eff) // stride + 1
    if out < 1:
        raise ValueError(f"{what}: effective kernel {k_eff} (kernel {k}, dilation {dilation}) is larger "
                         f"than the padded input {axis} {size}")
    return out


def _taps(xp: np.ndarray, kh: int, kw: int, strides, dilations, what: str):
    """Yield (i, j, window) where window[n, oy, ox, c] = xp[n, oy*sh + i*dh, ox*sw + j*dw, c]."""
    sh, sw = strides
    dh, dw = dilations
    if min(sh, sw, dh, dw) < 1:
        raise ValueError(f"{what}: strides {tuple(strides)} and dilations {tuple(dilations)} must be >= 1")
    oh = _out_size(xp.shape[1], kh, sh, dh, what, "height")
    ow = _out_size(xp.shape[2], kw, sw, dw, what, "width")
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dh, j * dw
            yield i, j, xp[:, y0:y0 + (oh - 1) * sh + 1:sh, x0:x0 + (ow - 1) * sw + 1:sw, :]


# -- convolutions -------------------------------------------------------------------------------
def conv2d(x, w, strides=(1, 1), padding=((0, 0), (0, 0)), dilations=(1, 1)) -> np.ndarray:
    """x[N,H,W,Cin] (*) w[kh,kw,Cin,Cout] -> [N,OH,OW,Cout] (cross-correlation, as TF)."""
    x, w = _f64(x), _f64(w)
    if x.ndim != 4 or w.ndim != 4 or w.shape[2] != x.shape[3]:
        raise ValueError(f"conv2d: input {list(x.shape)} and weights {list(w.shape)} "
                         f"(expected [N,H,W,C] and [kh,kw,C,Cout])")
    xp = _pad_hw(x, padding, 0.0, "conv2d")
    out = None
    for i, j, window in _taps(xp, w.shape[0], w.shape[1], strides, dilations, "conv2d"):
        term = np.tensordot(window, w[i, j], axes=([3], [0]))
        out = term if out is None else out + term
    return out


def depthwise_conv2d(x, w, strides=(1, 1), padding=((0, 0), (0, 0)), dilations=(1, 1)) -> np.ndarray:
    """x[N,H,W,C] with w[kh,kw,C,dm] -> [N,OH,OW,C*dm]; output channel c*dm + m."""
    x, w = _f64(x), _f64(w)
    if x.ndim != 4 or w.ndim != 4 or w.shape[2] != x.shape[3]:
        raise ValueError(f"depthwise_conv2d: input {list(x.shape)} and weights {list(w.shape)} "
                         f"(expected [N,H,W,C] and [kh,kw,C,dm])")
    xp = _pad_hw(x, padding, 0.0, "depthwise_conv2d")
    out = None
    for i, j, window in _taps(xp, w.shape[0], w.shape[1], strides, dilations, "depthwise_conv2d"):
        term = window[..., :, None] * w[i, j]  # [N,OH,OW,C,dm]
        out = term if out is None else out + term
    n, oh, ow, c, dm = out.shape
    return out.reshape(n, oh, ow, c * dm)


def conv2d_transpose(x, w, strides, pad_before, output_hw) -> np.ndarray:
    """x[N,H,W,Cin], w[kh,kw,Cout,Cin] -> [N,OH,OW,Cout] with out[i*s + k - pad_before] += x[i] w[k].

    Positions that fall outside [0, output_hw) are dropped; output cells no input reaches are 0.
    """
    x, w = _f64(x), _f64(w)
    if x.ndim != 4 or w.ndim != 4 or w.shape[3] != x.shape[3]:
        raise ValueError(f"conv2d_transpose: input {list(x.shape)} and weights {list(w.shape)} "
                         f"(expected [N,H,W,Cin] and [kh,kw,Cout,Cin])")
    sh, sw = strides
    pt, pl = pad_before
    oh, ow = output_hw
    if min(sh, sw) < 1 or min(pt, pl) < 0 or min(oh, ow) < 1:
        raise ValueError(f"conv2d_transpose: strides {tuple(strides)} must be >= 1, pad_before "
                         f"{tuple(pad_before)} >= 0, output_hw {tuple(output_hw)} >= 1")
    n, h, wd, _ = x.shape
    kh, kw, cout, _ = w.shape
    # The full (uncropped) output holds every o = i*s + k; make it large enough for the crop too.
    full_h = max((h - 1) * sh + kh, pt + oh)
    full_w = max((wd - 1) * sw + kw, pl + ow)
    full = np.zeros((n, full_h, full_w, cout), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            contrib = np.tensordot(x, w[i, j], axes=([3], [1]))  # [N,H,W,Cout]
            full[:, i:i + (h - 1) * sh + 1:sh, j:j + (wd - 1) * sw + 1:sw, :] += contrib
    return full[:, pt:pt + oh, pl:pl + ow, :]


def matmul(x, w) -> np.ndarray:
    """x[..., K] @ w[K, N] -> [..., N]."""
    x, w = _f64(x), _f64(w)
    if w.ndim != 2 or x.shape[-1] != w.shape[0]:
        raise ValueError(f"matmul: input {list(x.shape)} does not contract with weights {list(w.shape)}")
    return np.tensordot(x, w, axes=([x.ndim - 1], [0]))


# -- pooling ------------------------------------------------------------------------------------
def max_pool(x, ksize, strides, padding) -> np.ndarray:
    """Max over each window; padded cells are -inf (they never win)."""
    x = _f64(x)
    xp = _pad_hw(x, padding, -np.inf, "max_pool")
    real = _pad_hw(np.ones((1,) + x.shape[1:3] + (1,)), padding, 0.0, "max_pool")
    out = count = None
    for (_, _, window), (_, _, cells) in zip(_taps(xp, ksize[0], ksize[1], strides, (1, 1), "max_pool"),
                                             _taps(real, ksize[0], ksize[1], strides, (1, 1), "max_pool")):
        out = window.copy() if out is None else np.maximum(out, window)
        count = cells.copy() if count is None else count + cells
    if (count == 0).any():  # a -inf input value is a value; a window of padding alone has none
        raise ValueError(f"max_pool: a window of size {tuple(ksize)} covers only padding "
                         f"{tuple(map(tuple, padding))} (input {list(x.shape)})")
    return out


def avg_pool(x, ksize, strides, padding) -> np.ndarray:
    """Mean over the real (non-padded) cells of each window, as TF's SAME average pooling."""
    x = _f64(x)
    xp = _pad_hw(x, padding, 0.0, "avg_pool")
    real = _pad_hw(np.ones((1,) + x.shape[1:3] + (1,)), padding, 0.0, "avg_pool")
    total = None
    for _, _, window in _taps(xp, ksize[0], ksize[1], strides, (1, 1), "avg_pool"):
        total = window.copy() if total is None else total + window
    count = None
    for _, _, window in _taps(real, ksize[0], ksize[1], strides, (1, 1), "avg_pool"):
        count = window.copy() if count is None else count + window
    if (count == 0).any():
        raise ValueError(f"avg_pool: a window of size {tuple(ksize)} covers only padding "
                         f"{tuple(map(tuple, padding))} (input {list(x.shape)})")
    return total / count


# -- normalization, reductions ------------------------------------------------------------------
def batch_norm(x, mean, variance, gamma, beta, epsilon) -> np.ndarray:
    """(x - mean) / sqrt(variance + epsilon) * gamma + beta over the last axis; gamma/beta may be None."""
    x = _f64(x)
    y = (x - _f64(mean)) / np.sqrt(_f64(variance) + float(epsilon))
    if gamma is not None:
        y = y * _f64(gamma)
    if beta is not None:
        y = y + _f64(beta)
    return y


def batch_moments(x):
    """Batch statistics of training-mode batch norm: mean and biased variance over all axes but the last."""
    x = _f64(x)
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes)
    variance = ((x - mean) ** 2).mean(axis=axes)
    return mean, variance


def softmax(x, axis) -> np.ndarray:
    x = _f64(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def unit_norm(x, axis, epsilon) -> np.ndarray:
    """x / sqrt(epsilon + sum(x^2, axis))."""
    x = _f64(x)
    return x / np.sqrt(float(epsilon) + np.sum(x * x, axis=axis, keepdims=True))


def reduce_mean(x, axes, keepdims) -> np.ndarray:
    return np.mean(_f64(x), axis=tuple(axes), keepdims=bool(keepdims))


# -- activations, epilogue, prologue ------------------------------------------------------------
def sigmoid(x) -> np.ndarray:
    x = _f64(x)
    # Two branches so that neither exp overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


# The definition of every activation, NaN and infinity semantics included (TF's):
# NaN in -> NaN out for each; relu/relu6 of -inf is 0; elu(-inf) = -1; leaky_relu(-inf) = -inf;
# swish(-inf) = -inf * 0 = NaN (as TF's x * sigmoid(x)).
ACTIVATIONS = {
    Act.NONE: lambda x, p: x,
    Act.RELU: lambda x, p: np.maximum(x, 0.0),                      # np.maximum propagates NaN
    Act.RELU6: lambda x, p: np.minimum(np.maximum(x, 0.0), 6.0),
    Act.SIGMOID: lambda x, p: sigmoid(x),
    Act.TANH: lambda x, p: np.tanh(x),
    Act.ELU: lambda x, p: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),   # alpha 1 (tf.nn.elu)
    Act.LEAKY_RELU: lambda x, p: np.where(x > 0, x, p * x),                   # TF: x > 0 ? x : alpha*x
    Act.SWISH: lambda x, p: x * sigmoid(x),                                    # swish = silu, beta 1
}


def activation(x, act) -> np.ndarray:
    """`act` (an attribute value: "relu", (name, parameter), an `Act`) applied elementwise."""
    kind, param = parse_act(act, "reference activation")
    with np.errstate(invalid="ignore", over="ignore"):
        return ACTIVATIONS[kind](_f64(x), param)


def epilogue(acc, scale, shift, act, residual=None, residual_scale=1.0, act2="none") -> np.ndarray:
    """y = act(acc*scale[c] + shift[c]); out = act2(residual + residual_scale*y) when a residual is given."""
    y = activation(_f64(acc) * _f64(scale) + _f64(shift), act)
    if residual is None:
        return y
    return activation(_f64(residual) + float(residual_scale) * y, act2)


def prologue(x, in_scale, in_shift, act) -> np.ndarray:
    """act(x*in_scale[c] + in_shift[c]), applied to a conv input before (not after) padding."""
    return activation(_f64(x) * _f64(in_scale) + _f64(in_shift), act)


__all__ = [
    "conv2d", "depthwise_conv2d", "conv2d_transpose", "matmul", "max_pool", "avg_pool",
    "batch_norm", "batch_moments", "softmax", "unit_norm", "reduce_mean", "activation",
    "epilogue", "prologue", "sigmoid",
]
