"""TFRecord framing and tf.train.Example parsing against the tests' own writer (records.py)."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slimtriton.data.tfrecord import DamagedRecordError, ShardStats, parse_example, read_records

from .records import example, frame, write_tfrecord


@given(st.lists(st.binary(max_size=300), max_size=8))
def test_records_round_trip(tmp_path_factory, payloads):
    path = tmp_path_factory.mktemp("rt") / "x.tfrecord"
    offsets = write_tfrecord(path, payloads)
    records = list(read_records(path))
    assert [r.data for r in records] == payloads
    assert [r.offset for r in records] == offsets
    assert [r.index for r in records] == list(range(len(payloads)))


@given(st.dictionaries(st.text(min_size=1, max_size=12),
                       st.one_of(st.binary(max_size=40),
                                 st.lists(st.integers(-2**63, 2**63 - 1), min_size=1, max_size=5),
                                 st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=5)),
                       max_size=5))
def test_example_round_trip(features):
    parsed = parse_example(example(features), "test")
    expected = {k: v if isinstance(v, list) else [v] for k, v in features.items()}
    assert parsed == expected


def _three(tmp_path):
    path = tmp_path / "s-00000-of-00001"
    offsets = write_tfrecord(path, [b"a" * 10, b"b" * 20, b"c" * 30])
    return path, offsets, bytearray(path.read_bytes())


def test_bad_data_crc_names_shard_and_offset_or_is_skipped(tmp_path):
    path, offsets, data = _three(tmp_path)
    data[offsets[1] + 12 + 5] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedRecordError, match=rf"{path}: damaged TFRecord record at byte offset "
                                                 rf"{offsets[1]}: the data's crc32c"):
        list(read_records(path))
    stats = ShardStats()
    records = list(read_records(path, skip_bad=True, stats=stats))
    assert [r.data for r in records] == [b"a" * 10, b"c" * 30] and [r.index for r in records] == [0, 2]
    assert (stats.records, stats.damaged, stats.damaged_at[0][1]) == (2, 1, offsets[1])


def test_bad_length_crc_ends_the_shard(tmp_path):
    path, offsets, data = _three(tmp_path)
    data[offsets[1]] ^= 1        # the length itself: the framing after it cannot be trusted
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedRecordError, match=f"byte offset {offsets[1]}: the length's crc32c"):
        list(read_records(path))
    stats = ShardStats()
    assert [r.data for r in read_records(path, skip_bad=True, stats=stats)] == [b"a" * 10]
    assert stats.damaged == 1


@pytest.mark.parametrize("cut", [3, 12 + 15, 12 + 30 + 2])
def test_truncated_file(tmp_path, cut):
    path, offsets, data = _three(tmp_path)
    path.write_bytes(bytes(data[:offsets[2] + cut]))
    with pytest.raises(DamagedRecordError, match=f"byte offset {offsets[2]}: (truncated header|record of 30 bytes runs past)"):
        list(read_records(path))


def test_not_an_example(tmp_path):
    with pytest.raises(ValueError, match="rec 7: not a tf.train.Example"):
        parse_example(b"\x0a\x05ab", "rec 7")
    assert frame(b"")[:8] == struct.pack("<Q", 0)
