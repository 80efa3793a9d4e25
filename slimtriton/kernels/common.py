"""Shared pieces of the kernels: activation codes, jit helpers, host-side argument checks."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..ir.node import COMPUTE_DTYPES
from ..ir.ops import Act, parse_act
from . import config as cfg
from .launch import alloc

# The activation constexpr of the kernels (`ACT`, `ACT2`, `PROLOGUE_ACT`, compared at compile
# time in `apply_act`): an int code per activation; leaky relu, which has a parameter, is the
# float -1 - alpha (<= -1 for a slope alpha >= 0), so its slope is a compile-time constant
# (one specialization per slope, as Inductor inlines it) and no kernel signature carries it.
ACT_CODES = {Act.NONE: 0, Act.RELU: 1, Act.RELU6: 2, Act.SIGMOID: 3, Act.TANH: 4, Act.ELU: 6, Act.SWISH: 7,
             Act.LEAKY_RELU: "-1 - alpha"}
# The unary kernel's ops beyond the activations (its OP constexpr shares apply_act's codes).
UNARY_CODES = {"neg": 5}

TORCH_COMPUTE_DTYPES = {name: getattr(torch, name) for name in COMPUTE_DTYPES}  # compute dtype name -> torch
DTYPE_NAMES = {v: k for k, v in TORCH_COMPUTE_DTYPES.items()}
PRECISIONS = ("ieee", "tf32")
INT32_LIMIT = 2**31 - 1


@triton.jit
def apply_act(x, ACT: tl.constexpr):
    """The activation of code ACT (ACT_CODES) on an fp32 block; neg (code 5) for the unary kernel.

    NaN propagates as in the reference (np.maximum / np.minimum), torch and TF: relu(NaN) and
    relu6(NaN) are NaN. Triton's default `tl.maximum` is the NaN-ignoring maxnum, which would
    turn a NaN (say an fp16 overflow inf - inf) into 0 and hide it; `propagate_nan=ALL`
    compiles to the NaN-propagating `max.NaN` / `min.NaN` on sm_80+."""
    if ACT == 1:
        x = tl.maximum(x, 0.0, propagate_nan=tl.PropagateNan.ALL)
    elif ACT == 2:
        x = tl.minimum(tl.maximum(x, 0.0, propagate_nan=tl.PropagateNan.ALL), 6.0,
                       propagate_nan=tl.PropagateNan.ALL)
    elif ACT == 3:
        x = 1.0 / (1.0 + tl.exp(-x))
    elif ACT == 4:
        # tanh(|x|) = (1 - e) / (1 + e), e = exp(-2|x|) <= 1 (no overflow); below 0.125
        # that cancels, so an odd Taylor polynomial (error < 1e-9 relative) is used there
        ax = tl.abs(x)
        e = tl.exp(-2.0 * ax)
        big = (1.0 - e) / (1.0 + e)
        x2 = x * x
        small = x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0))))
        x = tl.where(ax < 0.125, small, tl.where(x < 0.0, -big, big))
    elif ACT == 5:
        x = -x
    elif ACT == 6:
        # elu: x > 0 ? x : exp(x) - 1; above -0.125 exp(x) - 1 cancels, so a Taylor polynomial
        # (relative error < 1e-8) is used there; NaN fails x > 0 and stays NaN
        em1 = tl.exp(tl.where(x > 0.0, 0.0, x)) - 1.0  # not tl.minimum: it drops NaN
        small = x * (1.0 + x * (0.5 + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x * (1.0 / 120.0)))))
        x = tl.where(x > 0.0, x, tl.where(x > -0.125, small, em1))
    elif ACT == 7:
        # swish / silu: x * sigmoid(x); -inf gives -inf * 0 = NaN, as the reference
        x = x * (1.0 / (1.0 + tl.exp(-x)))
    elif ACT <= -1.0:
        # leaky relu with slope -1 - ACT: x > 0 ? x : slope * x (NaN stays NaN)
        x = tl.where(x > 0.0, x, x * (-1.0 - ACT))
    return x


@triton.jit
def masked_prologue(v, mask, in_scale, in_shift, HAS_PROLOGUE: tl.constexpr, PROLOGUE_ACT: tl.constexpr):
    """The prologue of a direct kernel on a loaded block `v`, in fp32: PROLOGUE_ACT(v*in_scale +
    in_shift) where `mask` (a loaded element), 0 elsewhere -- padding stays zero after the
    prologue, as in the reference. Without HAS_PROLOGUE, v in fp32."""
    v = v.to(tl.float32)
    if HAS_PROLOGUE:
        v = tl.where(mask, apply_act(v * in_scale + in_shift, PROLOGUE_ACT), 0.0)
    return v


@triton.jit
def grouped_tile(pid, M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    """(pid_m, pid_n) of program `pid` in GROUP_M-row groups: consecutive programs share weight
    columns and input rows in L2 (the Triton matmul tutorial's ordering)."""
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    in_group = GROUP_M * num_pid_n
    first_m = (pid // in_group) * GROUP_M
    group_rows = tl.minimum(num_pid_m - first_m, GROUP_M)
    return first_m + (pid % in_group) % group_rows, (pid % in_group) // group_rows


@triton.jit
def pixel_of_row(offs_m, OH, OW):
    """(n, oh, ow) of the NHWC output rows `offs_m` (m = (n*OH + oh)*OW + ow)."""
    ow = offs_m % OW
    t = offs_m // OW
    return t // OH, t % OH, ow


@triton.jit
def tap_coords(oh, ow, kh, kw, stride_h, stride_w, pad_t, pad_l, dil_h, dil_w):
    """(ih, iw): the input row and column that output pixel (oh, ow) reads at kernel tap
    (kh, kw) of a window with strides, padding before (pad_t, pad_l) and dilations,

        ih = oh*stride_h - pad_t + kh*dil_h,   iw = ow*stride_w - pad_l + kw*dil_w

    (outside the image, `in_image`, the tap reads padding). The one statement of the conv /
    depthwise / pool / window geometry in the kernels; a kernel that hoists the tap-(0, 0)
    coordinates out of its loop calls it with kh = kw = 0."""
    return oh * stride_h - pad_t + kh * dil_h, ow * stride_w - pad_l + kw * dil_w


@triton.jit
def in_image(ih, iw, H, W):
    """Whether input coordinates (ih, iw) lie in the H x W image."""
    return (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)


class KernelArgumentError(ValueError):
    """A kernel wrapper was called with arguments it cannot run (shape, dtype, device)."""


def act_code(act, what: str, extra_codes=None) -> int | float:
    """The ACT constexpr of an activation value ("relu", ("leaky_relu", 0.2), an `Act`; see
    ACT_CODES); `extra_codes`: names beyond the activations a kernel also takes (UNARY_CODES)."""
    if extra_codes and isinstance(act, str) and act in extra_codes:
        return extra_codes[act]
    try:
        kind, param = parse_act(act, what)
    except ValueError as e:
        raise KernelArgumentError(str(e)) from None
    if kind is Act.LEAKY_RELU:
        if not param >= 0.0:
            raise KernelArgumentError(f"{what}: leaky_relu slope {param} must be >= 0 for the kernels")
        return -1.0 - param
    return ACT_CODES[kind]


def dtype_name(t: torch.Tensor, what: str) -> str:
    if t.dtype not in DTYPE_NAMES:
        raise KernelArgumentError(f"{what}: dtype {t.dtype} is not supported; "
                                  f"expected one of {sorted(TORCH_COMPUTE_DTYPES)}")
    return DTYPE_NAMES[t.dtype]


def check_tensor(t, what: str, *, ndim: int | None = None, shape=None, dtype=None,
                 device=None, contiguous: bool = True) -> torch.Tensor:
    """Validate one tensor argument; every message names the argument and the shapes."""
    if not isinstance(t, torch.Tensor):
        raise KernelArgumentError(f"{what}: expected a torch.Tensor, got {type(t).__name__}")
    if ndim is not None and t.dim() != ndim:
        raise KernelArgumentError(f"{what}: expected {ndim} dims, got shape {tuple(t.shape)}")
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise KernelArgumentError(f"{what}: expected shape {tuple(shape)}, got {tuple(t.shape)}")
    if dtype is not None and t.dtype != dtype:
        raise KernelArgumentError(f"{what}: expected dtype {dtype}, got {t.dtype} (shape {tuple(t.shape)})")
    if device is not None and t.device != torch.device(device):
        raise KernelArgumentError(f"{what}: on device {t.device}, expected {device} "
                                  f"(all tensors of a launch must share one device)")
    if contiguous and not t.is_contiguous():
        raise KernelArgumentError(f"{what}: must be contiguous (shape {tuple(t.shape)}, "
                                  f"strides {t.stride()})")
    if t.numel() > INT32_LIMIT:
        raise KernelArgumentError(f"{what}: {t.numel()} elements exceed the int32 indexing "
                                  f"limit of the kernels (shape {tuple(t.shape)})")
    return t


def check_activation(x, what: str, ndim: int | None = None) -> str:
    """The activation `x` of layer `what`: a contiguous tensor of a supported dtype (see
    `check_tensor`); returns its dtype name."""
    check_tensor(x, f"{what}: x", ndim=ndim)
    return dtype_name(x, f"{what}: x")


def check_channel_vector(v, what: str, length: int, device) -> torch.Tensor | None:
    """Per-channel scale/shift vectors: any float dtype (loaded as fp32), shape [length]."""
    if v is None:
        return None
    check_tensor(v, what, ndim=1, device=device)
    if v.shape[0] != length:
        raise KernelArgumentError(f"{what}: expected {length} channels, got shape {tuple(v.shape)}")
    if not v.dtype.is_floating_point:
        raise KernelArgumentError(f"{what}: expected a float tensor, got {v.dtype}")
    return v


def check_output(out, what: str, lead_shape, channels: int, offset: int, dtype, device) -> int:
    """Validate an `out` buffer receiving `channels` channels at `offset` of its last axis;
    returns its total channel count."""
    check_tensor(out, what, ndim=len(lead_shape) + 1, dtype=dtype, device=device)
    if tuple(out.shape[:-1]) != tuple(lead_shape):
        raise KernelArgumentError(f"{what}: leading dims {tuple(out.shape[:-1])} do not match the "
                                  f"result's {tuple(lead_shape)} (out shape {tuple(out.shape)})")
    total = out.shape[-1]
    if offset < 0 or offset + channels > total:
        raise KernelArgumentError(f"{what}: channel slice [{offset}, {offset + channels}) does not fit "
                                  f"in {total} channels (out shape {tuple(out.shape)})")
    return total


def output_buffer(out, what: str, x: torch.Tensor, lead_shape, channels: int, offset: int):
    """(out, its total channel count): a new [*lead_shape, channels] tensor of x's dtype and
    device (NaN-filled in poison mode) when `out` is None, else the checked `out` buffer
    receiving `channels` channels at `offset` (see `check_output`)."""
    if out is None:
        if offset != 0:
            raise KernelArgumentError(f"{what}: out_channel_offset={offset} needs an `out` buffer")
        return alloc((*lead_shape, channels), x.dtype, x.device), channels
    return out, check_output(out, f"{what}: out", lead_shape, channels, offset, x.dtype, x.device)


def check_precision(precision, what: str) -> None:
    if precision not in PRECISIONS:
        raise KernelArgumentError(f"{what}: precision {precision!r} not in {PRECISIONS}")


def pair(v, what: str) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    try:
        a, b = v
        return (int(a), int(b))
    except (TypeError, ValueError):
        raise KernelArgumentError(f"{what}: expected an int or a pair of ints, got {v!r}") from None


def padding_pairs(padding, what: str) -> tuple[tuple[int, int], tuple[int, int]]:
    try:
        (t, b), (l, r) = padding
        out = ((int(t), int(b)), (int(l), int(r)))
    except (TypeError, ValueError):
        raise KernelArgumentError(f"{what}: padding must be explicit ((top, bottom), (left, right)), "
                                  f"got {padding!r}") from None
    if min(out[0] + out[1]) < 0:
        raise KernelArgumentError(f"{what}: negative padding {padding!r}")
    return out


def check_prologue(what, x, in_scale, in_shift, prologue_act) -> None:
    """The prologue arguments of layer `what`: per-input-channel in_scale / in_shift (both or
    neither) and prologue_act (only with them)."""
    if (in_scale is None) != (in_shift is None):
        raise KernelArgumentError(f"{what}: in_scale and in_shift must be given together")
    if in_scale is None and prologue_act != "none":
        raise KernelArgumentError(f"{what}: prologue_act={prologue_act!r} needs in_scale/in_shift")
    check_channel_vector(in_scale, f"{what}: in_scale", x.shape[-1], x.device)
    check_channel_vector(in_shift, f"{what}: in_shift", x.shape[-1], x.device)


def conv_output_geometry(what, x, kh, kw, strides, padding, dilations):
    """Checked conv geometry shared by conv2d, depthwise_conv2d and window_conv2d:
    ((sh, sw), (dh, dw), (pt, pl), (oh, ow)); an empty output is an error naming the shapes."""
    (sh, sw), (dh, dw) = pair(strides, f"{what}: strides"), pair(dilations, f"{what}: dilations")
    if min(sh, sw, dh, dw) < 1:
        raise KernelArgumentError(f"{what}: strides {strides} and dilations {dilations} must be >= 1")
    (pt, pb), (pl, pr) = padding_pairs(padding, what)
    h, w = x.shape[1], x.shape[2]
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    if oh < 1 or ow < 1:
        raise KernelArgumentError(f"{what}: input {tuple(x.shape)} with kernel {kh}x{kw}, padding "
                                  f"{padding}, dilations {(dh, dw)} gives an empty output {oh}x{ow}")
    return (sh, sw), (dh, dw), (pt, pl), (oh, ow)


# ---------------------------------------------------------------------------------------
# Grid filling of the direct (non-GEMM) kernels.

H100_SMS = 132  # the SM count assumed when no CUDA device is visible (audits, gpu_tiles() tests)


def sm_count(device=None) -> int:
    """Streaming multiprocessors of `device` (a CUDA device), else of an H100 (132)."""
    if device is not None and torch.device(device).type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_properties(torch.device(device)).multi_processor_count
    return H100_SMS


def filled_tile_2d(rows: int, cols: int, device=None, *, gpu_elems: int = 2048, max_cols: int = 64,
                   min_cols: int = 16):
    """`config.tile_2d`, shrunk on a GPU until the grid has at least one CTA per SM.

    A direct kernel (pool, depthwise, mean) is latency-bound at batch 1: a 7x7x1024 layer in
    32x64 tiles is 32 CTAs on 132 SMs, so most of the chip idles while those wait on memory.
    Rows are halved first (down to 4), then channels (down to `min_cols`: 16 channels are one
    32-byte sector in 16-bit), then rows again (down to 1); warps follow the tile size
    (one warp per 512 elements, 1..4)."""
    tile = cfg.tile_2d(rows, cols, gpu_elems=gpu_elems, max_cols=max_cols)
    if not cfg.gpu_tiles_active():
        return tile
    r, c = tile.BLOCK_R, tile.BLOCK_C
    target = sm_count(device)

    def ctas(r, c):
        return -(-rows // r) * -(-cols // c)
    while ctas(r, c) < target:
        if r > 4:
            r //= 2
        elif c > min_cols:
            c //= 2
        elif r > 1:
            r //= 2
        else:
            break
    return cfg.Tile2D(r, c, max(1, min(4, (r * c) // 512)))
