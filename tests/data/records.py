"""A small TFRecord / tf.train.Example WRITER for the tests, written from the format's
definition (independently of slimtriton.data's reader, which must read what this writes)."""
from __future__ import annotations

import struct

import google_crc32c


def masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """One TFRecord record: length, masked crc of the length, data, masked crc of the data."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))


def write_tfrecord(path, records) -> list[int]:
    """Write the records; returns each record's byte offset."""
    offsets, blob = [], b""
    for data in records:
        offsets.append(len(blob))
        blob += frame(data)
    with open(path, "wb") as f:
        f.write(blob)
    return offsets


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1     # negative int64s are ten-byte two's complement varints
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _feature(values) -> bytes:
    values = values if isinstance(values, (list, tuple)) else [values]
    if all(isinstance(v, bytes) for v in values):          # BytesList
        return _field(1, b"".join(_field(1, v) for v in values))
    if all(isinstance(v, int) for v in values):            # Int64List, packed
        return _field(3, _field(1, b"".join(_varint(v) for v in values)))
    return _field(2, _field(1, struct.pack(f"<{len(values)}f", *values)))   # FloatList, packed


def example(features: dict) -> bytes:
    """A serialized tf.train.Example of {key: bytes | int | float | list of one kind}."""
    entries = b"".join(_field(1, _field(1, key.encode()) + _field(2, _feature(value)))
                       for key, value in features.items())
    return _field(1, entries)


def imagenet_example(encoded: bytes, label: int, fmt: bytes = b"JPEG") -> bytes:
    """TF-Slim's ImageNet schema (build_imagenet_data.py), with a few of its other fields."""
    return example({"image/encoded": encoded, "image/format": fmt, "image/class/label": label,
                    "image/height": 32, "image/width": 32, "image/class/text": b"a class"})
