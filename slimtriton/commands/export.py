"""slimtriton export NET|GRAPH --weights W -o model.onnx: the recorded graph and its weights as ONNX.

NET is a name from `slimtriton nets` (built at --image-size, default the net's; its output is the
predictions end point, or the logits where the net has none or with --output logits). GRAPH is `FILE.py:FUNCTION`, a
function taking no arguments that records a graph and returns `(graph, outputs)` (outputs: a
tensor, or a list or dict of tensors; dict keys name the ONNX outputs). --weights reads .npz,
.safetensors or a TF checkpoint (no TensorFlow needed); without it the weights are initialized
with --seed. The batch dimension is dynamic unless --static-batch; --layout NCHW makes rank-4
inputs and outputs NCHW; --batch-norm keep writes BatchNormalization nodes instead of folding
them into the convolutions. The file is checked with onnx.checker before the command returns.
"""
from __future__ import annotations

import importlib.util
import os

from ._netbuild import check_at_least, load_or_init_weights
from .errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="write a net or graph with its weights as ONNX",
                                   description=__doc__.split("\n\n", 1)[1])
    parser.add_argument("source", metavar="NET|GRAPH", help="a name from `slimtriton nets`, or FILE.py:FUNCTION")
    parser.add_argument("-o", "--out", metavar="MODEL.onnx", required=True, help="the ONNX file to write")
    parser.add_argument("--output", default="predictions", choices=("predictions", "logits"),
                        help="NET's output to export (default: predictions, the logits where the net has none)")
    parser.add_argument("--weights", metavar="PATH", default=None,
                        help=".npz, .safetensors or TF checkpoint (default: initialized with --seed)")
    parser.add_argument("--image-size", type=int, default=None, help="NET input height/width (default: the net's)")
    parser.add_argument("--batch", type=int, default=1, help="the batch the graph is recorded at (default 1)")
    parser.add_argument("--num-classes", type=int, default=None)
    parser.add_argument("--static-batch", action="store_true", help="keep the recorded batch (default: dynamic)")
    parser.add_argument("--layout", default="NHWC", choices=("NHWC", "NCHW"),
                        help="layout of rank-4 inputs and outputs (default NHWC, as TF)")
    parser.add_argument("--batch-norm", default="fold", choices=("fold", "keep"))
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=main)


def load_graph_function(spec: str):
    """(graph, outputs) from FILE.py:FUNCTION."""
    path, _, function = spec.rpartition(":")
    if not path or not function or not path.endswith(".py"):
        raise ValueError(f"{spec!r} is neither a net name nor FILE.py:FUNCTION")
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file (GRAPH is FILE.py:FUNCTION)")
    module_spec = importlib.util.spec_from_file_location("_slimtriton_export_graph", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    fn = getattr(module, function, None)
    if not callable(fn):
        raise ValueError(f"{path} has no function {function!r}")
    result = fn()
    if not (isinstance(result, tuple) and len(result) == 2 and hasattr(result[0], "variables")):
        raise ValueError(f"{spec}: must return (graph, outputs), got {type(result).__name__}")
    return result


def main(args) -> int:

    from slimtriton.export import export_onnx  # lazy: when the command runs
    from slimtriton.nets import nets_factory  # lazy: when the command runs
    from ..nets.build import build_net, main_output  # lazy: when the command runs

    check_at_least(args, 1, "--image-size", "--batch", "--num-classes")
    check_at_least(args, 0, "--seed")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        raise UsageError(f"-o {args.out}: directory {out_dir} does not exist")
    if os.path.isdir(args.out):
        raise UsageError(f"-o {args.out} is a directory; give a file name (model.onnx)")
    if args.source in nets_factory.networks_map:
        g, images, logits, end_points = build_net(args.source, args.image_size, args.batch, args.num_classes)
        output = logits if args.output == "logits" else main_output(logits, end_points)
        outputs = {"logits" if output is logits else "predictions": output}
    else:
        if ":" not in args.source:
            raise UsageError(f"unknown network {args.source!r} (known: {', '.join(sorted(nets_factory.networks_map))}"
                             f"; see `slimtriton nets`), and not FILE.py:FUNCTION")
        g, outputs = load_graph_function(args.source)
    weights = load_or_init_weights(g, args.weights, args.source, args.seed, graph_word="graph")
    model = export_onnx(g, outputs, weights, args.out, dynamic_batch=not args.static_batch,
                        layout=args.layout, batch_norm=args.batch_norm)
    inputs = ", ".join(f"{i.name}{_shape(i)}" for i in model.graph.input)
    outs = ", ".join(f"{o.name}{_shape(o)}" for o in model.graph.output)
    size = os.path.getsize(args.out)
    print(f"wrote {args.out} ({size / 2**20:.1f} MiB, opset {model.opset_import[0].version}, "
          f"{len(model.graph.node)} nodes, {len(model.graph.initializer)} initializers)")
    print(f"inputs: {inputs}\noutputs: {outs}")
    print(f"weights: {args.weights}" if args.weights else
          f"weights: RANDOM (init_weights seed {args.seed}; no --weights given)")
    return 0


def _shape(value) -> str:
    dims = value.type.tensor_type.shape.dim
    return "[" + ", ".join(d.dim_param or str(d.dim_value) for d in dims) + "]"
