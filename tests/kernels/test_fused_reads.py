"""The round-2 kernel paths against the NumPy reference (hypothesis sweeps):

* `mean_matmul`: global mean over H, W, then the GEMM that consumes it (fusion pass 7), with
  and without the per-pixel prologue, keepdims, channel-slice output, NaN / inf input cells,
  and with the GPU tile choice forced (`gpu_tiles()`: narrow, deep GEMM tiles run here);
* `conv2d(residual_strides=...)`: the residual read strided from the unsubsampled tensor
  (ResNet's subsample shortcut without its max-pool kernel).
"""
from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimtriton import kernels as K
from slimtriton.kernels.config import gpu_tiles
from slimtriton.kernels.launch import record_launches
from slimtriton.kernels.mean_gemm import gemm_plan
from slimtriton.reference import numpy_ops as R
from tests.helpers import assert_close, assert_close_nonfinite

from .nonfinite import nonfinite_cells, plant
from .util import ACTS, DTYPES, check_untouched, dev, rounded, vec, wide_out

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def mean_cases(draw):
    hw = draw(st.sampled_from([(1, 1), (7, 7), (8, 8), (2, 3), (5, 1)]))
    return {"n": draw(st.integers(1, 5)), "hw": hw, "c": draw(st.sampled_from([1, 3, 17, 40, 70])),
            "cout": draw(st.sampled_from([1, 10, 19, 33])), "dtype": draw(st.sampled_from(DTYPES)),
            "act": draw(st.sampled_from(ACTS)), "scale": draw(st.booleans()), "shift": draw(st.booleans()),
            "prologue": draw(st.sampled_from([None, *ACTS])), "keepdims": draw(st.booleans()),
            "conv_weight": draw(st.booleans()), "out_slice": draw(st.sampled_from([None, (3, 2)])),
            "cells": draw(nonfinite_cells()), "gpu": draw(st.booleans())}


def run_mean_case(c, rng):
    dtype, (h, w), cin, cout = c["dtype"], c["hw"], c["c"], c["cout"]
    x = plant(rounded(rng.standard_normal((c["n"], h, w, cin)) + 0.3, dtype), c.get("cells", ()))
    wt = rounded(rng.standard_normal((cin, cout)) / np.sqrt(cin), dtype)
    kwargs = {"act": c["act"], "keepdims": c["keepdims"]}
    scale = rng.uniform(0.5, 1.5, cout) if c["scale"] else None
    shift = rng.standard_normal(cout) if c["shift"] else None
    if scale is not None:
        kwargs["scale"] = vec(scale)
    if shift is not None:
        kwargs["shift"] = vec(shift)
    x_ref = x
    if c["prologue"] is not None:
        in_scale, in_shift = rng.uniform(0.5, 1.5, cin), rng.standard_normal(cin)
        kwargs.update(in_scale=vec(in_scale), in_shift=vec(in_shift), prologue_act=c["prologue"])
        x_ref = R.prologue(x, rounded(in_scale, "float32"), rounded(in_shift, "float32"), c["prologue"])
    # the unfused plan rounds the pooled tensor to the compute dtype; so does the kernel
    with np.errstate(invalid="ignore"):
        pooled = rounded(R.reduce_mean(x_ref, (1, 2), False), dtype)
        expected = R.epilogue(R.matmul(pooled, wt), np.ones(cout) if scale is None else rounded(scale, "float32"),
                              np.zeros(cout) if shift is None else rounded(shift, "float32"), c["act"])
    lead = (c["n"], 1, 1) if c["keepdims"] else (c["n"],)
    expected = expected.reshape(*lead, cout)
    offset = 0
    if c["out_slice"] is not None:
        kwargs["out"] = wide_out(lead, cout, c["out_slice"], dtype)
        kwargs["out_channel_offset"] = offset = c["out_slice"][0]
    wp = (K.prepack_conv2d(dev(wt.reshape(1, 1, cin, cout), dtype)) if c["conv_weight"]
          else K.prepack_matmul(dev(wt, dtype)))
    with gpu_tiles() if c.get("gpu") else contextlib.nullcontext():
        got = K.mean_matmul(dev(x, dtype), wp, **kwargs)
    if c["out_slice"] is not None:
        assert got is kwargs["out"]
        check_untouched(got, offset, cout)
        got = got[..., offset:offset + cout]
    assert tuple(got.shape) == (*lead, cout)
    assert_close_nonfinite(got, expected, dtype, what=f"mean_matmul {c}")


