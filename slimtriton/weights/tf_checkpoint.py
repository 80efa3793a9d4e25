"""TensorFlow checkpoints read without TensorFlow: V2 (`X.ckpt.index` + `X.ckpt.data-NNNNN-of-NNNNN`)
here, V1 (one `X.ckpt` table of SavedTensorSlices, the format of the published TF-Slim checkpoints)
in `tf_checkpoint_v1`; both import the table and protobuf code of `tf_table`. `read_checkpoint`,
`list_checkpoint` and `resolve_checkpoint_prefix` take either.

V2 format (facts from TensorFlow's tensor_bundle.{proto,cc} and the LevelDB table format it uses):

* `X.ckpt.index` is a LevelDB-format SSTable. Its last 48 bytes are the footer: two BlockHandles
  (metaindex, index; each a varint64 offset and a varint64 size), zero padding up to 40 bytes, and
  the 8-byte little-endian magic 0xdb4775248b80fb57. Every block is followed by a 5-byte trailer:
  a compression-type byte (0 = none, 1 = snappy) and the masked crc32c of the block contents plus
  that type byte (a snappy block is decompressed after its crc, which covers the stored bytes,
  is checked; TensorFlow's checkpoint writers never compress, other table writers may). A block holds entries `varint32 shared, varint32 non_shared, varint32 value_len,
  key[shared:] bytes, value bytes` (keys prefix-compressed against the previous key), then the
  restart array (uint32 offsets) and the uint32 restart count. The index block maps a separator key
  to the BlockHandle of each data block.
* Table values are protobufs: the empty key holds a `BundleHeaderProto` (num_shards = 1,
  endianness = 2, version = 3 (VersionDef: producer = 1, min_consumer = 2, bad_consumers = 3)),
  every other key a `BundleEntryProto` (dtype = 1, shape = 2 (TensorShapeProto: dim = 2 (size = 1,
  name = 2), unknown_rank = 3), shard_id = 3, offset = 4, size = 5, crc32c = 6 (fixed32, masked),
  slices = 7). We decode the wire format by hand: no protobuf dependency.
* Tensor bytes live in `X.ckpt.data-{shard:05d}-of-{num_shards:05d}` at [offset, offset + size).
  The entry's crc32c is the masked crc32c of exactly those bytes for numeric tensors; for DT_STRING
  the writer checksums each length as a uint32 (uint64 above 4 GiB), the 4-byte masked length
  checksum that follows the varint lengths, then the string bytes.
* crc32c masking (LevelDB and TF alike): `((crc >> 15) | (crc << 17)) + 0xa282ead8` mod 2**32.

dtypes: every numeric type maps to its NumPy dtype (DT_HALF -> float16). **DT_BFLOAT16 is returned
as float32** (NumPy has no bfloat16; bfloat16 is the upper half of a float32, so the widening is
exact). DT_STRING scalars/arrays (e.g. `_CHECKPOINTABLE_OBJECT_GRAPH`) come back as object arrays
of `bytes`. Partitioned (sliced) variables of a V2 bundle and DT_VARIANT raise NotImplementedError
naming the tensor (V1 checkpoints assemble their slices, see `tf_checkpoint_v1`).
Anything corrupt or truncated raises `CheckpointError` (a ValueError) naming the file and the fault.
"""
from __future__ import annotations

import codecs
import glob
import re
import struct
from collections import OrderedDict
from pathlib import Path

import google_crc32c
import numpy as np

from .tf_table import (  # noqa: F401 - some only re-exported: tests/test_tf_checkpoint*.py import them from here
    TABLE_MAGIC, FOOTER_SIZE, BLOCK_TRAILER_SIZE, CRC_MASK_DELTA, _DTYPES, DT_STRING, DT_BFLOAT16,
    DT_RESOURCE, DT_VARIANT, _DTYPE_NAMES, _NON_MODEL_NAMES, _NON_MODEL_PREFIXES, _NON_MODEL_SLOTS,
    CheckpointError, CheckpointEntry, is_non_model_variable, _mask, _CRC_CHUNK, _crc32c, _varint,
    _proto_fields, _signed64, _snappy_decompress, _read_block, _block_entries, _file_label, _map_file,
    _table_items, _parse_shape,
)
from .tf_checkpoint_v1 import list_checkpoint_v1, read_checkpoint_v1

