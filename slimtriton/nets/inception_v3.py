"""Inception v3 (Szegedy et al., arXiv:1512.00567): TF-Slim's `nets/inception_v3.py`, name for name.

    with slim.arg_scope(inception_v3.inception_v3_arg_scope()):
        logits, end_points = inception_v3.inception_v3(images, 1001, is_training=False)

End points: Conv2d_1a_3x3 ... Mixed_7c, AuxLogits, AvgPool_1a (or global_pool),
PreLogits, Logits, Predictions. `global_pool`, `create_aux_logits`,
`num_classes=0/None` (features only) follow the models copy.
"""
from __future__ import annotations

from slimtriton import slim
from slimtriton import tf
from slimtriton.nets import inception_utils
from slimtriton.nets.inception_utils import reduced_kernel_size_for_small_input

_FINAL_ENDPOINTS = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_3a_3x3", "Conv2d_3b_1x1",
    "Conv2d_4a_3x3", "MaxPool_5a_3x3", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
    "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c",
)


def trunc_normal(stddev):
    return tf.truncated_normal_initializer(0.0, stddev)


def inception_v3_base(inputs, final_endpoint="Mixed_7c", min_depth=16, depth_multiplier=1.0,
                      scope=None):
    """Inception v3 from the input up to `final_endpoint`; returns (net, end_points)."""
    if final_endpoint not in _FINAL_ENDPOINTS:
        raise ValueError(f"inception_v3_base: unknown final_endpoint {final_endpoint!r}; "
                         f"expected one of {list(_FINAL_ENDPOINTS)}")
    if depth_multiplier <= 0:
        raise ValueError(f"inception_v3_base: depth_multiplier must be > 0, got {depth_multiplier}")
    end_points = {}

    def depth(d):
        return max(int(d * depth_multiplier), min_depth)

    with tf.variable_scope(scope, "InceptionV3", [inputs]):
        with slim.arg_scope([slim.conv2d, slim.max_pool2d, slim.avg_pool2d], stride=1, padding="VALID"):
            # 299 x 299 x 3
            end_point = "Conv2d_1a_3x3"
            net = slim.conv2d(inputs, depth(32), [3, 3], stride=2, scope=end_point)
            end_points[end_point] = net
            if end_point == final_endpoint:
                return net, end_points
            # 149 x 149 x 32
            end_point = "Conv2d_2a_3x3"
            net = slim.conv2d(net, depth(32), [3, 3], scope=end_point)
            end_points[end_point] = net
            if end_point == final_endpoint:
                return net, end_points
            # 147 x 147 x 32
            end_point = "Conv2d_2b_3x3"
            net = slim.conv2d(net, depth(64), [3, 3], padding="SAME", scope=end_point)
            end_points[end_point] = net
            if end_point == final_endpoint:
                return net, end_points
            # 147 x 147 x 64
            end_point = "MaxPool_3a_3x3"
            net = slim.max_pool2d(net, [3, 3], stride=2, scope=end_point)
            end_points[end_point] = net
            if end_point == final_endpoint:
                return net, end_points
            # 73 x 73 x 64
            end_point = "Conv2d_3b_1x1"
            net = slim.conv2d(net, depth(80), [1, 1], scope=end_point)
            end_points[end_point] = net
            if end_point == final_endpoint:
                return net, end_points
            # 73 x 73 x 80
            end_point = "Conv2d_4a_3x3"
            net = slim.conv2d(net, depth(192), [3, 3], scope=end_point)
            end_points[end_point] = net
            if end_point == final_endpoint:
                return net, end_points
            # 71 x 71 x 192
            end_point = "MaxPool_5a_3x3"
            net = slim.max_pool2d(net, [3, 3], stride=2, scope=end_point)
            end_points[end_point] = net
            if end_point == final_endpoint:
                return net, end_points
            # 35 x 35 x 192

        # Inception blocks
        with slim.arg_scope([slim.conv2d, slim.max_pool2d, slim.avg_pool2d], stride=1, padding="SAME"):
            # 35 x 35 x 256: Mixed_5b, then 35 x 35 x 288: Mixed_5c, Mixed_5d. Mixed_5c keeps
            # the historical names Conv2d_0b_1x1 / Conv_1_0c_5x5 of the released checkpoint.
            for end_point, pool_depth, branch1_names in (
                    ("Mixed_5b", 32, ("Conv2d_0a_1x1", "Conv2d_0b_5x5")),
                    ("Mixed_5c", 64, ("Conv2d_0b_1x1", "Conv_1_0c_5x5")),
                    ("Mixed_5d", 64, ("Conv2d_0a_1x1", "Conv2d_0b_5x5"))):
                with tf.variable_scope(end_point):
                    with tf.variable_scope("Branch_0"):
                        branch_0 = slim.conv2d(net, depth(64), [1, 1], scope="Conv2d_0a_1x1")
                    with tf.variable_scope("Branch_1"):
                        branch_1 = slim.conv2d(net, depth(48), [1, 1], scope=branch1_names[0])
                        branch_1 = slim.conv2d(branch_1, depth(64), [5, 5], scope=branch1_names[1])
                    with tf.variable_scope("Branch_2"):
                        branch_2 = slim.conv2d(net, depth(64), [1, 1], scope="Conv2d_0a_1x1")
                        branch_2 = slim.conv2d(branch_2, depth(96), [3, 3], scope="Conv2d_0b_3x3")
                        branch_2 = slim.conv2d(branch_2, depth(96), [3, 3], scope="Conv2d_0c_3x3")
                    with tf.variable_scope("Branch_3"):
                        branch_3 = slim.avg_pool2d(net, [3, 3], scope="AvgPool_0a_3x3")
                        branch_3 = slim.conv2d(branch_3, depth(pool_depth), [1, 1], scope="Conv2d_0b_1x1")
                    net = tf.concat(axis=3, values=[branch_0, branch_1, branch_2, branch_3])
                end_points[end_point] = net
                if end_point == final_endpoint:
                    return net, end_points

            # 17 x 17 x 768
            end_point = "Mixed_6a"
            with tf.variable_scope(end_point):
                with tf.variable_scope("Branch_0"):
                    branch_0 = slim.conv2d(net, depth(384), [3, 3], stride=2, padding="VALID",
                                           scope="Conv2d_1a_1x1")
                with tf.variable_scope("Branch_1"):
                    branch_1 = slim.conv2d(net, depth(64), [1, 1], scope="Conv2d_0a_1x1")
                    branch_1 = slim.conv2d(branch_1, depth(96), [3, 3], scope="Conv2d_0b_3x3")
                    branch_1 = slim.conv2d(branch_1, depth(96), [3, 3], stride=2, padding="VALID",
                                           scope="Conv2d_1a_1x1")
                with tf.variable_scope("Branch_2"):
                    branch_2 = slim.max_pool2d(net, [3, 3], stride=2, padding="VALID",
                                               scope="MaxPool_1a_3x3")
                net = tf.concat(axis=3, values=[branch_0, branch_1, branch_2])
            end_points[end_point] = net
            if end_point == final_endpoint:
                return net, end_points

            # 17 x 17 x 768: factorized 7x7 blocks, bottleneck depth 128, 160, 160, 192.
            for end_point, mid in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160),
                                   ("Mixed_6e", 192)):
                with tf.variable_scope(end_point):
                    with tf.variable_scope("Branch_0"):
                        branch_0 = slim.conv2d(net, depth(192), [1, 1], scope="Conv2d_0a_1x1")
                    with tf.variable_scope("Branch_1"):
                        branch_1 = slim.conv2d(net, depth(mid), [1, 1], scope="Conv2d_0a_1x1")
                        branch_1 = slim.conv2d(branch_1, depth(mid), [1, 7], scope="Conv2d_0b_1x7")
                        branch_1 = slim.conv2d(branch_1, depth(192), [7, 1], scope="Conv2d_0c_7x1")
                    with tf.variable_scope("Branch_2"):
                        branch_2 = slim.conv2d(net, depth(mid), [1, 1], scope="Conv2d_0a_1x1")
                        branch_2 = slim.conv2d(branch_2, depth(mid), [7, 1], scope="Conv2d_0b_7x1")
                        branch_2 = slim.conv2d(branch_2, depth(mid), [1, 7], scope="Conv2d_0c_1x7")
                        branch_2 = slim.conv2d(branch_2, depth(mid), [7, 1], scope="Conv2d_0d_7x1")
                        branch_2 = slim.conv2d(branch_2, depth(192), [1, 7], scope="Conv2d_0e_1x7")
                    with tf.variable_scope("Branch_3"):
                        branch_3 = slim.avg_pool2d(net, [3, 3], scope="AvgPool_0a_3x3")
                        branch_3 = slim.conv2d(branch_3, depth(192), [1, 1], scope="Conv2d_0b_1x1")
                    net = tf.concat(axis=3, values=[branch_0, branch_1, branch_2, branch_3])
                end_points[end_point] = net
                if end_point == final_endpoint:
                    return net, end_points

            # 8 x 8 x 1280
            end_point = "Mixed_7a"
            with tf.variable_scope(end_point):
                with tf.variable_scope("Branch_0"):
                    branch_0 = slim.conv2d(net, depth(192), [1, 1], scope="Conv2d_0a_1x1")
                    branch_0 = slim.conv2d(branch_0, depth(320), [3, 3], stride=2, padding="VALID",
                                           scope="Conv2d_1a_3x3")
                with tf.variable_scope("Branch_1"):
                    branch_1 = slim.conv2d(net, depth(192), [1, 1], scope="Conv2d_0a_1x1")
                    branch_1 = slim.conv2d(branch_1, depth(192), [1, 7], scope="Conv2d_0b_1x7")
                    branch_1 = slim.conv2d(branch_1, depth(192), [7, 1], scope="Conv2d_0c_7x1")
                    branch_1 = slim.conv2d(branch_1, depth(192), [3, 3], stride=2, padding="VALID",
                                           scope="Conv2d_1a_3x3")
                with tf.variable_scope("Branch_2"):
                    branch_2 = slim.max_pool2d(net, [3, 3], stride=2, padding="VALID",
                                               scope="MaxPool_1a_3x3")
                net = tf.concat(axis=3, values=[branch_0, branch_1, branch_2])
            end_points[end_point] = net
            if end_point == final_endpoint:
                return net, end_points

            # 8 x 8 x 2048: Mixed_7b names its second 3x1 conv Conv2d_0b_3x1, Mixed_7c Conv2d_0c_3x1.
            for end_point, branch1_3x1 in (("Mixed_7b", "Conv2d_0b_3x1"), ("Mixed_7c", "Conv2d_0c_3x1")):
                with tf.variable_scope(end_point):
                    with tf.variable_scope("Branch_0"):
                        branch_0 = slim.conv2d(net, depth(320), [1, 1], scope="Conv2d_0a_1x1")
                    with tf.variable_scope("Branch_1"):
                        branch_1 = slim.conv2d(net, depth(384), [1, 1], scope="Conv2d_0a_1x1")
                        branch_1 = tf.concat(axis=3, values=[
                            slim.conv2d(branch_1, depth(384), [1, 3], scope="Conv2d_0b_1x3"),
                            slim.conv2d(branch_1, depth(384), [3, 1], scope=branch1_3x1)])
                    with tf.variable_scope("Branch_2"):
                        branch_2 = slim.conv2d(net, depth(448), [1, 1], scope="Conv2d_0a_1x1")
                        branch_2 = slim.conv2d(branch_2, depth(384), [3, 3], scope="Conv2d_0b_3x3")
                        branch_2 = tf.concat(axis=3, values=[
                            slim.conv2d(branch_2, depth(384), [1, 3], scope="Conv2d_0c_1x3"),
                            slim.conv2d(branch_2, depth(384), [3, 1], scope="Conv2d_0d_3x1")])
                    with tf.variable_scope("Branch_3"):
                        branch_3 = slim.avg_pool2d(net, [3, 3], scope="AvgPool_0a_3x3")
                        branch_3 = slim.conv2d(branch_3, depth(192), [1, 1], scope="Conv2d_0b_1x1")
                    net = tf.concat(axis=3, values=[branch_0, branch_1, branch_2, branch_3])
                end_points[end_point] = net
                if end_point == final_endpoint:
                    return net, end_points
    raise AssertionError("unreachable: final_endpoint was validated")


