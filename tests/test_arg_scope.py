"""arg_scope semantics (TF-Slim's tf_slim/ops/arg_scope.py)."""
from __future__ import annotations

import pytest

import slimtriton as st
from slimtriton import slim, tf


@slim.add_arg_scope
def op_a(x, a=1, b=2, c=3):
    return (x, a, b, c)


@slim.add_arg_scope
def op_b(x, a=10, b=20):
    return (x, a, b)


def undecorated(x, a=1):
    return (x, a)


def test_scope_sets_defaults_and_call_overrides():
    assert op_a(0) == (0, 1, 2, 3)
    with slim.arg_scope([op_a], a=5, b=6):
        assert op_a(0) == (0, 5, 6, 3)
        assert op_a(0, b=7) == (0, 5, 7, 3)  # explicit keyword wins
        assert op_b(0) == (0, 10, 20)          # not listed: untouched
    assert op_a(0) == (0, 1, 2, 3)             # popped on exit


def test_nesting_inner_overrides_outer_and_merges():
    with slim.arg_scope([op_a, op_b], a=100):
        with slim.arg_scope([op_a], b=200):
            assert op_a(0) == (0, 100, 200, 3)
            assert op_b(0) == (0, 100, 20)
            with slim.arg_scope([op_a], a=-1):
                assert op_a(0) == (0, -1, 200, 3)
            assert op_a(0) == (0, 100, 200, 3)
        assert op_a(0) == (0, 100, 2, 3)


def test_reenter_saved_scope_dict():
    with slim.arg_scope([op_a], a=9) as sc:
        with slim.arg_scope([op_b], b=8):
            pass
    assert op_a(0) == (0, 1, 2, 3)
    with slim.arg_scope(sc):
        assert op_a(0) == (0, 9, 2, 3)
        assert op_b(0) == (0, 10, 20)
    with pytest.raises(ValueError, match="kwargs must be empty"):
        with slim.arg_scope(sc, a=1):
            pass


def test_current_arg_scope_and_keys():
    with slim.arg_scope([op_a], c=4):
        current = slim.current_arg_scope()
        key = slim.arg_scope_func_key(op_a)
        assert current[key] == {"c": 4}


def test_undecorated_op_is_a_value_error():
    with pytest.raises(ValueError, match="undecorated is not decorated with @add_arg_scope"):
        with slim.arg_scope([undecorated], a=2):
            pass
    with pytest.raises(ValueError, match="not decorated"):
        with slim.arg_scope([slim.relu], activation_fn=None):  # a functools.partial, as in TF-Slim
            pass


def test_not_a_list_is_a_type_error():
    with pytest.raises(TypeError, match="list/tuple"):
        with slim.arg_scope(op_a, a=1):
            pass


def test_positional_argument_also_in_scope_is_multiple_values():
    with slim.arg_scope([op_a], a=5):
        with pytest.raises(TypeError, match="multiple values for argument 'a'"):
            op_a(0, 1)


def test_unknown_scoped_keyword_names_the_scope():
    with slim.arg_scope([op_a], zzz=1):
        with pytest.raises(TypeError, match="unexpected keyword argument 'zzz'.*arg_scope"):
            op_a(0)


def test_arg_scoped_arguments():
    assert slim.arg_scoped_arguments(op_a) == ("a", "b", "c")
    assert "padding" in slim.arg_scoped_arguments(slim.conv2d)
    assert "is_training" in slim.arg_scoped_arguments(slim.batch_norm)
    with pytest.raises(ValueError):
        slim.arg_scoped_arguments(undecorated)


def test_every_layer_is_decorated_and_keeps_its_tf_name():
    for fn, name in [(slim.conv2d, "convolution2d"), (slim.convolution, "convolution"),
                     (slim.conv2d_transpose, "convolution2d_transpose"),
                     (slim.conv2d_in_plane, "convolution2d_in_plane"),
                     (slim.separable_conv2d, "separable_convolution2d"), (slim.fully_connected, "fully_connected"),
                     (slim.batch_norm, "batch_norm"), (slim.bias_add, "bias_add"), (slim.max_pool2d, "max_pool2d"),
                     (slim.avg_pool2d, "avg_pool2d"), (slim.dropout, "dropout"), (slim.flatten, "flatten"),
                     (slim.one_hot_encoding, "one_hot_encoding"), (slim.unit_norm, "unit_norm"),
                     (slim.softmax, "softmax"), (slim.model_variable, "model_variable"),
                     (slim.variable, "variable")]:
        assert slim.has_arg_scope(fn), name
        assert fn.__name__ == name
    assert not slim.has_arg_scope(slim.repeat) and not slim.has_arg_scope(slim.stack)


def test_conv2d_and_convolution_are_separate_keys():
    with st.Graph() as g:
        x = st.placeholder([1, 6, 6, 2])
        with slim.arg_scope([slim.conv2d], padding="VALID", activation_fn=None):
            a = slim.conv2d(x, 3, 3, scope="a")
            b = slim.convolution(x, 3, 3, scope="b")
    assert a.shape == (1, 4, 4, 3)   # VALID from the scope
    assert b.shape == (1, 6, 6, 3)   # convolution keeps SAME
    ops = [n.op for n in g.nodes if n.name.startswith("b/")]
    assert st.Op.RELU in ops and st.Op.RELU not in [n.op for n in g.nodes if n.name.startswith("a/")]


def test_layer_defaults_from_scope_and_normalizer_params():
    with st.Graph() as g:
        x = st.placeholder([2, 8, 8, 3])
        with slim.arg_scope([slim.conv2d], normalizer_fn=slim.batch_norm, weights_regularizer=slim.l2_regularizer(0.5)):
            with slim.arg_scope([slim.batch_norm], is_training=False, scale=True, epsilon=0.01):
                net = slim.conv2d(x, 4, [3, 3], stride=2, scope="conv1")
    assert net.shape == (2, 4, 4, 4)
    names = list(g.variables)
    assert names == ["conv1/weights", "conv1/BatchNorm/gamma", "conv1/BatchNorm/beta",
                     "conv1/BatchNorm/moving_mean", "conv1/BatchNorm/moving_variance"]
    bn = g.node_by_name("conv1/BatchNorm/FusedBatchNormV3")
    assert dict(bn.attrs) == {"center": True, "epsilon": 0.01, "is_training": False, "scale": True}
    assert g.variables["conv1/weights"].regularizer is not None
    assert g.variables["conv1/BatchNorm/gamma"].regularizer is None


def test_user_function_can_be_scoped():
    @slim.add_arg_scope
    def block(net, depth, outputs_collections=None, scope=None):
        with tf.variable_scope(scope, "block", [net]) as sc:
            net = slim.conv2d(net, depth, 1, scope="conv")
            return slim.utils.collect_named_outputs(outputs_collections, sc.name, net)

    with st.Graph() as g:
        x = st.placeholder([1, 4, 4, 2])
        with slim.arg_scope([block, slim.conv2d], outputs_collections="ep"):
            block(x, 3)
            block(x, 5)
    eps = slim.utils.convert_collection_to_dict("ep", graph=g)
    assert list(eps) == ["block/conv", "block", "block_1/conv", "block_1"]
