"""The map-reduce driver: NumPy's answer on every scheduler and chunking, errors that name rows."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import dask
import dask.array as da
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from bigclust._blas import single_blas_thread
from bigclust.driver import (
    NonFiniteInputError,
    active_client,
    combine,
    keep_in_memory,
    map_blocks_lazy,
    map_reduce,
)


class Stats(NamedTuple):
    n: int
    sum: np.ndarray
    sumsq: np.ndarray
    weighted: np.ndarray


def stats_kernel(block, *rest):
    """Row count, column sums and sums of squares (float64), weighted sums if weights given."""
    *aligned, params, _start = rest
    x = block.astype(np.float64)
    w = aligned[0] if aligned else np.ones(len(x))
    shift = 0.0 if params is None else params
    return Stats(len(x), x.sum(axis=0), ((x - shift) ** 2).sum(axis=0), w @ x)


def numpy_stats(a, w=None, shift=0.0):
    a = a.astype(np.float64)
    w = np.ones(len(a)) if w is None else w
    return Stats(len(a), a.sum(axis=0), ((a - shift) ** 2).sum(axis=0), w @ a)


def assert_stats_close(got, expected, rtol=1e-12):
    assert type(got) is Stats
    assert got.n == expected.n
    for name in ("sum", "sumsq", "weighted"):
        np.testing.assert_allclose(getattr(got, name), getattr(expected, name), rtol=rtol)


@pytest.fixture(scope="module")
def data():
    # Far from the origin, with mixed magnitudes: rounding differences would show.
    rng = np.random.default_rng(42)
    return rng.standard_normal((203, 4)) * [1.0, 1e3, 1e-3, 10.0] + [5.0, -2e4, 0.0, 1e6]


# One chunk, uneven last chunk, one-row chunks, irregular chunks.
CHUNKINGS = [203, 50, 1, (1, 100, 2, 77, 23)]


@pytest.mark.parametrize("chunks", CHUNKINGS, ids=["one", "50", "1", "irregular"])
def test_equals_numpy_on_every_scheduler(scheduler, chunks, data):
    X = da.from_array(data, chunks=(chunks, 4))
    got = map_reduce(stats_kernel, X, params=3.0)
    assert_stats_close(got, numpy_stats(data, shift=3.0))


def test_equals_numpy_on_worker_processes(processes, data):
    for chunks in (50, (1, 100, 2, 77, 23)):
        X = da.from_array(data, chunks=(chunks, 4))
        w = da.from_array(np.linspace(0, 1, len(data)), chunks=60)
        got = map_reduce(stats_kernel, X, w, params=-1.0)
        assert_stats_close(got, numpy_stats(data, np.linspace(0, 1, len(data)), shift=-1.0))


def test_identical_across_chunkings_and_tree_shapes(data):
    results = []
    for chunks in CHUNKINGS:
        for split_every in (2, 3, 8):
            X = da.from_array(data.astype(np.float32), chunks=(chunks, 4))
            results.append(map_reduce(stats_kernel, X, split_every=split_every))
    for r in results[1:]:
        assert_stats_close(r, results[0], rtol=1e-12)
    assert_stats_close(results[0], numpy_stats(data.astype(np.float32)), rtol=1e-12)


def test_combine_namedtuple_equals_stats_of_concatenation(data):
    a, b, c = data[:17], data[17:100], data[100:]
    merged = combine(combine(stats_kernel(a, None, 0), stats_kernel(b, None, 17)),
                     stats_kernel(c, None, 100))  # fmt: skip
    assert_stats_close(merged, stats_kernel(data, None, 0))
    # Order of combination does not matter beyond rounding.
    other = combine(stats_kernel(a, None, 0),
                    combine(stats_kernel(c, None, 100), stats_kernel(b, None, 17)))  # fmt: skip
    assert_stats_close(other, merged)


def test_combine_other_shapes():
    assert combine(None, 3) == 3 and combine(3, None) == 3 and combine(None, None) is None
    assert combine((1, 2.5), (3, 0.5)) == (4, 3.0) and type(combine((1,), (2,))) is tuple
    np.testing.assert_array_equal(combine(np.arange(3), np.ones(3)), [1, 2, 3])

    class Max:
        def __init__(self, v):
            self.v = v

        def combine(self, other):
            return Max(max(self.v, other.v))

    assert combine(Max(2), Max(5)).v == 5
    with pytest.raises(ValueError):
        combine((1, 2), (1, 2, 3))  # mismatched statistics are an error, not a silent zip


def sum_kernel(block, params, start):
    return block.sum(axis=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("row", [0, 22, 23, 202])
def test_nonfinite_names_the_global_row(bad, row, data):
    a = data.copy()
    a[row, 2] = bad
    X = da.from_array(a, chunks=(23, 4))  # chunks of rows 0-22, 23-45, ...
    with pytest.raises(NonFiniteInputError) as info:
        map_reduce(sum_kernel, X, what="the training data")
    err = info.value
    lo = row // 23 * 23
    assert err.row == row and err.chunk == (lo, min(lo + 23, len(a)))
    assert isinstance(err, ValueError)
    message = str(err)
    assert message.startswith("the training data contains NaN or infinity")
    assert f"row {row} " in message and f"rows {lo}-{min(lo + 23, len(a)) - 1}" in message


def test_nonfinite_reports_the_first_row_on_every_scheduler(scheduler, data):
    a = data.copy()
    a[150, 0] = np.nan
    a[151, 1] = np.inf
    a[40, 3] = np.inf  # the first bad row, in another chunk than the others
    X = da.from_array(a, chunks=(7, 4))
    with pytest.raises(NonFiniteInputError, match="row 40 ") as info:
        map_reduce(stats_kernel, X)
    assert info.value.chunk == (35, 42)


def test_nonfinite_check_can_be_disabled(data):
    a = data.copy()
    a[5, 0] = np.nan
    result = map_reduce(sum_kernel, da.from_array(a, chunks=(10, 4)), check_finite=False)
    assert np.isnan(result[0]) and np.isfinite(result[1:]).all()


def offsets_kernel(block, *rest):
    """Column 0 holds the global row index; so does the aligned weight. Count mismatches."""
    *aligned, _params, start = rest
    expected = start + np.arange(len(block))
    bad = int((block[:, 0] != expected).sum())
    for w in aligned:
        assert w.shape == (len(block),)
        bad += int((w != expected).sum())
    return np.array([len(block), bad, start == int(block[0, 0])])


@pytest.mark.parametrize("x_chunks", [(5, 1, 30, 64), (100,), (1,) * 100, (33,)])
def test_kernels_get_global_offsets_and_aligned_rows(x_chunks):
    n = 100
    a = np.repeat(np.arange(n, dtype=np.float64)[:, None], 3, axis=1)
    X = da.from_array(a, chunks=(x_chunks if sum(x_chunks) == n else x_chunks[0], 3))
    index = np.arange(n, dtype=np.float64)
    w1 = da.from_array(index, chunks=7)  # chunked unlike X
    w2 = da.from_array(index, chunks=((60, 40),))
    rows, bad, starts_ok = map_reduce(offsets_kernel, X, w1, w2)
    assert rows == n and bad == 0 and starts_ok == len(X.chunks[0])


def test_aligned_weights_change_the_result(data):
    rng = np.random.default_rng(1)
    w = rng.random(len(data))
    X = da.from_array(data, chunks=(31, 4))
    got = map_reduce(stats_kernel, X, da.from_array(w, chunks=17))
    assert_stats_close(got, numpy_stats(data, w))


def test_misaligned_array_is_rejected(data):
    X = da.from_array(data, chunks=(50, 4))
    with pytest.raises(ValueError, match=r"shape \(202,\) is not aligned with 203 rows"):
        map_reduce(stats_kernel, X, da.ones(202, chunks=50))
    with pytest.raises(ValueError, match=r"shape \(\) is not aligned"):
        map_reduce(stats_kernel, X, 3.0)


def resp_kernel(block, resp, weights, params, start):
    """Weighted sums per component, as a GMM M-step needs: resp is (n, k), weights (n,)."""
    return (resp * weights[:, None]).T @ block


def test_aligned_numpy_and_2d_arrays(data):
    rng = np.random.default_rng(5)
    resp = rng.random((len(data), 3))
    weights = rng.random(len(data))
    expected = (resp * weights[:, None]).T @ data
    X = da.from_array(data, chunks=(31, 4))
    for r, w in [
        (resp, weights),  # NumPy
        (da.from_array(resp, chunks=(40, 3)), da.from_array(weights, chunks=17)),
        (da.from_array(resp, chunks=(40, (1, 2))), weights),  # columns split too
    ]:
        np.testing.assert_allclose(map_reduce(resp_kernel, X, r, w), expected, rtol=1e-12)


def test_input_validation(data):
    with pytest.raises(ValueError, match="all columns in one chunk"):
        map_reduce(sum_kernel, da.from_array(data, chunks=(50, 2)))
    with pytest.raises(ValueError, match="all columns in one chunk"):
        map_reduce(sum_kernel, da.ones(10, chunks=5))
    with pytest.raises(ValueError, match="split_every=1"):
        map_reduce(sum_kernel, da.from_array(data, chunks=(50, 4)), split_every=1)


def params_kernel(block, params, start):
    return np.array([len(block), float(params["scale"]) * len(block), params["centers"].sum()])


def test_params_reach_every_task(scheduler, data):
    params = {"scale": 2.5, "centers": np.arange(6.0).reshape(2, 3)}
    X = da.from_array(data, chunks=(10, 4))
    n, scaled, centers_sum = map_reduce(params_kernel, X, params=params)
    n_chunks = len(X.chunks[0])
    assert n == 203 and scaled == 2.5 * 203 and centers_sum == 15.0 * n_chunks


_PICKLED = []


class CountedParams:
    """Counts how often the client serializes it; unpickles as a plain array on workers."""

    def __init__(self, values):
        self.values = values

    def __reduce__(self):
        _PICKLED.append(1)
        return (np.array, (self.values,))


def shape_kernel(block, params, start):
    return np.array([len(block), float(np.asarray(params).sum())])


def test_params_travel_once_per_call_not_once_per_task(processes, data):
    # On worker processes every byte of the graph is serialized by the client: params
    # embedded in each task would be serialized once per task.
    counts = {}
    for n_chunks, chunks in ((1, 203), (29, 7)):
        X = da.from_array(data, chunks=(chunks, 4))
        _PICKLED.clear()
        params = CountedParams(np.ones(1000))
        n, total = map_reduce(shape_kernel, X, params=params)
        assert n == 203 and total == 1000.0 * n_chunks
        counts[n_chunks] = len(_PICKLED)
    assert counts[1] >= 1, "the test must see the params serialized at all"
    assert counts[29] == counts[1], f"params serialized per task: {counts}"


class Range(NamedTuple):
    """Smallest and largest value seen, and how many tasks saw one: combines by min/max."""

    least: int
    most: int
    n_tasks: int

    def combine(self, other):
        return Range(
            min(self.least, other.least), max(self.most, other.most), self.n_tasks + other.n_tasks
        )


def blas_threads_kernel(block, params, start):
    threads = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    return Range(min(threads), max(threads), 1)


def test_blas_limited_to_one_thread_inside_threaded_tasks(data):
    if not any(i["user_api"] == "blas" for i in threadpool_info()):
        pytest.skip("no BLAS library loaded")
    X = da.from_array(data, chunks=(20, 4))
    with threadpool_limits(limits=2, user_api="blas"), dask.config.set(scheduler="threads"):
        seen = map_reduce(blas_threads_kernel, X)
        assert seen.n_tasks == len(X.chunks[0])
        assert seen.least == 1 and seen.most == 1
        # The limit is lifted afterwards.
        assert all(i["num_threads"] == 2 for i in threadpool_info() if i["user_api"] == "blas")
    # The synchronous scheduler runs one task at a time: BLAS keeps its threads.
    with threadpool_limits(limits=2, user_api="blas"), dask.config.set(scheduler="synchronous"):
        assert map_reduce(blas_threads_kernel, X).most == 2


def _blas_threads():
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_blas_limit_still_works_after_another_thread_used_it():
    """threadpoolctl >= 3.8 lets one thread at a time control OpenBLAS: a limit set from a
    worker thread that stays alive must hand control back, or the main thread's later limits
    silently do nothing (as after a fit on an in-process distributed cluster)."""
    if not _blas_threads():
        pytest.skip("no BLAS library loaded")
    with ThreadPoolExecutor(1) as pool:  # its thread outlives the call
        pool.submit(_limit_once).result()
        with threadpool_limits(limits=2, user_api="blas"):
            assert _blas_threads() == {2}
            with single_blas_thread():
                assert _blas_threads() == {1}
            assert _blas_threads() == {2}


def _limit_once():
    with single_blas_thread():
        assert _blas_threads() == {1}


def label_kernel(block, params):
    return (block @ params).argmax(axis=1).astype(np.int32)


def project_kernel(block, params):
    return block @ params


def test_map_blocks_lazy(scheduler, data):
    W = np.random.default_rng(3).standard_normal((4, 3))
    X = da.from_array(data, chunks=((1, 100, 2, 77, 23), 4))
    labels = map_blocks_lazy(label_kernel, X, params=W, dtype=np.int32)
    assert labels.shape == (203,) and labels.dtype == np.int32 and labels.chunks == (X.chunks[0],)
    np.testing.assert_array_equal(labels.compute(), (data @ W).argmax(axis=1))
    projected = map_blocks_lazy(project_kernel, X, params=W, dtype=np.float64, n_columns=3)
    assert projected.shape == (203, 3) and projected.chunks == (X.chunks[0], (3,))
    np.testing.assert_allclose(projected.compute(), data @ W, rtol=1e-12)
    # The parameters are one key of the graph, shared by every block.
    graph = dict(projected.__dask_graph__())
    assert sum(str(k).startswith("params-") for k in graph) == 1


def test_active_client(scheduler, distributed_client):
    expected = distributed_client if scheduler == "distributed" else None
    assert active_client() is expected


def test_keep_in_memory(scheduler, distributed_client, data, tmp_path):
    X = da.from_array(data, chunks=(50, 4))
    kept = keep_in_memory(X, data)
    if scheduler == "distributed":
        from distributed import Future

        assert kept is not X
        # Every chunk is a future held on the cluster: graphs refer to it, never embed it.
        futures = [v for v in dict(kept.__dask_graph__()).values() if isinstance(v, Future)]
        threads = sum(distributed_client.nthreads().values())
        assert len(futures) == kept.numblocks[0] == min(len(data), 4 * threads)
        assert all(f.key in distributed_client.futures for f in futures)
        assert kept.dtype == X.dtype and kept.shape == X.shape
    else:
        assert kept is X
    np.testing.assert_array_equal(kept.compute(), data)
    path = tmp_path / "x.npy"
    np.save(path, data)
    mm = np.load(path, mmap_mode="r")
    assert keep_in_memory(X, mm) is X  # streamed data stays streamed


def _is_aligned(block):
    return block.flags.aligned


def test_kept_chunks_are_element_aligned_on_worker_processes(processes, process_client):
    """A scattered array is deserialized where its frame fell in the message (the first of
    each message at an odd address), where NumPy's matmul runs without BLAS at half speed."""
    from distributed import Future

    data = np.arange(40_000 * 3, dtype=np.float32).reshape(-1, 3)
    kept = keep_in_memory(da.from_array(data, chunks=(10_000, 3)), data)
    futures = [v for v in dict(kept.__dask_graph__()).values() if isinstance(v, Future)]
    assert len(futures) == kept.numblocks[0] > 1
    assert all(process_client.gather(process_client.map(_is_aligned, futures, pure=False)))
    np.testing.assert_array_equal(kept.compute(), data)


