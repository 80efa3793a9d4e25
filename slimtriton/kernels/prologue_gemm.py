"""1x1 conv GEMM whose A operand is a window reduction of its input: an average pool or a
depthwise conv (+ per-channel affine + activation) computed in the A load (FUSED_WINDOW_CONV2D).

Algorithm (NHWC; the 1x1 weight packed to [Cin, Cout] as conv2d's, the depthwise weight
w_dw[kh, kw, Cin, 1] packed to [KH*KW, Cin] as depthwise_conv2d's):

    GEMM view   M = N*OH*OW pixels of the *window's* output grid, N = Cout, K = Cin
    A[m, k]     window over x[n, oh*sh - pt + kh*dh, ow*sw - pl + kw*dw, k], taps inside the image:
                  avg_pool   sum(x) / (number of taps inside the image)   (TF: padded cells ignored)
                  depthwise  win_act(sum(x * w_dw[kh*KW + kw, k]) * win_scale[k] + win_shift[k])
                computed in fp32 per BLOCK_K chunk of channels (KH x KW taps unrolled) and rounded
                to the compute dtype -- exactly what the unfused pool / depthwise kernel stores
    acc         = sum_k A[m, k] * Wp[k, j]       (tl.dot, fp32 accumulator)
    epilogue    y = act(acc*scale[j] + shift[j]) -> out[m, out_c_offset + j] of [M, out_c_total]

One flat K loop over Cin in BLOCK_K chunks; the B (weight) tile is loaded in the loop so the
software pipeliner feeds it by async copy, the A tile is computed in registers. Every program
of an output-channel tile recomputes the window for its rows: the fusion pass bounds that
recompute (fusion/window_prologue.py), and on a GPU the tile is as wide in N as the problem
allows (up to WINDOW_GPU_BLOCK_N) so few N tiles repeat it.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import config as cfg
from .common import (KernelArgumentError, act_code, check_channel_vector, check_precision, conv_output_geometry,
                     dtype_name, grouped_tile, in_image, pixel_of_row, tap_coords)
from .epilogue import epilogue_args, epilogue_store, scale_shift_act
from .launch import KernelLaunch
from .packing import check_packed, check_weight_input

WINDOWS = {"avg_pool": 1, "depthwise": 2}
# The GPU tile's widest N: the fusion pass's recompute bound counts N tiles of this width.
WINDOW_GPU_BLOCK_N = 256


@triton.jit
def window_gemm_kernel(
    x_ptr, w_ptr, out_ptr, scale_ptr, shift_ptr, win_w_ptr, win_scale_ptr, win_shift_ptr,
    M, H, W, C_in, OH, OW, C_out, w_row_stride,
    stride_h, stride_w, pad_t, pad_l, dil_h, dil_w,
    out_c_total, out_c_offset,
    WINDOW: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
    HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr, ACT: tl.constexpr,
    HAS_WIN_SCALE: tl.constexpr, HAS_WIN_SHIFT: tl.constexpr, WIN_ACT: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    # -- grouped program ordering (L2 reuse), as conv_gemm_kernel --------------------------
    pid_m, pid_n = grouped_tile(tl.program_id(0), M, C_out, BLOCK_M, BLOCK_N, GROUP_M)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    m_mask = offs_m < M
    n_mask = offs_n < C_out
    n, oh, ow = pixel_of_row(offs_m, OH, OW)
    if WINDOW == 1:  # average pool: divide by the taps inside the image (>= 1 for a valid row)
        count = tl.zeros((BLOCK_M,), dtype=tl.float32)
        for kh in tl.static_range(KH):
            for kw in tl.static_range(KW):
                ih, iw = tap_coords(oh, ow, kh, kw, stride_h, stride_w, pad_t, pad_l, dil_h, dil_w)
                count += in_image(ih, iw, H, W).to(tl.float32)
        inv_count = 1.0 / tl.maximum(count, 1.0)

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for c0 in range(0, C_in, BLOCK_K):
        ck = c0 + offs_k
        k_mask = ck < C_in
        win = tl.zeros((BLOCK_M, BLOCK_K), dtype=tl.float32)
        for kh in tl.static_range(KH):
            for kw in tl.static_range(KW):
                ih, iw = tap_coords(oh, ow, kh, kw, stride_h, stride_w, pad_t, pad_l, dil_h, dil_w)
                valid = in_image(ih, iw, H, W) & m_mask
                row = ((n * H + ih) * W + iw) * C_in
                xv = tl.load(x_ptr + row[:, None] + ck[None, :], mask=valid[:, None] & k_mask[None, :],
                             other=0.0).to(tl.float32)
                if WINDOW == 2:
                    wv = tl.load(win_w_ptr + (kh * KW + kw) * C_in + ck, mask=k_mask, other=0.0).to(tl.float32)
                    xv = xv * wv[None, :]
                win += xv
        if WINDOW == 1:
            win = win * inv_count[:, None]
        else:
            win = scale_shift_act(win, win_scale_ptr, win_shift_ptr, ck, k_mask, HAS_WIN_SCALE, HAS_WIN_SHIFT,
                                  WIN_ACT)
            win = tl.where(k_mask[None, :], win, 0.0)  # channels past Cin stay zero
        a = win.to(x_ptr.dtype.element_ty)
        # packed rows are w_row_stride >= C_out apart, zero past C_out (packing.aligned_rows)
        b = tl.load(w_ptr + ck[:, None] * w_row_stride + offs_n[None, :],
                    mask=k_mask[:, None] & (offs_n < w_row_stride)[None, :], other=0.0)
        acc = tl.dot(a, b, acc, input_precision=DOT_PRECISION)

    # -- epilogue on the fp32 accumulator, before the downcast ---------------------------
    epilogue_store(acc, 0.0, offs_m, offs_n, m_mask, n_mask, out_ptr, scale_ptr, shift_ptr, out_c_total, out_c_offset,
                   1.0, HAS_SCALE, HAS_SHIFT, ACT, False, 0)  # no residual


def _tile(dtype: str, m: int, cout: int, cin: int, device) -> cfg.TileConfig:
    """Interpreter: one large tile. GPU: a fixed tile as wide in N as the problem (up to
    WINDOW_GPU_BLOCK_N, so the window is recomputed by few N tiles), not autotuned. The software
    pipeliner stages every tap's x load in shared memory (KH*KW x stages x BLOCK_M x BLOCK_K), so
    the tile is short in M and K and double-buffered: 64 x 32 (16 in fp32) x 2 stages keeps a 3x3
    window near 105 KiB of shared memory, and the fp32 window block in registers without spills."""
    if not cfg.gpu_tiles_active(device):
        return cfg.interpreter_gemm_config(m, cout, cin)
    bn = cfg.clamp_pow2(cout, 32, WINDOW_GPU_BLOCK_N)
    bk = min(16 if dtype == "float32" else 32, cfg.clamp_pow2(cin, 16, 32))
    return cfg.TileConfig(64, bn, bk, GROUP_M=8, num_warps=8 if bn >= 128 else 4, num_stages=2)


def window_conv2d(x, w_packed, *, window, ksize, strides=(1, 1), padding=((0, 0), (0, 0)), dilations=(1, 1),
                  win_w=None, win_scale=None, win_shift=None, win_act="none",
                  scale=None, shift=None, act="none", out=None, out_channel_offset=0, precision="ieee",
                  name="window_conv2d") -> torch.Tensor:
    """A 1x1 conv (weight [1,1,Cin,Cout]) of `window`(x): x[N,H,W,Cin] -> [N,OH,OW,Cout], with
    (OH, OW) the window's output grid (ksize, strides, padding, dilations as a pool / depthwise
    conv). `window='avg_pool'` averages the taps inside the image; `window='depthwise'` needs
    `win_w` (w_dw[kh,kw,Cin,1], packed or not) and applies win_act(acc*win_scale + win_shift)."""
    what = name
    if window not in WINDOWS:
        raise KernelArgumentError(f"{what}: window {window!r} not in {sorted(WINDOWS)}")
    pw = check_packed(w_packed, "conv2d", what)
    if (pw.kh, pw.kw) != (1, 1):
        raise KernelArgumentError(f"{what}: the GEMM weight must be 1x1, got {pw.kh}x{pw.kw}x{pw.cin}x{pw.cout}")
    check_weight_input(what, x, pw)
    check_precision(precision, what)
    kh, kw = (int(k) for k in ksize)
    (sh, sw), (dh, dw), (pt, pl), (oh, ow) = conv_output_geometry(what, x, kh, kw, strides, padding, dilations)
    n, h, w, cin = x.shape
    dummy = x
    if window == "depthwise":
        if win_w is None:
            raise KernelArgumentError(f"{what}: window='depthwise' needs win_w")
        dwp = check_packed(win_w, "depthwise", f"{what}: win_w")
        if (dwp.kh, dwp.kw, dwp.cin, dwp.cout) != (kh, kw, cin, cin):
            raise KernelArgumentError(f"{what}: win_w is {dwp.kh}x{dwp.kw}x{dwp.cin} (x{dwp.cout // dwp.cin}), "
                                      f"expected {kh}x{kw}x{cin} with depth multiplier 1 for x {tuple(x.shape)}")
        if dwp.dtype != x.dtype or dwp.device != x.device:
            raise KernelArgumentError(f"{what}: win_w is {dwp.dtype} on {dwp.device}, x is {x.dtype} on {x.device}")
        win_data = dwp.data
    else:
        if win_w is not None or win_scale is not None or win_shift is not None or win_act != "none":
            raise KernelArgumentError(f"{what}: window='avg_pool' takes no win_w / win_scale / win_shift / win_act")
        win_data = dummy
    check_channel_vector(win_scale, f"{what}: win_scale", cin, x.device)
    check_channel_vector(win_shift, f"{what}: win_shift", cin, x.device)
    out, total, flags = epilogue_args(what, x, pw.cout, (n, oh, ow), scale, shift, act, None, 1.0, "none",
                                      out, out_channel_offset)
    dtype = dtype_name(x, f"{what}: x")
    m = n * oh * ow
    tile = _tile(dtype, m, pw.cout, cin, x.device)
    args = (x, pw.data, out, scale if scale is not None else dummy, shift if shift is not None else dummy,
            win_data, win_scale if win_scale is not None else dummy, win_shift if win_shift is not None else dummy,
            m, h, w, cin, oh, ow, pw.cout, pw.row_stride, sh, sw, pt, pl, dh, dw, total, out_channel_offset)
    constexprs = dict(WINDOW=WINDOWS[window], KH=kh, KW=kw, HAS_SCALE=flags["HAS_SCALE"],
                      HAS_SHIFT=flags["HAS_SHIFT"], ACT=flags["ACT"], HAS_WIN_SCALE=win_scale is not None,
                      HAS_WIN_SHIFT=win_shift is not None, WIN_ACT=act_code(win_act, f"{what}: win_act"),
                      DOT_PRECISION=precision if dtype == "float32" else "ieee", **tile.constexprs())
    grid = (triton.cdiv(m, tile.BLOCK_M) * triton.cdiv(pw.cout, tile.BLOCK_N),)
    KernelLaunch(what, window_gemm_kernel, args, constexprs, grid, tile.num_warps, tile.num_stages, kind="gemm",
                 meta={"M": m, "N": pw.cout, "K": cin, "dtype": dtype}).run()
    return out
