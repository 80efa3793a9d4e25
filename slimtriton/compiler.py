"""`st.compile`: fusion passes -> kernel plan -> memory plan -> fused Triton execution.

    model = st.compile(g, logits, weights, dtype="float16")
    probs = model(images)                   # NumPy in -> NumPy out; torch in -> torch out
    print(model.report())                   # per-kernel fused ops, FLOPs, DRAM bytes; 3 plans
    model.kernels[0].source                 # the Triton source of a fused kernel

`weights=None` gives an analysis-only model (plan and report, not callable); `plan(g,
outputs, dtype)` is the same thing as a function. On CUDA with static shapes the whole
plan is replayed as one CUDA graph (`cuda_graph=False` turns it off); without a GPU the
kernels run in the Triton interpreter on the CPU (correctness, not speed).
"""
from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np

from .fusion.pipeline import run_passes
from .fusion.program import Program, resolve_parameters
from .ir.node import FLOAT_DTYPES, Node, Tensor
from .ir.ops import Op

DTYPES = ("float32", "float16", "bfloat16")
PRECISIONS = ("ieee", "tf32")


def _flatten_outputs(outputs, graph) -> tuple[list[Node], Any]:
    """Nodes of `outputs` (a tensor, a name, or a list/tuple/dict of them) and a rebuild spec."""
    nodes: list[Node] = []

    def walk(o):
        if isinstance(o, dict):
            return ("dict", type(o), [(k, walk(v)) for k, v in o.items()])
        if isinstance(o, (list, tuple)):
            return ("seq", type(o), [walk(v) for v in o])
        if isinstance(o, Tensor):
            node = o.node
        elif isinstance(o, Node):
            node = o
        elif isinstance(o, str):
            if graph is None:
                raise TypeError(f"output {o!r} is a name; pass a Graph to resolve it")
            node = graph.node_by_name(o)
        else:
            raise TypeError(f"outputs must be Tensors, names, or lists/tuples/dicts of them; got {type(o).__name__}")
        nodes.append(node)
        return ("leaf", len(nodes) - 1)
    return nodes, walk(outputs)


def _rebuild(spec, values):
    kind = spec[0]
    if kind == "leaf":
        return values[spec[1]]
    if kind == "dict":
        return spec[1]((k, _rebuild(v, values)) for k, v in spec[2])
    seq = [_rebuild(v, values) for v in spec[2]]
    if hasattr(spec[1], "_fields"):
        return spec[1](*seq)
    return spec[1](seq)


def _graph_nodes(graph) -> list[Node]:
    nodes = getattr(graph, "nodes", None)
    if nodes is None:
        raise TypeError(f"compile needs a slimtriton Graph (or a node list), got {type(graph).__name__}")
    return list(nodes)


