"""TF V2 checkpoints read without TensorFlow: real checkpoints written by TF, every dtype through a
small test-side bundle writer (checked byte for byte against TF's own index), and corruption."""
from __future__ import annotations

import shutil
import struct
from pathlib import Path

import google_crc32c
import numpy as np
import pytest

from slimtriton.weights.tf_checkpoint import (
    CheckpointError, is_non_model_variable, is_tf_checkpoint, list_checkpoint, read_checkpoint,
    resolve_checkpoint_prefix,
)

REPO = Path(__file__).resolve().parents[1]
FIXTURES = (REPO / ".." / "shared" / "fixtures" / "tf_slim").resolve()
CKPT_DIR = FIXTURES / "tf_checkpoint"
RESNET = CKPT_DIR / "resnet_v2_tiny.ckpt"
MIXED = CKPT_DIR / "mixed_dtypes.ckpt"
DATA_SUFFIX = ".data-00000-of-00001"


def resnet_npz_vars() -> dict:
    with np.load(FIXTURES / "resnet_v2_tiny.npz") as z:
        return {k[len("var/"):]: z[k] for k in z.files if k.startswith("var/")}


# --------------------------------------------------------------------------------------------
# A minimal bundle writer, following the same published format (LevelDB table + bundle protos).
# test_writer_reproduces_tf_index_bytes pins it to TensorFlow's own output.
# --------------------------------------------------------------------------------------------

def _mask(crc):
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number, wire, payload):
    tag = _varint(number << 3 | wire)
    if wire == 0:
        return tag + _varint(payload)
    if wire == 5:
        return tag + struct.pack("<I", payload)
    return tag + _varint(len(payload)) + payload


def _entry_proto(dtype, shape, shard, offset, size, crc, slices=0):
    dims = b"".join(_field(2, 2, _field(1, 0, d) if d else b"") for d in shape)
    out = _field(1, 0, dtype) + _field(2, 2, dims)
    if shard:
        out += _field(3, 0, shard)
    if offset:
        out += _field(4, 0, offset)
    if size:
        out += _field(5, 0, size)
    if crc:
        out += _field(6, 5, crc)
    for _ in range(slices):
        out += _field(7, 2, b"")
    return out


def _block(entries, restart_interval=16):
    buf, restarts, last = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        if i % restart_interval == 0:
            restarts.append(len(buf))
            shared = 0
        else:
            shared = 0
            while shared < min(len(key), len(last)) and key[shared] == last[shared]:
                shared += 1
        buf += _varint(shared) + _varint(len(key) - shared) + _varint(len(value))
        buf += key[shared:] + value
        last = key
    if not restarts:
        restarts = [0]
    return bytes(buf) + b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))


def _with_trailer(contents, compression=0):
    crc = _mask(google_crc32c.value(contents + bytes([compression])))
    return contents + bytes([compression]) + struct.pack("<I", crc)


def _short_successor(key):
    for i, byte in enumerate(key):
        if byte != 0xFF:
            return key[:i] + bytes([byte + 1])
    return key


def write_table(path, items, entries_per_block=10_000, compression=0, encode=None):
    """items: sorted (key, value) pairs. One data block per `entries_per_block` entries;
    `encode` (e.g. a snappy compressor, with compression=1) transforms each stored data block."""
    out, index = bytearray(), []
    chunks = [items[i:i + entries_per_block] for i in range(0, len(items), entries_per_block)]
    for n, chunk in enumerate(chunks):
        contents = _block(chunk) if encode is None else encode(_block(chunk))
        handle = _varint(len(out)) + _varint(len(contents))
        out += _with_trailer(contents, compression)
        separator = _short_successor(chunk[-1][0]) if n == len(chunks) - 1 else chunk[-1][0]
        index.append((separator, handle))
    meta_handle = _varint(len(out)) + _varint(8)
    out += _with_trailer(_block([]))
    index_contents = _block(index, restart_interval=1)
    index_handle = _varint(len(out)) + _varint(len(index_contents))
    out += _with_trailer(index_contents)
    footer = (meta_handle + index_handle).ljust(40, b"\0") + struct.pack("<Q", 0xDB4775248B80FB57)
    Path(path).write_bytes(bytes(out + footer))


