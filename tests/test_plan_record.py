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
        assert info.output_shape == s.output_shape


def test_a_step_with_two_outputs_is_planned_and_run_per_output():
    """Sibling convs become one routed step (IR pass horizontal + plan pass route_channel_slices)
    with two outputs: concat elimination targets each, the memory plan aliases each to the
    concat's storage, the executor hands the kernel one destination per output, and the record
    serializes both."""
    with st.Graph() as g:
        x = st.placeholder([1, 4, 4, 3], name="x")
        a = slim.conv2d(x, 5, [1, 1], scope="a")
        b = slim.conv2d(x, 7, [1, 1], scope="b")
        cat = tf.concat([a, b], axis=3)
        out = slim.conv2d(cat, 2, [1, 1], scope="out")
    w = st.init_weights(g, seed=0)
    model = st.compile(g, out, w, poison=True)
    p = model.plan
    (routed,) = [s for s in p.steps if len(s.outputs) > 1]
    assert [o.shape[-1] for o in routed.outputs] == [5, 7]
    assert routed.output_shape == (1, 4, 4, 12)  # the wide GEMM it computes (KernelInfo.output_shape)
    assert [o.target[1] for o in routed.outputs] == [0, 5]  # both written in place into the concat
    concat_key = p.memory.alias[routed.outputs[0].target[0].name]
    assert {p.memory.alias[o.node.name] for o in routed.outputs} == {concat_key}
    assert p.memory.storages[concat_key].first <= routed.index
    assert [o["target"][1] for o in routed.to_json()["outputs"]] == [0, 5]
    images = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    assert_close(model(images), reference(g, out, {x: images}, w), "float32")
    # the report: one row, the wide output's channels summed, the repeated op kinds folded
    from slimtriton.report import fusion_report
    row = next(line for line in fusion_report(p).splitlines() if "conv2d_routed" in line)
    assert "[1, 4, 4, 12]" in row and "2x(conv2d+bias_add+relu)" in row and "-> concat[+0] -> concat[+5]" in row


def test_a_saved_engine_keeps_the_plan_record_and_loads_the_same_steps(tmp_path):
    import hashlib

    from slimtriton.engine import EngineError
    from slimtriton.runtime.plan import plan_to_json
    g, x, outs = resnet_like_graph()
    model = st.compile(g, outs, randomize_bn(st.init_weights(g, seed=0)))
    path = model.save(tmp_path / "e.engine")
    loaded = st.load_compiled(path, device="cpu")
    assert plan_to_json(loaded.plan) == plan_to_json(model.plan)  # FLOPs included (taken from the record)
    assert [k.flops for k in loaded.kernels] == [k.flops for k in model.kernels]

    # a lowering that no longer matches the saved record is refused, naming the step
    program = json.loads((path / "program.json").read_text())
    conv = next(k for k, s in enumerate(program["plan"]["steps"]) if s["kernel"] == "conv2d")
    program["plan"]["steps"][conv]["kwargs"]["act"] = "relu6"
    (path / "program.json").write_text(json.dumps(program))
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["program.json"] = hashlib.sha256((path / "program.json").read_bytes()).hexdigest()
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EngineError, match=rf"program\.json: .*step {conv} \(conv2d .*kwargs differ"):
        st.load_compiled(path, device="cpu")


def test_the_report_json_shows_each_kernel_call_from_its_record(tmp_path):
    from slimtriton.report import fusion_report
    g, x, y = conv_bn_relu_graph()
    p = plan(g, y, "float32")
    fusion_report(p, json_path=tmp_path / "r.json")
    (step,) = json.loads((tmp_path / "r.json").read_text())["steps"]
    assert step["call"]["args"][0] == {"node": p.inputs[0].name}
    assert step["call"]["kwargs"]["act"] == "relu" and step["call"]["takes_out"] is True


def test_a_lowering_whose_call_and_reads_disagree_and_an_unknown_plan_pass_are_refused(monkeypatch):
    import slimtriton.runtime.plan as plan_module
    from slimtriton.ir.ops import Op
    g, x, y = conv_bn_relu_graph()
    real = plan_module.LOWERINGS[Op.FUSED_CONV2D]

    def forgets_its_shift(node):
        step = real(node)
        step.inputs = step.inputs[:2]  # the call still binds the shift
        return step
    monkeypatch.setitem(plan_module.LOWERINGS, Op.FUSED_CONV2D, forgets_its_shift)
    with pytest.raises(RuntimeError, match="internal: the lowering of fused_conv2d at .* binds"):
        plan(g, y, "float32")
    monkeypatch.setitem(plan_module.LOWERINGS, Op.FUSED_CONV2D, real)
    monkeypatch.setattr(plan_module, "PLAN_PASSES", ["eliminate_concats", "fuse_everything"])
    with pytest.raises(NotImplementedError, match="'fuse_everything'"):
        plan(g, y, "float32")
