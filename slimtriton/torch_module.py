"""`model.to_module()`: a compiled model as a `torch.nn.Module`, for use inside a torch program.

    model = st.compile(g, logits, weights)
    net = model.to_module()                 # torch.nn.Module; forward runs the compiled plan
    with torch.inference_mode():
        out = net(images)                   # torch in -> torch out, on the module's device
    torch.save(net.state_dict(), "w.pt")    # keys are the TF-Slim variable names
    net.to("cuda")                          # the weights move; kernels re-pack them there

The module's buffers are the weights the plan reads, as float32 tensors keyed by their TF-Slim
names (`resnet_v1_50/conv1/weights`). torch forbids '.' in buffer names, so a name is escaped
reversibly: '%' -> '%25' and '.' -> '%2E' (TF-Slim names have neither, so they are unchanged;
`buffer_name` / `variable_name` convert). The kernels read packed copies of these weights
(BN folded, transposed, cast: slimtriton.runtime.executor.prepare_parameters); the packed
copies are rebuilt at the first forward after the buffers change device, dtype or values
(`.to(device)`, `load_state_dict`, an in-place edit): each forward compares the buffers'
device, storage pointer and version counter with those it packed.

Inference only: forward refuses inputs that require grad while grad mode is on (the kernels
have no backward). Under `torch.compile` the forward is a clean graph break
(`torch.compiler.disable`): dynamo does not trace into the Triton launches, it calls the
module eagerly between the compiled graphs around it; `fullgraph=True` therefore refuses it.
On CUDA the module launches the kernels one by one (no CUDA graph; `model(x)` uses one).

A dynamic-batch model (`st.compile(..., max_batch=N)`) gives a module whose forward takes any
batch up to N, with the model's bucket logic (slimtriton.runtime.buckets: the smallest bucket
that holds the batch runs, its inputs zero-padded and the outputs sliced back; a batch outside
1..N is one ValueError naming it and the range). Its buckets share the packed weights and one
activation arena (runtime.executor.SharedArena); the buffers and state_dict are the same as a
static module's.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from .feeds import rebuild
from .fusion.program import resolve_parameters
from .runtime.buckets import bucket_for, pad_batch
from .runtime.executor import TORCH_COMPUTE_DTYPES, PlanExecutor, SharedArena, prepare_parameters

INFERENCE_ONLY = ("slimtriton modules are inference only: the Triton kernels have no backward. Call it under "
                  "torch.no_grad() or torch.inference_mode(), or pass inputs that do not require grad "
                  "(.detach()).")


def buffer_name(variable: str) -> str:
    """The buffer (state_dict key) of a TF-Slim variable: '%' -> '%25', '.' -> '%2E'."""
    return variable.replace("%", "%25").replace(".", "%2E")


def variable_name(buffer: str) -> str:
    """The inverse of `buffer_name`."""
    return buffer.replace("%2E", ".").replace("%25", "%")


def source_variables(plan) -> list[str]:
    """The weights (TF-Slim names) a plan reads: its variables, and the sources of the
    parameters the passes derived (a folded kernel is derived from the kernel and the BN)."""
    program = plan.program
    names = []
    for n in program.nodes:
        var = n.attrs.get("var") if n.op.name == "VARIABLE" else None
        if var is not None and var not in program.derived and var not in names:
            names.append(var)
    for derived in program.derived.values():
        for source in derived.sources:
            if source not in program.derived and source not in names:
                names.append(source)
    return names


class CompiledModule(torch.nn.Module):
    """A compiled plan as a torch module (see the module docstring). Build it with
    `CompiledModel.to_module()`, which hands over the compiler's `kernel_device(device)` (refuses
    what the kernels cannot run on): this module sits beside the compiler and does not import
    it (no import cycle). Outputs are rebuilt into the compiled structure by
    slimtriton/feeds.py `rebuild`, as the model's own are."""

    def __init__(self, model, weights: Mapping[str, np.ndarray], kernel_device):
        super().__init__()
        self._plan = model.plan  # a dynamic-batch model's largest bucket
        self._plans = dict(model.plans)  # batch bucket -> plan of a dynamic-batch model; {} for a static one
        self._batch_sizes = list(self._plans)
        self._dynamic = {n.name for n in model.plan.inputs if n.name in model._dynamic_inputs} if self._plans else set()
        self._spec = model._spec
        self._kernel_device = kernel_device
        self._precision = model.precision
        self._variables = source_variables(model.plan)
        missing = [v for v in self._variables if v not in weights]
        if missing:
            raise ValueError(f"to_module: weights missing for {missing}")
        for var in self._variables:
            self.register_buffer(buffer_name(var), torch.as_tensor(np.asarray(weights[var], dtype=np.float32)).clone())
        # Tracks the module's device (and moves with it) when the plan reads no weight at all.
        self.register_buffer("_slimtriton_device", torch.empty(0, device=model.device), persistent=False)
        self._executors = {}  # batch bucket (None: the static plan) -> PlanExecutor, built at its first call
        self._params = None
        self._arena = None  # a dynamic-batch module's buckets share one arena, as the model's do
        self._packed_from = self._packed_device = None

    # -- parameters ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self._slimtriton_device.device

    def weights(self) -> dict[str, torch.Tensor]:
        """{TF-Slim name: buffer}."""
        return {var: getattr(self, buffer_name(var)) for var in self._variables}

    def _signature(self):
        return (self.device,) + tuple((t.device, t.dtype, t.data_ptr(), t._version) for t in self.weights().values())

    @property
    def max_batch(self):
        """The largest batch forward takes (a dynamic-batch module), None for a static one."""
        return self._batch_sizes[-1] if self._plans else None

    def _prepared_executor(self, bucket=None):
        """The executor of batch `bucket` (None: the static plan), over parameters packed from the
        current buffers (re-packed, and the executors rebuilt, when they changed)."""
        signature = self._signature()
        if self._params is None or signature != self._packed_from:
            device = self._kernel_device(self.device)  # a clear error for a device the kernels cannot run on
            for var, t in self.weights().items():
                if t.device != device:
                    raise ValueError(f"to_module: buffer {buffer_name(var)} is on {t.device}, the module on {device}; "
                                     f"move the whole module with .to(device)")
            # Normal (not inference) tensors even when first packed under inference_mode: torch
            # refuses in-place ops on inference tensors outside it, and a later call may be outside.
            with torch.inference_mode(False), torch.no_grad():
                host = {var: t.detach().to("cpu", torch.float64).numpy() for var, t in self.weights().items()}
                values = resolve_parameters(self._plan.program, host)
                # every bucket's plan reads the same prepared parameters (checked by compile)
                self._params = prepare_parameters(self._plan, values, device)
                self._arena = (SharedArena(list(self._plans.values()), TORCH_COMPUTE_DTYPES[self._plan.dtype], device)
                               if self._plans else None)
            self._executors = {}
            self._packed_from, self._packed_device = signature, device
        if bucket not in self._executors:
            plan = self._plans[bucket] if bucket is not None else self._plan
            self._executors[bucket] = PlanExecutor(plan, self._params, self._packed_device, self._precision,
                                                   arena=self._arena)
        return self._executors[bucket]

    # -- calling ------------------------------------------------------------------------------
    def _feeds(self, args, kwargs) -> dict:
        inputs = self._plan.inputs
        if len(args) > len(inputs):
            raise TypeError(f"forward takes {len(inputs)} inputs ({[n.name for n in inputs]}), got {len(args)}")
        feeds = {n.name: a for n, a in zip(inputs, args)}
        for key, value in kwargs.items():
            name = key.split(":")[0]
            if name not in {n.name for n in inputs}:
                raise TypeError(f"forward: {key!r} is not an input (placeholders: {[n.name for n in inputs]})")
            if name in feeds:
                raise TypeError(f"forward: input {name!r} given twice")
            feeds[name] = value
        missing = [n.name for n in inputs if n.name not in feeds]
        if missing:
            raise TypeError(f"forward: inputs {missing} must be given")
        for name, value in feeds.items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"forward: input {name} must be a torch.Tensor, got {type(value).__name__} "
                                f"(the CompiledModel itself takes NumPy arrays)")
        return feeds

    def forward(self, *args, **kwargs):
        """Run the plan: inputs are torch tensors (positional in placeholder order, or by name),
        of the recorded shape and any float dtype; outputs are torch tensors of the compute
        dtype on the module's device, in the structure the model was compiled for. A module of
        a dynamic-batch model takes any batch up to its `max_batch`, as the model does (the
        bucket that holds it runs, the inputs padded and the outputs sliced back)."""
        return _run(self, args, kwargs)

    def extra_repr(self) -> str:
        shapes = [[None, *n.shape[1:]] if n.name in self._dynamic else list(n.shape) for n in self._plan.inputs]
        buckets = f", batch buckets {self._batch_sizes}" if self._plans else ""
        return (f"{len(self._plan.inputs)} input(s) {shapes}{buckets}, "
                f"{sum(1 for s in self._plan.steps if s.launches_kernel)} kernels, dtype={self._plan.dtype}, "
                f"{len(self._variables)} weight buffers")


