"""The TF-Slim nets, name for name (tensorflow/models research/slim/nets).

    from slimtriton.nets import resnet_v1
    with slim.arg_scope(resnet_v1.resnet_arg_scope()):
        logits, end_points = resnet_v1.resnet_v1_50(images, num_classes=1000, is_training=False)

Or through the factory: ``nets_factory.get_network_fn('resnet_v1_50', 1000)``.
Submodules load on first attribute access so importing one net does not import all.
"""
from __future__ import annotations

import importlib

_MODULES = (
    "alexnet", "build", "inception", "inception_resnet_v1", "inception_resnet_v2", "inception_utils",
    "inception_v1", "inception_v2", "inception_v3", "inception_v4", "mobilenet_v1", "nets_factory",
    "resnet_utils", "resnet_v1", "resnet_v2", "vgg",
)

__all__ = list(_MODULES)


def __getattr__(name: str):
    if name not in _MODULES:
        raise AttributeError(f"module 'slimtriton.nets' has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{name}")
    globals()[name] = module
    return module
