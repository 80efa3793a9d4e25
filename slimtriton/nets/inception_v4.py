"""Inception v4 (Szegedy et al., arXiv:1602.07261): TF-Slim's `nets/inception_v4.py`, name for name.

Stem (Conv2d_1a..2b, Mixed_3a, Mixed_4a, Mixed_5a), then 4 Inception-A blocks
(Mixed_5b-e), Reduction-A (Mixed_6a), 7 Inception-B (Mixed_6b-h), Reduction-B
(Mixed_7a), 3 Inception-C (Mixed_7b-d); auxiliary head on Mixed_6h.
"""
from __future__ import annotations

from slimtriton import slim
from slimtriton import tf
from slimtriton.nets import inception_utils

_FINAL_ENDPOINTS = (
    ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Mixed_3a", "Mixed_4a", "Mixed_5a"]
    + ["Mixed_5" + c for c in "bcde"] + ["Mixed_6a"] + ["Mixed_6" + c for c in "bcdefgh"]
    + ["Mixed_7a"] + ["Mixed_7" + c for c in "bcd"]
)


def block_inception_a(inputs, scope=None, reuse=None):
    """Inception-A block (35 x 35 x 384)."""
    with slim.arg_scope([slim.conv2d, slim.avg_pool2d, slim.max_pool2d], stride=1, padding="SAME"):
        with tf.variable_scope(scope, "BlockInceptionA", [inputs], reuse=reuse):
            with tf.variable_scope("Branch_0"):
                branch_0 = slim.conv2d(inputs, 96, [1, 1], scope="Conv2d_0a_1x1")
            with tf.variable_scope("Branch_1"):
                branch_1 = slim.conv2d(inputs, 64, [1, 1], scope="Conv2d_0a_1x1")
                branch_1 = slim.conv2d(branch_1, 96, [3, 3], scope="Conv2d_0b_3x3")
            with tf.variable_scope("Branch_2"):
                branch_2 = slim.conv2d(inputs, 64, [1, 1], scope="Conv2d_0a_1x1")
                branch_2 = slim.conv2d(branch_2, 96, [3, 3], scope="Conv2d_0b_3x3")
                branch_2 = slim.conv2d(branch_2, 96, [3, 3], scope="Conv2d_0c_3x3")
            with tf.variable_scope("Branch_3"):
                branch_3 = slim.avg_pool2d(inputs, [3, 3], scope="AvgPool_0a_3x3")
                branch_3 = slim.conv2d(branch_3, 96, [1, 1], scope="Conv2d_0b_1x1")
            return tf.concat(axis=3, values=[branch_0, branch_1, branch_2, branch_3])


def block_reduction_a(inputs, scope=None, reuse=None):
    """Reduction-A block (35x35 -> 17x17)."""
    with slim.arg_scope([slim.conv2d, slim.avg_pool2d, slim.max_pool2d], stride=1, padding="SAME"):
        with tf.variable_scope(scope, "BlockReductionA", [inputs], reuse=reuse):
            with tf.variable_scope("Branch_0"):
                branch_0 = slim.conv2d(inputs, 384, [3, 3], stride=2, padding="VALID", scope="Conv2d_1a_3x3")
            with tf.variable_scope("Branch_1"):
                branch_1 = slim.conv2d(inputs, 192, [1, 1], scope="Conv2d_0a_1x1")
                branch_1 = slim.conv2d(branch_1, 224, [3, 3], scope="Conv2d_0b_3x3")
                branch_1 = slim.conv2d(branch_1, 256, [3, 3], stride=2, padding="VALID",
                                       scope="Conv2d_1a_3x3")
            with tf.variable_scope("Branch_2"):
                branch_2 = slim.max_pool2d(inputs, [3, 3], stride=2, padding="VALID", scope="MaxPool_1a_3x3")
            return tf.concat(axis=3, values=[branch_0, branch_1, branch_2])


