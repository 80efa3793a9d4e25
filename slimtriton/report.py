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
import sys
from collections import OrderedDict

from .fusion import prologue as prologue_pass
from .fusion.common import FUSED_OPS, PROLOGUE_OPS
from .fusion.mean_gemm import is_global_mean
from .ir.cost import flops, fused_flops, kernel_bytes, node_flops, tensor_bytes  # noqa: F401 - the byte model lives in ir/cost.py
from .ir.ops import POINTWISE_OPS, SOURCE_OPS, VIEW_OPS, Op

PLANS = ("unfused", "extern_conv_plus_pointwise", "slimtriton")


# -- the three plans --------------------------------------------------------------------------
# Op groups (ir/ops.py): a new activation is pointwise here without an edit.
_VIEW_OPS = VIEW_OPS
_SOURCES = SOURCE_OPS
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
    return [{"ops": list(s.fused_ops), "bytes": s.bytes, "kernel": s.kernel} for s in plan.kernels]


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


def bucket_summary(plans: dict) -> tuple[str, list[dict]]:
    """(a text table, its JSON rows) of a dynamic-batch model's plans, {batch bucket: plan}: per
    bucket the kernels, their FLOPs (the steps' own counts, which a saved engine keeps: a loaded
    plan has no recorded graph to recount), modeled DRAM bytes and arena bytes."""
    rows = []
    for b, p in sorted(plans.items()):
        summary = plan_summary(p)
        flops = sum(s.flops for s in p.kernels)
        rows.append({"batch": b, "kernels": summary["kernels"]["slimtriton"], "flops": int(flops),
                     "bytes": summary["bytes"]["slimtriton"], "arena_bytes": summary["arena_bytes"]})
    lines = [f"{'bucket':>6} {'kernels':>8} {'MFLOP':>11} {'DRAM bytes':>12} {'arena':>12}"]
    lines += [f"{r['batch']:>6} {r['kernels']:>8} {r['flops'] / 1e6:>11.2f} {_fmt_bytes(r['bytes']):>12} "
              f"{_fmt_bytes(r['arena_bytes']):>12}" for r in rows]
    return "\n".join(lines), rows


def _fmt_bytes(n: float) -> str:
    """Binary units, named as such (KiB, MiB, GiB: powers of 1024)."""
    if abs(n) < 1024:
        return f"{int(n)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"


def _scope(name: str) -> str:
    return name.rsplit("/", 1)[0] if "/" in name else ""


def common_scope(names) -> str:
    """The longest scope ('a/b/c', cut at a '/') that every name lies in ('' for none)."""
    parts = [n.split("/") for n in names]
    if not parts:
        return ""
    common = []
    for level in zip(*parts):
        if any(p != level[0] for p in level):
            break
        common.append(level[0])
    if len(common) == min(len(p) for p in parts):  # a name is its own scope: keep its last part out
        common = common[:-1]
    return "/".join(common)


def scope_prefix(plan) -> str:
    """The scope every fused op of the plan's kernels lies in (e.g. 'resnet_v1_50'): the report
    names layers relative to it. A one-kernel plan has none (it would swallow the layer)."""
    kernels = plan.kernels
    return common_scope([name for step in kernels for name in step.fused_ops]) if len(kernels) > 1 else ""


def step_layer_and_ops(program, step, prefix: str = "") -> tuple[str, str]:
    """(the layer a kernel computes, relative to `prefix`: the scope its fused ops share, helper
    ops without a scope of their own (a net-level pad) left out, or their top-level scopes joined
    by '+' when they share none; their op kinds in order, joined by '+'), e.g.
    ('block1/unit_1/bottleneck_v1', 'conv2d+batch_norm+add+relu')."""
    names = list(step.fused_ops)
    kinds = []
    for name in names:
        rec = program.recorded.get(name) if program is not None else None
        kinds.append(rec.op.short if rec is not None else name.rsplit("/", 1)[-1])
    relative = [n[len(prefix) + 1:] if prefix and n.startswith(prefix + "/") else n for n in names]
    scoped = [n for n in relative if "/" in n] or relative
    layer = common_scope(scoped) if len(scoped) > 1 else _scope(scoped[0]) if scoped else ""
    if not layer:
        layer = "+".join(dict.fromkeys(n.split("/")[0] for n in scoped))
    return layer, "+".join(kinds)


