"""Max / average pooling with explicit padding, and the global spatial mean.

Algorithm (NHWC; tile = BLOCK_R output pixels x BLOCK_C channels):

    window of output (n, oh, ow): taps ih = oh*sh - pt + kh, iw = ow*sw - pl + kw
    max_pool   max over the taps inside the image (padded cells are ignored, never win)
    avg_pool   sum over the taps inside the image / number of such taps (TF's SAME average)
    global     mean over all H*W pixels of (n, c): loop over pixel chunks, fp32 sums

All write `out[m, offset + c]` of an NHWC buffer with `out_c_total` channels, so a pool can
land directly in its slice of a concat.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import config as cfg
from .common import KernelArgumentError, check_activation, output_buffer, padding_pairs, pair, pixel_of_row
from .launch import KernelLaunch


@triton.jit
def pool2d_kernel(
    x_ptr, out_ptr,
    M, H, W, C, OH, OW, KH, KW, stride_h, stride_w, pad_t, pad_l,
    out_c_total, out_c_offset,
    IS_MAX: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    offs_m = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    m_mask = offs_m < M
    c_mask = offs_c < C
    n, oh, ow = pixel_of_row(offs_m, OH, OW)
    if IS_MAX:
        acc = tl.full((BLOCK_R, BLOCK_C), float("-inf"), dtype=tl.float32)
    else:
        acc = tl.zeros((BLOCK_R, BLOCK_C), dtype=tl.float32)
    count = tl.zeros((BLOCK_R,), dtype=tl.float32)
    for r in range(0, KH * KW):
        ih = oh * stride_h - pad_t + r // KW
        iw = ow * stride_w - pad_l + r % KW
        valid = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W) & m_mask
        mask = valid[:, None] & c_mask[None, :]
        offs = (((n * H + ih) * W + iw) * C)[:, None] + offs_c[None, :]
        if IS_MAX:
            v = tl.load(x_ptr + offs, mask=mask, other=float("-inf")).to(tl.float32)
            acc = tl.maximum(acc, v)
        else:
            v = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            acc += v
            count += valid.to(tl.float32)
    if not IS_MAX:
        acc = acc / tl.maximum(count, 1.0)[:, None]
    out_mask = m_mask[:, None] & c_mask[None, :]
    out_offs = offs_m[:, None] * out_c_total + out_c_offset + offs_c[None, :]
    tl.store(out_ptr + out_offs, acc.to(out_ptr.dtype.element_ty), mask=out_mask)


@triton.jit
def global_mean_kernel(
    x_ptr, out_ptr, HW, C, inv_hw, out_c_total, out_c_offset,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    n = tl.program_id(0)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = offs_c < C
    acc = tl.zeros((BLOCK_R, BLOCK_C), dtype=tl.float32)
    for p0 in range(0, HW, BLOCK_R):
        p = p0 + tl.arange(0, BLOCK_R)
        mask = (p < HW)[:, None] & c_mask[None, :]
        acc += tl.load(x_ptr + (n * HW + p)[:, None] * C + offs_c[None, :], mask=mask, other=0.0).to(tl.float32)
    mean = tl.sum(acc, axis=0) * inv_hw
    tl.store(out_ptr + n * out_c_total + out_c_offset + offs_c, mean.to(out_ptr.dtype.element_ty), mask=c_mask)


def _pool(what, x, ksize, strides, padding, out, out_channel_offset, is_max) -> torch.Tensor:
    check_activation(x, what, ndim=4)
    kh, kw = pair(ksize, f"{what}: ksize")
    sh, sw = pair(strides, f"{what}: strides")
    (pt, pb), (pl, pr) = padding_pairs(padding, what)
    if min(kh, kw, sh, sw) < 1:
        raise KernelArgumentError(f"{what}: ksize {ksize} and strides {strides} must be >= 1")
    if max(pt, pb) >= kh or max(pl, pr) >= kw:
        # a window made only of padding has no real cell: max/mean undefined
        raise KernelArgumentError(f"{what}: padding {padding} must be smaller than the window {kh}x{kw}")
    n, h, w, c = x.shape
    oh = (h + pt + pb - kh) // sh + 1
    ow = (w + pl + pr - kw) // sw + 1
    if oh < 1 or ow < 1:
        raise KernelArgumentError(f"{what}: input {tuple(x.shape)} with window {kh}x{kw} and padding "
                                  f"{padding} gives an empty output {oh}x{ow}")
    out, total = output_buffer(out, what, x, (n, oh, ow), c, out_channel_offset)
    m = n * oh * ow
    tile = cfg.tile_2d(m, c, gpu_elems=2048, max_cols=64)
    grid = (triton.cdiv(m, tile.BLOCK_R), triton.cdiv(c, tile.BLOCK_C))
    args = (x, out, m, h, w, c, oh, ow, kh, kw, sh, sw, pt, pl, total, out_channel_offset)
    KernelLaunch(what, pool2d_kernel, args, {"IS_MAX": is_max, **tile.constexprs()}, grid,
                 tile.num_warps, 1, kind="pool").run()
    return out


def max_pool2d(x, ksize, strides, padding, out=None, out_channel_offset=0, name="max_pool2d"):
    """Max pooling, NHWC, explicit padding ((t,b),(l,r)); padded cells are ignored."""
    return _pool(name, x, ksize, strides, padding, out, out_channel_offset, True)


def avg_pool2d(x, ksize, strides, padding, out=None, out_channel_offset=0, name="avg_pool2d"):
    """Average pooling, NHWC, explicit padding; divides by the number of real cells."""
    return _pool(name, x, ksize, strides, padding, out, out_channel_offset, False)


def global_mean(x, keepdims=True, out=None, out_channel_offset=0, name="global_mean") -> torch.Tensor:
    """Mean over H and W of x[N,H,W,C] -> [N,1,1,C] (keepdims) or [N,C]; `out` may be wider in C."""
    what = name
    check_activation(x, what, ndim=4)
    n, h, w, c = x.shape
    if h * w == 0:
        raise KernelArgumentError(f"{what}: mean over an empty H*W (x shape {tuple(x.shape)})")
    lead = (n, 1, 1) if keepdims else (n,)
    out, total = output_buffer(out, what, x, lead, c, out_channel_offset)
    tile = cfg.tile_2d(h * w, c, gpu_elems=2048, max_cols=64)
    grid = (n, triton.cdiv(c, tile.BLOCK_C))
    args = (x, out, h * w, c, 1.0 / (h * w), total, out_channel_offset)
    KernelLaunch(what, global_mean_kernel, args, tile.constexprs(), grid, tile.num_warps, 1,
                 kind="reduction").run()
    return out
