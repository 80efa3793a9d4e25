"""ONNX export of a recorded (unfused) graph with its weights: `export_onnx`.

    import slimtriton as st
    model = st.export_onnx(g, end_points["predictions"], st.load_weights("resnet_v1_50.ckpt"),
                           "resnet_v1_50.onnx", dynamic_batch=True)

No TensorFlow and no tf2onnx: the graph is the layer IR the TF-Slim front end recorded, and
the weights are the dict `st.load_weights` reads from a TF checkpoint. One table, `EXPORTERS`,
maps every IR op to the ONNX nodes that compute it; `UNSUPPORTED` names each op that has no
entry and why (a missing entry is a NotImplementedError naming the op).

Layout. The IR is NHWC; ONNX Conv and pooling are NCHW. Every ONNX value is held in one of
two layouts: "ir" (the IR's own axis order) or "nchw" (rank 4 only, axes permuted
(0, 3, 1, 2)). Convolutions, pools and inference batch norm produce "nchw"; elementwise ops,
concat, pad, tile, reduce_mean, softmax and unit_norm work in the layout their input already
has (their axes are mapped); reshape and matmul read "ir". A value is transposed only when a
consumer needs the other layout, once (memoized), so a conv net has one Transpose after its
input and one before each rank-4 output (or before the final flatten). Weights are transposed
when they are written (conv kernels OIHW, depthwise kernels [C*dm, 1, kh, kw]), so the file
has no weight Transpose for a runtime to fold.

Semantics kept exactly (slimtriton/reference is the definition):
  * TF SAME padding: the IR stores explicit per-side padding ((top, bottom), (left, right));
    it becomes the explicit ONNX `pads` [top, left, bottom, right] (never auto_pad).
  * Average pooling divides by the real (unpadded) cell count (count_include_pad=0);
    max pooling ignores padded cells (ONNX MaxPool pads with -inf).
  * Integer DIV is floor division (as the reference's np.floor_divide).
  * one_hot: out-of-range (and negative) labels give all off_value, as TF (ONNX OneHot would
    wrap negative labels), so it is Equal + Where.

Options:
  * dynamic_batch: the leading (batch) dimension of inputs and outputs is symbolic ("batch").
    True: every placeholder's leading dimension; or the placeholders (names or tensors) that
    have one (a placeholder without a batch, e.g. a [H, W, C] mask, is left out).
    A RESHAPE that keeps the batch as its leading dimension gets target 0 there (copy the
    input's); an op that mixes the batch with other dimensions is refused, naming the node.
  * layout="NCHW": rank-4 inputs and outputs are NCHW instead of NHWC.
  * batch_norm="fold" (default): inference BN after a conv / depthwise conv / matmul (and its
    bias) is folded into the weights (float64, then cast; slimtriton.fusion.folding); "keep"
    writes ONNX BatchNormalization nodes. A BN that cannot be folded is a Mul and an Add.

Names: ONNX node names are the IR node names (the TF-Slim op names, e.g.
`resnet_v1_50/conv1/Conv2D`), values are `<name>:0` as in TF, initializers carry the TF-Slim
variable names (`resnet_v1_50/conv1/weights`, stored OIHW), and graph inputs are the
placeholder names. Values made by the exporter (a folded kernel, a transposed copy) get a
suffix after a ':' (`.../weights:bn_folded`), which no TF-Slim name has.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Callable, Mapping

import numpy as np

from .. import __version__
from ..executor import needed_nodes
from ..extras import require
from ..fusion.folding import batch_norm_affine, fold_batch_norm
from ..ir.node import Node, Tensor
from ..ir.ops import Op, lookup
from ..session import used_variables
from ..weights import check_weights

OPSET = 17
IR_VERSION = 8  # the ONNX IR version of opset 17 (onnx 1.12): older runtimes load the file too
LAYOUTS = ("NHWC", "NCHW")
BATCH_NORM_MODES = ("fold", "keep")
BATCH_DIM = "batch"

# How each value is held: "ir" (the IR's axis order) or "nchw" (rank 4, IR axes (0, 3, 1, 2)).
IR, NCHW = "ir", "nchw"
TO_NCHW = (0, 3, 1, 2)  # nchw axis k holds IR axis TO_NCHW[k]
TO_NHWC = (0, 2, 3, 1)

_ONNX_DTYPES = {"float32": "FLOAT", "float16": "FLOAT16", "float64": "DOUBLE", "int32": "INT32",
                "int64": "INT64", "bool": "BOOL"}


def _onnx():
    # lazy: onnx is an optional extra (slimtriton/extras.py), imported only when exporting
    return require("onnx", "ONNX export")


def _axis_in(layout: str, ir_axis: int) -> int:
    """The ONNX axis that holds IR axis `ir_axis` in `layout`."""
    return TO_NCHW.index(ir_axis) if layout == NCHW else ir_axis


def _permute(layout: str, per_ir_axis) -> list:
    """A per-IR-axis list (pads, repeats) in the order of `layout`."""
    per_ir_axis = list(per_ir_axis)
    return [per_ir_axis[a] for a in TO_NCHW] if layout == NCHW else per_ir_axis


class _Exporter:
    """The ONNX graph being built: nodes, initializers, and each IR value's ONNX names."""

    def __init__(self, order: list[Node], outputs: list[Node], weights: Mapping[str, Any],
                 batched_inputs: frozenset, layout: str, batch_norm: str):
        self.onnx = _onnx()
        self.order = order
        self.weights = weights
        self.batched_inputs = batched_inputs
        self.dynamic_batch = bool(batched_inputs)
        self.layout = layout
        self.batch_norm = batch_norm
        self.nodes: list = []
        self.initializers: dict[str, Any] = {}
        self.inputs: list = []
        self.values: dict[tuple[int, str], str] = {}  # (id(node), layout) -> ONNX value name
        self.native: dict[int, str] = {}               # id(node) -> the layout its producer wrote
        self.batched: set[int] = set()                 # ids of values whose axis 0 is the batch
        self.consumers = Counter(id(i) for n in order for i in n.inputs)
        for o in outputs:
            self.consumers[id(o)] += 1
        self.output_ids = {id(o) for o in outputs}
        self.chains = _conv_chains(self)
        self.skipped = {id(n) for conv, bias, bn, head in self.chains.values() for n in (conv, bias) if n is not head}

    # -- building blocks ----------------------------------------------------------------------
    def add(self, op_type: str, inputs: list[str], name: str, outputs: list[str] | None = None,
            **attrs) -> str:
        """Append one ONNX node; returns its (first) output name."""
        outputs = outputs or [f"{name}:0"]
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, outputs, name=name, **attrs))
        return outputs[0]

    def initializer(self, name: str, array: np.ndarray) -> str:
        """An initializer named `name` (made unique with a ':N' suffix if the name is taken by
        another array)."""
        array = np.asarray(array)
        base, k = name, 1
        while name in self.initializers:
            existing = self.initializers[name]
            if existing[0] == array.dtype and existing[1].shape == array.shape and np.array_equal(existing[1], array):
                return name
            name, k = f"{base}:{k}", k + 1
        self.initializers[name] = (array.dtype, array)
        return name

    def scalar(self, value, dtype: str) -> str:
        return self.initializer(f"const:{dtype}:{value!r}", np.asarray(value, dtype=np.dtype(dtype)))

    def int64s(self, name: str, values) -> str:
        return self.initializer(name, np.asarray(list(values), dtype=np.int64))

    # -- constants ----------------------------------------------------------------------------
    @staticmethod
    def is_constant(node: Node) -> bool:
        return node.op in (Op.VARIABLE, Op.CONSTANT)

    def array(self, node: Node) -> np.ndarray:
        """The value of a VARIABLE (from the weights) or CONSTANT node, as the node's dtype."""
        if node.op is Op.CONSTANT:
            return np.asarray(node.attrs["value"], dtype=np.dtype(node.dtype))
        return np.asarray(self.weights[node.attrs["var"]], dtype=np.dtype(node.dtype)).reshape(node.shape)

    def constant_name(self, node: Node) -> str:
        return node.attrs["var"] if node.op is Op.VARIABLE else node.name

    def weight(self, node: Node, tag: str, perm=None, shape=None) -> str:
        """`node`'s value transposed by `perm` then reshaped to `shape`: an initializer under the
        TF-Slim name when the node is a variable (or constant), graph ops otherwise."""
        if self.is_constant(node):
            array = self.array(node)
            if perm is not None:
                array = array.transpose(perm)
            if shape is not None:
                array = array.reshape(shape)
            name = self.constant_name(node)
            if name in self.initializers and tag:
                name = f"{name}:{tag}"
            return self.initializer(name, array)
        value = self.get(node, IR)
        if perm is not None:
            value = self.add("Transpose", [value], f"{node.name}/{tag}_transpose", perm=list(perm))
        if shape is not None:
            value = self.add("Reshape", [value, self.int64s(f"{node.name}/{tag}_shape", shape)],
                             f"{node.name}/{tag}_reshape")
        return value

    # -- values -------------------------------------------------------------------------------
    def set(self, node: Node, value: str, layout: str) -> None:
        assert layout == IR or len(node.shape) == 4, (node.name, layout)
        self.values[(id(node), layout)] = value
        self.native[id(node)] = layout

    def layout_of(self, node: Node) -> str:
        return IR if self.is_constant(node) else self.native[id(node)]

    def get(self, node: Node, layout: str) -> str:
        """The ONNX name of `node`'s value held in `layout` (transposed once, when first asked)."""
        key = (id(node), layout)
        if key in self.values:
            return self.values[key]
        if self.is_constant(node):
            array = self.array(node)
            name = self.constant_name(node)
            if layout == NCHW:
                array, name = array.transpose(TO_NCHW), f"{name}:nchw"
            value = self.initializer(name, array)
        else:
            if id(node) not in self.native:
                raise RuntimeError(f"export: {node.name} is read before it is written")
            source = self.values[(id(node), self.native[id(node)])]
            perm = TO_NCHW if layout == NCHW else TO_NHWC
            value = self.add("Transpose", [source], f"{node.name}/to_{layout}", [f"{node.name}:0_{layout}"],
                             perm=list(perm))
        self.values[key] = value
        return value

    def operand(self, node: Node, layout: str, out_rank: int) -> str:
        """`node` as an operand broadcast (numpy rules, IR axes) against a rank-`out_rank` result
        computed in `layout`: a lower-rank operand of an NCHW result gets its leading unit axes
        and is permuted too (a bias [C] becomes [1, C, 1, 1])."""
        rank = len(node.shape)
        if layout == IR or rank == 0:
            return self.get(node, IR)
        if rank == 4:
            return self.get(node, NCHW)
        lead = out_rank - rank
        if self.is_constant(node):
            array = self.array(node).reshape((1,) * lead + tuple(node.shape)).transpose(TO_NCHW)
            name = self.constant_name(node)
            return self.initializer(f"{name}:nchw" if name in self.initializers else name, array)
        key = (id(node), f"broadcast_{out_rank}")
        if key not in self.values:
            expanded = self.add("Unsqueeze", [self.get(node, IR), self.int64s(f"{node.name}/lead_axes", range(lead))],
                                f"{node.name}/unsqueeze")
            self.values[key] = self.add("Transpose", [expanded], f"{node.name}/to_nchw_broadcast",
                                        perm=list(TO_NCHW))
        return self.values[key]

    def common_layout(self, node: Node) -> str:
        """NCHW when the result is rank 4 and some rank-4 input is already NCHW, else IR."""
        if len(node.shape) == 4 and any(len(i.shape) == 4 and not self.is_constant(i) and
                                        self.layout_of(i) == NCHW for i in node.inputs):
            return NCHW
        return IR

    def refuse_batch_change(self, node: Node, what: str) -> None:
        if self.dynamic_batch and any(id(i) in self.batched for i in node.inputs):
            raise ValueError(f"export {node.name} ({node.op.short}): {what} of a batch-dependent value "
                             f"cannot be exported with a dynamic batch (input shapes "
                             f"{[list(i.shape) for i in node.inputs]}); export with dynamic_batch=False")

    # -- the graph ----------------------------------------------------------------------------
    def run(self) -> None:
        for node in self.order:
            if node.op is Op.PLACEHOLDER:
                if node.name in self.batched_inputs:
                    self.batched.add(id(node))
            elif any(id(i) in self.batched for i in node.inputs):
                self.batched.add(id(node))
            if id(node) not in self.skipped:  # folded into the head of its conv chain
                lookup(EXPORTERS, node.op, "EXPORTERS")(self, node)

    def value_info(self, name: str, node: Node, layout: str):
        shape: list = list(node.shape)
        if layout == NCHW:
            shape = _permute(NCHW, shape)
        if id(node) in self.batched and shape:
            shape[0] = BATCH_DIM
        elem = getattr(self.onnx.TensorProto, _ONNX_DTYPES[node.dtype])
        return self.onnx.helper.make_tensor_value_info(name, elem, shape)


