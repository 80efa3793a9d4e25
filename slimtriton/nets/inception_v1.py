"""Inception v1 / GoogLeNet (Szegedy et al., arXiv:1409.4842): TF-Slim's
`nets/inception_v1.py`, name for name.

Every Mixed block has the same four branches (1x1; 1x1 -> 3x3; 1x1 -> 3x3;
3x3 max pool -> 1x1); only their depths differ, so the blocks are listed as a
table. Mixed_5b's third branch keeps the checkpoint's historical name
'Conv2d_0a_3x3'.
"""
from __future__ import annotations

from slimtriton import slim
from slimtriton import tf
from slimtriton.nets import inception_utils


def trunc_normal(stddev):
    return tf.truncated_normal_initializer(0.0, stddev)


# name: (branch_0, branch_1 (1x1, 3x3), branch_2 (1x1, 3x3), branch_3 pool projection)
_MIXED = {
    "Mixed_3b": (64, (96, 128), (16, 32), 32),
    "Mixed_3c": (128, (128, 192), (32, 96), 64),
    "Mixed_4b": (192, (96, 208), (16, 48), 64),
    "Mixed_4c": (160, (112, 224), (24, 64), 64),
    "Mixed_4d": (128, (128, 256), (24, 64), 64),
    "Mixed_4e": (112, (144, 288), (32, 64), 64),
    "Mixed_4f": (256, (160, 320), (32, 128), 128),
    "Mixed_5b": (256, (160, 320), (32, 128), 128),
    "Mixed_5c": (384, (192, 384), (48, 128), 128),
}

# The end points in network order; _ROOT is the stem that include_root_block=False skips.
_LAYERS = (
    "Conv2d_1a_7x7", "MaxPool_2a_3x3", "Conv2d_2b_1x1", "Conv2d_2c_3x3", "MaxPool_3a_3x3",
    "Mixed_3b", "Mixed_3c", "MaxPool_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
    "Mixed_4f", "MaxPool_5a_2x2", "Mixed_5b", "Mixed_5c",
)
_ROOT = ("Conv2d_1a_7x7", "MaxPool_2a_3x3", "Conv2d_2b_1x1", "Conv2d_2c_3x3", "MaxPool_3a_3x3")


def _mixed(net, end_point):
    depth_0, (depth_1a, depth_1b), (depth_2a, depth_2b), depth_3 = _MIXED[end_point]
    with tf.variable_scope(end_point):
        with tf.variable_scope("Branch_0"):
            branch_0 = slim.conv2d(net, depth_0, [1, 1], scope="Conv2d_0a_1x1")
        with tf.variable_scope("Branch_1"):
            branch_1 = slim.conv2d(net, depth_1a, [1, 1], scope="Conv2d_0a_1x1")
            branch_1 = slim.conv2d(branch_1, depth_1b, [3, 3], scope="Conv2d_0b_3x3")
        with tf.variable_scope("Branch_2"):
            branch_2 = slim.conv2d(net, depth_2a, [1, 1], scope="Conv2d_0a_1x1")
            branch_2 = slim.conv2d(branch_2, depth_2b, [3, 3],
                                   scope="Conv2d_0a_3x3" if end_point == "Mixed_5b" else "Conv2d_0b_3x3")
        with tf.variable_scope("Branch_3"):
            branch_3 = slim.max_pool2d(net, [3, 3], scope="MaxPool_0a_3x3")
            branch_3 = slim.conv2d(branch_3, depth_3, [1, 1], scope="Conv2d_0b_1x1")
        return tf.concat(axis=3, values=[branch_0, branch_1, branch_2, branch_3])


def inception_v1_base(inputs, final_endpoint="Mixed_5c", include_root_block=True, scope="InceptionV1"):
    """Inception v1 from the input up to `final_endpoint`; returns (net, end_points).
    include_root_block False starts at Mixed_3b (the input is then a 28x28x192 map)."""
    if final_endpoint not in _LAYERS:
        raise ValueError(f"inception_v1_base: unknown final_endpoint {final_endpoint!r}; "
                         f"expected one of {list(_LAYERS)}")
    if not include_root_block and final_endpoint in _ROOT:
        raise ValueError(f"inception_v1_base: final_endpoint {final_endpoint!r} is in the root "
                         "block, which include_root_block=False leaves out")
    end_points = {}
    with tf.variable_scope(scope, "InceptionV1", [inputs]):
        with slim.arg_scope([slim.conv2d, slim.fully_connected], weights_initializer=trunc_normal(0.01)):
            with slim.arg_scope([slim.conv2d, slim.max_pool2d], stride=1, padding="SAME"):
                net = inputs
                for end_point in _LAYERS:
                    if end_point in _ROOT and not include_root_block:
                        continue
                    if end_point == "Conv2d_1a_7x7":
                        net = slim.conv2d(net, 64, [7, 7], stride=2, scope=end_point)
                    elif end_point == "Conv2d_2b_1x1":
                        net = slim.conv2d(net, 64, [1, 1], scope=end_point)
                    elif end_point == "Conv2d_2c_3x3":
                        net = slim.conv2d(net, 192, [3, 3], scope=end_point)
                    elif end_point == "MaxPool_5a_2x2":
                        net = slim.max_pool2d(net, [2, 2], stride=2, scope=end_point)
                    elif end_point.startswith("MaxPool"):
                        net = slim.max_pool2d(net, [3, 3], stride=2, scope=end_point)
                    else:
                        net = _mixed(net, end_point)
                    end_points[end_point] = net
                    if end_point == final_endpoint:
                        return net, end_points
    raise AssertionError("unreachable: final_endpoint was validated")


def inception_v1(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.8,
                 prediction_fn=slim.softmax, spatial_squeeze=True, reuse=None, scope="InceptionV1",
                 global_pool=False):
    """Inception v1 classifier; returns (logits, end_points).
    num_classes 0/None returns the pooled features ('AvgPool_0a_7x7' or 'global_pool')."""
    with tf.variable_scope(scope, "InceptionV1", [inputs], reuse=reuse) as scope:
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = inception_v1_base(inputs, scope=scope)
            with tf.variable_scope("Logits"):
                if global_pool:
                    net = tf.reduce_mean(net, [1, 2], keepdims=True, name="global_pool")
                    end_points["global_pool"] = net
                else:
                    net = slim.avg_pool2d(net, [7, 7], stride=1, scope="AvgPool_0a_7x7")
                    end_points["AvgPool_0a_7x7"] = net
                if not num_classes:
                    return net, end_points
                net = slim.dropout(net, dropout_keep_prob, scope="Dropout_0b")
                logits = slim.conv2d(net, num_classes, [1, 1], activation_fn=None, normalizer_fn=None,
                                     scope="Conv2d_0c_1x1")
                if spatial_squeeze:
                    logits = tf.squeeze(logits, [1, 2], name="SpatialSqueeze")
                end_points["Logits"] = logits
                end_points["Predictions"] = prediction_fn(logits, scope="Predictions")
    return logits, end_points


inception_v1.default_image_size = 224

inception_v1_arg_scope = inception_utils.inception_arg_scope
