"""Load time of a saved engine vs a fresh st.compile (ResNet-50 v1, 224, float16, random weights).

    python bench/engine_load.py

Prints the three wall-clock times: st.compile (passes, BN folding, parameter packing),
model.save, st.load_compiled (no pass, parameters as saved).
"""
import tempfile
import time
import warnings
from pathlib import Path

import slimtriton as st
from slimtriton.nets.build import build_net, main_output

warnings.filterwarnings("ignore")  # the interpreter notice without a GPU
engine = Path(tempfile.mkdtemp()) / "r50_224.engine"
g, images, logits, end_points = build_net("resnet_v1_50", 224, 1, None)
weights = st.init_weights(g, seed=0)
t0 = time.perf_counter()
model = st.compile(g, main_output(logits, end_points), weights, dtype="float16")
t1 = time.perf_counter()
model.save(engine)
t2 = time.perf_counter()
st.load_compiled(engine)
t3 = time.perf_counter()
print(f"compile {t1 - t0:.2f} s, save {t2 - t1:.2f} s, load_compiled {t3 - t2:.2f} s")
