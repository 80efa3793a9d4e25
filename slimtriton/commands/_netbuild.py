"""Shared by `slimtriton run` and `slimtriton report`: build a net from the factory."""
from __future__ import annotations


def build_net(name: str, image_size: int | None, batch: int, num_classes: int | None):
    """(graph, images placeholder, logits, end_points) for net `name` (inference mode)."""
    import slimtriton as st
    from slimtriton.nets import nets_factory
    fn = nets_factory.get_network_fn(name, num_classes, is_training=False)
    size = image_size or fn.default_image_size
    with st.Graph() as g:
        images = st.placeholder([batch, size, size, 3], name="images")
        logits, end_points = fn(images)
    return g, images, logits, end_points


def main_output(logits, end_points):
    """The predictions end point when the net has one, else the logits."""
    for key in ("predictions", "Predictions"):
        if key in end_points:
            return end_points[key]
    return logits
