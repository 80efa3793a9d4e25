"""Eager backends: the torch executor (`TORCH`, `make_torch_table`, `build_torch_callable`).

Imported lazily (`from slimtriton.backends.torch_backend import TORCH`) so that
`import slimtriton.backends` does not import torch.
"""
