"""TF-Slim layers: same signatures, defaults, variable names and scope names as tf_slim.

A layer records separate IR nodes and computes nothing:

    conv2d(x, 64, [3, 3], scope='conv1', normalizer_fn=batch_norm)
      conv1/weights                 VARIABLE [3,3,Cin,64]
      conv1/Conv2D                  CONV2D   strides, explicit padding ((t,b),(l,r)), dilations
      conv1/BatchNorm/FusedBatchNormV3  BATCH_NORM (+ conv1/BatchNorm/{beta,moving_mean,moving_variance})
      conv1/Relu                    RELU

Order inside conv2d / fully_connected / separable_conv2d: the linear op, then
`normalizer_fn` **or** biases (biases exist only without a normalizer and with a
biases_initializer), then `activation_fn`. Fusion is a later pass, never done here.

Errors on bad input are raised at the layer call and name the layer and its scope,
the argument and the shapes: `slim.conv2d(scope='net/conv1'): argument `inputs`: ...`.
"""
from __future__ import annotations

import functools
import math
import numbers

from ..ir.graph import record
from ..ir.node import FLOAT_DTYPES, Tensor
from ..ir.ops import Op
from . import tensor_ops as nn
from .arg_scope import add_arg_scope
from .initializers import ones_initializer, xavier_initializer, zeros_initializer
from .scopes import GraphKeys, model_variable, name_scope, variable_scope
from .tensor_ops import fail, resolve_padding
from .utils import collect_named_outputs, get_variable_collections

__all__ = [
    "avg_pool2d", "batch_norm", "bias_add", "conv2d", "conv2d_in_plane", "conv2d_transpose", "convolution",
    "convolution2d", "convolution2d_in_plane", "convolution2d_transpose", "dropout", "flatten",
    "fully_connected", "linear", "max_pool2d", "one_hot_encoding", "relu", "relu6", "repeat",
    "separable_conv2d", "separable_convolution2d", "softmax", "stack", "unit_norm",
]

DATA_FORMAT_NHWC = "NHWC"
DATA_FORMAT_NCHW = "NCHW"


class _Layer:
    """Where a layer call is (`slim.conv2d(scope='a/conv1')`), for error messages, plus checks."""

    def __init__(self, fn: str, scope: str):
        self.where = f"slim.{fn}(scope={scope.rstrip('/')!r})"

    def fail(self, argument, message, exc=ValueError):
        fail(self.where, argument, message, exc)

    def tensor(self, x, argument="inputs") -> Tensor:
        if not isinstance(x, Tensor):
            self.fail(argument, f"expected a slimtriton Tensor, got {type(x).__name__}", TypeError)
        return x

    def float_tensor(self, x, argument="inputs") -> Tensor:
        x = self.tensor(x, argument)
        if x.dtype not in FLOAT_DTYPES:
            self.fail(argument, f"expected a floating point tensor, got dtype {x.dtype} (shape {list(x.shape)})",
                      TypeError)
        return x

    def rank(self, x, rank, argument="inputs", what="NHWC"):
        if len(x.shape) != rank:
            self.fail(argument, f"expected a {rank}-D {what} tensor, got shape {list(x.shape)} (rank {len(x.shape)})")

    def min_rank(self, x, rank, argument="inputs"):
        if len(x.shape) < rank:
            self.fail(argument, f"expected rank >= {rank}, got shape {list(x.shape)} (rank {len(x.shape)})")

    def positive_int(self, value, argument, exc=TypeError):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            self.fail(argument, f"expected an int, got {type(value).__name__} {value!r}", exc)
        if value < 1:
            self.fail(argument, f"expected a positive int, got {value}")
        return int(value)

    def pair(self, value, argument):
        """An int or a pair of positive ints -> (a, b)."""
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                self.fail(argument, f"expected an int or a list of 2 ints, got {list(value)}")
            vals = value
        else:
            vals = (value, value)
        for v in vals:
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                self.fail(argument, f"expected an int or a list of 2 ints, got {value!r}", TypeError)
            if v < 1:
                self.fail(argument, f"values must be >= 1, got {value!r}")
        return int(vals[0]), int(vals[1])

    def data_format(self, data_format, allow_none=True):
        if data_format == DATA_FORMAT_NCHW or (isinstance(data_format, str) and data_format.startswith("NC")):
            self.fail("data_format", f"{data_format!r} is not supported: slimtriton records NHWC only "
                                     f"(channels last); transpose the input and use data_format='NHWC'")
        if data_format not in ((None, DATA_FORMAT_NHWC) if allow_none else (DATA_FORMAT_NHWC,)):
            self.fail("data_format", f"invalid data_format {data_format!r}: expected 'NHWC'")

    def stride_rate(self, stride, rate):
        if max(stride) > 1 and max(rate) > 1:
            self.fail("rate", f"rate {list(rate)} > 1 cannot be combined with stride {list(stride)} > 1")

    def callable_or_none(self, fn, argument):
        if fn is not None and not callable(fn):
            self.fail(argument, f"expected a callable or None, got {type(fn).__name__}", TypeError)

    def activate(self, outputs, activation_fn):
        """`activation_fn(outputs)` (None: outputs as they are); it must return a Tensor."""
        self.callable_or_none(activation_fn, "activation_fn")
        if activation_fn is None:
            return outputs
        outputs = activation_fn(outputs)
        if not isinstance(outputs, Tensor):
            self.fail("activation_fn", f"must return a Tensor, returned {type(outputs).__name__}", TypeError)
        return outputs

    def bool_value(self, value, argument):
        if isinstance(value, Tensor):
            self.fail(argument, f"must be a python bool: a symbolic tensor {value.name} is not supported "
                                f"(the graph is static)", TypeError)
        return bool(value)


