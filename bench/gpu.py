"""GPU benchmark: slimtriton vs torch eager (cuDNN) vs torch.compile (default, then max-autotune).

For each net (default resnet_v1_50; `--nets`), batch (1, 32, 256) and dtype (float16, and
float32 with TF32 tensor cores), with the net's logits as the output, random weights
(`init_weights(graph, seed=0)`) and random images (uniform in [-1, 1], seed 0):

* systems: `slimtriton` (`st.compile`), `torch_eager` (the torch backend's callable,
  `build_torch_callable`: channels_last views, cuDNN, `cudnn.benchmark` on),
  `torch_compile` (`torch.compile` of that same callable in its default mode) and
  `torch_compile_max` (mode 'max-autotune': minutes of compiling, so it comes last);
* each with the CUDA graph on and off (slimtriton: `cuda_graph=`; eager: one
  `torch.cuda.CUDAGraph` capture of the callable, input copied in each call; torch.compile:
  'default' without, 'reduce-overhead' with CUDA graphs; 'max-autotune' with,
  'max-autotune-no-cudagraphs' without);
* latency: after warm-up, one call per sample between two CUDA events with a sync after
  each sample (the latency of one inference, CPU launch overhead included); median,
  p10/p90 over at least `min_iters` samples and `min_time` seconds; throughput =
  batch / median latency; achieved TFLOP/s = the net's FLOPs (slimtriton.ir.cost,
  multiply-add = 2) / median latency, against a measured peak (a large fp16 / TF32
  `torch.matmul`);
* correctness: relative L2 error of each system's output against the torch backend run in
  float32 with TF32 off;
* compile time: from the start of compilation to the end of the first call (JIT,
  autotuning and graph capture included).

Work runs in priority order under a global time budget (`--budget`, default 540 s so that
the whole run fits one 10-minute job; `--quick`: fewer iterations, float16 only, batches 1
and 256, 300 s); what the budget leaves out is recorded as skipped. `--plan essential` runs
only the essential measurements (resnet_v1_50-first net, float16, batch 256 then 1:
slimtriton with its CUDA graph, torch eager, torch.compile default), `--plan extras`
everything else (CUDA graph off/on counterparts, reduce-overhead, max-autotune, other
batches and dtypes), `--plan all` (default) both in that order. A torch.compile measurement
starts only when `--compile-reserve` seconds are left (max-autotune: three times that).

Writes bench/results/gpu.json, gpu.md, gpu.png (or --out-dir; `--name` changes the stem) and
checks the targets for ResNet-50 v1 float16 (each system at its better CUDA-graph setting,
torch.compile at its better mode): batch 256 throughput >= 1.3x torch.compile and >= 2x
eager; batch 1 latency <= 0.6x eager; prints PASS/FAIL (exit 1 on a FAIL). Without a CUDA
device it says so and exits 0.

    python bench/gpu.py                   # resnet_v1_50, everything the budget allows
    python bench/gpu.py --quick
    python bench/gpu.py --nets resnet_v1_50 inception_v3 --batches 1 32 --dtypes float16
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (bench/common.py)

SYSTEMS = ("slimtriton", "torch_eager", "torch_compile", "torch_compile_max")
SYSTEM_LABELS = {"slimtriton": "slimtriton", "torch_eager": "torch eager (cuDNN)",
                 "torch_compile": "torch.compile default", "torch_compile_max": "torch.compile max-autotune"}
COMPILE_SYSTEMS = ("torch_compile", "torch_compile_max")
# torch.compile mode per (system, CUDA graph)
COMPILE_MODES = {("torch_compile", False): "default", ("torch_compile", True): "reduce-overhead",
                 ("torch_compile_max", True): "max-autotune",
                 ("torch_compile_max", False): "max-autotune-no-cudagraphs"}
PLANS = ("all", "essential", "extras")
DTYPES = ("float16", "float32")
BATCHES = (1, 32, 256)
PRECISION = {"float16": "ieee", "float32": "tf32", "bfloat16": "ieee"}
DTYPE_LABELS = {"float16": "float16", "float32": "float32 (TF32)", "bfloat16": "bfloat16"}

DEVICE = "cuda"  # the device every measurement runs on (a module constant so tests can dry-run on CPU)

TARGET_NET = "resnet_v1_50"
TARGET_DTYPE = "float16"
TARGET_THROUGHPUT_BATCH = 256
TARGET_VS_COMPILE = 1.3        # slimtriton throughput / best torch.compile throughput
TARGET_VS_EAGER = 2.0          # slimtriton throughput / eager throughput
TARGET_LATENCY_BATCH = 1
TARGET_LATENCY_VS_EAGER = 0.6  # slimtriton latency / eager latency


@dataclasses.dataclass(frozen=True)
class Timing:
    """How long to measure one configuration."""
    warmup: int
    min_iters: int
    max_iters: int
    min_time_s: float


TIMING = Timing(warmup=5, min_iters=30, max_iters=300, min_time_s=1.5)
QUICK_TIMING = Timing(warmup=3, min_iters=10, max_iters=100, min_time_s=0.4)


@dataclasses.dataclass(frozen=True)
class Task:
    """One measurement: a system with the CUDA graph on or off, on one configuration."""
    net: str
    batch: int
    dtype: str
    system: str
    cuda_graph: bool

    @property
    def label(self) -> str:
        return (f"{self.net} {self.dtype} b{self.batch} {self.system} "
                f"cuda_graph={'on' if self.cuda_graph else 'off'}")

    def row(self, **fields) -> dict:
        """A result row: the task's identifying fields, then `fields`."""
        return {"net": self.net, "batch": self.batch, "dtype": self.dtype, "precision": PRECISION[self.dtype],
                "system": self.system, "cuda_graph": self.cuda_graph, **fields}


