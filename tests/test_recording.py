"""What the front end records: separate nodes per slim call, TF op names, explicit padding,
attributes, and `print(g)` (one line per node)."""
from __future__ import annotations

import numpy as np
import pytest

import slimtriton as st
from slimtriton import slim, tf
from slimtriton.ir import Op
from tests.helpers import assert_close


def ops_of(g, prefix):
    return [n.op for n in g.nodes if n.name.startswith(prefix) and n.op is not Op.VARIABLE]


def test_print_graph_one_line_per_node():
    with st.Graph() as g:
        x = st.placeholder([1, 224, 224, 3], name="images")
        with tf.variable_scope("net"):
            net = slim.conv2d(x, 8, [7, 7], stride=2, scope="conv1")
            net = slim.max_pool2d(net, [3, 3], stride=2, padding="SAME", scope="pool1")
    lines = str(g).splitlines()
    assert len(lines) == len([n for n in g.nodes if n.op is not Op.VARIABLE]) == 5
    conv = next(line for line in lines if line.startswith("net/conv1/Conv2D"))
    for fragment in ("conv2d(images, net/conv1/weights)", "padding=((2,3),(2,3))", "strides=(2,2)",
                     "dilations=(1,1)", "-> float32[1, 112, 112, 8]"):
        assert fragment in conv
    pool = next(line for line in lines if line.startswith("net/pool1/MaxPool"))
    assert "ksize=(3,3)" in pool and "padding=((0,1),(0,1))" in pool and "[1, 56, 56, 8]" in pool


def test_conv_records_separate_nodes_and_explicit_padding():
    with st.Graph() as g:
        x = st.placeholder([2, 8, 8, 4])
        slim.conv2d(x, 6, [3, 3], stride=2, scope="c")
        slim.conv2d(x, 6, [1, 7], scope="k17")
        slim.conv2d(x, 6, 3, rate=2, scope="r")
    assert ops_of(g, "c/") == [Op.CONV2D, Op.BIAS_ADD, Op.RELU]
    assert g.node_by_name("c/Conv2D").attrs["padding"] == ((0, 1), (0, 1))  # SAME, even input, odd pixel after
    assert g.node_by_name("k17/Conv2D").attrs["padding"] == ((0, 0), (3, 3))
    r = g.node_by_name("r/Conv2D")
    assert r.attrs["dilations"] == (2, 2) and r.attrs["padding"] == ((2, 2), (2, 2))


def test_conv2d_in_plane_is_tile_then_depthwise():
    with st.Graph() as g:
        x = st.placeholder([2, 6, 6, 5])
        out = slim.conv2d_in_plane(x, [3, 3], scope="ip")
    assert ops_of(g, "ip/") == [Op.TILE, Op.DEPTHWISE_CONV2D, Op.BIAS_ADD, Op.RELU]
    tile = g.node_by_name("ip/Tile")
    assert tile.attrs["multiples"] == (1, 1, 5, 1) and tile.inputs[0].name == "ip/weights"
    assert g.variables["ip/weights"].shape == (3, 3, 1, 1) and g.variables["ip/biases"].shape == (5,)
    assert out.shape == (2, 6, 6, 5)


@pytest.mark.parametrize("hw, k, s, padding, out_hw, pad_before", [
    (5, 3, 2, "SAME", 10, 0),
    (5, 4, 2, "SAME", 10, 1),
    (5, 4, 2, "VALID", 12, 0),
    (5, 1, 3, "VALID", 15, 0),
    (7, 5, 1, "SAME", 7, 2),
])
def test_conv2d_transpose_attrs(hw, k, s, padding, out_hw, pad_before):
    with st.Graph() as g:
        x = st.placeholder([1, hw, hw, 4])
        out = slim.conv2d_transpose(x, 3, k, stride=s, padding=padding, scope="d")
    node = g.node_by_name("d/conv2d_transpose")
    assert node.op is Op.CONV2D_TRANSPOSE
    assert node.attrs["output_hw"] == (out_hw, out_hw) and node.attrs["pad_before"] == (pad_before, pad_before)
    assert out.shape == (1, out_hw, out_hw, 3) and g.variables["d/weights"].shape == (k, k, 3, 4)


def test_separable_conv2d_nodes():
    with st.Graph() as g:
        x = st.placeholder([1, 7, 7, 3])
        slim.separable_conv2d(x, 6, 3, depth_multiplier=2, scope="sep")
        dw = slim.separable_conv2d(x, None, 3, depth_multiplier=3, stride=2, scope="dw",
                                   normalizer_fn=slim.batch_norm)
    assert ops_of(g, "sep/") == [Op.DEPTHWISE_CONV2D, Op.CONV2D, Op.BIAS_ADD, Op.RELU]
    assert list(g.variables)[:3] == ["sep/depthwise_weights", "sep/pointwise_weights", "sep/biases"]
    assert ops_of(g, "dw/") == [Op.DEPTHWISE_CONV2D, Op.BATCH_NORM, Op.RELU]
    assert dw.shape == (1, 4, 4, 9) and "dw/biases" not in g.variables


def test_fully_connected_contracts_last_axis_of_rank3():
    with st.Graph() as g:
        x = st.placeholder([2, 5, 6], name="x")
        out = slim.fully_connected(x, 8, activation_fn=None, scope="fc")
    assert out.shape == (2, 5, 8) and g.variables["fc/weights"].shape == (6, 8)
    assert ops_of(g, "fc/") == [Op.MATMUL, Op.BIAS_ADD]
    rng = np.random.default_rng(0)
    xv = rng.standard_normal((2, 5, 6)).astype(np.float32)
    w = {"fc/weights": rng.standard_normal((6, 8)).astype(np.float32),
         "fc/biases": rng.standard_normal(8).astype(np.float32)}
    from slimtriton.session import Session
    got = Session(g, w).run(out, {x: xv})
    assert_close(got, xv @ w["fc/weights"] + w["fc/biases"])


