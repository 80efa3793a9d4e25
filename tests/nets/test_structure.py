"""Nets that the manifest does not cover: their known structure (end point shapes,
variable counts and key variable names) and the published parameter counts."""
from __future__ import annotations

import pytest

from slimtriton import slim
from slimtriton.nets import inception_resnet_v2, inception_v4, mobilenet_v1, resnet_v1, resnet_v2, vgg

from .common import end_point_shapes, record, variable_shapes


def _params(graph, skip_moving=True) -> int:
    """Parameter count; moving BN statistics are not parameters in the published counts."""
    return sum(spec.size for name, spec in graph.variables.items()
               if not (skip_moving and name.rsplit("/", 1)[-1] in ("moving_mean", "moving_variance")))


def _no_gamma_every_conv_has_bn(variables):
    convs = [n[: -len("/weights")] for n in variables if n.endswith("/weights") and len(variables[n]) == 4]
    for conv in convs:
        if conv + "/biases" in variables:
            continue  # the residual up-projections and the logits: biases, no BN
        for v in ("beta", "moving_mean", "moving_variance"):
            assert f"{conv}/BatchNorm/{v}" in variables, f"{conv}: BatchNorm/{v} missing"
    assert not [n for n in variables if n.endswith("/gamma")], "the inception arg scope has no gamma"


def test_inception_v4_structure():
    g, _, (logits, end_points) = record(
        lambda x: inception_v4.inception_v4(x, num_classes=1001, is_training=False), [1, 299, 299, 3],
        inception_v4.inception_v4_arg_scope())
    shapes = end_point_shapes(end_points)
    expected = {"Conv2d_1a_3x3": [1, 149, 149, 32], "Conv2d_2a_3x3": [1, 147, 147, 32],
                "Conv2d_2b_3x3": [1, 147, 147, 64], "Mixed_3a": [1, 73, 73, 160], "Mixed_4a": [1, 71, 71, 192],
                "Mixed_5a": [1, 35, 35, 384], "Mixed_6a": [1, 17, 17, 1024], "Mixed_7a": [1, 8, 8, 1536],
                "AuxLogits": [1, 1001], "global_pool": [1, 1, 1, 1536], "PreLogitsFlatten": [1, 1536],
                "Logits": [1, 1001], "Predictions": [1, 1001]}
    expected.update({"Mixed_5" + c: [1, 35, 35, 384] for c in "bcde"})
    expected.update({"Mixed_6" + c: [1, 17, 17, 1024] for c in "bcdefgh"})
    expected.update({"Mixed_7" + c: [1, 8, 8, 1536] for c in "bcd"})
    assert shapes == expected
    variables = variable_shapes(g)
    # 149 BN convs x 4 variables, aux head 2 convs x 4 + fc 2, logits fc 2.
    assert len(variables) == 149 * 4 + 10 + 2
    assert variables["InceptionV4/Logits/Logits/weights"] == [1536, 1001]
    assert variables["InceptionV4/AuxLogits/Aux_logits/weights"] == [768, 1001]
    assert variables["InceptionV4/AuxLogits/Conv2d_2a/weights"] == [5, 5, 128, 768]
    assert variables["InceptionV4/Mixed_7d/Branch_2/Conv2d_0e_3x1/weights"] == [3, 1, 512, 256]
    _no_gamma_every_conv_has_bn(variables)
    assert logits.get_shape().as_list() == [1, 1001]


