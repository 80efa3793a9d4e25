"""`st.compile`: fusion passes -> kernel plan -> memory plan -> fused Triton execution.

    model = st.compile(g, logits, weights, dtype="float16")
    probs = model(images)                   # NumPy in -> NumPy out; torch in -> torch out (graph's dtype)
    print(model.report())                   # per-kernel fused ops, FLOPs, DRAM bytes; 3 plans
    model.kernels[0].source                 # the Triton source of a fused kernel

`weights=None` gives an analysis-only model (plan and report, not callable); `plan(g,
outputs, dtype)` is the same thing as a function. On CUDA with static shapes the whole
plan is replayed as one CUDA graph (`cuda_graph=False` turns it off); without a GPU the
kernels run in the Triton interpreter on the CPU (correctness, not speed).

A graph recorded with an unknown batch (`st.placeholder([None, ...])`) compiles into one
model for any batch up to `max_batch` (or the largest of `batch_sizes`):

    model = st.compile(g, logits, weights, max_batch=8)    # plans for batch 1, 2, 4, 8
    model(x3)                                               # batch 3: padded to 4, sliced back to 3

One plan per batch bucket (powers of two up to max_batch, and max_batch itself; explicit
`batch_sizes` replace them), all planned eagerly by `compile` (every error at compile time),
all reading the same prepared parameters (prepared once). The executors are built lazily,
at the first call of their bucket, and carve their activation buffers out of one shared
arena sized for the largest bucket (calls are serialized by the model's lock). An input is
padded with zeros up to its bucket and the padding is sliced off every output, so every
output's leading dimension must be the batch and no op may mix examples (both checked at
compile time). On CUDA each bucket captures its own CUDA graph at its first call. A batch
outside [1, max bucket] is one ValueError naming it and the range. A static graph compiles
as before; `max_batch`/`batch_sizes` with a static graph is an error.
"""
from __future__ import annotations

import inspect
import json
import os
import threading
import warnings
from typing import Any, Mapping

import numpy as np

from .engine import load as load_engine
from .engine import save as save_engine
from .executor import needed_nodes
from .feeds import check_value, feed_name, flatten_fetches, rebuild, to_numpy
from .fusion.fold_affine import keep_scale
from .fusion.pipeline import run_passes
from .fusion.program import Program, resolve_parameters
from .ir.node import COMPUTE_DTYPES, FLOAT_DTYPES, Node, Tensor
from .ir.ops import Op
from .ir.specialize import specialize
from .report import bucket_summary, fusion_report, plan_summary
from .runtime.buckets import bucket_for, pad_batch
from .runtime.plan import build_plan
from .weights import check_weights

# Imports marked `# lazy` stay inside their functions: torch, and the runtime modules that import
# torch and the Triton kernels, load only when a model is built to run, so `plan`, `report` and
# analysis-only models (weights=None) work without them.

PRECISIONS = ("ieee", "tf32")


def flatten_outputs(outputs, graph) -> tuple[list[Node], Any]:
    """Nodes of `outputs` (a tensor, a name, or a list/tuple/dict of them) and a rebuild spec
    (slimtriton/feeds.py `flatten_fetches` / `rebuild`)."""
    def node_of(o) -> Node:
        if isinstance(o, Tensor):
            return o.node
        if isinstance(o, Node):
            return o
        if isinstance(o, str):
            if graph is None:
                raise TypeError(f"output {o!r} is a name; pass a Graph to resolve it")
            return graph.node_by_name(o)
        raise TypeError(f"outputs must be Tensors, names, or lists/tuples/dicts of them; got {type(o).__name__}")
    return flatten_fetches(outputs, node_of)


def _graph_nodes(graph) -> list[Node]:
    nodes = graph if isinstance(graph, (list, tuple)) else getattr(graph, "nodes", None)
    if nodes is None:
        raise TypeError(f"compile needs a slimtriton Graph (or a node list), got {type(graph).__name__}")
    return list(nodes)


