"""Pass 8: horizontal fusion -- sibling convs reading the same tensor become one GEMM.

    FUSED_CONV2D(x, w_a, s_a, t_a), FUSED_CONV2D(x, w_b, s_b, t_b), ...   (same x, kernel, geometry, prologue)
    ->  wide = FUSED_CONV2D(x, [w_a | w_b | ...], [s_a | s_b | ...], [t_a | t_b | ...])
        a = CHANNEL_SLICE(wide, begin=0, size=Ca)   b = CHANNEL_SLICE(wide, begin=Ca, size=Cb)  ...

The wide conv keeps the siblings' activation when they share one; otherwise it has none and each
slice carries its branch's (`act` attr: the kernel applies it per column range).

Inception blocks start two to four branches with a 1x1 conv of the block input; one GEMM over
the concatenated weights reads the input once instead of once per branch and launches one
kernel instead of several. The concatenated weights, scale and shift are derived parameters
(`folding.concat_output_channels`, float64); each slice keeps its branch conv's name, so end
points and concat inputs stay addressable. The reference and torch executors run the wide conv
and the slices as written; the Triton plan (runtime/plan.py, plan pass `route_channel_slices`)
launches the wide conv once with one destination per slice -- its own buffer or its channel
range of a concat -- so the wide tensor is never stored (kernels.conv2d_routed).

A sibling joins a group when it is a FUSED_CONV2D of the same tensor with parameter weights and
epilogue vectors, no residual, and the same kernel size, strides, padding, dilations, dtype and
prologue (none, or the same in_scale / in_shift parameters and prologue_act: ResNet v2's
pre-activation read by its shortcut and conv1) as the group. Activations may differ (ResNet v1's
shortcut has none, conv1 relu). Groups hold at most MAX_SIBLINGS convs (the
kernel has that many destinations), formed in program order. A conv with a conv sibling that
cannot join any group is declined in the fusion log with what differs; a conv without conv
siblings is not logged.
"""
from __future__ import annotations

from ..ir.ops import Op
from . import folding
from .common import is_var, var
from .pattern import Pat, Rule

MAX_SIBLINGS = 4  # = kernels.conv.MAX_DESTINATIONS (tests check they agree)
# DerivedParam.why of the concatenated operands (fold_affine.keep_scale finds the members by it)
WEIGHTS_WHY = "sibling conv weights side by side (horizontal fusion)"
SCALE_WHY = "sibling epilogue scales side by side"


def _fill(node):
    return node.attrs.get("fill") if is_var(node) else None


def _why_not(conv, consumers) -> str | None:
    """Why `conv` cannot join any group (None: it can)."""
    a = conv.attrs
    if _is_wide(conv, consumers):
        return "it is already a merged sibling GEMM"
    if a["residual"]:
        return "it has a residual"
    if not all(is_var(p) for p in conv.inputs[1:4] + _prologue_inputs(conv)):
        return "its weights, epilogue or prologue vectors are computed at run time"
    return None


def _prologue_inputs(conv) -> tuple:
    """(in_scale, in_shift) of a conv with a prologue (no residual: they follow the shift), else ()."""
    return tuple(conv.inputs[4:6]) if conv.attrs["prologue"] else ()


def _key(conv) -> tuple:
    """What siblings of one group share (besides the input)."""
    a = conv.attrs
    prologue = (a["prologue_act"],) + tuple(var(p) for p in _prologue_inputs(conv)) if a["prologue"] else None
    return (tuple(conv.inputs[1].shape[:2]), tuple(a["strides"]), tuple(map(tuple, a["padding"])),
            tuple(a["dilations"]), conv.dtype, prologue)


_KEY_NAMES = ("kernel", "strides", "padding", "dilations", "dtype", "prologue")


def _differs(conv, other) -> str:
    diffs = [f"{what} {x!r} vs {y!r}" for what, x, y in zip(_KEY_NAMES, _key(conv), _key(other)) if x != y]
    return f"{other.name}: " + ", ".join(diffs)


def _why_apart(conv, other, consumers) -> str:
    """Why `conv` does not join `other` (a sibling conv, or a wide conv this pass made)."""
    why = _why_not(other, consumers)
    if why is None or _is_wide(other, consumers):
        return _differs(conv, other)
    return f"{other.name}: {why}"


def _is_wide(conv, consumers) -> bool:
    return any(c.op is Op.CHANNEL_SLICE for c in consumers.get(conv.name, ()))


def _siblings(root, ctx) -> list:
    """The FUSED_CONV2D consumers of root's input, in program order (original nodes of the sweep)."""
    x = root.inputs[0]
    convs = [c for c in ctx.consumers.get(x.name, ()) if c.op is Op.FUSED_CONV2D and c.inputs[0].name == x.name]
    return sorted(convs, key=lambda c: ctx.order.get(c.name, 0))


