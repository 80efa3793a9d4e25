"""The op vocabulary of the layer IR: one enum, grouped.

Every interpretation of the IR (shape rules, the NumPy reference, the torch
executor, the Triton lowerings) is a table keyed by `Op`; a missing entry
raises `NotImplementedError` naming the op (see `lookup`).

Attributes per op (all values immutable: ints, floats, strs, bools, tuples):

  PLACEHOLDER       shape, dtype
  VARIABLE          var (TF-Slim variable name), shape, dtype
  CONSTANT          value (python scalar), dtype                    -> shape ()
  ADD SUB MUL DIV MAXIMUM MINIMUM   numpy broadcasting, equal dtypes
  NEG RELU RELU6 SIGMOID TANH IDENTITY
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
    RELU = (Group.ELEMENTWISE, "relu")
    RELU6 = (Group.ELEMENTWISE, "relu6")
    SIGMOID = (Group.ELEMENTWISE, "sigmoid")
    TANH = (Group.ELEMENTWISE, "tanh")
    IDENTITY = (Group.ELEMENTWISE, "identity")
    BIAS_ADD = (Group.ELEMENTWISE, "bias_add")
    DROPOUT = (Group.ELEMENTWISE, "dropout")

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


ELEMENTWISE_BINARY = frozenset({Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.MAXIMUM, Op.MINIMUM})
ELEMENTWISE_UNARY = frozenset({Op.NEG, Op.RELU, Op.RELU6, Op.SIGMOID, Op.TANH, Op.IDENTITY})
ACTIVATIONS = frozenset({Op.RELU, Op.RELU6, Op.SIGMOID, Op.TANH, Op.IDENTITY})


def lookup(table: dict, op: Op, table_name: str):
    """Fetch `table[op]`, raising a NotImplementedError that names the op and the table."""
    try:
        return table[op]
    except KeyError:
        raise NotImplementedError(f"{table_name} has no entry for {op!r}") from None
