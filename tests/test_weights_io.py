"""Weights I/O: init from recorded initializers, npz / safetensors round trips, TF
checkpoints through load_weights, and the mismatch error that lists every problem."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slimtriton.ir import Graph, Op, VariableSpec
from slimtriton.weights import WeightsMismatchError, check_weights, init_weights, load_weights, save_weights

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"
CKPT_DIR = SHARED / "fixtures" / "tf_slim" / "tf_checkpoint"


def _uniform(shape, dtype, rng):
    return rng.uniform(-1, 1, shape).astype(dtype)


def _graph(initializer=_uniform):
    g = Graph()
    for name, shape in (("net/conv1/weights", (3, 3, 2, 4)), ("net/conv1/biases", (4,)),
                        ("net/logits/weights", (4, 10))):
        node = g.add_node(Op.VARIABLE, (), {"var": name, "shape": shape, "dtype": "float32"}, name)
        g.variables[name] = VariableSpec(name, shape, "float32", initializer, node=node)
    return g


def test_init_weights_is_deterministic_in_graph_order():
    g = _graph()
    a, b, c = init_weights(g, seed=0), init_weights(g, seed=0), init_weights(g, seed=1)
    assert list(a) == list(g.variables)
    for name, spec in g.variables.items():
        assert a[name].shape == spec.shape and a[name].dtype == np.float32
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["net/conv1/weights"], c["net/conv1/weights"])
    # One generator for all variables, in order: the second variable continues the stream.
    rng = np.random.default_rng(0)
    _uniform((3, 3, 2, 4), "float32", rng)
    np.testing.assert_array_equal(a["net/conv1/biases"], _uniform((4,), "float32", rng))
    check_weights(g, a)


def test_init_weights_errors():
    with pytest.raises(ValueError, match=r"net/conv1/weights \[3, 3, 2, 4\] has no initializer"):
        init_weights(_graph(initializer=None))
    with pytest.raises(ValueError, match=r"initializer of variable net/conv1/weights returned shape \[2\]"):
        init_weights(_graph(initializer=lambda shape, dtype, rng: np.zeros(2)))


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_round_trip(tmp_path, suffix):
    weights = init_weights(_graph(), seed=5)
    weights["global_step"] = np.array(7, np.int64)
    weights["half"] = np.arange(6, dtype=np.float16).reshape(2, 3)
    path = tmp_path / f"w{suffix}"
    save_weights(weights, path)
    loaded = load_weights(str(path))
    assert set(loaded) == set(weights)
    for name, value in weights.items():
        assert loaded[name].dtype == value.dtype and loaded[name].shape == value.shape
        np.testing.assert_array_equal(loaded[name], value)


def test_save_accepts_torch_tensors(tmp_path):
    import torch
    save_weights({"a/b": torch.arange(4.0)}, tmp_path / "t.safetensors")
    np.testing.assert_array_equal(load_weights(tmp_path / "t.safetensors")["a/b"], np.arange(4.0, dtype=np.float32))


def test_unknown_formats_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="unknown format; supported: .npz, .safetensors"):
        load_weights(tmp_path / "w.pt")
    with pytest.raises(ValueError, match="unknown extension"):
        save_weights({}, tmp_path / "w.pkl")
    with pytest.raises(FileNotFoundError):
        load_weights(tmp_path / "absent.npz")
    with pytest.raises(FileNotFoundError):
        load_weights(tmp_path / "absent.safetensors")


def test_mismatch_error_lists_every_problem():
    g = _graph()
    weights = init_weights(g)
    del weights["net/conv1/biases"]
    weights["net/logits/weights"] = np.zeros((4, 11), np.float32)
    weights["net/conv1/weights"] = np.zeros((3, 3, 2, 4), np.int32)
    weights["net/aux/weights"] = np.zeros((5,), np.float32)
    weights["net/aux/biases"] = np.zeros((1,), np.float32)
    with pytest.raises(WeightsMismatchError) as err:
        check_weights(g, weights)
    e = err.value
    assert isinstance(e, ValueError)
    assert e.missing == [("net/conv1/biases", (4,))]
    assert sorted(n for n, _ in e.unexpected) == ["net/aux/biases", "net/aux/weights"]
    assert e.mis_shaped == [("net/logits/weights", (4, 10), (4, 11))]
    assert e.mis_typed == [("net/conv1/weights", "float32", "int32")]
    msg = str(e)
    for line in ("missing:    net/conv1/biases [4]", "unexpected: net/aux/weights [5]",
                 "unexpected: net/aux/biases [1]",
                 "mis-shaped: net/logits/weights: expected [4, 10], got [4, 11]",
                 "mis-typed:  net/conv1/weights: expected float32, got int32"):
        assert line in msg


def test_check_weights_accepts_other_float_dtypes_and_shape_mappings():
    g = _graph()
    weights = {k: v.astype(np.float64) for k, v in init_weights(g).items()}
    check_weights(g, weights)  # the executors convert float dtypes
    check_weights({"a": (2, 3)}, {"a": np.zeros((2, 3), np.float32)})
    with pytest.raises(WeightsMismatchError, match="missing:    a"):
        check_weights({"a": (2, 3)}, {})


def test_check_weights_reads_torch_dtypes_without_converting_to_numpy():
    # A tensor NumPy cannot take (one that requires grad; a CUDA tensor alike) is checked by its dtype.
    import torch
    check_weights({"a": (2, 3)}, {"a": torch.zeros((2, 3), dtype=torch.float16, requires_grad=True)})
    with pytest.raises(WeightsMismatchError, match="mis-typed:  a: expected float32, got int64"):
        check_weights({"a": (2, 3)}, {"a": torch.zeros((2, 3), dtype=torch.int64)})


def test_tf_checkpoint_through_load_weights():
    by_prefix = load_weights(CKPT_DIR / "resnet_v2_tiny.ckpt")
    assert "resnet_v2_tiny/conv1/weights" in by_prefix
    assert by_prefix["resnet_v2_tiny/conv1/weights"].shape == (7, 7, 3, 64)
    assert not any(n == "global_step" for n in by_prefix)
    fixture = SHARED / "fixtures" / "tf_slim" / "resnet_v2_tiny.npz"
    if fixture.exists():
        with np.load(fixture, allow_pickle=False) as z:
            np.testing.assert_array_equal(by_prefix["resnet_v2_tiny/conv1/weights"],
                                          z["var/resnet_v2_tiny/conv1/weights"])


def test_bfloat16_safetensors_loads_as_float32_values(tmp_path):
    # What torch exports: safetensors.torch.save_file of bfloat16 tensors (NumPy has no bfloat16).
    import torch
    from safetensors.torch import save_file
    values = torch.tensor([[1.0, -2.5, 3.140625], [0.0078125, 65280.0, -0.0]], dtype=torch.bfloat16)
    save_file({"net/conv1/weights": values, "step": torch.tensor(3)}, str(tmp_path / "bf.safetensors"))
    loaded = load_weights(tmp_path / "bf.safetensors")
    assert loaded["net/conv1/weights"].dtype == np.float32
    np.testing.assert_array_equal(loaded["net/conv1/weights"], values.float().numpy())
    assert loaded["step"].dtype == np.int64 and loaded["step"] == 3


def _damaged(tmp_path, suffix: str, how: str) -> Path:
    good = tmp_path / f"good{suffix}"
    save_weights({"net/a": np.arange(600, dtype=np.float32).reshape(20, 30), "net/b": np.ones(5)}, good)
    data = good.read_bytes()
    damaged = {"empty": b"", "truncated": data[: len(data) // 2], "garbage": bytes(range(256)) * 4,
               "short": data[:5]}[how]
    path = tmp_path / f"{how}{suffix}"
    path.write_bytes(damaged)
    return path


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
@pytest.mark.parametrize("how,what", [("empty", "is empty"), ("truncated", "truncated"),
                                      ("garbage", "not an .npz file|corrupt or truncated"),
                                      ("short", "truncated|corrupt")])
def test_damaged_files_raise_one_error_naming_the_file(tmp_path, suffix, how, what):
    from slimtriton.weights import WeightsFileError
    path = _damaged(tmp_path, suffix, how)
    with pytest.raises(WeightsFileError, match=what) as err:
        load_weights(path)
    assert isinstance(err.value, ValueError)
    assert str(err.value).startswith(str(path)) and err.value.path == str(path)


def test_every_flipped_byte_of_an_npz_is_a_weights_file_error_or_the_same_values(tmp_path):
    # One flipped byte used to give BadZipFile, EOFError, OSError [Errno 22], TokenError, ...
    from slimtriton.weights import WeightsFileError
    weights = {"w": np.arange(12, dtype=np.float32).reshape(3, 4)}
    save_weights(weights, tmp_path / "good.npz")
    data = (tmp_path / "good.npz").read_bytes()
    path = tmp_path / "flipped.npz"
    failures = 0
    for i in range(len(data)):
        flipped = bytearray(data)
        flipped[i] ^= 0xFF
        path.write_bytes(bytes(flipped))
        try:
            loaded = load_weights(path)
        except WeightsFileError as err:
            assert str(path) in str(err)
            failures += 1
            continue
        # zip metadata nobody reads (timestamps, comments, ...): the values are still right
        assert set(loaded) == {"w"}
        np.testing.assert_array_equal(loaded["w"], weights["w"])
    assert failures > len(data) // 2


def test_tf_checkpoint_errors_are_weights_file_errors(tmp_path):
    from slimtriton.weights import WeightsFileError
    from slimtriton.weights.tf_checkpoint import CheckpointError
    assert issubclass(CheckpointError, WeightsFileError)
    bad = tmp_path / "model.ckpt.index"
    bad.write_bytes(b"\0" * 10)
    with pytest.raises(WeightsFileError, match="model.ckpt"):
        load_weights(tmp_path / "model.ckpt")
