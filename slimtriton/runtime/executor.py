"""Runs a plan: parameters prepared once (packed, cast, on the device), activations in
arena slots (slimtriton.runtime.memory), one kernel call per step.

Poison mode (`poison=True`, a test mode): every arena slot is NaN-filled when created and
again right after its tenant's last read, so a kernel reading a freed buffer or leaving
part of its output unwritten produces NaN in the outputs.

A shared arena (`SharedArena`): the executors of one dynamic-batch model (one plan per
batch bucket, slimtriton.compiler) carve their slots out of one backing allocation sized
for the largest of them; the model's lock runs one call at a time, so they never overlap.
"""
from __future__ import annotations

import numpy as np
import torch

from ..ir.ops import PARAMETER_OPS, Op
from ..kernels.common import DTYPES as TORCH_DTYPES  # compute dtype name -> torch dtype
from . import lowering as L
from .memory import ARENA, EXTERNAL, KERNEL, OUTPUT

PACKERS = {L.PREP_CONV: "prepack_conv2d", L.PREP_DEPTHWISE: "prepack_depthwise",
           L.PREP_TRANSPOSE: "prepack_conv2d_transpose", L.PREP_MATMUL: "prepack_matmul"}


def prepare_parameters(plan, values: dict, device, progress=None) -> dict:
    """{param node name (or name#kind): the tensor its kernels read}: a CONSTANT as a 0-d tensor
    of the compute dtype, packed weights, per-channel vectors in float32, anything else in the
    compute dtype. `values`: {variable name: float64 array} (meta tensors when only the
    launches are recorded)."""
    from .. import kernels
    dtype = TORCH_DTYPES[plan.dtype]
    prepared = {}
    items = list(plan.prep.items())
    for key, kind in (progress(items) if progress else items):
        name = key.split("#")[0]
        node = plan.params[name]
        if node.op is Op.CONSTANT:
            prepared[key] = torch.tensor(float(node.attrs["value"]), dtype=dtype, device=device)
            continue
        value = torch.as_tensor(values[node.attrs["var"]], dtype=torch.float32)
        if kind in PACKERS:
            fn = getattr(kernels, PACKERS[kind], None)
            if fn is None:
                raise NotImplementedError(f"{name}: kernels.{PACKERS[kind]} is missing (needed to pack these weights)")
            prepared[key] = fn(value, dtype=dtype, device=device)
        else:
            prepared[key] = value.to(device=device, dtype=torch.float32 if kind == L.PREP_VECTOR else dtype)
    return prepared


# Slots carved from a shared backing allocation start on this boundary (bytes), as a
# separate allocation would (the kernels' pointer-alignment specializations stay the same).
SLOT_ALIGN_BYTES = 256