# -- exporters, one per op -------------------------------------------------------------------
def _placeholder(ex: _Exporter, node: Node) -> None:
    layout = NCHW if ex.layout == "NCHW" and len(node.shape) == 4 else IR
    ex.inputs.append(ex.value_info(node.name, node, layout))
    ex.set(node, node.name, layout)


def _constant_source(ex: _Exporter, node: Node) -> None:
    """Variables and constants become initializers when a consumer reads them (in the form it
    needs: a conv kernel OIHW, a bias [C, 1, 1] ...), so the file holds no unused copy."""


def _check_batch_broadcast(ex: _Exporter, node: Node) -> None:
    """With a dynamic batch, a batched operand must keep its batch as the result's leading axis."""
    for i in node.inputs:
        if id(i) in ex.batched and (len(i.shape) != len(node.shape) or i.shape[0] != node.shape[0]):
            ex.refuse_batch_change(node, f"broadcasting {list(i.shape)} to {list(node.shape)}")


def _binary(onnx_op: str) -> Callable:
    def export(ex: _Exporter, node: Node) -> None:
        _check_batch_broadcast(ex, node)
        layout = ex.common_layout(node)
        a, b = (ex.operand(i, layout, len(node.shape)) for i in node.inputs)
        ex.set(node, ex.add(onnx_op, [a, b], node.name), layout)
    return export


