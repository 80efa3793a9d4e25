"""Shared helpers of the kernel tests: device, dtypes, array conversion, epilogue draws."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import strategies as st

import slimtriton.kernels  # noqa: F401  (sets TRITON_INTERPRET=1 without a GPU)
from slimtriton.reference import numpy_ops as R

ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"
from slimtriton.kernels.common import TORCH_COMPUTE_DTYPES
# Stock Triton's interpreter multiplies bf16 tl.dot operands as raw integers and truncates
# fp32->bf16 casts; slimtriton.kernels.config patches both (decode to fp32, round to nearest
# even, as a GPU does), so bf16 runs here too. That checks our kernels' bf16 logic (casts,
# masks, epilogue); what a GPU's bf16 tensor cores compute is verified only on a GPU.
DTYPES = ["float32", "float16", "bfloat16"]
ACTS = ["none", "relu", "relu6"]
SENTINEL = 7.25  # value of the channels of a wider `out` buffer a kernel must not touch


def rounded(a: np.ndarray, dtype: str) -> np.ndarray:
    """`a` rounded to `dtype` (the values the kernel actually sees), as float64."""
    return torch.tensor(a, dtype=TORCH_COMPUTE_DTYPES[dtype]).double().numpy()


def dev(a: np.ndarray, dtype: str) -> torch.Tensor:
    return torch.tensor(a, dtype=TORCH_COMPUTE_DTYPES[dtype], device=DEVICE)


def vec(a: np.ndarray) -> torch.Tensor:
    """Per-channel vectors are passed as float32."""
    return torch.tensor(a, dtype=torch.float32, device=DEVICE)


@st.composite
def epilogues(draw):
    """A random epilogue: flags for scale / shift / residual and the two activations."""
    return {
        "scale": draw(st.booleans()), "shift": draw(st.booleans()),
        "act": draw(st.sampled_from(ACTS)), "residual": draw(st.booleans()),
        "residual_scale": draw(st.sampled_from([1.0, 0.5, -1.25])),
        "act2": draw(st.sampled_from(ACTS)),
    }


def epilogue_kwargs(ep: dict, cout: int, out_lead: tuple, dtype: str, rng):
    """(kernel kwargs, reference function acc -> expected) for an epilogue draw."""
    scale = rng.uniform(0.5, 1.5, cout) if ep["scale"] else None
    shift = rng.standard_normal(cout) if ep["shift"] else None
    residual = rounded(rng.standard_normal((*out_lead, cout)), dtype) if ep["residual"] else None
    kwargs = {"scale": None if scale is None else vec(scale),
              "shift": None if shift is None else vec(shift), "act": ep["act"]}
    if residual is not None:
        kwargs.update(residual=dev(residual, dtype), residual_scale=ep["residual_scale"], act2=ep["act2"])

    def reference(acc):
        s = np.ones(cout) if scale is None else rounded(scale, "float32")
        b = np.zeros(cout) if shift is None else rounded(shift, "float32")
        return R.epilogue(acc, s, b, ep["act"], residual, ep["residual_scale"], ep["act2"])
    return kwargs, reference


def wide_out(lead: tuple, cout: int, offset_extra: tuple[int, int], dtype: str):
    """A wider NHWC buffer filled with SENTINEL: `before` channels, the result, `after`."""
    before, after = offset_extra
    return torch.full((*lead, before + cout + after), SENTINEL, dtype=TORCH_COMPUTE_DTYPES[dtype], device=DEVICE)


def check_untouched(out: torch.Tensor, offset: int, cout: int) -> None:
    o = out.detach().float().cpu().numpy()
    rest = np.concatenate([o[..., :offset], o[..., offset + cout:]], axis=-1)
    assert np.all(rest == SENTINEL), "channels outside the output slice were modified"
