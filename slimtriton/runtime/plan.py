"""The kernel plan: one `Step` per kernel launch (plus views and concat buffers, which
launch nothing), built from a fused program with the lowering table, then the plan
passes of slimtriton.fusion.pipeline.PLAN_PASSES:

* lowered-kernel passes (global-mean GEMM, strided residual): a kernel absorbs producers
  (`Lowered.absorbed`), which get no step; its fused ops and FLOPs include theirs, and its
  byte model charges `Lowered.read_shapes` where it reads only part of an input.
* route channel slices (plan pass 9): a FUSED_CONV2D read only by CHANNEL_SLICEs (sibling convs
  merged by IR pass 8, fusion/horizontal.py) becomes one `conv2d_routed` step writing every
  slice straight to the slice's own storage; the slices launch nothing (`channel_slice` steps,
  placed before their wide conv so their storage is live from its write) and the wide tensor
  has no storage.
* concat elimination (pass 6): a CONCAT along the channel axis owns one buffer; each
  input produced by a kernel that can write a channel slice (`out=`, `out_channel_offset=`),
  read by nothing else and not itself requested, writes straight into its slice -- nested
  concats compose their offsets. Other inputs (placeholders, parameters, multi-consumer
  tensors, views, kernels without `out=`) get a `copy_channels` step.
* memory plan (pass 8): slimtriton.runtime.memory.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from ..ir.cost import fused_flops, tensor_bytes
from ..ir.node import Node
from ..ir.ops import PARAMETER_OPS, SOURCE_OPS, Op, lookup
from .lowering import LOWERINGS, PREP_SCALAR, PREP_TENSOR, Lowered, lower_routed_conv2d, unsupported
from .memory import plan_memory



NO_LAUNCH = ("view", "concat", "channel_slice")  # steps that launch no kernel


@dataclasses.dataclass
class Step:
    index: int
    node: Node                       # the value this step produces (for a copy: the concat)
    kernel: str                      # kernels.<kernel>, 'view', 'concat' (buffer only)
    lowered: Optional[Lowered]
    fused: tuple[str, ...]           # recorded IR ops this kernel computes
    reads: tuple[Node, ...]          # activation inputs (not parameters)
    params: tuple[Node, ...]         # parameters read (VARIABLE / CONSTANT nodes)
    target: Optional[tuple[Node, int]] = None  # (concat node, channel offset) written in place
    copy_from: Optional[Node] = None  # copy steps: the source tensor
    # parameters this step reads prepared otherwise than their first reader: name -> Plan.prep key (name#kind)
    param_keys: dict[str, str] = dataclasses.field(default_factory=dict)
    flops: int = 0
    bytes_read: int = 0
    bytes_written: int = 0

    @property
    def launches_kernel(self) -> bool:
        return self.kernel not in NO_LAUNCH

    @property
    def bytes(self) -> int:
        return self.bytes_read + self.bytes_written

    def describe(self) -> str:
        where = f" -> {self.target[0].name}[..., {self.target[1]}:]" if self.target else ""
        return f"{self.kernel}({', '.join(n.name for n in self.reads)}){where}"


@dataclasses.dataclass
class Plan:
    program: object                  # slimtriton.fusion.program.Program
    dtype: str
    steps: list[Step]
    inputs: list[Node]               # placeholders, in program order
    outputs: list[Node]
    params: dict[str, Node]          # parameter node name -> node
    prep: dict[str, str]             # parameter node name (or name#kind, see Step.param_keys) -> PREP_* kind
    memory: object = None            # slimtriton.runtime.memory.MemoryPlan
    baseline: object = None          # the program after identity removal (for the report's other plans)
    output_keys: dict[str, str] = dataclasses.field(default_factory=dict)  # parameter outputs -> Plan.prep key

    @property
    def kernels(self) -> list[Step]:
        return [s for s in self.steps if s.launches_kernel]

    @property
    def fusion_log(self) -> list:
        """What fused and what was declined, and why (slimtriton.fusion.log.FusionRecord; format
        with slimtriton.fusion.log.format_fusion_log)."""
        return self.program.fusion_log


def lower_program(program) -> list[tuple[Node, Lowered]]:
    """Lower every non-source node (NotImplementedError for what the backend cannot run)."""
    lowered = []
    for node in program.nodes:
        if node.op in SOURCE_OPS:
            continue
        lowered.append((node, lookup(LOWERINGS, node.op, "LOWERINGS")(node)))
    return lowered


def route_channel_slices(program, lowered: list[tuple[Node, Lowered]]) -> list[tuple[Node, Lowered]]:
    """Plan pass 9 (route_channel_slices): each FUSED_CONV2D read only by CHANNEL_SLICEs (not itself requested) is lowered
    as one routed kernel writing the slices; a CHANNEL_SLICE of anything else has no kernel."""
    consumers = program.consumers()
    requested = {o.name for o in program.outputs}
    routed: dict[str, tuple[Node, ...]] = {}
    for node, _ in lowered:
        users = consumers.get(node.name, [])
        if (node.op is Op.FUSED_CONV2D and users and node.name not in requested
                and all(u.op is Op.CHANNEL_SLICE for u in users)):
            routed[node.name] = tuple(sorted(users, key=lambda u: u.attrs["begin"]))
    out = []
    for node, low in lowered:
        if node.name in routed:
            low = lower_routed_conv2d(node, routed[node.name])
        elif node.op is Op.CHANNEL_SLICE and node.inputs[0].name not in routed:
            unsupported(node, f"its input {node.inputs[0].name} ({node.inputs[0].op.short}) is not a conv read only "
                              f"by channel slices, which a routed conv kernel writes")
        out.append((node, low))
    return out


def build_plan(program, dtype: str = "float32") -> Plan:
    lowered = lower_program(program)  # then the plan passes (fusion/pipeline.py PLAN_PASSES), below
    lowered = route_channel_slices(program, lowered)
    uses = program.uses()
    requested = {o.name for o in program.outputs}
    by_node = {node.name: low for node, low in lowered}

    # Pass 6: concat elimination -- decide which producers write into which concat slice.
    targets: dict[str, tuple[Node, int]] = {}
    copies: dict[str, list[tuple[Node, int]]] = {}
    for node, low in lowered:
        if low.kernel != "concat":
            continue
        offset = 0
        seen: set[str] = set()
        copies[node.name] = []
        for x in node.inputs:
            src = by_node.get(x.name)
            in_place = (src is not None and src.supports_out and not src.is_view and uses.get(x.name) == 1
                        and x.name not in requested and x.name not in seen and x.name not in targets)
            if in_place:
                targets[x.name] = (node, offset)
            else:
                copies[node.name].append((x, offset))
            seen.add(x.name)
            offset += x.shape[-1]

    steps: list[Step] = []
    act_dtype = dtype

    def add(node, kernel, low, reads, params, fused, target=None, copy_from=None):
        step = Step(len(steps), node, kernel, low, fused, tuple(reads), tuple(params), target, copy_from)
        if kernel in NO_LAUNCH:
            step.flops, step.bytes_read, step.bytes_written = 0, 0, 0
        else:
            step.bytes_read = sum(tensor_bytes(shape, act_dtype) for shape in _read_shapes(low, reads + params))
            out_shape = copy_from.shape if copy_from is not None else node.shape
            step.bytes_written = tensor_bytes(out_shape, act_dtype)
            step.flops = 0 if copy_from is not None else (
                fused_flops(program, node) + sum(fused_flops(program, a) for a in low.absorbed))
        steps.append(step)
        return step

    for node, low in lowered:
        if low.kernel == "channel_slice":
            continue  # added with its routed conv, below
        for sl in low.routes:  # the slices' buffers first: live from the routed conv's write on
            add(sl, "channel_slice", by_node[sl.name], [], [], (), target=targets.get(sl.name))
        reads = [i for i in low.reads if _is_activation(i)]
        params = [i for i in low.reads if not _is_activation(i)]
        fused = tuple(dict.fromkeys(o for a in low.absorbed + (node,) for o in program.origin_of(a)))
        if low.kernel == "concat":
            add(node, "concat", low, [], [], fused, target=targets.get(node.name))
            for src, off in copies[node.name]:
                act = _is_activation(src)
                add(node, "copy_channels", None, [src] if act else [], [] if act else [src], (node.name,),
                    target=(node, off), copy_from=src)
            continue
        add(node, low.kernel, low, reads, params, fused, target=targets.get(node.name))
    steps = _hoist_concat_buffers(steps)

    params: dict[str, Node] = {}
    prep: dict[str, str] = {}
    for s in steps:
        for p in s.params:
            params[p.name] = p
            kind = s.lowered.prep.get(p.name) if s.lowered is not None else None
            kind = kind or (PREP_SCALAR if p.op is Op.CONSTANT else PREP_TENSOR)
            if prep.setdefault(p.name, kind) != kind:
                # one parameter read two ways (e.g. as an epilogue vector and as a tensor): keep both
                s.param_keys[p.name] = f"{p.name}#{kind}"
                prep[s.param_keys[p.name]] = kind
    output_keys: dict[str, str] = {}
    for o in program.outputs:  # a requested parameter is returned as a tensor, whatever its kernels read
        if o.op in PARAMETER_OPS:
            params[o.name] = o
            kind = PREP_SCALAR if o.op is Op.CONSTANT else PREP_TENSOR
            output_keys[o.name] = o.name if prep.setdefault(o.name, kind) == kind else f"{o.name}#{kind}"
            prep[output_keys[o.name]] = kind
    inputs = [n for n in program.nodes if n.op is Op.PLACEHOLDER]
    plan = Plan(program, dtype, steps, inputs, list(program.outputs), params, prep, output_keys=output_keys)
    plan.memory = plan_memory(plan)
    return plan


def _read_shapes(low: Optional[Lowered], nodes) -> list:
    """Shapes the byte model charges for `nodes` read by a kernel: the part `low.read_shapes` names
    (a strided residual reads the subsampled cells only), else the whole tensor."""
    partial = {}
    if low is not None and low.read_shapes is not None:
        partial = {id(n): s for n, s in zip(low.reads, low.read_shapes) if s is not None}
    return [partial.get(id(n), n.shape) for n in nodes]


def _is_activation(node: Node) -> bool:
    return node.op not in PARAMETER_OPS


def _hoist_concat_buffers(steps: list[Step]) -> list[Step]:
    """Move each concat buffer step before the first step that writes into it (directly or
    through a nested concat), keeping everything else in order."""
    concat_steps = {s.node.name: s for s in steps if s.kernel == "concat"}
    writers_first: dict[str, int] = {}
    for k, s in enumerate(steps):
        if s.target is not None and s.kernel != "copy_channels":
            name = s.target[0].name
            while True:
                writers_first[name] = min(writers_first.get(name, k), k)
                parent = concat_steps[name].target if name in concat_steps else None
                if parent is None:
                    break
                name = parent[0].name
    order: list[Step] = []
    placed: set[int] = set()
    for k, s in enumerate(steps):
        if s.kernel == "concat" and id(s) in placed:
            continue
        # place buffers needed from this step on (outer buffers first)
        needed = [concat_steps[c] for c, first in writers_first.items() if first == k]
        needed.sort(key=lambda c: _depth(c, concat_steps))
        for c in needed:
            if id(c) not in placed:
                order.append(c)
                placed.add(id(c))
        if id(s) not in placed:
            order.append(s)
            placed.add(id(s))
    for k, s in enumerate(order):
        s.index = k
    return order


def _depth(step: Step, concat_steps) -> int:
    d = 0
    while step.target is not None:
        step = concat_steps[step.target[0].name]
        d += 1
    return d
