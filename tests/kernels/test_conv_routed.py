"""conv2d_routed (the routed store of sibling convs merged into one GEMM) against the NumPy
reference: each destination holds its column range of the full conv's epilogue, written into
its own buffer or a channel slice of a wider one, nothing else touched."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from slimtriton import kernels as K
from slimtriton.fusion import horizontal
from slimtriton.kernels.conv import MAX_DESTINATIONS
from slimtriton.reference import numpy_ops as R
from tests.helpers import assert_close_nonfinite

from .nonfinite import nonfinite_cells, plant
from .util import ACTS, DTYPES, SENTINEL, dev, rounded, vec

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_destination_count_agrees_with_the_fusion_pass():
    assert horizontal.MAX_SIBLINGS == MAX_DESTINATIONS


@st.composite
def routed_cases(draw):
    kh, kw = draw(st.sampled_from([(1, 1), (1, 1), (3, 3), (1, 7)]))
    n_dest = draw(st.integers(1, MAX_DESTINATIONS))
    return {
        "n": draw(st.integers(1, 2)), "h": draw(st.integers(1, 9)), "w": draw(st.integers(1, 9)),
        "cin": draw(st.sampled_from([3, 5, 17, 40])), "kh": kh, "kw": kw,
        "strides": draw(st.sampled_from([(1, 1), (2, 2)])),
        "padding": draw(st.sampled_from([((0, 0), (0, 0)), ((1, 1), (1, 1)), ((0, 1), (3, 3))])),
        "channels": draw(st.lists(st.sampled_from([1, 3, 16, 33, 64]), min_size=n_dest, max_size=n_dest)),
        # per destination: None (a new tensor) or (channels before, after) in a wider buffer
        "slices": draw(st.lists(st.sampled_from([None, (0, 0), (5, 0), (2, 7)]), min_size=n_dest,
                                max_size=n_dest)),
        "dtype": draw(st.sampled_from(DTYPES)), "act": draw(st.sampled_from(ACTS)),
        # per destination: its own activation after `act` (None: no acts argument)
        "acts": draw(st.one_of(st.none(), st.lists(st.sampled_from(ACTS + [("leaky_relu", 0.2)]),
                                                    min_size=n_dest, max_size=n_dest))),
        "prologue": draw(st.sampled_from([None, "relu", "none"])),
        "scale": draw(st.booleans()), "shift": draw(st.booleans()),
        "nonfinite": draw(nonfinite_cells()),
    }


def run_routed_case(c, rng) -> bool:
    dtype = c["dtype"]
    oh = (c["h"] + sum(c["padding"][0]) - c["kh"]) // c["strides"][0] + 1
    ow = (c["w"] + sum(c["padding"][1]) - c["kw"]) // c["strides"][1] + 1
    if oh < 1 or ow < 1:
        return False
    cout = sum(c["channels"])
    x = rounded(plant(rng.standard_normal((c["n"], c["h"], c["w"], c["cin"])), c["nonfinite"]), dtype)
    w = rounded(rng.standard_normal((c["kh"], c["kw"], c["cin"], cout)) / np.sqrt(c["kh"] * c["kw"] * c["cin"]),
                dtype)
    kwargs = {}
    x_ref = x
    if c.get("prologue") is not None:
        in_scale, in_shift = rng.uniform(0.5, 1.5, c["cin"]), rng.standard_normal(c["cin"])
        kwargs.update(in_scale=vec(in_scale), in_shift=vec(in_shift), prologue_act=c["prologue"])
        x_ref = R.prologue(x, rounded(in_scale, "float32"), rounded(in_shift, "float32"), c["prologue"])
    if c.get("acts") is not None:
        kwargs["acts"] = c["acts"]
    scale = rng.uniform(0.5, 1.5, cout) if c["scale"] else None
    shift = rng.standard_normal(cout) if c["shift"] else None
    lead = (c["n"], oh, ow)
    dests = []
    for ch, sl in zip(c["channels"], c["slices"]):
        if sl is None:
            dests.append((None, 0, ch))
        else:
            buf = torch.full((*lead, sl[0] + ch + sl[1]), SENTINEL, dtype=dev(x[:0], dtype).dtype)
            dests.append((buf.to(dev(x[:0], dtype).device), sl[0], ch))
    got = K.conv2d_routed(dev(x, dtype), K.prepack_conv2d(dev(w, dtype)), destinations=dests,
                          strides=c["strides"], padding=c["padding"],
                          scale=None if scale is None else vec(scale), shift=None if shift is None else vec(shift),
                          act=c["act"], **kwargs)
    acc = R.conv2d(x_ref, w, c["strides"], c["padding"], (1, 1))
    s = np.ones(cout) if scale is None else rounded(scale, "float32")
    b = np.zeros(cout) if shift is None else rounded(shift, "float32")
    expected = R.epilogue(acc, s, b, c["act"], None, 1.0, "none")
    col = 0
    for d, ((buf, offset, ch), out) in enumerate(zip(dests, got)):
        if buf is not None:
            assert out is buf
            o = out.detach().float().cpu().numpy()
            rest = np.concatenate([o[..., :offset], o[..., offset + ch:]], axis=-1)
            assert np.all(rest == SENTINEL), "channels outside a destination's slice were modified"
            out = out[..., offset:offset + ch]
        assert tuple(out.shape) == (*lead, ch)
        want = expected[..., col:col + ch]
        if c.get("acts") is not None:
            want = R.activation(want, c["acts"][d])
        assert_close_nonfinite(out, want, dtype, what=f"destination {d} (columns {col}..) of {c}")
        col += ch
    return True


@SETTINGS
@given(routed_cases())
def test_conv2d_routed_matches_reference(c):
    assume(run_routed_case(c, np.random.default_rng(0)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_routed_four_destinations_one_concat(dtype):
    """Inception: Branch_0's range into its concat slice, the others into their own buffers,
    two of them into one shared buffer at different offsets."""
    c = {"n": 2, "h": 5, "w": 6, "cin": 24, "kh": 1, "kw": 1, "strides": (1, 1), "padding": ((0, 0), (0, 0)),
         "channels": [16, 33, 3, 64], "slices": [(0, 40), None, (2, 7), None], "dtype": dtype, "act": "relu",
         "scale": True, "shift": True, "nonfinite": (float("nan"), float("inf"))}
    assert run_routed_case(c, np.random.default_rng(1))


def test_conv2d_routed_errors_are_clear():
    x = torch.zeros((1, 4, 4, 3))
    w = K.prepack_conv2d(torch.zeros((1, 1, 3, 8)))
    with pytest.raises(K.KernelArgumentError, match=r"sib: destination channel counts \[3, 4\] must be >= 1 and "
                                                    r"add up to the weight's Cout=8"):
        K.conv2d_routed(x, w, destinations=[(None, 0, 3), (None, 0, 4)], name="sib")
    with pytest.raises(K.KernelArgumentError, match=r"sib: 5 destinations; the routed store takes 1 to 4"):
        K.conv2d_routed(x, w, destinations=[(None, 0, 1)] * 4 + [(None, 0, 4)], name="sib")
    buf = torch.zeros((1, 4, 4, 10))
    with pytest.raises(K.KernelArgumentError, match=r"sib: destinations 0 and 1 overlap in one buffer"):
        K.conv2d_routed(x, w, destinations=[(buf, 0, 4), (buf, 2, 4)], name="sib")
    with pytest.raises(K.KernelArgumentError, match=r"sib: destination 1: out: channel slice \[8, 12\) does not fit"):
        K.conv2d_routed(x, w, destinations=[(buf, 0, 4), (buf, 8, 4)], name="sib")
    with pytest.raises(K.KernelArgumentError, match=r"destination 0: out: leading dims"):
        K.conv2d_routed(x, w, destinations=[(torch.zeros((1, 3, 4, 8)), 0, 8)], name="sib")


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_routed_gpu_tiles_and_split_k(dtype):
    """The GPU tile choice in the interpreter (config.gpu_tiles): a small-M, deep-K routed GEMM
    splits K, and the split-K reduction routes the columns as the GEMM's epilogue does."""
    from slimtriton.kernels import config as C
    c = {"n": 1, "h": 2, "w": 2, "cin": 1024, "kh": 1, "kw": 1, "strides": (1, 1), "padding": ((0, 0), (0, 0)),
         "channels": [64, 33, 16], "slices": [(3, 5), None, (0, 0)], "dtype": dtype, "act": "relu6",
         "scale": True, "shift": True, "nonfinite": ()}
    with C.gpu_tiles(), K.record_launches() as launches:
        assert run_routed_case(c, np.random.default_rng(2))
    gemm = [lc for lc in launches if lc.kind == "gemm"]
    assert gemm and all(lc.constexprs["NUM_OUT"] == 3 for lc in gemm)
    assert any(lc.constexprs["SPLIT"] for lc in gemm), "expected a split-K plan for M=4, K=1024"
    assert any(lc.kind == "splitk_reduce" and lc.constexprs["NUM_OUT"] == 3 for lc in launches)
