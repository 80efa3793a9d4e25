"""slimtriton: TF-Slim style networks compiled to fused Triton kernels.

    import slimtriton as st
    from slimtriton import slim

    with st.Graph() as g:
        images = st.placeholder([1, 224, 224, 3], name="images")
        logits, end_points = st.nets.resnet_v1.resnet_v1_50(images, num_classes=1000, is_training=False)
    weights = st.init_weights(g, seed=0)
    probs = st.Session(g, weights, backend="reference").run(end_points["predictions"], {images: x})

Public names are imported lazily so that `import slimtriton` stays cheap (no torch or
triton import until an executor or the compiler is used).
"""
from __future__ import annotations

import importlib

from .ir import Graph, Op, Tensor, TensorShape, get_default_graph, placeholder

__version__ = "0.1.0"

_LAZY = {
    "slim": ("slimtriton.slim", None),
    "nets": ("slimtriton.nets", None),
    "Session": ("slimtriton.session", "Session"),
    "init_weights": ("slimtriton.weights", "init_weights"),
    "load_weights": ("slimtriton.weights", "load_weights"),
    "save_weights": ("slimtriton.weights", "save_weights"),
    "compile": ("slimtriton.compiler", "compile"),
    "load_compiled": ("slimtriton.compiler", "load_compiled"),
    "data": ("slimtriton.data", None),
    "export_onnx": ("slimtriton.export.onnx", "export_onnx"),
}

__all__ = ["Graph", "Op", "Tensor", "TensorShape", "get_default_graph", "placeholder", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'slimtriton' has no attribute {name!r}")
    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value
