"""Weights packed once for the kernels, and the host-side checks of a packed weight.

    prepack_conv2d(w[KH, KW, Cin, Cout])            -> [KH*KW*Cin, Cout]  (row (kh*KW + kw)*Cin + ci)
    prepack_conv2d_transpose(w[KH, KW, Cout, Cin])  -> [KH*KW*Cin, Cout]
    prepack_matmul(w[K, N])                         -> [K, N]
    prepack_depthwise(w[KH, KW, Cin, dm])           -> [KH*KW, Cin*dm]    (column c*dm + m)

The GEMM weights (conv2d, conv2d_transpose, matmul) have their rows padded with zero columns
to a multiple of ROW_ALIGN elements (`PackedWeight.row_stride`): a 1001-class logits weight is
[K, 1008]. The kernels read their B tiles with that row stride and mask columns at it (the
padding is zero, and columns >= Cout are never stored), so every W row starts 16-byte aligned
and the compiler can see it: on sm_90 the B loads become cp.async copies (LDGSTS) that the
software pipeliner overlaps with the tensor cores, where 1001-wide rows gave 2-byte
synchronous loads (LDG). Triton infers alignment only from int arguments divisible by 16,
hence 16 elements, not the 8 that 16 bytes of fp16 would need (1000 -> 1008 too).

Every kernel wrapper takes a `PackedWeight` (or a raw array, packed on the fly) and checks it
with `check_packed` and `check_weight_input`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .common import TORCH_COMPUTE_DTYPES, KernelArgumentError, check_activation

ROW_ALIGN = 16  # GEMM weight rows are padded to a multiple of this many elements (see above)


@dataclass(frozen=True)
class PackedWeight:
    """A weight packed for a kernel. For conv2d / conv2d_transpose / matmul, `data` is a
    row-major [KH*KW*Cin, row_stride] matrix (row (kh*KW + kw)*Cin + ci) whose first Cout
    columns are the weight and the rest (up to a multiple of ROW_ALIGN) zero; for depthwise
    it is [KH*KW, Cin*dm]. `kind` names the layer type it was packed for."""
    kind: str
    data: torch.Tensor
    kh: int
    kw: int
    cin: int
    cout: int

    @property
    def dtype(self) -> torch.dtype:
        return self.data.dtype

    @property
    def device(self) -> torch.device:
        return self.data.device

    @property
    def row_stride(self) -> int:
        """Elements from one packed row to the next (>= cout; the kernels' `w_row_stride`)."""
        return self.data.shape[1]


def as_tensor(w, dtype, device, what: str) -> torch.Tensor:
    """`w` (numpy or torch) as a torch tensor of `dtype` (a torch dtype or a TORCH_COMPUTE_DTYPES name) on `device`."""
    if isinstance(w, np.ndarray):
        w = torch.from_numpy(np.ascontiguousarray(w))
    if not isinstance(w, torch.Tensor):
        raise KernelArgumentError(f"{what}: expected a numpy array or torch tensor, got {type(w).__name__}")
    if isinstance(dtype, str):
        if dtype not in TORCH_COMPUTE_DTYPES:
            raise KernelArgumentError(f"{what}: dtype {dtype!r} not in {sorted(TORCH_COMPUTE_DTYPES)}")
        dtype = TORCH_COMPUTE_DTYPES[dtype]
    return w.to(device=device if device is not None else w.device, dtype=dtype or w.dtype)


def aligned_rows(data: torch.Tensor) -> torch.Tensor:
    """The [rows, cols] matrix `data` as a contiguous [rows, cols rounded up to ROW_ALIGN]
    matrix, zero in the added columns."""
    rows, cols = data.shape
    stride = -(-cols // ROW_ALIGN) * ROW_ALIGN
    if stride == cols:
        return data.contiguous()
    padded = data.new_zeros((rows, stride))
    padded[:, :cols] = data
    return padded


def prepack_conv2d(w, dtype=None, device=None) -> PackedWeight:
    """Pack a conv2d weight w[KH, KW, Cin, Cout] (numpy or torch) into [KH*KW*Cin, Cout] (rows aligned)."""
    w = as_tensor(w, dtype, device, "prepack_conv2d: w")
    if w.dim() != 4:
        raise KernelArgumentError(f"prepack_conv2d: w must be [kh, kw, cin, cout], got shape {tuple(w.shape)}")
    kh, kw, cin, cout = w.shape
    return PackedWeight("conv2d", aligned_rows(w.reshape(kh * kw * cin, cout)), kh, kw, cin, cout)


def prepack_conv2d_transpose(w, dtype=None, device=None) -> PackedWeight:
    """Pack a conv2d_transpose weight w[KH, KW, Cout, Cin] into [KH*KW*Cin, Cout] (rows aligned)."""
    w = as_tensor(w, dtype, device, "prepack_conv2d_transpose: w")
    if w.dim() != 4:
        raise KernelArgumentError(f"prepack_conv2d_transpose: w must be [kh, kw, cout, cin], "
                                  f"got shape {tuple(w.shape)}")
    kh, kw, cout, cin = w.shape
    data = aligned_rows(w.permute(0, 1, 3, 2).reshape(kh * kw * cin, cout))
    return PackedWeight("conv2d_transpose", data, kh, kw, cin, cout)


def prepack_matmul(w, dtype=None, device=None) -> PackedWeight:
    """Pack a fully-connected weight w[K, N] (row-major, rows aligned)."""
    w = as_tensor(w, dtype, device, "prepack_matmul: w")
    if w.dim() != 2:
        raise KernelArgumentError(f"prepack_matmul: w must be [K, N], got shape {tuple(w.shape)}")
    k, n = w.shape
    return PackedWeight("matmul", aligned_rows(w), 1, 1, k, n)


def prepack_depthwise(w, dtype=None, device=None) -> PackedWeight:
    """Pack a depthwise weight w[KH, KW, Cin, dm] into [KH*KW, Cin*dm] (column c*dm + m)."""
    w = as_tensor(w, dtype, device, "prepack_depthwise: w")
    if w.dim() != 4:
        raise KernelArgumentError(f"prepack_depthwise: w must be [kh, kw, cin, dm], got shape {tuple(w.shape)}")
    kh, kw, cin, dm = w.shape
    return PackedWeight("depthwise", w.reshape(kh * kw, cin * dm).contiguous(), kh, kw, cin, cin * dm)


PREPACKS = {"conv2d": prepack_conv2d, "conv2d_transpose": prepack_conv2d_transpose, "matmul": prepack_matmul,
            "depthwise": prepack_depthwise}


def check_packed(w, kind: str, what: str) -> PackedWeight:
    """`w` as a weight packed for `kind` (a PREPACKS key): a PackedWeight of that kind, or an
    array packed now (convenience: compiled models pack once)."""
    if isinstance(w, PackedWeight):
        if w.kind != kind:
            raise KernelArgumentError(f"{what}: weight was packed for {w.kind}, not {kind}")
        rows = w.kh * w.kw * (1 if kind == "depthwise" else w.cin)
        if w.data.dim() != 2 or w.data.shape[0] != rows or w.row_stride < w.cout or not w.data.is_contiguous():
            raise KernelArgumentError(f"{what}: packed {kind} data of shape {tuple(w.data.shape)} (strides "
                                      f"{w.data.stride()}) is not a contiguous [{rows}, >= {w.cout}] matrix for a "
                                      f"{w.kh}x{w.kw}x{w.cin}x{w.cout} weight")
        return w
    if isinstance(w, (torch.Tensor, np.ndarray)):
        return PREPACKS[kind](w)
    raise KernelArgumentError(f"{what}: expected a PackedWeight (from prepack_{kind}) or an array, "
                              f"got {type(w).__name__}")


def check_weight_input(what, x, pw: PackedWeight) -> None:
    """x is a supported 4-d activation matching the packed weight's dtype, device and Cin."""
    check_activation(x, what, ndim=4)
    if pw.data.dtype != x.dtype:
        raise KernelArgumentError(f"{what}: weight dtype {pw.data.dtype} differs from x dtype {x.dtype}")
    if pw.data.device != x.device:
        raise KernelArgumentError(f"{what}: weight on {pw.data.device}, x on {x.device}")
    if x.shape[-1] != pw.cin:
        raise KernelArgumentError(f"{what}: x has {x.shape[-1]} channels (shape {tuple(x.shape)}) but the "
                                  f"weight expects Cin={pw.cin} (kernel {pw.kh}x{pw.kw}x{pw.cin}x{pw.cout})")
