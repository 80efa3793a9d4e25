"""Enumerate the `KernelLaunch` specs of a plan without a GPU and without running.

The executor makes every step's recorded call (slimtriton.runtime.step), its host wrapper
driven with `device='meta'` tensors inside
`kernels.record_launches(execute=False)`: the wrappers check, pack and build their launch
exactly as for a real run, so `slimtriton audit` and the benchmark can cold-compile every
kernel of a net (e.g. for sm_90) from these specs.
"""
from __future__ import annotations

import torch

from .. import kernels
from ..ir.ops import Op
from .executor import TORCH_COMPUTE_DTYPES, PlanExecutor, prepare_parameters


def record_plan_launches(plan, precision: str = "ieee") -> list[list]:
    """For each plan step (by index), the list of `KernelLaunch`es it makes."""
    values = {n.attrs["var"]: torch.empty(n.shape, device="meta") for n in plan.params.values() if n.op is Op.VARIABLE}
    params = prepare_parameters(plan, values, "meta")
    executor = PlanExecutor(plan, params, "meta", precision, poison=False)
    per_step: list[list] = [[] for _ in plan.steps]
    inputs = {n.name: torch.empty(n.shape, dtype=TORCH_COMPUTE_DTYPES[plan.dtype], device="meta") for n in plan.inputs}

    # Run step by step so each launch is attributed to its step.
    with kernels.record_launches(execute=False) as launches:
        seen = 0

        def on_step(step):
            nonlocal seen
            per_step[step.index].extend(launches[seen:])
            seen = len(launches)
        executor.run(inputs, after_step=on_step)
    return per_step