def _divide(ex: _Exporter, node: Node) -> None:
    if node.dtype in ("float32", "float16", "float64"):
        return _binary("Div")(ex, node)
    # Integer division floors (np.floor_divide); ONNX Div truncates. a - mod(a, b) (Mod with
    # fmod=0 takes the divisor's sign, as Python) is an exact multiple of b, so Div is exact.
    _check_batch_broadcast(ex, node)
    layout = ex.common_layout(node)
    a, b = (ex.operand(i, layout, len(node.shape)) for i in node.inputs)
    rem = ex.add("Mod", [a, b], f"{node.name}/mod", fmod=0)
    exact = ex.add("Sub", [a, rem], f"{node.name}/sub")
    ex.set(node, ex.add("Div", [exact, b], node.name), layout)


def _unary(onnx_op: str) -> Callable:
    def export(ex: _Exporter, node: Node) -> None:
        (x,) = node.inputs
        layout = ex.layout_of(x)
        ex.set(node, ex.add(onnx_op, [ex.get(x, layout)], node.name), layout)
    return export


def _relu6(ex: _Exporter, node: Node) -> None:
    (x,) = node.inputs
    layout = ex.layout_of(x)
    clip = ex.add("Clip", [ex.get(x, layout), ex.scalar(0, node.dtype), ex.scalar(6, node.dtype)], node.name)
    ex.set(node, clip, layout)


def _leaky_relu(ex: _Exporter, node: Node) -> None:
    (x,) = node.inputs
    layout = ex.layout_of(x)
    ex.set(node, ex.add("LeakyRelu", [ex.get(x, layout)], node.name, alpha=float(node.attrs["alpha"])), layout)


def _swish(ex: _Exporter, node: Node) -> None:
    """x * Sigmoid(x): opset 17 has no Swish (HardSwish is another function)."""
    (x,) = node.inputs
    layout = ex.layout_of(x)
    xv = ex.get(x, layout)
    ex.set(node, ex.add("Mul", [xv, ex.add("Sigmoid", [xv], f"{node.name}/Sigmoid")], node.name), layout)