def plan(graph, outputs, dtype: str = "float32", log=None, weights=None, batch: int | None = None):
    """Fuse and plan without running: returns a `slimtriton.runtime.plan.Plan`. A plan has
    static shapes: a graph recorded with an unknown batch is planned at `batch` (required
    for such a graph, refused for a static one).

    Without `weights` every batch norm scale is assumed to fold into its conv's weights (the
    epilogue then loads no scale). With `weights` (checked), a layer whose folded weights would
    lose precision in `dtype` keeps its scale in the fp32 epilogue instead
    (slimtriton.fusion.fold_affine.keep_scale); `plan.program.kept_scale` names those layers."""
    if dtype not in COMPUTE_DTYPES:
        raise ValueError(f"dtype must be one of {COMPUTE_DTYPES}, got {dtype!r}")
    nodes, _ = flatten_outputs(outputs, graph if hasattr(graph, "node_by_name") else None)
    graph_nodes = _graph_nodes(graph)
    needed = needed_nodes(nodes)
    if any(n.dynamic_batch for n in graph_nodes if id(n) in needed):
        if batch is None:
            raise ValueError("the graph has an unknown batch (None): plan it at a batch (plan(..., batch=N)) or "
                             "compile it with max_batch=N")
        graph_nodes = specialize([n for n in graph_nodes if id(n) in needed], batch)
        by_name = {n.name: n for n in graph_nodes}
        nodes = [by_name[n.name] for n in nodes]
    elif batch is not None:
        raise ValueError(f"batch={batch!r} applies to a graph recorded with an unknown batch "
                         f"(st.placeholder([None, ...])); this graph's outputs have a static batch")
    program = Program.from_graph(graph_nodes, nodes)
    snapshots: dict = {}
    program = run_passes(program, log=log, snapshots=snapshots)
    if weights is not None:
        program = keep_scale(program, weights, dtype, log=log)
    result = build_plan(program, dtype)
    result.baseline = snapshots.get("remove_identities")
    return result


class KernelInfo:
    """One kernel of a compiled model: a view of its plan step (`step`, a
    slimtriton.runtime.step.Step: the kernel call as data, fused ops, shapes, FLOPs, modeled
    bytes) plus what needs the model: the launches it makes and their Triton source."""

    def __init__(self, model: "CompiledModel", step):
        self._model = model
        self.step = step

    name = property(lambda self: self.step.name, doc="the layer (IR node) the kernel computes")
    kernel = property(lambda self: self.step.kernel, doc="kernels.<kernel>, the host wrapper called")
    fused_ops = property(lambda self: self.step.fused_ops, doc="the recorded IR ops it computes")
    flops = property(lambda self: self.step.flops)
    bytes_read = property(lambda self: self.step.bytes_read, doc="modeled DRAM bytes read")
    bytes_written = property(lambda self: self.step.bytes_written, doc="modeled DRAM bytes written")
    input_shapes = property(lambda self: self.step.input_shapes, doc="shapes of the activations it reads")
    output_shape = property(lambda self: self.step.output_shape, doc="the shape it writes")

    @property
    def launches(self) -> list:
        """The `KernelLaunch` specs this step launches (recorded on meta tensors, nothing runs)."""
        return self._model.launches()[self.step.index]

    @property
    def source(self) -> str:
        texts = []
        for launch in self.launches:
            fn = getattr(launch.fn, "fn", launch.fn)
            src = getattr(launch.fn, "src", None) or inspect.getsource(fn)
            header = (f"# kernel {launch.name}: {getattr(fn, '__name__', fn)} grid={launch.grid} "
                      f"constexprs={launch.constexprs}")
            texts.append(header + "\n" + src)
        return "\n\n".join(texts)

    def __repr__(self) -> str:
        return (f"KernelInfo({self.name}: {self.kernel}, fused={list(self.fused_ops)}, flops={self.flops}, "
                f"bytes={self.bytes_read + self.bytes_written})")


