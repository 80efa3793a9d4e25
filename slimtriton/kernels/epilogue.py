"""The one kernel epilogue: its jit functions and its host-side argument checks.

Every kernel that produces a layer output applies it to its fp32 result block
acc[rows, channels] (rows = output pixels m, or the rows of a [R, C] tensor; channels j),
before the one downcast: conv2d / conv2d_transpose / matmul (`conv.conv_gemm_kernel` and
its split-K reduction below), depthwise_conv2d, mean_matmul, window_conv2d and affine_act.

    y = act(acc*scale[j] + shift[j])                      (scale_shift_act)
    y = act2(res[m, j] + residual_scale*y)                if HAS_RESIDUAL   (apply_epilogue)
        (RES_STRIDED: res[n, oh*rs_h, ow*rs_w, j] of an unsubsampled [N, RES_H, RES_W, C_out]
         tensor, ResNet's `subsample(x, s)` shortcut read in place)
    out[m, out_c_offset + j] = y  (downcast once)         in a [M, out_c_total] buffer (epilogue_store)

NaN semantics are `common.apply_act`'s: relu(NaN) is NaN, as in the reference.
Host side: `epilogue_args` checks scale / shift / act / residual / act2 / out and returns the
output buffer and the epilogue's constexpr flags (HAS_SCALE, HAS_SHIFT, ACT, HAS_RESIDUAL, ACT2)
that every kernel above takes under the same names.

Routed store (NUM_OUT > 1, `epilogue_store_routed`; the wide GEMM of sibling convs merged by the
horizontal fusion pass): the channels are split into NUM_OUT consecutive ranges, destination d
holding columns [col_d, col_{d+1}) (col_0 = 0, col_NUM_OUT = C_out) and writing column j,
after its own activation OUT_ACT_d (on top of ACT; "none" for none), to
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

from .common import (KernelArgumentError, act_code, apply_act, check_channel_vector, check_tensor, output_buffer, pair,
                     pixel_of_row)


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
def apply_epilogue(acc, res, offs_n, n_mask, scale_ptr, shift_ptr, residual_scale,
                   HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr, ACT: tl.constexpr,
                   HAS_RESIDUAL: tl.constexpr, ACT2: tl.constexpr):
    """The epilogue's value on the fp32 block `acc` of channels `offs_n`, with the residual
    block `res` (already loaded; any dtype, ignored unless HAS_RESIDUAL): fp32, not stored."""
    acc = scale_shift_act(acc, scale_ptr, shift_ptr, offs_n, n_mask, HAS_SCALE, HAS_SHIFT, ACT)
    if HAS_RESIDUAL:
        acc = apply_act(res.to(tl.float32) + residual_scale * acc, ACT2)
    return acc


@triton.jit
def epilogue_store(acc, res, offs_m, offs_n, m_mask, n_mask, out_ptr, scale_ptr, shift_ptr,
                   out_c_total, out_c_offset, residual_scale,
                   HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr, ACT: tl.constexpr,
                   HAS_RESIDUAL: tl.constexpr, ACT2: tl.constexpr):
    """Apply the epilogue to the fp32 block `acc` (with the residual block `res`, already
    loaded, when HAS_RESIDUAL) and store it, downcast once, at channel `out_c_offset`."""
    acc = apply_epilogue(acc, res, offs_n, n_mask, scale_ptr, shift_ptr, residual_scale, HAS_SCALE, HAS_SHIFT, ACT,
                         HAS_RESIDUAL, ACT2)
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
                          HAS_RESIDUAL: tl.constexpr, ACT2: tl.constexpr, NUM_OUT: tl.constexpr,
                          OUT_ACT0: tl.constexpr, OUT_ACT1: tl.constexpr, OUT_ACT2: tl.constexpr,
                          OUT_ACT3: tl.constexpr):
    """`epilogue_store`, or with NUM_OUT > 1 (no residual) the routed store of the module docstring:
    destination 0 is (out_ptr, out_c_total, out_c_offset) for columns [0, col1), destination d
    (out{d}_ptr, ...) for [col_d, col_{d+1}); destination d's columns get OUT_ACT{d} too."""
    if NUM_OUT == 1:
        epilogue_store(acc, res, offs_m, offs_n, m_mask, n_mask, out_ptr, scale_ptr, shift_ptr, out_c_total,
                       out_c_offset, residual_scale, HAS_SCALE, HAS_SHIFT, ACT, HAS_RESIDUAL, ACT2)
    else:
        y = scale_shift_act(acc, scale_ptr, shift_ptr, offs_n, n_mask, HAS_SCALE, HAS_SHIFT, ACT)
        mask = m_mask[:, None] & n_mask[None, :]
        # destination d's columns end where destination d + 1's begin; the last one's at C_out
        end1 = C_out
        if NUM_OUT > 2:
            end1 = col2
        _store_columns(apply_act(y, OUT_ACT0), offs_m, offs_n, mask, out_ptr, out_c_total, out_c_offset, 0, col1)
        _store_columns(apply_act(y, OUT_ACT1), offs_m, offs_n, mask, out1_ptr, out1_c_total, out1_c_offset,
                       col1, end1)
        if NUM_OUT > 2:
            end2 = C_out
            if NUM_OUT > 3:
                end2 = col3
            _store_columns(apply_act(y, OUT_ACT2), offs_m, offs_n, mask, out2_ptr, out2_c_total, out2_c_offset,
                           col2, end2)
        if NUM_OUT > 3:
            _store_columns(apply_act(y, OUT_ACT3), offs_m, offs_n, mask, out3_ptr, out3_c_total, out3_c_offset,
                           col3, C_out)


