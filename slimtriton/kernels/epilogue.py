"""The GEMM epilogue, shared by the implicit-GEMM conv kernel and its split-K reduction.

On an fp32 accumulator block acc[rows, channels] (rows = NHWC output pixels m, channels j):

    y = act(acc*scale[j] + shift[j])                      (scale_shift_act)
    y = act2(res[m, j] + residual_scale*y)                if HAS_RESIDUAL
        (RES_STRIDED: res[n, oh*rs_h, ow*rs_w, j] of an unsubsampled [N, RES_H, RES_W, C_out]
         tensor, ResNet's `subsample(x, s)` shortcut read in place)
    out[m, out_c_offset + j] = y  (downcast once)         in a [M, out_c_total] buffer

Routed store (NUM_OUT > 1, `epilogue_store_routed`; the wide GEMM of sibling convs merged by the
horizontal fusion pass): the channels are split into NUM_OUT consecutive ranges, destination d
holding columns [col_d, col_{d+1}) (col_0 = 0, col_NUM_OUT = C_out) and writing column j to
out_d[m, out_d_c_offset + j - col_d] of its own [M, out_d_c_total] buffer -- a branch's
tensor or its slice of a concat. One masked store per destination; a tile inside one range
stores nothing through the others' masks. The wide tensor itself is never stored.

Split-K (`splitk_reduce_kernel`): the GEMM kernel's SPLIT_K programs of one output tile each
write their fp32 partial sum to a [SPLIT_K, M, C_out] workspace (no epilogue); this kernel
adds the SPLIT_K partials of each element in split order 0, 1, ... (a fixed order: the
result does not depend on scheduling, run to run) and applies the epilogue once.
"""
from __future__ import annotations

import triton
import triton.language as tl

from .common import apply_act, pixel_of_row


@triton.jit
def scale_shift_act(acc, scale_ptr, shift_ptr, offs_n, n_mask, HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr,
                    ACT: tl.constexpr):
    """The epilogue's first stage on an fp32 [rows, channels] block: act(acc*scale[n] + shift[n])."""
    if HAS_SCALE:
        acc = acc * tl.load(scale_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)[None, :]
    if HAS_SHIFT:
        acc = acc + tl.load(shift_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)[None, :]
    return apply_act(acc, ACT)


@triton.jit
def residual_offsets(offs_m, offs_n, OH, OW, C_out, RES_H, RES_W, res_stride_h, res_stride_w,
                     RES_STRIDED: tl.constexpr):
    """Element offsets of the residual block of output rows `offs_m`, channels `offs_n`."""
    if RES_STRIDED:  # res[n, oh*rs_h, ow*rs_w, :] of a [N, RES_H, RES_W, C_out] tensor (subsample)
        n, oh, ow = pixel_of_row(offs_m, OH, OW)
        res_row = ((n * RES_H + oh * res_stride_h) * RES_W + ow * res_stride_w) * C_out
    else:
        res_row = offs_m * C_out
    return res_row[:, None] + offs_n[None, :]


@triton.jit
def epilogue_store(acc, res, offs_m, offs_n, m_mask, n_mask, out_ptr, scale_ptr, shift_ptr,
                   out_c_total, out_c_offset, residual_scale,
                   HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr, ACT: tl.constexpr,
                   HAS_RESIDUAL: tl.constexpr, ACT2: tl.constexpr):
    """Apply the epilogue to the fp32 block `acc` (with the residual block `res`, already
    loaded, when HAS_RESIDUAL) and store it, downcast once, at channel `out_c_offset`."""
    acc = scale_shift_act(acc, scale_ptr, shift_ptr, offs_n, n_mask, HAS_SCALE, HAS_SHIFT, ACT)
    if HAS_RESIDUAL:
        acc = apply_act(res.to(tl.float32) + residual_scale * acc, ACT2)
    out_offs = offs_m[:, None] * out_c_total + out_c_offset + offs_n[None, :]
    tl.store(out_ptr + out_offs, acc.to(out_ptr.dtype.element_ty), mask=m_mask[:, None] & n_mask[None, :])


@triton.jit
def _store_columns(y, offs_m, offs_n, mask, ptr, c_total, c_offset, col_lo, col_hi):
    """Columns [col_lo, col_hi) of the block `y` into ptr[m, c_offset + j - col_lo] ([M, c_total])."""
    cols = offs_n - col_lo
    in_range = (offs_n >= col_lo) & (offs_n < col_hi)
    tl.store(ptr + offs_m[:, None] * c_total + c_offset + cols[None, :], y.to(ptr.dtype.element_ty),
             mask=mask & in_range[None, :])


