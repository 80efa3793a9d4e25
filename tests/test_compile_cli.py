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


def test_run_input_errors_are_user_errors(tmp_path, capsys):
    """Contradictory or mis-shaped inputs print one 'slimtriton run: error:' line and exit 2,
    as every other user error of the CLI does."""
    import numpy as np
    bad = tmp_path / "x.npy"
    np.save(bad, np.zeros((1, 32, 32, 4), np.float32))
    assert main(["run", "mobilenet_v1_025", "--input", str(bad), "--image", str(bad)]) == 2
    assert "slimtriton run: error: give --image or --input, not both" in capsys.readouterr().err
    assert main(["run", "mobilenet_v1_025", "--input", str(bad)]) == 2
    assert (f"slimtriton run: error: --input {bad} has shape [1, 32, 32, 4]; the net takes NHWC images "
            f"[N, H, W, 3]" in capsys.readouterr().err)