def _bias_norm_act(layer, outputs, num_outputs, normalizer_fn, normalizer_params, biases_initializer,
                   biases_regularizer, variables_collections, trainable, activation_fn):
    """TF-Slim's tail: normalizer_fn, or biases when there is no normalizer, then activation_fn."""
    layer.callable_or_none(normalizer_fn, "normalizer_fn")
    layer.callable_or_none(activation_fn, "activation_fn")
    if normalizer_fn is not None:
        if normalizer_params is not None and not isinstance(normalizer_params, dict):
            layer.fail("normalizer_params", f"expected a dict, got {type(normalizer_params).__name__}", TypeError)
        outputs = normalizer_fn(outputs, **(normalizer_params or {}))
    elif biases_initializer is not None:
        biases = model_variable("biases", shape=[num_outputs], dtype=outputs.dtype, initializer=biases_initializer,
                                regularizer=biases_regularizer,
                                collections=get_variable_collections(variables_collections, "biases"),
                                trainable=trainable)
        outputs = record(Op.BIAS_ADD, [outputs, biases], {}, "BiasAdd")
    return layer.activate(outputs, activation_fn)


def _weights(name, shape, x, initializer, regularizer, variables_collections, trainable, key="weights"):
    return model_variable(name, shape=list(shape), dtype=x.dtype, initializer=initializer,
                          regularizer=regularizer, collections=get_variable_collections(variables_collections, key),
                          trainable=trainable)


# -- convolutions ----------------------------------------------------------------------------
def _convolution(fn, inputs, num_outputs, kernel_size, stride, padding, data_format, rate, activation_fn,
                 normalizer_fn, normalizer_params, weights_initializer, weights_regularizer, biases_initializer,
                 biases_regularizer, reuse, variables_collections, outputs_collections, trainable, scope):
    with variable_scope(scope, "Conv", [inputs], reuse=reuse) as sc:
        layer = _Layer(fn, sc.name)
        x = layer.float_tensor(inputs)
        layer.data_format(data_format)
        if len(x.shape) in (3, 5):
            layer.fail("inputs", f"only 2-D convolution (a 4-D NHWC input) is supported, got shape {list(x.shape)}")
        layer.rank(x, 4)
        num_outputs = layer.positive_int(num_outputs, "num_outputs")
        k = layer.pair(kernel_size, "kernel_size")
        s = layer.pair(stride, "stride")
        r = layer.pair(rate, "rate")
        layer.stride_rate(s, r)
        pads = resolve_padding(layer.where, padding, x.shape[1:3], k, s, r, x.shape)
        w = _weights("weights", (k[0], k[1], x.shape[3], num_outputs), x, weights_initializer, weights_regularizer,
                     variables_collections, trainable)
        out = record(Op.CONV2D, [x, w], {"strides": s, "padding": pads, "dilations": r}, "Conv2D")
        out = _bias_norm_act(layer, out, num_outputs, normalizer_fn, normalizer_params, biases_initializer,
                             biases_regularizer, variables_collections, trainable, activation_fn)
        return collect_named_outputs(outputs_collections, sc.name, out)


