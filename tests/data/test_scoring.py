"""`score_rows` (hits and predict's top-k) against `slimtriton.preprocessing.top_k`, the
per-image top-k that `slimtriton run` prints; and the data-path errors of `list_units`."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from slimtriton.data.pipeline import score_rows
from slimtriton.data.sources import list_units
from slimtriton.preprocessing import top_k

from ..helpers import assert_close


@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(5, 12)),
                  elements=st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, -1.0])),   # many ties
       st.integers(0, 11), st.booleans())
def test_score_rows_matches_top_k(scores, label, logits):
    n, classes = scores.shape
    label = label % classes
    columns = score_rows(scores, [label] * n, kind="probabilities", needs_softmax=logits,
                         labels_offset=0, top_k=5, where=["x"] * n)
    for i in range(n):
        row = scores[i].astype(np.float64)
        if logits:
            row = np.exp(row - row.max())
            row /= row.sum()
        expected = top_k(row, 5, background_class=False)
        assert columns["classes"][i].tolist() == [p.index for p in expected]
        assert_close(columns["probabilities"][i], np.float32([p.score for p in expected]), "float32")
        assert columns["hit1"][i] == int(expected[0].index == label)
        assert columns["hit5"][i] == int(label in [p.index for p in expected])


def test_unlabelled_rows_are_not_scored():
    columns = score_rows(np.eye(3, 6, dtype=np.float32), [None, -1, 2], kind="probabilities",
                         needs_softmax=False, labels_offset=0, top_k=None, where=["a", "b", "c"])
    assert columns["hit1"].tolist() == [-1, -1, 1] and "classes" not in columns


def test_data_path_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_units(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="matches no file"):
        list_units(str(tmp_path / "validation-*"))
    with pytest.raises(FileNotFoundError, match="no TFRecord shards .* and no images"):
        list_units(tmp_path)
    (tmp_path / "validation-00000-of-00001").write_bytes(b"")
    with pytest.raises(ValueError, match="--image-labels is for a folder of images"):
        list_units(tmp_path, image_labels=tmp_path / "labels.txt")


def test_image_folder_png_and_nested_with_labels_errors(dataset, tmp_path):
    import slimtriton as st_
    from PIL import Image
    from .conftest import BATCH, CLASSES, NET, SIZE
    folder = tmp_path / "pngs"
    (folder / "sub").mkdir(parents=True)
    names = []
    for i, name in enumerate(dataset.names[:5]):
        rel = f"sub/{name[:-4]}.png" if i % 2 else f"{name[:-4]}.png"
        Image.open(dataset.images / name).save(folder / rel)
        names.append(rel)
    labels = tmp_path / "labels.csv"
    labels.write_text("".join(f"{n},{l}\n" for n, l in zip(names, dataset.labels)))
    options = dict(weights=str(dataset.weights), backend="reference", image_size=SIZE, num_classes=CLASSES,
                   batch=BATCH, progress=False, workers=0, image_labels=labels)
    summary = st_.data.evaluate(NET, folder, **options)
    # PNG is lossless: the pixels are the decoded JPEG's, so the labels still hold.
    assert (summary.count, summary.top1_hits) == (5, 5)
    labels.write_text(f"{names[0]} 1\n")
    with pytest.raises(ValueError, match="no label for 4 of the 5 images"):
        st_.data.evaluate(NET, folder, **options)
    labels.write_text("1\n2\n")
    with pytest.raises(ValueError, match="2 labels .* for the 5 images"):
        st_.data.evaluate(NET, folder, **options)
