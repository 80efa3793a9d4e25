"""Export of recorded graphs to other runtimes: `export_onnx` (slimtriton/export/onnx.py)."""
from .onnx import export_onnx

__all__ = ["export_onnx"]