def test_batch_norm_attrs_and_training_statistics():
    with st.Graph() as g:
        x = st.placeholder([4, 3, 3, 5], name="x")
        train = slim.batch_norm(x, scale=True, scope="bn")            # TF-Slim default: is_training=True
        infer = slim.batch_norm(x, is_training=False, epsilon=1e-5, scope="bn2")
        nofuse = slim.batch_norm(x, is_training=False, epsilon=1e-5, fused=False, scope="bn3")
    assert dict(train.node.attrs) == {"center": True, "epsilon": 0.001, "is_training": True, "scale": True}
    # TF's fused kernel raises epsilon below 1.001e-5 to 1.001e-5 (cuDNN); fused=False keeps it
    assert infer.node.attrs["epsilon"] == pytest.approx(1.001e-5)
    assert nofuse.node.attrs["epsilon"] == 1e-5
    assert [v for v in g.variables if v.startswith("bn2/")] == ["bn2/beta", "bn2/moving_mean", "bn2/moving_variance"]
    rng = np.random.default_rng(1)
    xv = rng.standard_normal((4, 3, 3, 5)) * 3 + 1
    weights = st.init_weights(g, seed=0)
    weights.update({"bn/gamma": rng.random(5) + 0.5, "bn/beta": rng.standard_normal(5),
                    "bn/moving_mean": rng.standard_normal(5), "bn/moving_variance": rng.random(5) + 0.5})
    from slimtriton.session import Session
    got = Session(g, weights).run(train, {x: xv.astype(np.float32)})
    mean, var = xv.mean(axis=(0, 1, 2)), xv.var(axis=(0, 1, 2))
    expected = (xv - mean) / np.sqrt(var + 0.001) * weights["bn/gamma"] + weights["bn/beta"]
    assert_close(got, expected)


def test_dropout_attrs_and_inference_identity():
    with st.Graph() as g:
        x = st.placeholder([2, 4], name="x")
        train = slim.dropout(x, 0.8, scope="d1")
        infer = slim.dropout(x, is_training=False, scope="d2")
    assert dict(train.node.attrs) == {"is_training": True, "keep_prob": 0.8}
    assert dict(infer.node.attrs) == {"is_training": False, "keep_prob": 0.5}
    from slimtriton.session import Session
    xv = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_array_equal(Session(g, {}).run(infer, {x: xv}), xv)


def test_activation_fn_can_be_any_tensor_function():
    def leaky(t):
        return tf.maximum(t, t * 0.2)

    with st.Graph() as g:
        x = st.placeholder([1, 4, 4, 2])
        out = slim.conv2d(x, 3, 1, activation_fn=leaky, scope="c")
        out2 = slim.conv2d(x, 3, 1, activation_fn=slim.softmax, scope="s")
    assert ops_of(g, "c/") == [Op.CONV2D, Op.BIAS_ADD, Op.CONSTANT, Op.MUL, Op.MAXIMUM]
    assert out.op_name == "c/Maximum"
    assert out2.op_name == "s/softmax/Softmax"


def test_no_biases_and_trainable_flags():
    with st.Graph() as g:
        x = st.placeholder([1, 4, 4, 2])
        slim.conv2d(x, 3, 1, biases_initializer=None, trainable=False, scope="c")
    assert list(g.variables) == ["c/weights"]
    assert ops_of(g, "c/") == [Op.CONV2D, Op.RELU]
    assert not g.variables["c/weights"].trainable


def test_tf_tensor_ops():
    with st.Graph() as g:
        x = st.placeholder([2, 5, 5, 4], name="x")
        p = tf.pad(x, [[0, 0], [1, 2], [3, 0], [0, 0]])
        m = tf.reduce_mean(x, [1, 2], keep_dims=True, name="pool5")
        s = tf.squeeze(m, [1, 2], name="SpatialSqueeze")
        c = tf.concat([x, x * 2.0], axis=3)
        r = tf.reshape(x, [2, -1])
        i = tf.identity(x)
        sm = tf.nn.softmax(s)
    assert p.shape == (2, 8, 8, 4) and p.node.attrs["paddings"] == ((0, 0), (1, 2), (3, 0), (0, 0))
    assert m.op_name == "pool5" and m.shape == (2, 1, 1, 4) and m.node.attrs["axes"] == (1, 2)
    assert s.op_name == "SpatialSqueeze" and s.shape == (2, 4) and s.node.op is Op.RESHAPE
    assert c.shape == (2, 5, 5, 8) and c.op_name == "concat"
    assert r.shape == (2, 100) and i.node.op is Op.IDENTITY and sm.node.attrs["axis"] == 1
    assert tf.float32 == "float32" and tf.GraphKeys.UPDATE_OPS == "update_ops"


def test_model_variable_and_get_variable_nodes():
    with st.Graph() as g:
        w = slim.model_variable("w", shape=[2, 3], initializer=tf.truncated_normal_initializer(stddev=0.1),
                                regularizer=slim.l2_regularizer(0.01))
        v = tf.get_variable("v", [4])
    spec = g.variables["w"]
    assert w.node is spec.node and w.node.op is Op.VARIABLE
    assert dict(w.node.attrs) == {"dtype": "float32", "shape": (2, 3), "var": "w"}
    assert spec.collections == ("variables", "model_variables", "trainable_variables")
    assert g.variables["v"].collections == ("variables", "trainable_variables")
    assert v.op_name == "v"
    st.ir.verify(g.nodes)
