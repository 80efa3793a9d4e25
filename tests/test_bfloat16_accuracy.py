"""bfloat16 compiled plans are no less accurate than eager torch in bfloat16, measured over
several inputs against the float64 NumPy reference.

Why over several inputs: a random slim graph ending in a ReLU'd fully_connected head often
leaves a few small output cells out of a cancellation (0.0037 out of terms summing to 0.069 in
tests/fuzz/test_fuzzer.py::ILL_CONDITIONED_CASE), and there one input's error is a noisy draw
(see tests/fuzz/fuzzer.compare). The relative L2 error pooled over POOLED_INPUTS inputs is
the measure; the compiled plan (BN folded into the bfloat16 weights, the activation and
residual add in the fp32 epilogue) rounds at fewer places than eager torch, and over 120
random cases its error was 0.68x eager's (geo-mean), at most 1.8x.
"""
from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as hs

import slimtriton as st
from tests.fuzz.fuzzer import GRAPH_DOMAINS, POOLED_INPUTS, build_case, case_input
from tests.helpers import TOLERANCE, to_numpy
from tests.test_compile_hypothesis import build  # noqa: F401 -- imported here, not inside @given (build_case uses it)

LAYER = hs.fixed_dictionaries({key: hs.sampled_from(values) for key, values in GRAPH_DOMAINS.items()
                               if key != "kind"}).flatmap(
    lambda spec: hs.sampled_from(["conv", "separable", "residual"]).map(lambda kind: {**spec, "kind": kind}))


def pooled_errors(case) -> tuple[float, float]:
    """(compiled, eager) relative L2 error vs the reference over POOLED_INPUTS inputs of `case`."""
    g, x, out, weights = build_case(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the interpreter notice
        model = st.compile(g, out, weights, dtype="bfloat16")
        reference = st.Session(g, weights, backend="reference")
        eager = st.Session(g, weights, backend="torch", dtype="bfloat16")
        sums = np.zeros(3)
        for k in range(POOLED_INPUTS):
            images = case_input(case, x.shape, case["calls"][0] + k)
            want = to_numpy(reference.run(out, {x: images}))
            got, base = to_numpy(model(images)), to_numpy(eager.run(out, {x: images}))
            sums += [np.sum((got - want) ** 2), np.sum((base - want) ** 2), np.sum(want ** 2)]
    if sums[2] == 0:
        return float(np.sqrt(sums[0])), float(np.sqrt(sums[1]))
    return float(np.sqrt(sums[0] / sums[2])), float(np.sqrt(sums[1] / sums[2]))


@settings(max_examples=10, derandomize=True, deadline=None)
@given(hs.lists(LAYER, min_size=2, max_size=4), hs.booleans(), hs.integers(0, 2**31 - 1),
       hs.integers(0, 2**31 - 1))
def test_bfloat16_graphs_are_as_accurate_as_eager_over_inputs(layers, fc_head, seed, weights_seed):
    case = {"kind": "graph", "dtype": "bfloat16", "poison": False, "calls": [seed], "weights_seed": weights_seed,
            "non_finite": [], "layers": layers, "fc_head": fc_head}
    try:
        compiled, eager = pooled_errors(case)
    except ValueError:  # a VALID window larger than its input: not a graph
        return
    assert compiled <= max(TOLERANCE["bfloat16"], 2 * eager), (compiled, eager, case)


def test_the_fuzzers_ill_conditioned_case_is_as_accurate_as_eager_over_inputs():
    from tests.fuzz.test_fuzzer import ILL_CONDITIONED_CASE
    compiled, eager = pooled_errors(ILL_CONDITIONED_CASE)
    assert compiled <= eager, (compiled, eager)  # 1.63e-2 vs 1.87e-2 on these 8 inputs
