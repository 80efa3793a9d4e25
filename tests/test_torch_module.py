"""`CompiledModel.to_module()` (slimtriton/torch_module.py): a compiled plan as a torch.nn.Module,
on the CPU with the Triton interpreter (CUDA where present)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import slimtriton as st
from slimtriton import slim
from slimtriton.torch_module import CompiledModule, buffer_name, variable_name

from .conftest import HAS_CUDA
from .helpers import assert_close


def _graph(scope="net"):
    with st.Graph() as g:
        images = st.placeholder([2, 8, 8, 3], name="images")
        with slim.arg_scope([slim.conv2d], normalizer_fn=slim.batch_norm,
                            normalizer_params={"is_training": False, "scale": True}):
            net = slim.conv2d(images, 4, [3, 3], stride=2, scope=f"{scope}/conv1")
            net = slim.max_pool2d(net, [2, 2], scope=f"{scope}/pool")
        logits = slim.fully_connected(slim.flatten(net), 5, activation_fn=None, scope=f"{scope}/logits")
        probs = slim.softmax(logits)
    return g, images, logits, probs


def _weights(g, seed):
    rng = np.random.default_rng(seed)
    out = {}
    for name, spec in g.variables.items():
        if name.endswith("moving_variance"):
            out[name] = rng.uniform(0.5, 2.0, spec.shape).astype(np.float32)
        else:
            out[name] = rng.normal(0.0, 0.5, spec.shape).astype(np.float32)
    return out


def _compile(g, outputs, weights):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the interpreter notice
        return st.compile(g, outputs, weights)


@pytest.fixture(scope="module")
def built():
    g, images, logits, probs = _graph()
    weights = _weights(g, seed=0)
    model = _compile(g, {"logits": logits, "probs": probs}, weights)
    x = np.random.default_rng(1).uniform(-1, 1, images.shape).astype(np.float32)
    want = st.Session(g, weights, backend="reference").run({"logits": logits, "probs": probs}, {images: x})
    return g, images, logits, probs, weights, model, x, want


def test_forward_runs_the_plan_inside_a_torch_program(built):
    _, _, _, _, _, model, x, want = built
    module = model.to_module()
    assert isinstance(module, torch.nn.Module) and isinstance(module, CompiledModule)
    xt = torch.from_numpy(x)
    out = module(xt)
    assert set(out) == {"logits", "probs"} and isinstance(out["logits"], torch.Tensor)
    assert_close(out["logits"], want["logits"], "float32", what="module logits")
    assert_close(out["probs"], want["probs"], "float32", what="module probs")
    np.testing.assert_array_equal(out["logits"].numpy(), model(x)["logits"])
    # an ordinary torch program around it: torch ops before and after, by name too
    pipeline = torch.nn.Sequential(torch.nn.Identity())
    total = module(images=pipeline(xt * 1.0))["probs"].sum(dim=1)
    assert_close(total, np.ones(2), "float32", what="softmax rows")


def test_inference_mode_then_normal_mode(built):
    """The packed weights and arena are made under inference_mode by the first call, and still
    serve a later call outside it (they are normal tensors)."""
    _, _, _, _, _, model, x, want = built
    module = model.to_module()
    with torch.inference_mode():
        inside = module(torch.from_numpy(x))["logits"]
    assert inside.is_inference()
    with torch.no_grad():
        outside = module(torch.from_numpy(x))["logits"]
    plain = module(torch.from_numpy(x))["logits"]
    assert_close(inside, want["logits"], "float32")
    np.testing.assert_array_equal(outside.numpy(), plain.numpy())
    np.testing.assert_array_equal(inside.numpy(), plain.numpy())


def test_autograd_is_refused_with_a_clear_message(built):
    *_, model, x, _ = built
    module = model.to_module()
    xt = torch.from_numpy(x).requires_grad_()
    with pytest.raises(RuntimeError, match=r"inference only.*no backward.*images"):
        module(xt)
    with torch.no_grad():
        module(xt)  # fine without grad mode
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        module(x)
    with pytest.raises(ValueError, match=r"images: expected a float tensor of shape \[2, 8, 8, 3\]"):
        module(torch.zeros(1, 8, 8, 3))


def test_state_dict_is_keyed_by_tf_slim_names_and_round_trips(built, tmp_path):
    g, images, logits, probs, weights, model, x, want = built
    module = model.to_module()
    state = module.state_dict()
    assert sorted(state) == sorted(weights)  # TF-Slim names, nothing else (no '.' to escape here)
    for name, value in weights.items():
        np.testing.assert_array_equal(state[name].numpy(), value)
    torch.save(state, tmp_path / "weights.pt")

    other = _compile(g, {"logits": logits, "probs": probs}, _weights(g, seed=9)).to_module()
    before = other(torch.from_numpy(x))["logits"]
    assert not torch.allclose(before, torch.from_numpy(want["logits"]), atol=1e-3)
    other.load_state_dict(torch.load(tmp_path / "weights.pt"))  # in place: the kernels re-pack
    after = other(torch.from_numpy(x))["logits"]
    np.testing.assert_array_equal(after.numpy(), module(torch.from_numpy(x))["logits"].numpy())


def test_edited_buffers_are_repacked(built):
    g, images, logits, probs, weights, model, x, _ = built
    module = model.to_module()
    module(torch.from_numpy(x))
    scale = 0.5
    with torch.no_grad():
        module.get_buffer("net/logits/weights").mul_(scale)  # folded into the GEMM's packed copy
    changed = dict(weights, **{"net/logits/weights": weights["net/logits/weights"] * scale})
    want = st.Session(g, changed, backend="reference").run(logits, {images: x})
    assert_close(module(torch.from_numpy(x))["logits"], want, "float32", what="after an in-place edit")
    assert weights["net/logits/weights"] is not changed["net/logits/weights"]  # the caller's arrays untouched


def test_to_moves_the_buffers_and_refuses_devices_the_kernels_cannot_use(built):
    *_, model, x, want = built
    module = model.to_module().to(torch.float64)  # buffers in float64: re-packed to the compute dtype
    assert module.get_buffer("net/logits/weights").dtype == torch.float64
    assert_close(module(torch.from_numpy(x))["logits"], want["logits"], "float32")
    module = module.to("cpu")
    assert module.device == torch.device("cpu")
    with pytest.raises(ValueError, match="meta"):
        model.to_module().to("meta")(torch.from_numpy(x))


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
def test_to_cuda_runs_there(built):  # pragma: no cover - GPU machines
    *_, model, x, want = built
    module = model.to_module().to("cuda")
    out = module(torch.from_numpy(x).cuda())["logits"]
    assert out.device.type == "cuda"
    assert_close(out, want["logits"], "float32")


class _Wrapper(torch.nn.Module):
    """torch layers around the slimtriton module, as a user's program would have them."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.head = torch.nn.Linear(5, 3)

    def forward(self, x):
        logits = self.inner(torch.tanh(x) * 2.0)["logits"]
        return self.head(torch.relu(logits))


