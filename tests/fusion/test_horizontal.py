"""IR pass 8 (horizontal): sibling convs of one tensor -> one wide FUSED_CONV2D + CHANNEL_SLICEs.
Pattern, replacement, declined siblings with the logged reason, same output on the reference and
the torch executor, and the compiled plan: one routed kernel per group writing each slice to its
own buffer or concat slice (interpreter, poison mode), with a dynamic batch too."""
from __future__ import annotations

import numpy as np
import pytest

import slimtriton as st
from slimtriton import slim, tf
from slimtriton.fusion import Program, horizontal, run_passes
from slimtriton.fusion.log import format_fusion_log
from slimtriton.ir import Op
from tests.fusion.graphs import Builder, reference, reference_of_program
from tests.fusion.test_plan_passes import check_numerics
from tests.helpers import assert_close

BN = {"normalizer_fn": slim.batch_norm, "normalizer_params": {"is_training": False, "scale": True}}
VALID = ((0, 0), (0, 0))


def compute_nodes(program):
    return [n for n in program.nodes if n.op not in (Op.VARIABLE, Op.PLACEHOLDER, Op.CONSTANT)]


def sibling_graph():
    """x feeds three 1x1 conv+BN+ReLU and a 1x1 conv+BN without ReLU (one group: activations may
    differ) and a 3x3 conv+ReLU (another kernel size)."""
    b = Builder()
    x = b.placeholder((2, 5, 6, 8))
    outs = [b.relu(b.bn(b.conv(x, c, k=1, padding=VALID, scope=f"B{i}"), f"B{i}/BatchNorm"), f"B{i}/Relu")
            for i, c in enumerate((4, 7, 5))]
    outs.append(b.bn(b.conv(x, 6, k=1, padding=VALID, scope="lin"), "lin/BatchNorm"))
    outs.append(b.relu(b.conv(x, 3, k=3, scope="c3"), "c3/Relu"))
    return b, outs


def test_siblings_become_one_wide_conv_and_slices():
    b, outs = sibling_graph()
    feeds = b.feeds()
    want = reference(b.g.nodes, outs, feeds, b.weights)
    after = run_passes(Program.from_graph(b.g.nodes, outs))
    nodes = compute_nodes(after)
    (wide,) = [n for n in nodes if n.op is Op.FUSED_CONV2D and n.name.endswith("siblings_1x1")]
    assert wide.shape == (2, 5, 6, 22) and wide.inputs[0].name == "x"
    assert wide.attrs["act"] == "none"  # the activations differ: each slice applies its own
    slices = [n for n in nodes if n.op is Op.CHANNEL_SLICE]
    assert [(s.name, s.attrs["begin"], s.attrs["size"], s.attrs["act"]) for s in slices] == [
        ("B0/Relu", 0, 4, "relu"), ("B1/Relu", 4, 7, "relu"), ("B2/Relu", 11, 5, "relu"),
        ("lin/BatchNorm/FusedBatchNorm", 16, 6, "none")]
    assert all(s.inputs[0] is wide for s in slices)
    # the 3x3 sibling keeps its own conv; the wide conv carries the four branches' FLOPs
    assert {n.name for n in nodes if n.op is Op.FUSED_CONV2D} == {wide.name, "c3/Relu"}
    assert set(after.origin_of(wide)) >= {"B0/Conv2D", "B1/Relu", "B2/BatchNorm/FusedBatchNorm", "lin/Conv2D"}
    assert after.origin_of(slices[0]) == ()
    got = reference_of_program(after, feeds, b.weights)
    for g_, w_ in zip(got, want):
        assert_close(g_, w_, "float64", tol=1e-12)


def test_a_shared_activation_stays_on_the_wide_conv():
    b = Builder()
    x = b.placeholder((1, 4, 4, 6))
    outs = [b.relu(b.conv(x, 3 + i, k=1, padding=VALID, scope=f"B{i}"), f"B{i}/Relu") for i in range(2)]
    after = run_passes(Program.from_graph(b.g.nodes, outs))
    (wide,) = [n for n in after.nodes if n.op is Op.FUSED_CONV2D]
    assert wide.attrs["act"] == "relu"
    assert [n.attrs["act"] for n in after.nodes if n.op is Op.CHANNEL_SLICE] == ["none", "none"]


