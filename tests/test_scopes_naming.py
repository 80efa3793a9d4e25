"""Variable scopes, name scopes, default-name uniquifying, reuse rules, repeat/stack names,
end points, collections and initializers/regularizers (TF1 / TF-Slim rules)."""
from __future__ import annotations

import numpy as np
import pytest

import slimtriton as st
from slimtriton import slim, tf


@pytest.fixture
def g():
    graph = st.Graph()
    with graph:
        yield graph


def test_default_names_uniquified_per_enclosing_scope(g):
    x = st.placeholder([1, 4, 4, 2])
    slim.conv2d(x, 2, 1)
    slim.conv2d(x, 2, 1)
    with tf.variable_scope("block"):
        slim.conv2d(x, 2, 1)
        slim.fully_connected(x, 3)
        slim.fully_connected(x, 3)
    with tf.variable_scope("block", reuse=True):  # subscope counts restart: same names, reused
        slim.conv2d(x, 2, 1)
        slim.fully_connected(x, 3)
    assert [v for v in g.variables if v.endswith("weights")] == [
        "Conv/weights", "Conv_1/weights", "block/Conv/weights", "block/fully_connected/weights",
        "block/fully_connected_1/weights"]
    # the reused call records new ops under a uniquified name scope, reading the same variables
    conv = g.node_by_name("block_1/Conv/Conv2D")
    assert conv.inputs[1].name == "block/Conv/weights"


def test_default_scope_names_of_every_layer(g):
    x = st.placeholder([2, 6, 6, 4])
    outs = [slim.conv2d_transpose(x, 2, 3), slim.conv2d_in_plane(x, 3), slim.separable_conv2d(x, 2, 3),
            slim.batch_norm(x), slim.bias_add(x), slim.dropout(x), slim.unit_norm(x, 3), slim.softmax(x),
            slim.max_pool2d(x, 2), slim.avg_pool2d(x, 2), slim.flatten(x)]
    scopes = [o.op_name.split("/")[0] for o in outs]
    assert scopes == ["Conv2d_transpose", "ConvInPlane", "SeparableConv2d", "BatchNorm", "BiasAdd", "Dropout",
                      "UnitNorm", "softmax", "MaxPool2D", "AvgPool2D", "Flatten"]
    labels = st.placeholder([3], dtype="int32", name="labels")
    assert slim.one_hot_encoding(labels, 5).op_name.startswith("OneHotEncoding/")


def test_op_names_like_tf(g):
    x = st.placeholder([1, 5, 5, 3], name="images")
    net = slim.conv2d(x, 4, 3, scope="conv")
    assert [n.name for n in g.nodes if n.op is not st.Op.VARIABLE] == [
        "images", "conv/Conv2D", "conv/BiasAdd", "conv/Relu"]
    assert net.name == "conv/Relu:0"
    bn = slim.conv2d(x, 4, 3, normalizer_fn=slim.batch_norm, activation_fn=tf.nn.relu6, scope="cbn")
    assert bn.op_name == "cbn/Relu6"
    assert g.node_by_name("cbn/BatchNorm/FusedBatchNormV3").op is st.Op.BATCH_NORM
    assert "cbn/biases" not in g.variables  # a normalizer replaces the biases


def test_reuse_true_needs_named_scope(g):
    x = st.placeholder([1, 4, 4, 2])
    with pytest.raises(ValueError, match="reuse=True cannot be used without a name_or_scope"):
        slim.conv2d(x, 2, 1, reuse=True)
    with pytest.raises(ValueError, match="cannot be used without a name_or_scope"):
        with tf.variable_scope(None, default_name="x", reuse=tf.AUTO_REUSE):
            pass


def test_creating_existing_variable_is_an_error_naming_it(g):
    x = st.placeholder([1, 4, 4, 2])
    slim.conv2d(x, 2, 1, scope="conv")
    with pytest.raises(ValueError, match="Variable conv/weights already exists, disallowed"):
        slim.conv2d(x, 2, 1, scope="conv")


def test_reusing_missing_variable_is_an_error(g):
    x = st.placeholder([1, 4, 4, 2])
    with pytest.raises(ValueError, match="Variable nothere/weights does not exist"):
        slim.conv2d(x, 2, 1, scope="nothere", reuse=True)


def test_reuse_with_other_shape_is_an_error(g):
    x = st.placeholder([1, 4, 4, 2])
    slim.conv2d(x, 2, 1, scope="conv")
    with pytest.raises(ValueError, match=r"Trying to share variable conv/weights, but specified shape \[1, 1, 2, 5\]"):
        slim.conv2d(x, 5, 1, scope="conv", reuse=True)


def test_layer_reuse_shares_variables(g):
    x = st.placeholder([1, 4, 4, 2])
    a = slim.conv2d(x, 2, 1, scope="conv")
    b = slim.conv2d(x, 2, 1, scope="conv", reuse=True)
    assert len(g.variables) == 2
    assert a.op_name == "conv/Relu" and b.op_name == "conv_1/Relu"


