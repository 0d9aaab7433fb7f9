"""The chunk policy's decisions on shapes far too large to allocate (nothing is read)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import zarr

from bigclust import as_dask_array
from bigclust.io import (
    DEFAULT_CHUNK_BYTES,
    MAX_CHUNK_BYTES,
    MAX_CHUNKS_PER_PASS,
    MIN_CHUNKS,
    rows_per_chunk,
)

TB = 10**12


@pytest.mark.parametrize(
    "n_bytes,n_features,itemsize",
    [(10**6, 8, 8), (10**9, 32, 4), (64 * 2**30, 32, 4), (TB, 32, 4), (TB, 784, 8)],
)
def test_tasks_per_pass_are_bounded_and_chunks_fit_workers(n_bytes, n_features, itemsize):
    n_samples = n_bytes // (n_features * itemsize)
    rows = rows_per_chunk(n_features, itemsize, n_samples=n_samples)
    n_chunks = math.ceil(n_samples / rows)
    chunk_bytes = rows * n_features * itemsize
    assert n_chunks <= max(MAX_CHUNKS_PER_PASS, MIN_CHUNKS)
    assert chunk_bytes <= max(MAX_CHUNK_BYTES, DEFAULT_CHUNK_BYTES)
    if n_bytes <= MAX_CHUNKS_PER_PASS * DEFAULT_CHUNK_BYTES:
        assert chunk_bytes <= DEFAULT_CHUNK_BYTES  # below the bound nothing changes
    if n_bytes >= TB:
        assert chunk_bytes > 64 * 2**20 and n_chunks > MAX_CHUNKS_PER_PASS // 2


def test_beyond_the_bound_chunks_stop_growing():
    n_samples = 100 * TB // 128  # 100 TB of 32 float32 columns
    rows = rows_per_chunk(32, 4, n_samples=n_samples)
    assert rows * 128 <= MAX_CHUNK_BYTES
    assert math.ceil(n_samples / rows) > MAX_CHUNKS_PER_PASS  # documented: scale workers


def test_the_policy_reaches_a_store_too_large_to_write(tmp_path):
    # 1 TB of float32 in a Zarr store: metadata only, no chunk written, nothing allocated.
    n_samples = TB // 128
    store = zarr.create_array(
        str(tmp_path / "huge.zarr"), shape=(n_samples, 32), chunks=(2**20, 32), dtype="float32"
    )
    X = as_dask_array(str(tmp_path / "huge.zarr"))
    assert X.shape == (n_samples, 32) and X.dtype == np.float32
    assert X.numblocks[0] <= MAX_CHUNKS_PER_PASS
    assert X.chunks[0][0] % store.chunks[0] == 0  # whole Zarr chunks per task
