"""The compiler's table of contents: every pass, in order, in two flat lists.

`IR_PASSES` rewrite the program (slimtriton.fusion.program.rewrite, to a fixpoint), the IR
verifier after each: every fusion is one of them, so the reference and torch executors run
each pass's result. Then `slimtriton.runtime.plan.build_plan` lowers every node of the
result to one plan step (`runtime.lowering.LOWERINGS[op](node)`) and runs `PLAN_PASSES` on
the plan, in this order.

Why the plan passes are listed here by name: they act on the kernel plan (layer 4,
`slimtriton.runtime`), which this package (layer 2) must not import (tests/test_imports.py).
So this file owns the order and the names, and `runtime.plan.PLAN_PASS_FUNCTIONS` maps each
name to its function (`plan -> plan`) -- one table keyed by pass name, checked complete by
tests/fusion/test_plan_passes.py; an unknown name is a NotImplementedError when a plan is
built. A new plan pass is one line here and one entry there.
"""
from __future__ import annotations

from . import (activation_idioms, const_fold, epilogue, fold_affine, fold_pad, horizontal, mean_gemm, prologue,
               remove_identities, strided_residual, window_prologue)
from .log import pass_lines
from .program import Program, rewrite

IR_PASSES = [
    ("const_fold", const_fold.RULES),                # 0: weight-only subgraphs -> derived parameters
    ("remove_identities", remove_identities.RULES),  # 1: identity, inference dropout, subsample(1), no-op reshape
    ("activation_idioms", activation_idioms.RULES),  # 1b: tf.maximum(z, a*z), 0 < a < 1 -> leaky_relu
    ("fold_pad", fold_pad.RULES),                    # 2: explicit zero PAD -> the conv's own padding
    ("fold_affine", fold_affine.RULES),              # 3: inference BN and bias -> conv weights + shift
    ("epilogue", epilogue.RULES),                    # 4: act / residual add / scaled residual -> FUSED_* epilogue
    ("pointwise", epilogue.LEFTOVER_RULES),          # 4b: unfused BN / bias / add / relu -> FUSED_ELEMENTWISE
    ("prologue", prologue.RULES),                    # 5: pre-activation BN+ReLU -> consumers' prologue (byte model)
    ("window_prologue", window_prologue.RULES),      # 5b: avg pool / depthwise -> 1x1 conv's A load (byte model)
    ("strided_residual", strided_residual.RULES),    # 6: subsample(x, s) shortcut -> residual read x[::s, ::s]
    ("mean_gemm", mean_gemm.RULES),                  # 7: global mean (+ pointwise) + 1x1 conv / FC -> FUSED_MEAN_MATMUL
    ("horizontal", horizontal.RULES),                # 8: sibling convs of one input -> one wide conv + CHANNEL_SLICEs
]

# then runtime.plan.build_plan: lowering (one step per node, LOWERINGS), and on the plan, by name
# (runtime.plan.PLAN_PASS_FUNCTIONS):
PLAN_PASSES = [
    "route_channel_slices",  # 9: a wide sibling conv (IR pass 8): one step writing every CHANNEL_SLICE
    "eliminate_concats",     # 10: producers write straight into channel slices of concats; copies for the rest
    "collect_parameters",    # 11: every parameter the steps read, and how it is prepared once (PREP_*)
    "plan_memory",           # 12: activation buffers reused by liveness; peak activation bytes
]


def run_passes(program: Program, upto: str | None = None, log=None, snapshots: dict | None = None) -> Program:
    """Apply the IR passes in order (through `upto` when given), verifying after each;
    `snapshots[name]` receives the program after each pass."""
    program.verify("recording")
    for name, rules in IR_PASSES:
        before = len(program.nodes)
        program = rewrite(program, rules, after=f"pass {name}")
        if snapshots is not None:
            snapshots[name] = program
        if log is not None:
            log(f"{name}: {before} -> {len(program.nodes)} nodes")
            for line in pass_lines(program.fusion_log, name):
                log(line)
        if name == upto:
            break
    return program
