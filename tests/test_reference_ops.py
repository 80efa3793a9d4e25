"""The NumPy reference: every op has an entry, hand-computed edge cases, and the plain
functions against outputs recorded from real TF-Slim (shared/fixtures/tf_slim)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from slimtriton.executor import evaluate
from slimtriton.ir import Graph, Op
from slimtriton.reference import REFERENCE
from slimtriton.reference import numpy_ops as ref
from tests.helpers import assert_close

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "tf_slim"


def same_padding(size, k, stride, rate=1):
    """TF SAME: pad_total = max((out-1)*s + k_eff - in, 0), extra pixel after."""
    out = -(-size // stride)
    k_eff = (k - 1) * rate + 1
    total = max((out - 1) * stride + k_eff - size, 0)
    return (total // 2, total - total // 2)


def load_case(name):
    path = FIXTURES / f"{name}.npz"
    if not path.exists():
        pytest.skip(f"fixture {path} not present")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_every_op_has_a_reference_entry():
    assert set(REFERENCE) == set(Op)


# -- against real TF-Slim outputs ---------------------------------------------------------------
@pytest.mark.parametrize("case, k, stride, rate, padding, act", [
    ("conv2d_3x3_same", (3, 3), 1, 1, "SAME", "relu"),
    ("conv2d_1x7_same", (1, 7), 1, 1, "SAME", "relu"),
    ("conv2d_3x3_rate2", (3, 3), 1, 2, "SAME", "relu"),
    ("conv2d_3x3_stride2_same_even", (3, 3), 2, 1, "SAME", "relu"),
    ("conv2d_5x5_stride2_valid_linear", (5, 5), 2, 1, "VALID", "none"),
])
def test_conv2d_matches_tf(case, k, stride, rate, padding, act):
    c = load_case(case)
    x = c["input"]
    pads = ((0, 0), (0, 0)) if padding == "VALID" else (
        same_padding(x.shape[1], k[0], stride, rate), same_padding(x.shape[2], k[1], stride, rate))
    y = ref.conv2d(x, c["var/conv/weights"], (stride, stride), pads, (rate, rate))
    y = ref.activation(y + c["var/conv/biases"], act)
    assert_close(y, c["expected"], "float32", what=case)


def test_conv2d_same_explicit_padding_matches_tf():
    c = load_case("conv2d_same_k7_s2")  # resnet_utils.conv2d_same: pad k-1 = 6 as (3, 3), VALID conv
    y = ref.conv2d(c["input"], c["var/conv1/weights"], (2, 2), ((3, 3), (3, 3)), (1, 1))
    assert_close(ref.activation(y + c["var/conv1/biases"], "relu"), c["expected"], "float32")


def test_conv2d_bn_relu_matches_tf():
    c = load_case("conv2d_bn_relu")
    y = ref.conv2d(c["input"], c["var/conv/weights"], (1, 1), ((1, 1), (1, 1)), (1, 1))
    y = ref.batch_norm(y, c["var/conv/BatchNorm/moving_mean"], c["var/conv/BatchNorm/moving_variance"],
                       c["var/conv/BatchNorm/gamma"], c["var/conv/BatchNorm/beta"], 0.001)
    assert_close(ref.activation(y, "relu"), c["expected"], "float32")


def test_batch_norm_without_gamma_matches_tf():
    c = load_case("batch_norm_default")
    y = ref.batch_norm(c["input"], c["var/bn/moving_mean"], c["var/bn/moving_variance"], None,
                       c["var/bn/beta"], 0.001)
    assert_close(y, c["expected"], "float32")


@pytest.mark.parametrize("case, stride, padding, out_hw", [
    ("conv2d_transpose_3x3_s2_same", 2, "SAME", (10, 10)),
    ("conv2d_transpose_4x4_s2_valid", 2, "VALID", (12, 14)),
])
def test_conv2d_transpose_matches_tf(case, stride, padding, out_hw):
    c = load_case(case)
    w = c["var/deconv/weights"]
    # TF pads the forward conv (out -> in); its top/left pad is the transpose's pad_before.
    pad_before = (0, 0) if padding == "VALID" else (
        same_padding(out_hw[0], w.shape[0], stride)[0], same_padding(out_hw[1], w.shape[1], stride)[0])
    y = ref.conv2d_transpose(c["input"], w, (stride, stride), pad_before, out_hw)
    act = "none" if "valid" in case else "relu"
    assert_close(ref.activation(y + c["var/deconv/biases"], act), c["expected"], "float32")


def test_separable_conv2d_matches_tf():
    c = load_case("separable_conv2d_dm2")
    y = ref.depthwise_conv2d(c["input"], c["var/sep/depthwise_weights"], (1, 1), ((1, 1), (1, 1)), (1, 1))
    y = ref.conv2d(y, c["var/sep/pointwise_weights"], (1, 1), ((0, 0), (0, 0)), (1, 1))
    assert_close(ref.activation(y + c["var/sep/biases"], "relu"), c["expected"], "float32")


def test_depthwise_only_stride2_matches_tf():
    c = load_case("separable_conv2d_depthwise_only_s2")
    y = ref.depthwise_conv2d(c["input"], c["var/dw/depthwise_weights"], (2, 2), ((0, 1), (0, 1)), (1, 1))
    assert_close(ref.activation(y + c["var/dw/biases"], "relu"), c["expected"], "float32")


@pytest.mark.parametrize("case, fn, k, stride, pads", [
    ("max_pool2d_3x3_s2_same_even", ref.max_pool, (3, 3), 2, ((0, 1), (0, 1))),
    ("max_pool2d_3x3_s2_valid", ref.max_pool, (3, 3), 2, ((0, 0), (0, 0))),
    ("avg_pool2d_2x2_default", ref.avg_pool, (2, 2), 2, ((0, 0), (0, 0))),
    ("avg_pool2d_3x3_s1_same", ref.avg_pool, (3, 3), 1, ((1, 1), (1, 1))),
])
def test_pools_match_tf(case, fn, k, stride, pads):
    c = load_case(case)
    assert_close(fn(c["input"], k, (stride, stride), pads), c["expected"], "float32", what=case)


def test_softmax_unit_norm_fc_match_tf():
    c = load_case("softmax")
    assert_close(ref.softmax(c["input"] * 5.0, 1), c["expected"], "float32")
    c = load_case("unit_norm_dim3")
    assert_close(ref.unit_norm(c["input"], 3, 1e-7), c["expected"], "float32")
    c = load_case("fully_connected_after_flatten")
    y = ref.matmul(c["input"].reshape(3, 32), c["var/fc/weights"]) + c["var/fc/biases"]
    assert_close(ref.activation(y, "relu"), c["expected"], "float32")


def test_fixture_cases_listed():
    cases = FIXTURES / "cases.json"
    if not cases.exists():
        pytest.skip("fixtures not present")
    assert "conv2d_3x3_same" in json.loads(cases.read_text())


# -- hand-computed edge semantics ---------------------------------------------------------------
def test_same_avg_pool_divides_by_real_cells():
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    y = ref.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)))[0, :, :, 0]
    assert y[0, 0] == pytest.approx((1 + 2 + 4 + 5) / 4)       # corner: 4 real cells
    assert y[0, 1] == pytest.approx((1 + 2 + 3 + 4 + 5 + 6) / 6)  # edge: 6 real cells
    assert y[1, 1] == pytest.approx(5.0)


def test_same_max_pool_ignores_padding_even_for_negative_inputs():
    x = -np.arange(1.0, 5.0).reshape(1, 2, 2, 1)  # all negative: a zero pad would win
    y = ref.max_pool(x, (3, 3), (2, 2), ((0, 1), (0, 1)))
    assert y.shape == (1, 1, 1, 1) and y[0, 0, 0, 0] == -1.0


def test_window_covering_only_padding_is_an_error():
    with pytest.raises(ValueError, match="only padding"):
        ref.avg_pool(np.ones((1, 2, 2, 1)), (1, 1), (1, 1), ((2, 0), (0, 0)))


def test_depthwise_channel_order_is_c_times_dm_plus_m():
    x = np.zeros((1, 1, 1, 2))
    x[..., 0], x[..., 1] = 1.0, 10.0
    w = np.arange(1.0, 7.0).reshape(1, 1, 2, 3)  # w[c, m]
    y = ref.depthwise_conv2d(x, w, (1, 1), ((0, 0), (0, 0)), (1, 1))
    np.testing.assert_allclose(y.ravel(), [1, 2, 3, 40, 50, 60])


def test_conv2d_transpose_scatter_rule_and_zero_extension():
    x = np.array([1.0, 2.0]).reshape(1, 1, 2, 1)
    w = np.array([1.0, 10.0, 100.0]).reshape(1, 3, 1, 1)
    # o = i*3 + k - 1, output width 7: i=0 -> o in {-1,0,1}; i=1 -> {2,3,4}; o=5,6 unreached.
    y = ref.conv2d_transpose(x, w, (1, 3), (0, 1), (1, 7)).ravel()
    np.testing.assert_allclose(y, [10, 100, 2, 20, 200, 0, 0])


def test_conv_kernel_larger_than_input_is_an_error():
    with pytest.raises(ValueError, match="larger than the padded input"):
        ref.conv2d(np.ones((1, 2, 2, 1)), np.ones((3, 3, 1, 1)), (1, 1), ((0, 0), (0, 0)), (1, 1))


def test_activation_and_epilogue():
    x = np.array([-1.0, 3.0, 8.0])
    np.testing.assert_allclose(ref.activation(x, "relu6"), [0, 3, 6])
    with pytest.raises(ValueError, match="gelu"):
        ref.activation(x, "gelu")  # not in the vocabulary (ir/ops.py Act)
    scale, shift = np.array([2.0, 2.0, 2.0]), np.array([1.0, -7.0, 0.0])
    np.testing.assert_allclose(ref.epilogue(x, scale, shift, "relu"), [0, 0, 16])
    res = np.array([-5.0, 1.0, 1.0])
    np.testing.assert_allclose(ref.epilogue(x, scale, shift, "none", res, 0.5, "relu"), [0, 0.5, 9])
    np.testing.assert_allclose(ref.prologue(x, scale, shift, "relu"), [0, 0, 16])


def test_batch_norm_batch_statistics_use_biased_variance():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 3, 4)) * 3 + 1
    mean, var = ref.batch_moments(x)
    np.testing.assert_allclose(mean, x.reshape(-1, 4).mean(0))
    np.testing.assert_allclose(var, x.reshape(-1, 4).var(0, ddof=0))
    y = ref.batch_norm(x, mean, var, None, None, 0.0)
    np.testing.assert_allclose(y.reshape(-1, 4).mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(y.reshape(-1, 4).std(0), 1, atol=1e-12)


# -- table entries through the executor ---------------------------------------------------------
def _run(g, outputs, feeds, weights=None):
    return evaluate(g.nodes, outputs, feeds, weights or {}, REFERENCE, "REFERENCE")


def _var(g, name, shape):
    return g.add_node(Op.VARIABLE, (), {"var": name, "shape": shape, "dtype": "float32"}, name)


def test_batch_norm_node_training_and_inference():
    g = Graph()
    x = g.add_node(Op.PLACEHOLDER, (), {"shape": (4, 3), "dtype": "float32"}, "x")
    params = [_var(g, f"bn/{n}", (3,)) for n in ("moving_mean", "moving_variance", "gamma", "beta")]
    common = {"epsilon": 1e-3, "center": True, "scale": True}
    infer = g.add_node(Op.BATCH_NORM, (x, *params), {**common, "is_training": False}, "bn/infer")
    train = g.add_node(Op.BATCH_NORM, (x, *params), {**common, "is_training": True}, "bn/train")
    no_gamma = g.add_node(Op.BATCH_NORM, (x, params[0], params[1], params[3]),
                          {"epsilon": 1e-3, "center": True, "scale": False, "is_training": False}, "bn/ng")
    rng = np.random.default_rng(1)
    xv = rng.standard_normal((4, 3))
    w = {"bn/moving_mean": np.array([1.0, 2, 3]), "bn/moving_variance": np.array([4.0, 5, 6]),
         "bn/gamma": np.array([2.0, 3, 4]), "bn/beta": np.array([0.5, 0, -1])}
    yi, yt, yn = _run(g, [infer, train, no_gamma], {x: xv}, w)
    np.testing.assert_allclose(yi, (xv - w["bn/moving_mean"]) / np.sqrt(w["bn/moving_variance"] + 1e-3)
                               * w["bn/gamma"] + w["bn/beta"])
    np.testing.assert_allclose(yt, (xv - xv.mean(0)) / np.sqrt(xv.var(0) + 1e-3) * w["bn/gamma"] + w["bn/beta"])
    np.testing.assert_allclose(yn, (xv - w["bn/moving_mean"]) / np.sqrt(w["bn/moving_variance"] + 1e-3)
                               + w["bn/beta"])


def test_dropout_inference_is_identity_and_training_is_an_error():
    g = Graph()
    x = g.add_node(Op.PLACEHOLDER, (), {"shape": (2, 3), "dtype": "float32"}, "x")
    d_inf = g.add_node(Op.DROPOUT, (x,), {"keep_prob": 0.5, "is_training": False}, "net/Dropout/inf")
    d_train = g.add_node(Op.DROPOUT, (x,), {"keep_prob": 0.8, "is_training": True}, "net/Dropout/train")
    xv = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(_run(g, [d_inf], {x: xv})[0], xv)
    with pytest.raises(ValueError, match="net/Dropout/train.*is_training=True"):
        _run(g, [d_train], {x: xv})


def test_shape_ops_and_one_hot():
    g = Graph()
    x = g.add_node(Op.PLACEHOLDER, (), {"shape": (2, 3), "dtype": "float32"}, "x")
    labels = g.add_node(Op.PLACEHOLDER, (), {"shape": (3,), "dtype": "int32"}, "labels")
    pad = g.add_node(Op.PAD, (x,), {"paddings": ((1, 0), (0, 2)), "value": 7.0}, "pad")
    tile = g.add_node(Op.TILE, (x,), {"multiples": (2, 1)}, "tile")
    cat = g.add_node(Op.CONCAT, (x, x), {"axis": 1}, "cat")
    rs = g.add_node(Op.RESHAPE, (x,), {"shape": (3, 2)}, "reshape")
    mean = g.add_node(Op.REDUCE_MEAN, (x,), {"axes": (1,), "keepdims": True}, "mean")
    mx = g.add_node(Op.MAXIMUM, (x, g.add_node(Op.CONSTANT, (), {"value": 2.5, "dtype": "float32"}, "c")),
                    {}, "max")
    oh = g.add_node(Op.ONE_HOT, (labels,), {"depth": 3, "on_value": 1.0, "off_value": -1.0,
                                            "dtype": "float32"}, "one_hot")
    xv = np.arange(6.0).reshape(2, 3)
    got = _run(g, [pad, tile, cat, rs, mean, mx, oh], {x: xv, labels: np.array([2, 0, 5], np.int32)})
    np.testing.assert_array_equal(got[0], np.pad(xv, ((1, 0), (0, 2)), constant_values=7.0))
    np.testing.assert_array_equal(got[1], np.vstack([xv, xv]))
    np.testing.assert_array_equal(got[2], np.hstack([xv, xv]))
    np.testing.assert_array_equal(got[3], xv.reshape(3, 2))
    np.testing.assert_array_equal(got[4], [[1.0], [4.0]])
    np.testing.assert_array_equal(got[5], np.maximum(xv, 2.5))
    np.testing.assert_array_equal(got[6], [[-1, -1, 1], [1, -1, -1], [-1, -1, -1]])  # 5: out of range


def test_fused_conv2d_with_prologue_pads_after_the_prologue():
    g = Graph()
    x = g.add_node(Op.PLACEHOLDER, (), {"shape": (1, 4, 4, 2), "dtype": "float32"}, "x")
    w, scale, shift, res = _var(g, "w", (3, 3, 2, 3)), _var(g, "s", (3,)), _var(g, "b", (3,)), None
    in_scale, in_shift = _var(g, "is", (2,)), _var(g, "ib", (2,))
    res = g.add_node(Op.PLACEHOLDER, (), {"shape": (1, 4, 4, 3), "dtype": "float32"}, "res")
    attrs = {"strides": (1, 1), "padding": ((1, 1), (1, 1)), "dilations": (1, 1), "act": "relu",
             "residual": True, "residual_scale": 0.5, "act2": "relu6", "prologue": True, "prologue_act": "relu"}
    fused = g.add_node(Op.FUSED_CONV2D, (x, w, scale, shift, res, in_scale, in_shift), attrs, "fused")
    rng = np.random.default_rng(2)
    wv = {k: rng.standard_normal(s) for k, s in
          (("w", (3, 3, 2, 3)), ("s", (3,)), ("b", (3,)), ("is", (2,)), ("ib", (2,)))}
    wv["ib"] = np.array([5.0, 5.0])  # a large shift: padding before the prologue would differ
    xv, rv = rng.standard_normal((1, 4, 4, 2)), rng.standard_normal((1, 4, 4, 3))
    (got,) = _run(g, [fused], {x: xv, res: rv}, wv)
    pre = np.maximum(xv * wv["is"] + wv["ib"], 0)
    acc = ref.conv2d(pre, wv["w"], (1, 1), ((1, 1), (1, 1)), (1, 1))
    y = np.maximum(acc * wv["s"] + wv["b"], 0)
    np.testing.assert_allclose(got, np.clip(rv + 0.5 * y, 0, 6))


def test_max_pool_takes_minus_inf_inputs_and_refuses_padding_only_windows():
    """-inf is a value (an fp16 underflowed log, say): the reference keeps it; only a window made
    of padding alone has no maximum (found by `make fuzz`)."""
    from slimtriton.reference import numpy_ops as R
    x = np.array([[[[-np.inf], [1.0]], [[2.0], [3.0]]]])
    np.testing.assert_array_equal(R.max_pool(x, (1, 1), (1, 1), ((0, 0), (0, 0))).ravel(), [-np.inf, 1, 2, 3])
    np.testing.assert_array_equal(R.max_pool(-np.full((1, 2, 2, 1), np.inf), (2, 2), (1, 1), ((0, 1), (0, 1))),
                                  -np.full((1, 2, 2, 1), np.inf))
    with pytest.raises(ValueError, match="covers only padding"):
        R.max_pool(x, (2, 2), (2, 2), ((0, 3), (0, 0)))
