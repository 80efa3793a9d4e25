"""slimtriton compile NET -o DIR: compile a net and save it as an engine (slimtriton.engine).

The engine holds the fused plan, the prepared (folded, packed) parameters, the tile winners
and a manifest (versions, dtype, batch, hashes); `--arch 90` (repeatable) also compiles every
kernel specialization ahead of time for that GPU, here, without a GPU. Run it with
`slimtriton run --engine DIR` or `st.load_compiled(DIR)`: no fusion pass runs then.

Without --weights the weights are random (init_weights(--seed)), as in `slimtriton run`.
The batch is static (the engine takes inputs of exactly [--batch, size, size, 3]) unless
--max-batch N (or --batch-sizes 1,8,32): the net is then recorded with an unknown batch
([None, size, size, 3]) and compiled into one engine for any batch up to N, with one plan per
batch bucket (powers of two and N) over one copy of the parameters; `slimtriton run --engine
DIR --batch B` runs it at any B <= N.
"""
from __future__ import annotations

import argparse
import time

import slimtriton as st

from ._netbuild import check_at_least
from .errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser("compile", help="compile a net and save it as an engine directory",
                                   description=__doc__.split("\n\n", 1)[1],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("net", metavar="NET", help="a name from `slimtriton nets`")
    parser.add_argument("-o", "--out", metavar="DIR", required=True, help="the engine directory to write")
    parser.add_argument("--weights", default=None, help=".npz, .safetensors or TF checkpoint (default: random)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    parser.add_argument("--image-size", type=int, default=None, help="input height/width (default: the net's)")
    parser.add_argument("--batch", type=int, default=None, help="the engine's static batch (default 1)")
    parser.add_argument("--max-batch", type=int, default=None, metavar="N",
                        help="a dynamic-batch engine: any batch up to N (buckets: powers of two and N)")
    parser.add_argument("--batch-sizes", default=None, metavar="B[,B...]",
                        help="a dynamic-batch engine with these batch buckets (up to the largest)")
    parser.add_argument("--num-classes", type=int, default=None)
    parser.add_argument("--dtype", default="float16", choices=("float32", "float16", "bfloat16"))
    parser.add_argument("--precision", default="ieee", choices=("ieee", "tf32"))
    parser.add_argument("--output", default="predictions", choices=("predictions", "logits"))
    parser.add_argument("--arch", type=int, action="append", default=[], metavar="CC",
                        help="compile the kernels ahead of time for this compute capability (80, 86, 89, 90); "
                             "repeatable")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing engine directory")
    parser.set_defaults(func=main)


def main(args) -> int:
    from slimtriton.engine import SUPPORTED_AOT_ARCHS  # lazy: when the command runs
    from ..nets.build import build_net, main_output  # lazy: when the command runs

    check_at_least(args, 1, "--image-size", "--batch", "--num-classes", "--max-batch")
    check_at_least(args, 0, "--seed")
    dynamic = dynamic_batch_options(args)
    bad = [a for a in args.arch if a not in SUPPORTED_AOT_ARCHS]
    if bad:
        raise UsageError(f"--arch {bad[0]}: ahead-of-time kernels are built for {list(SUPPORTED_AOT_ARCHS)}")
    if args.precision == "tf32" and args.dtype != "float32":
        raise UsageError(f"--precision tf32 applies to --dtype float32 only, got {args.dtype}")
    batch = None if dynamic else (args.batch or 1)  # None: recorded with an unknown batch
    g, images, logits, end_points = build_net(args.net, args.image_size, batch, args.num_classes)
    output = main_output(logits, end_points) if args.output == "predictions" else logits
    if args.weights:
        weights = st.load_weights(args.weights)
    else:
        weights = st.init_weights(g, seed=args.seed)
        print(f"weights: RANDOM (init_weights seed {args.seed}; no --weights given)")
    start = time.perf_counter()
    model = st.compile(g, output, weights, dtype=args.dtype, precision=args.precision, **dynamic)
    compiled = time.perf_counter() - start
    kind = "logits" if output is logits else "predictions"
    path = model.save(args.out, archs=tuple(args.arch), overwrite=args.overwrite,
                      meta={"net": args.net, "output": kind, "image_size": int(images.shape[1])})
    saved = time.perf_counter() - start - compiled
    buckets = f", batch buckets {model.batch_sizes}" if model.plans else ""
    print(f"compiled {args.net} (input {list(images.shape)}{buckets}, {args.dtype}) into {len(model.kernels)} "
          f"kernels in "
          f"{compiled:.1f} s; wrote engine {path} in {saved:.1f} s"
          + (f" (ahead-of-time kernels for sm_{', sm_'.join(map(str, args.arch))})" if args.arch else ""))
    return 0


def dynamic_batch_options(args) -> dict:
    """{max_batch: N} or {batch_sizes: [...]} for `st.compile` from --max-batch / --batch-sizes
    ({} for a static engine); UsageError for a mix with --batch or a bad list."""
    given = [flag for flag, value in (("--batch", args.batch), ("--max-batch", args.max_batch),
                                      ("--batch-sizes", args.batch_sizes)) if value is not None]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)}: give one (--batch N: a static engine; --max-batch N or "
                         f"--batch-sizes B,B,...: a dynamic-batch engine)")
    if args.max_batch is not None:
        return {"max_batch": args.max_batch}
    if args.batch_sizes is not None:
        try:
            sizes = [int(p) for p in args.batch_sizes.split(",") if p.strip()]
        except ValueError:
            sizes = []
        if not sizes or min(sizes) < 1:
            raise UsageError(f"--batch-sizes {args.batch_sizes!r}: expected positive integers, e.g. 1,8,32")
        return {"batch_sizes": sizes}
    return {}
