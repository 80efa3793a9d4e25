"""The static performance model's arithmetic (hand-computed cases) and the SASS main-loop
analysis (synthetic nvdisasm snippets; a real compiled kernel is in tests/kernels/test_infra.py)."""
from __future__ import annotations

import math

import pytest
import torch

from slimtriton.kernels import perf_model as P
from slimtriton.kernels.audit import analyze_sass_loops, layer_label
from slimtriton.kernels.launch import KernelLaunch

H100 = P.GPUS["h100"]


# -- occupancy ------------------------------------------------------------------------------

def test_ctas_per_sm_from_registers_in_units_of_256_per_warp():
    # 144 regs, 8 warps: ceil(32*144/256)*256 = 4608 per warp, 36864 per CTA -> 65536 // 36864 = 1
    assert P.ctas_per_sm(8, 144, 0, H100) == (1, "registers")
    # 114 regs: ceil(3648/256)*256 = 3840 per warp, 30720 per CTA -> 2 (the HAS_SCALE=False case)
    assert P.ctas_per_sm(8, 114, 0, H100) == (2, "registers")
    # 128 regs, 4 warps: exactly 4096 per warp, 16384 per CTA -> 4; 129 regs rounds up to 4352 -> 3
    assert P.ctas_per_sm(4, 128, 0, H100) == (4, "registers")
    assert P.ctas_per_sm(4, 129, 0, H100) == (3, "registers")


def test_ctas_per_sm_from_shared_memory_threads_and_the_cta_cap():
    # 96 KiB + 1 KiB reserved per CTA: 233472 // 99328 = 2
    assert P.ctas_per_sm(4, 32, 96 * 1024, H100) == (2, "shared")
    # 48 KiB: 233472 // 50176 = 4, registers allow 16 -> shared memory limits
    assert P.ctas_per_sm(4, 32, 48 * 1024, H100) == (4, "shared")
    # 32 warps (1024 threads): 2048 // 1024 = 2 by threads (16 regs: 32 * 512 = 16384 per CTA -> 4)
    assert P.ctas_per_sm(32, 16, 0, H100) == (2, "threads")
    # 1 warp, 16 regs, no shared memory: 64 by threads, 128 by registers, 228 by shared -> 32 CTAs
    assert P.ctas_per_sm(1, 16, 0, H100) == (32, "ctas")


def test_waves_and_fill():
    assert P.waves_and_fill(132, 1, 132) == (1, 1.0)
    assert P.waves_and_fill(133, 1, 132) == (2, 133 / 264)
    assert P.waves_and_fill(4, 2, 132) == (1, 4 / 264)
    assert P.waves_and_fill(529, 2, 132) == (3, 529 / 792)
    assert P.waves_and_fill(0, 2, 132) == (0, 0.0)
    assert P.sm_fill(133, 132) == 133 / 264 and P.sm_fill(66, 132) == 0.5


def test_tile_fill():
    assert P.tile_fill(256, 256, 128, 128) == 1.0
    assert P.tile_fill(49, 512, 128, 64) == 49 / 128
    assert P.tile_fill(1, 1000, 64, 128) == 1000 / (64 * 1024)
    assert P.tile_fill(3136, 64, 128, 64) == 3136 / (25 * 128)


def test_roofline_and_bandwidth():
    # 989 GFLOP at 989 TFLOP/s = 1000 us; 3.35 MB at 3.35 TB/s = 1 us
    assert P.roofline_us(989e9, 3.35e6, 989.0, H100) == pytest.approx(1000.0)
    assert P.roofline_us(1e6, 3.35e9, 989.0, H100) == pytest.approx(1000.0)
    per_sm = 65536 / 0.6e6   # TB/s: 64 KiB over a 0.6 us round trip
    assert P.achievable_bandwidth_tbs(4, H100) == pytest.approx(4 * per_sm)
    assert P.achievable_bandwidth_tbs(10_000, H100) == pytest.approx(3.35 * 4.3 / 4.8)


def _gemm_launch(m, n, k, grid, bm=128, bn=128, bk=64, warps=8, stages=3, meta=None):
    return KernelLaunch("net/block/conv/Relu", lambda: None, (), {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk},
                        grid, warps, stages, kind="gemm", meta={"M": m, "N": n, "K": k, **(meta or {})})


