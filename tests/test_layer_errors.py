"""Bad input fails at the layer call, with a message naming the layer scope, the argument
and the shapes."""
from __future__ import annotations

import re

import pytest

import slimtriton as st
from slimtriton import slim, tf


@pytest.fixture
def g():
    graph = st.Graph()
    with graph:
        yield graph


def _raises(exc, *fragments):
    """pytest.raises whose message must contain every fragment (literally)."""
    return pytest.raises(exc, match="(?s)" + "".join(f"(?=.*{re.escape(f)})" for f in fragments))


def test_wrong_rank(g):
    x = st.placeholder([8, 8, 3])
    with tf.variable_scope("net"):
        with _raises(ValueError, "slim.conv2d(scope='net/conv1')", "`inputs`", "4-D", "[8, 8, 3]"):
            slim.conv2d(x, 4, 3, scope="conv1")
    with _raises(ValueError, "slim.max_pool2d(scope='pool')", "`inputs`", "[8, 8, 3]"):
        slim.max_pool2d(x, 2, scope="pool")
    with _raises(ValueError, "slim.fully_connected(scope='fc')", "`inputs`", "[8]"):
        slim.fully_connected(st.placeholder([8]), 3, scope="fc")
    with _raises(ValueError, "slim.separable_conv2d(scope='sep')", "`inputs`", "[2, 3]"):
        slim.separable_conv2d(st.placeholder([2, 3]), 4, 3, scope="sep")


def test_non_int_num_outputs(g):
    x = st.placeholder([1, 8, 8, 3])
    with _raises(TypeError, "slim.conv2d(scope='c')", "`num_outputs`", "float 4.0"):
        slim.conv2d(x, 4.0, 3, scope="c")
    with _raises(ValueError, "slim.fully_connected(scope='fc')", "`num_outputs`", "str"):
        slim.fully_connected(st.placeholder([2, 3]), "8", scope="fc")
    with _raises(ValueError, "`num_outputs`", "positive"):
        slim.conv2d(x, 0, 3, scope="c0")


def test_unknown_padding(g):
    x = st.placeholder([1, 8, 8, 3])
    with _raises(ValueError, "slim.conv2d(scope='c')", "`padding`", "'FULL'"):
        slim.conv2d(x, 4, 3, padding="FULL", scope="c")
    with _raises(ValueError, "slim.avg_pool2d(scope='p')", "`padding`"):
        slim.avg_pool2d(x, 2, padding=None, scope="p")


def test_valid_kernel_larger_than_input(g):
    x = st.placeholder([1, 4, 5, 3])
    with _raises(ValueError, "slim.conv2d(scope='big')", "`kernel_size`", "[5, 5]", "[4, 5]", "[1, 4, 5, 3]"):
        slim.conv2d(x, 4, 5, padding="VALID", scope="big")
    with _raises(ValueError, "slim.max_pool2d(scope='pool')", "`kernel_size`", "[1, 4, 5, 3]"):
        slim.max_pool2d(x, [5, 1], scope="pool")
    with _raises(ValueError, "`kernel_size`", "rate [2, 2]"):  # dilation makes the kernel 5x5
        slim.conv2d(x, 4, 3, rate=2, padding="VALID", scope="dil")


def test_rate_with_stride(g):
    x = st.placeholder([1, 8, 8, 3])
    with _raises(ValueError, "slim.conv2d(scope='c')", "`rate`", "[2, 2]", "stride [2, 2]"):
        slim.conv2d(x, 4, 3, stride=2, rate=2, scope="c")
    with _raises(ValueError, "slim.separable_conv2d(scope='s')", "`rate`"):
        slim.separable_conv2d(x, None, 3, stride=2, rate=2, scope="s")


def test_nchw_is_rejected(g):
    x = st.placeholder([1, 3, 8, 8])
    with _raises(ValueError, "slim.conv2d(scope='c')", "`data_format`", "'NCHW'", "NHWC"):
        slim.conv2d(x, 4, 3, data_format="NCHW", scope="c")
    with _raises(ValueError, "slim.batch_norm(scope='bn')", "`data_format`", "NCHW"):
        slim.batch_norm(x, data_format="NCHW", scope="bn")
    with _raises(ValueError, "slim.max_pool2d(scope='p')", "`data_format`"):
        slim.max_pool2d(x, 2, data_format="NCHW", scope="p")


