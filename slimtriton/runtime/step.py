"""`Step`: the one record of a fused node on its way to a launch.

`LOWERINGS[op](node)` (runtime/lowering.py) returns a `Step` holding its kernel call as data:

    Step(kernel="conv2d", args=(x, w), kwargs={"strides": (1, 1), ..., "scale": None,
         "shift": shift, "act": "relu", "name": "conv1/Relu"}, takes_out=True,
         takes_precision=True, inputs=(x, w, shift), prep={w.name: PREP_CONV, ...},
         outputs=(Output(node),))

A `Node` in `args` / `kwargs` is an argument role bound to that node: the executor passes
the node's tensor (slimtriton.runtime.executor); anything else (geometry, the epilogue's
activation names, None for an operand the kernel need not load, the layer name) is passed as
is. The executor adds what only a run knows: `out=` / `out_channel_offset=` (the buffer the
memory plan gives the output, or the concat slice it writes into) when `takes_out`, and the
model's `precision=` when `takes_precision`. So a step is `kernels.<kernel>(*args, **kwargs,
out=..., out_channel_offset=..., precision=...)`, nothing hidden in a closure.

`build_plan` (runtime/plan.py) then fills in what the plan knows: the step's `index`, the
recorded IR ops it computes (`fused_ops`), its FLOPs and modeled bytes; the plan passes set
each output's `target` (eliminate_concats) and `param_keys` (collect_parameters). The
executor, the launch recorder (runtime/launches.py, which the audit and the fusion report
read), the report, the saved engine's `plan.json` and `CompiledModel.kernels` (a view of the
kernel steps, slimtriton.compiler.KernelInfo) all read this record.

Several outputs: `outputs` is a tuple so that one kernel may write several values: the
routed GEMM of sibling convs (plan pass route_channel_slices, `kernels.conv2d_routed`) writes
each CHANNEL_SLICE output's column range straight to its storage. The plan passes and the
memory plan handle each output; the executor passes a multi-output step's buffers as
`destinations=[(out, out_channel_offset, channels), ...]`, in output order, instead of `out=`.
"""
from __future__ import annotations

import dataclasses
import enum
from typing import Any, Optional

from ..ir.node import Node
from ..ir.ops import PARAMETER_OPS

VIEW, CONCAT, COPY = "view", "concat", "copy_channels"  # step kinds that are not a node's own kernel
SLICE = "channel_slice"  # a CHANNEL_SLICE before route_channel_slices makes it an output of its wide conv's step
NO_KERNEL = (VIEW, CONCAT, SLICE)                        # a reshape of its input; a concat's buffer


@dataclasses.dataclass
class Output:
    """One value a step writes: `node`, of `shape` (a copy: its source's), into its own buffer
    or, with `target` = (concat node, channel offset), straight into that concat's buffer."""
    node: Node
    shape: tuple[int, ...]
    target: Optional[tuple[Node, int]] = None

    @staticmethod
    def of(node: Node) -> "Output":
        return Output(node, tuple(node.shape))


@dataclasses.dataclass
class Step:
    kernel: str                              # kernels.<kernel>, or 'view' / 'concat' (no kernel)
    outputs: tuple[Output, ...]
    args: tuple = ()                         # positional arguments of the call (Node: its tensor)
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)  # keyword arguments, the same
    takes_out: bool = False                  # out= / out_channel_offset=: it can write a channel slice
    takes_precision: bool = False            # precision= (the model's dot precision)
    inputs: tuple[Node, ...] = ()            # every node the call reads, in argument order
    read_shapes: Optional[tuple] = None      # per `inputs` entry: the cells the byte model charges (None: all)
    prep: dict[str, str] = dataclasses.field(default_factory=dict)  # parameter name -> PREP_* (lowering.py)
    # filled by build_plan and the plan passes
    index: int = -1
    fused_ops: tuple[str, ...] = ()          # recorded IR ops this step computes
    flops: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    # parameters this step reads prepared otherwise than their first reader: name -> Plan.prep key (name#kind)
    param_keys: dict[str, str] = dataclasses.field(default_factory=dict)

    # -- the one output of a single-output step (every step today) ---------------------------
    @property
    def node(self) -> Node:
        """The value this step produces (a copy step: the concat it writes into)."""
        return self.outputs[0].node

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def target(self) -> Optional[tuple[Node, int]]:
        return self.outputs[0].target

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The shape it writes: its output's; for outputs that differ in channels only (a routed
        conv writing its sibling convs' column ranges), their channels summed (the wide GEMM)."""
        shapes = [o.shape for o in self.outputs]
        if len(shapes) > 1 and all(sh[:-1] == shapes[0][:-1] for sh in shapes):
            return (*shapes[0][:-1], sum(sh[-1] for sh in shapes))
        return shapes[0]

    # -- derived --------------------------------------------------------------------------
    @property
    def launches_kernel(self) -> bool:
        return self.kernel not in NO_KERNEL

    @property
    def writes_slice(self) -> bool:
        """Its output can live in a channel slice of a concat's buffer (a concat nests in another)."""
        return self.kernel == CONCAT or (self.launches_kernel and self.takes_out)

    @property
    def reads(self) -> tuple[Node, ...]:
        """The activations it reads (not parameters)."""
        return tuple(n for n in self.inputs if n.op not in PARAMETER_OPS)

    @property
    def params(self) -> tuple[Node, ...]:
        """The parameters it reads (VARIABLE / CONSTANT nodes)."""
        return tuple(n for n in self.inputs if n.op in PARAMETER_OPS)

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(n.shape) for n in self.reads]

    @property
    def bytes(self) -> int:
        return self.bytes_read + self.bytes_written

    def roles(self) -> list[tuple[Any, Node]]:
        """(argument position or keyword, node) for every argument bound to a node."""
        return ([(k, a) for k, a in enumerate(self.args) if isinstance(a, Node)]
                + [(k, v) for k, v in self.kwargs.items() if isinstance(v, Node)])

    def call_arguments(self, get) -> tuple[list, dict]:
        """(args, kwargs) of the kernel call, each node replaced by `get(node)`."""
        args = [get(a) if isinstance(a, Node) else a for a in self.args]
        kwargs = {k: get(v) if isinstance(v, Node) else v for k, v in self.kwargs.items()}
        return args, kwargs

    def describe(self) -> str:
        where = "".join(f" -> {o.target[0].name}[..., {o.target[1]}:]" for o in self.outputs if o.target)
        return f"{self.kernel}({', '.join(n.name for n in self.reads)}){where}"

    def to_json(self) -> dict:
        """The record as JSON (nodes by name): what the saved engine's plan.json holds."""
        def value(v):
            if isinstance(v, Node):
                return {"node": v.name}
            if isinstance(v, enum.Enum):
                return v.name
            if isinstance(v, (tuple, list)):
                return [value(x) for x in v]
            return v
        return {"index": self.index, "kernel": self.kernel,
                "outputs": [{"node": o.node.name, "shape": list(o.shape),
                             "target": [o.target[0].name, o.target[1]] if o.target else None} for o in self.outputs],
                "args": value(list(self.args)), "kwargs": {k: value(v) for k, v in self.kwargs.items()},
                "takes_out": self.takes_out, "takes_precision": self.takes_precision,
                "inputs": [n.name for n in self.inputs], "prep": dict(self.prep), "param_keys": dict(self.param_keys),
                "fused_ops": list(self.fused_ops), "flops": self.flops, "bytes_read": self.bytes_read,
                "bytes_written": self.bytes_written}
