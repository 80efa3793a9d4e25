"""slim.model_analyzer: tables of variables and ops with sizes and FLOPs.

    total_size, total_bytes = slim.model_analyzer.analyze_vars(slim.get_model_variables())
    total_size, total_flops = slim.model_analyzer.analyze_ops(g)
    total_size, total_flops = slim.model_analyzer.analyze_ops(g, batch=32)  # a [None, ...] graph at batch 32

A graph recorded with an unknown batch prints its shapes with None (as TF prints `?`), and
counts sizes and FLOPs at `batch` (default 1: per example).
"""
from __future__ import annotations

import collections

from ..ir.cost import flops
from ..ir.node import DTYPE_ITEMSIZE
from ..ir.ops import Op
from ..ir.specialize import has_dynamic_batch, specialize

__all__ = ["tensor_description", "analyze_vars", "analyze_ops", "OpsTotals", "VarsTotals"]

VarsTotals = collections.namedtuple("VarsTotals", ["total_size", "total_bytes"])
OpsTotals = collections.namedtuple("OpsTotals", ["total_size", "total_flops"])



def tensor_description(shape, dtype: str) -> str:
    """`float32 [3, 3, 64, 64]`, as TF-Slim prints it ("type shape")."""
    return f"{dtype} {list(shape)}"


def analyze_vars(variables, print_info=True) -> VarsTotals:
    """Print one line per variable (name, dtype, shape, size, bytes) and return the totals.

    `variables`: VariableSpecs (e.g. `slim.get_model_variables()`), a graph's `.variables`
    dict, or a graph.
    """
    variables = getattr(variables, "variables", variables)
    if isinstance(variables, dict):
        variables = list(variables.values())
    lines = ["---------", "Variables: name (type shape) [size]", "---------"]
    total_size = total_bytes = 0
    for var in variables:
        size = var.size
        nbytes = size * DTYPE_ITEMSIZE[var.dtype]
        total_size += size
        total_bytes += nbytes
        lines.append(f"{var.name}:0 ({tensor_description(var.shape, var.dtype)}) [{size}, bytes: {nbytes}]")
    lines.append(f"Total size of variables: {total_size}")
    lines.append(f"Total bytes of variables: {total_bytes}")
    if print_info:
        print("\n".join(lines))
    return VarsTotals(total_size, total_bytes)


def analyze_ops(graph, print_info=True, batch=None) -> OpsTotals:
    """Print one line per op (name, op, output dtype/shape, output size, FLOPs); return the totals.

    `graph`: a Graph or a list of nodes. Variables are listed by `analyze_vars`, not here.
    `batch`: for a graph recorded with an unknown batch, the batch sizes and FLOPs are counted
    at (default 1, per example); a static graph refuses another batch than its own.
    """
    nodes = list(getattr(graph, "nodes", graph))
    dynamic = has_dynamic_batch(nodes)
    if batch is not None and not dynamic:
        raise ValueError(f"analyze_ops: batch={batch!r} applies to a graph recorded with an unknown batch "
                         f"([None, ...]); this graph's shapes are static")
    counted = specialize(nodes, 1 if batch is None else batch) if dynamic else nodes
    rows = []
    total_size = total_flops = 0
    for node, concrete in zip(nodes, counted):
        if node.op is Op.VARIABLE:
            continue
        size = concrete.size
        f = flops(concrete)
        total_size += size
        total_flops += f
        rows.append((node.name, node.op.short, tensor_description(node.shape, node.dtype), size, f))
    if print_info:
        w = max([len(r[0]) for r in rows] + [4])
        ow = max([len(r[1]) for r in rows] + [2])
        sw = max([len(r[2]) for r in rows] + [5])
        print("---------")
        print(f"{'name':<{w}}  {'op':<{ow}}  {'output':<{sw}}  {'size':>12}  {'FLOPs':>16}")
        print("---------")
        for name, op, desc, size, f in rows:
            print(f"{name:<{w}}  {op:<{ow}}  {desc:<{sw}}  {size:>12,}  {f:>16,}")
        if dynamic:
            print(f"(unknown batch: sizes and FLOPs counted at batch {1 if batch is None else batch})")
        print(f"Total size of op outputs: {total_size}")
        print(f"Total FLOPs: {total_flops}")
    return OpsTotals(total_size, total_flops)
