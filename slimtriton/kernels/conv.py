"""Implicit-GEMM convolution, conv2d_transpose and fully-connected GEMM: one kernel.

Algorithm (NHWC activations, weights pre-packed to a row-major [K, Cout] matrix, rows w_row_stride
>= Cout apart: `packing.ROW_ALIGN`):

    GEMM view   M = N*OH*OW output pixels, N = Cout, K = KH*KW*Cin
    row m       -> (n, oh, ow);   column j -> output channel
    k           -> (kh, kw, ci)   (the packed weight row r*Cin + ci, r = kh*KW + kw)
    A[m, k]     = prologue(x[n, ih, iw, ci]) when (ih, iw) is inside the image, else 0
                  conv:      ih = oh*sh - pad_top + kh*dh            (iw likewise)
                  transpose: ih = (oh + pad_top - kh) / sh, only when exactly divisible
                             (out[o] += x[i] w[k] with o = i*s + k - pad_before)
    acc         = sum_k A[m, k] * Wp[k, j]       (tl.dot, fp32 accumulator)
    epilogue    y = act(acc*scale[j] + shift[j]);  y = act2(res[m, j] + rs*y) if residual
                (a strided residual, ResNet's `subsample(x, s)` shortcut, is read in place as
                res[n, oh*s_h, ow*s_w, j] of the unsubsampled [N, RH, RW, Cout] tensor)
    store       out[m, out_c_offset + j]  in a [M, out_c_total] NHWC buffer (concat in place)
                routed (NUM_OUT > 1, `conv2d_routed`: sibling convs merged into one GEMM): column
                range d of the output goes to its own buffer / concat slice (epilogue.py)

One flat K loop for every shape: k-step ks of KH*KW*cdiv(Cin, BLOCK_K) covers tap
ks // cdiv(Cin, BLOCK_K) and a BLOCK_K chunk of its Cin (contiguous, vectorised loads, one
row mask per tap), so the cp.async ring that feeds the tensor cores (LDGSTS -> HGMMA on
sm_90) stays full across taps; it is never refilled per tap. The loop body has three
constexpr shapes: IS_1X1 (no padding, 1x1 kernel: a plain GEMM whose rows are strided
pixels, used for matmul too), taps (the above; conv and conv transpose), and FLAT_K (small
Cin such as a 3-channel first conv: k = (kh*KW + kw)*Cin + ci runs over all taps at once so
tiles are not mostly padding; the address and bounds separate into a per-row part and a
per-k part, decoded on the k vector only). `tl.range(..., flatten=True)` is not used: on
Triton 3.6 it makes the A loads synchronous.

Grid (host side, `config.gemm_plans`): axis 0 is the output tiles, in GROUP_M-row groups
so consecutive programs share weight columns and input rows in L2; axis 1 splits the
k-steps (SPLIT, chosen when the tiles would not fill one wave of the GPU's SMs): each
split writes an fp32 partial tile, and `epilogue.splitk_reduce_kernel` adds the splits in a
fixed order and applies the epilogue once (deterministic). Without a split the residual
tile is loaded before the K loop (its latency hides behind the loop). Masks only cut edges.

The prologue (ResNet v2 pre-activation BN+ReLU) is applied to loaded input values in fp32
and masked back to zero afterwards, so padding is applied *after* the prologue.
"""
from __future__ import annotations

import numpy as np
import torch
import triton
import triton.language as tl

from . import config as cfg
from .common import (INT32_LIMIT, KernelArgumentError, act_code, apply_act, check_channel_vector, check_precision,
                     check_prologue, check_tensor, conv_output_geometry, dtype_name, grouped_tile, in_image,
                     output_buffer, pair, pixel_of_row, tap_coords)
from .epilogue import epilogue_args, epilogue_store_routed, residual_offsets, splitk_reduce_kernel
from .launch import KernelLaunch
from .packing import PackedWeight, check_packed, check_weight_input


