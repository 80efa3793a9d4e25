"""ResNet v2 (He et al. 2016, arXiv:1603.05027): TF-Slim's `nets/resnet_v2.py`, name for name.

Full pre-activation bottleneck units: BatchNorm+ReLU ('preact') *before* the
convolutions, a projection shortcut (with biases, no BN) only where the depth
changes, and a 'postnorm' BatchNorm+ReLU after the last block. The root conv1
has biases and neither BN nor activation (the first unit's preact provides them).

    with slim.arg_scope(resnet_v2.resnet_arg_scope()):
        net, end_points = resnet_v2.resnet_v2_50(images, 1001, is_training=False)

Options as in the models copy: `global_pool`, `output_stride`, `spatial_squeeze`
(pass False for tf_slim's 4-D logits), `include_root_block`, `reuse`, `scope`.
"""
from __future__ import annotations

import contextlib

from slimtriton import slim
from slimtriton import tf
from slimtriton.nets import resnet_utils

resnet_arg_scope = resnet_utils.resnet_arg_scope


@slim.add_arg_scope
def bottleneck(inputs, depth, depth_bottleneck, stride, rate=1, outputs_collections=None, scope=None):
    """Pre-activation bottleneck unit (Fig. 1(b) of arXiv:1603.05027):
    shortcut + conv3(conv2(conv1(relu(bn(x))))), with no activation on the sum."""
    with tf.variable_scope(scope, "bottleneck_v2", [inputs]) as sc:
        depth_in = slim.utils.last_dimension(inputs.get_shape(), min_rank=4)
        preact = slim.batch_norm(inputs, activation_fn=tf.nn.relu, scope="preact")
        if depth == depth_in:
            shortcut = resnet_utils.subsample(inputs, stride, "shortcut")
        else:
            shortcut = slim.conv2d(preact, depth, [1, 1], stride=stride, normalizer_fn=None,
                                   activation_fn=None, scope="shortcut")

        residual = slim.conv2d(preact, depth_bottleneck, [1, 1], stride=1, scope="conv1")
        residual = resnet_utils.conv2d_same(residual, depth_bottleneck, 3, stride, rate=rate,
                                            scope="conv2")
        residual = slim.conv2d(residual, depth, [1, 1], stride=1, normalizer_fn=None,
                               activation_fn=None, scope="conv3")

        output = shortcut + residual
        return slim.utils.collect_named_outputs(outputs_collections, sc.name, output)


def resnet_v2(inputs, blocks, num_classes=None, is_training=True, global_pool=True,
              output_stride=None, include_root_block=True, spatial_squeeze=True, reuse=None,
              scope=None):
    """Generator for v2 (pre-activation) ResNets; see `resnet_v2_50` etc.

    Returns (net, end_points) as `resnet_v1.resnet_v1` does. With include_root_block
    False, `inputs` should be the output of an activation-less convolution.
    """
    with tf.variable_scope(scope, "resnet_v2", [inputs], reuse=reuse) as sc:
        end_points_collection = sc.original_name_scope + "_end_points"
        with slim.arg_scope([slim.conv2d, bottleneck, resnet_utils.stack_blocks_dense],
                            outputs_collections=end_points_collection):
            with (slim.arg_scope([slim.batch_norm], is_training=is_training)
                  if is_training is not None else contextlib.nullcontext()):
                net = inputs
                if include_root_block:
                    if output_stride is not None:
                        if output_stride % 4 != 0:
                            raise ValueError(f"{sc.name}: output_stride needs to be a multiple "
                                             f"of 4, got {output_stride}")
                        output_stride //= 4
                    # No BN / activation in conv1: the first unit's preact applies them.
                    with slim.arg_scope([slim.conv2d], activation_fn=None, normalizer_fn=None):
                        net = resnet_utils.conv2d_same(net, 64, 7, stride=2, scope="conv1")
                    net = slim.max_pool2d(net, [3, 3], stride=2, scope="pool1")
                net = resnet_utils.stack_blocks_dense(net, blocks, output_stride)
                # Pre-activation units leave their sum un-normalized; normalize once at the end.
                net = slim.batch_norm(net, activation_fn=tf.nn.relu, scope="postnorm")
                end_points = slim.utils.convert_collection_to_dict(end_points_collection)

                if global_pool:
                    net = tf.reduce_mean(net, [1, 2], name="pool5", keepdims=True)
                    end_points["global_pool"] = net
                if num_classes:
                    net = slim.conv2d(net, num_classes, [1, 1], activation_fn=None,
                                      normalizer_fn=None, scope="logits")
                    end_points[sc.name + "/logits"] = net
                    if spatial_squeeze:
                        net = tf.squeeze(net, [1, 2], name="SpatialSqueeze")
                        end_points[sc.name + "/spatial_squeeze"] = net
                    end_points["predictions"] = slim.softmax(net, scope="predictions")
                return net, end_points