def _dropout(ex: _Exporter, node: Node) -> None:
    keep_prob = node.attrs["keep_prob"]
    if node.attrs["is_training"] and keep_prob < 1:
        raise ValueError(f"export {node.name}: dropout with is_training=True (keep_prob={keep_prob}) is random; "
                         f"export an inference graph (build the net with is_training=False)")
    _unary("Identity")(ex, node)


def _bias_add(ex: _Exporter, node: Node) -> None:
    if id(node) in ex.chains:
        return _conv_chain(ex, node)
    _binary("Add")(ex, node)


def _batch_norm(ex: _Exporter, node: Node) -> None:
    if id(node) in ex.chains:
        return _conv_chain(ex, node)
    a = node.attrs
    x, mean, variance = node.inputs[:3]
    rest = list(node.inputs[3:])
    gamma = rest.pop(0) if a["scale"] else None
    beta = rest.pop(0) if a["center"] else None
    rank = len(node.shape)
    layout = ex.layout_of(x) if rank == 4 else IR
    params = [p for p in (mean, variance, gamma, beta) if p is not None]
    constant = all(ex.is_constant(p) for p in params)
    if not a["is_training"] and ex.batch_norm == "keep" and constant and (rank == 2 or layout == NCHW):
        channels = node.shape[-1]
        scale = ex.get(gamma, IR) if gamma is not None else ex.initializer(
            f"{node.name}/gamma:ones", np.ones(channels, np.dtype(node.dtype)))
        shift = ex.get(beta, IR) if beta is not None else ex.initializer(
            f"{node.name}/beta:zeros", np.zeros(channels, np.dtype(node.dtype)))
        out = ex.add("BatchNormalization", [ex.get(x, layout), scale, shift, ex.get(mean, IR), ex.get(variance, IR)],
                     node.name, epsilon=float(a["epsilon"]))
        return ex.set(node, out, layout)
    if not a["is_training"] and constant:  # one affine map y = x * scale + shift
        scale, shift = batch_norm_affine(ex.array(mean), ex.array(variance),
                                         None if gamma is None else ex.array(gamma),
                                         None if beta is None else ex.array(beta), a["epsilon"])
        shape = (-1, 1, 1) if layout == NCHW else (-1,)
        dtype = np.dtype(node.dtype)
        scaled = ex.add("Mul", [ex.get(x, layout), ex.initializer(
            f"{node.name}/scale:folded", scale.reshape(shape).astype(dtype))], f"{node.name}/mul")
        out = ex.add("Add", [scaled, ex.initializer(f"{node.name}/shift:folded", shift.reshape(shape).astype(dtype))],
                     node.name)
        return ex.set(node, out, layout)
    # Batch statistics (is_training) or computed parameters: the formula, node by node.
    xv = ex.get(x, layout)
    if a["is_training"]:  # mean and biased variance over every axis but the channels
        axes = [0, 2, 3] if layout == NCHW else list(range(rank - 1))
        mean_v = ex.add("ReduceMean", [xv], f"{node.name}/moments/mean", axes=axes, keepdims=1)
        centered = ex.add("Sub", [xv, mean_v], f"{node.name}/moments/centered")
        square = ex.add("Mul", [centered, centered], f"{node.name}/moments/square")
        var_v = ex.add("ReduceMean", [square], f"{node.name}/moments/variance", axes=axes, keepdims=1)
    else:
        centered = ex.add("Sub", [xv, ex.operand(mean, layout, rank)], f"{node.name}/centered")
        var_v = ex.operand(variance, layout, rank)
    std = ex.add("Sqrt", [ex.add("Add", [var_v, ex.scalar(float(a["epsilon"]), node.dtype)], f"{node.name}/add_eps")],
                 f"{node.name}/std")
    y = ex.add("Div", [centered, std], f"{node.name}/normalized" if (gamma or beta) else node.name)
    if gamma is not None:
        y = ex.add("Mul", [y, ex.operand(gamma, layout, rank)], f"{node.name}/gamma" if beta else node.name)
    if beta is not None:
        y = ex.add("Add", [y, ex.operand(beta, layout, rank)], node.name)
    ex.set(node, y, layout)


def _unit_norm(ex: _Exporter, node: Node) -> None:
    (x,) = node.inputs
    layout = ex.layout_of(x)
    xv = ex.get(x, layout)
    axis = _axis_in(layout, node.attrs["axis"])
    square = ex.add("Mul", [xv, xv], f"{node.name}/square")
    total = ex.add("ReduceSum", [square, ex.int64s(f"{node.name}/axes", [axis])], f"{node.name}/sum", keepdims=1)
    norm = ex.add("Sqrt", [ex.add("Add", [total, ex.scalar(float(node.attrs["epsilon"]), node.dtype)],
                                  f"{node.name}/add_eps")], f"{node.name}/norm")
    ex.set(node, ex.add("Div", [xv, norm], node.name), layout)


def _softmax(ex: _Exporter, node: Node) -> None:
    (x,) = node.inputs
    layout = ex.layout_of(x)
    out = ex.add("Softmax", [ex.get(x, layout)], node.name, axis=_axis_in(layout, node.attrs["axis"]))
    ex.set(node, out, layout)


def _pads(padding) -> list[int]:
    """IR ((top, bottom), (left, right)) -> ONNX [top, left, bottom, right]."""
    (pt, pb), (pl, pr) = padding
    return [int(pt), int(pl), int(pb), int(pr)]


