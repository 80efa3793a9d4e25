"""Benchmark: our implicit-GEMM conv kernel vs cuDNN (torch.nn.functional.conv2d, channels_last)
on every distinct conv shape of TF-Slim resnet_v1_50 at 224x224, float16.

For each shape and batch size it reports TFLOP/s (2*M*N*K / time) of
  * the plain conv (ours without epilogue vs cuDNN conv), and
  * conv + folded BN + ReLU (+ residual add + ReLU for conv3 layers): ours fuses it all in
    the epilogue, eager torch runs cuDNN conv then batch_norm, relu (add, relu) kernels.
Targets: >= 0.9x cuDNN plain, >= 1.2x with the epilogue counted. Every result is also
checked against cuDNN (relative L2 error). Prints a table and writes JSON under
bench/results/ with the machine, versions (slimtriton's git commit included), date and
command (`common.run_record`, as the other benchmarks).

Timing: `triton.testing.do_bench` (CUDA events, L2 flushed before each run, median of the
runs), after one explicit warm-up call of each function (Triton JIT and autotuning happen
there, never inside the timed runs). A global `--budget` (default 540 s; `--quick`: batch 32
only, 120 s) is checked before each shape: shapes it leaves out are listed as skipped, a
shape that fails is recorded with its error and the others go on. The JSON is rewritten after
every shape (marked `"complete": false` until the end), so an outer time limit keeps what was
measured.

Usage: python bench/kernels.py [--batches 1 32 256] [--dtype float16] [--no-autotune] [--quick]
       [--budget S] [--out PATH]
Without a CUDA device it says so and exits 0.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (bench/common.py)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=None, help="default 1 32 256 (--quick: 32)")
    parser.add_argument("--quick", action="store_true", help="batch 32 only, 120 s budget")
    parser.add_argument("--budget", type=float, default=None, help="time budget in seconds (default 540; --quick 120)")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    parser.add_argument("--no-autotune", action="store_true", help="use the default/cached tiles (SLIMTRITON_AUTOTUNE=0)")
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/kernels-<date>.json)")
    args = parser.parse_args(argv)
    args.batches = args.batches or ([32] if args.quick else [1, 32, 256])
    args.budget = args.budget if args.budget is not None else (120.0 if args.quick else 540.0)
    import time
    started = time.monotonic()

    import torch
    if not torch.cuda.is_available():
        print("bench/kernels.py: no CUDA device available; this benchmark needs a GPU (nothing measured).")
        return 0
    if args.no_autotune:
        os.environ["SLIMTRITON_AUTOTUNE"] = "0"
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("bench/kernels.py: TRITON_INTERPRET is set; turning the interpreter off to time the GPU kernels")
        os.environ["TRITON_INTERPRET"] = "0"
    import torch.nn.functional as F
    from slimtriton import kernels as K  # before triton: sets TRITON_INTERPRET without a GPU
    from triton.testing import do_bench

    from slimtriton.kernels.audit import resnet_v1_50_conv_shapes
    from slimtriton.kernels.common import TORCH_COMPUTE_DTYPES

    dtype = TORCH_COMPUTE_DTYPES[args.dtype]
    dev = "cuda"
    torch.backends.cudnn.benchmark = True
    gen = torch.Generator(device=dev).manual_seed(0)
    rows = []
    skipped, failed = [], []
    header = (f"{'layer':40} {'B':>4} {'M':>8} {'N':>5} {'K':>5} | {'ours':>7} {'cuDNN':>7} {'x':>5} | "
              f"{'ours+ep':>7} {'cuDNN+ep':>8} {'x':>5} | {'err':>8}")
    print(header)
    print("-" * len(header))

    def measure(sh, batch):
        (pt, pb), (pl, pr) = sh.padding()
        x = torch.randn((sh.n, sh.h, sh.w, sh.cin), device=dev, generator=gen).to(dtype)
        w = (torch.randn((sh.kh, sh.kw, sh.cin, sh.cout), device=dev, generator=gen)
             / (sh.kh * sh.kw * sh.cin) ** 0.5).to(dtype)
        scale = torch.rand(sh.cout, device=dev, generator=gen) + 0.5
        shift = torch.randn(sh.cout, device=dev, generator=gen)
        packed = K.prepack_conv2d(w)
        oh, ow = -(-sh.h // sh.stride), -(-sh.w // sh.stride)
        residual = torch.randn((sh.n, oh, ow, sh.cout), device=dev, generator=gen).to(dtype) if sh.residual else None
        strides = (sh.stride, sh.stride)
        padding = ((pt, pb), (pl, pr))

        x_nchw = x.permute(0, 3, 1, 2)  # a channels_last NCHW view of the NHWC data
        w_t = w.permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last)
        res_nchw = residual.permute(0, 3, 1, 2) if residual is not None else None
        symmetric = pt == pb and pl == pr

        def cudnn_conv():
            xin = x_nchw if symmetric else F.pad(x_nchw, (pl, pr, pt, pb))
            return F.conv2d(xin, w_t, stride=strides, padding=(pt, pl) if symmetric else 0)

        zeros = torch.zeros(sh.cout, device=dev)
        ones = torch.ones(sh.cout, device=dev)

        def cudnn_fused():
            y = F.batch_norm(cudnn_conv(), zeros, ones, scale, shift, False, 0.0, 0.0)
            if res_nchw is not None:
                return torch.relu_(y.add_(res_nchw))
            return torch.relu_(y)

        ep = dict(scale=scale, shift=shift, act="none" if residual is not None else "relu")
        if residual is not None:
            ep.update(residual=residual, act2="relu")

        def ours():
            return K.conv2d(x, packed, strides=strides, padding=padding, name=sh.name)

        def ours_fused():
            return K.conv2d(x, packed, strides=strides, padding=padding, name=sh.name, **ep)

        for fn in (ours, cudnn_conv, ours_fused, cudnn_fused):  # JIT, autotune, cuDNN benchmark: untimed
            fn()
        torch.cuda.synchronize()
        ref = cudnn_fused().permute(0, 2, 3, 1).float()
        got = ours_fused().float()
        err = float((got - ref).norm() / ref.norm())
        t = {name: do_bench(fn, warmup=10, rep=50, return_mode="median") for name, fn in
             [("ours", ours), ("cudnn", cudnn_conv), ("ours_ep", ours_fused), ("cudnn_ep", cudnn_fused)]}
        m, n, k = sh.n * oh * ow, sh.cout, sh.kh * sh.kw * sh.cin
        flop = 2.0 * m * n * k
        tf = {name: flop / (ms * 1e-3) / 1e12 for name, ms in t.items()}
        row = {"layer": sh.name, "batch": batch, "M": m, "N": n, "K": k, "residual": sh.residual,
               "ms": t, "tflops": tf, "speedup_plain": t["cudnn"] / t["ours"],
               "speedup_epilogue": t["cudnn_ep"] / t["ours_ep"], "rel_l2_error": err}
        print(f"{sh.name[:40]:40} {batch:>4} {m:>8} {n:>5} {k:>5} | {tf['ours']:7.1f} {tf['cudnn']:7.1f} "
              f"{row['speedup_plain']:5.2f} | {tf['ours_ep']:7.1f} {tf['cudnn_ep']:8.1f} "
              f"{row['speedup_epilogue']:5.2f} | {err:8.1e}", flush=True)
        return row

    now = datetime.datetime.now(datetime.timezone.utc)
    out = Path(args.out) if args.out else common.RESULTS_DIR / f"kernels-{now:%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    run_record = common.run_record(None if argv is None else ["bench/kernels.py", *argv], with_gpu=True)

    def geomean(vals):
        import math
        return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else None

    def write(complete: bool) -> dict:
        summary = {"geomean_speedup_plain": geomean([r["speedup_plain"] for r in rows]),
                   "geomean_speedup_epilogue": geomean([r["speedup_epilogue"] for r in rows]),
                   "max_rel_l2_error": max((r["rel_l2_error"] for r in rows), default=None),
                   "measured": len(rows), "failed": failed, "skipped_by_budget": skipped,
                   "budget_s": args.budget, "elapsed_s": round(time.monotonic() - started, 1)}
        record = {"benchmark": "bench/kernels.py", "record": run_record, "dtype": args.dtype,
                  "autotune": not args.no_autotune, "batches": args.batches, "quick": args.quick,
                  "complete": complete, "summary": summary, "rows": rows}
        # not common.write_json: a NaN error must be recorded, not refused
        out.write_text(json.dumps(record, indent=1))
        return summary

    for batch in args.batches:
        for sh in resnet_v1_50_conv_shapes(224, batch):
            if time.monotonic() - started > args.budget:
                skipped.append(f"{sh.name} b{batch}")
                continue
            try:
                row = measure(sh, batch)
            except Exception as exc:  # noqa: BLE001 -- recorded; the other shapes go on
                failed.append({"layer": sh.name, "batch": batch, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
                print(f"{sh.name[:40]:40} {batch:>4} ERROR {failed[-1]['error']}", flush=True)
            else:
                rows.append(row)
            write(complete=False)

    summary = write(complete=True)
    if rows:
        print(f"geomean speedup vs cuDNN: plain {summary['geomean_speedup_plain']:.2f}x (target >= 0.9), "
              f"with epilogue {summary['geomean_speedup_epilogue']:.2f}x (target >= 1.2); "
              f"max error {summary['max_rel_l2_error']:.1e}")
    if skipped:
        print(f"{len(skipped)} shapes skipped by the {args.budget:.0f} s budget: {', '.join(skipped)}")
    if failed:
        print(f"{len(failed)} shapes failed (recorded in the JSON)")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
