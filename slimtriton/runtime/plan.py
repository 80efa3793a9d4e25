"""The kernel plan: one `Step` (slimtriton.runtime.step: the kernel call as data) per kernel
launch, plus views and concat buffers, which launch nothing.

`build_plan` lowers every node of a fused program with the lowering table
(`LOWERINGS[op](node)` returns the node's step), gives each step its fused ops, FLOPs and
modeled bytes (`Step.read_shapes` where a kernel reads only part of an input), then runs the
plan passes in the order of slimtriton.fusion.pipeline.PLAN_PASSES, each a function
`plan -> plan` named in `PLAN_PASS_FUNCTIONS`:

* `route_channel_slices`: a FUSED_CONV2D read only by CHANNEL_SLICEs (sibling convs merged by
  IR pass 8, fusion/horizontal.py) and its slices become one `conv2d_routed` step whose outputs
  are the slices: the kernel writes each slice's column range straight to that slice's storage
  (or, after eliminate_concats, its concat slice); the wide tensor has no storage.
* `eliminate_concats`: a CONCAT along the channel axis owns one buffer; each input produced
  by a kernel that can write a channel slice (`out=`, `out_channel_offset=`), read by nothing
  else and not itself requested, writes straight into its slice (its `Output.target`) --
  nested concats compose their offsets. Other inputs (placeholders, parameters,
  multi-consumer tensors, views, kernels without `out=`) get a `copy_channels` step.
* `collect_parameters`: the parameters the steps read and how each is prepared once.
* `plan_memory`: arena slots by liveness (slimtriton.runtime.memory).
"""
from __future__ import annotations

import dataclasses
import json

from ..fusion.pipeline import PLAN_PASSES
from ..ir.cost import fused_flops, tensor_bytes
from ..ir.node import Node
from ..ir.ops import PARAMETER_OPS, SOURCE_OPS, Op, lookup
from .lowering import LOWERINGS, PREP_SCALAR, PREP_TENSOR, kernel_fn, unsupported
from .memory import plan_memory
from .step import CONCAT, COPY, SLICE, Output, Step


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
    (NotImplementedError for what the backend cannot run) and given its fused ops, FLOPs and
    modeled bytes; no plan pass has run yet."""
    steps = []
    for node in program.nodes:
        if node.op in SOURCE_OPS:
            continue
        step = lookup(LOWERINGS, node.op, "LOWERINGS")(node)
        _check_step(step, node)
        step.index = len(steps)
        step.fused_ops = program.origin_of(node)
        if step.launches_kernel:
            step.bytes_read = sum(tensor_bytes(shape, dtype) for shape in _read_shapes(step))
            step.bytes_written = sum(tensor_bytes(o.shape, dtype) for o in step.outputs)
            step.flops = fused_flops(program, node)
        steps.append(step)
    inputs = [n for n in program.nodes if n.op is Op.PLACEHOLDER]
    return Plan(program, dtype, steps, inputs, list(program.outputs), params={}, prep={})


def _check_step(step: Step, node: Node) -> None:
    """A lowering's step names an existing kernel and reads exactly the nodes its call binds."""
    if step.launches_kernel:
        kernel_fn(step.kernel, node)  # NotImplementedError naming the op when kernels lacks it
    bound = {id(n) for _, n in step.roles()}
    if bound != {id(n) for n in step.inputs} or step.outputs[0].node is not node:
        raise RuntimeError(f"internal: the lowering of {node.op.short} at {node.name} binds "
                           f"{sorted(n.name for _, n in step.roles())} but reads {[n.name for n in step.inputs]}")


def route_channel_slices(plan: Plan) -> Plan:
    """Plan pass: each conv2d step of a FUSED_CONV2D read only by CHANNEL_SLICEs (not itself
    requested) becomes a `conv2d_routed` step whose outputs are those slices, in column order; the
    slices' own steps go. A CHANNEL_SLICE of anything else has no kernel: NotImplementedError."""
    consumers = plan.program.consumers()
    requested = {o.name for o in plan.outputs}
    routed: dict[str, Step] = {}
    for step in plan.steps:
        node = step.node
        users = consumers.get(node.name, [])
        if (step.kernel == "conv2d" and node.op is Op.FUSED_CONV2D and users and node.name not in requested
                and all(u.op is Op.CHANNEL_SLICE for u in users)):
            routed[node.name] = _routed_step(step, sorted(users, key=lambda u: u.attrs["begin"]), plan.dtype)
    steps = []
    for step in plan.steps:
        if step.kernel == SLICE:
            if step.inputs[0].name not in routed:
                unsupported(step.node, f"its input {step.inputs[0].name} ({step.inputs[0].op.short}) is not a conv "
                                       f"read only by channel slices, which a routed conv kernel writes")
            continue
        steps.append(routed.get(step.node.name, step))
    for k, s in enumerate(steps):
        s.index = k
    plan.steps = steps
    return plan