def test_inception_resnet_v2_structure():
    g, _, (logits, end_points) = record(
        lambda x: inception_resnet_v2.inception_resnet_v2(x, num_classes=1001, is_training=False),
        [1, 299, 299, 3], inception_resnet_v2.inception_resnet_v2_arg_scope())
    shapes = end_point_shapes(end_points)
    assert shapes["Mixed_5b"] == [1, 35, 35, 320]
    assert shapes["Mixed_6a"] == [1, 17, 17, 1088]
    assert shapes["PreAuxLogits"] == [1, 17, 17, 1088]
    assert shapes["Mixed_7a"] == [1, 8, 8, 2080]
    assert shapes["Conv2d_7b_1x1"] == [1, 8, 8, 1536]
    assert shapes["AuxLogits"] == [1, 1001]
    assert shapes["global_pool"] == [1, 1, 1, 1536]
    assert shapes["PreLogitsFlatten"] == [1, 1536]
    assert shapes["Logits"] == shapes["Predictions"] == [1, 1001]
    variables = variable_shapes(g)
    # slim.repeat scopes, as in the released checkpoint.
    assert variables["InceptionResnetV2/Repeat/block35_10/Conv2d_1x1/weights"] == [1, 1, 128, 320]
    assert variables["InceptionResnetV2/Repeat/block35_1/Conv2d_1x1/biases"] == [320]
    assert variables["InceptionResnetV2/Repeat_1/block17_20/Branch_1/Conv2d_0c_7x1/weights"] == [7, 1, 160, 192]
    assert variables["InceptionResnetV2/Repeat_2/block8_9/Conv2d_1x1/weights"] == [1, 1, 448, 2080]
    assert variables["InceptionResnetV2/Block8/Conv2d_1x1/weights"] == [1, 1, 448, 2080]
    assert "InceptionResnetV2/Repeat_2/block8_10/Conv2d_1x1/weights" not in variables
    assert variables["InceptionResnetV2/AuxLogits/Conv2d_2a_5x5/weights"] == [5, 5, 128, 768]
    assert variables["InceptionResnetV2/AuxLogits/Logits/weights"] == [768, 1001]
    assert variables["InceptionResnetV2/Logits/Logits/weights"] == [1536, 1001]
    _no_gamma_every_conv_has_bn(variables)


def test_inception_resnet_v2_parameter_count():
    # The published count (Keras' port of this net: 55,813,192 trainable parameters for 1000
    # classes without the auxiliary head).
    g, _, _ = record(
        lambda x: inception_resnet_v2.inception_resnet_v2(x, num_classes=1000, is_training=False,
                                                          create_aux_logits=False),
        [1, 299, 299, 3], inception_resnet_v2.inception_resnet_v2_arg_scope())
    assert _params(g) == 55_813_192


@pytest.mark.parametrize("fn, multiplier", [
    (mobilenet_v1.mobilenet_v1, 1.0), (mobilenet_v1.mobilenet_v1_075, 0.75),
    (mobilenet_v1.mobilenet_v1_050, 0.5), (mobilenet_v1.mobilenet_v1_025, 0.25)])
def test_mobilenet_v1_structure(fn, multiplier):
    g, _, (logits, end_points) = record(lambda x: fn(x, num_classes=1001, is_training=False),
                                        [1, 224, 224, 3], mobilenet_v1.mobilenet_v1_arg_scope(is_training=False))
    shapes = end_point_shapes(end_points)
    d = lambda n: max(int(n * multiplier), 8)  # noqa: E731
    assert shapes["Conv2d_0"] == [1, 112, 112, d(32)]
    assert shapes["Conv2d_1_depthwise"] == [1, 112, 112, d(32)]
    assert shapes["Conv2d_1_pointwise"] == [1, 112, 112, d(64)]
    assert shapes["Conv2d_13_pointwise"] == [1, 7, 7, d(1024)]
    assert shapes["AvgPool_1a"] == [1, 1, 1, d(1024)]
    assert shapes["Logits"] == shapes["Predictions"] == [1, 1001]
    assert len(shapes) == 1 + 13 * 2 + 3
    variables = variable_shapes(g)
    assert len(variables) == 5 + 13 * 10 + 2  # BN with gamma everywhere; logits conv with biases
    assert variables["MobilenetV1/Conv2d_1_depthwise/depthwise_weights"] == [3, 3, d(32), 1]
    assert variables["MobilenetV1/Conv2d_1_depthwise/BatchNorm/gamma"] == [d(32)]
    assert variables["MobilenetV1/Conv2d_13_pointwise/weights"] == [1, 1, d(1024), d(1024)]
    assert variables["MobilenetV1/Logits/Conv2d_1c_1x1/weights"] == [1, 1, d(1024), 1001]