def test_each_call_gets_fresh_keys(monkeypatch, data):
    # Resubmitting the same keys while a distributed scheduler still forgets them from the
    # previous call logged "Couldn't gather keys ... 'forgotten'" errors (2 in 100 calls).
    import bigclust.driver as driver

    seen = []
    compute = driver.dask.compute

    def spy(*collections, **kwargs):
        seen.append([c.key for c in collections])
        return compute(*collections, **kwargs)

    monkeypatch.setattr(driver.dask, "compute", spy)
    X = da.from_array(data, chunks=(50, 4))
    first, second = map_reduce(sum_kernel, X), map_reduce(sum_kernel, X)
    np.testing.assert_array_equal(first, second)
    assert len(seen) == 2 and seen[0] != seen[1]


def test_persisted_array_on_a_distributed_client(distributed_client, data):
    # A persisted array's chunks are futures keyed like the array itself; the reduction must
    # read them (a plain tuple reference handed the kernel the key instead of the chunk).
    from bigclust.cluster import KMeans

    X = distributed_client.persist(da.from_array(data, chunks=(50, data.shape[1])))
    with distributed_client.as_current(), dask.config.set(scheduler=distributed_client):
        total = map_reduce(lambda block, params, start: block.sum(axis=0), X)
        fitted = KMeans(3, random_state=0).fit(X)
    np.testing.assert_allclose(total, data.sum(axis=0), rtol=1e-12)
    expected = KMeans(3, random_state=0).fit(data)
    np.testing.assert_allclose(fitted.cluster_centers_, expected.cluster_centers_, rtol=1e-9)


def _where_run(block, params, start):
    import collections

    from distributed import get_worker

    return collections.Counter({(start, get_worker().address): 1})


def test_kernels_run_on_the_workers_asked_for(distributed_client):
    X = da.from_array(np.ones((800, 3)), chunks=(100, 3))
    addresses = sorted(distributed_client.scheduler_info()["workers"])
    wanted = [addresses[i % 2] for i in range(8)][::-1]
    with distributed_client.as_current(), dask.config.set(scheduler=distributed_client):
        ran = map_reduce(_where_run, X, workers=wanted)
        assert sorted(ran) == sorted(zip(range(0, 800, 100), wanted, strict=True))
        # None: anywhere.
        assert sum(map_reduce(_where_run, X, workers=[None] * 8).values()) == 8