@add_arg_scope
def convolution(inputs, num_outputs, kernel_size, stride=1, padding="SAME", data_format=None, rate=1,
                activation_fn=nn.relu, normalizer_fn=None, normalizer_params=None,
                weights_initializer=xavier_initializer(), weights_regularizer=None,
                biases_initializer=zeros_initializer(), biases_regularizer=None, reuse=None,
                variables_collections=None, outputs_collections=None, trainable=True, scope=None, conv_dims=None):
    """slim.convolution (its own arg_scope key; 2-D only): see conv2d."""
    if conv_dims not in (None, 2):
        raise ValueError(f"slim.convolution(scope={scope!r}): argument `conv_dims`: only conv_dims=2 is supported, "
                         f"got {conv_dims}")
    return _convolution("convolution", inputs, num_outputs, kernel_size, stride, padding, data_format, rate,
                        activation_fn, normalizer_fn, normalizer_params, weights_initializer, weights_regularizer,
                        biases_initializer, biases_regularizer, reuse, variables_collections, outputs_collections,
                        trainable, scope)


@add_arg_scope
def convolution2d(inputs, num_outputs, kernel_size, stride=1, padding="SAME", data_format=None, rate=1,
                  activation_fn=nn.relu, normalizer_fn=None, normalizer_params=None,
                  weights_initializer=xavier_initializer(), weights_regularizer=None,
                  biases_initializer=zeros_initializer(), biases_regularizer=None, reuse=None,
                  variables_collections=None, outputs_collections=None, trainable=True, scope=None):
    """2-D convolution: variables `<scope>/weights [kh,kw,in,out]` and `<scope>/biases [out]`; default scope `Conv`."""
    return _convolution("conv2d", inputs, num_outputs, kernel_size, stride, padding, data_format, rate,
                        activation_fn, normalizer_fn, normalizer_params, weights_initializer, weights_regularizer,
                        biases_initializer, biases_regularizer, reuse, variables_collections, outputs_collections,
                        trainable, scope)


def _deconv_output_length(size, k, padding, s):
    return size * s if padding == "SAME" else size * s + max(k - s, 0)


@add_arg_scope
def convolution2d_transpose(inputs, num_outputs, kernel_size, stride=1, padding="SAME",
                            data_format=DATA_FORMAT_NHWC, activation_fn=nn.relu, normalizer_fn=None,
                            normalizer_params=None, weights_initializer=xavier_initializer(),
                            weights_regularizer=None, biases_initializer=zeros_initializer(),
                            biases_regularizer=None, reuse=None, variables_collections=None,
                            outputs_collections=None, trainable=True, scope=None):
    """Transposed convolution: weights `[kh,kw,out,in]`; output SAME `in*stride`, VALID `in*stride + max(k-stride,0)`."""
    with variable_scope(scope, "Conv2d_transpose", [inputs], reuse=reuse) as sc:
        layer = _Layer("conv2d_transpose", sc.name)
        layer.data_format(data_format, allow_none=False)
        x = layer.float_tensor(inputs)
        layer.rank(x, 4)
        num_outputs = layer.positive_int(num_outputs, "num_outputs")
        k = layer.pair(kernel_size, "kernel_size")
        s = layer.pair(stride, "stride")
        pad = nn.normalize_padding(layer.where, padding)
        out_hw = tuple(_deconv_output_length(x.shape[1 + i], k[i], pad, s[i]) for i in range(2))
        # pad_before as TF's conv2d_backprop_input: the padding of the forward conv out_hw -> in_hw.
        pads = resolve_padding(layer.where, pad, out_hw, k, s)
        pad_before = (pads[0][0], pads[1][0])
        w = _weights("weights", (k[0], k[1], num_outputs, x.shape[3]), x, weights_initializer, weights_regularizer,
                     variables_collections, trainable)
        out = record(Op.CONV2D_TRANSPOSE, [x, w], {"strides": s, "pad_before": pad_before, "output_hw": out_hw},
                     "conv2d_transpose")
        out = _bias_norm_act(layer, out, num_outputs, normalizer_fn, normalizer_params, biases_initializer,
                             biases_regularizer, variables_collections, trainable, activation_fn)
        return collect_named_outputs(outputs_collections, sc.name, out)


