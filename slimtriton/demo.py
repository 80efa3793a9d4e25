"""`make demo`: compile ResNet-50 (v1), run it with fused Triton kernels, compare with the
NumPy reference.

The full net at 224x224, batch 1. Without a GPU the kernels run in the Triton interpreter
on the CPU (large tiles and slimtriton's interpreter speed-ups make that about 5 seconds).
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import torch

import slimtriton as st
from slimtriton.nets.build import build_net


def main() -> int:

    on_gpu = torch.cuda.is_available()
    size = 224
    g, images, logits, end_points = build_net("resnet_v1_50", size, 1, None)
    print(g.summary())
    output = end_points["predictions"]
    weights = st.init_weights(g, seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, images.shape).astype(np.float32)

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = st.compile(g, logits, weights, dtype="float32")
    t1 = time.perf_counter()
    print(f"\ncompiled resnet_v1_50 at {size}x{size} in {t1 - t0:.1f} s; fusion report summary:")
    report = model.report().splitlines()
    print("\n".join(report[-5:]))
    got = model(x)
    t2 = time.perf_counter()
    print(f"triton run ({'GPU' if on_gpu else 'interpreter on the CPU'}): {t2 - t1:.1f} s")
    want, probs = st.Session(g, weights, backend="reference").run([logits, output], {images: x})
    t3 = time.perf_counter()
    err = float(np.linalg.norm(got - want) / np.linalg.norm(want))
    print(f"reference run: {t3 - t2:.1f} s; relative L2 error triton vs reference: {err:.2e}")
    print(f"top-1 class (random weights): {int(np.argmax(probs))}")
    return 0 if err < 1e-3 else 1


if __name__ == "__main__":
    raise SystemExit(main())
