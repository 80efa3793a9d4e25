"""Inception v2 / BN-Inception (Ioffe & Szegedy, arXiv:1502.03167): TF-Slim's
`nets/inception_v2.py`, name for name.

The stem starts with a 7x7 separable convolution (depth multiplier
min(depth(64) / 3, 8)) unless use_separable_conv=False. Mixed blocks come in two
kinds, listed as tables: the four-branch module (1x1; 1x1 -> 3x3; 1x1 -> 3x3 ->
3x3; pool -> 1x1) and the stride-2 reduction module (Mixed_4a, Mixed_5a).
"""
from __future__ import annotations

from slimtriton import slim
from slimtriton import tf
from slimtriton.nets import inception_utils
from slimtriton.nets.inception_utils import reduced_kernel_size_for_small_input


def trunc_normal(stddev):
    return tf.truncated_normal_initializer(0.0, stddev)


# name: (branch_0, branch_1 (1x1, 3x3), branch_2 (1x1, 3x3, 3x3), branch_3 pool kind, projection)
_MIXED = {
    "Mixed_3b": (64, (64, 64), (64, 96), "avg", 32),
    "Mixed_3c": (64, (64, 96), (64, 96), "avg", 64),
    "Mixed_4b": (224, (64, 96), (96, 128), "avg", 128),
    "Mixed_4c": (192, (96, 128), (96, 128), "avg", 128),
    "Mixed_4d": (160, (128, 160), (128, 160), "avg", 96),
    "Mixed_4e": (96, (128, 192), (160, 192), "avg", 96),
    "Mixed_5b": (352, (192, 320), (160, 224), "avg", 128),
    "Mixed_5c": (352, (192, 320), (192, 224), "max", 128),
}
# name: (branch_0 (1x1, 3x3/2), branch_1 (1x1, 3x3, 3x3/2)); branch_2 is a 3x3/2 max pool.
_REDUCTION = {
    "Mixed_4a": ((128, 160), (64, 96)),
    "Mixed_5a": ((128, 192), (192, 256)),
}
_LAYERS = (
    "Conv2d_1a_7x7", "MaxPool_2a_3x3", "Conv2d_2b_1x1", "Conv2d_2c_3x3", "MaxPool_3a_3x3",
    "Mixed_3b", "Mixed_3c", "Mixed_4a", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
    "Mixed_5a", "Mixed_5b", "Mixed_5c",
)
_ROOT = ("Conv2d_1a_7x7", "MaxPool_2a_3x3", "Conv2d_2b_1x1", "Conv2d_2c_3x3", "MaxPool_3a_3x3")


def _mixed(net, end_point, depth):
    depth_0, (depth_1a, depth_1b), (depth_2a, depth_2b), pool, depth_3 = _MIXED[end_point]
    with tf.variable_scope(end_point):
        with tf.variable_scope("Branch_0"):
            branch_0 = slim.conv2d(net, depth(depth_0), [1, 1], scope="Conv2d_0a_1x1")
        with tf.variable_scope("Branch_1"):
            branch_1 = slim.conv2d(net, depth(depth_1a), [1, 1], weights_initializer=trunc_normal(0.09),
                                   scope="Conv2d_0a_1x1")
            branch_1 = slim.conv2d(branch_1, depth(depth_1b), [3, 3], scope="Conv2d_0b_3x3")
        with tf.variable_scope("Branch_2"):
            branch_2 = slim.conv2d(net, depth(depth_2a), [1, 1], weights_initializer=trunc_normal(0.09),
                                   scope="Conv2d_0a_1x1")
            branch_2 = slim.conv2d(branch_2, depth(depth_2b), [3, 3], scope="Conv2d_0b_3x3")
            branch_2 = slim.conv2d(branch_2, depth(depth_2b), [3, 3], scope="Conv2d_0c_3x3")
        with tf.variable_scope("Branch_3"):
            if pool == "avg":
                branch_3 = slim.avg_pool2d(net, [3, 3], scope="AvgPool_0a_3x3")
            else:
                branch_3 = slim.max_pool2d(net, [3, 3], scope="MaxPool_0a_3x3")
            branch_3 = slim.conv2d(branch_3, depth(depth_3), [1, 1], weights_initializer=trunc_normal(0.1),
                                   scope="Conv2d_0b_1x1")
        return tf.concat(axis=3, values=[branch_0, branch_1, branch_2, branch_3])


def _reduction(net, end_point, depth):
    (depth_0a, depth_0b), (depth_1a, depth_1b) = _REDUCTION[end_point]
    with tf.variable_scope(end_point):
        with tf.variable_scope("Branch_0"):
            branch_0 = slim.conv2d(net, depth(depth_0a), [1, 1], weights_initializer=trunc_normal(0.09),
                                   scope="Conv2d_0a_1x1")
            branch_0 = slim.conv2d(branch_0, depth(depth_0b), [3, 3], stride=2, scope="Conv2d_1a_3x3")
        with tf.variable_scope("Branch_1"):
            branch_1 = slim.conv2d(net, depth(depth_1a), [1, 1], weights_initializer=trunc_normal(0.09),
                                   scope="Conv2d_0a_1x1")
            branch_1 = slim.conv2d(branch_1, depth(depth_1b), [3, 3], scope="Conv2d_0b_3x3")
            branch_1 = slim.conv2d(branch_1, depth(depth_1b), [3, 3], stride=2, scope="Conv2d_1a_3x3")
        with tf.variable_scope("Branch_2"):
            branch_2 = slim.max_pool2d(net, [3, 3], stride=2, scope="MaxPool_1a_3x3")
        return tf.concat(axis=3, values=[branch_0, branch_1, branch_2])


