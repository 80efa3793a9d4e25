"""Global spatial mean fused into the GEMM that consumes it (fusion pass 7).

ResNet's `pool5` + `logits` (a 1x1 conv), Inception's / MobileNet's full-image `AvgPool` +
1x1 `Logits`, or a mean followed by `fully_connected`: the pooled [N, C] tensor is only the
A operand of a GEMM, so it is never written; each program computes it while loading A.

Algorithm (x NHWC [N, H, W, C] viewed as [N, HW, C]; weights packed [C, Cout]):

    GEMM view   M = N images, N = Cout, K = C
    A[m, k]     = (sum_p prologue(x[m, p, k])) / HW     fp32 sums over the HW pixels of a
                  BLOCK_K channel chunk (contiguous loads), then rounded to x's dtype -- the
                  value the unfused mean kernel would have written
    acc         = sum_k A[m, k] * Wp[k, j]              (tl.dot, fp32 accumulator)
    epilogue    y = act(acc*scale[j] + shift[j])        (as conv2d, no residual)
    store       out[m, out_c_offset + j] of an [M, out_c_total] buffer

The optional prologue (`in_scale`, `in_shift`, `prologue_act`) is applied to every pixel
before the sum: ResNet v2's `postnorm` BN+ReLU feeding `pool5`. Each output-channel tile
re-reads x (from L2: x is N*HW*C, a few MB); DRAM sees it once.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import config as cfg
from .common import KernelArgumentError, act_code, apply_act, check_activation, check_precision
from .conv import PackedWeight, _check_packed, _check_prologue, _epilogue_args, prepack_matmul, scale_shift_act
from .launch import KernelLaunch


@triton.jit
def mean_gemm_kernel(
    x_ptr, w_ptr, out_ptr, scale_ptr, shift_ptr, in_scale_ptr, in_shift_ptr,
    M, HW, C_in, C_out, inv_hw, out_c_total, out_c_offset,
    HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr, ACT: tl.constexpr,
    HAS_PROLOGUE: tl.constexpr, PROLOGUE_ACT: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    m_mask = offs_m < M
    n_mask = offs_n < C_out
    row = offs_m * (HW * C_in)

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for c0 in range(0, C_in, BLOCK_K):
        ck = c0 + offs_k
        k_mask = ck < C_in
        a_mask = m_mask[:, None] & k_mask[None, :]
        if HAS_PROLOGUE:
            s = tl.load(in_scale_ptr + ck, mask=k_mask, other=0.0).to(tl.float32)[None, :]
            b = tl.load(in_shift_ptr + ck, mask=k_mask, other=0.0).to(tl.float32)[None, :]
        sums = tl.zeros((BLOCK_M, BLOCK_K), dtype=tl.float32)
        for p in range(0, HW):
            v = tl.load(x_ptr + row[:, None] + p * C_in + ck[None, :], mask=a_mask, other=0.0).to(tl.float32)
            if HAS_PROLOGUE:
                v = tl.where(a_mask, apply_act(v * s + b, PROLOGUE_ACT), 0.0)
            sums += v
        a = (sums * inv_hw).to(x_ptr.dtype.element_ty)
        w = tl.load(w_ptr + ck[:, None] * C_out + offs_n[None, :], mask=k_mask[:, None] & n_mask[None, :],
                    other=0.0)
        acc = tl.dot(a, w, acc, input_precision=DOT_PRECISION)

    acc = scale_shift_act(acc, scale_ptr, shift_ptr, offs_n, n_mask, HAS_SCALE, HAS_SHIFT, ACT)
    out_offs = offs_m[:, None] * out_c_total + out_c_offset + offs_n[None, :]
    tl.store(out_ptr + out_offs, acc.to(out_ptr.dtype.element_ty), mask=m_mask[:, None] & n_mask[None, :])


def _tile(dtype: str, m: int, n: int, k: int) -> cfg.TileConfig:
    """Interpreter: one large tile. GPU: 64-row tiles (the smallest wgmma M, so sm_90 uses
    HGMMA; a batch below 64 only masks rows), BLOCK_K one 128-byte row in 16-bit."""
    if not cfg.gpu_tiles_active():
        return cfg.interpreter_gemm_config(m, n, k)
    block_k = 32 if dtype == "float32" else 64
    return cfg.TileConfig(64, cfg.clamp_pow2(n, 32, 128), block_k, GROUP_M=1, num_warps=4, num_stages=2)


def mean_matmul(x, w_packed, *, scale=None, shift=None, act="none", in_scale=None, in_shift=None,
                prologue_act="none", keepdims=False, out=None, out_channel_offset=0, precision="ieee",
                name="mean_matmul") -> torch.Tensor:
    """mean over H, W of prologue(x[N,H,W,C]), times w[C, Cout], with the conv epilogue:
    act(mean(x) @ w * scale + shift) -> [N, Cout] ([N, 1, 1, Cout] with `keepdims`), written into
    `out[..., offset:offset+Cout]` when `out` is given. `w_packed`: a `prepack_matmul` [C, Cout]
    or `prepack_conv2d` 1x1 weight (or a raw [C, Cout] array)."""
    what = name
    if isinstance(w_packed, PackedWeight) and w_packed.kind == "conv2d":
        if (w_packed.kh, w_packed.kw) != (1, 1):
            raise KernelArgumentError(f"{what}: the mean-GEMM takes a 1x1 conv weight, got a "
                                      f"{w_packed.kh}x{w_packed.kw}x{w_packed.cin}x{w_packed.cout} kernel")
        pw = w_packed
    else:
        pw = _check_packed(w_packed, "matmul", what, prepack_matmul)
    dtype = check_activation(x, what, ndim=4)
    if pw.data.dtype != x.dtype or pw.data.device != x.device:
        raise KernelArgumentError(f"{what}: weight {pw.data.dtype} on {pw.data.device} does not match "
                                  f"x {x.dtype} on {x.device}")
    n, h, w, c = x.shape
    if c != pw.cin:
        raise KernelArgumentError(f"{what}: x has {c} channels (shape {tuple(x.shape)}) but the weight is "
                                  f"[{pw.cin}, {pw.cout}]")
    if h * w < 1:
        raise KernelArgumentError(f"{what}: x of shape {tuple(x.shape)} has no pixel to average")
    check_precision(precision, what)
    _check_prologue(what, x, in_scale, in_shift, prologue_act)
    lead = (n, 1, 1) if keepdims else (n,)
    out, total, flags = _epilogue_args(what, x, pw.cout, lead, scale, shift, act, None, 1.0, "none", out,
                                       out_channel_offset)
    tile = _tile(dtype, n, pw.cout, c)
    dummy = x
    args = (x, pw.data, out, scale if scale is not None else dummy, shift if shift is not None else dummy,
            in_scale if in_scale is not None else dummy, in_shift if in_shift is not None else dummy,
            n, h * w, c, pw.cout, 1.0 / (h * w), total, out_channel_offset)
    constexprs = dict(HAS_SCALE=flags["HAS_SCALE"], HAS_SHIFT=flags["HAS_SHIFT"], ACT=flags["ACT"],
                      HAS_PROLOGUE=in_scale is not None,
                      PROLOGUE_ACT=act_code(prologue_act, f"{what}: prologue_act"),
                      DOT_PRECISION=precision if dtype == "float32" else "ieee",
                      BLOCK_M=tile.BLOCK_M, BLOCK_N=tile.BLOCK_N, BLOCK_K=tile.BLOCK_K)
    grid = (triton.cdiv(n, tile.BLOCK_M), triton.cdiv(pw.cout, tile.BLOCK_N))
    KernelLaunch(what, mean_gemm_kernel, args, constexprs, grid, tile.num_warps, tile.num_stages, kind="gemm",
                 meta={"M": n, "N": pw.cout, "K": c, "HW": h * w, "dtype": dtype}).run()
    return out
