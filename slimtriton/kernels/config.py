"""Tile configurations: interpreter detection, the autotune space and its on-disk cache.

* Under the Triton interpreter (`TRITON_INTERPRET=1`, CPU) one fixed large-tile
  configuration is used: the interpreter runs each program as NumPy block operations,
  so fewer, bigger programs are far faster (a 3136x256x576 GEMM: 14 s with 64x64x32
  tiles, 0.6 s with 256x256x128).
* On a GPU, a small candidate space per kernel family is timed once per
  (GPU name, kernel signature, shapes) key and the winner is kept in a persistent JSON
  cache, `~/.cache/slimtriton/autotune.json` (directory overridable by the environment
  variable `SLIMTRITON_CACHE_DIR`). `SLIMTRITON_AUTOTUNE=0` disables timing: the cached
  winner, else the first candidate, is used.

The cache is shared by concurrent processes: a store takes an exclusive `flock` on
`autotune.json.lock`, re-reads the file, merges its entry and replaces the file atomically
(a temporary file in the same directory, then `os.replace`), so no writer loses another's
entries and no reader sees a torn file. An unwritable cache directory only costs the
persistence (one warning; winners stay in memory). Keys hold the GPU name, the Triton
version, the kernel, its specialization signature and the problem shape; a cached winner
that is no longer among a kernel's candidates is ignored. Timing (`time_ms`) uses
`triton.testing.do_bench` (CUDA events, L2 flushed between runs, median) and never runs
while the current stream is being captured into a CUDA graph (the default tile is used
then, uncached).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import threading
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import triton
import triton.language as tl
import triton.testing


def interpreting() -> bool:
    """True when Triton kernels run in the interpreter (no GPU, `TRITON_INTERPRET=1`)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0", "false", "False")


_FORCE_GPU_TILES = [False]


@contextlib.contextmanager
def gpu_tiles():
    """Inside this block wrappers pick GPU tile configurations (cached winner or default,
    never timed) even without a GPU: the static audit enumerates launches this way."""
    _FORCE_GPU_TILES.append(True)
    try:
        yield
    finally:
        _FORCE_GPU_TILES.pop()


def gpu_tiles_active(device=None) -> bool:
    """True when tiles should be chosen for a GPU (a CUDA device, or inside `gpu_tiles()`)."""
    if _FORCE_GPU_TILES[-1]:
        return True
    return not interpreting() and (device is None or getattr(device, "type", device) == "cuda")


def next_pow2(n: int) -> int:
    n = max(int(n), 1)
    return 1 << (n - 1).bit_length()


def clamp_pow2(n: int, lo: int, hi: int) -> int:
    """The power of two >= n, clamped to [lo, hi]."""
    return max(lo, min(hi, next_pow2(n)))


@dataclass(frozen=True)
class TileConfig:
    """Tile sizes of a GEMM-shaped kernel and its launch options."""
    BLOCK_M: int
    BLOCK_N: int
    BLOCK_K: int
    GROUP_M: int = 8
    num_warps: int = 4
    num_stages: int = 3

    def constexprs(self) -> dict:
        return {"BLOCK_M": self.BLOCK_M, "BLOCK_N": self.BLOCK_N,
                "BLOCK_K": self.BLOCK_K, "GROUP_M": self.GROUP_M}