def test_mobilenet_v1_parameter_count():
    # The published MobileNet-224 count for 1000 classes (4,231,976 trainable parameters).
    g, _, _ = record(lambda x: mobilenet_v1.mobilenet_v1(x, num_classes=1000, is_training=False),
                     [1, 224, 224, 3], mobilenet_v1.mobilenet_v1_arg_scope(is_training=False))
    assert _params(g) == 4_231_976


# Checked against tensorflow/models research/slim/nets/mobilenet_v1.py (and mobilenet_v1_test.py).
MOBILENET_V1_BASE_END_POINTS = ["Conv2d_0"] + [f"Conv2d_{i}_{kind}" for i in range(1, 14)
                                              for kind in ("depthwise", "pointwise")]


def test_mobilenet_v1_names_match_tf_slim():
    g, _, (logits, end_points) = record(lambda x: mobilenet_v1.mobilenet_v1(x, num_classes=1001, is_training=False),
                                        [1, 224, 224, 3], mobilenet_v1.mobilenet_v1_arg_scope(is_training=False))
    assert list(end_points) == MOBILENET_V1_BASE_END_POINTS + ["AvgPool_1a", "Logits", "Predictions"]
    variables = variable_shapes(g)
    bn = lambda scope, c: {f"{scope}/BatchNorm/{v}": [c]  # noqa: E731
                           for v in ("gamma", "beta", "moving_mean", "moving_variance")}
    first_layers = {"MobilenetV1/Conv2d_0/weights": [3, 3, 3, 32], **bn("MobilenetV1/Conv2d_0", 32),
                    "MobilenetV1/Conv2d_1_depthwise/depthwise_weights": [3, 3, 32, 1],
                    **bn("MobilenetV1/Conv2d_1_depthwise", 32),
                    "MobilenetV1/Conv2d_1_pointwise/weights": [1, 1, 32, 64],
                    **bn("MobilenetV1/Conv2d_1_pointwise", 64)}
    assert dict(list(variables.items())[:15]) == first_layers
    # Layer scopes in creation order: Conv2d_0, then depthwise / pointwise pairs, then the logits.
    scopes = list(dict.fromkeys(name.rsplit("/", 2)[0] if "/BatchNorm/" in name else name.rsplit("/", 1)[0]
                                for name in variables))
    assert scopes == ["MobilenetV1/" + e for e in MOBILENET_V1_BASE_END_POINTS] + ["MobilenetV1/Logits/Conv2d_1c_1x1"]
    assert {n: s for n, s in variables.items() if "/Logits/" in n} == {
        "MobilenetV1/Logits/Conv2d_1c_1x1/weights": [1, 1, 1024, 1001],
        "MobilenetV1/Logits/Conv2d_1c_1x1/biases": [1001]}
    assert not [n for n in variables if n.endswith("_depthwise/biases") or n.endswith("_pointwise/biases")]


