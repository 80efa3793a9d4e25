"""Non-finite input cells for the kernel sweeps: a hypothesis strategy drawing NaN / +inf /
-inf values (or none) and `plant`, which writes them into random cells of an input."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

NONFINITE = (float("nan"), float("inf"), float("-inf"))


@st.composite
def nonfinite_cells(draw, max_cells: int = 3, values=NONFINITE):
    """() half of the time (an all-finite input), else 1..max_cells values among `values`."""
    if not draw(st.booleans()):
        return ()
    return tuple(draw(st.lists(st.sampled_from(values), min_size=1, max_size=max_cells)))


def plant(x: np.ndarray, cells, seed: int = 0) -> np.ndarray:
    """A copy of `x` with the values `cells` at distinct random positions."""
    x = np.array(x, dtype=np.float64, copy=True)
    if not cells or x.size == 0:
        return x
    rng = np.random.default_rng(seed)
    where = rng.choice(x.size, size=min(len(cells), x.size), replace=False)
    x.reshape(-1)[where] = cells[:len(where)]
    return x