def test_torch_compile_of_a_wrapper_breaks_the_graph_cleanly(built):
    *_, model, x, _ = built
    torch.manual_seed(0)
    wrapper = _Wrapper(model.to_module())
    xt = torch.from_numpy(x)
    with torch.no_grad():
        eager = wrapper(xt)
        compiled = torch.compile(wrapper, backend="aot_eager")
        got = compiled(xt)
    assert_close(got, eager, "float32", what="torch.compile(wrapper) vs eager")
    torch._dynamo.reset()
    # The reason where this torch takes one (2.13 here), dynamo's own "disable" message otherwise.
    with torch.no_grad(), pytest.raises(Exception, match="slimtriton launches its own Triton kernels|disable"):
        torch.compile(wrapper, backend="aot_eager", fullgraph=True)(xt)
    torch._dynamo.reset()


def test_names_with_dots_are_escaped_reversibly():
    for name in ["net/conv1/weights", "scope.v2/w", "odd%2E/name.", "%"]:
        escaped = buffer_name(name)
        assert "." not in escaped and variable_name(escaped) == name
    assert buffer_name("net/conv1/weights") == "net/conv1/weights"
    with st.Graph() as g:
        x = st.placeholder([1, 4], name="x")
        y = slim.fully_connected(x, 2, activation_fn=None, scope="fc.v2")
    weights = _weights(g, seed=3)
    module = _compile(g, y, weights).to_module()
    expected = ["fc%2Ev2/biases", "fc%2Ev2/weights"]
    assert sorted(module.state_dict()) == sorted(buffer_name(k) for k in weights) == expected
    assert sorted(module.weights()) == sorted(weights)
    xv = np.ones((1, 4), np.float32)
    assert_close(module(torch.from_numpy(xv)), st.Session(g, weights).run(y, {x: xv}), "float32")


def test_analysis_only_and_loaded_engines_have_no_module(built, tmp_path):
    g, images, logits, _ = _graph()
    with pytest.raises(ValueError, match="compiled with weights.*analysis only"):
        st.compile(g, logits, None).to_module()
    *_, model, _, _ = built
    model.save(tmp_path / "engine")
    with pytest.raises(ValueError, match="saved engine.*packed parameters"):
        st.load_compiled(tmp_path / "engine", device="cpu").to_module()