@add_arg_scope
def convolution2d_in_plane(inputs, kernel_size, stride=1, padding="SAME", activation_fn=nn.relu,
                           normalizer_fn=None, normalizer_params=None, weights_initializer=xavier_initializer(),
                           weights_regularizer=None, biases_initializer=zeros_initializer(),
                           biases_regularizer=None, reuse=None, variables_collections=None,
                           outputs_collections=None, trainable=True, scope=None):
    """One `[kh,kw,1,1]` kernel applied to every channel (TILE to `[kh,kw,C,1]` + depthwise conv)."""
    with variable_scope(scope, "ConvInPlane", [inputs], reuse=reuse) as sc:
        layer = _Layer("conv2d_in_plane", sc.name)
        x = layer.float_tensor(inputs)
        layer.rank(x, 4)
        k = layer.pair(kernel_size, "kernel_size")
        s = layer.pair(stride, "stride")
        pads = resolve_padding(layer.where, padding, x.shape[1:3], k, s, input_shape=x.shape)
        c = x.shape[3]
        w = _weights("weights", (k[0], k[1], 1, 1), x, weights_initializer, weights_regularizer,
                     variables_collections, trainable)
        dw = record(Op.TILE, [w], {"multiples": (1, 1, c, 1)}, "Tile")
        out = record(Op.DEPTHWISE_CONV2D, [x, dw], {"strides": s, "padding": pads, "dilations": (1, 1)}, "depthwise")
        out = _bias_norm_act(layer, out, c, normalizer_fn, normalizer_params, biases_initializer,
                             biases_regularizer, variables_collections, trainable, activation_fn)
        return collect_named_outputs(outputs_collections, sc.name, out)


@add_arg_scope
def separable_convolution2d(inputs, num_outputs, kernel_size, depth_multiplier=1, stride=1, padding="SAME",
                            data_format=DATA_FORMAT_NHWC, rate=1, activation_fn=nn.relu, normalizer_fn=None,
                            normalizer_params=None, weights_initializer=xavier_initializer(),
                            pointwise_initializer=None, weights_regularizer=None,
                            biases_initializer=zeros_initializer(), biases_regularizer=None, reuse=None,
                            variables_collections=None, outputs_collections=None, trainable=True, scope=None):
    """Depthwise conv (`depthwise_weights [kh,kw,in,dm]`) then, unless `num_outputs` is None, a 1x1
    pointwise conv (`pointwise_weights [1,1,in*dm,out]`); then normalizer or biases, activation."""
    if pointwise_initializer is None:
        pointwise_initializer = weights_initializer
    with variable_scope(scope, "SeparableConv2d", [inputs], reuse=reuse) as sc:
        layer = _Layer("separable_conv2d", sc.name)
        layer.data_format(data_format, allow_none=False)
        x = layer.float_tensor(inputs)
        layer.rank(x, 4)
        if num_outputs is not None:
            num_outputs = layer.positive_int(num_outputs, "num_outputs")
        dm = layer.positive_int(depth_multiplier, "depth_multiplier")
        k = layer.pair(kernel_size, "kernel_size")
        s = layer.pair(stride, "stride")
        r = layer.pair(rate, "rate")
        layer.stride_rate(s, r)
        pads = resolve_padding(layer.where, padding, x.shape[1:3], k, s, r, x.shape)
        cin = x.shape[3]
        dw = _weights("depthwise_weights", (k[0], k[1], cin, dm), x, weights_initializer, weights_regularizer,
                      variables_collections, trainable)
        attrs = {"strides": s, "padding": pads, "dilations": r}
        if num_outputs is not None:
            pw = _weights("pointwise_weights", (1, 1, cin * dm, num_outputs), x, pointwise_initializer,
                          weights_regularizer, variables_collections, trainable)
            out = record(Op.DEPTHWISE_CONV2D, [x, dw], attrs, "separable_conv2d/depthwise")
            out = record(Op.CONV2D, [out, pw], {"strides": (1, 1), "padding": ((0, 0), (0, 0)), "dilations": (1, 1)},
                         "separable_conv2d")
        else:
            num_outputs = cin * dm
            out = record(Op.DEPTHWISE_CONV2D, [x, dw], attrs, "depthwise")
        out = _bias_norm_act(layer, out, num_outputs, normalizer_fn, normalizer_params, biases_initializer,
                             biases_regularizer, variables_collections, trainable, activation_fn)
        return collect_named_outputs(outputs_collections, sc.name, out)


