"""NaN through the fused activations of the GEMM-shaped kernels (issue 10 item 1): a NaN
input pixel, or an fp16 overflow turned NaN, stays NaN through relu / relu6 in the conv
epilogue and prologue, as in the reference (np.maximum), torch and TF."""
from __future__ import annotations

import numpy as np
import pytest

from slimtriton import kernels as K
from slimtriton.reference import numpy_ops as R
from tests.helpers import assert_close_nonfinite

from .util import DTYPES, dev, rounded, vec


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ["relu", "relu6"])
def test_conv_relu_keeps_a_nan_pixel(dtype, act):
    """One NaN pixel under a 3x3 conv reaches a 3x3 patch of outputs in every channel (4 out
    channels: 36 NaNs); the epilogue's relu must not turn them into 0."""
    rng = np.random.default_rng(0)
    x = rounded(rng.standard_normal((1, 6, 6, 3)), dtype)
    x[0, 2, 3, 1] = np.nan
    w = rounded(rng.standard_normal((3, 3, 3, 4)) / 3, dtype)
    pad = ((1, 1), (1, 1))
    expected = R.epilogue(R.conv2d(x, w, (1, 1), pad, (1, 1)), np.ones(4), np.zeros(4), act)
    assert np.isnan(expected).sum() == 36
    got = K.conv2d(dev(x, dtype), K.prepack_conv2d(dev(w, dtype)), padding=pad, act=act)
    assert_close_nonfinite(got, expected, dtype, what=f"conv+{act}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_prologue_relu_keeps_nan(dtype):
    """The input prologue (ResNet v2's BN+ReLU folded into the next conv) keeps a NaN too."""
    rng = np.random.default_rng(1)
    x = rounded(rng.standard_normal((1, 5, 5, 4)), dtype)
    x[0, 0, 0, 2] = np.nan
    w = rounded(rng.standard_normal((1, 1, 4, 3)), dtype)
    a, b = rng.uniform(0.5, 1.5, 4), rng.standard_normal(4)
    expected = R.conv2d(R.prologue(x, rounded(a, "float32"), rounded(b, "float32"), "relu"), w)
    got = K.conv2d(dev(x, dtype), K.prepack_conv2d(dev(w, dtype)), in_scale=vec(a), in_shift=vec(b),
                   prologue_act="relu")
    assert_close_nonfinite(got, expected, dtype, what="conv prologue relu")


def test_float16_overflow_is_nan_not_zero_after_relu6():
    """An fp16 residual sum that overflows to +inf and meets -inf is NaN; relu6 keeps it
    (it came out as 0 before, with no sign of trouble)."""
    x = np.full((1, 1, 1, 2), 60000.0)
    w = np.ones((1, 1, 2, 1))
    res = np.full((1, 1, 1, 1), -np.inf)
    got = K.conv2d(dev(x, "float16"), K.prepack_conv2d(dev(w, "float16")), residual=dev(res, "float16"),
                   act="none", act2="relu6")
    # 120000 is +inf in float16 only once rounded; in fp32 the epilogue sees 120000 - inf = -inf -> 0
    expected = R.epilogue(R.conv2d(x, w), np.ones(1), np.zeros(1), "none", res, 1.0, "relu6")
    assert_close_nonfinite(got, expected, "float16")
    inf_in = K.conv2d(dev(np.full((1, 1, 1, 2), np.inf), "float16"), K.prepack_conv2d(dev(w, "float16")),
                      residual=dev(res, "float16"), act2="relu6")
    assert np.isnan(inf_in.float().numpy()).all()
