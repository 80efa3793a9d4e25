"""Replay the whole plan as one CUDA graph (static shapes: every launch, buffer and
argument is fixed once the parameters are prepared and the arena is allocated). What is
captured is the executor's walk over the plan's step records (runtime/step.py): each step's
kernel call, its arguments resolved to the same tensors at every replay.

Life cycle of a `CudaGraphRunner`:

1. first call: the plan runs eagerly on the caller's stream (Triton JIT compilation and
   autotuning happen there, outside any capture: timing a kernel inside a capture is
   impossible) and its result is returned. Then, on a side stream, one more eager run
   warms the side stream's allocator state, and one run is captured into a
   `torch.cuda.CUDAGraph` reading *static input* tensors (clones of the first inputs).
   The arena (`PlanExecutor._arena`) was allocated by the first eager run, outside the
   capture; the per-call output buffers and kernel-allocated intermediates of the captured
   run live in the graph's private memory pool (`pool=` shares one between models).
2. later calls: each input is copied into its static tensor on the caller's stream, the
   graph is replayed on that stream, and the outputs are **cloned** (the graph's output
   buffers are rewritten by the next replay; a caller keeping a result must not see it
   change).
3. inputs must match the static inputs exactly (names, shape, dtype, device):
   `CompiledModel` converts feeds before they reach here, so a mismatch is a bug, and is
   refused by name rather than broadcast by `copy_`.
4. any capture failure falls back to eager execution for good, with a warning -- never a
   wrong result. `reset()` drops the graph: the next call captures again (e.g. after the
   executor's parameters were replaced).
5. when the caller's stream is itself being captured (the model called inside someone
   else's `torch.cuda.graph`), the plan runs eagerly so that it is recorded into the
   caller's graph; nested captures are not possible.

Streams: the arena and the static tensors are shared by every call of a model, so a call on
another stream than the previous call first waits for the previous call's work
(`StreamOrder`, used by `CompiledModel` on CUDA with or without the graph); calls on one
stream are ordered by the stream itself.

Only `torch.cuda` APIs are used; tests drive these classes with fakes of them on the CPU.
"""
from __future__ import annotations

import warnings

import torch


class CudaGraphRunner:
    def __init__(self, executor, plan, pool=None):
        self.executor = executor
        self.plan = plan
        self.pool = pool  # a torch.cuda.graph_pool_handle() shared with other graphs, or None (private)
        self.graph = None
        self.static_inputs: dict | None = None
        self.static_outputs: list | None = None
        self.failed = False
        self.replays = 0

    def reset(self) -> None:
        """Forget the captured graph (its memory pool is released with it); the next call
        runs eagerly and captures again."""
        self.graph = None
        self.static_inputs = None
        self.static_outputs = None
        self.failed = False

    def run(self, inputs: dict) -> list:
        if self.failed or torch.cuda.is_current_stream_capturing():
            return self.executor.run(inputs)
        if self.graph is None:
            result = self.executor.run(inputs)  # warm-up: compile and autotune outside the capture
            try:
                self._capture(inputs)
            except Exception as e:  # noqa: BLE001 -- any capture problem: keep running eagerly
                self.failed = True
                self.graph = self.static_inputs = self.static_outputs = None
                warnings.warn(f"slimtriton: CUDA graph capture failed ({type(e).__name__}: {e}); "
                              f"running kernel by kernel", stacklevel=3)
            return result
        self._check_inputs(inputs)
        for name, t in inputs.items():
            self.static_inputs[name].copy_(t)
        self.graph.replay()
        self.replays += 1
        return [o.clone() for o in self.static_outputs]

    def _check_inputs(self, inputs: dict) -> None:
        if set(inputs) != set(self.static_inputs):
            raise ValueError(f"CUDA graph inputs {sorted(inputs)} differ from the captured ones "
                             f"{sorted(self.static_inputs)}")
        for name, t in inputs.items():
            s = self.static_inputs[name]
            if tuple(t.shape) != tuple(s.shape) or t.dtype != s.dtype or t.device != s.device:
                raise ValueError(f"input {name}: the CUDA graph was captured for {s.dtype}{list(s.shape)} on "
                                 f"{s.device}, got {t.dtype}{list(t.shape)} on {t.device}")

    def _capture(self, inputs: dict) -> None:
        self.static_inputs = {k: v.clone() for k, v in inputs.items()}
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self.executor.run(self.static_inputs)  # one more warm run on the capture stream
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool, stream=stream):
            static_outputs = self.executor.run(self.static_inputs)
        self.static_outputs = static_outputs
        self.graph = graph


class StreamOrder:
    """Orders the calls of one model that share buffers: when the current CUDA stream is not
    the previous call's, it waits for that stream's work first (an event; no host sync)."""

    def __init__(self):
        self.last = None

    def __call__(self) -> None:
        current = torch.cuda.current_stream()
        if self.last is not None and self.last != current:
            current.wait_stream(self.last)
        self.last = current
