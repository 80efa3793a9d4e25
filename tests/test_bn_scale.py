"""Batch norm folding keeps precision, and a fully folded scale costs nothing: where folding
BN's scale into the conv weights would lose precision in the compute dtype (float16 subnormals,
overflow), the scale stays in the fp32 epilogue; where it folds, the epilogue loads no scale
(HAS_SCALE=False) and no all-ones vector exists. The report and compile(log=...) name the
layers that kept their scale."""
from __future__ import annotations

import json

import numpy as np
import pytest

import slimtriton as st
from slimtriton import slim, tf
from slimtriton.fusion import folding
from slimtriton.runtime.lowering import PREP_VECTOR
from tests.helpers import assert_close, relative_l2


def two_layer_graph():
    with st.Graph() as g:
        x = st.placeholder([2, 6, 6, 3], name="images")
        with slim.arg_scope([slim.conv2d], normalizer_fn=slim.batch_norm,
                            normalizer_params={"is_training": False, "scale": True}):
            net = slim.conv2d(x, 8, [3, 3], scope="conv1")
            net = slim.conv2d(net, 8, [1, 1], scope="conv2")
    return g, x, net


def weights_with_tiny_bn_scale(g, seed=0):
    """conv1's BN: gamma=1e-4, variance=1e4 -> scale 1e-6: folded float16 weights are subnormal."""
    rng = np.random.default_rng(seed)
    w = dict(st.init_weights(g, seed=seed))
    for k, v in w.items():
        if k.endswith(("moving_mean", "beta")):
            w[k] = rng.uniform(-0.5, 0.5, v.shape).astype(np.float32)
        elif k.endswith(("moving_variance", "gamma")):
            w[k] = rng.uniform(0.5, 1.5, v.shape).astype(np.float32)
    w["conv1/BatchNorm/gamma"] = np.full(8, 1e-4, np.float32)
    w["conv1/BatchNorm/moving_variance"] = np.full(8, 1e4, np.float32)
    w["conv1/BatchNorm/beta"] = np.zeros(8, np.float32)
    w["conv1/BatchNorm/moving_mean"] = np.zeros(8, np.float32)
    return w


def _launch_flags(model):
    """{kernel step name: HAS_SCALE} of every conv launch."""
    return {k.name: launch.constexprs["HAS_SCALE"] for k in model.kernels for launch in k.launches
            if "HAS_SCALE" in launch.constexprs}


def test_float16_keeps_a_scale_that_would_make_folded_weights_subnormal():
    g, x, y = two_layer_graph()
    conv1 = g.node_by_name("conv1/Relu")
    w = weights_with_tiny_bn_scale(g)
    # inputs ~1e3: conv1's output (~1e-3) is a normal float16 number, its folded weights (~1e-7) are not
    images = 1e3 * np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    want = st.Session(g, w, backend="reference").run([conv1, y], {x: images})
    torch_got = st.Session(g, w, backend="torch", dtype="float16").run([conv1, y], {x: images})
    logged = []
    model = st.compile(g, [conv1, y], w, dtype="float16", log=logged.append)
    got = model(images)
    # conv1 was 1.1e-1 with the scale folded into float16 weights (the torch backend: 5.9e-4)
    assert relative_l2(got[0], want[0]) < 2 * relative_l2(torch_got[0], want[0]) < 2e-3
    for a, b in zip(got, want):
        assert_close(a, b, "float16")
    assert list(model.plan.program.kept_scale) == ["conv1/Relu"]
    assert "float16" in model.plan.program.kept_scale["conv1/Relu"]
    assert any(line.startswith("keep_scale: conv1/Relu: ") for line in logged), logged
    # the kept scale is a float32 vector read by conv1's epilogue; conv2 folded: no scale at all
    assert _launch_flags(model) == {"conv1/Relu": True, "conv2/Relu": False}
    scale_keys = [k for k in model.plan.prep if "epilogue_scale" in k]
    assert len(scale_keys) == 1 and model.plan.prep[scale_keys[0]] == PREP_VECTOR
    import torch
    assert model._executor.params[scale_keys[0]].dtype == torch.float32
    # conv1 reads its own weights, unfolded
    assert "conv1/weights" in model.plan.prep and not any("conv1/BatchNorm/folded" in k for k in model.plan.prep)


def test_report_and_summary_name_the_layers_that_kept_their_scale(tmp_path):
    g, x, y = two_layer_graph()
    model = st.compile(g, y, weights_with_tiny_bn_scale(g), dtype="float16")
    text = model.report(json_path=tmp_path / "r.json")
    assert "1 layer(s) keep their scale in the fp32 epilogue" in text and "conv1/Relu: folded weights lose" in text
    data = json.loads((tmp_path / "r.json").read_text())
    assert list(data["kept_bn_scale"]) == ["conv1/Relu"]
    assert list(model.summary()["kept_bn_scale"]) == ["conv1/Relu"]


