"""Static sm_80 / sm_90 audit of kernel launches, without a GPU.

Each distinct specialization among the given `KernelLaunch`es (same jit function, signature,
constexprs, divisibility attrs and launch options, as `KernelLaunch.specialization()`
derives them with the JIT's own rule) is compiled ahead of time with

    triton.compile(ASTSource(fn, signature, constexprs, attrs), target=GPUTarget("cuda", arch, 32))

in a subprocess with the interpreter off (the kernels must be real `JITFunction`s there),
and the cubin is inspected with the `cuobjdump --dump-resource-usage` and `nvdisasm` that ship
in the triton wheel: registers, stack and local (spill) bytes, static + dynamic shared memory,
and the count of tensor-core instructions (HMMA; on sm_90 also HGMMA, the wgmma form).

Rule (`AuditRow.ok`): a GEMM-shaped kernel (conv / matmul / conv transpose) must not spill,
and in float16 / bfloat16 it must contain tensor-core instructions.
"""
from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

SIXTEEN_BIT = ("float16", "bfloat16")


@dataclass
class AuditRow:
    name: str            # the launch's (layer) name
    kernel: str          # jit function
    kind: str            # 'gemm' for tensor-core kernels
    dtype: str
    config: str          # tiles / warps / stages
    arch: int
    registers: int = -1
    stack_bytes: int = -1
    local_bytes: int = -1
    shared_bytes: int = -1
    hmma: int = 0
    hgmma: int = 0
    error: str = ""
    count: int = 1       # launches sharing this specialization

    @property
    def spills(self) -> bool:
        return self.stack_bytes > 0 or self.local_bytes > 0

    @property
    def tensor_cores(self) -> bool:
        return self.hmma + self.hgmma > 0

    @property
    def problems(self) -> list[str]:
        out = []
        if self.error:
            out.append("compile failed")
        elif self.kind == "gemm":
            if self.spills:
                out.append("spills")
            if self.dtype in SIXTEEN_BIT and not self.tensor_cores:
                out.append("no tensor-core instructions")
        return out

    @property
    def ok(self) -> bool:
        return not self.problems


def _launch_dtype(launch) -> str:
    if "dtype" in launch.meta:
        return launch.meta["dtype"]
    from .common import DTYPE_NAMES
    for a in launch.args:
        if hasattr(a, "dtype") and a.dtype in DTYPE_NAMES:
            return DTYPE_NAMES[a.dtype]
    return "float32"


def _config_label(launch) -> str:
    c = launch.constexprs
    if "BLOCK_M" in c:
        tiles = f"{c['BLOCK_M']}x{c['BLOCK_N']}x{c['BLOCK_K']}"
    elif "BLOCK_R" in c:
        tiles = f"{c['BLOCK_R']}x{c['BLOCK_C']}"
    else:
        tiles = str(c.get("BLOCK", ""))
    return f"{tiles} w{launch.num_warps} s{launch.num_stages}"


def _spec(launch, arch: int) -> dict:
    sig, consts, attrs = launch.specialization()
    fn = getattr(launch.fn, "fn", launch.fn)
    return {"module": fn.__module__, "fn": fn.__name__, "signature": sig, "constexprs": consts,
            "attrs": [[list(k), v] for k, v in attrs.items()], "num_warps": launch.num_warps,
            "num_stages": launch.num_stages, "arch": arch}


def audit_launches(launches, arch: int = 90, dtype: str | None = None) -> list[AuditRow]:
    """Compile each distinct specialization among `launches` for sm_`arch` and return one
    `AuditRow` per specialization (`dtype` overrides the dtype label, else taken from the
    launch). Runs the compiler in a subprocess with TRITON_INTERPRET=0."""
    distinct: dict[str, tuple] = {}
    for launch in launches:
        key = launch.key()
        if key in distinct:
            distinct[key][1].count += 1
            continue
        fn = getattr(launch.fn, "fn", launch.fn)
        row = AuditRow(launch.name, fn.__name__, launch.kind, dtype or _launch_dtype(launch),
                       _config_label(launch), int(arch))
        distinct[key] = (_spec(launch, int(arch)), row)
    if not distinct:
        return []
    specs = [spec for spec, _ in distinct.values()]
    results = _compile_in_subprocess(specs)
    rows = []
    for (_, row), res in zip(distinct.values(), results):
        for field in ("registers", "stack_bytes", "local_bytes", "shared_bytes", "hmma", "hgmma", "error"):
            setattr(row, field, res.get(field, getattr(row, field)))
        rows.append(row)
    return rows


