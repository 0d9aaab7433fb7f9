"""Where per-row outputs go: outputs follow inputs (DESIGN contract 4)."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from bigclust.io import is_lazy_input

__all__ = ["as_output", "returns_numpy"]


def returns_numpy(X: Any) -> bool:
    """In-memory data gives NumPy outputs; stores and Dask arrays give lazy Dask outputs."""
    return not is_lazy_input(X)


def as_output(values: np.ndarray | da.Array, X: Any, data: da.Array):
    """Per-row ``values`` as the input ``X`` asks: NumPy, or Dask chunked as ``data``."""
    if returns_numpy(X):
        return values.compute() if isinstance(values, da.Array) else values
    if isinstance(values, da.Array):
        return values
    return da.from_array(values, chunks=(data.chunks[0],))
