"""Triton kernels and their host wrappers (torch tensors in, torch tensors out, NHWC).

Every wrapper checks shapes / dtypes / devices (errors name the layer `name`, the argument
and the shapes), allocates its output (NaN-filled in poison mode), and launches through one
`KernelLaunch` description, which the static audit (`slimtriton.kernels.audit`) compiles
exactly as it runs. Activations are float32 / float16 / bfloat16; accumulation is fp32;
per-channel vectors (scale, shift, in_scale, in_shift) may be any float dtype. Activation
names: 'none', 'relu', 'relu6'.

Non-finite values behave as in the NumPy reference (and torch, TF): relu / relu6 / maximum /
minimum / max_pool keep NaN (a NaN in a max-pool window gives NaN; padded cells are still
ignored), sums and products follow IEEE arithmetic (inf - inf is NaN). softmax: a line that
holds a NaN or a +inf, or whose cells are all -inf, is all NaN (the reference's x - max(x));
otherwise -inf cells give 0.

Weights are packed once (at compile time):

    prepack_conv2d(w[kh,kw,cin,cout], dtype=None, device=None) -> PackedWeight
    prepack_conv2d_transpose(w[kh,kw,cout,cin], dtype=None, device=None) -> PackedWeight
    prepack_matmul(w[K,N], dtype=None, device=None) -> PackedWeight
    prepack_depthwise(w[kh,kw,cin,dm], dtype=None, device=None) -> PackedWeight

GEMM-shaped kernels (one implicit-GEMM kernel; `w_packed` may also be a raw array, packed
on the fly). The epilogue computes `act2(residual + residual_scale * act(acc*scale + shift))`
(residual part only when `residual` is given) on the fp32 accumulator, and the result
goes to `out[..., out_channel_offset : out_channel_offset + Cout]` of a wider buffer when
`out` is given (a concat without a copy; other channels untouched):

    conv2d(x, w_packed, *, strides=(1,1), padding=((0,0),(0,0)), dilations=(1,1),
           scale=None, shift=None, act='none', residual=None, residual_scale=1.0, act2='none',
           in_scale=None, in_shift=None, prologue_act='none', out=None, out_channel_offset=0,
           precision='ieee', name='conv2d')
        prologue: each input value becomes prologue_act(x*in_scale[ci] + in_shift[ci]);
        padded positions stay zero. precision 'ieee' | 'tf32' (float32 only).
    conv2d_transpose(x, w_packed, *, strides, pad_before, output_hw, <epilogue>, out=None,
           out_channel_offset=0, precision='ieee', name=...)
    matmul(x[..., K], w_packed, *, <epilogue>, out=None, out_channel_offset=0, precision='ieee', name=...)
    depthwise_conv2d(x, w_packed, *, strides, padding, dilations, <epilogue>, <prologue>,
           out=None, out_channel_offset=0, name=...)          # out channel c*dm + m
    mean_matmul(x[N,H,W,C], w_packed, *, scale, shift, act, in_scale, in_shift, prologue_act,
           keepdims=False, out=None, out_channel_offset=0, precision='ieee', name=...)
        act(mean_HW(prologue(x)) @ w * scale + shift) -> [N, Cout] (or [N,1,1,Cout]) (fusion
        pass 7), two launches: the mean writes the pooled [N, C] (compute dtype, the only
        intermediate), then a GEMM with narrow column tiles and deep pipelined K steps streams
        w once and applies the epilogue. w: prepack_matmul or a 1x1 prepack_conv2d.
    conv2d_routed(x, w_packed, *, destinations=[(out | None, out_channel_offset, channels), ...],
           strides, padding, dilations, scale, shift, act, precision, name) -> [tensors]
        one GEMM whose consecutive column ranges go to up to 4 destinations (sibling convs merged
        by the horizontal fusion pass: each branch's buffer or concat slice; no residual)
    conv2d(..., residual_strides=(s_h, s_w)) reads the residual at [n, oh*s_h, ow*s_w] of an
        [N, RH, RW, Cout] tensor (ResNet's subsample(x, s) shortcut without its kernel).

Other kernels:

    max_pool2d(x, ksize, strides, padding, out=None, out_channel_offset=0, name=...)
    avg_pool2d(x, ksize, strides, padding, out=None, out_channel_offset=0, name=...)
        padding explicit ((t,b),(l,r)); padded cells are ignored (avg divides by real cells)
    window_conv2d(x, w_packed_1x1, *, window, ksize, strides, padding, dilations, win_w, win_scale,
                  win_shift, win_act, scale, shift, act, out, out_channel_offset, precision, name)
        a 1x1 conv of avg_pool(x) or of win_act(depthwise(x)*win_scale + win_shift), the window
        computed in the GEMM's A load (FUSED_WINDOW_CONV2D; the windowed tensor is never stored)
    global_mean(x, keepdims=True, out=None, out_channel_offset=0, name=...)   # mean over H, W
    softmax(x, axis=-1, name=...)                   # NaN lines: see "Non-finite values" above
    unit_norm(x, axis, epsilon, name=...)                      # x / sqrt(eps + sum(x^2, axis))
    affine_act(x, scale, shift, act='none', residual=None, residual_scale=1.0, act2='none',
               out=None, out_channel_offset=0, name=...)       # FUSED_ELEMENTWISE over last axis
    binary(op, a, b, name=...)     # op in add/sub/mul/div/maximum/minimum, numpy broadcasting
    unary(op, x, name=...)         # op in relu/relu6/sigmoid/tanh/neg
    copy_channels(x, out, out_channel_offset, name=...)        # concat of inputs not written in place
    pad(x, paddings, value=0.0, name=...)                      # constant pad, ((before, after),) per axis

Infrastructure: `set_poison(bool)` / env `SLIMTRITON_POISON=1`; `record_launches(execute=True)`
(context manager yielding the list of `KernelLaunch`es made inside it; `execute=False` with
`device='meta'` tensors enumerates launches without running them); `KernelArgumentError`.

Static audit (`slimtriton.kernels.audit`): `audit_launches(launches, arch=90, dtype=None) -> [AuditRow]`
compiles each distinct launch specialization for sm_`arch` in a subprocess (interpreter off)
and reads registers / spills / shared memory / HMMA-HGMMA counts from the cubin;
`print_audit_table(rows) -> bool` (True when no GEMM kernel spills or, in 16-bit, lacks
tensor cores); `conv_launches(shapes, dtype)`, `resnet_v1_50_conv_shapes(image_size, batch)`,
`parse_shape_spec('N,H,W,Cin,Cout,KH,KW,stride[,dilation]')`.

Tiles (`slimtriton.kernels.config`): interpreter = one large tile; GPU = autotuned over a
small space, winners cached in `$SLIMTRITON_CACHE_DIR/autotune.json` (default
`~/.cache/slimtriton`); `SLIMTRITON_AUTOTUNE=0` uses the cached winner or the default.

Without a CUDA device, `TRITON_INTERPRET=1` is set here (before any kernel is defined)
unless the variable is already set.
"""
from __future__ import annotations

