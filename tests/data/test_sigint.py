"""Ctrl-C on `slimtriton predict` (a real SIGINT to a subprocess): it stops, writes the rows
done so far to a readable Parquet file, prints the summary and exits with status 130."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import NET, NUM_IMAGES

ROOT = Path(__file__).resolve().parents[2]
# The command line with a model slowed to 0.2 s a batch, so that the interrupt surely lands
# mid-run on any machine.
SLOW_CLI = """
import sys, time
from slimtriton.data import pipeline
model_call = pipeline.Model.__call__
def slow_call(self, x):
    time.sleep(0.2)
    return model_call(self, x)
pipeline.Model.__call__ = slow_call
from slimtriton.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_stops_cleanly_with_results_so_far(dataset, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out, log = tmp_path / "pred.parquet", tmp_path / "stderr.txt"
    argv = [sys.executable, "-c", SLOW_CLI, "predict", NET, "--data", str(dataset.shards), "-o", str(out),
            "--weights", str(dataset.weights), "--image-size", "32", "--num-classes", "10", "--batch", "1",
            "--workers", "1", "--backend", "reference"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "w") as err_file:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err_file, text=True, env=env)
        deadline = time.time() + 120
        done = 0
        while time.time() < deadline and proc.poll() is None and done < 3:   # the tqdm bar's count
            counts = re.findall(r": (\d+)img \[", log.read_text())
            done = int(counts[-1]) if counts else 0
            time.sleep(0.05)
        assert proc.poll() is None, f"finished before the interrupt: {proc.communicate()}"
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=120)
    stderr = log.read_text()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert re.search(r"top1=\d+\.\d\d%, top5=\d+\.\d\d%, img/s=\d", stderr), stderr   # the live bar
    count = int(re.search(r"interrupted: results cover the first (\d+) images", stdout).group(1))
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == count and 3 <= count < NUM_IMAGES
    assert [r["record"] for r in rows[:3]] == [0, 1, 2]
