"""Session: fetch structures, feeds (errors name the placeholder and both shapes),
weights checked at construction, backends, and build_torch_callable."""
from __future__ import annotations

import collections

import numpy as np
import pytest
import torch

from slimtriton.eager.torch_backend import build_torch_callable
from slimtriton.ir import Graph, Op, Tensor, VariableSpec
from slimtriton.session import Session
from slimtriton.weights import WeightsMismatchError, init_weights
from tests.helpers import assert_close


def _normal(shape, dtype, rng):
    return rng.standard_normal(shape).astype(dtype)


def small_graph():
    """images -> conv (SAME, stride 2) + bias -> relu -> avg pool -> reshape -> matmul -> softmax."""
    g = Graph()

    def var(name, shape):
        node = g.add_node(Op.VARIABLE, (), {"var": name, "shape": shape, "dtype": "float32"}, name)
        g.variables[name] = VariableSpec(name, shape, "float32", _normal, node=node)
        return node

    x = g.add_node(Op.PLACEHOLDER, (), {"shape": (2, 8, 8, 3), "dtype": "float32"}, "images")
    conv = g.add_node(Op.CONV2D, (x, var("net/conv/weights", (3, 3, 3, 5))),
                      {"strides": (2, 2), "padding": ((0, 1), (0, 1)), "dilations": (1, 1)}, "net/conv/Conv2D")
    biased = g.add_node(Op.BIAS_ADD, (conv, var("net/conv/biases", (5,))), {}, "net/conv/BiasAdd")
    relu = g.add_node(Op.RELU, (biased,), {}, "net/conv/Relu")
    pool = g.add_node(Op.AVG_POOL, (relu,), {"ksize": (2, 2), "strides": (2, 2), "padding": ((0, 0), (0, 0))},
                      "net/pool/AvgPool")
    flat = g.add_node(Op.RESHAPE, (pool,), {"shape": (2, 20)}, "net/flatten/Reshape")
    logits = g.add_node(Op.MATMUL, (flat, var("net/fc/weights", (20, 4))), {}, "net/fc/MatMul")
    probs = g.add_node(Op.SOFTMAX, (logits,), {"axis": 1}, "net/predictions")
    return g, Tensor(x, g), Tensor(relu, g), Tensor(logits, g), Tensor(probs, g)


def expected_logits(weights, xv):
    xp = np.pad(xv.astype(np.float64), ((0, 0), (0, 1), (0, 1), (0, 0)))
    w = weights["net/conv/weights"].astype(np.float64)
    conv = np.zeros((2, 4, 4, 5))
    for i in range(4):
        for j in range(4):
            patch = xp[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3, :]
            conv[:, i, j, :] = np.einsum("nhwc,hwco->no", patch, w)
    relu = np.maximum(conv + weights["net/conv/biases"], 0)
    pool = relu.reshape(2, 2, 2, 2, 2, 5).mean(axis=(2, 4))
    return pool.reshape(2, 20) @ weights["net/fc/weights"]


@pytest.fixture(scope="module")
def net():
    g, x, relu, logits, probs = small_graph()
    weights = init_weights(g, seed=3)
    xv = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32)
    return g, x, relu, logits, probs, weights, xv


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_values_and_fetch_structures(net, backend):
    g, x, relu, logits, probs, weights, xv = net
    sess = Session(g, weights, backend=backend)
    want = expected_logits(weights, xv)
    single = sess.run(logits, {x: xv})
    assert isinstance(single, np.ndarray) and single.dtype == np.float32 and single.shape == (2, 4)
    assert_close(single, want, "float32")
    Pair = collections.namedtuple("Pair", "a b")
    nested = sess.run({"logits": logits, "more": [probs, ("net/conv/Relu:0", Pair(logits, "net/fc/MatMul"))]},
                      feed_dict={"images:0": xv})
    assert set(nested) == {"logits", "more"}
    assert isinstance(nested["more"], list) and isinstance(nested["more"][1], tuple)
    assert isinstance(nested["more"][1][1], Pair)
    assert_close(nested["logits"], want, "float32")
    e = np.exp(want - want.max(1, keepdims=True))
    assert_close(nested["more"][0], e / e.sum(1, keepdims=True), "float32")
    assert nested["more"][1][0].shape == (2, 4, 4, 5)
    assert_close(nested["more"][1][1].b, want, "float32")
    assert sess.run([], {x: xv}) == []