import os

if "TRITON_INTERPRET" not in os.environ:
    import sys as _sys

    import torch as _torch

    if not _torch.cuda.is_available():
        if "triton" in _sys.modules:
            # triton's own @jit helpers (tl.cdiv, tl.sum, ...) were already built for a GPU;
            # kernels defined now would fail at their first launch.
            raise ImportError("slimtriton.kernels: no CUDA device, so the Triton interpreter is needed, but "
                              "triton was imported before TRITON_INTERPRET=1 could be set; import "
                              "slimtriton.kernels before triton, or set TRITON_INTERPRET=1 in the environment")
        os.environ["TRITON_INTERPRET"] = "1"

from .common import KernelArgumentError  # noqa: E402
from .config import interpreting  # noqa: E402
from .conv import conv2d, conv2d_routed, conv2d_transpose, matmul  # noqa: E402
from .depthwise import depthwise_conv2d  # noqa: E402
from .elementwise import affine_act, binary, copy_channels, pad, unary  # noqa: E402
from .launch import KernelLaunch, poison_enabled, record_launches, set_poison  # noqa: E402
from .mean_gemm import mean_matmul  # noqa: E402
from .norm import softmax, unit_norm  # noqa: E402
from .packing import (PackedWeight, prepack_conv2d, prepack_conv2d_transpose, prepack_depthwise,  # noqa: E402
                      prepack_matmul)
from .pool import avg_pool2d, global_mean, max_pool2d  # noqa: E402
from .prologue_gemm import window_conv2d  # noqa: E402

__all__ = [
    "KernelArgumentError", "KernelLaunch", "PackedWeight", "interpreting", "poison_enabled",
    "record_launches", "set_poison",
    "conv2d", "conv2d_routed", "conv2d_transpose", "matmul", "prepack_conv2d", "prepack_conv2d_transpose",
    "prepack_matmul", "depthwise_conv2d", "prepack_depthwise", "mean_matmul", "window_conv2d",
    "max_pool2d", "avg_pool2d", "global_mean", "softmax", "unit_norm",
    "affine_act", "binary", "unary", "copy_channels", "pad",
]
