"""Every net of the factory on every backend: compiled Triton kernels (the interpreter on
the CPU) and the torch executor against the NumPy reference, on logits and a few end
points, at a reduced image size, batch 1, float32.

Random weights are rescaled so that activations stay O(1) and the logits differ between
classes (the initializers' scales make deep nets vanish or explode), and the BatchNorm
statistics are random, so folding them into the convolutions is really exercised.

Sizes: the smallest input each net accepts with its default arguments, except where a
TF-Slim option of the net itself makes a small input valid (`NET_CONFIGS`, each one says
why). Every net runs whole on Triton, the deep ResNets included.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import slimtriton as st
from slimtriton.nets import nets_factory

from ..helpers import assert_close

# name -> (image size, net keyword arguments, end points compared on triton (None: all chosen
# automatically, see _compared_end_points), why).
NET_CONFIGS = {
    "alexnet_v2": (195, {}, None, "fc6 is a VALID 5x5 conv: pool5 must be >= 5x5"),
    "vgg_a": (32, {"fc_conv_padding": "SAME"}, None,
              "fc6 is a VALID 7x7 conv (224 px); TF-Slim's fully convolutional option pads it"),
    "vgg_16": (32, {"fc_conv_padding": "SAME"}, None, "as vgg_a"),
    "vgg_19": (32, {"fc_conv_padding": "SAME"}, None, "as vgg_a"),
    "inception_v1": (193, {}, None, "AvgPool_0a_7x7 is VALID: Mixed_5c must be >= 7x7"),
    "inception_v2": (32, {}, None, "reduced final pool kernel for small inputs"),
    "inception_v3": (107, {}, None, "the aux head's VALID 5x5 pool needs Mixed_6e >= 5x5"),
    "inception_v4": (107, {}, None, "as inception_v3"),
    "inception_resnet_v2": (107, {}, None, "as inception_v3"),
    "inception_resnet_v1": (75, {}, None, "Mixed_7a's VALID 3x3 convs need a 3x3 input"),
    "resnet_v1_50": (32, {}, None, "any size >= 16 works; 32 keeps block1 2-D"),
    "resnet_v1_101": (32, {}, None, "as resnet_v1_50"),
    "resnet_v1_152": (32, {}, None, "as resnet_v1_50"),
    "resnet_v1_200": (32, {}, None, "as resnet_v1_50"),
    "resnet_v2_50": (32, {}, None, "as resnet_v1_50"),
    "resnet_v2_101": (32, {}, None, "as resnet_v1_50"),
    "resnet_v2_152": (32, {}, None, "as resnet_v1_50"),
    "resnet_v2_200": (32, {}, None, "as resnet_v1_50"),
    "mobilenet_v1": (32, {}, None, "any size >= 16 works"),
    "mobilenet_v1_075": (32, {}, None, "as mobilenet_v1"),
    "mobilenet_v1_050": (32, {}, None, "as mobilenet_v1"),
    "mobilenet_v1_025": (32, {}, None, "as mobilenet_v1"),
}

_SOFTMAX_KEYS = ("predictions", "Predictions")


def test_every_factory_net_has_a_config():
    assert sorted(NET_CONFIGS) == sorted(nets_factory.networks_map)


def o1_weights(graph, seed: int = 0) -> dict:
    """`st.init_weights`, then rescaled so that every layer keeps activations O(1): conv and FC
    kernels to He scale (std sqrt(2 / fan_in)), the last conv of a ResNet unit's residual
    branch a further 0.3x (so 66 units do not grow the signal 1e8-fold), random BatchNorm
    statistics and offsets."""
    weights = st.init_weights(graph, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for name, value in weights.items():
        leaf = name.rsplit("/", 1)[-1]
        if leaf in ("weights", "depthwise_weights", "pointwise_weights"):
            fan_in = int(np.prod(value.shape[:2])) if leaf == "depthwise_weights" else int(np.prod(value.shape[:-1]))
            std = float(value.std()) or 1.0
            gain = 0.3 if "/bottleneck_v" in name and "/conv3/" in name else 1.0
            value *= np.float32(gain * np.sqrt(2.0 / fan_in) / std)
        elif leaf in ("biases", "beta", "moving_mean"):
            weights[name] = rng.normal(0.0, 0.1, value.shape).astype(value.dtype)
        elif leaf == "moving_variance":
            weights[name] = rng.uniform(0.5, 2.0, value.shape).astype(value.dtype)
        elif leaf == "gamma":
            weights[name] = rng.uniform(0.5, 1.5, value.shape).astype(value.dtype)
    return weights


def _build(name):
    size, kwargs, _, _ = NET_CONFIGS[name]
    fn = nets_factory.get_network_fn(name, num_classes=None)
    with st.Graph() as g:
        images = st.placeholder([1, size, size, 3], name="images")
        logits, end_points = fn(images, **kwargs)
    return g, images, logits, end_points


def _compared_end_points(name, end_points) -> dict:
    """The end points compared on triton: the named ones, or the first, middle and last
    non-softmax end points (always including the logits' end point)."""
    wanted = NET_CONFIGS[name][2]
    if wanted is not None:
        return {k: v for k, v in end_points.items() if k.rsplit("/", 1)[-1] in wanted}
    keys = [k for k in end_points if k not in _SOFTMAX_KEYS]
    picked = [keys[0], keys[len(keys) // 2], keys[-1]]
    return {k: end_points[k] for k in dict.fromkeys(picked)}


def _check_not_degenerate(what, value):
    """A comparison that cannot fail is no test: the values must be finite and O(1)-ish, and
    logits must differ between classes."""
    value = np.asarray(value, dtype=np.float64)
    assert np.all(np.isfinite(value)), f"{what}: non-finite reference values"
    spread = float(value.std())
    assert 1e-2 < spread < 1e4, f"{what}: reference std {spread:.3g} is not O(1); rescale the weights"


@pytest.mark.parametrize("name", sorted(NET_CONFIGS))
def test_net_triton_and_torch_match_reference(name):
    g, images, logits, end_points = _build(name)
    weights = o1_weights(g)
    x = np.random.default_rng(7).uniform(-1, 1, images.shape).astype(np.float32)

    triton_fetches = _compared_end_points(name, end_points)
    assert triton_fetches, f"{name}: no end point chosen for the triton comparison"
    full = NET_CONFIGS[name][2] is None
    if full:
        triton_fetches = {"logits": logits, **triton_fetches}

    reference = st.Session(g, weights, backend="reference").run(
        {"logits": logits, **triton_fetches}, {images: x})
    _check_not_degenerate(f"{name} logits", reference["logits"])
    for key in triton_fetches:
        _check_not_degenerate(f"{name} {key}", reference[key])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no CUDA device: interpreter" is expected here
        model = st.compile(g, triton_fetches, weights, dtype="float32")
    got = model(x)
    assert set(got) == set(triton_fetches)
    for key in triton_fetches:
        assert isinstance(got[key], np.ndarray) and got[key].dtype == np.float32, key
        assert_close(got[key], reference[key], "float32", what=f"{name} triton {key}")

    torch_out = st.Session(g, weights, backend="torch").run(logits, {images: x})
    assert_close(torch_out, reference["logits"], "float32", what=f"{name} torch logits")


def test_session_triton_and_model_io_types_on_a_net():
    """Session(backend='triton') end to end on a net; the compiled model returns NumPy for
    NumPy in (any float dtype, cast like TF's feed_dict) and torch tensors for torch in."""
    import torch
    name = "mobilenet_v1_025"
    g, images, logits, end_points = _build(name)
    weights = o1_weights(g)
    x = np.random.default_rng(3).uniform(-1, 1, images.shape).astype(np.float32)
    fetches = [logits, {"probs": end_points["Predictions"]}]
    want = st.Session(g, weights, backend="reference").run(fetches, {images: x})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = st.Session(g, weights, backend="triton").run(fetches, {"images": x})
        model = st.compile(g, logits, weights)
    assert isinstance(got, list) and isinstance(got[1], dict)
    assert_close(got[0], want[0], "float32", what=f"{name} Session triton logits")
    assert_close(got[1]["probs"], want[1]["probs"], "float32", what=f"{name} Session triton probs")

    from_numpy = model(x)
    assert isinstance(from_numpy, np.ndarray) and from_numpy.dtype == np.float32
    from_torch = model(torch.from_numpy(x))
    assert isinstance(from_torch, torch.Tensor) and from_torch.dtype == torch.float32
    np.testing.assert_array_equal(from_torch.numpy(), from_numpy)
    np.testing.assert_array_equal(model(x.astype(np.float64)), from_numpy)
    with pytest.raises(ValueError, match=r"placeholder images: expected float32\[1,32,32,3\], got float32\[1,16,32,3\]"):
        model(x[:, :16])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["mobilenet_v1", "resnet_v1_50"])
def test_net_triton_half_precision_matches_reference(name, dtype):
    """16-bit activations and weights, fp32 accumulation: within the dtype's tolerance of the
    float64 reference, like torch at the same dtype (under the interpreter bf16 tiles are
    decoded and rounded to nearest even as on a GPU: slimtriton.kernels.config)."""
    g, images, logits, end_points = _build(name)
    weights = o1_weights(g)
    x = np.random.default_rng(11).uniform(-1, 1, images.shape).astype(np.float32)
    want = st.Session(g, weights, backend="reference").run(logits, {images: x})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = st.compile(g, logits, weights, dtype=dtype)(x)
    assert got.dtype == np.float32  # NumPy out, as the graph's dtype
    assert_close(got, want, dtype, what=f"{name} triton {dtype} logits")
    on_torch = st.Session(g, weights, backend="torch", dtype=dtype).run(logits, {images: x})
    assert_close(on_torch, want, dtype, what=f"{name} torch {dtype} logits")
