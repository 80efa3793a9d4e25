"""TensorFlow V1 checkpoints (`tf.train.Saver(write_version=V1)`: the published TF-Slim checkpoints
such as `resnet_v1_50.ckpt`), read without TensorFlow. The table and protobuf code (`tf_table`) is
shared with the V2 reader in `tf_checkpoint`; call `tf_checkpoint.read_checkpoint`, which dispatches here.

Format (facts from TensorFlow's saved_tensor_slice.proto, tensor_slice_writer.{h,cc},
tensor_slice_reader.cc, saved_tensor_slice_util.{h,cc}, ordered_code.cc, tensor.proto,
tensor_slice.proto):

* The checkpoint is one LevelDB-format table (`X.ckpt`), or one per shard (`X.ckpt-00000-of-0000N`)
  when saved with `sharded=True`. TensorSliceWriter builds it uncompressed; the shared table reader
  also decodes snappy blocks.
* Every value is a `SavedTensorSlices` (meta = 1, data = 2). The empty key holds the meta,
  `SavedTensorSliceMeta` (tensor = 1 repeated `SavedSliceMeta` (name = 1, shape = 2
  TensorShapeProto, type = 3 DataType, slice = 4 repeated TensorSliceProto), versions = 2
  VersionDef (producer = 1, min_consumer = 2, bad_consumers = 3)).
* Every other key holds one slice: `EncodeTensorNameSlice` = OrderedCode NumIncreasing(0),
  String(name), NumIncreasing(rank), then per dimension SignedNumIncreasing(start) and
  SignedNumIncreasing(length), a full dimension being start 0, length -1. Its value's `SavedSlice`
  (name = 1, slice = 2, data = 3) carries the values in a `TensorProto` whose dtype and shape are
  left unset: float_val = 5, double_val = 6, int_val = 7 (int32, int16, int8, uint8, uint16 and
  the quantized types), string_val = 8, scomplex_val = 9, int64_val = 10, bool_val = 11,
  dcomplex_val = 12, half_val = 13 (the raw uint16 bits, also for bfloat16), uint32_val = 16,
  uint64_val = 17 (repeated numeric fields packed or not), or tensor_content = 4 (raw
  little-endian bytes).
* `TensorSliceProto` has one `Extent` (start = 1, length = 2 in a oneof) per dimension; an empty
  Extent (no length) is the whole dimension.
* OrderedCode: NumIncreasing is a length byte then the big-endian value without leading zeros;
  String escapes 0x00 as 00 ff and 0xff as ff 00 and ends with 00 01; SignedNumIncreasing stores the
  two's-complement value sign-extended to L bytes (L = 1..10) with its first L bits XORed to 1, so
  that the run of leading bits equal to the sign bit counts the bytes.

A tensor is assembled from its slices: each slice must lie inside the shape, slices may not
overlap, and together they must cover the tensor. The block crc32c of the table is the only
checksum V1 has; every other fault (truncation, a slice out of range, missing or unlisted slice
data, a wrong value count, bad keys) raises `CheckpointError` naming the file and the tensor.
DT_BFLOAT16 comes back as float32 (exact), strings as object arrays of bytes, as in V2.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np

from .tf_table import (
    _DTYPE_NAMES, _DTYPES, DT_BFLOAT16, DT_RESOURCE, DT_STRING, DT_VARIANT, CheckpointEntry,
    CheckpointError, _parse_shape, _proto_fields, _signed64, _table_items, is_non_model_variable,
)

__all__ = ["read_checkpoint_v1", "list_checkpoint_v1", "decode_slice_key"]

TF_CHECKPOINT_VERSION = 1           # core/public/version.h: what this reader implements
TF_CHECKPOINT_VERSION_MIN_PRODUCER = 0
FULL = -1                           # TensorSlice::kFullExtent
_KIND = "V1 checkpoint"

# DataType enum -> (TensorProto repeated field, how its elements are encoded).
_VALUE_FIELDS = {
    1: (5, "f4"), 2: (6, "f8"), 3: (7, "varint"), 4: (7, "varint"), 5: (7, "varint"),
    6: (7, "varint"), 7: (8, "bytes"), 8: (9, "f4"), 9: (10, "varint"), 10: (11, "varint"),
    11: (7, "varint"), 12: (7, "varint"), 13: (7, "varint"), 14: (13, "varint"),
    15: (7, "varint"), 16: (7, "varint"), 17: (7, "varint"), 18: (12, "f8"), 19: (13, "varint"),
    22: (16, "varint"), 23: (17, "varint"),
}
_TENSOR_CONTENT = 4
_FIXED_WIRE = {"f4": 5, "f8": 1}


# ---------------------------------------------------------------------------------------------
# OrderedCode (keys)
# ---------------------------------------------------------------------------------------------

def _read_num_increasing(key: bytes, pos: int, where: str) -> tuple[int, int]:
    if pos >= len(key):
        raise CheckpointError(f"{where}: key ends where a number was expected")
    length = key[pos]
    if length > 8 or pos + 1 + length > len(key):
        raise CheckpointError(f"{where}: key holds a {length}-byte number past its end or over "
                              "8 bytes")
    return int.from_bytes(key[pos + 1:pos + 1 + length], "big"), pos + 1 + length


def _read_string(key: bytes, pos: int, where: str) -> tuple[bytes, int]:
    out = bytearray()
    while pos + 1 < len(key):
        byte = key[pos]
        if byte == 0x00:
            follower = key[pos + 1]
            if follower == 0x01:
                return bytes(out), pos + 2
            if follower != 0xFF:
                raise CheckpointError(f"{where}: bad escape 00 {follower:02x} in the key's name")
            out.append(0x00)
            pos += 2
        elif byte == 0xFF:
            if key[pos + 1] != 0x00:
                raise CheckpointError(f"{where}: bad escape ff {key[pos + 1]:02x} in the key's name")
            out.append(0xFF)
            pos += 2
        else:
            out.append(byte)
            pos += 1
    raise CheckpointError(f"{where}: the key's name has no 00 01 terminator")


def _read_signed_num_increasing(key: bytes, pos: int, where: str) -> tuple[int, int]:
    if pos >= len(key):
        raise CheckpointError(f"{where}: key ends where a signed number was expected")
    sign_flip = 0x00 if key[pos] & 0x80 else 0xFF
    header = ((key[pos] ^ sign_flip) << 8) | ((key[pos + 1] ^ sign_flip) if pos + 1 < len(key)
                                               else 0)
    length = 0
    while length < 16 and header & (0x8000 >> length):
        length += 1
    if length > 10 or pos + length > len(key):
        raise CheckpointError(f"{where}: signed number of {length} bytes in the key is too long "
                              "or cut off")
    bits = 8 * length
    raw = int.from_bytes(key[pos:pos + length], "big") ^ (((1 << length) - 1) << (bits - length))
    value = raw - (1 << bits) if raw >> (bits - 1) else raw
    if not -(1 << 63) <= value < (1 << 63):
        raise CheckpointError(f"{where}: signed number in the key exceeds 64 bits")
    return value, pos + length


def decode_slice_key(key: bytes, where: str = "key") -> tuple[str, tuple]:
    """(tensor name, ((start, length), ...)) of an `EncodeTensorNameSlice` key; length -1 = full.

    Unlike TF's DecodeTensorNameSlice this accepts rank 0: the writer stores scalars (global_step)
    under such keys and TF's reader finds them by encoding, never decoding."""
    lead, pos = _read_num_increasing(key, 0, where)
    if lead != 0:
        raise CheckpointError(f"{where}: slice key starts with {lead}, not 0")
    name, pos = _read_string(key, pos, where)
    rank, pos = _read_num_increasing(key, pos, where)
    if rank > 64:
        raise CheckpointError(f"{where}: slice key claims rank {rank}")
    extents = []
    for _ in range(rank):
        start, pos = _read_signed_num_increasing(key, pos, where)
        length, pos = _read_signed_num_increasing(key, pos, where)
        extents.append((0, FULL) if length < 0 else (start, length))
    if pos != len(key):
        raise CheckpointError(f"{where}: {len(key) - pos} stray byte(s) after the slice in the key")
    try:
        return name.decode("utf-8"), tuple(extents)
    except UnicodeDecodeError:
        raise CheckpointError(f"{where}: tensor name {name!r} is not UTF-8") from None


