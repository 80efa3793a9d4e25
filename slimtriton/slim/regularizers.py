"""Weight regularizers (TF-Slim's formulas), as functions of a NumPy array.

A regularizer given to a layer or `get_variable` is recorded on the variable's
`VariableSpec.regularizer`; the compiler never evaluates it. Calling it on the
variable's value gives the loss TF-Slim would add to REGULARIZATION_LOSSES:

    reg = slim.l2_regularizer(4e-5)
    reg(w)                      # 4e-5 * sum(w**2) / 2
    slim.regularization_losses(graph, weights)   # {variable name: loss}
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["l1_regularizer", "l2_regularizer", "l1_l2_regularizer", "sum_regularizer", "apply_regularization",
           "regularization_losses"]


def _check_scale(scale, who):
    if isinstance(scale, bool) or isinstance(scale, numbers.Integral):
        raise ValueError(f"{who}: scale cannot be an integer: {scale}")
    if not isinstance(scale, numbers.Real):
        raise TypeError(f"{who}: scale must be a float, got {type(scale).__name__}")
    if scale < 0.0:
        raise ValueError(f"{who}: Setting a scale less than 0 on a regularizer: {scale:g}")
    return float(scale)


def _disabled(_weights, name=None):
    """Scale 0 disables the regularizer (TF-Slim returns a function giving None)."""
    return None


class _Regularizer:
    def __init__(self, kind: str, scale: float, fn):
        self.kind, self.scale, self._fn = kind, scale, fn

    def __call__(self, weights, name=None) -> float:
        return float(self._fn(np.asarray(weights, dtype=np.float64)))

    def __repr__(self) -> str:
        return f"{self.kind}({self.scale:g})"


def l1_regularizer(scale, scope=None):
    """`scale * sum(|w|)`."""
    scale = _check_scale(scale, "l1_regularizer")
    if scale == 0.0:
        return _disabled
    return _Regularizer("l1_regularizer", scale, lambda w: scale * np.sum(np.abs(w)))


def l2_regularizer(scale, scope=None):
    """`scale * sum(w**2) / 2` (TF's nn.l2_loss)."""
    scale = _check_scale(scale, "l2_regularizer")
    if scale == 0.0:
        return _disabled
    return _Regularizer("l2_regularizer", scale, lambda w: scale * np.sum(w * w) / 2.0)


def sum_regularizer(regularizer_list, scope=None):
    """The sum of several regularizers (None entries and None results are skipped)."""
    regs = [r for r in regularizer_list if r is not None]
    if not regs:
        return None

    def sum_reg(weights, name=None):
        losses = [loss for loss in (r(weights) for r in regs) if loss is not None]
        return float(sum(losses)) if losses else None

    sum_reg.regularizers = tuple(regs)
    return sum_reg


def l1_l2_regularizer(scale_l1=1.0, scale_l2=1.0, scope=None):
    if isinstance(scale_l1, numbers.Real) and isinstance(scale_l2, numbers.Real) \
            and scale_l1 == 0.0 and scale_l2 == 0.0:
        return _disabled
    return sum_regularizer([l1_regularizer(scale_l1), l2_regularizer(scale_l2)])


def apply_regularization(regularizer, weights_list) -> float:
    """Sum of `regularizer(w)` over a list of arrays."""
    if not weights_list:
        raise ValueError("No weights to regularize.")
    losses = [loss for loss in (regularizer(w) for w in weights_list) if loss is not None]
    return float(sum(losses))


def regularization_losses(graph_or_variables, weights) -> dict:
    """{variable name: loss} for every variable that has a regularizer and a non-None loss."""
    variables = getattr(graph_or_variables, "variables", graph_or_variables)
    specs = variables.values() if isinstance(variables, dict) else variables
    out = {}
    for spec in specs:
        if spec.regularizer is None:
            continue
        if spec.name not in weights:
            raise KeyError(f"regularization_losses: no value for variable {spec.name!r}")
        loss = spec.regularizer(weights[spec.name])
        if loss is not None:
            out[spec.name] = loss
    return out