def _emit_conv(ex: _Exporter, conv: Node, out_name: str, kernel: str, bias: str | None) -> str:
    """ONNX Conv of `conv` (CONV2D or DEPTHWISE_CONV2D) with an OIHW `kernel` and optional bias."""
    a = conv.attrs
    x = conv.inputs[0]
    group = x.shape[3] if conv.op is Op.DEPTHWISE_CONV2D else 1
    inputs = [ex.get(x, NCHW), kernel] + ([bias] if bias is not None else [])
    return ex.add("Conv", inputs, conv.name, [out_name], kernel_shape=list(conv.inputs[1].shape[:2]),
                  strides=list(a["strides"]), dilations=list(a.get("dilations", (1, 1))), pads=_pads(a["padding"]),
                  group=group)


_KERNEL_PERM = {Op.CONV2D: (3, 2, 0, 1), Op.DEPTHWISE_CONV2D: (2, 3, 0, 1)}


def _kernel_shape(conv: Node) -> tuple | None:
    """ONNX kernel shape: depthwise [kh, kw, C, dm] becomes [C*dm, 1, kh, kw] (group = C)."""
    if conv.op is Op.DEPTHWISE_CONV2D:
        kh, kw, c, dm = conv.inputs[1].shape
        return (c * dm, 1, kh, kw)
    return None


def _conv(ex: _Exporter, node: Node) -> None:
    kernel = ex.weight(node.inputs[1], "oihw", _KERNEL_PERM[node.op], _kernel_shape(node))
    ex.set(node, _emit_conv(ex, node, f"{node.name}:0", kernel, None), NCHW)


def _conv_chains(ex: _Exporter) -> dict:
    """{id(head): (conv, bias_add or None, batch_norm or None, head)}: conv / depthwise / matmul
    -> [bias_add] -> [inference batch norm] chains whose inner values nobody else reads and
    whose parameters are constants; the head (bias_add or BN) writes one ONNX Conv (or MatMul
    + Add) with the folded kernel and bias. BN is folded only with batch_norm='fold'."""
    chains = {}

    def private(n):  # read only by the next node of the chain
        return ex.consumers[id(n)] == 1 and id(n) not in ex.output_ids

    for node in ex.order:
        bias = bn = None
        if node.op is Op.BATCH_NORM and ex.batch_norm == "fold" and not node.attrs["is_training"] \
                and all(ex.is_constant(p) for p in node.inputs[1:]):
            bn, prev = node, node.inputs[0]
            if prev.op is Op.BIAS_ADD and private(prev) and ex.is_constant(prev.inputs[1]):
                bias, prev = prev, prev.inputs[0]
        elif node.op is Op.BIAS_ADD and ex.is_constant(node.inputs[1]):
            bias, prev = node, node.inputs[0]
        else:
            continue
        if prev.op in (Op.CONV2D, Op.DEPTHWISE_CONV2D, Op.MATMUL) and private(prev) \
                and ex.is_constant(prev.inputs[1]) and (prev.op is not Op.MATMUL or bn is None
                                                        or len(prev.shape) == 2):
            chains[id(node)] = (prev, bias, bn, node)
    # A bias_add that is itself the inner link of a BN chain is not a head.
    inner = {id(c[1]) for c in chains.values() if c[2] is not None and c[1] is not None}
    return {k: v for k, v in chains.items() if k not in inner}


def _conv_chain(ex: _Exporter, head: Node) -> None:
    conv, bias, bn, _ = ex.chains[id(head)]
    kind = {Op.CONV2D: "hwio", Op.DEPTHWISE_CONV2D: "depthwise", Op.MATMUL: "matmul"}[conv.op]
    w_node = conv.inputs[1]
    b = None if bias is None else ex.array(bias.inputs[1])
    dtype = np.dtype(head.dtype)
    if bn is not None:
        a = bn.attrs
        params = list(bn.inputs[1:])
        mean, variance = ex.array(params.pop(0)), ex.array(params.pop(0))
        gamma = ex.array(params.pop(0)) if a["scale"] else None
        beta = ex.array(params.pop(0)) if a["center"] else None
        w, shift = fold_batch_norm(ex.array(w_node), b, mean, variance, gamma, beta, a["epsilon"], kind)
        w_name = f"{ex.constant_name(w_node)}:bn_folded"
        b_name = f"{bn.name.rsplit('/', 1)[0]}/shift:bn_folded"  # the BN scope: conv1/BatchNorm
    else:
        w, shift = ex.array(w_node), b
        w_name, b_name = ex.constant_name(w_node), ex.constant_name(bias.inputs[1])
    w, shift = np.asarray(w).astype(dtype, copy=False), np.asarray(shift).astype(dtype, copy=False)
    out = f"{head.name}:0"
    if conv.op is Op.MATMUL:
        product = ex.add("MatMul", [ex.get(conv.inputs[0], IR), ex.initializer(w_name, w)], conv.name)
        return ex.set(head, ex.add("Add", [product, ex.initializer(b_name, shift)], head.name, [out]), IR)
    w = w.transpose(_KERNEL_PERM[conv.op])
    if _kernel_shape(conv) is not None:
        w = w.reshape(_kernel_shape(conv))
    ex.set(head, _emit_conv(ex, conv, out, ex.initializer(w_name, w), ex.initializer(b_name, shift)), NCHW)


