"""Build a net by name, inside its own arg scope (TF-Slim's `nets/nets_factory.py`).

    network_fn = nets_factory.get_network_fn('resnet_v1_50', num_classes=1000)
    with st.Graph():
        images = st.placeholder([1, network_fn.default_image_size, network_fn.default_image_size, 3])
        logits, end_points = network_fn(images)

`default_num_classes[name]` is the class count of the published checkpoint
(1001 = ImageNet plus a background class, except VGG, AlexNet and ResNet v1;
FaceNet's inception_resnet_v1 gives a 128-d embedding).
"""
from __future__ import annotations

import functools

from slimtriton import slim
from slimtriton.nets import (alexnet, inception_resnet_v1, inception_resnet_v2, inception_v1,
                             inception_v2, inception_v3, inception_v4, mobilenet_v1, resnet_v1,
                             resnet_v2, vgg)


def facenet_inception_resnet_v1(images, num_classes=128, is_training=False, dropout_keep_prob=0.8,
                                reuse=None, scope="InceptionResnetV1"):
    """FaceNet's net with the factory's calling convention: num_classes is the embedding size."""
    return inception_resnet_v1.inception_resnet_v1(images, is_training=is_training,
                                                   dropout_keep_prob=dropout_keep_prob,
                                                   bottleneck_layer_size=num_classes, reuse=reuse,
                                                   scope=scope)


facenet_inception_resnet_v1.default_image_size = inception_resnet_v1.inception_resnet_v1.default_image_size

networks_map = {
    "alexnet_v2": alexnet.alexnet_v2,
    "vgg_a": vgg.vgg_a,
    "vgg_16": vgg.vgg_16,
    "vgg_19": vgg.vgg_19,
    "inception_v1": inception_v1.inception_v1,
    "inception_v2": inception_v2.inception_v2,
    "inception_v3": inception_v3.inception_v3,
    "inception_v4": inception_v4.inception_v4,
    "inception_resnet_v2": inception_resnet_v2.inception_resnet_v2,
    "inception_resnet_v1": facenet_inception_resnet_v1,
    "resnet_v1_50": resnet_v1.resnet_v1_50,
    "resnet_v1_101": resnet_v1.resnet_v1_101,
    "resnet_v1_152": resnet_v1.resnet_v1_152,
    "resnet_v1_200": resnet_v1.resnet_v1_200,
    "resnet_v2_50": resnet_v2.resnet_v2_50,
    "resnet_v2_101": resnet_v2.resnet_v2_101,
    "resnet_v2_152": resnet_v2.resnet_v2_152,
    "resnet_v2_200": resnet_v2.resnet_v2_200,
    "mobilenet_v1": mobilenet_v1.mobilenet_v1,
    "mobilenet_v1_075": mobilenet_v1.mobilenet_v1_075,
    "mobilenet_v1_050": mobilenet_v1.mobilenet_v1_050,
    "mobilenet_v1_025": mobilenet_v1.mobilenet_v1_025,
}

arg_scopes_map = {
    "alexnet_v2": alexnet.alexnet_v2_arg_scope,
    "vgg_a": vgg.vgg_arg_scope,
    "vgg_16": vgg.vgg_arg_scope,
    "vgg_19": vgg.vgg_arg_scope,
    "inception_v1": inception_v1.inception_v1_arg_scope,
    "inception_v2": inception_v2.inception_v2_arg_scope,
    "inception_v3": inception_v3.inception_v3_arg_scope,
    "inception_v4": inception_v4.inception_v4_arg_scope,
    "inception_resnet_v2": inception_resnet_v2.inception_resnet_v2_arg_scope,
    "inception_resnet_v1": inception_resnet_v1.inception_resnet_v1_arg_scope,
    "resnet_v1_50": resnet_v1.resnet_arg_scope,
    "resnet_v1_101": resnet_v1.resnet_arg_scope,
    "resnet_v1_152": resnet_v1.resnet_arg_scope,
    "resnet_v1_200": resnet_v1.resnet_arg_scope,
    "resnet_v2_50": resnet_v2.resnet_arg_scope,
    "resnet_v2_101": resnet_v2.resnet_arg_scope,
    "resnet_v2_152": resnet_v2.resnet_arg_scope,
    "resnet_v2_200": resnet_v2.resnet_arg_scope,
    "mobilenet_v1": mobilenet_v1.mobilenet_v1_arg_scope,
    "mobilenet_v1_075": mobilenet_v1.mobilenet_v1_arg_scope,
    "mobilenet_v1_050": mobilenet_v1.mobilenet_v1_arg_scope,
    "mobilenet_v1_025": mobilenet_v1.mobilenet_v1_arg_scope,
}

default_num_classes = {
    "alexnet_v2": 1000, "vgg_a": 1000, "vgg_16": 1000, "vgg_19": 1000,
    "inception_v1": 1001, "inception_v2": 1001, "inception_v3": 1001, "inception_v4": 1001,
    "inception_resnet_v2": 1001, "inception_resnet_v1": 128,
    "resnet_v1_50": 1000, "resnet_v1_101": 1000, "resnet_v1_152": 1000, "resnet_v1_200": 1000,
    "resnet_v2_50": 1001, "resnet_v2_101": 1001, "resnet_v2_152": 1001, "resnet_v2_200": 1001,
    "mobilenet_v1": 1001, "mobilenet_v1_075": 1001, "mobilenet_v1_050": 1001, "mobilenet_v1_025": 1001,
}


def get_network_fn(name, num_classes, weight_decay=0.0, is_training=False):
    """A function `network_fn(images, **kwargs) -> (logits, end_points)` that records net
    `name` inside its arg scope; it carries `.default_image_size`.

    num_classes None uses the published checkpoint's count (`default_num_classes`);
    0 builds the net without its logits layer where the net supports that.
    """
    if name not in networks_map:
        raise ValueError(f"get_network_fn: unknown network {name!r}; known: {sorted(networks_map)}")
    if num_classes is None:
        num_classes = default_num_classes[name]
    func = networks_map[name]

    @functools.wraps(func)
    def network_fn(images, **kwargs):
        arg_scope = arg_scopes_map[name](weight_decay=weight_decay)
        with slim.arg_scope(arg_scope):
            return func(images, num_classes=num_classes, is_training=is_training, **kwargs)

    network_fn.default_image_size = func.default_image_size
    return network_fn
