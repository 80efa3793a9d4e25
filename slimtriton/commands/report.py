"""slimtriton report NET: the fusion report of a net, without weights and without running.

Prints, per kernel: the slimtriton kernel, the Triton jit function with its tile, the
output shape, FLOPs, modeled DRAM bytes read and written, the layer and the kinds of the
ops it fuses; then kernel counts, bytes and ratios of the three plans (`unfused`,
`extern_conv_plus_pointwise`, `slimtriton`) and the peak activation memory.

`--output predictions` (default) plans the net's predictions end point (its softmax is a
kernel of its own); `--output logits` plans the logits, as bench/fusion.py and the README's
table do: one kernel fewer (ResNet-50: 56 vs 55). Nets without a softmax (VGG, AlexNet)
output their logits either way.

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
import os
import sys

import slimtriton as st

from ._netbuild import check_at_least
from .errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser("report", help="fusion report of a net (no weights, nothing runs)",
                                   description=__doc__.split("\n\n", 1)[1],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("net", metavar="NET", help="a name from `slimtriton nets`")
    parser.add_argument("--image-size", type=int, default=None, help="input height/width (default: the net's)")
    parser.add_argument("--batch", type=int, default=1)
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


def main(args) -> int:
    from slimtriton.report import fusion_report  # lazy: when the command runs
    from ..nets.build import build_net, main_output  # lazy: when the command runs

    check_at_least(args, 1, "--image-size", "--batch", "--num-classes")
    if args.dump and os.path.exists(args.dump) and not os.path.isdir(args.dump):
        raise UsageError(f"--dump {args.dump} exists and is not a directory")
    g, images, logits, end_points = build_net(args.net, args.image_size, args.batch, args.num_classes)
    output = main_output(logits, end_points) if args.output == "predictions" else logits
    what = "logits" if output is logits else "predictions (softmax)"
    note = (" (the net has no softmax end point)" if args.output == "predictions" and output is logits else
            "; --output logits plans one kernel fewer (as the README's table)" if output is not logits else "")
    model = st.compile(g, output, None, dtype=args.dtype)
    launches = model.launches()
    to_stdout = args.json == "-"
    log = sys.stderr if to_stdout else sys.stdout  # stdout carries only the JSON then
    print(f"{args.net}: batch {args.batch}, input {list(images.shape)}, {args.dtype}; planned output: "
          f"{what}{note}", file=log)
    text = fusion_report(model.plan, json_path=args.json, launches=launches)
    if not to_stdout:
        print(text)
    if args.why:
        from slimtriton.fusion.log import format_fusion_log  # lazy: when the command runs
        print("\nfusion decisions (pass: what fused; each declined match and why):", file=log)
        print(format_fusion_log(model.plan.fusion_log), file=log)
    if args.dump:
        count = dump_reproducers(model, launches, args.dump)
        print(f"wrote {count} kernel reproducers to {args.dump} (run one: python {args.dump}/FILE.py)", file=log)
    if args.json and not to_stdout:
        print(f"wrote {args.json}")
    return 0


def dump_reproducers(model, launches, directory: str) -> int:
    """One runnable file per kernel launch of the plan; returns how many were written."""
    from slimtriton.report import scope_prefix, step_layer_and_ops  # lazy: when the command runs
    from slimtriton.reproducer import reproducer_source  # lazy: when the command runs
    os.makedirs(directory, exist_ok=True)
    program = model.plan.baseline if model.plan.baseline is not None else model.plan.program
    prefix = scope_prefix(model.plan)
    count = 0
    for k, info in enumerate(model.kernels):
        step = info.step
        layer, kinds = step_layer_and_ops(program, step, prefix)
        layer = f"{prefix}/{layer}" if prefix else layer
        step_launches = launches[step.index]
        for j, launch in enumerate(step_launches):
            header = [f"kernel {k} of the plan ({model.plan.dtype}): {info.kernel} of layer {layer or '-'}",
                      f"fused ops: {kinds}",
                      f"output shape {list(info.output_shape)}; launch {j + 1} of {len(step_launches)}"]
            safe = info.name.replace("/", "__")
            suffix = f"_{j}" if len(step_launches) > 1 else ""
            path = os.path.join(directory, f"{k:03d}_{info.kernel}_{safe}{suffix}.py")
            with open(path, "w") as f:
                f.write(reproducer_source(launch, header))
            count += 1
    return count
