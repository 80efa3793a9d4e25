"""The op vocabulary of the layer IR: one enum, grouped.

Every interpretation of the IR (shape rules, the NumPy reference, the torch
executor, the Triton lowerings) is a table keyed by `Op`; a missing entry
raises `NotImplementedError` naming the op (see `lookup`).

Attributes per op (all values immutable: ints, floats, strs, bools, tuples):

  PLACEHOLDER       shape, dtype
  VARIABLE          var (TF-Slim variable name), shape, dtype
  CONSTANT          value (python scalar), dtype                    -> shape ()
  ADD SUB MUL DIV MAXIMUM MINIMUM   numpy broadcasting, equal dtypes
  NEG IDENTITY
  RELU RELU6 SIGMOID TANH ELU SWISH   activations (Group.ACTIVATION; one per `Act`, same member name)
  LEAKY_RELU        alpha (x if x > 0 else alpha * x)
  BIAS_ADD          (x, biases[C])
  DROPOUT           keep_prob, is_training
  BATCH_NORM        (x, mean, variance[, gamma][, beta]); epsilon, center, scale, is_training
  CONV2D            (x NHWC, w[kh,kw,cin,cout]); strides (sh,sw), padding ((t,b),(l,r)), dilations (dh,dw)
  DEPTHWISE_CONV2D  (x, w[kh,kw,cin,dm]); strides, padding, dilations   -> C = cin*dm, channel c*dm+m
  CONV2D_TRANSPOSE  (x, w[kh,kw,cout,cin]); strides, pad_before (pt,pl), output_hw (oh,ow)
                    out[o] += x[i] * w[k] where o = i*stride + k - pad_before
  MATMUL            (x[..., K], w[K, N]) -> [..., N]
  MAX_POOL AVG_POOL ksize (kh,kw), strides, padding ((t,b),(l,r)); padded cells ignored
  REDUCE_MEAN       axes (sorted, non-negative), keepdims
  SOFTMAX           axis (non-negative)
  UNIT_NORM         axis (non-negative), epsilon: x / sqrt(eps + sum(x^2, axis))
  RESHAPE           shape
  CONCAT            axis (non-negative), variadic inputs
  CHANNEL_SLICE     begin, size, act: act(x[..., begin:begin + size]) (the last axis; act "none" or any
                    activation value). Made by the horizontal fusion pass: each branch's channels of a
                    wide sibling-conv GEMM, which writes every slice to its own destination (the wide
                    tensor is never stored); act is the branch's own activation when siblings differ
  PAD               paddings ((before, after) per axis), value
  TILE              multiples
  ONE_HOT           depth, on_value, off_value, dtype (input: integer labels)

Fused ops are produced by slimtriton.fusion; their attributes are documented in
slimtriton/fusion/fused_ops.md and they are interpreted by the same tables.
"""
from __future__ import annotations

import enum


class Group(enum.Enum):
    SOURCE = "source"
    ELEMENTWISE = "elementwise"
    ACTIVATION = "activation"
    NORMALIZATION = "normalization"
    CONVOLUTION = "convolution"
    POOLING = "pooling"
    REDUCTION = "reduction"
    SHAPE = "shape"
    FUSED = "fused"