class CompiledModel:
    def __init__(self, plan, output_spec, weights, device, precision: str, cuda_graph: bool, poison: bool = False,
                 prepared: dict | None = None, bucket_plans: dict | None = None, recorded_inputs=()):
        """`weights`: {variable name: array} (None: analysis only), or `prepared`: the parameters
        already prepared for the kernels (a loaded engine, slimtriton.engine).

        `bucket_plans`: {batch: plan} of a dynamic-batch model (`plan` is the largest), with
        `recorded_inputs` the recorded placeholders whose batch is unknown (see `compile`)."""
        self.plan = plan
        self.plans = dict(sorted((bucket_plans or {}).items()))  # batch bucket -> plan (dynamic batch only)
        self.batch_sizes = list(self.plans)                        # [] for a static graph
        self.max_batch = self.batch_sizes[-1] if self.plans else None
        self._dynamic_inputs = {n.name: n for n in recorded_inputs if n.dynamic_batch}
        self._buckets: dict[int, tuple] = {}  # batch bucket -> (executor, CUDA graph runner or None), lazily
        self._arena = None
        self.dtype = plan.dtype
        self.precision = precision
        self._spec = output_spec
        self._launches = None
        self.device = None
        self._executor = None
        self._cuda_graph = None
        self._stream_order = None
        self.analysis_only = weights is None and prepared is None
        self.kernels = [KernelInfo(self, s) for s in plan.steps if s.launches_kernel]
        self._source_weights = weights  # a reference, for to_module (its buffers)
        # Placeholders of the graph the outputs do not need: a feed for one is checked and ignored
        # (as Session does); a name that is no placeholder of the graph is an error.
        needed = {n.name for n in plan.inputs}
        self._unneeded_placeholders = {name: n for name, n in plan.program.recorded.items()
                                       if n.op is Op.PLACEHOLDER and name not in needed}
        self._lock = threading.Lock()  # calls share one arena of activation buffers: one call at a time
        if self.analysis_only:
            return
        import torch  # lazy: torch
        from .runtime.executor import PlanExecutor, prepare_parameters  # lazy: torch, kernels
        self.device = torch.device(device)
        if prepared is not None:
            params = prepared
        else:
            values = resolve_parameters(plan.program, weights)
            params = prepare_parameters(plan, values, self.device, progress=_progress("preparing parameters"))
        self._params, self._precision, self._poison = params, precision, poison
        self._graph_per_bucket = self.device.type == "cuda" and cuda_graph  # dynamic batch: one CUDA graph per bucket
        if self.plans:  # one executor per bucket, built at its first call (_bucket), sharing params and arena
            from .runtime.executor import TORCH_COMPUTE_DTYPES, SharedArena  # lazy: torch, kernels
            self._arena = SharedArena(list(self.plans.values()), TORCH_COMPUTE_DTYPES[self.dtype], self.device, poison)
        else:
            self._executor = PlanExecutor(plan, params, self.device, precision, poison)
        if self.device.type == "cuda":
            from .runtime.cuda_graph import CudaGraphRunner, StreamOrder  # lazy: torch, kernels
            self._stream_order = StreamOrder()  # calls share the arena: order them across streams
            if cuda_graph and not self.plans:
                self._cuda_graph = CudaGraphRunner(self._executor, plan)

    def _bucket(self, batch: int) -> tuple[int, object, object]:
        """(the bucket that runs `batch`, its executor, its CUDA graph runner or None); the
        executor and runner are built at the bucket's first call."""
        bucket = bucket_for(batch, self.batch_sizes)  # a ValueError naming the batch and the range
        if bucket not in self._buckets:
            from .runtime.executor import PlanExecutor  # lazy: torch, kernels
            bplan = self.plans[bucket]
            executor = PlanExecutor(bplan, self._params, self.device, self._precision, self._poison, arena=self._arena)
            runner = None
            if self._graph_per_bucket:
                from .runtime.cuda_graph import CudaGraphRunner  # lazy: torch, kernels
                runner = CudaGraphRunner(executor, bplan)
            self._buckets[bucket] = (executor, runner)
        return (bucket, *self._buckets[bucket])

    # -- calling ----------------------------------------------------------------------------
    def __call__(self, *args, **feeds):
        """Run on one array (one placeholder) or feeds by name (see `compile` for the rules on
        feeds, dtypes, devices and outputs)."""
        return self._call(args, feeds)

    def call(self, *args, after_step=None, **feeds):
        """As `model(...)`, calling `after_step(step)` after each plan step has run (the
        executor's hook: a progress bar, `slimtriton run`). With a hook the steps run one by one,
        never as a CUDA graph replay (a replay has no steps to report)."""
        return self._call(args, feeds, after_step)

    def _call(self, args, feeds, after_step=None):
        if self.analysis_only:
            raise RuntimeError("this model was compiled without weights (analysis only): it has .report() "
                               "and .kernels but cannot run; pass weights to slimtriton.compile")
        import torch  # lazy: torch
        inputs = self.plan.inputs
        if args:
            if len(args) != 1:
                raise TypeError(f"call the model with one array (or a dict of feeds), got {len(args)} arguments")
            arg = args[0]
            if isinstance(arg, Mapping):
                feeds = {**{feed_name(k, "feed"): v for k, v in arg.items()}, **feeds}
            else:
                if len(inputs) != 1:
                    raise TypeError(f"the model has {len(inputs)} placeholders "
                                    f"({[n.name for n in inputs]}); feed them by name")
                feeds = {inputs[0].name: arg, **feeds}
        names = {n.name for n in inputs}
        unknown = sorted(set(feeds) - names - set(self._unneeded_placeholders))
        if unknown:
            raise ValueError(f"feeds {unknown} are not placeholders of the compiled graph "
                             f"(placeholders: {sorted(names | set(self._unneeded_placeholders))}); only "
                             f"placeholders can be fed")
        for name in set(feeds) - names:  # not needed by the outputs: checked, then ignored
            self._check_feed(self._unneeded_placeholders[name], feeds[name])
        missing = sorted(names - set(feeds))
        if missing:
            raise ValueError(f"placeholders {missing} must be fed")
        as_numpy = not any(isinstance(v, torch.Tensor) for v in feeds.values())
        out_device = next((v.device for v in feeds.values() if isinstance(v, torch.Tensor)), None)
        tensors = {n.name: self._convert(n, feeds[n.name]) for n in inputs}  # feeds of unneeded ones: ignored
        batch = self._batch_of(tensors) if self.plans else None
        with self._lock:  # one arena per model: calls from several threads run one after the other
            if self._stream_order is not None:
                self._stream_order()
            if self.plans:
                bucket, executor, runner = self._bucket(batch)
                tensors = {k: pad_batch(t, bucket) if k in self._dynamic_inputs else t for k, t in tensors.items()}
                results = (executor.run(tensors, after_step=after_step) if runner is None or after_step is not None
                           else runner.run(tensors))
                results = [r[:batch] if bucket != batch else r for r in results]  # every output leads with the batch
            elif self._cuda_graph is not None and after_step is None:
                results = self._cuda_graph.run(tensors)
            else:
                results = self._executor.run(tensors, after_step=after_step)
            final = []
            for node, r in zip(self.plan.outputs, results):
                if as_numpy:
                    final.append(to_numpy(r, node.dtype))
                else:  # the graph's recorded dtype, on the (first) input tensor's device
                    final.append(r.to(device=out_device, dtype=_torch_dtype(node.dtype)))
        return rebuild(self._spec, final)

    def _batch_of(self, tensors: dict) -> int:
        """The batch of the feeds of the placeholders with an unknown batch (they must agree)."""
        batches = {k: int(t.shape[0]) for k, t in tensors.items() if k in self._dynamic_inputs}
        if len(set(batches.values())) != 1:
            raise ValueError("the feeds of the unknown batch disagree on its size: "
                             + ", ".join(f"{k} has batch {b}" for k, b in batches.items()))
        return next(iter(batches.values()))

    def _convert(self, node: Node, value):
        """A feed as a contiguous tensor of the compute dtype on the model's device. A torch
        tensor never goes through NumPy: it is detached and moved/cast by torch's `.to()` (on
        its own device for a CUDA tensor), so bfloat16, requires_grad and CUDA tensors work."""
        import torch  # lazy: torch
        from .runtime.executor import TORCH_COMPUTE_DTYPES  # lazy: torch, kernels
        value = self._check_feed(node, value)
        if isinstance(value, torch.Tensor):
            t = value.detach()
        else:
            t = torch.from_numpy(np.ascontiguousarray(value))
        return t.to(device=self.device, dtype=TORCH_COMPUTE_DTYPES[self.dtype]).contiguous()

    def to_module(self):
        """This model as a torch.nn.Module (weights as buffers; slimtriton/torch_module.py)."""
        from .torch_module import to_module  # lazy: torch
        return to_module(self, kernel_device)

    def _check_feed(self, node: Node, value):
        """`value` (a torch tensor as is, anything else as a NumPy array) after checking its shape
        and dtype against the placeholder's; ValueError naming the placeholder otherwise."""
        import torch  # lazy: torch
        if not isinstance(value, torch.Tensor):
            value = np.asarray(value)
        shape = tuple(int(d) for d in value.shape)
        node = self._dynamic_inputs.get(node.name, node)  # the recorded [None, ...]: any batch
        expected = None
        if node.dynamic_batch and len(shape) == len(node.shape) and shape[1:] == tuple(node.shape[1:]):
            if not 1 <= shape[0] <= self.max_batch:
                raise ValueError(f"input {node.name}: batch {shape[0]} is outside the range this model was compiled "
                                 f"for: 1..{self.max_batch} (batch buckets {self.batch_sizes})")
            expected = shape
        # a float placeholder takes any float feed, cast as TF's feed_dict does; any other also
        # takes the compute dtype
        check_value(node, value, "placeholder", shape=expected,
                    also_dtypes=() if node.dtype in FLOAT_DTYPES else (self.dtype,))
        return value

    # -- analysis ---------------------------------------------------------------------------
    def launches(self) -> list[list]:
        """Per plan step, the `KernelLaunch` specs it makes, recorded with meta tensors."""
        if self._launches is None:
            from .runtime.launches import record_plan_launches  # lazy: torch, kernels
            self._launches = record_plan_launches(self.plan, self.precision)
        return self._launches

    def report(self, json_path=None, batch: int | None = None) -> str:
        """The fusion report, and which layers kept their batch norm scale in the epilogue
        (JSON: `kept_bn_scale`, {layer: why}).

        A dynamic-batch model reports the plan of one batch bucket, the one that runs `batch`
        (default: the largest bucket), then one row per bucket (kernels, FLOPs, modeled DRAM
        bytes, arena; JSON: `batch_buckets`, and `bucket`, the bucket reported). `batch` on a
        static model is an error."""
        plan, bucket = self.plan, self.max_batch
        if batch is not None:
            if not self.plans:
                raise ValueError(f"report(batch={batch!r}) applies to a dynamic-batch model (compiled with max_batch or "
                                 f"batch_sizes); this model's plan has the static input shapes "
                                 f"{[list(n.shape) for n in plan.inputs]}")
            bucket = bucket_for(batch, self.batch_sizes)
            plan = self.plans[bucket]
        if plan is self.plan:
            launches = self.launches()  # the launches this model makes (recorded once, at its precision, and cached)
        else:
            from .runtime.launches import record_plan_launches  # lazy: torch, kernels
            launches = record_plan_launches(plan, self.precision)
        text = fusion_report(plan, json_path=json_path, launches=launches)
        kept = plan.program.kept_scale
        buckets = None
        if self.plans:
            table, buckets = bucket_summary(self.plans)
            low = max([b for b in self.batch_sizes if b < bucket], default=0) + 1
            text += (f"\n\ndynamic batch: one plan per batch bucket {self.batch_sizes} (this report: bucket {bucket}, "
                     f"which runs batches {low}..{bucket}; report(batch=B) for another); parameters prepared "
                     f"once, arena sized for the largest bucket\n{table}")
        if json_path is not None and os.path.isfile(json_path):
            with open(json_path) as f:
                data = json.load(f)
            data["kept_bn_scale"] = dict(kept)
            if buckets is not None:
                data.update(bucket=bucket, batch_buckets=buckets)
            with open(json_path, "w") as f:
                json.dump(data, f, indent=1)
        return text + "\n" + _kept_scale_text(kept, self.analysis_only)

    def save(self, path, archs=(), overwrite: bool = False, meta: dict | None = None):
        """Write this model as an engine directory (`slimtriton.engine`): the fused plan, the
        prepared parameters, tile winners, a manifest with versions and hashes, and, for each
        compute capability in `archs` (e.g. (90,)), every kernel compiled ahead of time (no GPU
        needed). `st.load_compiled(path)` runs it without the compiler. A dynamic-batch model
        saves one plan per batch bucket over one copy of the parameters, and loads as the same
        dynamic model."""
        return save_engine(self, path, archs=archs, overwrite=overwrite, meta=meta)

    def summary(self) -> dict:
        return {**plan_summary(self.plan), "kept_bn_scale": dict(self.plan.program.kept_scale)}

    def __repr__(self) -> str:
        batch = f", batch buckets={self.batch_sizes}" if self.plans else ""
        return (f"CompiledModel({len(self.kernels)} kernels, dtype={self.dtype}, device={self.device}{batch}, "
                f"{'analysis only' if self.analysis_only else 'callable'})")


