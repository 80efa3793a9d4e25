"""slimtriton predict NET --weights W --data PATH -o OUT.parquet: per-image predictions.

One Parquet row per image, keyed by `path` (the image file, or the TFRecord shard) and `record`
(the record's index in its shard; null for image files), with its `label` when the data has
one, then `classes` and `probabilities` (the top --top-k), or `embedding` (FaceNet's
inception_resnet_v1), or `logits` (--logits). Same data, pipeline and --ray flags as
`slimtriton eval`; on labelled data the accuracy is printed too.
"""
from __future__ import annotations

from ._netbuild import check_at_least
from .eval import add_data_arguments, data_options, report


def register(subparsers) -> None:
    parser = subparsers.add_parser("predict", help="per-image predictions of a data set, to Parquet",
                                   description=__doc__.split("\n\n", 1)[1])
    add_data_arguments(parser)
    parser.add_argument("-o", "--output", metavar="OUT.parquet", required=True)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--logits", action="store_true", help="write the logits instead of the top-k")
    parser.set_defaults(func=main)


def main(args) -> int:
    from slimtriton import data  # lazy: when the command runs
    check_at_least(args, 1, "--top-k")
    summary = data.predict(args.net, args.data, args.output, args.weights, top_k=args.top_k,
                           logits=args.logits, **data_options(args))
    return report(summary, args.json)
