"""The torch eager executor: `TORCH[op](node, inputs) -> torch.Tensor`, NHWC values.

A second, independent reference (float32 by default) and the eager baseline the
benchmarks time. Values stay NHWC; convolutions and pools run on a
`permute(0, 3, 1, 2)` view, i.e. an NCHW tensor with channels_last strides, which
is the layout cuDNN prefers on CUDA, and permute back (no copies for the layout).

TF semantics kept exactly: asymmetric padding goes through `F.pad` before a
padding-free conv/pool; max pooling pads with -inf; average pooling divides by
the number of real (non-padded) cells; depthwise channel c*dm+m; conv2d_transpose
as `out[i*s + k - pad_before] += x[i] w[k]`, cropped / zero-extended to output_hw.

    table = make_torch_table(device="cuda", dtype="float16")
    f = build_torch_callable(graph, [logits], weights, device="cuda", dtype="float16")
    (out,) = f(images)                      # a plain function of torch ops; torch.compile(f) works

On CUDA, float32 follows torch's TF32 flags inside `f` (cuDNN convs default to TF32; the
benchmark sets them per run); `Session(backend='torch')` computes IEEE float32
(`ieee_float32`). Float16 / bfloat16 run cuDNN's 16-bit kernels (fp32 accumulation).
"""
from __future__ import annotations

import contextlib
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..executor import Interpreter
from ..feeds import check_value
from ..ir.node import FLOAT_DTYPES, Node
from ..ir.ops import ACTIVATION_OPS, Act, Op, node_act, parse_act
from ..weights import check_weights
from ..ir.shapes import window_attrs

_TORCH_NODE_DTYPES = {
    "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
    "float64": torch.float64, "int32": torch.int32, "int64": torch.int64, "bool": torch.bool,
}


