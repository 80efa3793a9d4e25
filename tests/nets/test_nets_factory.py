"""nets_factory: every network builds at its default image size and class count, in its arg scope."""
from __future__ import annotations

import pytest

import numpy as np

import slimtriton as st
from slimtriton.ir import verify
from slimtriton.nets import nets_factory
from slimtriton.session import Session
from slimtriton.weights import init_weights

DEFAULT_SIZES = {
    "alexnet_v2": 224, "vgg_a": 224, "vgg_16": 224, "vgg_19": 224, "inception_v1": 224,
    "inception_v2": 224, "inception_v3": 299, "inception_v4": 299, "inception_resnet_v2": 299,
    "inception_resnet_v1": 160, "mobilenet_v1": 224, "mobilenet_v1_075": 224, "mobilenet_v1_050": 224,
    "mobilenet_v1_025": 224,
}
DEFAULT_SIZES.update({f"resnet_v{v}_{d}": 224 for v in (1, 2) for d in (50, 101, 152, 200)})


def test_maps_agree():
    assert set(nets_factory.networks_map) == set(nets_factory.arg_scopes_map) == \
        set(nets_factory.default_num_classes) == set(DEFAULT_SIZES)


@pytest.mark.parametrize("name", sorted(DEFAULT_SIZES))
def test_every_network_builds(name):
    num_classes = nets_factory.default_num_classes[name]
    network_fn = nets_factory.get_network_fn(name, num_classes=num_classes, weight_decay=0.00004)
    size = network_fn.default_image_size
    assert size == DEFAULT_SIZES[name]
    with st.Graph() as g:
        images = st.placeholder([1, size, size, 3], name="images")
        logits, end_points = network_fn(images)
    assert logits.get_shape().as_list() == [1, num_classes]
    assert end_points
    verify(g.nodes, outputs=[logits.node])
    # The arg scope was applied: BN-normalized nets have moving statistics, the others biases.
    has_bn = any(n.endswith("moving_mean") for n in g.variables)
    assert has_bn == (not name.startswith(("vgg", "alexnet")))


def test_default_class_count_when_none():
    network_fn = nets_factory.get_network_fn("inception_v3", num_classes=None)
    with st.Graph():
        logits, _ = network_fn(st.placeholder([1, 299, 299, 3]))
    assert logits.get_shape().as_list() == [1, 1001]


def test_unknown_network_is_named():
    with pytest.raises(ValueError, match="resnet_v3_50"):
        nets_factory.get_network_fn("resnet_v3_50", 10)


@pytest.mark.parametrize("name, size", [("mobilenet_v1_025", 64), ("resnet_v2_50", 64)])
def test_small_nets_run_end_to_end_on_torch(name, size):
    """Recorded nets execute: a softmax over the classes comes out (random weights, small input)."""
    network_fn = nets_factory.get_network_fn(name, num_classes=10)
    with st.Graph() as g:
        images = st.placeholder([1, size, size, 3], name="images")
        logits, end_points = network_fn(images, global_pool=True)
    predictions_key = "Predictions" if "Predictions" in end_points else "predictions"
    x = np.random.default_rng(0).uniform(-1, 1, size=(1, size, size, 3)).astype(np.float32)
    probs = Session(g, init_weights(g, seed=0), backend="torch").run(end_points[predictions_key], {images: x})
    assert probs.shape == (1, 10)
    assert np.all(np.isfinite(probs)) and abs(float(probs.sum()) - 1.0) < 1e-5
