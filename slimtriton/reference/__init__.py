"""The NumPy reference: `REFERENCE[op](node, inputs) -> np.ndarray`, float64, naive.

`numpy_ops` holds the plain functions (interface 4), `table` the per-op entries.
"""
from . import numpy_ops
from .table import REFERENCE

__all__ = ["REFERENCE", "numpy_ops"]