# -- fully connected ---------------------------------------------------------------------------
@add_arg_scope
def fully_connected(inputs, num_outputs, activation_fn=nn.relu, normalizer_fn=None, normalizer_params=None,
                    weights_initializer=xavier_initializer(), weights_regularizer=None,
                    biases_initializer=zeros_initializer(), biases_regularizer=None, reuse=None,
                    variables_collections=None, outputs_collections=None, trainable=True, scope=None):
    """Dense layer: weights `[in, out]`; on rank > 2 it contracts the last axis (it does not flatten)."""
    with variable_scope(scope, "fully_connected", [inputs], reuse=reuse) as sc:
        layer = _Layer("fully_connected", sc.name)
        num_outputs = layer.positive_int(num_outputs, "num_outputs", ValueError)  # TF: ValueError, not TypeError
        x = layer.float_tensor(inputs)
        layer.min_rank(x, 2)
        w = _weights("weights", (x.shape[-1], num_outputs), x, weights_initializer, weights_regularizer,
                     variables_collections, trainable)
        out = record(Op.MATMUL, [x, w], {}, "MatMul" if len(x.shape) == 2 else "Tensordot")
        out = _bias_norm_act(layer, out, num_outputs, normalizer_fn, normalizer_params, biases_initializer,
                             biases_regularizer, variables_collections, trainable, activation_fn)
        return collect_named_outputs(outputs_collections, sc.name, out)


# -- normalization -----------------------------------------------------------------------------
_BN_PARAMS = ("beta", "gamma", "moving_mean", "moving_variance")
_FUSED_BN_MIN_EPSILON = 1.001e-5  # tf.nn.fused_batch_norm raises smaller epsilons to this (cuDNN's limit)


