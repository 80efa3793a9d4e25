"""The cost model: FLOPs per node (one table keyed by op, `FLOPS`; `flops(node) -> int`) and
the byte model (`tensor_bytes`, `kernel_bytes`), which the report, the memory plan and the
prologue pass's byte-model decision all use.

Byte model: a kernel reads each of its inputs (activations, weights, per-channel vectors)
from DRAM once and writes each of its outputs once, all in the compute dtype.

Conventions: a multiply-add counts 2 FLOPs; an elementwise add/mul/compare counts 1 per
output element; data movement (reshape, concat, channel_slice, pad, tile, identity, variables) counts 0.

  CONV2D            2 * N*OH*OW*Cout * kh*kw*Cin
  DEPTHWISE_CONV2D  2 * N*OH*OW*(Cin*dm) * kh*kw
  CONV2D_TRANSPOSE  2 * N*H*W*Cin * kh*kw*Cout        (every input pixel scatters a kernel)
  MATMUL            2 * prod(out) * K
  BIAS_ADD, ADD, SUB, MUL, DIV, MAXIMUM, MINIMUM, NEG   1 per output element
  activations       `Act.flops` per element (ir/ops.py: relu, relu6 1; leaky_relu 2;
                    sigmoid, tanh, elu 4; swish 5 -- nominal counts of exp, add, divide, ...)
  BATCH_NORM        2 per element at inference (x*scale + shift after folding);
                    training adds the batch statistics: +3 per element (sum, square-sum, ...)
  DROPOUT           1 per element when training (the mask multiply), else 0
  MAX_POOL AVG_POOL kh*kw per output element
  REDUCE_MEAN       1 per input element
  SOFTMAX           5 per element (max, subtract, exp, sum, divide)
  UNIT_NORM         3 per element (square, sum, divide)
  fused ops         the base op + the epilogue: 2 (scale, shift) + the activation's flops
                    + 2 if residual (scale, add) + act2's, per output element; + 2 + the
                    prologue activation's per input element for a prologue.
"""
from __future__ import annotations

from math import prod

from .node import DTYPE_ITEMSIZE, Node
from .ops import ACTIVATION_OPS, Op, act_of_op, lookup, parse_act


def _zero(node: Node) -> int:
    return 0


def _per_output(k: int):
    def rule(node: Node) -> int:
        return k * prod(node.shape)
    return rule


def _conv2d(node: Node) -> int:
    w = node.inputs[1].shape  # [kh, kw, cin, cout]
    return 2 * prod(node.shape) * w[0] * w[1] * w[2]


def _depthwise(node: Node) -> int:
    w = node.inputs[1].shape  # [kh, kw, cin, dm]
    return 2 * prod(node.shape) * w[0] * w[1]


def _conv2d_transpose(node: Node) -> int:
    x, w = node.inputs[0].shape, node.inputs[1].shape  # w [kh, kw, cout, cin]
    return 2 * prod(x) * w[0] * w[1] * w[2]


def _matmul(node: Node) -> int:
    return 2 * prod(node.shape) * node.inputs[1].shape[0]


def _batch_norm(node: Node) -> int:
    return (5 if node.attrs.get("is_training") else 2) * prod(node.shape)


def _dropout(node: Node) -> int:
    return prod(node.shape) if node.attrs.get("is_training") else 0


def _pool(node: Node) -> int:
    kh, kw = node.attrs["ksize"]
    return prod(node.shape) * kh * kw


def _reduce_mean(node: Node) -> int:
    return prod(node.inputs[0].shape)


def _act_flops(node: Node, key: str) -> int:
    return parse_act(node.attrs.get(key, "none"), f"{node.name}: {key}")[0].flops


def _epilogue(node: Node) -> int:
    per = 2 + _act_flops(node, "act")
    if node.attrs.get("residual"):
        per += 2 + _act_flops(node, "act2")
    total = per * prod(node.shape)
    if node.attrs.get("prologue"):
        total += (2 + _act_flops(node, "prologue_act")) * prod(node.inputs[0].shape)
    return total


def _fused(base):
    def rule(node: Node) -> int:
        return (base(node) if base is not None else 0) + _epilogue(node)
    return rule


