"""Inception-ResNet-v2 (Szegedy et al., arXiv:1602.07261): TF-Slim's
`nets/inception_resnet_v2.py`, name for name.

Residual Inception blocks `net += scale * up` (block35 x10 scale 0.17, block17
x20 scale 0.10, block8 x9 scale 0.20 plus one final block8 without activation),
recorded through `slim.repeat`, so variables live under
`InceptionResnetV2/Repeat/block35_1`, `Repeat_1/block17_1`, `Repeat_2/block8_1`
and the last block under `InceptionResnetV2/Block8`.
"""
from __future__ import annotations

from slimtriton import slim
from slimtriton import tf
from slimtriton.nets import resnet_utils

_FINAL_ENDPOINTS = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_3a_3x3", "Conv2d_3b_1x1",
    "Conv2d_4a_3x3", "MaxPool_5a_3x3", "Mixed_5b", "Mixed_6a", "PreAuxLogits", "Mixed_7a",
    "Conv2d_7b_1x1",
)


def _residual(net, up, scale, activation_fn):
    scaled_up = up * scale
    if activation_fn is tf.nn.relu6:
        # Keep the residual in the relu6 range (quantization-friendly), as TF-Slim does.
        scaled_up = resnet_utils.clip_by_value(scaled_up, -6.0, 6.0)
    net = net + scaled_up
    if activation_fn:
        net = activation_fn(net)
    return net


def block35(net, scale=1.0, activation_fn=tf.nn.relu, scope=None, reuse=None):
    """The 35x35 residual block."""
    with tf.variable_scope(scope, "Block35", [net], reuse=reuse):
        with tf.variable_scope("Branch_0"):
            tower_conv = slim.conv2d(net, 32, 1, scope="Conv2d_1x1")
        with tf.variable_scope("Branch_1"):
            tower_conv1_0 = slim.conv2d(net, 32, 1, scope="Conv2d_0a_1x1")
            tower_conv1_1 = slim.conv2d(tower_conv1_0, 32, 3, scope="Conv2d_0b_3x3")
        with tf.variable_scope("Branch_2"):
            tower_conv2_0 = slim.conv2d(net, 32, 1, scope="Conv2d_0a_1x1")
            tower_conv2_1 = slim.conv2d(tower_conv2_0, 48, 3, scope="Conv2d_0b_3x3")
            tower_conv2_2 = slim.conv2d(tower_conv2_1, 64, 3, scope="Conv2d_0c_3x3")
        mixed = tf.concat(axis=3, values=[tower_conv, tower_conv1_1, tower_conv2_2])
        up = slim.conv2d(mixed, net.get_shape()[3], 1, normalizer_fn=None, activation_fn=None,
                         scope="Conv2d_1x1")
        return _residual(net, up, scale, activation_fn)


def block17(net, scale=1.0, activation_fn=tf.nn.relu, scope=None, reuse=None):
    """The 17x17 residual block."""
    with tf.variable_scope(scope, "Block17", [net], reuse=reuse):
        with tf.variable_scope("Branch_0"):
            tower_conv = slim.conv2d(net, 192, 1, scope="Conv2d_1x1")
        with tf.variable_scope("Branch_1"):
            tower_conv1_0 = slim.conv2d(net, 128, 1, scope="Conv2d_0a_1x1")
            tower_conv1_1 = slim.conv2d(tower_conv1_0, 160, [1, 7], scope="Conv2d_0b_1x7")
            tower_conv1_2 = slim.conv2d(tower_conv1_1, 192, [7, 1], scope="Conv2d_0c_7x1")
        mixed = tf.concat(axis=3, values=[tower_conv, tower_conv1_2])
        up = slim.conv2d(mixed, net.get_shape()[3], 1, normalizer_fn=None, activation_fn=None,
                         scope="Conv2d_1x1")
        return _residual(net, up, scale, activation_fn)


