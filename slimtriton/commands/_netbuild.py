"""Shared by the commands (run, report, export, compile): check flags, load --weights. (Building a
net is slimtriton/nets/build.py, shared with the data pipeline and the demo.)"""
from __future__ import annotations

import slimtriton as st

from .errors import UsageError


def check_at_least(args, minimum: int, *flags: str) -> None:
    """UsageError naming the flag unless each given (not None) `--flag` value is >= minimum."""
    for flag in flags:
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None and value < minimum:
            raise UsageError(f"{flag} must be >= {minimum}, got {value}")


def load_or_init_weights(g, path: str | None, source: str, seed: int, graph_word: str = "net") -> dict:
    """`--weights PATH` loaded, else `init_weights(g, seed)`. ValueError when none of the file's
    variables is a variable of `g` (`source`: the net's name or FILE.py:FUNCTION): the weights
    of another net, named with both sides' top scopes."""
    if not path:
        return st.init_weights(g, seed=seed)
    weights = st.load_weights(path)
    if not set(weights) & set(g.variables):
        raise ValueError(f"{path}: none of its {len(weights)} variables is a variable of {source} "
                         f"(its scopes: {top_scopes(weights)}; the {graph_word}'s: {top_scopes(g.variables)}); "
                         f"are these the weights of another net?")
    return weights


def top_scopes(names, limit: int = 3) -> str:
    """The first `limit` top-level scopes of `names` ('a/, b/, c/ (+2 more)'), for error messages."""
    scopes = sorted({name.split("/", 1)[0] + "/" for name in names})
    return ", ".join(scopes[:limit]) + (f" (+{len(scopes) - limit} more)" if len(scopes) > limit else "")
