"""`slimtriton` command line: one sub-command per module in slimtriton/commands/.

Each command module exposes `register(subparsers)`, which adds its parser and sets
`func` (called with the parsed args; its return value is the exit status).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# Sub-command modules, in the order `slimtriton --help` lists them.
COMMANDS = ["run", "nets", "report", "audit", "convert", "export"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slimtriton",
        description="TF-Slim networks compiled to fused Triton kernels.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"slimtriton.commands.{name}").register(sub)
    return parser


# What a user's input causes (an unknown net, an image size the net cannot take, a missing
# or mismatched weights file, an unreadable image) is printed as one message, not a
# traceback; SLIMTRITON_TRACEBACK=1 shows the traceback.
USER_ERRORS = (ValueError, OSError, NotImplementedError)
MAX_ERROR_LINES = 25


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        if os.environ.get("SLIMTRITON_TRACEBACK", "0") not in ("", "0"):
            raise
        lines = (str(exc) or type(exc).__name__).splitlines()
        if len(lines) > MAX_ERROR_LINES:
            lines = lines[:MAX_ERROR_LINES] + [f"  ... and {len(lines) - MAX_ERROR_LINES} more lines"]
        print(f"slimtriton {args.command}: error: " + "\n".join(lines), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
