"""Test-wide set-up.

Without a CUDA device, Triton kernels run in the interpreter: TRITON_INTERPRET=1 must be
set before any @triton.jit function is defined, so we set it here, before test modules
import slimtriton.kernels. Hypothesis runs without deadlines (interpreter timings vary).
"""
import os

import torch
from hypothesis import HealthCheck, settings

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

# In CI (CI=true) hypothesis draws the same examples every run, so a red build is
# reproducible; locally it explores new examples each run.
settings.register_profile(
    "slimtriton", deadline=None, print_blob=True, derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("slimtriton")