def block8(net, scale=1.0, activation_fn=tf.nn.relu, scope=None, reuse=None):
    """The 8x8 residual block."""
    with tf.variable_scope(scope, "Block8", [net], reuse=reuse):
        with tf.variable_scope("Branch_0"):
            tower_conv = slim.conv2d(net, 192, 1, scope="Conv2d_1x1")
        with tf.variable_scope("Branch_1"):
            tower_conv1_0 = slim.conv2d(net, 192, 1, scope="Conv2d_0a_1x1")
            tower_conv1_1 = slim.conv2d(tower_conv1_0, 224, [1, 3], scope="Conv2d_0b_1x3")
            tower_conv1_2 = slim.conv2d(tower_conv1_1, 256, [3, 1], scope="Conv2d_0c_3x1")
        mixed = tf.concat(axis=3, values=[tower_conv, tower_conv1_2])
        up = slim.conv2d(mixed, net.get_shape()[3], 1, normalizer_fn=None, activation_fn=None,
                         scope="Conv2d_1x1")
        return _residual(net, up, scale, activation_fn)


def inception_resnet_v2_base(inputs, final_endpoint="Conv2d_7b_1x1", output_stride=16,
                             align_feature_maps=False, scope=None, activation_fn=tf.nn.relu):
    """Inception-ResNet-v2 from the input up to `final_endpoint`; returns (net, end_points).

    output_stride 8 (atrous block17s) is supported up to 'PreAuxLogits' only, as in TF-Slim.
    align_feature_maps turns every 'VALID' padding into 'SAME'.
    """
    if output_stride not in (8, 16):
        raise ValueError(f"inception_resnet_v2_base: output_stride must be 8 or 16, got {output_stride}")
    if final_endpoint not in _FINAL_ENDPOINTS:
        raise ValueError(f"inception_resnet_v2_base: unknown final_endpoint {final_endpoint!r}; "
                         f"expected one of {list(_FINAL_ENDPOINTS)}")
    padding = "SAME" if align_feature_maps else "VALID"
    end_points = {}

    def add_and_check_final(name, net):
        end_points[name] = net
        return name == final_endpoint

    with tf.variable_scope(scope, "InceptionResnetV2", [inputs]):
        with slim.arg_scope([slim.conv2d, slim.max_pool2d, slim.avg_pool2d], stride=1, padding="SAME"):
            # 149 x 149 x 32
            net = slim.conv2d(inputs, 32, 3, stride=2, padding=padding, scope="Conv2d_1a_3x3")
            if add_and_check_final("Conv2d_1a_3x3", net):
                return net, end_points
            # 147 x 147 x 32
            net = slim.conv2d(net, 32, 3, padding=padding, scope="Conv2d_2a_3x3")
            if add_and_check_final("Conv2d_2a_3x3", net):
                return net, end_points
            # 147 x 147 x 64
            net = slim.conv2d(net, 64, 3, scope="Conv2d_2b_3x3")
            if add_and_check_final("Conv2d_2b_3x3", net):
                return net, end_points
            # 73 x 73 x 64
            net = slim.max_pool2d(net, 3, stride=2, padding=padding, scope="MaxPool_3a_3x3")
            if add_and_check_final("MaxPool_3a_3x3", net):
                return net, end_points
            # 73 x 73 x 80
            net = slim.conv2d(net, 80, 1, padding=padding, scope="Conv2d_3b_1x1")
            if add_and_check_final("Conv2d_3b_1x1", net):
                return net, end_points
            # 71 x 71 x 192
            net = slim.conv2d(net, 192, 3, padding=padding, scope="Conv2d_4a_3x3")
            if add_and_check_final("Conv2d_4a_3x3", net):
                return net, end_points
            # 35 x 35 x 192
            net = slim.max_pool2d(net, 3, stride=2, padding=padding, scope="MaxPool_5a_3x3")
            if add_and_check_final("MaxPool_5a_3x3", net):
                return net, end_points

            # 35 x 35 x 320
            with tf.variable_scope("Mixed_5b"):
                with tf.variable_scope("Branch_0"):
                    tower_conv = slim.conv2d(net, 96, 1, scope="Conv2d_1x1")
                with tf.variable_scope("Branch_1"):
                    tower_conv1_0 = slim.conv2d(net, 48, 1, scope="Conv2d_0a_1x1")
                    tower_conv1_1 = slim.conv2d(tower_conv1_0, 64, 5, scope="Conv2d_0b_5x5")
                with tf.variable_scope("Branch_2"):
                    tower_conv2_0 = slim.conv2d(net, 64, 1, scope="Conv2d_0a_1x1")
                    tower_conv2_1 = slim.conv2d(tower_conv2_0, 96, 3, scope="Conv2d_0b_3x3")
                    tower_conv2_2 = slim.conv2d(tower_conv2_1, 96, 3, scope="Conv2d_0c_3x3")
                with tf.variable_scope("Branch_3"):
                    tower_pool = slim.avg_pool2d(net, 3, stride=1, padding="SAME", scope="AvgPool_0a_3x3")
                    tower_pool_1 = slim.conv2d(tower_pool, 64, 1, scope="Conv2d_0b_1x1")
                net = tf.concat([tower_conv, tower_conv1_1, tower_conv2_2, tower_pool_1], 3)
            if add_and_check_final("Mixed_5b", net):
                return net, end_points

            net = slim.repeat(net, 10, block35, scale=0.17, activation_fn=activation_fn)

            # 17 x 17 x 1088 (33 x 33 x 1088 with output_stride 8)
            use_atrous = output_stride == 8
            with tf.variable_scope("Mixed_6a"):
                with tf.variable_scope("Branch_0"):
                    tower_conv = slim.conv2d(net, 384, 3, stride=1 if use_atrous else 2,
                                             padding=padding, scope="Conv2d_1a_3x3")
                with tf.variable_scope("Branch_1"):
                    tower_conv1_0 = slim.conv2d(net, 256, 1, scope="Conv2d_0a_1x1")
                    tower_conv1_1 = slim.conv2d(tower_conv1_0, 256, 3, scope="Conv2d_0b_3x3")
                    tower_conv1_2 = slim.conv2d(tower_conv1_1, 384, 3, stride=1 if use_atrous else 2,
                                                padding=padding, scope="Conv2d_1a_3x3")
                with tf.variable_scope("Branch_2"):
                    tower_pool = slim.max_pool2d(net, 3, stride=1 if use_atrous else 2,
                                                 padding=padding, scope="MaxPool_1a_3x3")
                net = tf.concat([tower_conv, tower_conv1_2, tower_pool], 3)
            if add_and_check_final("Mixed_6a", net):
                return net, end_points

            with slim.arg_scope([slim.conv2d], rate=2 if use_atrous else 1):
                net = slim.repeat(net, 20, block17, scale=0.10, activation_fn=activation_fn)
            if add_and_check_final("PreAuxLogits", net):
                return net, end_points

            if output_stride == 8:
                raise ValueError("inception_resnet_v2_base: output_stride 8 is only supported up to "
                                 f"the 'PreAuxLogits' end point, not {final_endpoint!r}")

            # 8 x 8 x 2080
            with tf.variable_scope("Mixed_7a"):
                with tf.variable_scope("Branch_0"):
                    tower_conv = slim.conv2d(net, 256, 1, scope="Conv2d_0a_1x1")
                    tower_conv_1 = slim.conv2d(tower_conv, 384, 3, stride=2, padding=padding,
                                               scope="Conv2d_1a_3x3")
                with tf.variable_scope("Branch_1"):
                    tower_conv1 = slim.conv2d(net, 256, 1, scope="Conv2d_0a_1x1")
                    tower_conv1_1 = slim.conv2d(tower_conv1, 288, 3, stride=2, padding=padding,
                                                scope="Conv2d_1a_3x3")
                with tf.variable_scope("Branch_2"):
                    tower_conv2 = slim.conv2d(net, 256, 1, scope="Conv2d_0a_1x1")
                    tower_conv2_1 = slim.conv2d(tower_conv2, 288, 3, scope="Conv2d_0b_3x3")
                    tower_conv2_2 = slim.conv2d(tower_conv2_1, 320, 3, stride=2, padding=padding,
                                                scope="Conv2d_1a_3x3")
                with tf.variable_scope("Branch_3"):
                    tower_pool = slim.max_pool2d(net, 3, stride=2, padding=padding, scope="MaxPool_1a_3x3")
                net = tf.concat([tower_conv_1, tower_conv1_1, tower_conv2_2, tower_pool], 3)
            if add_and_check_final("Mixed_7a", net):
                return net, end_points

            net = slim.repeat(net, 9, block8, scale=0.20, activation_fn=activation_fn)
            net = block8(net, activation_fn=None)

            # 8 x 8 x 1536
            net = slim.conv2d(net, 1536, 1, scope="Conv2d_7b_1x1")
            if add_and_check_final("Conv2d_7b_1x1", net):
                return net, end_points
    raise AssertionError("unreachable: final_endpoint was validated")


