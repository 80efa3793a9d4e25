"""A small declarative pattern matcher over IR nodes (in the spirit of tinygrad's
PatternMatcher and torch.fx's replace_pattern).

    CONV_BN = Pat(Op.BATCH_NORM, Pat(CONVS, Pat(name="x"), Pat(name="w"), name="conv", one_use=True),
                  name="bn", rest=True, where=lambda n: not n.attrs["is_training"])
    RULES = [Rule("fold_bn", CONV_BN, replace_conv_bn)]

A `Pat` matches a node when its op is in `ops` (any op when None), its `where`
predicate holds and its input patterns match the node's inputs (all of them unless
`rest=True`, which lets extra trailing inputs through; no input patterns at all means
inputs are not looked at). `one_use=True` requires the node to have exactly one
consumer: an interior node may only be absorbed into a fused node when nothing else
reads it. `commutative=True` also tries the two inputs of a binary op swapped.
`Rule.replace(match, ctx)` returns the replacement node, or None to decline.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterator, Optional

from ..ir.node import Node
from ..ir.ops import Op


class Pat:
    def __init__(self, ops=None, *inputs: "Pat", name: Optional[str] = None, one_use: bool = False,
                 where: Optional[Callable[[Node], bool]] = None, commutative: bool = False, rest: bool = False):
        if isinstance(ops, Op):
            ops = frozenset({ops})
        self.ops = None if ops is None else frozenset(ops)
        self.inputs = inputs
        self.name = name
        self.one_use = one_use
        self.where = where
        self.commutative = commutative
        self.rest = rest

    def match(self, node: Node, uses: dict[str, int]) -> Optional[dict[str, Node]]:
        """The first binding {name: node} under which `node` matches, or None."""
        for binding in self._match(node, uses, {}, root=True):
            return binding
        return None

    def _match(self, node: Node, uses, bound: dict, root: bool = False) -> Iterator[dict]:
        if self.ops is not None and node.op not in self.ops:
            return
        if self.one_use and not root and uses.get(node.name, 0) != 1:
            return
        if self.where is not None and not self.where(node):
            return
        if self.name is not None:
            if self.name in bound and bound[self.name] is not node:
                return
            bound = {**bound, self.name: node}
        if not self.inputs:
            yield bound
            return
        if len(node.inputs) < len(self.inputs) or (not self.rest and len(node.inputs) != len(self.inputs)):
            return
        orders = [tuple(node.inputs[:len(self.inputs)])]
        if self.commutative and len(self.inputs) == 2:
            orders.append((node.inputs[1], node.inputs[0]))
        for ins in orders:
            yield from _match_all(self.inputs, ins, uses, bound)


def _match_all(pats, nodes, uses, bound) -> Iterator[dict]:
    if not pats:
        yield bound
        return
    for b in pats[0]._match(nodes[0], uses, bound):
        yield from _match_all(pats[1:], nodes[1:], uses, b)


@dataclasses.dataclass(frozen=True)
class Rule:
    name: str
    pattern: Pat
    replace: Callable  # (match: dict[str, Node], ctx: RewriteContext) -> Node | None