class Op(enum.Enum):
    # value = (group, short name used in printouts)
    PLACEHOLDER = (Group.SOURCE, "placeholder")
    VARIABLE = (Group.SOURCE, "variable")
    CONSTANT = (Group.SOURCE, "constant")

    ADD = (Group.ELEMENTWISE, "add")
    SUB = (Group.ELEMENTWISE, "sub")
    MUL = (Group.ELEMENTWISE, "mul")
    DIV = (Group.ELEMENTWISE, "div")
    MAXIMUM = (Group.ELEMENTWISE, "maximum")
    MINIMUM = (Group.ELEMENTWISE, "minimum")
    NEG = (Group.ELEMENTWISE, "neg")
    IDENTITY = (Group.ELEMENTWISE, "identity")
    BIAS_ADD = (Group.ELEMENTWISE, "bias_add")
    DROPOUT = (Group.ELEMENTWISE, "dropout")

    # One op per activation (`Act`, below): same member name, same short name.
    RELU = (Group.ACTIVATION, "relu")
    RELU6 = (Group.ACTIVATION, "relu6")
    SIGMOID = (Group.ACTIVATION, "sigmoid")
    TANH = (Group.ACTIVATION, "tanh")
    ELU = (Group.ACTIVATION, "elu")
    LEAKY_RELU = (Group.ACTIVATION, "leaky_relu")
    SWISH = (Group.ACTIVATION, "swish")

    BATCH_NORM = (Group.NORMALIZATION, "batch_norm")
    UNIT_NORM = (Group.NORMALIZATION, "unit_norm")
    SOFTMAX = (Group.NORMALIZATION, "softmax")

    CONV2D = (Group.CONVOLUTION, "conv2d")
    DEPTHWISE_CONV2D = (Group.CONVOLUTION, "depthwise_conv2d")
    CONV2D_TRANSPOSE = (Group.CONVOLUTION, "conv2d_transpose")
    MATMUL = (Group.CONVOLUTION, "matmul")

    MAX_POOL = (Group.POOLING, "max_pool")
    AVG_POOL = (Group.POOLING, "avg_pool")

    REDUCE_MEAN = (Group.REDUCTION, "reduce_mean")

    RESHAPE = (Group.SHAPE, "reshape")
    CONCAT = (Group.SHAPE, "concat")
    CHANNEL_SLICE = (Group.SHAPE, "channel_slice")
    PAD = (Group.SHAPE, "pad")
    TILE = (Group.SHAPE, "tile")
    ONE_HOT = (Group.SHAPE, "one_hot")

    # Produced by fusion passes (see slimtriton/fusion/fused_ops.md).
    FUSED_CONV2D = (Group.FUSED, "fused_conv2d")
    FUSED_DEPTHWISE_CONV2D = (Group.FUSED, "fused_depthwise_conv2d")
    FUSED_CONV2D_TRANSPOSE = (Group.FUSED, "fused_conv2d_transpose")
    FUSED_MATMUL = (Group.FUSED, "fused_matmul")
    FUSED_ELEMENTWISE = (Group.FUSED, "fused_elementwise")
    FUSED_WINDOW_CONV2D = (Group.FUSED, "fused_window_conv2d")  # 1x1 conv of avg_pool / depthwise(x)
    FUSED_MEAN_MATMUL = (Group.FUSED, "fused_mean_matmul")

    @property
    def group(self) -> Group:
        return self.value[0]

    @property
    def short(self) -> str:
        return self.value[1]

    def __repr__(self) -> str:  # Op.CONV2D
        return f"Op.{self.name}"


def ops_in(group: Group) -> frozenset[Op]:
    return frozenset(op for op in Op if op.group is group)


# -- op groups (as tinygrad's GroupOp): every "which ops are ..." question is answered here ----
SOURCE_OPS = ops_in(Group.SOURCE)                        # no inputs: placeholder, variable, constant
PARAMETER_OPS = frozenset({Op.VARIABLE, Op.CONSTANT})    # sources known at compile time (not fed)
ACTIVATION_OPS = ops_in(Group.ACTIVATION)
ELEMENTWISE_BINARY = frozenset({Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.MAXIMUM, Op.MINIMUM})
ELEMENTWISE_UNARY = frozenset({Op.NEG, Op.IDENTITY}) | ACTIVATION_OPS
VIEW_OPS = frozenset({Op.RESHAPE, Op.IDENTITY})          # no kernel: a view of the input
CONV_OPS = ops_in(Group.CONVOLUTION)                     # the ops a FUSED_* op is built on
FUSED_OPS = ops_in(Group.FUSED)
# ops an extern-conv compiler (torch.compile's default) fuses into one pointwise kernel (report.py)
POINTWISE_OPS = (ELEMENTWISE_BINARY | ELEMENTWISE_UNARY | {Op.BIAS_ADD, Op.BATCH_NORM, Op.PAD}) - {Op.IDENTITY}


