"""TFRecord files and `tf.train.Example` protos, read without TensorFlow.

A TFRecord file is a sequence of records, each framed as

    uint64 length | uint32 masked_crc32c(length bytes) | data[length] | uint32 masked_crc32c(data)

(little endian; mask(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8 mod 2**32, the same mask
as TensorFlow checkpoints, so the crc helpers of `slimtriton.weights.tf_table` are reused).
A record whose length or data fails its crc, or that runs past the end of the file, is a
`DamagedRecordError` naming the shard and the byte offset where the record starts. With
`skip_bad=True` the reader counts a damaged record and moves on when it can: a bad data crc
skips that record; a bad length crc or a truncated record ends the shard (the framing after it
cannot be trusted), counted as one damaged record.

`tf.train.Example` is `Example{features: Features{feature: map<string, Feature>}}`, a Feature
being one of `bytes_list` (1), `float_list` (2), `int64_list` (3), each a repeated `value` (1),
packed or not. `parse_example` returns {key: list of bytes / floats / ints}.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..weights.tf_table import _crc32c, _mask, _proto_fields, _signed64, _varint  # the TF protobuf readers

__all__ = ["DamagedRecordError", "Record", "ShardStats", "read_records", "parse_example"]

_HEADER = struct.Struct("<QI")   # length, masked crc of the length
_FOOTER = struct.Struct("<I")    # masked crc of the data


class DamagedRecordError(ValueError):
    """A TFRecord record that fails its framing or crc check: names the shard and byte offset."""

    def __init__(self, shard, offset: int, reason: str):
        self.shard, self.offset, self.reason = str(shard), offset, reason
        super().__init__(f"{shard}: damaged TFRecord record at byte offset {offset}: {reason} "
                         f"(pass --skip-bad / skip_bad=True to count and skip damaged records)")


@dataclass(frozen=True)
class Record:
    shard: str       # the file it came from
    index: int       # its position among the shard's records (damaged ones included), from 0
    offset: int      # byte offset of its header in the shard
    data: bytes


@dataclass
class ShardStats:
    """What reading one shard found: records read and damaged records skipped (with where)."""
    records: int = 0
    damaged: int = 0
    damaged_at: list = None

    def __post_init__(self):
        self.damaged_at = [] if self.damaged_at is None else self.damaged_at


def read_records(path, skip_bad: bool = False, stats: ShardStats | None = None) -> Iterator[Record]:
    """Yield the records of one TFRecord file, crc-checked (see the module docstring). The
    file is streamed (an ImageNet shard is ~140 MB): one record in memory at a time."""
    path = Path(path)
    stats = ShardStats() if stats is None else stats
    size = path.stat().st_size
    with open(path, "rb") as f:
        pos, index = 0, 0
        while pos < size:
            start = pos
            try:
                header = f.read(_HEADER.size)
                if len(header) < _HEADER.size:
                    raise DamagedRecordError(path, start, f"truncated header ({len(header)} of "
                                                          f"{_HEADER.size} bytes before the end of the file)")
                length, length_crc = _HEADER.unpack(header)
                if _mask(_crc32c(header[:8])) != length_crc:
                    raise DamagedRecordError(path, start, "the length's crc32c does not match")
                if start + _HEADER.size + length + _FOOTER.size > size:
                    raise DamagedRecordError(path, start, f"record of {length} bytes runs past the end "
                                                          f"of the {size}-byte file")
                payload = f.read(length)
                (data_crc,) = _FOOTER.unpack(f.read(_FOOTER.size))
                pos = start + _HEADER.size + length + _FOOTER.size
                if _mask(_crc32c(payload)) != data_crc:
                    raise DamagedRecordError(path, start, f"the data's crc32c does not match "
                                                          f"({length}-byte record)")
            except DamagedRecordError as err:
                if not skip_bad:
                    raise
                stats.damaged += 1
                stats.damaged_at.append((str(path), start, err.reason))
                if pos == start:  # the framing itself is broken: nothing after it can be trusted
                    return
                index += 1
                continue
            stats.records += 1
            yield Record(str(path), index, start, payload)
            index += 1


def parse_example(buf: bytes, where: str) -> dict:
    """A serialized `tf.train.Example` -> {feature key: list of values} (bytes, float or int)."""
    features = {}
    try:
        for field, wire, example_field in _proto_fields(buf, where):
            if field != 1 or wire != 2:   # Example.features
                continue
            for f_field, f_wire, entry in _proto_fields(example_field, where):
                if f_field != 1 or f_wire != 2:   # Features.feature (a map entry)
                    continue
                key, value = None, []
                for e_field, e_wire, item in _proto_fields(entry, where):
                    if e_field == 1 and e_wire == 2:
                        key = bytes(item).decode("utf-8")
                    elif e_field == 2 and e_wire == 2:
                        value = _parse_feature(item, where)
                if key is None:
                    raise ValueError(f"{where}: a tf.train.Example feature without a key")
                features[key] = value
    except ValueError as err:
        raise ValueError(f"{where}: not a tf.train.Example proto ({err})") from None
    return features


def _parse_feature(buf: bytes, where: str) -> list:
    for kind, wire, lst in _proto_fields(buf, where):
        if wire != 2:
            continue
        values = []
        for v_field, v_wire, value in _proto_fields(lst, where):
            if v_field != 1:
                continue
            if kind == 1:                       # BytesList
                values.append(bytes(value))
            elif kind == 2 and v_wire == 2:     # FloatList, packed
                values.extend(struct.unpack(f"<{len(value) // 4}f", bytes(value)))
            elif kind == 2 and v_wire == 5:     # FloatList, one fixed32
                values.append(struct.unpack("<f", struct.pack("<I", value))[0])
            elif kind == 3 and v_wire == 2:     # Int64List, packed varints
                values.extend(_signed64(v) for v in _packed_varints(bytes(value), where))
            elif kind == 3 and v_wire == 0:     # Int64List, one varint
                values.append(_signed64(value))
        return values
    return []


def _packed_varints(buf: bytes, where: str) -> list:
    out, pos = [], 0
    while pos < len(buf):
        value, pos = _varint(buf, pos, len(buf), "a packed int64", where)
        out.append(value)
    return out
