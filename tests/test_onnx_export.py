"""ONNX export (slimtriton/export/onnx.py): every op, every factory net and a real TF checkpoint,
checked with onnx.checker and run with onnxruntime (CPU) against the NumPy reference.

ONNX Runtime is a third executor, independent of our kernels and of torch: each exported model
must match `Session(backend='reference')` within 1e-4 relative L2 in float32, and, exported
with a dynamic batch at one batch size, give the same rows at another.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as hs

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import slimtriton as st  # noqa: E402
from slimtriton import slim, tf  # noqa: E402
from slimtriton.export.onnx import EXPORTERS, OPSET, UNSUPPORTED, export_onnx  # noqa: E402
from slimtriton.ir.ops import Group, Op  # noqa: E402
from slimtriton.nets import nets_factory  # noqa: E402

from .helpers import assert_close, relative_l2  # noqa: E402
from .nets.common import FIXTURES, REPO_ROOT  # noqa: E402
from .nets.test_nets_backends import NET_CONFIGS  # noqa: E402

ONNX_TOL = 1e-4        # ONNX Runtime float32 vs the float64 reference (the bound)
SAME_ROWS_TOL = 1e-5   # a row computed at batch 1 vs the same row inside a larger batch


def _session(model_or_path, all_optimizations: bool = False):
    source = model_or_path if isinstance(model_or_path, str) else model_or_path.SerializeToString()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # two shared cores: threads only add contention
    # Basic graph optimizations (constant folding, redundant nodes) but not the CPU layout
    # transforms of ENABLE_ALL (ORT's default), which take 19 s to load VGG-16's 400 MB fc6 here
    # (5.7 s basic); they change how ORT runs the graph, not what it computes. A few tests load
    # with all of them, as a user's InferenceSession does.
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if all_optimizations
                                        else ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _random_weights(graph, seed: int = 0) -> dict:
    """Every variable random and O(1)-preserving: kernels He-scaled (the last conv of a ResNet
    unit 0.3x more), BN statistics, offsets and biases random; float32 normals drawn directly
    (st.init_weights' truncated normals take seconds for VGG's 100M-parameter fc6)."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, spec in graph.variables.items():
        leaf = name.rsplit("/", 1)[-1]
        shape = spec.shape
        if leaf == "moving_variance":
            value = rng.uniform(0.5, 2.0, shape)
        elif leaf == "gamma":
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) >= 2:
            fan_in = shape[0] * shape[1] if leaf == "depthwise_weights" else int(np.prod(shape[:-1]))
            gain = 0.3 if "/bottleneck_v" in name and "/conv3/" in name else 1.0
            value = rng.standard_normal(shape, dtype=np.float32)
            value *= np.float32(gain * np.sqrt(2.0 / fan_in))
        else:
            value = rng.normal(0.0, 0.1, shape)
        weights[name] = np.asarray(value, dtype=np.float32)
    return weights


