"""Variable scopes, name scopes and variables, with TF1's naming and reuse rules.

State lives on the graph (`graph.scope_state`): the current `VariableScope`, the
per-scope-name open counts used to uniquify default names (`Conv`, `Conv_1`, ...;
counts of sub-scopes reset when a scope closes, so re-entering `block` restarts at
`Conv`), and the tensor aliases used for end points.

Rules (TF1 `variable_scope` / `get_variable`):
- `variable_scope(name)` extends the variable scope name and opens a name scope
  `name` uniquified among name scopes (`name_1` the second time); reuse is inherited.
- `variable_scope(None, default_name)` picks the first unused `default_name[_k]`
  among variable scopes; `reuse=True` (or AUTO_REUSE) there is a ValueError.
- creating an existing variable without reuse, or reusing a missing one, is a
  ValueError naming the variable; `AUTO_REUSE` creates or reuses.
"""
from __future__ import annotations

import contextlib
import enum
import functools
import operator
import re

import numpy as np

from ..ir.graph import VariableSpec, get_default_graph, graph_of
from ..ir.node import NODE_DTYPES, FLOAT_DTYPES, Tensor
from ..ir.ops import Op
from .arg_scope import add_arg_scope
from .initializers import as_initializer, glorot_uniform_initializer, zeros_initializer

__all__ = [
    "GraphKeys", "AUTO_REUSE", "VariableScope", "variable_scope", "name_scope", "get_variable_scope",
    "get_variable", "variable", "model_variable", "get_variables", "get_model_variables",
    "get_trainable_variables", "get_local_variables", "get_variables_to_restore", "get_variables_by_name",
    "get_variables_by_suffix", "get_unique_variable", "add_model_variable",
]


class GraphKeys:
    """TF1's standard collection names."""
    GLOBAL_VARIABLES = "variables"
    VARIABLES = "variables"
    LOCAL_VARIABLES = "local_variables"
    MODEL_VARIABLES = "model_variables"
    TRAINABLE_VARIABLES = "trainable_variables"
    REGULARIZATION_LOSSES = "regularization_losses"
    UPDATE_OPS = "update_ops"
    MOVING_AVERAGE_VARIABLES = "moving_average_variables"
    ACTIVATIONS = "activations"
    LOSSES = "losses"
    SUMMARIES = "summaries"
    GLOBAL_STEP = "global_step"


class _ReuseMode(enum.Enum):
    AUTO_REUSE = 1

    def __repr__(self) -> str:
        return "tf.AUTO_REUSE"


AUTO_REUSE = _ReuseMode.AUTO_REUSE


