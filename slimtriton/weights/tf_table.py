"""The code both TensorFlow checkpoint readers share: the LevelDB-format table (footer, blocks,
crc32c, snappy), the protobuf wire format, the DataType table, TensorShapeProto, and which
entries are not model weights. `tf_checkpoint` (V2 bundles, and the dispatch) and
`tf_checkpoint_v1` (SavedTensorSlices) both import it; the formats are described there.
"""
from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import google_crc32c

from .errors import WeightsFileError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48          # 2 BlockHandles padded to 40 bytes + 8-byte magic
BLOCK_TRAILER_SIZE = 5    # compression type byte + fixed32 masked crc32c
CRC_MASK_DELTA = 0xA282EAD8

# TensorFlow DataType enum value -> (name, NumPy dtype of the stored bytes, little endian).
_DTYPES = {
    1: ("DT_FLOAT", "<f4"), 2: ("DT_DOUBLE", "<f8"), 3: ("DT_INT32", "<i4"),
    4: ("DT_UINT8", "u1"), 5: ("DT_INT16", "<i2"), 6: ("DT_INT8", "i1"),
    8: ("DT_COMPLEX64", "<c8"), 9: ("DT_INT64", "<i8"), 10: ("DT_BOOL", "?"),
    11: ("DT_QINT8", "i1"), 12: ("DT_QUINT8", "u1"), 13: ("DT_QINT32", "<i4"),
    14: ("DT_BFLOAT16", "<u2"), 15: ("DT_QINT16", "<i2"), 16: ("DT_QUINT16", "<u2"),
    17: ("DT_UINT16", "<u2"), 18: ("DT_COMPLEX128", "<c16"), 19: ("DT_HALF", "<f2"),
    22: ("DT_UINT32", "<u4"), 23: ("DT_UINT64", "<u8"),
}
DT_STRING, DT_BFLOAT16, DT_RESOURCE, DT_VARIANT = 7, 14, 20, 21
_DTYPE_NAMES = {**{k: v[0] for k, v in _DTYPES.items()},
                DT_STRING: "DT_STRING", DT_RESOURCE: "DT_RESOURCE", DT_VARIANT: "DT_VARIANT"}

# Entries that are not model weights: training bookkeeping and optimizer / averaging slots.
# Slot variables are named `<variable>/<slot>` by tf.train optimizers (Adam's second moment is
# `<variable>/Adam_1`); Adam also keeps the top-level accumulators `beta1_power`/`beta2_power`.
_NON_MODEL_NAMES = {"global_step", "beta1_power", "beta2_power"}
_NON_MODEL_PREFIXES = ("_CHECKPOINTABLE_OBJECT_GRAPH",)
_NON_MODEL_SLOTS = {
    "Momentum", "ExponentialMovingAverage", "Adam", "Adam_1", "RMSProp", "RMSProp_1",
    "Adagrad", "AdagradDA", "Adadelta", "Adadelta_1", "Ftrl", "Ftrl_1", "ProximalAdagrad",
}


class CheckpointError(WeightsFileError):
    """A TF checkpoint that is missing, corrupt, truncated or malformed (the message names the file)."""

    def __init__(self, message: str):
        ValueError.__init__(self, message)  # messages start with the file (or the file and tensor)
        self.path = message.split(": ", 1)[0]


@dataclass(frozen=True)
class CheckpointEntry:
    """One tensor's metadata from the index file."""
    name: str
    dtype: str              # TF enum name, e.g. "DT_FLOAT"
    shape: tuple
    shard_id: int
    offset: int
    size: int
    crc32c: int             # masked, as stored
    num_slices: int = 0     # > 0 for a partitioned variable's full-tensor entry


def is_non_model_variable(name: str) -> bool:
    """True for training bookkeeping: global_step, the object graph, optimizer/EMA slots."""
    if name in _NON_MODEL_NAMES or name.startswith(_NON_MODEL_PREFIXES):
        return True
    return name.rsplit("/", 1)[-1] in _NON_MODEL_SLOTS and "/" in name


# ---------------------------------------------------------------------------------------------
# crc32c and wire-format primitives
# ---------------------------------------------------------------------------------------------

def _mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + CRC_MASK_DELTA) & 0xFFFFFFFF


_CRC_CHUNK = 1 << 20


def _crc32c(data) -> int:
    if isinstance(data, bytes):
        return google_crc32c.value(data)
    # google_crc32c takes bytes only: copy a memoryview (a mapped table) a chunk at a time.
    crc = 0
    for start in range(0, len(data), _CRC_CHUNK):
        crc = google_crc32c.extend(crc, bytes(data[start:start + _CRC_CHUNK]))
    return crc


