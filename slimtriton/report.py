"""Byte model, the three plans and the fusion report.

Byte model (`kernel_bytes`): a kernel reads each of its inputs (activations, weights,
per-channel vectors) from DRAM once and writes each of its outputs once; views (reshape)
move nothing. The same function prices all three plans of a graph.
"""
from __future__ import annotations

ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4, "bool": 1}


def tensor_bytes(shape, dtype: str) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n * ITEMSIZE[dtype]