def plan(graph, outputs, dtype: str = "float32", log=None):
    """Fuse and plan without weights or running: returns a `slimtriton.runtime.plan.Plan`
    (shapes are static in the graph: build the graph at the batch you want to analyse)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    from .runtime.plan import build_plan
    nodes, _ = _flatten_outputs(outputs, graph if hasattr(graph, "node_by_name") else None)
    program = Program.from_graph(_graph_nodes(graph), nodes)
    snapshots: dict = {}
    program = run_passes(program, log=log, snapshots=snapshots)
    result = build_plan(program, dtype)
    result.baseline = snapshots.get("remove_identities")
    return result


class KernelInfo:
    """One kernel of a compiled model: fused ops, shapes, FLOPs, modeled bytes, launches, source."""

    def __init__(self, model: "CompiledModel", step):
        self._model = model
        self.step = step
        self.name = step.node.name
        self.kernel = step.kernel
        self.fused_ops = step.fused
        self.flops = step.flops
        self.bytes_read = step.bytes_read
        self.bytes_written = step.bytes_written
        self.input_shapes = [tuple(n.shape) for n in step.reads]
        self.output_shape = tuple(step.copy_from.shape if step.copy_from is not None else step.node.shape)

    @property
    def launches(self) -> list:
        """The `KernelLaunch` specs this step launches (recorded on meta tensors, nothing runs)."""
        return self._model.launches()[self.step.index]

    @property
    def source(self) -> str:
        import inspect
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
    def __init__(self, plan, output_spec, weights, device, precision: str, cuda_graph: bool, poison: bool = False):
        self.plan = plan
        self.dtype = plan.dtype
        self.precision = precision
        self._spec = output_spec
        self._launches = None
        self.device = None
        self._executor = None
        self._cuda_graph = None
        self._stream_order = None
        self.analysis_only = weights is None
        self.kernels = [KernelInfo(self, s) for s in plan.steps if s.launches_kernel]
        self._source_weights = weights  # a reference, for to_module (its buffers)
        if weights is None:
            return
        import torch
        from .runtime.executor import PlanExecutor, prepare_parameters
        self.device = torch.device(device)
        _check_weights(plan, weights)
        values = resolve_parameters(plan.program, weights)
        params = prepare_parameters(plan, values, self.device, progress=_progress("preparing parameters"))
        self._executor = PlanExecutor(plan, params, self.device, precision, poison)
        if self.device.type == "cuda":
            from .runtime.cuda_graph import CudaGraphRunner, StreamOrder
            self._stream_order = StreamOrder()  # calls share the arena: order them across streams
            if cuda_graph:
                self._cuda_graph = CudaGraphRunner(self._executor, plan)

    # -- calling ----------------------------------------------------------------------------
    def __call__(self, *args, **feeds):
        """Run on one array (one placeholder) or feeds by name. Shapes are static: another
        shape is an error naming the placeholder; any float dtype is cast to the compute
        dtype; inputs on another device are moved to the model's. NumPy in -> NumPy out;
        torch in -> torch out on the (first) input tensor's device. Results are fresh tensors
        (with the CUDA graph, clones of its static outputs), never overwritten by a later call."""
        if self._executor is None:
            raise RuntimeError("this model was compiled without weights (analysis only): it has .report() "
                               "and .kernels but cannot run; pass weights to slimtriton.compile")
        import torch
        inputs = self.plan.inputs
        if args:
            if len(args) != 1:
                raise TypeError(f"call the model with one array (or a dict of feeds), got {len(args)} arguments")
            arg = args[0]
            if isinstance(arg, Mapping):
                feeds = {**{self._feed_name(k): v for k, v in arg.items()}, **feeds}
            else:
                if len(inputs) != 1:
                    raise TypeError(f"the model has {len(inputs)} placeholders "
                                    f"({[n.name for n in inputs]}); feed them by name")
                feeds = {inputs[0].name: arg, **feeds}
        names = {n.name for n in inputs}
        unknown = sorted(set(feeds) - names)
        if unknown:
            raise ValueError(f"feeds {unknown} are not placeholders of the compiled graph "
                             f"(placeholders: {sorted(names)}); only placeholders can be fed")
        missing = sorted(names - set(feeds))
        if missing:
            raise ValueError(f"placeholders {missing} must be fed")
        as_numpy = not any(isinstance(v, torch.Tensor) for v in feeds.values())
        out_device = next((v.device for v in feeds.values() if isinstance(v, torch.Tensor)), None)
        tensors = {n.name: self._convert(n, feeds[n.name]) for n in inputs}
        if self._stream_order is not None:
            self._stream_order()
        if self._cuda_graph is not None:
            results = self._cuda_graph.run(tensors)
        else:
            results = self._executor.run(tensors)
        final = []
        for node, r in zip(self.plan.outputs, results):
            if as_numpy:
                final.append(_to_numpy(r, node.dtype))
            else:
                final.append(r.to(out_device))
        return _rebuild(self._spec, final)

    def _feed_name(self, key) -> str:
        node = getattr(key, "node", key)
        if isinstance(node, Node):
            return node.name
        if isinstance(node, str):
            return node.split(":")[0]
        raise TypeError(f"feed keys must be Tensors, Nodes or placeholder names, got {type(key).__name__}")

    def _convert(self, node: Node, value):
        import torch
        from .runtime.executor import TORCH_DTYPES
        shape = tuple(value.shape) if hasattr(value, "shape") else np.shape(value)
        dtype = str(getattr(value, "dtype", np.asarray(value).dtype)).replace("torch.", "")
        allowed = {node.dtype, self.dtype}
        if node.dtype in DTYPES:  # a float placeholder takes any float feed, cast as TF's feed_dict does
            allowed |= {*DTYPES, "float64"}
        if tuple(shape) != tuple(node.shape) or dtype not in allowed:
            also = f" (or {self.dtype})" if self.dtype != node.dtype else ""
            raise ValueError(f"input {node.name}: expected {node.dtype}{list(node.shape)}{also}, "
                             f"got {dtype}{list(shape)}")
        if isinstance(value, torch.Tensor):
            t = value
        else:
            t = torch.from_numpy(np.ascontiguousarray(value))
        return t.to(device=self.device, dtype=TORCH_DTYPES[self.dtype]).contiguous()

    def to_module(self):
        """This model as a torch.nn.Module (weights as buffers; slimtriton/torch_module.py)."""
        from .torch_module import to_module
        return to_module(self)

    # -- analysis ---------------------------------------------------------------------------
    def launches(self) -> list[list]:
        """Per plan step, the `KernelLaunch` specs it makes, recorded with meta tensors."""
        if self._launches is None:
            from .runtime.launches import record_plan_launches
            self._launches = record_plan_launches(self.plan, self.precision)
        return self._launches

    def report(self, json_path=None) -> str:
        from .report import fusion_report
        return fusion_report(self.plan, json_path=json_path)

    def summary(self) -> dict:
        from .report import plan_summary
        return plan_summary(self.plan)

    def __repr__(self) -> str:
        return (f"CompiledModel({len(self.kernels)} kernels, dtype={self.dtype}, device={self.device}, "
                f"{'analysis only' if self.analysis_only else 'callable'})")


def _to_numpy(t, dtype: str) -> np.ndarray:
    import torch
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()
    arr = t.cpu().numpy()
    return arr.astype(np.float32 if dtype == "bfloat16" else np.dtype(dtype), copy=False)


def _check_weights(plan, weights) -> None:
    """One error listing every missing or mis-shaped weight the plan reads."""
    needed = {}
    for n in plan.program.nodes:
        if n.op is Op.VARIABLE and n.attrs["var"] not in plan.program.derived:
            needed[n.attrs["var"]] = n
    for d in plan.program.derived.values():
        for s in d.sources:
            if s not in plan.program.derived and s not in needed:
                needed[s] = None
    missing = sorted(k for k in needed if k not in weights)
    bad = []
    for k, n in needed.items():
        if k in weights and n is not None and tuple(np.shape(weights[k])) != tuple(n.shape):
            bad.append(f"{k}: expected {list(n.shape)}, got {list(np.shape(weights[k]))}")
    if missing or bad:
        lines = []
        if missing:
            lines.append(f"missing {len(missing)}: " + ", ".join(missing))
        if bad:
            lines.append(f"mis-shaped {len(bad)}: " + "; ".join(bad))
        raise ValueError("weights do not match the graph: " + " | ".join(lines))


def _progress(desc: str):
    def wrap(items):
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return items
        return tqdm(items, desc=desc, leave=False, disable=len(items) < 50)
    return wrap


def resolve_device(device):
    """None -> CUDA when present, else the CPU with the Triton interpreter (and a warning).

    An explicit device must be one the kernels can run on in this process: Triton runs
    either compiled for the GPU or interpreted (`TRITON_INTERPRET=1`, fixed before
    `slimtriton.kernels` is imported), so 'cpu' on a process that compiles for the GPU is
    refused, as is 'cuda' without a CUDA device."""
    import torch

    from .kernels.config import interpreting  # importing kernels sets TRITON_INTERPRET without a GPU
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
            cuda_graph: bool = True, poison: bool = False, log=None) -> CompiledModel:
    """Compile `outputs` of `graph` into fused Triton kernels (see the module docstring).

    poison: test mode, freed activation buffers are NaN-filled (slimtriton.runtime.executor).
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "tf32" and dtype != "float32":
        raise ValueError(f"precision 'tf32' applies to float32 only, got dtype {dtype!r}")
    nodes, spec = _flatten_outputs(outputs, graph if hasattr(graph, "node_by_name") else None)
    for n in nodes:
        if n.dtype not in FLOAT_DTYPES:
            raise NotImplementedError(f"output {n.name} has dtype {n.dtype}; the triton backend computes floats only")
    the_plan = plan(graph, nodes, dtype, log=log)  # NotImplementedError (op and scope) for what cannot run
    dev = resolve_device(device) if weights is not None else None
    return CompiledModel(the_plan, spec, weights, dev, precision, cuda_graph, poison)