resnet_v2.default_image_size = 224


def resnet_v2_block(scope, base_depth, num_units, stride):
    """A block of `num_units` bottlenecks of depth 4*base_depth; the last unit has `stride`."""
    return resnet_utils.Block(scope, bottleneck, [
        {"depth": base_depth * 4, "depth_bottleneck": base_depth, "stride": 1}
    ] * (num_units - 1) + [
        {"depth": base_depth * 4, "depth_bottleneck": base_depth, "stride": stride}
    ])


def _standard_blocks(units):
    return [
        resnet_v2_block("block1", base_depth=64, num_units=units[0], stride=2),
        resnet_v2_block("block2", base_depth=128, num_units=units[1], stride=2),
        resnet_v2_block("block3", base_depth=256, num_units=units[2], stride=2),
        resnet_v2_block("block4", base_depth=512, num_units=units[3], stride=1),
    ]


def resnet_v2_50(inputs, num_classes=None, is_training=True, global_pool=True, output_stride=None,
                 spatial_squeeze=True, reuse=None, scope="resnet_v2_50"):
    """ResNet-50 v2 (units 3, 4, 6, 3). See `resnet_v2` for arguments and results."""
    return resnet_v2(inputs, _standard_blocks((3, 4, 6, 3)), num_classes, is_training=is_training,
                     global_pool=global_pool, output_stride=output_stride, include_root_block=True,
                     spatial_squeeze=spatial_squeeze, reuse=reuse, scope=scope)


resnet_v2_50.default_image_size = resnet_v2.default_image_size


def resnet_v2_101(inputs, num_classes=None, is_training=True, global_pool=True, output_stride=None,
                  spatial_squeeze=True, reuse=None, scope="resnet_v2_101"):
    """ResNet-101 v2 (units 3, 4, 23, 3). See `resnet_v2` for arguments and results."""
    return resnet_v2(inputs, _standard_blocks((3, 4, 23, 3)), num_classes, is_training=is_training,
                     global_pool=global_pool, output_stride=output_stride, include_root_block=True,
                     spatial_squeeze=spatial_squeeze, reuse=reuse, scope=scope)


resnet_v2_101.default_image_size = resnet_v2.default_image_size


def resnet_v2_152(inputs, num_classes=None, is_training=True, global_pool=True, output_stride=None,
                  spatial_squeeze=True, reuse=None, scope="resnet_v2_152"):
    """ResNet-152 v2 (units 3, 8, 36, 3). See `resnet_v2` for arguments and results."""
    return resnet_v2(inputs, _standard_blocks((3, 8, 36, 3)), num_classes, is_training=is_training,
                     global_pool=global_pool, output_stride=output_stride, include_root_block=True,
                     spatial_squeeze=spatial_squeeze, reuse=reuse, scope=scope)


resnet_v2_152.default_image_size = resnet_v2.default_image_size


def resnet_v2_200(inputs, num_classes=None, is_training=True, global_pool=True, output_stride=None,
                  spatial_squeeze=True, reuse=None, scope="resnet_v2_200"):
    """ResNet-200 v2 (units 3, 24, 36, 3). See `resnet_v2` for arguments and results."""
    return resnet_v2(inputs, _standard_blocks((3, 24, 36, 3)), num_classes, is_training=is_training,
                     global_pool=global_pool, output_stride=output_stride, include_root_block=True,
                     spatial_squeeze=spatial_squeeze, reuse=reuse, scope=scope)


resnet_v2_200.default_image_size = resnet_v2.default_image_size
