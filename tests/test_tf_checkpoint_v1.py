"""TF V1 checkpoints (one SavedTensorSlices table, the format of the published TF-Slim checkpoints)
read without TensorFlow. No real V1 file is in the fixtures, so a small writer here follows TF's
format as documented (TensorSliceWriter + OrderedCode + the protos); its table layer is the V2 test
writer, which test_tf_checkpoint.py pins byte for byte to TensorFlow's own index files."""
from __future__ import annotations

import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

import slimtriton as st
from slimtriton.weights.tf_checkpoint import (
    CheckpointError, _snappy_decompress, _table_items, checkpoint_version, is_tf_checkpoint,
    list_checkpoint, read_checkpoint, resolve_checkpoint_prefix,
)
from slimtriton.weights.tf_checkpoint_v1 import decode_slice_key
from tests.test_tf_checkpoint import (
    CKPT_DIR, RESNET, _field, _varint, resnet_npz_vars,
    write_table,
)

FULL = -1


# --------------------------------------------------------------------------------------------
# The V1 writer (TensorSliceWriter's output, from TF's documented format)
# --------------------------------------------------------------------------------------------

def oc_num(n: int) -> bytes:
    """OrderedCode::WriteNumIncreasing: a length byte, then big endian without leading zeros."""
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([len(raw)]) + raw


def oc_string(s: bytes) -> bytes:
    """OrderedCode::WriteString: 00 -> 00 ff, ff -> ff 00, then the 00 01 separator."""
    out = bytearray()
    for byte in s:
        out += {0x00: b"\x00\xff", 0xFF: b"\xff\x00"}.get(byte, bytes([byte]))
    return bytes(out) + b"\x00\x01"


def oc_signed(v: int) -> bytes:
    """OrderedCode::WriteSignedNumIncreasing: n bytes hold [-2^(7n-1), 2^(7n-1)); the value,
    sign-extended to n bytes, gets its first n bits XORed to 1."""
    x = ~v if v < 0 else v
    n = next(n for n in range(1, 11) if x < 1 << (7 * n - 1))
    raw = (v & ((1 << 8 * n) - 1)) ^ (((1 << n) - 1) << (8 * n - n))
    return raw.to_bytes(n, "big")


def slice_key(name: str, extents) -> bytes:
    """EncodeTensorNameSlice; a full dimension is start 0, length -1."""
    out = oc_num(0) + oc_string(name.encode()) + oc_num(len(extents))
    return out + b"".join(oc_signed(s) + oc_signed(n) for s, n in extents)


def slice_proto(extents) -> bytes:
    # TensorSlice::AsProto: an empty Extent for a full dimension; proto3 omits start == 0.
    return b"".join(_field(1, 2, b"" if n == FULL else (_field(1, 0, s) if s else b"")
                           + _field(2, 0, n)) for s, n in extents)


def shape_proto(shape) -> bytes:
    return b"".join(_field(2, 2, _field(1, 0, d) if d else b"") for d in shape)


# dtype enum -> (TensorProto field, encoding); see saved_tensor_slice_util.h
FIELDS = {1: (5, "<f4"), 2: (6, "<f8"), 3: (7, "int"), 4: (7, "int"), 5: (7, "int"), 6: (7, "int"),
          7: (8, "str"), 8: (9, "<f4"), 9: (10, "int"), 10: (11, "int"), 14: (13, "int"),
          17: (7, "int"), 19: (13, "int"), 22: (16, "int"), 23: (17, "int")}
CODES = {np.dtype(np.float32): 1, np.dtype(np.float64): 2, np.dtype(np.int32): 3,
         np.dtype(np.uint8): 4, np.dtype(np.int16): 5, np.dtype(np.int8): 6,
         np.dtype(np.complex64): 8, np.dtype(np.int64): 9, np.dtype(np.bool_): 10,
         np.dtype(np.uint16): 17, np.dtype(np.float16): 19, np.dtype(np.uint32): 22,
         np.dtype(np.uint64): 23}