def _varint(buf: bytes, pos: int, end: int, what: str, where: str) -> tuple[int, int]:
    """Decode a base-128 varint at buf[pos:end]; returns (value, new_pos)."""
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise CheckpointError(f"{where}: truncated varint while reading {what}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CheckpointError(f"{where}: varint longer than 10 bytes while reading {what}")


def _proto_fields(buf: bytes, where: str):
    """Yield (field_number, wire_type, value) of a protobuf message; value is an int for
    varint/fixed fields and, for length-delimited ones, a slice of `buf` (bytes, or a zero-copy
    memoryview when `buf` is one)."""
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos, end, "a field tag", where)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise CheckpointError(f"{where}: protobuf field number 0 (garbled entry)")
        if wire == 0:
            value, pos = _varint(buf, pos, end, f"field {field}", where)
        elif wire == 1:
            if pos + 8 > end:
                raise CheckpointError(f"{where}: truncated fixed64 field {field}")
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            length, pos = _varint(buf, pos, end, f"length of field {field}", where)
            if pos + length > end:
                raise CheckpointError(f"{where}: field {field} length {length} runs past the "
                                      f"end of its {end}-byte message")
            value = buf[pos:pos + length]
            pos += length
        elif wire == 5:
            if pos + 4 > end:
                raise CheckpointError(f"{where}: truncated fixed32 field {field}")
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise CheckpointError(f"{where}: unsupported protobuf wire type {wire} "
                                  f"(field {field}); the entry is garbled")
        yield field, wire, value


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


# ---------------------------------------------------------------------------------------------
# Snappy (raw block format, as LevelDB stores compressed blocks)
# ---------------------------------------------------------------------------------------------