def groups_of(convs, consumers) -> list[list]:
    """The mergeable groups among sibling convs `convs` (program order): equal keys, two to
    MAX_SIBLINGS each (n candidates: ceil(n / MAX_SIBLINGS) groups of near-equal size)."""
    by_key: dict[tuple, list] = {}
    for c in convs:
        if _why_not(c, consumers) is None:
            by_key.setdefault(_key(c), []).append(c)
    groups = []
    for members in by_key.values():
        n_groups = -(-len(members) // MAX_SIBLINGS)
        for k in range(n_groups):
            chunk = members[k * len(members) // n_groups:(k + 1) * len(members) // n_groups]
            if len(chunk) >= 2:
                groups.append(chunk)
    return groups


def _scope(names) -> str:
    parts = [n.split("/") for n in names]
    common = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return "/".join(common[:-1] if len(common) == len(parts[0]) else common)


def _concat_param(ctx, base, nodes, why, dtype):
    """One derived parameter: `nodes` (parameters) side by side on the last axis; a constant fill
    when every part is the same fill (so the kernels still skip a neutral scale / shift)."""
    fills = {_fill(n) for n in nodes}
    length = sum(n.shape[-1] for n in nodes)
    if len(fills) == 1 and None not in fills and all(len(n.shape) == 1 for n in nodes):
        return ctx.filled(base, length, fills.pop(), dtype)
    names = [var(n) for n in nodes]
    shape = nodes[0].shape[:-1] + (length,)
    return ctx.param(base, shape, names, lambda v, names=tuple(names): folding.concat_output_channels(
        [v[n] for n in names]), why, dtype)


def _merge(match, ctx):
    root = match["root"]
    if root.name in ctx.pending:  # a later member of a group built at its first member
        s, ctx.detail = ctx.pending.pop(root.name)
        return s
    siblings = _siblings(root, ctx)
    if len(siblings) < 2:
        return ctx.skip()
    consumers = ctx.consumers
    if _is_wide(root, consumers):
        return ctx.skip()  # a wide conv made by this pass
    why = _why_not(root, consumers)
    if why is not None:
        return ctx.decline(why)
    group = next((g for g in groups_of(siblings, consumers) if any(c.name == root.name for c in g)), None)
    if group is None:
        others = [c for c in siblings if c.name != root.name]
        return ctx.decline(f"no sibling conv of {root.inputs[0].name} matches it: "
                           + "; ".join(_why_apart(root, c, consumers) for c in others))
    if group[0].name != root.name:
        return ctx.skip()  # cannot happen in a forward sweep (the first member is visited first)
    members = ", ".join(c.name for c in group)
    x = root.inputs[0]
    scope = _scope([c.name for c in group]) or x.name
    kh, kw = root.inputs[1].shape[:2]
    base = ctx.unique(f"{scope}/siblings_{kh}x{kw}")
    w = _concat_param(ctx, f"{base}/weights", [c.inputs[1] for c in group],
                      WEIGHTS_WHY, root.inputs[1].dtype)
    scale = _concat_param(ctx, f"{base}/epilogue_scale", [c.inputs[2] for c in group],
                          SCALE_WHY, root.inputs[2].dtype)
    shift = _concat_param(ctx, f"{base}/epilogue_shift", [c.inputs[3] for c in group],
                          "sibling epilogue shifts side by side", root.inputs[3].dtype)
    acts = [c.attrs["act"] for c in group]
    shared = acts[0] if len(set(acts)) == 1 else "none"  # else each slice applies its own
    wide = ctx.node(Op.FUSED_CONV2D, (x, w, scale, shift) + _prologue_inputs(root), dict(root.attrs, act=shared),
                    base)
    ctx.emit(wide)
    origin = []
    for c in group:
        origin.extend(ctx.program.origin_of(c))
    ctx.program.origin[wide.name] = tuple(dict.fromkeys(origin))
    begin = 0
    first = None
    for c in group:
        s = ctx.node(Op.CHANNEL_SLICE, (wide,), {"begin": begin, "size": c.shape[-1],
                                                 "act": "none" if shared != "none" else c.attrs["act"]}, c.name)
        ctx.emit(s)  # emitted here, right after the wide conv: the rewrite then leaves its origin alone
        ctx.program.origin[s.name] = ()  # the wide conv computes it (its FLOPs are counted there)
        begin += c.shape[-1]
        detail = f"channels [{s.attrs['begin']}:{begin}] of {wide.name} ({len(group)} siblings: {members})"
        if first is None:
            first = s
            ctx.detail = detail
        else:
            ctx.pending[c.name] = (s, detail)
    return first


PATTERN = Pat(Op.FUSED_CONV2D, name="root", rest=True)
RULES = [Rule("sibling_convs_one_gemm", PATTERN, _merge)]