def _repeats_folded(kinds: str) -> str:
    """'3x(conv2d+batch_norm+relu)' for 'conv2d+batch_norm+relu' three times over (sibling convs
    in one routed kernel); other op-kind lists as they are."""
    parts = kinds.split("+")
    for period in range(1, len(parts) // 2 + 1):
        if len(parts) % period == 0 and parts == parts[:period] * (len(parts) // period):
            return f"{len(parts) // period}x({'+'.join(parts[:period])})"
    return kinds


def _call_json(step) -> dict:
    """The step's kernel call as its plan record holds it (runtime/step.py; nodes as {"node": name})."""
    record = step.to_json()
    return {k: record[k] for k in ("args", "kwargs", "takes_out", "takes_precision")}


def launch_tile(launch) -> str:
    """'fn BLOCKS/wWsS' of a KernelLaunch: the jit function, its BLOCK_* tile (in the order the
    kernel declares them), warps and pipeline stages."""
    fn = getattr(launch.fn, "fn", launch.fn)
    tile = "x".join(str(v) for k, v in launch.constexprs.items() if k.startswith("BLOCK_"))
    return f"{getattr(fn, '__name__', fn)} {tile or '-'} w{launch.num_warps}s{launch.num_stages}"


LEGEND = [
    "legend: layer = the scope the kernel's fused ops share (under the prefix above); ops = their kinds, in order;",
    "  triton kernel = the jit function, its BLOCK_* tile, warps (w) and pipeline stages (s) of a GPU run",
    "  (the cached autotune winner or the default; the interpreter uses one large tile); '+n': n more launches",
    "  in the step (e.g. a split-K reduction; --json lists every launch);",
    "  sizes in KiB/MiB/GiB (powers of 1024); MFLOP = 10^6 FLOPs (multiply-add = 2)",
]
CONCAT_LEGEND = ("  '-> C[+k]': the kernel writes its output straight into channels k.. of the buffer of concat C "
                 "(named relative to the layer's scope; concat elimination: no copy kernel)")


def fusion_report(plan, json_path=None, max_ops_shown: int = 6, launches=None) -> str:
    """The text report; `json_path` also writes the JSON summary ('-' writes it to stdout).
    `launches`: per plan step, its `KernelLaunch`es (default: recorded on meta tensors here)."""
    summary = plan_summary(plan)
    if launches is None:
        from .runtime.launches import record_plan_launches  # lazy: torch, kernels (only when launches not given)
        launches = record_plan_launches(plan)
    program = plan.baseline if plan.baseline is not None else plan.program
    recorded = getattr(program, "recorded", None) and program
    prefix = scope_prefix(plan)
    rows = []
    for s in plan.kernels:
        layer, kinds = step_layer_and_ops(recorded, s, prefix)
        step_launches = launches[s.index]
        more = f" +{len(step_launches) - 1}" if len(step_launches) > 1 else ""
        rows.append((s, layer, kinds, (launch_tile(step_launches[0]) + more) if step_launches else "-"))
    outputs = ", ".join(f"{o.name} ({o.op.short})" for o in plan.outputs)
    lines = [f"slimtriton fusion report ({plan.dtype}): {summary['kernels']['slimtriton']} kernels "
             f"computing {outputs}",
             f"layers below are under {prefix}/" if prefix else "layers: full scope names"]
    ktile = max([len(t) for *_, t in rows] + [len("triton kernel")])
    layer_w = min(max([len(layer) for _, layer, _, _ in rows] + [5]), 48)
    kind_w = max([len(s.kernel) for s, *_ in rows] + [len("kernel")])
    out_w = max([len(str(list(s.output_shape))) for s, *_ in rows] + [len("output")])
    lines.append(f"{'#':>3}  {'kernel':<{kind_w}} {'triton kernel':<{ktile}} {'output':<{out_w}} {'MFLOP':>9} "
                 f"{'read':>10} {'written':>10}  {'layer':<{layer_w}}  ops")
    steps_json = []
    for k, (s, layer, kinds, tile) in enumerate(rows):
        ops = list(s.fused_ops)
        shape = s.output_shape
        where = ""
        for o in s.outputs:  # each concat written in place, named relative to the scope it shares with the layer
            if o.target is not None:
                full = f"{prefix}/{layer}/x" if prefix else f"{layer}/x"
                shared = common_scope([full, o.target[0].name])
                where += f" -> {o.target[0].name[len(shared) + 1 if shared else 0:]}[+{o.target[1]}]"
        lines.append(f"{k:>3}  {s.kernel:<{kind_w}} {tile:<{ktile}} {str(list(s.output_shape)):<{out_w}} {s.flops / 1e6:>9.2f} "
                     f"{_fmt_bytes(s.bytes_read):>10} {_fmt_bytes(s.bytes_written):>10}  "
                     f"{layer:<{layer_w}}  {_repeats_folded(kinds)}{where}")
        steps_json.append({"index": k, "name": s.node.name, "kernel": s.kernel,
                           "layer": f"{prefix}/{layer}" if prefix else layer, "op_kinds": kinds,
                           "fused_ops": ops, "triton_kernels": [_launch_json(l) for l in launches[s.index]],
                           "inputs": [list(n.shape) for n in s.reads], "output": list(shape), "flops": s.flops,
                           "bytes_read": s.bytes_read, "bytes_written": s.bytes_written,
                           "writes_into": s.target[0].name if s.target is not None else None,
                           "channel_offset": s.target[1] if s.target is not None else None,
                           "outputs": [{"name": o.node.name, "shape": list(o.shape),
                                        "writes_into": o.target[0].name if o.target is not None else None,
                                        "channel_offset": o.target[1] if o.target is not None else None}
                                       for o in s.outputs],
                           "call": _call_json(s)})
    lines += LEGEND + ([CONCAT_LEGEND] if any(s.target is not None for s, *_ in rows) else [])
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
        document = {**summary, "outputs": [o.name for o in plan.outputs], "steps": steps_json}
        if str(json_path) == "-":
            json.dump(document, sys.stdout, indent=1)
            sys.stdout.write("\n")
        else:
            with open(json_path, "w") as f:
                json.dump(document, f, indent=1)
    return "\n".join(lines)


def _launch_json(launch) -> dict:
    fn = getattr(launch.fn, "fn", launch.fn)
    return {"fn": getattr(fn, "__name__", str(fn)), "grid": list(launch.grid),
            "tile": {k: v for k, v in launch.constexprs.items() if k.startswith("BLOCK_")},
            "num_warps": launch.num_warps, "num_stages": launch.num_stages}


# -- design measurement: a second epilogue output (ResNet v2 pre-activation) ------------------
def second_output_bytes(program, dtype: str) -> dict:
    """Byte-model comparison for each pointwise `e = act(x*s + t)` (no residual) whose input x
    is produced by a fused conv / GEMM kernel, in `program` as it stands after pass 4b
    (`pointwise`): the cost of what passes 5 and 7 do (consumer prologues when pass 5 applies
    them; the mean-GEMM's per-pixel prologue when e only feeds a global mean; else e's own
    kernel) against a second output of x's producer (e written by the producer's epilogue
    too; consumers read e). Costs count only what differs: e's kernel, the extra
    write, the consumers' reads of x or e and of the vectors. Returns per-node rows and totals."""
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
