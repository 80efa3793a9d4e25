"""The command line as a new user meets it (issue 10, items 8, 10, 11, 12, 13, 14): flags that
used to be ignored or wrong, exit statuses, messages, broken pipes, one run with progress and
a latency summary, a readable report, runnable kernel reproducers, `nets` with minimum sizes,
--version and the environment variables in --help."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import slimtriton as st
from slimtriton.cli import ENVIRONMENT, main
from slimtriton.commands import nets as nets_command
from slimtriton.nets import nets_factory

from .helpers import cli_user_error
from .helpers import run_cli as _run
from .nets.common import FIXTURES

NET = "mobilenet_v1_025"
ROOT = Path(__file__).resolve().parents[1]
TINY_CHECKPOINT = FIXTURES / "tf_checkpoint" / "resnet_v2_tiny.ckpt"


def _user_error(capsys, *argv) -> str:
    """One 'slimtriton CMD: error: ...' line, exit status 2, no traceback."""
    err = cli_user_error(capsys, *argv)
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.fixture
def no_run(monkeypatch):
    """Fails the test if anything is run or compiled: errors must come before."""
    def forbidden(*args, **kwargs):
        raise AssertionError("the net ran before the flag error was reported")
    monkeypatch.setattr(st.Session, "run", forbidden)
    monkeypatch.setattr(st, "compile", forbidden)


# -- item 8: flags that were ignored or wrong --------------------------------------------------

@pytest.mark.parametrize("command", ["run", "report"])
def test_image_size_zero_is_refused(command, capsys, no_run):
    err = _user_error(capsys, command, NET, "--image-size", 0)
    assert "--image-size must be >= 1, got 0" in err


def test_reference_backend_refuses_a_dtype(capsys, no_run):
    err = _user_error(capsys, "run", NET, "--backend", "reference", "--dtype", "float16")
    assert "--dtype float16" in err and "float64" in err


def test_preprocessing_with_input_is_refused(tmp_path, capsys, no_run):
    np.save(tmp_path / "x.npy", np.zeros((1, 32, 32, 3), np.float32))
    err = _user_error(capsys, "run", NET, "--input", tmp_path / "x.npy", "--preprocessing", "vgg")
    assert "--preprocessing applies to --image only" in err


def test_uint8_input_is_refused_as_the_python_api_does(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((1, 32, 32, 3), np.uint8))
    err = _user_error(capsys, "run", NET, "--input", tmp_path / "x.npy")
    assert "holds uint8 values" in err and "--image" in err
    # the Python API refuses it too
    fn = nets_factory.get_network_fn(NET, None)
    with st.Graph() as g:
        images = st.placeholder([1, 32, 32, 3], name="images")
        logits, _ = fn(images)
    with pytest.raises(ValueError, match="uint8"):
        st.Session(g, st.init_weights(g), backend="triton").run(logits, {images: np.zeros((1, 32, 32, 3), np.uint8)})


def test_out_must_end_in_npz(tmp_path, capsys, no_run):
    err = _user_error(capsys, "run", NET, "--out", tmp_path / "out.txt")
    assert "out.txt" in err and ".npz" in err


def test_unwritable_out_fails_before_running(tmp_path, capsys, no_run):
    err = _user_error(capsys, "run", NET, "--out", tmp_path / "nope" / "out.npz")
    assert "does not exist" in err
    (tmp_path / "file").write_text("")
    err = _user_error(capsys, "run", NET, "--out", tmp_path / "file" / "out.npz")
    assert "--out" in err


def test_wrong_length_labels_fail_before_running(tmp_path, capsys, no_run):
    (tmp_path / "labels.txt").write_text("cat\ndog\n")
    err = _user_error(capsys, "run", NET, "--image-size", 32, "--labels", tmp_path / "labels.txt")
    assert "2 labels for 1001 outputs" in err and "labels.txt" in err


def test_report_json_dash_writes_json_to_stdout(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = _run(capsys, "report", NET, "--image-size", 32, "--json", "-")
    assert status == 0 and not (tmp_path / "-").exists()
    summary = json.loads(out)  # stdout is the JSON document only
    assert summary["kernels"]["slimtriton"] == len(summary["steps"]) and "planned output" in err
    first = summary["steps"][0]
    assert first["op_kinds"] == "conv2d+batch_norm+relu6" and first["layer"].endswith("Conv2d_0")
    assert first["triton_kernels"][0]["fn"] == "conv_gemm_kernel" and "BLOCK_M" in first["triton_kernels"][0]["tile"]
    assert summary["outputs"] == ["MobilenetV1/Predictions/Softmax"]  # the planned output is named


# -- item 10: broken pipes, exit statuses, messages ---------------------------------------------

def test_closed_stdout_is_quiet(tmp_path):
    """`slimtriton convert --list CKPT | head` : the reader goes away; no 'Broken pipe' error."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "slimtriton.cli", "convert", "--list", str(TINY_CHECKPOINT)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    proc.stdout.close()  # before the command writes anything
    err = proc.stderr.read().decode()
    status = proc.wait(timeout=120)
    assert "Broken pipe" not in err and "Traceback" not in err and "Exception ignored" not in err, err
    assert status == 141