def test_float32_folds_the_same_weights():
    g, x, y = two_layer_graph()
    w = weights_with_tiny_bn_scale(g)
    model = st.compile(g, y, w, dtype="float32")
    assert model.plan.program.kept_scale == {}
    assert set(_launch_flags(model).values()) == {False}
    assert "every scale folded" in model.report()
    images = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    assert_close(model(images), st.Session(g, w, backend="reference").run(y, {x: images}), "float32")


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_folded_layers_load_no_scale_and_analysis_plans_assume_folding(dtype):
    """No all-ones scale vector: not prepared, not loaded (HAS_SCALE=False), not charged as bytes."""
    g, x, y = two_layer_graph()
    for weights in (None, st.init_weights(g, seed=0)):
        model = st.compile(g, y, weights, dtype=dtype)
        assert set(_launch_flags(model).values()) == {False}
        assert not any("epilogue_scale" in k for k in model.plan.prep)
        assert all(not any("epilogue_scale" in p.name for p in s.params) for s in model.plan.steps)
        assert model.plan.program.kept_scale == {}
    assert "assumed folded" in st.compile(g, y, dtype=dtype).report()


def test_zero_shift_and_unit_scale_fills_are_not_loaded_by_pointwise_kernels():
    with st.Graph() as g:
        a = st.placeholder([1, 4, 4, 3], name="a")
        b = st.placeholder([1, 4, 4, 3], name="b")
        y = tf.nn.relu(a + b)
    model = st.compile(g, y, {})
    (step,) = model.kernels
    assert step.kernel == "affine_act"
    (launch,) = step.launches
    assert launch.constexprs["HAS_SCALE"] is False and launch.constexprs["HAS_SHIFT"] is False
    av, bv = (np.random.default_rng(k).standard_normal((1, 4, 4, 3)).astype(np.float32) for k in (0, 1))
    np.testing.assert_allclose(model(a=av, b=bv), np.maximum(av + bv, 0), rtol=1e-6)


# -- the decision, as a pure function ------------------------------------------------------------

def test_folding_precision_loss_flags_subnormal_zero_and_overflowing_folded_weights():
    rng = np.random.default_rng(0)
    w = rng.uniform(-0.3, 0.3, (3, 3, 4, 6))
    normal = rng.uniform(0.5, 2.0, 6)
    assert folding.folding_precision_loss(w, normal, "hwio", "float16") is None
    tiny = normal.copy()
    tiny[2] = 1e-6  # folded weights ~1e-7: float16 subnormals (min normal 6.1e-5)
    why = folding.folding_precision_loss(w, tiny, "hwio", "float16")
    assert why is not None and "1 of 6 output channels" in why and "channel 2" in why
    assert folding.folding_precision_loss(w, tiny, "hwio", "float32") is None
    assert folding.folding_precision_loss(w, tiny, "hwio", "bfloat16") is None  # float32's exponent range
    zero = normal.copy()
    zero[0] = 1e-12  # flushes to zero in float16
    assert "channel 0" in folding.folding_precision_loss(w, zero, "hwio", "float16")
    huge = normal.copy()
    huge[5] = 1e6  # folded weights overflow float16 (max 65504)
    assert "channel 5" in folding.folding_precision_loss(w, huge, "hwio", "float16")
    assert "channel 5" in folding.folding_precision_loss(w, huge * 1e34, "hwio", "bfloat16")


def test_folding_precision_loss_ignores_weights_already_tiny_unfolded_and_exact_zeros():
    w = np.full((1, 1, 2, 3), 1e-7)  # already subnormal in float16 without folding
    assert folding.folding_precision_loss(w, np.ones(3), "hwio", "float16") is None
    assert folding.folding_precision_loss(np.zeros((1, 1, 2, 3)), np.full(3, 1e-9), "hwio", "float16") is None
    # an all-zero scale folds exactly (the layer outputs its shift)
    assert folding.folding_precision_loss(np.ones((1, 1, 2, 3)), np.zeros(3), "hwio", "float16") is None


@pytest.mark.parametrize("layout,shape,channels", [("depthwise", (3, 3, 4, 2), 8), ("transpose", (3, 3, 5, 4), 5),
                                                   ("matmul", (7, 5), 5)])
def test_folding_precision_loss_reads_each_layouts_output_channels(layout, shape, channels):
    w = np.random.default_rng(1).uniform(0.1, 0.3, shape)
    scale = np.ones(channels)
    scale[channels - 1] = 1e-7
    cols = folding.output_channel_columns(folding.scale_output_channels(w, scale, layout), layout)
    assert np.all(cols[:, -1] < 1e-7) and np.all(cols[:, 0] > 0.05)
    why = folding.folding_precision_loss(w, scale, layout, "float16")
    assert why is not None and f"1 of {channels} output channels" in why and f"channel {channels - 1}" in why


def test_a_second_bias_keeps_the_unit_scale_a_constant():
    """conv + bias + bias: the second bias changes only the shift; the scale stays the constant 1
    the kernel does not load (composing it would make an all-ones vector)."""
    from tests.fusion.graphs import Builder, reference as reference_of_nodes
    b = Builder()
    x = b.placeholder((1, 4, 4, 3), name="images")
    y = b.bias(b.bias(b.conv(x, 5, k=1, padding=((0, 0), (0, 0))), "first"), "second")
    model = st.compile(b.g, y, b.weights)
    (kernel,) = model.kernels
    assert _launch_flags(model) == {kernel.name: False}
    feeds = b.feeds()
    (want,) = reference_of_nodes(b.g.nodes, [y], feeds, b.weights)
    assert_close(model(feeds[x]), want, "float32")