def write_bundle(prefix, tensors, num_shards=1, big_endian=False, entries_per_block=10_000,
                 compression=0):
    """tensors: {name: (dtype_enum, shape, raw bytes[, crc override])}; shard = i % num_shards."""
    header = _field(1, 0, num_shards) + (_field(2, 0, 1) if big_endian else b"") + _field(3, 2, _field(1, 0, 1))
    shards = [bytearray() for _ in range(num_shards)]
    items = [(b"", header)]
    for i, name in enumerate(sorted(tensors)):
        dtype, shape, raw, *crc = tensors[name]
        shard = i % num_shards
        offset = len(shards[shard])
        shards[shard] += raw
        crc = crc[0] if crc else _mask(google_crc32c.value(raw))
        items.append((name.encode(), _entry_proto(dtype, shape, shard, offset, len(raw), crc)))
    write_table(f"{prefix}.index", items, entries_per_block, compression)
    for n, data in enumerate(shards):
        Path(f"{prefix}.data-{n:05d}-of-{num_shards:05d}").write_bytes(bytes(data))


def string_tensor_bytes(strings):
    lengths = b"".join(_varint(len(s)) for s in strings)
    crc = 0
    for s in strings:
        crc = google_crc32c.extend(crc, struct.pack("<I", len(s)))
    length_crc = struct.pack("<I", _mask(crc))
    crc = google_crc32c.extend(crc, length_crc)
    body = b"".join(strings)
    crc = google_crc32c.extend(crc, body)
    return lengths + length_crc + body, _mask(crc)


# --------------------------------------------------------------------------------------------
# Real checkpoints written by TensorFlow
# --------------------------------------------------------------------------------------------

def test_resnet_checkpoint_equals_npz_exactly():
    weights = read_checkpoint(RESNET)
    expected = resnet_npz_vars()
    assert set(weights) == set(expected)
    for name, array in expected.items():
        assert weights[name].dtype == np.float32, name
        assert weights[name].shape == array.shape, name
        np.testing.assert_array_equal(weights[name], array, err_msg=name)
    assert list(weights) == sorted(weights)  # the checkpoint's key order
    weights[next(iter(weights))][...] = 0  # arrays are writable, owned copies


@pytest.mark.parametrize("form", ["prefix", "index", "data", "str"])
def test_path_forms(form):
    path = {"prefix": RESNET, "index": Path(f"{RESNET}.index"),
            "data": Path(f"{RESNET}{DATA_SUFFIX}"), "str": str(RESNET)}[form]
    assert resolve_checkpoint_prefix(path) == RESNET
    assert len(read_checkpoint(path)) == len(resnet_npz_vars())


def test_directory_and_checkpoint_state_file():
    # The fixture's `checkpoint` file records an absolute path from the machine that wrote it;
    # the files sit next to it, which is where the reader looks when that path is gone.
    for path in (CKPT_DIR, CKPT_DIR / "checkpoint"):
        assert resolve_checkpoint_prefix(path) == MIXED
        assert list(read_checkpoint(path)) == ["half/w"]
    assert is_tf_checkpoint(CKPT_DIR) and is_tf_checkpoint(RESNET)
    assert not is_tf_checkpoint(FIXTURES / "resnet_v2_tiny.npz")


def test_relative_state_file(tmp_path):
    sub = tmp_path / "run"
    sub.mkdir()
    for suffix in (".index", DATA_SUFFIX):
        shutil.copy(f"{RESNET}{suffix}", sub / f"model.ckpt-7{suffix}")
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "run/model.ckpt-7"\n'
                                         'all_model_checkpoint_paths: "run/model.ckpt-7"\n')
    assert resolve_checkpoint_prefix(tmp_path) == sub / "model.ckpt-7"
    assert len(read_checkpoint(tmp_path)) == len(resnet_npz_vars())


def test_mixed_dtypes_and_non_model_skipping():
    default = read_checkpoint(MIXED)
    assert list(default) == ["half/w"]
    half = default["half/w"]
    assert half.dtype == np.float16 and half.shape == (3, 4)
    np.testing.assert_array_equal(half, (np.arange(12) / 8).reshape(3, 4).astype(np.float16))
    everything = read_checkpoint(MIXED, include_non_model=True)
    assert list(everything) == ["global_step", "half/w"]
    step = everything["global_step"]
    assert step.dtype == np.int64 and step.shape == () and int(step) == 123456789012
    entries = list_checkpoint(MIXED)
    assert entries["half/w"].dtype == "DT_HALF" and entries["global_step"].dtype == "DT_INT64"


