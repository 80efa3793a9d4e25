"""Depthwise conv2d (with depth multiplier), fused epilogue and prologue, channel-offset output.

Algorithm (NHWC; weight w[kh, kw, cin, dm] packed to [KH*KW, Cin*dm], column c*dm + m):

    program tile   BLOCK_R output pixels (m -> n, oh, ow) x BLOCK_C output channels oc
    input channel  ci = oc // dm
    acc[p, oc]     = sum_{kh,kw} prologue(x[n, oh*sh - pt + kh*dh, ow*sw - pl + kw*dw, ci]) * Wp[kh*KW + kw, oc]
                     (out-of-image taps contribute 0: padding is applied after the prologue)
    epilogue       the GEMMs' (`epilogue.epilogue_store`): act2(res + rs*act(acc*scale + shift)) -> out[m, offset + oc]

A direct kernel (no tensor cores: each output channel reads one input channel), fp32
accumulation, loads contiguous along channels. KH and KW are constexprs: the tap loop is
unrolled (`tl.static_range`), so the KH*KW input and weight loads of a tile are independent
instructions in flight together rather than KH*KW dependent round trips of a runtime loop.
Strides, padding and dilation stay runtime values. On a GPU the tile shrinks until the grid
has one CTA per SM (`common.filled_tile_2d`): MobileNet's 7x7x1024 layers at batch 1 run on
208 CTAs, not 32.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .common import (act_code, check_prologue, conv_output_geometry, filled_tile_2d, in_image, masked_prologue,
                     pixel_of_row, tap_coords)
from .epilogue import epilogue_args, epilogue_store
from .launch import KernelLaunch
from .packing import check_packed, check_weight_input


@triton.jit
def depthwise_conv_kernel(
    x_ptr, w_ptr, out_ptr, scale_ptr, shift_ptr, res_ptr, in_scale_ptr, in_shift_ptr,
    M, H, W, C_in, OH, OW, C_out, DM,
    stride_h, stride_w, pad_t, pad_l, dil_h, dil_w,
    out_c_total, out_c_offset, residual_scale,
    KH: tl.constexpr, KW: tl.constexpr,
    HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr, ACT: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr, ACT2: tl.constexpr,
    HAS_PROLOGUE: tl.constexpr, PROLOGUE_ACT: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    offs_m = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    m_mask = offs_m < M
    c_mask = offs_c < C_out
    ci = offs_c // DM
    n, oh, ow = pixel_of_row(offs_m, OH, OW)
    in_s = 1.0
    in_b = 0.0
    if HAS_PROLOGUE:
        in_s = tl.load(in_scale_ptr + ci, mask=c_mask, other=0.0).to(tl.float32)[None, :]
        in_b = tl.load(in_shift_ptr + ci, mask=c_mask, other=0.0).to(tl.float32)[None, :]

    acc = tl.zeros((BLOCK_R, BLOCK_C), dtype=tl.float32)
    for kh in tl.static_range(KH):
        for kw in tl.static_range(KW):
            ih, iw = tap_coords(oh, ow, kh, kw, stride_h, stride_w, pad_t, pad_l, dil_h, dil_w)
            mask = (in_image(ih, iw, H, W) & m_mask)[:, None] & c_mask[None, :]
            xv = tl.load(x_ptr + (((n * H + ih) * W + iw) * C_in)[:, None] + ci[None, :], mask=mask, other=0.0)
            xv = masked_prologue(xv, mask, in_s, in_b, HAS_PROLOGUE, PROLOGUE_ACT)
            wv = tl.load(w_ptr + (kh * KW + kw) * C_out + offs_c, mask=c_mask, other=0.0).to(tl.float32)
            acc += xv * wv[None, :]

    res = 0.0
    if HAS_RESIDUAL:
        res = tl.load(res_ptr + offs_m[:, None] * C_out + offs_c[None, :], mask=m_mask[:, None] & c_mask[None, :],
                      other=0.0)
    epilogue_store(acc, res, offs_m, offs_c, m_mask, c_mask, out_ptr, scale_ptr, shift_ptr, out_c_total,
                   out_c_offset, residual_scale, HAS_SCALE, HAS_SHIFT, ACT, HAS_RESIDUAL, ACT2)


def depthwise_conv2d(x, w_packed, *, strides=(1, 1), padding=((0, 0), (0, 0)), dilations=(1, 1),
                     scale=None, shift=None, act="none", residual=None, residual_scale=1.0, act2="none",
                     in_scale=None, in_shift=None, prologue_act="none", out=None, out_channel_offset=0,
                     name="depthwise_conv2d") -> torch.Tensor:
    """Fused depthwise conv: x[N,H,W,Cin], w[kh,kw,Cin,dm] -> [N,OH,OW,Cin*dm] (channel c*dm + m)."""
    what = name
    pw = check_packed(w_packed, "depthwise", what)
    check_weight_input(what, x, pw)
    (sh, sw), (dh, dw), (pt, pl), (oh, ow) = conv_output_geometry(what, x, pw.kh, pw.kw, strides, padding,
                                                                  dilations)
    n, h, w, cin = x.shape
    check_prologue(what, x, in_scale, in_shift, prologue_act)
    out, total, flags = epilogue_args(what, x, pw.cout, (n, oh, ow), scale, shift, act, residual,
                                      residual_scale, act2, out, out_channel_offset)
    m = n * oh * ow
    tile = filled_tile_2d(m, pw.cout, x.device)
    dummy = x
    args = (x, pw.data, out, scale if scale is not None else dummy, shift if shift is not None else dummy,
            residual if residual is not None else dummy, in_scale if in_scale is not None else dummy,
            in_shift if in_shift is not None else dummy,
            m, h, w, cin, oh, ow, pw.cout, pw.cout // cin, sh, sw, pt, pl, dh, dw,
            total, out_channel_offset, float(residual_scale))
    constexprs = dict(KH=pw.kh, KW=pw.kw, **flags, HAS_PROLOGUE=in_scale is not None,
                      PROLOGUE_ACT=act_code(prologue_act, f"{what}: prologue_act"), **tile.constexprs())
    grid = (triton.cdiv(m, tile.BLOCK_R), triton.cdiv(pw.cout, tile.BLOCK_C))
    KernelLaunch(what, depthwise_conv_kernel, args, constexprs, grid, tile.num_warps, 1,
                 kind="depthwise").run()
    return out