OUT_OF_IMAGE: tl.constexpr = tl.constexpr(-(1 << 24))  # a row offset no image reaches (|H|, |W| < 2**23)


@triton.jit
def _load_a(x_ptr, offs, mask, ci, C_in, in_scale_ptr, in_shift_ptr,
            HAS_PROLOGUE: tl.constexpr, PROLOGUE_ACT: tl.constexpr):
    a = tl.load(x_ptr + offs, mask=mask, other=0.0)
    if HAS_PROLOGUE:
        s = tl.load(in_scale_ptr + ci, mask=ci < C_in, other=0.0).to(tl.float32)
        b = tl.load(in_shift_ptr + ci, mask=ci < C_in, other=0.0).to(tl.float32)
        y = apply_act(a.to(tl.float32) * s[None, :] + b[None, :], PROLOGUE_ACT)
        a = tl.where(mask, y, 0.0).to(x_ptr.dtype.element_ty)  # padding stays zero
    return a


@triton.jit
def conv_gemm_kernel(
    x_ptr, w_ptr, out_ptr, scale_ptr, shift_ptr, res_ptr, in_scale_ptr, in_shift_ptr, partial_ptr,
    M, H, W, C_in, OH, OW, C_out,
    KH, KW, stride_h, stride_w, pad_t, pad_l, dil_h, dil_w,
    out_c_total, out_c_offset, residual_scale, RES_H, RES_W, res_stride_h, res_stride_w,
    K_PER_SPLIT, w_row_stride,
    out1_ptr, out2_ptr, out3_ptr, out1_c_total, out2_c_total, out3_c_total,
    out1_c_offset, out2_c_offset, out3_c_offset, col1, col2, col3,
    IS_1X1: tl.constexpr, FLAT_K: tl.constexpr, TRANSPOSED: tl.constexpr,
    HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr, ACT: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr, ACT2: tl.constexpr, RES_STRIDED: tl.constexpr,
    HAS_PROLOGUE: tl.constexpr, PROLOGUE_ACT: tl.constexpr, DOT_PRECISION: tl.constexpr,
    SPLIT: tl.constexpr, RES_PREFETCH: tl.constexpr, NUM_OUT: tl.constexpr,
    OUT_ACT0: tl.constexpr, OUT_ACT1: tl.constexpr, OUT_ACT2: tl.constexpr, OUT_ACT3: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    # -- grouped program ordering (L2 reuse); axis 1 is the K split -----------------------
    pid_m, pid_n = grouped_tile(tl.program_id(0), M, C_out, BLOCK_M, BLOCK_N, GROUP_M)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    m_mask = offs_m < M
    n_mask = offs_n < C_out
    n, oh, ow = pixel_of_row(offs_m, OH, OW)

    # -- this program's range of k-steps ------------------------------------------------
    if FLAT_K:
        k_steps = tl.cdiv(KH * KW * C_in, BLOCK_K)
    else:
        c_chunks = tl.cdiv(C_in, BLOCK_K)
        k_steps = KH * KW * c_chunks
    if SPLIT:
        # grid axis 1: K_PER_SPLIT // BLOCK_K k-steps each. The split is passed in k elements,
        # not k-steps: a split of one k-step would be the int 1, which the JIT turns into a
        # constexpr, compiling a loop-free kernel unlike the one every other split size runs.
        steps_per_split = K_PER_SPLIT // BLOCK_K
        k_lo = tl.program_id(1) * steps_per_split
        k_hi = tl.minimum(k_lo + steps_per_split, k_steps)
    else:
        k_lo = 0
        k_hi = k_steps

    # Residual prefetch: its load is issued before the K loop, so its latency hides behind
    # the loop instead of following it (one memory round trip less per tile).
    res = 0.0
    if HAS_RESIDUAL and RES_PREFETCH and not SPLIT:
        res = tl.load(res_ptr + residual_offsets(offs_m, offs_n, OH, OW, C_out, RES_H, RES_W, res_stride_h,
                                                 res_stride_w, RES_STRIDED),
                      mask=m_mask[:, None] & n_mask[None, :], other=0.0)

    # Per-row input coordinates of tap (0, 0); a tap moves them by (kh*dil_h, kw*dil_w).
    if TRANSPOSED:
        th0 = oh + pad_t
        tw0 = ow + pad_l
    else:
        ih0, iw0 = tap_coords(oh, ow, 0, 0, stride_h, stride_w, pad_t, pad_l, dil_h, dil_w)
        row0 = ((n * H + ih0) * W + iw0) * C_in
        if FLAT_K:
            ih0_rows = tl.where(m_mask, ih0, OUT_OF_IMAGE)
            H_u = tl.cast(H, tl.uint32)
            W_u = tl.cast(W, tl.uint32)

    # -- the K loop: one flat, software-pipelined loop over (tap, Cin chunk) --------------
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for ks in range(k_lo, k_hi):
        if IS_1X1:
            # plain GEMM; row m reads pixel (n, oh*sh, ow*sw) (strided rows for stride 2)
            ck = ks * BLOCK_K + offs_k
            k_mask = ck < C_in
            a = _load_a(x_ptr, row0[:, None] + ck[None, :], m_mask[:, None] & k_mask[None, :],
                        ck, C_in, in_scale_ptr, in_shift_ptr, HAS_PROLOGUE, PROLOGUE_ACT)
            w_rows = ck
        elif FLAT_K:
            # small Cin: k -> (kh, kw, ci) decoded on the k vector only; the address and the
            # bounds are separable, row0[m] + delta[k] and ih0[m] + dh[k], iw0[m] + dw[k].
            # Rows >= M and k >= K are pushed out of the image, so one unsigned compare per
            # dimension is the whole mask of an element.
            kk = ks * BLOCK_K + offs_k
            k_mask = kk < KH * KW * C_in
            ci = kk % C_in
            r = kk // C_in
            dh = tl.where(k_mask, (r // KW) * dil_h, OUT_OF_IMAGE)
            dw = (r % KW) * dil_w
            ih = (ih0_rows[:, None] + dh[None, :]).to(tl.uint32, bitcast=True)
            iw = (iw0[:, None] + dw[None, :]).to(tl.uint32, bitcast=True)
            delta = (dh * W + dw) * C_in + ci
            a = _load_a(x_ptr, row0[:, None] + delta[None, :], (ih < H_u) & (iw < W_u),
                        ci, C_in, in_scale_ptr, in_shift_ptr, HAS_PROLOGUE, PROLOGUE_ACT)
            w_rows = kk
        else:
            # tap = ks // c_chunks, then a BLOCK_K chunk of that tap's Cin: contiguous rows
            tap = ks // c_chunks
            c0 = (ks - tap * c_chunks) * BLOCK_K
            kh = tap // KW
            kw = tap - kh * KW
            ck = c0 + offs_k
            k_mask = ck < C_in
            if TRANSPOSED:
                th = th0 - kh
                tw = tw0 - kw
                ih = th // stride_h
                iw = tw // stride_w
                valid = (th >= 0) & (tw >= 0) & (th % stride_h == 0) & (tw % stride_w == 0)
                valid = valid & (ih < H) & (iw < W)
                row = ((n * H + ih) * W + iw) * C_in
            else:
                ih, iw = tap_coords(oh, ow, kh, kw, stride_h, stride_w, pad_t, pad_l, dil_h, dil_w)
                valid = in_image(ih, iw, H, W)
                row = row0 + (kh * dil_h * W + kw * dil_w) * C_in
            a = _load_a(x_ptr, row[:, None] + ck[None, :], (valid & m_mask)[:, None] & k_mask[None, :],
                        ck, C_in, in_scale_ptr, in_shift_ptr, HAS_PROLOGUE, PROLOGUE_ACT)
            w_rows = tap * C_in + ck
        # packed rows are w_row_stride >= C_out apart, zero past C_out (packing.aligned_rows)
        b = tl.load(w_ptr + w_rows[:, None] * w_row_stride + offs_n[None, :],
                    mask=k_mask[:, None] & (offs_n < w_row_stride)[None, :], other=0.0)
        acc = tl.dot(a, b, acc, input_precision=DOT_PRECISION)

    if SPLIT:
        # fp32 partial sum of this split; splitk_reduce_kernel adds the splits in a fixed
        # order and applies the epilogue once
        p_offs = tl.program_id(1) * M * C_out + offs_m[:, None] * C_out + offs_n[None, :]
        tl.store(partial_ptr + p_offs, acc, mask=m_mask[:, None] & n_mask[None, :])
    else:
        # -- epilogue on the fp32 accumulator, before the downcast -----------------------
        if HAS_RESIDUAL and not RES_PREFETCH:
            res = tl.load(res_ptr + residual_offsets(offs_m, offs_n, OH, OW, C_out, RES_H, RES_W, res_stride_h,
                                                     res_stride_w, RES_STRIDED),
                          mask=m_mask[:, None] & n_mask[None, :], other=0.0)
        epilogue_store_routed(acc, res, offs_m, offs_n, m_mask, n_mask, out_ptr, scale_ptr, shift_ptr, out_c_total,
                              out_c_offset, residual_scale, out1_ptr, out2_ptr, out3_ptr, out1_c_total,
                              out2_c_total, out3_c_total, out1_c_offset, out2_c_offset, out3_c_offset,
                              col1, col2, col3, C_out, HAS_SCALE, HAS_SHIFT, ACT, HAS_RESIDUAL, ACT2, NUM_OUT,
                              OUT_ACT0, OUT_ACT1, OUT_ACT2, OUT_ACT3)


# ---------------------------------------------------------------------------------------
# Host side.

def _gemm_plan(dtype: str, m: int, n: int, k_steps_of, spec_key: str, device, bench_factory,
              lean_epilogue: bool, min_ctas_per_sm: int, flat_k: bool) -> cfg.GemmPlan:
    """Interpreter: one large tile, no split. GPU: the cached / autotuned winner among the
    candidates, else the default (`config.gemm_plans`: best wave x tile fill for this M, N,
    K and SM count, split-K where one wave would not be filled)."""
    if not cfg.gpu_tiles_active(device):
        tile = cfg.interpreter_gemm_config(m, n, k_steps_of(None))
        return cfg.GemmPlan(tile, 1, triton.cdiv(m, tile.BLOCK_M) * triton.cdiv(n, tile.BLOCK_N), 1.0)
    sms = cfg.sm_count(device)
    plans = {p.tile: p for p in cfg.gemm_plans(dtype, m, n, k_steps_of, sms, lean_epilogue, min_ctas_per_sm, flat_k)}
    key = cfg.autotune_key("conv_gemm", spec_key, (m, n, k_steps_of(None)), device)
    bench = None if bench_factory is None else (lambda tile: bench_factory(plans[tile]))
    return plans[cfg.select_config(key, tuple(plans), bench)]


def _conv_launches(what: str, x, pw: PackedWeight, out, out_total, out_offset, geometry, flags,
                   scale, shift, residual, residual_scale, in_scale, in_shift, prologue_act,
                   precision: str, transposed: bool, residual_strides=(1, 1), routes=(),
                   out_acts=()) -> list[KernelLaunch]:
    """The launches of one conv / matmul: the GEMM kernel, and with split-K the reduction.
    `routes`: destinations 1.. of a routed store, (buffer, c_total, c_offset, first column) each
    (destination 0 is `out` for columns [0, routes[0][3])); `out_acts`: each destination's activation
    code (OUT_ACT0..3; the code of "none" for the others)."""
    n, h, w, cin = x.shape
    oh, ow = geometry["out_hw"]
    (sh, sw), (pt, pl), (dh, dw) = geometry["strides"], geometry["pad_before"], geometry["dilations"]
    cout = pw.cout
    m = n * oh * ow
    is_1x1 = (pw.kh == 1 and pw.kw == 1 and pt == 0 and pl == 0 and not transposed
              and (oh - 1) * sh < h and (ow - 1) * sw < w)
    flat_k = (not is_1x1) and (not transposed) and cin < 16
    dtype = dtype_name(x, f"{what}: x")
    dot_precision = precision if dtype == "float32" else "ieee"
    dummy = x  # unused pointer slots get a valid pointer; constexpr flags skip them
    res_strided = residual is not None and tuple(residual_strides) != (1, 1)
    res_h, res_w = (residual.shape[1], residual.shape[2]) if res_strided else (oh, ow)
    constexprs = dict(IS_1X1=is_1x1, FLAT_K=flat_k, TRANSPOSED=transposed, **flags, RES_STRIDED=res_strided,
                      HAS_PROLOGUE=in_scale is not None,
                      PROLOGUE_ACT=act_code(prologue_act, f"{what}: prologue_act"),
                      DOT_PRECISION=dot_precision, NUM_OUT=1 + len(routes),
                      **{f"OUT_ACT{d}": code for d, code in enumerate(_out_act_codes(out_acts, what))})
    k_total = pw.kh * pw.kw * cin

    def route_args(out_buf, route_bufs):
        """out1..3 pointers, c_totals, c_offsets, first columns (unused: `out_buf` and zeros)."""
        ptrs = list(route_bufs) + [out_buf] * (MAX_DESTINATIONS - 1 - len(routes))
        pad = [0] * (MAX_DESTINATIONS - 1 - len(routes))
        return (*ptrs, *[r[1] for r in routes], *pad, *[r[2] for r in routes], *pad, *[r[3] for r in routes], *pad)

    def k_steps_of(tile):
        """k-steps of the flat K loop (the K extent itself for tile None)."""
        if tile is None:
            return k_total if flat_k else cin
        if flat_k:
            return triton.cdiv(k_total, tile.BLOCK_K)
        return pw.kh * pw.kw * triton.cdiv(cin, tile.BLOCK_K)

    def make(plan: cfg.GemmPlan, out_buf, route_bufs) -> list[KernelLaunch]:
        tile, split = plan.tile, plan.split_k
        k_steps = k_steps_of(tile)
        per_split = triton.cdiv(k_steps, split)
        partial = None
        if split > 1:
            if split * m * cout > INT32_LIMIT:
                raise KernelArgumentError(f"{what}: split-K workspace {split}x{m}x{cout} exceeds int32 offsets")
            partial = alloc_workspace((split, m, cout), x.device)
        args = (x, pw.data, out_buf, scale if scale is not None else dummy,
                shift if shift is not None else dummy, residual if residual is not None else dummy,
                in_scale if in_scale is not None else dummy, in_shift if in_shift is not None else dummy,
                partial if partial is not None else dummy,
                m, h, w, cin, oh, ow, cout, pw.kh, pw.kw, sh, sw, pt, pl, dh, dw,
                out_total, out_offset, float(residual_scale), res_h, res_w, *residual_strides,
                per_split * tile.BLOCK_K, pw.row_stride, *route_args(out_buf, route_bufs))
        meta = {"M": m, "N": cout, "K": k_total, "dtype": dtype, "split_k": split}
        # the residual is prefetched before the K loop unless that costs the tile its
        # second CTA per SM (the 128x128 tile on 8 warps has no registers to spare)
        prefetch = flags["HAS_RESIDUAL"]
        gemm = KernelLaunch(what, conv_gemm_kernel, args,
                            {**constexprs, "SPLIT": split > 1, "RES_PREFETCH": prefetch, **tile.constexprs()},
                            (plan.tiles, split), tile.num_warps, tile.num_stages, kind="gemm", meta=meta)
        if split == 1:
            return [gemm]
        red = cfg.tile_2d(m, cout)
        reduce_args = (partial, out_buf, scale if scale is not None else dummy,
                       shift if shift is not None else dummy, residual if residual is not None else dummy,
                       m, cout, oh, ow, split, out_total, out_offset, float(residual_scale), res_h, res_w,
                       *residual_strides, *route_args(out_buf, route_bufs))
        reduce = KernelLaunch(f"{what}/splitk_reduce", splitk_reduce_kernel, reduce_args,
                              {**{k: constexprs[k] for k in ("HAS_SCALE", "HAS_SHIFT", "ACT", "HAS_RESIDUAL",
                                                             "ACT2", "RES_STRIDED", "NUM_OUT", "OUT_ACT0", "OUT_ACT1",
                                                             "OUT_ACT2", "OUT_ACT3")},
                               **red.constexprs()},
                              (triton.cdiv(m, red.BLOCK_R), triton.cdiv(cout, red.BLOCK_C)), red.num_warps, 1,
                              kind="splitk_reduce", meta={"M": m, "N": cout, "splits": split, "dtype": dtype})
        return [gemm, reduce]

    def bench(plan):
        scratch = torch.empty_like(out)  # never overwrite live data while timing
        launches = make(plan, scratch, [torch.empty_like(r[0]) for r in routes])

        def run_all():
            for launch in launches:
                launch.execute()  # timing launches are not recorded
        return cfg.time_ms(run_all)

    spec_key = f"{dtype}/{precision}/{sorted(constexprs.items())}/k{pw.kh}x{pw.kw}/s{sh}x{sw}"
    lean = not (flags["HAS_SCALE"] or flags["HAS_RESIDUAL"] or in_scale is not None)  # see config.CTAS_PER_SM_90
    plan = _gemm_plan(dtype, m, cout, k_steps_of, spec_key, x.device, bench if x.device.type == "cuda" else None,
                      lean, 2 if is_1x1 else 1, flat_k)
    return make(plan, out, [r[0] for r in routes])


def alloc_workspace(shape, device) -> torch.Tensor:
    """The fp32 split-K partial sums (every element is written before it is read)."""
    return torch.empty(tuple(shape), dtype=torch.float32, device=device)


def _run(launches) -> None:
    for launch in launches:
        launch.run()


def conv2d(x, w_packed, *, strides=(1, 1), padding=((0, 0), (0, 0)), dilations=(1, 1),
           scale=None, shift=None, act="none", residual=None, residual_scale=1.0, act2="none",
           residual_strides=(1, 1), in_scale=None, in_shift=None, prologue_act="none", out=None,
           out_channel_offset=0, precision="ieee", name="conv2d") -> torch.Tensor:
    """Fused conv2d: x[N,H,W,Cin] (*) w -> act2(residual + rs*act(acc*scale + shift)), written
    into `out[..., offset:offset+Cout]` (allocated [N,OH,OW,Cout] when `out` is None).
    `residual_strides` (s_h, s_w): the residual is [N, RH, RW, Cout] read at [n, oh*s_h, ow*s_w]
    (ResNet's subsampled shortcut, without the subsample kernel)."""
    what = name
    pw = check_packed(w_packed, "conv2d", what)
    check_weight_input(what, x, pw)
    check_precision(precision, what)
    (sh, sw), (dh, dw), (pt, pl), (oh, ow) = conv_output_geometry(what, x, pw.kh, pw.kw, strides, padding,
                                                                  dilations)
    check_prologue(what, x, in_scale, in_shift, prologue_act)
    out, total, flags = epilogue_args(what, x, pw.cout, (x.shape[0], oh, ow), scale, shift, act, residual,
                                      residual_scale, act2, out, out_channel_offset, residual_strides)
    geometry = {"out_hw": (oh, ow), "strides": (sh, sw), "pad_before": (pt, pl), "dilations": (dh, dw)}
    _run(_conv_launches(what, x, pw, out, total, out_channel_offset, geometry, flags, scale, shift, residual,
                        residual_scale, in_scale, in_shift, prologue_act, precision, transposed=False,
                        residual_strides=pair(residual_strides, f"{what}: residual_strides")))
    return out


MAX_DESTINATIONS = 4  # destinations of a routed store (the kernel's out, out1..out3 pointers)


def _out_act_codes(out_acts, what) -> list:
    """OUT_ACT0..3 of a routed store: each destination's activation code, "none" past the last."""
    acts = list(out_acts) + ["none"] * (MAX_DESTINATIONS - len(out_acts))
    return [act_code(a, f"{what}: acts[{d}]") for d, a in enumerate(acts)]


def conv2d_routed(x, w_packed, *, destinations, strides=(1, 1), padding=((0, 0), (0, 0)), dilations=(1, 1),
                  scale=None, shift=None, act="none", acts=None, in_scale=None, in_shift=None, prologue_act="none",
                  precision="ieee", name="conv2d_routed") -> list:
    """One conv whose output channels go to several destinations (sibling convs merged into one
    GEMM, fusion/horizontal.py): `destinations` is a list of (out or None, out_channel_offset,
    channels), in column order -- destination d receives the next `channels` output channels
    of act(conv(x, w)*scale + shift) -- then its own activation acts[d] when `acts` is given --
    into out[..., offset:offset + channels] (a new [N, OH, OW, channels] tensor when out is
    None). The prologue (in_scale, in_shift, prologue_act) is conv2d's. The channel counts must add up to the
    weight's Cout, so the ranges cover [0, Cout) once. Returns the destination tensors."""
    what = name
    pw = check_packed(w_packed, "conv2d", what)
    check_weight_input(what, x, pw)
    check_precision(precision, what)
    dests = list(destinations)
    if not 1 <= len(dests) <= MAX_DESTINATIONS:
        raise KernelArgumentError(f"{what}: {len(dests)} destinations; the routed store takes 1 to "
                                  f"{MAX_DESTINATIONS}")
    try:
        counts = [int(c) for _, _, c in dests]
    except (TypeError, ValueError):
        raise KernelArgumentError(f"{what}: destinations must be (out or None, channel offset, channels) "
                                  f"triples, got {destinations!r}") from None
    if min(counts) < 1 or sum(counts) != pw.cout:
        raise KernelArgumentError(f"{what}: destination channel counts {counts} must be >= 1 and add up to the "
                                  f"weight's Cout={pw.cout}")
    (sh, sw), (dh, dw), (pt, pl), (oh, ow) = conv_output_geometry(what, x, pw.kh, pw.kw, strides, padding,
                                                                  dilations)
    check_channel_vector(scale, f"{what}: scale", pw.cout, x.device)
    check_channel_vector(shift, f"{what}: shift", pw.cout, x.device)
    check_prologue(what, x, in_scale, in_shift, prologue_act)
    out_acts = ["none"] * len(dests) if acts is None else list(acts)
    if len(out_acts) != len(dests):
        raise KernelArgumentError(f"{what}: {len(out_acts)} acts for {len(dests)} destinations")
    lead = (x.shape[0], oh, ow)
    bufs, col = [], 0
    for d, ((out, offset, _), channels) in enumerate(zip(dests, counts)):
        buf, total = output_buffer(out, f"{what}: destination {d}", x, lead, channels, int(offset))
        for e, (other, o_total, o_offset, o_col, o_channels) in enumerate(bufs):
            if buf.data_ptr() == other.data_ptr() and buf.device.type != "meta" and \
                    max(o_offset, int(offset)) < min(o_offset + o_channels, int(offset) + channels):
                raise KernelArgumentError(f"{what}: destinations {e} and {d} overlap in one buffer (channels "
                                          f"[{o_offset}, {o_offset + o_channels}) and [{offset}, {offset + channels}))")
        bufs.append((buf, total, int(offset), col, channels))
        col += channels
    flags = {"HAS_SCALE": scale is not None, "HAS_SHIFT": shift is not None, "ACT": act_code(act, f"{what}: act"),
             "HAS_RESIDUAL": False, "ACT2": act_code("none", f"{what}: act2")}
    geometry = {"out_hw": (oh, ow), "strides": (sh, sw), "pad_before": (pt, pl), "dilations": (dh, dw)}
    first = bufs[0]
    _run(_conv_launches(what, x, pw, first[0], first[1], first[2], geometry, flags, scale, shift, None, 1.0,
                        in_scale, in_shift, prologue_act, precision, transposed=False,
                        routes=[b[:4] for b in bufs[1:]], out_acts=out_acts))
    return [b[0] for b in bufs]


def conv2d_transpose(x, w_packed, *, strides, pad_before, output_hw, scale=None, shift=None,
                     act="none", residual=None, residual_scale=1.0, act2="none", out=None,
                     out_channel_offset=0, precision="ieee", name="conv2d_transpose") -> torch.Tensor:
    """Fused conv2d_transpose: out[o] += x[i] w[k] with o = i*stride + k - pad_before, output
    size `output_hw` given; same epilogue and channel-offset output as conv2d."""
    what = name
    pw = check_packed(w_packed, "conv2d_transpose", what)
    check_weight_input(what, x, pw)
    check_precision(precision, what)
    sh, sw = pair(strides, f"{what}: strides")
    pt, pl = pair(pad_before, f"{what}: pad_before")
    oh, ow = pair(output_hw, f"{what}: output_hw")
    if min(sh, sw, oh, ow) < 1 or min(pt, pl) < 0:
        raise KernelArgumentError(f"{what}: strides {strides}, pad_before {pad_before}, output_hw "
                                  f"{output_hw} must be positive")
    n = x.shape[0]
    out, total, flags = epilogue_args(what, x, pw.cout, (n, oh, ow), scale, shift, act, residual,
                                      residual_scale, act2, out, out_channel_offset)
    geometry = {"out_hw": (oh, ow), "strides": (sh, sw), "pad_before": (pt, pl), "dilations": (1, 1)}
    _run(_conv_launches(what, x, pw, out, total, out_channel_offset, geometry, flags, scale, shift, residual,
                        residual_scale, None, None, "none", precision, transposed=True))
    return out


def matmul(x, w_packed, *, scale=None, shift=None, act="none", residual=None, residual_scale=1.0,
           act2="none", out=None, out_channel_offset=0, precision="ieee", name="matmul") -> torch.Tensor:
    """Fused fully-connected layer: x[..., K] @ w[K, N] with the conv epilogue; result [..., N]."""
    what = name
    pw = check_packed(w_packed, "matmul", what)
    check_tensor(x, f"{what}: x")
    if x.dim() < 1 or x.shape[-1] != pw.cin:
        raise KernelArgumentError(f"{what}: x shape {tuple(x.shape)} does not end in K={pw.cin} "
                                  f"(weight [{pw.cin}, {pw.cout}])")
    check_precision(precision, what)
    lead = tuple(x.shape[:-1])
    rows = int(np.prod(lead)) if lead else 1
    x4 = x.reshape(rows, 1, 1, pw.cin)
    check_weight_input(what, x4, pw)
    out, total, flags = epilogue_args(what, x, pw.cout, lead, scale, shift, act, residual,
                                      residual_scale, act2, out, out_channel_offset)
    res4 = residual.reshape(rows, 1, 1, pw.cout) if residual is not None else None
    geometry = {"out_hw": (1, 1), "strides": (1, 1), "pad_before": (0, 0), "dilations": (1, 1)}
    _run(_conv_launches(what, x4, pw, out, total, out_channel_offset, geometry, flags, scale, shift, res4,
                        residual_scale, None, None, "none", precision, transposed=False))
    return out
