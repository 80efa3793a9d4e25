"""Pass 5b: an average pool or a depthwise conv feeding a 1x1 conv -> the 1x1 conv's A-operand load.

    FUSED_CONV2D 1x1 (stride 1, no padding, no prologue / residual)
        of AVG_POOL(x)                          (Inception Branch_3: avg_pool 3x3 s1 SAME, 1x1 conv)
        or FUSED_DEPTHWISE_CONV2D(x) dm=1, act  (MobileNet: depthwise 3x3 + BN + ReLU6, pointwise conv)
    -> FUSED_WINDOW_CONV2D(x, ...)   window = "avg_pool" / "depthwise"   (fused_ops.md)

The window's output (the pooled / depthwise tensor) is then never written: the GEMM computes it
per BLOCK_K chunk of channels while loading A (kernels.window_conv2d).

The rule, per layer (`decide`; a declined layer's reason is in the fusion log, compile(log=print)):
* bytes (the byte model of ir/cost.py, kernel_bytes): keeping the producer costs its kernel (read x and its
  parameters, write y) plus the 1x1 conv's read of y; fusing costs one read of x and the
  parameters. Fusing must save bytes (it does whenever y is read only by the 1x1 conv).
* recompute: each program of an output-channel tile recomputes the window for its rows, so the
  window (kh*kw multiply-adds per A element, on CUDA cores) is done ceil(Cout / BLOCK_N) times
  instead of once (BLOCK_N = WINDOW_BLOCK_N, the kernel's widest GPU tile). The extra
  kh*kw*(n_tiles - 1) FMAs per window element must not cost more than the 2 * 2 bytes (one
  16-bit write and one read of y) fusing saves per element: at most FMAS_PER_BYTE per byte, the
  H200's fp32 FMA rate over its DRAM bandwidth (33.5e12 FMA/s / 4.8e12 B/s ~ 7). Judged for
  16-bit activations, where a byte saved buys the fewest FMAs. For a 3x3 window: n_tiles <= 4,
  i.e. Cout <= 1024 -- every MobileNet v1 separable block fuses; a 3x3 depthwise feeding a
  2048-channel 1x1 conv would not.
A whole-image average pool (the global mean before the logits) is left to plan pass 7
(mean_gemm). A requested output, a producer with other consumers, a depth multiplier != 1 or a producer with
a prologue or residual keeps its own kernel (the pattern does not match).
"""
from __future__ import annotations

import math

from ..ir.cost import kernel_bytes, tensor_bytes
from ..ir.ops import Op
from .pattern import Pat, Rule

WINDOW_BLOCK_N = 256  # = kernels.prologue_gemm.WINDOW_GPU_BLOCK_N (tests check they agree)
FMAS_PER_BYTE = 7
BYTES_SAVED_PER_ELEMENT = 2 * 2  # one 16-bit write and one 16-bit read of the window's output


def _pointwise(conv) -> bool:
    a = conv.attrs
    return (conv.inputs[1].shape[:2] == (1, 1) and tuple(a["strides"]) == (1, 1)
            and tuple(map(tuple, a["padding"])) == ((0, 0), (0, 0)) and not a["prologue"] and not a["residual"]
            and a["act2"] == "none")


def _depthwise_window(d) -> bool:
    a = d.attrs
    return (d.op is Op.FUSED_DEPTHWISE_CONV2D and d.inputs[1].op is Op.VARIABLE and d.inputs[1].shape[3] == 1
            and not a["prologue"]
            and not a["residual"] and a["act2"] == "none")


def _pool_window(p) -> bool:
    """A local average pool; a whole-image one (a 1x1 output: the global mean) is plan pass 7's
    mean_gemm, which averages once per image instead of per output pixel."""
    return p.op is Op.AVG_POOL and len(p.shape) == 4 and tuple(p.shape[1:3]) != (1, 1)


def _recompute_taps(producer, conv) -> tuple[int, int]:
    """(taps per window element, N tiles of the fused GEMM)."""
    kh, kw = producer.attrs["ksize"] if producer.op is Op.AVG_POOL else producer.inputs[1].shape[:2]
    return kh * kw, math.ceil(conv.shape[-1] / WINDOW_BLOCK_N)


def window_bytes(producer, conv) -> tuple[int, int]:
    """The byte model of the module docstring: (keeping the producer's kernel, fusing)."""
    dtype = producer.dtype
    keep = kernel_bytes(producer.inputs, [producer], dtype) + tensor_bytes(producer.shape, dtype)
    fuse = kernel_bytes(producer.inputs, [], dtype)
    return keep, fuse


def decide(producer, conv) -> tuple[bool, str]:
    """(fuse?, why) for the 1x1 `conv` reading the window `producer` (only consumer)."""
    keep, fuse = window_bytes(producer, conv)
    taps, n_tiles = _recompute_taps(producer, conv)
    extra = taps * (n_tiles - 1)
    budget = FMAS_PER_BYTE * BYTES_SAVED_PER_ELEMENT
    if fuse >= keep:
        return False, f"declined: fusing moves {fuse} bytes, keeping the {producer.op.short} kernel {keep}"
    if extra > budget:
        return False, (f"declined: recompute {taps} taps x {n_tiles - 1} extra N tiles ({extra} FMA/element) > "
                       f"{budget} FMA per element saved (Cout {conv.shape[-1]})")
    return True, (f"fused: {keep - fuse} bytes saved ({keep} -> {fuse}), recompute {extra} FMA/element "
                  f"<= {budget} ({n_tiles} N tile(s))")


def _fuse(match, ctx):
    conv, producer = match["root"], match["p"]
    fuse, why = decide(producer, conv)
    if not fuse:
        return ctx.decline(why.removeprefix("declined: "))
    x = producer.inputs[0]
    attrs = dict(act=conv.attrs["act"], residual=False, residual_scale=1.0, act2="none")
    if producer.op is Op.AVG_POOL:
        pa = producer.attrs
        attrs.update(window="avg_pool", ksize=tuple(pa["ksize"]), win_strides=tuple(pa["strides"]),
                     win_padding=pa["padding"], win_dilations=(1, 1), win_act="none")
        extra = ()
    else:
        da = producer.attrs
        attrs.update(window="depthwise", ksize=tuple(producer.inputs[1].shape[:2]), win_strides=tuple(da["strides"]),
                     win_padding=da["padding"], win_dilations=tuple(da["dilations"]), win_act=da["act"])
        extra = producer.inputs[1:4]  # w_dw, scale, shift
    return ctx.node(Op.FUSED_WINDOW_CONV2D, (x,) + conv.inputs[1:4] + extra, attrs, conv.name)


_PRODUCER = Pat(frozenset({Op.AVG_POOL, Op.FUSED_DEPTHWISE_CONV2D}), name="p", one_use=True,
                where=lambda p: _pool_window(p) or _depthwise_window(p))
PATTERN = Pat(Op.FUSED_CONV2D, _PRODUCER, name="root", rest=True, where=_pointwise)
RULES = [Rule("window_into_1x1_prologue", PATTERN, _fuse)]

