"""Variable initializers with TF's formulas, as NumPy functions.

Every initializer is called as ``init(shape, dtype, rng) -> np.ndarray`` (interface 1:
`slimtriton.weights.init_weights` passes a `numpy.random.Generator`). An initializer
built with an explicit ``seed`` draws from its own generator seeded with it, so its
values do not depend on the order variables are initialized in.

TF-Slim's `variance_scaling_initializer` (tf_slim/layers/initializers.py) draws a
truncated normal with stddev ``sqrt(1.3 * factor / n)``; TF core's
`tf.variance_scaling_initializer` (``scale``/``mode``/``distribution``) instead divides
``sqrt(scale / n)`` by .87962566103423978, the stddev of a standard normal truncated
at two standard deviations. Both are provided, each with its own formula.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..ir.node import FLOAT_DTYPES

__all__ = [
    "Initializer", "xavier_initializer", "xavier_initializer_conv2d", "variance_scaling_initializer",
    "truncated_normal_initializer", "zeros_initializer", "ones_initializer", "constant_initializer",
    "random_normal_initializer", "random_uniform_initializer", "glorot_uniform_initializer",
    "glorot_normal_initializer", "core_variance_scaling_initializer", "truncated_normal",
]

_TRUNCATED_NORMAL_STDDEV = .87962566103423978  # stddev of N(0,1) truncated to [-2, 2]


def _np_dtype(dtype: str):
    if dtype == "bfloat16":  # numpy has no bfloat16: values are drawn in float32
        return np.float32
    return np.dtype(dtype)


def truncated_normal(rng: np.random.Generator, shape, mean: float, stddev: float) -> np.ndarray:
    """TF's truncated normal: values farther than 2 stddev from the mean are re-drawn."""
    shape = tuple(shape)
    z = rng.standard_normal(shape)
    bad = np.abs(z) > 2.0
    while bad.any():
        z[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(z) > 2.0
    return mean + stddev * z


class Initializer:
    """Base: `__call__(shape, dtype=None, rng=None)`; subclasses implement `_sample`."""
    seed = None
    dtype = None

    def __call__(self, shape, dtype=None, rng=None, partition_info=None) -> np.ndarray:
        shape = tuple(int(d) for d in shape)
        dtype = str(dtype or self.dtype or "float32")
        if self.seed is not None:
            rng = np.random.default_rng(self.seed)
        elif rng is None:
            rng = np.random.default_rng(0)
        return np.asarray(self._sample(shape, dtype, rng)).astype(_np_dtype(dtype))

    def _sample(self, shape, dtype, rng):  # pragma: no cover - abstract
        raise NotImplementedError(type(self).__name__)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


def _require_float(dtype, what):
    if dtype is not None and str(dtype) not in FLOAT_DTYPES:
        raise TypeError(f"{what}: cannot create an initializer for non-floating point type {dtype!r}")


class _Constant(Initializer):
    def __init__(self, value=0.0, dtype=None, verify_shape=False):
        self.value = value
        self.dtype = dtype

    def _sample(self, shape, dtype, rng):
        value = np.asarray(self.value, dtype=np.float64)
        if value.ndim == 0:
            return np.full(shape, value)
        if value.size == int(np.prod(shape, dtype=np.int64)):
            return value.reshape(shape)
        try:
            return np.broadcast_to(value, shape).copy()
        except ValueError:
            raise ValueError(f"constant_initializer: value of shape {list(value.shape)} "
                             f"({value.size} elements) does not fit variable shape {list(shape)}") from None


def constant_initializer(value=0, dtype=None, verify_shape=False):
    return _Constant(value, dtype, verify_shape)


def zeros_initializer(dtype=None):
    return _Constant(0.0, dtype)


def ones_initializer(dtype=None):
    return _Constant(1.0, dtype)


class _RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=1.0, seed=None, dtype=None):
        _require_float(dtype, "random_normal_initializer")
        self.mean, self.stddev, self.seed, self.dtype = float(mean), float(stddev), seed, dtype

    def _sample(self, shape, dtype, rng):
        return self.mean + self.stddev * rng.standard_normal(shape)


def random_normal_initializer(mean=0.0, stddev=1.0, seed=None, dtype=None):
    return _RandomNormal(mean, stddev, seed, dtype)


class _TruncatedNormal(Initializer):
    def __init__(self, mean=0.0, stddev=1.0, seed=None, dtype=None):
        _require_float(dtype, "truncated_normal_initializer")
        self.mean, self.stddev, self.seed, self.dtype = float(mean), float(stddev), seed, dtype

    def _sample(self, shape, dtype, rng):
        return truncated_normal(rng, shape, self.mean, self.stddev)


def truncated_normal_initializer(mean=0.0, stddev=1.0, seed=None, dtype=None):
    return _TruncatedNormal(mean, stddev, seed, dtype)