def _feeds_at(feeds: dict, batch: int, seed: int, batched) -> dict:
    """Feeds with a different batch: fresh random rows of the same kind (placeholders without
    a batch keep their value)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, value in feeds.items():
        if name not in batched:
            out[name] = value
            continue
        shape = (batch,) + value.shape[1:]
        if value.dtype.kind == "f":
            out[name] = rng.uniform(-1, 1, shape).astype(value.dtype)
        else:
            # nonzero (they may be divisors), negative and past a one_hot depth of 5 included
            out[name] = (rng.integers(1, 7, shape) * rng.choice([-1, 1], shape)).astype(value.dtype)
    return out


def _check_against_reference(graph, outputs: dict, weights, feeds: dict, tmp_path, **options):
    """Export, check, run at the recorded batch against the reference, then at another batch
    (recorded + 1): its first and last rows against the same rows run alone (batch 1)."""
    path = str(tmp_path / "model.onnx")
    model = export_onnx(graph, outputs, weights, path, **options)
    assert model.opset_import[0].version == OPSET
    sess = _session(path)
    want = st.Session(graph, weights, backend="reference").run(outputs, feeds)
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    assert set(got) == set(outputs)
    layout = options.get("layout", "NHWC")
    for key in outputs:
        expected = want[key]
        if layout == "NCHW" and expected.ndim == 4:
            expected = expected.transpose(0, 3, 1, 2)
        assert got[key].shape == expected.shape, key
        assert_close(got[key], expected, "float32", what=f"onnx {key}", tol=ONNX_TOL)
    dynamic = options.get("dynamic_batch", True)
    if dynamic:
        batched = set(feeds) if dynamic is True else set(dynamic)
        recorded = next(iter(feeds[k].shape[0] for k in batched))
        other = recorded + 1  # a batch the graph was not recorded at
        larger = _feeds_at(feeds, other, seed=5, batched=batched)
        batch = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, larger)))
        assert all(v.shape[0] == other for v in batch.values() if v.ndim)
        # Rows are independent unless a batch norm normalizes with the batch's statistics.
        independent = not any(n.op is Op.BATCH_NORM and n.attrs["is_training"] for n in graph.nodes)
        for row in ([0, other - 1] if independent else []):
            single = sess.run(None, {k: v[row:row + 1] if k in batched else v for k, v in larger.items()})
            for o, value in zip(sess.get_outputs(), single):
                assert_close(batch[o.name][row:row + 1], value, "float32", tol=SAME_ROWS_TOL,
                             what=f"onnx {o.name} row {row} of batch {other} vs alone")
    return model, sess


# -- the table ----------------------------------------------------------------------------------
def test_every_op_has_an_exporter_or_a_stated_reason():
    assert set(EXPORTERS) | set(UNSUPPORTED) == set(Op)
    assert not set(EXPORTERS) & set(UNSUPPORTED)
    assert all(reason.strip() for reason in UNSUPPORTED.values())
    # Only the compiler's fused ops are left out: everything a graph records exports.
    assert set(UNSUPPORTED) == {op for op in Op if op.group is Group.FUSED}


def test_every_exported_op_has_a_case_here():
    sources = {Op.PLACEHOLDER, Op.VARIABLE, Op.CONSTANT}  # in every case
    covered = {op for op, _ in OP_CASES}
    assert covered == set(EXPORTERS) - sources


# -- one small graph per op ---------------------------------------------------------------------
X_SHAPE = (2, 6, 7, 5)  # odd width: SAME padding is asymmetric at stride 2


def _conv(x, channels=4, **kw):
    kw.setdefault("activation_fn", None)
    return slim.conv2d(x, channels, [3, 3], **kw)


def _ph(shape, dtype="float32", name="extra"):
    return st.placeholder(list(shape), dtype=dtype, name=name)


OP_CASES = [
    (Op.ADD, lambda x: {"conv_plus_input": _conv(x, 5) + x, "input_plus_input": x + x}),
    (Op.SUB, lambda x: {"minus_vector": tf.subtract(_conv(x), tf.get_variable("v", [4]))}),
    (Op.MUL, lambda x: {"times_scalar": _conv(x) * 2.5,
                        "times_rank2": tf.multiply(_conv(x), tf.get_variable("w", [7, 4]))}),
    (Op.DIV, lambda x: {"over_positive": _conv(x) / (tf.sigmoid(tf.get_variable("d", [1, 1, 1, 4])) + 0.5)}),
    (Op.DIV, lambda x: {"floor_div": tf.divide(_ph([2, 5], "int32", "a"), _ph([2, 5], "int32", "b"))}),
    (Op.MAXIMUM, lambda x: {"max_rank3_placeholder": tf.maximum(_conv(x), _ph([6, 7, 4]))}),
    (Op.MINIMUM, lambda x: {"min": tf.minimum(x, -0.2)}),
    (Op.NEG, lambda x: {"neg": -_conv(x)}),
    (Op.RELU, lambda x: {"relu": tf.nn.relu(_conv(x))}),
    (Op.RELU6, lambda x: {"relu6": tf.nn.relu6(_conv(x) * 8.0)}),
    (Op.SIGMOID, lambda x: {"sigmoid": tf.sigmoid(_conv(x))}),
    (Op.TANH, lambda x: {"tanh": tf.tanh(x)}),
    (Op.ELU, lambda x: {"elu": tf.nn.elu(_conv(x))}),
    (Op.LEAKY_RELU, lambda x: {"leaky_relu": tf.nn.leaky_relu(_conv(x), alpha=0.1)}),
    (Op.SWISH, lambda x: {"swish": tf.nn.swish(_conv(x))}),
    (Op.IDENTITY, lambda x: {"identity": tf.identity(_conv(x))}),
    (Op.BIAS_ADD, lambda x: {"conv_bias": slim.conv2d(x, 3, [1, 1], activation_fn=None),
                             "relu_bias": tf.nn.bias_add(tf.nn.relu(_conv(x)), tf.get_variable("b", [4]))}),
    (Op.DROPOUT, lambda x: {"dropout": slim.dropout(_conv(x), 0.5, is_training=False)}),
    (Op.BATCH_NORM, lambda x: {
        "conv_bn": slim.conv2d(x, 4, [3, 3], stride=2, normalizer_fn=slim.batch_norm,
                               normalizer_params={"scale": True, "is_training": False}, scope="cbn"),
        "relu_bn": slim.batch_norm(tf.nn.relu(_conv(x)), is_training=False, scope="rbn"),
        "rank2_bn": slim.batch_norm(slim.fully_connected(slim.flatten(x), 6, activation_fn=None),
                                    scale=True, is_training=False, scope="fbn")}),
    (Op.BATCH_NORM, lambda x: {"training_bn": slim.batch_norm(_conv(x), is_training=True, scale=True, scope="tbn"),
                               "training_bn2": slim.batch_norm(slim.flatten(x), is_training=True, scope="tbn2")}),
    (Op.UNIT_NORM, lambda x: {"channels": slim.unit_norm(_conv(x), 3), "height": slim.unit_norm(_conv(x), 1)}),
    (Op.SOFTMAX, lambda x: {"softmax4": tf.nn.softmax(_conv(x)), "softmax2": slim.softmax(slim.flatten(x))}),
    (Op.CONV2D, lambda x: {"same_s2": _conv(x, stride=2), "dilated": _conv(x, rate=2),
                           "valid_5x3": slim.conv2d(x, 3, [5, 3], padding="VALID", activation_fn=None)}),
    (Op.DEPTHWISE_CONV2D, lambda x: {"dm2_s2": slim.separable_conv2d(x, None, [3, 3], depth_multiplier=2, stride=2,
                                                                     activation_fn=None)}),
    (Op.CONV2D_TRANSPOSE, lambda x: {
        "same_3x3_s2": slim.conv2d_transpose(x, 3, [3, 3], stride=2, activation_fn=None),
        "valid_4x4_s2": slim.conv2d_transpose(x, 3, [4, 4], stride=2, padding="VALID", activation_fn=None),
        "same_1x1_s2": slim.conv2d_transpose(x, 2, [1, 1], stride=2, activation_fn=None)}),
    (Op.MATMUL, lambda x: {"fc": slim.fully_connected(slim.flatten(_conv(x)), 6, activation_fn=None)}),
    (Op.MAX_POOL, lambda x: {"max_same": slim.max_pool2d(_conv(x), [3, 3], stride=2, padding="SAME"),
                             "max_input": slim.max_pool2d(x, [2, 2])}),
    (Op.AVG_POOL, lambda x: {"avg_same": slim.avg_pool2d(_conv(x), [3, 3], stride=2, padding="SAME"),
                             "avg_same_s1": slim.avg_pool2d(x, [3, 3], stride=1, padding="SAME")}),
    (Op.REDUCE_MEAN, lambda x: {"hw_keep": tf.reduce_mean(_conv(x), [1, 2], keep_dims=True),
                                "hw": tf.reduce_mean(_conv(x), [1, 2]),
                                "channels": tf.reduce_mean(_conv(x), [3]),
                                "height": tf.reduce_mean(_conv(x), [1])}),
    (Op.RESHAPE, lambda x: {"flatten": slim.flatten(_conv(x)),
                            "to_rank4": _conv(tf.reshape(slim.flatten(x), [2, 7, 6, 5]))}),
    (Op.CONCAT, lambda x: {"channels": tf.concat([_conv(x), x, _conv(x, 2)], 3),
                           "width": tf.concat([_conv(x), _conv(x)], 2),
                           "rank2": tf.concat([slim.flatten(x), slim.flatten(x)], 1)}),
    # made by the horizontal fusion pass only; recorded directly here (the front end has no call for it)
    (Op.CHANNEL_SLICE, lambda x: {"of_conv": x.graph.record(Op.CHANNEL_SLICE, [_conv(x)], {"begin": 1, "size": 2},
                                                            "ChannelSlice"),
                                  "of_input": x.graph.record(Op.CHANNEL_SLICE, [x], {"begin": 3, "size": 2},
                                                             "ChannelSlice")}),
    (Op.PAD, lambda x: {"conv_pad": tf.pad(_conv(x), [[0, 0], [1, 2], [0, 3], [1, 0]]),
                        "input_pad": tf.pad(x, [[0, 0], [2, 2], [1, 1], [0, 0]], constant_values=0.5)}),
    (Op.TILE, lambda x: {"tile": tf.tile(_conv(x), [1, 2, 1, 3])}),
    (Op.ONE_HOT, lambda x: {"one_hot": tf.one_hot(_ph([2, 4], "int32", "labels"), 5, on_value=2.0,
                                                  off_value=-1.0)}),
]


def _record_case(build):
    with st.Graph() as g:
        x = st.placeholder(list(X_SHAPE), name="images")
        outputs = build(x)
    used = {n.name for n in g.nodes if n.op is Op.PLACEHOLDER}
    rng = np.random.default_rng(1)
    feeds = {}
    for n in g.nodes:
        if n.op is Op.PLACEHOLDER and n.name in used:
            if n.dtype == "int32":
                # labels out of range and negative (all off in TF); divisors without zero
                feeds[n.name] = (rng.integers(1, 6, n.shape) * rng.choice([-1, 1], n.shape) if n.name == "b"
                                 else rng.integers(-3, 9, n.shape)).astype(np.int32)
            else:
                feeds[n.name] = rng.uniform(-1, 1, n.shape).astype(np.float32)
    # only the placeholders the outputs read
    from slimtriton.executor import needed_nodes
    needed = needed_nodes([t.node for t in outputs.values()])
    feeds = {k: v for k, v in feeds.items() if id(g.node_by_name(k)) in needed}
    batched = sorted(k for k, v in feeds.items() if v.shape[0] == X_SHAPE[0])
    return g, outputs, feeds, batched


@pytest.mark.parametrize("layout,batch_norm", [("NHWC", "fold"), ("NCHW", "keep")])
@pytest.mark.parametrize("op,build", OP_CASES, ids=[f"{op.name}-{i}" for i, (op, _) in enumerate(OP_CASES)])
def test_op_matches_reference(op, build, layout, batch_norm, tmp_path):
    g, outputs, feeds, batched = _record_case(build)
    assert any(n.op is op for n in g.nodes), f"the case for {op!r} records no {op!r}"
    weights = _random_weights(g, seed=2)
    if layout == "NCHW":
        feeds = {k: v.transpose(0, 3, 1, 2) if v.ndim == 4 else v for k, v in feeds.items()}
        reference_feeds = {k: v.transpose(0, 2, 3, 1) if v.ndim == 4 else v for k, v in feeds.items()}
        path = str(tmp_path / "model.onnx")
        export_onnx(g, outputs, weights, path, layout=layout, batch_norm=batch_norm, dynamic_batch=batched)
        sess = _session(path)
        assert [list(i.shape)[1:] for i in sess.get_inputs() if i.name == "images"] in ([], [[5, 6, 7]])
        want = st.Session(g, weights, backend="reference").run(outputs, reference_feeds)
        got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
        for key, value in want.items():
            expected = value.transpose(0, 3, 1, 2) if value.ndim == 4 else value
            assert_close(got[key], expected, "float32", what=f"onnx {key} ({layout})", tol=ONNX_TOL)
    else:
        _check_against_reference(g, outputs, weights, feeds, tmp_path, layout=layout, batch_norm=batch_norm,
                                 dynamic_batch=batched)


@settings(max_examples=40)
@given(size=hs.tuples(hs.integers(3, 9), hs.integers(3, 9)), kernel=hs.tuples(hs.integers(1, 4), hs.integers(1, 4)),
       stride=hs.integers(1, 3), rate=hs.integers(1, 2), padding=hs.sampled_from(["SAME", "VALID"]),
       pool=hs.sampled_from(["max", "avg"]), depthwise=hs.booleans())
def test_windows_sweep(size, kernel, stride, rate, padding, pool, depthwise):
    """Conv / depthwise conv / pool windows (odd and even sizes, asymmetric SAME padding,
    dilation) against the reference: explicit pads must reproduce TF's SAME cell for cell."""
    assume(rate == 1 or stride == 1)  # TF refuses strides with dilation
    h, w = size
    eff = [(k - 1) * rate + 1 for k in kernel]
    assume(padding == "SAME" or (eff[0] <= h and eff[1] <= w))
    with st.Graph() as g:
        x = st.placeholder([2, h, w, 3], name="images")
        if depthwise:
            net = slim.separable_conv2d(x, None, list(kernel), depth_multiplier=2, stride=stride, rate=rate,
                                        padding=padding, activation_fn=None, scope="conv")
        else:
            net = slim.conv2d(x, 4, list(kernel), stride=stride, rate=rate, padding=padding,
                              activation_fn=None, scope="conv")
        if min(net.shape[1:3]) >= kernel[0] or padding == "SAME":
            pool_fn = slim.max_pool2d if pool == "max" else slim.avg_pool2d
            net = pool_fn(net, [min(kernel[0], net.shape[1]), min(kernel[1], net.shape[2])], stride=stride,
                          padding=padding, scope="pool")
    weights = _random_weights(g, seed=5)
    feeds = {"images": np.random.default_rng(6).uniform(-1, 1, (2, h, w, 3)).astype(np.float32)}
    want = st.Session(g, weights, backend="reference").run(net, feeds)
    got = _session(export_onnx(g, net, weights, check=False)).run(None, feeds)[0]
    assert_close(got, want, "float32", what="window", tol=ONNX_TOL)