def inception_resnet_v2(inputs, num_classes=1001, is_training=True, dropout_keep_prob=0.8, reuse=None,
                        scope="InceptionResnetV2", create_aux_logits=True, activation_fn=tf.nn.relu):
    """Inception-ResNet-v2 classifier; returns (logits, end_points).
    num_classes 0/None returns the globally pooled features."""
    with tf.variable_scope(scope, "InceptionResnetV2", [inputs], reuse=reuse) as scope:
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = inception_resnet_v2_base(inputs, scope=scope, activation_fn=activation_fn)

            if create_aux_logits and num_classes:
                with tf.variable_scope("AuxLogits"):
                    aux = end_points["PreAuxLogits"]
                    aux = slim.avg_pool2d(aux, 5, stride=3, padding="VALID", scope="Conv2d_1a_3x3")
                    aux = slim.conv2d(aux, 128, 1, scope="Conv2d_1b_1x1")
                    aux = slim.conv2d(aux, 768, aux.get_shape().as_list()[1:3], padding="VALID",
                                      scope="Conv2d_2a_5x5")
                    aux = slim.flatten(aux)
                    aux = slim.fully_connected(aux, num_classes, activation_fn=None, scope="Logits")
                    end_points["AuxLogits"] = aux

            with tf.variable_scope("Logits"):
                kernel_size = net.get_shape().as_list()[1:3]
                net = slim.avg_pool2d(net, kernel_size, padding="VALID", scope="AvgPool_1a_8x8")
                end_points["global_pool"] = net
                if not num_classes:
                    return net, end_points
                net = slim.flatten(net)
                net = slim.dropout(net, dropout_keep_prob, is_training=is_training, scope="Dropout")
                end_points["PreLogitsFlatten"] = net
                logits = slim.fully_connected(net, num_classes, activation_fn=None, scope="Logits")
                end_points["Logits"] = logits
                end_points["Predictions"] = tf.nn.softmax(logits, name="Predictions")
        return logits, end_points


inception_resnet_v2.default_image_size = 299


def inception_resnet_v2_arg_scope(weight_decay=0.00004, batch_norm_decay=0.9997, batch_norm_epsilon=0.001,
                                  activation_fn=tf.nn.relu,
                                  batch_norm_updates_collections=tf.GraphKeys.UPDATE_OPS,
                                  batch_norm_scale=False):
    """L2 decay on conv / fully connected weights and biases; conv: BatchNorm (no gamma by
    default, decay 0.9997, epsilon 0.001) then `activation_fn`."""
    with slim.arg_scope([slim.conv2d, slim.fully_connected],
                        weights_regularizer=slim.l2_regularizer(weight_decay),
                        biases_regularizer=slim.l2_regularizer(weight_decay)):
        batch_norm_params = {
            "decay": batch_norm_decay,
            "epsilon": batch_norm_epsilon,
            "updates_collections": batch_norm_updates_collections,
            "fused": None,
            "scale": batch_norm_scale,
        }
        with slim.arg_scope([slim.conv2d], activation_fn=activation_fn, normalizer_fn=slim.batch_norm,
                            normalizer_params=batch_norm_params) as scope:
            return scope