# ---------------------------------------------------------------------------------------------
# Protos
# ---------------------------------------------------------------------------------------------

def _utf8(value, where: str) -> str:
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError(f"{where}: name {bytes(value)!r} is not UTF-8") from None


def _parse_slice(buf, where: str) -> tuple:
    """TensorSliceProto -> ((start, length), ...), length -1 for a whole dimension."""
    extents = []
    for field, wire, value in _proto_fields(buf, where):
        if field != 1 or wire != 2:
            continue
        start, length = 0, FULL
        for efield, ewire, evalue in _proto_fields(value, where):
            if efield == 1 and ewire == 0:
                start = _signed64(evalue)
            elif efield == 2 and ewire == 0:
                length = _signed64(evalue)
        if length == FULL and start == 0:
            extents.append((0, FULL))
        elif start < 0 or length <= 0:
            raise CheckpointError(f"{where}: extent {len(extents)} has start {start}, length "
                                  f"{length}; expected start >= 0 and length > 0")
        else:
            extents.append((start, length))
    return tuple(extents)


def _parse_meta(value, path: Path) -> tuple[list, tuple]:
    """SavedTensorSlices.meta -> ([(name, dtype enum, shape, [slice, ...])], versions)."""
    where = f"{path}: SavedTensorSliceMeta"
    meta = None
    for field, wire, val in _proto_fields(value, f"{path}: SavedTensorSlices (empty key)"):
        if field == 1 and wire == 2:
            meta = val
        elif field == 2:
            raise CheckpointError(f"{path}: the empty key holds slice data instead of the meta")
    if meta is None:
        raise CheckpointError(f"{path}: the empty key holds no SavedTensorSliceMeta")
    tensors, producer, min_consumer, bad_consumers = [], 0, 0, []
    for field, wire, val in _proto_fields(meta, where):
        if field == 1 and wire == 2:
            name, dtype, shape, slices = None, 0, (), []
            for tfield, twire, tval in _proto_fields(val, where + " tensor"):
                if tfield == 1 and twire == 2:
                    name = _utf8(tval, where)
                elif tfield == 2 and twire == 2:
                    shape = _parse_shape(tval, f"{where} tensor {name!r} shape")
                elif tfield == 3 and twire == 0:
                    dtype = tval
                elif tfield == 4 and twire == 2:
                    slices.append(_parse_slice(tval, f"{where} tensor {name!r} slice"))
            if name is None:
                raise CheckpointError(f"{where}: tensor {len(tensors)} has no name")
            tensors.append((name, dtype, shape, slices))
        elif field == 2 and wire == 2:
            for vfield, vwire, vval in _proto_fields(val, where + ".versions"):
                if vfield == 1 and vwire == 0:
                    producer = _signed64(vval)
                elif vfield == 2 and vwire == 0:
                    min_consumer = _signed64(vval)
                elif vfield == 3 and vwire == 0:
                    bad_consumers.append(_signed64(vval))
                elif vfield == 3 and vwire == 2:
                    bad_consumers.extend(int(v) for v in _varints(vval, where + ".versions"))
    # TF's CheckVersions(versions, TF_CHECKPOINT_VERSION, TF_CHECKPOINT_VERSION_MIN_PRODUCER).
    if producer < TF_CHECKPOINT_VERSION_MIN_PRODUCER or min_consumer > TF_CHECKPOINT_VERSION \
            or TF_CHECKPOINT_VERSION in bad_consumers:
        raise CheckpointError(f"{where}: checkpoint versions producer {producer}, min_consumer "
                              f"{min_consumer}, bad_consumers {bad_consumers} exclude this reader "
                              f"(checkpoint version {TF_CHECKPOINT_VERSION})")
    return tensors, (producer, min_consumer)


