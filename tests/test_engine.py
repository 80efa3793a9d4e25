"""Saved engines (slimtriton.engine): save -> load_compiled reproduces the outputs bit for bit in a
fresh process without running a fusion pass; damaged, edited or foreign engines are refused."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import slimtriton as st
from slimtriton import slim, tf
from slimtriton.engine import EngineError, read_manifest
from tests.helpers import engine_copy_with_a_flipped_byte
from tests.test_compile import randomize_bn

REPO = Path(__file__).resolve().parent.parent


def small_net(batch=2, size=12):
    """conv+BN+relu, a residual unit, a concat and a mean+logits head: every plan feature an
    engine must carry (fused epilogues, concat buffers, mean-GEMM, derived parameters)."""
    with st.Graph() as g:
        x = st.placeholder([batch, size, size, 3], name="images")
        st.placeholder([batch, 4], name="unused_labels")
        with slim.arg_scope([slim.conv2d], normalizer_fn=slim.batch_norm,
                            normalizer_params={"is_training": False, "scale": True}):
            net = slim.conv2d(x, 8, [3, 3], stride=2, scope="conv1")
            a = slim.conv2d(net, 4, [1, 1], scope="branch_a")
            b = slim.conv2d(net, 4, [3, 3], scope="branch_b")
            net = net + tf.concat([a, b], axis=3)
            net = tf.reduce_mean(net, [1, 2], keepdims=True)
            logits = slim.conv2d(net, 5, [1, 1], activation_fn=None, normalizer_fn=None, scope="logits")
        out = {"logits": tf.squeeze(logits, [1, 2]), "features": net}
    return g, x, out


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    g, x, out = small_net()
    weights = randomize_bn(st.init_weights(g, seed=0))
    model = st.compile(g, out, weights, dtype="float32")
    images = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    expected = model(images)
    path = tmp_path_factory.mktemp("engines") / "small.engine"
    model.save(path)
    np.save(path.parent / "images.npy", images)
    return path, images, expected, model


def test_save_writes_manifest_with_versions_hashes_and_specs(saved):
    path, images, expected, model = saved
    manifest = read_manifest(path)
    assert manifest["format"] == "slimtriton-engine/1"
    assert set(manifest["versions"]) == {"slimtriton", "triton", "torch"}
    assert manifest["dtype"] == "float32" and manifest["batch"] == [2]
    assert [i["name"] for i in manifest["inputs"]] == ["images"]
    assert set(manifest["files"]) == {"program.json", "params.safetensors", "params.json", "tiles.json"}
    assert manifest["parameter_sha256"] and all(len(h) == 64 for h in manifest["parameter_sha256"].values())


def test_load_in_a_fresh_process_is_bit_exact_and_runs_no_pass(saved):
    path, images, expected, model = saved
    script = textwrap.dedent(f"""
        import numpy as np, slimtriton.fusion.program as P, slimtriton.fusion.pipeline as pipeline
        def refuse(*a, **k):
            raise AssertionError("a fusion pass ran while loading an engine")
        P.rewrite = pipeline.rewrite = pipeline.run_passes = refuse
        import slimtriton as st
        model = st.load_compiled({str(path)!r}, device="cpu")
        out = model(np.load({str(path.parent / "images.npy")!r}))
        np.savez({str(path.parent / "out.npz")!r}, **out)
        print(len(model.kernels))
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO), TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", script], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.split()[-1]) == len(model.kernels)
    got = np.load(path.parent / "out.npz")
    for key in ("logits", "features"):
        assert got[key].dtype == expected[key].dtype
        np.testing.assert_array_equal(got[key], expected[key])  # bit for bit


def test_loaded_model_keeps_feeds_rules_and_output_structure(saved):
    path, images, expected, _ = saved
    model = st.load_compiled(path, device="cpu")
    out = model({"images": images, "unused_labels": np.zeros((2, 4), np.float32)})  # fed and ignored
    assert set(out) == {"logits", "features"}
    np.testing.assert_array_equal(out["logits"], expected["logits"])
    with pytest.raises(ValueError, match="images"):
        model(images[:1])


