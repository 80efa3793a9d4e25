"""The lowering table: `LOWERINGS[op](node) -> Lowered`, one Triton kernel call per node.

A `Lowered` names the kernel, the nodes it reads (activations and parameters, each with
how a parameter is prepared: packed conv weights, per-channel vectors, scalars) and a
`call(get, out, offset, precision)` that launches the kernel (`get(node)` returns the
tensor for an input node). `supports_out` tells whether the kernel can write into a
channel slice of a wider buffer (concat elimination, memory planning).

An op the Triton backend cannot run raises `NotImplementedError` naming the op and the
scope when the plan is built (compile time), never at run time; nothing falls back to
torch ops (reshape is a view, not a kernel).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from ..fusion.common import epilogue_operands
from ..ir.node import Node
from ..ir.ops import ACTIVATION_OPS, Op, node_act

# How a parameter node is prepared once, at compile time (see runtime.executor).
PREP_CONV = "conv2d"            # kernels.prepack_conv2d
PREP_DEPTHWISE = "depthwise"    # kernels.prepack_depthwise
PREP_TRANSPOSE = "conv2d_transpose"
PREP_MATMUL = "matmul"
PREP_VECTOR = "vector"          # per-channel scale/shift: float32 (the kernels load them as fp32)
PREP_TENSOR = "tensor"          # any other parameter read as an activation: compute dtype
PREP_SCALAR = "scalar"          # a CONSTANT, as a 0-d tensor of the compute dtype


@dataclasses.dataclass
class Lowered:
    kernel: str                      # kernels.<kernel> (or 'view' / 'concat')
    reads: tuple[Node, ...]          # every input node, in kernel-argument order
    prep: dict[str, str]             # parameter node name -> PREP_*
    call: Optional[Callable]         # (get, out, offset, precision) -> torch.Tensor
    supports_out: bool = True
    is_view: bool = False
    absorbed: tuple[Node, ...] = ()  # program nodes a plan pass merged into this kernel (no step of their own)
    read_shapes: Optional[tuple] = None  # per `reads` entry: the elements actually read (None: all)
    # a routed kernel (plan pass route_channel_slices): the CHANNEL_SLICE nodes it writes, in column
    # order; its `call(get, outs, precision)` takes one (buffer, channel offset) per slice
    routes: tuple[Node, ...] = ()


def _k():
    # Lazy on purpose: importing the kernels imports torch and triton (and sets the interpreter
    # without a GPU); planning and `slimtriton report` lower a net without either.
    from .. import kernels
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


def _epilogue(node: Node, get):
    a = node.attrs
    kw = {role: None if is_neutral(role, n) else get(n) for role, n in epilogue_operands(node).items()}
    kw.update(act=a["act"], act2=a["act2"], residual_scale=float(a["residual_scale"]))
    if a.get("prologue"):
        kw["prologue_act"] = a["prologue_act"]
    return kw


def _vector_preps(node: Node) -> dict[str, str]:
    """Epilogue/prologue vectors of a fused node (the residual is an activation)."""
    return {n.name: PREP_VECTOR for role, n in _operands(node).items()
            if role != "residual" and n.op is Op.VARIABLE}


def _lower_fused_gemm(kernel: str, prep_kind: str, geometry: Callable, precision_arg: bool = True):
    def lower(node: Node) -> Lowered:
        fn = kernel_fn(kernel, node)
        w = node.inputs[1]
        if w.op is not Op.VARIABLE:
            unsupported(node, f"its weights {w.name} are computed at run time ({w.op.short}); "
                              f"the kernels take packed parameter weights")
        prep = {w.name: prep_kind, **_vector_preps(node)}

        strides = tuple(node.attrs.get("residual_strides", (1, 1)))
        extra = {"residual_strides": strides} if strides != (1, 1) else {}
        reads = _kept_reads(node)
        read_shapes = None
        if extra:  # a strided residual reads the output's cells of its input only (byte model)
            residual = epilogue_operands(node)["residual"]
            read_shapes = tuple(node.shape if n is residual else None for n in reads)

        def call(get, out, offset, precision):
            kw = dict(geometry(node.attrs), **_epilogue(node, get), out=out, out_channel_offset=offset,
                      name=node.name, **extra)
            if precision_arg:
                kw["precision"] = precision
            return fn(get(node.inputs[0]), get(w), **kw)
        return Lowered(kernel, reads, prep, call, read_shapes=read_shapes)
    return lower


def lower_routed_conv2d(node: Node, slices) -> Lowered:
    """A FUSED_CONV2D read only by CHANNEL_SLICEs covering its channels (fusion/horizontal.py) as
    kernels.conv2d_routed: each slice's channels go straight to that slice's destination, the
    wide output is never stored."""
    plain = LOWERINGS[Op.FUSED_CONV2D](node)
    fn = kernel_fn("conv2d_routed", node)
    w = node.inputs[1]

    def call(get, outs, precision):
        kw = _epilogue(node, get)
        del kw["act2"], kw["residual_scale"]  # no residual: the horizontal fusion pass merges none
        dests = [(out, offset, s.shape[-1]) for (out, offset), s in zip(outs, slices)]
        return fn(get(node.inputs[0]), get(w), destinations=dests, **_conv_geometry(node.attrs), **kw,
                  precision=precision, name=node.name)
    return dataclasses.replace(plain, kernel="conv2d_routed", call=call, routes=tuple(slices))


def _lower_channel_slice(node: Node) -> Lowered:
    """Launches nothing: the slice's producer is a routed wide conv (plan pass route_channel_slices)
    that writes it; a CHANNEL_SLICE of anything else is not run by the Triton backend."""
    return Lowered("channel_slice", node.inputs, {}, None)


def _conv_geometry(a):
    return dict(strides=a["strides"], padding=a["padding"], dilations=a["dilations"])


def _lower_mean_matmul(node: Node) -> Lowered:
    """FUSED_MEAN_MATMUL: kernels.mean_matmul (the mean over H, W computed while loading A)."""
    fn = kernel_fn("mean_matmul", node)
    x, w = node.inputs[:2]
    if w.op is not Op.VARIABLE:
        unsupported(node, f"its weights {w.name} are computed at run time ({w.op.short}); "
                          f"the kernels take packed parameter weights")
    prep = {w.name: PREP_CONV if len(w.shape) == 4 else PREP_MATMUL, **_vector_preps(node)}

    def call(get, out, offset, precision):
        kw = _epilogue(node, get)
        del kw["act2"], kw["residual_scale"]  # no residual: the kernel takes neither
        return fn(get(x), get(w), keepdims=bool(node.attrs["keepdims"]), out=out, out_channel_offset=offset,
                  precision=precision, name=node.name, **kw)
    return Lowered("mean_matmul", _kept_reads(node), prep, call)


def _lower_window_conv2d(node: Node) -> Lowered:
    """FUSED_WINDOW_CONV2D: kernels.window_conv2d (the avg pool / depthwise window in the A load)."""
    fn = kernel_fn("window_conv2d", node)
    a = node.attrs
    w = node.inputs[1]
    win = node.inputs[4:]  # depthwise: win_w, win_scale, win_shift
    for p in (w,) + win[:1]:
        if p.op is not Op.VARIABLE:
            unsupported(node, f"its weights {p.name} are computed at run time ({p.op.short}); "
                              f"the kernels take packed parameter weights")
    prep = {w.name: PREP_CONV, **_vector_preps(node)}
    if win:
        prep[win[0].name] = PREP_DEPTHWISE
        prep.update({v.name: PREP_VECTOR for v in win[1:] if v.op is Op.VARIABLE})
    keep_win = tuple(v for role, v in zip(("win_w", "scale", "shift"), win)
                     if not is_neutral(role, v))

    def call(get, out, offset, precision):
        kw = dict(window=a["window"], ksize=a["ksize"], strides=a["win_strides"], padding=a["win_padding"],
                  dilations=a["win_dilations"], act=a["act"], out=out, out_channel_offset=offset,
                  precision=precision, name=node.name)
        for role, v in epilogue_operands(node).items():
            kw[role] = None if is_neutral(role, v) else get(v)
        if win:
            kw.update(win_w=get(win[0]), win_act=a["win_act"],
                      win_scale=None if is_neutral("scale", win[1]) else get(win[1]),
                      win_shift=None if is_neutral("shift", win[2]) else get(win[2]))
        return fn(get(node.inputs[0]), get(w), **kw)
    dropped = {id(v) for role, v in epilogue_operands(node).items() if is_neutral(role, v)}
    reads = tuple(v for v in node.inputs[:4] if id(v) not in dropped) + keep_win
    return Lowered("window_conv2d", reads, prep, call)


def _lower_elementwise(node: Node) -> Lowered:
    fn = kernel_fn("affine_act", node)

    def call(get, out, offset, precision):
        return fn(get(node.inputs[0]), **_epilogue(node, get), out=out, out_channel_offset=offset, name=node.name)
    return Lowered("affine_act", _kept_reads(node), _vector_preps(node), call)


def _lower_pool(kernel: str):
    def lower(node: Node) -> Lowered:
        fn = kernel_fn(kernel, node)
        a = node.attrs

        def call(get, out, offset, precision):
            return fn(get(node.inputs[0]), a["ksize"], a["strides"], a["padding"], out=out,
                      out_channel_offset=offset, name=node.name)
        return Lowered(kernel, node.inputs, {}, call)
    return lower


def _lower_reduce_mean(node: Node) -> Lowered:
    x = node.inputs[0]
    if len(x.shape) != 4 or tuple(node.attrs["axes"]) != (1, 2):
        unsupported(node, f"only the spatial mean (axes [1, 2] of an NHWC tensor) has a kernel; got axes "
                          f"{list(node.attrs['axes'])} of shape {list(x.shape)}")
    fn = kernel_fn("global_mean", node)
    keep = bool(node.attrs["keepdims"])

    def call(get, out, offset, precision):
        return fn(get(x), keepdims=keep, out=out, out_channel_offset=offset, name=node.name)
    return Lowered("global_mean", node.inputs, {}, call)


def _lower_softmax(node: Node) -> Lowered:
    if node.attrs["axis"] != len(node.shape) - 1:
        unsupported(node, f"softmax over axis {node.attrs['axis']} of shape {list(node.shape)}; "
                          f"the kernel normalizes the last axis")
    fn = kernel_fn("softmax", node)
    return Lowered("softmax", node.inputs, {}, lambda get, out, offset, p: fn(get(node.inputs[0]), name=node.name),
                   supports_out=False)


def _lower_unit_norm(node: Node) -> Lowered:
    fn = kernel_fn("unit_norm", node)
    a = node.attrs
    return Lowered("unit_norm", node.inputs, {},
                   lambda get, out, offset, p: fn(get(node.inputs[0]), a["axis"], a["epsilon"], name=node.name),
                   supports_out=False)


_BINARY = {Op.ADD: "add", Op.SUB: "sub", Op.MUL: "mul", Op.DIV: "div", Op.MAXIMUM: "maximum",
           Op.MINIMUM: "minimum"}


def _lower_binary(node: Node) -> Lowered:
    fn = kernel_fn("binary", node)
    name = "add" if node.op is Op.BIAS_ADD else _BINARY[node.op]
    a, b = node.inputs
    return Lowered("binary", node.inputs, {}, lambda get, out, offset, p: fn(name, get(a), get(b), name=node.name),
                   supports_out=False)


def _lower_unary(node: Node) -> Lowered:
    """An activation (its attribute value, e.g. ("leaky_relu", 0.2)) or neg, as kernels.unary."""
    fn = kernel_fn("unary", node)
    op = "neg" if node.op is Op.NEG else node_act(node)
    return Lowered("unary", node.inputs, {},
                   lambda get, out, offset, p: fn(op, get(node.inputs[0]), name=node.name),
                   supports_out=False)


def _lower_pad(node: Node) -> Lowered:
    fn = kernel_fn("pad", node)
    a = node.attrs
    return Lowered("pad", node.inputs, {},
                   lambda get, out, offset, p: fn(get(node.inputs[0]), a["paddings"], value=float(a.get("value", 0.0)),
                                                  name=node.name),
                   supports_out=False)


def _lower_reshape(node: Node) -> Lowered:
    shape = tuple(node.shape)
    return Lowered("view", node.inputs, {}, lambda get, out, offset, p: get(node.inputs[0]).reshape(shape),
                   supports_out=False, is_view=True)


def _lower_concat(node: Node) -> Lowered:
    if node.attrs["axis"] != len(node.shape) - 1:
        unsupported(node, f"concat along axis {node.attrs['axis']} of shape {list(node.shape)}; only the "
                          f"channel (last) axis is written in place / copied by the kernels")
    kernel_fn("copy_channels", node)  # needed for inputs that cannot be written in place
    return Lowered("concat", node.inputs, {}, None)


def _training_only(why: str):
    def lower(node: Node):
        unsupported(node, why)
    return lower


def _bias_or_bn(node: Node) -> Lowered:
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

LOWERINGS: dict[Op, Callable[[Node], Lowered]] = {
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