def test_mobilenet_v1_defaults_match_tf_slim():
    import inspect
    base = inspect.signature(mobilenet_v1.mobilenet_v1_base).parameters
    assert {k: base[k].default for k in ("final_endpoint", "min_depth", "depth_multiplier", "conv_defs",
                                          "output_stride", "use_explicit_padding", "scope")} == {
        "final_endpoint": "Conv2d_13_pointwise", "min_depth": 8, "depth_multiplier": 1.0, "conv_defs": None,
        "output_stride": None, "use_explicit_padding": False, "scope": None}
    net = inspect.signature(mobilenet_v1.mobilenet_v1).parameters
    assert {k: net[k].default for k in ("num_classes", "dropout_keep_prob", "is_training", "min_depth",
                                         "depth_multiplier", "conv_defs", "spatial_squeeze", "reuse", "scope",
                                         "global_pool")} == {
        "num_classes": 1000, "dropout_keep_prob": 0.999, "is_training": True, "min_depth": 8,
        "depth_multiplier": 1.0, "conv_defs": None, "spatial_squeeze": True, "reuse": None,
        "scope": "MobilenetV1", "global_pool": False}
    assert mobilenet_v1.mobilenet_v1.default_image_size == 224
    for fn, multiplier in ((mobilenet_v1.mobilenet_v1_075, 0.75), (mobilenet_v1.mobilenet_v1_050, 0.5),
                           (mobilenet_v1.mobilenet_v1_025, 0.25)):
        assert fn.keywords == {"depth_multiplier": multiplier} and fn.func is mobilenet_v1.mobilenet_v1
    assert [(type(c).__name__, c.kernel, c.stride, c.depth) for c in mobilenet_v1.MOBILENETV1_CONV_DEFS] == (
        [("Conv", [3, 3], 2, 32)] + [("DepthSepConv", [3, 3], s, d) for s, d in (
            (1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), (1, 512), (1, 512), (1, 512), (1, 512),
            (1, 512), (2, 1024), (1, 1024))])
    key = slim.arg_scope_func_key
    scope = mobilenet_v1.mobilenet_v1_arg_scope()
    conv, sep, bn = (scope[key(slim.conv2d)], scope[key(slim.separable_conv2d)], scope[key(slim.batch_norm)])
    assert conv["weights_initializer"].stddev == sep["weights_initializer"].stddev == 0.09
    assert conv["weights_regularizer"] is not None and sep["weights_regularizer"] is None  # regularize_depthwise=False
    assert mobilenet_v1.mobilenet_v1_arg_scope(regularize_depthwise=True)[key(slim.separable_conv2d)][
        "weights_regularizer"] is not None
    assert {k: bn[k] for k in ("center", "scale", "decay", "epsilon", "is_training")} == {
        "center": True, "scale": True, "decay": 0.9997, "epsilon": 0.001, "is_training": True}
    assert "is_training" not in mobilenet_v1.mobilenet_v1_arg_scope(is_training=None)[key(slim.batch_norm)]


@pytest.mark.parametrize("size, pooled", [(128, [1, 1, 1, 1024]), (320, [1, 2, 2, 1024])])
def test_mobilenet_v1_avg_pool_kernel_reduced_for_small_input(size, pooled):
    # AvgPool_1a: kernel min(7, feature size) VALID, so 128 -> 4x4 -> 1x1 but 320 -> 10x10 -> 2x2
    # (slim.avg_pool2d keeps its default stride 2).
    _, _, (net, end_points) = record(lambda x: mobilenet_v1.mobilenet_v1(x, num_classes=0, is_training=False),
                                     [1, size, size, 3], mobilenet_v1.mobilenet_v1_arg_scope(is_training=False))
    assert end_point_shapes(end_points)["AvgPool_1a"] == pooled
    _, _, (net, end_points) = record(
        lambda x: mobilenet_v1.mobilenet_v1(x, num_classes=0, is_training=False, global_pool=True),
        [1, size, size, 3], mobilenet_v1.mobilenet_v1_arg_scope(is_training=False))
    assert list(end_points)[-1] == "global_pool" and "AvgPool_1a" not in end_points
    assert end_point_shapes(end_points)["global_pool"] == [1, 1, 1, 1024]


def test_mobilenet_v1_explicit_padding_uses_kernel_height_for_both_dims():
    # TF-Slim's _fixed_padding sizes both paddings from kernel_size[0]: a [3, 1] kernel pads the width too.
    conv_defs = [mobilenet_v1.Conv(kernel=[3, 1], stride=1, depth=8)]
    _, _, (net, _) = record(lambda x: mobilenet_v1.mobilenet_v1_base(
        x, final_endpoint="Conv2d_0", conv_defs=conv_defs, use_explicit_padding=True), [1, 8, 8, 3],
        mobilenet_v1.mobilenet_v1_arg_scope(is_training=False))
    assert net.get_shape().as_list() == [1, 8, 10, 8]


@pytest.mark.parametrize("fn, convs, params", [
    (vgg.vgg_a, 8, 132_863_336), (vgg.vgg_19, 16, 143_667_240)])