def _varints(buf, where: str) -> np.ndarray:
    """Decode a packed run of base-128 varints into uint64, vectorized."""
    data = np.frombuffer(buf, dtype=np.uint8)
    if data.size == 0:
        return np.zeros(0, np.uint64)
    ends = np.flatnonzero(data < 0x80)
    if ends.size == 0 or ends[-1] != data.size - 1:
        raise CheckpointError(f"{where}: packed varints cut off (last byte has its "
                              "continuation bit set)")
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > 10:
        raise CheckpointError(f"{where}: varint longer than 10 bytes in packed values")
    values = np.zeros(ends.size, np.uint64)
    for k in range(int(lengths.max())):
        rows = np.flatnonzero(lengths > k)
        values[rows] |= (data[starts[rows] + k] & 0x7F).astype(np.uint64) << np.uint64(7 * k)
    return values


def _slice_values(proto, dtype: int, count: int, where: str) -> np.ndarray:
    """The `count` values of a SavedSlice's TensorProto as a flat array of the dtype's NumPy type
    (bfloat16 still as its uint16 bits)."""
    field, encoding = _VALUE_FIELDS[dtype]
    stored = np.dtype(_DTYPES[dtype][1]).newbyteorder("=") if dtype != DT_STRING else None
    parts, content, strings = [], None, []
    for pfield, wire, value in _proto_fields(proto, where):
        if pfield == _TENSOR_CONTENT and wire == 2:
            content = value
        elif pfield == field:
            if encoding == "bytes" and wire == 2:
                strings.append(bytes(value))
            elif encoding == "varint" and wire == 2:
                parts.append(_varints(value, where))
            elif encoding == "varint" and wire == 0:
                parts.append(np.array([value], np.uint64))
            elif encoding in _FIXED_WIRE and wire == 2:
                if len(value) % (8 if encoding == "f8" else 4):
                    raise CheckpointError(f"{where}: packed {encoding} values of {len(value)} "
                                          "bytes, not a whole number of elements")
                parts.append(np.frombuffer(value, "<" + encoding))
            elif encoding in _FIXED_WIRE and wire == _FIXED_WIRE[encoding]:
                parts.append(np.array([value], np.uint64 if encoding == "f8" else np.uint32)
                             .view("<" + encoding))
            else:
                raise CheckpointError(f"{where}: field {pfield} has wire type {wire}, which "
                                      f"cannot hold {_DTYPE_NAMES[dtype]} values")
        elif pfield in {f for f, _ in _VALUE_FIELDS.values()}:
            raise CheckpointError(f"{where}: values stored in TensorProto field {pfield}, but "
                                  f"{_DTYPE_NAMES[dtype]} keeps them in field {field}")
    if dtype == DT_STRING:
        if content is not None:
            raise CheckpointError(f"{where}: DT_STRING slice stored as tensor_content")
        if len(strings) != count:
            raise CheckpointError(f"{where}: holds {len(strings)} strings, the slice needs {count}")
        out = np.empty(count, dtype=object)
        out[:] = strings
        return out
    if content is not None:
        if parts:
            raise CheckpointError(f"{where}: values in both tensor_content and field {field}")
        itemsize = np.dtype(_DTYPES[dtype][1]).itemsize
        if len(content) != count * itemsize:
            raise CheckpointError(f"{where}: tensor_content of {len(content)} bytes, the slice "
                                  f"needs {count} x {itemsize}")
        values = np.frombuffer(content, _DTYPES[dtype][1])
        if dtype == 10 and np.any(values.view(np.uint8) > 1):
            raise CheckpointError(f"{where}: DT_BOOL bytes other than 0/1")
        return values.astype(stored)
    raw = np.concatenate(parts) if parts else np.zeros(0, np.uint64)
    components = 2 if dtype in (8, 18) else 1
    if raw.size != count * components:
        raise CheckpointError(f"{where}: holds {raw.size} values, the slice needs "
                              f"{count * components}")
    if encoding != "varint":
        return np.ascontiguousarray(raw).view("<c8" if dtype == 8 else "<c16").astype(stored) \
            if components == 2 else raw.astype(stored)
    # Varints: int32-typed fields sign-extend negatives to 64 bits; check each value fits.
    if stored.kind == "b":
        if np.any(raw > 1):
            raise CheckpointError(f"{where}: bool values other than 0/1")
        return raw.astype(np.bool_)
    if dtype in (14, 19):
        stored = np.dtype(np.uint16)   # half_val: the raw 16 bits
    signed = raw.view(np.int64)
    info = np.iinfo(stored)
    wide = signed if info.min < 0 or stored.itemsize < 8 else raw
    if stored.itemsize < 8 and (np.any(wide < info.min) or np.any(wide > info.max)):
        bad = wide[(wide < info.min) | (wide > info.max)][0]
        raise CheckpointError(f"{where}: value {int(bad)} does not fit "
                              f"{_DTYPE_NAMES[dtype]} ({stored})")
    return wide.astype(stored)


