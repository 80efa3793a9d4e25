"""The same job on Ray Data (`--ray [ADDRESS]`): no scheduler of our own.

    units (shards / image chunks) --from_items--> flat_map(read: crc-checked records, CPU tasks)
        --map_batches(decode + TF-Slim preprocessing, CPU tasks)
        --map_batches(_ModelActor, actor pool: one model per actor, num_gpus=1 where there are GPUs)
        --iter_batches on the driver: tallied (top-1/top-5) and streamed to Parquet

A dead actor's batches are retried: Ray Data runs actor-pool actors with `max_restarts=-1`
and `max_task_retries=-1` unless told otherwise (ray/data/_internal/execution/operators/
actor_pool_map_operator.py; passing them ourselves is deprecated as of Ray 2.60), so a batch
whose actor died is run again on a restarted actor, and the failed attempt produced no output:
no image is lost or counted twice (tests/data/test_ray.py kills an actor mid-run). The driver
counts each image once, from the rows it receives.

Bad data (a damaged record without skip_bad, an unknown image format) is caught in the task and
carried to the driver as a row with an `error` message, which the driver raises as one
ValueError: Ray would otherwise wrap it and keep only its text.

Damaged records (with `skip_bad`) travel as rows with a non-empty `damaged` reason, so that
the driver counts them; they are never run through the model nor written. With `max_images`,
`Dataset.limit` counts those rows too (they come first only if they come first in the data).
Rows arrive in completion order, not data order.
"""
from __future__ import annotations

import time

import numpy as np

from ..extras import require
from ..preprocessing import preprocess_image
from .pipeline import (Model, ModelSpec, ParquetSink, Summary, Tally, _progress_bar, _summary, _update_bar,
                       output_kind, score_rows)
from .sources import Item, Unit, decode_image, read_unit
from .tfrecord import ShardStats

__all__ = ["run_ray"]

USER_ERRORS = (ValueError, OSError)   # what bad data causes: reported on the driver, not retried
NO_VALUE = -1   # record / label / offset of rows that have none (Ray columns hold no None ints)


def _row(item: Item, damaged: str = "", error: str = "") -> dict:
    return {"path": item.path, "record": NO_VALUE if item.record is None else item.record,
            "offset": NO_VALUE if item.offset is None else item.offset,
            "label": NO_VALUE if item.label is None else item.label,
            "encoded": item.encoded, "format": item.format or "", "damaged": damaged, "error": error}


def _read(row: dict, units: list[Unit], skip_bad: bool) -> list[dict]:
    unit, stats, rows = units[row["unit"]], ShardStats(), []
    try:
        rows += [_row(item) for item in read_unit(unit, skip_bad, stats)]
    except USER_ERRORS as err:   # carried to the driver as a row: Ray would keep only its text
        rows.append(_row(Item(unit.path, None, None, b"", None, None), error=str(err)))
    rows += [_row(Item(shard, None, offset, b"", None, None), damaged=reason)
             for shard, offset, reason in stats.damaged_at]
    return rows


def _item(batch: dict, i: int) -> Item:
    record = int(batch["record"][i])
    return Item(str(batch["path"][i]), None if record == NO_VALUE else record,
                None if record == NO_VALUE else int(batch["offset"][i]), bytes(batch["encoded"][i]),
                None, str(batch["format"][i]) or None)


def _prepare(batch: dict, size: int, preprocessing: str) -> dict:
    n = len(batch["path"])
    images = np.zeros((n, size, size, 3), np.float32)
    errors = np.array(batch["error"], dtype=object)
    for i in range(n):
        if not batch["damaged"][i] and not errors[i]:
            try:
                images[i] = preprocess_image(decode_image(_item(batch, i)), size, size, preprocessing)[0]
            except USER_ERRORS as err:
                errors[i] = str(err)
    out = {k: v for k, v in batch.items() if k not in ("encoded", "format")}
    out["error"] = errors.astype(str)
    out["image"] = images
    return out


