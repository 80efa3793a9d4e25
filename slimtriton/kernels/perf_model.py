"""Static performance model of kernel launches on a Hopper GPU (no GPU needed).

`slimtriton audit NET --batch 1,32,256 --gpu h100` feeds this module every `KernelLaunch`
of a net's plan together with what the compiled cubin says (registers, shared memory,
spills, whether the main loop is software-pipelined: `audit.analyze_sass_loops`). It reads a
launch generically -- grid, `BLOCK_M`/`BLOCK_N`/`BLOCK_K` constexprs when present, num_warps,
num_stages, `meta` M/N/K -- and never a kernel's internals. Optional `meta` keys a wrapper
may set: `flops`, `bytes` (override the plan's figures for the modeled time), `serial_steps` (main-loop trips per
CTA when they are not ceil(K / BLOCK_K)).

THIS IS A MODEL, NOT A MEASUREMENT. Every constant below is written down with its source;
the first GPU run (bench/gpu_session.sh) is what calibrates or refutes it.

Occupancy (per launch)
    regs/warp      = ceil(32 * regs / 256) * 256           (allocation unit: gpu-facts.md)
    ctas/SM        = min(2048 // (32 * warps),               resident threads
                         65536 // (warps * regs/warp),        register file
                         233472 // (smem + 1024),             228 KB shared memory per SM; the
                                                              driver reserves 1 KB per CTA
                         32)                                  resident CTAs
    waves          = ceil(ctas / (SMs * ctas/SM))
    wave fill      = ctas / (waves * SMs * ctas/SM)
    tile fill      = M*N / (ceil(M/BM)*BM * ceil(N/BN)*BN)    (1 without M, N, BM, BN)
    A persistent grid (fewer CTAs than output tiles, tiles = ceil(M/BM)*ceil(N/BN)) works in
    rounds: waves = ceil(tiles / resident CTAs), wave fill = tiles / (waves * SMs * ctas/SM),
    and "units" below are its tiles instead of its CTAs.

Times (per launch; summed over launches: launches of one plan run one after another)
    roofline       = max(FLOPs / peak, bytes / HBM)           the ceilings of `GpuSpec`
    SM fill        = units / (ceil(units / min(ctas, SMs)) * SMs)   co-resident CTAs share their SM's
                                                              tensor cores, so compute is
                                                              quantized in SMs, not CTA slots
    compute        = FLOPs / (peak * achievable_tc * SM fill * tile fill * pipe)
                     pipe = 1 when the SASS main loop is pipelined, PIPE_PENALTY otherwise
    memory         = bytes / min(HBM * achievable_bw, min(ctas, SMs) * SM_BW)
                     SM_BW = SM_INFLIGHT_BYTES / MEM_LATENCY (Little's law: the most one SM
                     keeps in flight over one round trip), so a grid of few CTAs cannot use
                     the whole HBM bandwidth
    latency        = waves * serial_steps * MEM_LATENCY / in_flight     (per CTA, per wave)
                     serial_steps = ceil(K / BLOCK_K) / split (split = CTAs per output
                     tile, from the grid), 1 for kernels without a K loop; in_flight =
                     num_stages - 1 when pipelined, else 1: each k-step of a CTA waits for
                     its copy unless earlier stages already fetched it
    modeled        = max(compute, memory, latency) + LAUNCH_OVERHEAD
    images/s       = batch / sum(modeled)   (and batch / sum(roofline))

The reported `wave_fill` (and the FLOP-weighted wave x tile fill of the totals) keeps the
CTA-slot definition above: it is the figure the tile/grid choice is judged by.

FLOPs and bytes of a launch come from its plan step (`Step.flops`, `Step.bytes_read +
bytes_written`: each input read once, each output written once). A step that makes several
launches (e.g. split-K + reduction) charges its figures to the launch with the largest
2*M*N*K; each other launch gets 2*M*N*K (if it has M/N/K) and the bytes of its tensor
arguments in the modeled time, and no bytes in the roofline (which keeps the plan's bytes).

Compute peaks by the kind of arithmetic: 16-bit GEMM with HGMMA at the tensor peak; with
only HMMA (mma.sync) at HMMA_FRACTION of it; tf32 at half of it (datasheet ratio); float32
ieee GEMMs and every non-GEMM kernel at the CUDA-core fp32 peak.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

# -- constants that are not in the GPU's data sheet (assumptions until a GPU measures them)
PIPE_PENALTY = 0.5          # a main loop that is not pipelined waits for each k-step's copy:
                            # taken as halving the tensor throughput (assumption)
HMMA_FRACTION = 0.5         # mma.sync on sm_90 runs "at a fraction" of wgmma (gpu-facts.md); 1/2 assumed
MEM_LATENCY_US = 0.6        # one DRAM round trip, ~1000 cycles at 1.7 GHz under load (order of
                            # magnitude of public Hopper microbenchmarks; not measured here)
LAUNCH_OVERHEAD_US = 3.0    # per kernel under a CUDA graph: "a few microseconds" (gpu-facts.md)
SM_INFLIGHT_BYTES = 65536   # bytes one SM keeps in flight: two stages of a 128x128x64 16-bit
                            # A+B tile pair (2 x 32 KB), the kernels' largest ring (assumption);
                            # with MEM_LATENCY_US: ~109 GB/s per SM, ~4x an even share of HBM


@dataclass(frozen=True)
class GpuSpec:
    """Ceilings of one GPU. `tensor_tflops`/`hbm_tbs` are the roofline ceilings; the
    `achievable_*` fractions scale them for the modeled time."""
    name: str
    source: str
    sms: int
    tensor_tflops: float        # dense fp16/bf16 tensor core
    fp32_tflops: float          # CUDA cores, no tensor core
    hbm_tbs: float              # TB/s, bytes read + written
    achievable_tc: float        # fraction of tensor_tflops a large GEMM reaches
    achievable_bw: float        # fraction of hbm_tbs a large copy reaches
    arch: int = 90
    regs_per_sm: int = 65536
    reg_alloc_unit: int = 256   # registers per warp are allocated in units of 256
    max_threads_per_sm: int = 2048
    max_ctas_per_sm: int = 32
    smem_per_sm: int = 228 * 1024
    smem_reserved_per_cta: int = 1024
    launch_overhead_us: float = LAUNCH_OVERHEAD_US
    mem_latency_us: float = MEM_LATENCY_US
    sm_inflight_bytes: int = SM_INFLIGHT_BYTES

    def as_dict(self) -> dict:
        return {**asdict(self), "pipe_penalty": PIPE_PENALTY, "hmma_fraction": HMMA_FRACTION}


# /work/shared/reference/gpu-facts.md. H200 measured: 769-798 TFLOP/s (8192^3 bf16 matmul),
# ~4.3 TB/s (device-to-device copy); datasheet 989 TFLOP/s, 4.8 TB/s. The H100 is the same chip
# with 3.35 TB/s HBM3: its ceilings are the datasheet figures and its achievable fractions are
# the H200's measured/datasheet ratios (798/989, 4.3/4.8), carried over as an assumption.
GPUS = {
    "h100": GpuSpec("h100", "H100 SXM datasheet ceilings; achievable fractions = H200 measured / datasheet",
                    sms=132, tensor_tflops=989.0, fp32_tflops=67.0, hbm_tbs=3.35,
                    achievable_tc=798.0 / 989.0, achievable_bw=4.3 / 4.8),
    "h200": GpuSpec("h200", "H200 measured ceilings (798 TFLOP/s bf16 matmul, 4.3 TB/s copy); fp32 datasheet",
                    sms=132, tensor_tflops=798.0, fp32_tflops=67.0, hbm_tbs=4.3,
                    achievable_tc=1.0, achievable_bw=1.0),
}

SIXTEEN_BIT = ("float16", "bfloat16")


def ctas_per_sm(num_warps: int, registers: int, shared_bytes: int, gpu: GpuSpec) -> tuple[int, str]:
    """(resident CTAs per SM, the limiting resource: 'threads', 'registers', 'shared', 'ctas')."""
    limits = {"ctas": gpu.max_ctas_per_sm,
              "threads": gpu.max_threads_per_sm // (32 * num_warps)}
    if registers > 0:
        per_warp = math.ceil(32 * registers / gpu.reg_alloc_unit) * gpu.reg_alloc_unit
        limits["registers"] = gpu.regs_per_sm // (num_warps * per_warp)
    limits["shared"] = gpu.smem_per_sm // (max(shared_bytes, 0) + gpu.smem_reserved_per_cta)
    name = min(limits, key=lambda k: (limits[k], k != "registers"))
    return limits[name], name


def waves_and_fill(ctas: int, per_sm: int, sms: int) -> tuple[int, float]:
    """(waves, wave fill) of `ctas` CTAs at `per_sm` resident CTAs on `sms` SMs."""
    if ctas <= 0 or per_sm <= 0:
        return 0, 0.0
    slots = sms * per_sm
    waves = -(-ctas // slots)
    return waves, ctas / (waves * slots)


def sm_fill(units: int, sms: int, ctas: int | None = None) -> float:
    """units / (ceil(units / min(ctas, SMs)) * SMs): the busy share of the SMs over the launch.
    `units` are the CTAs, or the output tiles of a persistent grid of `ctas` < tiles CTAs."""
    if units <= 0:
        return 0.0
    lanes = min(units if ctas is None else ctas, sms)
    return units / (-(-units // lanes) * sms)


def grid_rounds(tiles: int, ctas: int, per_sm: int, sms: int) -> tuple[int, float]:
    """(rounds, wave fill) of a persistent grid: `ctas` resident CTAs (at most SMs x per_sm)
    taking `tiles` tiles in ceil(tiles / resident) rounds; fill = tiles / (rounds x SMs x per_sm)."""
    resident = min(ctas, sms * per_sm)
    if tiles <= 0 or resident <= 0:
        return 0, 0.0
    rounds = -(-tiles // resident)
    return rounds, tiles / (rounds * sms * per_sm)


def achievable_bandwidth_tbs(ctas: int, gpu: GpuSpec) -> float:
    """min(HBM x achievable_bw, busy SMs x SM_INFLIGHT_BYTES / MEM_LATENCY), in TB/s."""
    per_sm_tbs = gpu.sm_inflight_bytes / (gpu.mem_latency_us * 1e6)
    return min(gpu.hbm_tbs * gpu.achievable_bw, min(ctas, gpu.sms) * per_sm_tbs)


def tile_fill(m: int, n: int, block_m: int, block_n: int) -> float:
    """Useful fraction of the output tiles: M*N / (ceil(M/BM)*BM * ceil(N/BN)*BN)."""
    return m * n / (-(-m // block_m) * block_m * -(-n // block_n) * block_n)


def roofline_us(flops: float, nbytes: float, peak_tflops: float, gpu: GpuSpec) -> float:
    """max(FLOPs at `peak_tflops`, bytes at the HBM ceiling), in microseconds."""
    return max(flops / (peak_tflops * 1e6), nbytes / (gpu.hbm_tbs * 1e6))


def _numel(t) -> int:
    n = 1
    for d in getattr(t, "shape", ()):
        n *= int(d)
    return n


def tensor_arg_bytes(launch) -> int:
    """Bytes of the launch's distinct tensor arguments. A tensor passed twice counts once: the
    routed conv fills its unused destination slots with the output buffer, and a meta tensor's
    data_ptr is 0, so identity is what tells two arguments apart."""
    distinct = {id(a): a for a in launch.args if hasattr(a, "element_size")}
    return sum(_numel(a) * a.element_size() for a in distinct.values())


def largest_tensor_elements(launch) -> int:
    return max((_numel(a) for a in launch.args if hasattr(a, "element_size")), default=0)


def gemm_flops(launch) -> int:
    m = launch.meta
    if all(k in m for k in ("M", "N", "K")):
        return 2 * int(m["M"]) * int(m["N"]) * int(m["K"])
    return 0


def attribute_step_costs(step_launches: list, step_flops: int, step_bytes: int) -> list[tuple[int, int, int]]:
    """(FLOPs, modeled bytes, roofline bytes) per launch of one plan step (see the module
    docs): the roofline keeps the plan's bytes (each input read once, each output written
    once), so traffic a kernel adds (e.g. split-K partials) counts in the modeled time only."""
    if not step_launches:
        return []
    main = max(range(len(step_launches)), key=lambda i: gemm_flops(step_launches[i]))
    out = []
    for i, launch in enumerate(step_launches):
        if i == main:
            out.append((int(launch.meta.get("flops", step_flops)), int(launch.meta.get("bytes", step_bytes)),
                        int(step_bytes)))
        else:
            out.append((int(launch.meta.get("flops", gemm_flops(launch))),
                        int(launch.meta.get("bytes", tensor_arg_bytes(launch))), 0))
    return out


def roofline_peak(launch, dtype: str, gpu: GpuSpec) -> float:
    """The ideal ceiling of this launch's arithmetic, whatever its SASS: tensor peak for a
    16-bit GEMM, half of it for tf32, the fp32 CUDA-core peak otherwise."""
    if launch.kind == "gemm":
        if dtype in SIXTEEN_BIT:
            return gpu.tensor_tflops
        if launch.constexprs.get("DOT_PRECISION", "ieee") == "tf32":
            return gpu.tensor_tflops / 2
    return gpu.fp32_tflops


def _compute_peak(launch, dtype: str, resources: dict, gpu: GpuSpec) -> tuple[float, str]:
    """(TFLOP/s ceiling, unit) of the instructions the SASS actually has."""
    if launch.kind == "gemm":
        precision = launch.constexprs.get("DOT_PRECISION", "ieee")
        if dtype in SIXTEEN_BIT:
            if resources.get("hgmma", 0) > 0:
                return gpu.tensor_tflops, "HGMMA"
            if resources.get("hmma", 0) > 0:
                return gpu.tensor_tflops * HMMA_FRACTION, "HMMA"
            return gpu.fp32_tflops, "FFMA"
        if precision == "tf32" and resources.get("hgmma", 0) + resources.get("hmma", 0) > 0:
            return gpu.tensor_tflops / 2, "tf32"
    return gpu.fp32_tflops, "FFMA"


def model_launch(launch, flops: int, nbytes: int, resources: dict, gpu: GpuSpec,
                 dtype: str = "float16", roofline_bytes: int | None = None) -> dict:
    """The model's row for one launch. `resources`: the audit's compile result for its
    specialization (registers, stack_bytes, local_bytes, shared_bytes, hmma, hgmma,
    pipelined); `roofline_bytes` (default `nbytes`): the bytes its roofline time counts."""
    if roofline_bytes is None:
        roofline_bytes = nbytes
    c = launch.constexprs
    ctas = 1
    for g in launch.grid:
        ctas *= int(g)
    regs = int(resources.get("registers", -1))
    smem = int(resources.get("shared_bytes", 0) or 0)
    per_sm, limiter = ctas_per_sm(launch.num_warps, regs, max(smem, 0), gpu)
    m, n, k = (launch.meta.get(key) for key in ("M", "N", "K"))
    bm, bn, bk = (c.get(key) for key in ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
    has_tile = None not in (m, n, bm, bn)
    tfill = tile_fill(int(m), int(n), int(bm), int(bn)) if has_tile else 1.0
    tiles = (-(-int(m) // int(bm)) * -(-int(n) // int(bn))) if has_tile else ctas
    units = max(ctas, tiles)   # a persistent grid (fewer CTAs than tiles) loops over its tiles
    if units > ctas:
        waves, wfill = grid_rounds(units, ctas, per_sm, gpu.sms)
    else:
        waves, wfill = waves_and_fill(ctas, per_sm, gpu.sms)
    pipelined = resources.get("pipelined")
    peak, unit = _compute_peak(launch, dtype, resources, gpu)
    pipe = PIPE_PENALTY if pipelined is False else 1.0
    achievable = gpu.achievable_tc if unit in ("HGMMA", "HMMA", "tf32") else 1.0
    sfill = sm_fill(units, gpu.sms, ctas)
    compute_us = (flops / (peak * 1e6 * achievable * max(sfill, 1e-9) * tfill * pipe)) if flops else 0.0
    memory_us = nbytes / (achievable_bandwidth_tbs(ctas, gpu) * 1e6) if nbytes and ctas else 0.0
    if "serial_steps" in launch.meta:
        steps = float(launch.meta["serial_steps"])
    elif k is not None and bk:
        split = max(1, ctas // max(tiles, 1))
        steps = math.ceil(int(k) / int(bk)) / split
    else:
        steps = 1.0
    in_flight = max(1, launch.num_stages - 1) if pipelined else 1
    latency_us = waves * steps * gpu.mem_latency_us / in_flight
    bound = max((compute_us, "compute"), (memory_us, "memory"), (latency_us, "latency"))[1]
    modeled = max(compute_us, memory_us, latency_us) + gpu.launch_overhead_us
    return {
        "ctas": ctas, "ctas_per_sm": per_sm, "occupancy_limit": limiter, "waves": waves,
        "wave_fill": round(wfill, 4), "sm_fill": round(sfill, 4), "tile_fill": round(tfill, 4),
        "fill": round(wfill * tfill, 6), "compute_unit": unit, "serial_steps": round(steps, 2),
        "roofline_us": round(roofline_us(flops, roofline_bytes, roofline_peak(launch, dtype, gpu), gpu), 3),
        "compute_us": round(compute_us, 3), "memory_us": round(memory_us, 3),
        "latency_us": round(latency_us, 3), "modeled_us": round(modeled, 3), "bound": bound,
    }


def totals(rows: list[dict], batch: int) -> dict:
    """Sum of a plan's launch rows (`model_launch` merged with flops/bytes/kind)."""
    flops = sum(r["flops"] for r in rows)
    gemm = [r for r in rows if r["kind"] == "gemm" and r["flops"] > 0]
    gemm_flops_total = sum(r["flops"] for r in gemm)
    modeled = sum(r["modeled_us"] for r in rows)
    roof = sum(r["roofline_us"] for r in rows)
    pipelined = [r for r in gemm if r.get("pipelined") is not None]
    return {
        "batch": batch, "launches": len(rows), "gflops": round(flops / 1e9, 3),
        "mbytes": round(sum(r["bytes"] for r in rows) / 1e6, 3),
        "fill_flop_weighted": round(sum(r["flops"] * r["fill"] for r in gemm) / gemm_flops_total, 4)
        if gemm_flops_total else None,
        "gemm_flops_pipelined": round(sum(r["flops"] for r in pipelined if r["pipelined"]) / gemm_flops_total, 4)
        if gemm_flops_total else None,
        "modeled_us": round(modeled, 2), "roofline_us": round(roof, 2),
        "modeled_images_per_s": round(batch / modeled * 1e6, 1) if modeled else None,
        "roofline_images_per_s": round(batch / roof * 1e6, 1) if roof else None,
        "modeled_tflops": round(flops / modeled / 1e6, 1) if modeled else None,
    }
