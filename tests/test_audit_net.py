"""`slimtriton audit NET` wired to the compiler: a tiny ResNet v1's plan is recorded on meta
tensors, its distinct specializations are compiled for sm_90 and every GEMM kernel has
tensor-core instructions and no spills in float16; argument errors exit 2."""
from __future__ import annotations


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
    convs = [k for k in model.kernels if k.kernel == "conv2d"]
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
    for r in gemm:
        assert r.hgmma + r.hmma > 0 and not r.spills, r


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
