"""kernels.window_conv2d (FUSED_WINDOW_CONV2D): a 1x1 GEMM of avg_pool(x) or of
win_act(depthwise(x)*win_scale + win_shift), against the NumPy reference, in the interpreter
and under GPU tiles."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimtriton.kernels import KernelArgumentError, prepack_conv2d, prepack_depthwise, window_conv2d
from slimtriton.kernels.config import gpu_tiles
from slimtriton.reference import numpy_ops as R
from tests.helpers import assert_close
from tests.kernels.util import ACTS, DTYPES, check_untouched, dev, rounded, vec, wide_out


@st.composite
def window_cases(draw):
    k = draw(st.sampled_from([1, 3]))
    s = draw(st.sampled_from([1, 2]))
    pad = draw(st.sampled_from(["same", "valid"]))
    p = ((k // 2, k // 2), (k // 2, k // 2)) if pad == "same" else ((0, 0), (0, 0))
    return dict(window=draw(st.sampled_from(["avg_pool", "depthwise"])),
                n=draw(st.integers(1, 2)), h=draw(st.integers(k, 7)), w=draw(st.integers(k, 7)),
                cin=draw(st.integers(1, 40)), cout=draw(st.integers(1, 40)), k=k, s=s, padding=p,
                dtype=draw(st.sampled_from(DTYPES)), act=draw(st.sampled_from(ACTS)),
                win_act=draw(st.sampled_from(ACTS)), scale=draw(st.booleans()), shift=draw(st.booleans()),
                win_scale=draw(st.booleans()), win_shift=draw(st.booleans()), offset=draw(st.sampled_from([0, 3])),
                nan=draw(st.booleans()), gpu_tiles=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


def run_case(c):
    rng = np.random.default_rng(c["seed"])
    dtype, cin, cout, k = c["dtype"], c["cin"], c["cout"], c["k"]
    x = rounded(rng.standard_normal((c["n"], c["h"], c["w"], cin)), dtype)
    if c["nan"]:  # propagates to every output whose window reaches it (no activation: max(nan, 0) may drop it)
        x[0, 0, 0, 0] = np.nan
        c = dict(c, act="none", win_act="none")
    w = rounded(rng.standard_normal((1, 1, cin, cout)) / np.sqrt(cin), dtype)
    kw = dict(window=c["window"], ksize=(k, k), strides=(c["s"], c["s"]), padding=c["padding"], act=c["act"])
    win_ref = R.avg_pool(x, (k, k), (c["s"], c["s"]), c["padding"])
    if c["window"] == "depthwise":
        wd = rounded(rng.standard_normal((k, k, cin, 1)) / k, dtype)
        ws = rng.uniform(0.5, 1.5, cin) if c["win_scale"] else None
        wb = rng.standard_normal(cin) if c["win_shift"] else None
        kw.update(win_w=prepack_depthwise(dev(wd, dtype)), win_act=c["win_act"],
                  win_scale=None if ws is None else vec(ws), win_shift=None if wb is None else vec(wb))
        acc = R.depthwise_conv2d(x, wd, (c["s"], c["s"]), c["padding"])
        win_ref = R.epilogue(acc, np.ones(cin) if ws is None else rounded(ws, "float32"),
                             np.zeros(cin) if wb is None else rounded(wb, "float32"), c["win_act"])
    scale = rng.uniform(0.5, 1.5, cout) if c["scale"] else None
    shift = rng.standard_normal(cout) if c["shift"] else None
    kw.update(scale=None if scale is None else vec(scale), shift=None if shift is None else vec(shift))
    want = R.epilogue(R.conv2d(rounded(win_ref, dtype), w),
                      np.ones(cout) if scale is None else rounded(scale, "float32"),
                      np.zeros(cout) if shift is None else rounded(shift, "float32"), c["act"])
    lead = want.shape[:3]
    out = wide_out(lead, cout, (c["offset"], 2), dtype) if c["offset"] else None
    got = window_conv2d(dev(x, dtype), prepack_conv2d(dev(w, dtype)), out=out, out_channel_offset=c["offset"], **kw)
    if out is not None:
        check_untouched(out, c["offset"], cout)
        got = got[..., c["offset"]:c["offset"] + cout]
    got = got.float().cpu().numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = ~np.isnan(want)
    assert_close(got[finite], want[finite], dtype)


@settings(max_examples=40, deadline=None)
@given(window_cases())
def test_window_conv2d_matches_reference(c):
    if c["gpu_tiles"]:
        with gpu_tiles():
            run_case(c)
    else:
        run_case(c)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("window", ["avg_pool", "depthwise"])
def test_inception_and_mobilenet_shapes(dtype, window):
    """3x3 stride-1 SAME pool (Inception Branch_3) and depthwise stride 2 (MobileNet), K > one chunk."""
    for s in (1, 2):
        run_case(dict(window=window, n=2, h=9, w=8, cin=80, cout=48, k=3, s=s, padding=((1, 1), (1, 1)),
                      dtype=dtype, act="relu", win_act="relu6", scale=True, shift=True, win_scale=True,
                      win_shift=True, offset=0, nan=False, gpu_tiles=s == 2, seed=1))


def test_window_conv2d_errors_name_layer_and_shapes():
    x = dev(np.zeros((1, 5, 5, 4)), "float32")
    w = prepack_conv2d(dev(np.zeros((1, 1, 4, 8)), "float32"))
    with pytest.raises(KernelArgumentError, match="layer7.*window 'max'"):
        window_conv2d(x, w, window="max", ksize=(3, 3), name="layer7")
    with pytest.raises(KernelArgumentError, match="layer7.*needs win_w"):
        window_conv2d(x, w, window="depthwise", ksize=(3, 3), name="layer7")
    bad = prepack_depthwise(dev(np.zeros((3, 3, 5, 1)), "float32"))
    with pytest.raises(KernelArgumentError, match=r"layer7: win_w is 3x3x5.*expected 3x3x4"):
        window_conv2d(x, w, window="depthwise", ksize=(3, 3), win_w=bad, name="layer7")
    w3 = prepack_conv2d(dev(np.zeros((3, 3, 4, 8)), "float32"))
    with pytest.raises(KernelArgumentError, match="layer7: the GEMM weight must be 1x1"):
        window_conv2d(x, w3, window="avg_pool", ksize=(3, 3), name="layer7")
