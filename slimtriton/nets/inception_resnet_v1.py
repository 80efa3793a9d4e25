"""Inception-ResNet-v1 as FaceNet trains it (davidsandberg/facenet `src/models/inception_resnet_v1.py`),
name for name, so FaceNet checkpoints load.

Stem, 5 x block35 (scale 0.17), Reduction-A (192, 192, 256, 384), 10 x block17
(0.10), Reduction-B, 5 x block8 (0.20), one block8 without activation, global
average pool, flatten, dropout and a `Bottleneck` fully connected layer (BatchNorm,
no activation) giving the embedding (128-d by default; FaceNet L2-normalizes it
outside the net). Its arg scope (in `inference`): xavier weights, BatchNorm
decay 0.995, epsilon 0.001, no gamma.
"""
from __future__ import annotations

from slimtriton import slim
from slimtriton import tf


def _residual(net, up, scale, activation_fn):
    net = net + scale * up
    if activation_fn:
        net = activation_fn(net)
    return net


def block35(net, scale=1.0, activation_fn=tf.nn.relu, scope=None, reuse=None):
    """Inception-ResNet-A: the 35x35 residual block."""
    with tf.variable_scope(scope, "Block35", [net], reuse=reuse):
        with tf.variable_scope("Branch_0"):
            tower_conv = slim.conv2d(net, 32, 1, scope="Conv2d_1x1")
        with tf.variable_scope("Branch_1"):
            tower_conv1_0 = slim.conv2d(net, 32, 1, scope="Conv2d_0a_1x1")
            tower_conv1_1 = slim.conv2d(tower_conv1_0, 32, 3, scope="Conv2d_0b_3x3")
        with tf.variable_scope("Branch_2"):
            tower_conv2_0 = slim.conv2d(net, 32, 1, scope="Conv2d_0a_1x1")
            tower_conv2_1 = slim.conv2d(tower_conv2_0, 32, 3, scope="Conv2d_0b_3x3")
            tower_conv2_2 = slim.conv2d(tower_conv2_1, 32, 3, scope="Conv2d_0c_3x3")
        mixed = tf.concat(axis=3, values=[tower_conv, tower_conv1_1, tower_conv2_2])
        up = slim.conv2d(mixed, net.get_shape()[3], 1, normalizer_fn=None, activation_fn=None,
                         scope="Conv2d_1x1")
        return _residual(net, up, scale, activation_fn)


def block17(net, scale=1.0, activation_fn=tf.nn.relu, scope=None, reuse=None):
    """Inception-ResNet-B: the 17x17 residual block."""
    with tf.variable_scope(scope, "Block17", [net], reuse=reuse):
        with tf.variable_scope("Branch_0"):
            tower_conv = slim.conv2d(net, 128, 1, scope="Conv2d_1x1")
        with tf.variable_scope("Branch_1"):
            tower_conv1_0 = slim.conv2d(net, 128, 1, scope="Conv2d_0a_1x1")
            tower_conv1_1 = slim.conv2d(tower_conv1_0, 128, [1, 7], scope="Conv2d_0b_1x7")
            tower_conv1_2 = slim.conv2d(tower_conv1_1, 128, [7, 1], scope="Conv2d_0c_7x1")
        mixed = tf.concat(axis=3, values=[tower_conv, tower_conv1_2])
        up = slim.conv2d(mixed, net.get_shape()[3], 1, normalizer_fn=None, activation_fn=None,
                         scope="Conv2d_1x1")
        return _residual(net, up, scale, activation_fn)


