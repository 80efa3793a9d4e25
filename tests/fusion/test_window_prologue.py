"""Pass 5b (window_prologue): avg pool / depthwise conv -> the following 1x1 conv's A load
(FUSED_WINDOW_CONV2D). Pattern, declined cases with the logged reason, same output on the
reference and the torch executor, and the compiled (Triton, interpreter) result vs the reference."""
from __future__ import annotations

import numpy as np
import pytest

import slimtriton as st
from slimtriton import slim, tf
from slimtriton.fusion import Program, run_passes, window_prologue
from slimtriton.ir import Op
from slimtriton.kernels.prologue_gemm import WINDOW_GPU_BLOCK_N
from tests.fusion.graphs import Builder, reference, reference_of_program
from tests.fusion.test_plan_passes import check_numerics
from tests.test_compile import randomize_bn
from tests.helpers import assert_close

BN = {"normalizer_fn": slim.batch_norm, "normalizer_params": {"is_training": False, "scale": True}}
SAME = ((1, 1), (1, 1))
VALID = ((0, 0), (0, 0))


def separable_graph(cout=24, stride=2, hw=9, cin=16, requested_depthwise=False):
    """MobileNet v1's separable block: depthwise 3x3 + BN + ReLU6, pointwise 1x1 + BN + ReLU6."""
    with st.Graph() as g:
        x = st.placeholder([2, hw, hw, 3], name="images")
        with slim.arg_scope([slim.conv2d, slim.separable_conv2d], activation_fn=tf.nn.relu6, **BN):
            net = slim.conv2d(x, cin, [3, 3], scope="conv0")
            dw = slim.separable_conv2d(net, None, [3, 3], depth_multiplier=1, stride=stride, scope="dw1")
            out = slim.conv2d(dw, cout, [1, 1], scope="pw1")
    return g, ([out, dw] if requested_depthwise else out)


def inception_branch3_graph(cout=12, hw=7):
    """Inception's Branch_3: avg_pool 3x3 stride 1 SAME, then a 1x1 conv + BN + ReLU."""
    with st.Graph() as g:
        x = st.placeholder([2, hw, hw, 3], name="images")
        with slim.arg_scope([slim.conv2d], activation_fn=tf.nn.relu, **BN):
            net = slim.conv2d(x, 20, [3, 3], scope="conv0")
            pool = slim.avg_pool2d(net, [3, 3], stride=1, padding="SAME", scope="Branch_3/AvgPool_0a_3x3")
            out = slim.conv2d(pool, cout, [1, 1], scope="Branch_3/Conv2d_0b_1x1")
    return g, out


def program_ops(g, outputs):
    outs = outputs if isinstance(outputs, list) else [outputs]
    prog = Program.from_graph(g.nodes, [o.node for o in outs])
    return [n.op for n in run_passes(prog).nodes if n.op not in (Op.VARIABLE, Op.PLACEHOLDER, Op.CONSTANT)]


def test_window_tile_width_agrees_with_the_kernel():
    assert window_prologue.WINDOW_BLOCK_N == WINDOW_GPU_BLOCK_N


def test_depthwise_into_pointwise_pattern_and_replacement():
    b = Builder()
    x = b.placeholder((1, 6, 6, 5))
    d = b.relu(b.bn(b.depthwise(x, stride=2, scope="dw"), "dw/BatchNorm"), "dw/Relu")
    y = b.relu(b.bn(b.conv(d, 7, k=1, padding=VALID, scope="pw"), "pw/BatchNorm"), "pw/Relu")
    prog = Program.from_graph(b.g.nodes, [y])
    feeds = b.feeds()
    want = reference(b.g.nodes, [y], feeds, b.weights)
    after = run_passes(prog)
    (fused,) = [n for n in after.nodes if n.op not in (Op.VARIABLE, Op.PLACEHOLDER)]
    assert fused.op is Op.FUSED_WINDOW_CONV2D and fused.name == "pw/Relu"
    a = fused.attrs
    assert (a["window"], a["ksize"], a["win_strides"], a["win_act"], a["act"]) == ("depthwise", (3, 3), (2, 2),
                                                                                   "relu", "relu")
    assert fused.inputs[0].name == "x" and fused.shape == (1, 3, 3, 7)
    assert set(after.origin_of(fused)) >= {"dw/depthwise", "dw/Relu", "pw/Conv2D", "pw/Relu"}
    got = reference_of_program(after, feeds, b.weights)
    assert_close(got[0], want[0], "float64", tol=1e-12)