@pytest.mark.parametrize("victim", ["params.safetensors", "program.json", "params.json"])
def test_a_damaged_file_is_refused_naming_it(saved, tmp_path, victim):
    path, *_ = saved
    copy = engine_copy_with_a_flipped_byte(path, victim, tmp_path)
    with pytest.raises(EngineError, match=victim.replace(".", r"\.")):
        st.load_compiled(copy, device="cpu")


def test_another_version_missing_manifest_and_not_a_directory_are_refused(saved, tmp_path):
    import shutil
    path, *_ = saved
    copy = tmp_path / "old.engine"
    shutil.copytree(path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["versions"]["triton"] = "0.0.1"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EngineError, match="triton 0.0.1"):
        st.load_compiled(copy, device="cpu")
    (copy / "manifest.json").unlink()
    with pytest.raises(EngineError, match="manifest.json is missing"):
        st.load_compiled(copy, device="cpu")
    with pytest.raises(EngineError, match="not a directory"):
        st.load_compiled(tmp_path / "nothing", device="cpu")


def test_save_refuses_to_overwrite_and_analysis_only_models(saved, tmp_path):
    path, *_ = saved
    g, x, out = small_net()
    with pytest.raises(ValueError, match="analysis only"):
        st.compile(g, out, None).save(tmp_path / "e")
    _, _, _, model = saved
    with pytest.raises(FileExistsError):
        model.save(path)
    with pytest.raises(ValueError, match="archs"):
        model.save(tmp_path / "e2", archs=(75,))


def test_ahead_of_time_kernels_for_sm90_are_built_here_and_listed(saved, tmp_path):
    """No GPU needed: every kernel specialization is compiled for sm_90 into the engine's Triton
    cache directory, listed in the manifest (registers, spills) and hashed."""
    _, _, _, model = saved
    path = model.save(tmp_path / "aot.engine", archs=(90,))
    manifest = read_manifest(path)
    assert manifest["target_archs"] == [90]
    kernels = manifest["aot_kernels"]["90"]
    assert len(kernels) >= 1 and all(k["spill_bytes"] == 0 for k in kernels)
    cubins = sorted((path / "aot" / "sm_90").rglob("*.cubin"))
    assert len(cubins) == len(kernels)
    assert all(str(c.relative_to(path)) in manifest["files"] for c in cubins)


def test_cli_compile_then_run_engine_matches_run(tmp_path, capsys, monkeypatch):
    """`slimtriton compile NET -o DIR` then `slimtriton run --engine DIR` gives the output of
    `slimtriton run NET` with the same (random, seeded) weights and input."""
    from slimtriton.cli import main
    engine = tmp_path / "net.engine"
    common = ["--image-size", "32", "--num-classes", "7"]
    assert main(["compile", "mobilenet_v1_025", "-o", str(engine), "--dtype", "float32", *common]) == 0
    assert "wrote engine" in capsys.readouterr().out
    assert read_manifest(engine)["meta"] == {"net": "mobilenet_v1_025", "output": "predictions", "image_size": 32}
    assert main(["run", "--engine", str(engine), "--out", str(tmp_path / "e.npz")]) == 0
    text = capsys.readouterr().out
    assert "loaded engine" in text and "mobilenet_v1_025" in text
    assert main(["run", "mobilenet_v1_025", "--dtype", "float32", *common, "--out", str(tmp_path / "r.npz")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "e.npz")["output"], np.load(tmp_path / "r.npz")["output"])
    # flags fixed by `compile` are refused with one line; an engine of another net is named
    assert main(["run", "--engine", str(engine), "--dtype", "float16"]) == 2
    assert main(["run", "resnet_v1_50", "--engine", str(engine)]) == 2
    err = capsys.readouterr().err
    assert "--dtype" in err and "compiled from mobilenet_v1_025" in err
    # --labels of the wrong length (3 for 7 classes) is refused before the engine runs
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    from slimtriton.runtime.executor import PlanExecutor
    runs = []
    monkeypatch.setattr(PlanExecutor, "run", lambda self, *a, **k: runs.append(1))
    assert main(["run", "--engine", str(engine), "--labels", str(labels)]) == 2
    assert capsys.readouterr().err.startswith("slimtriton run: error: --labels") and runs == []
