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
    launch 2    GEMM view M = N images, N = Cout, K = C: program (j, i) computes
                acc = pooled[i-tile, :] @ W[:, j-tile] (tl.dot, fp32, a cp.async-pipelined K
                loop), then the epilogue act(acc*scale[j] + shift[j]) and the store into
                out[m, out_c_offset + j] of an [M, out_c_total] buffer.

The GEMM is a weight stream at small batch: ResNet's logits read 4 MB of W for 4 MFLOP. So
its tiles are narrow in N (16 columns at batch 1: 63 programs each streaming a [2048, 16]
strip of W) and deep in K (BLOCK_K 256: 8 k-steps, 4 stages, three 40 KB stages of copies in
flight per program), and K is not split: a K split needs a reduction after all splits
finish, i.e. a third launch or grid-wide atomics (a launch costs about as much as this whole
GEMM at batch 1). Deterministic: every output is one program's fixed-order dot.

Fusing the mean into the GEMM's A loads instead (the previous kernel) made every
output-column tile re-read x and, worse, serialised: a pixel loop that issued a load and
used it at once, one memory latency per pixel and channel chunk (32 x 49 round trips).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import config as cfg
from .common import KernelArgumentError, act_code, check_activation, check_precision, check_prologue, sm_count
from .epilogue import epilogue_args, epilogue_store
from .launch import KernelLaunch, alloc
from .packing import PackedWeight, check_packed
from .pool import mean_launch