def inception_v2_base(inputs, final_endpoint="Mixed_5c", min_depth=16, depth_multiplier=1.0,
                      use_separable_conv=True, data_format="NHWC", include_root_block=True, scope=None):
    """Inception v2 from the input up to `final_endpoint`; returns (net, end_points)."""
    if depth_multiplier <= 0:
        raise ValueError(f"inception_v2_base: depth_multiplier must be > 0, got {depth_multiplier}")
    if data_format != "NHWC":
        raise ValueError(f"inception_v2_base: only data_format 'NHWC' is supported, got {data_format!r}")
    if final_endpoint not in _LAYERS:
        raise ValueError(f"inception_v2_base: unknown final_endpoint {final_endpoint!r}; "
                         f"expected one of {list(_LAYERS)}")
    if not include_root_block and final_endpoint in _ROOT:
        raise ValueError(f"inception_v2_base: final_endpoint {final_endpoint!r} is in the root "
                         "block, which include_root_block=False leaves out")
    end_points = {}

    def depth(d):
        return max(int(d * depth_multiplier), min_depth)

    with tf.variable_scope(scope, "InceptionV2", [inputs]):
        with slim.arg_scope([slim.conv2d, slim.max_pool2d, slim.avg_pool2d], stride=1, padding="SAME"):
            net = inputs
            for end_point in _LAYERS:
                if end_point in _ROOT and not include_root_block:
                    continue
                if end_point == "Conv2d_1a_7x7":
                    if use_separable_conv:
                        # Depthwise multiplier at most 8: the separable conv keeps its
                        # depthwise stage small on a 3-channel input.
                        depthwise_multiplier = min(int(depth(64) / 3), 8)
                        net = slim.separable_conv2d(net, depth(64), [7, 7],
                                                    depth_multiplier=depthwise_multiplier, stride=2,
                                                    padding="SAME", weights_initializer=trunc_normal(1.0),
                                                    scope=end_point)
                    else:
                        net = slim.conv2d(net, depth(64), [7, 7], stride=2,
                                          weights_initializer=trunc_normal(1.0), scope=end_point)
                elif end_point == "Conv2d_2b_1x1":
                    net = slim.conv2d(net, depth(64), [1, 1], scope=end_point,
                                      weights_initializer=trunc_normal(0.1))
                elif end_point == "Conv2d_2c_3x3":
                    net = slim.conv2d(net, depth(192), [3, 3], scope=end_point)
                elif end_point.startswith("MaxPool"):
                    net = slim.max_pool2d(net, [3, 3], scope=end_point, stride=2)
                elif end_point in _REDUCTION:
                    net = _reduction(net, end_point, depth)
                else:
                    net = _mixed(net, end_point, depth)
                end_points[end_point] = net
                if end_point == final_endpoint:
                    return net, end_points
    raise AssertionError("unreachable: final_endpoint was validated")


def inception_v2(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.8, min_depth=16,
                 depth_multiplier=1.0, prediction_fn=slim.softmax, spatial_squeeze=True, reuse=None,
                 scope="InceptionV2", global_pool=False):
    """Inception v2 classifier; returns (logits, end_points).
    num_classes 0/None returns the pooled features ('AvgPool_1a' or 'global_pool')."""
    if depth_multiplier <= 0:
        raise ValueError(f"inception_v2: depth_multiplier must be > 0, got {depth_multiplier}")
    with tf.variable_scope(scope, "InceptionV2", [inputs], reuse=reuse) as scope:
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = inception_v2_base(inputs, scope=scope, min_depth=min_depth,
                                                depth_multiplier=depth_multiplier)
            with tf.variable_scope("Logits"):
                if global_pool:
                    net = tf.reduce_mean(net, [1, 2], keepdims=True, name="global_pool")
                    end_points["global_pool"] = net
                else:
                    kernel_size = reduced_kernel_size_for_small_input(net, [7, 7])
                    net = slim.avg_pool2d(net, kernel_size, padding="VALID",
                                          scope="AvgPool_1a_{}x{}".format(*kernel_size))
                    end_points["AvgPool_1a"] = net
                if not num_classes:
                    return net, end_points
                # 1 x 1 x 1024
                net = slim.dropout(net, keep_prob=dropout_keep_prob, scope="Dropout_1b")
                logits = slim.conv2d(net, num_classes, [1, 1], activation_fn=None, normalizer_fn=None,
                                     scope="Conv2d_1c_1x1")
                if spatial_squeeze:
                    logits = tf.squeeze(logits, [1, 2], name="SpatialSqueeze")
            end_points["Logits"] = logits
            end_points["Predictions"] = prediction_fn(logits, scope="Predictions")
    return logits, end_points


inception_v2.default_image_size = 224

inception_v2_arg_scope = inception_utils.inception_arg_scope