def test_fusion_log_names_each_group_and_why_a_sibling_stayed_out():
    b, outs = sibling_graph()
    log = run_passes(Program.from_graph(b.g.nodes, outs)).fusion_log
    mine = [r for r in log if r.pass_name == "horizontal"]
    fused = {r.node: r.why for r in mine if r.fused}
    assert set(fused) == {"B0/Relu", "B1/Relu", "B2/Relu", "lin/BatchNorm/FusedBatchNorm"}
    assert ("channels [4:11] of x/siblings_1x1 (4 siblings: B0/Relu, B1/Relu, B2/Relu, "
            "lin/BatchNorm/FusedBatchNorm)") in fused["B1/Relu"]
    declined = {r.node: r.why for r in mine if not r.fused}
    assert set(declined) == {"c3/Relu"}
    assert "x/siblings_1x1: kernel (3, 3) vs (1, 1), padding ((1, 1), (1, 1)) vs ((0, 0), (0, 0))" \
        in declined["c3/Relu"]
    text = format_fusion_log(log)
    assert "horizontal: fused sibling_convs_one_gemm x4; declined 1" in text


def test_at_most_four_siblings_per_gemm():
    b = Builder()
    x = b.placeholder((1, 3, 3, 4))
    outs = [b.relu(b.conv(x, 2 + i, k=1, padding=VALID, scope=f"B{i}"), f"B{i}/Relu") for i in range(5)]
    feeds = b.feeds()
    want = reference(b.g.nodes, outs, feeds, b.weights)
    after = run_passes(Program.from_graph(b.g.nodes, outs))
    wides = [n for n in compute_nodes(after) if n.op is Op.FUSED_CONV2D]
    assert sorted(w.shape[-1] for w in wides) == [2 + 3, 4 + 5 + 6]  # 5 siblings: groups of 2 and 3
    assert len([n for n in after.nodes if n.op is Op.CHANNEL_SLICE]) == 5
    for g_, w_ in zip(reference_of_program(after, feeds, b.weights), want):
        assert_close(g_, w_, "float64", tol=1e-12)


def test_residual_and_lone_convs_do_not_merge():
    b = Builder()
    x = b.placeholder((1, 4, 4, 6))
    y = b.conv(x, 6, k=1, padding=VALID, scope="a")
    z = b.op(Op.ADD, b.conv(x, 6, k=1, padding=VALID, scope="r"), x, name="add")  # a residual sibling
    lone = b.conv(y, 5, k=1, padding=VALID, scope="lone")
    after = run_passes(Program.from_graph(b.g.nodes, [y, z, lone]))
    assert Op.CHANNEL_SLICE not in [n.op for n in after.nodes]
    declined = {r.node: r.why for r in after.fusion_log if r.pass_name == "horizontal" and not r.fused}
    assert declined["add"] == "it has a residual" and "lone/Conv2D" not in declined