@triton.jit
def pooled_gemm_kernel(
    a_ptr, w_ptr, out_ptr, scale_ptr, shift_ptr, M, N, K, w_row_stride, out_c_total, out_c_offset,
    HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr, ACT: tl.constexpr,
    K_ALIGN: tl.constexpr, N_ALIGN: tl.constexpr,
    DOT_PRECISION: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """out[m, offset + n] = act((a @ w)[m, n] * scale[n] + shift[n]) of row-major a [M, K] and
    w [K, N]. Program (pid 0, 1) = (column tile, row tile): consecutive programs stream
    neighbouring column strips of w.

    w's rows are w_row_stride apart, a multiple of 16 (`packing.ROW_ALIGN`; columns >= N are
    zero), and its loads are masked at w_row_stride, not N: so every W row looks 16-byte
    aligned to the compiler and the pipeliner turns the W loads into cp.async copies, also for
    a 1001-class N (rows of 1001 elements gave 2-byte synchronous loads).
    K_ALIGN / N_ALIGN: powers of two (<= 8) the host guarantees divide K / N. Triton only
    learns divisibility by 16 from its arguments, so writing K as (K // K_ALIGN) * K_ALIGN (the
    same value) is what shows the compiler 16-byte aligned rows of `a` (ResNet's K = 2048 needs
    no help; N likewise aligns the epilogue's scale / shift vectors)."""
    K = (K // K_ALIGN) * K_ALIGN
    N = (N // N_ALIGN) * N_ALIGN
    offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    m_mask = offs_m < M
    n_mask = offs_n < N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_mask = offs_k < K
        a = tl.load(a_ptr + offs_m[:, None] * K + offs_k[None, :], mask=m_mask[:, None] & k_mask[None, :],
                    other=0.0)
        w = tl.load(w_ptr + offs_k[:, None] * w_row_stride + offs_n[None, :],
                    mask=k_mask[:, None] & (offs_n < w_row_stride)[None, :], other=0.0)
        acc = tl.dot(a, w, acc, input_precision=DOT_PRECISION)
    epilogue_store(acc, 0.0, offs_m, offs_n, m_mask, n_mask, out_ptr, scale_ptr, shift_ptr, out_c_total, out_c_offset,
                   1.0, HAS_SCALE, HAS_SHIFT, ACT, False, 0)  # no residual


STAGE_BYTES = 40 * 1024  # shared memory of one pipeline stage (A + W tiles): 4 stages = 160 KB


def gemm_plan(dtype: str, m: int, n: int, k: int, device=None) -> cfg.TileConfig:
    """Tile of `pooled_gemm_kernel` for an [m, k] @ [k, n] GEMM.

    Interpreter: one large tile. GPU: 64-row tiles (the smallest wgmma M, so sm_90 uses
    HGMMA; a batch below 64 only masks rows, which cost no memory traffic); the widest
    column tile in 128..16 whose grid still has half an SM's worth of programs (16 at
    batch 1: W is streamed by as many programs as the columns allow), BLOCK_K as deep as a
    40 KB stage allows (up to 256), 4 stages.
    ResNet-50's logits at batch 1 (m=1, n=1000, k=2048, fp16): 64x16x256 tiles, 63 programs,
    8 k-steps each; at batch 256: 64x32x128, 128 programs."""
    if not cfg.gpu_tiles_active():
        return cfg.interpreter_gemm_config(m, n, k)
    elt = 4 if dtype == "float32" else 2
    m_tiles = triton.cdiv(m, 64)
    block_n = 16
    for bn in (128, 64, 32):
        if m_tiles * triton.cdiv(n, bn) * 2 >= sm_count(device):
            block_n = bn
            break
    block_k = 256
    while block_k > 16 and (64 + block_n) * block_k * elt > STAGE_BYTES:
        block_k //= 2
    block_k = max(16, min(block_k, cfg.next_pow2(k)))
    steps = triton.cdiv(k, block_k)
    return cfg.TileConfig(64, block_n, block_k, GROUP_M=1, num_warps=4, num_stages=max(2, min(4, steps)))


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
    is_conv = isinstance(w_packed, PackedWeight) and w_packed.kind == "conv2d"
    pw = check_packed(w_packed, "conv2d" if is_conv else "matmul", what)
    if (pw.kh, pw.kw) != (1, 1):
        raise KernelArgumentError(f"{what}: the mean-GEMM takes a 1x1 conv weight, got a "
                                  f"{pw.kh}x{pw.kw}x{pw.cin}x{pw.cout} kernel")
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
    check_prologue(what, x, in_scale, in_shift, prologue_act)
    lead = (n, 1, 1) if keepdims else (n,)
    out, total, flags = epilogue_args(what, x, pw.cout, lead, scale, shift, act, None, 1.0, "none", out,
                                      out_channel_offset)

    pooled = alloc((n, c), x.dtype, x.device)
    mean = mean_launch(what, x, pooled, c, 0, in_scale, in_shift, act_code(prologue_act, f"{what}: prologue_act"))
    mean.run()

    tile = gemm_plan(dtype, n, pw.cout, c, x.device)
    dummy = x
    args = (pooled, pw.data, out, scale if scale is not None else dummy, shift if shift is not None else dummy,
            n, pw.cout, c, pw.row_stride, total, out_channel_offset)
    constexprs = dict(HAS_SCALE=flags["HAS_SCALE"], HAS_SHIFT=flags["HAS_SHIFT"], ACT=flags["ACT"],
                      K_ALIGN=_align(c), N_ALIGN=_align(pw.cout),
                      DOT_PRECISION=precision if dtype == "float32" else "ieee",
                      BLOCK_M=tile.BLOCK_M, BLOCK_N=tile.BLOCK_N, BLOCK_K=tile.BLOCK_K)
    grid = (triton.cdiv(pw.cout, tile.BLOCK_N), triton.cdiv(n, tile.BLOCK_M))
    # the step's bytes, less what the mean launch reads (x) plus the pooled tensor it reads
    elt = x.element_size()
    gemm_bytes = (n * c + c * pw.cout + n * pw.cout) * elt
    KernelLaunch(what, pooled_gemm_kernel, args, constexprs, grid, tile.num_warps, tile.num_stages, kind="gemm",
                 meta={"M": n, "N": pw.cout, "K": c, "dtype": dtype, "bytes": gemm_bytes}).run()
    return out