def test_same_user_error_same_exit_status(tmp_path, capsys):
    missing = tmp_path / "nope.npz"
    for argv in (("run", NET, "--weights", missing), ("convert", missing, tmp_path / "o.npz"),
                 ("convert", "--list", missing)):
        status, _, err = _run(capsys, *argv)
        assert status == 2 and "nope.npz" in err, (argv, status, err)


@pytest.mark.parametrize("argv", [["run", "nope"], ["report", "nope"], ["audit", "nope"],
                                  ["compile", "nope", "-o", "{tmp}/engine"], ["export", "nope", "-o", "{tmp}/x.onnx"],
                                  ["convert", "{tmp}/nope.npz", "{tmp}/x.npz"]])
def test_an_unknown_net_or_file_is_exit_status_2_in_every_command(argv, tmp_path, capsys):
    status, _, err = _run(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert status == 2 and "nope" in err and "Traceback" not in err, err


def test_one_map_from_errors_to_exit_statuses():
    from slimtriton.cli import exit_status
    from slimtriton.commands.errors import UsageError
    assert [exit_status(e) for e in (UsageError("x"), ValueError("x"), FileNotFoundError("x"),
                                     NotImplementedError("x"))] == [2, 2, 2, 2]
    assert exit_status(BrokenPipeError()) == 141 and exit_status(KeyboardInterrupt()) == 130
    assert exit_status(RuntimeError("a bug")) is None  # a bug keeps its traceback


def test_nchw_input_says_nchw(tmp_path, capsys, no_run):
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 32, 32), np.float32))
    err = _user_error(capsys, "run", NET, "--input", tmp_path / "x.npy")
    assert "[1, 3, 32, 32]" in err and "NCHW" in err and "NHWC" in err and "[N, H, W, 3]" in err


def test_directory_as_image_says_directory(tmp_path, capsys, no_run):
    err = _user_error(capsys, "run", NET, "--image", tmp_path)
    assert "is a directory" in err and "does not exist" not in err


def test_negative_seed_names_the_flag(capsys, no_run):
    assert "--seed must be >= 0, got -1" in _user_error(capsys, "run", NET, "--seed", -1)


# -- item 11: one run, progress, latency --------------------------------------------------------

def _count_executor_runs(monkeypatch) -> list:
    from slimtriton.runtime.executor import PlanExecutor
    calls = []
    original = PlanExecutor.run

    def counted(self, inputs, after_step=None):
        calls.append([])
        hook = None if after_step is None else (lambda step: (calls[-1].append(step), after_step(step)))
        return original(self, inputs, after_step=hook)
    monkeypatch.setattr(PlanExecutor, "run", counted)
    return calls