def test_writer_reproduces_tf_index_bytes(tmp_path):
    """Pins the test writer (and so the dtype tests below) to TensorFlow's real bytes."""
    for prefix in (MIXED, RESNET):
        weights = read_checkpoint(prefix, include_non_model=True)
        entries = list_checkpoint(prefix)
        data = Path(f"{prefix}{DATA_SUFFIX}").read_bytes()
        code = {"DT_FLOAT": 1, "DT_INT64": 9, "DT_HALF": 19}
        tensors = {n: (code[e.dtype], e.shape, data[e.offset:e.offset + e.size])
                   for n, e in entries.items()}
        assert set(tensors) == set(weights)
        write_bundle(tmp_path / "copy", tensors)
        assert (tmp_path / "copy.index").read_bytes() == Path(f"{prefix}.index").read_bytes()
        assert Path(f"{tmp_path / 'copy'}{DATA_SUFFIX}").read_bytes() == data


# --------------------------------------------------------------------------------------------
# Every dtype, strings, big endian, several shards and blocks (through the pinned writer)
# --------------------------------------------------------------------------------------------

def test_all_dtypes_shards_and_blocks(tmp_path):
    rng = np.random.default_rng(0)
    f32 = rng.standard_normal((2, 3)).astype(np.float32)
    arrays = {
        "a/float": (1, f32), "a/double": (2, rng.standard_normal(4)),
        "a/int32": (3, np.array([-5, 0, 2**31 - 1], np.int32)),
        "a/uint8": (4, np.array([0, 7, 255], np.uint8)),
        "a/int16": (5, np.array([-3, 30000], np.int16)),
        "a/int8": (6, np.array([[-128, 5], [0, 127]], np.int8)),
        "a/int64": (9, np.array([-(2**62), 2**40], np.int64)),
        "a/bool": (10, np.array([True, False, True])),
        "a/half": (19, rng.standard_normal((3, 1)).astype(np.float16)),
        "a/uint16": (17, np.array([1, 65535], np.uint16)),
        "a/scalar": (1, np.array(2.5, np.float32)),
        "a/empty": (1, np.zeros((0, 4), np.float32)),
    }
    tensors = {name: (code, a.shape, a.astype(a.dtype.newbyteorder("<")).tobytes())
               for name, (code, a) in arrays.items()}
    # bfloat16: the upper 16 bits of float32 values that bfloat16 represents exactly.
    bf = np.array([1.0, -2.5, 3.140625, 0.0], np.float32)
    tensors["a/bfloat16"] = (14, bf.shape, (bf.view(np.uint32) >> 16).astype("<u2").tobytes())
    raw, crc = string_tensor_bytes([b"hello", b"", b"x" * 300])
    tensors["a/strings"] = (7, (3,), raw, crc)
    write_bundle(tmp_path / "m.ckpt", tensors, num_shards=3, entries_per_block=4)
    weights = read_checkpoint(tmp_path / "m.ckpt")
    assert list(weights) == sorted(tensors)
    for name, (_, array) in arrays.items():
        assert weights[name].dtype == array.dtype, name
        np.testing.assert_array_equal(weights[name], array, err_msg=name)
    assert weights["a/bfloat16"].dtype == np.float32
    np.testing.assert_array_equal(weights["a/bfloat16"], bf)
    assert weights["a/strings"].tolist() == [b"hello", b"", b"x" * 300]
    entries = list_checkpoint(tmp_path / "m.ckpt")
    assert {e.shard_id for e in entries.values()} == {0, 1, 2}


def test_big_endian_bundle(tmp_path):
    values = np.array([[1.5, -2.0], [3.25, 1e-3]], np.float32)
    tensors = {"w": (1, values.shape, values.astype(">f4").tobytes()),
               "i": (9, (2,), np.array([1, -2], ">i8").tobytes())}
    write_bundle(tmp_path / "be.ckpt", tensors, big_endian=True)
    weights = read_checkpoint(tmp_path / "be.ckpt")
    np.testing.assert_array_equal(weights["w"], values)
    assert weights["w"].dtype == np.float32 and weights["w"].dtype.isnative
    np.testing.assert_array_equal(weights["i"], [1, -2])


def test_non_model_entries(tmp_path):
    one = np.ones(2, np.float32).tobytes()
    graph, graph_crc = string_tensor_bytes([b"\x0a\x02object-graph"])
    names = ["net/conv/weights", "net/conv/weights/Momentum", "net/conv/weights/ExponentialMovingAverage",
             "net/conv/weights/Adam", "net/conv/weights/Adam_1", "beta1_power", "global_step"]
    tensors = {n: (1, (2,), one) for n in names}
    tensors["_CHECKPOINTABLE_OBJECT_GRAPH"] = (7, (), graph, graph_crc)
    write_bundle(tmp_path / "t.ckpt", tensors)
    assert list(read_checkpoint(tmp_path / "t.ckpt")) == ["net/conv/weights"]
    everything = read_checkpoint(tmp_path / "t.ckpt", include_non_model=True)
    assert set(everything) == set(tensors)
    assert everything["_CHECKPOINTABLE_OBJECT_GRAPH"].item() == b"\x0a\x02object-graph"
    assert is_non_model_variable("a/BatchNorm/moving_mean/ExponentialMovingAverage")
    assert not is_non_model_variable("a/BatchNorm/moving_mean")
    assert not is_non_model_variable("Momentum")  # a top-level variable of that name is a weight