def _fused_window_conv2d(node: Node) -> int:
    """The window (pool adds, or depthwise multiply-adds + its affine/act), then the 1x1 GEMM."""
    kh, kw = node.attrs["ksize"]
    x, w = node.inputs[0], node.inputs[1]
    win = prod(node.shape[:3]) * x.shape[-1]
    per = kh * kw if node.attrs["window"] == "avg_pool" else 2 * kh * kw + 2 + _act_flops(node, "win_act")
    return win * per + 2 * prod(node.shape) * w.shape[2] + _epilogue(node)


FLOPS = {
    Op.PLACEHOLDER: _zero,
    Op.VARIABLE: _zero,
    Op.CONSTANT: _zero,
    Op.ADD: _per_output(1),
    Op.SUB: _per_output(1),
    Op.MUL: _per_output(1),
    Op.DIV: _per_output(1),
    Op.MAXIMUM: _per_output(1),
    Op.MINIMUM: _per_output(1),
    Op.NEG: _per_output(1),
    **{op: _per_output(act_of_op(op).flops) for op in ACTIVATION_OPS},
    Op.IDENTITY: _zero,
    Op.BIAS_ADD: _per_output(1),
    Op.DROPOUT: _dropout,
    Op.BATCH_NORM: _batch_norm,
    Op.UNIT_NORM: _per_output(3),
    Op.SOFTMAX: _per_output(5),
    Op.CONV2D: _conv2d,
    Op.DEPTHWISE_CONV2D: _depthwise,
    Op.CONV2D_TRANSPOSE: _conv2d_transpose,
    Op.MATMUL: _matmul,
    Op.MAX_POOL: _pool,
    Op.AVG_POOL: _pool,
    Op.REDUCE_MEAN: _reduce_mean,
    Op.RESHAPE: _zero,
    Op.CONCAT: _zero,
    Op.CHANNEL_SLICE: lambda n: prod(n.shape) * parse_act(n.attrs.get("act", "none"))[0].flops,
    Op.PAD: _zero,
    Op.TILE: _zero,
    Op.ONE_HOT: _zero,
    Op.FUSED_CONV2D: _fused(_conv2d),
    Op.FUSED_DEPTHWISE_CONV2D: _fused(_depthwise),
    Op.FUSED_CONV2D_TRANSPOSE: _fused(_conv2d_transpose),
    Op.FUSED_MATMUL: _fused(_matmul),
    Op.FUSED_ELEMENTWISE: _fused(None),
    Op.FUSED_WINDOW_CONV2D: _fused_window_conv2d,
    Op.FUSED_MEAN_MATMUL: _fused(lambda n: prod(n.inputs[0].shape) + 2 * prod(n.shape) * n.inputs[1].shape[-2]),
}

_missing = set(Op) - set(FLOPS)
assert not _missing, f"FLOPS misses {_missing}"


def flops(node: Node) -> int:
    """FLOPs of one node (multiply-add = 2)."""
    return int(lookup(FLOPS, node.op, "FLOPS")(node))


def node_flops(node) -> int:
    """FLOPs of one recorded (unfused) IR node (multiply-add = 2)."""
    return int(flops(node))


def fused_flops(program, node) -> int:
    """FLOPs of a (possibly fused) program node: those of the recorded ops it stands for
    (`program.origin_of(node)` names them, `program.recorded` holds them)."""
    total = 0
    for name in program.origin_of(node):
        rec = program.recorded.get(name)
        if rec is not None:
            total += node_flops(rec)
    return total


def total_flops(nodes) -> int:
    return sum(flops(n) for n in nodes)


# -- the byte model ---------------------------------------------------------------------------
def tensor_bytes(shape, dtype: str) -> int:
    return prod(int(d) for d in shape) * DTYPE_ITEMSIZE[dtype]


def kernel_bytes(reads, writes, dtype: str) -> int:
    """The byte model: every input node read once, every output node written once."""
    return sum(tensor_bytes(n.shape, dtype) for n in reads) + sum(tensor_bytes(n.shape, dtype) for n in writes)
