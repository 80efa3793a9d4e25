"""Where images come from: TFRecord shards of `tf.train.Example` in TF-Slim's ImageNet schema,
or a folder of image files with an optional ground-truth labels file.

The work is split into *units* that can be read independently (one TFRecord shard, or a chunk
of image files), so that Ray Data can read them in parallel; `read_unit` yields the `Item`s of
one unit. `decode_image` turns an item's encoded bytes into an HWC uint8 RGB array.

TF-Slim's schema (`datasets/imagenet.py`, `build_imagenet_data.py`): `image/encoded` (bytes),
`image/format` (bytes, b'JPEG' / b'png'), `image/class/label` (int64; 1..1000 with 0 the
background class in TF-Slim's ImageNet). An image folder's labels file has one line per image,
`NAME LABEL` (a path relative to the folder; whitespace or a comma between), or one integer per
line giving the labels of the images in sorted path order (ImageNet's validation ground truth).
"""
from __future__ import annotations

import glob
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from .tfrecord import ShardStats, parse_example, read_records

__all__ = ["Item", "Unit", "list_units", "read_unit", "decode_image", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SHARD_NAME = re.compile(r".*(-\d{5}-of-\d{5}|\.tfrecords?|\.record)$")
IMAGES_PER_UNIT = 256
# image/format values TF-Slim's decoder accepts for the two formats we decode, and their magic bytes.
FORMATS = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png"}
MAGIC = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n"}


@dataclass(frozen=True)
class Item:
    path: str                 # the image file, or the TFRecord shard
    record: int | None        # index of the record in its shard (None for image files)
    offset: int | None        # byte offset of the record in its shard
    encoded: bytes
    label: int | None         # ground truth as stored (None: unknown)
    format: str | None        # image/format as stored (None for image files: sniffed)

    @property
    def where(self) -> str:
        return self.path if self.record is None else \
            f"{self.path} record {self.record} (byte offset {self.offset})"


@dataclass(frozen=True)
class Unit:
    """One independently readable piece: a TFRecord shard, or image files with their labels."""
    kind: str                 # "tfrecord" or "images"
    path: str                 # the shard, or the image folder
    files: tuple = ()         # (relative name, label or None) for "images"


def list_units(data, image_labels=None) -> list[Unit]:
    """The units of `data`: a TFRecord file, a glob of them, a folder of shards (TF-Slim's
    `NAME-00000-of-00128` names, or *.tfrecord / *.record), or a folder of images."""
    text = str(data)
    if any(c in text for c in "*?["):
        shards = sorted(p for p in glob.glob(text) if Path(p).is_file())
        if not shards:
            raise FileNotFoundError(f"--data {text}: the pattern matches no file")
        return [Unit("tfrecord", p) for p in shards]
    path = Path(text)
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise ValueError(f"--data {path} is one image; give the folder it is in "
                             f"(or use `slimtriton run --image`)")
        return [Unit("tfrecord", str(path))]
    if not path.is_dir():
        raise FileNotFoundError(f"--data {path} does not exist")
    shards = sorted(str(p) for p in path.iterdir() if p.is_file() and SHARD_NAME.fullmatch(p.name))
    if shards:
        if image_labels is not None:
            raise ValueError(f"--image-labels is for a folder of images; {path} holds TFRecord "
                             f"shards, whose records carry their labels")
        return [Unit("tfrecord", p) for p in shards]
    images = sorted(str(p.relative_to(path)) for p in path.rglob("*")
                    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise FileNotFoundError(f"--data {path}: no TFRecord shards (NAME-00000-of-00010, "
                                f"*.tfrecord, *.record) and no images ({', '.join(IMAGE_SUFFIXES)})")
    labels = _image_labels(path, images, image_labels) if image_labels is not None else {}
    files = [(name, labels.get(name)) for name in images]
    return [Unit("images", str(path), tuple(files[i:i + IMAGES_PER_UNIT]))
            for i in range(0, len(files), IMAGES_PER_UNIT)]


def _image_labels(folder: Path, images: list[str], labels_file) -> dict:
    lines = [line.strip() for line in Path(labels_file).read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if all(re.fullmatch(r"-?\d+", line) for line in lines):
        if len(lines) != len(images):
            raise ValueError(f"--image-labels {labels_file}: {len(lines)} labels (one integer per "
                             f"line, in sorted path order) for the {len(images)} images in {folder}")
        return {name: int(line) for name, line in zip(images, lines)}
    labels = {}
    for number, line in enumerate(lines, 1):
        match = re.fullmatch(r"(.+?)[\s,]+(-?\d+)", line)
        if not match:
            raise ValueError(f"--image-labels {labels_file} line {number}: expected `NAME LABEL`, "
                             f"got {line!r}")
        labels[match.group(1)] = int(match.group(2))
    missing = [name for name in images if name not in labels]
    if missing:
        raise ValueError(f"--image-labels {labels_file}: no label for {len(missing)} of the "
                         f"{len(images)} images in {folder}, e.g. {missing[:3]}")
    return labels


def read_unit(unit: Unit, skip_bad: bool = False, stats: ShardStats | None = None) -> Iterator[Item]:
    """The items of one unit, in order; damaged records raise or are counted in `stats`."""
    if unit.kind == "images":
        for name, label in unit.files:
            path = Path(unit.path) / name
            yield Item(str(path), None, None, path.read_bytes(), label, None)
        return
    for rec in read_records(unit.path, skip_bad=skip_bad, stats=stats):
        where = f"{rec.shard} record {rec.index} (byte offset {rec.offset})"
        features = parse_example(rec.data, where)
        encoded = features.get("image/encoded")
        if not encoded or not isinstance(encoded[0], bytes):
            raise ValueError(f"{where}: the tf.train.Example has no image/encoded bytes "
                             f"(features: {sorted(features)})")
        label = features.get("image/class/label")
        fmt = features.get("image/format")
        yield Item(rec.shard, rec.index, rec.offset, encoded[0],
                   int(label[0]) if label else None,
                   fmt[0].decode("ascii", "replace") if fmt else None)


def sniff_format(encoded: bytes) -> str | None:
    for name, magic in MAGIC.items():
        if encoded.startswith(magic):
            return name
    return None


def decode_image(item: Item) -> np.ndarray:
    """The item's image as an HWC uint8 RGB array; an unknown or mismatched format is one error
    naming the image (or the shard, record and byte offset)."""
    stored = None if item.format is None else item.format.strip().lower()
    sniffed = sniff_format(item.encoded)
    if stored is not None and stored not in FORMATS:
        raise ValueError(f"{item.where}: unknown image format {item.format!r} in image/format; "
                         f"slimtriton decodes {sorted(set(FORMATS.values()))}")
    if sniffed is None:
        head = item.encoded[:8].hex(" ")
        raise ValueError(f"{item.where}: unknown image format (the bytes start {head}: neither "
                         f"JPEG nor PNG){'' if stored is None else f'; image/format says {item.format!r}'}")
    if stored is not None and FORMATS[stored] != sniffed:
        raise ValueError(f"{item.where}: image/format says {item.format!r} but the bytes are {sniffed}")
    try:
        with Image.open(io.BytesIO(item.encoded)) as img:
            return np.asarray(img.convert("RGB"))
    except OSError as err:
        raise ValueError(f"{item.where}: cannot decode the {sniffed} image: {err}") from None