def test_unsupported_features_raise_not_implemented(tmp_path):
    # (snappy blocks and V1 checkpoints are read: tests/test_tf_checkpoint_v1.py)
    # A partitioned variable: the full-tensor entry lists slices; slice payload keys start with \0.
    items = [(b"", _field(1, 0, 1) + _field(3, 2, _field(1, 0, 1))),
             (b"\x00part", _entry_proto(1, (1,), 0, 0, 4, 0)),
             (b"net/emb", _entry_proto(1, (4,), 0, 0, 0, 0, slices=2))]
    write_table(tmp_path / "part.ckpt.index", items)
    Path(f"{tmp_path / 'part.ckpt'}{DATA_SUFFIX}").write_bytes(b"\0" * 4)
    with pytest.raises(NotImplementedError, match="net/emb.*partitioned"):
        read_checkpoint(tmp_path / "part.ckpt")


# --------------------------------------------------------------------------------------------
# Corruption: always a CheckpointError naming the file and the fault
# --------------------------------------------------------------------------------------------

def _copy(src_prefix, tmp_path) -> Path:
    prefix = tmp_path / src_prefix.name
    for suffix in (".index", DATA_SUFFIX):
        shutil.copy(f"{src_prefix}{suffix}", f"{prefix}{suffix}")
        Path(f"{prefix}{suffix}").chmod(0o644)
    return prefix


def test_flipped_data_byte_is_a_crc_error(tmp_path):
    prefix = _copy(RESNET, tmp_path)
    data = Path(f"{prefix}{DATA_SUFFIX}")
    raw = bytearray(data.read_bytes())
    raw[1000] ^= 0x01
    data.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"crc32c mismatch") as err:
        read_checkpoint(prefix)
    assert str(data) in str(err.value)


def test_truncated_data_file(tmp_path):
    prefix = _copy(RESNET, tmp_path)
    data = Path(f"{prefix}{DATA_SUFFIX}")
    data.write_bytes(data.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"truncated data file") as err:
        read_checkpoint(prefix)
    assert "resnet_v2_tiny/" in str(err.value)


def test_missing_shard(tmp_path):
    prefix = _copy(RESNET, tmp_path)
    Path(f"{prefix}{DATA_SUFFIX}").unlink()
    with pytest.raises(CheckpointError, match=r"data-00000-of-00001.*missing"):
        read_checkpoint(prefix)


def test_missing_index_and_empty_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no TF checkpoint"):
        read_checkpoint(tmp_path / "nothing.ckpt")
    with pytest.raises(CheckpointError, match="no `checkpoint` state file"):
        read_checkpoint(tmp_path)
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "/gone/model.ckpt"\n')
    with pytest.raises(CheckpointError, match="model.ckpt.index exists"):
        read_checkpoint(tmp_path)


@pytest.mark.parametrize("cut", [10, 47, 200])
def test_truncated_index_is_bad_magic_or_short(tmp_path, cut):
    prefix = _copy(RESNET, tmp_path)
    index = Path(f"{prefix}.index")
    index.write_bytes(index.read_bytes()[:cut])
    with pytest.raises(CheckpointError, match=r"shorter than the 48-byte table footer|bad table magic") as err:
        read_checkpoint(prefix)
    assert str(index) in str(err.value)


def test_garbled_index_block_is_a_crc_error(tmp_path):
    prefix = _copy(RESNET, tmp_path)
    index = Path(f"{prefix}.index")
    raw = bytearray(index.read_bytes())
    raw[100] ^= 0x20  # inside the data block: a tensor name
    index.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"data block at offset 0 fails its crc32c"):
        read_checkpoint(prefix)


def test_entry_size_disagreeing_with_shape(tmp_path):
    write_bundle(tmp_path / "s.ckpt", {"w": (1, (3,), b"\0" * 8)})
    with pytest.raises(CheckpointError, match=r"'w'.*needs 12 bytes.*records 8"):
        read_checkpoint(tmp_path / "s.ckpt")


