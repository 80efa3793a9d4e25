"""bench/: the shared helpers, the fusion benchmark end to end (one small net, real cubin
compile in its own process), and the GPU benchmark's pure parts on synthetic numbers
(statistics, schedule, targets, tables, JSON, chart) plus its no-GPU exit."""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
sys.path.insert(0, str(BENCH))

import common  # noqa: E402  (bench/common.py)
import fusion  # noqa: E402  (importing it changes no environment variable)
import gpu  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run_script(script: str, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run([sys.executable, str(BENCH / script), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


# -- common ------------------------------------------------------------------------------------
def test_percentile_and_summarize_match_numpy():
    rng = np.random.default_rng(0)
    xs = list(rng.exponential(3.0, size=37))
    for q in (0, 10, 50, 90, 100):
        assert common.percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)), rel=1e-12)
    s = common.summarize(xs)
    assert s["median"] == pytest.approx(float(np.median(xs)))
    assert s["mean"] == pytest.approx(float(np.mean(xs)))
    assert (s["min"], s["max"], s["n"]) == (min(xs), max(xs), 37)
    assert common.summarize([2.0]) == {"median": 2.0, "p10": 2.0, "p90": 2.0, "mean": 2.0, "min": 2.0,
                                       "max": 2.0, "n": 1}


def test_summarize_and_percentile_refuse_bad_samples():
    with pytest.raises(ValueError, match="no samples"):
        common.summarize([])
    with pytest.raises(ValueError, match="non-finite"):
        common.summarize([1.0, float("nan")])
    with pytest.raises(ValueError, match="q must be"):
        common.percentile([1.0], 101)


def test_target_verdicts():
    assert common.Target("k", 59, 60, "<=").verdict == "PASS"
    assert common.Target("k", 61, 60, "<=").verdict == "FAIL"
    assert common.Target("k", 60, 60, "<=").verdict == "PASS"
    assert common.Target("t", 1.29, 1.3, ">=").verdict == "FAIL"
    assert common.Target("t", 1.31, 1.3, ">=").verdict == "PASS"
    skip = common.Target("t", None, 1.3, ">=")
    assert skip.passed is None and skip.verdict == "SKIP" and "not measured" in skip.line()
    assert common.Target("t", 0.5, 0.6, "<=", "x").line().startswith("PASS  t: 0.5x <= 0.6x")
    with pytest.raises(ValueError, match="relation"):
        common.Target("t", 1, 1, "<")
    assert common.ratio(3, 4) == 0.75
    assert common.ratio(None, 4) is None and common.ratio(3, 0) is None


def test_markdown_and_text_tables():
    md = common.markdown_table(["net", "kernels"], [["resnet|v1", 59], ["vgg", 21]])
    assert md.splitlines() == ["| net | kernels |", "|:---|---:|", "| resnet\\|v1 | 59 |", "| vgg | 21 |"]
    with pytest.raises(ValueError, match="row 1 has 1 cells"):
        common.markdown_table(["a", "b"], [[1, 2], [3]])
    with pytest.raises(ValueError, match="align"):
        common.markdown_table(["a", "b"], [], align="lx")
    text = common.text_table(["net", "n"], [["a", 5], ["long", 123]]).splitlines()
    assert text[0] == "net     n" and text[1] == "----  ---" and text[2] == "a       5" and text[3] == "long  123"


def test_formatting():
    assert common.fmt_bytes(512) == "512 B"
    assert common.fmt_bytes(1536) == "1.5 KiB"
    assert common.fmt_bytes(3 * 2**30) == "3 GiB"
    assert common.fmt_count(7.01e9) == "7.01 G"
    assert common.fmt_count(12) == "12"
    assert common.fmt_bytes(None) == common.fmt_count(None) == "-"


def test_write_json_refuses_nan(tmp_path):
    path = common.write_json(tmp_path / "sub" / "a.json", {"x": [1, 2.5]})
    assert json.loads(path.read_text()) == {"x": [1, 2.5]}
    with pytest.raises(ValueError):
        common.write_json(tmp_path / "b.json", {"x": float("nan")})