def test_mismatched_concat(g):
    a = st.placeholder([1, 4, 4, 3], name="a")
    b = st.placeholder([1, 5, 4, 2], name="b")
    with tf.variable_scope("mixed"):
        with _raises(ValueError, "tf.concat 'mixed/concat'", "`values`", "a[1, 4, 4, 3]", "b[1, 5, 4, 2]"):
            tf.concat([a, b], 3)
    with _raises(ValueError, "`axis`", "out of range"):
        tf.concat([a, a], axis=4)
    assert tf.concat(axis=3, values=[a, a]).shape == (1, 4, 4, 6)
    assert tf.concat([a, a], -1).shape == (1, 4, 4, 6)


def test_bad_kernel_size_and_stride(g):
    x = st.placeholder([1, 8, 8, 3])
    with _raises(ValueError, "`kernel_size`", "[3, 3, 3]"):
        slim.conv2d(x, 4, [3, 3, 3], scope="k")
    with _raises(ValueError, "`stride`", "0"):
        slim.conv2d(x, 4, 3, stride=0, scope="s")
    with _raises(TypeError, "`kernel_size`"):
        slim.conv2d(x, 4, 2.5, scope="kf")


def test_non_tensor_input_and_activation(g):
    import numpy as np
    with _raises(TypeError, "slim.conv2d(scope='c')", "`inputs`", "ndarray"):
        slim.conv2d(np.zeros((1, 4, 4, 3)), 4, 3, scope="c")
    x = st.placeholder([1, 4, 4, 3])
    with _raises(TypeError, "slim.conv2d(scope='a')", "`activation_fn`"):
        slim.conv2d(x, 4, 3, activation_fn="relu", scope="a")
    with _raises(TypeError, "`is_training`", "symbolic"):
        slim.batch_norm(x, is_training=st.placeholder([1], dtype="bool"), scope="bn")
    for layer in (slim.conv2d, slim.batch_norm, slim.bias_add):  # every layer with an activation_fn
        name = layer.__name__.replace("convolution2d", "conv2d")
        args = (4, 3) if layer is slim.conv2d else ()
        with _raises(TypeError, f"slim.{name}(scope='act_{name}')", "`activation_fn`", "returned ndarray"):
            layer(x, *args, activation_fn=lambda t: np.zeros(3), scope=f"act_{name}")


def test_other_layer_argument_errors(g):
    x = st.placeholder([2, 4, 4, 3])
    with _raises(ValueError, "slim.unit_norm(scope='u')", "`dim`", "[-4, 4)", "[2, 4, 4, 3]"):
        slim.unit_norm(x, 4, scope="u")
    with _raises(ValueError, "slim.dropout(scope='d')", "`keep_prob`", "1.5"):
        slim.dropout(x, 1.5, scope="d")
    with _raises(TypeError, "slim.one_hot_encoding(scope='oh')", "`labels`", "float32"):
        slim.one_hot_encoding(x, 3, scope="oh")
    with _raises(ValueError, "slim.batch_norm(scope='bn')", "`param_initializers`", "['bias']"):
        slim.batch_norm(x, param_initializers={"bias": tf.zeros_initializer()}, scope="bn")
    with _raises(ValueError, "slim.flatten(scope='f')", "`inputs`", "[5]"):
        slim.flatten(st.placeholder([5]), scope="f")
    with _raises(ValueError, "slim.stack", "`stack_args`"):
        slim.stack(x, slim.conv2d, 3)


def test_tensor_op_errors(g):
    x = st.placeholder([2, 4, 4, 3], name="x")
    with _raises(ValueError, "tf.pad 'Pad'", "`paddings`", "[2, 4, 4, 3]"):
        tf.pad(x, [[1, 1], [1, 1]])
    with _raises(ValueError, "tf.pad", "`mode`", "REFLECT"):
        tf.pad(x, [[0, 0]] * 4, mode="REFLECT")
    with _raises(ValueError, "tf.squeeze", "`axis`", "dim[1]", "[2, 4, 4, 3]"):
        tf.squeeze(x, [1])
    with _raises(ValueError, "tf.reshape", "`shape`", "96"):
        tf.reshape(x, [5, -1])
    with _raises(ValueError, "tf.add", "do not broadcast"):
        tf.add(x, st.placeholder([2, 4]))


def test_failed_call_leaves_scopes_clean(g):
    x = st.placeholder([1, 4, 4, 3])
    with pytest.raises(ValueError):
        with tf.variable_scope("outer"):
            slim.conv2d(x, 4, 9, padding="VALID", scope="c")
    assert g.name_scope_prefix == ""
    assert tf.get_variable_scope().name == ""
    y = slim.conv2d(x, 4, 3, scope="after")
    assert y.op_name == "after/Relu"
