"""Depthwise conv, pooling, global mean, softmax, unit_norm and elementwise kernels against
the NumPy reference (hypothesis sweeps). Inputs sometimes hold NaN / +-inf cells: NaN
positions must match the reference's and the finite cells be close (`assert_close_nonfinite`).
`gpu` draws run with the GPU tile choice forced (`config.gpu_tiles()`): small tiles, filled grids."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from slimtriton import kernels as K
from slimtriton.reference import numpy_ops as R
from slimtriton.kernels.config import gpu_tiles
from tests.helpers import assert_close, assert_close_nonfinite

from .nonfinite import nonfinite_cells, plant

from .util import (ACTS, DEVICE, DTYPES, TORCH_COMPUTE_DTYPES, check_untouched, dev, epilogue_kwargs,
                   epilogues, rounded, vec, wide_out)

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ALL_DTYPES = st.sampled_from(DTYPES)


def tiles(gpu: bool):
    """The GPU tile choice forced (`gpu`), else the interpreter's."""
    return gpu_tiles() if gpu else contextlib.nullcontext()


def out_len(h, k, s, d, pad):
    return (h + pad[0] + pad[1] - d * (k - 1) - 1) // s + 1


@SETTINGS
@given(n=st.integers(1, 2), h=st.integers(1, 9), w=st.integers(1, 9), cin=st.sampled_from([1, 3, 17, 32]),
       dm=st.sampled_from([1, 2, 3]), k=st.sampled_from([(3, 3), (1, 7), (5, 5), (2, 1)]),
       s=st.sampled_from([(1, 1), (2, 2), (3, 1)]), d=st.sampled_from([(1, 1), (2, 2)]),
       pad=st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)),
       dtype=ALL_DTYPES, ep=epilogues(), prologue=st.sampled_from([None, *ACTS]),
       out_slice=st.sampled_from([None, (3, 1)]), cells=nonfinite_cells(), gpu=st.booleans())
def test_depthwise_matches_reference(n, h, w, cin, dm, k, s, d, pad, dtype, ep, prologue, out_slice, cells, gpu):
    padding = ((pad[0], pad[1]), (pad[2], pad[3]))
    oh, ow = out_len(h, k[0], s[0], d[0], padding[0]), out_len(w, k[1], s[1], d[1], padding[1])
    assume(oh >= 1 and ow >= 1)
    rng = np.random.default_rng(0)
    x = plant(rounded(rng.standard_normal((n, h, w, cin)), dtype), cells)
    wt = rounded(rng.standard_normal((*k, cin, dm)) / k[0], dtype)
    cout = cin * dm
    lead = (n, oh, ow)
    kwargs, finish = epilogue_kwargs(ep, cout, lead, dtype, rng)
    x_ref = x
    if prologue is not None:
        a, b = rng.uniform(0.5, 1.5, cin), rng.standard_normal(cin)
        kwargs.update(in_scale=vec(a), in_shift=vec(b), prologue_act=prologue)
        x_ref = R.prologue(x, rounded(a, "float32"), rounded(b, "float32"), prologue)
    if out_slice is not None:
        kwargs.update(out=wide_out(lead, cout, out_slice, dtype), out_channel_offset=out_slice[0])
    with tiles(gpu):
        got = K.depthwise_conv2d(dev(x, dtype), K.prepack_depthwise(dev(wt, dtype)), strides=s, padding=padding,
                                 dilations=d, **kwargs)
    if out_slice is not None:
        check_untouched(got, out_slice[0], cout)
        got = got[..., out_slice[0]:out_slice[0] + cout]
    assert_close_nonfinite(got, finish(R.depthwise_conv2d(x_ref, wt, s, padding, d)), dtype, what="depthwise")


@SETTINGS
@given(n=st.integers(1, 2), h=st.integers(1, 10), w=st.integers(1, 10), c=st.sampled_from([1, 5, 16, 70]),
       k=st.sampled_from([(1, 1), (2, 2), (3, 3), (3, 1)]), s=st.sampled_from([(1, 1), (2, 2), (3, 3), (4, 2)]),
       pad=st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)),
       is_max=st.booleans(), dtype=ALL_DTYPES, out_slice=st.sampled_from([None, (2, 3)]), cells=nonfinite_cells(),
       gpu=st.booleans())
