"""One net from the factory, recorded for inference: what the commands, the data pipeline and
the demo build (layer 1, so each of them imports it downward).

    g, images, logits, end_points = build_net("resnet_v1_50", None, batch=8, num_classes=None)
    out = main_output(logits, end_points)     # the predictions end point, else the logits
"""
from __future__ import annotations

from ..ir.graph import Graph, placeholder
from . import nets_factory

# Nets whose output is an embedding, not class scores (FaceNet's; num_classes is its size).
EMBEDDING_NETS = ("inception_resnet_v1",)


def build_net(name: str, image_size: int | None, batch: int, num_classes: int | None):
    """(graph, images placeholder, logits, end_points) for net `name` (inference mode);
    image_size None is the net's default size."""
    fn = nets_factory.get_network_fn(name, num_classes, is_training=False)
    size = fn.default_image_size if image_size is None else image_size
    with Graph() as g:
        images = placeholder([batch, size, size, 3], name="images")
        logits, end_points = fn(images)
    return g, images, logits, end_points


def main_output(logits, end_points):
    """The predictions end point when the net has one, else the logits."""
    for key in ("predictions", "Predictions"):
        if key in end_points:
            return end_points[key]
    return logits
