"""The GPU tile paths of the conv / matmul kernel run in the interpreter: `gpu_tiles()` forces
the tile and grid choice a GPU makes (small-M tiles, the small-Cin BLOCK_K 32 tiles, split-K
with its deterministic reduction kernel), checked against the NumPy reference."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from slimtriton import kernels as K
from slimtriton.kernels import config as C
from slimtriton.reference import numpy_ops as R
from tests.helpers import assert_close

from .test_conv import conv_cases, run_conv_case, run_transpose_case, transpose_cases
from .util import DTYPES, dev, epilogue_kwargs, epilogues, rounded, vec

SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def gemm_launches(fn):
    """Run `fn()` with GPU tiles; return its result and the constexprs of its GEMM launches."""
    with C.gpu_tiles(), K.record_launches() as launches:
        result = fn()
    return result, launches


# ---------------------------------------------------------------------------------------
# The grid choice (pure functions).

@given(tiles=st.integers(1, 400), k_steps=st.integers(1, 200), resident=st.sampled_from([132, 264, 396, 528]))
def test_split_k_fills_a_wave_without_empty_splits(tiles, k_steps, resident):
    s = C.split_k_for(tiles, k_steps, resident)
    assert 1 <= s <= C.MAX_SPLIT_K
    per_split = -(-k_steps // s)
    assert -(-k_steps // per_split) == s, "an empty split"
    if tiles >= resident or k_steps < 2 * C.MIN_K_STEPS_PER_SPLIT:
        assert s == 1
    else:
        assert per_split >= C.MIN_K_STEPS_PER_SPLIT or s == 1
        assert tiles * s <= max(resident, tiles)  # never more than one wave of splits


def test_plans_fill_the_gpu_at_batch_1():
    # block4 conv2 of ResNet-50 at batch 1: M=49, N=512, 3x3x512 -> 72 k-steps of 64;
    # one 128x128 tile per 4 column blocks would use 4 of 132 SMs
    plans = C.gemm_plans("float16", 49, 512, lambda t: 9 * (512 // t.BLOCK_K))
    best = plans[0]
    assert best.tile.BLOCK_M == 64 and best.split_k > 1 and best.fill > 0.5
    # a large GEMM needs no split
    big = C.gemm_plans("float16", 100352, 256, lambda t: 1)[0]
    assert big.split_k == 1 and big.fill > 0.95
    # 1x1 GEMMs keep two CTAs per SM: no 128x128 tile with a scale / residual epilogue
    for p in C.gemm_plans("float16", 6272, 1024, lambda t: 4, min_ctas_per_sm=2):
        assert C.ctas_per_sm(p.tile, lean_epilogue=False) >= 2


# ---------------------------------------------------------------------------------------
# Kernel sweeps with GPU tiles.

@SETTINGS
@given(conv_cases())
def test_conv2d_gpu_tiles_match_reference(c):
    with C.gpu_tiles():
        assume(run_conv_case(c, np.random.default_rng(10)))


@SETTINGS
@given(transpose_cases())
def test_conv2d_transpose_gpu_tiles_match_reference(c):
    with C.gpu_tiles():
        run_transpose_case(c)


@pytest.mark.parametrize("case", [
    # (n, h, w, cin, cout, k, stride, pad, dilation): split-K on the tap loop, on a 1x1 GEMM with
    # a strided residual, on the small-Cin (FLAT_K) path, and a dilated conv
    (1, 5, 5, 96, 24, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),
    (2, 4, 4, 256, 40, (1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1)),
    (1, 12, 12, 3, 16, (7, 7), (2, 2), ((2, 3), (2, 3)), (1, 1)),
    (1, 9, 9, 48, 20, (3, 3), (1, 1), ((2, 2), (2, 2)), (2, 2)),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_split_k_matches_reference(case, dtype):
    n, h, w, cin, cout, k, s, pad, d = case
    c = {"n": n, "h": h, "w": w, "cin": cin, "cout": cout, "kh": k[0], "kw": k[1], "strides": s,
         "dilations": d, "padding": pad, "dtype": dtype, "prologue": "relu6", "out_slice": (3, 2),
         "epilogue": {"scale": True, "shift": True, "act": "relu", "residual": True,
                      "residual_scale": -1.25, "act2": "relu6"}}
    ok, launches = gemm_launches(lambda: run_conv_case(c, np.random.default_rng(11)))
    assert ok
    gemm = [la for la in launches if la.kind == "gemm"]
    assert len(gemm) == 1 and gemm[0].meta["split_k"] > 1, "this shape should split K"
    assert gemm[0].constexprs["FLAT_K"] == (cin < 16)
    assert [la.kind for la in launches] == ["gemm", "splitk_reduce"]


@SETTINGS
@given(lead=st.sampled_from([(1,), (3,), (70,)]), k=st.sampled_from([16, 300, 1000]),
       n=st.sampled_from([10, 33]), dtype=st.sampled_from(DTYPES), ep=epilogues())
def test_matmul_gpu_tiles_match_reference(lead, k, n, dtype, ep):
    rng = np.random.default_rng(12)
    x = rounded(rng.standard_normal((*lead, k)), dtype)
    w = rounded(rng.standard_normal((k, n)) / np.sqrt(k), dtype)
    kwargs, finish = epilogue_kwargs(ep, n, lead, dtype, rng)
    got, _ = gemm_launches(lambda: K.matmul(dev(x, dtype), K.prepack_matmul(dev(w, dtype)), **kwargs))
    assert_close(got, finish(R.matmul(x, w)), dtype, what="matmul (GPU tiles)")


def test_strided_residual_with_split_k():
    # ResNet's subsampled shortcut read in place by the split-K reduction kernel
    rng = np.random.default_rng(13)
    x = rounded(rng.standard_normal((1, 4, 4, 256)), "float16")
    w = rounded(rng.standard_normal((1, 1, 256, 24)) / 16, "float16")
    res = rounded(rng.standard_normal((1, 7, 7, 24)), "float16")
    got, launches = gemm_launches(lambda: K.conv2d(dev(x, "float16"), dev(w, "float16"), residual=dev(res, "float16"),
                                                   residual_strides=(2, 2), act2="relu"))
    assert launches[0].meta["split_k"] > 1
    expected = np.maximum(R.conv2d(x, w, (1, 1), ((0, 0), (0, 0)), (1, 1)) + res[:, ::2, ::2], 0)
    assert_close(got, expected, "float16")


# ---------------------------------------------------------------------------------------
# Non-finite inputs: a NaN / Inf pixel reaches exactly the outputs whose window reads it.

@pytest.mark.filterwarnings("ignore:invalid value encountered in matmul")  # Inf x the zero padding of unused columns
@pytest.mark.parametrize("cin,k", [(3, 7), (64, 3), (256, 1)])  # FLAT_K, tap loop + split-K, 1x1 + split-K
@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("gpu", [False, True])
def test_non_finite_input_pixel_reaches_its_window(cin, k, bad, gpu):
    rng = np.random.default_rng(14)
    x = rounded(rng.standard_normal((1, 9, 9, cin)), "float16")
    w = rounded(rng.uniform(0.5, 1.0, (k, k, cin, 8)) / np.sqrt(k * k * cin), "float16")  # positive: no Inf-Inf
    x[0, 4, 5, cin - 1] = bad
    pad = ((k // 2, k // 2), (k // 2, k // 2))
    expected = R.conv2d(x, w, (1, 1), pad, (1, 1))

    def run():
        return K.conv2d(dev(x, "float16"), dev(w, "float16"), padding=pad, shift=vec(np.zeros(8)))
    if gpu:
        got, launches = gemm_launches(run)
        assert launches[0].meta["split_k"] > 1 or cin < 16
    else:
        got = run()
    got = got.float().numpy()
    window = np.zeros((9, 9), bool)
    window[max(0, 4 - k // 2):4 + k // 2 + 1, max(0, 5 - k // 2):5 + k // 2 + 1] = True
    if np.isnan(bad):
        assert np.isnan(got[0][window]).all() and not np.isnan(got[0][~window]).any()
    else:
        assert np.isposinf(got[0][window]).all() and np.isfinite(got[0][~window]).all()
    assert np.array_equal(np.isnan(got), np.isnan(expected)) and np.array_equal(np.isinf(got), np.isinf(expected))
    finite = np.isfinite(expected)
    assert_close(got[finite], expected[finite], "float16")