@add_arg_scope
def batch_norm(inputs, decay=0.999, center=True, scale=False, epsilon=0.001, activation_fn=None,
               param_initializers=None, param_regularizers=None, updates_collections=GraphKeys.UPDATE_OPS,
               is_training=True, reuse=None, variables_collections=None, outputs_collections=None,
               trainable=True, batch_weights=None, fused=None, data_format=DATA_FORMAT_NHWC,
               zero_debias_moving_mean=False, scope=None, renorm=False, renorm_clipping=None, renorm_decay=0.99,
               adjustment=None):
    """Batch normalization over the last axis: variables `beta` (center), `gamma` (scale),
    `moving_mean`, `moving_variance`. Inference: `(x-mean)/sqrt(var+eps)*gamma+beta`;
    `is_training=True` normalizes with the batch statistics (moving averages are not updated:
    the IR is a forward graph)."""
    with variable_scope(scope, "BatchNorm", [inputs], reuse=reuse) as sc:
        layer = _Layer("batch_norm", sc.name)
        layer.data_format(data_format, allow_none=False)
        x = layer.float_tensor(inputs)
        layer.min_rank(x, 2)
        for arg, value in (("batch_weights", batch_weights), ("renorm_clipping", renorm_clipping),
                           ("adjustment", adjustment)):
            if value is not None:
                layer.fail(arg, "is not supported (no batch-weighted or adjusted batch norm in the IR)")
        if renorm:
            layer.fail("renorm", "batch renormalization is not supported")
        is_training = layer.bool_value(is_training, "is_training")
        if not isinstance(epsilon, numbers.Real) or epsilon < 0:
            layer.fail("epsilon", f"expected a non-negative float, got {epsilon!r}")
        for arg, d in (("param_initializers", param_initializers), ("param_regularizers", param_regularizers)):
            if d is not None:
                if not isinstance(d, dict):
                    layer.fail(arg, f"expected a dict, got {type(d).__name__}", TypeError)
                unknown = sorted(set(d) - set(_BN_PARAMS))
                if unknown:
                    layer.fail(arg, f"unknown keys {unknown}: expected some of {list(_BN_PARAMS)}")
        inits = param_initializers or {}
        regs = param_regularizers or {}
        rank = len(x.shape)
        channels = x.shape[-1]
        # Both of tf_slim's paths run the fused kernel for rank 2 or 4 unless fused=False.
        fused_kernel = fused is not False and rank in (2, 4)
        # tf_slim takes its fused path (beta created before gamma) for rank 2, custom update
        # collections or zero-debias; otherwise the Keras layer, which builds gamma first.
        fused_path = fused_kernel and (
            zero_debias_moving_mean or rank == 2 or updates_collections != GraphKeys.UPDATE_OPS)
        gamma_first = not fused_path and updates_collections == GraphKeys.UPDATE_OPS and not zero_debias_moving_mean
        params = {}
        order = ("gamma", "beta") if gamma_first else ("beta", "gamma")
        for p in order:
            if (p == "beta" and center) or (p == "gamma" and scale):
                params[p] = model_variable(
                    p, shape=[channels], dtype=x.dtype,
                    initializer=inits.get(p, zeros_initializer() if p == "beta" else ones_initializer()),
                    regularizer=regs.get(p), collections=get_variable_collections(variables_collections, p),
                    trainable=trainable)
        for p, init in (("moving_mean", zeros_initializer()), ("moving_variance", ones_initializer())):
            params[p] = model_variable(p, shape=[channels], dtype=x.dtype, initializer=inits.get(p, init),
                                       trainable=False,
                                       collections=get_variable_collections(variables_collections, p))
        # The fused kernel clamps epsilon; match it.
        eps = max(float(epsilon), _FUSED_BN_MIN_EPSILON) if fused_kernel else float(epsilon)
        ins = [x, params["moving_mean"], params["moving_variance"]]
        if scale:
            ins.append(params["gamma"])
        if center:
            ins.append(params["beta"])
        out = record(Op.BATCH_NORM, ins, {"epsilon": eps, "center": bool(center), "scale": bool(scale),
                                          "is_training": is_training},
                     "FusedBatchNormV3" if fused_kernel else "batchnorm")
        out = layer.activate(out, activation_fn)
        return collect_named_outputs(outputs_collections, sc.name, out)


@add_arg_scope
def bias_add(inputs, activation_fn=None, initializer=zeros_initializer(), regularizer=None, reuse=None,
             variables_collections=None, outputs_collections=None, trainable=True, data_format=DATA_FORMAT_NHWC,
             scope=None):
    """Adds `<scope>/biases [C]` (default scope `BiasAdd`), then the optional activation."""
    with variable_scope(scope, "BiasAdd", [inputs], reuse=reuse) as sc:
        layer = _Layer("bias_add", sc.name)
        layer.data_format(data_format, allow_none=False)
        x = layer.float_tensor(inputs)
        layer.min_rank(x, 2)
        b = model_variable("biases", shape=[x.shape[-1]], dtype=x.dtype, initializer=initializer,
                           regularizer=regularizer, collections=get_variable_collections(variables_collections, "biases"),
                           trainable=trainable)
        out = record(Op.BIAS_ADD, [x, b], {}, "BiasAdd")
        out = layer.activate(out, activation_fn)
        return collect_named_outputs(outputs_collections, sc.name, out)