def torch_device(device=None) -> torch.device:
    """The torch device of the eager backend: None -> CUDA when present, else CPU (nothing is
    checked; compare compiler.kernel_device, the device the Triton kernels can run on)."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextlib.contextmanager
def ieee_float32(device, dtype):
    """Inside the block, float32 CUDA matmuls / cuDNN convs compute in IEEE float32: torch's
    defaults let cuDNN use TF32 (10-bit mantissa products) for float32 convolutions, which
    would make the float32 torch backend ~1e-3 wrong. No-op on the CPU and for 16-bit dtypes."""
    if torch.device(device).type != "cuda" or torch_dtype(dtype) not in (torch.float32, torch.float64):
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def torch_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _TORCH_NODE_DTYPES[str(dtype)]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {tuple(_TORCH_NODE_DTYPES)}") from None


def to_torch(value, node_dtype: str, device: torch.device, float_dtype: torch.dtype) -> torch.Tensor:
    """A host value (NumPy array, tensor, scalar) on `device`: floats in `float_dtype`, others exact."""
    target = float_dtype if node_dtype in FLOAT_DTYPES else torch_dtype(node_dtype)
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=target)
    array = np.asarray(value)
    if array.dtype.kind == "f" and array.dtype != np.float64:
        array = array.astype(np.float64)  # any host float goes through float64, then one rounding
    return torch.as_tensor(np.require(array, requirements="C")).to(device=device, dtype=target)


def convert_weights(weights: Mapping, variables: Mapping, device, dtype) -> dict:
    """Weights as torch tensors on `device` (float variables in `dtype`), converted once.

    variables: {name: VariableSpec} giving each variable's dtype; names not listed are skipped.
    """
    device, float_dtype = torch_device(device), torch_dtype(dtype)
    return {name: to_torch(weights[name], spec.dtype, device, float_dtype)
            for name, spec in variables.items() if name in weights}


# -- layout helpers: NHWC values <-> channels_last NCHW views ----------------------------------
def _nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


def _pad_nchw(x: torch.Tensor, padding, value: float = 0.0) -> torch.Tensor:
    (pt, pb), (pl, pr) = padding
    if pt == pb == pl == pr == 0:
        return x
    return F.pad(x, (pl, pr, pt, pb), mode="constant", value=value)


# Every activation in torch ops (the reference, reference/numpy_ops.py ACTIVATIONS, defines them).
TORCH_ACTIVATIONS = {
    Act.NONE: lambda x, p: x,
    Act.RELU: lambda x, p: torch.relu(x),
    Act.RELU6: lambda x, p: torch.clamp(x, 0.0, 6.0),
    Act.SIGMOID: lambda x, p: torch.sigmoid(x),
    Act.TANH: lambda x, p: torch.tanh(x),
    Act.ELU: lambda x, p: F.elu(x),
    Act.LEAKY_RELU: lambda x, p: torch.where(x > 0, x, x * p),  # F.leaky_relu: x >= 0, differs at -0.0
    Act.SWISH: lambda x, p: x * torch.sigmoid(x),               # = F.silu (its -inf is NaN too)
}


def _act(x: torch.Tensor, act) -> torch.Tensor:
    kind, param = parse_act(act, "torch activation")
    return TORCH_ACTIVATIONS[kind](x, param)


def make_torch_table(device=None, dtype="float32", cache_weight_layouts: bool = False) -> "TorchTable":
    """A TORCH table whose source ops put values on `device` (floats in `dtype`).

    cache_weight_layouts: keep the OIHW copy of each variable's conv weights after first use
    (right when one table serves fixed weights, as in a Session or build_torch_callable).
    """
    device, float_dtype = torch_device(device), torch_dtype(dtype)
    layouts: dict = {}

    def weight_layout(node: Node, w: torch.Tensor, convert: Callable) -> torch.Tensor:
        src = node.inputs[1]
        if not cache_weight_layouts or src.op is not Op.VARIABLE:
            return convert(w)
        key = (src.attrs["var"], convert)
        hit = layouts.get(key)
        if hit is None or hit[0] is not w:
            hit = (w, convert(w).contiguous(memory_format=torch.channels_last)
                   if w.dim() == 4 else convert(w).contiguous())
            layouts[key] = hit
        return hit[1]

    def source(node, inputs):
        (raw,) = inputs
        return to_torch(raw, node.dtype, device, float_dtype)

    def constant(node, inputs):
        target = float_dtype if node.dtype in FLOAT_DTYPES else torch_dtype(node.dtype)
        return torch.tensor(node.attrs["value"], dtype=target, device=device)

    def divide(node, inputs):
        a, b = inputs
        if node.dtype in FLOAT_DTYPES:
            return a / b
        return torch.div(a, b, rounding_mode="floor")

    def dropout(node, inputs):
        keep_prob = node.attrs["keep_prob"]
        if node.attrs["is_training"] and keep_prob < 1:
            raise ValueError(
                f"{node.name}: dropout with is_training=True (keep_prob={keep_prob}) is random; slimtriton "
                f"runs inference only. Build the net with is_training=False (dropout is then the identity)")
        return inputs[0]

    def batch_norm(node, inputs):
        a = node.attrs
        x, mean, variance = inputs[:3]
        rest = list(inputs[3:])
        gamma = rest.pop(0) if a["scale"] else None
        beta = rest.pop(0) if a["center"] else None
        if a["is_training"]:
            dims = tuple(range(x.dim() - 1))
            mean = x.mean(dim=dims)
            variance = x.var(dim=dims, unbiased=False)
        y = (x - mean) * torch.rsqrt(variance + a["epsilon"])
        if gamma is not None:
            y = y * gamma
        if beta is not None:
            y = y + beta
        return y

    # convolutions ------------------------------------------------------------------------------
    def conv_nchw(x, w, attrs, groups=1):
        """Symmetric padding goes to the conv itself (no pad kernel); asymmetric through F.pad."""
        (pt, pb), (pl, pr) = attrs["padding"]
        stride, dilation = tuple(attrs["strides"]), tuple(attrs.get("dilations", (1, 1)))
        if pt == pb and pl == pr:
            return F.conv2d(_nchw(x), w, stride=stride, padding=(pt, pl), dilation=dilation, groups=groups)
        return F.conv2d(_pad_nchw(_nchw(x), attrs["padding"]), w, stride=stride, dilation=dilation, groups=groups)

    def conv2d_nhwc(node, x, w):
        return _nhwc(conv_nchw(x, weight_layout(node, w, _hwio_to_oihw), node.attrs))

    def depthwise_nhwc(node, x, w):
        w_grouped = weight_layout(node, w, _depthwise_to_grouped)
        return _nhwc(conv_nchw(x, w_grouped, node.attrs, groups=x.shape[3]))

    def conv2d_transpose_nhwc(node, x, w):
        a = node.attrs
        (sh, sw), (pt, pl), (oh, ow) = a["strides"], a["pad_before"], a["output_hw"]
        w_iohw = weight_layout(node, w, _transpose_weights)
        full = F.conv_transpose2d(_nchw(x), w_iohw, stride=(sh, sw))  # every o = i*s + k
        extra_h, extra_w = max(pt + oh - full.shape[2], 0), max(pl + ow - full.shape[3], 0)
        if extra_h or extra_w:  # outputs no input reaches are zero
            full = F.pad(full, (0, extra_w, 0, extra_h))
        return _nhwc(full[:, :, pt:pt + oh, pl:pl + ow])

    def matmul(node, x, w):
        return torch.matmul(x, w)

    def prologue_input(node, inputs):
        x = inputs[0]
        if node.attrs.get("prologue"):
            x = _act(x * inputs[-2] + inputs[-1], node.attrs.get("prologue_act", "none"))
        return x

    def epilogue(node, acc, rest):
        a = node.attrs
        y = _act(acc * rest[0] + rest[1], a.get("act", "none"))
        if a.get("residual"):
            sh, sw = a.get("residual_strides", (1, 1))
            residual = rest[2][:, ::sh, ::sw] if (sh, sw) != (1, 1) else rest[2]
            y = _act(residual + a.get("residual_scale", 1.0) * y, a.get("act2", "none"))
        return y

    # pooling -----------------------------------------------------------------------------------
    def torch_pool_padding(a):
        """(ph, pw) when torch's own pool padding matches TF (symmetric, at most half the kernel)."""
        (pt, pb), (pl, pr) = a["padding"]
        kh, kw = a["ksize"]
        if pt == pb and pl == pr and 2 * pt <= kh and 2 * pl <= kw:
            return (pt, pl)
        return None

    # Pool paddings that leave a window with no input cell are refused by the shape rule
    # (ir/shapes.py) when the node is recorded, so no per-call check is needed here.
    def max_pool(node, inputs):
        a = node.attrs
        k, s, native = tuple(a["ksize"]), tuple(a["strides"]), torch_pool_padding(a)
        if native is not None:  # torch pads max pools with -inf too
            return _nhwc(F.max_pool2d(_nchw(inputs[0]), k, s, padding=native))
        xp = _pad_nchw(_nchw(inputs[0]), a["padding"], value=float("-inf"))
        return _nhwc(F.max_pool2d(xp, k, s))

    def avg_pool(node, inputs):
        a = node.attrs
        x = _nchw(inputs[0])
        k, s, padding, native = tuple(a["ksize"]), tuple(a["strides"]), a["padding"], torch_pool_padding(a)
        if native is not None:  # count_include_pad=False divides by the real cells, as TF
            return _nhwc(F.avg_pool2d(x, k, s, padding=native, count_include_pad=False))
        mean = F.avg_pool2d(_pad_nchw(x, padding), k, s)
        if any(p for pair in padding for p in pair):
            ones = torch.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype, device=x.device)
            real_fraction = F.avg_pool2d(_pad_nchw(ones, padding), k, s)  # real cells / window size
            mean = mean / real_fraction
        return _nhwc(mean)

    def fused_window_conv2d(node, inputs):
        """avg_pool(x) or win_act(depthwise(x)*win_scale + win_shift), then the 1x1 conv + epilogue."""
        a, x = node.attrs, inputs[0]
        win_attrs = window_attrs(a)
        if a["window"] == "avg_pool":
            win = avg_pool(node.replace(op=Op.AVG_POOL, inputs=node.inputs[:1], attrs=win_attrs,
                                        shape=node.shape[:3] + x.shape[-1:]), (x,))
        else:
            grouped = _depthwise_to_grouped(inputs[4])
            win = _act(_nhwc(conv_nchw(x, grouped, win_attrs, groups=x.shape[3])) * inputs[5] + inputs[6],
                       a["win_act"])
        pointwise = _nhwc(conv_nchw(win, weight_layout(node, inputs[1], _hwio_to_oihw),
                                    {"strides": (1, 1), "padding": ((0, 0), (0, 0))}))
        return epilogue(node, pointwise, inputs[2:4])

    def pad(node, inputs):
        flat = []
        for before, after in reversed(node.attrs["paddings"]):  # F.pad lists the last axis first
            flat += [before, after]
        return F.pad(inputs[0], flat, mode="constant", value=node.attrs["value"])

    def one_hot(node, inputs):
        a = node.attrs
        labels = inputs[0]
        hot = labels.unsqueeze(-1) == torch.arange(a["depth"], device=labels.device)
        target = float_dtype if a["dtype"] in FLOAT_DTYPES else torch_dtype(a["dtype"])
        # torch.full, not torch.tensor: no host-to-device copy (capturable in a CUDA graph)
        on = torch.full((), a["on_value"], dtype=target, device=labels.device)
        off = torch.full((), a["off_value"], dtype=target, device=labels.device)
        return torch.where(hot, on, off)

    def unit_norm(node, inputs):
        x = inputs[0]
        return x / torch.sqrt(node.attrs["epsilon"] + torch.sum(x * x, dim=node.attrs["axis"], keepdim=True))

    table = TorchTable({
        Op.PLACEHOLDER: source,
        Op.VARIABLE: source,
        Op.CONSTANT: constant,
        Op.ADD: lambda n, i: i[0] + i[1],
        Op.SUB: lambda n, i: i[0] - i[1],
        Op.MUL: lambda n, i: i[0] * i[1],
        Op.DIV: divide,
        Op.MAXIMUM: lambda n, i: torch.maximum(i[0], i[1]),
        Op.MINIMUM: lambda n, i: torch.minimum(i[0], i[1]),
        Op.NEG: lambda n, i: -i[0],
        **{op: lambda n, i: _act(i[0], node_act(n)) for op in ACTIVATION_OPS},
        Op.IDENTITY: lambda n, i: i[0],
        Op.BIAS_ADD: lambda n, i: i[0] + i[1],
        Op.DROPOUT: dropout,
        Op.BATCH_NORM: batch_norm,
        Op.UNIT_NORM: unit_norm,
        Op.SOFTMAX: lambda n, i: torch.softmax(i[0], dim=n.attrs["axis"]),
        Op.CONV2D: lambda n, i: conv2d_nhwc(n, i[0], i[1]),
        Op.DEPTHWISE_CONV2D: lambda n, i: depthwise_nhwc(n, i[0], i[1]),
        Op.CONV2D_TRANSPOSE: lambda n, i: conv2d_transpose_nhwc(n, i[0], i[1]),
        Op.MATMUL: lambda n, i: matmul(n, i[0], i[1]),
        Op.MAX_POOL: max_pool,
        Op.AVG_POOL: avg_pool,
        Op.REDUCE_MEAN: lambda n, i: torch.mean(i[0], dim=tuple(n.attrs["axes"]), keepdim=bool(n.attrs["keepdims"])),
        Op.RESHAPE: lambda n, i: torch.reshape(i[0], tuple(n.attrs["shape"])),
        Op.CONCAT: lambda n, i: torch.cat(list(i), dim=n.attrs["axis"]),
        Op.CHANNEL_SLICE: lambda n, i: _act(i[0][..., n.attrs["begin"]:n.attrs["begin"] + n.attrs["size"]],
                                            n.attrs.get("act", "none")).contiguous(),
        Op.PAD: pad,
        Op.TILE: lambda n, i: i[0].repeat(*n.attrs["multiples"]),
        Op.ONE_HOT: one_hot,
        Op.FUSED_CONV2D: lambda n, i: epilogue(n, conv2d_nhwc(n, prologue_input(n, i), i[1]), i[2:]),
        Op.FUSED_DEPTHWISE_CONV2D: lambda n, i: epilogue(n, depthwise_nhwc(n, prologue_input(n, i), i[1]), i[2:]),
        Op.FUSED_CONV2D_TRANSPOSE: lambda n, i: epilogue(n, conv2d_transpose_nhwc(n, i[0], i[1]), i[2:]),
        Op.FUSED_MATMUL: lambda n, i: epilogue(n, matmul(n, i[0], i[1]), i[2:]),
        Op.FUSED_ELEMENTWISE: lambda n, i: epilogue(n, i[0], i[1:]),
        Op.FUSED_WINDOW_CONV2D: fused_window_conv2d,
        Op.FUSED_MEAN_MATMUL: lambda n, i: epilogue(
            n, torch.matmul(torch.mean(prologue_input(n, i), dim=(1, 2)), i[1].reshape(i[1].shape[-2:])),
            i[2:]).reshape(n.shape),
    })
    missing = set(Op) - set(table)
    assert not missing, f"TORCH misses {missing}"

    def prepare(node: Node, w: torch.Tensor) -> None:
        """Fill the layout cache for a conv node's variable weights now (not while traced)."""
        convert = _WEIGHT_LAYOUTS.get(node.op)
        if convert is not None:
            weight_layout(node, w, convert)

    table.prepare = prepare
    return table


