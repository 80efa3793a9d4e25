"""Poison mode, launch recording, the autotune cache and the static sm_80/sm_90 audit."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from slimtriton import kernels as K
from slimtriton.kernels import audit as A
from slimtriton.kernels import config as C
from tests.helpers import assert_close, relative_l2

from .util import DEVICE


def test_poison_fills_allocated_outputs_and_every_kernel_writes_all_of_them():
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((2, 7, 5, 6)), dtype=torch.float32, device=DEVICE)
    w = torch.tensor(rng.standard_normal((3, 3, 6, 19)), dtype=torch.float32, device=DEVICE)
    K.set_poison(True)
    try:
        # an output the kernel never writes stays NaN and fails the comparison
        with K.record_launches(execute=False):
            unwritten = K.conv2d(x, w, padding=((1, 1), (1, 1)))
        assert torch.isnan(unwritten).all()
        with pytest.raises(AssertionError, match="non-finite"):
            relative_l2(unwritten, np.zeros(unwritten.shape))
        outs = [
            K.conv2d(x, w, strides=(2, 2), padding=((1, 1), (0, 1))),
            K.conv2d(x, w[:1, :1].contiguous(), strides=(2, 2)),
            K.conv2d_transpose(x, w.permute(0, 1, 3, 2)[..., :6].contiguous(), strides=(2, 2),
                               pad_before=(1, 1), output_hw=(13, 9)),
            K.matmul(x.reshape(70, 6), w[0, 0]),
            K.depthwise_conv2d(x, w[..., :2].contiguous(), padding=((1, 1), (1, 1))),
            K.max_pool2d(x, (3, 3), (2, 2), ((1, 1), (1, 1))),
            K.avg_pool2d(x, (2, 2), (2, 2), ((0, 1), (0, 1))),
            K.global_mean(x), K.softmax(x), K.unit_norm(x, 1, 1e-6),
            K.affine_act(x, torch.ones(6, device=DEVICE), None, "relu"),
            K.binary("add", x, x[:, :1]), K.unary("sigmoid", x),
            K.pad(x, ((0, 1), (1, 0), (2, 2), (0, 3)), 1.0),
        ]
        for out in outs:
            assert torch.isfinite(out).all(), f"unwritten elements in an output of shape {tuple(out.shape)}"
    finally:
        K.set_poison(False)


def test_record_launches_enumerates_meta_launches_with_gpu_tiles():
    x = torch.empty((1, 56, 56, 64), dtype=torch.float16, device="meta")
    w = torch.empty((3, 3, 64, 64), dtype=torch.float16, device="meta")
    with K.record_launches(execute=False) as launches:
        K.conv2d(x, w, padding=((1, 1), (1, 1)), act="relu", name="block1/conv2")
    launch = launches[0]  # the GEMM (a split-K grid adds its reduction launch)
    assert launch.name == "block1/conv2" and launch.kind == "gemm"
    assert launch.constexprs["BLOCK_K"] == 64 and launch.num_stages >= 3  # a GPU config, not the interpreter's
    sig, consts, attrs = launch.specialization()
    assert sig["x_ptr"] == "*fp16" and consts["ACT"] == 1 and sig["C_in"] == "i32"
    with pytest.raises(RuntimeError, match="meta tensors can only be recorded"):
        K.conv2d(x, w)


def test_autotune_cache_persists_the_fastest_candidate(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIMTRITON_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("SLIMTRITON_AUTOTUNE", "1")  # whatever the caller's environment says
    cands = (C.TileConfig(64, 64, 32), C.TileConfig(128, 64, 32), C.TileConfig(32, 32, 32))
    timings = {cands[0]: 2.0, cands[1]: 0.5, cands[2]: None}

    def bench(cfg):
        if timings[cfg] is None:
            raise RuntimeError("out of shared memory")
        return timings[cfg]
    key = C.autotune_key("conv_gemm", "sig", (10, 20, 30))
    assert C.select_config(key, cands, bench) == cands[1]
    saved = json.loads((tmp_path / "autotune.json").read_text())
    assert saved[key]["config"]["BLOCK_M"] == 128 and "failed" in str(saved[key]["timings_ms"])
    # a cache hit never benchmarks again
    assert C.select_config(key, cands, lambda cfg: pytest.fail("benchmarked a cached key")) == cands[1]
    assert C.select_config(key + "x", cands, None) == cands[0]


def test_tanh_and_sigmoid_are_accurate_everywhere():
    x = np.concatenate([np.linspace(-30, 30, 601), np.geomspace(1e-8, 0.2, 50), -np.geomspace(1e-8, 0.2, 50)])
    t = torch.tensor(x, dtype=torch.float32, device=DEVICE)
    assert_close(K.unary("tanh", t), np.tanh(x))
    assert_close(K.unary("sigmoid", t), 1 / (1 + np.exp(-x)))


@pytest.mark.parametrize("arch", [90, 80])
def test_static_audit_fp16_convs_use_tensor_cores_without_spills(arch):
    shapes = [A.parse_shape_spec("1,56,56,64,64,1,1,1"), A.parse_shape_spec("1,56,56,64,64,3,3,1")]
    rows = [r for r in A.audit_launches(A.conv_launches(shapes, "float16"), arch) if r.kind == "gemm"]
    assert len(rows) == 2  # (a split-K grid adds a reduction launch, not a GEMM)
    for row in rows:
        assert not row.error, row.error
        assert row.registers > 0 and not row.spills, row
        if arch == 90:
            assert row.hgmma + row.hmma > 0, row
        else:
            assert row.hmma > 0 and row.hgmma == 0, row
        # the SASS loop analysis on a real cubin: one flat K loop over (tap, Cin chunk) whose
        # LDGSTS copies feed its HGMMA/HMMA, for the 1x1 and the 3x3 conv alike
        assert row.pipelined is True and "main loop 0x" in row.pipeline, row
        assert row.ok


def test_audit_writes_the_sass_of_each_specialization(tmp_path):
    launches = A.conv_launches([A.parse_shape_spec("1,16,16,64,64,1,1,1")], "float16")
    (row,) = A.audit_launches(launches, 90, sass_dir=tmp_path / "sass")
    (path,) = (tmp_path / "sass").iterdir()
    assert row.sass == str(path) and path.name.startswith("000_conv_gemm_kernel_")
    text = path.read_text()
    assert "HGMMA" in text and "LDGSTS" in text
    assert A.analyze_sass_loops(text)["pipelined"] is row.pipelined is True


def test_1001_class_logits_load_their_weights_by_async_copy(tmp_path):
    """A 1001-wide weight row is 2-byte aligned: packed as is, the B loads of the GEMV / GEMM
    were 2-byte synchronous LDGs (LDG.E.U16) beside the A operand's copies. Packed rows are
    padded to a multiple of 16 elements (packing.ROW_ALIGN), so on sm_90 every W load is a
    16-byte cp.async (LDGSTS.E.BYPASS.128) of the pipelined main loop."""
    meta = dict(device="meta", dtype=torch.float16)
    with K.record_launches(execute=False) as launches:
        K.matmul(torch.empty((1, 1024), **meta), K.prepack_matmul(torch.empty((1024, 1001), **meta)), name="fc")
        K.mean_matmul(torch.empty((1, 7, 7, 1024), **meta), K.prepack_conv2d(torch.empty((1, 1, 1024, 1001), **meta)),
                      name="logits")
    gemms = [la for la in launches if la.kind == "gemm"]
    rows = A.audit_launches(gemms, 90, sass_dir=tmp_path)
    assert [r.kernel for r in rows] == ["conv_gemm_kernel", "pooled_gemm_kernel"]
    for row in rows:
        assert not row.error and row.pipelined is True, row
        sass = Path(row.sass).read_text()
        assert "LDGSTS.E.BYPASS.128" in sass and "LDG.E.U16" not in sass, row.kernel


def test_audit_rule_flags_spills_and_missing_tensor_cores():
    row = A.AuditRow("l", "conv_gemm_kernel", "gemm", "float16", "", 90, registers=255, stack_bytes=0,
                     local_bytes=8, shared_bytes=0, hmma=0, hgmma=0)
    assert row.problems == ["spills", "no tensor-core instructions"] and not row.ok
    piped = A.AuditRow("l", "conv_gemm_kernel", "gemm", "float16", "", 90, registers=128, stack_bytes=0,
                       local_bytes=0, shared_bytes=0, hmma=0, hgmma=4, pipelined=False)
    assert piped.problems == ["main loop not pipelined"]
    piped.arch = 80   # the pipelining rule is for sm_90's HGMMA loops
    assert piped.ok
    with pytest.raises(ValueError, match="N,H,W,Cin,Cout,KH,KW,stride"):
        A.parse_shape_spec("1,2,3")


def test_output_and_precision_errors_name_the_layer_and_argument():
    x = torch.zeros((1, 4, 4, 3), device=DEVICE)
    w = K.prepack_conv2d(torch.zeros((1, 1, 3, 5), device=DEVICE))
    for call in (lambda: K.conv2d(x, w, out_channel_offset=2, name="l1"),
                 lambda: K.affine_act(x, None, None, out_channel_offset=2, name="l1"),
                 lambda: K.avg_pool2d(x, 2, 2, ((0, 0), (0, 0)), out_channel_offset=2, name="l1"),
                 lambda: K.global_mean(x, out_channel_offset=2, name="l1")):
        with pytest.raises(K.KernelArgumentError, match=r"^l1: out_channel_offset=2 needs an `out` buffer"):
            call()
    with pytest.raises(K.KernelArgumentError, match=r"^l1: out: expected dtype torch.float32, got torch.float16"):
        K.max_pool2d(x, 2, 2, ((0, 0), (0, 0)), out=torch.zeros((1, 2, 2, 3), dtype=torch.float16, device=DEVICE),
                     name="l1")
    for call in (lambda: K.conv2d(x, w, precision="tf16", name="l2"),
                 lambda: K.matmul(x.reshape(16, 3), K.prepack_matmul(torch.zeros((3, 5))), precision="tf16", name="l2"),
                 lambda: K.mean_matmul(x, w, precision="tf16", name="l2")):
        with pytest.raises(K.KernelArgumentError, match=r"^l2: precision 'tf16' not in \('ieee', 'tf32'\)"):
            call()
    with pytest.raises(K.KernelArgumentError, match=r"^l3: x: dtype torch.float64 is not supported"):
        K.softmax(x.double(), name="l3")
