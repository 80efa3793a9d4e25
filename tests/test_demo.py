"""`make demo` is one of the two ways in: it must compile ResNet-50 at 224 and agree with
the reference (its exit status says whether it did)."""
import re

from slimtriton import demo


def test_demo_compiles_resnet50_and_agrees_with_the_reference(capsys):
    assert demo.main() == 0
    out = capsys.readouterr().out
    assert "compiled resnet_v1_50 at 224x224" in out
    kernels = int(re.search(r"^slimtriton\s+(\d+)", out, re.M).group(1))
    assert kernels <= 60
    err = float(re.search(r"relative L2 error triton vs reference: ([0-9.e+-]+)", out).group(1))
    assert err < 1e-5
