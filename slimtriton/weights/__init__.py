"""Weights: a plain ``dict[str, np.ndarray]`` keyed by TF-Slim variable names.

    weights = init_weights(graph, seed=0)          # from the recorded initializers
    save_weights(weights, "resnet.safetensors")    # or .npz
    weights = load_weights("resnet_v1_50.ckpt")    # .npz, .safetensors, TF V2 or V1 checkpoint
    check_weights(graph, weights)                  # WeightsMismatchError lists every problem

TF checkpoints are read by `slimtriton.weights.tf_checkpoint.read_checkpoint`.
"""
from __future__ import annotations

import os
import tokenize
import zipfile
from collections import OrderedDict
from typing import Mapping

import numpy as np

from ..executor import needed_nodes
from ..feeds import dtype_name
from ..ir.node import FLOAT_DTYPES
from ..ir.ops import Op
from .errors import WeightsFileError

__all__ = ["WeightsMismatchError", "WeightsFileError", "init_weights", "load_weights", "save_weights", "check_weights"]

SHOWN_PER_KIND = 10  # names listed per kind of problem in the message; the rest are counted


class WeightsMismatchError(ValueError):
    """Weights do not match the graph's variables; `.missing`, `.unexpected`, `.mis_shaped`, `.mis_typed`
    hold every problem, the message lists the first SHOWN_PER_KIND of each kind and counts the rest."""

    def __init__(self, missing, unexpected, mis_shaped, mis_typed=()):
        self.missing = list(missing)          # [(name, expected shape)]
        self.unexpected = list(unexpected)    # [(name, shape)]
        self.mis_shaped = list(mis_shaped)    # [(name, expected shape, got shape)]
        self.mis_typed = list(mis_typed)      # [(name, expected dtype, got dtype)]
        lines = [f"weights do not match the graph's variables ({len(self.missing)} missing, "
                 f"{len(self.unexpected)} unexpected, {len(self.mis_shaped)} mis-shaped, "
                 f"{len(self.mis_typed)} mis-typed)"]
        lines += _shortened("missing", [f"  missing:    {n} {list(s)}" for n, s in self.missing])
        lines += _shortened("unexpected", [f"  unexpected: {n} {list(s)}" for n, s in self.unexpected])
        lines += _shortened("mis-shaped", [f"  mis-shaped: {n}: expected {list(e)}, got {list(g)}"
                                           for n, e, g in self.mis_shaped])
        lines += _shortened("mis-typed", [f"  mis-typed:  {n}: expected {e}, got {g}" for n, e, g in self.mis_typed])
        super().__init__("\n".join(lines))


def _shortened(kind: str, lines: list) -> list:
    if len(lines) <= SHOWN_PER_KIND:
        return lines
    return lines[:SHOWN_PER_KIND] + [f"  ... and {len(lines) - SHOWN_PER_KIND} more {kind}"]


def _variable_specs(graph_or_variables) -> "OrderedDict[str, tuple[tuple[int, ...], str]]":
    """{name: (shape, dtype)} from a Graph, a {name: VariableSpec} mapping or a {name: shape} mapping."""
    variables = getattr(graph_or_variables, "variables", None)
    nodes = _nodes_of(graph_or_variables)
    if nodes is not None:  # a graph or node list: its declared variables and those its VARIABLE nodes read
        variables = {**{n.attrs["var"]: n for n in nodes if n.op is Op.VARIABLE}, **(variables or {})}
    elif variables is None:
        variables = graph_or_variables
    if not isinstance(variables, Mapping):
        raise TypeError(f"expected a Graph or a mapping of variables, got {type(graph_or_variables).__name__}")
    specs = OrderedDict()
    for name, spec in variables.items():
        if hasattr(spec, "shape") and hasattr(spec, "dtype") and not isinstance(spec, np.ndarray):
            specs[name] = (tuple(int(d) for d in spec.shape), str(spec.dtype))
        else:  # a bare shape
            specs[name] = (tuple(int(d) for d in spec), "float32")
    return specs


def _same_kind(expected: str, got: str) -> bool:
    if expected in FLOAT_DTYPES:
        return got in FLOAT_DTYPES
    return expected == got


