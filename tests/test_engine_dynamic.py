"""Saved engines of a dynamic-batch model (issue 12): `model.save` of a model compiled with
`max_batch` writes one program per batch bucket over one copy of the prepared parameters, and
`st.load_compiled` rebuilds the dynamic model (no pass runs) that takes any batch up to the
largest bucket, bit for bit as the saved model, in a fresh process; `slimtriton compile
--max-batch` and `slimtriton run --engine --batch`."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import slimtriton as st
from slimtriton.engine import EngineError, read_manifest
from tests.helpers import assert_close, engine_copy_with_a_flipped_byte
from tests.test_compile import randomize_bn
from tests.test_engine import small_net

REPO = Path(__file__).resolve().parent.parent
BATCHES = (1, 2, 3, 4)


def _images(batch, seed=1):
    return np.random.default_rng(seed).standard_normal((batch, 12, 12, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    g, x, out = small_net(batch=None)
    weights = randomize_bn(st.init_weights(g, seed=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the interpreter notice
        model = st.compile(g, out, weights, dtype="float32", max_batch=4)
    images = _images(4)
    expected = {b: model(images[:b]) for b in BATCHES}
    path = tmp_path_factory.mktemp("engines") / "dynamic.engine"
    model.save(path)
    np.save(path.parent / "images.npy", images)
    return path, images, expected, model, (g, x, out, weights)


def test_manifest_lists_the_batch_range_buckets_and_one_program_per_bucket(saved):
    path, _, _, model, _ = saved
    manifest = read_manifest(path)
    assert manifest["batch_sizes"] == [1, 2, 4] and manifest["batch_range"] == [1, 4]
    assert manifest["programs"] == {"1": "program_batch1.json", "2": "program_batch2.json",
                                    "4": "program_batch4.json"}
    assert manifest["batch"] == [None] and manifest["inputs"][0]["shape"] == [None, 12, 12, 3]
    assert all(o["shape"][0] is None for o in manifest["outputs"])
    assert [d["name"] for d in manifest["dynamic_inputs"]] == ["images", "unused_labels"]
    # one program per bucket, ONE copy of the parameters (no program.json of a static engine)
    assert set(manifest["files"]) == {"program_batch1.json", "program_batch2.json", "program_batch4.json",
                                      "params.safetensors", "params.json", "tiles.json"}
    assert sorted(p.name for p in path.iterdir()) == sorted([*manifest["files"], "manifest.json"])
    from safetensors import safe_open
    with safe_open(str(path / "params.safetensors"), "pt") as f:
        assert sorted(f.keys()) == sorted(manifest["parameter_sha256"])
    assert set(model._params) == set(json.loads((path / "params.json").read_text()))


def test_load_in_a_fresh_process_takes_every_batch_bit_exact_and_runs_no_pass(saved):
    path, images, expected, model, _ = saved
    out = path.parent / "out"
    script = textwrap.dedent(f"""
        import numpy as np, slimtriton.fusion.program as P, slimtriton.fusion.pipeline as pipeline
        def refuse(*a, **k):
            raise AssertionError("a fusion pass ran while loading an engine")
        P.rewrite = pipeline.rewrite = pipeline.run_passes = refuse
        import slimtriton as st
        model = st.load_compiled({str(path)!r}, device="cpu")
        images = np.load({str(path.parent / "images.npy")!r})
        for batch in (3, 1, 4, 2):  # every bucket, and batch 3 padded to bucket 4
            np.savez({str(out)!r} + f"{{batch}}.npz", **model(images[:batch]))
        try:
            model(np.concatenate([images, images[:1]]))
        except ValueError as exc:
            print("refused:", exc)
        print(model.batch_sizes, sorted(model._buckets), len(model.kernels))
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO), TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", script], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == f"[1, 2, 4] [1, 2, 4] {len(model.kernels)}"
    assert "batch 5 is outside the range" in lines[-2] and "1..4" in lines[-2]
    for batch in BATCHES:
        got = np.load(f"{out}{batch}.npz")
        for key in ("logits", "features"):
            assert got[key].shape[0] == batch
            np.testing.assert_array_equal(got[key], expected[batch][key])  # bit for bit