# GEMM-shaped kernels (implicit-GEMM conv, matmul, conv transpose) on GPUs. 16-bit inputs
# use BLOCK_K 64 (one 128-byte row per k-tile, HMMA/HGMMA friendly); fp32 halves it so the
# shared-memory ring of num_stages buffers fits. `gemm_candidates` orders them; the first
# returned is the untimed default.
GEMM_CANDIDATES_16 = (
    TileConfig(128, 128, 64, 8, 8, 3),
    TileConfig(128, 64, 64, 8, 4, 4),
    TileConfig(64, 128, 64, 8, 4, 4),
    TileConfig(64, 64, 64, 8, 4, 4),
    TileConfig(64, 32, 64, 8, 4, 3),  # 4 stages: one register spilled on sm_80 (audit)
    TileConfig(128, 256, 64, 8, 8, 3),
)
GEMM_CANDIDATES_32 = (
    TileConfig(128, 128, 32, 8, 8, 3),
    TileConfig(128, 64, 32, 8, 4, 4),
    TileConfig(64, 128, 32, 8, 4, 4),
    TileConfig(64, 64, 32, 8, 4, 4),
    TileConfig(64, 32, 32, 8, 4, 4),
)
# The small-Cin path (FLAT_K: a 7x7x3 first conv) gathers A element by element; BLOCK_K 32
# and 8 warps for 128-row tiles keep that at 16 loads per thread per k-step and 128
# registers (BLOCK_K 64 on 4 warps: 255 registers, ~3x the instructions per k).
GEMM_CANDIDATES_FLAT_K_16 = (
    TileConfig(128, 64, 32, 8, 8, 4),
    TileConfig(64, 64, 32, 8, 4, 4),
    TileConfig(64, 32, 32, 8, 4, 4),
)
GEMM_CANDIDATES_FLAT_K_32 = (
    TileConfig(128, 64, 32, 8, 8, 3),
    TileConfig(64, 64, 32, 8, 4, 3),
    TileConfig(64, 32, 32, 8, 4, 3),
)

# CTAs per SM of each tile configuration on sm_90 (65,536 registers, 228 KB of shared memory
# per SM), read from `slimtriton audit` (registers x threads and shared memory of the
# conv_gemm_kernel specializations of resnet_v1_50 / inception_v3, float16, Triton 3.6 and
# 3.9, the worst case over both). The 128x128 tile on 8 warps holds 64 accumulators per
# thread; its epilogue's per-column scale and the residual add ~30-60 registers (144 / 178
# in all), which costs it the second CTA, and so does a prologue (ResNet v2's pre-activation
# on the A tile: 151-157); a lean epilogue (shift and activation only, as when BN folds into
# the weights) and no prologue stays at ~114. Used to size grids to whole waves. (The
# small-Cin 128x64x32 tile on 8 warps: 114-126 registers on Triton 3.9, 2 CTAs/SM; up to 173
# on 3.6 with a residual-free relu epilogue, 1 CTA/SM: a first conv, not worth a table of
# its own.)
CTAS_PER_SM_90 = {(128, 128): 1, (128, 64): 2, (64, 128): 2, (64, 64): 3, (64, 32): 6, (128, 256): 1}
CTAS_PER_SM_90_LEAN = {**CTAS_PER_SM_90, (128, 128): 2}


def ctas_per_sm(tile: TileConfig, lean_epilogue: bool) -> int:
    table = CTAS_PER_SM_90_LEAN if lean_epilogue else CTAS_PER_SM_90
    return table.get((tile.BLOCK_M, tile.BLOCK_N), 1)


# The default tile choice weighs each tile size by how much of the tensor-core rate it can
# reach (larger tiles re-read less data per FLOP), so that among choices with the same
# wave x tile fill the larger tile wins.
TILE_EFFICIENCY = {(128, 128): 1.0, (128, 256): 1.0, (128, 64): 0.97, (64, 128): 0.97, (64, 64): 0.92,
                   (64, 32): 0.85}

SM_COUNT_DEFAULT = 132  # H100 / H200 SXM (used without a GPU: the audit, gpu_tiles() tests)
# Split-K limits. A split may be a single k-step: a small layer at batch 1 is latency-bound,
# and more CTAs in flight (each one load round trip) beat fewer, pipelined ones. The fp32
# partials (8 bytes per split and output element: written, then read back by the reduction,
# mostly in L2) may cost at most SPLIT_TRAFFIC_RATIO x the 16-bit inputs the GEMM reads anyway.
MIN_K_STEPS_PER_SPLIT = 1
MAX_SPLIT_K = 64
SPLIT_TRAFFIC_RATIO = 8.0


def sm_count(device=None) -> int:
    """Streaming multiprocessors of the CUDA device (132 without one)."""
    try:
        if torch.cuda.is_available() and (device is None or getattr(device, "type", device) == "cuda"):
            return int(torch.cuda.get_device_properties(device).multi_processor_count)
    except (RuntimeError, AssertionError):
        pass
    return SM_COUNT_DEFAULT


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def tile_fill(m: int, n: int, bm: int, bn: int) -> float:
    """Useful fraction of the launched tiles: M*N / (ceil(M/BM)*BM * ceil(N/BN)*BN)."""
    return (m * n) / (_cdiv(m, bm) * bm * _cdiv(n, bn) * bn)