def _conv2d_transpose(ex: _Exporter, node: Node) -> None:
    """out[i*s + k - pad_before] += x[i] w[k], cropped to output_hw: ONNX ConvTranspose over the
    full output with begin pads = pad_before and end pads cropping to output_hw; cells past the
    full output (which no input reaches) are zeros, appended by a Pad."""
    a = node.attrs
    x, w = node.inputs
    kh, kw = w.shape[:2]
    full = [(x.shape[1] - 1) * a["strides"][0] + kh, (x.shape[2] - 1) * a["strides"][1] + kw]
    begin = [int(p) for p in a["pad_before"]]
    end = [f - b - o for f, b, o in zip(full, begin, a["output_hw"])]
    kernel = ex.weight(w, "iohw", (3, 2, 0, 1))  # [kh, kw, cout, cin] -> [cin, cout, kh, kw]
    crop = [max(e, 0) for e in end]
    grow = [max(-e, 0) for e in end]
    name = node.name if not any(grow) else f"{node.name}/conv_transpose"
    out = ex.add("ConvTranspose", [ex.get(x, NCHW), kernel], name, kernel_shape=[kh, kw],
                 strides=list(a["strides"]), pads=begin + crop)
    if any(grow):
        out = ex.add("Pad", [out, ex.int64s(f"{node.name}/pads", [0, 0, 0, 0, 0, 0] + grow)], node.name,
                     mode="constant")
    ex.set(node, out, NCHW)


def _matmul(ex: _Exporter, node: Node) -> None:
    x, w = node.inputs
    ex.set(node, ex.add("MatMul", [ex.get(x, IR), ex.weight(w, "")], node.name), IR)


def _pool(onnx_op: str, **extra) -> Callable:
    def export(ex: _Exporter, node: Node) -> None:
        a = node.attrs
        out = ex.add(onnx_op, [ex.get(node.inputs[0], NCHW)], node.name, kernel_shape=list(a["ksize"]),
                     strides=list(a["strides"]), pads=_pads(a["padding"]), **extra)
        ex.set(node, out, NCHW)
    return export


def _reduce_mean(ex: _Exporter, node: Node) -> None:
    (x,) = node.inputs
    layout = ex.layout_of(x)
    axes = sorted(_axis_in(layout, a) for a in node.attrs["axes"])
    keep = bool(node.attrs["keepdims"])
    if 0 in node.attrs["axes"]:  # averaged over the batch: the result has no batch axis
        ex.batched.discard(id(node))
    out = ex.add("ReduceMean", [ex.get(x, layout)], node.name, axes=axes, keepdims=int(keep))
    if keep or layout == IR:
        return ex.set(node, out, layout)
    # NCHW with axes dropped: the remaining IR axes, in the order they are held.
    held = [ir_axis for ir_axis in TO_NCHW if ir_axis not in node.attrs["axes"]]
    if held != sorted(held):
        order = sorted(range(len(held)), key=lambda k: held[k])
        out = ex.add("Transpose", [out], f"{node.name}/to_ir", perm=order)
    ex.set(node, out, IR)


def _reshape(ex: _Exporter, node: Node) -> None:
    (x,) = node.inputs
    target = list(node.attrs["shape"])
    if ex.dynamic_batch and id(x) in ex.batched:
        keeps_batch = (len(x.shape) >= 1 and len(target) >= 1 and target[0] == x.shape[0]
                       and math.prod(target[1:]) == math.prod(x.shape[1:]))
        if not keeps_batch:
            ex.refuse_batch_change(node, f"a reshape {list(x.shape)} -> {target} that moves the batch axis")
        target[0] = 0  # copy the (dynamic) batch from the input
    out = ex.add("Reshape", [ex.get(x, IR), ex.int64s(f"{node.name}/shape", target)], node.name)
    ex.set(node, out, IR)


def _concat(ex: _Exporter, node: Node) -> None:
    axis = node.attrs["axis"]
    if axis == 0:
        ex.refuse_batch_change(node, "a concat along axis 0")
    layout = ex.common_layout(node)
    out = ex.add("Concat", [ex.get(i, layout) for i in node.inputs], node.name, axis=_axis_in(layout, axis))
    ex.set(node, out, layout)


def _channel_slice(ex: _Exporter, node: Node) -> None:
    """x[..., begin:begin + size] as ONNX Slice along the channel axis, in the layout x has."""
    (x,) = node.inputs
    if node.attrs.get("act", "none") != "none":
        raise NotImplementedError(f"{node.name}: a channel slice with an activation ({node.attrs['act']!r}) is made "
                                  f"only by the horizontal fusion pass; export_onnx exports recorded graphs")
    layout = ex.layout_of(x)
    begin, size = node.attrs["begin"], node.attrs["size"]
    axis = _axis_in(layout, len(x.shape) - 1)
    out = ex.add("Slice", [ex.get(x, layout), ex.int64s(f"{node.name}/starts", [begin]),
                           ex.int64s(f"{node.name}/ends", [begin + size]), ex.int64s(f"{node.name}/axes", [axis])],
                 node.name)
    ex.set(node, out, layout)


def _pad(ex: _Exporter, node: Node) -> None:
    (x,) = node.inputs
    paddings = node.attrs["paddings"]
    if tuple(paddings[0]) != (0, 0):
        ex.refuse_batch_change(node, f"padding axis 0 by {tuple(paddings[0])}")
    layout = ex.layout_of(x)
    ordered = _permute(layout, paddings)
    pads = ex.int64s(f"{node.name}/paddings", [p[0] for p in ordered] + [p[1] for p in ordered])
    value = ex.scalar(node.attrs["value"], node.dtype)
    ex.set(node, ex.add("Pad", [ex.get(x, layout), pads, value], node.name, mode="constant"), layout)