def test_every_single_byte_corruption_is_caught(tmp_path):
    """Flip each byte of a real index and data file: the read raises CheckpointError or (for the
    footer padding, which nothing reads) returns exactly the original tensors. Never a crash."""
    prefix = _copy(MIXED, tmp_path)
    original = read_checkpoint(prefix, include_non_model=True)
    index_size = Path(f"{prefix}.index").stat().st_size
    handles_end = index_size - 48 + 4  # this footer's two handles take 4 bytes; then padding
    unread = set(range(handles_end, index_size - 8))
    for suffix in (".index", DATA_SUFFIX):
        path = Path(f"{prefix}{suffix}")
        pristine = path.read_bytes()
        for i in range(len(pristine)):
            corrupt = bytearray(pristine)
            corrupt[i] ^= 0x41
            path.write_bytes(bytes(corrupt))
            try:
                result = read_checkpoint(prefix, include_non_model=True)
            except CheckpointError as err:
                assert str(tmp_path) in str(err)
                continue
            assert suffix == ".index" and i in unread, f"byte {i} of {suffix} flipped unnoticed"
            assert list(result) == list(original), (suffix, i)
            for name in original:
                np.testing.assert_array_equal(result[name], original[name], err_msg=f"{suffix} {i}")
        path.write_bytes(pristine)


# --------------------------------------------------------------------------------------------
# `slimtriton convert`
# --------------------------------------------------------------------------------------------

@pytest.fixture
def cli_main(monkeypatch):
    """`slimtriton.cli.main` with only the convert sub-command registered, so that this test
    depends on no other command module."""
    import slimtriton.cli as cli
    monkeypatch.setattr(cli, "COMMANDS", ["convert"])
    return cli.main


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_convert_checkpoint(tmp_path, cli_main, capsys, suffix):
    from slimtriton.weights import load_weights
    out = tmp_path / f"resnet{suffix}"
    assert cli_main(["convert", str(RESNET), str(out)]) == 0
    expected = resnet_npz_vars()
    parameters = sum(a.size for a in expected.values())
    assert f"{len(expected)} tensors, {parameters:,} parameters" in capsys.readouterr().out
    converted = load_weights(out)
    assert set(converted) == set(expected)
    for name, array in expected.items():
        assert converted[name].dtype == array.dtype
        np.testing.assert_array_equal(converted[name], array, err_msg=name)


def test_convert_include_non_model(tmp_path, cli_main, capsys):
    from slimtriton.weights import load_weights
    out = tmp_path / "mixed.safetensors"
    assert cli_main(["convert", str(CKPT_DIR), str(out)]) == 0
    assert list(load_weights(out)) == ["half/w"]
    assert cli_main(["convert", "--include-non-model", str(CKPT_DIR), str(out)]) == 0
    assert "2 tensors, 13 parameters" in capsys.readouterr().out
    converted = load_weights(out)
    step = converted["global_step"]
    assert step.dtype == np.int64 and step.shape == () and int(step) == 123456789012
    assert converted["half/w"].dtype == np.float16


def test_convert_errors(tmp_path, cli_main, capsys):
    assert cli_main(["convert", str(RESNET), str(tmp_path / "out.pt")]) == 2
    assert "must end in .safetensors or .npz" in capsys.readouterr().err
    assert cli_main(["convert", "--include-non-model", str(FIXTURES / "resnet_v2_tiny.npz"),
                     str(tmp_path / "o.npz")]) == 2
    prefix = _copy(RESNET, tmp_path)
    Path(f"{prefix}{DATA_SUFFIX}").unlink()
    assert cli_main(["convert", str(prefix), str(tmp_path / "o.npz")]) == 2  # a user error, as in every command
    err = capsys.readouterr().err
    assert "cannot read" in err and "missing" in err
    assert not (tmp_path / "o.npz").exists()


def test_convert_list(cli_main, capsys):
    assert cli_main(["convert", "--list", str(MIXED)]) == 0
    out = capsys.readouterr().out
    assert "half/w  DT_HALF      [3, 4]" in out and "global_step" not in out
    assert "1 tensors, 12 parameters" in out
    assert cli_main(["convert", "--list", "--include-non-model", str(MIXED)]) == 0
    assert "global_step  DT_INT64     []" in capsys.readouterr().out
    assert cli_main(["convert", "--list", str(FIXTURES / "resnet_v2_tiny.npz")]) == 0
    assert "var/resnet_v2_tiny/conv1/weights" in capsys.readouterr().out
    assert cli_main(["convert", str(MIXED)]) == 2
    assert "give an output file" in capsys.readouterr().err
