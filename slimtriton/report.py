"""Byte model, the three plans of a graph, and the fusion report (text and JSON).

Byte model (`kernel_bytes`): a kernel reads each of its inputs (activations, weights,
per-channel vectors) from DRAM once and writes each of its outputs once, all in the
compute dtype; views (reshape) and concat buffers written in place move nothing. The
same function prices all three plans:

* `unfused`: one kernel per IR op of the cleaned graph (after constant folding and
  identity removal, which no executor would run as kernels);
* `extern_conv_plus_pointwise`: what torch.compile does by default -- every conv / GEMM
  is a library kernel (reads input and weights, writes its output), and maximal chains of
  pointwise ops (BN, bias, activations, adds, scalar muls, pads) where each link has a
  single consumer become one fused pointwise kernel; pools, reductions, softmax and
  concats are kernels of their own;
* `slimtriton`: the compiled plan (slimtriton.runtime.plan).

FLOPs: `slimtriton.ir.cost.flops` (multiply-add = 2 FLOPs); a fused kernel's FLOPs are
those of the recorded ops it computes.
"""
from __future__ import annotations

import json
from collections import OrderedDict

from .ir.cost import flops, kernel_bytes, tensor_bytes  # noqa: F401 - the byte model lives in ir/cost.py
from .ir.ops import CONV_OPS, POINTWISE_OPS, SOURCE_OPS, VIEW_OPS, Op

PLANS = ("unfused", "extern_conv_plus_pointwise", "slimtriton")


# -- FLOPs ------------------------------------------------------------------------------------
def node_flops(node) -> int:
    """FLOPs of one recorded (unfused) IR node (slimtriton.ir.cost; multiply-add = 2)."""
    return int(flops(node))


def fused_flops(program, node) -> int:
    """FLOPs of a (possibly fused) program node: those of the recorded ops it stands for."""
    names = program.origin_of(node)
    total = 0
    for name in names:
        rec = program.recorded.get(name)
        if rec is not None:
            total += node_flops(rec)
    return total


# -- the three plans --------------------------------------------------------------------------
# Op groups (ir/ops.py): a new activation is pointwise here without an edit.
_VIEW_OPS = VIEW_OPS
_SOURCES = SOURCE_OPS
_LIBRARY = CONV_OPS
_POINTWISE = POINTWISE_OPS


def unfused_plan(program, dtype: str) -> list[dict]:
    kernels = []
    for n in program.nodes:
        if n.op in _SOURCES or n.op in _VIEW_OPS or (n.op is Op.DROPOUT and not n.attrs["is_training"]):
            continue
        kernels.append({"ops": [n.name], "bytes": kernel_bytes(n.inputs, [n], dtype)})
    return kernels


def extern_conv_plus_pointwise_plan(program, dtype: str) -> list[dict]:
    uses = program.uses()
    group_of: dict[str, int] = {}
    groups: list[list] = []
    for n in program.nodes:
        if n.op in _SOURCES or n.op in _VIEW_OPS:
            continue
        if n.op in _POINTWISE:
            # join the group of a pointwise producer this node is the only consumer of
            joined = None
            for i in n.inputs:
                if i.name in group_of and i.op in _POINTWISE and uses.get(i.name) == 1:
                    joined = group_of[i.name]
                    break
            if joined is None:
                joined = len(groups)
                groups.append([])
            groups[joined].append(n)
            group_of[n.name] = joined
        else:
            group_of[n.name] = len(groups)
            groups.append([n])
    kernels = []
    for members in groups:
        inside = {m.name for m in members}
        reads = OrderedDict()
        for m in members:
            for i in m.inputs:
                if i.name not in inside:
                    reads[i.name] = i
        writes = [m for m in members if uses.get(m.name, 0) > sum(
            1 for o in members for i in o.inputs if i.name == m.name)]
        kernels.append({"ops": [m.name for m in members], "bytes": kernel_bytes(list(reads.values()), writes, dtype)})
    return kernels


def slimtriton_plan(plan) -> list[dict]:
    return [{"ops": list(s.fused), "bytes": s.bytes, "kernel": s.kernel} for s in plan.steps if s.launches_kernel]


def plan_summary(plan) -> dict:
    """The JSON summary: kernel counts and modeled DRAM bytes per plan, FLOPs, peak activations."""
    baseline = plan.baseline if plan.baseline is not None else plan.program
    plans = {
        "unfused": unfused_plan(baseline, plan.dtype),
        "extern_conv_plus_pointwise": extern_conv_plus_pointwise_plan(baseline, plan.dtype),
        "slimtriton": slimtriton_plan(plan),
    }
    flops = sum(node_flops(n) for n in baseline.nodes)
    return {
        "dtype": plan.dtype,
        "kernels": {k: len(v) for k, v in plans.items()},
        "bytes": {k: sum(x["bytes"] for x in v) for k, v in plans.items()},
        "flops": int(flops),
        "peak_activation_bytes": int(plan.memory.peak_bytes),
        "arena_bytes": int(plan.memory.arena_bytes),
    }


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024


