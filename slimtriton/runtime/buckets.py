"""Batch buckets of a dynamic-batch model: which bucket's plan runs a batch, and the padding.

A model compiled with `max_batch` / `batch_sizes` (slimtriton.compiler) has one plan per batch
bucket; a call runs the smallest bucket that holds its batch, its inputs padded with zero
examples up to the bucket and every output sliced back to the batch (every output leads with
the batch and no op mixes examples: both checked at compile time, so the padding never
changes a real example's result). `CompiledModel` and its torch module
(slimtriton.torch_module) share these two functions, so they take the same batches and
refuse the same ones with the same message.
"""
from __future__ import annotations


def bucket_for(batch: int, batch_sizes) -> int:
    """The smallest of `batch_sizes` (sorted) that holds `batch`; one ValueError naming the batch
    and the range when there is none or the batch is < 1."""
    if not 1 <= batch <= batch_sizes[-1]:
        raise ValueError(f"batch {batch} is outside the range this model was compiled for: 1..{batch_sizes[-1]} "
                         f"(batch buckets {list(batch_sizes)}); compile with a larger max_batch or batch_sizes")
    return next(b for b in batch_sizes if b >= batch)


def pad_batch(t, bucket: int):
    """`t` (a torch tensor whose leading dimension is the batch) with zero examples appended up
    to `bucket`."""
    if t.shape[0] == bucket:
        return t
    import torch  # lazy: torch; compiler.py imports this module, and planning works without torch
    return torch.cat([t, t.new_zeros((bucket - t.shape[0], *t.shape[1:]))])
