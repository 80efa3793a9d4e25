"""Fusion decisions are visible: what fused (rule, node) and every match declined, with why."""
from __future__ import annotations

import numpy as np

import slimtriton as st
from slimtriton import slim, tf
from slimtriton.compiler import plan
from slimtriton.fusion import Program, run_passes
from slimtriton.fusion.log import FusionRecord, format_fusion_log
from slimtriton.ir import Op
from tests.fusion.graphs import Builder


def _declined(records, rule):
    return {r.node: r.why for r in records if r.rule == rule and not r.fused}


def test_residual_add_declined_when_the_conv_output_is_also_used_elsewhere():
    b = Builder()
    x = b.placeholder((1, 4, 4, 3))
    c1 = b.conv(x, 3, scope="c1")
    c2 = b.conv(x, 3, scope="c2")
    s = b.op(Op.ADD, c1, c2, name="add")
    other = b.op(Op.NEG, c1, name="other")
    c2_other = b.op(Op.NEG, c2, name="other2")
    prog = run_passes(Program.from_graph(b.g.nodes, [s, other, c2_other]))
    why = _declined(prog.fusion_log, "residual_add")["add"]
    assert "c1/Conv2D has 2 consumers" in why and "c2/Conv2D has 2 consumers" in why
    fused = [r for r in prog.fusion_log if r.fused and r.rule == "add_to_pointwise"]
    assert [r.node for r in fused] == ["add"]  # it became its own pointwise kernel instead


def test_a_second_activation_is_declined_and_says_which_is_applied():
    b = Builder()
    x = b.placeholder((1, 4, 4, 3))
    y = b.op(Op.SIGMOID, b.relu(b.conv(x, 4), "r1"), name="s2")
    prog = run_passes(Program.from_graph(b.g.nodes, [y]))
    assert _declined(prog.fusion_log, "activation") == {"s2": "r1 already applies act='relu'"}
    assert any(r.fused and r.rule == "activation" and r.node == "r1" for r in prog.fusion_log)


def test_prologue_refusals_name_the_byte_model():
    b = Builder()
    x = b.placeholder((1, 6, 6, 4))
    pre = b.relu(b.bn(x, "preact"), "preact/Relu")
    y = b.conv(pre, 4, k=3, scope="c3x3")
    prog = run_passes(Program.from_graph(b.g.nodes, [y]))
    why = _declined(prog.fusion_log, "pointwise_into_prologue")["c3x3/Conv2D"]
    assert why.startswith("byte model:") and "MAX_PROLOGUE_TAPS" in why


def test_mean_gemm_conditions_are_recorded_on_the_plan_and_logged():
    with st.Graph() as g:
        x = st.placeholder([2, 4, 4, 3], name="x")
        net = slim.conv2d(x, 8, [3, 3], scope="conv")
        pooled = tf.reduce_mean(net, [1, 2], keep_dims=True, name="pool")
        logits = slim.conv2d(pooled, 5, [1, 1], activation_fn=None, scope="logits")
        also = tf.nn.relu(pooled, name="also")  # the pooled tensor is needed: no mean_gemm
    lines = []
    p = plan(g, [logits, also], "float32", log=lines.append)
    assert _declined(p.fusion_log, "mean_gemm") == {
        "logits/BiasAdd": "the mean pool has 2 consumers (or is a requested output)"}
    assert any(line.startswith("mean_gemm: ") for line in lines)
    assert any(line.startswith("  declined mean_gemm at logits/BiasAdd") for line in lines)
    assert any("fused    activation at conv/Relu" in line for line in lines)
    text = format_fusion_log(p.fusion_log)
    assert "mean_gemm: fused nothing; declined 1" in text and "epilogue: fused " in text
    with st.Graph() as g2:  # the same net without the second consumer fuses
        x = st.placeholder([2, 4, 4, 3], name="x")
        pooled = tf.reduce_mean(slim.conv2d(x, 8, [3, 3], scope="conv"), [1, 2], keep_dims=True, name="pool")
        logits = slim.conv2d(pooled, 5, [1, 1], activation_fn=None, scope="logits")
    fused = [r for r in plan(g2, logits, "float32").fusion_log if r.rule == "mean_gemm"]
    assert [(r.node, r.fused) for r in fused] == [("logits/BiasAdd", True)]


def test_records_are_not_duplicated_when_a_plan_is_rebuilt_and_format_caps_lines():
    from slimtriton.runtime.plan import build_plan
    with st.Graph() as g:
        x = st.placeholder([2, 4, 4, 3], name="x")
        pooled = tf.reduce_mean(x, [1, 2], name="pool")
        out = [slim.fully_connected(pooled, 3, scope="fc"), tf.nn.relu(pooled)]
    p = plan(g, out, "float32")
    n = len(p.fusion_log)
    build_plan(p.program, "float32")
    assert len(p.fusion_log) == n
    records = [FusionRecord("epilogue", "residual_add", f"add{i}", False, "why") for i in range(5)]
    text = format_fusion_log(records, max_per_rule=2)
    assert text.count("  declined residual_add at") == 2 and "... and 3 more declined residual_add" in text


def test_compile_log_prints_fused_and_declined_per_pass():
    with st.Graph() as g:
        x = st.placeholder([1, 4, 4, 3], name="x")
        a = slim.conv2d(x, 3, [3, 3], scope="a")
        y = tf.sigmoid(a) + a  # a has two consumers: the add cannot fuse into it
    lines = []
    model = st.compile(g, y, st.init_weights(g, seed=0), log=lines.append)
    text = "\n".join(lines)
    assert "epilogue:" in text and "declined residual_add at add" in text and "a/Relu has 2 consumers" in text
    xv = np.random.default_rng(0).standard_normal((1, 4, 4, 3)).astype(np.float32)
    assert model(xv).shape == (1, 4, 4, 3)