def _snappy_decompress(raw, where: str) -> bytes:
    """Decode one raw snappy buffer: a varint uncompressed length, then elements whose tag byte's
    low 2 bits say literal (0; length-1 in the upper 6 bits, or in 1-4 little-endian bytes after
    the tag when those bits are 60-63) or copy from `offset` bytes back (1: length 4-11 and an
    11-bit offset; 2: length 1-64 and a 2-byte offset; 3: length 1-64 and a 4-byte offset).
    Copies may overlap their own output (offset < length repeats the last `offset` bytes)."""
    end = len(raw)
    expected, pos = _varint(raw, 0, end, "the snappy uncompressed length", where)
    out = bytearray()
    while pos < end:
        tag = raw[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:
            length = tag >> 2
            if length >= 60:
                extra = length - 59
                if pos + extra > end:
                    raise CheckpointError(f"{where}: snappy literal length runs past the block")
                length = int.from_bytes(raw[pos:pos + extra], "little")
                pos += extra
            length += 1
            if pos + length > end or len(out) + length > expected:
                raise CheckpointError(f"{where}: snappy literal of {length} bytes runs past the "
                                      f"block or the {expected}-byte uncompressed size")
            out += raw[pos:pos + length]
            pos += length
            continue
        extra = (1, 2, 4)[kind - 1]
        if pos + extra > end:
            raise CheckpointError(f"{where}: snappy copy element cut off at the end of the block")
        if kind == 1:
            length, offset = 4 + ((tag >> 2) & 7), ((tag >> 5) << 8) | raw[pos]
        else:
            length, offset = (tag >> 2) + 1, int.from_bytes(raw[pos:pos + extra], "little")
        pos += extra
        if offset == 0 or offset > len(out) or len(out) + length > expected:
            raise CheckpointError(f"{where}: snappy copy of {length} bytes from {offset} back at "
                                  f"output byte {len(out)} is out of range (uncompressed size "
                                  f"{expected})")
        start = len(out) - offset
        pattern = bytes(out[start:start + min(offset, length)])
        out += (pattern * (length // len(pattern) + 1))[:length]
    if len(out) != expected:
        raise CheckpointError(f"{where}: snappy data decodes to {len(out)} bytes, its header "
                              f"says {expected}")
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# The SSTable (V2 index file, V1 checkpoint file)
# ---------------------------------------------------------------------------------------------

def _read_block(data, offset: int, size: int, path: Path, what: str, kind: str = "index"):
    limit = len(data) - FOOTER_SIZE
    if offset < 0 or size < 0 or offset + size + BLOCK_TRAILER_SIZE > limit:
        raise CheckpointError(f"{path}: {what} block [{offset}, {offset + size}) + trailer runs "
                              f"past the table contents ({limit} bytes); truncated or corrupt {kind}")
    contents = data[offset:offset + size]
    compression = data[offset + size]
    stored = struct.unpack_from("<I", data, offset + size + 1)[0]
    actual = _mask(_crc32c(data[offset:offset + size + 1]))
    if stored != actual:
        raise CheckpointError(f"{path}: {what} block at offset {offset} fails its crc32c check "
                              f"(stored {stored:#010x}, computed {actual:#010x}); corrupt {kind}")
    if compression == 1:
        return _snappy_decompress(contents, f"{path}: {what} block at offset {offset} (snappy)")
    if compression != 0:
        raise CheckpointError(f"{path}: {what} block at offset {offset} has unknown compression "
                              f"type {compression}; corrupt {kind}")
    return contents


def _block_entries(block: bytes, path: Path, what: str):
    """Yield (key, value) of one block, undoing the prefix compression of keys."""
    where = f"{path}: {what} block"
    if len(block) < 4:
        raise CheckpointError(f"{where} is {len(block)} bytes, too short for its restart count")
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    restarts_at = len(block) - 4 - 4 * num_restarts
    if num_restarts == 0 or restarts_at < 0:
        raise CheckpointError(f"{where} has an impossible restart count {num_restarts} "
                              f"for {len(block)} bytes")
    pos, key = 0, b""
    while pos < restarts_at:
        shared, pos = _varint(block, pos, restarts_at, "a key's shared length", where)
        non_shared, pos = _varint(block, pos, restarts_at, "a key's length", where)
        value_len, pos = _varint(block, pos, restarts_at, "a value length", where)
        if shared > len(key) or pos + non_shared + value_len > restarts_at:
            raise CheckpointError(f"{where}: entry at byte {pos} is malformed (shared {shared} "
                                  f"of previous key {len(key)}, key {non_shared} + value "
                                  f"{value_len} bytes past the {restarts_at}-byte entry area)")
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        yield key, block[pos:pos + value_len]
        pos += value_len


def _file_label(kind: str) -> str:
    return "TF checkpoint index" if kind == "index" else f"TF {kind}"


def _map_file(path: Path, kind: str):
    """The file's bytes as a read-only memoryview over a memory map (pages are read on demand,
    values are sliced without copies; the map closes when the last view of it is dropped)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            if size < FOOTER_SIZE:
                raise CheckpointError(f"{path}: {size} bytes, shorter than the {FOOTER_SIZE}-byte "
                                      f"table footer; truncated {kind}")
            return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: {_file_label(kind)} file not found") from None


def _table_items(path: Path, kind: str = "index"):
    """Yield (key bytes, value) of every entry of the SSTable at `path`, in key order; a value is
    a memoryview into the mapped file. `kind` names the file in errors ("index", "V1 checkpoint")."""
    data = _map_file(path, kind)
    footer = data[-FOOTER_SIZE:]
    magic = struct.unpack_from("<Q", footer, 40)[0]
    if magic != TABLE_MAGIC:
        raise CheckpointError(f"{path}: bad table magic {magic:#018x} (expected "
                              f"{TABLE_MAGIC:#018x}); not a {_file_label(kind)}, or truncated")
    where = f"{path}: footer"
    pos = 0
    meta_offset, pos = _varint(footer, pos, 40, "the metaindex offset", where)
    meta_size, pos = _varint(footer, pos, 40, "the metaindex size", where)
    index_offset, pos = _varint(footer, pos, 40, "the index offset", where)
    index_size, pos = _varint(footer, pos, 40, "the index size", where)
    # TF never puts anything in the metaindex (no filter blocks); we still check its crc and
    # structure so that no byte of the table goes unverified.
    for _ in _block_entries(_read_block(data, meta_offset, meta_size, path, "metaindex", kind),
                            path, "metaindex"):
        pass
    index_block = _read_block(data, index_offset, index_size, path, "index", kind)
    previous = None
    for separator, handle in _block_entries(index_block, path, "index"):
        hpos = 0
        offset, hpos = _varint(handle, hpos, len(handle), "a data block offset", f"{path}: index")
        size, hpos = _varint(handle, hpos, len(handle), "a data block size", f"{path}: index")
        block = _read_block(data, offset, size, path, "data", kind)
        for key, value in _block_entries(block, path, f"data (offset {offset})"):
            if previous is not None and key <= previous:
                raise CheckpointError(f"{path}: keys out of order ({previous!r} then {key!r}); "
                                      f"corrupt {kind}")
            if key > separator:
                raise CheckpointError(f"{path}: key {key!r} sorts after its block's index "
                                      f"separator {separator!r}; corrupt {kind}")
            previous = key
            yield key, value


def _parse_shape(buf: bytes, where: str) -> tuple:
    dims = []
    for field, wire, val in _proto_fields(buf, where):
        if field == 2 and wire == 2:
            size = 0
            for dfield, dwire, dval in _proto_fields(val, where):
                if dfield == 1 and dwire == 0:
                    size = _signed64(dval)
            if size < 0:
                raise CheckpointError(f"{where}: dimension {len(dims)} has unknown size {size}")
            dims.append(size)
        elif field == 3 and wire == 0 and val:
            raise CheckpointError(f"{where}: shape of unknown rank")
    return tuple(dims)
