"""A runnable, self-contained Python file for one kernel launch (`slimtriton report --dump`).

Like torch.compile's `output_code.py`: the file holds the Triton source of the launched jit
function and of every jit helper it calls (found by walking the names its source uses in
its module), the module constants it reads, then a `main()` that allocates random inputs
of the recorded shapes, strides and dtypes, and launches the kernel with the recorded grid,
constexprs, num_warps and num_stages. It imports only torch and triton (no slimtriton), so
it can be edited, bisected or sent in a bug report:

    python 012_conv2d_resnet_v1_50__block1__unit_1__bottleneck_v1__conv1__Relu.py

On a machine without a CUDA device it runs under the Triton interpreter (it sets
`TRITON_INTERPRET=1` itself). The values are random: the file reproduces a launch (compile
errors, crashes, out-of-bounds accesses, timing), not the model's numbers. A global the
source uses that cannot be written out (neither a jit function, a module, nor a plain
constant) makes the file say plainly, at its top, that it is source only.
"""
from __future__ import annotations

import ast
import inspect
import textwrap
import types

import torch

_IMPORTED = {"triton": "import triton", "tl": "import triton.language as tl", "torch": "import torch",
             "np": "import numpy as np", "math": "import math"}


def _python_fn(fn):
    """The Python function under a JITFunction / InterpretedFunction."""
    return getattr(fn, "fn", fn)


def _is_jit(obj) -> bool:
    return type(obj).__name__ in ("JITFunction", "InterpretedFunction") and callable(getattr(obj, "fn", None))


def _used_names(source: str) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and node.id not in names:
            names.append(node.id)
    return names


def _constant_literal(value) -> str | None:
    """Python source for a plain constant (tl.constexpr wrapped), else None."""
    import triton.language as tl  # lazy: triton after slimtriton.kernels has set TRITON_INTERPRET (kernels/__init__.py)
    if isinstance(value, tl.constexpr):
        inner = _constant_literal(value.value)
        return None if inner is None else f"tl.constexpr({inner})"
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, (tuple, list, dict)):
        text = repr(value)
        try:
            ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return None
        return text
    return None


def collect_sources(fn) -> tuple[list[str], list[str], list[str]]:
    """(import lines, definitions: constants then jit helpers then `fn`, in dependency order;
    the names that could not be written out). Walks the jit functions `fn` calls."""
    imports: list[str] = []
    constants: list[str] = []
    functions: list[str] = []
    unresolved: list[str] = []
    done: set[int] = set()

    def visit(jit, alias=None):
        pyfn = _python_fn(jit)
        if id(pyfn) in done:
            return
        done.add(id(pyfn))
        try:
            source = textwrap.dedent(inspect.getsource(pyfn))
        except (OSError, TypeError):  # defined where no source file exists (exec, a REPL)
            unresolved.append(f"{pyfn.__name__} (no source file)")
            return
        params = set(inspect.signature(pyfn).parameters)
        module_globals = pyfn.__globals__
        for name in _used_names(source):
            if name in params or name not in module_globals or name == pyfn.__name__:
                continue
            value = module_globals[name]
            if name in _IMPORTED:
                if _IMPORTED[name] not in imports:
                    imports.append(_IMPORTED[name])
            elif _is_jit(value):
                visit(value, alias=name)
            elif isinstance(value, types.ModuleType):
                line = f"import {value.__name__} as {name}"
                if line not in imports:
                    imports.append(line)
            else:
                literal = _constant_literal(value)
                if literal is None:
                    unresolved.append(f"{name} ({type(value).__name__}, in {pyfn.__module__})")
                elif f"{name} = {literal}" not in constants:
                    constants.append(f"{name} = {literal}")
        functions.append(f"# from {pyfn.__module__}\n{source.rstrip()}")
        if alias is not None and alias != pyfn.__name__:
            functions.append(f"{alias} = {pyfn.__name__}")

    visit(fn)
    return imports, constants + functions, unresolved


def _tensor_expr(t: torch.Tensor) -> str:
    return f"_random({list(t.shape)}, {list(t.stride())}, {int(t.storage_offset())}, {t.dtype})"


