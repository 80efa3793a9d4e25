"""ResNet v1 (He et al. 2015, arXiv:1512.03385): TF-Slim's `nets/resnet_v1.py`, name for name.

Bottleneck units with BatchNorm *after* every convolution; a projection shortcut
only where the depth changes; the stride sits in the last unit of blocks 1-3.

    with slim.arg_scope(resnet_v1.resnet_arg_scope()):
        net, end_points = resnet_v1.resnet_v1_101(images, 1000, is_training=False)

The models copy's options are kept: `global_pool` (end point 'global_pool'),
`output_stride` (atrous convolution), `spatial_squeeze` (logits [B, C] and end
point '<scope>/spatial_squeeze'; pass False for tf_slim's 4-D logits),
`store_non_strided_activations`, `min_base_depth` / `depth_multiplier`.
"""
from __future__ import annotations

import contextlib

from slimtriton import slim
from slimtriton import tf
from slimtriton.nets import resnet_utils

resnet_arg_scope = resnet_utils.resnet_arg_scope


@slim.add_arg_scope
def bottleneck(inputs, depth, depth_bottleneck, stride, rate=1, outputs_collections=None,
               scope=None, use_bounded_activations=False):
    """Bottleneck residual unit with BN after the convolutions (Fig. 1(a) of arXiv:1603.05027):
    relu(shortcut + conv3(conv2(conv1(x)))), the 3x3 conv2 carrying the unit's stride."""
    with tf.variable_scope(scope, "bottleneck_v1", [inputs]) as sc:
        depth_in = slim.utils.last_dimension(inputs.get_shape(), min_rank=4)
        if depth == depth_in:
            shortcut = resnet_utils.subsample(inputs, stride, "shortcut")
        else:
            shortcut = slim.conv2d(inputs, depth, [1, 1], stride=stride,
                                   activation_fn=tf.nn.relu6 if use_bounded_activations else None,
                                   scope="shortcut")

        residual = slim.conv2d(inputs, depth_bottleneck, [1, 1], stride=1, scope="conv1")
        residual = resnet_utils.conv2d_same(residual, depth_bottleneck, 3, stride, rate=rate,
                                            scope="conv2")
        residual = slim.conv2d(residual, depth, [1, 1], stride=1, activation_fn=None, scope="conv3")

        if use_bounded_activations:
            # A bounded (band-pass) residual quantizes better.
            residual = resnet_utils.clip_by_value(residual, -6.0, 6.0)
            output = tf.nn.relu6(shortcut + residual)
        else:
            output = tf.nn.relu(shortcut + residual)

        return slim.utils.collect_named_outputs(outputs_collections, sc.name, output)


def _root_output_stride(output_stride, scope_name):
    """The root block (conv1 + pool1) has stride 4; the blocks must provide the rest."""
    if output_stride is None:
        return None
    if output_stride % 4 != 0:
        raise ValueError(f"{scope_name}: output_stride needs to be a multiple of 4, got {output_stride}")
    return output_stride // 4


def resnet_v1(inputs, blocks, num_classes=None, is_training=True, global_pool=True,
              output_stride=None, include_root_block=True, spatial_squeeze=True,
              store_non_strided_activations=False, reuse=None, scope=None):
    """Generator for v1 ResNets; see `resnet_v1_50` etc. for the standard block lists.

    Returns (net, end_points): net is the logits ([B, C] if spatial_squeeze, else
    [B, 1, 1, C]) when num_classes is non-zero, else the (pooled if global_pool)
    features of the last block. is_training=None leaves BatchNorm's is_training to
    an outer arg_scope.
    """
    with tf.variable_scope(scope, "resnet_v1", [inputs], reuse=reuse) as sc:
        end_points_collection = sc.original_name_scope + "_end_points"
        with slim.arg_scope([slim.conv2d, bottleneck, resnet_utils.stack_blocks_dense],
                            outputs_collections=end_points_collection):
            with (slim.arg_scope([slim.batch_norm], is_training=is_training)
                  if is_training is not None else contextlib.nullcontext()):
                net = inputs
                if include_root_block:
                    output_stride = _root_output_stride(output_stride, sc.name)
                    net = resnet_utils.conv2d_same(net, 64, 7, stride=2, scope="conv1")
                    net = slim.max_pool2d(net, [3, 3], stride=2, scope="pool1")
                net = resnet_utils.stack_blocks_dense(net, blocks, output_stride,
                                                      store_non_strided_activations)
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


resnet_v1.default_image_size = 224