@add_arg_scope
def unit_norm(inputs, dim, epsilon=1e-7, scope=None):
    """`x / sqrt(epsilon + sum(x**2, dim))` (default scope `UnitNorm`)."""
    with variable_scope(scope, "UnitNorm", [inputs]) as sc:
        layer = _Layer("unit_norm", sc.name)
        x = layer.float_tensor(inputs)
        rank = len(x.shape)
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            layer.fail("dim", f"expected an int, got {dim!r}", TypeError)
        if dim < -rank or dim >= rank:
            layer.fail("dim", f"dim must be in the range [-{rank}, {rank}) where {rank} is the rank of the input "
                              f"(shape {list(x.shape)}), got {dim}")
        return record(Op.UNIT_NORM, [x], {"axis": int(dim) % rank, "epsilon": float(epsilon)}, "truediv")


@add_arg_scope
def softmax(logits, scope=None):
    """Softmax over the last axis (default scope `softmax`)."""
    with variable_scope(scope, "softmax", [logits]) as sc:
        layer = _Layer("softmax", sc.name)
        x = layer.float_tensor(logits, "logits")
        layer.min_rank(x, 1, "logits")
        return record(Op.SOFTMAX, [x], {"axis": len(x.shape) - 1}, "Softmax")


# -- pooling and shape -----------------------------------------------------------------------
def _pool(fn, op, base, default_scope, inputs, kernel_size, stride, padding, data_format, outputs_collections, scope):
    with name_scope(scope, default_scope, [inputs]) as sc:
        layer = _Layer(fn, sc)
        layer.data_format(data_format, allow_none=False)
        x = layer.float_tensor(inputs)
        layer.rank(x, 4)
        k = layer.pair(kernel_size, "kernel_size")
        s = layer.pair(stride, "stride")
        pads = resolve_padding(layer.where, padding, x.shape[1:3], k, s, input_shape=x.shape)
        out = record(op, [x], {"ksize": k, "strides": s, "padding": pads}, base)
        return collect_named_outputs(outputs_collections, sc, out)


@add_arg_scope
def max_pool2d(inputs, kernel_size, stride=2, padding="VALID", data_format=DATA_FORMAT_NHWC,
               outputs_collections=None, scope=None):
    """Max pooling; note TF-Slim's defaults stride=2, padding='VALID'. Padded cells are ignored."""
    return _pool("max_pool2d", Op.MAX_POOL, "MaxPool", "MaxPool2D", inputs, kernel_size, stride, padding,
                 data_format, outputs_collections, scope)


@add_arg_scope
def avg_pool2d(inputs, kernel_size, stride=2, padding="VALID", data_format=DATA_FORMAT_NHWC,
               outputs_collections=None, scope=None):
    """Average pooling; SAME divides by the number of real (unpadded) cells."""
    return _pool("avg_pool2d", Op.AVG_POOL, "AvgPool", "AvgPool2D", inputs, kernel_size, stride, padding,
                 data_format, outputs_collections, scope)


@add_arg_scope
def dropout(inputs, keep_prob=0.5, noise_shape=None, is_training=True, outputs_collections=None, scope=None,
            seed=None):
    """Dropout (identity unless is_training; kept values scaled by 1/keep_prob). Default scope `Dropout`."""
    with variable_scope(scope, "Dropout", [inputs]) as sc:
        layer = _Layer("dropout", sc.name)
        x = layer.float_tensor(inputs)
        if noise_shape is not None:
            layer.fail("noise_shape", "is not supported (dropout masks are elementwise)")
        if isinstance(keep_prob, Tensor) or not isinstance(keep_prob, numbers.Real) or not 0.0 < keep_prob <= 1.0:
            layer.fail("keep_prob", f"expected a python float in (0, 1], got {keep_prob!r}")
        is_training = layer.bool_value(is_training, "is_training")
        out = record(Op.DROPOUT, [x], {"keep_prob": float(keep_prob), "is_training": is_training}, "dropout")
        return collect_named_outputs(outputs_collections, sc.name, out)