def _compile_in_subprocess(specs: list[dict]) -> list[dict]:
    env = dict(os.environ)
    env["TRITON_INTERPRET"] = "0"  # real JITFunctions; the package only sets it when unset
    proc = subprocess.run([sys.executable, "-m", "slimtriton.kernels.audit", "--worker"],
                          input=json.dumps(specs), capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"audit worker failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------
# Worker side (interpreter off).

def _tool(name: str) -> str:
    import triton
    return str(Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name)


_RESOURCE = re.compile(r"REG:(\d+)\s+STACK:(\d+)\s+SHARED:(\d+)\s+LOCAL:(\d+)")


def inspect_cubin(cubin: bytes) -> dict:
    """Registers, stack/local bytes, static shared memory and tensor-core instruction counts."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        usage = subprocess.run([_tool("cuobjdump"), "--dump-resource-usage", str(path)],
                               capture_output=True, text=True, check=True).stdout
        sass = subprocess.run([_tool("nvdisasm"), str(path)], capture_output=True, text=True, check=True).stdout
    m = _RESOURCE.search(usage)
    if not m:
        raise RuntimeError(f"cannot parse cuobjdump resource usage: {usage[-500:]}")
    reg, stack, shared, local = (int(v) for v in m.groups())
    return {"registers": reg, "stack_bytes": stack, "local_bytes": local, "shared_static": shared,
            "hmma": len(re.findall(r"\bHMMA\b", sass)), "hgmma": len(re.findall(r"\bHGMMA\b", sass))}


def compile_spec(spec: dict) -> dict:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn = getattr(importlib.import_module(spec["module"]), spec["fn"])
    attrs = {tuple(k): v for k, v in spec["attrs"]}
    src = ASTSource(fn, spec["signature"], spec["constexprs"], attrs)
    target = GPUTarget("cuda", int(spec["arch"]), 32)
    compiled = triton.compile(src, target=target,
                              options={"num_warps": spec["num_warps"], "num_stages": spec["num_stages"]})
    info = inspect_cubin(compiled.asm["cubin"])
    info["shared_bytes"] = max(info.pop("shared_static"), int(getattr(compiled.metadata, "shared", 0)))
    return info


def _worker() -> int:
    specs = json.loads(sys.stdin.read())
    results = []
    for spec in specs:
        try:
            results.append(compile_spec(spec))
        except Exception as exc:  # noqa: BLE001 - reported per row, the audit goes on
            results.append({"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"})
    print(json.dumps(results))
    return 0


# ---------------------------------------------------------------------------------------
# Table.

def _row_label(row, width: int) -> str:
    """`kernel [layer] xN`, cutting the front of the layer's scope (its tail names the layer)."""
    count = f" x{row.count}" if row.count > 1 else ""
    name = row.name
    room = width - len(row.kernel) - len(count) - 3
    if len(name) > room:
        name = "..." + name[-max(room - 3, 8):]
    return f"{row.kernel} [{name}]{count}"


def print_audit_table(rows, file=None) -> bool:
    """Print one line per specialization; returns True when every row passes the rule."""
    file = file or sys.stdout
    header = (f"{'kernel / first layer':52} {'dtype':8} {'arch':>4} {'config':20} {'regs':>4} "
              f"{'spill':>5} {'smem':>7} {'TC (HMMA/HGMMA)':>15}  status")
    print(header, file=file)
    print("-" * len(header), file=file)
    for r in rows:
        label = _row_label(r, 52)
        if r.error:
            print(f"{label[:52]:52} {r.dtype:8} {r.arch:>4} {r.config:20} ERROR {r.error}", file=file)
            continue
        tc = f"{r.hmma}/{r.hgmma}"
        status = "ok" if r.ok else "FAIL: " + ", ".join(r.problems)
        print(f"{label[:52]:52} {r.dtype:8} {r.arch:>4} {r.config:20} {r.registers:>4} "
              f"{r.stack_bytes + r.local_bytes:>5} {r.shared_bytes:>7} {tc:>15}  {status}", file=file)
    bad = [r for r in rows if not r.ok]
    print(f"{len(rows)} specializations, {len(bad)} failing", file=file)
    return not bad


def rows_as_json(rows) -> list[dict]:
    return [{**asdict(r), "ok": r.ok, "problems": r.problems} for r in rows]


# ---------------------------------------------------------------------------------------
# Ad-hoc conv shapes: `slimtriton audit --shapes` and bench/kernels.py's cuDNN comparison.
# (`slimtriton audit NET` audits the launches of the compiler's plan of the whole net.)

@dataclass(frozen=True)
class ConvShape:
    """One conv layer: input [n, h, w, cin], cout, kernel kh x kw, stride, dilation; TF SAME
    padding (total dilation*(k-1), the extra cell at the end, as slim's conv2d_same)."""
    name: str
    n: int
    h: int
    w: int
    cin: int
    cout: int
    kh: int
    kw: int
    stride: int = 1
    dilation: int = 1
    residual: bool = False

    def padding(self):
        def same(k):
            total = self.dilation * (k - 1)
            return (total // 2, total - total // 2)
        return (same(self.kh), same(self.kw))


def parse_shape_spec(text: str) -> ConvShape:
    """`N,H,W,Cin,Cout,KH,KW,stride[,dilation]`."""
    try:
        v = [int(p) for p in text.split(",")]
    except ValueError:
        v = []
    if len(v) not in (8, 9) or min(v) < 1:
        raise ValueError(f"--shapes {text!r}: expected N,H,W,Cin,Cout,KH,KW,stride[,dilation] (positive ints)")
    return ConvShape(f"conv_{text}", *v[:8], v[8] if len(v) == 9 else 1)


def resnet_v1_50_conv_shapes(image_size: int = 224, batch: int = 1) -> list[ConvShape]:
    """The distinct conv layers of TF-Slim resnet_v1_50 (stride in the 3x3 conv of the last
    unit of blocks 1-3, projection shortcut in each block's first unit, logits 1x1 conv), as
    plain conv problems for bench/kernels.py's comparison with cuDNN."""
    shapes = [ConvShape("conv1", batch, image_size, image_size, 3, 64, 7, 7, 2)]
    s = -(-image_size // 2)   # conv1 stride 2 (SAME)
    s = -(-s // 2)            # pool1 3x3 stride 2 (SAME)
    depth_in = 64
    for block, (base, units, stride) in enumerate([(64, 3, 2), (128, 4, 2), (256, 6, 2), (512, 3, 1)], 1):
        depth = 4 * base
        seen = set()
        for unit in range(1, units + 1):
            unit_stride = stride if unit == units else 1
            out_s = -(-s // unit_stride)
            pre = f"block{block}/unit_{unit}/bottleneck_v1"
            layers = []
            if depth_in != depth:
                layers.append(ConvShape(f"{pre}/shortcut", batch, s, s, depth_in, depth, 1, 1, 1))
            layers += [ConvShape(f"{pre}/conv1", batch, s, s, depth_in, base, 1, 1, 1),
                       ConvShape(f"{pre}/conv2", batch, s, s, base, base, 3, 3, unit_stride),
                       ConvShape(f"{pre}/conv3", batch, out_s, out_s, base, depth, 1, 1, 1, residual=True)]
            for layer in layers:
                sig = (layer.h, layer.cin, layer.cout, layer.kh, layer.stride, layer.residual)
                if sig not in seen:
                    seen.add(sig)
                    shapes.append(layer)
            depth_in, s = depth, out_s
    shapes.append(ConvShape("logits", batch, 1, 1, 2048, 1000, 1, 1, 1))
    return shapes


def conv_launches(shapes, dtype: str = "float16") -> list:
    """Record (without running) the conv2d launches of `shapes` with GPU tile choices, each
    with a folded-BN epilogue (scale, shift, relu; residual + relu for `residual` layers)."""
    import torch

    from . import conv2d
    from .common import DTYPES
    from .launch import record_launches

    meta = {"dtype": DTYPES[dtype], "device": "meta"}
    with record_launches(execute=False) as launches:
        for sh in shapes:
            x = torch.empty((sh.n, sh.h, sh.w, sh.cin), **meta)
            w = torch.empty((sh.kh, sh.kw, sh.cin, sh.cout), **meta)
            vec = torch.empty((sh.cout,), dtype=torch.float32, device="meta")
            oh = -(-sh.h // sh.stride)
            ow = -(-sh.w // sh.stride)
            kwargs = dict(scale=vec, shift=vec, act="none" if sh.residual else "relu")
            if sh.residual:
                kwargs.update(residual=torch.empty((sh.n, oh, ow, sh.cout), **meta), act2="relu")
            conv2d(x, w, strides=(sh.stride, sh.stride), padding=sh.padding(),
                   dilations=(sh.dilation, sh.dilation), name=sh.name, **kwargs)
    return launches


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        sys.exit(_worker())
    sys.exit("usage: python -m slimtriton.kernels.audit --worker  (use `slimtriton audit` instead)")