def test_floor_division_and_one_hot_edge_values(tmp_path):
    """Integer DIV floors toward -inf (not ONNX's truncation); one_hot gives all off_value for
    negative and out-of-range labels (not ONNX OneHot's wrap-around)."""
    with st.Graph() as g:
        a = st.placeholder([1, 4], "int32", name="a")
        b = st.placeholder([1, 4], "int32", name="b")
        q = tf.divide(a, b)
        hot = tf.one_hot(a, 3, on_value=1.0, off_value=0.0)
    model = export_onnx(g, {"q": q, "hot": hot}, {})
    q_got, hot_got = _session(model).run(None, {"a": np.array([[-7, 7, -1, 5]], np.int32),
                                                "b": np.array([[2, -2, 3, 5]], np.int32)})
    np.testing.assert_array_equal(q_got, [[-4, -4, -1, 1]])
    np.testing.assert_array_equal(hot_got[0, 0], [0, 0, 0])  # label -7
    np.testing.assert_array_equal(hot_got[0, 2], [0, 0, 0])  # label -1 (ONNX OneHot: class 2)


def test_same_padding_is_explicit_and_avg_pool_excludes_padding():
    with st.Graph() as g:
        x = st.placeholder([1, 6, 7, 3], name="images")
        net = slim.conv2d(x, 4, [3, 3], stride=2, scope="conv")
        net = slim.avg_pool2d(net, [3, 3], stride=2, padding="SAME", scope="pool")
    model = export_onnx(g, net, _random_weights(g))
    by_type = {n.op_type: n for n in model.graph.node}
    attrs = {n.op_type: {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in model.graph.node}
    assert "auto_pad" not in attrs["Conv"] and "auto_pad" not in attrs["AveragePool"]
    assert list(attrs["Conv"]["pads"]) == [0, 1, 1, 1]   # TF SAME: the extra cell after (6 rows, 7 cols)
    assert attrs["AveragePool"]["count_include_pad"] == 0
    # TF-Slim names: nodes by op name, initializers by variable name
    assert by_type["Conv"].name == "conv/Conv2D"
    assert {i.name for i in model.graph.initializer} == {"conv/weights", "conv/biases"}
    assert [t.op_type for t in model.graph.node].count("Transpose") == 2  # one in, one out


FOLDED_NAMES = ["conv/BatchNorm/shift:bn_folded", "conv/weights:bn_folded"]


def test_batch_norm_fold_and_keep():
    with st.Graph() as g:
        x = st.placeholder([1, 8, 8, 3], name="images")
        net = slim.conv2d(x, 4, [3, 3], normalizer_fn=slim.batch_norm,
                          normalizer_params={"is_training": False, "scale": True}, scope="conv")
    weights = _random_weights(g)
    folded = export_onnx(g, net, weights, batch_norm="fold")
    kept = export_onnx(g, net, weights, batch_norm="keep")
    assert "BatchNormalization" not in [n.op_type for n in folded.graph.node]
    assert sorted(i.name for i in folded.graph.initializer) == FOLDED_NAMES
    bn = [n for n in kept.graph.node if n.op_type == "BatchNormalization"]
    assert len(bn) == 1 and bn[0].input[3:] == ["conv/BatchNorm/moving_mean", "conv/BatchNorm/moving_variance"]
    feeds = {"images": np.random.default_rng(0).uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)}
    want = st.Session(g, weights, backend="reference").run(net, feeds)
    for model in (folded, kept):
        assert_close(_session(model).run(None, feeds)[0], want, "float32", tol=ONNX_TOL)