__all__ = [
    "CheckpointError", "CheckpointEntry", "read_checkpoint", "list_checkpoint",
    "resolve_checkpoint_prefix", "is_tf_checkpoint", "is_non_model_variable", "checkpoint_version",
]

# ---------------------------------------------------------------------------------------------
# Bundle protos
# ---------------------------------------------------------------------------------------------

def _parse_header(value: bytes, path: Path) -> tuple[int, bool]:
    """Returns (num_shards, big_endian)."""
    where = f"{path}: BundleHeaderProto"
    num_shards, endianness, min_consumer = 0, 0, 0
    for field, wire, val in _proto_fields(value, where):
        if field == 1 and wire == 0:
            num_shards = _signed64(val)
        elif field == 2 and wire == 0:
            endianness = val
        elif field == 3 and wire == 2:
            for vfield, vwire, vval in _proto_fields(val, where + ".version"):
                if vfield == 2 and vwire == 0:
                    min_consumer = vval
    if num_shards < 1:
        raise CheckpointError(f"{where}: num_shards is {num_shards}; corrupt header")
    if endianness not in (0, 1):
        raise CheckpointError(f"{where}: unknown endianness {endianness}; corrupt header")
    if min_consumer > 1:
        raise CheckpointError(f"{where}: needs a reader of tensor-bundle version >= {min_consumer};"
                              " this reader understands version 1")
    return num_shards, endianness == 1


def _parse_entry(name: str, value: bytes, path: Path) -> CheckpointEntry:
    where = f"{path}: entry {name!r}"
    dtype, shape, shard_id, offset, size, crc, num_slices = 0, (), 0, 0, 0, 0, 0
    for field, wire, val in _proto_fields(value, where):
        if field == 1 and wire == 0:
            dtype = val
        elif field == 2 and wire == 2:
            shape = _parse_shape(val, where + " shape")
        elif field == 3 and wire == 0:
            shard_id = _signed64(val)
        elif field == 4 and wire == 0:
            offset = _signed64(val)
        elif field == 5 and wire == 0:
            size = _signed64(val)
        elif field == 6 and wire == 5:
            crc = val
        elif field == 7 and wire == 2:
            num_slices += 1
    if dtype not in _DTYPE_NAMES:
        raise CheckpointError(f"{where}: unknown or unsupported dtype enum {dtype}")
    if shard_id < 0 or offset < 0 or size < 0:
        raise CheckpointError(f"{where}: negative shard_id/offset/size "
                              f"({shard_id}/{offset}/{size}); corrupt index")
    return CheckpointEntry(name, _DTYPE_NAMES[dtype], shape, shard_id, offset, size, crc,
                           num_slices)


# ---------------------------------------------------------------------------------------------
# Locating the checkpoint
# ---------------------------------------------------------------------------------------------