@triton.jit
def splitk_reduce_kernel(
    partial_ptr, out_ptr, scale_ptr, shift_ptr, res_ptr,
    M, C_out, OH, OW, SPLITS,
    out_c_total, out_c_offset, residual_scale, RES_H, RES_W, res_stride_h, res_stride_w,
    out1_ptr, out2_ptr, out3_ptr, out1_c_total, out2_c_total, out3_c_total,
    out1_c_offset, out2_c_offset, out3_c_offset, col1, col2, col3,
    HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr, ACT: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr, ACT2: tl.constexpr, RES_STRIDED: tl.constexpr, NUM_OUT: tl.constexpr,
    OUT_ACT0: tl.constexpr, OUT_ACT1: tl.constexpr, OUT_ACT2: tl.constexpr, OUT_ACT3: tl.constexpr,
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
                          HAS_SCALE, HAS_SHIFT, ACT, HAS_RESIDUAL, ACT2, NUM_OUT, OUT_ACT0, OUT_ACT1, OUT_ACT2,
                          OUT_ACT3)


# ---------------------------------------------------------------------------------------
# Host side.

def epilogue_args(what, x, cout, lead_shape, scale, shift, act, residual, residual_scale, act2,
                  out, out_channel_offset, residual_strides=(1, 1)):
    """Check the epilogue and output arguments of layer `what` (input `x`, a result of
    [*lead_shape, cout]); returns (out, out_c_total, flags): the output buffer (allocated when
    `out` is None), its channel count, and the epilogue's constexprs (HAS_SCALE, HAS_SHIFT,
    ACT, HAS_RESIDUAL, ACT2). `residual_scale` is used by the kernel only.

    With `residual_strides` (s_h, s_w) != (1, 1) (conv2d only) the residual is the
    unsubsampled [N, RH, RW, Cout] tensor, read at [n, oh*s_h, ow*s_w] (needs (RH-1)//s_h + 1
    == OH, as a 1x1 stride-s max pool would give)."""
    dev = x.device
    check_channel_vector(scale, f"{what}: scale", cout, dev)
    check_channel_vector(shift, f"{what}: shift", cout, dev)
    flags = {"HAS_SCALE": scale is not None, "HAS_SHIFT": shift is not None,
             "ACT": act_code(act, f"{what}: act"), "HAS_RESIDUAL": residual is not None,
             "ACT2": act_code(act2, f"{what}: act2")}
    rsh, rsw = pair(residual_strides, f"{what}: residual_strides")
    if residual is not None:
        if (rsh, rsw) == (1, 1):
            check_tensor(residual, f"{what}: residual", shape=(*lead_shape, cout), dtype=x.dtype, device=dev)
        else:
            _check_strided_residual(what, x, residual, lead_shape, cout, (rsh, rsw))
    elif act2 != "none":
        raise KernelArgumentError(f"{what}: act2={act2!r} needs a residual")
    elif (rsh, rsw) != (1, 1):
        raise KernelArgumentError(f"{what}: residual_strides={residual_strides} needs a residual")
    out, total = output_buffer(out, what, x, lead_shape, cout, out_channel_offset)
    if residual is not None and residual.device.type != "meta" and residual.data_ptr() == out.data_ptr() \
            and (total != cout or out_channel_offset != 0 or (rsh, rsw) != (1, 1)):
        raise KernelArgumentError(f"{what}: residual aliases out (a channel slice, or read strided)")
    return out, total, flags


def _check_strided_residual(what, x, residual, lead_shape, cout, strides):
    if len(lead_shape) != 3 or min(strides) < 1:
        raise KernelArgumentError(f"{what}: residual_strides {strides} need an NHWC output and strides >= 1")
    check_tensor(residual, f"{what}: residual", ndim=4, dtype=x.dtype, device=x.device)
    n, oh, ow = lead_shape
    rn, rh, rw, rc = residual.shape
    if (rn, rc) != (n, cout) or (rh - 1) // strides[0] + 1 != oh or (rw - 1) // strides[1] + 1 != ow:
        raise KernelArgumentError(
            f"{what}: residual of shape {tuple(residual.shape)} read with strides {strides} does not give the "
            f"output's [{n}, {oh}, {ow}, {cout}] (needs [{n}, RH, RW, {cout}] with (RH-1)//{strides[0]}+1 == {oh} "
            f"and (RW-1)//{strides[1]}+1 == {ow})")
