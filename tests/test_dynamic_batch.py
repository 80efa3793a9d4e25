"""A symbolic batch dimension end to end (issue 12, item 1).

`st.placeholder([None, ...])` records an unknown batch; shape rules, printing, the verifier,
`get_shape()` and model_analyzer carry it; `Session.run` takes any batch (the nodes are
specialized to the fed batch); `st.compile(..., max_batch=N)` gives one model for any batch
<= N (one plan per batch bucket, parameters prepared once, one shared arena, inputs padded
to their bucket and outputs sliced back).

Cost: every factory net runs on the reference at batch 1 and 3 (the dynamic graph; its
specializations equal the static graphs node for node, and three cheap nets are also
compared output for output with their static graphs). The compiled max_batch=4 check runs in
the Triton interpreter on mobilenet_v1_025 and resnet_v1_50 here (about a minute); every
factory net when SLIMTRITON_SLOW_TESTS=1 is set (tens of minutes in the interpreter).
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st_h

import slimtriton as st
from slimtriton import slim, tf
from slimtriton.compiler import bucket_sizes
from slimtriton.ir.node import Node
from slimtriton.ir.specialize import feed_batch, has_dynamic_batch, specialize
from slimtriton.ir.verify import verify
from slimtriton.nets import nets_factory

from .helpers import assert_close
from .nets.test_nets_backends import NET_CONFIGS, o1_weights

SLOW = bool(os.environ.get("SLIMTRITON_SLOW_TESTS"))


def _small_net(batch=None, is_training=False):
    """conv+BN+relu, a channel concat, pad, max pool, flatten, FC, softmax."""
    with st.Graph() as g:
        x = st.placeholder([batch, 8, 8, 3], name="images")
        with slim.arg_scope([slim.conv2d], normalizer_fn=slim.batch_norm,
                            normalizer_params={"is_training": is_training}):
            a = slim.conv2d(x, 4, 3, scope="a")
            b = slim.conv2d(x, 6, 1, scope="b")
        net = tf.concat([a, b], 3)
        net = tf.pad(net, [[0, 0], [1, 1], [1, 1], [0, 0]])
        net = slim.max_pool2d(net, 2)
        net = slim.flatten(net)
        logits = slim.fully_connected(net, 5, activation_fn=None, scope="logits")
        probs = slim.softmax(logits)
    return g, x, logits, probs


def _images(batch, size=8, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)


def _quiet_compile(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no CUDA device: interpreter" is expected here
        return st.compile(*args, **kwargs)


# -- recording ---------------------------------------------------------------------------------
def test_placeholder_records_an_unknown_batch_and_tf_shapes_follow():
    g, x, logits, probs = _small_net()
    assert x.get_shape().as_list() == [None, 8, 8, 3]
    assert not x.get_shape().is_fully_defined() and x.get_shape().num_elements() is None
    assert logits.get_shape().as_list() == [None, 5]
    assert x.node.dynamic_batch and has_dynamic_batch(g.nodes)
    assert "float32[None, 8, 8, 3]" in str(g) and "float32[None, 5]" in str(g)
    verify(g.nodes, [probs.node])
    with st.Graph():
        t = tf.placeholder(tf.float32, shape=(None, 4, 4, 3))
        assert t.get_shape().as_list() == [None, 4, 4, 3]
        s = st.placeholder([2, 4, 4, 3])
        assert s.get_shape().is_fully_defined() and s.get_shape().num_elements() == 96


@pytest.mark.parametrize("shape, dim", [([1, None, 3], 1), ([None, 4, None], 2), ([0, 4], 0), ([2, -1], 1),
                                        ([2, 2.0], 1)])
def test_only_the_leading_dimension_may_be_none(shape, dim):
    with st.Graph():
        with pytest.raises(ValueError, match=rf"dimension {dim} of shape"):
            st.placeholder(shape, name="x")
        with pytest.raises(ValueError, match=rf"dimension {dim} of shape"):
            tf.placeholder(tf.float32, shape=shape)


def test_size_of_a_dynamic_node_is_per_example_only():
    _, x, logits, _ = _small_net()
    assert x.node.per_example_size == 8 * 8 * 3
    with pytest.raises(ValueError, match="unknown batch"):
        x.node.size


@pytest.mark.parametrize("build, message", [
    (lambda x: tf.concat([x, x], 0), "concat along axis 0 .* unknown batch"),
    (lambda x: tf.reduce_mean(x, [0, 1]), "mean along axis 0"),
    (lambda x: tf.reduce_mean(x), "mean along axis 0"),
    (lambda x: tf.pad(x, [[1, 0], [0, 0], [0, 0], [0, 0]]), "padding"),
    (lambda x: tf.tile(x, [2, 1, 1, 1]), "tiling by 2"),
    (lambda x: tf.reshape(x, [2, -1]), "must keep the batch as its leading dimension"),
    (lambda x: tf.reshape(x, [-1, 8, 8, 6]), "192 elements per example"),
    (lambda x: tf.expand_dims(x, 0), "the unknown batch .* must stay the leading dimension"),
    (lambda x: tf.nn.softmax(x, axis=0), "normalization along axis 0"),
    (lambda x: x + st.placeholder([4, 8, 8, 3], name="other"), "unknown batch .* meets a dimension of size 4"),
    (lambda x: tf.squeeze(x, [0]), "can not squeeze dim\\[0\\]"),
])
def test_ops_that_mix_the_batch_are_refused_naming_it(build, message):
    with st.Graph():
        x = st.placeholder([None, 8, 8, 3], name="images")
        with pytest.raises(ValueError, match=message):
            build(x)


def test_ops_that_keep_the_batch_record_symbolically():
    with st.Graph():
        x = st.placeholder([None, 2, 2, 3], name="images")
        assert tf.reshape(x, [-1, 12]).shape.as_list() == [None, 12]
        assert tf.reshape(x, [None, 4, -1]).shape.as_list() == [None, 4, 3]
        assert tf.squeeze(tf.reduce_mean(x, [1, 2], keep_dims=True)).shape.as_list() == [None, 3]
        assert tf.expand_dims(x, 1).shape.as_list() == [None, 1, 2, 2, 3]
        assert (x * st.placeholder([1, 1, 1, 3], name="s")).shape.as_list() == [None, 2, 2, 3]
        assert tf.concat([x, x], -1).shape.as_list() == [None, 2, 2, 6]
        assert tf.one_hot(st.placeholder([None], "int32", name="labels"), 4).shape.as_list() == [None, 4]
    with st.Graph():
        y = st.placeholder([3, 2], name="static")
        with pytest.raises(ValueError, match="static shape"):
            tf.reshape(y, [None, 2])


def test_variables_never_take_an_unknown_batch():
    with st.Graph() as g:
        x = st.placeholder([None, 2], name="x")
    bad = Node.make(st.Op.VARIABLE, (), {"var": "w", "shape": (None, 2), "dtype": "float32"}, (None, 2), "float32",
                    "w")
    with pytest.raises(Exception, match="only a placeholder's leading"):
        verify([x.node, bad])


# -- specialize ----------------------------------------------------------------------------------
def test_specialize_is_pure_and_equals_the_static_graph():
    g, x, _, _ = _small_net()
    before = [(n.name, n.shape, dict(n.attrs)) for n in g.nodes]
    for batch in (1, 3):
        static, _, _, _ = _small_net(batch)
        got = specialize(g.nodes, batch)
        assert _structure(got) == _structure(static.nodes)
        verify(got)
        assert not has_dynamic_batch(got)
    assert [(n.name, n.shape, dict(n.attrs)) for n in g.nodes] == before  # untouched
    with pytest.raises(ValueError, match="positive int"):
        specialize(g.nodes, 0)


def _structure(nodes):
    return [(n.name, n.op, dict(n.attrs), n.shape, n.dtype, tuple(i.name for i in n.inputs)) for n in nodes]


def test_feed_batch_names_disagreeing_feeds():
    with st.Graph():
        a = st.placeholder([None, 2], name="a")
        b = st.placeholder([None, 3], name="b")
    assert feed_batch({a.node: np.zeros((5, 2))}) == 5
    with pytest.raises(ValueError, match="a has batch 2, b has batch 3"):
        feed_batch({a.node: np.zeros((2, 2)), b.node: np.zeros((3, 3))})


def test_model_analyzer_counts_a_dynamic_graph_at_a_batch(capsys):
    g, *_ = _small_net()
    static1, *_ = _small_net(1)
    static4, *_ = _small_net(4)
    per_example = slim.model_analyzer.analyze_ops(g)
    assert per_example == slim.model_analyzer.analyze_ops(static1, print_info=False)
    assert slim.model_analyzer.analyze_ops(g, batch=4, print_info=False) == slim.model_analyzer.analyze_ops(
        static4, print_info=False)
    printed = capsys.readouterr().out
    assert "float32 [None, 8, 8, 3]" in printed and "counted at batch 1" in printed
    with pytest.raises(ValueError, match="static"):
        slim.model_analyzer.analyze_ops(static1, batch=2)


# -- Session: any batch ----------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["reference", "torch", "triton"])
def test_session_runs_any_batch(backend):
    g, x, logits, probs = _small_net()
    weights = st.init_weights(g, seed=0)
    xs = _images(3)
    static, sx, slogits, _ = _small_net(3)
    want = st.Session(static, weights).run(slogits, {sx: xs})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sess = st.Session(g, weights, backend=backend)
        for batch in (3, 1, 2, 3):
            got = sess.run({"logits": logits}, {x: xs[:batch]})["logits"]
            assert got.shape == (batch, 5)
            tolerance = "float64" if backend == "reference" else "float32"
            assert_close(got, want[:batch], tolerance, what=f"{backend} batch {batch}")
    if backend == "triton":
        assert sorted(k[1] for k in sess._compiled) == [1, 2, 3]  # one model per batch, reused
    else:
        assert sorted(sess._specialized) == [1, 2, 3]  # one specialization per batch, cached


def test_session_refuses_a_bad_feed_of_the_dynamic_placeholder():
    g, x, logits, _ = _small_net()
    sess = st.Session(g, st.init_weights(g, seed=0))
    with pytest.raises(ValueError, match=r"images: expected float32\[2,8,8,3\], got float32\[2,4,8,3\]"):
        sess.run(logits, {x: np.zeros((2, 4, 8, 3), np.float32)})


# -- compile with max_batch ----------------------------------------------------------------------
def test_bucket_sizes():
    assert bucket_sizes(max_batch=1) == [1]
    assert bucket_sizes(max_batch=4) == [1, 2, 4]
    assert bucket_sizes(max_batch=6) == [1, 2, 4, 6]
    assert bucket_sizes(batch_sizes=[8, 2, 2]) == [2, 8]
    for bad in ({"max_batch": 0}, {"max_batch": 2.0}, {"batch_sizes": []}, {"batch_sizes": [0, 2]},
                {"max_batch": 2, "batch_sizes": [2]}):
        with pytest.raises(ValueError):
            bucket_sizes(**bad)


def test_one_compiled_model_takes_every_batch_up_to_max_batch():
    g, x, logits, probs = _small_net()
    weights = st.init_weights(g, seed=1)
    xs = _images(4, seed=2)
    want = st.Session(g, weights).run([logits, probs], {x: xs})
    model = _quiet_compile(g, {"logits": logits, "probs": probs}, weights, max_batch=4, poison=True)
    assert model.batch_sizes == [1, 2, 4] and model.max_batch == 4
    for batch in (3, 1, 4, 2, 3):  # poison: a kernel reading freed or another bucket's buffers gives NaN
        got = model(xs[:batch])
        assert got["logits"].shape == (batch, 5)
        assert_close(got["logits"], want[0][:batch], "float32", what=f"logits batch {batch}")
        assert_close(got["probs"], want[1][:batch], "float32", what=f"probs batch {batch}")
    import torch
    as_torch = model({x: torch.from_numpy(xs[:3])})
    assert isinstance(as_torch["logits"], torch.Tensor) and tuple(as_torch["logits"].shape) == (3, 5)
    # plans built eagerly for every bucket; executors lazily, for the buckets that ran
    assert sorted(model._buckets) == [1, 2, 4]
    # prepared once: every bucket's plan reads the same parameter keys, every executor the same dict
    assert all(p.prep == model.plans[1].prep for p in model.plans.values())
    executors = [e for e, _ in model._buckets.values()]
    assert all(e.params is model._params for e in executors)
    # one arena, sized for the largest bucket, shared by every bucket's executor
    assert model._arena.nbytes >= max(p.memory.arena_bytes for p in model.plans.values())
    backing = model._arena.backing()
    start, end = backing.data_ptr(), backing.data_ptr() + model._arena.nbytes
    for e in executors:
        for view in e._arena().values():
            assert start <= view.data_ptr() < end
    assert "batch bucket [1, 2, 4]" in model.report()


def test_batch_outside_the_range_is_one_clear_error():
    g, x, logits, _ = _small_net()
    model = _quiet_compile(g, logits, st.init_weights(g, seed=0), batch_sizes=[2, 3])
    assert model(_images(1)).shape == (1, 5)  # padded to bucket 2
    for batch in (0, 4):
        with pytest.raises(ValueError, match=rf"batch {batch} is outside the range .*: 1\.\.3 \(batch buckets \[2, 3\]\)"):
            model(_images(4)[:batch])


def test_compile_refusals():
    g, x, logits, probs = _small_net()
    weights = st.init_weights(g, seed=0)
    with pytest.raises(ValueError, match="pass max_batch=N"):
        st.compile(g, logits, weights)
    static, _, slogits, _ = _small_net(2)
    with pytest.raises(ValueError, match="static batch"):
        st.compile(static, slogits, weights, max_batch=4)
    with pytest.raises(ValueError, match="do not have the unknown batch"):
        st.compile(g, [logits, "logits/weights"], weights, max_batch=2)
    training, _, tlogits, _ = _small_net(is_training=True)
    with pytest.raises(ValueError, match="statistics over the batch"):
        st.compile(training, tlogits, st.init_weights(training, seed=0), max_batch=2)


def test_analysis_only_dynamic_model_reports_the_largest_bucket():
    g, x, logits, _ = _small_net()
    model = st.compile(g, logits, max_batch=8)
    assert model.analysis_only and model.batch_sizes == [1, 2, 4, 8]
    assert model.plan is model.plans[8] and model.plan.inputs[0].shape == (8, 8, 8, 3)


# -- every factory net ----------------------------------------------------------------------------
def _build(name, batch):
    size, kwargs, _, _ = NET_CONFIGS[name]
    fn = nets_factory.get_network_fn(name, num_classes=None)
    with st.Graph() as g:
        images = st.placeholder([batch, size, size, 3], name="images")
        logits, end_points = fn(images, **kwargs)
    return g, images, logits, end_points


@pytest.mark.parametrize("name", sorted(NET_CONFIGS))
def test_factory_net_with_a_none_batch_runs_on_the_reference(name):
    g, images, logits, end_points = _build(name, None)
    assert images.get_shape().as_list()[0] is None
    assert all(t.get_shape().as_list()[0] is None for t in end_points.values()), name
    for batch in (1, 3):  # the static graph, node for node
        assert _structure(specialize(g.nodes, batch)) == _structure(_build(name, batch)[0].nodes)
    weights = o1_weights(g)
    xs = _images(3, NET_CONFIGS[name][0], seed=5)
    sess = st.Session(g, weights)
    three = sess.run(logits, {images: xs})
    one = sess.run(logits, {images: xs[:1]})
    assert three.shape[0] == 3 and one.shape[0] == 1
    np.testing.assert_array_equal(one, three[:1])  # each example on its own
    if name in ("mobilenet_v1_025", "resnet_v1_50", "inception_v2"):  # and the static graph's outputs
        static, simages, slogits, _ = _build(name, 3)
        np.testing.assert_array_equal(st.Session(static, weights).run(slogits, {simages: xs}), three)


COMPILED_NETS = sorted(NET_CONFIGS) if SLOW else ["mobilenet_v1_025", "resnet_v1_50"]


@pytest.mark.parametrize("name", COMPILED_NETS)
def test_factory_net_compiled_with_max_batch_4_takes_batches_1_to_4(name):
    g, images, logits, end_points = _build(name, None)
    weights = o1_weights(g)
    xs = _images(4, NET_CONFIGS[name][0], seed=9)
    want = st.Session(g, weights).run(logits, {images: xs})
    model = _quiet_compile(g, logits, weights, max_batch=4)
    for batch in (1, 2, 3, 4):
        assert_close(model(xs[:batch]), want[:batch], "float32", what=f"{name} batch {batch}")
    assert sorted(model._buckets) == [1, 2, 4]


def test_plan_of_a_dynamic_graph_takes_a_batch():
    from slimtriton.compiler import plan
    g, x, logits, _ = _small_net()
    static, _, slogits, _ = _small_net(2)
    at_two = plan(g, logits, batch=2)
    assert at_two.inputs[0].shape == (2, 8, 8, 3)
    assert [s.kernel for s in at_two.steps] == [s.kernel for s in plan(static, slogits).steps]
    with pytest.raises(ValueError, match="unknown batch"):
        plan(g, logits)
    with pytest.raises(ValueError, match="static batch"):
        plan(static, slogits, batch=2)


def _random_net(batch, size, channels, kernel, stride):
    with st.Graph() as g:
        x = st.placeholder([batch, size, size, channels], name="images")
        a = slim.conv2d(x, 3, kernel, stride=stride, scope="a")
        b = slim.separable_conv2d(x, 2, kernel, depth_multiplier=2, stride=stride, scope="b")
        net = tf.concat([a, b], 3)
        net = tf.reduce_mean(net, [1, 2], keep_dims=True)
        net = tf.squeeze(net, [1, 2])
        net = tf.reshape(net, [-1, 5, 1])
        tf.nn.softmax(tf.reshape(net, [-1, 5]))
    return g


@given(batch=st_h.integers(1, 9), size=st_h.integers(3, 12), channels=st_h.integers(1, 4),
       kernel=st_h.integers(1, 3), stride=st_h.integers(1, 2))
@settings(max_examples=25)
def test_specialize_equals_recording_at_the_batch(batch, size, channels, kernel, stride):
    dynamic = _random_net(None, size, channels, kernel, stride)
    static = _random_net(batch, size, channels, kernel, stride)
    assert _structure(specialize(dynamic.nodes, batch)) == _structure(static.nodes)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="fakes of torch.cuda replace the real ones")
def test_one_cuda_graph_per_bucket_captured_lazily_over_the_shared_arena(monkeypatch):
    """With torch.cuda faked (tests/test_gpu_paths.py: a capture records the kernel launches, a
    replay re-runs them with the captured pointers), each bucket captures its own graph at its
    first call and replays it afterwards; interleaved buckets over the one shared arena stay right."""
    from .test_gpu_paths import FakeCuda
    g, x, logits, _ = _small_net()
    weights = st.init_weights(g, seed=3)
    xs = _images(4, seed=4)
    want = st.Session(g, weights).run(logits, {x: xs})
    model = _quiet_compile(g, logits, weights, max_batch=4)
    FakeCuda(monkeypatch)
    model._graph_per_bucket = True  # as on CUDA with cuda_graph=True
    for batch in (1, 3, 2, 4, 1, 3, 2):
        assert_close(model(xs[:batch]), want[:batch], "float32", what=f"batch {batch}")
    runners = {b: r for b, (_, r) in model._buckets.items()}
    assert sorted(runners) == [1, 2, 4] and len({id(r) for r in runners.values()}) == 3
    assert all(r.graph is not None and not r.failed for r in runners.values())
    assert {b: r.replays for b, r in runners.items()} == {1: 1, 2: 1, 4: 2}  # first call: eager, then capture
