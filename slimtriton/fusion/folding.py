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


def compose_affine(scale, shift, scale2, shift2):
    """(x * scale + shift) * scale2 + shift2 as one affine map."""
    scale, shift, scale2, shift2 = map(_f64, (scale, shift, scale2, shift2))
    return scale * scale2, shift * scale2 + shift2