def test_pool_matches_reference(n, h, w, c, k, s, pad, is_max, dtype, out_slice, cells, gpu):
    padding = ((min(pad[0], k[0] - 1), min(pad[1], k[0] - 1)), (min(pad[2], k[1] - 1), min(pad[3], k[1] - 1)))
    oh, ow = out_len(h, k[0], s[0], 1, padding[0]), out_len(w, k[1], s[1], 1, padding[1])
    assume(oh >= 1 and ow >= 1)
    x = plant(rounded(np.random.default_rng(1).standard_normal((n, h, w, c)), dtype), cells)
    kwargs = {}
    if out_slice is not None:
        kwargs = {"out": wide_out((n, oh, ow), c, out_slice, dtype), "out_channel_offset": out_slice[0]}
    fn, ref = (K.max_pool2d, R.max_pool) if is_max else (K.avg_pool2d, R.avg_pool)
    with tiles(gpu):
        got = fn(dev(x, dtype), k, s, padding, **kwargs)
    if out_slice is not None:
        check_untouched(got, out_slice[0], c)
        got = got[..., out_slice[0]:out_slice[0] + c]
    try:
        with np.errstate(invalid="ignore"):
            expected = ref(x, k, s, padding)
    except ValueError:  # a max window of -inf cells only: the reference cannot tell them from padding
        assume(False)
    assert_close_nonfinite(got, expected, dtype, what="max_pool" if is_max else "avg_pool")


@SETTINGS
@given(n=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), c=st.sampled_from([1, 7, 64, 130]),
       keepdims=st.booleans(), dtype=ALL_DTYPES, out_slice=st.sampled_from([None, (5, 2)]), cells=nonfinite_cells(),
       gpu=st.booleans())
def test_global_mean_matches_reference(n, h, w, c, keepdims, dtype, out_slice, cells, gpu):
    x = plant(rounded(np.random.default_rng(2).standard_normal((n, h, w, c)), dtype), cells)
    lead = (n, 1, 1) if keepdims else (n,)
    kwargs = {}
    if out_slice is not None:
        kwargs = {"out": wide_out(lead, c, out_slice, dtype), "out_channel_offset": out_slice[0]}
    with tiles(gpu):
        got = K.global_mean(dev(x, dtype), keepdims=keepdims, **kwargs)
    if out_slice is not None:
        check_untouched(got, out_slice[0], c)
        got = got[..., out_slice[0]:out_slice[0] + c]
    assert_close_nonfinite(got, R.reduce_mean(x, (1, 2), keepdims), dtype, what="global_mean")


@pytest.mark.parametrize("hw", [(12, 11), (20, 20)])
def test_global_mean_large_map_gpu_tiles(hw):
    """Maps of more than two 64-pixel tiles take the GPU path's 4-tiles-per-iteration loop
    (UNROLL4), with a partial last iteration; NaN / inf cells included."""
    x = plant(rounded(np.random.default_rng(11).standard_normal((2, *hw, 37)), "float16"),
              (np.nan, np.inf, -np.inf), seed=3)
    with gpu_tiles():
        got = K.global_mean(dev(x, "float16"), keepdims=False)
    assert_close_nonfinite(got, R.reduce_mean(x, (1, 2), False), "float16", what="global_mean")


@SETTINGS
@given(shape=st.sampled_from([(1, 1), (3, 10), (2, 1001), (2, 3, 17), (5,), (1, 1, 1, 2050)]),
       dtype=ALL_DTYPES, scale=st.sampled_from([1.0, 30.0]), cells=nonfinite_cells(max_cells=4), gpu=st.booleans())
def test_softmax_matches_reference(shape, dtype, scale, cells, gpu):
    x = plant(rounded(np.random.default_rng(3).standard_normal(shape) * scale, dtype), cells)
    with tiles(gpu), np.errstate(invalid="ignore"):
        got = K.softmax(dev(x, dtype))
        expected = R.softmax(x, len(shape) - 1)
    assert_close_nonfinite(got, expected, dtype, what="softmax")


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_non_finite_lines_as_the_reference(dtype):
    """Issue 10 item 2: a line with a NaN or +inf, or all -inf, is all NaN (the reference's
    x - max(x)); -inf cells of other lines give 0. Today's kernel gave [0.61, nan, 1.0],
    [nan, 0, 0] and [0, 0, 0] for the first three lines."""
    inf, nan = np.inf, np.nan
    x = np.array([[0.5, nan, 1.0], [inf, 1.0, 2.0], [-inf, -inf, -inf], [-inf, 0.0, 1.0], [inf, -inf, 0.0]])
    with np.errstate(invalid="ignore"):
        expected = R.softmax(x, 1)
    assert np.isnan(expected[:3]).all() and np.isnan(expected[4]).all()
    got = K.softmax(dev(x, dtype))
    assert_close_nonfinite(got, expected, dtype, what="softmax")
    assert_close_nonfinite(K.softmax(dev(x.T.copy(), dtype), axis=0), expected.T, dtype, what="softmax axis 0")


@SETTINGS
@given(shape=st.sampled_from([(4, 9), (2, 3, 5), (2, 5, 3, 7), (300,), (1, 1, 1, 1)]), data=st.data(),
       epsilon=st.sampled_from([0.0, 1e-12, 1e-3]), dtype=ALL_DTYPES, cells=nonfinite_cells(), gpu=st.booleans())