class Budget:
    """A global wall-clock budget."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds = float(seconds)
        self.clock = clock
        self.start = clock()

    def elapsed(self) -> float:
        return self.clock() - self.start

    def remaining(self) -> float:
        return self.seconds - self.elapsed()

    def allows(self, needed_s: float) -> bool:
        return self.remaining() >= needed_s


# -- the schedule ---------------------------------------------------------------------------
def essential_tasks(nets, batches, dtypes) -> list[Task]:
    """What a short GPU window must measure: for the first net in float16, batch 256 then 1:
    slimtriton with its CUDA graph, torch eager (no graph, as users run it), then
    torch.compile in its default mode at both batches."""
    if TARGET_DTYPE not in dtypes or not nets:
        return []
    net = nets[0]
    wanted = [b for b in (TARGET_THROUGHPUT_BATCH, TARGET_LATENCY_BATCH) if b in batches]
    tasks = []
    for batch in wanted:
        tasks += [Task(net, batch, TARGET_DTYPE, "slimtriton", True),
                  Task(net, batch, TARGET_DTYPE, "torch_eager", False)]
    tasks += [Task(net, batch, TARGET_DTYPE, "torch_compile", False) for batch in wanted]
    return tasks


def schedule(nets, batches, dtypes, plan: str = "all") -> list[Task]:
    """Every task, most important first: the essential ones (`essential_tasks`), then
    slimtriton and eager everywhere else (their other CUDA-graph setting first), then
    torch.compile default / reduce-overhead, then max-autotune (CUDA graphs on before off)."""
    if plan not in PLANS:
        raise ValueError(f"plan {plan!r} not in {PLANS}")
    essential = essential_tasks(nets, batches, dtypes)
    tasks: list[Task] = list(essential)

    def add(task: Task) -> None:
        if task not in tasks:
            tasks.append(task)

    for net in nets:
        for dtype in dtypes:
            for batch in sorted(batches, reverse=True):
                for cg in (False, True):
                    add(Task(net, batch, dtype, "slimtriton", not cg))
                    add(Task(net, batch, dtype, "torch_eager", cg))
    for system in COMPILE_SYSTEMS:
        for cg in ((False, True) if system == "torch_compile" else (True, False)):
            for net in nets:
                for dtype in dtypes:
                    for batch in sorted(batches, reverse=True):
                        add(Task(net, batch, dtype, system, cg))
    if plan == "essential":
        return essential
    if plan == "extras":
        return [t for t in tasks if t not in essential]
    return tasks


# -- pure helpers (tested on CPU) -------------------------------------------------------------
def relative_l2(output, reference) -> Optional[float]:
    """||output - reference|| / ||reference|| in float64 (None when the output is not finite)."""
    import numpy as np
    out = np.asarray(output, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if out.shape != ref.shape:
        raise ValueError(f"relative_l2: output shape {out.shape} != reference shape {ref.shape}")
    if not np.all(np.isfinite(out)):
        return None
    denom = float(np.linalg.norm(ref))
    diff = float(np.linalg.norm(out - ref))
    if denom == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return diff / denom


def performance(batch: int, flops: int, latency_ms: float, peak_tflops: Optional[float]) -> dict:
    """Throughput (images/s), achieved TFLOP/s and fraction of the measured peak."""
    if latency_ms <= 0:
        raise ValueError(f"latency must be positive, got {latency_ms} ms")
    seconds = latency_ms * 1e-3
    tflops = flops / seconds / 1e12
    return {"throughput_ips": batch / seconds, "tflops": tflops,
            "peak_fraction": None if not peak_tflops else tflops / peak_tflops}


def ok_rows(rows, net, dtype, batch, system):
    return [r for r in rows if r["net"] == net and r["dtype"] == dtype and r["batch"] == batch
            and r["system"] == system and r["status"] == "ok"]


def best(rows, net, dtype, batch, system) -> Optional[dict]:
    """The row of `system` with the lower median latency over its CUDA-graph settings."""
    candidates = ok_rows(rows, net, dtype, batch, system)
    return min(candidates, key=lambda r: r["latency_ms"]["median"]) if candidates else None


def gpu_targets(rows, net: str = TARGET_NET) -> list[common.Target]:
    st256 = best(rows, net, TARGET_DTYPE, TARGET_THROUGHPUT_BATCH, "slimtriton")
    compiled = [r for r in (best(rows, net, TARGET_DTYPE, TARGET_THROUGHPUT_BATCH, s) for s in COMPILE_SYSTEMS) if r]
    tc256 = min(compiled, key=lambda r: r["latency_ms"]["median"]) if compiled else None
    eg256 = best(rows, net, TARGET_DTYPE, TARGET_THROUGHPUT_BATCH, "torch_eager")
    st1 = best(rows, net, TARGET_DTYPE, TARGET_LATENCY_BATCH, "slimtriton")
    eg1 = best(rows, net, TARGET_DTYPE, TARGET_LATENCY_BATCH, "torch_eager")

    def thr(r):
        return None if r is None else r["throughput_ips"]

    def lat(r):
        return None if r is None else r["latency_ms"]["median"]

    def note(a, b, what):
        if a is None or b is None:
            return ""
        return f"{what}: {a:.4g} vs {b:.4g}"
    where = f"{net} {TARGET_DTYPE}"
    return [
        common.Target(f"{where} batch {TARGET_THROUGHPUT_BATCH}: throughput slimtriton / torch.compile (best mode)",
                      common.ratio(thr(st256), thr(tc256)), TARGET_VS_COMPILE, ">=", "x",
                      note(thr(st256), thr(tc256), "img/s")),
        common.Target(f"{where} batch {TARGET_THROUGHPUT_BATCH}: throughput slimtriton / torch eager",
                      common.ratio(thr(st256), thr(eg256)), TARGET_VS_EAGER, ">=", "x",
                      note(thr(st256), thr(eg256), "img/s")),
        common.Target(f"{where} batch {TARGET_LATENCY_BATCH}: latency slimtriton / torch eager",
                      common.ratio(lat(st1), lat(eg1)), TARGET_LATENCY_VS_EAGER, "<=", "x",
                      note(lat(st1), lat(eg1), "ms")),
    ]


def result_rows(rows) -> tuple[list[str], list[list]]:
    """The results table: one line per measurement (skipped and failed ones too)."""
    headers = ["net", "dtype", "batch", "system", "CUDA graph", "median ms", "p10-p90 ms", "img/s",
               "TFLOP/s", "% peak", "rel L2", "compile s", "status"]
    order = {s: k for k, s in enumerate(SYSTEMS)}
    body = []
    for r in sorted(rows, key=lambda r: (r["net"], r["dtype"], r["batch"], order[r["system"]], not r["cuda_graph"])):
        common_cells = [r["net"], DTYPE_LABELS.get(r["dtype"], r["dtype"]), r["batch"],
                        SYSTEM_LABELS[r["system"]], "on" if r["cuda_graph"] else "off"]
        if r["status"] != "ok":
            reason = r.get("reason", "")
            body.append(common_cells + ["-"] * 7 + [f"{r['status']}: {reason}"[:90]])
            continue
        lat = r["latency_ms"]
        rel = r.get("rel_l2")
        body.append(common_cells + [
            f"{lat['median']:.3f}", f"{lat['p10']:.3f}-{lat['p90']:.3f}", f"{r['throughput_ips']:.1f}",
            f"{r['tflops']:.1f}", "-" if r.get("peak_fraction") is None else f"{100 * r['peak_fraction']:.0f}",
            "non-finite" if rel is None else f"{rel:.2e}",
            "-" if r.get("compile_s") is None else f"{r['compile_s']:.1f}", "ok"])
    return headers, body


def markdown_report(result: dict) -> str:
    s = result["settings"]
    peaks = result.get("peak_tflops") or {}
    peak_text = ", ".join(f"{DTYPE_LABELS.get(k, k)} {v:.0f} TFLOP/s" for k, v in peaks.items()) or "not measured"
    return "\n".join([
        "# slimtriton GPU benchmark",
        "",
        common.record_markdown(result["record"]),
        f"- settings: nets {', '.join(s['nets'])}; batches {s['batches']}; dtypes {s['dtypes']}; "
        f"timing: {s['timing']['warmup']} warm-up calls, >= {s['timing']['min_iters']} samples and "
        f">= {s['timing']['min_time_s']} s per measurement; budget {s['budget_s']:.0f} s "
        f"({s['elapsed_s']:.0f} s used); cudnn.benchmark on"
        + ("" if s.get("autotune", True) else "; slimtriton autotuning OFF (default tiles)")
        + ("" if s.get("complete", True) else " -- PARTIAL: written after each measurement, the run did not finish"),
        f"- measured peak (torch.matmul {s['peak_size']}^3): {peak_text}",
        "",
        "Latency: one call per sample between CUDA events, synchronized after each (CPU launch overhead "
        "included); img/s = batch / median latency; TFLOP/s from the net's FLOPs; rel L2 against the torch "
        "backend in float32 with TF32 off; compile s = compilation + first call.",
        "",
        common.markdown_table(*result_rows(result["rows"]), align="lllrlrrrrrrrl"),
        "",
        "## Targets (each system at its better CUDA-graph setting, torch.compile at its best mode)",
        "",
        common.targets_markdown(gpu_targets(result["rows"])),
    ])


def save_chart(rows, path) -> Optional[Path]:
    """Throughput per system and CUDA-graph setting; one panel per (dtype, batch)."""
    plt = common.pyplot()
    if plt is None:
        print("matplotlib is not installed (pip install -e .[bench]): no chart written", file=sys.stderr)
        return None
    good = [r for r in rows if r["status"] == "ok"]
    if not good:
        return None
    nets = list(dict.fromkeys(r["net"] for r in good))
    panels = sorted({(r["net"], r["dtype"], r["batch"]) for r in good},
                    key=lambda p: (nets.index(p[0]), p[1], p[2]))
    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 3.6 * nrows), squeeze=False)
    colors = {"slimtriton": "#e07b39", "torch_eager": "#8c8c8c", "torch_compile": "#6a9fd4",
              "torch_compile_max": "#3b6ea8"}
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (net, dtype, batch) in zip(axes.flat, panels):
        labels, values, bar_colors, hatches = [], [], [], []
        for system in SYSTEMS:
            for cg in (True, False):
                match = [r for r in ok_rows(good, net, dtype, batch, system) if r["cuda_graph"] == cg]
                if not match and system in COMPILE_SYSTEMS:
                    continue
                labels.append(f"{SYSTEM_LABELS[system].split(' (')[0]}\n{'graph' if cg else 'no graph'}")
                values.append(match[0]["throughput_ips"] if match else 0.0)
                bar_colors.append(colors[system])
                hatches.append("" if cg else "//")
        xs = range(len(labels))
        bars = ax.bar(xs, values, color=bar_colors, edgecolor="white")
        for bar, hatch, v in zip(bars, hatches, values):
            bar.set_hatch(hatch)
            ax.annotate("n/a" if v == 0 else f"{v:.0f}", (bar.get_x() + bar.get_width() / 2, v),
                        textcoords="offset points", xytext=(0, 2), ha="center", fontsize=7)
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels, fontsize=6.5)
        ax.set_ylabel("images / s")
        ax.set_title(f"{net}, {DTYPE_LABELS.get(dtype, dtype)}, batch {batch}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    return common.save_figure(plt, fig, path)


# -- GPU measurement ----------------------------------------------------------------------------
@contextlib.contextmanager
def tf32(enabled: bool):
    """TF32 tensor cores for float32 matmuls and cuDNN convs on or off inside the block."""
    import torch
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    torch.set_float32_matmul_precision("high" if enabled else "highest")
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])


def time_cuda(fn: Callable[[], object], timing: Timing) -> list[float]:
    """Per-call latencies in ms: warm-up, then one CUDA-event pair per call, synchronized."""
    import torch
    for _ in range(timing.warmup):
        fn()
    torch.cuda.synchronize()
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < timing.max_iters:
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end))
        if len(samples) >= timing.min_iters and time.perf_counter() - started >= timing.min_time_s:
            break
    return samples


def measure_peak(dtype: str, size: int, timing: Timing) -> float:
    """TFLOP/s of a size^3 torch.matmul in `dtype` (float32: with TF32)."""
    import torch
    tdt = _torch_dtype(dtype)
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    a = torch.randn((size, size), device=DEVICE, generator=gen).to(tdt)
    b = torch.randn((size, size), device=DEVICE, generator=gen).to(tdt)
    with tf32(dtype == "float32"):
        samples = time_cuda(lambda: torch.matmul(a, b), Timing(timing.warmup, 10, 50, 0.5))
    del a, b
    return 2 * size**3 / (common.summarize(samples)["median"] * 1e-3) / 1e12


class NetState:
    """Per net: weights (batch independent); per batch: graph, logits, FLOPs, input, reference."""

    def __init__(self, name: str):
        self.name = name
        self.weights = None
        self.graphs: dict[int, tuple] = {}
        self.references: dict[int, object] = {}

    def graph(self, batch: int):
        if batch not in self.graphs:
            import torch

            import slimtriton as st
            from slimtriton.nets import nets_factory
            network_fn = nets_factory.get_network_fn(self.name, num_classes=None)
            size = network_fn.default_image_size
            with st.Graph() as g:
                images = st.placeholder([batch, size, size, 3], name="images")
                logits, _ = network_fn(images)
            flops = st.compile(g, logits, None, dtype="float32").summary()["flops"]
            if self.weights is None:
                self.weights = st.init_weights(g, seed=0)
            gen = torch.Generator(device=DEVICE).manual_seed(0)
            x = torch.rand((batch, size, size, 3), device=DEVICE, generator=gen) * 2 - 1
            self.graphs[batch] = (g, logits, int(flops), x)
        return self.graphs[batch]

    def reference(self, batch: int):
        """The torch backend's output in float32 with TF32 off (on the CPU, as NumPy)."""
        if batch not in self.references:
            import torch

            from slimtriton.eager.torch_backend import build_torch_callable
            g, logits, _, x = self.graph(batch)
            f = build_torch_callable(g, logits, self.weights, device=DEVICE, dtype="float32")
            with tf32(False), torch.no_grad():
                self.references[batch] = f(x).float().cpu().numpy()
            del f
            free_gpu()
        return self.references[batch]


