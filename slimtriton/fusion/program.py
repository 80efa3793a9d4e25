"""What the passes transform: a `Program` (nodes, outputs, derived parameters, provenance).

A pass never mutates nodes (they are immutable); it returns a new node list. Rewrites
keep the *root* node's name for the node that replaces it, so end points and outputs
stay addressable, and record in `origin` which recorded IR ops each node now stands
for (the fusion report prints these scope names).

Derived parameters (BN folded into conv weights, epilogue scale/shift vectors, folded
weight-only subgraphs) are new `Op.VARIABLE` nodes with derived names. Their values are
*recipes* (`DerivedParam`: a pure function of other parameters), evaluated in float64
only when weights are given, so a program can be planned and reported without weights.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Mapping

import numpy as np

from ..ir.graph import format_nodes
from ..ir.node import Node
from ..ir.ops import SOURCE_OPS, Op
from ..ir.shapes import infer
from ..ir.verify import verify
from .log import FusionRecord


@dataclasses.dataclass(frozen=True)
class DerivedParam:
    """A parameter computed from others: `compute({source name: float64 array}) -> array`."""
    name: str
    shape: tuple[int, ...]
    sources: tuple[str, ...]
    compute: Callable[[Mapping[str, np.ndarray]], np.ndarray]
    why: str = ""


@dataclasses.dataclass(frozen=True)
class FoldedScale:
    """How a batch norm scale was folded into conv weights (pass 3), so that it can be undone
    where the folded weights lose precision in the compute dtype (fold_affine.keep_scale)."""
    layer: str                       # the batch norm's name
    weights: Node                    # the conv's weights before folding
    sources: tuple[str, ...]         # parameters the scale is computed from
    scale: Callable[[Mapping[str, np.ndarray]], np.ndarray]  # values -> per-output-channel scale
    layout: str                      # the weights' layout (folding.LAYOUTS)


@dataclasses.dataclass
class Program:
    nodes: list[Node]
    outputs: list[Node]
    derived: dict[str, DerivedParam] = dataclasses.field(default_factory=dict)
    origin: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    recorded: dict[str, Node] = dataclasses.field(default_factory=dict)  # the recorded nodes, by name
    folds: dict[str, FoldedScale] = dataclasses.field(default_factory=dict)  # folded weights name -> how
    kept_scale: dict[str, str] = dataclasses.field(default_factory=dict)  # fused node -> why its BN scale
    #                                                   stayed in the fp32 epilogue (fold_affine.keep_scale)
    fusion_log: list[FusionRecord] = dataclasses.field(default_factory=list)  # what fused, what declined, why

    @staticmethod
    def from_graph(nodes: Iterable[Node], outputs: Iterable[Node]) -> "Program":
        nodes = list(nodes)
        prog = Program(nodes, list(outputs), {}, {n.name: (n.name,) for n in nodes}, {n.name: n for n in nodes})
        return prog.without_dead_code()

    def origin_of(self, node: Node) -> tuple[str, ...]:
        return self.origin.get(node.name, (node.name,))

    def uses(self) -> dict[str, int]:
        """Consumers per node name; a requested output counts as one use (it must exist)."""
        counts: dict[str, int] = {n.name: 0 for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                counts[i.name] = counts.get(i.name, 0) + 1
        for o in self.outputs:
            counts[o.name] = counts.get(o.name, 0) + 1
        return counts

    def consumers(self) -> dict[str, list[Node]]:
        users: dict[str, list[Node]] = {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                if n not in users[i.name]:
                    users[i.name].append(n)
        return users

    def without_dead_code(self) -> "Program":
        live: set[int] = set()
        stack = list(self.outputs)
        while stack:
            n = stack.pop()
            if id(n) in live:
                continue
            live.add(id(n))
            stack.extend(n.inputs)
        nodes = [n for n in self.nodes if id(n) in live]
        needed = [n.attrs["var"] for n in nodes if n.op is Op.VARIABLE]
        keep: set[str] = set()
        while needed:
            name = needed.pop()
            if name in self.derived and name not in keep:
                keep.add(name)
                needed.extend(self.derived[name].sources)
        derived = {k: v for k, v in self.derived.items() if k in keep}
        folds = {k: v for k, v in self.folds.items() if k in derived}
        return dataclasses.replace(self, nodes=nodes, outputs=list(self.outputs), derived=derived,
                                   origin=dict(self.origin), folds=folds)

    def verify(self, after: str) -> None:
        verify(self.nodes, self.outputs, after=after)

    def __str__(self) -> str:
        return format_nodes(self.nodes)


def resolve_parameters(program: Program, weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Values (float64) of every VARIABLE the program reads: given weights plus derived recipes."""
    value = parameter_values(program, weights)
    return {n.attrs["var"]: value(n.attrs["var"]) for n in program.nodes if n.op is Op.VARIABLE}


