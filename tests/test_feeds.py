"""slimtriton/feeds.py: the one feed/fetch helper of Session, CompiledModel, the torch backend
and evaluate -- feed keys, the feed check and its message, nested fetches, to_numpy."""
from __future__ import annotations

import collections

import numpy as np
import pytest
import torch

import slimtriton as st
from slimtriton import tf
from slimtriton import feeds
from slimtriton.ir import Graph, Op
from slimtriton.ir.node import Tensor


def _graph():
    g = Graph()
    x = g.add_node(Op.PLACEHOLDER, (), {"shape": (2, 3), "dtype": "float32"}, "net/x")
    n = g.add_node(Op.PLACEHOLDER, (), {"shape": (2,), "dtype": "int32"}, "net/labels")
    y = g.add_node(Op.RELU, (x,), {}, "net/y")
    return g, x, n, y


def test_feed_keys_name_their_node():
    g, x, n, y = _graph()
    assert feeds.feed_name(Tensor(x, g)) == feeds.feed_name(x) == feeds.feed_name("net/x:0") == "net/x"
    assert feeds.feed_node("net/x:0", g.node_by_name) is x
    with pytest.raises(TypeError, match="feed keys must be Tensors, Nodes or names, got int"):
        feeds.feed_name(3, "feed")
    with pytest.raises(ValueError, match="feed_dict feeds net/x twice"):
        feeds.resolve_feeds({x: 1, "net/x:0": 2}, lambda k: feeds.feed_node(k, g.node_by_name))


def test_check_value_names_the_placeholder_and_both_shapes():
    g, x, n, y = _graph()
    feeds.check_value(x, np.zeros((2, 3), np.float64), "placeholder")  # any float feeds a float node
    feeds.check_value(x, torch.zeros(2, 3, dtype=torch.bfloat16), "placeholder")
    feeds.check_value(n, np.zeros(2, np.int64), "placeholder")  # any int feeds an int node
    with pytest.raises(ValueError, match=r"^placeholder net/x: expected float32\[2,3\], got float32\[3,2\]$"):
        feeds.check_value(x, np.zeros((3, 2), np.float32), "placeholder")
    with pytest.raises(ValueError, match=r"^placeholder net/x: expected float32\[2,3\], got int64\[2,3\]$"):
        feeds.check_value(x, torch.zeros(2, 3, dtype=torch.int64), "placeholder")
    with pytest.raises(ValueError, match=r"^placeholder net/labels: expected int32\[2\], got float32\[2\]$"):
        feeds.check_value(n, np.zeros(2, np.float32), "placeholder")
    # another accepted dtype is named; an explicit shape (a fed batch) replaces the node's
    feeds.check_value(n, np.zeros(2, np.float16), "placeholder", also_dtypes=("float16",))
    with pytest.raises(ValueError, match=r"net/labels: expected int32\[5\] \(or float16\), got bool\[5\]"):
        feeds.check_value(n, np.zeros(5, bool), "placeholder", shape=(5,), also_dtypes=("float16",))
    assert feeds.describe("float32", (None, 224, 224, 3)) == "float32[None,224,224,3]"


def test_nested_fetches_flatten_and_rebuild_to_the_same_structure():
    g, x, n, y = _graph()
    Pair = collections.namedtuple("Pair", "a b")
    fetches = {"first": [Tensor(y, g), ("net/x:0",)], "pair": Pair(y, x)}
    nodes, spec = feeds.flatten_fetches(fetches, lambda o: feeds.feed_node(o, g.node_by_name))
    assert [m.name for m in nodes] == ["net/y", "net/x", "net/y", "net/x"]
    assert feeds.rebuild(spec, [1, 2, 3, 4]) == {"first": [1, (2,)], "pair": Pair(3, 4)}
    assert feeds.rebuild(feeds.flatten_fetches(y, lambda o: o)[1], ["only"]) == "only"


def test_to_numpy_casts_to_the_node_dtype_and_rounds_bfloat16():
    assert feeds.to_numpy(torch.ones(2, dtype=torch.float16), "float32").dtype == np.float32
    assert feeds.to_numpy([1, 2], "int32").dtype == np.int32
    third = np.float32(1 / 3)
    for value in (np.array([third]), torch.tensor([third])):
        got = feeds.to_numpy(value, "bfloat16")
        assert got.dtype == np.float32 and got[0] == torch.tensor(third).to(torch.bfloat16).float().item()
    assert feeds.host_feed([1.0, 2.0], "bfloat16").dtype == np.float32


def test_session_and_compiled_model_word_a_bad_feed_the_same():
    with st.Graph() as g:
        x = st.placeholder([1, 4, 4, 3], name="images")
        y = tf.nn.relu(x)
    bad = np.zeros((1, 4, 4, 2), np.float32)
    message = r"placeholder images: expected float32\[1,4,4,3\], got float32\[1,4,4,2\]"
    for run in (lambda: st.Session(g, {}).run(y, {x: bad}),
                lambda: st.Session(g, {}, backend="torch").run(y, {x: bad}),
                lambda: st.compile(g, y, {})(bad)):
        with pytest.raises(ValueError, match=message):
            run()


def test_names_say_which_dtypes_and_which_device_they_are():
    """Issue 11: one name per meaning (there were three DTYPES and two resolve_device)."""
    import slimtriton.compiler as compiler
    import slimtriton.eager.torch_backend as eager
    import slimtriton.ir.node as node
    import slimtriton.kernels.common as kernels_common
    assert set(node.COMPUTE_DTYPES) < set(node.FLOAT_DTYPES) < set(node.NODE_DTYPES)
    assert kernels_common.TORCH_COMPUTE_DTYPES == {name: getattr(torch, name) for name in node.COMPUTE_DTYPES}
    for module in (node, compiler, kernels_common, eager):
        assert not hasattr(module, "DTYPES") and not hasattr(module, "resolve_device")
    assert eager.torch_device("cpu") == compiler.kernel_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="dtype must be one of \\('float32', 'float16', 'bfloat16'\\)"):
        compiler.plan(Graph(), [], dtype="float64")
