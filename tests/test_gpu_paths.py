"""The GPU-only paths, made testable on the CPU with fakes of `torch.cuda`, and checked for
real when a CUDA device is present (the `cuda` tests at the end run unchanged on a GPU).

* CUDA graph runner (`slimtriton.runtime.cuda_graph`): a fake graph whose capture records
  the Triton launches the real plan executor makes (interpreter kernels, not run) and whose
  replay runs them again on the captured buffers -- the semantics of a CUDA graph. Warm-up
  before capture on a side stream, static inputs copied in, outputs cloned (a result kept
  by the caller is not overwritten by the next call), mismatched inputs refused, capture
  failure -> eager with a warning, eager inside a caller's capture, reset -> re-capture.
* device selection (`slimtriton.compiler.kernel_device`).
* autotune (`slimtriton.kernels.config`): concurrent processes sharing the cache file, an
  unwritable cache, stale winners, no timing inside a capture, SLIMTRITON_AUTOTUNE=0,
  broken timings, do_bench's median, timing launches not recorded.
* torch eager backend feeds on another device / dtype, constants made once.
"""
from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import slimtriton as st
import slimtriton.kernels as K
from slimtriton import slim, tf
from slimtriton.kernels import config as C
from slimtriton.kernels.launch import KernelLaunch
from slimtriton.runtime.cuda_graph import CudaGraphRunner
from tests.helpers import assert_close

REPO = Path(__file__).resolve().parents[1]
ON_GPU = torch.cuda.is_available()
cuda_only = pytest.mark.skipif(not ON_GPU, reason="needs a CUDA device")


def small_graph(batch=2, size=6):
    with st.Graph() as g:
        x = st.placeholder([batch, size, size, 3], name="images")
        with slim.arg_scope([slim.conv2d], normalizer_fn=slim.batch_norm,
                            normalizer_params={"is_training": False, "scale": True}):
            net = slim.conv2d(x, 8, [3, 3], stride=2, scope="conv1")
            res = slim.conv2d(net, 8, [1, 1], activation_fn=None, scope="conv2")
            net = tf.nn.relu(net + 0.5 * res)
        net = slim.max_pool2d(net, [2, 2], padding="SAME", scope="pool")
        logits = slim.fully_connected(slim.flatten(net), 5, activation_fn=None, scope="logits")
    return g, x, logits


def reference(g, out, x, images, w):
    return st.Session(g, w, backend="reference").run(out, {x: images})


def images_for(x, seed):
    return np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)


# -- fakes of torch.cuda's stream and graph API -----------------------------------------------
class FakeCuda:
    """Streams are names; `graph(g)` makes `g` the capturing graph: every kernel launch
    (`KernelLaunch.execute`) is recorded into it instead of running, and `g.replay()` runs the
    recorded launches again, with the pointers they were captured with."""

    def __init__(self, monkeypatch, fail_capture: Exception | None = None):
        self.current = "default"
        self.capturing = None
        self.fail_capture = fail_capture
        self.events: list[tuple] = []
        fake = self

        class Stream:
            count = 0

            def __init__(self):
                Stream.count += 1
                self.name = f"side{Stream.count}"

            def wait_stream(self, other):
                fake.events.append(("wait", self.name, other.name))

        class Current:
            def __init__(self, name):
                self.name = name

            def wait_stream(self, other):
                fake.events.append(("wait", self.name, other.name))

        class CUDAGraph:
            def __init__(self):
                self.launches = []

            def replay(self):
                fake.events.append(("replay", fake.current))
                for launch in self.launches:
                    real_execute(launch)

        @contextlib.contextmanager
        def stream(s):
            saved, fake.current = fake.current, s.name
            try:
                yield
            finally:
                fake.current = saved

        @contextlib.contextmanager
        def graph(g, pool=None, stream=None):
            if fake.fail_capture is not None:
                raise fake.fail_capture
            saved, fake.current = fake.current, stream.name if stream is not None else "capture"
            fake.capturing = g
            fake.events.append(("capture_begin", fake.current))
            try:
                yield
            finally:
                fake.capturing, fake.current = None, saved
                fake.events.append(("capture_end",))

        real_execute = KernelLaunch.execute

        def execute(launch):
            if fake.capturing is not None:
                fake.capturing.launches.append(launch)  # recorded, not run: as in a CUDA graph capture
            else:
                real_execute(launch)

        monkeypatch.setattr(KernelLaunch, "execute", execute)
        monkeypatch.setattr(torch.cuda, "Stream", Stream)
        monkeypatch.setattr(torch.cuda, "CUDAGraph", CUDAGraph)
        monkeypatch.setattr(torch.cuda, "stream", stream)
        monkeypatch.setattr(torch.cuda, "graph", graph)
        monkeypatch.setattr(torch.cuda, "current_stream", lambda *a: Current(fake.current))
        monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: fake.capturing is not None)