def test_a_mean_over_the_batch_has_no_batch_axis():
    with st.Graph() as g:
        x = st.placeholder([2, 3, 4, 5], name="images")
        over_batch = tf.reduce_mean(slim.conv2d(x, 2, [1, 1], scope="conv"), [0])
        everything = tf.reduce_mean(x, [0, 1, 2, 3])
    model = export_onnx(g, {"over_batch": over_batch, "everything": everything}, _random_weights(g))
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [3, 4, 2]
    x3 = np.random.default_rng(0).uniform(-1, 1, (3, 3, 4, 5)).astype(np.float32)
    _, mean_all = _session(model).run(None, {"images": x3})
    assert_close(mean_all, x3.mean(), "float32")


def test_static_batch_is_fixed():
    with st.Graph() as g:
        x = st.placeholder([2, 4, 4, 3], name="images")
        net = slim.flatten(slim.conv2d(x, 2, [1, 1]))
    model = export_onnx(g, net, _random_weights(g), dynamic_batch=False)
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [2, 4, 4, 3]
    dynamic = export_onnx(g, net, _random_weights(g))
    assert dynamic.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert dynamic.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"


# -- refusals -----------------------------------------------------------------------------------
def test_a_reshape_across_the_batch_is_refused_with_a_dynamic_batch():
    with st.Graph() as g:
        x = st.placeholder([2, 3], name="x")
        y = tf.reshape(x, [3, 2], name="mixes_batch")
    with pytest.raises(ValueError, match="mixes_batch.*dynamic batch"):
        export_onnx(g, y, {})
    feeds = {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}
    out = _session(export_onnx(g, y, {}, dynamic_batch=False)).run(None, feeds)
    np.testing.assert_array_equal(out[0], np.arange(6).reshape(3, 2))


