"""The arg scope shared by the Inception nets (TF-Slim's `nets/inception_utils.py`)."""
from __future__ import annotations

from slimtriton import slim
from slimtriton import tf


def inception_arg_scope(weight_decay=0.00004, use_batch_norm=True, batch_norm_decay=0.9997,
                        batch_norm_epsilon=0.001, activation_fn=tf.nn.relu,
                        batch_norm_updates_collections=tf.GraphKeys.UPDATE_OPS,
                        batch_norm_scale=False):
    """Variance-scaling conv weights with L2 decay on conv and fully connected layers,
    then BatchNorm (decay 0.9997, epsilon 0.001, no gamma unless batch_norm_scale) and ReLU."""
    batch_norm_params = {
        "decay": batch_norm_decay,
        "epsilon": batch_norm_epsilon,
        "updates_collections": batch_norm_updates_collections,
        "fused": None,
        "scale": batch_norm_scale,
    }
    if use_batch_norm:
        normalizer_fn = slim.batch_norm
        normalizer_params = batch_norm_params
    else:
        normalizer_fn = None
        normalizer_params = {}
    with slim.arg_scope([slim.conv2d, slim.fully_connected],
                        weights_regularizer=slim.l2_regularizer(weight_decay)):
        with slim.arg_scope([slim.conv2d],
                            weights_initializer=slim.variance_scaling_initializer(),
                            activation_fn=activation_fn,
                            normalizer_fn=normalizer_fn,
                            normalizer_params=normalizer_params) as sc:
            return sc


def reduced_kernel_size_for_small_input(input_tensor, kernel_size):
    """The pooling kernel, shrunk to the feature map when the input image is small."""
    shape = input_tensor.get_shape().as_list()
    return [min(shape[1], kernel_size[0]), min(shape[2], kernel_size[1])]