def test_model_launch_hand_computed_gemm():
    # M=N=1024, K=512 on 128x128 tiles: 64 CTAs at 1 CTA/SM (144 regs, 8 warps), one wave.
    launch = _gemm_launch(1024, 1024, 512, (64,))
    flops, nbytes = 2 * 1024 * 1024 * 512, 4_000_000
    res = {"registers": 144, "shared_bytes": 96 * 1024, "hgmma": 4, "pipelined": True}
    row = P.model_launch(launch, flops, nbytes, res, H100)
    assert (row["ctas"], row["ctas_per_sm"], row["waves"]) == (64, 1, 1)
    assert row["wave_fill"] == round(64 / 132, 4) and row["tile_fill"] == 1.0
    compute = flops / (989e6 * (798 / 989) * (64 / 132))                    # us
    memory = nbytes / min(3.35e6 * 4.3 / 4.8, 64 * 65536 / 0.6)            # bytes per us: HBM-bound
    latency = 1 * 8 * 0.6 / 2                                               # 8 k-steps, 2 in flight
    assert row["compute_us"] == pytest.approx(compute, abs=1e-3)
    assert row["memory_us"] == pytest.approx(memory, abs=1e-3)
    assert row["latency_us"] == pytest.approx(latency, abs=1e-3)
    assert row["modeled_us"] == pytest.approx(max(compute, memory, latency) + 3.0, abs=1e-3)
    assert row["roofline_us"] == pytest.approx(max(flops / 989e6, nbytes / 3.35e6), abs=1e-3)
    assert row["bound"] == "compute" and row["compute_unit"] == "HGMMA"   # compute 2.77 us, latency 2.4, memory 1.33
    # not pipelined: compute halves its rate and each k-step is a full round trip
    slow = P.model_launch(launch, flops, nbytes, {**res, "pipelined": False}, H100)
    assert slow["compute_us"] == pytest.approx(2 * compute, abs=1e-3)
    assert slow["latency_us"] == pytest.approx(8 * 0.6, abs=1e-3)
    # only HMMA (mma.sync): half the tensor rate
    hmma = P.model_launch(launch, flops, nbytes, {**res, "hgmma": 0, "hmma": 8}, H100)
    assert hmma["compute_unit"] == "HMMA" and hmma["compute_us"] == pytest.approx(2 * compute, abs=1e-3)


def test_split_k_read_from_the_grid_divides_the_serial_steps():
    # 49 x 512 output on 128x64 tiles = 8 tiles; a grid of 8 x 4 means 4 CTAs per tile
    launch = _gemm_launch(49, 512, 4608, (8, 4), bm=128, bn=64, warps=4, stages=4)
    row = P.model_launch(launch, 2 * 49 * 512 * 4608, 0, {"registers": 128, "shared_bytes": 0,
                                                           "hgmma": 1, "pipelined": True}, H100)
    assert row["serial_steps"] == 72 / 4 and row["latency_us"] == pytest.approx(18 * 0.6 / 3, abs=1e-3)
    declared = _gemm_launch(49, 512, 4608, (8,), bm=128, bn=64, meta={"serial_steps": 5})
    assert P.model_launch(declared, 1, 0, {"registers": 64}, H100)["serial_steps"] == 5


def test_step_costs_go_to_the_main_launch_and_side_launches_pay_their_arguments():
    main = _gemm_launch(64, 64, 4096, (1, 8))
    partial = torch.empty((8, 64, 64), dtype=torch.float32, device="meta")
    out = torch.empty((64, 64), dtype=torch.float16, device="meta")
    reduce = KernelLaunch("net/conv/reduce", lambda: None, (partial, out), {"BLOCK": 1024}, (4,), 4, 1,
                          kind="reduction")
    assert P.attribute_step_costs([main, reduce], 10, 20) == [(10, 20, 20), (0, 8 * 64 * 64 * 4 + 64 * 64 * 2, 0)]
    # the side launch's bytes count in the modeled time, not in the roofline
    row = P.model_launch(reduce, 0, 8 * 64 * 64 * 4 + 64 * 64 * 2, {"registers": 32}, H100, roofline_bytes=0)
    assert row["roofline_us"] == 0 and row["memory_us"] > 0
    assert P.attribute_step_costs([], 1, 1) == []


def test_a_tensor_passed_twice_is_charged_once():
    # the routed conv's split-K reduction passes its output again in the unused destination slots
    partial = torch.empty((8, 64, 64), dtype=torch.float32, device="meta")
    out = torch.empty((64, 64), dtype=torch.float16, device="meta")
    other = torch.empty((64, 64), dtype=torch.float16, device="meta")
    reduce = KernelLaunch("net/conv/reduce", lambda: None, (partial, out, out, out, other), {"BLOCK": 1024}, (4,),
                          4, 1, kind="reduction")
    assert P.tensor_arg_bytes(reduce) == 8 * 64 * 64 * 4 + 2 * 64 * 64 * 2