def test_fused_ops_dropout_training_and_missing_weights_are_refused():
    with st.Graph() as g:
        x = st.placeholder([1, 4], name="x")
        scale = tf.get_variable("scale", [4])
        shift = tf.get_variable("shift", [4])
        fused = g.tensor(g.add_node(Op.FUSED_ELEMENTWISE, [x.node, scale.node, shift.node], {"act": "relu"}, "fused"))
        dropped = slim.dropout(x, 0.5, is_training=True, scope="drop")
        fc = slim.fully_connected(x, 3, scope="fc")
    with pytest.raises(NotImplementedError, match="fused.*FUSED_ELEMENTWISE.*unfused"):
        export_onnx(g, fused, {"scale": np.ones(4, np.float32), "shift": np.zeros(4, np.float32)})
    with pytest.raises(ValueError, match="drop.*is_training=True"):
        export_onnx(g, dropped, {})
    with pytest.raises(ValueError, match="missing.*fc/biases"):
        export_onnx(g, fc, {"fc/weights": np.ones((4, 3), np.float32)})
    with pytest.raises(ValueError, match="layout"):
        export_onnx(g, x, {}, layout="HWC")


# -- every net of the factory -------------------------------------------------------------------
def _mid_end_point(end_points) -> str:
    keys = [k for k, v in end_points.items() if len(v.shape) == 4]
    return keys[len(keys) // 2]


@pytest.mark.parametrize("name", sorted(nets_factory.networks_map))
def test_factory_net_matches_reference_with_a_dynamic_batch(name, tmp_path):
    """Exported at batch 1 with a symbolic batch: batch 1 against the reference (logits and a
    rank-4 end point in the middle of the net), batch 2 row by row against batch 1."""
    size, kwargs, _, _ = NET_CONFIGS[name]
    fn = nets_factory.get_network_fn(name, num_classes=None)
    with st.Graph() as g:
        images = st.placeholder([1, size, size, 3], name="images")
        logits, end_points = fn(images, **kwargs)
    mid = _mid_end_point(end_points)
    weights = _random_weights(g, seed=3)
    x = np.random.default_rng(7).uniform(-1, 1, images.shape).astype(np.float32)
    _, sess = _check_against_reference(g, {"logits": logits, mid: end_points[mid]}, weights, {"images": x}, tmp_path)
    logits_value = sess.run(["logits"], {"images": x})[0]
    assert 1e-2 < float(logits_value.std()) < 1e4, f"{name}: degenerate logits (std {logits_value.std():.3g})"


@pytest.mark.parametrize("name", ["resnet_v2_50", "inception_resnet_v1", "mobilenet_v1_025"])
def test_net_with_nchw_layout_and_kept_batch_norm(name, tmp_path):
    size, kwargs, _, _ = NET_CONFIGS[name]
    fn = nets_factory.get_network_fn(name, num_classes=None)
    with st.Graph() as g:
        images = st.placeholder([1, size, size, 3], name="images")
        logits, end_points = fn(images, **kwargs)
    weights = _random_weights(g, seed=4)
    x = np.random.default_rng(8).uniform(-1, 1, images.shape).astype(np.float32)
    path = str(tmp_path / "nchw.onnx")
    model = export_onnx(g, logits, weights, path, layout="NCHW", batch_norm="keep")
    assert any(n.op_type == "BatchNormalization" for n in model.graph.node)
    got = _session(path, all_optimizations=True).run(None, {"images": x.transpose(0, 3, 1, 2)})[0]
    want = st.Session(g, weights, backend="reference").run(logits, {images: x})
    assert_close(got, want, "float32", what=f"{name} NCHW, BN kept", tol=ONNX_TOL)


# -- a real TF-Slim checkpoint, without TensorFlow ----------------------------------------------
GRAPH_FILE = textwrap.dedent("""
    import slimtriton as st
    from slimtriton import slim
    from slimtriton.nets import resnet_utils, resnet_v2

    def build():
        with st.Graph() as g:
            images = st.placeholder({shape}, name="images")
            with slim.arg_scope(resnet_utils.resnet_arg_scope()):
                net, end_points = resnet_v2.resnet_v2(
                    images, [resnet_v2.resnet_v2_block("block1", base_depth=4, num_units=2, stride=2),
                             resnet_v2.resnet_v2_block("block2", base_depth=8, num_units=2, stride=1)],
                    num_classes=10, is_training=False, spatial_squeeze=False, scope="resnet_v2_tiny")
        return g, {{"logits": net}}
""")


def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "slimtriton.cli", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, env={**__import__("os").environ, "PYTHONPATH": str(REPO_ROOT)})