def inception_block(batch=2, hw=7, requested_branch=False):
    """An Inception-v3 style block: three 1x1 branch heads on one input, a 3x3 after two of them,
    an avg-pool branch, and the channel concat (Branch_0's slice goes straight into the concat)."""
    with st.Graph() as g:
        x = st.placeholder([batch, hw, hw, 3], name="images")
        with slim.arg_scope([slim.conv2d], activation_fn=tf.nn.relu, **BN):
            net = slim.conv2d(x, 12, [3, 3], scope="stem")
            b0 = slim.conv2d(net, 8, [1, 1], scope="Branch_0/Conv2d_0a_1x1")
            b1 = slim.conv2d(net, 6, [1, 1], scope="Branch_1/Conv2d_0a_1x1")
            b1 = slim.conv2d(b1, 8, [3, 3], scope="Branch_1/Conv2d_0b_3x3")
            b2 = slim.conv2d(net, 5, [1, 1], scope="Branch_2/Conv2d_0a_1x1")
            b2 = slim.conv2d(b2, 7, [3, 3], scope="Branch_2/Conv2d_0b_3x3")
            b3 = slim.avg_pool2d(net, [3, 3], stride=1, padding="SAME", scope="Branch_3/AvgPool_0a_3x3")
            b3 = slim.conv2d(b3, 4, [1, 1], scope="Branch_3/Conv2d_0b_1x1")
            out = tf.concat([b0, b1, b2, b3], 3, name="concat")
    return g, ([out, b0] if requested_branch else out)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_compiled_block_matches_reference(dtype):
    g, out = inception_block()
    model = check_numerics(g, out, dtype=dtype)  # poison mode: an unwritten or early-freed buffer is NaN
    kernels = [k.kernel for k in model.kernels]
    assert kernels.count("conv2d_routed") == 1 and len(kernels) == 5  # stem, routed, 2 x 3x3, window conv
    (routed,) = [s for s in model.plan.steps if s.kernel == "conv2d_routed"]
    assert [o.node.name for o in routed.outputs] == ["Branch_0/Conv2d_0a_1x1/Relu", "Branch_1/Conv2d_0a_1x1/Relu",
                                                     "Branch_2/Conv2d_0a_1x1/Relu"]
    assert [o.target[0].name if o.target else None for o in routed.outputs] == ["concat", None, None]
    assert not any(s.kernel == "channel_slice" for s in model.plan.steps)
    assert routed.bytes_written == 2 * 7 * 7 * (8 + 6 + 5) * {"float32": 4}.get(dtype, 2)
    mem = model.plan.memory
    for o in routed.outputs[1:]:  # live from the routed conv's write to their 3x3 conv's read
        assert mem.storage_of(o.node.name).first == routed.index


def test_compiled_block_with_a_requested_branch_output():
    g, outs = inception_block(requested_branch=True)
    model = check_numerics(g, outs, dtype="float32")
    (routed,) = [s for s in model.plan.steps if s.kernel == "conv2d_routed"]
    assert routed.outputs[0].node.name == "Branch_0/Conv2d_0a_1x1/Relu"
    assert routed.outputs[0].target is None  # an output: its own buffer, copied into the concat
    assert any(s.kernel == "copy_channels" for s in model.plan.steps)


def test_torch_executor_runs_the_merged_form():
    from slimtriton.eager.torch_backend import TORCH
    from slimtriton.executor import evaluate
    from slimtriton.fusion.program import resolve_parameters
    g, out = inception_block()
    weights = st.init_weights(g, seed=0)
    feeds = {n: np.random.default_rng(0).standard_normal(n.shape).astype(np.float32)
             for n in g.nodes if n.op is Op.PLACEHOLDER}
    prog = run_passes(Program.from_graph(g.nodes, [out.node]))
    assert Op.CHANNEL_SLICE in [n.op for n in prog.nodes]
    want = reference_of_program(prog, feeds, weights)
    by_name = {n.name: n for n in prog.nodes}
    got = evaluate(prog.nodes, prog.outputs, {by_name[k.name]: v for k, v in feeds.items()},
                   resolve_parameters(prog, weights), TORCH, "TORCH")
    assert_close(np.asarray(got[0].detach()), want[0], "float32")


def test_dynamic_batch_model_routes_every_bucket():
    g, out = inception_block(batch=None)
    weights = st.init_weights(g, seed=0)
    model = st.compile(g, out, weights, max_batch=4, poison=True)
    x = [n for n in g.nodes if n.op is Op.PLACEHOLDER][0]
    for batch in (1, 3):
        images = np.random.default_rng(batch).standard_normal((batch,) + x.shape[1:]).astype(np.float32)
        want = st.Session(g, weights, backend="reference").run(out, {x.name: images})
        assert_close(model(images), want, "float32")


def test_a_channel_slice_of_anything_else_has_no_kernel():
    b = Builder()
    x = b.placeholder((1, 3, 3, 4))
    y = b.op(Op.CHANNEL_SLICE, b.relu(x), name="slice", begin=1, size=2)
    with pytest.raises(NotImplementedError, match="cannot run channel_slice at slice: its input Relu"):
        st.compile(b.g, y, b.weights)


