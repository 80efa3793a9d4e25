"""Static sm_80 / sm_90 audit of kernel launches, without a GPU.

Each distinct specialization among the given `KernelLaunch`es (same jit function, signature,
constexprs, divisibility attrs and launch options, as `KernelLaunch.specialization()`
derives them with the JIT's own rule) is compiled ahead of time with

    triton.compile(ASTSource(fn, signature, constexprs, attrs), target=GPUTarget("cuda", arch, 32))

in a subprocess with the interpreter off (the kernels must be real `JITFunction`s there),
and the cubin is inspected with the `cuobjdump --dump-resource-usage` and `nvdisasm` that ship
in the triton wheel: registers, stack and local (spill) bytes, static + dynamic shared memory,
the count of tensor-core instructions (HMMA; on sm_90 also HGMMA, the wgmma form), and
whether the main loop is software-pipelined (`analyze_sass_loops`).

Supported archs: `SUPPORTED_ARCHS` (sm_80, 86, 89: HMMA; sm_90: HGMMA/HMMA). Older archs lack
the async copies and 16-bit tensor-core forms the kernels are built for, and sm_100+ uses
tcgen05 instructions this audit does not count: `check_arch` refuses them in one line.

Rule (`AuditRow.ok`): a GEMM-shaped kernel (conv / matmul / conv transpose) must not spill,
and in float16 / bfloat16 it must contain tensor-core instructions; on sm_90 its main loop
must also be pipelined (below).

Pipelining, read from the SASS (`analyze_sass_loops`): a loop is the address range from a
backward branch's target to the branch. The main loop is the innermost loop holding the
most tensor-core instructions (HGMMA, HMMA). It is *pipelined* when async global->shared
copies (LDGSTS, or UTMALDG / UBLKCP for TMA) are issued inside it, and no loop enclosing it
issues copies of its own outside it (otherwise the copy ring is filled and drained on every
trip of the outer loop: e.g. a conv whose taps loop is outside its channel loop). A
warp-specialized kernel, whose MMA loop has no copies but a separate producer loop (no MMA)
issues them, counts as pipelined.
"""
from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from .common import DTYPE_NAMES, TORCH_COMPUTE_DTYPES
from .conv import conv2d
from .launch import record_launches

SIXTEEN_BIT = ("float16", "bfloat16")
SUPPORTED_ARCHS = (80, 86, 89, 90)


def check_arch(arch) -> str | None:
    """None when `arch` is supported, else the one-line reason."""
    if arch in SUPPORTED_ARCHS:
        return None
    why = ("sm_100 and newer use tcgen05 tensor-core instructions, which this audit does not count"
           if isinstance(arch, int) and arch >= 100 else "not a GPU architecture the kernels target")
    return (f"--arch {arch} is not supported ({why}); supported: "
            f"{', '.join(str(a) for a in SUPPORTED_ARCHS)} (sm_80 A100, sm_86/89 consumer Ampere/Ada, sm_90 H100/H200)")


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
    pipelined: bool | None = None   # main loop fed by async copies (None: no tensor-core loop)
    pipeline: str = ""              # what the SASS loop analysis found
    sass: str = ""                  # file the disassembly was written to (--sass DIR)
    error: str = ""
    count: int = 1       # launches sharing this specialization
    key: str = ""        # KernelLaunch.key() of the specialization

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
            elif self.dtype in SIXTEEN_BIT and self.arch == 90 and self.pipelined is False:
                out.append("main loop not pipelined")
        return out

    @property
    def ok(self) -> bool:
        return not self.problems


def _launch_dtype(launch) -> str:
    if "dtype" in launch.meta:
        return launch.meta["dtype"]
    for a in launch.args:
        if hasattr(a, "dtype") and a.dtype in DTYPE_NAMES:
            return DTYPE_NAMES[a.dtype]
    return "float32"


def config_label(launch) -> str:
    """`BMxBNxBK wW sS` (or the block sizes a non-GEMM kernel has), for tables."""
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


