"""The lowering table: `LOWERINGS[op](node) -> Step`, one Triton kernel call per node, as data.

A lowering returns the node's `Step` (slimtriton.runtime.step): the kernel's name, its
arguments (a `Node` where the kernel reads that node's tensor, plain values for geometry,
epilogue activations and the layer name; None for an epilogue operand the kernel need not
load), whether it takes `out=` / `out_channel_offset=` (it can write a channel slice of a
wider buffer: concat elimination, memory planning) and `precision=`, every node it reads and
how each parameter is prepared once (packed conv weights, per-channel vectors, scalars).
Nothing is called here; the executor makes the call.

An op the Triton backend cannot run raises `NotImplementedError` naming the op and the
scope when the plan is built (compile time), never at run time; nothing falls back to
torch ops (reshape is a view, not a kernel).
"""
from __future__ import annotations

from typing import Callable

from ..fusion.common import epilogue_operands
from ..ir.node import Node
from ..ir.ops import ACTIVATION_OPS, Op, node_act
from .step import CONCAT, SLICE, VIEW, Output, Step

# How a parameter node is prepared once, at compile time (see runtime.executor).
PREP_CONV = "conv2d"            # kernels.prepack_conv2d
PREP_DEPTHWISE = "depthwise"    # kernels.prepack_depthwise
PREP_TRANSPOSE = "conv2d_transpose"
PREP_MATMUL = "matmul"
PREP_VECTOR = "vector"          # per-channel scale/shift: float32 (the kernels load them as fp32)
PREP_TENSOR = "tensor"          # any other parameter read as an activation: compute dtype
PREP_SCALAR = "scalar"          # a CONSTANT, as a 0-d tensor of the compute dtype


def _k():
    # Importing the kernels imports torch and triton (and sets the interpreter without a GPU);
    # planning and `slimtriton report` lower a net without either.
    from .. import kernels  # lazy: imports torch and triton
    return kernels


def kernel_fn(name: str, node: Node):
    """kernels.<name>, or NotImplementedError naming the op and scope when it does not exist."""
    fn = getattr(_k(), name, None)
    if fn is None:
        raise NotImplementedError(
            f"{node.name} ({node.op.short}): the triton backend needs kernels.{name}, which the kernels "
            f"package does not provide")
    return fn


def unsupported(node: Node, why: str):
    raise NotImplementedError(f"the triton backend cannot run {node.op.short} at {node.name}: {why}")


# A constant epilogue operand the kernels need not load: a scale of 1 (e.g. BN folded fully into
# the weights) or a shift of 0 is passed as None (HAS_SCALE / HAS_SHIFT = False).
_NEUTRAL_FILL = {"scale": 1.0, "shift": 0.0}


def is_neutral(role: str, operand: Node) -> bool:
    """`operand` (the epilogue's `role` input) is a constant fill that changes nothing."""
    return (role in _NEUTRAL_FILL and operand.op is Op.VARIABLE
            and operand.attrs.get("fill") == _NEUTRAL_FILL[role])


def _operands(node: Node) -> dict:
    """The epilogue / prologue operands the kernel reads, neutral fills left out."""
    return {role: n for role, n in epilogue_operands(node).items() if not is_neutral(role, n)}


def _kept_reads(node: Node) -> tuple:
    """node.inputs without the neutral fills (not prepared, not loaded, not charged as bytes)."""
    dropped = {id(n) for role, n in epilogue_operands(node).items() if is_neutral(role, n)}
    return tuple(n for n in node.inputs if id(n) not in dropped)


def _epilogue(node: Node) -> dict:
    """The epilogue (and prologue) keyword arguments of a fused node: each operand by role (None
    for a neutral fill), the activations and the residual scale."""
    a = node.attrs
    kw = {role: None if is_neutral(role, n) else n for role, n in epilogue_operands(node).items()}
    kw.update(act=a["act"], act2=a["act2"], residual_scale=float(a["residual_scale"]))
    if a.get("prologue"):
        kw["prologue_act"] = a["prologue_act"]
    return kw


