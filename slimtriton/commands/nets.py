"""slimtriton nets: list the nets the factory can build.

For each net: its name, default image size, minimum image size (the smallest --image-size
it builds at with its default arguments: below it a VALID pool, conv or fully connected
layer would get an empty or mis-sized input) and number of classes (of the published
checkpoints). `--measure` recomputes the minimum sizes by building each net (a few seconds)
instead of reading the table.
"""
from __future__ import annotations

# The smallest image size each factory net builds at with its default arguments, found by
# `minimum_image_size` (tests/test_cli_errors.py checks each against a build at size and
# size - 1). Nets made only of SAME convs and pools build at any size.
MIN_IMAGE_SIZE = {
    "alexnet_v2": 195, "vgg_a": 224, "vgg_16": 224, "vgg_19": 224, "inception_v1": 193,
    "inception_v2": 1, "inception_v3": 107, "inception_v4": 107, "inception_resnet_v2": 107,
    "inception_resnet_v1": 75, "resnet_v1_50": 1, "resnet_v1_101": 1, "resnet_v1_152": 1,
    "resnet_v1_200": 1, "resnet_v2_50": 1, "resnet_v2_101": 1, "resnet_v2_152": 1, "resnet_v2_200": 1,
    "mobilenet_v1": 1, "mobilenet_v1_075": 1, "mobilenet_v1_050": 1, "mobilenet_v1_025": 1,
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("nets", help="list the nets that can be built",
                                   description=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--measure", action="store_true",
                        help="compute the minimum image sizes by building each net instead of the table")
    parser.set_defaults(func=main)


def builds_at(name: str, size: int) -> bool:
    """Whether factory net `name` builds (default arguments, batch 1) at `size` x `size`."""
    from ..nets.build import build_net  # lazy: when the command runs
    try:
        build_net(name, size, 1, None)
    except (ValueError, TypeError):  # a layer refusing its input shape names itself
        return False
    return True


def minimum_image_size(name: str) -> int:
    """The smallest size net `name` builds at: a bisection between 1 and its default size
    (the nets' feature maps grow with the input, so buildability is monotone in the size)."""
    from slimtriton.nets import nets_factory  # lazy: when the command runs
    hi = nets_factory.networks_map[name].default_image_size
    if builds_at(name, 1):
        return 1
    lo = 1  # fails
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if builds_at(name, mid) else (mid, hi)
    return hi


def main(args) -> int:
    from slimtriton.nets import nets_factory  # lazy: when the command runs
    print(f"{'net':<24} {'image size':>10} {'min size':>8} {'classes':>8}")
    for name in nets_factory.networks_map:
        size = getattr(nets_factory.networks_map[name], "default_image_size", None)
        minimum = minimum_image_size(name) if args.measure else MIN_IMAGE_SIZE.get(name, "?")
        print(f"{name:<24} {size if size else '-':>10} {minimum:>8} "
              f"{nets_factory.default_num_classes.get(name, '-'):>8}", flush=args.measure)
    return 0