def compiled_with_fake_graph(monkeypatch, **fake_options):
    """A CPU (interpreter) compiled model whose plan is replayed through CudaGraphRunner and FakeCuda."""
    g, x, logits = small_graph()
    w = st.init_weights(g, seed=0)
    model = st.compile(g, logits, w, device=None if not ON_GPU else "cuda", cuda_graph=False)
    fake = FakeCuda(monkeypatch, **fake_options)
    runner = CudaGraphRunner(model._executor, model.plan)
    runs = []
    original = model._executor.run

    def logged_run(inputs, *a, **k):
        runs.append((fake.current, fake.capturing is not None))
        return original(inputs, *a, **k)
    monkeypatch.setattr(model._executor, "run", logged_run)
    model._cuda_graph = runner
    return g, x, logits, w, model, fake, runner, runs


@pytest.mark.skipif(ON_GPU, reason="fakes of torch.cuda replace the real ones on the CPU only")
def test_cuda_graph_runner_captures_after_warm_up_and_replays_with_cloned_outputs(monkeypatch):
    g, x, logits, w, model, fake, runner, runs = compiled_with_fake_graph(monkeypatch)
    a, b, c = (images_for(x, s) for s in (1, 2, 3))
    first = model(a)  # eager, then warm-up on a side stream, then capture
    assert_close(first, reference(g, logits, x, a, w), "float32", what="first (eager) call")
    assert runner.graph is not None and len(runner.graph.launches) == len(model.kernels) > 0
    assert runs == [("default", False), ("side1", False), ("side1", True)]
    assert [e[0] for e in fake.events] == ["wait", "wait", "capture_begin", "capture_end"]
    # replays: inputs copied into the static tensors, outputs cloned
    kept = model(torch.from_numpy(b))
    assert_close(kept, reference(g, logits, x, b, w), "float32", what="first replay")
    snapshot = kept.clone()
    later = model(torch.from_numpy(c))
    assert_close(later, reference(g, logits, x, c, w), "float32", what="second replay")
    assert torch.equal(kept, snapshot), "a returned result changed when the graph was replayed again"
    assert kept.data_ptr() not in {o.data_ptr() for o in runner.static_outputs}
    assert runner.replays == 2 and len(runs) == 3  # replays run no Python executor pass
    assert isinstance(model(c), np.ndarray)
    # the static input was the first call's data, not aliased to the caller's array
    assert not np.shares_memory(runner.static_inputs["images"].numpy(), a)


@pytest.mark.skipif(ON_GPU, reason="fakes of torch.cuda replace the real ones on the CPU only")
def test_cuda_graph_runner_refuses_mismatched_inputs_by_name(monkeypatch):
    g, x, logits, w, model, fake, runner, runs = compiled_with_fake_graph(monkeypatch)
    model(images_for(x, 1))
    good = torch.from_numpy(images_for(x, 2))
    with pytest.raises(ValueError, match=r"input images: the CUDA graph was captured for torch.float32\[2, 6, 6, 3\]"):
        runner.run({"images": good[:1]})  # copy_ would broadcast it silently
    with pytest.raises(ValueError, match=r"input images: .*got torch.float16"):
        runner.run({"images": good.half()})
    with pytest.raises(ValueError, match="differ from the captured ones"):
        runner.run({"other": good})
    # the model converts what it can and names what it cannot
    assert_close(model(good.double()), reference(g, logits, x, good.numpy(), w), "float32")
    with pytest.raises(ValueError, match=r"placeholder images: expected float32\[2,6,6,3\]"):
        model(good[:1])