class TorchTable(dict):
    """A TORCH table ({Op: fn}) plus `prepare(node, weights)`, which builds the cached conv weight
    layout ahead of time (so a torch.compile trace never mutates the cache)."""

    prepare: Callable


def _hwio_to_oihw(w: torch.Tensor) -> torch.Tensor:
    return w.permute(3, 2, 0, 1)


def _depthwise_to_grouped(w: torch.Tensor) -> torch.Tensor:
    """[kh,kw,C,dm] -> grouped-conv weights [C*dm, 1, kh, kw]; output channel c*dm + m."""
    kh, kw, c, dm = w.shape
    return w.reshape(kh, kw, c * dm).permute(2, 0, 1).unsqueeze(1)


def _transpose_weights(w: torch.Tensor) -> torch.Tensor:
    """[kh,kw,Cout,Cin] -> conv_transpose2d weights [Cin, Cout, kh, kw]."""
    return w.permute(3, 2, 0, 1)


_WEIGHT_LAYOUTS = {
    Op.CONV2D: _hwio_to_oihw, Op.FUSED_CONV2D: _hwio_to_oihw, Op.FUSED_WINDOW_CONV2D: _hwio_to_oihw,
    Op.DEPTHWISE_CONV2D: _depthwise_to_grouped, Op.FUSED_DEPTHWISE_CONV2D: _depthwise_to_grouped,
    Op.CONV2D_TRANSPOSE: _transpose_weights, Op.FUSED_CONV2D_TRANSPOSE: _transpose_weights,
}