def test_vgg_structure(fn, convs, params):
    g, _, (logits, end_points) = record(lambda x: fn(x, num_classes=1000, is_training=False),
                                        [1, 224, 224, 3], vgg.vgg_arg_scope())
    scope = fn.__name__
    variables = variable_shapes(g)
    assert len(variables) == 2 * (convs + 3)
    assert variables[f"{scope}/fc6/weights"] == [7, 7, 512, 4096]
    assert variables[f"{scope}/fc8/weights"] == [1, 1, 4096, 1000]
    assert _params(g) == params  # the published VGG-11 / VGG-19 counts
    shapes = end_point_shapes(end_points)
    assert shapes[f"{scope}/pool5"] == [1, 7, 7, 512]
    assert shapes[f"{scope}/fc8"] == [1, 1000]
    assert logits.get_shape().as_list() == [1, 1000]


@pytest.mark.parametrize("fn, params", [
    (resnet_v1.resnet_v1_152, 60_192_808), (resnet_v1.resnet_v1_200, None),
    (resnet_v2.resnet_v2_101, None), (resnet_v2.resnet_v2_200, None)])
def test_deep_resnets_structure(fn, params):
    g, _, (logits, end_points) = record(lambda x: fn(x, num_classes=1000, is_training=False),
                                        [1, 224, 224, 3], resnet_v1.resnet_arg_scope())
    scope = fn.__name__
    units = {"resnet_v1_152": (3, 8, 36, 3), "resnet_v1_200": (3, 24, 36, 3),
             "resnet_v2_101": (3, 4, 23, 3), "resnet_v2_200": (3, 24, 36, 3)}[scope]
    version = scope.split("_")[1]
    for b, n in enumerate(units, start=1):
        assert f"{scope}/block{b}/unit_{n}/bottleneck_{version}" in end_points
        assert f"{scope}/block{b}/unit_{n + 1}/bottleneck_{version}" not in end_points
    shapes = end_point_shapes(end_points)
    assert shapes[f"{scope}/block4"] == [1, 7, 7, 2048]
    assert shapes["global_pool"] == [1, 1, 1, 2048]
    assert shapes[f"{scope}/logits"] == [1, 1, 1, 1000]
    assert shapes[f"{scope}/spatial_squeeze"] == shapes["predictions"] == [1, 1000]
    assert logits.get_shape().as_list() == [1, 1000]
    if params is not None:
        assert _params(g) == params  # the published ResNet-152 count


def test_resnet_output_stride_uses_atrous_convolution():
    g, _, (net, end_points) = record(
        lambda x: resnet_v1.resnet_v1_50(x, None, is_training=False, global_pool=False, output_stride=8),
        [1, 224, 224, 3], resnet_v1.resnet_arg_scope())
    assert net.get_shape().as_list() == [1, 28, 28, 2048]
    assert "global_pool" not in end_points and "predictions" not in end_points
    rates = {n.name: n.attrs["dilations"] for n in g.nodes if "block4/unit_1/bottleneck_v1/conv2" in n.name
             and "dilations" in n.attrs}
    assert rates and all(r == (4, 4) for r in rates.values()), rates


def test_resnet_output_stride_errors_name_the_problem():
    with pytest.raises(ValueError, match="multiple of 4"):
        record(lambda x: resnet_v2.resnet_v2_50(x, 10, output_stride=6), [1, 64, 64, 3],
               resnet_v2.resnet_arg_scope())
    with pytest.raises(ValueError, match="output_stride"):
        record(lambda x: resnet_v1.resnet_v1_50(x, 10, output_stride=64), [1, 64, 64, 3],
               resnet_v1.resnet_arg_scope())


def test_num_classes_none_returns_features():
    _, _, (net, end_points) = record(
        lambda x: inception_v4.inception_v4(x, num_classes=None, is_training=False), [1, 299, 299, 3],
        inception_v4.inception_v4_arg_scope())
    assert net.get_shape().as_list() == [1, 1, 1, 1536]
    assert "Logits" not in end_points and "AuxLogits" not in end_points
