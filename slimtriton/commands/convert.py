"""`slimtriton convert CKPT OUT.safetensors|OUT.npz`: rewrite a weights file in another format.

CKPT is anything `slimtriton.weights.load_weights` reads: a TF V2 checkpoint (prefix `X.ckpt`,
`X.ckpt.index`, its directory or `checkpoint` file), a TF V1 checkpoint (the single file `X.ckpt` of
the published TF-Slim checkpoints, or its shards; partitioned variables are assembled), `.npz` or
`.safetensors`. Names are kept as
stored (TF-Slim variable names). Non-model checkpoint entries (global_step, optimizer slots, the
object graph) are left out unless `--include-non-model`; string tensors have no place in
.npz/.safetensors weights and are dropped with a note naming them.
"""
from __future__ import annotations

import numpy as np

from .errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert", help="convert a TF checkpoint (or .npz/.safetensors) to .safetensors or .npz",
        description=__doc__.split("\n\n", 1)[1])
    parser.add_argument("checkpoint", metavar="CKPT",
                        help="TF V2 checkpoint prefix, its .index, its directory; a TF V1 checkpoint file "
                             "(e.g. resnet_v1_50.ckpt); or .npz/.safetensors")
    parser.add_argument("output", metavar="OUT", nargs="?",
                        help="output file: OUT.safetensors or OUT.npz (omit with --list)")
    parser.add_argument("--list", action="store_true",
                        help="print each tensor's name, dtype and shape instead of converting")
    parser.add_argument("--include-non-model", action="store_true",
                        help="keep global_step, optimizer slots (Momentum, Adam, ...) and "
                             "ExponentialMovingAverage entries of a TF checkpoint")
    parser.set_defaults(func=run)


def run(args) -> int:
    from slimtriton.weights import load_weights, save_weights  # lazy: when the command runs
    from slimtriton.weights.tf_checkpoint import is_tf_checkpoint, read_checkpoint  # lazy: when the command runs

    if args.list:
        return _list(args)
    if args.output is None:
        raise UsageError("give an output file OUT.safetensors or OUT.npz (or --list)")
    output = str(args.output)
    if not output.lower().endswith((".safetensors", ".npz")):
        raise UsageError(f"output {output} must end in .safetensors or .npz")
    if args.include_non_model and not is_tf_checkpoint(args.checkpoint):
        raise UsageError(f"--include-non-model applies to TF checkpoints only; {args.checkpoint} is not one")
    try:
        if args.include_non_model:
            weights = read_checkpoint(args.checkpoint, include_non_model=True)
        else:
            weights = load_weights(args.checkpoint)
    except (ValueError, NotImplementedError, OSError) as err:  # CheckpointError is a ValueError
        raise UsageError(_cannot_read(args.checkpoint, err)) from err

    strings = [name for name, value in weights.items() if np.asarray(value).dtype == object]
    if strings:
        print(f"note: dropping {len(strings)} string tensor(s) that .npz/.safetensors weights "
              f"cannot hold: {', '.join(strings)}")
        weights = {name: value for name, value in weights.items() if name not in strings}
    save_weights(weights, output)
    parameters = sum(int(np.asarray(value).size) for value in weights.values())
    size = sum(int(np.asarray(value).nbytes) for value in weights.values())
    print(f"wrote {output}: {len(weights)} tensors, {parameters:,} parameters "
          f"({size / 2**20:.2f} MiB)")
    return 0


def _list(args) -> int:
    """Names, dtypes and shapes; TF checkpoints are listed from their index without reading data."""
    from slimtriton.weights import load_weights  # lazy: when the command runs
    from slimtriton.weights.tf_checkpoint import is_tf_checkpoint, list_checkpoint  # lazy: when the command runs

    try:
        if is_tf_checkpoint(args.checkpoint):
            rows = [(e.name, e.dtype, e.shape) for e in
                    list_checkpoint(args.checkpoint, include_non_model=args.include_non_model).values()]
        else:
            rows = [(name, str(np.asarray(v).dtype), np.shape(v))
                    for name, v in load_weights(args.checkpoint).items()]
    except (ValueError, NotImplementedError, OSError) as err:
        raise UsageError(_cannot_read(args.checkpoint, err)) from err
    width = max((len(name) for name, _, _ in rows), default=0)
    for name, dtype, shape in rows:
        print(f"{name:<{width}}  {dtype:<12} {list(shape)}")
    parameters = sum(int(np.prod(shape, dtype=np.int64)) for _, _, shape in rows)
    print(f"{len(rows)} tensors, {parameters:,} parameters")
    return 0


def _cannot_read(path: str, err: Exception) -> str:
    """'cannot read PATH: why', naming the path once when the error already starts with it."""
    text = str(err)
    return f"cannot read {text}" if text.startswith(f"{path}:") else f"cannot read {path}: {text}"