def free_gpu() -> None:
    import torch
    gc.collect()
    torch.cuda.empty_cache()


def _torch_dtype(dtype: str):
    from slimtriton.kernels.common import TORCH_COMPUTE_DTYPES
    return TORCH_COMPUTE_DTYPES[dtype]


def build_runner(task: Task, state: NetState):
    """(call, first_output) for a task: `call()` runs one inference; compilation and the
    first call happen here (their time is the task's compile time)."""
    import torch

    import slimtriton as st
    from slimtriton.eager.torch_backend import build_torch_callable
    g, logits, _, x32 = state.graph(task.batch)
    x = x32.to(_torch_dtype(task.dtype)).contiguous()
    if task.system == "slimtriton":
        model = st.compile(g, logits, state.weights, dtype=task.dtype, precision=PRECISION[task.dtype],
                           device=DEVICE, cuda_graph=task.cuda_graph)
        first = model(x)
        if task.cuda_graph:
            first = model(x)  # the CUDA-graph runner captures on its first call: replay once
        return (lambda: model(x)), first
    f = build_torch_callable(g, logits, state.weights, device=DEVICE, dtype=task.dtype)
    if task.system == "torch_eager":
        first = f(x)  # also makes the channels_last weight copies (reused by later calls)
        if not task.cuda_graph:
            return (lambda: f(x)), first
        static_x = x.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                f(static_x)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = f(static_x)

        def replay():
            static_x.copy_(x)
            graph.replay()
            return static_out
        replay()
        return replay, static_out
    if task.system in COMPILE_SYSTEMS:
        torch._dynamo.reset()
        mode = COMPILE_MODES[(task.system, task.cuda_graph)]
        compiled = torch.compile(f, mode=mode, fullgraph=False, dynamic=False)

        def call():
            if task.cuda_graph:
                torch.compiler.cudagraph_mark_step_begin()
            return compiled(x)
        first = call()
        first = call()  # cudagraph trees record on a later call than the first
        return call, first
    raise ValueError(f"unknown system {task.system!r}")