def bucket_sizes(max_batch=None, batch_sizes=None) -> list[int]:
    """The batch buckets of a dynamic-batch model: `batch_sizes` (sorted, deduplicated) when
    given, else the powers of two below `max_batch` and `max_batch` itself (TensorRT-style
    profiles / vLLM capture sizes): max_batch=6 -> [1, 2, 4, 6]."""
    if batch_sizes is not None:
        if max_batch is not None:
            raise ValueError("give max_batch or batch_sizes, not both")
        sizes = list(batch_sizes) if isinstance(batch_sizes, (list, tuple, set, frozenset)) else None
        if not sizes or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in sizes):
            raise ValueError(f"batch_sizes must be a non-empty list of positive ints, got {batch_sizes!r}")
        return sorted(set(sizes))
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise ValueError(f"max_batch must be a positive int, got {max_batch!r}")
    sizes, b = [], 1
    while b < max_batch:
        sizes.append(b)
        b *= 2
    return sizes + [max_batch]


def _dynamic_plans(graph, nodes: list[Node], dtype: str, log, weights, max_batch, batch_sizes) -> dict:
    """{batch bucket: plan of the graph specialized to it}; refuses graphs whose outputs do not
    all lead with the batch or whose ops mix examples (padding would change the results)."""
    buckets = bucket_sizes(max_batch, batch_sizes)
    static = [n.name for n in nodes if not n.dynamic_batch]
    if static:
        raise ValueError(f"outputs {static} do not have the unknown batch as their leading dimension; a "
                         f"dynamic-batch model pads the batch and slices it off every output")
    needed = needed_nodes(nodes)
    graph_nodes = [n for n in _graph_nodes(graph) if id(n) in needed]
    mixing = [n.name for n in graph_nodes if n.op is Op.BATCH_NORM and n.attrs.get("is_training")]
    if mixing:
        raise ValueError(f"batch norms {mixing} compute statistics over the batch (is_training=True); a "
                         f"dynamic-batch model pads the batch, which would change them")
    plans = {b: plan(graph_nodes, nodes, dtype, log=log, weights=weights, batch=b) for b in buckets}
    first = plans[buckets[0]]
    for b, p in plans.items():  # every bucket reads the parameters prepared once
        if p.prep != first.prep or {k: n.shape for k, n in p.params.items()} != {
                k: n.shape for k, n in first.params.items()}:
            diff = sorted(set(p.prep.items()) ^ set(first.prep.items()))
            raise RuntimeError(f"internal: the plan for batch {b} reads other parameters than the plan for batch "
                               f"{buckets[0]} ({diff[:5]}); they cannot share prepared parameters")
    return plans