@pytest.mark.skipif(ON_GPU, reason="fakes of torch.cuda replace the real ones on the CPU only")
def test_cuda_graph_capture_failure_falls_back_to_eager_with_a_warning(monkeypatch):
    g, x, logits, w, model, fake, runner, runs = compiled_with_fake_graph(
        monkeypatch, fail_capture=RuntimeError("operation not permitted when stream is capturing"))
    a, b = images_for(x, 1), images_for(x, 2)
    with pytest.warns(UserWarning, match="CUDA graph capture failed.*not permitted"):
        first = model(a)
    assert_close(first, reference(g, logits, x, a, w), "float32")
    assert runner.failed and runner.graph is None
    assert_close(model(b), reference(g, logits, x, b, w), "float32")
    assert runs[-1] == ("default", False)
    runner.reset()  # e.g. after parameters changed: the next call captures again
    fake.fail_capture = None
    model(a)
    assert runner.graph is not None and not runner.failed
    assert_close(model(b), reference(g, logits, x, b, w), "float32")


@pytest.mark.skipif(ON_GPU, reason="fakes of torch.cuda replace the real ones on the CPU only")
def test_cuda_graph_runner_runs_eagerly_inside_a_callers_capture(monkeypatch):
    g, x, logits, w, model, fake, runner, runs = compiled_with_fake_graph(monkeypatch)
    outer = torch.cuda.CUDAGraph()
    a = images_for(x, 1)
    with torch.cuda.graph(outer, stream=torch.cuda.Stream()):
        inputs = {"images": torch.from_numpy(a)}
        static = runner.run(inputs)  # recorded into the caller's graph, no nested capture
    assert runner.graph is None and len(outer.launches) == len(model.kernels)
    outer.replay()
    assert_close(static[0], reference(g, logits, x, a, w), "float32")


def test_stream_order_waits_for_the_previous_calls_stream_only_when_it_changes(monkeypatch):
    from slimtriton.runtime.cuda_graph import StreamOrder
    waits = []

    class S:
        def __init__(self, name):
            self.name = name

        def __eq__(self, other):
            return self.name == other.name

        def wait_stream(self, other):
            waits.append((self.name, other.name))
    current = ["a"]
    monkeypatch.setattr(torch.cuda, "current_stream", lambda *a: S(current[0]))
    order = StreamOrder()
    order()
    order()
    assert waits == []  # one stream orders its own work
    current[0] = "b"
    order()
    assert waits == [("b", "a")]
    order()
    current[0] = "a"
    order()
    assert waits == [("b", "a"), ("a", "b")]


# -- device selection ---------------------------------------------------------------------------
def test_device_none_is_cuda_when_present_else_interpreter_with_a_warning(monkeypatch):
    from slimtriton.compiler import kernel_device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernel_device(None) == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="no CUDA device; running the Triton kernels in the interpreter"):
        assert kernel_device(None) == torch.device("cpu")


def test_explicit_devices_the_kernels_cannot_run_on_are_refused(monkeypatch):
    from slimtriton.compiler import kernel_device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="'cuda:0': no CUDA device is available"):
        kernel_device("cuda:0")
    monkeypatch.setenv("TRITON_INTERPRET", "0")  # a process that compiles for the GPU
    with pytest.raises(ValueError, match="'cpu': this process compiles the Triton kernels for the GPU"):
        kernel_device("cpu")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert kernel_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="'meta'"):
        kernel_device("meta")


