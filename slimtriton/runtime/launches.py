"""Enumerate the `KernelLaunch` specs of a plan without a GPU and without running.

Every step's host wrapper is driven with `device='meta'` tensors inside
`kernels.record_launches(execute=False)`: the wrappers check, pack and build their launch
exactly as for a real run, so `slimtriton audit` and the benchmark can cold-compile every
kernel of a net (e.g. for sm_90) from these specs.
"""
from __future__ import annotations

import numpy as np
import torch

from ..ir.ops import Op
from .executor import TORCH_DTYPES, PlanExecutor


def _meta_parameters(plan) -> dict:
    from .. import kernels
    from . import lowering as L
    dtype = TORCH_DTYPES[plan.dtype]
    packers = {L.PREP_CONV: "prepack_conv2d", L.PREP_DEPTHWISE: "prepack_depthwise",
               L.PREP_TRANSPOSE: "prepack_conv2d_transpose", L.PREP_MATMUL: "prepack_matmul"}
    params = {}
    for key, kind in plan.prep.items():
        node = plan.params[key.split("#")[0]]
        if node.op is Op.CONSTANT:
            params[key] = torch.empty((), dtype=dtype, device="meta")
        elif kind in packers:
            params[key] = getattr(kernels, packers[kind])(torch.empty(node.shape, dtype=dtype, device="meta"),
                                                          dtype=dtype, device="meta")
        elif kind == L.PREP_VECTOR:
            params[key] = torch.empty(node.shape, dtype=torch.float32, device="meta")
        else:
            params[key] = torch.empty(node.shape, dtype=dtype, device="meta")
    return params


def record_plan_launches(plan, precision: str = "ieee") -> list[list]:
    """For each plan step (by index), the list of `KernelLaunch`es it makes."""
    from .. import kernels
    executor = PlanExecutor(plan, _meta_parameters(plan), "meta", precision, poison=False)
    per_step: list[list] = [[] for _ in plan.steps]
    inputs = {n.name: torch.empty(n.shape, dtype=TORCH_DTYPES[plan.dtype], device="meta") for n in plan.inputs}
    original = plan.steps

    # Run step by step so each launch is attributed to its step.
    with kernels.record_launches(execute=False) as launches:
        seen = 0

        def on_step(step):
            nonlocal seen
            per_step[step.index].extend(launches[seen:])
            seen = len(launches)
        executor.run(inputs, after_step=on_step)
    assert plan.steps is original
    return per_step
