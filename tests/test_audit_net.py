"""`slimtriton audit NET` wired to the compiler: a tiny ResNet v1's plan is recorded on meta
tensors, its distinct specializations are compiled for sm_90 and every GEMM kernel has
tensor-core instructions and no spills in float16; the performance model's per-launch rows and
totals; argument errors exit 2 with one line."""
from __future__ import annotations

import json

import pytest

import slimtriton as st
from slimtriton import slim
from slimtriton.cli import main
from slimtriton.commands import audit as audit_cmd
from slimtriton.kernels import audit as A
from slimtriton.nets import resnet_utils, resnet_v1



def tiny_resnet_v1():
    # base depth 32: the residual 1x1 conv3 has K = 32, whose default GPU tile once spilled.
    blocks = [resnet_v1.resnet_v1_block("block1", base_depth=32, num_units=2, stride=2)]
    with st.Graph() as g:
        images = st.placeholder([2, 32, 32, 3], name="images")
        with slim.arg_scope(resnet_utils.resnet_arg_scope()):
            logits, end_points = resnet_v1.resnet_v1(images, blocks, num_classes=10, is_training=False,
                                                     scope="tiny")
    return g, end_points["predictions"]


def test_plan_launches_cover_every_kernel_step():
    g, probs = tiny_resnet_v1()
    launches, steps = audit_cmd.plan_launches(g, probs, "float16")
    model = st.compile(g, probs, None, dtype="float16")
    assert steps == len(model.kernels) and len(launches) >= steps
    assert [launch.name for launch in launches] == [launch.name for step in model.launches() for launch in step]
    convs = [k for k in model.kernels if k.kernel in ("conv2d", "conv2d_routed")]  # routed: sibling convs as one
    assert len(convs) >= 5 and all(launch.kind in ("gemm", "splitk_reduce") for k in convs for launch in k.launches)
    assert sum(launch.fn.fn.__name__ == "conv_gemm_kernel" for launch in launches) == len(convs)


def test_tiny_resnet_plan_audits_clean_on_sm90():
    g, probs = tiny_resnet_v1()
    launches, _ = audit_cmd.plan_launches(g, probs, "float16")
    rows = A.audit_launches(launches, 90, "float16")
    assert sum(r.count for r in rows) == len(launches)          # every launch, deduplicated
    assert len(rows) == len({launch.key() for launch in launches}) <= len(launches)  # tiles vary per shape
    gemm = [r for r in rows if r.kind == "gemm"]
    assert gemm and {r.kernel for r in rows} >= {"conv_gemm_kernel", "pool2d_kernel"}
    for r in rows:
        assert not r.error, r
        assert r.registers > 0 and r.ok, r
    for r in gemm:   # HGMMA fed by async copies in one main loop, no spill
        assert r.hgmma + r.hmma > 0 and not r.spills and r.pipelined is True, r


def test_audit_argument_errors_exit_2(capsys):
    assert main(["audit"]) == 2
    assert "give a NET or --shapes" in capsys.readouterr().err
    assert main(["audit", "resnet_v1_49"]) == 2
    err = capsys.readouterr().err
    assert "unknown NET 'resnet_v1_49'" in err and "inception_v3" in err and "mobilenet_v1" in err
    assert main(["audit", "--shapes", "1,2,3"]) == 2
    assert "N,H,W,Cin,Cout,KH,KW,stride" in capsys.readouterr().err
    assert main(["audit", "vgg_a", "--batch", "0"]) == 2
    assert main(["audit", "vgg_a", "--precision", "tf32"]) == 2
    assert "tf32 applies to --dtype float32 only" in capsys.readouterr().err