def test_run_record():
    rec = common.run_record(["bench/fusion.py", "--nets", "vgg_16"])
    assert rec["command"] == "python bench/fusion.py --nets vgg_16"
    assert rec["versions"]["python"] == platform.python_version()
    assert rec["versions"]["torch"] == torch.__version__
    assert rec["machine"]["cpu_count"] == os.cpu_count()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if head.returncode == 0:
        assert rec["versions"]["slimtriton_git"]["commit"] == head.stdout.strip()
    assert rec["date"].endswith("+00:00")
    md = common.record_markdown(rec)
    assert "`python bench/fusion.py --nets vgg_16`" in md and f"python {platform.python_version()}" in md


# -- fusion --------------------------------------------------------------------------------------
def _fusion_row(net="resnet_v1_50", batch=32, kernels=59, vs_unf=0.36, vs_ext=0.57, error=None):
    if error:
        return {"net": net, "batch": batch, "dtype": "float16", "error": error}
    unf = 1000 * 2**20
    st_bytes = vs_unf * unf
    return {"net": net, "batch": batch, "dtype": "float16", "image_size": 224,
            "kernels": {"unfused": 182, "extern_conv_plus_pointwise": 114, "slimtriton": kernels},
            "bytes": {"unfused": unf, "extern_conv_plus_pointwise": st_bytes / vs_ext, "slimtriton": st_bytes},
            "flops": 7e9 * batch, "peak_activation_bytes": 3 * 2**20, "arena_bytes": 4 * 2**20,
            "graph_nodes": 452, "build_s": 0.01, "plan_s": 0.05, "launches": kernels, "specializations": 18,
            "arithmetic_intensity": 7e9 * batch / st_bytes, "vs_unfused": vs_unf, "vs_extern": vs_ext,
            "cubin": {"launches": kernels, "specializations": 18, "seconds": 20.0, "new_specializations": 18,
                      "new_seconds": 20.0, "gemm_specializations": 10, "gemm_spilling": 0,
                      "gemm_without_tensor_cores": 0, "errors": []}}


def test_fusion_targets_pass_fail_skip():
    verdicts = [t.verdict for t in fusion.fusion_targets([_fusion_row(batch=1), _fusion_row(batch=32)])]
    assert verdicts[:4] == ["PASS", "PASS", "PASS", "PASS"]
    failing = fusion.fusion_targets([_fusion_row(batch=32, kernels=61, vs_unf=0.41, vs_ext=0.61)])
    assert [t.verdict for t in failing][:3] == ["FAIL", "FAIL", "FAIL"]
    only_b1 = fusion.fusion_targets([_fusion_row(batch=1), _fusion_row(net="vgg_16", batch=32)])
    assert [t.verdict for t in only_b1][:3] == ["PASS", "SKIP", "SKIP"]
    broken = fusion.fusion_targets([_fusion_row(batch=32, error="NotImplementedError: x")])
    assert [t.verdict for t in broken[:3]] == ["SKIP", "SKIP", "SKIP"]
    # issue 13's per-net targets: SKIP unless that net was measured at batch 32, then kernels and bytes
    n = len(fusion.FUSION_TARGETS)
    assert [t.verdict for t in broken[3:]] == ["SKIP"] * (2 * n)
    v3 = fusion.fusion_targets([_fusion_row(net="inception_v3", batch=32, kernels=80, vs_ext=0.43)])
    assert [t.verdict for t in v3 if t.name.startswith("inception_v3")] == ["PASS", "PASS"]
    v3 = fusion.fusion_targets([_fusion_row(net="inception_v3", batch=32, kernels=99, vs_ext=0.503)])
    assert [t.verdict for t in v3 if t.name.startswith("inception_v3")] == ["FAIL", "FAIL"]


