"""Fusion: a small pattern matcher, pure folding functions and one pipeline of passes.

    program = Program.from_graph(graph.nodes, outputs)
    program = run_passes(program)          # slimtriton.fusion.pipeline.IR_PASSES
"""
from .pattern import Pat, Rule
from .pipeline import IR_PASSES, PLAN_PASSES, run_passes
from .program import DerivedParam, Program, resolve_parameters, rewrite

__all__ = ["Pat", "Rule", "IR_PASSES", "PLAN_PASSES", "run_passes", "DerivedParam", "Program",
           "resolve_parameters", "rewrite"]