class _ModelActor:
    """One model per actor, built once; called on batches of up to spec.batch rows."""

    def __init__(self, spec: ModelSpec, labels_offset: int, top_k, hook):
        self.model = Model(spec)
        if spec.backend == "triton":
            self.model.warm_up()   # compile (and autotune on a GPU) before the first timed batch
        self.labels_offset, self.top_k, self.hook = labels_offset, top_k, hook

    def __call__(self, batch: dict) -> dict:
        if self.hook is not None:
            self.hook(list(batch["path"]), [int(r) for r in batch["record"]])
        good = np.asarray([not d and not e for d, e in zip(batch["damaged"], batch["error"])], bool)
        n = len(good)
        t = time.perf_counter()
        scores = self.model(batch["image"][good]) if good.any() else np.zeros((0, self.model.num_outputs), np.float32)
        seconds = time.perf_counter() - t
        labels = [None if int(v) == NO_VALUE else int(v) for v in batch["label"][good]]
        where = [str(p) if int(r) == NO_VALUE else f"{p} record {r} (byte offset {o})"
                 for p, r, o in zip(batch["path"][good], batch["record"][good], batch["offset"][good])]
        options = dict(kind=self.model.kind, needs_softmax=self.model.needs_softmax,
                       labels_offset=self.labels_offset, top_k=self.top_k)
        errors = np.asarray(batch["error"]).astype(object)
        try:
            columns = score_rows(scores, labels, where=where, **options)
        except USER_ERRORS as err:   # e.g. a label out of range: the rows carry it to the driver
            columns = score_rows(scores, [None] * len(labels), where=where, **options)
            errors[good] = str(err)
        out = {k: batch[k] for k in ("path", "record", "offset", "label", "damaged")}
        out["error"] = errors.astype(str)
        out["model_seconds"] = np.full(n, seconds / max(int(good.sum()), 1), np.float64)
        for name, values in columns.items():
            values = np.asarray(values)
            full = np.full((n, *values.shape[1:]), -1 if name.startswith("hit") else 0, values.dtype)
            full[good] = values
            out[name] = full
        return out


def run_ray(units: list[Unit], spec: ModelSpec, *, address, actors, actor_hook, data: str,
            skip_bad: bool, max_images, labels_offset: int, top_k, output, progress: bool) -> Summary:
    ray = require("ray", "--ray (Ray Data)")
    require("ray.data", "--ray (Ray Data)")
    t0 = time.perf_counter()
    if not ray.is_initialized():
        ray.init(address=address)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False   # ours, on the driver, shows live accuracy instead
    gpus = int(ray.cluster_resources().get("GPU", 0))
    actors = actors or max(gpus, 1)
    setup = time.perf_counter() - t0
    ds = ray.data.from_items([{"unit": i} for i in range(len(units))], override_num_blocks=len(units))
    ds = ds.flat_map(_read, fn_kwargs={"units": units, "skip_bad": skip_bad})
    if max_images is not None:
        ds = ds.limit(max_images)
    ds = ds.map_batches(_prepare, fn_kwargs={"size": spec.image_size, "preprocessing": spec.preprocessing},
                        batch_size=spec.batch, batch_format="numpy")
    ds = ds.map_batches(_ModelActor, fn_constructor_kwargs={"spec": spec, "labels_offset": labels_offset,
                                                            "top_k": top_k, "hook": actor_hook},
                        batch_size=spec.batch, batch_format="numpy", concurrency=actors,
                        num_gpus=1 if gpus else 0, num_cpus=1)
    kind = output_kind(spec)
    sink = ParquetSink(output, kind) if output is not None else None
    tally, model_seconds, interrupted = Tally(), 0.0, False
    bar = _progress_bar(max_images, progress, f"{spec.net} (ray)")
    start = time.perf_counter()
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            errors = [str(e) for e in batch["error"] if e]
            if errors:
                raise ValueError(errors[0])
            damaged = np.asarray([bool(d) for d in batch["damaged"]], bool)
            for i in np.flatnonzero(damaged):
                tally.damaged_records += 1
                tally.damaged.append((str(batch["path"][i]), int(batch["offset"][i]), str(batch["damaged"][i])))
            good = ~damaged
            if not good.any():
                continue
            tally.add(batch["hit1"][good], batch["hit5"][good])
            model_seconds += float(batch["model_seconds"][good].sum())
            if sink is not None:
                records = [None if int(r) == NO_VALUE else int(r) for r in batch["record"][good]]
                labels = [None if int(v) == NO_VALUE else int(v) for v in batch["label"][good]]
                columns = {name: batch[name][good] for name in sink.schema.names[3:]}
                sink.write([str(p) for p in batch["path"][good]], records, labels, columns)
            _update_bar(bar, tally, int(good.sum()), time.perf_counter() - start)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if sink is not None:
            sink.close()
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    runner = f"ray ({address or 'ray.init default'}, {actors} model actor{'s' if actors > 1 else ''})"
    # model_seconds sums the actors' model calls: its images/s is one model instance's.
    return _summary(spec, tally, data, runner, seconds, model_seconds, setup, interrupted, output, kind)
