"""The chunk policy's decisions on shapes far too large to allocate (nothing is read)."""

from __future__ import annotations

import math
import time

import dask
import numpy as np
import pytest
import zarr

from bigclust import as_dask_array, driver
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


# --- keeping a store in worker memory, or reading it again every pass ---------------------

GiB = 2**30


@pytest.mark.parametrize(
    "n_bytes,limits,kept",
    [
        (6 * 10**9, [GiB, GiB], False),  # the 6 GB store on 2 x 1 GiB: re-read every pass
        (30 * 10**9, [GiB, GiB], False),
        (512 * 2**20, [GiB, GiB], True),  # a quarter of 2 GiB: kept
        (512 * 2**20 + 1, [GiB, GiB], False),
        (TB, [16 * GiB] * 100, False),  # 1 TB on 100 x 16 GiB: 1.6 TiB, a quarter is too little
        (TB, [64 * GiB] * 100, True),
        (10**6, [GiB, None], False),  # a worker without a limit: nothing to judge by
        (10**6, [GiB, 0], False),
        (10**6, [], False),
    ],
)
def test_kept_in_worker_memory_when_a_quarter_of_their_limits_holds_it(n_bytes, limits, kept):
    assert driver.keeps_in_worker_memory(n_bytes, limits) is kept


@pytest.mark.parametrize("setting", [True, False])
def test_the_dask_config_overrides_the_rule(setting):
    with dask.config.set({driver.KEEP_IN_MEMORY_CONFIG: setting}):
        assert driver.keeps_in_worker_memory(10**6, [GiB]) is setting
        assert driver.keeps_in_worker_memory(TB, [GiB]) is setting


def test_a_bad_config_value_is_an_error_naming_the_key():
    with (
        dask.config.set({driver.KEEP_IN_MEMORY_CONFIG: "sometimes"}),
        pytest.raises(ValueError, match=r"bigclust\.keep-in-memory=.sometimes. should be"),
    ):
        driver.keeps_in_worker_memory(10**6, [GiB])


def test_a_store_that_fits_is_held_by_the_workers_for_the_fit_only(tmp_path, distributed_client):
    from bigclust import KMeans
    from bigclust._input import read_input
    from bigclust.datasets import make_blobs, write_zarr

    X, _ = make_blobs(20_000, 4, random_state=0, dtype=np.float64)
    path = str(tmp_path / "fits.zarr")
    with dask.config.set(scheduler="threads"):
        write_zarr(X, path)
        streamed = KMeans(3, random_state=0).fit(path)
    client = distributed_client
    with client.as_current(), dask.config.set(scheduler=client):
        placed = driver.place(read_input(path))
        assert driver._is_persisted(placed)  # 640 kB on workers with memory limits
        del placed
        with dask.config.set({driver.KEEP_IN_MEMORY_CONFIG: False}):
            assert not driver._is_persisted(driver.place(read_input(path)))
        kept = KMeans(3, random_state=0).fit(path)
        # Nothing of the data outlives the fit on the workers (labels_ reads the store);
        # the scheduler forgets released keys asynchronously, within moments.
        deadline = time.monotonic() + 10
        while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)):
            assert time.monotonic() < deadline, "the fit's data are still held by the workers"
            time.sleep(0.05)
    np.testing.assert_array_equal(kept.cluster_centers_, streamed.cluster_centers_)
    np.testing.assert_array_equal(kept.labels_.compute(), streamed.labels_.compute())