def resnet_v1_block(scope, base_depth, num_units, stride):
    """A block of `num_units` bottlenecks of depth 4*base_depth; the last unit has `stride`."""
    return resnet_utils.Block(scope, bottleneck, [
        {"depth": base_depth * 4, "depth_bottleneck": base_depth, "stride": 1}
    ] * (num_units - 1) + [
        {"depth": base_depth * 4, "depth_bottleneck": base_depth, "stride": stride}
    ])


def _standard_blocks(units, min_base_depth, depth_multiplier):
    def depth_func(d):
        return max(int(d * depth_multiplier), min_base_depth)
    return [
        resnet_v1_block("block1", base_depth=depth_func(64), num_units=units[0], stride=2),
        resnet_v1_block("block2", base_depth=depth_func(128), num_units=units[1], stride=2),
        resnet_v1_block("block3", base_depth=depth_func(256), num_units=units[2], stride=2),
        resnet_v1_block("block4", base_depth=depth_func(512), num_units=units[3], stride=1),
    ]


def resnet_v1_50(inputs, num_classes=None, is_training=True, global_pool=True, output_stride=None,
                 spatial_squeeze=True, store_non_strided_activations=False, min_base_depth=8,
                 depth_multiplier=1, reuse=None, scope="resnet_v1_50"):
    """ResNet-50 (units 3, 4, 6, 3). See `resnet_v1` for arguments and results."""
    blocks = _standard_blocks((3, 4, 6, 3), min_base_depth, depth_multiplier)
    return resnet_v1(inputs, blocks, num_classes, is_training, global_pool=global_pool,
                     output_stride=output_stride, include_root_block=True,
                     spatial_squeeze=spatial_squeeze,
                     store_non_strided_activations=store_non_strided_activations,
                     reuse=reuse, scope=scope)


resnet_v1_50.default_image_size = resnet_v1.default_image_size


def resnet_v1_101(inputs, num_classes=None, is_training=True, global_pool=True, output_stride=None,
                  spatial_squeeze=True, store_non_strided_activations=False, min_base_depth=8,
                  depth_multiplier=1, reuse=None, scope="resnet_v1_101"):
    """ResNet-101 (units 3, 4, 23, 3). See `resnet_v1` for arguments and results."""
    blocks = _standard_blocks((3, 4, 23, 3), min_base_depth, depth_multiplier)
    return resnet_v1(inputs, blocks, num_classes, is_training, global_pool=global_pool,
                     output_stride=output_stride, include_root_block=True,
                     spatial_squeeze=spatial_squeeze,
                     store_non_strided_activations=store_non_strided_activations,
                     reuse=reuse, scope=scope)


resnet_v1_101.default_image_size = resnet_v1.default_image_size


def resnet_v1_152(inputs, num_classes=None, is_training=True, global_pool=True, output_stride=None,
                  store_non_strided_activations=False, spatial_squeeze=True, min_base_depth=8,
                  depth_multiplier=1, reuse=None, scope="resnet_v1_152"):
    """ResNet-152 (units 3, 8, 36, 3). See `resnet_v1` for arguments and results.
    (The positional order of store_non_strided_activations / spatial_squeeze is TF-Slim's.)"""
    blocks = _standard_blocks((3, 8, 36, 3), min_base_depth, depth_multiplier)
    return resnet_v1(inputs, blocks, num_classes, is_training, global_pool=global_pool,
                     output_stride=output_stride, include_root_block=True,
                     spatial_squeeze=spatial_squeeze,
                     store_non_strided_activations=store_non_strided_activations,
                     reuse=reuse, scope=scope)


resnet_v1_152.default_image_size = resnet_v1.default_image_size


def resnet_v1_200(inputs, num_classes=None, is_training=True, global_pool=True, output_stride=None,
                  store_non_strided_activations=False, spatial_squeeze=True, min_base_depth=8,
                  depth_multiplier=1, reuse=None, scope="resnet_v1_200"):
    """ResNet-200 (units 3, 24, 36, 3). See `resnet_v1` for arguments and results."""
    blocks = _standard_blocks((3, 24, 36, 3), min_base_depth, depth_multiplier)
    return resnet_v1(inputs, blocks, num_classes, is_training, global_pool=global_pool,
                     output_stride=output_stride, include_root_block=True,
                     spatial_squeeze=spatial_squeeze,
                     store_non_strided_activations=store_non_strided_activations,
                     reuse=reuse, scope=scope)


resnet_v1_200.default_image_size = resnet_v1.default_image_size