def test_compiled_model_numpy_in_numpy_out_torch_in_torch_out_on_its_device():
    g, x, logits = small_graph()
    w = st.init_weights(g, seed=0)
    model = st.compile(g, logits, w)
    assert model.device.type == ("cuda" if ON_GPU else "cpu")
    assert all(t.device.type == model.device.type for t in model._executor.params.values())  # moved once
    a = images_for(x, 5)
    want = reference(g, logits, x, a, w)
    got = model(a)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    assert_close(got, want, "float32")
    host = model(torch.from_numpy(a))
    assert isinstance(host, torch.Tensor) and host.device.type == "cpu"
    on_device = model(torch.from_numpy(a).to(model.device))
    assert on_device.device.type == model.device.type
    assert_close(on_device, want, "float32")
    kept = model(torch.from_numpy(a))
    model(torch.from_numpy(images_for(x, 6)))  # the arena is reused; returned outputs are not
    assert_close(kept, want, "float32", what="a result after the next call")


# -- autotune -----------------------------------------------------------------------------------
@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIMTRITON_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("SLIMTRITON_AUTOTUNE", "1")  # bench/gpu_session.sh runs the tests with it off
    monkeypatch.setattr(C, "_MEMORY", None)
    monkeypatch.setattr(C, "_WARNED_UNWRITABLE", set())
    return tmp_path


CANDIDATES = (C.TileConfig(64, 64, 32), C.TileConfig(128, 64, 32), C.TileConfig(32, 32, 32))

_WRITER = """
import importlib.util, os, sys, time
spec = importlib.util.spec_from_file_location("cfg", sys.argv[1])
cfg = importlib.util.module_from_spec(spec); sys.modules["cfg"] = cfg; spec.loader.exec_module(cfg)
cfg._load_cache()  # each process holds its view of the file from before the others wrote
while not os.path.exists(sys.argv[4]):
    time.sleep(0.005)
for i in range(int(sys.argv[3])):
    cfg._store_cache(f"{sys.argv[2]}-{i}", cfg.TileConfig(64, 64, 32), {"x": 1.0})
"""


def test_autotune_cache_keeps_every_entry_of_concurrent_processes(fresh_cache):
    """Each process loaded the cache before the others wrote: without the lock and the re-read
    at store time, the last writer's stale copy would drop the others' entries."""
    config_py = Path(C.__file__)
    go = fresh_cache / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(config_py), f"p{k}", "40", str(go)])
             for k in range(3)]
    import time
    time.sleep(1.0)  # all three have started and loaded the (empty) cache
    go.write_text("")
    assert all(p.wait(timeout=120) == 0 for p in procs)
    data = json.loads((fresh_cache / "autotune.json").read_text())
    assert sorted(data) == sorted(f"p{k}-{i}" for k in range(3) for i in range(40))
    assert [p.name for p in fresh_cache.iterdir() if p.suffix == ".tmp"] == []
    assert C.cached_config("p1-7") == C.TileConfig(64, 64, 32)


