"""`slimtriton nets` and `slimtriton report` (analysis only: no weights, nothing runs)."""
from __future__ import annotations

import json

from slimtriton.cli import main


def test_nets_lists_resnet(capsys):
    assert main(["nets"]) == 0
    out = capsys.readouterr().out
    assert "resnet_v1_50" in out and "224" in out


def test_report_json_holds_the_three_plans(tmp_path, capsys):
    path = tmp_path / "r.json"
    assert main(["report", "resnet_v1_50", "--image-size", "64", "--dtype", "float16", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "extern_conv_plus_pointwise" in out and "peak activation" in out
    summary = json.loads(path.read_text())
    for key in ("kernels", "bytes"):
        assert set(summary[key]) == {"unfused", "extern_conv_plus_pointwise", "slimtriton"}
    assert summary["kernels"]["slimtriton"] <= 60 and summary["flops"] > 0 and summary["peak_activation_bytes"] > 0
