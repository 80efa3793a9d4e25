"""The memory plan (plan pass `plan_memory`): activation buffers reused by liveness.

Every value a step produces (each of its `outputs`) lives in a *storage*: its own, or an alias -- a view (reshape)
shares its input's storage, a producer written in place into a concat shares the concat's
(nested concats share the outermost one), and a concat buffer lives from its first
producer. A storage is live from the first step that writes it to the last step that reads
any of its aliases. Storages holding a requested output are allocated fresh per call (the
caller keeps them); storages of kernels that cannot write into a given buffer are allocated
by the kernel. The rest share arena slots: greedy best fit, a slot freed after the last
read of its tenant is reused by a later one. `peak_bytes` is the largest total of live
activation storages (all kinds) at any step.
"""
from __future__ import annotations

import dataclasses

from ..ir.cost import tensor_bytes
from ..ir.ops import SOURCE_OPS
from .step import CONCAT, VIEW

ARENA, OUTPUT, KERNEL, EXTERNAL = "arena", "output", "kernel", "external"


@dataclasses.dataclass
class Storage:
    key: str
    shape: tuple[int, ...]
    nbytes: int
    kind: str
    first: int
    last: int
    slot: int = -1


@dataclasses.dataclass
class MemoryPlan:
    storages: dict[str, Storage]          # storage key -> storage
    alias: dict[str, str]                 # node name -> storage key
    slot_bytes: list[int]
    peak_bytes: int
    frees_after: dict[int, list[str]]     # step index -> arena storages dead after it

    @property
    def arena_bytes(self) -> int:
        return sum(self.slot_bytes)

    def storage_of(self, name: str) -> Storage | None:
        key = self.alias.get(name)
        return self.storages.get(key) if key else None


def plan_memory(plan):
    """Plan pass: `plan.memory`, the MemoryPlan of the plan's steps (last of the plan passes)."""
    plan.memory = memory_plan_of(plan)
    return plan


def memory_plan_of(plan) -> MemoryPlan:
    """Storages, their aliases, arena slots and the peak, as the module docstring describes."""
    alias: dict[str, str] = {}
    storages: dict[str, Storage] = {}
    for n in plan.program.nodes:
        if n.op in SOURCE_OPS:
            alias[n.name] = n.name
            storages[n.name] = Storage(n.name, n.shape, 0, EXTERNAL, -1, -1)

    for s in plan.steps:
        for out in s.outputs:
            name = out.node.name
            if s.kernel == VIEW:
                alias[name] = alias[s.inputs[0].name]
                continue
            if out.target is not None:  # in place in a concat's buffer (a copy: into its own concat's)
                key = alias[out.target[0].name]
            else:
                kind = ARENA if s.kernel == CONCAT or s.takes_out else KERNEL
                key = name
                storages[key] = Storage(key, out.node.shape, tensor_bytes(out.node.shape, plan.dtype), kind,
                                        s.index, s.index)
            alias[name] = key
    # liveness
    for s in plan.steps:
        for out in s.outputs:
            st = storages[alias[out.node.name]]
            st.first = min(st.first, s.index) if st.first >= 0 else s.index
            st.last = max(st.last, s.index)
        for r in s.reads:
            st = storages[alias[r.name]]
            st.last = max(st.last, s.index)
    end = len(plan.steps)
    for o in plan.outputs:
        st = storages[alias[o.name]]
        if st.kind != EXTERNAL:
            st.kind = OUTPUT
            st.last = end
    # greedy best-fit slot assignment for arena storages
    slot_bytes: list[int] = []
    free_slots: list[int] = []
    frees_after: dict[int, list[str]] = {}
    by_first: dict[int, list[Storage]] = {}
    for st in storages.values():
        if st.kind == ARENA:
            by_first.setdefault(st.first, []).append(st)
            frees_after.setdefault(st.last, []).append(st.key)
    for i in range(end):
        for st in by_first.get(i, []):
            fitting = [k for k in free_slots if slot_bytes[k] >= st.nbytes]
            if fitting:  # the smallest free slot that holds it
                k = min(fitting, key=lambda k: slot_bytes[k])
            elif free_slots:  # else the largest free one, grown
                k = max(free_slots, key=lambda k: slot_bytes[k])
                slot_bytes[k] = st.nbytes
            else:
                k = len(slot_bytes)
                slot_bytes.append(st.nbytes)
            if k in free_slots:
                free_slots.remove(k)
            st.slot = k
        for key in frees_after.get(i, []):
            free_slots.append(storages[key].slot)
    # peak of live activation storages
    peak = 0
    live_changes = [0] * (end + 2)
    for st in storages.values():
        if st.kind == EXTERNAL or st.first < 0:
            continue
        live_changes[st.first] += st.nbytes
        live_changes[min(st.last, end) + 1] -= st.nbytes
    cur = 0
    for delta in live_changes:
        cur += delta
        peak = max(peak, cur)
    return MemoryPlan(storages, alias, slot_bytes, peak, frees_after)
