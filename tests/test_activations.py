"""Every activation of the vocabulary (ir/ops.py `Act`) against the NumPy reference, which
defines it (NaN and infinities included):

* the torch formula (eager/torch_backend.py) on arrays with NaN / +-inf cells;
* every kernel that takes an activation, called directly (interpreter): conv2d (epilogue
  act, act2 after a residual, prologue), depthwise_conv2d, conv2d_transpose, matmul,
  mean_matmul, affine_act (FUSED_ELEMENTWISE) and unary; NaN / +-inf reach the activations
  through the residual, the shift and the elementwise inputs;
* compiled graphs (slim / tf calls -> fused plan -> kernels) against the reference session,
  with the activation fused into the epilogue of each kind of producer.

Tests iterate over `Act`, so a new activation is covered without editing this file.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import slimtriton as sl
from slimtriton import kernels as K
from slimtriton import slim, tf
from slimtriton.ir.ops import Act, Op, act_value, parse_act
from slimtriton.reference import numpy_ops as R
from tests.helpers import TOLERANCE, assert_close

from .kernels.util import DEVICE, DTYPES, dev, rounded, vec

SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ACTS = list(Act)
SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30])
# Activations whose kernels do not yet give the reference's NaN semantics (none).
NAN_NOT_YET: set = set()


def specials_ok(*acts) -> bool:
    return not any(parse_act(a)[0] in NAN_NOT_YET for a in acts)


@st.composite
def act_values(draw, acts=ACTS):
    """An activation attribute value; one with a parameter gets a drawn slope in [0, 1.5]."""
    act = draw(st.sampled_from(acts))
    if act.param is None:
        return act_value(act)
    return act_value(act, draw(st.sampled_from([0.0, 0.01, 0.2, 0.5, 1.0, 1.5])))


def assert_same(actual, expected, dtype: str, what: str = "") -> None:
    """NaN where the reference has NaN, the same infinities, the rest within the dtype's
    tolerance (relative L2) -- or, for a handful of cells, elementwise."""
    a = actual.detach().double().cpu().numpy() if isinstance(actual, torch.Tensor) else np.asarray(actual, float)
    e = np.asarray(expected, dtype=np.float64)
    if dtype in ("float16", "bfloat16"):  # the reference result as the output dtype holds it
        e = rounded(e, dtype)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    assert np.array_equal(nan_a, nan_e), f"{what}: NaN at {np.argwhere(nan_a != nan_e)[:5].tolist()}"
    inf_e = np.isinf(e)
    assert np.array_equal(a[inf_e], e[inf_e]), f"{what}: infinities differ"
    finite = ~(nan_e | inf_e)
    assert np.all(np.isfinite(a[finite])), f"{what}: non-finite where the reference is finite"
    if finite.any():
        tol = TOLERANCE[dtype]
        if finite.sum() < 8:
            np.testing.assert_allclose(a[finite], e[finite], rtol=10 * tol, atol=10 * tol, err_msg=what)
        else:
            assert_close(a[finite], e[finite], dtype, what)


# -- the formulas -----------------------------------------------------------------------------
@given(act_values(), st.lists(st.floats(-30, 30), min_size=1, max_size=24))
@SETTINGS
def test_torch_formula_matches_the_reference(act, values):
    from slimtriton.eager.torch_backend import _act
    x = np.concatenate([np.asarray(values), SPECIALS])
    got = _act(torch.tensor(x, dtype=torch.float64), act)
    assert_same(got, R.activation(x, act), "float64", f"torch {act}")


def test_reference_semantics_at_the_edges():
    x = np.array([np.nan, -np.inf, np.inf, -1.0, 2.0])
    for act in ACTS:
        y = R.activation(x, act_value(act, 0.5) if act.param else act_value(act))
        assert np.isnan(y[0]), f"{act}: NaN must stay NaN"
        assert y[2] == (6.0 if act is Act.RELU6 else 1.0 if act in (Act.SIGMOID, Act.TANH) else np.inf), act


@pytest.mark.parametrize("act", [a for a in ACTS if a is not Act.NONE], ids=str)
def test_unknown_and_malformed_activations_are_refused_by_kernels(act):
    x = torch.zeros(2, 3, device=DEVICE)
    with pytest.raises(K.KernelArgumentError, match="gelu"):
        K.unary("gelu", x, name="layer")
    bad = act.value if act.param else (act.value, 1.0)  # parameter missing / not expected
    with pytest.raises(K.KernelArgumentError, match="layer"):
        K.affine_act(x, None, None, act=bad, name="layer")
    if act is Act.LEAKY_RELU:  # the kernels encode slopes >= 0 only (kernels/common.py ACT_CODES)
        with pytest.raises(K.KernelArgumentError, match="layer.*slope"):
            K.unary((act.value, -0.5), x, name="layer")


# -- every kernel that takes an activation ---------------------------------------------------
def _epilogue_case(draw_act, draw_act2, cout, lead, dtype, rng, specials: bool):
    """(kwargs, reference acc -> expected): scale, shift (with +-inf when `specials`), act, a
    residual (with NaN / +-inf cells) and act2."""
    scale = rng.uniform(-2.0, 2.0, cout)
    shift = rng.uniform(-3.0, 3.0, cout)
    if specials and cout >= 3:
        shift[:2] = [np.inf, -np.inf]
    residual = rounded(rng.standard_normal((*lead, cout)) * 4, dtype)
    if specials:
        flat = residual.reshape(-1)
        k = min(len(flat), len(SPECIALS) - 2)
        flat[:k] = SPECIALS[:k]
    kwargs = dict(scale=vec(scale), shift=vec(shift), act=draw_act, residual=dev(residual, dtype),
                  residual_scale=0.5, act2=draw_act2)

    def reference(acc):
        with np.errstate(invalid="ignore"):
            return R.epilogue(acc, rounded(scale, "float32"), rounded(shift, "float32"), draw_act, residual, 0.5,
                              draw_act2)
    return kwargs, reference


@given(act_values(), act_values(), act_values(), st.sampled_from(DTYPES), st.integers(0, 2**31 - 1), st.booleans())
@SETTINGS
def test_conv2d_epilogue_and_prologue(act, act2, pro, dtype, seed, specials):
    rng = np.random.default_rng(seed)
    n, h, w, cin, cout = 1, 5, 6, 3, 5
    x = rounded(rng.standard_normal((n, h, w, cin)) * 2, dtype)
    wt = rounded(rng.standard_normal((3, 3, cin, cout)) / 3, dtype)
    in_scale, in_shift = rng.uniform(0.5, 1.5, cin), rng.standard_normal(cin)
    specials = specials and specials_ok(act, act2, pro)
    kwargs, finish = _epilogue_case(act, act2, cout, (n, h - 2, w), dtype, rng, specials)
    got = K.conv2d(dev(x, dtype), dev(wt, dtype), padding=((0, 0), (1, 1)), in_scale=vec(in_scale),
                   in_shift=vec(in_shift), prologue_act=pro, **kwargs)
    xp = R.prologue(x, rounded(in_scale, "float32"), rounded(in_shift, "float32"), pro)
    want = finish(R.conv2d(xp, wt, padding=((0, 0), (1, 1))))
    assert_same(got, want, dtype, f"conv2d act={act} act2={act2} prologue={pro}")


@given(act_values(), act_values(), act_values(), st.sampled_from(DTYPES), st.integers(0, 2**31 - 1), st.booleans())
@SETTINGS
def test_depthwise_epilogue_and_prologue(act, act2, pro, dtype, seed, specials):
    rng = np.random.default_rng(seed)
    n, h, w, c, dm = 1, 5, 4, 3, 2
    x = rounded(rng.standard_normal((n, h, w, c)) * 2, dtype)
    wt = rounded(rng.standard_normal((3, 3, c, dm)) / 3, dtype)
    in_scale, in_shift = rng.uniform(0.5, 1.5, c), rng.standard_normal(c)
    specials = specials and specials_ok(act, act2, pro)
    kwargs, finish = _epilogue_case(act, act2, c * dm, (n, h, w), dtype, rng, specials)
    got = K.depthwise_conv2d(dev(x, dtype), dev(wt, dtype), padding=((1, 1), (1, 1)), in_scale=vec(in_scale),
                             in_shift=vec(in_shift), prologue_act=pro, **kwargs)
    xp = R.prologue(x, rounded(in_scale, "float32"), rounded(in_shift, "float32"), pro)
    want = finish(R.depthwise_conv2d(xp, wt, padding=((1, 1), (1, 1))))
    assert_same(got, want, dtype, f"depthwise act={act} act2={act2} prologue={pro}")


@given(act_values(), act_values(), st.sampled_from(DTYPES), st.integers(0, 2**31 - 1), st.booleans())
@SETTINGS
def test_conv2d_transpose_epilogue(act, act2, dtype, seed, specials):
    rng = np.random.default_rng(seed)
    n, h, w, cin, cout = 1, 3, 3, 4, 5
    x = rounded(rng.standard_normal((n, h, w, cin)) * 2, dtype)
    wt = rounded(rng.standard_normal((3, 3, cout, cin)) / 3, dtype)
    specials = specials and specials_ok(act, act2)
    kwargs, finish = _epilogue_case(act, act2, cout, (n, 6, 6), dtype, rng, specials)
    got = K.conv2d_transpose(dev(x, dtype), dev(wt, dtype), strides=(2, 2), pad_before=(1, 1), output_hw=(6, 6),
                             **kwargs)
    want = finish(R.conv2d_transpose(x, wt, (2, 2), (1, 1), (6, 6)))
    assert_same(got, want, dtype, f"conv2d_transpose act={act} act2={act2}")


@given(act_values(), act_values(), st.sampled_from(DTYPES), st.integers(0, 2**31 - 1), st.booleans())
@SETTINGS
def test_matmul_epilogue(act, act2, dtype, seed, specials):
    rng = np.random.default_rng(seed)
    m, k, nout = 7, 9, 6
    x = rounded(rng.standard_normal((m, k)) * 2, dtype)
    wt = rounded(rng.standard_normal((k, nout)) / 3, dtype)
    specials = specials and specials_ok(act, act2)
    kwargs, finish = _epilogue_case(act, act2, nout, (m,), dtype, rng, specials)
    got = K.matmul(dev(x, dtype), dev(wt, dtype), **kwargs)
    assert_same(got, finish(R.matmul(x, wt)), dtype, f"matmul act={act} act2={act2}")


@given(act_values(), act_values(), st.sampled_from(DTYPES), st.integers(0, 2**31 - 1))
@SETTINGS
def test_mean_matmul_activation_and_prologue(act, pro, dtype, seed):
    rng = np.random.default_rng(seed)
    n, h, w, c, nout = 2, 3, 4, 5, 6
    x = rounded(rng.standard_normal((n, h, w, c)) * 2, dtype)
    wt = rounded(rng.standard_normal((c, nout)) / 2, dtype)
    scale, shift = rng.uniform(-2, 2, nout), rng.uniform(-3, 3, nout)
    in_scale, in_shift = rng.uniform(0.5, 1.5, c), rng.standard_normal(c)
    got = K.mean_matmul(dev(x, dtype), K.prepack_matmul(dev(wt, dtype)), scale=vec(scale), shift=vec(shift), act=act,
                        in_scale=vec(in_scale), in_shift=vec(in_shift), prologue_act=pro)
    xp = R.prologue(x, rounded(in_scale, "float32"), rounded(in_shift, "float32"), pro)
    want = R.activation(R.matmul(xp.mean(axis=(1, 2)), wt) * rounded(scale, "float32") + rounded(shift, "float32"),
                        act)
    assert_same(got, want, dtype, f"mean_matmul act={act} prologue={pro}")


@given(act_values(), act_values(), st.sampled_from(DTYPES), st.integers(0, 2**31 - 1), st.booleans())
@SETTINGS
def test_affine_act_and_unary(act, act2, dtype, seed, residual):
    rng = np.random.default_rng(seed)
    specials = specials_ok(act, act2)
    x = rng.standard_normal((3, 4, 7)) * 5
    if specials:
        x.reshape(-1)[:len(SPECIALS)] = SPECIALS
    x = rounded(x, dtype)
    scale, shift = rng.uniform(-2, 2, 7), rng.uniform(-2, 2, 7)
    kwargs = {}
    res = None
    if residual:
        res = rounded(rng.standard_normal((3, 4, 7)), dtype)
        if specials:
            res.reshape(-1)[-3:] = [np.nan, np.inf, -np.inf]
        kwargs = dict(residual=dev(res, dtype), residual_scale=-1.25, act2=act2)
    got = K.affine_act(dev(x, dtype), vec(scale), vec(shift), act=act, **kwargs)
    with np.errstate(invalid="ignore"):
        want = R.epilogue(x, rounded(scale, "float32"), rounded(shift, "float32"), act, res, -1.25,
                          act2 if residual else "none")
    assert_same(got, want, dtype, f"affine_act act={act} act2={act2}")
    assert_same(K.unary(act, dev(x, dtype)), R.activation(x, act), dtype, f"unary {act}")


# -- compiled graphs: the activation fuses into each producer's epilogue ------------------------
def _tf_fn(act_val):
    """The tf.nn function recording `act_val` (its first TF name), with its parameter bound."""
    act, param = parse_act(act_val)
    fn = getattr(tf.nn, act.tf_names[0])
    return (lambda x, **kw: fn(x, param, **kw)) if act.param else fn


def _compiled_matches_reference(build, feeds_shape, seed=0):
    rng = np.random.default_rng(seed)
    with sl.Graph() as g:
        x = sl.placeholder(list(feeds_shape), name="x")
        outputs = build(x)
    weights = sl.init_weights(g, seed=seed)
    for name, v in list(weights.items()):  # non-trivial BN statistics and biases
        weights[name] = v + rng.uniform(0.1, 0.5, v.shape).astype(v.dtype) if v.ndim == 1 else v
    xv = (rng.standard_normal(feeds_shape) * 2).astype(np.float32)
    model = sl.compile(g, outputs, weights, dtype="float32")
    want = sl.Session(g, weights, backend="reference").run(outputs, {x: xv})
    got = model(xv)
    for a, b in zip(got, want):
        assert_close(a, b, "float32")
    return model


@pytest.mark.parametrize("act", [a for a in ACTS if a is not Act.NONE], ids=str)
def test_compiled_graphs_fuse_every_activation(act):
    fn = _tf_fn(act_value(act, 0.1) if act.param else act_value(act))

    bn = {"is_training": False, "scale": True}

    def build(x):
        with slim.arg_scope([slim.conv2d, slim.separable_conv2d, slim.conv2d_transpose, slim.fully_connected],
                            activation_fn=fn):
            a = slim.conv2d(x, 6, [3, 3], scope="conv", normalizer_fn=slim.batch_norm, normalizer_params=bn)
            b = slim.separable_conv2d(a, None, [3, 3], depth_multiplier=1, scope="dw",
                                      normalizer_fn=slim.batch_norm, normalizer_params=bn)
            c = slim.conv2d_transpose(b, 4, [3, 3], stride=2, scope="up")
            r = slim.conv2d(c, 4, [1, 1], activation_fn=None, scope="res")
            d = fn(c + r)                                  # act2 after a residual add
            e = fn(tf.nn.bias_add(tf.reshape(d, [-1, 4]), tf.get_variable("b", [4])))   # elementwise
            f = slim.fully_connected(e, 3, scope="fc")
        return [f]
    model = _compiled_matches_reference(build, (1, 5, 5, 3))
    program = model.plan.program
    fused = [n for n in program.nodes if n.op.name.startswith("FUSED_")]
    acts = {(n.op, k) for n in fused for k in ("act", "act2") if parse_act(n.attrs.get(k, "none"))[0] is act}
    for op, key in [(Op.FUSED_CONV2D, "act"), (Op.FUSED_DEPTHWISE_CONV2D, "act"),
                    (Op.FUSED_CONV2D_TRANSPOSE, "act"), (Op.FUSED_MATMUL, "act"), (Op.FUSED_ELEMENTWISE, "act")]:
        assert (op, key) in acts, f"{act} did not fuse into {op.short}'s {key}: {sorted(acts)}"
    assert any(k == "act2" for _, k in acts), f"{act} did not fuse as act2 after the residual add"
    assert not [n for n in program.nodes if n.op.group.value == "activation"], "an activation ran unfused"


# -- the tf.maximum(z, a*z) idiom -----------------------------------------------------------------
def _idiom_program(a, order):
    from slimtriton.fusion import Program
    with sl.Graph() as g:
        x = sl.placeholder([1, 4, 4, 3], name="x")
        z = slim.conv2d(x, 5, [3, 3], activation_fn=None, scope="conv")
        az = {"za": z * a, "az": a * z}[order[0]]
        y = tf.maximum(z, az) if order[1] == "z_first" else tf.maximum(az, z)
    return g, x, y, Program.from_graph(g.nodes, [y.node])


@pytest.mark.parametrize("order", [("za", "z_first"), ("az", "z_first"), ("za", "az_first"), ("az", "az_first")])
def test_leaky_relu_idiom_pattern_replacement_same_output(order):
    from slimtriton.fusion import activation_idioms
    from slimtriton.fusion.program import rewrite
    from tests.fusion.graphs import reference, reference_of_program
    g, x, y, prog = _idiom_program(0.1, order)
    after = rewrite(prog, activation_idioms.RULES, after="pass activation_idioms")
    (leaky,) = [n for n in after.nodes if n.op is Op.LEAKY_RELU]
    assert leaky.attrs["alpha"] == pytest.approx(0.1) and leaky.name == y.node.name
    assert not [n for n in after.nodes if n.op in (Op.MAXIMUM, Op.MUL)]
    weights = sl.init_weights(g, seed=1)
    xv = np.random.default_rng(0).standard_normal((1, 4, 4, 3))
    xv.reshape(-1)[:3] = [np.nan, np.inf, -np.inf]
    feeds = {x.node: xv}
    want = reference(g.nodes, [y.node], feeds, weights)
    got = reference_of_program(after, feeds, weights)
    np.testing.assert_array_equal(np.isnan(got[0]), np.isnan(want[0]))
    ok = ~np.isnan(want[0])
    np.testing.assert_allclose(got[0][ok], want[0][ok], rtol=1e-12)


@pytest.mark.parametrize("a", [1.0, 1.5, 0.0, -0.2])
def test_leaky_relu_idiom_needs_a_slope_strictly_between_0_and_1(a):
    from slimtriton.fusion import activation_idioms
    from slimtriton.fusion.program import rewrite
    _, _, _, prog = _idiom_program(a, ("za", "z_first"))
    after = rewrite(prog, activation_idioms.RULES, after="pass activation_idioms")
    assert Op.MAXIMUM in [n.op for n in after.nodes] and Op.LEAKY_RELU not in [n.op for n in after.nodes]


def test_leaky_relu_idiom_compiles_into_the_conv_epilogue():
    def build(x):
        z = slim.conv2d(x, 5, [3, 3], activation_fn=None, scope="conv")
        return [tf.maximum(z, 0.2 * z)]
    model = _compiled_matches_reference(build, (1, 4, 4, 3))
    (conv,) = [n for n in model.plan.program.nodes if n.op is Op.FUSED_CONV2D]
    assert parse_act(conv.attrs["act"]) == (Act.LEAKY_RELU, pytest.approx(0.2))
    assert len(model.plan.steps) == 1