def test_feed_errors_name_the_placeholder_and_shapes(net):
    g, x, relu, logits, probs, weights, xv = net
    sess = Session(g, weights)
    with pytest.raises(ValueError, match=r"placeholder images: expected float32\[2,8,8,3\], got float64\[8,8,3\]"):
        sess.run(logits, {x: xv[0].astype(np.float64)})
    with pytest.raises(ValueError, match=r"placeholder images: expected float32\[2,8,8,3\], got int64\[2,8,8,3\]"):
        sess.run(logits, {x: np.zeros((2, 8, 8, 3), np.int64)})
    with pytest.raises(ValueError, match="placeholder images .* must be fed"):
        sess.run(logits)
    with pytest.raises(KeyError, match="no node named 'nope'"):
        sess.run(logits, {"nope": xv})
    with pytest.raises(KeyError, match="no node named 'net/missing:0'"):
        sess.run("net/missing:0", {x: xv})
    with pytest.raises(TypeError, match="cannot fetch a int"):
        sess.run([logits, 3], {x: xv})


def test_float64_feed_is_accepted_and_intermediate_nodes_can_be_fed(net):
    g, x, relu, logits, probs, weights, xv = net
    sess = Session(g, weights)
    assert_close(sess.run(logits, {x: xv.astype(np.float64)}), expected_logits(weights, xv), "float32")
    # Feeding the relu replaces everything before it; the images placeholder is then not needed.
    relu_value = np.ones((2, 4, 4, 5), np.float32)
    got = sess.run(logits, {relu: relu_value})
    assert_close(got, np.ones((2, 20)) @ weights["net/fc/weights"], "float32")


def test_weights_checked_at_construction(net):
    g, x, relu, logits, probs, weights, xv = net
    bad = dict(weights)
    del bad["net/conv/biases"]
    bad["net/fc/weights"] = np.zeros((20, 3), np.float32)
    bad["net/extra"] = np.zeros(2, np.float32)
    with pytest.raises(WeightsMismatchError) as err:
        Session(g, bad)
    msg = str(err.value)
    assert "missing:    net/conv/biases [5]" in msg
    assert "unexpected: net/extra [2]" in msg
    assert "mis-shaped: net/fc/weights: expected [20, 4], got [20, 3]" in msg


def test_unknown_backend_and_options(net):
    g, x, relu, logits, probs, weights, xv = net
    with pytest.raises(ValueError, match="valid backends: reference, torch, triton"):
        Session(g, weights, backend="tensorflow")
    with pytest.raises(TypeError, match="unknown"):
        Session(g, weights, backend="torch", precision="tf32")


def test_torch_backend_float64_matches_reference_tightly(net):
    g, x, relu, logits, probs, weights, xv = net
    ref = Session(g, weights).run([relu, probs], {x: xv})
    got = Session(g, weights, backend="torch", dtype="float64").run([relu, probs], {x: xv})
    for a, b in zip(got, ref):
        assert_close(a, b, "float32")  # outputs are cast to the node dtype (float32)


def test_dropout_training_error_names_the_node():
    g = Graph()
    x = g.add_node(Op.PLACEHOLDER, (), {"shape": (1, 4), "dtype": "float32"}, "x")
    d = g.add_node(Op.DROPOUT, (x,), {"keep_prob": 0.5, "is_training": True}, "net/Dropout/dropout")
    for backend in ("reference", "torch"):
        with pytest.raises(ValueError, match="net/Dropout/dropout.*is_training=True"):
            Session(g, {}, backend=backend).run(Tensor(d, g), {"x": np.ones((1, 4), np.float32)})


def test_build_torch_callable(net):
    g, x, relu, logits, probs, weights, xv = net
    f = build_torch_callable(g, [logits, probs], weights, device="cpu", dtype="float32")
    assert f.placeholders == ["images"]
    out_logits, out_probs = f(torch.from_numpy(xv))
    assert_close(out_logits, expected_logits(weights, xv), "float32")
    assert_close(out_probs.sum(1), np.ones(2), "float32")
    single = build_torch_callable(g, logits, weights, device="cpu", dtype="float32")
    assert_close(single(torch.from_numpy(xv)), out_logits, "float32")
    # the one feed check (slimtriton/feeds.py), as Session and CompiledModel word it
    with pytest.raises(ValueError, match=r"placeholder images: expected float32\[2,8,8,3\], got float32\[1,8,8,3\]"):
        f(torch.zeros(1, 8, 8, 3))
    with pytest.raises(ValueError, match=r"placeholder images: expected float32\[2,8,8,3\], got int64\[2,8,8,3\]"):
        f(torch.zeros(2, 8, 8, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"placeholder images: expected float32\[2,8,8,3\], got float64\[8,8,3\]"):
        f(np.zeros((8, 8, 3)))
    with pytest.raises(WeightsMismatchError, match="net/fc/weights"):
        build_torch_callable(g, logits, {k: v for k, v in weights.items() if k != "net/fc/weights"}, "cpu")
    # the one check of every executor: an unknown name and a mis-typed value are errors here too
    with pytest.raises(WeightsMismatchError, match="unexpected.*net/nope"):
        build_torch_callable(g, logits, {**weights, "net/nope": np.zeros(3, np.float32)}, "cpu")
    with pytest.raises(WeightsMismatchError, match="net/fc/weights"):
        build_torch_callable(g, logits, {**weights, "net/fc/weights": weights["net/fc/weights"].astype(np.int64)},
                             "cpu")


def test_integer_placeholders_and_one_hot_output_dtype():
    g = Graph()
    labels = g.add_node(Op.PLACEHOLDER, (), {"shape": (3,), "dtype": "int32"}, "labels")
    oh = g.add_node(Op.ONE_HOT, (labels,), {"depth": 4, "on_value": 1.0, "off_value": 0.0, "dtype": "float32"},
                    "one_hot")
    for backend in ("reference", "torch"):
        got = Session(g, {}, backend=backend).run(Tensor(oh, g), {"labels": np.array([0, 3, 1], np.int32)})
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, np.eye(4, dtype=np.float32)[[0, 3, 1]])