def _kept_scale_text(kept: dict, analysis_only: bool) -> str:
    if analysis_only:
        return "batch norm: every scale assumed folded into the conv weights (no weights given)"
    if not kept:
        return "batch norm: every scale folded into the conv weights (no scale loaded by the epilogues)"
    lines = [f"batch norm: {len(kept)} layer(s) keep their scale in the fp32 epilogue (folding would lose "
             f"precision):"]
    lines += [f"  {name}: {why}" for name, why in kept.items()]
    return "\n".join(lines)


def _torch_dtype(dtype: str):
    import torch  # lazy: torch
    return getattr(torch, dtype)  # a float dtype name (compile refuses other outputs)


def _progress(desc: str):
    def wrap(items):
        try:
            from tqdm.auto import tqdm  # lazy: optional (no bar without it)
        except ImportError:
            return items
        return tqdm(items, desc=desc, leave=False, disable=len(items) < 50)
    return wrap


def load_compiled(path, device=None, cuda_graph: bool = True) -> CompiledModel:
    """The model saved by `CompiledModel.save` at `path` (slimtriton.engine: no fusion pass runs,
    the parameters are used as saved), on `device` (None: CUDA when present, else the CPU with
    the Triton interpreter)."""
    dev = kernel_device(device)
    e = load_engine(path, dev)  # a dynamic-batch engine: one plan per batch bucket, as `compile(..., max_batch=N)`
    return CompiledModel(e.plan, e.output_spec, None, dev, e.precision, cuda_graph, prepared=e.params,
                         bucket_plans=e.plans, recorded_inputs=e.dynamic_inputs)


