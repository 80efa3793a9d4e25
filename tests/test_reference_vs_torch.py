"""Hypothesis sweeps: the NumPy reference against an independent torch formulation written
here (zero-stuffing for the transpose, unfold for pools), and the TORCH executor table
(float64) against the reference, over random shapes, strides, asymmetric paddings,
dilations and kernel sizes (1x7 included, stride > kernel, channels not multiples of 16)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from slimtriton.eager.torch_backend import make_torch_table
from slimtriton.executor import evaluate
from slimtriton.ir import Graph, Op
from slimtriton.reference import REFERENCE
from slimtriton.reference import numpy_ops as ref
from tests.helpers import assert_close

TORCH64 = make_torch_table(device="cpu", dtype="float64")
EXAMPLES = settings(max_examples=60)

kernel = st.one_of(st.tuples(st.integers(1, 4), st.integers(1, 4)), st.just((1, 7)), st.just((7, 1)))


def nchw(x):
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)


def nhwc(t):
    return t.permute(0, 2, 3, 1).numpy()


def pad_or_crop(t, before_h, after_h, before_w, after_w):
    """F.pad that also accepts negative amounts (crop)."""
    return F.pad(t, (before_w, after_w, before_h, after_h))


@st.composite
def window_case(draw, depthwise=False):
    kh, kw = draw(kernel)
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    keh, kew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    pads = ((draw(st.integers(0, keh - 1)), draw(st.integers(0, keh - 1))),
            (draw(st.integers(0, kew - 1)), draw(st.integers(0, kew - 1))))
    n, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 10)), draw(st.integers(1, 10))
    assume(h + sum(pads[0]) >= keh and w + sum(pads[1]) >= kew)
    cin = draw(st.integers(1, 5))
    cout = draw(st.integers(1, 3)) if depthwise else draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    return (n, h, w, cin, cout), (kh, kw), (sh, sw), pads, (dh, dw), seed


def torch_conv(x, w, strides, pads, dilations, groups=1, w_torch=None):
    (t, b), (l, r) = pads
    xt = F.pad(nchw(x), (l, r, t, b))
    wt = torch.from_numpy(w).permute(3, 2, 0, 1) if w_torch is None else w_torch
    return nhwc(F.conv2d(xt, wt, stride=strides, dilation=dilations, groups=groups))


def run_table(table, name, op, x, params, attrs, out_name="op"):
    """Evaluate one node `op(x, *params)` with `table`; params are fed as variables."""
    g = Graph()
    xn = g.add_node(Op.PLACEHOLDER, (), {"shape": x.shape, "dtype": "float64"}, "x")
    pnodes = [g.add_node(Op.VARIABLE, (), {"var": f"p{i}", "shape": p.shape, "dtype": "float64"}, f"p{i}")
              for i, p in enumerate(params)]
    node = g.add_node(op, (xn, *pnodes), attrs, out_name)
    weights = {f"p{i}": p for i, p in enumerate(params)}
    (out,) = evaluate(g.nodes, [node], {xn: x}, weights, table, name)
    return out.numpy() if hasattr(out, "numpy") else out


def check_torch_table(op, x, params, attrs, expected):
    got = run_table(TORCH64, "TORCH", op, x, params, attrs)
    assert_close(got, expected, "float64", what=f"TORCH {op!r}")
    got_ref = run_table(REFERENCE, "REFERENCE", op, x, params, attrs)
    assert_close(got_ref, expected, "float64", what=f"REFERENCE table {op!r}")


@EXAMPLES
@given(window_case())
def test_conv2d(case):
    (n, h, w, cin, cout), (kh, kw), strides, pads, dil, seed = case
    rng = np.random.default_rng(seed)
    x, wt = rng.standard_normal((n, h, w, cin)), rng.standard_normal((kh, kw, cin, cout))
    y = ref.conv2d(x, wt, strides, pads, dil)
    assert_close(y, torch_conv(x, wt, strides, pads, dil), "float64", what="conv2d")
    check_torch_table(Op.CONV2D, x, [wt], {"strides": strides, "padding": pads, "dilations": dil}, y)


@EXAMPLES
@given(window_case(depthwise=True))
def test_depthwise_conv2d(case):
    (n, h, w, c, dm), (kh, kw), strides, pads, dil, seed = case
    rng = np.random.default_rng(seed)
    x, wt = rng.standard_normal((n, h, w, c)), rng.standard_normal((kh, kw, c, dm))
    y = ref.depthwise_conv2d(x, wt, strides, pads, dil)
    # grouped conv: output channel c*dm + m <- weights [c, m] flattened in that order
    w_grouped = torch.from_numpy(wt).permute(2, 3, 0, 1).reshape(c * dm, 1, kh, kw)
    assert_close(y, torch_conv(x, None, strides, pads, dil, groups=c, w_torch=w_grouped), "float64")
    check_torch_table(Op.DEPTHWISE_CONV2D, x, [wt], {"strides": strides, "padding": pads, "dilations": dil}, y)


@EXAMPLES
@given(window_case(depthwise=True), st.integers(1, 7))
def test_separable_conv2d(case, cout):
    (n, h, w, c, dm), (kh, kw), strides, pads, dil, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c))
    dw, pw = rng.standard_normal((kh, kw, c, dm)), rng.standard_normal((1, 1, c * dm, cout))
    y = ref.conv2d(ref.depthwise_conv2d(x, dw, strides, pads, dil), pw, (1, 1), ((0, 0), (0, 0)), (1, 1))
    w_grouped = torch.from_numpy(dw).permute(2, 3, 0, 1).reshape(c * dm, 1, kh, kw)
    mid = torch_conv(x, None, strides, pads, dil, groups=c, w_torch=w_grouped)
    expected = np.tensordot(mid, pw[0, 0], axes=([3], [0]))
    assert_close(y, expected, "float64", what="separable")


@EXAMPLES
@given(kernel, st.tuples(st.integers(1, 4), st.integers(1, 4)), st.integers(1, 2), st.integers(1, 6),
       st.integers(1, 6), st.integers(1, 5), st.integers(1, 4), st.data())
def test_conv2d_transpose(k, strides, n, h, w, cin, cout, data):
    kh, kw = k
    sh, sw = strides
    pt, pl = data.draw(st.integers(0, kh - 1)), data.draw(st.integers(0, kw - 1))
    full_h, full_w = (h - 1) * sh + kh, (w - 1) * sw + kw
    oh = data.draw(st.integers(max(1, h * sh - pt - 2), full_h - pt + 2))  # includes zero extension
    ow = data.draw(st.integers(max(1, w * sw - pl - 2), full_w - pl + 2))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    x, wt = rng.standard_normal((n, h, w, cin)), rng.standard_normal((kh, kw, cout, cin))
    y = ref.conv2d_transpose(x, wt, strides, (pt, pl), (oh, ow))
    # Independent: stuff stride-1 zeros between inputs, then correlate with the flipped kernel:
    # out[o] = sum_k u[o + pt - k] w[k] = sum_k' u_padded[o + k'] w[K-1-k'], left pad K-1-pt.
    u = torch.zeros(n, cin, (h - 1) * sh + 1, (w - 1) * sw + 1, dtype=torch.float64)
    u[:, :, ::sh, ::sw] = nchw(x)
    left_h, left_w = kh - 1 - pt, kw - 1 - pl
    right_h = oh - 1 + kh - (left_h + u.shape[2])
    right_w = ow - 1 + kw - (left_w + u.shape[3])
    up = pad_or_crop(u, left_h, right_h, left_w, right_w)
    w_flip = torch.from_numpy(wt).flip(0, 1).permute(2, 3, 0, 1)  # [cout, cin, kh, kw]
    expected = nhwc(F.conv2d(up, w_flip))
    assert expected.shape == y.shape
    assert_close(y, expected, "float64", what="conv2d_transpose")
    attrs = {"strides": strides, "pad_before": (pt, pl), "output_hw": (oh, ow)}
    check_torch_table(Op.CONV2D_TRANSPOSE, x, [wt], attrs, y)


@st.composite
def pool_case(draw):
    kh, kw = draw(kernel)
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    pads = ((draw(st.integers(0, kh - 1)), draw(st.integers(0, kh - 1))),
            (draw(st.integers(0, kw - 1)), draw(st.integers(0, kw - 1))))
    n, h, w, c = draw(st.integers(1, 2)), draw(st.integers(1, 9)), draw(st.integers(1, 9)), draw(st.integers(1, 5))
    assume(h + sum(pads[0]) >= kh and w + sum(pads[1]) >= kw)
    return (n, h, w, c), (kh, kw), (sh, sw), pads, draw(st.integers(0, 2**31 - 1))


def unfold_windows(x, k, strides, pads, pad_value):
    """[N, C, kh*kw, L] windows of the padded input (torch unfold), plus the output spatial size."""
    (t, b), (l, r) = pads
    xt = F.pad(nchw(x), (l, r, t, b), value=pad_value)
    cols = F.unfold(xt, k, stride=strides)
    n, c = x.shape[0], x.shape[3]
    oh = (xt.shape[2] - k[0]) // strides[0] + 1
    ow = (xt.shape[3] - k[1]) // strides[1] + 1
    return cols.reshape(n, c, k[0] * k[1], oh * ow), (oh, ow)


@EXAMPLES
@given(pool_case())
def test_max_pool(case):
    (n, h, w, c), k, strides, pads, seed = case
    x = np.random.default_rng(seed).standard_normal((n, h, w, c)) - 3.0  # negative: padding must not win
    y = ref.max_pool(x, k, strides, pads)
    cols, (oh, ow) = unfold_windows(x, k, strides, pads, float("-inf"))
    expected = cols.max(dim=2).values.reshape(n, c, oh, ow).permute(0, 2, 3, 1).numpy()
    assert_close(y, expected, "float64", what="max_pool")
    check_torch_table(Op.MAX_POOL, x, [], {"ksize": k, "strides": strides, "padding": pads}, y)


@EXAMPLES
@given(pool_case())
def test_avg_pool(case):
    (n, h, w, c), k, strides, pads, seed = case
    x = np.random.default_rng(seed).standard_normal((n, h, w, c)) + 2.0
    y = ref.avg_pool(x, k, strides, pads)
    sums, (oh, ow) = unfold_windows(x, k, strides, pads, 0.0)
    counts, _ = unfold_windows(np.ones((1, h, w, 1)), k, strides, pads, 0.0)
    expected = (sums.sum(dim=2) / counts.sum(dim=2)).reshape(n, c, oh, ow).permute(0, 2, 3, 1).numpy()
    assert_close(y, expected, "float64", what="avg_pool")
    check_torch_table(Op.AVG_POOL, x, [], {"ksize": k, "strides": strides, "padding": pads}, y)


@settings(max_examples=20)
@given(st.integers(0, 2**31 - 1), st.sampled_from(["none", "relu", "relu6"]), st.booleans(),
       st.sampled_from(["none", "relu", "relu6"]))
def test_fused_ops_torch_vs_reference(seed, act, residual, act2):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 5, 6, 3)) * 4
    base = {"act": act, "residual": residual, "residual_scale": 0.7, "act2": act2}
    conv_attrs = {"strides": (2, 1), "padding": ((1, 0), (2, 1)), "dilations": (1, 2)}
    cases = [
        (Op.FUSED_CONV2D, [rng.standard_normal((3, 2, 3, 4))], (1, 2, 7, 4),
         {**conv_attrs, "prologue": True, "prologue_act": "relu6"}, 4, 3),
        (Op.FUSED_DEPTHWISE_CONV2D, [rng.standard_normal((3, 2, 3, 2))], (1, 2, 7, 6),
         {**conv_attrs, "prologue": False}, 6, 0),
        (Op.FUSED_CONV2D_TRANSPOSE, [rng.standard_normal((3, 3, 4, 3))], (1, 10, 11, 4),
         {"strides": (2, 2), "pad_before": (1, 1), "output_hw": (10, 11)}, 4, 0),
        (Op.FUSED_MATMUL, [rng.standard_normal((3, 5))], (1, 5, 6, 5), {}, 5, 0),
        (Op.FUSED_ELEMENTWISE, [], (1, 5, 6, 3), {}, 3, 0),
    ]
    for op, params, out_shape, attrs, c_out, c_prologue in cases:
        extra = [rng.standard_normal(c_out), rng.standard_normal(c_out)]
        if residual:
            extra.append(rng.standard_normal(out_shape))
        if c_prologue:
            extra += [rng.standard_normal(c_prologue), rng.standard_normal(c_prologue)]
        full = {**base, **attrs}
        expected = run_table(REFERENCE, "REFERENCE", op, x, params + extra, full)
        got = run_table(TORCH64, "TORCH", op, x, params + extra, full)
        assert_close(got, expected, "float64", what=f"{op!r} act={act} residual={residual} act2={act2}")




@pytest.mark.parametrize("pads", [((1, 1), (1, 1)), ((0, 1), (0, 1)), ((1, 1), (0, 2)), ((0, 0), (0, 0))])
@pytest.mark.parametrize("op", [Op.MAX_POOL, Op.AVG_POOL, Op.CONV2D, Op.DEPTHWISE_CONV2D])
def test_torch_native_and_explicit_padding_paths(op, pads):
    """Symmetric pads use torch's own padding argument, asymmetric ones F.pad: both must agree."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 7, 6, 3)) - 1.0
    if op in (Op.MAX_POOL, Op.AVG_POOL):
        params, attrs = [], {"ksize": (3, 3), "strides": (2, 2), "padding": pads}
    else:
        params = [rng.standard_normal((3, 3, 3, 2))]
        attrs = {"strides": (2, 1), "padding": pads, "dilations": (1, 1)}
    expected = run_table(REFERENCE, "REFERENCE", op, x, params, attrs)
    assert_close(run_table(TORCH64, "TORCH", op, x, params, attrs), expected, "float64", what=f"{op!r} {pads}")