def _finish_dtype(values: np.ndarray, dtype: int) -> np.ndarray:
    if dtype == DT_BFLOAT16:   # bfloat16 is the upper 16 bits of an IEEE float32: exact
        return (values.astype(np.uint32) << 16).view(np.float32)
    if dtype == 19:
        return values.view(np.float16)
    return values


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

def _describe(extents) -> str:
    return ":".join("-" if length == FULL else f"{start},{length}" for start, length in extents)


def _load_tables(files: list, with_data: bool):
    """Read every shard: the metas (name -> (dtype, shape, [(slice, file)])) and, with_data,
    the raw SavedSlice messages keyed by (name, slice)."""
    tensors: dict = {}
    records: dict = {}
    for shard in files:
        if not Path(shard).is_file():
            raise CheckpointError(f"{shard}: V1 checkpoint shard is missing ({len(files)} shards)")
        items = _table_items(Path(shard), _KIND)
        first = next(items, None)
        if first is None or first[0] != b"":
            raise CheckpointError(f"{shard}: the first entry is not the SavedTensorSliceMeta "
                                  "(empty key); corrupt V1 checkpoint")
        metas, _ = _parse_meta(first[1], shard)
        for name, dtype, shape, slices in metas:
            where = f"{shard}: tensor {name!r}"
            if dtype not in _DTYPE_NAMES:
                raise CheckpointError(f"{where}: unknown dtype enum {dtype}")
            if name in tensors:
                known_dtype, known_shape, known = tensors[name]
                if (known_dtype, known_shape) != (dtype, shape):
                    raise CheckpointError(f"{where}: {_DTYPE_NAMES[dtype]} {list(shape)} here but "
                                          f"{_DTYPE_NAMES[known_dtype]} {list(known_shape)} in "
                                          f"{known[0][1]}")
            else:
                tensors[name] = (dtype, shape, [])
            for extents in slices:
                _check_slice(extents, shape, where)
                tensors[name][2].append((extents, shard))
        if not with_data:
            continue
        listed = {(name, extents) for name, _, _, slices in metas for extents in slices}
        for key, value in items:
            name, extents = decode_slice_key(key, f"{shard}: key {bytes(key)[:80]!r}")
            where = f"{shard}: slice {_describe(extents) or '(scalar)'} of {name!r}"
            if (name, extents) not in listed:
                raise CheckpointError(f"{where} holds data that the meta does not list; "
                                      "corrupt V1 checkpoint")
            records[name, extents] = (value, where)
    return tensors, records