def tensor_proto(code: int, values: np.ndarray) -> bytes:
    """A SavedSlice's TensorProto: only the values (packed), as TensorSliceWriter::SaveData."""
    field, encoding = FIELDS[code]
    flat = values.reshape(-1)
    if encoding == "str":
        return b"".join(_field(field, 2, s) for s in flat)
    if flat.size == 0:
        return b""
    if encoding != "int":
        if code == 8:
            flat = flat.view(np.float32)
        return _field(field, 2, flat.astype(encoding).tobytes())
    if code in (14, 19):  # half_val holds the raw 16 bits (bfloat16: written as float16 bits)
        flat = flat.view(np.uint16)
    return _field(field, 2, b"".join(_varint(int(v) & (2**64 - 1)) for v in flat))


def v1_items(tensors, versions=b"\x08\x01"):
    """tensors: {name: (dtype code, shape, [(extents, values), ...])} -> sorted table items."""
    meta, records = b"", []
    for name, (code, shape, slices) in tensors.items():
        entry = _field(1, 2, name.encode()) + _field(2, 2, shape_proto(shape)) + _field(3, 0, code)
        for extents, values in slices:
            entry += _field(4, 2, slice_proto(extents))
            saved = (_field(1, 2, name.encode()) + _field(2, 2, slice_proto(extents))
                     + _field(3, 2, tensor_proto(code, np.asarray(values))))
            records.append((slice_key(name, extents), _field(2, 2, saved)))
        meta += _field(1, 2, entry)
    meta += _field(2, 2, versions)  # VersionDef producer = TF_CHECKPOINT_VERSION (1)
    return [(b"", _field(1, 2, meta))] + sorted(records)


def whole(array: np.ndarray):
    """One slice covering the whole tensor (Saver's "" slice spec)."""
    array = np.asarray(array)
    return CODES[array.dtype], array.shape, [(tuple((0, FULL) for _ in array.shape), array)]


def write_v1(path, tensors, entries_per_block=10_000, **kw):
    write_table(path, v1_items(tensors, **kw), entries_per_block)
    return Path(path)


# --------------------------------------------------------------------------------------------
# Snappy (test side: a greedy compressor using every element kind the decoder knows)
# --------------------------------------------------------------------------------------------

def _literal(chunk: bytes) -> bytes:
    n = len(chunk) - 1
    if n < 60:
        return bytes([n << 2]) + chunk
    size = (n.bit_length() + 7) // 8
    return bytes([(59 + size) << 2]) + n.to_bytes(size, "little") + chunk


def _copy(offset: int, length: int) -> bytes:
    if 4 <= length <= 11 and offset < 2048:
        return bytes([((offset >> 8) << 5) | ((length - 4) << 2) | 1, offset & 0xFF])
    if offset < 65536:
        return bytes([((length - 1) << 2) | 2]) + offset.to_bytes(2, "little")
    return bytes([((length - 1) << 2) | 3]) + offset.to_bytes(4, "little")


def snappy_compress(data: bytes) -> bytes:
    out, table, i, literal_start = bytearray(_varint(len(data))), {}, 0, 0
    while i + 4 <= len(data):
        j = table.get(data[i:i + 4])
        table[data[i:i + 4]] = i
        if j is None:
            i += 1
            continue
        n = 4
        while i + n < len(data) and n < 64 and data[j + n] == data[i + n]:
            n += 1
        if i > literal_start:
            out += _literal(data[literal_start:i])
        out += _copy(i - j, n)
        i += n
        literal_start = i
    if len(data) > literal_start:
        out += _literal(data[literal_start:])
    return bytes(out)


def write_snappy_table(path, items, entries_per_block):
    """write_table with snappy-compressed data blocks (handles give the stored size)."""
    write_table(path, items, entries_per_block, compression=1, encode=snappy_compress)


# --------------------------------------------------------------------------------------------
# The writer's pieces against TF's documented bytes
# --------------------------------------------------------------------------------------------