def fusion_report(plan, json_path=None, max_ops_shown: int = 6) -> str:
    summary = plan_summary(plan)
    lines = [f"slimtriton fusion report ({plan.dtype}): {summary['kernels']['slimtriton']} kernels"]
    lines.append(f"{'#':>3}  {'kernel':<16} {'output':<20} {'MFLOP':>10} {'read':>10} {'written':>10}  fused ops")
    k = 0
    steps_json = []
    for s in plan.steps:
        if not s.launches_kernel:
            continue
        ops = list(s.fused)
        shown = ", ".join(ops[:max_ops_shown]) + (f", ... (+{len(ops) - max_ops_shown})" if len(ops) > max_ops_shown else "")
        shape = s.copy_from.shape if s.copy_from is not None else s.node.shape
        where = f" -> {s.target[0].name}[+{s.target[1]}]" if s.target is not None else ""
        lines.append(f"{k:>3}  {s.kernel:<16} {str(list(shape)):<20} {s.flops / 1e6:>10.2f} "
                     f"{_fmt_bytes(s.bytes_read):>10} {_fmt_bytes(s.bytes_written):>10}  {shown}{where}")
        steps_json.append({"index": k, "name": s.node.name, "kernel": s.kernel, "fused_ops": ops,
                           "inputs": [list(n.shape) for n in s.reads], "output": list(shape), "flops": s.flops,
                           "bytes_read": s.bytes_read, "bytes_written": s.bytes_written,
                           "writes_into": s.target[0].name if s.target is not None else None})
        k += 1
    lines.append("")
    lines.append(f"{'plan':<28} {'kernels':>8} {'DRAM bytes':>14} {'vs unfused':>11} {'vs extern':>10}")
    unf = summary["bytes"]["unfused"] or 1
    ext = summary["bytes"]["extern_conv_plus_pointwise"] or 1
    for name in PLANS:
        b = summary["bytes"][name]
        lines.append(f"{name:<28} {summary['kernels'][name]:>8} {_fmt_bytes(b):>14} {b / unf:>11.3f} {b / ext:>10.3f}")
    lines.append(f"total FLOPs {summary['flops'] / 1e9:.3f} GFLOP; peak activation memory "
                 f"{_fmt_bytes(summary['peak_activation_bytes'])} (arena {_fmt_bytes(summary['arena_bytes'])})")
    if json_path is not None:
        with open(json_path, "w") as f:
            json.dump({**summary, "steps": steps_json}, f, indent=1)
    return "\n".join(lines)


# -- design measurement: a second epilogue output (ResNet v2 pre-activation) ------------------
def second_output_bytes(program, dtype: str) -> dict:
    """Byte-model comparison for each pointwise `e = act(x*s + t)` (no residual) whose input x
    is produced by a fused conv / GEMM kernel, in `program` as it stands after pass 4b
    (`pointwise`): the cost of what passes 5 and 7 do (consumer prologues when pass 5 applies
    them; the mean-GEMM's per-pixel prologue when e only feeds a global mean; else e's own
    kernel) against a second output of x's producer (e written by the producer's epilogue
    too; consumers read e). Costs count only what differs: e's kernel, the extra
    write, the consumers' reads of x or e and of the vectors. Returns per-node rows and totals."""
    from .fusion import prologue as prologue_pass
    from .fusion.common import FUSED_OPS, PROLOGUE_OPS
    from .fusion.mean_gemm import is_global_mean
    consumers = program.consumers()
    rows = []
    for e in program.nodes:
        if e.op is not Op.FUSED_ELEMENTWISE or e.attrs["residual"]:
            continue
        x = e.inputs[0]
        if x.op not in FUSED_OPS:
            continue
        users = consumers.get(e.name, [])
        n = len(users)
        as_prologue = (n > 0 and all(u.op in PROLOGUE_OPS and u.inputs[0] is e for u in users)
                       and sum(prologue_pass._taps(u) for u in users) <= prologue_pass.MAX_PROLOGUE_TAPS)
        into_mean = n == 1 and is_global_mean(users[0])
        kept, fused = prologue_pass.pointwise_and_prologue_bytes(e, n, dtype)
        current = fused if (as_prologue or into_mean) else kept
        second = kept - tensor_bytes(x.shape, dtype)  # as e's own kernel, less its read of x
        how = "prologue" if as_prologue else "mean-GEMM prologue" if into_mean else "pointwise kernel"
        rows.append({"node": e.name, "consumers": n, "current": how,
                     "current_bytes": current, "second_output_bytes": second})
    return {"rows": rows, "current_bytes": sum(r["current_bytes"] for r in rows),
            "second_output_bytes": sum(r["second_output_bytes"] for r in rows)}
