"""Helpers shared by test modules (imported as ``_inputs``: pytest puts ``tests/`` on the path)."""

from __future__ import annotations

import dask.array as da
import zarr


def as_input(X, kind, chunks, tmp_path):
    """``X`` as the estimators take it: ``"numpy"``, a ``"dask"`` array or a ``"zarr"`` store
    path, in row chunks of ``chunks``."""
    if kind == "numpy":
        return X
    if kind == "dask":
        return da.from_array(X, chunks=(chunks, X.shape[1]))
    path = str(tmp_path / "x.zarr")
    z = zarr.create_array(path, shape=X.shape, dtype=X.dtype, chunks=(chunks, X.shape[1]))
    z[:] = X
    return path