def inception_v3(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.8, min_depth=16,
                 depth_multiplier=1.0, prediction_fn=slim.softmax, spatial_squeeze=True, reuse=None,
                 create_aux_logits=True, scope="InceptionV3", global_pool=False):
    """Inception v3 classifier; returns (logits, end_points).

    num_classes 0/None returns the pooled features (no dropout, no logits layer).
    global_pool averages the whole final map instead of the fixed 8x8 pool.
    """
    if depth_multiplier <= 0:
        raise ValueError(f"inception_v3: depth_multiplier must be > 0, got {depth_multiplier}")

    def depth(d):
        return max(int(d * depth_multiplier), min_depth)

    with tf.variable_scope(scope, "InceptionV3", [inputs], reuse=reuse) as scope:
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = inception_v3_base(inputs, scope=scope, min_depth=min_depth,
                                                depth_multiplier=depth_multiplier)

            # Auxiliary head on Mixed_6e.
            if create_aux_logits and num_classes:
                with slim.arg_scope([slim.conv2d, slim.max_pool2d, slim.avg_pool2d],
                                    stride=1, padding="SAME"):
                    aux_logits = end_points["Mixed_6e"]
                    with tf.variable_scope("AuxLogits"):
                        aux_logits = slim.avg_pool2d(aux_logits, [5, 5], stride=3, padding="VALID",
                                                     scope="AvgPool_1a_5x5")
                        aux_logits = slim.conv2d(aux_logits, depth(128), [1, 1], scope="Conv2d_1b_1x1")
                        kernel_size = reduced_kernel_size_for_small_input(aux_logits, [5, 5])
                        aux_logits = slim.conv2d(aux_logits, depth(768), kernel_size,
                                                 weights_initializer=trunc_normal(0.01), padding="VALID",
                                                 scope="Conv2d_2a_{}x{}".format(*kernel_size))
                        aux_logits = slim.conv2d(aux_logits, num_classes, [1, 1], activation_fn=None,
                                                 normalizer_fn=None,
                                                 weights_initializer=trunc_normal(0.001),
                                                 scope="Conv2d_2b_1x1")
                        if spatial_squeeze:
                            aux_logits = tf.squeeze(aux_logits, [1, 2], name="SpatialSqueeze")
                        end_points["AuxLogits"] = aux_logits

            # Final pooling and prediction.
            with tf.variable_scope("Logits"):
                if global_pool:
                    net = tf.reduce_mean(net, [1, 2], keepdims=True, name="GlobalPool")
                    end_points["global_pool"] = net
                else:
                    kernel_size = reduced_kernel_size_for_small_input(net, [8, 8])
                    net = slim.avg_pool2d(net, kernel_size, padding="VALID",
                                          scope="AvgPool_1a_{}x{}".format(*kernel_size))
                    end_points["AvgPool_1a"] = net
                if not num_classes:
                    return net, end_points
                # 1 x 1 x 2048
                net = slim.dropout(net, keep_prob=dropout_keep_prob, scope="Dropout_1b")
                end_points["PreLogits"] = net
                logits = slim.conv2d(net, num_classes, [1, 1], activation_fn=None,
                                     normalizer_fn=None, scope="Conv2d_1c_1x1")
                if spatial_squeeze:
                    logits = tf.squeeze(logits, [1, 2], name="SpatialSqueeze")
            end_points["Logits"] = logits
            end_points["Predictions"] = prediction_fn(logits, scope="Predictions")
    return logits, end_points


inception_v3.default_image_size = 299

inception_v3_arg_scope = inception_utils.inception_arg_scope