def test_model_plan_rows_and_totals_for_a_tiny_plan():
    from slimtriton.kernels import perf_model as P
    g, probs = tiny_resnet_v1()
    steps = audit_cmd.plan_step_launches(g, probs, "float16")
    launches = [x for _, group in steps for x in group]
    rows = A.audit_launches(launches, 90, "float16")
    entries, totals = audit_cmd.model_plan(steps, {r.key: r for r in rows}, P.GPUS["h100"], "float16", 2)
    assert len(entries) == len(launches) and totals["launches"] == len(launches)
    assert totals["gflops"] == pytest.approx(sum(s.flops for s, _ in steps) / 1e9, abs=1e-3)
    convs = [e for e in entries if e["kernel"] == "conv_gemm_kernel"]
    for e in convs:
        assert e["M"] * e["N"] * e["K"] * 2 <= e["flops"] and e["tile"]["BLOCK_M"] > 0
        assert e["ctas"] == e["grid"][0] * (e["grid"][1] if len(e["grid"]) > 1 else 1)
        assert 0 < e["fill"] <= 1 and e["modeled_us"] >= e["roofline_us"] and e["ctas_per_sm"] >= 1
    assert 0 < totals["fill_flop_weighted"] <= 1
    assert totals["modeled_images_per_s"] < totals["roofline_images_per_s"]


def test_audit_cli_json_has_launches_and_totals_per_batch(tmp_path, capsys):
    out = tmp_path / "audit.json"
    rc = main(["audit", "--shapes", "1,8,8,64,64,1,1,1", "--json", str(out), "--gpu", "h200",
               "--sass", str(tmp_path / "sass")])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "a MODEL, not a measurement" in text and "h200" in text and "modeled img/s" in text
    report = json.loads(out.read_text())
    assert report["gpu"]["name"] == "h200" and report["gpu"]["hbm_tbs"] == 4.3
    (b,) = report["batches"]
    (e,) = b["launches"]
    assert e["M"] == 64 and e["N"] == 64 and e["K"] == 64 and e["flops"] == 2 * 64 ** 3
    assert e["pipelined"] is True and e["registers"] > 0 and e["spill_bytes"] == 0
    assert len(list((tmp_path / "sass").iterdir())) == 1
    assert report["specializations"][0]["layer"] == "conv_1,8,8,64,64,1,1,1"


@pytest.mark.parametrize("arch", ["7", "0", "100", "75", "120"])
def test_audit_refuses_unsupported_archs_in_one_line(arch, capsys):
    assert main(["audit", "resnet_v1_50", "--arch", arch]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--arch {arch} is not supported" in err and "80, 86, 89, 90" in err
    if arch in ("100", "120"):
        assert "tcgen05" in err


def test_audit_checks_its_outputs_before_compiling(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["audit", "vgg_a", "--json", str(tmp_path / "missing" / "a.json")]) == 2
    assert "--json" in capsys.readouterr().err
    assert main(["audit", "vgg_a", "--json", str(tmp_path)]) == 2          # a folder
    assert "--json" in capsys.readouterr().err
    assert main(["audit", "vgg_a", "--sass", str(blocker / "sass")]) == 2   # under a file
    err = capsys.readouterr().err
    assert "--sass" in err and err.count("\n") == 1


def test_audit_batch_list_errors(capsys):
    for bad in ("0", "1,x", "", "-3"):
        assert main(["audit", "vgg_a", "--batch", bad]) == 2
        assert "--batch" in capsys.readouterr().err
    assert audit_cmd.parse_batches("1,32,256,32") == [1, 32, 256]


def test_audit_help_names_exactly_the_supported_archs_and_gpus(capsys):
    # commands/audit.py writes these out so that `slimtriton --help` does not import torch/triton
    from slimtriton.kernels.audit import SUPPORTED_ARCHS
    from slimtriton.kernels.perf_model import GPUS
    assert audit_cmd.ARCHS_HELP == ", ".join(map(str, SUPPORTED_ARCHS))
    assert tuple(audit_cmd.GPUS_HELP) == tuple(sorted(GPUS))
    assert main(["audit", "resnet_v1_50", "--gpu", "a100"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--gpu 'a100'" in err and "h100, h200" in err


def test_the_cli_starts_without_importing_torch():
    import subprocess
    import sys
    code = ("import sys; from slimtriton.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'triton') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