def test_auto_reuse_and_inherited_reuse(g):
    with tf.variable_scope("s", reuse=tf.AUTO_REUSE):
        v1 = tf.get_variable("v", [3])
        v2 = tf.get_variable("v", [3])
    assert v1.node is v2.node
    with tf.variable_scope("outer", reuse=True):
        with tf.variable_scope("inner") as sc:
            assert sc.reuse is True
    with tf.variable_scope("t") as sc:
        tf.get_variable("w", [2])
        sc.reuse_variables()
        assert tf.get_variable("w", [2]).node is g.variables["t/w"].node


def test_reenter_scope_object_and_original_name_scope(g):
    with tf.variable_scope("net") as sc:
        assert sc.name == "net" and sc.original_name_scope == "net/"
        tf.get_variable("a", [1])
    with tf.variable_scope(sc, reuse=True):
        assert tf.get_variable("a", [1]).node is g.variables["net/a"].node
    with tf.variable_scope(sc):
        tf.get_variable("b", [1])
    assert list(g.variables) == ["net/a", "net/b"]


def test_name_scope_affects_ops_not_variables(g):
    x = st.placeholder([1, 4, 4, 2])
    with tf.name_scope("ns"):
        v = tf.get_variable("v", [2])
        y = tf.nn.relu(x)
    assert v.op_name == "v" and y.op_name == "ns/Relu"
    with tf.name_scope("ns"):
        assert tf.nn.relu(x).op_name == "ns_1/Relu"


def test_repeat_and_stack_scope_names(g):
    x = st.placeholder([1, 6, 6, 3])
    slim.repeat(x, 3, slim.conv2d, 4, [3, 3], scope="conv3")
    slim.repeat(x, 2, slim.conv2d, 4, [3, 3])
    slim.stack(st.placeholder([2, 6]), slim.fully_connected, [32, 64], scope="fc")
    slim.stack(x, slim.conv2d, [(4, 1), (6, 1)])
    weights = [v for v in g.variables if v.endswith("/weights")]
    assert weights == ["conv3/conv3_1/weights", "conv3/conv3_2/weights", "conv3/conv3_3/weights",
                       "Repeat/convolution2d_1/weights", "Repeat/convolution2d_2/weights",
                       "fc/fc_1/weights", "fc/fc_2/weights",
                       "Stack/convolution2d_1/weights", "Stack/convolution2d_2/weights"]
    # a functools.partial layer is named after its function
    slim.repeat(st.placeholder([2, 4]), 2, slim.relu, 4)
    assert "Repeat_1/fully_connected_1/weights" in g.variables  # the second unnamed repeat


def test_end_points_via_outputs_collections(g):
    x = st.placeholder([1, 8, 8, 3])
    with tf.variable_scope("net") as sc:
        coll = sc.original_name_scope + "_end_points"
        with slim.arg_scope([slim.conv2d, slim.max_pool2d], outputs_collections=coll):
            net = slim.conv2d(x, 4, 3, scope="conv1")
            net = slim.max_pool2d(net, 2, scope="pool1")
            net = slim.conv2d(net, 4, 3)
    eps = slim.utils.convert_collection_to_dict(coll)
    assert list(eps) == ["net/conv1", "net/pool1", "net/Conv"]
    assert eps["net/pool1"].op_name == "net/pool1/MaxPool"
    assert slim.utils.get_tensor_aliases(net) == ["net/Conv"]
    assert slim.utils.get_tensor_aliases(x) == [x.op_name]
    eps = slim.utils.convert_collection_to_dict(coll, clear_collection=True)
    assert len(eps) == 3 and g.get_collection(coll) == []


def test_collections_and_graph_level_getters(g):
    x = st.placeholder([2, 4, 4, 3])
    slim.conv2d(x, 4, 3, normalizer_fn=slim.batch_norm, normalizer_params={"scale": True}, scope="c1",
                variables_collections={"weights": ["my_weights"]})
    slim.fully_connected(slim.flatten(x), 5, scope="fc", trainable=False)
    v = slim.variable("plain", shape=[2])
    names = lambda specs: [s.name for s in specs]  # noqa: E731
    assert names(slim.get_variables()) == list(g.variables)
    assert names(slim.get_model_variables()) == [n for n in g.variables if n != "plain"]
    assert names(slim.get_trainable_variables()) == ["c1/weights", "c1/BatchNorm/gamma", "c1/BatchNorm/beta", "plain"]
    assert names(slim.get_variables("c1/BatchNorm")) == [
        "c1/BatchNorm/gamma", "c1/BatchNorm/beta", "c1/BatchNorm/moving_mean", "c1/BatchNorm/moving_variance"]
    assert names(slim.get_variables(suffix="weights")) == ["c1/weights", "fc/weights"]
    assert names(slim.get_variables_by_name("beta")) == ["c1/BatchNorm/beta"]
    assert names(g.get_collection("my_weights")) == ["c1/weights"]
    assert names(slim.get_variables_to_restore(exclude=["fc"])) == [n for n in g.variables if not n.startswith("fc")]
    assert slim.get_unique_variable("fc/biases").shape == (5,)
    spec = g.variables["c1/BatchNorm/moving_mean"]
    assert not spec.trainable and "model_variables" in spec.collections
    assert v.op_name == "plain" and "model_variables" not in g.variables["plain"].collections


