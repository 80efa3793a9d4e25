"""Global spatial mean followed by the GEMM that consumes it (fusion pass 7).

ResNet's `pool5` + `logits` (a 1x1 conv), Inception's / MobileNet's full-image `AvgPool` +
1x1 `Logits`, or a mean followed by `fully_connected`: out = act(mean_HW(prologue(x)) @ W *
scale + shift). The pooled [N, C] tensor is the only intermediate: N*C values in the compute
dtype (4 KiB for ResNet-50 at batch 1), never an NHWC tensor of the plan.

Algorithm (x NHWC [N, H, W, C] viewed as [N, HW, C]; weights packed [C, Cout]):

    launch 1    pooled[n, c] = (sum_p prologue(x[n, p, c])) / HW   fp32 sums rounded to x's
                dtype (the value the unfused mean kernel writes); `pool.global_mean_kernel`:
                one program per (image, channel block), a whole [pixels, channels] tile per
                load, so a 7x7 map is one memory round trip and the grid fills the SMs
                (ResNet-50 at batch 1: 128 programs of 16 channels).
    launch 2    GEMM view M = N images, N = Cout, K = C, split over K into SPLIT_K ranges:
                program (j, i, s) computes acc = sum_{k in range s} pooled[i-tile, k] @ W[k, j-tile]
                (tl.dot, fp32, a cp.async-pipelined K loop). SPLIT_K is chosen so the grid has
                about two programs per SM: W, the big operand (4 MiB for ResNet's logits), is
                read exactly once, by ~260 programs streaming their slices in parallel.
                SPLIT_K == 1: the epilogue runs here and stores the output.
                SPLIT_K > 1: the fp32 partial tile goes to part[s, m, n].
    launch 3    (SPLIT_K > 1) out = epilogue(sum_{s=0..SPLIT_K-1} part[s]): each output sums its
                partials in the same order every run (deterministic: no atomics), then
                act(acc*scale + shift) once, rounded to the output dtype, and stores
                out[m, out_c_offset + j] of an [M, out_c_total] buffer.

Why three launches: the mean must be complete before any GEMM program uses it, and a K split
needs a reduction after every split finished; doing either inside one kernel needs grid-wide
synchronisation (atomics, spin-waits). Fusing the mean into the GEMM's A loads instead (the
previous kernel) makes every output-column tile re-read x and, worse, serialises: a pixel loop
that issues a load and uses it at once, one memory latency per pixel and channel chunk.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import config as cfg
from .common import KernelArgumentError, act_code, check_activation, check_precision, sm_count
from .conv import PackedWeight, _check_packed, _check_prologue, _epilogue_args, prepack_matmul, scale_shift_act
from .launch import KernelLaunch, alloc
from .pool import mean_launch


@triton.jit
def splitk_gemm_kernel(
    a_ptr, w_ptr, out_ptr, part_ptr, scale_ptr, shift_ptr,
    M, N, K, K_PER_SPLIT, out_c_total, out_c_offset,
    HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr, ACT: tl.constexpr, SPLIT_K: tl.constexpr,
    K_ALIGN: tl.constexpr, N_ALIGN: tl.constexpr,
    DOT_PRECISION: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """acc = a[M, K-range s] @ w[K-range s, N] of row-major a [M, K] and w [K, N]; with
    SPLIT_K == 1 the epilogue is applied and out written, else the fp32 partial goes to
    part[s, M, N]. Program (pid 0, 1, 2) = (column tile, row tile, split).

    K_ALIGN / N_ALIGN: powers of two (<= 8) the host guarantees divide K / N. Triton only
    learns divisibility by 16 from its arguments, so ResNet's N = 1000 would make every W
    row look unaligned: 2-byte loads, which the pipeliner cannot turn into cp.async. Writing
    N as (N // 8) * 8 (the same value) shows the compiler 16-byte aligned rows."""
    K = (K // K_ALIGN) * K_ALIGN
    N = (N // N_ALIGN) * N_ALIGN
    offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    split = tl.program_id(2)
    m_mask = offs_m < M
    n_mask = offs_n < N
    k_first = split * K_PER_SPLIT
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K_PER_SPLIT, BLOCK_K):
        offs_k = k_first + k0 + tl.arange(0, BLOCK_K)
        k_mask = offs_k < K
        a = tl.load(a_ptr + offs_m[:, None] * K + offs_k[None, :], mask=m_mask[:, None] & k_mask[None, :],
                    other=0.0)
        w = tl.load(w_ptr + offs_k[:, None] * N + offs_n[None, :], mask=k_mask[:, None] & n_mask[None, :],
                    other=0.0)
        acc = tl.dot(a, w, acc, input_precision=DOT_PRECISION)
    mask = m_mask[:, None] & n_mask[None, :]
    if SPLIT_K == 1:
        acc = scale_shift_act(acc, scale_ptr, shift_ptr, offs_n, n_mask, HAS_SCALE, HAS_SHIFT, ACT)
        tl.store(out_ptr + offs_m[:, None] * out_c_total + out_c_offset + offs_n[None, :],
                 acc.to(out_ptr.dtype.element_ty), mask=mask)
    else:
        tl.store(part_ptr + (split * M + offs_m)[:, None] * N + offs_n[None, :], acc, mask=mask)


@triton.jit
def splitk_reduce_kernel(
    part_ptr, out_ptr, scale_ptr, shift_ptr, M, N, out_c_total, out_c_offset,
    HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr, ACT: tl.constexpr, SPLIT_K: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """out[m, offset + n] = epilogue(sum_s part[s, m, n]), s = 0, 1, ... in order (the SPLIT_K
    loads are unrolled, so they are in flight together)."""
    offs_m = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    offs_n = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    n_mask = offs_n < N
    mask = (offs_m < M)[:, None] & n_mask[None, :]
    acc = tl.zeros((BLOCK_R, BLOCK_C), dtype=tl.float32)
    for s in tl.static_range(SPLIT_K):
        acc += tl.load(part_ptr + (s * M + offs_m)[:, None] * N + offs_n[None, :], mask=mask, other=0.0)
    acc = scale_shift_act(acc, scale_ptr, shift_ptr, offs_n, n_mask, HAS_SCALE, HAS_SHIFT, ACT)
    tl.store(out_ptr + offs_m[:, None] * out_c_total + out_c_offset + offs_n[None, :],
             acc.to(out_ptr.dtype.element_ty), mask=mask)


def gemm_plan(dtype: str, m: int, n: int, k: int, device=None) -> tuple[cfg.TileConfig, int, int]:
    """(tile, SPLIT_K, K_PER_SPLIT) of `splitk_gemm_kernel` for an [m, k] @ [k, n] GEMM.

    Interpreter: one large tile, no split. GPU: 64-row tiles (the smallest wgmma M, so sm_90
    uses HGMMA; a batch below 64 only masks rows, which cost no memory traffic), 64 columns
    (128 from 65 rows up), BLOCK_K one 128-byte row in 16-bit (32 in float32). K is split
    into SPLIT_K ranges of whole k-steps until the grid has about two programs per SM, so
    the weight, the big operand, streams through all SMs at once; the split is capped so the
    fp32 partials (written and read once) are no more bytes than the weight itself. Stages:
    every k-step of a split in flight (up to 4).
    ResNet-50's logits at batch 1 (m=1, n=1000, k=2048, fp16): 16 column tiles x 16 splits of
    2 k-steps = 256 programs, each reading a 128x64 slice (16 KiB) of W; 64 KB of partials.
    With 1001 classes: 16 x 32 programs of one k-step (see below)."""
    if not cfg.gpu_tiles_active():
        return cfg.interpreter_gemm_config(m, n, k), 1, k
    elt = 4 if dtype == "float32" else 2
    block_k = 32 if dtype == "float32" else 64
    block_n = 128 if m > 64 else 64
    tiles = triton.cdiv(m, 64) * triton.cdiv(n, block_n)
    k_steps = triton.cdiv(k, block_k)
    partial_cap = max(1, (k * elt) // (4 * m))
    if _align(n) * elt >= 4:
        split = min(k_steps, triton.cdiv(2 * sm_count(device), tiles), partial_cap)
    else:
        # W rows not 4-byte aligned (fp16 with an odd N, e.g. 1001 classes): its loads are
        # 2-byte LDGs, which cp.async cannot take, so a k-step's loads are synchronous. One
        # k-step per program (more programs) keeps the same bytes in flight.
        split = min(k_steps, partial_cap)
    steps_per_split = triton.cdiv(k_steps, max(split, 1))
    split = triton.cdiv(k_steps, steps_per_split)  # no empty split
    tile = cfg.TileConfig(64, block_n, block_k, GROUP_M=1, num_warps=4,
                          num_stages=max(2, min(4, steps_per_split + 1)))
    return tile, split, steps_per_split * block_k


def _align(n: int) -> int:
    """The largest power of two <= 8 dividing n (16 is what Triton detects by itself)."""
    return next(a for a in (8, 4, 2, 1) if n % a == 0)


def mean_matmul(x, w_packed, *, scale=None, shift=None, act="none", in_scale=None, in_shift=None,
                prologue_act="none", keepdims=False, out=None, out_channel_offset=0, precision="ieee",
                name="mean_matmul") -> torch.Tensor:
    """mean over H, W of prologue(x[N,H,W,C]), times w[C, Cout], with the conv epilogue:
    act(mean(x) @ w * scale + shift) -> [N, Cout] ([N, 1, 1, Cout] with `keepdims`), written into
    `out[..., offset:offset+Cout]` when `out` is given. `w_packed`: a `prepack_matmul` [C, Cout]
    or `prepack_conv2d` 1x1 weight (or a raw [C, Cout] array). The mean is computed in fp32
    and rounded to x's dtype before the GEMM, as the unfused mean kernel would write it."""
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

    pooled = alloc((n, c), x.dtype, x.device)
    mean_launch(what, x, pooled, c, 0, in_scale, in_shift, act_code(prologue_act, f"{what}: prologue_act")).run()

    tile, split, k_per_split = gemm_plan(dtype, n, pw.cout, c, x.device)
    part = alloc((split, n, pw.cout), torch.float32, x.device) if split > 1 else out
    dummy = x
    scale_arg = scale if scale is not None else dummy
    shift_arg = shift if shift is not None else dummy
    epilogue = dict(HAS_SCALE=flags["HAS_SCALE"], HAS_SHIFT=flags["HAS_SHIFT"], ACT=flags["ACT"], SPLIT_K=split)
    args = (pooled, pw.data, out, part, scale_arg, shift_arg, n, pw.cout, c, k_per_split, total, out_channel_offset)
    constexprs = dict(**epilogue, K_ALIGN=_align(c), N_ALIGN=_align(pw.cout), DOT_PRECISION=precision if dtype == "float32" else "ieee",
                      BLOCK_M=tile.BLOCK_M, BLOCK_N=tile.BLOCK_N, BLOCK_K=tile.BLOCK_K)
    grid = (triton.cdiv(pw.cout, tile.BLOCK_N), triton.cdiv(n, tile.BLOCK_M), split)
    KernelLaunch(what, splitk_gemm_kernel, args, constexprs, grid, tile.num_warps, tile.num_stages, kind="gemm",
                 meta={"M": n, "N": pw.cout, "K": c, "split_k": split, "dtype": dtype}).run()
    if split > 1:
        red = cfg.tile_2d(n, pw.cout, gpu_elems=1024, max_cols=128)
        grid = (triton.cdiv(n, red.BLOCK_R), triton.cdiv(pw.cout, red.BLOCK_C))
        KernelLaunch(what, splitk_reduce_kernel,
                     (part, out, scale_arg, shift_arg, n, pw.cout, total, out_channel_offset),
                     dict(**epilogue, **red.constexprs()), grid, red.num_warps, 1, kind="reduction",
                     meta={"M": n, "N": pw.cout, "split_k": split, "dtype": dtype}).run()
    return out