def kernel_device(device):
    """The device the Triton kernels run on: None -> CUDA when present, else the CPU with the
    Triton interpreter (and a warning).

    An explicit device must be one the kernels can run on in this process: Triton runs
    either compiled for the GPU or interpreted (`TRITON_INTERPRET=1`, fixed before
    `slimtriton.kernels` is imported), so 'cpu' on a process that compiles for the GPU is
    refused, as is 'cuda' without a CUDA device."""
    import torch  # lazy: torch

    from .kernels.config import interpreting  # lazy: importing kernels sets TRITON_INTERPRET without a GPU
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        warnings.warn("slimtriton: no CUDA device; running the Triton kernels in the interpreter on the CPU "
                      "(for correctness, not speed)", stacklevel=3)
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r}: no CUDA device is available (torch.cuda.is_available() is False); "
                         f"use device=None or 'cpu' to run the kernels in the Triton interpreter")
    if dev.type == "cpu" and not interpreting():
        raise ValueError(f"device {str(device)!r}: this process compiles the Triton kernels for the GPU; CPU tensors "
                         f"need the interpreter: set TRITON_INTERPRET=1 before slimtriton (or triton) is imported, "
                         f"or use device='cuda'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {str(device)!r}: the Triton kernels run on 'cuda' (or 'cpu' in the interpreter)")
    return dev