def run_task(task: Task, state: NetState, timing: Timing, peaks: dict) -> dict:
    import torch
    row = task.row()
    with tf32(task.dtype == "float32"), torch.no_grad():
        started = time.perf_counter()
        call, first = build_runner(task, state)
        torch.cuda.synchronize()
        row["compile_s"] = round(time.perf_counter() - started, 2)
        output = first.float().cpu().numpy()
        samples = time_cuda(call, timing)
    _, _, flops, _ = state.graph(task.batch)
    # Derived figures come from the recorded (rounded) median, so the JSON is self-consistent.
    lat = {k: (round(v, 5) if k != "n" else v) for k, v in common.summarize(samples).items()}
    row.update(status="ok", latency_ms=lat,
               flops=flops, **performance(task.batch, flops, lat["median"], peaks.get(task.dtype)))
    rel = relative_l2(output, state.reference(task.batch))
    row["rel_l2"] = None if rel is None or not math.isfinite(rel) else rel
    row["output_finite"] = rel is not None
    return row


# -- main -----------------------------------------------------------------------------------------
def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", nargs="+", default=[TARGET_NET], metavar="NET",
                        help="nets to benchmark (default resnet_v1_50); commas also separate")
    parser.add_argument("--batches", nargs="+", default=None, metavar="N", help="default 1 32 256 (--quick: 1 256)")
    parser.add_argument("--dtypes", nargs="+", default=None, choices=["float16", "float32", "bfloat16"],
                        help="default float16 float32 (--quick: float16); float32 runs with TF32")
    parser.add_argument("--quick", action="store_true", help="fewer iterations and configurations, 300 s budget")
    parser.add_argument("--budget", type=float, default=None, help="global time budget in seconds (default 540)")
    parser.add_argument("--compile-reserve", type=float, default=120.0,
                        help="start a torch.compile (default mode) measurement only with this many seconds "
                             "left; max-autotune needs three times that (default 120)")
    parser.add_argument("--plan", default="all", choices=PLANS,
                        help="essential: the few measurements a short GPU window must have; extras: the rest; "
                             "all (default): both, essential first")
    parser.add_argument("--name", default="gpu", help="stem of the output files (default gpu: gpu.json, gpu.md, gpu.png)")
    parser.add_argument("--peak-size", type=int, default=8192, help="size of the peak matmul (default 8192)")
    parser.add_argument("--out-dir", default=str(common.RESULTS_DIR), help="default bench/results")
    parser.add_argument("--no-autotune", action="store_true",
                        help="slimtriton uses its default (or cached) tiles, no timing of candidates "
                             "(SLIMTRITON_AUTOTUNE=0): compile time without autotuning, speed of the defaults")
    args = parser.parse_args(argv)
    args.nets = [n for item in args.nets for n in item.split(",") if n]
    try:
        batches = args.batches or (["1", "256"] if args.quick else [str(b) for b in BATCHES])
        args.batches = [int(b) for item in batches for b in str(item).split(",") if b]
    except ValueError:
        parser.error(f"--batches: expected integers, got {args.batches}")
    if any(b < 1 for b in args.batches):
        parser.error(f"--batches must be >= 1, got {args.batches}")
    args.dtypes = args.dtypes or (["float16"] if args.quick else list(DTYPES))
    args.budget = args.budget if args.budget is not None else (300.0 if args.quick else 540.0)
    args.timing = QUICK_TIMING if args.quick else TIMING
    from slimtriton.nets import nets_factory
    unknown = [n for n in args.nets if n not in nets_factory.networks_map]
    if unknown:
        parser.error(f"--nets: unknown {unknown}; known: {' '.join(sorted(nets_factory.networks_map))}")
    return args


