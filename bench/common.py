"""Helpers shared by the benchmark scripts (bench/fusion.py, bench/gpu.py).

* `run_record()`: what every result file records -- machine, versions (python, torch,
  triton, numpy, slimtriton and its git commit), UTC date and the command line.
* `summarize()`: robust statistics of timing samples (median, p10/p90, mean, min, max).
* `Target` / `check_ratio()` / `print_targets()`: the PASS/FAIL checks both scripts print.
* `markdown_table()`, `write_json()`, `write_text()`, `record_markdown()`: result files.
* `pyplot()`: matplotlib with the non-interactive Agg backend (None when not installed);
  `save_figure()` writes a chart.
* `fmt_bytes()`, `fmt_count()`: human-readable numbers for tables.

Nothing here imports torch or triton at module level: the scripts decide when (and with
which TRITON_INTERPRET setting) those are imported.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "bench" / "results"


# -- run record ---------------------------------------------------------------------------
def _git(*args: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit() -> dict:
    """The slimtriton commit the numbers were taken at, and whether tracked files differed."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> Optional[float]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _module_version(name: str) -> Optional[str]:
    module = sys.modules.get(name)
    if module is None:
        try:
            import importlib
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 -- a missing optional package is recorded as None
            return None
    return getattr(module, "__version__", None)


def gpu_info() -> Optional[dict]:
    """The CUDA device the numbers were taken on (None without one)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return {"name": props.name, "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1), "multiprocessors": props.multi_processor_count,
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}


def run_record(argv: Optional[Sequence[str]] = None, with_gpu: bool = False) -> dict:
    """Machine, versions, date and command of a benchmark run (stored in every result file)."""
    argv = list(sys.argv if argv is None else argv)
    if argv and argv[0].endswith(".py"):
        try:
            argv[0] = os.path.relpath(argv[0], REPO_ROOT)
        except ValueError:
            pass
    record = {
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "command": "python " + " ".join(shlex.quote(a) for a in argv),
        "machine": {
            "platform": platform.platform(),
            "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "memory_gib": _memory_gib(),
        },
        "versions": {
            "python": platform.python_version(),
            "numpy": _module_version("numpy"),
            "torch": _module_version("torch"),
            "triton": _module_version("triton"),
            "slimtriton": _module_version("slimtriton"),
            "slimtriton_git": git_commit(),
        },
    }
    if with_gpu:
        record["machine"]["gpu"] = gpu_info()
    return record


def record_markdown(record: dict) -> str:
    """The run record as a few markdown lines (top of every .md result)."""
    v, m = record["versions"], record["machine"]
    git = v.get("slimtriton_git") or {}
    commit = (git.get("commit") or "unknown")[:12] + (" (with uncommitted changes)" if git.get("dirty") else "")
    lines = [
        f"- date: {record['date']}",
        f"- command: `{record['command']}`",
        f"- machine: {m['cpu']} ({m['cpu_count']} logical CPUs, {m.get('memory_gib')} GiB), {m['platform']}",
    ]
    if m.get("gpu"):
        g = m["gpu"]
        lines.append(f"- GPU: {g['name']} (sm_{g['capability'].replace('.', '')}, {g['memory_gib']} GiB, "
                     f"CUDA {g['cuda']}, cuDNN {g['cudnn']})")
    lines.append(f"- versions: python {v['python']}, torch {v['torch']}, triton {v['triton']}, "
                 f"numpy {v['numpy']}, slimtriton {v['slimtriton']} at commit {commit}")
    return "\n".join(lines)


# -- statistics ----------------------------------------------------------------------------
def percentile(samples: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default rule), q in [0, 100]."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    xs = sorted(float(x) for x in samples)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(samples: Sequence[float]) -> dict:
    """median, p10, p90, mean, min, max and n of timing samples (any unit)."""
    xs = [float(x) for x in samples]
    if not xs:
        raise ValueError("summarize: no samples")
    if any(not math.isfinite(x) for x in xs):
        raise ValueError(f"summarize: non-finite sample in {xs[:8]}...")
    return {"median": percentile(xs, 50), "p10": percentile(xs, 10), "p90": percentile(xs, 90),
            "mean": sum(xs) / len(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


# -- targets -------------------------------------------------------------------------------
@dataclasses.dataclass
class Target:
    """One performance target: `measured <= limit` (or `>=`); passed None = not measured."""
    name: str
    measured: Optional[float]
    limit: float
    relation: str                       # '<=' or '>='
    unit: str = ""
    note: str = ""

    def __post_init__(self):
        if self.relation not in ("<=", ">="):
            raise ValueError(f"target {self.name!r}: relation must be '<=' or '>=', got {self.relation!r}")

    @property
    def passed(self) -> Optional[bool]:
        if self.measured is None or (isinstance(self.measured, float) and math.isnan(self.measured)):
            return None
        return self.measured <= self.limit if self.relation == "<=" else self.measured >= self.limit

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "SKIP"}[self.passed]

    def line(self) -> str:
        if self.measured is None:
            got = "not measured"
        else:
            got = f"{self.measured:.4g}{self.unit}"
        note = f" ({self.note})" if self.note else ""
        return f"{self.verdict}  {self.name}: {got} {self.relation} {self.limit:g}{self.unit}{note}"

    def to_json(self) -> dict:
        return {"name": self.name, "measured": self.measured, "relation": self.relation, "limit": self.limit,
                "unit": self.unit, "note": self.note, "verdict": self.verdict}


def ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    """numerator / denominator, None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return float(numerator) / float(denominator)