def _check_slice(extents, shape, where: str) -> None:
    if len(extents) != len(shape):
        raise CheckpointError(f"{where}: slice {_describe(extents)} has rank {len(extents)}, "
                              f"the tensor's shape {list(shape)} rank {len(shape)}")
    for d, (start, length) in enumerate(extents):
        if length != FULL and start + length > shape[d]:
            raise CheckpointError(f"{where}: slice {_describe(extents)} is out of range: "
                                  f"dimension {d} spans [{start}, {start + length}) of "
                                  f"{shape[d]}")


def _bounds(extents, shape) -> tuple:
    return tuple((0, n) if length == FULL else (start, start + length)
                 for (start, length), n in zip(extents, shape))


def _parse_saved_slice(value, name: str, extents, where: str):
    proto = None
    for field, wire, val in _proto_fields(value, where):
        if field == 1 and wire == 2:
            raise CheckpointError(f"{where}: holds the meta instead of slice data")
        if field == 2 and wire == 2:
            for sfield, swire, sval in _proto_fields(val, where + " SavedSlice"):
                if sfield == 1 and swire == 2 and _utf8(sval, where) != name:
                    raise CheckpointError(f"{where}: SavedSlice names tensor "
                                          f"{_utf8(sval, where)!r}, its key {name!r}")
                if sfield == 2 and swire == 2 and _parse_slice(sval, where) != extents:
                    raise CheckpointError(f"{where}: SavedSlice records slice "
                                          f"{_describe(_parse_slice(sval, where))}, its key "
                                          f"{_describe(extents)}")
                if sfield == 3 and swire == 2:
                    proto = sval
    if proto is None:
        raise CheckpointError(f"{where}: no SavedSlice data (TensorProto)")
    return proto


