"""Row-range helpers shared by the NumPy kernels and the driver (no Dask here)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def row_ranges(n_rows: int, step: int) -> Iterator[tuple[int, int]]:
    """``(lo, hi)`` pairs covering ``range(n_rows)`` in steps of ``step`` rows."""
    for lo in range(0, n_rows, step):
        yield lo, min(n_rows, lo + step)


def first_nonfinite_row(block: np.ndarray) -> int | None:
    """Index of the first row of ``block`` holding NaN or infinity, or ``None``."""
    rows = np.flatnonzero(~np.isfinite(block).all(axis=1))
    return int(rows[0]) if rows.size else None
