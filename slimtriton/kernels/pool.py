"""Max / average pooling with explicit padding, and the global spatial mean.

Algorithm (NHWC; tile = BLOCK_R output pixels x BLOCK_C channels):

    window of output (n, oh, ow): taps ih = oh*sh - pt + kh, iw = ow*sw - pl + kw
    max_pool   max over the taps inside the image (padded cells are ignored, never win);
               a NaN in the window gives NaN, as the reference's np.maximum (and TF, torch)
    avg_pool   sum over the taps inside the image / number of such taps (TF's SAME average)
    global     mean over all H*W pixels of (n, c) of prologue(x): [BLOCK_R pixels, BLOCK_C
               channels] tiles, fp32 sums, rounded to the output dtype

The window size KH x KW is a constexpr: the tap loop is unrolled (`tl.static_range`), so the
KH*KW loads of a tile are independent instructions the GPU has in flight together, instead
of KH*KW dependent memory round trips of a runtime loop (what made small pools latency-bound).
Strides and padding stay runtime values. On a GPU the tile shrinks until the grid has one CTA
per SM (`common.filled_tile_2d`).

All write `out[m, offset + c]` of an NHWC buffer with `out_c_total` channels, so a pool can
land directly in its slice of a concat.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import config as cfg
from .common import (DTYPE_NAMES, KernelArgumentError, check_activation, filled_tile_2d, in_image, masked_prologue,
                     output_buffer, padding_pairs, pair, pixel_of_row, sm_count, tap_coords)
from .launch import KernelLaunch


@triton.jit
def pool2d_kernel(
    x_ptr, out_ptr,
    M, H, W, C, OH, OW, stride_h, stride_w, pad_t, pad_l,
    out_c_total, out_c_offset,
    KH: tl.constexpr, KW: tl.constexpr,
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
    for kh in tl.static_range(KH):
        for kw in tl.static_range(KW):
            ih, iw = tap_coords(oh, ow, kh, kw, stride_h, stride_w, pad_t, pad_l, 1, 1)
            valid = in_image(ih, iw, H, W) & m_mask
            mask = valid[:, None] & c_mask[None, :]
            offs = (((n * H + ih) * W + iw) * C)[:, None] + offs_c[None, :]
            if IS_MAX:
                # padded cells load -inf (never win); a NaN cell wins (propagate_nan=ALL)
                v = tl.load(x_ptr + offs, mask=mask, other=float("-inf")).to(tl.float32)
                acc = tl.maximum(acc, v, propagate_nan=tl.PropagateNan.ALL)
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
def _pixel_tile(x_ptr, n, HW, C, p, offs_c, c_mask):
    """x[n, p, c] of a [pixels, channels] tile (0 outside the map) and its mask."""
    mask = (p < HW)[:, None] & c_mask[None, :]
    return tl.load(x_ptr + (n * HW + p)[:, None] * C + offs_c[None, :], mask=mask, other=0.0), mask


@triton.jit
def global_mean_kernel(
    x_ptr, out_ptr, in_scale_ptr, in_shift_ptr, HW, C, inv_hw, out_c_total, out_c_offset,
    HAS_PROLOGUE: tl.constexpr, PROLOGUE_ACT: tl.constexpr, UNROLL4: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """out[n, offset + c] = (sum_p prologue(x[n, p, c])) / HW, fp32 sums rounded to out's dtype.
    One program per (image, channel block); a [BLOCK_R pixels, BLOCK_C] tile is one load,
    so a 7x7 or 8x8 map is a single round trip (BLOCK_R = 64). Larger maps (UNROLL4) take
    4 tiles per iteration, all four loads issued before any is used, so they are in flight
    together instead of one memory round trip per tile."""
    n = tl.program_id(0)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = offs_c < C
    s = 1.0
    b = 0.0
    if HAS_PROLOGUE:
        s = tl.load(in_scale_ptr + offs_c, mask=c_mask, other=0.0).to(tl.float32)[None, :]
        b = tl.load(in_shift_ptr + offs_c, mask=c_mask, other=0.0).to(tl.float32)[None, :]
    acc = tl.zeros((BLOCK_R, BLOCK_C), dtype=tl.float32)
    rows = tl.arange(0, BLOCK_R)
    if UNROLL4:
        for p0 in range(0, HW, 4 * BLOCK_R):
            v0, m0 = _pixel_tile(x_ptr, n, HW, C, p0 + rows, offs_c, c_mask)
            v1, m1 = _pixel_tile(x_ptr, n, HW, C, p0 + BLOCK_R + rows, offs_c, c_mask)
            v2, m2 = _pixel_tile(x_ptr, n, HW, C, p0 + 2 * BLOCK_R + rows, offs_c, c_mask)
            v3, m3 = _pixel_tile(x_ptr, n, HW, C, p0 + 3 * BLOCK_R + rows, offs_c, c_mask)
            acc += (masked_prologue(v0, m0, s, b, HAS_PROLOGUE, PROLOGUE_ACT) +
                    masked_prologue(v1, m1, s, b, HAS_PROLOGUE, PROLOGUE_ACT)) + \
                   (masked_prologue(v2, m2, s, b, HAS_PROLOGUE, PROLOGUE_ACT) +
                    masked_prologue(v3, m3, s, b, HAS_PROLOGUE, PROLOGUE_ACT))
    else:
        for p0 in range(0, HW, BLOCK_R):
            v, m = _pixel_tile(x_ptr, n, HW, C, p0 + rows, offs_c, c_mask)
            acc += masked_prologue(v, m, s, b, HAS_PROLOGUE, PROLOGUE_ACT)
    mean = tl.sum(acc, axis=0) * inv_hw
    tl.store(out_ptr + n * out_c_total + out_c_offset + offs_c, mean.to(out_ptr.dtype.element_ty), mask=c_mask)


def mean_tile(n: int, hw: int, c: int, device=None) -> cfg.Tile2D:
    """[BLOCK_R pixels, BLOCK_C channels] of `global_mean_kernel` (grid N x C/BLOCK_C).
    Interpreter: the whole map in one tile. GPU: all pixels of a map up to 64 (7x7, 8x8 in
    one load), else 64-pixel chunks; channels narrowed (down to 16, one 32-byte sector in
    16-bit) until N * C/BLOCK_C fills the SMs: ResNet's [1, 7, 7, 2048] gives 128 CTAs."""
    if not cfg.gpu_tiles_active():
        bc = cfg.clamp_pow2(c, 2, 1024)
        return cfg.Tile2D(cfg.clamp_pow2(hw, 1, max(1, 65536 // bc)), bc, 4)
    bp = cfg.clamp_pow2(hw, 1, 64)
    bc = cfg.clamp_pow2(c, 16, 128)
    while bc > 16 and n * -(-c // bc) < sm_count(device):
        bc //= 2
    return cfg.Tile2D(bp, bc, max(1, min(4, (bp * bc) // 512)))


def mean_launch(what, x, out, total, offset, in_scale=None, in_shift=None, prologue_act=0) -> KernelLaunch:
    """The `global_mean_kernel` launch writing mean_HW(prologue(x)) into out[..., offset:offset+C]."""
    n, h, w, c = x.shape
    tile = mean_tile(n, h * w, c, x.device)
    dummy = x
    args = (x, out, in_scale if in_scale is not None else dummy, in_shift if in_shift is not None else dummy,
            h * w, c, 1.0 / (h * w), total, offset)
    constexprs = dict(HAS_PROLOGUE=in_scale is not None, PROLOGUE_ACT=prologue_act,
                      UNROLL4=h * w > 2 * tile.BLOCK_R,  # 3+ tiles: 4 loads in flight per iteration
                      **tile.constexprs())
    return KernelLaunch(what, global_mean_kernel, args, constexprs, (n, triton.cdiv(c, tile.BLOCK_C)),
                        tile.num_warps, 1, kind="reduction",
                        meta={"images": n, "HW": h * w, "C": c, "dtype": DTYPE_NAMES[x.dtype],
                              # x read once, the means written once (the perf model's figures)
                              "bytes": (n * h * w * c + n * c) * x.element_size(), "flops": n * h * w * c})


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
    tile = filled_tile_2d(m, c, x.device)
    grid = (triton.cdiv(m, tile.BLOCK_R), triton.cdiv(c, tile.BLOCK_C))
    args = (x, out, m, h, w, c, oh, ow, sh, sw, pt, pl, total, out_channel_offset)
    KernelLaunch(what, pool2d_kernel, args, {"KH": kh, "KW": kw, "IS_MAX": is_max, **tile.constexprs()}, grid,
                 tile.num_warps, 1, kind="pool").run()
    return out


def max_pool2d(x, ksize, strides, padding, out=None, out_channel_offset=0, name="max_pool2d"):
    """Max pooling, NHWC, explicit padding ((t,b),(l,r)); padded cells are ignored; a NaN in
    a window gives NaN."""
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
    mean_launch(what, x, out, total, out_channel_offset).run()
    return out