def write_results(out: Path, args, record, budget: Budget, peaks: dict, rows: list, complete: bool):
    """gpu.json and gpu.md from the rows so far (`complete=False`: written after each
    measurement, marked partial, so an outer time limit cannot lose what was measured)."""
    from slimtriton.kernels.config import autotune_enabled
    targets = gpu_targets(rows)
    result = {
        "record": record,
        "settings": {"nets": args.nets, "batches": args.batches, "dtypes": args.dtypes, "quick": args.quick,
                     "plan": args.plan,
                     "budget_s": args.budget, "elapsed_s": round(budget.elapsed(), 1),
                     "compile_reserve_s": args.compile_reserve, "timing": dataclasses.asdict(args.timing),
                     "peak_size": args.peak_size, "cudnn_benchmark": True, "output": "logits",
                     "weights": "init_weights(graph, seed=0)", "images": "uniform [-1, 1], seed 0",
                     "complete": complete,
                     "autotune": autotune_enabled()},
        "peak_tflops": peaks,
        "rows": rows,
        "targets": [t.to_json() for t in targets],
    }
    common.write_json(out / f"{args.name}.json", result)
    common.write_text(out / f"{args.name}.md", markdown_report(result))
    return targets


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import torch
    if not torch.cuda.is_available():
        print("bench/gpu.py: no CUDA device available; this benchmark needs a GPU (nothing measured, "
              "no results written).")
        return 0
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("bench/gpu.py: TRITON_INTERPRET is set; turning the interpreter off to time the GPU kernels")
        os.environ["TRITON_INTERPRET"] = "0"
    if args.no_autotune:
        os.environ["SLIMTRITON_AUTOTUNE"] = "0"
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # the Triton 3.9 default, without its warning
    import slimtriton.kernels  # noqa: F401  (before triton kernels are defined, with the setting above)

    budget = Budget(args.budget)
    record = common.run_record(None if argv is None else ["bench/gpu.py", *argv], with_gpu=True)
    torch.backends.cudnn.benchmark = True
    print(f"GPU: {record['machine']['gpu']['name']}; budget {args.budget:.0f} s", flush=True)

    peaks = {}
    for dtype in args.dtypes:
        peaks[dtype] = round(measure_peak(dtype, args.peak_size, args.timing), 1)
        print(f"peak {DTYPE_LABELS[dtype]}: {peaks[dtype]:.0f} TFLOP/s (torch.matmul {args.peak_size}^3)", flush=True)
    free_gpu()

    states = {net: NetState(net) for net in args.nets}
    rows = []
    for task in schedule(args.nets, args.batches, args.dtypes, args.plan):
        needed = {"torch_compile": args.compile_reserve, "torch_compile_max": 3 * args.compile_reserve}.get(
            task.system, 15.0)
        if not budget.allows(needed):
            rows.append(task.row(status="skipped",
                                 reason=f"time budget ({budget.remaining():.0f} s left, {needed:.0f} s needed)"))
            continue
        print(f"[{budget.elapsed():5.0f} s] {task.label} ...", end=" ", flush=True)
        in_flight = task.row(status="error", reason="did not finish: the run was stopped during this measurement")
        write_results(Path(args.out_dir), args, record, budget, peaks, rows + [in_flight], complete=False)
        try:
            row = run_task(task, states[task.net], args.timing, peaks)
        except Exception as exc:  # noqa: BLE001 -- recorded; the other measurements go on
            row = task.row(status="error", reason=f"{type(exc).__name__}: {str(exc)[:300]}")
            print(f"ERROR {row['reason']}", flush=True)
            traceback.print_exc(limit=4)
        else:
            print(f"{row['latency_ms']['median']:.3f} ms, {row['throughput_ips']:.1f} img/s, "
                  f"{row['tflops']:.1f} TFLOP/s, rel L2 {row['rel_l2']}, compile {row['compile_s']} s", flush=True)
        rows.append(row)
        if task.system in COMPILE_SYSTEMS:
            torch._dynamo.reset()
        free_gpu()
        # after every measurement: a run killed by an outer time limit keeps what it measured
        write_results(Path(args.out_dir), args, record, budget, peaks, rows, complete=False)

    out = Path(args.out_dir)
    targets = write_results(out, args, record, budget, peaks, rows, complete=True)
    chart = save_chart(rows, out / f"{args.name}.png")
    print()
    print(common.text_table(*result_rows(rows)))
    common.print_targets(targets, "GPU targets")
    print(f"\nwrote {out / (args.name + '.json')}, {out / (args.name + '.md')}" + (f", {chart}" if chart else ""))
    return 1 if any(t.passed is False for t in targets) else 0


if __name__ == "__main__":
    sys.exit(main())
