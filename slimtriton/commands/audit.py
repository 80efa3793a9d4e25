"""`slimtriton audit NET|GRAPH | --shapes SPEC...`: static audit and performance model of the
kernels a compiled net launches, for an sm_80/86/89/90 GPU, without a GPU.

NET (any name from `slimtriton nets`) is built at --image-size and each --batch, and planned
by the compiler at --dtype without weights; every step's kernel launches are recorded on
meta tensors (nothing runs). The distinct specializations (same jit function, signature,
constexprs, divisibility, warps, stages) are compiled ahead of time for --arch and their
cubins inspected (`cuobjdump --dump-resource-usage`, `nvdisasm`): registers, spills, shared
memory, tensor-core instructions, and whether the main loop is pipelined (read from the
SASS). Exit 1 when a conv/GEMM kernel spills or, in float16/bfloat16, has no tensor-core
instruction or (sm_90) a main loop that is not pipelined; 2 on bad arguments.

For sm_90, each launch then goes through the static performance model
(slimtriton/kernels/perf_model.py, where every formula and constant is written down) for
--gpu h100 (datasheet ceilings) or h200 (measured ceilings): CTAs per SM, waves, wave x tile
fill, roofline and modeled time, and per batch the modeled and roofline images/s. It is a
model, not a measurement. --batch 1,32,256 prints the totals at each batch; with one batch
the per-launch table is printed too. --json FILE writes everything; --sass DIR writes each
specialization's disassembly.

GRAPH is `FILE.py:FUNCTION` (as `slimtriton export`), a function that records a graph and
returns `(graph, outputs)`: recorded with an unknown batch (`st.placeholder([None, ...])`), it
is planned at each --batch; recorded with a static batch, at that batch only. `--max-batch N`
audits every batch bucket of the dynamic-batch model (powers of two and N: the kernels
`slimtriton compile --max-batch N --arch CC` builds ahead of time: a NET's plan at each bucket
is the plan of its None-batch graph specialized to it); it replaces --batch.

--shapes N,H,W,Cin,Cout,KH,KW,stride[,dilation] adds ad-hoc conv layers (SAME padding, folded
BN + ReLU epilogue). GPU tiles are the cached autotune winners or the defaults (an empty
SLIMTRITON_CACHE_DIR gives the defaults). SLIMTRITON_AUDIT_JOBS sets how many compiler
processes run at once (default: the CPU count, at most 8, at least 4 specializations each).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import slimtriton as st


# What --arch and --gpu take, as the help says it. register runs at every CLI start, and the
# tables they come from (kernels.audit.SUPPORTED_ARCHS, kernels.perf_model.GPUS) import torch and
# triton (~4 s); run checks the values against those tables, and tests/test_audit_net.py checks
# that these two lines name exactly what the tables hold.
ARCHS_HELP = "80, 86, 89, 90"
GPUS_HELP = ("h100", "h200")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "audit", help="static audit and performance model of a net's kernels (registers, spills, "
                      "tensor cores, pipelining, modeled images/s)",
        description=__doc__.split("\n\n", 1)[1])
    parser.add_argument("net", metavar="NET|GRAPH", nargs="?",
                        help="a name from `slimtriton nets`, or FILE.py:FUNCTION")
    parser.add_argument("--image-size", type=int, default=None, help="input height and width (default: the net's)")
    parser.add_argument("--batch", default=None, metavar="N[,N...]",
                        help="batch size(s), comma-separated, e.g. 1,32,256 (default 1)")
    parser.add_argument("--max-batch", type=int, default=None, metavar="N",
                        help="audit every batch bucket of the dynamic-batch model for batches up to N")
    parser.add_argument("--num-classes", type=int, default=None, help="logits width (default: the net's checkpoint)")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"],
                        help="activation/weight dtype (default float16)")
    parser.add_argument("--precision", default="ieee", choices=["ieee", "tf32"],
                        help="float32 dot precision of the GEMM kernels (default ieee)")
    parser.add_argument("--arch", type=int, default=90,
                        help=f"CUDA compute capability: one of {ARCHS_HELP} (default 90)")
    parser.add_argument("--gpu", default="h100", metavar="{" + ",".join(GPUS_HELP) + "}",
                        help="ceilings of the performance model (sm_90 only): h100 = datasheet, "
                             "h200 = measured (default h100)")
    parser.add_argument("--shapes", nargs="+", metavar="SPEC", default=[],
                        help="conv shapes N,H,W,Cin,Cout,KH,KW,stride[,dilation] (instead of / besides NET)")
    parser.add_argument("--json", metavar="FILE", help="also write rows, launches and totals as JSON to FILE")
    parser.add_argument("--sass", metavar="DIR", help="write each specialization's SASS (nvdisasm) into DIR")
    parser.set_defaults(func=run)


def plan_step_launches(graph, outputs, dtype: str = "float16", precision: str = "ieee",
                       batch: int | None = None) -> list[tuple]:
    """[(plan Step, [its KernelLaunch...]) for every kernel step, in step order]. Plans without
    weights and records the launches on meta tensors: nothing runs. `batch`: the batch to plan
    a graph recorded with an unknown batch at (required for one, refused for a static graph)."""
    return graph_step_launches(graph, outputs, dtype, precision, batch)[0]


def graph_step_launches(graph, outputs, dtype: str = "float16", precision: str = "ieee",
                        batch: int | None = None) -> tuple[list[tuple], list]:
    """(`plan_step_launches`, the shape of the plan's first input)."""
    sizes = {} if batch is None else {"batch_sizes": [batch]}  # one bucket: the plan at `batch`
    model = st.compile(graph, outputs, None, dtype=dtype, precision=precision, **sizes)
    per_step = model.launches()
    steps = [(step, per_step[step.index]) for step in model.plan.steps if step.launches_kernel]
    return steps, list(model.plan.inputs[0].shape) if model.plan.inputs else []


def plan_launches(graph, outputs, dtype: str = "float16", precision: str = "ieee") -> tuple[list, int]:
    """(every `KernelLaunch` of the compiled plan of `outputs`, in step order; number of kernel
    steps)."""
    steps = plan_step_launches(graph, outputs, dtype, precision)
    return [launch for _, launches in steps for launch in launches], len(steps)


def net_step_launches(name: str, image_size: int | None = None, batch: int = 1, dtype: str = "float16",
                      num_classes: int | None = None, precision: str = "ieee") -> tuple[list, list]:
    """`plan_step_launches` of factory net `name` (inference, its predictions end point when it
    has one), and the input shape."""
    from ..nets.build import build_net, main_output  # lazy: when the command runs
    g, images, logits, end_points = build_net(name, image_size, batch, num_classes)
    return plan_step_launches(g, main_output(logits, end_points), dtype, precision), list(images.shape)


def net_launches(name: str, image_size: int | None = None, batch: int = 1, dtype: str = "float16",
                 num_classes: int | None = None, precision: str = "ieee") -> tuple[list, int, list]:
    """(launches, kernel steps, input shape) of factory net `name`."""
    steps, shape = net_step_launches(name, image_size, batch, dtype, num_classes, precision)
    return [launch for _, launches in steps for launch in launches], len(steps), shape


def model_plan(step_launches, rows_by_key: dict, gpu, dtype: str, batch: int) -> tuple[list[dict], dict]:
    """(one performance-model row per launch, totals) for [(step or None, launches)]; a None
    step (ad-hoc --shapes) charges 2*M*N*K FLOPs and the bytes of the tensor arguments."""
    from slimtriton.kernels import perf_model as P  # lazy: when the command runs
    from slimtriton.kernels.audit import config_label, layer_label  # lazy: when the command runs
    out = []
    for step, launches in step_launches:
        if step is None:
            costs = [(P.gemm_flops(x), P.tensor_arg_bytes(x), P.tensor_arg_bytes(x)) for x in launches]
        else:
            costs = P.attribute_step_costs(launches, step.flops, step.bytes)
        for launch, (flops, nbytes, roofline_bytes) in zip(launches, costs):
            row = rows_by_key[launch.key()]
            res = {"registers": row.registers, "shared_bytes": row.shared_bytes, "hmma": row.hmma,
                   "hgmma": row.hgmma, "pipelined": row.pipelined}
            fn = getattr(launch.fn, "fn", launch.fn)
            c = launch.constexprs
            entry = {
                "layer": layer_label(launch.name), "name": launch.name, "kernel": fn.__name__,
                "kind": launch.kind, "grid": [int(g) for g in launch.grid],
                "tile": {k: c[k] for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K") if k in c}
                or {k: v for k, v in c.items() if k.startswith("BLOCK")},
                "config": config_label(launch), "num_warps": launch.num_warps,
                "num_stages": launch.num_stages,
                **{k: int(launch.meta[k]) for k in ("M", "N", "K") if k in launch.meta},
                "elements": P.largest_tensor_elements(launch), "flops": flops, "bytes": nbytes,
                "roofline_bytes": roofline_bytes,
                "registers": row.registers, "spill_bytes": max(row.stack_bytes, 0) + max(row.local_bytes, 0),
                "shared_bytes": row.shared_bytes, "hgmma": row.hgmma, "hmma": row.hmma,
                "pipelined": row.pipelined,
                **P.model_launch(launch, flops, nbytes, res, gpu, dtype, roofline_bytes),
            }
            out.append(entry)
    return out, P.totals(out, batch)


def _fail(message: str) -> int:
    print(f"slimtriton audit: {message}", file=sys.stderr)
    return 2


def _check_outputs(json_path, sass_dir) -> str | None:
    """A one-line reason when --json FILE or --sass DIR cannot be written, else None."""
    if json_path:
        parent = Path(json_path).resolve().parent
        if Path(json_path).is_dir() or not parent.is_dir() or not os.access(parent, os.W_OK):
            return f"--json {json_path}: cannot write this file (is its folder there and writable?)"
    if sass_dir:
        try:
            Path(sass_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"--sass {sass_dir}: cannot create the folder ({exc.strerror or exc})"
        if not os.access(sass_dir, os.W_OK):
            return f"--sass {sass_dir}: the folder is not writable"
    return None


def parse_batches(text: str) -> list[int]:
    try:
        batches = [int(p) for p in str(text).split(",") if p.strip()]
    except ValueError:
        batches = []
    if not batches or min(batches) < 1:
        raise ValueError(f"--batch {text!r}: expected positive integers, e.g. 1 or 1,32,256")
    return list(dict.fromkeys(batches))


def audit_batches(args, graph) -> list[int]:
    """The batches to plan: --batch (default 1), or every bucket of --max-batch; a GRAPH recorded
    with a static batch takes only its own. ValueError (one line) otherwise."""
    if args.max_batch is not None:
        from slimtriton.compiler import bucket_sizes  # lazy: when the command runs
        if args.batch is not None:
            raise ValueError(f"--batch {args.batch} and --max-batch {args.max_batch}: give one (--max-batch audits "
                             f"every batch bucket up to N)")
        if graph is not None and not graph[2]:
            raise ValueError(f"--max-batch {args.max_batch}: {args.net} is recorded with a static batch")
        if args.max_batch < 1:
            raise ValueError(f"--max-batch must be >= 1, got {args.max_batch}")
        return bucket_sizes(max_batch=args.max_batch)
    batches = parse_batches("1" if args.batch is None else args.batch)
    if graph is not None and not graph[2]:
        recorded = sorted({int(n.shape[0]) for n in st.compile(graph[0], graph[1], None).plan.inputs if n.shape})
        if args.batch is not None and [b for b in batches] != recorded:
            raise ValueError(f"--batch {args.batch}: {args.net} is recorded with the static batch "
                             f"{recorded[0] if len(recorded) == 1 else recorded}")
        return recorded[:1] or [1]
    return batches


def print_launch_table(entries: list[dict], file=None) -> None:
    file = file or sys.stdout
    width = max([len("layer")] + [len(e["layer"]) for e in entries])
    header = (f"{'layer':{width}}  {'kernel':18} {'grid':>11} {'M':>7} {'N':>5} {'K':>5} {'GFLOP':>7} "
              f"{'MB':>7} {'CTA/SM':>6} {'waves':>5} {'fill':>5} {'pipe':>4} {'roof us':>8} {'model us':>8}  bound")
    print(header, file=file)
    print("-" * len(header), file=file)
    for e in entries:
        grid = "x".join(str(g) for g in e["grid"])
        pipe = {True: "yes", False: "NO", None: "-"}[e["pipelined"]]
        print(f"{e['layer']:{width}}  {e['kernel'][:18]:18} {grid:>11} {e.get('M', ''):>7} {e.get('N', ''):>5} "
              f"{e.get('K', ''):>5} {e['flops'] / 1e9:>7.3f} {e['bytes'] / 1e6:>7.2f} {e['ctas_per_sm']:>6} "
              f"{e['waves']:>5} {e['fill']:>5.2f} {pipe:>4} {e['roofline_us']:>8.2f} {e['modeled_us']:>8.2f}  "
              f"{e['bound']}", file=file)


def print_totals(totals: list[dict], gpu, file=None) -> None:
    file = file or sys.stdout
    print(f"performance model, {gpu.name} ({gpu.source}); a MODEL, not a measurement "
          f"(formulas and constants: slimtriton/kernels/perf_model.py)", file=file)
    header = (f"{'batch':>5} {'launches':>8} {'GFLOP':>8} {'MB':>9} {'fill':>5} {'pipelined':>9} "
              f"{'roofline us':>11} {'modeled us':>10} {'roofline img/s':>14} {'modeled img/s':>13} {'model TFLOP/s':>13}")
    print(header, file=file)
    print("-" * len(header), file=file)
    for t in totals:
        fill = "-" if t["fill_flop_weighted"] is None else f"{t['fill_flop_weighted']:.2f}"
        pipe = "-" if t["gemm_flops_pipelined"] is None else f"{t['gemm_flops_pipelined']:.0%}"
        def num(key, width, digits):  # None: a time that rounds to 0 (a tiny graph) has no rate
            return f"{'-':>{width}}" if t[key] is None else f"{t[key]:>{width}.{digits}f}"
        print(f"{t['batch']:>5} {t['launches']:>8} {t['gflops']:>8.2f} {t['mbytes']:>9.1f} {fill:>5} {pipe:>9} "
              f"{t['roofline_us']:>11.1f} {t['modeled_us']:>10.1f} {num('roofline_images_per_s', 14, 0)} "
              f"{num('modeled_images_per_s', 13, 0)} {num('modeled_tflops', 13, 1)}", file=file)
    print("fill: FLOP-weighted wave x tile fill of the GEMM launches; pipelined: share of GEMM FLOPs "
          "whose main loop is pipelined; MB = 10^6 bytes", file=file)


def run(args) -> int:
    from slimtriton.kernels import audit as A  # lazy: when the command runs
    from slimtriton.kernels import perf_model as P  # lazy: when the command runs
    from slimtriton.nets import nets_factory  # lazy: when the command runs

    reason = A.check_arch(args.arch)
    if reason:
        return _fail(reason)
    if args.gpu not in P.GPUS:
        return _fail(f"--gpu {args.gpu!r}: the performance model knows {', '.join(sorted(P.GPUS))}")
    if args.net is None and not args.shapes:
        return _fail("give a NET or --shapes")
    graph = None  # GRAPH's (graph, outputs)
    if args.net is not None and args.net not in nets_factory.networks_map:
        if not args.net.rpartition(":")[0].endswith(".py"):
            return _fail(f"unknown NET {args.net!r}; known: {', '.join(sorted(nets_factory.networks_map))} "
                         f"(or FILE.py:FUNCTION, or use --shapes)")
        if args.image_size is not None or args.num_classes is not None:
            return _fail(f"--image-size and --num-classes apply to a NET; GRAPH {args.net} is planned as recorded")
        from .export import load_graph_function  # lazy: when the command runs
        from .report import dynamic_placeholders  # lazy: when the command runs
        graph = load_graph_function(args.net)
        graph = (*graph, bool(dynamic_placeholders(*graph)))
    try:
        batches = audit_batches(args, graph)
    except ValueError as exc:
        return _fail(str(exc))
    if args.image_size is not None and args.image_size < 1:
        return _fail("--image-size must be >= 1")
    if args.precision == "tf32" and args.dtype != "float32":
        return _fail(f"--precision tf32 applies to --dtype float32 only, got {args.dtype}")
    try:
        shapes = [A.parse_shape_spec(s) for s in args.shapes]
    except ValueError as exc:
        return _fail(str(exc))
    problem = _check_outputs(args.json, args.sass)   # before minutes of compiling
    if problem:
        return _fail(problem)
    plans: dict[int, list] = {}      # batch -> [(step or None, launches)]
    what = []
    for batch in batches:
        plans[batch] = []
        if graph is not None:
            g, outputs, dynamic = graph
            try:
                steps, input_shape = graph_step_launches(g, outputs, args.dtype, args.precision,
                                                         batch if dynamic else None)
            except (ValueError, TypeError, NotImplementedError) as exc:
                return _fail(f"{args.net}: {exc}")
            plans[batch] += steps
        elif args.net is not None:
            try:
                steps, input_shape = net_step_launches(args.net, args.image_size, batch, args.dtype,
                                                       args.num_classes, args.precision)
            except (ValueError, TypeError) as exc:  # e.g. an image size the net cannot take
                return _fail(f"{args.net}: {exc}")
            plans[batch] += steps
    if args.net is not None:
        first = plans[batches[0]]
        dims = ", ".join(map(str, input_shape[1:]))
        what.append(f"{args.net} (input [N, {dims}], N = {', '.join(map(str, batches))}: {len(first)} kernel "
                    f"steps, {sum(len(x) for _, x in first)} launches per plan)")
    if shapes:
        plans[batches[0]] += [(None, [launch]) for launch in A.conv_launches(shapes, args.dtype)]
        what.append(f"{len(shapes)} --shapes conv layers (batch as given in each spec)")
    launches = [x for plan in plans.values() for _, group in plan for x in group]
    distinct = len({launch.key() for launch in launches})
    print(f"auditing {' + '.join(what)} in {args.dtype} for sm_{args.arch}; compiling {distinct} distinct "
          f"specializations ahead of time...", flush=True)
    rows = A.audit_launches(launches, args.arch, args.dtype, sass_dir=args.sass)
    ok = A.print_audit_table(rows)
    if args.sass:
        print(f"wrote the SASS of {sum(bool(r.sass) for r in rows)} specializations to {args.sass}")
    report = {"net": args.net, "dtype": args.dtype, "arch": args.arch, "image_size": args.image_size,
              "specializations": A.rows_as_json(rows)}
    if args.arch == 90 and not any(r.error for r in rows):
        gpu = P.GPUS[args.gpu]
        by_key = {r.key: r for r in rows}
        results = []
        for batch, plan in plans.items():
            if not plan:      # --shapes alone: their launches are listed under the first batch
                continue
            entries, total = model_plan(plan, by_key, gpu, args.dtype, batch)
            results.append({"batch": batch, "launches": entries, "totals": total})
        if len(results) == 1:
            print()
            print_launch_table(results[0]["launches"])
        print()
        print_totals([r["totals"] for r in results], gpu)
        report.update(gpu=gpu.as_dict(), batches=results)
    elif args.arch != 90:
        print(f"(the performance model is for sm_90 GPUs (h100, h200); none for sm_{args.arch})")
    else:
        print(f"(no performance model: {sum(bool(r.error) for r in rows)} specializations failed to compile)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0 if ok else 1