def _kernel_step(node: Node, kernel: str, args: tuple, kwargs: dict | None = None, inputs=None, prep=None,
                 takes_out: bool = True, takes_precision: bool = False, read_shapes=None) -> Step:
    """The step of `node` calling kernels.<kernel>(*args, **kwargs, name=node.name)."""
    return Step(kernel, (Output.of(node),), tuple(args), {**(kwargs or {}), "name": node.name},
                takes_out=takes_out, takes_precision=takes_precision,
                inputs=tuple(node.inputs if inputs is None else inputs), read_shapes=read_shapes, prep=prep or {})


def _vector_preps(node: Node) -> dict[str, str]:
    """Epilogue/prologue vectors of a fused node (the residual is an activation)."""
    return {n.name: PREP_VECTOR for role, n in _operands(node).items()
            if role != "residual" and n.op is Op.VARIABLE}


def _packed_weights(node: Node, *weights: Node) -> None:
    """The kernels read weights packed once at compile time: each must be a parameter."""
    for w in weights:
        if w.op is not Op.VARIABLE:
            unsupported(node, f"its weights {w.name} are computed at run time ({w.op.short}); "
                              f"the kernels take packed parameter weights")


def _lower_fused_gemm(kernel: str, prep_kind: str, geometry: Callable, precision_arg: bool = True):
    def lower(node: Node) -> Step:
        x, w = node.inputs[:2]
        _packed_weights(node, w)
        strides = tuple(node.attrs.get("residual_strides", (1, 1)))
        extra = {"residual_strides": strides} if strides != (1, 1) else {}
        reads = _kept_reads(node)
        read_shapes = None
        if extra:  # a strided residual reads the output's cells of its input only (byte model)
            residual = epilogue_operands(node)["residual"]
            read_shapes = tuple(node.shape if n is residual else None for n in reads)
        return _kernel_step(node, kernel, (x, w), {**geometry(node.attrs), **_epilogue(node), **extra},
                            inputs=reads, prep={w.name: prep_kind, **_vector_preps(node)},
                            takes_precision=precision_arg, read_shapes=read_shapes)
    return lower


def _lower_channel_slice(node: Node) -> Step:
    """No kernel of its own: plan pass route_channel_slices makes it an output of the routed step
    of its wide conv (fusion/horizontal.py), which writes it; a CHANNEL_SLICE of anything else is
    refused there (NotImplementedError naming it)."""
    x = node.inputs[0]
    return Step(SLICE, (Output.of(node),), (x,), {"begin": node.attrs["begin"], "size": node.attrs["size"],
                                                  "act": node.attrs.get("act", "none")}, inputs=(x,))


def _conv_geometry(a):
    return dict(strides=a["strides"], padding=a["padding"], dilations=a["dilations"])


def _lower_mean_matmul(node: Node) -> Step:
    """FUSED_MEAN_MATMUL: kernels.mean_matmul (the mean over H, W computed while loading A)."""
    x, w = node.inputs[:2]
    _packed_weights(node, w)
    kw = _epilogue(node)
    del kw["act2"], kw["residual_scale"]  # no residual: the kernel takes neither
    return _kernel_step(node, "mean_matmul", (x, w), {"keepdims": bool(node.attrs["keepdims"]), **kw},
                        inputs=_kept_reads(node), takes_precision=True,
                        prep={w.name: PREP_CONV if len(w.shape) == 4 else PREP_MATMUL, **_vector_preps(node)})