def _assemble(name: str, dtype: int, shape: tuple, slices: list, records: dict) -> np.ndarray:
    where0 = f"{slices[0][1]}: tensor {name!r}" if slices else f"tensor {name!r}"
    if not slices:
        raise CheckpointError(f"{where0}: the meta lists no slice of it (missing slice coverage)")
    bounds = [_bounds(extents, shape) for extents, _ in slices]
    for i in range(len(bounds)):
        for j in range(i):
            if all(max(a[0], b[0]) < min(a[1], b[1]) for a, b in zip(bounds[i], bounds[j])):
                raise CheckpointError(f"{where0}: slices {_describe(slices[j][0])} and "
                                      f"{_describe(slices[i][0])} overlap")
    total = int(np.prod(shape, dtype=np.int64))
    covered = sum(int(np.prod([hi - lo for lo, hi in b], dtype=np.int64)) for b in bounds)
    if covered != total:
        raise CheckpointError(f"{where0}: its {len(slices)} slice(s) "
                              f"({', '.join(_describe(e) for e, _ in slices)}) cover {covered} of "
                              f"the {total} elements of shape {list(shape)} (missing slice coverage)")
    whole = len(slices) == 1
    out = None
    for (extents, shard), box in zip(slices, bounds):
        if (name, extents) not in records:
            raise CheckpointError(f"{shard}: slice {_describe(extents) or '(scalar)'} of {name!r} "
                                  "is listed in the meta but no entry holds its data (missing "
                                  "slice)")
        value, where = records[name, extents]
        sub_shape = tuple(hi - lo for lo, hi in box)
        count = int(np.prod(sub_shape, dtype=np.int64))
        values = _slice_values(_parse_saved_slice(value, name, extents, where), dtype, count,
                               where).reshape(sub_shape)
        if whole:
            return _finish_dtype(np.array(values, copy=True), dtype)
        if out is None:
            out = np.empty(shape, dtype=values.dtype)
        out[tuple(slice(lo, hi) for lo, hi in box)] = values
    return _finish_dtype(out, dtype)


def read_checkpoint_v1(files: list, include_non_model: bool = False) -> "OrderedDict[str, np.ndarray]":
    """{name: array} of the V1 checkpoint made of `files` (one table, or every shard), sorted by
    name; partitioned variables come back whole. Use `tf_checkpoint.read_checkpoint(path)`."""
    tensors, records = _load_tables(files, with_data=True)
    result: OrderedDict[str, np.ndarray] = OrderedDict()
    for name in sorted(tensors):
        if not include_non_model and is_non_model_variable(name):
            continue
        dtype, shape, slices = tensors[name]
        if dtype in (DT_RESOURCE, DT_VARIANT):
            raise NotImplementedError(f"{files[0]}: {name!r} has dtype {_DTYPE_NAMES[dtype]}, "
                                      "which holds no plain array")
        result[name] = _assemble(name, dtype, shape, slices, records)
    return result


def list_checkpoint_v1(files: list, include_non_model: bool = True) -> "OrderedDict[str, CheckpointEntry]":
    """Metadata of every tensor from the metas alone (no slice data is decoded)."""
    tensors, _ = _load_tables(files, with_data=False)
    shard_of = {Path(f): i for i, f in enumerate(files)}
    entries: OrderedDict[str, CheckpointEntry] = OrderedDict()
    for name in sorted(tensors):
        if include_non_model or not is_non_model_variable(name):
            dtype, shape, slices = tensors[name]
            num_slices = len(slices) if len(slices) > 1 else 0
            shard = shard_of[Path(slices[0][1])] if slices else 0
            entries[name] = CheckpointEntry(name, _DTYPE_NAMES[dtype], shape, shard, 0, 0, 0,
                                            num_slices)
    return entries