def test_fusion_tables_report_and_chart(tmp_path):
    rows = [_fusion_row(batch=1), _fusion_row(batch=32), _fusion_row(net="vgg_16", batch=1, kernels=21),
            _fusion_row(net="inception_v3", batch=1, error="NotImplementedError: no lowering for X")]
    headers, body = fusion.fusion_rows(rows)
    assert len(body) == 4 and all(len(r) == len(headers) for r in body)
    assert body[0][2] == "182/114/59" and body[0][6] == "0.360" and body[0][7] == "0.570"
    assert "error: NotImplementedError" in body[3][2]
    headers, body = fusion.compile_rows(rows)
    assert len(body) == 3 and body[0][6] == "18 / 20.0 s"
    result = {"record": common.run_record(["bench/fusion.py"]), "rows": rows,
              "settings": {"dtype": "float16", "cubin": True, "arch": 90},
              "cubin_total": {"specializations": 18, "seconds": 20.0}}
    md = fusion.markdown_report(result)
    assert "| resnet_v1_50 | 32 | 182/114/59 |" in md and "| PASS |" in md and "18 distinct" in md
    if common.pyplot() is None:
        pytest.skip("matplotlib not installed")
    path = fusion.save_chart(rows, tmp_path / "fusion.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_fusion_script_end_to_end(tmp_path):
    """mobilenet_v1 batch 1 for real: plans, and every distinct kernel compiled to an sm_90
    cubin; the numbers equal the compiler's own summary."""
    proc = _run_script("fusion.py", "--nets", "mobilenet_v1", "--batches", "1", "--out-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "SKIP  resnet_v1_50" in proc.stdout  # the targets' net was not measured
    result = json.loads((tmp_path / "fusion.json").read_text())
    (row,) = result["rows"]
    import slimtriton as st
    graph, logits, size = fusion.build_net("mobilenet_v1", 1)
    summary = st.compile(graph, logits, None, dtype="float16").summary()
    assert size == row["image_size"] == 224
    assert row["kernels"] == summary["kernels"] and row["bytes"] == summary["bytes"]
    assert row["flops"] == summary["flops"] and row["peak_activation_bytes"] == summary["peak_activation_bytes"]
    assert row["launches"] >= summary["kernels"]["slimtriton"]  # split-K steps launch a reduction too
    assert row["arithmetic_intensity"] == pytest.approx(summary["flops"] / summary["bytes"]["slimtriton"])
    cubin = row["cubin"]
    assert cubin["errors"] == [] and cubin["specializations"] == row["specializations"] >= 3
    assert cubin["new_specializations"] == cubin["specializations"] and cubin["seconds"] > 0
    assert result["cubin_total"]["specializations"] == cubin["specializations"]
    assert result["record"]["command"].startswith("python bench/fusion.py")
    md = (tmp_path / "fusion.md").read_text()
    assert "| mobilenet_v1 | 1 |" in md
    # the performance model's totals, labelled as a model
    model = row["model"]
    assert model["gpu"] == "h100" and model["launches"] == row["launches"] and model["batch"] == 1
    assert model["gflops"] == pytest.approx(row["flops"] / 1e9, abs=1e-3)
    assert 0 < model["modeled_images_per_s"] < model["roofline_images_per_s"]
    assert "a MODEL, not a measurement" in md and "a MODEL, not a measurement" in proc.stdout
    if common.pyplot() is not None:
        assert (tmp_path / "fusion.png").read_bytes()[:8] == PNG_MAGIC


def test_fusion_script_rejects_unknown_net(tmp_path):
    proc = _run_script("fusion.py", "--nets", "resnet_v9", "--no-cubin", "--out-dir", str(tmp_path))
    assert proc.returncode == 2 and "unknown ['resnet_v9']" in proc.stderr
    assert not (tmp_path / "fusion.json").exists()


# -- gpu (pure parts) -------------------------------------------------------------------------------
def _gpu_row(system, batch, median_ms, cuda_graph=True, net="resnet_v1_50", dtype="float16", status="ok"):
    if status != "ok":
        return {"net": net, "batch": batch, "dtype": dtype, "system": system, "cuda_graph": cuda_graph,
                "status": status, "reason": "time budget"}
    lat = common.summarize([median_ms * 0.98, median_ms, median_ms * 1.05])
    flops = int(7e9) * batch
    return {"net": net, "batch": batch, "dtype": dtype, "precision": "ieee", "system": system,
            "cuda_graph": cuda_graph, "status": "ok", "latency_ms": lat, "compile_s": 12.0, "rel_l2": 1e-3,
            "output_finite": True, "flops": flops, **gpu.performance(batch, flops, lat["median"], 700.0)}


def test_relative_l2_and_performance():
    ref = np.array([[3.0, 4.0]])
    assert gpu.relative_l2(ref, ref) == 0.0
    assert gpu.relative_l2(np.array([[3.0, 4.5]]), ref) == pytest.approx(0.1)
    assert gpu.relative_l2(np.array([[np.inf, 4.0]]), ref) is None
    assert gpu.relative_l2(np.zeros((1, 2)), np.zeros((1, 2))) == 0.0
    assert gpu.relative_l2(np.ones((1, 2)), np.zeros((1, 2))) == math.inf
    with pytest.raises(ValueError, match="shape"):
        gpu.relative_l2(np.zeros((2, 2)), ref)
    p = gpu.performance(256, 256 * 7_000_000_000, 100.0, 700.0)
    assert p["throughput_ips"] == pytest.approx(2560.0)
    assert p["tflops"] == pytest.approx(17.92)
    assert p["peak_fraction"] == pytest.approx(17.92 / 700)
    assert gpu.performance(1, 10**12, 1000.0, None)["peak_fraction"] is None
    with pytest.raises(ValueError):
        gpu.performance(1, 1, 0.0, None)


def test_best_row_picks_the_faster_cuda_graph_setting_and_ignores_failures():
    rows = [_gpu_row("slimtriton", 1, 2.0, True), _gpu_row("slimtriton", 1, 3.0, False),
            _gpu_row("slimtriton", 1, 0.1, False, status="error")]
    assert gpu.best(rows, "resnet_v1_50", "float16", 1, "slimtriton")["latency_ms"]["median"] == 2.0
    assert gpu.best(rows, "resnet_v1_50", "float16", 1, "torch_eager") is None


def test_gpu_targets_pass_fail_skip():
    passing = [_gpu_row("slimtriton", 256, 100.0), _gpu_row("torch_compile", 256, 140.0),
               _gpu_row("torch_eager", 256, 210.0, False), _gpu_row("slimtriton", 1, 1.0),
               _gpu_row("torch_eager", 1, 2.0, False)]
    targets = gpu.gpu_targets(passing)
    assert [t.verdict for t in targets] == ["PASS", "PASS", "PASS"]
    assert targets[0].measured == pytest.approx(1.4) and targets[2].measured == pytest.approx(0.5)
    failing = [_gpu_row("slimtriton", 256, 100.0), _gpu_row("torch_compile", 256, 120.0),
               _gpu_row("torch_eager", 256, 190.0), _gpu_row("slimtriton", 1, 1.3),
               _gpu_row("torch_eager", 1, 2.0)]
    assert [t.verdict for t in gpu.gpu_targets(failing)] == ["FAIL", "FAIL", "FAIL"]
    partial = [_gpu_row("slimtriton", 256, 100.0), _gpu_row("torch_compile", 256, 0, status="skipped"),
               _gpu_row("torch_eager", 256, 250.0)]
    assert [t.verdict for t in gpu.gpu_targets(partial)] == ["SKIP", "PASS", "SKIP"]
    other_dtype = [_gpu_row(s, 256, 100.0, dtype="float32") for s in gpu.SYSTEMS]
    assert [t.verdict for t in gpu.gpu_targets(other_dtype)] == ["SKIP", "SKIP", "SKIP"]


def test_schedule_puts_the_essential_measurements_first():
    tasks = gpu.schedule(["resnet_v1_50", "vgg_16"], [1, 32, 256], ["float16", "float32"])
    assert len(tasks) == len(set(tasks)) == 2 * 3 * 2 * 4 * 2
    essential = [gpu.Task("resnet_v1_50", 256, "float16", "slimtriton", True),
                 gpu.Task("resnet_v1_50", 256, "float16", "torch_eager", False),
                 gpu.Task("resnet_v1_50", 1, "float16", "slimtriton", True),
                 gpu.Task("resnet_v1_50", 1, "float16", "torch_eager", False),
                 gpu.Task("resnet_v1_50", 256, "float16", "torch_compile", False),
                 gpu.Task("resnet_v1_50", 1, "float16", "torch_compile", False)]
    assert tasks[:6] == essential == gpu.schedule(["resnet_v1_50", "vgg_16"], [1, 32, 256],
                                                  ["float16", "float32"], "essential")
    assert gpu.schedule(["resnet_v1_50"], [1, 256], ["float16"], "extras")[0] == \
        gpu.Task("resnet_v1_50", 256, "float16", "slimtriton", False)
    assert not set(gpu.schedule(["resnet_v1_50"], [1, 256], ["float16"], "extras")) & set(essential)
    # then slimtriton / eager everywhere, then torch.compile default, then max-autotune last
    kinds = [t.system for t in tasks[6:]]
    last_cheap = max(k for k, s in enumerate(kinds) if s not in gpu.COMPILE_SYSTEMS)
    first_compile = min(k for k, s in enumerate(kinds) if s in gpu.COMPILE_SYSTEMS)
    first_max = kinds.index("torch_compile_max")
    assert last_cheap < first_compile < first_max
    assert all(s == "torch_compile_max" for s in kinds[first_max:])
    assert tasks[6 + first_max].cuda_graph is True
    assert gpu.schedule(["vgg_16"], [32], ["float32"])[0] == gpu.Task("vgg_16", 32, "float32", "slimtriton", True)
    with pytest.raises(ValueError, match="plan"):
        gpu.schedule(["vgg_16"], [32], ["float32"], "some")


def test_compile_modes():
    assert gpu.COMPILE_MODES[("torch_compile", False)] == "default"
    assert gpu.COMPILE_MODES[("torch_compile_max", True)] == "max-autotune"
    assert set(gpu.COMPILE_MODES) == {(s, cg) for s in gpu.COMPILE_SYSTEMS for cg in (True, False)}


def test_budget_with_a_fake_clock():
    now = [100.0]
    budget = gpu.Budget(60, clock=lambda: now[0])
    assert budget.allows(60) and not budget.allows(61)
    now[0] = 150.0
    assert budget.elapsed() == 50 and budget.remaining() == 10
    assert budget.allows(10) and not budget.allows(15)


def test_gpu_report_json_and_chart(tmp_path):
    rows = [_gpu_row("slimtriton", 256, 100.0), _gpu_row("slimtriton", 256, 104.0, False),
            _gpu_row("torch_eager", 256, 210.0, False), _gpu_row("torch_compile", 256, 140.0),
            _gpu_row("torch_compile_max", 256, 0, False, status="skipped"),
            _gpu_row("slimtriton", 1, 1.0), _gpu_row("torch_eager", 1, 2.0, False)]
    headers, body = gpu.result_rows(rows)
    assert len(body) == len(rows) and all(len(r) == len(headers) for r in body)
    skipped = [r for r in body if r[-1].startswith("skipped")]
    assert len(skipped) == 1 and skipped[0][3] == "torch.compile max-autotune" and skipped[0][4] == "off"
    result = {"record": common.run_record(["bench/gpu.py"]), "peak_tflops": {"float16": 700.0},
              "settings": {"nets": ["resnet_v1_50"], "batches": [1, 256], "dtypes": ["float16"],
                           "timing": {"warmup": 5, "min_iters": 30, "max_iters": 300, "min_time_s": 1.5},
                           "budget_s": 540, "elapsed_s": 300, "peak_size": 8192}, "rows": rows,
              "targets": [t.to_json() for t in gpu.gpu_targets(rows)]}
    path = common.write_json(tmp_path / "gpu.json", result)
    assert json.loads(path.read_text())["targets"][0]["verdict"] == "PASS"
    md = gpu.markdown_report(result)
    assert "| resnet_v1_50 | float16 | 256 | slimtriton | on | 100.000 |" in md
    assert "float16 700 TFLOP/s" in md and md.count("| PASS |") == 3
    if common.pyplot() is None:
        pytest.skip("matplotlib not installed")
    assert gpu.save_chart(rows, tmp_path / "gpu.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU exit")
def test_gpu_script_without_a_gpu_exits_zero(tmp_path):
    proc = _run_script("gpu.py", "--quick", "--out-dir", str(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no CUDA device" in proc.stdout
    assert not (tmp_path / "gpu.json").exists()


class _HostEvent:
    """Stands in for torch.cuda.Event on the CPU (host clock)."""

    def __init__(self, enable_timing=True):
        self.t = None

    def record(self):
        import time
        self.t = time.perf_counter()

    def synchronize(self):
        pass

    def elapsed_time(self, other):
        return (other.t - self.t) * 1e3


def test_gpu_run_task_dry_run_on_cpu(monkeypatch):
    """The measurement path (graph, weights, inputs, eager runner, timing, FLOPs, rel L2 against
    the float32 reference) run on the CPU with host-clock events: it must give a finite latency
    and an output equal to the reference (same backend, same dtype)."""
    monkeypatch.setattr(gpu, "DEVICE", "cpu")
    monkeypatch.setattr(torch.cuda, "Event", _HostEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    state = gpu.NetState("mobilenet_v1_025")
    task = gpu.Task("mobilenet_v1_025", 1, "float32", "torch_eager", False)
    row = gpu.run_task(task, state, gpu.Timing(1, 3, 3, 0.0), {"float32": 1.0})
    assert row["status"] == "ok" and row["latency_ms"]["n"] == 3 and row["latency_ms"]["median"] > 0
    assert row["rel_l2"] == 0.0 and row["output_finite"]
    assert row["flops"] == state.graph(1)[2] > 10**7
    assert row["throughput_ips"] == pytest.approx(1e3 / row["latency_ms"]["median"])
    assert state.reference(1).shape == (1, 1001)


# -- bench/gpu_session.sh ----------------------------------------------------------------------
STUB = """#!/usr/bin/env bash
# stands in for python3: logs its arguments, sleeps where told, prints an arch for `-c`
echo "$*" >> "$STUB_LOG"
case "$*" in
  *"$STUB_SLOW"*) sleep 30 ;;
esac
case "$1" in
  -c) echo 90 ;;
  -) cat > /dev/null ;;
esac
exit 0
"""


def _session(tmp_path, **env_vars) -> tuple[subprocess.CompletedProcess, list[str], str]:
    stub = tmp_path / "python_stub"
    stub.write_text(STUB)
    stub.chmod(0o755)
    calls = tmp_path / "calls.log"
    out = tmp_path / "out"
    env = {**{k: v for k, v in os.environ.items() if k not in ("OUT", "TRITON_INTERPRET")},
           "PYTHON": str(stub), "STUB_LOG": str(calls), "OUT": str(out), "STUB_SLOW": "never-matches",
           **env_vars}
    proc = subprocess.run(["bash", str(BENCH / "gpu_session.sh")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    return proc, calls.read_text().splitlines(), (out / "gpu_session.md").read_text()


def test_gpu_session_runs_the_steps_in_order_with_their_limits(tmp_path):
    proc, calls, summary = _session(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the environment heredoc, the arch query, then the steps, most important first
    assert calls[0] == "-" and calls[1].startswith("-c ")
    steps = [c for c in calls[2:] if not c.startswith("-c ")]
    assert steps[0].startswith("bench/gpu.py --quick --plan essential --no-autotune")
    assert "--budget 205" in steps[0]                              # ST_GPU_S 220 less 15
    assert steps[1].startswith("bench/kernels.py --quick --no-autotune --budget 55")
    assert steps[2].startswith("-m pytest") and "tests/test_gpu_paths.py" in steps[2]
    assert steps[3].startswith("-m slimtriton.cli audit resnet_v1_50 --dtype float16 --arch 90 --batch 1,32,256")
    assert "--gpu h200" in steps[3]
    assert steps[4].startswith("bench/gpu.py --quick --plan extras") and "--name gpu_extras" in steps[4]
    limits = [line.split("|")[4].strip() for line in summary.splitlines() if line.startswith("| ")][1:]
    assert limits[:5] == ["45", "220", "70", "90", "45"]
    assert int(limits[5]) <= 470 and "every step passed" in summary
    assert sum(int(x) for x in limits[:5]) <= 8 * 60


def test_gpu_session_step_time_limits_and_session_budget(tmp_path):
    # the kernels step hangs: `timeout` cuts it at its limit (16 s); the 20 s session budget then
    # leaves under ST_MIN_STEP_S (15 s) for the tests and the audit, and nothing for the extras
    proc, calls, summary = _session(tmp_path, STUB_SLOW="bench/kernels.py", ST_GPU_S="16", ST_KERNELS_S="16",
                                    ST_TOTAL_S="20", ST_MIN_STEP_S="15")
    assert proc.returncode == 1
    rows = [line for line in summary.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [r.split("|")[1].strip().split()[0] for r in rows] == \
        ["environment", "resnet_v1_50", "bench/kernels.py", "GPU", "audit", "extras"]
    assert "| ok |" in rows[0] and "| ok |" in rows[1] and rows[1].endswith("| 16 |")
    assert "TIMED OUT" in rows[2] and rows[2].endswith("| 16 |")
    assert all("skipped" in r for r in rows[3:])
    assert not any(c.startswith("-m ") or "--plan extras" in c for c in calls)
    assert "a step failed" in summary