def _lower_window_conv2d(node: Node) -> Step:
    """FUSED_WINDOW_CONV2D: kernels.window_conv2d (the avg pool / depthwise window in the A load)."""
    a = node.attrs
    x, w = node.inputs[:2]
    win = node.inputs[4:]  # depthwise: win_w, win_scale, win_shift
    _packed_weights(node, w, *win[:1])
    prep = {w.name: PREP_CONV, **_vector_preps(node)}
    kw = dict(window=a["window"], ksize=a["ksize"], strides=a["win_strides"], padding=a["win_padding"],
              dilations=a["win_dilations"], act=a["act"])
    kw.update({role: None if is_neutral(role, v) else v for role, v in epilogue_operands(node).items()})
    if win:
        prep[win[0].name] = PREP_DEPTHWISE
        prep.update({v.name: PREP_VECTOR for v in win[1:] if v.op is Op.VARIABLE})
        kw.update(win_w=win[0], win_act=a["win_act"],
                  win_scale=None if is_neutral("scale", win[1]) else win[1],
                  win_shift=None if is_neutral("shift", win[2]) else win[2])
    keep_win = tuple(v for role, v in zip(("win_w", "scale", "shift"), win) if not is_neutral(role, v))
    dropped = {id(v) for role, v in epilogue_operands(node).items() if is_neutral(role, v)}
    reads = tuple(v for v in node.inputs[:4] if id(v) not in dropped) + keep_win
    return _kernel_step(node, "window_conv2d", (x, w), kw, inputs=reads, prep=prep, takes_precision=True)


def _lower_elementwise(node: Node) -> Step:
    return _kernel_step(node, "affine_act", node.inputs[:1], _epilogue(node), inputs=_kept_reads(node),
                        prep=_vector_preps(node))


def _lower_pool(kernel: str):
    def lower(node: Node) -> Step:
        a = node.attrs
        return _kernel_step(node, kernel, (node.inputs[0], a["ksize"], a["strides"], a["padding"]))
    return lower


def _lower_reduce_mean(node: Node) -> Step:
    x = node.inputs[0]
    if len(x.shape) != 4 or tuple(node.attrs["axes"]) != (1, 2):
        unsupported(node, f"only the spatial mean (axes [1, 2] of an NHWC tensor) has a kernel; got axes "
                          f"{list(node.attrs['axes'])} of shape {list(x.shape)}")
    return _kernel_step(node, "global_mean", (x,), {"keepdims": bool(node.attrs["keepdims"])})


def _lower_softmax(node: Node) -> Step:
    if node.attrs["axis"] != len(node.shape) - 1:
        unsupported(node, f"softmax over axis {node.attrs['axis']} of shape {list(node.shape)}; "
                          f"the kernel normalizes the last axis")
    return _kernel_step(node, "softmax", node.inputs[:1], takes_out=False)


def _lower_unit_norm(node: Node) -> Step:
    a = node.attrs
    return _kernel_step(node, "unit_norm", (node.inputs[0], a["axis"], a["epsilon"]), takes_out=False)


_BINARY = {Op.ADD: "add", Op.SUB: "sub", Op.MUL: "mul", Op.DIV: "div", Op.MAXIMUM: "maximum",
           Op.MINIMUM: "minimum"}


def _lower_binary(node: Node) -> Step:
    name = "add" if node.op is Op.BIAS_ADD else _BINARY[node.op]
    a, b = node.inputs
    return _kernel_step(node, "binary", (name, a, b), takes_out=False)


def _lower_unary(node: Node) -> Step:
    """An activation (its attribute value, e.g. ("leaky_relu", 0.2)) or neg, as kernels.unary."""
    op = "neg" if node.op is Op.NEG else node_act(node)
    return _kernel_step(node, "unary", (op, node.inputs[0]), takes_out=False)


def _lower_pad(node: Node) -> Step:
    a = node.attrs
    return _kernel_step(node, "pad", (node.inputs[0], a["paddings"]), {"value": float(a.get("value", 0.0))},
                        takes_out=False)


def _lower_reshape(node: Node) -> Step:
    """A view of its input (no kernel, no bytes): the executor reshapes the input's tensor."""
    return Step(VIEW, (Output.of(node),), args=node.inputs[:1], inputs=node.inputs)


def _lower_concat(node: Node) -> Step:
    """The concat's buffer (no kernel): eliminate_concats makes its inputs write into it."""
    if node.attrs["axis"] != len(node.shape) - 1:
        unsupported(node, f"concat along axis {node.attrs['axis']} of shape {list(node.shape)}; only the "
                          f"channel (last) axis is written in place / copied by the kernels")
    kernel_fn("copy_channels", node)  # needed for inputs that cannot be written in place
    return Step(CONCAT, (Output.of(node),))


