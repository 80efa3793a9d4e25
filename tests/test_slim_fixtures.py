"""Every single-layer TF-Slim fixture (produced by real TF-Slim): our front end must
record exactly the fixture's variable names and shapes and output shape, and both
executors must reproduce `expected` from the fixture's weights within 1e-5 relative L2.

The two `resnet_*_tiny` cases are whole nets; they are tested with the nets.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import slimtriton as st
from slimtriton import slim, tf
from tests.helpers import assert_close

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "tf_slim"
CASES = json.loads((FIXTURES / "cases.json").read_text())
LAYER_CASES = sorted(name for name in CASES if not name.endswith("_tiny"))


def _namespace():
    ns = {"slim": slim, "tf": tf}
    try:
        from slimtriton.nets import resnet_utils
        ns["resnet_utils"] = resnet_utils
    except ImportError:  # another part of the project; the conv2d_same case then fails below
        pass
    return ns


def build(case: dict):
    with st.Graph() as g:
        x = st.placeholder(case["input_shape"], name="x")
        ns = _namespace()
        ns["x"] = x
        out = eval(case["call"], ns)  # the fixture's own TF-Slim call, verbatim
    return g, x, out


def fixture_arrays(name: str):
    data = np.load(FIXTURES / f"{name}.npz")
    weights = {k[len("var/"):]: data[k] for k in data.files if k.startswith("var/")}
    return data["input"], data["expected"], weights


@pytest.mark.parametrize("name", LAYER_CASES)
def test_recording_matches_tf_slim(name):
    case = CASES[name]
    g, _, out = build(case)
    got = {v.name: list(v.shape) for v in g.variables.values()}
    assert got == case["variables"]
    assert list(out.shape) == case["output_shape"]
    st.ir.verify(g.nodes, [out.node])
    # every variable is read by exactly one VARIABLE node named like the variable
    for v in g.variables.values():
        assert v.node.op is st.Op.VARIABLE and v.node.name == v.name and v.node.attrs["var"] == v.name


@pytest.mark.parametrize("backend", ["reference", "torch", "triton"])
@pytest.mark.parametrize("name", LAYER_CASES)
def test_numerics_match_tf_slim(name, backend):
    case = CASES[name]
    g, x, out = build(case)
    inp, expected, weights = fixture_arrays(name)
    assert sorted(weights) == sorted(case["variables"])
    from slimtriton.session import Session
    got = Session(g, weights, backend=backend).run(out, {x: inp})
    assert got.shape == expected.shape
    assert_close(got, expected, "float32", what=f"{name} on {backend}")
