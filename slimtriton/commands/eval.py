"""slimtriton eval NET --weights W --data PATH: top-1/top-5 accuracy over a data set, the
counterpart of TF-Slim's eval_image_classifier.py, without TensorFlow.

--data: TFRecord shards of tf.train.Example in TF-Slim's ImageNet schema (a file, a glob in
quotes, or a folder of NAME-00000-of-00128 shards), crc32c-checked; or a folder of JPEG/PNG
images with --image-labels. Images get NET's TF-Slim eval preprocessing. Prints the accuracy,
the image count and the throughput (end to end and the model alone); --json writes the summary.
One machine by default (a pool of decode workers feeding one model); --ray [ADDRESS] runs the
same job on Ray Data. Ctrl-C stops and reports the images done so far (exit status 130).
"""
from __future__ import annotations

import json
import os

from ._netbuild import check_at_least


def add_data_arguments(parser) -> None:
    """The arguments `eval` and `predict` share (the same flags with and without --ray)."""
    parser.add_argument("net", metavar="NET", help="a name from `slimtriton nets`")
    parser.add_argument("--data", metavar="PATH", required=True,
                        help="TFRecord shard, glob of shards, folder of shards, or folder of images")
    parser.add_argument("--weights", metavar="PATH", default=None,
                        help=".npz, .safetensors or TF checkpoint (default: initialized with --seed)")
    parser.add_argument("--backend", default="triton", choices=("triton", "reference", "torch"))
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    parser.add_argument("--image-size", type=int, default=None, help="default: the net's")
    parser.add_argument("--batch", type=int, default=32,
                        help="the model's static batch (the last batch is padded)")
    parser.add_argument("--num-classes", type=int, default=None)
    parser.add_argument("--preprocessing", default=None, choices=("inception", "vgg", "cifarnet", "lenet"),
                        help="default: TF-Slim's preprocessing_factory choice for NET")
    parser.add_argument("--labels-offset", type=int, default=0,
                        help="subtracted from each stored label (TF-Slim's --labels_offset: 1 for the "
                             "1000-class nets on TF-Slim's 1..1000-labelled ImageNet records)")
    parser.add_argument("--image-labels", metavar="FILE", default=None,
                        help="labels of a folder of images: `NAME LABEL` lines, or one integer per "
                             "image in sorted path order")
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--skip-bad", action="store_true",
                        help="count and skip damaged TFRecord records instead of stopping")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="decode/preprocess workers on one machine (0: in the main thread)")
    parser.add_argument("--worker-kind", default="process", choices=("process", "thread"))
    parser.add_argument("--ray", nargs="?", const=True, default=None, metavar="ADDRESS",
                        help="run on Ray Data (ADDRESS: a cluster, e.g. ray://head:10001; none: "
                             "ray.init()'s default, the local cluster or a new one)")
    parser.add_argument("--ray-actors", type=int, default=None,
                        help="model actors on Ray (default: one per GPU of the cluster, else 1)")
    parser.add_argument("--json", metavar="PATH", default=None, help="write the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--seed", type=int, default=0)


def data_options(args) -> dict:
    """The keyword arguments of `st.data.evaluate` / `predict` from the flags (checked)."""
    check_at_least(args, 1, "--image-size", "--batch", "--num-classes", "--max-images", "--ray-actors")
    check_at_least(args, 0, "--workers", "--seed")
    return dict(backend=args.backend, dtype=args.dtype, image_size=args.image_size, batch=args.batch,
                num_classes=args.num_classes, preprocessing=args.preprocessing,
                labels_offset=args.labels_offset, image_labels=args.image_labels,
                max_images=args.max_images, skip_bad=args.skip_bad, workers=args.workers,
                worker_kind=args.worker_kind, ray=args.ray, ray_actors=args.ray_actors,
                progress=not args.no_progress, seed=args.seed)


def report(summary, json_path) -> int:
    """Print the summary (and write it as JSON); 130 when Ctrl-C stopped the run."""
    print(summary.format())
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(summary.as_dict(), f, indent=2)
        print(f"wrote {json_path}")
    return 130 if summary.interrupted else 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="top-1/top-5 accuracy over TFRecord shards or an image folder",
                                   description=__doc__.split("\n\n", 1)[1])
    add_data_arguments(parser)
    parser.set_defaults(func=main)


def main(args) -> int:
    from slimtriton import data  # lazy: when the command runs
    summary = data.evaluate(args.net, args.data, args.weights, **data_options(args))
    return report(summary, args.json)
