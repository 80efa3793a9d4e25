"""`slimtriton` command line: one sub-command per module in slimtriton/commands/.

Each command module exposes `register(subparsers)`, which adds its parser and sets
`func` (called with the parsed args; its return value is the exit status).

Exit statuses, the same in every command (`exit_status` is the one place that maps errors
to them): 0 success; 1 a check that ran and failed (e.g. `audit` finds a spilling kernel);
2 a user error (a bad flag value, a missing or damaged file, an image size the net cannot
take), as argparse itself uses for a bad command line; 130 interrupted (Ctrl-C); 141 the
reader of stdout went away (`slimtriton convert --list | head`), quietly, like a process
killed by SIGPIPE.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__
from .commands.errors import UsageError  # noqa: F401  (re-exported: the CLI's user error)
from .extras import missing_extra

# Sub-command modules, in the order `slimtriton --help` lists them (adding one is one line).
COMMANDS = [
    "run",
    "nets",
    "report",
    "audit",
    "convert",
    "compile",
    "eval",
    "predict",
    "export",
]

# The environment variables slimtriton reads (`slimtriton --help` and the README list them).
ENVIRONMENT = [
    ("SLIMTRITON_TRACEBACK=1", "show the Python traceback of a user error instead of its one-line message"),
    ("SLIMTRITON_AUTOTUNE=0", "GPU: do not time tile candidates; use the cached winner or the default tile"),
    ("SLIMTRITON_CACHE_DIR=DIR", "GPU: where autotune winners are cached (default ~/.cache/slimtriton)"),
    ("SLIMTRITON_POISON=1", "test mode: every kernel output is NaN-filled before its launch, so an "
                            "unwritten element shows up as NaN"),
    ("TRITON_INTERPRET=1", "run the Triton kernels in the interpreter on the CPU; set automatically "
                           "when there is no CUDA device"),
]

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USER_ERROR, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 0, 1, 2, 130, 141


# What a user's input causes (an unknown net, an image size the net cannot take, a missing
# or mismatched weights file, an unreadable image) is printed as one message, not a
# traceback; SLIMTRITON_TRACEBACK=1 shows the traceback. So is a missing optional dependency
# (pyarrow for predict's Parquet, ray for --ray, onnx for export): one line naming the extra
# to install (slimtriton/extras.py).
USER_ERRORS = (ValueError, OSError, NotImplementedError)
MAX_ERROR_LINES = 25


def exit_status(exc: BaseException) -> int | None:
    """The exit status of an exception escaping a command, or None for a bug (re-raised with
    its traceback)."""
    if isinstance(exc, BrokenPipeError):
        return EXIT_BROKEN_PIPE
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, USER_ERRORS) or missing_extra(exc) is not None:
        return EXIT_USER_ERROR
    return None


def _version() -> str:
    try:  # torch and triton take seconds to import; only --version shows theirs
        import torch  # lazy: torch, seconds to import
        import triton  # lazy: triton, seconds to import
        return f"slimtriton {__version__} (triton {triton.__version__}, torch {torch.__version__})"
    except ImportError:
        return f"slimtriton {__version__}"


class _VersionAction(argparse.Action):
    """--version, computed only when asked (importing torch and triton takes a while)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print the version (and triton's, torch's) and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(_version())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    width = max(len(name) for name, _ in ENVIRONMENT)
    epilog = ("environment variables:\n" + "\n".join(f"  {name:<{width}}  {what}" for name, what in ENVIRONMENT)
              + "\n\nexit status: 0 ok, 1 a check failed (audit), 2 a user error, 130 interrupted.")
    parser = argparse.ArgumentParser(
        prog="slimtriton",
        description="TF-Slim networks compiled to fused Triton kernels.",
        epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"slimtriton.commands.{name}").register(sub)
    return parser


def _print_error(command: str, exc: BaseException) -> None:
    lines = (missing_extra(exc) or str(exc) or type(exc).__name__).splitlines()
    if len(lines) > MAX_ERROR_LINES:
        lines = lines[:MAX_ERROR_LINES] + [f"  ... and {len(lines) - MAX_ERROR_LINES} more lines"]
    print(f"slimtriton {command}: error: " + "\n".join(lines), file=sys.stderr)


def _silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's final flush of
    what is still buffered does not print a second 'Broken pipe' error."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout replaced (pytest capture): nothing to do
        pass


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at exit
        return status
    except (Exception, KeyboardInterrupt) as exc:
        status = exit_status(exc)
        if status is None or (status == EXIT_USER_ERROR
                              and os.environ.get("SLIMTRITON_TRACEBACK", "0") not in ("", "0")):
            raise
        if status == EXIT_BROKEN_PIPE:
            _silence_stdout()
        elif status == EXIT_INTERRUPTED:
            print(f"slimtriton {args.command}: interrupted", file=sys.stderr)
        else:
            _print_error(args.command, exc)
        return status


if __name__ == "__main__":
    sys.exit(main())