def parameter_values(program: Program, weights: Mapping[str, np.ndarray]) -> Callable[[str], np.ndarray]:
    """`value(name)`: the float64 value of a given or derived parameter, computed once (cached)."""
    cache: dict[str, np.ndarray] = {}

    def value(name: str, chain=()) -> np.ndarray:
        if name in cache:
            return cache[name]
        if name in program.derived:
            d = program.derived[name]
            if name in chain:
                raise RuntimeError(f"derived parameter {name} depends on itself: {' -> '.join(chain)}")
            srcs = {s: value(s, chain + (name,)) for s in d.sources}
            out = np.asarray(d.compute(srcs), dtype=np.float64)
            if tuple(out.shape) != tuple(d.shape):
                raise RuntimeError(f"derived parameter {name} ({d.why}) has shape {list(out.shape)}, "
                                   f"expected {list(d.shape)}")
        elif name in weights:
            out = _float64(weights[name])
        else:
            raise KeyError(name)
        cache[name] = out
        return out
    return value


def _float64(value) -> np.ndarray:
    """A weight as a float64 host array; a torch tensor (any dtype or device, requires_grad)
    is converted by torch first, since NumPy reads neither bfloat16 nor device memory."""
    if hasattr(value, "detach"):
        import torch  # lazy: only for a torch value (the passes run without torch)
        return value.detach().to(device="cpu", dtype=torch.float64).numpy()
    return np.asarray(value, dtype=np.float64)


class RewriteContext:
    """Handed to replacement functions: builds nodes (shape-checked) and derived parameters."""

    def __init__(self, program: Program, uses: dict[str, int], order: dict[str, int]):
        self.program = program
        self.uses = uses
        self.order = order  # position of each node name at the start of the sweep
        self.emitted: list[Node] = []
        self.emitted_ids: set[int] = set()
        self._consumers = None
        self._names = {n.name for n in program.nodes} | set(program.derived)
        self.reason: str | None = None  # why the current replacement declined (decline())
        self.skipped = False  # the current replacement found nothing to do and nothing to explain (skip())
        self.pending: dict[str, tuple] = {}  # node name -> (its replacement, detail), built earlier in this
        #                                  sweep by a rule that rewrites several nodes at once (fusion/horizontal.py)
        self.detail: str | None = None  # what the current replacement did, for the fusion log (default: the ops)

    @property
    def consumers(self) -> dict[str, list[Node]]:
        """Consumers per node name at the start of the sweep."""
        if self._consumers is None:
            self._consumers = self.program.consumers()
        return self._consumers

    def decline(self, why: str) -> None:
        """Say why the current replacement declines; returns None, for `return ctx.decline(...)`."""
        self.reason = why
        return None

    def skip(self) -> None:
        """The pattern matched but the rewrite does not apply here and there is nothing to explain
        (not logged as declined); returns None, for `return ctx.skip()`."""
        self.skipped = True
        return None

    def unique(self, base: str) -> str:
        name, i = base, 1
        while name in self._names:
            name = f"{base}_{i}"
            i += 1
        self._names.add(name)
        return name

    def node(self, op: Op, inputs, attrs: dict, name: str) -> Node:
        """A new node; `name` is kept as given (a replacement takes its root's name)."""
        shape, dtype = infer(op, inputs, attrs, name)
        return Node.make(op, inputs, attrs, shape, dtype, name)

    def param(self, base_name: str, shape, sources, compute, why: str, dtype: str = "float32",
              fill: float | None = None) -> Node:
        """A new VARIABLE node whose value is `compute({source: array})`, emitted before use.
        `fill`: every element is this constant (attrs['fill']: a scale of 1 or a shift of 0 the
        lowering drops from the epilogue instead of loading it)."""
        name = self.unique(base_name)
        shape = tuple(int(d) for d in shape)
        self.program.derived[name] = DerivedParam(name, shape, tuple(sources), compute, why)
        attrs = {"var": name, "shape": shape, "dtype": dtype}
        if fill is not None:
            attrs["fill"] = float(fill)
        node = Node.make(Op.VARIABLE, (), attrs, shape, dtype, name)
        self.emit(node)
        return node

    def emit(self, node: Node) -> None:
        if id(node) not in self.emitted_ids:
            self.emitted.append(node)
            self.emitted_ids.add(id(node))

    def filled(self, base_name: str, length: int, value: float, dtype: str = "float32") -> Node:
        return self.param(base_name, (length,), (), lambda _s, n=length, v=value: np.full(n, v), f"constant {value}",
                          dtype, fill=value)