def test_unit_norm_matches_reference(shape, data, epsilon, dtype, cells, gpu):
    axis = data.draw(st.integers(0, len(shape) - 1))
    x = plant(rounded(np.random.default_rng(4).standard_normal(shape) + 0.1, dtype), cells)
    with tiles(gpu), np.errstate(invalid="ignore"):
        got = K.unit_norm(dev(x, dtype), axis, epsilon)
        expected = R.unit_norm(x, axis, epsilon)
    assert_close_nonfinite(got, expected, dtype, what="unit_norm")


@SETTINGS
@given(lead=st.sampled_from([(1,), (2, 3), (2, 3, 4)]), c=st.sampled_from([1, 7, 33, 256]), dtype=ALL_DTYPES,
       ep=epilogues(), out_slice=st.sampled_from([None, (1, 4)]), cells=nonfinite_cells(), gpu=st.booleans())
def test_affine_act_matches_reference(lead, c, dtype, ep, out_slice, cells, gpu):
    rng = np.random.default_rng(5)
    x = plant(rounded(rng.standard_normal((*lead, c)) * 3, dtype), cells)
    kwargs, finish = epilogue_kwargs(ep, c, lead, dtype, rng)
    if out_slice is not None:
        kwargs.update(out=wide_out(lead, c, out_slice, dtype), out_channel_offset=out_slice[0])
    with tiles(gpu):
        got = K.affine_act(dev(x, dtype), kwargs.pop("scale"), kwargs.pop("shift"), **kwargs)
    if out_slice is not None:
        check_untouched(got, out_slice[0], c)
        got = got[..., out_slice[0]:out_slice[0] + c]
    with np.errstate(invalid="ignore"):
        expected = finish(x)
    assert_close_nonfinite(got, expected, dtype, what="affine_act")


BINARY_REF = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "maximum": np.maximum,
              "minimum": np.minimum}