TORCH = make_torch_table(device="cpu", dtype="float32")


class TorchCallable(Interpreter):
    """The TORCH interpreter of a fixed graph, fixed weights and fixed device/dtype, called with
    one feed per placeholder (`build_torch_callable`, which documents the call).

    Weights and constants are converted once, here, and loaded from `constants`; the
    placeholders' values are the call's feeds. The walk is `Interpreter.run` (one
    liveness rule), straight-line over slots, so `torch.compile` traces a call."""

    def __init__(self, nodes, out_nodes, weights: Mapping, device: torch.device, float_dtype: torch.dtype):
        nodes = list(nodes)
        table = make_torch_table(device, float_dtype, cache_weight_layouts=True)
        constants = [n for n in nodes if n.op is Op.CONSTANT]  # made once: a per-call torch.tensor would
        super().__init__(nodes, out_nodes, table, "TORCH", loaded=constants)  # copy host -> device each call
        self.device, self.float_dtype = device, float_dtype
        self.placeholders = [n for n in self.order if n.op is Op.PLACEHOLDER]
        self.constants: dict[int, torch.Tensor] = {}
        for n in self.order:
            if n.op is Op.VARIABLE:
                self.constants[id(n)] = to_torch(weights[n.attrs["var"]], n.dtype, device, float_dtype)
            elif n.op is Op.CONSTANT:
                self.constants[id(n)] = table[Op.CONSTANT](n, [])
        for n, ins in zip(self.order, self.input_slots):  # channels_last weight copies, made once, here
            if len(ins) > 1 and id(self.order[ins[1]]) in self.constants:
                table.prepare(n, self.constants[id(self.order[ins[1]])])
        self._feed_dtypes = [float_dtype if p.dtype in FLOAT_DTYPES else torch_dtype(p.dtype)
                             for p in self.placeholders]

    def load(self, node: Node):
        return self.constants[id(node)]  # placeholders come with each call (`run(given)`)

    def __call__(self, *feeds) -> tuple:
        """The outputs' tensors for one feed per placeholder (in `self.placeholders` order)."""
        if len(feeds) != len(self.placeholders):
            raise TypeError(f"expected {len(self.placeholders)} feeds ({[p.name for p in self.placeholders]}), "
                            f"got {len(feeds)}")
        given = {}
        for p, v, target in zip(self.placeholders, feeds, self._feed_dtypes):
            if not isinstance(v, torch.Tensor):
                check_value(p, v, "placeholder")  # a host value: the check every executor makes
            elif tuple(v.shape) != tuple(p.shape) or v.is_floating_point() != (p.dtype in FLOAT_DTYPES):
                check_value(p, v, "placeholder")  # raises (tensor attributes only, so a trace stays one graph)
            if not isinstance(v, torch.Tensor) or v.device != self.device or v.dtype != target:
                v = to_torch(v, p.dtype, self.device, self.float_dtype)  # e.g. a CPU float32 tensor for CUDA fp16
            given[self.slot[id(p)]] = v
        return tuple(self.run(given))