def rewrite(program: Program, rules, after: str, max_sweeps: int = 50) -> Program:
    """Apply `rules` (tried in order at each node, forward sweep) until none fires.

    Each sweep rebuilds consumers of replaced nodes, drops dead code and runs the verifier.
    `program.fusion_log` receives a FusionRecord per rewrite, and per match whose replacement
    declined in the final sweep (with the reason it gave through `ctx.decline`).
    """
    pass_name = after.removeprefix("pass ")
    for _ in range(max_sweeps):
        declined: dict[tuple[str, str], str] = {}
        uses = program.uses()
        order = {n.name: k for k, n in enumerate(program.nodes)}
        ctx = RewriteContext(program, uses, order)
        mapping: dict[int, Node] = {}
        changed = False
        for node in program.nodes:
            ins = tuple(mapping.get(id(i), i) for i in node.inputs)
            cur = node if all(a is b for a, b in zip(ins, node.inputs)) else node.replace(inputs=ins)
            for rule in rules:
                match = rule.pattern.match(cur, uses)
                if match is None:
                    continue
                ctx.reason, ctx.skipped, ctx.detail = None, False, None
                out = rule.replace(match, ctx)
                if out is None and ctx.skipped:
                    continue
                if out is None:
                    declined[(rule.name, cur.name)] = ctx.reason or "the replacement declined (no reason given)"
                    continue
                if out is not cur:
                    if out.op not in (Op.VARIABLE, Op.PLACEHOLDER) and id(out) not in ctx.emitted_ids:
                        program.origin[out.name] = _absorbed_origin(program, cur, out, match.values())
                    what = f"{cur.op.short} -> {out.op.short} {out.name}"
                    program.fusion_log.append(FusionRecord(pass_name, rule.name, cur.name, True,
                                                           f"{what}: {ctx.detail}" if ctx.detail else what))
                    changed = True
                    cur = out
                break
            if cur is not node:
                mapping[id(node)] = cur
            ctx.emit(cur)
        outputs = [mapping.get(id(o), o) for o in program.outputs]
        program = dataclasses.replace(program, nodes=ctx.emitted, outputs=outputs).without_dead_code()
        program.verify(after)
        if not changed:
            program.fusion_log.extend(FusionRecord(pass_name, rule, node, False, why)
                                      for (rule, node), why in declined.items())
            return program
    raise RuntimeError(f"pass {after} did not converge after {max_sweeps} sweeps")


def _absorbed_origin(program: Program, cur: Node, out: Node, matched) -> tuple[str, ...]:
    """Recorded ops the replacement stands for: the root, matched nodes, and every node
    between the root and the replacement's inputs (absorbed into it)."""
    keep = {id(i) for i in out.inputs}
    merged: list[str] = []
    stack = [cur, *matched]
    seen: set[int] = set()
    while stack:
        n = stack.pop()
        if id(n) in seen or id(n) in keep or n is out or n.op in SOURCE_OPS:
            continue
        seen.add(id(n))
        merged.extend(program.origin.get(n.name, (n.name,)))
        stack.extend(n.inputs)
    return tuple(dict.fromkeys(merged))
