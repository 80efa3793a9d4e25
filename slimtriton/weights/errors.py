"""The one exception every weights reader raises for a file it cannot read (kept in its own
module so that the format readers and `slimtriton.weights` share it without an import cycle)."""
from __future__ import annotations


class WeightsFileError(ValueError):
    """A weights file (.npz, .safetensors, TF checkpoint) that is empty, truncated, corrupt or
    not of its format; the message names the file and what is wrong. `.path` is the file."""

    def __init__(self, path, what: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {what}")
