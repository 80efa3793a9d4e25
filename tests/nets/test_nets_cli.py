"""`slimtriton run / nets / report` as a user runs them, through `slimtriton.cli.main`:
every factory net with random weights on the reference backend (writing every end point
with --out), the torch and triton backends on a small net, --weights (.npz, .safetensors,
the tiny ResNet v2 TF checkpoint of another net), --image (a JPEG written by Pillow), and
bad inputs, each of which must give one clear error (exit 2), never a traceback."""
from __future__ import annotations

import json

import numpy as np
import pytest

import slimtriton as st
from slimtriton.nets import nets_factory

from ..helpers import assert_close
from ..helpers import cli_user_error as _user_error
from ..helpers import run_cli as _run
from .common import FIXTURES

# The smallest size each net takes with its default arguments (the CLI has no net options).
CLI_SIZES = {
    "alexnet_v2": 195, "vgg_a": 224, "vgg_16": 224, "vgg_19": 224, "inception_v1": 193,
    "inception_v2": 32, "inception_v3": 107, "inception_v4": 107, "inception_resnet_v2": 107,
    "inception_resnet_v1": 75,
}
SMALL_NET = "mobilenet_v1_025"
TINY_CHECKPOINT = FIXTURES / "tf_checkpoint" / "resnet_v2_tiny.ckpt"


def _size(name):
    return CLI_SIZES.get(name, 32)


def _end_point_shapes(name, size):
    fn = nets_factory.get_network_fn(name, num_classes=None)
    with st.Graph():
        images = st.placeholder([1, size, size, 3], name="images")
        _, end_points = fn(images)
    return {k: tuple(v.shape) for k, v in end_points.items()}


def test_cli_sizes_name_factory_nets():
    assert set(CLI_SIZES) <= set(nets_factory.networks_map)


@pytest.mark.parametrize("name", sorted(nets_factory.networks_map))
def test_run_every_net_on_reference_writes_every_end_point(name, tmp_path, capsys):
    size = _size(name)
    out_path = tmp_path / "out.npz"
    status, out, _ = _run(capsys, "run", name, "--backend", "reference", "--image-size", size,
                          "--out", out_path)
    assert status == 0
    classes = nets_factory.default_num_classes[name]
    assert f"input [1, {size}, {size}, 3] -> output [1, {classes}]" in out
    if name != "inception_resnet_v1":  # FaceNet's embedding gets its norm, not a top-5
        assert "image 0:" in out and " 1. " in out and " 5. " in out  # a top-5 table
    shapes = _end_point_shapes(name, size)
    with np.load(out_path) as saved:
        assert sorted(saved.files) == sorted(["output", *shapes])
        for key, shape in shapes.items():
            assert saved[key].shape == shape, key
            assert np.all(np.isfinite(saved[key])), key
        output = saved["output"]
        if name.startswith(("vgg", "alexnet")):  # TF-Slim gives them no softmax: output = logits
            assert "(softmax of the logits)" in out
            np.testing.assert_array_equal(output, saved[f"{name}/fc8"].reshape(1, -1))
    assert output.shape == (1, classes)
    if name == "inception_resnet_v1":
        assert f"{classes}-d embedding, L2 norm" in out
    elif not name.startswith(("vgg", "alexnet")):
        assert abs(float(output.sum()) - 1.0) < 1e-4


def test_run_output_is_the_session_result(tmp_path, capsys):
    """--seed gives init_weights(seed) and a uniform(-1, 1) image from the same seed."""
    out_path = tmp_path / "out.npz"
    assert _run(capsys, "run", "resnet_v1_50", "--backend", "reference", "--image-size", 32,
                "--seed", 3, "--out", out_path)[0] == 0
    fn = nets_factory.get_network_fn("resnet_v1_50", None)
    with st.Graph() as g:
        images = st.placeholder([1, 32, 32, 3], name="images")
        logits, end_points = fn(images)
    x = np.random.default_rng(3).uniform(-1, 1, images.shape).astype(np.float32)
    want = st.Session(g, st.init_weights(g, seed=3)).run(
        {"logits": logits, "predictions": end_points["predictions"]}, {images: x})
    with np.load(out_path) as saved:
        assert_close(saved["output"], want["predictions"], "float32", what="run --out output")
        assert_close(saved["resnet_v1_50/logits"][:, 0, 0], want["logits"], "float32", what="run --out logits")


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_run_small_net_on_torch_and_triton_matches_reference(backend, tmp_path, capsys):
    x = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    paths = {}
    for b in ("reference", backend):
        paths[b] = tmp_path / f"{b}.npz"
        status, out, _ = _run(capsys, "run", SMALL_NET, "--backend", b, "--input", tmp_path / "x.npy",
                              "--out", paths[b])
        assert status == 0 and f"{SMALL_NET} on {b}" in out
    if backend == "triton":
        assert "compiled" in out and "first run" in out
    with np.load(paths["reference"]) as want, np.load(paths[backend]) as got:
        assert sorted(got.files) == sorted(want.files) and len(want.files) > 20
        for key in want.files:
            if key in ("output", "Predictions"):
                continue  # random weights: the logits are ~0, the softmax is uniform (compared below)
            assert_close(got[key], want[key], "float32", what=f"{backend} {key}")
        np.testing.assert_allclose(got["output"], want["output"], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_run_with_saved_weights_equals_run_with_their_seed(suffix, tmp_path, capsys):
    fn = nets_factory.get_network_fn(SMALL_NET, None)
    with st.Graph() as g:
        fn(st.placeholder([1, 32, 32, 3], name="images"))
    weights_path = tmp_path / f"w{suffix}"
    st.save_weights(st.init_weights(g, seed=5), str(weights_path))
    np.save(tmp_path / "x.npy", np.random.default_rng(1).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32))
    common = ("run", SMALL_NET, "--backend", "reference", "--input", tmp_path / "x.npy")
    assert _run(capsys, *common, "--seed", 5, "--out", tmp_path / "a.npz")[0] == 0
    assert _run(capsys, *common, "--weights", weights_path, "--out", tmp_path / "b.npz")[0] == 0
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        for key in a.files:
            assert_close(b[key], a[key], "float64", what=key)


