"""Plan passes 7 (global mean + GEMM -> mean_matmul) and 7b (subsample shortcut -> strided
residual read): pattern (which kernels disappear), declined cases, and the compiled result
equal to the NumPy reference before / after (fp32 and fp16, poisoned buffers)."""
from __future__ import annotations


import numpy as np
import pytest

import slimtriton as st
from slimtriton import slim, tf
from slimtriton.fusion.pipeline import PLAN_PASSES
from slimtriton.nets import resnet_utils
from slimtriton.runtime.plan import PLAN_PASS_FUNCTIONS
from tests.helpers import assert_close
from tests.test_compile import randomize_bn


BN = {"normalizer_fn": slim.batch_norm, "normalizer_params": {"is_training": False, "scale": True}}


def kernels_of(g, outputs, dtype="float32"):
    return [k.kernel for k in st.compile(g, outputs, None, dtype=dtype).kernels]


def check_numerics(g, outputs, dtype="float32", seed=0):
    weights = randomize_bn(st.init_weights(g, seed=seed), seed)  # BN is not an identity
    rng = np.random.default_rng(seed)
    feeds = {n.name: rng.standard_normal(n.shape).astype(np.float32)
             for n in g.nodes if n.op is st.ir.Op.PLACEHOLDER}
    expected = st.Session(g, weights, backend="reference").run(outputs, feeds)
    model = st.compile(g, outputs, weights, dtype=dtype, poison=True)
    got = model(feeds)
    if not isinstance(outputs, list):
        got, expected = [got], [expected]
    for a, e in zip(got, expected):
        assert_close(a, e, dtype, what=f"{dtype} compiled vs reference")
    return model


def test_pipeline_lists_the_plan_passes_and_each_has_its_function():
    assert PLAN_PASSES == ["route_channel_slices", "eliminate_concats", "collect_parameters", "plan_memory"]
    assert set(PLAN_PASS_FUNCTIONS) == set(PLAN_PASSES)
    assert all(fn.__name__ == name for name, fn in PLAN_PASS_FUNCTIONS.items())


def head_graph(mean="reduce_mean", head="conv", postnorm=False, hw=7, c=37, requested_mean=False):
    with st.Graph() as g:
        x = st.placeholder([3, hw, hw, 5], name="images")
        with slim.arg_scope([slim.conv2d], **BN):
            net = slim.conv2d(x, c, [3, 3], scope="conv1")
            if postnorm:  # ResNet v2: the residual sum goes through BN+ReLU before pool5
                net = net + slim.conv2d(net, c, [1, 1], activation_fn=None, scope="conv2")
                net = slim.batch_norm(net, activation_fn=tf.nn.relu, scope="postnorm", is_training=False)
        if mean == "reduce_mean":
            pooled = tf.reduce_mean(net, [1, 2], keepdims=head == "conv", name="pool5")
        else:  # Inception / MobileNet: a VALID average pool over the whole image, then dropout
            pooled = slim.avg_pool2d(net, [hw, hw], padding="VALID", scope="AvgPool")
            pooled = slim.dropout(pooled, is_training=False, scope="Dropout")
        if head == "conv":
            logits = slim.conv2d(pooled, 11, [1, 1], activation_fn=None, scope="logits")
            logits = tf.squeeze(logits, [1, 2])
        else:
            if mean != "reduce_mean":
                pooled = slim.flatten(pooled)
            logits = slim.fully_connected(pooled, 11, activation_fn=None, scope="logits")
    outputs = [logits, pooled] if requested_mean else logits
    return g, outputs


@pytest.mark.parametrize("mean,head", [("reduce_mean", "conv"), ("avg_pool", "conv"), ("reduce_mean", "fc"),
                                       ("avg_pool", "fc")])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_mean_then_gemm_is_one_kernel(mean, head, dtype):
    g, logits = head_graph(mean, head)
    kinds = kernels_of(g, logits, dtype)
    assert kinds == ["conv2d", "mean_matmul"], kinds
    model = check_numerics(g, logits, dtype)
    step = model.kernels[-1]
    assert any(o.endswith("pool5") or "AvgPool" in o for o in step.fused_ops), step.fused_ops
    # byte model: the head reads the unpooled activation once, never writes the pooled one
    assert step.bytes_read >= 3 * 7 * 7 * 37 * (4 if dtype == "float32" else 2)


@pytest.mark.parametrize("hw", [1, 8])
def test_mean_gemm_spatial_extremes(hw):
    g, logits = head_graph(hw=hw, c=20)
    assert kernels_of(g, logits) == ["conv2d", "mean_matmul"]
    check_numerics(g, logits)


