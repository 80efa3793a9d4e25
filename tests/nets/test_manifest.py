"""Every net in nets_manifest.json (recorded from real TF-Slim / FaceNet code) must record
exactly the same variable names and shapes, and the same end-point keys and shapes,
so that published checkpoints load by name.

Our nets follow the tensorflow/models copy; its only differences from tf_slim 1.1.0's
copy at the manifest's call are the documented extra end points listed in EXTRA_END_POINTS
(ResNet is called with spatial_squeeze=False, which reproduces tf_slim's 4-D logits)."""
from __future__ import annotations

import pytest

from slimtriton.nets import (alexnet, inception_resnet_v1, inception_v1, inception_v2, inception_v3,
                             resnet_v1, resnet_v2, vgg)

from .common import end_point_shapes, load_manifest, record, variable_shapes

MANIFEST = load_manifest()


def _resnet(fn, num_classes):
    return lambda images: fn(images, num_classes=num_classes, is_training=False, spatial_squeeze=False)


# name: (image size, build(images), arg scope factory, models-copy end points absent from tf_slim)
CALLS = {
    "alexnet_v2": (224, lambda x: alexnet.alexnet_v2(x, num_classes=1000, is_training=False),
                   alexnet.alexnet_v2_arg_scope, set()),
    "inception_resnet_v1": (160, lambda x: inception_resnet_v1.inference(
        x, keep_probability=0.8, phase_train=False, bottleneck_layer_size=128), None, set()),
    "inception_v1": (224, lambda x: inception_v1.inception_v1(x, num_classes=1001, is_training=False),
                     inception_v1.inception_v1_arg_scope, {"AvgPool_0a_7x7"}),
    "inception_v2": (224, lambda x: inception_v2.inception_v2(x, num_classes=1001, is_training=False),
                     inception_v2.inception_v2_arg_scope, {"AvgPool_1a"}),
    "inception_v3": (299, lambda x: inception_v3.inception_v3(x, num_classes=1001, is_training=False),
                     inception_v3.inception_v3_arg_scope, {"AvgPool_1a"}),
    "resnet_v1_50": (224, _resnet(resnet_v1.resnet_v1_50, 1000), resnet_v1.resnet_arg_scope, {"global_pool"}),
    "resnet_v1_101": (224, _resnet(resnet_v1.resnet_v1_101, 1000), resnet_v1.resnet_arg_scope, {"global_pool"}),
    "resnet_v2_50": (224, _resnet(resnet_v2.resnet_v2_50, 1001), resnet_v2.resnet_arg_scope, {"global_pool"}),
    "resnet_v2_152": (224, _resnet(resnet_v2.resnet_v2_152, 1001), resnet_v2.resnet_arg_scope, {"global_pool"}),
    "vgg_16": (224, lambda x: vgg.vgg_16(x, num_classes=1000, is_training=False), vgg.vgg_arg_scope, set()),
}


def test_every_manifest_net_is_covered():
    assert sorted(CALLS) == sorted(MANIFEST)


@pytest.fixture(scope="module", params=sorted(CALLS))
def built(request):
    name = request.param
    size, build, arg_scope, extra = CALLS[name]
    graph, _, (net, end_points) = record(build, [1, size, size, 3],
                                          arg_scope() if arg_scope is not None else None)
    return name, graph, net, end_points, extra


def test_variables_match_manifest(built):
    name, graph, _, _, _ = built
    ours = variable_shapes(graph)
    expected = MANIFEST[name]["variables"]
    missing = sorted(set(expected) - set(ours))
    unexpected = sorted(set(ours) - set(expected))
    assert not missing and not unexpected, (
        f"{name}: missing {missing[:10]} ({len(missing)}), unexpected {unexpected[:10]} ({len(unexpected)})")
    wrong = {k: (ours[k], expected[k]) for k in expected if ours[k] != expected[k]}
    assert not wrong, f"{name}: mis-shaped variables (ours, TF-Slim): {wrong}"


def test_end_points_match_manifest(built):
    name, _, _, end_points, extra = built
    ours = end_point_shapes(end_points)
    expected = MANIFEST[name]["end_points"]
    assert extra <= set(ours), f"{name}: documented models-copy end points {extra - set(ours)} missing"
    assert set(ours) - extra == set(expected), (
        f"{name}: missing {sorted(set(expected) - set(ours))}, unexpected {sorted(set(ours) - extra - set(expected))}")
    wrong = {k: (ours[k], expected[k]) for k in expected if ours[k] != expected[k]}
    assert not wrong, f"{name}: end point shapes (ours, TF-Slim): {wrong}"


def test_output_shape_matches_manifest(built):
    name, _, net, _, _ = built
    assert net.get_shape().as_list() == MANIFEST[name]["output_shape"]