def block_inception_b(inputs, scope=None, reuse=None):
    """Inception-B block (17 x 17 x 1024)."""
    with slim.arg_scope([slim.conv2d, slim.avg_pool2d, slim.max_pool2d], stride=1, padding="SAME"):
        with tf.variable_scope(scope, "BlockInceptionB", [inputs], reuse=reuse):
            with tf.variable_scope("Branch_0"):
                branch_0 = slim.conv2d(inputs, 384, [1, 1], scope="Conv2d_0a_1x1")
            with tf.variable_scope("Branch_1"):
                branch_1 = slim.conv2d(inputs, 192, [1, 1], scope="Conv2d_0a_1x1")
                branch_1 = slim.conv2d(branch_1, 224, [1, 7], scope="Conv2d_0b_1x7")
                branch_1 = slim.conv2d(branch_1, 256, [7, 1], scope="Conv2d_0c_7x1")
            with tf.variable_scope("Branch_2"):
                branch_2 = slim.conv2d(inputs, 192, [1, 1], scope="Conv2d_0a_1x1")
                branch_2 = slim.conv2d(branch_2, 192, [7, 1], scope="Conv2d_0b_7x1")
                branch_2 = slim.conv2d(branch_2, 224, [1, 7], scope="Conv2d_0c_1x7")
                branch_2 = slim.conv2d(branch_2, 224, [7, 1], scope="Conv2d_0d_7x1")
                branch_2 = slim.conv2d(branch_2, 256, [1, 7], scope="Conv2d_0e_1x7")
            with tf.variable_scope("Branch_3"):
                branch_3 = slim.avg_pool2d(inputs, [3, 3], scope="AvgPool_0a_3x3")
                branch_3 = slim.conv2d(branch_3, 128, [1, 1], scope="Conv2d_0b_1x1")
            return tf.concat(axis=3, values=[branch_0, branch_1, branch_2, branch_3])


def block_reduction_b(inputs, scope=None, reuse=None):
    """Reduction-B block (17x17 -> 8x8)."""
    with slim.arg_scope([slim.conv2d, slim.avg_pool2d, slim.max_pool2d], stride=1, padding="SAME"):
        with tf.variable_scope(scope, "BlockReductionB", [inputs], reuse=reuse):
            with tf.variable_scope("Branch_0"):
                branch_0 = slim.conv2d(inputs, 192, [1, 1], scope="Conv2d_0a_1x1")
                branch_0 = slim.conv2d(branch_0, 192, [3, 3], stride=2, padding="VALID",
                                       scope="Conv2d_1a_3x3")
            with tf.variable_scope("Branch_1"):
                branch_1 = slim.conv2d(inputs, 256, [1, 1], scope="Conv2d_0a_1x1")
                branch_1 = slim.conv2d(branch_1, 256, [1, 7], scope="Conv2d_0b_1x7")
                branch_1 = slim.conv2d(branch_1, 320, [7, 1], scope="Conv2d_0c_7x1")
                branch_1 = slim.conv2d(branch_1, 320, [3, 3], stride=2, padding="VALID",
                                       scope="Conv2d_1a_3x3")
            with tf.variable_scope("Branch_2"):
                branch_2 = slim.max_pool2d(inputs, [3, 3], stride=2, padding="VALID", scope="MaxPool_1a_3x3")
            return tf.concat(axis=3, values=[branch_0, branch_1, branch_2])


