"""slim.model_analyzer tables and the FLOPS table (multiply-add = 2 FLOPs)."""
from __future__ import annotations

import pytest

import slimtriton as st
from slimtriton import slim
from slimtriton.ir import Op
from slimtriton.ir.cost import FLOPS, flops


def small_net():
    with st.Graph() as g:
        x = st.placeholder([2, 8, 8, 3], name="x")
        net = slim.conv2d(x, 4, [3, 3], stride=2, scope="conv1")                       # -> [2,4,4,4]
        net = slim.separable_conv2d(net, 6, 3, depth_multiplier=2, scope="sep")       # -> [2,4,4,6]
        net = slim.max_pool2d(net, 2, scope="pool")                                    # -> [2,2,2,6]
        net = slim.conv2d_transpose(net, 5, 3, stride=2, scope="up")                   # -> [2,4,4,5]
        net = slim.fully_connected(slim.flatten(net), 10, activation_fn=None, scope="fc")
    return g


def test_flops_of_each_layer():
    g = small_net()
    f = {n.name: flops(n) for n in g.nodes}
    assert f["conv1/Conv2D"] == 2 * (2 * 4 * 4 * 4) * (3 * 3 * 3)
    assert f["conv1/BiasAdd"] == 2 * 4 * 4 * 4 and f["conv1/Relu"] == 2 * 4 * 4 * 4
    assert f["sep/separable_conv2d/depthwise"] == 2 * (2 * 4 * 4 * 8) * 9
    assert f["sep/separable_conv2d"] == 2 * (2 * 4 * 4 * 6) * 8
    assert f["pool/MaxPool"] == (2 * 2 * 2 * 6) * 4
    assert f["up/conv2d_transpose"] == 2 * (2 * 2 * 2 * 6) * 9 * 5
    assert f["fc/MatMul"] == 2 * (2 * 10) * 80
    assert f["Flatten/flatten/Reshape"] == 0 and f["x"] == 0 and f["fc/weights"] == 0


def test_flops_table_covers_every_op():
    assert set(FLOPS) == set(Op)


def test_flops_of_fused_ops_add_the_epilogue():
    with st.Graph() as g:
        x = st.placeholder([1, 4, 4, 2])
        slim.conv2d(x, 3, 1, scope="c")
    conv = g.node_by_name("c/Conv2D")
    scale = g.node_by_name("c/biases")
    fused = conv.replace(op=Op.FUSED_CONV2D, inputs=conv.inputs + (scale, scale),
                         attrs={**conv.attrs, "act": "relu", "residual": False, "residual_scale": 1.0, "act2": "none"})
    assert flops(fused) == flops(conv) + 3 * conv.size


def test_analyze_vars_prints_and_returns_totals(capsys):
    g = small_net()
    total_size, total_bytes = slim.model_analyzer.analyze_vars(list(g.variables.values()), print_info=True)
    expected = sum(v.size for v in g.variables.values())
    assert total_size == expected and total_bytes == 4 * expected
    out = capsys.readouterr().out
    assert "conv1/weights:0 (float32 [3, 3, 3, 4]) [108, bytes: 432]" in out
    assert f"Total size of variables: {expected}" in out
    assert len([line for line in out.splitlines() if ":0 (" in line]) == len(g.variables)
    assert slim.model_analyzer.analyze_vars(g, print_info=False) == (total_size, total_bytes)
    assert capsys.readouterr().out == ""


def test_analyze_ops_prints_table_with_flops(capsys):
    g = small_net()
    totals = slim.model_analyzer.analyze_ops(g, print_info=True)
    nodes = [n for n in g.nodes if n.op is not Op.VARIABLE]
    assert totals.total_flops == sum(flops(n) for n in nodes)
    assert totals.total_size == sum(n.size for n in nodes)
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("conv1/Conv2D"))
    assert "conv2d" in row and "float32 [2, 4, 4, 4]" in row and f"{2 * 128 * 27:,}" in row
    assert f"Total FLOPs: {totals.total_flops}" in out
    assert all(line.split()[0] != "conv1/weights" for line in out.splitlines() if line.strip())


def test_analyze_vars_on_model_variables_within_graph():
    g = small_net()
    with g:
        specs = slim.get_model_variables("conv1")
    assert slim.model_analyzer.analyze_vars(specs, print_info=False).total_size == 3 * 3 * 3 * 4 + 4