# -- a dynamic-batch model's module ---------------------------------------------------------------
@pytest.fixture(scope="module")
def dynamic():
    with st.Graph() as g:
        images = st.placeholder([None, 8, 8, 3], name="images")
        with slim.arg_scope([slim.conv2d], normalizer_fn=slim.batch_norm,
                            normalizer_params={"is_training": False, "scale": True}):
            net = slim.conv2d(images, 4, [3, 3], stride=2, scope="net/conv1")
            net = slim.max_pool2d(net, [2, 2], scope="net/pool")
        logits = slim.fully_connected(slim.flatten(net), 5, activation_fn=None, scope="net/logits")
    weights = _weights(g, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = st.compile(g, {"logits": logits}, weights, max_batch=4)
    x = np.random.default_rng(5).uniform(-1, 1, (4, 8, 8, 3)).astype(np.float32)
    want = st.Session(g, weights, backend="reference").run(logits, {images: x})
    return g, logits, weights, model, x, want


def test_dynamic_module_takes_any_batch_up_to_max_batch(dynamic):
    g, logits, weights, model, x, want = dynamic
    module = model.to_module()
    assert module.max_batch == 4 and "[[None, 8, 8, 3]], batch buckets [1, 2, 4]" in repr(module)
    with torch.inference_mode():
        for batch in (3, 1, 4, 2, 3):  # batch 3 runs bucket 4: padded, sliced back
            out = module(torch.from_numpy(x[:batch]))["logits"]
            assert tuple(out.shape) == (batch, 5)
            assert_close(out, want[:batch], "float32", what=f"dynamic module, batch {batch}")
            np.testing.assert_array_equal(out.numpy(), model(x[:batch])["logits"])  # the model's own buckets
    assert sorted(module._executors) == [1, 2, 4]
    assert all(e.params is module._params for e in module._executors.values())  # packed once
    backing = module._arena.backing()  # one arena for every bucket, as the model's
    start, end = backing.data_ptr(), backing.data_ptr() + module._arena.nbytes
    assert all(start <= v.data_ptr() < end for e in module._executors.values() for v in e._arena().values())
    with torch.no_grad():  # outside inference_mode after buffers made inside it
        np.testing.assert_array_equal(module(torch.from_numpy(x[:3]))["logits"].numpy(), model(x[:3])["logits"])
    with pytest.raises(ValueError, match=r"batch 5 is outside the range .*1\.\.4 \(batch buckets \[1, 2, 4\]\)"):
        module(torch.zeros(5, 8, 8, 3))
    with pytest.raises(ValueError, match=r"images: expected a float tensor of shape \[None, 8, 8, 3\]"):
        module(torch.zeros(2, 8, 7, 3))
    with pytest.raises(RuntimeError, match="inference only"):
        module(torch.from_numpy(x[:2]).requires_grad_())


def test_dynamic_module_state_dict_round_trips_and_repacks(dynamic, tmp_path):
    g, logits, weights, model, x, want = dynamic
    module = model.to_module()
    assert sorted(module.state_dict()) == sorted(weights)  # TF-Slim names
    torch.save(module.state_dict(), tmp_path / "w.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = st.compile(g, {"logits": logits}, _weights(g, seed=11), max_batch=4).to_module()
    xt = torch.from_numpy(x[:3])
    with torch.no_grad():
        before = other(xt)["logits"]
        assert not torch.allclose(before, torch.from_numpy(want[:3]), atol=1e-3)
        other.load_state_dict(torch.load(tmp_path / "w.pt"))  # every bucket re-packs from the loaded buffers
        np.testing.assert_array_equal(other(xt)["logits"].numpy(), module(xt)["logits"].numpy())
        np.testing.assert_array_equal(other(xt[:1])["logits"].numpy(), module(xt[:1])["logits"].numpy())


def test_dynamic_module_under_torch_compile_is_a_graph_break(dynamic):
    *_, model, x, _ = dynamic
    torch.manual_seed(0)
    wrapper = _Wrapper(model.to_module())
    with torch.no_grad():
        for batch in (3, 2):
            xt = torch.from_numpy(x[:batch])
            assert_close(torch.compile(wrapper, backend="aot_eager")(xt), wrapper(xt), "float32",
                         what=f"torch.compile(wrapper), batch {batch}")
    torch._dynamo.reset()
    with torch.no_grad(), pytest.raises(Exception, match="slimtriton launches its own Triton kernels|disable"):
        torch.compile(wrapper, backend="aot_eager", fullgraph=True)(torch.from_numpy(x[:2]))
    torch._dynamo.reset()