def block_inception_c(inputs, scope=None, reuse=None):
    """Inception-C block (8 x 8 x 1536)."""
    with slim.arg_scope([slim.conv2d, slim.avg_pool2d, slim.max_pool2d], stride=1, padding="SAME"):
        with tf.variable_scope(scope, "BlockInceptionC", [inputs], reuse=reuse):
            with tf.variable_scope("Branch_0"):
                branch_0 = slim.conv2d(inputs, 256, [1, 1], scope="Conv2d_0a_1x1")
            with tf.variable_scope("Branch_1"):
                branch_1 = slim.conv2d(inputs, 384, [1, 1], scope="Conv2d_0a_1x1")
                branch_1 = tf.concat(axis=3, values=[
                    slim.conv2d(branch_1, 256, [1, 3], scope="Conv2d_0b_1x3"),
                    slim.conv2d(branch_1, 256, [3, 1], scope="Conv2d_0c_3x1")])
            with tf.variable_scope("Branch_2"):
                branch_2 = slim.conv2d(inputs, 384, [1, 1], scope="Conv2d_0a_1x1")
                branch_2 = slim.conv2d(branch_2, 448, [3, 1], scope="Conv2d_0b_3x1")
                branch_2 = slim.conv2d(branch_2, 512, [1, 3], scope="Conv2d_0c_1x3")
                branch_2 = tf.concat(axis=3, values=[
                    slim.conv2d(branch_2, 256, [1, 3], scope="Conv2d_0d_1x3"),
                    slim.conv2d(branch_2, 256, [3, 1], scope="Conv2d_0e_3x1")])
            with tf.variable_scope("Branch_3"):
                branch_3 = slim.avg_pool2d(inputs, [3, 3], scope="AvgPool_0a_3x3")
                branch_3 = slim.conv2d(branch_3, 256, [1, 1], scope="Conv2d_0b_1x1")
            return tf.concat(axis=3, values=[branch_0, branch_1, branch_2, branch_3])


def inception_v4_base(inputs, final_endpoint="Mixed_7d", scope=None):
    """Inception v4 from the input up to `final_endpoint`; returns (net, end_points)."""
    if final_endpoint not in _FINAL_ENDPOINTS:
        raise ValueError(f"inception_v4_base: unknown final_endpoint {final_endpoint!r}; "
                         f"expected one of {_FINAL_ENDPOINTS}")
    end_points = {}

    def add_and_check_final(name, net):
        end_points[name] = net
        return name == final_endpoint

    with tf.variable_scope(scope, "InceptionV4", [inputs]):
        with slim.arg_scope([slim.conv2d, slim.max_pool2d, slim.avg_pool2d], stride=1, padding="SAME"):
            # 299 x 299 x 3
            net = slim.conv2d(inputs, 32, [3, 3], stride=2, padding="VALID", scope="Conv2d_1a_3x3")
            if add_and_check_final("Conv2d_1a_3x3", net):
                return net, end_points
            # 149 x 149 x 32
            net = slim.conv2d(net, 32, [3, 3], padding="VALID", scope="Conv2d_2a_3x3")
            if add_and_check_final("Conv2d_2a_3x3", net):
                return net, end_points
            # 147 x 147 x 32
            net = slim.conv2d(net, 64, [3, 3], scope="Conv2d_2b_3x3")
            if add_and_check_final("Conv2d_2b_3x3", net):
                return net, end_points
            # 147 x 147 x 64
            with tf.variable_scope("Mixed_3a"):
                with tf.variable_scope("Branch_0"):
                    branch_0 = slim.max_pool2d(net, [3, 3], stride=2, padding="VALID", scope="MaxPool_0a_3x3")
                with tf.variable_scope("Branch_1"):
                    branch_1 = slim.conv2d(net, 96, [3, 3], stride=2, padding="VALID", scope="Conv2d_0a_3x3")
                net = tf.concat(axis=3, values=[branch_0, branch_1])
                if add_and_check_final("Mixed_3a", net):
                    return net, end_points
            # 73 x 73 x 160
            with tf.variable_scope("Mixed_4a"):
                with tf.variable_scope("Branch_0"):
                    branch_0 = slim.conv2d(net, 64, [1, 1], scope="Conv2d_0a_1x1")
                    branch_0 = slim.conv2d(branch_0, 96, [3, 3], padding="VALID", scope="Conv2d_1a_3x3")
                with tf.variable_scope("Branch_1"):
                    branch_1 = slim.conv2d(net, 64, [1, 1], scope="Conv2d_0a_1x1")
                    branch_1 = slim.conv2d(branch_1, 64, [1, 7], scope="Conv2d_0b_1x7")
                    branch_1 = slim.conv2d(branch_1, 64, [7, 1], scope="Conv2d_0c_7x1")
                    branch_1 = slim.conv2d(branch_1, 96, [3, 3], padding="VALID", scope="Conv2d_1a_3x3")
                net = tf.concat(axis=3, values=[branch_0, branch_1])
                if add_and_check_final("Mixed_4a", net):
                    return net, end_points
            # 71 x 71 x 192
            with tf.variable_scope("Mixed_5a"):
                with tf.variable_scope("Branch_0"):
                    branch_0 = slim.conv2d(net, 192, [3, 3], stride=2, padding="VALID", scope="Conv2d_1a_3x3")
                with tf.variable_scope("Branch_1"):
                    branch_1 = slim.max_pool2d(net, [3, 3], stride=2, padding="VALID", scope="MaxPool_1a_3x3")
                net = tf.concat(axis=3, values=[branch_0, branch_1])
                if add_and_check_final("Mixed_5a", net):
                    return net, end_points

            # 35 x 35 x 384: 4 x Inception-A
            for idx in range(4):
                block_scope = "Mixed_5" + chr(ord("b") + idx)
                net = block_inception_a(net, block_scope)
                if add_and_check_final(block_scope, net):
                    return net, end_points
            net = block_reduction_a(net, "Mixed_6a")
            if add_and_check_final("Mixed_6a", net):
                return net, end_points
            # 17 x 17 x 1024: 7 x Inception-B
            for idx in range(7):
                block_scope = "Mixed_6" + chr(ord("b") + idx)
                net = block_inception_b(net, block_scope)
                if add_and_check_final(block_scope, net):
                    return net, end_points
            net = block_reduction_b(net, "Mixed_7a")
            if add_and_check_final("Mixed_7a", net):
                return net, end_points
            # 8 x 8 x 1536: 3 x Inception-C
            for idx in range(3):
                block_scope = "Mixed_7" + chr(ord("b") + idx)
                net = block_inception_c(net, block_scope)
                if add_and_check_final(block_scope, net):
                    return net, end_points
    raise AssertionError("unreachable: final_endpoint was validated")


