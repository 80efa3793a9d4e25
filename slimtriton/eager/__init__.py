"""The eager torch executor (`TORCH`, `make_torch_table`, `build_torch_callable`).

Imported lazily (`from slimtriton.eager.torch_backend import TORCH`) so that
`import slimtriton.eager` does not import torch.
"""