def test_run_with_the_tf_checkpoint_of_another_net_names_both_scopes(capsys):
    err = _user_error(capsys, "run", "resnet_v2_50", "--backend", "reference", "--image-size", 32,
                      "--weights", TINY_CHECKPOINT)
    assert "resnet_v2_tiny.ckpt: none of its 76 variables is a variable of resnet_v2_50" in err
    assert "resnet_v2_tiny/" in err and "resnet_v2_50/" in err and len(err.splitlines()) == 1


def test_run_with_mis_shaped_weights_lists_them(tmp_path, capsys):
    fn = nets_factory.get_network_fn(SMALL_NET, 10)
    with st.Graph() as g:
        fn(st.placeholder([1, 32, 32, 3], name="images"))
    st.save_weights(st.init_weights(g, seed=0), str(tmp_path / "w10.npz"))
    err = _user_error(capsys, "run", SMALL_NET, "--backend", "reference", "--image-size", 32,
                      "--weights", tmp_path / "w10.npz")
    assert "2 mis-shaped" in err
    assert "MobilenetV1/Logits/Conv2d_1c_1x1/weights: expected [1, 1, 256, 1001], got [1, 1, 256, 10]" in err


def test_run_with_a_jpeg(tmp_path, capsys):
    from PIL import Image
    pixels = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "photo.jpg")
    status, out, _ = _run(capsys, "run", SMALL_NET, "--backend", "reference", "--image", tmp_path / "photo.jpg",
                          "--image-size", 32)
    assert status == 0 and "input [1, 32, 32, 3] -> output [1, 1001]" in out
    # default size: the net's own (224)
    status, out, _ = _run(capsys, "run", SMALL_NET, "--backend", "reference", "--image", tmp_path / "photo.jpg")
    assert status == 0 and "input [1, 224, 224, 3]" in out
    # alexnet_v2: TF-Slim's preprocessing_factory has no entry; --preprocessing chooses one
    err = _user_error(capsys, "run", "alexnet_v2", "--backend", "reference", "--image", tmp_path / "photo.jpg")
    assert "--preprocessing" in err
    status, out, _ = _run(capsys, "run", "alexnet_v2", "--backend", "reference", "--image", tmp_path / "photo.jpg",
                          "--preprocessing", "vgg")
    assert status == 0 and "input [1, 224, 224, 3] -> output [1, 1000]" in out


def test_nets_lists_every_factory_net(capsys):
    status, out, _ = _run(capsys, "nets")
    assert status == 0
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert sorted(rows) == sorted(nets_factory.networks_map)
    for name, (size, _minimum, classes) in rows.items():
        assert int(size) == nets_factory.networks_map[name].default_image_size
        assert int(classes) == nets_factory.default_num_classes[name]


def test_report_json_of_an_inception_net(tmp_path, capsys):
    path = tmp_path / "r.json"
    status, out, _ = _run(capsys, "report", "inception_v2", "--image-size", 32, "--json", path)
    assert status == 0 and f"wrote {path}" in out
    summary = json.loads(path.read_text())
    assert summary["kernels"]["slimtriton"] < summary["kernels"]["extern_conv_plus_pointwise"] \
        < summary["kernels"]["unfused"]
    assert summary["flops"] > 0 and summary["peak_activation_bytes"] > 0


# -- bad inputs: one clear error each ---------------------------------------------------------

def test_unknown_net(capsys):
    err = _user_error(capsys, "run", "resnet_v3_50", "--backend", "reference")
    assert "unknown network 'resnet_v3_50'" in err and "resnet_v1_50" in err
    assert "unknown network 'nope'" in _user_error(capsys, "report", "nope")


def test_image_size_the_net_cannot_take(capsys):
    err = _user_error(capsys, "run", "alexnet_v2", "--backend", "reference", "--image-size", 64)
    assert "alexnet_v2/pool5" in err and "kernel_size" in err and "[1, 2, 2, 256]" in err
    err = _user_error(capsys, "report", "vgg_16", "--image-size", 64)
    assert "vgg_16/fc6" in err


def test_missing_weights_file(tmp_path, capsys):
    err = _user_error(capsys, "run", SMALL_NET, "--backend", "reference", "--image-size", 32,
                      "--weights", tmp_path / "nope.npz")
    assert "nope.npz does not exist" in err


def test_unreadable_image_and_contradicting_batch(tmp_path, capsys):
    (tmp_path / "photo.jpg").write_bytes(b"not a jpeg")
    err = _user_error(capsys, "run", SMALL_NET, "--backend", "reference", "--image", tmp_path / "photo.jpg")
    assert "photo.jpg" in err
    np.save(tmp_path / "x.npy", np.zeros((1, 32, 32, 3), np.float32))
    err = _user_error(capsys, "run", SMALL_NET, "--backend", "reference", "--input", tmp_path / "x.npy",
                      "--batch", 2)
    assert "--batch 2" in err
