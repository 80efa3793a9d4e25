"""The architecture's invariants: one vocabulary (every per-op and per-activation table is
complete, or lists what it leaves out and why), op groups, and the import layering."""
from __future__ import annotations

import pytest

from slimtriton.ir import cost, ops
from slimtriton.ir.ops import Act, Group, Op
from slimtriton.ir.shapes import SHAPE_RULES
from slimtriton.reference import numpy_ops
from slimtriton.reference.table import REFERENCE


def _complete(table: dict, name: str, left_out: dict | None = None) -> None:
    """Every op is in `table` or in `left_out` (with a non-empty reason), not both."""
    left_out = left_out or {}
    missing = [op for op in Op if op not in table and op not in left_out]
    assert not missing, f"{name} has no entry (nor a listed reason) for {missing}"
    both = [op for op in left_out if op in table]
    assert not both, f"{name} both implements and leaves out {both}"
    assert all(isinstance(why, str) and why for why in left_out.values()), f"{name}: a reason is empty"


def test_shape_rules_cover_every_op():
    _complete(SHAPE_RULES, "SHAPE_RULES")


def test_flops_cover_every_op():
    _complete(cost.FLOPS, "FLOPS")


def test_reference_covers_every_op():
    _complete(REFERENCE, "REFERENCE")


def test_torch_covers_every_op():
    pytest.importorskip("torch")
    from slimtriton.eager.torch_backend import TORCH
    _complete(TORCH, "TORCH")


def test_lowerings_cover_every_op_or_say_why_not():
    pytest.importorskip("torch")
    from slimtriton.runtime.lowering import LOWERINGS, NOT_LOWERED
    _complete(LOWERINGS, "LOWERINGS", NOT_LOWERED)


# -- the activation vocabulary ------------------------------------------------------------------
def test_every_activation_has_one_op_and_back():
    assert {a.op for a in Act if a is not Act.NONE} == ops.ACTIVATION_OPS
    for op in ops.ACTIVATION_OPS:
        assert ops.act_of_op(op).op is op and op.short == ops.act_of_op(op).value


def test_every_activation_has_a_reference_formula():
    assert set(numpy_ops.ACTIVATIONS) == set(Act)


def test_every_activation_has_a_torch_formula():
    pytest.importorskip("torch")
    from slimtriton.eager.torch_backend import TORCH_ACTIVATIONS
    assert set(TORCH_ACTIVATIONS) == set(Act)


def test_every_activation_has_a_kernel_code():
    pytest.importorskip("triton")
    from slimtriton.kernels.common import ACT_CODES
    assert set(ACT_CODES) == set(Act)


def test_every_activation_has_a_flop_count_and_front_end():
    from slimtriton import tf
    for act in Act:
        assert isinstance(act.flops, int) and act.flops >= 0
        for name in act.tf_names:
            assert getattr(tf.nn, name).__name__ == name
    assert Act.NONE.flops == 0


def test_activation_values_round_trip_and_fail_clearly():
    for act in Act:
        value = ops.act_value(act)
        assert ops.parse_act(value)[0] is act
        assert (value != "none") == (act is not Act.NONE)  # the test every fusion pass relies on
        if act.param is not None:
            assert ops.act_value(act, 0.125) == (act.value, 0.125)
            assert ops.parse_act((act.value, 0.125)) == (act, 0.125)
            with pytest.raises(ValueError, match="needs a parameter"):
                ops.parse_act(act.value, "layer/act")
    with pytest.raises(ValueError, match="gelu"):
        ops.parse_act("gelu", "layer/act")
    with pytest.raises(ValueError, match="needs no parameter"):
        ops.parse_act(("relu", 1.0), "layer/act")


# -- op groups ----------------------------------------------------------------------------------
def test_op_groups():
    assert ops.SOURCE_OPS == {Op.PLACEHOLDER, Op.VARIABLE, Op.CONSTANT} == ops.ops_in(Group.SOURCE)
    assert ops.PARAMETER_OPS < ops.SOURCE_OPS and Op.PLACEHOLDER not in ops.PARAMETER_OPS
    assert ops.FUSED_OPS == {op for op in Op if op.name.startswith("FUSED_")}
    assert ops.CONV_OPS == {Op.CONV2D, Op.DEPTHWISE_CONV2D, Op.CONV2D_TRANSPOSE, Op.MATMUL}
    assert ops.ACTIVATION_OPS <= ops.POINTWISE_OPS and Op.IDENTITY not in ops.POINTWISE_OPS