GRAPH_BREAK_REASON = "slimtriton launches its own Triton kernels; dynamo runs the module eagerly (a graph break)"


def _graph_break(fn):
    """`fn`, never traced by dynamo (torch.compiler.disable), with the reason where torch takes one."""
    try:
        return torch.compiler.disable(fn, reason=GRAPH_BREAK_REASON)
    except TypeError:  # torch before the `reason` argument (pyproject allows torch >= 2.4)
        return torch.compiler.disable(fn)


@_graph_break
def _run(module: CompiledModule, args, kwargs):
    feeds = module._feeds(args, kwargs)
    if torch.is_grad_enabled() and any(v.requires_grad for v in feeds.values()):
        names = [k for k, v in feeds.items() if v.requires_grad]
        raise RuntimeError(f"{INFERENCE_ONLY} (inputs requiring grad: {names})")
    for node in module._plan.inputs:
        value, dynamic = feeds[node.name], node.name in module._dynamic
        shape = [None, *node.shape[1:]] if dynamic else list(node.shape)
        fits = (value.dim() == len(shape) and tuple(value.shape[1:]) == tuple(shape[1:])) if dynamic else (
            tuple(value.shape) == tuple(shape))
        if not fits or not value.is_floating_point():
            raise ValueError(f"input {node.name}: expected a float tensor of shape {shape}, "
                             f"got {str(value.dtype).replace('torch.', '')}{list(value.shape)}")
    batch = bucket = None
    if module._plans:
        batches = {name: int(feeds[name].shape[0]) for name in sorted(module._dynamic)}
        if len(set(batches.values())) != 1:
            raise ValueError("the inputs of the unknown batch disagree on its size: "
                             + ", ".join(f"{k} has batch {b}" for k, b in batches.items()))
        batch = next(iter(batches.values()))
        bucket = bucket_for(batch, module._batch_sizes)  # a ValueError naming the batch and the range
    executor = module._prepared_executor(bucket)
    dtype = TORCH_COMPUTE_DTYPES[module._plan.dtype]
    tensors = {}
    for node in executor.plan.inputs:
        t = feeds[node.name].detach().to(device=executor.device, dtype=dtype).contiguous()
        tensors[node.name] = pad_batch(t, bucket) if node.name in module._dynamic else t
    with torch.no_grad():
        results = executor.run(tensors)
    if bucket != batch:  # every output of a dynamic-batch model leads with the batch
        results = [r[:batch] for r in results]
    return rebuild(module._spec, list(results))


def to_module(model, kernel_device) -> CompiledModule:
    """`model.to_module()` (which passes the compiler's `kernel_device`): see
    the module docstring."""
    weights = getattr(model, "_source_weights", None)
    if model.analysis_only:
        raise ValueError("to_module needs a model compiled with weights (st.compile(graph, outputs, weights)); "
                         "this one is analysis only")
    if weights is None:
        raise ValueError("to_module: this model was loaded from a saved engine, which holds the kernels' packed "
                         "parameters, not the TF-Slim weights a module's buffers and state_dict are; compile the "
                         "graph with its weights (st.compile(graph, outputs, st.load_weights(...)).to_module())")
    return CompiledModule(model, weights, kernel_device)