class _RandomUniform(Initializer):
    def __init__(self, minval=0.0, maxval=None, seed=None, dtype=None):
        self.minval = float(minval)
        self.maxval = 1.0 if maxval is None else float(maxval)  # TF: maxval defaults to 1 for floats
        self.seed, self.dtype = seed, dtype

    def _sample(self, shape, dtype, rng):
        return rng.uniform(self.minval, self.maxval, size=shape)


def random_uniform_initializer(minval=0.0, maxval=None, seed=None, dtype=None):
    return _RandomUniform(minval, maxval, seed, dtype)


def _fans(shape):
    """TF-Slim's fan estimate: fan_in = shape[-2]*prod(shape[:-2]), fan_out = shape[-1]*prod(shape[:-2])."""
    if shape:
        fan_in = float(shape[-2]) if len(shape) > 1 else float(shape[-1])
        fan_out = float(shape[-1])
    else:
        fan_in = fan_out = 1.0
    for dim in shape[:-2]:
        fan_in *= float(dim)
        fan_out *= float(dim)
    return fan_in, fan_out


class _SlimVarianceScaling(Initializer):
    """tf_slim.variance_scaling_initializer: uniform limit sqrt(3 f/n), truncated stddev sqrt(1.3 f/n)."""

    def __init__(self, factor=2.0, mode="FAN_IN", uniform=False, seed=None, dtype="float32"):
        _require_float(dtype, "variance_scaling_initializer")
        if mode not in ("FAN_IN", "FAN_OUT", "FAN_AVG"):
            raise TypeError(f"Unknown mode {mode} [FAN_IN, FAN_OUT, FAN_AVG]")
        self.factor, self.mode, self.uniform, self.seed, self.dtype = float(factor), mode, bool(uniform), seed, dtype

    def _sample(self, shape, dtype, rng):
        _require_float(dtype, "variance_scaling_initializer")
        fan_in, fan_out = _fans(shape)
        n = {"FAN_IN": fan_in, "FAN_OUT": fan_out, "FAN_AVG": (fan_in + fan_out) / 2.0}[self.mode]
        if self.uniform:
            limit = math.sqrt(3.0 * self.factor / n)
            return rng.uniform(-limit, limit, size=shape)
        return truncated_normal(rng, shape, 0.0, math.sqrt(1.3 * self.factor / n))


def variance_scaling_initializer(factor=2.0, mode="FAN_IN", uniform=False, seed=None, dtype="float32"):
    return _SlimVarianceScaling(factor, mode, uniform, seed, dtype)


def xavier_initializer(uniform=True, seed=None, dtype="float32"):
    """Glorot: variance scaling with factor 1, FAN_AVG."""
    return _SlimVarianceScaling(1.0, "FAN_AVG", uniform, seed, dtype)


xavier_initializer_conv2d = xavier_initializer


class _CoreVarianceScaling(Initializer):
    """TF core tf.compat.v1.variance_scaling_initializer(scale, mode, distribution)."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None, dtype=None):
        if scale <= 0.0:
            raise ValueError(f"`scale` must be a positive float, got {scale}")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"Invalid `mode` argument: {mode!r}")
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in ("uniform", "truncated_normal", "untruncated_normal"):
            raise ValueError(f"Invalid `distribution` argument: {distribution!r}")
        self.scale, self.mode, self.distribution, self.seed, self.dtype = float(scale), mode, distribution, seed, dtype

    def _sample(self, shape, dtype, rng):
        # Core TF's fans: receptive field = prod(shape[:-2]); 1-D: fan_in = fan_out = shape[0].
        if len(shape) < 1:
            fan_in = fan_out = 1.0
        elif len(shape) == 1:
            fan_in = fan_out = float(shape[0])
        else:
            receptive = float(np.prod(shape[:-2])) if len(shape) > 2 else 1.0
            fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        scale = self.scale / max(1.0, n)
        if self.distribution == "truncated_normal":
            return truncated_normal(rng, shape, 0.0, math.sqrt(scale) / _TRUNCATED_NORMAL_STDDEV)
        if self.distribution == "untruncated_normal":
            return math.sqrt(scale) * rng.standard_normal(shape)
        limit = math.sqrt(3.0 * scale)
        return rng.uniform(-limit, limit, size=shape)


def core_variance_scaling_initializer(scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None,
                                      dtype=None):
    return _CoreVarianceScaling(scale, mode, distribution, seed, dtype)


def glorot_uniform_initializer(seed=None, dtype=None):
    """TF core's default initializer for float variables created without one."""
    return _CoreVarianceScaling(1.0, "fan_avg", "uniform", seed, dtype)


def glorot_normal_initializer(seed=None, dtype=None):
    return _CoreVarianceScaling(1.0, "fan_avg", "truncated_normal", seed, dtype)


def as_initializer(value, what: str):
    """Accept an initializer callable, or a python number / numpy array (a constant)."""
    if value is None or callable(value):
        return value
    if isinstance(value, (numbers.Number, np.ndarray, list, tuple)):
        return _Constant(value)
    raise TypeError(f"{what}: initializer must be callable(shape, dtype, rng) or an array, "
                    f"got {type(value).__name__}")
