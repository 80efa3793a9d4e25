"""The plan step is one record from fused node to launch (slimtriton.runtime.step): its kernel
call is data (kernel name, arguments bound to nodes by role, static values), the executor makes
that call and nothing else, and KernelInfo / the report read the same record."""
from __future__ import annotations

import json

import numpy as np
import pytest

import slimtriton as st
from slimtriton import kernels, slim, tf
from slimtriton.compiler import plan
from slimtriton.ir.node import Node
from tests.helpers import assert_close
from tests.test_compile import conv_bn_relu_graph, randomize_bn, reference, resnet_like_graph


def _values(step):
    return list(step.args) + list(step.kwargs.values())


def test_conv_bn_relu_lowers_to_one_conv2d_call_as_data():
    g, x, y = conv_bn_relu_graph()
    p = plan(g, y, "float32")
    (step,) = p.kernels
    assert step.kernel == "conv2d" and step.takes_out and step.takes_precision
    image, weights = step.args
    assert image is p.inputs[0] and weights.op is st.ir.Op.VARIABLE
    assert step.kwargs["act"] == "relu" and step.kwargs["name"] == p.outputs[0].name
    assert step.kwargs["strides"] == (2, 2)
    assert step.kwargs["scale"] is None  # BN scale folded into the weights: the kernel loads none
    assert isinstance(step.kwargs["shift"], Node)
    assert {id(n) for _, n in step.roles()} == {id(n) for n in step.inputs}
    assert not any(callable(v) and not isinstance(v, Node) for v in _values(step))
    json.dumps(step.to_json())  # the record is plain data


def test_every_step_of_a_net_with_concats_serializes_and_binds_exactly_its_inputs():
    g, x, outs = resnet_like_graph()
    p = plan(g, list(outs.values()), "float16")
    kinds = {s.kernel for s in p.steps}
    assert {"conv2d", "copy_channels", "concat", "softmax"} <= kinds
    for s in p.steps:
        assert s.index == p.steps.index(s)
        assert {id(n) for _, n in s.roles()} == {id(n) for n in s.inputs}, s.describe()
        record = json.loads(json.dumps(s.to_json()))
        assert record["kernel"] == s.kernel and record["fused_ops"] == list(s.fused_ops)
    copy = next(s for s in p.steps if s.kernel == "copy_channels")
    (source,) = copy.args
    assert copy.output_shape == source.shape and copy.target[0] is copy.node  # into its concat's slice


def test_the_executor_makes_exactly_the_recorded_call(monkeypatch):
    """Replacing kernels.conv2d shows what the executor passes: the record's arguments with
    each node resolved to its tensor, plus out= / out_channel_offset= / precision=."""
    g, x, y = conv_bn_relu_graph()
    w = randomize_bn(st.init_weights(g, seed=0))
    calls = []
    real = kernels.conv2d

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)
    monkeypatch.setattr(kernels, "conv2d", spy)
    model = st.compile(g, y, w, precision="ieee")  # the executor looks kernels.conv2d up
    step = model.kernels[0].step
    images = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    got = model(images)
    assert_close(got, reference(g, y, {x: images}, w), "float32")
    ((args, kwargs),) = calls
    assert args[0].shape == tuple(x.shape)
    assert set(kwargs) == set(step.kwargs) | {"out", "out_channel_offset", "precision"}
    assert kwargs["precision"] == "ieee" and kwargs["out_channel_offset"] == 0
    assert {k: v for k, v in kwargs.items() if not hasattr(v, "shape") and k in step.kwargs} == \
        {k: v for k, v in step.kwargs.items() if not isinstance(v, Node)}


def test_kernel_info_is_a_view_of_its_step():
    g, x, outs = resnet_like_graph()
    model = st.compile(g, outs, None)
    assert [k.step for k in model.kernels] == model.plan.kernels
    for info in model.kernels:
        s = info.step
        assert (info.name, info.kernel, info.fused_ops, info.flops, info.bytes_read, info.bytes_written) == \
            (s.node.name, s.kernel, s.fused_ops, s.flops, s.bytes_read, s.bytes_written)
        assert info.input_shapes == [tuple(n.shape) for n in s.reads]
        assert info.output_shape == tuple(s.outputs[0].shape)


def test_a_step_with_two_outputs_is_planned_per_output():
    """Multi-output steps (one kernel writing several values: the routed GEMM of sibling convs,
    plan pass route_channel_slices) go through concat elimination and the memory plan output by
    output, and the executor binds each output's buffer as one of the kernel's destinations."""
    with st.Graph() as g:
        x = st.placeholder([1, 4, 4, 3], name="x")
        a = slim.conv2d(x, 5, [1, 1], scope="a")
        b = slim.conv2d(x, 7, [1, 1], scope="b")
        cat = tf.concat([a, b], axis=3)
        out = slim.conv2d(cat, 2, [1, 1], scope="out")
    p = plan(g, out, "float32")
    (merged,) = [s for s in p.steps if len(s.outputs) == 2]
    assert merged.kernel == "conv2d_routed"
    assert [o.target[1] for o in merged.outputs] == [0, 5]  # both written in place
    concat_key = p.memory.alias[merged.target[0].name]
    assert p.memory.alias[merged.outputs[0].node.name] == p.memory.alias[merged.outputs[1].node.name] == concat_key
    assert p.memory.storages[concat_key].first <= merged.index
    weights = st.init_weights(g, seed=0)
    images = np.random.default_rng(0).standard_normal(tuple(x.shape)).astype(np.float32)
    assert_close(st.compile(g, out, weights, poison=True)(images),
                 st.Session(g, weights, backend="reference").run(out, {x: images}), "float32")