def test_totals_weight_fill_by_gemm_flops():
    rows = [{"kind": "gemm", "flops": 300, "bytes": 10, "fill": 1.0, "pipelined": True,
             "modeled_us": 10.0, "roofline_us": 2.0},
            {"kind": "gemm", "flops": 100, "bytes": 10, "fill": 0.2, "pipelined": False,
             "modeled_us": 20.0, "roofline_us": 2.0},
            {"kind": "pool", "flops": 1000, "bytes": 1_000_000, "fill": 0.01, "pipelined": None,
             "modeled_us": 5.0, "roofline_us": 1.0}]
    t = P.totals(rows, batch=8)
    assert t["fill_flop_weighted"] == pytest.approx((300 * 1.0 + 100 * 0.2) / 400)
    assert t["gemm_flops_pipelined"] == 0.75
    assert t["modeled_us"] == 35.0 and t["roofline_us"] == 5.0
    assert t["modeled_images_per_s"] == pytest.approx(8 / 35e-6, rel=1e-4)
    assert t["roofline_images_per_s"] == pytest.approx(8 / 5e-6, rel=1e-4)


# -- SASS loop analysis ------------------------------------------------------------------------

def _sass(*body: str) -> str:
    """An nvdisasm-like listing: `L name` puts a label, `OP [target]` one instruction."""
    lines = ["\t.section\t.nv.info.k,\"\",@\"SHT_CUDA_INFO\"", ".L_0:", "        /*0000*/ BRA `(.L_0) ;",
             "//--------------------- .text.k --------------------------", ".text.k:"]
    address = 0
    for item in body:
        if item.startswith("L "):
            lines.append(f"{item[2:]}:")
            continue
        words = item.split()
        if words[-1].startswith(".L"):      # a branch: `[@P0] BRA .L_x_1`
            text = " ".join(words[:-1]) + f" `({words[-1]})"
        else:
            text = item + " R0, R1"
        lines.append(f"        /*{address:04x}*/                   {text} ;")
        address += 16
    return "\n".join(lines) + "\n"


def test_flat_loop_with_copies_and_hgmma_is_pipelined():
    sass = _sass("LDGSTS.E.BYPASS.128", "LDGDEPBAR", "L .L_x_1", "HGMMA.64x64x16.F32", "LDGSTS.E.BYPASS.128",
                 "@P0 BRA .L_x_1", "EXIT", "L .L_x_2", "BRA .L_x_2")
    r = analyze_sass_loops(sass)
    assert r["pipelined"] is True and r["main_loop"] == (0x20, 0x40), r


def test_loop_nested_in_an_outer_loop_with_its_own_copies_is_not_pipelined():
    # the 3x3 conv today: taps outer loop refills the ring, channels inner loop holds the HGMMA
    sass = _sass("L .L_x_4", "LDGSTS.E.BYPASS.128", "LDGSTS.E.BYPASS.128", "L .L_x_2", "HGMMA.64x64x16.F32",
                 "LDGSTS.E.BYPASS.128", "@P5 BRA .L_x_2", "BAR.SYNC", "@!P1 BRA .L_x_3", "BRA .L_x_4",
                 "L .L_x_3", "EXIT")
    r = analyze_sass_loops(sass)
    assert r["pipelined"] is False and "issues 2 copies of its own" in r["why"], r
    assert r["main_loop"] == (0x20, 0x40)


def test_outer_loop_without_copies_of_its_own_keeps_the_inner_loop_pipelined():
    # e.g. a persistent kernel: the tile loop issues no copy outside the K loop
    sass = _sass("L .L_x_0", "MOV", "L .L_x_1", "UTMALDG.2D", "HGMMA.64x128x16.F32", "@P0 BRA .L_x_1",
                 "STG.E", "@P1 BRA .L_x_0", "EXIT")
    assert analyze_sass_loops(sass)["pipelined"] is True


def test_loops_without_copies_or_without_mma():
    no_copies = _sass("L .L_x_1", "LDG.E.128", "HGMMA.64x64x16.F32", "@P0 BRA .L_x_1", "EXIT")
    r = analyze_sass_loops(no_copies)
    assert r["pipelined"] is False and "not issued inside it" in r["why"]
    unrolled = _sass("LDGSTS.E.BYPASS.128", "HGMMA.64x64x16.F32", "HGMMA.64x64x16.F32", "EXIT")
    assert analyze_sass_loops(unrolled)["pipelined"] is False
    no_mma = _sass("L .L_x_1", "LDG.E.128", "FMNMX", "@P0 BRA .L_x_1", "EXIT")
    assert analyze_sass_loops(no_mma)["pipelined"] is None
    # a forward branch is not a loop; HMMA (sm_80) counts as a tensor-core op
    forward = _sass("@P0 BRA .L_x_9", "L .L_x_1", "LDGSTS.E.128", "HMMA.16816.F32", "@P1 BRA .L_x_1",
                    "L .L_x_9", "EXIT")
    r = analyze_sass_loops(forward)
    assert r["pipelined"] is True and len(r["loops"]) == 1


