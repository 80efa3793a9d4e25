"""MobileNet v1 (Howard et al., arXiv:1704.04861): TF-Slim's `nets/mobilenet_v1.py`, name for name.

A 3x3 stride-2 convolution, then 13 depthwise-separable layers, each a
depthwise-only `separable_conv2d` ('Conv2d_<i>_depthwise') followed by a 1x1
convolution ('Conv2d_<i>_pointwise'); BatchNorm (with gamma) and ReLU6 after each.
`mobilenet_v1_075/_050/_025` are the width-multiplier variants.
"""
from __future__ import annotations

import collections
import functools

from slimtriton import slim
from slimtriton import tf

Conv = collections.namedtuple("Conv", ["kernel", "stride", "depth"])
DepthSepConv = collections.namedtuple("DepthSepConv", ["kernel", "stride", "depth"])

# The layer list of the paper's Table 1.
MOBILENETV1_CONV_DEFS = [
    Conv(kernel=[3, 3], stride=2, depth=32),
    DepthSepConv(kernel=[3, 3], stride=1, depth=64),
    DepthSepConv(kernel=[3, 3], stride=2, depth=128),
    DepthSepConv(kernel=[3, 3], stride=1, depth=128),
    DepthSepConv(kernel=[3, 3], stride=2, depth=256),
    DepthSepConv(kernel=[3, 3], stride=1, depth=256),
    DepthSepConv(kernel=[3, 3], stride=2, depth=512),
    DepthSepConv(kernel=[3, 3], stride=1, depth=512),
    DepthSepConv(kernel=[3, 3], stride=1, depth=512),
    DepthSepConv(kernel=[3, 3], stride=1, depth=512),
    DepthSepConv(kernel=[3, 3], stride=1, depth=512),
    DepthSepConv(kernel=[3, 3], stride=1, depth=512),
    DepthSepConv(kernel=[3, 3], stride=2, depth=1024),
    DepthSepConv(kernel=[3, 3], stride=1, depth=1024),
]


