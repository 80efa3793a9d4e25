"""conv2d / conv2d_transpose / matmul kernels against the NumPy reference (hypothesis sweeps)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from slimtriton import kernels as K
from slimtriton.reference import numpy_ops as R
from tests.helpers import assert_close

from .util import (ACTS, DEVICE, DTYPES, check_untouched, dev, epilogue_kwargs, epilogues,
                   rounded, vec, wide_out)

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def conv_cases(draw):
    kh, kw = draw(st.sampled_from([(1, 1), (3, 3), (1, 7), (7, 1), (2, 3), (5, 5), (1, 3)]))
    return {
        "n": draw(st.integers(1, 2)), "h": draw(st.integers(1, 11)), "w": draw(st.integers(1, 11)),
        "cin": draw(st.sampled_from([1, 3, 5, 17, 24, 40])), "cout": draw(st.sampled_from([1, 6, 16, 19, 33])),
        "kh": kh, "kw": kw,
        "strides": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "dilations": draw(st.sampled_from([(1, 1), (2, 2), (1, 2)])),
        "padding": ((draw(st.integers(0, 3)), draw(st.integers(0, 3))),
                    (draw(st.integers(0, 3)), draw(st.integers(0, 3)))),
        "dtype": draw(st.sampled_from(DTYPES)),
        "epilogue": draw(epilogues()),
        "prologue": draw(st.sampled_from([None, *ACTS])),
        "out_slice": draw(st.sampled_from([None, (0, 5), (3, 0), (2, 7)])),
    }


def out_hw(h, k, s, d, pad):
    return (h + pad[0] + pad[1] - d * (k - 1) - 1) // s + 1


def run_conv_case(c, rng):
    dtype = c["dtype"]
    oh = out_hw(c["h"], c["kh"], c["strides"][0], c["dilations"][0], c["padding"][0])
    ow = out_hw(c["w"], c["kw"], c["strides"][1], c["dilations"][1], c["padding"][1])
    if oh < 1 or ow < 1:
        return False
    x = rounded(rng.standard_normal((c["n"], c["h"], c["w"], c["cin"])), dtype)
    w = rounded(rng.standard_normal((c["kh"], c["kw"], c["cin"], c["cout"])) / np.sqrt(c["kh"] * c["kw"] * c["cin"]), dtype)
    lead = (c["n"], oh, ow)
    kwargs, finish = epilogue_kwargs(c["epilogue"], c["cout"], lead, dtype, rng)
    x_ref = x
    if c["prologue"] is not None:
        in_scale, in_shift = rng.uniform(0.5, 1.5, c["cin"]), rng.standard_normal(c["cin"])
        kwargs.update(in_scale=vec(in_scale), in_shift=vec(in_shift), prologue_act=c["prologue"])
        x_ref = R.prologue(x, rounded(in_scale, "float32"), rounded(in_shift, "float32"), c["prologue"])
    offset = 0
    if c["out_slice"] is not None:
        kwargs["out"] = wide_out(lead, c["cout"], c["out_slice"], dtype)
        kwargs["out_channel_offset"] = offset = c["out_slice"][0]
    got = K.conv2d(dev(x, dtype), K.prepack_conv2d(dev(w, dtype)), strides=c["strides"],
                   padding=c["padding"], dilations=c["dilations"], **kwargs)
    expected = finish(R.conv2d(x_ref, w, c["strides"], c["padding"], c["dilations"]))
    if c["out_slice"] is not None:
        assert got is kwargs["out"]
        check_untouched(got, offset, c["cout"])
        got = got[..., offset:offset + c["cout"]]
    assert_close(got, expected, dtype, what=f"conv2d {c}")
    return True


@SETTINGS
@given(conv_cases())
def test_conv2d_matches_reference(c):
    assume(run_conv_case(c, np.random.default_rng(0)))


@pytest.mark.parametrize("case", [
    # (n, h, w, cin, cout, k, stride, pad): ResNet-like 1x1 stride 2 (strided rows), stride > kernel
    (1, 9, 9, 16, 24, (1, 1), (2, 2), ((0, 0), (0, 0))),
    (2, 7, 8, 5, 7, (1, 1), (3, 3), ((0, 0), (0, 0))),
    (1, 10, 10, 3, 16, (7, 7), (2, 2), ((2, 3), (2, 3))),
    (1, 9, 9, 8, 8, (2, 2), (4, 4), ((0, 1), (1, 0))),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_fixed_shapes(case, dtype):
    n, h, w, cin, cout, k, s, pad = case
    c = {"n": n, "h": h, "w": w, "cin": cin, "cout": cout, "kh": k[0], "kw": k[1], "strides": s,
         "dilations": (1, 1), "padding": pad, "dtype": dtype, "prologue": "relu", "out_slice": (4, 3),
         "epilogue": {"scale": True, "shift": True, "act": "relu", "residual": True,
                      "residual_scale": 1.0, "act2": "relu"}}
    assert run_conv_case(c, np.random.default_rng(1))


def test_conv2d_tf32_precision():
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((1, 6, 6, 32)), rng.standard_normal((3, 3, 32, 20))
    got = K.conv2d(dev(x, "float32"), dev(w, "float32"), padding=((1, 1), (1, 1)), precision="tf32")
    assert_close(got, R.conv2d(x, w, (1, 1), ((1, 1), (1, 1)), (1, 1)), "tf32")


@st.composite
def transpose_cases(draw):
    s = draw(st.integers(1, 3))
    k = draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    pt, pl = draw(st.integers(0, k - 1)), draw(st.integers(0, k - 1))
    oh = draw(st.integers(1, h * s + 2))
    ow = draw(st.integers(1, w * s + 2))
    return {"n": draw(st.integers(1, 2)), "h": h, "w": w, "cin": draw(st.sampled_from([1, 4, 18])),
            "cout": draw(st.sampled_from([1, 5, 16, 21])), "k": (k, draw(st.integers(1, 4))),
            "strides": (s, draw(st.integers(1, 3))), "pad_before": (pt, pl), "output_hw": (oh, ow),
            "dtype": draw(st.sampled_from(DTYPES)), "epilogue": draw(epilogues()),
            "out_slice": draw(st.sampled_from([None, (1, 2)]))}


@SETTINGS
@given(transpose_cases())
def test_conv2d_transpose_matches_reference(c):
    run_transpose_case(c)


def run_transpose_case(c):
    rng = np.random.default_rng(3)
    dtype = c["dtype"]
    x = rounded(rng.standard_normal((c["n"], c["h"], c["w"], c["cin"])), dtype)
    w = rounded(rng.standard_normal((*c["k"], c["cout"], c["cin"])), dtype)
    lead = (c["n"], *c["output_hw"])
    kwargs, finish = epilogue_kwargs(c["epilogue"], c["cout"], lead, dtype, rng)
    offset = 0
    if c["out_slice"] is not None:
        kwargs["out"] = wide_out(lead, c["cout"], c["out_slice"], dtype)
        kwargs["out_channel_offset"] = offset = c["out_slice"][0]
    got = K.conv2d_transpose(dev(x, dtype), K.prepack_conv2d_transpose(dev(w, dtype)),
                             strides=c["strides"], pad_before=c["pad_before"], output_hw=c["output_hw"],
                             **kwargs)
    expected = finish(R.conv2d_transpose(x, w, c["strides"], c["pad_before"], c["output_hw"]))
    if c["out_slice"] is not None:
        check_untouched(got, offset, c["cout"])
        got = got[..., offset:offset + c["cout"]]
    assert_close(got, expected, dtype, what=f"conv2d_transpose {c}")


@SETTINGS
@given(lead=st.sampled_from([(1,), (3,), (2, 5), (37,)]), k=st.sampled_from([1, 7, 16, 70]),
       n=st.sampled_from([1, 10, 33]), dtype=st.sampled_from(DTYPES), ep=epilogues(),
       out_slice=st.sampled_from([None, (2, 3)]))
def test_matmul_matches_reference(lead, k, n, dtype, ep, out_slice):
    rng = np.random.default_rng(4)
    x = rounded(rng.standard_normal((*lead, k)), dtype)
    w = rounded(rng.standard_normal((k, n)) / np.sqrt(k), dtype)
    kwargs, finish = epilogue_kwargs(ep, n, lead, dtype, rng)
    if out_slice is not None:
        kwargs["out"] = wide_out(lead, n, out_slice, dtype)
        kwargs["out_channel_offset"] = out_slice[0]
    got = K.matmul(dev(x, dtype), K.prepack_matmul(dev(w, dtype)), **kwargs)
    if out_slice is not None:
        check_untouched(got, out_slice[0], n)
        got = got[..., out_slice[0]:out_slice[0] + n]
    assert_close(got, finish(R.matmul(x, w)), dtype, what="matmul")


def test_conv2d_bfloat16():
    c = {"n": 2, "h": 9, "w": 9, "cin": 24, "cout": 19, "kh": 3, "kw": 3, "strides": (2, 2),
         "dilations": (1, 1), "padding": ((1, 1), (1, 1)), "dtype": "bfloat16", "prologue": "relu",
         "out_slice": (2, 2), "epilogue": {"scale": True, "shift": True, "act": "relu6", "residual": True,
                                           "residual_scale": 0.5, "act2": "relu"}}
    assert run_conv_case(c, np.random.default_rng(5))


def test_conv2d_errors_name_layer_argument_and_shapes():
    x = torch.zeros((1, 5, 5, 3), device=DEVICE)
    w = K.prepack_conv2d(torch.zeros((3, 3, 4, 8), device=DEVICE))
    with pytest.raises(K.KernelArgumentError, match=r"block1/conv: x has 3 channels .*Cin=4"):
        K.conv2d(x, w, name="block1/conv")
    w3 = K.prepack_conv2d(torch.zeros((3, 3, 3, 8), device=DEVICE))
    with pytest.raises(K.KernelArgumentError, match=r"scale: expected 8 channels, got shape \(7,\)"):
        K.conv2d(x, w3, scale=torch.ones(7, device=DEVICE))
    with pytest.raises(K.KernelArgumentError, match=r"channel slice \[4, 12\) does not fit in 10"):
        K.conv2d(x, w3, padding=((1, 1), (1, 1)), out=torch.zeros((1, 5, 5, 10), device=DEVICE),
                 out_channel_offset=4)
    with pytest.raises(K.KernelArgumentError, match=r"residual: expected shape \(1, 3, 3, 8\)"):
        K.conv2d(x, w3, residual=torch.zeros((1, 5, 5, 8), device=DEVICE))
    with pytest.raises(K.KernelArgumentError, match=r"weight dtype torch.float16 differs"):
        K.conv2d(x, K.prepack_conv2d(torch.zeros((3, 3, 3, 8), dtype=torch.float16, device=DEVICE)))
    with pytest.raises(K.KernelArgumentError, match=r"empty output"):
        K.conv2d(torch.zeros((1, 2, 2, 3), device=DEVICE), w3)
    with pytest.raises(K.KernelArgumentError, match=r"unknown activation 'gelu'"):
        K.conv2d(x, w3, act="gelu")


def test_gemm_weights_are_packed_with_zero_padded_aligned_rows():
    """conv2d / conv2d_transpose / matmul weights are packed [K, Cout] with rows padded by zeros
    to a multiple of 16 elements (so a 1001-class weight's rows are 16-byte aligned for the
    async copies); the kernels read them at that row stride, with the same results as an
    unpadded packing (a PackedWeight built by hand, or by an engine saved before)."""
    rng = np.random.default_rng(11)
    w = rng.standard_normal((3, 3, 5, 1001)).astype(np.float32)
    want = w.reshape(45, 1001)
    for pw in (K.prepack_conv2d(w), K.prepack_conv2d_transpose(w.transpose(0, 1, 3, 2)), K.prepack_matmul(want)):
        assert pw.row_stride == 1008 and tuple(pw.data.shape) == (45, 1008) and pw.data.is_contiguous()
        assert np.array_equal(pw.data[:, :1001].cpu().numpy(), want) and not pw.data[:, 1001:].any()
    assert K.prepack_matmul(np.zeros((4, 64), np.float32)).row_stride == 64
    assert K.prepack_depthwise(np.zeros((3, 3, 5, 1), np.float32)).row_stride == 5  # not a GEMM operand

    x = torch.tensor(rng.standard_normal((3, 5)), dtype=torch.float32, device=DEVICE)
    wm = torch.tensor(rng.standard_normal((5, 7)), dtype=torch.float32, device=DEVICE)
    unpadded = K.PackedWeight("matmul", wm, 1, 1, 5, 7)
    assert K.prepack_matmul(wm).row_stride == 16 and unpadded.row_stride == 7
    assert torch.equal(K.matmul(x, K.prepack_matmul(wm)), K.matmul(x, unpadded))
    with pytest.raises(K.KernelArgumentError, match=r"fc: packed matmul data of shape \(5, 6\) .* \[5, >= 7\]"):
        K.matmul(x, K.PackedWeight("matmul", wm[:, :6].contiguous(), 1, 1, 5, 7), name="fc")

