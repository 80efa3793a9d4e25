"""slimtriton report NET|GRAPH: the fusion report of a net, without weights and without running.

Prints, per kernel: the slimtriton kernel, the Triton jit function with its tile, the
output shape, FLOPs, modeled DRAM bytes read and written, the layer and the kinds of the
ops it fuses; then kernel counts, bytes and ratios of the three plans (`unfused`,
`extern_conv_plus_pointwise`, `slimtriton`) and the peak activation memory.

`--output predictions` (default) plans the net's predictions end point (its softmax is a
kernel of its own); `--output logits` plans the logits, as bench/fusion.py and the README's
table do: one kernel fewer (ResNet-50: 56 vs 55). Nets without a softmax (VGG, AlexNet)
output their logits either way.

NET is built at --batch (default 1). GRAPH is `FILE.py:FUNCTION` (as `slimtriton export`), a
function taking no arguments that records a graph and returns `(graph, outputs)`; a graph
recorded with an unknown batch (`st.placeholder([None, ...])`) is planned at --batch (default
1), a static one at its own batch. `--max-batch N` plans the dynamic-batch model `slimtriton
compile --max-batch N` builds (NET recorded with a None batch; a GRAPH must have one): one
plan per batch bucket, a table of every bucket, and the full report of the bucket that runs
--batch (default: the largest bucket); --json PATH then also holds `bucket` and
`batch_buckets` (per bucket: kernels, FLOPs, modeled DRAM bytes, arena bytes).

`--why` adds the fusion decisions (slimtriton.fusion.log): per pass, what fused per rule and each
declined match with its reason (Inductor's WhyNoFuse).

`--json PATH` writes the summary ({"kernels": {plan: n}, "bytes": {plan: n}, "flops": n,
"peak_activation_bytes": n, "outputs": [...], "steps": [...]}); `--json -` writes it to
stdout instead of the text report. `--dump DIR` writes one runnable reproducer per kernel
launch (slimtriton.reproducer: the Triton source with its jit helpers, the recorded grid,
constexprs, warps and stages, random inputs of the recorded shapes): `python DIR/FILE.py`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import slimtriton as st

from ..executor import needed_nodes
from ._netbuild import check_at_least
from .errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser("report", help="fusion report of a net (no weights, nothing runs)",
                                   description=__doc__.split("\n\n", 1)[1],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("net", metavar="NET|GRAPH", help="a name from `slimtriton nets`, or FILE.py:FUNCTION")
    parser.add_argument("--image-size", type=int, default=None, help="input height/width (default: the net's)")
    parser.add_argument("--batch", type=int, default=None,
                        help="the batch to plan (default 1; with --max-batch: which bucket to report)")
    parser.add_argument("--max-batch", type=int, default=None, metavar="N",
                        help="plan the dynamic-batch model for any batch up to N (one plan per bucket)")
    parser.add_argument("--num-classes", type=int, default=None)
    parser.add_argument("--dtype", default="float16", choices=("float32", "float16", "bfloat16"))
    parser.add_argument("--output", default="predictions", choices=("predictions", "logits"),
                        help="which output to plan (default predictions: the softmax is one more kernel)")
    parser.add_argument("--json", metavar="PATH", default=None, help="write the summary as JSON ('-': stdout)")
    parser.add_argument("--why", action="store_true",
                        help="also print the fusion decisions: per pass what fused (per rule) and every "
                             "declined match with its reason")
    parser.add_argument("--dump", metavar="DIR", default=None,
                        help="write a runnable reproducer of each kernel launch to DIR")
    parser.set_defaults(func=main)


def build_source(source: str, image_size, num_classes, output_choice: str, batch):
    """(graph, outputs, a description of what is planned) of NET (built at `batch`; None: an
    unknown batch) or GRAPH (FILE.py:FUNCTION, as recorded). UsageError for an unknown NET and
    for NET-only flags given with a GRAPH."""
    from slimtriton.nets import nets_factory  # lazy: when the command runs
    from ..nets.build import build_net, main_output  # lazy: when the command runs
    if source in nets_factory.networks_map:
        g, images, logits, end_points = build_net(source, image_size, batch, num_classes)
        output = main_output(logits, end_points) if output_choice == "predictions" else logits
        what = "logits" if output is logits else "predictions (softmax)"
        note = (" (the net has no softmax end point)" if output_choice == "predictions" and output is logits else
                "; --output logits plans one kernel fewer (as the README's table)" if output is not logits else "")
        return g, output, f"planned output: {what}{note}"
    if ":" not in source or not source.rpartition(":")[0].endswith(".py"):
        raise UsageError(f"unknown network {source!r} (known: {', '.join(sorted(nets_factory.networks_map))}"
                         f"; see `slimtriton nets`), and not FILE.py:FUNCTION")
    given = [flag for flag, value in (("--image-size", image_size), ("--num-classes", num_classes)) if value is not None]
    if given:
        raise UsageError(f"{', '.join(given)}: only for a NET; GRAPH {source} is planned as its function records it")
    from .export import load_graph_function  # lazy: when the command runs
    g, outputs = load_graph_function(source)
    return g, outputs, f"planned outputs of {source}"


def dynamic_placeholders(g, outputs) -> list[str]:
    """The placeholders with an unknown batch that `outputs` need."""
    from slimtriton.compiler import flatten_outputs  # lazy: when the command runs
    from slimtriton.ir.ops import Op  # lazy: when the command runs
    nodes, _ = flatten_outputs(outputs, g)
    needed = needed_nodes(nodes)
    return [n.name for n in g.nodes if id(n) in needed and n.op is Op.PLACEHOLDER and n.dynamic_batch]


def compile_for_analysis(args):
    """(analysis-only model, a description of what it plans) of NET|GRAPH for --batch and
    --max-batch (see the module docstring); UsageError for a flag the source cannot take."""
    from slimtriton.nets import nets_factory  # lazy: when the command runs
    is_net = args.net in nets_factory.networks_map
    batch = None if (args.max_batch is not None or not is_net) else (args.batch or 1)
    g, outputs, what = build_source(args.net, args.image_size, args.num_classes, args.output, batch)
    dynamic = dynamic_placeholders(g, outputs)
    if not dynamic:  # a static GRAPH (a NET is static here only without --max-batch)
        if args.max_batch is not None:
            raise UsageError(f"--max-batch {args.max_batch}: {args.net} is recorded with a static batch; "
                             f"--max-batch applies to a graph recorded with st.placeholder([None, ...])")
        model = st.compile(g, outputs, None, dtype=args.dtype)
        recorded = sorted({int(n.shape[0]) for n in model.plan.inputs if n.shape})
        if args.batch is not None and recorded != [args.batch]:
            raise UsageError(f"--batch {args.batch}: {args.net} is recorded with the static batch "
                             f"{recorded[0] if len(recorded) == 1 else recorded}")
        return model, what
    if args.max_batch is not None:
        if args.batch is not None and args.batch > args.max_batch:
            raise UsageError(f"--batch {args.batch}: the dynamic-batch model takes batches 1..{args.max_batch}")
        return st.compile(g, outputs, None, dtype=args.dtype, max_batch=args.max_batch), what
    return st.compile(g, outputs, None, dtype=args.dtype, batch_sizes=[args.batch or 1]), what


def main(args) -> int:
    from slimtriton.report import bucket_summary, fusion_report  # lazy: when the command runs

    check_at_least(args, 1, "--image-size", "--batch", "--num-classes", "--max-batch")
    if args.dump and os.path.exists(args.dump) and not os.path.isdir(args.dump):
        raise UsageError(f"--dump {args.dump} exists and is not a directory")
    model, what = compile_for_analysis(args)
    plan, launches, buckets, rows = model.plan, None, "", None
    if args.max_batch is not None:  # the bucket that runs --batch, then every bucket
        from slimtriton.runtime.buckets import bucket_for  # lazy: when the command runs
        bucket = bucket_for(args.batch or model.max_batch, model.batch_sizes)
        plan = model.plans[bucket]
        table, rows = bucket_summary(model.plans)
        buckets = (f"dynamic batch: one plan per batch bucket {model.batch_sizes} (this report: bucket {bucket}; "
                   f"--batch B reports the bucket that runs B)\n{table}")
    if plan is model.plan:
        launches = model.launches()
    else:
        from slimtriton.runtime.launches import record_plan_launches  # lazy: when the command runs
        launches = record_plan_launches(plan, model.precision)
    to_stdout = args.json == "-"
    log = sys.stderr if to_stdout else sys.stdout  # stdout carries only the JSON then
    shapes = ", ".join(f"{n.name} {list(n.shape)}" for n in plan.inputs)
    print(f"{args.net}: batch {plan.inputs[0].shape[0] if plan.inputs and plan.inputs[0].shape else '-'}, "
          f"input {shapes}, {args.dtype}; {what}", file=log)
    text = fusion_report(plan, json_path=args.json, launches=launches)
    if not to_stdout:
        print(text)
    if buckets:
        print("\n" + buckets, file=log)
    if args.why:
        from slimtriton.fusion.log import format_fusion_log  # lazy: when the command runs
        print("\nfusion decisions (pass: what fused; each declined match and why):", file=log)
        print(format_fusion_log(plan.fusion_log), file=log)
    if args.dump:
        count = dump_reproducers(plan, launches, args.dump)
        print(f"wrote {count} kernel reproducers to {args.dump} (run one: python {args.dump}/FILE.py)", file=log)
    if args.json and not to_stdout:
        if rows is not None:  # the dynamic-batch model: which bucket the steps are, and every bucket
            with open(args.json) as f:
                document = json.load(f)
            document.update(bucket=bucket, batch_buckets=rows)
            with open(args.json, "w") as f:
                json.dump(document, f, indent=1)
        print(f"wrote {args.json}")
    return 0


def dump_reproducers(plan, launches, directory: str) -> int:
    """One runnable file per kernel launch of `plan` (`launches`: per step); returns how many
    were written."""
    from slimtriton.report import scope_prefix, step_layer_and_ops  # lazy: when the command runs
    from slimtriton.reproducer import reproducer_source  # lazy: when the command runs
    os.makedirs(directory, exist_ok=True)
    program = plan.baseline if plan.baseline is not None else plan.program
    prefix = scope_prefix(plan)
    count = 0
    for k, step in enumerate(plan.kernels):
        layer, kinds = step_layer_and_ops(program, step, prefix)
        layer = f"{prefix}/{layer}" if prefix else layer
        step_launches = launches[step.index]
        for j, launch in enumerate(step_launches):
            header = [f"kernel {k} of the plan ({plan.dtype}): {step.kernel} of layer {layer or '-'}",
                      f"fused ops: {kinds}",
                      f"output shape {list(step.output_shape)}; launch {j + 1} of {len(step_launches)}"]
            safe = step.node.name.replace("/", "__")
            suffix = f"_{j}" if len(step_launches) > 1 else ""
            path = os.path.join(directory, f"{k:03d}_{step.kernel}_{safe}{suffix}.py")
            with open(path, "w") as f:
                f.write(reproducer_source(launch, header))
            count += 1
    return count
