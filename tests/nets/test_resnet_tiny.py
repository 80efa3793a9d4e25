"""The two tiny ResNets recorded by real TF-Slim (fixtures resnet_v1_tiny / resnet_v2_tiny):
same variables, same end points, and the same numbers on the reference and torch backends."""
from __future__ import annotations

import numpy as np
import pytest

from slimtriton.nets import resnet_utils, resnet_v1, resnet_v2
from slimtriton.session import Session
from tests.helpers import assert_close

from .common import FIXTURES, load_cases, record, variable_shapes

CASES = load_cases()

BUILDERS = {
    "resnet_v1_tiny": lambda x: resnet_v1.resnet_v1(
        x, [resnet_v1.resnet_v1_block("block1", base_depth=4, num_units=2, stride=2),
            resnet_v1.resnet_v1_block("block2", base_depth=8, num_units=2, stride=1)],
        num_classes=10, is_training=False, spatial_squeeze=False, scope="resnet_v1_tiny"),
    "resnet_v2_tiny": lambda x: resnet_v2.resnet_v2(
        x, [resnet_v2.resnet_v2_block("block1", base_depth=4, num_units=2, stride=2),
            resnet_v2.resnet_v2_block("block2", base_depth=8, num_units=2, stride=1)],
        num_classes=10, is_training=False, spatial_squeeze=False, scope="resnet_v2_tiny"),
}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def case(request):
    name = request.param
    data = np.load(FIXTURES / f"{name}.npz")
    spec = CASES[name]
    graph, images, (net, end_points) = record(BUILDERS[name], spec["input_shape"],
                                              resnet_utils.resnet_arg_scope())
    weights = {k[len("var/"):]: data[k] for k in data.files if k.startswith("var/")}
    return name, spec, data, graph, images, net, end_points, weights


def test_variables_and_end_points_match_tf_slim(case):
    name, spec, data, graph, _, net, end_points, weights = case
    assert variable_shapes(graph) == spec["variables"]
    assert sorted(weights) == sorted(spec["variables"])  # the fixture holds every variable
    # The models copy adds the 'global_pool' end point; nothing else differs.
    assert sorted(set(end_points) - {"global_pool"}) == sorted(spec["end_points"])
    assert net.get_shape().as_list() == spec["output_shape"]


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_logits_match_tf_slim(case, backend):
    name, _, data, graph, images, net, end_points, weights = case
    logits, predictions = Session(graph, weights, backend=backend).run(
        [net, end_points["predictions"]], {images: data["input"]})
    assert_close(logits, data["expected"], "float32", what=f"{name} logits ({backend})")
    # predictions: softmax over the classes of TF-Slim's logits
    e = np.exp(data["expected"] - data["expected"].max(axis=-1, keepdims=True))
    assert_close(predictions, e / e.sum(axis=-1, keepdims=True), "float32",
                 what=f"{name} predictions ({backend})")


def test_tf_checkpoint_loads_by_name_and_reproduces_tf_slim():
    """A real TF V2 checkpoint of resnet_v2_tiny loads by variable name into our graph."""
    from slimtriton.weights import check_weights, load_weights
    data = np.load(FIXTURES / "resnet_v2_tiny.npz")
    graph, images, (net, _) = record(BUILDERS["resnet_v2_tiny"], CASES["resnet_v2_tiny"]["input_shape"],
                                     resnet_utils.resnet_arg_scope())
    weights = load_weights(str(FIXTURES / "tf_checkpoint" / "resnet_v2_tiny.ckpt"))
    check_weights(graph, weights)
    logits = Session(graph, weights, backend="reference").run(net, {images: data["input"]})
    assert_close(logits, data["expected"], "float32", what="resnet_v2_tiny from its TF checkpoint")