def test_warp_specialized_producer_loop_feeds_the_mma_loop():
    sass = _sass("@P0 BRA .L_x_5", "L .L_x_1", "UTMALDG.2D", "UTMALDG.2D", "SYNCS.ARRIVE", "@P1 BRA .L_x_1", "EXIT",
                 "L .L_x_5", "L .L_x_2", "SYNCS.PHASECHK", "HGMMA.64x128x16.F32", "@P2 BRA .L_x_2", "EXIT")
    r = analyze_sass_loops(sass)
    assert r["pipelined"] is True and "warp-specialized" in r["why"], r


def test_the_main_loop_is_the_innermost_loop_with_the_most_mma():
    sass = _sass("L .L_x_0", "LDGSTS.E.128", "HGMMA.64x64x16.F32", "@P0 BRA .L_x_0",       # peeled: 1 MMA
                 "L .L_x_1", "LDGSTS.E.128", "HGMMA.64x64x16.F32", "HGMMA.64x64x16.F32", "@P0 BRA .L_x_1",
                 "EXIT")
    r = analyze_sass_loops(sass)
    assert r["main_loop"] == (0x30, 0x60) and r["pipelined"] is True


def test_layer_label_drops_the_net_scope_and_trailing_op_names_only():
    assert layer_label("resnet_v1_50/block1/unit_1/bottleneck_v1/conv2/Relu") == "block1/unit_1/bottleneck_v1/conv2"
    assert layer_label("resnet_v1_50/block1/unit_1/bottleneck_v1/shortcut/BatchNorm/FusedBatchNormV3") == \
        "block1/unit_1/bottleneck_v1/shortcut"
    assert layer_label("InceptionV3/Mixed_6b/Branch_1/Conv2d_0b_1x7/Relu") == "Mixed_6b/Branch_1/Conv2d_0b_1x7"
    assert layer_label("resnet_v1_50/predictions/Softmax") == "predictions"
    assert layer_label("conv_1,56,56,64,64,3,3,1") == "conv_1,56,56,64,64,3,3,1"
    assert layer_label("Softmax") == "Softmax"
    assert layer_label("resnet_v1_50/block1/unit_1/bottleneck_v1/conv2/Relu/splitk_reduce") == \
        "block1/unit_1/bottleneck_v1/conv2/splitk_reduce"
    assert layer_label("InceptionV3/Logits/Conv2d_1c_1x1/BiasAdd") == "Logits/Conv2d_1c_1x1"
    assert layer_label("InceptionV3/Logits/SpatialSqueeze") == "Logits"
    assert layer_label("InceptionV3/MaxPool_3a_3x3/MaxPool") == "MaxPool_3a_3x3"


def test_gpu_presets_state_their_source():
    assert set(P.GPUS) == {"h100", "h200"}
    assert "datasheet" in P.GPUS["h100"].source and "measured" in P.GPUS["h200"].source
    assert P.GPUS["h200"].hbm_tbs == 4.3 and P.GPUS["h100"].tensor_tflops == 989.0
    assert math.isclose(P.GPUS["h100"].achievable_tc, 798 / 989)


def test_persistent_grid_works_in_rounds_over_its_tiles():
    # 200 output tiles of 128x128 on a persistent grid of 132 CTAs (1 per SM): 2 rounds,
    # SM fill 200 / 264; each CTA runs 2 tiles x 8 k-steps one after the other
    launch = _gemm_launch(20 * 128, 10 * 128, 512, (132,))
    res = {"registers": 144, "shared_bytes": 96 * 1024, "hgmma": 4, "pipelined": True}
    row = P.model_launch(launch, 2 * 2560 * 1280 * 512, 0, res, H100)
    assert (row["waves"], row["wave_fill"], row["sm_fill"]) == (2, round(200 / 264, 4), round(200 / 264, 4))
    assert row["latency_us"] == pytest.approx(2 * 8 * 0.6 / 2, abs=1e-3)
    # half the SMs: 66 CTAs take ceil(200 / 66) = 4 rounds
    half = P.model_launch(_gemm_launch(20 * 128, 10 * 128, 512, (66,)), 1, 0, res, H100)
    assert half["waves"] == 4 and half["sm_fill"] == round(200 / (4 * 132), 4)
    assert P.grid_rounds(200, 300, 1, 132) == (2, 200 / 264)


def test_audit_jobs_setting(monkeypatch):
    from slimtriton.kernels import audit as A
    monkeypatch.setenv("SLIMTRITON_AUDIT_JOBS", "3")
    assert A.audit_jobs() == 3
    monkeypatch.setenv("SLIMTRITON_AUDIT_JOBS", "0")
    with pytest.raises(ValueError, match="SLIMTRITON_AUDIT_JOBS='0'"):
        A.audit_jobs()
    monkeypatch.delenv("SLIMTRITON_AUDIT_JOBS")
    assert 1 <= A.audit_jobs() <= 8