def _routed_step(conv: Step, slices, dtype: str) -> Step:
    """kernels.conv2d_routed of the conv step `conv`, writing `slices`, each with its own activation (the
    slice's `act`) after the conv's (no residual: IR pass 8 merges none)."""
    kwargs = {k: v for k, v in conv.kwargs.items() if k not in ("act2", "residual_scale")}
    acts = tuple(s.attrs.get("act", "none") for s in slices)
    if any(a != "none" for a in acts):  # siblings with different activations: each range its own
        kwargs["acts"] = acts
    step = Step("conv2d_routed", tuple(Output.of(s) for s in slices), conv.args, kwargs, takes_out=True,
                takes_precision=conv.takes_precision, inputs=conv.inputs, read_shapes=conv.read_shapes,
                prep=dict(conv.prep), index=conv.index, fused_ops=conv.fused_ops, flops=conv.flops,
                bytes_read=conv.bytes_read)
    step.bytes_written = sum(tensor_bytes(o.shape, dtype) for o in step.outputs)
    return step


def eliminate_concats(plan: Plan) -> Plan:
    """Plan pass: each producer that can write a channel slice (`out=`, not a view), read by
    nothing else, not requested and not already written into another concat, writes straight
    into its concat's buffer (its `Output.target`); every other input of the concat gets a
    `copy_channels` step right after the concat's. Then each concat buffer moves before the
    first step writing into it."""
    uses = plan.program.uses()
    requested = {o.name for o in plan.outputs}
    producer = {o.node.name: (s, k) for s in plan.steps for k, o in enumerate(s.outputs)}
    steps: list[Step] = []
    for step in plan.steps:
        steps.append(step)
        if step.kernel != CONCAT:
            continue
        node, offset, seen = step.node, 0, set()
        for x in node.inputs:
            src, k = producer.get(x.name, (None, 0))
            if (src is not None and src.writes_slice and uses.get(x.name) == 1 and x.name not in requested
                    and x.name not in seen and src.outputs[k].target is None):
                src.outputs[k].target = (node, offset)
            else:
                steps.append(_copy_step(x, node, offset, plan.dtype))
            seen.add(x.name)
            offset += x.shape[-1]
    plan.steps = _hoist_concat_buffers(steps)
    return plan


def _copy_step(src: Node, concat: Node, offset: int, dtype: str) -> Step:
    """kernels.copy_channels of `src` into channels offset.. of the concat's buffer."""
    step = Step(COPY, (Output(concat, tuple(src.shape), target=(concat, offset)),), args=(src,),
                kwargs={"name": f"{concat.name} <- {src.name}"}, takes_out=True, inputs=(src,),
                fused_ops=(concat.name,))
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
            kind = s.prep.get(p.name) or (PREP_SCALAR if p.op is Op.CONSTANT else PREP_TENSOR)
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


def plan_to_json(plan: Plan) -> dict:
    """Every step's record (`Step.to_json`: the kernel call as data, nodes by name) and how each
    parameter is prepared, as plain JSON values: what a saved engine keeps next to its program,
    and checks the plan it rebuilds against (slimtriton.engine)."""
    return json.loads(json.dumps({"steps": [s.to_json() for s in plan.steps], "prep": plan.prep}))


# The plan passes by name (their order: slimtriton.fusion.pipeline.PLAN_PASSES); each plan -> plan.
PLAN_PASS_FUNCTIONS = {
    "route_channel_slices": route_channel_slices,
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


def _read_shapes(step: Step) -> list:
    """Shapes the byte model charges for the nodes a kernel reads: the part `step.read_shapes`
    names (a strided residual reads the subsampled cells only), else the whole tensor."""
    partial = step.read_shapes or (None,) * len(step.inputs)
    return [n.shape if part is None else part for n, part in zip(step.inputs, partial)]


def _hoist_concat_buffers(steps: list[Step]) -> list[Step]:
    """Move each concat buffer step before the first step that writes into it (directly or
    through a nested concat), keeping everything else in order."""
    concat_steps = {s.node.name: s for s in steps if s.kernel == CONCAT}
    writers_first: dict[str, int] = {}
    for k, s in enumerate(steps):
        for o in s.outputs if s.kernel != COPY else ():
            if o.target is None:
                continue
            name = o.target[0].name
            while True:
                writers_first[name] = min(writers_first.get(name, k), k)
                parent = concat_steps[name].target if name in concat_steps else None
                if parent is None:
                    break
                name = parent[0].name
    order: list[Step] = []
    placed: set[int] = set()
    for k, s in enumerate(steps):
        if s.kernel == CONCAT and id(s) in placed:
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