@SETTINGS
@given(mean_cases())
def test_mean_matmul_matches_reference(c):
    run_mean_case(c, np.random.default_rng(0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hw", [(1, 1), (7, 7), (8, 8)])
def test_mean_matmul_resnet_like_head(dtype, hw):
    """Shapes of the real heads (HW 1, 7x7 ResNet / MobileNet, 8x8 Inception v3), C not a multiple of 16."""
    run_mean_case({"n": 3, "hw": hw, "c": 130, "cout": 21, "dtype": dtype, "act": "none", "scale": True,
                   "shift": True, "prologue": "relu", "keepdims": True, "conv_weight": True, "out_slice": None},
                  np.random.default_rng(3))


@pytest.mark.parametrize("dtype", DTYPES)
def test_mean_matmul_deep_k_gpu_tiles(dtype):
    """With the GPU tile choice, K = 600 spans several BLOCK_K steps and a partial last one,
    N = 20 and K not multiples of 8 (no alignment hint), a channel-slice output."""
    with gpu_tiles():
        tile = gemm_plan(dtype, 2, 20, 600)
    assert 600 > tile.BLOCK_K and tile.BLOCK_N == 16
    run_mean_case({"n": 2, "hw": (3, 3), "c": 600, "cout": 20, "dtype": dtype, "act": "relu6", "scale": True,
                   "shift": True, "prologue": "relu6", "keepdims": False, "conv_weight": False,
                   "out_slice": (3, 2), "cells": (), "gpu": True}, np.random.default_rng(4))


@pytest.mark.parametrize("dtype", DTYPES)
def test_mean_matmul_large_map_prologue_gpu_tiles(dtype):
    """A 15x15 map (225 pixels: the mean kernel's 4-tiles-per-iteration loop) with the BN+ReLU6
    prologue, GPU tiles."""
    run_mean_case({"n": 2, "hw": (15, 15), "c": 24, "cout": 8, "dtype": dtype, "act": "relu", "scale": False,
                   "shift": True, "prologue": "relu6", "keepdims": True, "conv_weight": True,
                   "out_slice": None, "cells": (np.nan,), "gpu": True}, np.random.default_rng(6))


@pytest.mark.parametrize("cout", [1000, 1001])
@pytest.mark.parametrize("batch", [1, 32, 256])
def test_mean_matmul_gpu_plan(batch, cout):
    """ResNet-50's pool5 + logits (x [N, 7, 7, 2048] fp16, W [2048, cout]) with GPU tiles: two
    launches; the mean's grid covers (almost) every SM of an H100 (128 of 132 at batch 1:
    16-channel blocks, one 32-byte sector per pixel row in fp16) and reads a 7x7 map in one
    load; the GEMM uses wgmma-sized rows, the narrowest column tiles at batch 1 (W streamed by
    63 programs) and deep K steps (8 for K = 2048), and sees 16-byte W rows when cout % 8 == 0."""
    meta = dict(device="meta")
    with record_launches(execute=False) as launches:
        K.mean_matmul(torch.empty((batch, 7, 7, 2048), dtype=torch.float16, **meta),
                      K.prepack_matmul(torch.empty((2048, cout), dtype=torch.float16, **meta)),
                      shift=torch.empty(cout, **meta), name="logits")
    kernels = [la.fn.fn.__name__ if hasattr(la.fn, "fn") else la.fn.__name__ for la in launches]
    assert kernels == ["global_mean_kernel", "pooled_gemm_kernel"]
    mean, gemm = launches
    assert int(np.prod(mean.grid)) >= 128 and mean.constexprs["BLOCK_R"] >= 49
    c = gemm.constexprs
    assert c["BLOCK_M"] == 64 and 2048 // c["BLOCK_K"] <= 16 and gemm.num_stages >= 3
    if batch == 1:
        assert c["BLOCK_N"] == 16 and int(np.prod(gemm.grid)) == -(-cout // 16)
    assert c["N_ALIGN"] == (8 if cout == 1000 else 1)
    # W's rows are padded to 1008 elements (packing.ROW_ALIGN): 16-byte aligned for both
    runtime = [p for p in gemm.param_names() if p not in gemm.constexprs]
    assert dict(zip(runtime, gemm.args))["w_row_stride"] == 1008
    # the perf model's bytes: x + pooled for the mean; pooled + W + out for the GEMM
    assert mean.meta["bytes"] == (batch * 49 * 2048 + batch * 2048) * 2
    assert gemm.meta["bytes"] == (batch * 2048 + 2048 * cout + batch * cout) * 2


def test_mean_matmul_rejects_bad_arguments():
    x = torch.zeros(2, 3, 3, 8)
    with pytest.raises(K.KernelArgumentError, match=r"head: x has 8 channels .*\[9, 4\]"):
        K.mean_matmul(x, K.prepack_matmul(torch.zeros(9, 4)), name="head")
    with pytest.raises(K.KernelArgumentError, match=r"1x1 conv weight, got a 3x3x8x4"):
        K.mean_matmul(x, K.prepack_conv2d(torch.zeros(3, 3, 8, 4)))
    with pytest.raises(K.KernelArgumentError, match=r"in_scale"):
        K.mean_matmul(x, torch.zeros(8, 4), in_scale=torch.ones(7), in_shift=torch.zeros(7))


@st.composite
def strided_cases(draw):
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return {"n": draw(st.integers(1, 2)), "rh": draw(st.integers(1, 9)), "rw": draw(st.integers(1, 9)),
            "s": s, "cin": draw(st.sampled_from([3, 16, 24])), "cout": draw(st.sampled_from([5, 16, 33])),
            "k": draw(st.sampled_from([1, 3])), "dtype": draw(st.sampled_from(DTYPES)),
            "act": draw(st.sampled_from(ACTS)), "act2": draw(st.sampled_from(ACTS)),
            "residual_scale": draw(st.sampled_from([1.0, 0.5])), "out_slice": draw(st.sampled_from([None, (2, 1)]))}


def run_strided_case(c, rng):
    """conv (stride s, SAME-like padding) whose output matches subsample(r, s) of a residual r."""
    dtype, (sh, sw), k = c["dtype"], c["s"], c["k"]
    n, rh, rw, cout = c["n"], c["rh"], c["rw"], c["cout"]
    oh, ow = (rh - 1) // sh + 1, (rw - 1) // sw + 1
    # the conv input: oh x ow pixels at stride 1 with 'SAME' padding for a k x k kernel
    pad = ((k // 2, k // 2), (k // 2, k // 2))
    x = rounded(rng.standard_normal((n, oh, ow, c["cin"])), dtype)
    w = rounded(rng.standard_normal((k, k, c["cin"], cout)) / np.sqrt(k * k * c["cin"]), dtype)
    r = rounded(rng.standard_normal((n, rh, rw, cout)), dtype)
    scale, shift = rng.uniform(0.5, 1.5, cout), rng.standard_normal(cout)
    shortcut = R.max_pool(r, (1, 1), (sh, sw), ((0, 0), (0, 0)))  # TF-Slim subsample(r, s)
    expected = R.epilogue(R.conv2d(x, w, (1, 1), pad, (1, 1)), rounded(scale, "float32"),
                          rounded(shift, "float32"), c["act"], shortcut, c["residual_scale"], c["act2"])
    kwargs = dict(scale=vec(scale), shift=vec(shift), act=c["act"], residual=dev(r, dtype),
                  residual_scale=c["residual_scale"], act2=c["act2"], residual_strides=(sh, sw))
    offset = 0
    if c["out_slice"] is not None:
        kwargs["out"] = wide_out((n, oh, ow), cout, c["out_slice"], dtype)
        kwargs["out_channel_offset"] = offset = c["out_slice"][0]
    got = K.conv2d(dev(x, dtype), K.prepack_conv2d(dev(w, dtype)), padding=pad, **kwargs)
    if c["out_slice"] is not None:
        check_untouched(got, offset, cout)
        got = got[..., offset:offset + cout]
    assert_close(got, expected, dtype, what=f"strided residual {c}")


@SETTINGS
@given(strided_cases())
def test_conv2d_strided_residual_matches_reference(c):
    run_strided_case(c, np.random.default_rng(0))


def test_conv2d_strided_residual_resnet_shape():
    """ResNet v1 block3/unit_6: 1x1 conv3 [*, 7, 7, *] + subsample(block output 14x14, 2)."""
    for dtype in DTYPES:
        run_strided_case({"n": 2, "rh": 14, "rw": 14, "s": (2, 2), "cin": 24, "cout": 40, "k": 1, "dtype": dtype,
                          "act": "none", "act2": "relu", "residual_scale": 1.0, "out_slice": None},
                         np.random.default_rng(5))


def test_conv2d_strided_residual_rejects_mismatched_shapes():
    x = torch.zeros(1, 4, 4, 8)
    w = K.prepack_conv2d(torch.zeros(1, 1, 8, 6))
    with pytest.raises(K.KernelArgumentError, match=r"unit_6: residual of shape \(1, 9, 8, 6\) read with "
                                                     r"strides \(2, 2\)"):
        K.conv2d(x, w, residual=torch.zeros(1, 9, 8, 6), residual_strides=(2, 2), name="unit_6")
    with pytest.raises(K.KernelArgumentError, match=r"residual_strides=\(2, 2\) needs a residual"):
        K.conv2d(x, w, residual_strides=(2, 2))