@triton.jit
def epilogue_store_routed(acc, res, offs_m, offs_n, m_mask, n_mask, out_ptr, scale_ptr, shift_ptr,
                          out_c_total, out_c_offset, residual_scale,
                          out1_ptr, out2_ptr, out3_ptr, out1_c_total, out2_c_total, out3_c_total,
                          out1_c_offset, out2_c_offset, out3_c_offset, col1, col2, col3, C_out,
                          HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr, ACT: tl.constexpr,
                          HAS_RESIDUAL: tl.constexpr, ACT2: tl.constexpr, NUM_OUT: tl.constexpr):
    """`epilogue_store`, or with NUM_OUT > 1 (no residual) the routed store of the module docstring:
    destination 0 is (out_ptr, out_c_total, out_c_offset) for columns [0, col1), destination d
    (out{d}_ptr, ...) for [col_d, col_{d+1})."""
    if NUM_OUT == 1:
        epilogue_store(acc, res, offs_m, offs_n, m_mask, n_mask, out_ptr, scale_ptr, shift_ptr, out_c_total,
                       out_c_offset, residual_scale, HAS_SCALE, HAS_SHIFT, ACT, HAS_RESIDUAL, ACT2)
    else:
        y = scale_shift_act(acc, scale_ptr, shift_ptr, offs_n, n_mask, HAS_SCALE, HAS_SHIFT, ACT)
        mask = m_mask[:, None] & n_mask[None, :]
        _store_columns(y, offs_m, offs_n, mask, out_ptr, out_c_total, out_c_offset, 0, col1)
        if NUM_OUT == 2:
            _store_columns(y, offs_m, offs_n, mask, out1_ptr, out1_c_total, out1_c_offset, col1, C_out)
        else:
            _store_columns(y, offs_m, offs_n, mask, out1_ptr, out1_c_total, out1_c_offset, col1, col2)
            if NUM_OUT == 3:
                _store_columns(y, offs_m, offs_n, mask, out2_ptr, out2_c_total, out2_c_offset, col2, C_out)
            else:
                _store_columns(y, offs_m, offs_n, mask, out2_ptr, out2_c_total, out2_c_offset, col2, col3)
                _store_columns(y, offs_m, offs_n, mask, out3_ptr, out3_c_total, out3_c_offset, col3, C_out)


@triton.jit
def splitk_reduce_kernel(
    partial_ptr, out_ptr, scale_ptr, shift_ptr, res_ptr,
    M, C_out, OH, OW, SPLITS,
    out_c_total, out_c_offset, residual_scale, RES_H, RES_W, res_stride_h, res_stride_w,
    out1_ptr, out2_ptr, out3_ptr, out1_c_total, out2_c_total, out3_c_total,
    out1_c_offset, out2_c_offset, out3_c_offset, col1, col2, col3,
    HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr, ACT: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr, ACT2: tl.constexpr, RES_STRIDED: tl.constexpr, NUM_OUT: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """out = epilogue(sum over s = 0..SPLITS-1, in order, of partial[s, m, j])."""
    offs_m = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    offs_n = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    m_mask = offs_m < M
    n_mask = offs_n < C_out
    mask = m_mask[:, None] & n_mask[None, :]
    offs = offs_m[:, None] * C_out + offs_n[None, :]
    res = 0.0
    if HAS_RESIDUAL:
        res = tl.load(res_ptr + residual_offsets(offs_m, offs_n, OH, OW, C_out, RES_H, RES_W, res_stride_h,
                                                 res_stride_w, RES_STRIDED), mask=mask, other=0.0)
    acc = tl.zeros((BLOCK_R, BLOCK_C), dtype=tl.float32)
    for s in range(0, SPLITS):  # fixed order: deterministic
        acc += tl.load(partial_ptr + s * M * C_out + offs, mask=mask, other=0.0)
    epilogue_store_routed(acc, res, offs_m, offs_n, m_mask, n_mask, out_ptr, scale_ptr, shift_ptr, out_c_total,
                          out_c_offset, residual_scale, out1_ptr, out2_ptr, out3_ptr, out1_c_total, out2_c_total,
                          out3_c_total, out1_c_offset, out2_c_offset, out3_c_offset, col1, col2, col3, C_out,
                          HAS_SCALE, HAS_SHIFT, ACT, HAS_RESIDUAL, ACT2, NUM_OUT)
