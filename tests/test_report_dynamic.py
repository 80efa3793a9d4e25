"""`report` and `audit` of a graph recorded with an unknown batch (issue 12): `model.report(batch=B)`
of a dynamic-batch model, `slimtriton report NET|GRAPH --batch B / --max-batch N`, `slimtriton
audit GRAPH --batch 1,32 / --max-batch N`. Analysis only: nothing runs (the audit compiles the
kernels for sm_90 without a GPU)."""
from __future__ import annotations

import json
import textwrap

import pytest

import slimtriton as st
from slimtriton import slim
from slimtriton.cli import main
from slimtriton.commands import audit as audit_cmd

GRAPHS = textwrap.dedent("""
    import slimtriton as st
    from slimtriton import slim

    def layers(batch):
        with st.Graph() as g:
            x = st.placeholder([batch, 8, 8, 3], name="images")
            net = slim.conv2d(x, 4, 3, scope="a")
            net = slim.max_pool2d(net, 2)
            logits = slim.fully_connected(slim.flatten(net), 5, activation_fn=None, scope="logits")
        return g, {"logits": logits}

    def dynamic():
        return layers(None)

    def static():
        return layers(2)
""")


@pytest.fixture()
def graphs(tmp_path):
    path = tmp_path / "graphs.py"
    path.write_text(GRAPHS)
    return str(path)


def _layers(batch):
    with st.Graph() as g:
        x = st.placeholder([batch, 8, 8, 3], name="images")
        net = slim.max_pool2d(slim.conv2d(x, 4, 3, scope="a"), 2)
        logits = slim.fully_connected(slim.flatten(net), 5, activation_fn=None, scope="logits")
    return g, logits


def test_model_report_of_a_dynamic_model_at_a_batch_and_per_bucket(tmp_path):
    g, logits = _layers(None)
    model = st.compile(g, logits, max_batch=8)
    text = model.report(json_path=tmp_path / "r.json", batch=3)
    assert "[4, 8, 8, 4]" in text and "[8, 8, 8, 4]" not in text  # the bucket-4 plan's steps
    assert "this report: bucket 4, which runs batches 3..4" in text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["bucket", "kernels"])
    assert [line.split()[0] for line in lines[header + 1:header + 5]] == ["1", "2", "4", "8"]
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["bucket"] == 4 and [b["batch"] for b in data["batch_buckets"]] == [1, 2, 4, 8]
    assert data["steps"][0]["output"][0] == 4
    flops = [b["flops"] for b in data["batch_buckets"]]
    assert flops == [flops[0] * b for b in (1, 2, 4, 8)]  # FLOPs scale with the bucket
    assert "this report: bucket 8, which runs batches 5..8" in model.report()  # default: the largest
    with pytest.raises(ValueError, match=r"batch 9 is outside the range .*1\.\.8"):
        model.report(batch=9)
    static, slogits = _layers(2)
    with pytest.raises(ValueError, match="applies to a dynamic-batch model"):
        st.compile(static, slogits).report(batch=2)


def test_a_dynamic_graph_planned_at_a_batch_launches_what_the_static_graph_does():
    """The audit of a None-batch graph at batch B audits the same kernel specializations as the
    graph recorded at B."""
    g, logits = _layers(None)
    for batch in (1, 3, 32):
        static, slogits = _layers(batch)
        got = [x.key() for _, launches in audit_cmd.plan_step_launches(g, logits, "float16", batch=batch)
               for x in launches]
        want = [x.key() for _, launches in audit_cmd.plan_step_launches(static, slogits, "float16") for x in launches]
        assert got == want, batch
    with pytest.raises(ValueError, match="unknown batch"):
        audit_cmd.plan_step_launches(g, logits, "float16")


def test_cli_report_of_a_graph_with_a_none_batch(graphs, tmp_path, capsys):
    assert main(["report", f"{graphs}:dynamic", "--batch", "3", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "batch 3, input images [3, 8, 8, 3]" in out and "[3, 8, 8, 4]" in out
    path = tmp_path / "r.json"
    assert main(["report", f"{graphs}:dynamic", "--max-batch", "8", "--batch", "3", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "one plan per batch bucket [1, 2, 4, 8] (this report: bucket 4" in out
    data = json.loads(path.read_text())
    assert data["bucket"] == 4 and len(data["batch_buckets"]) == 4 and data["steps"][0]["output"][0] == 4
    # a static graph plans at its own batch; the dynamic flags are one line each
    assert main(["report", f"{graphs}:static"]) == 0
    assert "input images [2, 8, 8, 3]" in capsys.readouterr().out
    for argv, message in ((["--batch", "3"], "recorded with the static batch 2"),
                          (["--max-batch", "4"], "recorded with a static batch")):
        assert main(["report", f"{graphs}:static", *argv]) == 2
        assert message in capsys.readouterr().err
    assert main(["report", f"{graphs}:dynamic", "--max-batch", "2", "--batch", "3"]) == 2
    assert main(["report", f"{graphs}:dynamic", "--image-size", "8"]) == 2
    err = capsys.readouterr().err
    assert "takes batches 1..2" in err and "--image-size: only for a NET" in err


def test_cli_report_of_a_net_with_max_batch(tmp_path, capsys):
    path = tmp_path / "r.json"
    assert main(["report", "mobilenet_v1_025", "--image-size", "32", "--max-batch", "4", "--batch", "2",
                 "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "input images [2, 32, 32, 3]" in out and "one plan per batch bucket [1, 2, 4]" in out
    data = json.loads(path.read_text())
    assert data["bucket"] == 2 and [b["batch"] for b in data["batch_buckets"]] == [1, 2, 4]


def test_cli_audit_of_a_graph_with_a_none_batch(graphs, tmp_path, capsys):
    path = tmp_path / "a.json"
    assert main(["audit", f"{graphs}:dynamic", "--batch", "1,32", "--json", str(path)]) in (0, 1)
    out = capsys.readouterr().out
    assert "input [N, 8, 8, 3], N = 1, 32" in out
    data = json.loads(path.read_text())
    assert [b["batch"] for b in data["batches"]] == [1, 32]
    first_m = [b["launches"][0]["M"] for b in data["batches"]]
    assert first_m == [1 * 8 * 8, 32 * 8 * 8]  # the first conv's GEMM rows: batch x H x W
    assert main(["audit", f"{graphs}:dynamic", "--max-batch", "4", "--json", str(path)]) in (0, 1)
    assert [b["batch"] for b in json.loads(path.read_text())["batches"]] == [1, 2, 4]
    capsys.readouterr()
    for argv, message in ((["--batch", "3"], "recorded with the static batch 2"),
                          (["--max-batch", "4"], "recorded with a static batch")):
        assert main(["audit", f"{graphs}:static", *argv]) == 2
        assert message in capsys.readouterr().err
    assert main(["audit", f"{graphs}:dynamic", "--max-batch", "4", "--batch", "2"]) == 2
    assert "give one" in capsys.readouterr().err