def test_triton_backend_compiles_once_per_fetch_set_and_feeds_by_name(net, monkeypatch):
    """The compiler is another module; a stand-in records the calls Session makes."""
    import sys
    import types

    import slimtriton
    g, x, relu, logits, probs, weights, xv = net
    calls = []

    def fake_compile(graph, outputs, w, device=None, **options):
        calls.append(([o.name for o in outputs], device, options))

        def model(**feeds):
            assert list(feeds) == ["images"] and feeds["images"].dtype == np.float32
            return [Session(graph, w).run(o, feeds) for o in outputs]
        return model

    fake = types.ModuleType("slimtriton.compiler")
    fake.compile = fake_compile
    monkeypatch.setitem(sys.modules, "slimtriton.compiler", fake)
    monkeypatch.setattr(slimtriton, "compiler", fake, raising=False)

    sess = Session(g, weights, backend="triton", device="cpu", dtype="float16")
    a = sess.run({"p": probs, "l": logits}, {x: xv.astype(np.float64)})
    b = sess.run({"p": probs, "l": logits}, {x: xv})
    sess.run(logits, {x: xv})
    assert calls == [(["net/predictions:0", "net/fc/MatMul:0"], "cpu", {"dtype": "float16"}),
                     (["net/fc/MatMul:0"], "cpu", {"dtype": "float16"})]
    assert_close(a["l"], expected_logits(weights, xv), "float32")
    np.testing.assert_array_equal(a["p"], b["p"])
    with pytest.raises(ValueError, match="feeds placeholders only; net/conv/Relu is a relu node"):
        sess.run(logits, {relu: np.ones((2, 4, 4, 5), np.float32)})
    with pytest.raises(ValueError, match=r"placeholders \['images'\] must be fed"):
        sess.run(logits)
    with pytest.raises(ValueError, match=r"placeholder images: expected float32\[2,8,8,3\]"):
        sess.run(logits, {x: xv[:1]})


def test_op_errors_name_the_node():
    g = Graph()
    x = g.add_node(Op.PLACEHOLDER, (), {"shape": (1, 2, 2, 1), "dtype": "float32"}, "x")
    # A window that covers only padding is rejected when recorded, naming the node.
    with pytest.raises(ValueError, match=r"net/pool/AvgPool: padding .* leaves a pooling window with no input cell"):
        g.add_node(Op.AVG_POOL, (x,), {"ksize": (1, 1), "strides": (1, 1), "padding": ((2, 0), (0, 0))},
                   "net/pool/AvgPool")
    # Training-mode dropout is random: the reference refuses it, naming the node.
    drop = g.add_node(Op.DROPOUT, (x,), {"keep_prob": 0.5, "is_training": True}, "net/Dropout/dropout")
    with pytest.raises(ValueError, match=r"net/Dropout/dropout"):
        Session(g, {}).run(Tensor(drop, g), {"x": np.ones((1, 2, 2, 1), np.float32)})


def test_build_torch_callable_traces_as_one_graph(net):
    """torch.compile must see straight-line torch code: fullgraph=True fails on any graph break,
    and the counting backend proves the frame was traced at all (dynamo silently runs frames from
    files it skips, e.g. any path containing 'triton/backends', eagerly)."""
    from torch._dynamo.testing import CompileCounter

    g, x, relu, logits, probs, weights, xv = net
    f = build_torch_callable(g, [logits, probs], weights, device="cpu", dtype="float32")
    torch._dynamo.reset()
    compiled = torch.compile(f, backend="eager", fullgraph=True)
    for got, want in zip(compiled(torch.from_numpy(xv)), f(torch.from_numpy(xv))):
        assert_close(got, want, "float32")
    counter = CompileCounter()
    torch._dynamo.reset()
    traced = torch.compile(f, backend=counter, fullgraph=True)
    traced(torch.from_numpy(xv))
    assert counter.frame_count == 1
    assert counter.op_count >= 7  # conv, bias add, relu, pool, reshape, matmul, softmax
