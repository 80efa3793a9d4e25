"""`--ray`: the same jobs on Ray Data, on a local Ray (2 CPUs, no dashboard) started and shut
down by this module; the triton backend runs in the interpreter inside the actors."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import slimtriton as st
from slimtriton.cli import main

from ..helpers import assert_close
from .conftest import BATCH, CLASSES, NET, NUM_IMAGES, SIZE
from .faults import ExitOnceOnMarker
from .records import imagenet_example, write_tfrecord

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_eval_on_ray_reports_top1_100_percent(dataset, tmp_path, capsys):
    import json
    summary_path = tmp_path / "ray.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = main([str(a) for a in ["eval", NET, "--data", dataset.shards, "--backend", "triton",
                                        *dataset.common_args(), "--ray", "--json", summary_path]])
    out, err = capsys.readouterr()
    assert status == 0, err
    print(out)
    assert f"top-1 100.00% ({NUM_IMAGES}/{NUM_IMAGES})" in out and "ray (" in out
    summary = json.loads(summary_path.read_text())
    assert (summary["count"], summary["top1_hits"], summary["top5_hits"]) == (NUM_IMAGES,) * 3


def test_killed_actor_loses_and_duplicates_nothing(dataset, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    marker = tmp_path / "kill-an-actor"
    marker.write_text("")
    out = tmp_path / "pred.parquet"
    summary = st.data.predict(NET, dataset.shards, out, weights=str(dataset.weights), backend="reference",
                              image_size=SIZE, num_classes=CLASSES, batch=BATCH, progress=False,
                              ray=True, actor_hook=ExitOnceOnMarker(marker, after_calls=1))
    assert not marker.exists(), "no actor was killed"
    rows = pq.read_table(out).to_pylist()
    keys = sorted((r["path"], r["record"]) for r in rows)
    expected = sorted((str(shard), i) for shard in dataset.shard_files
                      for i in range(len(dataset.offsets[str(shard)])))
    assert keys == expected          # every image exactly once
    assert (summary.count, summary.top1_hits) == (NUM_IMAGES, NUM_IMAGES)
    local = tmp_path / "local.parquet"      # the same job on one machine: the same rows
    st.data.predict(NET, dataset.shards, local, weights=str(dataset.weights), backend="reference",
                    image_size=SIZE, num_classes=CLASSES, batch=BATCH, progress=False, workers=0)
    by_key = {(r["path"], r["record"]): r for r in rows}
    for row in pq.read_table(local).to_pylist():
        other = by_key[(row["path"], row["record"])]
        assert (other["label"], other["classes"]) == (row["label"], row["classes"])
        assert_close(np.asarray(other["probabilities"]), np.asarray(row["probabilities"]), "float32")


def test_ray_damaged_record_is_counted_or_reported(dataset, tmp_path):
    folder = tmp_path / "corrupt"
    folder.mkdir()
    data = bytearray(dataset.shard_files[1].read_bytes())
    offsets = dataset.offsets[str(dataset.shard_files[1])]
    data[offsets[2] + 12 + 30] ^= 0x55
    shard = folder / "validation-00000-of-00001"
    shard.write_bytes(bytes(data))
    options = dict(weights=str(dataset.weights), backend="reference", image_size=SIZE, num_classes=CLASSES,
                   batch=BATCH, progress=False, ray=True)
    summary = st.data.evaluate(NET, folder, skip_bad=True, **options)
    assert (summary.count, summary.damaged_records) == (len(offsets) - 1, 1)
    assert summary.damaged[0][:2] == (str(shard), offsets[2])
    with pytest.raises(ValueError, match=f"damaged TFRecord record at byte offset {offsets[2]}"):
        st.data.evaluate(NET, folder, **options)
    encoded = (dataset.images / dataset.names[0]).read_bytes()     # a label the net does not have
    write_tfrecord(shard, [imagenet_example(encoded, 0), imagenet_example(encoded, CLASSES)])
    with pytest.raises(ValueError, match=f"{shard} record 1 .*: label 10 minus --labels-offset 0"):
        st.data.evaluate(NET, folder, **options)


def test_ray_image_folder_with_max_images(dataset, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    labels = tmp_path / "truth.txt"
    labels.write_text("".join(f"{n} {l}\n" for n, l in zip(dataset.names, dataset.labels)))
    out = tmp_path / "folder.parquet"
    summary = st.data.predict(NET, dataset.images, out, weights=str(dataset.weights), backend="reference",
                              image_size=SIZE, num_classes=CLASSES, batch=BATCH, progress=False, ray=True,
                              image_labels=labels, max_images=10, top_k=2)
    rows = pq.read_table(out).to_pylist()
    assert (summary.count, summary.top1_hits, len(rows)) == (10, 10, 10)
    label_of = {str(dataset.images / n): int(l) for n, l in zip(dataset.names, dataset.labels)}
    assert len({r["path"] for r in rows}) == 10
    for r in rows:
        assert r["record"] is None and r["label"] == label_of[r["path"]] == r["classes"][0]
        assert len(r["probabilities"]) == 2