def check_weights(graph_or_variables, weights: Mapping, outputs=None) -> None:
    """Raise one WeightsMismatchError listing every missing, unexpected, mis-shaped or mis-typed name.

    graph_or_variables: a Graph, a node list, a {name: VariableSpec | Node} or a {name: shape}
    mapping. For a Graph (or node list) the variables some node reads must be given (with
    `outputs`: those the outputs need); declared variables nothing needs may be absent, and are
    checked when given; any other name is unexpected. For a mapping every name must be given.
    A float variable accepts any float dtype (the executors convert); other dtypes must match.
    This is the one check of every executor (Session, st.compile).
    """
    specs = _variable_specs(graph_or_variables)
    required = _required_variables(graph_or_variables, outputs)
    missing = [(n, s) for n, (s, _) in specs.items() if n not in weights and (required is None or n in required)]
    unexpected = [(n, _shape(v)) for n, v in weights.items() if n not in specs]
    mis_shaped, mis_typed = [], []
    for name, (shape, dtype) in specs.items():
        if name not in weights:
            continue
        value = weights[name]
        got = _shape(value)
        if got != shape:
            mis_shaped.append((name, shape, got))
        elif not _same_kind(dtype, dtype_name(value)):
            mis_typed.append((name, dtype, dtype_name(value)))
    if missing or unexpected or mis_shaped or mis_typed:
        raise WeightsMismatchError(missing, unexpected, mis_shaped, mis_typed)


def _shape(value) -> tuple:
    return tuple(int(d) for d in getattr(value, "shape", np.shape(value)))


def _nodes_of(graph_or_variables):
    """The nodes of a Graph, or the node list itself; None for a mapping of variables."""
    if isinstance(graph_or_variables, (list, tuple)):
        return graph_or_variables
    return getattr(graph_or_variables, "nodes", None)


def _required_variables(graph_or_variables, outputs):
    """Names of the variables the graph's nodes (or those `outputs` need) read; None for a mapping."""
    nodes = _nodes_of(graph_or_variables)
    if nodes is None:
        return None
    if outputs is not None:
        needed = needed_nodes([getattr(o, "node", o) for o in outputs])
        nodes = [n for n in nodes if id(n) in needed]
    return {n.attrs["var"] for n in nodes if n.op is Op.VARIABLE}


def init_weights(graph, seed: int = 0) -> "OrderedDict[str, np.ndarray]":
    """Values for every variable of `graph` from its recorded initializer.

    One `numpy.random.Generator` seeded with `seed` serves all variables, in graph order,
    so the same graph and seed always give the same weights.
    """
    rng = np.random.default_rng(seed)
    weights: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for name, spec in graph.variables.items():
        if spec.initializer is None:
            raise ValueError(f"variable {name} {list(spec.shape)} has no initializer; "
                             f"load its value with load_weights instead")
        value = np.asarray(spec.initializer(tuple(spec.shape), spec.dtype, rng))
        if tuple(value.shape) != tuple(spec.shape):
            raise ValueError(f"initializer of variable {name} returned shape {list(value.shape)}, "
                             f"expected {list(spec.shape)}")
        weights[name] = _as_dtype(value, spec.dtype)
    return weights