class Act(str, enum.Enum):
    """The one activation vocabulary: recorded activation ops (`Act.op`), the `act` / `act2` /
    `prologue_act` attributes of fused ops, the kernels' activation argument.

    A member is a `str` (its value, the name used in attrs, kernels and printouts: "relu").
    `flops`: nominal FLOPs per element (ir/cost.py). `param`: (name, default) of its one
    parameter, or None. `tf_names`: the TF function names that record it (`tf.nn.<name>`).

    Each interpretation keys its formula by this enum, in the module that owns it, with a
    completeness test over every member: reference/numpy_ops.py `ACTIVATIONS` (the
    definition, NaN semantics included), eager/torch_backend.py `TORCH_ACTIVATIONS`,
    kernels/common.py `ACT_CODES` + `apply_act`.

    In attrs an activation is written `act_value(act, param)`: the plain name, or the pair
    (name, param) for an activation with a parameter (leaky relu's slope): immutable, and
    `!= "none"` exactly when there is an activation.
    """

    def __new__(cls, name: str, flops: int, tf_names: tuple = (), param=None):
        member = str.__new__(cls, name)
        member._value_ = name
        member.flops = flops
        member.tf_names = tf_names
        member.param = param
        return member

    NONE = ("none", 0)
    RELU = ("relu", 1, ("relu",))
    RELU6 = ("relu6", 1, ("relu6",))
    SIGMOID = ("sigmoid", 4, ("sigmoid",))
    TANH = ("tanh", 4, ("tanh",))
    ELU = ("elu", 4, ("elu",))
    LEAKY_RELU = ("leaky_relu", 2, ("leaky_relu",), ("alpha", 0.2))
    SWISH = ("swish", 5, ("swish", "silu"))

    @property
    def op(self) -> "Op":
        """The recorded activation op (Op.RELU for Act.RELU); NONE has none."""
        if self is Act.NONE:
            raise ValueError("Act.NONE has no op")
        return Op[self.name]

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"Act.{self.name}"


def act_of_op(op: Op) -> Act:
    """The activation an ACTIVATION-group op computes."""
    if op.group is not Group.ACTIVATION:
        raise ValueError(f"{op!r} is not an activation op")
    return Act[op.name]


def act_value(act: Act, param=None):
    """An activation as an attribute value: "relu", or ("leaky_relu", 0.2) for one with a parameter."""
    act = Act(act)
    if act.param is None:
        if param is not None:
            raise ValueError(f"activation {act.value!r} takes no parameter, got {param!r}")
        return act.value
    return (act.value, float(act.param[1] if param is None else param))


def node_act(node):
    """The attribute value of the activation a recorded activation node computes."""
    act = act_of_op(node.op)
    return act_value(act, node.attrs.get(act.param[0]) if act.param else None)


def parse_act(value, what: str = "activation") -> tuple[Act, float | None]:
    """(Act, parameter or None) of an attribute value; ValueError naming `what` otherwise."""
    name, param = (value if isinstance(value, tuple) and len(value) == 2 else (value, None))
    try:
        act = Act(name)
    except ValueError:
        raise ValueError(f"{what}: unknown activation {value!r}; expected one of "
                         f"{[a.value for a in Act]} (one with a parameter as (name, value))") from None
    if (act.param is None) != (param is None):
        need = f"a parameter ({act.value!r}, {act.param[0]})" if act.param else "no parameter"
        raise ValueError(f"{what}: activation {value!r} needs {need}")
    return act, (None if param is None else float(param))


def lookup(table: dict, op: Op, table_name: str):
    """Fetch `table[op]`, raising a NotImplementedError that names the op and the table."""
    try:
        return table[op]
    except KeyError:
        raise NotImplementedError(f"{table_name} has no entry for {op!r}") from None