@SETTINGS
@given(pair=st.sampled_from([((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (4,)), ((2, 1, 4), (1, 5, 1)), ((3,), ()),
                             ((1, 2, 1, 3, 1, 2), (2, 1, 1, 2)), ((5, 1), (1, 1))]),
       op=st.sampled_from(sorted(BINARY_REF)), swap=st.booleans(), dtype=ALL_DTYPES, cells_a=nonfinite_cells(),
       cells_b=nonfinite_cells(max_cells=1), gpu=st.booleans())
def test_binary_matches_numpy_broadcasting(pair, op, swap, dtype, cells_a, cells_b, gpu):
    sa, sb = pair[::-1] if swap else pair
    rng = np.random.default_rng(6)
    a = plant(rounded(rng.standard_normal(sa), dtype), cells_a, seed=1)
    b = plant(rounded(rng.uniform(0.5, 2.0, sb) * rng.choice([-1, 1], sb), dtype), cells_b, seed=2)
    with tiles(gpu), np.errstate(invalid="ignore"):
        got = K.binary(op, dev(a, dtype), dev(b, dtype))
        expected = BINARY_REF[op](a, b)
    assert_close_nonfinite(got, expected, dtype, what=op)


def test_binary_python_scalar_and_errors():
    a = dev(np.arange(6.0).reshape(2, 3), "float32")
    assert_close(K.binary("mul", a, 2.0), np.arange(6.0).reshape(2, 3) * 2)
    with pytest.raises(K.KernelArgumentError, match=r"shapes \(2, 3\) and \(2,\) do not broadcast"):
        K.binary("add", a, dev(np.ones(2), "float32"))


UNARY_REF = {"relu": lambda x: R.activation(x, "relu"), "relu6": lambda x: R.activation(x, "relu6"),
             "sigmoid": R.sigmoid, "tanh": np.tanh, "neg": np.negative}


@SETTINGS
@given(shape=st.sampled_from([(1,), (7, 9), (2, 3, 5, 4)]), op=st.sampled_from(sorted(UNARY_REF)),
       dtype=ALL_DTYPES, scale=st.sampled_from([1.0, 50.0]), cells=nonfinite_cells(), gpu=st.booleans())
def test_unary_matches_reference(shape, op, dtype, scale, cells, gpu):
    x = plant(rounded(np.random.default_rng(7).standard_normal(shape) * scale, dtype), cells)
    with tiles(gpu):
        got = K.unary(op, dev(x, dtype))
    assert_close_nonfinite(got, UNARY_REF[op](x), dtype, what=op)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_relu6_clip_keep_nan(dtype):
    """Issue 10 item 1: relu / relu6 / maximum / minimum (tf.clip_by_value) keep NaN as the
    reference's np.maximum does; Triton's default tl.maximum dropped it (relu6(NaN) was 0)."""
    x = np.array([np.nan, -1.0, 0.5, 7.0, np.inf, -np.inf])
    assert_close_nonfinite(K.unary("relu", dev(x, dtype)), R.activation(x, "relu"), dtype)
    assert_close_nonfinite(K.unary("relu6", dev(x, dtype)), R.activation(x, "relu6"), dtype)
    clipped = K.binary("maximum", K.binary("minimum", dev(x, dtype), 6.0), -6.0)
    assert_close_nonfinite(clipped, np.maximum(np.minimum(x, 6.0), -6.0), dtype)
    assert np.isnan(K.unary("relu6", dev(x, dtype)).float().numpy()[0])


@SETTINGS
@given(lead=st.sampled_from([(1,), (2, 3, 3)]), c=st.sampled_from([1, 20, 129]), extra=st.sampled_from([(0, 0), (3, 5)]),
       dtype=ALL_DTYPES, cells=nonfinite_cells())
def test_copy_channels(lead, c, extra, dtype, cells):
    x = plant(rounded(np.random.default_rng(8).standard_normal((*lead, c)), dtype), cells)
    out = wide_out(lead, c, extra, dtype)
    K.copy_channels(dev(x, dtype), out, extra[0])
    check_untouched(out, extra[0], c)
    assert_close_nonfinite(out[..., extra[0]:extra[0] + c], x, dtype, tol=0.0)


@SETTINGS
@given(shape=st.sampled_from([(3,), (2, 3), (1, 4, 5, 3), (2, 1, 2, 1, 2, 3)]), data=st.data(),
       value=st.sampled_from([0.0, -1.5]), dtype=ALL_DTYPES, cells=nonfinite_cells())
def test_pad_matches_numpy(shape, data, value, dtype, cells):
    pads = tuple((data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in shape)
    x = plant(rounded(np.random.default_rng(9).standard_normal(shape), dtype), cells)
    got = K.pad(dev(x, dtype), pads, value)
    assert_close_nonfinite(got, np.pad(x, pads, constant_values=value), dtype, tol=0.0)


def test_direct_kernels_bfloat16():
    rng = np.random.default_rng(10)
    x = rounded(rng.standard_normal((2, 7, 7, 24)), "bfloat16")
    w = rounded(rng.standard_normal((3, 3, 24, 2)), "bfloat16")
    pad = ((1, 1), (1, 1))
    assert_close(K.depthwise_conv2d(dev(x, "bfloat16"), dev(w, "bfloat16"), padding=pad),
                 R.depthwise_conv2d(x, w, (1, 1), pad, (1, 1)), "bfloat16")
    assert_close(K.avg_pool2d(dev(x, "bfloat16"), (3, 3), (2, 2), pad), R.avg_pool(x, (3, 3), (2, 2), pad), "bfloat16")
    assert_close(K.softmax(dev(x, "bfloat16")), R.softmax(x, 3), "bfloat16")


def test_pool_rejects_window_of_padding_only():
    with pytest.raises(K.KernelArgumentError, match=r"pool5: padding .* smaller than the window 2x2"):
        K.max_pool2d(torch.zeros((1, 4, 4, 2), device=DEVICE), (2, 2), (1, 1), ((2, 0), (0, 0)), name="pool5")


@pytest.mark.parametrize("shape,kernel", [((1, 112, 112, 32), (3, 3)), ((1, 14, 14, 512), (3, 3)),
                                          ((1, 7, 7, 1024), (3, 3)), ((1, 7, 7, 1024), (5, 5))])
def test_direct_gpu_grids_fill_the_sms_at_batch_1(shape, kernel):
    """Recorded (not run) GPU launches of MobileNet-like depthwise layers and ResNet's pool1 at
    batch 1: the window is a constexpr (the tap loop unrolls) and the grid has at least one
    program per SM of an H100 (132); strides / padding / dilation stay runtime arguments."""
    from slimtriton.kernels.launch import record_launches
    meta = dict(device="meta", dtype=torch.float16)
    c = shape[-1]
    pad = ((kernel[0] // 2,) * 2, (kernel[1] // 2,) * 2)
    with record_launches(execute=False) as launches:
        K.depthwise_conv2d(torch.empty(shape, **meta), K.prepack_depthwise(torch.empty((*kernel, c, 1), **meta)),
                           padding=pad, dilations=(2, 2) if kernel == (5, 5) else (1, 1), act="relu6")
        K.max_pool2d(torch.empty((1, 112, 112, 64), **meta), 3, 2, ((0, 1), (0, 1)))
        K.avg_pool2d(torch.empty((1, 8, 8, 2048), **meta), 8, 1, ((0, 0), (0, 0)))
    for launch, window in zip(launches, [kernel, (3, 3), (8, 8)]):
        assert (launch.constexprs["KH"], launch.constexprs["KW"]) == window
        assert int(np.prod(launch.grid)) >= 128, (launch.name, launch.grid)