def _training_only(why: str):
    def lower(node: Node):
        unsupported(node, why)
    return lower


def _bias_or_bn(node: Node) -> Step:
    if node.op is Op.BATCH_NORM:
        if node.attrs["is_training"]:
            unsupported(node, "training-mode batch norm (batch statistics) is not supported; build the net "
                              "with is_training=False")
        unsupported(node, "inference batch norm whose parameters are computed at run time")
    return _lower_binary(node)


def _dropout(node: Node):
    if node.attrs["is_training"]:
        unsupported(node, f"dropout with is_training=True (keep_prob={node.attrs['keep_prob']}) is random; "
                          f"build the net with is_training=False")
    return _lower_reshape(node)


# Ops LOWERINGS leaves out on purpose, and why (tests/test_architecture.py: every op is in one).
NOT_LOWERED = {
    Op.PLACEHOLDER: "a feed: its buffer is the caller's input, no kernel",
    Op.VARIABLE: "a parameter: prepared once at compile time (PREP_*), no kernel",
    Op.CONSTANT: "a scalar: prepared once (PREP_SCALAR) and read by its consumer's kernel",
    Op.CONV2D: "always lifted to FUSED_CONV2D by the epilogue pass before lowering",
    Op.DEPTHWISE_CONV2D: "always lifted to FUSED_DEPTHWISE_CONV2D by the epilogue pass before lowering",
    Op.CONV2D_TRANSPOSE: "always lifted to FUSED_CONV2D_TRANSPOSE by the epilogue pass before lowering",
    Op.MATMUL: "always lifted to FUSED_MATMUL by the epilogue pass before lowering",
}

LOWERINGS: dict[Op, Callable[[Node], Step]] = {
    Op.FUSED_CONV2D: _lower_fused_gemm("conv2d", PREP_CONV, _conv_geometry),
    Op.FUSED_DEPTHWISE_CONV2D: _lower_fused_gemm("depthwise_conv2d", PREP_DEPTHWISE, _conv_geometry,
                                                 precision_arg=False),
    Op.FUSED_CONV2D_TRANSPOSE: _lower_fused_gemm(
        "conv2d_transpose", PREP_TRANSPOSE,
        lambda a: dict(strides=a["strides"], pad_before=a["pad_before"], output_hw=a["output_hw"])),
    Op.FUSED_MATMUL: _lower_fused_gemm("matmul", PREP_MATMUL, lambda a: {}),
    Op.FUSED_ELEMENTWISE: _lower_elementwise,
    Op.FUSED_WINDOW_CONV2D: _lower_window_conv2d,
    Op.FUSED_MEAN_MATMUL: _lower_mean_matmul,
    Op.MAX_POOL: _lower_pool("max_pool2d"),
    Op.AVG_POOL: _lower_pool("avg_pool2d"),
    Op.REDUCE_MEAN: _lower_reduce_mean,
    Op.SOFTMAX: _lower_softmax,
    Op.UNIT_NORM: _lower_unit_norm,
    **{op: _lower_binary for op in _BINARY},
    Op.BIAS_ADD: _bias_or_bn,
    Op.BATCH_NORM: _bias_or_bn,
    Op.NEG: _lower_unary,
    **{op: _lower_unary for op in ACTIVATION_OPS},
    Op.IDENTITY: _lower_reshape,
    Op.DROPOUT: _dropout,
    Op.RESHAPE: _lower_reshape,
    Op.CONCAT: _lower_concat,
    Op.CHANNEL_SLICE: _lower_channel_slice,
    Op.PAD: _lower_pad,
    Op.TILE: _training_only("tile of an activation has no kernel (a tile of weights is folded at compile time)"),
    Op.ONE_HOT: _training_only("one_hot of run-time labels has no kernel"),
}
