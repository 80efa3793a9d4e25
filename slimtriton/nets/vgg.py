"""VGG nets (Simonyan & Zisserman, arXiv:1409.1556): TF-Slim's `nets/vgg.py`, name for name.

Configurations A (vgg_a, 11 layers), D (vgg_16) and E (vgg_19). The fully
connected layers are convolutions, as in the released checkpoints: fc6 is a 7x7
'VALID' conv (`fc_conv_padding`), fc7 and fc8 are 1x1 convs. End points are
`<scope>/convN/convN_M`, `<scope>/poolN`, `<scope>/fc6`, `/fc7`, `/fc8`
(fc8 squeezed to [B, C] when spatial_squeeze), plus 'global_pool' when asked.
"""
from __future__ import annotations

from slimtriton import slim
from slimtriton import tf


def vgg_arg_scope(weight_decay=0.0005):
    """ReLU, L2 weight decay and zero biases on conv / fully connected layers; 'SAME' convs."""
    with slim.arg_scope([slim.conv2d, slim.fully_connected], activation_fn=tf.nn.relu,
                        weights_regularizer=slim.l2_regularizer(weight_decay),
                        biases_initializer=tf.zeros_initializer()):
        with slim.arg_scope([slim.conv2d], padding="SAME") as arg_sc:
            return arg_sc


def _vgg(inputs, repeats, num_classes, is_training, dropout_keep_prob, spatial_squeeze, reuse, scope,
         default_scope, fc_conv_padding, global_pool):
    """The VGG body shared by the three configurations: `repeats[i]` 3x3 convs in block i+1."""
    with tf.variable_scope(scope, default_scope, [inputs], reuse=reuse) as sc:
        end_points_collection = sc.original_name_scope + "_end_points"
        with slim.arg_scope([slim.conv2d, slim.fully_connected, slim.max_pool2d],
                            outputs_collections=end_points_collection):
            net = inputs
            for block, (n, depth) in enumerate(zip(repeats, (64, 128, 256, 512, 512)), start=1):
                net = slim.repeat(net, n, slim.conv2d, depth, [3, 3], scope="conv%d" % block)
                net = slim.max_pool2d(net, [2, 2], scope="pool%d" % block)
            # Fully connected layers as convolutions.
            net = slim.conv2d(net, 4096, [7, 7], padding=fc_conv_padding, scope="fc6")
            net = slim.dropout(net, dropout_keep_prob, is_training=is_training, scope="dropout6")
            net = slim.conv2d(net, 4096, [1, 1], scope="fc7")
            end_points = slim.utils.convert_collection_to_dict(end_points_collection)
            if global_pool:
                net = tf.reduce_mean(net, [1, 2], keepdims=True, name="global_pool")
                end_points["global_pool"] = net
            if num_classes:
                net = slim.dropout(net, dropout_keep_prob, is_training=is_training, scope="dropout7")
                net = slim.conv2d(net, num_classes, [1, 1], activation_fn=None, normalizer_fn=None,
                                  scope="fc8")
                if spatial_squeeze:
                    net = tf.squeeze(net, [1, 2], name="fc8/squeezed")
                end_points[sc.name + "/fc8"] = net
            return net, end_points


def vgg_a(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.5, spatial_squeeze=True,
          reuse=None, scope="vgg_a", fc_conv_padding="VALID", global_pool=False):
    """VGG configuration A (11 weight layers); returns (net, end_points).
    num_classes 0/None returns the fc7 features (pooled if global_pool)."""
    return _vgg(inputs, (1, 1, 2, 2, 2), num_classes, is_training, dropout_keep_prob, spatial_squeeze,
                reuse, scope, "vgg_a", fc_conv_padding, global_pool)


vgg_a.default_image_size = 224


def vgg_16(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.5, spatial_squeeze=True,
           reuse=None, scope="vgg_16", fc_conv_padding="VALID", global_pool=False):
    """VGG configuration D (16 weight layers); see `vgg_a`."""
    return _vgg(inputs, (2, 2, 3, 3, 3), num_classes, is_training, dropout_keep_prob, spatial_squeeze,
                reuse, scope, "vgg_16", fc_conv_padding, global_pool)


vgg_16.default_image_size = 224


def vgg_19(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.5, spatial_squeeze=True,
           reuse=None, scope="vgg_19", fc_conv_padding="VALID", global_pool=False):
    """VGG configuration E (19 weight layers); see `vgg_a`."""
    return _vgg(inputs, (2, 2, 4, 4, 4), num_classes, is_training, dropout_keep_prob, spatial_squeeze,
                reuse, scope, "vgg_19", fc_conv_padding, global_pool)


vgg_19.default_image_size = 224

# Aliases by configuration letter.
vgg_d = vgg_16
vgg_e = vgg_19