def wave_fill(ctas: int, resident: int) -> float:
    """ctas / (waves * resident) with waves = ceil(ctas / resident)."""
    return ctas / (_cdiv(ctas, resident) * resident)


def split_k_for(tiles: int, k_steps: int, resident: int, max_splits: int = MAX_SPLIT_K) -> int:
    """Number of K splits for a grid of `tiles` output tiles: 1 when the grid fills a wave
    of `resident` CTAs or K is short; else the fewest splits whose CTAs fill a wave within
    5% of the best achievable (each split keeping >= MIN_K_STEPS_PER_SPLIT k-steps).
    The split count is then trimmed so that no split is empty."""
    if tiles >= resident or k_steps < 2 * MIN_K_STEPS_PER_SPLIT:
        return 1
    most = max(1, min(max_splits, k_steps // MIN_K_STEPS_PER_SPLIT, _cdiv(resident, tiles)))
    fills = {s: wave_fill(tiles * s, resident) for s in range(1, most + 1)}
    best = max(fills.values())
    s = min(s for s, f in fills.items() if f >= 0.95 * best)
    return _cdiv(k_steps, _cdiv(k_steps, s))  # no empty split


@dataclass(frozen=True)
class GemmPlan:
    """A GPU tile configuration with its K split and the fill it achieves."""
    tile: TileConfig
    split_k: int
    tiles: int
    fill: float  # tile fill x wave fill

    @property
    def grid(self) -> tuple[int, int]:
        return (self.tiles, self.split_k)


def plan_gemm(tile: TileConfig, m: int, n: int, k_steps: int, sms: int | None = None,
              lean_epilogue: bool = False) -> GemmPlan:
    """The split-K choice and fill of `tile` on an M x N output with `k_steps` k-steps."""
    sms = sms or SM_COUNT_DEFAULT
    resident = sms * ctas_per_sm(tile, lean_epilogue)
    tiles = _cdiv(m, tile.BLOCK_M) * _cdiv(n, tile.BLOCK_N)
    inputs = 2 * k_steps * tile.BLOCK_K * (m + n)
    split = split_k_for(tiles, k_steps, resident,
                        max(1, min(MAX_SPLIT_K, int(SPLIT_TRAFFIC_RATIO * inputs // (8 * m * n)))))
    fill = tile_fill(m, n, tile.BLOCK_M, tile.BLOCK_N) * wave_fill(tiles * split, resident)
    return GemmPlan(tile, split, tiles, fill)


def gemm_plans(dtype: str, m: int, n: int, k_steps_of, sms: int | None = None, lean_epilogue: bool = False,
               min_ctas_per_sm: int = 1, flat_k: bool = False) -> list[GemmPlan]:
    """Every GPU candidate for an M x N GEMM with its split-K, best first by
    fill x TILE_EFFICIENCY (ties: the earlier candidate). `k_steps_of(tile)` gives the number
    of k-steps of a tile (it depends on BLOCK_K and the conv's tap structure). Tiles wider
    than the problem (N, or M for BLOCK_M 128) are dropped, and so are tiles with fewer than
    `min_ctas_per_sm` CTAs per SM (memory-bound 1x1 GEMMs need two to overlap one CTA's
    epilogue with another's loads), unless nothing else is left. `flat_k`: the small-Cin
    candidates."""
    if flat_k:
        space = GEMM_CANDIDATES_FLAT_K_32 if dtype == "float32" else GEMM_CANDIDATES_FLAT_K_16
    else:
        space = GEMM_CANDIDATES_32 if dtype == "float32" else GEMM_CANDIDATES_16
    keep = [c for c in space if c.BLOCK_N <= max(32, next_pow2(n)) and (c.BLOCK_M <= 64 or m > 64)
            and (dtype == "float32" or ctas_per_sm(c, lean_epilogue) >= min_ctas_per_sm)]
    plans = [plan_gemm(c, m, n, k_steps_of(c), sms, lean_epilogue) for c in (keep or space[:1])]
    order = sorted(range(len(plans)), key=lambda i: (-plans[i].fill * TILE_EFFICIENCY.get(
        (plans[i].tile.BLOCK_M, plans[i].tile.BLOCK_N), 0.8), i))
    return [plans[i] for i in order]


def gemm_candidates(dtype: str, n_cols: int, k_inner: int) -> Sequence[TileConfig]:
    """GPU candidates for a GEMM-shaped kernel; tiles wider than the problem are dropped."""
    space = GEMM_CANDIDATES_32 if dtype == "float32" else GEMM_CANDIDATES_16
    keep = [c for c in space if c.BLOCK_N <= max(32, next_pow2(n_cols))
            and c.BLOCK_K <= max(16, next_pow2(k_inner))]
    if not keep:
        keep = [space[0]]
    return tuple(keep)  # the first that fits is the untimed default


def interpreter_gemm_config(m: int, n: int, k: int) -> TileConfig:
    """One large-tile configuration for the interpreter (tile dims >= 16 for tl.dot).

    The interpreter's cost is per tile operation, so a skinny GEMM (few rows: the FC
    layers, the late 1x1/3x3 convs of a small image) gets wider N and deeper K tiles:
    up to 2**23 multiply-adds per tl.dot (VGG's fc6 at batch 1: 28 tile steps, not 800)."""
    bm = clamp_pow2(m, 16, 256)
    bn = clamp_pow2(n, 16, 1024 if bm <= 64 else 256)
    bk = clamp_pow2(k, 16, max(128, min(1024, (1 << 23) // (bm * bn))))
    return TileConfig(bm, bn, bk, GROUP_M=8, num_warps=4, num_stages=1)


def gpu_name(device=None) -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return "cpu"


# ---------------------------------------------------------------------------------------
# Persistent autotune cache.

def cache_path() -> Path:
    root = os.environ.get("SLIMTRITON_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "slimtriton"
    return base / "autotune.json"


_CACHE_LOCK = threading.Lock()
_MEMORY: dict[str, dict] | None = None
_MEMORY_PATH: Path | None = None
_WARNED_UNWRITABLE: set[str] = set()


def _read_cache_file(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _load_cache() -> dict[str, dict]:
    global _MEMORY, _MEMORY_PATH
    path = cache_path()
    if _MEMORY is None or _MEMORY_PATH != path:
        _MEMORY = _read_cache_file(path)
        _MEMORY_PATH = path
    return _MEMORY


@contextlib.contextmanager
def _file_lock(path: Path):
    """An exclusive advisory lock between processes (no-op where `fcntl` is missing)."""
    try:
        import fcntl  # lazy: POSIX only; its ImportError is handled here
    except ImportError:  # not POSIX: os.replace still keeps the file whole
        yield
        return
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _store_cache(key: str, config: TileConfig, timings_ms: dict) -> None:
    """Record a winner in memory and merge it into the on-disk cache (see the module docstring)."""
    path = cache_path()
    entry = {"config": asdict(config), "timings_ms": timings_ms}
    with _CACHE_LOCK:
        _load_cache()[key] = entry
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with _file_lock(path.with_name(path.name + ".lock")):
                data = _read_cache_file(path)  # entries other processes stored since we loaded
                data[key] = entry
                fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
                try:
                    with os.fdopen(fd, "w") as f:
                        json.dump(data, f, indent=1, sort_keys=True)
                    os.replace(tmp, path)  # atomic: readers see the old or the new file, never a torn one
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise
            _MEMORY.update({k: v for k, v in data.items() if k not in _MEMORY})
        except OSError as exc:
            if str(path) not in _WARNED_UNWRITABLE:
                _WARNED_UNWRITABLE.add(str(path))
                warnings.warn(f"slimtriton: cannot write the autotune cache {path} ({exc}); winners are kept in "
                              f"memory only (set SLIMTRITON_CACHE_DIR to a writable directory)", stacklevel=3)


def cached_config(key: str, candidates: Sequence[TileConfig] | None = None) -> TileConfig | None:
    """The cached winner for `key` (None when absent, malformed, or not among `candidates`)."""
    entry = _load_cache().get(key)
    if not entry:
        return None
    try:
        config = TileConfig(**entry["config"])
    except (TypeError, KeyError):
        return None
    if candidates is not None and config not in candidates:
        return None  # the candidate space changed since it was cached
    return config


def autotune_key(kernel: str, signature: str, shapes, device=None) -> str:
    return f"{gpu_name(device)}|triton-{triton.__version__}|{kernel}|{signature}|{shapes}"


def autotune_enabled() -> bool:
    return os.environ.get("SLIMTRITON_AUTOTUNE", "1") not in ("0", "false", "False")


def _capturing() -> bool:
    """True while the current CUDA stream records a CUDA graph (nothing can be timed then)."""
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def time_ms(fn: Callable[[], object]) -> float:
    """Median time of `fn()` in ms on the current CUDA stream: `triton.testing.do_bench`
    (CUDA events, the L2 cache flushed before each run; the first call, which compiles,
    is outside the timed runs)."""
    return float(triton.testing.do_bench(fn, warmup=5, rep=20, return_mode="median"))


def select_config(key: str, candidates: Sequence[TileConfig],
                  bench: Callable[[TileConfig], float] | None) -> TileConfig:
    """The cached winner for `key`; else, when `bench` is given (a function timing one
    candidate, in ms), autotuning is on and the stream is not being captured, time every
    candidate, cache and return the fastest; else the first candidate. A candidate that
    fails to compile or launch (e.g. out of shared memory) is skipped."""
    hit = cached_config(key, candidates)
    if hit is not None:
        return hit
    if bench is None or not autotune_enabled() or len(candidates) == 1 or _capturing():
        return candidates[0]
    timings: dict[str, float | str] = {}
    best, best_ms = None, float("inf")
    for cfg in candidates:
        label = f"{cfg.BLOCK_M}x{cfg.BLOCK_N}x{cfg.BLOCK_K}/w{cfg.num_warps}/s{cfg.num_stages}"
        try:
            ms = float(bench(cfg))
        except Exception as exc:  # noqa: BLE001 - a candidate that cannot run is just skipped
            timings[label] = f"failed: {type(exc).__name__}: {str(exc)[:120]}"
            continue
        if not ms > 0 or ms == float("inf"):  # NaN / zero / inf: a broken measurement, not a winner
            timings[label] = f"failed: measured {ms} ms"
            continue
        timings[label] = ms
        if ms < best_ms:
            best, best_ms = cfg, ms
    if best is None:
        raise RuntimeError(f"autotune: every candidate failed for {key}: {timings}")
    _store_cache(key, best, timings)
    return best


# ---------------------------------------------------------------------------------------
# Direct (non-GEMM) kernels: depthwise conv, pooling, elementwise, row reductions.

@dataclass(frozen=True)
class Tile2D:
    """A [BLOCK_R rows (pixels / lines), BLOCK_C channels] tile; channels are contiguous."""
    BLOCK_R: int
    BLOCK_C: int
    num_warps: int = 4

    def constexprs(self) -> dict:
        return {"BLOCK_R": self.BLOCK_R, "BLOCK_C": self.BLOCK_C}


def tile_2d(rows: int, cols: int, gpu_elems: int = 4096, max_cols: int = 128) -> Tile2D:
    """Interpreter: big tiles (up to 64K elements). GPU: `gpu_elems` elements per program,
    channels first (coalesced), 16..`max_cols` of them."""
    if not gpu_tiles_active():
        bc = clamp_pow2(cols, 2, 1024)
        return Tile2D(clamp_pow2(rows, 2, max(2, 65536 // bc)), bc, 4)
    bc = clamp_pow2(cols, 16, max_cols)
    return Tile2D(clamp_pow2(rows, 2, max(2, gpu_elems // bc)), bc, 4)


def tile_1d(numel: int) -> tuple[int, int]:
    """(BLOCK, num_warps) of a flat elementwise kernel."""
    if not gpu_tiles_active():
        return clamp_pow2(numel, 16, 1 << 16), 4
    return 1024, 4


# ---------------------------------------------------------------------------------------
# Interpreter speed (CPU runs only; nothing here changes what a GPU runs).

def _speed_up_interpreter() -> None:
    """Two costs of Triton's interpreter that buy nothing for these kernels:
    * `tl.dot` calls `np.matmul(a, b, dtype=acc_dtype)`; the `dtype=` argument makes NumPy
      skip BLAS (about 16x slower for a 256x128 @ 128x256 fp32 tile). When the operands
      already have the accumulator's dtype the plain BLAS matmul computes the same thing
      (fp32 products, fp32 accumulation); fp16 operands are widened first (their products
      are exact in fp32, as on the tensor cores). bf16 operands, which the interpreter holds
      as raw uint16 bits and multiplies as integers, are decoded to fp32 first.
    * fp32 -> bf16 casts truncate instead of rounding to nearest even as a GPU does.
    * every integer `+ - *` gets an int32-overflow check (`sanitize_overflow`, three extra
      tensor ops and a device_assert each: about half of all interpreted operations). A
      GPU build checks nothing unless in debug mode, and the interpreter cannot hold
      tensors big enough to overflow the int32 offsets anyway.
    """
    from triton.runtime import interpreter  # lazy: Triton's interpreter module, loaded only when interpreting

    builder_cls = getattr(interpreter, "InterpreterBuilder", None)
    if builder_cls is None or not all(hasattr(builder_cls, a) for a in ("create_dot", "cast_impl")):
        # Another Triton than the one pinned by `make setup` (3.9.0): say so rather than fail
        # at import; interpreted bf16 then computes wrongly (the bf16 kernel tests will show it).
        warnings.warn("slimtriton: this Triton's interpreter has no InterpreterBuilder.create_dot/cast_impl "
                      "to patch; interpreted bfloat16 dots and casts keep Triton's own (wrong) behaviour")
        return
    if getattr(builder_cls, "_slimtriton_fast_dot", False):
        return
    generic_dot = builder_cls.create_dot

    def create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
        a_data, b_data, acc = a.data, b.data, d.data
        if a.dtype == b.dtype == tl.bfloat16 and acc.dtype == np.float32:
            # bf16 tiles are held as raw uint16 bits, which the generic path multiplies as
            # integers (garbage); widen the bits to fp32 (exact, products exact in fp32).
            a_data = (a_data.astype(np.uint32) << np.uint32(16)).view(np.float32)
            b_data = (b_data.astype(np.uint32) << np.uint32(16)).view(np.float32)
        if acc.dtype in (np.float32, np.float64) and a_data.dtype == b_data.dtype and \
                (a_data.dtype == acc.dtype or a_data.dtype == np.float16):
            product = np.matmul(a_data.astype(acc.dtype, copy=False), b_data.astype(acc.dtype, copy=False))
            return interpreter.TensorHandle(product + acc, d.dtype.scalar)
        return generic_dot(self, a, b, d, input_precision, max_num_imprecise_acc)

    generic_cast = builder_cls.cast_impl

    def cast_impl(self, src, dst_type):
        # fp32 -> bf16: the interpreter truncates (rounding_mode None); a GPU rounds to
        # nearest even, and truncation's bias compounds over a net's layers (5x the error).
        if src.dtype.scalar == tl.float32 and dst_type.scalar == tl.bfloat16:
            bits = np.ascontiguousarray(src.data, dtype=np.float32).view(np.uint32)
            rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
            nan = (bits & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
            out = np.where(nan, (bits >> np.uint32(16)) | np.uint32(0x40), rounded).astype(np.uint16)
            return interpreter.TensorHandle(out, dst_type.scalar)
        return generic_cast(self, src, dst_type)

    builder_cls.create_dot = create_dot
    builder_cls.cast_impl = cast_impl
    builder_cls._slimtriton_fast_dot = True
    builder = getattr(interpreter, "interpreter_builder", None)
    if builder is not None and getattr(builder.options, "sanitize_overflow", False):
        builder.options = dataclasses.replace(builder.options, sanitize_overflow=False)


if interpreting():
    _speed_up_interpreter()