def test_avg_pool_into_1x1_pattern_and_replacement():
    b = Builder()
    x = b.placeholder((2, 5, 4, 6))
    p = b.op(Op.AVG_POOL, x, name="pool", ksize=(3, 3), strides=(1, 1), padding=SAME)
    y = b.conv(p, 3, k=1, padding=VALID, scope="c")
    prog = Program.from_graph(b.g.nodes, [y])
    feeds = b.feeds()
    want = reference(b.g.nodes, [y], feeds, b.weights)
    after = run_passes(prog)
    assert [n.op for n in after.nodes if n.op not in (Op.VARIABLE, Op.PLACEHOLDER)] == [Op.FUSED_WINDOW_CONV2D]
    got = reference_of_program(after, feeds, b.weights)
    assert_close(got[0], want[0], "float64", tol=1e-12)


def test_declined_cases_keep_their_kernels():
    # the depthwise output is requested: it must exist
    g, outs = separable_graph(requested_depthwise=True)
    assert Op.FUSED_WINDOW_CONV2D not in program_ops(g, outs)
    # a 3x3 pointwise consumer is no 1x1 GEMM; a whole-image pool is plan pass 7's mean_gemm
    b = Builder()
    x = b.placeholder((1, 5, 5, 4))
    p = b.op(Op.AVG_POOL, x, name="pool", ksize=(3, 3), strides=(1, 1), padding=SAME)
    y = b.conv(p, 4, k=3, scope="c3")
    gp = b.op(Op.AVG_POOL, x, name="gpool", ksize=(5, 5), strides=(1, 1), padding=VALID)
    z = b.conv(gp, 4, k=1, padding=VALID, scope="logits")
    after = run_passes(Program.from_graph(b.g.nodes, [y, z]))
    assert Op.FUSED_WINDOW_CONV2D not in [n.op for n in after.nodes]


def test_recompute_bound_declines_wide_pointwise_and_logs_why():
    lines = []
    g, out = separable_graph(cout=4 * WINDOW_GPU_BLOCK_N + 1, stride=1, hw=5, cin=8)
    st.compile(g, out, None, dtype="float16", log=lines.append)
    (line,) = [ln for ln in lines if "window_into_1x1_prologue" in ln]
    assert "declined window_into_1x1_prologue at pw1/Relu6: recompute 9 taps x 4 extra N tiles (36 FMA/element) > 28" \
        in line
    lines = []
    g, out = separable_graph(cout=4 * WINDOW_GPU_BLOCK_N, stride=1, hw=5, cin=8)
    model = st.compile(g, out, None, dtype="float16", log=lines.append)
    (line,) = [ln for ln in lines if "window_into_1x1_prologue" in ln]
    assert "fused    window_into_1x1_prologue at pw1/Relu6: fused_conv2d -> fused_window_conv2d" in line
    assert [k.kernel for k in model.kernels] == ["conv2d", "window_conv2d"]


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("graph", [separable_graph, inception_branch3_graph])
def test_compiled_matches_reference(graph, dtype):
    g, out = graph()
    model = check_numerics(g, out, dtype=dtype)
    assert [k.kernel for k in model.kernels] == ["conv2d", "window_conv2d"]


def test_torch_executor_runs_the_fused_form():
    from slimtriton.eager.torch_backend import TORCH
    from slimtriton.executor import evaluate
    from slimtriton.fusion.program import resolve_parameters
    for graph in (separable_graph, inception_branch3_graph):
        g, out = graph()
        weights = st.init_weights(g, seed=0)
        rng = np.random.default_rng(0)
        feeds = {n: rng.standard_normal(n.shape).astype(np.float32) for n in g.nodes if n.op is Op.PLACEHOLDER}
        prog = run_passes(Program.from_graph(g.nodes, [out.node]))
        assert Op.FUSED_WINDOW_CONV2D in [n.op for n in prog.nodes]
        want = reference_of_program(prog, feeds, weights)
        params = resolve_parameters(prog, weights)
        by_name = {n.name: n for n in prog.nodes}
        got = evaluate(prog.nodes, prog.outputs, {by_name[k.name]: v for k, v in feeds.items()}, params, TORCH,
                       "TORCH")
        assert_close(np.asarray(got[0].detach() if hasattr(got[0], "detach") else got[0]), want[0], "float32")


def test_depthwise_weights_whose_folding_loses_precision_keep_their_scale():
    """keep_scale visits a window conv's depthwise weights too (win_scale becomes a real vector)."""
    g, out = separable_graph(cout=8, stride=1, hw=6, cin=8)
    w = randomize_bn(st.init_weights(g, seed=0), 0)
    w["dw1/BatchNorm/moving_variance"] = np.full(8, 1e4, np.float32)  # scale ~1e-2: folded weights subnormal
    w["dw1/depthwise_weights"] = (w["dw1/depthwise_weights"] * 1e-4).astype(np.float32)
    x = [n for n in g.nodes if n.op is Op.PLACEHOLDER][0]
    images = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    want = st.Session(g, w, backend="reference").run(out, {x: images})
    model = st.compile(g, out, w, dtype="float16")
    assert "pw1/Relu6:window" in model.plan.program.kept_scale
    assert [k.kernel for k in model.kernels] == ["conv2d", "window_conv2d"]
    assert_close(model(images), want, "float16")
