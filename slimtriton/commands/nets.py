"""slimtriton nets: list the nets the factory can build.

For each net: its name, default image size and number of classes (of the published
checkpoints).
"""
from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("nets", help="list the nets that can be built",
                                   description=__doc__.split("\n\n", 1)[1])
    parser.set_defaults(func=main)


def main(args) -> int:
    from slimtriton.nets import nets_factory
    print(f"{'net':<24} {'image size':>10} {'classes':>8}")
    for name in nets_factory.networks_map:
        size = getattr(nets_factory.networks_map[name], "default_image_size", None)
        print(f"{name:<24} {size if size else '-':>10} {nets_factory.default_num_classes.get(name, '-'):>8}")
    return 0