def test_cli_exports_a_tf_checkpoint_that_reproduces_tf_slim(tmp_path):
    """`slimtriton export FILE.py:FN --weights TF_CHECKPOINT`: ONNX Runtime gives TF-Slim's own
    output for the real checkpoint (fixture resnet_v2_tiny, written by TensorFlow)."""
    data = np.load(FIXTURES / "resnet_v2_tiny.npz")
    source = tmp_path / "tiny.py"
    source.write_text(GRAPH_FILE.format(shape=list(data["input"].shape)))
    out = tmp_path / "tiny.onnx"
    result = _run_cli("export", f"{source}:build", "--weights",
                      str(FIXTURES / "tf_checkpoint" / "resnet_v2_tiny.ckpt"), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "inputs: images[batch," in result.stdout
    sess = _session(str(out), all_optimizations=True)
    got = sess.run(None, {"images": data["input"].astype(np.float32)})[0]
    assert_close(got, data["expected"], "float32", what="resnet_v2_tiny ONNX vs TF-Slim", tol=ONNX_TOL)
    names = {i.name for i in onnx.load(str(out), load_external_data=False).graph.initializer}
    assert "resnet_v2_tiny/conv1/weights" in names  # TF-Slim names (conv1 has a bias: not folded)


def test_cli_exports_a_factory_net(tmp_path):
    out = tmp_path / "m.onnx"
    result = _run_cli("export", "mobilenet_v1_025", "--image-size", "32", "--batch-norm", "keep", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "outputs: predictions[batch, 1001]" in result.stdout
    onnx.checker.check_model(str(out), full_check=True)
    assert "weights: RANDOM" in result.stdout
    logits = _run_cli("export", "mobilenet_v1_025", "--image-size", "32", "--output", "logits", "--out", str(out))
    assert logits.returncode == 0 and "outputs: logits[batch, 1001]" in logits.stdout, logits.stderr
    bad = _run_cli("export", "no_such_net", "-o", str(out))
    assert bad.returncode == 2 and "unknown network 'no_such_net'" in bad.stderr
    other = _run_cli("export", "mobilenet_v1_025", "--image-size", "32", "-o", str(out), "--weights",
                     str(FIXTURES / "tf_checkpoint" / "resnet_v2_tiny.ckpt"))
    assert other.returncode == 2 and "are these the weights of another net?" in other.stderr
    no_dir = _run_cli("export", "mobilenet_v1_025", "-o", str(tmp_path / "missing" / "m.onnx"))
    assert no_dir.returncode == 2 and "does not exist" in no_dir.stderr