def test_ordered_code_matches_tf_examples_and_round_trips():
    # The two worked examples of ordered_code.cc, and the escapes of WriteString.
    assert oc_signed(0x424242) == bytes.fromhex("f0424242")
    assert oc_signed(-0x800) == bytes.fromhex("3800")
    assert oc_num(0) == b"\x00" and oc_num(0x1234) == b"\x02\x12\x34"
    assert oc_string(b"a\x00b\xff") == b"a\x00\xffb\xff\x00\x00\x01"
    values = [0, 1, -1, 63, 64, -64, -65, 8191, 8192, -(2**13), 2**55 - 1, 2**55, -(2**55),
              2**62, 2**63 - 1, -(2**63)] + [int(v) for v in np.random.default_rng(0).integers(
                  -(2**63), 2**63 - 1, 200, dtype=np.int64)]
    for v in values:
        name, extents = decode_slice_key(slice_key("x", [(max(v, 0), v)]))
        assert name == "x" and extents == ((max(v, 0), v) if v >= 0 else (0, FULL),), v
    # The encoding sorts like the numbers (what keeps a tensor's slices in order in the table).
    assert sorted(values, key=oc_signed) == sorted(values)
    assert decode_slice_key(slice_key("n\x00m\xff/w", [(0, FULL), (3, 4)])) == \
        ("n\x00m\xff/w", ((0, FULL), (3, 4)))
    assert decode_slice_key(slice_key("global_step", [])) == ("global_step", ())


@pytest.mark.parametrize("key, fault", [
    (b"\x01\x05", "starts with 5"), (b"\x00ab", "no 00 01 terminator"),
    (b"\x00a\x00\x07\x00\x01\x00", "bad escape 00 07"), (b"\x00a\x00\x01\x01\x01\x80", "key ends where a signed number"),
    (b"\x00a\x00\x01\x00\x00", "stray byte"), (b"\x00a\x00\x01\x01\x01\x80\x7f\x00", "stray"),
    (b"\x00a\x00\x01\x01\x01\xff\xff\xff", "too long or cut off"),
])
def test_bad_slice_keys(key, fault):
    with pytest.raises(CheckpointError, match=fault):
        decode_slice_key(key)


def test_shared_table_code_on_tf_bytes(tmp_path):
    """The table reader the V1 path uses parses TF's real index, and the writer the V1 tests use
    rebuilds it byte for byte from what was read."""
    index = Path(f"{RESNET}.index")
    items = [(key, bytes(value)) for key, value in _table_items(index)]
    assert items[0][0] == b"" and len(items) == len(resnet_npz_vars()) + 1
    write_table(tmp_path / "copy.index", items)
    assert (tmp_path / "copy.index").read_bytes() == index.read_bytes()


# --------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------

def _dtype_arrays():
    rng = np.random.default_rng(1)
    return {
        "net/f32": rng.standard_normal((3, 4, 2)).astype(np.float32),
        "net/f16": rng.standard_normal((5,)).astype(np.float16),
        "net/f64": rng.standard_normal((2, 2)),
        "net/i32": np.array([-(2**31), -1, 0, 7, 2**31 - 1], np.int32),
        "net/i64": np.array([[-(2**63), 2**63 - 1], [-5, 2**40]], np.int64),
        "net/bool": np.array([True, False, False, True]),
        "net/u8": np.array([0, 200, 255], np.uint8),
        "net/i8": np.array([-128, 0, 127], np.int8),
        "net/i16": np.array([-32768, 12, 32767], np.int16),
        "net/u16": np.array([0, 65535], np.uint16),
        "net/u32": np.array([0, 2**32 - 1], np.uint32),
        "net/u64": np.array([0, 2**64 - 1], np.uint64),
        "net/c64": (rng.standard_normal(3) + 1j * rng.standard_normal(3)).astype(np.complex64),
        "net/scalar": np.array(2.5, np.float32),
        "net/empty": np.zeros((0, 3), np.float32),
    }


