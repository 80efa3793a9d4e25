"""Load time of a saved engine vs a fresh st.compile (ResNet-50 v1, 224, float16, random weights),
for a static engine (batch 1) and a dynamic-batch one (max_batch=8: buckets 1, 2, 4, 8).

    python bench/engine_load.py

Prints, per engine, the three wall-clock times: st.compile (passes, BN folding, parameter
packing; a dynamic model plans every bucket and prepares the parameters once), model.save,
st.load_compiled (no pass, parameters as saved; one plan per bucket rebuilt by lowering). Each
engine is measured in a fresh process (`--only static|dynamic`), so neither pays for the
other's one-time costs (imports, first use of the packing code).
"""
import argparse
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ENGINES = {"static": ("static batch 1", 1, {}), "dynamic": ("dynamic max_batch 8", None, {"max_batch": 8})}


def measure(which: str) -> str:
    import slimtriton as st
    from slimtriton.nets.build import build_net, main_output

    label, batch, options = ENGINES[which]
    engine = Path(tempfile.mkdtemp()) / f"r50_224_{which}.engine"
    g, images, logits, end_points = build_net("resnet_v1_50", 224, batch, None)
    weights = st.init_weights(g, seed=0)
    t0 = time.perf_counter()
    model = st.compile(g, main_output(logits, end_points), weights, dtype="float16", **options)
    t1 = time.perf_counter()
    model.save(engine)
    t2 = time.perf_counter()
    loaded = st.load_compiled(engine)
    t3 = time.perf_counter()
    buckets = f", buckets {loaded.batch_sizes}" if loaded.plans else ""
    return f"{label}{buckets}: compile {t1 - t0:.2f} s, save {t2 - t1:.2f} s, load_compiled {t3 - t2:.2f} s"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(ENGINES), default=None, help="measure one engine, in this process")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # the interpreter notice without a GPU
    if args.only:
        print(measure(args.only))
    else:
        for which in ENGINES:
            proc = subprocess.run([sys.executable, __file__, "--only", which], capture_output=True, text=True,
                                  check=True)
            print(proc.stdout.strip().splitlines()[-1], flush=True)
