"""`slimtriton audit NET | --shapes SPEC...`: static register / spill / shared-memory /
tensor-core audit of the kernels a compiled net launches, for an sm_80 or sm_90 GPU, without a GPU.

NET (any name from `slimtriton nets`) is built at --image-size / --batch and planned by the
compiler at --dtype without weights; every step's kernel launches are recorded on meta
tensors (nothing runs), the distinct specializations (same jit function, signature,
constexprs, divisibility, warps, stages) are compiled ahead of time for the chosen arch and
their cubins inspected (`cuobjdump --dump-resource-usage`, `nvdisasm`). Exits 1 when a
conv/GEMM kernel spills registers or, in float16/bfloat16, has no tensor-core instruction
(HMMA on sm_80; HGMMA or HMMA on sm_90); 2 on bad arguments.
--shapes N,H,W,Cin,Cout,KH,KW,stride[,dilation] adds ad-hoc conv layers (SAME padding, folded
BN + ReLU epilogue). GPU tiles are the cached autotune winners or the defaults.
"""
from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "audit", help="static sm_80/sm_90 audit of a net's kernels (registers, spills, tensor cores)",
        description=__doc__.split("\n\n", 1)[1])
    parser.add_argument("net", metavar="NET", nargs="?", help="a name from `slimtriton nets`")
    parser.add_argument("--image-size", type=int, default=None, help="input height and width (default: the net's)")
    parser.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    parser.add_argument("--num-classes", type=int, default=None, help="logits width (default: the net's checkpoint)")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"],
                        help="activation/weight dtype (default float16)")
    parser.add_argument("--precision", default="ieee", choices=["ieee", "tf32"],
                        help="float32 dot precision of the GEMM kernels (default ieee)")
    parser.add_argument("--arch", type=int, default=90, help="CUDA compute capability, e.g. 80 or 90 (default 90)")
    parser.add_argument("--shapes", nargs="+", metavar="SPEC", default=[],
                        help="conv shapes N,H,W,Cin,Cout,KH,KW,stride[,dilation] (instead of / besides NET)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON to FILE")
    parser.set_defaults(func=run)


def plan_launches(graph, outputs, dtype: str = "float16", precision: str = "ieee") -> tuple[list, int]:
    """(every `KernelLaunch` of the compiled plan of `outputs`, in step order; number of kernel
    steps). Plans without weights and records the launches on meta tensors: nothing runs."""
    import slimtriton as st
    model = st.compile(graph, outputs, None, dtype=dtype, precision=precision)
    per_step = model.launches()
    return [launch for step in per_step for launch in step], len(model.kernels)


def net_launches(name: str, image_size: int | None = None, batch: int = 1, dtype: str = "float16",
                 num_classes: int | None = None, precision: str = "ieee") -> tuple[list, int, list]:
    """`plan_launches` of factory net `name` (inference, its predictions end point when it has one);
    also returns the input shape."""
    from ._netbuild import build_net, main_output
    g, images, logits, end_points = build_net(name, image_size, batch, num_classes)
    launches, steps = plan_launches(g, main_output(logits, end_points), dtype, precision)
    return launches, steps, list(images.shape)


def _fail(message: str) -> int:
    print(f"slimtriton audit: {message}", file=sys.stderr)
    return 2


def run(args) -> int:
    from slimtriton.kernels import audit as A
    from slimtriton.nets import nets_factory

    if args.net is None and not args.shapes:
        return _fail("give a NET or --shapes")
    if args.net is not None and args.net not in nets_factory.networks_map:
        return _fail(f"unknown NET {args.net!r}; known: {', '.join(sorted(nets_factory.networks_map))} "
                     f"(or use --shapes)")
    if (args.image_size is not None and args.image_size < 1) or args.batch < 1:
        return _fail("--image-size and --batch must be >= 1")
    if args.precision == "tf32" and args.dtype != "float32":
        return _fail(f"--precision tf32 applies to --dtype float32 only, got {args.dtype}")
    try:
        shapes = [A.parse_shape_spec(s) for s in args.shapes]
    except ValueError as exc:
        return _fail(str(exc))
    launches, what = [], []
    if args.net is not None:
        try:
            net, steps, input_shape = net_launches(args.net, args.image_size, args.batch, args.dtype,
                                                   args.num_classes, args.precision)
        except (ValueError, TypeError) as exc:  # e.g. an image size the net cannot take
            return _fail(f"{args.net}: {exc}")
        launches += net
        what.append(f"{args.net} (input {input_shape}: {steps} kernel steps, {len(net)} launches)")
    if shapes:
        launches += A.conv_launches(shapes, args.dtype)
        what.append(f"{len(shapes)} --shapes conv layers")
    distinct = len({launch.key() for launch in launches})
    print(f"auditing {' + '.join(what)} in {args.dtype} for sm_{args.arch}; compiling {distinct} distinct "
          f"specializations ahead of time...", flush=True)
    rows = A.audit_launches(launches, args.arch, args.dtype)
    ok = A.print_audit_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(A.rows_as_json(rows), f, indent=1)
    return 0 if ok else 1