def print_targets(targets: Iterable[Target], title: str = "targets", file=None) -> None:
    file = file or sys.stdout
    print(f"\n{title}:", file=file)
    for t in targets:
        print("  " + t.line(), file=file)


def targets_markdown(targets: Iterable[Target]) -> str:
    rows = []
    for t in targets:
        got = "not measured" if t.measured is None else f"{t.measured:.4g}{t.unit}"
        rows.append([t.verdict, t.name, got, f"{t.relation} {t.limit:g}{t.unit}", t.note])
    return markdown_table(["verdict", "target", "measured", "limit", "note"], rows, "lllll")


# -- tables and files ----------------------------------------------------------------------
def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: Optional[str] = None) -> str:
    """A GitHub markdown table; `align` is one letter per column ('l' or 'r'; default: 'l'
    for the first column and 'r' for the rest)."""
    n = len(headers)
    if align is None:
        align = "l" + "r" * (n - 1)
    if len(align) != n or set(align) - {"l", "r"}:
        raise ValueError(f"align must be {n} letters of 'l'/'r', got {align!r}")
    for k, row in enumerate(rows):
        if len(row) != n:
            raise ValueError(f"row {k} has {len(row)} cells, the table has {n} columns: {list(row)}")

    def cell(x) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
             "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|"]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: Optional[str] = None) -> str:
    """The same table as fixed-width text, for stdout."""
    n = len(headers)
    align = align or "l" + "r" * (n - 1)
    cells = [[str(h) for h in headers]] + [[str(x) for x in row] for row in rows]
    widths = [max(len(r[c]) for r in cells) for c in range(n)]
    out = []
    for k, r in enumerate(cells):
        out.append("  ".join(x.ljust(w) if a == "l" else x.rjust(w) for x, w, a in zip(r, widths, align)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def write_json(path, obj) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=False, allow_nan=False) + "\n")
    return path


def write_text(path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n")
    return path


def pyplot():
    """matplotlib.pyplot with the Agg backend, or None when matplotlib is not installed
    (`pip install -e .[bench]` / `make bench-fusion` installs it)."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def save_figure(plt, fig, path) -> Path:
    """Lay out `fig`, write it to `path` (110 dpi; folders made) and close it."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- formatting ----------------------------------------------------------------------------
def fmt_bytes(n: Optional[float]) -> str:
    """Bytes in binary units with 3 significant figures: 1536 -> '1.50 KiB'."""
    if n is None:
        return "-"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def fmt_count(n: Optional[float], digits: int = 3) -> str:
    """A count with an SI suffix and `digits` significant figures: 7.01e9 -> '7.01 G'."""
    if n is None:
        return "-"
    n = float(n)
    for unit in ("", "K", "M", "G", "T", "P"):
        if abs(n) < 1000 or unit == "P":
            return f"{n:.{digits}g}" if unit == "" else f"{n:.{digits}g} {unit}"
        n /= 1000
    raise AssertionError("unreachable")
