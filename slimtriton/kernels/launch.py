"""`KernelLaunch`: the one description of a kernel launch, shared by running and auditing.

Every host wrapper builds a `KernelLaunch` (jit function, runtime arguments in parameter
order, constexprs, grid, num_warps/num_stages) and calls `.run()`. The static audit
(`slimtriton.kernels.audit`) derives the compile signature from the *same* object with the
specialization rule the Triton JIT itself applies (`specialization()`), so the audit
compiles exactly what runs.

`record_launches(execute=...)` captures the launches made inside a `with` block; with
`execute=False` nothing runs, so wrappers can be driven with `device="meta"` tensors to
enumerate the launches of a model without a GPU.
"""
from __future__ import annotations

import contextlib
import inspect
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from triton.backends.compiler import BaseBackend

from .config import gpu_tiles

_RECORDERS: list[tuple[list, bool]] = []
_POISON = [os.environ.get("SLIMTRITON_POISON", "0") not in ("", "0", "false", "False")]


def set_poison(enabled: bool) -> None:
    """Poison mode: every output a wrapper allocates is filled with NaN before the launch,
    so an element the kernel forgets to write shows up as a non-finite value."""
    _POISON[0] = bool(enabled)


def poison_enabled() -> bool:
    return _POISON[0]


def alloc(shape, dtype: torch.dtype, device) -> torch.Tensor:
    """Allocate a wrapper's output (NaN-filled in poison mode)."""
    if poison_enabled() and torch.device(device).type != "meta":
        return torch.full(tuple(shape), float("nan"), dtype=dtype, device=device)
    return torch.empty(tuple(shape), dtype=dtype, device=device)


@contextlib.contextmanager
def record_launches(execute: bool = True):
    """Collect every `KernelLaunch` run inside the block into the yielded list; with
    `execute=False` the launches are recorded but not run (for meta tensors / audits) and
    the wrappers choose GPU tile configurations (cached autotune winner, else the default)
    even under the interpreter, so the recorded launches are those a GPU would run."""
    launches: list[KernelLaunch] = []
    _RECORDERS.append((launches, execute))
    try:
        if execute:
            yield launches
        else:
            with gpu_tiles():  # launches that are only described describe a GPU run
                yield launches
    finally:
        _RECORDERS.pop()


@dataclass
class KernelLaunch:
    """One kernel launch. `args` are the runtime (non-constexpr) arguments in the jit
    function's parameter order; `kind` is 'gemm' for tensor-core kernels (conv, matmul,
    conv transpose) and names the family otherwise (used by the audit's pass rules)."""
    name: str
    fn: Any
    args: tuple
    constexprs: dict
    grid: tuple
    num_warps: int = 4
    num_stages: int = 3
    kind: str = "elementwise"
    meta: dict = field(default_factory=dict)

    def run(self) -> None:
        executed = True
        for launches, execute in _RECORDERS:
            launches.append(self)
            executed = executed and execute
        if executed:
            self.execute()

    def execute(self) -> None:
        """Launch without recording (autotune timing runs: candidates are not the model's launches)."""
        if any(isinstance(a, torch.Tensor) and a.device.type == "meta" for a in self.args):
            raise RuntimeError(f"{self.name}: meta tensors can only be recorded "
                               f"(inside record_launches(execute=False)), not launched")
        if any(g <= 0 for g in self.grid):
            return  # empty problem: nothing to write
        self.fn[self.grid](*self.args, **self.constexprs,
                           num_warps=self.num_warps, num_stages=self.num_stages)

    # -- specialization, as the Triton JIT computes it ----------------------------------
    def param_names(self) -> list[str]:
        fn = getattr(self.fn, "fn", self.fn)  # JITFunction / InterpretedFunction wrap .fn
        return list(inspect.signature(fn).parameters)

    def specialization(self) -> tuple[dict, dict, dict]:
        """(signature, constexprs, attrs) for `triton.compiler.ASTSource`, built with the
        JIT's own rule (`native_specialize_impl`): ints equal to 1 become constexprs,
        ints and 16-byte-aligned pointers divisible by 16 get `tt.divisibility`."""
        from triton._C.libtriton import native_specialize_impl  # lazy: private Triton API; only the audit needs it

        names = self.param_names()
        runtime = [n for n in names if n not in self.constexprs]
        if len(runtime) != len(self.args):
            raise ValueError(f"{self.name}: {len(self.args)} runtime args for parameters {runtime}")
        signature: dict[str, str] = {}
        constexprs: dict[str, Any] = {}
        attrs: dict[tuple, list] = {}
        values = dict(zip(runtime, self.args))
        for index, name in enumerate(names):
            if name in self.constexprs:
                signature[name] = "constexpr"
                constexprs[name] = self.constexprs[name]
                continue
            arg = values[name]
            if isinstance(arg, torch.Tensor) and arg.device.type == "meta":
                ty, spec = _meta_tensor_type(arg), "D"  # allocations are 16-byte aligned
            else:
                ty, spec = native_specialize_impl(BaseBackend, arg, False, True, True)
            signature[name] = ty
            if ty == "constexpr":
                constexprs[name] = spec
            elif spec == "D":
                attrs[(index,)] = [["tt.divisibility", 16]]
        return signature, constexprs, attrs

    def key(self) -> str:
        """Identity of the compiled specialization (for de-duplicating audits)."""
        sig, consts, attrs = self.specialization()
        fn = getattr(self.fn, "fn", self.fn)
        return repr((fn.__module__, fn.__qualname__, sorted(sig.items()), sorted(consts.items()),
                     sorted(attrs), self.num_warps, self.num_stages))


_META_TYPES = {torch.float32: "*fp32", torch.float16: "*fp16", torch.bfloat16: "*bf16",
               torch.float64: "*fp64", torch.int32: "*i32", torch.int64: "*i64", torch.bool: "*i1",
               torch.int8: "*i8", torch.uint8: "*u8"}


def _meta_tensor_type(t: torch.Tensor) -> str:
    return _META_TYPES[t.dtype]
