"""arg_scope: default keyword arguments for decorated ops, with TF-Slim's semantics.

    with slim.arg_scope([slim.conv2d, slim.fully_connected], activation_fn=tf.nn.relu6):
        with slim.arg_scope([slim.conv2d], padding='VALID') as sc:
            net = slim.conv2d(x, 64, [3, 3])          # relu6, VALID
    with slim.arg_scope(sc):                          # re-enter the saved scope dict
        ...

One stack of dicts keyed by the op. Entering a scope copies the current dict and merges
the new keywords into each listed op's entry, so inner scopes override outer ones; an
explicit keyword at the call overrides every scope. Passing positionally an argument that
a scope also sets is Python's own TypeError ("got multiple values for argument").
"""
from __future__ import annotations

import contextlib
import functools
import inspect

__all__ = ["arg_scope", "add_arg_scope", "current_arg_scope", "has_arg_scope", "arg_scoped_arguments",
           "arg_scope_func_key"]

# The stack is module-global, as in TF-Slim: arg scopes are not tied to a graph.
_ARGSTACK: list[dict] = [{}]
_DECORATED_OPS: dict[str, tuple[str, ...]] = {}


def _get_arg_stack() -> list[dict]:
    return _ARGSTACK


def current_arg_scope() -> dict:
    """The innermost scope dict: {op key: {kwarg: value}}."""
    return _ARGSTACK[-1]


def arg_scope_func_key(op) -> str:
    return getattr(op, "_key_op", str(op))


def _name_op(op) -> str:
    return f"{getattr(op, '__module__', '?')}.{getattr(op, '__name__', repr(op))}"


def _kwarg_names(func) -> tuple[str, ...]:
    """The arguments of `func` that have defaults (the ones a scope may set)."""
    return tuple(p.name for p in inspect.signature(func).parameters.values()
                 if p.default is not inspect.Parameter.empty
                 and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def has_arg_scope(func) -> bool:
    return arg_scope_func_key(func) in _DECORATED_OPS


def arg_scoped_arguments(func) -> tuple[str, ...]:
    """The argument names `func` accepts from an arg_scope (those with defaults)."""
    if not has_arg_scope(func):
        raise ValueError(f"{_name_op(func)} is not decorated with @add_arg_scope")
    return _DECORATED_OPS[arg_scope_func_key(func)]


@contextlib.contextmanager
def arg_scope(list_ops_or_scope, **kwargs):
    """Set default keyword arguments for the listed (decorated) ops, or re-enter a saved scope dict."""
    if isinstance(list_ops_or_scope, dict):
        if kwargs:
            raise ValueError("When attempting to re-use a scope by suppling a dictionary, kwargs must be empty.")
        current_scope = list_ops_or_scope.copy()
    else:
        if not isinstance(list_ops_or_scope, (list, tuple)):
            raise TypeError("list_ops_or_scope must either be a list/tuple or reused scope (i.e. dict), "
                            f"got {type(list_ops_or_scope).__name__}")
        current_scope = current_arg_scope().copy()
        for op in list_ops_or_scope:
            if not has_arg_scope(op):
                raise ValueError(f"{_name_op(op)} is not decorated with @add_arg_scope")
            key = arg_scope_func_key(op)
            merged = dict(current_scope.get(key, {}))
            merged.update(kwargs)
            current_scope[key] = merged
    _ARGSTACK.append(current_scope)
    try:
        yield current_scope
    finally:
        _ARGSTACK.pop()


def add_arg_scope(func):
    """Decorate `func` so that enclosing `arg_scope`s supply its default keyword arguments."""
    key = arg_scope_func_key(func)
    params = inspect.signature(func).parameters
    accepts_any_kwarg = any(p.kind is p.VAR_KEYWORD for p in params.values())

    @functools.wraps(func)
    def func_with_args(*args, **kwargs):
        scoped = current_arg_scope().get(key)
        if not scoped:
            return func(*args, **kwargs)
        if not accepts_any_kwarg:
            for name in scoped:
                if name not in params:
                    raise TypeError(f"{func.__name__}() got an unexpected keyword argument {name!r} "
                                    f"(set by an enclosing arg_scope)")
        current_args = dict(scoped)
        current_args.update(kwargs)
        return func(*args, **current_args)

    _DECORATED_OPS[key] = _kwarg_names(func)
    func_with_args._key_op = key
    return func_with_args