def test_autotune_unwritable_cache_warns_once_and_keeps_winners_in_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("SLIMTRITON_CACHE_DIR", str(blocker / "sub"))
    monkeypatch.setenv("SLIMTRITON_AUTOTUNE", "1")
    monkeypatch.setattr(C, "_MEMORY", None)
    monkeypatch.setattr(C, "_WARNED_UNWRITABLE", set())
    with pytest.warns(UserWarning, match="cannot write the autotune cache"):
        assert C.select_config("k1", CANDIDATES, lambda c: {64: 3.0, 128: 1.0, 32: 2.0}[c.BLOCK_M]) == CANDIDATES[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        assert C.select_config("k2", CANDIDATES, lambda c: 1.0) == CANDIDATES[0]
    assert C.select_config("k1", CANDIDATES, lambda c: pytest.fail("re-timed a winner kept in memory")) == CANDIDATES[1]


def test_autotune_ignores_stale_winners_broken_timings_and_never_times_in_a_capture(fresh_cache, monkeypatch):
    stale = C.TileConfig(256, 256, 64)
    C._store_cache("stale", stale, {})
    assert C.cached_config("stale") == stale
    assert C.select_config("stale", CANDIDATES, lambda c: {64: 3.0, 128: 1.0, 32: 2.0}[c.BLOCK_M]) == CANDIDATES[1]
    # NaN / zero timings are failures, not winners
    assert C.select_config("nan", CANDIDATES, lambda c: {64: float("nan"), 128: 0.0, 32: 2.0}[c.BLOCK_M]) == CANDIDATES[2]
    assert "failed" in json.dumps(json.loads((fresh_cache / "autotune.json").read_text())["nan"])
    with pytest.raises(RuntimeError, match="every candidate failed for allbad"):
        C.select_config("allbad", CANDIDATES, lambda c: float("nan"))
    monkeypatch.setattr(C, "_capturing", lambda: True)
    assert C.select_config("cap", CANDIDATES, lambda c: pytest.fail("timed inside a capture")) == CANDIDATES[0]
    assert C.cached_config("cap") is None  # the untimed default is not cached
    monkeypatch.setattr(C, "_capturing", lambda: False)
    monkeypatch.setenv("SLIMTRITON_AUTOTUNE", "0")
    assert C.select_config("off", CANDIDATES, lambda c: pytest.fail("timed with SLIMTRITON_AUTOTUNE=0")) == CANDIDATES[0]
    assert C.select_config("stale", CANDIDATES, None) == CANDIDATES[1]  # cached winners still apply


def test_autotune_key_and_timing(monkeypatch):
    import triton
    key = C.autotune_key("conv_gemm", "sig", (1, 2, 3))
    assert key.startswith(f"{C.gpu_name()}|triton-{triton.__version__}|conv_gemm|sig|")
    seen = {}

    def fake_do_bench(fn, **kwargs):
        fn()
        seen.update(kwargs)
        return 0.25
    import triton.testing
    monkeypatch.setattr(triton.testing, "do_bench", fake_do_bench)
    calls = []
    assert C.time_ms(lambda: calls.append(1)) == 0.25 and calls == [1]
    assert seen["return_mode"] == "median"


def test_timing_launches_are_not_recorded():
    calls = []

    class FakeJit:
        def __getitem__(self, grid):
            return lambda *args, **kw: calls.append((grid, args))

    launch = KernelLaunch("t", FakeJit(), (1, 2), {}, (3,))
    with K.record_launches(execute=True) as recorded:
        launch.execute()
        assert recorded == [] and len(calls) == 1
        launch.run()
        assert recorded == [launch] and len(calls) == 2


# -- torch eager backend ------------------------------------------------------------------------
def test_torch_callable_converts_tensor_feeds_and_makes_constants_once(monkeypatch):
    from slimtriton.eager.torch_backend import build_torch_callable
    g, x, logits = small_graph()
    w = st.init_weights(g, seed=0)
    device = "cuda" if ON_GPU else "cpu"
    f = build_torch_callable(g, logits, w, device=device, dtype="float32")
    a = images_for(x, 7)
    want = reference(g, logits, x, a, w)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # IEEE float32 convs on a GPU
    assert_close(f(torch.from_numpy(a).double()), want, "float32")  # float64 host tensor: converted
    real_tensor = torch.tensor

    def no_host_copies(*args, **kwargs):
        raise AssertionError("torch.tensor called per call (a host-to-device copy; breaks CUDA graph capture)")
    monkeypatch.setattr(torch, "tensor", no_host_copies)
    out = f(torch.from_numpy(a).to(device))
    monkeypatch.setattr(torch, "tensor", real_tensor)
    assert_close(out, want, "float32")
    assert out.device.type == device


def test_ieee_float32_turns_tf32_off_on_cuda_float32_only():
    from slimtriton.eager.torch_backend import ieee_float32

    def flags():
        return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    saved = flags()
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        with ieee_float32("cuda", "float32"):
            assert flags() == (False, False)
        assert flags() == (True, True)
        for device, dtype in (("cuda", "float16"), ("cuda", "bfloat16"), ("cpu", "float32")):
            with ieee_float32(device, dtype):
                assert flags() == (True, True)
        with pytest.raises(KeyError), ieee_float32("cuda", "float32"):
            raise KeyError("restored on errors too")
        assert flags() == (True, True)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


# -- on a GPU: the real thing ---------------------------------------------------------------------
@cuda_only
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_cuda_graph_replays_match_the_reference_and_keep_returned_results(dtype):
    g, x, logits = small_graph(batch=4, size=12)
    w = st.init_weights(g, seed=0)
    model = st.compile(g, logits, w, dtype=dtype, device="cuda", cuda_graph=True)
    inputs = [images_for(x, s) for s in range(4)]
    outs = [model(torch.from_numpy(a).cuda()) for a in inputs]
    assert model._cuda_graph.graph is not None and model._cuda_graph.replays == 3 and not model._cuda_graph.failed
    for a, o in zip(inputs, outs):
        assert o.device.type == "cuda"
        assert_close(o.float(), reference(g, logits, x, a, w), dtype)
    eager = st.compile(g, logits, w, dtype=dtype, device="cuda", cuda_graph=False)
    assert eager._cuda_graph is None
    assert_close(eager(inputs[2]), outs[2].float().cpu().numpy(), dtype)
    assert isinstance(model(inputs[0]), np.ndarray)
    # calls on two streams share the arena / static tensors: the second waits for the first
    for m in (model, eager):
        streams = [torch.cuda.Stream(), torch.cuda.Stream()]
        results = []
        for stream, a in zip(streams, inputs[1:3]):
            with torch.cuda.stream(stream):
                results.append(m(torch.from_numpy(a).cuda(non_blocking=True)))
        torch.cuda.synchronize()
        for a, o in zip(inputs[1:3], results):
            assert_close(o.float(), reference(g, logits, x, a, w), dtype, what="a call on a side stream")


@cuda_only
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_every_gemm_candidate_computes_the_same_conv(dtype, monkeypatch):
    """Autotuning may pick any candidate: each must be right (tile edges, K tails, stages)."""
    from slimtriton.reference import numpy_ops as R
    tdt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 13, 11, 40))
    wt = rng.standard_normal((3, 3, 40, 70)) / 20
    xd, wd = torch.tensor(x, dtype=tdt).cuda(), torch.tensor(wt, dtype=tdt).cuda()
    want = R.conv2d(xd.double().cpu().numpy(), wd.double().cpu().numpy(), (1, 1), ((1, 1), (1, 1)), (1, 1))
    space = C.GEMM_CANDIDATES_32 if dtype == "float32" else C.GEMM_CANDIDATES_16
    for cand in space:
        monkeypatch.setattr(C, "select_config", lambda key, cands, bench, cand=cand: cand)
        got = K.conv2d(xd, K.prepack_conv2d(wd), padding=((1, 1), (1, 1)), name=f"cand {cand}")
        assert_close(got, want, dtype, what=str(cand))