def audit_launches(launches, arch: int = 90, dtype: str | None = None, sass_dir=None) -> list[AuditRow]:
    """Compile each distinct specialization among `launches` for sm_`arch` and return one
    `AuditRow` per specialization (`dtype` overrides the dtype label, else taken from the
    launch); with `sass_dir`, each one's disassembly is written there. Runs the compiler in a
    subprocess with TRITON_INTERPRET=0."""
    reason = check_arch(arch)
    if reason:
        raise ValueError(reason)
    distinct: dict[str, tuple] = {}
    for launch in launches:
        key = launch.key()
        if key in distinct:
            distinct[key][1].count += 1
            continue
        fn = getattr(launch.fn, "fn", launch.fn)
        row = AuditRow(launch.name, fn.__name__, launch.kind, dtype or _launch_dtype(launch),
                       config_label(launch), int(arch), key=key)
        spec = _spec(launch, int(arch))
        if sass_dir is not None:
            tile = row.config.replace(" ", "_")
            layer = layer_label(launch.name).replace("/", ".")
            spec["sass_path"] = str(Path(sass_dir) / f"{len(distinct):03d}_{fn.__name__}_{tile}_{layer}.sass")
        distinct[key] = (spec, row)
    if not distinct:
        return []
    if sass_dir is not None:
        Path(sass_dir).mkdir(parents=True, exist_ok=True)
    specs = [spec for spec, _ in distinct.values()]
    results = _compile_in_subprocess(specs)
    rows = []
    for (spec, row), res in zip(distinct.values(), results):
        for field in ("registers", "stack_bytes", "local_bytes", "shared_bytes", "hmma", "hgmma",
                      "pipelined", "pipeline", "error"):
            setattr(row, field, res.get(field, getattr(row, field)))
        if "sass_path" in spec and not row.error:
            row.sass = spec["sass_path"]
        rows.append(row)
    return rows


def audit_jobs() -> int:
    """Worker processes compiling in parallel: SLIMTRITON_AUDIT_JOBS, else the CPU count up to 8."""
    value = os.environ.get("SLIMTRITON_AUDIT_JOBS", "")
    if value.strip():
        try:
            jobs = int(value)
        except ValueError:
            raise ValueError(f"SLIMTRITON_AUDIT_JOBS={value!r}: expected a positive integer") from None
        if jobs < 1:
            raise ValueError(f"SLIMTRITON_AUDIT_JOBS={value!r}: expected a positive integer")
        return jobs
    return max(1, min(os.cpu_count() or 1, 8))