class VariableScope:
    """What `with variable_scope(...) as sc` yields: `sc.name`, `sc.original_name_scope`, `sc.reuse`."""

    def __init__(self, name: str, reuse=None, initializer=None, regularizer=None, dtype="float32",
                 custom_getter=None, original_name_scope: str = ""):
        self.name = name
        self._reuse = reuse
        self.initializer = initializer
        self.regularizer = regularizer
        self.dtype = dtype
        self.custom_getter = custom_getter
        self.original_name_scope = original_name_scope

    @property
    def reuse(self):
        return self._reuse

    def reuse_variables(self) -> None:
        self._reuse = True

    def set_initializer(self, initializer) -> None:
        self.initializer = initializer

    def set_regularizer(self, regularizer) -> None:
        self.regularizer = regularizer

    def set_dtype(self, dtype) -> None:
        self.dtype = dtype

    def set_custom_getter(self, custom_getter) -> None:
        self.custom_getter = custom_getter

    def set_partitioner(self, partitioner) -> None:
        if partitioner is not None:
            raise ValueError(f"variable scope {self.name!r}: partitioned variables are not supported")

    def get_variable(self, name, *args, **kwargs):
        with variable_scope(self):
            return get_variable(name, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<VariableScope name={self.name!r} reuse={self._reuse!r}>"


def _state(graph) -> dict:
    st = graph.scope_state
    if "var_scope" not in st:
        st["var_scope"] = VariableScope("", reuse=None)
        st["var_scope_counts"] = {}
        st["aliases"] = {}
    return st


def get_variable_scope() -> VariableScope:
    return _state(get_default_graph())["var_scope"]


@contextlib.contextmanager
def name_scope(name, default_name=None, values=None):
    """Open a name scope (op names only; variables are named by variable scopes).

    `name` is uniquified among name scopes of the graph (`block`, `block_1`); a name
    ending in '/' re-enters that exact scope; None/'' returns to the top level.
    Yields the scope string, ending in '/' (or '' at the top).
    """
    g = graph_of([values])
    old = g.name_scope_prefix
    n = default_name if name is None else name
    if not n:
        new = ""
    elif n.endswith("/"):
        new = n
    else:
        new = g.unique_name(old + n) + "/"
    g.name_scope_prefix = new
    try:
        yield new
    finally:
        g.name_scope_prefix = old


def _unique_variable_scope(st, prefix: str) -> str:
    """TF's _get_unique_variable_scope: first `prefix[_k]` whose full name was never opened here."""
    current = st["var_scope"].name
    counts = st["var_scope_counts"]
    name = current + "/" + prefix if current else prefix
    if counts.get(name, 0) == 0:
        return prefix
    idx = 1
    while counts.get(f"{name}_{idx}", 0) > 0:
        idx += 1
    return f"{prefix}_{idx}"


def _compose_getters(inner, outer):
    """A scope's custom getter wraps the enclosing scope's (TF's _maybe_wrap_custom_getter)."""
    if inner is None:
        return outer
    if outer is None:
        return inner

    def wrapped(getter, *args, **kwargs):
        return inner(functools.partial(outer, getter), *args, **kwargs)
    return wrapped


@contextlib.contextmanager
def variable_scope(name_or_scope, default_name=None, values=None, initializer=None, regularizer=None,
                   caching_device=None, partitioner=None, custom_getter=None, reuse=None, dtype=None,
                   use_resource=None, constraint=None, auxiliary_name_scope=True):
    """TF1's variable scope: prefixes variable names and opens the matching name scope."""
    if default_name is None and name_or_scope is None:
        raise TypeError("If default_name is None then name_or_scope is required")
    if partitioner is not None:
        raise ValueError(f"variable_scope {name_or_scope or default_name!r}: partitioned variables are not supported")
    if constraint is not None:
        raise ValueError(f"variable_scope {name_or_scope or default_name!r}: variable constraints are not supported")
    if dtype is not None and str(dtype) not in NODE_DTYPES:
        raise TypeError(f"variable_scope {name_or_scope or default_name!r}: unknown dtype {dtype!r}")
    if reuse is False:
        reuse = None  # False means "inherit", as in TF1
    g = graph_of(values)
    st = _state(g)
    old = st["var_scope"]
    counts = st["var_scope_counts"]
    saved_counts = None

    if isinstance(name_or_scope, VariableScope):
        base = name_or_scope
        new_name = base.name
        ns_name = new_name.split("/")[-1]
        new_reuse = reuse if reuse else base.reuse
        saved_counts = dict(counts)
    elif isinstance(name_or_scope, str):
        base = old
        new_name = old.name + "/" + name_or_scope if old.name else name_or_scope
        ns_name = name_or_scope
        new_reuse = reuse if reuse is True else (reuse or old.reuse)
    elif name_or_scope is None:
        if reuse:
            raise ValueError(f"reuse={reuse!r} cannot be used without a name_or_scope "
                             f"(default name {default_name!r}): pass scope=... to reuse variables")
        base = old
        unique = _unique_variable_scope(st, default_name)
        new_name = old.name + "/" + unique if old.name else unique
        ns_name = default_name
        new_reuse = old.reuse
    else:
        raise TypeError(f"VariableScope: name_or_scope must be a string or VariableScope, "
                        f"got {type(name_or_scope).__name__}")
    counts[new_name] = counts.get(new_name, 0) + 1

    with contextlib.ExitStack() as stack:
        if auxiliary_name_scope:
            if isinstance(name_or_scope, VariableScope) and not ns_name:
                ns = g.name_scope_prefix
            else:
                ns = stack.enter_context(name_scope(ns_name, values=values))
        else:
            ns = g.name_scope_prefix
        original_ns = name_or_scope.original_name_scope if isinstance(name_or_scope, VariableScope) else ns
        scope = VariableScope(
            new_name, new_reuse,
            initializer if initializer is not None else base.initializer,
            regularizer if regularizer is not None else base.regularizer,
            str(dtype) if dtype is not None else base.dtype,
            _compose_getters(custom_getter, base.custom_getter),
            original_ns)
        st["var_scope"] = scope
        try:
            yield scope
        finally:
            st["var_scope"] = old
            if saved_counts is not None:
                st["var_scope_counts"] = saved_counts
            else:
                prefix = new_name + "/"
                for k in counts:
                    if k.startswith(prefix):
                        counts[k] = 0


def _dedupe(items):
    out = []
    for i in items:
        if i not in out:
            out.append(i)
    return out


def _check_shape(name, shape):
    if shape is None:
        raise ValueError(f"Shape of a new variable ({name}) must be fully defined, but instead was None.")
    try:
        dims = tuple(operator.index(d) for d in shape)
    except TypeError:
        raise TypeError(f"variable {name}: shape must be a sequence of ints, got {shape!r}") from None
    if any(d <= 0 for d in dims):
        raise ValueError(f"variable {name}: shape must be positive ints, got {list(dims)}")
    return dims


def _true_getter(name, shape=None, dtype=None, initializer=None, regularizer=None, reuse=None,
                 trainable=None, collections=None, **unused):
    g = get_default_graph()
    existing = g.variables.get(name)
    if reuse is AUTO_REUSE:
        reuse = existing is not None
    if existing is not None:
        if not reuse:
            raise ValueError(f"Variable {name} already exists, disallowed. Did you mean to set reuse=True "
                             f"or reuse=tf.AUTO_REUSE in VarScope?")
        if shape is not None and tuple(shape) != existing.shape:
            raise ValueError(f"Trying to share variable {name}, but specified shape {list(shape)} "
                             f"and found shape {list(existing.shape)}.")
        if dtype is not None and str(dtype) != existing.dtype:
            raise ValueError(f"Trying to share variable {name}, but specified dtype {dtype} "
                             f"and found dtype {existing.dtype}.")
        return Tensor(existing.node, g)
    if reuse:
        raise ValueError(f"Variable {name} does not exist, or was not created with tf.get_variable(). "
                         f"Did you mean to set reuse=tf.AUTO_REUSE in VarScope?")
    initializer = as_initializer(initializer, f"variable {name}")
    if shape is None and initializer is not None and hasattr(initializer, "value") \
            and getattr(initializer, "value", None) is not None:
        value = np.asarray(initializer.value)
        if value.ndim > 0:
            shape = value.shape
    shape = _check_shape(name, shape)
    dtype = str(dtype or "float32")
    if dtype not in NODE_DTYPES:
        raise TypeError(f"variable {name}: unknown dtype {dtype!r}; expected one of {NODE_DTYPES}")
    if initializer is None:
        initializer = glorot_uniform_initializer() if dtype in FLOAT_DTYPES else zeros_initializer()
    trainable = True if trainable is None else bool(trainable)
    collections = _dedupe(list(collections) if collections is not None else [GraphKeys.GLOBAL_VARIABLES])
    if trainable and GraphKeys.TRAINABLE_VARIABLES not in collections:
        collections.append(GraphKeys.TRAINABLE_VARIABLES)
    if _node_exists(g, name):
        raise ValueError(f"Variable {name}: an op of that name already exists in the graph")
    node = g.add_node(Op.VARIABLE, (), {"var": name, "shape": shape, "dtype": dtype}, name)
    spec = VariableSpec(name, shape, dtype, initializer, regularizer, trainable, tuple(collections), node)
    g.variables[name] = spec
    for c in collections:
        g.add_to_collection(c, spec)
    return Tensor(node, g)


def _node_exists(g, name) -> bool:
    try:
        g.node_by_name(name)
    except KeyError:
        return False
    return True


def get_variable(name, shape=None, dtype=None, initializer=None, regularizer=None, trainable=None,
                 collections=None, caching_device=None, partitioner=None, validate_shape=True,
                 use_resource=None, custom_getter=None, constraint=None, synchronization=None,
                 aggregation=None, reuse=None):
    """Create or reuse the variable `<current variable scope>/<name>`; returns its read Tensor."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"get_variable: name must be a non-empty string, got {name!r}")
    if partitioner is not None:
        raise ValueError(f"get_variable {name!r}: partitioned variables are not supported")
    if constraint is not None:
        raise ValueError(f"get_variable {name!r}: variable constraints are not supported")
    scope = get_variable_scope()
    full_name = scope.name + "/" + name if scope.name else name
    kwargs = dict(
        shape=shape,
        dtype=dtype if dtype is not None else scope.dtype,
        initializer=initializer if initializer is not None else scope.initializer,
        regularizer=regularizer if regularizer is not None else scope.regularizer,
        reuse=scope.reuse if reuse is None else reuse,
        trainable=trainable,
        collections=collections,
    )
    getter = _compose_getters(custom_getter, scope.custom_getter)
    if getter is not None:
        return getter(_true_getter, full_name, **kwargs)
    return _true_getter(full_name, **kwargs)


@add_arg_scope
def variable(name, shape=None, dtype=None, initializer=None, regularizer=None, trainable=True,
             collections=None, caching_device=None, device=None, partitioner=None, custom_getter=None,
             use_resource=None, synchronization=None, aggregation=None):
    """slim.variable: get_variable with collections defaulting to GLOBAL_VARIABLES.

    `device` and `caching_device` are placement hints with no meaning here (accepted for
    compatibility: arg scopes in TF-Slim code set them)."""
    collections = _dedupe(list(collections if collections is not None else [GraphKeys.GLOBAL_VARIABLES]))
    if custom_getter is not None:
        getter = functools.partial(custom_getter, reuse=get_variable_scope().reuse)
        return getter(name, shape=shape, dtype=dtype, initializer=initializer, regularizer=regularizer,
                      trainable=trainable, collections=collections)
    return get_variable(name, shape=shape, dtype=dtype, initializer=initializer, regularizer=regularizer,
                        trainable=trainable, collections=collections, partitioner=partitioner)


@add_arg_scope
def model_variable(name, shape=None, dtype="float32", initializer=None, regularizer=None, trainable=True,
                   collections=None, caching_device=None, device=None, partitioner=None, custom_getter=None,
                   use_resource=None, synchronization=None, aggregation=None):
    """slim.model_variable: a variable also added to MODEL_VARIABLES."""
    collections = list(collections or [])
    collections += [GraphKeys.GLOBAL_VARIABLES, GraphKeys.MODEL_VARIABLES]
    return variable(name, shape=shape, dtype=dtype, initializer=initializer, regularizer=regularizer,
                    trainable=trainable, collections=collections, caching_device=caching_device,
                    device=device, partitioner=partitioner, custom_getter=custom_getter)


def add_model_variable(var) -> None:
    """Add a variable (Tensor, VariableSpec or name) to MODEL_VARIABLES if it is not there yet."""
    g = get_default_graph()
    spec = _spec_of(g, var)
    if spec not in g.get_collection(GraphKeys.MODEL_VARIABLES):
        g.add_to_collection(GraphKeys.MODEL_VARIABLES, spec)
        spec.collections = tuple(spec.collections) + (GraphKeys.MODEL_VARIABLES,)


def _spec_of(g, var) -> VariableSpec:
    if isinstance(var, VariableSpec):
        return var
    name = var.node.name if isinstance(var, Tensor) else str(var).split(":")[0]
    try:
        return g.variables[name]
    except KeyError:
        raise ValueError(f"{name!r} is not a variable of this graph") from None


def add_to_variable_collections(var: Tensor, collections) -> None:
    """Add a created variable to extra collections (TF-Slim's variables_collections)."""
    if not collections:
        return
    if isinstance(collections, str):
        collections = [collections]
    g = var.graph
    spec = _spec_of(g, var)
    for c in collections:
        if spec not in g.get_collection(c):
            g.add_to_collection(c, spec)
        if c not in spec.collections:
            spec.collections = tuple(spec.collections) + (c,)


# -- graph-level queries -------------------------------------------------------------------
def _filter(collection, scope=None, suffix=None, graph=None):
    g = graph or get_default_graph()
    if isinstance(scope, VariableScope):
        scope = scope.name
    if suffix is not None:
        if ":" not in suffix:
            suffix += ":"
        scope = (scope or "") + ".*" + suffix
    items = g.get_collection(collection)
    if scope is None:
        return items
    pattern = re.compile(scope)
    return [v for v in items if pattern.match(v.name + ":0")]


def get_variables(scope=None, suffix=None, collection=GraphKeys.GLOBAL_VARIABLES):
    """VariableSpecs of `collection` in creation order, filtered by scope regex (re.match) and suffix."""
    return _filter(collection, scope, suffix)


def get_model_variables(scope=None, suffix=None):
    return _filter(GraphKeys.MODEL_VARIABLES, scope, suffix)


def get_trainable_variables(scope=None, suffix=None):
    return _filter(GraphKeys.TRAINABLE_VARIABLES, scope, suffix)


def get_local_variables(scope=None, suffix=None):
    return _filter(GraphKeys.LOCAL_VARIABLES, scope, suffix)


def get_variables_to_restore(include=None, exclude=None):
    """Variables under any `include` scope (all if None) and under no `exclude` scope."""
    if include is None:
        candidates = get_variables()
    else:
        if not isinstance(include, (list, tuple)):
            raise TypeError("include is provided but is not a list or a tuple.")
        candidates = []
        for scope in include:
            candidates += get_variables(scope)
    excluded = []
    if exclude is not None:
        if not isinstance(exclude, (list, tuple)):
            raise TypeError("exclude is provided but is not a list or a tuple.")
        for scope in exclude:
            excluded += get_variables(scope)
    return [v for v in _dedupe(candidates) if v not in excluded]


def get_variables_by_suffix(suffix, scope=None):
    return get_variables(scope=scope, suffix=suffix)


def get_variables_by_name(given_name, scope=None):
    suffix = "/" + given_name + ":|^" + given_name + ":"
    return get_variables(scope=scope, suffix=suffix)


def get_unique_variable(var_op_name):
    """The one variable named exactly `var_op_name` (ValueError if there is none)."""
    candidates = get_variables(scope=var_op_name)
    for c in candidates:
        if c.name == var_op_name:
            return c
    raise ValueError(f"Variable {var_op_name} does not uniquely identify a variable")
