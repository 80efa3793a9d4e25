"""Elementwise kernels for what fusion leaves unfused.

* `affine_act` (FUSED_ELEMENTWISE): out[r, off + c] = act2(res[r, c] + rs * act(x[r, c]*scale[c] + shift[c]))
  over rows r = all leading dims, channels c = the last axis (a 2-D [BLOCK_R, BLOCK_C] tile).
* `binary`: add / sub / mul / div / maximum / minimum with NumPy broadcasting; maximum and
  minimum propagate NaN, as np.maximum does. Both operands are viewed as rank-6 strided
  tensors (broadcast axes have stride 0); each flat output index is decomposed into 6
  coordinates and dotted with each operand's strides.
* `unary`: relu / relu6 / sigmoid / tanh / neg on a flat contiguous tensor (fp32 math).
* `copy_channels`: x[r, c] -> out[r, off + c] (a concat input that could not be written in place).
* `pad`: constant padding of a rank <= 6 tensor: output coordinate minus `before` per axis is
  read when inside the input, else `value`.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import config as cfg
from .common import (UNARY_CODES, KernelArgumentError, act_code, apply_act, check_activation, check_output,
                     check_tensor, dtype_name, filled_tile_2d)
from .epilogue import epilogue_args, epilogue_store
from .launch import KernelLaunch, alloc

BINARY_CODES = {"add": 0, "sub": 1, "mul": 2, "div": 3, "maximum": 4, "minimum": 5}
MAX_RANK = 6


@triton.jit
def affine_act_kernel(
    x_ptr, out_ptr, scale_ptr, shift_ptr, res_ptr, R, C, out_c_total, out_c_offset, residual_scale,
    HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr, ACT: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr, ACT2: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """The epilogue (`epilogue.apply_epilogue`) on x itself: x[r, c] loaded in fp32 plays the
    GEMM kernels' accumulator."""
    offs_r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    r_mask = offs_r < R
    c_mask = offs_c < C
    mask = r_mask[:, None] & c_mask[None, :]
    in_offs = offs_r[:, None] * C + offs_c[None, :]
    y = tl.load(x_ptr + in_offs, mask=mask, other=0.0).to(tl.float32)
    res = 0.0
    if HAS_RESIDUAL:
        res = tl.load(res_ptr + in_offs, mask=mask, other=0.0)
    epilogue_store(y, res, offs_r, offs_c, r_mask, c_mask, out_ptr, scale_ptr, shift_ptr, out_c_total, out_c_offset,
                   residual_scale, HAS_SCALE, HAS_SHIFT, ACT, HAS_RESIDUAL, ACT2)


@triton.jit
def _strided_offset(idx, d1, d2, d3, d4, d5, s0, s1, s2, s3, s4, s5):
    """Offset of flat index `idx` of a rank-6 shape (d0 implicit) with strides s0..s5."""
    i5 = idx % d5
    t = idx // d5
    i4 = t % d4
    t = t // d4
    i3 = t % d3
    t = t // d3
    i2 = t % d2
    t = t // d2
    i1 = t % d1
    i0 = t // d1
    return i0 * s0 + i1 * s1 + i2 * s2 + i3 * s3 + i4 * s4 + i5 * s5


