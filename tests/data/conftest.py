"""The acceptance data set, made once per test session: a few dozen small JPEGs (written as
TFRecord shards in TF-Slim's schema and as an image folder), labelled with the reference
backend's own top-1 predictions of a small net with fixed random weights."""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from .records import imagenet_example, write_tfrecord

NET, SIZE, CLASSES, BATCH = "mobilenet_v1_025", 32, 10, 8
NUM_IMAGES, NUM_SHARDS = 36, 3
MIN_MARGIN = 1e-3     # images whose top-1 and top-2 probabilities are closer are not kept


@dataclass
class DataSet:
    root: Path
    shards: Path             # folder of TF-Slim-named shards
    shard_files: list        # their paths
    offsets: dict            # shard path -> byte offset of each record
    images: Path             # the same JPEGs as files
    names: list              # image file names, in data order (shard by shard)
    weights: Path            # .npz
    labels: np.ndarray       # reference top-1 of each image
    top5: np.ndarray         # reference top-5 of each image [N, 5]
    probs: np.ndarray        # reference predictions [N, CLASSES]

    def common_args(self):
        return ["--weights", self.weights, "--image-size", SIZE, "--num-classes", CLASSES,
                "--batch", BATCH, "--no-progress"]


def _weights(g, rng):
    """He-normal convolutions, unit BN scales, small BN shifts/statistics: the signal survives
    the depth (TF-Slim's initializers at this size give every image the same class)."""
    weights = {}
    for name, spec in g.variables.items():
        shape = tuple(spec.shape)
        if name.endswith("weights"):
            fan_in = int(np.prod(shape[:-1])) if not name.endswith("depthwise_weights") else shape[0] * shape[1]
            weights[name] = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        elif name.endswith("gamma"):
            weights[name] = np.ones(shape)
        elif name.endswith("moving_variance"):
            weights[name] = rng.uniform(0.5, 1.5, shape)
        else:
            weights[name] = rng.standard_normal(shape) * 0.1
    return {k: v.astype(np.float32) for k, v in weights.items()}


def _jpegs(rng, count):
    from PIL import Image
    out = []
    for i in range(count):
        coarse = rng.uniform(0, 255, (4, 4, 3)).astype(np.uint8)
        w, h = (32, 32) if i % 3 else (40, 36)     # some not square: the crop/resize path
        img = Image.fromarray(coarse).resize((w, h), Image.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> DataSet:
    import slimtriton as st
    from slimtriton.nets.build import build_net
    from slimtriton.preprocessing import preprocess_for
    root = tmp_path_factory.mktemp("dataset")
    rng = np.random.default_rng(1234)
    jpegs = _jpegs(rng, NUM_IMAGES + 12)
    images = root / "images"
    images.mkdir()
    for i, data in enumerate(jpegs):
        (images / f"img{i:03d}.jpg").write_bytes(data)
    x = np.concatenate([preprocess_for(NET, images / f"img{i:03d}.jpg", SIZE, "inception") for i in range(len(jpegs))])
    g, ph, logits, end_points = build_net(NET, SIZE, len(jpegs), CLASSES)
    weights = _weights(g, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Center the random logits layer on these images' features, so that the classes vary.
        features = st.Session(g, weights, backend="reference").run(end_points["AvgPool_1a"], {ph: x})
        features = features.reshape(len(jpegs), -1).astype(np.float64)
        key = [k for k in weights if k.endswith("Logits/Conv2d_1c_1x1/weights")][0]
        w = rng.standard_normal(weights[key].shape[2:]) / (features.std(0)[:, None] + 1e-6)
        weights[key] = (w * 3 / np.sqrt(w.shape[0])).reshape(weights[key].shape).astype(np.float32)
        weights[key.replace("weights", "biases")] = (-(features.mean(0) @ weights[key].reshape(w.shape))).astype(np.float32)
        probs = st.Session(g, weights, backend="reference").run(end_points["Predictions"], {ph: x})
        probs = probs.reshape(len(jpegs), CLASSES)
    ordered = np.sort(probs, axis=1)
    keep = np.flatnonzero(ordered[:, -1] - ordered[:, -2] > MIN_MARGIN)[:NUM_IMAGES]
    assert len(keep) == NUM_IMAGES, "too few images with a clear top-1"
    for i in range(len(jpegs)):
        if i not in keep:
            (images / f"img{i:03d}.jpg").unlink()
    names = [f"img{i:03d}.jpg" for i in keep]
    labels = probs[keep].argmax(1)
    assert len(set(labels.tolist())) >= 4, f"labels do not vary: {labels}"
    weights_path = root / "weights.npz"
    st.save_weights(weights, weights_path)
    shards = root / "shards"
    shards.mkdir()
    shard_files, offsets = [], {}
    per_shard = np.array_split(np.arange(NUM_IMAGES), NUM_SHARDS)
    for s, idx in enumerate(per_shard):
        path = shards / f"validation-{s:05d}-of-{NUM_SHARDS:05d}"
        offsets[str(path)] = write_tfrecord(path, [imagenet_example(jpegs[keep[i]], int(labels[i])) for i in idx])
        shard_files.append(path)
    (shards / "labels.txt").write_text("".join(f"{c}:class {c}\n" for c in range(CLASSES)))
    top5 = np.argsort(-probs[keep], axis=1, kind="stable")[:, :5]
    return DataSet(root, shards, shard_files, offsets, images, names, weights_path, labels, top5, probs[keep])