def block8(net, scale=1.0, activation_fn=tf.nn.relu, scope=None, reuse=None):
    """Inception-ResNet-C: the 8x8 residual block."""
    with tf.variable_scope(scope, "Block8", [net], reuse=reuse):
        with tf.variable_scope("Branch_0"):
            tower_conv = slim.conv2d(net, 192, 1, scope="Conv2d_1x1")
        with tf.variable_scope("Branch_1"):
            tower_conv1_0 = slim.conv2d(net, 192, 1, scope="Conv2d_0a_1x1")
            tower_conv1_1 = slim.conv2d(tower_conv1_0, 192, [1, 3], scope="Conv2d_0b_1x3")
            tower_conv1_2 = slim.conv2d(tower_conv1_1, 192, [3, 1], scope="Conv2d_0c_3x1")
        mixed = tf.concat(axis=3, values=[tower_conv, tower_conv1_2])
        up = slim.conv2d(mixed, net.get_shape()[3], 1, normalizer_fn=None, activation_fn=None,
                         scope="Conv2d_1x1")
        return _residual(net, up, scale, activation_fn)


def reduction_a(net, k, l, m, n):
    """Reduction-A with the paper's filter counts k, l, m, n (Table 1 of arXiv:1602.07261)."""
    with tf.variable_scope("Branch_0"):
        tower_conv = slim.conv2d(net, n, 3, stride=2, padding="VALID", scope="Conv2d_1a_3x3")
    with tf.variable_scope("Branch_1"):
        tower_conv1_0 = slim.conv2d(net, k, 1, scope="Conv2d_0a_1x1")
        tower_conv1_1 = slim.conv2d(tower_conv1_0, l, 3, scope="Conv2d_0b_3x3")
        tower_conv1_2 = slim.conv2d(tower_conv1_1, m, 3, stride=2, padding="VALID", scope="Conv2d_1a_3x3")
    with tf.variable_scope("Branch_2"):
        tower_pool = slim.max_pool2d(net, 3, stride=2, padding="VALID", scope="MaxPool_1a_3x3")
    return tf.concat(axis=3, values=[tower_conv, tower_conv1_2, tower_pool])


def reduction_b(net):
    """Reduction-B (17x17 -> 8x8 for a 299 input; 8x8 -> 3x3 for FaceNet's 160)."""
    with tf.variable_scope("Branch_0"):
        tower_conv = slim.conv2d(net, 256, 1, scope="Conv2d_0a_1x1")
        tower_conv_1 = slim.conv2d(tower_conv, 384, 3, stride=2, padding="VALID", scope="Conv2d_1a_3x3")
    with tf.variable_scope("Branch_1"):
        tower_conv1 = slim.conv2d(net, 256, 1, scope="Conv2d_0a_1x1")
        tower_conv1_1 = slim.conv2d(tower_conv1, 256, 3, stride=2, padding="VALID", scope="Conv2d_1a_3x3")
    with tf.variable_scope("Branch_2"):
        tower_conv2 = slim.conv2d(net, 256, 1, scope="Conv2d_0a_1x1")
        tower_conv2_1 = slim.conv2d(tower_conv2, 256, 3, scope="Conv2d_0b_3x3")
        tower_conv2_2 = slim.conv2d(tower_conv2_1, 256, 3, stride=2, padding="VALID", scope="Conv2d_1a_3x3")
    with tf.variable_scope("Branch_3"):
        tower_pool = slim.max_pool2d(net, 3, stride=2, padding="VALID", scope="MaxPool_1a_3x3")
    return tf.concat(axis=3, values=[tower_conv_1, tower_conv1_1, tower_conv2_2, tower_pool])


def inception_resnet_v1_arg_scope(weight_decay=0.0):
    """FaceNet's scope: xavier weights, L2 decay, BatchNorm (decay 0.995, epsilon 0.001, no
    gamma, moving statistics in TRAINABLE_VARIABLES, in-place updates) on conv and fc."""
    batch_norm_params = {
        "decay": 0.995,
        "epsilon": 0.001,
        "updates_collections": None,
        "variables_collections": [tf.GraphKeys.TRAINABLE_VARIABLES],
    }
    with slim.arg_scope([slim.conv2d, slim.fully_connected],
                        weights_initializer=slim.initializers.xavier_initializer(),
                        weights_regularizer=slim.l2_regularizer(weight_decay),
                        normalizer_fn=slim.batch_norm,
                        normalizer_params=batch_norm_params) as sc:
        return sc