@triton.jit
def binary_kernel(
    a_ptr, b_ptr, out_ptr, numel, d1, d2, d3, d4, d5,
    as0, as1, as2, as3, as4, as5, bs0, bs1, bs2, bs3, bs4, bs5,
    OP: tl.constexpr, BLOCK: tl.constexpr,
):
    idx = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < numel
    a_off = _strided_offset(idx, d1, d2, d3, d4, d5, as0, as1, as2, as3, as4, as5)
    b_off = _strided_offset(idx, d1, d2, d3, d4, d5, bs0, bs1, bs2, bs3, bs4, bs5)
    a = tl.load(a_ptr + a_off, mask=mask, other=1.0).to(tl.float32)
    b = tl.load(b_ptr + b_off, mask=mask, other=1.0).to(tl.float32)
    if OP == 0:
        y = a + b
    elif OP == 1:
        y = a - b
    elif OP == 2:
        y = a * b
    elif OP == 3:
        y = a / b
    elif OP == 4:
        y = tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)  # NaN wins, as np.maximum
    else:
        y = tl.minimum(a, b, propagate_nan=tl.PropagateNan.ALL)
    tl.store(out_ptr + idx, y.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def unary_kernel(x_ptr, out_ptr, numel, OP: tl.constexpr, BLOCK: tl.constexpr):
    idx = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < numel
    x = tl.load(x_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + idx, apply_act(x, OP).to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def copy_channels_kernel(x_ptr, out_ptr, R, C, out_c_total, out_c_offset,
                         BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    offs_r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (offs_r < R)[:, None] & (offs_c < C)[None, :]
    v = tl.load(x_ptr + offs_r[:, None] * C + offs_c[None, :], mask=mask)
    tl.store(out_ptr + offs_r[:, None] * out_c_total + out_c_offset + offs_c[None, :],
             v.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def pad_kernel(
    x_ptr, out_ptr, numel, value,
    o1, o2, o3, o4, o5,            # output dims 1..5 (dim 0 implicit)
    i0, i1, i2, i3, i4, i5,        # input dims
    p0, p1, p2, p3, p4, p5,        # padding before, per axis
    BLOCK: tl.constexpr,
):
    idx = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < numel
    c5 = idx % o5 - p5
    t = idx // o5
    c4 = t % o4 - p4
    t = t // o4
    c3 = t % o3 - p3
    t = t // o3
    c2 = t % o2 - p2
    t = t // o2
    c1 = t % o1 - p1
    c0 = t // o1 - p0
    inside = (c0 >= 0) & (c0 < i0) & (c1 >= 0) & (c1 < i1) & (c2 >= 0) & (c2 < i2)
    inside = inside & (c3 >= 0) & (c3 < i3) & (c4 >= 0) & (c4 < i4) & (c5 >= 0) & (c5 < i5)
    src = ((((c0 * i1 + c1) * i2 + c2) * i3 + c3) * i4 + c4) * i5 + c5
    v = tl.load(x_ptr + src, mask=mask & inside, other=0.0).to(tl.float32)
    v = tl.where(inside, v, value)
    tl.store(out_ptr + idx, v.to(out_ptr.dtype.element_ty), mask=mask)


# ---------------------------------------------------------------------------------------
# Host wrappers.

def affine_act(x, scale, shift, act="none", residual=None, residual_scale=1.0, act2="none",
               out=None, out_channel_offset=0, name="affine_act") -> torch.Tensor:
    """FUSED_ELEMENTWISE: act2(residual + rs*act(x*scale[c] + shift[c])) over the last axis c."""
    what = name
    check_activation(x, what)
    if x.dim() < 1:
        raise KernelArgumentError(f"{what}: x must have a channel axis, got shape {tuple(x.shape)}")
    c = x.shape[-1]
    out, total, flags = epilogue_args(what, x, c, tuple(x.shape[:-1]), scale, shift, act, residual, residual_scale,
                                      act2, out, out_channel_offset)
    rows = x.numel() // c if c else 0
    tile = filled_tile_2d(rows, c, x.device, gpu_elems=4096, max_cols=128)
    dummy = x
    args = (x, out, scale if scale is not None else dummy, shift if shift is not None else dummy,
            residual if residual is not None else dummy, rows, c, total, out_channel_offset,
            float(residual_scale))
    constexprs = {**flags, **tile.constexprs()}
    grid = (triton.cdiv(rows, tile.BLOCK_R), triton.cdiv(c, tile.BLOCK_C))
    KernelLaunch(what, affine_act_kernel, args, constexprs, grid, tile.num_warps, 1).run()
    return out


def _rank6(shape, strides):
    pad = MAX_RANK - len(shape)
    return (1,) * pad + tuple(shape), (0,) * pad + tuple(strides)


def binary(op, a, b, name="binary") -> torch.Tensor:
    """Elementwise a (op) b with NumPy broadcasting; op in add/sub/mul/div/maximum/minimum.
    `b` (or `a`) may be a Python number; tensors must share dtype and device."""
    what = f"{name} ({op})"
    if op not in BINARY_CODES:
        raise KernelArgumentError(f"{what}: unknown binary op; expected one of {sorted(BINARY_CODES)}")
    if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
        raise KernelArgumentError(f"{what}: at least one operand must be a tensor")
    ref = a if isinstance(a, torch.Tensor) else b
    a = a if isinstance(a, torch.Tensor) else torch.tensor(float(a), dtype=ref.dtype, device=ref.device)
    b = b if isinstance(b, torch.Tensor) else torch.tensor(float(b), dtype=ref.dtype, device=ref.device)
    check_tensor(a, f"{what}: a", contiguous=False)
    check_tensor(b, f"{what}: b", dtype=a.dtype, device=a.device, contiguous=False)
    dtype_name(a, f"{what}: a")
    try:
        shape = torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        raise KernelArgumentError(f"{what}: shapes {tuple(a.shape)} and {tuple(b.shape)} do not broadcast") from None
    if len(shape) > MAX_RANK:
        raise KernelArgumentError(f"{what}: rank {len(shape)} > {MAX_RANK} (shape {tuple(shape)})")
    out = alloc(shape, a.dtype, a.device)
    numel = out.numel()
    dims, a_strides = _rank6(shape, a.expand(shape).stride())
    _, b_strides = _rank6(shape, b.expand(shape).stride())
    block, warps = cfg.tile_1d(numel)
    args = (a, b, out, numel, *dims[1:], *a_strides, *b_strides)
    KernelLaunch(what, binary_kernel, args, {"OP": BINARY_CODES[op], "BLOCK": block},
                 (triton.cdiv(numel, block),), warps, 1).run()
    return out


def unary(op, x, name="unary") -> torch.Tensor:
    """Elementwise relu / relu6 / sigmoid / tanh / neg (fp32 math, result in x's dtype)."""
    what = f"{name} ({op})"
    code = act_code(op, what, UNARY_CODES)
    check_activation(x, what)
    out = alloc(x.shape, x.dtype, x.device)
    numel = x.numel()
    block, warps = cfg.tile_1d(numel)
    KernelLaunch(what, unary_kernel, (x, out, numel), {"OP": code, "BLOCK": block},
                 (triton.cdiv(numel, block),), warps, 1).run()
    return out


def copy_channels(x, out, out_channel_offset, name="copy_channels") -> torch.Tensor:
    """Copy x[..., C] into out[..., offset:offset+C] (a wider buffer with equal leading dims)."""
    what = name
    check_activation(x, what)
    if x.dim() < 1:
        raise KernelArgumentError(f"{what}: x must have a channel axis, got shape {tuple(x.shape)}")
    c = x.shape[-1]
    total = check_output(out, f"{what}: out", tuple(x.shape[:-1]), c, out_channel_offset, x.dtype, x.device)
    rows = x.numel() // c if c else 0
    tile = filled_tile_2d(rows, c, x.device, gpu_elems=4096, max_cols=128)
    grid = (triton.cdiv(rows, tile.BLOCK_R), triton.cdiv(c, tile.BLOCK_C))
    KernelLaunch(what, copy_channels_kernel, (x, out, rows, c, total, out_channel_offset),
                 tile.constexprs(), grid, tile.num_warps, 1).run()
    return out


def pad(x, paddings, value=0.0, name="pad") -> torch.Tensor:
    """Constant padding: `paddings` gives (before, after) >= 0 per axis of x (rank <= 6)."""
    what = name
    check_activation(x, what)
    try:
        pads = [(int(b), int(a)) for b, a in paddings]
    except (TypeError, ValueError):
        raise KernelArgumentError(f"{what}: paddings must be ((before, after), ...) per axis, got {paddings!r}") from None
    if len(pads) != x.dim() or any(b < 0 or a < 0 for b, a in pads):
        raise KernelArgumentError(f"{what}: paddings {paddings!r} must give non-negative (before, after) "
                                  f"for each of the {x.dim()} axes of x {tuple(x.shape)}")
    if x.dim() > MAX_RANK or x.dim() < 1:
        raise KernelArgumentError(f"{what}: rank {x.dim()} not in 1..{MAX_RANK} (shape {tuple(x.shape)})")
    out_shape = tuple(d + b + a for d, (b, a) in zip(x.shape, pads))
    out = alloc(out_shape, x.dtype, x.device)
    numel = out.numel()
    k = MAX_RANK - x.dim()
    o_dims = (1,) * k + out_shape
    i_dims = (1,) * k + tuple(x.shape)
    befores = (0,) * k + tuple(b for b, _ in pads)
    block, warps = cfg.tile_1d(numel)
    args = (x, out, numel, float(value), *o_dims[1:], *i_dims, *befores)
    KernelLaunch(what, pad_kernel, args, {"BLOCK": block}, (triton.cdiv(numel, block),), warps, 1).run()
    return out