def test_triton_runs_once_with_progress(capsys, monkeypatch):
    from slimtriton.commands import run as run_command
    monkeypatch.setattr(run_command, "PROGRESS_AFTER_S", 0)  # show the bar even for a short run
    calls = _count_executor_runs(monkeypatch)
    status, out, err = _run(capsys, "run", NET, "--image-size", 32)
    assert status == 0 and len(calls) == 1  # once
    kernels = int(out.split("compiled ", 1)[1].split()[0])
    assert sum(step.launches_kernel for step in calls[0]) == kernels  # the progress hook saw every kernel
    assert f"running:   0%|          | 0/{kernels}" in err  # the bar (on stderr)
    assert "latency" not in out


def test_iterations_print_a_latency_summary(capsys, monkeypatch):
    calls = _count_executor_runs(monkeypatch)
    status, out, _ = _run(capsys, "run", NET, "--image-size", 32, "--iterations", 3, "--warmup", 2)
    assert status == 0 and len(calls) == 1 + 2 + 3
    line = next(line for line in out.splitlines() if line.startswith("latency"))
    for word in ("2 warm-up", "3 iterations", "median", "p90", "min", "max", "images/s (batch 1)"):
        assert word in line, line


def test_iterations_on_the_reference_backend(capsys):
    status, out, _ = _run(capsys, "run", NET, "--image-size", 32, "--backend", "reference", "--iterations", 1)
    assert status == 0 and "latency: 1 warm-up, 1 iterations" in out


# -- item 12: a readable report ------------------------------------------------------------------

def test_report_shows_op_kinds_triton_kernels_and_units(capsys):
    status, out, _ = _run(capsys, "report", "inception_v3", "--image-size", 107)
    assert status == 0
    rows = [line for line in out.splitlines() if line[:3].strip().isdigit()]
    assert len(rows) == int(out.split(" kernels computing")[0].rsplit(" ", 1)[1])
    assert max(len(line) for line in rows) < 200
    conv = next(line for line in rows if "Conv2d_1a_3x3" in line)
    assert "conv2d+batch_norm+relu" in conv and "conv_gemm_kernel" in conv and "BatchNorm" not in conv
    assert "Conv2d_1a_3x3/Conv2D" not in conv  # the layer once, not each op's scope name
    assert " KiB" in out and " KB" not in out and " MB" not in out and " GB" not in out
    assert "planned output: predictions (softmax)" in out and "'-> C[+k]'" in out
    branch = next(line for line in rows if "Mixed_5b/Branch_1/Conv2d_0b_5x5" in line)
    assert branch.endswith("conv2d+batch_norm+relu -> concat[+64]")


def test_report_logits_plans_one_kernel_fewer(tmp_path, capsys):
    counts = {}
    for output in ("predictions", "logits"):
        path = tmp_path / f"{output}.json"
        assert _run(capsys, "report", "resnet_v1_50", "--image-size", 64, "--output", output, "--json", path)[0] == 0
        counts[output] = json.loads(path.read_text())["kernels"]["slimtriton"]
    assert counts["predictions"] == counts["logits"] + 1


# -- item 13: runnable reproducers ---------------------------------------------------------------

def test_dumped_kernels_run_as_standalone_files(tmp_path, capsys):
    dump = tmp_path / "kernels"
    status, out, _ = _run(capsys, "report", NET, "--image-size", 32, "--dump", dump)
    assert status == 0
    kernels = int(out.split(" kernels computing")[0].rsplit(" ", 1)[1])
    files = sorted(dump.glob("*.py"))
    assert kernels >= 15 and len(files) >= kernels  # one file per launch (a split-K step has two)
    # conv, a 1x1 conv with its depthwise conv in the A load (MobileNet's separable block), softmax
    picks = [files[0], next(f for f in files if "window_conv2d" in f.name), files[-1]]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # no slimtriton on the path
    for path in picks:
        text = path.read_text()
        assert "slimtriton" not in "".join(l for l in text.splitlines() if l.startswith(("import", "from")))
        proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "launched" in proc.stdout and "all finite: True" in proc.stdout


_UNWRITABLE = object()  # a global a kernel reads that cannot be written out as source


