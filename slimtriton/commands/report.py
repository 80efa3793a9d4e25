"""slimtriton report NET: the fusion report of a net, without weights and without running.

Prints, per kernel, the fused ops (scope names), output shape, FLOPs and modeled DRAM
bytes read and written; then kernel counts, bytes and ratios of the three plans
(`unfused`, `extern_conv_plus_pointwise`, `slimtriton`) and the peak activation memory.
`--json PATH` writes the summary ({"kernels": {plan: n}, "bytes": {plan: n}, "flops": n,
"peak_activation_bytes": n, "steps": [...]}); `--dump DIR` writes each kernel's Triton
source and launch parameters.
"""
from __future__ import annotations

import os


def register(subparsers) -> None:
    parser = subparsers.add_parser("report", help="fusion report of a net (no weights, nothing runs)",
                                   description=__doc__.split("\n\n", 1)[1])
    parser.add_argument("net", metavar="NET", help="a name from `slimtriton nets`")
    parser.add_argument("--image-size", type=int, default=None, help="input height/width (default: the net's)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--num-classes", type=int, default=None)
    parser.add_argument("--dtype", default="float16", choices=("float32", "float16", "bfloat16"))
    parser.add_argument("--json", metavar="PATH", default=None, help="write the summary as JSON")
    parser.add_argument("--dump", metavar="DIR", default=None, help="write each kernel's source to DIR")
    parser.set_defaults(func=main)


def main(args) -> int:
    import slimtriton as st
    from ._netbuild import build_net, main_output
    g, images, logits, end_points = build_net(args.net, args.image_size, args.batch, args.num_classes)
    model = st.compile(g, main_output(logits, end_points), None, dtype=args.dtype)
    print(f"{args.net}: batch {args.batch}, input {list(images.shape)}, {args.dtype}")
    print(model.report(json_path=args.json))
    if args.dump:
        os.makedirs(args.dump, exist_ok=True)
        for i, k in enumerate(model.kernels):
            safe = k.name.replace("/", "__")
            with open(os.path.join(args.dump, f"{i:03d}_{k.kernel}_{safe}.py"), "w") as f:
                f.write(f"# fused ops: {', '.join(k.fused_ops)}\n# output {list(k.output_shape)}\n")
                f.write(k.source + "\n")
        print(f"wrote {len(model.kernels)} kernel sources to {args.dump}")
    if args.json:
        print(f"wrote {args.json}")
    return 0