def _fixed_padding(inputs, kernel_size, rate=1):
    """Pad `k_eff - 1` zeros ((k_eff - 1) // 2 before, the rest after) so that the following
    'VALID' convolution has the same alignment whatever the input parity (use_explicit_padding).
    TF-Slim derives both k_eff entries from kernel_size[0] (the kernel height), so a non-square
    kernel pads its width as if it were square; kept so custom conv_defs pad exactly as TF-Slim."""
    k_eff = [kernel_size[0] + (kernel_size[0] - 1) * (rate - 1),
             kernel_size[0] + (kernel_size[0] - 1) * (rate - 1)]
    pad_total = [k_eff[0] - 1, k_eff[1] - 1]
    pad_beg = [pad_total[0] // 2, pad_total[1] // 2]
    pad_end = [pad_total[0] - pad_beg[0], pad_total[1] - pad_beg[1]]
    return tf.pad(inputs, [[0, 0], [pad_beg[0], pad_end[0]], [pad_beg[1], pad_end[1]], [0, 0]])


def mobilenet_v1_base(inputs, final_endpoint="Conv2d_13_pointwise", min_depth=8, depth_multiplier=1.0,
                      conv_defs=None, output_stride=None, use_explicit_padding=False, scope=None):
    """MobileNet v1 from the input up to `final_endpoint`; returns (net, end_points).

    output_stride (8, 16 or 32) switches to atrous depthwise convolutions once reached.
    use_explicit_padding pads explicitly and convolves 'VALID'.
    """
    if depth_multiplier <= 0:
        raise ValueError(f"mobilenet_v1_base: depth_multiplier must be > 0, got {depth_multiplier}")
    if output_stride is not None and output_stride not in (8, 16, 32):
        raise ValueError(f"mobilenet_v1_base: output_stride must be 8, 16 or 32, got {output_stride}")
    conv_defs = MOBILENETV1_CONV_DEFS if conv_defs is None else conv_defs
    end_points = {}

    def depth(d):
        return max(int(d * depth_multiplier), min_depth)

    padding = "VALID" if use_explicit_padding else "SAME"
    with tf.variable_scope(scope, "MobilenetV1", [inputs]):
        with slim.arg_scope([slim.conv2d, slim.separable_conv2d], padding=padding):
            current_stride = 1  # stride of the activations so far
            rate = 1  # atrous rate once output_stride is reached
            net = inputs
            for i, conv_def in enumerate(conv_defs):
                end_point_base = "Conv2d_%d" % i
                if output_stride is not None and current_stride == output_stride:
                    layer_stride = 1
                    layer_rate = rate
                    rate *= conv_def.stride
                else:
                    layer_stride = conv_def.stride
                    layer_rate = 1
                    current_stride *= conv_def.stride

                if isinstance(conv_def, Conv):
                    end_point = end_point_base
                    if use_explicit_padding:
                        net = _fixed_padding(net, conv_def.kernel)
                    net = slim.conv2d(net, depth(conv_def.depth), conv_def.kernel,
                                      stride=conv_def.stride, scope=end_point)
                    end_points[end_point] = net
                    if end_point == final_endpoint:
                        return net, end_points
                elif isinstance(conv_def, DepthSepConv):
                    end_point = end_point_base + "_depthwise"
                    if use_explicit_padding:
                        net = _fixed_padding(net, conv_def.kernel, layer_rate)
                    # num_outputs None: depthwise only; the pointwise conv is a separate layer.
                    net = slim.separable_conv2d(net, None, conv_def.kernel, depth_multiplier=1,
                                                stride=layer_stride, rate=layer_rate, scope=end_point)
                    end_points[end_point] = net
                    if end_point == final_endpoint:
                        return net, end_points

                    end_point = end_point_base + "_pointwise"
                    net = slim.conv2d(net, depth(conv_def.depth), [1, 1], stride=1, scope=end_point)
                    end_points[end_point] = net
                    if end_point == final_endpoint:
                        return net, end_points
                else:
                    raise ValueError(f"mobilenet_v1_base: unknown convolution type "
                                     f"{type(conv_def).__name__} for layer {i}")
    raise ValueError(f"mobilenet_v1_base: unknown final_endpoint {final_endpoint!r}")


def _reduced_kernel_size_for_small_input(input_tensor, kernel_size):
    shape = input_tensor.get_shape().as_list()
    return [min(shape[1], kernel_size[0]), min(shape[2], kernel_size[1])]


def mobilenet_v1(inputs, num_classes=1000, dropout_keep_prob=0.999, is_training=True, min_depth=8,
                 depth_multiplier=1.0, conv_defs=None, prediction_fn=slim.softmax, spatial_squeeze=True,
                 reuse=None, scope="MobilenetV1", global_pool=False):
    """MobileNet v1 classifier; returns (logits, end_points).
    num_classes 0/None returns the pooled features; prediction_fn None skips 'Predictions'."""
    input_shape = inputs.get_shape().as_list()
    if len(input_shape) != 4:
        raise ValueError(f"mobilenet_v1: inputs must be 4-D [batch, height, width, channels], "
                         f"got shape {input_shape}")
    with tf.variable_scope(scope, "MobilenetV1", [inputs], reuse=reuse) as scope:
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = mobilenet_v1_base(inputs, scope=scope, min_depth=min_depth,
                                                depth_multiplier=depth_multiplier, conv_defs=conv_defs)
            with tf.variable_scope("Logits"):
                if global_pool:
                    net = tf.reduce_mean(net, [1, 2], keepdims=True, name="global_pool")
                    end_points["global_pool"] = net
                else:
                    kernel_size = _reduced_kernel_size_for_small_input(net, [7, 7])
                    net = slim.avg_pool2d(net, kernel_size, padding="VALID", scope="AvgPool_1a")
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
            if prediction_fn:
                end_points["Predictions"] = prediction_fn(logits, scope="Predictions")
    return logits, end_points


mobilenet_v1.default_image_size = 224


def wrapped_partial(func, *args, **kwargs):
    partial_func = functools.partial(func, *args, **kwargs)
    functools.update_wrapper(partial_func, func)
    return partial_func


mobilenet_v1_075 = wrapped_partial(mobilenet_v1, depth_multiplier=0.75)
mobilenet_v1_050 = wrapped_partial(mobilenet_v1, depth_multiplier=0.50)
mobilenet_v1_025 = wrapped_partial(mobilenet_v1, depth_multiplier=0.25)


def mobilenet_v1_arg_scope(is_training=True, weight_decay=0.00004, stddev=0.09, regularize_depthwise=False,
                           batch_norm_decay=0.9997, batch_norm_epsilon=0.001,
                           batch_norm_updates_collections=tf.GraphKeys.UPDATE_OPS,
                           normalizer_fn=slim.batch_norm):
    """Truncated-normal weights (stddev 0.09), BatchNorm with gamma (decay 0.9997, eps 0.001)
    and ReLU6 on conv2d / separable_conv2d; L2 decay on conv weights (depthwise only if
    regularize_depthwise). is_training=None leaves BatchNorm's is_training unset."""
    batch_norm_params = {
        "center": True,
        "scale": True,
        "decay": batch_norm_decay,
        "epsilon": batch_norm_epsilon,
        "updates_collections": batch_norm_updates_collections,
    }
    if is_training is not None:
        batch_norm_params["is_training"] = is_training

    weights_init = tf.truncated_normal_initializer(stddev=stddev)
    regularizer = slim.l2_regularizer(weight_decay)
    depthwise_regularizer = regularizer if regularize_depthwise else None
    with slim.arg_scope([slim.conv2d, slim.separable_conv2d], weights_initializer=weights_init,
                        activation_fn=tf.nn.relu6, normalizer_fn=normalizer_fn):
        with slim.arg_scope([slim.batch_norm], **batch_norm_params):
            with slim.arg_scope([slim.conv2d], weights_regularizer=regularizer):
                with slim.arg_scope([slim.separable_conv2d], weights_regularizer=depthwise_regularizer) as sc:
                    return sc