def owns_memory(array: np.ndarray) -> bool:
    """No view into the mapped checkpoint file: the base chain ends in an owning ndarray."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array.base is None


def test_every_dtype_round_trips_through_several_blocks(tmp_path):
    arrays = _dtype_arrays()
    tensors = {name: whole(array) for name, array in arrays.items()}
    bf16 = np.array([1.0, -2.5, 3.140625, 0.0], np.float32)
    tensors["net/bf16"] = (14, (4,), [(((0, FULL),), (bf16.view(np.uint32) >> 16).astype(np.uint16)
                                       .view(np.float16))])
    tensors["net/strings"] = (7, (3,), [(((0, FULL),), np.array([b"hi", b"", b"\x00\xff" * 9],
                                                                object))])
    tensors["global_step"] = whole(np.array(123456789012, np.int64))
    path = write_v1(tmp_path / "model.ckpt", tensors, entries_per_block=3)
    assert checkpoint_version(path) == 1 and is_tf_checkpoint(path)
    weights = read_checkpoint(path)
    assert list(weights) == sorted(n for n in tensors if n != "global_step")
    for name, array in arrays.items():
        assert weights[name].dtype == array.dtype and weights[name].shape == array.shape, name
        np.testing.assert_array_equal(weights[name], array, err_msg=name)
        assert weights[name].flags.writeable and owns_memory(weights[name]), name
    assert weights["net/bf16"].dtype == np.float32
    np.testing.assert_array_equal(weights["net/bf16"], bf16)
    assert weights["net/strings"].tolist() == [b"hi", b"", b"\x00\xff" * 9]
    step = read_checkpoint(path, include_non_model=True)["global_step"]
    assert step.dtype == np.int64 and step.shape == () and int(step) == 123456789012
    entries = list_checkpoint(path)
    assert entries["net/f16"].dtype == "DT_HALF" and entries["net/i64"].shape == (2, 2)
    assert entries["global_step"].dtype == "DT_INT64" and "global_step" not in list_checkpoint(
        path, include_non_model=False)


def test_unpacked_repeated_values_are_read(tmp_path):
    """Protobuf parsers accept repeated numeric fields unpacked too; so does the reader."""
    items = v1_items({"w": whole(np.zeros(2, np.float32)), "i": whole(np.zeros(2, np.int32))})
    unpacked = {b"w": _field(5, 5, struct.unpack("<I", struct.pack("<f", 1.5))[0])
                + _field(5, 5, struct.unpack("<I", struct.pack("<f", -2.0))[0]),
                b"i": _field(7, 0, 3) + _field(7, 0, (-4) & (2**64 - 1))}
    fixed = []
    for key, value in items:
        if key:
            name = decode_slice_key(key)[0].encode()
            saved = (_field(1, 2, name) + _field(2, 2, slice_proto([(0, FULL)]))
                     + _field(3, 2, unpacked[name]))
            value = _field(2, 2, saved)
        fixed.append((key, value))
    write_table(tmp_path / "u.ckpt", fixed)
    weights = read_checkpoint(tmp_path / "u.ckpt")
    np.testing.assert_array_equal(weights["w"], np.array([1.5, -2.0], np.float32))
    np.testing.assert_array_equal(weights["i"], np.array([3, -4], np.int32))


def test_tensor_content_values(tmp_path):
    """A TensorProto may carry raw little-endian bytes in tensor_content instead of *_val."""
    values = np.array([[1.25, -3.0], [0.5, 7.0]], np.float64)
    flags = np.array([True, False, True])

    def raw(items):
        out = []
        for key, value in items:
            if key:
                name, _ = decode_slice_key(key)
                array = {"w": values, "flags": flags}[name]
                saved = (_field(1, 2, name.encode()) + _field(2, 2, slice_proto(
                    [(0, FULL)] * array.ndim)) + _field(3, 2, _field(4, 2, array.tobytes())))
                value = _field(2, 2, saved)
            out.append((key, value))
        return out
    write_table(tmp_path / "c.ckpt", raw(v1_items({"w": whole(values), "flags": whole(flags)})))
    weights = read_checkpoint(tmp_path / "c.ckpt")
    np.testing.assert_array_equal(weights["w"], values)
    np.testing.assert_array_equal(weights["flags"], flags)


def partitioned(array, axis, bounds):
    """Slices of `array` along `axis` at [b0, b1), [b1, b2)... with explicit extents everywhere
    (PartitionedVariable's SaveSliceInfo spec "offset,length" per dimension)."""
    slices = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        extents = tuple((lo, hi - lo) if d == axis else (0, n) for d, n in enumerate(array.shape))
        index = tuple(slice(lo, hi) if d == axis else slice(None) for d in range(array.ndim))
        slices.append((extents, array[index]))
    return CODES[array.dtype], array.shape, slices


def test_partitioned_variables_are_assembled(tmp_path):
    rng = np.random.default_rng(2)
    emb = rng.standard_normal((10, 4)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 2, 7)).astype(np.float16)
    ids = np.arange(12, dtype=np.int64).reshape(3, 4)
    # A slice may also leave dimensions full ("-") while cutting another.
    mixed = (CODES[ids.dtype], ids.shape,
             [(((0, 2), (0, FULL)), ids[:2]), (((2, 1), (0, FULL)), ids[2:])])
    tensors = {"net/emb": partitioned(emb, 0, [0, 4, 7, 10]),
               "net/conv/kernel": partitioned(kernel, 3, [0, 3, 7]), "net/ids": mixed,
               "net/dense": whole(emb[:2])}
    path = write_v1(tmp_path / "part.ckpt", tensors, entries_per_block=2)
    weights = read_checkpoint(path)
    np.testing.assert_array_equal(weights["net/emb"], emb)
    np.testing.assert_array_equal(weights["net/conv/kernel"], kernel)
    assert weights["net/conv/kernel"].dtype == np.float16
    np.testing.assert_array_equal(weights["net/ids"], ids)
    entries = list_checkpoint(path)
    assert entries["net/emb"].num_slices == 3 and entries["net/dense"].num_slices == 0


