"""Whole data sets: TF-Slim's eval_image_classifier (`evaluate`) and batch prediction to
Parquet (`predict`), on one machine by default and on a Ray cluster with `ray=`.

    import slimtriton as st
    summary = st.data.evaluate("resnet_v1_50", "/data/imagenet/validation-*", weights="resnet_v1_50.ckpt",
                               labels_offset=1, batch=64)
    print(summary.top1, summary.top5, summary.images_per_second)
    st.data.predict("inception_v3", "photos/", "predictions.parquet", weights="inception_v3.ckpt")
    st.data.evaluate(..., ray="ray://head:10001")          # the same job on Ray Data

`data` is a TFRecord shard, a glob of shards, a folder of shards (TF-Slim's ImageNet schema:
image/encoded, image/format, image/class/label), or a folder of JPEG/PNG images (labels from
`image_labels`, a file of `NAME LABEL` lines or one integer per image in sorted order).
`labels_offset` is subtracted from each stored label before it is compared with the net's
output index (TF-Slim's --labels_offset: 1 for the 1000-class nets on TF-Slim's ImageNet
records, whose labels are 1..1000 with 0 the background class of the 1001-class nets).

Modules: `tfrecord` (TFRecord framing with crc32c, tf.train.Example parsing), `sources`
(shards / image folders, decoding), `pipeline` (the single-machine runner), `ray_runner`
(Ray Data).
"""
from __future__ import annotations

from .pipeline import ModelSpec, Summary, model_spec, run_local
from .ray_runner import run_ray
from .sources import list_units
from .tfrecord import DamagedRecordError, parse_example, read_records

__all__ = ["evaluate", "predict", "Summary", "ModelSpec", "DamagedRecordError", "read_records",
           "parse_example", "list_units"]


def evaluate(net: str, data, weights=None, *, backend: str = "triton", dtype: str = "float32",
             image_size: int | None = None, batch: int = 32, num_classes: int | None = None,
             preprocessing: str | None = None, labels_offset: int = 0, image_labels=None,
             max_images: int | None = None, skip_bad: bool = False, workers: int = 2,
             worker_kind: str = "process", ray=None, ray_actors: int | None = None,
             progress: bool = True, on_batch=None, actor_hook=None, seed: int = 0) -> Summary:
    """Top-1 / top-5 accuracy of `net` over `data` (see the module docstring); returns a `Summary`.

    weights: a path (.npz, .safetensors, TF checkpoint), a {name: array} mapping, or None for
    weights initialized from `seed`. batch: the model's static batch (the last batch is
    padded). workers / worker_kind: the local decode pool (`slimtriton.data.pipeline`).
    ray: None for this machine; True (ray.init()'s default: the cluster this machine belongs to,
    else a local one) or an address for Ray Data, with `ray_actors` model actors (default: one
    per GPU of the cluster, else 1). on_batch(tally): called after each batch (local runner);
    actor_hook(paths, records): called by a Ray model actor before each batch.
    """
    return _run(net, data, weights, None, None, False, locals())


def predict(net: str, data, output, weights=None, *, top_k: int = 5, logits: bool = False,
            backend: str = "triton", dtype: str = "float32", image_size: int | None = None,
            batch: int = 32, num_classes: int | None = None, preprocessing: str | None = None,
            labels_offset: int = 0, image_labels=None, max_images: int | None = None,
            skip_bad: bool = False, workers: int = 2, worker_kind: str = "process", ray=None,
            ray_actors: int | None = None, progress: bool = True, on_batch=None, actor_hook=None,
            seed: int = 0) -> Summary:
    """Per-image predictions of `net` over `data` written to the Parquet file `output`: columns
    path, record (index in its shard; null for image files), label, then `classes` and
    `probabilities` (top_k), or `embedding` (FaceNet), or `logits` (logits=True). Rows of the
    local runner are in data order; Ray's are in completion order. Labelled data also gets
    its accuracy in the returned `Summary`."""
    return _run(net, data, weights, output, top_k, logits, locals())


def _run(net, data, weights, output, top_k, logits, opts) -> Summary:
    if opts["max_images"] is not None and opts["max_images"] < 1:
        raise ValueError(f"max_images must be at least 1, got {opts['max_images']}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    spec = model_spec(net, weights, backend=opts["backend"], dtype=opts["dtype"],
                      image_size=opts["image_size"], batch=opts["batch"], num_classes=opts["num_classes"],
                      preprocessing=opts["preprocessing"], logits=logits, seed=opts["seed"])
    units = list_units(data, opts["image_labels"])
    common = dict(data=str(data), skip_bad=opts["skip_bad"], max_images=opts["max_images"],
                  labels_offset=opts["labels_offset"], top_k=top_k, output=output,
                  progress=opts["progress"])
    if opts["ray"] is None or opts["ray"] is False:
        return run_local(units, spec, workers=opts["workers"], worker_kind=opts["worker_kind"],
                         on_batch=opts["on_batch"], **common)
    address = None if opts["ray"] is True else str(opts["ray"])
    return run_ray(units, spec, address=address, actors=opts["ray_actors"],
                   actor_hook=opts["actor_hook"], **common)