def inception_v4(inputs, num_classes=1001, is_training=True, dropout_keep_prob=0.8, reuse=None,
                 scope="InceptionV4", create_aux_logits=True):
    """Inception v4 classifier; returns (logits, end_points).
    num_classes 0/None returns the pooled features before dropout."""
    with tf.variable_scope(scope, "InceptionV4", [inputs], reuse=reuse) as scope:
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = inception_v4_base(inputs, scope=scope)

            with slim.arg_scope([slim.conv2d, slim.max_pool2d, slim.avg_pool2d], stride=1, padding="SAME"):
                if create_aux_logits and num_classes:
                    with tf.variable_scope("AuxLogits"):
                        # 17 x 17 x 1024
                        aux_logits = end_points["Mixed_6h"]
                        aux_logits = slim.avg_pool2d(aux_logits, [5, 5], stride=3, padding="VALID",
                                                     scope="AvgPool_1a_5x5")
                        aux_logits = slim.conv2d(aux_logits, 128, [1, 1], scope="Conv2d_1b_1x1")
                        aux_logits = slim.conv2d(aux_logits, 768, aux_logits.get_shape().as_list()[1:3],
                                                 padding="VALID", scope="Conv2d_2a")
                        aux_logits = slim.flatten(aux_logits)
                        aux_logits = slim.fully_connected(aux_logits, num_classes, activation_fn=None,
                                                          scope="Aux_logits")
                        end_points["AuxLogits"] = aux_logits

                with tf.variable_scope("Logits"):
                    # 8 x 8 x 1536
                    kernel_size = net.get_shape().as_list()[1:3]
                    net = slim.avg_pool2d(net, kernel_size, padding="VALID", scope="AvgPool_1a")
                    end_points["global_pool"] = net
                    if not num_classes:
                        return net, end_points
                    # 1 x 1 x 1536
                    net = slim.dropout(net, dropout_keep_prob, scope="Dropout_1b")
                    net = slim.flatten(net, scope="PreLogitsFlatten")
                    end_points["PreLogitsFlatten"] = net
                    logits = slim.fully_connected(net, num_classes, activation_fn=None, scope="Logits")
                    end_points["Logits"] = logits
                    end_points["Predictions"] = tf.nn.softmax(logits, name="Predictions")
        return logits, end_points


inception_v4.default_image_size = 299

inception_v4_arg_scope = inception_utils.inception_arg_scope