def test_sharded_v1_checkpoint_and_state_file(tmp_path):
    """Saver(sharded=True) V1: X-0000i-of-0000N, slices of one variable in several shards, and the
    `checkpoint` state file recording the pattern X-?????-of-0000N."""
    emb = np.arange(24, dtype=np.float32).reshape(6, 4)
    _, shape, slices = partitioned(emb, 0, [0, 2, 6])
    bias = np.arange(3, dtype=np.float64)
    write_v1(tmp_path / "model.ckpt-00000-of-00002", {"emb": (1, shape, slices[:1]), "b": whole(bias)})
    write_v1(tmp_path / "model.ckpt-00001-of-00002", {"emb": (1, shape, slices[1:])})
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "/gone/model.ckpt-?????-of-00002"\n')
    pattern = tmp_path / "model.ckpt-?????-of-00002"
    for form in (tmp_path, tmp_path / "checkpoint", tmp_path / "model.ckpt",
                 tmp_path / "model.ckpt-00001-of-00002", pattern):
        assert resolve_checkpoint_prefix(form) == pattern, form
        weights = read_checkpoint(form)
        np.testing.assert_array_equal(weights["emb"], emb)
        np.testing.assert_array_equal(weights["b"], bias)
    assert list_checkpoint(tmp_path)["emb"].num_slices == 2
    (tmp_path / "model.ckpt-00001-of-00002").unlink()
    with pytest.raises(CheckpointError, match=r"model.ckpt-00001-of-00002: V1 checkpoint shard is "
                                              "missing"):
        read_checkpoint(pattern)


