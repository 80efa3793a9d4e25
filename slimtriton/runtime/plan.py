"""The kernel plan: one `Step` per kernel launch (plus views and concat buffers, which
launch nothing). `build_plan` lowers every node of a fused program with the lowering table
(one step each: its fused ops, FLOPs and modeled bytes -- `Lowered.read_shapes` where a
kernel reads only part of an input), then runs the plan passes in the order of
slimtriton.fusion.pipeline.PLAN_PASSES, each a function `plan -> plan` named in
`PLAN_PASS_FUNCTIONS`:

* `eliminate_concats`: a CONCAT along the channel axis owns one buffer; each input produced
  by a kernel that can write a channel slice (`out=`, `out_channel_offset=`), read by nothing
  else and not itself requested, writes straight into its slice -- nested concats compose
  their offsets. Other inputs (placeholders, parameters, multi-consumer tensors, views,
  kernels without `out=`) get a `copy_channels` step.
* `collect_parameters`: the parameters the steps read and how each is prepared once.
* `plan_memory`: arena slots by liveness (slimtriton.runtime.memory).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from ..ir.cost import fused_flops, tensor_bytes
from ..ir.node import Node
from ..ir.ops import PARAMETER_OPS, SOURCE_OPS, Op, lookup
from ..fusion.pipeline import PLAN_PASSES
from .lowering import LOWERINGS, PREP_SCALAR, PREP_TENSOR, Lowered
from .memory import plan_memory


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
        return self.kernel not in ("view", "concat")

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


def build_plan(program, dtype: str = "float32") -> Plan:
    """The kernel plan of a fused program: every node lowered to its step (`lower_program`),
    then the plan passes named in slimtriton.fusion.pipeline.PLAN_PASSES, in that order."""
    plan = lower_program(program, dtype)
    for name in PLAN_PASSES:
        plan = _plan_pass(name)(plan)
    return plan


def lower_program(program, dtype: str) -> Plan:
    """A plan of one step per non-source node, in program order, each lowered by `LOWERINGS`
    (NotImplementedError for what the backend cannot run); no pass has run yet."""
    steps = []
    for node in program.nodes:
        if node.op in SOURCE_OPS:
            continue
        low = lookup(LOWERINGS, node.op, "LOWERINGS")(node)
        # a concat buffer reads nothing itself: its inputs are written into it (eliminate_concats)
        inputs = () if low.kernel == "concat" else low.reads
        reads = [i for i in inputs if _is_activation(i)]
        params = [i for i in inputs if not _is_activation(i)]
        fused = program.origin_of(node)
        step = Step(len(steps), node, low.kernel, low, fused, tuple(reads), tuple(params))
        if low.kernel not in ("view", "concat"):
            step.bytes_read = sum(tensor_bytes(shape, dtype) for shape in _read_shapes(low, reads + params))
            step.bytes_written = tensor_bytes(node.shape, dtype)
            step.flops = fused_flops(program, node)
        steps.append(step)
    inputs = [n for n in program.nodes if n.op is Op.PLACEHOLDER]
    return Plan(program, dtype, steps, inputs, list(program.outputs), params={}, prep={})


def eliminate_concats(plan: Plan) -> Plan:
    """Plan pass: each producer that can write a channel slice (`out=`, not a view), read by
    nothing else, not requested and not already written into another concat, writes straight
    into its concat's buffer (`Step.target`); every other input of the concat gets a
    `copy_channels` step right after the concat's. Then each concat buffer moves before the
    first step writing into it."""
    uses = plan.program.uses()
    requested = {o.name for o in plan.outputs}
    by_node = {s.node.name: s for s in plan.steps}
    steps: list[Step] = []
    for step in plan.steps:
        steps.append(step)
        if step.kernel != "concat":
            continue
        node, offset, seen = step.node, 0, set()
        for x in node.inputs:
            src = by_node.get(x.name)
            if (src is not None and src.lowered.supports_out and not src.lowered.is_view and uses.get(x.name) == 1
                    and x.name not in requested and x.name not in seen and src.target is None):
                src.target = (node, offset)
            else:
                steps.append(_copy_step(x, node, offset, plan.dtype))
            seen.add(x.name)
            offset += x.shape[-1]
    plan.steps = _hoist_concat_buffers(steps)
    return plan


def _copy_step(src: Node, concat: Node, offset: int, dtype: str) -> Step:
    """kernels.copy_channels of `src` into channels offset.. of the concat's buffer."""
    act = _is_activation(src)
    step = Step(-1, concat, "copy_channels", None, (concat.name,), (src,) if act else (), () if act else (src,),
                target=(concat, offset), copy_from=src)
    step.bytes_read = step.bytes_written = tensor_bytes(src.shape, dtype)
    return step


def collect_parameters(plan: Plan) -> Plan:
    """Plan pass: `Plan.params` and `Plan.prep` -- every parameter the steps read and how it is
    prepared once (the first reader's PREP_* kind; a parameter read another way too gets a
    second entry, name#kind, named by that step's `param_keys`), and requested parameters."""
    params, prep = plan.params, plan.prep
    for s in plan.steps:
        for p in s.params:
            params[p.name] = p
            kind = s.lowered.prep.get(p.name) if s.lowered is not None else None
            kind = kind or (PREP_SCALAR if p.op is Op.CONSTANT else PREP_TENSOR)
            if prep.setdefault(p.name, kind) != kind:
                # one parameter read two ways (e.g. as an epilogue vector and as a tensor): keep both
                s.param_keys[p.name] = f"{p.name}#{kind}"
                prep[s.param_keys[p.name]] = kind
    for o in plan.outputs:  # a requested parameter is returned as a tensor, whatever its kernels read
        if o.op in PARAMETER_OPS:
            params[o.name] = o
            kind = PREP_SCALAR if o.op is Op.CONSTANT else PREP_TENSOR
            plan.output_keys[o.name] = o.name if prep.setdefault(o.name, kind) == kind else f"{o.name}#{kind}"
            prep[plan.output_keys[o.name]] = kind
    return plan


# The plan passes by name (their order: slimtriton.fusion.pipeline.PLAN_PASSES); each plan -> plan.
PLAN_PASS_FUNCTIONS = {
    "eliminate_concats": eliminate_concats,
    "collect_parameters": collect_parameters,
    "plan_memory": plan_memory,
}


def _plan_pass(name: str):
    try:
        return PLAN_PASS_FUNCTIONS[name]
    except KeyError:
        raise NotImplementedError(f"PLAN_PASS_FUNCTIONS has no plan pass {name!r} (listed in "
                                  f"slimtriton.fusion.pipeline.PLAN_PASSES)") from None


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