def _compile_in_subprocess(specs: list[dict], jobs: int | None = None) -> list[dict]:
    """Compile `specs` in worker processes (interpreter off), `jobs` of them at once (default
    `audit_jobs()`), each taking every jobs-th spec; results in the order of `specs`."""
    env = dict(os.environ)
    env["TRITON_INTERPRET"] = "0"  # real JITFunctions; the package only sets it when unset
    # a worker starts by importing torch and triton (seconds): give each at least 4 specs
    jobs = max(1, min(jobs or audit_jobs(), -(-len(specs) // 4)))
    shares = [specs[i::jobs] for i in range(jobs)]
    procs = [subprocess.Popen([sys.executable, "-m", "slimtriton.kernels.audit", "--worker"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in shares]
    with ThreadPoolExecutor(len(procs)) as pool:  # feed and drain every worker at once
        outputs = list(pool.map(lambda ps: ps[0].communicate(json.dumps(ps[1])), zip(procs, shares)))
    for proc, (_, err) in zip(procs, outputs):
        if proc.returncode != 0:
            raise RuntimeError(f"audit worker failed (exit {proc.returncode}):\n{err[-4000:]}")
    parts = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    results: list[dict] = [{}] * len(specs)
    for i, part in enumerate(parts):
        results[i::jobs] = part
    return results


# ---------------------------------------------------------------------------------------
# Worker side (interpreter off).

def _tool(name: str) -> str:
    return str(Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name)


_RESOURCE = re.compile(r"REG:(\d+)\s+STACK:(\d+)\s+SHARED:(\d+)\s+LOCAL:(\d+)")


def inspect_cubin(cubin: bytes, sass_path: str | None = None) -> dict:
    """Registers, stack/local bytes, static shared memory, tensor-core instruction counts and
    the main-loop analysis (`analyze_sass_loops`); writes the disassembly to `sass_path`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        usage = subprocess.run([_tool("cuobjdump"), "--dump-resource-usage", str(path)],
                               capture_output=True, text=True, check=True).stdout
        sass = subprocess.run([_tool("nvdisasm"), str(path)], capture_output=True, text=True, check=True).stdout
    if sass_path:
        Path(sass_path).write_text(sass)
    m = _RESOURCE.search(usage)
    if not m:
        raise RuntimeError(f"cannot parse cuobjdump resource usage: {usage[-500:]}")
    reg, stack, shared, local = (int(v) for v in m.groups())
    loops = analyze_sass_loops(sass)
    return {"registers": reg, "stack_bytes": stack, "local_bytes": local, "shared_static": shared,
            "hmma": len(re.findall(r"\bHMMA\b", sass)), "hgmma": len(re.findall(r"\bHGMMA\b", sass)),
            "pipelined": loops["pipelined"], "pipeline": loops["why"]}


# One SASS instruction as nvdisasm prints it: `/*0640*/  @!P1 BRA `(.L_x_0) ;`
_SASS_INSTR = re.compile(r"/\*([0-9a-fA-F]+)\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*)[^;]*;")
_SASS_LABEL = re.compile(r"^\s*(\.L\w+):")
_SASS_TARGET = re.compile(r"`\((\.L\w+)\)")
MMA_OPS = ("HGMMA", "HMMA", "QGMMA")
ASYNC_COPY_OPS = ("LDGSTS", "UTMALDG", "UBLKCP")


def analyze_sass_loops(sass: str) -> dict:
    """Find the main (tensor-core) loop of a kernel's SASS and whether it is pipelined.

    Returns {"loops": [(start, end, mma, copies)...], "main_loop": (start, end) or None,
    "pipelined": True / False / None (no tensor-core instruction), "why": one line}.
    Only the `.text.` section is read; addresses are nvdisasm's byte offsets."""
    instrs: list[tuple[int, str, str | None]] = []   # (address, opcode, branch target label)
    labels: dict[str, int] = {}
    pending: list[str] = []
    in_text = False
    for line in sass.splitlines():
        stripped = line.strip()
        if stripped.startswith(".text.") and stripped.endswith(":"):
            in_text = True
            continue
        if stripped.startswith(".section") and in_text and instrs:
            break
        if not in_text:
            continue
        label = _SASS_LABEL.match(line)
        if label:
            pending.append(label.group(1))
            continue
        m = _SASS_INSTR.search(line)
        if not m:
            continue
        address = int(m.group(1), 16)
        for name in pending:
            labels[name] = address
        pending = []
        target = _SASS_TARGET.search(line)
        instrs.append((address, m.group(2), target.group(1) if target else None))

    def count(ops, start, end):
        return sum(1 for a, op, _ in instrs if start <= a <= end and op in ops)

    loops = []
    for address, op, target in instrs:
        if op == "BRA" and target in labels and labels[target] <= address:
            start = labels[target]
            loops.append((start, address, count(MMA_OPS, start, address), count(ASYNC_COPY_OPS, start, address)))
    total_mma = count(MMA_OPS, 0, 1 << 62)
    result = {"loops": loops, "main_loop": None, "pipelined": None, "why": "no tensor-core instruction"}
    if not total_mma:
        return result
    with_mma = [lp for lp in loops if lp[2] > 0]
    if not with_mma:
        result.update(pipelined=False, why=f"no loop holds the {total_mma} tensor-core instructions")
        return result
    main = min(with_mma, key=lambda lp: (-lp[2], lp[1] - lp[0]))
    start, end, mma, copies = main
    result["main_loop"] = (start, end)
    where = f"main loop {start:#x}-{end:#x}: {mma} MMA, {copies} async copies"
    if not copies:
        # warp specialization: a producer loop (disjoint from the MMA loop, no MMA of its own)
        # issues the async copies while the consumer warps run the MMA loop
        producers = [lp for lp in loops if lp[3] > 0 and lp[2] == 0 and (lp[1] < start or lp[0] > end)]
        if producers:
            p = max(producers, key=lambda lp: lp[3])
            result.update(pipelined=True, why=f"{where}; warp-specialized: producer loop {p[0]:#x}-{p[1]:#x} "
                                              f"issues {p[3]} async copies")
            return result
        result.update(pipelined=False, why=f"{where}; its copies are not issued inside it")
        return result
    for outer in loops:
        if outer is not main and outer[0] <= start and outer[1] >= end and (outer[0], outer[1]) != (start, end):
            own = outer[3] - copies
            if own > 0:
                result.update(pipelined=False, why=f"{where}; enclosing loop {outer[0]:#x}-{outer[1]:#x} "
                                                    f"issues {own} copies of its own (pipeline refilled per trip)")
                return result
    result.update(pipelined=True, why=where)
    return result


def compile_spec(spec: dict) -> dict:
    fn = getattr(importlib.import_module(spec["module"]), spec["fn"])
    attrs = {tuple(k): v for k, v in spec["attrs"]}
    src = ASTSource(fn, spec["signature"], spec["constexprs"], attrs)
    target = GPUTarget("cuda", int(spec["arch"]), 32)
    compiled = triton.compile(src, target=target,
                              options={"num_warps": spec["num_warps"], "num_stages": spec["num_stages"]})
    info = inspect_cubin(compiled.asm["cubin"], spec.get("sass_path"))
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

_TF_OP = re.compile(r"^[A-Z][A-Za-z0-9]*$")   # Relu, BiasAdd, FusedBatchNormV3, MaxPool (no '_')


def layer_label(name: str) -> str:
    """The layer a launch belongs to, from its (last fused op's) scope name: the net's scope
    and the TF op names after the layer's scopes are dropped, the rest is kept whole, e.g.
    `resnet_v1_50/block1/unit_1/bottleneck_v1/conv2/Relu` -> `block1/unit_1/bottleneck_v1/conv2`,
    `InceptionV3/Mixed_6b/Branch_1/Conv2d_0b_1x7/Relu` -> `Mixed_6b/Branch_1/Conv2d_0b_1x7`,
    `.../conv2/Relu/splitk_reduce` (a wrapper's second launch) -> `.../conv2/splitk_reduce`."""
    parts = [p for p in name.split("/") if p]
    if len(parts) > 1:
        parts = parts[1:]
    lead = 0
    while lead < len(parts) and _TF_OP.match(parts[lead]):   # leading scopes such as Logits
        lead += 1
    if lead == len(parts):                                     # only op names: the scope that holds them
        return parts[0] if parts else name
    kept = parts[:lead] + [p for p in parts[lead:] if not _TF_OP.match(p)]
    return "/".join(kept)


def print_audit_table(rows, file=None) -> bool:
    """Print one line per specialization; returns True when every row passes the rule.
    Layer names are never cut: the column is as wide as the longest one."""
    file = file or sys.stdout
    labels = [layer_label(r.name) + (f" (x{r.count})" if r.count > 1 else "") for r in rows]
    width = max([len("first layer (launches)")] + [len(x) for x in labels])
    kwidth = max([len("kernel")] + [len(r.kernel) for r in rows])
    header = (f"{'first layer (launches)':{width}}  {'kernel':{kwidth}}  {'tile BMxBNxBK warps stages':26} "
              f"{'regs':>4} {'spill B':>7} {'smem KiB':>8} {'HMMA/HGMMA':>10} {'pipelined':>9}  status")
    print(f"dtype {rows[0].dtype if rows else '-'}, sm_{rows[0].arch if rows else '-'}", file=file)
    print(header, file=file)
    print("-" * len(header), file=file)
    for r, label in zip(rows, labels):
        lead = f"{label:{width}}  {r.kernel:{kwidth}}  {r.config:26}"
        if r.error:
            print(f"{lead} ERROR {r.error}", file=file)
            continue
        tc = f"{r.hmma}/{r.hgmma}"
        pipe = {True: "yes", False: "NO", None: "-"}[r.pipelined]
        status = "ok" if r.ok else "FAIL: " + ", ".join(r.problems)
        print(f"{lead} {r.registers:>4} {r.stack_bytes + r.local_bytes:>7} {r.shared_bytes / 1024:>8.1f} "
              f"{tc:>10} {pipe:>9}  {status}", file=file)
    bad = [r for r in rows if not r.ok]
    unpiped = [r for r in rows if r.pipelined is False]
    print(f"{len(rows)} specializations, {len(bad)} failing, {len(unpiped)} with a tensor-core loop "
          f"that is not pipelined", file=file)
    return not bad


def rows_as_json(rows) -> list[dict]:
    out = []
    for r in rows:
        d = {**asdict(r), "layer": layer_label(r.name), "ok": r.ok, "problems": r.problems}
        d.pop("key")
        out.append(d)
    return out


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
    meta = {"dtype": TORCH_COMPUTE_DTYPES[dtype], "device": "meta"}
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
