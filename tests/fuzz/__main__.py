"""`python -m tests.fuzz --minutes 10` (what `make fuzz MINUTES=10` runs): see tests/fuzz/fuzzer.py.
Exit status 1 when a case failed (each is printed as a runnable reproducer), else 0."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--minutes", type=float, default=1.0, help="how long to fuzz (default 1)")
    parser.add_argument("--seed", type=int, default=None, help="draw the cases of an earlier run (default: random)")
    parser.add_argument("--non-finite-rate", type=float, default=0.3,
                        help="fraction of cases with NaN/inf input cells (default 0.3)")
    args = parser.parse_args(argv)
    if args.minutes <= 0:
        parser.error(f"--minutes must be > 0, got {args.minutes}")
    from .fuzzer import fuzz
    result = fuzz(args.minutes * 60, seed=args.seed, out=lambda text: print(text, flush=True),
                  non_finite_rate=args.non_finite_rate)
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