def test_path_forms_of_a_single_file(tmp_path):
    arrays = {"resnet_v1_50/conv1/weights": np.ones((1, 1, 3, 2), np.float32)}
    run = tmp_path / "run"
    run.mkdir()
    path = write_v1(run / "resnet_v1_50.ckpt", {n: whole(a) for n, a in arrays.items()})
    for form in (path, str(path), run):  # the file, as TF-Slim's tarballs unpack, or its directory
        assert resolve_checkpoint_prefix(form) == path
        assert list(read_checkpoint(form)) == list(arrays)
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "run/resnet_v1_50.ckpt"\n')
    assert resolve_checkpoint_prefix(tmp_path) == path
    (run / "checkpoint").write_text(f'model_checkpoint_path: "/elsewhere/{path.name}"\n')
    assert resolve_checkpoint_prefix(run) == path
    assert not is_tf_checkpoint(tmp_path / "nothing.ckpt")
    (run / "checkpoint").unlink()
    shutil.copy(path, run / "other.ckpt")
    with pytest.raises(CheckpointError, match=r"2 checkpoints .*other.ckpt, resnet_v1_50.ckpt"):
        read_checkpoint(run)


def test_snappy_blocks(tmp_path):
    rng = np.random.default_rng(3)
    arrays = {"a/w": np.zeros((64, 8), np.float32), "a/b": rng.standard_normal(40).astype(np.float32),
              "a/i": np.tile(np.arange(5, dtype=np.int64), 30), "a/h": np.ones(9, np.float16)}
    items = v1_items({n: whole(a) for n, a in arrays.items()})
    write_snappy_table(tmp_path / "s.ckpt", items, entries_per_block=2)
    weights = read_checkpoint(tmp_path / "s.ckpt")
    for name, array in arrays.items():
        np.testing.assert_array_equal(weights[name], array, err_msg=name)
    # The decoder on hand-made elements: 1-byte and 4-byte-offset copies, long literals,
    # a copy overlapping its own output.
    text = bytes(range(256)) * 2
    assert _snappy_decompress(snappy_compress(text), "t") == text
    hand = _varint(13) + _literal(b"abc") + _copy(3, 4)[:0] + bytes([(5 << 2) | 3]) \
        + (3).to_bytes(4, "little") + _literal(b"xyzw")
    assert _snappy_decompress(hand, "t") == b"abcabcabcxyzw"


@pytest.mark.parametrize("stream, fault", [
    (_varint(5) + _literal(b"abc"), "decodes to 3 bytes, its header says 5"),
    (_varint(3) + _literal(b"abcd"), "runs past"),
    (_varint(8) + _literal(b"ab") + _copy(3, 4), "out of range"),
    (_varint(8) + _literal(b"ab") + bytes([2]), "cut off"),
    (_varint(4) + bytes([61 << 2, 3]), "literal length runs past"),
])
def test_bad_snappy_streams(stream, fault):
    with pytest.raises(CheckpointError, match=fault):
        _snappy_decompress(stream, "block")


# --------------------------------------------------------------------------------------------
# st.load_weights, slimtriton convert
# --------------------------------------------------------------------------------------------

@pytest.fixture
def cli_main(monkeypatch):
    import slimtriton.cli as cli
    monkeypatch.setattr(cli, "COMMANDS", ["convert"])
    return cli.main


def test_load_weights_and_convert(tmp_path, cli_main, capsys):
    expected = resnet_npz_vars()
    tensors = {n: whole(a) for n, a in expected.items()}
    tensors["global_step"] = whole(np.array(7, np.int64))
    path = write_v1(tmp_path / "resnet_v2_tiny.ckpt", tensors)
    loaded = st.load_weights(path)
    assert set(loaded) == set(expected)
    shutil.copy(path, tmp_path / "weights")  # a V1 table is recognised whatever its name
    assert set(st.load_weights(tmp_path / "weights")) == set(expected)
    for name, array in expected.items():
        np.testing.assert_array_equal(loaded[name], array, err_msg=name)
    out = tmp_path / "resnet.safetensors"
    assert cli_main(["convert", str(path), str(out)]) == 0
    parameters = sum(a.size for a in expected.values())
    assert f"{len(expected)} tensors, {parameters:,} parameters" in capsys.readouterr().out
    converted = st.load_weights(out)
    for name, array in expected.items():
        np.testing.assert_array_equal(converted[name], array, err_msg=name)
    assert cli_main(["convert", "--include-non-model", str(path), str(tmp_path / "all.npz")]) == 0
    assert int(st.load_weights(tmp_path / "all.npz")["global_step"]) == 7
    assert cli_main(["convert", "--list", "--include-non-model", str(path)]) == 0
    assert re.search(r"^global_step +DT_INT64 +\[\]$", capsys.readouterr().out, re.MULTILINE)


