"""Runs a plan: parameters prepared once (packed, cast, on the device), activations in
arena slots (slimtriton.runtime.memory), one kernel call per step.

A step is data (slimtriton.runtime.step.Step): the executor resolves each argument bound to a
node to that node's tensor (a parameter as prepared for this step, `Step.param_keys`), adds
`out=` / `out_channel_offset=` (the output's arena slot, a fresh buffer for a requested
output, or its slice of a concat's buffer) when the kernel takes them and `precision=`, and
calls `kernels.<step.kernel>`. A view reshapes its input's tensor; a concat step names its
buffer. The CUDA graph (runtime/cuda_graph.py) captures and replays exactly this walk.

Poison mode (`poison=True`, a test mode): every arena slot is NaN-filled when created and
again right after its tenant's last read, so a kernel reading a freed buffer or leaving
part of its output unwritten produces NaN in the outputs.

A shared arena (`SharedArena`): the executors of one dynamic-batch model (one plan per
batch bucket, slimtriton.compiler) carve their slots out of one backing allocation sized
for the largest of them; the model's lock runs one call at a time, so they never overlap.

PlanExecutor runs plan steps, not nodes, so it is not a subclass of the node interpreter
(slimtriton/executor.py `Interpreter`); its liveness is the memory plan's `frees_after`, the
interpreter's rule (`frees_after_last_use`: dead after the last reader unless an output) over
arena storages (tests/test_interpreter.py checks that they agree).
"""
from __future__ import annotations

import numpy as np
import torch

from .. import kernels
from ..ir.ops import PARAMETER_OPS, Op
from ..kernels.common import TORCH_COMPUTE_DTYPES  # compute dtype name -> torch dtype
from . import lowering as L
from .memory import ARENA, EXTERNAL, KERNEL, OUTPUT
from .step import CONCAT, VIEW

PACKERS = {L.PREP_CONV: "prepack_conv2d", L.PREP_DEPTHWISE: "prepack_depthwise",
           L.PREP_TRANSPOSE: "prepack_conv2d_transpose", L.PREP_MATMUL: "prepack_matmul"}


def prepare_parameters(plan, values: dict, device, progress=None) -> dict:
    """{param node name (or name#kind): the tensor its kernels read}: a CONSTANT as a 0-d tensor
    of the compute dtype, packed weights, per-channel vectors in float32, anything else in the
    compute dtype. `values`: {variable name: float64 array} (meta tensors when only the
    launches are recorded)."""
    dtype = TORCH_COMPUTE_DTYPES[plan.dtype]
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
        self.dtype = TORCH_COMPUTE_DTYPES[plan.dtype]
        self._arena_views = None
        self._shared_arena = arena
        self._concats = {s.node.name: s for s in plan.steps if s.kernel == CONCAT}
        self._kernels = {s.index: getattr(kernels, s.kernel) for s in plan.steps if s.launches_kernel}

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
        """Run one step's record: resolve its argument roles to tensors, add the output buffer
        and precision, and call kernels.<kernel> (slimtriton.runtime.step)."""
        mem = self.plan.memory
        if len(step.outputs) != 1:
            return self._run_routed(step, env, buffer, self._step_getter(step, get))
        output = step.outputs[0]
        name = output.node.name
        get = self._step_getter(step, get)
        if step.kernel == VIEW:
            env[name] = get(step.inputs[0]).reshape(output.node.shape)
            return
        key = mem.alias.get(name)
        if step.kernel == CONCAT:
            env[name] = buffer(key)
            return
        args, kwargs = step.call_arguments(get)
        if step.takes_out:
            out, offset = None, 0
            if output.target is not None:
                out, offset = buffer(key), self._offset(output)
            elif mem.storages[key].kind in (ARENA, OUTPUT):
                out = buffer(key)
            kwargs.update(out=out, out_channel_offset=offset)
        if step.takes_precision:
            kwargs["precision"] = self.precision
        result = self._kernels[step.index](*args, **kwargs)
        if output.target is None:
            if step.takes_out and kwargs["out"] is not None and result.data_ptr() != kwargs["out"].data_ptr():
                raise RuntimeError(f"{name}: kernel {step.kernel} ignored its out= buffer")
            env[name] = result
            if mem.storages[key].kind == KERNEL:
                buffers[key] = result

    def _run_routed(self, step, env, buffer, get):
        """A step with several outputs (kernels.conv2d_routed): each output's buffer -- its own
        storage or its concat slice -- is one of the kernel's `destinations`, in output order."""
        mem = self.plan.memory
        destinations = []
        for o in step.outputs:
            out = buffer(mem.alias[o.node.name])
            destinations.append((out, self._offset(o) if o.target is not None else 0, o.shape[-1]))
        args, kwargs = step.call_arguments(get)
        kwargs["destinations"] = destinations
        if step.takes_precision:
            kwargs["precision"] = self.precision
        self._kernels[step.index](*args, **kwargs)
        for o, (out, _, _) in zip(step.outputs, destinations):
            if o.target is None:
                env[o.node.name] = out

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

    def _offset(self, output) -> int:
        """Channel offset of an output inside its outermost concat buffer (nested concats add up)."""
        concat, offset = output.target
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
