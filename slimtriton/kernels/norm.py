"""Reductions along one axis: softmax and unit_norm.

Algorithm: x is viewed as [outer, L, inner] (the reduced axis has length L and stride
`inner`); a "line" is one (outer, inner) pair, at base offset o*L*inner + i. A program
takes BLOCK_R lines and walks L in BLOCK_C chunks twice:

    softmax     pass 1: running max m and running sum s = sum exp(x - m), rescaled when
                m grows (online softmax), and a count of NaN / +inf cells;
                pass 2: out = exp(x - m) / s
    unit_norm   pass 1: ss = sum x^2; pass 2: out = x / sqrt(epsilon + ss)

fp32 math; the result has x's dtype.

Non-finite values follow the reference (x - max(x), exp, normalise, in float64): a line that
holds a NaN or a +inf, or whose cells are all -inf, is all NaN (max is NaN, or inf - inf /
-inf - -inf is NaN); otherwise a -inf cell gives 0. The kernel counts NaN / +inf cells in
pass 1 and sets such lines' max to NaN, so pass 2 writes NaN everywhere on them.
unit_norm needs no special case: x * (1 / sqrt(eps + sum x^2)) is NaN on a line with a NaN,
and on a line with an inf it is NaN at the inf and 0 elsewhere, as the reference.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import config as cfg
from .common import KernelArgumentError, check_activation
from .launch import KernelLaunch, alloc


@triton.jit
def line_reduce_kernel(
    x_ptr, out_ptr, LINES, L, INNER, epsilon,
    IS_SOFTMAX: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    lines = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    r_mask = lines < LINES
    base = (lines // INNER) * (L * INNER) + lines % INNER
    if IS_SOFTMAX:
        m = tl.full((BLOCK_R,), float("-inf"), dtype=tl.float32)
        s = tl.zeros((BLOCK_R,), dtype=tl.float32)
        n_bad = tl.zeros((BLOCK_R,), dtype=tl.int32)  # NaN or +inf cells of the line
        for l0 in range(0, L, BLOCK_C):
            ll = l0 + tl.arange(0, BLOCK_C)
            mask = r_mask[:, None] & (ll < L)[None, :]
            v = tl.load(x_ptr + base[:, None] + ll[None, :] * INNER, mask=mask, other=float("-inf"))
            v = v.to(tl.float32)
            n_bad += tl.sum(((v != v) | (v == float("inf"))).to(tl.int32), axis=1)
            m_new = tl.maximum(m, tl.max(v, axis=1))
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # masked-out rows stay finite
            s = s * tl.exp(m - m_safe) + tl.sum(tl.exp(v - m_safe[:, None]), axis=1)
            m = m_new
        # the reference's NaN lines: a NaN or +inf cell, or every cell -inf (-inf - -inf)
        m = tl.where((n_bad > 0) | (m == float("-inf")), float("nan"), m)
        inv = 1.0 / tl.where(s > 0.0, s, 1.0)  # s >= 1 on every line that is not NaN
    else:
        ss = tl.zeros((BLOCK_R,), dtype=tl.float32)
        for l0 in range(0, L, BLOCK_C):
            ll = l0 + tl.arange(0, BLOCK_C)
            mask = r_mask[:, None] & (ll < L)[None, :]
            v = tl.load(x_ptr + base[:, None] + ll[None, :] * INNER, mask=mask, other=0.0).to(tl.float32)
            ss += tl.sum(v * v, axis=1)
        inv = tl.where(r_mask, 1.0 / tl.sqrt(epsilon + ss), 0.0)
    for l0 in range(0, L, BLOCK_C):
        ll = l0 + tl.arange(0, BLOCK_C)
        mask = r_mask[:, None] & (ll < L)[None, :]
        offs = base[:, None] + ll[None, :] * INNER
        v = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        if IS_SOFTMAX:
            y = tl.exp(v - m[:, None]) * inv[:, None]
        else:
            y = v * inv[:, None]
        tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=mask)


def _line_reduce(what, x, axis, epsilon, is_softmax) -> torch.Tensor:
    check_activation(x, what)
    if x.dim() < 1:
        raise KernelArgumentError(f"{what}: x must have at least one axis, got shape {tuple(x.shape)}")
    if not -x.dim() <= axis < x.dim():
        raise KernelArgumentError(f"{what}: axis {axis} out of range for shape {tuple(x.shape)}")
    axis %= x.dim()
    length = x.shape[axis]
    inner = 1
    for d in x.shape[axis + 1:]:
        inner *= d
    lines = x.numel() // length if length else 0
    out = alloc(x.shape, x.dtype, x.device)
    # on a GPU, a strided axis (inner > 1) keeps few columns: its loads are not contiguous
    tile = cfg.tile_2d(lines, length, gpu_elems=2048, max_cols=1024 if inner == 1 else 16)
    grid = (triton.cdiv(lines, tile.BLOCK_R),)
    args = (x, out, lines, length, inner, float(epsilon))
    KernelLaunch(what, line_reduce_kernel, args, {"IS_SOFTMAX": is_softmax, **tile.constexprs()}, grid,
                 tile.num_warps, 1, kind="reduction").run()
    return out


def softmax(x, axis=-1, name="softmax") -> torch.Tensor:
    """Softmax along `axis` (default: the last), numerically stable, fp32 math. A line with a
    NaN or +inf, or all -inf, comes out all NaN (as the reference); -inf cells otherwise give 0."""
    return _line_reduce(name, x, axis, 0.0, True)


def unit_norm(x, axis, epsilon, name="unit_norm") -> torch.Tensor:
    """x / sqrt(epsilon + sum(x^2, axis))."""
    if epsilon < 0:
        raise KernelArgumentError(f"{name}: epsilon {epsilon} must be >= 0")
    return _line_reduce(name, x, axis, epsilon, False)