# --------------------------------------------------------------------------------------------
# Corruption: always a CheckpointError naming the file and the fault
# --------------------------------------------------------------------------------------------

def _small(tmp_path) -> Path:
    emb = np.arange(12, dtype=np.float32).reshape(6, 2)
    return write_v1(tmp_path / "c.ckpt", {"emb": partitioned(emb, 0, [0, 2, 6]),
                                          "b": whole(np.array([1, -2], np.int32)),
                                          "h": whole(np.array([0.5], np.float16))})


def test_every_single_byte_corruption_is_caught(tmp_path):
    """Flip each byte: CheckpointError naming the file, or (the footer padding nothing reads)
    exactly the original tensors."""
    path = _small(tmp_path)
    original = read_checkpoint(path)
    pristine = path.read_bytes()
    unread = set(range(len(pristine) - 48 + 6, len(pristine) - 8))  # after the 2 handles
    for i in range(len(pristine)):
        corrupt = bytearray(pristine)
        corrupt[i] ^= 0x41
        path.write_bytes(bytes(corrupt))
        try:
            result = read_checkpoint(path)
        except CheckpointError as err:
            assert str(path) in str(err), (i, err)
            continue
        assert i in unread, f"byte {i} flipped unnoticed"
        for name in original:
            np.testing.assert_array_equal(result[name], original[name], err_msg=str(i))