def _as_dtype(value: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":  # NumPy has no bfloat16: keep float32
        return value.astype(np.float32)
    return value.astype(np.dtype(dtype))


_SUPPORTED = (".npz, .safetensors, or a TF checkpoint: V2 (prefix like model.ckpt, its directory, or its "
              "`checkpoint` file) or V1 (one file like resnet_v1_50.ckpt)")


def _is_tf_checkpoint(path: str) -> bool:
    base = os.path.basename(path.rstrip("/"))
    return (os.path.isdir(path) or base == "checkpoint" or ".ckpt" in base
            or os.path.exists(path + ".index") or base.endswith(".index"))


def load_weights(path) -> "OrderedDict[str, np.ndarray]":
    """Read weights from `.npz`, `.safetensors` or a TF V2/V1 checkpoint; names are kept as stored.

    bfloat16 tensors (what torch exports) load as float32 arrays of the same values (NumPy has
    no bfloat16). A file that is empty, truncated, corrupt or not of its format raises
    `WeightsFileError` (a ValueError) naming the file and what is wrong."""
    path = os.fspath(path)
    lower = path.lower()
    if lower.endswith(".npz"):
        return _read_npz(path)
    if lower.endswith(".safetensors"):
        return _read_safetensors(path)
    from .tf_checkpoint import is_tf_checkpoint, read_checkpoint  # lazy: the TF readers, for a checkpoint only
    if _is_tf_checkpoint(path) or is_tf_checkpoint(path):  # the latter: a V1 table of any name
        return OrderedDict(read_checkpoint(path))
    raise ValueError(f"cannot load weights from {path}: unknown format; supported: {_SUPPORTED}")


def _opened(path: str, kind: str) -> int:
    """The file's size; FileNotFoundError when absent, WeightsFileError when not a readable file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file {path} does not exist")
    if os.path.isdir(path):
        raise WeightsFileError(path, f"is a directory, not a {kind} file")
    size = os.path.getsize(path)
    if size == 0:
        raise WeightsFileError(path, f"is empty (0 bytes), not a {kind} file")
    return size


# What np.load / zipfile raise on damaged files (found by flipping each byte of an .npz:
# BadZipFile, EOFError, OSError [Errno 22] from a seek, TokenError and ValueError from a
# garbled .npy header, NotImplementedError from garbled zip flags). Listed, not `Exception`,
# so that a bug of ours (a TypeError, an AttributeError) is not disguised as a damaged file.
_READ_ERRORS = (ValueError, OSError, EOFError, KeyError, NotImplementedError, SyntaxError,
                zipfile.BadZipFile, tokenize.TokenError)
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a first member, or an empty archive (no weights)


def _read_npz(path: str) -> "OrderedDict[str, np.ndarray]":
    _opened(path, ".npz")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic not in _ZIP_MAGICS:
        raise WeightsFileError(path, f"not an .npz file: it does not start with a zip header "
                                     f"(first bytes {magic!r}, expected b'PK\\x03\\x04')")
    name = "(the archive)"
    try:
        with np.load(path, allow_pickle=False) as data:
            out = OrderedDict()
            for name in data.files:  # members are read (and CRC-checked) here, inside the try
                out[name] = data[name]
            return out
    except _READ_ERRORS as err:
        what = "object (pickled) arrays are not weights" if "allow_pickle" in str(err) else (
            f"{type(err).__name__}: {err}" if str(err) else type(err).__name__)
        raise WeightsFileError(path, f"corrupt or truncated .npz file, reading {name}: {what}") from err


def _read_safetensors(path: str) -> "OrderedDict[str, np.ndarray]":
    size = _opened(path, ".safetensors")
    if size < 8:
        raise WeightsFileError(path, f"truncated .safetensors file: {size} bytes, shorter than its 8-byte "
                                     f"header length")
    from safetensors import SafetensorError, safe_open  # lazy: for a .safetensors file only
    name = "(the header)"
    try:
        out = OrderedDict()
        with safe_open(path, framework="pt") as f:  # the torch view reads bfloat16, NumPy's does not
            for name in f.keys():
                out[name] = _host(f.get_tensor(name))
        return out
    except (SafetensorError, *_READ_ERRORS) as err:
        raise WeightsFileError(path, f"corrupt or truncated .safetensors file, reading {name}: {err}") from err


def save_weights(weights: Mapping, path) -> None:
    """Write weights to `.npz` (np.savez) or `.safetensors`."""
    path = os.fspath(path)
    # np.require, not np.ascontiguousarray: the latter turns 0-d arrays (global_step) into 1-d.
    arrays = OrderedDict((str(k), np.require(_host(v), requirements="C")) for k, v in weights.items())
    lower = path.lower()
    if lower.endswith(".npz"):
        clash = [k for k in arrays if k in ("file", "allow_pickle")]
        if clash:  # np.savez takes these as its own keyword arguments
            raise ValueError(f"cannot save weights to {path}: names {clash} clash with np.savez; use .safetensors")
        np.savez(path, **arrays)
    elif lower.endswith(".safetensors"):
        from safetensors.numpy import save_file  # lazy: for a .safetensors file only
        save_file(dict(arrays), path)
    else:
        raise ValueError(f"cannot save weights to {path}: unknown extension; supported: .npz, .safetensors")


def _host(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        import torch  # lazy: only for torch tensors (weights load without torch)
        value = value.detach().cpu()
        if value.dtype.is_floating_point and value.dtype not in (torch.float16, torch.float32, torch.float64):
            value = value.float()  # bfloat16, float8: NumPy has no such dtype; the values are exact in float32
        return value.numpy()
    return np.asarray(value)
