"""Options of the models copy that the manifest does not exercise: bounded activations,
reuse, global_pool / spatial_squeeze, and the errors for bad arguments."""
from __future__ import annotations

import numpy as np
import pytest

import slimtriton as st
from slimtriton import slim, tf
from slimtriton.nets import inception_resnet_v2, inception_v3, resnet_utils, resnet_v1, vgg
from slimtriton.session import Session
from slimtriton.weights import init_weights

from .common import record


def test_clip_by_value_clips():
    with st.Graph() as g:
        x = st.placeholder([2, 5], name="x")
        y = resnet_utils.clip_by_value(x, -6.0, 6.0)
    values = np.array([[-10.0, -6.0, -1.5, 0.0, 2.0], [5.99, 6.0, 6.5, 100.0, -6.01]], np.float32)
    out = Session(g, {}, backend="reference").run(y, {x: values})
    np.testing.assert_array_equal(out, np.clip(values, -6.0, 6.0))


def test_bounded_activations_bound_every_unit():
    def build(images):
        with slim.arg_scope([resnet_v1.bottleneck], use_bounded_activations=True):
            return resnet_v1.resnet_v1(
                images, [resnet_v1.resnet_v1_block("block1", base_depth=2, num_units=2, stride=2)],
                num_classes=3, is_training=False, scope="bounded")
    g, images, (net, end_points) = record(build, [1, 16, 16, 3], resnet_utils.resnet_arg_scope())
    units = [k for k in end_points if k.endswith("bottleneck_v1")]
    assert len(units) == 2
    weights = init_weights(g, seed=0)
    x = np.random.default_rng(0).normal(size=(1, 16, 16, 3)).astype(np.float32) * 50
    outs = Session(g, weights, backend="reference").run([end_points[k] for k in units], {images: x})
    for out in outs:
        assert out.min() >= 0.0 and out.max() <= 6.0


def test_inception_resnet_v2_relu6_records():
    g, _, (logits, _) = record(
        lambda x: inception_resnet_v2.inception_resnet_v2(x, num_classes=5, is_training=False,
                                                          create_aux_logits=False,
                                                          activation_fn=tf.nn.relu6),
        [1, 299, 299, 3], inception_resnet_v2.inception_resnet_v2_arg_scope())
    assert logits.get_shape().as_list() == [1, 5]
    assert any(n.op is st.Op.MAXIMUM for n in g.nodes)  # the residual clip


def test_reuse_shares_variables():
    with st.Graph() as g:
        a = st.placeholder([1, 224, 224, 3], name="a")
        b = st.placeholder([1, 224, 224, 3], name="b")
        with slim.arg_scope(vgg.vgg_arg_scope()):
            vgg.vgg_a(a, num_classes=10, is_training=False)
            n_vars = len(g.variables)
            vgg.vgg_a(b, num_classes=10, is_training=False, reuse=True)
    assert len(g.variables) == n_vars == 22


def test_global_pool_and_spatial_squeeze_options():
    _, _, (net, end_points) = record(
        lambda x: inception_v3.inception_v3(x, num_classes=7, is_training=False, global_pool=True,
                                            spatial_squeeze=False, create_aux_logits=False),
        [1, 320, 320, 3], inception_v3.inception_v3_arg_scope())
    assert end_points["global_pool"].get_shape().as_list() == [1, 1, 1, 2048]
    assert "AvgPool_1a" not in end_points and "AuxLogits" not in end_points
    assert net.get_shape().as_list() == [1, 1, 1, 7]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="depth_multiplier"):
        record(lambda x: inception_v3.inception_v3(x, depth_multiplier=0), [1, 299, 299, 3],
               inception_v3.inception_v3_arg_scope())
    with pytest.raises(ValueError, match="final_endpoint"):
        record(lambda x: inception_v3.inception_v3_base(x, final_endpoint="Mixed_9z"), [1, 299, 299, 3])
    with pytest.raises(ValueError, match="output_stride"):
        record(lambda x: inception_resnet_v2.inception_resnet_v2_base(x, output_stride=4), [1, 299, 299, 3])


def test_mobilenet_explicit_padding_and_output_stride():
    from slimtriton.nets import mobilenet_v1
    g, _, (net, end_points) = record(
        lambda x: mobilenet_v1.mobilenet_v1_base(x, use_explicit_padding=True, output_stride=16),
        [1, 224, 224, 3], mobilenet_v1.mobilenet_v1_arg_scope(is_training=False))
    assert net.get_shape().as_list() == [1, 14, 14, 1024]
    assert end_points["Conv2d_12_depthwise"].get_shape().as_list() == [1, 14, 14, 512]
    assert any(n.op is st.Op.PAD for n in g.nodes)
    dilated = [n for n in g.nodes if n.op is st.Op.DEPTHWISE_CONV2D and n.attrs["dilations"] == (2, 2)]
    # Conv2d_12 would have stride 2: it runs with stride 1, and the layers after it are atrous.
    assert [n.name.split("/")[1] for n in dilated] == ["Conv2d_13_depthwise"]


def test_resnet_store_non_strided_activations():
    _, _, (_, end_points) = record(
        lambda x: resnet_v1.resnet_v1_50(x, 10, is_training=False, store_non_strided_activations=True),
        [1, 224, 224, 3], resnet_utils.resnet_arg_scope())
    # Block end points hold the activations before the block's stride; the next block sees them strided.
    assert end_points["resnet_v1_50/block1"].get_shape().as_list() == [1, 56, 56, 256]
    assert end_points["resnet_v1_50/block2/unit_1/bottleneck_v1"].get_shape().as_list() == [1, 28, 28, 512]
    assert end_points["resnet_v1_50/block4"].get_shape().as_list() == [1, 7, 7, 2048]