def _tile(ex: _Exporter, node: Node) -> None:
    (x,) = node.inputs
    multiples = node.attrs["multiples"]
    if multiples[0] != 1:
        ex.refuse_batch_change(node, f"tiling axis 0 {multiples[0]} times")
    layout = ex.layout_of(x)
    repeats = ex.int64s(f"{node.name}/multiples", _permute(layout, multiples))
    ex.set(node, ex.add("Tile", [ex.get(x, layout), repeats], node.name), layout)


def _one_hot(ex: _Exporter, node: Node) -> None:
    (labels,) = node.inputs
    a = node.attrs
    classes = ex.initializer(f"{node.name}/classes", np.arange(a["depth"], dtype=np.dtype(labels.dtype)))
    expanded = ex.add("Unsqueeze", [ex.get(labels, IR), ex.int64s(f"{node.name}/last_axis", [-1])],
                      f"{node.name}/unsqueeze")
    hot = ex.add("Equal", [expanded, classes], f"{node.name}/equal")
    out = ex.add("Where", [hot, ex.scalar(a["on_value"], a["dtype"]), ex.scalar(a["off_value"], a["dtype"])],
                 node.name)
    ex.set(node, out, IR)


_FUSED_REASON = ("produced by the compiler's fusion passes; export writes the recorded (unfused) graph, "
                 "which ONNX runtimes fuse themselves")

EXPORTERS: dict[Op, Callable[[_Exporter, Node], None]] = {
    Op.PLACEHOLDER: _placeholder,
    Op.VARIABLE: _constant_source,
    Op.CONSTANT: _constant_source,
    Op.ADD: _binary("Add"),
    Op.SUB: _binary("Sub"),
    Op.MUL: _binary("Mul"),
    Op.DIV: _divide,
    Op.MAXIMUM: _binary("Max"),
    Op.MINIMUM: _binary("Min"),
    Op.NEG: _unary("Neg"),
    Op.RELU: _unary("Relu"),
    Op.RELU6: _relu6,
    Op.SIGMOID: _unary("Sigmoid"),
    Op.TANH: _unary("Tanh"),
    Op.ELU: _unary("Elu"),                 # alpha 1, as tf.nn.elu
    Op.LEAKY_RELU: _leaky_relu,
    Op.SWISH: _swish,
    Op.IDENTITY: _unary("Identity"),
    Op.BIAS_ADD: _bias_add,
    Op.DROPOUT: _dropout,
    Op.BATCH_NORM: _batch_norm,
    Op.UNIT_NORM: _unit_norm,
    Op.SOFTMAX: _softmax,
    Op.CONV2D: _conv,
    Op.DEPTHWISE_CONV2D: _conv,
    Op.CONV2D_TRANSPOSE: _conv2d_transpose,
    Op.MATMUL: _matmul,
    Op.MAX_POOL: _pool("MaxPool"),
    Op.AVG_POOL: _pool("AveragePool", count_include_pad=0),
    Op.REDUCE_MEAN: _reduce_mean,
    Op.RESHAPE: _reshape,
    Op.CONCAT: _concat,
    Op.CHANNEL_SLICE: _channel_slice,
    Op.PAD: _pad,
    Op.TILE: _tile,
    Op.ONE_HOT: _one_hot,
}

# Every op without an exporter, and why.
UNSUPPORTED: dict[Op, str] = {
    Op.FUSED_CONV2D: _FUSED_REASON,
    Op.FUSED_DEPTHWISE_CONV2D: _FUSED_REASON,
    Op.FUSED_CONV2D_TRANSPOSE: _FUSED_REASON,
    Op.FUSED_MATMUL: _FUSED_REASON,
    Op.FUSED_ELEMENTWISE: _FUSED_REASON,
    Op.FUSED_WINDOW_CONV2D: _FUSED_REASON,
    Op.FUSED_MEAN_MATMUL: _FUSED_REASON,
}

assert not set(EXPORTERS) & set(UNSUPPORTED) and set(EXPORTERS) | set(UNSUPPORTED) == set(Op), \
    f"EXPORTERS + UNSUPPORTED must cover every Op once; missing {set(Op) - set(EXPORTERS) - set(UNSUPPORTED)}"


# -- the public function -------------------------------------------------------------------
def _output_nodes(outputs, graph) -> list[tuple[str, Node]]:
    """[(ONNX output name, node)] for a tensor, a name, or a list/tuple/dict of them (dict keys
    are the output names; otherwise the node names)."""
    def node_of(o):
        if isinstance(o, Tensor):
            return o.node
        if isinstance(o, Node):
            return o
        if isinstance(o, str):
            if graph is None:
                raise TypeError(f"output {o!r} is a name; pass a Graph to resolve it")
            return graph.node_by_name(o)
        raise TypeError(f"outputs must be Tensors, Nodes, names, or a list/tuple/dict of them; "
                        f"got {type(o).__name__}")
    if isinstance(outputs, Mapping):
        pairs = [(str(k), node_of(v)) for k, v in outputs.items()]
    elif isinstance(outputs, (list, tuple)):
        pairs = [(node_of(o).name, node_of(o)) for o in outputs]
    else:
        pairs = [(node_of(outputs).name, node_of(outputs))]
    if not pairs:
        raise ValueError("export_onnx needs at least one output")
    names = [name for name, _ in pairs]
    duplicated = sorted(n for n, c in Counter(names).items() if c > 1)
    if duplicated:
        raise ValueError(f"export_onnx: output names {duplicated} are given more than once")
    return pairs