def _arg_expr(value, tensors: dict) -> str:
    """A runtime argument as source; a tensor passed twice (aliased) is one variable."""
    if isinstance(value, torch.Tensor):
        if id(value) not in tensors:
            tensors[id(value)] = (f"t{len(tensors)}", _tensor_expr(value))
        return tensors[id(value)][0]
    literal = _constant_literal(value)
    if literal is None:
        raise TypeError(f"a {type(value).__name__} argument cannot be written out")
    return literal


_PRELUDE = '''\
import os

import torch

# No CUDA device: run under the Triton interpreter (must be set before triton is imported).
INTERPRET = not torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
if INTERPRET:
    os.environ["TRITON_INTERPRET"] = "1"
DEVICE = "cpu" if INTERPRET else "cuda"
'''

_RANDOM = '''\
def _random(shape, stride, offset, dtype, seed=[0]):
    """A tensor of `shape` / `stride` / storage `offset` (as recorded), random values."""
    seed[0] += 1
    size = offset + sum((n - 1) * s for n, s in zip(shape, stride)) + 1 if all(shape) else offset
    gen = torch.Generator().manual_seed(seed[0])
    if dtype.is_floating_point:
        base = torch.randn(size, generator=gen, dtype=torch.float32)
    else:
        base = torch.randint(0, 2, (size,), generator=gen, dtype=torch.int64)
    return base.to(dtype).to(DEVICE).as_strided(shape, stride, offset)
'''


def reproducer_source(launch, header: list[str] = ()) -> str:
    """The text of a runnable file for one `KernelLaunch` (see the module docstring)."""
    pyfn = _python_fn(launch.fn)
    imports, definitions, unresolved = collect_sources(launch.fn)
    names = launch.param_names()
    runtime = [n for n in names if n not in launch.constexprs]
    tensors: dict = {}
    try:
        args = [f"        {name}={_arg_expr(value, tensors)}," for name, value in zip(runtime, launch.args)]
    except TypeError as err:
        unresolved.append(str(err))
        args = []
    if any(t.dtype == torch.bfloat16 for t in launch.args if isinstance(t, torch.Tensor)):
        header = [*header, "bfloat16: the stock Triton interpreter computes bf16 tl.dot wrongly (slimtriton",
                  "patches it in slimtriton.kernels.config; this file does not): trust a GPU run for values."]
    lines = [f'"""Reproducer of one slimtriton kernel launch: {launch.name}']
    lines += [f"{h}" for h in header]
    lines += ["", "Run it: python THIS_FILE.py  (no CUDA device: the Triton interpreter; values are random)."]
    if unresolved:
        lines += ["", "SOURCE ONLY: this file cannot run as is; these globals of the kernel could not be",
                  "written out: " + ", ".join(unresolved)]
    lines += ['"""', _PRELUDE]
    for line in ["import triton", "import triton.language as tl", *imports]:
        if line not in lines and line != "import torch":
            lines.append(line)
    lines += ["", ""]
    for d in definitions:
        if "\n" in d:
            lines += ["", d, "", ""]
        else:
            lines.append(d)
    lines += ["", _RANDOM, ""]
    grid = tuple(int(g) for g in launch.grid)
    constexprs = ", ".join(f"{k}={_constant_literal(v)}" for k, v in launch.constexprs.items())
    lines += [
        "def main():",
        *[f"    {var} = {expr}" for var, expr in tensors.values()],
        "    args = dict(",
        *args,
        "    )",
        f"    grid = {grid!r}",
        f"    {pyfn.__name__}[grid](**args, {constexprs},",
        f"        num_warps={launch.num_warps}, num_stages={launch.num_stages})",
        "    if DEVICE == 'cuda':",
        "        torch.cuda.synchronize()",
        "    for name, value in args.items():",
        "        if isinstance(value, torch.Tensor):",
        "            finite = bool(torch.isfinite(value.float()).all())",
        "            print(f'{name}: {list(value.shape)} {value.dtype}, all finite: {finite}')",
        f"    print('launched {pyfn.__name__} grid', grid, 'on', DEVICE)",
        "",
        "",
        'if __name__ == "__main__":',
        "    main()" if not unresolved else "    raise SystemExit('source only: see the note at the top of this file')",
        "",
    ]
    return "\n".join(lines)