@pytest.mark.parametrize("cut", [1, 20, 47, 60, -1, -30])
def test_truncated_file(tmp_path, cut):
    path = _small(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    with pytest.raises(CheckpointError, match=r"truncated|bad table magic|runs past") as err:
        read_checkpoint(path)
    assert str(path) in str(err.value)


def test_block_crc(tmp_path):
    path = _small(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[30] ^= 0x04
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"c.ckpt: data block at offset 0 fails its crc32c.*"
                                              "corrupt V1 checkpoint"):
        read_checkpoint(path)


def _rewrite(tmp_path, tensors, edit=None, **kw) -> Path:
    items = v1_items(tensors, **kw)
    if edit:
        items = sorted(edit(items))
    write_table(tmp_path / "e.ckpt", items)
    return tmp_path / "e.ckpt"


def test_slice_out_of_range(tmp_path):
    w = np.zeros((4, 2), np.float32)
    bad = (1, (4, 2), [(((0, 2), (0, 2)), w[:2]), (((2, 3), (0, 2)), np.zeros((3, 2), np.float32))])
    with pytest.raises(CheckpointError, match=r"e.ckpt: tensor 'w': slice 2,3:0,2 is out of range: "
                                              r"dimension 0 spans \[2, 5\) of 4"):
        read_checkpoint(_rewrite(tmp_path, {"w": bad}))


def test_missing_slice_coverage(tmp_path):
    w = np.zeros((6, 2), np.float32)
    code, shape, slices = partitioned(w, 0, [0, 2, 4, 6])
    path = _rewrite(tmp_path, {"w": (code, shape, [slices[0], slices[2]])})
    with pytest.raises(CheckpointError, match=r"e.ckpt: tensor 'w': its 2 slice\(s\) \(0,2:0,2, "
                                              r"4,2:0,2\) cover 8 of the 12 elements of shape "
                                              r"\[6, 2\] \(missing slice coverage\)"):
        read_checkpoint(path)


def test_overlapping_slices(tmp_path):
    w = np.zeros((4, 2), np.float32)
    slices = [(((0, 3), (0, 2)), w[:3]), (((2, 2), (0, 2)), w[2:])]
    with pytest.raises(CheckpointError, match=r"slices 0,3:0,2 and 2,2:0,2 overlap"):
        read_checkpoint(_rewrite(tmp_path, {"w": (1, (4, 2), slices)}))


def test_missing_and_unlisted_slice_data(tmp_path):
    tensors = {"w": whole(np.zeros(3, np.float32)), "v": whole(np.zeros(2, np.float32))}
    drop = _rewrite(tmp_path, tensors, edit=lambda items: [i for i in items if b"w" not in i[0]])
    with pytest.raises(CheckpointError, match=r"e.ckpt: slice - of 'w' is listed in the meta but "
                                              r"no entry holds its data \(missing slice\)"):
        read_checkpoint(drop)
    extra = v1_items({"x": whole(np.zeros(1, np.float32))})[1]
    path = _rewrite(tmp_path, tensors, edit=lambda items: items + [extra])
    with pytest.raises(CheckpointError, match=r"slice - of 'x' holds data that the meta does not "
                                              "list"):
        read_checkpoint(path)


def test_value_count_and_name_mismatch(tmp_path):
    def swap_data(items):
        value = v1_items({"w": whole(np.zeros(5, np.float32))})[1][1]
        return [(k, value if k else v) for k, v in items]
    path = _rewrite(tmp_path, {"w": whole(np.zeros(3, np.float32))}, edit=swap_data)
    with pytest.raises(CheckpointError, match=r"slice - of 'w'.*holds 5 values, the slice needs 3"):
        read_checkpoint(path)

    def rename(items):
        value = v1_items({"v": whole(np.zeros(3, np.float32))})[1][1]
        return [(k, value if k else v) for k, v in items]
    path = _rewrite(tmp_path, {"w": whole(np.zeros(3, np.float32))}, edit=rename)
    with pytest.raises(CheckpointError, match=r"SavedSlice names tensor 'v', its key 'w'"):
        read_checkpoint(path)


def test_value_out_of_dtype_range_and_wrong_field(tmp_path):
    def widen(items):
        saved = (_field(1, 2, b"b") + _field(2, 2, slice_proto([(0, FULL)]))
                 + _field(3, 2, _field(7, 2, _varint(300))))
        return [(k, _field(2, 2, saved) if k else v) for k, v in items]
    path = _rewrite(tmp_path, {"b": whole(np.zeros(1, np.uint8))}, edit=widen)
    with pytest.raises(CheckpointError, match=r"value 300 does not fit DT_UINT8"):
        read_checkpoint(path)

    def as_floats(items):
        saved = (_field(1, 2, b"b") + _field(2, 2, slice_proto([(0, FULL)]))
                 + _field(3, 2, _field(5, 2, b"\0" * 4)))
        return [(k, _field(2, 2, saved) if k else v) for k, v in items]
    path = _rewrite(tmp_path, {"b": whole(np.zeros(1, np.int32))}, edit=as_floats)
    with pytest.raises(CheckpointError, match=r"field 5, but DT_INT32 keeps them in field 7"):
        read_checkpoint(path)


def test_versions_and_missing_meta(tmp_path):
    path = _rewrite(tmp_path, {"w": whole(np.zeros(1, np.float32))},
                    versions=_field(1, 0, 1) + _field(2, 0, 2))
    with pytest.raises(CheckpointError, match=r"min_consumer 2.*exclude this reader"):
        read_checkpoint(path)
    path = _rewrite(tmp_path, {"w": whole(np.zeros(1, np.float32))},
                    versions=_field(1, 0, 1) + _field(3, 0, 1))
    with pytest.raises(CheckpointError, match=r"bad_consumers \[1\]"):
        read_checkpoint(path)
    write_table(tmp_path / "nometa.ckpt", v1_items({"w": whole(np.zeros(1, np.float32))})[1:])
    with pytest.raises(CheckpointError, match=r"nometa.ckpt: the first entry is not the "
                                              "SavedTensorSliceMeta"):
        read_checkpoint(tmp_path / "nometa.ckpt")
    (tmp_path / "garbage.ckpt").write_bytes(b"\x01" * 100)
    with pytest.raises(CheckpointError, match=r"garbage.ckpt: bad table magic .* not a TF V1 "
                                              "checkpoint, or truncated"):
        read_checkpoint(tmp_path / "garbage.ckpt")