def inference(images, keep_probability, phase_train=True, bottleneck_layer_size=128, weight_decay=0.0,
              reuse=None):
    """FaceNet's entry point: `inception_resnet_v1` inside its arg scope; returns
    (embedding [B, bottleneck_layer_size], end_points)."""
    with slim.arg_scope(inception_resnet_v1_arg_scope(weight_decay)):
        return inception_resnet_v1(images, is_training=phase_train, dropout_keep_prob=keep_probability,
                                   bottleneck_layer_size=bottleneck_layer_size, reuse=reuse)


def inception_resnet_v1(inputs, is_training=True, dropout_keep_prob=0.8, bottleneck_layer_size=128,
                        reuse=None, scope="InceptionResnetV1"):
    """Inception-ResNet-v1 with FaceNet's `Bottleneck` embedding layer; returns (net, end_points)."""
    end_points = {}
    with tf.variable_scope(scope, "InceptionResnetV1", [inputs], reuse=reuse):
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            with slim.arg_scope([slim.conv2d, slim.max_pool2d, slim.avg_pool2d], stride=1, padding="SAME"):
                # 149 x 149 x 32 (for a 299 input)
                net = slim.conv2d(inputs, 32, 3, stride=2, padding="VALID", scope="Conv2d_1a_3x3")
                end_points["Conv2d_1a_3x3"] = net
                # 147 x 147 x 32
                net = slim.conv2d(net, 32, 3, padding="VALID", scope="Conv2d_2a_3x3")
                end_points["Conv2d_2a_3x3"] = net
                # 147 x 147 x 64
                net = slim.conv2d(net, 64, 3, scope="Conv2d_2b_3x3")
                end_points["Conv2d_2b_3x3"] = net
                # 73 x 73 x 64
                net = slim.max_pool2d(net, 3, stride=2, padding="VALID", scope="MaxPool_3a_3x3")
                end_points["MaxPool_3a_3x3"] = net
                # 73 x 73 x 80
                net = slim.conv2d(net, 80, 1, padding="VALID", scope="Conv2d_3b_1x1")
                end_points["Conv2d_3b_1x1"] = net
                # 71 x 71 x 192
                net = slim.conv2d(net, 192, 3, padding="VALID", scope="Conv2d_4a_3x3")
                end_points["Conv2d_4a_3x3"] = net
                # 35 x 35 x 256
                net = slim.conv2d(net, 256, 3, stride=2, padding="VALID", scope="Conv2d_4b_3x3")
                end_points["Conv2d_4b_3x3"] = net

                # 5 x Inception-ResNet-A
                net = slim.repeat(net, 5, block35, scale=0.17)
                end_points["Mixed_5a"] = net

                # Reduction-A
                with tf.variable_scope("Mixed_6a"):
                    net = reduction_a(net, 192, 192, 256, 384)
                end_points["Mixed_6a"] = net

                # 10 x Inception-ResNet-B
                net = slim.repeat(net, 10, block17, scale=0.10)
                end_points["Mixed_6b"] = net

                # Reduction-B
                with tf.variable_scope("Mixed_7a"):
                    net = reduction_b(net)
                end_points["Mixed_7a"] = net

                # 5 x Inception-ResNet-C, then one without activation
                net = slim.repeat(net, 5, block8, scale=0.20)
                end_points["Mixed_8a"] = net
                net = block8(net, activation_fn=None)
                end_points["Mixed_8b"] = net

                with tf.variable_scope("Logits"):
                    end_points["PrePool"] = net
                    net = slim.avg_pool2d(net, net.get_shape().as_list()[1:3], padding="VALID",
                                          scope="AvgPool_1a_8x8")
                    net = slim.flatten(net)
                    net = slim.dropout(net, dropout_keep_prob, is_training=is_training, scope="Dropout")
                    end_points["PreLogitsFlatten"] = net

                net = slim.fully_connected(net, bottleneck_layer_size, activation_fn=None,
                                           scope="Bottleneck", reuse=False)
    return net, end_points


inception_resnet_v1.default_image_size = 160
inference.default_image_size = 160