def test_postnorm_becomes_the_mean_gemm_prologue():
    g, logits = head_graph(postnorm=True)
    before = st.compile(g, logits, None)
    kinds = [k.kernel for k in before.kernels]
    assert "affine_act" not in kinds and "global_mean" not in kinds and kinds[-1] == "mean_matmul", kinds
    assert any("postnorm" in o for o in before.kernels[-1].fused_ops)
    check_numerics(g, logits, "float32")
    check_numerics(g, logits, "float16")


def test_requested_mean_keeps_its_kernel():
    g, outputs = head_graph(requested_mean=True)
    kinds = kernels_of(g, outputs)
    assert "global_mean" in kinds and "mean_matmul" not in kinds, kinds
    check_numerics(g, outputs)


def shortcut_graph(stride=2, size=7, requested_shortcut=False, v2=False):
    """A ResNet unit whose identity shortcut is subsample(x, stride) (last unit of a block)."""
    with st.Graph() as g:
        images = st.placeholder([2, size, size, 3], name="images")
        with slim.arg_scope([slim.conv2d], **BN):
            x = slim.conv2d(images, 16, [3, 3], scope="stem")
            x = x + slim.conv2d(x, 16, [1, 1], activation_fn=None, scope="pre")  # a raw residual sum (v2)
            inner = slim.batch_norm(x, activation_fn=tf.nn.relu, scope="preact", is_training=False) if v2 else x
            shortcut = resnet_utils.subsample(x, stride, "shortcut")
            r = slim.conv2d(inner, 8, [1, 1], scope="conv1")
            r = resnet_utils.conv2d_same(r, 8, 3, stride=stride, scope="conv2")
            r = slim.conv2d(r, 16, [1, 1], activation_fn=None, scope="conv3")
        out = tf.nn.relu(shortcut + r)
    return g, ([out, shortcut] if requested_shortcut else out)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("size", [7, 8])
def test_subsample_shortcut_is_read_strided_by_the_residual_conv(dtype, size):
    g, out = shortcut_graph(size=size)
    model = st.compile(g, out, None, dtype=dtype)
    kinds = [k.kernel for k in model.kernels]
    assert "max_pool2d" not in kinds, kinds
    last = model.kernels[-1]
    assert any(o.endswith("shortcut/MaxPool") for o in last.fused_ops), last.fused_ops
    oh = (size - 1) // 2 + 1
    itemsize = 4 if dtype == "float32" else 2
    # reads: conv2 output, weights, the shift vector (the BN scale folds into the weights: no
    # scale is read) and only the subsampled cells of x
    x_cells = 2 * oh * oh * 16
    assert last.bytes_read == itemsize * (2 * oh * oh * 8 + 8 * 16 + x_cells) + 16 * itemsize
    check_numerics(g, out, dtype)


def test_subsample_shortcut_with_preactivation_v2():
    g, out = shortcut_graph(v2=True)
    assert "max_pool2d" not in kernels_of(g, out)
    check_numerics(g, out)


def test_requested_shortcut_keeps_the_pool_kernel():
    g, outputs = shortcut_graph(requested_shortcut=True)
    assert "max_pool2d" in kernels_of(g, outputs)
    check_numerics(g, outputs)


def test_stride_one_subsample_is_removed_not_strided():
    g, out = shortcut_graph(stride=1)
    model = st.compile(g, out, None)
    assert all(k.kernel == "conv2d" for k in model.kernels)
    check_numerics(g, out)


def test_second_output_would_move_more_bytes_on_resnet_v2_50():
    """The measurement behind not giving the conv epilogue a second output (fused_ops.md)."""
    from slimtriton.fusion.pipeline import run_passes
    from slimtriton.fusion.program import Program
    from slimtriton.nets import nets_factory
    from slimtriton.report import second_output_bytes
    with st.Graph() as g:
        images = st.placeholder([32, 224, 224, 3], name="images")
        _, end_points = nets_factory.get_network_fn("resnet_v2_50", None)(images)
    snapshots = {}
    run_passes(Program.from_graph(g.nodes, [end_points["predictions"].node]), snapshots=snapshots)
    result = second_output_bytes(snapshots["pointwise"], "float16")
    assert len(result["rows"]) == 16
    assert {r["current"] for r in result["rows"]} == {"prologue", "mean-GEMM prologue"}
    assert all(r["second_output_bytes"] > r["current_bytes"] for r in result["rows"])
    assert result["second_output_bytes"] - result["current_bytes"] == 285_795_328