def test_loaded_dynamic_model_matches_the_reference_and_keeps_the_shared_arena(saved):
    path, images, expected, compiled, (g, x, out, weights) = saved
    model = st.load_compiled(path, device="cpu")
    assert model.batch_sizes == [1, 2, 4] and model.max_batch == 4
    table = model.report(batch=3).split("dynamic batch:")[1]  # the buckets' kernels, FLOPs, bytes, arenas
    assert table == compiled.report(batch=3).split("dynamic batch:")[1]
    want = st.Session(g, weights, backend="reference").run(out, {x: images})
    for batch in (3, 2):
        got = model(images[:batch])
        assert_close(got["logits"], want["logits"][:batch], "float32", what=f"loaded engine, batch {batch}")
    backing = model._arena.backing()
    start, end = backing.data_ptr(), backing.data_ptr() + model._arena.nbytes
    for executor, _ in model._buckets.values():
        assert executor.params is model._params  # the parameters loaded once
        assert all(start <= v.data_ptr() < end for v in executor._arena().values())
    with pytest.raises(ValueError, match=r"images: expected float32\[None,12,12,3\]"):
        model(images[:, :8])


@pytest.mark.parametrize("victim", ["program_batch2.json", "params.safetensors"])
def test_a_damaged_bucket_program_or_parameter_file_is_refused(saved, tmp_path, victim):
    path, *_ = saved
    copy = engine_copy_with_a_flipped_byte(path, victim, tmp_path)
    with pytest.raises(EngineError, match=victim.replace(".", r"\.")):
        st.load_compiled(copy, device="cpu")