def test_reproducer_says_source_only_when_a_global_cannot_be_written():
    import triton
    import triton.language as tl

    from slimtriton.kernels.launch import KernelLaunch
    from slimtriton.reproducer import reproducer_source

    @triton.jit
    def odd_kernel(x_ptr, BLOCK: tl.constexpr):
        _UNWRITABLE  # noqa: B018
        tl.store(x_ptr + tl.arange(0, BLOCK), 0.0)

    import torch
    launch = KernelLaunch("odd", odd_kernel, (torch.empty(4, device="meta"),), {"BLOCK": 4}, (1,))
    text = reproducer_source(launch)
    assert "SOURCE ONLY" in text and "_UNWRITABLE" in text and "raise SystemExit" in text


# -- item 14: nets, --version, environment, random weights ---------------------------------------

def test_nets_lists_the_minimum_image_size(capsys):
    status, out, _ = _run(capsys, "nets")
    assert status == 0 and "min size" in out.splitlines()[0]
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert sorted(rows) == sorted(nets_factory.networks_map)
    for name, (_, minimum, _) in rows.items():
        assert int(minimum) == nets_command.MIN_IMAGE_SIZE[name]


def test_nets_measure_recomputes_the_table(capsys):
    status, out, _ = _run(capsys, "nets", "--measure")
    assert status == 0
    measured = {line.split()[0]: int(line.split()[2]) for line in out.splitlines()[1:]}
    assert measured == nets_command.MIN_IMAGE_SIZE


@pytest.mark.parametrize("name", sorted(nets_factory.networks_map))
def test_minimum_image_size_table_matches_a_build(name):
    size = nets_command.MIN_IMAGE_SIZE[name]
    assert nets_command.builds_at(name, size)
    assert size == 1 or not nets_command.builds_at(name, size - 1)


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"slimtriton {st.__version__}")


def test_help_lists_the_environment_variables(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in ("SLIMTRITON_TRACEBACK", "SLIMTRITON_AUTOTUNE", "SLIMTRITON_CACHE_DIR", "SLIMTRITON_POISON",
                 "TRITON_INTERPRET"):
        assert name in out
    readme = (ROOT / "README.md").read_text()
    for name, _ in ENVIRONMENT:
        assert name.split("=")[0] in readme


def test_run_says_when_the_weights_are_random(tmp_path, capsys):
    status, out, _ = _run(capsys, "run", NET, "--image-size", 32, "--backend", "reference")
    assert status == 0 and "weights: RANDOM" in out


def test_report_why_prints_the_fusion_decisions(capsys):
    status, out, _ = _run(capsys, "report", "resnet_v2_50", "--image-size", 64, "--why")
    assert status == 0
    why = out.split("fusion decisions")[1]
    for line in ("fold_affine: fused conv_bias x22, conv_batch_norm x32; declined 0",
                 "prologue: fused pointwise_into_prologue x20", "strided_residual: fused strided_residual x3",
                 "mean_gemm: fused mean_gemm x1"):
        assert line in why, why


def test_a_missing_optional_module_is_a_user_error_naming_its_extra(monkeypatch):
    """Any ModuleNotFoundError of an optional dependency (slimtriton/extras.py) maps to exit 2."""
    from slimtriton.cli import EXIT_USER_ERROR, exit_status
    from slimtriton.extras import MissingExtraError, missing_extra, require
    onnx_missing = ModuleNotFoundError("No module named 'onnx'", name="onnx")
    assert exit_status(onnx_missing) == EXIT_USER_ERROR
    assert "pip install 'slimtriton[onnx]'" in missing_extra(onnx_missing)
    assert exit_status(ModuleNotFoundError("No module named 'foo'", name="foo")) is None  # a bug: traceback
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ModuleNotFoundError
    with pytest.raises(MissingExtraError, match=r"--ray needs ray, which is not installed: .*slimtriton\[ray\]"):
        require("ray", "--ray")
    assert exit_status(MissingExtraError("x")) == EXIT_USER_ERROR