def slot_offsets(slot_bytes, itemsize: int) -> tuple[list[int], int]:
    """(element offset of each arena slot inside one backing buffer, total elements)."""
    align = SLOT_ALIGN_BYTES // itemsize
    offsets, total = [], 0
    for nbytes in slot_bytes:
        offsets.append(total)
        n = (nbytes + itemsize - 1) // itemsize
        total += -(-n // align) * align
    return offsets, total


class SharedArena:
    """One backing allocation for the arenas of several plans run one at a time (the batch
    buckets of one model): sized once for the largest, allocated at the first run."""

    def __init__(self, plans, dtype, device, poison: bool = False):
        self.dtype, self.device, self.poison = dtype, torch.device(device), poison
        itemsize = torch.empty((), dtype=dtype).element_size()
        self.elements = max(slot_offsets(p.memory.slot_bytes, itemsize)[1] for p in plans)
        self._backing = None

    @property
    def nbytes(self) -> int:
        return self.elements * torch.empty((), dtype=self.dtype).element_size()

    def backing(self) -> torch.Tensor:
        if self._backing is None:
            fill = torch.full if self.poison else (lambda shape, _v, **kw: torch.empty(shape, **kw))
            self._backing = fill((max(self.elements, 1),), float("nan"), dtype=self.dtype, device=self.device)
        return self._backing


class PlanExecutor:
    def __init__(self, plan, params: dict, device, precision: str = "ieee", poison: bool = False,
                 arena: "SharedArena | None" = None):
        """`arena`: a SharedArena to carve the slots from (default: one allocation per slot)."""
        self.plan = plan
        self.params = params
        self.device = torch.device(device)
        self.precision = precision
        self.poison = poison
        self.dtype = TORCH_DTYPES[plan.dtype]
        self._arena_views = None
        self._shared_arena = arena
        self._concats = {s.node.name: s for s in plan.steps if s.kernel == "concat"}
        self._slices = {s.node.name: s for s in plan.steps if s.kernel == "channel_slice"}

    def _arena(self) -> dict:
        """{arena storage key: its view of its slot}; the slots are allocated at the first run."""
        if self._arena_views is None:
            mem = self.plan.memory
            itemsize = torch.empty((), dtype=self.dtype).element_size()
            if self._shared_arena is not None:
                backing = self._shared_arena.backing()
                offsets, _ = slot_offsets(mem.slot_bytes, itemsize)
                slots = [backing[off:off + (nbytes + itemsize - 1) // itemsize]
                         for off, nbytes in zip(offsets, mem.slot_bytes)]
            else:
                slots = [self._new(((nbytes + itemsize - 1) // itemsize,)) for nbytes in mem.slot_bytes]
            self._arena_views = {key: slots[st.slot][:int(np.prod(st.shape, dtype=np.int64))].view(st.shape)
                                 for key, st in mem.storages.items() if st.kind == ARENA}
        return self._arena_views

    def _new(self, shape):
        if self.poison:
            return torch.full(shape, float("nan"), dtype=self.dtype, device=self.device)
        return torch.empty(shape, dtype=self.dtype, device=self.device)

    def run(self, inputs: dict, after_step=None) -> list:
        """inputs: {placeholder name: tensor of the compute dtype on the device}. Returns outputs."""
        mem = self.plan.memory
        env: dict[str, torch.Tensor] = dict(inputs)
        buffers: dict[str, torch.Tensor] = dict(self._arena())

        def buffer(key):
            if key not in buffers:
                st = mem.storages[key]
                if st.kind != OUTPUT:
                    return None
                buffers[key] = self._new(st.shape)  # fresh per call: the caller keeps it
            return buffers[key]

        def get(node):
            if node.op in PARAMETER_OPS:
                return self.params[node.name]
            return env[node.name]

        for step in self.plan.steps:
            self._run_step(step, env, buffers, buffer, get)
            self._free(step.index, buffers)
            if after_step is not None:
                after_step(step)
        return self._outputs(env)

    def _step_getter(self, step, get):
        """`get` for one step: the parameters it reads prepared their own way (Step.param_keys)."""
        keys = step.param_keys
        if not keys:
            return get
        return lambda node: self.params[keys[node.name]] if node.name in keys else get(node)

    def _run_step(self, step, env, buffers, buffer, get):
        mem = self.plan.memory
        name = step.node.name
        get = self._step_getter(step, get)
        if step.kernel == "view":
            env[name] = step.lowered.call(get, None, 0, self.precision)
            return
        key = mem.alias.get(name)
        if step.kernel == "concat" or (step.kernel == "channel_slice" and step.target is None):
            env[name] = buffer(key)
            return
        if step.kernel == "channel_slice":  # written into its concat's buffer, read by nothing else
            return
        if step.kernel == "copy_channels":
            from .. import kernels
            concat = step.target[0]
            kernels.copy_channels(get(step.copy_from), buffer(mem.alias[concat.name]), self._offset(step),
                                  name=f"{concat.name} <- {step.copy_from.name}")
            return
        if step.lowered.routes:  # a routed conv: each channel slice's buffer (or concat slice) is a destination
            outs = []
            for sl in step.lowered.routes:
                slice_step = self._slices[sl.name]
                outs.append((buffer(mem.alias[sl.name]), self._offset(slice_step) if slice_step.target else 0))
            step.lowered.call(get, outs, self.precision)
            return
        st = mem.storages[key]
        offset = 0
        out = None
        if step.target is not None:
            out, offset = buffer(key), self._offset(step)
        elif st.kind in (ARENA, OUTPUT) and step.lowered.supports_out:
            out = buffer(key)
        result = step.lowered.call(get, out, offset, self.precision)
        if step.target is None:
            if out is not None and result.data_ptr() != out.data_ptr():
                raise RuntimeError(f"{name}: kernel {step.kernel} ignored its out= buffer")
            env[name] = result
            if st.kind == KERNEL:
                buffers[key] = result

    def _outputs(self, env) -> list:
        mem = self.plan.memory
        results = []
        for o in self.plan.outputs:
            if o.op in PARAMETER_OPS:
                results.append(self.params[self.plan.output_keys[o.name]].clone())
            elif mem.storages[mem.alias[o.name]].kind == EXTERNAL:
                results.append(env[o.name].clone())  # an input (or a view of one) returned as is
            else:
                results.append(env[o.name])
        return results

    def _offset(self, step) -> int:
        """Channel offset of a producer inside its outermost concat buffer (nested concats add up)."""
        concat, offset = step.target
        while self._concats[concat.name].target is not None:
            concat, extra = self._concats[concat.name].target
            offset += extra
        return offset

    def _free(self, index: int, buffers) -> None:
        if not self.poison:
            return
        for key in self.plan.memory.frees_after.get(index, []):
            buf = buffers.get(key)
            if buf is not None:
                buf.fill_(float("nan"))
