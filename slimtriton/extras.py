"""Optional dependencies ("extras"): importing one, and the one-line error when it is missing.

    pa = require("pyarrow", "writing Parquet")     # MissingExtraError: writing Parquet needs
                                                   # pyarrow: pip install 'slimtriton[data]' ...

`pip install slimtriton` stays light; the extras of pyproject.toml add what a feature needs
(`make setup` installs them all). The command line prints a MissingExtraError, or a
ModuleNotFoundError of one of these modules, as a one-line user error (exit status 2).
"""
from __future__ import annotations

import importlib

# Top-level module -> the pyproject.toml extra that installs it.
EXTRAS = {"pyarrow": "data", "ray": "ray", "onnx": "onnx", "onnxruntime": "onnx", "matplotlib": "bench"}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""


def install_hint(module: str, what: str) -> str:
    top = module.split(".")[0]
    return (f"{what} needs {top}, which is not installed: pip install 'slimtriton[{EXTRAS[top]}]' "
            f"(or `make setup` in a checkout)")


def require(module: str, what: str):
    """`import module` (an optional dependency listed in EXTRAS), or MissingExtraError naming its
    extra; `what` is the feature that needs it ('writing Parquet', '--ray')."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".")[0] != module.split(".")[0]:
            raise  # the module is there but one of its own dependencies is not: its own error
        raise MissingExtraError(install_hint(module, what)) from None


def missing_extra(exc: BaseException) -> str | None:
    """The one-line message for an exception that says an optional dependency is missing, else None."""
    if isinstance(exc, MissingExtraError):
        return str(exc)
    if isinstance(exc, ModuleNotFoundError) and exc.name and exc.name.split(".")[0] in EXTRAS:
        return install_hint(exc.name, "this command")
    return None
