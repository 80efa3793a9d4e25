"""The soak fuzzer's machinery (`make fuzz` runs it for minutes; here a few seconds): it draws
and checks cases, reports a wrong result as a runnable reproducer, and its comparison sees
NaN / infinity mismatches."""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import slimtriton as st

from . import fuzzer

ROOT = Path(__file__).resolve().parents[2]
GOOD_CASE = {"kind": "kernel", "dtype": "float32", "poison": True, "calls": [1, 2], "weights_seed": 7,
             "non_finite": [], "input_shape": [1, 5, 5, 3],
             "layer": {"kind": "conv", "k": 3, "stride": 2, "rate": 1, "padding": "SAME", "depth": 4,
                       "bn": "scale", "act": "relu"}}


def test_fuzz_runs_for_a_few_seconds():
    lines = []
    result = fuzzer.fuzz(3, out=lines.append)  # a fresh seed each run, as `make fuzz`
    assert result["tried"] >= 1 and result["tried"] == result["ok"] + result["skipped"] + result["failed"]
    assert f"{result['tried']} examples tried" in lines[-1] and f"seed {result['seed']}" in lines[0]


def test_cases_cover_every_dtype_poison_and_non_finite_inputs():
    rng = random.Random(0)
    cases = [fuzzer.draw_case(rng) for _ in range(200)]
    assert {c["dtype"] for c in cases} == set(fuzzer.DTYPES)
    assert {c["kind"] for c in cases} == {"graph", "kernel"} and {c["poison"] for c in cases} == {True, False}
    assert any(len(c["calls"]) > 1 for c in cases)
    assert {v for c in cases for _, v in c["non_finite"]} == {"nan", "inf", "-inf"}


def test_a_wrong_result_is_reported_as_a_runnable_reproducer(monkeypatch):
    compile_ = st.compile

    def off_by_a_bit(*args, **kwargs):
        model = compile_(*args, **kwargs)
        return lambda x: model(x) + 0.1
    monkeypatch.setattr(st, "compile", off_by_a_bit)
    lines = []
    result = fuzzer.fuzz(2, seed=1, out=lines.append, non_finite_rate=0)
    assert result["failed"] >= 1 and "relative L2 error" in result["kinds"]
    report = "\n".join(lines)
    assert "FAILURE 1" in report and "from tests.fuzz.fuzzer import run_case" in report


def test_reproducer_runs_from_the_repository_root(tmp_path):
    script = tmp_path / "repro.py"
    script.write_text(fuzzer.reproducer(GOOD_CASE))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_compare_sees_non_finite_mismatches():
    want = np.array([1.0, np.nan, np.inf, -np.inf, 2.0])
    fuzzer.compare(want.copy(), want, "float32", "same")
    with pytest.raises(AssertionError, match="NaN cells differ"):
        fuzzer.compare(np.array([1.0, 0.0, np.inf, -np.inf, 2.0]), want, "float32", "lost NaN")
    with pytest.raises(AssertionError, match=r"\+inf cells differ"):
        fuzzer.compare(np.array([1.0, np.nan, -np.inf, -np.inf, 2.0]), want, "float32", "sign")
    with pytest.raises(AssertionError, match="relative L2 error"):
        fuzzer.compare(np.array([1.0, np.nan, np.inf, -np.inf, 3.0]), want, "float32", "value")
