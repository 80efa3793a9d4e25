"""Saved engines: a compiled model written to a directory and loaded without the compiler.

    model = st.compile(g, end_points["predictions"], weights, dtype="float16")
    model.save("resnet50.engine", archs=(90,))          # archs: ahead-of-time kernels, no GPU needed
    model = st.load_compiled("resnet50.engine")          # no fusion pass, no weight folding or packing
                                                         # (slimtriton.compiler.load_compiled)

An engine directory holds

    manifest.json        format, versions (slimtriton, Triton, torch), dtype, precision, input and
                         output specs, target archs, the ahead-of-time kernels, and the SHA-256 of
                         every other file and of every prepared parameter
    program.json         the fused program (after every IR pass): nodes in order with op, input
                         names, attrs, shape, dtype; outputs; the graph's placeholders; and its
                         plan record (`plan`: every step's kernel call as data, runtime/step.py)
    params.safetensors   the prepared parameters exactly as the kernels read them (packed conv
                         weights in the compute dtype, fp32 epilogue vectors), keyed by plan key
    params.json          how to rebuild each prepared parameter (PackedWeight fields)
    tiles.json           the autotune cache entries (tile winners) of this Triton version
    program_batch{B}.json  a dynamic-batch model (`st.compile(..., max_batch=N)`): one fused
                         program per batch bucket B instead of program.json, listed in the
                         manifest's `programs` with `batch_sizes`, `batch_range` and the
                         recorded `dynamic_inputs` ([None, ...]); every bucket reads the one
                         params.safetensors (the buckets' plans read the same prepared
                         parameters, checked at compile time and again at load)
    aot/sm_XX/           with `archs`: every kernel specialization the plan launches (every
                         bucket's plan for a dynamic model), compiled ahead of time for sm_XX into
                         a Triton cache directory (as `slimtriton audit` compiles them, on a
                         machine without a GPU); the manifest lists each with the buckets using it

Loading checks the format and the hashes first (a damaged or edited file is one
`EngineError` naming the file), then the versions: another slimtriton or Triton version is an
error (the plan's kernels and their cache keys belong to a version), another torch version one
warning. The plan is rebuilt from program.json by the lowering table only (`build_plan`: no
fusion pass runs) and must equal the saved plan record step by step (else one error naming
the step: the parameters and kernels were made for those calls; the steps' FLOPs come from the
record, as program.json lacks the recorded ops they count), the parameters come from params.safetensors as they were (no folding, no
packing), so the outputs are bit for bit those of the saved model on the same device and dtype.
A dynamic-batch engine loads as the dynamic model it was: one plan per bucket rebuilt the same
way, the shared arena, any batch up to its largest bucket (a batch outside is one error).
On a CUDA device whose compute capability has an `aot/sm_XX` entry, those kernels are copied
into Triton's cache directory, where the Triton JIT looks for a kernel before compiling it
(same Triton version, same specialization); any kernel whose entry does not match is compiled
by the JIT as usual (slower first call, same result). Without a matching entry one warning says
the kernels will be JIT-compiled.
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
from safetensors import SafetensorError

from . import __version__
from .fusion.program import Program
from .ir import ops
from .ir.node import Node
from .ir.ops import Op
from .ir.shapes import infer
from .runtime.plan import build_plan, plan_to_json

# Imports marked `# lazy` stay inside their functions: torch, safetensors.torch and the kernel
# and runtime modules that import torch and triton load only when an engine is saved or
# loaded, as compiler.py imports this module and `plan`/`report` work without them.

FORMAT = "slimtriton-engine/1"
MANIFEST = "manifest.json"
PROGRAM = "program.json"
PARAMS = "params.safetensors"
PARAMS_META = "params.json"
TILES = "tiles.json"
SUPPORTED_AOT_ARCHS = (80, 86, 89, 90)


class EngineError(ValueError):
    """An engine directory that cannot be loaded: missing, damaged, edited, or made for another
    version. The message names the directory and the file."""


# -- the fused program as JSON ------------------------------------------------------------------

def _encode(value):
    """An attribute value as JSON (tuples as lists, enums by class and member name)."""
    if isinstance(value, enum.Enum):
        return {"$enum": type(value).__name__, "name": value.name}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return {"$float": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"attribute value {value!r} ({type(value).__name__}) cannot be saved in an engine")


def _decode(value):
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    if isinstance(value, dict):
        if "$float" in value:
            return float(value["$float"])
        if "$enum" in value:
            return getattr(getattr(ops, value["$enum"]), value["name"])
        raise ValueError(f"unknown encoded value {value!r}")
    return value


def _placeholder_json(n) -> dict:
    return {"name": n.name, "attrs": {k: _encode(v) for k, v in n.attrs.items()}, "shape": list(n.shape),
            "dtype": n.dtype}


def _placeholder_from_json(d) -> Node:
    attrs = {k: _decode(v) for k, v in d["attrs"].items()}
    return Node.make(Op.PLACEHOLDER, (), attrs, tuple(d["shape"]), d["dtype"], d["name"])


def program_to_json(program) -> dict:
    """The fused program's nodes (in order; inputs by name), outputs and the graph's placeholders."""
    nodes = [{"name": n.name, "op": n.op.name, "inputs": [i.name for i in n.inputs],
              "attrs": {k: _encode(v) for k, v in n.attrs.items()}, "shape": list(n.shape), "dtype": n.dtype}
             for n in program.nodes]
    placeholders = [_placeholder_json(n) for n in program.recorded.values() if n.op is Op.PLACEHOLDER]
    return {"nodes": nodes, "outputs": [o.name for o in program.outputs], "placeholders": placeholders,
            "origin": {k: list(v) for k, v in program.origin.items() if k in {n.name for n in program.nodes}},
            "kept_scale": dict(program.kept_scale)}


def program_from_json(data: dict):
    """The Program of `program_to_json`, every node re-checked by its shape rule and the verifier."""
    by_name: dict[str, Node] = {}
    nodes = []
    for d in data["nodes"]:
        op = Op[d["op"]]
        inputs = tuple(by_name[i] for i in d["inputs"])
        attrs = {k: _decode(v) for k, v in d["attrs"].items()}
        shape, dtype = infer(op, inputs, attrs, d["name"])
        if list(shape) != list(d["shape"]) or dtype != d["dtype"]:
            raise ValueError(f"node {d['name']}: saved as {d['dtype']}{d['shape']}, its shape rule gives "
                             f"{dtype}{list(shape)}")
        node = Node.make(op, inputs, attrs, shape, dtype, d["name"])
        by_name[node.name] = node
        nodes.append(node)
    recorded = dict(by_name)
    for d in data["placeholders"]:
        if d["name"] not in recorded:
            recorded[d["name"]] = _placeholder_from_json(d)
    outputs = [by_name[o] for o in data["outputs"]]
    origin = {k: tuple(v) for k, v in data["origin"].items()}
    program = Program(nodes, outputs, {}, origin, recorded)
    program.kept_scale = dict(data.get("kept_scale", {}))
    program.verify("loading an engine")
    return program


def _spec_to_json(spec):
    kind = spec[0]
    if kind == "leaf":
        return {"leaf": spec[1]}
    if kind == "dict":
        if spec[1] is not dict or not all(isinstance(k, str) for k, _ in spec[2]):
            raise TypeError("an engine saves outputs given as a tensor, a list/tuple, or a dict with str keys")
        return {"dict": [[k, _spec_to_json(v)] for k, v in spec[2]]}
    if spec[1] not in (list, tuple):
        raise TypeError(f"an engine saves outputs given as a list or tuple, not a {spec[1].__name__}")
    return {"list" if spec[1] is list else "tuple": [_spec_to_json(v) for v in spec[2]]}


def _spec_from_json(data):
    if "leaf" in data:
        return ("leaf", data["leaf"])
    if "dict" in data:
        return ("dict", dict, [(k, _spec_from_json(v)) for k, v in data["dict"]])
    kind = "list" if "list" in data else "tuple"
    return ("seq", list if kind == "list" else tuple, [_spec_from_json(v) for v in data[kind]])


# -- hashing ------------------------------------------------------------------------------------

def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sha256_tensor(t) -> str:
    import torch  # lazy: torch
    data = t.detach().cpu().contiguous()
    if data.dtype == torch.bfloat16:
        data = data.view(torch.int16)
    return hashlib.sha256(data.numpy().tobytes()).hexdigest()


def _versions() -> dict:
    import torch  # lazy: torch
    import triton  # lazy: triton
    return {"slimtriton": __version__, "triton": triton.__version__, "torch": torch.__version__}


# -- save ---------------------------------------------------------------------------------------

def save(model, path, archs=(), overwrite: bool = False, meta: dict | None = None) -> Path:
    """Write `model` (a callable CompiledModel) to the directory `path`; see the module docstring.

    archs: compute capabilities (e.g. (80, 90)) to compile every kernel specialization for ahead
    of time, on this machine (no GPU needed). meta: JSON-able facts kept in the manifest (the
    `slimtriton compile` command records the net's name and which output it planned)."""
    import torch  # lazy: torch
    from safetensors.torch import save_file  # lazy: imports torch

    from .kernels.conv import PackedWeight  # lazy: kernels import torch and triton

    if model.analysis_only:
        raise ValueError("this model was compiled without weights (analysis only): there is nothing to save; "
                         "compile it with weights first")
    archs = tuple(int(a) for a in archs)
    bad = [a for a in archs if a not in SUPPORTED_AOT_ARCHS]
    if bad:
        raise ValueError(f"archs {bad}: ahead-of-time kernels are built for {list(SUPPORTED_AOT_ARCHS)}")
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True (or remove it) to replace the engine")
        if not (path / MANIFEST).is_file():
            raise FileExistsError(f"{path} exists and is not an engine (no {MANIFEST}); not overwriting it")
        shutil.rmtree(path)
    path.mkdir(parents=True)

    plan = model.plan
    buckets = dict(model.plans)  # batch bucket -> plan; {} for a static model
    programs = {b: program_file(b) for b in buckets} if buckets else {None: PROGRAM}
    for b, name in programs.items():
        bucket_plan = buckets[b] if b else plan
        saved = {**program_to_json(bucket_plan.program), "plan": plan_to_json(bucket_plan)}
        (path / name).write_text(json.dumps(saved, indent=1))

    tensors, how = {}, {}
    for key, value in model._params.items():  # prepared once; every bucket's plan reads them
        if isinstance(value, PackedWeight):
            tensors[key] = value.data.detach().cpu().contiguous()
            how[key] = {"packed": value.kind, "kh": value.kh, "kw": value.kw, "cin": value.cin, "cout": value.cout}
        elif value is None:
            how[key] = {"none": True}
        else:
            tensors[key] = value.detach().cpu().contiguous()
            how[key] = {"tensor": True}
    save_file(tensors, str(path / PARAMS))
    (path / PARAMS_META).write_text(json.dumps(how, indent=1, sort_keys=True))
    (path / TILES).write_text(json.dumps(_tile_entries(), indent=1, sort_keys=True))

    launches = _bucket_launches(model)
    aot = {arch: _compile_ahead_of_time(launches, path / "aot" / f"sm_{arch}", arch) for arch in archs}
    files = {name: _sha256_file(path / name) for name in (*programs.values(), PARAMS, PARAMS_META, TILES)}
    for arch in archs:
        root = path / "aot" / f"sm_{arch}"
        for f in sorted(p for p in root.rglob("*") if p.is_file()):
            files[str(f.relative_to(path))] = _sha256_file(f)
    dynamic = set(model._dynamic_inputs) if buckets else set()

    def io(n, dynamic_batch):
        shape = [None, *n.shape[1:]] if dynamic_batch else list(n.shape)
        return {"name": n.name, "shape": shape, "dtype": n.dtype}
    manifest = {
        "format": FORMAT,
        "versions": _versions(),
        "dtype": plan.dtype,
        "precision": model.precision,
        "inputs": [io(n, n.name in dynamic) for n in plan.inputs],
        "outputs": [io(n, bool(buckets)) for n in plan.outputs],  # a dynamic model's outputs all lead with the batch
        "output_spec": _spec_to_json(model._spec),
        "batch": [None if n.name in dynamic else n.shape[0] for n in plan.inputs if n.shape],
        "target_archs": list(archs),
        "aot_kernels": aot,
        "parameter_sha256": {k: _sha256_tensor(v) for k, v in tensors.items()},
        "files": files,
        "meta": dict(meta or {}),
    }
    if buckets:
        manifest.update({
            "batch_sizes": list(buckets),
            "batch_range": [1, max(buckets)],
            "programs": {str(b): name for b, name in programs.items()},
            "dynamic_inputs": [_placeholder_json(n) for n in model._dynamic_inputs.values()],
        })
    (path / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return path


def program_file(batch: int) -> str:
    """The file of a dynamic-batch engine's program for batch bucket `batch`."""
    return f"program_batch{batch}.json"


def _bucket_launches(model) -> list[tuple]:
    """[(batch bucket or None, KernelLaunch)] of every plan of `model`, recorded on meta tensors."""
    if not model.plans:
        return [(None, launch) for step in model.launches() for launch in step]
    from .runtime.launches import record_plan_launches  # lazy: imports torch and the kernels
    return [(b, launch) for b, p in model.plans.items()
            for step in record_plan_launches(p, model.precision) for launch in step]


def _tile_entries() -> dict:
    """The autotune cache's entries for this Triton version (GPU tile winners)."""
    import triton  # lazy: triton

    from .kernels import config  # lazy: kernels import torch and triton
    tag = f"|triton-{triton.__version__}|"
    return {k: v for k, v in config._load_cache().items() if tag in k}


def _compile_ahead_of_time(launches, cache_dir: Path, arch: int) -> list[dict]:
    """Compile every distinct kernel specialization of `launches` ([(batch bucket or None,
    KernelLaunch)]) for sm_`arch` into a Triton cache directory (a subprocess with the
    interpreter off, as the audit does); one entry per specialization, with the batch buckets
    that launch it for a dynamic-batch model."""
    from .kernels import audit  # lazy: kernels import torch and triton

    specs, names, batches, index = [], [], [], {}
    for bucket, launch in launches:
        key = launch.key()
        if key not in index:
            index[key] = len(specs)
            specs.append(audit._spec(launch, arch))
            names.append(launch.name)
            batches.append([])
        if bucket is not None and bucket not in batches[index[key]]:
            batches[index[key]].append(bucket)
    cache_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TRITON_INTERPRET="0", TRITON_CACHE_DIR=str(cache_dir.resolve()))
    proc = subprocess.run([sys.executable, "-m", "slimtriton.kernels.audit", "--worker"], input=json.dumps(specs),
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"ahead-of-time compilation for sm_{arch} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-4000:]}")
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    failed = [(n, r["error"]) for n, r in zip(names, results) if r.get("error")]
    if failed:
        raise RuntimeError(f"ahead-of-time compilation for sm_{arch} failed for {len(failed)} kernel(s): "
                           + "; ".join(f"{n}: {e}" for n, e in failed[:5]))
    entries = []
    for n, s, r, b in zip(names, specs, results, batches):
        entry = {"layer": n, "kernel": s["fn"], "num_warps": s["num_warps"], "num_stages": s["num_stages"],
                 "registers": r.get("registers"), "spill_bytes": r.get("stack_bytes", 0) + r.get("local_bytes", 0)}
        if b:
            entry["batches"] = b
        entries.append(entry)
    return entries


# -- load ---------------------------------------------------------------------------------------

def _fail(path: Path, message: str):
    raise EngineError(f"engine {path}: {message}")


def read_manifest(path, verify_files: bool = True) -> dict:
    """The manifest of the engine at `path`, after checking the format and (`verify_files`) every
    file's hash; without, for a caller that loads the engine next (`load` hashes them then)."""
    path = Path(path)
    if not path.is_dir():
        _fail(path, "is not a directory (an engine is the directory model.save() wrote)")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        _fail(path, f"{MANIFEST} is missing: not an engine directory")
    except ValueError as exc:
        _fail(path, f"{MANIFEST} is not valid JSON ({exc})")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        _fail(path, f"{MANIFEST} has format {manifest.get('format') if isinstance(manifest, dict) else None!r}, "
                    f"expected {FORMAT!r}")
    if verify_files:
        _verify_files(path, manifest["files"])
    return manifest


def _verify_files(path: Path, digests: dict) -> None:
    for name, digest in digests.items():
        f = path / name
        if not f.is_file():
            _fail(path, f"{name} is missing")
        if _sha256_file(f) != digest:
            _fail(path, f"{name} is damaged or was edited (its SHA-256 differs from the manifest's)")


@dataclasses.dataclass
class LoadedEngine:
    """What `load` rebuilt; `slimtriton.compiler.load_compiled` makes the model of it."""
    plan: object                  # the plan (a dynamic model's largest bucket)
    output_spec: tuple
    params: dict                  # the prepared parameters, on the device
    precision: str
    plans: dict                   # batch bucket -> plan (dynamic batch); {} for a static engine
    dynamic_inputs: list          # the recorded placeholders with the unknown batch ([None, ...])


def _load_program(path: Path, name: str, dtype: str):
    """The plan rebuilt from program file `name`, checked step by step against the plan record
    saved with it (the kernel calls the parameters and ahead-of-time kernels were made for)."""
    try:
        data = json.loads((path / name).read_text())
        program = program_from_json(data)
    except (KeyError, ValueError, TypeError) as exc:
        _fail(path, f"{name} does not describe a valid program ({type(exc).__name__}: {exc})")
    plan = build_plan(program, dtype)
    saved, rebuilt = data.get("plan"), _without_flops(plan_to_json(plan))
    if not isinstance(saved, dict) or _without_flops(saved) != rebuilt:
        where = "it holds no plan record" if not isinstance(saved, dict) else _first_difference(saved, rebuilt)
        _fail(path, f"{name}: the plan this slimtriton builds from the program differs from the saved one "
                    f"({where}); compile and save the engine again")
    for step, record in zip(plan.steps, saved["steps"]):
        step.flops = record["flops"]  # counted on the recorded graph's ops, which program.json does not hold
    return plan


def _without_flops(plan_json: dict) -> dict:
    """A plan record without the steps' FLOPs (the one field the program alone cannot give)."""
    steps = plan_json.get("steps")
    if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
        return {"steps": None}
    return {**plan_json, "steps": [{k: v for k, v in s.items() if k != "flops"} for s in steps]}


def _first_difference(saved: dict, rebuilt: dict) -> str:
    steps, now = _without_flops(saved)["steps"] or [], rebuilt["steps"]
    for k, (a, b) in enumerate(zip(steps, now)):
        if a != b:
            keys = sorted(f for f in set(a) | set(b) if a.get(f) != b.get(f)) if isinstance(a, dict) else []
            return f"step {k} ({b['kernel']} {b['outputs'][0]['node']}): {', '.join(keys) or 'record'} differ"
    if len(steps) != len(now):
        return f"{len(steps)} saved steps, {len(now)} rebuilt"
    return "the parameter preparation differs"


def _load_bucket_plans(path: Path, manifest: dict) -> tuple[dict, list]:
    """{batch bucket: plan} and the dynamic placeholders of a dynamic-batch engine, each program
    checked to be planned at its bucket's batch."""
    try:
        programs = {int(b): name for b, name in manifest["programs"].items()}
        sizes = [int(b) for b in manifest["batch_sizes"]]
        dynamic = [_placeholder_from_json(d) for d in manifest["dynamic_inputs"]]
    except (KeyError, TypeError, ValueError) as exc:
        _fail(path, f"{MANIFEST}: the dynamic batch entries are incomplete or malformed "
                    f"({type(exc).__name__}: {exc})")
    if sorted(programs) != sorted(sizes) or not sizes or manifest.get("batch_range") != [1, max(sizes)]:
        _fail(path, f"{MANIFEST}: batch_sizes {sizes}, batch_range {manifest.get('batch_range')} and programs "
                    f"{sorted(programs)} disagree")
    if not dynamic or any(not n.dynamic_batch for n in dynamic):
        _fail(path, f"{MANIFEST}: dynamic_inputs must list the placeholders recorded with a None batch")
    names = {n.name for n in dynamic}
    plans = {}
    for b in sorted(programs):
        name = programs[b]
        if name not in manifest["files"]:
            _fail(path, f"{name} (the program of batch {b}) is not among the manifest's hashed files")
        plans[b] = _load_program(path, name, manifest["dtype"])
        wrong = [f"{n.name}{list(n.shape)}" for n in plans[b].inputs if n.name in names and n.shape[0] != b]
        if wrong:
            _fail(path, f"{name} should hold the plan for batch {b}; its inputs are {wrong}")
    first = plans[min(plans)]
    for b, p in plans.items():
        if p.prep != first.prep:
            _fail(path, f"{programs[b]} reads other parameters than {programs[min(plans)]}; the buckets of an "
                        f"engine share one set of prepared parameters")
    return plans, dynamic


def load(path, device) -> LoadedEngine:
    """The plan(s), output spec, prepared parameters (on `device`, a torch.device) and precision
    of the engine at `path`; `slimtriton.compiler.load_compiled` makes the model of them."""
    from safetensors.torch import load_file  # lazy: imports torch

    from .kernels import config  # lazy: kernels import torch and triton
    from .kernels.conv import PackedWeight  # lazy: kernels import torch and triton

    path = Path(path)
    manifest = read_manifest(path)
    saved, now = manifest["versions"], _versions()
    for lib in ("slimtriton", "triton"):
        if saved[lib] != now[lib]:
            _fail(path, f"was saved with {lib} {saved[lib]}, this process has {lib} {now[lib]}; "
                        f"compile and save it again with this version")
    if saved["torch"] != now["torch"]:
        warnings.warn(f"slimtriton: engine {path} was saved with torch {saved['torch']}, this process has torch "
                      f"{now['torch']}", stacklevel=3)
    if "programs" in manifest:  # a dynamic-batch engine: one program per batch bucket
        plans, dynamic = _load_bucket_plans(path, manifest)
        plan = plans[max(plans)]
    else:
        plans, dynamic = {}, []
        plan = _load_program(path, PROGRAM, manifest["dtype"])
    try:
        tensors = load_file(str(path / PARAMS), device="cpu")
    except (SafetensorError, OSError) as exc:
        _fail(path, f"{PARAMS} cannot be read ({exc})")
    for key, digest in manifest["parameter_sha256"].items():
        if key not in tensors or _sha256_tensor(tensors[key]) != digest:
            _fail(path, f"parameter {key} in {PARAMS} does not match the manifest's hash")
    meta = json.loads((path / PARAMS_META).read_text())
    missing = sorted(set(plan.prep) - set(meta))
    if missing:
        _fail(path, f"{PARAMS_META} lacks parameters the plan reads: {missing[:10]}")
    params = {}
    for key, m in meta.items():
        if m.get("none"):
            params[key] = None
        elif "packed" in m:
            params[key] = PackedWeight(m["packed"], tensors[key].to(device), m["kh"], m["kw"], m["cin"], m["cout"])
        else:
            params[key] = tensors[key].to(device)
    config._load_cache().update({k: v for k, v in json.loads((path / TILES).read_text()).items()
                                 if k not in config._load_cache()})
    if device.type == "cuda":
        _install_aot_kernels(path, manifest, device)
    return LoadedEngine(plan, _spec_from_json(manifest["output_spec"]), params, manifest["precision"], plans, dynamic)


def _install_aot_kernels(path: Path, manifest: dict, device) -> None:
    """Copy the engine's sm_XX Triton cache entries for this GPU into Triton's cache directory."""
    import torch  # lazy: torch
    major, minor = torch.cuda.get_device_capability(device)
    arch = major * 10 + minor
    source = path / "aot" / f"sm_{arch}"
    if arch not in manifest["target_archs"] or not source.is_dir():
        warnings.warn(f"slimtriton: engine {path} has no ahead-of-time kernels for sm_{arch} (it has "
                      f"{manifest['target_archs'] or 'none'}); the kernels are JIT-compiled at the first call",
                      stacklevel=3)
        return
    target = Path(os.environ.get("TRITON_CACHE_DIR") or Path.home() / ".triton" / "cache")
    for entry in source.iterdir():
        if entry.is_dir() and not (target / entry.name).exists():
            shutil.copytree(entry, target / entry.name)