def _check_weights(graph, order: list[Node], weights: Mapping[str, Any]) -> None:
    """One error listing every variable the outputs read that is missing or mis-shaped (extra
    names, as a checkpoint's global_step or optimizer slots, are ignored)."""
    used = used_variables(graph, order)
    check_weights(used, {k: weights[k] for k in used if k in weights})


def export_onnx(graph, outputs, weights: Mapping[str, Any], path=None, dynamic_batch: bool = True,
                layout: str = "NHWC", batch_norm: str = "fold", check: bool = True):
    """Write `outputs` of the recorded `graph` with `weights` as an ONNX model (opset 17).

    graph: a slimtriton Graph (recorded, not compiled). outputs: a Tensor, a tensor name, or a
    list/tuple/dict of them (dict keys name the ONNX outputs). weights: {TF-Slim name: array}
    (`st.load_weights` reads TF checkpoints, .npz and .safetensors). path: where to write
    (None: only return the model). dynamic_batch: a symbolic leading dimension "batch".
    layout: "NHWC" (the IR's, default) or "NCHW" for rank-4 inputs and outputs. batch_norm:
    "fold" into the preceding conv/matmul, or "keep" as BatchNormalization. check: run
    onnx.checker (with shape inference) before returning. Returns the onnx.ModelProto.
    """
    onnx = _onnx()
    if layout not in LAYOUTS:
        raise ValueError(f"export_onnx: layout must be one of {LAYOUTS}, got {layout!r}")
    if batch_norm not in BATCH_NORM_MODES:
        raise ValueError(f"export_onnx: batch_norm must be one of {BATCH_NORM_MODES}, got {batch_norm!r}")
    nodes = getattr(graph, "nodes", None)
    if nodes is None:
        raise TypeError(f"export_onnx needs a slimtriton Graph, got {type(graph).__name__}")
    pairs = _output_nodes(outputs, graph if hasattr(graph, "node_by_name") else None)
    needed = needed_nodes([n for _, n in pairs])
    order = [n for n in nodes if id(n) in needed]
    if len(order) != len(needed):
        raise ValueError("export_onnx: an output (or a node it reads) is not in this graph")
    for n in order:
        if n.op in UNSUPPORTED:
            raise NotImplementedError(f"export_onnx: {n.name} is a {n.op!r}: {UNSUPPORTED[n.op]}")
        if n.dtype not in _ONNX_DTYPES:
            raise NotImplementedError(f"export_onnx: {n.name} has dtype {n.dtype}; exported dtypes are "
                                      f"{sorted(_ONNX_DTYPES)} (record the graph in float32)")
    _check_weights(graph, order, weights)

    batched_inputs = _batched_inputs(order, dynamic_batch)
    ex = _Exporter(order, [n for _, n in pairs], weights, batched_inputs, layout, batch_norm)
    ex.run()
    graph_outputs = []
    for name, node in pairs:
        want = NCHW if layout == "NCHW" and len(node.shape) == 4 else IR
        ex.add("Identity", [ex.get(node, want)], f"output/{name}", [name])
        graph_outputs.append(ex.value_info(name, node, want))
    onnx_graph = onnx.helper.make_graph(ex.nodes, _graph_name(pairs), ex.inputs, graph_outputs)
    model = onnx.helper.make_model(onnx_graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                   producer_name="slimtriton", producer_version=_version())
    model.ir_version = IR_VERSION
    for name, (_, array) in ex.initializers.items():  # into the model's own graph: make_model copies
        _add_initializer(onnx, model.graph, name, array)
    if path is not None:
        onnx.save_model(model, str(path))
    if check:  # a written model is checked from its file: the in-memory check serializes it again
        onnx.checker.check_model(str(path) if path is not None else model, full_check=True)
    return model


def _add_initializer(onnx, graph, name: str, array: np.ndarray) -> None:
    """One initializer written in place (numpy_helper.from_array + make_graph would copy a
    VGG fc6 kernel, 400 MB, twice more)."""
    tensor = graph.initializer.add()
    tensor.name = name
    tensor.dims.extend(array.shape)
    tensor.data_type = onnx.helper.np_dtype_to_tensor_dtype(array.dtype)
    # One copy: tobytes() writes a transposed (non-contiguous) kernel out in C order itself.
    tensor.raw_data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes(order="C")


def _batched_inputs(order: list[Node], dynamic_batch) -> frozenset:
    """Names of the placeholders whose leading dimension becomes the symbolic batch."""
    placeholders = {n.name: n for n in order if n.op is Op.PLACEHOLDER}
    if dynamic_batch is True:
        names = {name for name, n in placeholders.items() if n.shape}
    elif not dynamic_batch:
        return frozenset()
    else:
        names = {getattr(getattr(p, "node", p), "name", p).split(":")[0] for p in dynamic_batch}
        unknown = sorted(names - set(placeholders))
        if unknown:
            raise ValueError(f"export_onnx: dynamic_batch names {unknown}, which are not placeholders the outputs "
                             f"read (those are {sorted(placeholders)})")
    batches = {placeholders[name].shape[0] for name in names if placeholders[name].shape}
    if len(batches) > 1:
        raise ValueError(f"export_onnx: the placeholders with a dynamic batch have different leading dimensions "
                         f"{ {name: placeholders[name].shape[0] for name in sorted(names)} }; pass dynamic_batch="
                         f"[the placeholders that have the batch]")
    return frozenset(n for n in names if placeholders[n].shape)


def _graph_name(pairs) -> str:
    return pairs[0][1].name.split("/", 1)[0] or "slimtriton"


def _version() -> str:
    return __version__
