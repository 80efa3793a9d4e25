"""Random valid slim graphs (chains and DAGs of conv with any padding / stride / dilation,
BN with and without scale, relu / relu6, pooling, concat, scaled residual adds, separable
convs, fully_connected) compiled under the interpreter equal the reference, and the plan
has fewer kernels than IR ops whenever a fusible pattern is present."""
from __future__ import annotations


import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as hs

import slimtriton as st
from slimtriton import slim, tf
from slimtriton.ir import Op
from tests.helpers import assert_close
from tests.test_compile import randomize_bn


ACTS = {"none": None, "relu": tf.nn.relu, "relu6": tf.nn.relu6}


@hs.composite
def layer_specs(draw):
    n = draw(hs.integers(1, 4))
    return [draw(hs.fixed_dictionaries({
        "kind": hs.sampled_from(["conv", "conv", "separable", "pool", "residual", "concat"]),
        "k": hs.integers(1, 3), "stride": hs.integers(1, 2), "rate": hs.integers(1, 2),
        "padding": hs.sampled_from(["SAME", "VALID"]), "bn": hs.sampled_from([None, "scale", "noscale"]),
        "act": hs.sampled_from(list(ACTS)), "depth": hs.integers(2, 5), "scale": hs.sampled_from([1.0, 0.17]),
    })) for _ in range(n)], draw(hs.booleans())


def build(specs, fc_head):
    with st.Graph() as g:
        x = st.placeholder([1, 7, 7, 3], name="images")
        net = x
        for i, s in enumerate(specs):
            scope = f"layer{i}"
            rate = s["rate"] if s["stride"] == 1 else 1
            norm = dict(normalizer_fn=slim.batch_norm,
                        normalizer_params={"is_training": False, "scale": s["bn"] == "scale"}) if s["bn"] else {}
            fits = net.shape[1] >= (s["k"] - 1) * rate + 1 or s["padding"] == "SAME"
            padding = s["padding"] if fits else "SAME"
            if s["kind"] == "conv":
                net = slim.conv2d(net, s["depth"], s["k"], stride=s["stride"], rate=rate, padding=padding,
                                  activation_fn=ACTS[s["act"]], scope=scope, **norm)
            elif s["kind"] == "separable":
                net = slim.separable_conv2d(net, s["depth"], s["k"], depth_multiplier=2, stride=s["stride"],
                                            rate=rate, padding=padding, activation_fn=ACTS[s["act"]],
                                            scope=scope, **norm)
            elif s["kind"] == "pool":
                pool = slim.max_pool2d if s["act"] == "relu" else slim.avg_pool2d
                net = pool(net, s["k"], stride=s["stride"], padding="SAME", scope=scope)
            elif s["kind"] == "residual":
                up = slim.conv2d(net, net.shape[-1], s["k"], activation_fn=None, scope=scope, **norm)
                net = net + s["scale"] * up if s["scale"] != 1.0 else net + up
                if ACTS[s["act"]] is not None:
                    net = ACTS[s["act"]](net)
            else:  # concat of a conv branch and a pool branch (a DAG)
                a = slim.conv2d(net, s["depth"], 1, activation_fn=ACTS[s["act"]], scope=scope + "/a", **norm)
                b = slim.max_pool2d(net, 3, stride=1, padding="SAME", scope=scope + "/b")
                net = tf.concat([a, b], axis=3)
        if fc_head:
            net = slim.fully_connected(slim.flatten(net), 4, activation_fn=tf.nn.relu, scope="fc")
    return g, x, net


@settings(max_examples=12, derandomize=True)
@given(layer_specs())
def test_random_slim_graphs_compile_to_the_reference(spec):
    specs, fc_head = spec
    g, x, out = build(specs, fc_head)
    weights = randomize_bn(st.init_weights(g, seed=1))
    images = np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    want = st.Session(g, weights, backend="reference").run(out, {x: images})
    model = st.compile(g, out, weights, poison=True)
    assert_close(model(images), want, "float32", tol=1e-4)
    program = model.plan.baseline
    ir_ops = [n for n in program.nodes if n.op not in (Op.PLACEHOLDER, Op.VARIABLE, Op.CONSTANT, Op.RESHAPE)]
    fusible = any(n.op in (Op.BATCH_NORM, Op.BIAS_ADD, Op.RELU, Op.RELU6, Op.ADD) for n in ir_ops)
    if fusible:
        assert len(model.kernels) < len(ir_ops), model.report()
