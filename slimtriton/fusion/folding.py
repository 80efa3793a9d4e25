"""Pure numeric folding functions (float64 in, float64 out; callers cast), kept apart
from graph surgery. Same algebra as torch/nn/utils/fusion.py's fuse_conv_bn_weights.

Inference batch norm is the per-channel affine map
    bn(y) = (y - mean) / sqrt(var + eps) * gamma + beta = y * s + (beta - mean * s),
    s = gamma / sqrt(var + eps)            (gamma = 1 when absent, beta = 0 when absent)
and a convolution is linear in its weights, so bn(conv(x, w) + b) = conv(x, w * s) + (b - mean) * s + beta
with `s` applied along the weights' output-channel axis.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

# How each weight layout stores output channels (see ir/ops.py).
LAYOUTS = ("hwio", "depthwise", "transpose", "matmul")


def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def batch_norm_affine(mean, var, gamma: Optional[np.ndarray], beta: Optional[np.ndarray], eps: float):
    """(scale, shift) with bn(y) = y * scale + shift."""
    mean, var = _f64(mean), _f64(var)
    scale = 1.0 / np.sqrt(var + float(eps))
    if gamma is not None:
        scale = scale * _f64(gamma)
    shift = -mean * scale
    if beta is not None:
        shift = shift + _f64(beta)
    return scale, shift


def scale_output_channels(w, scale, layout: str = "hwio") -> np.ndarray:
    """w with every output channel c multiplied by scale[c]."""
    w, scale = _f64(w), _f64(scale)
    if layout in ("hwio", "matmul"):
        return w * scale
    if layout == "depthwise":  # [kh, kw, cin, dm], output channel c*dm + m
        return w * scale.reshape(w.shape[2], w.shape[3])
    if layout == "transpose":  # [kh, kw, cout, cin]
        return w * scale[:, None]
    raise ValueError(f"unknown weight layout {layout!r}; expected one of {LAYOUTS}")


def fold_batch_norm(w, b, mean, var, gamma, beta, eps, layout: str = "hwio"):
    """Fold inference BN (and an optional bias `b`) into conv/FC weights: (w', shift)."""
    scale, shift = batch_norm_affine(mean, var, gamma, beta, eps)
    if b is not None:
        shift = shift + _f64(b) * scale
    return scale_output_channels(w, scale, layout), shift


def concat_output_channels(arrays) -> np.ndarray:
    """Weights (hwio / matmul layout) or per-channel vectors side by side along the output-channel
    (last) axis: the operands of one GEMM computing several sibling convs (fusion/horizontal.py)."""
    return np.concatenate([_f64(a) for a in arrays], axis=-1)


def compose_affine(scale, shift, scale2, shift2):
    """(x * scale + shift) * scale2 + shift2 as one affine map."""
    scale, shift, scale2, shift2 = map(_f64, (scale, shift, scale2, shift2))
    return scale * scale2, shift * scale2 + shift2


# Unit roundoff of each compute dtype (half the distance from 1 to the next number).
UNIT_ROUNDOFF = {"float32": 2.0 ** -24, "float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}


def round_to(a, dtype: str) -> np.ndarray:
    """a (float64) rounded to `dtype` and back: subnormals, flushes to zero and overflows included."""
    a = _f64(a)
    if dtype == "bfloat16":  # NumPy has no bfloat16
        import torch  # lazy: only to round to bfloat16 (the passes run without torch)
        return torch.from_numpy(a).to(torch.bfloat16).to(torch.float64).numpy()
    with np.errstate(over="ignore", under="ignore"):
        return a.astype(np.dtype(dtype)).astype(np.float64)


def output_channel_columns(w, layout: str = "hwio") -> np.ndarray:
    """w as a [rows, output channels] matrix (the output channel of every weight, per layout)."""
    w = _f64(w)
    if layout in ("hwio", "matmul"):
        return w.reshape(-1, w.shape[-1])
    if layout == "depthwise":  # [kh, kw, cin, dm], output channel c*dm + m
        return w.reshape(w.shape[0] * w.shape[1], w.shape[2] * w.shape[3])
    if layout == "transpose":  # [kh, kw, cout, cin]
        return np.moveaxis(w, 2, -1).reshape(-1, w.shape[2])
    raise ValueError(f"unknown weight layout {layout!r}; expected one of {LAYOUTS}")


def _channel_rounding_error(w, dtype: str, layout: str) -> np.ndarray:
    """Per output channel, ||round(w) - w|| / ||w|| (0 for an all-zero channel; inf on overflow)."""
    cols = output_channel_columns(w, layout)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.sqrt(np.sum((round_to(cols, dtype) - cols) ** 2, axis=0))
        norm = np.sqrt(np.sum(cols ** 2, axis=0))
        return np.where(norm > 0, diff / np.where(norm > 0, norm, 1.0), np.where(diff > 0, np.inf, 0.0))


def folding_precision_loss(w, scale, layout: str, dtype: str, factor: float = 4.0) -> Optional[str]:
    """Why folding `scale` into `w` would lose precision in `dtype`, or None when it keeps it.

    Rounded to `dtype`, normal numbers carry a relative error of at most the unit roundoff u in
    every output channel; folded weights that become subnormal, flush to zero or overflow carry
    far more. Folding loses precision when some output channel of round(w * scale) has a
    relative (L2) error above `factor` * max(u, the same error of round(w)) -- so weights that
    are already tiny unfolded do not count against folding."""
    folded = scale_output_channels(w, scale, layout)
    err_folded = _channel_rounding_error(folded, dtype, layout)
    err_plain = _channel_rounding_error(w, dtype, layout)
    u = UNIT_ROUNDOFF[dtype]
    bad = np.flatnonzero(err_folded > factor * np.maximum(err_plain, u))
    if bad.size == 0:
        return None
    worst = int(bad[np.argmax(err_folded[bad])])
    return (f"folded weights lose precision in {dtype} in {bad.size} of {err_folded.size} output channels "
            f"(channel {worst}: scale {float(_f64(scale).reshape(-1)[worst]):.3g}, relative rounding error "
            f"{err_folded[worst]:.2g} folded vs {max(err_plain[worst], u):.2g} unfolded)")
