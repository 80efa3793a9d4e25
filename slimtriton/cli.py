"""`slimtriton` command line: one sub-command per module in slimtriton/commands/.

Each command module exposes `register(subparsers)`, which adds its parser and sets
`func` (called with the parsed args; its return value is the exit status).
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Sub-command modules, in the order `slimtriton --help` lists them.
COMMANDS = ["run", "nets", "report", "audit", "convert"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slimtriton",
        description="TF-Slim networks compiled to fused Triton kernels.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"slimtriton.commands.{name}").register(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