def test_scope_initializer_and_regularizer_apply_to_get_variable(g):
    with tf.variable_scope("s", initializer=tf.constant_initializer(3.0), regularizer=slim.l2_regularizer(0.5)):
        tf.get_variable("v", [2, 2])
    spec = g.variables["s/v"]
    np.testing.assert_array_equal(spec.initializer(spec.shape, spec.dtype, np.random.default_rng(0)), 3.0)
    assert spec.regularizer(np.ones((2, 2))) == pytest.approx(0.5 * 4 / 2)
    assert slim.regularization_losses(g, {"s/v": np.full((2, 2), 2.0)}) == {"s/v": pytest.approx(0.5 * 16 / 2)}


def test_initializer_formulas():
    rng = np.random.default_rng(0)
    shape = (3, 3, 64, 128)
    fan_in, fan_out = 3 * 3 * 64, 3 * 3 * 128
    w = slim.xavier_initializer()(shape, "float32", rng)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    assert w.dtype == np.float32 and np.abs(w).max() <= limit and np.abs(w).max() > 0.98 * limit
    w = slim.variance_scaling_initializer()(shape, "float32", rng)   # factor 2, FAN_IN, truncated normal
    stddev = np.sqrt(1.3 * 2.0 / fan_in)
    assert np.abs(w).max() <= 2 * stddev + 1e-7
    assert w.std() == pytest.approx(stddev * 0.87962566, rel=0.02)
    w = slim.variance_scaling_initializer(factor=1.0, mode="FAN_OUT", uniform=True)(shape, "float32", rng)
    assert np.abs(w).max() <= np.sqrt(3.0 / fan_out)
    w = tf.variance_scaling_initializer(scale=2.0)(shape, "float32", rng)  # core TF: divides by .8796
    assert w.std() == pytest.approx(np.sqrt(2.0 / fan_in), rel=0.02)
    w = tf.truncated_normal_initializer(mean=1.0, stddev=0.5)((20000,), "float32", rng)
    assert w.min() >= 0.0 and w.max() <= 2.0 and w.mean() == pytest.approx(1.0, abs=0.02)
    w = tf.random_uniform_initializer(-2, 2)((10000,), "float32", rng)
    assert w.min() >= -2 and w.max() <= 2
    w = tf.random_normal_initializer(0.0, 3.0)((20000,), "float32", rng)
    assert w.std() == pytest.approx(3.0, rel=0.03) and np.abs(w).max() > 6.0  # not truncated
    np.testing.assert_array_equal(tf.zeros_initializer()((2,), "float32", rng), 0.0)
    np.testing.assert_array_equal(slim.ones_initializer()((2,), "float32", rng), 1.0)
    np.testing.assert_array_equal(tf.constant_initializer([1, 2, 3, 4])((2, 2), "float32", rng), [[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="does not fit"):
        tf.constant_initializer([1, 2, 3])((2, 2), "float32", rng)
    with pytest.raises(TypeError, match="Unknown mode"):
        slim.variance_scaling_initializer(mode="fan_in")
    a = slim.xavier_initializer(seed=7)((4,), "float32", np.random.default_rng(1))
    b = slim.xavier_initializer(seed=7)((4,), "float32", np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)  # an explicit seed fixes the values


def test_regularizer_formulas():
    w = np.array([[1.0, -2.0], [3.0, -4.0]])
    assert slim.l1_regularizer(0.1)(w) == pytest.approx(1.0)
    assert slim.l2_regularizer(0.1)(w) == pytest.approx(0.1 * 30 / 2)
    assert slim.l1_l2_regularizer(0.1, 0.2)(w) == pytest.approx(1.0 + 0.2 * 15)
    assert slim.sum_regularizer([slim.l1_regularizer(1.0), None])(w) == pytest.approx(10.0)
    assert slim.sum_regularizer([None]) is None
    assert slim.l2_regularizer(0.0)(w) is None
    with pytest.raises(ValueError, match="integer"):
        slim.l2_regularizer(1)
    with pytest.raises(ValueError, match="less than 0"):
        slim.l1_regularizer(-0.1)


def test_utils():
    u = slim.utils
    assert u.two_element_tuple(3) == (3, 3) and u.two_element_tuple([1, 2]) == (1, 2)
    with pytest.raises(ValueError):
        u.two_element_tuple([1, 2, 3])
    assert u.n_positive_integers(2, 4) == (4, 4) and u.n_positive_integers(3, [1, 2, 3]) == (1, 2, 3)
    with pytest.raises(ValueError):
        u.n_positive_integers(2, [1, 0])
    assert u.last_dimension(st.TensorShape((2, 3, 7)), min_rank=3) == 7
    with pytest.raises(ValueError, match="at least 4"):
        u.last_dimension(st.TensorShape((2, 3)), min_rank=4)
    assert u.get_variable_collections({"weights": ["a"]}, "weights") == ["a"]
    assert u.get_variable_collections(["b"], "biases") == ["b"]
