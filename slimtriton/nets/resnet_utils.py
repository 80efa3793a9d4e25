"""Building blocks shared by ResNet v1 and v2 (TF-Slim's `nets/resnet_utils.py`).

The units of a block are described declaratively (`Block`: scope, unit function,
one kwargs dict per unit); `stack_blocks_dense` opens the `blockB/unit_U` scopes
and, when an `output_stride` is requested, swaps strides for atrous rates so the
feature map stops shrinking once the target density is reached.

As in TF-Slim, a block subsamples in its *last* unit, and a strided 'SAME'
convolution is written as explicit zero padding plus a 'VALID' convolution
(`conv2d_same`), which differs from `slim.conv2d(..., stride=2, padding='SAME')`
on even inputs: checkpoints trained with one are wrong with the other.
"""
from __future__ import annotations

import collections

from slimtriton import slim
from slimtriton import tf


class Block(collections.namedtuple("Block", ["scope", "unit_fn", "args"])):
    """A ResNet block: its scope name, the unit function, and one kwargs dict per unit
    (e.g. ``{'depth': 256, 'depth_bottleneck': 64, 'stride': 1}``)."""


def clip_by_value(x, clip_value_min, clip_value_max):
    """`tf.clip_by_value` (ops `clip_by_value/Minimum`, `clip_by_value`), for the nets that
    bound activations (ResNet v1's `use_bounded_activations`, Inception-ResNet-v2's relu6 blocks)."""
    return tf.clip_by_value(x, clip_value_min, clip_value_max)


def subsample(inputs, factor, scope=None):
    """Keep every `factor`-th pixel (a 1x1 max pool with stride `factor`); identity for 1."""
    if factor == 1:
        return inputs
    return slim.max_pool2d(inputs, [1, 1], stride=factor, scope=scope)


def conv2d_same(inputs, num_outputs, kernel_size, stride, rate=1, scope=None):
    """Strided 2-D convolution with TF-Slim ResNet's 'SAME' convention.

    stride 1: a plain 'SAME' convolution. stride > 1: pad `k_eff - 1` zeros
    (`(k_eff - 1) // 2` before, the rest after) and convolve 'VALID', so the result
    equals a stride-1 'SAME' conv followed by `subsample` whatever the input parity.
    """
    if stride == 1:
        return slim.conv2d(inputs, num_outputs, kernel_size, stride=1, rate=rate,
                           padding="SAME", scope=scope)
    if not isinstance(kernel_size, int):
        raise TypeError(f"conv2d_same (scope {scope!r}): kernel_size must be an int, got {kernel_size!r}")
    kernel_size_effective = kernel_size + (kernel_size - 1) * (rate - 1)
    pad_total = kernel_size_effective - 1
    pad_beg = pad_total // 2
    pad_end = pad_total - pad_beg
    inputs = tf.pad(inputs, [[0, 0], [pad_beg, pad_end], [pad_beg, pad_end], [0, 0]])
    return slim.conv2d(inputs, num_outputs, kernel_size, stride=stride, rate=rate,
                       padding="VALID", scope=scope)


@slim.add_arg_scope
def stack_blocks_dense(net, blocks, output_stride=None, store_non_strided_activations=False,
                       outputs_collections=None):
    """Stack ResNet `Block`s under `blockB/unit_U` scopes, controlling the output stride.

    output_stride None: the nominal stride (the product of all unit strides). Otherwise
    it must be a product of unit strides from the start; once reached, later units
    run with stride 1 and a growing atrous rate. store_non_strided_activations moves
    the stride of each block's last unit after the block's end point, so the end point
    holds the undecimated activations.
    """
    current_stride = 1  # effective stride of `net` so far
    rate = 1  # atrous rate used once the target output_stride is reached

    for block in blocks:
        with tf.variable_scope(block.scope, "block", [net]) as sc:
            block_stride = 1
            for i, unit in enumerate(block.args):
                if store_non_strided_activations and i == len(block.args) - 1:
                    block_stride = unit.get("stride", 1)
                    unit = dict(unit, stride=1)
                with tf.variable_scope("unit_%d" % (i + 1), values=[net]):
                    if output_stride is not None and current_stride == output_stride:
                        net = block.unit_fn(net, rate=rate, **dict(unit, stride=1))
                        rate *= unit.get("stride", 1)
                    else:
                        net = block.unit_fn(net, rate=1, **unit)
                        current_stride *= unit.get("stride", 1)
                        if output_stride is not None and current_stride > output_stride:
                            raise ValueError(
                                f"stack_blocks_dense ({sc.name}/unit_{i + 1}): the target "
                                f"output_stride {output_stride} cannot be reached (stride is "
                                f"already {current_stride})")

            # The block's end point is collected before its stride is applied.
            net = slim.utils.collect_named_outputs(outputs_collections, sc.name, net)

            if output_stride is not None and current_stride == output_stride:
                rate *= block_stride
            else:
                net = subsample(net, block_stride)
                current_stride *= block_stride
                if output_stride is not None and current_stride > output_stride:
                    raise ValueError(
                        f"stack_blocks_dense ({sc.name}): the target output_stride "
                        f"{output_stride} cannot be reached (stride is already {current_stride})")

    if output_stride is not None and current_stride != output_stride:
        raise ValueError(f"stack_blocks_dense: the target output_stride {output_stride} cannot be "
                         f"reached; the blocks' total stride is {current_stride}")
    return net


def resnet_arg_scope(weight_decay=0.0001, batch_norm_decay=0.997, batch_norm_epsilon=1e-5,
                     batch_norm_scale=True, activation_fn=tf.nn.relu, use_batch_norm=True,
                     batch_norm_updates_collections=tf.GraphKeys.UPDATE_OPS):
    """The default ResNet arg scope: variance-scaling conv weights with L2 decay,
    BatchNorm (decay 0.997, epsilon 1e-5, with gamma) then ReLU, and 'SAME' max pooling."""
    batch_norm_params = {
        "decay": batch_norm_decay,
        "epsilon": batch_norm_epsilon,
        "scale": batch_norm_scale,
        "updates_collections": batch_norm_updates_collections,
        "fused": None,
    }
    with slim.arg_scope(
            [slim.conv2d],
            weights_regularizer=slim.l2_regularizer(weight_decay),
            weights_initializer=slim.variance_scaling_initializer(),
            activation_fn=activation_fn,
            normalizer_fn=slim.batch_norm if use_batch_norm else None,
            normalizer_params=batch_norm_params):
        with slim.arg_scope([slim.batch_norm], **batch_norm_params):
            # pool1 uses 'SAME' padding (feature alignment for dense prediction), as in TF-Slim.
            with slim.arg_scope([slim.max_pool2d], padding="SAME") as arg_sc:
                return arg_sc
