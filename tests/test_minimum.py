"""MINIMUM and tf.clip_by_value: an entry in every table keyed by op, TF's node names, the
errors, and the same numbers from the reference, the torch table, the Triton kernel and a
compiled plan."""
from __future__ import annotations


import numpy as np
import pytest
import torch

import slimtriton as st
from slimtriton import kernels as K
from slimtriton import tf
from slimtriton.eager.torch_backend import make_torch_table
from slimtriton.executor import evaluate
from slimtriton.ir import Graph, Op
from slimtriton.ir.cost import FLOPS, flops
from slimtriton.ir.ops import ELEMENTWISE_BINARY
from slimtriton.ir.shapes import SHAPE_RULES
from slimtriton.reference import REFERENCE
from slimtriton.report import _POINTWISE
from slimtriton.runtime.lowering import LOWERINGS
from tests.helpers import assert_close


TORCH64 = make_torch_table(device="cpu", dtype="float64")


def test_minimum_has_an_entry_in_every_table():
    assert Op.MINIMUM in ELEMENTWISE_BINARY and Op.MINIMUM.group.value == "elementwise"
    for table in (SHAPE_RULES, REFERENCE, FLOPS, LOWERINGS):
        assert Op.MINIMUM in table
    assert Op.MINIMUM in TORCH64
    assert Op.MINIMUM in _POINTWISE


def _minimum_graph(sa, sb):
    g = Graph()
    a = g.add_node(Op.PLACEHOLDER, (), {"shape": sa, "dtype": "float64"}, "a")
    b = g.add_node(Op.PLACEHOLDER, (), {"shape": sb, "dtype": "float64"}, "b")
    m = g.add_node(Op.MINIMUM, (a, b), {}, "net/Minimum")
    return g, a, b, m


@pytest.mark.parametrize("sa,sb", [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (4,)), ((2, 1, 4), (1, 5, 1)), ((3,), ())])
def test_reference_and_torch_table_agree_with_numpy(sa, sb):
    g, a, b, m = _minimum_graph(sa, sb)
    assert m.shape == np.broadcast_shapes(sa, sb)
    rng = np.random.default_rng(0)
    av, bv = rng.standard_normal(sa), rng.standard_normal(sb)
    ref = evaluate(g.nodes, [m], {a: av, b: bv}, {}, REFERENCE, "REFERENCE")[0]
    np.testing.assert_array_equal(ref, np.minimum(av, bv))
    tv = evaluate(g.nodes, [m], {a: torch.from_numpy(av), b: torch.from_numpy(bv)}, {}, TORCH64, "TORCH")[0]
    np.testing.assert_array_equal(tv.numpy(), np.minimum(av, bv))
    assert flops(m) == int(np.prod(m.shape))


def test_kernel_minimum_equals_numpy_exactly():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 5, 3)).astype(np.float32), rng.standard_normal((5, 1)).astype(np.float32)
    got = K.binary("minimum", torch.from_numpy(a), torch.from_numpy(b))
    np.testing.assert_array_equal(got.numpy(), np.minimum(a, b))
    np.testing.assert_array_equal(K.binary("minimum", torch.from_numpy(a), 0.25).numpy(), np.minimum(a, 0.25))
    with pytest.raises(K.KernelArgumentError, match="unknown binary op"):
        K.binary("min", torch.from_numpy(a), 0.25)


def test_tf_names_match_tf():
    with st.Graph() as g:
        x = st.placeholder([2, 5], name="x")
        with tf.variable_scope("block"):
            y = tf.clip_by_value(x, -6.0, 6.0)
            y2 = tf.clip_by_value(y, 0.0, 1.0)
            y3 = tf.clip_by_value(y2, 0.0, 1.0, name="bounded")
            z = tf.minimum(x, 0.5)
    assert y.op_name == "block/clip_by_value" and y.node.op is Op.MAXIMUM
    assert y.node.inputs[0].name == "block/clip_by_value/Minimum" and y.node.inputs[0].op is Op.MINIMUM
    assert y2.op_name == "block/clip_by_value_1"
    assert y2.node.inputs[0].name == "block/clip_by_value_1/Minimum"
    assert y3.op_name == "block/bounded" and y3.node.inputs[0].name == "block/bounded/Minimum"
    assert z.op_name == "block/Minimum" and z.node.op is Op.MINIMUM


def test_clip_by_value_with_tensor_bounds_and_errors():
    with st.Graph() as g:
        x = st.placeholder([2, 3], name="x")
        lo = st.placeholder([3], name="lo")
        hi = st.placeholder([2, 3], name="hi")
        y = tf.clip_by_value(x, lo, hi)
        with pytest.raises(ValueError, match=r"tf.clip_by_value 'clip_by_value_1': argument `clip_value_min`: "
                                             r"3.0 is greater than clip_value_max 1.0"):
            tf.clip_by_value(x, 3.0, 1.0)
        big = st.placeholder([4, 2, 3], name="big")
        with pytest.raises(ValueError, match=r"argument `clip_value_max`: shape \[4, 2, 3\] must broadcast to the "
                                             r"shape of t \[2, 3\] without changing it"):
            tf.clip_by_value(x, 0.0, big)
        with pytest.raises(TypeError, match=r"argument `t`: expected a slimtriton Tensor"):
            tf.clip_by_value([1.0, 2.0], 0.0, 1.0)
        with pytest.raises(TypeError, match=r"argument `clip_value_min`: expected a Tensor or a python scalar"):
            tf.clip_by_value(x, "0", 1.0)
    rng = np.random.default_rng(2)
    feeds = {x: rng.standard_normal((2, 3)) * 3, lo: -rng.uniform(0, 1, 3), hi: rng.uniform(0, 1, (2, 3))}
    want = np.maximum(np.minimum(feeds[x], feeds[hi]), feeds[lo])
    for backend in ("reference", "torch"):
        got = st.Session(g, {}, backend=backend).run(y, feeds)
        assert_close(got, want, "float32", what=backend)


def test_clip_by_value_compiles_and_matches_reference():
    with st.Graph() as g:
        x = st.placeholder([2, 4, 4, 3], name="x")
        y = tf.clip_by_value(tf.nn.relu(x) * 2.0 - 3.0, -1.0, 1.5)
    xv = np.random.default_rng(3).standard_normal((2, 4, 4, 3)).astype(np.float32) * 3
    want = st.Session(g, {}, backend="reference").run(y, {x: xv})
    np.testing.assert_allclose(want, np.clip(np.maximum(xv, 0) * 2 - 3, -1.0, 1.5), rtol=1e-6)
    model = st.compile(g, y, {}, poison=True)
    assert_close(model(xv), want, "float32")
    kernels = {k.fused_ops: k.kernel for k in model.kernels}
    assert kernels[("clip_by_value/Minimum",)] == "binary" and kernels[("clip_by_value",)] == "binary"