def compile(graph, outputs, weights=None, dtype: str = "float32", precision: str = "ieee", device=None,
            cuda_graph: bool = True, poison: bool = False, log=None, max_batch: int | None = None,
            batch_sizes=None) -> CompiledModel:
    """Compile `outputs` of `graph` into fused Triton kernels (see the module docstring).

    weights: {variable name: array}, checked first with the check Session makes
    (`slimtriton.weights.check_weights`: one WeightsMismatchError listing every missing,
    unexpected, mis-shaped and mis-typed name); None gives an analysis-only model.

    Calling the model, `model(x)` or `model(images=x, ...)` / `model({tensor: x})`:
    - feeds: every placeholder the outputs need; a feed of another placeholder of the graph
      is checked and ignored (as Session does); other names are an error. Shapes are static.
      A float placeholder takes any float feed (float16/32/64, bfloat16), cast to the compute
      dtype.
    - torch tensors are never converted through NumPy: they are detached and moved/cast with
      torch's `.to()` to the model's device, so bfloat16, requires_grad, non-contiguous and
      CUDA tensors are fed as they are.
    - outputs: always in the graph's recorded dtype (float32 for a float32 graph, whatever
      `dtype` the kernels compute in and whatever the feed's dtype). NumPy in -> NumPy arrays
      out (a bfloat16 graph gives float32 arrays: NumPy has no bfloat16); any torch tensor in
      -> torch tensors out, on the first input tensor's device. Results are fresh tensors,
      never overwritten by a later call.
    - threads: a model owns one arena of activation buffers, so calls are serialized by a lock
      (one call runs at a time; threads wait). For parallel inference compile one model per
      thread.

    poison: test mode, freed activation buffers are NaN-filled (slimtriton.runtime.executor).

    max_batch / batch_sizes: for a graph recorded with an unknown batch (`[None, ...]`), one
    model for any batch up to max_batch (see the module docstring); required for such a
    graph, refused for a static one.
    """
    if dtype not in COMPUTE_DTYPES:
        raise ValueError(f"dtype must be one of {COMPUTE_DTYPES}, got {dtype!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "tf32" and dtype != "float32":
        raise ValueError(f"precision 'tf32' applies to float32 only, got dtype {dtype!r}")
    nodes, spec = flatten_outputs(outputs, graph if hasattr(graph, "node_by_name") else None)
    for n in nodes:
        if n.dtype not in FLOAT_DTYPES:
            raise NotImplementedError(f"output {n.name} has dtype {n.dtype}; the triton backend computes floats only")
    if weights is not None:  # the check Session makes, before any pass reads a value
        check_weights(graph, weights, outputs=nodes)
    needed = needed_nodes(nodes)
    dynamic = [n for n in _graph_nodes(graph) if id(n) in needed and n.op is Op.PLACEHOLDER and n.dynamic_batch]
    if not dynamic:
        if max_batch is not None or batch_sizes is not None:
            raise ValueError("max_batch/batch_sizes apply to a graph recorded with an unknown batch "
                             "(st.placeholder([None, ...])); this graph's outputs have a static batch")
        the_plan = plan(graph, nodes, dtype, log=log, weights=weights)  # NotImplementedError (op, scope) for what cannot run
        dev = kernel_device(device) if weights is not None else None
        return CompiledModel(the_plan, spec, weights, dev, precision, cuda_graph, poison)
    if max_batch is None and batch_sizes is None:
        raise ValueError(f"placeholders {[n.name for n in dynamic]} have an unknown batch (None): pass "
                         f"max_batch=N (or batch_sizes=[...]) to compile one model for batches up to N")
    plans = _dynamic_plans(graph, nodes, dtype, log, weights, max_batch, batch_sizes)
    dev = kernel_device(device) if weights is not None else None
    recorded = [n for n in _graph_nodes(graph) if n.op is Op.PLACEHOLDER]
    return CompiledModel(plans[max(plans)], spec, weights, dev, precision, cuda_graph, poison,
                         bucket_plans=plans, recorded_inputs=recorded)
