"""The one interpreter (slimtriton/executor.py): its liveness rule (a value is dropped right
after its last reader unless it is a requested output), its per-op table dispatch, and its
two backends (REFERENCE through `evaluate`, TORCH through `build_torch_callable`)."""
from __future__ import annotations

import weakref

import numpy as np
import pytest
import torch

from slimtriton.eager.torch_backend import TorchCallable, build_torch_callable
from slimtriton.executor import FeedDictInterpreter, Interpreter, evaluate, frees_after_last_use
from slimtriton.ir import Graph, Op
from slimtriton.reference import REFERENCE


def _chain():
    """x -> a = relu(x) -> b = neg(a) -> c = a + b -> d = neg(c); a is read by b and c."""
    g = Graph()
    x = g.add_node(Op.PLACEHOLDER, (), {"shape": (2, 3), "dtype": "float32"}, "x")
    a = g.add_node(Op.RELU, (x,), {}, "a")
    b = g.add_node(Op.NEG, (a,), {}, "b")
    c = g.add_node(Op.ADD, (a, b), {}, "c")
    d = g.add_node(Op.NEG, (c,), {}, "d")
    return g, x, a, b, c, d


def test_frees_after_last_use_is_the_liveness_rule():
    # step 0 reads nothing, 1 reads 0, 2 reads 1, 3 reads 1 and 2 (1 twice), 4 reads 3
    frees = frees_after_last_use([(), (0,), (1,), (1, 2, 1), (3,)], keep={3})
    assert frees == [(), (0,), (), (1, 2), ()]  # 3 is kept (an output); 4 is read by nobody


class _Watching(FeedDictInterpreter):
    """Records, when each node runs, which earlier values are still alive (weak references:
    alive = some slot of the interpreter still holds the array)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.refs: dict[str, weakref.ref] = {}
        self.alive_at: dict[str, list[str]] = {}

    def _watch(self, node, value):
        self.refs[node.name] = weakref.ref(value)
        return value

    def load(self, node):
        return self._watch(node, super().load(node))

    def run_node(self, node, inputs, op=None):
        if op is None:
            self.alive_at[node.name] = sorted(k for k, r in self.refs.items() if r() is not None)
        return self._watch(node, super().run_node(node, inputs, op))


def test_a_value_is_dropped_after_its_last_reader_unless_requested():
    g, x, a, b, c, d = _chain()
    xv = np.arange(6, dtype=np.float32).reshape(2, 3) - 2
    interp = _Watching(g.nodes, [d], {x: xv}, {}, REFERENCE, "REFERENCE")
    del xv  # the caller's reference: only the interpreter holds values from here on
    (out,) = interp.run()
    np.testing.assert_array_equal(out, np.zeros((2, 3)))
    assert interp.alive_at == {"a": ["x"], "b": ["a"], "c": ["a", "b"], "d": ["c"]}
    # asking for `a` too keeps it to the end
    interp = _Watching(g.nodes, [a, d], {x: np.ones((2, 3), np.float32)}, {}, REFERENCE, "REFERENCE")
    interp.run()
    assert interp.alive_at["d"] == ["a", "c"]


def test_the_torch_callable_uses_the_same_rule():
    g, x, a, b, c, d = _chain()
    f = build_torch_callable(g, [d], {}, device="cpu")
    assert isinstance(f.interpreter, TorchCallable) and isinstance(f.interpreter, Interpreter)
    names = [n.name for n in f.interpreter.order]
    frees = {names[k]: [names[i] for i in fr] for k, fr in enumerate(f.interpreter.frees)}
    assert frees == {"x": [], "a": ["x"], "b": [], "c": ["a", "b"], "d": ["c"]}
    (out,) = f(torch.ones(2, 3))
    assert torch.equal(out, torch.zeros(2, 3))


def test_a_missing_table_entry_names_the_op_before_anything_runs():
    g, x, a, b, c, d = _chain()
    table = {op: fn for op, fn in REFERENCE.items() if op is not Op.NEG}
    with pytest.raises(NotImplementedError, match="PARTIAL has no entry for .*NEG"):
        FeedDictInterpreter(g.nodes, [d], {x: np.ones((2, 3), np.float32)}, {}, table, "PARTIAL")
    # a node the outputs do not need is never looked up
    (out,) = evaluate(g.nodes, [a], {x: np.ones((2, 3), np.float32)}, {}, table, "PARTIAL")
    np.testing.assert_array_equal(out, np.ones((2, 3)))


def test_a_fed_node_cuts_the_walk_and_the_base_class_loads_nothing():
    g, x, a, b, c, d = _chain()
    # feeding c: x, a, b are not needed, so x need not be fed
    (out,) = evaluate(g.nodes, [d], {"c": np.full((2, 3), 2.0, np.float32)}, {}, REFERENCE, "REFERENCE")
    np.testing.assert_array_equal(out, np.full((2, 3), -2.0))
    with pytest.raises(NotImplementedError, match="Interpreter does not load placeholder node x"):
        Interpreter(g.nodes, [d], REFERENCE, "REFERENCE").run()


def test_the_plan_executor_frees_by_the_same_rule():
    """PlanExecutor runs steps, not nodes; its frees come from the memory plan. On a plan where
    every step has its own arena storage, they are the interpreter's rule applied to the steps."""
    import slimtriton as st
    from slimtriton import tf
    from slimtriton.compiler import plan
    with st.Graph() as g:
        x = st.placeholder([1, 8, 8, 4], name="x")
        a = tf.nn.max_pool(x, [1, 2, 2, 1], [1, 1, 1, 1], "SAME")
        b = tf.nn.avg_pool(a, [1, 3, 3, 1], [1, 1, 1, 1], "SAME")
        c = tf.nn.max_pool(a + b, [1, 2, 2, 1], [1, 2, 2, 1], "VALID")
        d = tf.nn.avg_pool(c, [1, 2, 2, 1], [1, 1, 1, 1], "VALID")
    p = plan(g, [d])
    names = [s.node.name for s in p.steps]
    assert len(names) == 5 and all(p.memory.storage_of(n).key == n for n in names)  # no views, no concats
    reads = [[names.index(r.name) for r in s.reads if r.name in names] for s in p.steps]
    frees = frees_after_last_use(reads, keep=[names.index(d.node.name)])
    assert {k: [names[i] for i in fr] for k, fr in enumerate(frees) if fr} == p.memory.frees_after


def test_one_torch_callable_serves_concurrent_calls():
    """A call's feeds go to `run(given)`, not onto the interpreter: threads do not mix them."""
    from concurrent.futures import ThreadPoolExecutor
    g, x, a, b, c, d = _chain()
    f = build_torch_callable(g, [a], {}, device="cpu")
    feeds = [torch.full((2, 3), float(k)) for k in range(16)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda v: f(v)[0], feeds))
    for k, r in enumerate(results):
        assert torch.equal(r, torch.full((2, 3), float(k)))