@add_arg_scope
def flatten(inputs, outputs_collections=None, scope=None):
    """[N, ...] -> [N, prod(...)] in NHWC order (default name scope `Flatten`)."""
    with name_scope(scope, "Flatten", [inputs]) as sc:
        layer = _Layer("flatten", sc)
        x = layer.tensor(inputs)
        if len(x.shape) < 2:
            layer.fail("inputs", f"Inputs must have a least 2 dimensions, got shape {list(x.shape)}")
        out = record(Op.RESHAPE, [x], {"shape": (x.shape[0], math.prod(x.shape[1:]))}, "flatten/Reshape")
        return collect_named_outputs(outputs_collections, sc, out)


@add_arg_scope
def one_hot_encoding(labels, num_classes, on_value=1.0, off_value=0.0, outputs_collections=None, scope=None):
    """Integer labels -> float one-hot vectors along a new last axis (name scope `OneHotEncoding`)."""
    with name_scope(scope, "OneHotEncoding", [labels]) as sc:
        layer = _Layer("one_hot_encoding", sc)
        x = layer.tensor(labels, "labels")
        if x.dtype not in ("int32", "int64"):
            layer.fail("labels", f"expected an integer tensor, got dtype {x.dtype} (shape {list(x.shape)})",
                       TypeError)
        depth = layer.positive_int(num_classes, "num_classes")
        out = record(Op.ONE_HOT, [x], {"depth": depth, "on_value": float(on_value), "off_value": float(off_value),
                                       "dtype": "float32"}, "one_hot")
        return collect_named_outputs(outputs_collections, sc, out)


# -- repeat / stack ----------------------------------------------------------------------------
def _layer_name(layer, fallback):
    if hasattr(layer, "__name__"):
        return layer.__name__
    if hasattr(layer, "func") and hasattr(layer.func, "__name__"):  # functools.partial
        return layer.func.__name__
    return fallback


def repeat(inputs, repetitions, layer, *args, **kwargs):
    """Apply `layer` `repetitions` times; scopes `<scope>/<scope>_1..n` (`Repeat/<layer name>_k` unnamed)."""
    scope = kwargs.pop("scope", None)
    with variable_scope(scope, "Repeat", [inputs]):
        if isinstance(repetitions, bool) or not isinstance(repetitions, numbers.Integral) or repetitions < 1:
            raise ValueError(f"slim.repeat(scope={scope!r}): argument `repetitions`: expected a positive int, "
                             f"got {repetitions!r}")
        if scope is None:
            scope = _layer_name(layer, "repeat")
        outputs = inputs
        for i in range(repetitions):
            kwargs["scope"] = scope + "_" + str(i + 1)
            outputs = layer(outputs, *args, **kwargs)
        return outputs


def stack(inputs, layer, stack_args, **kwargs):
    """Apply `layer` once per entry of `stack_args` (each a tuple of positional args or one arg)."""
    scope = kwargs.pop("scope", None)
    if not isinstance(stack_args, (list, tuple)):
        raise ValueError(f"slim.stack(scope={scope!r}): argument `stack_args`: stack_args need to be a list or "
                         f"tuple, got {type(stack_args).__name__}")
    with variable_scope(scope, "Stack", [inputs]):
        if scope is None:
            scope = _layer_name(layer, "stack")
        outputs = inputs
        for i, layer_args in enumerate(stack_args):
            kwargs["scope"] = scope + "_" + str(i + 1)
            if not isinstance(layer_args, (list, tuple)):
                layer_args = [layer_args]
            outputs = layer(outputs, *layer_args, **kwargs)
        return outputs


relu = functools.partial(fully_connected, activation_fn=nn.relu)
relu6 = functools.partial(fully_connected, activation_fn=nn.relu6)
linear = functools.partial(fully_connected, activation_fn=None)

conv2d = convolution2d
conv2d_transpose = convolution2d_transpose
conv2d_in_plane = convolution2d_in_plane
separable_conv2d = separable_convolution2d