def _parse_checkpoint_state(path: Path) -> str:
    """The `model_checkpoint_path` of a `checkpoint` text proto."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: not a text `checkpoint` state file") from None
    match = re.search(r'^\s*model_checkpoint_path\s*:\s*"((?:[^"\\]|\\.)*)"', text, re.MULTILINE)
    if not match:
        raise CheckpointError(f"{path}: no `model_checkpoint_path: \"...\"` line in this "
                              "checkpoint state file")
    return codecs.escape_decode(match.group(1).encode("utf-8"))[0].decode("utf-8")


# A sharded V1 checkpoint (Saver(sharded=True, write_version=V1)) is the files X-00000-of-0000N ...;
# the `checkpoint` state file records the pattern X-?????-of-0000N.
_V1_SHARD = re.compile(r"(.*)-(\d{5}|\?{5})-of-(\d{5})")
_V1_SHARD_GLOB = "-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]"


def _v1_files(prefix: Path) -> list:
    """The table files of the V1 checkpoint named `prefix` (the file itself, or every shard of
    `X-?????-of-N` / `X-00001-of-N` / `X` when X's shards exist); [] when nothing of it exists.
    Listed shards may be missing: the reader reports them."""
    match = _V1_SHARD.fullmatch(prefix.name)
    if match is None and not prefix.is_file():
        shards = sorted(prefix.parent.glob(glob.escape(prefix.name) + _V1_SHARD_GLOB))
        match = _V1_SHARD.fullmatch(shards[0].name) if shards else None
    if match is None:
        return [prefix] if prefix.is_file() else []
    count = int(match.group(3))
    files = [prefix.with_name(f"{match.group(1)}-{i:05d}-of-{count:05d}") for i in range(count)]
    return files if any(f.is_file() for f in files) else []


def _v1_prefix(prefix: Path) -> Path:
    """A V1 checkpoint's canonical name: the file, or the shard pattern `X-?????-of-N`."""
    files = _v1_files(prefix)
    if len(files) == 1 and files[0] == prefix and not _V1_SHARD.fullmatch(prefix.name):
        return prefix
    return files[0].with_name(_V1_SHARD.sub(r"\1-?????-of-\3", files[0].name))


def checkpoint_version(prefix: Path) -> int:
    """2 when `prefix.index` exists, 1 when `prefix` names a V1 checkpoint, else CheckpointError."""
    if Path(str(prefix) + ".index").is_file():
        return 2
    if _v1_files(Path(prefix)):
        return 1
    raise CheckpointError(f"{prefix}: no TF checkpoint here (neither {prefix}.index nor a V1 "
                          "checkpoint file of that name exists)")


def _exists(prefix: Path) -> bool:
    return Path(str(prefix) + ".index").exists() or bool(_v1_files(prefix))


def _prefix_from_state_file(state: Path) -> Path:
    recorded = _parse_checkpoint_state(state)
    prefix = Path(recorded)
    if not prefix.is_absolute():
        prefix = state.parent / prefix
        return prefix if Path(str(prefix) + ".index").exists() or not _v1_files(prefix) \
            else _v1_prefix(prefix)
    if _exists(prefix):
        return prefix if Path(str(prefix) + ".index").exists() else _v1_prefix(prefix)
    # The directory was moved or copied since TF wrote the absolute path: the checkpoint files
    # travel with their `checkpoint` file, so look next to it (as TF's own tools advise).
    local = state.parent / prefix.name
    if Path(str(local) + ".index").exists():
        return local
    if _v1_files(local):
        return _v1_prefix(local)
    raise CheckpointError(f"{state}: records model_checkpoint_path {recorded!r}, but neither "
                          f"{recorded}.index nor {local}.index exists (nor a V1 checkpoint "
                          f"file {local})")


def _has_table_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            if f.seek(0, 2) < FOOTER_SIZE:
                return False
            f.seek(-8, 2)
            return struct.unpack("<Q", f.read(8))[0] == TABLE_MAGIC
    except OSError:
        return False


def _directory_checkpoints(path: Path) -> list:
    """The checkpoints in a directory without a state file: V2 prefixes and V1 tables."""
    found = {index.with_suffix("") for index in path.glob("*.index")}
    for file in path.iterdir():
        if (file.is_file() and file.suffix != ".index" and ".data-" not in file.name
                and _has_table_magic(file)):
            found.add(_v1_prefix(file))
    return sorted(found)


def resolve_checkpoint_prefix(path) -> Path:
    """Map a checkpoint prefix `X.ckpt`, `X.ckpt.index`, `X.ckpt.data-*`, a directory holding a
    `checkpoint` state file (or a single checkpoint), or that file itself to the prefix `X.ckpt`.
    A V1 checkpoint maps to its file `X.ckpt`, or to `X.ckpt-?????-of-N` when it is sharded."""
    path = Path(path)
    if path.is_dir():
        state = path / "checkpoint"
        if state.is_file():
            return _prefix_from_state_file(state)
        found = _directory_checkpoints(path)
        if len(found) == 1:
            return found[0]
        raise CheckpointError(f"{path}: directory has no `checkpoint` state file and "
                              f"{len(found)} checkpoints (*.index files or V1 checkpoint files: "
                              f"{', '.join(p.name for p in found) or 'none'}); "
                              "pass the checkpoint prefix X.ckpt")
    if path.name == "checkpoint" and path.is_file():
        return _prefix_from_state_file(path)
    if path.suffix == ".index":
        return path.with_suffix("")
    data_match = re.fullmatch(r"(.*)\.data-\d{5}-of-\d{5}", path.name)
    if data_match:
        return path.with_name(data_match.group(1))
    if Path(str(path) + ".index").exists():
        return path
    if _v1_files(path):
        return _v1_prefix(path)
    raise CheckpointError(f"{path}: no TF checkpoint here ({path}.index does not exist, nor a V1 "
                          "checkpoint file of that name)")


def is_tf_checkpoint(path) -> bool:
    """True when `path` names a TF V2 checkpoint, or a V1 checkpoint table, in any form
    `read_checkpoint` accepts."""
    try:
        prefix = resolve_checkpoint_prefix(path)
    except (CheckpointError, NotImplementedError, OSError):
        return False
    if Path(str(prefix) + ".index").is_file():
        return True
    return any(_has_table_magic(f) for f in _v1_files(prefix) if f.is_file())


# ---------------------------------------------------------------------------------------------
# Public readers
# ---------------------------------------------------------------------------------------------

def _read_index(prefix: Path):
    index_path = Path(str(prefix) + ".index")
    if not index_path.is_file():
        raise CheckpointError(f"{index_path}: checkpoint index file not found")
    items = _table_items(index_path)
    first = next(items, None)
    if first is None or first[0] != b"":
        raise CheckpointError(f"{index_path}: the first entry is not the bundle header "
                              "(empty key); corrupt index")
    num_shards, big_endian = _parse_header(first[1], index_path)
    entries = []
    for key, value in items:
        if key.startswith(b"\x00"):
            continue  # the encoded key of one slice of a partitioned variable, read via its parent
        try:
            name = key.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError(f"{index_path}: tensor name {key!r} is not UTF-8; "
                                  "corrupt index") from None
        entries.append(_parse_entry(name, value, index_path))
    for entry in entries:
        if entry.shard_id >= num_shards:
            raise CheckpointError(f"{index_path}: entry {entry.name!r} is in shard "
                                  f"{entry.shard_id} but the header says {num_shards} shard(s)")
    return index_path, num_shards, big_endian, entries


def list_checkpoint(path, include_non_model: bool = True) -> "OrderedDict[str, CheckpointEntry]":
    """Metadata of every tensor (no data read), in the checkpoint's (sorted) key order. For a V1
    checkpoint `shard_id` is the file's shard number, `offset`/`size`/`crc32c` are 0 and
    `num_slices` counts the slices of a partitioned variable."""
    prefix = resolve_checkpoint_prefix(path)
    if checkpoint_version(prefix) == 1:
        return list_checkpoint_v1(_v1_files(prefix), include_non_model)
    _, _, _, entries = _read_index(prefix)
    return OrderedDict((e.name, e) for e in entries
                       if include_non_model or not is_non_model_variable(e.name))


def _shard_path(prefix: Path, shard: int, num_shards: int) -> Path:
    return Path(f"{prefix}.data-{shard:05d}-of-{num_shards:05d}")


def _decode_strings(raw: bytes, count: int, where: str) -> np.ndarray:
    """[varint64 len]*count [fixed32 masked crc of the lengths] [string bytes]*count."""
    pos, lengths, crc = 0, [], 0
    for _ in range(count):
        length, pos = _varint(raw, pos, len(raw), "a string length", where)
        lengths.append(length)
        crc = google_crc32c.extend(crc, struct.pack("<I" if length <= 0xFFFFFFFF else "<Q", length))
    if pos + 4 > len(raw):
        raise CheckpointError(f"{where}: truncated string tensor (no length checksum)")
    stored = struct.unpack_from("<I", raw, pos)[0]
    if stored != _mask(crc):
        raise CheckpointError(f"{where}: string lengths fail their crc32c check "
                              f"(stored {stored:#010x}, computed {_mask(crc):#010x})")
    pos += 4
    if pos + sum(lengths) != len(raw):
        raise CheckpointError(f"{where}: string lengths sum to {pos + sum(lengths)} bytes but the "
                              f"entry holds {len(raw)}")
    out = np.empty(count, dtype=object)
    for i, length in enumerate(lengths):
        out[i] = raw[pos:pos + length]
        pos += length
    return out


def _string_crc(raw: bytes, count: int) -> int:
    """The unmasked crc TF records for a string tensor (lengths as fixed-width integers)."""
    pos, crc = 0, 0
    for _ in range(count):
        length, pos = _varint(raw, pos, len(raw), "a string length", "string tensor")
        crc = google_crc32c.extend(crc, struct.pack("<I" if length <= 0xFFFFFFFF else "<Q", length))
    return google_crc32c.extend(crc, raw[pos:])


def _decode_tensor(entry: CheckpointEntry, raw: bytes, big_endian: bool, where: str) -> np.ndarray:
    count = int(np.prod(entry.shape, dtype=np.int64))
    if entry.dtype == "DT_STRING":
        return _decode_strings(raw, count, where).reshape(entry.shape)
    code = next(k for k, v in _DTYPES.items() if v[0] == entry.dtype)
    stored = np.dtype(_DTYPES[code][1])
    if big_endian:
        stored = stored.newbyteorder(">")
    if count * stored.itemsize != entry.size:
        raise CheckpointError(f"{where}: {entry.dtype} shape {list(entry.shape)} needs "
                              f"{count * stored.itemsize} bytes but the entry records "
                              f"{entry.size}; corrupt index")
    array = np.frombuffer(raw, dtype=stored).reshape(entry.shape)
    if code == DT_BFLOAT16:
        # bfloat16 is the upper 16 bits of an IEEE float32: widening is exact.
        return (array.astype(np.uint32) << 16).view(np.float32)
    if code == 10 and np.any(array.view(np.uint8) > 1):
        raise CheckpointError(f"{where}: DT_BOOL bytes other than 0/1; corrupt data")
    return array.astype(stored.newbyteorder("="), copy=True)


def read_checkpoint(path, include_non_model: bool = False) -> "OrderedDict[str, np.ndarray]":
    """Read a TF V2 checkpoint (prefix `X.ckpt`, `X.ckpt.index`, a directory with a `checkpoint`
    file, or that file) or a V1 checkpoint (one file `X.ckpt`, or its shards `X.ckpt-?????-of-N`;
    partitioned variables are assembled from their slices) into `{variable name: array}` in the
    checkpoint's sorted key order.

    Non-model entries (`global_step`, `_CHECKPOINTABLE_OBJECT_GRAPH`, optimizer and moving-average
    slots such as `.../Momentum`, `.../ExponentialMovingAverage`) are skipped unless
    `include_non_model`. DT_BFLOAT16 comes back as float32, DT_HALF as float16; every tensor's
    crc32c and every index block's crc32c are checked.
    """
    prefix = resolve_checkpoint_prefix(path)
    if checkpoint_version(prefix) == 1:
        return read_checkpoint_v1(_v1_files(prefix), include_non_model)
    index_path, num_shards, big_endian, entries = _read_index(prefix)
    wanted = [e for e in entries if include_non_model or not is_non_model_variable(e.name)]
    for entry in wanted:
        if entry.num_slices:
            raise NotImplementedError(
                f"{index_path}: {entry.name!r} is a partitioned variable saved in "
                f"{entry.num_slices} slices; slimtriton reads unpartitioned variables only")
        if entry.dtype in ("DT_VARIANT", "DT_RESOURCE"):
            raise NotImplementedError(f"{index_path}: {entry.name!r} has dtype {entry.dtype}, "
                                      "which holds no plain array")
    result: OrderedDict[str, np.ndarray] = OrderedDict()
    shards: dict[int, tuple] = {}
    try:
        for entry in wanted:
            if entry.shard_id not in shards:
                shard = _shard_path(prefix, entry.shard_id, num_shards)
                try:
                    handle = open(shard, "rb")
                except FileNotFoundError:
                    raise CheckpointError(f"{shard}: data shard {entry.shard_id} of {num_shards} "
                                          f"is missing (needed for {entry.name!r})") from None
                handle.seek(0, 2)
                shards[entry.shard_id] = (shard, handle, handle.tell())
            shard, handle, shard_size = shards[entry.shard_id]
            where = f"{shard}: tensor {entry.name!r}"
            if entry.offset + entry.size > shard_size:
                raise CheckpointError(f"{where} spans bytes [{entry.offset}, "
                                      f"{entry.offset + entry.size}) but the shard is "
                                      f"{shard_size} bytes; truncated data file")
            handle.seek(entry.offset)
            raw = handle.read(entry.size)
            if len(raw) != entry.size:
                raise CheckpointError(f"{where}: short read ({len(raw)} of {entry.size} bytes)")
            count = int(np.prod(entry.shape, dtype=np.int64))
            actual = _string_crc(raw, count) if entry.dtype == "DT_STRING" else _crc32c(raw)
            if _mask(actual) != entry.crc32c:
                raise CheckpointError(f"{where}: crc32c mismatch (index records "
                                      f"{entry.crc32c:#010x}, data gives {_mask(actual):#010x}); "
                                      "corrupt data")
            result[entry.name] = _decode_tensor(entry, raw, big_endian, where)
    finally:
        for _, handle, _ in shards.values():
            handle.close()
    return result
