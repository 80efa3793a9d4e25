"""`slimtriton audit NET | --shapes SPEC...`: static register / spill / shared-memory /
tensor-core audit of the conv kernels for an sm_80 or sm_90 GPU, without a GPU.

Each distinct kernel specialization is compiled ahead of time for the chosen arch and its
cubin inspected (`cuobjdump --dump-resource-usage`, `nvdisasm`). Exits 1 when a conv/GEMM
kernel spills registers or, in float16/bfloat16, has no tensor-core instruction
(HMMA on sm_80; HGMMA or HMMA on sm_90). NET: resnet_v1_50 (its distinct conv shapes);
--shapes N,H,W,Cin,Cout,KH,KW,stride[,dilation] gives conv shapes directly (SAME padding).
"""
from __future__ import annotations

import json
import sys

NETS = ("resnet_v1_50",)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "audit", help="static sm_80/sm_90 audit of the conv kernels (registers, spills, tensor cores)",
        description=__doc__.split("\n\n", 1)[1])
    parser.add_argument("net", metavar="NET", nargs="?", help=f"one of {', '.join(NETS)}")
    parser.add_argument("--image-size", type=int, default=224, help="input height and width (default 224)")
    parser.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"],
                        help="activation/weight dtype (default float16)")
    parser.add_argument("--arch", type=int, default=90, help="CUDA compute capability, e.g. 80 or 90 (default 90)")
    parser.add_argument("--shapes", nargs="+", metavar="SPEC", default=[],
                        help="conv shapes N,H,W,Cin,Cout,KH,KW,stride[,dilation] (instead of / besides NET)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON to FILE")
    parser.set_defaults(func=run)


def run(args) -> int:
    from slimtriton.kernels import audit as A

    if args.net is None and not args.shapes:
        print("slimtriton audit: give a NET or --shapes", file=sys.stderr)
        return 2
    if args.net is not None and args.net not in NETS:
        print(f"slimtriton audit: unknown NET {args.net!r}; known: {', '.join(NETS)} (or use --shapes)",
              file=sys.stderr)
        return 2
    if args.image_size < 1 or args.batch < 1:
        print("slimtriton audit: --image-size and --batch must be >= 1", file=sys.stderr)
        return 2
    try:
        shapes = [A.parse_shape_spec(s) for s in args.shapes]
    except ValueError as exc:
        print(f"slimtriton audit: {exc}", file=sys.stderr)
        return 2
    if args.net == "resnet_v1_50":
        shapes = A.resnet_v1_50_conv_shapes(args.image_size, args.batch) + shapes
    launches = A.conv_launches(shapes, args.dtype)
    print(f"auditing {len(shapes)} conv layers ({args.dtype}, sm_{args.arch}); compiling each distinct "
          f"specialization ahead of time...", flush=True)
    rows = A.audit_launches(launches, args.arch, args.dtype)
    ok = A.print_audit_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(A.rows_as_json(rows), f, indent=1)
    return 0 if ok else 1