@cuda_only
def test_autotune_on_the_gpu_times_and_caches_every_candidate(fresh_cache):
    x = torch.randn((1, 16, 16, 64), device="cuda", dtype=torch.float16)
    w = K.prepack_conv2d(torch.randn((3, 3, 64, 64), device="cuda", dtype=torch.float16))
    with K.record_launches(execute=True) as launches:
        K.conv2d(x, w, padding=((1, 1), (1, 1)))
    assert len(launches) == 1  # the candidates timed are not recorded as the model's launches
    (entry,) = json.loads((fresh_cache / "autotune.json").read_text()).values()
    ok = [v for v in entry["timings_ms"].values() if isinstance(v, float)]
    assert ok and all(v > 0 for v in ok)


@cuda_only
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_torch_backend_on_cuda_in_16_bit(dtype):
    from slimtriton.eager.torch_backend import build_torch_callable
    g, x, logits = small_graph(batch=3, size=10)
    w = st.init_weights(g, seed=0)
    f = build_torch_callable(g, logits, w, device="cuda", dtype=dtype)
    a = images_for(x, 3)
    out = f(torch.from_numpy(a))  # host float32 in: converted
    assert out.device.type == "cuda" and out.dtype == getattr(torch, dtype)
    assert_close(out.float(), reference(g, logits, x, a, w), dtype)
