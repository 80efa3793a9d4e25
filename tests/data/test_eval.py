"""`slimtriton eval` / `predict` and `st.data.evaluate` / `predict` on one machine, over the
acceptance data set of conftest.py (labels = the reference backend's own top-1)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import slimtriton as st

from ..helpers import assert_close
from ..helpers import run_cli as _cli
from .conftest import BATCH, CLASSES, NET, NUM_IMAGES, SIZE
from .records import imagenet_example, write_tfrecord


def _api_options(dataset, **extra):
    return dict(weights=str(dataset.weights), image_size=SIZE, num_classes=CLASSES, batch=BATCH,
                progress=False, **extra)


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_eval_cli_reports_top1_100_percent(dataset, backend, tmp_path, capsys):
    summary_path = tmp_path / "summary.json"
    status, out, err = _cli(capsys, "eval", NET, "--data", dataset.shards, "--backend", backend,
                            *dataset.common_args(), "--workers", 2, "--json", summary_path)
    assert status == 0, err
    print(out)
    assert f"top-1 100.00% ({NUM_IMAGES}/{NUM_IMAGES})" in out
    assert "images/s end to end" in out and "model alone" in out
    summary = json.loads(summary_path.read_text())
    assert summary["count"] == NUM_IMAGES and summary["top1_hits"] == NUM_IMAGES
    assert summary["top5_hits"] == NUM_IMAGES and summary["top1"] == 1.0
    assert summary["images_per_second"] > 0 and summary["model_images_per_second"] > 0
    assert summary["backend"] == backend and not summary["interrupted"]


def _shuffled_shards(dataset, tmp_path, rng):
    labels = rng.permutation(dataset.labels)
    folder = tmp_path / "shuffled"
    folder.mkdir()
    for i, idx in enumerate(np.array_split(np.arange(NUM_IMAGES), 2)):
        encoded = [(dataset.images / dataset.names[j]).read_bytes() for j in idx]
        write_tfrecord(folder / f"train-{i:05d}-of-00002",
                       [imagenet_example(e, int(labels[j])) for e, j in zip(encoded, idx)])
    return folder, labels


def test_eval_shuffled_labels_counts_exact_hits(dataset, tmp_path):
    folder, labels = _shuffled_shards(dataset, tmp_path, np.random.default_rng(7))
    expected1 = int(np.sum(labels == dataset.labels))
    expected5 = int(sum(labels[i] in dataset.top5[i] for i in range(NUM_IMAGES)))
    assert 0 < expected1 < NUM_IMAGES
    summary = st.data.evaluate(NET, folder, backend="reference", worker_kind="thread",
                               **_api_options(dataset))
    assert (summary.count, summary.top1_hits, summary.top5_hits) == (NUM_IMAGES, expected1, expected5)
    assert summary.top1 == expected1 / NUM_IMAGES


def test_labels_offset_is_subtracted_and_out_of_range_is_an_error(dataset, tmp_path):
    folder = tmp_path / "offset"
    folder.mkdir()
    encoded = [(dataset.images / n).read_bytes() for n in dataset.names]
    write_tfrecord(folder / "val.tfrecord", [imagenet_example(e, int(l) + 1) for e, l in zip(encoded, dataset.labels)])
    summary = st.data.evaluate(NET, folder / "val.tfrecord", backend="reference", labels_offset=1,
                               workers=0, **_api_options(dataset))
    assert summary.top1_hits == NUM_IMAGES
    write_tfrecord(folder / "val.tfrecord", [imagenet_example(encoded[0], CLASSES)])
    with pytest.raises(ValueError, match=r"label 10 minus --labels-offset 0 = 10 is not one of the net's 10"):
        st.data.evaluate(NET, folder / "val.tfrecord", backend="reference", workers=0, **_api_options(dataset))


def test_image_folder_with_labels_file(dataset, tmp_path):
    labels_file = tmp_path / "truth.txt"
    labels_file.write_text("".join(f"{n} {l}\n" for n, l in zip(dataset.names, dataset.labels)))
    summary = st.data.evaluate(NET, dataset.images, backend="reference", image_labels=labels_file,
                               max_images=20, **_api_options(dataset))
    assert (summary.count, summary.top1_hits) == (20, 20)
    one_per_line = tmp_path / "ground_truth.txt"     # ImageNet's validation ground-truth layout
    one_per_line.write_text("".join(f"{l}\n" for l in dataset.labels))
    summary = st.data.evaluate(NET, dataset.images, backend="reference", image_labels=one_per_line,
                               worker_kind="thread", **_api_options(dataset))
    assert (summary.count, summary.top1_hits) == (NUM_IMAGES, NUM_IMAGES)


def test_predict_equals_per_image_run(dataset, tmp_path, capsys):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "pred.parquet"
    status, printed, err = _cli(capsys, "predict", NET, "--data", dataset.shards, "-o", out,
                                "--backend", "reference", "--top-k", 3, *dataset.common_args())
    assert status == 0, err
    table = pq.read_table(out).to_pylist()
    assert len(table) == NUM_IMAGES
    assert [r["path"] for r in table[:2]] == [str(dataset.shard_files[0])] * 2
    assert [r["record"] for r in table[:2]] == [0, 1]
    assert [r["label"] for r in table] == dataset.labels.tolist()
    from PIL import Image
    sizes = [Image.open(dataset.images / n).size for n in dataset.names]
    not_square = next(i for i, size in enumerate(sizes) if size[0] != size[1])
    for i in (0, not_square, NUM_IMAGES - 1):      # the first, a non-square one, the padded last batch
        npz = tmp_path / f"run{i}.npz"
        status, _, err = _cli(capsys, "run", NET, "--backend", "reference", "--image",
                              dataset.images / dataset.names[i], "--weights", dataset.weights,
                              "--image-size", SIZE, "--num-classes", CLASSES, "--out", npz)
        assert status == 0, err
        probs = np.load(npz)["output"].reshape(-1)
        order = np.argsort(-probs, kind="stable")[:3]
        assert table[i]["classes"] == order.tolist()
        assert_close(np.asarray(table[i]["probabilities"]), probs[order].astype(np.float32), "float32")


def test_predict_logits_and_image_folder_keys(dataset, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "logits.parquet"
    st.data.predict(NET, dataset.images, out, logits=True, backend="reference", max_images=10,
                    **_api_options(dataset))
    rows = pq.read_table(out).to_pylist()
    assert [r["path"] for r in rows] == [str(dataset.images / n) for n in dataset.names[:10]]
    assert all(r["record"] is None and r["label"] is None for r in rows)
    logits = np.asarray([r["logits"] for r in rows])
    assert logits.shape == (10, CLASSES)
    assert (logits.argmax(1) == dataset.labels[:10]).all()


def test_ctrl_c_stops_cleanly_with_results_so_far(dataset, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "partial.parquet"
    batches = []

    def interrupt_after_two(tally):
        batches.append(tally.count)
        if len(batches) == 2:
            raise KeyboardInterrupt

    summary = st.data.predict(NET, dataset.shards, out, backend="reference", on_batch=interrupt_after_two,
                              **_api_options(dataset))
    assert summary.interrupted and summary.count == 2 * BATCH
    assert summary.top1_hits == 2 * BATCH
    rows = pq.read_table(out).to_pylist()     # the Parquet file is closed and readable
    assert len(rows) == 2 * BATCH
    assert "interrupted" in summary.format()


def test_corrupted_record_names_shard_and_offset(dataset, tmp_path, capsys):
    folder = tmp_path / "corrupt"
    folder.mkdir()
    shard = folder / "validation-00000-of-00001"
    data = bytearray(dataset.shard_files[0].read_bytes())
    offsets = dataset.offsets[str(dataset.shard_files[0])]
    data[offsets[3] + 12 + 40] ^= 0xFF      # a byte inside record 3's data
    shard.write_bytes(bytes(data))
    status, out, err = _cli(capsys, "eval", NET, "--data", folder, "--backend", "reference",
                            *dataset.common_args())
    assert status == 2 and "Traceback" not in err
    assert err.startswith("slimtriton eval: error: ")
    assert f"{shard}: damaged TFRecord record at byte offset {offsets[3]}" in err
    assert "crc32c" in err
    status, out, err = _cli(capsys, "eval", NET, "--data", folder, "--backend", "reference",
                            "--skip-bad", *dataset.common_args())
    assert status == 0, err
    n = len(offsets)
    assert f"top-1 100.00% ({n - 1}/{n - 1})" in out
    assert "damaged records skipped: 1" in out and f"at byte offset {offsets[3]}" in out


def test_unknown_image_format_is_one_clear_error(dataset, tmp_path, capsys):
    from PIL import Image
    import io
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, "GIF")
    good = (dataset.images / dataset.names[0]).read_bytes()
    folder = tmp_path / "gif"
    folder.mkdir()
    shard = folder / "x.tfrecord"
    offsets = write_tfrecord(shard, [imagenet_example(good, 1), imagenet_example(buf.getvalue(), 2, b"GIF")])
    status, _, err = _cli(capsys, "eval", NET, "--data", shard, "--backend", "reference",
                          *dataset.common_args())
    assert status == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert f"{shard} record 1 (byte offset {offsets[1]}): unknown image format 'GIF'" in err
    write_tfrecord(shard, [imagenet_example(buf.getvalue(), 2, b"JPEG")])   # lying format field
    status, _, err = _cli(capsys, "eval", NET, "--data", shard, "--backend", "reference",
                          *dataset.common_args())
    assert status == 2 and "unknown image format (the bytes start 47 49 46" in err


def test_predict_facenet_embeddings_equal_run(dataset, tmp_path, capsys):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "faces.parquet"
    summary = st.data.predict("inception_resnet_v1", dataset.images, out, backend="reference", image_size=75,
                              batch=2, max_images=2, preprocessing="inception", workers=0, progress=False)
    assert summary.kind == "embedding" and summary.count == 2
    rows = pq.read_table(out).to_pylist()
    assert [len(r["embedding"]) for r in rows] == [128] * 2 and "classes" not in rows[0]
    npz = tmp_path / "run.npz"
    status, _, err = _cli(capsys, "run", "inception_resnet_v1", "--backend", "reference", "--image",
                          dataset.images / dataset.names[1], "--image-size", 75, "--preprocessing",
                          "inception", "--out", npz)
    assert status == 0, err
    assert_close(np.asarray(rows[1]["embedding"]), np.load(npz)["output"].reshape(-1).astype(np.float32), "float32")


@pytest.mark.parametrize("flag, value", [("--batch", 0), ("--max-images", 0), ("--workers", -1), ("--top-k", 0)])
def test_bad_flag_values_name_the_flag(dataset, tmp_path, capsys, flag, value):
    status, _, err = _cli(capsys, "predict", NET, "--data", dataset.shards, "-o", tmp_path / "x.parquet",
                          "--backend", "reference", flag, value)
    assert status == 2 and "Traceback" not in err
    assert err.startswith(f"slimtriton predict: error: {flag} must be >= ")


def test_a_missing_optional_dependency_is_one_line_naming_the_extra(dataset, tmp_path, capsys, monkeypatch):
    """No pyarrow: predict says which extra to install (exit status 2), no ImportError traceback."""
    import sys
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` now raises ModuleNotFoundError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    status, _, err = _cli(capsys, "predict", NET, "--data", dataset.shards, "-o", tmp_path / "x.parquet",
                          "--backend", "reference", *dataset.common_args())
    assert status == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("slimtriton predict: error: writing Parquet needs pyarrow, which is not installed: "
                          "pip install 'slimtriton[data]' (or `make setup` in a checkout)"), err


def test_decoding_overlaps_the_model(dataset, monkeypatch):
    """Batch i+1 is decoded and preprocessed *while* the model runs batch i: preparing batch
    i+1 waits until the model has started batch i, and the model's call on batch i waits until
    batch i+1 is prepared. Without concurrency (preparation in the main thread, before or after
    the model call) one of the two waits times out."""
    import threading
    from slimtriton.data import pipeline
    batches = -(-NUM_IMAGES // BATCH)
    model_started = [threading.Event() for _ in range(batches)]
    prepared = [threading.Event() for _ in range(batches)]
    prepare, model_call = pipeline.prepare_batch, pipeline.Model.__call__
    calls = {"prepare": 0, "model": 0}
    lock = threading.Lock()

    def concurrent_prepare(items, size, name):
        with lock:
            index = calls["prepare"]
            calls["prepare"] += 1
        if index > 0:
            assert model_started[index - 1].wait(timeout=30), f"batch {index} was prepared before the model ran {index - 1}"
        out = prepare(items, size, name)
        prepared[index].set()
        return out

    def waiting_call(self, x):
        index = calls["model"]
        calls["model"] += 1
        model_started[index].set()
        if index + 1 < batches:
            assert prepared[index + 1].wait(timeout=30), f"batch {index + 1} was not prepared while the model ran {index}"
        return model_call(self, x)

    monkeypatch.setattr(pipeline, "prepare_batch", concurrent_prepare)
    monkeypatch.setattr(pipeline.Model, "__call__", waiting_call)
    summary = st.data.evaluate(NET, dataset.shards, backend="reference", workers=2, worker_kind="thread",
                               **_api_options(dataset))
    assert (summary.count, summary.top1_hits, calls["model"]) == (NUM_IMAGES, NUM_IMAGES, batches)