def _edit_manifest(path, tmp_path, edit):
    copy = tmp_path / "edited.engine"
    shutil.copytree(path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    edit(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def test_an_edited_manifest_is_refused(saved, tmp_path):
    """The manifest carries no hash of itself: its batch entries are checked against the programs."""
    path, *_ = saved

    def swap(m):
        m["programs"]["1"], m["programs"]["2"] = m["programs"]["2"], m["programs"]["1"]
    with pytest.raises(EngineError, match=r"program_batch2\.json should hold the plan for batch 1"):
        st.load_compiled(_edit_manifest(path, tmp_path / "a", swap), device="cpu")

    def widen(m):
        m["batch_sizes"], m["batch_range"] = [1, 2, 4, 8], [1, 8]
    with pytest.raises(EngineError, match="disagree"):
        st.load_compiled(_edit_manifest(path, tmp_path / "b", widen), device="cpu")

    def unhashed(m):
        del m["files"]["program_batch4.json"]
    with pytest.raises(EngineError, match="not among the manifest's hashed files"):
        st.load_compiled(_edit_manifest(path, tmp_path / "c", unhashed), device="cpu")

    def static(m):
        m["dynamic_inputs"][0]["shape"] = m["dynamic_inputs"][0]["attrs"]["shape"] = [4, 12, 12, 3]
    with pytest.raises(EngineError, match="dynamic_inputs"):
        st.load_compiled(_edit_manifest(path, tmp_path / "d", static), device="cpu")


def test_ahead_of_time_kernels_of_every_bucket_for_sm90_are_listed(saved, tmp_path):
    """Each distinct specialization of every bucket's plan is compiled for sm_90 (no GPU), listed
    with the buckets that launch it, and hashed."""
    _, _, _, model, _ = saved
    path = model.save(tmp_path / "aot.engine", archs=(90,))
    manifest = read_manifest(path)
    kernels = manifest["aot_kernels"]["90"]
    assert all(k["spill_bytes"] == 0 and k["batches"] for k in kernels)
    assert {b for k in kernels for b in k["batches"]} == {1, 2, 4}
    from slimtriton.runtime.launches import record_plan_launches
    distinct = {launch.key() for p in model.plans.values() for step in record_plan_launches(p) for launch in step}
    assert len(kernels) == len(distinct)
    cubins = sorted((path / "aot" / "sm_90").rglob("*.cubin"))
    assert len(cubins) == len(kernels)
    assert all(str(c.relative_to(path)) in manifest["files"] for c in cubins)


def test_cli_compile_max_batch_then_run_engine_at_several_batches(tmp_path, capsys, monkeypatch):
    import slimtriton.engine as engine_mod
    from slimtriton.cli import main
    built = []  # --arch 90: every bucket's launches go to the ahead-of-time compile (the real one
    # is tested above on a small net; here it would compile ~40 specializations)

    def fake_aot(launches, cache_dir, arch):
        built.append((arch, {b for b, _ in launches}))
        cache_dir.mkdir(parents=True)
        return []
    monkeypatch.setattr(engine_mod, "_compile_ahead_of_time", fake_aot)
    from slimtriton.nets.build import build_net
    engine = tmp_path / "dyn.engine"
    common = ["--image-size", "32", "--num-classes", "7"]
    g = build_net("mobilenet_v1_025", 32, None, 7)[0]
    np.savez(tmp_path / "w.npz", **st.init_weights(g, seed=3))  # --weights W (not the default seed)
    weights = ["--weights", str(tmp_path / "w.npz")]
    assert main(["compile", "mobilenet_v1_025", "--max-batch", "3", "--arch", "90", "-o", str(engine),
                 "--dtype", "float32", *weights, *common]) == 0
    assert "batch buckets [1, 2, 3]" in capsys.readouterr().out
    manifest = read_manifest(engine)
    assert manifest["batch_sizes"] == [1, 2, 3] and manifest["inputs"][0]["shape"] == [None, 32, 32, 3]
    assert manifest["target_archs"] == [90] and built == [(90, {1, 2, 3})]
    # batch 2 runs the bucket-2 plan, the plan `run NET --batch 2` compiles: the same bits
    assert main(["run", "--engine", str(engine), "--batch", "2", "--out", str(tmp_path / "e2.npz")]) == 0
    text = capsys.readouterr().out
    assert "any batch 1..3 (buckets [1, 2, 3])" in text and "input [2, 32, 32, 3]" in text
    assert main(["run", "mobilenet_v1_025", "--batch", "2", "--dtype", "float32", *weights, *common,
                 "--out", str(tmp_path / "r2.npz")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "e2.npz")["output"], np.load(tmp_path / "r2.npz")["output"])
    # an --input of another batch in range; out of range and mixed flags are one line each
    x = np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    np.save(tmp_path / "x3.npy", x)
    assert main(["run", "--engine", str(engine), "--input", str(tmp_path / "x3.npy"),
                 "--out", str(tmp_path / "e3.npz")]) == 0
    assert np.load(tmp_path / "e3.npz")["output"].shape == (3, 7)
    capsys.readouterr()
    assert main(["run", "--engine", str(engine), "--batch", "4"]) == 2
    err = capsys.readouterr().err
    assert "--batch 4: the engine" in err and "takes batches 1..3 (batch buckets [1, 2, 3])" in err
    assert main(["run", "--engine", str(engine), "--batch", "2", "--input", str(tmp_path / "x3.npy")]) == 2
    assert main(["compile", "mobilenet_v1_025", "--max-batch", "3", "--batch", "2", "-o", str(tmp_path / "x")]) == 2
    assert main(["compile", "mobilenet_v1_025", "--batch-sizes", "2,x", "-o", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "--batch 2 does not match the --input batch of 3" in err
    assert "--batch and --max-batch: give one" in err and "--batch-sizes '2,x'" in err
