"""Each pass: pattern / replacement / same output (reference executor) before and after."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from slimtriton.eager.torch_backend import TORCH
from slimtriton.executor import evaluate
from slimtriton.fusion import Pat, Program, folding, run_passes
from slimtriton.fusion.pipeline import IR_PASSES
from slimtriton.fusion.program import resolve_parameters, rewrite
from slimtriton.ir import Op
from tests.fusion.graphs import Builder, reference, reference_of_program
from tests.helpers import assert_close

VALID = ((0, 0), (0, 0))


def run(b, outputs, upto=None):
    prog = Program.from_graph(b.g.nodes, outputs)
    feeds = b.feeds()
    want = reference(b.g.nodes, outputs, feeds, b.weights)
    after = run_passes(prog, upto=upto)
    got = reference_of_program(after, feeds, b.weights)
    for g, w in zip(got, want):
        assert_close(g, w, "float64", tol=1e-12)
    return after


def assert_torch_run_matches_reference(b, after, y):
    """The rewritten program `after`, run by the torch executor, equals the recorded graph's
    reference output `y` (float32)."""
    feeds = b.feeds()
    params = resolve_parameters(after, b.weights)
    by_name = {n.name: n for n in after.nodes}
    got = evaluate(after.nodes, after.outputs, {by_name[k.name]: torch.tensor(v) for k, v in feeds.items()},
                   {k: torch.tensor(v, dtype=torch.float32) for k, v in params.items()}, TORCH, "TORCH")
    want = reference(b.g.nodes, [y], feeds, b.weights)
    assert_close(got[0], want[0], "float32")


def ops(prog):
    return [n.op for n in prog.nodes if n.op not in (Op.VARIABLE, Op.PLACEHOLDER, Op.CONSTANT)]


def test_pattern_matcher_commutative_and_one_use():
    b = Builder()
    x = b.placeholder((1, 2, 2, 3))
    c = b.op(Op.RELU, x)
    k = b.const(2.0)
    m = b.op(Op.MUL, k, c)
    other = b.op(Op.NEG, c)
    uses = Program.from_graph(b.g.nodes, [m, other]).uses()
    pat = Pat(Op.MUL, Pat(Op.RELU, name="r"), Pat(Op.CONSTANT, name="c"), commutative=True)
    got = pat.match(m, uses)
    assert got["r"] is c and got["c"] is k
    assert Pat(Op.MUL, Pat(Op.RELU, name="r"), Pat(Op.CONSTANT), commutative=False).match(m, uses) is None
    one = Pat(Op.MUL, Pat(Op.RELU, one_use=True), Pat(Op.CONSTANT), commutative=True)
    assert one.match(m, uses) is None  # c also feeds `other`


def test_pipeline_lists_every_pass_once():
    names = [n for n, _ in IR_PASSES]
    assert names == ["const_fold", "remove_identities", "activation_idioms", "fold_pad", "fold_affine", "epilogue", "pointwise",
                     "prologue", "window_prologue", "strided_residual", "mean_gemm", "horizontal"]


def test_fold_batch_norm_matches_unfolded_affine():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 3, 4, 5))
    b, mean, var, gamma, beta = (rng.standard_normal(5) for _ in range(5))
    var = np.abs(var) + 0.1
    w2, shift = folding.fold_batch_norm(w, b, mean, var, gamma, beta, 1e-3)
    x = rng.standard_normal((7, 3 * 3 * 4))
    direct = ((x @ w.reshape(-1, 5) + b) - mean) / np.sqrt(var + 1e-3) * gamma + beta
    np.testing.assert_allclose(x @ w2.reshape(-1, 5) + shift, direct, rtol=1e-12, atol=1e-12)
    # depthwise layout: output channel c*dm + m
    wd = rng.standard_normal((3, 3, 2, 3))
    s = rng.standard_normal(6)
    np.testing.assert_allclose(folding.scale_output_channels(wd, s, "depthwise").reshape(3, 3, 6),
                               wd.reshape(3, 3, 6) * s)


def test_const_fold_weight_only_tile():
    b = Builder()
    x = b.placeholder((1, 5, 5, 3))
    k = b.var("in_plane/weights", (3, 3, 1, 1))
    tiled = b.op(Op.TILE, k, multiples=(1, 1, 3, 1), name="in_plane/Tile")
    y = b.op(Op.DEPTHWISE_CONV2D, x, tiled, strides=(1, 1), padding=((1, 1), (1, 1)), dilations=(1, 1))
    after = run(b, [y], upto="const_fold")
    assert Op.TILE not in ops(after)
    assert "in_plane/Tile/folded" in after.derived


def test_remove_identities():
    b = Builder()
    x = b.placeholder((1, 4, 4, 3))
    y = b.op(Op.IDENTITY, x)
    y = b.op(Op.DROPOUT, y, keep_prob=0.5, is_training=False)
    y = b.op(Op.MAX_POOL, y, ksize=(1, 1), strides=(1, 1), padding=VALID)
    y = b.op(Op.RESHAPE, y, shape=(1, 4, 4, 3))
    y = b.op(Op.RESHAPE, b.op(Op.RESHAPE, y, shape=(16, 3)), shape=(48,))
    y = b.op(Op.RELU, y)
    after = run(b, [y], upto="remove_identities")
    assert ops(after) == [Op.RESHAPE, Op.RELU]


def test_fold_pad_into_conv():
    b = Builder()
    x = b.placeholder((1, 6, 6, 3))
    p = b.pad(x, ((0, 0), (1, 2), (2, 1), (0, 0)))
    y = b.conv(p, 4, padding=VALID, stride=2)
    after = run(b, [y], upto="fold_pad")
    assert ops(after) == [Op.CONV2D]
    assert after.nodes[-1].attrs["padding"] == ((1, 2), (2, 1))


def test_pad_before_pool_is_not_folded():
    b = Builder()
    x = b.placeholder((1, 6, 6, 3))
    y = b.op(Op.MAX_POOL, b.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), ksize=(3, 3), strides=(2, 2), padding=VALID)
    after = run(b, [y], upto="fold_pad")
    assert Op.PAD in ops(after)


@pytest.mark.parametrize("scale", [True, False])
def test_conv_bn_relu_is_one_fused_conv(scale):
    b = Builder()
    x = b.placeholder((2, 5, 5, 3))
    y = b.relu(b.bn(b.conv(x, 4), "conv/BatchNorm", scale=scale))
    after = run(b, [y])
    assert ops(after) == [Op.FUSED_CONV2D]
    fused = after.nodes[-1]
    assert fused.attrs["act"] == "relu" and fused.name == "Relu"
    assert set(after.origin_of(fused)) == {"conv/Conv2D", "conv/BatchNorm/FusedBatchNorm", "Relu"}
    # the original weights are untouched; the folded ones are new derived parameters
    assert any(k.endswith("folded_weights") for k in after.derived)


def test_fc_bias_relu6_and_bias_then_bn():
    b = Builder()
    x = b.placeholder((3, 6))
    y = b.op(Op.RELU6, b.bias(b.fc(x, 5), "fc"))
    z = b.bn(b.bias(b.fc(y, 4, scope="fc2"), "fc2"), "fc2/BatchNorm")
    after = run(b, [z])
    assert ops(after) == [Op.FUSED_MATMUL, Op.FUSED_MATMUL]
    assert after.nodes[-1].attrs["act"] == "none"


def test_multi_consumer_conv_is_not_fused_into():
    b = Builder()
    x = b.placeholder((1, 4, 4, 3))
    c = b.conv(x, 4)
    y = b.relu(b.bn(c, "bn"))
    z = b.op(Op.NEG, c)
    after = run(b, [y, z])
    kinds = ops(after)
    assert kinds.count(Op.FUSED_CONV2D) == 1 and Op.FUSED_ELEMENTWISE in kinds
    conv = next(n for n in after.nodes if n.op is Op.FUSED_CONV2D)
    assert conv.attrs["act"] == "none"


def test_residual_add_then_relu_and_scaled_residual():
    b = Builder()
    x = b.placeholder((1, 4, 4, 4))
    short = b.bn(b.conv(x, 4, k=1, padding=VALID, scope="short"), "short/bn")
    res = b.bn(b.conv(x, 4, scope="res"), "res/bn")
    y = b.relu(b.op(Op.ADD, short, res, name="add"), "out")
    up = b.bias(b.conv(y, 4, k=1, padding=VALID, scope="up"), "up")
    z = b.relu(b.op(Op.ADD, y, b.op(Op.MUL, up, b.const(0.17))), "out2")
    after = run(b, [z])
    assert ops(after) == [Op.FUSED_CONV2D] * 3
    add1, add2 = (next(n for n in after.nodes if n.name == name) for name in ("out", "out2"))
    assert add1.attrs["residual"] and add1.attrs["act2"] == "relu"
    # the 0.17 lands in the epilogue (scale/shift of the bias-only conv, or residual_scale)
    assert add2.attrs["residual"] and add2.attrs["act2"] == "relu" and "mul" in after.origin_of(add2)


def test_scaled_residual_of_activated_conv_uses_residual_scale():
    b = Builder()
    x = b.placeholder((1, 4, 4, 4))
    up = b.relu(b.conv(x, 4, k=1, padding=VALID, scope="up"))
    z = b.op(Op.ADD, x, b.op(Op.MUL, b.const(0.2), up), name="out")
    after = run(b, [z])
    assert ops(after) == [Op.FUSED_CONV2D]
    assert after.nodes[-1].attrs["residual_scale"] == pytest.approx(0.2)


def test_requested_intermediate_is_not_fused_away():
    b = Builder()
    x = b.placeholder((1, 4, 4, 3))
    c = b.bn(b.conv(x, 4), "bn")
    y = b.relu(c)
    after = run(b, [c, y])
    assert ops(after) == [Op.FUSED_CONV2D, Op.FUSED_ELEMENTWISE]


def test_preactivation_goes_into_1x1_prologues_but_not_3x3():
    b = Builder()
    x = b.placeholder((1, 5, 5, 4))
    pre = b.relu(b.bn(x, "preact"), "preact/Relu")
    a = b.conv(pre, 4, k=1, padding=VALID, scope="short")
    c = b.conv(pre, 4, k=1, padding=VALID, scope="conv1")
    y = b.op(Op.ADD, a, c)
    after = run(b, [y])
    assert Op.FUSED_ELEMENTWISE not in ops(after)
    assert all(n.attrs.get("prologue") for n in after.nodes if n.op is Op.FUSED_CONV2D)

    b = Builder()
    x = b.placeholder((1, 5, 5, 4))
    pre = b.relu(b.bn(x, "preact"), "preact/Relu")
    y = b.conv(pre, 4, k=3, scope="conv2")
    after = run(b, [y])
    assert ops(after) == [Op.FUSED_ELEMENTWISE, Op.FUSED_CONV2D]


def test_every_pass_is_verified():
    b = Builder()
    x = b.placeholder((1, 4, 4, 3))
    y = b.relu(b.conv(x, 4))
    prog = Program.from_graph(b.g.nodes, [y])

    def broken(match, ctx):  # a stale shape: the verifier must catch it
        n = match["r"]
        return n.replace(shape=(1, 1))
    from slimtriton.fusion import Rule
    from slimtriton.ir import VerificationError
    with pytest.raises(VerificationError, match="pass broken"):
        rewrite(prog, [Rule("broken", Pat(Op.RELU, name="r"), broken)], after="pass broken")


def test_strided_residual_pass_reads_the_subsample_in_place_same_output_on_reference_and_torch():
    b = Builder()
    x = b.placeholder((2, 7, 7, 4))
    short = b.op(Op.MAX_POOL, x, ksize=(1, 1), strides=(2, 2), padding=VALID, name="shortcut/MaxPool")
    r = b.conv(x, 4, k=3, stride=2, padding=((1, 1), (1, 1)), scope="res")
    y = b.relu(b.op(Op.ADD, short, r, name="add"), "out")
    after = run(b, [y])  # every pass; the reference of the rewritten program equals the original's
    assert Op.MAX_POOL not in ops(after)
    (conv,) = [n for n in after.nodes if n.op is Op.FUSED_CONV2D]
    assert conv.attrs["residual_strides"] == (2, 2) and conv.inputs[4] is after.nodes[0]
    assert "shortcut/MaxPool" in after.origin_of(conv)
    assert [r.rule for r in after.fusion_log if r.fused].count("strided_residual") == 1
    assert_torch_run_matches_reference(b, after, y)


def test_strided_residual_declined_when_the_subsample_is_also_an_output():
    b = Builder()
    x = b.placeholder((1, 5, 5, 3))
    short = b.op(Op.MAX_POOL, x, ksize=(1, 1), strides=(2, 2), padding=VALID, name="sub")
    y = b.op(Op.ADD, short, b.conv(x, 3, k=1, stride=2, padding=VALID), name="add")
    after = run(b, [y, short])
    assert Op.MAX_POOL in ops(after)
    why = {r.node: r.why for r in after.fusion_log if r.rule == "strided_residual" and not r.fused}
    assert why == {"add": "the subsample sub has 2 consumers (or is a requested output)"}


@pytest.mark.parametrize("keepdims, postnorm", [(True, False), (False, True)])
def test_mean_gemm_pass_is_one_op_with_the_same_output_on_reference_and_torch(keepdims, postnorm):
    b = Builder()
    x = b.placeholder((2, 5, 5, 4))
    h = b.conv(x, 6, scope="c")
    if postnorm:  # ResNet v2: BN+ReLU of a residual sum (a pointwise kernel, then the mean's prologue)
        h = b.op(Op.ADD, h, b.conv(x, 6, scope="c2"), name="sum")
        h = b.relu(b.bn(h, "postnorm", scale=True), "postnorm/Relu")
    m = b.op(Op.REDUCE_MEAN, h, axes=(1, 2), keepdims=keepdims, name="pool")
    y = b.conv(m, 3, k=1, padding=VALID, scope="logits") if keepdims else b.fc(m, 3)
    after = run(b, [y])  # every pass; the reference of the rewritten program equals the original's
    (mm,) = [n for n in after.nodes if n.op is Op.FUSED_MEAN_MATMUL]
    assert mm.attrs["keepdims"] is keepdims and mm.attrs["prologue"] is postnorm
    assert Op.REDUCE_MEAN not in ops(after) and "pool" in after.origin_of(mm)
    assert_torch_run_matches_reference(b, after, y)
