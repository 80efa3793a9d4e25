"""One machine, no cluster: a pool of decode/preprocess workers feeding fixed-size batches to
one model, with results tallied (top-1/top-5) and optionally streamed to Parquet.

Why processes by default: TF-Slim's eval preprocessing here is NumPy written the obvious way
(`slimtriton.preprocessing`: fancy-index gathers and elementwise arithmetic that hold the GIL
for much of their time) and Pillow's JPEG decode, while the main thread launches the model's
kernels and needs the GIL to do so; worker *processes* decode and preprocess truly in parallel
and leave the main interpreter to the model. They are started with `spawn` (never `fork`: the
main process holds torch, Triton and possibly a CUDA context) and ignore SIGINT, so Ctrl-C
reaches the main process only, which stops, keeps what it has and shuts the pool down.
`worker_kind="thread"` (cheaper to start, fine for small jobs) and `workers=0` (everything in
the main thread) are there for notebooks and debugging. Decoding overlaps compute: while the
model runs batch i, the pool already prepares batches i+1 .. i+2*workers.

A compiled model has a static batch: every batch is `batch` images; the last one is padded
with zeros and the padding's outputs are sliced off.
"""
from __future__ import annotations

import itertools
import multiprocessing
import signal
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from tqdm.auto import tqdm

import slimtriton as st

from ..extras import require
from ..nets import nets_factory
from ..nets.build import EMBEDDING_NETS, build_net, main_output
from ..preprocessing import preprocess_image, preprocessing_name
from .sources import Item, Unit, decode_image, read_unit
from .tfrecord import ShardStats

__all__ = ["ModelSpec", "Model", "Summary", "Tally", "model_spec", "prepare_batch", "score_rows",
           "ParquetSink", "run_local", "output_kind"]

