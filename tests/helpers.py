"""The one comparison helper for tests: relative L2 error against a reference,
with a tolerance per dtype."""
from __future__ import annotations

import numpy as np

# Relative L2 error allowed, per dtype of the computation under test.
TOLERANCE = {
    "float64": 1e-10,
    "float32": 1e-5,
    "tf32": 5e-3,
    "float16": 5e-3,
    "bfloat16": 3e-2,
}


def to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def relative_l2(actual, expected) -> float:
    a, e = to_numpy(actual), to_numpy(expected)
    if a.shape != e.shape:
        raise AssertionError(f"shape mismatch: got {a.shape}, expected {e.shape}")
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[:5].tolist()
        raise AssertionError(f"non-finite values at {bad} (unwritten or overflowed output)")
    denom = np.linalg.norm(e.ravel())
    num = np.linalg.norm((a - e).ravel())
    return float(num / denom) if denom > 0 else float(num)


def assert_close(actual, expected, dtype: str = "float32", what: str = "", tol: float | None = None) -> None:
    """Fail unless `actual` is within the relative L2 tolerance of `expected` for `dtype`."""
    tol = TOLERANCE[dtype] if tol is None else tol
    err = relative_l2(actual, expected)
    if not err <= tol:
        raise AssertionError(f"{what or 'result'}: relative L2 error {err:.3e} > {tol:.1e} ({dtype})")


def assert_close_nonfinite(actual, expected, dtype: str = "float32", what: str = "",
                           tol: float | None = None) -> None:
    """`assert_close` for results that may hold NaN or +-inf (inputs with non-finite cells):
    the NaN cells of `actual` must be exactly those of `expected`, every +-inf cell of either
    must be the same infinity in the other, and the cells finite in both are compared by the
    relative L2 rule of `assert_close`."""
    a, e = to_numpy(actual), to_numpy(expected)
    if a.shape != e.shape:
        raise AssertionError(f"shape mismatch: got {a.shape}, expected {e.shape}")
    label = what or "result"
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    if not np.array_equal(nan_a, nan_e):
        lost = np.argwhere(nan_e & ~nan_a)[:5].tolist()
        extra = np.argwhere(nan_a & ~nan_e)[:5].tolist()
        raise AssertionError(f"{label}: NaN cells differ ({dtype}): {int(nan_e.sum())} expected, "
                             f"{int(nan_a.sum())} got; expected NaN but got a number at {lost}, "
                             f"NaN where a number was expected at {extra}")
    inf = (np.isinf(a) | np.isinf(e)) & ~nan_e
    if not np.array_equal(a[inf], e[inf]):
        bad = np.argwhere(inf & (a != e))[:5].tolist()
        raise AssertionError(f"{label}: infinite cells differ ({dtype}) at {bad}")
    finite = ~(nan_e | inf)
    assert_close(a[finite], e[finite], dtype, what=label, tol=tol)


# -- the command line ---------------------------------------------------------------------------

def run_cli(capsys, *argv):
    """(exit status, stdout, stderr) of `slimtriton *argv` (arguments str()-ed)."""
    import warnings

    from slimtriton.cli import main
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no CUDA: the interpreter notice is expected
        status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def cli_user_error(capsys, *argv) -> str:
    """stderr of a bad command line: exit status 2, 'slimtriton CMD: error: ...', no traceback."""
    status, out, err = run_cli(capsys, *argv)
    assert status == 2, f"exit status {status}; stdout {out!r}; stderr {err!r}"
    assert err.startswith(f"slimtriton {argv[0]}: error: ") and "Traceback" not in err, err
    return err


def engine_copy_with_a_flipped_byte(engine, victim: str, tmp_path):
    """A copy of the saved engine directory `engine` in which one bit of the middle byte of its file
    `victim` is flipped (what a damaged download or disk looks like)."""
    import shutil
    copy = tmp_path / "copy.engine"
    shutil.copytree(engine, copy)
    data = bytearray((copy / victim).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / victim).write_bytes(bytes(data))
    return copy
