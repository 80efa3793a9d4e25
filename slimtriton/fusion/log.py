"""Fusion decisions, visible (in the spirit of Inductor's WhyNoFuse).

Every rewrite that fired is a `FusionRecord(fused=True)`: pass, rule, the node it rewrote,
what it became. Every pattern that matched but whose replacement declined is a
`FusionRecord(fused=False)` with the reason the replacement gave (`RewriteContext.decline`),
kept as of the pass's final sweep (a node declined early and fused later is not listed as
declined). Plan passes (mean_gemm, strided_residual) record the same way.

The records live on the program (`program.fusion_log`, so `plan.fusion_log`);
`compile(..., log=print)` prints them per pass and `format_fusion_log` formats them for
`slimtriton report --why`.
"""
from __future__ import annotations

import dataclasses
from collections import Counter


@dataclasses.dataclass(frozen=True)
class FusionRecord:
    pass_name: str   # the pipeline entry (fusion/pipeline.py)
    rule: str        # the rule (or plan pass) that matched
    node: str        # the node it matched at (the root: the name the fused node keeps)
    fused: bool      # True: rewritten; False: matched and declined
    why: str         # fused: what the node became; declined: the reason

    def __str__(self) -> str:
        verb = "fused" if self.fused else "declined"
        return f"{verb:8s} {self.rule} at {self.node}: {self.why}"


def pass_lines(records, pass_name: str) -> list[str]:
    """One line per record of `pass_name` (fused first, then declined), for compile(log=...)."""
    mine = [r for r in records if r.pass_name == pass_name]
    return [f"  {r}" for r in mine if r.fused] + [f"  {r}" for r in mine if not r.fused]


def format_fusion_log(records, declined_only: bool = False, max_per_rule: int | None = None) -> str:
    """The fusion decisions as text, grouped by pass: a count of what fused per rule, then each
    declined match with its reason (`max_per_rule` caps the lines per pass and rule)."""
    lines = []
    passes = list(dict.fromkeys(r.pass_name for r in records))
    for p in passes:
        mine = [r for r in records if r.pass_name == p]
        fused = Counter(r.rule for r in mine if r.fused)
        declined = [r for r in mine if not r.fused]
        if declined_only and not declined:
            continue
        summary = ", ".join(f"{rule} x{n}" for rule, n in fused.items()) or "nothing"
        lines.append(f"{p}: fused {summary}; declined {len(declined)}")
        shown: Counter = Counter()
        for r in declined:
            shown[r.rule] += 1
            if max_per_rule is None or shown[r.rule] <= max_per_rule:
                lines.append(f"  declined {r.rule} at {r.node}: {r.why}")
        for rule, n in shown.items():
            if max_per_rule is not None and n > max_per_rule:
                lines.append(f"  ... and {n - max_per_rule} more declined {rule}")
    return "\n".join(lines)