BACKENDS = ("triton", "reference", "torch")
OUTPUTS = ("scores", "logits")


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build the model again elsewhere (a worker, a Ray actor)."""
    net: str
    weights: Any            # a path, a {name: array} mapping, or None (initialized from `seed`)
    seed: int
    backend: str
    dtype: str
    image_size: int
    batch: int
    num_classes: int | None
    preprocessing: str
    output: str             # "scores" (the predictions end point, else the logits) or "logits"


def model_spec(net: str, weights=None, *, backend: str = "triton", dtype: str = "float32",
               image_size: int | None = None, batch: int = 32, num_classes: int | None = None,
               preprocessing: str | None = None, logits: bool = False, seed: int = 0) -> ModelSpec:
    if net not in nets_factory.networks_map:
        raise ValueError(f"unknown net {net!r}; known: {sorted(nets_factory.networks_map)}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    if isinstance(weights, Path):
        weights = str(weights)
    size = int(image_size or nets_factory.networks_map[net].default_image_size)
    name = preprocessing_name(net, preprocessing)
    return ModelSpec(net, weights, seed, backend, dtype, size, batch, num_classes, name,
                     "logits" if logits else "scores")


class Model:
    """The net of `spec` on its backend, called on up to `batch` images at a time."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        g, images, logits, end_points = build_net(spec.net, spec.image_size, spec.batch, spec.num_classes)
        if spec.weights is None:
            weights = st.init_weights(g, seed=spec.seed)
        elif isinstance(spec.weights, str):
            weights = st.load_weights(spec.weights)
        else:
            weights = spec.weights
        fetch = logits if spec.output == "logits" else main_output(logits, end_points)
        # What a row of the output is: FaceNet's embedding, logits, or class probabilities
        # (VGG / AlexNet have no softmax end point: their logits are ranked, and softmaxed by predict).
        self.kind = output_kind(spec)
        self.needs_softmax = self.kind == "probabilities" and fetch is logits
        self.num_outputs = int(np.prod(fetch.shape[1:]))
        self._images = images
        if spec.backend == "triton":
            compiled = st.compile(g, fetch, weights, dtype=spec.dtype)
            self._run = compiled
        else:
            options = {} if spec.backend == "reference" else {"dtype": spec.dtype}
            session = st.Session(g, weights, backend=spec.backend, **options)
            self._run = lambda x: session.run(fetch, {images: x})

    def warm_up(self) -> None:
        """One call on zeros (the triton backend compiles and, on a GPU, autotunes on first use)."""
        self(np.zeros((1, *self._images.shape[1:]), np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """[n, H, W, 3] float32, n <= batch -> [n, outputs] float32 (the last batch is zero-padded)."""
        n, batch = len(x), self.spec.batch
        if not 0 < n <= batch:
            raise ValueError(f"a batch of {n} images for a model of batch {batch}")
        if n < batch:
            x = np.concatenate([x, np.zeros((batch - n, *x.shape[1:]), x.dtype)])
        out = np.asarray(self._run(x), dtype=np.float32)
        return out.reshape(batch, -1)[:n]


def output_kind(spec: ModelSpec) -> str:
    """What a row of the model's output is: FaceNet's `embedding`, `logits` (asked for), or class
    `probabilities` (VGG / AlexNet have no softmax end point: their logits are ranked, and
    softmaxed for predict's probabilities)."""
    if spec.net in EMBEDDING_NETS:
        return "embedding"
    return "logits" if spec.output == "logits" else "probabilities"


def prepare_batch(items: list[Item], size: int, preprocessing: str) -> np.ndarray:
    """Decode and preprocess items -> float32 [n, size, size, 3] (runs in a worker)."""
    return np.concatenate([preprocess_image(decode_image(item), size, size, preprocessing)
                           for item in items])


def score_rows(scores: np.ndarray, labels: list, *, kind: str, needs_softmax: bool,
               labels_offset: int, top_k: int | None, where: list[str]) -> dict:
    """Per-image columns from the model's output rows, each an array with one row per image
    (fixed shapes, also for n = 0: Ray concatenates them): `hit1`, `hit5` (-1 where unlabelled)
    and, for predict (`top_k` set), `classes` + `probabilities` [n, k], or the `embedding` /
    `logits` vectors [n, outputs]."""
    n, classes = scores.shape
    order = np.argsort(-scores, axis=1, kind="stable")   # ties: the lower index first, like top_k
    hit1, hit5 = np.full(n, -1, np.int8), np.full(n, -1, np.int8)
    for i, label in enumerate(labels):
        if label is None or label < 0 or kind == "embedding":
            continue
        target = int(label) - labels_offset
        if not 0 <= target < classes:
            raise ValueError(f"{where[i]}: label {label} minus --labels-offset {labels_offset} = "
                             f"{target} is not one of the net's {classes} outputs (1000-class nets on "
                             f"TF-Slim's ImageNet records, labelled 1..1000, need --labels-offset 1)")
        hit1[i] = int(order[i, 0] == target)
        hit5[i] = int(target in order[i, :5])
    columns = {"hit1": hit1, "hit5": hit5}
    if top_k is None:
        return columns
    if kind in ("embedding", "logits"):
        columns[kind] = scores.astype(np.float32)
        return columns
    probs = scores.astype(np.float64)
    if needs_softmax:
        probs = np.exp(probs - probs.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
    best = order[:, :min(top_k, classes)]
    columns["classes"] = best.astype(np.int64)
    columns["probabilities"] = np.take_along_axis(probs, best, axis=1).astype(np.float32)
    return columns


@dataclass
class Tally:
    """Counts over the images seen so far (exact: each image is counted once)."""
    count: int = 0
    labelled: int = 0
    top1_hits: int = 0
    top5_hits: int = 0
    damaged_records: int = 0
    damaged: list = field(default_factory=list)     # (shard, byte offset, reason)

    def add(self, hit1: np.ndarray, hit5: np.ndarray) -> None:
        self.count += len(hit1)
        self.labelled += int(np.sum(hit1 >= 0))
        self.top1_hits += int(np.sum(hit1 == 1))
        self.top5_hits += int(np.sum(hit5 == 1))

    @property
    def top1(self) -> float | None:
        return self.top1_hits / self.labelled if self.labelled else None

    @property
    def top5(self) -> float | None:
        return self.top5_hits / self.labelled if self.labelled else None


@dataclass
class Summary:
    """What `evaluate` / `predict` report (`as_dict()` is the --json summary)."""
    net: str
    backend: str
    dtype: str
    image_size: int
    batch: int
    data: str
    runner: str                      # "local (N process workers)" or "ray (ADDRESS, N actors)"
    count: int
    labelled: int
    top1: float | None
    top5: float | None
    top1_hits: int
    top5_hits: int
    damaged_records: int
    damaged: list
    seconds: float                   # end to end: reading, decoding, preprocessing, model
    model_seconds: float             # the model calls alone (local runner)
    setup_seconds: float             # building / compiling / loading the model
    interrupted: bool = False
    output: str | None = None
    kind: str | None = None

    @property
    def images_per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    @property
    def model_images_per_second(self) -> float | None:
        return self.count / self.model_seconds if self.model_seconds > 0 else None

    def as_dict(self) -> dict:
        d = asdict(self)
        d["damaged"] = [list(x) for x in self.damaged]
        d["images_per_second"] = self.images_per_second
        d["model_images_per_second"] = self.model_images_per_second
        return d

    def format(self) -> str:
        lines = [f"{self.net} on {self.backend} ({self.dtype}), {self.image_size}x{self.image_size}, "
                 f"batch {self.batch}, {self.runner}: {self.data}"]
        if self.top1 is not None:
            lines.append(f"top-1 {100 * self.top1:.2f}% ({self.top1_hits}/{self.labelled})   "
                         f"top-5 {100 * self.top5:.2f}% ({self.top5_hits}/{self.labelled})")
        lines.append(f"images {self.count}" + (f" ({self.count - self.labelled} unlabelled)"
                                                if self.labelled != self.count else ""))
        model = (f", model alone {self.model_images_per_second:.1f} images/s"
                 if self.model_images_per_second else "")
        lines.append(f"throughput {self.images_per_second:.1f} images/s end to end{model} "
                     f"({self.seconds:.2f} s; model setup {self.setup_seconds:.2f} s)")
        if self.damaged_records:
            lines.append(f"damaged records skipped: {self.damaged_records}")
            lines += [f"  {shard} at byte offset {offset}: {reason}" for shard, offset, reason in self.damaged[:10]]
        if self.output:
            lines.append(f"wrote {self.output}")
        if self.interrupted:
            lines.append(f"interrupted: results cover the first {self.count} images")
        return "\n".join(lines)


class ParquetSink:
    """Per-image rows streamed to one Parquet file (one row group per batch written)."""

    def __init__(self, path, kind: str, has_labels: bool = True):
        pa = require("pyarrow", "writing Parquet")
        pq = require("pyarrow.parquet", "writing Parquet")
        self.path, self.kind = str(path), kind
        fields = [("path", pa.string()), ("record", pa.int64()), ("label", pa.int64())]
        if kind in ("embedding", "logits"):
            fields.append((kind, pa.list_(pa.float32())))
        else:
            fields += [("classes", pa.list_(pa.int64())), ("probabilities", pa.list_(pa.float32()))]
        self.schema = pa.schema(fields)
        self._pa = pa
        self._writer = pq.ParquetWriter(self.path, self.schema)
        self.rows = 0

    def write(self, paths, records, labels, columns: dict) -> None:
        pa = self._pa
        data = {"path": list(paths), "record": list(records), "label": list(labels)}
        for name in self.schema.names[3:]:
            data[name] = [np.asarray(v).tolist() for v in columns[name]]
        self._writer.write_table(pa.Table.from_pydict(data, schema=self.schema))
        self.rows += len(data["path"])

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _items(units: list[Unit], skip_bad: bool, stats: ShardStats, max_images: int | None) -> Iterator[Item]:
    items = itertools.chain.from_iterable(read_unit(u, skip_bad, stats) for u in units)
    return items if max_images is None else itertools.islice(items, max_images)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _make_pool(workers: int, worker_kind: str):
    if workers == 0:
        return None
    if worker_kind == "thread":
        return ThreadPoolExecutor(workers, thread_name_prefix="slimtriton-decode")
    if worker_kind == "process":
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_ignore_sigint)
    raise ValueError(f"worker_kind must be 'process' or 'thread', got {worker_kind!r}")


class _Done:
    """An already computed result, for `workers=0` (no pool)."""

    def __init__(self, fn, *args):
        self._value = fn(*args)

    def result(self):
        return self._value

    def cancel(self):
        return False


def run_local(units: list[Unit], spec: ModelSpec, *, data: str, skip_bad: bool = False,
              max_images: int | None = None, labels_offset: int = 0, top_k: int | None = None,
              workers: int = 2, worker_kind: str = "process", output=None, progress: bool = True,
              on_batch: Callable[[Tally], None] | None = None) -> Summary:
    """Run `spec` over the units on this machine (see the module docstring)."""
    t0 = time.perf_counter()
    model = Model(spec)
    if spec.backend == "triton":
        model.warm_up()
    setup = time.perf_counter() - t0
    stats, tally = ShardStats(), Tally()
    sink = ParquetSink(output, model.kind) if output is not None else None
    total = max_images if max_images is not None else (
        sum(len(u.files) for u in units) if all(u.kind == "images" for u in units) else None)
    bar = _progress_bar(total, progress, spec.net)
    pool = _make_pool(workers, worker_kind)
    chunks = _chunks(_items(units, skip_bad, stats, max_images), spec.batch)
    pending: deque = deque()
    depth = max(2, 2 * workers)
    model_seconds, interrupted = 0.0, False
    start = time.perf_counter()
    try:
        while True:
            while len(pending) < depth:
                chunk = next(chunks, None)
                if chunk is None:
                    break
                args = (prepare_batch, chunk, spec.image_size, spec.preprocessing)
                pending.append((chunk, pool.submit(*args) if pool else _Done(*args)))
            if not pending:
                break
            chunk, future = pending.popleft()
            x = future.result()
            t = time.perf_counter()
            scores = model(x)
            model_seconds += time.perf_counter() - t
            labels = [item.label for item in chunk]
            columns = score_rows(scores, labels, kind=model.kind, needs_softmax=model.needs_softmax,
                                 labels_offset=labels_offset, top_k=top_k,
                                 where=[item.where for item in chunk])
            if sink is not None:
                sink.write([i.path for i in chunk], [i.record for i in chunk], labels, columns)
            tally.add(columns["hit1"], columns["hit5"])
            _update_bar(bar, tally, len(chunk), time.perf_counter() - start)
            if on_batch is not None:
                on_batch(tally)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for _, future in pending:
            future.cancel()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if sink is not None:
            sink.close()
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    tally.damaged_records, tally.damaged = stats.damaged, stats.damaged_at
    runner = f"local ({workers} {worker_kind} workers)" if workers else "local (no workers)"
    return _summary(spec, tally, data, runner, seconds, model_seconds, setup, interrupted, output, model.kind)


def _summary(spec, tally, data, runner, seconds, model_seconds, setup, interrupted, output, kind) -> Summary:
    return Summary(spec.net, spec.backend, spec.dtype, spec.image_size, spec.batch, str(data), runner,
                   tally.count, tally.labelled, tally.top1, tally.top5, tally.top1_hits, tally.top5_hits,
                   tally.damaged_records, list(tally.damaged), seconds, model_seconds, setup,
                   interrupted, None if output is None else str(output), kind)


def _chunks(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    while True:
        chunk = list(itertools.islice(items, size))
        if not chunk:
            return
        yield chunk


def _progress_bar(total, enabled: bool, desc: str):
    if not enabled:
        return None
    return tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True)


def _update_bar(bar, tally: Tally, n: int, elapsed: float) -> None:
    if bar is None:
        return
    postfix = {"img/s": f"{tally.count / elapsed:.1f}" if elapsed > 0 else "-"}
    if tally.top1 is not None:
        postfix = {"top1": f"{100 * tally.top1:.2f}%", "top5": f"{100 * tally.top5:.2f}%", **postfix}
    bar.set_postfix(postfix, refresh=False)
    bar.update(n)