def test_max_siblings_is_the_kernels_destination_count():
    from slimtriton.kernels.conv import MAX_DESTINATIONS
    assert horizontal.MAX_SIBLINGS == MAX_DESTINATIONS


def test_a_member_whose_folding_loses_precision_keeps_its_scale():
    """keep_scale visits the members of a wide conv: Branch_1's BN scale (variance 1e4, weights
    1e-4: folded float16 weights subnormal) goes back to its range of the fp32 epilogue scale."""
    from tests.test_compile import randomize_bn
    g, out = inception_block()
    w = randomize_bn(st.init_weights(g, seed=0), 0)
    w["Branch_1/Conv2d_0a_1x1/BatchNorm/moving_variance"] = np.full(6, 1e4, np.float32)
    w["Branch_1/Conv2d_0a_1x1/weights"] = (w["Branch_1/Conv2d_0a_1x1/weights"] * 1e-4).astype(np.float32)
    x = [n for n in g.nodes if n.op is Op.PLACEHOLDER][0]
    images = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    want = st.Session(g, w, backend="reference").run(out, {x: images})
    model = st.compile(g, out, w, dtype="float16")
    (key,) = model.plan.program.kept_scale
    assert key == "stem/Relu/siblings_1x1:Branch_1/Conv2d_0a_1x1/BatchNorm/FusedBatchNormV3"
    assert [k.kernel for k in model.kernels].count("conv2d_routed") == 1
    assert_close(model(images), want, "float16")


def test_saved_engine_keeps_the_routed_step(tmp_path):
    """The saved engine's plan record holds the multi-output step; loading rebuilds and checks it."""
    g, out = inception_block()
    weights = st.init_weights(g, seed=0)
    model = st.compile(g, out, weights, dtype="float32")
    x = [n for n in g.nodes if n.op is Op.PLACEHOLDER][0]
    images = np.random.default_rng(3).standard_normal(x.shape).astype(np.float32)
    expected = model(images)
    path = model.save(tmp_path / "block.engine")
    loaded = st.load_compiled(path, device="cpu")
    (routed,) = [k for k in loaded.kernels if k.kernel == "conv2d_routed"]
    assert len(routed.step.outputs) == 3
    np.testing.assert_array_equal(loaded(images), expected)


def resnet_unit(version=1, batch=2, hw=6):
    """The first unit of a ResNet block: the 1x1 projection shortcut (no activation) and conv1
    (BN + ReLU) read the same tensor -- v1: the block input; v2: its pre-activation BN + ReLU,
    which both convs apply as their prologue."""
    with st.Graph() as g:
        x = st.placeholder([batch, hw, hw, 3], name="images")
        with slim.arg_scope([slim.conv2d], activation_fn=tf.nn.relu, **BN):
            net = slim.conv2d(x, 8, [3, 3], scope="stem")
            if version == 2:
                net = slim.batch_norm(net, activation_fn=tf.nn.relu, scope="preact", is_training=False)
                shortcut = slim.conv2d(net, 16, [1, 1], activation_fn=None, normalizer_fn=None, scope="shortcut")
            else:
                shortcut = slim.conv2d(net, 16, [1, 1], activation_fn=None, scope="shortcut")
            r = slim.conv2d(net, 4, [1, 1], scope="conv1")
            r = slim.conv2d(r, 4, [3, 3], scope="conv2")
            r = slim.conv2d(r, 16, [1, 1], activation_fn=None, scope="conv3")
            out = tf.nn.relu(shortcut + r)
    return g, out


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_resnet_shortcut_and_conv1_share_one_gemm(version, dtype):
    g, out = resnet_unit(version)
    model = check_numerics(g, out, dtype=dtype)
    (routed,) = [s for s in model.plan.steps if s.kernel == "conv2d_routed"]
    assert [o.node.name.split("/")[0] for o in routed.outputs] == ["shortcut", "conv1"]
    assert routed.kwargs["act"] == "none" and routed.kwargs["acts"] == ("none", "relu")
    assert (routed.kwargs.get("in_scale") is not None) == (version == 2)  # v2: the shared prologue
    assert len(model.kernels) == 4  # stem, shortcut+conv1, conv2, conv3 (+ residual, relu)