def build_torch_callable(graph_or_nodes, outputs, weights: Mapping, device=None, dtype="float32"):
    """A plain function `f(*feeds) -> outputs` of torch ops computing `outputs`.

    feeds: one value per placeholder the outputs need, in graph order (`f.placeholders`
    lists their names), checked like every feed (slimtriton/feeds.py `check_value`); torch
    tensors on the right device and dtype go straight in, other values are converted.
    Returns a tuple of tensors, or one tensor when `outputs` is a single Tensor/Node.
    Weights are converted once, here; the body is `TorchCallable`, the one interpreter loop
    over a precomputed order, so `torch.compile(f)` can trace it (fullgraph). The
    channels_last copies of conv weights are made here, once.
    """
    nodes = list(getattr(graph_or_nodes, "nodes", graph_or_nodes))
    single = not isinstance(outputs, (list, tuple))
    out_nodes = [getattr(o, "node", o) for o in ([outputs] if single else outputs)]
    listed = {id(n) for n in nodes}
    for o in out_nodes:
        if id(o) not in listed:
            raise ValueError(f"output {o.name} is not in the node list")
    check_weights(graph_or_nodes, weights, outputs=out_nodes)  # the one check: unexpected names too
    device, float_dtype = torch_device(device), torch_dtype(dtype)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())  # compares equal to its tensors' .device
    interpreter = TorchCallable(nodes, out_nodes, weights, device, float_dtype)

    def f(*feeds):
        results = interpreter(*feeds)
        return results[0] if single else results

    f.placeholders = [p.name for p in interpreter.placeholders]
    f.device = device
    f.dtype = float_dtype
    f.interpreter = interpreter
    return f
