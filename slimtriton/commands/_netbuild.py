"""Shared by `slimtriton run` and `slimtriton report`: build a net from the factory, check flags."""
from __future__ import annotations


def check_at_least(args, minimum: int, *flags: str) -> None:
    """UsageError naming the flag unless each given (not None) `--flag` value is >= minimum."""
    from .errors import UsageError
    for flag in flags:
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None and value < minimum:
            raise UsageError(f"{flag} must be >= {minimum}, got {value}")


def build_net(name: str, image_size: int | None, batch: int, num_classes: int | None):
    """(graph, images placeholder, logits, end_points) for net `name` (inference mode);
    image_size None is the net's default size."""
    import slimtriton as st
    from slimtriton.nets import nets_factory
    fn = nets_factory.get_network_fn(name, num_classes, is_training=False)
    size = fn.default_image_size if image_size is None else image_size
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


def main_output_kind(logits, end_points) -> str:
    """What `main_output` is, in words, for the reports: 'predictions (softmax)' or 'logits'."""
    return "logits" if main_output(logits, end_points) is logits else "predictions (softmax)"
